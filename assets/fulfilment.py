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


def _this_run(con, table: str, run_id: str):
    """The rows a check validates: the ledger's of this run (append-only: earlier rows were checked when
    posted); the other tables whole."""
    if table == "core.stock_ledger":
        return con.execute("SELECT * FROM core.stock_ledger WHERE run_id = ?", [run_id]).pl()
    return con.execute(f"SELECT * FROM {table}").pl()  # noqa: S608 (names from code)


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
        frames = {t: _this_run(con, t, context.run_id) for t in FLOOR.writes}
        stock = con.execute("SELECT count(*), coalesce(sum(on_hand), 0), coalesce(sum(available), 0) "
                            "FROM core.v_stock").fetchone()
        rules = [reconciliation_result(con, r, LEDGER) for r in LEDGER_RULES]
        rules += [reconciliation_result(con, n, k) for n, k in FLOOR_RULES.items()]
    for t, df in frames.items():
        m = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
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
    rep = run_fulfilment(wh, settings, business_now(settings), context.run_id)
    for note in rep.notes:
        context.log.info(note)
    meta = rep.as_metadata()
    with wh.connect() as con:
        frames = {t: _this_run(con, t, context.run_id) for t in FULFILMENT.writes}
        rules = [reconciliation_result(con, "stock_not_negative", TASKS, "stock_not_negative_after_release")]
    for t, df in frames.items():
        m = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.pick_tasks":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules
