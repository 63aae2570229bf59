"""B2B portal channel: orders read incrementally from the portal's relational database (SQLAlchemy 2.1).

The portal schema
-----------------
Defined here with SQLAlchemy Core (:data:`portal_tables`); the demo generator and the tests create it with
:func:`create_portal_schema`. ``portal_orders`` holds one row per order (header), ``portal_order_lines`` its
lines. Deviations from a plain transcription of the spec, all in the direction of integrity:
``status`` is NOT NULL (default ``'submitted'``) with a CHECK on ``'submitted' | 'cancelled'``, and
``UNIQUE (order_id, line_no)`` on the lines (its index also serves the lookup of an order's lines).

Convention: any change to an order or to one of its lines bumps ``portal_orders.updated_at``, in the
same transaction (:func:`upsert_portal_order` does this). The reader relies on it: it never looks at
lines on their own, and an edited order is re-read whole and becomes a new version downstream. Hard
deletes are not seen (the portal cancels orders: ``status = 'cancelled'``); a cancelled order's
``cancelled_at`` is its ``updated_at`` (the portal stores no separate cancellation time).

Incremental read
----------------
:func:`read_changes` pages through ``portal_orders`` by the keyset ``(updated_at, order_id)``: each batch
is the next ``batch_size`` orders with ``(updated_at, order_id) > watermark`` in that order, joined to
all their current lines in ONE statement (one snapshot, so a header and its lines are consistent). The
tie-breaker ``order_id`` makes orders sharing an ``updated_at`` across a batch boundary read exactly once.
Each batch comes with the new watermark; the caller persists it only after the batch is committed
downstream, so a crash re-reads (at least once) and never skips. A connection is held only while a batch
is fetched, never while the caller processes it. Only SQLAlchemy expressions with bound parameters.

Late commits: a portal transaction that commits after a later-stamped one has been read (PostgreSQL
``now()`` is the transaction *start*) would land behind the watermark and be missed. Pass ``until`` (e.g.
``now - the portal's longest transaction``) to read only rows stamped before it; the default reads all.

Types across backends
---------------------
- Timestamps (:class:`UtcDateTime`): PostgreSQL ``TIMESTAMP WITH TIME ZONE``; SQLite has no zone, so
  values are stored as UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (fixed width: text order = time order, which
  the keyset comparison relies on). Writes must be timezone-aware (naive datetimes are refused); reads
  are always aware UTC whatever the PostgreSQL session ``TimeZone``.
- Decimals (:class:`ExactNumeric`): PostgreSQL ``NUMERIC(p, s)``, exact. SQLite has no decimal type and
  its NUMERIC affinity would store a binary float, so there the column is VARCHAR holding the exact
  decimal text at the column's scale (``3`` is stored ``3.0000`` like PostgreSQL does). Floats are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine, Row

from som_pipeline import money
from som_pipeline.hashing import sha256_text
from som_pipeline.ingest.common import RAW_COLUMNS, Captured, ParseResult, Rejection, normalise

CHANNEL = "b2b_portal"
RECORD_UNIT = "order_line"
SOURCE_TABLE = "portal_orders"


# ------------------------------------------------------------------------------------------------
# Column types that behave the same on PostgreSQL and SQLite
# ------------------------------------------------------------------------------------------------
class UtcDateTime(sa.types.TypeDecorator):
    """TIMESTAMP WITH TIME ZONE; aware UTC in and out (SQLite: naive UTC text)."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"portal timestamps must be timezone-aware datetimes, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_PLAIN_DECIMAL = re.compile(money.DECIMAL_RE)


