-- Orders, units and amounts per order date, channel and currency over ALL live orders (the
-- partitioned core.daily_sales covers the partition window only).
CREATE OR REPLACE VIEW core.v_sales_by_day AS
SELECT order_date,
       channel,
       currency,
       count(*) AS orders,
       sum(units) AS units,
       sum(order_total) AS order_total,
       count(*) FILTER (WHERE is_cancelled) AS cancelled_orders
FROM core.v_orders
GROUP BY order_date, channel, currency
ORDER BY order_date, channel, currency
