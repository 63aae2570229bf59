"""The "csv" channel: sales-rep / bulk order template (CSV or Parquet) -> raw rows -> normalise()."""

from __future__ import annotations

import codecs
import csv
import io
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from som_pipeline.ingest.common import Captured, ParseResult, normalise
from som_pipeline.ingest.csv_template import (
    NORMALISE_OPTIONS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    iter_csv_chunks,
    parse_csv_bytes,
)
from som_pipeline.reasons import REASONS

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = DOCS / "csv_template_example.csv"
COLS = list(REQUIRED_COLUMNS) + ["description"]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def line(ref: str = "A1", line_no: object = 1, **kw: object) -> dict[str, str]:
    """One template row (all REQUIRED_COLUMNS + description), overridable by keyword."""
    row = {
        "channel_order_ref": ref, "order_ts": "2026-03-01T10:00:00Z", "customer_ref": "C1", "currency": "USD",
        "ship_to_name": "Smith, John", "ship_to_line1": "1 Main St", "ship_to_city": "Springfield",
        "ship_to_postal_code": "62701", "ship_to_country": "US", "line_no": str(line_no), "sku": "SKU-1",
        "quantity": "2", "unit_price": "10.00", "discount_pct": "", "tax_rate": "", "promo_code": "",
        "description": "Widget",
    }
    row.update({k: str(v) for k, v in kw.items()})
    return row


def template(rows: list[dict[str, str]], columns: list[str] | None = None, eol: str = "\n") -> str:
    columns = columns or COLS
    out = io.StringIO()
    w = csv.writer(out, lineterminator=eol)
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    return out.getvalue()


def parse(data: bytes | str, tmp_path: Path, name: str = "orders.csv", **kw: object) -> ParseResult:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return parse_csv_bytes(data, name, tmp_path / "work", **kw)


def capture(res: ParseResult, name: str = "orders.csv") -> Captured:
    cap = normalise(res, source_file=name, file_sha256="f" * 64, captured_at=datetime(2026, 3, 5, tzinfo=UTC),
                    **NORMALISE_OPTIONS)
    assert cap.records_received == cap.records_accepted + cap.records_quarantined
    assert cap.records_received == res.records_received
    return cap


def run(data: bytes | str, tmp_path: Path, name: str = "orders.csv") -> tuple[ParseResult, Captured]:
    res = parse(data, tmp_path, name)
    return res, capture(res, name)


def reasons(cap: Captured) -> dict[str, str]:
    """location -> reason_code of the quarantine."""
    return dict(cap.quarantine.select("location", "reason_code").iter_rows())


def rejected(res: ParseResult) -> dict[str, str]:
    return {r.location: r.reason_code for r in res.rejected}


def file_reason(res: ParseResult) -> str:
    assert res.rows.height == 0 and len(res.rejected) == 1
    r = res.rejected[0]
    assert r.record_kind == "file" and res.records_received == 1
    return r.reason_code


# ------------------------------------------------------------------------------------------------
# the good file
# ------------------------------------------------------------------------------------------------
def test_example_file_gives_exact_orders_lines_and_amounts(tmp_path: Path) -> None:
    res, cap = run(EXAMPLE.read_bytes(), tmp_path, EXAMPLE.name)
    assert res.channel == "csv" and res.record_unit == "row" and res.encoding == "utf-8"
    assert cap.records_received == 5 and cap.records_accepted == 5 and cap.records_quarantined == 0
    h = {r["channel_order_ref"]: r for r in cap.headers.iter_rows(named=True)}
    assert sorted(h) == ["SR-1001", "SR-1002", "SR-1003"]
    a = h["SR-1001"]
    # 10 x 12.50 = 125.00 (10 % off: 12.50; tax 8.25 % of 112.50 = 9.28125 -> 9.28)
    # 3 x 45.0000 = 135.00 (tax 11.1375 -> 11.14, half away from zero)
    assert a["items_subtotal"] == Decimal("260.00")
    assert a["discount_total"] == Decimal("12.50")
    assert a["tax_total"] == Decimal("20.42")
    assert a["order_total"] == Decimal("267.92")
    assert a["ship_to_company"] == "Whitfield & Sons, Inc." and a["customer_po"] == "PO-77810"
    assert a["ship_complete"] is True and a["promo_code"] == "SPRING26" and a["line_count"] == 2
    b = h["SR-1002"]
    assert b["currency"] == "EUR" and b["ship_to_name"] == "Élodie Martin"
    assert b["order_ts"] == datetime(2026, 3, 2, 10, 40, tzinfo=UTC)  # +01:00 -> UTC
    assert b["order_total"] == Decimal("28.56")  # 23.80 + 20 % tax 4.76
    c = h["SR-1003"]  # a line left to the price list: no subtotal, no total
    assert c["unpriced_lines"] == 1 and c["items_subtotal"] is None and c["order_total"] is None
    lines = {(r["capture_id"][-7:], r["line_no"]): r for r in cap.lines.iter_rows(named=True)}
    assert lines[("SR-1001", 2)]["description"] == 'Gadget 2" (two-inch)'
    assert lines[("SR-1001", 2)]["unit_price"] == Decimal("45.0000")
    assert lines[("SR-1002", 1)]["description"] == "Widget, large\nGift-wrapped"
    assert lines[("SR-1003", 1)]["uom"] == "BOX" and lines[("SR-1003", 1)]["discount_amount"] == Decimal("1.09")
    # the quoted newline in SR-1002 pushes SR-1003 down one physical line
    assert h["SR-1003"]["source_location"] == "line 6"
    assert res.extras["line_numbers_exact"] is True


def test_raw_rows_keep_values_as_sent_and_reserialise_rfc4180(tmp_path: Path) -> None:
    rows = [line(ship_to_name=" Smith,  John ", description='He said "hi", twice', unit_price="0010.50")]
    res = parse(template(rows), tmp_path)
    r = res.rows.row(0, named=True)
    assert r["record_id"] == "row 1" and r["record_kind"] == "row"
    assert r["location"] == r["record_location"] == "line 2"
    assert r["order_key"] == "A1" and r["order_ref"] == "A1"
    assert r["ship_to_name"] == " Smith,  John " and r["unit_price"] == "0010.50"
    assert r["raw"] == template(rows).splitlines()[1]
    assert r["line_amount"] is None and r["payment_status"] is None  # not template columns


def test_columns_any_order_any_case_and_extra_columns_ignored(tmp_path: Path) -> None:
    cols = ["Notes", " SKU ", *reversed([c for c in COLS if c != "sku"]), "internal id"]
    header = ",".join(c.upper() if i % 2 else c for i, c in enumerate(cols))
    text = template([line(Notes="call first", **{" SKU ": "SKU-9", "internal id": "77"})], cols)
    text = header + "\n" + text.split("\n", 1)[1]
    res, cap = run(text, tmp_path)
    assert res.extras["ignored_columns"] == ["Notes", header.split(",")[-1]]  # as written
    assert cap.records_accepted == 1 and cap.lines["sku"].to_list() == ["SKU-9"]


def test_optional_columns_are_optional_and_map_to_their_fields(tmp_path: Path) -> None:
    cols = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)
    row = line(customer_po="PO-1", ship_to_company="ACME", ship_to_line2="Dock 4", ship_to_region="IL",
               ship_method="UPSG", ship_complete="Y", description="d", uom="cs")
    res, cap = run(template([row], cols), tmp_path)
    h = cap.headers.row(0, named=True)
    assert (h["customer_po"], h["ship_to_company"], h["ship_to_line2"], h["ship_to_region"], h["ship_method"]) == (
        "PO-1", "ACME", "Dock 4", "IL", "UPSG")
    assert h["ship_complete"] is True and cap.lines["uom"].to_list() == ["CS"]


