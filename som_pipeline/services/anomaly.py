"""The anomaly baselines' state ``core.anomaly_baselines`` in the warehouse (used by ``services.validation``).

A validation run (see :mod:`som_pipeline.validation.anomaly_state` for the model and the exactness argument):

1. :func:`anomaly_state_for_run` (before the workflow, reads only): which orders validation has not recorded yet
   (no ``core.order_status`` row of their current version: new orders and new versions) and which it will
   evaluate (those and the ON_HOLD ones); the groups they touch (and the groups holding rows of replaced
   versions); only those groups' state rows (a semi-join). Groups the state cannot serve exactly (a full group
   asked about an order at or before its newest kept observation, or a full group losing a replaced version's
   row) get their whole history read from ``core`` for those groups only. Returns the observations the check
   cannot derive from the evaluated orders themselves. The sets stay in DuckDB (temporary tables of the
   connection, in SQL: memory bounded by DuckDB's limit, not by the day's volume -- at TPC-H SF 0.1 holding the
   day's observations in Polars cost 1.1 GB).
2. :func:`write_anomaly_state` (inside the run's transaction): the touched groups' new state in SQL (the last
   ``W`` per group, as :func:`~som_pipeline.validation.anomaly_state.update_state`); delete the rows that leave,
   insert the rows that enter (an upsert of the affected group keys).

:func:`rebuild_anomaly_state` recomputes the whole table from every order (an explicit command, and the first
run after an upgrade when the table is still empty); it gives the same table as the run-by-run updates.
No SQL text is built from values: keys travel as registered frames, constants as bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from som_pipeline.lifecycle import ON_HOLD
from som_pipeline.validation.anomaly_state import GROUP, SCHEMA, empty_state, observations
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.warehouse import registered, transaction

TABLE = "core.anomaly_baselines"
ORDER_COLS = "o.order_id, o.customer_id, o.order_ts, o.currency, o.items_subtotal"
LINE_COLS = "l.order_id, l.line_no, l.sku, l.quantity"


@dataclass(frozen=True)
class AnomalyRun:
    """What :func:`anomaly_state_for_run` prepared for one validation run. The touched groups' state rows, the
    orders the run records and the refilled groups wait in temporary tables of the connection (``_anom_*``) for
    :func:`write_anomaly_state`, which computes the new state in SQL."""

    history: pl.DataFrame  # observations for the check (workflow ``State.anomaly``)
    refilled: int  # groups whose history was read from core.orders (backdated / re-evaluated / replaced)
    touched: int  # groups the run's orders touch (their state rows are upserted)
    windows: tuple[int, int]  # ``W`` of the order_value level, of the quantity levels


def _observations_sql(orders: str, *, require_value: bool = True) -> str:
    """SQL text of the observations (state columns) of the orders in ``orders`` (a subquery or table name from
    code, with ``order_id``): :func:`~som_pipeline.validation.anomaly_state.observations` in SQL."""
    qty = " AND quantity IS NOT NULL" if require_value else ""
    value = " AND items_subtotal IS NOT NULL" if require_value else ""
    return f"""
        WITH o AS (SELECT {ORDER_COLS} FROM core.orders o SEMI JOIN ({orders}) i ON o.order_id = i.order_id),
        ln AS (SELECT {LINE_COLS}, o.customer_id, o.order_ts FROM core.order_lines l JOIN o ON o.order_id = l.order_id)
        SELECT 'customer_sku' AS level, customer_id AS key1, sku AS key2, order_ts, order_id,
               CAST(line_no AS BIGINT) AS line_no, CAST(quantity AS DECIMAL(18, 2)) AS value
        FROM ln WHERE customer_id IS NOT NULL AND sku IS NOT NULL{qty}
        UNION ALL
        SELECT 'customer', customer_id, '', order_ts, order_id, line_no, CAST(quantity AS DECIMAL(18, 2))
        FROM ln WHERE customer_id IS NOT NULL{qty}
        UNION ALL
        SELECT 'sku_population', sku, '', order_ts, order_id, line_no, CAST(quantity AS DECIMAL(18, 2))
        FROM ln WHERE sku IS NOT NULL{qty}
        UNION ALL
        SELECT 'order_value', customer_id, currency, order_ts, order_id, CAST(NULL AS BIGINT),
               CAST(items_subtotal AS DECIMAL(18, 2))
        FROM o WHERE customer_id IS NOT NULL AND currency IS NOT NULL{value}"""  # noqa: S608 (text from code)


STATE_COLS = "level, key1, key2, order_ts, order_id, line_no, value"
_SAME_GROUP = "{a}.level = {b}.level AND {a}.key1 = {b}.key1 AND {a}.key2 = {b}.key2"
_SAME_OBS = _SAME_GROUP + " AND {a}.order_id = {b}.order_id AND {a}.line_no IS NOT DISTINCT FROM {b}.line_no"
_SAME_ROW = _SAME_OBS + (" AND {a}.order_ts IS NOT DISTINCT FROM {b}.order_ts"
                         " AND {a}.value IS NOT DISTINCT FROM {b}.value")
_TEMP = ("_anom_todo", "_anom_touched", "_anom_stored", "_anom_known", "_anom_rows")


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
    """Read what this run's anomaly check needs (see module doc). Call before the run writes
    ``core.order_status``. The sets are kept in DuckDB (temporary tables: bounded memory, they spill); only
    the observations the check cannot derive from the evaluated orders themselves come back to Python: the
    touched groups' state rows (less the replaced versions'), the refilled groups' history, and the new
    observations of orders recorded without being evaluated (cancelled at the channel, or placed before
    ``workflow.history_before``). The evaluated orders' own observations are the check's
    (:func:`~som_pipeline.validation.anomaly_state.history_from_state` replaces any given for them)."""
    if _needs_initial_build(con):
        with transaction(con):
            rebuild_anomaly_state(con, cfg, recorded_only=True)
    w = [cfg.value_baseline_window, cfg.qty_baseline_window]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _anom_todo AS SELECT o.order_id, "
        "s.order_id IS NULL OR s.version <> o.version AS fresh, "
        "s.order_id IS NOT NULL AND s.version <> o.version AS replaced, "
        # surely evaluated by the workflow (new or new version, not cancelled, not history): its observations
        # are the check's own; any other recorded order's observations are history
        "(s.order_id IS NULL OR s.version <> o.version) AND coalesce(o.cancelled_at IS NULL AND "
        "(?::DATE IS NULL OR o.order_date >= ?::DATE), false) AS evaluated "
        "FROM core.orders o LEFT JOIN core.order_status s ON s.order_id = o.order_id "
        "WHERE s.order_id IS NULL OR s.version <> o.version OR s.status = ?",
        [cfg.history_before, cfg.history_before, ON_HOLD])
    # the groups the run touches: every group an order to evaluate asks about (with its earliest query), and
    # the groups holding rows of replaced versions
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _anom_touched AS
        SELECT level, key1, key2, min(q_ts) AS q_ts FROM (
            SELECT level, key1, key2, order_ts AS q_ts
            FROM ({_observations_sql("SELECT order_id FROM _anom_todo", require_value=False)})
            UNION ALL
            SELECT b.level, b.key1, b.key2, NULL FROM {TABLE} b
            SEMI JOIN (SELECT order_id FROM _anom_todo WHERE replaced) r ON b.order_id = r.order_id
        ) GROUP BY ALL""")  # noqa: S608 (text from code)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _anom_stored AS SELECT {STATE_COLS} FROM {TABLE} b "  # noqa: S608
                f"SEMI JOIN _anom_touched g ON {_SAME_GROUP.format(a='b', b='g')}")
    # full groups that cannot serve the run exactly: asked about at or before their newest kept observation,
    # or losing a replaced version's row (groups_losing_rows / unservable_groups in SQL)
    refill = con.execute(f"""
        WITH f AS (SELECT level, key1, key2, max(order_ts) AS newest FROM _anom_stored GROUP BY ALL
                   HAVING count(*) >= CASE WHEN level = 'order_value' THEN ? ELSE ? END)
        SELECT f.level, f.key1, f.key2 FROM f JOIN _anom_touched t ON {_SAME_GROUP.format(a='f', b='t')}
        WHERE t.q_ts <= f.newest
        UNION
        SELECT f.level, f.key1, f.key2 FROM f SEMI JOIN (
            SELECT s.level, s.key1, s.key2 FROM _anom_stored s
            SEMI JOIN (SELECT order_id FROM _anom_todo WHERE replaced) r ON s.order_id = r.order_id) h
        ON {_SAME_GROUP.format(a='f', b='h')}""", w).pl()  # noqa: S608 (text from code)
    known = _group_history(con, refill)
    with registered(con, known.select(list(SCHEMA))) as k:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _anom_known AS SELECT {STATE_COLS} FROM {k}")  # noqa: S608
    # two statements, not one UNION ALL: DuckDB 1.5.5 parked every thread for good on the union of these two
    # arms (the observations' CTE read by four union arms) at TPC-H SF 1 under the 2 GB memory limit
    # (cf. duckdb/duckdb#24961); each arm alone runs
    kept = con.execute(f"""
        SELECT {STATE_COLS} FROM _anom_stored s
        ANTI JOIN (SELECT order_id FROM _anom_todo WHERE replaced) r ON s.order_id = r.order_id
    """).pl()  # noqa: S608 (text from code)
    recorded = con.execute(f"""
        SELECT {STATE_COLS} FROM ({_observations_sql("SELECT order_id FROM _anom_todo WHERE fresh AND NOT evaluated")})
    """).pl()  # noqa: S608 (text from code)
    history = pl.concat([kept.cast(dict(known.schema)), recorded.cast(dict(known.schema)), known])
    del kept, recorded
    touched = con.execute("SELECT count(*) FROM _anom_touched").fetchone()[0]
    return AnomalyRun(history, refill.height, touched, (w[0], w[1]))


