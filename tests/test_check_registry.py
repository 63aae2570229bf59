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


def test_pass_findings_go_to_the_sink_and_every_decision_stays_the_same():
    """``passes``: the pass findings are handed over part by part (as result rows, version and time included)
    and kept out of the outcome; with the outcome's other findings they are exactly the full run's results, and
    statuses, holds, reservations and events do not change."""
    o, ln, ref = world()
    sunk: list[pl.DataFrame] = []
    out = run_workflow(o, ln, State.empty(), NO_DECISIONS, ref, CFG1, NOW, passes=sunk.append)
    full = workflow(o, ln, ref)
    assert len(sunk) > 1 and all(set(f["outcome"]) <= {"pass"} for f in sunk)  # one part per check that passed
    assert "pass" not in set(out.results["outcome"]) and out.results.height > 0
    key = ["order_id", "rule", "line_no", "reason_code"]
    together = pl.concat([out.results, *sunk]).sort(key, nulls_last=False)
    assert together.equals(full.results.sort(key, nulls_last=False))
    for name in ("status", "holds", "reservations", "events", "evaluated"):
        assert getattr(out, name).equals(getattr(full, name)), name


def _busy_day(seed: int):
    """A day where every check that decides across orders has work: a capped promo used by several customers,
    tight credit limits with several orders per customer, shared SKUs short of stock, habits broken by a few
    big quantities (against kept history), first orders of new customers."""
    import random

    from som_pipeline.validation.anomaly_state import rebuild_state
    from tests.builders import promos

    rng = random.Random(seed)
    cust = [f"C{i}" for i in range(30)]
    c = customers(*({"customer_id": k, "tier": rng.choice(["standard", "gold"]),
                     "credit_limit": D(rng.choice(["150.00", "400.00", "800.00", "100000.00"]))} for k in cust))
    skus = ["S1", "S2", "S3", "S4", "S5"]
    p = products(*({"sku": k} for k in skus))
    pl_ = prices(*({"tier": t, "sku": k} for t in ("standard", "gold") for k in skus))

    def day(prefix: str, n: int, start: timedelta, with_codes: bool):
        o, ln = [], []
        for i in range(n):
            oid, k = f"{prefix}{i:03d}", rng.choice([*cust, None])
            lines_ = [{"order_id": oid, "line_no": j, "sku": rng.choice(skus),
                       "quantity": rng.choice([1, 2, 3, 5, 8, 60])} for j in range(1, rng.randrange(1, 4) + 1)]
            value = sum(D("10.00") * r["quantity"] for r in lines_)
            o.append({"order_id": oid, "customer_id": k, "order_ts": T0 + start + timedelta(minutes=rng.randrange(90)),
                      "items_subtotal": value, "order_total": value,
                      "promo_code": "SAVE" if with_codes and k in cust[:3] and rng.random() < 0.7 else None})
            ln += lines_
        return orders(*o), lines(*ln)

    hist_o, hist_l = day("H", 150, -timedelta(days=3), False)
    o, ln = day("N", 90, timedelta(0), True)
    ref = Reference(customers=c, products=p, price_lists=pl_,
                    promotions=promos({"code": "SAVE", "usage_cap": 3}),
                    inventory=stock(S1=40, S2=15, S3=200, S4=5, S5=60),
                    open_items=open_items({"customer_id": "C1", "amount_open": D("200.00")},
                                          {"customer_id": "C3", "amount_open": D("700.00")}))
    return o, ln, ref, rebuild_state(hist_o, hist_l, CFG1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_screen_in_parts_of_customers_decides_what_the_whole_day_decides(seed, monkeypatch):
    """``SCREEN_PART_ORDERS`` orders at a time, read from lazy frames (as the service gives them): the same
    findings, statuses, holds, reservations and events as the whole day screened at once."""
    from som_pipeline.validation import workflow as wf

    o, ln, ref, history = _busy_day(seed)
    whole = run_workflow(o, ln, replace(State.empty(), anomaly=history), NO_DECISIONS, ref, CFG1, NOW)
    screens: list[int] = []
    real = wf.screen
    monkeypatch.setattr(wf, "screen", lambda inputs, **kw: (
        screens.append(inputs.orders.height) if kw["only"][0].rule == "customer" else None) or real(inputs, **kw))
    monkeypatch.setattr(wf, "SCREEN_PART_ORDERS", 10)
    sunk: list[pl.DataFrame] = []
    parted = run_workflow(o.lazy(), ln.lazy(), replace(State.empty(), anomaly=history), NO_DECISIONS, ref, CFG1,
                          NOW, passes=sunk.append)
    assert len(screens) >= 5 and sum(screens) == o.height  # parts of whole customers: sizes vary around 10
    key = ["order_id", "rule", "line_no", "reason_code"]
    assert pl.concat([parted.results, *sunk]).sort(key, nulls_last=False).equals(
        whole.results.sort(key, nulls_last=False))
    for name in ("status", "holds", "reservations", "events", "evaluated"):
        assert getattr(parted, name).equals(getattr(whole, name)), name
    # and the whole day is what one evaluation of the registry gives (run_checks: every check on every order)
    one = run_checks(o, ln, customers=ref.customers, products=ref.products, price_lists=ref.price_lists,
                     promotions=ref.promotions, inventory=ref.inventory, open_items=ref.open_items, as_of=AS_OF,
                     anomaly_state=history, cfg=CFG1)
    cols = results.RESULT_COLUMNS
    assert whole.results.select(cols).sort(key, nulls_last=False).equals(one.results.sort(key, nulls_last=False))
    reasons = set(whole.results["reason_code"].drop_nulls())
    assert {"PROMO_EXHAUSTED", "CREDIT_LIMIT", "QTY_ANOMALY"} <= reasons, reasons  # the day crossed parts


def test_the_service_stages_every_column_the_workflow_holds_for_the_day():
    """The service writes the orders' and lines' rows the workflow scans; its columns must include what the
    workflow keeps for every order (and what the day-scoped checks read)."""
    from som_pipeline.services import validation as service
    from som_pipeline.validation import workflow as wf

    assert set(wf.ORDER_COLUMNS) <= set(service.ORDER_COLUMNS)
    assert set(wf.LINE_COLUMNS) <= set(service.LINE_COLUMNS)
