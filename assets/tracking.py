"""Tracking: carrier events -> shipment status (never backwards), ETA and late risk, exceptions, notifications."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.tracking import TRACKING, run_tracking
from som_pipeline.services.validation import business_now

STATUS = table_key("core.shipment_status")
RULES = ("tracking_never_backwards", "notifications_once")
# the rows a run wrote (by its clock): what the model checks validate (the tables grow with history)
THIS_RUN = {
    "core.tracking_events": "recorded_at = $now",
    "core.tracking_pending": "true",
    "core.shipment_status": "updated_at = $now",
    "state.transit_observations": "shipment_id IN (SELECT shipment_id FROM core.shipment_status "
                                  "WHERE updated_at = $now AND delivered_at IS NOT NULL)",
    "core.eta_accuracy": "true",
    "core.shipment_exceptions": "opened_at = $now OR resolved_at = $now",
}


@dg.multi_asset(
    name="tracking",
    specs=table_specs(TRACKING, "tracking", {"polars", "duckdb"}),
    check_specs=model_check_specs(TRACKING.writes) + [reconciliation_spec(n, STATUS) for n in RULES],
    pool="duckdb",
)
def tracking(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_tracking(wh, settings, now)
    for note in rep.notes:
        context.log.info(note)
    tables = TRACKING.writes
    with wh.connect() as con:
        frames = {t: con.execute(f"SELECT * FROM {t} WHERE {THIS_RUN[t]}",  # noqa: S608 (names and SQL from code)
                                 {"now": now} if "$now" in THIS_RUN[t] else {}).pl() for t in tables}
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TRACKING.writes}  # noqa: S608
        rules = [reconciliation_result(con, n, STATUS) for n in RULES]
    for t in TRACKING.writes:
        df = frames[t]
        m = {"dagster/row_count": counts[t], "rows_written_this_run": df.height,
             "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.shipment_status":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in rep.as_metadata().items()})
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules
