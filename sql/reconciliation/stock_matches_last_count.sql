-- Warehouse x SKU where the ledger's on hand is not the last count (ref.inventory) plus the movements that
-- happened after it: a movement backdated to before the count but posted after it (a late receipt file the
-- counter had already seen on the shelf, say). No rows = the ledger agrees with the last count.
-- severity: warn
WITH after_count AS (
    SELECT i.warehouse_id, i.sku, i.on_hand AS counted,
           coalesce(sum(m.qty_delta) FILTER (WHERE m.occurred_at > i.as_of AND m.kind IN ('opening', 'receipt',
               'transfer_in', 'transfer_out', 'return_receipt', 'scrap', 'adjustment', 'ship')), 0) AS moved_since
    FROM ref.inventory AS i
    LEFT JOIN core.stock_ledger AS m USING (warehouse_id, sku)
    WHERE EXISTS (SELECT 1 FROM ops.watermarks w, ops.watermarks r
                  WHERE w.consumer = 'stock.snapshot' AND r.consumer = 'ref.inventory' AND w.fingerprint = r.fingerprint)
    GROUP BY ALL
)
SELECT a.warehouse_id, a.sku, a.counted, a.moved_since, coalesce(s.on_hand, 0) AS ledger_on_hand
FROM after_count AS a
LEFT JOIN core.v_stock AS s USING (warehouse_id, sku)
WHERE a.counted + a.moved_since <> coalesce(s.on_hand, 0)
ORDER BY 1, 2
