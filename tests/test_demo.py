"""The demo generator: deterministic, real channel formats, exact money, valid reference data."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from som_pipeline import schemas
from som_pipeline.demo import generate_demo
from som_pipeline.demo.formats import CSV_COLUMNS
from som_pipeline.reasons import APPROVAL_CODES, BILLING_CODES, FULFILMENT_CODES, REASONS, RETURNS_CODES

ARGS = {"scale": 0.05, "days": 14}
SCENARIOS = {
    "quantity_spike", "new_customer_large_first_order", "expired_promo", "wrong_tier_price", "discount_above_max",
    "embargoed_destination", "hazmat_by_air", "invalid_postal_code", "missing_street", "unknown_sku",
    "inactive_sku", "over_credit_limit", "ship_complete_short", "out_of_stock_with_substitute",
    "duplicate_po_across_channels", "shopify_resent_changed", "shopify_resent_identical", "shopify_cancelled",
}
CAPTURE_CODES = {c for c in REASONS if not c.startswith("REF_") and c not in APPROVAL_CODES | FULFILMENT_CODES | BILLING_CODES | RETURNS_CODES}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("demo_a")
    return home, generate_demo(home, **ARGS)


def _digests(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.suffix != ".sqlite"
    }


def _portal_rows(db: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()  # noqa: S608
                for t in ("portal_orders", "portal_order_lines")}
    finally:
        con.close()


def test_same_arguments_same_bytes(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    home_a, manifest_a = demo
    home_b = tmp_path / "demo_b"
    (home_b / "landing" / "csv").mkdir(parents=True)
    (home_b / "landing" / "csv" / "stale.csv").write_text("x")  # (re)creating replaces what was there
    manifest_b = generate_demo(home_b, **ARGS)
    assert manifest_a == manifest_b
    a, b = _digests(home_a), _digests(home_b)
    assert list(a) == list(b) and a == b
    assert _portal_rows(home_a / "b2b_portal.sqlite") == _portal_rows(home_b / "b2b_portal.sqlite")
    # arrival order is part of the output: modification times are simulated, not the clock
    mt = {str(p.relative_to(home_a)): p.stat().st_mtime_ns for p in (home_a / "landing").rglob("*") if p.is_file()}
    assert mt == {str(p.relative_to(home_b)): p.stat().st_mtime_ns
                  for p in (home_b / "landing").rglob("*") if p.is_file()}


def test_manifest(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    assert set(m["orders"]) == {"shopify", "amazon", "edi", "csv", "b2b_portal"}
    assert all(n > 0 for n in m["orders"].values())
    assert {s["name"] for s in m["scenarios"]} >= SCENARIOS
    for s in m["scenarios"]:
        assert s["order_ref"] and s["files"], s
        for f in s["files"]:
            assert (home / ("b2b_portal.sqlite" if f == "b2b_portal.sqlite" else f"landing/{s['channel']}/{f}")).exists()
    assert set(m["injected"]) == CAPTURE_CODES  # every capture reason is injected somewhere
    for reason, items in m["injected"].items():
        for it in items:
            assert it["file"], (reason, it)
    bad_ref = m["reference"]["bad_rows"]
    assert sum(b["rows"] for b in bad_ref) <= 5
    assert {b["reason"] for b in bad_ref} == {"REF_BAD_VALUE", "REF_CHECK_FAILED", "REF_DUPLICATE_KEY"}
    on_disk = {str(p.relative_to(home / "landing")) for p in (home / "landing").rglob("*") if p.is_file()}
    assert on_disk == {k.removeprefix("landing/") for k in m["sha256"]}
    assert sum(v for k, v in m["files"].items() if k not in ("reference", "b2b_portal")) == len(on_disk)
    assert json.loads((home / "demo_manifest.json").read_text(encoding="utf-8")) == m


# ------------------------------------------------------------------------------------------------
# Reference data
# ------------------------------------------------------------------------------------------------
def _cast(df: pl.DataFrame, model: type) -> pl.DataFrame:
    exprs = []
    for name, dtype in schemas.polars_schema(model).items():
        c = pl.col(name)
        if isinstance(dtype, pl.Decimal):
            e = c.str.to_decimal(scale=dtype.scale).cast(dtype)
        elif dtype == pl.Boolean:
            e = pl.when(c == "true").then(True).when(c == "false").then(False).otherwise(None)
        elif dtype == pl.Date:
            e = c.str.to_date("%Y-%m-%d")
        elif dtype == pl.Time:
            e = c.str.to_time("%H:%M:%S")
        elif isinstance(dtype, pl.Datetime):
            e = c.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", time_unit="us")
        elif dtype == pl.String:
            e = c
        else:
            e = c.cast(dtype)
        exprs.append(e.alias(name))
    return df.select(exprs)


def _key(table: str, row: dict[str, str]) -> str:
    return {"customers": lambda r: r["customer_id"], "products": lambda r: r["sku"],
            "inventory": lambda r: f"{r['warehouse_id']}|{r['sku']}"}.get(table, lambda r: "")(row)


def test_reference_tables_validate_except_the_injected_bad_rows(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    bad = {(b["table"], b["key"]): b["reason"] for b in m["reference"]["bad_rows"]}
    sizes = {}
    for table, model in schemas.REFERENCE_TABLES.items():
        if table == "transit_history":  # the carriers send it after the first shipments (som carriers)
            continue
        raw = pl.read_csv(home / "reference" / f"{table}.csv", infer_schema=False)
        assert raw.columns == list(schemas.polars_schema(model)), table
        keys = [_key(table, r) for r in raw.iter_rows(named=True)]
        is_bad = pl.Series([(table, k) in bad for k in keys])
        good = raw.filter(~is_bad)
        schemas.validate(model, _cast(good, model))  # raises on any problem
        sizes[table] = good.height
        for row in raw.filter(is_bad).iter_rows(named=True):  # each injected row really is bad
            reason = bad[(table, _key(table, row))]
            if reason == "REF_BAD_VALUE":  # a value that does not read as its column's type
                typed = _cast(pl.DataFrame([row]), model).row(0, named=True)
                assert any(typed[k] is None and v for k, v in row.items())
            elif reason == "REF_CHECK_FAILED":
                with pytest.raises(Exception, match="isin|greater_than"):
                    schemas.validate(model, _cast(pl.DataFrame([row]), model))
        if any(b == "REF_DUPLICATE_KEY" for (t, _k), b in bad.items() if t == table):
            assert raw.height - good.height == 2
    assert 950 <= sizes["products"] <= 1050 and sizes["customers"] == 300
    assert len(pl.read_csv(home / "reference" / "products.csv", infer_schema=False)["category"].unique()) == 12
    # every channel reference the demo uses resolves to a customer
    aliases = pl.read_csv(home / "reference" / "customer_aliases.csv", infer_schema=False)
    assert set(aliases["channel"]) == {"shopify", "amazon", "edi", "csv", "b2b_portal"}
    edi_ids = set(aliases.filter(pl.col("channel") == "edi")["external_ref"])
    for p in (home / "landing" / "edi").glob("PO_*.edi"):
        assert p.read_bytes()[35:50].decode().strip() in edi_ids


# ------------------------------------------------------------------------------------------------
# Formats and money
# ------------------------------------------------------------------------------------------------
def _bad_files(m: dict[str, Any]) -> set[str]:
    return {it["file"] for items in m["injected"].values() for it in items if it["level"] == "file"}


def _json(p: Path) -> Any:
    return json.loads(p.read_bytes().decode("utf-8-sig"), parse_float=Decimal)


def test_shopify_files_are_admin_api_orders_with_exact_totals(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    damaged = _bad_files(m)
    bad_refs = {it["order_ref"] for items in m["injected"].values() for it in items if it["channel"] == "shopify"
                and it.get("order_ref")}
    checked = 0
    for p in sorted((home / "landing" / "shopify").iterdir()):
        if p.name in damaged:
            continue
        doc = _json(p)
        assert set(doc) in ({"orders"}, {"order"}), p.name  # the Admin REST API wrappers
        orders = doc["orders"] if "orders" in doc else [doc["order"]]
        for o in orders:
            if str(o["id"]) in bad_refs:
                continue
            assert o["line_items"] and o["customer"]["email"] and o["shipping_address"]["country_code"]
            D = Decimal  # noqa: N806
            items = sum((D(li["price"]) * li["quantity"] for li in o["line_items"]), D(0))
            disc = sum((D(a["amount"]) for li in o["line_items"] for a in li["discount_allocations"]), D(0))
            disc += sum((D(a["amount"]) for s in o["shipping_lines"] for a in s["discount_allocations"]), D(0))
            tax = sum((D(t["price"]) for li in o["line_items"] for t in li["tax_lines"]), D(0))
            ship = sum((D(s["price"]) for s in o["shipping_lines"]), D(0))
            assert D(o["total_price"]) == items - disc + tax + ship, o["id"]
            assert D(o["total_line_items_price"]) == items and D(o["total_discounts"]) == disc
            assert D(o["total_tax"]) == tax
            checked += 1
    assert checked >= m["orders"]["shopify"]
    assert (home / "landing" / "shopify" / m["accepted_encodings"]["utf-8-sig"][0].split("/")[1]).read_bytes()[:3] \
        == b"\xef\xbb\xbf"


def test_amazon_order_totals_match_their_items(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    folder = home / "landing" / "amazon"
    bad_refs = {it["order_ref"] for items in m["injected"].values() for it in items if it["channel"] == "amazon"}
    headers = {}
    for p in sorted(folder.glob("getOrders_*.json")):
        for o in _json(p)["payload"]["Orders"]:
            headers[o["AmazonOrderId"]] = o
    pending = set(m["amazon_pairing"]["headers_without_items"])
    orphans = set(m["amazon_pairing"]["items_without_header"])
    assert pending <= set(headers) and not orphans & set(headers)
    for ref in pending:
        assert not (folder / f"getOrderItems_{ref}.json").exists()
    paired = 0
    for ref, h in headers.items():
        if ref in pending or ref in bad_refs:
            continue
        items = _json(folder / f"getOrderItems_{ref}.json")["payload"]
        assert items["AmazonOrderId"] == ref
        total = sum((Decimal(it[k]["Amount"]) * (-1 if k in ("PromotionDiscount", "ShippingDiscount") else 1)
                     for it in items["OrderItems"]
                     for k in ("ItemPrice", "ItemTax", "ShippingPrice", "ShippingTax", "PromotionDiscount",
                               "ShippingDiscount")), Decimal(0))
        assert Decimal(h["OrderTotal"]["Amount"]) == total, ref
        assert {it["ItemPrice"]["CurrencyCode"] for it in items["OrderItems"]} == {h["OrderTotal"]["CurrencyCode"]}
        paired += 1
    assert paired >= 5


def test_x12_interchanges_are_well_formed(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    damaged = {it["file"] for r in ("X12_SEGMENT_COUNT", "X12_CONTROL_NUMBER", "X12_SYNTAX", "X12_ENVELOPE_COUNT")
               for it in m["injected"][r]}
    separators = set()
    for p in sorted((home / "landing" / "edi").iterdir()):
        text = p.read_text(encoding="ascii")
        assert text.startswith("ISA")
        elem, comp, seg = text[3], text[104], text[105]
        assert text[:106].count(elem) == 16 and len(text[:106]) == 106
        separators.add((elem, seg, comp, "\n" in text))
        if p.name in damaged or not p.name.startswith("PO_"):
            continue
        segs = [s.strip().split(elem) for s in text.split(seg) if s.strip()]
        ids = [s[0] for s in segs]
        assert ids[0] == "ISA" and ids[1] == "GS" and ids[-2:] == ["GE", "IEA"]
        assert int(segs[-2][1]) == ids.count("ST") == ids.count("SE")
        start = None
        for i, s in enumerate(segs):
            if s[0] == "ST":
                start, ctrl = i, s[2]
                assert s[1] == "850"
            elif s[0] == "SE":
                assert int(s[1]) == i - start + 1 and s[2] == ctrl
            elif s[0] == "PO1":
                # an empty PO104 is the "edi_unpriced_line" scenario (priced from the list later)
                assert s[6] == "VN" and (s[4] == "" or Decimal(s[4]) > 0) and int(s[2]) > 0
    assert ("*", "~", ">", True) in separators and ("|", "^", ":", False) in separators
    assert m["injected"]["X12_UNSUPPORTED_SET"][0]["file"].startswith("INV_")


def test_csv_files_follow_the_template(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo
    folder = home / "landing" / "csv"
    names = sorted(p.name for p in folder.iterdir())
    assert any(" " in n and "Núñez" in n for n in names)
    cp1252 = m["accepted_encodings"]["cp1252"]
    assert cp1252
    assert any("Hélène" in (home / "landing" / f).read_bytes().decode("cp1252") for f in cp1252)
    good = [n for n in names if n.endswith(".csv") and n not in _bad_files(m)]
    multiline = 0
    for n in good:
        raw = (folder / n).read_bytes()
        enc = "cp1252" if f"csv/{n}" in cp1252 else "utf-8"
        assert raw.decode(enc).splitlines()[0] == ",".join(CSV_COLUMNS)
        multiline += raw.count(b'""fragile""')
    assert multiline > 0  # quoted fields with embedded newlines and quotes
    parquet = [n for n in names if n.endswith(".parquet") and n not in _bad_files(m)]
    assert parquet and pl.read_parquet(folder / parquet[0]).columns == CSV_COLUMNS


# ------------------------------------------------------------------------------------------------
# Through the real parsers
# ------------------------------------------------------------------------------------------------
def test_every_landing_file_through_the_parsers(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """Conservation per file, every capture reason seen, every good order and scenario captured."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from som_pipeline.ingest import amazon, b2b, csv_template, shopify, x12
    from som_pipeline.ingest.common import Captured, normalise

    home, m = demo
    at = datetime(2026, 11, 26, tzinfo=UTC)
    seen: set[str] = set()
    accepted: dict[str, list[str]] = {ch: [] for ch in m["orders"]}
    staged_headers, staged_items = [], []
    edi_seen: dict = {}  # interchanges already received (duplicate ISA13s, as the capture service does)

    def take(channel: str, cap: Captured) -> None:
        assert cap.records_received == cap.records_accepted + cap.records_quarantined
        seen.update(cap.quarantine["reason_code"].to_list())
        if channel != "amazon":
            accepted[channel].extend(cap.headers["channel_order_ref"].to_list())

    for p in sorted((home / "landing").rglob("*")):
        if not p.is_file():
            continue
        channel, data = p.parent.name, p.read_bytes()
        if channel in ("approvals", "disruptions"):  # not orders: tests/test_workflow.py, test_allocation.py
            continue
        sha = hashlib.sha256(data).hexdigest()
        if channel == "shopify":
            take(channel, normalise(shopify.parse_shopify(data, p.name), source_file=p.name, file_sha256=sha,
                                    captured_at=at))
        elif channel == "amazon":
            f = amazon.parse_amazon(data, p.name, sha, at)
            take(channel, f.captured)
            staged_headers.append(f.headers)
            staged_items.append(f.items)
        elif channel == "edi":
            res = x12.flag_duplicate_interchanges(x12.parse_x12(data, p.name), edi_seen, p.name)
            take(channel, normalise(res, source_file=p.name, file_sha256=sha, captured_at=at))
            for ic in res.extras["interchanges"]:  # envelope counts are reported, not quarantined
                for g in ic.get("groups", []):
                    seen.update(e["code"] for e in g.get("errors", []))
        else:
            for chunk in csv_template.iter_csv_chunks(p, p.name, tmp_path / "work"):
                take(channel, normalise(chunk, source_file=p.name, file_sha256=sha, captured_at=at,
                                        line_no_given=True))
    pairing = amazon.pair_amazon(pl.concat(staged_headers), pl.concat(staged_items))
    for pc in amazon.capture_pairs(pairing, captured_at=at):
        take("amazon", pc.captured)
        accepted["amazon"].extend(pc.captured.headers["channel_order_ref"].to_list())
    engine = sa.create_engine(f"sqlite:///{home / 'b2b_portal.sqlite'}")
    for batch in b2b.read_changes(engine, None):
        take("b2b_portal", b2b.normalise_batch(batch, source_file="b2b_portal.sqlite", captured_at=at))
    engine.dispose()

    assert seen >= CAPTURE_CODES, sorted(CAPTURE_CODES - seen)
    waiting = set(m["amazon_pairing"]["headers_without_items"]) | set(m["amazon_pairing"]["items_without_header"])
    assert set(pairing.pending["amazon_order_id"]) >= waiting
    for channel, n in m["orders"].items():
        distinct = set(accepted[channel])
        assert len(distinct) == n - (len(waiting) if channel == "amazon" else 0), channel
    assert len(accepted["shopify"]) == m["orders"]["shopify"] + len(m["shopify_resends"])
    for s in m["scenarios"]:
        assert s["order_ref"] in accepted[s["channel"]], s["name"]


