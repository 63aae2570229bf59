"""Capture service: landing-zone files (and the portal database) into ``stage.*``, ``ops.*``.

The I/O shell around the pure parsers: it reads each waiting file, parses and normalises it, and in ONE
warehouse transaction per file writes the staged orders and lines, the quarantine rows and the ledger
row (``ops.ingest_files``); only then the file moves to the archive. So:

- each file is processed exactly once: its content hash in the ledger is the truth (a re-dropped
  identical file is recorded in ``ops.ingest_redrops`` and archived, not counted again);
- a crash between commit and archive is healed on the next run (the ledger already has the hash and
  the planned archive path: the file is just moved);
- a bad file never stops the good ones: any unexpected failure on one file is quarantined as
  ``UNREADABLE_FILE`` for that file (with the error) and the loop goes on.

No Dagster here: the assets call these functions with a :class:`~som_pipeline.warehouse.Warehouse`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_file
from som_pipeline.ingest.common import Captured, ParseResult, Rejection, normalise, normalise_many, raw_frame
from som_pipeline.schemas import IngestFileModel, IngestRedropModel, from_rows
from som_pipeline.services.landing import LandedFile, archive_path, list_landing, move_to
from som_pipeline.warehouse import Warehouse, insert_frame, transaction

log = logging.getLogger(__name__)

RECORD_UNITS = {"shopify": "order", "amazon": "order / order_item", "edi": "transaction_set", "csv": "row",
                "b2b_portal": "order_line"}


@dataclass
class FileOutcome:
    source_file: str
    sha256: str
    status: str  # processed | redrop | healed
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    orders: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class CaptureReport:
    channel: str
    files: list[FileOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational
    warnings: list[str] = field(default_factory=list)  # something a person should look at

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def processed(self) -> int:
        return sum(1 for f in self.files if f.status == "processed")

    def as_metadata(self) -> dict:
        reasons: dict[str, int] = {}
        for f in self.files:
            for k, v in f.reasons.items():
                reasons[k] = reasons.get(k, 0) + v
        return {
            "files_processed": self.processed,
            "files_redropped": sum(1 for f in self.files if f.status == "redrop"),
            "records_received": self.total("received"),
            "records_accepted": self.total("accepted"),
            "records_quarantined": self.total("quarantined"),
            "orders_accepted": self.total("orders"),
            "quarantine_by_reason": dict(sorted(reasons.items())),
        }


# ------------------------------------------------------------------------------------------------
# Writing one captured unit
# ------------------------------------------------------------------------------------------------
def next_capture_seq(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(capture_seq), 0) FROM stage.order_headers").fetchone()[0])


def write_captured(con: duckdb.DuckDBPyConnection, cap: Captured) -> None:
    """Append a normalised unit to stage + quarantine (inside the caller's transaction)."""
    if cap.headers.height:
        seq0 = next_capture_seq(con)
        headers = cap.headers.with_columns((pl.int_range(1, pl.len() + 1) + seq0).cast(pl.Int64).alias("capture_seq"))
        # an observation already staged (same file content + record) is never staged twice
        known = con.execute(
            "SELECT capture_id FROM stage.order_headers WHERE capture_id IN (SELECT unnest(?::VARCHAR[]))",
            [headers["capture_id"].to_list()],
        ).pl()
        if known.height:
            headers = headers.join(known, on="capture_id", how="anti")
        insert_frame(con, "stage.order_headers", headers)
        insert_frame(con, "stage.order_lines", cap.lines.join(headers.select("capture_id"), on="capture_id", how="semi"))
    write_quarantine(con, cap.quarantine)


def write_quarantine(con: duckdb.DuckDBPyConnection, q: pl.DataFrame) -> int:
    if q.height == 0:
        return 0
    known = con.execute(
        "SELECT quarantine_id FROM ops.quarantine WHERE quarantine_id IN (SELECT unnest(?::VARCHAR[]))",
        [q["quarantine_id"].to_list()],
    ).pl()
    q = q.unique(subset="quarantine_id", keep="first")
    if known.height:
        q = q.join(known, on="quarantine_id", how="anti")
    return insert_frame(con, "ops.quarantine", q)


def ledger_row(lf_name: str, channel: str, sha: str, size: int, encoding: str | None, unit: str,
               received: int, accepted: int, quarantined: int, orders: int, archived_to: str | None,
               at: datetime) -> pl.DataFrame:
    return from_rows(IngestFileModel, [{
        "source_file": lf_name, "channel": channel, "sha256": sha, "size_bytes": size, "encoding": encoding,
        "record_unit": unit, "records_received": received, "records_accepted": accepted,
        "records_quarantined": quarantined, "orders_accepted": orders, "archived_to": archived_to,
        "processed_at": at,
    }])


def file_failure(channel: str, name: str, sha: str, exc: BaseException, at: datetime) -> Captured:
    """An unexpected error on one file becomes one quarantined record (never a crash of the run)."""
    msg = f"{type(exc).__name__}: {exc}".strip()[:500]
    log.error("capture of %s/%s failed: %s\n%s", channel, name, msg, traceback.format_exc())
    pr = ParseResult(channel, "file", raw_frame([]), [Rejection("file", "file", "file", "UNREADABLE_FILE",
                                                                f"the file could not be processed: {msg}")])
    return normalise(pr, source_file=name, file_sha256=sha, captured_at=at)


def sum_captured(parts: list[Captured]) -> Captured:
    if len(parts) == 1:
        return parts[0]
    return Captured(
        headers=pl.concat([p.headers for p in parts]) if parts else pl.DataFrame(),
        lines=pl.concat([p.lines for p in parts]) if parts else pl.DataFrame(),
        quarantine=pl.concat([p.quarantine for p in parts]) if parts else pl.DataFrame(),
        records_received=sum(p.records_received for p in parts),
        records_accepted=sum(p.records_accepted for p in parts),
        records_quarantined=sum(p.records_quarantined for p in parts),
        encoding=parts[0].encoding if parts else None,
    )


# ------------------------------------------------------------------------------------------------
# Ledger lookups
# ------------------------------------------------------------------------------------------------
def ledger_lookup(con: duckdb.DuckDBPyConnection, shas: list[str]) -> dict[str, tuple[str, str | None]]:
    if not shas:
        return {}
    df = con.execute(
        "SELECT sha256, source_file, archived_to FROM ops.ingest_files WHERE sha256 IN (SELECT unnest(?::VARCHAR[]))",
        [shas],
    ).pl()
    return {r["sha256"]: (r["source_file"], r["archived_to"]) for r in df.iter_rows(named=True)}


# ------------------------------------------------------------------------------------------------
# Generic file-channel capture
# ------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A file read into raw rows, waiting for the (batched) normaliser."""

    result: ParseResult
    required_header: tuple[str, ...] = ("order_ref", "order_ts", "currency")
    line_no_given: bool = False
    # after normalising: turn the outcome into what is written (e.g. Amazon keeps the staged halves)
    finish: Callable[[Captured, str, datetime], Captured] | None = None


# Small files: (file, sha256, capture time) -> Prepared (normalised in batches with other files).
Prepare = Callable[[LandedFile, str, datetime], Prepared]
# Big files: (file, sha256, capture time) -> normalised units, one per chunk of whole orders.
Stream = Callable[[LandedFile, str, datetime], Iterable[Captured]]
# Extra writes in a batch's transaction, given the batch's (file, sha256, captured, time) in arrival
# order; may return an action to run after the commit.
TxHook = Callable[[duckdb.DuckDBPyConnection, list[tuple[LandedFile, str, Captured, datetime]]],
                  Callable[[], None] | None]

BATCH_FILES = 200
BATCH_ROWS = 200_000


@dataclass
class _Pending:
    lf: LandedFile
    sha: str
    dest: Path
    at: datetime
    prepared: Prepared | None = None
    parts: list[Captured] | None = None


def capture_files(
    wh: Warehouse,
    settings: Settings,
    channel: str,
    *,
    prepare: Prepare | None = None,
    stream: Stream | None = None,
    now: datetime | None = None,
    in_transaction: TxHook | None = None,
) -> CaptureReport:
    """Process every ready file of ``channel``'s landing folder.

    Small files (``prepare``) are normalised together, up to BATCH_FILES files / BATCH_ROWS rows per
    batch, and each batch commits in one transaction; big files (``stream``) are normalised chunk by
    chunk and commit alone. The warehouse lock is held for the whole channel (one connection). Files
    move to the archive only after their transaction committed.
    """
    report = CaptureReport(channel)
    files = list_landing(settings.landing_dir(channel), channel)
    if not files:
        return report
    with wh.connect() as con:
        batch: list[_Pending] = []
        rows = 0
        in_batch: dict[str, str] = {}
        for lf in files:
            at = now or datetime.now(UTC)
            try:
                sha = sha256_file(lf.path)
            except OSError as e:  # vanished or unreadable: leave it, report
                report.warnings.append(f"{lf.name}: cannot read ({e}); left in place")
                continue
            dest = archive_path(settings.archive, channel, lf.name, sha, at)
            seen = ledger_lookup(con, [sha]).get(sha)
            if seen is None and sha in in_batch:  # the same content twice in one batch
                _flush(con, channel, batch, report, in_transaction)
                batch, rows, in_batch = [], 0, {}
                seen = ledger_lookup(con, [sha]).get(sha)
            if seen is not None:
                report.files.append(_already_seen(con, lf, channel, sha, seen, dest, at))
                continue
            item = _Pending(lf, sha, dest, at)
            try:
                if stream is not None:
                    item.parts = list(stream(lf, sha, at))
                else:
                    assert prepare is not None
                    item.prepared = prepare(lf, sha, at)
                    rows += item.prepared.result.rows.height
            except Exception as e:  # noqa: BLE001 - a bad file never stops the good ones
                item.parts, item.prepared = [file_failure(channel, lf.name, sha, e, at)], None
            batch.append(item)
            in_batch[sha] = lf.name
            if stream is not None or len(batch) >= BATCH_FILES or rows >= BATCH_ROWS:
                _flush(con, channel, batch, report, in_transaction)
                batch, rows, in_batch = [], 0, {}
        _flush(con, channel, batch, report, in_transaction)
    return report


def _flush(con: duckdb.DuckDBPyConnection, channel: str, batch: list[_Pending], report: CaptureReport,
           in_transaction: TxHook | None) -> None:
    if not batch:
        return
    # normalise the prepared files together, one call per set of normaliser options
    groups: dict[tuple, list[_Pending]] = {}
    for it in batch:
        if it.prepared is not None:
            groups.setdefault((it.prepared.required_header, it.prepared.line_no_given), []).append(it)
    for (required, line_no_given), items in groups.items():
        caps = normalise_many([(it.prepared.result, it.lf.name, it.sha) for it in items], captured_at=items[0].at,
                              required_header=required, line_no_given=line_no_given)
        for it, cap in zip(items, caps, strict=True):
            it.parts = [it.prepared.finish(cap, it.lf.name, it.at) if it.prepared.finish else cap]
    done = [(it.lf, it.sha, sum_captured(it.parts), it.at) for it in batch]
    post = None
    with transaction(con):  # one transaction, a few bulk inserts, for the whole batch
        write_captured(con, sum_captured([p for it in batch for p in it.parts]))
        if in_transaction:
            post = in_transaction(con, done)
        insert_frame(con, "ops.ingest_files", pl.concat([
            ledger_row(lf.name, channel, sha, lf.size, cap.encoding, RECORD_UNITS[channel], cap.records_received,
                       cap.records_accepted, cap.records_quarantined, cap.orders_accepted, str(it.dest), at)
            for it, (lf, sha, cap, at) in zip(batch, done, strict=True)]))
    for it, (_lf, sha, cap, _at) in zip(batch, done, strict=True):
        move_to(it.lf.path, it.dest)
        report.files.append(outcome(it.lf.name, sha, cap))
    if post:
        post()


def outcome(name: str, sha: str, cap: Captured) -> FileOutcome:
    reasons = dict(cap.quarantine.group_by("reason_code").len().rows()) if cap.quarantine.height else {}
    return FileOutcome(name, sha, "processed", cap.records_received, cap.records_accepted,
                       cap.records_quarantined, cap.orders_accepted, reasons)


def _already_seen(con: duckdb.DuckDBPyConnection, lf: LandedFile, channel: str, sha: str,
                  seen: tuple[str, str | None], dest: Path, at: datetime) -> FileOutcome:
    first_name, archived_to = seen
    if archived_to and first_name == lf.name and not Path(archived_to).exists():
        move_to(lf.path, Path(archived_to))  # committed last time, the archive step was interrupted
        return FileOutcome(lf.name, sha, "healed")
    with transaction(con):
        insert_frame(con, "ops.ingest_redrops", from_rows(IngestRedropModel, [{
            "source_file": lf.name, "channel": channel, "sha256": sha, "first_source_file": first_name,
            "seen_at": at}]))
    move_to(lf.path, dest.with_name(f"{dest.name}.redrop-{at.strftime('%Y%m%dT%H%M%S%f')}"))
    return FileOutcome(lf.name, sha, "redrop")
