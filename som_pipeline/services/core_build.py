"""Build services: reference tables, canonical orders, daily sales, analyst views, reconciliation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import polars as pl

from som_pipeline import orders as order_rules
from som_pipeline.config import Settings
from som_pipeline.reference import RefLoad, find_file, load_reference
from som_pipeline.services.capture import write_quarantine
from som_pipeline.sqlfiles import SqlFile, sql_files
from som_pipeline.warehouse import Warehouse, read_table, replace_table, replace_where


def load_reference_tables(wh: Warehouse, settings: Settings, tables: list[str]) -> list[RefLoad]:
    loads = []
    now = datetime.now(UTC)
    for t in tables:
        ld = load_reference(t, find_file(settings.reference, t), loaded_at=now)
        with wh.transaction() as con:
            if ld.frame is not None:
                replace_table(con, f"ref.{t}", ld.frame)
            write_quarantine(con, ld.quarantine)
        loads.append(ld)
    return loads


def build_core_orders(wh: Warehouse) -> order_rules.OrderTables:
    with wh.transaction() as con:
        tables = order_rules.build_orders(
            read_table(con, "stage.order_headers"),
            read_table(con, "stage.order_lines"),
            read_table(con, "ref.customer_aliases"),
        )
        replace_table(con, "core.orders", tables.orders)
        replace_table(con, "core.order_lines", tables.order_lines)
        replace_table(con, "core.order_versions", tables.order_versions)
        replace_table(con, "core.order_line_versions", tables.order_line_versions)
        replace_table(con, "core.probable_duplicates", tables.probable_duplicates)
    return tables


def build_daily_sales(wh: Warehouse, start: date, end: date) -> pl.DataFrame:
    """Replace the partitions ``[start, end]`` of core.daily_sales (delete + insert, one transaction)."""
    with wh.transaction() as con:
        orders = con.execute("SELECT * FROM core.orders WHERE order_date BETWEEN ? AND ?", [start, end]).pl()
        lines = con.execute(
            "SELECT l.* FROM core.order_lines l JOIN core.orders o USING (order_id) WHERE o.order_date BETWEEN ? AND ?",
            [start, end],
        ).pl()
        daily = order_rules.daily_sales(orders, lines, start, end)
        replace_where(con, "core.daily_sales", "order_date BETWEEN ? AND ?", [start, end], daily)
    return daily


def create_views(wh: Warehouse) -> list[str]:
    with wh.transaction() as con:
        for f in sql_files("views"):
            con.execute(f.text)
    return [f.name for f in sql_files("views")]


def run_reconciliation_query(con: duckdb.DuckDBPyConnection, f: SqlFile, **params) -> pl.DataFrame:
    text = f.text
    bound = {k: v for k, v in params.items() if f"${k}" in text}
    for name in ("channel",):
        if f"${name}" in text and name not in bound:
            bound[name] = None
    return con.execute(text, bound).pl()


def run_reconciliation(wh: Warehouse) -> dict[str, pl.DataFrame]:
    with wh.connect() as con:
        return {f.name: run_reconciliation_query(con, f) for f in sql_files("reconciliation")}
