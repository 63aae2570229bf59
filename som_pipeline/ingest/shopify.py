"""Shopify Admin REST API orders: ``{"order": {...}}`` (one order) or ``{"orders": [...]}`` (a page).

One record = one order object (``record_kind`` "order"); its ``line_items`` become the raw rows, the
order fields repeated on each. Locations are JSON pointers (``/orders/3``, ``/order/line_items/0``).

Decisions (see also the field mapping in :func:`_order_rows`):

- File-level problems are one ``file`` record: EMPTY_FILE / BAD_ENCODING (``decode_text``), INVALID_JSON
  (message gives line and column; a syntax error at the very end says the file looks truncated),
  UNSUPPORTED_DOCUMENT for valid JSON that is not an order resource (a refund, a transaction list,
  order risks, a fulfillment event, a bare draft order or checkout...; the message names what it looks like).
- A bare order object -- what an ``orders/create`` / ``orders/updated`` webhook delivers: the order resource
  without the ``{"order": ...}`` wrapper -- is one order, captured like ``{"order": ...}``; its location is
  ``/`` (the document root) and its lines ``/line_items/<i>``. It is told from the other bare objects by
  :func:`_is_bare_order` (``line_items`` + ``id`` + an order-only key; no draft-order / checkout key).
- ``{"orders": []}`` (an empty page, a normal API answer) is zero records, not a problem.
- Record-level structure problems (an element of ``orders`` that is not an object, a line item that is
  not an object, ``tax_lines`` that is not a list, an object where a value is expected...) reject the
  order with UNSUPPORTED_DOCUMENT and a message naming the JSON pointer. An order without line items
  is NO_LINES.
- Sums (line ``discount_allocations``, ``tax_lines``, ``shipping_lines``) are exact ``Decimal`` sums.
  A summand that is not a plain decimal with at most 2 places is passed through *as sent* instead of
  the sum, so :func:`normalise` rejects the order naming the field (we never round what was sent).
- ``sku`` falls back to ``variant_id`` (as text) when empty: variant-only items have no SKU.
- A *custom line item* (admin, draft-order and POS orders: ``sku`` and ``variant_id`` both empty -- a
  custom-priced item, a service) is captured with its title, price, discounts and taxes as any line, with
  ``item_kind`` ``service`` when ``requires_shipping`` is false, else ``custom``, and the placeholder sku
  ``CUSTOM:<line item id>`` (``CUSTOM:<position>`` when the item has no id; see
  ``schemas.orders.CUSTOM_SKU_PREFIX``). Validation decides what happens to it (no reservation; a custom
  physical item is held CUSTOM_ITEM_REVIEW).
- ``shipping_total`` = sum(shipping_lines[].price) - sum(shipping_lines[].discount_allocations[].amount);
  ``shipping_tax`` = sum(shipping_lines[].tax_lines[].price) (part of ``tax_total``).
- The document's own totals are kept as stated, to reconcile (``sql/reconciliation/channel_totals.sql``):
  ``total_price`` -> ``channel_total``, ``subtotal_price`` -> ``channel_subtotal`` (after discounts, before
  shipping and tax), ``total_discounts`` -> ``channel_discount_total``, ``total_tax`` -> ``channel_tax_total``.
- ``taxes_included: true`` (tax-inclusive prices) -> ``prices_include_tax``: line prices, discounts and shipping
  already contain the tax, so ``order_total`` does not add it again (it then equals Shopify's ``total_price``).
- Numbers are kept as the exact text sent (:func:`load_json_exact`), also in ``raw``
  (:func:`dump_json` writes them unquoted, so ``raw`` is the compact JSON of the order as sent).
"""

from __future__ import annotations

import re
from typing import Any

from som_pipeline.ingest.common import ParseResult, Rejection, jtext, raw_frame
from som_pipeline.ingest.jsondoc import (
    MAX_RAW_CHARS,
    FileProblem,
    JNum,
    RecordProblem,
    decimal_sum,
    dump_json,
    get_list,
    get_obj,
    get_objs,
    get_text,
    kind_of,
    load_json_exact,
    read_json_document,
)
from som_pipeline.schemas.orders import CUSTOM_SKU_PREFIX

