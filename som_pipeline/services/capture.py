"""Capture service: landing-zone files (and the portal database) into ``stage.*``, ``ops.*``.

The I/O shell around the pure parsers, on the landing protocol of ``services/landing.py``: it reads each
waiting file, parses and normalises it, and in ONE warehouse transaction per file (or batch of small files)
writes the staged orders and lines, the quarantine rows and the ledger row (``ops.ingest_files``); only then
the file moves to the archive. So:

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
from som_pipeline.hashing import sha256_file, sha256_text
from som_pipeline.ingest.channels import CHANNELS
from som_pipeline.ingest.common import Captured, ParseResult, Rejection, normalise, normalise_many, raw_frame
from som_pipeline.parquet_stage import PART, POS, PartFiles, part_files
from som_pipeline.services import Step
from som_pipeline.services.landing import (
    FileOutcome,
    LandedFile,
    NewFile,
    Waiting,
    archive,
    changed,
    ledger_row,
    record_waiting,
    reland_if_grown,
    scan_landing,
    screen,
)
from som_pipeline.warehouse import Warehouse, insert_frame, registered, transaction

log = logging.getLogger(__name__)

# Every channel's capture writes the staged observations (and the ops.* bookkeeping: ledger, quarantine).
CAPTURE = Step(reads=(), writes=("stage.order_headers", "stage.order_lines", "stage.amazon_headers",
                                 "stage.amazon_items", "stage.amazon_pairs"))



@dataclass
class CaptureReport:
    channel: str
    files: list[FileOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational
    waiting: list[Waiting] = field(default_factory=list)  # landing entries not taken (ops.landing_waiting)
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


# Small files: (file, its bytes, their sha256, capture time) -> Prepared (normalised in batches with other files).
Prepare = Callable[[LandedFile, bytes, str, datetime], Prepared]
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
    new: NewFile
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
    chunk, each chunk staged as Parquet part files as it comes, then published in the file's own transaction
    (:func:`_stream_file`: memory bounded by a chunk, all or nothing per file). ``in_transaction`` hooks apply
    to batches of small files.
    The warehouse lock is held for the whole channel (one connection). Files move to the archive only after
    their transaction committed.
    """
    report = CaptureReport(channel)
    found = scan_landing(settings.landing_dir(channel), channel, settings.landing_settle_s)
    report.waiting += found.waiting
    with wh.connect() as con:
        batch: list[_Pending] = []
        rows = 0
        for lf in found.ready:
            at = now or datetime.now(UTC)
            try:  # small files: the bytes hashed are exactly the bytes parsed
                data = None if stream is not None else lf.path.read_bytes()
                sha = sha256_file(lf.path) if data is None else sha256_text(data)
            except OSError as e:  # vanished or unreadable: leave it, report
                report.warnings.append(f"{lf.name}: cannot read ({e}); left in place")
                continue
            if any(it.new.sha == sha for it in batch):  # the same content twice in one batch: settle the first
                _flush(con, channel, batch, report, in_transaction)
                batch, rows = [], 0
            screened = screen(con, settings.archive, lf, at, sha)
            if isinstance(screened, FileOutcome):
                report.files.append(screened)
                continue
            item = _Pending(screened)
            if stream is not None:
                _stream_file(con, channel, item.new, stream, report, settings.tmp)
                continue
            try:
                assert prepare is not None
                item.prepared = prepare(lf, data, sha, at)
                rows += item.prepared.result.rows.height
            except Exception as e:  # noqa: BLE001 - a bad file never stops the good ones
                item.parts, item.prepared = [file_failure(channel, lf.name, sha, e, at)], None
            batch.append(item)
            if len(batch) >= BATCH_FILES or rows >= BATCH_ROWS:
                _flush(con, channel, batch, report, in_transaction)
                batch, rows = [], 0
        _flush(con, channel, batch, report, in_transaction)
        record_waiting(con, channel, report.waiting, now or datetime.now(UTC))
    report.warnings += [f"{w.name}: waits ({w.reason}: {w.detail})" for w in report.waiting]
    return report


@dataclass
class _Tally:
    """What a streamed file's chunks added up to (counts only: the frames are already in the transaction)."""

    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    orders: int = 0
    encoding: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, cap: Captured) -> None:
        self.received += cap.records_received
        self.accepted += cap.records_accepted
        self.quarantined += cap.records_quarantined
        self.orders += cap.orders_accepted
        self.encoding = self.encoding or cap.encoding
        if cap.quarantine.height:
            for code, n in cap.quarantine.group_by("reason_code").len().rows():
                self.reasons[code] = self.reasons.get(code, 0) + n


