"""Ship confirmations: X12 856, Shopify fulfillments, Amazon confirmShipment, manifests, document ids.

The 856 is read back by a small splitter written here (not the writer's own code), checked against the
envelope/count rules, and the same checker is run on a public 856 (gozer) to show it reads real ASNs the
same way. JSON bodies are checked against the required fields of the published request models.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from stdnum import ean

from som_pipeline.fulfilment import outbound as ob
from som_pipeline.ingest.x12 import split_segments

FIX = Path(__file__).parent / "fixtures" / "fulfilment"
NOW = datetime(2024, 3, 1, 9, 15, tzinfo=UTC)

SHIP_SCHEMA = {
    "shipment_id": pl.String, "order_id": pl.String, "channel": pl.String, "channel_order_ref": pl.String,
    "warehouse_id": pl.String, "carrier_id": pl.String, "service": pl.String,
    "shipped_at": pl.Datetime("us", "UTC"), "ship_to_name": pl.String, "ship_to_address1": pl.String,
    "ship_to_city": pl.String, "ship_to_region": pl.String, "ship_to_postal_code": pl.String,
    "ship_to_country": pl.String, "partner_id": pl.String, "customer_po": pl.String,
}
LINE_SCHEMA = {"shipment_id": pl.String, "order_id": pl.String, "line_no": pl.Int64, "sku": pl.String,
               "quantity": pl.Int64, "channel_line_ref": pl.String, "buyer_part": pl.String, "upc": pl.String}
PKG_SCHEMA = {"shipment_id": pl.String, "package_no": pl.Int64, "tracking_number": pl.String,
              "tracking_url": pl.String, "sscc": pl.String, "gross_weight_kg": pl.Decimal(10, 3),
              "carton_id": pl.String}
CONTENT_SCHEMA = {"shipment_id": pl.String, "package_no": pl.Int64, "sku": pl.String, "line_no": pl.Int64,
                  "quantity": pl.Int64}


def sscc(serial: int) -> str:
    """An SSCC-18 (extension 0, GS1 prefix 0614141) with its check digit computed by python-stdnum."""
    body = f"00614141{serial:09d}"
    return body + ean.calc_check_digit(body)


def ship(sid: str, **kw) -> dict:
    row = {"shipment_id": sid, "order_id": f"O-{sid}", "channel": "edi", "channel_order_ref": f"PO{sid}",
           "warehouse_id": "WH-EAST", "carrier_id": "UPS", "service": "UPS Ground",
           "shipped_at": datetime(2024, 3, 1, 2, 30, tzinfo=UTC), "ship_to_name": "Acme Stores DC 7",
           "ship_to_address1": "1 Dock Rd", "ship_to_city": "Canton", "ship_to_region": "MI",
           "ship_to_postal_code": "48817", "ship_to_country": "US", "partner_id": "ACMEHW", "customer_po": None}
    row.update(kw)
    return row


def frames(ships, lines, pkgs, contents):
    return (pl.DataFrame(ships, schema=SHIP_SCHEMA), pl.DataFrame(lines, schema=LINE_SCHEMA),
            pl.DataFrame(pkgs, schema=PKG_SCHEMA), pl.DataFrame(contents, schema=CONTENT_SCHEMA))


def edi_case():
    """S1: 2 packages, 3 lines, line 1 split across both; S2: one package, no customer PO, a hostile name."""
    ships = [ship("S1", customer_po="CUSTPO-1"),
             ship("S2", ship_to_name="Smith*Jones~Co>Ltd Müller", ship_to_address1="5 Main St ~ Suite *2")]
    lines = [
        {"shipment_id": "S1", "order_id": "O-S1", "line_no": 1, "sku": "SKU-A", "quantity": 5,
         "channel_line_ref": "1", "buyer_part": "BP-100", "upc": "012345678905"},
        {"shipment_id": "S1", "order_id": "O-S1", "line_no": 2, "sku": "SKU-B", "quantity": 2,
         "channel_line_ref": "2", "buyer_part": None, "upc": None},
        {"shipment_id": "S1", "order_id": "O-S1", "line_no": 3, "sku": "SKU-C", "quantity": 4,
         "channel_line_ref": "3", "buyer_part": "BP-300", "upc": "4006381333931"},
        {"shipment_id": "S2", "order_id": "O-S2", "line_no": 1, "sku": "SKU-A", "quantity": 7,
         "channel_line_ref": "0001", "buyer_part": None, "upc": None},
    ]
    pkgs = [
        {"shipment_id": "S1", "package_no": 1, "tracking_number": "1Z999AA10123456784", "tracking_url": None,
         "sscc": sscc(1), "gross_weight_kg": Decimal("2.100"), "carton_id": "C1"},
        {"shipment_id": "S1", "package_no": 2, "tracking_number": "1Z999AA10123456793", "tracking_url": None,
         "sscc": sscc(2), "gross_weight_kg": Decimal("3.200"), "carton_id": "C2"},
        {"shipment_id": "S2", "package_no": 1, "tracking_number": "1Z999AA10123456800", "tracking_url": None,
         "sscc": sscc(3), "gross_weight_kg": Decimal("0.700"), "carton_id": "C1"},
    ]
    contents = [
        {"shipment_id": "S1", "package_no": 1, "sku": "SKU-A", "line_no": 1, "quantity": 3},
        {"shipment_id": "S1", "package_no": 1, "sku": "SKU-B", "line_no": 2, "quantity": 2},
        {"shipment_id": "S1", "package_no": 2, "sku": "SKU-A", "line_no": 1, "quantity": 2},
        {"shipment_id": "S1", "package_no": 2, "sku": "SKU-C", "line_no": 3, "quantity": 4},
        {"shipment_id": "S2", "package_no": 1, "sku": "SKU-A", "line_no": 1, "quantity": 7},
    ]
    return frames(ships, lines, pkgs, contents)


def build(*fr, **kw) -> str:
    args = dict(sender_id="SOMPIPE", receiver_id="ACMEHW", control_number=42, now=NOW)
    args.update(kw)
    return ob.x12_856(*fr, **args)


# ------------------------------------------------------------------------------------------------
# A small X12 reader, independent of the writer
# ------------------------------------------------------------------------------------------------
def split(text: str) -> list[list[str]]:
    """Segments as element lists; separators from the ISA (element at 3, terminator after ISA16 at 105)."""
    elem, term = text[3], text[105]
    return [s.strip().split(elem) for s in text.split(term) if s.strip()]


def sets_of(segs: list[list[str]]) -> list[list[list[str]]]:
    out, cur = [], None
    for s in segs:
        if s[0] == "ST":
            cur = [s]
        elif cur is not None:
            cur.append(s)
            if s[0] == "SE":
                out.append(cur)
                cur = None
    return out


def check_856_set(st: list[list[str]]) -> dict:
    """Structure rules of one 856 set; returns what it found (HL levels, SN1 units per LIN)."""
    assert st[0][:2] == ["ST", "856"] and st[-1][0] == "SE"
    assert int(st[-1][1]) == len(st), "SE01 = segments from ST to SE"
    assert st[-1][2] == st[0][2], "SE02 = ST02"
    hls = [s for s in st if s[0] == "HL"]
    levels = {}
    for k, h in enumerate(hls, 1):
        assert int(h[1]) == k, "HL01 numbers the HLs 1, 2, ..."
        if h[2]:
            assert int(h[2]) in levels, "HL02 names an earlier HL"
        levels[k] = (h[3], int(h[2]) if h[2] else None)
    ctt = next(s for s in st if s[0] == "CTT")
    sn1 = [int(s[2]) for s in st if s[0] == "SN1"]
    assert int(ctt[1]) == len(hls), "CTT01 = number of HL segments"
    assert int(ctt[2]) == sum(sn1), "CTT02 = hash total of SN102"
    return {"levels": levels, "units": sum(sn1)}


def test_checker_reads_the_public_856_sample_the_same_way():
    """The CTT convention chosen (HL count, SN102 hash) is the public sample's: the checker passes it."""
    text = (FIX / "gozer_asn856.txt").read_text()
    sets = sets_of(split(text))
    assert len(sets) == 1
    found = check_856_set(sets[0])
    assert [lv for lv, _ in found["levels"].values()] == ["S", "O", "I", "I"]
    assert found["units"] == 30


