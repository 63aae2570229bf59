"""Orders service: staged observations -> canonical orders (versions, live order, duplicates); daily sales."""

from __future__ import annotations

from datetime import date

import polars as pl

from som_pipeline import orders as order_rules
from som_pipeline.services import Step
from som_pipeline.warehouse import Warehouse, read_tables, replace_table, replace_where

CORE_ORDERS = Step(reads=("stage.order_headers", "stage.order_lines", "ref.customer_aliases"),
                   writes=("core.orders", "core.order_lines", "core.order_versions", "core.order_line_versions",
                           "core.probable_duplicates"))
DAILY_SALES = Step(reads=("core.orders", "core.order_lines"), writes=("core.daily_sales",))


def build_core_orders(wh: Warehouse) -> order_rules.OrderTables:
    with wh.transaction() as con:
        t = read_tables(con, CORE_ORDERS.reads)
        tables = order_rules.build_orders(t["stage.order_headers"], t["stage.order_lines"], t["ref.customer_aliases"])
        for name in CORE_ORDERS.writes:
            replace_table(con, name, getattr(tables, name.split(".", 1)[1]))
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
