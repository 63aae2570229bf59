-- Per channel: files processed, records received / accepted / quarantined, quarantine rate, and
-- when the last file arrived. The first place to look when a feed misbehaves.
CREATE OR REPLACE VIEW ops.v_ingest_health AS
SELECT channel,
       count(*) AS files,
       sum(records_received) AS records_received,
       sum(records_accepted) AS records_accepted,
       sum(records_quarantined) AS records_quarantined,
       round(100.0 * sum(records_quarantined) / nullif(sum(records_received), 0), 2) AS quarantine_pct,
       sum(orders_accepted) AS orders_accepted,
       max(processed_at) AS last_processed_at
FROM ops.ingest_files
GROUP BY channel
ORDER BY channel
