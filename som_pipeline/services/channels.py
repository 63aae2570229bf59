"""Per-channel capture: which parser, which extra writes (997s, Amazon pairing, portal watermark).

:data:`CAPTURERS` maps every channel of ``ingest/channels.py`` to its capture function. A plain file channel
(its record names a ``parser``) is captured by :func:`capture_plain` and needs no entry of its own; a channel
with extra writes or a database source registers one here with ``@captures("<name>")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from sqlalchemy import create_engine, inspect, make_url
from sqlalchemy.exc import DBAPIError

from som_pipeline.config import Settings
from som_pipeline.ingest.channels import CHANNELS
from som_pipeline.ingest.common import Captured, normalise
from som_pipeline.schemas import (
    AmazonPairModel,
    AmazonPendingModel,
    B2BWatermarkModel,
    EdiAckModel,
    conform,
    from_rows,
)
from som_pipeline.services.capture import (
    CaptureReport,
    Prepared,
    capture_files,
    outcome,
    write_captured,
    write_quarantine,
)
from som_pipeline.services.landing import FileOutcome, LandedFile, SourceUnavailable, ledger_row
from som_pipeline.warehouse import Warehouse, insert_frame, read_table, replace_table

Capture = Callable[[Warehouse, Settings, str | None, datetime | None], CaptureReport]
CAPTURERS: dict[str, Capture] = {}


def captures(channel: str) -> Callable[[Capture], Capture]:
    """Register ``fn(wh, settings, b2b_url, now)`` as the capture of ``channel``."""
    def register(fn: Capture) -> Capture:
        assert channel in CHANNELS, f"{channel!r} is not in ingest/channels.py"
        CAPTURERS[channel] = fn
        return fn

    return register


def _parser(channel: str) -> Callable:
    spec = CHANNELS[channel].parser
    assert spec, f"channel {channel!r} names no parser"
    module, fn = spec.split(":")
    return getattr(importlib.import_module(module), fn)


def _plain(channel: str) -> Callable[[LandedFile, bytes, str, datetime], Prepared]:
    def prepare(lf: LandedFile, data: bytes, sha: str, at: datetime) -> Prepared:
        return Prepared(_parser(channel)(data, lf.name))

    return prepare


def capture_plain(channel: str, wh: Warehouse, settings: Settings, now: datetime | None = None) -> CaptureReport:
    """A file channel whose parser takes ``(bytes, name)``: batched files, one transaction per batch."""
    return capture_files(wh, settings, channel, prepare=_plain(channel), now=now)


# ------------------------------------------------------------------------------------------------
# EDI (X12 850; 214s routed to tracking) + 997 acknowledgments
# ------------------------------------------------------------------------------------------------
ROUTED_SETS = frozenset({"214"})  # transaction sets the EDI channel hands on (to tracking) instead of capturing


@captures("edi")
def capture_edi(wh: Warehouse, settings: Settings, b2b_url: str | None = None,
                now: datetime | None = None) -> CaptureReport:
    """X12 files: parse with the trading partners' SKU rules, routing the 214 sets to tracking
    (:func:`route_status_messages`); flag interchanges whose ISA13 their sender already used (in ops.edi_acks or
    an earlier file of this run); write a 997 (or a TA1 for a duplicate) per interchange.

    A file's ledger row counts the sets this channel judges (850s, and anything that is not a 214): accepted +
    quarantined. Its 214 sets are not records of the file here (not counted, not quarantined
    ``X12_UNSUPPORTED_SET``): they are handed on, and tracking counts them (one record per AT7) under the file it
    receives. The 997 of an interchange answers all its groups, the 214 ones with the tracking reader's verdict."""
    from som_pipeline.ingest.x12 import flag_duplicate_interchanges, load_sku_rules, parse_x12

    sku_rules = load_sku_rules(settings.edi_partners_config)
    # the catalog and its aliases: a PO1 whose preferred id is a GTIN/UPC resolves to the SKU it stands for
    sku_rules = replace(sku_rules, catalog=frozenset(wh.read("SELECT sku FROM ref.products")["sku"]),
                        aliases=dict(wh.read("SELECT alias, sku FROM ref.product_aliases").rows()))
    seen = {(q or "", s or "", (icn or "").strip()): f"{src} ({at:%Y-%m-%d %H:%M} UTC)"
            for q, s, icn, src, at in wh.read(
                "SELECT sender_qualifier, sender_id, interchange_control, source_file, created_at FROM ops.edi_acks "
                "WHERE duplicate_of IS NULL ORDER BY created_at DESC, ack_control DESC").rows()}  # first wins
    # rows written before sender_qualifier existed (NULL) match any qualifier of the same sender id
    legacy = {(s, icn): where for (q, s, icn), where in seen.items() if not q}

    def prepare(lf: LandedFile, data: bytes, sha: str, at: datetime) -> Prepared:
        result = parse_x12(data, lf.name, sku_rules=sku_rules, routed_sets=ROUTED_SETS, judge_routed=_judge_214)
        for ic in result.extras.get("interchanges") or []:
            k = ((ic.get("sender_qualifier") or "").strip(), (ic.get("sender_id") or "").strip(),
                 (ic.get("isa_control_number") or "").strip())
            if k not in seen and (k[1], k[2]) in legacy:
                seen[k] = legacy[(k[1], k[2])]
        return Prepared(flag_duplicate_interchanges(result, seen, lf.name))

    acks = _edi_acks(settings)

    def in_transaction(con: duckdb.DuckDBPyConnection, done: list[tuple[LandedFile, str, Captured, datetime]]):
        route_status_messages(settings, done)
        return acks(con, done)

    return capture_files(wh, settings, "edi", prepare=prepare, now=now, in_transaction=in_transaction)


