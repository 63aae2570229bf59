"""Allocation service: route every approved order's reserved units -> core.allocations, core.backorders."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import polars as pl

from som_pipeline.allocation.plan import AllocationResult
from som_pipeline.config import Settings
from som_pipeline.parquet_stage import part_files
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


PART_ROWS = 200_000  # reservation rows per part: orders whole, in priority order (bounded memory)
REFS = ("ref.warehouses", "ref.products", "ref.carriers", "ref.carrier_rates", "ref.shipping_zones", "ref.disruptions",
        "ref.customers")
PER_ORDER = ("core.orders", "core.order_lines", "core.reservations", "core.allocations", "core.backorders")


@dataclass
class AllocationRun:
    """What a run did: ``metrics`` (allocate's, summed over the parts), ``parts`` planned (0: skipped, the
    inputs had not changed since the last run)."""

    metrics: dict[str, Any]
    parts: int


def run_allocation(wh, settings: Settings, now: datetime | None = None) -> AllocationRun:
    """Route every approved order's reserved units -> core.allocations, core.backorders (reads the disruptions
    that the ``ref/disruptions`` asset keeps current).

    In parts of about :data:`PART_ROWS` reservation rows, orders whole, in priority order (order time, id): each
    part is planned by :func:`~som_pipeline.allocation.allocate` on the stock, warehouse capacity and carrier
    parcels the earlier parts left, so memory follows the part, not the day (one part below that size: the
    plan of the whole day at once). Each part's rows are staged as Parquet part files
    (:mod:`~som_pipeline.parquet_stage`); one transaction replaces the tables."""
    from som_pipeline.allocation import AllocationConfig

    now = now or business_now(settings)
    cfg = AllocationConfig()
    with wh.connect() as con:
        fp = _fingerprint(con, now)
        if watermark(con, CONSUMER)[1] == fp:  # a rerun would write the same rows (som ingest, then som run)
            return AllocationRun({"skipped_inputs_unchanged": True}, 0)
        refs = read_tables(con, REFS)
        # the warehouse's part: units on pick tasks stay where they are (frozen); allocation plans the rest on
        # the stock the ledger says is available (on hand - reserved for tasks - picked)
        on_tasks = con.execute(HELD_SQL).pl()
        stock = con.execute("SELECT warehouse_id, sku, greatest(available, 0) AS on_hand, "
                            "last_movement_at AS as_of FROM core.v_stock").pl()
        parts = _parts(con)
    used = _Used()
    metrics: list[dict[str, Any]] = []
    with part_files(settings.tmp, "allocation-") as stage:
        for ids in parts:
            with wh.connect() as con:
                t = {tbl: select_keys(con, tbl, ids) for tbl in PER_ORDER}
            result = _plan_part(t, refs, used, stock, on_tasks.join(ids, on="order_id", how="semi"), now, cfg)
            del t
            stage.add("allocations", result.allocations)
            stage.add("backorders", result.backorders)
            metrics.append(result.metrics)
            del result
        with wh.transaction() as con:
            for table, name in (("core.allocations", "allocations"), ("core.backorders", "backorders")):
                con.execute(f"DELETE FROM {table}")  # noqa: S608 (names from code)
                stage.insert_into(con, table, name)
            set_watermark(con, CONSUMER, 0, fp, now)
    return AllocationRun(_sum_metrics(metrics), len(parts))


def _parts(con) -> list[pl.DataFrame]:
    """The orders to plan (holding reservations or allocation rows), in priority order, in parts of about
    :data:`PART_ROWS` reservation rows (an order is never split)."""
    o = con.execute("""
        SELECT k.order_id, coalesce(r.n, 0) AS n
        FROM (SELECT order_id FROM core.reservations UNION SELECT order_id FROM core.allocations) k
        LEFT JOIN (SELECT order_id, count(*) AS n FROM core.reservations GROUP BY 1) r USING (order_id)
        LEFT JOIN core.orders o USING (order_id)
        ORDER BY o.order_ts NULLS LAST, k.order_id""").pl()
    if o.height == 0:
        return []
    o = o.with_columns(((pl.col("n").cum_sum() - pl.col("n")) // PART_ROWS).alias("_part"))
    return [g.select("order_id") for g in o.partition_by("_part", maintain_order=True)]


@dataclass
class _Used:
    """What the parts planned so far take: units per (warehouse, SKU), capacity per warehouse (lines or units),
    parcels per (warehouse, carrier service)."""

    stock: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"warehouse_id": pl.String, "sku": pl.String, "_used": pl.Int64}))
    lines: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"warehouse_id": pl.String, "_used": pl.Int64}))
    parcels: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"warehouse_id": pl.String, "carrier_id": pl.String, "service": pl.String, "parcels": pl.Int64}))
    any: bool = False

    def add(self, planned: pl.DataFrame, parcels: pl.DataFrame | None, basis: str) -> None:
        q = pl.col("quantity").cast(pl.Int64)
        self.stock = _summed(self.stock, planned.group_by("warehouse_id", "sku").agg(q.sum().alias("_used")),
                             ["warehouse_id", "sku"], "_used")
        per_wh = q.sum() if basis == "units" else pl.len().cast(pl.Int64)
        self.lines = _summed(self.lines, planned.group_by("warehouse_id").agg(per_wh.alias("_used")),
                             ["warehouse_id"], "_used")
        if parcels is not None:
            self.parcels = _summed(self.parcels, parcels, ["warehouse_id", "carrier_id", "service"], "parcels")
        self.any = True


def _summed(a: pl.DataFrame, b: pl.DataFrame, key: list[str], col: str) -> pl.DataFrame:
    return pl.concat([a, b.select(*key, pl.col(col).cast(pl.Int64))]).group_by(key).agg(pl.col(col).sum())


def _plan_part(t: dict[str, pl.DataFrame], refs: dict[str, pl.DataFrame], used: _Used, stock: pl.DataFrame,
               on_tasks: pl.DataFrame, now: datetime, cfg) -> AllocationResult:
    """Plan one part's orders (``t``: their rows of :data:`PER_ORDER`) on what the earlier parts left; adds what
    this part's open rows take to ``used``."""
    from som_pipeline.allocation import AllocationInputs, allocate
    from som_pipeline.allocation.plan import carrier_backlog

    warehouses, inventory, backlog = refs["ref.warehouses"], stock, None
    if used.any:
        inventory = (stock.join(used.stock, on=["warehouse_id", "sku"], how="left")
                     .with_columns((pl.col("on_hand") - pl.col("_used").fill_null(0)).clip(0)
                                   .cast(stock.schema["on_hand"]).alias("on_hand")).drop("_used"))
        cap = warehouses.schema["daily_capacity_lines"]
        warehouses = (warehouses.join(used.lines, on="warehouse_id", how="left")
                      .with_columns((pl.col("daily_capacity_lines") - pl.col("_used").fill_null(0)).clip(0)
                                    .cast(cap).alias("daily_capacity_lines")).drop("_used"))
        keys = warehouses.select("warehouse_id").join(refs["ref.carriers"].select("carrier_id", "service"),
                                                       how="cross")
        backlog = carrier_backlog(cfg, keys, used.parcels)
    frozen, reservations, open_before = _split_held(t["core.allocations"], t["core.reservations"], on_tasks)
    previous, backorders = open_before, t["core.backorders"]
    # At scale the flow's repair passes (docs/allocation.md) may leave units that a second pass over what is
    # left can still place: iterate to a fixed point (at most 3 passes), so re-running changes nothing.
    for _ in range(3):
        inputs = AllocationInputs(
            orders=t["core.orders"], lines=t["core.order_lines"], reservations=reservations,
            warehouses=warehouses, inventory=inventory, products=refs["ref.products"],
            carriers=refs["ref.carriers"], carrier_rates=refs["ref.carrier_rates"],
            shipping_zones=refs["ref.shipping_zones"], disruptions=refs["ref.disruptions"],
            previous_allocations=previous, customers=refs["ref.customers"], previous_backorders=backorders,
            carrier_backlog=backlog)
        result = allocate(inputs, now=now, config=cfg)
        if result.backorders.height == 0 or result.allocations.height == previous.height:
            break
        previous, backorders = result.allocations, result.backorders
    planned = _stable(result.allocations, open_before)
    used.add(planned, result.parcels, cfg.capacity_basis)
    return replace(result, allocations=_with_frozen(planned, frozen))


def _sum_metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts' metrics as one: numbers summed (None if a part has none), flags all true, texts and solver
    paths listed once each, counts by key summed; lists (per warehouse) are left to the tables."""
    out: dict[str, Any] = {"parts": len(parts)}
    for m in parts:
        for k, v in m.items():
            if isinstance(v, list):
                continue
            if k not in out:
                out[k] = dict(v) if isinstance(v, dict) else v
            elif isinstance(v, bool):
                out[k] = out[k] and v
            elif isinstance(v, dict):
                for kk, vv in v.items():
                    out[k][kk] = out[k].get(kk, 0) + vv
            elif v is None or out[k] is None:
                out[k] = None
            elif isinstance(v, str):
                out[k] = out[k] if v in out[k].split("+") else f"{out[k]}+{v}"
            else:
                out[k] = out[k] + v
    return out


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
