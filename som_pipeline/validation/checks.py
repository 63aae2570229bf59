"""The check registry: every validation check, in the order it runs, and the one code path that runs it.

:data:`CHECKS` is the only list of checks. Both entry points run it through the same two functions,
:func:`screen` and :func:`reserve`, with the same arguments (a :class:`CheckInputs`):

- production: :func:`som_pipeline.validation.workflow.run_workflow` (the pipeline's validation stage);
- tests and ``bench/bench_validation.py``: :func:`run_checks` (one evaluation without workflow state).

A check is wired in by one :class:`Check` record: its rule name (a ``schemas.VALIDATION_RULES`` entry), the
function, and the names of the :class:`CheckInputs` attributes it takes -- passed as keyword arguments of the
same names, so a record can only name inputs its function has (a test checks every record against the
function's signature). Two stages:

``screen``
    every evaluated order; returns rows of :data:`~som_pipeline.validation.results.RESULT_SCHEMA`.
``reserve``
    after the screen, only the orders the caller lets reserve stock (not rejected; the workflow also leaves
    out held orders whose reservation lapsed and adds approved orders waiting for backordered units);
    returns ``(reservations, results)``. Its checks read only :data:`RESERVE_ORDER_COLUMNS` /
    :data:`RESERVE_LINE_COLUMNS` of the orders and lines (the workflow passes those alone).

Each record also says which other orders a check's findings depend on (its ``scope``: none, the same
customer's, or any of the day's): the workflow screens a day in parts of whole customers and runs a ``day``
check once, on the columns it holds for every order (``workflow._checks``), and gets what one pass over the
whole day gives (a test compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cached_property
from typing import Any, Literal

import polars as pl

from som_pipeline.validation.anomaly import check_quantity_anomaly
from som_pipeline.validation.config import ValidationConfig, load_config
from som_pipeline.validation.credit import check_credit
from som_pipeline.validation.frames import Frame, eager
from som_pipeline.validation.inventory import LINE_COLUMNS as RESERVE_LINE_COLUMNS
from som_pipeline.validation.inventory import ORDER_COLUMNS as RESERVE_ORDER_COLUMNS
from som_pipeline.validation.inventory import RESERVATION_SCHEMA, reserve_inventory
from som_pipeline.validation.priority import order_priority
from som_pipeline.validation.results import empty_results
from som_pipeline.validation.rules import (
    check_compliance,
    check_customer,
    check_price,
    check_promo,
    estimate_order_totals,
)

Stage = Literal["screen", "reserve"]
Scope = Literal["order", "customer", "day"]


@dataclass(frozen=True)
class CheckInputs:
    """Everything a check may take, by name. ``orders``/``lines`` are the orders being evaluated (eager)."""

    orders: pl.DataFrame
    lines: pl.DataFrame
    customers: Frame
    products: Frame
    price_lists: Frame
    promotions: Frame
    inventory: Frame
    open_items: Frame
    history_orders: Frame  # anomaly baseline; may include the evaluated orders (only what lies before counts)
    history_lines: Frame
    as_of: date
    cfg: ValidationConfig
    prior_usage: Frame | None = None  # [code, used]: promo uses of earlier runs
    committed: Frame | None = None  # [customer_id, amount]: approved-but-unbilled exposure of earlier runs
    fixed_reserved: Frame | None = None  # [sku, quantity]: stock held by orders approved in earlier runs
    screened: pl.DataFrame | None = None  # findings of the screening checks that ran before this one
    # anomaly baselines' state (core.anomaly_baselines rows of the groups touched + observations not yet in it);
    # None: the baselines are computed from history_orders / history_lines
    anomaly_state: Frame | None = None

    # Derived inputs: computed on first use, once per CheckInputs (``dataclasses.replace`` starts afresh).
    @cached_property
    def priority(self) -> pl.DataFrame:
        """``[order_id, priority]`` of ``orders`` (:func:`~som_pipeline.validation.priority.order_priority`)."""
        return order_priority(self.orders, self.customers, self.cfg)

    @cached_property
    def order_values(self) -> pl.DataFrame:
        """``[order_id, value]``: order totals, list-price estimates for unpriced orders."""
        return estimate_order_totals(self.orders, self.lines, self.customers, self.price_lists)


DERIVED_INPUTS = ("priority", "order_values")


@dataclass(frozen=True)
class Check:
    """One registered check: ``fn(**{name: getattr(inputs, name) for name in inputs})``."""

    rule: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...]
    stage: Stage = "screen"
    # which orders a finding depends on, besides the order itself (reference data, config, the run's priority):
    # "order" -- none: run_check runs it in parts of PART_ORDERS orders when there are more (same rows: every
    #   part's are sorted as one run's);
    # "customer" -- the same customer's orders (and the orders ``together`` matches, all of them together):
    #   the workflow screens parts of whole customers;
    # "day" -- any order of the run: the workflow runs it once over the day, on the columns it holds for every
    #   order (workflow.ORDER_COLUMNS / LINE_COLUMNS: the check must read no other).
    scope: Scope = "order"
    together: pl.Expr | None = None  # "customer" scope: orders evaluated together across customers


CHECKS: tuple[Check, ...] = (
    Check("customer", check_customer, ("orders", "customers", "cfg")),
    Check("compliance", check_compliance, ("orders", "lines", "products", "cfg")),
    Check("price", check_price, ("orders", "lines", "customers", "price_lists", "promotions", "cfg", "products")),
    # usage caps are counted over every order with a code, in priority order
    Check("promo", check_promo,
          ("orders", "lines", "customers", "products", "promotions", "prior_usage", "cfg", "priority"),
          scope="customer", together=pl.col("promo_code").is_not_null()),
    # baselines: the customer's history and every customer's history of the SKU
    Check("quantity", check_quantity_anomaly,
          ("orders", "lines", "history_orders", "history_lines", "cfg", "anomaly_state"), scope="day"),
    # exposure: the customer's other orders
    Check("credit", check_credit,
          ("orders", "customers", "open_items", "committed", "as_of", "cfg", "priority", "order_values",
           "screened"), scope="customer"),
    Check("inventory", reserve_inventory,
          ("orders", "lines", "customers", "products", "inventory", "fixed_reserved", "cfg", "priority"),
          stage="reserve", scope="day"),
)

Runner = Callable[[Check, CheckInputs], Any]


PART_ORDERS = 250_000


def run_check(check: Check, inputs: CheckInputs) -> Any:
    """Call one registered check with the inputs its record names (an ``order``-scoped check on more than
    :data:`PART_ORDERS` orders: in parts, concatenated and sorted as :func:`~som_pipeline.validation.results.collect`
    sorts one run's findings -- a day of TPC-H SF 1's price findings in one pass peaked at +3.2 GB)."""
    if not (check.scope == "order" and inputs.orders.height > PART_ORDERS):
        return check.fn(**{name: getattr(inputs, name) for name in check.inputs})
    parts = []
    for i in range(0, inputs.orders.height, PART_ORDERS):
        orders = inputs.orders.slice(i, PART_ORDERS)
        part = replace(inputs, orders=orders, lines=inputs.lines.join(orders.select("order_id"), on="order_id",
                                                                     how="semi"))
        parts.append(check.fn(**{name: getattr(part, name) for name in check.inputs}))
    return pl.concat(parts).sort(["order_id", "rule", "line_no"], nulls_last=False, maintain_order=True)


def registered(stage: Stage) -> list[Check]:
    """The checks of ``stage``, in registry order (read at call time: a patched registry is what runs)."""
    return [c for c in CHECKS if c.stage == stage]


def _with_screened(inputs: CheckInputs, parts: list[pl.DataFrame]) -> CheckInputs:
    """``inputs`` with ``screened`` = the findings so far; the derived inputs already computed carry over
    (they depend on the orders, customers and config, which do not change)."""
    out = replace(inputs, screened=pl.concat(parts, how="vertical_relaxed") if parts else empty_results())
    out.__dict__.update({k: inputs.__dict__[k] for k in DERIVED_INPUTS if k in inputs.__dict__})
    return out


def hand_over_passes(found: pl.DataFrame, passes: Callable[[pl.DataFrame], None] | None) -> pl.DataFrame:
    """``found`` less its ``pass`` rows, which are handed to ``passes`` (``found`` as it is without ``passes``)."""
    if passes is None:
        return found
    passing = pl.col("outcome") == "pass"
    passes(found.filter(passing))
    return found.filter(~passing)


def screen(inputs: CheckInputs, runner: Runner = run_check,
           passes: Callable[[pl.DataFrame], None] | None = None, *, only: Sequence[Check] | None = None,
           before: pl.DataFrame | None = None) -> pl.DataFrame:
    """Result rows of every ``screen`` check on ``inputs.orders``, concatenated in registry order. A check
    that names the input ``screened`` receives the findings of the checks before it (credit: only the orders
    the pass approves count in a later order's exposure; it reads their failures alone).

    ``only``: these checks alone (consecutive ``screen`` checks of the registry; the workflow runs the registry
    in such groups, see ``workflow._checks``), with ``before`` the findings the checks before them gave these
    orders (not returned again).

    ``passes``: when given, each check's ``pass`` rows are handed to it as the check returns them and only the
    other rows (failures, warnings) are kept and returned -- a day's pass rows are most of its findings (TPC-H
    SF 1: 9.6M of 10M rows, 1.5 GB), and nothing the workflow decides reads them."""
    prior = [] if before is None else [before]
    parts: list[pl.DataFrame] = []
    for c in registered("screen") if only is None else only:
        found = runner(c, _with_screened(inputs, prior + parts) if "screened" in c.inputs else inputs)
        parts.append(hand_over_passes(found, passes))
    return pl.concat(parts, how="vertical_relaxed") if parts else empty_results()


def reserve(inputs: CheckInputs, runner: Runner = run_check) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(reservations, results)`` of the ``reserve`` checks on ``inputs.orders`` (the orders allowed to reserve)."""
    outs = [runner(c, inputs) for c in registered("reserve")]
    if not outs:
        return pl.DataFrame(schema=RESERVATION_SCHEMA), empty_results()
    return pl.concat([r for r, _ in outs]), pl.concat([f for _, f in outs], how="vertical_relaxed")


