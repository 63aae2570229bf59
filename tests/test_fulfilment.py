"""Fulfilment: the stock ledger's arithmetic, waves, and the demo's floor day end to end (scans with injected
mistakes, a short pick re-planned, receipts, a cycle count, packages with valid labels, confirmations)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import polars as pl
import pytest
from golden import LAST_RUN, demo_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st

from som_pipeline.fulfilment import ledger
from som_pipeline.fulfilment.waves import build_waves, local_dates, releasable
from som_pipeline.services.fulfilment import contents_by_line
from som_pipeline.services.stock import post
from som_pipeline.warehouse import Warehouse

T = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# the ledger
# ------------------------------------------------------------------------------------------------
def _moves(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema={"warehouse_id": pl.String, "sku": pl.String, "kind": pl.String, "q": pl.Int64},
                      orient="row").with_row_index("i")
    return pl.concat([ledger.movements(g, k, reason="t", source_doc="doc", source_line=pl.col("i").cast(pl.String),
                                       occurred_at=pl.lit(T), recorded_at=T, run_id="r", qty="q")
                      for (k,), g in df.group_by("kind", maintain_order=True)])


KIND_SIGN = st.sampled_from([(k, s) for k, s in ledger.SIGNS.items()])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["W1", "W2"]), st.sampled_from(["A", "B"]), KIND_SIGN,
                          st.integers(1, 50)), min_size=1, max_size=30))
def test_the_stock_view_is_the_ledger_arithmetic(tmp_path_factory, rows) -> None:
    """core.v_stock (SQL) and ledger.balances (EFFECTS) agree on any movements."""
    moves = _moves([(w, s, k, q * (sign or 1)) for w, s, (k, sign), q in rows])
    wh = Warehouse(tmp_path_factory.mktemp("ledger") / "w.duckdb")
    with wh.transaction() as con:
        post(con, moves)
        view = con.execute("SELECT warehouse_id, sku, on_hand, reserved, picked, available FROM core.v_stock "
                           "ORDER BY 1, 2").pl()
    assert view.equals(ledger.balances(moves).select(view.columns))


def test_a_units_life_and_reposting_is_a_no_op(tmp_path) -> None:
    moves = _moves([("W1", "A", "opening", 10), ("W1", "A", "reserve", 3), ("W1", "A", "pick", -3),
                    ("W1", "A", "ship", -3)])
    b = ledger.balances(moves).row(0, named=True)
    assert (b["on_hand"], b["reserved"], b["picked"], b["available"]) == (7, 0, 0, 7)
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.transaction() as con:
        assert post(con, moves) == 4
        assert post(con, moves) == 0  # same documents: nothing posted twice
        assert con.execute("SELECT list(seq ORDER BY seq) FROM core.stock_ledger").fetchone()[0] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="ship movements must have qty_delta < 0"):
        _moves([("W1", "A", "ship", 3)])


def test_a_count_opens_new_pairs_and_adjusts_differences_at_its_time() -> None:
    snap = pl.DataFrame({"warehouse_id": ["W1", "W1", "W2"], "sku": ["A", "B", "A"], "on_hand": [8, 5, 4],
                         "as_of": [T] * 3})
    at_count = pl.DataFrame({"warehouse_id": ["W1", "W1"], "sku": ["A", "B"], "on_hand": [10, 5]})
    m = ledger.cycle_count(snap, at_count, snapshot_id="count-2", recorded_at=T, run_id="r")
    got = {(r["warehouse_id"], r["sku"]): (r["kind"], r["qty_delta"]) for r in m.iter_rows(named=True)}
    assert got == {("W1", "A"): ("adjustment", -2), ("W2", "A"): ("opening", 4)}  # W1/B agrees: no movement
    assert "counted 8, ledger had 10" in m.filter(pl.col("kind") == "adjustment")["reason"][0]


# ------------------------------------------------------------------------------------------------
# waves
# ------------------------------------------------------------------------------------------------
def _warehouses() -> pl.DataFrame:
    return pl.DataFrame({"warehouse_id": ["W1"], "timezone": ["America/New_York"], "cutoff_time": [time(15, 0)]})


def _open(*rows) -> pl.DataFrame:
    return pl.DataFrame([{"order_id": o, "line_no": n, "sku": s, "warehouse_id": "W1", "quantity": q,
                          "carrier_id": "UPS", "service": "GROUND", "expected_ship_date": date(2026, 11, 26),
                          "allocated_at": T, "ship_complete": sc, "order_ready": ready}
                         for o, n, s, q, sc, ready in rows])


def test_release_respects_availability_priority_and_ship_complete() -> None:
    days = local_dates(_warehouses(), T)
    assert days["local_date"][0] == date(2026, 11, 26)
    assert days["cutoff_at"][0] == datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 15:00 in New York
    rows = _open(("O1", 1, "A", 4, False, True), ("O2", 1, "A", 4, False, True),  # only 6 available: O1 goes
                 ("O3", 1, "B", 1, True, True), ("O3", 2, "C", 9, True, True),  # C short: the whole order waits
                 ("O4", 1, "B", 1, True, False))  # ship-complete but not all allocated: waits
    avail = pl.DataFrame({"warehouse_id": ["W1"] * 3, "sku": ["A", "B", "C"], "available": [6, 10, 2]})
    go = releasable(rows, avail, days)
    assert sorted(zip(go["order_id"], go["line_no"], strict=True)) == [("O1", 1)]


def test_tasks_follow_a_serpentine_walk() -> None:
    days = local_dates(_warehouses(), T)
    rows = _open(*[(f"O{i}", 1, s, 1, False, True) for i, s in enumerate("ABCDEF")]).join(days, on="warehouse_id")
    bins = pl.DataFrame({"warehouse_id": ["W1"] * 5, "sku": list("ABCDE"),
                         "bin_id": ["a1b1", "a1b5", "a2b2", "a2b7", "a3b1"], "zone": ["Z"] * 5,
                         "aisle": [1, 1, 2, 2, 3], "bay": [1, 5, 2, 7, 1], "level": [0] * 5})
    waves, tasks = build_waves(rows, bins, pl.DataFrame(schema={"warehouse_id": pl.String, "ship_date": pl.Date,
                                                               "waves": pl.Int64}), T)
    walk = tasks.sort("walk_seq")["bin_id"].to_list()
    assert walk == ["a1b1", "a1b5", "a2b7", "a2b2", "a3b1", "UNSLOTTED"]  # up aisle 1, down aisle 2, ...
    assert waves["wave_id"].to_list() == ["W-W1-20261126-01"] and waves["tasks"][0] == 6
    late = build_waves(rows, bins, pl.DataFrame(schema={"warehouse_id": pl.String, "ship_date": pl.Date,
                                                        "waves": pl.Int64}), T.replace(hour=21))[0]
    assert late["ship_date"][0] == date(2026, 11, 27)  # released after the cutoff: ships the next day


def test_contents_split_over_lines_conserve_units() -> None:
    contents = pl.DataFrame({"shipment_id": ["S"] * 3, "package_no": [1, 2, 2], "sku": ["A", "A", "B"],
                             "quantity": [3, 2, 1]})
    lines = pl.DataFrame({"shipment_id": ["S"] * 3, "line_no": [1, 2, 3], "sku": ["A", "A", "B"],
                          "quantity": [4, 1, 1]})
    c = contents_by_line(contents, lines)
    assert c.select("package_no", "line_no", "quantity").rows() == [(1, 1, 3), (2, 1, 1), (2, 2, 1), (2, 3, 1)]


# ------------------------------------------------------------------------------------------------
# the demo's floor day, end to end
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory):
    return demo_pipeline(tmp_path_factory.mktemp("floor"), month_later=False)  # the floor's days are enough


def test_scans_confirm_picks_and_every_mistake_is_accounted_for(floor) -> None:
    _s, wh, m = floor
    scans = wh.read("SELECT outcome, count(*) AS n FROM core.pick_scans GROUP BY 1")
    outcomes = dict(scans.rows())
    assert outcomes["CONFIRMED"] > 0 and outcomes.get("WRONG_ITEM", 0) > 0 and outcomes.get("SHORT_PICK", 0) > 0
    q = dict(wh.read("SELECT reason_code, count(*) AS n FROM ops.quarantine WHERE channel = 'scans' GROUP BY 1").rows())
    assert q == {"DUPLICATE_SCAN": 1, "UNKNOWN_TASK": 1, "BAD_BARCODE": 1}
    files = wh.read("SELECT sum(records_received) AS r, sum(records_accepted) AS a, sum(records_quarantined) AS q "
                    "FROM ops.ingest_files WHERE channel = 'scans'").row(0, named=True)
    assert files["r"] == m["floor"]["scans"]["scans"] == files["a"] + files["q"]


def test_a_short_pick_is_counted_released_told_and_replanned(floor) -> None:
    _s, wh, _m = floor
    short = wh.read("SELECT * FROM core.pick_tasks WHERE status = 'SHORT'")
    assert short.height > 0
    t = short.row(0, named=True)
    moves = wh.read("SELECT kind, qty_delta FROM core.stock_ledger WHERE source_doc = ? AND source_line = 'short' "
                    "ORDER BY seq", [t["task_id"]])
    missing = t["quantity"] - t["picked_qty"]
    assert moves.rows() == [("release", -missing), ("adjustment", -missing)]
    ev = wh.read("SELECT reason FROM core.order_events WHERE order_id = ? AND reason LIKE 'short pick%'",
                 [t["order_id"]])
    assert ev.height >= 1 and t["task_id"] in ev["reason"][0]
    # re-planned in the same run: the short units are on another allocation or backordered, never lost
    held = wh.read("SELECT coalesce(sum(quantity), 0) AS a FROM core.allocations WHERE order_id = ? AND line_no = ?",
                   [t["order_id"], t["line_no"]])["a"][0]
    back = wh.read("SELECT coalesce(sum(quantity), 0) AS b FROM core.backorders WHERE order_id = ? AND line_no = ?",
                   [t["order_id"], t["line_no"]])["b"][0]
    reserved = wh.read("SELECT coalesce(sum(quantity_requested), 0) AS r FROM core.reservations "
                       "WHERE order_id = ? AND line_no = ?", [t["order_id"], t["line_no"]])["r"][0]
    assert held + back >= t["picked_qty"] and held + back <= reserved


def test_packages_carry_valid_labels_and_fit_their_cartons(floor) -> None:
    import tracking_numbers

    from som_pipeline.fulfilment.labels import is_valid_sscc

    _s, wh, _m = floor
    p = wh.read("SELECT p.*, s.carrier_id, o.channel FROM core.packages p JOIN core.shipments s USING (shipment_id) "
                "JOIN core.orders o USING (order_id)")
    assert p.height > 0
    for r in p.iter_rows(named=True):
        tn = tracking_numbers.get_tracking_number(r["tracking_number"])
        assert tn is not None and not tn.validation_errors, r["tracking_number"]
        assert tn.courier.code == {"UPS": "ups", "FEDEX": "fedex", "DHL": "dhl", "USPS": "usps"}[r["carrier_id"]]
        assert (r["sscc"] is not None) == (r["channel"] == "edi")
        assert r["sscc"] is None or (len(r["sscc"]) == 18 and is_valid_sscc(r["sscc"]))
    cartons = wh.read("SELECT carton_id, max_weight_kg FROM ref.cartons")
    over = p.join(cartons, on="carton_id").filter(pl.col("gross_weight_kg") > pl.col("max_weight_kg") + 1e-9)
    assert over.height == 0
    # units conserve: what the packages hold is what the shipments shipped
    a = wh.read("SELECT sum(quantity) AS n FROM core.package_contents")["n"][0]
    assert a == wh.read("SELECT sum(quantity) AS n FROM core.shipment_lines")["n"][0]


def test_confirmations_are_written_once_per_channel(floor) -> None:
    s, wh, _m = floor
    docs = wh.read("SELECT kind, channel, path FROM ops.outbound_documents")
    assert set(docs["kind"]) == {"x12_856", "shopify_fulfillment", "amazon_confirm_shipment", "portal_shipment",
                                 "manifest", "invoice_pdf", "x12_810"}  # billing's invoices share the ledger
    for path in docs.filter(pl.col("kind") != "portal_shipment")["path"]:
        assert (s.home / "outbound").as_posix() in path
    # the portal's orders: their shipments written back to the portal database, once
    import sqlite3

    with sqlite3.connect(s.home / "b2b_portal.sqlite") as db:
        portal = db.execute("SELECT count(*), count(DISTINCT shipment_id) FROM portal_shipments").fetchone()
    assert portal[0] == portal[1] == docs.filter(pl.col("kind") == "portal_shipment").height > 0
    # manifests: one per carrier x warehouse x ship date whose cutoff has passed (by the last run: every ship date
    # before it)
    keys = set(wh.read("SELECT key FROM ops.outbound_documents WHERE kind = 'manifest'")["key"])
    due = set(wh.read("SELECT DISTINCT carrier_id || '|' || warehouse_id || '|' || strftime(ship_date, '%Y-%m-%d') "
                      "AS k FROM core.shipments WHERE ship_date < DATE '2026-11-29'")["k"])
    assert due and keys == due
    edi = [p for p in docs.filter(pl.col("kind") == "x12_856")["path"]]
    text = open(edi[0], encoding="utf-8").read()
    segs = [x.strip() for x in text.split("~") if x.strip()]
    st_i = next(i for i, x in enumerate(segs) if x.startswith("ST*856"))
    se = next(x for x in segs[st_i:] if x.startswith("SE*"))
    assert int(se.split("*")[1]) == next(i for i, x in enumerate(segs[st_i:], 1) if x.startswith("SE*"))
    shipped = wh.read("SELECT count(*) AS n FROM core.shipments s JOIN core.orders o USING (order_id) "
                      "WHERE o.channel = 'edi'")["n"][0]
    assert docs.filter(pl.col("kind") == "x12_856").height == shipped


def test_receipts_and_the_count_are_posted_once(floor) -> None:
    s, wh, m = floor
    kinds = dict(wh.read("SELECT kind, count(*) AS n FROM core.stock_ledger GROUP BY 1").rows())
    assert kinds["receipt"] + kinds.get("transfer_in", 0) == wh.read("SELECT count(*) AS n FROM core.receipts")["n"][0]
    assert kinds.get("transfer_in", 0) == kinds.get("transfer_out", 0)
    q = dict(wh.read("SELECT reason_code, count(*) AS n FROM ops.quarantine WHERE channel = 'receipts' GROUP BY 1")
             .rows())
    assert q == {"UNKNOWN_PRODUCT": 1, "BAD_QUANTITY": 1}
    counts = wh.read("SELECT * FROM core.stock_ledger WHERE kind = 'adjustment' AND reason LIKE 'cycle count%'")
    assert counts.height == m["floor"]["counted"]["differences"] == 3
    # fulfilment statuses and their events
    st_ = dict(wh.read("SELECT status, count(*) AS n FROM core.order_fulfilment GROUP BY 1").rows())
    assert st_.get("SHIPPED", 0) > 0
    shipped_events = wh.read("SELECT count(*) AS n FROM core.order_events WHERE to_status = 'SHIPPED'")["n"][0]
    assert shipped_events == st_["SHIPPED"]
    assert LAST_RUN > T
