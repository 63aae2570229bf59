"""The anomaly baselines' state ``core.anomaly_baselines`` in the warehouse (used by ``services.validation``).

A validation run (see :mod:`som_pipeline.validation.anomaly_state` for the model and the exactness argument):

1. :func:`anomaly_state_for_run` (before the workflow, reads only): which orders validation has not recorded yet
   (no ``core.order_status`` row of their current version: new orders and new versions) and which it will
   evaluate (those and the ON_HOLD ones); the groups they touch (and the groups holding rows of replaced
   versions); only those groups' state rows (a semi-join against a registered frame of keys). Groups the
   state cannot serve exactly (a full group asked about an order at or before its newest kept observation,
   or a full group losing a replaced version's row) get their whole history read from ``core`` for those
   groups only. Returns the observations the check needs and the touched groups' new state rows.
2. :func:`write_anomaly_state` (inside the run's transaction): delete the touched groups' rows, insert their new
   rows (an upsert of the affected group keys).

:func:`rebuild_anomaly_state` recomputes the whole table from every order (an explicit command, and the first
run after an upgrade when the table is still empty); it gives the same table as the run-by-run updates.
No SQL text is built from values: keys travel as registered frames, constants as bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from som_pipeline.lifecycle import ON_HOLD
from som_pipeline.validation.anomaly_state import (
    GROUP,
    empty_state,
    groups_losing_rows,
    observations,
    unservable_groups,
    update_state,
)
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.warehouse import insert_frame, registered, transaction

TABLE = "core.anomaly_baselines"
ORDER_COLS = "o.order_id, o.customer_id, o.order_ts, o.currency, o.items_subtotal"
LINE_COLS = "l.order_id, l.line_no, l.sku, l.quantity"


@dataclass(frozen=True)
class AnomalyRun:
    """What :func:`anomaly_state_for_run` prepared for one validation run."""

    history: pl.DataFrame  # observations for the check (workflow ``State.anomaly``)
    removed: pl.DataFrame  # state rows that leave core.anomaly_baselines ...
    added: pl.DataFrame  # ... and the rows that enter it (the touched groups' new state minus what stays)
    refilled: int  # groups whose history was read from core.orders (backdated / re-evaluated / replaced)


def _orders_and_lines(con: duckdb.DuckDBPyConnection, where: str, keys: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Columns the baselines need of the orders matching ``where`` (a fixed predicate from code over ``o`` and
    the registered frame ``k``) and of their lines."""
    with registered(con, keys) as k:
        o = con.execute(f"SELECT {ORDER_COLS} FROM core.orders o WHERE {where.format(k=k)}").pl()  # noqa: S608
    with registered(con, o.select("order_id")) as ids:
        ln = con.execute(f"SELECT {LINE_COLS} FROM core.order_lines l SEMI JOIN {ids} i "  # noqa: S608
                         "ON l.order_id = i.order_id").pl()
    return o, ln


def _group_history(con: duckdb.DuckDBPyConnection, groups: pl.DataFrame) -> pl.DataFrame:
    """Every current observation of ``groups`` (one scan of the lines, for those groups' customers and SKUs)."""
    if groups.height == 0:
        return empty_state()
    keys = pl.concat([
        groups.filter(pl.col("level") != "sku_population").select(pl.lit("c").alias("kind"), pl.col("key1").alias("k")),
        groups.filter(pl.col("level") == "sku_population").select(pl.lit("s").alias("kind"), pl.col("key1").alias("k")),
    ]).unique()
    with registered(con, keys) as k:
        ln = con.execute(
            f"SELECT {LINE_COLS} FROM core.order_lines l "  # noqa: S608 (names from code)
            f"WHERE l.order_id IN (SELECT o.order_id FROM core.orders o JOIN {k} c ON c.kind = 'c' AND c.k = o.customer_id) "
            f"OR l.sku IN (SELECT k FROM {k} WHERE kind = 's')").pl()
    with registered(con, ln.select("order_id").unique()) as ids:
        o = con.execute(f"SELECT {ORDER_COLS} FROM core.orders o SEMI JOIN {ids} i ON o.order_id = i.order_id").pl()  # noqa: S608
    return observations(o, ln).join(groups.lazy(), on=GROUP, how="semi").collect()


