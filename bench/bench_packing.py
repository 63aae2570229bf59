"""Benchmark: carton choice for 100,000 shipment lines (3-D packing heuristic vs one box per line).

    .venv/bin/python bench/bench_packing.py [--lines 100000] [--seed 11] [--skus 8000] [--repeat 1]

1. generates a deterministic synthetic workload (numpy, fixed seed): a catalogue of ``--skus`` SKUs with
   realistic sizes (sides 5-60 cm, log-normal around 18 cm), weights 0.1-20 kg (density-like, from the
   volume), ~5 % hazmat, ~10 % fragile, plus a few oversize / overweight SKUs (OWN_BOX); shipments of 1-5
   lines (40 % one line) with quantities 1-4 (mostly 1), about 40k shipments for 100k lines; 7 active
   carton sizes (and one inactive);
2. runs ``pack_shipments`` (best of ``--repeat``): wall time, peak RSS, packages, units;
3. checks conservation (every unit in exactly one package), weight limits and hazmat / fragile separation;
4. computes the one-box-per-line baseline and prints both total carton volumes and their ratio.
Target: well under 60 s on the 2-core machine (the load average is printed: other work may run); exits 1
when the checks fail or the run takes 60 s or more.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from som_pipeline.fulfilment.packing import one_box_per_line_volume, pack_shipments  # noqa: E402

TARGET_S = 60.0
CARTONS = [  # id, inner L x W x H cm, max kg, tare kg, cost, active
    ("BX-XS", 22, 16, 10, 5, 0.12, "0.38", True),
    ("BX-S", 30, 22, 15, 10, 0.22, "0.62", True),
    ("BX-M", 40, 30, 20, 20, 0.40, "1.05", True),
    ("BX-ML", 50, 35, 30, 25, 0.60, "1.48", True),
    ("BX-L", 60, 40, 40, 30, 0.85, "2.10", True),
    ("BX-XL", 70, 50, 50, 30, 1.15, "2.95", True),
    ("BX-XXL", 80, 60, 60, 32, 1.45, "3.90", True),
    ("BX-OLD", 45, 45, 45, 30, 0.70, "0.10", False),  # retired: must never be chosen
]


def cartons_frame() -> pl.DataFrame:
    cols = list(zip(*CARTONS, strict=True))
    return pl.DataFrame({
        "carton_id": list(cols[0]),
        "inner_length_cm": [float(v) for v in cols[1]],
        "inner_width_cm": [float(v) for v in cols[2]],
        "inner_height_cm": [float(v) for v in cols[3]],
        "max_weight_kg": [float(v) for v in cols[4]],
        "tare_kg": list(cols[5]),
        "cost": pl.Series([Decimal(v) for v in cols[6]], dtype=pl.Decimal(18, 2)),
        "active": list(cols[7]),
    })


def workload(n_lines: int, seed: int, n_skus: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    # The catalogue: three sides, rounded to 0.5 cm; weight from volume x a density, clipped to 0.1-20 kg.
    sides = np.clip(np.round(rng.lognormal(np.log(18.0), 0.45, size=(n_skus, 3)) * 2) / 2, 5.0, 60.0)
    volume = sides.prod(axis=1)
    density = rng.uniform(0.05, 0.6, n_skus) / 1000.0  # kg / cm3
    weight = np.clip(np.round(volume * density, 2), 0.1, 20.0)
    hazmat = rng.random(n_skus) < 0.05
    fragile = rng.random(n_skus) < 0.10
    # A few oversize (a side over every carton) and overweight units: OWN_BOX.
    n_odd = max(2, n_skus // 1000)
    odd = rng.choice(n_skus, size=2 * n_odd, replace=False)
    sides[odd[:n_odd], 0] = rng.uniform(90.0, 140.0, n_odd).round(1)
    weight[odd[n_odd:]] = rng.uniform(35.0, 60.0, n_odd).round(1)
    skus = np.array([f"SKU-{i:06d}" for i in range(n_skus)])

    # Shipments of 1-5 lines (distinct SKUs), quantities 1-4, until n_lines lines.
    per = rng.choice([1, 2, 3, 4, 5], p=[0.40, 0.20, 0.17, 0.13, 0.10], size=n_lines)
    per = per[: np.searchsorted(np.cumsum(per), n_lines) + 1]
    per[-1] -= per.sum() - n_lines
    per = per[per > 0]
    shipment = np.repeat(np.arange(per.size), per)
    popularity = rng.zipf(1.3, size=n_lines) % n_skus  # a few SKUs are everywhere
    sku_idx = (popularity + shipment * 7919) % n_skus
    # distinct SKUs within a shipment: bump duplicates
    line_no = np.arange(n_lines) - np.repeat(np.cumsum(per) - per, per)
    sku_idx = (sku_idx + line_no * 104729) % n_skus
    qty = rng.choice([1, 2, 3, 4], p=[0.60, 0.22, 0.11, 0.07], size=n_lines)
    return pl.DataFrame({
        "shipment_id": [f"SH-{s:07d}" for s in shipment],
        "sku": skus[sku_idx],
        "quantity": qty.astype(np.int64),
        "length_cm": sides[sku_idx, 0],
        "width_cm": sides[sku_idx, 1],
        "height_cm": sides[sku_idx, 2],
        "weight_kg": weight[sku_idx],
        "hazmat": hazmat[sku_idx],
        "fragile": fragile[sku_idx],
    })


def check(items: pl.DataFrame, res, cartons: pl.DataFrame) -> list[str]:
    problems = []
    want = items.group_by("shipment_id", "sku").agg(pl.col("quantity").sum()).sort("shipment_id", "sku")
    got = res.contents.group_by("shipment_id", "sku").agg(pl.col("quantity").sum()).sort("shipment_id", "sku")
    if not want.equals(got):
        problems.append("quantities do not conserve per shipment x sku")
    if res.placements.select("shipment_id", "sku", "unit_index").is_duplicated().any():
        problems.append("a unit is placed twice")
    limits = res.packages.join(cartons.select("carton_id", "max_weight_kg"), on="carton_id", how="left")
    over = limits.filter(pl.col("gross_weight_kg") > pl.col("max_weight_kg") + 1e-6)
    if over.height:
        problems.append(f"{over.height} packages over their carton's max weight")
    if res.packages.filter(pl.col("carton_id") == "BX-OLD").height:
        problems.append("an inactive carton was used")
    flags = items.select("shipment_id", "sku", "hazmat", "fragile").unique(["shipment_id", "sku"])
    mixed = (
        res.contents.join(flags, on=["shipment_id", "sku"])
        .group_by("shipment_id", "package_no")
        .agg(pl.col("hazmat").n_unique().alias("h"), pl.col("fragile").n_unique().alias("f"))
        .filter((pl.col("h") > 1) | (pl.col("f") > 1))
    )
    if mixed.height:
        problems.append(f"{mixed.height} packages mix hazmat or fragile with other units")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--skus", type=int, default=8000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()

    cartons = cartons_frame()
    items = workload(a.lines, a.seed, a.skus)
    n_ship = items["shipment_id"].n_unique()
    n_units = int(items["quantity"].sum())
    one_line = items.group_by("shipment_id").len().filter(pl.col("len") == 1).height
    print(f"workload: {items.height:,} lines, {n_ship:,} shipments ({one_line:,} of one line), {n_units:,} units, "
          f"{int(items['hazmat'].sum()):,} hazmat / {int(items['fragile'].sum()):,} fragile lines, "
          f"{cartons['active'].sum()} active cartons; load average {os.getloadavg()[0]:.2f}")

    best = float("inf")
    res = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        res = pack_shipments(items, cartons)
        best = min(best, time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pk = res.packages
    own = pk.filter(pl.col("carton_id") == "OWN_BOX").height
    print(f"pack_shipments: {best:.2f} s (best of {a.repeat}), peak RSS {rss_mb:.0f} MB")
    print(f"packages: {pk.height:,} ({pk.height / n_ship:.2f} per shipment; {own} OWN_BOX); "
          f"placements {res.placements.height:,}")
    mix = pk.group_by("carton_id").len().sort("carton_id")
    print("cartons used:", ", ".join(f"{c} {n:,}" for c, n in mix.iter_rows()))

    problems = check(items, res, cartons)

    t0 = time.perf_counter()
    baseline = one_box_per_line_volume(items, cartons)
    t_base = time.perf_counter() - t0
    packed = float(pk["carton_volume_cm3"].sum())
    items_vol = float(pk["items_volume_cm3"].sum())
    print(f"carton volume: packed {packed / 1e6:,.1f} m3 vs one box per line {baseline / 1e6:,.1f} m3 "
          f"(ratio {packed / baseline:.3f}; baseline computed in {t_base:.1f} s)")
    print(f"volume utilisation (items / cartons): packed {items_vol / packed:.1%}, "
          f"one box per line {items_vol / baseline:.1%}")
    for p in problems:
        print("CHECK FAILED:", p)
    if best >= TARGET_S:
        print(f"TARGET MISSED: {best:.1f} s >= {TARGET_S:.0f} s")
    return 1 if problems or best >= TARGET_S else 0


if __name__ == "__main__":
    raise SystemExit(main())
