"""Reconciliation breaks: pure detectors over facts the service gathers, and their state night to night.

Detectors (:func:`detect_breaks`)
---------------------------------
Each detector reads one input frame (``None``: that detector is skipped) and yields breaks. Money is MONEY =
Decimal(18, 2) and compared exactly (no tolerance: a cent is a break); timestamps are Datetime UTC; "today" is
``now``'s UTC date. ``N`` days are :class:`BreakConfig`'s.

================================  ==============================================================  =================
break_type                        input frame (columns) and rule                                  owner_queue
================================  ==============================================================  =================
``SHIPPED_NOT_INVOICED``          ``shipments``: shipment_id, order_id, shipped_at, shipped_qty,  billing
                                  invoiced_qty (units of this shipment on invoices), optional
                                  amount (value of the shipment's uninvoiced units). A break when
                                  ``invoiced_qty < shipped_qty`` and ``shipped_at + ship_invoice_
                                  days < now``. key = shipment_id; quantity = shipped - invoiced.
``INVOICED_NOT_SHIPPED``          ``invoiced_lines``: order_id, line_no, invoiced_qty (net of     billing
                                  credit notes), shipped_qty, optional unit_net (net price per
                                  unit, Decimal). A break when ``invoiced_qty > shipped_qty``.
                                  key = ``order_id/line_no``; quantity = the excess; amount =
                                  excess x unit_net (rounded to the cent) when given.
``OVERDUE``                       ``invoices``: invoice_id, order_id, due_date (Date), residual   finance
                                  (amount still owed). A break when ``residual > 0`` and
                                  ``due_date + overdue_grace_days < today``. key = invoice_id.
``REFUND_WITHOUT_RECEIPT``        ``refunds`` (refunds and credit notes): document_id, order_id,   customer_service
                                  reason, rma_id (nullable), issued_at, amount, received_at (the
                                  RMA's receipt, null when none). A break when ``reason =
                                  'RETURN'``, no receipt (or no RMA at all) and ``issued_at +
                                  refund_receipt_days < now``. key = document_id.
``STOCK_MISMATCH``                ``stock``: warehouse_id, sku, ledger_qty (the stock ledger's     warehouse
                                  balance at the count), counted_qty (the latest cycle count),
                                  counted_at. A break when they differ; key = ``warehouse_id/sku``;
                                  quantity = ledger - counted (signed).
``STATEMENT_UNBALANCED``          ``statements``: statement_id, opening_balance, closing_balance;  finance
                                  ``statement_lines``: statement_id, amount (signed). A break when
                                  ``opening + sum(lines) != closing`` (a statement with no lines
                                  sums 0); key = statement_id; amount = closing - (opening + sum).
``PAYOUT_MISMATCH``               ``payouts``: payout_id, channel, amount; ``payout_lines``:       finance
                                  payout_id, gross_amount, fee_amount (fees withheld, positive).
                                  net = gross - fee. A break when ``amount != sum(net)``; key =
                                  payout_id; amount = amount - sum(net).
``SUSPENSE_AGED``                 ``suspense``: payment_id, amount, first_seen_at. A break when    finance
                                  ``first_seen_at + suspense_days < now``; key = payment_id.
``CHARGEBACK_OPEN``               ``chargebacks``: chargeback_id, order_id, kind, amount, status, disputes
                                  evidence_due_at (nullable). A break while ``status = 'open'``
                                  (a chargeback's money is held by the issuer until the dispute is
                                  decided; an inquiry must be answered before it becomes one):
                                  key = chargeback_id; amount = the disputed amount; the detail
                                  names the evidence deadline.
================================  ==============================================================  =================

Every detector's output has the columns :data:`BREAK_COLUMNS`: ``break_type, key, order_id (nullable), amount
(MONEY, nullable), quantity (Int64, nullable), owner_queue, detail`` (a human sentence). :func:`detect_breaks`
concatenates them sorted by ``break_type, key``; a ``(break_type, key)`` is unique.

State (:func:`carry_breaks`)
----------------------------
The state table (:data:`STATE_COLUMNS`) keeps one row per *episode* of a break: ``break_id, break_type, key,
order_id, amount, quantity, owner_queue, detail, first_seen, last_seen, resolved_at, age_days``.

- a break detected tonight and open in the state keeps its ``break_id`` and ``first_seen``; its facts (amount,
  quantity, detail: they may move) are tonight's; ``last_seen = now``; ``age_days`` = whole days since
  ``first_seen``;
- a break detected tonight with no open row opens one: ``first_seen = last_seen = now``, ``age_days = 0``;
- an open row not detected tonight is resolved: ``resolved_at = now`` (kept, never deleted; ``age_days`` frozen at
  the days from first_seen to resolution; last_seen stays the last night it was seen);
- resolved rows are carried unchanged; a break that comes back after being resolved opens a *new* row (a new
  ``break_id``: its ``first_seen`` differs).

``break_id = sha256("break_type|key|first_seen")`` (first_seen as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), hex. The
function is pure and idempotent: the same (current, previous, now) give the same state; feeding its own output
back with the same ``current`` changes nothing but ``last_seen`` and ``age_days`` of the open rows (which follow
``now``: identical when ``now`` is too).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from som_pipeline.money import MONEY, round_money

Frame = pl.DataFrame | pl.LazyFrame
TS = pl.Datetime("us", "UTC")

BREAK_COLUMNS = ("break_type", "key", "order_id", "amount", "quantity", "owner_queue", "detail")
BREAK_SCHEMA = {"break_type": pl.String, "key": pl.String, "order_id": pl.String, "amount": MONEY,
                "quantity": pl.Int64, "owner_queue": pl.String, "detail": pl.String}
STATE_COLUMNS = ("break_id", *BREAK_COLUMNS, "first_seen", "last_seen", "resolved_at", "age_days")
STATE_SCHEMA = {"break_id": pl.String, **BREAK_SCHEMA, "first_seen": TS, "last_seen": TS, "resolved_at": TS,
                "age_days": pl.Int64}
BREAK_TYPES = ("SHIPPED_NOT_INVOICED", "INVOICED_NOT_SHIPPED", "OVERDUE", "REFUND_WITHOUT_RECEIPT",
               "STOCK_MISMATCH", "STATEMENT_UNBALANCED", "PAYOUT_MISMATCH", "SUSPENSE_AGED", "CHARGEBACK_OPEN")
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class BreakConfig:
    """How long a difference may last before it is a break (days)."""

    #: A shipment not (fully) invoiced this many days after it shipped. Billing invoices at shipment, or at
    #: delivery for some customers: a week covers a delivery-basis invoice of a parcel still in transit.
    ship_invoice_days: int = 7
    #: An invoice still owed this many days after its due date (payment in transit, bank value dates).
    overdue_grace_days: int = 5
    #: A RETURN refund / credit note whose RMA has no receipt this many days after it was issued.
    refund_receipt_days: int = 14
    #: A payment in suspense (unmatched) for longer than this.
    suspense_days: int = 3

    def __post_init__(self) -> None:
        if min(self.ship_invoice_days, self.overdue_grace_days, self.refund_receipt_days, self.suspense_days) < 0:
            raise ValueError("BreakConfig: the day counts are >= 0")


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=BREAK_SCHEMA)


def _out(lf: pl.LazyFrame, break_type: str, owner: str, key: pl.Expr, order_id: pl.Expr | None,
         amount: pl.Expr | None, quantity: pl.Expr | None, detail: pl.Expr) -> pl.LazyFrame:
    return lf.select(
        pl.lit(break_type).alias("break_type"), key.cast(pl.String).alias("key"),
        (order_id if order_id is not None else pl.lit(None)).cast(pl.String).alias("order_id"),
        (amount if amount is not None else pl.lit(None)).cast(MONEY).alias("amount"),
        (quantity if quantity is not None else pl.lit(None)).cast(pl.Int64).alias("quantity"),
        pl.lit(owner).alias("owner_queue"), detail.alias("detail"))


def _s(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String).fill_null("-")


def _days(n: int) -> pl.Expr:
    return pl.duration(days=n)


def shipped_not_invoiced(shipments: Frame, now: datetime, cfg: BreakConfig) -> pl.LazyFrame:
    lf = shipments.lazy()
    has_amount = "amount" in lf.collect_schema().names()
    q = pl.col("shipped_qty").cast(pl.Int64) - pl.col("invoiced_qty").cast(pl.Int64).fill_null(0)
    lf = lf.filter((q > 0) & (pl.col("shipped_at").cast(TS) + _days(cfg.ship_invoice_days) < pl.lit(now).cast(TS)))
    return _out(lf, "SHIPPED_NOT_INVOICED", "billing", pl.col("shipment_id"), pl.col("order_id"),
                pl.col("amount") if has_amount else None, q,
                pl.format("Shipment {} (order {}) shipped {} has {} of {} units not invoiced after {} days.",
                          _s(pl.col("shipment_id")), _s(pl.col("order_id")), _s(pl.col("shipped_at").dt.date()),
                          q, pl.col("shipped_qty"), pl.lit(cfg.ship_invoice_days)))


def invoiced_not_shipped(lines: Frame) -> pl.LazyFrame:
    lf = lines.lazy()
    has_price = "unit_net" in lf.collect_schema().names()
    q = pl.col("invoiced_qty").cast(pl.Int64) - pl.col("shipped_qty").cast(pl.Int64).fill_null(0)
    amount = round_money(q.cast(pl.Decimal(38, 0)) * pl.col("unit_net").cast(pl.Decimal(38, 4))) if has_price else None
    lf = lf.filter(q > 0)
    return _out(lf, "INVOICED_NOT_SHIPPED", "billing", pl.format("{}/{}", pl.col("order_id"), pl.col("line_no")),
                pl.col("order_id"), amount, q,
                pl.format("Order {} line {}: {} units invoiced, {} shipped ({} invoiced but not shipped).",
                          _s(pl.col("order_id")), _s(pl.col("line_no")), pl.col("invoiced_qty"),
                          pl.col("shipped_qty").fill_null(0), q))


def overdue(invoices: Frame, now: datetime, cfg: BreakConfig) -> pl.LazyFrame:
    today = pl.lit(now.date()).cast(pl.Date)
    lf = invoices.lazy().filter((pl.col("residual").cast(MONEY) > 0)
                                & (pl.col("due_date").cast(pl.Date) + _days(cfg.overdue_grace_days) < today))
    late = (today - pl.col("due_date").cast(pl.Date)).dt.total_days()
    return _out(lf, "OVERDUE", "finance", pl.col("invoice_id"), pl.col("order_id"), pl.col("residual"), None,
                pl.format("Invoice {} (order {}) due {} still owes {}: {} days past due.", _s(pl.col("invoice_id")),
                          _s(pl.col("order_id")), _s(pl.col("due_date")), _s(pl.col("residual").cast(MONEY)), late))


def refund_without_receipt(refunds: Frame, now: datetime, cfg: BreakConfig) -> pl.LazyFrame:
    lf = refunds.lazy().filter(
        (pl.col("reason").str.to_uppercase() == "RETURN")
        & (pl.col("rma_id").is_null() | pl.col("received_at").is_null())
        & (pl.col("issued_at").cast(TS) + _days(cfg.refund_receipt_days) < pl.lit(now).cast(TS)))
    return _out(lf, "REFUND_WITHOUT_RECEIPT", "customer_service", pl.col("document_id"), pl.col("order_id"),
                pl.col("amount"), None,
                pl.format("{} {} issued {} for a return (RMA {}) but nothing was received after {} days.",
                          _s(pl.col("document_id")), _s(pl.col("amount").cast(MONEY)),
                          _s(pl.col("issued_at").dt.date()), _s(pl.col("rma_id")), pl.lit(cfg.refund_receipt_days)))


def stock_mismatch(stock: Frame) -> pl.LazyFrame:
    q = pl.col("ledger_qty").cast(pl.Int64) - pl.col("counted_qty").cast(pl.Int64)
    lf = stock.lazy().filter(q != 0)
    return _out(lf, "STOCK_MISMATCH", "warehouse", pl.format("{}/{}", pl.col("warehouse_id"), pl.col("sku")), None,
                None, q,
                pl.format("{} in {}: ledger {} units, counted {} on {} (difference {}).", _s(pl.col("sku")),
                          _s(pl.col("warehouse_id")), pl.col("ledger_qty"), pl.col("counted_qty"),
                          _s(pl.col("counted_at").dt.date()), q))


def statement_unbalanced(statements: Frame, lines: Frame) -> pl.LazyFrame:
    sums = lines.lazy().group_by("statement_id").agg(pl.col("amount").cast(MONEY).sum().alias("_sum"))
    lf = (statements.lazy().join(sums, on="statement_id", how="left")
          .with_columns(pl.col("_sum").fill_null(0))
          .with_columns((pl.col("closing_balance").cast(MONEY) - pl.col("opening_balance").cast(MONEY)
                         - pl.col("_sum")).cast(MONEY).alias("_diff"))
          .filter(pl.col("_diff") != 0))
    return _out(lf, "STATEMENT_UNBALANCED", "finance", pl.col("statement_id"), None, pl.col("_diff"), None,
                pl.format("Statement {}: opening {} + entries {} != closing {} (difference {}).",
                          _s(pl.col("statement_id")), _s(pl.col("opening_balance").cast(MONEY)),
                          _s(pl.col("_sum").cast(MONEY)), _s(pl.col("closing_balance").cast(MONEY)), _s(pl.col("_diff"))))


def payout_mismatch(payouts: Frame, lines: Frame) -> pl.LazyFrame:
    sums = lines.lazy().group_by("payout_id").agg(
        (pl.col("gross_amount").cast(MONEY) - pl.col("fee_amount").cast(MONEY).fill_null(0)).sum().alias("_net"))
    lf = (payouts.lazy().join(sums, on="payout_id", how="left")
          .with_columns(pl.col("_net").fill_null(0))
          .with_columns((pl.col("amount").cast(MONEY) - pl.col("_net")).cast(MONEY).alias("_diff"))
          .filter(pl.col("_diff") != 0))
    return _out(lf, "PAYOUT_MISMATCH", "finance", pl.col("payout_id"), None, pl.col("_diff"), None,
                pl.format("Payout {} from {}: paid {}, its transactions net of fees sum {} (difference {}).",
                          _s(pl.col("payout_id")), _s(pl.col("channel")), _s(pl.col("amount").cast(MONEY)),
                          _s(pl.col("_net").cast(MONEY)), _s(pl.col("_diff"))))


def suspense_aged(suspense: Frame, now: datetime, cfg: BreakConfig) -> pl.LazyFrame:
    now_l = pl.lit(now).cast(TS)
    lf = suspense.lazy().filter(pl.col("first_seen_at").cast(TS) + _days(cfg.suspense_days) < now_l)
    days = ((now_l - pl.col("first_seen_at").cast(TS)).dt.total_microseconds() // _US_PER_DAY)
    return _out(lf, "SUSPENSE_AGED", "finance", pl.col("payment_id"), None, pl.col("amount"), None,
                pl.format("Payment {} of {} unmatched in suspense for {} days.", _s(pl.col("payment_id")),
                          _s(pl.col("amount").cast(MONEY)), days))


def chargeback_open(chargebacks: Frame) -> pl.LazyFrame:
    lf = chargebacks.lazy().filter(pl.col("status") == "open")
    return _out(lf, "CHARGEBACK_OPEN", "disputes", pl.col("chargeback_id"), pl.col("order_id"), pl.col("amount"),
                None, pl.format("{} {} on order {}: {} {}; evidence due {}.",
                                pl.when(pl.col("kind") == "inquiry").then(pl.lit("Inquiry")).otherwise(
                                    pl.lit("Chargeback")), _s(pl.col("chargeback_id")), _s(pl.col("order_id")),
                                _s(pl.col("amount").cast(MONEY)),
                                pl.when(pl.col("kind") == "inquiry").then(pl.lit("questioned (no money held yet)"))
                                .otherwise(pl.lit("held by the issuer")),
                                _s(pl.col("evidence_due_at").cast(TS).dt.strftime("%Y-%m-%d %H:%M UTC"))))


def detect_breaks(*, now: datetime, cfg: BreakConfig | None = None, shipments: Frame | None = None,
                  invoiced_lines: Frame | None = None, invoices: Frame | None = None,
                  refunds: Frame | None = None, stock: Frame | None = None, statements: Frame | None = None,
                  statement_lines: Frame | None = None, payouts: Frame | None = None,
                  payout_lines: Frame | None = None, suspense: Frame | None = None,
                  chargebacks: Frame | None = None) -> pl.DataFrame:
    """Every detector of the module docstring whose input is given; :data:`BREAK_COLUMNS`, sorted by
    ``break_type, key`` (the first row wins if an input repeats a key)."""
    cfg = cfg or BreakConfig()
    parts: list[pl.LazyFrame] = []
    if shipments is not None:
        parts.append(shipped_not_invoiced(shipments, now, cfg))
    if invoiced_lines is not None:
        parts.append(invoiced_not_shipped(invoiced_lines))
    if invoices is not None:
        parts.append(overdue(invoices, now, cfg))
    if refunds is not None:
        parts.append(refund_without_receipt(refunds, now, cfg))
    if stock is not None:
        parts.append(stock_mismatch(stock))
    if statements is not None:
        parts.append(statement_unbalanced(statements, statement_lines if statement_lines is not None
                                          else pl.DataFrame(schema={"statement_id": pl.String, "amount": MONEY})))
    if payouts is not None:
        parts.append(payout_mismatch(payouts, payout_lines if payout_lines is not None else pl.DataFrame(
            schema={"payout_id": pl.String, "gross_amount": MONEY, "fee_amount": MONEY})))
    if suspense is not None:
        parts.append(suspense_aged(suspense, now, cfg))
    if chargebacks is not None:
        parts.append(chargeback_open(chargebacks))
    if not parts:
        return _empty()
    out = pl.concat(parts).collect()
    return out.unique(["break_type", "key"], keep="first", maintain_order=True).sort("break_type", "key")


def money_at_risk(state: Frame) -> pl.DataFrame:
    """``break_type, n, amount`` over the open breaks of a state (or of :func:`detect_breaks`' output): the sum
    of ``|amount|`` (a shortfall and an excess are both at risk), per type, sorted by amount desc then type."""
    lf = state.lazy()
    if "resolved_at" in lf.collect_schema().names():
        lf = lf.filter(pl.col("resolved_at").is_null())
    return (lf.group_by("break_type").agg(pl.len().cast(pl.Int64).alias("n"),
                                          pl.col("amount").abs().sum().cast(MONEY).alias("amount"))
            .sort(["amount", "break_type"], descending=[True, False]).collect())


def _break_ids(frame: pl.DataFrame) -> pl.Series:
    """sha256(break_type|key|first_seen) per row (only the breaks opening tonight are hashed: a few thousand)."""
    text = frame.select(pl.concat_str([pl.col("break_type"), pl.col("key"),
                                       pl.col("first_seen").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")],
                                      separator="|"))
    return pl.Series("break_id", [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in text.to_series()],
                     dtype=pl.String)


def carry_breaks(current: Frame, previous: Frame | None, now: datetime) -> pl.DataFrame:
    """Tonight's state from tonight's :func:`detect_breaks` and last night's state (None: the first night).
    Rules in the module docstring. Sorted by break_type, key, first_seen."""
    now_l = pl.lit(now).cast(TS)
    cur = (current.lazy().select([pl.col(c).cast(t) for c, t in BREAK_SCHEMA.items()])
           .unique(["break_type", "key"], keep="first", maintain_order=True).collect())
    prev = (pl.DataFrame(schema=STATE_SCHEMA) if previous is None
            else previous.lazy().select([pl.col(c).cast(t) for c, t in STATE_SCHEMA.items()]).collect())
    prev_open = prev.filter(pl.col("resolved_at").is_null())
    prev_done = prev.filter(pl.col("resolved_at").is_not_null())
    age = ((now_l - pl.col("first_seen")).dt.total_microseconds() // _US_PER_DAY).cast(pl.Int64)
    kept = (cur.join(prev_open.select("break_type", "key", "break_id", "first_seen"), on=["break_type", "key"],
                     how="inner")
            .with_columns(now_l.alias("last_seen"), pl.lit(None, TS).alias("resolved_at"), age.alias("age_days")))
    new = (cur.join(prev_open.select("break_type", "key"), on=["break_type", "key"], how="anti")
           .with_columns(now_l.alias("first_seen"), now_l.alias("last_seen"), pl.lit(None, TS).alias("resolved_at"),
                         pl.lit(0, pl.Int64).alias("age_days")))
    new = new.with_columns(_break_ids(new))
    gone = (prev_open.join(cur.select("break_type", "key"), on=["break_type", "key"], how="anti")
            .with_columns(now_l.alias("resolved_at"), age.alias("age_days")))
    return (pl.concat([f.select(STATE_COLUMNS).cast(STATE_SCHEMA) for f in (kept, new, gone, prev_done)])
            .sort("break_type", "key", "first_seen", "break_id"))
