"""Stable content hashes (SHA-256), vectorised.

Polars' own ``hash`` is not stable across versions, so identity hashes (content_hash, quarantine_id)
are SHA-256, computed in bulk by an in-memory DuckDB (no warehouse connection involved).
"""

from __future__ import annotations

import hashlib
import threading

import duckdb
import polars as pl

from som_pipeline.warehouse import arrow_view


def sha256_text(text: str | bytes) -> str:
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed (a 250 MB CSV is never held in memory for hashing)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_SMALL = 4096
_local = threading.local()


def _con() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def sha256_series(expr: pl.Expr, frame: pl.DataFrame) -> pl.Series:
    """SHA-256 hex digest of ``expr`` evaluated on ``frame``, one per row, in row order.

    Small frames (one file's records) use hashlib directly; large ones (CSV chunks) are hashed in bulk
    by an in-memory DuckDB (one cached connection per thread).
    """
    s = frame.select(expr.alias("s"))
    if s.height == 0:
        return pl.Series("h", [], dtype=pl.String)
    if s.height <= _SMALL:
        return pl.Series("h", [hashlib.sha256(v.encode("utf-8")).hexdigest() if v is not None else None
                               for v in s["s"].to_list()], dtype=pl.String)
    con = _con()
    con.register("_sha_t", arrow_view(s.with_row_index("i")))
    try:
        out = con.execute("SELECT sha256(s) AS h FROM _sha_t ORDER BY i").pl()
    finally:
        con.unregister("_sha_t")
    return out["h"]
