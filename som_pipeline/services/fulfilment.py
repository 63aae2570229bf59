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

    now = now or datetime.now(UTC)
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

    now = now or datetime.now(UTC)
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
