"""The restocking fee of a B2B return is charged: the RETURN credit note credits the returned lines and keeps the
fee in a ``restocking_fee`` line (billing.invoicing rule 7), so the note, core.refunds, the receivables, the
order's closure and the note's documents (X12 810 credit memo, PDF) all agree to the cent -- on the billing
test book, with the csv channel given a 15 % fee for returns that are not the seller's fault."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import polars as pl
import pytest
from test_billing_documents import check_810_set, pdf_text, segments, sets_of
from test_billing_service import NOW, _credit, _statement, book, frame  # noqa: F401 (book: the fixture)
from test_returns_service import _delivered

from som_pipeline import schemas
from som_pipeline.billing import documents as docs
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.services.billing import run_billing
from som_pipeline.services.closure import run_closure
from som_pipeline.services.returns import run_returns
from som_pipeline.sqlfiles import sql_file
from som_pipeline.warehouse import replace_table

D = Decimal
RATE = D("0.15")
RULES = ("invoice_totals", "receivables_match_documents", "returns_within_delivered", "credit_notes_match_refunds")
DELIVERED = NOW - timedelta(days=10)  # inside the 14-day window when the requests come, past it 5 days after NOW


def fee(net: Decimal) -> Decimal:
    """returns.money rule 3, computed here independently: round(net x rate), half away from zero, once."""
    return (net * RATE).quantize(D("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture
def fee_book(book, settings):  # noqa: F811
    """The billing book invoiced, its csv orders' first shipments delivered, the csv channel's policy: 14 days,
    15 % restocking fee."""
    with book.transaction() as con:
        replace_table(con, "ref.return_policies", frame(schemas.ReturnPolicyModel, [
            {"channel": "csv", "customer_id": "*", "window_days": 14, "restocking_fee_rate": RATE,
             "refund_shipping_on_fault": True, "non_returnable_categories": None}]))
    run_billing(book, settings, NOW)
    _delivered(book, "S-A", "CSV-1", DELIVERED)
    _delivered(book, "S-C", "CSV-2", DELIVERED)
    return book


def _request(settings, name: str, *rows: tuple[str, str, int, int, str]) -> None:
    at = f"{NOW - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
    (settings.landing_dir("returns") / name).write_text(
        "request_id,order_ref,line_no,quantity,reason,requested_at\n"
        + "".join(f"{r},{o},{ln},{q},{why},{at}\n" for r, o, ln, q, why in rows))


def _receive(wh, settings, request_id: str, qty: int) -> None:
    """The returned units of a CSV-2 request come back (a receipt run): closure counts them as returned."""
    sku = wh.read("SELECT sku FROM core.order_lines WHERE order_id = 'CSV-2'")["sku"].item()
    rma = wh.read("SELECT rma_id FROM core.return_requests WHERE request_id = ?", [request_id])["rma_id"].item()
    (settings.landing_dir("return_receipts") / f"{request_id}.csv").write_text(
        f"rma_id,line_no,sku,quantity,grade,received_at,warehouse_id\n{rma},1,{sku},{qty},restock,"
        f"{NOW:%Y-%m-%dT%H:%M:%SZ},WH-NJ\n")
    run_returns(wh, settings, NOW + timedelta(hours=2))


def _rules(wh) -> dict:
    with wh.connect() as con:
        return {r: run_reconciliation_query(con, sql_file("reconciliation", r)).height for r in RULES}


def _invoice(wh, order_id: str) -> dict:
    return wh.read("SELECT * FROM core.invoices WHERE order_id = ? ORDER BY seq", [order_id]).row(0, named=True)


def _note(wh, order_id: str) -> tuple[dict, pl.DataFrame]:
    n = wh.read("SELECT * FROM core.credit_notes WHERE order_id = ? ORDER BY seq DESC", [order_id]).row(0, named=True)
    lines = wh.read("SELECT * FROM core.credit_note_lines WHERE credit_note_id = ? ORDER BY line_no",
                    [n["credit_note_id"]])
    return n, lines


def test_b2b_return_charges_the_fee_on_the_credit_note_and_the_customer_owes_it(fee_book, settings):
    wh = fee_book
    _request(settings, "r.csv", ("R1", "CSV-1", 2, 1, "NO_LONGER_NEEDED"), ("R2", "CSV-1", 1, 1, "DAMAGED"),
             ("R3", "CSV-2", 1, 2, "SIZE_FIT"))
    rep = run_returns(wh, settings, NOW)
    assert rep.accepted == 3 and rep.credit_notes == 2

    # CSV-1: one note for its invoice; the seller-fault unit (R2, damaged) credited whole, no fee line; the unit
    # returned for no fault of ours (R1) credited with its tax, less 15 % of its net, kept in a fee line after it
    inv1 = _invoice(wh, "CSV-1")
    il = wh.read("SELECT * FROM core.invoice_lines WHERE invoice_id = ? ORDER BY line_no", [inv1["invoice_id"]])
    l1 = il.filter(pl.col("order_line_no") == 1).row(0, named=True)  # 1 unit billed on this invoice
    l2 = il.filter(pl.col("order_line_no") == 2).row(0, named=True)  # 2 units
    n1, lines = _note(wh, "CSV-1")
    piece_net = l2["net_amount"] / 2
    piece_tax = D(round(l2["tax_amount"] * 100 / 2)) / 100  # cumulative share of the first unit, half up
    assert lines.select("kind", "invoice_line_no", "quantity", "net_amount", "tax_amount", "line_total").rows() == [
        ("item", l1["line_no"], 1, l1["net_amount"], l1["tax_amount"], l1["line_total"]),
        ("item", l2["line_no"], 1, piece_net, piece_tax, piece_net + piece_tax),
        ("restocking_fee", l2["line_no"], 0, fee(piece_net), D("0.00"), fee(piece_net)),
    ], "no fee line for the damaged unit; the fee line is untaxed, after the item it is charged on"
    assert n1["restocking_fee_total"] == fee(piece_net)
    assert n1["total"] == l1["line_total"] + piece_net + piece_tax - fee(piece_net)
    assert (n1["subtotal"] - n1["discount_total"] + n1["shipping_total"] + n1["tax_total"]
            - n1["restocking_fee_total"]) == n1["total"]
    # core.refunds agrees with the note: the fee recorded is the fee kept, and the refunds' total is the note's
    rf = wh.read("SELECT r.request_id, f.kind, f.credit_note_id, f.restocking_fee, f.refund_total FROM core.refunds f "
                 "JOIN core.return_requests r USING (rma_id) ORDER BY 1")
    assert rf.filter(pl.col("request_id") == "R2")["restocking_fee"].item() == D("0.00")
    assert rf.filter(pl.col("request_id") == "R1")["restocking_fee"].item() == fee(piece_net)
    assert set(rf["kind"]) == {"credit_note"} and rf["credit_note_id"].null_count() == 0
    for cn_id, part in rf.group_by("credit_note_id"):
        note = wh.read("SELECT total, restocking_fee_total FROM core.credit_notes WHERE credit_note_id = ?",
                       [cn_id[0]]).row(0)
        assert (part["refund_total"].sum(), part["restocking_fee"].sum()) == note

    # CSV-2, both units back, nothing paid yet: the note credits the invoice less the fee -- the customer still
    # owes the fee on the open item
    inv2 = _invoice(wh, "CSV-2")
    n2, lines2 = _note(wh, "CSV-2")
    net2 = wh.read("SELECT net_amount FROM core.invoice_lines WHERE invoice_id = ?", [inv2["invoice_id"]]).item()
    assert lines2["kind"].to_list() == ["item", "restocking_fee"]
    assert (n2["restocking_fee_total"], n2["total"]) == (fee(net2), inv2["total"] - fee(net2))
    ar = wh.read("SELECT * FROM core.ar_open_items WHERE item_id = ?", [inv2["invoice_id"]]).row(0, named=True)
    assert (ar["credited"], ar["residual"], ar["payment_state"]) == (n2["total"], fee(net2), "not_paid")
    assert all(n == 0 for n in _rules(wh).values()), _rules(wh)

    # a rerun posts nothing twice; the numbers stay gapless
    run_returns(wh, settings, NOW + timedelta(hours=1))
    notes = wh.read("SELECT credit_note_id FROM core.credit_notes ORDER BY seq")["credit_note_id"].to_list()
    assert notes == ["CN-US01-2026-000001", "CN-US01-2026-000002"]
    assert wh.read("SELECT count(*) AS n FROM core.credit_note_lines")["n"].item() == 5

    # closure: the goods came back and were credited -- nothing to invoice or credit (the fee line has no units);
    # only the fee is owed
    _receive(wh, settings, "R3", 2)
    after_window = NOW + timedelta(days=5)
    run_closure(wh, settings, after_window)
    c2 = wh.read("SELECT * FROM core.order_closure WHERE order_id = 'CSV-2'").row(0, named=True)
    assert (c2["blocking"], c2["invoicing_status"], c2["credited_amount"]) == ("PAYMENT_OPEN", "full", n2["total"])
    assert c2["invoiced_amount"] - c2["credited_amount"] - c2["paid_amount"] == fee(net2)
    # the customer pays the fee: the open item is settled and the order closes
    _statement(settings, "fee.sta", [_credit(str(fee(net2)), f"restocking fee {inv2['invoice_id']}")])
    run_billing(wh, settings, after_window)
    ar = wh.read("SELECT residual, payment_state FROM core.ar_open_items WHERE item_id = ?", [inv2["invoice_id"]])
    assert ar.row(0) == (D("0.00"), "paid")
    run_closure(wh, settings, after_window + timedelta(hours=1))
    c2 = wh.read("SELECT closed, blocking, payment_status FROM core.order_closure WHERE order_id = 'CSV-2'")
    assert c2.row(0) == (True, None, "paid")
    assert all(n == 0 for n in _rules(wh).values()), _rules(wh)

    # the note's documents: what the service posted is what the 810 credit memo and the PDF accept
    head, dl = _documents_of(wh, n1["credit_note_id"])
    st = sets_of(segments(docs.x12_810([head], dl, sender_id="SOMPIPE", receiver_id="ACME", control_number=7,
                                       now=NOW)))[0]
    assert check_810_set(st)["tds"] == int(n1["total"] * 100)
    assert [s[:6] for s in st if s[:3] == ["SAC", "A", "G470"]] == [
        ["SAC", "A", "G470", "", "", str(int(fee(piece_net) * 100))]]
    text = pdf_text(docs.invoice_pdf(head, dl))
    assert f"Restocking fee -{fee(piece_net)} USD" in text and f"Total credit {n1['total']} USD" in text


def _documents_of(wh, credit_note_id: str) -> tuple[dict, list[dict]]:
    """A posted credit note as the document writers take it (header and lines, the invoice's prices)."""
    n = wh.read("SELECT * FROM core.credit_notes WHERE credit_note_id = ?", [credit_note_id]).row(0, named=True)
    lines = wh.read("""
        SELECT l.line_no, l.kind, l.sku, l.quantity, l.extended_amount, l.discount_amount, l.net_amount,
               l.tax_amount, l.line_total, CASE WHEN l.kind = 'restocking_fee' THEN NULL ELSE il.unit_price END
               AS unit_price, CASE WHEN l.kind = 'restocking_fee' THEN NULL ELSE il.tax_rate END AS tax_rate,
               CASE WHEN l.kind = 'restocking_fee' THEN 'Restocking fee' ELSE il.description END AS description
        FROM core.credit_note_lines l JOIN core.invoice_lines il
             ON il.invoice_id = l.invoice_id AND il.line_no = l.invoice_line_no
        WHERE l.credit_note_id = ? ORDER BY l.line_no""", [credit_note_id]).to_dicts()
    head = {**n, "invoice_id": credit_note_id, "kind": "credit_note", "reference_invoice_id": n["invoice_id"],
            "invoice_date": n["credit_date"], "due_date": None, "bill_to_name": "Acme Hardware Inc",
            "seller_name": "SOM Trading Inc.", "prepaid_amount": D("0.00"), "amount_due": n["total"],
            "customer_po": "PO-1"}
    return head, lines


def test_a_paid_invoice_returned_with_a_fee_leaves_the_customer_the_credit_net_of_the_fee(fee_book, settings):
    wh = fee_book
    inv2 = _invoice(wh, "CSV-2")
    _statement(settings, "paid.sta", [_credit(str(inv2["total"]), f"invoice {inv2['invoice_id']}")])
    run_billing(wh, settings, NOW)
    assert wh.read("SELECT payment_state FROM core.ar_open_items WHERE item_id = ?", [inv2["invoice_id"]]).item() \
        == "paid"
    _request(settings, "r.csv", ("R3", "CSV-2", 1, 2, "SIZE_FIT"))
    run_returns(wh, settings, NOW)
    n2, _ = _note(wh, "CSV-2")
    net2 = wh.read("SELECT net_amount FROM core.invoice_lines WHERE invoice_id = ?", [inv2["invoice_id"]]).item()
    assert n2["total"] == inv2["total"] - fee(net2)
    ar = wh.read("SELECT * FROM core.ar_open_items WHERE item_id = ?", [inv2["invoice_id"]]).row(0, named=True)
    # the customer paid everything: what we owe them is the credit net of the fee, not the whole invoice
    assert (ar["residual"], ar["payment_state"]) == (-n2["total"], "over_paid")
    _receive(wh, settings, "R3", 2)
    run_closure(wh, settings, NOW + timedelta(days=5))
    c2 = wh.read("SELECT * FROM core.order_closure WHERE order_id = 'CSV-2'").row(0, named=True)
    assert (c2["blocking"], c2["invoicing_status"]) == ("REFUND_OPEN", "full"), "we owe the credit, nothing else"
    assert c2["paid_amount"] - (c2["invoiced_amount"] - c2["credited_amount"]) == n2["total"]
    assert all(n == 0 for n in _rules(wh).values()), _rules(wh)


@pytest.mark.parametrize("batches", [1, 2], ids=["one_batch", "two_batches"])
def test_a_line_returned_in_pieces_is_charged_per_piece_never_beyond_the_net(fee_book, settings, batches):
    """Both units of CSV-2's line, one request each: each piece's fee is rounded once (the sum can differ from
    the fee of the whole line by a cent), kept on the note(s) that credit it; the pieces credit the invoice line
    exactly, and no fee exceeds the net it is kept from."""
    wh = fee_book
    if batches == 1:
        _request(settings, "r.csv", ("P1", "CSV-2", 1, 1, "SIZE_FIT"), ("P2", "CSV-2", 1, 1, "NO_LONGER_NEEDED"))
        run_returns(wh, settings, NOW)
    else:
        _request(settings, "r1.csv", ("P1", "CSV-2", 1, 1, "SIZE_FIT"))
        run_returns(wh, settings, NOW)
        _request(settings, "r2.csv", ("P2", "CSV-2", 1, 1, "NO_LONGER_NEEDED"))
        run_returns(wh, settings, NOW + timedelta(hours=1))
    inv2 = _invoice(wh, "CSV-2")
    line = wh.read("SELECT * FROM core.invoice_lines WHERE invoice_id = ?", [inv2["invoice_id"]]).row(0, named=True)
    rf = wh.read("SELECT rma_id, net_amount, restocking_fee, refund_total, credit_note_id FROM core.refunds "
                 "ORDER BY refunded_at, rma_id")
    assert rf.height == 2 and rf["net_amount"].sum() == line["net_amount"]
    assert rf["restocking_fee"].to_list() == [fee(n) for n in rf["net_amount"]], "a fee per piece, rounded once"
    assert all(f <= n for f, n in zip(rf["restocking_fee"], rf["net_amount"], strict=True))
    notes = wh.read("SELECT * FROM core.credit_notes ORDER BY seq")
    lines = wh.read("SELECT * FROM core.credit_note_lines ORDER BY credit_note_id, line_no")
    assert notes.height == batches and rf["credit_note_id"].n_unique() == batches
    items, fees = lines.filter(pl.col("kind") == "item"), lines.filter(pl.col("kind") == "restocking_fee")
    assert items["quantity"].sum() == 2 and items["line_total"].sum() == line["line_total"], "credited exactly"
    assert fees.height == batches and fees["line_total"].sum() == rf["restocking_fee"].sum()
    assert notes["total"].sum() == line["line_total"] - rf["restocking_fee"].sum() == rf["refund_total"].sum()
    for n in notes.iter_rows(named=True):
        assert n["restocking_fee_total"] <= n["subtotal"] - n["discount_total"]
    ar = wh.read("SELECT residual FROM core.ar_open_items WHERE item_id = ?", [inv2["invoice_id"]]).item()
    assert ar == rf["restocking_fee"].sum(), "unpaid: the customer owes the fees"
    assert all(n == 0 for n in _rules(wh).values()), _rules(wh)


def test_a_credit_note_that_gives_the_fee_back_is_a_break(fee_book, settings):
    """The rules see a note that does not keep the fee core.refunds recorded (the bug this fixes)."""
    wh = fee_book
    _request(settings, "r.csv", ("R3", "CSV-2", 1, 2, "SIZE_FIT"))
    run_returns(wh, settings, NOW)
    assert all(n == 0 for n in _rules(wh).values())
    with wh.transaction() as con:  # the note as it was posted before: the fee line missing, the total whole
        con.execute("DELETE FROM core.credit_note_lines WHERE kind = 'restocking_fee'")
        con.execute("UPDATE core.credit_notes SET total = total + restocking_fee_total, restocking_fee_total = 0")
    got = _rules(wh)
    assert got["credit_notes_match_refunds"] == 1 and got["invoice_totals"] == 0
    with wh.transaction() as con:  # a fee line the header does not subtract
        con.execute("INSERT INTO core.credit_note_lines SELECT credit_note_id, 9, invoice_id, invoice_line_no, "
                    "'restocking_fee', sku, 0, 1.00, 0, 1.00, 0, 1.00 FROM core.credit_note_lines LIMIT 1")
    assert _rules(wh)["invoice_totals"] == 1
    with pytest.raises(Exception, match="fee_lines_are_untaxed_amounts|fee_within_credit"):
        schemas.validate(schemas.CreditNoteLineModel, wh.read("SELECT * FROM core.credit_note_lines").with_columns(
            pl.when(pl.col("kind") == "restocking_fee").then(pl.lit(D("0.08"), pl.Decimal(18, 2)))
            .otherwise(pl.col("tax_amount")).alias("tax_amount")))


def test_a_run_killed_after_posting_the_note_records_its_refunds_on_the_rerun(fee_book, settings, monkeypatch):
    """The note is posted in its own transaction, then the requests and refunds with the file's ledger row: a
    kill in between leaves a note whose RMA is not recorded. The rerun judges the file again, computes the same
    money (the note's units are this batch's, not credited before it), posts nothing twice and links the refunds
    to the note: the fee recorded is the fee the note keeps."""
    from som_pipeline.services import returns as R

    wh = fee_book
    _request(settings, "r.csv", ("R3", "CSV-2", 1, 2, "SIZE_FIT"))
    real = R.insert_frame

    def killed(con, table, df):
        if table == "core.refunds":
            raise RuntimeError("killed")
        return real(con, table, df)

    monkeypatch.setattr(R, "insert_frame", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run_returns(wh, settings, NOW)
    monkeypatch.setattr(R, "insert_frame", real)
    assert wh.read("SELECT count(*) AS n FROM core.return_requests")["n"].item() == 0
    assert _rules(wh)["credit_notes_match_refunds"] == 1, "a note without its refunds is a break"
    rep = run_returns(wh, settings, NOW)
    assert rep.credit_notes == 0 and wh.read("SELECT count(*) AS n FROM core.credit_notes")["n"].item() == 1
    n2, _ = _note(wh, "CSV-2")
    rf = wh.read("SELECT quantity, restocking_fee, refund_total, credit_note_id FROM core.refunds").row(0)
    assert rf == (2, n2["restocking_fee_total"], n2["total"], n2["credit_note_id"])
    assert all(n == 0 for n in _rules(wh).values()), _rules(wh)


def test_credit_note_fee_column_is_added_to_an_existing_warehouse():
    """Additive schema evolution: a warehouse made before the fee has its notes' restocking_fee_total = 0."""
    from som_pipeline.schemas import add_column_sql

    sql = add_column_sql("core.credit_notes", schemas.CreditNoteModel,
                         set(schemas.CreditNoteModel.to_schema().columns) - {"restocking_fee_total"})
    assert sql == ['ALTER TABLE core.credit_notes ADD COLUMN "restocking_fee_total" DECIMAL(18, 2) DEFAULT 0.00']

