"""The disruption feed: ``$SOM_HOME/landing/disruptions/`` -> ``ref.disruptions`` (owned by the asset
``ref/disruptions``); allocation reads the active ones."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.reference import load_table_file
from som_pipeline.schemas import DisruptionModel
from som_pipeline.services import Step
from som_pipeline.services.capture import write_quarantine
from som_pipeline.services.landing import FileOutcome, archive, incoming, ledger_row
from som_pipeline.warehouse import insert_frame, transaction

DISRUPTIONS = Step(reads=(), writes=("ref.disruptions",))


def ingest_disruptions(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None) -> list[FileOutcome]:
    """``$SOM_HOME/landing/disruptions/*.csv|parquet`` (DisruptionModel columns) -> ``ref.disruptions``.

    A disruption id seen again replaces the earlier row (an update: extended, lifted, downgraded). Bad rows
    are quarantined (channel ``disruptions``); each file is processed once (ledger), then archived.
    """
    now = now or datetime.now(UTC)
    files, out = incoming(con, settings, "disruptions", now)
    for f in files:
        ld = load_table_file("disruptions", DisruptionModel, "disruptions", f.lf.path, loaded_at=now)
        if ld.sha256 is not None and ld.sha256 != f.sha:  # changed since it was screened: next run, whole
            continue
        with transaction(con):
            if ld.frame is not None and ld.frame.height:
                con.execute("DELETE FROM ref.disruptions WHERE disruption_id IN (SELECT unnest(?::VARCHAR[]))",
                            [ld.frame["disruption_id"].to_list()])
                insert_frame(con, "ref.disruptions", ld.frame)
            write_quarantine(con, ld.quarantine)
            insert_frame(con, "ops.ingest_files", ledger_row(
                f.name, "disruptions", f.sha, f.lf.size, None, FEEDS["disruptions"].record_unit, ld.received,
                ld.accepted, ld.received - ld.accepted, ld.accepted, str(f.dest), now))
        archive(f)
        reasons = dict(ld.quarantine.group_by("reason_code").len().rows()) if ld.quarantine.height else {}
        out.append(FileOutcome(f.name, f.sha, "processed", ld.received, ld.accepted, ld.received - ld.accepted,
                               ld.accepted, reasons))
    return out


def active_disruptions(con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame:
    return con.execute("SELECT * FROM ref.disruptions WHERE starts_at <= ? AND ends_at > ?", [now, now]).pl()
