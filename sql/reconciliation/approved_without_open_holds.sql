-- Orders whose status contradicts their holds: APPROVED (or REJECTED, CANCELLED) with an open hold,
-- or ON_HOLD without one. No rows = no approved order reaches the warehouse with a hold open.
-- severity: error
SELECT s.order_id, s.status, s.version, count(h.reason_code) AS open_holds, string_agg(h.reason_code, '|') AS holds
FROM core.order_status AS s
LEFT JOIN core.order_holds AS h USING (order_id)
GROUP BY s.order_id, s.status, s.version
HAVING (s.status <> 'ON_HOLD' AND count(h.reason_code) > 0)
    OR (s.status = 'ON_HOLD' AND count(h.reason_code) = 0)
ORDER BY s.order_id
