"""Benchmark: load an 800k-row reference price list (the TPC-H SF 1 size: partsupp-scale tier prices).

    .venv/bin/python bench/bench_reference.py [--rows 800000] [--bad-every 1000]

1. generates (deterministically) ``$tmp/reference/price_lists.csv``: ``--rows`` rows over 4 tiers, 2 quantity
   breaks, ~1/3 with an end date; every ``--bad-every``-th row is broken in turn (a price that is not a number,
   a missing SKU, an unknown tier, a duplicate key), so the quarantine path is measured too;
2. times :func:`som_pipeline.reference.load_reference` (read, type every column, checks, duplicate keys, the
   model's rules, quarantine rows) and then the service ``load_reference_tables`` (the same plus the shrink guard
   and the writes into a temporary warehouse);
3. prints seconds, rows accepted / quarantined per reason and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def price_list(rows: int, bad_every: int):
    import polars as pl

    i = pl.col("i")
    tiers = pl.Series(["standard", "silver", "gold", "platinum"])
    df = pl.DataFrame({"i": pl.int_range(rows, eager=True)}).select(
        "i",
        tiers.gather(pl.int_range(rows, eager=True) % 4).alias("tier"),
        pl.format("SKU-{}", (i // 8).cast(pl.String).str.zfill(7)).alias("sku"),
        ((i // 4) % 2 * 9 + 1).cast(pl.String).alias("min_qty"),
        pl.format("{}.{}", (i % 997 + 1).cast(pl.String), (i % 100).cast(pl.String).str.zfill(2)).alias("price"),
        pl.lit("USD").alias("currency"),
        pl.lit("2024-01-01").alias("valid_from"),
        pl.when(i % 3 == 0).then(pl.lit("2027-12-31")).otherwise(pl.lit("")).alias("valid_to"),
        pl.lit("0.10").alias("max_discount_pct"),
    )
    if bad_every:
        k = (i // bad_every) % 4
        hit = (i % bad_every == bad_every - 1)
        df = df.with_columns(
            pl.when(hit & (k == 0)).then(pl.lit("12,50")).otherwise(pl.col("price")).alias("price"),
            pl.when(hit & (k == 1)).then(pl.lit("")).otherwise(pl.col("sku")).alias("sku"),
            pl.when(hit & (k == 2)).then(pl.lit("diamond")).otherwise(pl.col("tier")).alias("tier"),
        )
        dup = df.filter(hit & (k == 3))  # a second copy of the row: the earlier one is quarantined
        df = pl.concat([df, dup]).sort("i")
    return df.drop("i")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=800_000)
    ap.add_argument("--bad-every", type=int, default=1000, help="break every n-th row (0: none)")
    args = ap.parse_args()

    from som_pipeline.config import Settings
    from som_pipeline.reference import load_reference
    from som_pipeline.services.reference import load_reference_tables
    from som_pipeline.warehouse import Warehouse

    home = Path(tempfile.mkdtemp(prefix="bench_reference_"))
    s = Settings(home=home, b2b_db_url=f"sqlite:///{home / 'b2b.sqlite'}")
    s.ensure_dirs()
    path = s.reference / "price_lists.csv"
    t = time.perf_counter()
    price_list(args.rows, args.bad_every).write_csv(path)
    print(f"price list: {path.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    ld = load_reference("price_lists", path)
    core = time.perf_counter() - t
    reasons = dict(ld.quarantine.group_by("reason_code").len().sort("reason_code").rows())
    print(f"load_reference: {core:.2f} s for {ld.received:,} rows -> {ld.accepted:,} accepted, "
          f"{ld.quarantine.height:,} quarantined {reasons} ({ld.received / core:,.0f} rows/s)")

    wh = Warehouse(s.warehouse_path)
    t = time.perf_counter()
    (svc,) = load_reference_tables(wh, s, ["price_lists"])
    service = time.perf_counter() - t
    n = wh.read("SELECT count(*) AS n FROM ref.price_lists")["n"][0]
    q = wh.read("SELECT count(*) AS n FROM ops.quarantine")["n"][0]
    assert n == svc.accepted and n + q == svc.received  # nothing lost: every row loaded or quarantined
    print(f"load_reference_tables (service, into a temporary warehouse): {service:.2f} s "
          f"(ref.price_lists {n:,} rows, ops.quarantine {q:,} rows)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