# ------------------------------------------------------------------------------------------------
# X12 856
# ------------------------------------------------------------------------------------------------
def test_856_envelope_counts_and_control_numbers():
    text = build(*edi_case())
    segs = split(text)
    isa, gs, ge, iea = segs[0], segs[1], segs[-2], segs[-1]
    assert len(text.split("~")[0]) + 1 == 106, "ISA is fixed width (106 with its terminator)"
    assert text[3] == "*" and text[104] == ">" and text[105] == "~"
    assert isa[6].strip() == "SOMPIPE" and isa[8].strip() == "ACMEHW"
    assert isa[13] == "000000042" and iea == ["IEA", "1", "000000042"]
    assert gs[1] == "SH" and gs[6] == "42" and gs[8] == "004010" and ge == ["GE", "2", "42"]
    sets = sets_of(segs)
    assert [s[0][2] for s in sets] == ["0001", "0002"]
    for st in sets:
        check_856_set(st)
    assert sum(len(st) for st in sets) + 4 == len(segs), "nothing outside ISA/GS/sets/GE/IEA"
    # the repo's own X12 reader cuts it into the same segments
    assert [s.elements for s in split_segments(text)] == segs


def _set_for(text: str, shipment_id: str) -> list[list[str]]:
    return next(st for st in sets_of(split(text)) if st[1][2] == shipment_id)


def test_856_hierarchy_packs_items_and_quantities():
    shipments, lines, packages, contents = edi_case()
    st = _set_for(build(shipments, lines, packages, contents), "S1")
    found = check_856_set(st)
    levels = found["levels"]
    # S -> O -> P, P -> I; parents of the right level
    want_parent = {"S": None, "O": "S", "P": "O", "I": "P"}
    for lv, parent in levels.values():
        assert (levels[parent][0] if parent else None) == want_parent[lv]
    assert [lv for lv, _ in levels.values()] == ["S", "O", "P", "I", "I", "P", "I", "I"]
    assert st[1] == ["BSN", "00", "S1", "20240301", "0915", "0001"]
    # every package's SSCC in a MAN*GM, its tracking number in a REF*CN at its pack level
    man = [s[2] for s in st if s[0] == "MAN"]
    assert man == packages.filter(pl.col("shipment_id") == "S1")["sscc"].to_list()
    assert all(s[1] == "GM" for s in st if s[0] == "MAN")
    refs = [s[2] for s in st if s[:2] == ["REF", "CN"]]
    assert refs == ["1Z999AA10123456784", "1Z999AA10123456784", "1Z999AA10123456793"]  # lead + per package
    # SN1 totals per SKU (LIN VN) = shipped quantities
    per_sku: dict[str, int] = {}
    sku = None
    for s in st:
        if s[0] == "LIN":
            sku = s[s.index("VN") + 1]
        if s[0] == "SN1":
            per_sku[sku] = per_sku.get(sku, 0) + int(s[2])
            assert s[3] == "EA"
    shipped = dict(lines.filter(pl.col("shipment_id") == "S1").select("sku", "quantity").iter_rows())
    assert per_sku == shipped
    lins = [s for s in st if s[0] == "LIN"]
    assert lins[0] == ["LIN", "1", "IN", "BP-100", "VN", "SKU-A", "UP", "012345678905"]
    assert lins[1] == ["LIN", "2", "VN", "SKU-B"]  # no buyer part, no UPC: only our SKU
    assert lins[3] == ["LIN", "3", "IN", "BP-300", "VN", "SKU-C", "EN", "4006381333931"]
    assert ["TD1", "CTN25", "2", "", "", "", "G", "5.3", "KG"] in st
    assert ["TD5", "", "2", "UPSN", "U", "UPS Ground"] in st
    assert ["PRF", "POS1"] in st  # an EDI order: the 850's PO number (BEG03), not customer_po


def test_856_edi_shipment_without_customer_po_and_hostile_text():
    st = _set_for(build(*edi_case()), "S2")
    check_856_set(st)
    assert ["PRF", "POS2"] in st
    n1 = next(s for s in st if s[:2] == ["N1", "ST"])
    assert n1 == ["N1", "ST", "SmithJonesCoLtd Muller"]
    assert next(s for s in st if s[0] == "N3") == ["N3", "5 Main St Suite 2"]
    assert ["N4", "Canton", "MI", "48817", "US"] in st


