"""``som`` — the command line (an entry point: it may meet Dagster).

    som demo [--reset] [--scale X]   generate the deterministic demo into $SOM_HOME
    som settle [--days 35]           demo: a month later, the bank pays most open invoices, the channels pay out
    som disputes                     demo: chargebacks of closed orders (Shopify, a processor) and a late return
    som tpch --sf N [--days D]       load TPC-H (tpchgen-cli, offline) into $SOM_HOME as reference data + CSV orders
    som ingest                       process the landing zone now (a real Dagster run of ingest_job)
    som run [--full-rebuild]         materialize the whole graph now (real Dagster runs), publish, summarise;
                                     incremental: only new observations and the days they touch are rebuilt
    som summary                      rows per table, quarantine by reason, where things are
    som query "SQL"                  run a read-only query on the analyst copy
    som publish                      refresh the analyst copy now
    som docs [--check]               (re)generate docs/data_dictionary.md from the Pandera models
    som init-home                    write $DAGSTER_HOME/dagster.yaml (pools, telemetry off)
    som doctor                       recover after a crash: fail dead runs, free their pool slots, clean up
    som rebuild-anomaly-baselines    rebuild core.anomaly_baselines from every order (validation keeps it per run)

Commands that run Dagster or write the warehouse hold ``$SOM_HOME/.som.lock`` (one at a time per home; a second
one waits and says who holds it) and first recover what a killed command left (see som_pipeline/homelock.py and ``recover`` below).
SIGTERM is handled like Ctrl-C: the run is marked failed and its slots released.

Every command honours ``SOM_HOME`` (default ``./data``). Errors are printed as one clear line (exit 1),
never as a traceback (``SOM_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from som_pipeline.config import Settings

DAGSTER_YAML = """\
# Written by `som init-home`. Dagster instance for som_pipeline.
telemetry:
  enabled: false
concurrency:
  pools:
    # every asset touching the DuckDB warehouse is in pool "duckdb": one step at a time, across runs
    default_limit: 1
# with the daemon (`make dev`): fail runs whose worker died, free the pool slots of runs that ended abnormally
# (the CLI does the same itself before each command: `som doctor`)
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
"""


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env(getattr(args, "home", None))
    os.environ["SOM_HOME"] = str(s.home)  # subprocesses (multiprocess executor) see the same home
    os.environ.setdefault("DAGSTER_HOME", str(s.dagster_home))
    return s


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
    """Call with the home lock held (``homelock.home_lock``): marks dead CLI runs failed, frees the pool slots of
    runs that are not alive, removes leftover temporary analyst copies (see som_pipeline/homelock.py)."""
    import dagster as dg

    from som_pipeline.homelock import clean_publish_temp

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


@contextmanager
def operating(settings: Settings, command: str) -> Iterator[Recovery]:
    """Hold the home lock, make sure the Dagster instance exists, and recover what a killed command left
    (told on stderr; yields what was fixed)."""
    from som_pipeline.homelock import HomeBusy, home_lock

    try:
        with home_lock(settings, command, notify=lambda m: print(f"som: {m}", file=sys.stderr)):
            init_home(settings)
            import dagster as dg

            rec = recover(dg.DagsterInstance.get(), settings)
            for line in rec.lines():
                print(f"som: recovered: {line}", file=sys.stderr)
            yield rec
    except HomeBusy as e:
        raise UserError(str(e)) from None


def init_home(settings: Settings) -> Path:
    dh = Path(os.environ.get("DAGSTER_HOME", settings.dagster_home))
    dh.mkdir(parents=True, exist_ok=True)
    cfg = dh / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    settings.ensure_dirs()
    return dh


# ------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    s = _settings(args)
    if args.reset and s.home.exists():
        shutil.rmtree(s.home)
    s.ensure_dirs()
    from som_pipeline.demo import generate_demo

    t0 = time.perf_counter()
    kw = {"seed": args.seed, "days": args.days, "scale": args.scale}
    if args.end_date:
        kw["end_date"] = date.fromisoformat(args.end_date)
    manifest = generate_demo(s.home, **kw)
    print(f"demo generated in {time.perf_counter() - t0:.1f}s under {s.home}")
    for k in ("orders_per_channel", "files_per_channel"):
        if k in manifest:
            print(f"  {k}: {manifest[k]}")
    return 0


def cmd_floor(args: argparse.Namespace) -> int:
    """The demo's warehouse floor between two runs: scans for the open pick tasks, receipts, a cycle count."""
    from som_pipeline.demo.floor import simulate_floor
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    start = business_now(s)
    done = simulate_floor(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s), start, hours=args.hours)
    later = start + timedelta(hours=args.hours)
    (s.home / "clock").write_text(later.isoformat(), encoding="utf-8")  # the next run comes after the floor's work
    print(f"floor worked from {start:%Y-%m-%d %H:%M} UTC: {done}; the demo's clock is now {later:%H:%M} UTC "
          f"($SOM_HOME/clock)")
    return 0


