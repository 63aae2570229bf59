"""What every channel parser shares: decoding, the raw-row contract and the vectorised normaliser.

A channel parser turns a file's bytes into a :class:`ParseResult`:

- ``rows``: one row per order line of every *structurally sound* record, all fields as text
  (``RAW_COLUMNS``: the meta columns, the header fields repeated on each line, the line fields);
- ``rejected``: records that could not even be read (bad JSON, damaged X12 set, ragged CSV row...),
  each a :class:`Rejection` with reason code, message, location and raw text.

:func:`normalise` then types and checks every field with Polars expressions (no row loops), applies
"an order is captured whole or not at all", and returns the staged order headers, lines and the
quarantine rows. Conservation holds by construction: every record id ends in exactly one of
accepted / quarantined, and ``records_received = accepted + quarantined`` is asserted.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from som_pipeline import money
from som_pipeline.hashing import sha256_series, sha256_text
from som_pipeline.iso_codes import CURRENCIES
from som_pipeline.reasons import REASONS
from som_pipeline.schemas import QuarantineModel, StagedLineModel, StagedOrderModel, conform

# ------------------------------------------------------------------------------------------------
# Raw-row contract
# ------------------------------------------------------------------------------------------------
META_COLUMNS = [
    "record_id",  # unique per record within the file (e.g. "/orders/3", "ST 0001 #2", "row 17")
    "record_kind",  # one of schemas.RECORD_KINDS
    "record_location",  # human location of the record in the source
    "order_key",  # rows with the same key form one order (JSON/X12: = record_id; CSV/portal: = order ref)
    "location",  # human location of this line in the source
    "raw",  # raw text of the record
]
HEADER_FIELDS = [
    "order_ref",
    "order_ts",
    "customer_ref",
    "customer_po",
    "currency",
    "ship_to_name",
    "ship_to_company",
    "ship_to_line1",
    "ship_to_line2",
    "ship_to_city",
    "ship_to_region",
    "ship_to_postal_code",
    "ship_to_country",
    "ship_method",
    "promo_code",
    "payment_status",
    "channel_status",
    "cancelled_at",
    "ship_complete",
    "source_updated_at",
    "shipping_total",
    "channel_total",
    "prices_include_tax",
    "shipping_tax",
]
LINE_FIELDS = [
    "line_no",
    "line_ref",
    "sku",
    "description",
    "quantity",
    "uom",
    "unit_price",
    "line_amount",
    "discount_amount",
    "discount_pct",
    "tax_amount",
    "tax_rate",
    "shipping_amount",
    "requested_date",
]
# Fields only some parsers set (null = the default / not stated), kept out of HEADER_FIELDS and LINE_FIELDS so
# that the Amazon halves stored before they existed (stage.amazon_headers.header_json and
# stage.amazon_items.items_json, keyed by those lists) keep their hashes, and out of line-duplicate detection.
#   channel_subtotal, channel_discount_total, channel_tax_total: the document's stated totals (Shopify)
#   item_kind: catalog (default) | custom | service -- see schemas.orders._Line.item_kind
#   product_ids: every product id of the line as JSON (EDI PO1 qualifier/id pairs); null elsewhere
#   channel_line_count, channel_quantity_total: X12 CTT01 / CTT02 (number of lines, hash total of quantities)
STATED_TOTALS = ["channel_subtotal", "channel_discount_total", "channel_tax_total"]
STATED_COUNTS = ["channel_line_count", "channel_quantity_total"]
EXTRA_HEADER_FIELDS = [*STATED_TOTALS, *STATED_COUNTS]
EXTRA_LINE_FIELDS = [
    "item_kind",
    "product_ids",
]
RAW_COLUMNS = META_COLUMNS + HEADER_FIELDS + LINE_FIELDS + EXTRA_HEADER_FIELDS + EXTRA_LINE_FIELDS
RAW_SCHEMA = {c: pl.String for c in RAW_COLUMNS}

MAX_QUANTITY = 10_000_000  # beyond this a quantity is a data error, not an order


def raw_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Build the raw-row frame from dicts (missing keys -> null; every value as text)."""

    def txt(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    data = {c: [txt(r.get(c)) for r in rows] for c in RAW_COLUMNS}
    return pl.DataFrame(data, schema=RAW_SCHEMA)


@dataclass
class Rejection:
    """A record that could not be read into raw rows."""

    record_id: str
    record_kind: str
    location: str
    reason_code: str
    message: str
    raw: str | None = None
    order_ref: str | None = None

    def __post_init__(self) -> None:
        assert self.reason_code in REASONS, self.reason_code


@dataclass
class ParseResult:
    channel: str
    record_unit: str
    rows: pl.DataFrame
    rejected: list[Rejection] = field(default_factory=list)
    encoding: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def records_received(self) -> int:
        return self.rows["record_id"].n_unique() + len(self.rejected)


class DecodeError(Exception):
    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a channel file's bytes. Returns ``(text, encoding)``.

    UTF-8 (with or without BOM) first; UTF-16 only with its BOM; else Windows-1252 (what spreadsheet
    exports call "ANSI"), falling back to latin-1 for the five bytes cp1252 leaves undefined.
    Bytes that are not text at all (NUL bytes, control characters) raise ``DecodeError(BAD_ENCODING)``;
    an empty or all-whitespace file raises ``DecodeError(EMPTY_FILE)``.
    """
    if not data.strip():
        raise DecodeError("EMPTY_FILE", "the file is empty" if not data else "the file contains only whitespace")
    if data.startswith(codecs.BOM_UTF8):
        text, enc = _strict(data[3:], "utf-8", "utf-8-sig")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text, enc = _strict(data, "utf-16", "utf-16")
    else:
        try:
            text, enc = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, enc = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                text, enc = data.decode("latin-1"), "latin-1"
    bad = sum(1 for ch in text[:65536] if (ord(ch) < 32 and ch not in "\t\r\n\x0c") or ch == "\ufffd")
    if bad:
        raise DecodeError(
            "BAD_ENCODING",
            f"the content is not text ({bad} control/undecodable characters in the first 64 KiB, "
            f"read as {enc}); expected UTF-8, UTF-16 with BOM or Windows-1252",
        )
    if not text.strip():
        raise DecodeError("EMPTY_FILE", "the file contains only whitespace")
    return text, enc


def _strict(data: bytes, codec: str, name: str) -> tuple[str, str]:
    try:
        return data.decode(codec), name
    except UnicodeDecodeError as e:
        raise DecodeError("BAD_ENCODING", f"the file declares {name} (BOM) but byte {e.start} is invalid: {e.reason}") from e


def jtext(v: Any) -> str | None:
    """A JSON scalar as text ('' and null -> None)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v).strip()
    return s or None


