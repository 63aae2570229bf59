-- Money received and where it went: per payment, Σ allocations + suspense + customer credit = the amount (nothing
-- lost, nothing invented), and no allocation beyond the payment. No rows = every payment is fully accounted for.
-- severity: error
WITH a AS (SELECT payment_id, sum(amount) AS allocated FROM core.payment_allocations GROUP BY 1),
c AS (SELECT payment_id, sum(amount) AS credit FROM core.customer_credits GROUP BY 1)
SELECT p.payment_id, p.source, p.amount, coalesce(a.allocated, 0) AS allocated, coalesce(s.amount, 0) AS suspense,
       coalesce(c.credit, 0) AS customer_credit
FROM core.payments p LEFT JOIN a USING (payment_id) LEFT JOIN c USING (payment_id)
LEFT JOIN core.payment_suspense s USING (payment_id)
WHERE coalesce(a.allocated, 0) > p.amount
   OR (p.source = 'bank' AND coalesce(a.allocated, 0) + coalesce(s.amount, 0) + coalesce(c.credit, 0) <> p.amount)
   OR (p.source = 'channel_capture' AND coalesce(a.allocated, 0) + coalesce(c.credit, 0) <> p.amount)
ORDER BY 1
