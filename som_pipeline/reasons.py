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
    "X12_UNSUPPORTED_SET": "A transaction set other than 850 (purchase order): acknowledged as not supported, not ingested.",
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
    # --- reference data --------------------------------------------------------------------
    "REF_BAD_VALUE": "A reference-data value cannot be read as its column's type.",
    "REF_CHECK_FAILED": "A reference-data row breaks a rule of its model (range, allowed values...).",
    "REF_DUPLICATE_KEY": "Two reference rows share a key; all copies are rejected.",
}


def describe(code: str) -> str:
    return REASONS[code]
