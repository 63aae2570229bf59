"""Benchmark: backtest + model choice + forecast of 5,000 daily series x 2 years, then a replenishment plan;
with ``--history``, the forecast service over years of sparse order history in bounded memory.

    .venv/bin/python bench/bench_forecast.py [--series 5000] [--days 730] [--n-jobs N] [--ets N]
    .venv/bin/python bench/bench_forecast.py --history [--series 71000] [--years 6.6] [--max-rss-gb 8] [--compare]

``--history`` (the TPC-H SF 0.1 shape: ~71k SKU x warehouse series, 600k lines over 6.6 years, ~8 lines per
series): writes synthetic ``core.orders`` / ``core.order_lines`` / zones / warehouses into a temporary warehouse,
then times ``services.planning.run_forecast`` twice -- the first run (builds ``state.daily_demand`` from all
orders, then forecasts from its window) and the next day's run (one new day of orders: only that date is
recomputed; the forecast refits only the series that need it, docs/forecasting.md §5a) -- and prints seconds,
the series refitted (per reason), kept, dropped, seconds per step and peak RSS (this process and its worker
processes). ``--compare`` then runs a full refit of the same day and compares what the incremental run kept with
it (same model? forecast units over the horizon, per model). A watchdog stops the
run when RSS passes ``--max-rss-gb`` and prints how far it got (the code before the state table passed 14 GB).

1. generates (deterministically, numpy, seed 7) ``--series`` daily demand series of ``--days`` days with
   :func:`som_pipeline.planning.synthetic.synthetic_demand`: ~45 % weekly-seasonal with trends, ~35 %
   intermittent, ~20 % lumpy, a few late starters and near-dead series; 4 warehouses;
2. runs the forecasting core with the shipped config (``defaults.toml``; ``--n-jobs`` / ``--ets`` override
   ``n_jobs`` / ``ets_max_series``): classification, the rolling-origin backtest (3 folds x 14 days) of every
   candidate + the seasonal-naive baseline, the choice per series, the 28-day forecast with intervals and the
   accuracy rows -- timed as one "forecast + backtest" wall time (target: <= 60 s on the 2-core machine);
3. builds a replenishment plan against a synthetic stock snapshot (timed separately);
4. prints wall time, series/s, the load average before and after (other work may be running), overall MASE,
   MASE vs seasonal naive (in-sample over the folds, and the selection-honest holdout: choose on the first
   folds, score on the last; both must be < 1), the model mix, the time per backtest step and peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path


def _peak_mb() -> tuple[float, float]:
    """Peak RSS so far (MB) of this process and of its largest finished child."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def _watchdog(cap_gb: float, t0: float, label: list[str]) -> None:
    """Stop the process when its RSS passes ``cap_gb`` (a shared machine must not swap)."""
    import threading

    def watch() -> None:
        while True:
            rss = _rss_mb()
            if rss > cap_gb * 1024:
                print(f"ABORTED: {label[0]} passed {cap_gb:.1f} GB RSS ({rss:,.0f} MB) after "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


def history_orders(n_series: int, years: float, warehouses: int = 4, lines_per_series: float = 8.5, seed: int = 11,
                   end=None):
    """``(orders, lines)`` conforming to the models: ``n_series / warehouses`` SKUs, one ship-to region per
    warehouse (each region's home), ~``lines_per_series`` lines per series spread uniformly over the years,
    4 lines per order, quantities 1-50 (TPC-H). ``end``: the last order date."""
    from datetime import date, timedelta

    import numpy as np
    import polars as pl

    from som_pipeline import schemas

    rng = np.random.default_rng(seed)
    end = end or date(1998, 8, 2)
    days = int(years * 365.25)
    n_lines = int(n_series * lines_per_series)
    n_orders = n_lines // 4
    skus = n_series // warehouses
    order_day = rng.integers(0, days, n_orders)
    region = rng.integers(0, warehouses, n_orders)
    start = end - timedelta(days=days - 1)
    ts = (np.datetime64(start) + order_day).astype("datetime64[us]") + np.timedelta64(12, "h")
    o = pl.DataFrame({"order_id": [f"T-{i}" for i in range(n_orders)], "order_ts": ts,
                      "ship_to_region": [f"R{r}" for r in region]})
    o = o.with_columns(pl.col("order_ts").dt.replace_time_zone("UTC"), pl.col("order_ts").dt.date().alias("order_date"))
    li = pl.DataFrame({"order_id": np.repeat(o["order_id"].to_numpy(), 4), "line_no": np.tile(np.arange(1, 5), n_orders),
                       "sku": [f"P{k:06d}" for k in rng.integers(0, skus, n_orders * 4)],
                       "quantity": rng.integers(1, 51, n_orders * 4)})

    def fill(df: pl.DataFrame, model) -> pl.DataFrame:
        exprs = []
        for name, dt in schemas.polars_schema(model).items():
            if name in df.columns:
                continue
            if name in ("order_ts", "captured_at", "first_captured_at"):
                exprs.append(pl.col("order_ts").alias(name))
            elif dt == pl.String:
                exprs.append(pl.lit("US" if name == "ship_to_country" else "USD" if name == "currency" else "x")
                             .alias(name))
            elif dt == pl.Boolean:
                exprs.append(pl.lit(False).alias(name))
            elif isinstance(dt, pl.Decimal):
                exprs.append(pl.lit(0).cast(dt).alias(name))
            elif dt in (pl.Int64, pl.Int32):
                exprs.append(pl.lit(1).cast(dt).alias(name))
            else:
                exprs.append(pl.lit(None, dt).alias(name))
        return schemas.conform(df.with_columns(exprs), model)

    o = fill(o.with_columns(pl.lit("csv").alias("channel"), pl.col("order_id").alias("channel_order_ref")),
             schemas.OrderModel).with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("cancelled_at"),
                                              pl.lit(None, pl.Datetime("us", "UTC")).alias("source_updated_at"))
    return o, fill(li, schemas.OrderLineModel)


