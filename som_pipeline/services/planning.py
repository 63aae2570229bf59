"""Planning services: the demand history (``state.daily_demand``), demand forecast (backtest, model choice) and
the replenishment plan.

The forecast never recomputes demand from all orders. :func:`update_demand_history` keeps ``state.daily_demand``
(sparse: days with demand only) current per order date: DuckDB fingerprints each order date's inputs (its live
lines, their allocations, the home-warehouse reference) in one streaming aggregate; only the dates whose
fingerprint changed (new orders, a changed or cancelled order, a new allocation, new zones) are recomputed by the
pure core (:func:`~som_pipeline.planning.demand_rows`, over those dates' orders only, in batches) and upserted
(delete + insert of those dates, one transaction). The forecast then reads the last ``history_days`` of the
state table (:func:`read_demand_window`) and only series with demand in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.services import Step
from som_pipeline.services.validation import business_now
from som_pipeline.warehouse import read_table, read_tables, transaction

DEMAND_INPUTS = ("core.orders", "core.order_lines", "core.allocations", "ref.shipping_zones", "ref.warehouses")
FORECAST = Step(reads=(*DEMAND_INPUTS, "state.daily_demand"),
                writes=("state.daily_demand", "core.demand_forecast", "core.forecast_accuracy"))
REPLENISHMENT = Step(reads=("core.demand_forecast", "core.forecast_accuracy", "ref.inventory", "core.reservations",
                            "ref.warehouses", "ref.products", "core.allocations"),
                     writes=("core.replenishment_plan",))

# Order lines recomputed per batch when the history is (re)built: bounds the memory of a first run or a rebuild.
HISTORY_BATCH_LINES = 500_000

# One row per order date with live lines: its fingerprint and line count. Everything a date's demand rows derive
# from is hashed: the live lines (order, version, ship-to, line, SKU, quantity), their allocations, and the
# reference that chooses home warehouses (zones, active warehouses) -- a change of that reference changes every
# date's fingerprint, i.e. recomputes the whole history, as it must. bit_xor makes it order-independent.
_FINGERPRINTS = """
WITH alloc AS (
    SELECT order_id, line_no, bit_xor(hash(sku, warehouse_id, quantity)) AS h
    FROM core.allocations GROUP BY order_id, line_no
), ref AS (
    SELECT hash(
        (SELECT coalesce(bit_xor(hash(warehouse_id, dest_country, dest_region, zone)), 0) FROM ref.shipping_zones),
        (SELECT coalesce(bit_xor(hash(warehouse_id, active)), 0) FROM ref.warehouses)) AS h
)
SELECT o.order_date,
       count(*) AS lines,
       lower(hex(hash(bit_xor(hash(o.order_id, o.version, o.ship_to_country, o.ship_to_region, l.line_no, l.sku,
                                   l.quantity, coalesce(a.h, 0))), any_value(ref.h)))) AS day_fingerprint
FROM core.orders o
JOIN core.order_lines l ON l.order_id = o.order_id AND l.version = o.version
LEFT JOIN alloc a ON a.order_id = l.order_id AND a.line_no = l.line_no
CROSS JOIN ref
WHERE o.cancelled_at IS NULL
GROUP BY o.order_date
"""


@dataclass
class HistoryUpdate:
    """What :func:`update_demand_history` did: the order dates recomputed (or removed), the rows written for
    them, and the table's size after."""

    dates: list[date]
    rows: pl.DataFrame
    total_rows: int


