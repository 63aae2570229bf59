-- Every live order with its validation status, open holds and what is reserved for it: "where is my
-- order and why".
CREATE OR REPLACE VIEW core.v_order_status AS
SELECT o.order_id,
       o.channel,
       o.order_date,
       o.customer_id,
       o.order_total,
       s.status,
       s.since AS status_since,
       s.actor AS decided_by,
       s.reasons,
       h.holds,
       r.units_reserved,
       r.units_backordered
FROM core.orders AS o
LEFT JOIN core.order_status AS s USING (order_id)
LEFT JOIN (SELECT order_id, string_agg(reason_code, '|' ORDER BY reason_code) AS holds
           FROM core.order_holds GROUP BY order_id) AS h USING (order_id)
LEFT JOIN (SELECT order_id, sum(quantity_reserved) AS units_reserved, sum(quantity_backordered) AS units_backordered
           FROM core.reservations GROUP BY order_id) AS r USING (order_id)