def _stream_file(con: duckdb.DuckDBPyConnection, channel: str, new: NewFile, stream: Stream,
                 report: CaptureReport, work: Path) -> None:
    """One big file: each normalised chunk is staged as Parquet files as it comes (under ``work``), then one
    transaction publishes them all with the ledger row (:func:`publish_parts`), so memory holds one chunk (and
    DuckDB streams the publishing insert) and the file commits whole or not at all (a kill leaves only the part
    files, removed by the next run, which reads the file again, whole). A failure part-way replaces everything
    with one quarantined record for the file."""
    tally = _Tally()
    with part_files(work, f".capture-{channel}-") as parts:
        failure = None
        try:
            for cap in stream(new.lf, new.sha, new.at):
                stage_captured(parts, cap)
                tally.add(cap)
                del cap
        except Exception as e:  # noqa: BLE001 - a bad file never stops the good ones
            tally = _Tally()
            failure = file_failure(channel, new.name, new.sha, e, new.at)
            tally.add(failure)
        if changed(new.lf):  # a writer still appending: read again next run, whole
            report.waiting.append(Waiting(channel, new.name, "changed_while_read",
                                          "the file changed while it was read: it will be read again, whole",
                                          new.lf.size))
            return
        if failure is None:
            try:
                with transaction(con):
                    publish_parts(con, parts)
                    _ledger(con, channel, new, tally)
            except Exception as e:  # noqa: BLE001 - rolled back; the file is quarantined whole, as above
                tally = _Tally()
                failure = file_failure(channel, new.name, new.sha, e, new.at)
                tally.add(failure)
        if failure is not None:
            with transaction(con):
                write_captured(con, failure)
                _ledger(con, channel, new, tally)
    archive(new)
    report.files.append(FileOutcome(new.name, new.sha, "processed", tally.received, tally.accepted,
                                    tally.quarantined, tally.orders, dict(sorted(tally.reasons.items()))))
    _warn_if_grown(new, report)


def _ledger(con: duckdb.DuckDBPyConnection, channel: str, new: NewFile, tally: _Tally) -> None:
    insert_frame(con, "ops.ingest_files", ledger_row(
        new.name, channel, new.sha, new.lf.size, tally.encoding, CHANNELS[channel].record_unit, tally.received,
        tally.accepted, tally.quarantined, tally.orders, str(new.dest), new.at))


def stage_captured(parts: PartFiles, cap: Captured) -> None:
    """Stage one normalised chunk (its headers, lines and quarantine rows) as the next part."""
    parts.add("headers", cap.headers)
    # as write_captured: only the lines of the chunk's own orders
    parts.add("lines", cap.lines.join(cap.headers.select("capture_id"), on="capture_id", how="semi",
                                      maintain_order="left"))
    parts.add("quarantine", cap.quarantine)


