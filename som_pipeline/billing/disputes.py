"""Chargebacks in: payment disputes, bytes -> typed rows + rejects. Pure, never raises on bad input.

A chargeback is the payer's bank taking a payment back (a card dispute, a reversed direct debit): the money
leaves us without a return, a refund or a credit note of ours, so an order closed as paid is open again. The
file lands in ``landing/chargebacks/``; :func:`read_disputes` reads

- **Shopify Payments disputes** (``GET /admin/api/<version>/shopify_payments/disputes.json``):
  ``{"disputes": [...]}``, ``{"dispute": {...}}`` or a bare list of dispute objects with ``id``, ``order_id``,
  ``type`` (``chargeback`` | ``inquiry``), ``amount`` (decimal text), ``currency``, ``reason``,
  ``network_reason_code``, ``status`` (``needs_response``, ``under_review``, ``charge_refunded``, ``accepted``,
  ``won``, ``lost``), ``evidence_due_by``, ``evidence_sent_on``, ``finalized_on``, ``initiated_at``;
- **a processor's dispute report** (CSV with a header, JSON lines or a JSON array): ``dispute_id``,
  ``order_ref`` (our order id or the channel's order reference), ``type`` (default ``chargeback``),
  ``amount``, ``currency``, ``reason``, ``status``, ``opened_at``, ``resolved_at``, ``evidence_due_by``.
  The Shopify keys are accepted there too (``id``, ``order_id``, ``initiated_at``, ``finalized_on``).

Column / key names are case-insensitive. A dispute file is a *status report*: the same dispute comes again
when its status moves (``needs_response`` -> ``under_review`` -> ``won``); the service keeps the latest.

Rows (:data:`DISPUTE_SCHEMA`)
-----------------------------
``chargeback_id`` = ``<source>:<dispute id>`` (``shopify`` when the record has Shopify's ``initiated_at`` or the
file is a ``disputes`` document, else ``processor``; no id: ``sha256(order_ref|amount|currency|opened_at)``), so
the same dispute in another file has the same id. ``kind`` = ``chargeback`` | ``inquiry`` (an inquiry moves no
money). ``amount`` > 0, MONEY: the money disputed (Shopify's sign is ignored: a dispute is always money out).
``status`` is normalised (:data:`STATUS_MAP`) to

    open      needs_response, under_review, warning_needs_response, warning_under_review, open, pending
    won       won, reversed, warning_closed: the money came back (or never left)
    lost      lost
    accepted  accepted (the merchant did not contest: lost)
    refunded  charge_refunded: settled by refunding the charge (the money left)

**Money taken back** (:data:`MONEY_OUT`): a ``chargeback`` whose status is open, lost, accepted or refunded.
The issuer debits the money when the dispute opens and gives it back only when the merchant wins.

Rejections (house ``REJECT_SCHEMA``): ``MISSING_FIELD`` (order, amount, currency or status), ``BAD_AMOUNT``
(not a decimal, or 0), ``UNKNOWN_CURRENCY`` (not an active ISO 4217 code), ``BAD_DISPUTE_STATUS`` (unknown status),
``BAD_DISPUTE_TYPE``, ``BAD_DATE`` (the opening date), ``DUPLICATE_LINE`` (the same dispute twice in a file:
an identical copy counted once, a differing one rejected), plus the structural ``CSV_*``, ``INVALID_JSON``,
``EMPTY_FILE``, ``BAD_ENCODING``, ``UNREADABLE_FILE``. ``received == rows + rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from som_pipeline import money
from som_pipeline.fulfilment.scans import finish_rejects, first_problem, missing_fields, read_records
from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import parse_ts
from som_pipeline.iso_codes import CURRENCIES
from som_pipeline.returns.readers import _duplicates, guard, unwrap_records, with_pointers

FIELDS = ("dispute_id", "id", "order_ref", "order_id", "type", "amount", "currency", "reason",
          "network_reason_code", "status", "opened_at", "initiated_at", "resolved_at", "finalized_on",
          "evidence_due_by")
KINDS = ("chargeback", "inquiry")
STATUSES = ("open", "won", "lost", "accepted", "refunded")
STATUS_MAP = {
    "needs_response": "open", "under_review": "open", "warning_needs_response": "open",
    "warning_under_review": "open", "open": "open", "pending": "open",
    "won": "won", "reversed": "won", "warning_closed": "won",
    "lost": "lost", "accepted": "accepted", "charge_refunded": "refunded", "refunded": "refunded",
}
MONEY_OUT = ("open", "lost", "accepted", "refunded")
SOURCES = ("shopify", "processor")

DISPUTE_SCHEMA: dict[str, Any] = {
    "chargeback_id": pl.String, "source": pl.String, "dispute_ref": pl.String, "order_ref": pl.String,
    "kind": pl.String, "amount": money.MONEY, "currency": pl.String, "reason": pl.String,
    "network_reason_code": pl.String, "status": pl.String, "channel_status": pl.String,
    "opened_at": pl.Datetime("us", "UTC"), "resolved_at": pl.Datetime("us", "UTC"),
    "evidence_due_at": pl.Datetime("us", "UTC"), "source_file": pl.String, "location": pl.String, "raw": pl.String,
}


@dataclass
class DisputeFile:
    disputes: pl.DataFrame  # DISPUTE_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA (order_ref = the dispute's order reference)
    received: int  # disputes.height + rejected.height


def read_disputes(data: bytes, source_file: str) -> DisputeFile:
    """A dispute file (Shopify Payments disputes JSON, or a processor's CSV / JSON report) -> rows + rejects."""
    return guard(_read, data, source_file, DisputeFile, DISPUTE_SCHEMA)


def _read(data: bytes, source_file: str) -> DisputeFile:
    data, prefix, problem = unwrap_records(data, "disputes", "disputes", single="dispute")
    if problem is not None:
        return DisputeFile(pl.DataFrame(schema=DISPUTE_SCHEMA), problem, 1)
    rec = read_records(data, FIELDS, ("amount", "currency", "status"), "order_ref",
                       one_of=("order_ref", "order_id"))
    df, structural = with_pointers([rec.rows, rec.rejected], prefix)
    shopify = pl.lit(prefix is not None) | pl.col("initiated_at").is_not_null()
    amount_text = pl.col("amount").str.strip_chars().str.strip_prefix("-")
    amount_ok = amount_text.str.contains(r"^\d{1,15}(\.\d{1,2})?$")
    amount = pl.when(amount_ok).then(amount_text).otherwise(None).str.to_decimal(scale=2).cast(money.MONEY)
    status_in = pl.col("status").str.strip_chars().str.to_lowercase().str.replace_all(r"[\s-]+", "_")
    df = df.with_columns(
        pl.coalesce("order_ref", "order_id").str.strip_chars().alias("_order"),
        pl.coalesce("dispute_id", "id").str.strip_chars().alias("_ref"),
        pl.coalesce(pl.col("type").str.strip_chars().str.to_lowercase(), pl.lit("chargeback")).alias("_kind"),
        amount.alias("_amount"), amount_ok.alias("_amount_ok"),
        pl.col("currency").str.strip_chars().str.to_uppercase().alias("_cur"),
        status_in.alias("_status_in"), status_in.replace_strict(STATUS_MAP, default=None).alias("_status"),
        pl.coalesce("opened_at", "initiated_at").alias("_opened_text"),
        pl.coalesce("resolved_at", "finalized_on").alias("_resolved_text"),
        pl.when(shopify).then(pl.lit("shopify")).otherwise(pl.lit("processor")).alias("_source"),
    )
    df = df.with_columns(parse_ts("_opened_text").alias("_opened"), parse_ts("_resolved_text").alias("_resolved"),
                         parse_ts("evidence_due_by").alias("_due"))
    missing = pl.concat_str([
        pl.when(pl.col("_order").is_null() | (pl.col("_order") == "")).then(pl.lit("order_ref")),
        missing_fields(("amount", "currency", "status")).replace("", None),
    ], separator=", ", ignore_nulls=True)
    code, msg = first_problem([
        (missing != "", "MISSING_FIELD", pl.format("required field(s) empty: {}", missing)),
        (~pl.col("_amount_ok") | (pl.col("_amount") == 0), "BAD_AMOUNT",
         pl.format("amount '{}' is not a non-zero decimal with at most 2 places", pl.col("amount"))),
        (~pl.col("_cur").is_in(sorted(CURRENCIES)), "UNKNOWN_CURRENCY",
         pl.format("currency '{}' is not an active ISO 4217 code", pl.col("currency"))),
        (pl.col("_status").is_null(), "BAD_DISPUTE_STATUS",
         pl.format("status '{}' is not one of {}", pl.col("status"), pl.lit(", ".join(sorted(STATUS_MAP))))),
        (~pl.col("_kind").is_in(KINDS), "BAD_DISPUTE_TYPE",
         pl.format("type '{}' is not chargeback or inquiry", pl.col("type"))),
        (pl.col("_opened").is_null(), "BAD_DATE",
         pl.format("opened_at / initiated_at '{}' is not an ISO date/time (e.g. 2026-11-26T08:30:00-05:00)",
                   pl.col("_opened_text").fill_null(""))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message"),
                         pl.col("_order").alias("order_ref"))
    ok = df.filter(pl.col("reason_code").is_null())
    content = pl.concat_str([pl.col("_order"), pl.col("_amount").cast(pl.String), pl.col("_cur"),
                             pl.col("_opened").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")], separator="|")
    ok = ok.with_columns(pl.format("{}:{}", pl.col("_source"),
                                   pl.coalesce(pl.col("_ref"), sha256_series(content, ok))).alias("chargeback_id"))
    ok = _duplicates(ok, ["chargeback_id"], ["_order", "_kind", "_amount", "_cur", "_status", "_opened", "_resolved"],
                     pl.format("dispute {}", pl.col("chargeback_id")))
    bad = pl.concat([d.filter(pl.col("reason_code").is_not_null())
                     .select("_n", "location", "order_ref", "reason_code", "message", "raw") for d in (df, ok)])
    good = ok.filter(pl.col("reason_code").is_null()).sort("_n").select(
        "chargeback_id", pl.col("_source").alias("source"), pl.col("_ref").alias("dispute_ref"), "order_ref",
        pl.col("_kind").alias("kind"), pl.col("_amount").alias("amount"), pl.col("_cur").alias("currency"),
        pl.col("reason").str.strip_chars(), pl.col("network_reason_code").str.strip_chars(),
        pl.col("_status").alias("status"), pl.col("_status_in").alias("channel_status"),
        pl.col("_opened").alias("opened_at"), pl.col("_resolved").alias("resolved_at"),
        pl.col("_due").alias("evidence_due_at"), pl.lit(source_file).alias("source_file"), "location", "raw",
    ).cast(DISPUTE_SCHEMA)
    return DisputeFile(good, finish_rejects(structural, bad), good.height + structural.height + bad.height)


__all__ = ["DISPUTE_SCHEMA", "MONEY_OUT", "STATUS_MAP", "DisputeFile", "read_disputes"]
