-- Every shipped unit of an invoiced shipment billed once and only once: per shipment and order line, the units its
-- invoice bills equal the units shipped (capped at what was ordered), no shipment has two invoices, and no order
-- line is billed beyond its ordered quantity. No rows = every invoiced shipment is billed exactly.
-- severity: error
WITH shipped AS (
    SELECT sl.shipment_id, sl.order_id, sl.line_no, sum(sl.quantity) AS shipped
    FROM core.shipment_lines sl SEMI JOIN core.invoices i USING (shipment_id)
    GROUP BY ALL),
billed AS (
    SELECT shipment_id, order_id, order_line_no AS line_no, sum(quantity) AS billed
    FROM core.invoice_lines WHERE kind = 'item' GROUP BY ALL),
per_line AS (
    SELECT order_id, order_line_no AS line_no, sum(quantity) AS billed_total
    FROM core.invoice_lines WHERE kind = 'item' GROUP BY ALL)
SELECT 'units' AS problem, s.shipment_id, s.order_id, s.line_no, s.shipped, b.billed
FROM shipped s LEFT JOIN billed b USING (shipment_id, order_id, line_no)
JOIN core.order_lines ol ON ol.order_id = s.order_id AND ol.line_no = s.line_no
WHERE coalesce(b.billed, 0) <> s.shipped AND coalesce(b.billed, 0) < ol.quantity
UNION ALL
SELECT 'two invoices', shipment_id, NULL, NULL, count(*), NULL FROM core.invoices GROUP BY shipment_id
HAVING count(*) > 1
UNION ALL
SELECT 'beyond ordered', NULL, p.order_id, p.line_no, ol.quantity, p.billed_total
FROM per_line p JOIN core.order_lines ol USING (order_id, line_no) WHERE p.billed_total > ol.quantity
ORDER BY 1, 2, 3, 4
