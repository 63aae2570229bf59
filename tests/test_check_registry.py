"""The check registry (som_pipeline.validation.checks) is the only list of checks: the pipeline (run_workflow)
and the tests/benchmark (run_checks) run exactly it, with the same inputs."""

from __future__ import annotations

import inspect
from dataclasses import fields, replace
from datetime import timedelta
from decimal import Decimal

import polars as pl
import pytest

from som_pipeline import schemas
from som_pipeline.validation import checks, results
from som_pipeline.validation.approvals import DECISION_SCHEMA
from som_pipeline.validation.checks import CHECKS, DERIVED_INPUTS, Check, CheckInputs, run_checks
from som_pipeline.validation.workflow import Reference, State, run_workflow
from tests.builders import (
    AS_OF,
    CFG,
    NO_ITEMS,
    NO_PROMOS,
    T0,
    customers,
    lines,
    open_items,
    orders,
    prices,
    products,
    stock,
)

D = Decimal
NOW = T0 + timedelta(days=1)
CFG1 = replace(CFG, as_of=AS_OF)  # the workflow and run_checks evaluate on the same day
NO_DECISIONS = pl.DataFrame(schema=DECISION_SCHEMA)


def world():
    """Orders covering every stage: clean, rejected (embargo), held (credit), short of stock, unknown customer."""
    c = customers({"customer_id": "C1", "credit_limit": D("1000.00")},
                  {"customer_id": "C2", "tier": "gold", "credit_limit": D("100000.00")})
    p = products({"sku": "S1"}, {"sku": "S2"})
    pl_ = prices({"sku": "S1"}, {"sku": "S2"}, {"tier": "gold", "sku": "S1"}, {"tier": "gold", "sku": "S2"})
    o = orders({"order_id": "CLEAN", "customer_id": "C2"},
               {"order_id": "EMBARGO", "customer_id": "C2", "ship_to_country": "IR",
                "ship_to_postal_code": "1966734511", "order_ts": T0 - timedelta(hours=2)},
               {"order_id": "CREDIT", "customer_id": "C1", "order_total": D("300.00"),
                "items_subtotal": D("300.00"), "order_ts": T0 + timedelta(hours=1)},
               {"order_id": "SHORT", "customer_id": "C2", "order_ts": T0 + timedelta(hours=2)},
               {"order_id": "NOBODY", "customer_id": None, "order_ts": T0 + timedelta(hours=3)})
    ln = lines({"order_id": "CLEAN", "quantity": 10}, {"order_id": "EMBARGO", "quantity": 5},
               {"order_id": "CREDIT", "quantity": 30, "sku": "S2"}, {"order_id": "SHORT", "quantity": 50},
               {"order_id": "NOBODY", "quantity": 1, "sku": "S2"})
    ref = Reference(customers=c, products=p, price_lists=pl_, promotions=NO_PROMOS, inventory=stock(S1=10, S2=100),
                    open_items=open_items({"customer_id": "C1", "amount_open": D("900.00")}))
    return o, ln, ref


def workflow(o, ln, ref):
    return run_workflow(o, ln, State.empty(), NO_DECISIONS, ref, CFG1, NOW)


def checks_only(o, ln, ref):
    return run_checks(o, ln, customers=ref.customers, products=ref.products, price_lists=ref.price_lists,
                      promotions=ref.promotions, inventory=ref.inventory, open_items=ref.open_items, as_of=AS_OF,
                      cfg=CFG1)


# ------------------------------------------------------------------------------------------------
# The registry itself
# ------------------------------------------------------------------------------------------------
def test_rule_names_are_defined_once_and_agree():
    assert [c.rule for c in CHECKS] == list(schemas.VALIDATION_RULES)
    assert results.RULES == tuple(schemas.VALIDATION_RULES)
    assert len({c.rule for c in CHECKS}) == len(CHECKS)


def test_every_record_names_exactly_what_its_function_takes():
    available = {f.name for f in fields(CheckInputs)} | set(DERIVED_INPUTS)
    for c in CHECKS:
        params = inspect.signature(c.fn).parameters
        required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
        assert set(c.inputs) <= set(params), (c.rule, set(c.inputs) - set(params))
        assert required <= set(c.inputs), (c.rule, required - set(c.inputs))
        assert set(c.inputs) <= available, (c.rule, set(c.inputs) - available)
    assert [c.stage for c in CHECKS] == ["screen"] * 6 + ["reserve"]


# ------------------------------------------------------------------------------------------------
# Production and tests run the registry, and only the registry
# ------------------------------------------------------------------------------------------------
def _recording(monkeypatch) -> list[tuple[str, frozenset[str]]]:
    """Wrap every registered function: record (rule, evaluated order ids) of each call."""
    calls: list[tuple[str, frozenset[str]]] = []

    def wrap(c: Check) -> Check:
        def fn(**kw):
            calls.append((c.rule, frozenset(kw["orders"]["order_id"])))
            return c.fn(**kw)
        return replace(c, fn=fn)

    monkeypatch.setattr(checks, "CHECKS", tuple(wrap(c) for c in CHECKS))
    return calls


def test_the_pipeline_calls_exactly_the_registered_checks_in_order(monkeypatch):
    o, ln, ref = world()
    calls = _recording(monkeypatch)
    out = workflow(o, ln, ref)
    assert [rule for rule, _ in calls] == [c.rule for c in CHECKS]
    everyone = frozenset(o["order_id"])
    assert all(ids == everyone for rule, ids in calls if rule != "inventory")
    assert dict(calls)["inventory"] == everyone - {"EMBARGO"}  # a rejected order reserves nothing
    assert set(out.results["rule"]) == {c.rule for c in CHECKS}
    assert set(out.results.filter(pl.col("order_id") == "CLEAN")["rule"]) == set(schemas.VALIDATION_RULES)

    calls.clear()
    checks_only(o, ln, ref)
    assert [rule for rule, _ in calls] == [c.rule for c in CHECKS]


def test_a_registered_check_runs_in_the_pipeline_and_in_run_checks(monkeypatch):
    seen: list[str] = []

    def spy(orders: pl.DataFrame, cfg) -> pl.DataFrame:
        seen.append("called")
        return orders.select(pl.col("order_id"), pl.lit(None, dtype=pl.Int64).alias("line_no"),
                             pl.lit("spy").alias("rule"), pl.lit("pass").alias("outcome"),
                             pl.lit(None, dtype=pl.String).alias("reason_code"), pl.lit("seen").alias("message"),
                             pl.lit("{}").alias("evidence"))

    monkeypatch.setattr(checks, "CHECKS", (*CHECKS[:2], Check("spy", spy, ("orders", "cfg")), *CHECKS[2:]))
    o, ln, ref = world()
    out = workflow(o, ln, ref)
    assert seen == ["called"]
    assert sorted(out.results.filter(pl.col("rule") == "spy")["order_id"]) == sorted(o["order_id"])
    run = checks_only(o, ln, ref)
    assert seen == ["called", "called"]
    assert run.results.filter(pl.col("rule") == "spy").height == o.height


@pytest.mark.parametrize("dropped", ["promo", "credit", "inventory"])
def test_a_check_left_out_of_the_registry_runs_nowhere(monkeypatch, dropped):
    monkeypatch.setattr(checks, "CHECKS", tuple(c for c in CHECKS if c.rule != dropped))
    o, ln, ref = world()
    assert dropped not in set(workflow(o, ln, ref).results["rule"])
    assert dropped not in set(checks_only(o, ln, ref).results["rule"])


def test_run_checks_gives_what_the_pipeline_gives_on_a_first_run():
    o, ln, ref = world()
    out, run = workflow(o, ln, ref), checks_only(o, ln, ref)
    key = ["order_id", "rule", "line_no", "reason_code"]
    cols = list(results.RESULT_SCHEMA)
    assert out.results.select(cols).sort(key, nulls_last=False).equals(run.results.select(cols).sort(key))
    rcols = ["order_id", "line_no", "sku", "requested_sku", "quantity_requested", "quantity_reserved",
             "quantity_backordered", "decision"]
    assert out.reservations.select(rcols).sort(rcols).equals(run.reservations.select(rcols).sort(rcols))
    assert run.rejected["order_id"].to_list() == ["EMBARGO"]
    assert set(out.status.filter(pl.col("status") == "REJECTED")["order_id"]) == {"EMBARGO"}
    # the scenario reaches every stage: a hold, a backorder
    assert {"CREDIT_LIMIT", "BACKORDER", "EMBARGO"} <= set(run.results["reason_code"].drop_nulls())


def test_no_registered_reserve_check_reserves_nothing(monkeypatch):
    monkeypatch.setattr(checks, "CHECKS", tuple(c for c in CHECKS if c.stage == "screen"))
    o, ln, ref = world()
    inputs = CheckInputs(orders=o, lines=ln, customers=ref.customers, products=ref.products,
                         price_lists=ref.price_lists, promotions=ref.promotions, inventory=ref.inventory,
                         open_items=NO_ITEMS, history_orders=o, history_lines=ln, as_of=AS_OF, cfg=CFG1)
    rsv, res = checks.reserve(inputs)
    assert rsv.height == 0 and res.height == 0
    assert rsv.schema == pl.Schema(checks.RESERVATION_SCHEMA)


def test_reserve_reads_only_the_declared_columns():
    """The workflow passes the reserve stage the declared columns alone (a day's whole rows cost a copy of ~1 GB
    at TPC-H SF 1): on those columns it decides exactly what it decides on the whole rows."""
    o, ln, ref = world()
    inputs = CheckInputs(orders=o, lines=ln, customers=ref.customers, products=ref.products,
                         price_lists=ref.price_lists, promotions=ref.promotions, inventory=ref.inventory,
                         open_items=NO_ITEMS, history_orders=o, history_lines=ln, as_of=AS_OF, cfg=CFG1)
    narrow = replace(inputs, orders=o.select(checks.RESERVE_ORDER_COLUMNS), lines=ln.select(checks.RESERVE_LINE_COLUMNS))
    assert set(checks.RESERVE_ORDER_COLUMNS) < set(o.columns) and set(checks.RESERVE_LINE_COLUMNS) < set(ln.columns)
    (r_wide, f_wide), (r_narrow, f_narrow) = checks.reserve(inputs), checks.reserve(narrow)
    assert r_wide.equals(r_narrow) and f_wide.equals(f_narrow)
    assert "BACKORDER" in set(f_wide["reason_code"].drop_nulls())  # the scenario reaches a decision


def test_the_workflow_drops_the_anomaly_observations_once_the_checks_ran():
    """``State.anomaly`` (a day's largest input) is released after the quantity check, from the caller's state
    too; the run decides what the full computation decides."""
    from som_pipeline.validation.anomaly_state import empty_state

    o, ln, ref = world()
    given = State.empty()
    given.anomaly = empty_state()  # a first run: no kept observations, the run's own orders are the history
    out = run_workflow(o, ln, given, NO_DECISIONS, ref, CFG1, NOW)
    assert given.anomaly is None
    full = workflow(o, ln, ref)
    key = ["order_id", "rule", "line_no", "reason_code"]
    assert out.results.drop("evaluated_at").sort(key, nulls_last=False).equals(
        full.results.drop("evaluated_at").sort(key, nulls_last=False))
    assert out.status.equals(full.status) and out.reservations.equals(full.reservations)
