"""The disruption feed: ``$SOM_HOME/landing/disruptions/`` -> ``ref.disruptions`` (owned by the asset
``ref/disruptions``); allocation reads the active ones."""


from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_file
from som_pipeline.reference import load_table_file
from som_pipeline.schemas import DisruptionModel
from som_pipeline.services.capture import FileOutcome, ledger_lookup, ledger_row, write_quarantine
from som_pipeline.services.landing import archive_path, list_landing, move_to
from som_pipeline.warehouse import insert_frame, transaction


def ingest_disruptions(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None) -> list[FileOutcome]:
    """``$SOM_HOME/landing/disruptions/*.csv|parquet`` (DisruptionModel columns) -> ``ref.disruptions``.

    A disruption id seen again replaces the earlier row (an update: extended, lifted, downgraded). Bad rows
    are quarantined (channel ``disruptions``); each file is processed once (ledger), then archived.
    """
    now = now or datetime.now(UTC)
    out = []
    for lf in list_landing(settings.disruptions, "disruptions"):
        sha = sha256_file(lf.path)
        dest = archive_path(settings.archive, "disruptions", lf.name, sha, now)
        if ledger_lookup(con, [sha]):
            move_to(lf.path, dest.with_name(dest.name + ".redrop"))
            out.append(FileOutcome(lf.name, sha, "redrop"))
            continue
        ld = load_table_file("disruptions", DisruptionModel, "disruptions", lf.path, loaded_at=now)
        with transaction(con):
            if ld.frame is not None and ld.frame.height:
                con.execute("DELETE FROM ref.disruptions WHERE disruption_id IN (SELECT unnest(?::VARCHAR[]))",
                            [ld.frame["disruption_id"].to_list()])
                insert_frame(con, "ref.disruptions", ld.frame)
            write_quarantine(con, ld.quarantine)
            insert_frame(con, "ops.ingest_files", ledger_row(
                lf.name, "disruptions", sha, lf.size, None, "disruption", ld.received, ld.accepted,
                ld.received - ld.accepted, ld.accepted, str(dest), now))
        move_to(lf.path, dest)
        reasons = dict(ld.quarantine.group_by("reason_code").len().rows()) if ld.quarantine.height else {}
        out.append(FileOutcome(lf.name, sha, "processed", ld.received, ld.accepted, ld.received - ld.accepted,
                               ld.accepted, reasons))
    return out


def active_disruptions(con: duckdb.DuckDBPyConnection, now: datetime) -> pl.DataFrame:
    return con.execute("SELECT * FROM ref.disruptions WHERE starts_at <= ? AND ends_at > ?", [now, now]).pl()
