"""Orders service: staged observations -> canonical orders (versions, live order, duplicates); daily sales.

Incremental: ``ops.watermarks`` (consumer ``core_orders``) holds the last ``stage.order_headers.capture_seq``
built. A run rebuilds only the orders with observations beyond it -- each such order whole, from all its
observations, by the same pure :func:`som_pipeline.orders.build_orders` -- plus the orders whose customer a
change of ``ref.customer_aliases`` re-resolves, and upserts them (delete + insert of their ``order_id`` in the
four order tables, and of the probable-duplicate groups they were or are in) in one transaction with the
watermark. ``full=True`` rebuilds every order from stage (``som run --full-rebuild``): the same tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl

from som_pipeline import orders as order_rules
from som_pipeline.hashing import sha256_text
from som_pipeline.parquet_stage import PartFiles, part_files
from som_pipeline.services import Step
from som_pipeline.warehouse import (
    Warehouse,
    read_table,
    registered,
    replace_keys,
    replace_where,
    select_keys,
    set_watermark,
    watermark,
)

CORE_ORDERS = Step(reads=("stage.order_headers", "stage.order_lines", "ref.customer_aliases"),
                   writes=("core.orders", "core.order_lines", "core.order_versions", "core.order_line_versions",
                           "core.probable_duplicates"))
DAILY_SALES = Step(reads=("core.orders", "core.order_lines"), writes=("core.daily_sales",))
# (core_orders also marks ops.pending_partitions and moves ops.watermarks: bookkeeping, not lineage)
CONSUMER = "core_orders"
KEY = ["channel", "channel_order_ref"]


@dataclass
class OrdersDelta:
    """What one core-orders run wrote: the rebuilt orders' rows (``tables``) and why they were rebuilt."""

    tables: order_rules.OrderTables  # the last batch's rows
    new_observations: int  # stage rows beyond the watermark
    realiased: int  # orders rebuilt because their customer alias changed
    full: bool
    order_dates: list[date]  # order dates of the rebuilt orders, before and after (daily sales to refresh)
    rows_written: dict[str, int] = field(default_factory=dict)  # per table, over all batches


def _alias_fingerprint(alias: pl.DataFrame) -> str:
    return sha256_text(alias.write_csv().encode())


def _affected_keys(con, mark: int, alias: pl.DataFrame, alias_changed: bool) -> tuple[pl.DataFrame, int, int]:
    """``(keys, new observations, re-aliased orders)``: the orders to rebuild."""
    new = con.execute("SELECT DISTINCT channel, channel_order_ref FROM stage.order_headers WHERE capture_seq > ?",
                      [mark]).pl()
    n_new = int(con.execute("SELECT count(*) FROM stage.order_headers WHERE capture_seq > ?", [mark]).fetchone()[0])
    realiased = pl.DataFrame(schema={c: pl.String for c in KEY})
    if alias_changed:
        with registered(con, alias) as a:
            realiased = con.execute(
                f"SELECT o.channel, o.channel_order_ref FROM core.orders o LEFT JOIN {a} a "  # noqa: S608
                "ON a.channel = o.channel AND a.customer_ref = o.customer_ref "
                "WHERE o.customer_id IS DISTINCT FROM a.customer_id").pl()
    keys = pl.concat([new, realiased]).unique().sort(KEY)
    return keys, n_new, realiased.join(new, on=KEY, how="anti").height


# Orders rebuilt per batch: a first load or a full rebuild of millions of orders runs in bounded memory.
BATCH_ORDERS = 200_000
TABLES = ("orders", "order_lines", "order_versions", "order_line_versions")

OnBatch = Callable[[order_rules.OrderTables], None]


def build_core_orders(wh: Warehouse, *, full: bool = False, now: datetime | None = None,
                      on_batch: OnBatch | None = None, batch_orders: int = BATCH_ORDERS) -> OrdersDelta:
    """Rebuild the affected orders, ``batch_orders`` at a time, and upsert them with the watermark in one
    transaction. Each batch's rows are staged as Parquet part files as they are built (nothing held, nothing
    uncommitted in DuckDB), then published together (:func:`_publish`: delete the rebuilt orders, insert the
    parts, in SQL that DuckDB streams), then the probable-duplicate groups they were or are in are recomputed.
    ``on_batch`` sees each batch's rows (the asset validates them against the models; a batch's
    ``probable_duplicates`` are those among its own orders), then the recomputed duplicate groups (with the
    other tables empty); the returned ``tables`` hold the rows of the last batch and the recomputed duplicate
    groups, the counts cover all of them."""
    now = now or datetime.now(UTC)
    with wh.transaction() as con, part_files(wh.path.parent, f".{wh.path.name}.core_orders-") as parts:
        aliases = read_table(con, "ref.customer_aliases")
        alias = order_rules.alias_map(aliases)
        fingerprint = _alias_fingerprint(alias)
        mark, seen = (0, None) if full else watermark(con, CONSUMER)
        top = int(con.execute("SELECT coalesce(max(capture_seq), 0) FROM stage.order_headers").fetchone()[0])
        if full:
            keys = con.execute("SELECT DISTINCT channel, channel_order_ref FROM stage.order_headers").pl()
            n_new, n_alias = int(con.execute("SELECT count(*) FROM stage.order_headers").fetchone()[0]), 0
            for t in ("core.orders", "core.order_lines", "core.order_versions", "core.order_line_versions",
                      "core.probable_duplicates"):
                con.execute(f"DELETE FROM {t}")  # noqa: S608 - names from code
        else:
            keys, n_new, n_alias = _affected_keys(con, mark, alias, seen != fingerprint)
        keys = keys.sort(KEY)
        dates: list[pl.Series] = []
        groups: list[pl.DataFrame] = []
        counts = dict.fromkeys((*TABLES, "probable_duplicates"), 0)
        tables = None
        for lo in range(0, max(keys.height, 1), batch_orders):
            tables = None  # the batch before is staged: not held while this one is built
            tables, before, ids = _build(con, keys.slice(lo, batch_orders), aliases)
            parts.add("ids", ids)
            for name in TABLES:
                parts.add(name, getattr(tables, name))
                counts[name] += getattr(tables, name).height
            dates += [before["order_date"], tables.orders["order_date"]]
            groups.append(_duplicate_groups(pl.concat([before, tables.orders.select(before.columns)])))
            if on_batch is not None:
                on_batch(tables)
            del before, ids
        _publish(con, parts, deleted=full)
        dup = _refresh_duplicates(con, pl.concat(groups).unique())
        counts["probable_duplicates"] = dup.height
        tables.probable_duplicates = dup
        if on_batch is not None:
            on_batch(order_rules.OrderTables(*(getattr(tables, t).clear() for t in TABLES), dup))
        days = pl.concat(dates).drop_nulls().unique().sort()
        mark_pending(con, "core.daily_sales", days, now)
        set_watermark(con, CONSUMER, top, fingerprint, now)
    return OrdersDelta(tables, n_new, n_alias, full, days.to_list(), counts)


def _build(con, keys: pl.DataFrame, aliases: pl.DataFrame) -> tuple[order_rules.OrderTables, pl.DataFrame,
                                                                     pl.DataFrame]:
    """Rebuild the orders ``keys`` from all their observations: ``(their rows, what the orders table held for
    them before, their order ids)``."""
    headers = select_keys(con, "stage.order_headers", keys)
    with registered(con, headers.select("capture_id")) as ids:
        lines = con.execute(f"SELECT * FROM stage.order_lines SEMI JOIN {ids} USING (capture_id)").pl()  # noqa: S608
    tables = order_rules.build_orders(headers, lines, aliases)
    del headers, lines
    ids = keys.select(order_rules.order_id_expr().alias("order_id"))
    before = select_keys(con, "core.orders", ids, "order_id, channel, customer_ref, customer_id, "
                         "customer_po, cancelled_at, order_date")
    return tables, before, ids


def _publish(con, parts: PartFiles, *, deleted: bool) -> None:
    """Upsert the staged batches: delete the rebuilt orders' rows from the four order tables (unless the tables
    were emptied: ``deleted``), insert the parts in the order they were built (the files in part order, each
    file's rows in order: DuckDB keeps a scan's order on insert) inside the caller's transaction."""
    ids = parts.files("ids")
    for name in TABLES:
        if ids and not deleted:
            con.execute(f"DELETE FROM core.{name} WHERE order_id IN "  # noqa: S608 - names from code
                        "(SELECT order_id FROM read_parquet(?))", [ids])
        parts.insert_into(con, f"core.{name}", name)