# ------------------------------------------------------------------------------------------------
# Field parsing expressions
# ------------------------------------------------------------------------------------------------
def _txt(c: str) -> pl.Expr:
    t = pl.col(c).str.strip_chars()
    return pl.when(t == "").then(None).otherwise(t)


def parse_ts(c: str) -> pl.Expr:
    """ISO-8601 date/time to UTC. 'Z' and +hh:mm/+hhmm offsets honoured; no offset = UTC; a bare date
    is midnight UTC; a space may replace the 'T'."""
    t = _txt(c).str.replace(" ", "T").str.replace(r"Z$", "+00:00")
    t = (
        pl.when(t.str.contains(r"^\d{4}-\d{2}-\d{2}$"))
        .then(t + "T00:00:00+00:00")
        .when(t.str.contains(r"T\d{2}:\d{2}$"))
        .then(t + ":00+00:00")
        .when(~t.str.contains(r"[+-]\d{2}:?\d{2}$"))
        .then(t + "+00:00")
        .otherwise(t)
    )
    return t.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC", time_unit="us")


def parse_date(c: str) -> pl.Expr:
    t = _txt(c)
    return t.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def _present(c: str) -> pl.Expr:
    return _txt(c).is_not_null()


TRUE_WORDS = ["true", "1", "yes", "y", "t", "x"]


# ------------------------------------------------------------------------------------------------
# Normaliser
# ------------------------------------------------------------------------------------------------
@dataclass
class Captured:
    """Output of :func:`normalise` for one file."""

    headers: pl.DataFrame  # StagedOrderModel columns except capture_seq (filled at write time)
    lines: pl.DataFrame  # StagedLineModel
    quarantine: pl.DataFrame  # QuarantineModel
    records_received: int
    records_accepted: int
    records_quarantined: int
    encoding: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def orders_accepted(self) -> int:
        return self.headers.height


