"""Benchmark: allocation of 100,000 order lines across 5 warehouses (optimiser vs greedy baseline).

    .venv/bin/python bench/bench_allocation.py [--lines 100000] [--seed 7] [--repeat 3] [--skus N]
                                               [--basis lines|units] [--scarce] [--relocation-passes N]

1. generates a deterministic synthetic instance (numpy, fixed seed): 5 US warehouses (time zones, cutoffs,
   handling costs; WH-NJ with capacity for 16 % of the lines, the others 30 % each), 48 destination regions
   zoned by distance, 3 carriers x 3 services with the demo's rate structure (weight bands 1/5/10/30/70 kg;
   UPS GROUND, the cheapest ground service, with a binding daily parcel capacity; DHL GROUND below the on-time
   threshold), lines / 20 SKUs (3 % hazmat, Zipf popularity), orders of 1-4 lines (8 % ship-complete, 15 %
   with a requested date), stock per SKU: about three weeks of cover for most SKUs and 1.05-1.3 days for 12 %
   (``--scarce``: 1.05-1.6 days for all), spread unevenly over the warehouses (some none);
2. runs ``allocate`` with the default configuration ``--repeat`` times: best wall time, time per stage, the
   rules the flow broke and the repairs, the plan's cost;
3. runs it once more with ``certify=True`` (one more min-cost flow: the plain relaxation) for the lower bound
   and the gap;
4. runs the greedy baseline (ship-complete orders whole, then cheapest option first) and prints its cost gap.
Target: <= 2 s for the standard instance (100k lines, lines basis) on the 2-core machine (the load average is
printed: other work may run); the script asserts the rules (stock, reservations) and exits 1 when the target
is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from som_pipeline import schemas  # noqa: E402
from som_pipeline.allocation import AllocationConfig, AllocationInputs, allocate  # noqa: E402

NOW = datetime(2026, 10, 1, 13, 0, tzinfo=UTC)  # Thursday, 09:00 in New York: before every cutoff
WAREHOUSES = [  # id, lat, lon, tz, cutoff hour, handling
    ("WH-NJ", 40.52, -74.35, "America/New_York", 15, "3.50"),
    ("WH-CA", 34.06, -117.65, "America/Los_Angeles", 14, "3.75"),
    ("WH-TX", 32.90, -97.04, "America/Chicago", 16, "3.25"),
    ("WH-IL", 41.88, -87.63, "America/Chicago", 15, "3.40"),
    ("WH-GA", 33.75, -84.39, "America/New_York", 15, "3.30"),
]
SERVICES = [("GROUND", "ground", 1.00), ("EXPRESS", "air", 1.70), ("AIR", "air", 2.90)]
CARRIERS = [("UPS", 1.00), ("FEDEX", 1.03), ("DHL", 0.97)]
BANDS = [(1.0, 7.90), (5.0, 11.40), (10.0, 16.80), (30.0, 34.50), (70.0, 68.00)]


def _frame(model, data: dict) -> pl.DataFrame:
    return schemas.conform(pl.DataFrame(data, strict=False), model)


def instance(n_lines: int, seed: int, n_sku: int | None = None, scarce: bool = False,
             basis: str = "lines") -> AllocationInputs:
    rng = np.random.default_rng(seed)
    n_w = len(WAREHOUSES)
    # destinations and zones (1..8 by great-circle-ish distance)
    n_dest = 48
    dlat, dlon = rng.uniform(26, 48, n_dest), rng.uniform(-122, -71, n_dest)
    wlat = np.array([w[1] for w in WAREHOUSES])
    wlon = np.array([w[2] for w in WAREHOUSES])
    km = np.hypot((dlat[:, None] - wlat[None]) * 111, (dlon[:, None] - wlon[None]) * 85)
    zone = np.clip(1 + km // 450, 1, 8).astype(int)
    regions = [f"R{i:02d}" for i in range(n_dest)]
    zones = _frame(schemas.ShippingZoneModel, {
        "warehouse_id": [w[0] for _ in range(n_dest) for w in WAREHOUSES],
        "dest_country": ["US"] * (n_dest * n_w),
        "dest_region": [r for r in regions for _ in WAREHOUSES],
        "zone": zone.ravel().tolist()})
    # carriers and rates
    car_rows, rate_rows = [], {"carrier_id": [], "service": [], "zone": [], "max_weight_kg": [], "rate": [],
                               "currency": [], "transit_days": []}
    for c, cm in CARRIERS:
        for s, mode, sm in SERVICES:
            otr = 0.90 if (c, s) == ("DHL", "GROUND") else 0.96
            cap = 9_000 if (c, s) == ("UPS", "GROUND") else 60_000
            car_rows.append({"carrier_id": c, "service": s, "mode": mode, "on_time_rate": otr,
                             "daily_capacity_parcels": cap, "active": True})
            for z in range(1, 9):
                for mx, base in BANDS:
                    rate_rows["carrier_id"].append(c)
                    rate_rows["service"].append(s)
                    rate_rows["zone"].append(z)
                    rate_rows["max_weight_kg"].append(mx)
                    rate = Decimal(str(base)) * (1 + Decimal(z - 1) * Decimal("0.18")) * Decimal(str(sm)) * Decimal(str(cm))
                    rate_rows["rate"].append(rate.quantize(Decimal("0.01")))
                    rate_rows["currency"].append("USD")
                    rate_rows["transit_days"].append({"GROUND": 1 + (z + 1) // 2, "EXPRESS": 1 + z // 4, "AIR": 1}[s])
    carriers = _frame(schemas.CarrierModel, {k: [r[k] for r in car_rows] for k in car_rows[0]})
    rates = _frame(schemas.CarrierRateModel, rate_rows)
    # products
    n_sku = n_sku or max(50, n_lines // 20)
    skus = [f"SKU{i:05d}" for i in range(n_sku)]
    products = _frame(schemas.ProductModel, {
        "sku": skus, "name": skus, "category": ["Tools"] * n_sku,
        "weight_kg": np.round(np.clip(rng.lognormal(0.3, 1.0, n_sku), 0.05, 40), 3),
        "length_cm": [10.0] * n_sku, "width_cm": [10.0] * n_sku, "height_cm": [10.0] * n_sku,
        "list_price": [Decimal("10.0000")] * n_sku, "currency": ["USD"] * n_sku,
        "hazmat": (rng.random(n_sku) < 0.03).tolist(), "restricted_countries": [None] * n_sku,
        "substitutes": [None] * n_sku, "active": [True] * n_sku})
    # orders and lines
    sizes = rng.choice([1, 2, 3, 4], p=[0.60, 0.22, 0.10, 0.08], size=n_lines)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n_lines)) + 1]
    sizes[-1] -= int(sizes.sum() - n_lines)
    sizes = sizes[sizes > 0]
    n_o = len(sizes)
    oid = np.repeat(np.arange(n_o), sizes)
    line_no = np.concatenate([np.arange(1, s + 1) for s in sizes]) if n_o < 0 else (
        np.arange(n_lines) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1)
    pop = rng.zipf(1.3, n_lines) % n_sku
    sku_idx = (pop * 7919 + rng.integers(0, 3, n_lines)) % n_sku
    qty = np.minimum(rng.geometric(0.55, n_lines), 12)
    o_ts = [NOW - timedelta(minutes=int(m)) for m in rng.integers(60, 3 * 24 * 60, n_o)]
    methods = rng.choice(["UPS_GROUND", "FEDEX_GROUND", "UPS_EXPRESS", "DHL_AIR"], p=[0.45, 0.25, 0.2, 0.1], size=n_o)
    dest = rng.integers(0, n_dest, n_o)
    sc = rng.random(n_o) < 0.08
    order_ids = [f"O{i:07d}" for i in range(n_o)]
    orders = _frame(schemas.OrderModel, {
        "channel": ["csv"] * n_o, "channel_order_ref": order_ids, "customer_ref": [None] * n_o,
        "customer_po": [None] * n_o, "order_ts": o_ts, "currency": ["USD"] * n_o,
        "ship_to_region": [regions[d] for d in dest], "ship_to_country": ["US"] * n_o,
        "ship_method": methods.tolist(), "ship_complete": sc.tolist(),
        "discount_total": [Decimal("0")] * n_o, "tax_total": [Decimal("0")] * n_o,
        "shipping_total": [Decimal("0")] * n_o, "line_count": sizes.tolist(), "unpriced_lines": [0] * n_o,
        "source_file": ["bench"] * n_o, "source_location": ["-"] * n_o, "content_hash": ["h"] * n_o,
        "captured_at": o_ts, "order_id": order_ids, "version": [1] * n_o, "customer_id": ["C1"] * n_o,
        "order_date": [t.date() for t in o_ts], "first_captured_at": o_ts, "capture_id": order_ids})
    req_mask = rng.random(n_lines) < 0.15
    req_days = rng.integers(1, 8, n_lines)
    requested = [NOW.date() + timedelta(days=int(d)) if m else None for m, d in zip(req_mask, req_days, strict=True)]
    line_sku = [skus[i] for i in sku_idx]
    lines = _frame(schemas.OrderLineModel, {
        "line_no": line_no.tolist(), "line_ref": [None] * n_lines, "sku": line_sku, "description": [None] * n_lines,
        "quantity": qty.tolist(), "uom": ["EA"] * n_lines, "unit_price": [Decimal("10.0000")] * n_lines,
        "discount_amount": [Decimal("0")] * n_lines, "tax_amount": [Decimal("0")] * n_lines,
        "shipping_amount": [Decimal("0")] * n_lines, "requested_date": requested,
        "order_id": [order_ids[o] for o in oid], "version": [1] * n_lines})
    reservations = (lines.select("order_id", "line_no", "sku", pl.col("sku").alias("requested_sku"),
                                 pl.col("quantity").cast(pl.Int64).alias("quantity_requested"),
                                 pl.col("quantity").cast(pl.Int64).alias("quantity_reserved"),
                                 pl.lit(0, pl.Int64).alias("quantity_backordered"), pl.lit("RESERVE").alias("decision"),
                                 pl.lit("APPROVED").alias("order_status"),
                                 pl.lit(NOW, pl.Datetime("us", "UTC")).alias("reserved_at")))
    reservations = schemas.conform(reservations, schemas.ReservationModel)
    # stock: per SKU, today's demand x a cover: about three weeks (lognormal, median 20 days) for most SKUs,
    # 1.05-1.3 days for the 12 % that are short (--scarce: 1.05-1.6 days for every SKU), over WH-CA/TX/IL/GA,
    # spread unevenly (Dirichlet, 15 % of (warehouse, SKU) empty); WH-NJ (too little capacity for its natural
    # demand) holds extra stock on top
    demand = np.bincount(sku_idx, weights=qty, minlength=n_sku)
    short = np.ones(n_sku, dtype=bool) if scarce else rng.random(n_sku) < 0.12
    cover = np.where(short, rng.uniform(1.05, 1.6 if scarce else 1.3, n_sku),
                     np.maximum(1.5, rng.lognormal(np.log(20.0), 0.8, n_sku)))
    total = np.ceil(demand * cover).astype(int) + rng.integers(0, 3, n_sku)
    share = rng.dirichlet([0.9] * (n_w - 1), n_sku) * (rng.random((n_sku, n_w - 1)) > 0.15)
    share[share.sum(axis=1) == 0, 0] = 1.0
    share /= share.sum(axis=1, keepdims=True)
    rest = np.floor(share * total[:, None]).astype(int)
    rest[:, 0] += total - rest.sum(axis=1)
    nj = np.floor(demand * rng.uniform(0.0, 0.8, n_sku)).astype(int)
    on_hand = np.column_stack([nj, rest])
    inventory = _frame(schemas.InventoryModel, {
        "warehouse_id": [w[0] for _ in range(n_sku) for w in WAREHOUSES], "sku": [s for s in skus for _ in WAREHOUSES],
        "on_hand": on_hand.ravel().tolist(), "as_of": [NOW] * (n_sku * n_w)})
    work = int(qty.sum()) if basis == "units" else n_lines
    caps = [int(work * f) for f in (0.16, 0.30, 0.30, 0.30, 0.30)]  # WH-NJ too small for its demand
    warehouses = _frame(schemas.WarehouseModel, {
        "warehouse_id": [w[0] for w in WAREHOUSES], "name": [w[0] for w in WAREHOUSES], "country": ["US"] * n_w,
        "region": ["X"] * n_w, "postal_code": ["0"] * n_w, "latitude": wlat.tolist(), "longitude": wlon.tolist(),
        "daily_capacity_lines": caps, "cutoff_time": [datetime(2000, 1, 1, w[4]).time() for w in WAREHOUSES],
        "timezone": [w[3] for w in WAREHOUSES], "handling_cost": [Decimal(w[5]) for w in WAREHOUSES],
        "active": [True] * n_w})
    return AllocationInputs(orders=orders, lines=lines, reservations=reservations, warehouses=warehouses,
                            inventory=inventory, products=products, carriers=carriers, carrier_rates=rates,
                            shipping_zones=zones, disruptions=schemas.empty(schemas.DisruptionModel))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skus", type=int, default=None, help="catalog size (default: lines / 20)")
    ap.add_argument("--basis", choices=["units", "lines"], default="lines")
    ap.add_argument("--scarce", action="store_true", help="every SKU short: stock 1.05-1.6 x today's demand")
    ap.add_argument("--relocation-passes", type=int, default=None)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores")
    t = time.perf_counter()
    inst = instance(a.lines, a.seed, a.skus, a.scarce, a.basis)
    print(f"instance: {inst.lines.height:,} lines, {inst.orders.height:,} orders, "
          f"{inst.products.height:,} SKUs, {inst.warehouses.height} warehouses, "
          f"{inst.carriers.height} carrier services (generated in {time.perf_counter() - t:.1f} s)")
    extra = {} if a.relocation_passes is None else {"relocation_passes": a.relocation_passes}
    cfg = AllocationConfig(capacity_basis=a.basis, **extra)
    best, res = None, None
    for _ in range(a.repeat):
        t = time.perf_counter()
        r = allocate(inst, now=NOW, config=cfg)
        el = time.perf_counter() - t
        if best is None or el < best:
            best, res = el, r
    m = res.metrics
    # the rules hold: nothing beyond stock, every row's units within its line's reservation
    al = res.allocations
    used = al.group_by("warehouse_id", "sku").agg(pl.col("quantity").sum().alias("q")).join(
        inst.inventory.select("warehouse_id", "sku", "on_hand"), on=["warehouse_id", "sku"], how="left")
    assert used.filter(pl.col("q") > pl.col("on_hand").fill_null(0)).height == 0, "allocated beyond stock"
    per_line = al.group_by("order_id", "line_no").agg(pl.col("quantity").sum().alias("q")).join(
        inst.reservations.select("order_id", "line_no", "quantity_reserved"), on=["order_id", "line_no"])
    assert per_line.filter(pl.col("q") > pl.col("quantity_reserved")).height == 0, "allocated beyond reservations"
    standard = a.lines == 100_000 and a.basis == "lines" and not a.scarce and a.skus is None
    verdict = ("OK" if best <= 2 else "MISSED") if standard else "n/a for this instance"
    print(f"\noptimiser: {best:.2f} s wall (best of {a.repeat})  [target <= 2 s for the standard instance: {verdict}]")
    print("  stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in m["seconds"].items()))
    print(f"  path {m['solver_path']}; rows by solver {m['rows_by_solver']}")
    print(f"  flow plan broke: {m['violations']}; repairs: {m['repairs']}")
    print(f"  allocated {m['allocated_units']:,} of {m['demand_units']:,} units; backordered {m['backordered_units']:,}")
    print(f"  plan cost {m['plan_cost']:,.2f} (sum of rounded rows {m['total_cost']:,.2f})")
    print(f"  extra shipments {m['extra_shipments']:,}; by warehouse:")
    for w in m["by_warehouse"]:
        print(f"    {w['warehouse_id']}: {w['units']:,} units, {w['rows']:,} rows, {w['cost']:,.2f}")
    t = time.perf_counter()
    c = allocate(inst, now=NOW, config=replace(cfg, certify=True))
    cm = c.metrics
    print(f"\ncertified run (one more flow: the plain relaxation): {time.perf_counter() - t:.2f} s wall")
    m_unit = cm["backorder_penalty_per_unit"]
    extra_units = cm["unallocated_units"] - cm["relaxation_unallocated_units"]
    print(f"  objective {cm['objective']:,.2f} (plan cost + {m_unit:,.2f} per unit left: {cm['unallocated_units']:,} "
          f"units); lower bound {cm['lower_bound']:,.2f} (the relaxation leaves {cm['relaxation_unallocated_units']:,} "
          f"units); gap {cm['gap']:,.2f}, of which about {extra_units * m_unit:,.2f} is the penalty of the "
          f"{extra_units:,} units only the relaxation places; the rest, {cm['gap'] - extra_units * m_unit:,.2f}, is "
          f"{100 * (cm['gap'] - extra_units * m_unit) / cm['plan_cost']:.2f} % of the plan cost; "
          f"proven optimal {cm['proven_optimal']}")
    t = time.perf_counter()
    g = allocate(inst, now=NOW, config=AllocationConfig(capacity_basis=a.basis, method="greedy"))
    gm = g.metrics
    print(f"\ngreedy (cheapest option first): {time.perf_counter() - t:.2f} s wall, solver {gm['seconds'].get('solve', 0):.2f} s")
    print(f"  allocated {gm['allocated_units']:,} units; plan cost {gm['plan_cost']:,.2f}; extra shipments {gm['extra_shipments']:,}")
    gap = (gm["plan_cost"] - m["plan_cost"]) / m["plan_cost"] * 100
    du = gm["allocated_units"] - m["allocated_units"]
    units = "the same units" if du == 0 else f"{abs(du):,} units {'more' if du > 0 else 'fewer'}"
    print(f"  greedy costs {gap:+.2f} % vs the optimiser's plan, allocating {units}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 1 if verdict == "MISSED" else 0


if __name__ == "__main__":
    sys.exit(main())
