"""From captured observations to canonical orders: versions, the live order, probable duplicates.

Rules (documented in README "Dedup and versions"):
- One order per ``(channel, channel_order_ref)``; ``order_id = <CODE>-<channel_order_ref>``.
- Observations of an order are ordered by the channel's own update time (``source_updated_at``; when the
  channel gives none, the capture time), then arrival sequence. An observation whose content hash equals
  the previous kept one is a repeat and is ignored; any change makes a new version. The last version is
  the live one (``core.orders``); all versions stay in ``core.order_versions`` / ``core.order_line_versions``.
  So a late-arriving *older* update never overwrites a newer one.
- The same customer PO number on more than one live order of the same customer (typically on two
  channels) is flagged in ``core.probable_duplicates``; nothing is dropped automatically.

:func:`build_orders` is a function of all the observations of the orders it is given: the service gives it
the observations of the orders that received new ones since the last run (an order is rebuilt whole, from all
its observations), so a run costs what it captured; a full rebuild gives it everything and the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from som_pipeline import money
from som_pipeline.ingest.channels import CHANNEL_CODES
from som_pipeline.schemas import (
    DailySalesModel,
    OrderLineModel,
    OrderLineVersionModel,
    OrderModel,
    OrderVersionModel,
    ProbableDuplicateModel,
    conform,
)


@dataclass
class OrderTables:
    orders: pl.DataFrame
    order_lines: pl.DataFrame
    order_versions: pl.DataFrame
    order_line_versions: pl.DataFrame
    probable_duplicates: pl.DataFrame


def order_id_expr() -> pl.Expr:
    return pl.concat_str([pl.col("channel").replace_strict(CHANNEL_CODES), pl.lit("-"), pl.col("channel_order_ref")])


def build_orders(headers: pl.DataFrame, lines: pl.DataFrame, aliases: pl.DataFrame) -> OrderTables:
    """``headers``: stage.order_headers; ``lines``: stage.order_lines; ``aliases``: ref.customer_aliases."""
    key = ["channel", "channel_order_ref"]
    h = headers.with_columns(pl.coalesce("source_updated_at", "captured_at").alias("_t")).sort(
        [*key, "_t", "capture_seq"]
    )
    h = h.filter(
        pl.col("content_hash").shift(1).over(key).is_null()
        | (pl.col("content_hash") != pl.col("content_hash").shift(1).over(key))
    )
    h = h.with_columns(
        order_id_expr().alias("order_id"),
        (pl.int_range(pl.len()).over(key) + 1).alias("version"),
        pl.col("captured_at").min().over(key).alias("first_captured_at"),
        pl.col("captured_at").shift(-1).over(key).alias("superseded_at"),
        pl.col("order_ts").dt.date().alias("order_date"),
    ).with_columns((pl.col("version") == pl.col("version").max().over(key)).alias("is_current"))

    h = h.join(alias_map(aliases), on=["channel", "customer_ref"], how="left")

    versions = conform(h, OrderVersionModel).sort("order_id", "version")
    orders = conform(h.filter(pl.col("is_current")), OrderModel).sort("order_id")

    lv = lines.join(h.select("capture_id", "order_id", "version", "is_current"), on="capture_id", how="inner")
    line_versions = conform(lv, OrderLineVersionModel).sort("order_id", "version", "line_no")
    order_lines = conform(lv.filter(pl.col("is_current")), OrderLineModel).sort("order_id", "line_no")

    return OrderTables(orders, order_lines, versions, line_versions, probable_duplicates(orders))


def alias_map(aliases: pl.DataFrame) -> pl.DataFrame:
    """``channel, customer_ref, customer_id`` from ref.customer_aliases (one row per channel reference: the
    reference loader keeps the last row of a duplicated key)."""
    return (aliases.select("channel", pl.col("external_ref").alias("customer_ref"), pl.col("customer_id"))
            .unique(subset=["channel", "customer_ref"], keep="first").sort("channel", "customer_ref"))


def duplicate_group() -> list[pl.Expr]:
    """``customer_key, _po``: the group in which one customer PO on several live orders is a probable duplicate."""
    return [
        pl.coalesce(
            pl.col("customer_id"), pl.concat_str([pl.col("channel"), pl.lit(":"), pl.col("customer_ref")])
        ).alias("customer_key"),
        pl.col("customer_po").str.strip_chars().str.to_uppercase().alias("_po"),
    ]


def probable_duplicates(orders: pl.DataFrame) -> pl.DataFrame:
    live = orders.filter(pl.col("customer_po").is_not_null() & pl.col("cancelled_at").is_null()).with_columns(
        duplicate_group()).filter(pl.col("customer_key").is_not_null())
    grp = ["customer_key", "_po"]
    dup = live.filter(pl.col("order_id").n_unique().over(grp) > 1).with_columns(
        pl.col("channel").n_unique().over(grp).alias("channels_involved"),
        pl.col("order_id").sort().implode().over(grp).alias("_all"),
    )
    dup = dup.with_columns(
        pl.col("_all").list.set_difference(pl.concat_list("order_id")).list.sort().list.join(",")
        .alias("other_order_ids")
    )
    return conform(dup, ProbableDuplicateModel).sort("customer_key", "customer_po", "order_id")


def daily_sales(orders: pl.DataFrame, lines: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    """Aggregate live orders placed in ``[start, end]`` (inclusive) per day × channel × currency."""
    o = orders.filter(pl.col("order_date").is_between(start, end))
    units = lines.group_by("order_id").agg(pl.col("quantity").sum().alias("_units"))
    o = o.join(units, on="order_id", how="left")
    zero = pl.lit(0).cast(money.MONEY)
    agg = o.group_by("order_date", "channel", "currency").agg(
        pl.len().alias("orders"),
        pl.col("line_count").sum().alias("lines"),
        pl.col("_units").sum().fill_null(0).alias("units"),
        pl.col("items_subtotal").sum().fill_null(zero).alias("items_subtotal"),
        pl.col("discount_total").sum().alias("discount_total"),
        pl.col("tax_total").sum().alias("tax_total"),
        pl.col("order_total").sum().fill_null(zero).alias("order_total"),
        (pl.col("unpriced_lines") > 0).sum().alias("unpriced_orders"),
        pl.col("cancelled_at").is_not_null().sum().alias("cancelled_orders"),
    )
    return conform(agg, DailySalesModel).sort("order_date", "channel", "currency")
