-- RETURN credit notes that do not credit what core.refunds says the customer gets back for them: per note,
-- total = Σ refund_total (line total - restocking fee) and restocking_fee_total = Σ restocking_fee of the refund
-- rows (kind credit_note) linked to it; and refund rows naming a credit note that does not exist. No rows = the
-- fee recorded for a B2B return is the fee the note keeps, to the cent.
-- severity: error
WITH rf AS (SELECT credit_note_id, sum(refund_total) AS refunded, sum(restocking_fee) AS fee FROM core.refunds
            WHERE kind = 'credit_note' AND credit_note_id IS NOT NULL GROUP BY 1)
SELECT credit_note_id, n.total, rf.refunded,
       n.restocking_fee_total, rf.fee AS refunds_fee
FROM (SELECT * FROM core.credit_notes WHERE reason = 'RETURN') n FULL JOIN rf USING (credit_note_id)
WHERE rf.refunded IS DISTINCT FROM n.total OR rf.fee IS DISTINCT FROM n.restocking_fee_total
ORDER BY 1