# (reason, message template) checks on rows, in priority order: the first that fails names the row.
def _row_checks(required_header: tuple[str, ...], line_no_given: bool) -> list[tuple[pl.Expr, str, pl.Expr]]:
    checks: list[tuple[pl.Expr, str, pl.Expr]] = []

    def msg(*parts: pl.Expr | str) -> pl.Expr:
        return pl.concat_str([p if isinstance(p, pl.Expr) else pl.lit(p) for p in parts], ignore_nulls=True)

    for f in required_header:
        checks.append((~_present(f), "MISSING_FIELD", msg(f"required field {f} is empty")))
    checks.append((~_present("sku"), "MISSING_FIELD", msg("required field sku is empty")))
    checks.append((~_present("quantity"), "MISSING_FIELD", msg("required field quantity is empty")))
    if line_no_given:
        checks.append((~_present("line_no"), "MISSING_FIELD", msg("required field line_no is empty")))
        checks.append(
            (pl.col("_line_no").is_null() | (pl.col("_line_no") < 1), "BAD_LINE_NO",
             msg("line_no '", pl.col("line_no"), "' is not a positive whole number"))
        )
    for f in ("order_ts", "cancelled_at", "source_updated_at"):
        checks.append(
            (_present(f) & pl.col(f"_{f}").is_null(), "BAD_DATE",
             msg(f"{f} '", pl.col(f), "' is not a real date/time (expected ISO 8601, e.g. 2026-10-01T14:30:00Z)"))
        )
    checks.append(
        (_present("requested_date") & pl.col("_requested_date").is_null(), "BAD_DATE",
         msg("requested_date '", pl.col("requested_date"), "' is not a real date (expected YYYY-MM-DD)"))
    )
    checks.append(
        (_present("currency") & ~pl.col("_currency").is_in(sorted(CURRENCIES)), "UNKNOWN_CURRENCY",
         msg("currency '", pl.col("currency"), "' is not an ISO 4217 code"))
    )
    checks.append(
        (~pl.col("_quantity_ok") | (pl.col("_quantity") <= 0) | (pl.col("_quantity") > MAX_QUANTITY), "BAD_QUANTITY",
         msg("quantity '", pl.col("quantity"), f"' is not a whole number between 1 and {MAX_QUANTITY:,}"))
    )
    checks.append(
        (~pl.col("_unit_price_ok") | (pl.col("_unit_price") <= 0), "BAD_PRICE",
         msg("unit_price '", pl.col("unit_price"), "' is not a positive decimal with at most 4 places"))
    )
    checks.append(
        (~pl.col("_line_amount_ok") | (pl.col("_line_amount") <= 0), "BAD_PRICE",
         msg("line amount '", pl.col("line_amount"), "' is not a positive decimal with at most 2 places"))
    )
    for f in ("discount_amount", "tax_amount", "shipping_amount", "shipping_total", "channel_total", "shipping_tax",
              *STATED_TOTALS):
        checks.append(
            (~pl.col(f"_{f}_ok") | (pl.col(f"_{f}") < 0), "BAD_AMOUNT",
             msg(f"{f} '", pl.col(f), "' is not a non-negative decimal with at most 2 places"))
        )
    for f in STATED_COUNTS:
        checks.append(
            (~pl.col(f"_{f}_ok") | (pl.col(f"_{f}") < 0), "BAD_AMOUNT",
             msg(f"{f} '", pl.col(f), "' is not a non-negative number"))
        )
    checks.append(
        (~pl.col("_discount_pct_ok") | (pl.col("_discount_pct") < 0) | (pl.col("_discount_pct") > 100), "BAD_RATE",
         msg("discount_pct '", pl.col("discount_pct"), "' is not a percentage between 0 and 100"))
    )
    checks.append(
        (~pl.col("_tax_rate_ok") | (pl.col("_tax_rate") < 0) | (pl.col("_tax_rate") >= 1), "BAD_RATE",
         msg("tax_rate '", pl.col("tax_rate"), "' is not a fraction between 0 and 1 (0.0825 = 8.25 %)"))
    )
    checks.append(
        (pl.col("_gross").is_null() & pl.col("_unit_price").is_not_null() & pl.col("_quantity").is_not_null(),
         "BAD_AMOUNT", msg("quantity x unit_price is too large for an amount (more than 16 digits)"))
    )
    checks.append(
        (pl.col("_discount").is_not_null() & pl.col("_gross").is_not_null() & (pl.col("_discount") > pl.col("_gross")),
         "BAD_AMOUNT", msg("discount ", pl.col("_discount").cast(pl.String), " exceeds the line amount ",
                           pl.col("_gross").cast(pl.String)))
    )
    return checks


def normalise(
    result: ParseResult,
    *,
    source_file: str,
    file_sha256: str,
    captured_at: datetime | None = None,
    required_header: tuple[str, ...] = ("order_ref", "order_ts", "currency"),
    line_no_given: bool = False,
) -> Captured:
    """Type, check and assemble a file's raw rows into staged orders + lines + quarantine.

    ``line_no_given``: the channel states line numbers (CSV, portal); otherwise lines are numbered by
    position within their record and duplicates are detected on the channel's ``line_ref``.
    """
    return normalise_many([(result, source_file, file_sha256)], captured_at=captured_at,
                          required_header=required_header, line_no_given=line_no_given)[0]


