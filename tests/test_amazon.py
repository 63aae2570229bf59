"""Amazon SP-API Orders v0: per-file parsing, pairing headers with item pages, bad inputs, properties."""

from __future__ import annotations

import copy
import functools
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline.ingest.amazon import AmazonFile, capture_pairs, pair_amazon, parse_amazon
from som_pipeline.ingest.common import file_sha256, normalise
from som_pipeline.schemas import (
    AmazonHeaderModel,
    AmazonItemsModel,
    QuarantineModel,
    StagedLineModel,
    StagedOrderModel,
    validate,
)

FIX = Path(__file__).parent / "fixtures" / "amazon"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SANDBOX_ID = "902-1845936-5435065"
EXAMPLE_ITEMS_ID = "903-1671087-0812628"
PENDING_ID = "902-3159896-1390916"
OTHER_ID = "902-8745147-1934268"


def parse(data: bytes, name: str = "test.json", at: datetime = T0) -> AmazonFile:
    f = parse_amazon(data, name, file_sha256(data), at)
    c = f.captured
    assert c.records_received == c.records_accepted + c.records_quarantined
    validate(QuarantineModel, c.quarantine)
    validate(AmazonHeaderModel, f.headers)
    validate(AmazonItemsModel, f.items)
    return f


def sample(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def enc(doc) -> bytes:
    return json.dumps(doc).encode()


def reasons(f: AmazonFile) -> list[str]:
    return sorted(f.captured.quarantine["reason_code"].to_list())


def stage(files: list[AmazonFile]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.concat([f.headers for f in files]), pl.concat([f.items for f in files])


@functools.cache
def sample_files() -> dict[str, AmazonFile]:
    names = sorted(p.name for p in FIX.glob("*.json"))
    return {n: parse((FIX / n).read_bytes(), n, T0 + timedelta(minutes=i)) for i, n in enumerate(names)}


def items_doc(order_id: str = SANDBOX_ID, **changes) -> dict:
    doc = sample("getOrderItems.sandbox_0.json")
    doc["payload"]["AmazonOrderId"] = order_id
    doc["payload"]["OrderItems"][0].update(changes)
    return doc


def two_items_doc(order_id: str = SANDBOX_ID) -> dict:
    doc = items_doc(order_id)
    second = copy.deepcopy(doc["payload"]["OrderItems"][0])
    second.update(OrderItemId="99999999999999", SellerSKU="SKU-2", QuantityOrdered=2,
                  ItemPrice={"CurrencyCode": "USD", "Amount": "5.00"},
                  ItemTax={"CurrencyCode": "USD", "Amount": "0.50"})
    doc["payload"]["OrderItems"].append(second)
    return doc


def orders_doc(**changes) -> dict:
    doc = sample("getOrders.sandbox_0.json")
    doc["payload"]["Orders"][0].update(changes)
    return doc


def capture_all(files: list[AmazonFile]):
    pairing = pair_amazon(*stage(files))
    caps = capture_pairs(pairing, captured_at=T0)
    for pc in caps:
        c = pc.captured
        assert c.records_received == c.records_accepted + c.records_quarantined == 1
        validate(StagedOrderModel, c.headers)
        validate(StagedLineModel, c.lines)
    return pairing, caps


# ------------------------------------------------------------------------------------------------
# Samples
# ------------------------------------------------------------------------------------------------
def test_sample_files_counts():
    files = sample_files()
    got = {n: (f.kind, f.captured.records_received, f.captured.records_accepted, f.headers.height, f.items.height)
           for n, f in files.items()}
    assert got == {
        "getOrderItems.example.json": ("items", 2, 2, 0, 1),
        "getOrderItems.sandbox_0.json": ("items", 1, 1, 0, 1),
        "getOrders.example.json": ("orders", 1, 1, 1, 0),
        "getOrders.sandbox_0.json": ("orders", 2, 2, 2, 0),
        "getOrders.sandbox_1.json": ("orders", 1, 1, 1, 0),
        "getOrders.sandbox_2.json": ("orders", 1, 1, 1, 0),
    }
    assert files["getOrderItems.example.json"].items["has_next_page"][0] is True
    assert files["getOrderItems.sandbox_0.json"].items["has_next_page"][0] is False
    # the example items page carries a GBP GiftWrapPrice inside JPY items: not a field we read
    example = json.loads(files["getOrderItems.example.json"].items["items_json"][0])
    assert [i["currency"] for i in example] == ["JPY", "JPY"]
    assert [(i["sku"], i["quantity"], i["line_amount"], i["shipping_amount"]) for i in example] == [
        ("CBA_OTF_1", "1", "25.99", "1.26"), ("CBA_OTF_5", "2", "17.95", None)]


def test_header_json_mapping():
    f = sample_files()["getOrders.example.json"]
    h = f.headers.row(0, named=True)
    assert h["amazon_order_id"] == PENDING_ID and h["source_location"] == "/payload/Orders/0"
    assert h["last_update"] == datetime(2017, 1, 20, 19, 49, 35, tzinfo=UTC)
    fields = json.loads(h["header_json"])
    assert fields["order_ts"] == "2017-01-20T19:49:35Z"
    assert fields["customer_ref"] == "user@example.com" and fields["customer_po"] == "1234567890123"
    assert (fields["ship_to_name"], fields["ship_to_city"], fields["ship_to_region"], fields["ship_to_country"]) == (
        "Michigan address", "Canton", "MI", "US")
    assert fields["ship_method"] == "Standard" and fields["channel_status"] == "Pending"
    assert fields["payment_status"] == "pending" and fields["currency"] is None and fields["channel_total"] is None


def test_staging_all_samples_pairs_exactly_one_order():
    pairing, caps = capture_all(list(sample_files().values()))
    assert pairing.pairs["amazon_order_id"].to_list() == [SANDBOX_ID]
    assert pairing.source_files == {SANDBOX_ID: "getOrders.sandbox_0.json + getOrderItems.sandbox_0.json"}
    (pc,) = caps
    h = pc.captured.headers.row(0, named=True)
    assert h["channel"] == "amazon" and h["channel_order_ref"] == SANDBOX_ID
    assert h["source_file"] == "getOrders.sandbox_0.json + getOrderItems.sandbox_0.json"
    assert h["source_location"] == ("getOrders.sandbox_0.json /payload/Orders/0 + "
                                    "getOrderItems.sandbox_0.json /payload")
    assert (h["payment_status"], h["channel_status"], h["currency"]) == ("paid", "Unshipped", "USD")
    assert h["order_ts"] == datetime(1970, 1, 19, 3, 58, 30, tzinfo=UTC)
    assert h["line_count"] == 1
    assert h["items_subtotal"] == Decimal("10.00") and h["tax_total"] == Decimal("1.01")
    assert h["order_total"] == h["channel_total"] == Decimal("11.01")
    line = pc.captured.lines.row(0, named=True)
    assert (line["line_ref"], line["sku"], line["quantity"]) == ("05015851154158", "NABetaASINB00551Q3CS", 1)
    assert line["line_amount"] == Decimal("10.00") and line["unit_price"] == Decimal("10.0000")
    assert line["tax_amount"] == Decimal("1.01") and line["discount_amount"] == Decimal("0.00")

    pending = {r["amazon_order_id"]: r for r in pairing.pending.iter_rows(named=True)}
    assert {k: v["waiting_for"] for k, v in pending.items()} == {
        PENDING_ID: "items", OTHER_ID: "items", EXAMPLE_ITEMS_ID: "order header"}
    # PENDING_ID is in three files (example, sandbox_1, sandbox_2): since = the earliest of them
    assert pending[PENDING_ID]["since"] == T0 + timedelta(minutes=2)
    assert pending[PENDING_ID]["source_file"].split(", ") == [
        "getOrders.example.json", "getOrders.sandbox_1.json", "getOrders.sandbox_2.json"]


def test_items_before_header_then_header_completes():
    items = parse((FIX / "getOrderItems.sandbox_0.json").read_bytes(), "items.json", T0)
    pairing = pair_amazon(*stage([items]))
    assert pairing.pairs.height == 0
    assert pairing.pending.select("amazon_order_id", "waiting_for").rows() == [(SANDBOX_ID, "order header")]
    header = parse((FIX / "getOrders.sandbox_0.json").read_bytes(), "orders.json", T0 + timedelta(hours=1))
    later, caps = capture_all([items, header])
    assert later.pairs["amazon_order_id"].to_list() == [SANDBOX_ID]
    assert caps[0].captured.headers["order_total"][0] == Decimal("11.01")
    # any staging order gives the same pair key
    keys = {pair_amazon(*stage(list(p))).pairs["pair_key"][0] for p in itertools.permutations([items, header])}
    assert keys == {later.pairs["pair_key"][0]}


def test_pending_order_without_order_total_takes_the_items_currency():
    header = parse((FIX / "getOrders.example.json").read_bytes(), "o.json")
    items = parse(enc(items_doc(PENDING_ID)), "i.json")
    _, caps = capture_all([header, items])
    h = caps[0].captured.headers.row(0, named=True)
    assert (h["channel_order_ref"], h["currency"], h["channel_total"]) == (PENDING_ID, "USD", None)
    assert h["payment_status"] == "pending" and h["order_total"] == Decimal("11.01")


def test_latest_header_wins_and_changes_the_pair_key():
    items = parse(enc(items_doc()), "i.json", T0)
    old = parse(enc(orders_doc()), "o1.json", T0)
    new = parse(enc(orders_doc(LastUpdateDate="1970-01-20T00:00:00Z", OrderStatus="Canceled")), "o2.json",
                T0 - timedelta(hours=1))  # arrived earlier, but updated later
    first, _ = capture_all([old, items])
    second, caps = capture_all([old, new, items])
    assert first.pairs["pair_key"][0] != second.pairs["pair_key"][0]
    h = caps[0].captured.headers.row(0, named=True)
    assert h["channel_status"] == "Canceled" and h["cancelled_at"] == datetime(1970, 1, 20, tzinfo=UTC)
    assert h["source_file"] == "o2.json + i.json"


def test_multi_page_items_union_dedup_and_completeness():
    header = parse(enc(orders_doc()), "o.json", T0)
    p1 = two_items_doc()
    p1["payload"]["NextToken"] = "abc"
    page1 = parse(enc(p1), "p1.json", T0)
    pairing = pair_amazon(*stage([header, page1]))
    assert pairing.pending.filter(pl.col("amazon_order_id") == SANDBOX_ID)["waiting_for"].to_list() == [
        "more item pages"]
    assert SANDBOX_ID not in pairing.pairs["amazon_order_id"].to_list()
    # the last page repeats the second item with a new price and adds a third
    p2 = two_items_doc()
    p2["payload"]["OrderItems"][0] = {**p2["payload"]["OrderItems"][1], "ItemPrice": {"CurrencyCode": "USD",
                                                                                       "Amount": "6.00"}}
    p2["payload"]["OrderItems"][1] = {**p2["payload"]["OrderItems"][1], "OrderItemId": "3", "SellerSKU": "SKU-3"}
    page2 = parse(enc(p2), "p2.json", T0 + timedelta(minutes=5))
    pairing, caps = capture_all([page2, header, page1])
    assert pairing.source_files[SANDBOX_ID] == "o.json + p1.json + p2.json"
    lines = caps[0].captured.lines.sort("line_no")
    assert lines["line_ref"].to_list() == ["05015851154158", "99999999999999", "3"]
    assert lines["line_amount"].to_list() == [Decimal("10.00"), Decimal("6.00"), Decimal("5.00")]
    assert lines["unit_price"].to_list() == [Decimal("10"), Decimal("3"), Decimal("2.5")]


def test_header_and_items_currency_mismatch():
    header = parse(enc(orders_doc(OrderTotal={"CurrencyCode": "EUR", "Amount": "11.01"})), "o.json")
    items = parse(enc(items_doc()), "i.json")
    pairing, caps = capture_all([header, items])
    assert [r.reason_code for r in pairing.rows.rejected] == ["CURRENCY_MISMATCH"]
    q = caps[0].captured.quarantine.row(0, named=True)
    assert q["reason_code"] == "CURRENCY_MISMATCH" and "EUR" in q["message"] and "USD" in q["message"]
    assert q["order_ref"] == SANDBOX_ID
    assert caps[0].captured.headers.height == 0


def test_items_page_mixing_currencies_is_rejected_whole():
    doc = two_items_doc()
    doc["payload"]["OrderItems"][1]["ItemTax"] = {"CurrencyCode": "EUR", "Amount": "0.50"}
    f = parse(enc(doc))
    assert reasons(f) == ["CURRENCY_MISMATCH", "CURRENCY_MISMATCH"] and f.items.height == 0
    assert (f.captured.records_received, f.captured.records_accepted) == (2, 0)


def test_captured_by_products_are_not_orders_but_count_pages():
    f = parse(enc(two_items_doc()))
    assert f.captured.orders_accepted == 1 and f.captured.records_accepted == 2
    assert f.items["item_count"][0] == 2


# ------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"QuantityOrdered": 0}, "BAD_QUANTITY"),
        ({"QuantityOrdered": -1}, "BAD_QUANTITY"),
        ({"QuantityOrdered": "many"}, "BAD_QUANTITY"),
        ({"QuantityOrdered": None}, "MISSING_FIELD"),
        ({"ItemPrice": {"CurrencyCode": "USD", "Amount": "ten"}}, "BAD_PRICE"),
        ({"ItemPrice": {"CurrencyCode": "USD", "Amount": "-10.00"}}, "BAD_PRICE"),
        ({"ItemPrice": {"CurrencyCode": "USD", "Amount": "10.001"}}, "BAD_PRICE"),
        ({"ItemPrice": "10.00"}, "UNSUPPORTED_DOCUMENT"),
        ({"QuantityOrdered": "0.0"}, "BAD_QUANTITY"),
        ({"ItemTax": {"CurrencyCode": "USD", "Amount": "1,01"}}, "BAD_AMOUNT"),
        ({"SellerSKU": None, "ASIN": None}, "MISSING_FIELD"),
    ],
)
def test_bad_item_rejects_the_whole_page(changes, reason):
    doc = two_items_doc()
    doc["payload"]["OrderItems"][0].update(changes)
    f = parse(enc(doc))
    assert f.items.height == 0
    assert reasons(f) == sorted([reason, "ORDER_INCOMPLETE"])
    q = f.captured.quarantine.sort("location").row(0, named=True)
    assert q["location"] == "/payload/OrderItems/0" and q["record_kind"] == "order_item"
    assert q["order_ref"] == SANDBOX_ID


