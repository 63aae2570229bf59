"""The demo through the whole pipeline (services, no Dagster): every reason code of capture and validation
appears, the scenarios end where they should, and a second run changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from golden import LAST_RUN, demo_pipeline, table_hashes
from golden import run_all as _run_all

from som_pipeline.config import Settings
from som_pipeline.reasons import (
    APPROVAL_CODES,
    BILLING_CODES,
    FULFILMENT_CODES,
    LATER_RUN_CODES,
    REASONS,
    RETURNS_CODES,
    VALIDATION_REASONS,
)
from som_pipeline.services.analytics import run_reconciliation
from som_pipeline.warehouse import Warehouse


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Warehouse, dict]:
    return demo_pipeline(tmp_path_factory.mktemp("demo_pipeline"))


def test_every_reason_code_appears(pipeline) -> None:
    _s, wh, _m = pipeline
    quarantined = set(wh.read("SELECT DISTINCT reason_code FROM ops.quarantine")["reason_code"])
    envelope = wh.read("SELECT envelope_errors FROM ops.edi_acks WHERE envelope_errors IS NOT NULL")
    found = quarantined | ({"X12_ENVELOPE_COUNT"} if envelope["envelope_errors"].str.contains("X12_ENVELOPE_COUNT").any() else set())
    assert set(REASONS) - LATER_RUN_CODES - FULFILMENT_CODES - BILLING_CODES - RETURNS_CODES - found == set()
    # the floor's injected mistakes (demo/floor.py): a retried scan, a mistyped task, a bad check digit, a receipt
    # of an unknown SKU
    assert {"DUPLICATE_SCAN", "UNKNOWN_TASK", "BAD_BARCODE", "UNKNOWN_PRODUCT"} <= found
    validated = set(wh.read("SELECT DISTINCT reason_code FROM core.validation_results WHERE reason_code IS NOT NULL")
                    ["reason_code"])
    # BACKORDER lines filled by the floor day's receipts and transfers are evaluated again (their results replaced):
    # by the last run none is left waiting -- the backorders filled, which the reservations show
    assert set(VALIDATION_REASONS) - validated <= {"BACKORDER"}
    if "BACKORDER" not in validated:
        assert wh.read("SELECT count(*) AS n FROM core.reservations WHERE decision = 'BACKORDER'")["n"][0] == 0
        assert wh.read("SELECT count(*) AS n FROM core.receipts")["n"][0] > 0
    assert APPROVAL_CODES <= quarantined


def test_scenarios_end_where_they_should(pipeline) -> None:
    _s, wh, m = pipeline
    from som_pipeline.orders import CHANNEL_CODES

    status = {r["order_id"]: r for r in wh.read("SELECT o.order_id, s.status, s.reasons, "
                                                "string_agg(h.reason_code, '|') AS holds FROM core.orders o "
                                                "JOIN core.order_status s USING (order_id) LEFT JOIN core.order_holds h "
                                                "USING (order_id) GROUP BY ALL").iter_rows(named=True)}

    def of(name: str) -> dict:
        sc = next(x for x in m["scenarios"] if x["name"] == name)
        return status[f"{CHANNEL_CODES[sc['channel']]}-{sc['order_ref']}"]

    assert "QTY_ANOMALY" in of("quantity_spike")["holds"]
    assert "PROMO_EXPIRED" in of("expired_promo")["holds"]
    assert "PRICE_MISMATCH" in of("expired_price_list")["holds"]
    assert of("embargoed_destination")["status"] == "REJECTED"
    assert "RESTRICTED_ITEM" in of("hazmat_by_air")["holds"]
    assert "CREDIT_LIMIT" in of("over_credit_limit")["holds"]
    assert of("wrong_tier_price")["status"] == "REJECTED"  # the sales manager's decision in the demo file
    assert of("shopify_cancelled")["status"] == "CANCELLED"
    # the credit desk's approval released NEW_CUSTOMER_REVIEW (whatever else still holds the order)
    assert "NEW_CUSTOMER_REVIEW" not in (of("new_customer_large_first_order")["holds"] or "")
    events = wh.read("SELECT actor FROM core.order_events WHERE actor <> 'system'")
    assert set(events["actor"]) >= {"m.rossi (credit desk)", "j.okafor (sales manager)"}


def test_reconciles_and_rerun_is_idempotent(pipeline) -> None:
    s, wh, _m = pipeline
    errors = {name: df.height for name, df in run_reconciliation(wh).items() if name != "channel_totals" and df.height}
    assert errors == {}
    before = table_hashes(s.warehouse_path, s.home)
    _run_all(s, wh, LAST_RUN)  # same inputs, same clock as the last run: no table changes, not even a text
    after = table_hashes(s.warehouse_path, s.home)
    # only bookkeeping may move: allocation reads what fulfilment released after it (feedback), so its input
    # digest is new once, and it records that digest (its rows stay the same)
    assert {t: (before[t], after.get(t)) for t in before if before[t] != after.get(t)} in (
        {}, {"ops.watermarks": (before["ops.watermarks"], after["ops.watermarks"])})
    _run_all(s, wh, LAST_RUN)  # and from then on nothing moves at all
    again = table_hashes(s.warehouse_path, s.home)
    assert {t: (after[t], again.get(t)) for t in after if after[t] != again.get(t)} == {}


def test_demo_files_all_archived(pipeline) -> None:
    s, _wh, _m = pipeline
    left = [p for p in s.landing.rglob("*") if p.is_file()]
    assert left == []
    assert Path(s.archive).exists()


def test_allocation_routes_around_the_disruption_and_plans_replenishment(pipeline) -> None:
    _s, wh, _m = pipeline  # noqa: RUF059
    a = wh.read("SELECT carrier_id, service, warehouse_id, quantity, allocated_at FROM core.allocations")
    assert a.height > 0
    # the closed carrier service got nothing while its outage lasted (the demo's last run is after it ended)
    ends = wh.read("SELECT ends_at FROM ref.disruptions WHERE disruption_id = 'DHL-EXP-OUTAGE'")["ends_at"][0]
    assert a.filter((a["carrier_id"] == "DHL") & (a["service"] == "EXPRESS") & (a["allocated_at"] < ends)).height == 0
    approved_units = wh.read("SELECT coalesce(sum(r.quantity_reserved), 0) AS n FROM core.reservations r "
                             "WHERE order_status = 'APPROVED'")["n"][0]
    assert 0 < a["quantity"].sum() <= approved_units
    q = wh.read("SELECT reason_code FROM ops.quarantine WHERE channel = 'disruptions'")
    assert q["reason_code"].to_list() == ["REF_CHECK_FAILED"]  # the feed's bad row
    # while orders flow the plan moves stock; a month without new orders (the demo's last runs) plans nothing
    plan = wh.read("SELECT kind FROM core.replenishment_plan")
    assert _m["plan_kinds"] and set(_m["plan_kinds"]) <= {"transfer", "purchase"}
    assert set(plan["kind"]) <= {"transfer", "purchase"}
    assert wh.read("SELECT count(*) AS n FROM core.demand_forecast")["n"][0] > 0


def test_summary_shows_allocations_backorders_and_the_plan(pipeline) -> None:
    """What `make run` prints at the end: allocations by warehouse, backorders, the plan's top lines."""
    from som_pipeline.summary import render_summary

    s, wh, _m = pipeline
    text = render_summary(s)
    assert "allocations by warehouse" in text and "past_promise" in text
    for w in wh.read("SELECT DISTINCT warehouse_id FROM core.allocations")["warehouse_id"]:
        assert w in text
    n_bo = wh.read("SELECT count(*) AS n FROM core.backorders")["n"][0]
    assert f"backorders: {n_bo} lines" in text
    plan = wh.read("SELECT count(*) AS n FROM core.replenishment_plan")["n"][0]
    assert ("replenishment plan, top lines" in text) == (plan > 0)
    assert plan > 0 or "replenishment plan: nothing to move" in text
    # the order-to-cash end: closed, open (why) and re-opened orders, the open breaks
    assert "order closure" in text and "closed" in text and "open: DELIVERY_OPEN" in text
    assert "re-opened since closing" in text and "CHARGEBACK_OPEN" in text