# ------------------------------------------------------------------------------------------------
# quoting, line numbers, blank lines
# ------------------------------------------------------------------------------------------------
def test_quoted_commas_quotes_and_newlines_and_the_line_numbers_after_them(tmp_path: Path) -> None:
    rows = [
        line("A1", 1, description='a "quoted", comma'),
        line("A1", 2, description="two\nlines"),
        line("B1", 1, description="three\r\nphysical\nlines"),
        line("C1", 1),
    ]
    res, cap = run(template(rows), tmp_path)
    assert cap.records_accepted == 4
    loc = dict(res.rows.select("record_id", "location").iter_rows())
    assert loc == {"row 1": "line 2", "row 2": "line 3", "row 3": "line 5", "row 4": "line 8"}
    desc = dict(res.rows.select("record_id", "description").iter_rows())
    assert desc["row 1"] == 'a "quoted", comma'
    # a file containing CR is read with every line break as LF (documented), also inside cells
    assert desc["row 3"] == "three\nphysical\nlines" and res.extras["rewritten_to_utf8_lf"] is True


def test_blank_lines_are_skipped_but_counted_in_line_numbers(tmp_path: Path) -> None:
    h, r1, r2, r3 = template([line("A1", 1), line("A1", 2), line("B1", 1)]).splitlines()
    empty_row = "," * (len(COLS) - 1)
    text = "\n\n" + h + "\n\n" + r1 + "\n   \n" + r2 + "\n" + empty_row + "\n\n" + r3 + "\n\n\n"
    res, cap = run(text, tmp_path)
    assert cap.records_received == 3 and cap.records_accepted == 3
    loc = dict(res.rows.select("record_id", "location").iter_rows())
    assert loc == {"row 1": "line 5", "row 2": "line 7", "row 3": "line 10"}
    # 2 before the header, lines 4, 6 (spaces), 8 (empty fields), 9, 11, 12
    assert res.extras["blank_lines"] == 8 and res.extras["line_numbers_exact"] is True


def test_crlf_and_mixed_line_endings(tmp_path: Path) -> None:
    h, r1, r2 = template([line("A1", 1, description="x\ny"), line("A1", 2)]).split("\n", 2)
    text = h + "\r\n" + r1 + "\n" + r2.replace("\n", "\r\n")  # header CRLF, the rest mixed
    res, cap = run(text, tmp_path)
    assert cap.records_accepted == 2
    assert res.rows["location"].to_list() == ["line 2", "line 4"]
    assert res.rows["description"].to_list() == ["x\ny", "Widget"]
    assert res.extras["rewritten_to_utf8_lf"] is True


def test_line_numbers_match_pythons_csv_module_on_random_messy_files(tmp_path: Path) -> None:
    """Differential check: record ordinals and physical start lines against Python's csv module."""

    def messy(seed: int) -> str:
        rnd = random.Random(seed)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        if rnd.random() < 0.3:
            out.write("\n")
        w.writerow(COLS)
        for _ in range(rnd.randint(0, 25)):
            k, ref = rnd.random(), f"R{rnd.randint(1, 5)}"
            val = lambda: rnd.choice(["1", "x,y", 'q"q', "a\nb", "", "c\n\nd"])  # noqa: E731
            if k < 0.08:
                out.write("\n")
            elif k < 0.12:
                out.write("," * (len(COLS) - 1) + "\n")
            elif k < 0.22:
                w.writerow([ref] + [val() for _ in range(rnd.randint(1, len(COLS) + 2))])
            else:
                w.writerow([ref] + [val() for _ in COLS[1:]])
        text = out.getvalue()
        return text.replace("\n", "\r\n") if rnd.random() < 0.3 else text

    def truth(text: str) -> dict[int, int]:
        r = csv.reader(io.StringIO(text.replace("\r\n", "\n"), newline=""))
        header = next(r)
        while not header:
            header = next(r)
        out, prev, n = {}, r.line_num, 0
        for rec in r:
            start, prev = prev + 1, r.line_num
            if rec and any(x.strip() for x in rec):
                n += 1
                out[n] = start
        return out

    for seed in range(15):
        text = messy(seed)
        res = parse(text, tmp_path, chunk_rows=1 + seed % 3)
        got = {int(rid[4:]): int(loc[5:]) for rid, loc in res.rows.select("record_id", "location").iter_rows()}
        got.update({int(r.record_id[4:]): int(r.location[5:]) for r in res.rejected})
        assert got == truth(text), seed
        assert res.extras["line_numbers_exact"] is True


