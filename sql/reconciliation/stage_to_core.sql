-- Staged order observations that reached neither a version in core.order_versions nor count as a
-- repeat of one (same order, same content hash). No rows = every captured order is in core.
-- severity: error
SELECT s.channel, s.channel_order_ref, s.capture_id, s.source_file
FROM stage.order_headers AS s
WHERE NOT EXISTS (
    SELECT 1 FROM core.order_versions AS v
    WHERE v.channel = s.channel AND v.channel_order_ref = s.channel_order_ref
      AND v.content_hash = s.content_hash
)
ORDER BY s.channel, s.channel_order_ref
