"""`som tpch`: TPC-H (tpchgen-cli, SF 0.01) as a SOM home. The loader writes what TPC-H holds, every line item
becomes an order line, and TPC-H Q1's sums over core.order_lines equal DuckDB's own answer over the source
lineitem exactly (the lines keep their discount and tax rates)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from som_pipeline.config import Settings
from som_pipeline.demo.tpch import DEFAULT_END_DATE, NATIONS, TPCH_LAST_ORDER_DATE, load_tpch
from som_pipeline.reference import load_reference
from som_pipeline.schemas import REFERENCE_TABLES
from som_pipeline.services.channels import capture_channel
from som_pipeline.services.orders import build_core_orders
from som_pipeline.validation.config import load_config
from som_pipeline.warehouse import Warehouse

SF = 0.01


def _settings(home: Path) -> Settings:
    s = Settings(home=home, b2b_db_url=f"sqlite:///{home / 'b2b_portal.sqlite'}", landing_settle_s=0)
    s.ensure_dirs()
    return s


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tpch_cache")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, cache: Path):
    home = tmp_path_factory.mktemp("tpch_home")
    s = _settings(home)
    out = load_tpch(home, sf=SF, days=1, settings=s, cache_dir=cache)
    wh = Warehouse(s.warehouse_path, lock_timeout_s=60)
    capture_channel("csv", wh, s, now=datetime(2026, 11, 26, 6, tzinfo=UTC))
    build_core_orders(wh)
    return s, wh, out


def _src(out, table: str) -> str:
    return f"read_parquet('{out.source_dir / (table + '.parquet')}')"


def test_loader_writes_what_tpch_holds(loaded) -> None:
    s, _wh, out = loaded
    src = duckdb.connect()
    n = {t: src.execute(f"SELECT count(*) FROM {_src(out, t)}").fetchone()[0]  # noqa: S608
         for t in ("part", "customer", "orders", "lineitem")}
    assert (n["orders"], n["lineitem"]) == (15_000, 60_175)  # TPC-H SF 0.01
    assert out.counts["products"] == n["part"]
    assert out.counts["price_lists"] == 4 * n["part"]  # every tier, one price
    assert out.counts["customers"] == out.counts["customer_aliases"] == n["customer"]
    assert out.counts["warehouses"] == 5  # one per TPC-H region
    assert (out.counts["orders"], out.counts["lineitems"], out.counts["order_rows"]) == (
        n["orders"], n["lineitem"], n["lineitem"])
    # every reference table has its file, and each reads without a rejected row
    # not TPC-H's: the carriers' history, and billing's tax rates, policies, legal entities and payers' accounts
    for table in REFERENCE_TABLES.keys() - {"transit_history", "tax_rates", "billing_policies", "legal_entities",
                                            "customer_bank_accounts", "return_policies"}:
        ld = load_reference(table, s.reference / f"{table}.parquet")
        assert ld.frame is not None and ld.quarantine.height == 0, (table, ld.message, ld.quarantine.head(3))
        assert ld.accepted == out.counts[table]
    # one file (archived by the capture), every order on the end date; quantity x unit_price = l_extendedprice
    (name,) = [p.name for p in out.order_files]
    (f,) = s.archive.glob(f"csv/*/*__{name}")
    rows = pl.read_parquet(f)
    assert rows["order_ts"].dt.date().unique().to_list() == [DEFAULT_END_DATE]
    check = src.execute(f"""
        SELECT count(*) FROM read_parquet('{f}') r JOIN {_src(out, 'lineitem')} l
          ON r.channel_order_ref = 'TPCH-' || l.l_orderkey AND r.line_no = l.l_linenumber
        WHERE r.quantity * r.unit_price = l.l_extendedprice AND r.discount_pct = l.l_discount * 100
          AND r.tax_rate = l.l_tax""").fetchone()[0]  # noqa: S608
    assert check == n["lineitem"]
    assert 'as_of = "2026-11-26"' in (s.home / "validation.toml").read_text()


def test_addresses_pass_the_compliance_rules() -> None:
    cfg = load_config()
    assert len(NATIONS) == 25
    for nation, (iso, _style, places, streets) in NATIONS.items():
        assert len(places) == len(streets) == 3, nation
        pattern = cfg.postal_code_patterns.get(iso)
        for _city, _region, postal in places:
            assert pattern is None or re.fullmatch(pattern, postal.upper()), (nation, postal, pattern)
    with_pattern = {iso for iso, *_ in NATIONS.values()} & set(cfg.postal_code_patterns)
    assert with_pattern == {"CA", "DE", "FR", "GB", "JP", "US"}
    assert {iso for iso, *_ in NATIONS.values()} & cfg.embargoed_countries == {"IR"}  # documented: rejected


def test_every_lineitem_ends_as_an_order_line(loaded) -> None:
    _s, wh, out = loaded
    files = wh.read("SELECT records_received, records_accepted, records_quarantined FROM ops.ingest_files")
    assert files.rows() == [(60_175, 60_175, 0)]
    with wh.connect() as con:
        missing = con.execute(f"""
            SELECT count(*) FROM {_src(out, 'lineitem')} l ANTI JOIN core.order_lines c
              ON c.order_id = 'CSV-TPCH-' || l.l_orderkey AND c.line_no = l.l_linenumber""").fetchone()[0]  # noqa: S608
        extra = con.execute(f"""
            SELECT count(*) FROM core.order_lines c ANTI JOIN {_src(out, 'lineitem')} l
              ON c.order_id = 'CSV-TPCH-' || l.l_orderkey AND c.line_no = l.l_linenumber""").fetchone()[0]  # noqa: S608
        orders = con.execute("SELECT count(*) FROM core.orders").fetchone()[0]
    assert (missing, extra, orders) == (0, 0, 15_000)


# DuckDB multiplies DECIMAL(18, x) operands in 64 bits and fails on overflow: widen first (money.mul's rule)
Q1_CORE = """
    SELECT {key} AS k, sum(quantity) AS sum_qty, sum(line_amount) AS sum_base_price,
           sum(line_amount::DECIMAL(38, 2) * (1 - discount_rate)) AS sum_disc_price,
           sum(line_amount::DECIMAL(38, 2) * (1 - discount_rate) * (1 + tax_rate)) AS sum_charge,
           count(*) AS count_order
    FROM core.order_lines GROUP BY ALL ORDER BY 1"""
Q1_TPCH = """
    SELECT {key} AS k, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
           sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount)) AS sum_disc_price,
           sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
           count(*) AS count_order
    FROM {src} GROUP BY ALL ORDER BY 1"""


def _exact(rows: list[tuple]) -> list[tuple]:
    return [tuple(Decimal(str(v)) if not isinstance(v, str) else v for v in r) for r in rows]


@pytest.mark.parametrize(("core_key", "tpch_key"), [("'all'", "'all'"), ("tax_rate", "l_tax"),
                                                      ("discount_rate", "l_discount")])
def test_q1_over_core_order_lines_equals_duckdb_over_lineitem_exactly(loaded, core_key, tpch_key) -> None:
    _s, wh, out = loaded
    with wh.connect() as con:
        ours = con.execute(Q1_CORE.format(key=core_key)).fetchall()
    theirs = duckdb.connect().execute(Q1_TPCH.format(key=tpch_key, src=_src(out, "lineitem"))).fetchall()
    for r in ours + theirs:  # exact decimals all the way (never a float)
        assert all(isinstance(v, Decimal | int | str) for v in r), r
    assert _exact(ours) == _exact(theirs)
    if core_key == "'all'":
        (_k, qty, base, disc, charge, n), = ours
        assert n == 60_175 and qty > 0 and base > disc > 0 and charge > disc
        # the stored (cent-rounded) discounts differ from the unrounded sum: the rate is what makes Q1 exact
        with wh.connect() as con:
            rounded = con.execute("SELECT sum(line_amount - discount_amount) FROM core.order_lines").fetchone()[0]
        assert rounded != disc


def test_spread_over_real_dates(tmp_path: Path, cache: Path) -> None:
    s = _settings(tmp_path / "home")
    all_days = load_tpch(s.home, sf=SF, days=0, settings=s, cache_dir=cache)
    shift = DEFAULT_END_DATE - TPCH_LAST_ORDER_DATE
    rows = pl.scan_parquet([str(f) for f in all_days.order_files]).select(
        pl.len().alias("n"), pl.col("order_ts").dt.date().min().alias("lo"), pl.col("order_ts").dt.date().max().alias("hi"),
        pl.col("channel_order_ref").n_unique().alias("orders")).collect().row(0, named=True)
    assert rows == {"n": 60_175, "lo": date(1992, 1, 1) + shift, "hi": DEFAULT_END_DATE, "orders": 15_000}
    assert len(all_days.order_files) == 80  # one file per month, 1992-01 … 1998-08
    toml = (s.home / "validation.toml").read_text()
    assert f'history_before = "{DEFAULT_END_DATE.isoformat()}"' in toml
    # the last 30 real days only: what TPC-H has in them, a reload replaces the earlier files
    last = load_tpch(s.home, sf=SF, days=30, settings=s, cache_dir=cache)
    want = duckdb.connect().execute(
        f"SELECT count(*) FROM {_src(last, 'lineitem')} JOIN {_src(last, 'orders')} ON o_orderkey = l_orderkey "  # noqa: S608
        "WHERE o_orderdate >= ?", [TPCH_LAST_ORDER_DATE - timedelta(days=29)]).fetchone()[0]
    got = pl.scan_parquet([str(f) for f in s.landing_dir("csv").glob("tpch_*.parquet")]).select(pl.len()).collect().item()
    assert got == want == last.counts["lineitems"] > 0


def test_cli_bad_arguments_give_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from som_pipeline.cli import main

    assert main(["--home", str(tmp_path / "h"), "tpch", "--days", "-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("som: --days must be 0 (all dates) or positive") and "Traceback" not in err
    assert main(["--home", str(tmp_path / "h"), "tpch", "--sf", "0"]) == 1
    assert capsys.readouterr().err.startswith("som: --sf must be positive")