def publish_parts(con: duckdb.DuckDBPyConnection, parts: PartFiles) -> None:
    """Insert the staged chunks (inside the caller's transaction) exactly as :func:`write_captured` would have,
    chunk after chunk: each chunk's headers numbered from the highest ``capture_seq`` staged before it, an
    observation already staged (same ``capture_id``) left out with its lines, a quarantine record already there
    (or earlier in the file) written once. In SQL over the part files: DuckDB streams them into the tables."""
    headers, lines = parts.files("headers"), parts.files("lines")
    if headers:
        known = con.execute("SELECT DISTINCT capture_id FROM read_parquet(?) SEMI JOIN stage.order_headers "
                            "USING (capture_id)", [headers]).pl()
        with registered(con, known) as k:
            # a chunk's numbers start after the last number of the chunks before it that staged anything
            con.execute(f"""INSERT INTO stage.order_headers BY NAME
                WITH h AS (SELECT * EXCLUDE (capture_seq), capture_id IN (SELECT capture_id FROM {k}) AS _known
                           FROM read_parquet(?)),
                     p AS (SELECT {PART}, coalesce(max({POS}) FILTER (WHERE NOT _known), 0) AS _last
                           FROM h GROUP BY {PART}),
                     o AS (SELECT {PART}, ? + coalesce(sum(_last) OVER (ORDER BY {PART} ROWS BETWEEN UNBOUNDED
                           PRECEDING AND 1 PRECEDING), 0) AS _seq0 FROM p)
                SELECT h.* EXCLUDE (_known, {PART}, {POS}), o._seq0 + h.{POS} AS capture_seq
                FROM h JOIN o ON o.{PART} = h.{PART} WHERE NOT h._known
                ORDER BY h.{PART}, h.{POS}""", [headers, next_capture_seq(con)])  # noqa: S608
            # the lines were staged with their chunk's headers only (stage_captured); here without the known
            # ones. Without any (the rule), a plain scan: DuckDB inserts it in file order, the files in part order
            if lines and known.height:
                con.execute(f"""INSERT INTO stage.order_lines BY NAME
                    SELECT * EXCLUDE ({PART}, {POS}) FROM read_parquet(?) ANTI JOIN {k} USING (capture_id)
                    ORDER BY {PART}, {POS}""", [lines])  # noqa: S608
            else:
                parts.insert_into(con, "stage.order_lines", "lines")
    quarantine = parts.files("quarantine")
    if quarantine:
        con.execute(f"""INSERT INTO ops.quarantine BY NAME
            SELECT * EXCLUDE ({PART}, {POS}, _first) FROM (
                SELECT *, row_number() OVER (PARTITION BY quarantine_id ORDER BY {PART}, {POS}) = 1 AS _first
                FROM read_parquet(?)) q
            WHERE _first AND NOT EXISTS (SELECT 1 FROM ops.quarantine o WHERE o.quarantine_id = q.quarantine_id)
            ORDER BY {PART}, {POS}""", [quarantine])  # noqa: S608


def _warn_if_grown(new: NewFile, report: CaptureReport) -> None:
    """After archiving: a file that grew since it was read goes back to landing (see ``reland_if_grown``)."""
    if reland_if_grown(new):
        report.warnings.append(f"{new.name}: grew after it was read (write as .tmp, then rename); the grown "
                               "file is back in landing and will be read again (identical orders are ignored)")


def _flush(con: duckdb.DuckDBPyConnection, channel: str, batch: list[_Pending], report: CaptureReport,
           in_transaction: TxHook | None) -> None:
    # a file that changed since it was listed (a writer still appending) is not committed: it is read again
    # next run, whole
    for it in [it for it in batch if changed(it.new.lf)]:
        batch.remove(it)
        report.waiting.append(Waiting(channel, it.new.name, "changed_while_read",
                                      "the file changed while it was read: it will be read again, whole", it.new.lf.size))
    if not batch:
        return
    # normalise the prepared files together, one call per set of normaliser options
    groups: dict[tuple, list[_Pending]] = {}
    for it in batch:
        if it.prepared is not None:
            groups.setdefault((it.prepared.required_header, it.prepared.line_no_given), []).append(it)
    for (required, line_no_given), items in groups.items():
        caps = normalise_many([(it.prepared.result, it.new.name, it.new.sha) for it in items],
                              captured_at=items[0].new.at, required_header=required, line_no_given=line_no_given)
        for it, cap in zip(items, caps, strict=True):
            it.parts = [it.prepared.finish(cap, it.new.name, it.new.at) if it.prepared.finish else cap]
    done = [(it.new.lf, it.new.sha, sum_captured(it.parts), it.new.at) for it in batch]
    post = None
    with transaction(con):  # one transaction, a few bulk inserts, for the whole batch
        write_captured(con, sum_captured([p for it in batch for p in it.parts]))
        if in_transaction:
            post = in_transaction(con, done)
        insert_frame(con, "ops.ingest_files", pl.concat([
            ledger_row(lf.name, channel, sha, lf.size, cap.encoding, CHANNELS[channel].record_unit,
                       cap.records_received, cap.records_accepted, cap.records_quarantined, cap.orders_accepted,
                       str(it.new.dest), at)
            for it, (lf, sha, cap, at) in zip(batch, done, strict=True)]))
    for it, (_lf, sha, cap, _at) in zip(batch, done, strict=True):
        archive(it.new)
        report.files.append(outcome(it.new.name, sha, cap))
        _warn_if_grown(it.new, report)
    if post:
        post()


def outcome(name: str, sha: str, cap: Captured) -> FileOutcome:
    reasons = dict(cap.quarantine.group_by("reason_code").len().rows()) if cap.quarantine.height else {}
    return FileOutcome(name, sha, "processed", cap.records_received, cap.records_accepted,
                       cap.records_quarantined, cap.orders_accepted, reasons)
