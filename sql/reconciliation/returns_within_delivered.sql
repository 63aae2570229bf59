-- Units accepted for return beyond what the order line delivered, refunds beyond what the order paid, credit
-- notes beyond what the invoice billed. No rows = nothing is given back that was not received.
-- severity: error
WITH dl AS (SELECT sl.order_id, sl.line_no, sum(sl.quantity) AS delivered FROM core.shipment_lines sl
            JOIN core.shipment_status st USING (shipment_id) WHERE st.delivered_at IS NOT NULL GROUP BY ALL),
rt AS (SELECT order_id, line_no, sum(quantity) AS returned FROM core.return_requests WHERE status = 'accepted'
       GROUP BY ALL),
paid AS (SELECT i.order_id, sum(a.amount) AS paid FROM core.payment_allocations a
         JOIN core.invoices i ON i.invoice_id = a.item_id GROUP BY 1),
rf AS (SELECT order_id, sum(refund_total) AS refunded FROM core.refunds WHERE kind = 'refund' GROUP BY 1),
cn AS (SELECT invoice_id, sum(total) AS credited FROM core.credit_notes GROUP BY 1)
SELECT 'returned > delivered' AS problem, rt.order_id AS key, rt.returned::DECIMAL(18, 2) AS got,
       coalesce(dl.delivered, 0)::DECIMAL(18, 2) AS limit_
FROM rt LEFT JOIN dl USING (order_id, line_no) WHERE rt.returned > coalesce(dl.delivered, 0)
UNION ALL
SELECT 'refunded > paid', rf.order_id, rf.refunded, coalesce(paid.paid, 0) FROM rf LEFT JOIN paid USING (order_id)
WHERE rf.refunded > coalesce(paid.paid, 0)
UNION ALL
SELECT 'credited > invoiced', cn.invoice_id, cn.credited, i.total FROM cn JOIN core.invoices i USING (invoice_id)
WHERE cn.credited > i.total
ORDER BY 1, 2
