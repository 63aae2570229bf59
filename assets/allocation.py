"""Allocation & routing: every approved order line to the warehouse and carrier that deliver on time at the
lowest total cost (exact optimiser; see docs/allocation.md). Blocking checks guard stock and capacity."""

import dagster as dg

from assets.checks import ModelCheck, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import TABLES
from som_pipeline.services.allocation import ALLOCATION, run_allocation
from som_pipeline.warehouse import select_keys

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
    run = run_allocation(wh, warehouse.settings())
    if not run.parts:
        context.log.info("allocation: inputs unchanged since the last run; tables kept")
    checks = {t: ModelCheck(table_key(t), TABLES[t]) for t in ALLOCATION.writes}
    with wh.connect() as con:
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ALLOCATION.writes}  # noqa: S608
        by_wh = con.execute("SELECT warehouse_id, sum(quantity)::BIGINT FROM core.allocations GROUP BY 1 "
                            "ORDER BY 1").fetchall()
        total_cost, units_b = con.execute(
            "SELECT (SELECT coalesce(sum(total_cost), 0) FROM core.allocations), "
            "(SELECT coalesce(sum(quantity), 0)::BIGINT FROM core.backorders)").fetchone()
        preview = con.execute("SELECT order_id, line_no, sku, warehouse_id, quantity, carrier_id, service, total_cost, "
                              "explanation FROM core.allocations ORDER BY order_id, line_no, sku, warehouse_id "
                              "LIMIT 5").pl()
        # the tables' rows read back and checked in parts of CHUNK orders (a day of TPC-H SF 1: 4.6M rows)
        ids = con.execute("SELECT order_id FROM core.allocations UNION SELECT order_id FROM core.backorders "
                          "ORDER BY 1").pl()
        for i in range(0, max(ids.height, 1), CHUNK):
            part = ids.slice(i, CHUNK)
            for t, c in checks.items():
                c.add(select_keys(con, t, part))
        rules = [reconciliation_result(con, r, ALLOCATIONS) for r in RULES]
    yield dg.MaterializeResult(asset_key=ALLOCATIONS, metadata={
        "dagster/row_count": rows["core.allocations"],
        "units_by_warehouse": dg.MetadataValue.json({w: int(q) for w, q in by_wh}),
        "total_cost": str(total_cost),
        "metrics": dg.MetadataValue.json({k: v for k, v in run.metrics.items() if isinstance(v, (int, float, str))}),
        "preview": dg.MetadataValue.md(md_table(preview, 5))})
    yield dg.MaterializeResult(asset_key=BACKORDERS, metadata={
        "dagster/row_count": rows["core.backorders"], "units": int(units_b)})
    yield from (c.result() for c in checks.values())
    yield from rules


CHUNK = 200_000  # orders per part of the tables read back for the model checks
