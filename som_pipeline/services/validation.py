"""Validation service: decision files + warehouse state -> the workflow -> warehouse (one transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.hashing import sha256_series
from som_pipeline.lifecycle import APPROVED, ON_HOLD
from som_pipeline.parquet_stage import PartFiles, part_files
from som_pipeline.schemas import (
    ManualDecisionModel,
    OrderHoldModel,
    OrderStatusModel,
    QuarantineModel,
    ReservationModel,
    ValidationResultModel,
    conform,
)
from som_pipeline.services import Step, inputs_fingerprint
from som_pipeline.services.anomaly import anomaly_state_for_run, write_anomaly_state
from som_pipeline.services.billing import receivables
from som_pipeline.services.capture import write_quarantine
from som_pipeline.services.landing import archive, incoming, ledger_row
from som_pipeline.validation import ValidationConfig, load_config
from som_pipeline.validation.approvals import DECISION_SCHEMA, REJECT_SCHEMA, read_decisions
from som_pipeline.validation.stable import SIGNATURE_COLUMNS, keep_open_hold_text
from som_pipeline.validation.workflow import Others, Outcome, Reference, State, run_workflow
from som_pipeline.warehouse import (
    Warehouse,
    copy_keys,
    duckdb_yields_memory,
    insert_frame,
    read_table,
    registered,
    replace_keys,
    select_keys,
    set_watermark,
    transaction,
    watermark,
)

REF_TABLES = ("customers", "products", "price_lists", "promotions", "open_items")
STATE_TABLES = ("core.order_status", "core.order_holds", "core.reservations", "core.manual_decisions",
                "core.anomaly_baselines")  # the first four are per order (read for the orders that can change)
VALIDATION = Step(
    reads=("core.orders", "core.order_lines", *(f"ref.{t}" for t in REF_TABLES), "core.stock_ledger", *STATE_TABLES),
    writes=(*STATE_TABLES, "core.validation_results", "core.order_events"),
    # what later stages left: shipped units and short picks (stock), our receivables (the credit check)
    feedback=("core.shipment_lines", "core.pick_tasks", "core.ar_open_items", "core.invoices"),
)
# the columns of core.orders / core.order_lines the workflow and its checks read (the rest -- capture
# provenance, hashes, channel figures, unused address parts -- stays in DuckDB: at TPC-H SF 0.1 the day's
# whole rows were 200 MB of Polars frames, ten times that at SF 1)
ORDER_COLUMNS = ("order_id", "version", "channel", "customer_id", "customer_ref", "order_ts", "order_date",
                 "currency", "ship_to_line1", "ship_to_city", "ship_to_postal_code", "ship_to_country",
                 "ship_method", "promo_code", "payment_status", "cancelled_at", "ship_complete", "items_subtotal",
                 "discount_total", "tax_total", "shipping_total", "prices_include_tax", "order_total")
LINE_COLUMNS = ("order_id", "version", "line_no", "sku", "description", "quantity", "unit_price", "line_amount",
                "discount_amount", "item_kind")


def stock_for_reservations(con) -> pl.DataFrame:
    """The stock validation reserves against (``warehouse_id, sku, on_hand, as_of``), from the stock ledger: on
    hand (``core.v_stock``) plus the units already shipped for order lines that still hold their reservation.
    A reservation keeps its shipped units (it is the order's promise), so they are added back: a line's
    reservation and its shipped units then cancel out, and no unit counts twice or not at all."""
    return con.execute("""
        SELECT warehouse_id, sku, sum(on_hand)::BIGINT AS on_hand, max(as_of) AS as_of FROM (
            SELECT warehouse_id, sku, on_hand, last_movement_at AS as_of FROM core.v_stock
            UNION ALL
            SELECT x.warehouse_id, x.sku, x.quantity, NULL FROM core.shipment_lines x
            SEMI JOIN core.reservations r USING (order_id, line_no, sku)
        ) GROUP BY ALL
    """).pl()


@dataclass
class ValidationReport:
    # the rows of the orders this run looked at (see run_validation): status rows, evaluated ids, events,
    # decisions; results, holds and reservations are emptied once written (read them from the warehouse)
    outcome: Outcome
    decision_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    orders_read: int = 0  # orders that could change, given to the workflow
    totals: dict = field(default_factory=dict)  # whole tables after the run: status, open_holds_by_reason
    skipped: bool = False  # inputs unchanged since the last run: nothing was evaluated

    def as_metadata(self) -> dict:
        o = self.outcome
        return {
            "skipped_inputs_unchanged": self.skipped,
            "orders_read": self.orders_read,
            "orders_evaluated": o.evaluated.height,
            "status": self.totals.get("status", {}),
            "open_holds_by_reason": self.totals.get("open_holds_by_reason", {}),
            "events_written": o.events.height,
            "decisions_applied": o.decisions.height,
            "decisions_quarantined": o.decision_rejects.height,
            "decision_files": len(self.decision_files),
        }


def config_for(settings: Settings) -> ValidationConfig:
    return load_config(settings.validation_config)


def run_validation(wh: Warehouse, settings: Settings, now: datetime | None = None,
                   cfg: ValidationConfig | None = None) -> ValidationReport:
    now = now or datetime.now(UTC)
    cfg = cfg or config_for(settings)
    notes: list[str] = []
    with wh.connect() as con:
        # decision files not seen before (the landing protocol: a re-drop is archived, never applied twice)
        files, settled = incoming(con, settings, "approvals", now, notes)
        data = {f.name: f.read() for f in files}  # the bytes parsed are the bytes hashed
        notes += [f"{n}: changed while read; left for the next run" for n, d in data.items() if d is None]
        reads = [(f, read_decisions(data[f.name], f.name, f.sha, now)) for f in files if data[f.name] is not None]
        new = pl.concat([r.decisions for _, r in reads]) if reads else pl.DataFrame(schema=DECISION_SCHEMA)

        fp = inputs_fingerprint(con, VALIDATION, cfg, cfg.as_of or now.date(), con.execute(
            "SELECT count(*) FROM core.reservations WHERE order_status = ? AND expires_at <= ?",
            [ON_HOLD, now]).fetchone()[0])
        if not files and watermark(con, "validation")[1] == fp:
            notes.append("inputs unchanged since the last validation (orders, reference data, configuration, "
                         "date, no hold lapsing, no decision file): nothing to evaluate")
            return ValidationReport(_nothing(), [], notes, 0, _totals(con), skipped=True)
        ids = _orders_that_can_change(con, new)
        ref = Reference(*(read_table(con, f"ref.{t}") for t in REF_TABLES[:4]), stock_for_reservations(con),
                        receivables(con))
        anomaly = anomaly_state_for_run(con, cfg)  # the anomaly baselines' state: only the groups touched
        state = State(*(select_keys(con, t, ids) for t in STATE_TABLES[:4]), anomaly=anomaly.history)
        # the observations are the workflow's alone: it drops them once the quantity check has used them (TPC-H
        # SF 1: 1.1 GB); write_anomaly_state works from the connection's temporary tables
        anomaly = replace(anomaly, history=anomaly.history.clear())
        others = _kept_approved_elsewhere(con, ids, cfg)
        # the orders' and lines' rows go to Parquet files (written by DuckDB), which the workflow scans: it holds
        # the columns most phases read, and whole rows only for the part of the orders it screens at a time (TPC-H
        # SF 1: the day's whole rows in Polars cost 2.5 GB). The pass findings go to part files as the checks
        # produce them (most of a day's findings; no decision reads them), published in the run's transaction.
        with part_files(settings.tmp, "validation-") as stage:
            copy_keys(con, "core.orders", ids, ", ".join(ORDER_COLUMNS), stage.file("orders"))
            copy_keys(con, "core.order_lines", ids, ", ".join(LINE_COLUMNS), stage.file("lines"))
            orders, lines = pl.scan_parquet(stage.file("orders")), pl.scan_parquet(stage.file("lines"))
            with duckdb_yields_memory(con, wh.memory_limit):  # DuckDB's temporary tables wait on disk meanwhile
                out = run_workflow(orders, lines, state, new, ref, cfg, now, others=others,
                                   passes=lambda found: stage.add("passes", found))
            # the reference data is not needed for the writes: freed before the transaction (DuckDB needs memory
            # for the upserts)
            del orders, lines, ref, others

            # quarantine: unreadable rows/files + decisions that do not apply
            q = _decision_quarantine(reads, out, now)
            holds = keep_open_hold_text(out.holds, state.holds)
            with transaction(con):
                replace_keys(con, "core.order_status", ids, out.status)
                replace_keys(con, "core.order_holds", ids, holds)
                replace_keys(con, "core.reservations", ids, out.reservations)
                write_results(con, out.evaluated.select("order_id"), out.results, stage)
                # written: the report keeps what its readers use (status rows, evaluated ids, events, decisions);
                # the day's findings, holds and reservations are freed before DuckDB computes the anomaly state
                out.results, out.holds, out.reservations = (f.clear() for f in (out.results, out.holds,
                                                                                out.reservations))
                del holds
                insert_frame(con, "core.order_events", out.events)
                insert_frame(con, "core.manual_decisions", out.decisions)
                write_quarantine(con, q)
                write_anomaly_state(con, anomaly)
                for f, r in reads:
                    nq = q.filter(pl.col("file_sha256") == f.sha).height
                    insert_frame(con, "ops.ingest_files", ledger_row(
                        f.name, "approvals", f.sha, f.lf.size, "utf-8", FEEDS["approvals"].record_unit, r.received,
                        r.received - nq, nq, out.decisions.filter(pl.col("source_file") == f.name).height,
                        str(f.dest), now))
                set_watermark(con, "validation", 0, fp, now)
        totals = _totals(con)
    for f, _ in reads:
        archive(f)
    notes += [f"{o.source_file}: identical content already applied ({o.status}); archived" for o in settled]
    return ValidationReport(out, [f.name for f, _ in reads], notes, ids.height, totals)


def write_results(con, evaluated: pl.DataFrame, findings: pl.DataFrame, stage: PartFiles) -> None:
    """Replace the ``core.validation_results`` rows of the ``evaluated`` orders (call inside the run's
    transaction) by their new findings: ``findings`` (in memory) and the pass findings staged as ``passes`` part
    files. An order whose findings have the same signature as its previous ones (every finding's
    :data:`~som_pipeline.validation.stable.SIGNATURE_COLUMNS`) keeps its previous rows, words and numbers
    (:mod:`~som_pipeline.validation.stable`). In SQL: the new findings are read from the files, never all held
    in Python, and only orders that had rows (re-evaluated held orders) are compared."""
    files = stage.files("passes")
    parquet = "SELECT * EXCLUDE (_part, _pos) FROM read_parquet(?)" if files else \
        "SELECT * FROM core.validation_results WHERE false"
    params = [files] if files else []
    sig = " || '|' || ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in SIGNATURE_COLUMNS)
    with registered(con, evaluated.select("order_id").unique()) as ev:
        # the in-memory findings are copied into DuckDB first (failures and warnings: small); filters DuckDB pushes
        # into a scan of Polars' Arrow string views fail in pyarrow ('is_in' has no string_view kernel)
        with registered(con, findings) as f:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _val_found AS SELECT * FROM {f}")  # noqa: S608
        new = f"(SELECT * FROM _val_found UNION ALL BY NAME {parquet})"  # noqa: S608 (text from code)
        try:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _val_same AS
                WITH old AS (SELECT * FROM core.validation_results SEMI JOIN {ev} USING (order_id)),
                sig_old AS (SELECT order_id, string_agg({sig}, ';' ORDER BY {sig}) AS s FROM old GROUP BY 1),
                sig_new AS (SELECT order_id, string_agg({sig}, ';' ORDER BY {sig}) AS s
                            FROM {new} n SEMI JOIN sig_old USING (order_id) GROUP BY 1)
                SELECT order_id FROM sig_new JOIN sig_old USING (order_id) WHERE sig_new.s = sig_old.s""",  # noqa: S608
                        params)  # (identifiers from code; the file paths are a bound parameter)
            con.execute(f"DELETE FROM core.validation_results WHERE order_id IN (SELECT order_id FROM {ev}) "  # noqa: S608
                        "AND order_id NOT IN (SELECT order_id FROM _val_same)")
            con.execute("INSERT INTO core.validation_results BY NAME SELECT * FROM _val_found "
                        "ANTI JOIN _val_same USING (order_id)")
            if files:
                con.execute(f"INSERT INTO core.validation_results BY NAME {parquet} "  # noqa: S608
                            "ANTI JOIN _val_same USING (order_id)", params)
        finally:
            con.execute("DROP TABLE IF EXISTS _val_same")
            con.execute("DROP TABLE IF EXISTS _val_found")