class ExactNumeric(sa.types.TypeDecorator):
    """NUMERIC(p, s), exact on every backend (SQLite: decimal text at scale s). Never a float."""

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.precision, self.scale = precision, scale

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return super().load_dialect_impl(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float | bool) or not isinstance(value, Decimal | int | str):
            raise TypeError(f"exact decimals only (Decimal, int or str), got {type(value).__name__} {value!r}")
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        if dialect.name != "sqlite":
            return d
        if not d.is_finite():
            return str(d)
        precision, scale = self.precision, self.scale
        q = d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)  # what PostgreSQL does
        if q and q.adjusted() + 1 > precision - scale:
            raise ValueError(f"numeric field overflow: {value} does not fit NUMERIC({precision},{scale})")
        return format(q, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, float):  # only if something bypassed these definitions
            return Decimal(repr(value))
        if isinstance(value, int):
            return Decimal(value)
        text = str(value).strip()
        return Decimal(text) if _PLAIN_DECIMAL.match(text) else value  # junk stays text: normalise rejects it


# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------
portal_tables = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
# BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" autoincrements (64-bit anyway).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

portal_orders = sa.Table(
    "portal_orders",
    portal_tables,
    sa.Column("order_id", _ID, primary_key=True, autoincrement=True),
    sa.Column("order_number", sa.String(40), nullable=False, unique=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("po_number", sa.String(60)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("status", sa.String(20), nullable=False, default="submitted", server_default="submitted"),
    sa.Column("ship_to_name", sa.String()),
    sa.Column("ship_to_company", sa.String()),
    sa.Column("ship_to_line1", sa.String()),
    sa.Column("ship_to_line2", sa.String()),
    sa.Column("ship_to_city", sa.String()),
    sa.Column("ship_to_region", sa.String()),
    sa.Column("ship_to_postal_code", sa.String()),
    sa.Column("ship_to_country", sa.String()),
    sa.Column("ship_method", sa.String()),
    sa.Column("promo_code", sa.String()),
    sa.Column("ship_complete", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
    sa.Column("shipping_amount", ExactNumeric(18, 2), nullable=False, default=Decimal("0"),
              server_default="0.00"),
    sa.CheckConstraint("status IN ('submitted', 'cancelled')", name="status"),
    sa.Index("ix_portal_orders_updated_at_order_id", "updated_at", "order_id"),
)

portal_order_lines = sa.Table(
    "portal_order_lines",
    portal_tables,
    sa.Column("line_id", _ID, primary_key=True, autoincrement=True),
    sa.Column("order_id", _ID, sa.ForeignKey("portal_orders.order_id"), nullable=False),
    sa.Column("line_no", sa.Integer(), nullable=False),
    sa.Column("sku", sa.String(64)),
    sa.Column("description", sa.String()),
    sa.Column("quantity", ExactNumeric(18, 4)),
    sa.Column("unit_price", ExactNumeric(18, 4)),
    sa.Column("discount_pct", ExactNumeric(9, 4)),
    sa.Column("tax_rate", ExactNumeric(9, 6)),
    # Also the index on order_id (leading column) the reader's join uses.
    sa.UniqueConstraint("order_id", "line_no"),
)

# Written back by fulfilment (services/fulfilment.py): what shipped for a portal order, once per shipment.
portal_shipments = sa.Table(
    "portal_shipments",
    portal_tables,
    sa.Column("shipment_id", sa.String(40), primary_key=True),
    sa.Column("order_number", sa.String(40), nullable=False, index=True),
    sa.Column("carrier", sa.String(20), nullable=False),
    sa.Column("service", sa.String(40), nullable=False),
    sa.Column("shipped_at", UtcDateTime(), nullable=False),
    sa.Column("packages", sa.Integer(), nullable=False),
    sa.Column("tracking_numbers", sa.String(), nullable=False),
    sa.Column("lines", sa.String(), nullable=False),  # JSON [{"line_no", "sku", "quantity"}]
)

HEADER_COLUMNS = [c.name for c in portal_orders.columns]
LINE_COLUMNS = [c.name for c in portal_order_lines.columns if c.name != "order_id"]
_EDITABLE_HEADER = [c for c in HEADER_COLUMNS if c not in ("order_id", "updated_at")]
_EDITABLE_LINE = [c for c in LINE_COLUMNS if c != "line_id"]


def create_portal_schema(engine: Engine | Connection) -> None:
    """Create the portal tables and indexes if missing (idempotent; honours ``schema_translate_map``)."""
    portal_tables.create_all(engine, checkfirst=True)


def upsert_portal_order(
    conn: Connection,
    header: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]] | None,
    updated_at: datetime,
) -> int:
    """Insert or edit an order (by ``order_number``) the way the portal does; returns its ``order_id``.

    ``header``: ``portal_orders`` columns (``order_number`` required; ``account_id`` and ``created_at`` too
    for a new order); on an edit only the given columns change. ``lines``: the order's complete new line
    list (``line_no`` defaults to the position); lines are matched by ``line_no`` so an unchanged line
    keeps its ``line_id``, lines absent from the list are deleted. ``None`` keeps the lines as they are.
    ``updated_at`` is always bumped and must move forward. Runs in the caller's transaction.
    """
    unknown = set(header) - set(_EDITABLE_HEADER)
    if unknown:
        raise ValueError(f"not editable portal_orders columns: {sorted(unknown)}")
    number = header.get("order_number")
    if not number:
        raise ValueError("header needs an order_number")
    if not isinstance(updated_at, datetime) or updated_at.tzinfo is None:
        raise ValueError(f"updated_at must be a timezone-aware datetime, got {updated_at!r}")
    o, li = portal_orders, portal_order_lines
    found = conn.execute(
        sa.select(o.c.order_id, o.c.updated_at).where(o.c.order_number == number).with_for_update()
    ).first()
    if found is None:
        res = conn.execute(sa.insert(o).values(**header, updated_at=updated_at))
        order_id = int(res.inserted_primary_key[0])
    else:
        order_id, previous = int(found.order_id), found.updated_at
        if updated_at <= previous:
            raise ValueError(f"updated_at {updated_at.isoformat()} does not move forward from "
                             f"{previous.isoformat()} (order {number})")
        changes = {k: v for k, v in header.items() if k != "order_number"}
        conn.execute(sa.update(o).where(o.c.order_id == order_id).values(**changes, updated_at=updated_at))
    if lines is None:
        return order_id

    current = dict(conn.execute(sa.select(li.c.line_no, li.c.line_id).where(li.c.order_id == order_id)).all())
    seen: set[int] = set()
    inserts: list[dict[str, Any]] = []
    for pos, line in enumerate(lines, 1):
        bad = set(line) - set(_EDITABLE_LINE)
        if bad:
            raise ValueError(f"not editable portal_order_lines columns: {sorted(bad)}")
        values = {c: line.get(c) for c in _EDITABLE_LINE}
        values["line_no"] = line_no = int(line.get("line_no", pos))
        if line_no in seen:
            raise ValueError(f"line_no {line_no} given twice for order {number}")
        seen.add(line_no)
        if line_no in current:
            conn.execute(sa.update(li).where(li.c.line_id == current[line_no]).values(**values))
        else:
            inserts.append({**values, "order_id": order_id})
    gone = [lid for no, lid in current.items() if no not in seen]
    if gone:
        conn.execute(sa.delete(li).where(li.c.line_id.in_(gone)))
    if inserts:
        conn.execute(sa.insert(li), inserts)
    return order_id


# ------------------------------------------------------------------------------------------------
# Watermark and batches
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Watermark:
    """High-water mark of the keyset read: the last ``(updated_at, order_id)`` delivered."""

    ts: datetime
    order_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.ts, datetime) or self.ts.tzinfo is None:
            raise ValueError(f"watermark ts must be a timezone-aware datetime, got {self.ts!r}")
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        object.__setattr__(self, "order_id", int(self.order_id))

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts.isoformat(timespec="microseconds"), "order_id": self.order_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Watermark:
        ts = data["ts"]
        return cls(datetime.fromisoformat(ts) if isinstance(ts, str) else ts, int(data["order_id"]))


