"""One writer at a time, transactions that roll back, an analyst copy readable during a write."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from som_pipeline.schemas import IngestRedropModel, conform
from som_pipeline.warehouse import Warehouse, WarehouseLockTimeout, insert_frame, replace_where


def _redrop(name: str) -> pl.DataFrame:
    return conform(pl.DataFrame([{"source_file": name, "channel": "csv", "sha256": "x", "first_source_file": "y",
                                  "seen_at": datetime(2026, 1, 1, tzinfo=UTC)}]), IngestRedropModel)


def _writer(path: str, tag: str, n: int, hold: float) -> None:
    wh = Warehouse(path, lock_timeout_s=120)
    for i in range(n):
        with wh.transaction() as con:
            insert_frame(con, "ops.ingest_redrops", _redrop(f"{tag}-{i}"))
            time.sleep(hold)


def test_concurrent_writer_processes_queue_instead_of_failing(tmp_path: Path):
    path = str(tmp_path / "w.duckdb")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"p{k}", 5, 0.02)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert Warehouse(path).read("SELECT count(*) AS n FROM ops.ingest_redrops")["n"][0] == 15


def test_lock_timeout_is_a_clear_error(tmp_path: Path):
    a = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=0.3)
    b = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=0.3)
    with a.connect():
        with pytest.raises(WarehouseLockTimeout, match="another writer"):
            with b.connect():
                pass


def test_transaction_rolls_back_everything(tmp_path: Path):
    wh = Warehouse(tmp_path / "w.duckdb")
    with pytest.raises(RuntimeError):
        with wh.transaction() as con:
            insert_frame(con, "ops.ingest_redrops", _redrop("a"))
            raise RuntimeError("boom")
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops")["n"][0] == 0


def test_partition_replace_is_idempotent(tmp_path: Path):
    wh = Warehouse(tmp_path / "w.duckdb")
    for _ in range(3):
        with wh.transaction() as con:
            replace_where(con, "ops.ingest_redrops", "source_file LIKE ?", ["a%"], pl.concat([_redrop("a1"), _redrop("a2")]))
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops")["n"][0] == 2


def test_undeclared_table_is_refused(tmp_path: Path):
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.transaction() as con, pytest.raises(KeyError):
        insert_frame(con, "ops.quarantine; DROP TABLE core.orders", _redrop("a"))


def _hold_writer(path: str, started, release) -> None:
    wh = Warehouse(path)
    with wh.transaction() as con:
        insert_frame(con, "ops.ingest_redrops", _redrop("during"))
        started.set()
        release.wait(30)


def test_analyst_copy_readable_while_a_writer_holds_the_warehouse(tmp_path: Path):
    wh = Warehouse(tmp_path / "som.duckdb", lock_timeout_s=30)
    with wh.transaction() as con:
        insert_frame(con, "ops.ingest_redrops", _redrop("before"))
    copy = wh.publish_analytics_copy(tmp_path / "som_analytics.duckdb")
    ctx = mp.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_writer, args=(str(wh.path), started, release))
    p.start()
    try:
        assert started.wait(60)
        # the main file is held by the writer: a read-only open fails (DuckDB's single-writer rule) ...
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(wh.path), read_only=True)
        # ... but the analyst copy opens and answers
        with duckdb.connect(str(copy), read_only=True) as con:
            assert con.execute("SELECT source_file FROM ops.ingest_redrops").fetchall() == [("before",)]
    finally:
        release.set()
        p.join(60)
    assert p.exitcode == 0
    wh.publish_analytics_copy(copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT source_file FROM ops.ingest_redrops").fetchall()) == ["before", "during"]


def test_tables_from_an_older_release_gain_the_new_columns(tmp_path: Path):
    """Additive schema evolution: columns a release adds appear in an existing warehouse, old rows backfilled."""
    from som_pipeline.schemas import StagedOrderModel, add_column_sql

    path = tmp_path / "old.duckdb"
    wh = Warehouse(str(path))
    with wh.transaction() as con:  # the table as an older release created it, with a row in it
        con.execute("ALTER TABLE stage.order_headers DROP COLUMN prices_include_tax")
        con.execute("ALTER TABLE stage.order_headers DROP COLUMN shipping_tax")
        new = ("prices_include_tax", "shipping_tax")
        required = {n: c for n, c in StagedOrderModel.to_schema().columns.items() if not c.nullable and n not in new}
        literal = {pl.Decimal: "0", pl.Boolean: "false", pl.Int64: "1", pl.Datetime: "TIMESTAMPTZ '2026-01-01 00:00:00+00'"}
        values = [next((v for t, v in literal.items() if isinstance(c.dtype.type, t) or c.dtype.type == t), "'x'")
                  for c in required.values()]
        con.execute(f"INSERT INTO stage.order_headers ({', '.join(required)}) VALUES ({', '.join(values)})")
    got = Warehouse(str(path)).read("SELECT prices_include_tax, shipping_tax FROM stage.order_headers")
    assert got.rows() == [(False, 0)]
    # a required column without a declared backfill cannot be added silently
    with pytest.raises(ValueError, match="no column capture_id"):
        add_column_sql("stage.order_headers", StagedOrderModel, set(StagedOrderModel.to_schema().columns) - {"capture_id"})


def test_duckdb_yields_memory_for_a_block_and_restores_the_limit(tmp_path: Path):
    from som_pipeline.warehouse import duckdb_yields_memory

    wh = Warehouse(tmp_path / "w.duckdb", memory_limit="1GB")
    with wh.connect() as con:
        before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        with duckdb_yields_memory(con, wh.memory_limit, "64MB"):
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "61.0 MiB"
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
        with pytest.raises(RuntimeError), duckdb_yields_memory(con, wh.memory_limit, "64MB"):
            raise RuntimeError("the block fails")
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
