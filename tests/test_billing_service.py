"""The billing service on a small warehouse: partial shipments invoiced per shipment and never twice, gapless
numbers also after a run killed mid-posting, prepaid captures applied, a delivery-basis customer waiting for
tracking, cancellations credited, bank statements matched (reference, subset, suspense, manual decision), and
the credit check releasing a CREDIT_OVERDUE hold once tonight's payment is matched (end to end)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from builders import customers, lines, orders

from som_pipeline import schemas
from som_pipeline.billing.bank import write_mt940
from som_pipeline.services import billing as B
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.sqlfiles import sql_file
from som_pipeline.warehouse import insert_frame, replace_table

D = Decimal
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
RULES = ("shipped_lines_invoiced_once", "invoice_totals", "payments_conserved", "receivables_match_documents")


def frame(model, rows):
    return schemas.conform(pl.DataFrame(rows, infer_schema_length=None), model)


def _orders(*rows: dict) -> pl.DataFrame:
    return orders(*({"shipping_tax": D("0"), "prices_include_tax": False, **r} for r in rows))


def _shipment(sid: str, oid: str, qty: dict[int, int], day: int, ch: str = "csv") -> tuple[dict, list[dict]]:
    at = datetime(2026, 11, day, 15, tzinfo=UTC)
    head = {"shipment_id": sid, "order_id": oid, "channel": ch, "warehouse_id": "WH-NJ", "carrier_id": "UPS",
            "service": "GROUND", "ship_date": at.date(), "shipped_at": at, "packages": 1,
            "units": sum(qty.values()), "gross_weight_kg": 1.0, "rated_cost": D("5.00"), "currency": "USD",
            "partial": False}
    return head, [{"shipment_id": sid, "order_id": oid, "line_no": ln, "sku": f"S{ln}", "warehouse_id": "WH-NJ",
                   "quantity": q} for ln, q in qty.items()]


@pytest.fixture
def book(wh):
    """Two B2B orders (one shipped in two parts), a prepaid Shopify order, a delivery-basis customer's order."""
    o = _orders(
        {"order_id": "CSV-1", "customer_id": "C1", "shipping_total": D("7.95"), "order_total": D("58.00"),
         "ship_to_region": "TX", "ship_to_postal_code": "78701"},
        {"order_id": "CSV-2", "customer_id": "C1", "ship_to_region": "TX", "order_total": D("21.00")},
        {"order_id": "SHP-9", "channel": "shopify", "channel_order_ref": "9", "customer_id": "C2",
         "payment_status": "paid", "order_total": D("33.00"), "tax_total": D("3.00")},
        {"order_id": "EDI-5", "channel": "edi", "channel_order_ref": "ACME:PO5", "customer_id": "C3",
         "customer_ref": "ACME", "ship_to_region": "TX", "order_total": D("10.00")})
    ln = lines(
        {"order_id": "CSV-1", "line_no": 1, "quantity": 3, "unit_price": D("10.0000"), "discount_amount": D("0.50"),
         "discount_rate": D("0.05")},
        {"order_id": "CSV-1", "line_no": 2, "sku": "S2", "quantity": 2, "unit_price": D("7.5000")},
        {"order_id": "CSV-2", "line_no": 1, "quantity": 2, "unit_price": D("10.5000")},
        {"order_id": "SHP-9", "line_no": 1, "quantity": 1, "unit_price": D("30.0000"), "tax_amount": D("3.00"),
         "tax_rate": D("0.10")},
        {"order_id": "EDI-5", "line_no": 1, "quantity": 1, "unit_price": D("10.0000")})
    ships = [_shipment("S-A", "CSV-1", {1: 1, 2: 2}, 10), _shipment("S-B", "CSV-1", {1: 2}, 12),
             _shipment("S-C", "CSV-2", {1: 2}, 11), _shipment("S-D", "SHP-9", {1: 1}, 11, "shopify"),
             _shipment("S-E", "EDI-5", {1: 1}, 11, "edi")]
    with wh.transaction() as con:
        insert_frame(con, "core.orders", o)
        insert_frame(con, "core.order_lines", ln)
        insert_frame(con, "core.shipments", frame(schemas.ShipmentModel, [h for h, _ in ships]))
        insert_frame(con, "core.shipment_lines", frame(schemas.ShipmentLineModel, [r for _, ls in ships for r in ls]))
        replace_table(con, "ref.customers", customers({"customer_id": "C1", "name": "Acme Hardware Inc"},
                                                      {"customer_id": "C2", "name": "Pat Doe", "payment_terms_days": 0},
                                                      {"customer_id": "C3", "name": "Big Retail LLC"}))
        replace_table(con, "ref.tax_rates", frame(schemas.TaxRateModel, [
            {"jurisdiction": "US-TX", "country": "US", "region": "TX", "postal_prefix": "*", "tax_class": "standard",
             "rate": D("0.0625"), "valid_from": date(2025, 1, 1)},
            {"jurisdiction": "US-TX Austin", "country": "US", "region": "TX", "postal_prefix": "787",
             "tax_class": "standard", "rate": D("0.0825"), "valid_from": date(2025, 1, 1)},
            {"jurisdiction": "US-TX", "country": "US", "region": "TX", "postal_prefix": "*", "tax_class": "shipping",
             "rate": D("0.0625"), "valid_from": date(2025, 1, 1)}]))
        replace_table(con, "ref.billing_policies", frame(schemas.BillingPolicyModel, [
            {"channel": "edi", "customer_id": "C3", "basis": "delivery", "prepaid": False, "legal_entity": "US01"}]))
        replace_table(con, "ref.customer_bank_accounts", frame(schemas.CustomerBankAccountModel, [
            {"account": "GB29NWBK60161331926819", "customer_id": "C1", "holder_name": "ACME HARDWARE INC"}]))
    return wh


