"""Reference data from files: ``$SOM_HOME/reference/<table>.csv`` or ``<table>.parquet``.

Each file is typed and checked by its Pandera model (``schemas.REFERENCE_TABLES``), the same model that
defines the warehouse table. Bad rows are quarantined like orders (``ops.quarantine`` with channel
``reference/<table>``), good rows replace the table. A file that cannot be read at all (or lacks a
column) leaves the previous table in place: a broken catalog upload never empties the catalog. Nor does a
file that reads but would shrink the table sharply (:func:`guard_shrink`: empty, or more than
``SOM_REF_MAX_SHRINK`` of the rows lost, default 50 %): it is refused (``REF_SHRINK_REFUSED``), the previous
table is kept, and the asset's ``file_accepted`` check fails (warn) until a good file arrives.

Duplicate keys: the **last** row of the file with a key wins (a file appended with a correction); the earlier
copies are quarantined as ``REF_DUPLICATE_KEY`` naming the line that was kept.

Typing is vectorised: one Polars pass trims every cell and parses every column once, keeping a per-row
"valid" flag per column; messages are formatted for the failing rows only (and their raw JSON), so an 800k-row
price list loads in a few seconds (``bench/bench_reference.py``).

Column types: text as is (trimmed); integers "12"; decimals "12.50" (no exponent, at most the column's
scale); floats any number; booleans true/false/1/0/yes/no/y/n; dates YYYY-MM-DD; timestamps ISO 8601
(no offset = UTC); times HH:MM[:SS]. Empty = null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandera.errors as pae
import pandera.polars as pa
import polars as pl

from som_pipeline import money
from som_pipeline.hashing import sha256_series, sha256_text
from som_pipeline.ingest.common import DecodeError, decode_text, parse_ts
from som_pipeline.schemas import REFERENCE_TABLES, QuarantineModel, conform, polars_schema

BOOL_TRUE = ["true", "1", "yes", "y", "t"]
BOOL_FALSE = ["false", "0", "no", "n", "f"]


@dataclass
class RefLoad:
    table: str
    source_file: str | None
    sha256: str | None
    frame: pl.DataFrame | None  # None: keep the previous table (file absent or unreadable)
    quarantine: pl.DataFrame
    received: int
    accepted: int
    message: str = ""
    refused: bool = False  # the file was read but refused by a guard: previous table kept
    unchanged: bool = False  # the same content as the last load: not read again, table kept


def find_file(ref_dir: Path, table: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        p = ref_dir / f"{table}{ext}"
        if p.exists():
            return p
    return None


def _read_text_frame(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        df = pl.read_parquet(path)
        return df.select([pl.col(c).cast(pl.String) for c in df.columns])
    text, _enc = decode_text(path.read_bytes())
    return pl.read_csv(text.encode("utf-8"), infer_schema=False)


def _clean(col: str) -> pl.Expr:
    """The text of a cell, trimmed; empty = null."""
    t = pl.col(col).str.strip_chars()
    return pl.when(t == "").then(None).otherwise(t).alias(col)


def _typed(col: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(value, ok) for one text column already :func:`_clean` (a materialised column: the parsers below read it
    several times, and re-deriving the trimmed text in each of those reads cost more than the parsing)."""
    t = pl.col(col)
    present = t.is_not_null()
    if isinstance(dtype, pl.Decimal):
        v, ok = money.parse_decimal(t, dtype.scale)
        v = v.cast(dtype, strict=False)
        return v, ok & (v.is_not_null() | ~present)
    if dtype == pl.Int64:
        return money.parse_int(t)
    if dtype == pl.Float64:
        v = t.cast(pl.Float64, strict=False)
    elif dtype == pl.Boolean:
        low = t.str.to_lowercase()
        v = pl.when(low.is_in(BOOL_TRUE)).then(True).when(low.is_in(BOOL_FALSE)).then(False)
    elif dtype == pl.Date:
        v = t.str.to_date("%Y-%m-%d", strict=False)
    elif isinstance(dtype, pl.Datetime):
        v = parse_ts(col)
    elif dtype == pl.Time:
        v = pl.coalesce(t.str.to_time("%H:%M:%S", strict=False), t.str.to_time("%H:%M", strict=False))
    else:
        return t, pl.lit(True)
    return v, ~present | v.is_not_null()


def load_reference(table: str, path: Path | None, *, loaded_at: datetime | None = None) -> RefLoad:
    """Load ``$SOM_HOME/reference/<table>`` with the model of ``schemas.REFERENCE_TABLES[table]``."""
    return load_table_file(table, REFERENCE_TABLES[table], f"reference/{table}", path, loaded_at=loaded_at)