# ------------------------------------------------------------------------------------------------
# header problems
# ------------------------------------------------------------------------------------------------
def test_missing_required_column_quarantines_every_row(tmp_path: Path) -> None:
    cols = [c for c in COLS if c not in ("sku", "tax_rate")]
    res, cap = run(template([line("A1", 1), line("A1", 2), line("B1", 1)], cols), tmp_path)
    assert res.rows.height == 0 and res.extras["missing_columns"] == ["sku", "tax_rate"]
    assert cap.records_received == 3 and cap.records_quarantined == 3
    assert set(reasons(cap).values()) == {"CSV_MISSING_COLUMN"}
    msg = cap.quarantine["message"][0]
    assert "sku" in msg and "tax_rate" in msg
    assert sorted(cap.quarantine["order_ref"].to_list()) == ["A1", "A1", "B1"]


def test_duplicate_template_column_is_a_header_problem(tmp_path: Path) -> None:
    res, cap = run(template([line(**{"Quantity": "3"})], [*COLS, "Quantity"]), tmp_path)
    assert res.extras["duplicate_columns"] == ["quantity"]
    assert reasons(cap) == {"line 2": "CSV_MISSING_COLUMN"}
    assert "quantity appears 2 times" in cap.quarantine["message"][0]


def test_semicolon_file_gets_a_hint(tmp_path: Path) -> None:
    text = template([line()]).replace(",", ";")
    res, cap = run(text, tmp_path)
    assert set(reasons(cap).values()) == {"CSV_MISSING_COLUMN"}
    assert "does not look comma-separated" in cap.quarantine["message"][0]


def test_header_only_file_is_zero_records_not_an_error(tmp_path: Path) -> None:
    for text in (",".join(COLS), ",".join(COLS) + "\r\n\r\n"):
        res, cap = run(text, tmp_path)
        assert res.rejected == [] and res.rows.height == 0
        assert cap.records_received == 0 and cap.headers.height == 0


# ------------------------------------------------------------------------------------------------
# row structure
# ------------------------------------------------------------------------------------------------
def test_too_many_and_too_few_fields_reject_the_row_and_its_order(tmp_path: Path) -> None:
    good = template([line("A1", 1), line("B1", 1), line("C1", 1), line("D1", 1)]).splitlines()
    text = "\n".join([
        good[0], good[1],
        good[2] + ",surplus",  # B1: one field too many
        "C1,2026-03-01T10:00:00Z,C1",  # C1: too few
        good[3],  # C1's good row: the order is not captured
        good[2] + ",,,",  # B1 again, trailing empty fields only: DuckDB accepts these
        good[4],
    ]) + "\n"
    res, cap = run(text, tmp_path)
    rj = {r.record_id: (r.location, r.reason_code, r.order_ref) for r in res.rejected}
    assert rj["row 2"] == ("line 3", "CSV_EXTRA_FIELDS", "B1")
    assert rj["row 3"] == ("line 4", "CSV_MISSING_FIELDS", "C1")
    assert rj["row 4"] == ("line 5", "ORDER_INCOMPLETE", "C1")
    assert rj["row 5"] == ("line 6", "ORDER_INCOMPLETE", "B1")
    extra = next(r for r in res.rejected if r.reason_code == "CSV_EXTRA_FIELDS")
    assert extra.raw == good[2] + ",surplus" and f"has {len(COLS) + 1} fields" in extra.message
    assert cap.headers["channel_order_ref"].sort().to_list() == ["A1", "D1"]
    assert cap.records_received == 6 and cap.records_quarantined == 4


