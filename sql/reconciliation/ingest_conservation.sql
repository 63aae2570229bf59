-- Files whose records do not conserve: received must equal accepted + quarantined, and the
-- quarantine table must hold exactly the quarantined count for the file. No rows = nothing lost.
-- Parameter $channel: a channel name, or NULL for every channel.
-- severity: error
SELECT f.channel,
       f.source_file,
       f.sha256,
       f.records_received,
       f.records_accepted,
       f.records_quarantined,
       coalesce(q.n, 0) AS quarantine_rows
FROM ops.ingest_files AS f
LEFT JOIN (SELECT file_sha256, count(*) AS n FROM ops.quarantine GROUP BY file_sha256) AS q
       ON q.file_sha256 = f.sha256
WHERE ($channel IS NULL OR f.channel = $channel)
  AND (f.records_received <> f.records_accepted + f.records_quarantined
       OR coalesce(q.n, 0) <> f.records_quarantined)
ORDER BY f.channel, f.source_file
