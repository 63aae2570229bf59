"""Operating it: a killed run never blocks the next, one command per home, signals, leftovers, lock conflicts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from som_pipeline.cli import recover
from som_pipeline.config import Settings
from som_pipeline.homelock import HomeBusy, cli_run_tags, home_lock
from som_pipeline.warehouse import Warehouse, WarehouseLockTimeout

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance(settings: Settings):
    from som_pipeline.cli import init_home

    init_home(settings)
    with dg.DagsterInstance.get() as inst:
        yield inst


def _dead_run(instance, tags: dict[str, str]) -> str:
    from dagster._core.storage.dagster_run import DagsterRun

    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="full_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    storage = instance.event_log_storage
    storage.set_concurrency_slots("duckdb", 1)
    assert storage.claim_concurrency_slot("duckdb", run_id, "core_orders").is_claimed
    return run_id


def test_a_killed_cli_run_is_failed_and_its_slot_freed(instance, settings: Settings) -> None:
    dead = _dead_run(instance, {**cli_run_tags(), "som/pid": "999999"})
    (settings.warehouse_dir / f".{settings.analytics_path.name}.abc.tmp").write_bytes(b"half a copy")
    assert instance.event_log_storage.get_concurrency_info("duckdb").active_slot_count == 1

    rec = recover(instance, settings)
    assert rec.failed_runs == [dead]
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert dead in rec.freed_slots_for
    assert instance.event_log_storage.get_concurrency_info("duckdb").active_slot_count == 0
    assert rec.removed_files == [f".{settings.analytics_path.name}.abc.tmp"]
    assert not recover(instance, settings).anything  # idempotent: nothing left to fix


def test_a_run_of_another_launcher_that_is_alive_is_left_alone(instance, settings: Settings) -> None:
    alive = _dead_run(instance, {"dagster/from_ui": "true"})  # STARTED, not the CLI's: the daemon watches it
    rec = recover(instance, settings)
    assert rec.failed_runs == [] and rec.freed_slots_for == []
    assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED


def test_one_command_per_home_the_second_waits_then_says_who(settings: Settings) -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with home_lock(settings, "run"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    messages: list[str] = []
    with pytest.raises(HomeBusy, match=r"som run.*pid"):
        with home_lock(settings, "ingest", timeout_s=0.6, notify=messages.append):
            pass
    assert messages and "som run" in messages[0]
    release.set()
    t.join()
    with home_lock(settings, "ingest", timeout_s=1):  # free again
        pass


def test_sigterm_ends_a_cli_command_like_ctrl_c(settings: Settings) -> None:
    """`som doctor` waiting on a busy home is ended by SIGTERM with exit 130 and one line, no traceback."""
    env = {**os.environ, "SOM_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home)}
    with home_lock(settings, "run"):
        p = subprocess.Popen([sys.executable, "-m", "som_pipeline.cli", "doctor"], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_a_run_waiting_for_a_slot_a_live_ui_run_holds_times_out_then_sigterm_ends_the_wait(
        instance, settings: Settings) -> None:
    """Dagster waits for a pool slot forever and ignores signals while it waits: the CLI's watch ends the run
    after SOM_DUCKDB_LOCK_TIMEOUT naming the holder (exit 75), and ends it at once on SIGTERM (exit 130)."""
    ui = _dead_run(instance, {"dagster/from_ui": "true"})  # alive (STARTED), holds the only 'duckdb' slot
    env = {**os.environ, "SOM_HOME": str(settings.home), "DAGSTER_HOME": str(settings.dagster_home),
           "SOM_DUCKDB_LOCK_TIMEOUT": "2"}
    cmd = [sys.executable, "-m", "som_pipeline.cli", "ingest", "--quiet"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 75, p.stderr
    assert f"held by run {ui} of full_job (launched from the UI" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.Popen(cmd, cwd=ROOT, env={**env, "SOM_DUCKDB_LOCK_TIMEOUT": "600"}, stderr=subprocess.PIPE,
                         text=True)
    storage = instance.event_log_storage
    deadline = time.time() + 240  # the CLI's start (imports, run launch) is slow on a loaded 2-core machine
    while time.time() < deadline and not any(s.run_id != ui for s in storage.get_concurrency_info("duckdb").pending_steps):
        time.sleep(0.5)
    assert any(s.run_id != ui for s in storage.get_concurrency_info("duckdb").pending_steps), "the CLI run never queued"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted while waiting for the 'duckdb' slot" in err, err
    # both runs are failed and left nothing queued; the UI run keeps its slot
    info = storage.get_concurrency_info("duckdb")
    assert {s.run_id for s in info.claimed_slots} == {ui} and {s.run_id for s in info.pending_steps} == {ui}
    cli = instance.get_runs(filters=dg.RunsFilter(tags={"som/launcher": "cli"}))
    assert len(cli) == 2 and {r.status for r in cli} == {dg.DagsterRunStatus.FAILURE}


def test_warehouse_waits_for_a_foreign_reader_then_names_it(tmp_path: Path) -> None:
    """A read-only session of another process on the main file: our open retries, then fails clearly."""
    path = tmp_path / "som.duckdb"
    duckdb.connect(str(path)).close()
    code = f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); print('open', flush=True); time.sleep(30)"
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        wh = Warehouse(path, lock_timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(WarehouseLockTimeout, match=rf"process {reader.pid}"):
            with wh.connect():
                pass
        assert time.monotonic() - t0 >= 1.4  # it retried for the bounded time
    finally:
        reader.kill()
        reader.wait()
    with Warehouse(path, lock_timeout_s=5).connect() as con:  # the reader is gone: it opens
        assert con.execute("SELECT 1").fetchone() == (1,)


def test_a_source_that_is_down_does_not_stop_the_others(settings: Settings, wh: Warehouse) -> None:
    """Portal database unreachable: its capture reports it (failed source_available check, one clear message),
    and the CSV orders of the same run still reach core."""
    from assets import all_assets
    from resources import B2BPortalResource, WarehouseResource

    (settings.landing_dir("csv") / "orders.csv").write_bytes((ROOT / "docs" / "csv_template_example.csv").read_bytes())
    res = {"warehouse": WarehouseResource(som_home=str(settings.home), lock_timeout_s="60"),
           "b2b_portal": B2BPortalResource(url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2")}
    result = dg.materialize(all_assets, selection=["stage/csv", "stage/b2b_portal", "core/orders", "core/order_lines",
                                                   "core/order_versions", "core/order_line_versions",
                                                   "core/probable_duplicates"],
                            resources=res, raise_on_error=False)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    down = checks[("stage/b2b_portal", "source_available")]
    assert not down.passed and "unreachable" in str(down.metadata["error"].value)
    assert checks[("stage/csv", "source_available")].passed
    orders = wh.read("SELECT channel, count(*) AS n FROM core.orders GROUP BY 1")
    assert orders["channel"].to_list() == ["csv"] and orders["n"][0] > 0