# ------------------------------------------------------------------------------------------------
# One evaluation without workflow state (tests, benchmark)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationRun:
    """Everything :func:`run_checks` produced."""

    priority: pl.DataFrame      # [order_id, priority]
    results: pl.DataFrame       # RESULT_SCHEMA, every rule
    reservations: pl.DataFrame  # RESERVATION_SCHEMA
    rejected: pl.DataFrame      # [order_id]: orders with a reject-severity finding (they reserved nothing)


def rejected_orders(results: pl.DataFrame, cfg: ValidationConfig) -> pl.DataFrame:
    """``[order_id]`` of the orders with at least one finding whose severity is ``reject``."""
    codes = [c for c, s in cfg.severity.items() if s == "reject"]
    return results.filter(pl.col("reason_code").is_in(codes)).select("order_id").unique().sort("order_id")


def run_checks(
    orders: Frame,
    lines: Frame,
    *,
    customers: Frame,
    products: Frame,
    price_lists: Frame,
    promotions: Frame,
    inventory: Frame,
    open_items: Frame,
    as_of: date,
    history_orders: Frame | None = None,
    history_lines: Frame | None = None,
    prior_usage: Frame | None = None,
    committed: Frame | None = None,
    fixed_reserved: Frame | None = None,
    anomaly_state: Frame | None = None,
    cfg: ValidationConfig | None = None,
    runner: Runner = run_check,
    sort: bool = True,
) -> ValidationRun:
    """Run every registered check on ``orders``/``lines``; the orders not rejected reserve stock.

    What the workflow does on a first run (no earlier state, no manual decisions). ``history_orders`` /
    ``history_lines`` default to the evaluated orders themselves (only what lies strictly before each order
    counts). Unpriced orders are valued at list price for the credit check (:func:`estimate_order_totals`).
    Results are sorted by ``order_id, rule, line_no`` unless ``sort`` is false (the pipeline does not sort
    them; the benchmark neither). ``runner`` calls one check (the benchmark passes a timing wrapper around
    :func:`run_check`).
    """
    cfg = cfg or load_config()
    orders, lines = eager(orders), eager(lines)
    inputs = CheckInputs(
        orders=orders, lines=lines, customers=customers, products=products, price_lists=price_lists,
        promotions=promotions, inventory=inventory, open_items=open_items,
        history_orders=orders if history_orders is None else history_orders,
        history_lines=lines if history_lines is None else history_lines,
        as_of=as_of, cfg=cfg, prior_usage=prior_usage, committed=committed, fixed_reserved=fixed_reserved,
        anomaly_state=anomaly_state,
    )
    screened = screen(inputs, runner)
    rejected = rejected_orders(screened, cfg)
    keep = replace(inputs, orders=orders.join(rejected, on="order_id", how="anti"),
                   lines=lines.join(rejected, on="order_id", how="anti"))
    reservations, inv_results = reserve(keep, runner)
    results = pl.concat([screened, inv_results], how="vertical_relaxed")
    if sort:
        results = results.sort(["order_id", "rule", "line_no"], nulls_last=False, maintain_order=True)
    return ValidationRun(priority=inputs.priority, results=results, reservations=reservations, rejected=rejected)


__all__ = ["CHECKS", "DERIVED_INPUTS", "RESERVE_LINE_COLUMNS", "RESERVE_ORDER_COLUMNS", "Check", "CheckInputs",
           "Runner", "Scope", "Stage", "ValidationRun", "hand_over_passes", "registered", "rejected_orders", "reserve",
           "run_check", "run_checks", "screen"]
