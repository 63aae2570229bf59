-- Shipments whose status is behind a milestone their own events reached (a late or out-of-order event must never
-- move a shipment backwards, and progress must never be lost). EXCEPTION is not a step on the way.
-- No rows = every status is the furthest milestone its events show.
-- severity: error
WITH rank(milestone, r) AS (
    VALUES ('LABEL_CREATED', 0), ('PICKED_UP', 1), ('IN_TRANSIT', 2), ('OUT_FOR_DELIVERY', 3),
           ('AVAILABLE_FOR_PICKUP', 4), ('DELIVERED', 5)
), best AS (
    SELECT e.shipment_id, max(r.r) AS reached FROM core.tracking_events e JOIN rank r USING (milestone) GROUP BY 1
)
SELECT s.shipment_id, s.milestone, r.r AS status_rank, b.reached
FROM core.shipment_status s JOIN rank r USING (milestone) JOIN best b USING (shipment_id)
WHERE r.r <> b.reached
ORDER BY 1
