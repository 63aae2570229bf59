-- Invoices and credit notes whose totals are not the sums of their rounded lines (total = Σ line totals, tax =
-- Σ line taxes, discount = Σ line discounts), or whose header does not add up (subtotal - discount + shipping +
-- tax = total, unless the prices include the tax). No rows = every document adds up to the cent.
-- severity: error
WITH l AS (
    SELECT invoice_id AS doc, sum(line_total) AS lt, sum(tax_amount) AS tx, sum(discount_amount) AS dc
    FROM core.invoice_lines GROUP BY 1
    UNION ALL
    SELECT credit_note_id, sum(line_total), sum(tax_amount), sum(discount_amount) FROM core.credit_note_lines
    GROUP BY 1),
h AS (
    SELECT invoice_id AS doc, subtotal, discount_total, shipping_total, tax_total, total FROM core.invoices
    UNION ALL
    SELECT credit_note_id, subtotal, discount_total, shipping_total, tax_total, total FROM core.credit_notes)
SELECT h.doc, h.total, l.lt AS sum_of_lines, h.tax_total, l.tx AS sum_of_line_tax
FROM h LEFT JOIN l USING (doc)
WHERE l.lt IS DISTINCT FROM h.total OR l.tx IS DISTINCT FROM h.tax_total OR l.dc IS DISTINCT FROM h.discount_total
   OR (h.subtotal - h.discount_total + h.shipping_total + h.tax_total <> h.total
       AND h.subtotal - h.discount_total + h.shipping_total <> h.total)
ORDER BY 1