def _judge_214(s, se, text: str) -> dict:
    """The tracking reader's verdict on one 214 set (what it will make of it): the 997 answers with it. A 997 is a
    functional acknowledgment: it says whether the reader can read the set (AK5 R with the set's codes when not,
    e.g. a 214 with no AT7 is code 5), not what becomes of its events (an unknown status code is tracking's
    quarantine, not the 997's)."""
    from som_pipeline.tracking.parsers import judge_214

    try:
        return judge_214(s, se, text)[2]
    except Exception as e:  # noqa: BLE001 - a reader bug never stops the capture; tracking's reader quarantines it
        return {"parse_status": "rejected", "reason_code": "UNREADABLE_FILE", "ak5_codes": ["5"], "ak3": [],
                "message": f"internal error judging the 214 ({type(e).__name__}: {e}); please report it"}


def route_status_messages(settings: Settings, done: list[tuple[LandedFile, str, Captured, datetime]]) -> list[Path]:
    """The EDI channel routes by transaction set: the 214 sets (carrier shipment status) of each file go to
    tracking, whatever else the file holds; the 850s (and anything else) stay with this capture.

    For each captured file with routed sets, ``landing/carrier_events/edi-<name>-<sha256[:12]>-214.edi`` holds,
    per interchange, its ISA, each functional group with 214 sets (GS, those sets, GE with their count) and an
    IEA (:func:`~som_pipeline.ingest.x12.routing.routed_x12`: byte-faithful segments, original separators and
    encoding). A group is routed by its sets' ST01, not its GS01 (a 214 in a group labelled PO still goes). The
    original file is archived as any EDI file; its ledger row does not count the 214 sets (tracking counts them
    in the routed file), so every set is counted exactly once.

    Routing happens inside the capture (not in a pass before it) so that one parse decides, per set, whether it is
    this file's record or handed on, and the duplicate check, the 997 and the ledger row all see the same answer.
    Called inside the capture's transaction, before it commits: a crash after the commit never loses the 214s. A
    crash before it leaves a routed file whose original is read again next run, giving the same bytes under the
    same name (the content hash in the name also keeps two originals with the same name apart); tracking's
    ledger recognises content it already read. A byte-identical re-drop of the original is settled by the landing
    protocol before it is parsed (nothing is routed again); the same interchange in another file is a duplicate
    (TA1, its sets quarantined here, not routed). The routed file keeps the original's modification time: it is
    complete, not left to settle, and keeps its place in arrival order among the carrier events."""
    import os

    from som_pipeline.ingest.x12 import encode_like, routed_x12
    from som_pipeline.services.landing import safe_name

    written = []
    for lf, sha, cap, _at in done:
        text, n = routed_x12(cap.extras.get("interchanges") or [])
        if not n:
            continue
        dest = settings.landing_dir("carrier_events") / f"edi-{safe_name(Path(lf.name).stem, 80)}-{sha[:12]}-214.edi"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        tmp.write_bytes(encode_like(text, cap.encoding))
        os.utime(tmp, ns=(lf.mtime_ns, lf.mtime_ns))
        os.replace(tmp, dest)
        written.append(dest)
    return written