def test_the_month_after_closes_orders_and_chargebacks_reopen_some(pipeline) -> None:
    """make run's last steps: a month later the money is in and orders close; the next day's chargebacks re-open
    closed orders, a late return is refused; Amazon's returns report was judged and its units came back."""
    s, wh, m = pipeline
    st = dict(wh.read("SELECT closed, count(*) AS n FROM core.order_closure GROUP BY 1").rows())
    assert st.get(True, 0) >= 10 and st.get(False, 0) > 0
    ev = dict(wh.read("SELECT to_status, count(DISTINCT order_id) AS n FROM core.order_events "
                      "WHERE to_status IN ('CLOSED', 'REOPENED') GROUP BY 1").rows())
    assert ev["CLOSED"] >= st[True] and ev["REOPENED"] >= 2
    reopened = wh.read("SELECT e.order_id, e.reason, c.closed, c.blocking FROM core.order_events e "
                       "JOIN core.order_closure c USING (order_id) WHERE e.to_status = 'REOPENED'")
    assert reopened["reason"].str.contains("charged_back_amount").all() and not reopened["closed"].any()
    cb = wh.read("SELECT source, kind, status FROM core.chargebacks ORDER BY ALL")
    assert set(cb["status"]) >= {"open", "lost"} and set(cb["source"]) == {"shopify", "processor"}
    assert "inquiry" in set(cb["kind"])
    q = wh.read("SELECT reason_code FROM ops.quarantine WHERE channel = 'chargebacks'")["reason_code"].to_list()
    assert q == ["CHARGEBACK_UNKNOWN_ORDER"]
    late = wh.read("SELECT status, refusal_code FROM core.return_requests WHERE request_id LIKE 'RR-LATE-%'")
    assert late.rows() == [("refused", "RETURN_WINDOW_CLOSED")]
    # the returns step's refusals (demo/returns.py): more than delivered, a line the order lacks, not delivered yet
    refused = set(wh.read("SELECT refusal_code FROM core.return_requests WHERE status = 'refused'")["refusal_code"])
    assert refused >= {"RETURN_QTY_EXCEEDS_DELIVERED", "UNKNOWN_ORDER_LINE", "RETURN_NOT_DELIVERED",
                       "RETURN_WINDOW_CLOSED"}
    amz = wh.read("SELECT r.status, count(x.receipt_id) AS received FROM core.return_requests r "
                  "LEFT JOIN core.return_receipts x USING (rma_id) WHERE r.source LIKE 'amazon%' GROUP BY 1")
    assert m["returns"]["amazon_returns"] >= 1 and amz.rows() == [("accepted", m["returns"]["amazon_returns"])]
    breaks = set(wh.read("SELECT break_type FROM ops.reconciliation_breaks WHERE resolved_at IS NULL")["break_type"])
    assert {"CHARGEBACK_OPEN", "OVERDUE"} <= breaks
    report = s.home / "reports" / "reconciliation-2027-01-05.html"
    assert report.exists() and "CHARGEBACK_OPEN" in report.read_text(encoding="utf-8")
