"""Fulfilment: the stock ledger (counts and receipts), then waves, picks, packages, shipments and the channels'
confirmations. Blocking checks guard the ledger's rules and shipped <= picked <= allocated."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.fulfilment import FULFILMENT, run_fulfilment
from som_pipeline.services.stock import STOCK, run_stock_postings
from som_pipeline.services.validation import business_now

LEDGER = table_key("core.stock_ledger")
RECEIPTS = table_key("core.receipts")
TASKS = table_key("core.pick_tasks")
SHIPMENTS = table_key("core.shipments")
LEDGER_RULES = ("stock_not_negative", "stock_movements_not_negative", "stock_matches_last_count")
FLOOR_RULES = {"stock_not_negative": TASKS, "shipped_units_picked_once": SHIPMENTS,
               "shipped_within_picked_within_allocated": SHIPMENTS}


def _this_run(con, table: str, run_id: str):
    """The rows a check validates: the ledger's of this run (append-only: earlier rows were checked when
    posted); the other tables whole."""
    if table == "core.stock_ledger":
        return con.execute("SELECT * FROM core.stock_ledger WHERE run_id = ?", [run_id]).pl()
    return con.execute(f"SELECT * FROM {table}").pl()  # noqa: S608 (names from code)


@dg.multi_asset(
    name="stock_ledger",
    specs=table_specs(STOCK, "fulfilment", {"polars", "duckdb"}),
    check_specs=model_check_specs(STOCK.writes) + [reconciliation_spec(r, LEDGER) for r in LEDGER_RULES],
    pool="duckdb",
)
def stock_ledger(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Stock counts (each new ``ref.inventory`` snapshot) and receipts (``landing/receipts``) posted to the ledger."""
    wh, settings = warehouse.warehouse(), warehouse.settings()
    rep = run_stock_postings(wh, settings, business_now(settings), context.run_id)
    for note in rep.notes:
        context.log.info(note)
    with wh.connect() as con:
        ledger = _this_run(con, "core.stock_ledger", context.run_id)
        receipts = con.execute("SELECT * FROM core.receipts").pl()
        stock = con.execute("SELECT count(*), coalesce(sum(on_hand), 0), coalesce(sum(available), 0) "
                            "FROM core.v_stock").fetchone()
        rules = [reconciliation_result(con, r, LEDGER) for r in LEDGER_RULES]
    yield dg.MaterializeResult(asset_key=LEDGER, metadata={
        **rep.as_metadata(), "movements_posted": ledger.height, "stock_pairs": stock[0],
        "units_on_hand": int(stock[1]), "units_available": int(stock[2]),
        "preview": dg.MetadataValue.md(md_table(ledger, 5))})
    yield dg.MaterializeResult(asset_key=RECEIPTS, metadata={"dagster/row_count": receipts.height})
    yield from model_check_results({"core.stock_ledger": ledger, "core.receipts": receipts})
    yield from rules


@dg.multi_asset(
    name="fulfilment",
    specs=table_specs(FULFILMENT, "fulfilment", {"polars", "duckdb"}),
    check_specs=model_check_specs(FULFILMENT.writes) + [reconciliation_spec(n, k, f"floor_{n}")
                                                        for n, k in FLOOR_RULES.items()],
    pool="duckdb",
)
def fulfilment(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Stop tasks of orders no longer approved, take scans, ship what is picked, release the next wave."""
    wh, settings = warehouse.warehouse(), warehouse.settings()
    rep = run_fulfilment(wh, settings, business_now(settings), context.run_id)
    for note in rep.notes:
        context.log.info(note)
    meta = rep.as_metadata()
    with wh.connect() as con:
        frames = {t: _this_run(con, t, context.run_id) for t in FULFILMENT.writes}
        rules = [reconciliation_result(con, n, k, f"floor_{n}") for n, k in FLOOR_RULES.items()]
    for t, df in frames.items():
        m = {"dagster/row_count": df.height, "preview": dg.MetadataValue.md(md_table(df, 5))}
        if t == "core.pick_tasks":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from rules