CHANNEL = "shopify"
RECORD_UNIT = "order"


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


# Keys only a placed order carries (the order resource; webhooks orders/create, orders/updated, orders/paid)
_ORDER_ONLY_KEYS = ("order_number", "financial_status", "processed_at", "checkout_id", "confirmation_number")
# Keys of the other bare objects with line_items: a draft order, a checkout / abandoned checkout, a cart
_DRAFT_KEYS = ("invoice_url", "invoice_sent_at")
_CHECKOUT_KEYS = ("abandoned_checkout_url",)


def _is_bare_order(doc: Any) -> bool:
    """A webhook-shaped order: the order resource itself, not wrapped in ``{"order": ...}``."""
    return (isinstance(doc, dict) and isinstance(doc.get("line_items"), list) and "id" in doc
            and "order" not in doc and "orders" not in doc
            and any(k in doc for k in _ORDER_ONLY_KEYS)
            and not any(k in doc for k in _DRAFT_KEYS + _CHECKOUT_KEYS))


def _describe(doc: Any) -> str:
    """What a valid JSON document that is not an order resource looks like."""
    if isinstance(doc, dict):
        if "line_items" in doc:  # a bare resource: its nested keys (customer, refunds...) say nothing
            if any(k in doc for k in _DRAFT_KEYS) or str(doc.get("name", "")).startswith("#D"):
                return _NOT_ORDERS["draft_order"]
            if any(k in doc for k in _CHECKOUT_KEYS):
                return _NOT_ORDERS["checkout"]
            return ("an object with line_items that is not a placed order (a bare order has an id and one of "
                    f"{', '.join(_ORDER_ONLY_KEYS)})")
        for k in doc:
            if k in _NOT_ORDERS:
                return _NOT_ORDERS[k]
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
    elif _is_bare_order(doc):
        records = [("", doc)]  # "" is the JSON pointer of the document root (RFC 6901)
    else:
        if isinstance(doc, dict) and ("order" in doc or "orders" in doc):
            key = "order" if "order" in doc else "orders"
            want = "an object" if key == "order" else "a list"
            msg = f"/{key} is {kind_of(doc[key])}, expected {want}: not a Shopify order resource"
        else:
            msg = (f"{source_file} is {_describe(doc)}, not a Shopify order resource "
                   '(expected {"order": {...}}, {"orders": [...]} or the bare order object of an orders/* webhook)')
        raw = text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS]
        return _file(FileProblem("UNSUPPORTED_DOCUMENT", msg, raw=raw, encoding=encoding))

    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for pointer, order in records:
        where = pointer or "/"
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
            rejected.append(Rejection(where, "order", where, p.reason_code, p.message, raw, ref))
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
    shipping_tax = decimal_sum([
        get_text(t, "price", f"{p}/shipping_lines/{i}/tax_lines/{j}")
        for i, s in enumerate(shipping_lines)
        for j, t in enumerate(get_objs(s, "tax_lines", f"{p}/shipping_lines/{i}"))
    ])
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
        "channel_subtotal": get_text(order, "subtotal_price", p),
        "channel_discount_total": get_text(order, "total_discounts", p),
        "channel_tax_total": get_text(order, "total_tax", p),
        "shipping_tax": shipping_tax,
        "prices_include_tax": get_text(order, "taxes_included", p),
    }
    where = p or "/"  # the root of a bare (webhook) order
    common = {"record_id": where, "record_kind": "order", "record_location": where, "order_key": where, "raw": raw,
              **header}

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
        sku = get_text(li, "sku", lp) or get_text(li, "variant_id", lp)
        kind = None  # catalog
        if sku is None:  # a custom line item: no catalog identity
            kind = "service" if get_text(li, "requires_shipping", lp) == "false" else "custom"
            sku = CUSTOM_SKU_PREFIX + (get_text(li, "id", lp) or str(i + 1))
        rows.append(
            {
                **common,
                "location": lp,
                "line_ref": get_text(li, "id", lp),
                "sku": sku,
                "item_kind": kind,
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