def cmd_carriers(args: argparse.Namespace) -> int:
    """The demo's carriers while time passes: their tracking events for our shipments, the clock moved on."""
    from som_pipeline.demo.carrier_feed import simulate_carrier_feed
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    start = business_now(s)
    done = simulate_carrier_feed(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s), start,
                                 args.hours)
    later = start + timedelta(hours=args.hours)
    (s.home / "clock").write_text(later.isoformat(), encoding="utf-8")
    print(f"carriers reported from {start:%Y-%m-%d %H:%M} to {later:%Y-%m-%d %H:%M} UTC: {done} ($SOM_HOME/clock)")
    return 0


def cmd_bank(args: argparse.Namespace) -> int:
    """The demo's bank: customers' payments for the open invoices (MT940, BAI2, camt.053) and a Shopify payout."""
    from som_pipeline.demo.bank import simulate_bank
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    if args.score:
        from som_pipeline.demo.bank import score_matching

        sc = score_matching(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s))
        print(f"matching vs the demo's truth: precision {sc['precision']:.3f}, recall {sc['recall']:.3f} "
              f"({sc['true_positives']} of {sc['truth']} pairs); recall by scenario {sc['recall_by_scenario']}")
        return 0
    now = business_now(s)
    done = simulate_bank(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s), now.date())
    later = now + timedelta(hours=args.hours)
    (s.home / "clock").write_text(later.isoformat(), encoding="utf-8")
    print(f"bank statements of {now:%Y-%m-%d}: {done['payments']} customer payments in {', '.join(done['files'])} "
          f"(landing/bank, landing/payouts); the demo's clock is now {later:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_returns(args: argparse.Namespace) -> int:
    """The demo's returns: requests for delivered lines (a few that must be refused), a Shopify refund, receipts."""
    from som_pipeline.demo.returns import simulate_returns
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    now = business_now(s)
    done = simulate_returns(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s), now)
    print(f"returns of {now:%Y-%m-%d}: {done} (landing/returns, landing/return_receipts)")
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    """The demo a month later: the clock moves on; the carriers deliver what was in transit, the bank pays most
    open invoices, the channels pay out."""
    from som_pipeline.demo.bank import simulate_settlement
    from som_pipeline.demo.carrier_feed import simulate_carrier_feed
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    wh = Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s)
    now = business_now(s)
    later = now + timedelta(days=args.days)
    simulate_carrier_feed(s.home, wh, now, args.days * 24)
    done = simulate_settlement(s.home, wh, later.date())
    (s.home / "clock").write_text(later.isoformat(), encoding="utf-8")
    print(f"{args.days:g} days later ({later:%Y-%m-%d %H:%M} UTC, $SOM_HOME/clock): {done['payments']} customer "
          f"payments and the channels' payouts in {', '.join(done['files'])} (landing/bank, landing/payouts)")
    return 0


def cmd_disputes(args: argparse.Namespace) -> int:
    """The demo's chargebacks of closed orders (Shopify disputes, a processor's report) and a late return."""
    from som_pipeline.demo.disputes import simulate_disputes
    from som_pipeline.services.validation import business_now
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    now = business_now(s) + timedelta(hours=args.hours)
    done = simulate_disputes(s.home, Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s), now)
    (s.home / "clock").write_text(now.isoformat(), encoding="utf-8")
    print(f"disputes of {now:%Y-%m-%d}: {done} (landing/chargebacks, landing/returns)")
    return 0


