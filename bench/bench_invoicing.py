"""Benchmark and exactness anchor: TPC-H lineitem (tpchgen-cli, offline) priced as invoice lines.

    .venv/bin/python bench/bench_invoicing.py [--sf 1]

Every line item is one B2B order line shipped whole and invoiced (``demo.tpch.lineitem_invoice_todo``), priced by
``billing.invoicing.price_lines`` (the invoice-line arithmetic the billing stage uses). Then:

1. over TPC-H Q1's filter and groups, the unrounded net (``extended x (1 - discount)``) and charge (``... x (1 +
   tax)``) sums equal DuckDB's own Q1 answer over the Parquet exactly, and at SF 1 the official answer for A|F:
   sum_disc_price 53758257134.8700, sum_charge 55909065222.827692;
2. the cent-rounded tax and line totals per group equal an independent recomputation in DuckDB DECIMAL by the
   documented rule (discount = round(ext x rate), net = ext - discount, tax = round(net x rate)).

Prints seconds and peak RSS of the pricing; exits 1 on any difference.

Measured 2026-12-05 on the 2-core machine, SF 1 (6,001,215 line items): see the README's benchmark table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from phases import measured  # noqa: E402, I001 (bench/ is on sys.path)

from som_pipeline.billing.invoicing import price_lines  # noqa: E402
from som_pipeline.demo.tpch import generate, lineitem_invoice_todo, sf_text  # noqa: E402

OFFICIAL_SF1_AF = (Decimal("53758257134.8700"), Decimal("55909065222.827692"))
Q1_FILTER = "l_shipdate <= DATE '1998-12-01' - INTERVAL 90 DAY"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sf", type=float, default=1.0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "som_tpch_cache")
    a = ap.parse_args()
    times: dict = {}
    with measured(times, "generate"):
        li = generate(a.sf, a.cache / f"sf{sf_text(a.sf)}") / "lineitem.parquet"
    with measured(times, "read"):
        todo = lineitem_invoice_todo(li)
    with measured(times, "price_lines"):
        lines = price_lines(todo).lines
    del todo
    with measured(times, "q1"):
        ours = (lines.filter(pl.col("l_shipdate") <= pl.date(1998, 9, 2)).group_by("l_returnflag", "l_linestatus")
                .agg(pl.col("net_unrounded").sum(), (pl.col("net_unrounded") + pl.col("tax_unrounded")).sum()
                     .alias("charge"), pl.col("tax_amount").sum(), pl.col("line_total").sum(), pl.len())
                .sort("l_returnflag", "l_linestatus"))
    src = f"read_parquet('{li}')"
    con = duckdb.connect()
    official = con.execute(f"""
        SELECT l_returnflag, l_linestatus, sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount)),
               sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount) * (1 + l_tax)), count(*)
        FROM {src} WHERE {Q1_FILTER} GROUP BY ALL ORDER BY ALL""").fetchall()  # noqa: S608
    rounded = con.execute(f"""
        WITH l AS (SELECT l_returnflag, l_linestatus, l_extendedprice::DECIMAL(18, 2) AS ext,
                          round(l_extendedprice::DECIMAL(38, 2) * l_discount::DECIMAL(38, 6), 2) AS disc,
                          l_tax::DECIMAL(9, 6) AS rate FROM {src} WHERE {Q1_FILTER}),
             t AS (SELECT *, round((ext - disc)::DECIMAL(38, 2) * rate::DECIMAL(38, 6), 2) AS tax FROM l)
        SELECT l_returnflag, l_linestatus, sum(tax), sum(ext - disc + tax) FROM t GROUP BY ALL ORDER BY ALL
    """).fetchall()  # noqa: S608
    ok = True
    print(f"TPC-H SF {sf_text(a.sf)}: {lines.height:,} line items priced as invoice lines")
    print(f"{'phase':<12}{'seconds':>9}{'peak MB':>10}")
    for k, v in times.items():
        print(f"{k:<12}{v['s']:>9.2f}{v['peak_sampled_mb']:>10.0f}")
    for o, (rf, ls, disc, charge, n), (_, _, tax, total) in zip(ours.iter_rows(named=True), official, rounded,
                                                                  strict=True):
        same = (o["net_unrounded"] == disc and o["charge"] == charge and o["len"] == n
                and o["tax_amount"] == tax and o["line_total"] == total)
        ok &= same
        print(f"{rf}|{ls} n={n:,} sum_disc_price {o['net_unrounded']} (DuckDB {disc}) sum_charge {o['charge']} "
              f"(DuckDB {charge}); rounded tax {o['tax_amount']} total {o['line_total']} -> "
              f"{'exact' if same else 'DIFFERS'}")
    if a.sf == 1.0:
        af = ours.filter(pl.col("l_returnflag") == "A", pl.col("l_linestatus") == "F").row(0, named=True)
        hit = (af["net_unrounded"], af["charge"]) == OFFICIAL_SF1_AF
        ok &= hit
        print(f"official SF 1 A|F answer {OFFICIAL_SF1_AF[0]} / {OFFICIAL_SF1_AF[1]}: {'reproduced' if hit else 'MISSED'}")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
