-- Ship-complete orders with a line split into a shipment now and a backorder (or substituted): a
-- ship-complete order waits until it can ship whole. No rows = never split.
-- severity: error
SELECT r.order_id, r.line_no, r.sku, r.decision
FROM core.reservations AS r
JOIN core.orders AS o USING (order_id)
LEFT JOIN ref.customers AS c ON c.customer_id = o.customer_id
WHERE (o.ship_complete OR coalesce(c.ship_complete, false))
  AND r.decision IN ('SPLIT', 'SUBSTITUTE')
ORDER BY r.order_id, r.line_no
