-- Warehouse x SKU combinations where more units are allocated than the warehouse has on hand.
-- No rows = nothing allocated beyond stock.
-- severity: error
WITH a AS (SELECT warehouse_id, sku, sum(quantity) AS allocated FROM core.allocations GROUP BY ALL)
SELECT a.warehouse_id, a.sku, a.allocated, coalesce(i.on_hand, 0) AS on_hand
FROM a
LEFT JOIN ref.inventory AS i USING (warehouse_id, sku)
WHERE a.allocated > coalesce(i.on_hand, 0)
ORDER BY 1, 2
