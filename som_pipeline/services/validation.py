"""Validation service: decision files + warehouse state -> the workflow -> warehouse (one transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.hashing import sha256_series
from som_pipeline.schemas import QuarantineModel, conform
from som_pipeline.services import Step
from som_pipeline.services.anomaly import anomaly_state_for_run, write_anomaly_state
from som_pipeline.services.capture import write_quarantine
from som_pipeline.services.landing import archive, incoming, ledger_row
from som_pipeline.validation import ValidationConfig, load_config
from som_pipeline.validation.approvals import DECISION_SCHEMA, REJECT_SCHEMA, read_decisions
from som_pipeline.validation.stable import keep_open_hold_text, keep_unchanged_results
from som_pipeline.validation.workflow import Outcome, Reference, State, run_workflow
from som_pipeline.warehouse import Warehouse, insert_frame, read_table, replace_table, transaction

REF_TABLES = ("customers", "products", "price_lists", "promotions", "inventory", "open_items")
STATE_TABLES = ("core.order_status", "core.order_holds", "core.reservations", "core.manual_decisions",
                "core.anomaly_baselines")
VALIDATION = Step(
    reads=("core.orders", "core.order_lines", *(f"ref.{t}" for t in REF_TABLES), *STATE_TABLES),
    writes=(*STATE_TABLES, "core.validation_results", "core.order_events"),
)


@dataclass
class ValidationReport:
    outcome: Outcome
    decision_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        o = self.outcome
        return {
            "orders_evaluated": o.evaluated.height,
            "status": dict(o.status.group_by("status").len().sort("status").rows()),
            "open_holds_by_reason": dict(o.holds.group_by("reason_code").len().sort("reason_code").rows()),
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

        orders = read_table(con, "core.orders")
        lines = read_table(con, "core.order_lines")
        ref = Reference(*(read_table(con, f"ref.{t}") for t in REF_TABLES))
        anomaly = anomaly_state_for_run(con, cfg)  # the anomaly baselines' state: only the groups touched
        state = State(read_table(con, "core.order_status"), read_table(con, "core.order_holds"),
                      read_table(con, "core.reservations"), read_table(con, "core.manual_decisions"),
                      anomaly=anomaly.history)
        out = run_workflow(orders, lines, state, new, ref, cfg, now)

        # quarantine: unreadable rows/files + decisions that do not apply
        q = _decision_quarantine(reads, out, now)
        ids = out.evaluated["order_id"].to_list()
        old_results = con.execute("SELECT * FROM core.validation_results WHERE order_id IN (SELECT unnest(?::VARCHAR[]))",
                                  [ids]).pl()
        results = keep_unchanged_results(out.results, old_results)
        holds = keep_open_hold_text(out.holds, state.holds)
        with transaction(con):
            replace_table(con, "core.order_status", out.status)
            replace_table(con, "core.order_holds", holds)
            replace_table(con, "core.reservations", out.reservations)
            con.execute("DELETE FROM core.validation_results WHERE order_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
            insert_frame(con, "core.validation_results", results)
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
    for f, _ in reads:
        archive(f)
    notes += [f"{o.source_file}: identical content already applied ({o.status}); archived" for o in settled]
    return ValidationReport(out, [f.name for f, _ in reads], notes)


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
    """The planning clock: the validation config's pinned ``as_of`` at 09:00 UTC (demos, replays), else now."""
    as_of = config_for(settings).as_of
    if as_of is None:
        return datetime.now(UTC)
    return datetime.combine(as_of, datetime.min.time(), tzinfo=UTC).replace(hour=9)