def normalise_many(
    items: list[tuple[ParseResult, str, str]],
    *,
    captured_at: datetime | None = None,
    required_header: tuple[str, ...] = ("order_ref", "order_ts", "currency"),
    line_no_given: bool = False,
) -> list[Captured]:
    """:func:`normalise` for many files of one channel in ONE vectorised pass: ``items`` are
    ``(parse result, source_file, file_sha256)``; returns one :class:`Captured` per item, in order,
    identical to what :func:`normalise` gives for each file alone (a small file costs ~1 ms, not ~30).

    The steps, each a frame -> frame function: stack the files' rows, parse every field, compute the
    line money, flag row errors, duplicate lines and inconsistent headers (first reason wins), judge
    records and orders, build the quarantine, assemble the accepted orders, split per file."""
    captured_at = captured_at or datetime.now(UTC)
    channel = items[0][0].channel if items else "csv"
    df = _stack_rows(items)
    df = _parse_fields(df, line_no_given)
    df = _line_money(df)
    df = _flag_row_errors(df, required_header, line_no_given)
    df = _flag_duplicate_lines(df, line_no_given)
    df = _flag_inconsistent_headers(df)
    rec = _record_verdicts(df)
    quarantine = _quarantine(rec, items, channel, captured_at)
    good_records = rec.filter(pl.col("reason").is_null()).select("record_id", "_fi")
    good = df.join(good_records.select("record_id"), on="record_id", how="semi").filter(~pl.col("_exact_copy"))
    headers, lines = _assemble(good, channel, captured_at)
    return _split_per_file(items, good_records, headers, lines, quarantine)


def _stack_rows(items: list[tuple[ParseResult, str, str]]) -> pl.DataFrame:
    """All files' raw rows in one frame, with the file index ``_fi``, ``_src``, ``_sha`` and ``_row``."""
    frames = []
    for i, (res, src, sha) in enumerate(items):
        frames.append(res.rows.with_columns(
            pl.lit(i, dtype=pl.Int32).alias("_fi"), pl.lit(src).alias("_src"), pl.lit(sha).alias("_sha")))
    rows = pl.concat(frames, how="vertical") if frames else raw_frame([]).with_columns(
        pl.lit(0, dtype=pl.Int32).alias("_fi"), pl.lit("").alias("_src"), pl.lit("").alias("_sha")).clear()
    # record ids and order keys are unique per file: qualify them with the file index for grouping
    return rows.with_columns(
        pl.col("record_id").alias("_rid0"),
        pl.col("order_key").alias("_okey0"),
        pl.concat_str([pl.col("_fi").cast(pl.String), pl.col("record_id")], separator="\x1d").alias("record_id"),
        pl.concat_str([pl.col("_fi").cast(pl.String), pl.col("order_key")], separator="\x1d").alias("order_key"),
    ).with_row_index("_row")


def _parse_fields(rows: pl.DataFrame, line_no_given: bool) -> pl.DataFrame:
    """Typed ``_<field>`` columns (null when unreadable) and ``_<field>_ok`` flags for the numbers."""
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    ln, _ = money.parse_int(pl.col("line_no"))
    up, up_ok = money.parse_decimal(pl.col("unit_price"), 4)
    la, la_ok = money.parse_decimal(pl.col("line_amount"), 2)
    parsed = [
        qty.alias("_quantity"), qty_ok.alias("_quantity_ok"),
        up.alias("_unit_price"), up_ok.alias("_unit_price_ok"),
        la.alias("_line_amount"), la_ok.alias("_line_amount_ok"),
        pl.when(pl.lit(line_no_given)).then(ln)
        .otherwise(pl.int_range(1, pl.len() + 1).over("record_id")).alias("_line_no"),
        _txt("currency").str.to_uppercase().alias("_currency"),
        parse_date("requested_date").alias("_requested_date"),
    ]
    for f in ("order_ts", "cancelled_at", "source_updated_at"):
        parsed.append(parse_ts(f).alias(f"_{f}"))
    for f in ("discount_amount", "tax_amount", "shipping_amount", "shipping_total", "channel_total", "shipping_tax",
              *STATED_TOTALS):
        v, ok = money.parse_decimal(pl.col(f), 2)
        parsed += [v.alias(f"_{f}"), ok.alias(f"_{f}_ok")]
    v, ok = money.parse_decimal(pl.col("channel_line_count"), 0)
    parsed += [v.cast(pl.Int64, strict=False).alias("_channel_line_count"), ok.alias("_channel_line_count_ok")]
    v, ok = money.parse_decimal(pl.col("channel_quantity_total"), 4)
    parsed += [v.alias("_channel_quantity_total"), ok.alias("_channel_quantity_total_ok")]
    v, ok = money.parse_decimal(pl.col("discount_pct"), 4)
    # the rate a percentage stands for: pct / 100 is exact at scale 6 (pct has at most 4 places; Polars
    # division keeps the dividend's scale, so widen first)
    parsed += [v.alias("_discount_pct"), ok.alias("_discount_pct_ok"),
               (v.cast(pl.Decimal(38, 6)) / 100).alias("_discount_rate")]
    v, ok = money.parse_decimal(pl.col("tax_rate"), 6)
    parsed += [v.alias("_tax_rate"), ok.alias("_tax_rate_ok")]
    return rows.with_columns(parsed)


