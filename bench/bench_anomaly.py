"""Benchmark: the quantity / order-value anomaly step for one new day of orders against a long history.

    .venv/bin/python bench/bench_anomaly.py [--lines 6000000] [--days 2400] [--customers 150000]
                                            [--skus 200000] [--held 300] [--keep DIR] [--skip-before]

1. generates (DuckDB SQL, deterministic, in a child process) a warehouse with ``--lines`` order lines over
   ``--days`` days of history (~4 lines per order; each customer buys from a basket of ~12 SKUs with its own
   habits, rare quantity spikes), every history order recorded by validation (``core.order_status``; ``--held``
   of the last two weeks' orders ON_HOLD, so they are re-evaluated), then one new day of orders (the history's
   daily volume), not yet recorded; builds ``core.anomaly_baselines`` (``rebuild_anomaly_state``, timed);
2. **before** (child process): the full computation -- read every order and line (only the columns the check
   uses) and run ``check_quantity_anomaly`` on the day's orders + the held ones against all of them;
3. **after** (child process): ``anomaly_state_for_run`` (only the touched groups' state rows; full history
   only for groups the state cannot serve), the check from that state, ``write_anomaly_state`` (one
   transaction);
4. prints seconds and peak RSS (``ru_maxrss`` of each child, DuckDB's memory included) and checks the two
   result sets are identical. Target: the day against the history in well under 1 GB and a few seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

START = "2020-01-01 00:00:00+00"


def _defaults(model, explicit: dict[str, str]) -> str:
    """SELECT list: the explicit expressions, typed defaults for the other columns of the model."""
    from som_pipeline.schemas import duckdb_type

    out = []
    for name, col in model.to_schema().columns.items():
        t = duckdb_type(col.dtype.type)
        if name in explicit:
            expr = explicit[name]
        elif col.nullable:
            expr = "NULL"
        elif t.startswith("DECIMAL") or t in ("BIGINT", "INTEGER", "DOUBLE"):
            expr = "0"
        elif t == "BOOLEAN":
            expr = "false"
        elif t == "TIMESTAMPTZ":
            expr = "order_ts"
        elif t == "DATE":
            expr = "CAST(order_ts AS DATE)"
        else:
            expr = "'bench'"
        out.append(f'CAST({expr} AS {t}) AS "{name}"')
    return ",\n".join(out)


def generate(d: Path, n_lines: int, days: int, customers: int, skus: int, held: int) -> dict:
    from som_pipeline import schemas
    from som_pipeline.services.anomaly import rebuild_anomaly_state
    from som_pipeline.validation import load_config
    from som_pipeline.warehouse import Warehouse

    n_hist = n_lines // 4
    n_day = max(1, n_hist // days)
    wh = Warehouse(d / "w.duckdb", memory_limit="4GB")
    h = "hash(i * 2654435761 + {s})"  # deterministic pseudo-random per order
    o_cols = _defaults(schemas.OrderModel, {
        "order_id": "order_id", "customer_id": "customer_id", "order_ts": "order_ts", "currency": "currency",
        "channel": "'csv'", "channel_order_ref": "order_id", "version": "1", "line_count": "n_lines",
        "items_subtotal": "0", "order_total": "0", "content_hash": "order_id", "capture_id": "order_id",
    })
    with wh.connect() as con:
        con.execute("SET threads = 2")
        # orders: history i < n_hist over `days` days, then one day of new orders after it
        con.execute(f"""
            CREATE TEMP TABLE o AS
            SELECT i, printf('O-%09d', i) AS order_id,
                   'C' || CAST({h.format(s=1)} % {customers} AS VARCHAR) AS customer_id,
                   CAST({h.format(s=1)} % {customers} AS BIGINT) AS ci,
                   CASE WHEN {h.format(s=1)} % {customers} % 10 = 0 THEN 'EUR' ELSE 'USD' END AS currency,
                   TIMESTAMPTZ '{START}' + to_microseconds(CAST(
                       CASE WHEN i < {n_hist} THEN i * ({days} * 86400000000 // {n_hist})
                            ELSE {days} * 86400000000 + (i - {n_hist}) * (86400000000 // {n_day}) END AS BIGINT))
                       AS order_ts,
                   CAST(1 + {h.format(s=2)} % 7 AS INTEGER) AS n_lines
            FROM range({n_hist + n_day}) t(i)""")  # noqa: S608 (numbers from the command line, ints)
        con.execute(f"""
            CREATE TEMP TABLE l AS
            SELECT o.order_id, o.i, g.line_no,
                   'S' || CAST((o.ci * 31 + hash(o.i * 7 + g.line_no) % 12 * 7919) % {skus} AS VARCHAR) AS sku,
                   CAST(GREATEST(1, 1 + (o.ci * 7 + (hash(o.i * 7 + g.line_no) % 12)) % 20
                        + hash(o.i * 13 + g.line_no) % 5 - 2)
                        * CASE WHEN hash(o.i * 17 + g.line_no) % 5000 = 0 THEN 100 ELSE 1 END AS BIGINT) AS quantity
            FROM o, LATERAL (SELECT CAST(range + 1 AS BIGINT) AS line_no FROM range(o.n_lines)) g""")  # noqa: S608
        con.execute("""
            CREATE TEMP TABLE lp AS
            SELECT *, CAST(1 + CAST(substr(sku, 2) AS BIGINT) % 100 AS DECIMAL(18, 4)) AS unit_price,
                   CAST(quantity * (1 + CAST(substr(sku, 2) AS BIGINT) % 100) AS DECIMAL(18, 2)) AS line_amount
            FROM l""")
        con.execute(f"INSERT INTO core.orders BY NAME SELECT {o_cols} FROM o")  # noqa: S608 (text from code)
        con.execute("""
            UPDATE core.orders SET items_subtotal = s.v, order_total = s.v
            FROM (SELECT order_id, sum(line_amount) AS v FROM lp GROUP BY order_id) s
            WHERE core.orders.order_id = s.order_id""")
        l_cols = _defaults(schemas.OrderLineModel, {
            "order_id": "order_id", "line_no": "line_no", "sku": "sku", "quantity": "quantity", "uom": "'EA'",
            "unit_price": "unit_price", "line_amount": "line_amount", "version": "1", "item_kind": "'catalog'"})
        con.execute(f"INSERT INTO core.order_lines BY NAME SELECT {l_cols} FROM lp")  # noqa: S608
        st = _defaults(schemas.OrderStatusModel, {
            "order_id": "order_id", "version": "1", "actor": "'system'", "reasons": "''",
            "status": f"CASE WHEN i >= {n_hist - 14 * n_day} AND i % {max(1, 14 * n_day // max(held, 1))} = 0 "
                      "THEN 'ON_HOLD' ELSE 'APPROVED' END"})
        con.execute(f"INSERT INTO core.order_status BY NAME SELECT {st} FROM o WHERE i < {n_hist}")  # noqa: S608
        counts = con.execute(
            "SELECT (SELECT count(*) FROM core.orders), (SELECT count(*) FROM core.order_lines), "
            "(SELECT count(*) FROM core.order_status WHERE status = 'ON_HOLD')").fetchone()
    t = time.perf_counter()
    with wh.transaction() as con:
        rows = rebuild_anomaly_state(con, load_config(), recorded_only=True)
    return {"orders": counts[0], "lines": counts[1], "held": counts[2], "day_orders": n_day,
            "state_rows": rows, "rebuild_s": round(time.perf_counter() - t, 2),
            "rebuild_rss_mb": round(_rss_mb())}


def _evaluated(con) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The orders validation evaluates this run: not recorded yet, or ON_HOLD."""
    where = ("o.order_id IN (SELECT o2.order_id FROM core.orders o2 LEFT JOIN core.order_status s "
             "ON s.order_id = o2.order_id WHERE s.order_id IS NULL OR s.status = 'ON_HOLD')")
    o = con.execute(f"SELECT * FROM core.orders o WHERE {where}").pl()  # noqa: S608 (fixed text)
    ln = con.execute(f"SELECT l.* FROM core.order_lines l JOIN core.orders o USING (order_id) "  # noqa: S608
                     f"WHERE {where}").pl()
    return o, ln


def phase(name: str, d: Path) -> dict:
    from som_pipeline.services.anomaly import anomaly_state_for_run, write_anomaly_state
    from som_pipeline.validation import check_quantity_anomaly, load_config
    from som_pipeline.warehouse import Warehouse, transaction

    cfg = load_config()
    wh = Warehouse(d / "w.duckdb")
    t = time.perf_counter()
    info: dict = {}
    with wh.connect() as con:
        ev_o, ev_l = _evaluated(con)
        if name == "before":
            ho = con.execute("SELECT order_id, customer_id, order_ts, currency, items_subtotal FROM core.orders").pl()
            hl = con.execute("SELECT order_id, line_no, sku, quantity FROM core.order_lines").pl()
            info["read_s"] = round(time.perf_counter() - t, 2)
            res = check_quantity_anomaly(ev_o, ev_l, ho, hl, cfg)
        else:
            run = anomaly_state_for_run(con, cfg)
            info.update(read_s=round(time.perf_counter() - t, 2), history_rows=run.history.height,
                        refilled_groups=run.refilled, touched_groups=run.touched)
            t1 = time.perf_counter()
            res = check_quantity_anomaly(ev_o, ev_l, ev_o.clear(), ev_l.clear(), cfg, anomaly_state=run.history)
            t2 = time.perf_counter()
            with transaction(con):
                write_anomaly_state(con, run)
            info.update(check_s=round(t2 - t1, 2), write_s=round(time.perf_counter() - t2, 2))
    info.update(seconds=round(time.perf_counter() - t, 2), peak_rss_mb=round(_rss_mb()),
                evaluated_orders=ev_o.height, evaluated_lines=ev_l.height,
                findings=res.filter(pl.col("outcome") != "pass").height)
    res.write_parquet(d / f"results_{name}.parquet")
    return info


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=6_000_000)
    ap.add_argument("--days", type=int, default=2_400)
    ap.add_argument("--customers", type=int, default=150_000)
    ap.add_argument("--skus", type=int, default=200_000)
    ap.add_argument("--held", type=int, default=300)
    ap.add_argument("--keep", type=Path, help="build the warehouse in this directory and keep it")
    ap.add_argument("--skip-before", action="store_true", help="only the state path")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase == "generate":
        print(json.dumps(generate(a.dir, a.lines, a.days, a.customers, a.skus, a.held)))
        return
    if a.phase:
        print(json.dumps(phase(a.phase, a.dir)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_anomaly_") as tmp:
        d = a.keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        g = _child("--phase", "generate", "--dir", str(d), "--lines", str(a.lines), "--days", str(a.days),
                   "--customers", str(a.customers), "--skus", str(a.skus), "--held", str(a.held))
        print(f"generated {g['orders']:,} orders / {g['lines']:,} lines ({a.days:,} days, {a.customers:,} customers, "
              f"{a.skus:,} SKUs; {g['held']} held; a new day of {g['day_orders']:,} orders) in "
              f"{time.perf_counter() - t:.0f} s")
        print(f"rebuild core.anomaly_baselines from every order: {g['state_rows']:,} rows, {g['rebuild_s']} s, "
              f"peak RSS {g['rebuild_rss_mb']:,} MB (generation included)")
        runs = {} if a.skip_before else {"before": _child("--phase", "before", "--dir", str(d))}
        runs["after"] = _child("--phase", "after", "--dir", str(d))
        for name, r in runs.items():
            extra = (f"; state path: {r['history_rows']:,} observations read, {r['refilled_groups']} groups refilled "
                     f"from core, {r['touched_groups']:,} groups upserted; check {r['check_s']} s, write {r['write_s']} s"
                     ) if name == "after" else ""
            print(f"{name:>6}: {r['seconds']:6.2f} s (reads {r['read_s']} s), peak RSS {r['peak_rss_mb']:,} MB; "
                  f"{r['evaluated_orders']:,} orders / {r['evaluated_lines']:,} lines evaluated, "
                  f"{r['findings']} findings{extra}")
        if "before" in runs:
            key = ["order_id", "rule", "reason_code", "line_no", "message"]
            b = pl.read_parquet(d / "results_before.parquet").sort(key, nulls_last=True)
            f = pl.read_parquet(d / "results_after.parquet").sort(key, nulls_last=True)
            assert b.equals(f), "the state path's results differ from the full computation"
            print(f"results identical ({b.height:,} rows)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
