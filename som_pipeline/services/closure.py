"""Closure service: each order's quantities and money from every stage's tables -> statuses, CLOSED / REOPENED (with
the events that explain them), and the nightly reconciliation's breaks and report.

1. **Closure** (``closure.status``): the orders that can change -- every managed order without a closed row (not
   ``HISTORICAL``: those were processed elsewhere), and closed ones something happened to after they closed (a
   return, a credit note, a refund, a payment) -- get their line and order facts gathered in SQL, their statuses
   derived, and ``core.order_closure`` upserted where something changed; a transition is an order event
   (``CLOSED`` / ``REOPENED``) in ``core.order_events``.
2. **Reconciliation** (``closure.breaks``): the breaks of tonight (shipped not invoiced after N days, invoiced not
   shipped, overdue receivables, refunds without a return receipt, stock vs the last count, statements that do not
   balance, payouts vs their transactions, payments aged in suspense) carried against ``ops.reconciliation_breaks``
   (first_seen kept, resolved when cleared, a comeback is a new row).
3. **Report** (``closure.report``): ``$SOM_HOME/reports/reconciliation-<date>.html``, self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.lifecycle import CLOSED, REOPENED, details, order_events
from som_pipeline.schemas import OrderClosureModel, OrderLineClosureModel, ReconciliationBreakModel, conform
from som_pipeline.services import Step
from som_pipeline.services.landing import write_atomic
from som_pipeline.warehouse import (
    Warehouse,
    insert_frame,
    registered,
    replace_keys,
    select_keys,
    transaction,
)

CLOSURE = Step(
    reads=("core.orders", "core.order_lines", "core.order_status", "core.allocations", "core.pick_tasks",
           "core.shipments", "core.shipment_lines", "core.shipment_status", "core.invoices", "core.invoice_lines",
           "core.credit_notes", "core.credit_note_lines", "core.payments", "core.payment_allocations",
           "core.payment_suspense", "core.ar_open_items", "core.bank_statements", "core.bank_lines",
           "core.return_requests", "core.return_receipts", "core.refunds", "core.chargebacks", "ref.return_policies",
           "ref.inventory",
           "core.order_closure", "ops.reconciliation_breaks"),
    writes=("core.order_closure", "core.order_line_closure", "ops.reconciliation_breaks"),
    appends=("core.order_events",),
)

BLOCKING_SEP = ","  # closure.status joins an order's blocking reasons with it (blocking_text)
#: Return window (days after the last delivery) where ``ref.return_policies`` has no row for the channel.
DEFAULT_WINDOW = {"shopify": 30, "amazon": 30, "edi": 14, "b2b_portal": 14, "csv": 14}


@dataclass
class ClosureReport:
    orders_evaluated: int = 0
    closed: int = 0
    reopened: int = 0
    open_breaks: int = 0
    new_breaks: int = 0
    resolved_breaks: int = 0
    report: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


def run_closure(wh: Warehouse, settings: Settings, now: datetime, report: bool = True) -> ClosureReport:
    rep = ClosureReport()
    with wh.connect() as con:
        _closure(con, now, rep)
        breaks = _breaks(con, now, rep)
        if report:
            rep.report = _report(con, settings, breaks, now)
    return rep


# ------------------------------------------------------------------------------------------------
# 1. closure
# ------------------------------------------------------------------------------------------------
def _candidates(con) -> pl.DataFrame:
    return con.execute("""
        SELECT o.order_id FROM core.orders o LEFT JOIN core.order_status s USING (order_id)
        LEFT JOIN core.order_closure c USING (order_id)
        WHERE s.status IS DISTINCT FROM 'HISTORICAL' AND (c.order_id IS NULL OR NOT c.closed
              OR EXISTS (SELECT 1 FROM core.return_requests r WHERE r.order_id = o.order_id
                         AND r.received_at > c.closed_at)
              OR EXISTS (SELECT 1 FROM core.credit_notes n WHERE n.order_id = o.order_id AND n.issued_at > c.closed_at)
              OR EXISTS (SELECT 1 FROM core.refunds f WHERE f.order_id = o.order_id AND f.refunded_at > c.closed_at)
              OR EXISTS (SELECT 1 FROM core.chargebacks b WHERE b.order_id = o.order_id
                         AND b.updated_at > c.updated_at))
        ORDER BY 1""").pl()


def gather_facts(con, ids: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(lines, orders)``: the inputs of ``closure.status`` (its ``LINE_INPUT`` and ``ORDER_INPUT``) for ``ids``."""
    with registered(con, ids) as k:
        lines = con.execute(f"""
            WITH ol AS (SELECT l.order_id, l.line_no, l.quantity, o.cancelled_at IS NOT NULL AS cancelled
                        FROM core.order_lines l JOIN core.orders o USING (order_id) SEMI JOIN {k} USING (order_id)),
            al AS (SELECT order_id, line_no, sum(quantity) AS q FROM core.allocations SEMI JOIN {k} USING (order_id)
                   GROUP BY ALL),
            pk AS (SELECT order_id, line_no, sum(picked_qty) AS q FROM core.pick_tasks SEMI JOIN {k} USING (order_id)
                   GROUP BY ALL),
            sh AS (SELECT order_id, line_no, sum(quantity) AS q FROM core.shipment_lines SEMI JOIN {k} USING (order_id)
                   GROUP BY ALL),
            dl AS (SELECT sl.order_id, sl.line_no, sum(sl.quantity) AS q FROM core.shipment_lines sl
                   JOIN core.shipment_status st USING (shipment_id) SEMI JOIN {k} ON sl.order_id = {k}.order_id
                   WHERE st.delivered_at IS NOT NULL GROUP BY ALL),
            rt AS (SELECT order_id, line_no, sum(quantity) AS q FROM core.return_receipts SEMI JOIN {k} USING (order_id)
                   WHERE outcome IN ('MATCHED', 'SHORT_RECEIVED', 'OVER_RECEIVED') GROUP BY ALL),
            iv AS (SELECT order_id, order_line_no AS line_no, sum(quantity) AS q, sum(line_total) AS amt
                   FROM core.invoice_lines SEMI JOIN {k} USING (order_id) WHERE kind = 'item' GROUP BY ALL),
            cr AS (SELECT il.order_id, il.order_line_no AS line_no,
                          sum(cl.quantity) FILTER (WHERE cl.kind <> 'restocking_fee') AS q,
                          sum(CASE WHEN cl.kind = 'restocking_fee' THEN -cl.line_total ELSE cl.line_total END) AS amt
                   FROM core.credit_note_lines cl JOIN core.invoice_lines il
                        ON il.invoice_id = cl.invoice_id AND il.line_no = cl.invoice_line_no
                   SEMI JOIN {k} ON il.order_id = {k}.order_id
                   WHERE il.kind = 'item' GROUP BY ALL)
            SELECT ol.order_id, ol.line_no, ol.quantity AS ordered_qty,
                   CASE WHEN ol.cancelled THEN greatest(ol.quantity - coalesce(sh.q, 0), 0) ELSE 0 END
                       AS cancelled_qty,
                   coalesce(al.q, 0)::BIGINT AS allocated_qty, coalesce(pk.q, 0)::BIGINT AS picked_qty,
                   coalesce(sh.q, 0)::BIGINT AS shipped_qty, coalesce(dl.q, 0)::BIGINT AS delivered_qty,
                   coalesce(rt.q, 0)::BIGINT AS returned_qty, coalesce(iv.q, 0)::BIGINT AS invoiced_qty,
                   coalesce(cr.q, 0)::BIGINT AS credited_qty,
                   coalesce(iv.amt, 0)::DECIMAL(18, 2) AS invoiced_amount,
                   coalesce(cr.amt, 0)::DECIMAL(18, 2) AS credited_amount
            FROM ol LEFT JOIN al USING (order_id, line_no) LEFT JOIN pk USING (order_id, line_no)
            LEFT JOIN sh USING (order_id, line_no) LEFT JOIN dl USING (order_id, line_no)
            LEFT JOIN rt USING (order_id, line_no) LEFT JOIN iv USING (order_id, line_no)
            LEFT JOIN cr USING (order_id, line_no)""").pl()  # noqa: S608
        orders = con.execute(f"""
            WITH inv AS (SELECT order_id, sum(total) AS invoiced, min(issued_at) AS first_at FROM core.invoices
                         SEMI JOIN {k} USING (order_id) GROUP BY 1),
            cn AS (SELECT order_id, sum(total) AS credited, max(issued_at) AS last_at FROM core.credit_notes
                   SEMI JOIN {k} USING (order_id) GROUP BY 1),
            pa AS (SELECT i.order_id, sum(a.amount) AS paid, sum(a.amount) FILTER (WHERE NOT p.cleared) AS in_pay,
                          max(a.allocated_at) AS last_at
                   FROM core.payment_allocations a JOIN core.invoices i ON i.invoice_id = a.item_id
                   JOIN core.payments p USING (payment_id) SEMI JOIN {k} ON i.order_id = {k}.order_id GROUP BY 1),
            rf AS (SELECT order_id, sum(refund_total) AS refunded, max(refunded_at) AS last_at FROM core.refunds
                   SEMI JOIN {k} USING (order_id) WHERE kind = 'refund' GROUP BY 1),
            cb AS (SELECT order_id, sum(charged_back) AS charged_back, max(updated_at) AS last_at FROM core.chargebacks
                   SEMI JOIN {k} USING (order_id) GROUP BY 1),
            ap AS (SELECT order_id, min(e."at") AS t FROM core.order_events e SEMI JOIN {k} USING (order_id)
                   WHERE to_status = 'APPROVED' GROUP BY 1),
            al AS (SELECT order_id, min(allocated_at) AS t FROM core.allocations SEMI JOIN {k} USING (order_id)
                   GROUP BY 1),
            sh AS (SELECT order_id, min(shipped_at) AS t FROM core.shipments SEMI JOIN {k} USING (order_id) GROUP BY 1),
            dl AS (SELECT s.order_id, max(st.delivered_at) AS t FROM core.shipments s
                   JOIN core.shipment_status st USING (shipment_id) SEMI JOIN {k} ON s.order_id = {k}.order_id
                   GROUP BY 1),
            rr AS (SELECT order_id, max(received_at) AS t FROM core.return_receipts SEMI JOIN {k} USING (order_id)
                   GROUP BY 1),
            pol AS (SELECT channel, customer_id, window_days FROM ref.return_policies)
            SELECT o.order_id, o.channel, o.order_ts, ap.t AS approved_at, al.t AS allocated_at,
                   sh.t AS first_shipped_at, dl.t AS last_delivered_at, inv.first_at AS first_invoiced_at,
                   pa.last_at AS paid_at, coalesce(inv.invoiced, 0)::DECIMAL(18, 2) AS invoiced_amount,
                   coalesce(cn.credited, 0)::DECIMAL(18, 2) AS credited_amount,
                   coalesce(pa.paid, 0)::DECIMAL(18, 2) AS paid_amount,
                   coalesce(pa.in_pay, 0)::DECIMAL(18, 2) AS in_payment_amount,
                   coalesce(rf.refunded, 0)::DECIMAL(18, 2) AS refunded_amount,
                   coalesce(cb.charged_back, 0)::DECIMAL(18, 2) AS charged_back_amount,
                   coalesce(pc.window_days, pch.window_days) AS return_window_days,
                   o.cancelled_at IS NOT NULL AS cancelled, rr.t AS last_return_at,
                   cn.last_at AS last_credited_at, rf.last_at AS last_refunded_at, pa.last_at AS last_paid_at,
                   cb.last_at AS last_chargeback_at
            FROM core.orders o SEMI JOIN {k} USING (order_id)
            LEFT JOIN inv USING (order_id) LEFT JOIN cn USING (order_id) LEFT JOIN pa USING (order_id)
            LEFT JOIN rf USING (order_id) LEFT JOIN cb USING (order_id) LEFT JOIN ap USING (order_id) LEFT JOIN al USING (order_id)
            LEFT JOIN sh USING (order_id) LEFT JOIN dl USING (order_id) LEFT JOIN rr USING (order_id)
            LEFT JOIN pol pc ON pc.channel = o.channel AND pc.customer_id = o.customer_id
            LEFT JOIN pol pch ON pch.channel = o.channel AND pch.customer_id = '*'""").pl()  # noqa: S608
    orders = orders.with_columns(pl.coalesce(pl.col("return_window_days"), pl.col("channel").replace_strict(
        DEFAULT_WINDOW, default=30, return_dtype=pl.Int64)).cast(pl.Int64).alias("return_window_days"))
    return lines, orders


