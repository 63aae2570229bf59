"""Returns and closure: return requests judged into RMAs, refunds and credit notes, what came back posted to the
stock ledger; then each order's closure and the nightly reconciliation's breaks and report. Blocking checks: no
CLOSED order with an open quantity or balance; returned <= delivered, refunded <= paid, credited <= invoiced."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.closure import CLOSURE, run_closure
from som_pipeline.services.returns import RETURNS, run_returns
from som_pipeline.services.validation import business_now

REQUESTS = table_key("core.return_requests")
CLOSURE_KEY = table_key("core.order_closure")
RETURN_RULES = {"returns_within_delivered": REQUESTS}
CLOSURE_RULES = {"closed_orders_complete": CLOSURE_KEY}
_NOW = {"core.return_requests": "received_at = $now",
        "core.return_receipts": "source_file IN (SELECT source_file FROM ops.ingest_files WHERE channel = "
        "'return_receipts' AND processed_at = $now)", "core.refunds": "refunded_at = $now", "core.order_closure": "updated_at = $now",
        "ops.reconciliation_breaks": "last_seen = $now OR resolved_at = $now"}


def _results(context, wh, step, now, rules, meta):
    with wh.connect() as con:
        frames = {t: con.execute(f"SELECT * FROM {t} WHERE {_NOW[t]}", {"now": now}).pl() for t in step.writes}  # noqa: S608
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in step.writes}  # noqa: S608
        checks = [reconciliation_result(con, n, k) for n, k in rules.items()]
    for t in step.writes:
        df = frames[t]
        m = {"dagster/row_count": counts[t], "rows_written_this_run": df.height,
             "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == step.writes[0]:
            m.update(meta)
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from checks


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
    yield from _results(context, wh, RETURNS, now, RETURN_RULES, rep.as_metadata())


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
    yield from _results(context, wh, CLOSURE, now, CLOSURE_RULES, meta)
