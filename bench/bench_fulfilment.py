"""Benchmark: 100,000 allocated lines through the fulfilment stage -- waves, tasks, scans, packing, labels,
rating, shipments, channel confirmations and every ledger posting -- on a fresh warehouse.

    .venv/bin/python bench/bench_fulfilment.py [--lines 100000] [--seed 12] [--skus 5000] [--keep DIR]
                                               [--profile release|floor]

1. **generate** (seeded numpy, a few seconds): a fresh ``Warehouse`` in a temporary ``$SOM_HOME`` with reference
   data inserted directly -- 4 warehouses in 3 time zones with their cutoffs, ``--skus`` products (log-normal
   sizes, weights from a density, ~4 % hazmat, ~10 % fragile, a few oversize / overweight for OWN_BOX),
   UPC-A aliases with their check digit, one bin per warehouse x SKU (a few SKUs unslotted), the demo's
   cartons (``demo.master_data.CARTONS``), carrier rates and shipping zones for every destination; an opening
   stock posted to the ledger (``ledger.cycle_count`` movements through ``services.stock.post``) covering the
   demand plus a margin; and ``--lines`` allocated lines: orders from shopify / amazon / edi / csv (B2B
   channels with more lines and bigger quantities, some ship-complete), their catalog lines, APPROVED status,
   and allocations shipping today in the warehouse's time zone (UPS / FEDEX / DHL, GROUND / EXPRESS; ~10 % of
   multi-line US orders split over two warehouses). Every frame is conformed and validated with its Pandera
   model before it is inserted.
2. **release**: ``run_fulfilment(wh, settings, now)`` -- waves, pick tasks, reserve postings, statuses.
3. **floor**: a scans CSV in ``landing/scans`` confirming every open task (timed on its own), then
   ``run_floor(wh, settings, now + 1h)`` -- judge the scans, pick postings, then ship: packing, labels, rating,
   ship postings, outbound documents (written under ``$SOM_HOME/outbound``), statuses.
4. **verify** (not timed as a phase): conservation -- units allocated = released = picked = shipped = packed,
   pick and ship movements equal to them, the ledger's balances per warehouse x SKU equal to opening minus
   shipped with nothing reserved or picked, every task picked and shipped, one document per EDI shipment and
   per Shopify / Amazon package; and the cartons' volume against one box per line
   (``packing.one_box_per_line_volume`` on the same shipment lines).

Each phase runs in its own child process, so its peak RSS (``ru_maxrss``) is its own; a sampler thread also
records the RSS every 20 ms (``base`` is the RSS just before the phase starts: interpreter, Polars, DuckDB).
The service's steps are timed by wrapping them (``STEPS``: stop / release / statuses; take scans / ship, and in
ship: shippable, packing, confirmations, file writes); a step the service no longer has is skipped.
The clock is pinned (``NOW``: before every warehouse's cutoff); the landing settle interval is 0 (no sleep).
Prints a table; exits 1 when a conservation check fails. ``--profile release|floor`` prints that phase's
cProfile top 15 (by own time and by cumulative time) to stderr.

Measured 2026-12-05 on the 2-core machine, seed 12, 100k lines (45k orders, 294k units, 46k shipments):
release 1.4 s at 0.53 GB peak; floor 32 s at 1.0 GB peak -- confirmations 13.7 s (44,772 documents), packing
10.6 s, writing the document files 3.1 s, taking the scans 2.1 s; cartons 92.6 % of one box per line's volume
(utilisation 35.0 % vs 32.4 %). Before the confirmations were split per shipment once: floor 137 s (98 s of it
filtering the whole frames per shipment).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
from phases import MARK, emit, measured, settings_for, warehouse_for  # noqa: E402, F401 (bench/ is on sys.path)
from phases import child as _child  # noqa: E402
from phases import step_timers as _step_timers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 05:00 NJ, 02:00 CA, 04:00 TX, 11:00 NL: before every cutoff
FLOOR_AT = NOW + timedelta(hours=1)

WAREHOUSES = [  # id, name, country, region, postal, lat, lon, capacity, cutoff, tz, handling
    ("WH-NJ", "East Coast DC (Edison, NJ)", "US", "NJ", "08837", 40.5187, -74.3496, 4200, dtime(15), "America/New_York", "3.50"),
    ("WH-CA", "West Coast DC (Ontario, CA)", "US", "CA", "91761", 34.0633, -117.6509, 3600, dtime(14), "America/Los_Angeles", "3.75"),
    ("WH-TX", "Central DC (Dallas, TX)", "US", "TX", "75261", 32.8998, -97.0403, 3000, dtime(16), "America/Chicago", "3.25"),
    ("WH-NL", "EU DC (Venlo, NL)", "NL", "LI", "5928 LZ", 51.3704, 6.1724, 2000, dtime(13), "Europe/Amsterdam", "3.20"),
]
US_WH = ["WH-NJ", "WH-CA", "WH-TX"]
# US destination states: (state, weight, home warehouse)
US_STATES = [("NY", 10, "WH-NJ"), ("NJ", 6, "WH-NJ"), ("MA", 5, "WH-NJ"), ("PA", 6, "WH-NJ"), ("GA", 5, "WH-TX"),
             ("FL", 8, "WH-TX"), ("IL", 7, "WH-TX"), ("TX", 10, "WH-TX"), ("CO", 3, "WH-TX"), ("AZ", 3, "WH-CA"),
             ("CA", 14, "WH-CA"), ("WA", 5, "WH-CA"), ("OR", 3, "WH-CA")]
# other destinations: (country, region, weight, home warehouse)
ABROAD = [("CA", "ON", 3, "WH-NJ"), ("CA", "QC", 1, "WH-NJ"), ("MX", "NL", 1, "WH-TX"), ("GB", "LND", 4, "WH-NL"),
          ("DE", "BY", 4, "WH-NL"), ("FR", "IDF", 3, "WH-NL"), ("NL", "NH", 3, "WH-NL")]
BASE_ZONE = {"WH-NJ": {"US": 4, "CA": 5, "MX": 7, "GB": 9, "DE": 9, "FR": 9, "NL": 9},
             "WH-CA": {"US": 5, "CA": 6, "MX": 6, "GB": 10, "DE": 10, "FR": 10, "NL": 10},
             "WH-TX": {"US": 4, "CA": 6, "MX": 5, "GB": 9, "DE": 9, "FR": 9, "NL": 9},
             "WH-NL": {"US": 9, "CA": 9, "MX": 10, "GB": 3, "DE": 2, "FR": 2, "NL": 1}}
REGION_ZONE = {"WH-NJ": {"NJ": 1, "NY": 2, "MA": 3, "PA": 2, "CA": 8, "WA": 8, "TX": 6},
               "WH-CA": {"CA": 1, "OR": 3, "WA": 3, "AZ": 2, "NY": 8, "NJ": 8},
               "WH-TX": {"TX": 1, "CO": 3, "AZ": 4, "IL": 4, "GA": 4, "CA": 6}}
CHANNELS = ["shopify", "amazon", "edi", "csv"]
CHANNEL_SHARE = [0.40, 0.30, 0.15, 0.15]  # of orders
EDI_PARTNERS = ["ACMEHARDWARE", "007874200", "GREATLAKESFAC", "NORTHMARTCA"]
CATEGORIES = ["Cleaning", "Safety & PPE", "Lighting", "Electrical", "Office", "Batteries & Power", "Tools",
              "Breakroom"]


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------




def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux








# ------------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------------
def upc_a(n: np.ndarray) -> list[str]:
    """UPC-A (GTIN-12) numbers under company prefix 0 84513 with item numbers ``n`` and their check digit."""
    body = np.char.add("084513", np.char.zfill(n.astype(str), 5))
    digits = np.array([list(b) for b in body], dtype=np.int64)
    check = (10 - (digits[:, 0::2].sum(axis=1) * 3 + digits[:, 1::2].sum(axis=1)) % 10) % 10
    return [b + str(c) for b, c in zip(body, check, strict=True)]


def money(cents: np.ndarray | pl.Series, scale: int = 2) -> pl.Series:
    s = pl.Series(cents).cast(pl.Int64)
    return (s.cast(pl.Decimal(38, scale)) / 100).cast(pl.Decimal(18, scale))


def reference(rng: np.random.Generator, n_skus: int) -> dict[str, pl.DataFrame]:
    from som_pipeline.demo.master_data import CARTONS

    # --- products ----------------------------------------------------------------------------
    sides = np.clip(np.round(rng.lognormal(np.log(14.0), 0.5, size=(n_skus, 3)) * 2) / 2, 2.0, 70.0)
    sides = -np.sort(-sides, axis=1)  # length >= width >= height, as catalogs list them
    vol = sides.prod(axis=1)
    weight = np.clip(np.round(vol * rng.uniform(0.08, 0.5, n_skus) / 1000, 3), 0.05, 30.0)
    n_odd = max(2, n_skus // 500)
    odd = rng.choice(n_skus, size=2 * n_odd, replace=False)
    sides[odd[:n_odd], 0] = rng.uniform(90.0, 130.0, n_odd).round(1)  # longer than any carton: OWN_BOX
    weight[odd[n_odd:]] = rng.uniform(38.0, 60.0, n_odd).round(1)  # heavier than any carton takes
    idx = np.arange(n_skus)
    cat = rng.integers(0, len(CATEGORIES), n_skus)
    skus = [f"SKU-{i:06d}" for i in idx]
    products = pl.DataFrame({
        "sku": skus, "name": [f"{CATEGORIES[c]} item {i}" for i, c in zip(idx, cat, strict=True)],
        "category": [CATEGORIES[c] for c in cat], "weight_kg": weight,
        "length_cm": sides[:, 0], "width_cm": sides[:, 1], "height_cm": sides[:, 2],
        "list_price": money(rng.integers(199, 25_000, n_skus), 4).cast(pl.Decimal(18, 4)),
        "currency": "USD", "hazmat": rng.random(n_skus) < 0.04,
        "fragile": (rng.random(n_skus) < 0.06) | (cat == CATEGORIES.index("Lighting")),
        "restricted_countries": None, "substitutes": None, "active": True,
    })
    aliases = pl.DataFrame({"alias": upc_a(idx + 1), "sku": skus, "qualifier": "UP"})

    # --- warehouses, bins ---------------------------------------------------------------------
    cols = ["warehouse_id", "name", "country", "region", "postal_code", "latitude", "longitude",
            "daily_capacity_lines", "cutoff_time", "timezone", "handling_cost"]
    warehouses = pl.DataFrame([dict(zip(cols, w, strict=True)) for w in WAREHOUSES]).with_columns(
        pl.col("handling_cost").map_elements(Decimal, return_dtype=pl.Decimal(18, 2)), pl.lit(True).alias("active"))
    bins = []
    zone_of = np.array(list("ABCDEF"))[cat % 6]
    for w, *_ in WAREHOUSES:
        slotted = rng.random(n_skus) >= 0.005  # a few SKUs without a pick face: UNSLOTTED
        order = np.lexsort((rng.random(n_skus), zone_of))  # slotted zone by zone, in a shuffled order
        k = np.zeros(n_skus, dtype=np.int64)
        for z in "ABCDEF":
            sel = order[zone_of[order] == z]
            k[sel] = np.arange(sel.size)
        b = pl.DataFrame({"warehouse_id": w, "sku": skus, "zone": zone_of, "k": k, "_s": slotted}).filter("_s")
        b = b.with_columns((pl.col("k") // 48 + 1).alias("aisle"), ((pl.col("k") % 48) // 4 + 1).alias("bay"),
                           (pl.col("k") % 4).alias("level"))
        bins.append(b.with_columns(pl.format("{}-{}-{}-{}", "zone", pl.col("aisle").cast(pl.String).str.zfill(2),
                                             pl.col("bay").cast(pl.String).str.zfill(2), "level").alias("bin_id")))
    bins = pl.concat(bins)

    cartons = pl.DataFrame([dict(zip(("carton_id", "inner_length_cm", "inner_width_cm", "inner_height_cm",
                                      "max_weight_kg", "tare_kg", "cost", "active"), c, strict=True)) for c in CARTONS]
                           ).with_columns(pl.col("cost").map_elements(Decimal, return_dtype=pl.Decimal(18, 2)))

    # --- carriers, rates, zones (the demo's tables) ----------------------------------------------
    rates = []
    for carrier, cm in (("UPS", Decimal("1.00")), ("FEDEX", Decimal("1.03")), ("DHL", Decimal("0.97"))):
        for service, sm in (("GROUND", Decimal("1")), ("EXPRESS", Decimal("1.7")), ("AIR", Decimal("2.9"))):
            for zone in range(1, 11):
                for band, base in ((1, "7.90"), (5, "11.40"), (10, "16.80"), (30, "34.50"), (70, "68.00")):
                    r = (Decimal(base) * (1 + Decimal(zone - 1) * Decimal("0.18")) * sm * cm).quantize(Decimal("0.01"))
                    transit = {"GROUND": 1 + (zone + 1) // 2, "EXPRESS": 1 + zone // 4, "AIR": 1}[service]
                    rates.append({"carrier_id": carrier, "service": service, "zone": zone,
                                  "max_weight_kg": float(band), "rate": r, "currency": "USD",
                                  "transit_days": transit})
    zones = []
    for w, *_ in WAREHOUSES:
        zones += [{"warehouse_id": w, "dest_country": c, "dest_region": "*", "zone": z} for c, z in BASE_ZONE[w].items()]
        zones += [{"warehouse_id": w, "dest_country": "US", "dest_region": r, "zone": z}
                  for r, z in REGION_ZONE.get(w, {}).items()]
    carriers = pl.DataFrame([{"carrier_id": c, "service": s, "mode": "ground" if s == "GROUND" else "air",
                              "on_time_rate": 0.95, "daily_capacity_parcels": 20_000, "active": True}
                             for c in ("UPS", "FEDEX", "DHL") for s in ("GROUND", "EXPRESS", "AIR")])
    return {"ref.products": products, "ref.product_aliases": aliases, "ref.warehouses": warehouses,
            "ref.bin_locations": bins, "ref.cartons": cartons, "ref.carriers": carriers,
            "ref.carrier_rates": pl.DataFrame(rates, schema_overrides={"rate": pl.Decimal(18, 2)}),
            "ref.shipping_zones": pl.DataFrame(zones)}


def orders(rng: np.random.Generator, n_lines: int, products: pl.DataFrame) -> dict[str, pl.DataFrame]:
    n_skus = products.height
    # --- orders until n_lines lines ----------------------------------------------------------------
    est = int(n_lines / 2.0) + 100
    ch = rng.choice(len(CHANNELS), size=est, p=CHANNEL_SHARE)
    b2b = ch >= 2
    per = np.where(b2b, np.minimum(rng.geometric(0.28, est), 12), np.minimum(rng.geometric(0.6, est), 5))
    while per.sum() < n_lines:  # (never at these shares; kept for odd --lines)
        per = np.concatenate([per, per])
        ch = np.concatenate([ch, ch])
        b2b = ch >= 2
    cut = int(np.searchsorted(np.cumsum(per), n_lines)) + 1
    per, ch, b2b = per[:cut].copy(), ch[:cut], b2b[:cut]
    per[-1] -= per.sum() - n_lines
    n_orders = cut
    oi = np.arange(n_orders)

    # destinations and the home warehouse
    abroad = rng.random(n_orders) < 0.18
    st = rng.choice(len(US_STATES), n_orders, p=np.array([s[1] for s in US_STATES]) / sum(s[1] for s in US_STATES))
    ab = rng.choice(len(ABROAD), n_orders, p=np.array([a[2] for a in ABROAD]) / sum(a[2] for a in ABROAD))
    country = np.where(abroad, np.array([a[0] for a in ABROAD])[ab], "US")
    region = np.where(abroad, np.array([a[1] for a in ABROAD])[ab], np.array([s[0] for s in US_STATES])[st])
    home = np.where(abroad, np.array([a[3] for a in ABROAD])[ab], np.array([s[2] for s in US_STATES])[st])
    channel = np.array(CHANNELS)[ch]
    partner = np.array(EDI_PARTNERS)[rng.integers(0, len(EDI_PARTNERS), n_orders)]
    ref = np.where(channel == "shopify", np.char.add("", (5_100_000_000_000 + oi).astype(str)),
          np.where(channel == "amazon", np.char.add(np.char.add("113-", np.char.zfill((1_000_000 + oi * 7 % 9_000_000).astype(str), 7)),
                                                    np.char.add("-", np.char.zfill((oi + 2_000_000).astype(str), 7))),
          np.where(channel == "edi", np.char.add(np.char.add(partner, ":"), np.char.add("PO", (4_500_000 + oi).astype(str))),
                   np.char.add("R", np.char.zfill(oi.astype(str), 8)))))
    code = {"shopify": "SHP", "amazon": "AMZ", "edi": "EDI", "csv": "CSV"}
    order_id = [f"{code[c]}-{r}" for c, r in zip(channel, ref, strict=True)]
    ship_complete = b2b & (rng.random(n_orders) < 0.3)
    o = pl.DataFrame({
        "order_id": order_id, "channel": channel, "channel_order_ref": ref, "country": country, "region": region,
        "home": home, "ship_complete": ship_complete, "lines": per, "_o": oi,
        "customer_ref": np.where(channel == "edi", partner, np.char.add("cust", (oi % 9973).astype(str))),
        "customer_po": np.where(b2b, np.char.add("PO", (4_500_000 + oi).astype(str)), ""),
    }).with_columns(pl.col("customer_po").replace("", None))

    # --- lines --------------------------------------------------------------------------------
    lo = np.repeat(oi, per)
    line_no = np.concatenate([np.arange(1, k + 1) for k in per]) if n_orders < 2 else (
        np.arange(lo.size) - np.repeat(np.cumsum(per) - per, per) + 1)
    pop = rng.zipf(1.3, lo.size * 2)  # popular SKUs are ordered more often
    pop = pop[pop <= n_skus][: lo.size]
    while pop.size < lo.size:
        pop = np.concatenate([pop, rng.integers(1, n_skus + 1, lo.size - pop.size)])
    perm = rng.permutation(n_skus)
    sku_i = perm[pop - 1]
    lb2b = b2b[lo]
    qty = np.where(lb2b, np.where(rng.random(lo.size) < 0.25, rng.choice([6, 12, 24], lo.size, p=[0.6, 0.3, 0.1]),
                                  rng.integers(1, 6, lo.size)),
                   rng.choice([1, 2, 3, 4], lo.size, p=[0.76, 0.16, 0.05, 0.03]))
    skus = products["sku"].to_numpy()[sku_i]
    price_c = (products["list_price"].cast(pl.Float64).to_numpy()[sku_i] * 100).round().astype(np.int64)
    lch = channel[lo]
    gli = np.arange(lo.size)
    line_ref = np.where(lch == "shopify", (13_000_000_000_000 + gli).astype(str),
               np.where(lch == "amazon", (40_000_000_000_000 + gli).astype(str),
               np.where(lch == "edi", line_no.astype(str), "")))
    lines = pl.DataFrame({"_o": lo, "order_id": np.array(order_id)[lo], "line_no": line_no, "sku": skus,
                          "quantity": qty, "_price_c": price_c, "line_ref": line_ref, "channel": lch}
                         ).with_columns(pl.col("line_ref").replace("", None))
    # lines of one order with the same SKU: allowed (a re-ordered item), they become separate tasks
    upc = dict(zip(products["sku"], upc_a(np.arange(products.height) + 1), strict=True))
    lines = lines.with_columns(
        pl.when(pl.col("channel") == "edi").then(pl.format(
            '[{{"qualifier": "BP", "id": "BP{}"}}, {{"qualifier": "VN", "id": "{}"}}, {{"qualifier": "UP", "id": "{}"}}]',
            pl.col("sku").str.slice(4), pl.col("sku"), pl.col("sku").replace_strict(upc)))
        .alias("product_ids"))
    return {"orders": o, "lines": lines}


def allocations(rng: np.random.Generator, o: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """One warehouse per line: the order's home warehouse, but ~10 % of multi-line US orders ship some lines
    from another US warehouse. One carrier service per order x warehouse."""
    n = lines.height
    li = lines.join(o.select("_o", "home", "country", "lines", "channel"), on="_o", how="left", maintain_order="left")
    split_order = (rng.random(o.height) < 0.10) & (o["country"].to_numpy() == "US") & (o["lines"].to_numpy() >= 2)
    moved = split_order[li["_o"].to_numpy()] & (rng.random(n) < 0.35) & (li["line_no"].to_numpy() > 1)
    other = np.array(US_WH)[rng.integers(0, 3, n)]
    home = li["home"].to_numpy()
    other = np.where(other == home, np.array(US_WH)[(np.searchsorted(US_WH, other) + 1) % 3], other)
    wh = np.where(moved, other, home)
    li = li.with_columns(pl.Series("warehouse_id", wh))
    grp = li.select("_o", "warehouse_id", "country", "channel").unique(["_o", "warehouse_id"], maintain_order=True)
    g = grp.height
    nl = grp["warehouse_id"].to_numpy() == "WH-NL"
    carrier = np.where(nl, np.where(rng.random(g) < 0.6, "DHL", "UPS"),
                       np.array(["UPS", "FEDEX", "DHL"])[rng.choice(3, g, p=[0.45, 0.4, 0.15])])
    express = rng.random(g) < np.where(grp["channel"].to_numpy() == "amazon", 0.25, 0.12)
    grp = grp.with_columns(pl.Series("carrier_id", carrier), pl.Series("service", np.where(express, "EXPRESS", "GROUND")))
    li = li.join(grp.select("_o", "warehouse_id", "carrier_id", "service"), on=["_o", "warehouse_id"], how="left",
                 maintain_order="left")
    ship_day = NOW.date()  # today in every warehouse's time zone at NOW
    cost_c = rng.integers(300, 2500, n)
    return li.select(
        "order_id", "line_no", "sku", "warehouse_id", "quantity", "carrier_id", "service",
        pl.lit(ship_day).alias("expected_ship_date"),
        (pl.lit(ship_day) + pl.duration(days=pl.when(pl.col("service") == "EXPRESS").then(2).otherwise(4)))
        .alias("expected_delivery_date"),
        pl.lit(None, pl.Date).alias("promised_date"),
        money(cost_c).alias("shipping_cost"), money(np.full(n, 150)).alias("handling_cost"),
        money(np.zeros(n, dtype=np.int64)).alias("lateness_penalty"),
        money(np.zeros(n, dtype=np.int64)).alias("split_penalty"),
        money(cost_c + 150).alias("total_cost"),
        pl.lit("greedy").alias("solver"), pl.lit("benchmark: home warehouse of the destination").alias("explanation"),
        pl.lit(None, pl.String).alias("next_best_warehouse"), pl.lit(None, pl.Decimal(18, 2)).alias("next_best_cost"),
        pl.lit("initial").alias("reason"),
        # priority order for the release: earlier allocations first (spread over the night)
        (pl.lit(NOW - timedelta(hours=8)).cast(pl.Datetime("us", "UTC"))
         + pl.duration(seconds=pl.col("order_id").rank("dense").cast(pl.Int64) % 28_000)).alias("allocated_at"),
    )


def phase_generate(home: Path, n_lines: int, seed: int, n_skus: int) -> dict:
    from som_pipeline import schemas
    from som_pipeline.fulfilment import ledger
    from som_pipeline.services.stock import post
    from som_pipeline.warehouse import insert_frame, transaction

    settings = settings_for(home)
    wh = warehouse_for(settings)
    res: dict = {}
    with measured(res, "generate"):
        rng = np.random.default_rng(seed)
        ref = reference(rng, n_skus)
        od = orders(rng, n_lines, ref["ref.products"])
        o, lines = od["orders"], od["lines"]
        alloc = allocations(rng, o, lines)
        # order headers from the lines
        tot = lines.group_by("_o").agg((pl.col("quantity") * pl.col("_price_c")).sum().alias("_sub_c"))
        o = o.join(tot, on="_o", how="left", maintain_order="left")
        captured = NOW - timedelta(hours=19)
        orders_df = o.select(
            "order_id", "channel", "channel_order_ref", "customer_ref", "customer_po",
            pl.lit(NOW - timedelta(hours=20)).cast(pl.Datetime("us", "UTC")).alias("order_ts"),
            pl.lit("USD").alias("currency"),
            pl.format("Recipient {}", "_o").alias("ship_to_name"), pl.lit(None, pl.String).alias("ship_to_company"),
            pl.format("{} Main Street", (pl.col("_o") % 9000) + 100).alias("ship_to_line1"),
            pl.format("City {}", pl.col("_o") % 400).alias("ship_to_city"),
            pl.col("region").alias("ship_to_region"),
            pl.format("{}", (pl.col("_o") * 37) % 90000 + 10000).alias("ship_to_postal_code"),
            pl.col("country").alias("ship_to_country"),
            "ship_complete",
            pl.Series(money(o["_sub_c"])).alias("items_subtotal"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("discount_total"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("tax_total"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("shipping_total"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("shipping_tax"),
            pl.lit(False).alias("prices_include_tax"),
            pl.Series(money(o["_sub_c"])).alias("order_total"),
            pl.col("lines").cast(pl.Int64).alias("line_count"), pl.lit(0, pl.Int64).alias("unpriced_lines"),
            pl.format("bench/{}.json", "channel").alias("source_file"), pl.format("order {}", "_o").alias("source_location"),
            pl.format("{}", "order_id").alias("content_hash"),
            pl.lit(captured).cast(pl.Datetime("us", "UTC")).alias("captured_at"),
            pl.lit(1, pl.Int64).alias("version"), pl.lit(NOW.date() - timedelta(days=1)).alias("order_date"),
            pl.lit(captured).cast(pl.Datetime("us", "UTC")).alias("first_captured_at"),
            pl.format("cap-{}", "_o").alias("capture_id"),
        )
        lines_df = lines.select(
            "order_id", pl.lit(1, pl.Int64).alias("version"), pl.col("line_no").cast(pl.Int64), "line_ref", "sku",
            pl.format("item {}", "sku").alias("description"), pl.col("quantity").cast(pl.Int64), pl.lit("EA").alias("uom"),
            money(lines["_price_c"], 4).cast(pl.Decimal(18, 4)).alias("unit_price"),
            money(lines["_price_c"] * lines["quantity"]).alias("line_amount"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("discount_amount"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("tax_amount"),
            pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias("shipping_amount"),
            pl.lit("catalog").alias("item_kind"), "product_ids")
        status = orders_df.select(
            "order_id", "version", pl.lit("APPROVED").alias("status"),
            pl.lit(captured + timedelta(minutes=5)).cast(pl.Datetime("us", "UTC")).alias("since"),
            pl.lit("").alias("reasons"), pl.lit("system").alias("actor"),
            pl.lit(captured + timedelta(minutes=5)).cast(pl.Datetime("us", "UTC")).alias("evaluated_at"))
        # opening stock: the demand of each warehouse x SKU plus a margin, every slotted pair counted
        demand = alloc.group_by("warehouse_id", "sku").agg(pl.col("quantity").sum().alias("demand"))
        pairs = pl.concat([ref["ref.bin_locations"].select("warehouse_id", "sku"), demand.select("warehouse_id", "sku")]
                          ).unique()
        snap = (pairs.join(demand, on=["warehouse_id", "sku"], how="left").sort("warehouse_id", "sku")
                .with_columns(pl.col("demand").fill_null(0)))
        snap = snap.with_columns((pl.col("demand") + pl.Series(rng.integers(0, 40, snap.height))).alias("on_hand"),
                                 pl.lit(NOW - timedelta(hours=6)).cast(pl.Datetime("us", "UTC")).alias("as_of"))
        frames = {**ref, "core.orders": orders_df, "core.order_lines": lines_df, "core.order_status": status,
                  "core.allocations": alloc,
                  "ref.inventory": snap.select("warehouse_id", "sku", pl.col("on_hand").cast(pl.Int64), "as_of")}
        t0 = time.perf_counter()
        for table, df in list(frames.items()):
            model = schemas.TABLES[table]
            frames[table] = schemas.validate(model, schemas.conform(df, model))  # the models' checks, in full
        res["validate_s"] = time.perf_counter() - t0
        moves = ledger.cycle_count(snap.select("warehouse_id", "sku", "on_hand", "as_of"),
                                   pl.DataFrame(schema={"warehouse_id": pl.String, "sku": pl.String, "on_hand": pl.Int64}),
                                   snapshot_id="snapshot:bench-opening", recorded_at=NOW - timedelta(hours=6),
                                   run_id="bench-opening")
        with wh.connect() as con, transaction(con):
            for table, df in frames.items():
                insert_frame(con, table, df)
            post(con, moves)
        snap.select("warehouse_id", "sku", "on_hand").write_parquet(home / "bench_opening.parquet")
    res["rss_max_mb"] = maxrss_mb()
    res["rows"] = {"orders": orders_df.height, "lines": lines_df.height, "allocations": alloc.height,
                   "units": int(alloc["quantity"].sum()), "products": ref["ref.products"].height,
                   "bins": ref["ref.bin_locations"].height, "opening_movements": moves.height,
                   "ship_complete_orders": int(orders_df["ship_complete"].sum()),
                   "order_x_warehouse": alloc.select("order_id", "warehouse_id").n_unique()}
    res["channels"] = dict(orders_df.group_by("channel").len().iter_rows())
    return res


# ------------------------------------------------------------------------------------------------
# the phases
# ------------------------------------------------------------------------------------------------
def _counts(con) -> dict:
    q = {"waves": "core.pick_waves", "tasks": "core.pick_tasks", "scans": "core.pick_scans",
         "shipments": "core.shipments", "packages": "core.packages", "package_contents": "core.package_contents",
         "ledger_movements": "core.stock_ledger", "documents": "ops.outbound_documents",
         "order_events": "core.order_events", "quarantine": "ops.quarantine"}
    return {k: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for k, t in q.items()}  # noqa: S608


STEPS = {  # (module, function) timed inside a phase (cumulative seconds, calls); a missing name is skipped
    "release": [("som_pipeline.services.fulfilment", f) for f in ("_stop_tasks", "_release", "_statuses")],
    "floor": [("som_pipeline.services.fulfilment", f) for f in ("_take_scans", "_ship", "_shippable", "_confirmations",
                                                                "write_atomic", "_statuses")]
             + [("som_pipeline.fulfilment.packing", "pack_shipments")],
}




def step_timers(phase: str, out: dict):
    return _step_timers(STEPS[phase], out)


def phase_release(home: Path, profile: bool) -> dict:
    from som_pipeline.services.fulfilment import run_fulfilment

    settings = settings_for(home)
    wh = warehouse_for(settings)
    with wh.connect() as con:
        before = _counts(con)
    res: dict = {"steps": {}}
    with step_timers("release", res["steps"]), measured(res, "release", profile):
        rep = run_fulfilment(wh, settings, NOW, run_id="bench-release")
    res["rss_max_mb"] = maxrss_mb()
    with wh.connect() as con:
        after = _counts(con)
    res["report"] = rep.as_metadata()
    res["notes"] = rep.notes[:10]
    res["delta"] = {k: after[k] - before[k] for k in after}
    return res


def write_scans(con, home: Path) -> int:
    """One scan per open task, the SKU's UPC and the task's quantity, in walk order per wave, spread over the
    50 minutes after the release."""
    t = con.execute(
        "SELECT t.task_id, t.warehouse_id, t.quantity, t.walk_seq, t.wave_id, a.alias AS barcode "
        "FROM core.pick_tasks t LEFT JOIN (SELECT sku, min(alias) AS alias FROM ref.product_aliases "
        "WHERE qualifier = 'UP' GROUP BY 1) a USING (sku) WHERE t.status = 'OPEN' ORDER BY t.wave_id, t.walk_seq").pl()
    span = 50 * 60 * 1_000_000
    t = t.with_columns(
        pl.format("SC-{}", pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(8)).alias("scan_id"),
        (pl.format("picker{}", (pl.col("walk_seq") % 25 + 1).cast(pl.String).str.zfill(2))).alias("user"),
        pl.format("RF-{}-{}", pl.col("warehouse_id").str.slice(3), pl.col("walk_seq") % 8 + 1).alias("station"),
        (pl.lit(NOW + timedelta(minutes=5)).cast(pl.Datetime("us", "UTC"))
         + pl.duration(microseconds=(pl.col("walk_seq") * span // (pl.col("walk_seq").max().over("wave_id") + 1))))
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("scanned_at"),
        pl.lit("pick").alias("action"))
    out = home / "landing" / "scans" / f"scans-{NOW:%Y%m%d}-rf.csv"
    tmp = out.with_name("." + out.name + ".tmp")
    t.select("scan_id", "task_id", "warehouse_id", "barcode", "quantity", "user", "station", "scanned_at",
             "action").write_csv(tmp)
    tmp.replace(out)
    os.utime(out, (time.time() - 5, time.time() - 5))
    return t.height


def phase_floor(home: Path, profile: bool) -> dict:
    from som_pipeline.services.fulfilment import run_floor

    settings = settings_for(home)
    wh = warehouse_for(settings)
    res: dict = {"steps": {}}
    with wh.connect() as con:
        before = _counts(con)
        with measured(res, "write_scans"):
            res["scans_written"] = write_scans(con, home)
    with step_timers("floor", res["steps"]), measured(res, "floor", profile):
        rep = run_floor(wh, settings, FLOOR_AT, run_id="bench-floor")
    res["rss_max_mb"] = maxrss_mb()
    with wh.connect() as con:
        after = _counts(con)
    res["report"] = rep.as_metadata()
    res["notes"] = rep.notes[:10]
    res["delta"] = {k: after[k] - before[k] for k in after}
    return res


# ------------------------------------------------------------------------------------------------
# verification
# ------------------------------------------------------------------------------------------------
def phase_verify(home: Path) -> dict:
    from som_pipeline.fulfilment.packing import one_box_per_line_volume

    settings = settings_for(home)
    wh = warehouse_for(settings)
    res: dict = {"checks": []}

    def check(name: str, ok: bool, detail: str = "") -> None:
        res["checks"].append({"check": name, "ok": bool(ok), "detail": detail})

    with measured(res, "verify"), wh.connect() as con:
        one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        u = {
            "allocated": one("SELECT coalesce(sum(quantity), 0) FROM core.allocations"),
            "released (tasks)": one("SELECT coalesce(sum(quantity), 0) FROM core.pick_tasks"),
            "reserve movements": one("SELECT coalesce(sum(qty_delta), 0) FROM core.stock_ledger WHERE kind = 'reserve'"),
            "picked (tasks)": one("SELECT coalesce(sum(picked_qty), 0) FROM core.pick_tasks"),
            "pick movements": one("SELECT coalesce(-sum(qty_delta), 0) FROM core.stock_ledger WHERE kind = 'pick'"),
            "confirmed (scans)": one("SELECT coalesce(sum(confirmed_qty), 0) FROM core.pick_scans"),
            "shipped (shipment lines)": one("SELECT coalesce(sum(quantity), 0) FROM core.shipment_lines"),
            "shipped (shipments)": one("SELECT coalesce(sum(units), 0) FROM core.shipments"),
            "ship movements": one("SELECT coalesce(-sum(qty_delta), 0) FROM core.stock_ledger WHERE kind = 'ship'"),
            "packed (package contents)": one("SELECT coalesce(sum(quantity), 0) FROM core.package_contents"),
        }
        res["units"] = u
        check("units conserve: allocated = released = picked = shipped = packed", len(set(u.values())) == 1,
              ", ".join(f"{k} {v}" for k, v in u.items()))
        other = one("SELECT count(*) FROM core.stock_ledger WHERE kind NOT IN ('opening', 'reserve', 'pick', 'ship')")
        check("no release / adjustment / putaway movements (every task picked in full)", other == 0, f"{other}")
        opening = pl.read_parquet(home / "bench_opening.parquet")
        shipped = con.execute("SELECT warehouse_id, sku, sum(quantity)::BIGINT AS shipped FROM core.shipment_lines "
                              "GROUP BY ALL").pl()
        exp = (opening.join(shipped, on=["warehouse_id", "sku"], how="left")
               .select("warehouse_id", "sku", (pl.col("on_hand") - pl.col("shipped").fill_null(0)).alias("exp")))
        stock = con.execute("SELECT warehouse_id, sku, on_hand, reserved, picked, available FROM core.v_stock").pl()
        j = exp.join(stock, on=["warehouse_id", "sku"], how="full", coalesce=True).with_columns(  # counted 0: no row
            pl.col("on_hand", "reserved", "picked", "available").fill_null(0))
        bad = j.filter((pl.col("exp") != pl.col("on_hand")) | pl.col("exp").is_null() | pl.col("on_hand").is_null()
                       | (pl.col("reserved") != 0) | (pl.col("picked") != 0) | (pl.col("available") != pl.col("exp")))
        check("ledger balances = opening - shipped; reserved = picked = 0; available = on hand", bad.height == 0,
              f"{j.height} warehouse x SKU pairs, {bad.height} off" + (f"; first: {bad.row(0, named=True)}"
                                                                       if bad.height else ""))
        ts = dict(con.execute("SELECT status, count(*) FROM core.pick_tasks GROUP BY 1").fetchall())
        unshipped = one("SELECT count(*) FROM core.pick_tasks WHERE shipment_id IS NULL")
        check("every task PICKED and shipped", set(ts) == {"PICKED"} and unshipped == 0, f"{ts}, unshipped {unshipped}")
        groups = one("SELECT count(*) FROM (SELECT DISTINCT order_id, warehouse_id, carrier_id, service "
                     "FROM core.allocations)")
        nship = one("SELECT count(*) FROM core.shipments")
        check("one shipment per order x warehouse x carrier service", nship == groups, f"{nship} vs {groups}")
        exp_docs = one("SELECT (SELECT count(*) FROM core.shipments WHERE channel = 'edi') + (SELECT count(*) FROM "
                       "core.packages p JOIN core.shipments s USING (shipment_id) WHERE s.channel IN "
                       "('shopify', 'amazon'))")
        docs = dict(con.execute("SELECT kind, count(*) FROM ops.outbound_documents GROUP BY 1").fetchall())
        files = sum(1 for _ in (home / "outbound").rglob("*") if _.is_file())
        check("one document per EDI shipment and per Shopify / Amazon package, each written",
              sum(docs.values()) == exp_docs and files == exp_docs, f"{docs}; expected {exp_docs}; files {files}")
        unrated = one("SELECT count(*) FROM core.packages WHERE rated_cost IS NULL")
        check("every package rated", unrated == 0, f"{unrated} unrated")
        no_sscc = one("SELECT count(*) FROM core.packages p JOIN core.shipments s USING (shipment_id) "
                      "WHERE s.channel = 'edi' AND p.sscc IS NULL")
        check("every EDI carton has an SSCC", no_sscc == 0, f"{no_sscc} without")
        quarantined = one("SELECT count(*) FROM ops.quarantine")
        check("no scan quarantined", quarantined == 0, f"{quarantined}")
        neg = one("SELECT count(*) FROM core.v_stock_movements WHERE qty_after < 0 OR available_after < 0")
        check("no movement left on hand or available below zero", neg == 0, f"{neg}")

        # --- cartons' volume vs one box per line ------------------------------------------------
        pk = con.execute(
            "SELECT count(*) AS packages, sum(length_cm * width_cm * height_cm) AS carton_cm3, "
            "count(*) FILTER (WHERE carton_id = 'OWN_BOX') AS own_box FROM core.packages").pl().row(0, named=True)
        items = con.execute(
            "SELECT l.shipment_id, l.sku, sum(l.quantity)::BIGINT AS quantity, any_value(p.length_cm) AS length_cm, "
            "any_value(p.width_cm) AS width_cm, any_value(p.height_cm) AS height_cm, any_value(p.weight_kg) AS weight_kg, "
            "any_value(p.hazmat) AS hazmat, coalesce(any_value(p.fragile), false) AS fragile "
            "FROM core.shipment_lines l JOIN ref.products p USING (sku) GROUP BY 1, 2 ORDER BY 1, 2").pl()
        cartons = con.execute("SELECT * FROM ref.cartons WHERE active").pl()
        item_cm3 = float(items.select((pl.col("quantity") * pl.col("length_cm") * pl.col("width_cm")
                                       * pl.col("height_cm")).sum()).item())
        t0 = time.perf_counter()
        base = one_box_per_line_volume(items, cartons)
        res["baseline_s"] = time.perf_counter() - t0
        res["volume"] = {"packages": pk["packages"], "own_box": pk["own_box"], "items_cm3": item_cm3,
                         "cartons_cm3": float(pk["carton_cm3"]), "one_box_per_line_cm3": base,
                         "lines": items.height}
        res["size_mb"] = settings.warehouse_path.stat().st_size / 2**20
    res["rss_max_mb"] = maxrss_mb()
    return res


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def child(phase: str, home: Path, args: list[str]) -> dict:
    """This script's ``phase`` in a child process of its own (``phases.child``)."""
    return _child(__file__, phase, home, args)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--skus", type=int, default=5000)
    ap.add_argument("--keep", type=Path, default=None, help="$SOM_HOME to use and keep (must be empty or absent)")
    ap.add_argument("--profile", choices=["release", "floor"], action="append", default=[])
    ap.add_argument("--_phase", help=argparse.SUPPRESS)
    ap.add_argument("--_home", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a._phase:
        if a._phase == "generate":
            emit(phase_generate(a._home, a.lines, a.seed, a.skus))
        elif a._phase == "release":
            emit(phase_release(a._home, "release" in a.profile))
        elif a._phase == "floor":
            emit(phase_floor(a._home, "floor" in a.profile))
        else:
            emit(phase_verify(a._home))
        return 0

    if a.keep:
        if a.keep.exists() and any(a.keep.iterdir()):
            sys.exit(f"--keep {a.keep}: not empty")
        home = a.keep.resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="bench_fulfilment_"))
    prof = [x for p in a.profile for x in ("--profile", p)]
    load = os.getloadavg()
    print(f"bench_fulfilment: {a.lines:,} lines, seed {a.seed}, {a.skus:,} SKUs, home {home} "
          f"(load average {load[0]:.2f} {load[1]:.2f}, {os.cpu_count()} CPUs)", flush=True)
    try:
        gen = child("generate", home, ["--lines", str(a.lines), "--seed", str(a.seed), "--skus", str(a.skus)])
        r = gen["rows"]
        print(f"generated in {gen['generate']['s']:.1f}s (Pandera validation {gen['validate_s']:.1f}s): "
              f"{r['orders']:,} orders ({', '.join(f'{k} {v:,}' for k, v in sorted(gen['channels'].items()))}), "
              f"{r['lines']:,} lines, {r['units']:,} units, {r['ship_complete_orders']:,} ship-complete orders, "
              f"{r['order_x_warehouse']:,} order x warehouse groups; {r['products']:,} SKUs, {r['bins']:,} bins, "
              f"{r['opening_movements']:,} opening movements", flush=True)
        rel = child("release", home, prof)
        flo = child("floor", home, prof)
        ver = child("verify", home, [])
    finally:
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)

    rows = [
        ("release: run_fulfilment", rel["release"], rel["rss_max_mb"], rel["delta"],
         ["waves", "tasks", "ledger_movements", "order_events"]),
        ("scans file (CSV, 1 per task)", flo["write_scans"], None, {"scans written": flo["scans_written"]},
         ["scans written"]),
        ("floor: run_floor", flo["floor"], flo["rss_max_mb"], flo["delta"],
         ["scans", "shipments", "packages", "package_contents", "ledger_movements", "documents", "order_events"]),
    ]
    print()
    print(f"{'phase':<30} {'seconds':>8} {'base MB':>8} {'peak MB (sampled)':>18} {'ru_maxrss MB':>13}  rows")
    print("-" * 130)
    for name, m, rss, delta, keys in rows:
        print(f"{name:<30} {m['s']:>8.2f} {m['base_mb']:>8.0f} {m['peak_sampled_mb']:>18.0f} "
              f"{'' if rss is None else f'{rss:.0f}':>13}  " + ", ".join(f"{k} {delta[k]:,}" for k in keys))
    total = rel["release"]["s"] + flo["floor"]["s"]
    print("-" * 130)
    print(f"{'release + floor':<30} {total:>8.2f}   ({a.lines / total:,.0f} lines/s); peak RSS "
          f"{max(rel['rss_max_mb'], flo['rss_max_mb']):.0f} MB; warehouse file {ver['size_mb']:.0f} MB")
    for label, rep in (("release", rel), ("floor", flo)):
        if rep["notes"]:
            print(f"{label} notes: " + " | ".join(rep["notes"]))
    for label, rep in (("release", rel), ("floor", flo)):
        print(f"{label} steps: " + ", ".join(f"{k} {v['s']:.2f}s" + (f" ({v['calls']:,} calls)" if v["calls"] > 1 else "")
                                             for k, v in rep["steps"].items()))
    print(f"floor scans: {flo['report']['scans']}")

    v = ver["volume"]
    print()
    print(f"cartons: {v['packages']:,} packages ({v['own_box']:,} OWN_BOX) for {v['lines']:,} shipment lines; "
          f"items {v['items_cm3'] / 1e6:,.1f} m3")
    print(f"  packed cartons      {v['cartons_cm3'] / 1e6:>10,.1f} m3   utilisation {v['items_cm3'] / v['cartons_cm3']:.1%}")
    print(f"  one box per line    {v['one_box_per_line_cm3'] / 1e6:>10,.1f} m3   utilisation "
          f"{v['items_cm3'] / v['one_box_per_line_cm3']:.1%}   (baseline packed in {ver['baseline_s']:.1f}s)")
    print(f"  packed / one-box    {v['cartons_cm3'] / v['one_box_per_line_cm3']:>10.1%} "
          f"  ({1 - v['cartons_cm3'] / v['one_box_per_line_cm3']:.1%} less carton volume)")
    print()
    failed = [c for c in ver["checks"] if not c["ok"]]
    for c in ver["checks"]:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}" + (f": {c['detail']}" if c["detail"] else ""))
    print(f"\n{'FAILED' if failed else 'OK'}: {len(ver['checks']) - len(failed)}/{len(ver['checks'])} checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

