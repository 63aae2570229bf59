-- Order lines where more units shipped than were picked, or more picked than allocated
-- (core.shipment_lines <= picked on core.pick_tasks <= core.allocations, per order line and SKU).
-- No rows = shipped <= picked <= allocated everywhere.
-- severity: error
WITH s AS (SELECT order_id, line_no, sku, sum(quantity) AS shipped FROM core.shipment_lines GROUP BY ALL),
p AS (SELECT order_id, line_no, sku, sum(picked_qty) AS picked FROM core.pick_tasks
      WHERE status <> 'CANCELLED' GROUP BY ALL),
a AS (SELECT order_id, line_no, sku, sum(quantity) AS allocated FROM core.allocations GROUP BY ALL)
SELECT order_id, line_no, sku, coalesce(s.shipped, 0) AS shipped, coalesce(p.picked, 0) AS picked,
       coalesce(a.allocated, 0) AS allocated
FROM p FULL JOIN s USING (order_id, line_no, sku) LEFT JOIN a USING (order_id, line_no, sku)
WHERE coalesce(s.shipped, 0) > coalesce(p.picked, 0) OR coalesce(p.picked, 0) > coalesce(a.allocated, 0)
ORDER BY 1, 2, 3
