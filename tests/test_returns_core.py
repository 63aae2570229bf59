"""The pure core of returns: readers, rules (RMAs, receipts) and money (credit lines, fees, shipping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from som_pipeline.returns import readers as R
from som_pipeline.returns import rules as RU
from som_pipeline.returns.money import REFUND_COLUMNS, refund_lines, refund_totals

FIX = Path(__file__).parent / "fixtures" / "returns"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
DELIVERED = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def conserved(f) -> None:
    rows = f.requests if isinstance(f, R.ReturnFile) else f.receipts
    assert f.received == rows.height + f.rejected.height


def requests_csv(body: str, header: str = "order_ref,line_no,sku,quantity,reason,requested_at") -> pl.DataFrame:
    f = R.read_return_requests(f"{header}\n{body}".encode(), "r.csv")
    assert f.rejected.height == 0, f.rejected.to_dicts()
    return f.requests


def facts(**over) -> pl.DataFrame:
    rows = [
        dict(order_id="CSV-1", channel_order_ref="PO-1", channel="csv", customer_id="C1", line_no=1,
             channel_line_ref=None, sku="A", category="Toys", delivered_qty=3, returned_qty=0, delivered_at=DELIVERED),
        dict(order_id="CSV-1", channel_order_ref="PO-1", channel="csv", customer_id="C1", line_no=2,
             channel_line_ref=None, sku="B", category="Hazmat", delivered_qty=2, returned_qty=0,
             delivered_at=DELIVERED),
        dict(order_id="CSV-1", channel_order_ref="PO-1", channel="csv", customer_id="C1", line_no=3,
             channel_line_ref=None, sku="A", category="Toys", delivered_qty=1, returned_qty=0, delivered_at=DELIVERED),
        dict(order_id="CSV-1", channel_order_ref="PO-1", channel="csv", customer_id="C1", line_no=4,
             channel_line_ref=None, sku="D", category="Toys", delivered_qty=0, returned_qty=0, delivered_at=None),
        dict(order_id="SHP-450789469", channel_order_ref="450789469", channel="shopify", customer_id="C2", line_no=1,
             channel_line_ref="703073504", sku="IPOD2008BLACK", category="Hazmat", delivered_qty=1, returned_qty=0,
             delivered_at=datetime(2016, 1, 1, tzinfo=UTC)),
        dict(order_id="SHP-450789469", channel_order_ref="450789469", channel="shopify", customer_id="C2", line_no=2,
             channel_line_ref="466157049", sku="IPOD2008GREEN", category="Music", delivered_qty=1, returned_qty=1,
             delivered_at=datetime(2016, 1, 1, tzinfo=UTC)),
        dict(order_id="EDI-9", channel_order_ref="PO-9", channel="edi", customer_id="B1", line_no=1,
             channel_line_ref=None, sku="A", category="Toys", delivered_qty=10, returned_qty=2, delivered_at=DELIVERED),
    ]
    for r in rows:
        r.update(over)
    return pl.DataFrame(rows, schema=RU.FACT_SCHEMA)


NO_POLICIES = RU.policy_frame({})


# ------------------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------------------
def test_requests_csv_variations_and_rejections():
    data = (b"Order_Ref,LINE_NO,sku,quantity,reason,requested_at,customer_note,exchange_sku,request_id\n"
            b"CSV-1,1,,2,damaged,2026-01-10T10:00:00,broken,,\n"
            b"CSV-1,,B,1,size fit,2026-01-10,=cmd,B2,\n"
            b"CSV-1,3,,1.0,Not-As-Described,2026-01-10T10:00:00+02:00,,,REQ-7\n"
            b"CSV-1,x,,1,OTHER,2026-01-10,,,\n"
            b"CSV-1,2,,0,OTHER,2026-01-10,,,\n"
            b"CSV-1,2,,1.5,OTHER,2026-01-10,,,\n"
            b"CSV-1,2,,1,BOGUS,2026-01-10,,,\n"
            b"CSV-1,2,,1,OTHER,yesterday,,,\n"
            b",2,,1,OTHER,2026-01-10,,,\n"
            b"CSV-1,,,1,OTHER,2026-01-10,,,\n"
            b"CSV-1,1,,2,damaged,2026-01-10T10:00:00,broken,,\n"
            b"CSV-1,1,,2,damaged,2026-01-10T10:00:00,other note,,\n"
            b"CSV-1,1,,2\n")
    f = R.read_return_requests(data, "r.csv")
    conserved(f)
    assert f.received == 13
    req = f.requests
    assert req["reason"].to_list() == ["DAMAGED", "SIZE_FIT", "NOT_AS_DESCRIBED"]
    assert req["customer_note"][1] == "'=cmd" and req["exchange_sku"][1] == "B2"
    assert req["request_id"][2] == "REQ-7" and len(req["request_id"][0]) == 64
    assert req["requested_at"][2] == datetime(2026, 1, 10, 8, tzinfo=UTC)  # offset honoured; none = UTC
    assert req["requested_at"][0] == datetime(2026, 1, 10, 10, tzinfo=UTC)
    assert set(req["status"]) == {"requested"} and set(req["source"]) == {"return_request"}
    codes = dict(zip(f.rejected["location"], f.rejected["reason_code"], strict=True))
    assert codes == {"line 5": "BAD_LINE_NO", "line 6": "BAD_QUANTITY", "line 7": "BAD_QUANTITY",
                     "line 8": "BAD_RETURN_REASON", "line 9": "BAD_DATE", "line 10": "MISSING_FIELD",
                     "line 11": "MISSING_FIELD", "line 12": "DUPLICATE_LINE", "line 13": "DUPLICATE_LINE",
                     "line 14": "CSV_MISSING_FIELDS"}
    msgs = dict(zip(f.rejected["location"], f.rejected["message"], strict=True))
    assert "identical copy of line 2" in msgs["line 12"] and "different content" in msgs["line 13"]


def test_request_id_is_file_independent():
    row = "CSV-1,1,,2,OTHER,2026-01-10T10:00:00Z"
    a = requests_csv(row)
    b = R.read_return_requests(
        b'[{"ORDER_REF": "CSV-1", "line_no": 1, "quantity": 2, "reason": "other", '
        b'"requested_at": "2026-01-10T11:00:00+01:00"}]', "other.json").requests
    assert a["request_id"].to_list() == b["request_id"].to_list()


def test_requests_json_shapes():
    obj = {"order_ref": "CSV-1", "line_no": 1, "quantity": 1, "reason": "OTHER", "requested_at": "2026-01-01"}
    import json
    wrapped = R.read_return_requests(json.dumps({"returns": [obj, 5, {**obj, "quantity": -1}]}).encode(), "w.json")
    conserved(wrapped)
    assert wrapped.requests["location"].to_list() == ["/returns/0"]
    assert wrapped.rejected.select("location", "reason_code").rows() == [("/returns/1", "INVALID_JSON"),
                                                                         ("/returns/2", "BAD_QUANTITY")]
    lines = R.read_return_requests((json.dumps(obj) + "\n" + json.dumps({**obj, "line_no": 2})).encode(), "l.json")
    assert lines.requests.height == 2 and lines.received == 2
    for bad, code in [(b"", "EMPTY_FILE"), (b"\x00\x01\x02zz", "BAD_ENCODING"), (b"[1,", "INVALID_JSON"),
                      (b'{"returns": 3}', "UNSUPPORTED_DOCUMENT"), (b'{"returns": []}', "EMPTY_FILE"),
                      (b"order_ref,quantity\nX,1\n", "CSV_MISSING_COLUMN")]:
        f = R.read_return_requests(bad, "x")
        assert (f.received, f.requests.height, f.rejected["reason_code"].to_list()) == (1, 0, [code]), bad


def test_shopify_refund_sample():
    f = R.read_shopify_refund((FIX / "refund.json").read_bytes(), "refund.json")
    conserved(f)
    r = f.requests
    assert r.height == 2 and f.rejected.height == 0
    assert r["order_ref"].to_list() == ["450789469", "450789469"]
    assert r["channel_line_ref"].to_list() == ["703073504", "466157049"]
    assert r["sku"].to_list() == ["IPOD2008BLACK", "IPOD2008GREEN"]
    assert r["request_id"].to_list() == ["shopify-refund-line:104689539", "shopify-refund-line:709875399"]
    assert set(r["status"]) == {"refunded"} and set(r["source"]) == {"shopify_refund"}
    assert r["refund_amount"].to_list() == [Decimal("209.00")] * 2  # the refund's money, on each of its lines
    assert r["restock_type"].to_list() == ["legacy_restock"] * 2
    assert r["channel_amount"].null_count() == 2  # the 2016 resource states no per-line subtotal
    assert r["requested_at"][0] == datetime(2016, 6, 20, 17, 35, 6, tzinfo=UTC)
    assert r["customer_note"][0] == "it broke during shipping"
    assert r["refund_id"][0] == "509562969"
    assert r.schema["refund_amount"] == pl.Decimal(18, 2)


def test_shopify_refund_amounts_and_calculation():
    f = R.read_shopify_refund((FIX / "refund_with_amounts.json").read_bytes(), "x.json")
    conserved(f)
    row = f.requests.row(0, named=True)
    assert (row["channel_amount"], row["channel_tax"], row["refund_amount"]) == (
        Decimal("195.67"), Decimal("3.98"), Decimal("199.65"))  # the failed transaction does not count
    assert row["restock_type"] == "return" and row["location"] == "/refunds/0/refund_line_items/0"
    calc = R.read_shopify_refund((FIX / "refund_calculate.json").read_bytes(), "c.json")
    conserved(calc)
    assert calc.requests.height == 0 and calc.rejected["reason_code"].to_list() == ["UNSUPPORTED_DOCUMENT"]
    assert "calculation" in calc.rejected["message"][0]


def test_shopify_refund_rejections():
    import json
    good = {"id": 1, "order_id": 7, "created_at": "2026-01-01T00:00:00Z",
            "refund_line_items": [{"id": 11, "line_item_id": 21, "quantity": 1, "subtotal": "1.00"}]}
    doc = [
        good,
        {**good, "id": 2, "order_id": None},
        {**good, "id": 3, "refund_line_items": []},
        {**good, "id": 4, "refund_line_items": [{"id": 12, "line_item_id": 22, "quantity": 0},
                                                {"id": 13, "quantity": 1},
                                                {"id": 14, "line_item_id": 23, "quantity": 1, "subtotal": "1.001"},
                                                "x"]},
        {**good, "id": 5, "transactions": [{"kind": "refund", "amount": "ten"}]},
        "nope",
    ]
    f = R.read_shopify_refund(json.dumps(doc).encode(), "s.json")
    conserved(f)
    assert f.requests["request_id"].to_list() == ["shopify-refund-line:11"]
    assert sorted(f.rejected.select("location", "reason_code").rows()) == sorted([
        ("/1", "MISSING_FIELD"), ("/2", "UNSUPPORTED_DOCUMENT"), ("/3/refund_line_items/0", "BAD_QUANTITY"),
        ("/3/refund_line_items/1", "MISSING_FIELD"), ("/3/refund_line_items/2", "BAD_AMOUNT"),
        ("/3/refund_line_items/3", "UNSUPPORTED_DOCUMENT"), ("/4", "BAD_AMOUNT"), ("/5", "UNSUPPORTED_DOCUMENT")])
    bad = R.read_shopify_refund(b"{not json", "b.json")
    assert (bad.received, bad.rejected["reason_code"].to_list()) == (1, ["INVALID_JSON"])


def test_receipts_reader():
    data = (b"rma_id,line_no,sku,quantity,grade,received_at,warehouse_id,note,final\n"
            b"RMA-1,1,A,2,Restock,2026-01-12,W1,ok,\n"
            b"RMA-1,,A,1,REFURBISH,2026-01-12T09:00:00,W1,,yes\n"
            b"RMA-1,1,A,2,scrapped,2026-01-12,W1,,\n"
            b"RMA-1,1,A,-2,scrap,2026-01-12,W1,,\n"
            b"RMA-1,1,A,2,scrap,soon,W1,,\n"
            b"RMA-1,1,,2,scrap,2026-01-12,W1,,\n"
            b"RMA-1,1,A,2,scrap,2026-01-12,W1,,maybe\n"
            b"RMA-1,1,A,2,Restock,2026-01-12,W1,ok,\n")
    f = R.read_return_receipts(data, "rc.csv")
    conserved(f)
    assert f.receipts["grade"].to_list() == ["restock", "refurbish"]
    assert f.receipts["line_no"].to_list() == [1, 1] and f.receipts["final"].to_list() == [False, True]
    assert f.rejected["reason_code"].to_list() == ["BAD_RETURN_GRADE", "BAD_QUANTITY", "BAD_DATE", "MISSING_FIELD",
                                                   "MISSING_FIELD", "DUPLICATE_LINE"]


def test_read_returns_file_detects_kind():
    assert R.read_returns_file((FIX / "refund.json").read_bytes(), "a").kind == "shopify_refund"
    assert R.read_returns_file((FIX / "refund_with_amounts.json").read_bytes(), "a").kind == "shopify_refund"
    assert R.read_returns_file(b"rma_id,sku,quantity,grade,received_at,warehouse_id\n", "a").kind == "return_receipts"
    f = R.read_returns_file(b"order_ref,line_no,quantity,reason,requested_at\nCSV-1,1,1,OTHER,2026-01-01\n", "a")
    assert f.kind == "return_requests" and f.file.requests.height == 1
    assert R.read_returns_file(b'{"returns": []}', "a").kind == "return_requests"


# ------------------------------------------------------------------------------------------------
# rules: requests -> RMAs
# ------------------------------------------------------------------------------------------------
def test_policies_from_frame_and_resolution():
    ref = pl.DataFrame({"channel": ["csv", "csv"], "customer_id": ["*", "C9"], "window_days": [60, 7],
                        "restocking_fee_rate": ["0.10", "0"], "refund_shipping_on_fault": [True, False],
                        "non_returnable_categories": ["Hazmat| Food ", ""]})
    pol = RU.policies_from_frame(ref)
    assert pol["non_returnable_categories"].to_list() == [["Hazmat", "Food"], []]
    keys = pl.DataFrame({"channel": ["csv", "csv", "edi", "zzz"], "customer_id": ["C1", "C9", "B1", "X"]})
    out = RU.resolve_policies(keys, pol)
    assert out["window_days"].to_list() == [60, 7, 14, 30]
    assert out["restocking_fee_rate"].to_list() == [Decimal("0.1"), Decimal("0"), Decimal("0.15"), Decimal("0")]


def test_each_refusal_code():
    req = requests_csv("\n".join([
        "CSV-1,1,,1,DAMAGED,2026-01-11",       # accepted
        "PO-1,,A,1,OTHER,2026-01-11",          # SKU on lines 1 and 3: ambiguous
        "CSV-404,1,,1,OTHER,2026-01-11",       # no such order
        "CSV-1,9,,1,OTHER,2026-01-11",         # no such line
        "CSV-1,2,,1,OTHER,2026-01-11",         # Hazmat
        "CSV-1,4,,1,OTHER,2026-01-11",         # not delivered
        "CSV-1,3,,1,OTHER,2026-03-01",         # window closed
        "PO-1,3,,2,OTHER,2026-01-11",          # 2 > 1 delivered
    ]))
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    assert j.accepted.height + j.refused.height == req.height
    got = dict(zip(j.refused["location"], j.refused["reason_code"], strict=True))
    assert got == {"line 3": "UNKNOWN_ORDER_LINE", "line 4": "UNKNOWN_ORDER_LINE", "line 5": "UNKNOWN_ORDER_LINE",
                   "line 6": "ITEM_NOT_RETURNABLE", "line 7": "RETURN_NOT_DELIVERED", "line 8": "RETURN_WINDOW_CLOSED",
                   "line 9": "RETURN_QTY_EXCEEDS_DELIVERED"}
    a = j.accepted.row(0, named=True)
    assert a["order_id"] == "CSV-1" and a["line_no"] == 1 and a["status"] == "authorised" and a["seller_fault"]
    assert a["rma_id"].startswith("RMA-") and len(a["rma_id"]) == 16 and a["rma_line_no"] == 1
    assert a["decided_at"] == NOW and a["window_days"] == 30


def test_duplicate_request_and_multi_line_rma():
    # the third row names order line 1 again, through the channel's order reference (the reader cannot see it)
    req = requests_csv("REQ-1,CSV-1,1,,1,OTHER,2026-01-11\nREQ-1,CSV-1,3,,1,OTHER,2026-01-11\n"
                       "REQ-1,PO-1,1,,1,OTHER,2026-01-12",
                       header="request_id,order_ref,line_no,sku,quantity,reason,requested_at")
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    assert j.refused["reason_code"].to_list() == ["DUPLICATE_RETURN_REQUEST"]
    assert j.accepted["rma_id"].n_unique() == 1 and j.accepted["rma_line_no"].to_list() == [1, 2]


def test_cumulative_quantity_across_a_batch():
    # line 1: 3 delivered. 2 (ok) + 2 (does not fit, refused) + 1 (fits: the refused one took nothing)
    req = requests_csv("CSV-1,1,,2,OTHER,2026-01-11\nCSV-1,1,,2,OTHER,2026-01-12\nCSV-1,1,,1,OTHER,2026-01-13\n"
                       "CSV-1,1,,1,OTHER,2026-01-14")
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    assert j.accepted.sort("requested_at")["quantity"].to_list() == [2, 1]
    refused = j.refused.sort("requested_at")
    assert refused["reason_code"].to_list() == ["RETURN_QTY_EXCEEDS_DELIVERED"] * 2
    assert "1 left to return" in refused["message"][0] and "accepted earlier in this batch 2" in refused["message"][0]
    # returned before counts too
    j2 = RU.judge_requests(requests_csv("EDI-9,1,,8,OTHER,2026-01-11\nEDI-9,1,,1,OTHER,2026-01-12"), facts(),
                           NO_POLICIES, NOW)
    assert j2.accepted["quantity"].to_list() == [8] and j2.refused.height == 1


@pytest.mark.parametrize(("offset", "ok"), [(timedelta(0), True), (timedelta(microseconds=1), False),
                                            (timedelta(seconds=-1), True)])
def test_window_boundary_is_inclusive(offset, ok):
    at = DELIVERED + timedelta(days=30) + offset
    req = requests_csv(f"CSV-1,1,,1,OTHER,{at.isoformat()}")
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    assert (j.accepted.height == 1) is ok
    if not ok:
        assert j.refused["reason_code"].to_list() == ["RETURN_WINDOW_CLOSED"]
    # B2B: 14 days
    at14 = DELIVERED + timedelta(days=14) + offset
    j2 = RU.judge_requests(requests_csv(f"EDI-9,1,,1,OTHER,{at14.isoformat()}"), facts(), NO_POLICIES, NOW)
    assert (j2.accepted.height == 1) is ok


def test_shopify_refunds_are_channel_decided():
    req = R.read_shopify_refund((FIX / "refund.json").read_bytes(), "refund.json").requests
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    # line 703073504: Hazmat and years past the window, yet accepted: the channel decided
    assert j.accepted["line_no"].to_list() == [1] and j.accepted["status"].to_list() == ["refunded"]
    assert j.accepted["refund_amount"].to_list() == [Decimal("209.00")]
    # line 466157049: its one unit was returned before -> quantity still checked
    assert j.refused["reason_code"].to_list() == ["RETURN_QTY_EXCEEDS_DELIVERED"]
    # a Shopify refund looks at shopify orders only
    other = facts().with_columns(pl.lit("csv").alias("channel"))
    assert set(RU.judge_requests(req, other, NO_POLICIES, NOW).refused["reason_code"]) == {"UNKNOWN_ORDER_LINE"}


def test_exchange_sku_is_carried():
    req = requests_csv("CSV-1,1,,1,SIZE_FIT,2026-01-11,B-XL",
                       header="order_ref,line_no,sku,quantity,reason,requested_at,exchange_sku")
    j = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    assert j.accepted["exchange_sku"].to_list() == ["B-XL"]


def test_judge_is_deterministic_under_shuffles():
    req = requests_csv("\n".join(f"CSV-1,{1 + i % 3},,1,OTHER,2026-01-{11 + i % 5:02d}" for i in range(12)))
    base = RU.judge_requests(req, facts(), NO_POLICIES, NOW)
    for seed in range(5):
        j = RU.judge_requests(req.sample(fraction=1.0, shuffle=True, seed=seed),
                              facts().sample(fraction=1.0, shuffle=True, seed=seed), NO_POLICIES, NOW)
        assert j.accepted.equals(base.accepted)
        assert j.refused.equals(base.refused)


# ------------------------------------------------------------------------------------------------
# rules: receipts
# ------------------------------------------------------------------------------------------------
def receipts(body: str) -> pl.DataFrame:
    f = R.read_return_receipts(("rma_id,line_no,sku,quantity,grade,received_at,warehouse_id,final\n" + body).encode(),
                               "rc.csv")
    assert f.rejected.height == 0, f.rejected.to_dicts()
    return f.receipts


RMAS = pl.DataFrame({"rma_id": ["RMA-1", "RMA-1", "RMA-2"], "rma_line_no": [1, 2, 1], "sku": ["A", "B", "C"],
                     "quantity": [3, 2, 1], "received_qty": [0, 1, 0]})


def test_receipt_outcomes():
    rc = receipts("\n".join([
        "RMA-1,1,A,2,restock,2026-01-12T10:00:00,W1,",
        "RMA-1,1,A,2,refurbish,2026-01-13T10:00:00,W1,",   # 1 fits, 1 over
        "RMA-1,2,B,1,scrap,2026-01-12T10:00:00,W1,",       # completes line 2 (1 before)
        "RMA-2,1,X,1,restock,2026-01-12T10:00:00,W1,",     # wrong item
        "RMA-9,1,A,4,restock,2026-01-12T10:00:00,W1,",     # unknown RMA
        "RMA-1,7,A,1,restock,2026-01-12T10:00:00,W1,",     # unknown line
    ]))
    out = RU.judge_receipts(rc, RMAS)
    assert out.accepted["matched_qty"].to_list() == [2, 1, 1]
    exc = {(r["rma_id"], r["reason_code"]): r["quantity"] for r in out.exceptions.iter_rows(named=True)}
    assert exc == {("RMA-1", "OVER_RECEIVED"): 1, ("RMA-2", "WRONG_ITEM_RECEIVED"): 1, ("RMA-9", "UNKNOWN_RMA"): 4,
                   ("RMA-1", "UNKNOWN_RMA"): 1}
    # nothing lost: every unit received is matched or held
    held = out.exceptions.filter(pl.col("reason_code") != "SHORT_RECEIVED")["quantity"].sum()
    assert rc["quantity"].sum() == out.accepted["matched_qty"].sum() + held
    mv = out.movements.select("warehouse_id", "sku", "qty_delta", "kind", "step").rows()
    assert sorted(mv) == sorted([("W1", "A", 2, "return_receipt", 1), ("W1", "B", 1, "return_receipt", 1),
                                 ("W1", "B", -1, "scrap", 2), ("W1-REFURB", "A", 1, "return_receipt", 1)])
    assert set(out.movements["source_doc"]) == {"RMA-1"} and out.movements["source_line"].n_unique() == 3


def test_short_received_open_and_closed():
    out = RU.judge_receipts(receipts("RMA-1,1,A,1,restock,2026-01-12,W1,"), RMAS)
    assert out.exceptions.select("reason_code", "quantity", "closed").rows() == [("SHORT_RECEIVED", 2, False)]
    out = RU.judge_receipts(receipts("RMA-1,1,A,1,restock,2026-01-12,W1,true"), RMAS)
    assert out.exceptions.select("reason_code", "quantity", "closed").rows() == [("SHORT_RECEIVED", 2, True)]
    out = RU.judge_receipts(receipts("RMA-1,1,A,3,restock,2026-01-12,W1,"), RMAS)
    assert out.exceptions.height == 0 and out.movements["qty_delta"].to_list() == [3]


def test_receipts_deterministic_under_shuffles():
    rc = receipts("\n".join(f"RMA-1,1,A,1,restock,2026-01-{12 + i:02d},W1," for i in range(5)))
    base = RU.judge_receipts(rc, RMAS)
    for seed in range(3):
        o = RU.judge_receipts(rc.sample(fraction=1.0, shuffle=True, seed=seed), RMAS)
        assert o.movements.equals(base.movements) and o.exceptions.equals(base.exceptions)
    assert base.accepted["matched_qty"].to_list() == [1, 1, 1]


# ------------------------------------------------------------------------------------------------
# money
# ------------------------------------------------------------------------------------------------
def inv_line(invoice_id: str, line_no: int, order_line_no: int | None, qty: int, ext: str, disc: str = "0.00",
             tax: str = "0.00", credited: int = 0, order_id: str = "O1", issued_day: int = 1,
             tax_source: str = "channel", rate: str | None = None) -> dict:
    net = Decimal(ext) - Decimal(disc)
    return dict(invoice_id=invoice_id, line_no=line_no, order_id=order_id, order_line_no=order_line_no,
                quantity=qty, extended_amount=Decimal(ext), discount_amount=Decimal(disc), net_amount=net,
                tax_rate=Decimal(rate) if rate else None, tax_amount=Decimal(tax), line_total=net + Decimal(tax),
                tax_source=tax_source, credited_qty=credited, issued_at=datetime(2026, 1, issued_day, tzinfo=UTC))


INV_SCHEMA = {"invoice_id": pl.String, "line_no": pl.Int64, "order_id": pl.String, "order_line_no": pl.Int64,
              "quantity": pl.Int64, "extended_amount": pl.Decimal(18, 2), "discount_amount": pl.Decimal(18, 2),
              "net_amount": pl.Decimal(18, 2), "tax_rate": pl.Decimal(9, 6), "tax_amount": pl.Decimal(18, 2),
              "line_total": pl.Decimal(18, 2), "tax_source": pl.String, "credited_qty": pl.Int64,
              "issued_at": pl.Datetime("us", "UTC")}


def invoices(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=INV_SCHEMA)


def accepted(*rows: tuple, channel: str = "shopify", prepaid: bool = True) -> pl.DataFrame:
    """rows: (rma_id, order line, quantity, reason, day)."""
    return pl.DataFrame([dict(rma_id=r, rma_line_no=1, order_id="O1", line_no=ln, quantity=q, reason=why,
                              requested_at=datetime(2026, 1, d, tzinfo=UTC), channel=channel, customer_id="C",
                              prepaid=prepaid) for r, ln, q, why, d in rows],
                        schema={"rma_id": pl.String, "rma_line_no": pl.Int64, "order_id": pl.String,
                                "line_no": pl.Int64, "quantity": pl.Int64, "reason": pl.String,
                                "requested_at": pl.Datetime("us", "UTC"), "channel": pl.String,
                                "customer_id": pl.String, "prepaid": pl.Boolean})


def test_refund_oldest_invoice_first_across_lines_and_shipping():
    il = invoices(inv_line("INV-2", 1, 1, 2, "20.00", tax="1.60", issued_day=5),
                  inv_line("INV-1", 1, 1, 1, "10.00", tax="0.80", issued_day=2),
                  inv_line("INV-1", 2, None, 1, "5.00", tax="0.40", issued_day=2))
    out = refund_lines(accepted(("RMA-A", 1, 2, "DAMAGED", 10)), il, NO_POLICIES)
    assert out.columns == list(REFUND_COLUMNS)
    assert out.select("invoice_id", "line_kind", "credit_qty", "line_total").rows() == [
        ("INV-1", "item", 1, Decimal("10.80")), ("INV-2", "item", 1, Decimal("10.80"))]  # not the whole order yet
    out = refund_lines(accepted(("RMA-A", 1, 2, "DAMAGED", 10), ("RMA-B", 1, 1, "DEFECTIVE", 11)), il, NO_POLICIES)
    ship = out.filter(pl.col("line_kind") == "shipping")
    assert ship.select("rma_id", "line_total").rows() == [("RMA-B", Decimal("5.40"))]  # completes the order
    assert out["line_total"].sum() == Decimal("37.80") and set(out["kind"]) == {"refund"}
    tot = refund_totals(out, accepted(("RMA-A", 1, 2, "DAMAGED", 10), ("RMA-B", 1, 1, "DEFECTIVE", 11)))
    assert tot.select("rma_id", "shipping_credit", "refund_total", "uncredited_qty").rows() == [
        ("RMA-A", Decimal("0.00"), Decimal("21.60"), 0), ("RMA-B", Decimal("5.40"), Decimal("16.20"), 0)]
    # no shipping back when the completing reason is the buyer's
    out = refund_lines(accepted(("RMA-A", 1, 3, "NO_LONGER_NEEDED", 10)), il, NO_POLICIES)
    assert set(out["line_kind"]) == {"item"}


def test_restocking_fee_b2b_and_credit_note():
    il = invoices(inv_line("INV-1", 1, 1, 3, "100.00", disc="10.00", tax_source="table", rate="0.08",
                           tax="7.20"))
    out = refund_lines(accepted(("RMA-A", 1, 1, "NO_LONGER_NEEDED", 3), channel="edi", prepaid=False), il,
                       NO_POLICIES)
    r = out.row(0, named=True)
    assert (r["net_amount"], r["restocking_fee_rate"], r["restocking_fee"], r["kind"]) == (
        Decimal("30.00"), Decimal("0.15"), Decimal("4.50"), "credit_note")
    assert r["restocking_fee"] + r["refund_total"] == r["line_total"]
    fault = refund_lines(accepted(("RMA-A", 1, 1, "DEFECTIVE", 3), channel="edi", prepaid=False), il, NO_POLICIES)
    assert fault["restocking_fee"].to_list() == [Decimal("0.00")]


def test_units_not_billed_are_not_credited():
    il = invoices(inv_line("INV-1", 1, 1, 2, "20.00", credited=1))
    acc = accepted(("RMA-A", 1, 3, "DAMAGED", 3))
    out = refund_lines(acc, il, NO_POLICIES)
    assert out["credit_qty"].to_list() == [1] and out["credited_before"].to_list() == [1]
    assert refund_totals(out, acc)["uncredited_qty"].to_list() == [2]


@settings(max_examples=60, deadline=None)
@given(qty=st.integers(1, 12), ext_cents=st.integers(1, 10_000_00), disc_pct=st.integers(0, 60),
       tax_cents=st.integers(0, 5_000_00), cuts=st.lists(st.integers(1, 12), min_size=1, max_size=8),
       one_batch=st.booleans(), b2b=st.booleans(), split=st.integers(0, 12))
def test_returning_in_pieces_credits_exactly_what_was_billed(qty, ext_cents, disc_pct, tax_cents, cuts, one_batch,
                                                             b2b, split):
    """Any pieces, one batch or several, over one or two invoice lines: Σ credited = billed (all returned),
    never more; fee + refund = credited on every row."""
    ext = Decimal(ext_cents) / 100
    disc = (ext * disc_pct / 100).quantize(Decimal("0.01"))
    tax = Decimal(tax_cents) / 100
    first = min(split, qty)
    rows = []
    if first:
        rows.append(inv_line("INV-1", 1, 1, first, str(ext), str(disc), str(tax), issued_day=1))
    if qty - first:
        rows.append(inv_line("INV-2", 1, 1, qty - first, str(ext + 1), "0.00", str(tax), issued_day=2))
    il = invoices(*rows)
    billed = il["line_total"].sum()
    pieces, left = [], qty
    for c in cuts:
        if left <= 0:
            break
        pieces.append(min(c, left))
        left -= pieces[-1]
    pieces.append(left + 2)  # the last piece asks for more than is left: never credits more
    channel = "edi" if b2b else "shopify"
    credited = Decimal(0)
    if one_batch:
        acc = accepted(*[(f"RMA-{i:02d}", 1, q, "OTHER", 1 + i) for i, q in enumerate(pieces)], channel=channel)
        out = refund_lines(acc, il, NO_POLICIES)
        credited = out["line_total"].sum()
        checks = [out]
    else:
        checks = []
        for i, q in enumerate(pieces):
            out = refund_lines(accepted((f"RMA-{i:02d}", 1, q, "OTHER", 1 + i), channel=channel), il, NO_POLICIES)
            checks.append(out)
            credited += out["line_total"].sum() if out.height else Decimal(0)
            done = out.group_by("invoice_id", "invoice_line_no").agg(pl.col("credit_qty").sum().alias("_c"))
            il = (il.join(done, left_on=["invoice_id", "line_no"], right_on=["invoice_id", "invoice_line_no"],
                          how="left").with_columns((pl.col("credited_qty") + pl.col("_c").fill_null(0))
                                                   .alias("credited_qty")).drop("_c"))
            assert credited <= billed
    assert credited == billed
    for out in checks:
        assert (out["restocking_fee"] + out["refund_total"] == out["line_total"]).all()
        assert (out["line_total"] >= 0).all()
