-- Live orders whose total as stated by the channel differs from the total we computed from the
-- lines. A difference means the channel applied something we do not model (an order-level fee, a
-- rounding rule): worth a look, not an error.
-- severity: warn
SELECT order_id, channel, currency, channel_total, order_total, channel_total - order_total AS difference
FROM core.orders
WHERE channel_total IS NOT NULL AND order_total IS NOT NULL AND channel_total <> order_total
ORDER BY abs(channel_total - order_total) DESC, order_id
