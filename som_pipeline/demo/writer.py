"""Writing the landing zone and the portal database from the simulated orders.

File names follow the channel conventions (``orders_YYYYMMDD.json``, ``getOrders_YYYYMMDD.json``,
``getOrderItems_<AmazonOrderId>.json``, ``PO_<partner>_YYYYMMDD.edi``, ``rep_<name>_week<NN>.csv``). Each
file's modification time is set to its simulated arrival time (deterministic), because the landing zone
processes files oldest first: a re-sent order arrives after the original.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from som_pipeline.demo.formats import (
    CSV_COLUMNS,
    REP_STYLE,
    amazon_header,
    amazon_items,
    csv_rows,
    csv_text,
    edi_postprocess,
    portal_records,
    shopify_order,
    week_key,
    x12_850,
    x12_interchange,
)
from som_pipeline.demo.history import Order
from som_pipeline.demo.master_data import EDI_PARTNERS, Reference

FILE_CHANNELS = ("shopify", "amazon", "edi", "csv")
RAW = "(raw)"  # Order.file of orders that only exist inside a hand-made (damaged) file


@dataclass
class LandingFile:
    channel: str
    name: str
    data: bytes
    arrival: datetime
    orders: list[str] = field(default_factory=list)


@dataclass
class Landing:
    files: dict[tuple[str, str], LandingFile] = field(default_factory=dict)

    def add(self, channel: str, name: str, data: bytes, arrival: datetime, orders: list[str] | None = None) -> None:
        key = (channel, name)
        assert key not in self.files, key
        self.files[key] = LandingFile(channel, name, data, arrival, list(orders or []))

    def write(self, landing_dir: Path) -> None:
        for (channel, name), f in sorted(self.files.items()):
            path = landing_dir / channel / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.data)
            ns = int(f.arrival.timestamp()) * 1_000_000_000
            os.utime(path, ns=(ns, ns))


def _at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=UTC)


def json_bytes(doc: Any, *, bom: bool = False) -> bytes:
    data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


# ------------------------------------------------------------------------------------------------
def build_shopify(landing: Landing, orders: list[Order], ref: Reference, bom_day: date | None) -> None:
    groups: dict[str, list[Order]] = {}
    for o in orders:
        if o.file == RAW:
            continue
        name = o.file or f"orders_{(o.file_day or o.day):%Y%m%d}.json"
        groups.setdefault(name, []).append(o)
    for name, grp in sorted(groups.items()):
        grp.sort(key=lambda o: (o.updated or o.ts, o.ref))
        docs = []
        for o in grp:
            doc = shopify_order(o, ref)
            if o.mutate:
                o.mutate(doc)
            docs.append(doc)
        last = max(o.updated or o.ts for o in grp)
        if name.startswith("order_"):
            body = json_bytes({"order": docs[0]})
            arrival = last + timedelta(minutes=2)
        else:
            day = datetime.strptime(name[7:15], "%Y%m%d").date()
            body = json_bytes({"orders": docs}, bom=bom_day == day and name == f"orders_{day:%Y%m%d}.json")
            arrival = _at(day + timedelta(days=1), 0, 15) + timedelta(minutes=len(name) - 20)
        landing.add("shopify", name, body, arrival, [o.ref for o in grp])


def build_amazon(landing: Landing, orders: list[Order], ref: Reference) -> None:
    orders = [o for o in orders if o.file != RAW]
    days: dict[date, list[Order]] = {}
    for o in orders:
        if not o.extra.get("no_header"):
            days.setdefault(o.file_day or o.day, []).append(o)
    for d, grp in sorted(days.items()):
        grp.sort(key=lambda o: (o.ts, o.ref))
        headers = []
        for o in grp:
            h = amazon_header(o, ref)
            if o.mutate and o.extra.get("mutate_header"):
                o.mutate(h)
            headers.append(h)
        doc = {"payload": {"Orders": headers, "LastUpdatedBefore": f"{d + timedelta(days=1):%Y-%m-%d}T00:00:00Z"}}
        landing.add("amazon", f"getOrders_{d:%Y%m%d}.json", json_bytes(doc), _at(d + timedelta(days=1), 0, 30),
                    [o.ref for o in grp])
    for o in sorted(orders, key=lambda o: o.ref):
        if o.extra.get("no_items"):
            continue
        doc = amazon_items(o, ref)
        if o.mutate and not o.extra.get("mutate_header"):
            o.mutate(doc)
        d = o.file_day or o.day
        landing.add("amazon", f"getOrderItems_{o.ref}.json", json_bytes(doc), _at(d + timedelta(days=1), 0, 31),
                    [o.ref])


def build_edi(landing: Landing, orders: list[Order], ref: Reference, control: dict[str, int]) -> None:
    groups: dict[tuple[str, date, str], list[Order]] = {}
    for o in orders:
        if o.file == RAW:
            continue
        c = ref.customers[o.customer_id or ""]
        d = o.file_day or o.day
        groups.setdefault((c.edi["code"], d, o.file or f"PO_{c.edi['code']}_{d:%Y%m%d}.edi"), []).append(o)
    partners = {p["code"]: p for p in EDI_PARTNERS}
    for (code, d, name), grp in sorted(groups.items()):
        p = partners[code]
        grp.sort(key=lambda o: (o.ts, o.ref))
        control[code] += 1
        ctrl = control[code]
        sets = []
        for i, o in enumerate(grp, 1):
            segs = x12_850(o, p, f"{i:04d}")
            if o.mutate:
                o.mutate(segs)
            sets.append(segs)
        when = _at(d, 23, 40) if name.endswith(f"{d:%Y%m%d}.edi") else _at(d, 16, 20)
        ge = len(sets) + 1 if any(o.extra.get("ge_wrong") for o in grp) else None
        text = x12_interchange(p, sets, when, ctrl, ge_count=ge)
        text = edi_postprocess(text, grp, p["elem"], p["seg"])
        landing.add("edi", name, text.encode("ascii"), when + timedelta(minutes=5), [o.ref for o in grp])


def build_csv(landing: Landing, orders: list[Order], ref: Reference, end: date) -> list[dict[str, str]]:
    """Rep files per ISO week; orders flagged ``bulk`` are returned as rows for the Parquet export."""
    groups: dict[tuple[str | None, str], list[Order]] = {}
    bulk_rows: list[dict[str, str]] = []
    multi_year = len({week_key(o.day)[0] for o in orders}) > 1
    for o in orders:
        if o.file == RAW:
            continue
        rep = o.extra.get("rep")
        if o.extra.get("bulk"):
            bulk_rows.extend(csv_rows(o, ref, rep=None))
            continue
        if o.file:
            name = o.file
        else:
            y, w = week_key(o.file_day or o.day)
            wk = f"{y}-{w:02d}" if multi_year else f"{w:02d}"
            name = f"rep_{rep} week {wk}.csv" if rep and " " in rep else f"rep_{rep}_week{wk}.csv"
        groups.setdefault((rep, name), []).append(o)
    for (rep, name), grp in sorted(groups.items(), key=lambda kv: kv[0][1]):
        grp.sort(key=lambda o: (o.extra.get("last_in_file", 0), o.ts, o.ref))
        style = REP_STYLE.get(rep, REP_STYLE[None])
        rows: list[dict[str, str] | str] = []
        for o in grp:
            r: list[dict[str, str] | str] = list(csv_rows(o, ref, rep=rep))
            if o.mutate:
                o.mutate(r)
            rows.extend(r)
        text = csv_text(rows, line_terminator=style[2])
        last_day = max(o.file_day or o.day for o in grp)
        week_end = last_day + timedelta(days=6 - last_day.weekday())
        arrival = _at(min(week_end, end), 19, 0) + timedelta(minutes=sum(map(ord, name)) % 50)
        landing.add("csv", name, text.encode(style[3], errors="replace"), arrival, [o.ref for o in grp])
    return bulk_rows


def build_bulk_parquet(landing: Landing, rows: list[dict[str, str]], end: date) -> bytes | None:
    if not rows:
        return None
    df = pl.DataFrame({c: [r[c] for r in rows] for c in CSV_COLUMNS}, schema={c: pl.String for c in CSV_COLUMNS})
    path_bytes = _parquet_bytes(df)
    landing.add("csv", f"bulk_orders_{end:%Y%m%d}.parquet", path_bytes, _at(end, 21, 0),
                sorted({r["channel_order_ref"] for r in rows}))
    return path_bytes


def _parquet_bytes(df: pl.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
def write_portal(db_path: Path, orders: list[Order], ref: Reference) -> dict[str, int]:
    """Fill the portal database through the portal module, in time order (edits re-upserted later)."""
    import sqlalchemy as sa

    from som_pipeline.ingest.b2b import create_portal_schema, upsert_portal_order

    if db_path.exists():
        db_path.unlink()
    engine = sa.create_engine(f"sqlite:///{db_path}")
    events: list[tuple[datetime, str, int, dict[str, Any], list[dict[str, Any]]]] = []
    for o in orders:
        if o.file == RAW:
            continue
        header, lines = portal_records(o, ref)
        if o.mutate:
            o.mutate((header, lines))
        events.append((o.updated or o.ts, o.ref, o.version, header, lines))
        for k, (when, change) in enumerate(o.extra.get("edits", [])):
            h2, l2 = copy.deepcopy(header), copy.deepcopy(lines)
            change(h2, l2)
            events.append((when, o.ref, o.version + k + 1, h2, l2))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    counts = {"orders": len({e[1] for e in events}), "upserts": len(events)}
    try:
        with engine.begin() as conn:
            create_portal_schema(conn)
            for when, _ref, _v, header, lines in events:
                upsert_portal_order(conn, header, lines, when)
    finally:
        engine.dispose()
    return counts


def shopify_resends(orders: list[Order], sim_reprice: Any) -> list[Order]:
    """Extra appearances of Shopify orders (a changed re-send, an identical re-send, a cancellation)."""
    out = []
    for o in orders:
        if o.channel != "shopify":
            continue
        if o.extra.get("resend_changed"):
            n = copy.deepcopy(o)
            n.lines[0].qty = 5
            sim_reprice(n)
            n.updated = o.ts + timedelta(days=2, minutes=17)
            n.file = f"order_{o.ref}.json"
            n.version = 2
            n.extra = {**o.extra, "resend_changed": False, "appearance": "changed"}
            out.append(n)
        if o.extra.get("resend_identical"):
            n = copy.deepcopy(o)
            n.file_day = o.day + timedelta(days=1)
            n.extra = {**o.extra, "resend_identical": False, "appearance": "identical"}
            out.append(n)
        if o.extra.get("cancel_next_day"):
            n = copy.deepcopy(o)
            n.cancelled_at = o.ts + timedelta(days=1, hours=1)
            n.updated = n.cancelled_at
            n.financial_status = "voided"
            n.file_day = n.cancelled_at.date()
            n.version = 2
            n.extra = {**o.extra, "cancel_next_day": False, "appearance": "cancelled"}
            out.append(n)
    return out


__all__ = ["Landing", "LandingFile", "build_amazon", "build_bulk_parquet", "build_csv", "build_edi",
           "build_shopify", "json_bytes", "shopify_resends", "write_portal"]
