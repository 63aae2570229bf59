"""Demand forecast & replenishment core (som_pipeline.planning): small data, few folds, fast."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from som_pipeline import schemas
from som_pipeline.planning import (
    BASELINE,
    CANDIDATES,
    ConfigError,
    backtest,
    daily_demand,
    holdout_ratio,
    load_config,
    overall,
    replenishment_plan,
    reserved_by_warehouse,
    run,
    stockout_dates,
)
from tests import builders as b

FIXED = Path(__file__).parent / "fixtures" / "forecasting" / "fixed_demand.csv"
NOW = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
NOW_DATE = NOW.date()
INTERMITTENT_FAMILY = set(CANDIDATES["intermittent"])


def cfg(**kw):
    """Shipped defaults, in-process, with a tiny AutoETS budget (the suite stays fast)."""
    return dataclasses.replace(load_config(), **{"n_jobs": 1, "ets_max_series": 2, **kw})


@pytest.fixture(scope="module")
def fixed() -> pl.DataFrame:
    return pl.read_csv(FIXED, schema={"sku": pl.String, "warehouse_id": pl.String, "ds": pl.Date, "y": pl.Int64})


@pytest.fixture(scope="module")
def result(fixed):
    return run(fixed, cfg(), now=NOW)


# ------------------------------------------------------------------------------------------------
# Forecasting
# ------------------------------------------------------------------------------------------------
def test_fixed_dataset_is_the_expected_one(fixed):
    assert fixed.height == 2490 and fixed["y"].sum() == 10581
    assert fixed.select("sku", "warehouse_id").unique().height == 20


def test_chosen_models_beat_seasonal_naive_on_fixed_dataset(result):
    c = cfg()
    head = overall(result.accuracy)
    assert head["mase_vs_seasonal_naive"] < 1
    assert 0 < head["mase"] < 1
    # the selection-honest version: choose on the first folds, score on the last one the choice never saw
    assert holdout_ratio(result.backtest, c) < 1
    # overall = ratio of the sums over the per-series rows of the chosen models
    per = result.backtest.scores.join(result.backtest.series.select("uid", "model"), on=["uid", "model"])
    assert head["mase_vs_seasonal_naive"] == pytest.approx(per["sum_abs"].sum() / per["sn_sum_abs"].sum())
    # every series with demand has a model and 28 forecast days; SKU-00001/WH-3 (one zero row, no demand) has none
    assert result.forecast.group_by("sku", "warehouse_id").len()["len"].to_list() == [28] * 19
    assert result.forecast.filter((pl.col("sku") == "SKU-00001") & (pl.col("warehouse_id") == "WH-3")).height == 0


def test_intermittent_series_get_intermittent_models(result):
    s = result.backtest.series
    inter = s.filter(pl.col("series_class").is_in(["intermittent", "lumpy"]))
    assert inter.height >= 5
    assert set(inter["model"]) <= INTERMITTENT_FAMILY
    smooth = s.filter(pl.col("series_class").is_in(["smooth", "erratic"]))
    assert smooth.height >= 3 and not set(smooth["model"]) & INTERMITTENT_FAMILY
    # the baseline is evaluated on every backtested series, also where it is not a candidate
    scored = result.backtest.scores
    assert set(scored.filter(pl.col("model") == BASELINE)["uid"]) == set(s.filter(pl.col("backtest"))["uid"])
    # a hand-made intermittent series: 4 units every 5th day, 0 otherwise
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(120)]
    hand = pl.DataFrame({"sku": "X", "warehouse_id": "W", "ds": days, "y": [4 if i % 5 == 0 else 0 for i in range(120)]})
    one = backtest(hand, cfg())
    assert one.series["series_class"][0] == "intermittent" and one.series["model"][0] in INTERMITTENT_FAMILY


def test_sparse_and_short_series_get_a_simple_model(result):
    s = result.backtest.series.filter(pl.col("series_class") == "sparse")
    assert s.height >= 2 and set(s["model"]) == {"HistoricAverage"}
    short = s.filter(~pl.col("backtest"))
    assert short.height >= 1
    rows = result.accuracy.join(short.select("sku", "warehouse_id"), on=["sku", "warehouse_id"])
    assert rows["folds"].to_list() == [0] * short.height and rows["mase"].null_count() == short.height


def test_intervals_contain_the_mean_and_are_ordered(fixed, result):
    f = result.forecast
    assert f.filter(~((pl.col("lo_95") <= pl.col("lo_80")) & (pl.col("lo_80") <= pl.col("forecast"))
                      & (pl.col("forecast") <= pl.col("hi_80")) & (pl.col("hi_80") <= pl.col("hi_95")))).height == 0
    assert f.select(pl.min_horizontal("forecast", "lo_95").min()).item() >= 0
    assert f.filter(pl.col("hi_95") > pl.col("forecast")).height > 0.9 * f.height  # not degenerate
    # honest coverage: fit on all but the last 28 days, score the intervals on those 28 days
    end = fixed["ds"].max()
    early = run(fixed.filter(pl.col("ds") <= end - timedelta(days=28)), cfg(), now=NOW - timedelta(days=28))
    j = early.forecast.join(fixed.rename({"ds": "forecast_date"}), on=["sku", "warehouse_id", "forecast_date"])
    assert j.height > 400
    inside = lambda lv: ((pl.col("y") >= pl.col(f"lo_{lv}")) & (pl.col("y") <= pl.col(f"hi_{lv}"))).mean()  # noqa: E731
    cov = j.select(inside(80).alias("c80"), inside(95).alias("c95")).row(0, named=True)
    assert cov["c80"] >= 0.7 and cov["c95"] >= 0.85, cov


def test_outputs_conform_to_the_models(result):
    schemas.validate(schemas.DemandForecastModel, result.forecast)
    schemas.validate(schemas.ForecastAccuracyModel, result.accuracy)
    acc = result.accuracy
    # per series exactly one chosen row; the overall row exists
    per = acc.filter(pl.col("sku") != "*")
    assert per.filter(pl.col("chosen")).group_by("sku", "warehouse_id").len()["len"].max() == 1
    assert per.filter(pl.col("chosen")).height == 19  # the series without demand has no model
    assert acc.filter((pl.col("sku") == "*") & (pl.col("model") == "*") & (pl.col("series_class") == "*")).height == 1
    # with accuracy_rows = "chosen", no candidate rows per series
    slim = run(pl.read_csv(FIXED, try_parse_dates=True).filter(pl.col("sku") == "SKU-00000"),
               cfg(accuracy_rows="chosen", ets_max_series=0), now=NOW).accuracy
    assert slim.filter(pl.col("sku") != "*")["chosen"].all()


def test_metric_definitions_by_hand():
    """MASE, WAPE, bias and mase_vs_seasonal_naive of one series against a hand computation."""
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(84)]
    y = [10 + (i % 7) + (3 if i % 3 == 0 else 0) for i in range(84)]
    d = pl.DataFrame({"sku": "S", "warehouse_id": "W", "ds": days, "y": y})
    c = cfg(ets_max_series=0, theta_max_series=0)
    res = run(d, c, now=NOW)
    bt = res.backtest
    model = bt.series["model"][0]
    e = bt.errors.filter(pl.col("model") == model)
    sn = bt.errors.filter(pl.col("model") == BASELINE)
    assert e.height == c.folds * c.fold_horizon_days == sn.height
    train = y[: 84 - c.backtest_days]
    scale = sum(abs(train[i] - train[i - 7]) for i in range(7, len(train))) / (len(train) - 7)
    err = (e["yhat"] - e["y"]).to_list()
    row = res.accuracy.filter((pl.col("sku") == "S") & pl.col("chosen")).row(0, named=True)
    assert row["mase"] == pytest.approx(sum(map(abs, err)) / len(err) / scale)
    assert row["wape"] == pytest.approx(sum(map(abs, err)) / e["y"].sum())
    assert row["bias"] == pytest.approx(sum(err) / e["y"].sum())
    assert row["mase_vs_seasonal_naive"] == pytest.approx(sum(map(abs, err)) / (sn["yhat"] - sn["y"]).abs().sum())
    assert res.errors["sigma_daily"][0] == pytest.approx(math.sqrt(sum(x * x for x in err) / len(err)))


# ------------------------------------------------------------------------------------------------
# Daily demand
# ------------------------------------------------------------------------------------------------
def _warehouses(*ids: str, inactive: tuple[str, ...] = (), abroad: tuple[str, ...] = ()) -> pl.DataFrame:
    from datetime import time
    from decimal import Decimal

    return schemas.from_rows(schemas.WarehouseModel, [
        {"warehouse_id": w, "name": w, "country": "DE" if w in abroad else "US", "region": "NJ", "postal_code": "0", "latitude": 0.0,
         "longitude": 0.0, "daily_capacity_lines": 100, "cutoff_time": time(15), "timezone": "UTC",
         "handling_cost": Decimal("1.00"), "active": w not in inactive} for w in ids])


def _zones(*rows: tuple[str, str, str, int]) -> pl.DataFrame:
    return schemas.from_rows(schemas.ShippingZoneModel, [
        {"warehouse_id": w, "dest_country": c, "dest_region": r, "zone": z} for w, c, r, z in rows])


def test_daily_demand_fills_zeros_and_attributes_warehouses():
    t = lambda d: datetime(2026, 3, d, 12, tzinfo=UTC)  # noqa: E731
    orders = b.orders(
        {"order_id": "O1", "order_ts": t(2), "ship_to_country": "US", "ship_to_region": "NY"},   # east by region
        {"order_id": "O2", "order_ts": t(2), "ship_to_country": "US", "ship_to_region": "CA"},   # west by region
        {"order_id": "O3", "order_ts": t(5), "ship_to_country": "US", "ship_to_region": "TX"},   # tie zone 4: WH-E
        {"order_id": "O4", "order_ts": t(3), "ship_to_country": "US", "ship_to_region": "NY",
         "cancelled_at": t(3)},                                                                  # cancelled
        {"order_id": "O5", "order_ts": t(4), "ship_to_country": "ZZ", "ship_to_region": None},  # no zone: fallback
        {"order_id": "O6", "order_ts": t(6), "ship_to_country": "US", "ship_to_region": "NY"},   # allocated
        {"order_id": "O7", "order_ts": t(6), "ship_to_country": "DE", "ship_to_region": "BY"},   # only WH-X: inactive
    )
    lines = b.lines(
        {"order_id": "O1", "sku": "A", "quantity": 2}, {"order_id": "O1", "line_no": 2, "sku": "B", "quantity": 1},
        {"order_id": "O2", "sku": "A", "quantity": 5}, {"order_id": "O3", "sku": "A", "quantity": 3},
        {"order_id": "O4", "sku": "A", "quantity": 100}, {"order_id": "O5", "sku": "A", "quantity": 7},
        {"order_id": "O6", "sku": "A", "quantity": 5}, {"order_id": "O7", "sku": "A", "quantity": 1},
    )
    zones = _zones(("WH-E", "US", "*", 4), ("WH-E", "US", "NY", 2), ("WH-W", "US", "*", 4), ("WH-W", "US", "CA", 1),
                   ("WH-X", "DE", "*", 1), ("WH-W", "DE", "*", 9))
    whs = _warehouses("WH-E", "WH-W", "WH-X", inactive=("WH-X",))
    alloc = pl.DataFrame({"order_id": ["O6"], "line_no": [1], "sku": ["A"], "warehouse_id": ["WH-W"], "quantity": [3]})
    d = daily_demand(orders, lines, zones, whs, alloc, end=date(2026, 3, 8))

    assert d.schema == pl.Schema({"sku": pl.String, "warehouse_id": pl.String, "ds": pl.Date, "y": pl.Int64})
    got = {(r["sku"], r["warehouse_id"], r["ds"].day): r["y"] for r in d.iter_rows(named=True)}
    # WH-E / A: O1 (2) on the 2nd, O5 fallback (7) on the 4th, O3 tie (3) on the 5th, O6 rest 5-3 = 2 on the 6th
    assert [got[("A", "WH-E", k)] for k in range(2, 9)] == [2, 0, 7, 3, 2, 0, 0]
    # WH-W / A: O2 (5) on the 2nd, O6 allocated (3) and O7 (DE: WH-X inactive -> WH-W zone 9) on the 6th
    assert [got[("A", "WH-W", k)] for k in range(2, 9)] == [5, 0, 0, 0, 4, 0, 0]
    assert [got[("B", "WH-E", k)] for k in range(2, 9)] == [1, 0, 0, 0, 0, 0, 0]
    # a series starts at its first day with demand and runs to `end`; nothing lost but the cancelled order
    span = d.group_by("sku", "warehouse_id").agg(pl.col("ds").min().alias("lo"), pl.col("ds").max().alias("hi"),
                                                 pl.len().alias("n"))
    assert set(span["lo"]) == {date(2026, 3, 2)} and set(span["hi"]) == {date(2026, 3, 8)}
    assert span["n"].to_list() == [7, 7, 7]
    assert d["y"].sum() == lines["quantity"].sum() - 100
    # without allocations, O6 goes whole to its home warehouse (WH-E)
    d2 = daily_demand(orders, lines, zones, whs, end=date(2026, 3, 8))
    assert d2.filter((pl.col("sku") == "A") & (pl.col("warehouse_id") == "WH-E")
                     & (pl.col("ds") == date(2026, 3, 6)))["y"].item() == 5


# ------------------------------------------------------------------------------------------------
# Replenishment
# ------------------------------------------------------------------------------------------------
def _forecast(rows: dict[tuple[str, str], list[float]], start: date = NOW_DATE) -> pl.DataFrame:
    out = [{"sku": s, "warehouse_id": w, "forecast_date": start + timedelta(days=i), "forecast": v, "lo_80": 0.0,
            "hi_80": v, "lo_95": 0.0, "hi_95": v, "model": "TSB", "generated_at": NOW}
           for (s, w), vals in rows.items() for i, v in enumerate(vals)]
    return schemas.validate(schemas.DemandForecastModel, schemas.from_rows(schemas.DemandForecastModel, out))


def _errors(**sigma: float) -> pl.DataFrame:
    return pl.DataFrame([{"sku": k.split("__")[0], "warehouse_id": k.split("__")[1], "sigma_daily": v}
                         for k, v in sigma.items()])


def _inventory(**on_hand: int) -> pl.DataFrame:
    return schemas.conform(pl.DataFrame([
        {"sku": k.split("__")[0], "warehouse_id": k.split("__")[1], "on_hand": v, "as_of": NOW}
        for k, v in on_hand.items()]), schemas.InventoryModel)


def _reservations(*rows: tuple[str, int, datetime | None]) -> pl.DataFrame:
    return schemas.from_rows(schemas.ReservationModel, [
        {"order_id": f"O{i}", "line_no": 1, "sku": s, "requested_sku": s, "quantity_requested": q,
         "quantity_reserved": q, "quantity_backordered": 0, "decision": "RESERVE", "order_status": "APPROVED",
         "reserved_at": NOW - timedelta(days=1), "expires_at": exp} for i, (s, q, exp) in enumerate(rows)])


PRODUCTS = b.products({"sku": "A", "category": "Tools"}, {"sku": "B", "category": "Slow"},
                      {"sku": "C", "category": "Tools", "active": False})
WHS = _warehouses("WH-1", "WH-2", "WH-3", "WH-9", abroad=("WH-9",))


def test_safety_stock_and_reorder_point_formula():
    c = cfg(lead_time_by_category={"Slow": 21}, service_level=0.95)
    fc = _forecast({("A", "WH-1"): [10.0] * 28, ("B", "WH-1"): [2.0] * 28})
    plan = replenishment_plan(fc, _errors(**{"A__WH-1": 4.0, "B__WH-1": 1.5}),
                              _inventory(**{"A__WH-1": 100, "B__WH-1": 10}), None, WHS, PRODUCTS, c, NOW)
    schemas.validate(schemas.ReplenishmentPlanModel, plan)
    z = 1.6448536269514722
    a = plan.filter(pl.col("sku") == "A").row(0, named=True)
    ss = z * 4.0 * math.sqrt(14)                         # 24.62
    assert a["safety_stock"] == math.ceil(ss) == 25
    assert a["reorder_point"] == math.ceil(10 * 14 + ss) == 165
    assert a["kind"] == "purchase" and a["lead_time_days"] == 14 and a["from_warehouse"] is None
    assert a["quantity"] == math.ceil(10 * (14 + 14) + ss) - 100 == 205   # order up to 305
    assert a["on_hand"] == 100
    # category override: 21-day lead time; the order-up-to level needs 21 + 14 = 35 days, past the 28-day
    # forecast: the extra 7 days at the mean of the last 7 forecast days
    bb = plan.filter(pl.col("sku") == "B").row(0, named=True)
    ss_b = z * 1.5 * math.sqrt(21)
    assert (bb["lead_time_days"], bb["safety_stock"], bb["reorder_point"]) == (21, math.ceil(ss_b),
                                                                                 math.ceil(2 * 21 + ss_b))
    assert bb["quantity"] == math.ceil(2 * 35 + ss_b) - 10
    # no sigma (no backtest): Poisson, sigma = sqrt(mean daily forecast)
    plan2 = replenishment_plan(fc, None, _inventory(**{"A__WH-1": 100}), None, WHS, PRODUCTS, c, NOW)
    assert plan2.filter(pl.col("sku") == "A")["safety_stock"].item() == math.ceil(z * math.sqrt(10) * math.sqrt(14))
    # available above the reorder point: nothing proposed
    plan3 = replenishment_plan(fc.filter(pl.col("sku") == "A"), _errors(**{"A__WH-1": 4.0}),
                               _inventory(**{"A__WH-1": 165}), None, WHS, PRODUCTS, c, NOW)
    assert plan3.height == 0


def test_transfers_before_purchases():
    c = cfg(transfer_lead_time_days=3)
    fc = _forecast({("A", "WH-1"): [10.0] * 28, ("A", "WH-2"): [1.0] * 28, ("A", "WH-3"): [5.0] * 28,
                    ("B", "WH-1"): [10.0] * 28, ("B", "WH-2"): [1.0] * 28})
    err = _errors(**{"A__WH-1": 0.0, "A__WH-2": 0.0, "A__WH-3": 0.0, "B__WH-1": 0.0, "B__WH-2": 0.0})
    inv = _inventory(**{"A__WH-1": 20, "A__WH-2": 500, "A__WH-3": 100,   # A: WH-2 surplus covers WH-1
                        "B__WH-1": 20, "B__WH-2": 60,                    # B: WH-2 surplus too small...
                        "B__WH-9": 1000})                                # ... and WH-9 is in another country
    plan = replenishment_plan(fc, err, inv, None, WHS, PRODUCTS, c, NOW)
    schemas.validate(schemas.ReplenishmentPlanModel, plan)
    a = plan.filter(pl.col("sku") == "A")
    # WH-1 needs S - available = 10 x 28 - 20 = 260; WH-2 keeps its own S = 28, WH-3 (100 < its S 140) gives none
    assert a.select("kind", "from_warehouse", "to_warehouse", "quantity", "lead_time_days").rows() == [
        ("transfer", "WH-2", "WH-1", 260, 3)]
    bb = plan.filter(pl.col("sku") == "B").sort("kind", descending=True)
    assert bb.select("kind", "from_warehouse", "to_warehouse", "quantity").rows() == [
        ("transfer", "WH-2", "WH-1", 32), ("purchase", None, "WH-1", 260 - 32)]
    # transfers rank before the purchase for the same urgency; priorities are 1..n
    assert sorted(plan["priority"].to_list()) == list(range(1, plan.height + 1))
    assert bb.filter(pl.col("kind") == "transfer")["priority"].item() < bb.filter(pl.col("kind") == "purchase")[
        "priority"].item()
    assert "WH-2 holds" in a["reason"].item() and "purchase" in bb.filter(pl.col("kind") == "purchase")["reason"].item()
    # across borders when the config allows it: WH-9 (no demand: unlimited cover) gives first, no purchase
    wide = replenishment_plan(fc, err, inv, None, WHS, PRODUCTS, cfg(transfer_scope="network"), NOW)
    assert wide.filter(pl.col("sku") == "B").select("kind", "from_warehouse", "quantity").rows() == [
        ("transfer", "WH-9", 260)]
    # an inactive product is never purchased (but nothing else changes)
    fc_c = _forecast({("C", "WH-1"): [10.0] * 28})
    assert replenishment_plan(fc_c, None, _inventory(**{"C__WH-1": 0}), None, WHS, PRODUCTS, c, NOW).height == 0


def test_stockout_date_is_when_cumulative_forecast_exceeds_available():
    fc = _forecast({("A", "WH-1"): [3.0] * 28})
    stock = pl.DataFrame({"sku": ["A"] * 4, "warehouse_id": ["WH-1"] * 4, "available": [10, 9, 12, 1000]})
    for avail, expected in ((10, 3), (9, 3), (12, 4), (1000, None), (0, 0)):
        got = stockout_dates(fc.select("sku", "warehouse_id", "forecast_date", "forecast"),
                             stock.head(1).with_columns(pl.lit(avail).alias("available")))
        exp = None if expected is None else NOW.date() + timedelta(days=expected)
        assert (got["stockout_date"].item() if got.height else None) == exp, avail
    # in the plan: reservations lower available (expired ones do not), and the date follows
    res = _reservations(("A", 4, None), ("A", 50, NOW - timedelta(hours=1)))
    plan = replenishment_plan(fc, _errors(**{"A__WH-1": 1.0}), _inventory(**{"A__WH-1": 14}), res, WHS, PRODUCTS,
                              cfg(), NOW)
    row = plan.row(0, named=True)
    assert row["on_hand"] == 10 and row["expected_stockout_date"] == NOW.date() + timedelta(days=3)


def test_reservations_attributed_in_proportion_to_on_hand_or_by_allocation():
    inv = _inventory(**{"A__WH-1": 30, "A__WH-2": 10, "A__WH-3": 0, "B__WH-1": 0, "B__WH-2": 0})
    res = _reservations(("A", 5, None), ("A", 2, None), ("B", 3, None))
    got = {(r["warehouse_id"], r["sku"]): r["reserved"] for r in
           reserved_by_warehouse(res, inv, NOW).iter_rows(named=True)}
    # A: 7 x 30/40 = 5.25 -> 5, 7 x 10/40 = 1.75 -> 2 (largest remainder): whole units, total kept
    assert (got[("WH-1", "A")], got[("WH-2", "A")]) == (5, 2) and ("WH-3", "A") not in got
    # B: no stock anywhere -> spread evenly over its rows (1.5 each; the tie goes to the first id), total kept
    assert (got[("WH-1", "B")], got[("WH-2", "B")]) == (2, 1)
    alloc = pl.DataFrame({"order_id": ["O0"], "line_no": [1], "sku": ["A"], "warehouse_id": ["WH-3"], "quantity": [5]})
    got2 = {(r["warehouse_id"], r["sku"]): r["reserved"] for r in
            reserved_by_warehouse(res, inv, NOW, alloc).iter_rows(named=True)}
    assert got2[("WH-3", "A")] == 5 and got2[("WH-1", "A")] + got2.get(("WH-2", "A"), 0) == 2


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
def test_config_defaults_env_override_and_errors(tmp_path, monkeypatch):
    c = load_config()
    assert (c.horizon_days, c.folds, c.fold_horizon_days, c.service_level, c.supplier_lead_time_days) == (
        28, 3, 14, 0.95, 14)
    p = tmp_path / "f.toml"
    p.write_text('[forecast]\nhorizon_days = 7\n[replenishment.lead_time_by_category]\n"Safety & PPE" = 30\n')
    monkeypatch.setenv("SOM_FORECAST_CONFIG", str(p))
    c2 = load_config()
    assert c2.horizon_days == 7 and c2.lead_time("Safety & PPE") == 30 and c2.lead_time("Other") == 14
    bad = tmp_path / "bad.toml"
    bad.write_text("[forecast]\nhorizon = 7\n")
    with pytest.raises(ConfigError, match="unknown key 'horizon'"):
        load_config(bad)
    bad.write_text("[replenishment]\nservice_level = 1.5\n")
    with pytest.raises(ConfigError, match="service level"):
        load_config(bad)


def test_no_demand_gives_empty_conforming_outputs():
    from som_pipeline.planning import DEMAND_SCHEMA

    res = run(pl.DataFrame(schema=DEMAND_SCHEMA), cfg(), now=NOW)
    assert res.forecast.height == res.accuracy.height == 0
    schemas.validate(schemas.DemandForecastModel, res.forecast)
    schemas.validate(schemas.ForecastAccuracyModel, res.accuracy)
    plan = replenishment_plan(res.forecast, res.errors, _inventory(**{"A__WH-1": 5}), None, WHS, PRODUCTS, cfg(), NOW)
    assert plan.height == 0 and plan.schema == schemas.empty(schemas.ReplenishmentPlanModel).schema


# ------------------------------------------------------------------------------------------------
# Demand history (state.daily_demand): maintained per order date, equal to a rebuild; the window it feeds
# ------------------------------------------------------------------------------------------------
HISTORY_START = date(2026, 1, 1)


def _history_orders(days: range, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """1-3 orders a day, 1-2 lines each over SKUs A-F (and Z only in the first week), three regions."""
    import random

    rnd = random.Random(seed)
    o, ln = [], []
    for d in days:
        day = HISTORY_START + timedelta(days=d)
        for k in range(rnd.randint(1, 3)):
            oid = f"O{d:03d}-{k}"
            o.append({"order_id": oid, "order_ts": datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
                      "ship_to_region": rnd.choice(["NY", "CA", "TX"])})
            for n in range(1, rnd.randint(1, 2) + 1):
                ln.append({"order_id": oid, "line_no": n, "sku": "Z" if d < 7 and n == 1 else rnd.choice("ABCDEF"),
                           "quantity": rnd.randint(1, 9)})
    orders = b.orders(*o).with_columns(pl.col("shipping_tax").fill_null(0), pl.col("prices_include_tax").fill_null(False))
    return orders, b.lines(*ln)


def _allocation(order_id: str, line_no: int, sku: str, warehouse: str, qty: int) -> pl.DataFrame:
    from decimal import Decimal

    zero = Decimal("0.00")
    return schemas.from_rows(schemas.AllocationModel, [{
        "order_id": order_id, "line_no": line_no, "sku": sku, "warehouse_id": warehouse, "quantity": qty,
        "carrier_id": "UPS", "service": "GROUND", "expected_ship_date": NOW_DATE, "expected_delivery_date": NOW_DATE,
        "shipping_cost": zero, "handling_cost": zero, "lateness_penalty": zero, "split_penalty": zero,
        "total_cost": zero, "solver": "greedy", "explanation": "test", "reason": "initial", "allocated_at": NOW}])


def _history_warehouse(wh, orders: pl.DataFrame, lines: pl.DataFrame, allocations: pl.DataFrame | None = None):
    from som_pipeline.warehouse import replace_table

    zones = _zones(("WH-E", "US", "*", 4), ("WH-E", "US", "NY", 2), ("WH-W", "US", "*", 4), ("WH-W", "US", "CA", 1))
    with wh.transaction() as con:
        replace_table(con, "ref.shipping_zones", zones)
        replace_table(con, "ref.warehouses", _warehouses("WH-E", "WH-W"))
        replace_table(con, "core.orders", orders)
        replace_table(con, "core.order_lines", lines)
        replace_table(con, "core.allocations", allocations if allocations is not None
                      else schemas.empty(schemas.AllocationModel))
    return zones


def _state(wh) -> pl.DataFrame:
    return wh.read("SELECT * FROM state.daily_demand ORDER BY order_date, sku, warehouse_id")


def test_demand_history_updated_per_order_date_equals_a_rebuild(wh):
    """Each run recomputes only the order dates whose inputs changed (new orders, a cancellation, a new version, a
    new allocation); the table then equals a full rebuild and the pure core over all orders."""
    from som_pipeline.planning import demand_rows
    from som_pipeline.services.planning import update_demand_history

    orders, lines = _history_orders(range(100))
    first = orders.filter(pl.col("order_date") < HISTORY_START + timedelta(days=70))
    _history_warehouse(wh, first, lines.join(first.select("order_id"), on="order_id", how="semi"))
    with wh.connect() as con:
        up = update_demand_history(con)
    assert len(up.dates) == 70 and up.total_rows == up.rows.height > 0
    with wh.connect() as con:
        assert update_demand_history(con).dates == []  # nothing changed: nothing recomputed

    # the next runs: 30 new days, a cancellation (day 5), a new version with another quantity (day 10), an
    # allocation of a line to the warehouse that is not its home (day 20)
    day = lambda d: HISTORY_START + timedelta(days=d)  # noqa: E731
    cancel, changed, allocated = "O005-0", "O010-0", "O020-0"
    orders = orders.with_columns(
        pl.when(pl.col("order_id") == cancel).then(pl.lit(NOW)).otherwise(pl.col("cancelled_at")).alias("cancelled_at"),
        pl.when(pl.col("order_id") == changed).then(2).otherwise(pl.col("version")).alias("version"))
    lines = lines.with_columns(
        pl.when(pl.col("order_id") == changed).then(2).otherwise(pl.col("version")).alias("version"),
        pl.when(pl.col("order_id") == changed).then(pl.col("quantity") + 5).otherwise(pl.col("quantity"))
        .alias("quantity"))
    line = lines.filter(pl.col("order_id") == allocated).row(0, named=True)
    alloc = _allocation(allocated, line["line_no"], line["sku"], "WH-W" if orders.filter(
        pl.col("order_id") == allocated)["ship_to_region"][0] == "NY" else "WH-E", line["quantity"])
    zones = _history_warehouse(wh, orders, lines, alloc)
    with wh.connect() as con:
        up = update_demand_history(con)
    assert up.dates == [day(5), day(10), day(20), *[day(d) for d in range(70, 100)]]
    incremental = _state(wh)

    with wh.connect() as con:
        update_demand_history(con, rebuild=True)
    rebuilt = _state(wh)
    assert incremental.equals(rebuilt)
    pure = demand_rows(orders, lines, zones, _warehouses("WH-E", "WH-W"), alloc)
    assert incremental.select("sku", "warehouse_id", pl.col("order_date").alias("ds"), pl.col("units").alias("y")) \
        .sort("sku", "warehouse_id", "ds").equals(pure)
    assert incremental["units"].sum() == lines.join(orders.filter(pl.col("cancelled_at").is_null())
                                                    .select("order_id"), on="order_id")["quantity"].sum()
    # a changed home-warehouse reference changes every date's fingerprint: the whole history is recomputed
    with wh.transaction() as con:
        con.execute("UPDATE ref.shipping_zones SET zone = 1 WHERE warehouse_id = 'WH-E' AND dest_region = '*'")
    with wh.connect() as con:
        assert len(update_demand_history(con).dates) == 100


def test_forecast_reads_a_window_of_the_history_and_only_recent_series(wh):
    """The window read from state.daily_demand gives the same forecasts as the full daily grid over all history
    (a series that started before the window starts at the window); a series without demand in the window
    (Z: first week only) gets no model, whichever way the demand comes."""
    from som_pipeline.services.planning import read_demand_window, update_demand_history

    orders, lines = _history_orders(range(100))
    zones = _history_warehouse(wh, orders, lines)
    c = cfg(history_days=84, heavy_history_days=70, ets_max_series=0)
    with wh.connect() as con:
        update_demand_history(con)
        window, end = read_demand_window(con, c.history_days)
    assert end == HISTORY_START + timedelta(days=99) and window["ds"].min() == end - timedelta(days=83)
    assert window.filter(pl.col("sku") == "Z").height == 0
    assert window.filter(pl.col("y") == 0).height > 0  # series that started before the window are led by a 0
    dense = daily_demand(orders, lines, zones, _warehouses("WH-E", "WH-W"))
    assert dense.filter(pl.col("sku") == "Z").height > 0
    got, want = run(window, c, now=NOW, end=end), run(dense, c, now=NOW)
    assert got.forecast.height > 0 and got.forecast.equals(want.forecast) and got.accuracy.equals(want.accuracy)
    assert "Z" not in set(got.backtest.series["sku"]) and "Z" not in set(want.forecast["sku"])
    # batches of a few series each change nothing
    small = run(window, dataclasses.replace(c, max_rows_per_call=100), now=NOW, end=end)
    assert small.forecast.equals(got.forecast) and small.accuracy.equals(got.accuracy)


# ------------------------------------------------------------------------------------------------
# Incremental forecast (state.forecast_fits): a run refits what changed, keeps and carries forward the rest
# ------------------------------------------------------------------------------------------------
_FC_TABLES = ("core.demand_forecast", "core.forecast_accuracy", "state.forecast_fits")
_ORDER = {"core.demand_forecast": "sku, warehouse_id, forecast_date",
          "core.forecast_accuracy": "sku, warehouse_id, model, series_class",
          "state.forecast_fits": "sku, warehouse_id, model"}


def _fc_tables(wh) -> dict[str, pl.DataFrame]:
    return {t: wh.read(f"SELECT * FROM {t} ORDER BY {_ORDER[t]}") for t in _FC_TABLES}  # noqa: S608


def _keys(df: pl.DataFrame) -> set[tuple[str, str]]:
    return set(df.select("sku", "warehouse_id").iter_rows())


def _forecast_home(settings, **kw) -> None:
    body = {"history": {"history_days": 84, "heavy_history_days": 70},
            "models": {"ets_max_series": 0, "n_jobs": 1}, "forecast": {"refit_after_days": 7}}
    body["forecast"].update(kw)  # [forecast] keys
    (settings.home / "forecast.toml").write_text(
        "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in keys.items()) for s, keys in body.items()) + "\n")


def test_incremental_forecast_refits_only_what_changed(wh, settings):
    """First run: every series fitted. Same data again (even the next morning): nothing refitted, the tables
    identical. One more day of orders: only the series whose window demand changed (a new day with demand, a day
    with demand leaving the window) are refitted, exactly as a full rebuild fits them; the others keep their fit
    and their accuracy rows, and their forecast is carried forward to the new horizon (same weekday)."""
    from som_pipeline.services.planning import run_forecast

    _forecast_home(settings)
    orders, lines = _history_orders(range(91))
    day = lambda d: HISTORY_START + timedelta(days=d)  # noqa: E731
    first = orders.filter(pl.col("order_date") < day(90))
    _history_warehouse(wh, first, lines.join(first.select("order_id"), on="order_id", how="semi"))
    now = datetime(2026, 4, 1, 6, tzinfo=UTC)
    one = run_forecast(wh, settings, now=now)
    assert one.kept == 0 and set(one.refit["reason"]) == {"first run or rebuild"}
    assert one.series == one.refit.height == one.result.backtest.series.height > 5
    t1 = _fc_tables(wh)
    assert t1["core.demand_forecast"]["forecast_date"].min() == day(90)
    assert _keys(t1["state.forecast_fits"]) == _keys(t1["core.demand_forecast"])

    for later in (now, now + timedelta(days=1)):  # nothing changed: nothing refitted, nothing written
        again = run_forecast(wh, settings, now=later)
        assert again.refit.height == 0 and again.kept == one.series and again.carried.height == 0
        assert all(t1[t].equals(v) for t, v in _fc_tables(wh).items())

    # day 90's orders arrive: the window slides one day
    _history_warehouse(wh, orders, lines)
    now2 = now + timedelta(days=1)
    two = run_forecast(wh, settings, now=now2)
    t2 = _fc_tables(wh)
    demand = wh.read("SELECT sku, warehouse_id, order_date FROM state.daily_demand")
    touched = _keys(demand.filter(pl.col("order_date").is_in([day(90), day(6)])))  # day 6 left the 84-day window
    in_window = _keys(demand.filter(pl.col("order_date") >= day(7)))
    assert _keys(two.refit) == touched & in_window and 0 < two.refit.height < one.series
    assert set(two.refit["reason"]) <= {"demand changed", "new in window", "model follows recent days"}
    assert two.kept == len(in_window) - two.refit.height and two.dropped == len(_keys(t1["state.forecast_fits"])
                                                                                 - in_window)
    fc2, fc1 = t2["core.demand_forecast"], t1["core.demand_forecast"]
    assert fc2["forecast_date"].min() == day(91) and fc2["forecast_date"].max() == day(91 + 27)
    assert (fc2.group_by("sku", "warehouse_id").len()["len"] == 28).all() and _keys(fc2) == in_window
    kept = pl.DataFrame(sorted(in_window - _keys(two.refit)), schema=["sku", "warehouse_id"], orient="row")
    k2, k1 = (f.join(kept, on=["sku", "warehouse_id"], how="semi") for f in (fc2, fc1))
    assert k2.filter(pl.col("forecast_date") <= day(117)).equals(k1.filter(pl.col("forecast_date") >= day(91)))
    new_day = k2.filter(pl.col("forecast_date") == day(118))
    week_before = k1.filter(pl.col("forecast_date") == day(111))
    assert new_day.drop("forecast_date").equals(week_before.drop("forecast_date")) and new_day.height == kept.height
    assert (k2["generated_at"] == now).all() and (fc2.join(two.refit, on=["sku", "warehouse_id"], how="semi")
                                                   ["generated_at"] == now2).all()
    series_rows = pl.col("sku") != "*"
    acc = lambda t: t["core.forecast_accuracy"].filter(series_rows).join(kept, on=["sku", "warehouse_id"],  # noqa: E731
                                                                         how="semi")
    assert acc(t2).equals(acc(t1)) and (acc(t2)["evaluated_at"] == now).all()
    assert t2["core.forecast_accuracy"].filter(~series_rows)["evaluated_at"].unique().to_list() == [now2]
    schemas.validate(schemas.ForecastFitModel, t2["state.forecast_fits"])

    # a full rebuild fits the refitted series exactly as the incremental run did
    full = run_forecast(wh, settings, now=now2, rebuild=True)
    assert full.kept == 0 and full.series == two.series
    t3 = _fc_tables(wh)
    for t, key in (("core.demand_forecast", two.refit), ("state.forecast_fits", two.refit)):
        assert t3[t].join(key, on=["sku", "warehouse_id"], how="semi").equals(
            t2[t].join(key, on=["sku", "warehouse_id"], how="semi"))
    per = lambda t: t["core.forecast_accuracy"].filter(series_rows)  # noqa: E731
    assert per(t3).join(two.refit, on=["sku", "warehouse_id"], how="semi").equals(
        per(t2).join(two.refit, on=["sku", "warehouse_id"], how="semi"))


def test_a_fit_older_than_refit_after_days_is_refitted(wh, settings):
    """A series whose demand did not change keeps its fit while it is at most refit_after_days days of history
    old, and is refitted after; a config change refits everything."""
    from som_pipeline.services.planning import run_forecast

    _forecast_home(settings, refit_after_days=3)
    orders, lines = _history_orders(range(100))
    day = lambda d: HISTORY_START + timedelta(days=d)  # noqa: E731

    def upto(d):
        o = orders.filter(pl.col("order_date") <= day(d))
        _history_warehouse(wh, o, lines.join(o.select("order_id"), on="order_id", how="semi"))
        return run_forecast(wh, settings, now=datetime.combine(day(d + 1), datetime.min.time(), UTC))

    upto(89)
    reasons = [set(upto(d).refit["reason"]) for d in (90, 91, 92, 93)]
    assert all(r <= {"demand changed", "new in window", "model follows recent days"}  # ages 1, 2, 3: kept unless
               for r in reasons[:3])
    assert "fit too old" in reasons[3]  # age 4 > 3
    fits = wh.read("SELECT DISTINCT sku, warehouse_id, fit_end FROM state.forecast_fits")
    assert fits["fit_end"].min() >= day(93) - timedelta(days=3)
    _forecast_home(settings, refit_after_days=3, horizon_days=21)
    changed = upto(93)
    assert set(changed.refit["reason"]) == {"config changed"} and changed.kept == 0
    assert wh.read("SELECT max(forecast_date) AS m FROM core.demand_forecast")["m"][0] == day(93 + 21)


def test_carry_forward_repeats_the_same_weekday_and_refit_plan_reasons():
    from som_pipeline.planning.incremental import carry_forward, refit_plan

    c = cfg(horizon_days=14, refit_after_days=5)
    end0 = date(2026, 3, 1)
    rows = pl.DataFrame({"sku": "A", "warehouse_id": "W", "forecast_date": pl.date_range(
        end0 + timedelta(days=1), end0 + timedelta(days=14), eager=True), "forecast": [float(i) for i in range(14)]})
    rows = rows.with_columns(*(pl.col("forecast").alias(k) for k in ("lo_80", "hi_80", "lo_95", "hi_95")),
                             pl.lit("SeasonalNaive").alias("model"), pl.lit(NOW).alias("generated_at"))
    new = carry_forward(rows.filter(pl.col("forecast_date") > end0 + timedelta(days=3)), end0 + timedelta(days=3), c)
    assert new["forecast_date"].to_list() == [end0 + timedelta(days=15 + i) for i in range(3)]
    assert new["forecast"].to_list() == [7.0, 8.0, 9.0]  # days 15-17 = days 8-10 (same weekday, its last week)

    cur = pl.DataFrame({"sku": ["A", "B", "C", "D", "E", "G"], "warehouse_id": "W", "series_class": "smooth",
                        "backtest": True, "theta": [False, False, True, False, False, False], "ets": False,
                        "window_fingerprint": ["a", "b2", "c", "d", "e", "g"]})
    fits = cur.filter(pl.col("sku") != "E").with_columns(
        pl.col("window_fingerprint").replace("b2", "b"), pl.lit(False).alias("theta"),
        pl.Series("fit_end", [end0 - timedelta(days=5), end0, end0, end0 - timedelta(days=6),
                              end0 - timedelta(days=1)]),
        pl.Series("model", ["HistoricAverage"] * 4 + ["TSB"]),
        pl.lit(c.fit_fingerprint()).alias("config_fingerprint"))
    fits = pl.concat([fits, fits.head(1).with_columns(pl.lit("F").alias("sku"))])
    refit, kept, dropped = refit_plan(cur, fits, end0, c)
    assert dict(refit.select("sku", "reason").iter_rows()) == {
        "B": "demand changed", "C": "class or budget changed", "D": "fit too old", "E": "new in window",
        "G": "model follows recent days"}
    assert kept["sku"].to_list() == ["A"] and dropped["sku"].to_list() == ["F"]
    assert set(refit_plan(cur, fits, end0, c, rebuild=True)[0]["reason"]) == {"first run or rebuild"}
    assert set(refit_plan(cur, fits, end0 - timedelta(days=1), c)[0]["reason"]) == {"history end moved back"}


def test_forecast_asset_reports_refits_and_checks_the_rows_written(wh, settings):
    """The demand_forecast asset (Dagster): first materialization fits every series; the second, with nothing
    changed, refits none, leaves the accuracy table as it was and its checks pass."""
    import dagster as dg

    from assets import all_assets
    from resources import B2BPortalResource, WarehouseResource

    _forecast_home(settings)
    orders, lines = _history_orders(range(90))
    _history_warehouse(wh, orders, lines)
    metas = []
    for _ in range(2):
        res = dg.materialize(all_assets, selection=dg.AssetSelection.assets(dg.AssetKey(["core", "demand_forecast"]))
                             .required_multi_asset_neighbors(), resources={
            "warehouse": WarehouseResource(som_home=str(settings.home), lock_timeout_s="120"),
            "b2b_portal": B2BPortalResource(url="")})
        assert res.success
        assert all(c.passed for c in res.get_asset_check_evaluations())
        mats = [e.event_specific_data.materialization for e in res.get_asset_materialization_events()]
        metas.append({m.asset_key.to_user_string(): m.metadata for m in mats})
    fits, again = metas[0]["state/forecast_fits"], metas[1]["state/forecast_fits"]
    assert fits["series_refitted"].value > 5 and fits["series_kept"].value == 0
    assert again["series_refitted"].value == 0 and again["series_kept"].value == fits["series_refitted"].value
    assert "unchanged" in metas[1]["core/forecast_accuracy"]
