"""Validation & approvals: statuses, holds, reservations, events (blocking checks guard what is approved)."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.validation import VALIDATION, run_validation

KEYS = {t.split(".", 1)[1]: table_key(t) for t in VALIDATION.writes}
RULES = {  # blocking checks on the approved-orders output: sql/reconciliation/<name>.sql must return no rows
    "approved_without_open_holds": KEYS["order_status"],
    "reservations_within_stock": KEYS["reservations"],
    "ship_complete_never_split": KEYS["reservations"],
}


@dg.multi_asset(
    name="order_validation",
    specs=table_specs(VALIDATION, "validation", {"polars", "duckdb"}),
    check_specs=model_check_specs(VALIDATION.writes) + [reconciliation_spec(n, k) for n, k in RULES.items()],
    pool="duckdb",
)
def order_validation(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    report = run_validation(wh, warehouse.settings())
    for note in report.notes:
        context.log.info(note)
    meta = report.as_metadata()
    with wh.connect() as con:
        frames = {t: con.execute(f"SELECT * FROM {t}").pl() for t in VALIDATION.writes}  # noqa: S608 (names from code)
        rules = [reconciliation_result(con, n, k) for n, k in RULES.items()]
    for t, df in frames.items():
        m = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.order_status":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        if t == "core.order_holds":
            m["by_reason"] = dg.MetadataValue.json(dict(df.group_by("reason_code").len().sort("len", descending=True).rows()))
        if t == "core.reservations":
            m["units_reserved"] = int(df["quantity_reserved"].sum() or 0)
            m["units_backordered"] = int(df["quantity_backordered"].sum() or 0)
            m["by_decision"] = dg.MetadataValue.json(dict(df.group_by("decision").len().sort("decision").rows()))
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules
