"""One command per home at a time, and the bookkeeping the CLI's crash recovery needs (no Dagster here: the
recovery itself, which touches the Dagster instance, is in the entry point ``cli.py``). What it guarantees:

- **One home, one command.** Every ``som`` command that runs Dagster or writes the warehouse holds an exclusive
  lock on ``$SOM_HOME/.som.lock`` (:func:`home_lock`). A second command on the same home waits (up to
  ``SOM_DUCKDB_LOCK_TIMEOUT`` seconds) and says which process holds it; the Dagster instance is created and
  migrated under that lock, so two first runs never race on the instance's schema.
- **A killed run never blocks the next one.** Runs started by the CLI carry the tags ``som/launcher=cli``,
  ``som/pid`` and ``som/host``. Holding the home lock proves that no other CLI command of this home is alive, so
  every CLI run of this host still marked STARTING/STARTED is dead: ``cli.recover`` marks it failed and frees the
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
from datetime import UTC, datetime
from pathlib import Path

from som_pipeline.config import Settings


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


def clean_publish_temp(settings: Settings) -> list[str]:
    """Temporary analyst copies left by a publish that was killed."""
    from som_pipeline.warehouse import Warehouse

    wh = Warehouse(settings.warehouse_path, lock_timeout_s=settings.lock_timeout_s)
    return wh.clean_publish_temp(settings.analytics_path)
