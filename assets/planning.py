"""Planning: demand forecast per SKU x warehouse and the replenishment plan (own daily schedule)."""

import dagster as dg
import polars as pl

from assets.checks import ModelCheck, model_check_results, model_check_specs
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.planning import overall
from som_pipeline.reporting import md_table
from som_pipeline.schemas import TABLES
from som_pipeline.services.planning import FORECAST, REPLENISHMENT, run_forecast, run_replenishment

HISTORY = table_key("state.daily_demand")
FITS = table_key("state.forecast_fits")
FORECAST_KEY = table_key("core.demand_forecast")
ACCURACY = table_key("core.forecast_accuracy")
PLAN = table_key("core.replenishment_plan")


@dg.multi_asset(
    name="demand_forecast",
    specs=table_specs(FORECAST, "planning", {"statsforecast", "polars", "duckdb"}),
    check_specs=[
        *model_check_specs(FORECAST.writes),
        dg.AssetCheckSpec("beats_seasonal_naive", asset=ACCURACY, blocking=False,
                          description="Overall, the chosen models' backtest error is below seasonal naive's "
                                      "(mase_vs_seasonal_naive < 1)."),
    ],
    pool="duckdb",
)
def demand_forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    # the rows written are checked part by part as the service writes them (bounded memory: TPC-H SF 1 writes
    # ~17M forecast rows); the service holds none of them at the end
    checks = {t: ModelCheck(table_key(t), TABLES[t]) for t in FORECAST.writes}
    done = run_forecast(warehouse.warehouse(), warehouse.settings(), sink=lambda t, rows: checks[t].add(rows))
    result, history = done.result, done.history
    reasons = dict(done.refit.group_by("reason").len().sort("reason").rows())
    yield dg.MaterializeResult(asset_key=HISTORY, metadata={
        "dagster/row_count": history.total_rows,
        "order_dates_updated": len(history.dates),
        "rows_written": history.written})
    yield dg.MaterializeResult(asset_key=FITS, metadata={
        "series_refitted": done.refit.height,
        "refit_reasons": dg.MetadataValue.json(reasons),
        "series_kept": done.kept,
        "series_dropped": done.dropped,
        "parts": done.parts,
        "rows_written": done.written.get("fits", 0)})
    yield dg.MaterializeResult(asset_key=FORECAST_KEY, metadata={
        "dagster/row_count": done.forecast_rows,
        "series": done.series,
        "series_refitted": done.refit.height,
        "rows_carried_forward": done.written.get("carried", 0),
        "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in done.timings.items()}),
        "preview": dg.MetadataValue.md(md_table(done.preview, 5))})
    if result.accuracy.height:  # written only when a fit changed
        head = overall(result.accuracy)
        mix = (result.accuracy.filter(pl.col("chosen") & (pl.col("sku") != "*")).group_by("model").len()
               .sort("len", descending=True))
        yield dg.MaterializeResult(asset_key=ACCURACY, metadata={
            "dagster/row_count": result.accuracy.height,
            **{k: (round(v, 4) if v is not None else None) for k, v in head.items()},
            "model_mix": dg.MetadataValue.json(dict(mix.rows()))})
    else:
        with warehouse.warehouse().connect() as con:
            head = overall(con.execute("SELECT * FROM core.forecast_accuracy WHERE sku = '*'").pl())
        yield dg.MaterializeResult(asset_key=ACCURACY, metadata={"unchanged": True})
    # the state tables and the forecast: the rows this run wrote (the rest were checked when written)
    yield from (c.result() for c in checks.values())
    ratio = head.get("mase_vs_seasonal_naive")
    yield dg.AssetCheckResult(asset_key=ACCURACY, check_name="beats_seasonal_naive",
                              passed=ratio is not None and ratio < 1, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"mase_vs_seasonal_naive": ratio})


@dg.multi_asset(
    name="replenishment_plan",
    specs=table_specs(REPLENISHMENT, "planning", {"polars", "duckdb"}),
    check_specs=model_check_specs(REPLENISHMENT.writes),
    pool="duckdb",
)
def replenishment_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    plan = run_replenishment(warehouse.warehouse(), warehouse.settings())
    yield dg.MaterializeResult(asset_key=PLAN, metadata={
        "dagster/row_count": plan.height,
        "by_kind": dg.MetadataValue.json(dict(plan.group_by("kind").len().sort("kind").rows())),
        "top": dg.MetadataValue.md(md_table(plan.sort("priority").select(
            "priority", "kind", "sku", "from_warehouse", "to_warehouse", "quantity", "expected_stockout_date",
            "reason"), 10))})
    yield from model_check_results({"core.replenishment_plan": plan})