def load_table_file(table: str, model: type[pa.DataFrameModel], channel: str, path: Path | None, *,
                    loaded_at: datetime | None = None) -> RefLoad:
    """Type and check a CSV/Parquet file with ``model``; bad rows go to quarantine under ``channel``."""
    loaded_at = loaded_at or datetime.now(UTC)
    empty_q = conform(pl.DataFrame(), QuarantineModel).clear()
    if path is None:
        return RefLoad(table, None, None, None, empty_q, 0, 0, "no file: table left as it was")
    data = path.read_bytes()
    sha = sha256_text(data)

    def file_problem(code: str, msg: str) -> RefLoad:
        q = _quarantine_frame(
            pl.DataFrame({"location": ["file"], "reason_code": [code], "message": [msg], "raw": [None]},
                         schema={"location": pl.String, "reason_code": pl.String, "message": pl.String, "raw": pl.String}),
            channel, path.name, sha, "file", loaded_at,
        )
        return RefLoad(table, path.name, sha, None, q, 1, 0, f"{code}: {msg}; previous table kept")

    try:
        raw = _read_text_frame(path)
    except DecodeError as e:
        return file_problem(e.reason_code, e.message)
    except Exception as e:  # noqa: BLE001 - any reader failure is reported, never raised
        return file_problem("UNREADABLE_FILE", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")

    raw = raw.rename({c: c.strip().lower() for c in raw.columns})
    schema = polars_schema(model)
    cols = model.to_schema().columns
    # a nullable column a file does not have yet is empty (a release adds an optional column: old files load)
    raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in schema
                           if c not in raw.columns and cols[c].nullable)
    missing = [c for c in schema if c not in raw.columns]
    if missing:
        return file_problem("CSV_MISSING_COLUMN", f"missing column(s): {', '.join(missing)}")

    offset = 1 if path.suffix == ".parquet" else 2  # CSV: header is line 1
    df = raw.select(list(schema)).with_row_index("_i")
    # one vectorised pass: every column typed once, with a per-row flag of whether its text was valid
    exprs = []
    for name, dtype in schema.items():
        value, ok = _typed(name, dtype)
        exprs += [value.alias(name), ok.alias(f"_ok.{name}")]
    typed = df.select("_i", *[_clean(n) for n in schema]).select("_i", *exprs)
    bad_type = [~pl.col(f"_ok.{n}") for n in schema]
    missing = [pl.col(n).is_null() & pl.col(f"_ok.{n}") for n in schema if not cols[n].nullable]
    typed = typed.with_columns(pl.any_horizontal(*bad_type).alias("_badtype"),
                               pl.any_horizontal(*missing, pl.lit(False)).alias("_missing"))
    # messages only for the rows that failed (with the raw text of the bad values)
    failed = typed.filter(pl.col("_badtype") | pl.col("_missing"))
    checks = []
    for name, dtype in schema.items():
        checks.append(pl.when(~pl.col(f"_ok.{name}")).then(
            pl.format("{} '{}' is not a valid {}", pl.lit(name), pl.col(f"_raw.{name}"), pl.lit(str(dtype)))))
        if not cols[name].nullable:
            checks.append(pl.when(pl.col(name).is_null() & pl.col(f"_ok.{name}"))
                          .then(pl.lit(f"required field {name} is empty")))
    bad = (failed.join(df.select("_i", *[pl.col(n).alias(f"_raw.{n}") for n in schema]), on="_i", how="left")
           .select("_i",
                   pl.when(pl.col("_badtype")).then(pl.lit("REF_BAD_VALUE")).otherwise(pl.lit("MISSING_FIELD"))
                   .alias("reason_code"),
                   pl.concat_str(checks, separator="; ", ignore_nulls=True).alias("message")))
    ok_rows = typed.filter(~pl.col("_badtype") & ~pl.col("_missing")).select("_i", *schema)

    # keys: the last row of the file with a key wins; earlier copies are quarantined, naming the kept line
    key_sets = _unique_keys(model)
    dups = []
    for key in key_sets:
        d = ok_rows.with_columns(pl.len().over(key).alias("_n"), pl.col("_i").max().over(key).alias("_last"))
        d = d.filter((pl.col("_n") > 1) & (pl.col("_i") < pl.col("_last"))).select(
            "_i",
            pl.lit("REF_DUPLICATE_KEY").alias("reason_code"),
            pl.format("key ({}) = ({}) appears {} times; the last one ({} {}) is kept", pl.lit(", ".join(key)),
                      pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator=", "), pl.col("_n"),
                      pl.lit("line" if offset == 2 else "row"), pl.col("_last") + offset).alias("message"),
        )
        dups.append(d)
    dup = pl.concat(dups) if dups else bad.clear()
    dup = dup.unique(subset="_i", keep="first")
    ok_rows = ok_rows.join(dup, on="_i", how="anti")

    # model rules (ranges, allowed values): rows named in Pandera's failure cases
    rule_bad = _pandera_failures(model, ok_rows)
    ok_rows = ok_rows.join(rule_bad, on="_i", how="anti")

    rejected = pl.concat([bad, dup, rule_bad], how="vertical_relaxed")
    raw_json = df.join(rejected.select("_i"), on="_i", how="semi").select(
        "_i", pl.struct(list(schema)).struct.json_encode().alias("raw"))
    rejected = rejected.join(raw_json, on="_i", how="left")
    rejected = rejected.with_columns(pl.format("{} {}", pl.lit("line" if offset == 2 else "row"),
                                               pl.col("_i") + offset).alias("location"))
    q = _quarantine_frame(rejected.sort("_i"), channel, path.name, sha, "reference_row", loaded_at)
    frame = conform(ok_rows.sort("_i"), model)
    return RefLoad(table, path.name, sha, frame, q, df.height, frame.height)


