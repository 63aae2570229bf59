"""Benchmark: the CSV template channel on a 2,000,000-line file.

    .venv/bin/python bench/bench_ingest_csv.py [--orders 400000] [--chunk-rows 250000] [--keep DIR]

1. generates (deterministically, vectorised with Polars, in a child process so its memory is not
   counted) a template CSV of ~400k orders x 3-7 lines = 2,000,000 data rows, with quoted commas,
   quotes and newlines, rows out of order, and a sprinkling of bad rows (ragged rows, bad quantity,
   impossible date, exact duplicate lines);
2. runs ``iter_csv_chunks`` + ``normalise`` per chunk over it and sums the counts;
3. prints rows/s, wall time per phase and peak RSS (``resource.getrusage(...).ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

COLUMNS = [
    "channel_order_ref", "order_ts", "customer_ref", "customer_po", "currency", "ship_to_name",
    "ship_to_company", "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_region",
    "ship_to_postal_code", "ship_to_country", "ship_method", "ship_complete", "line_no", "sku",
    "description", "quantity", "uom", "unit_price", "discount_pct", "tax_rate", "promo_code",
]


def _q(e: pl.Expr) -> pl.Expr:
    """RFC 4180 quoting of one text column."""
    return (
        pl.when(e.str.contains(r'[",\r\n]'))
        .then(pl.lit('"') + e.str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(e)
    )


def generate(path: Path, n_orders: int = 400_000) -> dict[str, int]:
    """Write the benchmark file; return what it contains (data rows, physical lines, bytes)."""
    o = pl.DataFrame({"o": pl.arange(0, n_orders, eager=True, dtype=pl.Int64)})
    df = (
        o.with_columns(n=(3 + pl.col("o") % 5))
        .select(pl.col("o").repeat_by("n").explode())
        .with_columns(ln=pl.int_range(1, pl.len() + 1).over("o"), i=pl.int_range(pl.len()))
    )
    o_, ln, i = pl.col("o"), pl.col("ln"), pl.col("i")
    s = pl.String
    ts = (pl.datetime(2026, 1, 1) + pl.duration(seconds=o_ * 61)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {
        "channel_order_ref": pl.format("SR-{}", o_.cast(s).str.zfill(7)),
        "order_ts": pl.when(o_ % 50_021 == 7).then(pl.lit("2026-02-30T10:00:00Z")).otherwise(ts),
        "customer_ref": pl.format("C{}", (o_ % 50_000).cast(s).str.zfill(5)),
        "customer_po": pl.when(o_ % 3 == 0).then(pl.lit("")).otherwise(pl.format("PO-{}", o_)),
        "currency": pl.when(o_ % 3 == 0).then(pl.lit("USD")).when(o_ % 3 == 1).then(pl.lit("EUR")).otherwise(pl.lit("GBP")),
        "ship_to_name": pl.when(o_ % 50 == 0).then(pl.lit("Smith, John")).otherwise(pl.format("Customer {}", o_ % 50_000)),
        "ship_to_company": pl.when(o_ % 4 == 0).then(pl.lit("Acme Corp")).otherwise(pl.lit("")),
        "ship_to_line1": pl.format("{} Main Street", o_ % 999 + 1),
        "ship_to_line2": pl.when(o_ % 200 == 0).then(pl.lit("Bldg 7\nFloor 2"))
        .when(o_ % 5 == 0).then(pl.lit("Suite 5")).otherwise(pl.lit("")),
        "ship_to_city": pl.lit("Springfield"),
        "ship_to_region": pl.lit("IL"),
        "ship_to_postal_code": (60_000 + o_ % 999).cast(s),
        "ship_to_country": pl.lit("US"),
        "ship_method": pl.when(o_ % 7 == 0).then(pl.lit("Express")).otherwise(pl.lit("Ground")),
        "ship_complete": pl.when(o_ % 10 == 0).then(pl.lit("yes")).otherwise(pl.lit("")),
        "line_no": ln.cast(s),
        "sku": pl.format("SKU-{}", ((o_ * 7 + ln) % 5_000).cast(s).str.zfill(5)),
        "description": pl.when(i % 100 == 0).then(pl.lit('Widget "Pro" 3", blue')).otherwise(pl.format("Widget {}", ln)),
        "quantity": pl.when(i % 10_007 == 5).then(pl.lit("abc")).otherwise((1 + (o_ + ln) % 10).cast(s)),
        "uom": pl.when(i % 2 == 0).then(pl.lit("EA")).otherwise(pl.lit("")),
        "unit_price": pl.when(i % 20 == 0).then(pl.lit(""))
        .otherwise(pl.format("{}.{}", 1 + (o_ * 13 + ln) % 300, ((o_ + ln * 7) % 100).cast(s).str.zfill(2))),
        "discount_pct": pl.when(o_ % 6 == 0).then(pl.lit("10")).when(o_ % 6 == 1).then(pl.lit("2.5")).otherwise(pl.lit("")),
        "tax_rate": pl.when(o_ % 3 == 0).then(pl.lit("0.0825")).when(o_ % 3 == 1).then(pl.lit("0.2")).otherwise(pl.lit("")),
        "promo_code": pl.when(o_ % 9 == 0).then(pl.lit("SPRING")).otherwise(pl.lit("")),
    }
    quoted = [_q(fields[c]).alias(c) for c in COLUMNS]
    full = pl.concat_str(quoted, separator=",")
    short = pl.concat_str(quoted[:12], separator=",")
    line = (
        pl.when(i % 20_011 == 11).then(full + pl.lit(",EXTRA"))  # too many fields
        .when(i % 30_011 == 13).then(short)  # too few fields
        .otherwise(full)
    )
    out = df.select(line.alias("l"), i, o_, ln)
    # exact copies of a few lines, and the first line of every 1000th order moved to the end of the
    # file (so the rows of an order are not always adjacent)
    dups = out.filter(pl.col("i") % 40_009 == 17)
    late = ((pl.col("o") % 1000 == 999) & (pl.col("ln") == 1)).alias("_late")
    out = pl.concat([out, dups]).sort(late, "i", maintain_order=True)
    with open(path, "wb") as f:
        f.write((",".join(COLUMNS) + "\n").encode())
        out.select("l").write_csv(f, include_header=False, quote_style="never")
    nl = out.select(pl.col("l").str.count_matches("\n", literal=True).sum()).item()
    return {"rows": out.height, "lines": out.height + nl + 1, "bytes": path.stat().st_size}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(path: Path, work_dir: Path, chunk_rows: int) -> dict[str, float]:
    from som_pipeline.ingest.common import normalise
    from som_pipeline.ingest.csv_template import NORMALISE_OPTIONS, iter_csv_chunks

    t0 = time.perf_counter()
    parse_s = norm_s = 0.0
    received = accepted = quarantined = orders = lines = chunks = 0
    it = iter_csv_chunks(path, path.name, work_dir, chunk_rows=chunk_rows)
    while True:
        t = time.perf_counter()
        try:
            chunk = next(it)
        except StopIteration:
            break
        parse_s += time.perf_counter() - t
        t = time.perf_counter()
        cap = normalise(chunk, source_file=path.name, file_sha256="0" * 64, **NORMALISE_OPTIONS)
        norm_s += time.perf_counter() - t
        chunks += 1
        received += cap.records_received
        accepted += cap.records_accepted
        quarantined += cap.records_quarantined
        orders += cap.orders_accepted
        lines += cap.lines.height
        print(f"  chunk {chunks}: {chunk.rows.height:,} rows, {len(chunk.rejected):,} rejected "
              f"-> {cap.records_accepted:,} accepted / {cap.records_quarantined:,} quarantined "
              f"(peak RSS so far {_rss_mb():,.0f} MB)", flush=True)
    wall = time.perf_counter() - t0
    assert received == accepted + quarantined
    return {"wall_s": wall, "parse_s": parse_s, "normalise_s": norm_s, "received": received,
            "accepted": accepted, "quarantined": quarantined, "orders": orders, "lines": lines,
            "chunks": chunks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=400_000)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--keep", type=Path, help="write the file into this directory and keep it")
    ap.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:
        info = generate(args.generate_only, args.orders)
        print(" ".join(f"{k}={v}" for k, v in info.items()))
        return

    with tempfile.TemporaryDirectory(prefix="bench_csv_") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        path = base / "bench template.csv"
        t = time.perf_counter()
        # generated in a child process: its memory does not count towards this process's peak RSS
        out = subprocess.run(
            [sys.executable, __file__, "--orders", str(args.orders), "--generate-only", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        info = dict(kv.split("=") for kv in out.split())
        print(f"generated {path.name}: {int(info['rows']):,} data rows, {int(info['lines']):,} lines, "
              f"{int(info['bytes']) / 1e6:,.0f} MB in {time.perf_counter() - t:.1f} s")
        work = Path(tmp) / "work"
        work.mkdir()
        rss0 = _rss_mb()
        r = run(path, work, args.chunk_rows)
        print(f"received {r['received']:,} = accepted {r['accepted']:,} + quarantined {r['quarantined']:,}; "
              f"{r['orders']:,} orders / {r['lines']:,} lines staged in {r['chunks']} chunks")
        print(f"wall {r['wall_s']:.1f} s (parse+group {r['parse_s']:.1f} s, normalise {r['normalise_s']:.1f} s); "
              f"{r['received'] / r['wall_s']:,.0f} rows/s")
        print(f"peak RSS {_rss_mb():,.0f} MB (before ingest {rss0:,.0f} MB)")


if __name__ == "__main__":
    main()
