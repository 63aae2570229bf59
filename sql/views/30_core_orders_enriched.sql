-- Live orders with their customer (name, tier, country) and unit count: the analyst's main table.
-- customer_name is NULL when the channel's customer reference is not in ref.customer_aliases.
-- channel_total_difference: the channel's stated grand total - order_total (NULL when not stated; details in
-- sql/reconciliation/channel_totals.sql).
CREATE OR REPLACE VIEW core.v_orders AS
SELECT o.order_id,
       o.channel,
       o.channel_order_ref,
       o.version,
       o.order_ts,
       o.order_date,
       o.customer_id,
       c.name AS customer_name,
       c.tier AS customer_tier,
       o.customer_po,
       o.currency,
       o.ship_to_country,
       o.promo_code,
       o.payment_status,
       o.cancelled_at IS NOT NULL AS is_cancelled,
       o.line_count,
       u.units,
       o.items_subtotal,
       o.discount_total,
       o.tax_total,
       o.shipping_total,
       o.order_total,
       o.channel_total,
       o.channel_total - o.order_total AS channel_total_difference,
       o.unpriced_lines
FROM core.orders AS o
LEFT JOIN ref.customers AS c USING (customer_id)
LEFT JOIN (SELECT order_id, sum(quantity) AS units FROM core.order_lines GROUP BY order_id) AS u USING (order_id)
