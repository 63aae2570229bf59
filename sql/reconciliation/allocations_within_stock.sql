-- Warehouse x SKU combinations where more units are allocated than the warehouse can give: the allocated units
-- not yet on a pick task exceed what the stock ledger says is available there (on hand - reserved for tasks -
-- picked; core.v_stock). Units on tasks are the ledger's reserved and picked already.
-- No rows = nothing allocated beyond stock.
-- severity: error
WITH held AS (
    SELECT order_id, line_no, sku, warehouse_id,
           sum(CASE WHEN status = 'OPEN' THEN quantity WHEN status IN ('PICKED', 'SHORT') THEN picked_qty ELSE 0 END)
               AS held
    FROM core.pick_tasks GROUP BY ALL
), a AS (
    SELECT a.warehouse_id, a.sku, sum(greatest(a.quantity - coalesce(h.held, 0), 0)) AS allocated
    FROM core.allocations AS a LEFT JOIN held AS h USING (order_id, line_no, sku, warehouse_id)
    GROUP BY ALL
)
SELECT a.warehouse_id, a.sku, a.allocated, coalesce(s.available, 0) AS available
FROM a
LEFT JOIN core.v_stock AS s USING (warehouse_id, sku)
WHERE a.allocated > coalesce(s.available, 0)
ORDER BY 1, 2
