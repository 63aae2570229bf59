"""ETA model (tracking.eta) and the carrier simulator (demo.carriers).

The model is checked against a known distribution (log-normal transit: the conditional quantiles are exact), on
its fallback levels, on the shape of its predictions (monotone, progress narrows, P(late) rises with no progress)
and on an honest rolling-origin backtest of simulated history (P90 coverage and P50 MAE against the static
transit table). The simulator: deterministic, its weekend rules, its defect rates, its disruption.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from som_pipeline.demo import carriers as C
from som_pipeline.tracking import eta as E

ALL_DAYS = E.EtaConfig(operating_days={"X": "1111111"})  # service X operates every day: calendar hours
T0 = datetime(2026, 6, 1, tzinfo=UTC)
MU, SIGMA = 3.5, 0.5  # transit ~ log-normal: median exp(3.5) = 33.1 h


def _lognormal_history(n: int, seed: int = 3, carrier: str = "ZZ", service: str = "X", wh: str = "W1",
                       zone: int = 1, start: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    shipped = T0 + pl.Series(rng.uniform(0, 24 * 60, n) * 3600e6).cast(pl.Int64).cast(pl.Duration("us"))
    transit = pl.Series(rng.lognormal(MU, SIGMA, n) * 3600e6).cast(pl.Int64).cast(pl.Duration("us"))
    none = pl.lit(None, pl.Datetime("us", "UTC"))
    return pl.DataFrame({"shipment_id": [f"S{start + i}" for i in range(n)], "carrier_id": carrier,
                         "service": service, "origin_warehouse": wh, "dest_zone": zone}).with_columns(
        shipped.alias("shipped_at"), none.alias("picked_up_at"), none.alias("in_transit_at"),
        none.alias("out_for_delivery_at"), (shipped + transit).alias("delivered_at")).select(E.HISTORY_COLUMNS)


def _open(rows: list[dict]) -> pl.DataFrame:
    base = {"carrier_id": "ZZ", "service": "X", "origin_warehouse": "W1", "dest_zone": 1,
            "promised_date": None, "utc_offset_h": 0.0}
    return pl.DataFrame([{**base, **r} for r in rows], schema_overrides={
        "milestone_at": pl.Datetime("us", "UTC"), "promised_date": pl.Date, "dest_zone": pl.Int64})


def _lognormal_cond_quantile(p: float, age: float) -> float:
    """Remaining hours at quantile p of a log-normal transit, given not delivered after ``age`` hours."""
    d = stats.lognorm(s=SIGMA, scale=np.exp(MU))
    return float(d.ppf(d.cdf(age) + p * (1 - d.cdf(age))) - age)


@pytest.fixture(scope="module")
def sim_history() -> pl.DataFrame:
    return C.history(100_000, 7)


@pytest.fixture(scope="module")
def sim_model(sim_history) -> pl.DataFrame:
    return E.fit_transit(sim_history)


# --- the operating clock -------------------------------------------------------------------------------------

def test_operating_clock_skips_closed_days_and_round_trips():
    masks = ["1111100", "1111111"]
    fri_17_ny = datetime(2026, 12, 4, 22, tzinfo=UTC).timestamp() / 3600  # Friday 17:00 at UTC-5
    t = np.array([fri_17_ny, fri_17_ny])
    off, mid = np.array([-5.0, -5.0]), np.array([0, 1])
    b = E.operating_hours(t, off, mid, masks)
    due = E.from_operating_hours(b + 20.0, off, mid, masks)
    # Mon-Fri: 7 h left on Friday, 13 h on Monday -> Monday 13:00 local; every day: Saturday 13:00 local
    assert due[0] == pytest.approx(datetime(2026, 12, 7, 18, tzinfo=UTC).timestamp() / 3600)
    assert due[1] == pytest.approx(datetime(2026, 12, 5, 18, tzinfo=UTC).timestamp() / 3600)
    # a Saturday instant reads as Monday 00:00 on the weekday clock
    sat = datetime(2026, 12, 5, 15, tzinfo=UTC).timestamp() / 3600
    mon = datetime(2026, 12, 7, 5, tzinfo=UTC).timestamp() / 3600
    assert E.operating_hours(np.array([sat]), off[:1], mid[:1], masks)[0] == pytest.approx(
        E.operating_hours(np.array([mon]), off[:1], mid[:1], masks)[0])
    # round trip on open days
    rng = np.random.default_rng(1)
    x = rng.uniform(480_000, 500_000, 5_000)
    o = rng.choice([-8.0, -5.0, 1.0], x.size)
    loc_wd = ((np.floor((x + o) / 24) + 3) % 7).astype(int)
    x, o = x[loc_wd < 5], o[loc_wd < 5]
    m = np.zeros(x.size, dtype=np.int64)
    assert np.allclose(E.from_operating_hours(E.operating_hours(x, o, m, masks), o, m, masks), x, atol=1e-6)


# --- the quantile model ----------------------------------------------------------------------------------------

def test_fit_recovers_known_quantiles_and_conditional_ones():
    model = E.fit_transit(_lognormal_history(40_000), ALL_DAYS)
    lane = model.filter(pl.col("level") == "lane", pl.col("milestone") == "LABEL_CREATED")
    b0 = lane.filter(pl.col("age_bucket") == 0).row(0, named=True)
    assert b0["n"] == 40_000
    for col, p in (("p50", 0.5), ("p80", 0.8), ("p90", 0.9), ("p95", 0.95)):
        assert b0[col] == pytest.approx(np.exp(MU + SIGMA * stats.norm.ppf(p)), rel=0.03), col
    # the cohort still in transit at 36 h: remaining-time quantiles of the conditional distribution
    b36 = lane.filter(pl.col("age_from_h") == 36).row(0, named=True)
    assert b36["landmark_h"] == 36
    for col, p in (("p50", 0.5), ("p90", 0.9)):
        assert b36[col] == pytest.approx(_lognormal_cond_quantile(p, 36), rel=0.05), col
    # predict inside a bucket (age 30 h in [24, 36)) conditions on "not delivered after 30 h"
    pred = E.predict(_open([{"shipment_id": "A", "milestone": "LABEL_CREATED", "milestone_at": T0}]), model,
                     T0 + timedelta(hours=30), ALL_DAYS).row(0, named=True)
    now = T0 + timedelta(hours=30)
    assert (pred["eta_p50"] - now).total_seconds() / 3600 == pytest.approx(_lognormal_cond_quantile(0.5, 30), rel=0.06)
    assert (pred["eta_p90"] - now).total_seconds() / 3600 == pytest.approx(_lognormal_cond_quantile(0.9, 30), rel=0.06)
    assert pred["model_level"] == "lane"


def test_fallback_levels_when_cells_are_thin():
    hist = pl.concat([
        _lognormal_history(400, seed=1, carrier="AA", service="X", wh="W1", zone=1, start=0),
        _lognormal_history(5, seed=2, carrier="AA", service="X", wh="W1", zone=7, start=1000),   # thin lane
        _lognormal_history(6, seed=3, carrier="AA", service="Y", wh="W1", zone=1, start=2000),   # thin service
        _lognormal_history(400, seed=4, carrier="BB", service="X", wh="W2", zone=3, start=3000),
    ])
    cfg = E.EtaConfig(min_obs=30, operating_days={"X": "1111111", "Y": "1111111"})
    model = E.fit_transit(hist, cfg)
    at = T0 + timedelta(hours=1)
    rows = [("lane", "AA", "X", "W1", 1), ("carrier_service", "AA", "X", "W1", 7),
            ("carrier", "AA", "Y", "W1", 1), ("global", "CC", "X", "W9", 4)]
    o = _open([{"shipment_id": lvl, "carrier_id": c, "service": s, "origin_warehouse": w, "dest_zone": z,
                "milestone": "LABEL_CREATED", "milestone_at": T0} for lvl, c, s, w, z in rows]
              + [{"shipment_id": "none", "milestone": "DELIVERED", "milestone_at": T0}])
    pred = E.predict(o, model, at, cfg)
    assert pred["model_level"].to_list() == ["lane", "carrier_service", "carrier", "global", "none"]
    assert pred["n_obs"].to_list() == [400, 405, 411, 811, 0]
    assert pred.filter(pl.col("model_level") == "none")["eta_p50"].is_null().all()
    assert pred.filter(pl.col("model_level") != "none")["eta_p50"].is_not_null().all()
    # a thin lane has no cell of its own in the model
    assert model.filter(pl.col("level") == "lane", pl.col("dest_zone") == "7").height == 0


def test_kaplan_meier_quantiles_of_censored_values():
    # 0.1 observed (S = 3/4), 0.2 censored, 0.3 observed with two at risk (S = 3/8), 0.4 observed (S = 0)
    u, ev = np.array([0.4, 0.2, 0.1, 0.3]), np.array([True, False, True, True])
    assert E._km_quantiles(u, ev, np.array([0.2, 0.25, 0.5, 0.625, 0.7, 1.0])).tolist() == [
        0.1, 0.1, 0.3, 0.3, 0.4, 0.4]
    # all censored above 0.5: the upper levels are never reached -> 1
    assert E._km_quantiles(np.array([0.1, 0.6, 0.7]), np.array([True, False, False]),
                           np.array([0.3, 0.9])).tolist() == [0.1, 1.0]
    # no censoring: the empirical quantiles
    x = np.random.default_rng(1).random(1001)
    assert np.allclose(E._km_quantiles(x, np.ones(x.size, bool), np.array([0.5, 0.9])),
                       np.quantile(x, [0.5, 0.9], method="inverted_cdf"))


def _drifted(n: int = 30_000, slow_from_day: float = 52.0, factor: float = 1.6) -> pl.DataFrame:
    """Log-normal transits over 60 days; shipments from ``slow_from_day`` on take ``factor`` x as long."""
    h = _lognormal_history(n)
    slow = pl.col("shipped_at") >= T0 + timedelta(days=slow_from_day)
    return h.with_columns(pl.when(slow).then(pl.col("shipped_at") + (pl.col("delivered_at") - pl.col("shipped_at"))
                                             * factor).otherwise(pl.col("delivered_at")).alias("delivered_at"))


def test_calibration_catches_a_slowdown_and_is_the_identity_when_the_model_holds():
    as_of = T0 + timedelta(days=58)
    cover = {}
    for name, hist in (("steady", _lognormal_history(30_000)), ("slowed", _drifted())):
        test = E.milestone_at(hist, as_of)
        for cd in (0.0, 7.0):
            cfg = E.EtaConfig(operating_days={"X": "1111111"}, calib_days=cd)
            model = E.fit_transit(hist, cfg, as_of=as_of, open_=test)
            cal = model.filter(pl.col("level") == "calibration")
            assert cal.height == (2 if cd else 0)  # carrier x service and the all-carrier map
            pred = E.predict(test, model, as_of, cfg).join(test.select("shipment_id", "delivered_at"),
                                                           on="shipment_id")
            cover[name, cd] = (pred["delivered_at"] <= pred["eta_p90"]).mean()
            if cd and name == "steady":
                assert cal["p90"].to_list() == pytest.approx([0.9, 0.9], abs=0.03)
            if cd and name == "slowed":
                assert cal["p90"].min() > 0.95
    assert cover["steady", 7.0] == pytest.approx(cover["steady", 0.0], abs=0.03)
    assert cover["slowed", 0.0] < 0.75 < 0.85 < cover["slowed", 7.0]
    # without the open shipments there is no calibration (recent deliveries alone are the fast ones)
    assert E.fit_transit(_drifted(), ALL_DAYS, as_of=as_of).filter(pl.col("level") == "calibration").height == 0


def test_predictions_monotone_and_progress_narrows(sim_history, sim_model):
    now = datetime(2026, 11, 11, 15, tzinfo=UTC)
    open_ = E.milestone_at(sim_history, now)
    pred = E.predict(open_, sim_model, now)
    assert pred.height == open_.height > 1000
    assert pred["eta_p50"].is_not_null().all()
    assert (pred["eta_p50"] >= now).all() and (pred["eta_p90"] >= pred["eta_p50"]).all()
    assert set(pred["model_level"].unique()) <= set(E.LEVELS)
    # the same lane, one just picked up, one out for delivery (both entered their milestone an hour ago)
    lane = {"carrier_id": "UPS", "service": "GROUND", "origin_warehouse": "WH-NJ", "dest_zone": 4,
            "utc_offset_h": -5.0}
    o = _open([{**lane, "shipment_id": m, "milestone": m, "milestone_at": now - timedelta(hours=1)}
               for m in ("PICKED_UP", "OUT_FOR_DELIVERY")])
    p = {r["shipment_id"]: r for r in E.predict(o, sim_model, now).iter_rows(named=True)}
    pu, ofd = p["PICKED_UP"], p["OUT_FOR_DELIVERY"]
    assert ofd["eta_p50"] < pu["eta_p50"] and ofd["eta_p90"] < pu["eta_p90"]
    assert (ofd["eta_p90"] - ofd["eta_p50"]) < (pu["eta_p90"] - pu["eta_p50"])
    assert ofd["eta_p90"] - now < timedelta(hours=12) < pu["eta_p50"] - now


def test_p_late_rises_as_the_promise_approaches_without_progress(sim_model):
    picked = datetime(2026, 11, 9, 22, tzinfo=UTC)  # Monday 17:00 in New York
    o = _open([{"shipment_id": "S", "carrier_id": "FEDEX", "service": "GROUND", "origin_warehouse": "WH-NJ",
                "dest_zone": 4, "utc_offset_h": -5.0, "milestone": "IN_TRANSIT", "milestone_at": picked,
                "promised_date": date(2026, 11, 13)}])
    nows = [picked + timedelta(hours=h) for h in range(1, 24 * 5, 3)]
    p = [E.predict(o, sim_model, t)["p_late"][0] for t in nows]
    # within an age bucket P(late) = P(R > x | R > e) can only rise; crossing into the next bucket swaps the
    # cohort ("still in transit at 48 h" for "not delivered by 46 h"), which may move it by a hair
    assert all(b >= a - 0.01 for a, b in zip(p, p[1:], strict=False)), p
    assert p[0] < 0.3 and max(x for x in p if x < 1) > 0.6
    assert p[-1] == 1.0  # Saturday: the promised Friday has ended
    assert sum(b > a + 0.01 for a, b in zip(p, p[1:], strict=False)) >= 5
    # at one moment, an earlier promise is riskier
    at = picked + timedelta(hours=30)
    risk = E.predict(pl.concat([o.with_columns(pl.lit(date(2026, 11, d)).alias("promised_date"),
                                               pl.lit(f"D{d}").alias("shipment_id")) for d in (11, 12, 13, 16)]),
                     sim_model, at)["p_late"].to_list()
    assert risk == sorted(risk, reverse=True) and risk[0] > risk[-1]


def test_backtest_coverage_and_beats_the_static_table(sim_history):
    acc = E.backtest(sim_history, C.carrier_rates(), folds=6)
    assert set(acc.columns) >= {"carrier_id", "service", "n", "coverage_p90", "mae_p50_h", "mae_static_h"}
    total = acc.filter(pl.col("carrier_id") == "*").row(0, named=True)
    assert total["folds"] == 6 and total["n"] > 10_000 and total["n_static"] == total["n"]
    assert 0.85 <= total["coverage_p90"] <= 0.95, acc
    assert total["mae_p50_h"] < 0.7 * total["mae_static_h"], acc
    per = acc.filter(pl.col("carrier_id") != "*")
    assert per.height == 9 and per["n"].sum() == total["n"]
    assert (per["mae_p50_h"] < per["mae_static_h"]).all(), acc
    assert per.filter(pl.col("n") >= 500)["coverage_p90"].is_between(0.80, 0.96).all(), acc


def test_state_update_is_incremental_and_idempotent(sim_history):
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    known = sim_history.filter(pl.col("delivered_at") < as_of)
    cut = as_of - timedelta(days=20)
    state = E.update_state(known.filter(pl.col("delivered_at") < cut), known.filter(pl.col("delivered_at") >= cut),
                           as_of)
    again = E.update_state(state, known.filter(pl.col("delivered_at") >= cut), as_of)
    whole = E.update_state(known.head(0), known, as_of)
    assert state.equals(again) and state.equals(whole)
    assert state["delivered_at"].min() >= as_of - timedelta(days=E.EtaConfig().train_window_days)
    assert E.fit_transit(state, as_of=as_of).equals(E.fit_transit(sim_history, as_of=as_of))


# --- the simulator -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim():
    sh = C.shipments(40_000, 5, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 15, tzinfo=UTC))
    return sh, C.simulate_transits(sh, 5)


def test_simulator_is_deterministic(sim):
    sh, ev = sim
    assert C.simulate_transits(sh, 5).equals(ev)
    assert not C.simulate_transits(sh, 6).equals(ev)
    assert C.shipments(1000, 5, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)).equals(
        C.shipments(1000, 5, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)))


def _local(ev: pl.DataFrame, sh: pl.DataFrame) -> pl.DataFrame:
    return ev.join(sh.select("shipment_id", "utc_offset_h", "shipped_at"), on="shipment_id").with_columns(
        (pl.col("event_at").dt.replace_time_zone(None)
         + pl.duration(hours=pl.col("utc_offset_h").cast(pl.Int64))).alias("local"))


def test_simulator_weekend_rules(sim):
    sh, ev = sim
    loc = _local(ev.filter(pl.col("exception").is_null()), sh)
    dlv = loc.filter(pl.col("milestone") == "DELIVERED")
    # no weekend delivery for GROUND; nobody delivers on Sunday; EXPRESS / AIR do deliver on Saturday
    assert dlv.filter(pl.col("service") == "GROUND", pl.col("local").dt.weekday() >= 6).height == 0
    assert dlv.filter(pl.col("local").dt.weekday() == 7).height == 0
    assert dlv.filter(pl.col("service") != "GROUND", pl.col("local").dt.weekday() == 6).height > 0
    # pickups on business days only; Friday labels after the cutoff wait for Monday (or later)
    pick = loc.filter(pl.col("milestone") == "PICKED_UP").unique("shipment_id")
    assert pick.filter(pl.col("local").dt.weekday() >= 6).height == 0
    fri_late = pick.with_columns((pl.col("shipped_at").dt.replace_time_zone(None)
                                  + pl.duration(hours=pl.col("utc_offset_h").cast(pl.Int64))).alias("lab")).filter(
        pl.col("lab").dt.weekday() == 5, pl.col("lab").dt.hour() >= 16)
    assert fri_late.height > 100
    assert (fri_late["local"].dt.weekday() == 1).mean() > 0.9
    assert ((fri_late["local"] - fri_late["lab"]) > timedelta(days=2)).all()


def test_simulator_defects_at_their_rates(sim):
    sh, ev = sim
    n = sh.height
    key = ["shipment_id", "milestone", "exception", "event_at"]
    dup_rows = ev.height - ev.unique(key).height
    assert dup_rows / ev.unique(key).height == pytest.approx(C.DUPLICATE_RATE, rel=0.15)
    dlv = ev.filter(pl.col("milestone") == "DELIVERED").group_by("shipment_id").agg(pl.col("event_at").min()
                                                                                      .alias("d"))
    late_it = (ev.filter(pl.col("milestone") == "IN_TRANSIT").join(dlv, on="shipment_id")
               .filter(pl.col("event_at") > pl.col("d"))["shipment_id"].n_unique())
    assert late_it / dlv.height == pytest.approx(C.STRAGGLER_RATE, rel=0.25)
    # arrival order is not event order: some events arrive after a later event of the same shipment
    arrivals = ev.with_row_index("_arr").sort("shipment_id", "_arr").with_columns(
        (pl.col("event_at") < pl.col("event_at").cum_max().over("shipment_id").shift(1).over("shipment_id"))
        .alias("_back"))
    assert arrivals["_back"].sum() > 0
    exc = ev.filter(pl.col("milestone") == "EXCEPTION").unique(key).group_by("exception").len()
    rate = dict(zip(exc["exception"], (exc["len"] / n).to_list(), strict=True))
    assert rate["DELAY"] == pytest.approx(C.DELAY_RATE, rel=0.2)
    assert rate["FAILED_ATTEMPT"] == pytest.approx(C.FAILED_RATE, rel=0.3)
    assert 0 < rate["LOST"] < 0.01
    lost = ev.filter(pl.col("exception") == "LOST")["shipment_id"]
    assert dlv.filter(pl.col("shipment_id").is_in(lost.implode())).height == 0
    assert dlv.height == n - lost.n_unique()
    # a failed attempt is followed by a second OUT_FOR_DELIVERY and a delivery
    failed = ev.filter(pl.col("exception") == "FAILED_ATTEMPT")["shipment_id"].unique()
    ofd = ev.filter(pl.col("milestone") == "OUT_FOR_DELIVERY").unique(key).group_by("shipment_id").len()
    assert (ofd.filter(pl.col("shipment_id").is_in(failed.implode()))["len"] == 2).all()


def test_history_is_clean_despite_the_defects(sim):
    sh, ev = sim
    h = E.observations_from_events(ev, sh)
    assert h["shipment_id"].is_unique().all()
    assert h.height == ev.filter(pl.col("milestone") == "DELIVERED")["shipment_id"].n_unique()
    ordered = ["shipped_at", "picked_up_at", "in_transit_at", "out_for_delivery_at", "delivered_at"]
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert (h[a] <= h[b]).all(), (a, b)


def test_disruption_slows_only_that_carrier(sim):
    sh, ev = sim
    d = C.Disruption("DHL", datetime(2026, 9, 14, tzinfo=UTC), datetime(2026, 9, 21, tzinfo=UTC), 36.0)
    ev_d = C.simulate_transits(sh, 5, d)
    base, dis = (E.observations_from_events(e, sh).with_columns(
        ((pl.col("delivered_at") - pl.col("shipped_at")).dt.total_hours()).alias("h")) for e in (ev, ev_d))
    both = base.select("shipment_id", "carrier_id", "shipped_at", "h").join(
        dis.select("shipment_id", pl.col("h").alias("h_d")), on="shipment_id")
    others = both.filter(pl.col("carrier_id") != "DHL")
    assert (others["h"] == others["h_d"]).all()
    hit = both.filter(pl.col("carrier_id") == "DHL", pl.col("shipped_at").is_between(
        datetime(2026, 9, 12, tzinfo=UTC), datetime(2026, 9, 19, tzinfo=UTC)))
    assert hit.height > 300
    assert (hit["h_d"] - hit["h"]).median() > 24
    assert hit["h_d"].std() > hit["h"].std()
    after = both.filter(pl.col("carrier_id") == "DHL", pl.col("shipped_at") > datetime(2026, 9, 28, tzinfo=UTC))
    assert (after["h"] == after["h_d"]).all()
