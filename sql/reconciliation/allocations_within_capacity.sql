-- Warehouses given more order lines for a ship date than their daily capacity (daily_capacity_lines).
-- No rows = every overloaded warehouse shed its excess to the next best one.
-- severity: error
WITH a AS (
    SELECT warehouse_id, expected_ship_date, count(DISTINCT (order_id, line_no)) AS lines
    FROM core.allocations GROUP BY ALL
)
SELECT a.warehouse_id, a.expected_ship_date, a.lines, w.daily_capacity_lines
FROM a
JOIN ref.warehouses AS w USING (warehouse_id)
WHERE a.lines > w.daily_capacity_lines
ORDER BY 1, 2
