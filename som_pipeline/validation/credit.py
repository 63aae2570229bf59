"""Credit check (rule ``credit``): exposure against the credit limit, overdue invoices. Pure and vectorised.

See :func:`check_credit` for the rules; the FIFO accumulation over a customer's orders of this evaluation is a
cumulative sum in the documented order priority (:func:`som_pipeline.validation.priority.order_priority`) over
the orders the pass approves (a sequential scan only for the customers that cross their limit in the pass).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl

from som_pipeline import money
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, lazy
from som_pipeline.validation.priority import resolve_priority
from som_pipeline.validation.results import collect, emit, evidence, fmt, passes


def _approved_in_run(c: pl.DataFrame) -> pl.DataFrame:
    """``_earlier``: what this pass approves for the customer that counts against an order.

    ``c`` is sorted by priority and has ``_base`` (receivables + committed), ``_value``, ``credit_limit`` and
    ``_eligible`` (no hold or reject from another check). The pass approves an eligible order when it fits
    with the orders approved ahead of it; a refused order adds nothing, so a later, smaller one may still fit.
    - an eligible order counts the orders approved **ahead** of it;
    - an order held by another check counts **every** order the pass approves for the customer: it can only
      be released later, when all of them are committed -- exactly what a rerun sees.
    Fast path: a customer whose eligible orders all fit when every one counts is a cumulative sum. The
    customers that cross their limit in the pass (few) are scanned order by order.
    """
    zero = pl.lit(0).cast(pl.Decimal(38, 2))
    add = pl.when(pl.col("_eligible")).then(pl.col("_value")).otherwise(zero)
    c = c.with_columns((add.cum_sum().over("customer_id") - add).alias("_earlier"),
                       pl.col("_eligible").alias("_approved"))
    over = (pl.col("_base") + pl.col("_earlier") + pl.col("_value")) > pl.col("credit_limit")
    tight = c.filter(pl.col("_eligible") & over).select("customer_id").unique()
    if tight.height:
        scan = c.join(tight, on="customer_id", how="semi")
        earlier: list[Decimal] = []
        approved: list[bool] = []
        # per customer: the rows are in priority order, the tight customers' orders interleaved
        running: dict[str, Decimal] = {}
        for cust, base, value, limit, eligible in scan.select(
                "customer_id", "_base", "_value", "credit_limit", "_eligible").iter_rows():
            before = running.get(cust, Decimal(0))
            earlier.append(before)
            approved.append(eligible and base + before + value <= limit)
            if approved[-1]:
                running[cust] = before + value
        scan = scan.with_columns(pl.Series("_earlier", earlier, dtype=pl.Decimal(38, 2)),
                                 pl.Series("_approved", approved, dtype=pl.Boolean))
        c = c.join(tight, on="customer_id", how="anti").vstack(scan.select(c.columns)).sort("priority")
    total = pl.col("_value").filter(pl.col("_approved")).sum().over("customer_id").cast(pl.Decimal(38, 2))
    return c.with_columns(pl.when(pl.col("_eligible")).then(pl.col("_earlier")).otherwise(total.fill_null(zero))
                          .alias("_earlier")).drop("_approved")


def _credit_findings(orders: Frame, customers: Frame, open_items: Frame, committed: Frame | None, as_of: date,
                     cfg: ValidationConfig, priority: pl.LazyFrame, order_values: Frame | None,
                     blocked: Frame | None = None) -> pl.LazyFrame:
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
    grace = cfg.credit_grace_days
    od = (items.with_columns((pl.lit(as_of) - pl.col("due_date")).dt.total_days().alias("_days"))
          .filter(pl.col("_days") > grace)
          .sort(["customer_id", "due_date", "invoice_id"])
          .group_by("customer_id").agg(
              pl.struct(invoice_id="invoice_id", due_date="due_date", days_overdue="_days",
                        amount_open="amount_open", currency="currency").alias("_invoices"),
              pl.col("_days").max().alias("_max_days"),
              pl.col("invoice_id").first().alias("_oldest"))).collect()
    overdue_holds = pl.lit(cfg.outcome("CREDIT_OVERDUE") == "fail")
    held_elsewhere = (lazy(blocked).select("order_id").unique() if blocked is not None
                      else pl.LazyFrame(schema={"order_id": pl.String}))
    c = (o.filter(pl.col("_counted"))
         .join(ar, on="customer_id", how="left").join(comm, on="customer_id", how="left")
         .join(held_elsewhere.with_columns(pl.lit(True).alias("_blocked")), on="order_id", how="left")
         .sort("priority")
         .with_columns(
             pl.col("_ar").cast(pl.Decimal(38, 2)).fill_null(zero),
             pl.col("_ar_other_cur").fill_null(0),
             pl.col("_comm").fill_null(zero),
             pl.col("_value").cast(pl.Decimal(38, 2)),
             # approved in this pass only if no other check holds it and the customer has nothing overdue
             (pl.col("_blocked").is_null()
              & ~(pl.col("customer_id").is_in(od["customer_id"].implode()) & overdue_holds))
             .alias("_eligible"))
         .with_columns((pl.col("_ar") + pl.col("_comm")).alias("_base"))
         .collect())
    c = (_approved_in_run(c)
         .with_columns((pl.col("_base") + pl.col("_earlier") + pl.col("_value")).alias("_exposure"))
         .lazy())
    exposure_ev = evidence(
        open_receivables=pl.col("_ar"), committed_unbilled=pl.col("_comm"), approved_in_run=pl.col("_earlier"),
        this_order=pl.col("_value"), this_order_estimated=pl.col("_estimated"), exposure=pl.col("_exposure"),
        credit_limit=pl.col("credit_limit"), currency=pl.col("currency"),
        open_items_in_other_currency=pl.col("_ar_other_cur"), priority=pl.col("priority"))
    over = emit(
        c.filter(pl.col("_exposure") > pl.col("credit_limit")), rule="credit", reason="CREDIT_LIMIT", cfg=cfg,
        message=fmt("exposure {} {} exceeds the credit limit {} (open {} + unbilled {} + approved in this run "
                    "{} + this order {})", "_exposure", "currency", "credit_limit", "_ar", "_comm", "_earlier",
                    "_value"),
        evidence=exposure_ev,
    )
    overdue = emit(
        o.join(od.lazy(), on="customer_id", how="inner"), rule="credit", reason="CREDIT_OVERDUE", cfg=cfg,
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
                 order_values: Frame | None = None, screened: Frame | None = None) -> pl.DataFrame:
    """Credit limit and overdue invoices (rule ``credit``).

    - ``payment_status`` in ``cfg.prepaid_payment_statuses`` (Shopify ``paid``, Amazon): pass, "prepaid", no
      exposure added.
    - Exposure of order *i* = open receivables of the customer (sum of ``amount_open`` of open items in the
      customer's currency; items in another currency are counted in the evidence, not converted)
      + ``committed`` (``[customer_id, amount]``: approved-but-unbilled from earlier runs, customer currency)
      + what this evaluation **approves** for the customer (``approved_in_run``): the pass walks the
      customer's orders by priority and approves one when no screening check that ran before credit holds or
      rejects it (``screened``: their findings; outcome ``fail``), the customer has nothing overdue, and it
      fits with the orders approved ahead of it (a refused order adds nothing, so a later smaller one may
      still fit). Such an order counts the orders approved ahead of it; an order held by another check counts
      every order the pass approves for the customer (it can only be released once they are all committed)
      + this order's total. Above ``credit_limit`` -> ``CREDIT_LIMIT``. So a rerun, where the approved
      orders come back as ``committed`` and the held ones are evaluated again, decides them exactly as the
      first pass did. Not anticipated in the pass: a manual release in the same run, and a hold from the
      later ``reserve`` stage (``WAIT_SHIP_COMPLETE`` configured as a hold).
    - An order whose ``order_total`` is null uses ``order_values`` (``[order_id, value]``, e.g.
      :func:`estimate_order_totals`); still unknown -> ``CREDIT_UNCHECKED`` (warn), and it adds no exposure.
    - Order currency != customer currency: ``CREDIT_UNCHECKED`` (warn; no FX table yet), no exposure added.
    - Any open item with ``due_date + grace_days < as_of`` -> ``CREDIT_OVERDUE`` on every non-prepaid order
      of the customer (evidence: invoice ids, due dates, days overdue).
    """
    blocked = (lazy(screened).filter(pl.col("outcome") == "fail").select("order_id")
               if screened is not None else None)
    return collect([_credit_findings(orders, customers, open_items, committed, as_of, cfg,
                                     resolve_priority(orders, customers, cfg, priority), order_values, blocked)])
