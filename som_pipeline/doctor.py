"""Operating the pipeline from the command line: one command per home at a time, and recovery after a crash.

An entry-point module (it meets Dagster, like ``cli.py``). What it guarantees:

- **One home, one command.** Every ``som`` command that runs Dagster or writes the warehouse holds an exclusive
  lock on ``$SOM_HOME/.som.lock`` (:func:`home_lock`). A second command on the same home waits (up to
  ``SOM_DUCKDB_LOCK_TIMEOUT`` seconds) and says which process holds it; the Dagster instance is created and
  migrated under that lock, so two first runs never race on the instance's schema.
- **A killed run never blocks the next one.** Runs started by the CLI carry the tags ``som/launcher=cli``,
  ``som/pid`` and ``som/host``. Holding the home lock proves that no other CLI command of this home is alive, so
  every CLI run of this host still marked STARTING/STARTED is dead: :func:`recover` marks it failed and frees the
  concurrency (pool) slots it held. Runs launched by the UI or the daemon are left to Dagster's run monitoring,
  unless their concurrency claims belong to runs that already ended, which are freed too.
- Leftover temporary analyst copies of a killed publish are deleted (:func:`clean_publish_temp`).

``som doctor`` runs the same recovery for people and prints what it fixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from som_pipeline.config import Settings

POOL = "duckdb"
CLI_TAGS = ("som/launcher", "som/pid", "som/host")


class HomeBusy(RuntimeError):
    pass


def cli_run_tags() -> dict[str, str]:
    return {"som/launcher": "cli", "som/pid": str(os.getpid()), "som/host": socket.gethostname()}


@contextmanager
def home_lock(settings: Settings, command: str, timeout_s: float | None = None,
              notify=print) -> Iterator[None]:
    """Exclusive lock on ``$SOM_HOME/.som.lock`` for one command; waits, saying who holds it."""
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / ".som.lock"
    timeout_s = settings.lock_timeout_s if timeout_s is None else timeout_s
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(path)
                if time.monotonic() >= deadline:
                    raise HomeBusy(f"{settings.home} is busy: {holder}; waited {timeout_s:.0f}s "
                                   "(SOM_DUCKDB_LOCK_TIMEOUT). Try again when it has finished.") from None
                if not told:
                    notify(f"waiting for {holder} to finish (home {settings.home})")
                    told = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command,
                                  "since": datetime.now(UTC).isoformat(timespec="seconds")}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        h = {}
    if not h:
        return "another som command"
    return f"`som {h.get('command')}` (pid {h.get('pid')}, since {h.get('since')})"


@dataclass
class Recovery:
    failed_runs: list[str] = field(default_factory=list)
    freed_slots_for: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.failed_runs or self.freed_slots_for or self.removed_files)

    def lines(self) -> list[str]:
        out = [f"marked failed: run {r} (its process is gone)" for r in self.failed_runs]
        out += [f"freed pool slots held by run {r}" for r in self.freed_slots_for]
        out += [f"removed leftover {f}" for f in self.removed_files]
        return out


def recover(instance, settings: Settings) -> Recovery:
    """Call with the home lock held. Marks dead CLI runs failed, frees slots of runs that are not alive."""
    import dagster as dg

    rec = Recovery()
    live = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(live), tags={"som/launcher": "cli"})):
        if run.tags.get("som/host") != host:
            continue
        instance.report_run_failed(run, message=f"som: the process (pid {run.tags.get('som/pid')}) that ran this "
                                                "run is gone (killed or crashed); marked failed on the next start")
        rec.failed_runs.append(run.run_id)
    # any slot claimed by a run that is no longer live is stale (a kill -9, or a crash of the UI's run worker)
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        try:
            holders = storage.get_concurrency_run_ids()
        except Exception:  # noqa: BLE001 - older storages: nothing to free
            holders = set()
        for run_id in sorted(holders):
            run = instance.get_run_by_id(run_id)
            if run is None or run.status not in live:
                storage.free_concurrency_slots_for_run(run_id)
                rec.freed_slots_for.append(run_id)
    rec.removed_files += clean_publish_temp(settings)
    return rec


def clean_publish_temp(settings: Settings) -> list[str]:
    """Temporary analyst copies left by a publish that was killed."""
    from som_pipeline.warehouse import Warehouse

    wh = Warehouse(settings.warehouse_path, lock_timeout_s=settings.lock_timeout_s)
    return wh.clean_publish_temp(settings.analytics_path)
