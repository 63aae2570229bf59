-- SKUs reserved beyond stock: the units reserved for approved and held orders exceed the units on hand across
-- warehouses by the stock ledger (core.v_stock), counting back the units already shipped for lines that still
-- hold their reservation (a reservation keeps its shipped units). No rows = no line reserved beyond stock.
-- severity: error
WITH reserved AS (
    SELECT sku, sum(quantity_reserved) AS reserved FROM core.reservations GROUP BY sku
), stock AS (
    SELECT sku, sum(on_hand) AS on_hand FROM (
        SELECT sku, on_hand FROM core.v_stock
        UNION ALL
        SELECT x.sku, x.quantity FROM core.shipment_lines AS x SEMI JOIN core.reservations AS r USING (order_id, line_no, sku)
    ) GROUP BY sku
)
SELECT r.sku, r.reserved, coalesce(s.on_hand, 0) AS on_hand
FROM reserved AS r
LEFT JOIN stock AS s USING (sku)
WHERE r.reserved > coalesce(s.on_hand, 0)
ORDER BY r.sku
