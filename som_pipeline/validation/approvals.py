"""Manual decisions: files in ``$SOM_HOME/landing/approvals/`` (CSV, one decision per row).

Columns (header required, names case-insensitive):

| column | required | meaning |
|---|---|---|
| ``order_id`` | yes | our order id (``core.orders.order_id``, e.g. ``SHP-450789469``) |
| ``decision`` | yes | ``approve`` or ``reject`` |
| ``reason`` | yes | why, free text (kept in the audit trail) |
| ``approver`` | yes | who decided |
| ``hold_codes`` | no | which holds an approval releases, ``|``-separated; empty = every hold open now |
| ``decided_at`` | no | ISO time of the decision (default: when the file is read) |

This module only reads the file (structure and required fields). Whether a decision applies (the order
exists, it is on hold, the hold is open) is decided by :mod:`som_pipeline.validation.workflow`, which quarantines
the rest (``UNKNOWN_ORDER``, ``HOLD_NOT_OPEN``, ``BAD_DECISION``) — nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import DecodeError, decode_text, parse_ts

REQUIRED = ("order_id", "decision", "reason", "approver")
FORMULA_START = r"^[=+\-@\t\r]"  # what spreadsheets execute as a formula at the start of a cell
APPROVER_OK = r"^[\p{L}\p{N} .,'()@_\-]{1,120}$"


def neutralise(text: pl.Expr) -> pl.Expr:
    """Free text that reaches exports: a value starting like a formula gets a leading apostrophe."""
    return pl.when(text.str.contains(FORMULA_START)).then(pl.lit("'") + text).otherwise(text)
OPTIONAL = ("hold_codes", "decided_at")

DECISION_SCHEMA = {
    "decision_id": pl.String, "order_id": pl.String, "decision": pl.String, "hold_codes": pl.String,
    "reason": pl.String, "approver": pl.String, "decided_at": pl.Datetime("us", "UTC"),
    "source_file": pl.String, "location": pl.String, "raw": pl.String,
}
REJECT_SCHEMA = {"location": pl.String, "order_ref": pl.String, "reason_code": pl.String, "message": pl.String,
                 "raw": pl.String}


@dataclass
class DecisionFile:
    decisions: pl.DataFrame  # DECISION_SCHEMA: rows that are well-formed (may still not apply)
    rejected: pl.DataFrame  # REJECT_SCHEMA: rows (or the file) that cannot be read
    received: int


def read_decisions(data: bytes, source_file: str, file_sha256: str, read_at: datetime) -> DecisionFile:
    empty = DecisionFile(pl.DataFrame(schema=DECISION_SCHEMA), pl.DataFrame(schema=REJECT_SCHEMA), 0)

    def file_problem(code: str, msg: str) -> DecisionFile:
        return DecisionFile(empty.decisions, pl.DataFrame(
            [{"location": "file", "order_ref": None, "reason_code": code, "message": msg, "raw": None}],
            schema=REJECT_SCHEMA), 1)

    try:
        text, _ = decode_text(data)
        raw = pl.read_csv(text.encode("utf-8"), infer_schema=False)
    except DecodeError as e:
        return file_problem(e.reason_code, e.message)
    except Exception as e:  # noqa: BLE001 - a malformed file is reported, never raised
        return file_problem("UNREADABLE_FILE", f"not a readable CSV: {str(e).splitlines()[0][:200]}")
    raw = raw.rename({c: c.strip().lower() for c in raw.columns})
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        return file_problem("CSV_MISSING_COLUMN", f"missing column(s): {', '.join(missing)}")
    for c in OPTIONAL:
        if c not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    df = raw.select([pl.col(c).str.strip_chars().replace("", None).alias(c) for c in (*REQUIRED, *OPTIONAL)])
    df = df.with_row_index("_i").with_columns(
        pl.format("line {}", pl.col("_i") + 2).alias("location"),
        pl.concat_str([pl.col(c).fill_null("") for c in (*REQUIRED, *OPTIONAL)], separator=",").alias("raw"),
        pl.col("decision").str.to_lowercase().alias("decision"),
        parse_ts("decided_at").alias("_decided_at"),
    )
    # who decided must be a name, not a spreadsheet formula (=HYPERLINK(...), +cmd, @SUM...): such a row is
    # refused; free text (the reason) is kept but neutralised with a leading apostrophe (OWASP CSV injection)
    bad_approver = pl.col("approver").str.contains(FORMULA_START) | ~pl.col("approver").str.contains(APPROVER_OK)
    df = df.with_columns(neutralise(pl.col("reason")).alias("reason"))
    missing_field = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED], separator=", ", ignore_nulls=True)
    df = df.with_columns(
        pl.when(missing_field != "").then(pl.lit("MISSING_FIELD"))
        .when(~pl.col("decision").is_in(["approve", "reject"])).then(pl.lit("BAD_DECISION"))
        .when(bad_approver).then(pl.lit("BAD_DECISION"))
        .when(pl.col("decided_at").is_not_null() & pl.col("_decided_at").is_null()).then(pl.lit("BAD_DATE"))
        .alias("reason_code"),
        pl.when(missing_field != "").then(pl.format("required field(s) empty: {}", missing_field))
        .when(~pl.col("decision").is_in(["approve", "reject"]))
        .then(pl.format("decision '{}' is neither approve nor reject", pl.col("decision")))
        .when(bad_approver)
        .then(pl.format("approver '{}' is not a name (letters, digits, spaces and . , ' ( ) @ _ - only, not "
                        "starting with = + - @): refused", pl.col("approver")))
        .otherwise(pl.format("decided_at '{}' is not an ISO date/time", pl.col("decided_at")))
        .alias("message"),
    )
    rejected = df.filter(pl.col("reason_code").is_not_null()).select(
        "location", pl.col("order_id").alias("order_ref"), "reason_code", "message", "raw")
    ok = df.filter(pl.col("reason_code").is_null())
    ok = ok.with_columns(
        sha256_series(pl.concat_str([pl.lit(file_sha256), pl.col("location")], separator="|"), ok).alias("decision_id"),
        pl.coalesce(pl.col("hold_codes").str.to_uppercase().str.replace_all(r"\s", ""), pl.lit("*")).alias("hold_codes"),
        pl.coalesce(pl.col("_decided_at"), pl.lit(read_at).cast(pl.Datetime("us", "UTC"))).alias("decided_at"),
        pl.lit(source_file).alias("source_file"),
    ).select(list(DECISION_SCHEMA))
    return DecisionFile(ok, rejected.cast(REJECT_SCHEMA), df.height)