def test_856_identifier_with_a_separator_is_refused():
    shipments, lines, packages, contents = edi_case()
    bad = lines.with_columns(pl.when(pl.col("line_no") == 2).then(pl.lit("SKU*B")).otherwise("sku").alias("sku"))
    bad_contents = contents.with_columns(
        pl.when(pl.col("line_no") == 2).then(pl.lit("SKU*B")).otherwise("sku").alias("sku"))
    with pytest.raises(ob.OutboundError, match="SKU.*separator"):
        build(shipments, bad, packages, bad_contents)


@pytest.mark.parametrize(("tz", "dtm"), [
    (None, ["DTM", "011", "20240301", "0230", "UT"]),
    ("America/New_York", ["DTM", "011", "20240229", "2130", "LT"]),
    ({"WH-EAST": "Europe/Berlin"}, ["DTM", "011", "20240301", "0330", "LT"]),
])
def test_856_ship_date_in_utc_or_warehouse_local_time(tz, dtm):
    st = _set_for(build(*edi_case(), tz=tz), "S1")
    assert [s for s in st if s[0] == "DTM"] == [dtm]


def test_856_fedex_scac_by_service():
    assert ob.scac("FEDEX", "FedEx Ground") == "FDEG"
    assert ob.scac("FEDEX", "FedEx Home Delivery") == "FDEG"
    assert ob.scac("FEDEX", "FedEx 2Day") == "FDE"
    assert (ob.scac("UPS", None), ob.scac("DHL", "x"), ob.scac("USPS", "Priority")) == ("UPSN", "DHLC", "USPS")
    with pytest.raises(ob.OutboundError):
        ob.scac("ONTRAC", None)


def test_856_is_deterministic_and_independent_of_row_order():
    fr = edi_case()
    a = build(*fr)
    shuffled = [f.reverse() for f in fr]
    assert build(*fr) == a
    assert build(*shuffled) == a


def test_856_refuses_inconsistent_shipments():
    shipments, lines, packages, contents = edi_case()
    short = contents.filter(~((pl.col("shipment_id") == "S1") & (pl.col("package_no") == 2) & (pl.col("line_no") == 1)))
    with pytest.raises(ob.OutboundError, match="S1 line 1 .*5 shipped but 3 packed"):
        build(shipments, lines, packages, short)
    good = sscc(1)
    wrong = good[:17] + str((int(good[17]) + 1) % 10)
    bad_sscc = packages.with_columns(pl.col("sscc").replace(good, wrong))
    with pytest.raises(ob.OutboundError, match="check digit"):
        build(shipments, lines, bad_sscc, contents)
    with pytest.raises(ob.OutboundError, match="not the interchange receiver"):
        build(shipments, lines, packages, contents, receiver_id="OTHER")
    no_sscc = packages.with_columns(pl.lit(None, pl.String).alias("sscc"))
    with pytest.raises(ob.OutboundError, match="not 18 digits"):
        build(shipments, lines, no_sscc, contents)


# ------------------------------------------------------------------------------------------------
# Shopify
# ------------------------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_shopify_body(body: dict) -> None:
    """Required shape of POST /fulfillments.json (REST Admin API, fulfillment orders)."""
    assert set(body) == {"fulfillment"}
    f = body["fulfillment"]
    assert {"line_items_by_fulfillment_order", "tracking_info", "notify_customer"} <= set(f)
    assert isinstance(f["notify_customer"], bool)
    assert set(f["tracking_info"]) <= {"number", "url", "company"} and isinstance(f["tracking_info"]["number"], str)
    fo_ids = [g["fulfillment_order_id"] for g in f["line_items_by_fulfillment_order"]]
    assert len(fo_ids) == len(set(fo_ids)), "each fulfillment order once per request"
    for g in f["line_items_by_fulfillment_order"]:
        assert _is_int(g["fulfillment_order_id"])
        for li in g["fulfillment_order_line_items"]:
            assert set(li) == {"id", "quantity"} and _is_int(li["id"]) and _is_int(li["quantity"]) and li["quantity"] > 0


