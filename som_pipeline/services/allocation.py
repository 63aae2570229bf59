"""Allocation service: route every approved order's reserved units -> core.allocations, core.backorders."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import polars as pl

from som_pipeline.allocation.plan import AllocationResult
from som_pipeline.config import Settings
from som_pipeline.services import Step, inputs_fingerprint
from som_pipeline.services.validation import business_now
from som_pipeline.warehouse import read_table, read_tables, select_keys, set_watermark, watermark

CONSUMER = "allocation"

ALLOCATION = Step(
    reads=("core.orders", "core.order_lines", "core.reservations", "ref.warehouses", "core.stock_ledger",
           "ref.products", "ref.carriers", "ref.carrier_rates", "ref.shipping_zones", "ref.disruptions",
           "core.allocations", "ref.customers", "core.backorders"),
    writes=("core.allocations", "core.backorders"),
    feedback=("core.pick_tasks",),
)
# Units the warehouse holds for an allocation row: open tasks their quantity, closed tasks what was picked
HELD_SQL = """
    SELECT order_id, line_no, sku, warehouse_id,
           sum(CASE WHEN status = 'OPEN' THEN quantity WHEN status IN ('PICKED', 'SHORT') THEN picked_qty ELSE 0 END
               )::BIGINT AS held
    FROM core.pick_tasks GROUP BY ALL
"""


def run_allocation(wh, settings: Settings, now: datetime | None = None):
    """Route every approved order's reserved units -> core.allocations, core.backorders (reads the disruptions
    that the ``ref/disruptions`` asset keeps current)."""
    from som_pipeline.allocation import AllocationConfig, AllocationInputs, allocate
    from som_pipeline.warehouse import replace_table

    now = now or business_now(settings)
    with wh.connect() as con:
        fp = _fingerprint(con, now)
        if watermark(con, CONSUMER)[1] == fp:  # a rerun would write the same rows (som ingest, then som run)
            return AllocationResult(read_table(con, "core.allocations"), read_table(con, "core.backorders"),
                                    {"skipped_inputs_unchanged": True})
        # the orders that hold reservations are the only ones allocation can route: never the whole history
        held = con.execute("SELECT DISTINCT order_id FROM core.reservations").pl()
        t = read_tables(con, tuple(r for r in ALLOCATION.reads
                                   if r not in ("core.orders", "core.order_lines", "core.stock_ledger")))
        t["core.orders"] = select_keys(con, "core.orders", held)
        t["core.order_lines"] = select_keys(con, "core.order_lines", held)
        # the warehouse's part: units on pick tasks stay where they are (frozen); allocation plans the rest on
        # the stock the ledger says is available (on hand - reserved for tasks - picked)
        on_tasks = con.execute(HELD_SQL).pl()
        t["inventory"] = con.execute("SELECT warehouse_id, sku, greatest(available, 0) AS on_hand, "
                                     "last_movement_at AS as_of FROM core.v_stock").pl()
    frozen, t["core.reservations"], t["core.allocations"] = _split_held(
        t["core.allocations"], t["core.reservations"], on_tasks)
    previous, backorders = t["core.allocations"], t["core.backorders"]
    # At scale the flow's repair passes (docs/allocation.md) may leave units that a second pass over what is
    # left can still place: iterate to a fixed point (at most 3 passes), so re-running changes nothing.
    for _ in range(3):
        inputs = AllocationInputs(
            orders=t["core.orders"], lines=t["core.order_lines"], reservations=t["core.reservations"],
            warehouses=t["ref.warehouses"], inventory=t["inventory"], products=t["ref.products"],
            carriers=t["ref.carriers"], carrier_rates=t["ref.carrier_rates"], shipping_zones=t["ref.shipping_zones"],
            disruptions=t["ref.disruptions"], previous_allocations=previous, customers=t["ref.customers"],
            previous_backorders=backorders)
        result = allocate(inputs, now=now, config=AllocationConfig())
        if result.backorders.height == 0 or result.allocations.height == previous.height:
            break
        previous, backorders = result.allocations, result.backorders
    result = replace(result, allocations=_with_frozen(_stable(result.allocations, t["core.allocations"]), frozen))
    with wh.transaction() as con:
        replace_table(con, "core.allocations", result.allocations)
        replace_table(con, "core.backorders", result.backorders)
        set_watermark(con, CONSUMER, 0, fp, now)
    return result


def _split_held(allocations: pl.DataFrame, reservations: pl.DataFrame, held: pl.DataFrame
                ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(frozen allocation rows: the units on pick tasks, reservations net of them, open allocation rows)``."""
    key = ["order_id", "line_no", "sku", "warehouse_id"]
    if held.height == 0:
        return allocations.clear(), reservations, allocations
    a = allocations.join(held, on=key, how="left").with_columns(pl.col("held").fill_null(0))
    frozen = a.filter(pl.col("held") > 0).with_columns(pl.min_horizontal("held", "quantity").alias("quantity"))
    open_ = a.with_columns((pl.col("quantity") - pl.col("held")).alias("quantity")).filter(pl.col("quantity") > 0)
    per_line = held.group_by("order_id", "line_no", "sku").agg(pl.col("held").sum())
    r = reservations.join(per_line, on=["order_id", "line_no", "sku"], how="left").with_columns(
        (pl.col("quantity_reserved") - pl.col("held").fill_null(0)).clip(0).alias("quantity_reserved"))
    r = r.filter(pl.col("quantity_reserved") > 0)
    return frozen.drop("held"), r.drop("held"), open_.drop("held")


