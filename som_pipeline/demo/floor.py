"""The demo's warehouse floor: what pickers, the receiving dock and the counters do between two runs.

After a run has released pick waves, :func:`simulate_floor` writes what the floor would send back:

- ``landing/scans/``: one scan per open task with the SKU's UPC and its quantity, in walk order, with the
  mistakes a real floor makes: a wrong item scanned first (then the right one), a task picked in two scans,
  an over-pick, short picks (bin empty: ``action=short``), a scan sent twice, a task id typed wrong, a barcode
  with a bad check digit. CSV for most stations, JSON lines for one.
- ``landing/receipts/``: purchase-order receipts for the replenishment plan's first suggestions, a transfer
  between two warehouses, and two bad lines (an unknown SKU, a negative quantity).
- ``reference/inventory.csv``: a cycle count of a few SKUs (as of now), three of them off by a unit or two.

Deterministic for a given warehouse state and seed. Demo only (the pipeline never imports it).
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl


def simulate_floor(home: Path, wh, now: datetime, seed: int = 7, hours: float = 2.0) -> dict:
    """The floor's work from ``now`` for ``hours``: every scan, receipt and count falls inside that shift."""
    rng = random.Random(seed)
    with wh.connect() as con:
        tasks = con.execute("SELECT t.*, a.alias AS upc FROM core.pick_tasks t LEFT JOIN (SELECT sku, min(alias) AS alias "
                            "FROM ref.product_aliases WHERE qualifier = 'UP' GROUP BY 1) a USING (sku) "
                            "WHERE t.status = 'OPEN' ORDER BY t.wave_id, t.walk_seq").pl()
        upcs = con.execute("SELECT sku, min(alias) AS upc FROM ref.product_aliases WHERE qualifier = 'UP' "
                           "GROUP BY 1 ORDER BY 1").pl()
        plan = con.execute("SELECT * FROM core.replenishment_plan ORDER BY proposal_id LIMIT 8").pl()
        stock = con.execute("SELECT warehouse_id, sku, on_hand FROM core.v_stock WHERE on_hand > 5 "
                            "ORDER BY warehouse_id, sku").pl()
        snapshot = con.execute("SELECT * FROM ref.inventory ORDER BY warehouse_id, sku").pl()
        on_hand = con.execute("SELECT warehouse_id, sku, on_hand, available FROM core.v_stock "
                              "ORDER BY warehouse_id, sku").pl()
    out = {"scans": _scans(home, tasks, upcs, now, rng, hours), "receipts": _receipts(home, plan, stock, now, rng),
           "counted": _count(home, snapshot, on_hand, now, rng)}
    return out


