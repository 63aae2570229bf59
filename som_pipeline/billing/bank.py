"""Readers (and demo writers) of bank statements and channel payouts: ``bytes + file name -> frames``.

Pure core: no Dagster, no DuckDB warehouse, no file-system walking. Files land in
``$SOM_HOME/landing/bank/`` (MT940, BAI2, camt.053) and ``landing/payouts/`` (Shopify payouts JSON, Amazon
settlement reports); the caller reads the bytes and hands them here with the file name.

Parsers used (maintained libraries, not hand-written): SWIFT MT940 with ``mt-940`` (``mt940``), BAI2 with
``bai2``, camt.053 with ``lxml``, validated against the official ISO 20022 XSD (vendored under ``xsd/``, see
``xsd/ATTRIBUTION.md``). Shopify and Amazon are plain JSON / TSV.

Output contract (:class:`BankFile`)
-----------------------------------
Money is ``pl.Decimal(18, 2)`` built from text / ``Decimal``, never through float. An amount with more than
two significant decimals is rejected (``BANK_BAD_AMOUNT``), never rounded.

``statements`` (one per bank statement / account report / payout / settlement):
    statement_id, format ('mt940' | 'bai2' | 'camt053' | 'shopify_payout' | 'amazon_settlement'), account
    (IBAN or number as given, no spaces, upper case), currency, statement_date (Date), opening_balance,
    closing_balance (signed), entries_total (sum of the statement's signed lines), balanced
    (opening + entries_total == closing; null when a balance is unknown), source_file, location.

    statement_id: camt.053 ``Stmt/Id``; Shopify ``shopify-payout-<payout id>``; Amazon
    ``amazon-settlement-<settlement-id>``. MT940 (``:20:`` is a message reference banks reuse: ABN AMRO
    puts its own name there, ING a constant) and BAI2 (no statement reference) get
    ``sha256("<format>|<account>|<statement date>|<sequence>")`` where the sequence is MT940 ``:28C:``
    (statement/page) and BAI2 ``<file id>/<group #>/<account #>``.

``lines`` (one per money movement):
    line_id = sha256("format|account|statement_id|entry sequence|amount|booking_date"): stable across
    re-drops of the same file, distinct for two identical entries at different positions. Then
    statement_id, format, account, currency, amount (SIGNED: money in positive, money out negative),
    booking_date, value_date, bank_reference, end_to_end_id, payer_name, payer_account (the counterparty:
    the debtor of a credit, the creditor of a debit), remittance (whitespace collapsed), kind, order_ref,
    fee (0 where none), source_file, location (human: 'statement 1, entry 3 (line 12)', a JSON pointer, a
    TSV line number), raw (the record's text).

    kind: 'credit' | 'debit' | 'fee' for bank files ('fee' for bank charges: MT940 type NCHG/NCOM, BAI2
    type codes whose description names a fee or service charge, camt sub-family CHRG/COMM); for payouts
    the channel's transaction type ('charge', 'refund', 'adjustment', 'dispute', 'reserve', 'credit',
    'debit', ...) and 'payout' for the transfer to the bank.

``rejected``: location, order_ref, reason_code, message, raw. Bad input never raises: every unreadable
record is here with a reason code (:data:`REASONS`, plus EMPTY_FILE, BAD_ENCODING, INVALID_JSON and
UNSUPPORTED_DOCUMENT of ``som_pipeline.reasons``) and a human message; a file that cannot be read at all is
one record at location 'file'.

``received`` = lines.height + rejected.height: the records read. A record is a statement entry (a camt
batch entry split into its transactions counts once per transaction line), a BAI2 16 record, a payout or
settlement transaction; a whole-file, statement-level or balance finding counts as one record too.

Decisions
---------
* Balance mismatch: a statement whose opening + sum of its lines != closing keeps all its lines (the
  matching stage must not lose money) and is flagged ``balanced = False``; one ``BANK_BALANCE_MISMATCH``
  record (location = the statement) states the three numbers. Rejected entries make their statement
  unbalanced by construction; the message counts them.
* camt.053 with a vendored XSD (versions .001.02 to .001.08) is validated against it with libxml2
  (``lxml.etree.XMLSchema``): xmlschema was measured at 1.2 ms per entry (4 minutes for a 200k-entry
  statement) against 0.012 ms for libxml2, so xmlschema is the tests' independent second validator of the
  writer's output instead. An entry with a schema error is rejected (``BANK_SCHEMA``: quarantined with its
  XML, not booked as a line); a schema error outside entries gives one ``BANK_SCHEMA`` record for its
  statement and the entries are still read. Other versions (.001.09+, or no namespace) are read by the
  same namespace-agnostic code and checked structurally only (Amt with a valid amount, CdtDbtInd, a
  booking date, the account): :func:`camt053_schema_for` returns None for them.
* camt batch entries (several TxDtls): one line per transaction when every TxDtls carries its amount and
  they add up to the entry amount; one line for the entry when none carries an amount (end_to_end_id and
  payer then only if all transactions agree); otherwise ``BANK_BATCH_MISMATCH``.
* Entries that move no money yet (camt Sts PDNG/INFO, BAI2 type 890 and non-monetary codes) are
  ``BANK_NO_MONEY_MOVEMENT`` records, not lines.
* MT940 ``:86:`` continuation lines are joined without a separator after a full 65-character line (fixed
  width wrap) and with a space otherwise. ABN AMRO / ING / Rabobank structured subfields (``/EREF/``,
  ``/NAME/``, ``/IBAN/``, ``/REMI/``, ``/CNTP/``) and German GVC ``?20..?63`` (via mt940) fill
  end_to_end_id / payer_name / payer_account / remittance; unstructured ``:86:`` text is the remittance.
  An ``:86:`` after the closing balance (information to the account owner) is not part of any entry.
* mt940 silently drops a ``:61:`` it cannot parse (and glues its ``:86:`` to the previous entry): the
  reader counts the ``:61:`` lines itself, and when the library returns fewer transactions it re-parses
  the statement entry by entry and rejects the ones the library cannot read. mt940 also reads a stray
  character in an amount as a shorter amount ('D29X,15' as 29.00): every ``:61:`` amount is checked to be
  digits with a decimal comma first (``BANK_BAD_AMOUNT`` otherwise).
* BAI2 amounts are minor units of the account currency (JPY 0 decimals, BHD/KWD/... 3); control totals and
  record counts are checked by the library: a mismatch is one ``BANK_CONTROL_TOTAL`` record, the lines are
  kept. A 16 record the library cannot read is rejected and the rest of the file is read.
* Shopify payouts: a statement per payout, opening 0, closing = the payout amount (the bank deposit). Lines:
  one per balance transaction, amount = ``net`` (money into the Shopify balance), fee = ``fee``,
  gross = amount + fee, order_ref = ``source_order_id``; plus one 'payout' line per payout (amount =
  +deposit, from the 'payout' transaction, else from the payout object) that the matching stage pairs with
  the bank credit. entries_total sums the component lines only (not the 'payout' line); it is null (and
  balanced null) for a payout whose transactions are not in the file. Transactions not yet paid out
  (payout_id null) go to statement 'shopify-payout-pending' with no closing balance.
* Amazon settlement V2 flat file: the first data row carries the totals (statement: opening 0, closing =
  total-amount, date = deposit-date); every other row is one line (amount as reported, kind 'fee' for
  ItemFees rows, 'refund' for Refund transactions, 'charge' for Order, 'adjustment' otherwise; fee 0:
  Amazon reports its fees as their own rows); order_ref = order-id. The totals row also gives the deposit: one
  'payout' line of total-amount (location of the totals row), which the bank credit from Amazon clears, as for
  Shopify; entries_total sums the other lines.

Performance (one statement of 200,000 lines written by this module's writers, every line with references,
a counterparty and remittance; one process on the dev box, Python 3.11):
    read_mt940    13.9 s  (26 MB; the mt940 library alone is ~9.6 s of it: ~20,000 entries/s is its floor)
    read_bai2      6.2 s  (12 MB; the bai2 library builds the object tree, the rest is columnar)
    read_camt053  32.9 s  (207 MB; libxml2 parse + XSD validation ~3 s, the rest is the per-entry look-ups)
The cyclic garbage collector is paused while a reader runs (it doubled the mt940 and tripled the BAI2 time
on files this size). mt940 is kept although it is the slowest library (it is the maintained parser and
~14 s per 200k lines is acceptable for a daily statement); a faster camt path would flatten entries with
one XSLT pass instead of Python look-ups, not done. Writers: mt940 1.6 s, BAI2 1.1 s, camt.053 14.3 s.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import mt940
import polars as pl
from bai2 import bai2 as bai2_lib
from bai2.exceptions import IntegrityException
from bai2.helpers import IteratorHelper
from bai2.parsers import TransactionDetailParser
from lxml import etree

from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import DecodeError, decode_text
from som_pipeline.reasons import REASONS as ALL_REASONS

MONEY = pl.Decimal(18, 2)

#: This reader's reason codes (their texts live in :data:`som_pipeline.reasons.REASONS`, the one table).
REASONS: dict[str, str] = {k: ALL_REASONS[k] for k in (
    "BANK_SYNTAX", "BANK_SCHEMA", "BANK_BAD_AMOUNT", "BANK_BAD_DATE", "BANK_BALANCE_MISMATCH", "BANK_CONTROL_TOTAL",
    "BANK_BATCH_MISMATCH", "BANK_NO_MONEY_MOVEMENT")}

_FORMATS = ("mt940", "bai2", "camt053", "shopify_payout", "amazon_settlement")

STATEMENT_SCHEMA: dict[str, pl.DataType] = {
    "statement_id": pl.String(), "format": pl.String(), "account": pl.String(), "currency": pl.String(),
    "statement_date": pl.Date(), "opening_balance": MONEY, "closing_balance": MONEY,
    "entries_total": MONEY, "balanced": pl.Boolean(), "source_file": pl.String(), "location": pl.String(),
}
LINE_SCHEMA: dict[str, pl.DataType] = {
    "line_id": pl.String(), "statement_id": pl.String(), "format": pl.String(), "account": pl.String(),
    "currency": pl.String(), "amount": MONEY, "booking_date": pl.Date(), "value_date": pl.Date(),
    "bank_reference": pl.String(), "end_to_end_id": pl.String(), "payer_name": pl.String(),
    "payer_account": pl.String(), "remittance": pl.String(), "kind": pl.String(), "order_ref": pl.String(),
    "fee": MONEY, "source_file": pl.String(), "location": pl.String(), "raw": pl.String(),
}
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "location": pl.String(), "order_ref": pl.String(), "reason_code": pl.String(), "message": pl.String(),
    "raw": pl.String(),
}
# what a reader appends per line (line_id, format and source_file are added in bulk)
_LINE_FIELDS = ("seq", "statement_id", "account", "currency", "amount", "booking_date", "value_date",
                "bank_reference", "end_to_end_id", "payer_name", "payer_account", "remittance", "kind",
                "order_ref", "fee", "location", "raw")
_RAW_LIMIT = 4000
_ZERO = Decimal("0.00")
_CENT = Decimal("0.01")


@dataclass
class BankFile:
    """What one file yields: see the module docstring for every column."""

    statements: pl.DataFrame
    lines: pl.DataFrame
    rejected: pl.DataFrame
    received: int


# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def norm_account(value: str | None) -> str | None:
    """An account as given, without spaces, upper case ('NL91 abna 0417...' -> 'NL91ABNA0417...')."""
    if value is None:
        return None
    out = re.sub(r"\s+", "", str(value)).upper()
    return out or None


def _clean(text: str | None) -> str | None:
    """Collapse whitespace; empty -> None."""
    if text is None:
        return None
    out = " ".join(str(text).split())
    return out or None


def _money(value: Any) -> Decimal | None:
    """An exact amount with at most 2 decimals, or None (text, Decimal or int; never float)."""
    if value is None or isinstance(value, float | bool):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or d != d.quantize(_CENT) or abs(d) >= Decimal("1e16"):
        return None
    return d.quantize(_CENT)


_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _money_text(text: Any) -> Decimal | None:
    """A decimal literal as channels send it ('12.30', '-4'); anything else -> None."""
    if text is None or isinstance(text, float | bool):
        return None
    s = str(text).strip()
    if not _DECIMAL_TEXT.match(s):
        return None
    return _money(s)


def _iso_date(text: Any) -> date | None:
    """The date part of an ISO date / date-time ('2019-11-01', '2020-11-05T19:52:08-05:00')."""
    if not isinstance(text, str):
        return None
    m = re.match(r"^\s*(\d{4})-(\d{2})-(\d{2})", text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


class _Builder:
    """Collects one file's statements, lines (column lists) and rejections; :meth:`finish` makes frames."""

    def __init__(self, fmt: str, source_file: str) -> None:
        assert fmt in _FORMATS
        self.fmt = fmt
        self.source_file = source_file
        self.statements: list[dict[str, Any]] = []
        self.cols: dict[str, list[Any]] = {k: [] for k in _LINE_FIELDS}
        self.rejected: list[dict[str, Any]] = []
        self.rejected_by_statement: dict[str, int] = {}

    def statement(self, statement_id: str, account: str | None, currency: str | None,
                  statement_date: date | None, opening: Decimal | None, closing: Decimal | None,
                  location: str) -> None:
        self.statements.append({
            "statement_id": statement_id, "format": self.fmt, "account": account, "currency": currency,
            "statement_date": statement_date, "opening_balance": opening, "closing_balance": closing,
            "source_file": self.source_file, "location": location,
        })

    def line(self, *, seq: str, statement_id: str, account: str | None, currency: str | None,
             amount: Decimal, booking_date: date | None, location: str, raw: str | None,
             kind: str | None = None, value_date: date | None = None, bank_reference: str | None = None,
             end_to_end_id: str | None = None, payer_name: str | None = None,
             payer_account: str | None = None, remittance: str | None = None, order_ref: str | None = None,
             fee: Decimal = _ZERO) -> None:
        c = self.cols
        c["seq"].append(seq)
        c["statement_id"].append(statement_id)
        c["account"].append(account)
        c["currency"].append(currency)
        c["amount"].append(amount)
        c["booking_date"].append(booking_date)
        c["value_date"].append(value_date)
        c["bank_reference"].append(bank_reference)
        c["end_to_end_id"].append(end_to_end_id)
        c["payer_name"].append(payer_name)
        c["payer_account"].append(payer_account)
        c["remittance"].append(remittance)
        c["kind"].append(kind or ("credit" if amount >= 0 else "debit"))
        c["order_ref"].append(order_ref)
        c["fee"].append(fee)
        c["location"].append(location)
        c["raw"].append(raw)

    def reject(self, location: str, reason_code: str, message: str, raw: str | None = None,
               order_ref: str | None = None, statement_id: str | None = None) -> None:
        if raw is not None and len(raw) > _RAW_LIMIT:
            raw = raw[:_RAW_LIMIT] + f"... [{len(raw) - _RAW_LIMIT} more characters]"
        self.rejected.append({"location": location, "order_ref": order_ref, "reason_code": reason_code,
                              "message": message, "raw": raw})
        if statement_id is not None:
            self.rejected_by_statement[statement_id] = self.rejected_by_statement.get(statement_id, 0) + 1

    def fail(self, reason_code: str, message: str, raw: str | bytes | None = None) -> BankFile:
        """The whole file is unreadable: one rejected record, nothing else."""
        if isinstance(raw, bytes):
            raw = raw[:_RAW_LIMIT].decode("utf-8", "replace")
        self.statements.clear()
        self.cols = {k: [] for k in _LINE_FIELDS}
        self.rejected.clear()
        self.reject("file", reason_code, message, raw)
        return self.finish()

    def finish(self) -> BankFile:
        c = self.cols
        n = len(c["seq"])
        lines = pl.DataFrame({
            "seq": pl.Series(c["seq"], dtype=pl.String),
            "statement_id": pl.Series(c["statement_id"], dtype=pl.String),
            "format": pl.Series([self.fmt] * n, dtype=pl.String),
            "account": pl.Series(c["account"], dtype=pl.String),
            "currency": pl.Series(c["currency"], dtype=pl.String),
            "amount": pl.Series(c["amount"], dtype=MONEY),
            "booking_date": pl.Series(c["booking_date"], dtype=pl.Date),
            "value_date": pl.Series(c["value_date"], dtype=pl.Date),
            "bank_reference": pl.Series(c["bank_reference"], dtype=pl.String),
            "end_to_end_id": pl.Series(c["end_to_end_id"], dtype=pl.String),
            "payer_name": pl.Series(c["payer_name"], dtype=pl.String),
            "payer_account": pl.Series(c["payer_account"], dtype=pl.String),
            "remittance": pl.Series(c["remittance"], dtype=pl.String),
            "kind": pl.Series(c["kind"], dtype=pl.String),
            "order_ref": pl.Series(c["order_ref"], dtype=pl.String),
            "fee": pl.Series(c["fee"], dtype=MONEY),
            "source_file": pl.Series([self.source_file] * n, dtype=pl.String),
            "location": pl.Series(c["location"], dtype=pl.String),
            "raw": pl.Series(c["raw"], dtype=pl.String),
        })
        key = pl.concat_str(
            [pl.col("format"), pl.col("account").fill_null(""), pl.col("statement_id"), pl.col("seq"),
             pl.col("amount").cast(pl.String), pl.col("booking_date").cast(pl.String).fill_null("")],
            separator="|",
        )
        lines = lines.with_columns(line_id=sha256_series(key, lines)).select(list(LINE_SCHEMA))

        stmts = pl.DataFrame(self.statements or None, schema={k: v for k, v in STATEMENT_SCHEMA.items()
                                                               if k not in ("entries_total", "balanced")})
        components = (lines if self.fmt not in ("shopify_payout", "amazon_settlement")
                      else lines.filter(pl.col("kind") != "payout"))
        totals = components.group_by("statement_id").agg(
            entries_total=pl.col("amount").sum().cast(MONEY), n_lines=pl.len())
        stmts = stmts.join(totals, on="statement_id", how="left", maintain_order="left")
        if self.fmt != "shopify_payout":  # a bank statement without entries moves nothing: total 0
            stmts = stmts.with_columns(pl.col("entries_total").fill_null(_ZERO), pl.col("n_lines").fill_null(0))
        stmts = stmts.with_columns(
            balanced=(pl.col("opening_balance").cast(pl.Decimal(38, 2)) + pl.col("entries_total")
                      == pl.col("closing_balance")))
        for row in stmts.filter(pl.col("balanced").not_()).iter_rows(named=True):
            sid = row["statement_id"]
            bad = self.rejected_by_statement.get(sid, 0)
            computed = row["opening_balance"] + row["entries_total"]
            msg = (f"opening {row['opening_balance']} + entries {row['entries_total']} "
                   f"({row['n_lines'] or 0} lines) = {computed}, but the closing balance is "
                   f"{row['closing_balance']} (difference {row['closing_balance'] - computed} "
                   f"{row['currency'] or ''}); the lines are kept")
            if bad:
                msg += f"; {bad} record(s) of this statement were rejected"
            self.reject(row["location"], "BANK_BALANCE_MISMATCH", msg,
                        f"statement {sid}: opening {row['opening_balance']}, closing {row['closing_balance']}")
        stmts = stmts.select([pl.col(k).cast(v) for k, v in STATEMENT_SCHEMA.items()])
        rejected = pl.DataFrame(self.rejected or None, schema=REJECTED_SCHEMA)
        return BankFile(statements=stmts, lines=lines, rejected=rejected,
                        received=lines.height + rejected.height)