def _stable(planned: pl.DataFrame, open_before: pl.DataFrame) -> pl.DataFrame:
    """Planned rows whose decision is the open row's of the last run (same line, warehouse, units, carrier
    service and dates) keep that row as it was: a cost share that moved because a sibling line went to a pick
    wave is not a new decision, and a rerun rewrites nothing."""
    same = ["order_id", "line_no", "sku", "warehouse_id", "quantity", "carrier_id", "service", "expected_ship_date",
            "expected_delivery_date"]
    if open_before.height == 0 or planned.height == 0:
        return planned
    kept = open_before.join(planned.select(same), on=same, how="semi")
    return pl.concat([planned.join(kept.select(same), on=same, how="anti"), kept.select(planned.columns)])


def _with_frozen(allocations: pl.DataFrame, frozen: pl.DataFrame) -> pl.DataFrame:
    """The planned rows plus the frozen ones; a key in both keeps the frozen row's terms with the units summed."""
    if frozen.height == 0:
        return allocations
    key = ["order_id", "line_no", "sku", "warehouse_id"]
    extra = allocations.join(frozen.select(*key), on=key, how="semi").select(*key, pl.col("quantity").alias("_more"))
    merged = frozen.join(extra, on=key, how="left").with_columns(
        (pl.col("quantity") + pl.col("_more").fill_null(0)).alias("quantity")).drop("_more")
    return pl.concat([allocations.join(frozen.select(*key), on=key, how="anti"), merged.select(allocations.columns)])


def _fingerprint(con, now: datetime) -> str:
    """Allocation's inputs, plus what the clock changes: each warehouse's ship date (cutoffs, business days)
    and the disruptions active now."""
    from som_pipeline.allocation import AllocationConfig
    from som_pipeline.allocation.options import ship_dates

    warehouses = read_table(con, "ref.warehouses")
    dates = ship_dates(warehouses, now, AllocationConfig()).sort(pl.all()).rows() if warehouses.height else []
    active = con.execute("SELECT list(disruption_id ORDER BY disruption_id) FROM ref.disruptions "
                         "WHERE starts_at <= ? AND ends_at > ?", [now, now]).fetchone()[0]
    return inputs_fingerprint(con, ALLOCATION, dates, active, AllocationConfig())
