"""Validation & approvals: statuses, holds, reservations, events (blocking checks guard what is approved)."""

import dagster as dg

from assets.checks import ModelCheck, model_check_specs, reconciliation_result, reconciliation_spec
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import TABLES
from som_pipeline.services.validation import VALIDATION, business_now, run_validation

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
    settings = warehouse.settings()
    # the planning clock every stage shares (pinned for demos and replays): a task closed short after the
    # order's last evaluation is compared on one clock
    report = run_validation(wh, settings, now=business_now(settings))
    for note in report.notes:
        context.log.info(note)
    meta = report.as_metadata()
    o = report.outcome
    # what the metadata and checks need of the outcome; the rest is freed before the written rows are read back
    ids = o.status.select("order_id").unique().sort("order_id")
    evaluated, events, decisions = o.evaluated.select("order_id"), o.events, o.decisions
    report.outcome = o = None
    with wh.connect() as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in VALIDATION.writes}  # noqa: S608
        holds_by_reason = dict(con.execute("SELECT reason_code, count(*) FROM core.order_holds GROUP BY 1 "
                                           "ORDER BY 2 DESC, 1").fetchall())
        res = con.execute("SELECT coalesce(sum(quantity_reserved), 0), coalesce(sum(quantity_backordered), 0) "
                          "FROM core.reservations").fetchone()
        by_decision = dict(con.execute("SELECT decision, count(*) FROM core.reservations GROUP BY 1 ORDER BY 1")
                           .fetchall())
        rules = [reconciliation_result(con, n, k) for n, k in RULES.items()]
        # the rows this run wrote, not whole tables (which grow with history): the orders it read, their results,
        # the events and decisions it appended, the anomaly state of its orders -- read and checked in parts of
        # CHUNK orders (a day of TPC-H SF 1 is 1.5M orders and 10M result rows)
        written = {t: ModelCheck(table_key(t), TABLES[t]) for t in VALIDATION.writes}
        for t, df in _written(con, ids, evaluated, events, decisions):
            written[t].add(df)
    for t, w in written.items():
        m = {"dagster/row_count": counts[t], "rows_written_this_run": w.rows,
             "preview": dg.MetadataValue.md(md_table(w.preview, 5))}
        if t == "core.order_status":
            m.update({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in meta.items()})
        if t == "core.order_holds":
            m["by_reason"] = dg.MetadataValue.json(holds_by_reason)
        if t == "core.reservations":
            m["units_reserved"] = int(res[0])
            m["units_backordered"] = int(res[1])
            m["by_decision"] = dg.MetadataValue.json(by_decision)
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from (w.result() for w in written.values())
    yield from rules


CHUNK = 200_000  # orders per part of the written rows read back for the model checks


def _written(con, ids, evaluated, events, decisions):
    """``(table, rows this run wrote)`` in parts of :data:`CHUNK` orders (whole tables would grow with the
    history); each part is the table's rows for those orders."""
    from som_pipeline.warehouse import select_keys

    yield "core.manual_decisions", decisions
    for i in range(0, max(ids.height, 1), CHUNK):
        part = ids.slice(i, CHUNK)
        yield "core.order_status", select_keys(con, "core.order_status", part)
        yield "core.order_holds", select_keys(con, "core.order_holds", part)
        yield "core.reservations", select_keys(con, "core.reservations", part)
        yield "core.anomaly_baselines", select_keys(con, "core.anomaly_baselines", part)
        yield "core.validation_results", select_keys(con, "core.validation_results",
                                                     evaluated.join(part, on="order_id", how="semi"))
        yield "core.order_events", events.join(part, on="order_id", how="semi")
    # rows of orders outside ``ids`` (none expected: the evaluated orders have a status row)
    rest = evaluated.join(ids, on="order_id", how="anti")
    if rest.height:
        yield "core.validation_results", select_keys(con, "core.validation_results", rest)
    yield "core.order_events", events.join(ids, on="order_id", how="anti")