def _decode(data: bytes, b: _Builder) -> str | BankFile:
    """Bytes -> text, or the one-record BankFile that says why not."""
    try:
        text, _enc = decode_text(data)
    except DecodeError as e:
        return b.fail(e.reason_code, e.message, data)
    return text.lstrip("\ufeff")


def _guarded(fmt: str):
    """Never raise on bad input: an unexpected error in a reader becomes one whole-file rejection."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(data: bytes, source_file: str) -> BankFile:
            # the parsers allocate millions of small objects: the cyclic GC's full passes over them cost
            # half the time of a 200k-line file, and a reader makes no cycles worth collecting midway
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return fn(data, source_file)
            except Exception as e:  # noqa: BLE001 - library errors on malformed input, by design
                return _Builder(fmt, source_file).fail(
                    "BANK_SYNTAX", f"the {fmt} file could not be read: {type(e).__name__}: {e}",
                    data if isinstance(data, bytes) else None)
            finally:
                if was_enabled:
                    gc.enable()

        return inner

    return wrap


# ---------------------------------------------------------------------------------------------------------
# MT940
# ---------------------------------------------------------------------------------------------------------

_MT940_OPTIONS = mt940.Options.all()
_MT940_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):")
_MT940_CLOSING = {"62F", "62M", "64", "65"}
_MT940_FEE_TYPES = {"NCHG", "NCOM", "FCHG", "FCOM", "SCHG", "SCOM"}
# ABN AMRO / ING / Rabobank structured :86: ("/TRTP/SEPA OVERBOEKING/IBAN/NL.../NAME/.../REMI/...")
_SUBFIELD = re.compile(r"/(TRTP|IBAN|BIC|NAME|REMI|EREF|MARF|CSID|ORDP|BENM|ADDR|RTRN|PREF|CNTP|ULTD|ULTC|"
                       r"ULTB|PURP|SVCL|ISDT|CHGS)/")


def _mt940_parse(text: str) -> mt940.models.Transactions:
    """Parse MT940 text with the library (never via mt940.parse: a str naming an existing path is read)."""
    t = mt940.models.Transactions(options=_MT940_OPTIONS)
    t.parse(text)
    return t


def _mt940_subfields(text: str) -> dict[str, str]:
    """'/EREF/x//NAME/y/REMI/z' -> {'EREF': 'x', 'NAME': 'y', 'REMI': 'z'} (empty if not structured)."""
    if not text.startswith("/"):
        return {}
    marks = list(_SUBFIELD.finditer(text))
    if not marks or marks[0].start() != 0:
        return {}
    out: dict[str, str] = {}
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        value = text[m.end(): nxt.start() if nxt else len(text)].strip().strip("/").strip()
        out.setdefault(m.group(1), value)
    remi = out.get("REMI")
    if remi:  # '/REMI/USTD//text/' and '/REMI/STRD/CUR/RF18.../'
        remi = re.sub(r"^(USTD/+|STRD/+(CUR|ISO)?/+)", "", remi)
        out["REMI"] = remi.strip("/ ")
    return out


def _mt940_details(chunk: list[str]) -> str | None:
    """The :86: text of one entry as the bank wrote it: 65-character lines joined without a space."""
    out: str | None = None
    prev_len = 0
    for ln in chunk:
        if ln.startswith(":86:"):
            out, prev_len = ln[4:], len(ln) - 4
        elif out is not None:
            if _MT940_TAG.match(ln):
                break
            out += ("" if prev_len >= 65 else " ") + ln
            prev_len = len(ln)
    return out


def _mt940_bad_amount(line61: str) -> bool:
    """True when a :61: looks like one but its amount is not digits with a decimal comma."""
    m = re.match(r"^:61:\d{6}(\d{4})?R?[CDcd][A-Z]?([^A-Z]*)[A-Z]", line61)
    return bool(m) and not re.fullmatch(r"\d{1,12},\d{0,2}", m.group(2) or "")


@_guarded("mt940")
def read_mt940(data: bytes, source_file: str) -> BankFile:
    """Read a SWIFT MT940 file (one or more statements, final or intermediate balances)."""
    b = _Builder("mt940", source_file)
    text = _decode(data, b)
    if isinstance(text, BankFile):
        return text
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith(":20:")]
    if not starts or not any(ln.startswith((":60F:", ":60M:", ":61:", ":62F:", ":62M:")) for ln in lines):
        return b.fail("BANK_SYNTAX", "no MT940 statement in the file (a :20: reference followed by balances "
                      "or :61: entries)", text)
    for sno, (a, z) in enumerate(zip(starts, [*starts[1:], len(lines)], strict=True), 1):
        _mt940_statement(lines, a, z, sno, b)
    return b.finish()


def _mt940_statement(lines: list[str], a: int, z: int, sno: int, b: _Builder) -> None:
    header: list[str] = []
    trailer: list[str] = []
    entries: list[list[str]] = []
    entry_lineno: list[int] = []
    state = "header"
    for i in range(a, z):
        ln = lines[i].rstrip()
        if not ln.strip():
            continue
        m = _MT940_TAG.match(ln)
        tag = m.group(1) if m else None
        if state == "end":
            continue
        if tag == "61" and state in ("header", "entry"):
            state = "entry"
            entries.append([ln])
            entry_lineno.append(i + 1)
        elif tag in _MT940_CLOSING:
            state = "trailer"
            trailer.append(ln)
        elif state in ("trailer", "info"):
            if tag == "86" or (state == "info" and tag is None and not ln.startswith(("-", "{", "}"))):
                state = "info"  # information to the account owner: not part of an entry
            elif tag is not None:
                trailer.append(ln)
            else:
                state = "end"  # '-', '-XXX', '-}', the next message's header lines
        elif state == "entry":
            entries[-1].append(ln)
        elif ln.startswith(("-", "{", "}")):
            continue
        else:
            header.append(ln)

    where = f"statement {sno} (line {a + 1})"
    chunks = ["\n".join(e) for e in entries]
    head_txt, trail_txt = "\n".join(header), "\n".join(trailer)
    results: list[dict[str, Any] | None]
    try:
        t = _mt940_parse("\n".join([head_txt, *chunks, trail_txt]))
        results = [x.data for x in t.transactions]
        sdata = t.data
        ok = len(results) == len(chunks) and all("amount" in r for r in results)
    except Exception:  # noqa: BLE001
        ok, sdata = False, None
    if not ok:  # find the entries the library cannot read, one by one
        try:
            sdata = _mt940_parse(head_txt + "\n" + trail_txt).data
        except Exception as e:  # noqa: BLE001
            msg = f"statement {sno}: its header or balances cannot be read ({type(e).__name__}: {e})"
            for j, chunk in enumerate(chunks, 1):
                b.reject(f"statement {sno}, entry {j} (line {entry_lineno[j - 1]})", "BANK_SYNTAX", msg, chunk)
            if not chunks:
                b.reject(where, "BANK_SYNTAX", msg, head_txt + "\n" + trail_txt)
            return
        results = []
        for chunk in chunks:
            try:
                got = _mt940_parse(head_txt + "\n" + chunk).transactions
                results.append(got[0].data if len(got) == 1 and "amount" in got[0].data else None)
            except Exception:  # noqa: BLE001
                results.append(None)

    account = norm_account(sdata.get("account_identification"))
    opening = sdata.get("final_opening_balance") or sdata.get("intermediate_opening_balance") \
        or sdata.get("opening_balance")
    closing = sdata.get("final_closing_balance") or sdata.get("intermediate_closing_balance") \
        or sdata.get("closing_balance")
    if account is None:
        msg = f"statement {sno} has no :25: account identification"
        for j, chunk in enumerate(chunks, 1):
            b.reject(f"statement {sno}, entry {j} (line {entry_lineno[j - 1]})", "BANK_SYNTAX", msg, chunk)
        if not chunks:
            b.reject(where, "BANK_SYNTAX", msg, head_txt)
        return
    currency = (opening or closing).amount.currency if (opening or closing) else None
    sdate = (closing or opening).date if (closing or opening) else None
    number = sdata.get("statement_number") or ""
    seq_no = sdata.get("sequence_number")
    page = f"{number}/{seq_no}" if seq_no else number
    statement_id = _sha(f"mt940|{account}|{sdate}|{page}")
    b.statement(statement_id, account, currency, _as_date(sdate),
                _money(opening.amount.amount) if opening else None,
                _money(closing.amount.amount) if closing else None, where)

    for j, (chunk_lines, d) in enumerate(zip(entries, results, strict=True), 1):
        loc = f"statement {sno}, entry {j} (line {entry_lineno[j - 1]})"
        raw = chunks[j - 1]
        if d is not None and _mt940_bad_amount(chunk_lines[0]):
            d = None  # mt940 reads ':61:...D29X,15NTRF' as 29.00: never book a half-read amount
        if d is None:
            code = "BANK_BAD_AMOUNT" if _mt940_bad_amount(chunk_lines[0]) else "BANK_SYNTAX"
            b.reject(loc, code, "the :61: line does not match the MT940 layout (value date YYMMDD, optional "
                     "entry date MMDD, C/D/RC/RD mark, amount with a decimal comma, 4-character type, "
                     "reference)" if code == "BANK_SYNTAX" else
                     f"the :61: amount is not digits with a decimal comma: {chunk_lines[0]!r}",
                     raw, statement_id=statement_id)
            continue
        amount = _money(d["amount"].amount)
        if amount is None:
            b.reject(loc, "BANK_BAD_AMOUNT", f"amount {d['amount'].amount} has more than 2 decimals", raw,
                     statement_id=statement_id)
            continue
        value_date = _as_date(d.get("date"))
        booking = _as_date(d.get("entry_date")) or value_date
        if booking is None:
            b.reject(loc, "BANK_BAD_DATE", "the :61: value date is not a calendar date", raw,
                     statement_id=statement_id)
            continue
        details = _mt940_details(chunk_lines)
        sub = _mt940_subfields(details or "")
        cntp = sub.get("CNTP", "").split("/") if sub.get("CNTP") else []
        e2e = sub.get("EREF") or d.get("end_to_end_reference")
        if e2e and e2e.upper() == "NOTPROVIDED":
            e2e = None
        if sub:
            remittance = sub.get("REMI")
        elif d.get("purpose") and re.match(r"^\d{3}\?", details or ""):
            remittance = d.get("purpose")  # German GVC ?20..?29 structure, split by mt940
        else:
            remittance = details
        cref = d.get("customer_reference")
        bank_ref = d.get("bank_reference") or (cref if cref and cref.upper() != "NONREF" else None)
        b.line(
            seq=f"{sno}.{j}", statement_id=statement_id, account=account,
            currency=d["amount"].currency or currency, amount=amount, booking_date=booking,
            value_date=value_date, bank_reference=_clean(bank_ref), end_to_end_id=_clean(e2e),
            payer_name=_clean(sub.get("NAME") or (cntp[2] if len(cntp) > 2 else None)
                              or d.get("applicant_name")),
            payer_account=norm_account(sub.get("IBAN") or (cntp[0] if cntp else None) or d.get("applicant_iban")),
            remittance=_clean(remittance),
            kind="fee" if str(d.get("id", "")).upper() in _MT940_FEE_TYPES else None,
            location=loc, raw=raw,
        )


def _as_date(d: Any) -> date | None:
    if d is None:
        return None
    if isinstance(d, datetime):
        return d.date()
    if isinstance(d, date):
        return date(d.year, d.month, d.day)
    return None


def _mt940_amount(v: Decimal) -> str:
    return f"{abs(v):.2f}".replace(".", ",")


def write_mt940(statement: dict, lines: list[dict]) -> str:
    """Write one MT940 statement (demo and round-trip tests).

    ``statement``: account, currency, statement_date, opening_balance, closing_balance (Decimal, signed),
    optional reference (``:20:``, default 'SOMPIPELINE') and number (``:28C:``, default '1/1').
    ``lines``: amount (signed Decimal), booking_date, optional value_date, bank_reference, end_to_end_id,
    payer_name, payer_account, remittance, kind ('fee' writes type NCHG). The ``:86:`` is structured
    (``/EREF/.../NAME/.../IBAN/.../REMI/...``) and wrapped at 65 characters (at most 6 lines are a SWIFT
    rule; the reader accepts more).
    """
    out = [f":20:{statement.get('reference', 'SOMPIPELINE')}", f":25:{statement['account']}",
           f":28C:{statement.get('number', '1/1')}"]
    ccy = statement["currency"]

    def bal(tag: str, amount: Decimal, d: date) -> str:
        return f":{tag}:{'D' if amount < 0 else 'C'}{d:%y%m%d}{ccy}{_mt940_amount(amount)}"

    out.append(bal("60F", Decimal(statement["opening_balance"]), statement["statement_date"]))
    for ln in lines:
        amount = Decimal(ln["amount"])
        booking = ln["booking_date"]
        value = ln.get("value_date") or booking
        ttype = "NCHG" if ln.get("kind") == "fee" else "NTRF"
        ref = ln.get("bank_reference")
        out.append(f":61:{value:%y%m%d}{booking:%m%d}{'D' if amount < 0 else 'C'}{_mt940_amount(amount)}"
                   f"{ttype}NONREF" + (f"//{ref}" if ref else ""))
        parts = [(k, ln.get(f)) for k, f in (("EREF", "end_to_end_id"), ("NAME", "payer_name"),
                                             ("IBAN", "payer_account"), ("REMI", "remittance"))]
        info = "".join(f"/{k}/{v}" for k, v in parts if v)
        if info:
            wrapped = [info[i:i + 65] for i in range(0, len(info), 65)]
            out.append(":86:" + wrapped[0])
            out.extend(wrapped[1:])
    out.append(bal("62F", Decimal(statement["closing_balance"]), statement["statement_date"]))
    out.append("-")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------
# BAI2
# ---------------------------------------------------------------------------------------------------------

# ISO 4217 minor units that are not 2 (BAI2 amounts are minor units of the currency)
_MINOR_UNITS = {"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
                "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0, "BHD": 3, "IQD": 3,
                "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3}


def _bai2_records(phys: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Physical lines -> logical records (a record and its 88 continuations)."""
    out: list[list[tuple[int, str]]] = []
    for n, ln in phys:
        if ln.startswith("88,") and out:
            out[-1].append((n, ln))
        else:
            out.append([(n, ln)])
    return out