def test_shopify_against_the_public_fulfillment_order_sample():
    fo = json.loads((FIX / "fulfillment_orders.json").read_text())["fulfillment_order"]
    ref = str(fo["line_items"][0]["line_item_id"])
    shipments, lines, packages, _ = frames(
        [ship("SH1", channel="shopify", channel_order_ref=str(fo["order_id"]), partner_id=None)],
        [{"shipment_id": "SH1", "order_id": "O-SH1", "line_no": 1, "sku": "IPOD", "quantity": 1,
          "channel_line_ref": ref, "buyer_part": None, "upc": None}],
        [{"shipment_id": "SH1", "package_no": 1, "tracking_number": "1Z2345", "tracking_url": "https://t.example/1Z2345",
          "sscc": None, "gross_weight_kg": Decimal("0.2"), "carton_id": "C"}], [])
    calls = ob.shopify_fulfillment(shipments, lines, packages, fulfillment_orders=[fo])
    assert len(calls) == 1
    check_shopify_body(calls[0].body)
    assert calls[0].body == {"fulfillment": {
        "line_items_by_fulfillment_order": [{"fulfillment_order_id": 2558888935587,
                                             "fulfillment_order_line_items": [{"id": 7118028439715, "quantity": 1}]}],
        "tracking_info": {"number": "1Z2345", "company": "UPS", "url": "https://t.example/1Z2345"},
        "notify_customer": True}}
    assert calls[0].method == "POST" and calls[0].path.endswith("/fulfillments.json")
    # a second unit is more than the fulfillment order can fulfil
    with pytest.raises(ob.OutboundError, match="more than its open fulfillment orders"):
        ob.shopify_fulfillment(shipments, lines.with_columns(pl.lit(2, pl.Int64).alias("quantity")), packages,
                               fulfillment_orders=[fo])


def shopify_case():
    """Two packages, three lines; line 11 split across both packages."""
    ships = [ship("SH2", channel="shopify", channel_order_ref="450789469", partner_id=None, carrier_id="FEDEX",
                  service="FedEx Ground")]
    lines = [{"shipment_id": "SH2", "order_id": "O", "line_no": n, "sku": f"K{n}", "quantity": q,
              "channel_line_ref": str(ref), "buyer_part": None, "upc": None}
             for n, q, ref in [(1, 5, 11), (2, 2, 12), (3, 4, 13)]]
    pkgs = [{"shipment_id": "SH2", "package_no": n, "tracking_number": f"7946{n}", "tracking_url": None,
             "sscc": None, "gross_weight_kg": Decimal("1.5"), "carton_id": "C"} for n in (1, 2)]
    contents = [{"shipment_id": "SH2", "package_no": p, "sku": f"K{ln}", "line_no": ln, "quantity": q}
                for p, ln, q in [(1, 1, 3), (1, 2, 2), (2, 1, 2), (2, 3, 4)]]
    fos = [{"id": 900, "order_id": 450789469, "assigned_location_id": 77, "status": "open",
            "line_items": [{"id": 9000 + r, "line_item_id": r, "quantity": q, "fulfillable_quantity": q}
                           for r, q in [(11, 5), (12, 2), (13, 4)]]}]
    return frames(ships, lines, pkgs, contents), fos


def test_shopify_two_packages_one_fulfillment_each_quantities_conserved():
    (shipments, lines, packages, contents), fos = shopify_case()
    calls = ob.shopify_fulfillment(shipments, lines, packages, contents, fulfillment_orders=fos,
                                   notify_customer=False)
    assert [c.package_no for c in calls] == [1, 2]
    for c in calls:
        check_shopify_body(c.body)
        assert c.body["fulfillment"]["tracking_info"]["company"] == "FedEx"
        assert c.body["fulfillment"]["notify_customer"] is False
    assert [c.body["fulfillment"]["tracking_info"]["number"] for c in calls] == ["79461", "79462"]
    fulfilled: dict[int, int] = {}
    for c in calls:
        for g in c.body["fulfillment"]["line_items_by_fulfillment_order"]:
            for li in g["fulfillment_order_line_items"]:
                fulfilled[li["id"]] = fulfilled.get(li["id"], 0) + li["quantity"]
    assert fulfilled == {9011: 5, 9012: 2, 9013: 4}
    assert len({c.document_id for c in calls}) == 2
    again = ob.shopify_fulfillment(shipments, lines, packages, contents, fulfillment_orders=fos, notify_customer=False)
    assert [json.dumps(c.body) for c in again] == [json.dumps(c.body) for c in calls]


