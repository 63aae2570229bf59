"""B2B portal channel: incremental keyset reads from SQLite and PostgreSQL (never skipped).

PostgreSQL comes from SOM_TEST_POSTGRES_URL (default: the local CI server); every test gets its own
schema (schema_translate_map), dropped afterwards. The PostgreSQL session runs in a non-UTC time zone on
purpose: what the reader emits must not depend on it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateSchema, DropSchema

from som_pipeline.ingest.b2b import (
    PortalBatch,
    Watermark,
    create_portal_schema,
    normalise_batch,
    portal_order_lines,
    portal_orders,
    read_changes,
    source_identity,
    upsert_portal_order,
)
from som_pipeline.ingest.common import Captured

PG_URL = os.environ.get("SOM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        eng = sa.create_engine(f"sqlite:///{tmp_path / 'portal.sqlite'}")
        create_portal_schema(eng)
        create_portal_schema(eng)  # idempotent
        yield eng
        eng.dispose()
        return
    if not PG_URL:
        pytest.fail("SOM_TEST_POSTGRES_URL is set but empty: point it at a PostgreSQL server "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)", pytrace=False)
    base = sa.create_engine(PG_URL, poolclass=NullPool,
                            connect_args={"options": "-c timezone=America/New_York"})
    schema = f"som_test_{uuid.uuid4().hex}"
    error = None
    try:
        with base.begin() as conn:
            conn.execute(CreateSchema(schema))
    except sa.exc.OperationalError as e:
        error = e.orig
    if error is not None:
        pytest.fail(f"PostgreSQL tests need a server at {sa.make_url(PG_URL).render_as_string()} "
                    f"(set SOM_TEST_POSTGRES_URL); connecting failed: {error}", pytrace=False)
    eng = base.execution_options(schema_translate_map={None: schema})
    try:
        create_portal_schema(eng)
        create_portal_schema(eng)  # idempotent
        yield eng
    finally:
        with base.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        base.dispose()


# ---- helpers ------------------------------------------------------------------------------------
def header(n: int, **kw) -> dict:
    return {
        "order_number": f"B2B-{n:04d}",
        "account_id": "ACCT-7",
        "po_number": f"PO-{n}",
        "created_at": T0,
        "currency": "USD",
        "ship_to_name": "Dock 4",
        "ship_to_company": "Acme Corp",
        "ship_to_line1": "1 Main St",
        "ship_to_city": "Springfield",
        "ship_to_region": "IL",
        "ship_to_postal_code": "62701",
        "ship_to_country": "us",
        "ship_method": "UPSG",
        "ship_complete": True,
        "shipping_amount": Decimal("12.50"),
        **kw,
    }


def line(no: int, quantity: str | None = "2", unit_price: str | None = "10.25", **kw) -> dict:
    dec = {k: None if v is None else Decimal(v) for k, v in
           {"quantity": quantity, "unit_price": unit_price, **kw}.items()}
    return {"line_no": no, "sku": f"SKU-{no}", "description": f"item {no}", **dec}


def put(engine: sa.Engine, hdr: dict, lines: list[dict] | None, ts: datetime) -> int:
    with engine.begin() as conn:
        return upsert_portal_order(conn, hdr, lines, ts)


def capture(batch: PortalBatch) -> Captured:
    cap = normalise_batch(batch, source_file="portal-test#portal_orders")
    assert batch.result.records_received == cap.records_received
    assert cap.records_received == cap.records_accepted + cap.records_quarantined  # conservation per batch
    return cap


def orders_of(batch: PortalBatch) -> list[str]:
    refs = batch.result.rows.unique("order_ref", maintain_order=True)["order_ref"].to_list()
    return refs + [r.order_ref for r in batch.result.rejected]


# ---- tests --------------------------------------------------------------------------------------
def test_first_read_gets_everything_then_nothing(engine):
    ids = [put(engine, header(1), [line(1), line(2)], T0),
           put(engine, header(2, status="submitted"), [line(1)], T0 + timedelta(minutes=1)),
           put(engine, header(3), [line(1), line(2), line(3)], T0 + timedelta(minutes=2))]
    batches = list(read_changes(engine, None))
    assert len(batches) == 1
    (b,) = batches
    assert (b.result.channel, b.result.record_unit) == ("b2b_portal", "order_line")
    assert b.orders_read == 3 and b.lines_read == 6 and b.result.records_received == 6
    assert b.watermark == Watermark(T0 + timedelta(minutes=2), ids[2])
    assert Watermark.from_dict(json.loads(json.dumps(b.watermark.to_dict()))) == b.watermark

    row = b.result.rows.filter(order_ref="B2B-0001", line_no="2").row(0, named=True)
    lid = row["line_ref"]
    assert row["record_id"] == f"portal_order_lines.line_id={lid}"
    assert row["record_kind"] == "order_line"
    assert row["location"] == row["record_location"] == (
        f"portal_order_lines line_id={lid} (order B2B-0001, portal_orders.order_id={ids[0]}) "
        "@ updated_at 2026-03-02T09:00:00.000000+00:00")
    assert row["order_key"] == "B2B-0001@2026-03-02T09:00:00.000000+00:00"
    raw = json.loads(row["raw"])
    assert raw["portal_orders"]["order_number"] == "B2B-0001"
    assert raw["portal_order_lines"] == {"line_id": lid, "line_no": "2", "sku": "SKU-2", "description": "item 2",
                                         "quantity": "2.0000", "unit_price": "10.2500", "discount_pct": None,
                                         "tax_rate": None}

    cap = capture(b)
    assert cap.records_accepted == 6 and cap.orders_accepted == 3 and cap.records_quarantined == 0
    h = cap.headers.filter(channel_order_ref="B2B-0001").row(0, named=True)
    assert (h["customer_ref"], h["customer_po"], h["ship_to_country"], h["ship_method"]) == (
        "ACCT-7", "PO-1", "US", "UPSG")
    assert h["order_ts"] == T0 and h["source_updated_at"] == T0
    assert h["ship_complete"] is True and h["channel_status"] == "submitted" and h["cancelled_at"] is None
    assert h["shipping_total"] == Decimal("12.50")
    assert h["items_subtotal"] == Decimal("41.00") and h["order_total"] == Decimal("53.50")

    assert list(read_changes(engine, b.watermark)) == []


def test_edited_order_is_reread_whole(engine):
    for n in (1, 2, 3):
        put(engine, header(n), [line(1), line(2), line(3)], T0 + timedelta(minutes=n))
    (first,) = list(read_changes(engine, None))
    before = first.result.rows.filter(order_ref="B2B-0002").sort("line_no")
    put(engine, header(2), [line(1), line(2, quantity="7"), line(3)], T0 + timedelta(hours=1))

    (b,) = list(read_changes(engine, first.watermark))
    assert orders_of(b) == ["B2B-0002"]
    after = b.result.rows.sort("line_no")
    assert after["line_no"].to_list() == ["1", "2", "3"]
    assert after["quantity"].to_list() == ["2.0000", "7.0000", "2.0000"]
    assert after["line_ref"].to_list() == before["line_ref"].to_list()  # line_ids survive an edit
    assert after["source_updated_at"].unique().to_list() == ["2026-03-02T10:00:00.000000+00:00"]
    cap, cap_before = capture(b), capture(first)
    assert cap.lines.filter(line_no=2)["quantity"].item() == 7
    old_hash = cap_before.headers.filter(channel_order_ref="B2B-0002")["content_hash"].item()
    assert cap.headers["content_hash"].item() != old_hash  # a new version downstream
    assert list(read_changes(engine, b.watermark)) == []


def test_removed_line_disappears_from_the_next_version(engine):
    put(engine, header(1), [line(1), line(2), line(3)], T0)
    (first,) = list(read_changes(engine, None))
    put(engine, header(1), [line(1), line(3)], T0 + timedelta(seconds=1))
    (b,) = list(read_changes(engine, first.watermark))
    assert b.result.rows["line_no"].to_list() == ["1", "3"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(portal_order_lines)).scalar_one() == 2


def test_same_updated_at_across_batch_boundary_read_once(engine):
    tie = T0 + timedelta(minutes=5)
    put(engine, header(1), [line(1)], T0)
    for n in (2, 3, 4):
        put(engine, header(n), [line(1), line(2)], tie)  # three orders share one updated_at
    put(engine, header(5), [line(1)], tie + timedelta(microseconds=1))

    batches = list(read_changes(engine, None, batch_size=2))
    assert [orders_of(b) for b in batches] == [
        ["B2B-0001", "B2B-0002"], ["B2B-0003", "B2B-0004"], ["B2B-0005"]]
    assert batches[0].watermark.ts == tie == batches[1].watermark.ts  # the boundary falls inside the tie
    assert batches[0].watermark < batches[1].watermark < batches[2].watermark
    ids = [rid for b in batches for rid in b.result.rows["record_id"].to_list()]
    assert len(ids) == len(set(ids)) == 8

    # Restarting from a watermark persisted mid-tie returns exactly the rest.
    rest = list(read_changes(engine, batches[0].watermark, batch_size=10))
    assert [orders_of(b) for b in rest] == [["B2B-0003", "B2B-0004", "B2B-0005"]]


def test_batches_are_bounded_and_add_up(engine):
    for n in range(1, 6):
        put(engine, header(n), [line(i) for i in range(1, n + 1)], T0 + timedelta(minutes=n))
    seen: list[str] = []
    statements: list[tuple[str, object]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def spy(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    small = list(read_changes(engine, None, batch_size=2))
    sa.event.remove(engine, "before_cursor_execute", spy)
    assert [b.orders_read for b in small] == [2, 2, 1]
    assert len(statements) == 3  # one statement per batch, none after the short last page
    assert "2026" not in statements[1][0] and "ACCT" not in statements[1][0]  # watermark bound, not inlined
    for b in small:
        cap = capture(b)
        assert cap.records_accepted == b.lines_read
        seen += b.result.rows["record_id"].to_list()
    (whole,) = list(read_changes(engine, None))
    assert sorted(seen) == sorted(whole.result.rows["record_id"].to_list())
    assert len(seen) == sum(range(1, 6)) == 15
    assert small[-1].watermark == whole.watermark
    assert small[1].previous == small[0].watermark


def test_cancelled_order(engine):
    put(engine, header(1), [line(1)], T0)
    (first,) = list(read_changes(engine, None))
    cancel_ts = T0 + timedelta(days=1, seconds=3)
    put(engine, {"order_number": "B2B-0001", "status": "cancelled"}, None, cancel_ts)
    (b,) = list(read_changes(engine, first.watermark))
    row = b.result.rows.row(0, named=True)
    assert (row["channel_status"], row["cancelled_at"]) == ("cancelled", "2026-03-03T09:00:03.000000+00:00")
    h = capture(b).headers.row(0, named=True)
    assert h["channel_status"] == "cancelled" and h["cancelled_at"] == cancel_ts and h["line_count"] == 1


def test_numeric_values_stay_exact(engine):
    lines = [
        line(1, quantity="1", unit_price="0.1"),
        line(2, quantity="1", unit_price="0.2"),
        line(3, quantity="3", unit_price="1234567890.1235", discount_pct="12.5", tax_rate="0.0825"),
        line(4, quantity="1", unit_price="99999999999999.9999"),  # the largest NUMERIC(18,4)
    ]
    put(engine, header(1, shipping_amount=Decimal("0.30")), lines, T0)
    (b,) = list(read_changes(engine, None))
    rows = b.result.rows.sort("line_no")
    assert rows["unit_price"].to_list() == ["0.1000", "0.2000", "1234567890.1235", "99999999999999.9999"]
    assert rows["quantity"].to_list() == ["1.0000", "1.0000", "3.0000", "1.0000"]
    assert rows["discount_pct"][2] == "12.5000" and rows["tax_rate"][2] == "0.082500"
    assert rows["shipping_total"][0] == "0.30"
    cap = capture(b)
    ln = cap.lines.sort("line_no")
    assert ln["line_amount"].to_list()[:2] == [Decimal("0.10"), Decimal("0.20")]
    # 3 x 1234567890.1235 = 3703703670.3705 -> 3703703670.37; 12.5 % -> 462962958.80; tax on the net
    assert ln["line_amount"][2] == Decimal("3703703670.37")
    assert ln["discount_amount"][2] == Decimal("462962958.80")
    assert ln["tax_amount"][2] == Decimal("267361108.70")
    assert ln["unit_price"][3] == Decimal("99999999999999.9999")
    h = cap.headers.row(0, named=True)
    assert h["items_subtotal"] == Decimal("0.10") + Decimal("0.20") + Decimal("3703703670.37") + Decimal("100000000000000.00")
    assert h["shipping_total"] == Decimal("0.30")

    with pytest.raises(sa.exc.StatementError, match="exact decimals only"):
        put(engine, header(2), [{**line(1), "unit_price": 0.1}], T0)  # floats never reach the portal


def test_bad_data_in_the_database_is_quarantined(engine):
    put(engine, header(1), [line(1), line(2, quantity="-1")], T0)
    put(engine, header(2), [line(1, unit_price="0"), line(2)], T0)
    put(engine, header(3, currency="XXX"), [line(1)], T0)
    put(engine, header(4), [line(1, quantity="2.5"), line(2)], T0)
    put(engine, header(5), [line(1)], T0)
    put(engine, header(6), [line(1, quantity=None)], T0)
    (b,) = list(read_changes(engine, None))
    cap = capture(b)
    assert cap.headers["channel_order_ref"].to_list() == ["B2B-0005"]
    q = {(r["order_ref"], json.loads(r["raw"])["portal_order_lines"]["line_no"]): r["reason_code"]
         for r in cap.quarantine.iter_rows(named=True)}
    assert q == {
        ("B2B-0001", "1"): "ORDER_INCOMPLETE", ("B2B-0001", "2"): "BAD_QUANTITY",
        ("B2B-0002", "1"): "BAD_PRICE", ("B2B-0002", "2"): "ORDER_INCOMPLETE",
        ("B2B-0003", "1"): "UNKNOWN_CURRENCY",
        ("B2B-0004", "1"): "BAD_QUANTITY", ("B2B-0004", "2"): "ORDER_INCOMPLETE",
        ("B2B-0006", "1"): "MISSING_FIELD",
    }
    bad = cap.quarantine.filter(reason_code="BAD_QUANTITY", order_ref="B2B-0004").row(0, named=True)
    assert "'2.5000'" in bad["message"] and bad["record_kind"] == "order_line"
    assert bad["location"].startswith("portal_order_lines line_id=") and "(order B2B-0004," in bad["location"]
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (9, 1, 8)


def test_order_without_lines_is_no_lines(engine):
    oid = put(engine, header(1), [], T0)
    put(engine, header(2), [line(1)], T0 + timedelta(seconds=1))
    (b,) = list(read_changes(engine, None))
    (rej,) = b.result.rejected
    assert (rej.record_kind, rej.reason_code, rej.order_ref) == ("order", "NO_LINES", "B2B-0001")
    assert rej.record_id == f"portal_orders.order_id={oid}"
    assert json.loads(rej.raw)["portal_orders"]["order_number"] == "B2B-0001"
    cap = capture(b)
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (2, 1, 1)
    assert cap.quarantine.select("record_kind", "reason_code").row(0) == ("order", "NO_LINES")
    # The line-less order still moves the watermark when it is last.
    put(engine, header(1), [line(1)], T0 + timedelta(seconds=2))
    (again,) = list(read_changes(engine, b.watermark))
    assert orders_of(again) == ["B2B-0001"] and capture(again).records_accepted == 1


def test_timestamps_are_utc_on_every_backend(engine):
    paris = timezone(timedelta(hours=2))
    put(engine, header(1, created_at=datetime(2026, 3, 2, 11, 30, tzinfo=paris)), [line(1)],
        datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=paris))
    (b,) = list(read_changes(engine, None))
    row = b.result.rows.row(0, named=True)
    assert row["order_ts"] == "2026-03-02T09:30:00.000000+00:00"
    assert row["source_updated_at"] == "2026-03-02T10:00:00.123456+00:00"
    assert b.watermark.ts == datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(portal_orders.c.updated_at)).scalar_one()
    assert stored.utcoffset() == timedelta(0) and stored == b.watermark.ts
    with pytest.raises(ValueError, match="timezone-aware"):
        put(engine, header(2), [line(1)], datetime(2026, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="does not move forward"):
        put(engine, header(1), [line(1)], b.watermark.ts)


def test_until_holds_back_recent_rows(engine):
    put(engine, header(1), [line(1)], T0)
    put(engine, header(2), [line(1)], T0 + timedelta(minutes=10))
    (b,) = list(read_changes(engine, None, until=T0 + timedelta(minutes=5)))
    assert orders_of(b) == ["B2B-0001"]
    (rest,) = list(read_changes(engine, b.watermark))
    assert orders_of(rest) == ["B2B-0002"]


def test_source_identity_drops_credentials():
    assert source_identity("postgresql+psycopg://postgres@127.0.0.1:5432/test") == (
        "postgresql+psycopg://postgres@127.0.0.1:5432/test#portal_orders")
    masked = source_identity("postgresql+psycopg://app:s3cret@db:5432/portal?sslmode=require&password=x")
    assert masked == "postgresql+psycopg://app@db:5432/portal?sslmode=require#portal_orders"
    assert source_identity("sqlite:////srv/som/b2b_portal.sqlite") == "sqlite:////srv/som/b2b_portal.sqlite#portal_orders"
