-- Stock per warehouse and SKU, derived from the stock ledger (core.stock_ledger): on hand, reserved for
-- released pick tasks, picked and not yet shipped, and available (on hand - reserved - picked). The pipeline
-- reads it too (validation and allocation plan on it), so it is created with the tables. What each movement
-- kind moves: som_pipeline/fulfilment/ledger.py (EFFECTS, which a test holds equal to this) and
-- docs/stock_ledger.md.
CREATE OR REPLACE VIEW core.v_stock AS
WITH b AS (
    SELECT warehouse_id,
           sku,
           sum(CASE WHEN kind IN ('opening', 'receipt', 'transfer_in', 'transfer_out', 'return_receipt', 'scrap',
                                  'adjustment', 'ship') THEN qty_delta ELSE 0 END)::BIGINT AS on_hand,
           sum(CASE WHEN kind IN ('reserve', 'release', 'pick') THEN qty_delta ELSE 0 END)::BIGINT AS reserved,
           sum(CASE kind WHEN 'pick' THEN -qty_delta WHEN 'putaway' THEN qty_delta WHEN 'ship' THEN qty_delta
                         ELSE 0 END)::BIGINT AS picked,
           max(occurred_at) AS last_movement_at
    FROM core.stock_ledger
    GROUP BY ALL
)
SELECT warehouse_id, sku, on_hand, reserved, picked, on_hand - reserved - picked AS available, last_movement_at
FROM b
