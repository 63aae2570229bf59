"""The "csv" channel: the sales-rep / bulk order template (CSV, or Parquet for bulk loads).

One row per order line, a header row naming the columns (see ``docs/csv_template.md``). The parser only
does structure; :func:`som_pipeline.ingest.common.normalise` (with :data:`NORMALISE_OPTIONS`) types and
checks the values. Files can be large (millions of rows), so nothing here loads a whole file into Python:

1. **Prepare** (streaming, 4 MiB blocks): choose the encoding like ``common.decode_text`` (UTF-8 with or
   without BOM, UTF-16 with BOM, else Windows-1252, latin-1 for the five bytes cp1252 leaves undefined;
   binary -> ``BAD_ENCODING``; nothing but whitespace -> ``EMPTY_FILE``), validating UTF-8 with an
   incremental decoder. Files that are not UTF-8, or that contain CR line breaks, are rewritten to a
   UTF-8, LF-only copy under ``work_dir`` (DuckDB's reader fails, or silently reads nothing, on mixed
   line endings). The same pass counts lines and finds blank lines outside quoted fields.
2. **Header**: the first non-blank record, read with Python's ``csv`` module (names case-insensitive,
   surrounding spaces ignored, any order).
3. **Stage**: DuckDB's CSV reader (``all varchar``, RFC 4180 quoting, ``store_rejects``) copies the rows,
   in file order, to a compressed Parquet file under ``work_dir``; ragged/malformed rows land in DuckDB's
   rejects table. Parquet input is staged the same way, every column cast to text exactly.
4. **Group**: a small per-row frame (order key, newline count, blank flag) assigns whole orders to chunks
   of about ``chunk_rows`` rows, in order of first appearance. A chunk is a slice of the staged file plus
   the few rows of its orders found elsewhere ("strays", fetched in one pass); with more strays than
   ``chunk_rows``, DuckDB sorts by (chunk, row) out-of-core (``memory_limit``, ``temp_directory`` under
   ``work_dir``).
5. **Yield** one :class:`ParseResult` per chunk, each holding complete orders only.

Row numbering: ``record_id`` is ``row <n>`` (n counts data rows, rejected ones included, blank ones
not); ``location`` is ``line <physical line>``, exact even after quoted newlines, blank lines and
rejected rows (see :func:`_layout`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from som_pipeline.ingest.common import (
    HEADER_FIELDS,
    LINE_FIELDS,
    RAW_COLUMNS,
    RAW_SCHEMA,
    ParseResult,
    Rejection,
)

CHANNEL = "csv"
RECORD_UNIT = "row"
RECORD_KIND = "row"

REQUIRED_COLUMNS: tuple[str, ...] = (
    "channel_order_ref", "order_ts", "customer_ref", "currency", "ship_to_name", "ship_to_line1",
    "ship_to_city", "ship_to_postal_code", "ship_to_country", "line_no", "sku", "quantity", "unit_price",
    "discount_pct", "tax_rate", "promo_code",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "customer_po", "ship_to_company", "ship_to_line2", "ship_to_region", "ship_method", "ship_complete",
    "description", "uom",
)
TEMPLATE_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
#: template column -> raw-row field (common.HEADER_FIELDS / LINE_FIELDS); all others keep their name
RAW_FIELD: dict[str, str] = {c: ("order_ref" if c == "channel_order_ref" else c) for c in TEMPLATE_COLUMNS}
assert set(RAW_FIELD.values()) <= set(HEADER_FIELDS) | set(LINE_FIELDS)

#: order-level values the template requires (besides sku, quantity and line_no, which normalise()
#: always requires with ``line_no_given=True``); pass as ``normalise(chunk, ..., **NORMALISE_OPTIONS)``
REQUIRED_HEADER_VALUES: tuple[str, ...] = (
    "order_ref", "order_ts", "customer_ref", "currency", "ship_to_name", "ship_to_line1", "ship_to_city",
    "ship_to_postal_code", "ship_to_country",
)
NORMALISE_OPTIONS: dict[str, Any] = {"line_no_given": True, "required_header": REQUIRED_HEADER_VALUES}

DUCKDB_MEMORY_LIMIT = "512MB"  # DuckDB's share; the whole ingest stays well under 2 GB RSS
BLOCK = 4 << 20  # streaming read size
HEADER_PROBE = 1 << 20  # the header record must end within the first MiB
MAX_LINE_BYTES = 2_000_000  # DuckDB's max_line_size default: a longer row is CSV_MALFORMED_ROW
RAW_TRUNCATED_AT = 10_000  # DuckDB keeps at most this many characters of a rejected row

_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NON_SPACE = re.compile(rb"[^ \t\r\n\x0b\x0c]")
_NEEDS_QUOTES = r'[",\r\n]'

_DUCKDB_ERRORS = {
    "TOO MANY COLUMNS": "CSV_EXTRA_FIELDS",
    "MISSING COLUMNS": "CSV_MISSING_FIELDS",
}
_MALFORMED_WHY = {
    "UNQUOTED VALUE": "a quoted field is not closed properly (an unterminated quote, or text after the "
    "closing quote); everything up to the next closing quote is part of this row",
    "LINE SIZE OVER MAXIMUM": f"the row is longer than {MAX_LINE_BYTES:,} bytes",
    "INVALID ENCODING": "the row contains bytes that are not valid UTF-8",
    "INVALID UNICODE": "the row contains bytes that are not valid UTF-8",
}


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def iter_csv_chunks(
    path: Path,
    source_file: str,
    work_dir: Path,
    chunk_rows: int = 250_000,
    *,
    memory_limit: str = DUCKDB_MEMORY_LIMIT,
) -> Iterator[ParseResult]:
    """Parse a template file (CSV, or Parquet by suffix / ``PAR1`` magic) into chunks of whole orders.

    Every chunk is a :class:`ParseResult` (channel ``csv``, record unit ``row``) whose ``rows`` hold
    complete orders only, so ``normalise(chunk, ..., **NORMALISE_OPTIONS)`` can run per chunk and the
    counts add up. File-level problems (``EMPTY_FILE``, ``BAD_ENCODING``, ``UNREADABLE_FILE``) are one
    chunk with one rejection. Structural rejections are each reported once (in the first chunk; the
    ``ORDER_INCOMPLETE`` rows of their orders in the order's chunk). At least one chunk is yielded.
    Temporary files live in a private directory under ``work_dir``, removed when the iterator ends.
    ``source_file`` is the name the file was received under (a ``.parquet`` name selects Parquet too).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="csv_template_", dir=work_dir))
    try:
        yield from _iter(Path(path), source_file, tmp, max(1, int(chunk_rows)), memory_limit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_csv_bytes(
    data: bytes, source_file: str, work_dir: Path, *, chunk_rows: int = 250_000
) -> ParseResult:
    """Convenience for small inputs: write ``data`` to ``work_dir`` and concatenate all chunks."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".parquet" if source_file.lower().endswith(".parquet") else ".csv"
    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=suffix, delete=False) as f:
        f.write(data)
        tmp = Path(f.name)
    try:
        chunks = list(iter_csv_chunks(tmp, source_file, work_dir, chunk_rows))
    finally:
        tmp.unlink(missing_ok=True)
    extras = dict(chunks[0].extras)
    extras.pop("chunk", None)
    extras["chunks"] = len(chunks)
    return ParseResult(
        channel=CHANNEL,
        record_unit=RECORD_UNIT,
        rows=pl.concat([c.rows for c in chunks]),
        rejected=[r for c in chunks for r in c.rejected],
        encoding=chunks[0].encoding,
        extras=extras,
    )


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------
@dataclass
class _Source:
    """What the preparation pass learnt about the file."""

    format: str  # "csv" | "parquet"
    path: Path  # the file DuckDB reads (a link to the input, or the UTF-8/LF rewrite)
    encoding: str | None = None
    header: list[str] = field(default_factory=list)  # column names as written
    types: list[str] = field(default_factory=list)  # parquet: DuckDB column types
    lead_lines: int = 0  # blank lines before the header
    header_lines: int = 1  # physical lines of the header record
    newlines: int = 0
    ends_with_newline: bool = True
    blank_lines: list[int] = field(default_factory=list)  # physical numbers of blank lines outside quotes
    notes: dict[str, Any] = field(default_factory=dict)


class _FileProblem(Exception):
    def __init__(self, reason_code: str, message: str, source: _Source | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.source = source


def _iter(path: Path, source_file: str, tmp: Path, chunk_rows: int, memory_limit: str) -> Iterator[ParseResult]:
    src: _Source | None = None
    try:
        src = _prepare(path, tmp, parquet_name=source_file.lower().endswith(".parquet"))
        cols: _Columns
        if src.format == "parquet":
            _read_parquet_schema(src)
            cols = _Columns(src.header)
            stage = tmp / "stage.parquet"
            with _duckdb(tmp, memory_limit) as con:
                _stage_parquet(con, src, stage)
            meta = _row_meta(stage, cols, is_parquet=True)
            meta = meta.with_columns(
                line=pl.lit(None, pl.Int64), ordinal=pl.col("rid").cast(pl.Int64) + 1
            ).drop("span")
            rej = None
            exact = True
        else:
            cols = _Columns(src.header)
            stage, meta, rej, exact = _read_csv(src, cols, tmp, memory_limit, parallel=True)
            if not exact:
                # not every line is accounted for: retry with DuckDB's sequential reader (a quote left
                # open over a parallel worker's buffer boundary); keep it only if it accounts better
                seq = _read_csv(src, cols, tmp, memory_limit, parallel=False)
                if seq[3]:
                    stage.unlink(missing_ok=True)
                    stage, meta, rej, exact = seq
                    src.notes["sequential_read"] = True
                else:
                    seq[0].unlink(missing_ok=True)
    except _FileProblem as e:
        yield _file_result(e.reason_code, e.message, e.source or src)
        return
    except (OSError, duckdb.Error) as e:
        yield _file_result("UNREADABLE_FILE", f"the file could not be read: {_short(e)}", src)
        return

    extras = _extras(src, cols)
    extras["line_numbers_exact"] = exact
    structural: list[Rejection] = []
    poisoned: dict[str, str] = {}
    if rej is not None:
        structural, poisoned = _structural_rejections(rej, cols)
        blank_after_header = sum(1 for o in src.blank_lines if o > src.lead_lines + src.header_lines)
        extras["blank_lines"] = (
            src.lead_lines + blank_after_header + int(meta["blank"].sum()) + rej.filter(pl.col("blank")).height
        )
    else:
        extras["blank_lines"] = 0
    meta = meta.filter(~pl.col("blank")).drop("blank")
    extras["data_rows"] = meta.height + len(structural)

    chunks = _assign_chunks(meta, chunk_rows)
    n_chunks = int(chunks["chunk"].max()) + 1 if chunks.height else 1
    extras["chunks"] = n_chunks
    loaders = _chunk_frames(stage, chunks, n_chunks, chunk_rows, tmp, memory_limit, extras)
    for i, load in enumerate(loaders):
        rows, rejected = _chunk_rows(load(), cols, src.format, poisoned)  # nothing else kept while yielded
        if i == 0:
            rejected = structural + rejected
        yield ParseResult(
            channel=CHANNEL,
            record_unit=RECORD_UNIT,
            rows=rows,
            rejected=rejected,
            encoding=src.encoding,
            extras={**extras, "chunk": i},
        )


def _read_csv(
    src: _Source, cols: _Columns, tmp: Path, memory_limit: str, *, parallel: bool
) -> tuple[Path, pl.DataFrame, pl.DataFrame, bool]:
    """Stage the CSV rows; return (stage file, row metadata with line/ordinal, rejects, exact)."""
    stage = tmp / ("stage.parquet" if parallel else "stage_seq.parquet")
    with _duckdb(tmp, memory_limit) as con:
        rejects = _stage_csv(con, src, stage, parallel=parallel)
    meta = _row_meta(stage, cols, is_parquet=False)
    rej = _prepare_rejects(rejects, src, cols)
    line, ordinal, rej, exact, last_line = _layout(meta, rej, src)
    meta = meta.with_columns(line=line, ordinal=ordinal).drop("span")
    total_lines = src.newlines + (0 if src.ends_with_newline else 1)
    if not parallel and exact and last_line < total_lines:
        # DuckDB's sequential reader drops a record whose quote is still open at the end of the file
        tail = _open_quote_tail(src.path, last_line)
        if tail is not None:
            n_before = int((~meta["blank"]).sum()) + int((~rej["blank"]).sum())
            rej = pl.concat([rej, pl.DataFrame(
                [{"line": None, "byte_pos": None, "raw": tail[0], "span": total_lines - last_line,
                  "blank": False, "reason": "CSV_MALFORMED_ROW", "why": _MALFORMED_WHY["UNQUOTED VALUE"],
                  "truncated": tail[1], "phys_line": last_line + 1, "ordinal": n_before + 1}],
                schema=rej.schema,
            )])
            last_line = total_lines
    return stage, meta, rej, exact and last_line == total_lines


def _open_quote_tail(path: Path, last_line: int) -> tuple[str, bool] | None:
    """The text after physical line ``last_line`` when it holds an odd number of quotes (a quoted field
    left open to the end of the file): (raw text, truncated?). None otherwise."""
    seen = 0
    start = None
    pos = 0
    quotes = 0
    head = b""
    for b in _blocks(path):
        i = 0
        if start is None:
            n = b.count(b"\n")
            if seen + n < last_line:  # the tail starts in a later block
                seen += n
                pos += len(b)
                continue
            while seen < last_line:
                j = b.find(b"\n", i)
                if j < 0:
                    break
                seen += 1
                i = j + 1
            if seen < last_line:
                pos += len(b)
                continue
            start = pos + i
        part = b[i:]
        quotes += part.count(b'"')
        if len(head) < RAW_TRUNCATED_AT * 4:
            head += part[: RAW_TRUNCATED_AT * 4]
        pos += len(b)
    if start is None or quotes % 2 == 0:
        return None
    text = head.decode("utf-8", "replace")
    truncated = len(text) > RAW_TRUNCATED_AT
    text = text[:RAW_TRUNCATED_AT]
    return (text[:-1] if text.endswith("\n") else text), truncated


class _duckdb:
    """An in-memory DuckDB connection with bounded memory, spilling under ``tmp``."""

    def __init__(self, tmp: Path, memory_limit: str) -> None:
        self.tmp = tmp
        self.memory_limit = memory_limit

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        spill = self.tmp / "duckdb_spill"
        spill.mkdir(exist_ok=True)
        self.con = duckdb.connect(
            config={
                "memory_limit": self.memory_limit,
                "allocator_flush_threshold": "32MB",  # hand freed memory back early (lower peak RSS)
                "temp_directory": str(spill),
                "preserve_insertion_order": True,
            }
        )
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0][:300] if msg else type(e).__name__


def _sql_str(p: Path | str) -> str:
    return "'" + str(p).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------
# 1. Prepare: format, encoding, line endings, line scan, header
# ------------------------------------------------------------------------------------------------
def _blocks(path: Path, start: int = 0) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            b = f.read(BLOCK)
            if not b:
                return
            yield b


class _LineScan:
    """Counts lines and finds blank lines outside quoted fields, streaming over UTF-8/LF bytes.

    A blank line is an LF directly after an LF; it is inside a quoted field when an odd number of
    quote characters precede it (RFC 4180: quotes inside quoted fields are doubled).
    """

    def __init__(self) -> None:
        self.newlines = 0
        self.quotes = 0
        self.last = b""
        self.blank_lines: list[int] = []

    def feed(self, b: bytes) -> None:
        if not b:
            return
        hits = [0] if b[:1] == b"\n" and self.last == b"\n" else []
        p = b.find(b"\n\n")
        while p >= 0:  # b[p + 1] is an LF right after an LF: the line starting there is blank
            hits.append(p + 1)
            p = b.find(b"\n\n", p + 1)
        nl, q, prev = self.newlines, self.quotes, 0
        for h in hits:
            nl += b.count(b"\n", prev, h)
            q += b.count(b'"', prev, h)
            prev = h
            if q % 2 == 0:
                self.blank_lines.append(nl + 1)
        self.newlines += b.count(b"\n")
        self.quotes += b.count(b'"')
        self.last = b[-1:]


def _prepare(path: Path, tmp: Path, parquet_name: bool = False) -> _Source:
    size = path.stat().st_size
    if size == 0:
        raise _FileProblem("EMPTY_FILE", "the file is empty")
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 4))
        tail = f.read(4)
    if parquet_name or path.suffix.lower() == ".parquet" or (head == b"PAR1" and tail == b"PAR1" and size >= 12):
        if head != b"PAR1":
            raise _FileProblem(
                "UNREADABLE_FILE", "the file is named .parquet but is not a Parquet file (no PAR1 magic bytes)"
            )
        return _Source(format="parquet", path=_link(path, tmp / "input.parquet"))

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _finish_csv(_rewrite(path, tmp, "utf-16"), tmp)

    bom = head.startswith(codecs.BOM_UTF8)
    dec = codecs.getincrementaldecoder("utf-8")()
    utf8_error: str | None = None
    has_cr = non_space = False
    scan = _LineScan()
    offset = 0
    for b in _blocks(path):
        if utf8_error is None and not (b.isascii() and not dec.getstate()[0]):
            try:
                dec.decode(b)
            except UnicodeDecodeError as e:
                utf8_error = f"byte {offset + e.start} is invalid: {e.reason}"
        has_cr = has_cr or b"\r" in b
        if not non_space:
            non_space = _NON_SPACE.search(b[3:] if bom and offset == 0 else b) is not None
        scan.feed(b)
        offset += len(b)
    if utf8_error is None:
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError as e:
            utf8_error = f"the file ends inside a multi-byte character: {e.reason}"
    undefined_cp1252 = utf8_error is not None and any(_CP1252_UNDEFINED.search(b) for b in _blocks(path))
    if not non_space:
        raise _FileProblem("EMPTY_FILE", "the file contains only whitespace")
    if bom and utf8_error:
        raise _FileProblem("BAD_ENCODING", f"the file declares utf-8-sig (BOM) but {utf8_error}")
    if utf8_error is None:
        encoding = "utf-8-sig" if bom else "utf-8"
    else:
        encoding = "latin-1" if undefined_cp1252 else "cp1252"
    _check_text(path, encoding)
    if encoding in ("utf-8", "utf-8-sig") and not has_cr:
        src = _Source(format="csv", path=_link(path, tmp / "input.csv"), encoding=encoding)
        src.newlines, src.blank_lines = scan.newlines, scan.blank_lines
        src.ends_with_newline = scan.last == b"\n"
        return _finish_csv(src, tmp)
    return _finish_csv(_rewrite(path, tmp, encoding), tmp)


def _link(path: Path, target: Path) -> Path:
    """A name DuckDB can read safely (no glob characters, quotes or odd bytes in it)."""
    try:
        target.symlink_to(path.resolve())
    except OSError:
        shutil.copyfile(path, target)
    return target


def _bad_chars(text: str) -> int:
    return sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\r\n\x0c") or ch == "\ufffd")


def _check_text(path: Path, encoding: str) -> None:
    """decode_text's test, on the first 64 Ki characters: control characters mean 'not text'."""
    with open(path, "rb") as f:
        data = f.read(65536 * 4)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(data)[:65536]
    bad = _bad_chars(text)
    if bad:
        raise _FileProblem(
            "BAD_ENCODING",
            f"the content is not text ({bad} control/undecodable characters in the first 64 KiB, "
            f"read as {encoding}); expected UTF-8, UTF-16 with BOM or Windows-1252",
        )


def _rewrite(path: Path, tmp: Path, encoding: str) -> _Source:
    """Stream the file into a UTF-8 copy with LF line breaks (CRLF and lone CR become LF)."""
    out_path = tmp / "input.utf8.csv"
    dec = codecs.getincrementaldecoder(encoding)()
    scan = _LineScan()
    carry_cr = False
    first = ""
    non_space = False
    with open(out_path, "wb") as out:

        def emit(text: str) -> None:
            nonlocal carry_cr, first, non_space
            if carry_cr:
                text = "\r" + text
                carry_cr = False
            if text.endswith("\r"):
                text, carry_cr = text[:-1], True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if len(first) < 65536:
                first += text[: 65536 - len(first)]
            non_space = non_space or bool(text.strip())
            b = text.encode("utf-8")
            out.write(b)
            scan.feed(b)

        offset = 0
        try:
            for b in _blocks(path):
                emit(dec.decode(b))
                offset += len(b)
            emit(dec.decode(b"", final=True))
        except UnicodeDecodeError as e:
            raise _FileProblem(
                "BAD_ENCODING", f"the file declares {encoding} (BOM) but byte {offset + e.start} is invalid: {e.reason}"
            ) from e
        if carry_cr:
            carry_cr = False
            emit("\n")
    first = first.lstrip("\ufeff")
    if not non_space or not first.strip():
        raise _FileProblem("EMPTY_FILE", "the file contains only whitespace")
    bad = _bad_chars(first)
    if bad:
        raise _FileProblem(
            "BAD_ENCODING",
            f"the content is not text ({bad} control/undecodable characters in the first 64 KiB, "
            f"read as {encoding}); expected UTF-8, UTF-16 with BOM or Windows-1252",
        )
    src = _Source(format="csv", path=out_path, encoding=encoding)
    src.newlines, src.blank_lines = scan.newlines, scan.blank_lines
    src.ends_with_newline = scan.last == b"\n"
    src.notes["rewritten_to_utf8_lf"] = True
    return src


def _finish_csv(src: _Source, tmp: Path) -> _Source:
    """Read the header record (the first non-blank one) with Python's csv module."""
    with open(src.path, "rb") as f:
        probe = f.read(HEADER_PROBE)
        truncated = bool(f.read(1))
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(probe)
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if truncated:
        lines = lines[:-1]  # the last one may be cut
    lead = 0
    while lead < len(lines) and not lines[lead].strip():
        lead += 1
    body = [ln + "\n" for ln in lines[lead:]]
    reader = csv.reader(iter(body), strict=False)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise _FileProblem("UNREADABLE_FILE", f"the header row cannot be read: {e}", src) from e
    if header is None or (truncated and reader.line_num >= len(body)):
        raise _FileProblem(
            "UNREADABLE_FILE",
            f"no complete header row in the first {HEADER_PROBE // 1024:,} KiB (an unterminated quote?)",
            src,
        )
    src.header = header
    src.lead_lines = lead
    src.header_lines = reader.line_num
    return src


# ------------------------------------------------------------------------------------------------
# 2. Header -> columns
# ------------------------------------------------------------------------------------------------
class _Columns:
    """The file's columns mapped to the template."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.names = [h.replace("\ufeff", "").strip().lower() for h in header]
        self.n = len(header)
        self.stage = [f"c{i}" for i in range(self.n)]
        where: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            where.setdefault(name, []).append(i)
        self.index = {name: idx[0] for name, idx in where.items() if name in TEMPLATE_COLUMNS}
        self.missing = [c for c in REQUIRED_COLUMNS if c not in where]
        self.duplicates = {c: idx for c, idx in where.items() if c in TEMPLATE_COLUMNS and len(idx) > 1}
        self.ignored = [header[i] for i, name in enumerate(self.names) if name not in TEMPLATE_COLUMNS]
        problems = []
        if self.missing:
            problems.append("the header lacks required column(s): " + ", ".join(self.missing))
            if self.n == 1 and any(s in header[0] for s in (";", "\t", "|")):
                problems[-1] += " (the file does not look comma-separated)"
        for c, idx in self.duplicates.items():
            problems.append(
                f"column {c} appears {len(idx)} times (columns " + ", ".join(str(i + 1) for i in idx)
                + "): the template does not say which one holds the value"
            )
        self.problem = "; ".join(problems) or None

    @property
    def ref_col(self) -> str | None:
        i = self.index.get("channel_order_ref")
        return None if i is None else self.stage[i]


def _extras(src: _Source, cols: _Columns) -> dict[str, Any]:
    extras: dict[str, Any] = {
        "format": src.format,
        "columns": list(src.header),
        "ignored_columns": cols.ignored,
        "missing_columns": cols.missing,
        "duplicate_columns": sorted(cols.duplicates),
    }
    if src.format == "csv":
        extras["header_lines"] = src.header_lines
        extras.update(src.notes)
    return extras


# ------------------------------------------------------------------------------------------------
# 3. Stage: rows to Parquet (file order), rejects from DuckDB
# ------------------------------------------------------------------------------------------------
def _stage_csv(con: duckdb.DuckDBPyConnection, src: _Source, stage: Path, *, parallel: bool = True) -> pl.DataFrame:
    """Copy the rows (text, file order) to ``stage``; return DuckDB's rejects, one row per record.

    Where a quote is never closed the two DuckDB readers differ: the parallel one reports the broken
    record but, when it is longer than a worker's buffer, resynchronises at the buffer boundary; the
    sequential one treats the rest of the file as the broken field (RFC 4180) but, measured on 1.5.5,
    silently drops such a record when it reaches the end of the file. The caller reads in parallel and
    falls back to sequential when the parallel result does not account for every line."""
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(src.header))) + "}"
    suffix = "" if parallel else "_seq"
    con.execute(
        # the only interpolated values are our own escaped paths and integers
        f"""COPY (SELECT * FROM read_csv({_sql_str(src.path)}, header = true, auto_detect = false,
                columns = {columns}, delim = ',', quote = '"', escape = '"', new_line = '\\n',
                skip = {src.lead_lines}, encoding = 'utf-8', parallel = {str(parallel).lower()},
                max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
                rejects_table = 'csv_rejects{suffix}', rejects_scan = 'csv_scans{suffix}'))
            TO {_sql_str(stage)} (FORMAT parquet, COMPRESSION zstd)"""  # noqa: S608
    )
    # one row per rejected record (DuckDB reports one error per missing column)
    return con.execute(
        f"""SELECT line::BIGINT AS line, min(line_byte_position)::BIGINT AS byte_pos,
                  list(DISTINCT error_type::VARCHAR) AS errors, first(csv_line) AS csv_line
           FROM csv_rejects{suffix} GROUP BY line ORDER BY line"""  # noqa: S608
    ).pl()


def _read_parquet_schema(src: _Source) -> None:
    import pyarrow.parquet as pq

    try:
        src.header = list(pq.ParquetFile(src.path).schema_arrow.names)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise _FileProblem("UNREADABLE_FILE", f"not a readable Parquet file: {_short(e)}", src) from e


def _parquet_text(ref: str, typ: str) -> str:
    """SQL turning a Parquet column into text exactly (decimals keep their digits, never via float)."""
    t = typ.upper()
    if t == "VARCHAR":
        return ref
    if t == "DATE":
        return f"strftime({ref}, '%Y-%m-%d')"
    if t in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"strftime(make_timestamp(epoch_us({ref})), '%Y-%m-%dT%H:%M:%S.%fZ')"
    if t.startswith("TIMESTAMP"):  # naive: the normaliser reads it as UTC
        return f"strftime({ref}::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%f')"
    return f"CAST({ref} AS VARCHAR)"  # DECIMAL keeps its scale; integers; BOOLEAN -> true/false


def _stage_parquet(con: duckdb.DuckDBPyConnection, src: _Source, stage: Path) -> None:
    rel = f"read_parquet({_sql_str(src.path)})"
    src.types = [r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]  # noqa: S608
    if len(src.types) != len(src.header):
        raise _FileProblem("UNREADABLE_FILE", "the Parquet schema could not be read consistently", src)
    select = ", ".join(f"{_parquet_text(f'#{i + 1}', t)} AS c{i}" for i, t in enumerate(src.types)) or "NULL AS c0"
    con.execute(f"COPY (SELECT {select} FROM {rel}) TO {_sql_str(stage)} (FORMAT parquet, COMPRESSION zstd)")  # noqa: S608


# ------------------------------------------------------------------------------------------------
# 4. Per-row metadata, line layout, chunks
# ------------------------------------------------------------------------------------------------
def _row_meta(stage: Path, cols: _Columns, is_parquet: bool) -> pl.DataFrame:
    """rid (file order), order key, physical lines spanned (1 + newlines in the fields), blank flag."""
    lf = pl.scan_parquet(stage).with_row_index("rid")
    c = [pl.col(s) for s in cols.stage]
    if cols.ref_col is not None:
        ref = pl.col(cols.ref_col).str.strip_chars()
        ref = pl.when(ref.is_null() | (ref == "")).then(None).otherwise(ref)
    else:
        ref = pl.lit(None, pl.String)
    # empty refs must not group together: a key no real reference can equal
    okey = pl.coalesce(ref, pl.lit("\x00row ") + pl.col("rid").cast(pl.String))
    if is_parquet:
        span = pl.lit(1, pl.Int64)
        blank = pl.lit(False)
    else:
        span = 1 + pl.sum_horizontal([x.str.count_matches("\n", literal=True).fill_null(0) for x in c]).cast(pl.Int32)
        blank = pl.all_horizontal([x.is_null() | (x.str.strip_chars() == "") for x in c])
    return lf.select("rid", okey.alias("okey"), span.alias("span"), blank.alias("blank")).collect(engine="streaming")


def _prepare_rejects(rej: pl.DataFrame, src: _Source, cols: _Columns) -> pl.DataFrame:
    """Clean DuckDB's rejects: raw text, physical span, reason, blank (whitespace-only) flag."""
    if rej.height == 0:
        return pl.DataFrame(
            schema={"line": pl.Int64, "byte_pos": pl.Int64, "raw": pl.String, "span": pl.Int64,
                    "blank": pl.Boolean, "reason": pl.String, "why": pl.String, "truncated": pl.Boolean}
        )
    out = []
    for line, byte_pos, errors, csv_line in rej.iter_rows():
        text = (csv_line or "").lstrip("\n")  # DuckDB includes the blank lines before the row
        truncated = len(csv_line or "") >= RAW_TRUNCATED_AT
        raw = text[:-1] if text.endswith("\n") else text
        if truncated:
            span = _span_from_file(src.path, byte_pos, text)
        else:
            span = raw.count("\n") + 1
        errors = [e for e in errors if e]
        malformed = [e for e in errors if e not in _DUCKDB_ERRORS]
        if malformed:
            reason, why = "CSV_MALFORMED_ROW", _MALFORMED_WHY.get(malformed[0], malformed[0].lower())
        elif "TOO MANY COLUMNS" in errors:
            reason, why = "CSV_EXTRA_FIELDS", None
        else:
            reason, why = "CSV_MISSING_FIELDS", None
        blank = not raw.strip() and not malformed
        out.append((line, byte_pos, raw, span, blank, reason, why, truncated))
    return pl.DataFrame(
        out,
        schema={"line": pl.Int64, "byte_pos": pl.Int64, "raw": pl.String, "span": pl.Int64,
                "blank": pl.Boolean, "reason": pl.String, "why": pl.String, "truncated": pl.Boolean},
        orient="row",
    )


def _span_from_file(path: Path, byte_pos: int | None, text: str) -> int:
    """Physical lines of a rejected record whose text DuckDB truncated: scan the file from its start
    to the first line break outside quotes (RFC 4180), or to the end of the file."""
    if byte_pos is None:
        return 1
    probe = text[:200].encode("utf-8", "ignore")
    with open(path, "rb") as f:
        lo = max(0, byte_pos - 4096)
        f.seek(lo)
        window = f.read(8192 + len(probe))
        hit = window.find(probe, max(0, byte_pos - 1 - lo - 64)) if probe else -1
        start = lo + hit if hit >= 0 else max(0, byte_pos - 1)
        f.seek(start)
        quotes = lines = 0
        last = b""
        while True:
            b = f.read(BLOCK)
            if not b:  # open to the end of the file; a final line break ends the last line
                return lines if last == b"\n" else lines + 1
            last = b[-1:]
            pos = 0
            while True:
                nl = b.find(b"\n", pos)
                if nl < 0:
                    quotes += b.count(b'"', pos)
                    break
                quotes += b.count(b'"', pos, nl)
                if quotes % 2 == 0:
                    return lines + 1
                lines += 1
                pos = nl + 1


def _layout(
    meta: pl.DataFrame, rej: pl.DataFrame, src: _Source
) -> tuple[pl.Series, pl.Series, pl.DataFrame, bool, int]:
    """Physical line and data-row ordinal of every parsed row and every rejected record.

    After the header, the file is a sequence of *units*: parsed rows (known only by order and by how
    many lines they span: 1 + newlines inside their fields), rejected records (DuckDB gives their
    logical number: records and blank lines before them count one each) and blank lines (known by
    physical line, from the preparation scan). The few rejects and blank lines are placed by a merge;
    parsed rows fill the gaps, so their lines come from cumulative sums (vectorised)."""
    n = meta.height
    base = src.lead_lines + src.header_lines + 1  # physical line of the first unit
    first_logical = src.lead_lines + 2  # DuckDB's line number of the first unit
    extra = (meta["span"] - 1).cast(pl.Int64)
    pref = (pl.int_range(n, eager=True, dtype=pl.Int64) + extra.cum_sum() - extra).alias("pref")
    bl = meta["blank"].cast(pl.Int64)
    bpref = bl.cum_sum() - bl
    pref_total = n + int(extra.sum() or 0)
    b_total = int(bl.sum() or 0)

    def P(k: int) -> int:
        return pref_total if k >= n else int(pref[k])

    def Bp(k: int) -> int:
        return b_total if k >= n else int(bpref[k])

    blanks = [o for o in src.blank_lines if o >= base]
    r_logical = rej["line"].to_list()
    r_span = rej["span"].to_list()
    r_blank = rej["blank"].to_list()
    r_line: list[int] = []
    r_ord: list[int | None] = []
    exact = True
    a = units = phys_extra = ord_extra = 0
    seg_start, seg_phys, seg_ord = [0], [0], [0]
    ri = bi = 0
    while ri < len(r_logical) or bi < len(blanks):
        take_blank = False
        if bi < len(blanks):
            target = blanks[bi] - base - phys_extra
            a_j = max(a, int(pref.search_sorted(target, side="left"))) if target <= pref_total else n
            unit_j = units + (a_j - a)
            take_blank = ri >= len(r_logical) or unit_j < r_logical[ri] - first_logical
        if take_blank:
            bi += 1
            if P(a_j) != target:
                exact = False  # parity misread (a stray quote): skip this blank line
                continue
            a, units, phys_extra = a_j, unit_j + 1, phys_extra + 1
        else:
            unit_r = r_logical[ri] - first_logical
            a_r = a + (unit_r - units)
            if not a <= a_r <= n:
                exact = False
                a_r = min(max(a_r, a), n)
            r_line.append(base + P(a_r) + phys_extra)
            r_ord.append(None if r_blank[ri] else a_r - Bp(a_r) + ord_extra + 1)
            units = units + (a_r - a) + 1
            a = a_r
            phys_extra += r_span[ri]
            ord_extra += 0 if r_blank[ri] else 1
            ri += 1
        seg_start.append(a)
        seg_phys.append(phys_extra)
        seg_ord.append(ord_extra)
    last_line = base + pref_total + phys_extra - 1  # the last physical line accounted for

    # each parsed row takes the offsets of the last event before it
    seg_k = pl.Series(seg_start, dtype=pl.Int64)
    idx = seg_k.search_sorted(pl.int_range(n, eager=True, dtype=pl.Int64), side="right") - 1
    line = (base + pref + pl.Series(seg_phys, dtype=pl.Int64).gather(idx)).alias("line")
    ordinal = (pl.int_range(1, n + 1, eager=True, dtype=pl.Int64) - bpref + pl.Series(seg_ord, dtype=pl.Int64).gather(idx))
    rej = rej.with_columns(
        pl.Series("phys_line", r_line, dtype=pl.Int64), pl.Series("ordinal", r_ord, dtype=pl.Int64)
    )
    return line, ordinal.alias("ordinal"), rej, exact, last_line


def _structural_rejections(rej: pl.DataFrame, cols: _Columns) -> tuple[list[Rejection], dict[str, str]]:
    """Rejections for DuckDB's rejects, and the orders they poison (order ref -> why)."""
    out: list[Rejection] = []
    poisoned: dict[str, str] = {}
    ref_i = cols.index.get("channel_order_ref")
    for r in rej.filter(~pl.col("blank")).iter_rows(named=True):
        fields = _split(r["raw"])
        ref = fields[ref_i].strip() if ref_i is not None and ref_i < len(fields) else ""
        if r["reason"] == "CSV_EXTRA_FIELDS":
            msg = f"the row has {len(fields)} fields; the header has {cols.n}"
        elif r["reason"] == "CSV_MISSING_FIELDS":
            msg = f"the row has {len(fields)} field{'s' if len(fields) != 1 else ''}; the header has {cols.n}"
        else:
            msg = f"the row cannot be split into fields: {r['why']}"
        if r["truncated"]:
            msg += f" (raw text truncated to {RAW_TRUNCATED_AT:,} characters)"
        rid, loc = f"row {r['ordinal']}", f"line {r['phys_line']}"
        out.append(Rejection(rid, RECORD_KIND, loc, r["reason"], msg, raw=r["raw"], order_ref=ref or None))
        if ref and ref not in poisoned:
            poisoned[ref] = f"{rid} ({loc}) could not be read ({r['reason']})"
    return out, poisoned


def _split(raw: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(raw), strict=False), [])
    except csv.Error:
        return raw.split(",")


