"""Benchmark: backtest + model choice + forecast of 5,000 daily series x 2 years, then a replenishment plan.

    .venv/bin/python bench/bench_forecast.py [--series 5000] [--days 730] [--n-jobs N] [--ets N]

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--n-jobs", type=int, help="worker processes for Theta/AutoETS (default: config)")
    ap.add_argument("--ets", type=int, help="AutoETS series budget (default: config ets_max_series)")
    args = ap.parse_args()

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