def _rules(wh) -> dict:
    with wh.connect() as con:
        return {r: run_reconciliation_query(con, sql_file("reconciliation", r)).height for r in RULES}


def test_invoices_per_shipment_partial_lines_add_up_and_never_twice(book, settings):
    rep = B.run_billing(book, settings, NOW)
    inv = book.read("SELECT * FROM core.invoices ORDER BY seq")
    # numbered in issue order (invoice date, then shipment); the delivery-basis EDI shipment waits for tracking
    assert inv.select("invoice_id", "shipment_id").rows() == [
        ("INV-US01-2026-000001", "S-A"), ("INV-US01-2026-000002", "S-C"), ("INV-US01-2026-000003", "S-D"),
        ("INV-US01-2026-000004", "S-B")]
    il = book.read("SELECT * FROM core.invoice_lines ORDER BY invoice_id, line_no")
    l1 = il.filter(pl.col("order_id") == "CSV-1", pl.col("order_line_no") == 1)
    assert l1["quantity"].to_list() == [1, 2] and l1["extended_amount"].sum() == D("30.00")
    assert l1["discount_amount"].sum() == D("0.50")  # the order line's discount, split 0.17 + 0.33
    # the Austin postal prefix wins over the state rate; shipping taxed at the state's shipping rate, first invoice
    first = il.filter(pl.col("invoice_id") == "INV-US01-2026-000001")
    assert first.filter(pl.col("kind") == "item")["tax_rate"].to_list() == [D("0.082500")] * 2
    ship = first.filter(pl.col("kind") == "shipping").row(0, named=True)
    assert (ship["net_amount"], ship["tax_amount"]) == (D("7.95"), D("0.50"))
    assert il.filter(pl.col("kind") == "shipping").height == 1
    # the prepaid Shopify order: channel tax, its capture applied (in payment until its payout is banked)
    ar = book.read("SELECT item_id, payment_state, residual FROM core.ar_open_items ORDER BY 1")
    assert ar.filter(pl.col("item_id") == "INV-US01-2026-000003").row(0)[1:] == ("in_payment", D("0.00"))
    assert rep.captures == 1 and rep.invoices == 4
    assert all(n == 0 for n in _rules(book).values()), _rules(book)
    # a rerun issues nothing and changes nothing
    before = {t: book.read(f"SELECT * FROM {t} ORDER BY ALL") for t in ("core.invoices", "core.invoice_lines",
                                                                        "core.ar_open_items")}
    again = B.run_billing(book, settings, NOW + timedelta(hours=1))
    assert again.invoices == 0
    for t, df in before.items():
        assert book.read(f"SELECT * FROM {t} ORDER BY ALL").drop("updated_at", strict=False).equals(
            df.drop("updated_at", strict=False)), t
    # documents: a PDF per invoice, the numbers in it
    pdfs = sorted(p.name for p in (settings.outbound / "invoices").iterdir())
    assert pdfs == [f"INV-US01-2026-00000{i}.pdf" for i in range(1, 5)]


