"""Shopify parser: the public samples, every kind of bad input, and a never-raises property."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline.ingest.common import file_sha256, normalise
from som_pipeline.ingest.jsondoc import decimal_sum, dump_json, load_json_exact
from som_pipeline.ingest.shopify import parse_shopify
from som_pipeline.schemas import QuarantineModel, StagedLineModel, StagedOrderModel, validate

FIX = Path(__file__).parent / "fixtures" / "shopify"


def run(data: bytes, name: str = "test.json"):
    result = parse_shopify(data, name)
    cap = normalise(result, source_file=name, file_sha256=file_sha256(data),
                    captured_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert cap.records_received == cap.records_accepted + cap.records_quarantined
    assert cap.records_received == result.records_received
    return result, cap


def sample(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def enc(doc) -> bytes:
    return json.dumps(doc).encode()


def reasons(cap) -> list[str]:
    return sorted(cap.quarantine["reason_code"].to_list())


def order_doc(**changes) -> dict:
    doc = sample("orders.json")
    doc["orders"][0].update(changes)
    return doc


def line_doc(i: int = 0, **changes) -> dict:
    doc = sample("orders.json")
    doc["orders"][0]["line_items"][i].update(changes)
    return doc


# ------------------------------------------------------------------------------------------------
# Samples
# ------------------------------------------------------------------------------------------------
def test_orders_json_reconciles_exactly():
    result, cap = run((FIX / "orders.json").read_bytes(), "orders.json")
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (1, 1, 0)
    h = cap.headers.row(0, named=True)
    assert h["channel_order_ref"] == "450789469"
    assert h["source_location"] == "/orders/0"
    assert h["order_ts"] == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)  # -05:00 converted to UTC
    assert h["customer_ref"] == "207119551"
    assert (h["currency"], h["promo_code"], h["payment_status"]) == ("USD", "TENOFF", "partially_refunded")
    assert (h["ship_to_name"], h["ship_to_region"], h["ship_to_country"]) == ("Bob Norman", "KY", "US")
    assert h["ship_method"] == "Free Shipping"
    assert h["items_subtotal"] == Decimal("597.00")
    assert h["discount_total"] == Decimal("10.00")
    assert h["tax_total"] == Decimal("11.94")
    assert h["shipping_total"] == Decimal("0.00")
    assert h["order_total"] == h["channel_total"] == Decimal("598.94")
    lines = cap.lines.sort("line_no")
    assert lines["discount_amount"].to_list() == [Decimal("3.34"), Decimal("3.33"), Decimal("3.33")]
    assert lines["tax_amount"].to_list() == [Decimal("3.98")] * 3
    assert lines["tax_rate"].to_list() == [Decimal("0.06")] * 3
    assert lines["sku"].to_list() == ["IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
    assert lines["line_ref"].to_list() == ["466157049", "518995019", "703073504"]
    validate(StagedOrderModel, cap.headers)
    validate(StagedLineModel, cap.lines)
    # raw is the compact JSON of the order, numbers as sent (not quoted)
    raw = json.loads(result.rows["raw"][0])
    assert raw["id"] == 450789469 and raw["tax_lines"][0]["rate"] == 0.06
    assert raw == sample("orders.json")["orders"][0]


def test_order_json_same_order_different_content():
    _, one = run((FIX / "order.json").read_bytes(), "order.json")
    _, page = run((FIX / "orders.json").read_bytes(), "orders.json")
    h = one.headers.row(0, named=True)
    assert h["channel_order_ref"] == page.headers["channel_order_ref"][0] == "450789469"
    assert h["source_location"] == "/order"
    # order.json's lines carry no discount allocations nor tax lines (its tax is order-level only):
    assert (h["items_subtotal"], h["discount_total"], h["tax_total"], h["shipping_total"]) == (
        Decimal("597.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    assert h["order_total"] == Decimal("597.00")
    assert h["channel_total"] == Decimal("409.94")  # the upstream sample is itself inconsistent (subtotal 398.00)
    assert h["payment_status"] == "authorized"
    assert h["content_hash"] != page.headers["content_hash"][0]


@pytest.mark.parametrize(
    ("name", "looks_like"),
    [
        ("refund.json", "a Shopify refund resource"),
        ("transactions.json", "a list of Shopify transactions"),
        ("fulfillment_event.json", "a Shopify fulfillment event resource"),
        ("order_risks.json", "Shopify order risks"),
    ],
)
def test_non_order_resources_are_unsupported(name, looks_like):
    _, cap = run((FIX / name).read_bytes(), name)
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (1, 0, 1)
    q = cap.quarantine.row(0, named=True)
    assert (q["reason_code"], q["record_kind"]) == ("UNSUPPORTED_DOCUMENT", "file")
    assert looks_like in q["message"]
    validate(QuarantineModel, cap.quarantine)


# ------------------------------------------------------------------------------------------------
# File-level problems
# ------------------------------------------------------------------------------------------------
def test_truncated_json_names_line_and_column():
    data = (FIX / "orders.json").read_bytes()[:5000]
    _, cap = run(data)
    q = cap.quarantine.row(0, named=True)
    assert q["reason_code"] == "INVALID_JSON" and q["record_kind"] == "file"
    assert "line " in q["message"] and "column " in q["message"] and "truncated" in q["message"]
    assert q["location"].startswith("line ")


def test_syntax_error_in_the_middle_is_not_called_truncated():
    _, cap = run(b'{"orders": [{"id": 1,, "line_items": []}]}')
    q = cap.quarantine.row(0, named=True)
    assert q["reason_code"] == "INVALID_JSON" and "line 1, column 22" in q["message"]
    assert "truncated" not in q["message"]


@pytest.mark.parametrize("data", [b"", b"  \n\t"])
def test_empty_file(data):
    _, cap = run(data)
    assert reasons(cap) == ["EMPTY_FILE"] and cap.records_received == 1


def test_binary_file_is_bad_encoding():
    _, cap = run(b"\x00\x01\x02PK\x03\x04" * 50)
    assert reasons(cap) == ["BAD_ENCODING"]
    assert "\x00" not in cap.quarantine["raw"][0]


def test_utf8_bom_parses():
    result, cap = run(b"\xef\xbb\xbf" + (FIX / "orders.json").read_bytes())
    assert result.encoding == "utf-8-sig" and cap.records_accepted == 1


def test_latin1_file_parses():
    doc = sample("order.json")  # ASCII only, unlike orders.json
    doc["order"]["line_items"][0]["name"] = "Caf\u00e9 cr\u00e8me \u00bd"
    result, cap = run(json.dumps(doc, ensure_ascii=False).encode("latin-1"))
    assert result.encoding == "cp1252" and cap.records_accepted == 1
    assert cap.lines.sort("line_no")["description"][0] == "Caf\u00e9 cr\u00e8me \u00bd"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"order": "450789469"}, "/order is a text"),
        ({"orders": {"id": 1}}, "/orders is an object"),
        ([1, 2, 3], "a JSON list of 3 elements"),
        ("just a string", "a JSON value (a text)"),
        ({"id": 1, "line_items": []}, "an object with line_items that is not a placed order"),
        ({"id": 1, "name": "#D1", "line_items": [], "customer": {"id": 2}}, "a Shopify draft order"),
        ({"id": 1, "line_items": [], "abandoned_checkout_url": "https://x"}, "a Shopify checkout"),
    ],
)
def test_valid_json_that_is_not_an_order_resource(doc, message):
    _, cap = run(enc(doc))
    assert reasons(cap) == ["UNSUPPORTED_DOCUMENT"] and message in cap.quarantine["message"][0]


def test_empty_orders_page_is_zero_records():
    result, cap = run(b'{"orders": []}')
    assert cap.records_received == 0 and cap.quarantine.height == 0 and not result.rejected


# ------------------------------------------------------------------------------------------------
# Record-level problems
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (line_doc(0, quantity=0), "BAD_QUANTITY"),
        (line_doc(0, quantity=-2), "BAD_QUANTITY"),
        (line_doc(0, quantity="two"), "BAD_QUANTITY"),
        (line_doc(0, quantity=1.5), "BAD_QUANTITY"),
        (line_doc(0, price="abc"), "BAD_PRICE"),
        (line_doc(0, price="-199.00"), "BAD_PRICE"),
        (line_doc(0, price="199.00001"), "BAD_PRICE"),
        (order_doc(currency="XYZ"), "UNKNOWN_CURRENCY"),
        (order_doc(created_at="2026-02-30T10:00:00Z"), "BAD_DATE"),
        (order_doc(created_at=None), "MISSING_FIELD"),
        (order_doc(line_items=[]), "NO_LINES"),
        (order_doc(line_items=None), "NO_LINES"),
        (order_doc(line_items="none"), "UNSUPPORTED_DOCUMENT"),
        (order_doc(line_items=["466157049"]), "UNSUPPORTED_DOCUMENT"),
        (line_doc(0, tax_lines="3.98"), "UNSUPPORTED_DOCUMENT"),
        (line_doc(0, quantity={"value": 1}), "UNSUPPORTED_DOCUMENT"),
        (line_doc(0, discount_allocations=[{"amount": "1.005"}]), "BAD_AMOUNT"),
        (line_doc(0, discount_allocations=[{"amount": "250.00"}]), "BAD_AMOUNT"),  # discount > line amount
        (order_doc(total_price="598,94"), "BAD_AMOUNT"),
        (order_doc(shipping_address=["Chestnut Street 92"]), "UNSUPPORTED_DOCUMENT"),
    ],
)
def test_bad_order_is_quarantined_whole(doc, reason):
    _, cap = run(enc(doc))
    assert cap.records_accepted == 0 and cap.headers.height == 0
    assert reasons(cap) == [reason]
    q = cap.quarantine.row(0, named=True)
    assert q["location"] == "/orders/0" and q["record_kind"] == "order"
    assert json.loads(q["raw"])["id"] == 450789469


def test_duplicated_line_item_with_different_content():
    doc = sample("orders.json")
    items = doc["orders"][0]["line_items"]
    items.append({**items[0], "quantity": 5})
    _, cap = run(enc(doc))
    assert reasons(cap) == ["DUPLICATE_LINE"] and "466157049" in cap.quarantine["message"][0]


def test_non_object_element_rejected_others_kept():
    doc = sample("orders.json")
    second = copy.deepcopy(doc["orders"][0])
    second["id"] = 450789470
    doc["orders"] = [doc["orders"][0], "not an order", second, None]
    _, cap = run(enc(doc))
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (4, 2, 2)
    assert sorted(cap.quarantine["location"].to_list()) == ["/orders/1", "/orders/3"]
    assert set(cap.quarantine["reason_code"]) == {"UNSUPPORTED_DOCUMENT"}
    assert sorted(cap.headers["channel_order_ref"].to_list()) == ["450789469", "450789470"]


def test_same_order_id_twice_in_a_page_are_two_records():
    doc = sample("orders.json")
    doc["orders"].append(copy.deepcopy(doc["orders"][0]))
    _, cap = run(enc(doc))
    assert cap.records_accepted == 2 and cap.headers["capture_id"].n_unique() == 2


# ------------------------------------------------------------------------------------------------
# Mapping details
# ------------------------------------------------------------------------------------------------
def test_sku_falls_back_to_variant_id_and_name_to_title():
    _, cap = run(enc(line_doc(0, sku="", name=None)))
    line = cap.lines.sort("line_no").row(0, named=True)
    assert line["sku"] == "39072856" and line["description"] == "IPod Nano - 8gb"


def test_customer_po_and_customer_fallbacks():
    attrs = [{"name": "gift", "value": "x"}, {"name": " P.O. Number ", "value": "PO-77"}]
    _, cap = run(enc(order_doc(note_attributes=attrs, customer=None)))
    h = cap.headers.row(0, named=True)
    assert h["customer_po"] == "PO-77" and h["customer_ref"] == "bob.norman@hostmail.com"
    _, cap = run(enc(order_doc(note_attributes=attrs, po_number="PO-1")))
    assert cap.headers["customer_po"][0] == "PO-1"
    _, cap = run(enc(order_doc(note_attributes=[{"name": "purchase order", "value": "PO-9"}])))
    assert cap.headers["customer_po"][0] == "PO-9"


def test_cancelled_order():
    _, cap = run(enc(order_doc(cancelled_at="2008-01-11T09:00:00-05:00", fulfillment_status=None)))
    h = cap.headers.row(0, named=True)
    assert h["channel_status"] == "cancelled"
    assert h["cancelled_at"] == datetime(2008, 1, 11, 14, 0, tzinfo=UTC)


def test_shipping_total_is_exact_sum_minus_shipping_discounts():
    lines = [
        {"code": "UPS", "title": "UPS Ground", "price": "10.10", "discount_allocations": [{"amount": "2.55"}]},
        {"code": "GIFT", "price": "0.20"},
    ]
    _, cap = run(enc(order_doc(shipping_lines=lines, total_price="606.69")))
    h = cap.headers.row(0, named=True)
    assert h["shipping_total"] == Decimal("7.75") and h["ship_method"] == "UPS"
    assert h["order_total"] == h["channel_total"] == Decimal("606.69")


def test_shipping_tax_is_part_of_tax_total_and_order_total():
    lines = [{"code": "UPS", "price": "10.00", "tax_lines": [{"price": "0.60", "rate": 0.06}]}]
    _, cap = run(enc(order_doc(shipping_lines=lines, total_price="609.54", total_tax="12.54")))
    h = cap.headers.row(0, named=True)
    assert (h["shipping_total"], h["shipping_tax"]) == (Decimal("10.00"), Decimal("0.60"))
    assert h["tax_total"] == Decimal("12.54") and h["prices_include_tax"] is False
    assert h["order_total"] == h["channel_total"] == Decimal("609.54")


def test_tax_inclusive_prices_do_not_add_the_tax_again():
    """taxes_included: true (EU/UK/AU stores): prices, discounts and shipping already hold the tax."""
    doc = order_doc(taxes_included=True, total_price="597.00",
                    shipping_lines=[{"code": "DHL", "price": "10.00", "tax_lines": [{"price": "1.67", "rate": 0.2}]}])
    doc["orders"][0]["total_price"] = "597.00"  # 597.00 items - 10.00 discount + 10.00 shipping, tax inside
    _, cap = run(enc(doc))
    h = cap.headers.row(0, named=True)
    assert h["prices_include_tax"] is True
    assert h["tax_total"] == Decimal("11.94") + Decimal("1.67")  # reported, not added
    assert h["order_total"] == h["channel_total"] == Decimal("597.00")
    validate(StagedOrderModel, cap.headers)
    # the flag is part of the content: the same order tax-exclusive is another version
    _, plain = run(enc(order_doc(shipping_lines=doc["orders"][0]["shipping_lines"])))
    assert plain.headers["content_hash"][0] != h["content_hash"]


def test_multiple_tax_lines_are_summed_without_a_rate():
    taxes = [{"price": "1.10", "rate": 0.04}, {"price": "0.20", "rate": 0.01}]
    _, cap = run(enc(line_doc(0, tax_lines=taxes)))
    line = cap.lines.sort("line_no").row(0, named=True)
    assert line["tax_amount"] == Decimal("1.30") and line["tax_rate"] is None


def test_decimal_sum_is_exact_and_passes_bad_text_through():
    assert decimal_sum(["0.1"] * 10) == "1.0"
    assert decimal_sum(["12345678901234567890123456789.01", "0.01"]) == "12345678901234567890123456789.02"
    assert decimal_sum(["1.00", "abc"]) == "abc"
    assert decimal_sum(["1.001"]) == "1.001"
    assert decimal_sum(["5.00"], minus=["1.25"]) == "3.75"
    assert decimal_sum([], minus=["1.00"]) is None


def test_dump_json_round_trips_numbers_exactly():
    text = '{"a":1.10,"b":[1E+2,-0,{"c":null,"d":true}],"é":"x\\"y"}'
    assert dump_json(load_json_exact(text)) == text


# ------------------------------------------------------------------------------------------------
# Properties: never raises, conservation always holds
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
SAMPLE_ORDER = sample("orders.json")["orders"][0]
ORDER_KEYS = sorted(SAMPLE_ORDER)
LINE_KEYS = sorted(SAMPLE_ORDER["line_items"][0])
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=300))
def test_property_arbitrary_bytes(data):
    run(data)


@FAST
@given(json_values, st.sampled_from(["bare", "order", "orders"]))
def test_property_arbitrary_json(value, wrap):
    doc = {"bare": value, "order": {"order": value}, "orders": {"orders": [value, value]}}[wrap]
    run(json.dumps(doc).encode())


@FAST
@given(st.sampled_from(ORDER_KEYS), st.sampled_from(LINE_KEYS), json_values, st.booleans())
def test_property_corrupted_sample_order(order_key, line_key, value, in_line):
    order = copy.deepcopy(SAMPLE_ORDER)
    if in_line:
        order["line_items"][1][line_key] = value
    else:
        order[order_key] = value
    result, cap = run(json.dumps({"orders": [order, SAMPLE_ORDER]}).encode())
    assert cap.records_received == 2
    assert cap.records_accepted >= 1  # the untouched order is never dragged down


# ------------------------------------------------------------------------------------------------
# Custom line items and webhook orders (issue 11, item 1). Documents written for these tests, in the shape of
# the Shopify Admin REST API Order resource (https://shopify.dev/docs/api/admin-rest/latest/resources/order):
# a custom line item -- created in the admin, a draft order or POS -- has "sku", "variant_id" and
# "product_id" null; "requires_shipping" false marks a service. The orders/create webhook
# (https://shopify.dev/docs/api/admin-rest/latest/resources/webhook) delivers that order object unwrapped.
# ------------------------------------------------------------------------------------------------
def test_custom_line_items_are_captured_with_their_kind_and_a_placeholder_sku():
    _, cap = run((FIX / "custom_line_items.json").read_bytes(), "custom_line_items.json")
    assert (cap.records_accepted, cap.records_quarantined) == (1, 0)
    ln = cap.lines.sort("line_no").select("line_no", "sku", "item_kind", "description", "quantity", "unit_price",
                                          "line_amount", "tax_amount").rows()
    assert ln == [
        (1, "IPOD2008GREEN", "catalog", "IPod Nano - 8gb - green", 1, Decimal("199.0000"), Decimal("199.00"),
         Decimal("11.94")),
        (2, "CUSTOM:11002", "custom", "Engraved brass plaque", 1, Decimal("45.0000"), Decimal("45.00"),
         Decimal("2.70")),
        (3, "CUSTOM:11003", "service", "Setup service (per hour)", 2, Decimal("40.0000"), Decimal("80.00"),
         Decimal("4.80")),
    ]
    h = cap.headers.row(0, named=True)
    assert h["order_total"] == h["channel_total"] == Decimal("343.44")
    validate(StagedLineModel, cap.lines)


def test_custom_line_without_an_id_gets_its_position_and_changes_the_hash():
    doc = sample("orders.json")
    li = doc["orders"][0]["line_items"][1]
    li.update(sku=None, variant_id=None, product_id=None, id=None)
    _, cap = run(enc(doc))
    line = cap.lines.filter(pl.col("line_no") == 2).row(0, named=True)
    assert (line["sku"], line["item_kind"]) == ("CUSTOM:2", "custom")  # requires_shipping true in the sample
    _, catalog = run((FIX / "orders.json").read_bytes())
    assert catalog.lines["item_kind"].unique().to_list() == ["catalog"]
    assert cap.headers["content_hash"][0] != catalog.headers["content_hash"][0]


def test_webhook_bare_order_is_captured_like_a_wrapped_one():
    data = (FIX / "webhook_orders_create.json").read_bytes()
    _, cap = run(data, "orders_create.json")
    assert (cap.records_accepted, cap.records_quarantined) == (1, 0)
    h = cap.headers.row(0, named=True)
    assert (h["channel_order_ref"], h["source_location"], h["customer_ref"]) == ("5432109877", "/", "207119551")
    assert cap.lines["sku"].to_list() == ["IPOD2008GREEN"]
    # the same order wrapped as the Admin API returns it: the same content
    _, wrapped = run(enc({"order": json.loads(data)}), "order.json")
    assert wrapped.headers["content_hash"][0] == h["content_hash"]
    assert wrapped.headers["source_location"][0] == "/order"


def test_bare_order_with_a_bad_line_is_quarantined_at_the_root():
    doc = json.loads((FIX / "webhook_orders_create.json").read_bytes())
    doc["line_items"][0]["quantity"] = "two"
    _, cap = run(enc(doc))
    q = cap.quarantine.row(0, named=True)
    assert (q["reason_code"], q["location"], q["order_ref"]) == ("BAD_QUANTITY", "/", "5432109877")
