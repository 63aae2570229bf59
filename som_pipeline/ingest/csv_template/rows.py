"""Step 5, a chunk's staged rows -> raw rows (``common.RAW_COLUMNS``) and rejections: rows of orders that
lost a row to a structural rejection (``ORDER_INCOMPLETE``), every row when the header is unusable
(``CSV_MISSING_COLUMN``), DuckDB's rejects (``CSV_EXTRA_FIELDS`` / ``CSV_MISSING_FIELDS`` /
``CSV_MALFORMED_ROW``), and a file-level problem as one rejection."""

from __future__ import annotations

import csv
import io
from typing import Any

import polars as pl

from som_pipeline.ingest.common import RAW_COLUMNS, RAW_SCHEMA, ParseResult, Rejection
from som_pipeline.ingest.csv_template.columns import CHANNEL, RAW_FIELD, RECORD_KIND, RECORD_UNIT, Columns
from som_pipeline.ingest.csv_template.prepare import Source
from som_pipeline.ingest.csv_template.stage import RAW_TRUNCATED_AT

_NEEDS_QUOTES = r'[",\r\n]'


def rows_and_rejections(
    data: pl.DataFrame | None, cols: Columns, fmt: str, poisoned: dict[str, str]
) -> tuple[pl.DataFrame, list[Rejection]]:
    """Raw rows of one chunk, and the rejections of its rows (``poisoned``: order ref -> why)."""
    if data is None or data.height == 0:
        return _empty_rows(), []
    df = _raw_rows(data, cols, fmt)
    if cols.problem:
        return _empty_rows(), _missing_column_rejections(df, cols.problem)
    rejected: list[Rejection] = []
    if poisoned:
        hit = pl.col("order_key").is_in(list(poisoned))
        rejected = _incomplete_order_rejections(df.filter(hit), poisoned)
        df = df.filter(~hit)
    return df.drop("_ref"), rejected


def _raw_rows(data: pl.DataFrame, cols: Columns, fmt: str) -> pl.DataFrame:
    """RAW_COLUMNS (every template field as text, ``raw`` re-serialised as CSV) plus ``_ref``."""
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
    return df


def _csv_field(e: pl.Expr) -> pl.Expr:
    """One field re-serialised with RFC 4180 quoting."""
    return (
        pl.when(e.str.contains(_NEEDS_QUOTES))
        .then(pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(e)
        .fill_null("")
    )


def _missing_column_rejections(df: pl.DataFrame, problem: str) -> list[Rejection]:
    msg = f"the row is not read: {problem}"
    return [
        Rejection(rid, RECORD_KIND, loc, "CSV_MISSING_COLUMN", msg, raw=raw, order_ref=r or None)
        for rid, loc, raw, r in zip(df["record_id"], df["location"], df["raw"], df["_ref"], strict=True)
    ]


def _incomplete_order_rejections(bad: pl.DataFrame, poisoned: dict[str, str]) -> list[Rejection]:
    return [
        Rejection(
            rid, RECORD_KIND, loc, "ORDER_INCOMPLETE",
            f"order {key} not captured: another of its rows was rejected: {poisoned[key]}",
            raw=raw, order_ref=r or None,
        )
        for rid, loc, raw, key, r in zip(
            bad["record_id"], bad["location"], bad["raw"], bad["order_key"], bad["_ref"], strict=True
        )
    ]


def structural_rejections(rej: pl.DataFrame, cols: Columns) -> tuple[list[Rejection], dict[str, str]]:
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


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def file_result(code: str, message: str, src: Source | None) -> ParseResult:
    """The single chunk of a file that cannot be read at all: one rejection, no rows."""
    extras: dict[str, Any] = {"format": src.format if src else "csv", "chunk": 0, "chunks": 1, "data_rows": 0}
    return ParseResult(
        channel=CHANNEL,
        record_unit=RECORD_UNIT,
        rows=_empty_rows(),
        rejected=[Rejection("file", "file", "file", code, message)],
        encoding=src.encoding if src else None,
        extras=extras,
    )
