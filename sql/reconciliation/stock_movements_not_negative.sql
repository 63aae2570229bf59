-- Movements after which on hand or available was negative, in the order they happened (core.v_stock_movements):
-- a backdated posting, or a count that found less than was already promised. No rows = the history never
-- went below zero.
-- severity: warn
SELECT movement_id, warehouse_id, sku, kind, qty_delta, occurred_at, qty_after, available_after, reason
FROM core.v_stock_movements
WHERE qty_after < 0 OR available_after < 0
ORDER BY warehouse_id, sku, occurred_at, seq
