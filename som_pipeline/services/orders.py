"""Orders service: staged observations -> canonical orders (versions, live order, duplicates); daily sales."""

from __future__ import annotations

from datetime import date

import polars as pl

from som_pipeline import orders as order_rules
from som_pipeline.warehouse import Warehouse, read_table, replace_table, replace_where


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
