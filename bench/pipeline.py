"""Benchmark: the whole graph on TPC-H, against the DuckDB floor measured in the same run.

    .venv/bin/python bench/pipeline.py --sf 0.1 [--days 1] [--history | --nightly] [--home DIR] [--keep]

``--nightly``: the issue's "same day with 6.6 years of history before it". Loads ``--days 0`` and holds back the
last day's orders; ``som run`` on a fresh home with that day alone (the reference: "the day alone"); then, on a
second home, ``som run`` over the history (the initial load, reported), the last day dropped in, and ``som run``
again: the nightly run. Prints nightly / day alone.

1. a fresh home (``--home``, else a temporary directory) loaded by ``som tpch --sf N --days D`` (``--history``:
   ``--days 0``, every order at its real date, the last day evaluated after 6.6 years of history);
2. the **DuckDB floor**: read the same order-template Parquet, write orders + order lines into a fresh DuckDB file
   (line money rounded once per line, as the pipeline does), derive the order totals;
3. ``som run`` as a subprocess (the whole graph: ``full_job`` + ``daily_sales_job``), with the RSS of its process
   tree sampled every 0.1 s (``/proc``; also the kernel's ``ru_maxrss`` of the largest process);
4. per-step seconds and peak RSS from the Dagster event log (run step stats of each run the command made), each
   step's share of the run, and the ratio whole run / floor.

Not a timed test: the numbers depend on the machine (2 cores shared here); see the README's benchmark table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SOM_HOME"] = str(home)
    env["DAGSTER_HOME"] = str(home / "dagster_home")
    env["SOM_LANDING_SETTLE_S"] = "0"  # the loader's files are complete when it exits
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(d))
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str], env: dict[str, str], log: Path, max_rss: float = 0) -> dict:
    """Run ``cmd``; wall seconds, peak tree RSS, the (time, rss) samples and ru_maxrss of the largest process.
    ``max_rss`` (bytes, 0: none): the memory watchdog -- the process group is killed when its tree passes it."""
    samples: list[tuple[float, int]] = []
    killed: list[float] = []
    with open(log, "w") as out:
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,  # noqa: S603
                                start_new_session=True)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.time(), _tree_rss(proc.pid)))
                if max_rss and samples[-1][1] > max_rss and not killed:
                    killed.append(time.time() - t0)
                    os.killpg(proc.pid, 9)
                stop.wait(0.1)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        stop.set()
        th.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "seconds": wall, "peak_rss": max((r for _t, r in samples), default=0),
            "ru_maxrss": usage.ru_maxrss * 1024, "samples": samples, "t0": t0,
            "killed_after_s": killed[0] if killed else None}


def duckdb_floor(files: list[Path], db: Path) -> dict:
    """Read the order files, write orders + order lines into a fresh DuckDB file, derive the order totals."""
    import duckdb

    if db.exists():
        db.unlink()
    t0 = time.perf_counter()
    con = duckdb.connect(str(db), config={"memory_limit": os.environ.get("SOM_DUCKDB_MEMORY_LIMIT", "2GB")})
    con.execute("CREATE TABLE order_lines AS SELECT *, round(line_amount * discount_pct / 100, 2) AS discount_amount "
                "FROM (SELECT channel_order_ref, line_no, sku, quantity::BIGINT AS quantity, "
                "unit_price::DECIMAL(18, 4) AS unit_price, discount_pct::DECIMAL(9, 4) AS discount_pct, "
                "tax_rate::DECIMAL(9, 6) AS tax_rate, "
                "round(quantity::DECIMAL(38, 0) * unit_price::DECIMAL(38, 4), 2)::DECIMAL(18, 2) AS line_amount "
                "FROM read_parquet(?))", [[str(f) for f in files]])
    con.execute("ALTER TABLE order_lines ADD COLUMN tax_amount DECIMAL(18, 2)")
    con.execute("UPDATE order_lines SET tax_amount = round((line_amount - discount_amount) * tax_rate, 2)")
    con.execute("CREATE TABLE orders AS SELECT h.*, t.items_subtotal, t.discount_total, t.tax_total, "
                "t.items_subtotal - t.discount_total + t.tax_total AS order_total, t.line_count "
                "FROM (SELECT channel_order_ref, any_value(order_ts) AS order_ts, any_value(customer_ref) AS customer_ref, "
                "any_value(currency) AS currency, any_value(ship_to_name) AS ship_to_name, "
                "any_value(ship_to_line1) AS ship_to_line1, any_value(ship_to_city) AS ship_to_city, "
                "any_value(ship_to_postal_code) AS ship_to_postal_code, any_value(ship_to_country) AS ship_to_country "
                "FROM read_parquet(?) GROUP BY ALL) h JOIN (SELECT channel_order_ref, sum(line_amount) AS items_subtotal, "
                "sum(discount_amount) AS discount_total, sum(tax_amount) AS tax_total, count(*) AS line_count "
                "FROM order_lines GROUP BY ALL) t USING (channel_order_ref)", [[str(f) for f in files]])
    con.execute("CHECKPOINT")
    n = con.execute("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines)").fetchone()
    con.close()
    return {"seconds": time.perf_counter() - t0, "orders": n[0], "lines": n[1]}


def step_stats(home: Path, samples: list[tuple[float, int]]) -> list[dict]:
    """Per step of every run in the home's Dagster instance: seconds and the peak tree RSS while it ran."""
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore")
    inst = dg.DagsterInstance.get()
    out = []
    for rec in reversed(inst.get_run_records()):
        job = rec.dagster_run.job_name
        for st in inst.get_run_step_stats(rec.dagster_run.run_id):
            if st.start_time is None or st.end_time is None:
                continue
            peak = max((r for t, r in samples if st.start_time <= t <= st.end_time), default=0)
            out.append({"job": job, "step": st.step_key, "seconds": st.end_time - st.start_time, "peak_rss": peak,
                        "status": str(st.status.value if st.status else "")})
    return out


