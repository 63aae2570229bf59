-- Quarantined records by channel and reason code, with the first and last occurrence and one
-- example message: what to fix at the source, in order of volume.
CREATE OR REPLACE VIEW ops.v_quarantine_summary AS
SELECT channel,
       reason_code,
       count(*) AS records,
       count(DISTINCT source_file) AS files,
       min(quarantined_at) AS first_seen,
       max(quarantined_at) AS last_seen,
       any_value(message) AS example_message
FROM ops.quarantine
GROUP BY channel, reason_code
ORDER BY records DESC, channel, reason_code