def test_shopify_refuses_a_fulfillment_across_locations_and_missing_contents():
    (shipments, lines, packages, contents), fos = shopify_case()
    split_fos = [{**fos[0], "line_items": fos[0]["line_items"][:2]},
                 {"id": 901, "assigned_location_id": 78, "status": "open",
                  "line_items": [{"id": 9113, "line_item_id": 13, "quantity": 4, "fulfillable_quantity": 4}]}]
    # package 2 holds line 11 (location 77) and line 13 (location 78)
    with pytest.raises(ob.OutboundError, match="several locations"):
        ob.shopify_fulfillment(shipments, lines, packages, contents, fulfillment_orders=split_fos)
    with pytest.raises(ob.OutboundError, match="2 packages need package contents"):
        ob.shopify_fulfillment(shipments, lines, packages, fulfillment_orders=fos)


# ------------------------------------------------------------------------------------------------
# Amazon
# ------------------------------------------------------------------------------------------------
# Required fields of the request models in amzn/selling-partner-api-models ordersV0.json
# (ConfirmShipmentRequest, PackageDetail, ConfirmShipmentOrderItem).
AMZ_REQUEST = {"marketplaceId", "packageDetail"}
AMZ_PACKAGE = {"packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"}
AMZ_PACKAGE_ALL = AMZ_PACKAGE | {"carrierName", "shippingMethod", "shipFromSupplySourceId"}


def test_amazon_one_confirmation_per_package():
    (shipments, lines, packages, contents), _ = shopify_case()
    shipments = shipments.with_columns(pl.lit("amazon").alias("channel"),
                                       pl.lit("902-3159896-1390916").alias("channel_order_ref"),
                                       pl.lit("UPS").alias("carrier_id"), pl.lit("Ground").alias("service"))
    lines = lines.with_columns(("6882857438326" + pl.col("line_no").cast(pl.String)).alias("channel_line_ref"))
    calls = ob.amazon_confirm_shipment(shipments, lines, packages, contents, marketplace_id="ATVPDKIKX0DER")
    assert len(calls) == 2
    shipped: dict[str, int] = {}
    for c in calls:
        assert c.path == "/orders/v0/orders/902-3159896-1390916/shipmentConfirmation"
        assert set(c.body) >= AMZ_REQUEST and set(c.body) <= AMZ_REQUEST | {"codCollectionMethod"}
        d = c.body["packageDetail"]
        assert AMZ_PACKAGE <= set(d) <= AMZ_PACKAGE_ALL
        assert re.fullmatch(r"[1-9][0-9]*", d["packageReferenceId"])
        assert d["carrierCode"] == "UPS" and d["shippingMethod"] == "Ground"
        assert d["shipDate"] == "2024-03-01T02:30:00Z"
        for it in d["orderItems"]:
            assert set(it) == {"orderItemId", "quantity"}
            assert isinstance(it["orderItemId"], str) and _is_int(it["quantity"])
            shipped[it["orderItemId"]] = shipped.get(it["orderItemId"], 0) + it["quantity"]
    assert [c.body["packageDetail"]["trackingNumber"] for c in calls] == ["79461", "79462"]
    assert shipped == {"68828574383261": 5, "68828574383262": 2, "68828574383263": 4}
    with pytest.raises(ob.OutboundError, match="marketplace_id"):
        ob.amazon_confirm_shipment(shipments, lines, packages, contents, marketplace_id="")


