"""Planning: demand forecast per SKU x warehouse and the replenishment plan (own daily schedule)."""

import dagster as dg
import polars as pl

from assets.checks import model_check_result, model_check_spec
from assets.core import CORE_KEYS
from assets.reference import REF_KEYS
from resources import WarehouseResource
from som_pipeline.planning import overall
from som_pipeline.reporting import md_table
from som_pipeline.schemas import DemandForecastModel, ForecastAccuracyModel, ReplenishmentPlanModel
from som_pipeline.services.planning import run_forecast, run_replenishment

FORECAST = dg.AssetKey(["core", "demand_forecast"])
ACCURACY = dg.AssetKey(["core", "forecast_accuracy"])
PLAN = dg.AssetKey(["core", "replenishment_plan"])
ALLOCATIONS = dg.AssetKey(["core", "allocations"])


@dg.multi_asset(
    name="demand_forecast",
    specs=[
        dg.AssetSpec(FORECAST, group_name="planning", kinds={"statsforecast", "polars", "duckdb"},
                     description=(DemandForecastModel.__doc__ or "").strip(),
                     deps=[CORE_KEYS["orders"], CORE_KEYS["order_lines"], REF_KEYS["shipping_zones"],
                           REF_KEYS["warehouses"], ALLOCATIONS]),
        dg.AssetSpec(ACCURACY, group_name="planning", kinds={"statsforecast", "polars", "duckdb"},
                     description=(ForecastAccuracyModel.__doc__ or "").strip(), deps=[FORECAST]),
    ],
    check_specs=[
        model_check_spec(FORECAST, DemandForecastModel),
        model_check_spec(ACCURACY, ForecastAccuracyModel),
        dg.AssetCheckSpec("beats_seasonal_naive", asset=ACCURACY, blocking=False,
                          description="Overall, the chosen models' backtest error is below seasonal naive's "
                                      "(mase_vs_seasonal_naive < 1)."),
    ],
    pool="duckdb",
)
def demand_forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    result = run_forecast(warehouse.warehouse(), warehouse.settings())
    head = overall(result.accuracy)
    mix = result.accuracy.filter(pl.col("chosen") & (pl.col("sku") != "*")).group_by("model").len().sort("len", descending=True)
    yield dg.MaterializeResult(asset_key=FORECAST, metadata={
        "dagster/row_count": result.forecast.height,
        "series": result.forecast.select("sku", "warehouse_id").n_unique(),
        "preview": dg.MetadataValue.md(md_table(result.forecast, 5))})
    yield dg.MaterializeResult(asset_key=ACCURACY, metadata={
        "dagster/row_count": result.accuracy.height,
        **{k: (round(v, 4) if v is not None else None) for k, v in head.items()},
        "model_mix": dg.MetadataValue.json(dict(mix.rows()))})
    yield model_check_result(FORECAST, DemandForecastModel, result.forecast)
    yield model_check_result(ACCURACY, ForecastAccuracyModel, result.accuracy)
    ratio = head.get("mase_vs_seasonal_naive")
    yield dg.AssetCheckResult(asset_key=ACCURACY, check_name="beats_seasonal_naive",
                              passed=ratio is not None and ratio < 1, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"mase_vs_seasonal_naive": ratio})


@dg.asset(
    key=PLAN,
    group_name="planning",
    kinds={"polars", "duckdb"},
    description=(ReplenishmentPlanModel.__doc__ or "").strip(),
    deps=[FORECAST, ACCURACY, REF_KEYS["inventory"], REF_KEYS["products"], REF_KEYS["warehouses"],
          dg.AssetKey(["core", "reservations"]), ALLOCATIONS],
    check_specs=[model_check_spec(PLAN, ReplenishmentPlanModel)],
    pool="duckdb",
)
def replenishment_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    plan = run_replenishment(warehouse.warehouse(), warehouse.settings())
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": plan.height,
        "by_kind": dg.MetadataValue.json(dict(plan.group_by("kind").len().sort("kind").rows())),
        "top": dg.MetadataValue.md(md_table(plan.sort("priority").select(
            "priority", "kind", "sku", "from_warehouse", "to_warehouse", "quantity", "expected_stockout_date",
            "reason"), 10))})
    yield model_check_result(PLAN, ReplenishmentPlanModel, plan)