def _totals(con) -> dict:
    return {
        "status": dict(con.execute("SELECT status, count(*) FROM core.order_status GROUP BY 1 ORDER BY 1").fetchall()),
        "open_holds_by_reason": dict(con.execute(
            "SELECT reason_code, count(*) FROM core.order_holds GROUP BY 1 ORDER BY 1").fetchall()),
    }


def _nothing() -> Outcome:
    from som_pipeline.schemas import OrderEventModel, empty

    return Outcome(empty(OrderStatusModel), empty(OrderHoldModel), empty(ReservationModel),
                   empty(ValidationResultModel), pl.DataFrame(schema={"order_id": pl.String}),
                   empty(OrderEventModel), empty(ManualDecisionModel), pl.DataFrame())


def _orders_that_can_change(con, new_decisions: pl.DataFrame) -> pl.DataFrame:
    """``[order_id]`` given to the workflow: orders without a status for their current version (new, new
    version, cancelled at the channel), held orders, approved orders waiting for backordered stock, orders with a
    pick task closed short since their last evaluation, and the orders a new decision names. Every other order keeps its status, and its rows are not read."""
    with registered(con, new_decisions.select("order_id").unique()) as named:
        sql = ("SELECT o.order_id FROM core.orders o LEFT JOIN core.order_status s USING (order_id) "  # noqa: S608
               "WHERE s.order_id IS NULL OR s.version <> o.version OR s.status = ? "
               "UNION SELECT order_id FROM core.reservations WHERE quantity_backordered > 0 AND order_status = ? "
               # a task closed short since the order was last evaluated: its reservation shrinks to the stock left
               "UNION SELECT t.order_id FROM core.pick_tasks t JOIN core.order_status s USING (order_id) "
               "WHERE t.status = 'SHORT' AND t.closed_at > s.evaluated_at "
               f"UNION SELECT order_id FROM {named} SEMI JOIN core.orders USING (order_id) ORDER BY 1")
        return con.execute(sql, [ON_HOLD, APPROVED]).pl()


