"""Anomaly baselines as state (validation/anomaly_state.py): the same results as the full computation.

Random histories with a small window (groups fill and drop observations), many ties in time and value, null
keys and values; orders recorded run after run. On every run the check from the state (plus what the service
adds for groups the state cannot serve) must equal the check from every order so far, row for row.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from som_pipeline.validation import check_quantity_anomaly
from som_pipeline.validation.anomaly import _evaluated, _history_levels, _line_baselines, _value_baselines
from som_pipeline.validation.anomaly_state import (
    baseline_from_state,
    empty_state,
    groups_losing_rows,
    observations,
    rebuild_state,
    unservable_groups,
    update_state,
)
from tests.builders import CFG, T0, lines, orders

# small windows and low thresholds: groups fill up, drop observations, and findings are frequent
SMALL = replace(CFG, qty_baseline_window=3, qty_min_history=2, qty_z_threshold=1.0, qty_min_ratio=1.5,
                value_baseline_window=4, value_min_history=2, value_z_threshold=1.0, value_min_ratio=1.5,
                value_min_order_value=Decimal("0.00"), new_customer_threshold=Decimal("300.00"))
GROUP = ["level", "key1", "key2"]


def random_orders(rng: random.Random, n: int, prefix: str, start_min: int, span_min: int):
    o, ln = [], []
    for i in range(n):
        oid = f"{prefix}{i:04d}"
        ts = T0 + timedelta(minutes=start_min + rng.randrange(span_min))  # many orders at the same instant
        cust = rng.choice(["C1", "C2", "C3", "C4", None])
        cur = rng.choice(["USD", "USD", "EUR"])
        sub = rng.choice([None, Decimal(rng.randrange(1, 40) * 25).quantize(Decimal("0.01")), Decimal("100.00")])
        o.append({"order_id": oid, "order_ts": ts, "customer_id": cust, "currency": cur, "items_subtotal": sub,
                  "shipping_tax": Decimal("0.00"), "prices_include_tax": False})
        for li in range(1, rng.randrange(1, 4) + 1):
            q = rng.choice([1, 2, 2, 3, 5, 8, 40, 200])
            ln.append({"order_id": oid, "line_no": li, "sku": rng.choice(["S1", "S2", "S3", "S4"]), "quantity": q})
    return orders(*o), lines(*ln)


def sort_results(r: pl.DataFrame) -> pl.DataFrame:
    return r.sort(["order_id", "rule", "reason_code", "line_no", "message"], nulls_last=True)


def state_input(state: pl.DataFrame, all_o: pl.DataFrame, all_l: pl.DataFrame, ev_o: pl.DataFrame,
                ev_l: pl.DataFrame) -> pl.DataFrame:
    """What the service passes: the state plus the whole history of the groups the state cannot serve."""
    q = observations(ev_o, ev_l, require_value=False).collect()
    bad = unservable_groups(state, q, SMALL)
    extra = observations(all_o, all_l).join(bad.lazy(), on=GROUP, how="semi").collect()
    return pl.concat([state, extra]).unique(maintain_order=True)


def old_baselines(ev_o, ev_l, hist_o, hist_l, cfg):
    _o, ev_lines, ov = _evaluated(ev_o, ev_l)
    hist = _history_levels(hist_o, hist_l)
    x = _line_baselines(ev_lines, hist, cfg).select(
        "order_id", "line_no", pl.col("_level").alias("level"), pl.col("_median").alias("median"),
        pl.col("_mad").alias("mad"), pl.col("_hist_n").alias("n")).collect()
    v = ov.join(_value_baselines(ov, hist, cfg), on="_qid", how="left").select(
        "order_id", pl.col("_b_median").alias("median"), pl.col("_b_mad").alias("mad"),
        pl.col("_b_n").alias("n")).collect()
    return x, v


@pytest.mark.parametrize("seed", range(6))
def test_state_gives_the_full_computation_run_after_run(seed: int) -> None:
    rng = random.Random(seed)
    seen_new_customer: set[str] = set()
    state = empty_state()
    all_o, all_l = orders(), lines()
    all_o, all_l = all_o.clear(), all_l.clear()
    for run in range(8):
        # in time order, except every third run also brings orders placed before earlier runs' orders
        o, ln = random_orders(rng, rng.randrange(1, 12), f"R{run}-", run * 30, 30)
        if run % 3 == 2:
            bo, bl = random_orders(rng, 4, f"B{run}-", 0, run * 30)
            o, ln = pl.concat([o, bo]), pl.concat([ln, bl])
        all_o, all_l = pl.concat([all_o, o]), pl.concat([all_l, ln])
        given = state_input(state, all_o, all_l, o, ln)
        old = check_quantity_anomaly(o, ln, all_o, all_l, SMALL)
        new = check_quantity_anomaly(o, ln, all_o.clear(), all_l.clear(), SMALL, anomaly_state=given)
        assert_frame_equal(sort_results(new), sort_results(old))
        seen_new_customer.update(old.filter(pl.col("reason_code") == "NEW_CUSTOMER_REVIEW")["order_id"])
        # the baselines themselves, not only the findings
        for got, want in zip(baseline_from_state(given, o, ln, SMALL), old_baselines(o, ln, all_o, all_l, SMALL),
                             strict=True):
            assert_frame_equal(got.sort(got.columns[:2]), want.sort(want.columns[:2]))
        # the service also adds the unservable groups' history to the update (it refills them): the same state
        state = update_state(given, observations(o, ln), SMALL)
        assert_frame_equal(state, rebuild_state(all_o, all_l, SMALL))
    assert seen_new_customer  # the first-order rule was exercised too


def test_in_time_order_the_state_alone_suffices() -> None:
    rng = random.Random(42)
    state, all_o, all_l = empty_state(), orders().clear(), lines().clear()
    for run in range(10):
        o, ln = random_orders(rng, 10, f"R{run}-", run * 100, 100)
        all_o, all_l = pl.concat([all_o, o]), pl.concat([all_l, ln])
        q = observations(o, ln, require_value=False).collect()
        assert unservable_groups(state, q, SMALL).height == 0
        old = check_quantity_anomaly(o, ln, all_o, all_l, SMALL)
        new = check_quantity_anomaly(o, ln, all_o.clear(), all_l.clear(), SMALL, anomaly_state=state)
        assert_frame_equal(sort_results(new), sort_results(old))
        state = update_state(state, observations(o, ln), SMALL)


def test_a_backdated_order_needs_the_groups_history() -> None:
    """Held orders re-evaluated after newer orders: the state alone would miss the older observations."""
    cfg = replace(SMALL, qty_baseline_window=3)
    hist_o = orders(*[{"order_id": f"H{i}", "order_ts": T0 + timedelta(days=i)} for i in range(6)])
    hist_l = lines(*[{"order_id": f"H{i}", "quantity": q} for i, q in enumerate([10, 10, 10, 500, 500, 500])])
    state = rebuild_state(hist_o, hist_l, cfg)
    late = orders({"order_id": "LATE", "order_ts": T0 + timedelta(days=2, hours=12)})
    late_l = lines({"order_id": "LATE", "quantity": 400})
    q = observations(late, late_l, require_value=False).collect()
    bad = unservable_groups(state, q, cfg)
    assert sorted(bad.rows()) == [("customer", "C1", ""), ("customer_sku", "C1", "S1"), ("order_value", "C1", "USD"),
                                  ("sku_population", "S1", "")]
    everything_o, everything_l = pl.concat([hist_o, late]), pl.concat([hist_l, late_l])
    old = check_quantity_anomaly(late, late_l, everything_o, everything_l, cfg)
    assert old.filter(pl.col("reason_code") == "QTY_ANOMALY").height == 1  # 400 against 10, 10, 10
    # the state alone (last 3 = 500s, all after LATE) falls back to the global default: not the same
    alone = check_quantity_anomaly(late, late_l, everything_o, everything_l.clear(), cfg, anomaly_state=state)
    assert sort_results(alone)["evidence"].to_list() != sort_results(old)["evidence"].to_list()
    extra = observations(everything_o, everything_l).join(bad.lazy(), on=GROUP, how="semi").collect()
    new = check_quantity_anomaly(late, late_l, everything_o, everything_l.clear(), cfg,
                                 anomaly_state=pl.concat([state, extra]))
    assert_frame_equal(sort_results(new), sort_results(old))


def test_a_new_version_replaces_its_observations_and_full_groups_are_refilled() -> None:
    cfg = replace(SMALL, qty_baseline_window=3)
    o = orders(*[{"order_id": f"H{i}", "order_ts": T0 + timedelta(days=i)} for i in range(5)])
    ln = lines(*[{"order_id": f"H{i}", "quantity": q} for i, q in enumerate([1, 2, 3, 4, 5])])
    state = rebuild_state(o, ln, cfg)
    assert state.filter(pl.col("level") == "customer_sku")["value"].cast(pl.Int64).to_list() == [5, 4, 3]
    # H4 changes: now SKU S9 -> its rows are void; every full group holding one loses a row and is refilled
    o2 = o.with_columns(pl.when(pl.col("order_id") == "H4").then(2).otherwise(pl.col("version")).alias("version"))
    ln2 = ln.with_columns(pl.when(pl.col("order_id") == "H4").then(pl.lit("S9")).otherwise(pl.col("sku")).alias("sku"))
    changed = pl.DataFrame({"order_id": ["H4"]})
    losing = groups_losing_rows(state, changed, cfg)
    assert sorted(losing.select(GROUP).rows()) == [("customer", "C1", ""), ("customer_sku", "C1", "S1"),
                                                   ("order_value", "C1", "USD"), ("sku_population", "S1", "")]
    refill = observations(o2, ln2).join(losing.lazy(), on=GROUP, how="semi").collect()
    new_obs = observations(o2.filter(pl.col("order_id") == "H4"), ln2.filter(pl.col("order_id") == "H4")).collect()
    got = update_state(state, pl.concat([refill, new_obs]), cfg, replaced=changed)
    assert_frame_equal(got, rebuild_state(o2, ln2, cfg))
    # without the refill, the S1 group keeps only 2 rows: why the service refills
    short = update_state(state, new_obs, cfg, replaced=changed)
    assert short.filter((pl.col("level") == "customer_sku") & (pl.col("key2") == "S1")).height == 2


# ------------------------------------------------------------------------------------------------
# The service: state in the warehouse, run after run (new orders, backdated ones, held ones re-evaluated,
# new versions), against the full computation; the rebuild gives the same table
# ------------------------------------------------------------------------------------------------
def _record(con, all_o: pl.DataFrame, held: set[str]) -> None:
    """What validation records: a status row of the current version of every order (some ON_HOLD)."""
    from som_pipeline.schemas import OrderStatusModel, conform
    from som_pipeline.warehouse import replace_table

    st = all_o.select("order_id", "version", pl.col("order_ts").alias("since"),
                      pl.col("order_ts").alias("evaluated_at")).with_columns(
        pl.when(pl.col("order_id").is_in(list(held))).then(pl.lit("ON_HOLD")).otherwise(pl.lit("APPROVED"))
        .alias("status"), pl.lit("").alias("reasons"), pl.lit("system").alias("actor"))
    replace_table(con, "core.order_status", conform(st, OrderStatusModel))


def test_service_state_run_after_run_equals_the_full_computation_and_the_rebuild(tmp_path) -> None:
    from som_pipeline.services.anomaly import (
        anomaly_state_for_run,
        rebuild_anomaly_state,
        write_anomaly_state,
    )
    from som_pipeline.warehouse import Warehouse, read_table, replace_table, transaction

    rng = random.Random(7)
    wh = Warehouse(tmp_path / "w.duckdb")
    all_o, all_l = orders().clear(), lines().clear()
    held: set[str] = set()
    refilled = 0
    with wh.connect() as con:
        for run in range(9):
            o, ln = random_orders(rng, rng.randrange(3, 10), f"R{run}-", run * 30, 30)
            if run % 3 == 2:  # backdated orders
                bo, bl = random_orders(rng, 3, f"B{run}-", 0, run * 30)
                o, ln = pl.concat([o, bo]), pl.concat([ln, bl])
            if run % 4 == 3:  # a new version of an earlier order: other quantities, another SKU
                oid = rng.choice(all_o["order_id"].to_list())
                all_o = all_o.with_columns(pl.when(pl.col("order_id") == oid).then(pl.col("version") + 1)
                                           .otherwise(pl.col("version")).alias("version"))
                all_l = all_l.with_columns(
                    pl.when(pl.col("order_id") == oid).then(pl.lit("S9")).otherwise(pl.col("sku")).alias("sku"),
                    pl.when(pl.col("order_id") == oid).then(pl.col("quantity") * 7).otherwise(pl.col("quantity"))
                    .alias("quantity"))
            all_o, all_l = pl.concat([all_o, o]), pl.concat([all_l, ln])
            with transaction(con):
                replace_table(con, "core.orders", all_o)
                replace_table(con, "core.order_lines", all_l)
            status = read_table(con, "core.order_status")
            prev = status.select("order_id", pl.col("version").alias("_pv"), "status")
            ev_ids = all_o.join(prev, on="order_id", how="left").filter(
                pl.col("_pv").is_null() | (pl.col("_pv") != pl.col("version")) | (pl.col("status") == "ON_HOLD")
            ).select("order_id")
            ev_o = all_o.join(ev_ids, on="order_id", how="semi")
            ev_l = all_l.join(ev_ids, on="order_id", how="semi")

            got = anomaly_state_for_run(con, SMALL)
            refilled += got.refilled
            old = check_quantity_anomaly(ev_o, ev_l, all_o, all_l, SMALL)
            new = check_quantity_anomaly(ev_o, ev_l, all_o.clear(), all_l.clear(), SMALL, anomaly_state=got.history)
            assert_frame_equal(sort_results(new), sort_results(old))
            held = set(rng.sample(all_o["order_id"].to_list(), 3))
            with transaction(con):
                write_anomaly_state(con, got)
                _record(con, all_o, held)
            table = read_table(con, "core.anomaly_baselines")
            assert_frame_equal(table.sort(OBS), rebuild_state(all_o, all_l, SMALL).sort(OBS))
        assert refilled > 0  # the backdated, held and changed orders did need their groups' history
        with transaction(con):
            rebuild_anomaly_state(con, SMALL)
        assert_frame_equal(read_table(con, "core.anomaly_baselines").sort(OBS), table.sort(OBS))
        # a warehouse with recorded orders but no state yet (the upgrade): the first run builds it
        with transaction(con):
            con.execute("DELETE FROM core.anomaly_baselines")
        anomaly_state_for_run(con, SMALL)
        assert_frame_equal(read_table(con, "core.anomaly_baselines").sort(OBS), table.sort(OBS))


OBS = ["level", "key1", "key2", "order_id", "line_no"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_in_sorted_group_is_the_row_number_within_each_group(seed: int) -> None:
    """The baselines number each group's observations in time order without hashing the keys: the same numbers
    as ``int_range(len()).over(keys)`` on the sorted frame, whatever the group sizes (one row, many, repeated key
    parts across groups)."""
    from som_pipeline.validation.anomaly import _rank_in_sorted_group

    rng = random.Random(seed)
    df = pl.DataFrame({"a": [rng.choice("xyz") for _ in range(500)], "b": [rng.choice("pq") for _ in range(500)],
                       "t": [rng.randint(0, 9) for _ in range(500)]}).sort("a", "b", "t")
    want = df.select(pl.int_range(pl.len(), dtype=pl.Int64).over(["a", "b"]).alias("r"))
    got = df.select(_rank_in_sorted_group(["a", "b"]).alias("r"))
    assert_frame_equal(got, want)
    assert got["r"].max() > 10 and (got["r"] == 0).sum() == df.select("a", "b").n_unique()
