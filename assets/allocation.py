"""Allocation & routing: every approved order line to the warehouse and carrier that deliver on time at the
lowest total cost (exact optimiser; see docs/allocation.md). Blocking checks guard stock and capacity."""

import dagster as dg
import polars as pl

from assets.checks import model_check_result, model_check_spec, rule_check_result
from assets.core import CORE_KEYS
from assets.reference import REF_KEYS
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import AllocationModel, BackorderModel
from som_pipeline.services.allocation import run_allocation
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.sqlfiles import sql_file

ALLOCATIONS = dg.AssetKey(["core", "allocations"])
BACKORDERS = dg.AssetKey(["core", "backorders"])
RULES = ("allocations_within_stock", "allocations_within_capacity", "allocations_within_reservations",
         "ship_complete_one_warehouse")


@dg.multi_asset(
    name="allocation",
    specs=[
        dg.AssetSpec(ALLOCATIONS, group_name="allocation", kinds={"ortools", "polars", "duckdb"},
                     description=(AllocationModel.__doc__ or "").strip(),
                     deps=[dg.AssetKey(["core", "reservations"]), dg.AssetKey(["core", "order_status"]),
                           CORE_KEYS["orders"], CORE_KEYS["order_lines"], *REF_KEYS.values()]),
        dg.AssetSpec(BACKORDERS, group_name="allocation", kinds={"polars", "duckdb"},
                     description=(BackorderModel.__doc__ or "").strip(), deps=[ALLOCATIONS]),
    ],
    check_specs=[model_check_spec(ALLOCATIONS, AllocationModel), model_check_spec(BACKORDERS, BackorderModel)]
    + [dg.AssetCheckSpec(r, asset=ALLOCATIONS, blocking=True, description=sql_file("reconciliation", r).summary)
       for r in RULES],
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
    yield model_check_result(ALLOCATIONS, AllocationModel, a)
    yield model_check_result(BACKORDERS, BackorderModel, b)
    with wh.connect() as con:
        for r in RULES:
            yield rule_check_result(ALLOCATIONS, r, run_reconciliation_query(con, sql_file("reconciliation", r)),
                                    sql_file("reconciliation", r).summary)