def _kept_approved_elsewhere(con, ids: pl.DataFrame, cfg: ValidationConfig) -> Others:
    """What the approved orders outside ``ids`` (current version, not cancelled, not history) hold: stock per
    SKU, committed credit per customer (not prepaid), promo uses -- summed in SQL, as the workflow would."""
    history = "o.order_date >= ?" if cfg.history_before else "?::DATE IS NULL"
    with registered(con, ids) as given:
        # an order's committed credit is what is not invoiced yet: an invoice is in the receivables instead
        sql = ("CREATE OR REPLACE TEMP TABLE _kept AS SELECT o.order_id, o.customer_id, "  # noqa: S608
               "greatest(o.order_total - coalesce(i.invoiced, 0), 0)::DECIMAL(18, 2) AS order_total, "
               "o.payment_status, o.promo_code FROM core.orders o JOIN core.order_status s USING (order_id) "
               "LEFT JOIN (SELECT order_id, sum(total) AS invoiced FROM core.invoices GROUP BY 1) i USING (order_id) "
               f"WHERE s.status = ? AND s.version = o.version AND o.cancelled_at IS NULL AND {history} "
               f"AND o.order_id NOT IN (SELECT order_id FROM {given})")
        con.execute(sql, [APPROVED, cfg.history_before])
    try:
        fixed = con.execute("SELECT r.sku, sum(r.quantity_reserved)::BIGINT AS quantity FROM core.reservations r "
                            "SEMI JOIN _kept USING (order_id) GROUP BY 1").pl()
        committed = con.execute(
            "SELECT customer_id, coalesce(sum(order_total), 0)::DECIMAL(38, 2) AS amount FROM _kept "
            "WHERE customer_id IS NOT NULL AND NOT coalesce(list_contains(?, payment_status), false) GROUP BY 1",
            [list(cfg.prepaid_payment_statuses)]).pl()
        usage = con.execute("SELECT upper(promo_code) AS code, count(*)::BIGINT AS used FROM _kept "
                            "WHERE promo_code IS NOT NULL GROUP BY 1").pl()
    finally:
        con.execute("DROP TABLE IF EXISTS _kept")
    return Others(fixed, committed, usage)


