-- Allocated units, lines and cost per warehouse and carrier service, with the share expected late:
-- where work goes and what it costs.
CREATE OR REPLACE VIEW core.v_allocation_summary AS
SELECT warehouse_id,
       carrier_id,
       service,
       count(*) AS lines,
       sum(quantity) AS units,
       sum(total_cost) AS total_cost,
       sum(lateness_penalty) AS lateness_penalty,
       count(*) FILTER (WHERE expected_delivery_date > promised_date) AS lines_late
FROM core.allocations
GROUP BY ALL
ORDER BY warehouse_id, carrier_id, service