@dataclass(frozen=True)
class PortalBatch:
    """One batch of changed orders, each with all its current lines."""

    result: ParseResult  # channel "b2b_portal", record_unit "order_line"
    watermark: Watermark  # persist after the batch is committed downstream
    previous: Watermark | None  # the watermark this batch was read after
    orders_read: int
    lines_read: int
    content_sha256: str  # SHA-256 of the batch's raw records: use as normalise's file_sha256


def source_identity(url: str | sa.URL) -> str:
    """The portal's identity for the watermark key and ``source_file``: the URL without credentials."""
    u = sa.make_url(url).difference_update_query(["password", "sslpassword"])
    bare = sa.URL.create(u.drivername, username=u.username, host=u.host, port=u.port, database=u.database,
                         query=u.query)  # URL.set(password=None) would keep the password
    return f"{bare.render_as_string(hide_password=False)}#{SOURCE_TABLE}"


def read_changes(
    engine: Engine,
    watermark: Watermark | None,
    batch_size: int = 5000,
    *,
    until: datetime | None = None,
) -> Iterator[PortalBatch]:
    """Orders changed after ``watermark`` (all of them when None), ``batch_size`` orders per batch.

    Lazy: each ``next()`` runs one query on its own short-lived connection. Yields nothing when there is
    nothing new. ``until`` (aware datetime): read only orders with ``updated_at < until`` (late-commit guard).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    after = watermark
    while True:
        with engine.connect() as conn:
            rows = conn.execute(_batch_query(after, batch_size, until)).all()
        if not rows:
            return
        batch = _to_batch(rows, after)
        yield batch
        if batch.orders_read < batch_size:
            return
        after = batch.watermark


def normalise_batch(batch: PortalBatch, *, source_file: str, captured_at: datetime | None = None) -> Captured:
    """:func:`common.normalise` with this channel's settings (stated line numbers, batch content hash)."""
    return normalise(
        batch.result,
        source_file=source_file,
        file_sha256=batch.content_sha256,
        captured_at=captured_at,
        line_no_given=True,
    )


