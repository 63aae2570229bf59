-- Open items that disagree with the documents they derive from: residual <> invoiced - credited - paid - written
-- off, recomputed here from the tables. No rows = the receivables (what the credit check reads) are the truth.
-- severity: error
WITH cr AS (SELECT invoice_id AS item_id, sum(total) AS credited FROM core.credit_notes GROUP BY 1),
pa AS (SELECT item_id, sum(amount) AS paid FROM core.payment_allocations GROUP BY 1),
wo AS (SELECT item_id, sum(amount) AS written_off FROM core.write_offs GROUP BY 1),
base AS (SELECT invoice_id AS item_id, total AS amount FROM core.invoices
         UNION ALL SELECT invoice_id, amount_open FROM ref.open_items)
SELECT a.item_id, a.residual, b.amount - coalesce(cr.credited, 0) - coalesce(pa.paid, 0) - coalesce(wo.written_off, 0)
       AS expected
FROM core.ar_open_items a JOIN base b USING (item_id) LEFT JOIN cr USING (item_id) LEFT JOIN pa USING (item_id)
LEFT JOIN wo USING (item_id)
WHERE a.residual <> b.amount - coalesce(cr.credited, 0) - coalesce(pa.paid, 0) - coalesce(wo.written_off, 0)
ORDER BY 1
