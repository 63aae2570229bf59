"""Shopify Admin REST API orders: ``{"order": {...}}`` (one order) or ``{"orders": [...]}`` (a page).

One record = one order object (``record_kind`` "order"); its ``line_items`` become the raw rows, the
order fields repeated on each. Locations are JSON pointers (``/orders/3``, ``/order/line_items/0``).

Decisions (see also the field mapping in :func:`_order_rows`):

- File-level problems are one ``file`` record: EMPTY_FILE / BAD_ENCODING (``decode_text``), INVALID_JSON
  (message gives line and column; a syntax error at the very end says the file looks truncated),
  UNSUPPORTED_DOCUMENT for valid JSON that is not an order resource (a refund, a transaction list,
  order risks, a fulfillment event...; the message names what it looks like). A bare order object
  without the ``{"order": ...}`` wrapper is refused too: every API response is wrapped.
- ``{"orders": []}`` (an empty page, a normal API answer) is zero records, not a problem.
- Record-level structure problems (an element of ``orders`` that is not an object, a line item that is
  not an object, ``tax_lines`` that is not a list, an object where a value is expected...) reject the
  order with UNSUPPORTED_DOCUMENT and a message naming the JSON pointer. An order without line items
  is NO_LINES.
- Sums (line ``discount_allocations``, ``tax_lines``, ``shipping_lines``) are exact ``Decimal`` sums.
  A summand that is not a plain decimal with at most 2 places is passed through *as sent* instead of
  the sum, so :func:`normalise` rejects the order naming the field (we never round what was sent).
- ``sku`` falls back to ``variant_id`` (as text) when empty: custom/variant-only items have no SKU.
- ``shipping_total`` = sum(shipping_lines[].price) - sum(shipping_lines[].discount_allocations[].amount).
- Numbers are kept as the exact text sent (:func:`load_json_exact`), also in ``raw``
  (:func:`dump_json` writes them unquoted, so ``raw`` is the compact JSON of the order as sent).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

from som_pipeline import money
from som_pipeline.ingest.common import (
    DecodeError,
    ParseResult,
    Rejection,
    decode_text,
    jtext,
    raw_frame,
)

CHANNEL = "shopify"
RECORD_UNIT = "order"
FILE_RECORD_ID = "(file)"
MAX_RAW_CHARS = 1_000_000  # raw text kept for a file-level rejection


# ------------------------------------------------------------------------------------------------
# JSON helpers shared with the Amazon parser (candidates for common.py)
# ------------------------------------------------------------------------------------------------
class JNum(str):
    """A JSON number, kept as the exact text sent (a ``str``, so ``jtext`` and friends just work)."""

    __slots__ = ()


def load_json_exact(text: str) -> Any:
    """Like ``common.load_json`` (numbers stay text), but numbers are :class:`JNum` so that
    :func:`dump_json` can write them back unquoted."""
    return json.loads(text, parse_float=JNum, parse_int=JNum)


def dump_json(v: Any) -> str:
    """Compact JSON text (``ensure_ascii=False``) of a document read by :func:`load_json_exact`.

    Iterative (no recursion limit), numbers written back exactly as they were sent.
    """
    out: list[str] = []
    stack: list[Any] = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, _Lit):
            out.append(x.text)
        elif isinstance(x, JNum):
            out.append(str.__str__(x))
        elif isinstance(x, dict):
            parts: list[Any] = [_Lit("}")]
            items = list(x.items())
            for i in range(len(items) - 1, -1, -1):
                k, val = items[i]
                parts.append(val)
                parts.append(_Lit(("," if i else "") + json.dumps(str(k), ensure_ascii=False) + ":"))
            parts.append(_Lit("{"))
            stack.extend(parts)
        elif isinstance(x, list):
            parts = [_Lit("]")]
            for i in range(len(x) - 1, -1, -1):
                parts.append(x[i])
                if i:
                    parts.append(_Lit(","))
            parts.append(_Lit("["))
            stack.extend(parts)
        else:
            out.append(json.dumps(x, ensure_ascii=False))
    return "".join(out)


class _Lit:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class FileProblem(Exception):
    """A file-level problem: the whole file is one rejected record."""

    def __init__(
        self,
        reason_code: str,
        message: str,
        location: str = "whole file",
        raw: str | None = None,
        encoding: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.location = location
        self.raw = raw
        self.encoding = encoding

    def rejection(self) -> Rejection:
        return Rejection(FILE_RECORD_ID, "file", self.location, self.reason_code, self.message, self.raw)


class RecordProblem(Exception):
    """A record-level structure problem (raised while reading one record)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def _raw_bytes(data: bytes) -> str:
    """Printable rendering of bytes that are not text (for BAD_ENCODING rows)."""
    head = data[:4096]
    text = head.decode("utf-8", errors="backslashreplace")
    text = "".join(ch if (ch >= " " or ch in "\t\r\n") else f"\\x{ord(ch):02x}" for ch in text)
    return text + (f"... ({len(data):,} bytes)" if len(data) > len(head) else "")


