"""Pick waves and pick tasks (pure, vectorised).

A wave is the work a warehouse releases for one ship date: every open allocation whose expected ship date has
come (allocation already moved a line released after the warehouse's cutoff to the next business day, so a
wave released before the cutoff ships that day). Rules:

- **ship-complete** orders are released only when every unit of the order is allocated (``order_ready``);
  they then ship whole;
- a line is released only while the warehouse's **available** stock (``core.v_stock``) covers it, in order
  priority (earliest allocation first): the ledger never goes negative, and what is not released waits for
  the next wave;
- one task per allocated line x bin (``ref.bin_locations``: one pick face per SKU and warehouse; a SKU without
  one is picked from ``UNSLOTTED``, last on the walk);
- tasks are sequenced along a **serpentine walk**: zones in order, aisles ascending, bays ascending in odd
  aisles and descending in even ones (the picker never walks back down an aisle), then level.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from som_pipeline.hashing import sha256_series

UNSLOTTED = "UNSLOTTED"


def local_dates(warehouses: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """``warehouse_id, local_date, cutoff_at`` (today's cutoff in the warehouse's time zone, as UTC)."""
    ts = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    w = warehouses.select("warehouse_id", "timezone", "cutoff_time")
    parts = []
    for tz, g in w.group_by("timezone", maintain_order=True):  # one expression per time zone (a handful)
        local = ts.dt.convert_time_zone(tz[0])
        parts.append(g.with_columns(local.dt.date().alias("local_date")).with_columns(
            pl.col("local_date").dt.combine(pl.col("cutoff_time")).dt.replace_time_zone(tz[0])
            .dt.convert_time_zone("UTC").alias("cutoff_at")))
    if not parts:
        return pl.DataFrame(schema={"warehouse_id": pl.String, "local_date": pl.Date,
                                    "cutoff_at": pl.Datetime("us", "UTC")})
    return pl.concat(parts).select("warehouse_id", "local_date", "cutoff_at")


def releasable(open_alloc: pl.DataFrame, available: pl.DataFrame, days: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``open_alloc`` to release now: ship date come, ship-complete orders whole, within available
    stock in priority order. ``open_alloc``: order_id, line_no, sku, warehouse_id, quantity (open units),
    carrier_id, service, expected_ship_date, allocated_at, ship_complete, order_ready. ``available``:
    warehouse_id, sku, available. ``days``: :func:`local_dates`."""
    a = (open_alloc.join(days, on="warehouse_id", how="inner")
         .filter(pl.col("expected_ship_date") <= pl.col("local_date"))
         .filter(~pl.col("ship_complete") | pl.col("order_ready")))
    a = a.join(available.select("warehouse_id", "sku", "available"), on=["warehouse_id", "sku"], how="left")
    a = a.sort("allocated_at", "order_id", "line_no", "sku").with_columns(
        pl.col("quantity").cum_sum().over("warehouse_id", "sku").alias("_need"))
    ok = a.filter(pl.col("_need") <= pl.col("available").fill_null(0))
    # a ship-complete order goes whole or not at all
    broken = a.join(ok.select("order_id", "line_no", "sku", "warehouse_id"), how="anti",
                    on=["order_id", "line_no", "sku", "warehouse_id"]).filter(pl.col("ship_complete"))
    ok = ok.join(broken.select("order_id").unique(), on="order_id", how="anti")
    return ok.drop("_need", "available")


def build_waves(rows: pl.DataFrame, bins: pl.DataFrame, earlier_waves: pl.DataFrame, now: datetime
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(core.pick_waves rows, core.pick_tasks rows)`` for the released ``rows`` (:func:`releasable`).
    ``earlier_waves``: warehouse_id, ship_date, waves (how many were released before for that day: the new
    wave's number follows)."""
    if rows.height == 0:
        return pl.DataFrame(), pl.DataFrame()
    # released after the cutoff: the wave ships the next day (its cutoff then)
    late = pl.lit(now).cast(pl.Datetime("us", "UTC")) > pl.col("cutoff_at")
    r = rows.with_columns(pl.when(late).then(pl.col("local_date") + pl.duration(days=1)).otherwise(pl.col("local_date"))
                          .alias("ship_date"),
                          pl.when(late).then(pl.col("cutoff_at") + pl.duration(days=1)).otherwise(pl.col("cutoff_at"))
                          .alias("cutoff_at"))
    r = r.join(earlier_waves.select("warehouse_id", "ship_date", pl.col("waves").alias("_n")),
               on=["warehouse_id", "ship_date"], how="left")
    r = r.with_columns(pl.format("W-{}-{}-{}", pl.col("warehouse_id"), pl.col("ship_date").dt.strftime("%Y%m%d"),
                                 (pl.col("_n").fill_null(0) + 1).cast(pl.String).str.zfill(2)).alias("wave_id"))
    b = bins.select("warehouse_id", "sku", "bin_id", "zone", "aisle", "bay", "level")
    r = r.join(b, on=["warehouse_id", "sku"], how="left").with_columns(
        pl.col("bin_id").fill_null(UNSLOTTED), pl.col("zone").fill_null("~"),  # '~' sorts after every zone
        pl.col("aisle").fill_null(1 << 30), pl.col("bay").fill_null(0), pl.col("level").fill_null(0))
    serp = pl.when(pl.col("aisle") % 2 == 1).then(pl.col("bay")).otherwise(-pl.col("bay"))
    r = r.sort("wave_id", "zone", "aisle", serp, "level", "order_id", "line_no", "sku")
    r = r.with_columns((pl.int_range(pl.len()).over("wave_id") + 1).cast(pl.Int64).alias("walk_seq"))
    r = r.with_columns(
        (pl.lit("T-") + sha256_series(pl.concat_str([pl.col("wave_id"), pl.col("order_id"),
                                                     pl.col("line_no").cast(pl.String), pl.col("sku")], separator="|"),
                                      r).str.slice(0, 20)).alias("task_id"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("released_at"),
        pl.lit(0, pl.Int64).alias("picked_qty"), pl.lit("OPEN").alias("status"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("closed_at"), pl.lit(None, pl.String).alias("shipment_id"))
    waves = r.group_by("wave_id", maintain_order=True).agg(
        pl.col("warehouse_id").first(), pl.col("ship_date").first(), pl.col("cutoff_at").first(),
        pl.col("released_at").first(), pl.len().cast(pl.Int64).alias("tasks"),
        pl.col("quantity").sum().cast(pl.Int64).alias("units"), pl.lit("OPEN").alias("status"))
    return waves, r

