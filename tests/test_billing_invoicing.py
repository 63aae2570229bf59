"""Invoice-line arithmetic (billing.invoicing): partial shipments bill each unit once and add up to the order line
exactly; the rounding rules; gapless numbers; credit notes; and the exactness anchor -- TPC-H lineitem (tpchgen-cli,
SF 0.01) priced as invoice lines reproduces Q1's unrounded sums exactly and its cent-rounded totals equal an
independent recomputation in DuckDB DECIMAL."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from som_pipeline.billing.invoicing import (
    credit_lines,
    invoice_totals,
    number_documents,
    price_lines,
    restocking_fee_lines,
    shipping_lines,
)
from som_pipeline.demo.tpch import lineitem_invoice_todo

D = Decimal
MONEY = pl.Decimal(18, 2)
RATE = pl.Decimal(9, 6)


def _todo(rows: list[dict]) -> pl.DataFrame:
    base = {"prior_qty": 0, "discount_amount": D("0"), "discount_rate": None, "tax_source": "table",
            "tax_amount": D("0"), "tax_rate": None, "prices_include_tax": False}
    return pl.DataFrame([{**base, **r} for r in rows], schema_overrides={
        "line_amount": MONEY, "discount_amount": MONEY, "discount_rate": RATE, "tax_amount": MONEY,
        "tax_rate": RATE, "basis_at": pl.Datetime("us")})


def _r(x: Decimal) -> Decimal:
    return x.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def test_partial_shipments_bill_each_unit_once_and_add_up_to_the_order_line():
    t = [datetime(2026, 3, d) for d in (1, 2, 3)]
    todo = _todo([
        {"shipment_id": s, "order_id": "O1", "line_no": 1, "quantity": 1, "ordered_qty": 3, "basis_at": at,
         "line_amount": D("10.00"), "discount_amount": D("0.50"), "discount_rate": D("0.05"), "tax_rate": D("0.0825")}
        for s, at in zip(("S3", "S1", "S2"), (t[2], t[0], t[1]), strict=True)])
    p = price_lines(todo).lines.sort("c0")
    assert p["shipment_id"].to_list() == ["S1", "S2", "S3"]  # units numbered in shipping order
    assert p["extended_amount"].to_list() == [D("3.33"), D("3.34"), D("3.33")]  # A(1)=3.33 A(2)=6.67 A(3)=10.00
    assert p["discount_amount"].to_list() == [D("0.17"), D("0.16"), D("0.17")]
    assert sum(p["extended_amount"]) == D("10.00") and sum(p["discount_amount"]) == D("0.50")
    # rule 4: tax = round(net x rate) per invoice line
    assert p["tax_amount"].to_list() == [_r(n * D("0.0825")) for n in p["net_amount"]]
    assert p["line_total"].to_list() == [n + x for n, x in zip(p["net_amount"], p["tax_amount"], strict=True)]
    # unrounded: extended x (1 - rate), and x tax rate
    assert p["net_unrounded"].to_list() == [e * (1 - D("0.05")) for e in p["extended_amount"]]


def test_prior_invoices_and_over_shipment():
    todo = _todo([{"shipment_id": "S9", "order_id": "O1", "line_no": 1, "quantity": 3, "ordered_qty": 4,
                   "prior_qty": 2, "basis_at": datetime(2026, 3, 5), "line_amount": D("10.00")}])
    pr = price_lines(todo)
    row = pr.lines.row(0, named=True)
    assert (row["c0"], row["billed_qty"], row["extended_amount"]) == (2, 2, D("5.00"))  # 2 of the 3 units billable
    assert pr.excess.rows() == [("S9", "O1", 1, 1)]
    nothing = price_lines(todo.with_columns(pl.lit(4).alias("prior_qty")))
    assert nothing.lines.height == 0 and nothing.excess["units"].to_list() == [3]


def test_channel_tax_is_shared_and_prices_including_tax():
    todo = _todo([
        {"shipment_id": "A", "order_id": "O", "line_no": 1, "quantity": 1, "ordered_qty": 2,
         "basis_at": datetime(2026, 1, 1), "line_amount": D("20.00"), "tax_source": "channel",
         "tax_amount": D("3.19"), "prices_include_tax": True},
        {"shipment_id": "B", "order_id": "O", "line_no": 1, "quantity": 1, "ordered_qty": 2,
         "basis_at": datetime(2026, 1, 2), "line_amount": D("20.00"), "tax_source": "channel",
         "tax_amount": D("3.19"), "prices_include_tax": True}])
    p = price_lines(todo).lines.sort("c0")
    assert p["tax_amount"].to_list() == [D("1.60"), D("1.59")]  # round(3.19/2)=1.60, then 3.19-1.60
    assert p["line_total"].to_list() == [D("10.00"), D("10.00")]  # tax included in the price


@settings(max_examples=60, deadline=None)
@given(q=st.integers(1, 40), cents=st.integers(0, 10**9), disc=st.integers(0, 100), tax=st.integers(0, 10**7),
       splits=st.lists(st.integers(1, 10), min_size=1, max_size=8))
def test_any_split_adds_up_exactly(q, cents, disc, tax, splits):
    amount = D(cents) / 100
    discount = _r(amount * disc / 100)
    chunks, left = [], q
    for s in splits:
        if left == 0:
            break
        chunks.append(min(s, left))
        left -= chunks[-1]
    if left:
        chunks.append(left)
    todo = _todo([{"shipment_id": f"S{i:02d}", "order_id": "O", "line_no": 1, "quantity": n, "ordered_qty": q,
                   "basis_at": datetime(2026, 1, 1, 0, i), "line_amount": amount, "discount_amount": discount,
                   "tax_source": "channel", "tax_amount": D(tax) / 100} for i, n in enumerate(chunks)])
    p = price_lines(todo).lines
    assert p["billed_qty"].sum() == q
    assert sum(p["extended_amount"]) == amount and sum(p["discount_amount"]) == discount
    assert sum(p["tax_amount"]) == D(tax) / 100
    assert all(x >= 0 for x in p["extended_amount"])


def test_shipping_line_and_totals():
    first = pl.DataFrame({"shipment_id": ["S1", "S2"], "order_id": ["O1", "O2"],
                          "shipping_total": [D("7.95"), D("0")], "shipping_tax": [D("0"), D("0")],
                          "tax_source": ["table", "table"], "shipping_rate": [D("0.0825"), None],
                          "prices_include_tax": [False, False]},
                         schema_overrides={"shipping_total": MONEY, "shipping_tax": MONEY, "shipping_rate": RATE})
    s = shipping_lines(first)
    assert s.height == 1 and s["tax_amount"].item() == D("0.66") and s["line_total"].item() == D("8.61")
    lines = pl.concat([
        s.select(pl.lit("INV1").alias("invoice_id"), pl.lit("shipping").alias("kind"), "extended_amount",
                 "discount_amount", "net_amount", "tax_amount", "line_total"),
        pl.DataFrame({"invoice_id": ["INV1"], "kind": ["item"], "extended_amount": [D("10.00")],
                      "discount_amount": [D("1.00")], "net_amount": [D("9.00")], "tax_amount": [D("0.74")],
                      "line_total": [D("9.74")]}, schema_overrides={c: MONEY for c in (
                          "extended_amount", "discount_amount", "net_amount", "tax_amount", "line_total")})])
    t = invoice_totals(lines).row(0, named=True)
    assert (t["subtotal"], t["discount_total"], t["shipping_total"], t["tax_total"], t["total"]) == (
        D("10.00"), D("1.00"), D("7.95"), D("1.40"), D("18.35"))
    assert t["subtotal"] - t["discount_total"] + t["shipping_total"] + t["tax_total"] == t["total"]


def test_numbers_are_gapless_per_entity_and_year():
    docs = pl.DataFrame({"legal_entity": ["US01", "US01", "DE01", "US01"], "fiscal_year": [2026, 2026, 2026, 2027],
                         "k": ["a", "b", "c", "d"]})
    last = pl.DataFrame({"legal_entity": ["US01"], "fiscal_year": [2026], "last_seq": [41]})
    n = number_documents(docs, last, "invoice")
    assert n["number"].to_list() == ["INV-US01-2026-000042", "INV-US01-2026-000043", "INV-DE01-2026-000001",
                                     "INV-US01-2027-000001"]
    assert number_documents(docs.head(1), last.head(0), "credit_note")["number"].item() == "CN-US01-2026-000001"


def test_credit_lines_reverse_exactly_in_pieces_and_price_corrections():
    inv = pl.DataFrame({"billed_qty": [3, 3, 3], "extended_amount": [D("10.00")] * 3,
                        "discount_amount": [D("0.50")] * 3, "net_amount": [D("9.50")] * 3,
                        "tax_amount": [D("0.78")] * 3, "tax_rate": [D("0.0825")] * 3, "tax_source": ["table"] * 3,
                        "prices_include_tax": [False] * 3, "credited_qty": [0, 1, None],
                        "credit_qty": [1, 2, None], "credit_amount": [None, None, D("2.00")]},
                       schema_overrides={"extended_amount": MONEY, "discount_amount": MONEY, "net_amount": MONEY,
                                         "tax_amount": MONEY, "tax_rate": RATE, "credit_amount": MONEY})
    c = credit_lines(inv)
    first, rest, corr = c.rows(named=True)
    assert first["extended_amount"] + rest["extended_amount"] == D("10.00")
    assert first["tax_amount"] + rest["tax_amount"] == D("0.78")
    assert first["line_total"] + rest["line_total"] == D("10.28")
    assert (corr["qty"], corr["net_amount"], corr["tax_amount"], corr["line_total"]) == (0, D("2.00"), D("0.17"),
                                                                                         D("2.17"))


def test_restocking_fee_is_an_untaxed_line_kept_from_the_credit():
    """Rule 7: the fee a return keeps is a line of its own (positive, untaxed, no units) after the item line it is
    charged on; the note's total is the credited lines less the fee, and its header still adds up."""
    money = ("extended_amount", "discount_amount", "net_amount", "tax_amount", "line_total", "restocking_fee")
    credited = pl.DataFrame({
        "credit_note_id": ["CN1", "CN1", "CN1"], "line_no": [1, 2, 3], "kind": ["item", "item", "shipping"],
        "sku": ["A", "B", None], "qty": [2, 1, 1], "quantity": [2, 1, 1],
        "extended_amount": [D("20.00"), D("7.50"), D("7.95")], "discount_amount": [D("0.33"), D("0"), D("0")],
        "net_amount": [D("19.67"), D("7.50"), D("7.95")], "tax_amount": [D("1.62"), D("0.62"), D("0.50")],
        "line_total": [D("21.29"), D("8.12"), D("8.45")], "tax_rate": [D("0.0825"), D("0.0825"), D("0.0625")],
        "restocking_fee": [D("2.95"), None, D("0")]}, schema_overrides={**{c: MONEY for c in money}, "tax_rate": RATE})
    fee = restocking_fee_lines(credited)
    assert fee.select("line_no", "kind", "sku", "qty", "quantity", "extended_amount", "discount_amount", "net_amount",
                      "tax_amount", "line_total", "tax_rate").rows() == [
        (1, "restocking_fee", "A", 0, 0, D("2.95"), D("0.00"), D("2.95"), D("0.00"), D("2.95"), None)]
    t = invoice_totals(pl.concat([credited, fee]), key="credit_note_id").row(0, named=True)
    assert (t["subtotal"], t["discount_total"], t["shipping_total"], t["tax_total"], t["restocking_fee_total"],
            t["total"], t["line_count"]) == (D("27.50"), D("0.33"), D("7.95"), D("2.74"), D("2.95"), D("34.91"), 4)
    assert t["total"] == D("21.29") + D("8.12") + D("8.45") - D("2.95")
    assert t["subtotal"] - t["discount_total"] + t["shipping_total"] + t["tax_total"] - t["restocking_fee_total"] \
        == t["total"]
    # an invoice has no fee: its totals are as before
    assert invoice_totals(credited, key="credit_note_id")["restocking_fee_total"].item() == D("0.00")
    # a fee is never above the net it is kept from, never negative, never on shipping
    for row, value in ((0, D("19.68")), (0, D("-0.01")), (2, D("0.01"))):
        bad = credited.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, MONEY))
                                    .otherwise(pl.col("restocking_fee")).alias("restocking_fee"))
        with pytest.raises(ValueError, match="restocking fee"):
            restocking_fee_lines(bad)
    assert restocking_fee_lines(credited.with_columns(pl.lit(D("19.67"), MONEY).alias("restocking_fee"))
                                .head(1))["line_total"].item() == D("19.67"), "the whole net at a 100 % rate"