@_guarded("bai2")
def read_bai2(data: bytes, source_file: str) -> BankFile:
    """Read a BAI2 cash-management file (every group and account; 16 detail records are the lines)."""
    b = _Builder("bai2", source_file)
    text = _decode(data, b)
    if isinstance(text, BankFile):
        return text
    phys = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not phys or not phys[0][1].startswith("01,"):
        return b.fail("BANK_SYNTAX", "a BAI2 file starts with an 01 file header record", text)
    try:
        parsed = bai2_lib.parse_from_lines([ln for _, ln in phys], check_integrity=True)
    except IntegrityException as e:
        b.reject("file", "BANK_CONTROL_TOTAL", f"{e}; the records are read, the file may be incomplete")
        parsed = None
    except Exception:  # noqa: BLE001 - find the records the parser refuses
        parsed = None
        keep: list[tuple[int, str]] = []
        for rec in _bai2_records(phys):
            if rec[0][1].startswith("16,"):
                try:
                    TransactionDetailParser(IteratorHelper([ln for _, ln in rec])).parse()
                except Exception as e:  # noqa: BLE001
                    fields = rec[0][1].split(",")
                    bad_amount = len(fields) > 2 and not fields[2].strip().isdigit()
                    b.reject(f"line {rec[0][0]}", "BANK_BAD_AMOUNT" if bad_amount else "BANK_SYNTAX",
                             f"detail record 16 refused by the BAI2 parser: {type(e).__name__}: {e}",
                             "\n".join(ln for _, ln in rec))
                    continue
            keep.extend(rec)
        phys = keep
    if parsed is None:
        try:
            parsed = bai2_lib.parse_from_lines([ln for _, ln in phys], check_integrity=False)
        except Exception as e:  # noqa: BLE001
            return b.fail("BANK_SYNTAX", f"the BAI2 structure cannot be read: {type(e).__name__}: {e}", text)
    detail_lines = [n for n, ln in phys if ln.startswith("16,")]
    k = 0
    file_id = parsed.header.file_id or ""
    for g, group in enumerate(parsed.children, 1):
        gh = group.header
        for a, acct in enumerate(group.children, 1):
            ah = acct.header
            account = norm_account(ah.customer_account_number)
            currency = (ah.currency or gh.currency or "USD").upper()
            exp = _MINOR_UNITS.get(currency, 2)
            summaries = {s.type_code.code: s.amount for s in ah.summary_items if s.type_code}
            sdate = gh.as_of_date
            statement_id = _sha(f"bai2|{account}|{sdate}|{file_id}/{g}/{a}")

            def minor(v: int | None, _exp: int = exp) -> Decimal | None:
                return None if v is None else _money(Decimal(v).scaleb(-_exp))

            where = f"group {g}, account {a} ({account})"
            b.statement(statement_id, account, currency, sdate, minor(summaries.get("010")),
                        minor(summaries.get("015")), where)
            for d, tx in enumerate(acct.children, 1):
                lineno = detail_lines[k] if k < len(detail_lines) else None
                k += 1
                loc = f"group {g}, account {a}, detail {d} (line {lineno})"
                raw = "\n".join(f"{code.value},{body}" for code, body in tx.rows)
                tc = tx.type_code
                if tc is None or tc.transaction is None or tc.transaction.value == "misc":
                    b.reject(loc, "BANK_NO_MONEY_MOVEMENT",
                             f"type code {tc.code if tc else '?'} ({tc.description if tc else 'none'}) moves "
                             "no money", raw, statement_id=statement_id)
                    continue
                amount = minor(tx.amount)
                if amount is None or tx.amount < 0:
                    b.reject(loc, "BANK_BAD_AMOUNT", f"detail amount {tx.amount!r} is not a whole number of "
                             f"minor units ({currency}: {exp} decimals)", raw, statement_id=statement_id)
                    continue
                sign = 1 if tc.transaction.value == "credit" else -1
                avail = tx.availability if isinstance(tx.availability, dict) else {}
                desc = tc.description.lower()
                b.line(seq=f"{g}.{a}.{d}", statement_id=statement_id, account=account, currency=currency,
                       amount=amount * sign, booking_date=sdate, value_date=avail.get("date"),
                       bank_reference=_clean(tx.bank_reference), end_to_end_id=_clean(tx.customer_reference),
                       remittance=_clean(tx.text),
                       kind="fee" if ("fee" in desc or "service charge" in desc) else None,
                       location=loc, raw=raw)
    return b.finish()


