"""Money back for accepted returns: computed from the invoice lines that billed the returned units. Pure, exact.

Rules (every amount MONEY, Decimal(18, 2); nothing is a float)
-------------------------------------------------------------
1. **Which invoice lines**: the units of an RMA line are taken from the item invoice lines of its order line
   **oldest first** (``issued_at`` when given, then ``invoice_id``, then invoice ``line_no``), each offering
   ``quantity - credited_qty`` units (billed, not yet credited). Within a batch the RMA lines of an order line
   take their units in order of ``requested_at`` (then ``rma_id``, ``rma_line_no``): interval arithmetic on
   cumulative sums, vectorised. Units no invoice line offers (not billed yet, or already credited) are not
   credited: :func:`refund_totals` shows them as ``uncredited_qty``.
2. **Amounts**: :func:`som_pipeline.billing.invoicing.credit_lines` with ``credit_qty`` = the units taken and
   ``credited_qty`` = the invoice line's units credited before (earlier batches + earlier RMA lines of this
   batch): the cumulative share of the line's extended, discount and tax, so returning a line in any number of
   pieces credits exactly what was billed, never more.
3. **Restocking fee** = ``round(net_amount x rate)`` (half away from zero, once per row), ``rate`` = the
   policy's ``restocking_fee_rate`` when the reason is not the seller's fault (:data:`~.rules.SELLER_FAULT`),
   else 0. The fee is kept from the money back, untaxed (no rule or policy taxes it: the fee is not a sale,
   and the tax credited is the returned units' own): ``refund_total = line_total - restocking_fee``, so
   ``restocking_fee + refund_total = line_total`` (what is credited) on every row. It is charged whatever the
   kind: a refund pays back ``refund_total``; a credit note credits ``line_total`` and keeps the fee in a
   ``restocking_fee`` line of the note (:func:`som_pipeline.billing.invoicing.restocking_fee_lines`, billing's
   rule 7: the rows' fees summed per invoice line, never rounded again), so the note's total is the
   ``Σ refund_total`` of its rows.
4. **Shipping**: the order's shipping invoice lines (``order_line_no`` null) are credited whole (what is left of
   them) on the RMA line that completes the order -- after it every billed item unit of the order is credited --
   when that line's reason is the seller's fault and the policy's ``refund_shipping_on_fault`` holds
   (:mod:`.rules`). No fee on shipping.
5. **Kind**: ``refund`` when the order was prepaid (``prepaid`` true: the money goes back to the payer),
   ``credit_note`` otherwise (null = false: B2B on account; the integrator posts the note).

Inputs
------
``accepted_lines``: rma_id, rma_line_no, order_id, line_no, quantity, reason, requested_at, channel,
customer_id, prepaid (the accepted frame of :func:`~.rules.judge_requests` plus ``prepaid``).
``invoice_lines`` (core.invoice_lines plus ``credited_qty``): invoice_id, line_no, order_id, order_line_no
(null: shipping), quantity (billed), extended_amount, discount_amount, net_amount, tax_rate, tax_amount,
line_total, tax_source, credited_qty (null = 0); optional issued_at, prices_include_tax.
``policies``: :data:`~.rules.POLICY_SCHEMA`.

Output of :func:`refund_lines` (:data:`REFUND_COLUMNS`), one row per (RMA line, invoice line): rma_id,
rma_line_no, order_id, order_line_no, invoice_id, invoice_line_no, line_kind (item | shipping), credit_qty,
credited_before, extended_amount, discount_amount, net_amount, tax_rate, tax_amount, line_total (credited),
tax_source, restocking_fee_rate, restocking_fee, refund_total, kind (refund | credit_note), reason.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.billing.invoicing import credit_lines
from som_pipeline.money import MONEY, RATE, mul, round_money
from som_pipeline.returns.rules import POLICY_SCHEMA, SELLER_FAULT, resolve_policies

REFUND_COLUMNS = ("rma_id", "rma_line_no", "order_id", "order_line_no", "invoice_id", "invoice_line_no",
                  "line_kind", "credit_qty", "credited_before", "extended_amount", "discount_amount", "net_amount",
                  "tax_rate", "tax_amount", "line_total", "tax_source", "restocking_fee_rate", "restocking_fee",
                  "refund_total", "kind", "reason")
TOTAL_COLUMNS = ("rma_id", "kind", "returned_qty", "credited_qty", "uncredited_qty", "item_credit",
                 "shipping_credit", "credited_total", "restocking_fee", "refund_total")
_MONEY_COLS = ("extended_amount", "discount_amount", "net_amount", "tax_amount", "line_total")
_RMA_ORDER = ["requested_at", "rma_id", "rma_line_no"]


def _invoice_lines(invoice_lines: pl.DataFrame) -> pl.DataFrame:
    il = invoice_lines.with_columns(
        pl.col("credited_qty").fill_null(0).cast(pl.Int64),
        pl.col("quantity").cast(pl.Int64).alias("billed_qty"),
        *(pl.col(c).cast(MONEY) for c in _MONEY_COLS),
        pl.col("tax_rate").cast(RATE),
    )
    if "issued_at" not in il.columns:
        il = il.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("issued_at"))
    if "prices_include_tax" not in il.columns:
        il = il.with_columns(pl.lit(False).alias("prices_include_tax"))
    return il.rename({"line_no": "invoice_line_no"})


def _finish(rows: pl.DataFrame) -> pl.DataFrame:
    """credit_lines, then the fee and the refund (rules 2, 3, 5)."""
    cl = credit_lines(rows.with_columns(pl.lit(None, MONEY).alias("credit_amount")))
    rate = pl.when(pl.col("_fee_applies")).then(pl.col("restocking_fee_rate")).otherwise(pl.lit(0)).cast(RATE)
    return (cl.with_columns(rate.alias("restocking_fee_rate"))
            .with_columns(round_money(mul(pl.col("net_amount"), 2, pl.col("restocking_fee_rate"), 6))
                          .alias("restocking_fee"))
            .with_columns((pl.col("line_total") - pl.col("restocking_fee")).cast(MONEY).alias("refund_total"),
                          pl.when(pl.col("prepaid").fill_null(False)).then(pl.lit("refund"))
                          .otherwise(pl.lit("credit_note")).alias("kind"))
            .select(REFUND_COLUMNS))


def refund_lines(accepted_lines: pl.DataFrame, invoice_lines: pl.DataFrame, policies: pl.DataFrame) -> pl.DataFrame:
    """What each accepted RMA line is worth, per invoice line that billed its units (rules in the module doc)."""
    keep = ["rma_id", "rma_line_no", "order_id", "line_no", "quantity", "reason", "requested_at", "channel",
            "customer_id", "prepaid"]
    rma = resolve_policies(accepted_lines.select(keep), policies.cast(POLICY_SCHEMA)).with_columns(
        pl.col("quantity").cast(pl.Int64), pl.col("reason").is_in(SELLER_FAULT).fill_null(False).alias("_fault"))
    rma = (rma.sort("order_id", "line_no", *_RMA_ORDER)
           .with_columns(pl.col("quantity").cum_sum().over("order_id", "line_no").alias("_r1"))
           .with_columns((pl.col("_r1") - pl.col("quantity")).alias("_r0")))
    il = _invoice_lines(invoice_lines)
    items = (il.filter(pl.col("order_line_no").is_not_null())
             .with_columns(pl.max_horizontal(pl.col("billed_qty") - pl.col("credited_qty"), pl.lit(0)).alias("_avail"))
             .sort("order_id", "order_line_no", "issued_at", "invoice_id", "invoice_line_no", nulls_last=True)
             .with_columns(pl.col("_avail").cum_sum().over("order_id", "order_line_no").alias("_a1"))
             .with_columns((pl.col("_a1") - pl.col("_avail")).alias("_a0")))
    pairs = rma.join(items, left_on=["order_id", "line_no"], right_on=["order_id", "order_line_no"], how="inner",
                     maintain_order="left_right")
    take = pl.min_horizontal("_a1", "_r1") - pl.max_horizontal("_a0", "_r0")
    earlier = pl.min_horizontal(pl.max_horizontal(pl.col("_r0") - pl.col("_a0"), pl.lit(0)), pl.col("_avail"))
    pairs = (pairs.with_columns(take.alias("credit_qty"), (pl.col("credited_qty") + earlier).alias("credited_before"))
             .filter(pl.col("credit_qty") > 0)
             .with_columns(pl.col("line_no").alias("order_line_no"), pl.col("credited_before").alias("credited_qty"),
                           pl.lit("item").alias("line_kind"), (~pl.col("_fault")).alias("_fee_applies")))
    item_rows = _finish(pairs)

    # shipping (rule 4): orders whose every billed item unit is credited once this batch is counted
    billed = items.group_by("order_id").agg(pl.col("billed_qty").sum().alias("_billed"),
                                             pl.col("credited_qty").sum().alias("_before"))
    now = pairs.group_by("order_id").agg(pl.col("credit_qty").sum().alias("_now"))
    complete = (billed.join(now, on="order_id").filter(pl.col("_before") + pl.col("_now") >= pl.col("_billed"))
                .select("order_id"))
    last = (pairs.join(complete, on="order_id").sort(*_RMA_ORDER)
            .group_by("order_id").agg(pl.all().last())
            .filter(pl.col("_fault") & pl.col("refund_shipping_on_fault"))
            .select("order_id", "rma_id", "rma_line_no", "reason", "prepaid", "restocking_fee_rate"))
    ship = (il.filter(pl.col("order_line_no").is_null())
            .join(last, on="order_id")
            .with_columns((pl.col("billed_qty") - pl.col("credited_qty")).alias("credit_qty"),
                          pl.col("credited_qty").alias("credited_before"), pl.lit("shipping").alias("line_kind"),
                          pl.lit(False).alias("_fee_applies"))
            .filter(pl.col("credit_qty") > 0))
    ship_rows = _finish(ship)
    return (pl.concat([item_rows, ship_rows.cast(item_rows.schema)])
            .sort("rma_id", "rma_line_no", "line_kind", "invoice_id", "invoice_line_no"))


def refund_totals(lines: pl.DataFrame, accepted_lines: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per RMA (:data:`TOTAL_COLUMNS`): item and shipping credit, credited total, fee, refund total (sums of the
    rounded rows, never rounded again) and, given ``accepted_lines``, units returned vs credited (the
    uncredited ones were not billed, or already credited)."""
    item = pl.col("line_kind") == "item"
    zero = pl.lit(0).cast(MONEY)
    tot = lines.group_by("rma_id").agg(
        pl.col("kind").first(),
        pl.when(item).then(pl.col("credit_qty")).otherwise(0).sum().cast(pl.Int64).alias("credited_qty"),
        pl.when(item).then(pl.col("line_total")).otherwise(zero).sum().cast(MONEY).alias("item_credit"),
        pl.when(~item).then(pl.col("line_total")).otherwise(zero).sum().cast(MONEY).alias("shipping_credit"),
        pl.col("line_total").sum().cast(MONEY).alias("credited_total"),
        pl.col("restocking_fee").sum().cast(MONEY).alias("restocking_fee"),
        pl.col("refund_total").sum().cast(MONEY).alias("refund_total"),
    )
    if accepted_lines is None:
        tot = tot.with_columns(pl.lit(None, pl.Int64).alias("returned_qty"))
    else:
        ret = accepted_lines.group_by("rma_id").agg(pl.col("quantity").sum().cast(pl.Int64).alias("returned_qty"),
                                                    pl.col("prepaid").first().alias("_prepaid"))
        tot = ret.join(tot, on="rma_id", how="left").with_columns(
            pl.coalesce("kind", pl.when(pl.col("_prepaid").fill_null(False)).then(pl.lit("refund"))
                        .otherwise(pl.lit("credit_note"))).alias("kind"),
            pl.col("credited_qty").fill_null(0),
            *(pl.col(c).fill_null(zero) for c in ("item_credit", "shipping_credit", "credited_total",
                                                  "restocking_fee", "refund_total")))
    return (tot.with_columns((pl.col("returned_qty") - pl.col("credited_qty")).alias("uncredited_qty"))
            .sort("rma_id").select(TOTAL_COLUMNS))
