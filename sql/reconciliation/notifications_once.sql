-- Customer notifications told twice: more than one message of the same kind for a shipment (the idempotency key
-- and the outbox must keep a rerun from sending again). No rows = every message went out once.
-- severity: error
SELECT shipment_id, kind, count(*) AS messages
FROM ops.notifications
GROUP BY ALL
HAVING count(*) > 1
ORDER BY 1, 2