def _line_money(df: pl.DataFrame) -> pl.DataFrame:
    """Money, per line, rounded once (see som_pipeline.money): ``_gross``, ``_discount``, ``_tax``, ``_price``.

    A discount given as a percentage is ``discount_rate x line_amount`` (rate = pct / 100), the exact product
    rounded once; an absolute discount (``discount_amount``) is taken as given and leaves the rate null."""
    return df.with_columns(
        # gross: stated extended amount, else quantity x unit price (exact product, rounded once)
        # (an extension that does not fit MONEY becomes null here and is rejected below as BAD_AMOUNT)
        pl.coalesce(
            pl.col("_line_amount"),
            money.mul(pl.col("_unit_price"), 4, pl.col("_quantity"), 0).round(2, mode=money.ROUNDING),
        ).cast(money.MONEY, strict=False).alias("_gross"),
    ).with_columns(
        pl.coalesce(
            pl.col("_discount_amount"),
            money.mul(pl.col("_gross"), 2, pl.col("_discount_rate"), 6).round(2, mode=money.ROUNDING),
            pl.lit(0),
        ).cast(money.MONEY, strict=False).alias("_discount"),
        pl.when(pl.col("_discount_amount").is_null()).then(pl.col("_discount_rate"))
        .cast(money.RATE, strict=False).alias("_discount_rate"),
    ).with_columns(
        pl.coalesce(
            pl.col("_tax_amount"),
            money.mul(pl.col("_gross") - pl.col("_discount"), 2, pl.col("_tax_rate"), 6).round(2, mode=money.ROUNDING),
            pl.lit(0),
        ).cast(money.MONEY, strict=False).alias("_tax"),
        # unit price: stated, else derived from the stated extended amount (rounded to 4 places)
        pl.coalesce(
            pl.col("_unit_price"),
            pl.when(pl.col("_quantity") > 0).then(
                (pl.col("_line_amount").cast(pl.Decimal(38, 8)) / pl.col("_quantity").cast(pl.Decimal(38, 0)))
                .round(4, mode=money.ROUNDING)
            ),
        ).cast(money.UNIT_PRICE, strict=False).alias("_price"),
    )


def _flag_row_errors(df: pl.DataFrame, required_header: tuple[str, ...], line_no_given: bool) -> pl.DataFrame:
    """``_reason`` / ``_message`` of the first :func:`_row_checks` check a row fails (null: none)."""
    checks = _row_checks(required_header, line_no_given)
    reason = pl.lit(None, dtype=pl.String)
    message = pl.lit(None, dtype=pl.String)
    for cond, code, m in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(pl.lit(code)).otherwise(reason)
        message = pl.when(cond.fill_null(False)).then(m).otherwise(message)
    return df.with_columns(reason.alias("_reason"), message.alias("_message"))


def _flag_if_clean(cond: pl.Expr, code: str, message: pl.Expr) -> list[pl.Expr]:
    """``_reason`` = ``code`` and ``_message`` = ``message`` where ``cond`` holds and no reason is set yet."""
    hit = pl.col("_reason").is_null() & cond
    return [
        pl.when(hit).then(pl.lit(code)).otherwise(pl.col("_reason")).alias("_reason"),
        pl.when(hit).then(message).otherwise(pl.col("_message")).alias("_message"),
    ]


def _flag_duplicate_lines(df: pl.DataFrame, line_no_given: bool) -> pl.DataFrame:
    """DUPLICATE_LINE where a line id repeats with different content (or inside one multi-row record);
    ``_exact_copy`` marks a single-row record repeating a line exactly (dropped, the order kept)."""
    line_content = pl.concat_str(
        [pl.col(c).fill_null("\x00") for c in LINE_FIELDS if c != "line_no"], separator="\x1f"
    )
    # stated line numbers (CSV, portal) identify lines; otherwise the channel's line id does
    dup_key = (
        pl.col("_line_no").cast(pl.String)
        if line_no_given
        else pl.coalesce(_txt("line_ref"), pl.col("_line_no").cast(pl.String))
    )
    df = df.with_columns(
        line_content.alias("_line_content"),
        dup_key.alias("_dup_key"),
        pl.len().over("record_id").alias("_record_rows"),
    ).with_columns(
        pl.col("_line_content").n_unique().over("order_key", "_dup_key").alias("_variants"),
        pl.int_range(pl.len()).over("order_key", "_dup_key").alias("_dup_rank"),
    )
    conflict = (pl.col("_variants") > 1) | ((pl.col("_dup_rank") > 0) & (pl.col("_record_rows") > 1))
    exact_copy = (pl.col("_dup_rank") > 0) & (pl.col("_variants") == 1) & (pl.col("_record_rows") == 1)
    return df.with_columns(
        *_flag_if_clean(conflict, "DUPLICATE_LINE", pl.concat_str(
            [pl.lit("line "), pl.col("_dup_key"), pl.lit(" appears more than once with different content")])),
        (pl.col("_reason").is_null() & exact_copy).alias("_exact_copy"),
    )


