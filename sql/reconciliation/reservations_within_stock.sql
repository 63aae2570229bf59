-- SKUs reserved beyond stock: the units reserved for approved and held orders exceed the units on
-- hand across warehouses (ref.inventory). No rows = no line reserved beyond stock.
-- severity: error
WITH reserved AS (
    SELECT sku, sum(quantity_reserved) AS reserved FROM core.reservations GROUP BY sku
), stock AS (
    SELECT sku, sum(on_hand) AS on_hand FROM ref.inventory GROUP BY sku
)
SELECT r.sku, r.reserved, coalesce(s.on_hand, 0) AS on_hand
FROM reserved AS r
LEFT JOIN stock AS s USING (sku)
WHERE r.reserved > coalesce(s.on_hand, 0)
ORDER BY r.sku
