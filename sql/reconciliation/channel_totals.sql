-- Live orders whose totals as stated by the channel's document differ from the totals computed from the
-- captured lines: the grand total (Shopify total_price, Amazon OrderTotal, X12 AMT*TT -> channel_total vs
-- order_total) and, where the document states them (Shopify), the subtotal after line discounts
-- (channel_subtotal vs items_subtotal - discount_total) and the tax (channel_tax_total vs tax_total). One row per
-- order with each difference (stated - computed; NULL where not stated or equal) and disagrees_on naming them.
-- channel_discount_total is not compared: Shopify's total_discounts also counts shipping discounts, which we net
-- into shipping_total (the total and subtotal comparisons cover every discount). A difference means
-- the channel applied something we do not capture (an order-level fee, a tip, duties, a rounding rule) or the
-- document is inconsistent: worth an analyst's look, never a reason to stop the run.
-- severity: warn
WITH d AS (
    SELECT order_id, channel, currency, order_total, channel_total,
           CASE WHEN channel_total <> order_total THEN channel_total - order_total END AS total_difference,
           CASE WHEN channel_subtotal <> items_subtotal - discount_total
                THEN channel_subtotal - (items_subtotal - discount_total) END AS subtotal_difference,
           CASE WHEN channel_tax_total <> tax_total THEN channel_tax_total - tax_total END AS tax_difference
    FROM core.orders
)
SELECT order_id, channel, currency, channel_total, order_total, total_difference AS difference,
       subtotal_difference, tax_difference,
       concat_ws(', ', CASE WHEN total_difference IS NOT NULL THEN 'total' END,
                       CASE WHEN subtotal_difference IS NOT NULL THEN 'subtotal' END,
                       CASE WHEN tax_difference IS NOT NULL THEN 'tax' END) AS disagrees_on
FROM d
WHERE total_difference IS NOT NULL OR subtotal_difference IS NOT NULL OR tax_difference IS NOT NULL
ORDER BY abs(coalesce(total_difference, 0)) DESC, order_id
