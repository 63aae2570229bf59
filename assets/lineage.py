"""Asset keys and lineage derived from what each service declares it reads and writes (``services.Step``).

Conventions: a ``core.*``, ``ref.*`` or ``state.*`` table is the asset ``["core"|"ref"|"state", name]``; the
``stage.*`` tables are written by every channel's capture asset ``["stage", <channel>]``; ``ops.*`` tables are
bookkeeping (ledger, quarantine, watermarks) and carry no lineage. A test checks that every derived dependency is a defined asset.
"""

import dagster as dg

from som_pipeline.ingest.channels import CHANNEL_NAMES
from som_pipeline.schemas import TABLES
from som_pipeline.services import Step

CAPTURE_KEYS = {ch: dg.AssetKey(["stage", ch]) for ch in CHANNEL_NAMES}


def table_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


def deps_for(tables: tuple[str, ...] | list[str]) -> list[dg.AssetKey]:
    """The assets that produce ``tables`` (in first-seen order, no duplicates)."""
    keys: list[dg.AssetKey] = []
    for t in tables:
        schema = t.split(".", 1)[0]
        found = list(CAPTURE_KEYS.values()) if schema == "stage" else [] if schema == "ops" else [table_key(t)]
        keys += [k for k in found if k not in keys]
    return keys


def table_specs(step: Step, group: str, kinds: set[str], *, descriptions: dict[str, str] | None = None,
                **kwargs) -> list[dg.AssetSpec]:
    """One spec per table the step writes: key, description from the model, deps from the step's inputs."""
    descriptions = descriptions or {}
    deps = deps_for(step.inputs)
    return [
        dg.AssetSpec(table_key(t), group_name=group, kinds=kinds, deps=deps,
                     description=descriptions.get(t) or (TABLES[t].__doc__ or "").strip(), **kwargs)
        for t in step.writes
    ]
