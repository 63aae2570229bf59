-- Warehouse x SKU balances of the stock ledger (core.v_stock) below zero: more units out than in (on hand), or
-- more promised to pick tasks and picked than on hand (available). No rows = every balance is possible.
-- severity: error
SELECT warehouse_id, sku, on_hand, reserved, picked, available
FROM core.v_stock
WHERE on_hand < 0 OR reserved < 0 OR picked < 0 OR available < 0
ORDER BY 1, 2