def history_main(args) -> int:
    """``--history``: run_forecast over years of sparse history (see the module docstring)."""
    import tempfile
    from datetime import UTC, datetime, timedelta
    from datetime import time as dtime
    from decimal import Decimal

    import polars as pl

    from som_pipeline import schemas
    from som_pipeline.config import Settings
    from som_pipeline.services.planning import run_forecast
    from som_pipeline.warehouse import Warehouse, insert_frame

    t = time.perf_counter()
    orders, lines = history_orders(args.series, args.years)
    end = orders["order_date"].max()
    whs = [f"WH-{k}" for k in range(4)]
    zones = pl.DataFrame({"warehouse_id": whs * 2, "dest_country": "US", "dest_region": [f"R{k}" for k in range(4)]
                          + ["*"] * 4, "zone": [1] * 4 + [5] * 4})
    wh_rows = schemas.from_rows(schemas.WarehouseModel, [
        {"warehouse_id": w, "name": w, "country": "US", "region": f"R{k}", "postal_code": "0", "latitude": 0.0,
         "longitude": 0.0, "daily_capacity_lines": 10_000, "cutoff_time": dtime(15), "timezone": "UTC",
         "handling_cost": Decimal("1.00"), "active": True} for k, w in enumerate(whs)])
    home = Path(tempfile.mkdtemp(prefix="bench_forecast_"))
    s = Settings(home=home, b2b_db_url=f"sqlite:///{home / 'b2b.sqlite'}")
    s.ensure_dirs()
    wh = Warehouse(s.warehouse_path, memory_limit=s.duckdb_memory_limit)
    with wh.transaction() as con:
        insert_frame(con, "core.orders", orders)
        insert_frame(con, "core.order_lines", lines)
        insert_frame(con, "ref.shipping_zones", schemas.conform(zones, schemas.ShippingZoneModel))
        insert_frame(con, "ref.warehouses", wh_rows)
    n_series = lines.join(orders.select("order_id", "ship_to_region"), on="order_id").select(
        "sku", "ship_to_region").n_unique()
    print(f"history: {orders.height:,} orders, {lines.height:,} lines, {n_series:,} SKU x warehouse series, "
          f"{orders['order_date'].min()} .. {end} ({args.years} years), written in {time.perf_counter() - t:.1f} s; "
          f"RSS now {_rss_mb():,.0f} MB")
    del orders, lines
    label = ["first run"]
    _watchdog(args.max_rss_gb, time.perf_counter(), label)

    def one(now: datetime) -> None:
        t0 = time.perf_counter()
        out = run_forecast(wh, s, now=now)
        result = getattr(out, "result", out)  # before the state table run_forecast returned the ForecastResult
        history = getattr(out, "history", None)
        wall = time.perf_counter() - t0
        me, kids = _peak_mb()
        hist = (f"; state.daily_demand: {len(history.dates):,} order dates recomputed, {history.rows.height:,} rows "
                f"written, {history.total_rows:,} rows in all" if history is not None else "")
        if hasattr(out, "refit"):  # the incremental forecast (state.forecast_fits)
            why = dict(out.refit.group_by("reason").len().sort("reason").rows())
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items())
            fc = (f"{out.series:,} series forecast ({out.forecast_rows:,} rows): {out.refit.height:,} refitted "
                  f"{why}, {out.kept:,} kept ({out.carried.height:,} rows carried forward), {out.dropped:,} dropped "
                  f"[{steps}]")
        else:
            fc = f"{result.backtest.series.height:,} series forecast ({result.forecast.height:,} forecast rows)"
        print(f"{label[0]}: {wall:.1f} s, {fc}{hist}; peak RSS {me:,.0f} MB (worker processes {kids:,.0f} MB)",
              flush=True)
        return out

    one(datetime.combine(end + timedelta(days=1), dtime(6), UTC))
    label[0] = "next day's run"
    new_o, new_l = history_orders(240, 1 / 365.25, seed=12, end=end + timedelta(days=1))
    new_o = new_o.with_columns(("N" + pl.col("order_id")).alias("order_id"))
    new_l = new_l.with_columns(("N" + pl.col("order_id")).alias("order_id"))
    with wh.transaction() as con:
        insert_frame(con, "core.orders", new_o)
        insert_frame(con, "core.order_lines", new_l)
    nxt = one(datetime.combine(end + timedelta(days=2), dtime(6), UTC))
    if args.compare and hasattr(nxt, "refit"):
        compare(wh, s, nxt, datetime.combine(end + timedelta(days=2), dtime(6), UTC))
    return 0