def test_unknown_currency_code():
    f = parse(enc(items_doc(**{k: {"CurrencyCode": "XYZ", "Amount": "1.00"}
                               for k in ("ItemPrice", "ItemTax", "PromotionDiscount")})))
    assert reasons(f) == ["UNKNOWN_CURRENCY"] and "'XYZ'" in f.captured.quarantine["message"][0]


def test_sku_falls_back_to_asin():
    f = parse(enc(items_doc(SellerSKU="")))
    assert json.loads(f.items["items_json"][0])[0]["sku"] == "B00551Q3CS"


def test_duplicated_item_with_different_content():
    doc = items_doc()
    dup = copy.deepcopy(doc["payload"]["OrderItems"][0])
    dup["QuantityOrdered"] = 3
    doc["payload"]["OrderItems"].append(dup)
    f = parse(enc(doc))
    assert reasons(f) == ["DUPLICATE_LINE", "DUPLICATE_LINE"] and f.items.height == 0


def test_exact_duplicate_item_is_dropped_page_kept():
    doc = items_doc()
    doc["payload"]["OrderItems"].append(copy.deepcopy(doc["payload"]["OrderItems"][0]))
    f = parse(enc(doc))
    assert reasons(f) == ["DUPLICATE_LINE"] and f.items["item_count"].to_list() == [1]
    assert (f.captured.records_received, f.captured.records_accepted, f.captured.records_quarantined) == (2, 1, 1)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"PurchaseDate": "2026-02-30T10:00:00Z"}, "BAD_DATE"),
        ({"LastUpdateDate": "yesterday"}, "BAD_DATE"),
        ({"AmazonOrderId": None}, "MISSING_FIELD"),
        ({"PurchaseDate": ""}, "MISSING_FIELD"),
        ({"OrderTotal": {"CurrencyCode": "XYZ", "Amount": "11.01"}}, "UNKNOWN_CURRENCY"),
        ({"OrderTotal": {"CurrencyCode": "USD", "Amount": "11.011"}}, "BAD_AMOUNT"),
        ({"ShippingAddress": "1 Main St"}, "UNSUPPORTED_DOCUMENT"),
    ],
)
def test_bad_header_rejected_other_orders_of_the_page_kept(changes, reason):
    f = parse(enc(orders_doc(**changes)))
    assert reasons(f) == [reason]
    assert f.captured.quarantine["location"].to_list() == ["/payload/Orders/0"]
    assert f.headers["amazon_order_id"].to_list() == [OTHER_ID]


