"""Returns and closure services on the billing test book: a return request judged (accepted, refused for quantity
and for an unknown line), its credit note posted once, what came back put to stock, the order closure with its
CLOSED event, a late return refused, and the nightly breaks and report."""

from __future__ import annotations

from datetime import datetime, timedelta
from html.parser import HTMLParser

import polars as pl
from test_billing_service import NOW, book  # noqa: F401 (the fixture)

from som_pipeline import schemas
from som_pipeline.services.billing import run_billing
from som_pipeline.services.closure import run_closure
from som_pipeline.services.returns import run_returns
from som_pipeline.warehouse import insert_frame


def _delivered(wh, shipment_id: str, order_id: str, at: datetime) -> None:
    with wh.transaction() as con:
        insert_frame(con, "core.shipment_status", schemas.conform(pl.DataFrame([{
            "shipment_id": shipment_id, "order_id": order_id, "carrier_id": "UPS", "service": "GROUND",
            "milestone": "DELIVERED", "milestone_at": at, "last_event_at": at, "delivered_at": at,
            "updated_at": at}]), schemas.ShipmentStatusModel))


def test_returns_credit_notes_stock_and_closure(book, settings):  # noqa: F811
    run_billing(book, settings, NOW)
    _delivered(book, "S-A", "CSV-1", NOW - timedelta(days=2))
    (settings.landing_dir("returns") / "r.csv").write_text(
        "request_id,order_ref,line_no,quantity,reason,requested_at,exchange_sku\n"
        "R1,CSV-1,2,1,DAMAGED,2026-11-20T10:00:00Z,\n"
        "R2,CSV-1,2,5,DAMAGED,2026-11-20T11:00:00Z,\n"
        "R3,CSV-1,9,1,OTHER,2026-11-20T11:00:00Z,\n"
        "R4,CSV-1,1,1,SIZE_FIT,2026-11-20T12:00:00Z,S7\n")
    rep = run_returns(book, settings, NOW)
    # the exchange: a new order in the CSV template, captured like any order
    ex = sorted(settings.landing_dir("csv").glob("exchange_*.csv"))
    assert rep.exchanges == 1 and len(ex) == 1
    from som_pipeline.services.channels import capture_channel

    capture_channel("csv", book, settings, now=NOW)  # (core orders are built from stage by the next run)
    exch = book.read("SELECT h.channel_order_ref, h.customer_po, l.sku, l.quantity FROM stage.order_headers h "
                     "JOIN stage.order_lines l USING (capture_id) WHERE h.channel_order_ref LIKE 'EXCH-%'")
    assert exch.select("sku", "quantity").rows() == [("S7", 1)] and exch["customer_po"].item().startswith("EXCHANGE RMA-")
    rq = book.read("SELECT request_id, status, refusal_code, rma_id FROM core.return_requests ORDER BY 1")
    assert rq.select("request_id", "status", "refusal_code").rows() == [
        ("R1", "accepted", None), ("R2", "refused", "RETURN_QTY_EXCEEDS_DELIVERED"),
        ("R3", "refused", "UNKNOWN_ORDER_LINE"), ("R4", "accepted", None)]
    cn = book.read("SELECT * FROM core.credit_notes").row(0, named=True)
    line = book.read("SELECT * FROM core.invoice_lines WHERE order_id = 'CSV-1' AND order_line_no = 2").row(
        0, named=True)
    assert (rep.credit_notes, cn["reason"], cn["invoice_id"]) == (1, "RETURN", line["invoice_id"])
    credited = book.read("SELECT line_total FROM core.credit_note_lines WHERE invoice_line_no = ?",
                         [line["line_no"]])["line_total"].item()
    assert credited == line["line_total"] / 2  # one of the two units billed on that line, exactly
    # the receipt puts the unit back to stock
    rma = rq.filter(pl.col("request_id") == "R1")["rma_id"].item()
    (settings.landing_dir("return_receipts") / "g.csv").write_text(
        f"rma_id,line_no,sku,quantity,grade,received_at,warehouse_id\n{rma},1,S2,1,restock,2026-11-20T12:00:00Z,"
        "WH-NJ\nRMA-NOPE,1,S9,2,restock,2026-11-20T12:00:00Z,WH-NJ\n")
    rep = run_returns(book, settings, NOW + timedelta(hours=1))
    rc = book.read("SELECT rma_id, outcome, quantity FROM core.return_receipts ORDER BY 1")
    assert rc.rows() == [(rma, "MATCHED", 1), ("RMA-NOPE", "UNKNOWN_RMA", 2)]  # every receipt recorded
    mv = book.read("SELECT kind, sku, qty_delta FROM core.stock_ledger WHERE kind = 'return_receipt'")
    assert mv.rows() == [("return_receipt", "S2", 1)]
    # re-running changes nothing: no second credit note, no second movement
    run_returns(book, settings, NOW + timedelta(hours=2))
    assert book.read("SELECT count(*) AS n FROM core.credit_notes")["n"][0] == 1

    # closure: nothing is closed while goods, invoices or money are open; a complete order closes once
    rep = run_closure(book, settings, NOW + timedelta(hours=3))
    cl = book.read("SELECT order_id, closed, blocking FROM core.order_closure ORDER BY 1")
    assert not cl["closed"].any()
    assert "DELIVERY_OPEN" in cl.filter(pl.col("order_id") == "CSV-2")["blocking"].item()
    # the prepaid Shopify order: delivered 40 days ago, its capture banked -> closed after its window
    _delivered(book, "S-D", "SHP-9", NOW - timedelta(days=40))
    with book.transaction() as con:
        con.execute("UPDATE core.payments SET cleared = true WHERE source = 'channel_capture'")
    later = NOW + timedelta(days=1)
    run_closure(book, settings, later)
    shp = book.read("SELECT * FROM core.order_closure WHERE order_id = 'SHP-9'").row(0, named=True)
    assert shp["closed"] and shp["payment_status"] == "paid" and shp["blocking"] is None
    ev = book.read("SELECT to_status FROM core.order_events WHERE order_id = 'SHP-9'")["to_status"].to_list()
    assert ev == ["CLOSED"]
    run_closure(book, settings, later + timedelta(hours=1))  # no second CLOSED event
    assert book.read("SELECT count(*) AS n FROM core.order_events WHERE to_status = 'CLOSED'")["n"][0] == 1
    # a late return of the closed order is refused (window passed): the order stays closed
    (settings.landing_dir("returns") / "late.csv").write_text(
        "request_id,order_ref,line_no,quantity,reason,requested_at\nR9,SHP-9,1,1,NO_LONGER_NEEDED,"
        f"{later:%Y-%m-%dT%H:%M:%SZ}\n")
    run_returns(book, settings, later)
    assert book.read("SELECT refusal_code FROM core.return_requests WHERE request_id = 'R9'")["refusal_code"].item() \
        == "RETURN_WINDOW_CLOSED"

    # the nightly breaks and the report: self-contained HTML
    br = book.read("SELECT break_type, resolved_at FROM ops.reconciliation_breaks")
    assert br.height >= 1
    html = (settings.home / "reports" / f"reconciliation-{later:%Y-%m-%d}.html").read_text()

    class Refs(HTMLParser):
        urls: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    p = Refs()
    p.feed(html)
    assert "<svg" in html and not [u for u in p.urls if "//" in u]
