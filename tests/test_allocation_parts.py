"""Allocation in parts (``services.allocation.PART_ROWS``): the demo's day planned in parts of a few orders keeps
every rule across the parts -- stock, warehouse capacity, carrier parcels, reservations, ship-complete -- conserves
every reserved unit, and a rerun writes the same tables; fulfilment, which releases one warehouse per
transaction, finishes a release stopped between two warehouses on the next run."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from som_pipeline.services import allocation as alloc_service
from som_pipeline.warehouse import Warehouse
from tests.golden import NOW, demo_settings

RULES = ("allocations_within_stock", "allocations_within_capacity", "allocations_within_reservations",
         "ship_complete_one_warehouse")


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's first run up to allocation (a warehouse file to copy)."""
    from som_pipeline.demo import generate_demo
    from som_pipeline.schemas import REFERENCE_TABLES
    from som_pipeline.services.channels import capture_channel
    from som_pipeline.services.disruptions import ingest_disruptions
    from som_pipeline.services.orders import build_core_orders
    from som_pipeline.services.reference import load_reference_tables
    from som_pipeline.services.stock import run_stock_postings
    from som_pipeline.services.validation import run_validation

    home = tmp_path_factory.mktemp("alloc_parts")
    generate_demo(home, scale=0.08, days=21)
    s = demo_settings(home)
    wh = Warehouse(s.warehouse_path)
    load_reference_tables(wh, s, list(REFERENCE_TABLES))
    for ch in ("shopify", "amazon", "edi", "csv", "b2b_portal"):
        capture_channel(ch, wh, s, now=NOW)
    build_core_orders(wh, now=NOW)
    run_stock_postings(wh, s, NOW)
    run_validation(wh, s, now=NOW)
    with wh.connect() as con:
        ingest_disruptions(con, s, NOW)
    return home


def _copy(validated: Path, tmp_path: Path):
    home = tmp_path / "home"
    shutil.copytree(validated, home)
    s = demo_settings(home)
    return s, Warehouse(s.warehouse_path)


def _tables(wh: Warehouse) -> dict[str, pl.DataFrame]:
    return {t: wh.read(f"SELECT * EXCLUDE (allocated_at) FROM {t} ORDER BY ALL" if t == "core.allocations"  # noqa: S608
                       else f"SELECT * FROM {t} ORDER BY ALL")  # noqa: S608
            for t in ("core.allocations", "core.backorders")}


def _violations(wh: Warehouse) -> dict[str, int]:
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    with wh.connect() as con:
        return {r: run_reconciliation_query(con, sql_file("reconciliation", r)).height for r in RULES}


def _plan(s, wh, monkeypatch, part_rows: int, **tighten: int):
    with wh.connect() as con:
        for column, value in tighten.items():
            table = "ref.warehouses" if column == "daily_capacity_lines" else "ref.carriers"
            con.execute(f"UPDATE {table} SET {column} = ?", [value])  # noqa: S608 (names from the test)
    monkeypatch.setattr(alloc_service, "PART_ROWS", part_rows)
    return alloc_service.run_allocation(wh, s, now=NOW)


def test_parts_keep_every_rule_and_conserve_units(validated, tmp_path, monkeypatch) -> None:
    s, wh = _copy(validated, tmp_path)
    whole = _plan(s, wh, monkeypatch, 10**9)
    assert whole.parts == 1
    s2, wh2 = _copy(validated, tmp_path / "b")
    run = _plan(s2, wh2, monkeypatch, 25)
    assert run.parts > 10 and run.metrics["parts"] == run.parts
    assert _violations(wh2) == dict.fromkeys(RULES, 0)
    # every approved reserved unit is allocated or backordered, per line, in parts as at once
    units = """
        SELECT r.order_id, r.line_no, r.sku, r.quantity_reserved + r.quantity_backordered AS due,
               coalesce(a.q, 0) + coalesce(b.q, 0) AS planned
        FROM core.reservations r
        LEFT JOIN (SELECT order_id, line_no, sku, sum(quantity) q FROM core.allocations GROUP BY ALL) a USING (order_id, line_no, sku)
        LEFT JOIN (SELECT order_id, line_no, sku, sum(quantity) q FROM core.backorders GROUP BY ALL) b USING (order_id, line_no, sku)
        WHERE r.order_status = 'APPROVED' AND r.decision <> 'WAIT_SHIP_COMPLETE'
          AND r.quantity_reserved + r.quantity_backordered <> coalesce(a.q, 0) + coalesce(b.q, 0)"""
    assert wh2.read(units).height == 0
    assert wh.read(units).height == 0
    total = "SELECT (SELECT sum(quantity) FROM core.allocations) + (SELECT sum(quantity) FROM core.backorders) AS u"
    assert wh2.read(total)["u"][0] == wh.read(total)["u"][0]
    # a rerun (watermark cleared: not skipped) plans the same parts the same way
    before = _tables(wh2)
    with wh2.connect() as con:
        con.execute("DELETE FROM ops.watermarks WHERE consumer = 'allocation'")
    assert _plan(s2, wh2, monkeypatch, 25).parts == run.parts
    after = _tables(wh2)
    for t in before:
        assert before[t].equals(after[t]), t


