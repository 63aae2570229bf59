"""Billing: invoices on what shipped, credit notes, payments from bank files and channel captures, their
allocation to invoices, and the receivables (the open items the credit check reads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pandera.polars as pa
import polars as pl

from som_pipeline.schemas.base import Money, Rate, TsUTC, UnitPrice, _f, _Strict

Net8 = Annotated[pl.Decimal, 38, 8]
Tax14 = Annotated[pl.Decimal, 38, 14]

BASES = ["shipment", "delivery"]
LINE_KINDS = ["item", "shipping"]
#: Credit-note lines: the invoice's kinds, and the restocking fee a RETURN note keeps (billing.invoicing rule 7).
CREDIT_LINE_KINDS = [*LINE_KINDS, "restocking_fee"]
TAX_SOURCES = ["channel", "table", "none"]
CREDIT_REASONS = ["RETURN", "PRICE_CORRECTION", "CANCELLATION"]
PAYMENT_SOURCES = ["bank", "payout", "channel_capture"]
MATCH_METHODS = ["REFERENCE", "REFERENCE_FUZZY", "AMOUNT_CUSTOMER", "SUBSET", "PARTIAL", "MANUAL", "PREPAYMENT"]
PAYMENT_STATES = ["not_paid", "partial", "in_payment", "paid", "over_paid", "written_off"]


# --- reference ----------------------------------------------------------------------------------
class TaxRateModel(_Strict):
    """``ref.tax_rates``: sales tax / VAT rates by jurisdiction and product tax class, with validity. The most
    specific row wins: a postal prefix over a region over the country ('*' = any)."""

    jurisdiction: str = _f("Name of the jurisdiction (e.g. 'US-TX Austin', 'DE').")
    country: str = _f("Country (ISO 3166-1 alpha-2).", str_length={"min_value": 2, "max_value": 2})
    region: str = _f("Region / state code, or '*' for the whole country.")
    postal_prefix: str = _f("Postal-code prefix, or '*' for the whole region.")
    tax_class: str = _f("Product tax class (ref.products.tax_class; 'shipping' for shipping charges).")
    rate: Rate = _f("Rate (0.0825 = 8.25 %).", ge=0, le=1)
    valid_from: pl.Date = _f("First day the rate applies.")
    valid_to: pl.Date = _f("Last day it applies (null: until further notice).", nullable=True)

    class Config:
        strict = True
        unique = ["country", "region", "postal_prefix", "tax_class", "valid_from"]


class BillingPolicyModel(_Strict):
    """``ref.billing_policies``: how a channel's (or one customer's) orders are billed. A customer's own row wins
    over its channel's ('*'); a channel without a row: the defaults of ``billing.config``."""

    channel: str = _f("Channel.")
    customer_id: str = _f("Customer, or '*' for every customer of the channel.")
    basis: str = _f("'shipment': invoice when it ships; 'delivery': when tracking says it was delivered.",
                    isin=BASES)
    prepaid: bool = _f("The channel captured the payment at order time (Shopify paid, Amazon): recorded as a "
                       "payment and applied to the invoices it covers.")
    legal_entity: str = _f("The legal entity that invoices (ref.legal_entities).")

    class Config:
        strict = True
        unique = ["channel", "customer_id"]


class LegalEntityModel(_Strict):
    """``ref.legal_entities``: who invoices: name and address on the invoice, the numbering series."""

    legal_entity: str = _f("Code used in invoice numbers (INV-<code>-<year>-<seq>).", unique=True,
                           str_matches=r"^[A-Z0-9]{2,8}$")
    name: str = _f("Legal name.")
    address: str = _f("Address on one line.")
    tax_id: str = _f("VAT / tax id.", nullable=True)
    edi_id: str = _f("Our X12 interchange id (ISA06 of the 810s).", nullable=True)


class CustomerBankAccountModel(_Strict):
    """``ref.customer_bank_accounts``: the accounts customers pay from (the payer's account names the customer)."""

    account: str = _f("IBAN or account number, upper case without spaces.", unique=True)
    customer_id: str = _f("ref.customers.customer_id")
    holder_name: str = _f("Account holder as the bank shows it.", nullable=True)


# --- invoices and credit notes --------------------------------------------------------------------
class _Totals(_Strict):
    subtotal: Money = _f("Σ extended amounts of the item lines.")
    discount_total: Money = _f("Σ line discounts.")
    shipping_total: Money = _f("Σ shipping lines' net.")
    tax_total: Money = _f("Σ line taxes.")
    total: Money = _f("Σ line totals (= subtotal - discount + shipping + tax, or without the tax when prices "
                      "include it; a credit note's restocking fee lines are subtracted, not added): the sum of "
                      "the rounded lines, never rounded again.")
    line_count: pl.Int64 = _f("Lines.", ge=1)


class InvoiceModel(_Totals):
    """``core.invoices``: posted invoices (immutable: a correction is a credit note)."""

    invoice_id: str = _f("Number: INV-<legal entity>-<year>-<6-digit sequence>, gapless per entity and year.",
                         unique=True)
    legal_entity: str = _f("Issuing legal entity.")
    fiscal_year: pl.Int32 = _f("Year of the numbering series (the invoice date's year).")
    seq: pl.Int64 = _f("Sequence number within entity and year (1, 2, ... with no gap).", ge=1)
    shipment_id: str = _f("The shipment it bills (one invoice per shipment).", unique=True)
    order_id: str = _f("Order.")
    channel: str = _f("Channel.")
    customer_id: str = _f("Customer (null: a consumer the channel does not name).", nullable=True)
    currency: str = _f("Currency of the order.")
    basis: str = _f("shipment | delivery: what triggered it.", isin=BASES)
    prepaid: bool = _f("Paid at the channel before shipment (the capture is applied to it).")
    invoice_date: pl.Date = _f("Invoice date (the ship or delivery date).")
    due_date: pl.Date = _f("invoice_date + the customer's payment terms (prepaid: the invoice date).")
    issued_at: TsUTC = _f("When the run posted it.")


class InvoiceLineModel(_Strict):
    """``core.invoice_lines``: each traced to the shipment line (order line) it bills."""

    invoice_id: str = _f("core.invoices.invoice_id")
    line_no: pl.Int64 = _f("Line within the invoice.", ge=1)
    kind: str = _f("item | shipping.", isin=LINE_KINDS)
    order_id: str = _f("Order.")
    order_line_no: pl.Int64 = _f("Order line billed (null: the shipping line).", nullable=True)
    shipment_id: str = _f("Shipment whose units it bills.")
    sku: str = _f("SKU (null: shipping).", nullable=True)
    description: str = _f("Description.", nullable=True)
    quantity: pl.Int64 = _f("Units billed (shipping: 1).", ge=1)
    unit_price: UnitPrice = _f("Unit price of the order line.", nullable=True)
    first_unit: pl.Int64 = _f("Cumulative units of the order line billed before this line (c0 of the rule).",
                              ge=0)
    extended_amount: Money = _f("Rule 1: cumulative share of the order line's amount.")
    discount_amount: Money = _f("Rule 2: cumulative share of the order line's discount.", ge=0)
    net_amount: Money = _f("extended - discount.")
    tax_rate: Rate = _f("Rate applied (table) or stated (channel).", nullable=True)
    tax_amount: Money = _f("Rule 4.", ge=0)
    line_total: Money = _f("net + tax (net when prices include tax).")
    tax_source: str = _f("channel | table | none.", isin=TAX_SOURCES)
    tax_jurisdiction: str = _f("ref.tax_rates.jurisdiction of a table rate.", nullable=True)
    net_unrounded: Net8 = _f("extended x (1 - discount rate) before rounding (else net).")
    tax_unrounded: Tax14 = _f("net_unrounded x tax rate before rounding (else tax).")

    class Config:
        strict = True
        unique = ["invoice_id", "line_no"]


class CreditNoteModel(_Totals):
    """``core.credit_notes``: corrections of posted invoices, each linked to the invoice and the reason."""

    credit_note_id: str = _f("Number: CN-<legal entity>-<year>-<6-digit sequence>, gapless per entity and year.",
                             unique=True)
    legal_entity: str = _f("Issuing legal entity (the invoice's).")
    fiscal_year: pl.Int32 = _f("Year of the numbering series.")
    seq: pl.Int64 = _f("Sequence within entity and year.", ge=1)
    invoice_id: str = _f("The invoice it corrects.")
    reason: str = _f("RETURN | PRICE_CORRECTION | CANCELLATION.", isin=CREDIT_REASONS)
    source_ref: str = _f("What asked for it: the correction file and line, or the cancelled order.", unique=True)
    order_id: str = _f("Order.")
    customer_id: str = _f("Customer.", nullable=True)
    currency: str = _f("Currency (the invoice's).")
    credit_date: pl.Date = _f("Date of the credit note.")
    issued_at: TsUTC = _f("When the run posted it.")
    note: str = _f("Why, in words.", nullable=True)
    restocking_fee_total: Money = _f("Σ restocking fee lines (RETURN notes; 0 otherwise): kept from the credit, "
                                     "so total = subtotal - discount + shipping + tax - restocking_fee_total.",
                                     ge=0, backfill=Decimal("0.00"))

    @pa.dataframe_check(description="the restocking fee never exceeds the net of the items credited")
    def fee_within_credit(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("restocking_fee_total") <= pl.col("subtotal") - pl.col("discount_total"))


class CreditNoteLineModel(_Strict):
    """``core.credit_note_lines``: what each credit note credits, line by invoice line (amounts positive); a
    RETURN note's restocking fee is a line of kind ``restocking_fee`` (positive too: the kind makes it a
    deduction from the credit)."""

    credit_note_id: str = _f("core.credit_notes.credit_note_id")
    line_no: pl.Int64 = _f("Line within the credit note.", ge=1)
    invoice_id: str = _f("Invoice.")
    invoice_line_no: pl.Int64 = _f("Invoice line credited (a restocking fee: the item line it is charged on).",
                                   ge=1)
    kind: str = _f("item | shipping (credited) | restocking_fee (kept from the credit of the item line: "
                   "billing.invoicing rule 7).", isin=CREDIT_LINE_KINDS)
    sku: str = _f("SKU.", nullable=True)
    quantity: pl.Int64 = _f("Units credited (0: a price correction, a restocking fee).", ge=0)
    extended_amount: Money = _f("Credited extended amount (a fee: the fee).", ge=0)
    discount_amount: Money = _f("Credited discount.", ge=0)
    net_amount: Money = _f("Credited net (a fee: the fee).", ge=0)
    tax_amount: Money = _f("Credited tax (a fee: 0, untaxed).", ge=0)
    line_total: Money = _f("Credited total (a fee: the amount deducted from the note's total).", ge=0)

    class Config:
        strict = True
        unique = ["credit_note_id", "line_no"]

    @pa.dataframe_check(description="a restocking fee line is an untaxed amount: no units, no discount, no tax, "
                                    "extended = net = line total")
    def fee_lines_are_untaxed_amounts(cls, data) -> pl.LazyFrame:
        fee = pl.col("kind") == "restocking_fee"
        ok = ((pl.col("quantity") == 0) & (pl.col("discount_amount") == 0) & (pl.col("tax_amount") == 0)
              & (pl.col("net_amount") == pl.col("extended_amount")) & (pl.col("line_total") == pl.col("net_amount")))
        return data.lazyframe.select(~fee | ok)


# --- money in -------------------------------------------------------------------------------------
class BankStatementModel(_Strict):
    """``core.bank_statements``: every statement (and channel payout) received, with its balance check."""

    statement_id: str = _f("The file's statement reference (or a hash of account, date and sequence).",
                           unique=True)
    format: str = _f("mt940 | bai2 | camt053 | shopify_payout | amazon_settlement.")
    account: str = _f("Our account (or the channel's payout id).")
    currency: str = _f("Currency.")
    statement_date: pl.Date = _f("Statement date.")
    opening_balance: Money = _f("Opening balance (signed).")
    closing_balance: Money = _f("Closing balance (signed).")
    entries_total: Money = _f("Σ signed entries.")
    balanced: bool = _f("opening + Σ entries = closing.")
    source_file: str = _f("Landing file.")
    received_at: TsUTC = _f("When the run read it.")


class BankLineModel(_Strict):
    """``core.bank_lines``: every money movement of the statements and payouts, as received (credits and debits)."""

    line_id: str = _f("sha256 of format, account, statement, position, amount, date: stable across re-drops.",
                      unique=True)
    statement_id: str = _f("core.bank_statements.statement_id")
    format: str = _f("Format.")
    account: str = _f("Account.")
    currency: str = _f("Currency.")
    amount: Money = _f("Signed: money in positive.")
    booking_date: pl.Date = _f("Booking date.")
    value_date: pl.Date = _f("Value date.", nullable=True)
    bank_reference: str = _f("Bank's reference.", nullable=True)
    end_to_end_id: str = _f("End-to-end id.", nullable=True)
    payer_name: str = _f("Counterparty name.", nullable=True)
    payer_account: str = _f("Counterparty account (normalised).", nullable=True)
    remittance: str = _f("Remittance text.", nullable=True)
    kind: str = _f("credit | debit | charge | refund | fee | adjustment | dispute | reserve | payout ...")
    order_ref: str = _f("Payout lines: the channel's order id.", nullable=True)
    fee: Money = _f("Fee withheld on the line (payouts).")
    source_file: str = _f("Landing file.")
    location: str = _f("Where in the file.")
    received_at: TsUTC = _f("When the run read it.")


class PaymentModel(_Strict):
    """``core.payments``: money received for invoices -- bank credits from customers, and the channels' captures
    of prepaid orders."""

    payment_id: str = _f("The bank line id, or CAP-<order id> for a channel capture.", unique=True)
    source: str = _f("bank | channel_capture.", isin=PAYMENT_SOURCES)
    currency: str = _f("Currency.")
    amount: Money = _f("Amount received.", gt=0)
    value_date: pl.Date = _f("Value date (capture: the order date).")
    payer_name: str = _f("Payer as the bank names it.", nullable=True)
    payer_account: str = _f("Payer's account.", nullable=True)
    remittance: str = _f("Remittance text.", nullable=True)
    end_to_end_id: str = _f("End-to-end id.", nullable=True)
    order_id: str = _f("Channel capture: the order it paid.", nullable=True)
    cleared: bool = _f("On a bank statement (a channel capture clears when the payout that carries it is banked).")
    received_at: TsUTC = _f("When the run recorded it.")


class PaymentAllocationModel(_Strict):
    """``core.payment_allocations``: what each payment pays, with the decision explained and scored."""

    allocation_id: str = _f("sha256 of payment, item and method.", unique=True)
    payment_id: str = _f("core.payments.payment_id")
    item_id: str = _f("Invoice number (or an opening open item's id).")
    customer_id: str = _f("Customer.", nullable=True)
    currency: str = _f("Currency.")
    amount: Money = _f("Amount applied.", gt=0)
    method: str = _f("REFERENCE | REFERENCE_FUZZY | AMOUNT_CUSTOMER | SUBSET | PARTIAL | MANUAL | PREPAYMENT.",
                     isin=MATCH_METHODS)
    score: float = _f("Confidence 0..1.", ge=0, le=1)
    explanation: str = _f("Why, in words.")
    allocated_at: TsUTC = _f("When.")


class PaymentSuspenseModel(_Strict):
    """``core.payment_suspense``: payments the matcher could not place with confidence, with their best
    candidates; carried from run to run (retried as invoices arrive) until matched or decided."""

    payment_id: str = _f("Payment.", unique=True)
    currency: str = _f("Currency.")
    amount: Money = _f("Amount in suspense.", gt=0)
    reason: str = _f("Why it is not matched.")
    candidates: str = _f("JSON list of the top candidates: invoice, customer, score, why.", nullable=True)
    first_seen_at: TsUTC = _f("When it entered suspense.")
    last_tried_at: TsUTC = _f("Last run that tried it.")


class CustomerCreditModel(_Strict):
    """``core.customer_credits``: money received beyond what it paid (overpayments, manual credits), held for the
    customer."""

    payment_id: str = _f("Payment.")
    customer_id: str = _f("Customer.", nullable=True)
    currency: str = _f("Currency.")
    amount: Money = _f("Amount held.", gt=0)
    reason: str = _f("OVERPAYMENT | MANUAL_CREDIT | ...")
    created_at: TsUTC = _f("When.")

    class Config:
        strict = True
        unique = ["payment_id", "reason"]


class WriteOffModel(_Strict):
    """``core.write_offs``: residuals written off (short payments within tolerance, manual write-offs)."""

    item_id: str = _f("Invoice (or opening item).")
    payment_id: str = _f("The payment that left it short.", nullable=True)
    currency: str = _f("Currency.")
    amount: Money = _f("Written off.", gt=0)
    reason: str = _f("SHORT_PAYMENT_TOLERANCE | MANUAL_WRITE_OFF.")
    written_off_at: TsUTC = _f("When.")

    class Config:
        strict = True
        unique = ["item_id", "payment_id", "reason"]


class AROpenItemModel(_Strict):
    """``core.ar_open_items``: the receivables -- every invoice (and opening item of ``ref.open_items``) with what
    is still owed; the credit check's exposure and overdue rules read it."""

    item_id: str = _f("Invoice number, or the opening item's id.", unique=True)
    kind: str = _f("invoice | opening.", isin=["invoice", "opening"])
    customer_id: str = _f("Customer.", nullable=True)
    currency: str = _f("Currency.")
    amount: Money = _f("Invoiced (opening: open at go-live).")
    credited: Money = _f("Σ credit notes.", ge=0)
    paid: Money = _f("Σ payment allocations.", ge=0)
    in_payment: Money = _f("Part of paid whose money is not on a bank statement yet (channel captures).", ge=0)
    written_off: Money = _f("Σ write-offs.", ge=0)
    residual: Money = _f("amount - credited - paid - written_off (negative: over-paid).")
    invoice_date: pl.Date = _f("Invoice date.")
    due_date: pl.Date = _f("Due date.")
    payment_state: str = _f("not_paid | partial | in_payment (paid, but not all on a bank statement) | paid | "
                            "over_paid | written_off.", isin=PAYMENT_STATES)
    updated_at: TsUTC = _f("Last change.")


class DocumentNumberModel(_Strict):
    """``ops.document_numbers``: the last number used per legal entity, document kind and year (advanced in the
    transaction that posts the documents: no gap, no reuse)."""

    legal_entity: str = _f("Legal entity.")
    kind: str = _f("invoice | credit_note.")
    fiscal_year: pl.Int32 = _f("Year.")
    last_seq: pl.Int64 = _f("Last sequence number used.", ge=0)

    class Config:
        strict = True
        unique = ["legal_entity", "kind", "fiscal_year"]