def test_delivery_basis_waits_for_tracking_and_numbers_continue(book, settings):
    B.run_billing(book, settings, NOW)
    with book.transaction() as con:
        insert_frame(con, "core.shipment_status", frame(schemas.ShipmentStatusModel, [{
            "shipment_id": "S-E", "order_id": "EDI-5", "carrier_id": "UPS", "service": "GROUND",
            "milestone": "DELIVERED", "milestone_at": datetime(2026, 11, 13, 12, tzinfo=UTC),
            "last_event_at": datetime(2026, 11, 13, 12, tzinfo=UTC),
            "delivered_at": datetime(2026, 11, 13, 12, tzinfo=UTC), "updated_at": NOW}]))
    B.run_billing(book, settings, NOW + timedelta(hours=2))
    e = book.read("SELECT * FROM core.invoices WHERE shipment_id = 'S-E'").row(0, named=True)
    assert (e["invoice_id"], e["basis"], e["invoice_date"]) == ("INV-US01-2026-000005", "delivery", date(2026, 11, 13))
    assert e["due_date"] == date(2026, 12, 13)  # net 30
    edi = (settings.outbound / "edi" / "INV-US01-2026-000005.810.edi").read_text()
    assert "BIG*20261113*INV-US01-2026-000005*20261001*PO5***DI*00~" in edi and "TDS*1063~" in edi  # 10.00 + 6.25 %


def test_numbers_stay_gapless_after_a_run_killed_mid_posting(book, settings, monkeypatch):
    real = B._advance_counters

    def crash(con, counters):
        real(con, counters)
        raise RuntimeError("killed after numbering, before the commit")

    monkeypatch.setattr(B, "_advance_counters", crash)
    with pytest.raises(RuntimeError):
        B.run_billing(book, settings, NOW)
    assert book.read("SELECT count(*) AS n FROM core.invoices")["n"][0] == 0
    assert book.read("SELECT count(*) AS n FROM ops.document_numbers")["n"][0] == 0
    monkeypatch.setattr(B, "_advance_counters", real)
    B.run_billing(book, settings, NOW)
    seq = book.read("SELECT seq FROM core.invoices ORDER BY seq")["seq"].to_list()
    assert seq == [1, 2, 3, 4]
    # killed after posting, before the receivables: the next run brings them up to date
    with book.transaction() as con:
        con.execute("DELETE FROM core.ar_open_items")
    B.run_billing(book, settings, NOW + timedelta(hours=1))
    assert book.read("SELECT count(*) AS n FROM core.ar_open_items WHERE kind = 'invoice'")["n"][0] == 4
    assert all(n == 0 for n in _rules(book).values())
    assert book.read("SELECT last_seq FROM ops.document_numbers WHERE kind = 'invoice'")["last_seq"].to_list() == [4]


def test_cancelled_invoiced_order_gets_a_credit_note(book, settings):
    B.run_billing(book, settings, NOW)
    with book.transaction() as con:
        con.execute("UPDATE core.orders SET cancelled_at = ? WHERE order_id = 'CSV-2'", [NOW])
    rep = B.run_billing(book, settings, NOW + timedelta(hours=1))
    cn = book.read("SELECT * FROM core.credit_notes").row(0, named=True)
    inv = book.read("SELECT * FROM core.invoices WHERE order_id = 'CSV-2'").row(0, named=True)
    assert rep.credit_notes == 1 and cn["credit_note_id"] == "CN-US01-2026-000001"
    assert (cn["invoice_id"], cn["reason"], cn["total"]) == (inv["invoice_id"], "CANCELLATION", inv["total"])
    ar = book.read("SELECT * FROM core.ar_open_items WHERE item_id = ?", [inv["invoice_id"]]).row(0, named=True)
    assert (ar["credited"], ar["residual"]) == (inv["total"], D("0.00"))
    assert B.run_billing(book, settings, NOW + timedelta(hours=2)).credit_notes == 0  # never twice
    assert all(n == 0 for n in _rules(book).values())


def _statement(settings, name: str, lines: list[dict]) -> None:
    st = {"account": "DE89370400440532013000", "currency": "USD", "statement_date": date(2026, 11, 20),
          "opening_balance": D("1000.00"),
          "closing_balance": D("1000.00") + sum((ln["amount"] for ln in lines), D("0"))}
    (settings.landing_dir("bank") / name).write_text(write_mt940(st, lines), encoding="utf-8")


def _credit(amount: str, remit: str, name: str = "ACME HARDWARE INC", account: str | None = "GB29NWBK60161331926819",
            e2e: str = "E1") -> dict:
    return {"amount": D(amount), "booking_date": date(2026, 11, 20), "value_date": date(2026, 11, 20),
            "bank_reference": e2e, "end_to_end_id": e2e, "payer_name": name, "payer_account": account,
            "remittance": remit, "kind": "credit"}


