-- Every stock movement with the balances after it (qty_after = on hand after the movement; reserved_after,
-- available_after), in the order they happened (occurred_at, then posting order seq).
-- Answers "how did this SKU's stock get here" line by line.
CREATE OR REPLACE VIEW core.v_stock_movements AS
SELECT m.*,
       (sum(CASE WHEN kind IN ('opening', 'receipt', 'transfer_in', 'transfer_out', 'return_receipt', 'scrap',
                              'adjustment', 'ship') THEN qty_delta ELSE 0 END) OVER w)::BIGINT AS qty_after,
       (sum(CASE WHEN kind IN ('reserve', 'release', 'pick') THEN qty_delta ELSE 0 END) OVER w)::BIGINT AS reserved_after,
       (sum(CASE WHEN kind IN ('opening', 'receipt', 'transfer_in', 'transfer_out', 'return_receipt', 'scrap',
                              'adjustment') THEN qty_delta
                WHEN kind IN ('reserve', 'release', 'putaway') THEN -qty_delta
                ELSE 0 END) OVER w)::BIGINT AS available_after
FROM core.stock_ledger AS m
WINDOW w AS (PARTITION BY warehouse_id, sku ORDER BY occurred_at, seq
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
