"""Amazon Selling Partner API, Orders v0: ``getOrders`` pages and ``getOrderItems`` pages.

The two halves of an order arrive as SEPARATE files, in any order, so capture is two steps:

1. :func:`parse_amazon` reads one file. Every field is validated by :func:`normalise` (the same checks
   as every channel): a ``getOrders`` page is validated as orders with a neutral placeholder line, a
   ``getOrderItems`` page as one order (the page) whose lines are the items, so a bad item rejects the
   whole page. The file's ``captured`` gives its quarantine rows and counts (records = orders for a
   getOrders file, items for a getOrderItems file); its accepted halves come back as rows for
   ``stage.amazon_headers`` (:class:`~som_pipeline.schemas.AmazonHeaderModel`) and
   ``stage.amazon_items`` (:class:`~som_pipeline.schemas.AmazonItemsModel`).
   NB ``captured.headers`` / ``captured.lines`` are validation by-products (placeholder lines, placeholder
   order dates): never stage them as orders; ``captured.orders_accepted`` = orders (getOrders) or item
   pages (getOrderItems) accepted.
2. :func:`pair_amazon` joins everything staged so far: the latest header of each AmazonOrderId with the
   union of its item pages, once the items are complete. Its ``rows`` go through :func:`normalise`
   again (:func:`capture_pairs` does it pair by pair) and become ordinary staged orders.

Decisions
- ``payment_status``: Amazon collects the payment itself, so "paid" -- except "pending" while the
  OrderStatus is Pending / PendingAvailability (payment not yet authorised by Amazon).
- ``cancelled_at`` = LastUpdateDate when OrderStatus is Canceled (the API has no cancellation time).
- ``ship_to_line2`` = AddressLine2 and AddressLine3 joined by ", "; ``ship_to_company`` = CompanyName.
- ``line_amount`` = ItemPrice.Amount (Amazon's ItemPrice is the extended price: price x quantity);
  ``unit_price`` is left empty, normalise derives it. ``shipping_amount`` = ShippingPrice -
  ShippingDiscount (exact). Not mapped: ShippingTax, GiftWrap*, CODFee*, PromotionDiscountTax.
- ``sku`` = SellerSKU, else ASIN.
- Currency: the currency codes of the money fields we read (ItemPrice, ItemTax, PromotionDiscount,
  ShippingPrice, ShippingDiscount) must agree across the whole page, else every item of the page is
  rejected with CURRENCY_MISMATCH. Every item row carries the page's currency.
- Item completeness: an order's items are complete when at least one staged page for it has no
  NextToken. Limitation: page order cannot be proven from the payload (a NextToken is opaque and a
  page does not say which page it is), so a final page staged before a middle page would pair early;
  the middle page then changes the pair key and the order is captured again as a new version.
- A ``getOrder`` response (``{"payload": {<one Order>}}``) is read as a getOrders page of one order.
- Empty ``Orders`` list: zero records (a normal "no new orders" answer). Empty ``OrderItems``: one
  file-level NO_LINES rejection (an order cannot have zero items).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from som_pipeline.hashing import sha256_series, sha256_text
from som_pipeline.ingest.common import (
    HEADER_FIELDS,
    LINE_FIELDS,
    Captured,
    ParseResult,
    Rejection,
    normalise,
    raw_frame,
)
from som_pipeline.ingest.jsondoc import (
    FileProblem,
    RecordProblem,
    decimal_sum,
    dump_json,
    get_obj,
    get_objs,
    get_text,
    kind_of,
    read_json_document,
)
from som_pipeline.schemas import AmazonHeaderModel, AmazonItemsModel, conform, empty

CHANNEL = "amazon"
ORDER_TS_PLACEHOLDER = "1970-01-01"  # items pages carry no order date; the header brings the real one
ITEM_FIELDS = [*LINE_FIELDS, "currency", "location"]  # keys of each entry of items_json
_MONEY_FIELDS = ("ItemPrice", "ItemTax", "PromotionDiscount", "ShippingPrice", "ShippingDiscount")
_PENDING_PAYMENT = {"pending", "pendingavailability"}
_CANCELLED = {"canceled", "cancelled"}


@dataclass
class AmazonFile:
    """One Amazon file read and validated."""

    kind: str  # "orders" | "items" | "invalid"
    captured: Captured  # quarantine rows and per-file counts (see module doc: headers/lines are by-products)
    headers: pl.DataFrame  # AmazonHeaderModel: one row per accepted order (getOrders)
    items: pl.DataFrame  # AmazonItemsModel: one row per accepted items page (getOrderItems)
    encoding: str | None = None
    result: ParseResult | None = None  # the raw rows that were validated


@dataclass
class AmazonPairing:
    """Orders whose header and items are both staged (and complete), and what is still waiting."""

    rows: ParseResult  # raw rows of the complete orders (+ CURRENCY_MISMATCH rejections)
    pairs: pl.DataFrame  # amazon_order_id, header_hash, items_hash, pair_key, source_file, source_location
    pending: pl.DataFrame  # amazon_order_id, waiting_for, since, source_file

    @property
    def source_files(self) -> dict[str, str]:
        """AmazonOrderId -> "header file + items file(s)"."""
        return dict(zip(self.pairs["amazon_order_id"], self.pairs["source_file"], strict=True))


@dataclass
class PairCapture:
    amazon_order_id: str
    pair_key: str
    source_file: str
    captured: Captured


# ------------------------------------------------------------------------------------------------
# One file
# ------------------------------------------------------------------------------------------------
@dataclass
class AmazonRead:
    """A file read but not yet validated: ``result`` goes through ``normalise`` (alone or batched with
    other files), then ``finish`` turns the outcome into the :class:`AmazonFile`."""

    kind: str
    result: ParseResult
    required_header: tuple[str, ...]
    finish: Callable[[Captured, str, datetime], AmazonFile]


def read_amazon(data: bytes, source_file: str) -> AmazonRead:
    """Structure-only read of one getOrders / getOrderItems response file. Never raises on bad input."""
    try:
        doc, text, encoding = read_json_document(data)
        kind, payload = _classify(doc, text)
        if kind == "orders":
            return _orders_file(payload, encoding)
        return _items_file(payload, encoding)
    except FileProblem as p:
        enc = p.encoding
        result = ParseResult(CHANNEL, "order", raw_frame([]), [p.rejection()], encoding=enc)

        def finish(captured: Captured, source_file: str, received_at: datetime) -> AmazonFile:
            return AmazonFile("invalid", captured, empty(AmazonHeaderModel), empty(AmazonItemsModel), enc, result)

        return AmazonRead("invalid", result, ("order_ref", "order_ts", "currency"), finish)


def parse_amazon(data: bytes, source_file: str, file_sha256: str, received_at: datetime) -> AmazonFile:
    """Read and validate one getOrders / getOrderItems response file. Never raises on bad input."""
    r = read_amazon(data, source_file)
    captured = normalise(r.result, source_file=source_file, file_sha256=file_sha256, captured_at=received_at,
                         required_header=r.required_header)
    return r.finish(captured, source_file, received_at)


def _classify(doc: Any, text: str) -> tuple[str, Any]:
    """("orders", [(pointer, order), ...]) or ("items", payload); raises FileProblem."""

    def unsupported(what: str) -> FileProblem:
        return FileProblem("UNSUPPORTED_DOCUMENT", f"the file is {what}, not an SP-API getOrders or "
                                                   "getOrderItems response", raw=text)

    if not isinstance(doc, dict):
        raise unsupported(f"a JSON {kind_of(doc).split(' ', 1)[-1]}")
    if "payload" not in doc and "errors" in doc:
        errs = doc["errors"] if isinstance(doc["errors"], list) else [doc["errors"]]
        first = errs[0] if errs and isinstance(errs[0], dict) else {}
        detail = ": ".join(x for x in (str(first.get("code") or ""), str(first.get("message") or "")) if x)
        raise unsupported("an SP-API error response" + (f" ({detail})" if detail else ""))
    payload = doc.get("payload")
    if not isinstance(payload, dict):
        keys = ", ".join(map(str, list(doc)[:5])) or "none"
        raise unsupported(f"a JSON object with keys {keys}" if payload is None else f"a response whose payload is {kind_of(payload)}")
    if "Orders" in payload:
        orders = payload["Orders"]
        if not isinstance(orders, list):
            raise unsupported(f"a getOrders response whose /payload/Orders is {kind_of(orders)}")
        return "orders", [(f"/payload/Orders/{i}", o) for i, o in enumerate(orders)]
    if "OrderItems" in payload:
        return "items", payload
    if "AmazonOrderId" in payload and "PurchaseDate" in payload:  # getOrder: one order
        return "orders", [("/payload", payload)]
    if "AmazonOrderId" in payload and "ShippingAddress" in payload:
        raise unsupported("an SP-API getOrderAddress response")
    if "AmazonOrderId" in payload and "BuyerEmail" in payload:
        raise unsupported("an SP-API getOrderBuyerInfo response")
    keys = ", ".join(map(str, list(payload)[:5])) or "none"
    raise unsupported(f"an SP-API response whose payload has keys {keys}")


def _money(obj: dict[str, Any], key: str, path: str) -> tuple[str | None, str | None]:
    """(Amount, CurrencyCode) of a Money object (absent -> (None, None))."""
    m = get_obj(obj, key, path)
    return get_text(m, "Amount", f"{path}/{key}"), get_text(m, "CurrencyCode", f"{path}/{key}")


def _header_fields(o: dict[str, Any], p: str) -> dict[str, str | None]:
    addr = get_obj(o, "ShippingAddress", p)
    ap = f"{p}/ShippingAddress"
    buyer = get_obj(o, "BuyerInfo", p)
    bp = f"{p}/BuyerInfo"
    total, currency = _money(o, "OrderTotal", p)
    status = get_text(o, "OrderStatus", p)
    updated = get_text(o, "LastUpdateDate", p)
    line2 = [x for x in (get_text(addr, "AddressLine2", ap), get_text(addr, "AddressLine3", ap)) if x]
    return {
        "order_ref": get_text(o, "AmazonOrderId", p),
        "order_ts": get_text(o, "PurchaseDate", p),
        "source_updated_at": updated,
        "customer_ref": get_text(buyer, "BuyerEmail", bp),
        "customer_po": get_text(buyer, "PurchaseOrderNumber", bp),
        "currency": currency,
        "channel_total": total,
        "ship_to_name": get_text(addr, "Name", ap),
        "ship_to_company": get_text(addr, "CompanyName", ap),
        "ship_to_line1": get_text(addr, "AddressLine1", ap),
        "ship_to_line2": ", ".join(line2) or None,
        "ship_to_city": get_text(addr, "City", ap),
        "ship_to_region": get_text(addr, "StateOrRegion", ap),
        "ship_to_postal_code": get_text(addr, "PostalCode", ap),
        "ship_to_country": get_text(addr, "CountryCode", ap),
        "ship_method": get_text(o, "ShipmentServiceLevelCategory", p) or get_text(o, "ShipServiceLevel", p),
        "payment_status": "pending" if (status or "").lower() in _PENDING_PAYMENT else "paid",
        "channel_status": status,
        "cancelled_at": updated if (status or "").lower() in _CANCELLED else None,
    }


def _orders_file(records: list[tuple[str, Any]], encoding: str | None) -> AmazonRead:
    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    fields: dict[str, dict[str, str | None]] = {}
    for p, o in records:
        raw = dump_json(o)
        try:
            if not isinstance(o, dict):
                raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{p} is {kind_of(o)}, expected an Order object")
            h = _header_fields(o, p)
        except RecordProblem as e:
            ref = o.get("AmazonOrderId") if isinstance(o, dict) and isinstance(o.get("AmazonOrderId"), str) else None
            rejected.append(Rejection(p, "order", p, e.reason_code, e.message, raw, ref))
            continue
        fields[p] = h
        rows.append({"record_id": p, "record_kind": "order", "record_location": p, "order_key": p,
                     "location": p, "raw": raw, **h, "sku": "-", "quantity": "1"})
    result = ParseResult(CHANNEL, "order", raw_frame(rows), rejected, encoding=encoding)

    def finish(captured: Captured, source_file: str, received_at: datetime) -> AmazonFile:
        out = []
        for loc, updated in captured.headers.select("source_location", "source_updated_at").iter_rows():
            h = fields[loc]
            header_json = json.dumps({k: h.get(k) for k in HEADER_FIELDS}, ensure_ascii=False, separators=(",", ":"))
            out.append({"amazon_order_id": h["order_ref"], "last_update": updated, "header_json": header_json,
                        "source_file": source_file, "source_location": loc, "header_hash": sha256_text(header_json),
                        "received_at": received_at})
        headers = conform(pl.DataFrame(out, schema_overrides={"last_update": pl.Datetime("us", "UTC")}),
                          AmazonHeaderModel) if out else empty(AmazonHeaderModel)
        return AmazonFile("orders", captured, headers, empty(AmazonItemsModel), encoding, result)

    return AmazonRead("orders", result, ("order_ref", "order_ts"), finish)


def _item_fields(it: dict[str, Any], p: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """Line fields of one OrderItem and the currency of each money field read."""
    amounts: dict[str, str | None] = {}
    currencies: dict[str, str] = {}
    for k in _MONEY_FIELDS:
        amount, cur = _money(it, k, p)
        amounts[k] = amount
        if cur is not None:
            currencies[k] = cur.strip().upper()
    fields = {
        "line_ref": get_text(it, "OrderItemId", p),
        "sku": get_text(it, "SellerSKU", p) or get_text(it, "ASIN", p),
        "description": get_text(it, "Title", p),
        "quantity": get_text(it, "QuantityOrdered", p),
        "line_amount": amounts["ItemPrice"],
        "tax_amount": amounts["ItemTax"],
        "discount_amount": amounts["PromotionDiscount"],
        "shipping_amount": decimal_sum([amounts["ShippingPrice"]], minus=[amounts["ShippingDiscount"]]),
    }
    return fields, currencies


def _items_file(payload: dict[str, Any], encoding: str | None) -> AmazonRead:
    page_raw = dump_json(payload)
    try:
        order_id = get_text(payload, "AmazonOrderId", "/payload")
        items = get_objs(payload, "OrderItems", "/payload") if payload.get("OrderItems") is not None else None
    except RecordProblem as e:  # the page itself is malformed: nothing on it can be read
        raise FileProblem(e.reason_code, e.message, raw=page_raw, encoding=encoding) from None
    if items is None or not items:
        raise FileProblem("NO_LINES", f"the getOrderItems page of order {order_id or '?'} has no items",
                          location="/payload/OrderItems", raw=page_raw, encoding=encoding)
    has_next = payload.get("NextToken") not in (None, "")
    key = order_id or "/payload"

    parsed: list[tuple[str, str, dict[str, str | None] | None, dict[str, str]]] = []
    problems: dict[str, RecordProblem] = {}
    for i, it in enumerate(items):
        p = f"/payload/OrderItems/{i}"
        try:
            f, cur = _item_fields(it, p)
            parsed.append((p, dump_json(it), f, cur))
        except RecordProblem as e:
            problems[p] = e
            parsed.append((p, dump_json(it), None, {}))
    page_currencies = sorted({c for _, _, _, cur in parsed for c in cur.values()})

    rows: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    if problems or len(page_currencies) > 1:
        first = next(iter(problems), None)
        for p, raw, _f, cur in parsed:
            if p in problems:
                code, msg = problems[p].reason_code, problems[p].message
            elif problems:
                code, msg = "ORDER_INCOMPLETE", (f"items page of order {order_id or '?'} not captured: another item "
                                                 f"was rejected: {first} ({problems[first].reason_code})")
            else:
                mine = ", ".join(f"{k} {v}" for k, v in cur.items()) or "no amounts"
                code, msg = "CURRENCY_MISMATCH", (f"the items of this page are in different currencies "
                                                  f"({', '.join(page_currencies)}); this item: {mine}")
            rejected.append(Rejection(p, "order_item", p, code, msg, raw, order_id))
    else:
        currency = page_currencies[0] if page_currencies else None
        for p, raw, f, _cur in parsed:
            rows.append({"record_id": p, "record_kind": "order_item", "record_location": p, "order_key": key,
                         "location": p, "raw": raw, "order_ref": order_id, "order_ts": ORDER_TS_PLACEHOLDER,
                         "currency": currency, **(f or {})})
    result = ParseResult(CHANNEL, "order_item", raw_frame(rows), rejected, encoding=encoding)

    def finish(captured: Captured, source_file: str, received_at: datetime) -> AmazonFile:
        items_frame = empty(AmazonItemsModel)
        if captured.headers.height:  # the page was accepted (exact duplicate copies dropped)
            dropped = set(captured.quarantine["location"])  # = record_id (the item pointer)
            kept = [{k: r.get(k) for k in ITEM_FIELDS} for r in rows if r["record_id"] not in dropped]
            items_json = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
            items_hash = sha256_text(json.dumps({"amazon_order_id": order_id, "items": kept, "has_next_page": has_next},
                                                ensure_ascii=False, separators=(",", ":"), sort_keys=True))
            items_frame = conform(pl.DataFrame([{
                "amazon_order_id": order_id, "items_json": items_json, "item_count": len(kept),
                "has_next_page": has_next, "source_file": source_file, "source_location": "/payload",
                "items_hash": items_hash, "received_at": received_at,
            }]), AmazonItemsModel)
        return AmazonFile("items", captured, empty(AmazonHeaderModel), items_frame, encoding, result)

    return AmazonRead("items", result, ("order_ref",), finish)


# ------------------------------------------------------------------------------------------------
# Pairing
# ------------------------------------------------------------------------------------------------
_PAIRS_SCHEMA = {"amazon_order_id": pl.String, "header_hash": pl.String, "items_hash": pl.String,
                 "pair_key": pl.String, "source_file": pl.String, "source_location": pl.String}
_PENDING_SCHEMA = {"amazon_order_id": pl.String, "waiting_for": pl.String,
                   "since": pl.Datetime("us", "UTC"), "source_file": pl.String}


def pair_amazon(headers: pl.DataFrame, items: pl.DataFrame) -> AmazonPairing:
    """Pair staged Amazon headers (AmazonHeaderModel rows) with staged item pages (AmazonItemsModel rows).

    For each AmazonOrderId: the latest header (by last_update, then received_at) and the union of all
    its staged pages' items (deduplicated by OrderItemId, the later page wins; lines keep the order in
    which they were first seen). An order pairs when it has a header and its items are complete (a
    page without NextToken). Everything else is ``pending``.
    """
    hcols = list(AmazonHeaderModel.to_schema().columns)
    icols = list(AmazonItemsModel.to_schema().columns)
    headers = conform(headers, AmazonHeaderModel).select(hcols)
    items = conform(items, AmazonItemsModel).select(icols)

    latest = (
        headers.sort(["amazon_order_id", "last_update", "received_at", "source_file", "source_location"],
                     nulls_last=False)
        .group_by("amazon_order_id", maintain_order=True)
        .last()
    )
    pages = items.sort(["received_at", "source_file", "source_location", "items_hash"])
    page_state = pages.group_by("amazon_order_id").agg(
        (~pl.col("has_next_page")).any().alias("complete"),
        pl.col("received_at").min().alias("items_since"),
        pl.col("source_file").unique(maintain_order=True).alias("items_files"),
        pl.col("items_hash").sort().str.join("|").alias("_page_hashes"),
        pl.concat_str([pl.col("source_file"), pl.lit(" "), pl.col("source_location")])
        .unique(maintain_order=True).str.join(" + ").alias("items_location"),
        pl.col("items_json").str.join(",").alias("_pages_json"),
    )
    header_state = headers.group_by("amazon_order_id").agg(
        pl.col("received_at").min().alias("header_since"),
        pl.col("source_file").unique(maintain_order=True).alias("header_files"),
    )

    # --- pending ---------------------------------------------------------------------------
    state = header_state.join(page_state, on="amazon_order_id", how="full", coalesce=True)
    waiting = (
        pl.when(pl.col("header_since").is_null()).then(pl.lit("order header"))
        .when(pl.col("items_since").is_null()).then(pl.lit("items"))
        .when(~pl.col("complete")).then(pl.lit("more item pages"))
    )
    pending = state.select(
        "amazon_order_id",
        waiting.alias("waiting_for"),
        pl.min_horizontal("header_since", "items_since").alias("since"),
        pl.concat_list([pl.col("header_files").fill_null([]), pl.col("items_files").fill_null([])])
        .list.unique(maintain_order=True).list.join(", ").alias("source_file"),
    ).filter(pl.col("waiting_for").is_not_null()).sort("since", "amazon_order_id")
    pending = pending.cast(_PENDING_SCHEMA).select(list(_PENDING_SCHEMA))  # type: ignore[arg-type]

    # --- complete pairs ------------------------------------------------------------------------
    done = latest.join(page_state.filter(pl.col("complete")), on="amazon_order_id", how="inner")
    if done.height == 0:
        return AmazonPairing(ParseResult(CHANNEL, "order", raw_frame([])), pl.DataFrame(schema=_PAIRS_SCHEMA), pending)
    done = done.with_columns(
        sha256_series(pl.col("_page_hashes"), done).alias("items_hash"),
        pl.concat_str([pl.col("source_file"), pl.lit(" + "), pl.col("items_files").list.join(" + ")])
        .alias("pair_source_file"),
        pl.concat_str([pl.col("source_file"), pl.lit(" "), pl.col("source_location"), pl.lit(" + "),
                       pl.col("items_location")]).alias("record_location"),
        pl.concat_str([pl.lit('{"header":'), pl.col("header_json"), pl.lit(',"item_pages":['),
                       pl.col("_pages_json"), pl.lit("]}")]).alias("raw"),
    )
    done = done.with_columns(
        sha256_series(pl.concat_str([pl.col("header_hash"), pl.col("items_hash")], separator="|"), done)
        .alias("pair_key")
    )
    pairs = done.select("amazon_order_id", "header_hash", "items_hash", "pair_key",
                        pl.col("pair_source_file").alias("source_file"),
                        pl.col("record_location").alias("source_location"))

    # items: union of the pages, deduplicated by OrderItemId (later page wins), first-seen order
    item_struct = pl.List(pl.Struct({f: pl.String for f in ITEM_FIELDS}))
    ex = (
        pages.join(done.select("amazon_order_id"), on="amazon_order_id", how="semi")
        .with_row_index("_page")
        .with_columns(pl.col("items_json").str.json_decode(item_struct).alias("_it"))
        .explode("_it")
        .with_row_index("_seq")
        .unnest("_it")
        .with_columns(
            pl.coalesce(pl.col("line_ref"), pl.concat_str([pl.col("source_file"), pl.lit(" "), pl.col("location")]))
            .alias("_key")
        )
    )
    lines = (
        ex.group_by("amazon_order_id", "_key")
        .agg(pl.all().sort_by("_seq").last(), pl.col("_seq").min().alias("_first"))
        .sort("_first")
    )
    item_currency = lines.group_by("amazon_order_id").agg(
        pl.col("currency").str.strip_chars().str.to_uppercase().drop_nulls().unique().sort().alias("_item_currencies"),
        pl.col("currency").drop_nulls().first().alias("_item_currency"),
    )
    hdr_fields = pl.Struct({f: pl.String for f in HEADER_FIELDS})
    done = (
        done.join(item_currency, on="amazon_order_id", how="left")
        .with_columns(pl.col("header_json").str.json_decode(hdr_fields).alias("_h"))
        .unnest("_h")
        .with_columns(
            pl.col("currency").str.strip_chars().str.to_uppercase().alias("_hdr_currency"),
        )
        .with_columns(
            (
                (pl.col("_item_currencies").list.len() > 1)
                | (pl.col("_hdr_currency").is_not_null() & (pl.col("_item_currencies").list.len() == 1)
                   & (pl.col("_hdr_currency") != pl.col("_item_currencies").list.first()))
            ).fill_null(False).alias("_mismatch"),
            pl.coalesce(pl.col("currency"), pl.col("_item_currency")).alias("currency"),
        )
    )
    rejected = [
        Rejection(r["amazon_order_id"], "order", r["record_location"], "CURRENCY_MISMATCH",
                  f"order header currency is {r['_hdr_currency'] or 'not given'} but its items are in "
                  f"{', '.join(r['_item_currencies'] or []) or 'no currency'}",
                  r["raw"], r["amazon_order_id"])
        for r in done.filter(pl.col("_mismatch")).iter_rows(named=True)
    ]
    good = done.filter(~pl.col("_mismatch")).select(
        "amazon_order_id", "record_location", "raw", *HEADER_FIELDS, "pair_source_file",
    )
    line_cols = [c for c in LINE_FIELDS]
    rows = (
        lines.select("amazon_order_id", "_first", *line_cols,
                     pl.concat_str([pl.col("source_file"), pl.lit(" "), pl.col("location")]).alias("location"))
        .join(good, on="amazon_order_id", how="inner")
        .sort("_first")
        .with_columns(
            pl.col("amazon_order_id").alias("record_id"),
            pl.lit("order").alias("record_kind"),
            pl.col("amazon_order_id").alias("order_key"),
        )
    )
    rows = rows.select([pl.col(c).cast(pl.String) if c in rows.columns else pl.lit(None, pl.String).alias(c)
                        for c in raw_frame([]).columns])
    return AmazonPairing(ParseResult(CHANNEL, "order", rows, rejected), pairs, pending)


def capture_pairs(
    pairing: AmazonPairing, *, captured_at: datetime | None = None, skip_pair_keys: set[str] | frozenset[str] = frozenset()
) -> list[PairCapture]:
    """Normalise the complete pairs (one vectorised ``normalise`` call for all of them), then give each
    pair its identity: source_file "header file + items file(s)", and its ``pair_key`` in place of the
    file hash (capture_id and quarantine_id derive from it), so a pair already captured can be skipped.
    """
    todo = pairing.pairs.filter(~pl.col("pair_key").is_in(sorted(skip_pair_keys)))
    if todo.height == 0:
        return []
    ids = set(todo["amazon_order_id"].to_list())
    rows = pairing.rows.rows.filter(pl.col("record_id").is_in(sorted(ids)))
    rejected = [r for r in pairing.rows.rejected if r.record_id in ids]
    batch = normalise(ParseResult(CHANNEL, "order", rows, rejected), source_file="(amazon pairing)",
                      file_sha256="0" * 64, captured_at=captured_at)
    meta = todo.select("amazon_order_id", "pair_key", pl.col("source_file").alias("_pair_file"))
    new_id = pl.concat_str([pl.col("pair_key").str.slice(0, 16), pl.lit("/"), pl.col("channel_order_ref")])
    headers = (
        batch.headers.join(meta, left_on="channel_order_ref", right_on="amazon_order_id", how="left")
        .with_columns(pl.col("capture_id").alias("_old"), new_id.alias("capture_id"),
                      pl.col("_pair_file").alias("source_file"))
    )
    remap = headers.select("_old", "capture_id")
    lines = batch.lines.join(remap, left_on="capture_id", right_on="_old", how="left", suffix="_new").with_columns(
        pl.col("capture_id_new").alias("capture_id")).select(batch.lines.columns)
    lines = lines.join(headers.select("capture_id", pl.col("channel_order_ref").alias("_oid")), on="capture_id")
    q = batch.quarantine.join(meta, left_on="order_ref", right_on="amazon_order_id", how="left")
    q = q.with_columns(
        pl.col("pair_key").alias("file_sha256"),
        pl.col("_pair_file").alias("source_file"),
        sha256_series(pl.concat_str([pl.col("pair_key"), pl.col("order_ref"), pl.col("reason_code")], separator="|"), q)
        .alias("quarantine_id"),
    ).select(batch.quarantine.columns)
    h_by = headers.select(batch.headers.columns).partition_by("channel_order_ref", as_dict=True)
    l_by = lines.partition_by("_oid", as_dict=True)
    q_by = q.partition_by("order_ref", as_dict=True)
    out = []
    for order_id, pair_key, source_file in todo.select("amazon_order_id", "pair_key", "source_file").iter_rows():
        h = h_by.get((order_id,), batch.headers.clear())
        ln = l_by.get((order_id,), lines.clear()).drop("_oid")
        qq = q_by.get((order_id,), batch.quarantine.clear())
        cap = Captured(h, ln, qq, 1, h.height, qq.height, None, {})
        out.append(PairCapture(order_id, pair_key, source_file, cap))
    return out


__all__ = [
    "AmazonFile",
    "AmazonPairing",
    "AmazonRead",
    "ITEM_FIELDS",
    "PairCapture",
    "capture_pairs",
    "pair_amazon",
    "parse_amazon",
    "read_amazon",
]
