"""Credit check (rule ``credit``): exposure against the credit limit, overdue invoices. Pure and vectorised.

See :func:`check_credit` for the rules; the FIFO accumulation over a customer's orders of this evaluation is a
cumulative sum in the documented order priority (:func:`som_pipeline.validation.priority.order_priority`).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from som_pipeline import money
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, lazy
from som_pipeline.validation.priority import resolve_priority
from som_pipeline.validation.results import collect, emit, evidence, fmt, passes


def _credit_findings(orders: Frame, customers: Frame, open_items: Frame, committed: Frame | None, as_of: date,
                     cfg: ValidationConfig, priority: pl.LazyFrame, order_values: Frame | None) -> pl.LazyFrame:
    o = (lazy(orders).select("order_id", "customer_id", "currency", "order_total",
                             pl.col("payment_status").str.strip_chars().str.to_lowercase().alias("_pay"))
         .join(lazy(customers).select("customer_id", "credit_limit", pl.col("currency").alias("_c_cur"),
                                      pl.lit(True).alias("_c_known")), on="customer_id", how="left")
         .join(priority, on="order_id", how="left"))
    if order_values is not None:
        o = o.join(lazy(order_values).select("order_id", pl.col("value").alias("_est")), on="order_id", how="left")
    else:
        o = o.with_columns(pl.lit(None, dtype=money.MONEY).alias("_est"))
    o = o.with_columns(
        pl.col("_pay").is_in(list(cfg.prepaid_payment_statuses)).fill_null(False).alias("_prepaid"),
        pl.coalesce("order_total", "_est").alias("_value"),
        pl.col("order_total").is_null().alias("_estimated"),
    )
    prepaid = o.filter(pl.col("_prepaid"))
    prepaid_rows = prepaid.select(
        "order_id", pl.lit(None, dtype=pl.Int64).alias("line_no"), pl.lit("credit").alias("rule"),
        pl.lit("pass").alias("outcome"), pl.lit(None, dtype=pl.String).alias("reason_code"),
        fmt("prepaid at the channel (payment_status {}): credit check skipped", "_pay").alias("message"),
        evidence(prepaid=pl.lit(True), payment_status=pl.col("_pay")).alias("evidence"))
    o = o.filter(~pl.col("_prepaid"))
    not_eval = emit(o.filter(pl.col("_c_known").is_null()), rule="credit", reason="NOT_EVALUATED", cfg=cfg,
                    message=pl.lit("credit not checked: the customer is unknown"),
                    evidence=evidence(customer_id=pl.col("customer_id")))
    o = o.filter(pl.col("_c_known").is_not_null())

    items = lazy(open_items).join(o.select("customer_id", "_c_cur").unique(), on="customer_id", how="semi")
    cust_cur = lazy(customers).select("customer_id", pl.col("currency").alias("_c_cur"))
    items = items.join(cust_cur, on="customer_id", how="left")
    ar = (items.group_by("customer_id").agg(
        pl.col("amount_open").filter(pl.col("currency") == pl.col("_c_cur")).sum().alias("_ar"),
        (pl.col("currency") != pl.col("_c_cur")).sum().alias("_ar_other_cur")))
    comm = (lazy(committed).group_by("customer_id").agg(pl.col("amount").sum().cast(pl.Decimal(38, 2)).alias("_comm"))
            if committed is not None else pl.LazyFrame(schema={"customer_id": pl.String, "_comm": pl.Decimal(38, 2)}))
    o = o.with_columns(
        (pl.col("currency") == pl.col("_c_cur")).alias("_same_cur"),
    ).with_columns((pl.col("_same_cur") & pl.col("_value").is_not_null()).alias("_counted")).collect().lazy()

    unchecked = emit(
        o.filter(~pl.col("_counted")), rule="credit", reason="CREDIT_UNCHECKED", cfg=cfg,
        message=pl.when(~pl.col("_same_cur"))
        .then(fmt("order currency {} differs from the customer's {} (no FX table): exposure not checked",
                  "currency", "_c_cur"))
        .otherwise(pl.lit("order value unknown (unpriced lines without a price-list row): exposure not checked")),
        evidence=evidence(order_currency=pl.col("currency"), customer_currency=pl.col("_c_cur"),
                          order_value=pl.col("_value"), credit_limit=pl.col("credit_limit")),
    )
    zero = pl.lit(0).cast(pl.Decimal(38, 2))
    c = (o.filter(pl.col("_counted"))
         .join(ar, on="customer_id", how="left").join(comm, on="customer_id", how="left")
         .sort("priority")
         .with_columns(
             pl.col("_ar").cast(pl.Decimal(38, 2)).fill_null(zero),
             pl.col("_ar_other_cur").fill_null(0),
             pl.col("_comm").fill_null(zero),
             (pl.col("_value").cast(pl.Decimal(38, 2)).cum_sum().over("customer_id")
              - pl.col("_value").cast(pl.Decimal(38, 2))).alias("_earlier"))
         .with_columns((pl.col("_ar") + pl.col("_comm") + pl.col("_earlier") + pl.col("_value")).alias("_exposure"))
         .collect().lazy())
    exposure_ev = evidence(
        open_receivables=pl.col("_ar"), committed_unbilled=pl.col("_comm"), earlier_orders_in_run=pl.col("_earlier"),
        this_order=pl.col("_value"), this_order_estimated=pl.col("_estimated"), exposure=pl.col("_exposure"),
        credit_limit=pl.col("credit_limit"), currency=pl.col("currency"),
        open_items_in_other_currency=pl.col("_ar_other_cur"), priority=pl.col("priority"))
    over = emit(
        c.filter(pl.col("_exposure") > pl.col("credit_limit")), rule="credit", reason="CREDIT_LIMIT", cfg=cfg,
        message=fmt("exposure {} {} exceeds the credit limit {} (open {} + unbilled {} + earlier orders {} + "
                    "this order {})", "_exposure", "currency", "credit_limit", "_ar", "_comm", "_earlier",
                    "_value"),
        evidence=exposure_ev,
    )
    grace = cfg.credit_grace_days
    od = (items.with_columns((pl.lit(as_of) - pl.col("due_date")).dt.total_days().alias("_days"))
          .filter(pl.col("_days") > grace)
          .sort(["customer_id", "due_date", "invoice_id"])
          .group_by("customer_id").agg(
              pl.struct(invoice_id="invoice_id", due_date="due_date", days_overdue="_days",
                        amount_open="amount_open", currency="currency").alias("_invoices"),
              pl.col("_days").max().alias("_max_days"),
              pl.col("invoice_id").first().alias("_oldest")))
    overdue = emit(
        o.join(od, on="customer_id", how="inner"), rule="credit", reason="CREDIT_OVERDUE", cfg=cfg,
        message=fmt("{} invoice(s) overdue beyond terms + {} days grace (oldest {}, {} days past due)",
                    pl.col("_invoices").list.len(), pl.lit(grace), "_oldest", "_max_days"),
        evidence=evidence(as_of=pl.lit(as_of), grace_days=pl.lit(grace), invoices=pl.col("_invoices")),
    )
    findings = pl.concat([not_eval, unchecked, over, overdue]).collect()
    ok = passes(c, findings, rule="credit",
                message=fmt("exposure {} {} within the credit limit {}", "_exposure", "currency",
                            "credit_limit"),
                evidence=exposure_ev)
    return pl.concat([prepaid_rows, findings.lazy(), ok])


def check_credit(orders: Frame, customers: Frame, open_items: Frame, committed: Frame | None, as_of: date,
                 cfg: ValidationConfig, *, priority: Frame | None = None,
                 order_values: Frame | None = None) -> pl.DataFrame:
    """Credit limit and overdue invoices (rule ``credit``).

    - ``payment_status`` in ``cfg.prepaid_payment_statuses`` (Shopify ``paid``, Amazon): pass, "prepaid", no
      exposure added.
    - Exposure of order *i* = open receivables of the customer (sum of ``amount_open`` of open items in the
      customer's currency; items in another currency are counted in the evidence, not converted)
      + ``committed`` (``[customer_id, amount]``: approved-but-unbilled from earlier runs, customer currency)
      + the totals of the customer's earlier orders of this evaluation (by priority, FIFO: an earlier order
      still waiting counts) + this order's total. Above ``credit_limit`` -> ``CREDIT_LIMIT``.
    - An order whose ``order_total`` is null uses ``order_values`` (``[order_id, value]``, e.g.
      :func:`estimate_order_totals`); still unknown -> ``CREDIT_UNCHECKED`` (warn), and it adds no exposure.
    - Order currency != customer currency: ``CREDIT_UNCHECKED`` (warn; no FX table yet), no exposure added.
    - Any open item with ``due_date + grace_days < as_of`` -> ``CREDIT_OVERDUE`` on every non-prepaid order
      of the customer (evidence: invoice ids, due dates, days overdue).
    """
    return collect([_credit_findings(orders, customers, open_items, committed, as_of, cfg,
                                     resolve_priority(orders, customers, cfg, priority), order_values)])