# ------------------------------------------------------------------------------------------------
# Manifest and document ids
# ------------------------------------------------------------------------------------------------
def manifest_case(float_weights: bool = False):
    ships = [ship("M1", shipped_at=datetime(2024, 3, 1, 3, 0, tzinfo=UTC)),
             ship("M2", shipped_at=datetime(2024, 3, 1, 20, 0, tzinfo=UTC)),
             ship("M3", carrier_id="USPS", warehouse_id="WH-WEST")]
    w = {"M1": ["0.1", "0.2"], "M2": ["1.005"], "M3": ["2"]}
    pkgs = [{"shipment_id": s, "package_no": n, "tracking_number": f"T-{s}-{n}", "tracking_url": None,
             "sscc": None, "gross_weight_kg": Decimal(x), "carton_id": "C"}
            for s, ws in w.items() for n, x in enumerate(ws, 1)]
    sh = pl.DataFrame(ships, schema=SHIP_SCHEMA)
    pk = pl.DataFrame(pkgs, schema=PKG_SCHEMA)
    if float_weights:
        pk = pk.with_columns(pl.col("gross_weight_kg").cast(pl.Float64))
    return sh, pk


def test_manifest_groups_by_carrier_warehouse_and_date_with_exact_weights():
    sh, pk = manifest_case()
    df = ob.manifest(sh, pk)
    rows = df.to_dicts()
    assert [(r["carrier_id"], r["warehouse_id"], str(r["ship_date"]), r["shipment_count"], r["package_count"],
             r["total_weight_kg"], r["tracking_numbers"]) for r in rows] == [
        ("UPS", "WH-EAST", "2024-03-01", 2, 3, Decimal("1.305"), ["T-M1-1", "T-M1-2", "T-M2-1"]),
        ("USPS", "WH-WEST", "2024-03-01", 1, 1, Decimal("2.000"), ["T-M3-1"]),
    ]
    # float weights give the same exact sums (0.1 + 0.2 is 0.300, not 0.30000000000000004)
    assert ob.manifest(*manifest_case(float_weights=True)).equals(df)


def test_manifest_local_dates_and_csv():
    sh, pk = manifest_case()
    df = ob.manifest(sh, pk, tz={"WH-EAST": "America/New_York", "WH-WEST": "America/Los_Angeles"})
    east = df.filter(pl.col("warehouse_id") == "WH-EAST")
    # 03:00 UTC on 1 March is 29 February in New York
    by_day = dict(zip(east["ship_date"].cast(pl.String), east["package_count"], strict=True))
    assert by_day == {"2024-02-29": 2, "2024-03-01": 1}
    with pytest.raises(ob.OutboundError, match="no time zone given for warehouse 'WH-WEST'"):
        ob.manifest(sh, pk, tz={"WH-EAST": "America/New_York"})
    text = ob.manifest_csv(df)
    assert text == ob.manifest_csv(ob.manifest(sh.reverse(), pk.reverse(),
                                               tz={"WH-EAST": "America/New_York", "WH-WEST": "America/Los_Angeles"}))
    got = list(csv.DictReader(io.StringIO(text)))
    assert list(got[0]) == list(ob.MANIFEST_SCHEMA)
    assert sum(int(r["package_count"]) for r in got) == pk.height
    assert sorted(t for r in got for t in r["tracking_numbers"].split(" ")) == sorted(pk["tracking_number"])
    assert sum(Decimal(r["total_weight_kg"]) for r in got) == Decimal("3.305")


def test_manifest_refuses_packages_of_unknown_shipments():
    sh, pk = manifest_case()
    with pytest.raises(ob.OutboundError, match="unknown shipments"):
        ob.manifest(sh.filter(pl.col("shipment_id") != "M3"), pk)


def test_document_ids_are_deterministic_and_distinct():
    a = ob.document_id("x12_856", "S1")
    assert a == ob.document_id("x12_856", "S1") and re.fullmatch(r"x12_856:[0-9a-f]{64}", a)
    assert a != ob.document_id("shopify_fulfillment", "S1")
    assert ob.document_id("amazon_confirm_shipment", ("S1", 1)) != ob.document_id("amazon_confirm_shipment", ("S1", 2))
    assert ob.document_id("amazon_confirm_shipment", ("S1", 1)) == ob.document_id("amazon_confirm_shipment", ["S1", "1"])
    assert ob.document_id("manifest", ("a|b", "c")) != ob.document_id("manifest", ("a", "b|c"))
    with pytest.raises(ob.OutboundError):
        ob.document_id("invoice", "S1")