class SlotWait(threading.Thread):
    """Ends a CLI run plainly when its steps wait for a slot of ``pool`` too long, or are interrupted waiting.

    Dagster's in-process executor waits for a pool slot without a time limit and, while it waits, only
    records SIGINT/SIGTERM (it acts on them between steps, and no step comes). Slots of dead runs are freed on
    start (:func:`recover`), so a slot that stays taken belongs to a live run: typically one launched from the
    UI (``make dev``) or a long backfill. This watch polls the instance; when a step of this process's run
    has waited longer than ``timeout_s`` (``SOM_DUCKDB_LOCK_TIMEOUT``), or a signal arrived while the run
    holds no slot (so none of its steps is writing), it marks the run failed, frees what the run queued,
    prints one line naming the holder and ends the process (exit 75 = try again later; 130 after a signal).
    Ending there is no worse than the ``kill -9`` every stage is built to survive (bench/bench_reliability.py),
    and here no step of the run is executing.
    """

    def __init__(self, instance, pool: str, timeout_s: float, poll_s: float = 1.0) -> None:
        super().__init__(name="som-slot-wait", daemon=True)
        self.instance, self.pool, self.timeout_s, self.poll_s = instance, pool, timeout_s, poll_s
        self.stopped = threading.Event()

    def _mine(self) -> list:
        import dagster as dg

        return list(self.instance.get_runs(filters=dg.RunsFilter(tags={"som/pid": str(os.getpid())}, statuses=[
            dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])))

    def _holder(self, run_id: str) -> str:
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return f"run {run_id}"
        how = (f"`som` pid {run.tags.get('som/pid')}" if run.tags.get("som/launcher") == "cli"
               else "launched from the UI or a schedule")
        return f"run {run_id} of {run.job_name} ({how}, {run.status.value})"

    def verdict(self, info, mine: set[str], interrupted: bool, now: float) -> tuple[int, str] | None:
        """``(exit code, message)`` when the run must end, else None (pure: the unit tests call it)."""
        waiting = [p for p in info.pending_steps if p.run_id in mine and p.assigned_timestamp is None]
        if not waiting or any(c.run_id in mine for c in info.claimed_slots):
            return None
        holders = "; ".join(self._holder(h) for h in sorted({c.run_id for c in info.claimed_slots} - mine))
        holders = holders or "another run"
        if interrupted:
            return 130, (f"interrupted while waiting for the '{self.pool}' slot (held by {holders}); the run "
                         "is marked failed")
        p = min(waiting, key=lambda p: p.enqueued_timestamp)
        waited = now - p.enqueued_timestamp.timestamp()
        if waited <= self.timeout_s:
            return None
        return 75, (f"step {p.step_key} waited {waited:.0f}s (SOM_DUCKDB_LOCK_TIMEOUT) for the '{self.pool}' "
                    f"slot, held by {holders}; this run is stopped and marked failed. Let that run finish (or "
                    "cancel it in the UI) and run again; `som doctor` lists runs in progress")

    def run(self) -> None:  # noqa: D102 - thread body
        from dagster._utils.interrupts import check_captured_interrupt  # what Dagster recorded of a signal

        storage = self.instance.event_log_storage
        while not self.stopped.wait(self.poll_s):
            try:
                runs = self._mine()
                out = self.verdict(storage.get_concurrency_info(self.pool), {r.run_id for r in runs},
                                   check_captured_interrupt(), time.time())
            except Exception:  # noqa: BLE001 - a storage hiccup: look again
                continue
            if out is None or self.stopped.is_set():
                continue
            code, message = out
            for r in runs:
                self.instance.report_run_failed(r, message=f"som: {message}")
                storage.free_concurrency_slots_for_run(r.run_id)
            print(f"som: {message}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(code)


def cmd_tpch(args: argparse.Namespace) -> int:
    s = _settings(args)
    from som_pipeline.demo.tpch import TpchError, load_tpch

    kw = {"sf": args.sf, "days": args.days}
    if args.end_date:
        kw["end_date"] = date.fromisoformat(args.end_date)
    from som_pipeline.homelock import HomeBusy, home_lock

    s.ensure_dirs()
    try:  # the home lock: never rewrite reference/landing files under a running command
        with home_lock(s, "tpch", notify=lambda m: print(f"som: {m}", file=sys.stderr)):
            t0 = time.perf_counter()
            out = load_tpch(s.home, settings=s, **kw)
    except (TpchError, HomeBusy) as e:
        raise UserError(str(e)) from None
    print(f"TPC-H SF {args.sf} loaded in {time.perf_counter() - t0:.1f}s under {s.home} "
          f"({out.counts['orders']:,} orders, {out.counts['lineitems']:,} lines in {len(out.order_files)} file(s))")
    return 0




def _execute(job_name: str, tags: dict[str, str] | None = None, multiprocess: bool = False,
             full_rebuild: bool = False) -> list[str]:
    """A real Dagster run of ``job_name`` recorded in the instance at $DAGSTER_HOME.

    In-process by default (one process: no per-step interpreter start-up, ~5x faster on small runs);
    ``multiprocess=True`` uses the multiprocess executor, as runs launched from the UI do.
    Returns one line per failed ERROR-severity check (e.g. a source that could not be read): the run went on
    with everything else, and the command reports them and exits non-zero at the end.
    """
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    instance = dg.DagsterInstance.get()
    recon = dg.build_reconstructable_job("som_pipeline.definitions", "get_job", reconstructable_args=(job_name,))
    execution = {"multiprocess": {"max_concurrent": 2}} if multiprocess else {"in_process": {}}
    t0 = time.perf_counter()
    # the console shows warnings and errors only; every event is recorded in the instance (`make dev`)
    run_config = {"execution": {"config": execution}, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if full_rebuild:
        run_config["ops"] = {"core_orders": {"config": {"full_rebuild": True}}}
    from som_pipeline.homelock import cli_run_tags

    watch = SlotWait(instance, "duckdb", Settings.from_env().lock_timeout_s)
    watch.start()
    try:
        result_cm = dg.execute_job(recon, instance=instance, tags={**(tags or {}), **cli_run_tags()},
                                   run_config=run_config)
    finally:
        watch.stopped.set()
    with result_cm as result:
        took = time.perf_counter() - t0
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            raise UserError(
                f"Dagster run {result.run_id} of {job_name} failed at {', '.join(failed) or 'a step'}; "
                f"see `make dev` (Runs page) or $DAGSTER_HOME/storage for the logs"
            )
        print(f"  {job_name}: run {result.run_id[:8]} succeeded in {took:.1f}s")
        return _failed_checks(result)


def _failed_checks(result) -> list[str]:
    import dagster as dg

    out = []
    for ev in result.all_events:
        e = ev.asset_check_evaluation_data if ev.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION else None
        if e is not None and not e.passed and e.severity == dg.AssetCheckSeverity.ERROR:
            detail = next((str(v.value) for k, v in e.metadata.items() if k in ("error", "rule")), "")
            out.append(f"{e.asset_key.to_user_string()}: check {e.check_name} failed{': ' + detail if detail else ''}")
    return out


def _report(failures: list[str]) -> None:
    for line in failures:
        print(f"som: {line}", file=sys.stderr)
    if failures:
        raise UserError(f"{len(failures)} check(s) failed (the rest of the run completed); see the lines above")


def _publish(s: Settings) -> Path:
    from som_pipeline.warehouse import Warehouse

    return Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s).publish_analytics_copy(s.analytics_path)


def cmd_ingest(args: argparse.Namespace) -> int:
    s = _settings(args)
    with operating(s, "ingest"):
        print(f"ingesting {s.landing} (Dagster instance {os.environ['DAGSTER_HOME']})")
        failures = _execute("ingest_job", multiprocess=args.multiprocess)
        _publish(s)
    if not args.quiet:
        cmd_summary(args)
    _report(failures)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    s = _settings(args)
    with operating(s, "run"):
        print(f"materializing the whole graph (Dagster instance {os.environ['DAGSTER_HOME']})")
        if args.full_rebuild:
            _rebuild_state(s)
        failures = _execute("full_job", multiprocess=args.multiprocess, full_rebuild=args.full_rebuild)
        rng = _partition_range(s)
        if rng:
            failures += _execute("daily_sales_job", multiprocess=args.multiprocess, tags={
                "dagster/asset_partition_range_start": rng[0], "dagster/asset_partition_range_end": rng[1]})
        _publish(s)
    cmd_summary(args)
    _report(failures)
    return 0


def _partition_range(s: Settings) -> tuple[str, str] | None:
    """The range of daily partitions to refresh: the order dates core_orders marked (within the window)."""
    from assets.orders import daily_partitions
    from som_pipeline.services.orders import pending_days
    from som_pipeline.warehouse import Warehouse

    keys = daily_partitions.get_partition_keys()
    if not keys:
        return None
    lo, hi = date.fromisoformat(keys[0]), date.fromisoformat(keys[-1])
    days = [d for d in pending_days(Warehouse(s.warehouse_path)) if lo <= d <= hi]
    return (days[0].isoformat(), days[-1].isoformat()) if days else None


def cmd_summary(args: argparse.Namespace) -> int:
    s = _settings(args)
    from som_pipeline.summary import render_summary

    print(render_summary(s))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    s = _settings(args)
    import duckdb

    from som_pipeline.reporting import text_table

    if not s.analytics_path.exists():
        raise UserError(f"no analyst copy at {s.analytics_path}: run `som run` (or `som publish`) first")
    con = duckdb.connect(str(s.analytics_path), read_only=True)
    try:
        df = con.execute(args.sql).pl()
    except duckdb.Error as e:
        raise UserError(f"query failed: {e}") from e
    finally:
        con.close()
    print(text_table(df, args.limit))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    s = _settings(args)
    print(f"published {_publish(s)}")
    return 0


def _rebuild_state(s: Settings) -> None:
    """``som run --full-rebuild``: recompute every state table from the core tables (anomaly baselines, demand
    history) and forget the validation/allocation input digests, so that the run redoes every stage; the
    core orders are rebuilt from stage by the run itself (``core_orders`` with ``full_rebuild``). Each state
    table has a test that the rebuild equals the per-run updates."""
    from som_pipeline.services.anomaly import rebuild_anomaly_state
    from som_pipeline.services.planning import update_demand_history
    from som_pipeline.services.validation import config_for
    from som_pipeline.warehouse import Warehouse

    wh = Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s, memory_limit=s.duckdb_memory_limit)
    with wh.transaction() as con:
        n = rebuild_anomaly_state(con, config_for(s), recorded_only=True)
        con.execute("DELETE FROM ops.watermarks WHERE consumer IN ('validation', 'allocation')")
    with wh.connect() as con:
        update_demand_history(con, rebuild=True)  # its own transaction
    print(f"  full rebuild: core.anomaly_baselines {n:,} rows, state.daily_demand recomputed (forecast fits "
          "cleared); every stage reruns")