def _bai2_wrap(head: str, text: str | None, width: int = 80) -> list[str]:
    """A 16 record with its text wrapped at word boundaries into 88 continuation records."""
    out = [head]
    for word in (text or "").split():
        cur = out[-1]
        if len(cur) + 1 + len(word) <= width or cur in ("88", head):
            sep = "," if cur == head or cur == "88" else " "
            out[-1] = cur + sep + word
        else:
            out.append("88," + word)
    return out


def write_bai2(statement: dict, lines: list[dict], *, sender: str = "SOMBANK", receiver: str = "SOMPIPELINE",
               file_id: str = "1") -> str:
    """Write a BAI2 file with one group and one account (demo and round-trip tests).

    ``statement``: account, currency, statement_date, opening_balance (type 010), closing_balance (015).
    ``lines``: amount (signed), optional value_date (funds type V), bank_reference, end_to_end_id (written
    as the customer reference), remittance (the text, in 88 continuations wrapped at words) and kind
    ('fee' writes type 698, else 399 credit / 699 debit). Amounts in minor units; the trailers carry the
    control totals and record counts the bai2 parser checks.
    """
    ccy = statement["currency"]
    exp = _MINOR_UNITS.get(ccy, 2)

    def minor(v: Any) -> int:
        return int(Decimal(v).scaleb(exp))

    d: date = statement["statement_date"]
    opening, closing = minor(statement["opening_balance"]), minor(statement["closing_balance"])
    acct = [f"03,{statement['account']},{ccy},010,{opening},,,015,{closing},,/"]
    total = opening + closing
    for ln in lines:
        amt = minor(ln["amount"])
        code = "698" if ln.get("kind") == "fee" else ("399" if amt >= 0 else "699")
        vd = ln.get("value_date")
        funds = f"V,{vd:%y%m%d}," if vd else "Z"
        head = f"16,{code},{abs(amt)},{funds},{ln.get('bank_reference') or ''},{ln.get('end_to_end_id') or ''}"
        if ln.get("remittance"):
            acct.extend(_bai2_wrap(head, ln["remittance"]))
        else:
            acct.append(head + ",/")
        total += abs(amt)
    acct.append(f"49,{total},{len(acct) + 1}/")
    group = [f"02,{receiver},{sender},1,{d:%y%m%d},2400,{ccy},2/", *acct, f"98,{total},1,{len(acct) + 2}/"]
    out = [f"01,{sender},{receiver},{d:%y%m%d},0000,{file_id},,,2/", *group,
           f"99,{total},1,{len(group) + 2}/"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------
# camt.053
# ---------------------------------------------------------------------------------------------------------

XSD_DIR = Path(__file__).with_name("xsd")
_CAMT_NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})$")
_XML_PARSER = dict(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)


