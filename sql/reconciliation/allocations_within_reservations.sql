-- Order lines allocated beyond what validation reserved for them (allocations consume reservations;
-- they never create stock claims of their own). No rows = allocations within reservations.
-- severity: error
WITH a AS (SELECT order_id, line_no, sku, sum(quantity) AS allocated FROM core.allocations GROUP BY ALL),
     r AS (SELECT order_id, line_no, sku, sum(quantity_reserved) AS reserved FROM core.reservations GROUP BY ALL)
SELECT a.order_id, a.line_no, a.sku, a.allocated, coalesce(r.reserved, 0) AS reserved
FROM a
LEFT JOIN r USING (order_id, line_no, sku)
WHERE a.allocated > coalesce(r.reserved, 0)
ORDER BY 1, 2, 3
