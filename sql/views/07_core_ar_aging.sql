-- AR aging per customer and currency: what is still owed, by days past due on the business date (the open items'
-- newest update), in the buckets current, 1-30, 31-60, 61-90 and over 90 days past due.
CREATE OR REPLACE VIEW core.v_ar_aging AS
WITH biz AS (SELECT coalesce(max(updated_at)::DATE, current_date) AS d FROM core.ar_open_items),
open AS (
    SELECT a.customer_id, a.currency, a.residual, date_diff('day', a.due_date, biz.d) AS days_past_due
    FROM core.ar_open_items a, biz WHERE a.residual > 0)
SELECT customer_id, currency,
       sum(residual) FILTER (WHERE days_past_due <= 0) AS current,
       sum(residual) FILTER (WHERE days_past_due BETWEEN 1 AND 30) AS past_due_1_30,
       sum(residual) FILTER (WHERE days_past_due BETWEEN 31 AND 60) AS past_due_31_60,
       sum(residual) FILTER (WHERE days_past_due BETWEEN 61 AND 90) AS past_due_61_90,
       sum(residual) FILTER (WHERE days_past_due > 90) AS past_due_over_90,
       sum(residual) AS total_open, count(*) AS open_items
FROM open GROUP BY ALL ORDER BY total_open DESC, customer_id, currency;
