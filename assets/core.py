"""Canonical orders (versions, live order, probable duplicates), daily sales, analyst views, reconciliation."""


import os
from datetime import timedelta

import dagster as dg
import polars as pl

from assets.capture import CAPTURE_KEYS
from assets.checks import model_check_result, model_check_spec, rule_check_result
from assets.reference import REF_KEYS
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import (
    DailySalesModel,
    OrderLineModel,
    OrderLineVersionModel,
    OrderModel,
    OrderVersionModel,
    ProbableDuplicateModel,
)
from som_pipeline.services.analytics import create_views, run_reconciliation_query
from som_pipeline.services.orders import build_core_orders, build_daily_sales
from som_pipeline.sqlfiles import sql_file, sql_files

ORDER_TABLES = {
    "orders": OrderModel,
    "order_lines": OrderLineModel,
    "order_versions": OrderVersionModel,
    "order_line_versions": OrderLineVersionModel,
    "probable_duplicates": ProbableDuplicateModel,
}
CORE_KEYS = {t: dg.AssetKey(["core", t]) for t in ORDER_TABLES}


@dg.multi_asset(
    name="core_orders",
    specs=[
        dg.AssetSpec(
            key,
            group_name="core",
            kinds={"polars", "duckdb"},
            description=(ORDER_TABLES[t].__doc__ or "").strip(),
            deps=[*CAPTURE_KEYS.values(), REF_KEYS["customer_aliases"]],
        )
        for t, key in CORE_KEYS.items()
    ],
    check_specs=[model_check_spec(k, ORDER_TABLES[t]) for t, k in CORE_KEYS.items()]
    + [
        dg.AssetCheckSpec("totals_reconcile", asset=CORE_KEYS["orders"], blocking=True,
                          description=sql_file("reconciliation", "order_totals").summary),
        dg.AssetCheckSpec("one_live_order_per_ref", asset=CORE_KEYS["orders"], blocking=True,
                          description=sql_file("reconciliation", "one_live_order_per_ref").summary),
    ],
    pool="duckdb",
)
def core_orders(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    tables = build_core_orders(wh)
    frames = {
        "orders": tables.orders,
        "order_lines": tables.order_lines,
        "order_versions": tables.order_versions,
        "order_line_versions": tables.order_line_versions,
        "probable_duplicates": tables.probable_duplicates,
    }
    for t, key in CORE_KEYS.items():
        df = frames[t]
        meta = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "orders":
            meta["orders_by_channel"] = dg.MetadataValue.json(dict(df.group_by("channel").len().sort("channel").rows()))
            meta["with_unknown_customer"] = df.filter(pl.col("customer_id").is_null()).height
        if t == "order_versions":
            meta["orders_with_several_versions"] = df.filter(pl.col("version") > 1).height
        yield dg.MaterializeResult(asset_key=key, metadata=meta)
        yield model_check_result(key, ORDER_TABLES[t], df)
    with wh.connect() as con:
        for name in ("order_totals", "one_live_order_per_ref"):
            bad = run_reconciliation_query(con, sql_file("reconciliation", name))
            check = "totals_reconcile" if name == "order_totals" else name
            yield rule_check_result(CORE_KEYS["orders"], check, bad, sql_file("reconciliation", name).summary)


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("SOM_PARTITIONS_START", "2026-01-01"), end_offset=1
)


@dg.asset(
    key=["core", "daily_sales"],
    group_name="core",
    kinds={"polars", "duckdb"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[CORE_KEYS["orders"], CORE_KEYS["order_lines"]],
    description=(DailySalesModel.__doc__ or "").strip()
    + " Partitioned by order date; a run over a range replaces exactly those days (delete + insert in one transaction).",
    check_specs=[model_check_spec(dg.AssetKey(["core", "daily_sales"]), DailySalesModel)],
    pool="duckdb",
)
def daily_sales(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    window = context.partition_time_window
    start, end = window.start.date(), (window.end - timedelta(days=1)).date()
    df = build_daily_sales(warehouse.warehouse(), start, end)
    key = dg.AssetKey(["core", "daily_sales"])
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": df.height, "days": (end - start).days + 1, "first_day": str(start),
                  "last_day": str(end), "preview": dg.MetadataValue.md(md_table(df, 10))}
    )
    yield model_check_result(key, DailySalesModel, df)


@dg.asset(
    key=["analytics", "views"],
    group_name="analytics",
    kinds={"sql", "duckdb"},
    deps=[*CORE_KEYS.values(), *REF_KEYS.values(), *(dg.AssetKey(["core", t]) for t in
          ("order_status", "order_holds", "reservations", "validation_results", "order_events", "allocations",
           "backorders"))],
    description="The analyst views of sql/views/*.sql (CREATE OR REPLACE VIEW), e.g. core.v_orders, "
    "ops.v_ingest_health, ops.v_quarantine_summary.",
    pool="duckdb",
)
def analyst_views(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    names = create_views(warehouse.warehouse())
    return dg.MaterializeResult(metadata={"views": dg.MetadataValue.json(names)})


RECON = sql_files("reconciliation")
RECON_KEY = dg.AssetKey(["ops", "reconciliation"])


@dg.asset(
    key=RECON_KEY,
    group_name="analytics",
    kinds={"sql", "duckdb"},
    deps=[*CORE_KEYS.values(), *CAPTURE_KEYS.values()],
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