def camt053_schema_for(namespace: str) -> Path | None:
    """The vendored official XSD for a camt.053 namespace, or None (then only structural checks)."""
    m = _CAMT_NS.match(namespace or "")
    if not m:
        return None
    p = XSD_DIR / f"camt.053.001.{m.group(1)}.xsd"
    return p if p.exists() else None


@functools.lru_cache(maxsize=16)
def _schema(path: str) -> etree.XMLSchema:
    """The compiled XSD (libxml2 through lxml; see the module docstring for why not xmlschema here)."""
    return etree.XMLSchema(etree.parse(path, parser=etree.XMLParser(resolve_entities=False, no_network=True)))


def _local(el: Any) -> str:
    return etree.QName(el).localname


def _camt_sign(ind: str | None) -> int | None:
    return {"CRDT": 1, "DBIT": -1}.get((ind or "").strip().upper())


class _Camt:
    """Namespace-agnostic look-ups: paths are written without prefix ('Refs/EndToEndId') and qualified
    with the document's own namespace, whatever its version (exact names are much faster than '{*}')."""

    def __init__(self, ns: str) -> None:
        self.pre = f"{{{ns}}}" if ns else ""
        self._paths: dict[str, str] = {}

    def p(self, path: str) -> str:
        q = self._paths.get(path)
        if q is None:
            q = self._paths[path] = "/".join(self.pre + part for part in path.split("/"))
        return q

    def x(self, el: Any, path: str) -> str | None:
        """Text of the first match, stripped; None when absent or empty."""
        r = el.find(self.p(path))
        if r is None or r.text is None:
            return None
        return r.text.strip() or None

    def xall(self, el: Any, path: str) -> list[str]:
        return [r.text.strip() for r in el.iterfind(self.p(path)) if r.text and r.text.strip()]

    def xdate(self, el: Any, path: str) -> date | None | bool:
        """A DateAndDateTimeChoice (Dt or DtTm) as a date; None if absent, False if not a date."""
        node = el.find(self.p(path))
        if node is None:
            return None
        return _iso_date(self.x(node, "Dt") or self.x(node, "DtTm")) or False

    def amount(self, el: Any, path: str = "Amt") -> tuple[Decimal | None, str | None, bool]:
        """(amount, currency, present) of an ActiveOrHistoricCurrencyAndAmount."""
        node = el.find(self.p(path))
        if node is None:
            return None, None, False
        return _money_text(node.text), (node.get("Ccy") or "").upper() or None, True

    def balance(self, stmt: Any, codes: tuple[str, ...]) -> tuple[Decimal | None, date | None, str | None]:
        for bal in stmt.iterfind(self.p("Bal")):
            code = self.x(bal, "Tp/CdOrPrtry/Cd") or self.x(bal, "Tp/CdOrPrtry/Prtry")
            if code in codes:
                amount, ccy, _ = self.amount(bal)
                sign = _camt_sign(self.x(bal, "CdtDbtInd"))
                d = self.xdate(bal, "Dt") or None
                return (amount * sign if amount is not None and sign is not None else None), d, ccy
        return None, None, None

    def tx_fields(self, tx: Any, signed: Decimal) -> dict[str, Any]:
        """end_to_end_id, counterparty and remittance of one TxDtls (Dbtr/Nm up to .001.06, Dbtr/Pty/Nm from .001.07)."""
        role = "Dbtr" if signed >= 0 else "Cdtr"
        e2e = self.x(tx, "Refs/EndToEndId")
        if e2e and e2e.upper() == "NOTPROVIDED":
            e2e = None
        name = self.x(tx, f"RltdPties/{role}/Nm") or self.x(tx, f"RltdPties/{role}/Pty/Nm")
        acct = self.x(tx, f"RltdPties/{role}Acct/Id/IBAN") or self.x(tx, f"RltdPties/{role}Acct/Id/Othr/Id")
        rem = self.xall(tx, "RmtInf/Ustrd") + self.xall(tx, "RmtInf/Strd/CdtrRefInf/Ref")
        return {"end_to_end_id": e2e, "payer_name": _clean(name), "payer_account": norm_account(acct),
                "remittance": _clean(" ".join(rem)) or _clean(self.x(tx, "AddtlTxInf"))}

    def batch_fields(self, txs: list[Any], signed: Decimal) -> dict[str, Any]:
        """A batch entry kept whole: references only where every transaction agrees, remittance joined."""
        if not txs:
            return {"end_to_end_id": None, "payer_name": None, "payer_account": None, "remittance": None}
        each = [self.tx_fields(tx, signed) for tx in txs]
        out = {k: (each[0][k] if len({e[k] for e in each}) == 1 else None)
               for k in ("end_to_end_id", "payer_name", "payer_account")}
        out["remittance"] = _clean(" ".join(e["remittance"] for e in each if e["remittance"]))
        return out

    def fee(self, el: Any) -> Decimal:
        """Charges: Chrgs/TtlChrgsAndTaxAmt (.001.04+), else the sum of Chrgs/Rcrd/Amt or Chrgs/Amt."""
        total, _, present = self.amount(el, "Chrgs/TtlChrgsAndTaxAmt")
        if present and total is not None:
            return total
        amounts = [_money_text(t) for t in self.xall(el, "Chrgs/Rcrd/Amt") + self.xall(el, "Chrgs/Amt")]
        return sum((a for a in amounts if a is not None), _ZERO)