def _batch_query(after: Watermark | None, batch_size: int, until: datetime | None) -> sa.Select[Any]:
    o, li = portal_orders, portal_order_lines
    page = sa.select(o)
    if after is not None:
        page = page.where(
            sa.tuple_(o.c.updated_at, o.c.order_id)
            > sa.tuple_(
                sa.bindparam("wm_ts", after.ts, type_=UtcDateTime()),
                sa.bindparam("wm_order_id", after.order_id, type_=sa.BigInteger()),
            )
        )
    if until is not None:
        page = page.where(o.c.updated_at < sa.bindparam("until", until, type_=UtcDateTime()))
    p = page.order_by(o.c.updated_at, o.c.order_id).limit(batch_size).subquery("page")
    return (
        sa.select(*p.c, *(li.c[c] for c in LINE_COLUMNS))
        .select_from(p.outerjoin(li, li.c.order_id == p.c.order_id))
        .order_by(p.c.updated_at, p.c.order_id, li.c.line_no, li.c.line_id)
    )


# ---- DB values -> text ----------------------------------------------------------------------------
def _ts_text(v: Any) -> str | None:
    if v is None:
        return None
    return v.astimezone(UTC).isoformat(timespec="microseconds") if isinstance(v, datetime) else str(v)


def _num_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float):
        v = Decimal(repr(v))
    return format(v, "f") if isinstance(v, Decimal | int) else str(v)  # exact, never exponent notation


def _bool_text(v: Any) -> str | None:
    return None if v is None else ("true" if v else "false")


def _plain_text(v: Any) -> str | None:
    return None if v is None else str(v)


def _converter(col: sa.Column[Any]) -> Any:
    if isinstance(col.type, UtcDateTime):
        return _ts_text
    if isinstance(col.type, ExactNumeric):
        return _num_text
    if isinstance(col.type, sa.Boolean):
        return _bool_text
    return _plain_text


