"""Reference service: ``$SOM_HOME/reference/<table>.csv|parquet`` -> ``ref.<table>`` (bad rows quarantined)."""

from __future__ import annotations

from datetime import UTC, datetime

from som_pipeline.config import Settings
from som_pipeline.reference import RefLoad, find_file, guard_shrink, load_reference
from som_pipeline.schemas import REFERENCE_TABLES
from som_pipeline.services import Step
from som_pipeline.services.capture import write_quarantine
from som_pipeline.warehouse import Warehouse, replace_table

REFERENCE = Step(reads=(), writes=tuple(f"ref.{t}" for t in REFERENCE_TABLES))


def load_reference_tables(wh: Warehouse, settings: Settings, tables: list[str]) -> list[RefLoad]:
    loads = []
    now = datetime.now(UTC)
    for t in tables:
        ld = load_reference(t, find_file(settings.reference, t), loaded_at=now)
        with wh.transaction() as con:
            if ld.frame is not None:
                current = con.execute(f"SELECT count(*) FROM ref.{t}").fetchone()[0]  # noqa: S608 (name from code)
                ld = guard_shrink(ld, current, settings.ref_max_shrink, now)
            if ld.frame is not None:
                replace_table(con, f"ref.{t}", ld.frame)
            write_quarantine(con, ld.quarantine)
        loads.append(ld)
    return loads