def mark_pending(con, asset: str, days: pl.Series, now: datetime) -> None:
    """Mark the partitions ``days`` of ``asset`` as needing a rebuild (kept until it is rebuilt)."""
    rows = pl.DataFrame({"asset": asset, "partition_key": days.cast(pl.String), "since": now},
                        schema={"asset": pl.String, "partition_key": pl.String, "since": pl.Datetime("us", "UTC")})
    with registered(con, rows) as r:
        con.execute(f"INSERT INTO ops.pending_partitions BY NAME SELECT * FROM {r} ANTI JOIN "  # noqa: S608
                    "ops.pending_partitions USING (asset, partition_key)")


def pending_days(wh: Warehouse, asset: str = "core.daily_sales") -> list[date]:
    """The partitions of ``asset`` marked for a rebuild, oldest first."""
    df = wh.read("SELECT partition_key FROM ops.pending_partitions WHERE asset = ? ORDER BY 1", [asset])
    return [date.fromisoformat(k) for k in df["partition_key"]]


def _duplicate_groups(touched: pl.DataFrame) -> pl.DataFrame:
    """``customer_key, _po``: the probable-duplicate groups of the orders ``touched`` (with a customer PO)."""
    return (touched.filter(pl.col("customer_po").is_not_null()).select(order_rules.duplicate_group())
            .drop_nulls().unique())


def _refresh_duplicates(con, groups: pl.DataFrame) -> pl.DataFrame:
    """Recompute the probable-duplicate ``groups`` (those the rebuilt orders were or are in) from the live
    orders; returns their new rows."""
    with registered(con, groups.select("customer_key").unique()) as g:
        key = "coalesce(customer_id, channel || ':' || customer_ref)"
        members = con.execute("SELECT order_id, channel, customer_ref, customer_id, customer_po, cancelled_at "  # noqa: S608
                              f"FROM core.orders WHERE customer_po IS NOT NULL "
                              f"AND {key} IN (SELECT customer_key FROM {g})").pl()
        old = con.execute(f"SELECT * FROM core.probable_duplicates "  # noqa: S608
                          f"WHERE customer_key IN (SELECT customer_key FROM {g})").pl()
    in_groups = ["customer_key", "_po"]
    members = members.with_columns(order_rules.duplicate_group()).join(groups, on=in_groups, how="semi")
    old = old.with_columns(pl.col("customer_po").str.strip_chars().str.to_uppercase().alias("_po")).join(
        groups, on=in_groups, how="semi")
    dup = order_rules.probable_duplicates(members.drop(in_groups))
    replace_keys(con, "core.probable_duplicates", old.select("customer_key", "customer_po", "order_id"), dup)
    return dup


_DAILY_ORDER_COLUMNS = ("order_id", "order_date", "channel", "currency", "line_count", "items_subtotal",
                        "discount_total", "tax_total", "order_total", "unpriced_lines", "cancelled_at")


def build_daily_sales(wh: Warehouse, start: date, end: date) -> pl.DataFrame:
    """Replace the partitions ``[start, end]`` of core.daily_sales (delete + insert, one transaction) and clear
    their marks in ``ops.pending_partitions``. Two SQL range reads: the cost follows the range's orders."""
    with wh.transaction() as con:
        # only the columns the aggregate reads (a day of TPC-H SF 1: 6M lines; every column was 6.7 GB)
        orders = con.execute(f"SELECT {', '.join(_DAILY_ORDER_COLUMNS)} FROM core.orders "  # noqa: S608 (from code)
                             "WHERE order_date BETWEEN ? AND ?", [start, end]).pl()
        lines = con.execute(
            "SELECT l.order_id, l.quantity FROM core.order_lines l JOIN core.orders o USING (order_id) "
            "WHERE o.order_date BETWEEN ? AND ?", [start, end],
        ).pl()
        daily = order_rules.daily_sales(orders, lines, start, end)
        replace_where(con, "core.daily_sales", "order_date BETWEEN ? AND ?", [start, end], daily)
        con.execute("DELETE FROM ops.pending_partitions WHERE asset = ? AND partition_key BETWEEN ? AND ?",
                    ["core.daily_sales", start.isoformat(), end.isoformat()])
    return daily
