"""Returns and closure: return requests judged into RMAs, refunds and credit notes, what came back posted to the
stock ledger; then each order's closure and the nightly reconciliation's breaks and report. Blocking checks: no
CLOSED order with an open quantity or balance; returned <= delivered, refunded <= paid, credited <= invoiced; every
RETURN credit note credits what core.refunds records for it (the restocking fee kept)."""

import dagster as dg

from assets.checks import model_check_specs, reconciliation_spec, step_results
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.services.closure import CLOSURE, run_closure
from som_pipeline.services.returns import RETURNS, run_returns
from som_pipeline.services.validation import business_now

REQUESTS = table_key("core.return_requests")
CLOSURE_KEY = table_key("core.order_closure")
RETURN_RULES = {"returns_within_delivered": REQUESTS, "credit_notes_match_refunds": table_key("core.refunds")}
CLOSURE_RULES = {"closed_orders_complete": CLOSURE_KEY}
_NOW = {"core.return_requests": "received_at = $now",
        "core.return_receipts": "source_file IN (SELECT source_file FROM ops.ingest_files WHERE channel = "
        "'return_receipts' AND processed_at = $now)", "core.refunds": "refunded_at = $now",
        "core.chargebacks": "updated_at = $now", "core.order_closure": "updated_at = $now",
        "core.order_line_closure": "updated_at = $now",
        "ops.reconciliation_breaks": "last_seen = $now OR resolved_at = $now"}


@dg.multi_asset(
    name="returns",
    specs=table_specs(RETURNS, "returns", {"polars", "duckdb"}),
    check_specs=model_check_specs(RETURNS.writes) + [reconciliation_spec(n, k) for n, k in RETURN_RULES.items()],
    pool="duckdb",
)
def returns(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_returns(wh, settings, now, context.run_id)
    for note in rep.notes:
        context.log.info(note)
    yield from step_results(wh, RETURNS.writes, now, _NOW, RETURN_RULES, {RETURNS.writes[0]: rep.as_metadata()})


@dg.multi_asset(
    name="closure",
    specs=table_specs(CLOSURE, "closure", {"polars", "duckdb"}),
    check_specs=model_check_specs(CLOSURE.writes) + [reconciliation_spec(n, k) for n, k in CLOSURE_RULES.items()],
    pool="duckdb",
)
def closure(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Each order's closure, the nightly reconciliation's breaks (carried night to night) and the HTML report."""
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_closure(wh, settings, now)
    for note in rep.notes:
        context.log.info(note)
    meta = {k: v for k, v in rep.as_metadata().items() if v is not None}
    if rep.report:
        meta["report"] = dg.MetadataValue.path(rep.report)
    yield from step_results(wh, CLOSURE.writes, now, _NOW, CLOSURE_RULES, {CLOSURE.writes[0]: meta})