def write_anomaly_state(con: duckdb.DuckDBPyConnection, run: AnomalyRun) -> None:
    """Upsert the touched groups (call inside the run's transaction, with the connection that prepared ``run``):
    their new state -- the last ``W`` per group of the kept rows (less the replaced versions') and the new
    observations (the recorded orders', the refilled groups' history) -- computed in SQL as
    :func:`~som_pipeline.validation.anomaly_state.update_state` does; then delete the rows that leave and
    insert the rows that enter. A nightly run changes a few rows per group (new observations in, the oldest out)."""
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _anom_rows AS
            WITH fresh AS ({_observations_sql("SELECT order_id FROM _anom_todo WHERE fresh")}),
            new AS (SELECT {STATE_COLS} FROM _anom_known
                    UNION ALL SELECT {STATE_COLS} FROM fresh f ANTI JOIN _anom_known k ON {_SAME_OBS.format(a='f', b='k')}),
            kept AS (SELECT {STATE_COLS} FROM _anom_stored s
                     ANTI JOIN (SELECT order_id FROM _anom_todo WHERE replaced) r ON s.order_id = r.order_id),
            merged AS (SELECT {STATE_COLS} FROM kept s ANTI JOIN new n ON {_SAME_OBS.format(a='s', b='n')}
                       UNION ALL SELECT {STATE_COLS} FROM new)
            SELECT {STATE_COLS} FROM merged
            QUALIFY row_number() OVER (PARTITION BY level, key1, key2
                                       ORDER BY order_ts DESC, value DESC, order_id DESC, line_no DESC NULLS LAST)
                    <= CASE WHEN level = 'order_value' THEN ? ELSE ? END""",  # noqa: S608 (text from code)
                    list(run.windows))
        # the rows that leave / enter: anti-joins on the whole row (the rows are unique per observation key, so
        # this is the set difference; EXCEPT hashed all of a day's 17.9M new rows for distinctness at TPC-H SF 1)
        if con.execute("SELECT EXISTS (SELECT 1 FROM _anom_stored)").fetchone()[0]:
            con.execute(f"DELETE FROM {TABLE} b USING (SELECT {STATE_COLS} FROM _anom_stored s "  # noqa: S608
                        f"ANTI JOIN _anom_rows r ON {_SAME_ROW.format(a='s', b='r')}) g "
                        f"WHERE {_SAME_OBS.format(a='b', b='g')}")
        con.execute(f"INSERT INTO {TABLE} BY NAME SELECT {STATE_COLS} FROM _anom_rows r "  # noqa: S608
                    f"ANTI JOIN _anom_stored s ON {_SAME_ROW.format(a='r', b='s')}")
    finally:
        for t in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS {t}")


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
