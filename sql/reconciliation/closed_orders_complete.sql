-- A CLOSED order with something still open: a line with a unit not delivered (net of returns) or not invoiced
-- (net of credits), money owed or owed back (net of refunds and chargebacks), a payment not cleared. No rows =
-- nothing closes early.
-- severity: error
WITH lines AS (
    SELECT l.order_id,
           sum(l.quantity) AS ordered,
           sum(coalesce(sh.q, 0)) AS shipped
    FROM core.order_lines l SEMI JOIN core.order_closure c ON c.order_id = l.order_id AND c.closed
    LEFT JOIN (SELECT order_id, line_no, sum(quantity) AS q FROM core.shipment_lines GROUP BY ALL) sh
         USING (order_id, line_no)
    GROUP BY 1)
SELECT c.order_id, c.delivery_status, c.invoicing_status, c.payment_status, c.invoiced_amount, c.credited_amount,
       c.paid_amount, c.refunded_amount, c.charged_back_amount
FROM core.order_closure c JOIN lines USING (order_id)
WHERE c.closed AND (c.payment_status IN ('partial', 'in_payment')
      OR c.invoicing_status IN ('partial', 'over')
      OR c.invoiced_amount - c.credited_amount
         <> c.paid_amount - c.refunded_amount - coalesce(c.charged_back_amount, 0)
      OR EXISTS (SELECT 1 FROM core.order_line_closure x WHERE x.order_id = c.order_id AND x.open_qty > 0))
ORDER BY 1
