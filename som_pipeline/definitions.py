"""The Dagster code location (entry point; the only som_pipeline module besides the CLI that meets Dagster)."""

from __future__ import annotations

import dagster as dg

from assets import all_assets
from assets.automation import jobs, schedules, sensors
from resources import default_resources


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=all_assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=default_resources(),
        # multiprocess by default (UI, schedules, sensors); a run may choose in_process in its run config
        executor=dg.multi_or_in_process_executor,
    )


defs = build_definitions()


def get_job(name: str) -> dg.JobDefinition:
    """For ``dg.build_reconstructable_job`` (multiprocess execution from the CLI)."""
    return defs.resolve_job_def(name)