def gb(b: float) -> str:
    return f"{b / 1e9:.2f} GB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sf", type=float, default=0.1)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--history", action="store_true", help="--days 0: every order at its real date")
    ap.add_argument("--home", help="home to (re)create (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the home")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--max-rss-gb", type=float, default=0,
                    help="memory watchdog: kill `som run` when its process tree passes this many GB (0: none)")
    ap.add_argument("--nightly", action="store_true",
                    help="history first, then the last day in a second run (compared with that day alone)")
    a = ap.parse_args()
    if a.nightly:
        return nightly(a)
    days = 0 if a.history else a.days
    home = Path(a.home).resolve() if a.home else Path(tempfile.mkdtemp(prefix="som_bench_pipeline_"))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = _env(home)
    py = sys.executable
    print(f"bench/pipeline.py: TPC-H SF {a.sf}, --days {days}, home {home}")

    t0 = time.perf_counter()
    load = subprocess.run([py, "-m", "som_pipeline.cli", "tpch", "--sf", str(a.sf), "--days", str(days)],  # noqa: S603
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if load.returncode:
        print(load.stdout, load.stderr, file=sys.stderr)
        return 1
    load_s = time.perf_counter() - t0
    manifest = json.loads((home / "tpch_manifest.json").read_text())
    files = [home / "landing" / "csv" / f for f in manifest["order_files"]]
    print(f"  som tpch: {load_s:.1f}s ({manifest['counts']['orders']:,} orders, {manifest['counts']['lineitems']:,} "
          f"lines, {len(files)} file(s); generate {manifest['seconds']['generate']}s)")

    floor = duckdb_floor(files, home / "tmp" / "floor.duckdb")
    print(f"  DuckDB floor: {floor['seconds']:.2f}s ({floor['orders']:,} orders, {floor['lines']:,} lines)")

    run = run_measured([py, "-m", "som_pipeline.cli", "run"], env, home / "bench_som_run.log", a.max_rss_gb * 1e9)
    if run["killed_after_s"] is not None:
        print(f"  memory watchdog: `som run` passed {a.max_rss_gb} GB after {run['killed_after_s']:.0f}s and was killed")
    text = (home / "bench_som_run.log").read_text()
    print(f"  som run: {run['seconds']:.1f}s, exit {run['rc']}, peak RSS {gb(run['peak_rss'])} (process tree), "
          f"largest process {gb(run['ru_maxrss'])}")
    for line in text.splitlines():
        if "succeeded in" in line or line.startswith("som:"):
            print("   ", line.strip())
    steps = step_stats(home, run["samples"])
    total = sum(s["seconds"] for s in steps) or 1.0
    print(f"\n  {'job':<16} {'step':<44} {'seconds':>8} {'share':>6} {'peak RSS':>10}")
    for s in sorted(steps, key=lambda s: -s["seconds"]):
        print(f"  {s['job']:<16} {s['step'][:44]:<44} {s['seconds']:>8.1f} {s['seconds'] / total:>6.1%} "
              f"{gb(s['peak_rss']):>10}")
    print(f"  {'':<16} {'sum of steps (rest: start-up, publish, summary)':<44} {total:>8.1f}")
    ratio = run["seconds"] / floor["seconds"] if floor["seconds"] else float("inf")
    print(f"\n  whole run / floor: {run['seconds']:.1f}s / {floor['seconds']:.2f}s = {ratio:.0f}x")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "sf": a.sf, "days": days, "load_s": load_s, "floor": floor, "ratio": ratio,
            "run": {k: v for k, v in run.items() if k != "samples"}, "steps": steps,
            "self_ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, indent=2))
    if not a.keep and not a.home:
        shutil.rmtree(home, ignore_errors=True)
    return run["rc"]


def _hold_back_last_day(home: Path, to: Path) -> int:
    """Move the orders of the last order date out of the landing files into ``to`` (one Parquet file)."""
    import polars as pl

    files = sorted((home / "landing" / "csv").glob("*.parquet"))
    day = pl.col("order_ts").dt.date()
    last = pl.scan_parquet(files).select(day.max()).collect().item()
    pl.scan_parquet(files).filter(day == last).sink_parquet(to)
    for f in files:
        df = pl.read_parquet(f)
        if df.filter(day == last).height:
            df.filter(day != last).write_parquet(f)
    return pl.read_parquet(to)["channel_order_ref"].n_unique()


def _load(home: Path, sf: float, days: int) -> dict[str, str]:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = _env(home)
    subprocess.run([sys.executable, "-m", "som_pipeline.cli", "tpch", "--sf", str(sf), "--days", str(days)],  # noqa: S603
                   env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return env


def _report(label: str, home: Path, run: dict) -> None:
    print(f"  {label}: {run['seconds']:.1f}s, exit {run['rc']}, peak RSS {gb(run['peak_rss'])}")
    steps = [s for s in step_stats(home, run["samples"]) if s["peak_rss"]]  # the steps of this command's runs
    for s in sorted(steps, key=lambda s: -s["seconds"])[:8]:
        print(f"      {s['job']:<16} {s['step'][:40]:<40} {s['seconds']:>8.1f}s {gb(s['peak_rss']):>10}")


def nightly(a: argparse.Namespace) -> int:
    base = Path(a.home).resolve() if a.home else Path(tempfile.mkdtemp(prefix="som_bench_nightly_"))
    py = sys.executable
    print(f"bench/pipeline.py --nightly: TPC-H SF {a.sf}, homes under {base}")
    # the day alone: a fresh home whose landing holds only the last day's orders
    alone = base / "alone"
    env = _load(alone, a.sf, 0)
    day_file = base / "last_day.parquet"
    n = _hold_back_last_day(alone, day_file)
    for f in (alone / "landing" / "csv").glob("*.parquet"):
        f.unlink()
    shutil.copy(day_file, alone / "landing" / "csv" / "last_day.parquet")
    r_alone = run_measured([py, "-m", "som_pipeline.cli", "run"], env, alone / "bench_som_run.log")
    _report(f"the day alone ({n:,} orders)", alone, r_alone)
    # history first, then the same day
    hist = base / "history"
    env = _load(hist, a.sf, 0)
    _hold_back_last_day(hist, base / "last_day_2.parquet")
    r_hist = run_measured([py, "-m", "som_pipeline.cli", "run"], env, hist / "bench_history_run.log")
    _report("initial load of the history", hist, r_hist)
    shutil.copy(day_file, hist / "landing" / "csv" / "last_day.parquet")
    r_night = run_measured([py, "-m", "som_pipeline.cli", "run"], env, hist / "bench_som_run.log")
    print(f"  nightly run, the same day after {r_hist['seconds']:.0f}s of history load: {r_night['seconds']:.1f}s, "
          f"exit {r_night['rc']}, peak RSS {gb(r_night['peak_rss'])}")
    steps = [s for s in step_stats(hist, r_night["samples"]) if s["peak_rss"]]
    for s in sorted(steps, key=lambda s: -s["seconds"])[:10]:
        print(f"      {s['job']:<16} {s['step'][:40]:<40} {s['seconds']:>8.1f}s {gb(s['peak_rss']):>10}")
    print(f"\n  nightly / day alone: {r_night['seconds']:.1f}s / {r_alone['seconds']:.1f}s = "
          f"{r_night['seconds'] / r_alone['seconds']:.2f}x (peak RSS {gb(r_night['peak_rss'])} vs "
          f"{gb(r_alone['peak_rss'])})")
    if a.json:
        Path(a.json).write_text(json.dumps({"sf": a.sf, "orders_on_the_day": n, **{
            k: {x: y for x, y in r.items() if x != "samples"} for k, r in
            (("alone", r_alone), ("history", r_hist), ("nightly", r_night))}}, indent=2))
    if not a.keep and not a.home:
        shutil.rmtree(base, ignore_errors=True)
    return max(r_alone["rc"], r_hist["rc"], r_night["rc"])


if __name__ == "__main__":
    sys.exit(main())