def test_bank_statement_matched_suspense_and_a_manual_decision(book, settings):
    B.run_billing(book, settings, NOW)
    inv = dict(book.read("SELECT invoice_id, total FROM core.invoices").rows())
    i1, i2, i4 = "INV-US01-2026-000001", "INV-US01-2026-000002", "INV-US01-2026-000004"
    _statement(settings, "st1.sta", [
        _credit(str(inv[i1]), "inv us01 2026 1", e2e="E1"),  # spaced, no leading zeros
        _credit(str(inv[i2] + inv[i4]), "two invoices", e2e="E2"),  # only the amount: a subset of C1's items
        _credit("999.99", "who knows", name="STRANGER CO", account=None, e2e="E3")])
    rep = B.run_billing(book, settings, NOW + timedelta(hours=1))
    assert (rep.bank_files, rep.payments) == (1, 3)
    al = book.read("SELECT a.item_id, a.method FROM core.payment_allocations a JOIN core.payments p "
                   "USING (payment_id) WHERE p.source = 'bank' ORDER BY 1")
    assert al.rows() == [(i1, "REFERENCE"), (i2, "SUBSET"), (i4, "SUBSET")]
    su = book.read("SELECT * FROM core.payment_suspense")
    assert su.height == 1 and su["amount"].item() == D("999.99")
    paid = book.read("SELECT item_id, payment_state FROM core.ar_open_items WHERE item_id IN (?, ?, ?) ORDER BY 1",
                     [i1, i2, i4])
    assert paid["payment_state"].to_list() == ["paid"] * 3
    assert all(n == 0 for n in _rules(book).values())
    # the stranger is a known customer after all: a manual decision credits the money to C1
    pid = su["payment_id"].item()
    (settings.landing_dir("payment_decisions") / "d.csv").write_text(
        f"payment_id,action,invoice_id,amount,note,customer_id\n{pid},credit,,,phoned: Acme's subsidiary,C1\n"
        "NOPE,credit,,,unknown payment,C1\n")
    B.run_billing(book, settings, NOW + timedelta(hours=2))
    assert book.read("SELECT count(*) AS n FROM core.payment_suspense")["n"][0] == 0
    cc = book.read("SELECT customer_id, amount, reason FROM core.customer_credits WHERE payment_id = ?", [pid])
    assert cc.rows() == [("C1", D("999.99"), "MANUAL_CREDIT")]
    q = book.read("SELECT reason_code, location FROM ops.quarantine WHERE channel = 'payment_decisions'")
    assert q.rows() == [("PAYMENT_DECISION_INVALID", "line 3")]
    assert all(n == 0 for n in _rules(book).values())


def test_a_matched_payment_releases_the_credit_overdue_hold(book, settings):
    """End to end: an overdue opening item holds a new order (CREDIT_OVERDUE); tonight's bank statement pays it;
    the next validation releases the hold because the credit check reads our receivables."""
    from som_pipeline.services.validation import run_validation

    with book.transaction() as con:
        replace_table(con, "ref.open_items", frame(schemas.OpenItemModel, [{
            "invoice_id": "OLD-77", "customer_id": "C1", "amount_open": D("500.00"), "currency": "USD",
            "invoice_date": date(2026, 8, 1), "due_date": date(2026, 8, 31)}]))
        insert_frame(con, "core.orders", _orders({"order_id": "CSV-NEW", "customer_id": "C1",
                                                 "order_ts": NOW - timedelta(hours=1)}))
        insert_frame(con, "core.order_lines", lines({"order_id": "CSV-NEW", "line_no": 1, "quantity": 10}))
    run_validation(book, settings, now=NOW)
    held = book.read("SELECT reason_code FROM core.order_holds WHERE order_id = 'CSV-NEW'")
    assert "CREDIT_OVERDUE" in held["reason_code"].to_list()
    B.run_billing(book, settings, NOW)
    _statement(settings, "st2.sta", [_credit("500.00", "Settles invoice OLD-77", e2e="E9")])
    B.run_billing(book, settings, NOW + timedelta(hours=1))
    assert book.read("SELECT payment_state FROM core.ar_open_items WHERE item_id = 'OLD-77'")["payment_state"].item() \
        == "paid"
    run_validation(book, settings, now=NOW + timedelta(hours=2))
    held = book.read("SELECT reason_code FROM core.order_holds WHERE order_id = 'CSV-NEW'")
    assert "CREDIT_OVERDUE" not in held["reason_code"].to_list()
