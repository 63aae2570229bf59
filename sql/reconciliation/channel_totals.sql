-- Live orders whose totals as stated by the channel's document differ from the totals computed from the
-- captured lines: the grand total (Shopify total_price, Amazon OrderTotal, X12 AMT*TT -> channel_total vs
-- order_total) and, where the document states them (Shopify), the subtotal after line discounts
-- (channel_subtotal vs items_subtotal - discount_total) and the tax (channel_tax_total vs tax_total). One row per
-- order with each difference (stated - computed; NULL where not stated or equal) and disagrees_on naming them.
-- X12 also states the number of PO1 lines (CTT01 -> channel_line_count vs line_count) and a hash total of their
-- quantities (CTT02 -> channel_quantity_total vs the sum of the captured quantities): a line lost in transfer.
-- channel_discount_total is not compared: Shopify's total_discounts also counts shipping discounts, which we net
-- into shipping_total (the total and subtotal comparisons cover every discount). A difference means
-- the channel applied something we do not capture (an order-level fee, a tip, duties, a rounding rule) or the
-- document is inconsistent: worth an analyst's look, never a reason to stop the run.
-- severity: warn
WITH q AS (
    SELECT order_id, sum(quantity) AS units FROM core.order_lines GROUP BY order_id
), d AS (
    SELECT o.order_id, channel, currency, order_total, channel_total,
           CASE WHEN channel_total <> order_total THEN channel_total - order_total END AS total_difference,
           CASE WHEN channel_line_count <> line_count THEN channel_line_count - line_count END AS line_count_difference,
           CASE WHEN channel_quantity_total <> q.units THEN channel_quantity_total - q.units END AS quantity_difference,
           CASE WHEN channel_subtotal <> items_subtotal - discount_total
                THEN channel_subtotal - (items_subtotal - discount_total) END AS subtotal_difference,
           CASE WHEN channel_tax_total <> tax_total THEN channel_tax_total - tax_total END AS tax_difference
    FROM core.orders o LEFT JOIN q ON q.order_id = o.order_id
)
SELECT order_id, channel, currency, channel_total, order_total, total_difference AS difference,
       subtotal_difference, tax_difference, line_count_difference, quantity_difference,
       concat_ws(', ', CASE WHEN total_difference IS NOT NULL THEN 'total' END,
                       CASE WHEN subtotal_difference IS NOT NULL THEN 'subtotal' END,
                       CASE WHEN tax_difference IS NOT NULL THEN 'tax' END,
                       CASE WHEN line_count_difference IS NOT NULL THEN 'line count' END,
                       CASE WHEN quantity_difference IS NOT NULL THEN 'quantity hash total' END) AS disagrees_on
FROM d
WHERE total_difference IS NOT NULL OR subtotal_difference IS NOT NULL OR tax_difference IS NOT NULL
   OR line_count_difference IS NOT NULL OR quantity_difference IS NOT NULL
ORDER BY abs(coalesce(total_difference, 0)) DESC, order_id
