"""Benchmark: 1,000,000 tracking events -> status, ETA and risk for 200,000 shipments; time and peak memory (issue 13).

    .venv/bin/python bench/bench_tracking.py [--shipments 200000] [--seed 7] [--days 11] [--history N]
                                             [--increment-hours 2] [--keep DIR] [--profile run1|run2]

1. **generate** (seeded numpy, child process): a fresh ``Warehouse`` in a temporary ``$SOM_HOME``;
   ``--shipments`` shipments labelled over the ``--days`` days before ``NOW`` (``demo.carriers.shipments``:
   weekday volumes, the four warehouses, zones, UPS / FEDEX / DHL, GROUND / EXPRESS / AIR, a promised date);
   for each an order (``core.orders``: the ship-to country / region of its zone), ``core.shipments``,
   ``core.packages`` (~12 % with two; tracking numbers from ``fulfilment.labels.tracking_numbers``: valid check
   digits, unique), one ``core.shipment_lines`` + ``core.allocations`` row carrying the promised date (what
   ``_statuses`` joins); ``ref.shipping_zones`` that map every warehouse x zone to one destination,
   ``ref.carrier_rates`` (the simulator's transit table), ``ref.transit_history`` (``demo.carriers.history(
   --history, seed, end=NOW)``, the same warehouses and zones). Every frame is conformed and validated with its
   Pandera model before it is inserted. Then ``demo.carriers.simulate_transits`` of the shipments: the events
   (LABEL_CREATED left out: the service makes its own from ``core.packages``) received by ``NOW`` are written to
   ``landing/carrier_events`` -- B2B shipments (EDI / CSV orders, ~30 %) as **X12 214** files (one interchange per
   carrier and 10,000 shipments, one ST per shipment, LX/AT7/MS1 per status, time code UT), channel shipments as
   **EasyPost-style Tracker JSON** files of 10,000 trackers each -- plus trackers for parcels that are not ours
   (0.1 % of the trackers: they wait in ``core.tracking_pending``). The increment (events received in the next
   ``--increment-hours``) is written aside: new 214 sets with only the new statuses, and the updated trackers
   with their *whole* history (as an aggregator sends a tracker: the earlier details come again and are
   duplicates). Writers are vectorised Polars string building (no per-event Python).
2. **run1**: ``run_tracking(wh, settings, NOW)`` on the whole backlog.
3. **run2**: the increment files dropped into landing, ``run_tracking(wh, settings, NOW + increment)``.
4. **verify** (not timed as a phase): conservation and the reconciliation rule.

Each phase runs in its own child process (peak RSS = its ``ru_maxrss``; a sampler thread also records the RSS
every 20 ms). The service's steps are timed by wrapping them (``STEPS``; a step the service no longer has is
skipped): landing intake, per-file parse, attach, status, ETA (and in it the fit and the prediction), backtest,
exceptions, notifications (and in it the rendering and the file writes). ``--profile run1|run2`` prints that
phase's cProfile top 15 to stderr. Exits 1 when a check fails.

Conservation, per run, from the report: events received (+ pending before) = attached + duplicates (already stored,
or the same event_id twice in the run's files) + pending (+ expired to quarantine); and from the tables: every event id written to the files is in ``core.tracking_events`` or
``core.tracking_pending``; every shipment with events has a status; ``sql/reconciliation/
tracking_never_backwards.sql`` returns no rows.

Measured 2026-12-05 on the 2-core machine (shared), seed 7, 200k shipments over 11 days (224k packages, 300k
history): run 1 -- 980,644 events in 22 files (8 X12 214, 14 tracker JSON, 168 MB; 961,780 distinct), 961,640
attached, 140 pending, 200,000 statuses, 98,892 delivered, 101,108 open all with an ETA, 27,912 exceptions,
431,355 notifications -- **916 s at 3.16 GB peak**: notifications 765 s (Jinja2 ``render`` 481 s: the templates
are compiled again on every call, ~1.1 ms each; ``notify.email`` ~0.8 ms each; file writes 49 s), attach 104 s
(the package lookup's ``JOIN ... ON tn = tn OR shipment_id = ref OR package_id = ref`` is a BLOCKWISE_NL_JOIN:
quadratic, 2.3 s at 20k keys, 9.1 s at 40k; three equi-joins UNIONed: 0.27 s at 200k, same rows), parsing 34 s
(tracker JSON 22.5 s, X12 11.6 s), status 4.8 s, backtest 4.1 s, ETA 1.8 s. Run 2 (+2 h: 95,456 events, 71,959
of them re-sent tracker history, 23,222 new): **44 s at 0.98 GB** -- notifications 23.6 s (13,837), attach
11.5 s, parsing 4.6 s, ETA 2.9 s. The report's counts do not conserve: the events repeated within one run's files
(18,864 in run 1, 1,625 in run 2) are collapsed before counting and in no counter (two checks FAIL until the
service counts them as duplicates). At 20k shipments: run 1 86 s (notifications 76 s), run 2 3.8 s.
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
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
from phases import MARK, emit, measured, settings_for, warehouse_for  # noqa: E402, F401 (bench/ is on sys.path)
from phases import child as _child  # noqa: E402
from phases import step_timers as _step_timers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York
PER_FILE = 10_000  # trackers per JSON file, shipments per 214 interchange
STRAY_SHARE = 0.001  # trackers for parcels that are not ours
B2B_SHARE = 0.30  # shipments of EDI / CSV orders: their carrier reports by X12 214
#: warehouse -> the destination (country, region) of zones 1..10 (ref.shipping_zones maps exactly these)
ZONE_DEST = {
    "WH-NJ": [("US", "NJ"), ("US", "NY"), ("US", "MA"), ("US", "PA"), ("US", "GA"), ("US", "IL"), ("US", "TX"),
              ("US", "CA"), ("GB", "LND"), ("DE", "BY")],
    "WH-CA": [("US", "CA"), ("US", "AZ"), ("US", "OR"), ("US", "WA"), ("US", "CO"), ("US", "TX"), ("US", "IL"),
              ("US", "NY"), ("GB", "LND"), ("DE", "BY")],
    "WH-TX": [("US", "TX"), ("US", "CO"), ("US", "AZ"), ("US", "IL"), ("US", "GA"), ("US", "CA"), ("US", "NY"),
              ("US", "MA"), ("GB", "LND"), ("FR", "IDF")],
    "WH-NL": [("NL", "NH"), ("DE", "BY"), ("FR", "IDF"), ("GB", "LND"), ("ES", "MD"), ("IT", "RM"), ("PL", "MZ"),
              ("SE", "AB"), ("US", "NY"), ("US", "CA")],
}
TS = pl.Datetime("us", "UTC")


# ------------------------------------------------------------------------------------------------
# measuring (as bench_fulfilment)
# ------------------------------------------------------------------------------------------------




def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024








STEPS = [  # (module, function) timed inside a run (cumulative seconds, calls); a missing name is skipped
    *[("som_pipeline.services.tracking", f) for f in (
        "incoming", "_label_events", "_read_file", "_attach", "_statuses", "_observations", "_lanes", "_eta",
        "_history", "_backtest", "_exceptions", "_notifications", "archive")],
    ("som_pipeline.tracking.parsers", "read_x12_214"), ("som_pipeline.tracking.parsers", "read_tracker_json"),
    ("som_pipeline.tracking.eta", "fit_transit"), ("som_pipeline.tracking.eta", "predict"),
    ("som_pipeline.tracking.eta", "backtest"), ("som_pipeline.tracking.notify", "render"),
    ("som_pipeline.services.landing", "write_atomic"),
]




# ------------------------------------------------------------------------------------------------
# generation: the warehouse
# ------------------------------------------------------------------------------------------------
def money(cents) -> pl.Series:
    return (pl.Series(cents).cast(pl.Int64).cast(pl.Decimal(38, 2)) / 100).cast(pl.Decimal(18, 2))


def step_timers(out: dict):
    return _step_timers(STEPS, out)


def reference() -> dict[str, pl.DataFrame]:
    from som_pipeline.demo.carriers import carrier_rates

    zones = pl.DataFrame([{"warehouse_id": w, "dest_country": c, "dest_region": r, "zone": z}
                          for w, dests in ZONE_DEST.items() for z, (c, r) in enumerate(dests, 1)])
    rt = carrier_rates()
    rates = rt.with_columns(pl.lit(30.0).alias("max_weight_kg"), pl.lit("USD").alias("currency"),
                            money((790 * (1 + (rt["zone"] - 1) * 0.18)).round(0)).alias("rate"))
    return {"ref.shipping_zones": zones, "ref.carrier_rates": rates}


def build(rng: np.random.Generator, n: int, days: int, seed: int) -> dict[str, pl.DataFrame]:
    """Shipments, orders, packages, lines and allocations for ``n`` shipments labelled before NOW."""
    from som_pipeline.demo import carriers as C
    from som_pipeline.fulfilment.config import FulfilmentConfig
    from som_pipeline.fulfilment.labels import tracking_numbers, tracking_url
    from som_pipeline.tracking.notify import time_zone

    sh = C.shipments(n, seed, NOW - timedelta(days=days), NOW)
    sh = sh.with_columns(pl.format("S-{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(8)).alias("shipment_id"))
    b2b = rng.random(n) < B2B_SHARE
    channel = np.where(b2b, np.where(rng.random(n) < 0.6, "edi", "csv"),
                       np.where(rng.random(n) < 0.55, "shopify", "amazon"))
    wz = sh.select("warehouse_id", "dest_zone").rows()
    dest = [ZONE_DEST[w][z - 1] for w, z in wz]
    country = np.array([d[0] for d in dest])
    region = np.array([d[1] for d in dest])
    i = np.arange(n)
    code = {"shopify": "SHP", "amazon": "AMZ", "edi": "EDI", "csv": "CSV"}
    ref = np.char.add("B", np.char.zfill(i.astype(str), 9))
    sh = sh.with_columns(pl.Series("channel", channel), pl.Series("country", country), pl.Series("region", region),
                         pl.Series("order_id", [f"{code[c]}-{r}" for c, r in zip(channel, ref, strict=True)]),
                         pl.Series("_ref", ref), pl.Series("_i", i))
    # local ship date in the warehouse's zone (the simulator's fixed offsets)
    sh = sh.with_columns((pl.col("shipped_at") + pl.duration(hours=pl.col("utc_offset_h"))).dt.date().alias("ship_date"))
    n_pk = np.where(rng.random(n) < 0.12, 2, 1)
    units = n_pk + rng.integers(0, 4, n)
    customer = np.where(b2b, np.char.add("partner", (i % 40).astype(str)),
                        np.where(rng.random(n) < 0.7, np.char.add(np.char.add("cust", (i % 99991).astype(str)),
                                                                  "@example.com"), ""))
    captured = pl.col("shipped_at") - pl.duration(hours=30)
    orders = sh.select(
        "order_id", "channel", pl.col("_ref").alias("channel_order_ref"),
        pl.Series("customer_ref", customer).replace("", None), pl.lit(None, pl.String).alias("customer_po"),
        (captured - pl.duration(hours=1)).alias("order_ts"), pl.lit("USD").alias("currency"),
        pl.format("Recipient {}", "_i").alias("ship_to_name"),
        pl.format("{} Main Street", (pl.col("_i") % 9000) + 100).alias("ship_to_line1"),
        pl.format("City {}", pl.col("_i") % 400).alias("ship_to_city"), pl.col("region").alias("ship_to_region"),
        pl.format("{}", (pl.col("_i") * 37) % 90000 + 10000).alias("ship_to_postal_code"),
        pl.col("country").alias("ship_to_country"), pl.lit(False).alias("ship_complete"),
        pl.lit(Decimal("25.00")).cast(pl.Decimal(18, 2)).alias("items_subtotal"),
        *[pl.lit(Decimal("0.00")).cast(pl.Decimal(18, 2)).alias(c)
          for c in ("discount_total", "tax_total", "shipping_total", "shipping_tax")],
        pl.lit(False).alias("prices_include_tax"), pl.lit(Decimal("25.00")).cast(pl.Decimal(18, 2)).alias("order_total"),
        pl.lit(1, pl.Int64).alias("line_count"), pl.lit(0, pl.Int64).alias("unpriced_lines"),
        pl.format("bench/{}.json", "channel").alias("source_file"), pl.format("order {}", "_i").alias("source_location"),
        pl.col("order_id").alias("content_hash"), captured.alias("captured_at"), pl.lit(1, pl.Int64).alias("version"),
        (captured - pl.duration(hours=1)).dt.date().alias("order_date"), captured.alias("first_captured_at"),
        pl.format("cap-{}", "_i").alias("capture_id"))
    shipments = sh.select(
        "shipment_id", "order_id", "channel", "warehouse_id", "carrier_id", "service", "ship_date", "shipped_at",
        pl.Series("packages", n_pk).cast(pl.Int64), pl.Series("units", units).cast(pl.Int64),
        pl.Series("gross_weight_kg", np.round(rng.uniform(0.5, 12.0, n), 2)), money(rng.integers(700, 4000, n))
        .alias("rated_cost"), pl.lit("USD").alias("currency"), pl.lit(False).alias("partial"))
    pk = sh.select("shipment_id", "carrier_id", "service", "_i").with_columns(
        pl.Series("packages", n_pk)).with_columns(pl.int_ranges(1, pl.col("packages") + 1).alias("package_no")
                                                  ).explode("package_no")
    acct = FulfilmentConfig().shipper_accounts
    pk = pk.with_columns(pl.col("carrier_id").replace_strict(acct).alias("shipper_account"),
                         (pl.int_range(pl.len()).over("carrier_id") + 1_000_000 * (seed % 7 + 1)).alias("serial"))
    pk = pk.with_columns(tracking_numbers(pk))
    m = pk.height
    side = np.round(rng.uniform(15, 60, (m, 3)), 1)
    packages = pk.select(
        pl.format("{}-{}", "shipment_id", "package_no").alias("package_id"), "shipment_id",
        pl.col("package_no").cast(pl.Int64), pl.lit("BOX-M").alias("carton_id"),
        pl.Series("length_cm", side[:, 0]), pl.Series("width_cm", side[:, 1]), pl.Series("height_cm", side[:, 2]),
        pl.Series("gross_weight_kg", np.round(rng.uniform(0.3, 8.0, m), 2)),
        pl.Series("billable_weight_kg", np.round(rng.uniform(0.5, 10.0, m), 2)),
        pl.Series("utilisation", np.round(rng.uniform(0.2, 0.8, m), 3)),
        pl.lit(False).alias("hazmat"), pl.lit(False).alias("fragile"), "tracking_number",
        tracking_url("carrier_id", "tracking_number").alias("tracking_url"), pl.lit(None, pl.String).alias("sscc"),
        money(rng.integers(700, 3000, m)).alias("rated_cost"))
    lines = sh.select("shipment_id", "order_id", pl.lit(1, pl.Int64).alias("line_no"),
                      pl.format("SKU-{}", (pl.col("_i") % 5000).cast(pl.String).str.zfill(6)).alias("sku"),
                      "warehouse_id", pl.Series("quantity", units).cast(pl.Int64))
    alloc = sh.select(
        "order_id", pl.lit(1, pl.Int64).alias("line_no"), lines["sku"], "warehouse_id",
        pl.Series("quantity", units).cast(pl.Int64), "carrier_id", "service",
        pl.col("ship_date").alias("expected_ship_date"), pl.col("promised_date").alias("expected_delivery_date"),
        "promised_date", *[money(np.full(n, c)).alias(k) for k, c in (
            ("shipping_cost", 900), ("handling_cost", 150), ("lateness_penalty", 0), ("split_penalty", 0),
            ("total_cost", 1050))],
        pl.lit("greedy").alias("solver"), pl.lit("benchmark").alias("explanation"),
        pl.lit(None, pl.String).alias("next_best_warehouse"), pl.lit(None, pl.Decimal(18, 2)).alias("next_best_cost"),
        pl.lit("initial").alias("reason"), (pl.col("shipped_at") - pl.duration(hours=20)).alias("allocated_at"))
    # the simulator's input: the lane as the service will see it (destination offset, as _lanes computes it)
    offs = {(c, r): NOW.astimezone(__import__("zoneinfo").ZoneInfo(time_zone(c, r))).utcoffset().total_seconds() / 3600
            for c, r in set(dest)}
    sim_in = sh.select("shipment_id", "carrier_id", "service", "warehouse_id", "dest_zone", "shipped_at", "channel",
                       "country", "region", pl.format("City {}", pl.col("_i") % 400).alias("city"))
    tn = packages.filter(pl.col("package_no") == 1).select("shipment_id", "tracking_number")
    return {"core.orders": orders, "core.shipments": shipments, "core.packages": packages,
            "core.shipment_lines": lines, "core.allocations": alloc, "_sim": sim_in.join(tn, on="shipment_id"),
            "_offs": offs}


# ------------------------------------------------------------------------------------------------
# generation: the carriers' files (vectorised string building)
# ------------------------------------------------------------------------------------------------
def _q(e: pl.Expr) -> pl.Expr:
    """A JSON string literal of a text column (our values hold no quote or backslash; null -> null)."""
    return pl.when(e.is_null()).then(pl.lit("null")).otherwise(pl.concat_str([pl.lit('"'), e, pl.lit('"')]))


def tracker_docs(ev: pl.DataFrame) -> pl.DataFrame:
    """``ev`` (events with tracking_number, carrier_id, city, region, country) -> one EasyPost Tracker JSON text per
    shipment (``shipment_id, doc``), details in arrival order."""
    from som_pipeline.demo.carrier_feed import EASYPOST, EASYPOST_EXCEPTION

    st = {m: s for m, (s, _) in EASYPOST.items()} | {f"X:{e}": s for e, (s, _) in EASYPOST_EXCEPTION.items()}
    dt = {m: d for m, (_, d) in EASYPOST.items()} | {f"X:{e}": d for e, (_, d) in EASYPOST_EXCEPTION.items()}
    key = pl.when(pl.col("milestone") == "EXCEPTION").then(pl.format("X:{}", "exception")).otherwise("milestone")
    d = ev.sort("shipment_id", "received_at", "event_at").with_columns(
        key.replace_strict(st).alias("_st"), key.replace_strict(dt).alias("_dt"))
    d = d.with_columns(pl.concat_str([
        pl.lit('{"object":"TrackingDetail","status":'), _q(pl.col("_st")), pl.lit(',"status_detail":'), _q(pl.col("_dt")),
        pl.lit(',"message":'), _q(pl.col("milestone").str.replace_all("_", " ").str.to_titlecase()),
        pl.lit(',"datetime":'), _q(pl.col("event_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
        pl.lit(',"tracking_location":{"city":'), _q(pl.col("city")), pl.lit(',"state":'), _q(pl.col("region")),
        pl.lit(',"country":'), _q(pl.col("country")), pl.lit("}}")]).alias("_d"))
    t = d.group_by("shipment_id", maintain_order=True).agg(
        pl.col("_d").str.join(","), pl.col("tracking_number").first(), pl.col("carrier_id").first(),
        pl.col("_st").last(), pl.col("_dt").last())
    return t.select("shipment_id", pl.concat_str([
        pl.lit('{"object":"Tracker","id":"trk_'), pl.col("shipment_id").str.slice(2), pl.lit('","tracking_code":'),
        _q(pl.col("tracking_number")), pl.lit(',"carrier":'), _q(pl.col("carrier_id")), pl.lit(',"status":'),
        _q(pl.col("_st")), pl.lit(',"status_detail":'), _q(pl.col("_dt")), pl.lit(',"signed_by":'),
        pl.when(pl.col("_st") == "delivered").then(pl.lit('"J. DOE"')).otherwise(pl.lit("null")),
        pl.lit(',"tracking_details":['), pl.col("_d"), pl.lit("]}")]).alias("doc"))


def write_trackers(docs: pl.DataFrame, d: Path, prefix: str) -> int:
    docs = docs.with_columns((pl.int_range(pl.len()) // PER_FILE).alias("_f"))
    files = docs.group_by("_f", maintain_order=True).agg(pl.col("doc").str.join(",\n"))
    for k, text in files.iter_rows():
        (d / f"{prefix}_{k:03d}.json").write_text("[" + text + "]\n", encoding="utf-8")
    return files.height


def write_214(ev: pl.DataFrame, d: Path, prefix: str, at: datetime, icn0: int) -> int:
    """One interchange per carrier and PER_FILE shipments: one ST 214 per shipment (B10 tracking number,
    shipment id, SCAC), one LX/AT7/MS1 per status in arrival order (time code UT)."""
    from som_pipeline.demo.carrier_feed import AT7, AT7_EXCEPTION, SCAC

    code = AT7 | {f"X:{e}": c for e, (c, _) in AT7_EXCEPTION.items()}
    reason = {m: "NS" for m in AT7} | {f"X:{e}": r for e, (_, r) in AT7_EXCEPTION.items()}
    key = pl.when(pl.col("milestone") == "EXCEPTION").then(pl.format("X:{}", "exception")).otherwise("milestone")
    e = ev.sort("carrier_id", "shipment_id", "received_at", "event_at").with_columns(
        key.replace_strict(code).alias("_c"), key.replace_strict(reason).alias("_r"),
        (pl.int_range(pl.len()).over("shipment_id") + 1).alias("_lx"))
    e = e.with_columns(pl.format("LX*{}~\nAT7*{}*{}***{}*{}*UT~\nMS1*{}*{}~", "_lx", "_c", "_r",
                                 pl.col("event_at").dt.strftime("%Y%m%d"), pl.col("event_at").dt.strftime("%H%M"),
                                 pl.col("city").str.to_uppercase(), "region").alias("_seg"))
    sets = e.group_by("carrier_id", "shipment_id", maintain_order=True).agg(
        pl.col("_seg").str.join("\n"), pl.col("tracking_number").first(), pl.len().alias("_k"))
    sets = sets.with_columns((pl.int_range(pl.len()).over("carrier_id") // PER_FILE).alias("_f"))
    sets = sets.with_columns((pl.int_range(pl.len()).over("carrier_id", "_f") + 1).alias("_st"))
    sets = sets.with_columns(pl.col("carrier_id").replace_strict(SCAC).alias("_scac"),
                             pl.col("_st").cast(pl.String).str.zfill(4).alias("_st02"))
    sets = sets.with_columns(pl.format("ST*214*{}~\nB10*{}*{}*{}~\n{}\nSE*{}*{}~", "_st02", "tracking_number",
                                       "shipment_id", "_scac", "_seg", pl.col("_k") * 3 + 3, "_st02").alias("_set"))
    files = sets.group_by("carrier_id", "_f", maintain_order=True).agg(
        pl.col("_set").str.join("\n"), pl.len().alias("_n"), pl.col("_scac").first())
    for j, (carrier, f, body, n_sets, scac) in enumerate(files.iter_rows()):
        icn = icn0 + j
        head = (f"ISA*00*          *00*          *02*{scac:<15}*ZZ*{'SOMPIPELINE':<15}*{at:%y%m%d}*{at:%H%M}*U*00401*"
                f"{icn:09d}*0*P*>~\nGS*QM*{scac}*SOMPIPELINE*{at:%Y%m%d}*{at:%H%M}*{icn}*X*004010~\n")
        (d / f"{prefix}_{carrier}_{f:03d}.edi").write_text(head + body + f"\nGE*{n_sets}*{icn}~\nIEA*1*{icn:09d}~\n",
                                                          encoding="utf-8")
    return files.height


def strays(rng: np.random.Generator, k: int, at: datetime) -> pl.DataFrame:
    """Events of ``k`` parcels that are not ours (valid-looking 1Z numbers of another shipper account)."""
    from som_pipeline.fulfilment.labels import tracking_numbers

    tn = tracking_numbers(pl.DataFrame({"carrier_id": ["UPS"] * k, "service": ["GROUND"] * k,
                                        "shipper_account": ["9X9X9X"] * k, "serial": np.arange(k) + 17}))
    t = pl.Series((np.round((at.timestamp() - rng.uniform(1, 30, k) * 3600)) * 1e6).astype(np.int64)).cast(TS)
    return pl.DataFrame({"shipment_id": [f"X-{i:07d}" for i in range(k)], "event_at": t, "tracking_number": tn}
                        ).select("shipment_id", pl.lit("UPS").alias("carrier_id"), pl.lit("GROUND").alias("service"),
                                 pl.lit("IN_TRANSIT").alias("milestone"), pl.lit(None, pl.String).alias("exception"),
                                 "event_at", pl.col("event_at").alias("received_at"), "tracking_number",
                                 pl.lit("shopify").alias("channel"), pl.lit("US").alias("country"),
                                 pl.lit("KY").alias("region"), pl.lit("LOUISVILLE").alias("city"))


def event_ids(ev: pl.DataFrame, kind: str) -> pl.Series:
    """The event ids the parsers will compute for these events (carrier | tracking number | carrier code | time)."""
    from som_pipeline.demo.carrier_feed import AT7, AT7_EXCEPTION, EASYPOST, EASYPOST_EXCEPTION
    from som_pipeline.hashing import sha256_series

    key = pl.when(pl.col("milestone") == "EXCEPTION").then(pl.format("X:{}", "exception")).otherwise("milestone")
    if kind == "x12":
        code = ({m: f"{c}/NS" for m, c in AT7.items()}
                | {f"X:{e}": f"{c}/{r}" for e, (c, r) in AT7_EXCEPTION.items()})
        t = pl.col("event_at").dt.truncate("1m")
    else:
        code = ({m: f"{s}/{d}" for m, (s, d) in EASYPOST.items()}
                | {f"X:{e}": f"{s}/{d}" for e, (s, d) in EASYPOST_EXCEPTION.items()})
        t = pl.col("event_at").dt.truncate("1s")
    from som_pipeline.demo.carrier_feed import SCAC
    from som_pipeline.tracking.milestones import normalise_carrier

    # the carrier as the reader names it: X12 sends the SCAC (normalised when the reader knows it)
    car = (pl.col("carrier_id").replace_strict({c: normalise_carrier(s) for c, s in SCAC.items()}, default=pl.col(
        "carrier_id")) if kind == "x12" else pl.col("carrier_id"))
    k = pl.concat_str([car, pl.col("tracking_number"), key.replace_strict(code),
                       t.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")], separator="|")
    return sha256_series(k, ev).alias("event_id")


def phase_generate(home: Path, n: int, seed: int, days: int, n_hist: int, inc_h: float) -> dict:
    from som_pipeline import schemas
    from som_pipeline.demo import carriers as C
    from som_pipeline.warehouse import insert_frame, transaction

    settings = settings_for(home)
    wh = warehouse_for(settings)
    res: dict = {}
    with measured(res, "generate"):
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        frames = {**reference(), **build(rng, n, days, seed)}
        sim_in, offs = frames.pop("_sim"), frames.pop("_offs")
        hist = C.history(n_hist, seed + 1, end=NOW)
        frames["ref.transit_history"] = hist
        res["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for table, df in list(frames.items()):
            model = schemas.TABLES[table]
            frames[table] = schemas.validate(model, schemas.conform(df, model))
        res["validate_s"] = time.perf_counter() - t0
        with wh.connect() as con, transaction(con):
            for table, df in frames.items():
                insert_frame(con, table, df)

        # --- the carriers: simulate, cut at NOW and NOW + increment -------------------------------
        t0 = time.perf_counter()
        sim = sim_in.with_columns(pl.struct("country", "region").map_elements(
            lambda x: offs[(x["country"], x["region"])], return_dtype=pl.Float64).alias("utc_offset_h"))
        ev = C.simulate_transits(sim.select("shipment_id", "carrier_id", "service", "warehouse_id", "dest_zone",
                                            "shipped_at", "utc_offset_h"), seed)
        res["simulate_s"] = time.perf_counter() - t0
        ev = ev.filter(pl.col("milestone") != "LABEL_CREATED").join(
            sim.select("shipment_id", "tracking_number", "channel", "country", "region", "city"), on="shipment_id")
        inc_end = NOW + timedelta(hours=inc_h)
        ev = ev.filter(pl.col("received_at") <= inc_end)
        k_stray = max(1, int(n * (1 - B2B_SHARE) * STRAY_SHARE))
        ev = pl.concat([ev, strays(rng, k_stray, NOW)])
        b2b = pl.col("channel").is_in(["edi", "csv"])
        ev = ev.with_columns(pl.when(b2b).then(pl.lit("x12")).otherwise(pl.lit("json")).alias("_kind"))
        ev = pl.concat([ev.filter(pl.col("_kind") == k).with_columns(event_ids(ev.filter(pl.col("_kind") == k), k))
                        for k in ("x12", "json")])
        first = ev.filter(pl.col("received_at") <= NOW)
        later = ev.filter(pl.col("received_at") > NOW)
        t0 = time.perf_counter()
        land = settings.landing_dir("carrier_events")
        land.mkdir(parents=True, exist_ok=True)
        inc_dir = home / "bench_increment"
        inc_dir.mkdir(exist_ok=True)
        files = {"run1_214": write_214(first.filter(b2b), land, f"214_{NOW:%Y%m%d%H}", NOW, 100_000),
                 "run1_trackers": write_trackers(tracker_docs(first.filter(~b2b)), land, f"trackers_{NOW:%Y%m%d%H}")}
        # the increment: new 214 statuses only; updated trackers with their whole history up to inc_end
        updated = later.filter(~b2b).select("shipment_id").unique()
        files["run2_214"] = write_214(later.filter(b2b), inc_dir, f"214_{inc_end:%Y%m%d%H}", inc_end, 200_000)
        files["run2_trackers"] = write_trackers(
            tracker_docs(ev.filter(~b2b).join(updated, on="shipment_id", how="semi")), inc_dir,
            f"trackers_{inc_end:%Y%m%d%H}")
        old = time.time() - 5
        for p in list(land.iterdir()) + list(inc_dir.iterdir()):
            os.utime(p, (old, old))
        res["write_s"] = time.perf_counter() - t0
        res["bytes"] = {"run1": sum(p.stat().st_size for p in land.iterdir()),
                        "run2": sum(p.stat().st_size for p in inc_dir.iterdir())}
        # what the files hold (for the conservation checks)
        resent = ev.filter(~b2b).join(updated, on="shipment_id", how="semi").filter(pl.col("received_at") <= NOW)
        run2_rows = pl.concat([later, resent])
        exp = {
            "run1_rows": first.height, "run1_distinct": first["event_id"].n_unique(),
            "run1_stray": first.filter(pl.col("shipment_id").str.starts_with("X-")).height,
            "run1_x12": first.filter(b2b).height, "run1_json": first.filter(~b2b).height,
            "run2_rows": run2_rows.height, "run2_distinct": run2_rows["event_id"].n_unique(),
            "run2_new_distinct": later.join(first.select("event_id"), on="event_id", how="anti")["event_id"].n_unique(),
            "run2_resent": resent.height, "all_distinct": ev["event_id"].n_unique(),
            "shipments_with_carrier_events_run1": first.filter(~pl.col("shipment_id").str.starts_with("X-"))[
                "shipment_id"].n_unique(),
            "sim_delivered_run1": first.filter(pl.col("milestone") == "DELIVERED")["shipment_id"].n_unique(),
        }
        ev.select("event_id").unique().write_parquet(home / "bench_event_ids.parquet")
        res["files"] = files
        res["expected"] = exp
        res["rows"] = {t: df.height for t, df in frames.items()}
    res["rss_max_mb"] = maxrss_mb()
    return res


# ------------------------------------------------------------------------------------------------
# the runs
# ------------------------------------------------------------------------------------------------
def _counts(con) -> dict:
    q = {"events": "core.tracking_events", "pending": "core.tracking_pending", "status": "core.shipment_status",
         "observations": "state.transit_observations", "exceptions": "core.shipment_exceptions",
         "notifications": "ops.notifications", "quarantine": "ops.quarantine", "eta_accuracy": "core.eta_accuracy"}
    return {k: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for k, t in q.items()}  # noqa: S608


def phase_run(home: Path, which: str, inc_h: float, profile: bool) -> dict:
    from som_pipeline.services.tracking import run_tracking

    settings = settings_for(home)
    wh = warehouse_for(settings)
    at = NOW if which == "run1" else NOW + timedelta(hours=inc_h)
    if which == "run2":
        land = settings.landing_dir("carrier_events")
        for p in sorted((home / "bench_increment").iterdir()):
            p.replace(land / p.name)
    res: dict = {"steps": {}}
    with wh.connect() as con:
        before = _counts(con)
    with step_timers(res["steps"]), measured(res, which, profile):
        rep = run_tracking(wh, settings, at)
    res["rss_max_mb"] = maxrss_mb()
    with wh.connect() as con:
        after = _counts(con)
        res["quarantine_reasons"] = dict(con.execute(
            "SELECT reason_code, count(*) FROM ops.quarantine GROUP BY 1").fetchall())
        res["exception_kinds"] = dict(con.execute(
            "SELECT kind, count(*) FROM core.shipment_exceptions WHERE resolved_at IS NULL GROUP BY 1").fetchall())
        res["notification_kinds"] = dict(con.execute(
            "SELECT kind, count(*) FROM ops.notifications GROUP BY 1").fetchall())
        res["open_with_eta"] = con.execute("SELECT count(*) FROM core.shipment_status WHERE delivered_at IS NULL "
                                           "AND eta_p50 IS NOT NULL").fetchone()[0]
        res["delivered_total"] = con.execute("SELECT count(*) FROM core.shipment_status WHERE delivered_at IS NOT "
                                             "NULL").fetchone()[0]
        res["eta_models"] = dict(con.execute("SELECT eta_model, count(*) FROM core.shipment_status WHERE "
                                             "delivered_at IS NULL GROUP BY 1").fetchall())
    res["report"] = rep.as_metadata()
    res["notes"] = rep.notes[:10]
    res["delta"] = {k: after[k] - before[k] for k in after}
    res["totals"] = after
    return res


# ------------------------------------------------------------------------------------------------
# verification
# ------------------------------------------------------------------------------------------------
def phase_verify(home: Path) -> dict:
    settings = settings_for(home)
    wh = warehouse_for(settings)
    res: dict = {}
    sql = (Path(__file__).resolve().parents[1] / "sql" / "reconciliation" / "tracking_never_backwards.sql").read_text()
    with measured(res, "verify"), wh.connect() as con:
        one = lambda q: con.execute(q).fetchone()[0]  # noqa: E731
        ids = pl.read_parquet(home / "bench_event_ids.parquet")
        from som_pipeline.warehouse import registered

        with registered(con, ids) as k:
            res["ids_written"] = ids.height
            lost = ("SELECT count(*) FROM {} x WHERE NOT EXISTS (SELECT 1 FROM core.tracking_events e WHERE "
                    "e.event_id = x.event_id) AND NOT EXISTS (SELECT 1 FROM core.tracking_pending p WHERE "
                    "p.event_id = x.event_id)")
            res["ids_lost"] = one(lost.format(k))  # k: the registered frame's name, from code
        res["event_id_dupes"] = one("SELECT count(*) - count(DISTINCT event_id) FROM core.tracking_events")
        res["no_status"] = one("SELECT count(DISTINCT e.shipment_id) FROM core.tracking_events e WHERE NOT EXISTS "
                               "(SELECT 1 FROM core.shipment_status s WHERE s.shipment_id = e.shipment_id)")
        res["shipments_with_events"] = one("SELECT count(DISTINCT shipment_id) FROM core.tracking_events")
        res["backwards"] = con.execute(sql).pl().height
        res["notification_dupes"] = one("SELECT count(*) FROM (SELECT shipment_id, kind FROM ops.notifications "
                                        "GROUP BY ALL HAVING count(*) > 1)")
        res["notification_files"] = sum(1 for p in (home / "outbound" / "notifications").iterdir()) \
            if (home / "outbound" / "notifications").exists() else 0
        res["ledger"] = con.execute(
            "SELECT count(*), sum(records_received), sum(records_quarantined) FROM ops.ingest_files "
            "WHERE channel = 'carrier_events'").fetchone() if one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'ops' AND table_name = "
            "'ingest_files' AND column_name = 'records_received'") else None
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
    ap.add_argument("--shipments", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=11, help="labels over this many days before NOW (~5 events each)")
    ap.add_argument("--history", type=int, default=None, help="ref.transit_history shipments (default 1.5 x)")
    ap.add_argument("--increment-hours", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, default=None, help="$SOM_HOME to use and keep (must be empty or absent)")
    ap.add_argument("--profile", choices=["run1", "run2"], action="append", default=[])
    ap.add_argument("--_phase", help=argparse.SUPPRESS)
    ap.add_argument("--_home", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    n_hist = a.history or int(a.shipments * 1.5)

    if a._phase:
        if a._phase == "generate":
            emit(phase_generate(a._home, a.shipments, a.seed, a.days, n_hist, a.increment_hours))
        elif a._phase in ("run1", "run2"):
            emit(phase_run(a._home, a._phase, a.increment_hours, a._phase in a.profile))
        else:
            emit(phase_verify(a._home))
        return 0

    if a.keep:
        if a.keep.exists() and any(a.keep.iterdir()):
            sys.exit(f"--keep {a.keep}: not empty")
        home = a.keep.resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="bench_tracking_"))
    prof = [x for p in a.profile for x in ("--profile", p)]
    inc = ["--increment-hours", str(a.increment_hours)]
    load = os.getloadavg()
    print(f"bench_tracking: {a.shipments:,} shipments over {a.days} days, {n_hist:,} history, seed {a.seed}, "
          f"home {home} (load average {load[0]:.2f} {load[1]:.2f}, {os.cpu_count()} CPUs)", flush=True)
    try:
        gen = child("generate", home, ["--shipments", str(a.shipments), "--seed", str(a.seed), "--days", str(a.days),
                                       "--history", str(n_hist), *inc])
        e = gen["expected"]
        print(f"generated in {gen['generate']['s']:.1f}s (build {gen['build_s']:.1f}s, Pandera {gen['validate_s']:.1f}s, "
              f"simulate {gen['simulate_s']:.1f}s, files {gen['write_s']:.1f}s; peak {gen['rss_max_mb']:.0f} MB): "
              + ", ".join(f"{t} {v:,}" for t, v in gen["rows"].items()), flush=True)
        print(f"files: run 1 {gen['files']['run1_214']} X12 214 + {gen['files']['run1_trackers']} tracker JSON "
              f"({gen['bytes']['run1'] / 2**20:.0f} MB): {e['run1_rows']:,} events ({e['run1_x12']:,} X12, "
              f"{e['run1_json']:,} trackers; {e['run1_distinct']:,} distinct; {e['run1_stray']:,} of parcels not ours) "
              f"for {e['shipments_with_carrier_events_run1']:,} shipments; run 2 {gen['files']['run2_214']} X12 + "
              f"{gen['files']['run2_trackers']} JSON ({gen['bytes']['run2'] / 2**20:.1f} MB): {e['run2_rows']:,} "
              f"events ({e['run2_resent']:,} re-sent in the updated trackers, {e['run2_new_distinct']:,} new)",
              flush=True)
        r1 = child("run1", home, prof + inc)
        r2 = child("run2", home, prof + inc)
        ver = child("verify", home, [])
    finally:
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)

    print()
    print(f"{'phase':<26} {'seconds':>8} {'base MB':>8} {'peak MB (sampled)':>18} {'ru_maxrss MB':>13}")
    print("-" * 80)
    for name, r in (("run 1: backlog", r1), (f"run 2: +{a.increment_hours:g} h", r2)):
        m = r["run1" if r is r1 else "run2"]
        print(f"{name:<26} {m['s']:>8.2f} {m['base_mb']:>8.0f} {m['peak_sampled_mb']:>18.0f} {r['rss_max_mb']:>13.0f}")
    print("-" * 80)
    for name, r in (("run 1", r1), ("run 2", r2)):
        rep = r["report"]
        print(f"\n{name}: files {rep['files']}, events received {rep['events_received']:,}, attached "
              f"{rep['events_attached']:,}, duplicates {rep['events_duplicate']:,}, pending {rep['pending']:,}, expired "
              f"{rep['expired']:,}; shipments updated {rep['shipments_updated']:,}, newly delivered {rep['delivered']:,}, "
              f"open {rep['open_shipments']:,} (with ETA {r['open_with_eta']:,}; {r['eta_models']}); delivered in "
              f"total {r['delivered_total']:,}; exceptions opened {rep['exceptions_opened']:,} resolved "
              f"{rep['exceptions_resolved']:,} (open: {r['exception_kinds']}); notifications {rep['notifications']:,}")
        print("  table deltas: " + ", ".join(f"{k} {v:+,}" for k, v in r["delta"].items()))
        print("  steps: " + ", ".join(f"{k} {v['s']:.2f}s" + (f" ({v['calls']:,} calls)" if v["calls"] > 1 else "")
                                      for k, v in r["steps"].items() if v["calls"]))
        if r["notes"]:
            print("  notes: " + " | ".join(r["notes"]))
    print(f"\nwarehouse file {ver['size_mb']:.0f} MB; notifications written {ver['notification_files']:,}; "
          f"quarantine {r2['quarantine_reasons']}")

    checks = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append((name, bool(ok), detail))

    for name, r, rows, distinct, carried in (("run 1", r1, e["run1_rows"], e["run1_distinct"], 0),
                                             ("run 2", r2, e["run2_rows"], e["run2_distinct"], r1["totals"]["pending"])):
        rep = r["report"]
        within = rows - distinct  # the same event twice in the run's files (the simulator's duplicates, re-sends)
        q = r["delta"]["quarantine"]
        acc = rep["events_attached"] + rep["events_duplicate"] + rep["pending"] + q
        check(f"{name}: the files' events all received", rep["events_received"] == rows,
              f"received {rep['events_received']:,}, written {rows:,}")
        check(f"{name}: received + pending before = attached + duplicates + pending + quarantined (the report)",
              rep["events_received"] + carried == acc,
              f"{rep['events_received']:,} + {carried:,} vs {rep['events_attached']:,} + {rep['events_duplicate']:,} + "
              f"{rep['pending']:,} + {q:,} = {acc:,}: {rep['events_received'] + carried - acc:,} not accounted for")
        check(f"{name}: the repeats within the run's files are among the duplicates the report counts",
              rep["events_duplicate"] >= within,
              f"duplicates {rep['events_duplicate']:,} >= {within:,} repeated within the run's files")
    check("every event id written is in core.tracking_events or core.tracking_pending", ver["ids_lost"] == 0,
          f"{ver['ids_lost']:,} of {ver['ids_written']:,} missing")
    check("no event stored twice", ver["event_id_dupes"] == 0, f"{ver['event_id_dupes']:,}")
    check("pending = the parcels not ours", r2["totals"]["pending"] == e["run1_stray"],
          f"{r2['totals']['pending']:,} pending, {e['run1_stray']:,} stray events")
    check("every shipment with events has a status", ver["no_status"] == 0,
          f"{ver['no_status']:,} of {ver['shipments_with_events']:,} without")
    check("statuses never behind their events (tracking_never_backwards.sql)", ver["backwards"] == 0,
          f"{ver['backwards']:,} rows")
    check("delivered in status = delivered in the files (run 1)", r1["delivered_total"] == e["sim_delivered_run1"],
          f"{r1['delivered_total']:,} vs {e['sim_delivered_run1']:,}")
    check("one notification per shipment and kind", ver["notification_dupes"] == 0, f"{ver['notification_dupes']:,}")
    check("every notification written", ver["notification_files"] == r2["totals"]["notifications"],
          f"{ver['notification_files']:,} files, {r2['totals']['notifications']:,} rows")
    print()
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    failed = [c for c in checks if not c[1]]
    print(f"\n{'FAILED' if failed else 'OK'}: {len(checks) - len(failed)}/{len(checks)} checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

