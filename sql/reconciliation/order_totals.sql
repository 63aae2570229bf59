-- Live orders whose header does not match their lines: line count, subtotal, discount, tax (lines + shipping
-- tax), or order_total <> subtotal - discount + shipping + tax (the tax only when prices exclude it).
-- No rows = every header adds up to the cent.
-- severity: error
WITH l AS (
    SELECT order_id,
           count(*) AS n_lines,
           sum(line_amount) AS subtotal,
           count(line_amount) AS priced,
           sum(discount_amount) AS discount,
           sum(tax_amount) AS tax
    FROM core.order_lines
    GROUP BY order_id
)
SELECT o.order_id, o.line_count, l.n_lines, o.items_subtotal, l.subtotal, o.discount_total, l.discount,
       o.tax_total, l.tax, o.shipping_tax, o.shipping_total, o.prices_include_tax, o.order_total
FROM core.orders AS o
LEFT JOIN l USING (order_id)
WHERE l.n_lines IS NULL
   OR o.line_count <> l.n_lines
   OR o.discount_total <> l.discount
   OR o.tax_total <> l.tax + o.shipping_tax
   OR (l.priced = l.n_lines AND o.items_subtotal IS DISTINCT FROM l.subtotal)
   OR (o.order_total IS NOT NULL
       AND o.order_total <> o.items_subtotal - o.discount_total + o.shipping_total
                             + CASE WHEN o.prices_include_tax THEN 0 ELSE o.tax_total END)
ORDER BY o.order_id