def test_parts_share_warehouse_and_carrier_capacity(validated, tmp_path, monkeypatch) -> None:
    """Capacities the whole day cannot fit: the parts together stay within them (each part plans on what the
    earlier ones left)."""
    s, wh = _copy(validated, tmp_path)
    run = _plan(s, wh, monkeypatch, 25, daily_capacity_lines=40, daily_capacity_parcels=15)
    assert run.parts > 10
    assert _violations(wh) == dict.fromkeys(RULES, 0)
    per_wh = wh.read("SELECT warehouse_id, count(*) AS n FROM core.allocations GROUP BY 1")
    assert per_wh.height and per_wh["n"].max() == 40  # full: the capacity binds, and holds
    per_service = wh.read("SELECT warehouse_id, carrier_id, service, count(*) AS n FROM core.allocations GROUP BY ALL")
    assert per_service["n"].max() <= 15
    assert wh.read("SELECT count(*) AS n FROM core.backorders WHERE reason LIKE '%at capacity%'")["n"][0] > 0


def test_the_first_part_is_planned_as_if_alone(validated, tmp_path, monkeypatch) -> None:
    """Priority order: the earliest orders are planned on the full stock and capacity, as if the later orders did
    not exist (the later parts plan on what they left)."""
    s, wh = _copy(validated, tmp_path)
    _plan(s, wh, monkeypatch, 25)
    with wh.connect() as con:
        first = alloc_service._parts(con)[0]
    assert 0 < first.height < wh.read("SELECT count(DISTINCT order_id) AS n FROM core.reservations")["n"][0]
    s2, wh2 = _copy(validated, tmp_path / "b")
    with wh2.connect() as con:  # only the first part's orders hold reservations
        con.register("first_part", first.to_arrow())
        con.execute("DELETE FROM core.reservations WHERE order_id NOT IN (SELECT order_id FROM first_part)")
    _plan(s2, wh2, monkeypatch, 10**9)
    q = ("SELECT * EXCLUDE (allocated_at) FROM core.allocations WHERE order_id IN (SELECT order_id FROM first_part) "
         "ORDER BY ALL")
    with wh.connect() as con, wh2.connect() as con2:
        con.register("first_part", first.to_arrow())
        con2.register("first_part", first.to_arrow())
        in_parts, alone = con.execute(q).pl(), con2.execute(q).pl()
    assert in_parts.height > 0 and in_parts.equals(alone)


def test_a_release_stopped_between_warehouses_ends_as_a_whole_one(validated, tmp_path, monkeypatch) -> None:
    """Fulfilment releases one warehouse per transaction: a run that dies after the first warehouse leaves that
    one released, and the next run releases the rest and records the statuses the dead run did not -- the same
    waves, tasks, ledger, statuses and events as one clean run."""
    from som_pipeline.services import fulfilment as ful

    tables = ("core.pick_waves", "core.pick_tasks", "core.stock_ledger", "core.order_fulfilment", "core.order_events")

    def dump(wh):
        return {t: wh.read(f"SELECT * FROM {t} ORDER BY ALL") for t in tables}  # noqa: S608 (names from the test)

    s, wh = _copy(validated, tmp_path)
    alloc_service.run_allocation(wh, s, now=NOW)
    ful.run_fulfilment(wh, s, NOW)
    clean = dump(wh)
    assert clean["core.pick_waves"]["warehouse_id"].n_unique() > 1

    s2, wh2 = _copy(validated, tmp_path / "b")
    alloc_service.run_allocation(wh2, s2, now=NOW)
    release_one = ful._release_warehouse
    calls = []

    def dies_on_the_second(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("killed between two warehouses")
        return release_one(*args, **kwargs)

    monkeypatch.setattr(ful, "_release_warehouse", dies_on_the_second)
    with pytest.raises(RuntimeError):
        ful.run_fulfilment(wh2, s2, NOW)
    assert wh2.read("SELECT count(DISTINCT warehouse_id) AS n FROM core.pick_waves")["n"][0] == 1
    monkeypatch.setattr(ful, "_release_warehouse", release_one)
    ful.run_fulfilment(wh2, s2, NOW)
    resumed = dump(wh2)
    for t in tables:
        assert resumed[t].equals(clean[t]), t
