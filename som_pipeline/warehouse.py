"""The DuckDB warehouse: one writer at a time, transactional writes, an analyst copy.

DuckDB allows one read-write process per file, and while a process holds the file even read-only
openers from other processes fail. So:

- Every pipeline access (read or write) goes through :meth:`Warehouse.connect`, which first takes an
  exclusive ``fcntl`` lock on ``som.duckdb.lock`` (waiting up to ``lock_timeout_s``), then opens the
  file. Processes queue on the lock instead of failing with "Could not set lock". (Dagster's
  ``pool="duckdb"`` on the assets keeps steps from even starting concurrently; the lock is the guarantee.)
- Writes happen in explicit ``BEGIN … COMMIT`` with ``ROLLBACK`` on error (:meth:`transaction`): a
  multi-statement string that fails half-way would otherwise keep its first statements.
- Analysts never open ``som.duckdb``. After each successful run :meth:`publish_analytics_copy` copies the
  file (under the lock, so the copy is a consistent checkpoint) to a temporary name and atomically
  renames it over ``som_analytics.duckdb``. Readers holding the old file keep reading it.

Table names passed to the helpers here come from code (``schemas.TABLES``), never from input; values
are always bound parameters or registered frames.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from som_pipeline.schemas import TABLES, add_column_sql, ddl

SCHEMAS = ("stage", "core", "ops", "ref", "state")


class WarehouseLockTimeout(RuntimeError):
    pass


class Warehouse:
    def __init__(self, path: str | os.PathLike[str], *, lock_timeout_s: float = 900.0, memory_limit: str = "2GB"):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout_s = lock_timeout_s
        self.memory_limit = memory_limit

    # --- locking -----------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout_s
            delay = 0.05
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise WarehouseLockTimeout(
                            f"waited {self.lock_timeout_s:.0f}s for the warehouse lock {self.lock_path}; "
                            "another writer is still running"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 1.0)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Exclusive connection (lock held until it closes). Creates the schema on first use."""
        with self._lock():
            con = self._open()
            try:
                con.execute("SET memory_limit = ?", [self.memory_limit])
                con.execute("SET TimeZone = 'UTC'")
                ensure_schema(con)
                yield con
            finally:
                con.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying while another process (an analyst's read-only session, a BI tool pointed at
        the main file by mistake) holds DuckDB's own file lock: bounded backoff up to ``lock_timeout_s``, then
        a clear error naming that process. Our writers never contend here: they queue on ``_lock`` first."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.1
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
                if time.monotonic() >= deadline:
                    holder = re.search(r"\(PID (\d+)\)", str(e))
                    who = f"process {holder.group(1)}" if holder else "another process"
                    raise WarehouseLockTimeout(
                        f"{who} has {self.path} open (DuckDB allows no writer while it does); waited "
                        f"{self.lock_timeout_s:.0f}s. Analysts should open {self.path.with_name('som_analytics.duckdb')}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 1.5, 2.0)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Connection inside ``BEGIN … COMMIT``; rolls back on any exception."""
        with self.connect() as con, transaction(con):
            yield con

    # --- reads -------------------------------------------------------------------------------
    def read(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).pl()

    # --- analyst copy --------------------------------------------------------------------------
    def publish_analytics_copy(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the warehouse to ``dest`` atomically (write a temp file beside it, then rename).

        Everything happens under the writer lock, so a temporary copy found there by the next publish is a
        leftover of a killed one and is deleted first."""
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        with self._lock():
            _remove_publish_temp(dest)
            if not self.path.exists():
                with duckdb.connect(str(self.path)) as con:
                    ensure_schema(con)
            with self._open() as con:
                con.execute("CHECKPOINT")
            try:
                shutil.copyfile(self.path, tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        return dest

    def clean_publish_temp(self, dest: str | os.PathLike[str]) -> list[str]:
        """Delete temporary analyst copies left by a killed publish (under the writer lock)."""
        with self._lock():
            return _remove_publish_temp(Path(dest))


def _remove_publish_temp(dest: Path) -> list[str]:
    removed = []
    for p in dest.parent.glob(f".{dest.name}.*.tmp"):
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN … COMMIT`` on an open connection (many small transactions under one lock)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def duckdb_yields_memory(con: duckdb.DuckDBPyConnection, restore: str, limit: str = "128MB") -> Iterator[None]:
    """Lower the connection's ``memory_limit`` to ``limit`` for a block that works in Polars, then set it back to
    ``restore`` (the warehouse's configured limit: DuckDB reports its setting rounded, so it is not read back).

    DuckDB keeps what it holds -- temporary tables waiting for the block's writes, cached blocks of the file --
    in memory up to its limit (``SOM_DUCKDB_MEMORY_LIMIT``), on top of the Polars frames. Lowered, it writes
    them to its temporary directory and reads them back when a statement needs them. Validation at TPC-H SF 1
    held 1.6 GB of anomaly state tables in DuckDB during the workflow."""
    con.execute("SET memory_limit = ?", [limit])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [restore])


_SCHEMA_DDL = None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create schemas and every model table (idempotent), and add the columns a newer release declares to
    tables an older one created (additive schema evolution: see ``schemas.add_column_sql``)."""
    global _SCHEMA_DDL
    if _SCHEMA_DDL is None:
        _SCHEMA_DDL = ";\n".join(
            [f"CREATE SCHEMA IF NOT EXISTS {s}" for s in SCHEMAS] + [ddl(t, m) for t, m in TABLES.items()]
        )
    con.execute(_SCHEMA_DDL)
    have: dict[str, set[str]] = {}
    for table, column in con.execute(
            "SELECT schema_name || '.' || table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database()").fetchall():
        have.setdefault(table, set()).add(column)
    alters = [sql for t, m in TABLES.items() for sql in add_column_sql(t, m, have.get(t, set()))]
    if alters:
        con.execute(";\n".join(alters))
    if not con.execute("SELECT count(*) FROM duckdb_views() WHERE schema_name = 'core' AND view_name = ?",
                       [PIPELINE_VIEWS[-1][1]]).fetchone()[0]:
        from som_pipeline.sqlfiles import sql_file

        con.execute(";\n".join(sql_file("views", f).text for f, _ in PIPELINE_VIEWS))


# views the pipeline itself reads (sql/views/<file>, view name), created with the tables; the analytics asset
# refreshes them with the other views
PIPELINE_VIEWS = (("05_core_stock", "v_stock"), ("06_core_stock_movements", "v_stock_movements"),
                  ("07_core_ar_aging", "v_ar_aging"))


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise KeyError(f"{table} is not a declared table (schemas.TABLES)")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> int:
    """Append ``df`` to a declared table, columns matched by name."""
    _check_table(table)
    if df.height == 0:
        return 0
    with registered(con, df) as view:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")  # noqa: S608 (names from code)
    return df.height


def replace_table(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> int:
    """Replace a declared table's content (call inside a transaction)."""
    _check_table(table)
    con.execute(f"DELETE FROM {table}")  # noqa: S608
    return insert_frame(con, table, df)


def arrow_view(df: pl.DataFrame):
    """``df`` as an Arrow table without copying its strings: Polars' string views are handed over as Arrow
    ``string_view`` (DuckDB reads them), where the default conversion copies every string into ``large_string``
    (+0.4 GB per 5M rows of two text columns; a day's validation results at TPC-H SF 1 are 12M rows)."""
    return df.to_arrow(compat_level=pl.CompatLevel.newest())


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, df: pl.DataFrame) -> Iterator[str]:
    """``df`` visible to SQL under a generated name for the block (join against it instead of building SQL
    text from values)."""
    name = f"_frame_{uuid.uuid4().hex}"
    con.register(name, arrow_view(df))
    try:
        yield name
    finally:
        con.unregister(name)


def select_keys(con: duckdb.DuckDBPyConnection, table: str, keys: pl.DataFrame, columns: str = "*") -> pl.DataFrame:
    """Rows of ``table`` whose values in ``keys``' columns match a row of ``keys`` (a semi-join in DuckDB)."""
    _check_table(table)
    with registered(con, keys) as k:
        return con.execute(_keys_sql(table, keys, k, columns)).pl()


def copy_keys(con: duckdb.DuckDBPyConnection, table: str, keys: pl.DataFrame, columns: str, path: Path) -> None:
    """:func:`select_keys` written by DuckDB to the Parquet file ``path`` (streamed within DuckDB's memory limit;
    no row passes through Python): a large input a Polars stage then scans part by part."""
    _check_table(table)
    with registered(con, keys) as k:
        con.sql(_keys_sql(table, keys, k, columns)).write_parquet(str(path), compression="uncompressed")


def _keys_sql(table: str, keys: pl.DataFrame, view: str, columns: str) -> str:
    """``SELECT columns FROM table`` semi-joined with the registered ``keys`` (names from code)."""
    return f"SELECT {columns} FROM {table} SEMI JOIN {view} USING ({', '.join(keys.columns)})"  # noqa: S608


def replace_keys(con: duckdb.DuckDBPyConnection, table: str, keys: pl.DataFrame, df: pl.DataFrame) -> int:
    """Upsert by key: delete the rows of ``table`` whose ``keys`` columns match a row of ``keys``, insert ``df``
    (the affected keys' new rows). Call inside a transaction; column names come from code."""
    _check_table(table)
    if keys.height:
        with registered(con, keys.unique()) as k:
            match = " AND ".join(f"t.{c} IS NOT DISTINCT FROM k.{c}" for c in keys.columns)
            con.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {k} k WHERE {match})")  # noqa: S608
    return insert_frame(con, table, df)


def watermark(con: duckdb.DuckDBPyConnection, consumer: str) -> tuple[int, str | None]:
    """``(position, fingerprint)`` a consumer recorded in ``ops.watermarks`` (``(0, None)``: never ran)."""
    row = con.execute("SELECT position, fingerprint FROM ops.watermarks WHERE consumer = ?", [consumer]).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def set_watermark(con: duckdb.DuckDBPyConnection, consumer: str, position: int, fingerprint: str | None,
                  at: datetime) -> None:
    """Record how far ``consumer`` has processed (inside the transaction that wrote its results)."""
    con.execute("DELETE FROM ops.watermarks WHERE consumer = ?", [consumer])
    con.execute("INSERT INTO ops.watermarks (consumer, position, fingerprint, updated_at) VALUES (?, ?, ?, ?)",
                [consumer, position, fingerprint, at])


def replace_where(con: duckdb.DuckDBPyConnection, table: str, where_sql: str, params: list, df: pl.DataFrame) -> int:
    """Delete the rows matching ``where_sql`` (a fixed predicate from code with ``?`` parameters) and
    insert ``df``: the idempotent partition write. Call inside a transaction."""
    _check_table(table)
    con.execute(f"DELETE FROM {table} WHERE {where_sql}", params)  # noqa: S608
    return insert_frame(con, table, df)


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    _check_table(table)
    return con.execute(f"SELECT * FROM {table}").pl()  # noqa: S608


def read_tables(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` for each declared table (a service's ``Step.reads``)."""
    return {t: read_table(con, t) for t in tables}


def content_hashes(path: str | os.PathLike[str], *, home: str | os.PathLike[str] | None = None,
                   exclude: frozenset[str] = frozenset()) -> dict[str, list]:
    """``schema.table -> [rows, md5]`` of every table in a warehouse file, order-independent (each row hashed,
    the row hashes sorted), without the ``schema.table.column`` names in ``exclude`` (run-time columns), with
    ``home`` replaced by ``$HOME`` in the text (paths compare across machines). Opens the file read-only.

    Used by the golden regression test and the reliability benchmark (a crashed-then-resumed run must end with
    the same tables as a clean one)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        for sch, tbl in tables:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                "ORDER BY column_index", [sch, tbl]).fetchall()]
            keep = ", ".join(f'"{c}"' for c in cols if f"{sch}.{tbl}.{c}" not in exclude)
            n, h = con.execute(  # identifiers come from the catalog, values are bound
                "SELECT count(*), md5(coalesce(string_agg(h, ',' ORDER BY h), '')) FROM ("  # noqa: S608
                f"SELECT md5(replace(CAST(t AS VARCHAR), ?, '$HOME')) AS h FROM (SELECT {keep} FROM {sch}.{tbl}) t)",
                [str(home or "\0")]).fetchone()
            out[f"{sch}.{tbl}"] = [int(n), h]
        return out
    finally:
        con.close()

