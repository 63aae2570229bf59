"""Allocation & routing: every approved order line to the warehouse and carrier that deliver on time at the
lowest total cost (exact optimiser; see docs/allocation.md). Blocking checks guard stock and capacity."""

import dagster as dg
import polars as pl

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.allocation import ALLOCATION, run_allocation

ALLOCATIONS = table_key("core.allocations")
BACKORDERS = table_key("core.backorders")
RULES = ("allocations_within_stock", "allocations_within_capacity", "allocations_within_reservations",
         "ship_complete_one_warehouse")


@dg.multi_asset(
    name="allocation",
    specs=table_specs(ALLOCATION, "allocation", {"ortools", "polars", "duckdb"}),
    check_specs=model_check_specs(ALLOCATION.writes) + [reconciliation_spec(r, ALLOCATIONS) for r in RULES],
    pool="duckdb",
)
def allocation(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    result = run_allocation(wh, warehouse.settings())
    a, b = result.allocations, result.backorders
    yield dg.MaterializeResult(asset_key=ALLOCATIONS, metadata={
        "dagster/row_count": a.height,
        "units_by_warehouse": dg.MetadataValue.json(
            {w: int(q) for w, q in a.group_by("warehouse_id").agg(pl.col("quantity").sum()).sort("warehouse_id").rows()}),
        "total_cost": str(a["total_cost"].sum()) if a.height else "0",
        "metrics": dg.MetadataValue.json({k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}),
        "preview": dg.MetadataValue.md(md_table(a.select("order_id", "line_no", "sku", "warehouse_id", "quantity",
                                                         "carrier_id", "service", "total_cost", "explanation"), 5))})
    yield dg.MaterializeResult(asset_key=BACKORDERS, metadata={
        "dagster/row_count": b.height, "units": int(b["quantity"].sum() or 0) if b.height else 0})
    yield from model_check_results({"core.allocations": a, "core.backorders": b})
    with wh.connect() as con:
        for r in RULES:
            yield reconciliation_result(con, r, ALLOCATIONS)
