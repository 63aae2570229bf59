"""Quarantine reason codes: every rejected record carries exactly one of these, plus a human message.

The table is the single source for the codes: parsers refer to the constants, the data dictionary
lists them, and a test checks that every code a parser can emit is listed here.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # --- whole file ------------------------------------------------------------------------
    "EMPTY_FILE": "The file has no content (zero bytes or only whitespace).",
    "BAD_ENCODING": "The bytes are not text in a supported encoding (UTF-8, UTF-8 with BOM, UTF-16 with BOM, Windows-1252/latin-1).",
    "INVALID_JSON": "The file is not valid JSON (syntax error or truncated).",
    "UNSUPPORTED_DOCUMENT": "Valid, but not an order document this channel ingests (e.g. a Shopify refund, an X12 810).",
    "UNREADABLE_FILE": "The file could not be read or parsed at all (the message says why).",
    # --- X12 -------------------------------------------------------------------------------
    "X12_SYNTAX": "X12 structure is broken: bad ISA header, unknown separators, a missing segment terminator, a segment outside an envelope.",
    "X12_SEGMENT_COUNT": "SE01 (number of segments in the transaction set) does not match the segments received.",
    "X12_CONTROL_NUMBER": "An envelope trailer's control number does not match its header (SE02/ST02, GE02/GS06, IEA02/ISA13).",
    "X12_ENVELOPE_COUNT": "GE01 or IEA01 (number of sets or groups) does not match what was received. An envelope "
    "problem: reported in the 997 and ops.edi_acks.envelope_errors; the sound sets inside are kept.",
    "X12_UNSUPPORTED_SET": "A transaction set other than 850 (purchase order) that no reader takes (214 carrier status "
    "messages are routed to tracking instead): acknowledged as not supported, not ingested.",
    "X12_VERSION_UNSUPPORTED": "An 850 in an X12 version the reader does not map (GS08, or ST03 when it names one; "
    "supported: 003040-003070, 004010-004060, 005010): acknowledged as version not supported (997 AK5 code 1, "
    "AK9 code 2), not ingested.",
    "X12_DUPLICATE_INTERCHANGE": "An interchange whose control number (ISA13) its sender (ISA05/ISA06) already "
    "used in an interchange received before: its sets are not captured again; answered with a TA1 note 025 "
    "(duplicate interchange control number), not a second 997; ops.edi_acks.duplicate_of names the first.",
    # --- CSV / Parquet template ------------------------------------------------------------
    "CSV_MISSING_COLUMN": "The file header lacks a required template column.",
    "CSV_MISSING_FIELDS": "The row has fewer fields than the header.",
    "CSV_EXTRA_FIELDS": "The row has more fields than the header.",
    "CSV_MALFORMED_ROW": "The row cannot be split into fields (unterminated quote, invalid characters).",
    # --- fields (every channel) ------------------------------------------------------------
    "MISSING_FIELD": "A required field is empty or absent.",
    "BAD_QUANTITY": "Quantity is not a positive whole number.",
    "BAD_PRICE": "Unit price is not a positive decimal with at most 4 decimal places.",
    "BAD_AMOUNT": "A money amount (discount, tax, shipping, total) is not a valid non-negative decimal with at most 2 places.",
    "BAD_RATE": "A percentage or rate is not a decimal between 0 and 1 (or 0 and 100 for *_pct).",
    "UNKNOWN_CURRENCY": "The currency is not an active ISO 4217 code.",
    "CURRENCY_MISMATCH": "Amounts of one order are in different currencies.",
    "BAD_DATE": "A date or timestamp is not a real calendar date/time in a supported format.",
    "BAD_LINE_NO": "A stated line number is not a positive whole number.",
    "DUPLICATE_LINE": "A line number appears more than once in an order (identical copies are dropped; conflicting ones reject the order).",
    "INCONSISTENT_HEADER": "Rows of one order disagree on an order-level field (customer, date, currency, ship-to...).",
    "ORDER_INCOMPLETE": "Another record of the same order was rejected: orders are captured whole or not at all.",
    "NO_LINES": "The order has no lines.",
    # --- manual decisions ($SOM_HOME/landing/approvals) -------------------------------------
    "UNKNOWN_ORDER": "A manual decision names an order that does not exist.",
    "HOLD_NOT_OPEN": "A manual decision names an order (or hold) that is not on hold: already approved, rejected, released or cancelled.",
    "BAD_DECISION": "A manual decision is not 'approve' or 'reject', or names an unknown hold code.",
    # --- reference data --------------------------------------------------------------------
    "REF_BAD_VALUE": "A reference-data value cannot be read as its column's type.",
    "REF_CHECK_FAILED": "A reference-data row breaks a rule of its model (range, allowed values...).",
    "REF_DUPLICATE_KEY": "Two reference rows share a key: the last one in the file is kept, the earlier copies "
    "are quarantined (the message names the kept line).",
    "REF_SHRINK_REFUSED": "A reference file would empty its table or shrink it by more than SOM_REF_MAX_SHRINK: "
    "refused as a whole, the previous table is kept.",
    # --- fulfilment feeds: scanner events (landing/scans) and receipts (landing/receipts) -----------
    "BAD_ACTION": "A scanner event's action is neither 'pick' nor 'short'.",
    "BAD_BARCODE": "A barcode is not a GTIN: not digits only, not 8/12/13/14 digits (EAN-8, UPC-A, EAN-13, "
    "GTIN-14), or its GS1 check digit fails.",
    "BAD_RECEIPT_KIND": "A receipt's kind is neither 'po' (purchase order) nor 'transfer'.",
    "DUPLICATE_SCAN": "A scan_id already processed from an earlier file, or repeated within the batch: the first "
    "copy counts, later copies are quarantined (counted, never applied twice).",
    "UNKNOWN_TASK": "A scan names a pick task that does not exist, or one of another warehouse than the scanner's.",
    "TASK_CLOSED": "A scan for a pick task that is not open at its turn: picked, closed short or cancelled before, "
    "or closed by an earlier scan of the same batch.",
    "UNKNOWN_PRODUCT": "A receipt names a SKU that is not in the catalog, or a barcode no catalog alias stands for.",
    "UNKNOWN_WAREHOUSE": "A receipt names a receiving or sending warehouse that is not in ref.warehouses.",
    "DUPLICATE_RECEIPT": "A receipt line (receipt_id, line_no) already posted from an earlier file: not posted twice.",
    # --- tracking feed: carrier events (landing/carrier_events) --------------------------------------
    "UNKNOWN_MILESTONE_CODE": "A carrier status code in none of the milestone tables (X12 AT7, EasyPost, Shopify, "
    "Amazon): quarantined, never guessed, until it is mapped.",
    "MISSING_TRACKING_NUMBER": "A carrier event with no tracking number and no shipment reference: it cannot be "
    "attached to a shipment.",
    "BAD_EVENT_TIME": "A carrier event's time is missing, not a date/time, or cannot be placed in UTC (an unknown "
    "X12 time code, or local time with no state/province).",
    "UNSUPPORTED_TRANSACTION_SET": "An X12 transaction set the tracking reader does not read (e.g. an 850 among "
    "214 status messages).",
    "UNKNOWN_TRACKING_NUMBER": "A carrier event for a tracking number none of our packages has, still unmatched "
    "after tracking's pending_max_hours.",
    # --- billing: bank statements, payouts, payment decisions --------------------------------
    "BANK_SYNTAX": "A bank statement, payout or settlement record (or the whole file) does not follow its "
    "format's layout: a missing or malformed MT940 tag, a BAI2 record the bai2 parser refuses, XML that is "
    "not well formed or lacks a required camt element, a TSV row with the wrong number of fields.",
    "BANK_SCHEMA": "A camt.053 document breaks its ISO 20022 XSD at this entry or statement (the message "
    "quotes the validator).",
    "BANK_BAD_AMOUNT": "A money amount is missing, not a decimal, negative where the format carries the sign "
    "apart, or has more decimals than cents (never rounded).",
    "BANK_BAD_DATE": "A booking, value, payout or posted date is missing or not a real calendar date.",
    "BANK_BALANCE_MISMATCH": "A statement whose opening balance plus its lines does not equal its closing "
    "balance (payout: its transactions' net does not equal the payout; settlement: its rows do not add "
    "up to total-amount). Its lines are kept and the statement is flagged balanced = false.",
    "BANK_CONTROL_TOTAL": "A BAI2 trailer's control total or record count disagrees with the records: the "
    "lines are kept, the file may be incomplete.",
    "BANK_BATCH_MISMATCH": "A camt.053 batch entry whose transaction details carry amounts that do not add up "
    "to the entry amount (or only some carry one): it cannot be split into lines.",
    "BANK_NO_MONEY_MOVEMENT": "An entry that moves no money yet: camt status pending/information, a BAI2 "
    "non-monetary or status type code in a detail record. Reported, not a line.",
    "PAYMENT_DECISION_INVALID": "A manual payment decision (landing/payment_decisions) that cannot be applied: "
    "unknown payment or invoice, an amount beyond what is left, an unknown action; the payment stays in suspense.",
    # --- returns: requests refused, receipts held ----------------------------------------
    # readers
    "BAD_RETURN_REASON": "A return request's reason is not one of DAMAGED, WRONG_ITEM, DEFECTIVE, NOT_AS_DESCRIBED, "
    "NO_LONGER_NEEDED, SIZE_FIT, OTHER (case-insensitive).",
    "BAD_RETURN_GRADE": "A return receipt's grade is not restock, refurbish or scrap (case-insensitive).",
    # requests
    "UNKNOWN_ORDER_LINE": "A return names an order that is not ours (or is ambiguous across orders), or a line the "
    "order does not have (by line number, channel line id or SKU; a SKU on several lines is ambiguous).",
    "RETURN_NOT_DELIVERED": "A return for an order line of which nothing has been delivered yet (a refund before "
    "delivery is a cancellation).",
    "ITEM_NOT_RETURNABLE": "The product's category is not returnable under the channel's return policy "
    "(ref.return_policies.non_returnable_categories, e.g. Hazmat).",
    "RETURN_WINDOW_CLOSED": "The return was requested after the line's last delivery plus the policy's window "
    "(the last instant of the window is still inside).",
    "RETURN_QTY_EXCEEDS_DELIVERED": "The units requested exceed what is left to return of the line: delivered - "
    "returned before - accepted earlier in the same batch (by request time).",
    "DUPLICATE_RETURN_REQUEST": "The same request (request_id) names the same order line twice in one batch: the "
    "first stands.",
    # receipts
    "UNKNOWN_RMA": "A return receipt names an RMA (or an RMA line) that does not exist: the units are held aside, "
    "not put to stock, until a person decides.",
    "WRONG_ITEM_RECEIVED": "The SKU received is not the RMA line's: the units are held aside, not put to stock.",
    "OVER_RECEIVED": "More units received than the RMA line authorised (counting earlier receipts): the excess is "
    "held aside, the authorised units are put to stock.",
    "SHORT_RECEIVED": "Fewer units received than the RMA line authorised (after this batch's receipts): reported "
    "with the difference; closed when a receipt said it was final.",
    # --- chargebacks (landing/chargebacks) -----------------------------------------------
    "BAD_DISPUTE_STATUS": "A dispute's status is not one the reader knows (needs_response, under_review, won, lost, "
    "accepted, charge_refunded, ...).",
    "BAD_DISPUTE_TYPE": "A dispute's type is not chargeback or inquiry.",
    "CHARGEBACK_UNKNOWN_ORDER": "A dispute names an order that is neither our order id nor a channel's order "
    "reference we know (a Shopify dispute: a Shopify order): nothing to re-open; a person looks it up.",
    "CHARGEBACK_CURRENCY_MISMATCH": "A dispute's currency is not its order's: the amount cannot be taken from what "
    "was paid.",
}

# Codes that only a later run can produce (a second upload of a file): not expected in a one-shot demo.
LATER_RUN_CODES = frozenset({"REF_SHRINK_REFUSED"})


# Reason codes of the validation stage (code -> description): the ones a validation result row can
# carry. Their severity (reject | hold | warn) is configuration (som_pipeline/validation/defaults.toml).
VALIDATION_REASONS: dict[str, str] = {
    # customer
    "UNKNOWN_CUSTOMER": "The order's customer is unknown: customer_id is null (the channel reference did not "
    "resolve through ref.customer_aliases) or not in ref.customers.",
    "CUSTOMER_INACTIVE": "The customer exists but is not active (may not order).",
    # credit
    "CREDIT_LIMIT": "Exposure (open receivables + approved-but-unbilled + orders this evaluation approves ahead of it + "
    "this order) exceeds the customer's credit limit.",
    "CREDIT_OVERDUE": "The customer has an invoice overdue beyond its terms plus the grace period.",
    "CREDIT_UNCHECKED": "Credit exposure could not be computed: the order currency differs from the customer's "
    "(no FX table yet) or the order value is unknown (unpriced lines without a price-list row).",
    # price
    "PRICE_MISMATCH": "Unit price differs from the customer's tier price list (valid on the order date, quantity "
    "break applied) beyond tolerance, or no price-list row exists for tier/sku/currency on the date.",
    "PRICED_FROM_LIST": "The line has no unit price (the channel left pricing to us): the tier list price applies.",
    "DISCOUNT_NOT_APPROVED": "Line discount above the tier's approved maximum and not explained by a valid promotion.",
    # promo
    "PROMO_UNKNOWN": "The promo code is not in ref.promotions.",
    "PROMO_EXPIRED": "The order date is after the promotion's last valid day.",
    "PROMO_NOT_YET_VALID": "The order date is before the promotion's first valid day.",
    "PROMO_INELIGIBLE": "The customer's tier or the order's channel is not eligible, or no line's SKU/category is.",
    "PROMO_EXHAUSTED": "The promotion's usage cap is reached (earlier runs + earlier orders of this evaluation).",
    # quantity
    "QTY_ANOMALY": "Line quantity (or order value) far above the customer's robust baseline (median/MAD).",
    "NEW_CUSTOMER_REVIEW": "A customer's first order with a value above the new-customer threshold.",
    # compliance
    "EMBARGO": "The destination country is embargoed.",
    "RESTRICTED_ITEM": "An item may not ship to the destination country, or is hazmat on an air ship method.",
    "ADDRESS_INVALID": "The ship-to address cannot be shipped to: country not ISO 3166-1 alpha-2, postal code not "
    "matching the country's format, or street line / city missing.",
    "UNKNOWN_SKU": "The SKU is not in the catalog (ref.products) or is inactive (catalog lines only: a custom or "
    "service line has no catalog SKU to look up).",
    "CUSTOM_ITEM_REVIEW": "A custom physical item outside the catalog (order_lines.item_kind 'custom', e.g. a Shopify "
    "custom line item that requires shipping): nothing is reserved for it; someone decides how it is fulfilled "
    "and approves the hold.",
    # inventory (decided before approval)
    "BACKORDER": "No stock available for the line: the whole quantity is backordered.",
    "SPLIT_SHIPMENT": "Part of the line is reserved now, the rest is backordered (ships in two shipments).",
    "SUBSTITUTED": "The shortfall is reserved from a catalog substitute the customer accepts.",
    "WAIT_SHIP_COMPLETE": "A ship-complete order with a short line: it keeps what it reserved and waits, never split.",
    # generic
    "NOT_EVALUATED": "The rule could not run for this order (customer unknown); the blocking reason is reported "
    "by the customer rule.",
}

APPROVAL_CODES = frozenset({"UNKNOWN_ORDER", "HOLD_NOT_OPEN", "BAD_DECISION"})
# Codes only the fulfilment feeds produce (the demo's floor simulation, after a first run, writes them)
FULFILMENT_CODES = frozenset({"BAD_ACTION", "BAD_BARCODE", "BAD_RECEIPT_KIND", "DUPLICATE_SCAN", "UNKNOWN_TASK",
                              "TASK_CLOSED", "UNKNOWN_PRODUCT", "UNKNOWN_WAREHOUSE", "DUPLICATE_RECEIPT",
                              # tracking's feed (the demo's carriers send clean events, one stray parcel pending)
                              "UNKNOWN_MILESTONE_CODE", "MISSING_TRACKING_NUMBER", "BAD_EVENT_TIME",
                              "UNSUPPORTED_TRANSACTION_SET", "UNKNOWN_TRACKING_NUMBER"})
# Codes only the returns feeds produce (requests refused are recorded in core.return_requests, receipts held in
# core.return_receipts; only unreadable rows are quarantined)
RETURNS_CODES = frozenset({"BAD_RETURN_REASON", "BAD_RETURN_GRADE", "UNKNOWN_ORDER_LINE", "RETURN_NOT_DELIVERED",
                           "ITEM_NOT_RETURNABLE", "RETURN_WINDOW_CLOSED", "RETURN_QTY_EXCEEDS_DELIVERED",
                           "DUPLICATE_RETURN_REQUEST", "UNKNOWN_RMA", "WRONG_ITEM_RECEIVED", "OVER_RECEIVED",
                           "SHORT_RECEIVED", "BAD_DISPUTE_STATUS", "BAD_DISPUTE_TYPE", "CHARGEBACK_UNKNOWN_ORDER",
                           "CHARGEBACK_CURRENCY_MISMATCH"})
# Codes only the billing feeds produce (bank statements, payouts, payment decisions)
BILLING_CODES = frozenset({"BANK_SYNTAX", "BANK_SCHEMA", "BANK_BAD_AMOUNT", "BANK_BAD_DATE", "BANK_BALANCE_MISMATCH",
                           "BANK_CONTROL_TOTAL", "BANK_BATCH_MISMATCH", "BANK_NO_MONEY_MOVEMENT",
                           "PAYMENT_DECISION_INVALID"})


def describe(code: str) -> str:
    return REASONS[code]