def anomaly_state_for_run(con: duckdb.DuckDBPyConnection, cfg: ValidationConfig) -> AnomalyRun:
    """Read what this run's anomaly check needs and compute the touched groups' new state (see module doc).
    Call before the run writes ``core.order_status``."""
    if _needs_initial_build(con):
        with transaction(con):
            rebuild_anomaly_state(con, cfg, recorded_only=True)
    todo = con.execute(
        "SELECT o.order_id, s.order_id IS NULL OR s.version <> o.version AS fresh, "
        "s.order_id IS NOT NULL AND s.version <> o.version AS replaced "
        "FROM core.orders o LEFT JOIN core.order_status s ON s.order_id = o.order_id "
        "WHERE s.order_id IS NULL OR s.version <> o.version OR s.status = ?", [ON_HOLD]).pl()
    o, ln = _orders_and_lines(con, "o.order_id IN (SELECT order_id FROM {k})", todo.select("order_id"))
    fresh_ids = todo.filter("fresh").select("order_id")
    replaced = todo.filter("replaced").select("order_id")
    fresh = observations(o.join(fresh_ids, on="order_id", how="semi"), ln.join(fresh_ids, on="order_id", how="semi")
                         ).collect()
    queries = observations(o, ln, require_value=False).collect()
    with registered(con, replaced) as r:
        void_groups = con.execute(f"SELECT DISTINCT level, key1, key2 FROM {TABLE} b SEMI JOIN {r} r "  # noqa: S608
                                  "ON b.order_id = r.order_id").pl()
    touched = pl.concat([queries.select(GROUP), fresh.select(GROUP), void_groups]).unique()
    with registered(con, touched) as g:
        stored = con.execute(f"SELECT b.* FROM {TABLE} b SEMI JOIN {g} g "  # noqa: S608
                             "ON b.level = g.level AND b.key1 = g.key1 AND b.key2 = g.key2").pl()
    refill = pl.concat([groups_losing_rows(stored, replaced, cfg), unservable_groups(stored, queries, cfg)]).unique()
    known = _group_history(con, refill)
    new = pl.concat([fresh, known])
    history = pl.concat([stored.join(replaced, on="order_id", how="anti"), new])
    rows = update_state(stored, new, cfg, replaced=replaced)
    return AnomalyRun(history, stored.join(rows, on=list(rows.columns), how="anti", nulls_equal=True),
                      rows.join(stored, on=list(rows.columns), how="anti", nulls_equal=True), refill.height)


def write_anomaly_state(con: duckdb.DuckDBPyConnection, run: AnomalyRun) -> None:
    """Upsert the touched groups: delete the rows that leave, insert the rows that enter (call inside the run's
    transaction). A nightly run changes a few rows per group (new observations in, the oldest out)."""
    if run.removed.height:
        with registered(con, run.removed) as g:
            con.execute(f"DELETE FROM {TABLE} b USING {g} g "  # noqa: S608
                        "WHERE b.level = g.level AND b.key1 = g.key1 AND b.key2 = g.key2 AND b.order_id = g.order_id "
                        "AND b.line_no IS NOT DISTINCT FROM g.line_no")
    insert_frame(con, TABLE, run.added)


def rebuild_anomaly_state(con: duckdb.DuckDBPyConnection, cfg: ValidationConfig, *,
                          recorded_only: bool = False) -> int:
    """Rebuild ``core.anomaly_baselines`` from every order (``recorded_only``: only the order versions
    validation has recorded -- a ``core.order_status`` row of the same version). Call inside a transaction.

    In DuckDB SQL (bounded memory, spills to disk): the observations of
    :func:`~som_pipeline.validation.anomaly_state.observations` and the last ``W`` per group in the order of
    :func:`~som_pipeline.validation.anomaly_state.update_state` (a test holds the two equal)."""
    where = ("EXISTS (SELECT 1 FROM core.order_status s WHERE s.order_id = o.order_id AND s.version = o.version)"
             if recorded_only else "true")
    con.execute(f"DELETE FROM {TABLE}")  # noqa: S608
    con.execute(f"""
        INSERT INTO {TABLE} BY NAME
        WITH o AS (SELECT {ORDER_COLS} FROM core.orders o WHERE {where}),
        ln AS (SELECT {LINE_COLS}, o.customer_id, o.order_ts FROM core.order_lines l JOIN o ON o.order_id = l.order_id
               WHERE l.quantity IS NOT NULL),
        obs AS (
            SELECT 'customer_sku' AS level, customer_id AS key1, sku AS key2, order_ts, order_id, line_no,
                   CAST(quantity AS DECIMAL(18, 2)) AS value FROM ln WHERE customer_id IS NOT NULL AND sku IS NOT NULL
            UNION ALL
            SELECT 'customer', customer_id, '', order_ts, order_id, line_no, CAST(quantity AS DECIMAL(18, 2))
            FROM ln WHERE customer_id IS NOT NULL
            UNION ALL
            SELECT 'sku_population', sku, '', order_ts, order_id, line_no, CAST(quantity AS DECIMAL(18, 2))
            FROM ln WHERE sku IS NOT NULL
            UNION ALL
            SELECT 'order_value', customer_id, currency, order_ts, order_id, CAST(NULL AS BIGINT),
                   CAST(items_subtotal AS DECIMAL(18, 2))
            FROM o WHERE customer_id IS NOT NULL AND currency IS NOT NULL AND items_subtotal IS NOT NULL)
        SELECT * FROM obs
        QUALIFY row_number() OVER (PARTITION BY level, key1, key2
                                   ORDER BY order_ts DESC, value DESC, order_id DESC, line_no DESC NULLS LAST)
                <= CASE WHEN level = 'order_value' THEN ? ELSE ? END""",  # noqa: S608 (text from code)
                [cfg.value_baseline_window, cfg.qty_baseline_window])
    return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # noqa: S608


def _needs_initial_build(con: duckdb.DuckDBPyConnection) -> bool:
    """The table is empty while validation has recorded orders (first run after the upgrade that added it)."""
    return bool(con.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {TABLE}) AND EXISTS "  # noqa: S608
                            "(SELECT 1 FROM core.order_status)").fetchone()[0])
