"""Reference service: ``$SOM_HOME/reference/<table>.csv|parquet`` -> ``ref.<table>`` (bad rows quarantined)."""

from __future__ import annotations

from datetime import UTC, datetime

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_file
from som_pipeline.reference import RefLoad, find_file, guard_shrink, load_reference
from som_pipeline.schemas import REFERENCE_TABLES, QuarantineModel, empty
from som_pipeline.services import Step
from som_pipeline.services.capture import write_quarantine
from som_pipeline.warehouse import Warehouse, replace_table, set_watermark, watermark

REFERENCE = Step(reads=(), writes=tuple(f"ref.{t}" for t in REFERENCE_TABLES))


def load_reference_tables(wh: Warehouse, settings: Settings, tables: list[str]) -> list[RefLoad]:
    """Load each table's file. A file whose content (sha256) is the one last loaded into its table is not read
    again (``RefLoad.unchanged``): a run's cost follows what changed, not the size of the reference data."""
    loads = []
    now = datetime.now(UTC)
    with wh.connect() as con:  # the content each table was last loaded from, read once
        last_loaded = {t: watermark(con, f"ref.{t}")[1] for t in tables}
    for t in tables:
        path = find_file(settings.reference, t)
        sha = sha256_file(path) if path is not None else None
        if sha is not None and sha == last_loaded[t]:
            loads.append(RefLoad(t, path.name, sha, None, empty(QuarantineModel), 0, 0,
                                 "unchanged since the last load: table kept", unchanged=True))
            continue
        ld = load_reference(t, path, loaded_at=now)
        with wh.transaction() as con:
            if ld.frame is not None:
                current = con.execute(f"SELECT count(*) FROM ref.{t}").fetchone()[0]  # noqa: S608 (name from code)
                ld = guard_shrink(ld, current, settings.ref_max_shrink, now)
            if ld.frame is not None:
                replace_table(con, f"ref.{t}", ld.frame)
                set_watermark(con, f"ref.{t}", 0, sha, now)
            write_quarantine(con, ld.quarantine)
        loads.append(ld)
    return loads