def cmd_rebuild_anomaly_baselines(args: argparse.Namespace) -> int:
    """Recompute the anomaly baselines' state from every recorded order (same table as the per-run updates)."""
    from som_pipeline.services.anomaly import rebuild_anomaly_state
    from som_pipeline.services.validation import config_for
    from som_pipeline.warehouse import Warehouse

    s = _settings(args)
    with operating(s, "rebuild-anomaly-baselines"):
        wh = Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s, memory_limit=s.duckdb_memory_limit)
        with wh.transaction() as con:
            n = rebuild_anomaly_state(con, config_for(s), recorded_only=True)
    print(f"core.anomaly_baselines rebuilt: {n:,} rows")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Recover after a crash and say what was fixed; list runs still in progress."""
    s = _settings(args)
    with operating(s, "doctor") as rec:  # the recovery itself (its lines are on stderr)
        import dagster as dg

        live = dg.DagsterInstance.get().get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]))
        for r in live:
            print(f"in progress (not started by this CLI): run {r.run_id} of {r.job_name}")
        if not rec.anything and not live:
            print("nothing to fix: no dead runs, no stale pool slots, no leftover files")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from som_pipeline.datadict import render_data_dictionary

    path = Path(args.path)
    text = render_data_dictionary()
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            raise UserError(f"{path} is stale: run `som docs` (or `make docs`)")
        print(f"{path} is current")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_init_home(args: argparse.Namespace) -> int:
    s = _settings(args)
    with operating(s, "init-home"):
        print(f"Dagster home: {os.environ['DAGSTER_HOME']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="som", description="Sales order management pipeline")
    p.add_argument("--home", help="override SOM_HOME")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="generate the deterministic demo into SOM_HOME")
    d.add_argument("--reset", action="store_true", help="delete SOM_HOME first")
    d.add_argument("--seed", type=int, default=20261127)
    d.add_argument("--days", type=int, default=90)
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--end-date", help="last order day (YYYY-MM-DD)")
    d.set_defaults(func=cmd_demo)

    fl = sub.add_parser("floor", help="demo: the warehouse floor works the released waves (scans, receipts, count)")
    fl.add_argument("--hours", type=float, default=3.0,
                    help="how long the floor works; the demo's clock moves on by this much (default 3)")
    fl.set_defaults(func=cmd_floor)
    ca = sub.add_parser("carriers", help="demo: the carriers' tracking events for our shipments as time passes")
    ca.add_argument("--hours", type=float, default=72.0, help="how long they report; the clock moves on (default 72)")
    ca.set_defaults(func=cmd_carriers)
    bk = sub.add_parser("bank", help="demo: the bank's statements of what customers paid, and a channel payout")
    bk.add_argument("--hours", type=float, default=24.0, help="the clock moves on by this much (default 24)")
    bk.add_argument("--score", action="store_true",
                    help="instead: precision/recall of the last run's matching against the demo's truth")
    bk.set_defaults(func=cmd_bank)
    rt = sub.add_parser("returns", help="demo: customers' return requests, a Shopify refund, what came back")
    rt.set_defaults(func=cmd_returns)
    st = sub.add_parser("settle", help="demo: a month later, the bank pays most open invoices, the channels pay out")
    st.add_argument("--days", type=float, default=35.0, help="the clock moves on by this many days (default 35)")
    st.set_defaults(func=cmd_settle)
    dp = sub.add_parser("disputes", help="demo: chargebacks of closed orders and a late return")
    dp.add_argument("--hours", type=float, default=24.0, help="the clock moves on by this much first (default 24)")
    dp.set_defaults(func=cmd_disputes)
    t = sub.add_parser("tpch", help="load TPC-H data (generated offline by tpchgen-cli) into SOM_HOME")
    t.add_argument("--sf", type=float, default=0.01, help="TPC-H scale factor (fractions allowed)")
    t.add_argument("--days", type=int, default=1,
                   help="1: every order on one day (default); 0: real order dates; D: the last D real dates")
    t.add_argument("--end-date", help="the (last) order day, YYYY-MM-DD (default 2026-11-25)")
    t.set_defaults(func=cmd_tpch)

    i = sub.add_parser("ingest", help="process the landing zone now (Dagster run)")
    i.add_argument("--quiet", action="store_true")
    i.add_argument("--multiprocess", action="store_true", help="use the multiprocess executor")
    i.set_defaults(func=cmd_ingest)
    r = sub.add_parser("run", help="materialize the whole graph now (Dagster runs)")
    r.add_argument("--multiprocess", action="store_true", help="use the multiprocess executor")
    r.add_argument("--full-rebuild", action="store_true",
                   help="rebuild the canonical orders from every staged observation and every state table from the "
                        "core tables, and rerun every stage (same tables as the incremental runs)")
    r.set_defaults(func=cmd_run)
    sub.add_parser("summary", help="print the warehouse summary").set_defaults(func=cmd_summary)
    q = sub.add_parser("query", help="read-only SQL on the analyst copy")
    q.add_argument("sql")
    q.add_argument("--limit", type=int, default=50)
    q.set_defaults(func=cmd_query)
    sub.add_parser("publish", help="refresh the analyst copy").set_defaults(func=cmd_publish)
    dd = sub.add_parser("docs", help="generate docs/data_dictionary.md")
    dd.add_argument("--check", action="store_true", help="fail if the file is stale")
    dd.add_argument("--path", default="docs/data_dictionary.md")
    dd.set_defaults(func=cmd_docs)
    sub.add_parser("init-home", help="write $DAGSTER_HOME/dagster.yaml").set_defaults(func=cmd_init_home)
    sub.add_parser("doctor", help="recover after a crash (dead runs, stale pool slots, leftovers)").set_defaults(
        func=cmd_doctor)
    sub.add_parser("rebuild-anomaly-baselines", help="rebuild core.anomaly_baselines from every order").set_defaults(
        func=cmd_rebuild_anomaly_baselines)
    return p


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: Dagster marks the run failed, slots are released
    try:
        return args.func(args)
    except UserError as e:
        print(f"som: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("som: interrupted; the run is marked failed (`som doctor` shows what is left)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one clear line for the user; SOM_DEBUG=1 for the traceback
        if os.environ.get("SOM_DEBUG"):
            raise
        print(f"som: {type(e).__name__}: {e} (set SOM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
