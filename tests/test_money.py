from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from som_pipeline import money


def test_mul_is_exact_where_plain_polars_rounds():
    df = pl.DataFrame(
        {"p": [Decimal("2.3333")], "r": [Decimal("0.015")]},
        schema={"p": pl.Decimal(18, 4), "r": pl.Decimal(9, 6)},
    )
    naive = df.select(pl.col("p") * pl.col("r")).item()
    exact = df.select(money.mul(pl.col("p"), 4, pl.col("r"), 6)).item()
    assert exact == Decimal("0.0349995")
    assert naive != exact  # the trap the helper exists for


def test_round_money_is_half_away_from_zero_once():
    df = pl.DataFrame({"x": [Decimal("1.005"), Decimal("-1.005"), Decimal("2.675"), Decimal("0.004")]},
                      schema={"x": pl.Decimal(38, 3)})
    out = df.select(money.round_money(pl.col("x"))).to_series().to_list()
    assert out == [Decimal("1.01"), Decimal("-1.01"), Decimal("2.68"), Decimal("0.00")]


def test_parse_decimal_refuses_what_it_would_have_to_guess():
    s = pl.DataFrame({"t": ["1.5", " 2 ", "1e3", "1,234.50", "0.12345", "", None, "-3.25", ".5", "$4"]})
    v, ok = money.parse_decimal(pl.col("t"), 4)
    out = s.select(v.alias("v"), ok.alias("ok"))
    assert out["ok"].to_list() == [True, True, False, False, False, True, True, True, True, False]
    assert out["v"].to_list()[:2] == [Decimal("1.5"), Decimal("2")]


def test_parse_int():
    s = pl.DataFrame({"t": ["3", "3.0", "3.5", "-1", "x", "1e2", "+4", "", "3.0000"]})
    v, ok = money.parse_int(pl.col("t"))
    out = s.select(v.alias("v"), ok.alias("ok"))
    assert out["ok"].to_list() == [True, True, False, True, False, False, True, True, True]
    assert out["v"].to_list() == [3, 3, None, -1, None, None, 4, None, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.decimals(Decimal("0.0001"), Decimal("99999"), places=4)),
                min_size=1, max_size=50))
def test_line_extension_matches_python_decimal(rows):
    """quantity x unit price rounded once per line equals an independent Decimal computation."""
    df = pl.DataFrame({"q": [r[0] for r in rows], "p": [r[1] for r in rows]},
                      schema={"q": pl.Int64, "p": pl.Decimal(18, 4)})
    got = df.select(money.round_money(money.mul(pl.col("p"), 4, pl.col("q"), 0))).to_series().to_list()
    want = [(p * q).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for q, p in rows]
    assert got == want
    assert sum(got) == sum(want)