def compare(wh, s, nxt, now) -> None:
    """``--compare``: what the next day's incremental run kept, against a full refit of the same day (a third
    run, ``rebuild=True``): same chosen model? forecast over the horizon? (For a kept series whose full refit
    chooses the same model, the full refit is the kept model re-forecast on the current window: the difference
    is what carrying the forecast forward approximates.)"""
    import polars as pl

    from som_pipeline.services.planning import run_forecast

    q = "SELECT sku, warehouse_id, model, sum(forecast) AS f28, sum(hi_95) AS h28 FROM core.demand_forecast GROUP BY ALL"
    inc = wh.read(q)
    t0 = time.perf_counter()
    full = run_forecast(wh, s, now=now, rebuild=True)
    print(f"full refit of the same day: {time.perf_counter() - t0:.1f} s "
          f"[{', '.join(f'{k} {v:.1f} s' for k, v in full.timings.items())}]")
    ref = wh.read(q)
    j = inc.join(ref, on=["sku", "warehouse_id"], suffix="_full").join(
        nxt.refit.select("sku", "warehouse_id"), on=["sku", "warehouse_id"], how="anti")
    same = j.filter(pl.col("model") == pl.col("model_full"))
    print(f"kept series: {j.height:,}; same model as the full refit: {same.height:,} "
          f"({same.height / max(j.height, 1):.2%})")
    for name, d in (("all kept", j), ("kept, same model", same)):
        err = (d["f28"] - d["f28_full"]).abs().sum() / max(d["f28_full"].sum(), 1e-9)
        exact = (d["f28"] - d["f28_full"]).abs().le(1e-9).mean()
        print(f"    {name}: 28-day units sum |carried - full| / sum full = {err:.4%}; identical: {exact:.2%}; "
              f"hi_95 sum rel. diff {(d['h28'] - d['h28_full']).abs().sum() / max(d['h28_full'].sum(), 1e-9):.4%}")
    by = (same.with_columns(((pl.col("f28") - pl.col("f28_full")).abs() <= 1e-9).alias("exact"))
          .group_by("model").agg(pl.len().alias("series"), pl.col("exact").mean().alias("identical"),
                                 ((pl.col("f28") - pl.col("f28_full")).abs().sum() / pl.col("f28_full").sum())
                                 .alias("rel_diff")).sort("series", descending=True))
    for r in by.iter_rows(named=True):
        print(f"        {r['model']:<22} {r['series']:>6,} series, identical {r['identical']:.1%}, "
              f"28-day units rel. diff {r['rel_diff']:.4%}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, help="series (default 5000; 71000 with --history)")
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--n-jobs", type=int, help="worker processes for Theta/AutoETS (default: config)")
    ap.add_argument("--ets", type=int, help="AutoETS series budget (default: config ets_max_series)")
    ap.add_argument("--history", action="store_true", help="run_forecast over years of sparse order history")
    ap.add_argument("--years", type=float, default=6.6, help="--history: years of history")
    ap.add_argument("--max-rss-gb", type=float, default=8.0, help="--history: stop when RSS passes this")
    ap.add_argument("--compare", action="store_true",
                    help="--history: then a full refit of the next day, compared with what the incremental run kept")
    args = ap.parse_args()
    if args.history:
        args.series = args.series or 71_000
        return history_main(args)
    args.series = args.series or 5000

    import polars as pl

    from som_pipeline import schemas
    from som_pipeline.planning import (
        accuracy,
        backtest,
        error_stats,
        forecast,
        holdout_ratio,
        load_config,
        model_mix,
        overall,
        replenishment_plan,
    )
    from som_pipeline.planning.synthetic import synthetic_demand

    cfg = load_config()
    over = {k: v for k, v in (("n_jobs", args.n_jobs), ("ets_max_series", args.ets)) if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    load0 = os.getloadavg()
    t = time.perf_counter()
    demand, _truth = synthetic_demand(args.series, args.days, seed=7)
    print(f"generated {args.series:,} series x {args.days} days ({demand.height:,} rows, "
          f"{demand['y'].sum():,} units) in {time.perf_counter() - t:.1f} s")
    now = datetime.combine(demand["ds"].max(), datetime.min.time(), UTC).replace(hour=6)

    t0 = time.perf_counter()
    bt = backtest(demand, cfg)
    t1 = time.perf_counter()
    fc = forecast(demand, bt, cfg, now)
    t2 = time.perf_counter()
    acc = accuracy(bt, cfg, now)
    t3 = time.perf_counter()
    wall = t3 - t0
    load1 = os.getloadavg()

    # replenishment against a synthetic snapshot: 0 to ~3 x the 28-day forecast on hand, varying per series
    last = fc.group_by("sku", "warehouse_id").agg(pl.col("forecast").sum().alias("f28"))
    inv = last.with_row_index("i").select(
        "warehouse_id", "sku",
        ((pl.col("f28") * ((pl.col("i") * 7919) % 23) / 7).round(0).cast(pl.Int64)).alias("on_hand"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("as_of"))
    prods = schemas.from_rows(schemas.ProductModel, [
        {"sku": s, "name": s, "category": "Tools", "weight_kg": 1.0, "length_cm": 1.0, "width_cm": 1.0,
         "height_cm": 1.0, "list_price": Decimal("1.0000"), "currency": "USD", "hazmat": False, "active": True}
        for s in inv["sku"].unique().sort()])
    whs = pl.DataFrame({"warehouse_id": sorted(inv["warehouse_id"].unique()), "country": "US", "active": True})
    t4 = time.perf_counter()
    plan = replenishment_plan(fc, error_stats(bt), inv, None, whs, prods, cfg, now)
    t5 = time.perf_counter()

    head = overall(acc)
    hold = holdout_ratio(bt, cfg)
    n = bt.series.height
    print(f"load average before {load0[0]:.2f} / after {load1[0]:.2f} (2 cores); n_jobs={cfg.n_jobs}, "
          f"theta budget {cfg.theta_max_series}, AutoETS budget {cfg.ets_max_series}")
    print(f"forecast + backtest: {wall:.1f} s wall = backtest {t1 - t0:.1f} s + forecast {t2 - t1:.1f} s "
          f"+ accuracy {t3 - t2:.1f} s -> {n / wall:,.0f} series/s  (target <= 60 s: "
          f"{'OK' if wall <= 60 else 'MISSED'})")
    for k, v in bt.timings.items():
        print(f"    {v:6.1f} s  {k}")
    print(f"rows: demand_forecast {fc.height:,}, forecast_accuracy {acc.height:,}")
    print(f"overall (chosen models, all series, volume-weighted): MASE {head['mase']:.3f}, WAPE {head['wape']:.3f}, "
          f"bias {head['bias']:+.3f}")
    print(f"MASE vs seasonal naive: {head['mase_vs_seasonal_naive']:.3f} over the backtest folds; "
          f"holdout (chosen on folds 1-{cfg.folds - 1}, scored on fold {cfg.folds}): {hold:.3f}  (< 1 required: "
          f"{'OK' if head['mase_vs_seasonal_naive'] < 1 and hold < 1 else 'MISSED'})")
    by_class = acc.filter((pl.col("sku") == "*") & (pl.col("model") == "*") & (pl.col("series_class") != "*"))
    print("by class (MASE vs seasonal naive): " + ", ".join(
        f"{r['series_class']} {r['mase_vs_seasonal_naive']:.3f}" for r in by_class.iter_rows(named=True)
        if r["mase_vs_seasonal_naive"] is not None))
    print("model mix:")
    mix = model_mix(bt)
    for r in mix.iter_rows(named=True):
        print(f"    {r['series_class']:<13} {r['model']:<22} {r['series']:>5}")
    kinds = plan.group_by("kind").agg(pl.len().alias("rows"), pl.col("quantity").sum().alias("units"))
    print(f"replenishment plan: {t5 - t4:.2f} s for {n:,} SKU x warehouse positions -> " + ", ".join(
        f"{r['rows']:,} {r['kind']}s ({r['units']:,} units)" for r in kinds.sort("kind", descending=True).iter_rows(
            named=True)))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    ok = wall <= 60 and head["mase_vs_seasonal_naive"] < 1 and hold < 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