@_guarded("camt053")
def read_camt053(data: bytes, source_file: str) -> BankFile:
    """Read an ISO 20022 camt.053 bank-to-customer statement (any version; XSD-validated .001.02-.001.08)."""
    b = _Builder("camt053", source_file)
    if not data.strip():
        return b.fail("EMPTY_FILE", "the file is empty" if not data else "the file contains only whitespace")
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(**_XML_PARSER))
    except etree.XMLSyntaxError as e:
        return b.fail("BANK_SYNTAX", f"not well-formed XML: {e}", data)
    ns = etree.QName(root).namespace or ""
    c = _Camt(ns)
    container = root.find(c.p("BkToCstmrStmt"))
    if _local(root) != "Document" or container is None:
        kind = _local(root[0]) if len(root) and isinstance(root[0].tag, str) else _local(root)
        return b.fail("UNSUPPORTED_DOCUMENT", f"an XML document that is not a camt.053 statement "
                      f"(namespace {ns or 'none'}, content {kind}); camt.052/054 reports are not read here", data)

    # schema validation: an error inside an entry rejects that entry; others are reported per statement
    entry_errors: dict[Any, list[str]] = {}
    other_errors: dict[Any, list[str]] = {}
    xsd = camt053_schema_for(ns)
    if xsd is not None:
        schema = _schema(str(xsd))
        if not schema.validate(root):
            tree = root.getroottree()
            for err in schema.error_log:
                found = tree.xpath(err.path) if err.path else []
                node, ntry, stmt = (found[0] if found else None), None, None
                while node is not None:
                    name = _local(node) if isinstance(node.tag, str) else ""
                    if name == "Ntry" and ntry is None:
                        ntry = node
                    if name == "Stmt":
                        stmt = node
                        break
                    node = node.getparent()
                msg = f"line {err.line}: {err.message}"
                (entry_errors if ntry is not None else other_errors).setdefault(
                    ntry if ntry is not None else stmt, []).append(msg)
    if None in other_errors:
        b.reject("document", "BANK_SCHEMA", f"camt.053 schema {xsd.name if xsd else ''}: "
                 + "; ".join(other_errors[None][:5]), None)

    for sno, stmt in enumerate(container.iterfind(c.p("Stmt")), 1):
        _camt_statement(c, stmt, sno, b, entry_errors, other_errors.get(stmt), xsd)
    return b.finish()


def _camt_statement(c: _Camt, stmt: Any, sno: int, b: _Builder, entry_errors: dict,
                    stmt_errors: list[str] | None, xsd: Path | None) -> None:
    account = norm_account(c.x(stmt, "Acct/Id/IBAN") or c.x(stmt, "Acct/Id/Othr/Id"))
    opening, odate, occy = c.balance(stmt, ("OPBD", "PRCD"))
    closing, cdate, cccy = c.balance(stmt, ("CLBD",))
    currency = (c.x(stmt, "Acct/Ccy") or occy or cccy or "").upper() or None
    sdate = cdate or _iso_date(c.x(stmt, "FrToDt/ToDtTm")) or _iso_date(c.x(stmt, "CreDtTm")) or odate
    statement_id = c.x(stmt, "Id") or _sha(f"camt053|{account}|{sdate}|{c.x(stmt, 'ElctrncSeqNb') or sno}")
    where = f"statement {sno} (line {stmt.sourceline})"
    schema_name = xsd.name if xsd else ""
    b.statement(statement_id, account, currency, sdate, opening, closing, where)
    if stmt_errors:
        more = f" (+{len(stmt_errors) - 5} more)" if len(stmt_errors) > 5 else ""
        b.reject(where, "BANK_SCHEMA", f"camt.053 schema {schema_name}: " + "; ".join(stmt_errors[:5]) + more,
                 None, statement_id=statement_id)
    if account is None:
        b.reject(where, "BANK_SYNTAX", "the statement has no Acct/Id (IBAN or Othr/Id): its entries cannot be "
                 "attributed to an account", None, statement_id=statement_id)

    for eno, ntry in enumerate(stmt.iterfind(c.p("Ntry")), 1):
        loc = f"statement {sno}, entry {eno} (line {ntry.sourceline})"

        def rej(code: str, msg: str, _loc: str = loc, _ntry: Any = ntry) -> None:
            b.reject(_loc, code, msg, etree.tostring(_ntry, encoding="unicode"), statement_id=statement_id)

        if account is None:
            rej("BANK_SYNTAX", "the statement has no account identification")
            continue
        if ntry in entry_errors:
            rej("BANK_SCHEMA", f"camt.053 schema {schema_name}: " + "; ".join(entry_errors[ntry][:5]))
            continue
        status = (c.x(ntry, "Sts") or c.x(ntry, "Sts/Cd") or "BOOK").upper()
        if status != "BOOK":
            rej("BANK_NO_MONEY_MOVEMENT", f"entry status {status} (not booked)")
            continue
        amount, ccy, present = c.amount(ntry)
        sign = _camt_sign(c.x(ntry, "CdtDbtInd"))
        if not present:
            rej("BANK_SYNTAX", "the entry has no Amt")
            continue
        if amount is None or amount < 0:
            rej("BANK_BAD_AMOUNT", f"entry amount {c.x(ntry, 'Amt')!r} is not a non-negative amount in cents")
            continue
        if sign is None:
            rej("BANK_SYNTAX", f"CdtDbtInd is {c.x(ntry, 'CdtDbtInd')!r}, not CRDT or DBIT")
            continue
        booking, value = c.xdate(ntry, "BookgDt"), c.xdate(ntry, "ValDt")
        if booking is False or value is False:
            rej("BANK_BAD_DATE", "BookgDt or ValDt is not a date")
            continue
        booking = booking or value or sdate
        if booking is None:
            rej("BANK_BAD_DATE", "the entry has no booking date and the statement no date")
            continue
        entry_ref = c.x(ntry, "AcctSvcrRef")
        kind = "fee" if c.x(ntry, "BkTxCd/Domn/Fmly/SubFmlyCd") in ("CHRG", "COMM") else None
        txs = ntry.findall(c.p("NtryDtls/TxDtls"))
        signed_entry = amount * sign
        common = dict(statement_id=statement_id, account=account, currency=ccy or currency,
                      booking_date=booking, value_date=value or None, kind=kind)

        if len(txs) > 1:
            tx_amounts = []
            for tx in txs:
                ta, tccy, tpresent = c.amount(tx)
                if not tpresent:
                    ta, tccy, tpresent = c.amount(tx, "AmtDtls/TxAmt/Amt")
                tsign = _camt_sign(c.x(tx, "CdtDbtInd")) or sign
                tx_amounts.append((ta * tsign if ta is not None else None, tccy, tpresent))
            if any(p for _, _, p in tx_amounts):
                signed = [a for a, _, _ in tx_amounts]
                if (None in signed or not all(p for _, _, p in tx_amounts)
                        or any(t and ccy and t != ccy for _, t, _ in tx_amounts) or sum(signed) != signed_entry):
                    got = ", ".join(str(a) for a in signed)
                    rej("BANK_BATCH_MISMATCH", f"batch entry of {signed_entry} {ccy} has {len(txs)} transaction "
                        f"details whose amounts ({got}) do not add up to it")
                    continue
                for tno, (tx, ta) in enumerate(zip(txs, signed, strict=True), 1):
                    b.line(seq=f"{sno}.{eno}.{tno}", amount=ta,
                           bank_reference=c.x(tx, "Refs/AcctSvcrRef") or entry_ref, fee=c.fee(tx),
                           location=f"statement {sno}, entry {eno}, transaction {tno} (line {tx.sourceline})",
                           raw=etree.tostring(tx, encoding="unicode"), **c.tx_fields(tx, ta), **common)
                continue
        f = c.tx_fields(txs[0], signed_entry) if len(txs) == 1 else c.batch_fields(txs, signed_entry)
        if not f["remittance"]:
            f["remittance"] = _clean(c.x(ntry, "AddtlNtryInf"))
        fee = c.fee(txs[0]) if len(txs) == 1 else _ZERO
        b.line(seq=f"{sno}.{eno}", amount=signed_entry,
               bank_reference=entry_ref or (c.x(txs[0], "Refs/AcctSvcrRef") if len(txs) == 1 else None),
               fee=fee if fee != _ZERO else c.fee(ntry), location=loc,
               raw=etree.tostring(ntry, encoding="unicode"), **f, **common)


