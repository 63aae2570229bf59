"""Document totals (issue 11, item 5): the totals a channel's document states are kept on the order as sent
(channel_total, channel_subtotal, channel_discount_total, channel_tax_total) and
sql/reconciliation/channel_totals.sql lists the live orders where they differ from the captured lines -- a WARN
check on core/orders (never blocking) and a query of ops/reconciliation.

Documents: tests/fixtures/shopify/custom_line_items.json (written in the shape of the Shopify Admin REST API Order
resource, https://shopify.dev/docs/api/admin-rest/latest/resources/order: total_price, subtotal_price,
total_discounts, total_tax) and the Selling Partner API Orders v0 sandbox responses (OrderTotal), changed here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from som_pipeline.config import Settings
from som_pipeline.services.analytics import create_views, run_reconciliation_query
from som_pipeline.services.channels import capture_channel
from som_pipeline.services.orders import build_core_orders
from som_pipeline.sqlfiles import sql_file
from som_pipeline.warehouse import Warehouse

FIX = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)
D = Decimal


def _land(settings: Settings, channel: str, name: str, doc) -> None:
    (settings.landing_dir(channel) / name).write_text(json.dumps(doc))


def _listed(settings: Settings, wh: Warehouse) -> dict[str, dict]:
    for ch in ("shopify", "amazon"):
        capture_channel(ch, wh, settings, now=NOW)
    build_core_orders(wh, now=NOW)
    with wh.connect() as con:
        rows = run_reconciliation_query(con, sql_file("reconciliation", "channel_totals"))
    return {r["order_id"]: r for r in rows.iter_rows(named=True)}


def _shopify() -> dict:
    return json.loads((FIX / "shopify" / "custom_line_items.json").read_text())


def test_the_rule_is_a_warning():
    assert sql_file("reconciliation", "channel_totals").severity == "warn"


def test_equal_totals_are_not_listed(settings: Settings, wh: Warehouse):
    _land(settings, "shopify", "pos.json", _shopify())
    assert _listed(settings, wh) == {}
    o = wh.read("SELECT channel_total, channel_subtotal, channel_discount_total, channel_tax_total, order_total "
                "FROM core.orders").row(0)
    assert o == (D("343.44"), D("324.00"), D("0.00"), D("19.44"), D("343.44"))


@pytest.mark.parametrize(
    ("changes", "diffs", "disagrees_on"),
    [
        # a tip (Shopify total_tip_received) is in total_price, not in any line: the total differs alone
        ({"total_price": "348.44"}, {"difference": D("5.00")}, "total"),
        ({"total_tax": "19.45", "total_price": "343.45"}, {"difference": D("0.01"), "tax_difference": D("0.01")},
         "total, tax"),
        # an order-level discount the lines do not carry: the subtotal says so (and so would total_price)
        ({"subtotal_price": "314.00", "total_discounts": "10.00"}, {"subtotal_difference": D("-10.00")}, "subtotal"),
    ],
)
def test_shopify_stated_totals_that_differ_are_listed_with_the_difference(settings, wh, changes, diffs, disagrees_on):
    doc = _shopify()
    doc["order"].update(changes)
    _land(settings, "shopify", "pos.json", doc)
    listed = _listed(settings, wh)
    assert list(listed) == ["SHP-5432109876"]
    row = listed["SHP-5432109876"]
    assert row["order_total"] == D("343.44") and row["disagrees_on"] == disagrees_on
    for col in ("difference", "subtotal_difference", "tax_difference"):
        assert row[col] == diffs.get(col), col


def _amazon(settings: Settings, wh: Warehouse, amount: str) -> dict[str, dict]:
    orders = json.loads((FIX / "amazon" / "getOrders.sandbox_0.json").read_text())
    orders["payload"]["Orders"][0]["OrderTotal"]["Amount"] = amount  # the items total 11.01 (10.00 + 1.01 tax)
    _land(settings, "amazon", "getOrders.json", orders)
    _land(settings, "amazon", "getOrderItems.json",
          json.loads((FIX / "amazon" / "getOrderItems.sandbox_0.json").read_text()))
    return _listed(settings, wh)


def test_amazon_order_total_equal_to_the_items_is_not_listed(settings: Settings, wh: Warehouse):
    assert _amazon(settings, wh, "11.01") == {}
    assert wh.read("SELECT channel_total FROM core.orders")["channel_total"].to_list() == [D("11.01")]


def test_amazon_order_total_that_differs_is_listed(settings: Settings, wh: Warehouse):
    listed = _amazon(settings, wh, "12.50")
    (oid,) = listed
    row = listed[oid]
    assert oid.startswith("AMZ-") and (row["channel_total"], row["order_total"]) == (D("12.50"), D("11.01"))
    assert (row["difference"], row["disagrees_on"]) == (D("1.49"), "total")
    assert row["subtotal_difference"] is None and row["tax_difference"] is None  # Amazon states the total only
    # and the analysts' main view shows it on the order
    create_views(wh)
    v = wh.read("SELECT channel_total, order_total, channel_total_difference FROM core.v_orders").row(0)
    assert v == (D("12.50"), D("11.01"), D("1.49"))


def test_x12_ctt_line_count_and_quantity_hash_total_are_reconciled(settings: Settings, wh: Warehouse):
    """X12 850 CTT01 (number of PO1 lines) and CTT02 (hash total of PO102 quantities), as the 850 implementation
    guides define them: kept on the order and listed when the captured lines disagree (a line lost in transfer)."""
    from tests.test_x12 import edi, interchange, tset

    def po(n: str, ctt: str) -> list[str]:
        return tset([f"BEG*00*NE*{n}**20260709", "PO1*1*10*EA*2.00**VN*A-1", "PO1*2*3*EA*2.00**VN*A-2", ctt],
                    stcn=n[-4:])

    doc = interchange(po("PO0001", "CTT*2*13"), po("PO0002", "CTT*3*13"), po("PO0003", "CTT*2*12.5"))
    (settings.landing_dir("edi") / "ctt.edi").write_bytes(edi(doc))
    capture_channel("edi", wh, settings, now=NOW)
    got = _listed(settings, wh)
    assert "EDI-SENDER:PO0001" not in got  # 2 lines, 13 units: as stated
    assert got["EDI-SENDER:PO0002"]["disagrees_on"] == "line count"
    assert got["EDI-SENDER:PO0002"]["line_count_difference"] == 1
    assert got["EDI-SENDER:PO0003"]["disagrees_on"] == "quantity hash total"
    assert got["EDI-SENDER:PO0003"]["quantity_difference"] == D("-0.5")
    stated = wh.read("SELECT order_id, channel_line_count, channel_quantity_total FROM core.orders ORDER BY 1")
    assert stated.row(0) == ("EDI-SENDER:PO0001", 2, D("13"))