def guard_shrink(ld: RefLoad, current_rows: int, max_loss: float, at: datetime | None = None) -> RefLoad:
    """Refuse a file that would empty the table or lose more than ``max_loss`` (a share) of its rows.

    A first load (``current_rows == 0``) is never refused. ``max_loss >= 1`` turns the guard off (an intended
    purge: set ``SOM_REF_MAX_SHRINK=1`` for that one run)."""
    if ld.frame is None or current_rows == 0 or max_loss >= 1:
        return ld
    new = ld.frame.height
    lost = (current_rows - new) / current_rows
    if new > 0 and lost <= max_loss:
        return ld
    msg = (f"{ld.source_file} would shrink ref.{ld.table} from {current_rows} to {new} rows "
           f"({lost:.0%} lost, more than the {max_loss:.0%} allowed by SOM_REF_MAX_SHRINK); previous table kept")
    row = _quarantine_frame(
        pl.DataFrame({"location": ["file"], "reason_code": ["REF_SHRINK_REFUSED"], "message": [msg], "raw": [None]},
                     schema={"location": pl.String, "reason_code": pl.String, "message": pl.String, "raw": pl.String}),
        f"reference/{ld.table}", ld.source_file or "", ld.sha256 or "", "file", at or datetime.now(UTC))
    return RefLoad(ld.table, ld.source_file, ld.sha256, None, pl.concat([ld.quarantine, row]), ld.received, 0,
                   f"REF_SHRINK_REFUSED: {msg}", refused=True)


def _unique_keys(model: type[pa.DataFrameModel]) -> list[list[str]]:
    schema = model.to_schema()
    keys = [[n] for n, c in schema.columns.items() if c.unique]
    if schema.unique:
        keys.append(list(schema.unique) if not isinstance(schema.unique, str) else [schema.unique])
    return keys


def _pandera_failures(model: type[pa.DataFrameModel], ok_rows: pl.DataFrame) -> pl.DataFrame:
    out_schema = {"_i": pl.UInt32, "reason_code": pl.String, "message": pl.String}
    frame = conform(ok_rows, model)
    try:
        model.validate(frame, lazy=True)
        return pl.DataFrame(schema=out_schema)
    except pae.SchemaErrors as err:
        fc = err.failure_cases
    fc = fc.filter(pl.col("index").is_not_null())
    if fc.height == 0:
        return pl.DataFrame(schema=out_schema)
    pos = ok_rows.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("index"), "_i")
    rows = fc.with_columns(pl.col("index").cast(pl.Int64)).join(pos, on="index").select(
        "_i",
        pl.lit("REF_CHECK_FAILED").alias("reason_code"),
        pl.format("{}: {} failed for value '{}'", pl.col("column"), pl.col("check"), pl.col("failure_case")).alias("message"),
    )
    return rows.group_by("_i", maintain_order=True).agg(
        pl.col("reason_code").first(), pl.col("message").str.join("; ")
    ).cast(out_schema)


def _quarantine_frame(rows: pl.DataFrame, channel: str, source_file: str, sha: str, kind: str, at: datetime) -> pl.DataFrame:
    q = rows.with_columns(
        pl.lit(channel).alias("channel"),
        pl.lit(source_file).alias("source_file"),
        pl.lit(sha).alias("file_sha256"),
        pl.lit(kind).alias("record_kind"),
        pl.lit(None, dtype=pl.String).alias("order_ref"),
        pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    q = q.with_columns(
        sha256_series(pl.concat_str([pl.lit(sha), pl.col("location"), pl.col("reason_code")], separator="|"), q)
        .alias("quarantine_id")
    )
    return conform(q, QuarantineModel)


def summary_json(loads: list[RefLoad]) -> str:
    return json.dumps(
        {ld.table: {"file": ld.source_file, "received": ld.received, "accepted": ld.accepted, "note": ld.message}
         for ld in loads},
        indent=1,
    )