def read_json_document(data: bytes) -> tuple[Any, str, str]:
    """Decode and parse a JSON file. Returns ``(document, text, encoding)``; raises :class:`FileProblem`."""
    try:
        text, encoding = decode_text(data)
    except DecodeError as e:
        raw = _raw_bytes(data) if e.reason_code == "BAD_ENCODING" else (data.decode("latin-1") or None)
        raise FileProblem(e.reason_code, e.message, raw=raw) from None
    raw = text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"... ({len(text):,} characters)"
    try:
        doc = load_json_exact(text)
    except json.JSONDecodeError as e:
        # "Unterminated string" is only raised when the input ends inside a string
        at_end = not text[e.pos:].strip() or e.msg.startswith("Unterminated string")
        hint = " (the file ends here: it looks truncated)" if at_end else ""
        raise FileProblem(
            "INVALID_JSON",
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}{hint}",
            location=f"line {e.lineno}, column {e.colno}",
            raw=raw,
            encoding=encoding,
        ) from None
    except RecursionError:
        raise FileProblem(
            "INVALID_JSON", "JSON nested too deeply to be an order document", raw=raw, encoding=encoding
        ) from None
    return doc, text, encoding


def kind_of(v: Any) -> str:
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, JNum):
        return "a number"
    if isinstance(v, str):
        return "a text"
    if isinstance(v, bool):
        return "a boolean"
    if v is None:
        return "null"
    return "a number"