@pytest.mark.parametrize("tail", ["closed_later", "at_eof", "text_after_quote"])
def test_unterminated_quote(tmp_path: Path, tail: str) -> None:
    rows = [line(ref, ship_to_name="Smith") for ref in ("A1", "B1", "C1", "D1")]  # no other quotes
    h, a, b, c, d = template(rows).splitlines()
    if tail == "closed_later":  # the open quote swallows C1's line until D1's closing quote
        text = "\n".join([h, a, b.replace("Widget", '"Wid'), c, d.replace("Widget", 'get"'), line_text(line("E1"))])
        res, cap = run(text + "\n", tmp_path)
        # RFC 4180: B1's description runs to D1's quote; the record stays structurally valid
        assert res.rows["location"].to_list() == ["line 2", "line 3", "line 6"]
        assert res.rows["order_ref"].to_list() == ["A1", "B1", "E1"]
        return
    if tail == "at_eof":
        text = "\n".join([h, a, b.replace("Widget", '"Wid'), c]) + "\n"
    else:
        text = "\n".join([h, a, b.replace("Smith", '"Smith" John'), c]) + "\n"
    res, cap = run(text, tmp_path)
    rj = [(r.record_id, r.location, r.reason_code, r.order_ref) for r in res.rejected]
    assert rj[0] == ("row 2", "line 3", "CSV_MALFORMED_ROW", "B1")
    assert res.rejected[0].raw.startswith("B1,") and "quote" in res.rejected[0].message
    if tail == "at_eof":  # C1's line is inside the open quote: part of the broken record
        assert res.rows["order_ref"].to_list() == ["A1"] and c in res.rejected[0].raw
    else:
        assert res.rows["location"].to_list() == ["line 2", "line 4"]
    assert res.extras["line_numbers_exact"] is True


def line_text(row: dict[str, str]) -> str:
    return template([row]).splitlines()[1]


def test_empty_order_refs_do_not_group_together(tmp_path: Path) -> None:
    res, cap = run(template([line(""), line("", 1)]), tmp_path)
    assert res.rows["order_key"].n_unique() == 2
    assert set(reasons(cap).values()) == {"MISSING_FIELD"}  # not DUPLICATE_LINE


# ------------------------------------------------------------------------------------------------
# field problems (found by normalise, located by the parser)
# ------------------------------------------------------------------------------------------------
BAD_LINE_VALUES = [
    ("quantity", "0", "BAD_QUANTITY"),
    ("quantity", "-2", "BAD_QUANTITY"),
    ("quantity", "two", "BAD_QUANTITY"),
    ("quantity", "1.5", "BAD_QUANTITY"),
    ("unit_price", "abc", "BAD_PRICE"),
    ("unit_price", "-1.00", "BAD_PRICE"),
    ("unit_price", "1.23456", "BAD_PRICE"),
    ("unit_price", "12,50", "BAD_PRICE"),
    ("unit_price", "$5", "BAD_PRICE"),
    ("tax_rate", "8.25", "BAD_RATE"),
    ("discount_pct", "120", "BAD_RATE"),
    ("line_no", "0", "BAD_LINE_NO"),
]
BAD_ORDER_VALUES = [
    ("currency", "XYZ", "UNKNOWN_CURRENCY"),
    ("order_ts", "2026-02-30", "BAD_DATE"),
    ("order_ts", "2026-02-30T10:00:00Z", "BAD_DATE"),
    ("order_ts", "02/03/2026", "BAD_DATE"),
]


def test_bad_values_quarantine_their_order(tmp_path: Path) -> None:
    """Each order O<i> has one bad value: on its 2nd line (line fields) or on both lines (order fields)."""
    rows = [line("GOOD", 1)]
    for i, (field, value, _) in enumerate(BAD_LINE_VALUES):
        rows += [line(f"O{i}", 1), line(f"O{i}", 2)]
        rows[-1][field] = value
    for j, (field, value, _) in enumerate(BAD_ORDER_VALUES):
        rows += [line(f"H{j}", 1, **{field: value}), line(f"H{j}", 2, **{field: value})]
    res, cap = run(template(rows), tmp_path)
    q = {r["order_ref"]: r for r in cap.quarantine.sort("location").iter_rows(named=True) if r["reason_code"] != "ORDER_INCOMPLETE"}
    for i, (_, value, reason) in enumerate(BAD_LINE_VALUES):
        assert q[f"O{i}"]["reason_code"] == reason, (value, q[f"O{i}"])
        assert f"'{value}'" in q[f"O{i}"]["message"]
        assert q[f"O{i}"]["location"] == f"line {2 + 2 * i + 2}"
    for j, (_, _, reason) in enumerate(BAD_ORDER_VALUES):
        assert q[f"H{j}"]["reason_code"] == reason
    incomplete = cap.quarantine.filter(pl.col("reason_code") == "ORDER_INCOMPLETE")["order_ref"].sort().to_list()
    assert incomplete == sorted(f"O{i}" for i in range(len(BAD_LINE_VALUES)))  # their good first lines
    assert cap.headers["channel_order_ref"].to_list() == ["GOOD"]
    assert cap.records_quarantined == 2 * (len(BAD_LINE_VALUES) + len(BAD_ORDER_VALUES))


def test_empty_optional_values_are_fine_and_required_values_are_not(tmp_path: Path) -> None:
    required = ["channel_order_ref", "customer_ref", "ship_to_city", "ship_to_country", "sku", "quantity", "line_no"]
    rows = [line("A1", 1, unit_price="", discount_pct="", tax_rate="", promo_code="", description="")]
    for i, field in enumerate(required):
        rows.append(line(f"R{i}", 1))
        rows[-1][field] = "  "
    res, cap = run(template(rows), tmp_path)
    assert cap.headers["channel_order_ref"].to_list() == ["A1"] and cap.headers["unpriced_lines"].to_list() == [1]
    q = reasons(cap)
    assert q == {f"line {3 + i}": "MISSING_FIELD" for i in range(len(required))}
    for i, field in enumerate(required):
        msg = cap.quarantine.filter(pl.col("location") == f"line {3 + i}")["message"][0]
        assert ("order_ref" if field == "channel_order_ref" else field) in msg


def test_exact_duplicate_line_is_dropped_and_the_order_kept(tmp_path: Path) -> None:
    res, cap = run(template([line("A1", 1), line("A1", 2, sku="S2"), line("A1", 2, sku="S2")]), tmp_path)
    assert reasons(cap) == {"line 4": "DUPLICATE_LINE"}
    assert cap.headers["line_count"].to_list() == [2] and cap.headers["items_subtotal"].to_list() == [Decimal("40.00")]


def test_conflicting_line_numbers_reject_the_order(tmp_path: Path) -> None:
    res, cap = run(template([line("A1", 1), line("A1", 1, sku="OTHER"), line("B1", 1)]), tmp_path)
    assert reasons(cap) == {"line 2": "DUPLICATE_LINE", "line 3": "DUPLICATE_LINE"}
    assert cap.headers["channel_order_ref"].to_list() == ["B1"]


def test_rows_disagreeing_on_order_ts_are_inconsistent(tmp_path: Path) -> None:
    res, cap = run(template([line("A1", 1), line("A1", 2, order_ts="2026-03-01T11:00:00Z")]), tmp_path)
    assert set(reasons(cap).values()) == {"INCONSISTENT_HEADER"}
    assert "order_ts" in cap.quarantine["message"][0] and cap.headers.height == 0


# ------------------------------------------------------------------------------------------------
# encodings and file-level problems
# ------------------------------------------------------------------------------------------------
def test_utf8_bom(tmp_path: Path) -> None:
    res, cap = run(codecs.BOM_UTF8 + template([line(ship_to_name="Zoë")]).encode(), tmp_path)
    assert res.encoding == "utf-8-sig" and res.extras["columns"][0] == "channel_order_ref"
    assert cap.headers["ship_to_name"].to_list() == ["Zoë"] and res.rows["location"].to_list() == ["line 2"]


def test_cp1252_file_is_decoded(tmp_path: Path) -> None:
    text = template([line(ship_to_name="José", description="Crème € 5")], eol="\r\n")
    res, cap = run(text.encode("cp1252"), tmp_path)
    assert res.encoding == "cp1252"
    assert cap.headers["ship_to_name"].to_list() == ["José"]
    assert cap.lines["description"].to_list() == ["Crème € 5"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be-bom", "latin-1"])
def test_other_text_encodings(tmp_path: Path, codec: str) -> None:
    text = template([line(ship_to_name="Ñandú\x81" if codec == "latin-1" else "Ñandú €")])
    if codec == "utf-16-be-bom":
        data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    else:
        data = text.encode(codec)
    res, cap = run(data, tmp_path)
    assert res.encoding == ("utf-16" if codec.startswith("utf-16") else "latin-1")
    assert cap.headers["ship_to_name"].to_list() == [text.splitlines()[1].split(",")[4]]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EMPTY_FILE"),
        (b"  \r\n\t\n", "EMPTY_FILE"),
        (codecs.BOM_UTF8, "EMPTY_FILE"),
        (bytes(range(256)) * 64, "BAD_ENCODING"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200), "BAD_ENCODING"),  # a zip (xlsx)
        (codecs.BOM_UTF8 + b"channel_order_ref\n\xff\xfe", "BAD_ENCODING"),  # BOM but not UTF-8
        (codecs.BOM_UTF16_LE + b"a\x00\x00\xd8", "BAD_ENCODING"),  # UTF-16 BOM, broken surrogate
    ],
)
def test_file_level_problems_are_one_record(tmp_path: Path, data: bytes, reason: str) -> None:
    res, cap = run(data, tmp_path)
    assert file_reason(res) == reason
    assert cap.records_received == 1 and cap.records_quarantined == 1
    assert cap.quarantine["record_kind"].to_list() == ["file"]