def _decision_quarantine(reads: list, out: Outcome, now: datetime) -> pl.DataFrame:
    parts = []
    for f, r in reads:
        if r.rejected.height:
            parts.append(r.rejected.with_columns(pl.lit(f.name).alias("source_file"), pl.lit(f.sha).alias("file_sha256")))
    sha_of = {f.name: f.sha for f, _ in reads}
    if out.decision_rejects.height:
        parts.append(out.decision_rejects.select(
            "location", "order_ref", "reason_code", "message", "raw", "source_file",
            pl.col("source_file").replace_strict(sha_of, default=None).alias("file_sha256")))
    if not parts:
        return conform(pl.DataFrame(), QuarantineModel).clear()
    q = pl.concat([p.cast({**REJECT_SCHEMA, "source_file": pl.String, "file_sha256": pl.String}) for p in parts])
    q = q.with_columns(
        sha256_series(pl.concat_str([pl.col("file_sha256"), pl.col("location"), pl.col("reason_code")], separator="|"), q)
        .alias("quarantine_id"),
        pl.lit("approvals").alias("channel"),
        pl.lit("decision").alias("record_kind"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    return conform(q, QuarantineModel)


def business_now(settings: Settings) -> datetime:
    """The planning clock: ``$SOM_HOME/clock`` (an ISO timestamp: a pinned clock for demos and replays, which ``som
    floor`` moves on past the floor's work), else the validation config's pinned ``as_of`` at 09:00 UTC, else now."""
    pinned = settings.home / "clock"
    if pinned.is_file():
        at = datetime.fromisoformat(pinned.read_text(encoding="utf-8").strip())
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    as_of = config_for(settings).as_of
    if as_of is None:
        return datetime.now(UTC)
    return datetime.combine(as_of, datetime.min.time(), tzinfo=UTC).replace(hour=9)