def test_non_object_order_element():
    doc = orders_doc()
    doc["payload"]["Orders"].insert(0, "902-0000000-0000000")
    f = parse(enc(doc))
    assert reasons(f) == ["UNSUPPORTED_DOCUMENT"] and f.headers.height == 2
    assert f.captured.records_received == 3


def test_truncated_json():
    f = parse((FIX / "getOrders.sandbox_0.json").read_bytes()[:700])
    assert f.kind == "invalid" and reasons(f) == ["INVALID_JSON"]
    assert "truncated" in f.captured.quarantine["message"][0]
    assert f.headers.height == 0 and f.items.height == 0


@pytest.mark.parametrize("data", [b"", b"\n\n"])
def test_empty_file(data):
    f = parse(data)
    assert f.kind == "invalid" and reasons(f) == ["EMPTY_FILE"] and f.captured.records_received == 1


def test_utf8_bom_file_parses():
    f = parse(b"\xef\xbb\xbf" + (FIX / "getOrders.sandbox_0.json").read_bytes())
    assert f.kind == "orders" and f.encoding == "utf-8-sig" and f.headers.height == 2


def test_latin1_file_parses():
    doc = items_doc(Title="Caf\u00e9 cr\u00e8me \u00e0 l'\u00e9rable")
    f = parse(json.dumps(doc, ensure_ascii=False).encode("latin-1"))
    assert f.encoding == "cp1252" and f.items.height == 1
    assert json.loads(f.items["items_json"][0])[0]["description"] == "Caf\u00e9 cr\u00e8me \u00e0 l'\u00e9rable"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"errors": [{"code": "InvalidInput", "message": "bad token"}]}, "SP-API error response (InvalidInput"),
        ({"payload": {"AmazonOrderId": "1", "ShippingAddress": {}}}, "getOrderAddress"),
        ({"payload": {"Orders": "none"}}, "/payload/Orders is a text"),
        ({"payload": [1]}, "payload is a list"),
        ([1, 2], "a JSON list"),
        (sample("getOrders.sandbox_0.json")["payload"], "keys CreatedBefore, Orders"),
    ],
)
def test_unsupported_documents(doc, message):
    f = parse(enc(doc))
    assert f.kind == "invalid" and reasons(f) == ["UNSUPPORTED_DOCUMENT"]
    assert message in f.captured.quarantine["message"][0]


def test_empty_items_page_is_one_no_lines_record():
    doc = items_doc()
    doc["payload"]["OrderItems"] = []
    f = parse(enc(doc))
    assert f.kind == "invalid" and reasons(f) == ["NO_LINES"]


def test_get_order_single_order_response():
    order = sample("getOrders.sandbox_0.json")["payload"]["Orders"][0]
    f = parse(enc({"payload": order}))
    assert f.kind == "orders" and f.headers["source_location"].to_list() == ["/payload"]


# ------------------------------------------------------------------------------------------------
# Properties: never raises, conservation holds, staged output always pairs without error
# ------------------------------------------------------------------------------------------------
# Numbers over the whole range the JSON reader accepts: any integer, any float (to +-1.8e308, inf, nan);
# amounts too large for a decimal column are quarantined by normalise(), never raise.
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
SAMPLE_ORDER = sample("getOrders.sandbox_0.json")["payload"]["Orders"][0]
SAMPLE_ITEM = sample("getOrderItems.example.json")["payload"]["OrderItems"][0]
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=300))
def test_property_arbitrary_bytes(data):
    parse(data)


@FAST
@given(json_values, st.sampled_from(["bare", "orders", "items", "payload"]))
def test_property_arbitrary_json(value, wrap):
    doc = {
        "bare": value,
        "orders": {"payload": {"Orders": [value, SAMPLE_ORDER]}},
        "items": {"payload": {"AmazonOrderId": SANDBOX_ID, "OrderItems": [value]}},
        "payload": {"payload": value},
    }[wrap]
    f = parse(json.dumps(doc).encode())
    pair_amazon(f.headers, f.items)


@settings(FAST, max_examples=12)
@given(st.sampled_from(sorted(SAMPLE_ORDER)), st.sampled_from(sorted(SAMPLE_ITEM)), json_values)
def test_property_corrupted_samples_pair_without_error(order_key, item_key, value):
    order = {**SAMPLE_ORDER, order_key: value}
    item = {**SAMPLE_ITEM, item_key: value}
    h = parse(enc({"payload": {"Orders": [order]}}), "o.json")
    i = parse(enc({"payload": {"AmazonOrderId": SAMPLE_ORDER["AmazonOrderId"], "OrderItems": [item]}}), "i.json")
    pairing = pair_amazon(*stage([h, i]))
    for pc in capture_pairs(pairing, captured_at=T0):
        c = pc.captured
        assert c.records_received == c.records_accepted + c.records_quarantined == 1
    rows_for = pairing.rows.records_received
    assert rows_for == pairing.pairs.height
    assert pairing.pairs.height + pairing.pending.height == len(
        set(h.headers["amazon_order_id"]) | set(i.items["amazon_order_id"]))


def test_normalise_accepts_pairing_rows_in_bulk():
    """The pairing rows are an ordinary ParseResult: one normalise() call over all of them works too."""
    pairing = pair_amazon(*stage(list(sample_files().values())))
    cap = normalise(pairing.rows, source_file="amazon pairs", file_sha256="0" * 64, captured_at=T0)
    assert cap.records_received == cap.records_accepted == 1
