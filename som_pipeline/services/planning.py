"""Planning services: demand forecast (backtest, model choice) and the replenishment plan."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.services import Step
from som_pipeline.services.validation import business_now
from som_pipeline.warehouse import read_tables

FORECAST = Step(reads=("core.orders", "core.order_lines", "ref.shipping_zones", "ref.warehouses", "core.allocations"),
                writes=("core.demand_forecast", "core.forecast_accuracy"))
REPLENISHMENT = Step(reads=("core.demand_forecast", "core.forecast_accuracy", "ref.inventory", "core.reservations",
                            "ref.warehouses", "ref.products", "core.allocations"),
                     writes=("core.replenishment_plan",))


def run_forecast(wh, settings: Settings, now: datetime | None = None):
    """Daily demand per SKU x warehouse -> backtest, model choice, forecast -> core.demand_forecast and
    core.forecast_accuracy (replaced). Returns the :class:`~som_pipeline.planning.ForecastResult`."""
    from som_pipeline import planning as fc
    from som_pipeline.schemas import ForecastAccuracyModel, conform
    from som_pipeline.warehouse import replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        t = read_tables(con, FORECAST.reads)
    allocations = t["core.allocations"]
    demand = fc.daily_demand(t["core.orders"], t["core.order_lines"], t["ref.shipping_zones"], t["ref.warehouses"],
                             allocations if allocations.height else None)
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
