"""The shared normaliser: field checks, whole-order capture, duplicates, conservation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from som_pipeline.ingest.common import (
    LINE_FIELDS,
    ParseResult,
    Rejection,
    decode_text,
    normalise,
    normalise_many,
    raw_frame,
)
from som_pipeline.reasons import REASONS
from tests.helpers import capture, order_rows

AT = datetime(2026, 10, 2, tzinfo=UTC)


def reasons(cap) -> dict[str, str]:
    return dict(cap.quarantine.select("location", "reason_code").rows())


def test_money_per_line_rounded_once_and_totals_are_sums():
    cap = capture(order_rows("A", [
        {"sku": "S1", "quantity": 3, "unit_price": "1.0050", "discount_pct": "10", "tax_rate": "0.0825"},
        {"sku": "S2", "quantity": 2, "unit_price": "5"},
    ]))
    h = cap.headers.row(0, named=True)
    assert (h["items_subtotal"], h["discount_total"], h["tax_total"], h["order_total"]) == (
        Decimal("13.02"), Decimal("0.30"), Decimal("0.22"), Decimal("12.94"))
    assert cap.lines["line_amount"].to_list() == [Decimal("3.02"), Decimal("10.00")]


def test_discount_rate_is_kept_with_the_line_and_the_discount_is_rate_times_amount_rounded_once():
    cap = capture(order_rows("A", [
        {"sku": "S1", "quantity": 7, "unit_price": "13.3300", "discount_pct": "12.3456", "tax_rate": "0.08"},
        {"sku": "S2", "quantity": 1, "unit_price": "5", "discount_pct": "0"},
        {"sku": "S3", "quantity": 1, "unit_price": "5"},
        {"sku": "S4", "quantity": 2, "unit_price": "9.99", "discount_amount": "1.00", "discount_pct": "50"},
    ]))
    ln = cap.lines.sort("line_no")
    # percent as given / 100, exactly; null where no rate is given or the discount is absolute
    assert ln["discount_rate"].to_list() == [Decimal("0.123456"), Decimal("0"), None, None]
    # 93.31 x 0.123456 = 11.51967936 -> 11.52 (exact product, one rounding)
    assert ln["discount_amount"].to_list() == [Decimal("11.52"), Decimal("0"), Decimal("0"), Decimal("1.00")]


def test_field_reason_codes():
    rows = (
        order_rows("Q0", [{"sku": "S", "quantity": 0, "unit_price": "1"}])
        + order_rows("QN", [{"sku": "S", "quantity": "-2", "unit_price": "1"}])
        + order_rows("QX", [{"sku": "S", "quantity": "ten", "unit_price": "1"}])
        + order_rows("QF", [{"sku": "S", "quantity": "2.5", "unit_price": "1"}])
        + order_rows("P0", [{"sku": "S", "quantity": 1, "unit_price": "0"}])
        + order_rows("PN", [{"sku": "S", "quantity": 1, "unit_price": "-1.00"}])
        + order_rows("PX", [{"sku": "S", "quantity": 1, "unit_price": "12,50"}])
        + order_rows("CU", [{"sku": "S", "quantity": 1, "unit_price": "1"}], currency="XYZ")
        + order_rows("DT", [{"sku": "S", "quantity": 1, "unit_price": "1"}], order_ts="2026-02-30T10:00:00Z")
        + order_rows("MS", [{"sku": "", "quantity": 1, "unit_price": "1"}])
        + order_rows("TR", [{"sku": "S", "quantity": 1, "unit_price": "1", "tax_rate": "8.25"}])
        + order_rows("DA", [{"sku": "S", "quantity": 1, "unit_price": "1", "discount_amount": "-1"}])
        + order_rows("LN", [{"sku": "S", "quantity": 1, "unit_price": "1", "line_no": "x"}])
        + order_rows("OK", [{"sku": "S", "quantity": 1, "unit_price": "1"}])
    )
    cap = capture(rows)
    got = dict(cap.quarantine.select("order_ref", "reason_code").rows())
    assert got == {
        "Q0": "BAD_QUANTITY", "QN": "BAD_QUANTITY", "QX": "BAD_QUANTITY", "QF": "BAD_QUANTITY",
        "P0": "BAD_PRICE", "PN": "BAD_PRICE", "PX": "BAD_PRICE", "CU": "UNKNOWN_CURRENCY", "DT": "BAD_DATE",
        "MS": "MISSING_FIELD", "TR": "BAD_RATE", "DA": "BAD_AMOUNT", "LN": "BAD_LINE_NO",
    }
    assert cap.headers["channel_order_ref"].to_list() == ["OK"]
    assert all(m for m in cap.quarantine["message"].to_list())


def test_order_is_captured_whole_or_not_at_all():
    cap = capture(order_rows("A", [{"sku": "S1", "quantity": 1, "unit_price": "1"},
                                   {"sku": "S2", "quantity": -1, "unit_price": "1"},
                                   {"sku": "S3", "quantity": 1, "unit_price": "1"}]))
    assert cap.headers.height == 0
    assert sorted(cap.quarantine["reason_code"].to_list()) == ["BAD_QUANTITY", "ORDER_INCOMPLETE", "ORDER_INCOMPLETE"]
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (3, 0, 3)


def test_exact_duplicate_line_is_dropped_conflicting_one_rejects_the_order():
    exact = order_rows("A", [{"sku": "S1", "quantity": 1, "unit_price": "1"}])
    exact += [dict(exact[0], record_id="copy", location="line 9", record_location="line 9")]
    cap = capture(exact)
    assert cap.headers["line_count"].to_list() == [1]
    assert cap.quarantine["reason_code"].to_list() == ["DUPLICATE_LINE"]

    conflict = order_rows("B", [{"sku": "S1", "quantity": 1, "unit_price": "1"}])
    conflict += [dict(conflict[0], record_id="c2", quantity="5")]
    cap = capture(conflict)
    assert cap.headers.height == 0
    assert set(cap.quarantine["reason_code"]) == {"DUPLICATE_LINE"}


def test_rows_of_one_order_must_agree_on_the_header():
    rows = order_rows("A", [{"sku": "S1", "quantity": 1, "unit_price": "1"},
                            {"sku": "S2", "quantity": 1, "unit_price": "1"}])
    rows[1]["order_ts"] = "2026-10-02T10:00:00Z"
    cap = capture(rows)
    assert set(cap.quarantine["reason_code"]) == {"INCONSISTENT_HEADER"}
    assert "order_ts" in cap.quarantine["message"][0]


def test_unpriced_lines_leave_totals_open():
    cap = capture(order_rows("A", [{"sku": "S1", "quantity": 4, "unit_price": ""}]))
    h = cap.headers.row(0, named=True)
    assert h["unpriced_lines"] == 1 and h["order_total"] is None and h["items_subtotal"] is None


def test_stated_line_amount_wins_and_unit_price_is_derived():
    cap = capture(order_rows("A", [{"sku": "S", "quantity": 3, "line_amount": "10.00", "unit_price": ""}]))
    ln = cap.lines.row(0, named=True)
    assert ln["line_amount"] == Decimal("10.00") and ln["unit_price"] == Decimal("3.3333")


def test_content_hash_ignores_where_it_came_from():
    a = capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}]), sha="1" * 64)
    b = capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}]), sha="2" * 64)
    c = capture(order_rows("A", [{"sku": "S", "quantity": 2, "unit_price": "1"}]), sha="3" * 64)
    assert a.headers["content_hash"][0] == b.headers["content_hash"][0] != c.headers["content_hash"][0]


def test_decode_policy():
    assert decode_text("héllo".encode())[1] == "utf-8"
    assert decode_text(b"\xef\xbb\xbfhi")[0] == "hi"
    assert decode_text("café €".encode("cp1252")) == ("café €", "cp1252")
    assert decode_text("hi".encode("utf-16")) == ("hi", "utf-16")
    for bad, code in ((b"", "EMPTY_FILE"), (b"  \n", "EMPTY_FILE"), (b"\x00\x01\x02binary", "BAD_ENCODING")):
        try:
            decode_text(bad)
        except Exception as e:  # noqa: BLE001
            assert e.reason_code == code
        else:
            raise AssertionError(bad)


def test_structural_rejections_count_as_records():
    pr = ParseResult("csv", "row", raw_frame(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}])),
                     [Rejection("row 9", "row", "line 10", "CSV_EXTRA_FIELDS", "too many fields", "a,b,c,d")])
    cap = normalise(pr, source_file="f.csv", file_sha256="0" * 64, line_no_given=True)
    assert (cap.records_received, cap.records_accepted, cap.records_quarantined) == (2, 1, 1)
    assert set(cap.quarantine["reason_code"]) <= set(REASONS)


field_text = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["1", "0", "-1", "2.5", "1.0050", "USD", "EUR",
                                                                         "2026-10-01", "2026-02-30", "x", ""]))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "order_ref": st.sampled_from(["A", "B", "C", None]),
    "order_ts": field_text, "currency": field_text, "sku": field_text, "quantity": field_text,
    "unit_price": field_text, "line_no": field_text, "tax_rate": field_text, "discount_pct": field_text,
}), max_size=12))
def test_conservation_holds_for_any_rows(rows):
    full = []
    for i, r in enumerate(rows):
        full.append({**r, "record_id": f"row {i}", "record_kind": "row", "record_location": f"line {i}",
                     "order_key": r["order_ref"] or f"row {i}", "location": f"line {i}", "raw": "x"})
    cap = normalise(ParseResult("csv", "row", raw_frame(full)), source_file="f", file_sha256="0" * 64, line_no_given=True)
    assert cap.records_received == len(rows) == cap.records_accepted + cap.records_quarantined
    assert cap.quarantine["quarantine_id"].n_unique() == cap.quarantine.height
    assert set(cap.quarantine["reason_code"]) <= set(REASONS)
    assert cap.lines.height <= len(rows)
    assert set(LINE_FIELDS) >= {"sku"}
    assert pl.Series(cap.headers["capture_id"]).n_unique() == cap.headers.height


def test_normalise_many_equals_one_file_at_a_time():
    files = [
        (order_rows("A", [{"sku": "S1", "quantity": 1, "unit_price": "1"}, {"sku": "S2", "quantity": 0, "unit_price": "1"}]), "1"),
        (order_rows("A", [{"sku": "S1", "quantity": 2, "unit_price": "1.5"}]), "2"),  # same record ids, other file
        ([], "3"),
        (order_rows("B", [{"sku": "S1", "quantity": 1, "unit_price": "x"}]), "4"),
    ]
    items = [(ParseResult("csv", "row", raw_frame(rows)), f"f{n}.csv", n * 64) for rows, n in files]
    many = normalise_many(items, captured_at=AT, line_no_given=True)
    for (pr, name, sha), got in zip(items, many, strict=True):
        one = normalise(pr, source_file=name, file_sha256=sha, captured_at=AT, line_no_given=True)
        assert got.headers.equals(one.headers) and got.lines.equals(one.lines)
        assert got.quarantine.sort("quarantine_id").equals(one.quarantine.sort("quarantine_id"))
        assert (got.records_received, got.records_accepted, got.records_quarantined) == (
            one.records_received, one.records_accepted, one.records_quarantined)