def _edi_acks(settings: Settings) -> Callable:
    from som_pipeline.ingest.x12 import accepted_set_ids, ack_file_name, ack_group_count, build_997

    def hook(con: duckdb.DuckDBPyConnection, done: list[tuple[LandedFile, str, Captured, datetime]]):
        last = int(con.execute("SELECT coalesce(max(greatest(ack_control, coalesce(ack_control_last, 0))), 0) "
                               "FROM ops.edi_acks").fetchone()[0])
        writes, rows = [], []
        for lf, sha, cap, at in done:
            accepted = accepted_set_ids(cap)
            for ic in cap.extras.get("interchanges") or []:
                first = last + 1
                last = first + max(ack_group_count(ic), 1) - 1
                text = build_997(ic, accepted, first, at)
                icn = ic.get("isa_control_number")
                kind = "TA1" if ic.get("duplicate_of") else "997"
                dest = settings.outbound / "edi" / f"{first:09d}_{ack_file_name(lf.name, str(icn or first))}"
                if kind == "TA1":
                    dest = dest.with_name(dest.name.replace("_997_", "_TA1_", 1))
                writes.append((dest, text))
                sets = [s for g in ic.get("groups", []) for s in g.get("sets", [])]
                errs = [e for e in ic.get("errors", [])] + [e for g in ic.get("groups", []) for e in g.get("errors", [])]
                envelope = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or None
                rows.append({
                    "source_file": lf.name, "file_sha256": sha, "interchange_control": icn,
                    "sender_id": (ic.get("sender_id") or "").strip() or None, "ack_file": str(dest),
                    "ack_control": first, "sets_received": len(sets),
                    "sets_accepted": sum(1 for s in sets if s.get("record_id") in accepted),
                    "envelope_errors": envelope, "created_at": at,
                    "sender_qualifier": (ic.get("sender_qualifier") or "").strip() or None,
                    "ack_control_last": last if last > first else None,
                    "duplicate_of": ic.get("duplicate_of"),
                })
        if rows:
            insert_frame(con, "ops.edi_acks", from_rows(EdiAckModel, rows))

        def write() -> None:
            for dest, text in writes:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".tmp")
                tmp.write_text(text, encoding="ascii", errors="replace")
                tmp.replace(dest)

        return write

    return hook


# ------------------------------------------------------------------------------------------------
# CSV / Parquet template (streamed in chunks of whole orders)
# ------------------------------------------------------------------------------------------------
@captures("csv")
def capture_csv(wh: Warehouse, settings: Settings, b2b_url: str | None = None,
                now: datetime | None = None) -> CaptureReport:
    return capture_files(wh, settings, "csv", stream=_csv(settings), now=now)


def _csv(settings: Settings) -> Callable[[LandedFile, str, datetime], Iterator[Captured]]:
    def parse(lf: LandedFile, sha: str, at: datetime) -> Iterator[Captured]:
        from som_pipeline.ingest.csv_template import NORMALISE_OPTIONS, iter_csv_chunks

        work = settings.tmp / f"csv-{sha[:12]}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            for chunk in iter_csv_chunks(lf.path, lf.name, work):
                yield normalise(chunk, source_file=lf.name, file_sha256=sha, captured_at=at, **NORMALISE_OPTIONS)
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    return parse


# ------------------------------------------------------------------------------------------------
# Amazon: stage the halves, then pair
# ------------------------------------------------------------------------------------------------
@captures("amazon")
def capture_amazon(wh: Warehouse, settings: Settings, b2b_url: str | None = None,
                   now: datetime | None = None) -> CaptureReport:
    from som_pipeline.ingest.amazon import capture_pairs, pair_amazon, read_amazon

    def prepare(lf: LandedFile, data: bytes, sha: str, at: datetime) -> Prepared:
        read = read_amazon(data, lf.name)

        def finish(cap: Captured, name: str, received_at: datetime) -> Captured:
            af = read.finish(cap, name, received_at)
            # the file's Captured carries the counts and quarantine; its headers/lines are validation
            # by-products (placeholder lines and dates) and are never staged as orders
            c = af.captured
            return Captured(c.headers.clear(), c.lines.clear(), c.quarantine, c.records_received,
                            c.records_accepted, c.records_quarantined, af.encoding,
                            {**c.extras, "amazon_file": af}, )

        return Prepared(read.result, required_header=read.required_header, finish=finish)

    def stage_halves(con: duckdb.DuckDBPyConnection, done: list[tuple[LandedFile, str, Captured, datetime]]):
        files = [cap.extras["amazon_file"] for _lf, _sha, cap, _at in done if "amazon_file" in cap.extras]
        if files:
            insert_frame(con, "stage.amazon_headers", pl.concat([af.headers for af in files]))
            insert_frame(con, "stage.amazon_items", pl.concat([af.items for af in files]))
        return None

    report = capture_files(wh, settings, "amazon", prepare=prepare, now=now, in_transaction=stage_halves)

    # pairing: every staged header x items, skipping pairs already captured
    at = now or datetime.now(UTC)
    with wh.transaction() as con:
        pairing = pair_amazon(read_table(con, "stage.amazon_headers"), read_table(con, "stage.amazon_items"))
        done = set(read_table(con, "stage.amazon_pairs")["pair_key"].to_list())
        rows = []
        for pc in capture_pairs(pairing, captured_at=at, skip_pair_keys=done):
            write_captured(con, pc.captured)
            rows.append({"amazon_order_id": pc.amazon_order_id, "pair_key": pc.pair_key, "source_file": pc.source_file,
                         "outcome": "captured" if pc.captured.headers.height else "quarantined", "paired_at": at})
        if rows:
            insert_frame(con, "stage.amazon_pairs", from_rows(AmazonPairModel, rows))
        replace_table(con, "ops.amazon_pending", conform(pairing.pending, AmazonPendingModel))
    report.notes.append(f"amazon: {len(rows)} order(s) paired this run, {pairing.pending.height} waiting")
    return report


