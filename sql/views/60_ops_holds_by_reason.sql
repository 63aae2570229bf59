-- Open holds by reason: how many orders, their value, and the oldest one (a credit hold stuck in
-- someone's inbox shows up here as an old "oldest_since").
CREATE OR REPLACE VIEW ops.v_holds_by_reason AS
SELECT h.reason_code,
       count(DISTINCT h.order_id) AS orders,
       sum(o.order_total) AS order_value,
       min(h.since) AS oldest_since
FROM core.order_holds AS h
JOIN core.orders AS o USING (order_id)
GROUP BY h.reason_code
ORDER BY orders DESC, h.reason_code
