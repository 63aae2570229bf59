-- Channel order references with more than one live order, or live orders that are not the latest
-- version in the history. No rows = never two live orders for one channel ref.
-- severity: error
SELECT channel, channel_order_ref, count(*) AS live_orders, NULL::BIGINT AS version, NULL::BIGINT AS latest_version
FROM core.orders
GROUP BY channel, channel_order_ref
HAVING count(*) > 1
UNION ALL
SELECT o.channel, o.channel_order_ref, 1, o.version, v.latest
FROM core.orders AS o
JOIN (SELECT order_id, max(version) AS latest FROM core.order_versions GROUP BY order_id) AS v USING (order_id)
WHERE o.version <> v.latest
ORDER BY 1, 2
