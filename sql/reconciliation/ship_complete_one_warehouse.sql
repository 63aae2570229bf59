-- Ship-complete orders allocated from more than one warehouse (a split). No rows = never split.
-- severity: error
SELECT a.order_id, count(DISTINCT a.warehouse_id) AS warehouses, string_agg(DISTINCT a.warehouse_id, '|') AS used
FROM core.allocations AS a
JOIN core.orders AS o USING (order_id)
LEFT JOIN ref.customers AS c ON c.customer_id = o.customer_id
WHERE o.ship_complete OR coalesce(c.ship_complete, false)
GROUP BY a.order_id
HAVING count(DISTINCT a.warehouse_id) > 1
ORDER BY 1
