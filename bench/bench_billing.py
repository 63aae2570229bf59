"""Benchmark: the billing service invoicing 1,000,000 shipped lines, then a second run with a day's new shipments.

    .venv/bin/python bench/bench_billing.py [--lines 1000000] [--new 20000]

1. **setup** (DuckDB SQL, no Python rows): a fresh warehouse with ``--lines`` order lines in orders of 1-7 lines
   (B2B, table tax by state, 5 % rate discounts, shipping on a third of the orders), each order shipped in one or
   two shipments (a fifth split: partial invoices), tax rates per state, one billing policy; then a day's worth of
   ``--new`` more shipped lines for the second run.
2. **backlog**: ``run_billing`` (``SOM_INVOICE_PDFS=none``: documents are timed apart, ~25 ms a PDF) invoices every
   shipment -- candidates, pricing (``invoicing.price_lines``), numbering, posting, receivables.
3. **day**: the same service once the day's shipments arrived: its cost follows the new work, not the history.
5. **closure**: ``run_closure`` over every order of the book (statuses from every stage's tables, the nightly
   breaks carried, the HTML report).
4. **verify**: the blocking billing checks (shipped lines invoiced once, invoice totals, receivables) return no row.

Each phase runs in its own process (``bench/phases.py``), so its peak RSS is its own.

Measured 2026-12-05 on the 2-core machine: 1,048,745 shipped lines -> 298,745 invoices (1,132,079 lines) in 24.1 s
at 1.61 GB peak (before posting the backlog in batches of ``INVOICE_BATCH`` shipments: 24.6 s at 4.87 GB); the next
day's 20,977 lines in 0.8 s at 0.49 GB; the checks find nothing. The closure service over the book (255,000
orders, 1,020,000 order lines, 298,745 breaks) in 4.3 s at 1.02 GB peak (a later run, the machine busier: backlog
33 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from phases import child, emit, measured, settings_for, warehouse_for  # noqa: E402

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
STATES = ("TX", "NY", "CA", "IL", "WA", "FL", "OH", "GA")


def _setup(home: Path, n_lines: int, n_new: int) -> dict:
    from som_pipeline import schemas

    s = settings_for(home)
    wh = warehouse_for(s)
    out: dict = {}
    with measured(out, "setup"), wh.transaction() as con:
        con.execute("SET VARIABLE n = ?", [n_lines + n_new])
        # order lines: 1..7 per order, 10..200 units of price 1.00..250.00; the last n_new lines are "today's"
        con.execute("""
            CREATE TEMP TABLE ol AS
            SELECT i, (i // 4) AS o, (i % 4) + 1 AS line_no, 1 + (hash(i) % 40)::BIGINT AS qty,
                   (100 + hash(i * 7) % 24900)::DECIMAL(18, 4) / 100 AS price
            FROM range(getvariable('n')) t(i)""")
        con.execute(f"""
            INSERT INTO core.orders BY NAME
            SELECT 'CSV-' || o AS order_id, 'CSV-' || o AS channel_order_ref, 'csv' AS channel, 1 AS version,
                   'C' || (o % 997) AS customer_id, 'C' || (o % 997) AS customer_ref,
                   TIMESTAMPTZ '2026-11-01 10:00:00+00' AS order_ts, DATE '2026-11-01' AS order_date, 'USD' AS currency,
                   'US' AS ship_to_country, ['{"','".join(STATES)}'][1 + o % {len(STATES)}] AS ship_to_region,
                   '7' || lpad((o % 9999)::VARCHAR, 4, '0') AS ship_to_postal_code, false AS ship_complete,
                   0::DECIMAL(18, 2) AS items_subtotal, 0::DECIMAL(18, 2) AS discount_total,
                   0::DECIMAL(18, 2) AS tax_total, 0::DECIMAL(18, 2) AS shipping_tax,
                   CASE WHEN o % 3 = 0 THEN 9.95 ELSE 0 END::DECIMAL(18, 2) AS shipping_total,
                   0::DECIMAL(18, 2) AS order_total, false AS prices_include_tax, count(*) AS line_count,
                   0 AS unpriced_lines, 'bench' AS source_file, '-' AS source_location, 'h' AS content_hash,
                   TIMESTAMPTZ '2026-11-01 10:00:00+00' AS captured_at,
                   TIMESTAMPTZ '2026-11-01 10:00:00+00' AS first_captured_at, 'cap' AS capture_id
            FROM ol GROUP BY o""")  # noqa: S608 (constants from code)
        con.execute("""
            INSERT INTO core.order_lines BY NAME
            SELECT 'CSV-' || o AS order_id, 1 AS version, line_no, 'SKU-' || (i % 5000) AS sku, qty AS quantity,
                   'EA' AS uom, price AS unit_price, round(price * qty, 2)::DECIMAL(18, 2) AS line_amount,
                   round(round(price * qty, 2) * 0.05, 2)::DECIMAL(18, 2) AS discount_amount,
                   0.05::DECIMAL(9, 6) AS discount_rate, 0::DECIMAL(18, 2) AS tax_amount,
                   0::DECIMAL(18, 2) AS shipping_amount, 'catalog' AS item_kind
            FROM ol""")
        # shipments: an order's lines in one shipment, a fifth of the orders' first line split in two
        con.execute("""
            CREATE TEMP TABLE sl AS
            SELECT 'S-' || o || '-1' AS shipment_id, o, line_no, i,
                   CASE WHEN o % 5 = 0 AND line_no = 1 AND qty > 1 THEN qty // 2 ELSE qty END AS q
            FROM ol
            UNION ALL
            SELECT 'S-' || o || '-2', o, line_no, i, qty - qty // 2 FROM ol WHERE o % 5 = 0 AND line_no = 1 AND qty > 1
        """)
        con.execute("""
            INSERT INTO core.shipment_lines BY NAME
            SELECT shipment_id, 'CSV-' || o AS order_id, line_no, 'SKU-' || (i % 5000) AS sku, 'WH-1' AS warehouse_id,
                   q AS quantity FROM sl""")
        con.execute("""
            INSERT INTO core.shipments BY NAME
            SELECT shipment_id, 'CSV-' || any_value(o) AS order_id, 'csv' AS channel, 'WH-1' AS warehouse_id,
                   'UPS' AS carrier_id, 'GROUND' AS service,
                   CASE WHEN min(i) >= getvariable('n') - ? THEN DATE '2026-11-20' ELSE DATE '2026-11-10' END
                       AS ship_date,
                   CASE WHEN min(i) >= getvariable('n') - ? THEN TIMESTAMPTZ '2026-11-20 15:00:00+00'
                        ELSE TIMESTAMPTZ '2026-11-10 15:00:00+00' END AS shipped_at,
                   1 AS packages, sum(q) AS units, 1.0 AS gross_weight_kg, false AS partial
            FROM sl GROUP BY shipment_id""", [n_new, n_new])
        # today's shipments are held back in a side table until the "day" phase
        con.execute("CREATE TABLE main.today_shipments AS SELECT * FROM core.shipments WHERE ship_date = DATE '2026-11-20'")
        con.execute("CREATE TABLE main.today_lines AS SELECT * FROM core.shipment_lines SEMI JOIN "
                    "main.today_shipments USING (shipment_id)")
        con.execute("DELETE FROM core.shipment_lines WHERE shipment_id IN (SELECT shipment_id FROM main.today_shipments)")
        con.execute("DELETE FROM core.shipments WHERE ship_date = DATE '2026-11-20'")
        rates = [{"jurisdiction": f"US-{st}", "country": "US", "region": st, "postal_prefix": "*", "tax_class": c,
                  "rate": f"0.0{5 + k % 4}25", "valid_from": "2025-01-01"}
                 for k, st in enumerate(STATES) for c in ("standard", "shipping")]
        import polars as pl

        from som_pipeline.warehouse import replace_table
        replace_table(con, "ref.tax_rates", schemas.conform(pl.DataFrame(rates).with_columns(
            pl.col("rate").str.to_decimal(scale=6), pl.col("valid_from").str.to_date()), schemas.TaxRateModel))
        out["shipment_lines"] = con.execute("SELECT count(*) FROM core.shipment_lines").fetchone()[0]
        out["today_lines"] = con.execute("SELECT count(*) FROM main.today_lines").fetchone()[0]
    return out


def _run(home: Path, today: bool) -> dict:
    from dataclasses import replace

    from som_pipeline.services.billing import run_billing

    s = replace(settings_for(home), invoice_pdfs="none")
    wh = warehouse_for(s)
    out: dict = {}
    if today:
        with wh.transaction() as con:
            con.execute("INSERT INTO core.shipments SELECT * FROM main.today_shipments")
            con.execute("INSERT INTO core.shipment_lines SELECT * FROM main.today_lines")
    with measured(out, "billing"):
        rep = run_billing(wh, s, NOW)
    out["invoices"], out["invoice_lines"] = rep.invoices, rep.invoice_lines
    return out


def _closure(home: Path) -> dict:
    from som_pipeline.services.closure import run_closure

    s = settings_for(home)
    wh = warehouse_for(s)
    out: dict = {}
    with measured(out, "closure"):
        rep = run_closure(wh, s, NOW)
    out["orders"], out["open_breaks"] = rep.orders_evaluated, rep.open_breaks
    with wh.connect() as con:
        out["order_lines"] = con.execute("SELECT count(*) FROM core.order_lines").fetchone()[0]
    return out


def _verify(home: Path) -> dict:
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    wh = warehouse_for(settings_for(home))
    with wh.connect() as con:
        return {r: run_reconciliation_query(con, sql_file("reconciliation", r)).height
                for r in ("shipped_lines_invoiced_once", "invoice_totals", "receivables_match_documents")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=20_000)
    ap.add_argument("--_phase")
    ap.add_argument("--_home", type=Path)
    a = ap.parse_args()
    if a._phase:
        emit({"setup": lambda: _setup(a._home, a.lines, a.new), "backlog": lambda: _run(a._home, False),
              "day": lambda: _run(a._home, True), "verify": lambda: _verify(a._home),
              "closure": lambda: _closure(a._home)}[a._phase]())
        return 0
    home = Path(tempfile.mkdtemp(prefix="bench_billing_"))
    res = {p: child(__file__, p, home, ["--lines", str(a.lines), "--new", str(a.new)])
           for p in ("setup", "backlog", "day", "verify", "closure")}
    print(f"billing bench: {res['setup']['shipment_lines']:,} shipped lines, then {res['setup']['today_lines']:,} "
          f"the next day (PDFs off)")
    for p in ("setup", "backlog", "day", "closure"):
        t = res[p].get("setup") or res[p].get("billing") or res[p].get("closure")
        extra = {k: v for k, v in res[p].items() if k not in ("setup", "billing", "closure")}
        print(f"{p:<8}{t['s']:>8.1f} s  peak {t['peak_sampled_mb'] / 1024:>5.2f} GB  {extra}")
    print(f"checks (rows found, 0 = pass): {res['verify']}")
    return 0 if not any(res["verify"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