def write_camt053(statement: dict, lines: list[dict], *, version: str = "02") -> str:
    """Write a camt.053.001.<version> document with one statement (demo and round-trip tests).

    ``statement``: statement_id, account (an IBAN is written as Id/IBAN, anything else as Id/Othr/Id),
    currency, statement_date, opening_balance (OPBD), closing_balance (CLBD). ``lines``: amount (signed),
    booking_date, optional value_date, bank_reference (AcctSvcrRef), end_to_end_id, payer_name,
    payer_account, remittance (Ustrd), creditor_ref (Strd/CdtrRefInf/Ref), kind ('fee': BkTxCd
    sub-family CHRG) and batch: consecutive lines with the same non-null ``batch`` are written as one
    batch entry with one TxDtls each (TxDtls/Amt from .001.03 on, AmtDtls/TxAmt in .001.02). Valid against the
    vendored XSD of every version .001.02-.001.08.
    """
    v = int(version)
    ns = f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}"
    ccy = statement["currency"]
    sd: date = statement["statement_date"]

    def E(parent: Any, tag: str, text: Any = None, **attrs: str) -> Any:  # noqa: N802
        el = etree.SubElement(parent, f"{{{ns}}}{tag}", **attrs)
        if text is not None:
            el.text = str(text)
        return el

    def amt(parent: Any, value: Decimal) -> None:
        E(parent, "Amt", f"{abs(Decimal(value)):.2f}", Ccy=ccy)

    def acct_id(parent: Any, account: str) -> None:
        idn = E(parent, "Id")
        if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{1,30}", account):
            E(idn, "IBAN", account)
        else:
            E(E(idn, "Othr"), "Id", account)

    root = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    rpt = E(root, "BkToCstmrStmt")
    hdr = E(rpt, "GrpHdr")
    E(hdr, "MsgId", f"MSG-{statement['statement_id']}"[:35])
    E(hdr, "CreDtTm", f"{sd.isoformat()}T23:59:00")
    st = E(rpt, "Stmt")
    E(st, "Id", statement["statement_id"])
    E(st, "CreDtTm", f"{sd.isoformat()}T23:59:00")
    acct = E(st, "Acct")
    acct_id(acct, statement["account"])
    E(acct, "Ccy", ccy)
    for code, value in (("OPBD", statement["opening_balance"]), ("CLBD", statement["closing_balance"])):
        bal = E(st, "Bal")
        E(E(E(bal, "Tp"), "CdOrPrtry"), "Cd", code)
        amt(bal, value)
        E(bal, "CdtDbtInd", "DBIT" if Decimal(value) < 0 else "CRDT")
        E(E(bal, "Dt"), "Dt", sd.isoformat())

    groups: list[list[dict]] = []
    for ln in lines:
        if ln.get("batch") is not None and groups and groups[-1][0].get("batch") == ln.get("batch"):
            groups[-1].append(ln)
        else:
            groups.append([ln])
    for grp in groups:
        first = grp[0]
        total = sum((Decimal(x["amount"]) for x in grp), Decimal("0"))
        ntry = E(st, "Ntry")
        amt(ntry, total)
        E(ntry, "CdtDbtInd", "DBIT" if total < 0 else "CRDT")
        if v >= 7:
            E(E(ntry, "Sts"), "Cd", "BOOK")
        else:
            E(ntry, "Sts", "BOOK")
        E(E(ntry, "BookgDt"), "Dt", first["booking_date"].isoformat())
        E(E(ntry, "ValDt"), "Dt", (first.get("value_date") or first["booking_date"]).isoformat())
        if first.get("bank_reference"):
            E(ntry, "AcctSvcrRef", first["bank_reference"])
        dom = E(E(ntry, "BkTxCd"), "Domn")
        E(dom, "Cd", "PMNT" if first.get("kind") != "fee" else "ACMT")
        fam = E(dom, "Fmly")
        E(fam, "Cd", ("RCDT" if total >= 0 else "ICDT") if first.get("kind") != "fee" else "MDOP")
        E(fam, "SubFmlyCd", "CHRG" if first.get("kind") == "fee" else "ESCT")
        dtls = E(ntry, "NtryDtls")
        for ln in grp:
            tx = E(dtls, "TxDtls")
            a = Decimal(ln["amount"])
            if ln.get("end_to_end_id"):
                E(E(tx, "Refs"), "EndToEndId", ln["end_to_end_id"])
            if v >= 3:  # TxDtls/Amt exists from .001.03 on (mandatory in .001.03)
                amt(tx, a)
                E(tx, "CdtDbtInd", "DBIT" if a < 0 else "CRDT")
            elif len(grp) > 1:
                amt(E(E(tx, "AmtDtls"), "TxAmt"), a)
            if ln.get("payer_name") or ln.get("payer_account"):
                role = "Dbtr" if a >= 0 else "Cdtr"
                parties = E(tx, "RltdPties")
                if ln.get("payer_name"):
                    party = E(parties, role)
                    E(E(party, "Pty") if v >= 7 else party, "Nm", ln["payer_name"])
                if ln.get("payer_account"):
                    acct_id(E(parties, f"{role}Acct"), ln["payer_account"])
            if ln.get("remittance") or ln.get("creditor_ref"):
                rmt = E(tx, "RmtInf")
                if ln.get("remittance"):
                    E(rmt, "Ustrd", ln["remittance"])
                if ln.get("creditor_ref"):
                    E(E(E(rmt, "Strd"), "CdtrRefInf"), "Ref", ln["creditor_ref"])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# Shopify payouts
# ---------------------------------------------------------------------------------------------------------

SHOPIFY_ACCOUNT = "SHOPIFY_PAYMENTS"


@_guarded("shopify_payout")
def read_shopify_payouts(data: bytes, source_file: str) -> BankFile:
    """Read Shopify Payments payouts (``{"payouts": [...]}`` or ``{"payout": {...}}``) and/or balance
    transactions (``{"transactions": [...]}``), together or apart; see the module docstring."""
    b = _Builder("shopify_payout", source_file)
    text = _decode(data, b)
    if isinstance(text, BankFile):
        return text
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return b.fail("INVALID_JSON", f"not valid JSON: {e}", text)
    if not isinstance(doc, dict) or not ({"payouts", "payout", "transactions"} & doc.keys()):
        return b.fail("UNSUPPORTED_DOCUMENT", "JSON without 'payouts', 'payout' or 'transactions': not a "
                      "Shopify payouts document", text)
    payouts = doc.get("payouts") if "payouts" in doc else [doc["payout"]] if "payout" in doc else []
    txs = doc.get("transactions") or []
    ptr_p = "/payouts" if "payouts" in doc else "/payout"
    if not isinstance(payouts, list) or not isinstance(txs, list):
        return b.fail("BANK_SYNTAX", "'payouts' and 'transactions' must be lists", text)

    known: dict[str, dict[str, Any]] = {}  # payout id -> its statement fields
    payout_obj_ptr: dict[str, tuple[str, dict]] = {}
    for i, p in enumerate(payouts):
        ptr = f"{ptr_p}/{i}" if "payouts" in doc else ptr_p
        raw = json.dumps(p, sort_keys=True)
        if not isinstance(p, dict) or p.get("id") is None:
            b.reject(ptr, "BANK_SYNTAX", "a payout without an id", raw)
            continue
        pid = str(p["id"])
        amount, d = _money_text(p.get("amount")), _iso_date(p.get("date"))
        if amount is None:
            b.reject(ptr, "BANK_BAD_AMOUNT", f"payout amount {p.get('amount')!r} is not a decimal in cents", raw)
            continue
        if d is None:
            b.reject(ptr, "BANK_BAD_DATE", f"payout date {p.get('date')!r} is not a date", raw)
            continue
        ccy = str(p.get("currency") or "").upper() or None
        known[pid] = {"currency": ccy, "date": d, "closing": amount, "location": ptr}
        payout_obj_ptr[pid] = (ptr, p)

    deposit_from_tx: set[str] = set()
    pending: list[tuple[int, dict]] = []
    for k, t in enumerate(txs):
        ptr = f"/transactions/{k}"
        raw = json.dumps(t, sort_keys=True)
        if not isinstance(t, dict):
            b.reject(ptr, "BANK_SYNTAX", "a transaction that is not a JSON object", raw)
            continue
        order_ref = None if t.get("source_order_id") is None else str(t["source_order_id"])
        net, fee = _money_text(t.get("net")), _money_text(t.get("fee", "0"))
        if net is None or fee is None:
            b.reject(ptr, "BANK_BAD_AMOUNT", f"net {t.get('net')!r} or fee {t.get('fee')!r} is not a decimal "
                     "in cents", raw, order_ref)
            continue
        d = _iso_date(t.get("processed_at"))
        if d is None:
            b.reject(ptr, "BANK_BAD_DATE", f"processed_at {t.get('processed_at')!r} is not a date", raw, order_ref)
            continue
        pending.append((k, t))
        pid = "pending" if t.get("payout_id") is None else str(t["payout_id"])
        st = known.setdefault(pid, {"currency": str(t.get("currency") or "").upper() or None, "date": None,
                                    "closing": None, "location": ptr, "synth": True})
        if t.get("type") == "payout":
            deposit_from_tx.add(pid)
            if st.get("synth"):
                st["closing"], st["date"] = -net, d
        if st.get("synth") and st["date"] is None:
            st["date"] = d

    for pid, st in known.items():
        b.statement(f"shopify-payout-{pid}", SHOPIFY_ACCOUNT, st["currency"], st["date"], _ZERO,
                    st["closing"] if pid != "pending" else None, st["location"])
    for pid, (ptr, p) in payout_obj_ptr.items():
        if pid in deposit_from_tx:
            continue
        st = known[pid]
        b.line(seq=ptr, statement_id=f"shopify-payout-{pid}", account=SHOPIFY_ACCOUNT, currency=st["currency"],
               amount=st["closing"], booking_date=st["date"], bank_reference=pid, kind="payout",
               remittance=f"Shopify payout {pid} ({p.get('status') or 'status unknown'})", location=ptr,
               raw=json.dumps(p, sort_keys=True))
    for k, t in pending:
        ptr = f"/transactions/{k}"
        pid = "pending" if t.get("payout_id") is None else str(t["payout_id"])
        net, fee, d = _money_text(t.get("net")), _money_text(t.get("fee", "0")), _iso_date(t.get("processed_at"))
        is_payout = t.get("type") == "payout"
        order_ref = None if t.get("source_order_id") is None else str(t["source_order_id"])
        b.line(seq=ptr, statement_id=f"shopify-payout-{pid}", account=SHOPIFY_ACCOUNT,
               currency=str(t.get("currency") or known[pid]["currency"] or "").upper() or None,
               amount=-net if is_payout else net, booking_date=d, fee=_ZERO if is_payout else fee,
               bank_reference=str(t["payout_id"]) if is_payout else (str(t["id"]) if t.get("id") else None),
               kind="payout" if is_payout else str(t.get("type") or "adjustment").lower(),
               order_ref=order_ref,
               remittance=f"Shopify payout {pid}" if is_payout else _clean(
                   f"{t.get('type')} {t.get('source_type') or ''} {t.get('source_order_transaction_id') or ''}"),
               location=ptr, raw=json.dumps(t, sort_keys=True))
    return b.finish()


