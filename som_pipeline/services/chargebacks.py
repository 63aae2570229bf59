"""Chargebacks service: the payment disputes in ``landing/chargebacks`` kept in ``core.chargebacks``.

Each file (``billing.disputes``: Shopify Payments disputes, a processor's dispute report) is a status report:
every dispute is resolved to our order (our order id, else the channel's order reference; Shopify disputes
against Shopify orders) and upserted by ``chargeback_id`` at its latest status -- ``first_seen_at`` kept,
``updated_at`` moved only when something changed, so re-dropping a file changes nothing. Files are taken in
arrival order (the landing protocol's), so of two reports of a dispute in one run the later one stands. A dispute naming an
order we do not know is quarantined ``CHARGEBACK_UNKNOWN_ORDER``; a dispute in another currency than its order
``CHARGEBACK_CURRENCY_MISMATCH``. Counts conserve per file (ledger row in ``ops.ingest_files``).

What it does to an order is closure's business: ``charged_back`` (the money out of our hands: a chargeback
open, lost, accepted or refunded) is taken from what was paid, so a closed order charged back is open again
(``REOPENED``, "PAYMENT_OPEN; charged_back_amount 0.00 -> 25.00"), and one whose dispute is won closes again.
Called by the returns asset, before closure.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from som_pipeline.billing.disputes import MONEY_OUT, read_disputes
from som_pipeline.schemas import ChargebackModel, conform
from som_pipeline.services.stock import feed_quarantine, record_feed_file
from som_pipeline.warehouse import registered, replace_keys, select_keys, transaction

FEED = "chargebacks"
_COMPARE = ("order_id", "kind", "amount", "currency", "reason", "network_reason_code", "status", "channel_status",
            "resolved_at", "evidence_due_at")


def take_dispute_file(con, f, data: bytes, now: datetime) -> tuple[int, int]:
    """Read one dispute file and upsert its disputes; ``(disputes changed, quarantined)``. One transaction with
    the file's ledger row and quarantine."""
    df = read_disputes(data, f.name)
    rows, rejected = df.disputes, df.rejected
    at = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    if rows.height:
        with registered(con, rows.select(pl.col("order_ref").alias("ref")).unique()) as k:
            orders = con.execute(f"""
                SELECT o.order_id, o.channel, o.channel_order_ref, o.currency FROM core.orders o
                WHERE o.order_id IN (SELECT ref FROM {k}) OR o.channel_order_ref IN (SELECT ref FROM {k})""").pl()  # noqa: S608
        by_id = orders.select(pl.col("order_id").alias("order_ref"), "order_id", pl.col("currency").alias("_ocur"))
        # the channel's reference: a Shopify dispute names a Shopify order; a processor's, any channel's (one match)
        by_ref = (orders.select(pl.col("channel_order_ref").alias("order_ref"), "channel",
                                pl.col("order_id").alias("_rid"), pl.col("currency").alias("_rcur"))
                  .with_columns(pl.len().over("order_ref").alias("_n")))
        rows = (rows.join(by_id, on="order_ref", how="left")
                .join(by_ref.filter(pl.col("channel") == "shopify").drop("channel", "_n")
                      .rename({"_rid": "_sid", "_rcur": "_scur"}), on="order_ref", how="left")
                .join(by_ref.filter(pl.col("_n") == 1).drop("channel", "_n"), on="order_ref", how="left")
                .with_columns(
                    pl.when(pl.col("order_id").is_not_null()).then(pl.col("order_id"))
                    .when(pl.col("source") == "shopify").then(pl.col("_sid"))
                    .otherwise(pl.col("_rid")).alias("order_id"),
                    pl.when(pl.col("order_id").is_not_null()).then(pl.col("_ocur"))
                    .when(pl.col("source") == "shopify").then(pl.col("_scur"))
                    .otherwise(pl.col("_rcur")).alias("_order_currency")))
        unknown = rows.filter(pl.col("order_id").is_null()).select(
            "location", "order_ref", pl.lit("CHARGEBACK_UNKNOWN_ORDER").alias("reason_code"),
            pl.format("dispute {} names order '{}', which is not an order we know (our order id or the channel's "
                      "order reference)", pl.col("chargeback_id"), pl.col("order_ref")).alias("message"), "raw")
        wrong_cur = rows.filter(pl.col("order_id").is_not_null(), pl.col("currency") != pl.col("_order_currency")
                                ).select(
            "location", "order_ref", pl.lit("CHARGEBACK_CURRENCY_MISMATCH").alias("reason_code"),
            pl.format("dispute {} is in {} but order {} is in {}", pl.col("chargeback_id"), pl.col("currency"),
                      pl.col("order_id"), pl.col("_order_currency")).alias("message"), "raw")
        rows = rows.filter(pl.col("order_id").is_not_null(), pl.col("currency") == pl.col("_order_currency"))
        rejected = pl.concat([rejected, unknown.cast(rejected.schema), wrong_cur.cast(rejected.schema)])
    rows = rows.with_columns(
        pl.when((pl.col("kind") == "chargeback") & pl.col("status").is_in(MONEY_OUT)).then(pl.col("amount"))
        .otherwise(pl.lit(0).cast(pl.Decimal(18, 2))).alias("charged_back"),
        at.alias("first_seen_at"), at.alias("updated_at"))
    new = conform(rows, ChargebackModel) if rows.height else conform(pl.DataFrame(), ChargebackModel).clear()
    old = select_keys(con, "core.chargebacks", new.select("chargeback_id")) if new.height else new.clear()
    if old.height:  # the same status again changes nothing; a new status keeps when it was first seen
        new = (new.join(old.select("chargeback_id", *_COMPARE), on=["chargeback_id", *_COMPARE], how="anti",
                        nulls_equal=True)
               .join(old.select("chargeback_id", pl.col("first_seen_at").alias("_first")), on="chargeback_id",
                     how="left")
               .with_columns(pl.coalesce("_first", "first_seen_at").alias("first_seen_at")).drop("_first"))
    quarantine = feed_quarantine(rejected, FEED, "dispute", f.name, f.sha, now)
    with transaction(con):
        if new.height:
            replace_keys(con, "core.chargebacks", new.select("chargeback_id"), new)
        record_feed_file(con, f, FEED, df.received, quarantine, now)
    return new.height, quarantine.height


__all__ = ["FEED", "take_dispute_file"]
