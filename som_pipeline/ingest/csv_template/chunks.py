"""Step 4b, group: whole orders to chunks of about ``chunk_rows`` rows, and a loader per chunk.

A small per-row frame (order key, position) assigns whole orders to chunks in order of first
appearance. A chunk is a slice of the staged file plus the few rows of its orders found elsewhere
("strays", fetched in one pass); with more strays than ``chunk_rows``, DuckDB sorts by (chunk, row)
out-of-core (``memory_limit``, ``temp_directory`` under the work directory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from som_pipeline.ingest.csv_template.stage import duckdb_connection, sql_str

Loader = Callable[[], pl.DataFrame | None]


def assign_chunks(meta: pl.DataFrame, chunk_rows: int) -> pl.DataFrame:
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


def chunk_frames(
    stage: Path, chunks: pl.DataFrame, n_chunks: int, chunk_rows: int, tmp: Path, memory_limit: str,
    extras: dict[str, Any],
) -> Iterator[Loader]:
    """Per chunk, a loader of its staged rows (in file order) joined to their metadata.

    Each chunk has a *home* range of the file: from the first row of its first order to the first row
    of the next chunk's first order. Rows outside their chunk's home range are *strays* (an order's
    rows not adjacent, e.g. a line added at the end of the file). Without strays (the usual case) a
    chunk is a slice of the staged file; a few strays (at most ``chunk_rows``) are fetched in one pass
    and kept in memory; with more, DuckDB sorts the staged rows by (chunk, row) out-of-core.
    ``extras`` gets ``rows_out_of_place`` (and ``sorted_out_of_core``) before the first loader."""
    if chunks.height == 0:
        yield lambda: None
        return
    starts = chunks.group_by("chunk").agg(pl.col("first").min()).sort("chunk")["first"]
    home = starts.search_sorted(chunks["pos"], side="right").cast(pl.Int64) - 1
    stray = chunks["chunk"] != home
    n_strays = int(stray.sum())
    extras["rows_out_of_place"] = n_strays
    if n_strays > chunk_rows:
        extras["sorted_out_of_core"] = True
        yield from _sorted_loaders(stage, chunks, tmp, memory_limit)
    else:
        yield from _slice_loaders(stage, chunks, n_chunks, starts, stray if n_strays else None)


def _sorted_loaders(stage: Path, chunks: pl.DataFrame, tmp: Path, memory_limit: str) -> Iterator[Loader]:
    """Many strays: DuckDB writes the staged rows sorted by (chunk, row); each chunk is then one slice."""
    sorted_path = tmp / "sorted.parquet"
    with duckdb_connection(tmp, memory_limit) as con:
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


def _slice_loaders(
    stage: Path, chunks: pl.DataFrame, n_chunks: int, starts: pl.Series, stray: pl.Series | None
) -> Iterator[Loader]:
    """Each chunk is its home slice of the staged file, plus its strays (fetched once, kept in memory)."""
    rids = chunks["rid"].cast(pl.Int64)
    strays = None
    if stray is not None:
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
                  FROM read_parquet({sql_str(stage)}, file_row_number = true) s
                  JOIN row_chunk k ON s.file_row_number = k.rid
                  ORDER BY k.chunk, k.rid)
            TO {sql_str(out)} (FORMAT parquet, COMPRESSION zstd)"""  # noqa: S608
    )