# --- the exactness anchor: TPC-H lineitem -------------------------------------------------------------------

Q1_FILTER = "l_shipdate <= DATE '1998-12-01' - INTERVAL 90 DAY"


@pytest.fixture(scope="module")
def lineitem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from som_pipeline.demo.tpch import generate

    return generate(0.01, tmp_path_factory.mktemp("tpch") / "sf0.01") / "lineitem.parquet"


def test_tpch_q1_unrounded_sums_are_exact_and_rounded_totals_match_duckdb(lineitem):
    lines = price_lines(lineitem_invoice_todo(lineitem)).lines
    assert lines.height == 60_175 and (lines["billed_qty"] == lines["quantity"]).all()
    ours = (lines.filter(pl.col("l_shipdate") <= pl.date(1998, 9, 2))
            .group_by("l_returnflag", "l_linestatus")
            .agg(pl.col("net_unrounded").sum(), (pl.col("net_unrounded") + pl.col("tax_unrounded")).sum().alias("charge"),
                 pl.col("line_total").sum(), pl.col("tax_amount").sum(), pl.len())
            .sort("l_returnflag", "l_linestatus"))
    src = f"read_parquet('{lineitem}')"
    official = duckdb.connect().execute(f"""
        SELECT l_returnflag, l_linestatus,
               sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice::DECIMAL(38, 2) * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               count(*) AS n
        FROM {src} WHERE {Q1_FILTER} GROUP BY ALL ORDER BY ALL""").fetchall()  # noqa: S608
    assert len(official) == 4
    for o, (rf, ls, disc_price, charge, n) in zip(ours.iter_rows(named=True), official, strict=True):
        assert (o["l_returnflag"], o["l_linestatus"], o["len"]) == (rf, ls, n)
        assert o["net_unrounded"] == disc_price, (rf, ls)  # exact, not approximately
        assert o["charge"] == charge, (rf, ls)
    # the cent-rounded invoice totals, recomputed independently in DuckDB DECIMAL by the documented rule
    rounded = duckdb.connect().execute(f"""
        WITH l AS (
            SELECT l_returnflag, l_linestatus, l_extendedprice::DECIMAL(18, 2) AS ext,
                   round(l_extendedprice::DECIMAL(38, 2) * l_discount::DECIMAL(38, 6), 2) AS disc,
                   l_tax::DECIMAL(9, 6) AS rate
            FROM {src} WHERE {Q1_FILTER}),
        n AS (SELECT *, ext - disc AS net FROM l),
        t AS (SELECT *, round(net::DECIMAL(38, 2) * rate::DECIMAL(38, 6), 2) AS tax FROM n)
        SELECT l_returnflag, l_linestatus, sum(tax), sum(net + tax) FROM t GROUP BY ALL ORDER BY ALL""").fetchall()  # noqa: S608
    assert [(r[0], r[1], r[2], r[3]) for r in rounded] == ours.select(
        "l_returnflag", "l_linestatus", "tax_amount", "line_total").rows()
