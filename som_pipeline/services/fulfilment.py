"""Fulfilment planning services: the disruption feed, allocation & routing, forecast & replenishment."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_file
from som_pipeline.ingest.landing import archive_path, list_landing, move_to
from som_pipeline.reference import load_table_file
from som_pipeline.schemas import DisruptionModel
from som_pipeline.services.capture import FileOutcome, ledger_lookup, ledger_row, write_quarantine
from som_pipeline.warehouse import insert_frame, transaction


def ingest_disruptions(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None) -> list[FileOutcome]:
    """``$SOM_HOME/landing/disruptions/*.csv|parquet`` (DisruptionModel columns) -> ``ref.disruptions``.

    A disruption id seen again replaces the earlier row (an update: extended, lifted, downgraded). Bad rows
    are quarantined (channel ``disruptions``); each file is processed once (ledger), then archived.
    """
    now = now or datetime.now(UTC)
    out = []
    for lf in list_landing(settings.disruptions, "disruptions"):
        sha = sha256_file(lf.path)
        dest = archive_path(settings.archive, "disruptions", lf.name, sha, now)
        if ledger_lookup(con, [sha]):
            move_to(lf.path, dest.with_name(dest.name + ".redrop"))
            out.append(FileOutcome(lf.name, sha, "redrop"))
            continue
        ld = load_table_file("disruptions", DisruptionModel, "disruptions", lf.path, loaded_at=now)
        with transaction(con):
            if ld.frame is not None and ld.frame.height:
                con.execute("DELETE FROM ref.disruptions WHERE disruption_id IN (SELECT unnest(?::VARCHAR[]))",
                            [ld.frame["disruption_id"].to_list()])
                insert_frame(con, "ref.disruptions", ld.frame)
            write_quarantine(con, ld.quarantine)
            insert_frame(con, "ops.ingest_files", ledger_row(
                lf.name, "disruptions", sha, lf.size, None, "disruption", ld.received, ld.accepted,
                ld.received - ld.accepted, ld.accepted, str(dest), now))
        move_to(lf.path, dest)
        reasons = dict(ld.quarantine.group_by("reason_code").len().rows()) if ld.quarantine.height else {}
        out.append(FileOutcome(lf.name, sha, "processed", ld.received, ld.accepted, ld.received - ld.accepted,
                               ld.accepted, reasons))
    return out


def active_disruptions(con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame:
    return con.execute("SELECT * FROM ref.disruptions WHERE starts_at <= ? AND ends_at > ?", [now, now]).pl()


# ------------------------------------------------------------------------------------------------
# Demand forecast & replenishment
# ------------------------------------------------------------------------------------------------
def run_forecast(wh, settings: Settings, now: datetime | None = None):
    """Daily demand per SKU x warehouse -> backtest, model choice, forecast -> core.demand_forecast and
    core.forecast_accuracy (replaced). Returns the :class:`~som_pipeline.forecasting.ForecastResult`."""
    from som_pipeline import forecasting as fc
    from som_pipeline.schemas import ForecastAccuracyModel, conform
    from som_pipeline.warehouse import read_table, replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        orders = read_table(con, "core.orders")
        lines = read_table(con, "core.order_lines")
        zones = read_table(con, "ref.shipping_zones")
        warehouses = read_table(con, "ref.warehouses")
        allocations = read_table(con, "core.allocations")
    demand = fc.daily_demand(orders, lines, zones, warehouses, allocations if allocations.height else None)
    result = fc.run(demand, cfg, now)
    sigma = result.errors.select("sku", "warehouse_id", pl.col("model"), "sigma_daily")
    acc = result.accuracy.join(sigma, on=["sku", "warehouse_id", "model"], how="left")
    acc = conform(acc.with_columns(pl.when(pl.col("chosen")).then(pl.col("sigma_daily")).alias("sigma_daily")),
                  ForecastAccuracyModel)
    result.accuracy = acc
    with wh.transaction() as con:
        replace_table(con, "core.demand_forecast", result.forecast)
        replace_table(con, "core.forecast_accuracy", acc)
    return result


def run_replenishment(wh, settings: Settings, now: datetime | None = None) -> pl.DataFrame:
    """Forecast + accuracy (sigma) + stock - reservations -> core.replenishment_plan (replaced)."""
    from som_pipeline import forecasting as fc
    from som_pipeline.warehouse import read_table, replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        forecast = read_table(con, "core.demand_forecast")
        errors = con.execute(
            "SELECT sku, warehouse_id, sigma_daily FROM core.forecast_accuracy WHERE chosen AND sku <> '*'").pl()
        inventory = read_table(con, "ref.inventory")
        reservations = read_table(con, "core.reservations")
        warehouses = read_table(con, "ref.warehouses")
        products = read_table(con, "ref.products")
        allocations = read_table(con, "core.allocations")
    plan = fc.replenishment_plan(forecast, errors, inventory, reservations, warehouses, products, cfg, now,
                                 allocations if allocations.height else None)
    with wh.transaction() as con:
        replace_table(con, "core.replenishment_plan", plan)
    return plan


# ------------------------------------------------------------------------------------------------
# Allocation & routing
# ------------------------------------------------------------------------------------------------
def business_now(settings: Settings) -> datetime:
    """The planning clock: the validation config's pinned ``as_of`` at 09:00 UTC (demos, replays), else now."""
    from som_pipeline.services.validation import config_for

    as_of = config_for(settings).as_of
    if as_of is None:
        return datetime.now(UTC)
    return datetime.combine(as_of, datetime.min.time(), tzinfo=UTC).replace(hour=9)


def run_allocation(wh, settings: Settings, now: datetime | None = None):
    """Disruption feed, then route every approved order's reserved units -> core.allocations, core.backorders."""
    from som_pipeline.allocation import AllocationConfig, allocate
    from som_pipeline.warehouse import read_table, replace_table

    now = now or business_now(settings)
    with wh.connect() as con:
        feed = ingest_disruptions(con, settings, now)
        t = {name: read_table(con, name) for name in (
            "core.orders", "core.order_lines", "core.reservations", "ref.warehouses", "ref.inventory", "ref.products",
            "ref.carriers", "ref.carrier_rates", "ref.shipping_zones", "ref.disruptions", "core.allocations",
            "ref.customers", "core.backorders")}
    previous, backorders = t["core.allocations"], t["core.backorders"]
    # At scale the flow's repair passes (docs/allocation.md) may leave units that a second pass over what is
    # left can still place: iterate to a fixed point (at most 3 passes), so re-running changes nothing.
    for _ in range(3):
        result = allocate(
            t["core.orders"], t["core.order_lines"], t["core.reservations"], t["ref.warehouses"], t["ref.inventory"],
            t["ref.products"], t["ref.carriers"], t["ref.carrier_rates"], t["ref.shipping_zones"],
            t["ref.disruptions"], previous, now, AllocationConfig(), customers=t["ref.customers"],
            previous_backorders=backorders)
        if result.backorders.height == 0 or result.allocations.height == previous.height:
            break
        previous, backorders = result.allocations, result.backorders
    with wh.transaction() as con:
        replace_table(con, "core.allocations", result.allocations)
        replace_table(con, "core.backorders", result.backorders)
    result.metrics["disruption_files"] = [f.source_file for f in feed]
    return result
