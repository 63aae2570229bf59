"""The landing zone and THE landing-file protocol every feed follows.

``$SOM_HOME/landing/<channel>/`` receives files (any name: spaces, unicode, dots are fine). Files whose
name starts with ``.`` or ends with ``.tmp``/``.part``/``.partial`` are still being written and are left
alone (writers should write under such a name and rename when done). After processing, a file moves to
``$SOM_HOME/archive/<channel>/<YYYY-MM-DD>/<sha256[:12]>__<safe name>``: the content hash prefix makes
archive names unique and ties them to ``ops.ingest_files``.

The protocol (:func:`incoming` -> process -> :func:`ledger_row` in the same transaction -> :func:`archive`):

1. list complete files (the in-progress name rule above), oldest first;
2. hash each; content this feed already processed is settled at once: an interrupted archive is healed
   (moved to the archive path the ledger recorded), any other copy is a re-drop (``ops.ingest_redrops``, archived
   as ``…redrop-<time>``) and is never processed twice;
3. the service parses a new file, writes its rows, its quarantine (reason, message, location, raw text) and
   its ledger row (``records_received = records_accepted + records_quarantined``) in ONE transaction;
4. only after the commit does the file move to the archive. A crash between 3 and 4 is step 2's healing.

Feeds are declared in ``som_pipeline/feeds.py``; ``tests/test_landing.py`` runs the re-drop, healing and
conservation cases over every one of them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_file, sha256_text
from som_pipeline.schemas import IngestFileModel, IngestRedropModel, from_rows
from som_pipeline.warehouse import insert_frame, transaction

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


class SourceUnavailable(RuntimeError):
    """A whole source cannot be read (portal database down, landing folder unreadable). The capture of that
    source reports it and stops; the other sources are not affected (see ``assets/capture.py``)."""


@dataclass(frozen=True)
class LandedFile:
    channel: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Waiting:
    """A landing entry that is not taken this run, and why (``ops.landing_waiting``)."""

    feed: str
    name: str
    reason: str  # in_progress_name | symlink | not_a_file | settling | changed_while_read
    detail: str
    size: int | None = None


@dataclass
class Scan:
    ready: list[LandedFile]
    waiting: list[Waiting]


def scan_landing(landing_dir: Path, feed: str, settle_s: float = 0.0) -> Scan:
    """Complete files in a feed folder, oldest first (then by name): arrival order; and what waits, with why.

    A file is complete when its name is not an in-progress name (``.`` prefix, ``.tmp``/``.part``/…) and it is
    **stable**: unchanged in size and mtime across ``settle_s`` seconds (``SOM_LANDING_SETTLE_S``). Files older
    than that are stable already; for younger ones the scan waits once (at most ``settle_s``) and looks again.
    Symlinks are never followed (a link could point anywhere): they wait, reported, like every skipped entry.
    """
    if not landing_dir.is_dir():
        return Scan([], [])
    try:
        entries = list(os.scandir(landing_dir))
    except OSError as e:
        raise SourceUnavailable(f"landing folder {landing_dir} cannot be read: {e.strerror or e}") from e
    ready: list[LandedFile] = []
    waiting: list[Waiting] = []
    for entry in entries:
        if entry.is_symlink():
            waiting.append(Waiting(feed, entry.name, "symlink", "symlinks are not followed: move the file itself here"))
            continue
        if not entry.is_file(follow_symlinks=False):
            if not entry.name.startswith("."):
                waiting.append(Waiting(feed, entry.name, "not_a_file", "not a regular file (a folder?)"))
            continue
        st = entry.stat(follow_symlinks=False)
        if entry.name.startswith(".") or entry.name.lower().endswith(IN_PROGRESS_SUFFIXES):
            waiting.append(Waiting(feed, entry.name, "in_progress_name",
                                   "still being written (rename it when complete)", st.st_size))
            continue
        ready.append(LandedFile(feed, Path(entry.path), st.st_size, st.st_mtime_ns))
    young = [f for f in ready if time.time_ns() - f.mtime_ns < settle_s * 1e9]
    if young:
        time.sleep(min(settle_s, max(0.0, settle_s - (time.time_ns() - max(f.mtime_ns for f in young)) / 1e9)))
        for f in young:
            if changed(f):
                ready.remove(f)
                waiting.append(Waiting(feed, f.name, "settling", f"still growing (settle interval {settle_s:g}s)",
                                       f.size))
    return Scan(sorted(ready, key=lambda f: (f.mtime_ns, f.name)), sorted(waiting, key=lambda w: w.name))


def list_landing(landing_dir: Path, channel: str, settle_s: float = 0.0) -> list[LandedFile]:
    """Complete files in a feed folder, in arrival order (see :func:`scan_landing`)."""
    return scan_landing(landing_dir, channel, settle_s).ready


def changed(f: LandedFile) -> bool:
    """The file is gone, or its size or mtime differ from when it was listed."""
    try:
        st = f.path.stat(follow_symlinks=False)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)


def record_waiting(con: duckdb.DuckDBPyConnection, feed: str, waiting: list[Waiting], at: datetime) -> None:
    """Replace the feed's rows of ``ops.landing_waiting`` with what waits now (first sighting kept)."""
    from som_pipeline.schemas import LandingWaitingModel

    first = dict(con.execute("SELECT source_file || '|' || reason, first_seen_at FROM ops.landing_waiting "
                             "WHERE feed = ?", [feed]).fetchall())
    rows = [{"feed": w.feed, "source_file": w.name, "reason": w.reason, "detail": w.detail, "size_bytes": w.size,
             "first_seen_at": first.get(f"{w.name}|{w.reason}", at), "last_seen_at": at} for w in waiting]
    with transaction(con):
        con.execute("DELETE FROM ops.landing_waiting WHERE feed = ?", [feed])
        if rows:
            insert_frame(con, "ops.landing_waiting", from_rows(LandingWaitingModel, rows))


