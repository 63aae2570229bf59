"""Outbound invoice documents: the X12 810 invoice for trading partners and a PDF invoice for people.

Pure: an invoice (a mapping or a one-row frame) and its lines in, text or bytes out. No clock (``now`` is an
argument), nothing written anywhere; the PDF reads a font file (see below) and nothing else. Both documents
check the invoice first (:func:`check_invoice`) and raise :class:`OutboundError` (the fulfilment module's
class: one error for every outbound document) naming the invoice and what is wrong: an invoice whose lines
do not add up to its totals is never written.

Input
-----
Money is ``decimal.Decimal`` (an ``int`` is accepted; a ``float`` is refused): amounts to cents (at most
two decimal places), unit prices to at most four. Polars ``Decimal`` columns arrive as ``Decimal``.

``invoice`` (one row; extra keys are ignored):

- invoice_id (e.g. ``INV-US01-2026-000123``), kind (``invoice`` | ``credit_note``)
- reference_invoice_id, reason: credit notes only, required there: the invoice corrected and why
  (``RETURN`` | ``PRICE_CORRECTION`` | ``CANCELLATION``)
- invoice_date (date), due_date (date; required for an invoice), payment_terms_days (int >= 0; required for
  an invoice, and due_date must be invoice_date + payment_terms_days)
- order_id, customer_po (nullable: the buyer's PO number, 850 BEG03), channel_order_ref, currency (ISO 4217),
  customer_id, bill_to_name
- ship_to_name, ship_to_address1, ship_to_city, ship_to_region, ship_to_postal_code, ship_to_country
- seller_name, seller_address (one line), seller_tax_id (nullable)
- subtotal, discount_total, shipping_total, tax_total, total, prepaid_amount, amount_due; optional
  restocking_fee_total (a credit note's; absent = 0, and it must be 0 on an invoice)
- partner_id / sender_id / receiver_id (the 810's ISA ids; when set they must be the interchange's)
- optional: po_date (date, BIG03), ship_date (date, DTM*011)

``lines`` (a frame or a sequence of mappings; with an ``invoice_id`` column when several invoices are
written): line_no (int > 0, unique), kind (``item`` | ``shipping`` | ``restocking_fee``: credit notes only), sku
(required for items, null for shipping, optional on a fee: the item it is charged on), description, quantity
(int > 0; 0 for a credit note's price correction and for a restocking fee), unit_price, extended_amount,
discount_amount, net_amount,
tax_rate (a fraction, 0.0825 = 8.25 %, or null), tax_amount, line_total, channel_line_ref (nullable: the
850 PO1 assigned id), buyer_part (nullable), upc (nullable: 12, 13 or 14 digits), shipment_id.

Optional on the invoice or its lines: ``prices_include_tax`` (bool; the prices hold the tax, so a line's
total is its net and the tax is the part of it that is tax).

The arithmetic checked is the one :mod:`som_pipeline.billing.invoicing` produces (exactly, in cents):

- per line: 0 <= discount_amount <= extended_amount; net_amount = extended_amount - discount_amount;
  tax_amount >= 0 (taken as given, not recomputed from the rate: channels state their own);
  line_total = net_amount + tax_amount (= net_amount with ``prices_include_tax``).
- extended_amount is quantity x unit_price rounded to cents, give or take what the cumulative shares of a line
  split over several invoices allow: at most 2 cents plus half a unit of the price's 4th decimal per unit
  (``invoicing.price_lines`` bills the pieces of an order line so that they add up to the line's own amount,
  so a piece can differ from quantity x price by a cent). Anything further off is refused.
- a shipping line has no discount (the shipping charge is billed net: ``invoicing.shipping_lines``).
- a credit-note line may have quantity 0: a price correction (``invoicing.credit_lines``), an amount with no
  units, whose unit_price may be null.
- a ``restocking_fee`` line (``invoicing.restocking_fee_lines``, rule 7 there) is on a credit note only: quantity
  0, no discount, no tax and no rate (the fee is untaxed), extended = net = line_total = the fee, stored
  **positive** like every amount; its kind makes it a deduction from the credit.
- per invoice (``invoicing.invoice_totals``): subtotal = sum of the item lines' extended_amount;
  discount_total = sum of discount_amount; shipping_total = sum of the shipping lines' net_amount;
  tax_total = sum of tax_amount; restocking_fee_total = sum of the fee lines' line_total, never more than
  subtotal - discount_total (the net of the items credited); total = sum of the other lines' line_total -
  restocking_fee_total = subtotal - discount_total + shipping_total + tax_total - restocking_fee_total (tax not
  added with ``prices_include_tax``); prepaid_amount >= 0; amount_due = total - prepaid_amount.
- a credit note has positive amounts and quantities (what is credited, as ``invoicing.credit_lines`` makes
  them; its kind makes it a credit: BIG07 ``CR``, the PDF's title); negative amounts are refused, never
  guessed at.

X12 810 (:func:`x12_810`)
-------------------------
ASC X12 004010, one interchange per trading partner (the caller groups invoices by partner), one functional
group (GS01 ``IN``), one ST/SE 810 per invoice in invoice-id order. The envelope is the 856 writer's
(:mod:`som_pipeline.fulfilment.outbound`, whose segment writer, element cleaner and identifier rules are
reused): ``*`` elements, ``>`` components, ``~`` and a newline after each segment, fixed-width ISA, ISA13 =
IEA02 = ``control_number`` (nine digits), GS06 = GE02 = ``control_number``, ST02 = SE02 = ``0001``...,
ISA09/10 and GS04/05 ``now`` as given. Free text is cleaned (ASCII, separators removed, cut to the element's
length); an identifier holding a separator or too long raises :class:`OutboundError` (a changed id would
not match on the partner's side). Segments, in the order of the 004010 810 tables:

- ``BIG*<invoice date>*<invoice id>*<PO date>*<PO number>***<DI|CR>*00``: BIG04 = customer_po, else
  channel_order_ref (the 850's BEG03 when the order came by EDI); BIG07 (element 640, transaction type)
  ``DI`` debit invoice or ``CR`` credit memo; BIG08 ``00`` original. The corrected invoice is **not** in
  BIG10: in 004010 BIG10 is the *consolidated* invoice number ("BIG10 indicates the consolidated invoice
  number"), so a credit memo names its original in ``REF*OI`` (original invoice number), as the
  implementation guides that handle credit memos do.
- ``CUR*SE*<currency>`` when the currency is not USD (the selling party's currency, as the public sample).
- ``REF*VN*<order id>`` (vendor order number), ``REF*CO*<channel order ref>`` (customer order number)
  when it is not already BIG04, credit notes ``REF*OI*<original invoice>*<reason>``.
- ``N1*SE*<seller>``; ``N1*BT*<bill-to name>*91*<customer id>`` (91: code assigned by the seller); ``N1*ST``
  (the bill-to name when the ship-to has none) with ``N3``/``N4`` (N402 only for a two-letter region, as in
  the 856). The input has no bill-to address, and the seller's address is one free line, so neither is
  split into N3/N4; the seller's tax id is on the PDF only (its REF qualifier is a partner's choice).
- ``ITD*01*3****<net due date>*<net days>`` (basic terms, basis date 3 = invoice date, ITD06 net due date,
  ITD07 net days): invoices only (a credit memo has no payment terms). No cash discount is offered.
- ``DTM*011*<ship date>`` when the invoice carries ``ship_date``.
- per item line: ``IT1*<id>*<qty>*EA*<unit price>**VN*<sku>[*IN*<buyer part>][*UP|EN|UK*<GTIN>]`` (IT101 =
  the 850's PO1 assigned id ``channel_line_ref``, else our line number; IT104 an R decimal),
  ``PID*F****<description>``, and ``SAC*A*C310***<cents>*******02`` for a line discount (allowance, C310
  discount, SAC05 in cents, SAC12 02 off invoice). A receiver recomputes IT102 x IT104, so IT104 is the
  unit price when quantity x unit price rounds to the line's extended amount, else (a piece of a line split
  over invoices) the effective price extended / quantity to the fewest decimals that give the extended
  amount back. A price-correction credit line (quantity 0) is ``IT1*<id>*1*EA*<amount>``: one lot of the
  amount credited.
- ``TDS*<total in cents>``: TDS01 is the total invoice amount including charges, less allowances, before
  any terms discount (N2: implied two decimals, no point). TDS02 (the amount subject to terms discount) is
  required only when it differs from TDS01 for a terms discount; none is offered, so it is not sent.
- tax at **summary** level: one ``TXI*<tax_type>*<amount>*<rate>`` per tax rate (TXI02 the sum of the
  lines' tax_amount at that rate, an R decimal; TXI03 the rate as a decimal fraction, 0.0825 = 8.25 %, the
  reading of element 954 that later releases spell out). Summary rather than line level because shipping
  lines are charges, not IT1 lines, and the TXI of a line plus a summary TXI would be counted twice by a
  receiver adding both. ``tax_type`` (element 963) is an argument, ``ST`` sales tax by default (``VA`` for
  VAT). No TXI when the tax is zero.
- per shipping line: ``SAC*C*G830***<cents>**********<description>`` (charge, shipping and handling).
- per restocking fee line of a credit memo: ``SAC*A*G470***<cents>*******02***Restocking fee <sku>`` (G470
  restocking, SAC12 02 off invoice: deducted from the face of the document). On a credit memo every amount is
  a credit (BIG07 ``CR``): the items, the shipping charge credited (SAC ``C``), less the discount that was
  given (SAC ``A``) -- and less the restocking fee kept, which lowers the credit exactly as the discount does,
  so it is on the allowance side: a receiver adding IT1 - allowances + charges + TXI gets TDS01, the note's
  total net of the fee. (Written as a ``C`` it would be added to the credit the customer gets.) Summary level,
  like the shipping charge: one SAC per fee line; no IT1 (the fee has no units), not counted in CTT.
- ``CTT*<number of IT1>*<hash total of IT102>``, ``SE*<segments ST..SE>*<ST02>``.

So TDS01 = sum of IT102 x IT104 (per line, rounded to cents) - allowances + charges + TXI02, to the cent.
An invoice with ``prices_include_tax`` is refused: its TXI would be counted on top of prices that hold it
(X12 810 partners invoice tax-exclusive prices).
Amounts paid before the invoice (``prepaid_amount``) are not in the 810 (a payment is reported by the
payer's remittance, not the invoice): TDS01 is the invoice total.

PDF (:func:`invoice_pdf`)
-------------------------
An A4 invoice made with fpdf2: the seller's block (name, address, tax id), the title (``Invoice`` or
``Credit note``), number, dates, terms, PO / order / channel references (a credit note: the invoice it
corrects and the reason), bill-to and ship-to, a table of lines (SKU, description, quantity, unit price,
discount, net, tax rate, tax, total; a price correction and a restocking fee show no quantity or unit price; a
restocking fee's net and total are shown negative, "Restocking fee", as it is kept from the credit) whose header
repeats on every page, the totals block (subtotal, discount as a negative amount, shipping, tax, the restocking
fee as a negative amount when there is one, total, payments applied, amount due; a credit note's are "Total
credit" (net of the fee) and "Balance to credit"; with
``prices_include_tax`` the tax row reads "Tax (included in prices)" and is not added; every amount with its
currency code, e.g. ``1,234.56 USD``, at two decimals in every currency, as stored), and a footer
``<title> <number> - page i of n``.

Fonts: a Unicode TrueType font is used when one is found (``font_files``, else DejaVu Sans in the usual
system folders: fpdf2 bundles no TTF). A character the font has no glyph for (DejaVu has no CJK, e.g.
``株式会社``) is written as its accent-folded form when that is in the font, else as ``?``: fpdf2 would
otherwise drop it silently. With no TTF at all, the PDF core font (Helvetica, Latin-1) is used with the same
rule (``Zoë Ångström`` stays as is, ``Łódź`` becomes ``?ódz``). Same input, same bytes (with the same
fpdf2 and font file): the creation date is the invoice date (midnight UTC), and fpdf2's file id is a hash
of the content.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

# The 856 writer's envelope rules, cleaners and error (private there; see the module doc).
from som_pipeline.fulfilment.outbound import (
    OutboundError,
    _dec_text,
    _gtin,
    _ident,
    _Set,
    _text,
    open_interchange,
)
from som_pipeline.ingest.x12.ack997 import _Writer
from som_pipeline.iso_codes import CURRENCIES

__all__ = ["OutboundError", "CheckedInvoice", "check_invoice", "x12_810", "it1_quantity_price", "invoice_pdf",
           "money_text", "find_unicode_font"]

INVOICE_KINDS = ("invoice", "credit_note")
CREDIT_REASONS = ("RETURN", "PRICE_CORRECTION", "CANCELLATION")
LINE_KINDS = ("item", "shipping", "restocking_fee")
FEE_KIND = "restocking_fee"  # credit notes only: kept from the credit (billing.invoicing rule 7)
HEADER_MONEY = ("subtotal", "discount_total", "shipping_total", "tax_total", "total", "prepaid_amount",
                "amount_due")
LINE_MONEY = ("extended_amount", "discount_amount", "net_amount", "tax_amount", "line_total")

CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
EXTENDED_SLACK = Decimal("0.02")  # a cumulative share of a split line vs quantity x price (see the module doc)


# ------------------------------------------------------------------------------------------------
# Checking an invoice
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedInvoice:
    """One invoice whose arithmetic holds: its header and lines normalised (amounts as Decimals quantized
    to cents, unit prices to 4 places, dates as ``date``), lines in line-number order."""

    header: dict[str, Any]
    lines: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return str(self.header["invoice_id"])

    @property
    def is_credit(self) -> bool:
        return self.header["kind"] == "credit_note"

    @property
    def items(self) -> list[dict[str, Any]]:
        return [ln for ln in self.lines if ln["kind"] == "item"]

    @property
    def shipping(self) -> list[dict[str, Any]]:
        return [ln for ln in self.lines if ln["kind"] == "shipping"]

    @property
    def fees(self) -> list[dict[str, Any]]:
        """A credit note's restocking fee lines (deducted from the credit)."""
        return [ln for ln in self.lines if ln["kind"] == FEE_KIND]


def _one_row(invoice: Mapping[str, Any] | pl.DataFrame) -> dict[str, Any]:
    if isinstance(invoice, pl.DataFrame):
        if invoice.height != 1:
            raise OutboundError(f"expected one invoice row, got {invoice.height}")
        return invoice.row(0, named=True)
    return dict(invoice)


def _rows(frame: pl.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return frame.to_dicts() if isinstance(frame, pl.DataFrame) else [dict(r) for r in frame]


def _number(v: Any, what: str, places: int) -> Decimal:
    """An exact amount with at most ``places`` decimals, quantized to them (never a float)."""
    if v is None:
        raise OutboundError(f"{what}: missing")
    if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
        kind = "a float (money is Decimal, never float)" if isinstance(v, float) else f"not a Decimal ({v!r})"
        raise OutboundError(f"{what}: {kind}")
    d = Decimal(v)
    if not d.is_finite():
        raise OutboundError(f"{what}: {v!r} is not a number")
    step = Decimal(1).scaleb(-places)
    try:
        q = d.quantize(step)
    except InvalidOperation as e:
        raise OutboundError(f"{what}: {v!r} is too large") from e
    if q != d:
        raise OutboundError(f"{what}: {v!r} has more than {places} decimal places")
    return q


def _money(v: Any, what: str) -> Decimal:
    d = _number(v, what, 2)
    if d < 0:
        raise OutboundError(f"{what}: {d} is negative (a credit note is written with positive amounts)")
    return d


def _whole(v: Any, what: str, minimum: int) -> int:
    if isinstance(v, bool) or v is None or not isinstance(v, (int, Decimal)) or int(v) != v or int(v) < minimum:
        raise OutboundError(f"{what}: {v!r} is not a whole number >= {minimum}")
    return int(v)


def _date(v: Any, what: str, required: bool = True) -> date | None:
    if v is None:
        if required:
            raise OutboundError(f"{what}: missing")
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    raise OutboundError(f"{what}: {v!r} is not a date")


def _opt_str(v: Any) -> str | None:
    return None if v is None or str(v).strip() == "" else str(v).strip()


def _req_str(v: Any, what: str) -> str:
    s = _opt_str(v)
    if s is None:
        raise OutboundError(f"{what}: missing")
    return s


def _flag(v: Any, what: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise OutboundError(f"{what}: {v!r} is not true or false")
    return v


def _check_line(r: Mapping[str, Any], where: str, credit: bool, inclusive: bool) -> dict[str, Any]:
    ln = dict(r)
    no = _whole(r.get("line_no"), f"{where}: line_no", 1)
    w = f"{where} line {no}"
    ln["line_no"] = no
    if r.get("kind") not in LINE_KINDS:
        raise OutboundError(f"{w}: kind {r.get('kind')!r} is not one of {', '.join(LINE_KINDS)}")
    fee = r["kind"] == FEE_KIND
    if fee and not credit:
        raise OutboundError(f"{w}: a restocking fee line belongs on a credit note (it is kept from a credit)")
    ln["sku"] = _req_str(r.get("sku"), f"{w}: sku") if r["kind"] == "item" else _opt_str(r.get("sku"))
    ln["description"] = "" if r.get("description") is None else str(r["description"])
    for k in ("channel_line_ref", "buyer_part", "upc", "shipment_id"):
        ln[k] = _opt_str(r.get(k))
    if r.get("prices_include_tax") is not None and _flag(r["prices_include_tax"], f"{w}: prices_include_tax") != inclusive:
        raise OutboundError(f"{w}: prices_include_tax differs from the invoice's ({inclusive})")
    # quantity 0: a price correction on a credit note (an amount, no units)
    qty = ln["quantity"] = _whole(r.get("quantity"), f"{w}: quantity", 0 if credit else 1)
    if fee and qty:
        raise OutboundError(f"{w}: a restocking fee line has quantity 0 (an amount, no units), not {qty}")
    price = None if qty == 0 and r.get("unit_price") is None else _number(r.get("unit_price"), f"{w}: unit_price", 4)
    if price is not None and price < 0:
        raise OutboundError(f"{w}: unit_price {price} is negative")
    ln["unit_price"] = price
    for k in LINE_MONEY:
        ln[k] = _money(r.get(k), f"{w}: {k}")
    rate = r.get("tax_rate")
    if rate is not None:
        rate = _number(rate, f"{w}: tax_rate", 6)
        if not 0 <= rate < 1:
            raise OutboundError(f"{w}: tax_rate {rate} is not a fraction between 0 and 1 (0.0825 = 8.25 %)")
        rate = rate.normalize() if rate else Decimal(0)
    ln["tax_rate"] = rate
    if qty:
        product = qty * price
        if abs(ln["extended_amount"] - product) > EXTENDED_SLACK + qty * PRICE_STEP / 2:
            raise OutboundError(f"{w}: extended_amount {ln['extended_amount']} is not {qty} x {price} = "
                                f"{product.quantize(CENT, rounding=ROUND_HALF_UP)}")
    if ln["kind"] == "shipping" and ln["discount_amount"]:
        raise OutboundError(f"{w}: a shipping line has no discount (bill the discounted charge)")
    if fee and (ln["discount_amount"] or ln["tax_amount"] or rate):
        raise OutboundError(f"{w}: a restocking fee line is untaxed and has no discount (its net is the fee)")
    if ln["discount_amount"] > ln["extended_amount"]:
        raise OutboundError(f"{w}: discount {ln['discount_amount']} exceeds the extended amount "
                            f"{ln['extended_amount']}")
    if ln["net_amount"] != ln["extended_amount"] - ln["discount_amount"]:
        raise OutboundError(f"{w}: net_amount {ln['net_amount']} is not extended {ln['extended_amount']} - "
                            f"discount {ln['discount_amount']}")
    want = ln["net_amount"] if inclusive else ln["net_amount"] + ln["tax_amount"]
    if ln["line_total"] != want:
        rule = "net (prices include tax)" if inclusive else f"net {ln['net_amount']} + tax {ln['tax_amount']}"
        raise OutboundError(f"{w}: line_total {ln['line_total']} is not {rule}")
    return ln


def _lines_of(lines: pl.DataFrame | Sequence[Mapping[str, Any]], invoice_id: str, alone: bool
              ) -> list[dict[str, Any]]:
    if isinstance(lines, pl.DataFrame):
        if "invoice_id" in lines.columns:
            return lines.filter(pl.col("invoice_id") == invoice_id).to_dicts()
        rows = lines.to_dicts()
    else:
        rows = _rows(lines)
        if any("invoice_id" in r for r in rows):
            return [r for r in rows if r.get("invoice_id") == invoice_id]
    if not alone:
        raise OutboundError("lines need an invoice_id column when several invoices are written")
    return rows


def check_invoice(invoice: Mapping[str, Any] | pl.DataFrame,
                  lines: pl.DataFrame | Sequence[Mapping[str, Any]]) -> CheckedInvoice:
    """The invoice and its lines checked (see the module doc), or :class:`OutboundError` saying what is wrong.

    ``lines`` may hold other invoices' lines too when it has an ``invoice_id`` column (only this invoice's
    are taken)."""
    h = _one_row(invoice)
    iid = _req_str(h.get("invoice_id"), "invoice: invoice_id")
    where = f"invoice {iid}"
    h["invoice_id"] = iid
    if h.get("kind") not in INVOICE_KINDS:
        raise OutboundError(f"{where}: kind {h.get('kind')!r} is not one of {', '.join(INVOICE_KINDS)}")
    credit = h["kind"] == "credit_note"
    if credit:
        h["reference_invoice_id"] = _req_str(h.get("reference_invoice_id"),
                                             f"{where}: reference_invoice_id (the invoice a credit note corrects)")
        if h.get("reason") not in CREDIT_REASONS:
            raise OutboundError(f"{where}: reason {h.get('reason')!r} is not one of {', '.join(CREDIT_REASONS)}")
    h["invoice_date"] = _date(h.get("invoice_date"), f"{where}: invoice_date")
    h["due_date"] = _date(h.get("due_date"), f"{where}: due_date", required=not credit)
    h["po_date"] = _date(h.get("po_date"), f"{where}: po_date", required=False)
    h["ship_date"] = _date(h.get("ship_date"), f"{where}: ship_date", required=False)
    terms = h.get("payment_terms_days")
    if terms is not None or not credit:
        h["payment_terms_days"] = terms = _whole(terms, f"{where}: payment_terms_days", 0)
    if h["due_date"] is not None:
        if h["due_date"] < h["invoice_date"]:
            raise OutboundError(f"{where}: due_date {h['due_date']} is before invoice_date {h['invoice_date']}")
        if not credit and h["due_date"] != h["invoice_date"] + timedelta(days=terms):
            raise OutboundError(f"{where}: due_date {h['due_date']} is not invoice_date {h['invoice_date']} + "
                                f"{terms} days")
    cur = _req_str(h.get("currency"), f"{where}: currency").upper()
    if cur not in CURRENCIES:
        raise OutboundError(f"{where}: currency {h.get('currency')!r} is not an ISO 4217 code")
    h["currency"] = cur
    h["bill_to_name"] = _req_str(h.get("bill_to_name"), f"{where}: bill_to_name")
    h["seller_name"] = _req_str(h.get("seller_name"), f"{where}: seller_name")
    for k in HEADER_MONEY:
        h[k] = _money(h.get(k), f"{where}: {k}") if k != "amount_due" else _number(h.get(k), f"{where}: {k}", 2)
    # optional (0 when absent): a credit note's restocking fee, kept from the credit
    fee_total = h.get("restocking_fee_total")
    h["restocking_fee_total"] = Decimal("0.00") if fee_total is None else _money(fee_total,
                                                                                f"{where}: restocking_fee_total")
    if h["restocking_fee_total"] and not credit:
        raise OutboundError(f"{where}: restocking_fee_total {h['restocking_fee_total']} on an invoice (a fee is "
                            "kept from a credit note)")

    inclusive = h["prices_include_tax"] = _flag(h.get("prices_include_tax"), f"{where}: prices_include_tax")

    rows = _lines_of(lines, iid, alone=True)
    if not rows:
        raise OutboundError(f"{where}: no invoice lines")
    if not inclusive and any(r.get("prices_include_tax") is True for r in rows):
        inclusive = h["prices_include_tax"] = True  # stated on the lines only (invoicing carries it there)
    ls = sorted((_check_line(r, where, credit, inclusive) for r in rows), key=lambda ln: ln["line_no"])
    nos = [ln["line_no"] for ln in ls]
    if len(set(nos)) != len(nos):
        raise OutboundError(f"{where}: line numbers repeat ({nos})")

    def total(kind: str | None, col: str) -> Decimal:
        return sum((ln[col] for ln in ls if kind is None or ln["kind"] == kind), Decimal("0.00"))

    fees = total(FEE_KIND, "line_total")
    sums = {"subtotal": total("item", "extended_amount"), "discount_total": total(None, "discount_amount"),
            "shipping_total": total("shipping", "net_amount"), "tax_total": total(None, "tax_amount"),
            "restocking_fee_total": fees, "total": total(None, "line_total") - 2 * fees}
    for k, got in sums.items():
        if h[k] != got:
            raise OutboundError(f"{where}: {k} {h[k]} is not the lines' {got}")
    if fees > h["subtotal"] - h["discount_total"]:
        raise OutboundError(f"{where}: restocking fee {fees} exceeds the net of the items credited "
                            f"{h['subtotal'] - h['discount_total']}")
    built = (h["subtotal"] - h["discount_total"] + h["shipping_total"] + (0 if inclusive else h["tax_total"])
             - h["restocking_fee_total"])
    if built != h["total"]:  # holds whenever the line checks do; kept as the totals block's own statement
        raise OutboundError(f"{where}: total {h['total']} is not subtotal - discounts + shipping + tax - restocking "
                            f"fee = {built}")
    if h["amount_due"] != h["total"] - h["prepaid_amount"]:
        raise OutboundError(f"{where}: amount_due {h['amount_due']} is not total {h['total']} - prepaid "
                            f"{h['prepaid_amount']}")
    return CheckedInvoice(h, ls)


# ------------------------------------------------------------------------------------------------
# X12 810
# ------------------------------------------------------------------------------------------------
def _cents(d: Decimal) -> str:
    """An N2 amount: cents, no decimal point."""
    return str(int((d * 100).to_integral_exact()))


def _d8(d: date | None) -> str:
    return d.strftime("%Y%m%d") if d else ""


def it1_quantity_price(line: Mapping[str, Any]) -> tuple[int, Decimal]:
    """IT102 and IT104 for a checked item line: quantity x price rounds to the line's extended amount.

    The unit price when it does; else the effective price extended / quantity, to the fewest decimals (2 or
    more) that give the extended amount back; a quantity-0 price correction is one lot of its amount."""
    qty, ext, price = line["quantity"], line["extended_amount"], line["unit_price"]
    if qty == 0:
        return 1, ext
    if (qty * price).quantize(CENT, rounding=ROUND_HALF_UP) == ext:
        return qty, price
    places = 2
    while True:  # ends by places = 2 + digits of qty: then qty x 10^-places < 0.01
        p = (ext / qty).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if (qty * p).quantize(CENT, rounding=ROUND_HALF_UP) == ext:
            return qty, p
        places += 1


def x12_810(invoices: pl.DataFrame | Sequence[Mapping[str, Any]], lines: pl.DataFrame | Sequence[Mapping[str, Any]],
            *, sender_id: str, receiver_id: str, control_number: int, now: datetime, usage: str = "P",
            sender_qualifier: str = "ZZ", receiver_qualifier: str = "ZZ", gs_sender: str | None = None,
            gs_receiver: str | None = None, tax_type: str = "ST") -> str:
    """One X12 810 interchange (ISA..IEA) for one trading partner: one ST/SE 810 per invoice.

    ``sender_id``/``receiver_id`` are ISA06/ISA08 (``*_qualifier`` ISA05/ISA07); GS02/GS03 default to them.
    An invoice whose ``partner_id``/``receiver_id`` (or ``sender_id``) is set and is not the interchange's
    is refused (the caller grouped wrong). ``lines`` holds the lines of all the invoices, by ``invoice_id``.
    ``tax_type`` is TXI01 (element 963). See the module doc for each segment.
    """
    if not 1 <= control_number <= 999_999_999:
        raise OutboundError(f"control_number must be 1..999999999, got {control_number}")
    if usage not in ("P", "T"):
        raise OutboundError(f"usage must be P (production) or T (test), got {usage!r}")
    if not (len(tax_type) == 2 and tax_type.isalnum() and tax_type.isupper()):
        raise OutboundError(f"tax_type must be a two-character X12 tax type code, got {tax_type!r}")
    rows = _rows(invoices)
    if not rows:
        raise OutboundError("no invoices: an 810 interchange needs at least one")
    ids = [r.get("invoice_id") for r in rows]
    if len(set(ids)) != len(ids):
        raise OutboundError("an invoice id repeats in the invoices")
    for r in rows:
        for key, ours in (("partner_id", receiver_id), ("receiver_id", receiver_id), ("sender_id", sender_id)):
            if r.get(key) not in (None, "") and str(r[key]).strip() != ours.strip():
                raise OutboundError(f"invoice {r.get('invoice_id')}: {key} {r[key]!r} is not the interchange's "
                                    f"{ours!r}")
    checked = [check_invoice(r, _lines_of(lines, str(r.get("invoice_id") or "").strip(), alone=len(rows) == 1))
               for r in rows]
    w, icn, gcn = open_interchange("IN", sender_id=sender_id, receiver_id=receiver_id, control_number=control_number,
                                   now=now, usage=usage, sender_qualifier=sender_qualifier,
                                   receiver_qualifier=receiver_qualifier, gs_sender=gs_sender, gs_receiver=gs_receiver)
    checked.sort(key=lambda inv: inv.id)
    for k, inv in enumerate(checked, 1):
        _write_810_set(w, inv, f"{k:04d}", tax_type)
    w.seg("GE", len(checked), gcn)
    w.seg("IEA", 1, icn)
    return "".join(w.out)


def _write_810_set(w: _Writer, inv: CheckedInvoice, st02: str, tax_type: str) -> None:
    h = inv.header
    where = f"invoice {inv.id}"
    if h["prices_include_tax"]:
        raise OutboundError(f"{where}: prices include tax; an 810 adds its TXI to the line amounts (send "
                            "tax-exclusive prices)")
    st = _Set(w)
    st.seg("ST", "810", st02)
    po = _ident(h.get("customer_po") or h.get("channel_order_ref"), 22, f"{where}: BIG04 purchase order number",
                required=False)
    st.seg("BIG", _d8(h["invoice_date"]), _ident(inv.id, 22, f"{where}: BIG02 invoice number"), _d8(h["po_date"]),
           po, "", "", "CR" if inv.is_credit else "DI", "00")
    if h["currency"] != "USD":
        st.seg("CUR", "SE", h["currency"])
    if _opt_str(h.get("order_id")):
        st.seg("REF", "VN", _ident(h["order_id"], 30, f"{where}: order id"))
    channel_ref = _opt_str(h.get("channel_order_ref"))
    if channel_ref and channel_ref != po:
        st.seg("REF", "CO", _ident(channel_ref, 30, f"{where}: channel order ref"))
    if inv.is_credit:
        st.seg("REF", "OI", _ident(h["reference_invoice_id"], 30, f"{where}: reference invoice id"), h["reason"])
    st.seg("N1", "SE", _text(h["seller_name"], 60))
    customer = _ident(h.get("customer_id"), 80, f"{where}: customer id", required=False)
    st.seg("N1", "BT", _text(h["bill_to_name"], 60), "91" if customer else "", customer)
    if any(_opt_str(h.get(k)) for k in ("ship_to_name", "ship_to_address1", "ship_to_city")):
        st.seg("N1", "ST", _text(h.get("ship_to_name"), 60) or _text(h["bill_to_name"], 60))
        if _text(h.get("ship_to_address1"), 55):
            st.seg("N3", _text(h.get("ship_to_address1"), 55))
        region = _text(h.get("ship_to_region"), 3)
        st.seg("N4", _text(h.get("ship_to_city"), 30), region if len(region) == 2 else "",
               _text(h.get("ship_to_postal_code"), 15), _text(h.get("ship_to_country"), 3))
    if not inv.is_credit:
        st.seg("ITD", "01", "3", "", "", "", _d8(h["due_date"]), h["payment_terms_days"])
    if h["ship_date"]:
        st.seg("DTM", "011", _d8(h["ship_date"]))
    units = 0
    for ln in inv.items:
        lw = f"{where} line {ln['line_no']}"
        ids = ["VN", _ident(ln["sku"], 48, f"{lw}: SKU")]
        buyer = _ident(ln.get("buyer_part"), 48, f"{lw}: buyer part", required=False)
        if buyer:
            ids += ["IN", buyer]
        gtin = _gtin(ln.get("upc"), lw)
        if gtin:
            ids += list(gtin)
        qty, price = it1_quantity_price(ln)
        st.seg("IT1", _ident(ln["channel_line_ref"] or ln["line_no"], 20, f"{lw}: IT101"), qty, "EA",
               _dec_text(price), "", *ids)
        units += qty
        desc = _text(ln["description"], 80)
        if desc:
            st.seg("PID", "F", "", "", "", desc)
        if ln["discount_amount"] > 0:
            st.seg("SAC", "A", "C310", "", "", _cents(ln["discount_amount"]), *[""] * 6, "02")
    st.seg("TDS", _cents(h["total"]))
    by_rate: dict[Decimal | None, Decimal] = {}
    for ln in inv.lines:
        by_rate[ln["tax_rate"]] = by_rate.get(ln["tax_rate"], Decimal(0)) + ln["tax_amount"]
    for rate, amount in sorted(by_rate.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        if amount:
            st.seg("TXI", tax_type, _dec_text(amount), "" if rate is None else _dec_text(rate))
    for ln in inv.shipping:
        desc = _text(ln["description"], 80) or "Shipping and handling"
        st.seg("SAC", "C", "G830", "", "", _cents(ln["net_amount"]), *[""] * 9, desc)
    for ln in inv.fees:  # kept from the credit: it lowers TDS01, so it is on the allowance side (see the doc)
        desc = _text(" ".join(p for p in ("Restocking fee", ln["sku"]) if p), 80)
        st.seg("SAC", "A", "G470", "", "", _cents(ln["net_amount"]), *[""] * 6, "02", "", "", desc)
    st.seg("CTT", len(inv.items), units)
    st.seg("SE", st.count + 1, st02)


# ------------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------------
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF",
             "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
_LATIN1 = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100))

# Table columns: heading, width (mm), alignment. 186 mm = A4 width less 12 mm margins.
# The amount columns fit 1,234,567.80 on one line.
_COLUMNS = (("SKU", 24, "LEFT"), ("Description", 35, "LEFT"), ("Qty", 10, "RIGHT"), ("Unit price", 19, "RIGHT"),
            ("Discount", 18, "RIGHT"), ("Net", 22, "RIGHT"), ("Tax rate", 14, "RIGHT"), ("Tax", 20, "RIGHT"),
            ("Total", 24, "RIGHT"))
_REASONS = {"RETURN": "Return", "PRICE_CORRECTION": "Price correction", "CANCELLATION": "Cancellation"}


def money_text(amount: Decimal, currency: str | None = None) -> str:
    """An amount as shown on the PDF: thousands commas, two decimals, the currency code after it
    (``1,234.50 USD``). Exact: Decimal formatting, no float."""
    q = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    s = format(abs(q) if q == 0 else q, ",.2f")  # never "-0.00"
    return f"{s} {currency}" if currency else s


def _price_text(price: Decimal) -> str:
    """A unit price: two decimals, or up to four when it has them (19.99, 0.125, 2.4999)."""
    if price == price.quantize(CENT):
        return format(price.quantize(CENT), ",.2f")
    return format(price.quantize(PRICE_STEP).normalize(), ",f")


def _rate_text(rate: Decimal | None) -> str:
    return "" if rate is None else f"{_dec_text(rate * 100)}%"


def find_unicode_font() -> tuple[str, str] | None:
    """Regular and bold DejaVu Sans from the first of :data:`FONT_DIRS` holding both, else None."""
    for d in FONT_DIRS:
        paths = tuple(Path(d) / f for f in FONT_FILES)
        if all(p.is_file() for p in paths):
            return str(paths[0]), str(paths[1])
    return None


@lru_cache(maxsize=8)
def _coverage(path: str) -> frozenset[int]:
    """The code points a TrueType font has glyphs for."""
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def _printable(text: Any, covered: frozenset[int]) -> str:
    """``text`` with every character the font cannot draw replaced: by its accent-folded form when the font
    has that, else by ``?``; control characters and line breaks become spaces."""
    out = []
    for ch in "" if text is None else str(text):
        if ord(ch) in covered:
            out.append(ch)
        elif ch.isspace() or not ch.isprintable():
            out.append(" ")
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", ch)
                             if not unicodedata.combining(c) and ord(c) in covered)
            out.append(folded or "?")
    return "".join(out)


