"""What the fulfilment and tracking benchmarks share: each phase in a child process of its own (its peak RSS is its
own), the block timer with a sampled RSS peak (and an optional cProfile), and a fresh home's settings.

Not a benchmark itself (``make bench`` runs ``bench/bench_*.py``)."""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

MARK = "@@BENCH@@ "


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextmanager
def measured(out: dict, key: str, profile: bool = False):
    """Times the block into ``out[key]``: seconds, RSS before (MB), sampled peak RSS (MB)."""
    peak = [_rss_mb()]
    base = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    try:
        yield
    finally:
        if prof:
            prof.disable()
        dt = time.perf_counter() - t0
        stop.set()
        th.join()
        peak[0] = max(peak[0], _rss_mb())
        out[key] = {"s": dt, "base_mb": base, "peak_sampled_mb": peak[0]}
        if prof:
            for order in ("tottime", "cumulative"):
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(15)
                print(f"\n===== cProfile {key}: top 15 by {order} =====\n{buf.getvalue()}", file=sys.stderr)


def emit(d: dict) -> None:
    print(MARK + json.dumps(d, default=str), flush=True)


def settings_for(home: Path):
    from som_pipeline.config import Settings

    s = Settings(home=home, b2b_db_url=f"sqlite:///{home / 'b2b.sqlite'}", landing_settle_s=0.0)
    s.ensure_dirs()
    return s


def warehouse_for(settings):
    from som_pipeline.warehouse import Warehouse

    return Warehouse(settings.warehouse_path, lock_timeout_s=60, memory_limit=settings.duckdb_memory_limit)


def child(script: str, phase: str, home: Path, args: list[str]) -> dict:
    """Run ``script --_phase phase`` and return the JSON it emitted (its other output is printed)."""
    cmd = [sys.executable, str(Path(script).resolve()), "--_phase", phase, "--_home", str(home), *args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    out = [ln for ln in p.stdout.splitlines() if ln.startswith(MARK)]
    rest = [ln for ln in p.stdout.splitlines() if not ln.startswith(MARK)]
    if rest:
        print("\n".join(rest))
    if p.returncode or not out:
        sys.exit(f"phase {phase} failed (exit {p.returncode})")
    return json.loads(out[-1][len(MARK):])


@contextmanager
def step_timers(steps, out: dict):
    """Wrap ``steps`` (module, function name) to time them into ``out`` (the wrappers only count; restored
    afterwards; a step a module no longer has is skipped). Nested steps are timed inside their caller's time too."""
    import importlib

    saved = []
    for mod_name, fn in steps:
        mod = importlib.import_module(mod_name)
        f = getattr(mod, fn, None)
        if f is None:
            continue
        acc = out.setdefault(fn, {"s": 0.0, "calls": 0})

        def wrapped(*a, _f=f, _acc=acc, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                _acc["s"] += time.perf_counter() - t0
                _acc["calls"] += 1

        setattr(mod, fn, wrapped)
        saved.append((mod, fn, f))
    try:
        yield
    finally:
        for mod, fn, f in saved:
            setattr(mod, fn, f)
