"""The template channel's entry points: :func:`iter_csv_chunks` (streaming, chunks of whole orders) and
:func:`parse_csv_bytes` (small inputs), driving prepare -> stage -> layout -> chunks -> rows."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from som_pipeline.ingest.common import ParseResult, Rejection
from som_pipeline.ingest.csv_template.chunks import assign_chunks, chunk_frames
from som_pipeline.ingest.csv_template.columns import CHANNEL, RECORD_UNIT, Columns
from som_pipeline.ingest.csv_template.layout import layout, row_meta
from som_pipeline.ingest.csv_template.prepare import FileProblem, Source, prepare, short
from som_pipeline.ingest.csv_template.rows import file_result, rows_and_rejections, structural_rejections
from som_pipeline.ingest.csv_template.stage import (
    DUCKDB_MEMORY_LIMIT,
    MALFORMED_WHY,
    duckdb_connection,
    open_quote_tail,
    prepare_rejects,
    read_parquet_schema,
    stage_csv,
    stage_parquet,
)


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
_Staged = tuple[Columns, Path, pl.DataFrame, pl.DataFrame | None, bool]  # cols, stage, meta, rejects, exact


def _iter(path: Path, source_file: str, tmp: Path, chunk_rows: int, memory_limit: str) -> Iterator[ParseResult]:
    src: Source | None = None
    try:
        src = prepare(path, tmp, parquet_name=source_file.lower().endswith(".parquet"))
        stage_file = _stage_parquet_file if src.format == "parquet" else _stage_csv_file
        cols, stage, meta, rej, exact = stage_file(src, tmp, memory_limit)
    except FileProblem as e:
        yield file_result(e.reason_code, e.message, e.source or src)
        return
    except (OSError, duckdb.Error) as e:
        yield file_result("UNREADABLE_FILE", f"the file could not be read: {short(e)}", src)
        return

    extras = _extras(src, cols)
    extras["line_numbers_exact"] = exact
    structural: list[Rejection] = []
    poisoned: dict[str, str] = {}
    if rej is not None:
        structural, poisoned = structural_rejections(rej, cols)
    extras["blank_lines"] = _blank_lines(src, meta, rej)
    meta = meta.filter(~pl.col("blank")).drop("blank")
    extras["data_rows"] = meta.height + len(structural)

    chunks = assign_chunks(meta, chunk_rows)
    n_chunks = int(chunks["chunk"].max()) + 1 if chunks.height else 1
    extras["chunks"] = n_chunks
    loaders = chunk_frames(stage, chunks, n_chunks, chunk_rows, tmp, memory_limit, extras)
    for i, load in enumerate(loaders):
        rows, rejected = rows_and_rejections(load(), cols, src.format, poisoned)  # nothing else kept while yielded
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


def _stage_parquet_file(src: Source, tmp: Path, memory_limit: str) -> _Staged:
    """Parquet: staged as text; one physical 'line' per row, no rejects, numbering exact."""
    read_parquet_schema(src)
    cols = Columns(src.header)
    stage = tmp / "stage.parquet"
    with duckdb_connection(tmp, memory_limit) as con:
        stage_parquet(con, src, stage)
    meta = row_meta(stage, cols, is_parquet=True)
    meta = meta.with_columns(line=pl.lit(None, pl.Int64), ordinal=pl.col("rid").cast(pl.Int64) + 1).drop("span")
    return cols, stage, meta, None, True


def _stage_csv_file(src: Source, tmp: Path, memory_limit: str) -> _Staged:
    """CSV: DuckDB's parallel reader; when it does not account for every line, the sequential one."""
    cols = Columns(src.header)
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
    return cols, stage, meta, rej, exact


def _read_csv(
    src: Source, cols: Columns, tmp: Path, memory_limit: str, *, parallel: bool
) -> tuple[Path, pl.DataFrame, pl.DataFrame, bool]:
    """Stage the CSV rows; return (stage file, row metadata with line/ordinal, rejects, exact)."""
    stage = tmp / ("stage.parquet" if parallel else "stage_seq.parquet")
    with duckdb_connection(tmp, memory_limit) as con:
        rejects = stage_csv(con, src, stage, parallel=parallel)
    meta = row_meta(stage, cols, is_parquet=False)
    rej = prepare_rejects(rejects, src)
    line, ordinal, rej, exact, last_line = layout(meta, rej, src)
    meta = meta.with_columns(line=line, ordinal=ordinal).drop("span")
    total_lines = src.newlines + (0 if src.ends_with_newline else 1)
    if not parallel and exact and last_line < total_lines:
        # DuckDB's sequential reader drops a record whose quote is still open at the end of the file
        tail = open_quote_tail(src.path, last_line)
        if tail is not None:
            n_before = int((~meta["blank"]).sum()) + int((~rej["blank"]).sum())
            rej = pl.concat([rej, pl.DataFrame(
                [{"line": None, "byte_pos": None, "raw": tail[0], "span": total_lines - last_line,
                  "blank": False, "reason": "CSV_MALFORMED_ROW", "why": MALFORMED_WHY["UNQUOTED VALUE"],
                  "truncated": tail[1], "phys_line": last_line + 1, "ordinal": n_before + 1}],
                schema=rej.schema,
            )])
            last_line = total_lines
    return stage, meta, rej, exact and last_line == total_lines


def _blank_lines(src: Source, meta: pl.DataFrame, rej: pl.DataFrame | None) -> int:
    """Blank lines in the file: before the header, after it (outside quotes), all-empty rows and rejects."""
    if rej is None:
        return 0
    blank_after_header = sum(1 for o in src.blank_lines if o > src.lead_lines + src.header_lines)
    return src.lead_lines + blank_after_header + int(meta["blank"].sum()) + rej.filter(pl.col("blank")).height


def _extras(src: Source, cols: Columns) -> dict[str, Any]:
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
