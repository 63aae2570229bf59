"""Analyst views (``sql/views``) and the reconciliation queries (``sql/reconciliation``), each an asset check."""

import dagster as dg

from assets.lineage import deps_for
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.analytics import create_views, run_reconciliation_query
from som_pipeline.sqlfiles import sql_files

VIEWS = sql_files("views")
RECON = sql_files("reconciliation")
RECON_KEY = dg.AssetKey(["ops", "reconciliation"])


@dg.asset(
    key=["analytics", "views"],
    group_name="analytics",
    kinds={"sql", "duckdb"},
    deps=deps_for([t for f in VIEWS for t in f.tables]),
    description="The analyst views of sql/views/*.sql (CREATE OR REPLACE VIEW), e.g. core.v_orders, "
    "ops.v_ingest_health, ops.v_quarantine_summary.",
    pool="duckdb",
)
def analyst_views(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    names = create_views(warehouse.warehouse())
    return dg.MaterializeResult(metadata={"views": dg.MetadataValue.json(names)})


@dg.asset(
    key=RECON_KEY,
    group_name="analytics",
    kinds={"sql", "duckdb"},
    deps=deps_for([t for f in RECON for t in f.tables]),
    description="Runs every reconciliation query of sql/reconciliation/ (nightly); each is also an asset check.",
    check_specs=[
        dg.AssetCheckSpec(f.name, asset=RECON_KEY, blocking=False, description=f.summary) for f in RECON
    ],
    pool="duckdb",
)
def reconciliation(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    results = {}
    with warehouse.warehouse().connect() as con:
        for f in RECON:
            results[f.name] = run_reconciliation_query(con, f)
    yield dg.MaterializeResult(metadata={"discrepancies": dg.MetadataValue.json({k: v.height for k, v in results.items()})})
    for f in RECON:
        df = results[f.name]
        yield dg.AssetCheckResult(
            check_name=f.name,
            passed=df.height == 0,
            severity=dg.AssetCheckSeverity.WARN if f.severity == "warn" else dg.AssetCheckSeverity.ERROR,
            metadata={"rows": df.height, **({"sample": dg.MetadataValue.md(md_table(df, 20))} if df.height else {})},
        )
