"""Deterministic, realistic demo data: reference tables, 90 days of orders in the real channel formats.

``generate_demo(home)`` (re)creates under ``home``:

- ``reference/<table>.csv``: one file per table of :data:`som_pipeline.schemas.REFERENCE_TABLES`;
- ``landing/shopify|amazon|edi|csv/``: Shopify Admin REST order pages, Amazon SP-API getOrders /
  getOrderItems responses, X12 004010 850 interchanges, sales-rep CSV files and a bulk Parquet export;
- ``b2b_portal.sqlite``: the B2B portal database (filled through :mod:`som_pipeline.ingest.b2b`);
- ``demo_manifest.json``: what was generated (the same dict :func:`generate_demo` returns).

Same arguments, same bytes: every random choice comes from seeded ``random.Random`` streams, nothing
reads the clock, outputs are sorted, and file modification times are set to the simulated arrival times.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from som_pipeline.demo.calibrate import calibrate
from som_pipeline.demo.decisions import HISTORY_DAYS_OPEN, write_validation_setup
from som_pipeline.demo.history import Order, simulate
from som_pipeline.demo.master_data import build_reference, write_reference
from som_pipeline.demo.problems import Injector
from som_pipeline.demo.writer import (
    Landing,
    build_amazon,
    build_bulk_parquet,
    build_csv,
    build_edi,
    build_shopify,
    shopify_resends,
    write_portal,
)

CHANNELS = ("shopify", "amazon", "edi", "csv", "b2b_portal")
MANIFEST_NAME = "demo_manifest.json"
PORTAL_DB = "b2b_portal.sqlite"


def generate_demo(
    home: Path,
    *,
    seed: int = 20261127,
    end_date: date = date(2026, 11, 25),
    days: int = 90,
    scale: float = 1.0,
) -> dict[str, Any]:
    """(Re)create the demo reference data, landing files and portal database under ``home``.

    Returns the manifest (also written to ``home/demo_manifest.json``): reference row counts and the
    deliberately bad reference rows, orders per channel, files written per channel, the validation
    scenarios (with their channel order refs) and the injected problems by reason code.
    """
    if days < 14:
        raise ValueError("days must be >= 14 (the scenarios need two weeks of history)")
    if scale <= 0:
        raise ValueError("scale must be positive")
    home = Path(home)
    start = end_date - timedelta(days=days - 1)
    _clean(home)

    ref = build_reference(seed, start, end_date)
    sim, scenarios = simulate(ref, seed, scale)
    rng = random.Random(f"{seed}:layout")

    injector = Injector(sim, seed)
    injector.run()

    clean = [o for o in sim.orders if not o.bad and not o.scenario and o.mutate is None]
    # B2B portal edits: ~2 % of orders edited later (a quantity change), one cancelled
    portal = sorted((o for o in clean if o.channel == "b2b_portal"), key=lambda o: (o.ts, o.ref))
    edited = rng.sample(portal, max(2, len(portal) // 50))
    for i, o in enumerate(sorted(edited, key=lambda o: o.ref)):
        when = min(o.ts + timedelta(hours=rng.randint(2, 30)), _end_of(end_date))
        if when <= (o.updated or o.ts):
            continue
        if i == 0:
            o.extra["edits"] = [(when, _cancel)]
            o.extra["edit_note"] = "cancelled on the portal"
        else:
            o.extra["edits"] = [(when, _more_of_line_one)]
            o.extra["edit_note"] = "line 1 quantity increased"
    # CSV: ~12 % of rep orders were keyed by customer service and come in the bulk Parquet export
    for o in clean:
        if o.channel == "csv" and rng.random() < 0.12:
            o.extra["bulk"] = True
    # Shopify: a few orders arrive as single-order webhook captures instead of in the daily page
    for o in clean:
        if o.channel == "shopify" and rng.random() < 0.01:
            o.file = f"order_{o.ref}.json"

    def reprice(o: Order) -> None:
        sim.price_order(o, ref.customers[o.customer_id or ""], promo=o.promo)

    appearances = shopify_resends(sim.orders, reprice)
    by_channel: dict[str, list[Order]] = {ch: [] for ch in CHANNELS}
    for o in sim.orders + appearances:
        by_channel[o.channel].append(o)

    calibration = calibrate(ref, sim.orders, end_date, HISTORY_DAYS_OPEN, seed)

    landing = Landing()
    shop_days = sorted({o.day for o in by_channel["shopify"]})
    bom_day = shop_days[len(shop_days) // 3] if shop_days else None
    build_shopify(landing, by_channel["shopify"], ref, bom_day=bom_day)
    build_amazon(landing, by_channel["amazon"], ref)
    build_edi(landing, by_channel["edi"], ref, control={"ACMEHW": 4100, "SUNBELT": 220, "GRTLAKES": 7300,
                                                         "NORTHMRT": 15})
    bulk_rows = build_csv(landing, by_channel["csv"], ref, end_date)
    build_bulk_parquet(landing, bulk_rows, end_date)
    for channel, name, data, arrival in injector.raw_files:
        landing.add(channel, name, data, arrival)
    landing.write(home / "landing")

    ref_counts = write_reference(ref, home / "reference")
    portal_counts = write_portal(home / PORTAL_DB, by_channel["b2b_portal"], ref)

    manifest = _manifest(home, seed, start, end_date, days, scale, ref, ref_counts, sim.orders, appearances,
                         scenarios, injector, landing, portal_counts, by_channel)
    manifest["validation"] = {**write_validation_setup(home, end_date, scenarios), "calibration": calibration}
    decisions = home / "landing" / manifest["validation"]["decisions_file"]
    manifest["sha256"][f"landing/{manifest['validation']['decisions_file']}"] = hashlib.sha256(
        decisions.read_bytes()).hexdigest()
    manifest["sha256"] = dict(sorted(manifest["sha256"].items()))
    dis = home / "landing" / manifest["validation"]["disruptions_file"]
    manifest["sha256"][f"landing/{manifest['validation']['disruptions_file']}"] = hashlib.sha256(
        dis.read_bytes()).hexdigest()
    manifest["sha256"] = dict(sorted(manifest["sha256"].items()))
    manifest["files"]["approvals"] = 1
    manifest["files"]["disruptions"] = 1
    manifest["files_total"] += 2
    manifest["accepted_encodings"] = {
        "utf-8-sig": [f"shopify/orders_{bom_day:%Y%m%d}.json"] if bom_day else [],
        "cp1252": sorted(f"csv/{name}" for (ch, name), f in landing.files.items()
                         if ch == "csv" and name.startswith("rep_francois_dubois") and _not_utf8(f.data)),
    }
    (home / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _end_of(d: date) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(d, time(23, 0), tzinfo=UTC)


def _cancel(header: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    header["status"] = "cancelled"


def _more_of_line_one(header: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    lines[0]["quantity"] = lines[0]["quantity"] + Decimal(5)


def _clean(home: Path) -> None:
    for sub in ("reference", "landing/approvals", "landing/disruptions",
                *(f"landing/{c}" for c in CHANNELS if c != "b2b_portal")):
        p = home / sub
        if p.exists():
            shutil.rmtree(p)
    for f in (PORTAL_DB, MANIFEST_NAME, "validation.toml"):
        if (home / f).exists():
            (home / f).unlink()
    home.mkdir(parents=True, exist_ok=True)


def _manifest(home: Path, seed: int, start: date, end: date, days: int, scale: float, ref: Any,
              ref_counts: dict[str, int], orders: list[Order], appearances: list[Order],
              scenarios: list[dict[str, Any]], injector: Injector, landing: Landing,
              portal_counts: dict[str, int], by_channel: dict[str, list[Order]]) -> dict[str, Any]:
    where: dict[tuple[str, str], list[str]] = {}
    for (channel, name), f in sorted(landing.files.items()):
        for r in f.orders:
            where.setdefault((channel, r), []).append(name)

    def files_of(channel: str, order_ref: str | None) -> list[str]:
        if channel == "b2b_portal":
            return [PORTAL_DB]
        return where.get((channel, order_ref or ""), [])

    good = [o for o in orders if not o.bad]
    counts = {ch: len({o.ref for o in good if o.channel == ch}) for ch in CHANNELS}
    amazon_pending = injector.pairing
    lines = {ch: sum(len(o.lines) for o in good if o.channel == ch) for ch in CHANNELS}
    for s in scenarios:
        s["files"] = files_of(s["channel"], s["order_ref"])
    injected: dict[str, list[dict[str, Any]]] = {}
    for item in injector.items:
        entry = {k: v for k, v in item.items() if k != "reason" and v is not None}
        if not entry.get("file"):
            entry["file"] = (files_of(item["channel"], item.get("order_ref")) or [None])[0]
        injected.setdefault(item["reason"], []).append(entry)
    files: dict[str, int] = {}
    for channel, _name in landing.files:
        files[channel] = files.get(channel, 0) + 1
    files["reference"] = len(ref_counts)
    files["b2b_portal"] = 1
    digests = {}
    for (channel, name), f in sorted(landing.files.items()):
        digests[f"landing/{channel}/{name}"] = hashlib.sha256(f.data).hexdigest()
    resends = [{"order_ref": o.ref, "kind": o.extra.get("appearance"), "files": [
        n for (ch, n), f in sorted(landing.files.items()) if ch == "shopify" and o.ref in f.orders]}
        for o in appearances]
    portal_edits = [{"order_ref": o.ref, "note": o.extra["edit_note"]} for o in by_channel["b2b_portal"]
                    if o.extra.get("edits")]
    return {
        "generator": "som_pipeline.demo",
        "seed": seed,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "days": days,
        "scale": scale,
        "reference": {"rows": ref_counts, "bad_rows": ref.bad_rows,
                      "special": {k: v for k, v in sorted(ref.special.items())}},
        "orders": counts,
        "orders_per_channel": counts,  # (alias read by `som demo`)
        "order_lines": lines,
        "orders_total": sum(counts.values()),
        "bad_orders": sum(1 for o in orders if o.bad),
        "files": files,
        "files_per_channel": files,  # (alias read by `som demo`)
        "files_total": sum(files.values()),
        "portal": portal_counts,
        "portal_edits": portal_edits,
        "shopify_resends": resends,
        "amazon_pairing": amazon_pending,
        "scenarios": scenarios,
        "injected": dict(sorted(injected.items())),
        "sha256": digests,
    }




__all__ = ["generate_demo"]