def safe_name(name: str, max_len: int = 120) -> str:
    """A file-system-safe rendering of an arbitrary received name (ASCII, no separators, no '..')."""
    norm = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    norm = re.sub(r"[^A-Za-z0-9._-]+", "_", norm)
    norm = re.sub(r"\.{2,}", ".", norm).strip("._") or "file"
    return norm[:max_len]


def archive_path(archive_root: Path, channel: str, name: str, sha256: str, when: datetime) -> Path:
    return archive_root / channel / when.strftime("%Y-%m-%d") / f"{sha256[:12]}__{safe_name(name)}"


def move_to(path: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # same content already archived (same hash prefix and name): drop the copy
        path.unlink()
        return dest
    shutil.move(str(path), str(dest))
    return dest


# ------------------------------------------------------------------------------------------------
# The protocol every feed follows (capture channels, approvals, disruptions, and the feeds to come)
# ------------------------------------------------------------------------------------------------
@dataclass
class FileOutcome:
    """What happened to one received file (or portal batch) in this run."""

    source_file: str
    sha256: str
    status: str  # processed | redrop | healed
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    orders: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NewFile:
    """A complete landing file whose content this feed has not processed: process it, write
    :func:`ledger_row` in the same transaction, then :func:`archive` it."""

    feed: str
    lf: LandedFile
    sha: str
    dest: Path  # where it is archived once its transaction committed
    at: datetime

    @property
    def name(self) -> str:
        return self.lf.name

    def read(self) -> bytes | None:
        """The file's bytes if they are still exactly the content that was hashed (else None: it changed since it
        was screened and is left for the next run, whole)."""
        try:
            data = self.lf.path.read_bytes()
        except OSError:
            return None
        return data if sha256_text(data) == self.sha else None


def ledger_lookup(con: duckdb.DuckDBPyConnection, feed: str, shas: list[str]) -> dict[str, tuple[str, str | None]]:
    """``sha256 -> (first source file, archived_to)`` of contents this feed already processed."""
    if not shas:
        return {}
    df = con.execute(
        "SELECT sha256, source_file, archived_to FROM ops.ingest_files "
        "WHERE channel = ? AND sha256 IN (SELECT unnest(?::VARCHAR[]))", [feed, shas],
    ).pl()
    return {r["sha256"]: (r["source_file"], r["archived_to"]) for r in df.iter_rows(named=True)}


def ledger_row(name: str, feed: str, sha: str, size: int, encoding: str | None, unit: str,
               received: int, accepted: int, quarantined: int, orders: int, archived_to: str | None,
               at: datetime) -> pl.DataFrame:
    """The ``ops.ingest_files`` row of one processed file: ``received = accepted + quarantined``."""
    return from_rows(IngestFileModel, [{
        "source_file": name, "channel": feed, "sha256": sha, "size_bytes": size, "encoding": encoding,
        "record_unit": unit, "records_received": received, "records_accepted": accepted,
        "records_quarantined": quarantined, "orders_accepted": orders, "archived_to": archived_to,
        "processed_at": at,
    }])


def screen(con: duckdb.DuckDBPyConnection, archive_root: Path, lf: LandedFile, at: datetime,
           sha: str | None = None) -> NewFile | FileOutcome:
    """Hash ``lf`` and decide: new content (:class:`NewFile`), or already processed by this feed, in which case
    it is settled here: a file whose transaction committed but whose archiving was interrupted is moved to its
    recorded archive path (``healed``); any other copy is a re-drop, recorded in ``ops.ingest_redrops`` and
    archived beside the first as ``…redrop-<time>`` (``redrop``). Raises ``OSError`` if the file cannot be read."""
    sha = sha or sha256_file(lf.path)
    dest = archive_path(archive_root, lf.channel, lf.name, sha, at)
    seen = ledger_lookup(con, lf.channel, [sha]).get(sha)
    if seen is None:
        return NewFile(lf.channel, lf, sha, dest, at)
    return settle_known(con, lf, sha, seen, dest, at)


def settle_known(con: duckdb.DuckDBPyConnection, lf: LandedFile, sha: str, seen: tuple[str, str | None],
                 dest: Path, at: datetime) -> FileOutcome:
    first_name, archived_to = seen
    if archived_to and first_name == lf.name and not Path(archived_to).exists():
        move_to(lf.path, Path(archived_to))  # committed last time, the archive step was interrupted
        return FileOutcome(lf.name, sha, "healed")
    with transaction(con):
        insert_frame(con, "ops.ingest_redrops", from_rows(IngestRedropModel, [{
            "source_file": lf.name, "channel": lf.channel, "sha256": sha, "first_source_file": first_name,
            "seen_at": at}]))
    move_to(lf.path, dest.with_name(f"{dest.name}.redrop-{at.strftime('%Y%m%dT%H%M%S%f')}"))
    return FileOutcome(lf.name, sha, "redrop")


def incoming(con: duckdb.DuckDBPyConnection, settings: Settings, feed: str, now: datetime | None = None,
             warnings: list[str] | None = None) -> tuple[list[NewFile], list[FileOutcome]]:
    """Every complete file waiting in ``landing/<feed>/``, screened: the new ones (to process, in arrival
    order) and the outcomes of those already settled (healed, re-dropped). What is not taken (in-progress names,
    symlinks, files still growing) is recorded in ``ops.landing_waiting`` and told in ``warnings``; so is a
    file that cannot be read (left in place)."""
    new: list[NewFile] = []
    settled: list[FileOutcome] = []
    at = now or datetime.now(UTC)
    found = scan_landing(settings.landing_dir(feed), feed, settings.landing_settle_s)
    notes = warnings if warnings is not None else []
    for lf in found.ready:
        try:
            r = screen(con, settings.archive, lf, at)
        except OSError as e:
            notes.append(f"{lf.name}: cannot read ({e}); left in place")
            continue
        (new if isinstance(r, NewFile) else settled).append(r)
    record_waiting(con, feed, found.waiting, at)
    notes += [f"{w.name}: waits ({w.reason}: {w.detail})" for w in found.waiting]
    return new, settled


def reland_if_grown(f: NewFile) -> bool:
    """After :func:`archive`: if the archived file is not the size that was read (a writer kept appending to it),
    copy it back to landing (atomically, under its name) so the next run reads it whole. True if it did."""
    try:
        size = f.dest.stat().st_size
    except OSError:
        return False
    if size == f.lf.size:
        return False
    tmp = f.lf.path.with_name(f".{f.lf.name}.reland.tmp")
    shutil.copyfile(f.dest, tmp)
    os.replace(tmp, f.lf.path)
    return True


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write an outbound file whole (text as UTF-8, or bytes): a temporary name beside it, then an atomic rename
    (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def archive(f: NewFile) -> Path:
    """After the file's transaction committed: move it to its archive path."""
    return move_to(f.lf.path, f.dest)