CHUNK = 200_000  # orders per pass (bounded memory over a backlog)


def _closure(con, now: datetime, rep: ClosureReport) -> None:
    from som_pipeline.closure.status import line_status, order_status, transitions

    cands = _candidates(con)
    for ids in cands.iter_slices(CHUNK):
        lines, orders = gather_facts(con, ids)
        ls = line_status(lines)
        st = order_status(orders, ls, now).join(_order_level(ls), on="order_id", how="left").with_columns(
            pl.col("delivery_status").fill_null("none"), pl.col("invoicing_status").fill_null("nothing"))
        prev = _previous(con, ids)
        ev = transitions(prev, st, now)
        rows = conform(st.with_columns(
            pl.col("blocking_text").replace("", None).alias("blocking"),
            pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at")), OrderClosureModel)
        old = conform(prev, OrderClosureModel) if prev.height else rows.head(0)
        cmp = [c for c in rows.columns if c != "updated_at"]
        changed = rows.join(old.select(cmp), on=cmp, how="anti", nulls_equal=True)
        lrows = conform(ls.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at")),
                        OrderLineClosureModel)
        lold = select_keys(con, "core.order_line_closure", ids)
        lcmp = [c for c in lrows.columns if c != "updated_at"]
        lchanged = lrows.join(lold.select(lcmp), on=lcmp, how="anti", nulls_equal=True) if lold.height else lrows
        events = _events(con, ev, now)
        with transaction(con):
            if changed.height:
                replace_keys(con, "core.order_closure", changed.select("order_id"), changed)
            if lchanged.height:
                replace_keys(con, "core.order_line_closure", lchanged.select("order_id", "line_no"), lchanged)
            if events.height:
                insert_frame(con, "core.order_events", events)
        rep.orders_evaluated += ids.height
        rep.closed += ev.filter(pl.col("event") == CLOSED).height
        rep.reopened += ev.filter(pl.col("event") == REOPENED).height


def _order_level(ls: pl.DataFrame) -> pl.DataFrame:
    """An order's delivery and invoicing status from its lines' (``closure.status.line_status``): 'full' when every
    line with units due is, 'none' / 'nothing' when none has anything, else 'partial' ('over' when a line is)."""
    due = ls.filter(pl.col("due_qty") > 0)
    return due.group_by("order_id").agg(
        pl.when((pl.col("delivery_status") == "full").all()).then(pl.lit("full"))
        .when((pl.col("delivery_status") == "none").all()).then(pl.lit("none")).otherwise(pl.lit("partial"))
        .alias("delivery_status"),
        pl.when((pl.col("invoicing_status") == "over").any()).then(pl.lit("over"))
        .when((pl.col("invoicing_status") == "full").all()).then(pl.lit("full"))
        .when((pl.col("invoicing_status") == "nothing").all()).then(pl.lit("nothing")).otherwise(pl.lit("partial"))
        .alias("invoicing_status"))


def _previous(con, ids: pl.DataFrame) -> pl.DataFrame:
    from som_pipeline.warehouse import select_keys

    return select_keys(con, "core.order_closure", ids)


def _events(con, ev: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """``core.order_events`` rows of the closure transitions (the order's current version; from its last status)."""
    if ev.height == 0:
        return ev
    with registered(con, ev.select("order_id").unique()) as k:
        last = con.execute(f"""
            SELECT o.order_id, o.version,
                   (SELECT e.to_status FROM core.order_events e WHERE e.order_id = o.order_id
                    ORDER BY e.at DESC, e.event_id DESC LIMIT 1) AS from_status
            FROM core.orders o SEMI JOIN {k} USING (order_id)""").pl()  # noqa: S608
    rows = ev.join(last, on="order_id", how="left").select(
        "order_id", "version", "from_status", pl.col("event").alias("to_status"), "reason",
        pl.lit("system").alias("actor"), pl.col("at"),
        details(event=pl.col("event"), reason=pl.col("reason")).alias("details"))
    return order_events(rows)


# ------------------------------------------------------------------------------------------------
# 2. reconciliation breaks
# ------------------------------------------------------------------------------------------------
def gather_break_facts(con) -> dict[str, pl.DataFrame]:
    """The inputs of ``closure.breaks.detect_breaks`` (documented there), from the warehouse."""
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    q = con.execute
    return {
        "shipments": q("""
            SELECT s.shipment_id, s.order_id, s.shipped_at, s.units AS shipped_qty,
                   coalesce((SELECT sum(l.quantity) FROM core.invoice_lines l WHERE l.shipment_id = s.shipment_id
                             AND l.kind = 'item'), 0)::BIGINT AS invoiced_qty
            FROM core.shipments s
            WHERE NOT EXISTS (SELECT 1 FROM core.invoices i WHERE i.shipment_id = s.shipment_id)""").pl(),
        "invoiced_lines": q("""
            WITH iv AS (SELECT order_id, order_line_no AS line_no, sum(quantity) AS q FROM core.invoice_lines
                        WHERE kind = 'item' GROUP BY ALL),
            cr AS (SELECT il.order_id, il.order_line_no AS line_no, sum(cl.quantity) AS q FROM core.credit_note_lines cl
                   JOIN core.invoice_lines il ON il.invoice_id = cl.invoice_id AND il.line_no = cl.invoice_line_no
                   WHERE il.kind = 'item' AND cl.kind <> 'restocking_fee' GROUP BY ALL),
            sh AS (SELECT order_id, line_no, sum(quantity) AS q FROM core.shipment_lines GROUP BY ALL)
            SELECT iv.order_id, iv.line_no, (iv.q - coalesce(cr.q, 0))::BIGINT AS invoiced_qty,
                   coalesce(sh.q, 0)::BIGINT AS shipped_qty
            FROM iv LEFT JOIN cr USING (order_id, line_no) LEFT JOIN sh USING (order_id, line_no)
            WHERE iv.q - coalesce(cr.q, 0) > coalesce(sh.q, 0)""").pl(),
        "invoices": q("""
            SELECT a.item_id AS invoice_id, i.order_id, a.due_date, a.residual FROM core.ar_open_items a
            LEFT JOIN core.invoices i ON i.invoice_id = a.item_id WHERE a.residual > 0""").pl(),
        "refunds": q("""
            SELECT f.refund_id AS document_id, f.order_id, 'RETURN' AS reason, f.rma_id, f.refunded_at AS issued_at,
                   f.refund_total AS amount,
                   (SELECT max(r.received_at) FROM core.return_receipts r WHERE r.rma_id = f.rma_id) AS received_at
            FROM core.refunds f""").pl(),
        # the ledger against the last count plus what moved since (the stock_matches_last_count rule's rows)
        "stock": run_reconciliation_query(con, sql_file("reconciliation", "stock_matches_last_count")).select(
            "warehouse_id", "sku", pl.col("ledger_on_hand").cast(pl.Int64).alias("ledger_qty"),
            (pl.col("counted") + pl.col("moved_since")).cast(pl.Int64).alias("counted_qty"),
            pl.lit(None, pl.Datetime("us", "UTC")).alias("counted_at")),
        "statements": q("SELECT statement_id, opening_balance, closing_balance FROM core.bank_statements "
                        "WHERE format IN ('mt940', 'bai2', 'camt053')").pl(),
        "statement_lines": q("SELECT statement_id, amount FROM core.bank_lines "
                             "WHERE format IN ('mt940', 'bai2', 'camt053')").pl(),
        "payouts": q("""
            SELECT statement_id AS payout_id, CASE WHEN format = 'shopify_payout' THEN 'shopify' ELSE 'amazon' END
                   AS channel, sum(amount) FILTER (WHERE kind = 'payout') AS amount
            FROM core.bank_lines WHERE format IN ('shopify_payout', 'amazon_settlement') GROUP BY ALL
            HAVING count(*) FILTER (WHERE kind = 'payout') > 0""").pl(),
        "payout_lines": q("""
            SELECT statement_id AS payout_id, (amount + fee)::DECIMAL(18, 2) AS gross_amount, fee AS fee_amount
            FROM core.bank_lines WHERE format IN ('shopify_payout', 'amazon_settlement') AND kind <> 'payout'""").pl(),
        "suspense": q("SELECT payment_id, amount, first_seen_at FROM core.payment_suspense").pl(),
        "chargebacks": q("SELECT chargeback_id, order_id, kind, amount, status, evidence_due_at FROM core.chargebacks "
                         "WHERE status = 'open'").pl(),
    }


def _breaks(con, now: datetime, rep: ClosureReport) -> pl.DataFrame:
    from som_pipeline.closure.breaks import carry_breaks, detect_breaks

    facts = {k: v for k, v in gather_break_facts(con).items() if v is not None}
    current = detect_breaks(now=now, **facts)
    # only the open breaks move: resolved ones are history, carried as they are (never read or rewritten)
    previous = con.execute("SELECT * FROM ops.reconciliation_breaks WHERE resolved_at IS NULL").pl()
    state = conform(carry_breaks(current, previous if previous.height else None, now), ReconciliationBreakModel)
    with transaction(con):
        con.execute("DELETE FROM ops.reconciliation_breaks WHERE resolved_at IS NULL")
        insert_frame(con, "ops.reconciliation_breaks", state)
    rep.open_breaks = state.filter(pl.col("resolved_at").is_null()).height
    ts = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    rep.new_breaks = state.filter(pl.col("first_seen") == ts).height
    rep.resolved_breaks = state.filter(pl.col("resolved_at") == ts).height
    return state


# ------------------------------------------------------------------------------------------------
# 3. the report
# ------------------------------------------------------------------------------------------------
def _report(con, settings: Settings, breaks: pl.DataFrame, now: datetime) -> str:
    from som_pipeline.closure.breaks import money_at_risk
    from som_pipeline.closure.report import render_report
    from som_pipeline.closure.status import CYCLE_STAGES, cycle_time_summary

    hours = ", ".join(col for col, _, _ in CYCLE_STAGES.values())  # names from code
    closed = con.execute(f"SELECT closed, closed_at, blocking, {hours} FROM core.order_closure").pl().with_columns(  # noqa: S608
        pl.col("blocking").fill_null("").str.split(BLOCKING_SEP).list.eval(pl.element().filter(pl.element() != ""))
        .alias("blocking"))
    cycle = cycle_time_summary(closed)
    html = render_report(breaks, closed, cycle, money_at_risk(breaks), now)
    path = settings.home / "reports" / f"reconciliation-{now:%Y-%m-%d}.html"
    write_atomic(path, html)
    return str(path)
