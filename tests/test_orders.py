"""Dedup and versions: identical re-send ignored, change = new version, latest (by channel time) wins."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from som_pipeline.orders import build_orders, daily_sales
from som_pipeline.schemas import CustomerAliasModel, OrderModel, empty
from tests.helpers import capture, order_rows, staged

NO_ALIASES = empty(CustomerAliasModel)


def test_identical_resend_is_ignored_and_change_makes_a_version():
    v1 = capture(order_rows("A", [{"sku": "S1", "quantity": 2, "unit_price": "5.00"}]), sha="1" * 64)
    same = capture(order_rows("A", [{"sku": "S1", "quantity": 2, "unit_price": "5.00"}]), sha="2" * 64)
    v2 = capture(order_rows("A", [{"sku": "S1", "quantity": 3, "unit_price": "5.00"}]), sha="3" * 64)
    t = build_orders(*staged(v1, same, v2), NO_ALIASES)
    assert t.orders.height == 1
    assert t.orders["version"].to_list() == [2]
    assert t.order_lines["quantity"].to_list() == [3]
    assert t.order_versions["version"].to_list() == [1, 2]
    assert t.order_line_versions.height == 2
    OrderModel.validate(t.orders, lazy=True)


def test_late_arriving_older_update_does_not_win():
    newer = capture(order_rows("A", [{"sku": "S1", "quantity": 9, "unit_price": "1"}],
                               source_updated_at="2026-10-05T00:00:00Z"), sha="1" * 64)
    older = capture(order_rows("A", [{"sku": "S1", "quantity": 1, "unit_price": "1"}],
                               source_updated_at="2026-10-03T00:00:00Z"), sha="2" * 64,
                    at=datetime(2026, 10, 6, tzinfo=UTC))
    t = build_orders(*staged(newer, older), NO_ALIASES)
    assert t.order_lines["quantity"].to_list() == [9]
    assert t.order_versions.sort("version")["source_updated_at"].dt.day().to_list() == [3, 5]


def test_one_live_order_per_channel_ref_and_ids():
    a = capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}]), sha="1" * 64)
    b = capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}]), channel="shopify", sha="2" * 64)
    t = build_orders(*staged(a, b), NO_ALIASES)
    assert sorted(t.orders["order_id"].to_list()) == ["CSV-A", "SHP-A"]


def test_same_po_on_two_channels_is_flagged():
    aliases = pl.DataFrame({"channel": ["csv", "edi"], "external_ref": ["C1", "PARTNER1"], "customer_id": ["CUST-1"] * 2})
    a = capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}], customer_po="PO-77"), sha="1" * 64)
    b = capture(order_rows("X:PO-77", [{"sku": "S", "quantity": 1, "unit_price": "1"}], customer_po="po-77 ",
                           customer_ref="PARTNER1"), channel="edi", sha="2" * 64)
    c = capture(order_rows("B", [{"sku": "S", "quantity": 1, "unit_price": "1"}], customer_po="PO-78"), sha="3" * 64)
    t = build_orders(*staged(a, b, c), aliases)
    d = t.probable_duplicates
    assert sorted(d["order_id"].to_list()) == ["CSV-A", "EDI-X:PO-77"]
    assert d["channels_involved"].to_list() == [2, 2]
    assert set(t.orders["customer_id"].to_list()) == {"CUST-1"}


def test_daily_sales_sums_exactly():
    a = capture(order_rows("A", [{"sku": "S", "quantity": 3, "unit_price": "1.0050", "tax_rate": "0.0825"}]), sha="1" * 64)
    b = capture(order_rows("B", [{"sku": "S", "quantity": 1, "unit_price": "0.10"},
                                 {"sku": "T", "quantity": 2, "unit_price": "0.10"}]), sha="2" * 64)
    t = build_orders(*staged(a, b), NO_ALIASES)
    d = daily_sales(t.orders, t.order_lines, datetime(2026, 10, 1).date(), datetime(2026, 10, 1).date())
    assert d.height == 1
    row = d.row(0, named=True)
    assert (row["orders"], row["lines"], row["units"]) == (2, 3, 6)
    assert str(row["items_subtotal"]) == "3.32"  # 3.02 + 0.10 + 0.20
    assert str(row["order_total"]) == str(t.orders["order_total"].sum())


def _core_tables(wh) -> dict[str, pl.DataFrame]:
    from som_pipeline.services.orders import CORE_ORDERS

    with wh.connect() as con:
        return {t: con.execute(f"SELECT * FROM {t}").pl().sort(pl.all()) for t in CORE_ORDERS.writes}


def test_incremental_core_orders_equal_a_full_rebuild(tmp_path):
    """Runs that each see a few new observations (a new order, an identical re-send, a new version, a PO
    duplicate forming then dissolving, an alias arriving late) end with exactly the tables of a full rebuild,
    and each run rebuilds only the orders it touched."""
    from som_pipeline.services.capture import write_captured
    from som_pipeline.services.orders import build_core_orders
    from som_pipeline.warehouse import Warehouse, insert_frame

    wh = Warehouse(tmp_path / "w.duckdb")
    line = [{"sku": "S", "quantity": 1, "unit_price": "1"}]
    steps = [
        [capture(order_rows("A", line, customer_po="PO-1"), sha="1" * 64),
         capture(order_rows("B", line, customer_po="PO-2"), sha="2" * 64)],
        [capture(order_rows("A", line, customer_po="PO-1"), sha="3" * 64),  # identical re-send: no new version
         capture(order_rows("C", line, customer_po="po-1 "), sha="4" * 64)],  # same PO as A: duplicate
        [capture(order_rows("C", [{"sku": "S", "quantity": 2, "unit_price": "1"}], customer_po="PO-9"),
                 sha="5" * 64)],  # C changes PO: the duplicate group dissolves
        [],  # nothing new, but the alias arrives: every C1 order gets its customer
    ]
    rebuilt = []
    for i, caps in enumerate(steps):
        with wh.transaction() as con:
            for c in caps:
                write_captured(con, c)
            if i == 3:
                insert_frame(con, "ref.customer_aliases", pl.DataFrame(
                    {"channel": ["csv"], "external_ref": ["C1"], "customer_id": ["CUST-1"]}))
        d = build_core_orders(wh)
        rebuilt.append(sorted(d.tables.orders["order_id"]))
        if i == 1:
            assert sorted(d.tables.probable_duplicates["order_id"]) == ["CSV-A", "CSV-C"]
    assert rebuilt == [["CSV-A", "CSV-B"], ["CSV-A", "CSV-C"], ["CSV-C"], ["CSV-A", "CSV-B", "CSV-C"]]
    incremental = _core_tables(wh)
    assert incremental["core.probable_duplicates"].height == 0
    assert set(incremental["core.orders"]["customer_id"]) == {"CUST-1"}
    assert incremental["core.order_versions"].height == 4  # A1, B1, C1, C2
    assert build_core_orders(wh).tables.orders.height == 0  # nothing new: nothing rebuilt
    build_core_orders(wh, full=True)
    full = _core_tables(wh)
    for t, df in incremental.items():
        assert df.equals(full[t]), t
    d = build_core_orders(wh, full=True, batch_orders=1)  # one order per batch: the same tables
    assert d.rows_written["orders"] == 3 and d.tables.orders.height == 1
    for t, df in _core_tables(wh).items():
        assert df.equals(full[t]), t


def test_a_duplicate_group_split_over_batches_is_complete(tmp_path):
    from som_pipeline.services.capture import write_captured
    from som_pipeline.services.orders import build_core_orders
    from som_pipeline.warehouse import Warehouse

    wh = Warehouse(tmp_path / "w.duckdb")
    line = [{"sku": "S", "quantity": 1, "unit_price": "1"}]
    with wh.transaction() as con:
        for i, ref in enumerate("ABC"):
            write_captured(con, capture(order_rows(ref, line, customer_po="PO-1"), sha=str(i) * 64))
    build_core_orders(wh, batch_orders=1)
    dup = wh.read("SELECT order_id, other_order_ids FROM core.probable_duplicates ORDER BY 1")
    assert dup.rows() == [("CSV-A", "CSV-B,CSV-C"), ("CSV-B", "CSV-A,CSV-C"), ("CSV-C", "CSV-A,CSV-B")]
