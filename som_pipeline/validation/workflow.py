"""Validation & approvals workflow: from the checks' findings to a status per order, holds, reservations,
manual decisions and an append-only event history. Pure: frames in, frames out (the service does I/O).

Each run:

1. **Who is evaluated.** New orders (no status yet), orders ON_HOLD (so a hold releases itself when its
   cause is gone: payment received, limit raised, stock arrived...), and orders whose version changed.
   APPROVED and REJECTED orders of an unchanged version keep their status: this stage never takes back an
   approval the warehouse may already act on. Orders cancelled at the channel become CANCELLED and release
   their reservations and holds.
2. **Checks** (the registry, :mod:`som_pipeline.validation.checks`, run as ``run_checks`` runs it) on the
   evaluated orders, in the documented priority (order time, then customer tier). Context from the orders
   not re-evaluated: their reservations are fixed stock (``fixed_reserved``), their approved-but-unbilled
   totals count in credit exposure (``committed``), their valid promo uses count against usage caps
   (``prior_usage``). The whole order history is the anomaly baseline (its kept recent window:
   ``State.anomaly``, see :mod:`som_pipeline.validation.anomaly_state`). Whole order rows are read for a part
   of the orders at a time (whole customers: :func:`_checks`); the other phases hold :data:`ORDER_COLUMNS` /
   :data:`LINE_COLUMNS` of the day, and pass findings may be handed out as they come (``passes``).
3. **Manual decisions** apply to the current version of an order: an approval releases the holds it names
   (or every hold open at that moment: the codes are recorded), a rejection rejects. A decision on an
   unknown order, on an order not on hold, or naming a hold that is not open is quarantined with a reason.
4. **Status**: any reject-severity failure → REJECTED; else any hold-severity failure not waived → ON_HOLD;
   else APPROVED.
5. **Stock** is reserved (before approval, so split / backorder / substitution is decided up front) for the
   evaluated orders that are not rejected — except orders held longer than ``hold_reservation_hours``:
   their reservation lapses (the stock goes back to the pool) until they are released.
6. **Events**: a row whenever an order's status or its set of open holds changes, saying why and who
   (built by :func:`som_pipeline.lifecycle.order_events`, which also holds the statuses and the transitions
   allowed between them). A run that changes nothing writes nothing: re-running is idempotent.

:func:`run_workflow` is the list of the run's phases, one function each, in order: who is evaluated, context
from the kept orders, the checks, manual decisions, who reserves (then the day's lines are dropped), stock, holds,
status rows, reservations, results with waivers, events. Phases hand small frozen dataclasses to one another
(:class:`Run`, :class:`Selection`, :class:`Context`, :class:`Checked`, :class:`Decisions`, :class:`Reserving`,
:class:`Stock`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import polars as pl

from som_pipeline.lifecycle import APPROVED, CANCELLED, HISTORICAL, ON_HOLD, REJECTED, details, order_events
from som_pipeline.schemas import (
    ManualDecisionModel,
    OrderHoldModel,
    OrderStatusModel,
    ReservationModel,
    ValidationFindingModel,
    ValidationResultModel,
    conform,
    empty,
    polars_schema,
)
from som_pipeline.validation.checks import (
    RESERVE_LINE_COLUMNS,
    RESERVE_ORDER_COLUMNS,
    Check,
    CheckInputs,
    hand_over_passes,
    registered,
    reserve,
    screen,
)
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, eager, lazy
from som_pipeline.validation.priority import order_priority

TS = pl.Datetime("us", "UTC")
# The columns of the orders / lines every phase reads but the screen's checks of the order and customer scopes
# (they read whole rows, a part of the orders at a time: see _checks); the day-scoped checks read only these.
ORDER_COLUMNS = tuple(dict.fromkeys((
    "order_id", "version", "order_ts", "order_date", "cancelled_at", "customer_id", "order_total", "payment_status",
    "promo_code", "currency", "items_subtotal", *RESERVE_ORDER_COLUMNS)))
LINE_COLUMNS = (*RESERVE_LINE_COLUMNS, "line_amount")
# the screen evaluates at most this many orders at once (in parts of whole customers: _screen_parts)
SCREEN_PART_ORDERS = 250_000


@dataclass
class Reference:
    customers: pl.DataFrame
    products: pl.DataFrame
    price_lists: pl.DataFrame
    promotions: pl.DataFrame
    inventory: pl.DataFrame
    open_items: pl.DataFrame


@dataclass
class State:
    """What the previous runs left (the workflow's own tables)."""

    status: pl.DataFrame
    holds: pl.DataFrame
    reservations: pl.DataFrame
    decisions: pl.DataFrame
    # core.anomaly_baselines rows the evaluated orders need, with the observations not yet recorded in it
    # (services.anomaly.anomaly_state_for_run); None: baselines from the whole order history. run_workflow
    # sets it to None once the quantity check has used it (the observations are a day's largest input)
    anomaly: pl.DataFrame | None = None

    @classmethod
    def empty(cls) -> State:
        return cls(empty(OrderStatusModel), empty(OrderHoldModel), empty(ReservationModel), empty(ManualDecisionModel))


@dataclass
class Outcome:
    status: pl.DataFrame  # core.order_status rows of the given orders (all of them unless a subset was given)
    holds: pl.DataFrame  # core.order_holds rows of the given orders
    reservations: pl.DataFrame  # core.reservations rows of the given orders
    results: pl.DataFrame  # core.validation_results rows of the evaluated orders
    evaluated: pl.DataFrame  # [order_id] evaluated (their previous results are replaced)
    events: pl.DataFrame  # new core.order_events rows
    decisions: pl.DataFrame  # new core.manual_decisions rows (applied)
    decision_rejects: pl.DataFrame  # [decision_id, location, source_file, order_ref, reason_code, message, raw]


def _ts(now: datetime) -> pl.Expr:
    return pl.lit(now).cast(TS)


def _severity(cfg: ValidationConfig) -> pl.Expr:
    """reject | hold | warn of each row's reason code (an unconfigured code holds)."""
    return pl.col("reason_code").replace_strict(dict(cfg.severity), default="hold")


@dataclass(frozen=True)
class Others:
    """What the approved orders *not* given to :func:`run_workflow` contribute to the checks of the others.

    The service gives the workflow only the orders that can change in this run (new versions, held orders,
    approved orders waiting for backordered stock, orders named by a new decision) and sums the rest --
    kept approved orders -- in SQL. Empty parts (the default) mean every order was given.
    """

    fixed_reserved: pl.DataFrame  # [sku, quantity]: stock their reservations hold
    committed: pl.DataFrame  # [customer_id, amount]: their approved-but-unbilled totals (not prepaid)
    prior_usage: pl.DataFrame  # [code, used]: their promo uses


@dataclass(frozen=True)
class Run:
    """The inputs of one run (see :func:`run_workflow`)."""

    orders: pl.DataFrame  # the given orders, ORDER_COLUMNS
    lines: pl.DataFrame  # their lines, LINE_COLUMNS
    state: State
    new_decisions: pl.DataFrame
    ref: Reference
    cfg: ValidationConfig
    now: datetime
    others: Others | None = None
    history_orders: pl.DataFrame | None = None  # anomaly baseline; default: ``orders``
    history_lines: pl.DataFrame | None = None
    passes: Callable[[pl.DataFrame], None] | None = None  # where pass findings go (see run_workflow)
    source: tuple[Frame, Frame] | None = None  # the given orders and lines, whole rows (eager or lazy)

    @property
    def as_of(self) -> date:
        return self.cfg.as_of or self.now.date()


@dataclass(frozen=True)
class Selection:
    """Who is evaluated; every frame but the ``ev_*`` ones carries the previous status columns ``prev_*``."""

    cancelled: pl.DataFrame  # cancelled at the channel -> CANCELLED
    historical: pl.DataFrame  # placed before workflow.history_before -> HISTORICAL
    evaluate: pl.DataFrame  # new, ON_HOLD or of a new version: checked
    kept: pl.DataFrame  # APPROVED / REJECTED of an unchanged version: keep their status
    ev_ids: pl.DataFrame  # [order_id] of ``evaluate``
    ev_orders: pl.DataFrame  # their core.orders rows
    ev_lines: pl.DataFrame  # their core.order_lines rows


@dataclass(frozen=True)
class Context:
    """What the orders that keep their status contribute to the checks of the others."""

    fixed_res: pl.DataFrame  # reservations of the kept approved orders (they stay theirs)
    fixed_reserved: pl.DataFrame  # [sku, quantity]: the same per SKU
    committed: pl.DataFrame  # [customer_id, amount]: their approved-but-unbilled totals
    prior_usage: pl.DataFrame  # [code, used]: their promo uses


@dataclass(frozen=True)
class Checked:
    """The registered checks' inputs and results (every rule but inventory) for the evaluated orders."""

    inputs: CheckInputs
    results: pl.DataFrame


@dataclass(frozen=True)
class Decisions:
    """Manual decisions on the current versions and their effects."""

    applied: pl.DataFrame  # this run's new decisions that apply
    rejects: pl.DataFrame  # this run's new decisions that do not (quarantined, with a reason)
    waivers_old: pl.DataFrame  # holds waived by earlier runs' decisions
    rejects_old: pl.DataFrame  # manual rejections of earlier runs
    waivers: pl.DataFrame  # ... including this run's decisions
    manual_reject: pl.DataFrame  # ... including this run's decisions


@dataclass(frozen=True)
class Reserving:
    """The rows the stock reservation runs on (the reserve stage's columns only)."""

    orders: pl.DataFrame  # the evaluated orders that reserve, and the approved orders waiting for stock
    lines: pl.DataFrame  # their lines (a waiting order's: the backordered units)
    topped: pl.DataFrame  # [order_id] of the waiting approved orders (their reservations are topped up)


@dataclass(frozen=True)
class Stock:
    """The checks' results with the stock reservation, and the statuses they give."""

    results: pl.DataFrame  # every rule, inventory included
    res_new: pl.DataFrame  # reservations of the evaluated orders
    fixed_res: pl.DataFrame  # the kept approved orders' reservations, topped up with backorder fills
    final: pl.DataFrame  # status per evaluated order (all decisions)
    by_system: pl.DataFrame  # status per evaluated order by the checks and earlier runs' decisions only


def run_workflow(
    orders: Frame,
    lines: Frame,
    state: State,
    new_decisions: pl.DataFrame,
    ref: Reference,
    cfg: ValidationConfig,
    now: datetime,
    *,
    others: Others | None = None,
    history: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    passes: Callable[[pl.DataFrame], None] | None = None,
) -> Outcome:
    """One validation run. ``new_decisions``: well-formed rows read from decision files
    (:data:`som_pipeline.validation.approvals.DECISION_SCHEMA`).

    ``orders``/``lines``/``state`` may be a subset -- every order that can change in this run, with its state
    rows -- when ``others`` sums what the remaining (kept approved) orders contribute; the outcome's tables
    then hold the rows of the given orders only (the service upserts them). ``history``: ``(orders, lines)``
    of the anomaly baseline (default: ``orders``/``lines``).

    ``orders``/``lines`` may be lazy (the service scans them from Parquet): every phase but the screen reads only
    :data:`ORDER_COLUMNS` / :data:`LINE_COLUMNS`, and the screen collects whole rows of
    :data:`SCREEN_PART_ORDERS` orders at a time (whole customers per part; see :func:`_checks`).

    ``passes``: when given, the evaluated orders' ``pass`` findings are handed to it part by part, as
    ``core.validation_results`` rows (version, evaluated_at; a pass is never waived), as soon as a check has
    produced them, and ``Outcome.results`` holds the other findings only (the service stages the passes on disk:
    they are most of a day's findings and no decision reads them). Default: every finding in ``Outcome.results``."""
    narrow = (eager(lazy(orders).select(ORDER_COLUMNS)), eager(lazy(lines).select(LINE_COLUMNS)))
    run = Run(*narrow, state, new_decisions, ref, cfg, now, others,
              *(history if history is not None else (None, None)), passes, (orders, lines))
    sel = _select_orders(run)
    ctx = _context_of_kept_orders(run, sel)
    checked = _checks(run, sel, ctx)
    # the anomaly observations served the quantity check alone: dropped (from the caller's state too) before the
    # stock phase, the run's largest (TPC-H SF 1: 1.1 GB of observations)
    state.anomaly = None
    checked = replace(checked, inputs=replace(checked.inputs, anomaly_state=None))
    dec = _manual_decisions(run, checked.results)
    rsv = _reserving(run, sel, ctx, checked, dec)
    # the day's lines have served (the checks, the reserving rows): dropped before the reservation, the run's
    # largest step (TPC-H SF 1: 6M lines, 0.5 GB)
    run, sel, checked = _without_lines(run, sel, checked)
    stock = _stock(run, sel, ctx, checked, dec, rsv)
    del checked, rsv  # the screening results (the stock phase's results include them)
    holds, all_holds = _holds(run, sel, stock)
    st_new = _new_status_rows(run, stock, holds, dec)
    status = _status_rows(run, sel, st_new)
    reservations = _reservations(run, stock, st_new)
    stock = replace(stock, res_new=stock.res_new.clear())  # in ``reservations`` now
    out_results = _results_with_waivers(run, sel, stock, dec)
    stock = replace(stock, results=stock.results.clear())  # only out_results' copy is kept
    touched = pl.concat([sel.ev_ids, sel.cancelled.select("order_id"), sel.historical.select("order_id")])
    events = _events(run, status, touched, stock, dec)
    return Outcome(status, all_holds.sort("order_id", "reason_code"), reservations, out_results,
                   touched, events, conform(dec.applied, ManualDecisionModel), dec.rejects)


# ------------------------------------------------------------------------------------------------
# Phases of a run, in order
# ------------------------------------------------------------------------------------------------
def _select_orders(run: Run) -> Selection:
    """Who is evaluated: new orders, held orders, orders of a new version (see module doc)."""
    cfg = run.cfg
    live = run.orders.select("order_id", "version", "order_date", "cancelled_at", "customer_id", "order_total",
                             "payment_status", "promo_code")
    prev = run.state.status.select(
        "order_id", pl.col("version").alias("prev_version"), pl.col("status").alias("prev_status"),
        pl.col("since").alias("prev_since"), pl.col("reservation_expires_at").alias("prev_expires"),
        pl.col("actor").alias("prev_actor"))
    o = live.join(prev, on="order_id", how="left")
    cancelled = o.filter(pl.col("cancelled_at").is_not_null())
    is_history = (pl.col("order_date") < cfg.history_before) if cfg.history_before else pl.lit(False)
    historical = o.filter(pl.col("cancelled_at").is_null() & is_history)
    active = o.filter(pl.col("cancelled_at").is_null() & ~is_history)
    evaluate = active.filter(
        pl.col("prev_status").is_null() | (pl.col("prev_status") == ON_HOLD)
        | (pl.col("prev_version") != pl.col("version"))
    )
    kept = active.join(evaluate.select("order_id"), on="order_id", how="anti")
    ev_ids = evaluate.select("order_id")
    ev_orders = _rows_of(run.orders, ev_ids)
    ev_lines = _rows_of(run.lines, ev_ids)
    return Selection(cancelled, historical, evaluate, kept, ev_ids, ev_orders, ev_lines)


def _rows_of(df: Frame, ids: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``df`` whose ``order_id`` is in ``ids`` (a semi-join: same rows, same order), and ``df``
    itself when that is every row (no copy: a day's new orders are all evaluated). A lazy ``df`` is read for
    those rows alone."""
    if isinstance(df, pl.LazyFrame):
        return df.filter(pl.col("order_id").is_in(ids["order_id"].implode())).collect()
    keep = df["order_id"].is_in(ids["order_id"].implode()).fill_null(False)
    return df if keep.all() else df.filter(keep)


def _context_of_kept_orders(run: Run, sel: Selection) -> Context:
    """Context from the orders that keep their status: stock they hold, credit they use, promo uses."""
    kept_approved = sel.kept.filter(pl.col("prev_status") == APPROVED).select("order_id")
    fixed_res = run.state.reservations.join(kept_approved, on="order_id", how="semi")
    fixed_reserved = fixed_res.group_by("sku").agg(pl.col("quantity_reserved").sum().alias("quantity"))
    prepaid = pl.col("payment_status").is_in(list(run.cfg.prepaid_payment_statuses))
    committed = (
        run.orders.join(kept_approved, on="order_id", how="semi").filter(~prepaid.fill_null(False))
        .group_by("customer_id").agg(pl.col("order_total").sum().fill_null(0).alias("amount"))
        .filter(pl.col("customer_id").is_not_null())
    )
    prior_usage = (
        run.orders.join(kept_approved, on="order_id", how="semi").filter(pl.col("promo_code").is_not_null())
        .group_by(pl.col("promo_code").str.to_uppercase().alias("code")).agg(pl.len().cast(pl.Int64).alias("used"))
    )
    if run.others is not None:
        o = run.others
        fixed_reserved = _sum_by(fixed_reserved, o.fixed_reserved, "sku", "quantity", pl.Int64)
        committed = _sum_by(committed, o.committed, "customer_id", "amount", pl.Decimal(38, 2))
        prior_usage = _sum_by(prior_usage, o.prior_usage, "code", "used", pl.Int64)
    return Context(fixed_res, fixed_reserved, committed, prior_usage)


def _sum_by(a: pl.DataFrame, b: pl.DataFrame, key: str, value: str, dtype: pl.DataType) -> pl.DataFrame:
    both = pl.concat([a.select(key, pl.col(value).cast(dtype)), b.select(key, pl.col(value).cast(dtype))])
    return both.group_by(key).agg(pl.col(value).sum()).sort(key)


def _checks(run: Run, sel: Selection, ctx: Context) -> Checked:
    """The registered checks (:func:`som_pipeline.validation.checks.screen`, as ``run_checks`` runs them) on
    the evaluated orders, in priority order; the anomaly baselines come from ``state.anomaly`` when given, else
    from the whole order history (the same results).

    Whole rows are read a part of the orders at a time (a day of TPC-H SF 1 at once held 6M whole lines): the
    registry runs in groups of consecutive checks (:func:`_check_groups`). A group of ``order``/``customer``
    scoped checks runs on each of :func:`_screen_parts` in turn, its whole rows collected from the given frames;
    a part holds whole customers, and every order a check wants ``together`` (promo codes: caps count across
    customers). A ``day`` check (the quantity check: its SKU baselines cross customers) runs once on the day's
    :data:`ORDER_COLUMNS` / :data:`LINE_COLUMNS`. Every part is given the run's priority
    (:func:`~som_pipeline.validation.priority.order_priority` of all evaluated orders) and the findings its orders
    got from the groups before; so each order gets the findings the whole day screened at once gives it (a test
    compares them)."""
    ref = run.ref
    inputs = CheckInputs(
        orders=sel.ev_orders, lines=sel.ev_lines, customers=ref.customers, products=ref.products,
        price_lists=ref.price_lists, promotions=ref.promotions, inventory=ref.inventory, open_items=ref.open_items,
        history_orders=run.orders if run.history_orders is None else run.history_orders,
        history_lines=run.lines if run.history_lines is None else run.history_lines, as_of=run.as_of, cfg=run.cfg,
        prior_usage=ctx.prior_usage, committed=ctx.committed, fixed_reserved=ctx.fixed_reserved,
        anomaly_state=run.state.anomaly,
    )
    inputs.__dict__["priority"] = order_priority(sel.ev_orders, ref.customers, run.cfg)  # the run's order
    groups = _check_groups()
    parts = _screen_parts(sel.ev_orders, [c.together for _, group in groups for c in group if c.together is not None])
    sink, found = _pass_sink(run, sel), []
    for day, group in groups:
        if day:  # the day's columns; a check of the day scope reads no other
            found.append(screen(inputs, passes=sink, only=group, before=_concat(found)))
            continue
        for ids in parts:
            orders, lines = (_rows_of(f, ids) for f in run.source)
            part = replace(inputs, orders=orders, lines=lines)
            part.__dict__["priority"] = inputs.priority  # the run's order, not the part's
            before = _concat(found)
            found.append(screen(part, passes=sink, only=group,
                                before=None if before is None else before.join(ids, on="order_id", how="semi")))
            del orders, lines, part
    return Checked(inputs, _concat(found) if found else empty(ValidationFindingModel))


def _check_groups() -> list[tuple[bool, list[Check]]]:
    """The registry's ``screen`` checks in groups of consecutive checks: ``(True, [check])`` for a ``day``
    scoped check, ``(False, [...])`` for a run of the others."""
    groups: list[tuple[bool, list[Check]]] = []
    for c in registered("screen"):
        day = c.scope == "day"
        if groups and not day and not groups[-1][0]:
            groups[-1][1].append(c)
        else:
            groups.append((day, [c]))
    return groups


def _screen_parts(ev_orders: pl.DataFrame, together: list[pl.Expr] | None = None) -> list[pl.DataFrame]:
    """``[order_id]`` of each part the screen evaluates: about :data:`SCREEN_PART_ORDERS` orders, whole customers
    per part (an order without a customer is a customer of its own), and in the first part every customer with
    an order one of ``together`` matches (e.g. a promo code: the caps count over all coded orders together)."""
    n = -(-ev_orders.height // SCREEN_PART_ORDERS)
    if n <= 1:
        return [ev_orders.select("order_id")]
    key = pl.coalesce(pl.col("customer_id"), pl.lit("\x00") + pl.col("order_id"))
    first = (ev_orders.filter(pl.any_horizontal(together)).select(key.alias("_k")).unique() if together
             else pl.DataFrame(schema={"_k": pl.String}))
    part = pl.when(key.is_in(first["_k"].implode())).then(0).otherwise(key.hash(seed=0) % n).alias("_part")
    keyed = ev_orders.select("order_id", part)
    return [g.select("order_id") for g in keyed.partition_by("_part", maintain_order=True) if g.height]


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    return pl.concat(frames, how="vertical_relaxed") if frames else None


def _pass_sink(run: Run, sel: Selection) -> Callable[[pl.DataFrame], None] | None:
    """``run.passes`` fed with result rows: pass findings of the evaluated orders with their version and the run's
    time (what :func:`_results_with_waivers` adds to the other findings; a pass is never waived)."""
    if run.passes is None:
        return None
    versions, at = sel.ev_orders.select("order_id", "version"), _ts(run.now)

    def sink(found: pl.DataFrame) -> None:
        run.passes(conform(found.join(versions, on="order_id", how="inner", maintain_order="left").with_columns(
            pl.lit(None, dtype=pl.String).alias("waived_by"), at.alias("evaluated_at")), ValidationResultModel))

    return sink


def _manual_decisions(run: Run, results: pl.DataFrame) -> Decisions:
    """Manual decisions apply to the current version of an order; the ones that do not are quarantined."""
    fails = results.filter(pl.col("outcome") == "fail").with_columns(_severity(run.cfg).alias("severity"))
    open_before = fails.filter(pl.col("severity") == "hold").select("order_id", "reason_code").unique()
    applied, rejects = _apply_decisions(run.new_decisions, run.orders, run.state, open_before, run.cfg)
    current_version = run.orders.select("order_id", "version")
    old_decisions = run.state.decisions.join(current_version, on=["order_id", "version"], how="semi")
    all_decisions = pl.concat([old_decisions, applied], how="vertical_relaxed")
    waivers_old, rejects_old = _decision_effects(old_decisions)
    waivers, manual_reject = _decision_effects(all_decisions)
    return Decisions(applied, rejects, waivers_old, rejects_old, waivers, manual_reject)


def _statuses(res: pl.DataFrame, waivers: pl.DataFrame, manual_reject: pl.DataFrame, ev_ids: pl.DataFrame,
              cfg: ValidationConfig) -> pl.DataFrame:
    """Status per evaluated order from the results and the decisions: reject > unwaived hold > approved."""
    f = res.filter(pl.col("outcome") == "fail").with_columns(_severity(cfg).alias("severity")).join(
        waivers.select("order_id", "reason_code", "waived_by"), on=["order_id", "reason_code"], how="left")
    agg = f.group_by("order_id").agg(
        pl.col("reason_code").filter(pl.col("severity") == "reject").unique().sort().alias("reject_codes"),
        pl.col("reason_code").filter((pl.col("severity") == "hold") & pl.col("waived_by").is_null())
        .unique().sort().alias("hold_codes"),
    )
    st = ev_ids.join(agg, on="order_id", how="left").join(
        manual_reject.select("order_id", pl.col("approver").alias("rejected_by")), on="order_id", how="left")
    st = st.with_columns(pl.col("reject_codes").fill_null(_EMPTY), pl.col("hold_codes").fill_null(_EMPTY))
    return st.with_columns(
        pl.when(pl.col("rejected_by").is_not_null() | (pl.col("reject_codes").list.len() > 0)).then(pl.lit(REJECTED))
        .when(pl.col("hold_codes").list.len() > 0).then(pl.lit(ON_HOLD))
        .otherwise(pl.lit(APPROVED)).alias("status")
    )


def _reserving(run: Run, sel: Selection, ctx: Context, checked: Checked, dec: Decisions) -> Reserving:
    """Who reserves stock: the evaluated orders not rejected by the preliminary status (a held order's
    reservation lapses after ``hold_reservation_hours``) and the approved orders waiting for backordered units."""
    pre = _statuses(checked.results, dec.waivers, dec.manual_reject, sel.ev_ids, run.cfg).join(
        sel.evaluate.select("order_id", "prev_status", "prev_expires"), on="order_id")
    lapsed = (pl.col("status") == ON_HOLD) & (pl.col("prev_status") == ON_HOLD) & \
        pl.col("prev_expires").is_not_null() & (pl.col("prev_expires") <= _ts(run.now))
    reserving = pre.filter((pl.col("status") != REJECTED) & ~lapsed.fill_null(False)).select("order_id")
    # approved orders waiting for stock (backordered units) compete for what is free, in priority order,
    # with the evaluated orders; what they already reserved stays theirs
    waiting = ctx.fixed_res.filter(pl.col("quantity_backordered") > 0)
    # only the columns the reserve stage reads are copied (the reserving orders' whole rows: ~1 GB at SF 1)
    oc, lc = list(RESERVE_ORDER_COLUMNS), list(RESERVE_LINE_COLUMNS)
    bo_lines = (
        waiting.group_by("order_id", "line_no").agg(pl.col("requested_sku").first().alias("sku"),
                                                    pl.col("quantity_backordered").sum().alias("quantity"))
        .join(run.lines.select(lc).drop("sku", "quantity"), on=["order_id", "line_no"], how="inner")
    )
    bo_orders = run.orders.select(oc).join(bo_lines.select("order_id").unique(), on="order_id", how="semi")
    res_orders = pl.concat([sel.ev_orders.select(oc).join(reserving, on="order_id", how="semi"), bo_orders])
    res_lines = pl.concat([sel.ev_lines.select(lc).join(reserving, on="order_id", how="semi"), bo_lines.select(lc)])
    return Reserving(res_orders, res_lines, bo_orders.select("order_id"))


def _without_lines(run: Run, sel: Selection, checked: Checked) -> tuple[Run, Selection, Checked]:
    """``run``, ``sel`` and ``checked`` without the day's order lines (every reference to them: the phases after
    the reserving rows read none)."""
    none = run.lines.clear()
    return (replace(run, lines=none, history_lines=None if run.history_lines is None else none, source=None),
            replace(sel, ev_lines=none),
            replace(checked, inputs=replace(checked.inputs, lines=none, history_lines=none)))


def _stock(run: Run, sel: Selection, ctx: Context, checked: Checked, dec: Decisions, rsv: Reserving) -> Stock:
    """Stock is reserved for :func:`_reserving`'s orders in priority order; then the statuses."""
    res_all, inv_all = reserve(replace(checked.inputs, orders=rsv.orders, lines=rsv.lines))
    if rsv.topped.height:
        fixed_res = _top_up(ctx.fixed_res, res_all.join(rsv.topped, on="order_id", how="semi"))
        res_new = res_all.join(rsv.topped, on="order_id", how="anti")
        inv_results = inv_all.join(rsv.topped, on="order_id", how="anti")
    else:  # no approved order waits for stock: nothing to split off (no copy of the day's reservations)
        fixed_res, res_new, inv_results = ctx.fixed_res, res_all, inv_all
    del res_all, inv_all
    inv_results = hand_over_passes(inv_results, _pass_sink(run, sel))
    results = pl.concat([checked.results, inv_results], how="vertical_relaxed")
    final = _statuses(results, dec.waivers, dec.manual_reject, sel.ev_ids, run.cfg).join(
        sel.evaluate.select("order_id", "version", "prev_status", "prev_since"), on="order_id")
    # what the checks alone (with the decisions of earlier runs) say: the first step of this run's history
    by_system = _statuses(results, dec.waivers_old, dec.rejects_old, sel.ev_ids, run.cfg)
    return Stock(results, res_new, fixed_res, final, by_system)


def _holds(run: Run, sel: Selection, stock: Stock) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Open holds: (of the evaluated orders, all: with the kept orders'). A hold keeps its ``since`` while its
    cause persists."""
    f = stock.results.filter(pl.col("outcome") == "fail").with_columns(_severity(run.cfg).alias("severity"))
    hold_rows = (
        stock.final.select("order_id", "version", pl.col("hold_codes").alias("reason_code"), "status")
        .filter(pl.col("status") == ON_HOLD).explode("reason_code")
        .join(f.group_by("order_id", "reason_code").agg(
            pl.col("message").first().alias("message"),
            pl.len().alias("_n"),
            pl.concat_str([pl.lit("["), pl.col("evidence").str.join(","), pl.lit("]")]).alias("evidence"),
        ), on=["order_id", "reason_code"], how="left")
        .with_columns(pl.when(pl.col("_n") > 1).then(pl.format("{} (+{} more)", pl.col("message"), pl.col("_n") - 1))
                      .otherwise(pl.col("message")).alias("message"))
        .join(run.state.holds.select("order_id", "version", "reason_code", pl.col("since").alias("_since")),
              on=["order_id", "version", "reason_code"], how="left")
        .with_columns(pl.coalesce(pl.col("_since"), _ts(run.now)).alias("since"))
    )
    holds = conform(hold_rows, OrderHoldModel)
    return holds, pl.concat([run.state.holds.join(sel.kept.select("order_id"), on="order_id", how="semi"), holds])


def _new_status_rows(run: Run, stock: Stock, holds: pl.DataFrame, dec: Decisions) -> pl.DataFrame:
    """Status rows of the evaluated orders: reasons, since, actor, when a held reservation expires."""
    now = _ts(run.now)
    hold_since = holds.group_by("order_id").agg(pl.col("since").min().alias("_hold_since"))
    reasons = (pl.when(pl.col("status") == REJECTED)
               .then(pl.concat_list([pl.col("reject_codes"),
                                     pl.when(pl.col("rejected_by").is_not_null()).then(pl.lit(["MANUAL_REJECT"]))
                                     .otherwise(_EMPTY)]))
               .when(pl.col("status") == ON_HOLD).then(pl.col("hold_codes"))
               .otherwise(_EMPTY))
    approved_by = dec.waivers.group_by("order_id").agg(pl.col("waived_by").last().alias("_approver"))
    return (
        stock.final.join(hold_since, on="order_id", how="left").join(approved_by, on="order_id", how="left")
        .with_columns(
            reasons.list.join("|").alias("reasons"),
            pl.when(pl.col("status") == pl.col("prev_status")).then(pl.col("prev_since"))
            .otherwise(now).alias("since"),
            pl.when(pl.col("rejected_by").is_not_null()).then(pl.col("rejected_by"))
            .when((pl.col("status") == APPROVED) & pl.col("_approver").is_not_null()).then(pl.col("_approver"))
            .otherwise(pl.lit("system")).alias("actor"),
            now.alias("evaluated_at"),
            pl.when(pl.col("status") == ON_HOLD)
            .then(pl.col("_hold_since") + pl.duration(hours=run.cfg.hold_reservation_hours))
            .alias("reservation_expires_at"),
        )
    )


def _status_rows(run: Run, sel: Selection, st_new: pl.DataFrame) -> pl.DataFrame:
    """The full core.order_status: kept, evaluated, cancelled and historical orders."""
    now = _ts(run.now)

    def fixed(frame: pl.DataFrame, status: str, reason: str) -> pl.DataFrame:
        return frame.select(
            "order_id", "version", pl.lit(status).alias("status"), pl.lit(reason).alias("reasons"),
            pl.when(pl.col("prev_status") == status).then(pl.col("prev_since")).otherwise(now).alias("since"),
            pl.lit("system").alias("actor"), now.alias("evaluated_at"),
        )

    st_cancel = fixed(sel.cancelled, CANCELLED, "CANCELLED_AT_CHANNEL")
    st_hist = fixed(sel.historical, HISTORICAL, "PLACED_BEFORE_VALIDATION_START")
    st_kept = run.state.status.join(sel.kept.select("order_id"), on="order_id", how="semi")
    return pl.concat([conform(st_kept, OrderStatusModel), conform(st_new, OrderStatusModel),
                      conform(st_cancel, OrderStatusModel), conform(st_hist, OrderStatusModel)]).sort("order_id")


def _reservations(run: Run, stock: Stock, st_new: pl.DataFrame) -> pl.DataFrame:
    """The full core.reservations: the kept approved orders' (topped up), then the evaluated orders' in the order
    they were served (priority). One lazy plan, not sorted (the warehouse table has no order; sorting a day of
    TPC-H SF 1's 6M rows by order was the run's largest step after the reservation itself)."""
    res = stock.res_new.lazy().join(
        st_new.lazy().select("order_id", pl.col("status").alias("order_status"),
                             pl.col("reservation_expires_at").alias("expires_at")), on="order_id", maintain_order="left")
    if run.state.reservations.height:  # a reservation unchanged since an earlier run keeps when it was made
        res = res.join(run.state.reservations.lazy().select("order_id", "line_no", "sku", "quantity_reserved",
                                                            pl.col("reserved_at").alias("_prev_at")),
                       on=["order_id", "line_no", "sku", "quantity_reserved"], how="left", maintain_order="left")
    else:
        res = res.with_columns(pl.lit(None, dtype=TS).alias("_prev_at"))
    res = res.with_columns(pl.coalesce(pl.col("_prev_at"), _ts(run.now)).alias("reserved_at"))
    schema = polars_schema(ReservationModel)
    return pl.concat([conform(stock.fixed_res, ReservationModel).lazy(), res.select(list(schema)).cast(schema)]).collect()


def _results_with_waivers(run: Run, sel: Selection, stock: Stock, dec: Decisions) -> pl.DataFrame:
    """core.validation_results rows of the evaluated orders: version, who waived a failure, when."""
    # the new columns are looked up on the key columns alone and added to the findings: joining the findings
    # themselves copied every row (TPC-H SF 1: 10M findings, +1 GB while both copies lived)
    keys = stock.results.select("order_id", "reason_code")
    version = keys.join(sel.ev_orders.select("order_id", "version"), on="order_id", how="left",
                        maintain_order="left")["version"]
    waived_by = keys.join(dec.waivers.select("order_id", "reason_code", "waived_by"), on=["order_id", "reason_code"],
                          how="left", maintain_order="left")["waived_by"]
    out = stock.results.with_columns(version, waived_by, _ts(run.now).alias("evaluated_at"))
    if version.null_count():  # findings of orders not evaluated (none: the checks ran on the evaluated orders)
        out = out.filter(pl.col("version").is_not_null())
    return conform(out, ValidationResultModel)


# ------------------------------------------------------------------------------------------------
# Helpers of the phases
# ------------------------------------------------------------------------------------------------
def _apply_decisions(new: pl.DataFrame, orders: pl.DataFrame, state: State, open_holds: pl.DataFrame,
                     cfg: ValidationConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split new decisions into applicable ones (with version and concrete hold codes) and rejects."""
    known_codes = set(cfg.severity)
    d = new.join(orders.select("order_id", "version"), on="order_id", how="left")
    already = state.decisions.select("decision_id")
    d = d.join(already, on="decision_id", how="anti")
    open_codes = open_holds.group_by("order_id").agg(pl.col("reason_code").sort().alias("_open"))
    d = d.join(open_codes, on="order_id", how="left").with_columns(
        pl.col("_open").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.when(pl.col("hold_codes") == "*").then(pl.lit([], dtype=pl.List(pl.String)))
        .otherwise(pl.col("hold_codes").str.split("|")).alias("_named"),
    )
    unknown_code = pl.col("_named").list.eval(pl.element().is_in(sorted(known_codes)).not_()).list.any()
    not_open = pl.col("_named").list.set_difference(pl.col("_open")).list.len() > 0
    reason = (
        pl.when(pl.col("version").is_null()).then(pl.lit("UNKNOWN_ORDER"))
        .when(unknown_code).then(pl.lit("BAD_DECISION"))
        .when(pl.col("_open").list.len() == 0).then(pl.lit("HOLD_NOT_OPEN"))
        .when(not_open).then(pl.lit("HOLD_NOT_OPEN"))
    )
    message = (
        pl.when(pl.col("version").is_null()).then(pl.format("no order {} (use core.orders.order_id)", pl.col("order_id")))
        .when(unknown_code).then(pl.format("unknown hold code(s) in '{}'", pl.col("hold_codes")))
        .when(pl.col("_open").list.len() == 0)
        .then(pl.format("order {} is not on hold (nothing to {})", pl.col("order_id"), pl.col("decision")))
        .when(not_open).then(pl.format("hold(s) {} not open on order {} (open: {})",
                                       pl.col("_named").list.set_difference(pl.col("_open")).list.join("|"),
                                       pl.col("order_id"), pl.col("_open").list.join("|")))
    )
    d = d.with_columns(reason.alias("reason_code"), message.alias("message"))
    rejects = d.filter(pl.col("reason_code").is_not_null()).select(
        "decision_id", "location", "source_file", pl.col("order_id").alias("order_ref"), "reason_code", "message", "raw")
    ok = d.filter(pl.col("reason_code").is_null()).with_columns(
        pl.when(pl.col("hold_codes") == "*").then(pl.col("_open").list.join("|")).otherwise(pl.col("hold_codes"))
        .alias("hold_codes"))
    return conform(ok, ManualDecisionModel), rejects


def _top_up(held: pl.DataFrame, fills: pl.DataFrame) -> pl.DataFrame:
    """Add backorder fills to the reservations of approved orders (what they held stays theirs)."""
    if fills.height == 0:
        return held
    touched = fills.select("order_id").unique()
    base = held.join(touched, on="order_id", how="semi").with_columns(
        (pl.col("quantity_requested") - pl.col("quantity_backordered")).alias("quantity_requested"),
        pl.lit(0, dtype=pl.Int64).alias("quantity_backordered"))
    merged = (
        pl.concat([base.select(fills.columns), fills], how="vertical_relaxed")
        .group_by("order_id", "line_no", "sku")
        .agg(pl.col("requested_sku").first(), pl.col("quantity_requested").sum(), pl.col("quantity_reserved").sum(),
             pl.col("quantity_backordered").sum(), pl.col("decision").first().alias("_was"))
        .with_columns(
            pl.when(pl.col("sku") != pl.col("requested_sku")).then(pl.lit("SUBSTITUTE"))
            # a ship-complete order still short on any line keeps every line waiting
            .when((pl.col("_was") == "WAIT_SHIP_COMPLETE") & (pl.col("quantity_backordered").sum().over("order_id") > 0))
            .then(pl.lit("WAIT_SHIP_COMPLETE"))
            .when(pl.col("quantity_backordered") == 0).then(pl.lit("RESERVE"))
            .when(pl.col("quantity_reserved") > 0).then(pl.lit("SPLIT"))
            .otherwise(pl.lit("BACKORDER")).alias("decision"))
        .join(held.select("order_id", "line_no", "sku", "order_status", "reserved_at", "expires_at"),
              on=["order_id", "line_no", "sku"], how="left")
        .with_columns(pl.col("order_status").fill_null(APPROVED),
                      pl.coalesce("reserved_at", pl.col("reserved_at").max().over("order_id")).alias("reserved_at"))
    )
    return pl.concat([held.join(touched, on="order_id", how="anti"), conform(merged, ReservationModel)])


def _decision_effects(decisions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(waivers [order_id, reason_code, waived_by, decision_id], rejections [order_id, approver, reason, decision_id])."""
    waivers = (
        decisions.filter(pl.col("decision") == "approve")
        .with_columns(pl.col("hold_codes").str.split("|").alias("code")).explode("code")
        .sort("decided_at").group_by("order_id", "code").agg(pl.col("approver").last(), pl.col("decision_id").last())
        .rename({"code": "reason_code", "approver": "waived_by"})
    )
    rejects = (decisions.filter(pl.col("decision") == "reject").sort("decided_at")
               .group_by("order_id").agg(pl.col("approver").last(), pl.col("reason").last(), pl.col("decision_id").last()))
    return waivers, rejects


_EMPTY = pl.lit([], dtype=pl.List(pl.String))


def _events(run: Run, status: pl.DataFrame, touched: pl.DataFrame, stock: Stock, dec: Decisions) -> pl.DataFrame:
    """Events of this run (:func:`som_pipeline.lifecycle.order_events`): (1) what the checks say vs the previous
    state (actor system); (2) for orders a decision of this run changed, the decision's own step (actor: the
    approver)."""
    state, by_system = run.state, stock.by_system
    prev = state.status.select("order_id", pl.col("status").alias("from_status"), pl.col("version").alias("_pv")).join(
        state.holds.group_by("order_id").agg(pl.col("reason_code").sort().alias("_before")), on="order_id", how="left")
    cur = status.join(touched, on="order_id", how="semi").select("order_id", "version", "status", "reasons")
    one = cur.join(by_system.select("order_id", pl.col("status").alias("_sys"), pl.col("hold_codes").alias("_after"),
                                    pl.col("reject_codes").alias("_rej")), on="order_id", how="left")
    one = one.with_columns(
        pl.coalesce("_sys", "status").alias("to_status"),
        pl.col("_after").fill_null(_EMPTY),
        pl.when(pl.col("_sys").is_null()).then(pl.col("reasons"))
        .when(pl.col("_sys") == REJECTED).then(pl.col("_rej").list.join("|")).alias("_reasons"),
    ).join(prev, on="order_id", how="left").with_columns(pl.col("_before").fill_null(_EMPTY))
    step1 = _status_changes(one, run.now, actor=pl.lit("system"), decision=pl.lit(None, dtype=pl.String))

    # step 2: this run's decisions
    last = dec.applied.sort("decided_at").group_by("order_id").agg(
        pl.col("approver").last().alias("_by"), pl.col("reason").last().alias("_why"),
        pl.col("decision").last().alias("_dec"), pl.col("decision_id").last().alias("_dec_id"),
        pl.col("hold_codes").last().alias("_codes"))
    two = (
        cur.join(last, on="order_id", how="inner")
        .join(by_system.select("order_id", pl.col("status").alias("from_status"), pl.col("hold_codes").alias("_before")),
              on="order_id", how="left")
        .join(stock.final.select("order_id", pl.col("hold_codes").alias("_after")), on="order_id", how="left")
        .with_columns(pl.col("status").alias("to_status"), pl.col("version").alias("_pv"),
                      pl.col("_before").fill_null(_EMPTY), pl.col("_after").fill_null(_EMPTY))
    )
    verb = pl.when(pl.col("_dec") == "reject").then(pl.lit("manual rejection")).otherwise(pl.lit("manual approval"))
    two = two.with_columns(pl.format("{} by {}: {} (decision on: {})", verb, pl.col("_by"), pl.col("_why"),
                                     pl.col("_codes")).alias("_reasons"))
    # the decision's step comes right after the checks' step of the same run (1 microsecond later)
    step2 = _status_changes(two, run.now + timedelta(microseconds=1), actor=pl.col("_by"), decision=pl.col("_dec_id"),
                            force=True)
    return order_events(pl.concat([step1, step2]))


def _status_changes(df: pl.DataFrame, at: datetime, *, actor: pl.Expr, decision: pl.Expr,
                    force: bool = False) -> pl.DataFrame:
    """Event columns (:data:`som_pipeline.lifecycle.EVENT_COLUMNS`) for the rows of ``df`` whose status, version
    or open holds changed (all rows if ``force``). Needs: order_id, version, from_status, to_status, _pv,
    _before, _after, _reasons."""
    opened = pl.col("_after").list.set_difference(pl.col("_before"))
    released = pl.col("_before").list.set_difference(pl.col("_after"))
    changed = (pl.col("from_status").is_null() | (pl.col("from_status") != pl.col("to_status"))
               | (pl.col("_pv") != pl.col("version")) | (opened.list.len() > 0) | (released.list.len() > 0))
    if not force:
        df = df.filter(changed)
    df = df.with_columns(opened.alias("_opened"), released.alias("_released"))
    st = pl.col("to_status")
    reason = (
        pl.when(pl.lit(force)).then(pl.col("_reasons"))
        .when(st == CANCELLED).then(pl.lit("cancelled at the channel; reservations and holds released"))
        .when(st == HISTORICAL).then(pl.lit("placed before the validation start (workflow.history_before)"))
        .when(st == REJECTED).then(pl.format("rejected: {}", pl.col("_reasons")))
        .when((st == APPROVED) & (pl.col("_released").list.len() > 0))
        .then(pl.format("hold released, cause gone: {}", pl.col("_released").list.join(", ")))
        .when(st == APPROVED).then(pl.lit("all checks passed"))
        .when(pl.col("_released").list.len() > 0)
        .then(pl.format("on hold: {} (released: {})", pl.col("_after").list.join(", "), pl.col("_released").list.join(", ")))
        .otherwise(pl.format("on hold: {}", pl.col("_after").list.join(", ")))
    )
    return df.select(
        "order_id", "version", "from_status", "to_status",
        reason.alias("reason"),
        actor.alias("actor"),
        pl.lit(at).cast(TS).alias("at"),
        details(holds_opened=pl.col("_opened"), holds_released=pl.col("_released"), holds_open=pl.col("_after"),
                decision_id=decision, previous_version=pl.col("_pv")).alias("details"),
    )


def hold_summary(status: pl.DataFrame, holds: pl.DataFrame) -> dict[str, int]:
    """Open holds by reason code (for run metadata and the summary)."""
    return dict(holds.group_by("reason_code").len().sort("reason_code").rows())


def explain(events: pl.DataFrame, order_id: str) -> list[str]:
    """The history of one order in words (oldest first)."""
    e = events.filter(pl.col("order_id") == order_id).sort("at")
    return [f"{r['at']:%Y-%m-%d %H:%M} {r['from_status'] or 'NEW'} -> {r['to_status']}: {r['reason']} ({r['actor']})"
            for r in e.iter_rows(named=True)]