def test_file_name_with_spaces_unicode_quotes_and_dots_just_works(tmp_path: Path) -> None:
    folder = tmp_path / "we ird..dir [1]"
    folder.mkdir()
    path = folder / "Bestellungen März ..'x' [*].csv"
    path.write_text(template([line()]), encoding="utf-8")
    chunks = list(iter_csv_chunks(path, path.name, tmp_path / "work dir é"))
    assert len(chunks) == 1 and chunks[0].rows.height == 1
    assert capture(chunks[0], path.name).records_accepted == 1
    assert list((tmp_path / "work dir é").iterdir()) == []  # temporary files cleaned up


# ------------------------------------------------------------------------------------------------
# Parquet
# ------------------------------------------------------------------------------------------------
def _parquet_of(text: str) -> bytes:
    """The CSV's columns as typed Parquet columns (decimals, integers, timestamps with zone)."""
    df = pl.read_csv(io.StringIO(text), infer_schema=False)
    t = df.to_arrow()
    typed = {
        "order_ts": pa.array(
            [datetime.fromisoformat(v) for v in df["order_ts"].to_list()], pa.timestamp("us", tz="UTC")),
        "line_no": pa.array([int(v) for v in df["line_no"].to_list()], pa.int32()),
        "quantity": pa.array([int(v) for v in df["quantity"].to_list()], pa.int64()),
        "unit_price": pa.array([Decimal(v) if v else None for v in df["unit_price"].to_list()], pa.decimal128(12, 4)),
        "tax_rate": pa.array([Decimal(v) if v else None for v in df["tax_rate"].to_list()], pa.decimal128(7, 6)),
    }
    for name, arr in typed.items():
        t = t.set_column(t.schema.get_field_index(name), name, arr)
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def test_parquet_input_equals_csv_input(tmp_path: Path) -> None:
    rows = [
        line("A1", 1, unit_price="19.99", tax_rate="0.0825", quantity="3", description="a, b"),
        line("A1", 2, unit_price="0.0050", quantity="1000", order_ts="2026-03-01T10:00:00+00:00"),
        line("B1", 1, unit_price="", tax_rate="0.2"),
        line("C1", 1, quantity="0"),
    ]
    rows[0]["order_ts"] = rows[1]["order_ts"]
    text = template(rows)
    res_csv, cap_csv = run(text, tmp_path, "bulk.csv")
    res_pq, cap_pq = run(_parquet_of(text), tmp_path, "bulk.parquet")
    assert res_pq.extras["format"] == "parquet" and res_pq.encoding is None
    assert res_pq.rows["unit_price"].to_list() == ["19.9900", "0.0050", None, "10.0000"]  # exact, never float
    same = ["channel_order_ref", "order_ts", "currency", "items_subtotal", "tax_total", "order_total", "content_hash"]
    assert cap_pq.headers.select(same).equals(cap_csv.headers.select(same))
    assert cap_pq.lines.equals(cap_csv.lines)
    assert cap_pq.headers["items_subtotal"].to_list() == [Decimal("64.97"), None]
    assert reasons(cap_pq) == {"row 4": "BAD_QUANTITY"} and reasons(cap_csv) == {"line 5": "BAD_QUANTITY"}


