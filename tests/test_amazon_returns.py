"""Amazon returns reports (SP-API Reports API flat files) read into return requests, and an FBA report dropped into
``landing/returns`` of a small book: judged, refunded, received by Amazon (no refund-without-receipt break).

The fixtures ``fixtures/returns/amazon_fba_returns.tsv`` and ``amazon_mfn_returns.tsv`` are synthetic documents
written for these tests following the documented column sets (see ``fixtures/returns/ATTRIBUTION.md``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from builders import lines
from test_billing_service import NOW, _orders, _shipment, book, frame  # noqa: F401 (book: the fixture)
from test_returns_service import _delivered

from som_pipeline import schemas
from som_pipeline.returns import readers as R
from som_pipeline.services.billing import run_billing
from som_pipeline.services.closure import run_closure
from som_pipeline.services.returns import run_returns
from som_pipeline.warehouse import insert_frame

FIX = Path(__file__).parent / "fixtures" / "returns"
FBA = (FIX / "amazon_fba_returns.tsv").read_bytes()
MFN = (FIX / "amazon_mfn_returns.tsv").read_bytes()
HEADER = FBA.split(b"\n", 1)[0] + b"\n"
ORDER = "114-2962899-5762619"


def conserved(f: R.ReturnFile) -> None:
    assert f.received == f.requests.height + f.rejected.height


def test_fba_report_rows_and_rejections():
    got = R.read_returns_file(FBA, "fba.tsv")
    f = got.file
    assert got.kind == "amazon_returns" and isinstance(f, R.ReturnFile)
    conserved(f)
    assert f.received == 8
    rq = f.requests
    assert rq.select("request_id", "order_ref", "sku", "quantity", "reason", "status", "source").rows() == [
        ("amazon-return:LPNRR0000001", ORDER, "S1", 1, "NO_LONGER_NEEDED", "refunded", "amazon_fba_return"),
        ("amazon-return:LPNRR0000002", ORDER, "S2", 3, "DEFECTIVE", "refunded", "amazon_fba_return"),  # 3 units
        ("amazon-return:LPNRR0000003", ORDER, "S3", 1, "DAMAGED", "refunded", "amazon_fba_return"),
        ("amazon-return:LPNRR0000004", "114-7777777-0000001", "S1", 1, "OTHER", "refunded", "amazon_fba_return"),
        (rq["request_id"][4], "114-7777777-0000001", "S4", 1, "SIZE_FIT", "refunded", "amazon_fba_return"),
    ]
    assert len(rq["request_id"][4]) == 64  # no license plate: the content hash
    assert rq["line_no"].is_null().all() and rq["channel_line_ref"].is_null().all()
    # return-date with its offset, in UTC
    assert rq["requested_at"].to_list()[:3] == [datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
                                               datetime(2026, 11, 20, 11, 2, 31, tzinfo=UTC),
                                               datetime(2026, 11, 21, 13, 0, tzinfo=UTC)]
    # the note: the customer's comments, a formula start neutralised; an unknown reason keeps its raw code
    assert rq["customer_note"].to_list() == [None, "stopped working after a day", "'=HYPERLINK(\"x\")",
                                             "Amazon reason BRAND_NEW_CODE: box opened", None]
    assert rq.select("disposition", "fulfillment_center").rows() == [
        ("SELLABLE", "LEX1"), ("DEFECTIVE", "LEX1"), ("CARRIER_DAMAGED", "PHX7"), ("CUSTOMER_DAMAGED", "LEX1"),
        ("SELLABLE", "LEX1")]
    assert f.rejected.select("location", "reason_code").rows() == [
        ("line 7", "BAD_QUANTITY"), ("line 8", "BAD_DATE"), ("line 9", "MISSING_FIELD")]
    assert "order-id" in f.rejected["message"][2] and f.rejected["raw"][0].startswith("2026-11-21T10:00:00")


def test_reason_mapping_and_seller_fault():
    from som_pipeline.returns.rules import SELLER_FAULT

    assert set(R.AMAZON_REASONS.values()) <= set(R.RETURN_REASONS)
    fault = {k for k, v in R.AMAZON_REASONS.items() if v in SELLER_FAULT}
    assert {"DEFECTIVE", "DAMAGED_BY_CARRIER", "DAMAGED_BY_FC", "SWITCHEROO", "NOT_AS_DESCRIBED",
            "MISSING_PARTS"} <= fault
    assert not {"UNWANTED_ITEM", "ORDERED_WRONG_ITEM", "APPAREL_TOO_SMALL", "APPAREL_TOO_LARGE",
                "MISSED_ESTIMATED_DELIVERY", "FOUND_BETTER_PRICE"} & fault


@pytest.mark.parametrize("variant", ["bom", "crlf", "bom+crlf", "cp1252", "no trailing newline", "blank lines"])
def test_bom_crlf_and_encodings_read_the_same(variant):
    data = FBA
    if "crlf" in variant:
        data = data.replace(b"\n", b"\r\n")
    if "bom" in variant:
        data = b"\xef\xbb\xbf" + data
    if variant == "cp1252":
        data = data.replace(b"box opened", "bo\u00eete ouverte".encode("cp1252"))
    if variant == "no trailing newline":
        data = data.rstrip(b"\n")
    if variant == "blank lines":
        data = data.replace(b"\n", b"\n\n", 2)
    base = R.read_returns_file(FBA, "fba.tsv").file
    got = R.read_returns_file(data, "fba.tsv")
    assert got.kind == "amazon_returns"
    conserved(got.file)
    cols = ["request_id", "sku", "quantity", "reason", "requested_at"]
    assert got.file.requests.select(cols).equals(base.requests.select(cols))
    assert got.file.rejected["reason_code"].to_list() == base.rejected["reason_code"].to_list()
    if variant == "cp1252":
        assert "Amazon reason BRAND_NEW_CODE: bo\u00eete ouverte" in got.file.requests["customer_note"].to_list()


@pytest.mark.parametrize(("data", "code"), [
    (b"", "EMPTY_FILE"), (b"  \r\n ", "EMPTY_FILE"), (HEADER, "EMPTY_FILE"),
    (HEADER.replace(b"\n", b"\r\n") + b"\r\n\r\n", "EMPTY_FILE"),
    (HEADER.replace(b"\tquantity", b"\tqty"), "CSV_MISSING_COLUMN"),
    (HEADER.replace(b"\tsku", b"\torder-id"), "CSV_MISSING_COLUMN"),  # sku missing (order-id twice)
    (b"\x00\x01\x02", "BAD_ENCODING"),
])
def test_whole_file_problems_are_one_record(data, code):
    f = R.read_amazon_returns(data, "x.tsv")
    assert (f.received, f.requests.height, f.rejected["reason_code"].to_list()) == (1, 0, [code])
    assert f.rejected["location"].to_list() == ["file"]


def test_short_and_long_rows_and_duplicates():
    row = b"2026-11-20T10:15:00Z\t114-1\tS1\tB0\tX0\tWidget\t1\tLEX1\tSELLABLE\tDEFECTIVE\tok\tLPN9\tnote\n"
    short = b"2026-11-20T10:15:00Z\t114-2\tS1\tB0\tX0\tWidget\t1\tLEX1\tSELLABLE\tDEFECTIVE\n"  # trailing tabs lost
    long = row.replace(b"LPN9", b"LPN8").replace(b"note\n", b"note\tsurprise\n")
    f = R.read_amazon_returns(HEADER + row + row + short + long + row.replace(b"note", b"other"), "x.tsv")
    conserved(f)
    assert f.requests.select("request_id", "order_ref").rows() == [("amazon-return:LPN9", "114-1"),
                                                                    (f.requests["request_id"][1], "114-2")]
    assert f.rejected.select("location", "reason_code").rows() == [
        ("line 3", "DUPLICATE_LINE"), ("line 5", "CSV_EXTRA_FIELDS"), ("line 6", "DUPLICATE_LINE")]
    assert "identical copy" in f.rejected["message"][0] and "different content" in f.rejected["message"][2]


def test_request_id_is_file_independent():
    a = R.read_amazon_returns(FBA, "a.tsv").requests
    lines_ = FBA.split(b"\n")
    b = R.read_amazon_returns(b"\n".join([lines_[0], *reversed(lines_[1:])]), "b.tsv").requests
    assert sorted(a["request_id"].to_list()) == sorted(b["request_id"].to_list())


def test_mfn_report():
    got = R.read_returns_file(MFN, "mfn.tsv")
    f = got.file
    assert got.kind == "amazon_returns"
    conserved(f)
    assert f.requests.select("request_id", "source", "status", "order_ref", "sku", "quantity", "reason",
                             "requested_at").rows() == [
        ("amazon-rma:DaaaaaaaRMA", "amazon_mfn_return", "requested", "113-0000001-0000001", "S1", 2, "SIZE_FIT",
         datetime(2026, 11, 14, tzinfo=UTC)),
        ("amazon-rma:DbbbbbbbRMA", "amazon_mfn_return", "requested", "113-0000001-0000001", "S2", 1, "DEFECTIVE",
         datetime(2026, 11, 15, tzinfo=UTC))]
    assert f.rejected.select("location", "reason_code").rows() == [("line 4", "UNSUPPORTED_DOCUMENT")]


def test_detect_kind_leaves_the_other_formats_alone():
    assert R.detect_kind(b"order_ref\tquantity\nA\t1\n") == "return_requests"
    assert R.detect_kind(b"order_ref,sku,quantity,reason,requested_at\nCSV-1,S1,1,OTHER,2026-11-20\n") == \
        "return_requests"
    assert R.detect_kind(b"rma_id,line_no,sku,quantity,grade,received_at,warehouse_id\n") == "return_receipts"
    assert R.detect_kind(b"\xef\xbb\xbf" + FBA.replace(b"\n", b"\r\n")) == "amazon_returns"
    assert R.detect_kind(MFN) == "amazon_returns"


def test_judged_amazon_orders_only_and_fba_not_on_the_window():
    from som_pipeline.returns import rules as RU

    delivered = datetime(2026, 9, 1, tzinfo=UTC)  # long before the reports' dates: out of a 30-day window
    fact = dict(channel_order_ref=ORDER, customer_id="C2", channel_line_ref=None, category="Toys", delivered_qty=5,
                returned_qty=0, delivered_at=delivered)
    facts = pl.DataFrame([
        {**fact, "order_id": "AMZ-1", "channel": "amazon", "line_no": 1, "sku": "S1"},
        {**fact, "order_id": "AMZ-1", "channel": "amazon", "line_no": 2, "sku": "S2"},
        {**fact, "order_id": "CSV-7", "channel": "csv", "channel_order_ref": "113-0000001-0000001", "line_no": 1,
         "sku": "S1"}], schema=RU.FACT_SCHEMA)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fba = R.read_amazon_returns(FBA, "fba.tsv").requests
    j = RU.judge_requests(fba, facts, RU.policy_frame({}), now)
    assert sorted(j.accepted["sku"].to_list()) == ["S1", "S2"]  # channel-decided: no window
    assert set(j.accepted["status"]) == {"refunded"}
    # an MFN request is judged by the house rules (window), and only against Amazon orders
    mfn = R.read_amazon_returns(MFN, "mfn.tsv").requests
    j = RU.judge_requests(mfn, facts, RU.policy_frame({}), now)
    assert j.accepted.height == 0 and j.refused["reason_code"].to_list() == ["UNKNOWN_ORDER_LINE"] * 2
    assert "of amazon" in j.refused["message"][0]
    amz = facts.filter(pl.col("order_id") == "AMZ-1").with_columns(
        pl.lit("113-0000001-0000001").alias("channel_order_ref"))
    j = RU.judge_requests(mfn, amz, RU.policy_frame({}), now)
    assert j.refused["reason_code"].to_list() == ["RETURN_WINDOW_CLOSED"] * 2


# ------------------------------------------------------------------------------------------------
# service: an FBA report dropped into landing/returns of the billing test book
# ------------------------------------------------------------------------------------------------
def _amazon_order(wh) -> None:
    """AMZ-1 (Amazon order 114-2962899-5762619, prepaid): S1 x2, S2 x3, S3 x1, shipped and delivered."""
    o = _orders({"order_id": "AMZ-1", "channel": "amazon", "channel_order_ref": ORDER, "customer_id": "C2",
                 "payment_status": "paid", "order_total": Decimal("60.00"), "ship_to_region": "TX",
                 "ship_to_postal_code": "75001"})
    ln = lines({"order_id": "AMZ-1", "line_no": 1, "sku": "S1", "quantity": 2, "unit_price": Decimal("10.0000")},
               {"order_id": "AMZ-1", "line_no": 2, "sku": "S2", "quantity": 3, "unit_price": Decimal("10.0000")},
               {"order_id": "AMZ-1", "line_no": 3, "sku": "S3", "quantity": 1, "unit_price": Decimal("10.0000")})
    head, sl = _shipment("S-AMZ", "AMZ-1", {1: 2, 2: 3, 3: 1}, 12, "amazon")
    with wh.transaction() as con:
        insert_frame(con, "core.orders", o)
        insert_frame(con, "core.order_lines", ln)
        insert_frame(con, "core.shipments", frame(schemas.ShipmentModel, [head]))
        insert_frame(con, "core.shipment_lines", frame(schemas.ShipmentLineModel, sl))


def test_fba_report_in_landing_returns_is_judged_and_received_by_amazon(book, settings):  # noqa: F811
    _amazon_order(book)
    run_billing(book, settings, NOW)
    _delivered(book, "S-AMZ", "AMZ-1", NOW - timedelta(days=5))
    extra = (b"2026-11-21T12:00:00+00:00\t" + ORDER.encode() + b"\tS1\tB0\tX0\tWidget\t5\tLEX1\tSELLABLE\t"
             b"UNWANTED_ITEM\tUnit returned to inventory\tLPNRR0000099\t\n")
    (settings.landing_dir("returns") / "fba.tsv").write_bytes(FBA + extra)
    rep = run_returns(book, settings, NOW + timedelta(days=2))
    rq = book.read("SELECT request_id, source, order_id, line_no, quantity, reason, status, refusal_code, rma_id "
                   "FROM core.return_requests ORDER BY request_id")
    by = {r["request_id"]: r for r in rq.iter_rows(named=True)}
    assert by["amazon-return:LPNRR0000001"]["status"] == "accepted"
    assert (by["amazon-return:LPNRR0000001"]["order_id"], by["amazon-return:LPNRR0000001"]["line_no"]) == ("AMZ-1", 1)
    assert (by["amazon-return:LPNRR0000002"]["status"], by["amazon-return:LPNRR0000002"]["quantity"]) == ("accepted", 3)
    assert by["amazon-return:LPNRR0000003"]["status"] == "accepted"
    assert by["amazon-return:LPNRR0000004"]["refusal_code"] == "UNKNOWN_ORDER_LINE"  # not an order of ours
    assert by["amazon-return:LPNRR0000099"]["refusal_code"] == "RETURN_QTY_EXCEEDS_DELIVERED"  # 5 of 2 (1 left)
    assert rq["source"].unique().to_list() == ["amazon_fba_return"]
    # the file's rows are conserved in the feed ledger: 6 requests recorded + 3 rows quarantined
    assert (rep.requests, rep.accepted) == (6, 3)
    q = book.read("SELECT count(*) AS n FROM ops.quarantine WHERE source_file = 'fba.tsv'")
    assert q["n"][0] == 3
    # money back: a refund (prepaid Amazon order) per RMA, no restocking fee on a consumer channel
    rf = book.read("SELECT rma_id, kind, quantity, refund_total, restocking_fee FROM core.refunds ORDER BY rma_id")
    assert rf.height == 3 and set(rf["kind"]) == {"refund"} and rf["quantity"].sum() == 5
    assert rf["restocking_fee"].sum() == 0
    # Amazon received the units: one MATCHED receipt per RMA line at its fulfillment center, graded from the
    # disposition, and no movement in our stock ledger
    rc = book.read("SELECT rma_id, line_no, sku, quantity, grade, warehouse_id, outcome, received_at "
                   "FROM core.return_receipts ORDER BY sku")
    assert rc.select("sku", "quantity", "grade", "warehouse_id", "outcome").rows() == [
        ("S1", 1, "restock", "AMAZON-FBA-LEX1", "MATCHED"), ("S2", 3, "refurbish", "AMAZON-FBA-LEX1", "MATCHED"),
        ("S3", 1, "scrap", "AMAZON-FBA-PHX7", "MATCHED")]
    assert rc["received_at"][2] == datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    assert rep.receipts == 3
    assert book.read("SELECT count(*) AS n FROM core.stock_ledger WHERE kind IN ('return_receipt', 'scrap')"
                     )["n"][0] == 0
    # the same report again (a later, overlapping download): nothing is judged, refunded or received twice
    (settings.landing_dir("returns") / "fba-again.tsv").write_bytes(FBA.replace(b"\n", b"\r\n"))
    run_returns(book, settings, NOW + timedelta(days=3))
    assert book.read("SELECT count(*) AS n FROM core.return_receipts")["n"][0] == 3
    assert book.read("SELECT count(*) AS n FROM core.refunds")["n"][0] == 3
    # weeks later the nightly reconciliation finds no refund without a receipt for them
    run_closure(book, settings, NOW + timedelta(days=30))
    br = book.read("SELECT key FROM ops.reconciliation_breaks WHERE break_type = 'REFUND_WITHOUT_RECEIPT'")
    assert not set(br["key"]) & set(book.read("SELECT refund_id FROM core.refunds")["refund_id"])