def _flag_inconsistent_headers(df: pl.DataFrame) -> pl.DataFrame:
    """INCONSISTENT_HEADER where the rows of one order disagree on a header field."""
    # one group_by over the orders with several rows (single-row orders cannot disagree), joined back
    hdr = list(HEADER_FIELDS)
    multi = df.filter(pl.len().over("order_key") > 1)
    incons = (
        multi.group_by("order_key")
        .agg([(pl.col(c).n_unique() > 1).alias(c) for c in hdr])
        .select("order_key", pl.concat_str([pl.when(pl.col(c)).then(pl.lit(c)) for c in hdr], separator=", ",
                                           ignore_nulls=True).alias("_incons"))
        .filter(pl.col("_incons") != "")
    )
    bad_fields = df.select("order_key").join(incons, on="order_key", how="left", maintain_order="left")[
        "_incons"].fill_null("")
    return df.with_columns(bad_fields.alias("_incons")).with_columns(
        *_flag_if_clean(pl.col("_incons").ne(""), "INCONSISTENT_HEADER", pl.concat_str(
            [pl.lit("rows of order "), pl.col("order_ref").fill_null("?"), pl.lit(" disagree on: "), pl.col("_incons")]))
    )


def _record_verdicts(df: pl.DataFrame) -> pl.DataFrame:
    """One row per record: its first row reason (or DUPLICATE_LINE for an exact copy, or ORDER_INCOMPLETE
    when another record of its order is rejected) and a message naming up to five bad lines."""
    rowmsg = pl.concat_str([pl.col("location"), pl.lit(": "), pl.col("_message")], ignore_nulls=True)
    rec = (
        df.group_by("record_id", maintain_order=True)
        .agg(
            pl.col("_fi").first(),
            pl.col("_rid0").first(),
            pl.col("_src").first(),
            pl.col("_sha").first(),
            pl.col("record_kind").first(),
            pl.col("record_location").first(),
            pl.col("order_key").first(),
            pl.col("order_ref").first(),
            pl.col("raw").first(),
            pl.col("_reason").drop_nulls().first().alias("reason"),
            rowmsg.filter(pl.col("_reason").is_not_null()).head(5).str.join("; ").alias("message"),
            pl.col("_reason").is_not_null().sum().alias("bad_rows"),
            pl.col("_exact_copy").all().alias("exact_copy"),
        )
        .with_columns(
            pl.when(pl.col("bad_rows") > 5)
            .then(pl.col("message") + pl.format(" (and {} more lines)", pl.col("bad_rows") - 5))
            .otherwise(pl.col("message"))
            .alias("message")
        )
    )
    rec = rec.with_columns(
        pl.when(pl.col("exact_copy") & pl.col("reason").is_null())
        .then(pl.lit("DUPLICATE_LINE"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(pl.col("exact_copy") & pl.col("reason").is_null())
        .then(pl.lit("exact copy of a line already in this order; the copy is dropped, the order is kept"))
        .otherwise(pl.col("message"))
        .alias("message"),
    )
    order_bad = (pl.col("reason").is_not_null() & ~pl.col("exact_copy")).any().over("order_key")
    first_bad = pl.concat_str(
        [pl.col("record_location"), pl.lit(" ("), pl.col("reason"), pl.lit(")")]
    ).filter(pl.col("reason").is_not_null() & ~pl.col("exact_copy")).first().over("order_key")
    return rec.with_columns(
        pl.when(pl.col("reason").is_null() & order_bad)
        .then(pl.lit("ORDER_INCOMPLETE"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(pl.col("reason").is_null() & order_bad)
        .then(pl.concat_str([pl.lit("order "), pl.col("order_ref").fill_null("?"),
                             pl.lit(" not captured: another record was rejected: "), first_bad]))
        .otherwise(pl.col("message"))
        .alias("message"),
    )


def _quarantine(
    rec: pl.DataFrame, items: list[tuple[ParseResult, str, str]], channel: str, captured_at: datetime
) -> pl.DataFrame:
    """QuarantineModel rows (plus ``_fi``): the rejected records, then the parsers' rejections."""
    qcols = {"_fi": pl.Int32, "_rid0": pl.String, "_src": pl.String, "_sha": pl.String, "location": pl.String,
             "record_kind": pl.String, "order_ref": pl.String, "reason_code": pl.String, "message": pl.String,
             "raw": pl.String}
    quarantine_parts = [
        rec.filter(pl.col("reason").is_not_null()).select(
            "_fi", "_rid0", "_src", "_sha", pl.col("record_location").alias("location"), "record_kind",
            pl.col("order_ref"), pl.col("reason").alias("reason_code"), "message", "raw",
        ).cast(qcols)
    ]
    rejections = [
        {"_fi": i, "_rid0": r.record_id, "_src": src, "_sha": sha, "location": r.location, "record_kind": r.record_kind,
         "order_ref": r.order_ref, "reason_code": r.reason_code, "message": r.message, "raw": r.raw}
        for i, (res, src, sha) in enumerate(items) for r in res.rejected
    ]
    if rejections:
        quarantine_parts.append(pl.DataFrame(rejections, schema=qcols))
    quarantine = pl.concat(quarantine_parts, how="vertical")
    quarantine = quarantine.with_columns(
        sha256_series(
            pl.concat_str([pl.col("_sha"), pl.col("_rid0"), pl.col("reason_code")], separator="|"), quarantine,
        ).alias("quarantine_id"),
        pl.lit(channel).alias("channel"),
        pl.col("_src").alias("source_file"),
        pl.col("_sha").alias("file_sha256"),
        pl.lit(captured_at).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    q_fi = quarantine["_fi"]
    return conform(quarantine, QuarantineModel).with_columns(q_fi)


def _split_per_file(
    items: list[tuple[ParseResult, str, str]], good_records: pl.DataFrame, headers: pl.DataFrame,
    lines: pl.DataFrame, quarantine: pl.DataFrame,
) -> list[Captured]:
    """One :class:`Captured` per file; asserts conservation (received = accepted + quarantined)."""
    n = len(items)
    acc = good_records.group_by("_fi").len()
    acc = dict(zip(acc["_fi"].to_list(), acc["len"].to_list(), strict=True))
    hq = headers.partition_by("_fi", as_dict=True, include_key=False)
    lq = lines.partition_by("_fi", as_dict=True, include_key=False)
    qq = quarantine.partition_by("_fi", as_dict=True, include_key=False)
    h0, l0, q0 = headers.drop("_fi").clear(), lines.drop("_fi").clear(), quarantine.drop("_fi").clear()
    out = []
    for i in range(n):
        res = items[i][0]
        h, ln, q = hq.get((i,), h0), lq.get((i,), l0), qq.get((i,), q0)
        received, accepted = res.records_received, acc.get(i, 0)
        assert received == accepted + q.height, (items[i][1], received, accepted, q.height)
        out.append(Captured(h, ln, q, received, accepted, q.height, res.encoding, res.extras))
    return out


def _assemble(good: pl.DataFrame, channel: str, captured_at: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Headers and lines of the accepted orders (both keep ``_fi``, the file index)."""
    capture_id = pl.concat_str([pl.col("_sha").str.slice(0, 16), pl.lit("/"), pl.col("_okey0")])
    lines = good.select(
        pl.col("_fi"),
        capture_id.alias("capture_id"),
        pl.col("order_key"),
        pl.col("_line_no").alias("line_no"),
        _txt("line_ref").alias("line_ref"),
        _txt("sku").alias("sku"),
        _txt("description").alias("description"),
        pl.col("_quantity").alias("quantity"),
        pl.coalesce(_txt("uom").str.to_uppercase(), pl.lit("EA")).alias("uom"),
        pl.col("_price").alias("unit_price"),
        pl.col("_gross").alias("line_amount"),
        pl.col("_discount").alias("discount_amount"),
        pl.col("_discount_rate").alias("discount_rate"),
        pl.col("_tax_rate").cast(money.RATE, strict=False).alias("tax_rate"),
        pl.col("_tax").alias("tax_amount"),
        pl.coalesce(pl.col("_shipping_amount"), pl.lit(0).cast(money.MONEY)).cast(money.MONEY).alias("shipping_amount"),
        pl.col("_requested_date").alias("requested_date"),
        pl.coalesce(_txt("item_kind").str.to_lowercase(), pl.lit("catalog")).alias("item_kind"),
        _txt("product_ids").alias("product_ids"),
        pl.col("_row"),
    ).sort("capture_id", "line_no")

    totals = lines.group_by("capture_id").agg(
        pl.when(pl.col("line_amount").null_count() == 0).then(pl.col("line_amount").sum()).alias("items_subtotal"),
        pl.col("discount_amount").sum().alias("discount_total"),
        pl.col("tax_amount").sum().alias("tax_total"),
        pl.col("shipping_amount").sum().alias("_line_shipping"),
        pl.len().alias("line_count"),
        pl.col("unit_price").null_count().alias("unpriced_lines"),
        (pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("\x00") for c in
             # discount_rate stays out of the hash: it is given by discount_amount (its rounded product) for
             # every change but one that moves no cent, and orders captured before it existed keep their hash
             ("line_no", "line_ref", "sku", "description", "quantity", "uom", "unit_price", "line_amount",
              "discount_amount", "tax_rate", "tax_amount", "shipping_amount", "requested_date")],
            separator="\x1f",
        )
         # item_kind enters only when not 'catalog': orders captured before it existed keep their hash
         + pl.when(pl.col("item_kind") != "catalog").then("\x1fkind:" + pl.col("item_kind")).otherwise(pl.lit(""))
         ).sort_by("line_no").str.join("\x1e").alias("_lines_text"),
    )
    first = good.group_by("order_key", maintain_order=True).first()
    headers = first.select(
        pl.col("_fi"),
        capture_id.alias("capture_id"),
        pl.lit(channel).alias("channel"),
        _txt("order_ref").alias("channel_order_ref"),
        _txt("customer_ref").alias("customer_ref"),
        _txt("customer_po").alias("customer_po"),
        pl.col("_order_ts").alias("order_ts"),
        pl.col("_currency").alias("currency"),
        *[_txt(c).alias(c) for c in ("ship_to_name", "ship_to_company", "ship_to_line1", "ship_to_line2",
                                      "ship_to_city", "ship_to_region", "ship_to_postal_code")],
        _txt("ship_to_country").str.to_uppercase().alias("ship_to_country"),
        _txt("ship_method").alias("ship_method"),
        _txt("promo_code").alias("promo_code"),
        _txt("payment_status").str.to_lowercase().alias("payment_status"),
        _txt("channel_status").alias("channel_status"),
        pl.col("_cancelled_at").alias("cancelled_at"),
        _txt("ship_complete").str.to_lowercase().is_in(TRUE_WORDS).fill_null(False).alias("ship_complete"),
        pl.col("_shipping_total").alias("_hdr_shipping"),
        pl.col("_channel_total").alias("channel_total"),
        # stated totals: kept out of content_hash (a re-send changes them only with what they total)
        *[pl.col(f"_{f}").alias(f) for f in STATED_TOTALS + STATED_COUNTS],
        _txt("prices_include_tax").str.to_lowercase().is_in(TRUE_WORDS).fill_null(False).alias("prices_include_tax"),
        pl.coalesce(pl.col("_shipping_tax"), pl.lit(0)).cast(money.MONEY).alias("shipping_tax"),
        pl.col("_src").alias("source_file"),
        pl.col("record_location").alias("source_location"),
        pl.col("_source_updated_at").alias("source_updated_at"),
        pl.lit(captured_at).cast(pl.Datetime("us", "UTC")).alias("captured_at"),
    ).join(totals, on="capture_id", how="left")
    headers = headers.with_columns(
        pl.coalesce(pl.col("_hdr_shipping"), pl.col("_line_shipping")).cast(money.MONEY).alias("shipping_total"),
        (pl.col("tax_total") + pl.col("shipping_tax")).cast(money.MONEY).alias("tax_total"),
    ).with_columns(
        # tax-inclusive prices (Shopify taxes_included): the tax is already in the prices and shipping
        (pl.col("items_subtotal") - pl.col("discount_total") + pl.col("shipping_total")
         + pl.when(pl.col("prices_include_tax")).then(pl.lit(0, money.MONEY)).otherwise(pl.col("tax_total")))
        .cast(money.MONEY)
        .alias("order_total"),
    )
    header_text = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("\x00") for c in
         ("channel", "channel_order_ref", "customer_ref", "customer_po", "order_ts", "currency", "ship_to_name",
          "ship_to_company", "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_region",
          "ship_to_postal_code", "ship_to_country", "ship_method", "promo_code", "payment_status",
          "channel_status", "cancelled_at", "ship_complete", "shipping_total", "channel_total")]
        + [pl.col("_lines_text")]
        # fields added later enter the hash only when set, so orders captured before keep their hash
        + [pl.when(pl.col("prices_include_tax") | (pl.col("shipping_tax") != 0))
           .then(pl.format("tax:{}:{}", pl.col("prices_include_tax"), pl.col("shipping_tax"))).otherwise(pl.lit(""))],
        separator="\x1f",
    )
    headers = headers.with_columns(sha256_series(header_text, headers).alias("content_hash"))
    # capture_seq is assigned when the observation is written to stage.order_headers
    headers = conform(headers.with_columns(pl.lit(0).alias("capture_seq")), StagedOrderModel).with_columns(headers["_fi"])
    lines = conform(lines, StagedLineModel).with_columns(lines["_fi"])
    return headers, lines


def file_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


__all__ = [
    "Captured",
    "DecodeError",
    "ParseResult",
    "RAW_COLUMNS",
    "Rejection",
    "decode_text",
    "file_sha256",
    "jtext",
    "normalise",
    "raw_frame",
    "sha256_text",
]
