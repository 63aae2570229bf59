"""Outbound invoice documents: the X12 810 and the PDF invoice.

The 810 is read back with the project's X12 tokenizer (``split_segments``, not the writer's code) and checked
by a small checker written here: envelope and counts, and the arithmetic a receiver does (TDS01 = sum of
IT102 x IT104 per line in cents - SAC allowances + SAC charges + TXI02). The same checker is run on the public
810 samples (stupidedi) to show it reads real invoices the same way. The PDF is read back with pypdf.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest
from pypdf import PdfReader

from som_pipeline.billing import documents as docs
from som_pipeline.billing.documents import OutboundError
from som_pipeline.fulfilment.outbound import OutboundError as FulfilmentOutboundError
from som_pipeline.ingest.x12 import split_segments

FIX = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 1, 20, 9, 15, tzinfo=UTC)
D = Decimal
CENT = D("0.01")


# ------------------------------------------------------------------------------------------------
# Invoices built line by line (the header sums as invoicing.invoice_totals computes them)
# ------------------------------------------------------------------------------------------------
def item(no: int, sku: str, qty: int, price: str, disc: str = "0", rate: str | None = None, *,
         extended: str | None = None, tax: str | None = None, **kw) -> dict:
    ext = D(extended) if extended is not None else (qty * D(price)).quantize(CENT, ROUND_HALF_UP)
    net = ext - D(disc)
    tx = D(tax) if tax is not None else ((net * D(rate)).quantize(CENT, ROUND_HALF_UP) if rate else D("0.00"))
    row = {"line_no": no, "kind": "item", "sku": sku, "description": f"Item {sku}", "quantity": qty,
           "unit_price": D(price).quantize(D("0.0001")), "extended_amount": ext, "discount_amount": D(disc),
           "net_amount": net, "tax_rate": D(rate) if rate else None, "tax_amount": tx, "line_total": net + tx,
           "channel_line_ref": None, "buyer_part": None, "upc": None, "shipment_id": "SH-1"}
    row.update(kw)
    return row


def shipping(no: int, amount: str, rate: str | None = None, description: str = "UPS Ground") -> dict:
    amt = D(amount)
    tx = (amt * D(rate)).quantize(CENT, ROUND_HALF_UP) if rate else D("0.00")
    return {"line_no": no, "kind": "shipping", "sku": None, "description": description, "quantity": 1,
            "unit_price": amt.quantize(D("0.0001")), "extended_amount": amt, "discount_amount": D("0.00"),
            "net_amount": amt, "tax_rate": D(rate) if rate else None, "tax_amount": tx, "line_total": amt + tx,
            "channel_line_ref": None, "buyer_part": None, "upc": None, "shipment_id": "SH-1"}


def invoice(iid: str, lines: list[dict], *, kind: str = "invoice", prepaid: str = "0", **kw) -> tuple[dict, list]:
    def s(kind_: str | None, col: str) -> Decimal:
        return sum((ln[col] for ln in lines if kind_ is None or ln["kind"] == kind_), D("0.00"))

    fee = s("restocking_fee", "line_total")
    total = s(None, "line_total") - 2 * fee  # a restocking fee line is kept from the credit (invoicing rule 7)
    row = {"invoice_id": iid, "kind": kind, "reference_invoice_id": None, "reason": None,
           "invoice_date": date(2026, 1, 15), "due_date": date(2026, 2, 14), "payment_terms_days": 30,
           "order_id": "ORD-0001", "customer_po": "PO-4471", "channel_order_ref": "PO-4471", "currency": "USD",
           "customer_id": "CUST-001", "bill_to_name": "Acme Stores Inc",
           "ship_to_name": "Acme Stores DC 7", "ship_to_address1": "1 Dock Rd", "ship_to_city": "Canton",
           "ship_to_region": "MI", "ship_to_postal_code": "48817", "ship_to_country": "US",
           "seller_name": "SOM Supply Co", "seller_address": "9 Long Way, Springfield, IL 62701, US",
           "seller_tax_id": "12-3456789",
           "subtotal": s("item", "extended_amount"), "discount_total": s(None, "discount_amount"),
           "shipping_total": s("shipping", "net_amount"), "tax_total": s(None, "tax_amount"),
           "restocking_fee_total": fee, "total": total,
           "prepaid_amount": D(prepaid), "amount_due": total - D(prepaid),
           "partner_id": "ACMEHW", "sender_id": None, "receiver_id": None}
    row.update(kw)
    return row, [dict(ln, invoice_id=iid) for ln in lines]


def case_usd():
    """Two items (one discounted, with buyer part, UPC and the 850's line ids), shipping, 8.25 % tax."""
    return invoice("INV-US01-2026-000123", [
        item(1, "SKU-A", 3, "19.99", "5.00", "0.0825", channel_line_ref="0001", buyer_part="BP-100",
             upc="012345678905"),
        item(2, "SKU-B", 10, "4.125", rate="0.0825", channel_line_ref="0002", upc="4006381333931"),
        shipping(3, "12.50", "0.0825"),
    ])


def case_eur():
    """Non-USD, no customer PO (BIG04 = the channel order ref), two VAT rates, a hostile name."""
    return invoice("INV-US01-2026-000124", [
        item(1, "SKU-C", 2, "250.00", rate="0.19"),
        item(2, "SKU-D", 1, "9.99", "1.00", "0.07"),
    ], currency="EUR", customer_po=None, channel_order_ref="CH-7781", order_id="ORD-0002",
        bill_to_name="Smith*Jones~Co>Ltd Zoë Ångström 株式会社", ship_to_address1="5 Main St ~ Suite *2",
        ship_to_region="Bavaria")


def case_credit():
    """A return of one unit of SKU-A and a price correction (quantity 0) on SKU-B."""
    return invoice("CN-US01-2026-000007", [
        item(1, "SKU-A", 1, "19.99", "1.67", "0.0825", channel_line_ref="0001"),
        item(2, "SKU-B", 0, "0", extended="5.00", rate="0.0825", channel_line_ref="0002"),
    ], kind="credit_note", reference_invoice_id="INV-US01-2026-000123", reason="RETURN", due_date=None,
        payment_terms_days=None)


def restocking_fee(no: int, amount: str, sku: str | None = None) -> dict:
    """A credit note's restocking fee line (invoicing.restocking_fee_lines): no units, untaxed, positive."""
    amt = D(amount)
    return {"line_no": no, "kind": "restocking_fee", "sku": sku, "description": "Restocking fee", "quantity": 0,
            "unit_price": None, "extended_amount": amt, "discount_amount": D("0.00"), "net_amount": amt,
            "tax_rate": None, "tax_amount": D("0.00"), "line_total": amt, "channel_line_ref": None,
            "buyer_part": None, "upc": None, "shipment_id": "SH-1"}


def case_credit_fee():
    """A B2B return: 2 units of SKU-A (not the seller's fault: 15 % of the net 38.31 kept, 5.75) and 1 of SKU-B
    (damaged: no fee) credited with their tax; the note credits 45.94 - 5.75 = 40.19."""
    return invoice("CN-US01-2026-000008", [
        item(1, "SKU-A", 2, "19.99", "1.67", "0.0825", channel_line_ref="0001"),
        restocking_fee(2, "5.75", "SKU-A"),
        item(3, "SKU-B", 1, "4.125", rate="0.0825", channel_line_ref="0002"),
    ], kind="credit_note", reference_invoice_id="INV-US01-2026-000123", reason="RETURN", due_date=None,
        payment_terms_days=None)


def case_split():
    """Pieces of order lines billed by cumulative shares (invoicing.price_lines): 3 units at 0.3333 ordered
    (line amount 1.00) and shipped one by one bill 0.33, 0.34, 0.33; a channel-stated line amount of 0.65 for
    2 units billed whole; 3 units billed at once as quantity x price."""
    return invoice("INV-US01-2026-000125", [
        item(1, "SKU-E", 1, "0.3333", extended="0.34"),
        item(2, "SKU-E", 2, "0.3333", extended="0.65", channel_line_ref="7"),
        item(3, "SKU-F", 3, "0.3333", extended="1.00"),
    ])


def frames(*cases) -> tuple[pl.DataFrame, pl.DataFrame]:
    heads = [h for h, _ in cases]
    lines = [ln for _, ls in cases for ln in ls]
    return pl.DataFrame(heads, infer_schema_length=None), pl.DataFrame(lines, infer_schema_length=None)


def build(*cases, **kw) -> str:
    heads, lines = frames(*cases)
    args = dict(sender_id="SOMPIPE", receiver_id="ACMEHW", control_number=42, now=NOW)
    args.update(kw)
    return docs.x12_810(heads, lines, **args)


# ------------------------------------------------------------------------------------------------
# Reading an 810 back, independently of the writer
# ------------------------------------------------------------------------------------------------
def segments(text: str) -> list[list[str]]:
    return [s.elements for s in split_segments(text)]


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


def cents(text: str) -> int:
    """An R decimal ("12.5") as whole cents, exactly."""
    return int((D(text) * 100).to_integral_exact())


def check_810_set(st: list[list[str]]) -> dict:
    """The counts and the arithmetic of one 810 set; returns what it found."""
    assert st[0][:2] == ["ST", "810"] and st[-1][0] == "SE"
    assert int(st[-1][1]) == len(st), "SE01 = segments from ST to SE"
    assert st[-1][2] == st[0][2], "SE02 = ST02"
    assert st[1][0] == "BIG", "BIG follows ST"
    it1 = [s for s in st if s[0] == "IT1"]
    extended = sum(int((D(s[2]) * D(s[4])).quantize(CENT, ROUND_HALF_UP) * 100) for s in it1)
    allowances = sum(int(s[5]) for s in st if s[0] == "SAC" and s[1] == "A")
    charges = sum(int(s[5]) for s in st if s[0] == "SAC" and s[1] == "C")
    tax = sum(cents(s[2]) for s in st if s[0] == "TXI")
    tds = next(s for s in st if s[0] == "TDS")
    assert int(tds[1]) == extended - allowances + charges + tax, "TDS01 = IT1 extended - allowances + charges + tax"
    ctt = next(s for s in st if s[0] == "CTT")
    assert int(ctt[1]) == len(it1), "CTT01 = number of IT1 segments"
    if len(ctt) > 2:
        assert int(ctt[2]) == sum(int(s[2]) for s in it1), "CTT02 = hash total of IT102"
    order = [s[0] for s in st]
    summary = order.index("TDS")
    assert all(seg not in ("IT1", "PID") for seg in order[summary:]), "the summary area follows the detail"
    assert order[-2:] == ["CTT", "SE"]
    return {"tds": int(tds[1]), "it1": it1, "tax": tax, "allowances": allowances, "charges": charges}


def test_checker_reads_the_public_810_samples_the_same_way():
    """The conventions chosen (TDS in cents = IT1 extended +- SAC + TXI; CTT01 IT1 count, CTT02 quantity hash)
    are the public samples': the checker passes them, read with the project's tokenizer."""
    pipe = sets_of(segments((FIX / "billing" / "stupidedi_in810_pipe.edi").read_text()))
    assert len(pipe) == 1
    found = check_810_set(pipe[0])
    assert found["tds"] == 28566 and len(found["it1"]) == 2  # 4 x 70 + 1 x 5.66
    aero = sets_of(segments((FIX / "billing" / "stupidedi_sc810_aerospace_basic_invoice.edi").read_text()))
    assert check_810_set(aero[0])["tds"] == 17060


# ------------------------------------------------------------------------------------------------
# X12 810
# ------------------------------------------------------------------------------------------------
def test_810_envelope_counts_and_control_numbers():
    text = build(case_usd(), case_eur(), case_credit(), case_split())
    segs = segments(text)
    isa, gs, ge, iea = segs[0], segs[1], segs[-2], segs[-1]
    assert len(text.split("~")[0]) + 1 == 106, "ISA is fixed width (106 with its terminator)"
    assert text[3] == "*" and text[104] == ">" and text[105] == "~"
    assert isa[6].strip() == "SOMPIPE" and isa[8].strip() == "ACMEHW" and isa[12] == "00401"
    assert isa[13] == "000000042" and isa[15] == "P" and iea == ["IEA", "1", "000000042"]
    assert gs[1] == "IN" and gs[4] == "20260120" and gs[6] == "42" and gs[8] == "004010"
    sets = sets_of(segs)
    assert ge == ["GE", "4", "42"]
    assert [s[0][2] for s in sets] == ["0001", "0002", "0003", "0004"]
    # one set per invoice, in invoice-id order
    assert [s[1][2] for s in sets] == ["CN-US01-2026-000007", "INV-US01-2026-000123", "INV-US01-2026-000124",
                                       "INV-US01-2026-000125"]
    assert sum(len(st) for st in sets) + 4 == len(segs), "nothing outside ISA/GS/sets/GE/IEA"
    # a plain split on the declared separators gives the same segments
    plain = [s.strip().split("*") for s in text.split("~") if s.strip()]
    assert plain == segs


def test_810_arithmetic_of_every_set_is_the_invoice_total():
    cases = [case_usd(), case_eur(), case_credit(), case_split()]
    sets = {st[1][2]: st for st in sets_of(segments(build(*cases)))}
    for head, lines in cases:
        found = check_810_set(sets[head["invoice_id"]])
        assert found["tds"] == int(head["total"] * 100)
        assert found["tax"] == int(head["tax_total"] * 100)
        items = [ln for ln in lines if ln["kind"] == "item"]
        assert found["allowances"] == int(sum(ln["discount_amount"] for ln in items) * 100)
        assert found["charges"] == int(head["shipping_total"] * 100)
        assert len(found["it1"]) == len(items)


def test_810_usd_invoice_segments():
    st = sets_of(segments(build(case_usd())))[0]
    by = lambda seg_id: [s for s in st if s[0] == seg_id]  # noqa: E731
    assert st[1] == ["BIG", "20260115", "INV-US01-2026-000123", "", "PO-4471", "", "", "DI", "00"]
    assert by("CUR") == [], "USD: no CUR"
    assert by("REF") == [["REF", "VN", "ORD-0001"]], "the channel ref is the PO already in BIG04"
    assert by("N1") == [["N1", "SE", "SOM Supply Co"], ["N1", "BT", "Acme Stores Inc", "91", "CUST-001"],
                        ["N1", "ST", "Acme Stores DC 7"]]
    assert by("N3") == [["N3", "1 Dock Rd"]] and by("N4") == [["N4", "Canton", "MI", "48817", "US"]]
    assert by("ITD") == [["ITD", "01", "3", "", "", "", "20260214", "30"]]
    assert by("IT1") == [
        ["IT1", "0001", "3", "EA", "19.99", "", "VN", "SKU-A", "IN", "BP-100", "UP", "012345678905"],
        ["IT1", "0002", "10", "EA", "4.125", "", "VN", "SKU-B", "EN", "4006381333931"],
    ]
    assert by("PID") == [["PID", "F", "", "", "", "Item SKU-A"], ["PID", "F", "", "", "", "Item SKU-B"]]
    # the line discount is an allowance in the discounted line's IT1 loop
    sac_a = st.index(["SAC", "A", "C310", "", "", "500", "", "", "", "", "", "", "02"])
    assert st[sac_a - 2][0] == "IT1" and st[sac_a - 2][7] == "SKU-A"
    # summary: TDS, TXI (one rate), the shipping charge, CTT
    tail = [s for s in st if s[0] in ("TDS", "TXI", "SAC", "CTT")][1:]
    # 59.97 - 5.00 + 41.25 = 96.22 net items, tax 4.54 + 3.40; shipping 12.50 + 1.03 tax
    assert tail == [["TDS", "11769"], ["TXI", "ST", "8.97", "0.0825"],
                    ["SAC", "C", "G830", "", "", "1250", *[""] * 9, "UPS Ground"], ["CTT", "2", "13"]]


def test_810_non_usd_invoice_currency_po_and_cleaned_text():
    st = sets_of(segments(build(case_eur(), tax_type="VA")))[0]
    assert st[1][4] == "CH-7781", "no customer PO: BIG04 is the channel order ref"
    assert ["CUR", "SE", "EUR"] in st
    n1_bt = next(s for s in st if s[:2] == ["N1", "BT"])
    assert n1_bt[2] == "SmithJonesCoLtd Zoe Angstrom", "separators and non-ASCII removed, accents folded"
    assert ["N3", "5 Main St Suite 2"] in st
    assert ["N4", "Canton", "", "48817", "US"] in st, "N402 only for a two-letter region"
    txi = [s for s in st if s[0] == "TXI"]
    assert txi == [["TXI", "VA", "0.63", "0.07"], ["TXI", "VA", "95", "0.19"]], "one TXI per rate, by rate"


def test_810_credit_note():
    st = sets_of(segments(build(case_credit())))[0]
    assert st[1][:2] == ["BIG", "20260115"] and st[1][7:] == ["CR", "00"], "BIG07 CR: credit memo"
    assert len(st[1]) == 9, "BIG10 (a consolidated invoice number) is not used for the original invoice"
    assert ["REF", "OI", "INV-US01-2026-000123", "RETURN"] in st
    assert not [s for s in st if s[0] == "ITD"], "a credit memo has no payment terms"
    it1 = [s for s in st if s[0] == "IT1"]
    assert it1[0][:5] == ["IT1", "0001", "1", "EA", "19.99"]
    assert it1[1][:5] == ["IT1", "0002", "1", "EA", "5"], "a price correction is one lot of its amount"
    assert all(int(s[1]) >= 0 for s in st if s[0] in ("TDS",)) and next(s for s in st if s[0] == "TDS")[1] == "2524"


def test_810_credit_memo_keeps_the_restocking_fee_as_an_allowance():
    """The fee is kept from the credit: SAC*A (it lowers TDS01 like the discount credited back) coded G470
    Restocking, off invoice; a receiver's IT1 - allowances + charges + TXI is the note's total net of the fee."""
    head, lines = case_credit_fee()
    assert (head["restocking_fee_total"], head["total"]) == (D("5.75"), D("40.19"))
    st = sets_of(segments(build(case_credit_fee())))[0]
    found = check_810_set(st)
    assert found["tds"] == 4019 and found["tax"] == int(head["tax_total"] * 100)
    assert found["allowances"] == 167 + 575 and found["charges"] == 0
    assert ["SAC", "A", "G470", "", "", "575", "", "", "", "", "", "", "02", "", "", "Restocking fee SKU-A"] in st
    it1 = [s for s in st if s[0] == "IT1"]
    assert [s[7] for s in it1] == ["SKU-A", "SKU-B"], "the fee has no units: not an IT1, not in CTT"
    assert next(s for s in st if s[0] == "CTT") == ["CTT", "2", "3"]
    order = [s[0] for s in st]
    assert order.index("TDS") < order.index("TXI") < len(order) - 1 - order[::-1].index("SAC") < order.index("CTT")
    # the same memo without the fee: no G470, TDS the whole credit
    plain = invoice(head["invoice_id"], [ln for ln in lines if ln["kind"] != "restocking_fee"], kind="credit_note",
                    reference_invoice_id="INV-US01-2026-000123", reason="RETURN", due_date=None,
                    payment_terms_days=None)
    st = sets_of(segments(build(plain)))[0]
    assert check_810_set(st)["tds"] == 4594 and not [s for s in st if s[:3] == ["SAC", "A", "G470"]]


@pytest.mark.parametrize("change, message", [
    (lambda h, ls: h.update(total=h["total"] + 2 * D("5.75"), amount_due=h["amount_due"] + 2 * D("5.75")),
     "total"),  # the fee added to the credit instead of kept
    (lambda h, ls: h.update(restocking_fee_total=D("0.00")), "restocking_fee_total"),
    (lambda h, ls: h.update(restocking_fee_total=D("-5.75")), "negative"),
    (lambda h, ls: ls[1].update(tax_amount=D("0.47"), line_total=D("6.22")), "untaxed"),
    (lambda h, ls: ls[1].update(tax_rate=D("0.0825")), "untaxed"),
    (lambda h, ls: ls[1].update(quantity=1, unit_price=D("5.75")), "quantity 0"),
    (lambda h, ls: ls[1].update(line_total=D("5.76")), "line 2: line_total"),
    (lambda h, ls: ls[1].update(net_amount=D("-5.75"), extended_amount=D("-5.75"), line_total=D("-5.75")),
     "negative"),
    (lambda h, ls: (ls[1].update(net_amount=D("42.50"), extended_amount=D("42.50"), line_total=D("42.50")),
                    h.update(restocking_fee_total=D("42.50"), total=D("3.44"), amount_due=D("3.44"))),
     "exceeds the net of the items credited"),
    (lambda h, ls: h.update(kind="invoice", due_date=date(2026, 2, 14), payment_terms_days=30,
                           restocking_fee_total=D("0.00")),
     "belongs on a credit note"),
])
def test_restocking_fee_arithmetic_is_checked_by_both_documents(change, message):
    _refused_by_both(case_credit_fee(), change, message)


def test_an_invoice_never_carries_a_restocking_fee_total():
    h, ls = case_usd()
    with pytest.raises(OutboundError, match="on an invoice"):
        build((dict(h, restocking_fee_total=D("1.00")), ls))
    assert build((dict(h, restocking_fee_total=D("0.00")), ls)) == build(case_usd())


def test_810_optional_po_date_ship_date_and_a_ship_to_without_name():
    st = sets_of(segments(build(_with(case_usd(), {"po_date": date(2026, 1, 2), "ship_date": date(2026, 1, 14),
                                                    "ship_to_name": None}))))[0]
    assert st[1][:5] == ["BIG", "20260115", "INV-US01-2026-000123", "20260102", "PO-4471"]
    assert ["DTM", "011", "20260114"] in st
    assert ["N1", "ST", "Acme Stores Inc"] in st, "no ship-to name: the bill-to name"
    order = [s[0] for s in st]
    assert order.index("ITD") < order.index("DTM") < order.index("IT1"), "heading order of the 004010 810"


def test_810_split_line_states_the_effective_unit_price():
    st = sets_of(segments(build(case_split())))[0]
    it1 = [s[:5] for s in st if s[0] == "IT1"]
    # 1 x 0.3333 would be 0.33, billed 0.34; 2 x 0.325 = 0.65; 3 x 0.3333 = 0.9999 -> 1.00 as given
    assert it1 == [["IT1", "1", "1", "EA", "0.34"], ["IT1", "7", "2", "EA", "0.325"], ["IT1", "3", "3", "EA", "0.3333"]]
    assert check_810_set(st)["tds"] == 199


def test_810_effective_price_needs_more_places_for_large_quantities():
    ln = item(1, "SKU-G", 150, "0.3333", extended="50.01")
    qty, price = docs.it1_quantity_price(docs.check_invoice(*invoice("INV-X", [ln])).lines[0])
    assert qty == 150 and (qty * price).quantize(CENT, ROUND_HALF_UP) == D("50.01")
    assert price == D("0.3334")


def test_810_accepts_mappings_and_a_single_invoice_without_invoice_id_column():
    head, lines = case_usd()
    bare = [{k: v for k, v in ln.items() if k != "invoice_id"} for ln in lines]
    a = docs.x12_810([head], bare, sender_id="SOMPIPE", receiver_id="ACMEHW", control_number=42, now=NOW)
    assert a == build(case_usd())


# ------------------------------------------------------------------------------------------------
# Refusals
# ------------------------------------------------------------------------------------------------
def _with(case, head: dict | None = None, line: dict | None = None, line_no: int = 1):
    h, ls = case
    h = dict(h, **(head or {}))
    ls = [dict(ln, **(line or {})) if ln["line_no"] == line_no else ln for ln in ls]
    ls = [dict(ln, invoice_id=h["invoice_id"]) for ln in ls]
    return h, ls


@pytest.mark.parametrize("head, line, message", [
    ({"invoice_id": "INV*1"}, None, "BIG02 invoice number"),
    ({"invoice_id": "INV-US01-2026-000123-LONG"}, None, "longer than 22"),
    ({"customer_po": "PO~9"}, None, "BIG04 purchase order number"),
    ({"customer_id": "C>1"}, None, "customer id"),
    (None, {"sku": "SKU~A"}, "SKU"),
    (None, {"channel_line_ref": "1*2"}, "IT101"),
    (None, {"upc": "12345"}, "UPC/GTIN"),
    ({"partner_id": "OTHER"}, None, "is not the interchange's"),
])
def test_810_refuses_identifiers_it_would_have_to_change(head, line, message):
    with pytest.raises(OutboundError, match=re.escape(message)):
        build(_with(case_usd(), head, line))


def cent(v: Decimal) -> Decimal:
    return v + CENT


@pytest.mark.parametrize("change, message", [
    (lambda h, ls: h.update(total=cent(h["total"]), amount_due=cent(h["amount_due"])), "total"),
    (lambda h, ls: h.update(subtotal=cent(h["subtotal"])), "subtotal"),
    (lambda h, ls: h.update(tax_total=cent(h["tax_total"])), "tax_total"),
    (lambda h, ls: h.update(shipping_total=cent(h["shipping_total"])), "shipping_total"),
    (lambda h, ls: h.update(discount_total=D("0.00")), "discount_total"),
    (lambda h, ls: h.update(amount_due=D("0.00")), "amount_due"),
    (lambda h, ls: h.update(prepaid_amount=D("10.00")), "amount_due"),
    (lambda h, ls: ls[0].update(line_total=cent(ls[0]["line_total"])), "line 1: line_total"),
    (lambda h, ls: ls[0].update(net_amount=cent(ls[0]["net_amount"])), "line 1: net_amount"),
    (lambda h, ls: ls[1].update(extended_amount=D("45.00")), "line 2: extended_amount 45.00 is not 10 x 4.1250"),
    (lambda h, ls: ls[2].update(discount_amount=D("1.00"), net_amount=D("11.50")), "shipping line has no discount"),
    (lambda h, ls: ls[1].update(line_no=1), "line numbers repeat"),
    (lambda h, ls: ls[0].update(quantity=0), "quantity"),
    (lambda h, ls: h.pop("currency"), "currency: missing"),
    (lambda h, ls: h.update(currency="XYZ"), "ISO 4217"),
    (lambda h, ls: h.update(bill_to_name=" "), "bill_to_name: missing"),
    (lambda h, ls: h.update(invoice_date=None), "invoice_date: missing"),
    (lambda h, ls: h.update(due_date=date(2026, 2, 1)), "due_date"),
    (lambda h, ls: h.update(kind="proforma"), "kind"),
    (lambda h, ls: h.update(total=float(h["total"])), "float"),
    (lambda h, ls: ls[0].update(unit_price=19.99), "float"),
    (lambda h, ls: ls[0].update(tax_amount=D("-1.00")), "negative"),
    (lambda h, ls: ls[0].update(tax_rate=D("8.25")), "tax_rate"),
    (lambda h, ls: ls[0].update(unit_price=D("19.99001")), "more than 4 decimal places"),
    (lambda h, ls: h.update(prices_include_tax="yes"), "prices_include_tax"),
])
def test_broken_invoices_are_refused_by_both_documents(change, message):
    _refused_by_both(case_usd(), change, message)


def _refused_by_both(case, change, message):
    """The case changed by ``change`` is refused with ``message`` by the 810 writer and by the PDF."""
    h, ls = case
    h, ls = dict(h), [dict(ln) for ln in ls]
    change(h, ls)
    with pytest.raises(OutboundError, match=re.escape(message)):
        build((h, ls))
    with pytest.raises(OutboundError, match=re.escape(message)):
        docs.invoice_pdf(h, ls)


@pytest.mark.parametrize("head, message", [
    ({"reference_invoice_id": None}, "reference_invoice_id"),
    ({"reason": "GOODWILL"}, "reason"),
])
def test_credit_note_needs_its_original_and_a_reason(head, message):
    with pytest.raises(OutboundError, match=message):
        build(_with(case_credit(), head))


def test_810_refuses_tax_inclusive_prices_and_the_pdf_shows_them():
    h, ls = case_eur()
    lines = [dict(ln, line_total=ln["net_amount"], prices_include_tax=True) for ln in ls]
    h = dict(h, total=sum(ln["line_total"] for ln in lines), amount_due=sum(ln["line_total"] for ln in lines))
    with pytest.raises(OutboundError, match="prices include tax"):
        build((h, lines))
    text = pdf_text(docs.invoice_pdf(h, lines))
    assert "Tax (included in prices) 95.63 EUR" in text and "Total 508.99 EUR" in text


def test_810_refuses_bad_envelope_arguments():
    with pytest.raises(OutboundError, match="control_number"):
        build(case_usd(), control_number=0)
    with pytest.raises(OutboundError, match="usage"):
        build(case_usd(), usage="X")
    with pytest.raises(OutboundError, match="tax_type"):
        build(case_usd(), tax_type="sales")
    with pytest.raises(OutboundError, match="repeats"):
        build(case_usd(), case_usd())
    with pytest.raises(OutboundError, match="at least one"):
        docs.x12_810([], [], sender_id="A", receiver_id="B", control_number=1, now=NOW)


def test_one_error_class_for_every_outbound_document():
    assert OutboundError is FulfilmentOutboundError


# ------------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------------
def pdf_pages(data: bytes) -> list[str]:
    return [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages]


def pdf_text(data: bytes) -> str:
    return "\n".join(pdf_pages(data))


def test_pdf_shows_the_invoice_its_lines_and_totals():
    head, lines = case_usd()
    text = pdf_text(docs.invoice_pdf(head, lines))
    assert text.count("INV-US01-2026-000123") >= 2, "number in the header and the footer"
    for needle in ("Invoice", "SOM Supply Co", "Tax ID: 12-3456789", "Date 2026-01-15", "Due date 2026-02-14",
                   "Terms Net 30 days", "Purchase order PO-4471", "Order ORD-0001", "Bill to", "Acme Stores Inc",
                   "Ship to", "Canton MI 48817", "Amounts in USD"):
        assert needle in text, needle
    for ln in lines:
        if ln["sku"]:
            assert ln["sku"] in text
    # table rows as formatted: unit prices to 2 or 4 places, rates as percentages
    assert "SKU-A Item SKU-A 3 19.99 5.00 54.97 8.25% 4.54 59.51" in text
    assert "SKU-B Item SKU-B 10 4.125 0.00 41.25 8.25% 3.40 44.65" in text
    assert "UPS Ground 1 12.50 0.00 12.50 8.25% 1.03 13.53" in text
    for label, amount in (("Subtotal", "101.22"), ("Discount", "-5.00"), ("Shipping", "12.50"), ("Tax", "8.97"),
                          ("Total", "117.69"), ("Payments applied", "0.00"), ("Amount due", "117.69")):
        assert f"{label} {amount} USD" in text.splitlines(), label
    assert "Credit note" not in text


def test_pdf_credit_note_prepaid_and_thousands():
    head, lines = case_credit()
    text = pdf_text(docs.invoice_pdf(head, lines))
    assert text.splitlines()[3] == "Credit note" or "Credit note\n" in text
    for needle in ("Credit note number CN-US01-2026-000007", "Corrects invoice INV-US01-2026-000123",
                   "Reason Return", "Total credit 25.24 USD", "Balance to credit 25.24 USD"):
        assert needle in text, needle
    assert "Due date" not in text and "Terms" not in text
    assert "SKU-B Item SKU-B 0.00 5.00 8.25% 0.41 5.41" in text, "a price correction: no qty or unit price"
    big = invoice("INV-US01-2026-000130", [item(1, "SKU-BIG", 1000, "1234.5678")], prepaid="1000.00")
    text = pdf_text(docs.invoice_pdf(*big))
    assert "Total 1,234,567.80 USD" in text and "Payments applied 1,000.00 USD" in text
    assert "Amount due 1,233,567.80 USD" in text
    assert "SKU-BIG Item SKU-BIG 1000 1,234.5678 0.00 1,234,567.80 0.00 1,234,567.80" in text


def test_pdf_credit_note_shows_the_restocking_fee_and_the_credit_net_of_it():
    head, lines = case_credit_fee()
    text = pdf_text(docs.invoice_pdf(head, lines))
    assert "SKU-A Item SKU-A 2 19.99 1.67 38.31 8.25% 3.16 41.47" in text
    assert "SKU-A Restocking fee 0.00 -5.75 0.00 -5.75" in text, "the fee line: no units, untaxed, a deduction"
    assert "SKU-B Item SKU-B 1 4.125 0.00 4.13 8.25% 0.34 4.47" in text
    lines_ = text.splitlines()
    for label, amount in (("Subtotal", "44.11"), ("Discount", "-1.67"), ("Tax", "3.50"), ("Restocking fee", "-5.75"),
                          ("Total credit", "40.19"), ("Balance to credit", "40.19")):
        assert f"{label} {amount} USD" in lines_, label
    assert lines_.index("Restocking fee -5.75 USD") < lines_.index("Total credit 40.19 USD")
    assert "Restocking fee" not in pdf_text(docs.invoice_pdf(*case_credit())), "no fee: no fee row"


def test_pdf_long_invoice_repeats_the_table_header_on_every_page():
    lines = [item(k, f"SKU-{k:05d}", k % 7 + 1, "3.10", rate="0.06") for k in range(1, 121)]
    head, lines = invoice("INV-US01-2026-000200", lines)
    pages = pdf_pages(docs.invoice_pdf(head, lines))
    assert len(pages) == 3
    for k, page in enumerate(pages, 1):
        assert "SKU Description Qty Unit price Discount Net Tax rate Tax Total" in page, f"heading on page {k}"
        assert f"Invoice INV-US01-2026-000200 - page {k} of {len(pages)}" in page
    text = "\n".join(pages)
    for ln in lines:
        assert len(re.findall(rf"^{ln['sku']} ", text, re.M)) == 1, ln["sku"]
    assert f"Amount due {docs.money_text(head['amount_due'], 'USD')}" in pages[-1]


def test_pdf_unicode_names_never_crash():
    head, lines = case_eur()
    head = dict(head, seller_name="Ærø Łódź Trading", ship_to_name="Zoë Ångström", ship_to_city="東京")
    text = pdf_text(docs.invoice_pdf(head, lines))
    assert "Zoë Ångström" in text and "Ærø Łódź Trading" in text
    assert "Smith*Jones~Co>Ltd Zoë Ångström ????" in text, "glyphs the font lacks become ?, never dropped"


def test_pdf_without_a_unicode_font_folds_to_latin1(monkeypatch):
    monkeypatch.setattr(docs, "FONT_DIRS", ())
    head, lines = case_eur()
    head = dict(head, seller_name="Ærø Łódź Trading")
    data = docs.invoice_pdf(head, lines)
    text = pdf_text(data)
    assert b"Helvetica" in data
    assert "Zoë Ångström ????" in text and "Ærø ?ódz Trading" in text


def test_pdf_is_deterministic_and_dated_by_the_invoice():
    head, lines = case_usd()
    a, b = docs.invoice_pdf(head, lines), docs.invoice_pdf(head, lines)
    assert a == b
    assert b"/CreationDate (D:20260115000000Z" in a
    other = docs.invoice_pdf(dict(head, invoice_date=date(2026, 1, 14), due_date=date(2026, 2, 13)), lines)
    assert other != a and b"D:20260114000000Z" in other


def test_pdf_accepts_frames():
    head, lines = case_usd()
    heads, lf = frames(case_usd(), case_eur())
    one = heads.filter(pl.col("invoice_id") == head["invoice_id"])
    assert docs.invoice_pdf(one, lf) == docs.invoice_pdf(head, lines)


def test_money_text_is_exact():
    assert docs.money_text(D("1234.5"), "USD") == "1,234.50 USD"
    assert docs.money_text(D("-0.00"), "EUR") == "0.00 EUR"
    assert docs.money_text(D("99999999999999.99")) == "99,999,999,999,999.99"


# ------------------------------------------------------------------------------------------------
# Fed by billing.invoicing: its lines and totals are what the documents check
# ------------------------------------------------------------------------------------------------
def test_documents_accept_what_invoicing_produces():
    """An order line of 3 units at 3.3333 (line amount 10.00, 5 % discount, 8.25 % tax) shipped one unit at a
    time, a second line shipped whole, shipping on the first invoice: the pieces (3.33, 3.34, 3.33) are
    written as they were priced, and every 810 set adds up to its invoice total."""
    from som_pipeline.billing.invoicing import invoice_totals, price_lines, shipping_lines

    base = {"order_id": "O1", "prior_qty": 0, "discount_rate": D("0.05"), "tax_source": "table",
            "tax_amount": D("0"), "tax_rate": D("0.0825"), "prices_include_tax": False}
    rows = [{**base, "shipment_id": s, "line_no": 1, "quantity": 1, "ordered_qty": 3,
             "basis_at": datetime(2026, 3, d), "line_amount": D("10.00"), "discount_amount": D("0.50"),
             "unit_price": D("3.3333")} for s, d in (("S1", 1), ("S2", 2), ("S3", 3))]
    rows.append({**base, "shipment_id": "S1", "line_no": 2, "quantity": 2, "ordered_qty": 2,
                 "basis_at": datetime(2026, 3, 1), "line_amount": D("9.98"), "discount_amount": D("0.50"),
                 "unit_price": D("4.99")})
    money = {"line_amount": pl.Decimal(18, 2), "discount_amount": pl.Decimal(18, 2), "tax_amount": pl.Decimal(18, 2),
             "tax_rate": pl.Decimal(9, 6), "discount_rate": pl.Decimal(9, 6), "unit_price": pl.Decimal(18, 4)}
    priced = price_lines(pl.DataFrame(rows, schema_overrides=money)).lines
    items = priced.select(pl.col("shipment_id").alias("invoice_id"), "shipment_id", "line_no",
                          pl.lit("item").alias("kind"), (pl.lit("SKU-") + pl.col("line_no").cast(pl.String)).alias("sku"),
                          pl.lit("Part").alias("description"), pl.col("billed_qty").alias("quantity"), "unit_price",
                          "extended_amount", "discount_amount", "net_amount", "tax_rate", "tax_amount", "line_total",
                          "prices_include_tax")
    ship = shipping_lines(pl.DataFrame([{"shipment_id": "S1", "order_id": "O1", "shipping_total": D("7.95"),
                                         "shipping_tax": None, "tax_source": "table", "shipping_rate": D("0.0825"),
                                         "prices_include_tax": False}],
                                       schema_overrides={"shipping_total": pl.Decimal(18, 2),
                                                         "shipping_tax": pl.Decimal(18, 2),
                                                         "shipping_rate": pl.Decimal(9, 6)}))
    ship = ship.select(pl.col("shipment_id").alias("invoice_id"), "shipment_id", pl.lit(9).alias("line_no"),
                       pl.lit("shipping").alias("kind"), pl.lit(None, pl.String).alias("sku"),
                       pl.lit("Shipping").alias("description"), pl.lit(1).alias("quantity"),
                       pl.col("extended_amount").cast(pl.Decimal(18, 4)).alias("unit_price"), "extended_amount",
                       "discount_amount", "net_amount", "tax_rate", "tax_amount", "line_total", "prices_include_tax")
    lines = pl.concat([items.cast(ship.schema), ship])
    heads = []
    for t in invoice_totals(lines).sort("invoice_id").iter_rows(named=True):
        h, _ = invoice(f"INV-US01-2026-00010{t['invoice_id'][-1]}", [])
        h.update({k: t[k] for k in ("subtotal", "discount_total", "shipping_total", "tax_total", "total")},
                 amount_due=t["total"], prepaid_amount=D("0.00"), shipment=t["invoice_id"])
        heads.append(h)
    lines = lines.with_columns(pl.format("INV-US01-2026-00010{}", pl.col("invoice_id").str.slice(1)).alias("invoice_id"))
    text = docs.x12_810(heads, lines, sender_id="SOMPIPE", receiver_id="ACMEHW", control_number=9, now=NOW)
    sets = sets_of(segments(text))
    assert len(sets) == 3
    for st, h in zip(sets, heads, strict=True):
        assert check_810_set(st)["tds"] == int(h["total"] * 100)
    it1 = [s[:5] for st in sets for s in st if s[0] == "IT1"]
    assert it1 == [["IT1", "1", "1", "EA", "3.3333"], ["IT1", "2", "2", "EA", "4.99"],
                   ["IT1", "1", "1", "EA", "3.34"], ["IT1", "1", "1", "EA", "3.3333"]]
    for h in heads:
        one = lines.filter(pl.col("invoice_id") == h["invoice_id"])
        assert docs.money_text(h["total"], "USD") in pdf_text(docs.invoice_pdf(h, one))