def get_obj(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``parent[key]`` as an object (absent/null -> ``{}``); anything else is a structure problem."""
    v = parent.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected an object")
    return v


def get_list(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    """``parent[key]`` as a list (absent/null -> ``[]``)."""
    v = parent.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected a list")
    return v


def get_objs(parent: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    """``parent[key]`` as a list of objects."""
    out = get_list(parent, key, path)
    for i, v in enumerate(out):
        if not isinstance(v, dict):
            raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key}/{i} is {kind_of(v)}, expected an object")
    return out


def get_text(parent: dict[str, Any], key: str, path: str) -> str | None:
    """``parent[key]`` as text exactly as sent ('' and null -> None); an object or list is a structure problem."""
    v = parent.get(key)
    if isinstance(v, dict | list):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected a value")
    return jtext(v)


_DECIMAL = re.compile(money.DECIMAL_RE)


def decimal_sum(
    values: Sequence[str | None], minus: Sequence[str | None] = (), scale: int = money.MONEY_SCALE
) -> str | None:
    """Exact ``sum(values) - sum(minus)`` of decimal texts (None ignored; no values at all -> None).

    A value that is not a plain decimal with at most ``scale`` places is returned *as is* instead of the
    sum: the normaliser then rejects the field with that text (validation stays in ``normalise``).
    """
    terms = [(v, 1) for v in values if v is not None] + [(v, -1) for v in minus if v is not None]
    if not any(sign == 1 for _, sign in terms):
        return None
    for v, _ in terms:
        t = v.strip()
        if not _DECIMAL.match(t) or len(t.partition(".")[2].rstrip("0")) > scale:
            return v
    with localcontext(prec=max(len(v) for v, _ in terms) + 30):  # exact: no rounding of long inputs
        total = sum((Decimal(v.strip()) * sign for v, sign in terms), Decimal(0))
    return format(total, "f")


# ------------------------------------------------------------------------------------------------
# Shopify
# ------------------------------------------------------------------------------------------------
# What a valid non-order Shopify document looks like, by its top-level key.
_NOT_ORDERS = {
    "refund": "a Shopify refund resource",
    "refunds": "a list of Shopify refunds",
    "transaction": "a Shopify transaction resource",
    "transactions": "a list of Shopify transactions",
    "fulfillment_event": "a Shopify fulfillment event resource",
    "fulfillment_events": "a list of Shopify fulfillment events",
    "fulfillment": "a Shopify fulfillment resource",
    "fulfillments": "a list of Shopify fulfillments",
    "risks": "Shopify order risks",
    "risk": "a Shopify order risk",
    "customer": "a Shopify customer resource",
    "customers": "a list of Shopify customers",
    "product": "a Shopify product resource",
    "products": "a list of Shopify products",
    "draft_order": "a Shopify draft order (not a placed order)",
    "draft_orders": "a list of Shopify draft orders (not placed orders)",
    "checkout": "a Shopify checkout (not a placed order)",
    "checkouts": "a list of Shopify checkouts (not placed orders)",
    "errors": "a Shopify API error response",
}

_PO_NAMES = {"po", "po number", "po no", "po num", "purchase order", "purchase order number", "purchase order no"}


def _describe(doc: Any) -> str:
    """What a valid JSON document that is not an order resource looks like."""
    if isinstance(doc, dict):
        for k in doc:
            if k in _NOT_ORDERS:
                return _NOT_ORDERS[k]
        if "line_items" in doc and ("id" in doc or "name" in doc):
            return "a bare order object without the {\"order\": ...} wrapper of the Admin API"
        keys = ", ".join(list(map(str, doc))[:5]) or "none"
        return f"a JSON object with keys {keys}"
    if isinstance(doc, list):
        if doc and all(isinstance(x, dict) for x in doc):
            first = doc[0]
            if "kind" in first and "amount" in first:
                return "a list of Shopify transactions"
            if "recommendation" in first or "score" in first:
                return "a list of Shopify order risks"
        return f"a JSON list of {len(doc)} elements"
    return f"a JSON value ({kind_of(doc)})"


def _file(problem: FileProblem) -> ParseResult:
    return ParseResult(CHANNEL, RECORD_UNIT, raw_frame([]), [problem.rejection()], encoding=problem.encoding)


def parse_shopify(data: bytes, source_file: str) -> ParseResult:
    """Parse a Shopify order(s) JSON file into raw rows (one row per line item) and rejections.

    Never raises on bad input: file problems become one ``file`` rejection, record problems one
    rejection per order.
    """
    try:
        doc, text, encoding = read_json_document(data)
    except FileProblem as p:
        return _file(p)

    if isinstance(doc, dict) and isinstance(doc.get("order"), dict):
        records: list[tuple[str, Any]] = [("/order", doc["order"])]
    elif isinstance(doc, dict) and isinstance(doc.get("orders"), list):
        records = [(f"/orders/{i}", o) for i, o in enumerate(doc["orders"])]
    else:
        if isinstance(doc, dict) and ("order" in doc or "orders" in doc):
            key = "order" if "order" in doc else "orders"
            want = "an object" if key == "order" else "a list"
            msg = f"/{key} is {kind_of(doc[key])}, expected {want}: not a Shopify order resource"
        else:
            msg = (f"{source_file} is {_describe(doc)}, not a Shopify order resource "
                   '(expected {"order": {...}} or {"orders": [...]})')
        raw = text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS]
        return _file(FileProblem("UNSUPPORTED_DOCUMENT", msg, raw=raw, encoding=encoding))

    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for pointer, order in records:
        raw = dump_json(order)
        ref = None
        if isinstance(order, dict):
            try:
                ref = get_text(order, "id", pointer) or get_text(order, "name", pointer)
            except RecordProblem:
                ref = None
        try:
            if not isinstance(order, dict):
                raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{pointer} is {kind_of(order)}, expected an order object")
            rows.extend(_order_rows(order, pointer, raw))
        except RecordProblem as p:
            rejected.append(Rejection(pointer, "order", pointer, p.reason_code, p.message, raw, ref))
    return ParseResult(CHANNEL, RECORD_UNIT, raw_frame(rows), rejected, encoding=encoding)


def _customer_po(order: dict[str, Any], p: str) -> str | None:
    po = get_text(order, "po_number", p)
    if po:
        return po
    for i, attr in enumerate(get_list(order, "note_attributes", p)):
        if not isinstance(attr, dict):
            continue  # free-form customer input: an odd entry is not a reason to refuse the order
        name = jtext(attr.get("name")) if not isinstance(attr.get("name"), dict | list) else None
        if name and " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower().replace(".", "")).split()) in _PO_NAMES:
            v = get_text(attr, "value", f"{p}/note_attributes/{i}")
            if v:
                return v
    return None


def _order_rows(order: dict[str, Any], p: str, raw: str) -> list[dict[str, Any]]:
    """Raw rows of one order (header fields repeated on each line item). Raises RecordProblem."""
    items = order.get("line_items")
    if items is None or items == []:
        raise RecordProblem("NO_LINES", f"{p} has no line_items")
    items = get_objs(order, "line_items", p)

    customer = get_obj(order, "customer", p)
    ship = get_obj(order, "shipping_address", p)
    sp = f"{p}/shipping_address"
    ship_name = get_text(ship, "name", sp)
    if ship_name is None:
        ship_name = " ".join(x for x in (get_text(ship, "first_name", sp), get_text(ship, "last_name", sp)) if x) or None
    shipping_lines = get_objs(order, "shipping_lines", p)
    ship_method = None
    if shipping_lines:
        sl0 = f"{p}/shipping_lines/0"
        ship_method = get_text(shipping_lines[0], "code", sl0) or get_text(shipping_lines[0], "title", sl0)
    ship_prices = [get_text(s, "price", f"{p}/shipping_lines/{i}") for i, s in enumerate(shipping_lines)]
    ship_discounts = [
        get_text(a, "amount", f"{p}/shipping_lines/{i}/discount_allocations/{j}")
        for i, s in enumerate(shipping_lines)
        for j, a in enumerate(get_objs(s, "discount_allocations", f"{p}/shipping_lines/{i}"))
    ]
    shipping_total = decimal_sum(ship_prices, minus=ship_discounts)
    codes = get_objs(order, "discount_codes", p)
    cancelled_at = get_text(order, "cancelled_at", p)

    header = {
        "order_ref": get_text(order, "id", p) or get_text(order, "name", p),
        "order_ts": get_text(order, "created_at", p),
        "source_updated_at": get_text(order, "updated_at", p),
        "customer_ref": get_text(customer, "id", f"{p}/customer") or get_text(order, "email", p),
        "customer_po": _customer_po(order, p),
        "currency": get_text(order, "currency", p),
        "ship_to_name": ship_name,
        "ship_to_company": get_text(ship, "company", sp),
        "ship_to_line1": get_text(ship, "address1", sp),
        "ship_to_line2": get_text(ship, "address2", sp),
        "ship_to_city": get_text(ship, "city", sp),
        "ship_to_region": get_text(ship, "province_code", sp) or get_text(ship, "province", sp),
        "ship_to_postal_code": get_text(ship, "zip", sp),
        "ship_to_country": get_text(ship, "country_code", sp),
        "ship_method": ship_method,
        "shipping_total": shipping_total,
        "promo_code": get_text(codes[0], "code", f"{p}/discount_codes/0") if codes else None,
        "payment_status": get_text(order, "financial_status", p),
        "channel_status": "cancelled" if cancelled_at else get_text(order, "fulfillment_status", p),
        "cancelled_at": cancelled_at,
        "channel_total": get_text(order, "total_price", p),
    }
    common = {"record_id": p, "record_kind": "order", "record_location": p, "order_key": p, "raw": raw, **header}

    rows = []
    for i, li in enumerate(items):
        lp = f"{p}/line_items/{i}"
        allocations = get_objs(li, "discount_allocations", lp)
        if allocations:
            discount = decimal_sum(
                [get_text(a, "amount", f"{lp}/discount_allocations/{j}") for j, a in enumerate(allocations)]
            )
        else:
            discount = get_text(li, "total_discount", lp)
        tax_lines = get_objs(li, "tax_lines", lp)
        tax = decimal_sum([get_text(t, "price", f"{lp}/tax_lines/{j}") for j, t in enumerate(tax_lines)])
        rate = get_text(tax_lines[0], "rate", f"{lp}/tax_lines/0") if len(tax_lines) == 1 else None
        rows.append(
            {
                **common,
                "location": lp,
                "line_ref": get_text(li, "id", lp),
                "sku": get_text(li, "sku", lp) or get_text(li, "variant_id", lp),
                "description": get_text(li, "name", lp) or get_text(li, "title", lp),
                "quantity": get_text(li, "quantity", lp),
                "unit_price": get_text(li, "price", lp),
                "discount_amount": discount,
                "tax_amount": tax,
                "tax_rate": rate,
            }
        )
    return rows


__all__ = [
    "CHANNEL",
    "FileProblem",
    "JNum",
    "RecordProblem",
    "decimal_sum",
    "dump_json",
    "get_list",
    "get_obj",
    "get_objs",
    "get_text",
    "kind_of",
    "load_json_exact",
    "parse_shopify",
    "read_json_document",
]
