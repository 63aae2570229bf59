"""Tracking: carrier events -> shipment status (never backwards), ETA and late risk, exceptions, notifications."""

import dagster as dg

from assets.checks import json_metadata, model_check_specs, reconciliation_spec, step_results
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
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
    yield from step_results(wh, TRACKING.writes, now, THIS_RUN, {n: STATUS for n in RULES},
                            {"core.shipment_status": json_metadata(rep.as_metadata())})
