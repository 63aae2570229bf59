"""Returns and closure: return requests and their RMAs, what came back and how it was graded, the money given back,
each order's closure state, and the nightly reconciliation's breaks."""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas.base import Money, Rate, TsUTC, _f, _Strict

RETURN_REASONS = ["DAMAGED", "WRONG_ITEM", "DEFECTIVE", "NOT_AS_DESCRIBED", "NO_LONGER_NEEDED", "SIZE_FIT", "OTHER"]
GRADES = ["restock", "refurbish", "scrap"]


class ReturnPolicyModel(_Strict):
    """``ref.return_policies``: return window, restocking fee and shipping refund per channel (or customer)."""

    channel: str = _f("Channel.")
    customer_id: str = _f("Customer, or '*' for the channel's default.")
    window_days: pl.Int64 = _f("Days after delivery a return may be requested.", ge=0)
    restocking_fee_rate: Rate = _f("Fee on the returned net when the reason is not the seller's fault.", ge=0, le=1)
    refund_shipping_on_fault: bool = _f("Refund the shipping charge when the seller is at fault and the whole "
                                        "order comes back.")
    non_returnable_categories: str = _f("Product categories that cannot be returned, '|'-separated.", nullable=True)

    class Config:
        strict = True
        unique = ["channel", "customer_id"]


class ReturnRequestModel(_Strict):
    """``core.return_requests``: every return request received, accepted (an RMA) or refused with a reason."""

    class Config:
        strict = True
        unique = ["request_id", "order_ref", "line_no", "sku"]

    request_id: str = _f("The sender's id, or a hash of its content (with the line: one RMA may have several).")
    source: str = _f("return_request | shopify_refund | amazon_fba_return | amazon_mfn_return.")
    order_id: str = _f("Our order (null: the reference matched none).", nullable=True)
    order_ref: str = _f("The order reference as sent.")
    line_no: pl.Int64 = _f("Order line (null: unknown).", nullable=True)
    sku: str = _f("SKU.", nullable=True)
    quantity: pl.Int64 = _f("Units asked back.", gt=0)
    reason: str = _f("Why the customer returns it.", isin=RETURN_REASONS, nullable=True)
    requested_at: TsUTC = _f("When asked.")
    customer_note: str = _f("The customer's words.", nullable=True)
    exchange_sku: str = _f("An exchange for this SKU (a new order line through capture).", nullable=True)
    status: str = _f("accepted | refused.", isin=["accepted", "refused"])
    rma_id: str = _f("RMA of an accepted request.", nullable=True)
    rma_line_no: pl.Int64 = _f("Line of the RMA.", nullable=True)
    refusal_code: str = _f("RETURN_WINDOW_CLOSED | RETURN_QTY_EXCEEDS_DELIVERED | ITEM_NOT_RETURNABLE | "
                           "UNKNOWN_ORDER_LINE | RETURN_NOT_DELIVERED.", nullable=True)
    refusal_message: str = _f("Why refused, in words.", nullable=True)
    source_file: str = _f("Landing file.")
    received_at: TsUTC = _f("When the run took it.")


class ReturnReceiptModel(_Strict):
    """``core.return_receipts``: what came back against an RMA and how it was graded."""

    receipt_id: str = _f("sha256 of file content position: stable across re-drops.", unique=True)
    rma_id: str = _f("RMA.")
    order_id: str = _f("Order.", nullable=True)
    line_no: pl.Int64 = _f("Order line.", nullable=True)
    sku: str = _f("SKU received.")
    quantity: pl.Int64 = _f("Units received.", gt=0)
    grade: str = _f("restock | refurbish | scrap.", isin=GRADES)
    warehouse_id: str = _f("Where.")
    outcome: str = _f("MATCHED | SHORT_RECEIVED | OVER_RECEIVED | WRONG_ITEM_RECEIVED | UNKNOWN_RMA.")
    received_at: TsUTC = _f("When received.")
    source_file: str = _f("Landing file.")


class RefundModel(_Strict):
    """``core.refunds``: money given back for returns -- a refund (prepaid channels) or a credit note (invoiced
    B2B orders); exact to the cent by the invoicing rules."""

    refund_id: str = _f("sha256 of RMA and invoice line.", unique=True)
    rma_id: str = _f("RMA.")
    order_id: str = _f("Order.")
    kind: str = _f("refund | credit_note.", isin=["refund", "credit_note"])
    invoice_id: str = _f("Invoice the units were billed on.", nullable=True)
    credit_note_id: str = _f("Credit note posted (kind credit_note).", nullable=True)
    currency: str = _f("Currency.")
    quantity: pl.Int64 = _f("Units.", ge=0)
    net_amount: Money = _f("Net credited.", ge=0)
    tax_amount: Money = _f("Tax credited.", ge=0)
    restocking_fee: Money = _f("Fee withheld.", ge=0)
    shipping_refund: Money = _f("Shipping refunded by the rule.", ge=0)
    refund_total: Money = _f("What the customer gets back.", ge=0)
    refunded_at: TsUTC = _f("When.")


class ChargebackModel(_Strict):
    """``core.chargebacks``: payments the payer's bank took back (card disputes, reversed debits), one row per
    dispute at its latest reported status (``landing/chargebacks``; ``billing.disputes``)."""

    chargeback_id: str = _f("<source>:<dispute id> (shopify | processor).", unique=True)
    source: str = _f("shopify | processor.", isin=["shopify", "processor"])
    dispute_ref: str = _f("The dispute's id at the channel or processor.", nullable=True)
    order_id: str = _f("Order whose payment is disputed.")
    kind: str = _f("chargeback (money taken back) | inquiry (no money moved).", isin=["chargeback", "inquiry"])
    amount: Money = _f("Money disputed.", gt=0)
    currency: str = _f("Currency of the dispute.")
    reason: str = _f("The issuer's reason as reported (fraudulent, product_not_received, ...).", nullable=True)
    network_reason_code: str = _f("Card network reason code.", nullable=True)
    status: str = _f("open | won | lost | accepted | refunded (the latest reported).",
                     isin=["open", "won", "lost", "accepted", "refunded"])
    channel_status: str = _f("The status as the source spelled it (needs_response, under_review, ...).")
    charged_back: Money = _f("Money out of our hands now: the amount for a chargeback open, lost, accepted or "
                             "refunded; 0 for an inquiry or a dispute won.", ge=0)
    opened_at: TsUTC = _f("When the dispute was opened.")
    resolved_at: TsUTC = _f("When it was decided (null: not yet).", nullable=True)
    evidence_due_at: TsUTC = _f("Evidence deadline (open disputes).", nullable=True)
    first_seen_at: TsUTC = _f("Run that first received it.")
    updated_at: TsUTC = _f("Run that last changed its status.")
    source_file: str = _f("File of the latest report.")
    location: str = _f("Its place in that file.")


class OrderClosureModel(_Strict):
    """``core.order_closure``: each order's quantities, money and derived statuses, and whether it is closed."""

    order_id: str = _f("Order.", unique=True)
    channel: str = _f("Channel.")
    delivery_status: str = _f("none | partial | full (net of returns).")
    invoicing_status: str = _f("nothing | partial | full | over.")
    payment_status: str = _f("not_paid | partial | in_payment | paid.")
    closed: bool = _f("Delivered, invoiced, paid (net of returns, credits, refunds) and its return window passed.")
    closed_at: TsUTC = _f("When it closed.", nullable=True)
    blocking: str = _f("Why not closed: DELIVERY_OPEN, INVOICE_OPEN, PAYMENT_OPEN, REFUND_OPEN, RETURN_WINDOW_OPEN.",
                       nullable=True)
    invoiced_amount: Money = _f("Σ invoices.")
    credited_amount: Money = _f("Σ credit notes.")
    paid_amount: Money = _f("Σ payments allocated to its invoices.")
    refunded_amount: Money = _f("Σ refunds.")
    charged_back_amount: Money = _f("Σ core.chargebacks.charged_back: payments taken back by the payer's bank.",
                                    nullable=True)
    hours_order_to_approval: float = _f("Order -> approval.", nullable=True)
    hours_approval_to_allocation: float = _f("Approval -> allocation.", nullable=True)
    hours_allocation_to_ship: float = _f("Allocation -> first shipment.", nullable=True)
    hours_ship_to_delivery: float = _f("First shipment -> last delivery.", nullable=True)
    hours_delivery_to_invoice: float = _f("Last delivery -> first invoice (negative: invoiced at shipment).",
                                          nullable=True)
    hours_invoice_to_payment: float = _f("First invoice -> paid.", nullable=True)
    hours_order_to_closed: float = _f("Order -> closed.", nullable=True)
    updated_at: TsUTC = _f("Last change.")


class OrderLineClosureModel(_Strict):
    """``core.order_line_closure``: each order line traced through every stage -- the units ordered, cancelled,
    allocated, picked, shipped, delivered, returned, invoiced and credited, the money invoiced and credited --
    and what is still open (``closure.status`` line rules). Payments and refunds settle invoices and RMAs, not
    lines: they are in ``core.order_closure`` per order."""

    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.")
    ordered_qty: pl.Int64 = _f("Units ordered.", ge=0)
    cancelled_qty: pl.Int64 = _f("Units cancelled (a cancelled order: what did not ship).", ge=0)
    allocated_qty: pl.Int64 = _f("Units allocated to a warehouse.", ge=0)
    picked_qty: pl.Int64 = _f("Units picked.", ge=0)
    shipped_qty: pl.Int64 = _f("Units shipped.", ge=0)
    delivered_qty: pl.Int64 = _f("Units delivered (carrier's proof of delivery).", ge=0)
    returned_qty: pl.Int64 = _f("Units received back (matched, short or over receipts).", ge=0)
    invoiced_qty: pl.Int64 = _f("Units on invoices.", ge=0)
    credited_qty: pl.Int64 = _f("Units on credit notes.", ge=0)
    invoiced_amount: Money = _f("Σ the line's invoice lines (line totals).")
    credited_amount: Money = _f("Σ its credit-note lines, net of restocking fees kept.")
    due_qty: pl.Int64 = _f("ordered - cancelled: what the customer still wants.", ge=0)
    net_delivered_qty: pl.Int64 = _f("delivered - returned: what the customer holds.", ge=0)
    billable_qty: pl.Int64 = _f("min(shipped, due) - returned.", ge=0)
    net_invoiced_qty: pl.Int64 = _f("invoiced - credited.")
    open_delivery_qty: pl.Int64 = _f("Units still to deliver (a return discharges delivery).", ge=0)
    open_invoice_qty: pl.Int64 = _f("billable - net invoiced: > 0 to invoice, < 0 to credit.")
    open_qty: pl.Int64 = _f("open_delivery + |open_invoice|: 0 when nothing is left to do on the line.", ge=0)
    delivery_status: str = _f("none | partial | full (net of returns).", isin=["none", "partial", "full"])
    invoicing_status: str = _f("nothing | partial | full | over.", isin=["nothing", "partial", "full", "over"])
    updated_at: TsUTC = _f("Last change.")

    class Config:
        strict = True
        unique = ["order_id", "line_no"]


class ReconciliationBreakModel(_Strict):
    """``ops.reconciliation_breaks``: what the nightly reconciliation found wrong, carried from night to night
    (never re-created) until it clears."""

    break_id: str = _f("sha256 of type, key and first_seen.", unique=True)
    break_type: str = _f("What is wrong (SHIPPED_NOT_INVOICED, DELIVERED_NOT_PAID, ...).")
    key: str = _f("The document or entity it is about.")
    order_id: str = _f("Order, when there is one.", nullable=True)
    amount: Money = _f("Money at stake.", nullable=True)
    quantity: pl.Int64 = _f("Units at stake.", nullable=True)
    owner_queue: str = _f("Who fixes it.")
    detail: str = _f("What, in words.")
    first_seen: TsUTC = _f("First night it was found.")
    last_seen: TsUTC = _f("Last night it was still there.")
    age_days: pl.Int64 = _f("Days since first seen.", ge=0)
    resolved_at: TsUTC = _f("When it cleared (null: open).", nullable=True)