def _assign_chunks(meta: pl.DataFrame, chunk_rows: int) -> pl.DataFrame:
    """Whole orders to chunks of about ``chunk_rows`` rows, in order of first appearance."""
    meta = meta.with_columns(pos=pl.int_range(pl.len(), dtype=pl.Int64))
    g = (
        meta.group_by("okey")
        .agg(first=pl.col("pos").min(), n=pl.len())
        .sort("first")
        .with_columns(chunk=((pl.col("n").cum_sum() - pl.col("n")) // chunk_rows).cast(pl.Int64))
    )
    # pack: chunk numbers without gaps (a big order may have skipped some)
    g = g.with_columns(chunk=pl.col("chunk").rank("dense").cast(pl.Int64) - 1)
    return meta.join(g.select("okey", "chunk", "first"), on="okey", how="left", maintain_order="left")


def _chunk_frames(
    stage: Path, chunks: pl.DataFrame, n_chunks: int, chunk_rows: int, tmp: Path, memory_limit: str,
    extras: dict[str, Any],
) -> Iterator[Callable[[], pl.DataFrame | None]]:
    """Per chunk, a loader of its staged rows (in file order) joined to their metadata.

    Each chunk has a *home* range of the file: from the first row of its first order to the first row
    of the next chunk's first order. Rows outside their chunk's home range are *strays* (an order's
    rows not adjacent, e.g. a line added at the end of the file). Without strays (the usual case) a
    chunk is a slice of the staged file; a few strays (at most ``chunk_rows``) are fetched in one pass
    and kept in memory; with more, DuckDB sorts the staged rows by (chunk, row) out-of-core."""
    if chunks.height == 0:
        yield lambda: None
        return
    starts = chunks.group_by("chunk").agg(pl.col("first").min()).sort("chunk")["first"]
    home = starts.search_sorted(chunks["pos"], side="right").cast(pl.Int64) - 1
    stray = chunks["chunk"] != home
    n_strays = int(stray.sum())
    extras["rows_out_of_place"] = n_strays
    rids = chunks["rid"].cast(pl.Int64)

    if n_strays > chunk_rows:
        extras["sorted_out_of_core"] = True
        sorted_path = tmp / "sorted.parquet"
        with _duckdb(tmp, memory_limit) as con:
            _sort_stage(con, stage, chunks, sorted_path)
        stage.unlink(missing_ok=True)
        chunks = chunks.sort("chunk", "rid")
        offsets = chunks.with_row_index("off").group_by("chunk").agg(pl.col("off").min(), n=pl.len()).sort("chunk")

        def load_sorted(off: int, n: int) -> pl.DataFrame:
            data = pl.scan_parquet(sorted_path).slice(off, n).collect()
            m = chunks.slice(off, n)
            if not (data["rid"].cast(pl.Int64) == m["rid"].cast(pl.Int64)).all():  # pragma: no cover
                raise RuntimeError("sorted chunk does not line up with its metadata")
            return data.drop("rid", "chunk").hstack(m)

        for off, n in zip(offsets["off"].to_list(), offsets["n"].to_list(), strict=True):
            yield lambda off=off, n=n: load_sorted(off, n)
        return

    strays = None
    if n_strays:
        strays = (
            pl.scan_parquet(stage).with_row_index("rid")
            .filter(pl.col("rid").is_in(rids.filter(stray).cast(pl.UInt32).implode()))
            .collect()
        )
    stage_rows = pl.scan_parquet(stage).select(pl.len()).collect().item()
    bounds = [int(rids[int(p)]) for p in starts] + [stage_rows]

    def load(i: int) -> pl.DataFrame:
        m = chunks.filter(pl.col("chunk") == i)
        lo, hi = bounds[i], bounds[i + 1]
        data = (
            pl.scan_parquet(stage).slice(lo, hi - lo).collect()
            .with_row_index("rid", offset=lo)
            .join(m, on="rid", how="inner", maintain_order="left")  # drops blank rows, other chunks' strays
        )
        if strays is not None:
            mine = strays.join(m, on="rid", how="inner")
            if mine.height:
                data = pl.concat([data, mine]).sort("rid")
        return data

    for i in range(n_chunks):
        yield lambda i=i: load(i)


def _sort_stage(con: duckdb.DuckDBPyConnection, stage: Path, chunks: pl.DataFrame, out: Path) -> None:
    keys = chunks.select(pl.col("rid").cast(pl.Int64), "chunk").to_arrow()
    con.register("row_chunk", keys)
    con.execute(
        f"""COPY (SELECT s.* EXCLUDE (file_row_number), k.rid, k.chunk
                  FROM read_parquet({_sql_str(stage)}, file_row_number = true) s
                  JOIN row_chunk k ON s.file_row_number = k.rid
                  ORDER BY k.chunk, k.rid)
            TO {_sql_str(out)} (FORMAT parquet, COMPRESSION zstd)"""  # noqa: S608
    )


# ------------------------------------------------------------------------------------------------
# 5. Chunk -> raw rows
# ------------------------------------------------------------------------------------------------
def _csv_field(e: pl.Expr) -> pl.Expr:
    """One field re-serialised with RFC 4180 quoting."""
    return (
        pl.when(e.str.contains(_NEEDS_QUOTES))
        .then(pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(e)
        .fill_null("")
    )


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def _chunk_rows(
    data: pl.DataFrame | None, cols: _Columns, fmt: str, poisoned: dict[str, str]
) -> tuple[pl.DataFrame, list[Rejection]]:
    if data is None or data.height == 0:
        return _empty_rows(), []
    record_id = pl.lit("row ") + pl.col("ordinal").cast(pl.String)
    if fmt == "csv":
        location = pl.lit("line ") + pl.col("line").cast(pl.String)
    else:
        location = pl.lit("row ") + (pl.col("rid") + 1).cast(pl.String)
    ref = pl.col(cols.ref_col) if cols.ref_col else pl.lit(None, pl.String)
    fields = {RAW_FIELD[name]: pl.col(cols.stage[i]) for name, i in cols.index.items()}
    df = data.select(
        record_id.alias("record_id"),
        pl.lit(RECORD_KIND).alias("record_kind"),
        location.alias("record_location"),
        pl.col("okey").alias("order_key"),
        location.alias("location"),
        (pl.concat_str([_csv_field(pl.col(s)) for s in cols.stage], separator=",") if cols.stage
         else pl.lit("")).alias("raw"),
        *[fields.get(c, pl.lit(None, pl.String)).alias(c) for c in RAW_COLUMNS[6:]],
        ref.str.strip_chars().alias("_ref"),
    )
    assert df.columns[:-1] == RAW_COLUMNS

    rejected: list[Rejection] = []
    if cols.problem:
        msg = f"the row is not read: {cols.problem}"
        rejected = [
            Rejection(rid, RECORD_KIND, loc, "CSV_MISSING_COLUMN", msg, raw=raw, order_ref=r or None)
            for rid, loc, raw, r in zip(df["record_id"], df["location"], df["raw"], df["_ref"], strict=True)
        ]
        return _empty_rows(), rejected
    if poisoned:
        hit = pl.col("order_key").is_in(list(poisoned))
        bad = df.filter(hit)
        df = df.filter(~hit)
        rejected = [
            Rejection(
                rid, RECORD_KIND, loc, "ORDER_INCOMPLETE",
                f"order {key} not captured: another of its rows was rejected: {poisoned[key]}",
                raw=raw, order_ref=r or None,
            )
            for rid, loc, raw, key, r in zip(
                bad["record_id"], bad["location"], bad["raw"], bad["order_key"], bad["_ref"], strict=True
            )
        ]
    return df.drop("_ref"), rejected


def _file_result(code: str, message: str, src: _Source | None) -> ParseResult:
    extras: dict[str, Any] = {"format": src.format if src else "csv", "chunk": 0, "chunks": 1, "data_rows": 0}
    return ParseResult(
        channel=CHANNEL,
        record_unit=RECORD_UNIT,
        rows=_empty_rows(),
        rejected=[Rejection("file", "file", "file", code, message)],
        encoding=src.encoding if src else None,
        extras=extras,
    )


__all__ = [
    "CHANNEL",
    "NORMALISE_OPTIONS",
    "REQUIRED_HEADER_VALUES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TEMPLATE_COLUMNS",
    "iter_csv_chunks",
    "parse_csv_bytes",
]