# ------------------------------------------------------------------------------------------------
# B2B portal (database, incremental by watermark)
# ------------------------------------------------------------------------------------------------
@captures("b2b_portal")
def capture_b2b(wh: Warehouse, settings: Settings, url: str | None = None, now: datetime | None = None) -> CaptureReport:
    from som_pipeline.ingest.b2b import Watermark, normalise_batch, read_changes, source_identity

    report = CaptureReport("b2b_portal")
    url = url or settings.b2b_db_url
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite" and sa_url.database and not Path(sa_url.database).exists():
        report.notes.append(f"b2b_portal: no portal database at {sa_url.database} (set SOM_B2B_DB_URL); nothing read")
        return report
    ident = source_identity(url)
    wm_row = wh.read("SELECT watermark_ts, watermark_id FROM ops.b2b_watermark WHERE source = ?", [ident])
    wm = None
    if wm_row.height and wm_row["watermark_ts"][0] is not None:
        ts = wm_row["watermark_ts"][0]
        wm = Watermark(ts if ts.tzinfo else ts.replace(tzinfo=UTC), int(wm_row["watermark_id"][0]))
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table("portal_orders"):
            report.notes.append(f"b2b_portal: {ident} has no portal_orders table yet; nothing read")
            return report
        # rows stamped in the last `commit_lag` may still have siblings in open portal transactions
        # (PostgreSQL stamps now() at transaction start): leave them for the next run
        until = (now or datetime.now(UTC)) - timedelta(seconds=settings.b2b_commit_lag_s)
        for batch in read_changes(engine, wm, until=until):
            at = now or datetime.now(UTC)
            name = f"{ident} [{batch.previous.ts.isoformat() if batch.previous else 'start'} .. {batch.watermark.ts.isoformat()}]"
            cap = normalise_batch(batch, source_file=name, captured_at=at)
            with wh.transaction() as con:
                write_captured(con, cap)
                known = con.execute("SELECT 1 FROM ops.ingest_files WHERE sha256 = ?", [batch.content_sha256]).fetchone()
                if not known:
                    insert_frame(con, "ops.ingest_files", ledger_row(
                        name, "b2b_portal", batch.content_sha256, 0, None, CHANNELS["b2b_portal"].record_unit,
                        cap.records_received,
                        cap.records_accepted, cap.records_quarantined, cap.orders_accepted, None, at))
                con.execute("DELETE FROM ops.b2b_watermark WHERE source = ?", [ident])
                insert_frame(con, "ops.b2b_watermark", from_rows(B2BWatermarkModel, [{
                    "source": ident, "watermark_ts": batch.watermark.ts, "watermark_id": str(batch.watermark.order_id),
                    "rows_read": batch.lines_read, "updated_at": at}]))
            report.files.append(outcome(name, batch.content_sha256, cap) if not known
                                else FileOutcome(name, batch.content_sha256, "redrop"))
    except DBAPIError as e:  # unreachable, refused, bad credentials, dropped: this source only (batches
        # committed before the error keep their watermark; the next run goes on from there)
        first = str(e.orig or e).strip().splitlines()[0][:300]
        raise SourceUnavailable(f"portal database {ident} unreachable: {first}") from e
    finally:
        engine.dispose()
    return report


# ------------------------------------------------------------------------------------------------
def capture_channel(channel: str, wh: Warehouse, settings: Settings, b2b_url: str | None = None,
                    now: datetime | None = None) -> CaptureReport:
    """Capture everything waiting for ``channel``."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if channel in CAPTURERS:
        return CAPTURERS[channel](wh, settings, b2b_url, now)
    return capture_plain(channel, wh, settings, now)


__all__ = ["CAPTURERS", "capture_channel", "capture_plain", "captures", "write_quarantine"]
