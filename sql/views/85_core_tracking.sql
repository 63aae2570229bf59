-- Shipments on the road and delivered: where each is, its ETA and late risk, its open exceptions (one row per
-- shipment), for the customer-care queue.
CREATE OR REPLACE VIEW core.v_shipment_tracking AS
SELECT s.shipment_id, s.order_id, s.carrier_id, s.service, s.milestone, s.milestone_at, s.last_event_at,
       s.promised_date, s.eta_p50, s.eta_p90, s.p_late, s.delivered_at, s.signed_by,
       (SELECT string_agg(x.kind, '|' ORDER BY x.kind) FROM core.shipment_exceptions x
        WHERE x.shipment_id = s.shipment_id AND x.resolved_at IS NULL) AS open_exceptions
FROM core.shipment_status s
