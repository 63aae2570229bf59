"""Chargebacks: the dispute reader (Shopify Payments disputes, a processor's report), the service's upsert by
dispute at its latest status, and what closure does with them -- a closed order charged back re-opens, and
closes again when the dispute is won."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import polars as pl
from test_billing_service import NOW, book  # noqa: F401 (the fixture)
from test_returns_service import _delivered

from som_pipeline.billing.disputes import read_disputes
from som_pipeline.closure.breaks import detect_breaks
from som_pipeline.closure.status import line_status, order_status, transitions
from som_pipeline.services.billing import run_billing
from som_pipeline.services.closure import run_closure
from som_pipeline.services.returns import run_returns

FIXTURES = Path(__file__).parent / "fixtures"


# ------------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------------
def test_shopify_disputes_sample() -> None:
    data = (FIXTURES / "shopify" / "disputes.json").read_bytes()
    got = read_disputes(data, "disputes.json")
    assert got.received == 7 == got.disputes.height + got.rejected.height
    # the first dispute is on a charge with no order: nothing to re-open, quarantined with its place and text
    assert got.rejected.select("location", "reason_code").rows() == [("/disputes/0", "MISSING_FIELD")]
    assert '"id":1052608616' in got.rejected["raw"].item()
    d = got.disputes
    assert d["chargeback_id"].to_list()[0] == "shopify:815713555"
    assert set(d["source"]) == {"shopify"} and set(d["order_ref"]) == {"625362839"}
    assert dict(zip(d["dispute_ref"], d["status"], strict=True)) == {
        "815713555": "open", "782360659": "won", "670893524": "open", "598735659": "open", "85190714": "open",
        "35982383": "open"}
    assert d.filter(pl.col("kind") == "inquiry")["dispute_ref"].to_list() == ["670893524"]
    assert d["amount"].to_list() == [D("11.50")] * 6
    assert d["opened_at"][0] == datetime(2013, 5, 4, 0, 0, tzinfo=UTC)
    assert d["evidence_due_at"][0] == datetime(2020, 11, 18, 0, 0, tzinfo=UTC)


def test_processor_report_variations_and_rejections() -> None:
    csv = ("\ufeffDispute_ID,Order_Ref,Amount,Currency,Reason,Status,Opened_At,Type\r\n"
           "DP-1,CSV-1,-25.00,usd,fraudulent,Lost,2026-11-01,\r\n"            # sign ignored, currency upper-cased
           "DP-2,CSV-2,3.10,USD,duplicate,under review,2026-11-01T10:00:00+02:00,chargeback\r\n"
           "DP-3,,3.00,USD,x,open,2026-11-01,\r\n"                          # no order
           "DP-4,CSV-3,0,USD,x,open,2026-11-01,\r\n"                        # zero
           "DP-5,CSV-3,1.234,USD,x,open,2026-11-01,\r\n"                    # three places
           "DP-6,CSV-3,1.00,US,x,open,2026-11-01,\r\n"                      # currency
           "DP-7,CSV-3,1.00,USD,x,escalated,2026-11-01,\r\n"                # status
           "DP-8,CSV-3,1.00,USD,x,open,yesterday,\r\n"                      # date
           "DP-9,CSV-3,1.00,USD,x,open,2026-11-01,retrieval\r\n"            # type
           "DP-1,CSV-1,-25.00,usd,fraudulent,Lost,2026-11-01,\r\n"          # identical copy: counted once
           ",CSV-4,9.99,EUR,,warning_closed,2026-11-02,inquiry\r\n")        # no id: content hash
    got = read_disputes(csv.encode(), "report.csv")
    assert got.received == 11 == got.disputes.height + got.rejected.height
    assert got.rejected.select("location", "reason_code").rows() == [
        ("line 4", "MISSING_FIELD"), ("line 5", "BAD_AMOUNT"), ("line 6", "BAD_AMOUNT"), ("line 7", "UNKNOWN_CURRENCY"),
        ("line 8", "BAD_DISPUTE_STATUS"), ("line 9", "BAD_DATE"), ("line 10", "BAD_DISPUTE_TYPE"),
        ("line 11", "DUPLICATE_LINE")]
    d = got.disputes
    assert d.select("chargeback_id", "amount", "currency", "status", "kind").rows()[:2] == [
        ("processor:DP-1", D("25.00"), "USD", "lost", "chargeback"),
        ("processor:DP-2", D("3.10"), "USD", "open", "chargeback")]
    assert d["opened_at"][1] == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    last = d.row(2, named=True)
    assert last["chargeback_id"].startswith("processor:") and len(last["chargeback_id"]) == len("processor:") + 64
    assert (last["kind"], last["status"]) == ("inquiry", "won")
    # the same row in another file has the same id
    assert read_disputes(csv.encode(), "again.csv").disputes["chargeback_id"].to_list() == d["chargeback_id"].to_list()


def test_unreadable_files_are_one_rejection() -> None:
    for data, code in ((b"", "EMPTY_FILE"), (b'{"disputes": []}', "EMPTY_FILE"),
                       (b'{"disputes": 5}', "UNSUPPORTED_DOCUMENT"), (b"\xff\xfe\x00garbage", None),
                       (b"dispute_id,order_ref\nA,B\n", "CSV_MISSING_COLUMN")):
        got = read_disputes(data, "f")
        assert got.disputes.height == 0 and got.received == got.rejected.height >= 1
        if code:
            assert got.rejected["reason_code"][0] == code, (data, got.rejected["reason_code"][0])


# ------------------------------------------------------------------------------------------------
# closure rules
# ------------------------------------------------------------------------------------------------
def test_chargeback_reopens_and_a_won_dispute_closes_again() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    t0 = now - timedelta(days=60)
    lines = line_status(pl.DataFrame({"order_id": ["O1"], "line_no": [1], "ordered_qty": [1], "cancelled_qty": [0],
                                      "allocated_qty": [1], "picked_qty": [1], "shipped_qty": [1],
                                      "delivered_qty": [1], "returned_qty": [0], "invoiced_qty": [1],
                                      "credited_qty": [0]}))
    base = {"order_id": "O1", "channel": "shopify", "order_ts": t0, "approved_at": t0, "allocated_at": t0,
            "first_shipped_at": t0, "last_delivered_at": t0 + timedelta(days=2), "first_invoiced_at": t0,
            "paid_at": t0, "invoiced_amount": D("30.00"), "credited_amount": D("0"), "paid_amount": D("30.00"),
            "in_payment_amount": D("0"), "refunded_amount": D("0"), "return_window_days": 30, "cancelled": False,
            "last_return_at": None}
    closed = order_status(pl.DataFrame([base]), lines, now)  # no chargeback column: 0
    assert closed["closed"].item() and closed["charged_back_amount"].item() == 0
    charged = order_status(pl.DataFrame([{**base, "charged_back_amount": D("30.00")}]), lines, now)
    assert not charged["closed"].item()
    assert (charged["balance"].item(), charged["blocking_text"].item(), charged["payment_status"].item()) == (
        D("30.00"), "PAYMENT_OPEN", "not_paid")
    ev = transitions(closed, charged, now)
    assert ev["event"].to_list() == ["REOPENED"]
    assert "charged_back_amount 0.00 -> 30.00" in ev["reason"].item()
    assert transitions(charged, closed, now)["event"].to_list() == ["CLOSED"]


def test_open_chargeback_is_a_break() -> None:
    cb = pl.DataFrame({"chargeback_id": ["shopify:1", "shopify:2"], "order_id": ["O1", "O2"],
                       "kind": ["chargeback", "chargeback"],
                       "amount": [D("30.00"), D("5.00")], "status": ["open", "lost"],
                       "evidence_due_at": [datetime(2026, 12, 10, tzinfo=UTC), None]})
    br = detect_breaks(now=datetime(2026, 12, 1, tzinfo=UTC), chargebacks=cb)
    assert br.select("break_type", "key", "order_id", "amount", "owner_queue").rows() == [
        ("CHARGEBACK_OPEN", "shopify:1", "O1", D("30.00"), "disputes")]
    assert "evidence due 2026-12-10" in br["detail"].item()


# ------------------------------------------------------------------------------------------------
# service: landing/chargebacks -> core.chargebacks -> closure
# ------------------------------------------------------------------------------------------------
def _dispute(status: str) -> bytes:
    return json.dumps({"disputes": [
        {"id": 4242, "order_id": 9, "type": "chargeback", "amount": "33.00", "currency": "USD",
         "reason": "product_not_received", "network_reason_code": "13.1", "status": status,
         "evidence_due_by": "2026-12-30T19:00:00-05:00", "finalized_on": None if status != "won" else
         "2027-01-05T10:00:00-05:00", "initiated_at": "2026-12-20T10:00:00-05:00"},
        {"id": 4243, "order_id": 12345678, "type": "chargeback", "amount": "5.00", "currency": "USD",
         "reason": "fraudulent", "status": "needs_response", "initiated_at": "2026-12-20T10:00:00-05:00"},
    ]}).encode()


def test_service_reopens_a_closed_order_and_closes_it_when_won(book, settings) -> None:  # noqa: F811
    run_billing(book, settings, NOW)
    _delivered(book, "S-D", "SHP-9", NOW - timedelta(days=40))
    with book.transaction() as con:
        con.execute("UPDATE core.payments SET cleared = true WHERE source = 'channel_capture'")
    t1 = NOW + timedelta(days=1)
    run_closure(book, settings, t1)
    shp = book.read("SELECT closed, paid_amount FROM core.order_closure WHERE order_id = 'SHP-9'").row(0, named=True)
    assert shp["closed"]

    # the dispute report: one chargeback for the Shopify order '9' (SHP-9), one for an order we do not know
    (settings.landing_dir("chargebacks") / "d1.json").write_bytes(_dispute("needs_response"))
    t2 = t1 + timedelta(days=30)
    rep = run_returns(book, settings, t2)
    assert (rep.chargebacks, rep.chargebacks_quarantined) == (1, 1)
    cb = book.read("SELECT * FROM core.chargebacks").row(0, named=True)
    assert (cb["chargeback_id"], cb["order_id"], cb["status"], cb["charged_back"]) == (
        "shopify:4242", "SHP-9", "open", D("33.00"))
    q = book.read("SELECT reason_code, location FROM ops.quarantine WHERE channel = 'chargebacks'")
    assert q.rows() == [("CHARGEBACK_UNKNOWN_ORDER", "/disputes/1")]
    led = book.read("SELECT records_received, records_accepted, records_quarantined FROM ops.ingest_files "
                    "WHERE channel = 'chargebacks'")
    assert led.rows() == [(2, 1, 1)]
    run_closure(book, settings, t2)
    shp = book.read("SELECT * FROM core.order_closure WHERE order_id = 'SHP-9'").row(0, named=True)
    assert not shp["closed"] and shp["charged_back_amount"] == D("33.00") and "PAYMENT_OPEN" in shp["blocking"]
    ev = book.read("SELECT to_status, reason FROM core.order_events WHERE order_id = 'SHP-9' AND "
                   "to_status IN ('CLOSED', 'REOPENED') ORDER BY \"at\", to_status")
    assert ev["to_status"].to_list() == ["CLOSED", "REOPENED"]
    assert "charged_back_amount 0.00 -> 33.00" in ev["reason"][1]
    br = book.read("SELECT break_type, key, amount FROM ops.reconciliation_breaks WHERE resolved_at IS NULL "
                   "AND break_type = 'CHARGEBACK_OPEN'")
    assert br.rows() == [("CHARGEBACK_OPEN", "shopify:4242", D("33.00"))]

    # the same status again (another file with other bytes for the unknown order): nothing changes
    (settings.landing_dir("chargebacks") / "d2.json").write_bytes(_dispute("needs_response")[:-1] + b" }")
    run_returns(book, settings, t2 + timedelta(hours=1))
    assert book.read("SELECT updated_at FROM core.chargebacks")["updated_at"].item() == cb["updated_at"]

    # won: the issuer gives the money back, the order closes again; the break resolves
    (settings.landing_dir("chargebacks") / "d3.json").write_bytes(_dispute("won"))
    t3 = t2 + timedelta(days=10)
    run_returns(book, settings, t3)
    cb = book.read("SELECT status, charged_back, first_seen_at, updated_at FROM core.chargebacks").row(0, named=True)
    assert (cb["status"], cb["charged_back"]) == ("won", D("0.00"))
    assert cb["first_seen_at"] < cb["updated_at"]
    run_closure(book, settings, t3)
    assert book.read("SELECT closed FROM core.order_closure WHERE order_id = 'SHP-9'")["closed"].item()
    ev = book.read("SELECT to_status FROM core.order_events WHERE order_id = 'SHP-9' AND "
                   "to_status IN ('CLOSED', 'REOPENED') ORDER BY \"at\", to_status")["to_status"].to_list()
    assert ev == ["CLOSED", "REOPENED", "CLOSED"]
    assert book.read("SELECT resolved_at FROM ops.reconciliation_breaks WHERE break_type = 'CHARGEBACK_OPEN'"
                     )["resolved_at"].item() is not None


def test_order_lines_are_traced_through_every_stage(book, settings) -> None:  # noqa: F811
    """core.order_line_closure: each order line's units at every stage and what is open, upserted only when a line
    changes."""
    run_billing(book, settings, NOW)
    _delivered(book, "S-D", "SHP-9", NOW - timedelta(days=40))
    run_closure(book, settings, NOW)
    lc = book.read("SELECT * FROM core.order_line_closure ORDER BY order_id, line_no")
    n_lines = book.read("SELECT count(*) AS n FROM core.order_lines")["n"][0]
    assert lc.height == n_lines
    shp = lc.filter(pl.col("order_id") == "SHP-9").row(0, named=True)
    assert (shp["ordered_qty"], shp["shipped_qty"], shp["delivered_qty"], shp["invoiced_qty"]) == (1, 1, 1, 1)
    assert (shp["open_qty"], shp["delivery_status"], shp["invoicing_status"]) == (0, "full", "full")
    inv = book.read("SELECT sum(line_total) AS t FROM core.invoice_lines WHERE order_id = 'SHP-9' AND kind = 'item'")
    assert shp["invoiced_amount"] == inv["t"][0] and shp["credited_amount"] == 0
    stamp = lc["updated_at"].max()
    run_closure(book, settings, NOW + timedelta(hours=1))  # nothing changed: no line rewritten
    assert book.read("SELECT max(updated_at) AS t FROM core.order_line_closure")["t"][0] == stamp