def test_scenario_preconditions_hold_in_the_reference_data(demo: tuple[Path, dict[str, Any]]) -> None:
    home, m = demo

    def table(name: str) -> pl.DataFrame:
        return pl.read_csv(home / "reference" / f"{name}.csv", infer_schema=False)

    sc = {s["name"]: s for s in m["scenarios"]}
    products = {r["sku"]: r for r in table("products").iter_rows(named=True)}
    promos = {r["code"]: r for r in table("promotions").iter_rows(named=True)}
    customers = {r["customer_id"]: r for r in table("customers").iter_rows(named=True)}
    on_hand = table("inventory").with_columns(pl.col("on_hand").cast(pl.Int64)).group_by("sku").agg(
        pl.col("on_hand").sum())
    stock = dict(on_hand.iter_rows())
    assert promos["SUMMER20"]["valid_to"] < sc["expired_promo"]["order_date"]
    assert promos["HOLIDAY25"]["valid_from"] > sc["promo_not_yet_valid"]["order_date"]
    assert int(promos["FLASH30"]["usage_cap"]) < len(sc["promo_usage_cap_exceeded"]["order_refs"])
    assert sc["unknown_sku"]["sku"] not in products
    assert products[sc["inactive_sku"]["sku"]]["active"] == "false"
    assert products[sc["hazmat_by_air"]["sku"]]["hazmat"] == "true"
    assert "DE" in products[sc["restricted_country_item"]["sku"]]["restricted_countries"].split("|")
    oos = sc["out_of_stock_with_substitute"]["sku"]
    assert stock[oos] == 0 and all(stock[s] > 0 for s in products[oos]["substitutes"].split("|"))
    assert 0 < stock[sc["ship_complete_short"]["sku"]] < 40
    c = sc["over_credit_limit"]["customer_id"]
    open_amount = table("open_items").filter(pl.col("customer_id") == c)["amount_open"].cast(pl.Float64).sum()
    assert open_amount > float(customers[c]["credit_limit"])
    new = sc["new_customer_large_first_order"]["customer_id"]
    assert customers[new]["created_on"] >= m["start_date"]
    assert [s["name"] for s in m["scenarios"] if s["customer_id"] == new] == ["new_customer_large_first_order"]
    assert customers[sc["inactive_customer"]["customer_id"]]["active"] == "false"
    dup = [s for s in m["scenarios"] if s["name"] == "duplicate_po_across_channels"]
    assert {s["channel"] for s in dup} == {"edi", "b2b_portal"} and len({s["customer_po"] for s in dup}) == 1
