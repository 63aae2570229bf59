"""Stable content hashes (SHA-256), vectorised.

Polars' own ``hash`` is not stable across versions, so identity hashes (content_hash, quarantine_id)
are SHA-256, computed in bulk by an in-memory DuckDB (no warehouse connection involved).
"""

from __future__ import annotations

import hashlib

import duckdb
import polars as pl


def sha256_text(text: str | bytes) -> str:
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed (a 250 MB CSV is never held in memory for hashing)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_series(expr: pl.Expr, frame: pl.DataFrame) -> pl.Series:
    """SHA-256 hex digest of ``expr`` evaluated on ``frame``, one per row, in row order."""
    s = frame.select(expr.alias("s"))
    if s.height == 0:
        return pl.Series("h", [], dtype=pl.String)
    con = duckdb.connect()
    try:
        con.register("t", s.with_row_index("i").to_arrow())
        out = con.execute("SELECT sha256(s) AS h FROM t ORDER BY i").pl()
    finally:
        con.close()
    return out["h"]
