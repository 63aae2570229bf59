-- Invoices and credit notes whose totals are not the sums of their rounded lines (total = Σ line totals, a credit
-- note's restocking fee lines subtracted; tax = Σ line taxes, discount = Σ line discounts, restocking fee = Σ fee
-- lines), whose header does not add up (subtotal - discount + shipping + tax - restocking fee = total, unless the
-- prices include the tax), or whose fee exceeds the net of the items credited. No rows = every document adds up
-- to the cent.
-- severity: error
WITH l AS (
    SELECT invoice_id AS doc, sum(line_total) AS lt, sum(tax_amount) AS tx, sum(discount_amount) AS dc,
           0::DECIMAL(18, 2) AS fee
    FROM core.invoice_lines GROUP BY 1
    UNION ALL
    SELECT credit_note_id, sum(CASE WHEN kind = 'restocking_fee' THEN -line_total ELSE line_total END),
           sum(tax_amount), sum(discount_amount),
           coalesce(sum(line_total) FILTER (WHERE kind = 'restocking_fee'), 0)
    FROM core.credit_note_lines GROUP BY 1),
h AS (
    SELECT invoice_id AS doc, subtotal, discount_total, shipping_total, tax_total, total,
           0::DECIMAL(18, 2) AS restocking_fee_total FROM core.invoices
    UNION ALL
    SELECT credit_note_id, subtotal, discount_total, shipping_total, tax_total, total, restocking_fee_total
    FROM core.credit_notes)
SELECT h.doc, h.total, l.lt AS sum_of_lines, h.tax_total, l.tx AS sum_of_line_tax, h.restocking_fee_total,
       l.fee AS sum_of_fee_lines
FROM h LEFT JOIN l USING (doc)
WHERE l.lt IS DISTINCT FROM h.total OR l.tx IS DISTINCT FROM h.tax_total OR l.dc IS DISTINCT FROM h.discount_total
   OR l.fee IS DISTINCT FROM h.restocking_fee_total
   OR (h.subtotal - h.discount_total + h.shipping_total + h.tax_total - h.restocking_fee_total <> h.total
       AND h.subtotal - h.discount_total + h.shipping_total - h.restocking_fee_total <> h.total)
   OR h.restocking_fee_total > h.subtotal - h.discount_total
ORDER BY 1
