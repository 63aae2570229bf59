"""Step 3, stage: DuckDB copies the rows (all text, file order) to a compressed Parquet file.

CSV: DuckDB's CSV reader (``all varchar``, RFC 4180 quoting, ``store_rejects``); ragged/malformed rows land
in DuckDB's rejects table, cleaned here into one row per rejected record (raw text, physical lines
spanned, reason). Parquet input is staged the same way, every column cast to text exactly.
DuckDB runs in memory with a bounded share (``memory_limit``), spilling under the work directory.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from som_pipeline.ingest.csv_template.prepare import BLOCK, FileProblem, Source, blocks, short

DUCKDB_MEMORY_LIMIT = "512MB"  # DuckDB's share; the whole ingest stays well under 2 GB RSS
MAX_LINE_BYTES = 2_000_000  # DuckDB's max_line_size default: a longer row is CSV_MALFORMED_ROW
RAW_TRUNCATED_AT = 10_000  # DuckDB keeps at most this many characters of a rejected row

_DUCKDB_ERRORS = {
    "TOO MANY COLUMNS": "CSV_EXTRA_FIELDS",
    "MISSING COLUMNS": "CSV_MISSING_FIELDS",
}
MALFORMED_WHY = {
    "UNQUOTED VALUE": "a quoted field is not closed properly (an unterminated quote, or text after the "
    "closing quote); everything up to the next closing quote is part of this row",
    "LINE SIZE OVER MAXIMUM": f"the row is longer than {MAX_LINE_BYTES:,} bytes",
    "INVALID ENCODING": "the row contains bytes that are not valid UTF-8",
    "INVALID UNICODE": "the row contains bytes that are not valid UTF-8",
}
REJECTS_SCHEMA = {"line": pl.Int64, "byte_pos": pl.Int64, "raw": pl.String, "span": pl.Int64,
                  "blank": pl.Boolean, "reason": pl.String, "why": pl.String, "truncated": pl.Boolean}


class duckdb_connection:
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


def sql_str(p: Path | str) -> str:
    return "'" + str(p).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------------
def stage_csv(con: duckdb.DuckDBPyConnection, src: Source, stage: Path, *, parallel: bool = True) -> pl.DataFrame:
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
        f"""COPY (SELECT * FROM read_csv({sql_str(src.path)}, header = true, auto_detect = false,
                columns = {columns}, delim = ',', quote = '"', escape = '"', new_line = '\\n',
                skip = {src.lead_lines}, encoding = 'utf-8', parallel = {str(parallel).lower()},
                max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
                rejects_table = 'csv_rejects{suffix}', rejects_scan = 'csv_scans{suffix}'))
            TO {sql_str(stage)} (FORMAT parquet, COMPRESSION zstd)"""  # noqa: S608
    )
    # one row per rejected record (DuckDB reports one error per missing column)
    return con.execute(
        f"""SELECT line::BIGINT AS line, min(line_byte_position)::BIGINT AS byte_pos,
                  list(DISTINCT error_type::VARCHAR) AS errors, first(csv_line) AS csv_line
           FROM csv_rejects{suffix} GROUP BY line ORDER BY line"""  # noqa: S608
    ).pl()


def prepare_rejects(rej: pl.DataFrame, src: Source) -> pl.DataFrame:
    """Clean DuckDB's rejects: raw text, physical span, reason, blank (whitespace-only) flag."""
    if rej.height == 0:
        return pl.DataFrame(schema=REJECTS_SCHEMA)
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
            reason, why = "CSV_MALFORMED_ROW", MALFORMED_WHY.get(malformed[0], malformed[0].lower())
        elif "TOO MANY COLUMNS" in errors:
            reason, why = "CSV_EXTRA_FIELDS", None
        else:
            reason, why = "CSV_MISSING_FIELDS", None
        blank = not raw.strip() and not malformed
        out.append((line, byte_pos, raw, span, blank, reason, why, truncated))
    return pl.DataFrame(out, schema=REJECTS_SCHEMA, orient="row")


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


def open_quote_tail(path: Path, last_line: int) -> tuple[str, bool] | None:
    """The text after physical line ``last_line`` when it holds an odd number of quotes (a quoted field
    left open to the end of the file): (raw text, truncated?). None otherwise."""
    seen = 0
    start = None
    pos = 0
    quotes = 0
    head = b""
    for b in blocks(path):
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


# ------------------------------------------------------------------------------------------------
# Parquet
# ------------------------------------------------------------------------------------------------
def read_parquet_schema(src: Source) -> None:
    import pyarrow.parquet as pq

    try:
        src.header = list(pq.ParquetFile(src.path).schema_arrow.names)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise FileProblem("UNREADABLE_FILE", f"not a readable Parquet file: {short(e)}", src) from e


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


def stage_parquet(con: duckdb.DuckDBPyConnection, src: Source, stage: Path) -> None:
    rel = f"read_parquet({sql_str(src.path)})"
    src.types = [r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]  # noqa: S608
    if len(src.types) != len(src.header):
        raise FileProblem("UNREADABLE_FILE", "the Parquet schema could not be read consistently", src)
    select = ", ".join(f"{_parquet_text(f'#{i + 1}', t)} AS c{i}" for i, t in enumerate(src.types)) or "NULL AS c0"
    con.execute(f"COPY (SELECT {select} FROM {rel}) TO {sql_str(stage)} (FORMAT parquet, COMPRESSION zstd)")  # noqa: S608