_CONVERTERS = {c.name: _converter(c) for c in (*portal_orders.columns, *portal_order_lines.columns)}
_HEADER_MAP = {  # raw-row field <- portal_orders column
    "order_ref": "order_number",
    "order_ts": "created_at",
    "customer_ref": "account_id",
    "customer_po": "po_number",
    "currency": "currency",
    **{f: f for f in ("ship_to_name", "ship_to_company", "ship_to_line1", "ship_to_line2", "ship_to_city",
                      "ship_to_region", "ship_to_postal_code", "ship_to_country", "ship_method", "promo_code",
                      "ship_complete")},
    "channel_status": "status",
    "source_updated_at": "updated_at",
    "shipping_total": "shipping_amount",
    # line fields
    "line_no": "line_no",
    "line_ref": "line_id",
    "sku": "sku",
    "description": "description",
    "quantity": "quantity",
    "unit_price": "unit_price",
    "discount_pct": "discount_pct",
    "tax_rate": "tax_rate",
}


def _to_batch(rows: Sequence[Row[Any]], after: Watermark | None) -> PortalBatch:
    names = list(rows[0]._fields)
    columns = list(zip(*rows, strict=True))
    text = pl.DataFrame(
        {n: [_CONVERTERS[n](v) for v in col] for n, col in zip(names, columns, strict=True)},
        schema={n: pl.String for n in names},
    )
    last = rows[-1]
    new_mark = Watermark(last.updated_at, last.order_id)

    number = pl.col("order_number").fill_null("?")
    stamp = pl.col("updated_at")
    lined = pl.col("line_id").is_not_null()
    header_raw = pl.struct(HEADER_COLUMNS).alias("portal_orders")
    raw = (
        pl.when(lined)
        .then(pl.struct(header_raw, pl.struct(LINE_COLUMNS).alias("portal_order_lines")).struct.json_encode())
        .otherwise(pl.struct(header_raw).struct.json_encode())  # an order without lines: its header alone
    )
    text = text.with_columns(raw.alias("_raw"))

    location = pl.format(
        "portal_order_lines line_id={} (order {}, portal_orders.order_id={}) @ updated_at {}",
        pl.col("line_id"), number, pl.col("order_id"), stamp,
    )
    derived = {
        "record_id": pl.format("portal_order_lines.line_id={}", pl.col("line_id")),
        "record_kind": pl.lit("order_line"),
        "record_location": location,
        "order_key": pl.format("{}@{}", number, stamp),
        "location": location,
        "raw": pl.col("_raw"),
        "cancelled_at": pl.when(pl.col("status").str.strip_chars().str.to_lowercase() == "cancelled").then(stamp),
        **{field: pl.col(col) for field, col in _HEADER_MAP.items()},
    }
    line_rows = text.filter(lined).select(
        [derived.get(c, pl.lit(None, dtype=pl.String)).cast(pl.String).alias(c) for c in RAW_COLUMNS]
    )

    rejected = [
        Rejection(
            record_id=f"portal_orders.order_id={r['order_id']}",
            record_kind="order",
            location=f"portal_orders order_id={r['order_id']} (order {r['order_number']}) @ updated_at {r['updated_at']}",
            reason_code="NO_LINES",
            message=f"order {r['order_number']} has no lines in portal_order_lines",
            raw=r["_raw"],
            order_ref=r["order_number"],
        )
        for r in text.filter(~lined).iter_rows(named=True)
    ]
    orders = text["order_id"].n_unique()
    return PortalBatch(
        result=ParseResult(
            channel=CHANNEL,
            record_unit=RECORD_UNIT,
            rows=line_rows,
            rejected=rejected,
            extras={"orders_read": orders, "watermark_from": after.to_dict() if after else None,
                    "watermark_to": new_mark.to_dict()},
        ),
        watermark=new_mark,
        previous=after,
        orders_read=orders,
        lines_read=line_rows.height,
        content_sha256=sha256_text("\n".join(text["_raw"].to_list())),
    )


__all__ = [
    "CHANNEL",
    "ExactNumeric",
    "PortalBatch",
    "UtcDateTime",
    "Watermark",
    "create_portal_schema",
    "normalise_batch",
    "portal_order_lines",
    "portal_orders",
    "portal_tables",
    "read_changes",
    "source_identity",
    "upsert_portal_order",
]
