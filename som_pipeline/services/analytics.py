"""Analytics service: the analyst views (``sql/views``) and the reconciliation queries (``sql/reconciliation``)."""

from __future__ import annotations

import duckdb
import polars as pl

from som_pipeline.sqlfiles import SqlFile, sql_files
from som_pipeline.warehouse import Warehouse


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
