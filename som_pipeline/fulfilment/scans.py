"""Scanner events: files in ``$SOM_HOME/landing/scans/`` read (:func:`read_scans`), then judged against the pick
tasks (:func:`judge_scans`). Pure: bytes and frames in, frames out.

File formats (told apart by the first non-blank character after decoding):

- **CSV** (anything not starting with ``[`` or ``{``): a header row is required; column names are
  case-insensitive, surrounding blanks ignored, any order; unknown columns are ignored (they stay in ``raw``).
  Blank lines are skipped; a quoted field may contain commas and line breaks. A row with fewer fields than the
  header is ``CSV_MISSING_FIELDS``, with more non-empty fields ``CSV_EXTRA_FIELDS`` (empty trailing fields, as
  spreadsheets write them, are ignored), one the CSV reader cannot split ``CSV_MALFORMED_ROW``.
- **JSON lines** (starts with ``{``): one object per line, blank lines skipped; a line that is not a JSON
  object is ``INVALID_JSON`` for that line only (the other lines are kept). A single pretty-printed object
  spanning several lines is read as one record.
- **JSON array** (starts with ``[``): an array of objects; an element that is not an object is ``INVALID_JSON``.
  Keys are case-insensitive like CSV names; a missing key is an empty field.

Columns:

| column | required | meaning |
|---|---|---|
| ``scan_id`` | yes | the scanner's unique event id (a re-sent event has the same id: ``DUPLICATE_SCAN``) |
| ``task_id`` | yes | the pick task scanned against |
| ``warehouse_id`` | yes | where the scanner is |
| ``barcode`` | yes | the item's GTIN as scanned: EAN-8, UPC-A (12), EAN-13 or GTIN-14 digits with a valid check digit |
| ``quantity`` | yes | units scanned (a whole number; ``3.0`` and ``+3`` read as 3): >= 1 for ``pick``; >= 0 for ``short`` |
| ``user`` | yes | who scanned (free text: a value starting like a spreadsheet formula gets a leading apostrophe) |
| ``station`` | yes | scanner / station id (neutralised like ``user``) |
| ``scanned_at`` | yes | ISO-8601 time; ``Z`` or ``+hh:mm`` honoured; **no offset = UTC** (scanner clocks are set to UTC) |
| ``action`` | no | ``pick`` (default) or ``short``: the picker closes the task short (bin empty or damaged stock); its quantity is the units found now, possibly 0 |

A file with nothing readable (not text, empty, header only, broken JSON array, a required column missing) is
one rejected record at location ``file`` (``received = 1``): every file leaves a trace. Otherwise
``received = len(scans) + len(rejected)``, and every record keeps its location (``line N`` in CSV and JSON
lines, physical line of the file; ``record N`` in a JSON array) and raw text.

The reader checks structure and fields only. Whether a scan applies (task exists, is open, the item is right,
the scan is new) is :func:`judge_scans`' decision.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from stdnum import ean

from som_pipeline import money
from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import MAX_QUANTITY, DecodeError, decode_text, jtext, parse_ts
from som_pipeline.ingest.jsondoc import MAX_RAW_CHARS, JNum, _raw_bytes, dump_json, load_json_exact
from som_pipeline.validation.approvals import REJECT_SCHEMA, neutralise

# ------------------------------------------------------------------------------------------------
# Shared record reader (CSV / JSON lines / JSON array -> one String column per field)
# ------------------------------------------------------------------------------------------------
FILE_LOCATION = "file"
GTIN_LENGTHS = (8, 12, 13, 14)


@dataclass
class Records:
    """A file's records, structure only: ``rows`` has one String column per field (stripped, '' -> null) plus
    ``_n`` (record ordinal in the file), ``location`` and ``raw``; ``rejected`` is REJECT_SCHEMA plus ``_n``
    (records that could not be split into fields, or the whole file at location ``file``)."""

    rows: pl.DataFrame
    rejected: pl.DataFrame

    @property
    def received(self) -> int:
        return self.rows.height + self.rejected.height


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"... ({len(text):,} characters)"


def read_records(data: bytes, fields: Sequence[str], required: Sequence[str], ref_field: str,
                 one_of: Sequence[str] = ()) -> Records:
    """Split a feed file (CSV with header, JSON lines or a JSON array) into records of text ``fields``.

    ``required``: columns a CSV header must name (JSON records may omit keys: the field is then empty);
    ``one_of``: a CSV header must name at least one of them; ``ref_field``: the field copied to a rejection's
    ``order_ref``. Never raises on bad bytes: problems become rejections.
    """
    rows_schema = {**{f: pl.String for f in fields}, "_n": pl.Int64, "location": pl.String, "raw": pl.String}
    rej_schema = {**REJECT_SCHEMA, "_n": pl.Int64}

    def whole_file(code: str, msg: str, raw: str | None) -> Records:
        return Records(pl.DataFrame(schema=rows_schema), pl.DataFrame(
            [{"location": FILE_LOCATION, "order_ref": None, "reason_code": code, "message": msg, "raw": raw, "_n": 0}],
            schema=rej_schema))

    try:
        text, _enc = decode_text(data)
    except DecodeError as e:
        return whole_file(e.reason_code, e.message, _raw_bytes(data) if e.reason_code == "BAD_ENCODING" else None)
    try:
        start = text.lstrip()[:1]
        if start in ("[", "{"):
            out, rejects = _json_records(text, fields, ref_field)
        else:
            out, rejects = _csv_records(text, fields, required, one_of, ref_field)
    except _FileProblem as e:
        return whole_file(e.code, e.message, _truncate(text))
    except Exception as e:  # noqa: BLE001 - a malformed file is reported, never raised
        why = str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return whole_file("UNREADABLE_FILE", f"not a readable file: {why}", _truncate(text))
    if not out and not rejects:
        return whole_file("EMPTY_FILE", "the file has no records (only a header, blank lines or an empty array)",
                          _truncate(text))
    rows = pl.DataFrame(out, schema=rows_schema, orient="row") if out else pl.DataFrame(schema=rows_schema)
    rows = rows.with_columns(pl.col(f).str.strip_chars().replace("", None) for f in fields)
    rejected = pl.DataFrame(rejects, schema=rej_schema, orient="row") if rejects else pl.DataFrame(schema=rej_schema)
    return Records(rows, rejected)


class _FileProblem(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _csv_records(text: str, fields: Sequence[str], required: Sequence[str], one_of: Sequence[str],
                 ref_field: str) -> tuple[list[tuple], list[tuple]]:
    """CSV via the stdlib reader (C): it keeps the physical line numbers a quoted multi-line field shifts."""
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(lines)
    header: list[str] | None = None
    index: dict[str, int] = {}
    out: list[tuple] = []
    rejects: list[tuple] = []
    prev_end = 0
    n = 0
    while True:
        try:
            row = next(reader)
            error = None
        except StopIteration:
            break
        except csv.Error as e:
            row, error = None, str(e)
        start, end = prev_end + 1, reader.line_num
        prev_end = end
        raw = "".join(lines[start - 1:end]).rstrip("\r\n")
        location = f"line {start}" if start == end else f"lines {start}-{end}"
        if error is None and (not row or (len(row) == 1 and not row[0].strip())):
            continue  # a blank line is not a record
        if header is None:
            if error is not None:
                raise _FileProblem("UNREADABLE_FILE", f"the header row ({location}) cannot be read: {error}")
            header = [h.strip().lower() for h in row]
            dup = sorted({h for h in header if h in fields and header.count(h) > 1})
            if dup:
                raise _FileProblem("UNREADABLE_FILE", f"column(s) named twice in the header: {', '.join(dup)}")
            missing = [c for c in required if c not in header]
            if one_of and not any(c in header for c in one_of):
                missing.append(" or ".join(one_of))
            if missing:
                raise _FileProblem("CSV_MISSING_COLUMN", f"missing column(s): {', '.join(missing)} "
                                   f"(the header names: {', '.join(h for h in header if h) or 'nothing'})")
            index = {h: i for i, h in enumerate(header) if h in fields}
            continue
        n += 1
        ref_i = index.get(ref_field)
        ref = row[ref_i].strip() or None if row is not None and ref_i is not None and ref_i < len(row) else None
        if error is not None:
            rejects.append((location, ref, "CSV_MALFORMED_ROW", f"the row cannot be split into fields: {error}",
                            raw, n))
        elif len(row) < len(header):
            rejects.append((location, ref, "CSV_MISSING_FIELDS",
                            f"the row has {len(row)} field(s), the header {len(header)}", raw, n))
        elif len(row) > len(header) and any(v.strip() for v in row[len(header):]):
            rejects.append((location, ref, "CSV_EXTRA_FIELDS",
                            f"the row has {len(row)} field(s), the header {len(header)}", raw, n))
        else:
            out.append((*(row[index[f]] if f in index else None for f in fields), n, location, raw))
    return out, rejects


def _field_text(v: Any) -> str | None:
    if isinstance(v, dict | list):
        return dump_json(v)
    return jtext(v)


def _json_records(text: str, fields: Sequence[str], ref_field: str) -> tuple[list[tuple], list[tuple]]:
    out: list[tuple] = []
    rejects: list[tuple] = []

    def record(obj: Any, n: int, location: str, raw: str) -> None:
        if not isinstance(obj, dict):
            kind = "an array" if isinstance(obj, list) else "a string" if isinstance(obj, str) and not isinstance(
                obj, JNum) else "a number" if isinstance(obj, JNum) else "null" if obj is None else "a literal"
            rejects.append((location, None, "INVALID_JSON", f"{location} is {kind}, not a JSON object", raw, n))
            return
        obj = {str(k).strip().lower(): v for k, v in obj.items()}
        out.append((*(_field_text(obj.get(f)) for f in fields), n, location, raw))

    if text.lstrip().startswith("["):
        try:
            doc = load_json_exact(text)
        except RecursionError:
            raise _FileProblem("INVALID_JSON", "JSON nested too deeply to be a list of records") from None
        except ValueError as e:
            raise _FileProblem("INVALID_JSON", f"not a valid JSON array: {e}") from None
        if not isinstance(doc, list):  # e.g. "[1] x" is caught above; kept for safety
            raise _FileProblem("INVALID_JSON", "the file starts with '[' but is not a JSON array")
        for i, obj in enumerate(doc, 1):
            record(obj, i, f"record {i}", _truncate(dump_json(obj)))
        return out, rejects
    lines = text.splitlines()
    parsed: list[tuple[int, str, Any, str | None]] = []
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed.append((ln, line, load_json_exact(line), None))
        except RecursionError:
            parsed.append((ln, line, None, "nested too deeply"))
        except ValueError as e:
            parsed.append((ln, line, None, str(e)))
    if any(err for *_, err in parsed) and len(parsed) > 1:
        try:  # one pretty-printed object over several lines
            doc = load_json_exact(text)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            record(doc, 1, "record 1", _truncate(text.strip()))
            return out, rejects
    for n, (ln, line, obj, err) in enumerate(parsed, 1):
        location = f"line {ln}"
        if err is not None:
            rejects.append((location, None, "INVALID_JSON", f"{location} is not valid JSON: {err}", _truncate(line), n))
        else:
            record(obj, n, location, _truncate(line))
    return out, rejects


# ------------------------------------------------------------------------------------------------
# Field checks shared by the fulfilment readers (vectorised)
# ------------------------------------------------------------------------------------------------
def valid_gtins(barcodes: pl.Series) -> pl.Series:
    """The distinct barcodes (digit strings of a GTIN length) whose GS1 check digit ``stdnum.ean`` accepts.

    ``stdnum`` runs once per *distinct* candidate, not per row (a scan file repeats few barcodes)."""
    cands = barcodes.filter(barcodes.str.contains(r"^(\d{8}|\d{12,14})$")).unique().to_list()
    return pl.Series("gtin", [b for b in cands if ean.is_valid(b)], dtype=pl.String)


def barcode_problem(c: str, valid: pl.Series) -> pl.Expr:
    """Null when column ``c`` (non-null) is a valid GTIN, else why not (a human message)."""
    b = pl.col(c)
    return (
        pl.when(b.is_in(valid.implode())).then(None)
        .when(~b.str.contains(r"^\d+$"))
        .then(pl.format("barcode '{}' is not a GTIN: digits only", b))
        .when(~b.str.len_chars().is_in(list(GTIN_LENGTHS)))
        .then(pl.format("barcode '{}' has {} digits: a GTIN has 8 (EAN-8), 12 (UPC-A), 13 (EAN-13) or 14",
                        b, b.str.len_chars()))
        .otherwise(pl.format("barcode '{}' fails its GS1 check digit (mistyped or misread)", b))
    )


def to_gtin14(c: str) -> pl.Expr:
    """A valid GTIN-8/12/13/14 as GTIN-14: left-padded with zeros (GS1's own normalisation)."""
    return pl.col(c).str.zfill(14)


def missing_fields(required: Sequence[str]) -> pl.Expr:
    """Comma-separated names of the required fields that are empty ('' when none)."""
    return pl.concat_str([pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in required],
                         separator=", ", ignore_nulls=True)


def first_problem(checks: Sequence[tuple[pl.Expr, str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """``(reason_code, message)`` of the first failing check (null, null when all pass): one reason a record."""
    code = pl.when(checks[0][0]).then(pl.lit(checks[0][1]))
    msg = pl.when(checks[0][0]).then(checks[0][2])
    for cond, c, m in checks[1:]:
        code = code.when(cond).then(pl.lit(c))
        msg = msg.when(cond).then(m)
    return code.otherwise(None), msg.otherwise(None)


def record_ids(df: pl.DataFrame, file_sha256: str) -> pl.Series:
    """Stable identity of a record: SHA-256 of the file's hash and the record's location."""
    return sha256_series(pl.concat_str([pl.lit(file_sha256), pl.col("location")], separator="|"), df)


def finish_rejects(structural: pl.DataFrame, field_rejects: pl.DataFrame) -> pl.DataFrame:
    """Structural and field rejections in file order, REJECT_SCHEMA."""
    return pl.concat([structural.cast({**REJECT_SCHEMA, "_n": pl.Int64}),
                      field_rejects.select(*REJECT_SCHEMA, "_n").cast({**REJECT_SCHEMA, "_n": pl.Int64})]
                     ).sort("_n").select(list(REJECT_SCHEMA))


# ------------------------------------------------------------------------------------------------
# Scans: reader
# ------------------------------------------------------------------------------------------------
REQUIRED = ("scan_id", "task_id", "warehouse_id", "barcode", "quantity", "user", "station", "scanned_at")
OPTIONAL = ("action",)
ACTIONS = ("pick", "short")

SCAN_SCHEMA = {
    "record_id": pl.String, "scan_id": pl.String, "task_id": pl.String, "warehouse_id": pl.String,
    "barcode": pl.String, "gtin": pl.String, "quantity": pl.Int64, "user": pl.String, "station": pl.String,
    "scanned_at": pl.Datetime("us", "UTC"), "action": pl.String, "source_file": pl.String,
    "location": pl.String, "raw": pl.String,
}


@dataclass
class ScanFile:
    scans: pl.DataFrame  # SCAN_SCHEMA: well-formed scans (they may still not apply: judge_scans)
    rejected: pl.DataFrame  # REJECT_SCHEMA (order_ref = task_id): records, or the file, that cannot be read
    received: int


def read_scans(data: bytes, source_file: str, file_sha256: str) -> ScanFile:
    """Read a scanner file (CSV / JSON lines / JSON array). Never raises on bad input."""
    rec = read_records(data, (*REQUIRED, *OPTIONAL), REQUIRED, "task_id")
    df = rec.rows
    valid = valid_gtins(df["barcode"].drop_nulls())
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    df = df.with_columns(
        pl.col("action").str.to_lowercase().fill_null("pick").alias("action"),
        qty.alias("_q"), qty_ok.alias("_q_ok"), parse_ts("scanned_at").alias("_at"),
    )
    q = pl.col("_q")
    missing = missing_fields(REQUIRED)
    bad_bc = barcode_problem("barcode", valid)
    code, msg = first_problem([
        (missing != "", "MISSING_FIELD", pl.format("required field(s) empty: {}", missing)),
        (~pl.col("action").is_in(ACTIONS), "BAD_ACTION",
         pl.format("action '{}' is neither pick nor short", pl.col("action"))),
        (~pl.col("_q_ok"), "BAD_QUANTITY", pl.format("quantity '{}' is not a whole number", pl.col("quantity"))),
        (q < 0, "BAD_QUANTITY", pl.format("quantity {} is negative", q)),
        ((q == 0) & (pl.col("action") == "pick"), "BAD_QUANTITY",
         pl.lit("quantity 0 with action pick: a pick confirms at least 1 unit (action short closes a task with "
                "nothing found)")),
        (q > MAX_QUANTITY, "BAD_QUANTITY",
         pl.format("quantity {} is above the limit {}", q, pl.lit(f"{MAX_QUANTITY:,}"))),
        (bad_bc.is_not_null(), "BAD_BARCODE", bad_bc),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("scanned_at '{}' is not an ISO date/time (e.g. 2026-11-26T14:03:07+01:00)", pl.col("scanned_at"))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message"))
    bad = df.filter(pl.col("reason_code").is_not_null()).with_columns(pl.col("task_id").alias("order_ref"))
    ok = df.filter(pl.col("reason_code").is_null())
    ok = ok.with_columns(
        record_ids(ok, file_sha256).alias("record_id"),
        to_gtin14("barcode").alias("gtin"),
        pl.col("_q").alias("quantity"),
        pl.col("_at").alias("scanned_at"),
        # who scanned and where are free text that reaches exports: a formula start is neutralised
        neutralise(pl.col("user")).alias("user"),
        neutralise(pl.col("station")).alias("station"),
        pl.lit(source_file).alias("source_file"),
    ).select(list(SCAN_SCHEMA)).cast(SCAN_SCHEMA)
    rejected = finish_rejects(rec.rejected, bad)
    return ScanFile(ok, rejected, rec.received)


# ------------------------------------------------------------------------------------------------
# Scans: judged against the pick tasks
# ------------------------------------------------------------------------------------------------
TASK_STATUSES = ("OPEN", "PICKED", "SHORT", "CANCELLED")
ACCEPTED_OUTCOMES = ("CONFIRMED", "OVER_PICK", "SHORT_PICK", "WRONG_ITEM")
REJECTED_OUTCOMES = ("DUPLICATE_SCAN", "UNKNOWN_TASK", "TASK_CLOSED")
OUTCOMES = (*ACCEPTED_OUTCOMES, *REJECTED_OUTCOMES)
JUDGED_COLUMNS = {"outcome": pl.String, "sku_scanned": pl.String, "confirmed_qty": pl.Int64, "over_qty": pl.Int64,
                  "short_qty": pl.Int64, "message": pl.String}
SCAN_REJECT_SCHEMA = {**REJECT_SCHEMA, "scan_id": pl.String, "source_file": pl.String}


@dataclass
class ScanOutcome:
    accepted: pl.DataFrame  # scan columns + JUDGED_COLUMNS; outcome in ACCEPTED_OUTCOMES
    rejected: pl.DataFrame  # SCAN_REJECT_SCHEMA; reason_code in REJECTED_OUTCOMES
    tasks: pl.DataFrame  # the tasks the scans changed: new picked_qty, status, closed_at
    counts: dict[str, int]  # outcome -> number of scans (every outcome present)


def judge_scans(scans: pl.DataFrame, tasks: pl.DataFrame, barcode_map: pl.DataFrame,
                seen_scan_ids: pl.DataFrame) -> ScanOutcome:
    """Judge scans (SCAN_SCHEMA, from one or more files) against pick tasks. Pure and vectorised.

    ``tasks``: task_id (unique), warehouse_id, sku, quantity (to pick), picked_qty (confirmed so far), status
    (TASK_STATUSES); other columns are carried through. ``barcode_map``: gtin (GTIN-14), sku — the catalog's
    product aliases. ``seen_scan_ids``: scan_id of scans processed by earlier files.

    One outcome per scan, first that applies:

    1. ``DUPLICATE_SCAN`` (rejected): the scan_id was seen before, or repeats an earlier row of ``scans``
       (input order: the first copy counts).
    2. ``UNKNOWN_TASK`` (rejected): no such task, or the task belongs to another warehouse.
    3. ``TASK_CLOSED`` (rejected): the task is not OPEN at the scan's turn — closed before, or by an earlier scan
       of this batch. Scans of one task take turns by ``scanned_at``, then ``scan_id``.
    4. ``WRONG_ITEM`` (accepted, counts nothing): the barcode is another SKU, or no known product. The task is
       unchanged, even for a ``short`` scan (the item that was scanned is not the task's).
    5. The right item: ``CONFIRMED`` (quantity fits what remains), ``OVER_PICK`` (more: the remaining is
       confirmed, ``over_qty`` goes back to the bin), ``SHORT_PICK`` (action short: up to the remaining is
       confirmed, the task closes; ``short_qty`` = what is still missing; excess found, if any, is ``over_qty``).

    Task after the batch: ``picked_qty`` + confirmed; ``PICKED`` when picked_qty reaches quantity (also after a
    short scan that found everything), ``SHORT`` when a short scan closed it with units missing; ``closed_at``
    the closing scan's time. A closed task never reopens.

    Sequencing without row loops: within a task, in turn order, the units of the right item scanned *before*
    a scan are a cumulative sum (``cum_before``); the task is open at the scan iff nothing was closed short
    before it and ``quantity - picked_qty - cum_before > 0``. Closing is monotone, so scans after the close
    (whatever their quantity) are all ``TASK_CLOSED`` and the uncapped sum is exact for the open ones.
    """
    if tasks["task_id"].is_duplicated().any():
        raise ValueError("judge_scans: tasks must have one row per task_id")
    seen = seen_scan_ids["scan_id"].drop_nulls().unique()
    aliases = barcode_map.select("gtin", "sku").unique().group_by("gtin").agg(pl.col("sku").sort().alias("_skus"))
    t = tasks.select(
        "task_id", pl.col("warehouse_id").alias("_t_wh"), pl.col("sku").alias("_t_sku"),
        pl.col("quantity").cast(pl.Int64).alias("_t_qty"), pl.col("picked_qty").cast(pl.Int64).alias("_t_picked"),
        pl.col("status").alias("_t_status"))
    s = (scans.with_row_index("_in").with_columns(pl.col("_in").cast(pl.Int64))
         .join(t, on="task_id", how="left").join(aliases, on="gtin", how="left").sort("_in"))
    first_in = pl.col("_in").min().over("scan_id")
    right = pl.col("_skus").list.contains(pl.col("_t_sku")).fill_null(False)
    s = s.with_columns(
        pl.when(pl.col("scan_id").is_in(seen.implode()) | (pl.col("_in") != first_in)).then(pl.lit("DUPLICATE_SCAN"))
        .when(pl.col("_t_status").is_null() | (pl.col("_t_wh") != pl.col("warehouse_id"))).then(pl.lit("UNKNOWN_TASK"))
        .alias("_pre"),
        pl.col("location").sort_by("_in").first().over("scan_id").alias("_first_loc"),
        pl.col("source_file").sort_by("_in").first().over("scan_id").alias("_first_file"),
        right.alias("_right"),
        pl.when(right).then(pl.col("_t_sku")).otherwise(pl.col("_skus").list.first()).alias("sku_scanned"),
    )
    pre, live = s.filter(pl.col("_pre").is_not_null()), s.filter(pl.col("_pre").is_null())

    # --- the tasks' turns ------------------------------------------------------------------
    live = live.sort("task_id", "scanned_at", "scan_id")
    q_eff = pl.when(pl.col("_right")).then(pl.col("quantity")).otherwise(0)
    short_eff = (pl.col("_right") & (pl.col("action") == "short")).cast(pl.Int64)
    live = live.with_columns(
        (q_eff.cum_sum().over("task_id") - q_eff).alias("_cum_before"),
        (short_eff.cum_sum().over("task_id") - short_eff).alias("_shorts_before"),
    ).with_columns((pl.col("_t_qty") - pl.col("_t_picked") - pl.col("_cum_before")).alias("_rem"))
    rem, qty = pl.col("_rem"), pl.col("quantity")
    is_open = (pl.col("_t_status") == "OPEN") & (rem > 0) & (pl.col("_shorts_before") == 0)
    counts_units = is_open & pl.col("_right")
    live = live.with_columns(
        pl.when(~is_open).then(pl.lit("TASK_CLOSED"))
        .when(~pl.col("_right")).then(pl.lit("WRONG_ITEM"))
        .when(pl.col("action") == "short").then(pl.lit("SHORT_PICK"))
        .when(qty > rem).then(pl.lit("OVER_PICK"))
        .otherwise(pl.lit("CONFIRMED")).alias("outcome"),
        pl.when(counts_units).then(pl.min_horizontal(qty, rem)).otherwise(0).alias("confirmed_qty"),
        pl.when(counts_units).then(pl.max_horizontal(qty - rem, 0)).otherwise(0).alias("over_qty"),
        pl.when(counts_units & (pl.col("action") == "short")).then(pl.max_horizontal(rem - qty, 0))
        .otherwise(0).alias("short_qty"),
        (counts_units & ((pl.col("action") == "short") | (qty >= rem))).alias("_closes"),
    )
    def at_close(c: str) -> pl.Expr:  # the task's closing scan's value of c (null: still open)
        return pl.col(c).filter(pl.col("_closes")).first().over("task_id")

    live = live.with_columns(at_close("scan_id").alias("_closer"), at_close("outcome").alias("_closer_outcome"))

    # --- accepted --------------------------------------------------------------------------
    tsk, bc = pl.col("task_id"), pl.col("barcode")
    accepted = live.filter(pl.col("outcome") != "TASK_CLOSED").with_columns(
        pl.when(pl.col("outcome") == "WRONG_ITEM").then(
            pl.when(pl.col("sku_scanned").is_null())
            .then(pl.format("barcode {} is no known product (no catalog alias); task {} wants SKU {}: not counted",
                            bc, tsk, pl.col("_t_sku")))
            .otherwise(pl.format("barcode {} is SKU {}; task {} wants SKU {}: not counted",
                                 bc, pl.col("sku_scanned"), tsk, pl.col("_t_sku"))))
        .when(pl.col("outcome") == "OVER_PICK")
        .then(pl.format("scanned {} but task {} needed {}: {} confirmed, {} go back to the bin",
                        qty, tsk, rem, pl.col("confirmed_qty"), pl.col("over_qty")))
        .when(pl.col("outcome") == "SHORT_PICK")
        .then(pl.format("task {} closed short: {} found of {} remaining, {} missing",
                        tsk, qty, rem, pl.col("short_qty")))
        .alias("message"),
    ).sort("_in").select(*scans.columns, *JUDGED_COLUMNS).cast(JUDGED_COLUMNS)

    # --- rejected --------------------------------------------------------------------------
    closed_msg = (
        pl.when(pl.col("_t_status") != "OPEN")
        .then(pl.format("task {} is {}: it takes no more scans", tsk, pl.col("_t_status")))
        .when(pl.col("_t_qty") - pl.col("_t_picked") <= 0)
        .then(pl.format("task {} has nothing left to pick ({} of {} picked)", tsk, pl.col("_t_picked"),
                        pl.col("_t_qty")))
        .when(pl.col("_closer_outcome") == "SHORT_PICK")
        .then(pl.format("task {} was closed short by scan {} earlier in this batch", tsk, pl.col("_closer")))
        .otherwise(pl.format("task {} was completely picked by scan {} earlier in this batch", tsk, pl.col("_closer")))
    )
    dup_msg = (
        pl.when(pl.col("scan_id").is_in(seen.implode()))
        .then(pl.format("scan {} was already processed from an earlier file: not counted twice", pl.col("scan_id")))
        .otherwise(pl.format("scan {} repeats {} of {}: the first copy counts", pl.col("scan_id"),
                             pl.col("_first_loc"), pl.col("_first_file")))
    )
    unknown_msg = (
        pl.when(pl.col("_t_status").is_null())
        .then(pl.format("task {} does not exist", tsk))
        .otherwise(pl.format("task {} belongs to warehouse {}, not {} where it was scanned", tsk, pl.col("_t_wh"),
                             pl.col("warehouse_id")))
    )
    rejected = pl.concat([
        pre.select("_in", pl.col("_pre").alias("reason_code"),
                   pl.when(pl.col("_pre") == "DUPLICATE_SCAN").then(dup_msg).otherwise(unknown_msg).alias("message"),
                   *[c for c in ("location", "task_id", "raw", "scan_id", "source_file")]),
        live.filter(pl.col("outcome") == "TASK_CLOSED").select(
            "_in", pl.col("outcome").alias("reason_code"), closed_msg.alias("message"),
            "location", "task_id", "raw", "scan_id", "source_file"),
    ], how="vertical_relaxed").sort("_in").select(
        "location", pl.col("task_id").alias("order_ref"), "reason_code", "message", "raw", "scan_id", "source_file",
    ).cast(SCAN_REJECT_SCHEMA)

    # --- tasks -----------------------------------------------------------------------------
    changed = live.filter((pl.col("confirmed_qty") > 0) | (pl.col("outcome") == "SHORT_PICK")).group_by("task_id").agg(
        pl.col("confirmed_qty").sum().alias("_add"),
        (pl.col("outcome") == "SHORT_PICK").any().alias("_short"),
        pl.col("scanned_at").max().alias("_last_at"),
    )
    new = tasks.join(changed, on="task_id", how="inner").with_columns(
        (pl.col("picked_qty") + pl.col("_add")).cast(tasks.schema["picked_qty"]).alias("picked_qty"))
    new = new.with_columns(
        pl.when(pl.col("picked_qty") >= pl.col("quantity")).then(pl.lit("PICKED"))
        .when(pl.col("_short")).then(pl.lit("SHORT")).otherwise(pl.lit("OPEN")).alias("status"),
    ).with_columns(
        pl.when(pl.col("status") != "OPEN").then(pl.col("_last_at")).otherwise(None)
        .cast(pl.Datetime("us", "UTC")).alias("closed_at"),
    ).select(*[c for c in tasks.columns if c != "closed_at"], "closed_at").sort("task_id")

    all_outcomes = pl.concat([accepted.select("outcome"), rejected.select(pl.col("reason_code").alias("outcome"))])
    got = dict(all_outcomes.group_by("outcome").len().iter_rows())
    counts = {o: int(got.get(o, 0)) for o in OUTCOMES}
    return ScanOutcome(accepted, rejected, new, counts)


__all__ = [
    "ACCEPTED_OUTCOMES", "OUTCOMES", "REJECTED_OUTCOMES", "SCAN_REJECT_SCHEMA", "SCAN_SCHEMA", "TASK_STATUSES",
    "Records", "ScanFile", "ScanOutcome", "barcode_problem", "judge_scans", "read_records", "read_scans",
    "to_gtin14", "valid_gtins",
]