def update_demand_history(con: duckdb.DuckDBPyConnection, *, rebuild: bool = False) -> HistoryUpdate:
    """Bring ``state.daily_demand`` up to date with the orders, in one transaction (call it outside one).

    Recomputes the order dates whose fingerprint changed (all dates with ``rebuild=True``: the explicit full
    rebuild, which must give the same table) and removes dates that no longer have live lines."""
    from som_pipeline import planning as fc
    from som_pipeline.schemas import DailyDemandModel, conform
    from som_pipeline.warehouse import insert_frame

    current = con.execute(_FINGERPRINTS).pl()
    stored = con.execute("SELECT order_date, any_value(day_fingerprint) AS stored FROM state.daily_demand "
                         "GROUP BY order_date").pl()
    both = current.join(stored, on="order_date", how="full", coalesce=True)
    todo = both if rebuild else both.filter(pl.col("day_fingerprint").ne_missing(pl.col("stored")))
    todo = todo.sort("order_date")
    dates = todo["order_date"].to_list()
    written = []
    with transaction(con):
        if rebuild:
            con.execute("DELETE FROM state.daily_demand")
        elif dates:
            con.execute("DELETE FROM state.daily_demand WHERE order_date IN (SELECT unnest(?::DATE[]))", [dates])
        live = todo.filter(pl.col("lines").is_not_null())
        if live.height:
            zones, whs = read_table(con, "ref.shipping_zones"), read_table(con, "ref.warehouses")
            live = live.with_columns(((pl.col("lines").cum_sum() - pl.col("lines")) // HISTORY_BATCH_LINES)
                                     .alias("_batch"))
            for part in live.partition_by("_batch", maintain_order=True):
                batch = part["order_date"].to_list()
                orders = con.execute(
                    "SELECT order_id, version, order_date, cancelled_at, ship_to_country, ship_to_region "
                    "FROM core.orders WHERE cancelled_at IS NULL AND order_date IN (SELECT unnest(?::DATE[]))", [batch]).pl()
                lines = con.execute(
                    "SELECT l.order_id, l.version, l.line_no, l.sku, l.quantity FROM core.order_lines l "
                    "JOIN core.orders o ON o.order_id = l.order_id AND o.version = l.version "
                    "WHERE o.cancelled_at IS NULL AND o.order_date IN (SELECT unnest(?::DATE[]))", [batch]).pl()
                allocations = con.execute(
                    "SELECT a.order_id, a.line_no, a.warehouse_id, a.quantity FROM core.allocations a "
                    "WHERE a.order_id IN (SELECT order_id FROM core.orders WHERE cancelled_at IS NULL "
                    "AND order_date IN (SELECT unnest(?::DATE[])))", [batch]).pl()
                rows = fc.demand_rows(orders, lines, zones, whs, allocations if allocations.height else None)
                rows = conform(rows.rename({"ds": "order_date", "y": "units"})
                               .join(part.select("order_date", "day_fingerprint"), on="order_date"), DailyDemandModel)
                insert_frame(con, "state.daily_demand", rows)
                written.append(rows)
        total = con.execute("SELECT count(*) FROM state.daily_demand").fetchone()[0]
    rows = pl.concat(written) if written else conform(pl.DataFrame(), DailyDemandModel).clear()
    return HistoryUpdate(dates=dates, rows=rows, total_rows=total)


def read_demand_window(con: duckdb.DuckDBPyConnection, days: int) -> tuple[pl.DataFrame, date | None]:
    """``(demand, end)``: the forecast's input from ``state.daily_demand`` -- the last ``days`` days up to the
    last order date, series with demand in them only, as sparse rows (:func:`~som_pipeline.planning.window_demand`).
    Older history is not read, except to find where each of those series starts (one aggregate in DuckDB)."""
    from som_pipeline import planning as fc

    end = con.execute("SELECT max(order_date) FROM state.daily_demand").fetchone()[0]
    if end is None:
        return pl.DataFrame(schema=fc.DEMAND_SCHEMA), None
    lo = end - timedelta(days=days - 1)
    rows = con.execute("SELECT sku, warehouse_id, order_date AS ds, units AS y FROM state.daily_demand "
                       "WHERE order_date BETWEEN ? AND ?", [lo, end]).pl()
    first = con.execute(
        "SELECT d.sku, d.warehouse_id, min(d.order_date) AS first FROM state.daily_demand d "
        "SEMI JOIN (SELECT DISTINCT sku, warehouse_id FROM state.daily_demand WHERE order_date BETWEEN ? AND ?) r "
        "ON d.sku = r.sku AND d.warehouse_id = r.warehouse_id WHERE d.order_date < ? GROUP BY ALL",
        [lo, end, lo]).pl()
    return fc.window_demand(rows, first, end, days), end


@dataclass
class ForecastRun:
    """What :func:`run_forecast` did: the :class:`~som_pipeline.planning.ForecastResult` and the history update."""

    result: object  # planning.ForecastResult
    history: HistoryUpdate


def run_forecast(wh, settings: Settings, now: datetime | None = None) -> ForecastRun:
    """Update ``state.daily_demand``, then read its window -> backtest, model choice, forecast ->
    core.demand_forecast and core.forecast_accuracy (replaced)."""
    from som_pipeline import planning as fc
    from som_pipeline.schemas import ForecastAccuracyModel, conform
    from som_pipeline.warehouse import replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        history = update_demand_history(con)
        demand, end = read_demand_window(con, cfg.history_days)
    result = fc.run(demand, cfg, now, end)
    sigma = result.errors.select("sku", "warehouse_id", pl.col("model"), "sigma_daily")
    acc = result.accuracy.join(sigma, on=["sku", "warehouse_id", "model"], how="left")
    acc = conform(acc.with_columns(pl.when(pl.col("chosen")).then(pl.col("sigma_daily")).alias("sigma_daily")),
                  ForecastAccuracyModel)
    result.accuracy = acc
    with wh.transaction() as con:
        replace_table(con, "core.demand_forecast", result.forecast)
        replace_table(con, "core.forecast_accuracy", acc)
    return ForecastRun(result=result, history=history)


def run_replenishment(wh, settings: Settings, now: datetime | None = None) -> pl.DataFrame:
    """Forecast + accuracy (sigma) + stock - reservations -> core.replenishment_plan (replaced)."""
    from som_pipeline import planning as fc
    from som_pipeline.warehouse import replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        t = read_tables(con, tuple(x for x in REPLENISHMENT.reads if x != "core.forecast_accuracy"))
        errors = con.execute(
            "SELECT sku, warehouse_id, sigma_daily FROM core.forecast_accuracy WHERE chosen AND sku <> '*'").pl()
    allocations = t["core.allocations"]
    plan = fc.replenishment_plan(t["core.demand_forecast"], errors, t["ref.inventory"], t["core.reservations"],
                                 t["ref.warehouses"], t["ref.products"], cfg, now,
                                 allocations if allocations.height else None)
    with wh.transaction() as con:
        replace_table(con, "core.replenishment_plan", plan)
    return plan
