"""Returns in: return requests, Shopify refunds, Amazon returns reports and return receipts, bytes -> typed
rows + rejects. Pure, never raises on bad input.

Every reader is ``(data: bytes, source_file: str) -> <File>(rows, rejected, received)`` with
``received == rows.height + rejected.height`` (counts conserve per file). ``rejected`` is the house
``REJECT_SCHEMA``: ``location, order_ref, reason_code, message, raw``. A file with nothing readable (not text,
empty, header only, broken JSON, a required CSV column missing) is one rejected record at location ``file``.

Return requests (:func:`read_return_requests`, ``landing/returns/``)
---------------------------------------------------------------------
CSV with a header, JSON lines, a JSON array, or ``{"returns": [...]}`` (locations ``/returns/<i>``). Column /
key names are case-insensitive (the shared record reader of :mod:`som_pipeline.fulfilment.scans`).

| field | required | meaning |
|---|---|---|
| ``request_id`` | no | the requester's id; several rows with the same id are one request (one RMA) of several lines. Absent: ``sha256(order_ref|line|quantity|requested_at)`` (``line`` = ``line_no``, else ``sku:<sku>``, else ``ref:<channel_line_ref>``; ``requested_at`` as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``): the same row in another file has the same id |
| ``order_ref`` | yes | our order id (``CSV-123``) or the channel's order reference |
| ``line_no`` / ``sku`` / ``channel_line_ref`` | one of them | the order line: its number, else its SKU, else the channel's line id |
| ``quantity`` | yes | units returned, a whole number >= 1 |
| ``reason`` | yes | one of :data:`RETURN_REASONS`, case-insensitive (stored upper-case) |
| ``requested_at`` | yes | ISO-8601; no offset = UTC |
| ``customer_note`` | no | free text (a formula start is neutralised) |
| ``exchange_sku`` | no | the customer wants this SKU instead: an exchange, not a refund |

Rejections: ``MISSING_FIELD``, ``BAD_LINE_NO``, ``BAD_QUANTITY``, ``BAD_RETURN_REASON``, ``BAD_DATE`` (the
timestamp), ``DUPLICATE_LINE`` (a later row of the same request for the same line: an identical copy is
counted once, a differing one is rejected, the first row stands), plus the structural ``CSV_*``,
``INVALID_JSON``, ``EMPTY_FILE``, ``BAD_ENCODING``, ``UNREADABLE_FILE``.

Shopify refunds (:func:`read_shopify_refund`)
---------------------------------------------
``{"refund": {...}}``, ``{"refunds": [...]}`` or a list of refund objects (or of ``{"refund": ...}``). One
request per ``refund_line_items`` entry (location ``/refund/refund_line_items/<j>`` etc.):
``order_ref`` = the refund's ``order_id`` as text, ``channel_line_ref`` = ``line_item_id``, ``sku`` = the
embedded ``line_item.sku``, ``quantity``, ``restock_type`` (or, from the legacy ``restock`` flag,
``legacy_restock`` / ``no_restock``), ``channel_amount`` = the line's ``subtotal``, ``channel_tax`` = its
``total_tax`` (null when not sent), ``refund_amount`` = Σ of the refund's ``transactions`` of kind ``refund``
whose status is ``success`` (or absent): the refund's money, repeated on each of its lines (a reconciliation
figure; never sum it over lines). ``requested_at`` = ``processed_at`` else ``created_at``; ``customer_note`` =
the refund's ``note``; ``request_id`` = ``shopify-refund-line:<refund line id>`` (absent: the content hash);
``status = 'refunded'``: the channel already decided; ``reason`` is null (Shopify states none per line).

A refund that cannot be read as a whole is one rejected record: not an object, a refund **calculation**
(``POST refunds/calculate``: no ``id`` and only ``suggested_refund`` transactions -- nothing was refunded),
no ``order_id``, no time, no refund line items (a money-only refund: shipping or goodwill, not a return), a
refund transaction amount that is not a decimal. A bad line is rejected alone (``BAD_QUANTITY``,
``BAD_AMOUNT``, ``MISSING_FIELD`` for a line without ``line_item_id``).

Amazon returns reports (:func:`read_amazon_returns`, ``landing/returns/``)
--------------------------------------------------------------------------
Flat files of the Selling Partner API Reports API, as downloaded (tab-separated, a header row, no quoting: a
``"`` is an ordinary character; UTF-8 with or without BOM, or Windows-1252; LF or CRLF; blank lines skipped).
Column names are case-insensitive, any order, unknown columns ignored (kept in ``raw``). One request per row,
location ``line N`` (physical line). Two reports, told apart by the header:

- **FBA customer returns**, ``GET_FBA_FULFILLMENT_CUSTOMER_RETURNS_DATA`` (header names ``return-date`` and
  ``order-id``). Columns, as documented by Amazon ("FBA Customer Concessions reports attributes",
  developer-docs.amazon.com/sp-api/docs/fba-customer-concessions-reports-attributes) and as read by public
  clients (airbytehq/airbyte ``FbaCustomerReturnsReports``, an Odoo ``amazon.return`` importer): ``return-date,
  order-id, sku, asin, fnsku, product-name, quantity, fulfillment-center-id, detailed-disposition, reason,
  status, license-plate-number, customer-comments``; ``return-date`` is ISO-8601 with an offset
  (``2026-11-20T10:15:00+00:00``). NB: the brief this reader was written from called this column set
  ``GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE``; Amazon's docs give that name to the merchant-fulfilled report
  below.
- **Merchant-fulfilled (MFN) returns by return date**, ``GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE`` (header names
  ``Order ID`` and ``Return request date``). Columns as documented ("Returns reports attributes",
  developer-docs.amazon.com/sp-api/docs/returns-reports-attributes; the airbyte JSON schema of that stream; one
  real document quoted in a public integration note): ``Order ID, Order date, Return request date, Return
  request status, Amazon RMA ID, Merchant RMA ID, Label type, Label cost, Currency code, Return carrier, Tracking
  ID, Label to be paid by, A-to-Z Claim, Is prime, ASIN, Merchant SKU, Item Name, Return quantity, Return
  Reason, In policy, Return type, Resolution, Invoice number, Return delivery date, Order Amount, Order quantity,
  SafeT Action reason, SafeT claim id, SafeT claim state, SafeT claim creation time, SafeT claim reimbursement
  amount, Refunded Amount``; dates as ``14-Jul-2025`` (a day: read as midnight UTC; ISO accepted too); reasons
  prefixed ``CR-`` (``CR-DEFECTIVE``) or Amazon's ``AMZ-PG-...`` codes. The ``Prime returns`` CSV
  (``GET_CSV_MFN_PRIME_RETURNS_REPORT``) is **not** read: its column set could not be confirmed.

| request field | FBA column | MFN column |
|---|---|---|
| ``order_ref`` (required) | ``order-id`` | ``Order ID`` |
| ``sku`` (required; the line is found by SKU) | ``sku`` | ``Merchant SKU`` |
| ``quantity`` (required, >= 1) | ``quantity`` | ``Return quantity`` |
| ``requested_at`` (required) | ``return-date`` | ``Return request date`` |
| ``reason`` | ``reason`` via :data:`AMAZON_REASONS` | ``Return Reason`` (``CR-`` dropped) via the same |
| ``customer_note`` | ``customer-comments`` (formula start neutralised) | -- |
| ``request_id`` | ``amazon-return:<license-plate-number>`` | ``amazon-rma:<Amazon RMA ID>`` |
| ``disposition`` / ``fulfillment_center`` | ``detailed-disposition`` (upper case) / ``fulfillment-center-id`` | -- |
| ``source`` / ``status`` | ``amazon_fba_return`` / ``refunded`` | ``amazon_mfn_return`` / ``requested`` |

- **Reasons**: Amazon's codes map onto :data:`RETURN_REASONS` (:data:`AMAZON_REASONS`; seller-fault ones --
  ``DEFECTIVE``, ``DAMAGED_BY_CARRIER`` / ``_FC``, ``SWITCHEROO``, ``NOT_AS_DESCRIBED``, ``MISSING_PARTS``,
  ``QUALITY_UNACCEPTABLE`` ... -- onto :data:`~.rules.SELLER_FAULT` reasons, so no restocking fee;
  ``MISSED_ESTIMATED_DELIVERY`` is the customer's "took too long, I don't want it any more":
  ``NO_LONGER_NEEDED``). A code not in the table, or none, is **not** rejected: the return happened (for FBA
  Amazon has already refunded it), so it is ``OTHER`` and the note starts ``Amazon reason <code>: `` (the raw
  code kept for a person). ``BAD_RETURN_REASON`` is therefore never emitted by this reader.
- **Ids**: without a license plate / RMA id, the house content hash ``sha256(order_ref|sku:<sku>|quantity|
  requested_at)``: file-independent, so an overlapping later download of the same rows is not judged twice (the
  service drops ids it has). Rows of one plate / RMA are the lines of one request (one RMA); a later row of the
  same id and SKU is ``DUPLICATE_LINE`` (an identical copy counted once, a differing one rejected).
- **FBA returns are channel-decided** (``status = 'refunded'``, as a Shopify refund): Amazon authorised,
  received (at ``fulfillment-center-id``, on ``return-date``) and refunded it under its own policy; the
  judge never refuses them on window or category, only on order line / delivered quantity. The report row **is
  the receipt**: nothing comes to ``landing/return_receipts``; the returns service records the receipt itself
  (``services.returns._fba_receipts``: grade from the disposition, :data:`FBA_GRADES`, at
  ``AMAZON-FBA-<fc>``, no stock-ledger movement -- FBA stock is Amazon's to count), so the refund is not a
  ``REFUND_WITHOUT_RECEIPT``.
- **MFN returns are requests** (``status = 'requested'``): the unit comes back to our warehouse, judged by the
  house rules like any request, received through ``landing/return_receipts``. A row whose ``Return request
  status`` says rejected / cancelled / denied / declined is ``UNSUPPORTED_DOCUMENT`` (nothing comes back).

Rejections: ``MISSING_FIELD`` (names the report's column), ``BAD_QUANTITY``, ``BAD_DATE``, ``DUPLICATE_LINE``,
``UNSUPPORTED_DOCUMENT`` (above), ``CSV_EXTRA_FIELDS`` (more non-empty fields than the header; a row with fewer
reads its missing trailing fields as empty -- editors drop trailing tabs -- and a required one is then
``MISSING_FIELD``); whole file: ``EMPTY_FILE`` (also a header without rows), ``CSV_MISSING_COLUMN`` (a required
column missing; a tab-separated header of neither report is not detected as Amazon), ``UNREADABLE_FILE`` (a
column named twice), ``BAD_ENCODING``.

Return receipts (:func:`read_return_receipts`, ``landing/return_receipts/``)
-----------------------------------------------------------------------------
CSV (JSON lines / array accepted as well): ``rma_id`` (yes), ``line_no`` (the RMA line, default 1), ``sku``
(yes: what arrived), ``quantity`` (yes, >= 1), ``grade`` (yes: :data:`GRADES`, case-insensitive),
``received_at`` (yes), ``warehouse_id`` (yes), ``note``, ``final`` (no: true when the warehouse expects nothing
more for that RMA line; a shortfall is then closed). ``receipt_id`` = ``sha256(rma_id|line_no|sku|quantity|
grade|received_at|warehouse_id)``, file-independent (the caller drops ids it has already posted). Rejections
as for requests, ``BAD_RETURN_GRADE`` for the grade; identical rows in a file: the later copies ``DUPLICATE_LINE``.

Frames
------
``REQUEST_SCHEMA`` (requests, Shopify refunds, Amazon returns): request_id, source (:data:`SOURCES`:
``return_request`` | ``shopify_refund`` | ``amazon_fba_return`` | ``amazon_mfn_return``), status (``requested`` |
``refunded``), order_ref, line_no, sku, channel_line_ref, quantity, reason, requested_at (UTC), customer_note,
exchange_sku, restock_type, channel_amount, channel_tax, refund_amount (MONEY), refund_id, disposition and
fulfillment_center (Amazon FBA's ``detailed-disposition`` / ``fulfillment-center-id``; null for the others),
source_file, location, raw.

``RECEIPT_SCHEMA``: receipt_id, rma_id, line_no, sku, quantity, grade, received_at (UTC), warehouse_id, note,
final (bool), source_file, location, raw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from som_pipeline import money
from som_pipeline.fulfilment.scans import (
    finish_rejects,
    first_problem,
    missing_fields,
    read_records,
)
from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import MAX_QUANTITY, TRUE_WORDS, DecodeError, decode_text, jtext, parse_ts
from som_pipeline.ingest.jsondoc import MAX_RAW_CHARS, _raw_bytes, decimal_sum, dump_json, load_json_exact
from som_pipeline.validation.approvals import REJECT_SCHEMA, neutralise

RETURN_REASONS = ("DAMAGED", "WRONG_ITEM", "DEFECTIVE", "NOT_AS_DESCRIBED", "NO_LONGER_NEEDED", "SIZE_FIT", "OTHER")
GRADES = ("restock", "refurbish", "scrap")
SOURCES = ("return_request", "shopify_refund", "amazon_fba_return", "amazon_mfn_return")
TS_TEXT = "%Y-%m-%dT%H:%M:%S%.6f+00:00"

REQUEST_FIELDS = ("request_id", "order_ref", "line_no", "sku", "channel_line_ref", "quantity", "reason",
                  "requested_at", "customer_note", "exchange_sku")
REQUEST_REQUIRED = ("order_ref", "quantity", "reason", "requested_at")
REQUEST_LINE = ("line_no", "sku", "channel_line_ref")

RECEIPT_FIELDS = ("rma_id", "line_no", "sku", "quantity", "grade", "received_at", "warehouse_id", "note", "final")
RECEIPT_REQUIRED = ("rma_id", "sku", "quantity", "grade", "received_at", "warehouse_id")

REQUEST_SCHEMA: dict[str, Any] = {
    "request_id": pl.String, "source": pl.String, "status": pl.String, "order_ref": pl.String,
    "line_no": pl.Int64, "sku": pl.String, "channel_line_ref": pl.String, "quantity": pl.Int64, "reason": pl.String,
    "requested_at": pl.Datetime("us", "UTC"), "customer_note": pl.String, "exchange_sku": pl.String,
    "restock_type": pl.String, "channel_amount": money.MONEY, "channel_tax": money.MONEY,
    "refund_amount": money.MONEY, "refund_id": pl.String, "disposition": pl.String, "fulfillment_center": pl.String,
    "source_file": pl.String, "location": pl.String, "raw": pl.String,
}
RECEIPT_SCHEMA: dict[str, Any] = {
    "receipt_id": pl.String, "rma_id": pl.String, "line_no": pl.Int64, "sku": pl.String, "quantity": pl.Int64,
    "grade": pl.String, "received_at": pl.Datetime("us", "UTC"), "warehouse_id": pl.String, "note": pl.String,
    "final": pl.Boolean, "source_file": pl.String, "location": pl.String, "raw": pl.String,
}
_REJ = {**REJECT_SCHEMA, "_n": pl.Int64}


@dataclass
class ReturnFile:
    requests: pl.DataFrame  # REQUEST_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA (order_ref = the request's order_ref)
    received: int  # requests.height + rejected.height


@dataclass
class ReceiptFile:
    receipts: pl.DataFrame  # RECEIPT_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA (order_ref = the rma_id)
    received: int  # receipts.height + rejected.height


@dataclass
class DetectedFile:
    kind: str  # 'return_requests' | 'shopify_refund' | 'amazon_returns' | 'return_receipts'
    file: ReturnFile | ReceiptFile


# ------------------------------------------------------------------------------------------------
# shared
# ------------------------------------------------------------------------------------------------
def _qty_check(col: str) -> tuple[pl.Expr, str, pl.Expr]:
    q = pl.col("_q")
    return ((~pl.col("_q_ok")) | (q <= 0) | (q > MAX_QUANTITY), "BAD_QUANTITY",
            pl.format("quantity '{}' is not a whole number between 1 and {}", pl.col(col),
                      pl.lit(f"{MAX_QUANTITY:,}")))


def _duplicates(ok: pl.DataFrame, key: list[str], content: list[str], what: pl.Expr) -> pl.DataFrame:
    """Flag the later rows of a key (``_n`` order): identical content -> counted once, differing -> rejected;
    the first row stands either way."""
    text = pl.concat_str([pl.col(c).cast(pl.String).fill_null("\x00") for c in content], separator="\x1f")
    ok = ok.with_columns(text.alias("_content")).with_columns(
        pl.col("_n").rank("ordinal").over(key).alias("_k"),
        pl.col("location").sort_by("_n").first().over(key).alias("_first_loc"),
        pl.col("_content").sort_by("_n").first().over(key).alias("_first_content"),
    )
    later = pl.col("_k") > 1
    same = pl.col("_content") == pl.col("_first_content")
    return ok.with_columns(
        pl.when(later).then(pl.lit("DUPLICATE_LINE")).otherwise(pl.col("reason_code")).alias("reason_code"),
        pl.when(later & same).then(pl.format("{} is an identical copy of {}: counted once", what, pl.col("_first_loc")))
        .when(later).then(pl.format("{} appears first at {} with different content: the first stands, this one is "
                                    "not counted (correct and resend it on its own)", what, pl.col("_first_loc")))
        .otherwise(pl.col("message")).alias("message"),
    ).drop("_content", "_k", "_first_loc", "_first_content")


def _whole_file(code: str, message: str, raw: str | None) -> pl.DataFrame:
    return pl.DataFrame([{"location": "file", "order_ref": None, "reason_code": code, "message": message,
                          "raw": raw}], schema=REJECT_SCHEMA)


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"... ({len(text):,} characters)"


def guard(read: Callable[[bytes, str], Any], data: bytes, source_file: str, make: Callable[..., Any],
          schema: dict[str, Any]) -> Any:
    """Run a reader; an unexpected error (a bug, not bad input) still ends as one rejected record of the file:
    ``make(empty rows of schema, rejects, 1)``. The contract of every reader here: bad input never raises."""
    try:
        return read(data, source_file)
    except Exception as e:  # noqa: BLE001 - the contract: bad input never raises
        return make(pl.DataFrame(schema=schema), _whole_file(
            "UNREADABLE_FILE", f"internal error reading the file ({type(e).__name__}: {e}); please report it",
            _raw_bytes(data)), 1)


def unwrap_records(data: bytes, key: str, what: str, single: str | None = None
                   ) -> tuple[bytes, str | None, pl.DataFrame | None]:
    """``{"<key>": [...]}`` (or ``{"<single>": {...}}``) -> the records' bytes for ``read_records``, the location
    prefix (``/<key>``) and no problem; an unusable wrapper -> one whole-file rejection; any other input
    unchanged (JSON lines, a bare array, CSV, or broken JSON: the record reader reports it)."""
    try:
        text, _ = decode_text(data)
    except DecodeError:
        return data, None, None
    if not text.lstrip().startswith("{"):
        return data, None, None
    try:
        doc = load_json_exact(text)
    except (ValueError, RecursionError):
        return data, None, None
    if not isinstance(doc, dict):
        return data, None, None
    keys = {str(k).strip().lower(): k for k in doc}
    if single is not None and single in keys and isinstance(doc[keys[single]], dict):
        return dump_json([doc[keys[single]]]).encode("utf-8"), f"/{single}", None
    if key not in keys:
        return data, None, None
    items = doc[keys[key]]
    if not isinstance(items, list):
        return data, None, _whole_file("UNSUPPORTED_DOCUMENT", f"'{key}' is not a list of {what}", _truncate(text))
    if not items:
        return data, None, _whole_file("EMPTY_FILE", f"'{key}' is an empty list", _truncate(text))
    return dump_json(items).encode("utf-8"), f"/{key}", None


def with_pointers(frames: Sequence[pl.DataFrame], prefix: str | None) -> list[pl.DataFrame]:
    """``location`` "record N" of an unwrapped array -> the JSON pointer into the document (``<prefix>/<N-1>``)."""
    if prefix is None:
        return list(frames)
    n = pl.col("location").str.extract(r"^record (\d+)$", 1).cast(pl.Int64)
    ptr = pl.when(n.is_not_null()).then(pl.format("{}/{}", pl.lit(prefix), n - 1)).otherwise(pl.col("location"))
    return [f.with_columns(ptr.alias("location")) for f in frames]


# ------------------------------------------------------------------------------------------------
# return requests
# ------------------------------------------------------------------------------------------------
def read_return_requests(data: bytes, source_file: str) -> ReturnFile:
    """A return-request file (CSV / JSON lines / JSON array / ``{"returns": [...]}``) -> requests + rejects."""
    return guard(_read_requests, data, source_file, ReturnFile, REQUEST_SCHEMA)


def _read_requests(data: bytes, source_file: str) -> ReturnFile:
    data, prefix, problem = unwrap_records(data, "returns", "return requests")
    if problem is not None:
        return ReturnFile(pl.DataFrame(schema=REQUEST_SCHEMA), problem, 1)
    rec = read_records(data, REQUEST_FIELDS, REQUEST_REQUIRED, "order_ref", one_of=REQUEST_LINE)
    df, structural = with_pointers([rec.rows, rec.rejected], prefix)
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    line, line_ok = money.parse_int(pl.col("line_no"))
    df = df.with_columns(
        qty.alias("_q"), qty_ok.alias("_q_ok"), line.alias("_line"), line_ok.alias("_line_ok"),
        pl.col("reason").str.to_uppercase().str.replace_all(r"[\s-]+", "_").alias("_reason"),
        parse_ts("requested_at").alias("_at"),
    )
    missing = pl.concat_str([
        missing_fields(REQUEST_REQUIRED).replace("", None),
        pl.when(pl.all_horizontal(pl.col(c).is_null() for c in REQUEST_LINE)).then(pl.lit("line_no or sku")),
    ], separator=", ", ignore_nulls=True)
    code, msg = first_problem([
        (missing != "", "MISSING_FIELD", pl.format("required field(s) empty: {}", missing)),
        (~pl.col("_line_ok") | (pl.col("_line") <= 0), "BAD_LINE_NO",
         pl.format("line_no '{}' is not a positive whole number", pl.col("line_no"))),
        _qty_check("quantity"),
        (~pl.col("_reason").is_in(RETURN_REASONS), "BAD_RETURN_REASON",
         pl.format("reason '{}' is not one of {}", pl.col("reason"), pl.lit(", ".join(RETURN_REASONS)))),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("requested_at '{}' is not an ISO date/time (e.g. 2026-11-26T08:30:00+01:00)",
                   pl.col("requested_at"))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message"))
    line_key = (pl.when(pl.col("_line").is_not_null()).then(pl.col("_line").cast(pl.String))
                .when(pl.col("sku").is_not_null()).then(pl.lit("sku:") + pl.col("sku"))
                .otherwise(pl.lit("ref:") + pl.col("channel_line_ref")))
    ok = df.filter(pl.col("reason_code").is_null()).with_columns(line_key.alias("_line_key"))
    content = pl.concat_str([pl.col("order_ref"), pl.col("_line_key"), pl.col("_q").cast(pl.String),
                             pl.col("_at").dt.strftime(TS_TEXT)], separator="|")
    ok = ok.with_columns(pl.coalesce("request_id", sha256_series(content, ok)).alias("request_id"))
    ok = _duplicates(ok, ["request_id", "order_ref", "_line_key"],
                     ["_q", "_reason", "_at", "customer_note", "exchange_sku"],
                     pl.format("request {} line {}", pl.col("request_id"), pl.col("_line_key")))
    bad = pl.concat([d.filter(pl.col("reason_code").is_not_null())
                     .select("_n", "location", pl.col("order_ref"), "reason_code", "message", "raw")
                     for d in (df, ok)])
    good = ok.filter(pl.col("reason_code").is_null()).sort("_n").with_columns(
        pl.lit("return_request").alias("source"), pl.lit("requested").alias("status"),
        pl.col("_line").alias("line_no"), pl.col("_q").alias("quantity"), pl.col("_reason").alias("reason"),
        pl.col("_at").alias("requested_at"), neutralise(pl.col("customer_note")).alias("customer_note"),
        pl.lit(None, pl.String).alias("restock_type"), *(pl.lit(None, money.MONEY).alias(c) for c in
                                                         ("channel_amount", "channel_tax", "refund_amount")),
        *(pl.lit(None, pl.String).alias(c) for c in ("refund_id", "disposition", "fulfillment_center")),
        pl.lit(source_file).alias("source_file"))
    requests = good.select(list(REQUEST_SCHEMA)).cast(REQUEST_SCHEMA)
    return ReturnFile(requests, finish_rejects(structural, bad), requests.height + structural.height + bad.height)


# ------------------------------------------------------------------------------------------------
# Shopify refunds
# ------------------------------------------------------------------------------------------------
_SHOP_COLS = ("refund_line_id", "refund_id", "order_ref", "channel_line_ref", "sku", "quantity", "restock_type",
              "subtotal", "total_tax", "refund_amount", "requested_at", "customer_note", "location", "raw")


def read_shopify_refund(data: bytes, source_file: str) -> ReturnFile:
    """A Shopify refund document -> one channel-decided request per refund line item (see the module doc)."""
    return guard(_read_shopify, data, source_file, ReturnFile, REQUEST_SCHEMA)


def _refund_objects(doc: Any) -> list[tuple[str, Any]]:
    """(pointer, refund object) pairs of a refund document; a non-object stays for the caller to reject."""
    if isinstance(doc, dict) and "refund" in doc:
        return [("/refund", doc["refund"])]
    if isinstance(doc, dict) and isinstance(doc.get("refunds"), list):
        items = [(f"/refunds/{i}", r) for i, r in enumerate(doc["refunds"])]
    elif isinstance(doc, list):
        items = [(f"/{i}", r) for i, r in enumerate(doc)]
    else:
        return [("/", doc)]
    return [(f"{p}/refund", r["refund"]) if isinstance(r, dict) and "refund" in r else (p, r) for p, r in items]


def _read_shopify(data: bytes, source_file: str) -> ReturnFile:
    empty = pl.DataFrame(schema=REQUEST_SCHEMA)
    try:
        text, _ = decode_text(data)
    except DecodeError as e:
        raw = _raw_bytes(data) if e.reason_code == "BAD_ENCODING" else None
        return ReturnFile(empty, _whole_file(e.reason_code, e.message, raw), 1)
    try:
        doc = load_json_exact(text)
    except (ValueError, RecursionError) as e:
        return ReturnFile(empty, _whole_file("INVALID_JSON", f"not valid JSON: {e}", _truncate(text)), 1)
    refunds = _refund_objects(doc)
    if not refunds:
        return ReturnFile(empty, _whole_file("EMPTY_FILE", "the document holds no refund", _truncate(text)), 1)
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for ptr, r in refunds:
        raw = _truncate(dump_json(r))
        problem = _refund_problem(r)
        if problem is not None:
            order_ref = jtext(r.get("order_id")) if isinstance(r, dict) else None
            rejects.append({"location": ptr, "order_ref": order_ref, "reason_code": problem[0],
                            "message": problem[1], "raw": raw})
            continue
        txs = [t for t in r.get("transactions") or [] if isinstance(t, dict)
               and str(t.get("kind", "")).lower() == "refund" and str(t.get("status") or "success").lower() == "success"]
        amount = decimal_sum([jtext(t.get("amount")) for t in txs])
        for j, li in enumerate(r["refund_line_items"]):
            loc = f"{ptr}/refund_line_items/{j}"
            if not isinstance(li, dict):
                rejects.append({"location": loc, "order_ref": jtext(r.get("order_id")),
                                "reason_code": "UNSUPPORTED_DOCUMENT", "message": f"{loc} is not an object",
                                "raw": _truncate(dump_json(li))})
                continue
            item = li.get("line_item") if isinstance(li.get("line_item"), dict) else {}
            restock = jtext(li.get("restock_type"))
            if restock is None and r.get("restock") is not None:
                restock = "legacy_restock" if jtext(r.get("restock")) == "true" else "no_restock"
            rows.append({
                "refund_line_id": jtext(li.get("id")), "refund_id": jtext(r.get("id")),
                "order_ref": jtext(r.get("order_id")),
                "channel_line_ref": jtext(li.get("line_item_id")) or jtext(item.get("id")),
                "sku": jtext(item.get("sku")), "quantity": jtext(li.get("quantity")), "restock_type": restock,
                "subtotal": jtext(li.get("subtotal")), "total_tax": jtext(li.get("total_tax")),
                "refund_amount": amount,
                "requested_at": jtext(r.get("processed_at")) or jtext(r.get("created_at")),
                "customer_note": jtext(r.get("note")), "location": loc, "raw": _truncate(dump_json(li))})
    return _finish_shopify(rows, rejects, source_file)


def _is_money(text: str | None) -> bool:
    """A plain decimal literal with at most 2 places (what a channel's money text must be)."""
    if text is None or not re.match(money.DECIMAL_RE, text.strip()):
        return False
    return len(text.strip().partition(".")[2].rstrip("0")) <= money.MONEY_SCALE


def _refund_problem(r: Any) -> tuple[str, str] | None:
    if not isinstance(r, dict):
        return "UNSUPPORTED_DOCUMENT", "not a refund object"
    txs = r.get("transactions") or []
    kinds = {str(t.get("kind", "")).lower() for t in txs if isinstance(t, dict)}
    if r.get("id") is None and (not kinds or kinds <= {"suggested_refund"}):
        return ("UNSUPPORTED_DOCUMENT", "a refund calculation (refunds/calculate: no refund id, only suggested "
                "transactions), not a refund: nothing was refunded")
    if jtext(r.get("order_id")) is None:
        return "MISSING_FIELD", "the refund has no order_id"
    if (jtext(r.get("processed_at")) or jtext(r.get("created_at"))) is None:
        return "MISSING_FIELD", "the refund has no processed_at / created_at"
    items = r.get("refund_line_items")
    if not isinstance(items, list) or not items:
        return ("UNSUPPORTED_DOCUMENT", "a refund without refund_line_items (money only: shipping or goodwill), "
                "not a return of goods")
    for t in txs:
        if isinstance(t, dict) and str(t.get("kind", "")).lower() == "refund":
            a = jtext(t.get("amount"))
            if not _is_money(a):
                return "BAD_AMOUNT", f"refund transaction amount {a!r} is not a decimal with at most 2 places"
    return None


def _finish_shopify(rows: list[dict[str, Any]], rejects: list[dict[str, Any]], source_file: str) -> ReturnFile:
    df = pl.DataFrame(rows, schema={c: pl.String for c in _SHOP_COLS}).with_row_index("_n")
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    sub, sub_ok = money.parse_decimal(pl.col("subtotal"), 2)
    tax, tax_ok = money.parse_decimal(pl.col("total_tax"), 2)
    ref, ref_ok = money.parse_decimal(pl.col("refund_amount"), 2)
    df = df.with_columns(qty.alias("_q"), qty_ok.alias("_q_ok"), sub.alias("_sub"), sub_ok.alias("_sub_ok"),
                         tax.alias("_tax"), tax_ok.alias("_tax_ok"), ref.alias("_ref"), ref_ok.alias("_ref_ok"),
                         parse_ts("requested_at").alias("_at"))
    code, msg = first_problem([
        (pl.col("channel_line_ref").is_null(), "MISSING_FIELD", pl.lit("the refund line item has no line_item_id")),
        _qty_check("quantity"),
        (~pl.col("_sub_ok") | (pl.col("_sub") < 0), "BAD_AMOUNT",
         pl.format("subtotal '{}' is not a non-negative decimal with at most 2 places", pl.col("subtotal"))),
        (~pl.col("_tax_ok") | (pl.col("_tax") < 0), "BAD_AMOUNT",
         pl.format("total_tax '{}' is not a non-negative decimal with at most 2 places", pl.col("total_tax"))),
        (~pl.col("_ref_ok") | (pl.col("_ref") < 0), "BAD_AMOUNT",
         pl.format("refund transactions' amount '{}' is not a non-negative decimal", pl.col("refund_amount"))),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("refund time '{}' is not an ISO date/time", pl.col("requested_at"))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message"))
    bad = df.filter(pl.col("reason_code").is_not_null()).select(
        "location", pl.col("order_ref"), "reason_code", "message", "raw")
    ok = df.filter(pl.col("reason_code").is_null())
    content = pl.concat_str([pl.col("order_ref"), pl.lit("ref:") + pl.col("channel_line_ref"),
                             pl.col("_q").cast(pl.String), pl.col("_at").dt.strftime(TS_TEXT)], separator="|")
    ok = ok.with_columns(pl.coalesce(pl.lit("shopify-refund-line:") + pl.col("refund_line_id"),
                                     sha256_series(content, ok)).alias("request_id"))
    requests = ok.sort("_n").select(
        "request_id", pl.lit("shopify_refund").alias("source"), pl.lit("refunded").alias("status"), "order_ref",
        pl.lit(None, pl.Int64).alias("line_no"), "sku", "channel_line_ref", pl.col("_q").alias("quantity"),
        pl.lit(None, pl.String).alias("reason"), pl.col("_at").alias("requested_at"),
        neutralise(pl.col("customer_note")).alias("customer_note"), pl.lit(None, pl.String).alias("exchange_sku"),
        "restock_type", pl.col("_sub").alias("channel_amount"), pl.col("_tax").alias("channel_tax"),
        pl.col("_ref").alias("refund_amount"), "refund_id", pl.lit(None, pl.String).alias("disposition"),
        pl.lit(None, pl.String).alias("fulfillment_center"), pl.lit(source_file).alias("source_file"), "location",
        "raw").cast(REQUEST_SCHEMA)
    rejected = pl.concat([pl.DataFrame(rejects, schema=REJECT_SCHEMA), bad.cast(REJECT_SCHEMA)])
    return ReturnFile(requests, rejected, requests.height + rejected.height)


# ------------------------------------------------------------------------------------------------
# return receipts
# ------------------------------------------------------------------------------------------------
def read_return_receipts(data: bytes, source_file: str) -> ReceiptFile:
    """A return-receipts file (CSV; JSON lines / array accepted) -> receipts + rejects."""
    return guard(_read_receipts, data, source_file, ReceiptFile, RECEIPT_SCHEMA)


def _read_receipts(data: bytes, source_file: str) -> ReceiptFile:
    rec = read_records(data, RECEIPT_FIELDS, RECEIPT_REQUIRED, "rma_id")
    df = rec.rows
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    line, line_ok = money.parse_int(pl.col("line_no"))
    final = pl.col("final").str.to_lowercase()
    df = df.with_columns(
        qty.alias("_q"), qty_ok.alias("_q_ok"), line.alias("_line"), line_ok.alias("_line_ok"),
        pl.col("grade").str.to_lowercase().alias("_grade"), parse_ts("received_at").alias("_at"),
        final.is_in(TRUE_WORDS).fill_null(False).alias("_final"),
    )
    code, msg = first_problem([
        (missing_fields(RECEIPT_REQUIRED) != "", "MISSING_FIELD",
         pl.format("required field(s) empty: {}", missing_fields(RECEIPT_REQUIRED))),
        (~pl.col("_line_ok") | (pl.col("_line") <= 0), "BAD_LINE_NO",
         pl.format("line_no '{}' is not a positive whole number", pl.col("line_no"))),
        _qty_check("quantity"),
        (~pl.col("_grade").is_in(GRADES), "BAD_RETURN_GRADE",
         pl.format("grade '{}' is not one of {}", pl.col("grade"), pl.lit(", ".join(GRADES)))),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("received_at '{}' is not an ISO date/time", pl.col("received_at"))),
        (final.is_not_null() & ~final.is_in([*TRUE_WORDS, "false", "0", "no", "n", "f"]), "MISSING_FIELD",
         pl.format("final '{}' is neither true nor false", pl.col("final"))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message"),
                         pl.col("_line").fill_null(1).alias("_line"))
    ok = df.filter(pl.col("reason_code").is_null())
    content = pl.concat_str([pl.col("rma_id"), pl.col("_line").cast(pl.String), pl.col("sku"),
                             pl.col("_q").cast(pl.String), pl.col("_grade"), pl.col("_at").dt.strftime(TS_TEXT),
                             pl.col("warehouse_id")], separator="|")
    ok = ok.with_columns(sha256_series(content, ok).alias("receipt_id"))
    ok = _duplicates(ok, ["receipt_id"], ["note", "_final"],
                     pl.format("receipt of RMA {} line {}", pl.col("rma_id"), pl.col("_line")))
    bad = pl.concat([d.filter(pl.col("reason_code").is_not_null())
                     .select("_n", "location", pl.col("rma_id").alias("order_ref"), "reason_code", "message", "raw")
                     for d in (df, ok)])
    good = ok.filter(pl.col("reason_code").is_null()).sort("_n").with_columns(
        pl.col("_line").alias("line_no"), pl.col("_q").alias("quantity"), pl.col("_grade").alias("grade"),
        pl.col("_at").alias("received_at"), neutralise(pl.col("note")).alias("note"),
        pl.col("_final").alias("final"), pl.lit(source_file).alias("source_file"))
    receipts = good.select(list(RECEIPT_SCHEMA)).cast(RECEIPT_SCHEMA)
    return ReceiptFile(receipts, finish_rejects(rec.rejected, bad), receipts.height + rec.rejected.height + bad.height)


# ------------------------------------------------------------------------------------------------
# Amazon returns reports (SP-API Reports API, tab-separated flat files)
# ------------------------------------------------------------------------------------------------
#: Amazon's return reason codes -> :data:`RETURN_REASONS` (an MFN report's ``CR-`` prefix is dropped first).
#: Not listed (or empty) -> ``OTHER``, the raw code kept at the start of the customer note.
AMAZON_REASONS: dict[str, str] = {
    **dict.fromkeys(("DAMAGED_BY_CARRIER", "DAMAGED_BY_FC"), "DAMAGED"),
    **dict.fromkeys(("SWITCHEROO", "EXTRA_ITEM"), "WRONG_ITEM"),
    **dict.fromkeys(("DEFECTIVE", "QUALITY_UNACCEPTABLE", "WARRANTY", "JEWELRY_BATTERY", "JEWELRY_BAD_CLASP",
                     "JEWELRY_LOOSE_STONE"), "DEFECTIVE"),
    **dict.fromkeys(("NOT_AS_DESCRIBED", "MISSING_PARTS", "JEWELRY_NO_DOCS", "JEWELRY_NO_CERT", "PRODUCT_NOT_ITALIAN",
                     "PRODUCT_NOT_SPANISH", "AMZ-PG-BAD-DESC"), "NOT_AS_DESCRIBED"),
    **dict.fromkeys(("UNWANTED_ITEM", "NO_REASON_GIVEN", "FOUND_BETTER_PRICE", "ORDERED_WRONG_ITEM", "MISORDERED",
                     "AMZ-PG-MISORDERED", "NOT_COMPATIBLE", "APPAREL_STYLE", "MISSED_ESTIMATED_DELIVERY",
                     "AMZ-PG-APP-TOO-LATE"), "NO_LONGER_NEEDED"),
    **dict.fromkeys(("APPAREL_TOO_SMALL", "APPAREL_TOO_LARGE", "JEWELRY_TOO_SMALL", "JEWELRY_TOO_LARGE",
                     "AMZ-PG-WJ-TOO-SMALL"), "SIZE_FIT"),
}
#: FBA ``detailed-disposition`` -> the grade of the receipt the returns service records for an FBA return.
FBA_GRADES: dict[str, str] = {"SELLABLE": "restock", "DAMAGED": "scrap", "CARRIER_DAMAGED": "scrap"}
FBA_DEFAULT_GRADE = "refurbish"  # CUSTOMER_DAMAGED, DEFECTIVE, EXPIRED, anything else: unsellable, still ours
FBA_WAREHOUSE_PREFIX = "AMAZON-FBA-"  # + fulfillment-center-id: where an FBA return was received

# report column -> our field; the header columns a report must name
_FBA_COLUMNS = {"return-date": "requested_at", "order-id": "order_ref", "sku": "sku", "quantity": "quantity",
                "reason": "reason", "customer-comments": "customer_note", "license-plate-number": "ref",
                "detailed-disposition": "disposition", "fulfillment-center-id": "fulfillment_center"}
_FBA_REQUIRED = ("return-date", "order-id", "sku", "quantity", "reason")
_MFN_COLUMNS = {"order id": "order_ref", "return request date": "requested_at", "merchant sku": "sku",
                "return quantity": "quantity", "return reason": "reason", "amazon rma id": "ref",
                "return request status": "rma_status"}
_MFN_REQUIRED = ("order id", "return request date", "merchant sku", "return quantity", "return reason")
_AMZ_FIELDS = ("order_ref", "sku", "quantity", "reason", "requested_at", "customer_note", "ref", "disposition",
               "fulfillment_center", "rma_status")
_AMZ_NOT_A_RETURN = r"(?i)reject|cancel|denied|declined"


def _amazon_header(first_line: str) -> tuple[str | None, list[str]]:
    """The report variant ('fba' | 'mfn' | None) and the lower-cased column names of a tab-separated header."""
    names = [h.strip().strip('"').lower() for h in first_line.lstrip("\ufeff").split("\t")]
    if {"return-date", "order-id"} <= set(names):
        return "fba", names
    if {"order id", "return request date"} <= set(names):
        return "mfn", names
    return None, names


def read_amazon_returns(data: bytes, source_file: str) -> ReturnFile:
    """An Amazon returns report (FBA customer returns, or the merchant-fulfilled returns report by return date)
    -> one request per report row + rejects (see the module doc)."""
    return guard(_read_amazon, data, source_file, ReturnFile, REQUEST_SCHEMA)


def _read_amazon(data: bytes, source_file: str) -> ReturnFile:
    empty = pl.DataFrame(schema=REQUEST_SCHEMA)
    try:
        text, _ = decode_text(data)
    except DecodeError as e:
        return ReturnFile(empty, _whole_file(e.reason_code, e.message,
                                             _raw_bytes(data) if e.reason_code == "BAD_ENCODING" else None), 1)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    df = (pl.DataFrame({"raw": lines}, schema={"raw": pl.String}).with_row_index("_line", offset=1)
          .with_columns(pl.col("_line").cast(pl.Int64)).filter(pl.col("raw").str.strip_chars() != ""))
    variant, header = _amazon_header(df["raw"][0])
    if variant is None:
        return ReturnFile(empty, _whole_file("CSV_MISSING_COLUMN", "not an Amazon returns report: the "
                                             "tab-separated header names neither return-date and order-id (FBA) nor "
                                             "Order ID and Return request date (merchant-fulfilled)",
                                             _truncate(text)), 1)
    columns, required = (_FBA_COLUMNS, _FBA_REQUIRED) if variant == "fba" else (_MFN_COLUMNS, _MFN_REQUIRED)
    missing = [c for c in required if c not in header]
    dup = sorted({h for h in header if h in columns and header.count(h) > 1})
    if missing or dup:
        code, why = (("CSV_MISSING_COLUMN", f"missing column(s): {', '.join(missing)}") if missing else
                     ("UNREADABLE_FILE", f"column(s) named twice in the header: {', '.join(dup)}"))
        return ReturnFile(empty, _whole_file(code, why, _truncate(text)), 1)
    body = df.slice(1).with_row_index("_n").with_columns(pl.col("_n").cast(pl.Int64))
    if body.height == 0:
        return ReturnFile(empty, _whole_file("EMPTY_FILE", "the report has a header and no rows", _truncate(text)), 1)
    n = len(header)
    index = {columns[h]: i for i, h in enumerate(header) if h in columns}
    split = pl.col("raw").str.split("\t")
    body = body.with_columns(
        pl.format("line {}", pl.col("_line")).alias("location"),
        (split.list.len() > n).alias("_long"),
        split.list.slice(n).list.eval(pl.element().str.strip_chars() != "").list.any().fill_null(False).alias("_extra"),
        *((split.list.get(index[f], null_on_oob=True).str.strip_chars().replace("", None) if f in index
           else pl.lit(None, pl.String)).alias(f) for f in _AMZ_FIELDS),
    )
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    day = pl.col("requested_at").str.strptime(pl.Datetime("us", "UTC"), "%d-%b-%Y", strict=False)
    code_ = pl.col("reason").str.to_uppercase().str.replace(r"^CR-", "")
    mapped = code_.replace_strict(AMAZON_REASONS, default=None, return_dtype=pl.String)
    body = body.with_columns(qty.alias("_q"), qty_ok.alias("_q_ok"), mapped.alias("_reason"),
                             pl.coalesce(parse_ts("requested_at"), day).alias("_at"))
    names = {v: k for k, v in columns.items()}
    required_fields = ("order_ref", "sku", "quantity", "requested_at")
    missing_expr = pl.concat_str([pl.when(pl.col(f).is_null()).then(pl.lit(names[f])) for f in required_fields],
                                 separator=", ", ignore_nulls=True)
    code, msg = first_problem([
        (pl.col("_long") & pl.col("_extra"), "CSV_EXTRA_FIELDS",
         pl.format("the row has {} field(s), the header {}", pl.col("raw").str.split("\t").list.len(), pl.lit(n))),
        (missing_expr != "", "MISSING_FIELD", pl.format("required field(s) empty: {}", missing_expr)),
        _qty_check("quantity"),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("{} '{}' is not a date/time (ISO-8601, or DD-Mon-YYYY)", pl.lit(names["requested_at"]),
                   pl.col("requested_at"))),
        (pl.col("rma_status").str.contains(_AMZ_NOT_A_RETURN).fill_null(False), "UNSUPPORTED_DOCUMENT",
         pl.format("return request status '{}': Amazon rejected or the customer cancelled it, nothing comes back",
                   pl.col("rma_status"))),
    ])
    body = body.with_columns(code.alias("reason_code"), msg.alias("message"))
    ok = body.filter(pl.col("reason_code").is_null()).with_columns(pl.format("sku:{}", pl.col("sku")).alias("_line_key"))
    content = pl.concat_str([pl.col("order_ref"), pl.col("_line_key"), pl.col("_q").cast(pl.String),
                             pl.col("_at").dt.strftime(TS_TEXT)], separator="|")
    prefix = "amazon-return:" if variant == "fba" else "amazon-rma:"
    ok = ok.with_columns(pl.coalesce(pl.lit(prefix) + pl.col("ref"), sha256_series(content, ok)).alias("request_id"))
    ok = _duplicates(ok, ["request_id", "order_ref", "_line_key"],
                     ["_q", "reason", "_at", "customer_note", "disposition", "fulfillment_center"],
                     pl.format("return {} of SKU {}", pl.col("request_id"), pl.col("sku")))
    bad = pl.concat([d.filter(pl.col("reason_code").is_not_null())
                     .select("_n", "location", "order_ref", "reason_code", "message", "raw") for d in (body, ok)])
    raw_reason = pl.format("Amazon reason {}", pl.coalesce(pl.col("reason"), pl.lit("(none)")))
    note = (pl.when(pl.col("_reason").is_not_null()).then(pl.col("customer_note"))
            .otherwise(pl.concat_str([raw_reason, pl.col("customer_note")], separator=": ", ignore_nulls=True)))
    good = ok.filter(pl.col("reason_code").is_null()).sort("_n").with_columns(
        pl.lit(f"amazon_{variant}_return").alias("source"),
        pl.lit("refunded" if variant == "fba" else "requested").alias("status"),
        pl.lit(None, pl.Int64).alias("line_no"), pl.lit(None, pl.String).alias("channel_line_ref"),
        pl.col("_q").alias("quantity"), pl.col("_reason").fill_null("OTHER").alias("reason"),
        pl.col("_at").alias("requested_at"), neutralise(note).alias("customer_note"),
        *(pl.lit(None, pl.String).alias(c) for c in ("exchange_sku", "restock_type", "refund_id")),
        *(pl.lit(None, money.MONEY).alias(c) for c in ("channel_amount", "channel_tax", "refund_amount")),
        pl.col("disposition").str.to_uppercase(), pl.lit(source_file).alias("source_file"))
    requests = good.select(list(REQUEST_SCHEMA)).cast(REQUEST_SCHEMA)
    rejected = finish_rejects(pl.DataFrame(schema=_REJ), bad)
    return ReturnFile(requests, rejected, requests.height + rejected.height)


# ------------------------------------------------------------------------------------------------
# by content
# ------------------------------------------------------------------------------------------------
def detect_kind(data: bytes) -> str:
    """'shopify_refund' (JSON holding ``refund`` / ``refunds`` / refund objects with ``refund_line_items``),
    'amazon_returns' (a tab-separated header naming ``return-date`` and ``order-id`` -- FBA -- or ``Order ID`` and
    ``Return request date`` -- merchant-fulfilled), 'return_receipts' (a CSV header or JSON records naming
    ``rma_id`` and ``grade``), else 'return_requests'."""
    try:
        text, _ = decode_text(data)
    except DecodeError:
        return "return_requests"  # its reader reports the file
    head = text.lstrip()
    if head[:1] in ("[", "{"):
        try:
            doc = load_json_exact(text)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and ("refund" in doc or "refunds" in doc):
            return "shopify_refund"
        first = doc[0] if isinstance(doc, list) and doc else doc
        if isinstance(first, dict):
            keys = {str(k).strip().lower() for k in first}
            if "refund" in keys or "refund_line_items" in keys:
                return "shopify_refund"
            if {"rma_id", "grade"} <= keys:
                return "return_receipts"
        return "return_requests"
    first = head.splitlines()[0]
    if "\t" in first and _amazon_header(first)[0] is not None:
        return "amazon_returns"
    header = {h.strip().strip('"').lower() for h in first.split(",")}
    return "return_receipts" if {"rma_id", "grade"} <= header else "return_requests"


READERS: dict[str, Callable[[bytes, str], ReturnFile | ReceiptFile]] = {
    "return_requests": read_return_requests,
    "shopify_refund": read_shopify_refund,
    "amazon_returns": read_amazon_returns,
    "return_receipts": read_return_receipts,
}


def read_returns_file(data: bytes, source_file: str) -> DetectedFile:
    """Read any returns file, its kind told by content (:func:`detect_kind`)."""
    kind = detect_kind(data)
    return DetectedFile(kind, READERS[kind](data, source_file))