def _latin1_only(inv: CheckedInvoice) -> bool:
    """Every text of the invoice and its lines is in Latin-1 (what the PDF core fonts draw)."""
    texts = [v for v in inv.header.values() if isinstance(v, str)]
    texts += [v for ln in inv.lines for v in ln.values() if isinstance(v, str)]
    return all(ord(ch) < 256 for text in texts for ch in text)


def invoice_pdf(invoice: Mapping[str, Any] | pl.DataFrame, lines: pl.DataFrame | Sequence[Mapping[str, Any]], *,
                font_files: tuple[str, str] | None = None) -> bytes:
    """The invoice (or credit note) as an A4 PDF for people; see the module doc.

    ``font_files``: a regular and a bold TrueType font; default DejaVu Sans found by
    :func:`find_unicode_font`, else the PDF core font Helvetica (Latin-1 only).
    """
    from fpdf import FPDF
    from fpdf.enums import TableBordersLayout, XPos, YPos
    from fpdf.fonts import FontFace

    inv = check_invoice(invoice, lines)
    h, cur = inv.header, inv.header["currency"]
    # the core font when every character is Latin-1 (most invoices: no TrueType font to parse and subset, ~5x
    # faster); DejaVu Sans only when the text needs it
    fonts = font_files if font_files is not None else None if _latin1_only(inv) else find_unicode_font()
    title = "Credit note" if inv.is_credit else "Invoice"

    class _Doc(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(family, "", 7.5)
            self.set_text_color(90)
            self.cell(0, 5, t(f"{title} {inv.id} - page {self.page_no()} of {{nb}}"), align="C")

    pdf = _Doc(orientation="portrait", unit="mm", format="A4")
    if fonts:
        family = "InvoiceSans"
        pdf.add_font(family, "", fonts[0])
        pdf.add_font(family, "B", fonts[1])
        covered = _coverage(fonts[0]) & _coverage(fonts[1])
    else:
        family, covered = "helvetica", _LATIN1

    def t(v: Any) -> str:
        return _printable(v, covered)

    pdf.set_creation_date(datetime.combine(h["invoice_date"], time(0, 0), tzinfo=UTC))
    pdf.set_title(t(f"{title} {inv.id}"))
    pdf.set_author(t(h["seller_name"]))
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_page()
    left, width = pdf.l_margin, pdf.epw

    # Seller (left) and title with the document's numbers and references (right).
    pdf.set_xy(left, 12)
    pdf.set_font(family, "B", 12)
    pdf.multi_cell(100, 6, t(h["seller_name"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(family, "", 9)
    for text in (h.get("seller_address"), f"Tax ID: {h['seller_tax_id']}" if _opt_str(h.get("seller_tax_id")) else None):
        if _opt_str(text):
            pdf.multi_cell(100, 4.5, t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    y_seller = pdf.get_y()

    meta: list[tuple[str, str]] = [(f"{title} number", inv.id), ("Date", h["invoice_date"].isoformat())]
    if inv.is_credit:
        meta += [("Corrects invoice", h["reference_invoice_id"]), ("Reason", _REASONS[h["reason"]])]
    if h["due_date"] and not inv.is_credit:
        meta.append(("Due date", h["due_date"].isoformat()))
    if h.get("payment_terms_days") is not None and not inv.is_credit:
        meta.append(("Terms", f"Net {h['payment_terms_days']} days"))
    for label, key in (("Purchase order", "customer_po"), ("Order", "order_id"),
                       ("Channel order", "channel_order_ref"), ("Customer", "customer_id")):
        if _opt_str(h.get(key)):
            meta.append((label, str(h[key]).strip()))
    x_meta = left + 106
    pdf.set_xy(x_meta, 12)
    pdf.set_font(family, "B", 18)
    pdf.cell(width - 106, 9, t(title), align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.set_font(family, "", 8.5)
    label_w = max(pdf.get_string_width(t(label)) for label, _ in meta) + 3
    for label, value in meta:
        pdf.set_xy(x_meta, pdf.get_y())
        pdf.set_font(family, "", 8.5)
        pdf.set_text_color(90)
        pdf.cell(label_w, 4.5, t(label))
        pdf.set_text_color(0)
        pdf.set_font(family, "B", 8.5)
        pdf.multi_cell(width - 106 - label_w, 4.5, t(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # Bill to / ship to.
    y = max(y_seller, pdf.get_y()) + 6
    region_line = " ".join(str(v).strip() for v in (h.get("ship_to_city"), h.get("ship_to_region"),
                                                    h.get("ship_to_postal_code")) if _opt_str(v))
    blocks = (("Bill to", [h["bill_to_name"]]),
              ("Ship to", [h.get(k) for k in ("ship_to_name", "ship_to_address1")]
               + [region_line, h.get("ship_to_country")]))
    y_end = y
    for k, (label, rows) in enumerate(blocks):
        x = left + k * 93
        pdf.set_xy(x, y)
        pdf.set_font(family, "B", 9)
        pdf.cell(90, 5, t(label), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(family, "", 9)
        for row in rows:
            if _opt_str(row):
                pdf.multi_cell(90, 4.5, t(row), new_x=XPos.LEFT, new_y=YPos.NEXT)
        y_end = max(y_end, pdf.get_y())
    pdf.set_xy(left, y_end + 5)
    pdf.set_font(family, "", 8)
    pdf.cell(0, 5, t(f"Amounts in {cur}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # Lines: the heading row repeats on every page the table runs onto.
    pdf.set_font(family, "", 7.5)
    heading = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))
    with pdf.table(col_widths=tuple(c[1] for c in _COLUMNS), text_align=tuple(c[2] for c in _COLUMNS),
                   headings_style=heading, repeat_headings=1, line_height=4,
                   borders_layout=TableBordersLayout.HORIZONTAL_LINES, width=width) as table:
        table.row([c[0] for c in _COLUMNS])
        for ln in inv.lines:
            amount_only = ln["quantity"] == 0  # a price correction or a restocking fee: an amount, no units
            sign = -1 if ln["kind"] == FEE_KIND else 1  # the fee is kept from the credit: shown as a deduction
            desc = ln["description"] or ("Restocking fee" if sign < 0 else "")
            table.row([t(ln["sku"] or ""), t(desc), "" if amount_only else str(ln["quantity"]),
                       "" if amount_only else _price_text(ln["unit_price"]),
                       money_text(ln["discount_amount"]), money_text(sign * ln["net_amount"]),
                       _rate_text(ln["tax_rate"]), money_text(ln["tax_amount"]), money_text(sign * ln["line_total"])])

    # Totals, kept together on one page.
    totals = [("Subtotal", h["subtotal"], False), ("Discount", -h["discount_total"], False),
              ("Shipping", h["shipping_total"], False),
              ("Tax (included in prices)" if h["prices_include_tax"] else "Tax", h["tax_total"], False),
              *([("Restocking fee", -h["restocking_fee_total"], False)] if h["restocking_fee_total"] else []),
              ("Total credit" if inv.is_credit else "Total", h["total"], True),
              ("Payments applied", h["prepaid_amount"], False),
              ("Balance to credit" if inv.is_credit else "Amount due", h["amount_due"], True)]
    needed = 6 + 5.5 * len(totals)
    if pdf.get_y() + needed > pdf.page_break_trigger:
        pdf.add_page()
    pdf.ln(4)
    for label, amount, strong in totals:
        pdf.set_x(left + width - 100)
        pdf.set_font(family, "B" if strong else "", 9.5 if strong else 9)
        pdf.cell(55, 5.5, t(label))
        pdf.cell(45, 5.5, money_text(amount, cur), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