def _scans(home: Path, tasks: pl.DataFrame, upcs: pl.DataFrame, now: datetime, rng: random.Random,
           hours: float) -> dict:
    if tasks.height == 0:
        return {"scans": 0}
    other = upcs["upc"].to_list()
    rows: list[dict] = []
    t0 = now + timedelta(minutes=5)
    step = min(20.0, (hours * 3600 - 600) / max(tasks.height, 1))  # the pickers finish before the shift ends
    n = 0
    for t in tasks.iter_rows(named=True):
        n += 1
        at = (t0 + timedelta(seconds=round(step * n, 3))).isoformat()
        base = {"task_id": t["task_id"], "warehouse_id": t["warehouse_id"], "user": f"picker{n % 7 + 1:02d}",
                "station": f"RF-{t['warehouse_id'][-2:]}-{n % 4 + 1}", "scanned_at": at, "action": "pick"}
        code, q = t["upc"] or "000000000000", int(t["quantity"])
        roll = rng.random()
        if roll < 0.04 and q >= 1:  # bin empty or damaged: picked what was there, closed short
            rows.append({**base, "barcode": code, "quantity": max(q - rng.randint(1, 2), 0), "action": "short"})
            continue
        if roll < 0.08:  # the neighbour's item first, then the right one
            rows.append({**base, "barcode": rng.choice(other), "quantity": 1})
        if roll < 0.12 and q >= 2:  # two trips
            rows.append({**base, "barcode": code, "quantity": q // 2})
            rows.append({**base, "barcode": code, "quantity": q - q // 2})
            continue
        if 0.12 <= roll < 0.14:  # one too many: the extra goes back to the bin
            rows.append({**base, "barcode": code, "quantity": q + 1})
            continue
        rows.append({**base, "barcode": code, "quantity": q})
    for i, r in enumerate(rows):
        r["scan_id"] = f"SC-{now:%Y%m%d}-{i + 1:06d}"
    bad = [
        {**rows[0], "scan_id": rows[0]["scan_id"]},  # sent twice (the scanner's retry)
        {**rows[1], "scan_id": f"SC-{now:%Y%m%d}-X00001", "task_id": "T-DOESNOTEXIST000000"},  # task id typed wrong
        {**rows[2], "scan_id": f"SC-{now:%Y%m%d}-X00002", "barcode": rows[2]["barcode"][:-1]
         + str((int(rows[2]["barcode"][-1]) + 1) % 10)},  # check digit off
    ]
    cut = len(rows) * 4 // 5
    cols = ["scan_id", "task_id", "warehouse_id", "barcode", "quantity", "user", "station", "scanned_at", "action"]
    d = home / "landing" / "scans"
    d.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows[:cut] + bad)
    (d / f"scans-{now:%Y%m%d}-rf.csv").write_text(buf.getvalue(), encoding="utf-8")
    (d / f"scans-{now:%Y%m%d}-station9.jsonl").write_text(
        "".join(json.dumps({k: r[k] for k in cols}) + "\n" for r in rows[cut:]), encoding="utf-8")
    return {"scans": len(rows) + len(bad), "injected_errors": len(bad)}


def _receipts(home: Path, plan: pl.DataFrame, stock: pl.DataFrame, now: datetime, rng: random.Random) -> dict:
    rows = []
    at = (now + timedelta(hours=1)).isoformat()
    for i, p in enumerate(plan.head(8).iter_rows(named=True), 1):  # the plan's suggestions come back as receipts
        po = p["kind"] == "purchase"
        rows.append({"receipt_id": f"{'GRN' if po else 'TRF'}-{now:%Y%m%d}-{i:03d}", "line_no": 1,
                     "kind": "po" if po else "transfer",
                     "reference": f"PO-{now:%y%m}-{4100 + i}" if po else p["proposal_id"][:20],
                     "warehouse_id": p["to_warehouse"], "sku": p["sku"], "barcode": "", "quantity": int(p["quantity"]),
                     "received_at": at, "from_warehouse_id": "" if po else p["from_warehouse"]})
    if stock.height >= 2:
        src = stock.row(0, named=True)
        dest = next((r for r in stock.iter_rows(named=True) if r["warehouse_id"] != src["warehouse_id"]), None)
        if dest:
            rows.append({"receipt_id": f"TRF-{now:%Y%m%d}-100", "line_no": 1, "kind": "transfer",
                         "reference": f"TO-{now:%y%m%d}-01", "warehouse_id": dest["warehouse_id"], "sku": src["sku"],
                         "barcode": "", "quantity": 3, "received_at": at, "from_warehouse_id": src["warehouse_id"]})
    rows.append({"receipt_id": f"GRN-{now:%Y%m%d}-900", "line_no": 1, "kind": "po", "reference": "PO-UNKNOWN",
                 "warehouse_id": rows[0]["warehouse_id"] if rows else "WH-NJ", "sku": "NO-SUCH-SKU", "barcode": "",
                 "quantity": 5, "received_at": at, "from_warehouse_id": ""})
    rows.append({"receipt_id": f"GRN-{now:%Y%m%d}-901", "line_no": 1, "kind": "po", "reference": "PO-TYPO",
                 "warehouse_id": rows[0]["warehouse_id"], "sku": rows[0]["sku"], "barcode": "", "quantity": -6,
                 "received_at": at, "from_warehouse_id": ""})
    d = home / "landing" / "receipts"
    d.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (d / f"receipts-{now:%Y%m%d}.csv").write_text(buf.getvalue(), encoding="utf-8")
    return {"lines": len(rows), "bad": 2}


def _count(home: Path, snapshot: pl.DataFrame, stock: pl.DataFrame, now: datetime, rng: random.Random) -> dict:
    """A new snapshot: the ledger's on-hand for every SKU it had, three of them counted off."""
    if snapshot.height == 0 or stock.height == 0:
        return {"pairs": 0}
    cur = snapshot.select("warehouse_id", "sku").join(stock, on=["warehouse_id", "sku"], how="inner")
    free = [i for i, a in enumerate(cur["available"].to_list()) if a >= 2]  # a count finding less than is promised
    picks = sorted(rng.sample(free, min(3, len(free))))  # is real, but the demo keeps its reconciliation clean
    diffs = {i: d for i, d in zip(picks, (-2, -1, 1), strict=False)}
    counted = cur.with_row_index("_i").with_columns(
        (pl.col("on_hand") + pl.col("_i").replace_strict(diffs, default=0, return_dtype=pl.Int64)).alias("on_hand"),
        pl.lit(now.isoformat()).alias("as_of")).drop("_i", "available")
    counted.write_csv(home / "reference" / "inventory.csv")
    return {"pairs": counted.height, "differences": len(diffs)}