# ---------------------------------------------------------------------------------------------------------
# Amazon settlement report (flat file V2)
# ---------------------------------------------------------------------------------------------------------

AMAZON_COLUMNS = (
    "settlement-id", "settlement-start-date", "settlement-end-date", "deposit-date", "total-amount", "currency",
    "transaction-type", "order-id", "merchant-order-id", "adjustment-id", "shipment-id", "marketplace-name",
    "amount-type", "amount-description", "amount", "fulfillment-id", "posted-date", "posted-date-time",
    "order-item-code", "merchant-order-item-id", "merchant-adjustment-item-id", "sku", "quantity-purchased",
    "promotion-id",
)
AMAZON_ACCOUNT = "AMAZON"


def _amazon_date(text: str | None) -> date | None:
    """'2024-01-15', '2024-01-15 07:00:00 UTC', '2024-01-15T07:00:00+00:00' or '15.01.2024'."""
    if not text:
        return None
    d = _iso_date(text)
    if d:
        return d
    m = re.match(r"^\s*(\d{2})\.(\d{2})\.(\d{4})", text)
    if m:
        try:
            return date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            return None
    return None


def _amazon_amount(text: str | None) -> Decimal | None:
    """'12.34', '-5', or the EU decimal comma '12,34'; thousands separators are refused."""
    t = (text or "").strip()
    if re.fullmatch(r"[+-]?\d+,\d{1,2}", t):
        t = t.replace(",", ".")
    return _money_text(t)


@_guarded("amazon_settlement")
def read_amazon_settlement(data: bytes, source_file: str) -> BankFile:
    """Read an Amazon settlement report (flat file V2, tab-separated, header row, totals in the first row)."""
    b = _Builder("amazon_settlement", source_file)
    text = _decode(data, b)
    if isinstance(text, BankFile):
        return text
    rows = text.splitlines()
    header = [h.strip().lower() for h in rows[0].split("\t")]
    missing = [c for c in ("settlement-id", "total-amount", "currency", "transaction-type", "amount", "order-id",
                           "amount-type", "amount-description", "posted-date") if c not in header]
    if missing:
        return b.fail("BANK_SYNTAX", f"not an Amazon settlement flat file V2: header lacks {', '.join(missing)}",
                      text)
    idx = {c: i for i, c in enumerate(header)}
    body = [(n, r) for n, r in enumerate(rows[1:], 2) if r.strip()]
    totals_row = None
    for n, r in body:
        f = r.split("\t")
        if len(f) == len(header) and f[idx["total-amount"]].strip():
            totals_row = (n, f)
            break
    if totals_row is None:
        return b.fail("BANK_SYNTAX", "no settlement totals row (the first data row carries total-amount)", text)
    tn, tf = totals_row
    sid = tf[idx["settlement-id"]].strip()
    total = _amazon_amount(tf[idx["total-amount"]])
    currency = tf[idx["currency"]].strip().upper() or None
    dep = tf[idx["deposit-date"]] if "deposit-date" in idx else None
    sdate = _amazon_date(dep) or _amazon_date(tf[idx["settlement-end-date"]] if "settlement-end-date" in idx
                                              else None)
    statement_id = f"amazon-settlement-{sid}"
    where = f"line {tn}"
    if total is None:
        b.reject(where, "BANK_BAD_AMOUNT", f"total-amount {tf[idx['total-amount']]!r} is not a decimal in cents",
                 "\t".join(tf), statement_id=statement_id)
    b.statement(statement_id, AMAZON_ACCOUNT, currency, sdate, _ZERO if total is not None else None, total,
                where)
    if total is not None:  # the deposit: what the bank statement shows (clears the settlement's captures)
        b.line(seq=str(tn), statement_id=statement_id, account=AMAZON_ACCOUNT, currency=currency, amount=total,
               booking_date=sdate, bank_reference=sid, kind="payout",
               remittance=f"Amazon settlement {sid} deposit", location=where, raw="\t".join(tf))

    def get(f: list[str], col: str) -> str | None:
        i = idx.get(col)
        return (f[i].strip() or None) if i is not None else None

    for n, r in body:
        if n == tn:
            continue
        f = r.split("\t")
        loc = f"line {n}"
        if len(f) != len(header):
            b.reject(loc, "BANK_SYNTAX", f"{len(f)} tab-separated fields, the header has {len(header)}", r,
                     statement_id=statement_id)
            continue
        order_ref = get(f, "order-id")
        if get(f, "settlement-id") not in (None, sid):
            b.reject(loc, "BANK_SYNTAX", f"row of settlement {get(f, 'settlement-id')} in the report of {sid}",
                     r, order_ref, statement_id=statement_id)
            continue
        amount = _amazon_amount(get(f, "amount"))
        if amount is None:
            b.reject(loc, "BANK_BAD_AMOUNT", f"amount {get(f, 'amount')!r} is not a decimal in cents", r, order_ref,
                     statement_id=statement_id)
            continue
        posted = _amazon_date(get(f, "posted-date")) or _amazon_date(get(f, "posted-date-time"))
        if posted is None:
            b.reject(loc, "BANK_BAD_DATE", f"posted-date {get(f, 'posted-date')!r} is not a date", r, order_ref,
                     statement_id=statement_id)
            continue
        ttype, atype = get(f, "transaction-type") or "", get(f, "amount-type") or ""
        kind = ("fee" if atype.lower() == "itemfees" else "refund" if ttype.lower() == "refund"
                else "charge" if ttype.lower() == "order" else "adjustment")
        rem = " ".join(x for x in (ttype, atype, get(f, "amount-description"),
                                   f"sku={get(f, 'sku')}" if get(f, "sku") else None,
                                   get(f, "merchant-order-id")) if x)
        b.line(seq=str(n), statement_id=statement_id, account=AMAZON_ACCOUNT, currency=currency, amount=amount,
               booking_date=posted, bank_reference=get(f, "shipment-id") or get(f, "adjustment-id"),
               remittance=_clean(rem), kind=kind, order_ref=order_ref, location=loc, raw=r)
    return b.finish()


# ---------------------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------------------


def detect_format(data: bytes) -> str | None:
    """The format of a bank / payout file from its content (never its extension), or None."""
    head = data[:65536].lstrip(b"\xef\xbb\xbf \t\r\n")
    text = head.decode("utf-8", "replace")
    if head.startswith(b"<"):
        return "camt053" if "BkToCstmrStmt" in text or "camt.053" in text else None
    if head.startswith(b"{"):
        return "shopify_payout" if re.search(r'"(payouts|payout|transactions)"\s*:', text) else None
    first = text.splitlines()[0] if text else ""
    if first.startswith("01,"):
        return "bai2"
    if "\t" in first and "settlement-id" in first.lower():
        return "amazon_settlement"
    if re.search(r"(?m)^:20:", text) and re.search(r"(?m)^:(60[FM]|61|62[FM]):", text):
        return "mt940"
    return None


_READERS = {
    "mt940": read_mt940, "bai2": read_bai2, "camt053": read_camt053,
    "shopify_payout": read_shopify_payouts, "amazon_settlement": read_amazon_settlement,
}


def read_bank_file(data: bytes, source_file: str) -> BankFile:
    """Detect the format from the content and read the file; unknown content is one UNSUPPORTED_DOCUMENT."""
    if not data.strip():
        return _Builder("mt940", source_file).fail(
            "EMPTY_FILE", "the file is empty" if not data else "the file contains only whitespace")
    fmt = detect_format(data)
    if fmt is None:
        return _Builder("mt940", source_file).fail(
            "UNSUPPORTED_DOCUMENT", "not a bank statement or payout file this reader knows (MT940, BAI2, "
            "camt.053, Shopify payouts JSON, Amazon settlement report)", data)
    return _READERS[fmt](data, source_file)


__all__ = [
    "BankFile", "REASONS", "LINE_SCHEMA", "STATEMENT_SCHEMA", "REJECTED_SCHEMA", "detect_format",
    "read_bank_file", "read_mt940", "read_bai2", "read_camt053", "read_shopify_payouts",
    "read_amazon_settlement", "write_mt940", "write_bai2", "write_camt053", "camt053_schema_for",
    "norm_account",
]