def test_parquet_missing_column_and_corrupt_parquet(tmp_path: Path) -> None:
    data = _parquet_of(template([line()]))
    t = pq.read_table(io.BytesIO(data)).drop_columns(["sku"])
    buf = io.BytesIO()
    pq.write_table(t, buf)
    res, cap = run(buf.getvalue(), tmp_path, "bulk.parquet")
    assert reasons(cap) == {"row 1": "CSV_MISSING_COLUMN"}

    corrupt = data[: len(data) // 2] + b"\x00garbage\x00" + data[-64:]
    assert file_reason(parse(corrupt, tmp_path, "bulk.parquet")) == "UNREADABLE_FILE"
    assert file_reason(parse(b"not parquet at all", tmp_path, "bulk.parquet")) == "UNREADABLE_FILE"
    # dispatch by magic bytes, whatever the name
    res = parse(data, tmp_path, "bulk.csv")
    assert res.extras["format"] == "parquet" and res.rows.height == 1


# ------------------------------------------------------------------------------------------------
# chunking
# ------------------------------------------------------------------------------------------------
def test_chunks_hold_whole_orders_and_add_up(tmp_path: Path) -> None:
    rows = [line(f"O{o}", ln, sku=f"S{ln}") for o in range(12) for ln in range(1, 1 + o % 4 + 1)]
    rows.insert(5, line("O11", 9, sku="late-comer"))  # an order whose rows are not adjacent
    rows.append(line("O0", 2, sku="S2"))  # ... and another, at the end of the file
    rows.append(line("O5", 1, quantity="x"))  # a conflicting duplicate of O5 line 1
    path = tmp_path / "big.csv"
    path.write_text(template(rows) + "broken,row\n", encoding="utf-8")
    whole = capture(parse(path.read_bytes(), tmp_path))
    for chunk_rows in (2, 7):
        chunks = list(iter_csv_chunks(path, path.name, tmp_path / "w", chunk_rows=chunk_rows))
        assert len(chunks) > 1
        keys = [set(c.rows["order_key"].unique()) for c in chunks]
        assert all(a.isdisjoint(b) for i, a in enumerate(keys) for b in keys[i + 1:])  # orders never split
        ids = [i for c in chunks for i in c.rows["record_id"].to_list()] + [r.record_id for c in chunks for r in c.rejected]
        assert len(ids) == len(set(ids)) == len(rows) + 1  # every record exactly once
        caps = [capture(c) for c in chunks]
        assert sum(c.records_accepted for c in caps) == whole.records_accepted
        assert sum(c.records_quarantined for c in caps) == whole.records_quarantined
        assert sum(c.orders_accepted for c in caps) == whole.orders_accepted == 11  # O5 conflicts
        assert sorted(pl.concat([c.headers for c in caps])["order_total"].to_list()) == sorted(
            whole.headers["order_total"].to_list())
    assert chunks[0].extras["rows_out_of_place"] > 0


def test_many_rows_out_of_place_use_the_out_of_core_sort(tmp_path: Path) -> None:
    rows = [line(f"O{o}", ln) for ln in (1, 2) for o in range(30)]  # every order split in two halves
    path = tmp_path / "interleaved.csv"
    path.write_text(template(rows), encoding="utf-8")
    chunks = list(iter_csv_chunks(path, path.name, tmp_path / "w", chunk_rows=4))
    assert chunks[0].extras.get("sorted_out_of_core") is True
    for c in chunks:
        assert c.rows.group_by("order_key").len()["len"].to_list() == [2] * c.rows["order_key"].n_unique()
        assert c.rows["record_id"].to_list() == sorted(c.rows["record_id"].to_list(), key=lambda s: int(s[4:]))
    assert sum(capture(c).orders_accepted for c in chunks) == 30


def test_every_reason_code_used_is_registered(tmp_path: Path) -> None:
    import som_pipeline.ingest.csv_template as mod

    src = "".join(p.read_text() for p in sorted(Path(mod.__file__).parent.glob("*.py")))  # the package
    for code in ("CSV_MISSING_COLUMN", "CSV_MISSING_FIELDS", "CSV_EXTRA_FIELDS", "CSV_MALFORMED_ROW",
                 "ORDER_INCOMPLETE", "EMPTY_FILE", "BAD_ENCODING", "UNREADABLE_FILE"):
        assert code in REASONS and f'"{code}"' in src
