"""Invoicing: every shipped unit billed once, exact to the cent. Pure functions over Polars frames.

What is billed
--------------
An invoice covers one shipment (``basis = 'shipment'``: issued when it ships; ``'delivery'``: when tracking
says it was delivered). Its item lines are the shipment's units of each order line; the order's shipping charge
goes on the order's first invoice. A unit is never billed twice: each order line's units are numbered
cumulatively over its invoices in the order they are issued (``prior_qty`` units before this batch, then the
batch's shipments by basis time and shipment id), and units beyond the ordered quantity are not billed
(:func:`price_lines` reports them).

The rounding rules (one place; also in ``docs/billing.md``)
-----------------------------------------------------------
Amounts are decimals; products are exact (:func:`som_pipeline.money.mul` widens the scale before multiplying);
every rounding is **half away from zero to the cent, once, at the step named here**:

1. **Extended amount** of an invoice line = ``A(c1) - A(c0)``, where ``A(c) = round(line_amount x c / Q)``
   is the order line's extended amount (``line_amount``: quantity x unit price rounded once at capture, or what
   the channel stated) pro rata to the first ``c`` of its ``Q`` ordered units, and ``c0 / c1`` the line's
   cumulative units billed before / after this invoice. The pieces of a line always add up to the order
   line's own amount, whatever the split into shipments; one invoice for the whole line bills exactly
   ``line_amount``.
2. **Discount**: the same cumulative share of the order line's ``discount_amount`` (which capture computed
   once as ``round(discount_rate x line_amount)`` for a rate discount, or the channel's absolute discount).
3. **Net** = extended - discount (exact: cents minus cents).
4. **Tax**: where the channel stated the tax (Shopify, Amazon: ``tax_source = 'channel'``), the cumulative share
   of the order line's ``tax_amount``; else the jurisdiction rate (``ref.tax_rates``, resolved by the service
   for the ship-to address, the product's tax class and the invoice date: ``tax_source = 'table'``) times the
   line's net, rounded once per invoice line: ``round(net x rate)``.
5. **Line total** = net + tax (``prices_include_tax``: the prices already hold the tax, so line total = net
   and the tax is the part of it that is tax).
6. **Invoice totals** are plain sums of the rounded lines (never rounded again): total = Σ line totals.
7. **Restocking fee on a credit note** (``RETURN`` notes, :func:`restocking_fee_lines`): the fee the returns
   rules kept (``returns.money`` rule 3: ``round(net x rate)`` per returned piece, half away from zero, once) is
   a line of its own, kind ``restocking_fee``, next to the item line it is charged on (same invoice line):
   quantity 0, **untaxed** (tax 0, no rate), its amount stored **positive** in extended = net = line total --
   the kind makes it a deduction, as "less restocking fee" on a paper credit memo. It never exceeds the net
   credited on that line. The note's ``restocking_fee_total`` = Σ fee lines and its ``total`` = Σ line totals
   of the credited (item, shipping) lines - ``restocking_fee_total``: what the customer is credited, the fee
   kept, exactly.

Beside the rounded figures each line keeps the **unrounded** ones the rates imply: ``net_unrounded =
extended x (1 - discount_rate)`` for a rate discount (else net) and ``tax_unrounded = net_unrounded x rate``
for a rate-based tax (else tax). Summed over TPC-H's lineitem they reproduce Q1's ``sum_disc_price`` and
``sum_charge`` exactly (``tests/test_billing_invoicing.py``, ``bench/bench_invoicing.py``).

Numbers
-------
:func:`number_documents`: gapless and sequential per legal entity, document kind and year
(``INV-US01-2026-000001``). The service assigns them inside the transaction that writes the invoices and
advances the counters (``ops.document_numbers``), so a killed run leaves no gap and reuses no number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from som_pipeline.money import MONEY, RATE, cents_to_money, mul, round_money, share_cents, to_cents

#: Columns :func:`price_lines` needs (extra columns are carried through).
PRICE_INPUT = ("shipment_id", "order_id", "line_no", "quantity", "ordered_qty", "prior_qty", "basis_at",
               "line_amount", "discount_amount", "discount_rate", "tax_source", "tax_amount", "tax_rate",
               "prices_include_tax")
KIND_PREFIX: Mapping[str, str] = {"invoice": "INV", "credit_note": "CN"}


@dataclass(frozen=True)
class Priced:
    lines: pl.DataFrame  # the billable lines, priced
    excess: pl.DataFrame  # shipment lines with units beyond the ordered quantity: shipment_id, order_id, line_no, units


def price_lines(todo: pl.DataFrame) -> Priced:
    """Price the shipment lines of a batch (columns :data:`PRICE_INPUT`; ``tax_rate``: the channel's rate for
    ``tax_source = 'channel'``, the table's for ``'table'``). Adds ``c0, c1, billed_qty, extended_amount,
    discount_amount, net_amount, tax_amount, line_total, net_unrounded, tax_unrounded`` by the module's rules
    (the input's ``line_amount / discount_amount / tax_amount`` are the order line's; the output's are this
    invoice line's)."""
    q = pl.col("ordered_qty").cast(pl.Int64)
    df = (todo.sort("order_id", "line_no", "basis_at", "shipment_id")
          .with_columns((pl.col("prior_qty").cast(pl.Int64)
                         + pl.col("quantity").cast(pl.Int64).cum_sum().over("order_id", "line_no")).alias("_cum"))
          .with_columns((pl.col("_cum") - pl.col("quantity")).alias("c0"), pl.col("_cum").alias("c1")))
    c0, c1 = pl.min_horizontal("c0", q), pl.min_horizontal("c1", q)
    excess = df.filter(pl.col("c1") > q).select(
        "shipment_id", "order_id", "line_no", (pl.col("c1") - pl.max_horizontal("c0", q)).alias("units"))

    def cumulative(col: str) -> pl.Expr:
        cents = to_cents(pl.col(col))
        return cents_to_money(share_cents(cents, c1, q) - share_cents(cents, c0, q))

    df = df.with_columns(
        (c1 - c0).alias("billed_qty"),
        cumulative("line_amount").alias("_ext"),
        cumulative("discount_amount").alias("_disc"),
        cumulative("tax_amount").alias("_ctax"),
    ).filter(pl.col("billed_qty") > 0)
    net = (pl.col("_ext") - pl.col("_disc")).cast(MONEY)
    rate = pl.col("tax_rate").cast(RATE)
    channel = pl.col("tax_source") == "channel"
    tax = pl.when(channel).then(pl.col("_ctax")).otherwise(round_money(mul(net, 2, rate, 6)).fill_null(0))
    df = df.with_columns(net.alias("net_amount")).with_columns(tax.cast(MONEY).alias("_tax"))
    rate_disc = pl.col("discount_rate").is_not_null()
    net_u = pl.when(rate_disc).then(
        mul(pl.col("_ext"), 2, (1 - pl.col("discount_rate").cast(pl.Decimal(38, 6))), 6)
    ).otherwise(pl.col("net_amount").cast(pl.Decimal(38, 8))).cast(pl.Decimal(38, 8))
    df = df.with_columns(net_u.alias("net_unrounded"))
    tax_u = pl.when(~channel & rate.is_not_null()).then(mul(pl.col("net_unrounded"), 8, rate, 6)).otherwise(
        pl.col("_tax").cast(pl.Decimal(38, 14))).cast(pl.Decimal(38, 14))
    incl = pl.col("prices_include_tax").fill_null(False)
    df = df.with_columns(
        tax_u.alias("tax_unrounded"),
        pl.col("_ext").alias("extended_amount"), pl.col("_disc").alias("discount_amount"),
        pl.col("_tax").alias("tax_amount"),
        pl.when(incl).then(pl.col("net_amount")).otherwise(pl.col("net_amount") + pl.col("_tax")).cast(MONEY)
        .alias("line_total"),
    ).drop("_cum", "_ext", "_disc", "_ctax", "_tax", "line_amount")
    return Priced(df, excess)


def shipping_lines(first: pl.DataFrame) -> pl.DataFrame:
    """The order's shipping charge on its first invoice. ``first``: shipment_id, order_id, shipping_total,
    shipping_tax (the channel's), tax_source, shipping_rate (the table's rate for tax class 'shipping', null:
    not taxed), prices_include_tax. One 'shipping' line per row with a positive charge; tax by rule 4 (channel:
    its stated shipping tax; table: round(charge x rate))."""
    channel = pl.col("tax_source") == "channel"
    amt = pl.col("shipping_total").cast(MONEY)
    tax = pl.when(channel).then(pl.col("shipping_tax").cast(MONEY)).otherwise(
        round_money(mul(amt, 2, pl.col("shipping_rate").cast(RATE), 6)).fill_null(0)).cast(MONEY)
    incl = pl.col("prices_include_tax").fill_null(False)
    return (first.filter(amt > 0)
            .with_columns(amt.alias("extended_amount"), pl.lit(0).cast(MONEY).alias("discount_amount"),
                          amt.alias("net_amount"), tax.alias("tax_amount"),
                          pl.when(channel).then(None).otherwise(pl.col("shipping_rate").cast(RATE)).alias("tax_rate"))
            .with_columns(pl.when(incl).then(pl.col("net_amount")).otherwise(pl.col("net_amount")
                                                                              + pl.col("tax_amount")).cast(MONEY)
                          .alias("line_total"),
                          pl.col("net_amount").cast(pl.Decimal(38, 8)).alias("net_unrounded"),
                          pl.col("tax_amount").cast(pl.Decimal(38, 14)).alias("tax_unrounded")))


#: The credit-note line kind that reduces the credit (rule 7); invoices never have it.
FEE_KIND = "restocking_fee"


def invoice_totals(lines: pl.DataFrame, key: str = "invoice_id") -> pl.DataFrame:
    """Per document: sums of the rounded lines (rules 6 and 7): ``subtotal`` (Σ extended of item lines),
    ``discount_total``, ``shipping_total`` (Σ net of shipping lines), ``tax_total``, ``restocking_fee_total``
    (Σ restocking fee lines: credit notes only, else 0), ``total`` (Σ line totals of the other lines - the fee)."""
    kind = pl.col("kind")
    fee = kind == FEE_KIND
    zero = pl.lit(0).cast(MONEY)
    return lines.group_by(key).agg(
        pl.when(kind == "item").then(pl.col("extended_amount")).otherwise(zero).sum().cast(MONEY).alias("subtotal"),
        pl.col("discount_amount").sum().cast(MONEY).alias("discount_total"),
        pl.when(kind == "shipping").then(pl.col("net_amount")).otherwise(zero).sum().cast(MONEY)
        .alias("shipping_total"),
        pl.col("tax_amount").sum().cast(MONEY).alias("tax_total"),
        pl.when(fee).then(pl.col("line_total")).otherwise(zero).sum().cast(MONEY).alias("restocking_fee_total"),
        pl.when(fee).then(-pl.col("line_total")).otherwise(pl.col("line_total")).sum().cast(MONEY).alias("total"),
        pl.len().cast(pl.Int64).alias("line_count"),
    )


def restocking_fee_lines(credited: pl.DataFrame) -> pl.DataFrame:
    """The restocking fee lines of credit notes (rule 7). ``credited``: the credited lines (:func:`credit_lines`'
    output, kind item | shipping) with ``restocking_fee`` (MONEY, null = 0: the fee the returns rules kept on
    that line's units). One line per credited line with a positive fee, keyed like it (every column but the
    money is carried): kind ``restocking_fee``, quantity 0, no unit price, extended = net = line total = the
    fee, no discount, no tax (rate null, ``tax_source`` none). A fee on a shipping line, a negative fee or one
    above the net credited on its line breaks the rule: ``ValueError`` (a fee is never guessed at)."""
    fee = pl.col("restocking_fee").fill_null(0).cast(MONEY)
    bad = credited.filter((fee < 0) | (fee > pl.col("net_amount")) | ((fee > 0) & (pl.col("kind") != "item")))
    if bad.height:
        r = bad.row(0, named=True)
        raise ValueError(f"restocking fee {r['restocking_fee']} on a {r['kind']} line crediting net "
                         f"{r['net_amount']}: a fee is >= 0, on item lines only, and never above the net credited")
    zero = pl.lit(0).cast(MONEY)
    out = credited.filter(fee > 0).with_columns(
        pl.lit(FEE_KIND).alias("kind"), pl.lit(0, pl.Int64).alias("qty"),
        fee.alias("extended_amount"), zero.alias("discount_amount"), fee.alias("net_amount"),
        zero.alias("tax_amount"), fee.alias("line_total"))
    extra = {"quantity": pl.lit(0, pl.Int64), "unit_price": None, "tax_rate": None, "tax_source": pl.lit("none"),
             "tax_jurisdiction": None, "description": pl.lit("Restocking fee")}
    return out.with_columns(*[(e if e is not None else pl.lit(None, out.schema[c])).alias(c)
                              for c, e in extra.items() if c in out.columns])


def number_documents(docs: pl.DataFrame, last: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Gapless numbers. ``docs``: one row per new document with ``legal_entity``, ``fiscal_year`` and the
    columns it is ordered by, **already sorted** in issue order; ``last``: ``legal_entity, fiscal_year, last_seq``
    (the counters). Adds ``seq`` (last + 1, + 2, ... per entity and year, in the given order) and ``number``
    (``<INV|CN>-<entity>-<year>-<seq:06d>``)."""
    prefix = KIND_PREFIX[kind]
    cnt = last.select("legal_entity", pl.col("fiscal_year").cast(pl.Int32), pl.col("last_seq").cast(pl.Int64))
    return (docs.with_columns(pl.col("fiscal_year").cast(pl.Int32))
            .join(cnt, on=["legal_entity", "fiscal_year"], how="left", maintain_order="left")
            .with_columns((pl.col("last_seq").fill_null(0)
                           + pl.int_range(1, pl.len() + 1).over("legal_entity", "fiscal_year")).alias("seq"))
            .with_columns(pl.format("{}-{}-{}-{}", pl.lit(prefix), pl.col("legal_entity"), pl.col("fiscal_year"),
                                    pl.col("seq").cast(pl.String).str.zfill(6)).alias("number"))
            .drop("last_seq"))


def credit_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """Credit-note lines for invoice lines (``lines``: the invoice line's money columns and ``billed_qty`` plus
    ``credit_qty`` (units credited now, for a return or cancellation), ``credited_qty`` (units of that invoice
    line credited before), or ``credit_amount`` (a price correction on the net, with ``credit_qty`` null)).

    Quantities: the cumulative share (rule 1) of the invoice line's extended, discount and tax over its
    billed quantity, so crediting a line in pieces never credits more than was billed and crediting it whole
    reverses it exactly. Price corrections: the net amount given, tax = round(amount x the line's rate) (or the
    channel's tax pro rata to net, ``round(tax x amount / net)``). Amounts are positive (what is credited)."""
    q = pl.col("billed_qty").cast(pl.Int64)
    c0 = pl.col("credited_qty").fill_null(0).cast(pl.Int64)
    c1 = pl.min_horizontal(c0 + pl.col("credit_qty").fill_null(0).cast(pl.Int64), q)

    def share(col: str) -> pl.Expr:
        cents = to_cents(pl.col(col))
        return cents_to_money(share_cents(cents, c1, q) - share_cents(cents, c0, q))

    by_qty = pl.col("credit_qty").is_not_null()
    amt = pl.col("credit_amount").cast(MONEY)
    net_c = to_cents(pl.col("net_amount"))
    corr_tax = pl.when(pl.col("tax_source") == "channel").then(
        cents_to_money(share_cents(to_cents(pl.col("tax_amount")), to_cents(amt), pl.when(net_c > 0).then(net_c)
                                   .otherwise(1)))
    ).otherwise(round_money(mul(amt, 2, pl.col("tax_rate").cast(RATE), 6)).fill_null(0))
    out = lines.with_columns(
        pl.when(by_qty).then(c1 - c0).otherwise(0).alias("qty"),
        pl.when(by_qty).then(share("extended_amount")).otherwise(amt).cast(MONEY).alias("_ext"),
        pl.when(by_qty).then(share("discount_amount")).otherwise(pl.lit(0).cast(MONEY)).cast(MONEY).alias("_disc"),
        pl.when(by_qty).then(share("tax_amount")).otherwise(corr_tax).cast(MONEY).alias("_tax"),
    )
    incl = pl.col("prices_include_tax").fill_null(False)
    return (out.with_columns((pl.col("_ext") - pl.col("_disc")).cast(MONEY).alias("_net"))
            .with_columns(pl.col("_ext").alias("extended_amount"), pl.col("_disc").alias("discount_amount"),
                          pl.col("_net").alias("net_amount"), pl.col("_tax").alias("tax_amount"),
                          pl.when(incl).then(pl.col("_net")).otherwise(pl.col("_net") + pl.col("_tax")).cast(MONEY)
                          .alias("line_total"))
            .drop("_ext", "_disc", "_tax", "_net"))
