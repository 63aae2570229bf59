"""Fulfilment: the stock ledger (counts and receipts), then waves, picks, packages, shipments and the channels'
confirmations. Blocking checks guard the ledger's rules and shipped <= picked <= allocated."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.fulfilment import FLOOR, FULFILMENT, run_floor, run_fulfilment
from som_pipeline.services.stock import run_stock_postings
from som_pipeline.services.validation import business_now

LEDGER = table_key("core.stock_ledger")
TASKS = table_key("core.pick_tasks")
SHIPMENTS = table_key("core.shipments")
LEDGER_RULES = ("stock_not_negative", "stock_movements_not_negative", "stock_matches_last_count")
FLOOR_RULES = {"shipped_units_picked_once": SHIPMENTS, "shipped_within_picked_within_allocated": SHIPMENTS}


# The rows a run wrote (its model checks validate those; the tables grow with history): keyed on the run's id,
# its clock (``?``: the business time the services stamped) and the files it processed.
_FILES = "SELECT source_file FROM ops.ingest_files WHERE channel = '{}' AND processed_at = $now"
_SHIPPED = "SELECT shipment_id FROM core.shipments WHERE shipped_at = $now"
_SCANNED = "SELECT task_id FROM core.pick_scans WHERE source_file IN (" + _FILES.format("scans") + ")"  # noqa: S608
THIS_RUN = {
    "core.stock_ledger": "run_id = $run",
    "core.receipts": f"source_file IN ({_FILES.format('receipts')})",
    "core.pick_scans": f"source_file IN ({_FILES.format('scans')})",
    "core.shipments": "shipped_at = $now",
    "core.shipment_lines": f"shipment_id IN ({_SHIPPED})",
    "core.packages": f"shipment_id IN ({_SHIPPED})",
    "core.package_contents": f"shipment_id IN ({_SHIPPED})",
    "core.pick_waves": "released_at = $now",
    "core.pick_tasks": f"released_at = $now OR closed_at = $now OR shipment_id IN ({_SHIPPED}) OR task_id IN ({_SCANNED})",
    "core.order_fulfilment": "updated_at = $now",
}


def _this_run(con, table: str, run_id: str, now):
    """The rows of ``table`` this run wrote (SQL text from code only; values bound)."""
    sql = THIS_RUN[table]
    params = {k: v for k, v in (("run", run_id), ("now", now)) if f"${k}" in sql}
    return con.execute(f"SELECT * FROM {table} WHERE {sql}", params).pl()  # noqa: S608 (names from code)


@dg.multi_asset(
    name="stock_ledger",
    specs=table_specs(FLOOR, "fulfilment", {"polars", "duckdb"}),
    check_specs=model_check_specs(FLOOR.writes) + [reconciliation_spec(r, LEDGER) for r in LEDGER_RULES]
    + [reconciliation_spec(n, k) for n, k in FLOOR_RULES.items()],
    pool="duckdb",
)
def stock_ledger(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """The floor's feedback before planning: counts (a new ``ref.inventory``), receipts, scans, and the shipping
    of what is picked (packages, labels, confirmations to the channels)."""
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_stock_postings(wh, settings, now, context.run_id)
    floor = run_floor(wh, settings, now, context.run_id)
    for note in rep.notes + floor.notes:
        context.log.info(note)
    with wh.connect() as con:
        frames = {t: _this_run(con, t, context.run_id, now) for t in FLOOR.writes}
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in FLOOR.writes}  # noqa: S608
        stock = con.execute("SELECT count(*), coalesce(sum(on_hand), 0), coalesce(sum(available), 0) "
                            "FROM core.v_stock").fetchone()
        rules = [reconciliation_result(con, r, LEDGER) for r in LEDGER_RULES]
        rules += [reconciliation_result(con, n, k) for n, k in FLOOR_RULES.items()]
    for t, df in frames.items():
        m = {"dagster/row_count": counts[t], "rows_written_this_run": df.height,
             "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.stock_ledger":
            m.update({**rep.as_metadata(), "stock_pairs": stock[0], "units_on_hand": int(stock[1]),
                      "units_available": int(stock[2])})
        if t == "core.shipments":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                      for k, v in floor.as_metadata().items()})
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules


@dg.multi_asset(
    name="fulfilment",
    specs=table_specs(FULFILMENT, "fulfilment", {"polars", "duckdb"}),
    check_specs=model_check_specs(FULFILMENT.writes) + [reconciliation_spec("stock_not_negative", TASKS,
                                                                            "stock_not_negative_after_release")],
    pool="duckdb",
)
def fulfilment(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Stop the tasks of orders no longer approved; release the next waves."""
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_fulfilment(wh, settings, now, context.run_id)
    for note in rep.notes:
        context.log.info(note)
    meta = rep.as_metadata()
    with wh.connect() as con:
        frames = {t: _this_run(con, t, context.run_id, now) for t in FULFILMENT.writes}
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in FULFILMENT.writes}  # noqa: S608
        rules = [reconciliation_result(con, "stock_not_negative", TASKS, "stock_not_negative_after_release")]
    for t, df in frames.items():
        m = {"dagster/row_count": counts[t], "rows_written_this_run": df.height,
             "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.pick_tasks":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules
