"""Validation & approvals: statuses, holds, reservations, events (blocking checks guard what is approved)."""

import dagster as dg

from assets.checks import model_check_result, model_check_spec, rule_check_result
from assets.core import CORE_KEYS
from assets.reference import REF_KEYS
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import (
    ManualDecisionModel,
    OrderEventModel,
    OrderHoldModel,
    OrderStatusModel,
    ReservationModel,
    ValidationResultModel,
)
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.services.validation import run_validation
from som_pipeline.sqlfiles import sql_file

TABLES = {
    "order_status": OrderStatusModel,
    "order_holds": OrderHoldModel,
    "validation_results": ValidationResultModel,
    "order_events": OrderEventModel,
    "reservations": ReservationModel,
    "manual_decisions": ManualDecisionModel,
}
KEYS = {t: dg.AssetKey(["core", t]) for t in TABLES}
RULES = {  # blocking checks on the approved-orders output: sql/reconciliation/<name>.sql must return no rows
    "approved_without_open_holds": KEYS["order_status"],
    "reservations_within_stock": KEYS["reservations"],
    "ship_complete_never_split": KEYS["reservations"],
}


@dg.multi_asset(
    name="order_validation",
    specs=[
        dg.AssetSpec(
            key,
            group_name="validation",
            kinds={"polars", "duckdb"},
            description=(TABLES[t].__doc__ or "").strip(),
            deps=[CORE_KEYS["orders"], CORE_KEYS["order_lines"], *REF_KEYS.values()],
        )
        for t, key in KEYS.items()
    ],
    check_specs=[model_check_spec(k, TABLES[t]) for t, k in KEYS.items()]
    + [dg.AssetCheckSpec(name, asset=key, blocking=True, description=sql_file("reconciliation", name).summary)
       for name, key in RULES.items()],
    pool="duckdb",
)
def order_validation(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    report = run_validation(wh, warehouse.settings())
    for note in report.notes:
        context.log.info(note)
    meta = report.as_metadata()
    with wh.connect() as con:
        frames = {t: con.execute(f"SELECT * FROM core.{t}").pl() for t in TABLES}  # noqa: S608 (names from code)
        rules = {name: run_reconciliation_query(con, sql_file("reconciliation", name)) for name in RULES}
    for t, key in KEYS.items():
        df = frames[t]
        m = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "order_status":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        if t == "order_holds":
            m["by_reason"] = dg.MetadataValue.json(dict(df.group_by("reason_code").len().sort("len", descending=True).rows()))
        if t == "reservations":
            m["units_reserved"] = int(df["quantity_reserved"].sum() or 0)
            m["units_backordered"] = int(df["quantity_backordered"].sum() or 0)
            m["by_decision"] = dg.MetadataValue.json(dict(df.group_by("decision").len().sort("decision").rows()))
        yield dg.MaterializeResult(asset_key=key, metadata=m)
        yield model_check_result(key, TABLES[t], df)
    for name, key in RULES.items():
        yield rule_check_result(key, name, rules[name], sql_file("reconciliation", name).summary)

