"""Validation rules: the guide's cases, one small frame at a time (pure functions, no warehouse)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline import schemas
from som_pipeline.validation import (
    ISO_COUNTRIES,
    RESULT_SCHEMA,
    VALIDATION_REASONS,
    ConfigError,
    ReservationModel,
    ValidationFindingModel,
    check_compliance,
    check_credit,
    check_customer,
    check_price,
    check_promo,
    check_quantity_anomaly,
    estimate_order_totals,
    load_config,
    order_priority,
    reserve_inventory,
    run_checks,
)
from tests.builders import (  # noqa: E402
    AS_OF,
    CFG,
    NO_ITEMS,
    NO_PROMOS,
    T0,
    D,
    customers,
    lines,
    open_items,
    orders,
    prices,
    products,
    promos,
    stock,
)


def ev(row: dict) -> dict:
    return json.loads(row["evidence"])


def findings(res: pl.DataFrame, reason: str | None = None) -> list[dict]:
    f = res.filter(pl.col("outcome") != "pass")
    if reason:
        f = f.filter(pl.col("reason_code") == reason)
    return f.sort("order_id", "line_no").to_dicts()


def reservations_of(rsv: pl.DataFrame, order_id: str) -> list[tuple]:
    return [(r["line_no"], r["sku"], r["quantity_reserved"], r["quantity_backordered"], r["decision"])
            for r in rsv.filter(pl.col("order_id") == order_id).sort("line_no", "sku").to_dicts()]


def reserve(o, ln, c, p, inv, fixed=None, cfg=CFG):
    rsv, res = reserve_inventory(o, ln, c, p, inv, fixed, cfg)
    ReservationModel.validate(rsv, lazy=True)
    ValidationFindingModel.validate(res, lazy=True)
    return rsv, res


# ------------------------------------------------------------------------------------------------
# Inventory
# ------------------------------------------------------------------------------------------------
def test_short_stock_split_or_backorder_decided_before_approval():
    o = orders({"order_id": "A", "order_ts": T0}, {"order_id": "B", "order_ts": T0 + timedelta(minutes=1)},
               {"order_id": "C", "order_ts": T0 + timedelta(minutes=2)})
    ln = lines({"order_id": "A", "quantity": 3}, {"order_id": "B", "quantity": 4}, {"order_id": "C", "quantity": 2})
    rsv, res = reserve(o, ln, customers({}), products({"sku": "S1"}), stock(S1=5))
    assert reservations_of(rsv, "A") == [(1, "S1", 3, 0, "RESERVE")]
    assert reservations_of(rsv, "B") == [(1, "S1", 2, 2, "SPLIT")]
    assert reservations_of(rsv, "C") == [(1, "S1", 0, 2, "BACKORDER")]
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in findings(res)] == [
        ("B", "SPLIT_SHIPMENT", "warn"), ("C", "BACKORDER", "warn")]
    e = ev(findings(res, "SPLIT_SHIPMENT")[0])
    assert (e["available"], e["demand_before_in_run"], e["reserved"], e["short"]) == (5, 3, 2, 2)
    assert res.filter(pl.col("order_id") == "A")["outcome"].to_list() == ["pass"]


def test_fixed_reservations_of_earlier_runs_reduce_stock():
    o = orders({"order_id": "A"})
    ln = lines({"order_id": "A", "quantity": 4})
    fixed = pl.DataFrame({"sku": ["S1"], "quantity": [7]})
    rsv, _ = reserve(o, ln, customers({}), products({"sku": "S1"}), stock(S1=10), fixed)
    assert reservations_of(rsv, "A") == [(1, "S1", 3, 1, "SPLIT")]


def test_ship_complete_never_split():
    o = orders({"order_id": "SC", "ship_complete": True},
               {"order_id": "DEF", "customer_id": "C2", "order_ts": T0 + timedelta(minutes=1)},
               {"order_id": "OK", "ship_complete": True, "order_ts": T0 + timedelta(minutes=2)})
    ln = lines({"order_id": "SC", "line_no": 1, "sku": "S1", "quantity": 4},
               {"order_id": "SC", "line_no": 2, "sku": "S2", "quantity": 1},
               {"order_id": "DEF", "line_no": 1, "sku": "S2", "quantity": 3},
               {"order_id": "OK", "line_no": 1, "sku": "S2", "quantity": 2})
    c = customers({"customer_id": "C1", "allow_substitutes": True},
                  {"customer_id": "C2", "ship_complete": True})  # C2: ship-complete by default
    p = products({"sku": "S1", "substitutes": "S3"}, {"sku": "S2"}, {"sku": "S3"})
    rsv, res = reserve(o, ln, c, p, stock(S1=2, S2=5, S3=50))
    # short on S1: the whole order waits with what it reserved; no split, no substitution
    assert reservations_of(rsv, "SC") == [(1, "S1", 2, 2, "WAIT_SHIP_COMPLETE"), (2, "S2", 1, 0, "WAIT_SHIP_COMPLETE")]
    # customer default ship-complete, short on S2 (5 - 1 = 4 left, wants 3 -> fine) ...
    assert reservations_of(rsv, "DEF") == [(1, "S2", 3, 0, "RESERVE")]
    # ... and the next ship-complete order finds 1 left for 2: waits, never SPLIT
    assert reservations_of(rsv, "OK") == [(1, "S2", 1, 1, "WAIT_SHIP_COMPLETE")]
    assert rsv.filter(pl.col("decision").is_in(["SPLIT", "SUBSTITUTE"])).height == 0
    assert {f["reason_code"] for f in findings(res)} == {"WAIT_SHIP_COMPLETE"}
    assert [f["outcome"] for f in findings(res)] == ["warn", "warn"]
    # configurable: WAIT_SHIP_COMPLETE as a hold
    held = replace(CFG, severity={**CFG.severity, "WAIT_SHIP_COMPLETE": "hold"})
    _, res2 = reserve(o, ln, c, p, stock(S1=2, S2=5, S3=50), cfg=held)
    assert {f["outcome"] for f in findings(res2)} == {"fail"}


def test_substitute_used_only_when_customer_allows():
    o = orders({"order_id": "YES", "customer_id": "C1"},
               {"order_id": "NO", "customer_id": "C2", "order_ts": T0 + timedelta(minutes=1)})
    ln = lines({"order_id": "YES", "sku": "S1", "quantity": 5}, {"order_id": "NO", "sku": "S1", "quantity": 5})
    c = customers({"customer_id": "C1", "allow_substitutes": True}, {"customer_id": "C2", "allow_substitutes": False})
    p = products({"sku": "S1", "substitutes": "S2|S3"}, {"sku": "S2"}, {"sku": "S3"})
    rsv, res = reserve(o, ln, c, p, stock(S1=1, S2=3, S3=10))
    # YES: 1 from S1, shortfall 4 -> S2 has only 3 (not enough) -> first substitute with enough: S3
    assert reservations_of(rsv, "YES") == [(1, "S1", 1, 0, "SUBSTITUTE"), (1, "S3", 4, 0, "SUBSTITUTE")]
    assert rsv.filter(pl.col("sku") == "S3")["requested_sku"].to_list() == ["S1"]
    # NO: the customer does not accept substitutes -> backorder although S2/S3 have stock
    assert reservations_of(rsv, "NO") == [(1, "S1", 0, 5, "BACKORDER")]
    sub = findings(res, "SUBSTITUTED")[0]
    assert sub["order_id"] == "YES" and ev(sub)["substitute_sku"] == "S3" and ev(sub)["substitute_preference"] == 2


def test_substitutes_wait_for_all_primary_demand_and_skip_unshippable_ones():
    # the substitute's own buyers (even later ones) are served before any substitution
    o = orders({"order_id": "A", "customer_id": "C1"},
               {"order_id": "B", "customer_id": "C2", "order_ts": T0 + timedelta(minutes=5)})
    ln = lines({"order_id": "A", "sku": "S1", "quantity": 5}, {"order_id": "B", "sku": "S3", "quantity": 8})
    c = customers({"customer_id": "C1", "allow_substitutes": True}, {"customer_id": "C2"})
    p = products({"sku": "S1", "substitutes": "S9|S3"}, {"sku": "S3"}, {"sku": "S9", "hazmat": True})
    o_air = o.with_columns(pl.when(pl.col("order_id") == "A").then(pl.lit("UPS_AIR")).otherwise("ship_method")
                           .alias("ship_method"))
    rsv, _ = reserve(o_air, ln, c, p, stock(S1=0, S3=10, S9=100))
    # S9 is hazmat and A ships by air; S3 has 10 - 8 = 2 left after B's primary demand < 5
    assert reservations_of(rsv, "A") == [(1, "S1", 0, 5, "BACKORDER")]
    assert reservations_of(rsv, "B") == [(1, "S3", 8, 0, "RESERVE")]


def test_priority_order_time_then_tier_decides_scarce_stock():
    same = T0
    o = orders({"order_id": "A-STD", "customer_id": "STD", "order_ts": same},
               {"order_id": "Z-PLAT", "customer_id": "PLAT", "order_ts": same},
               {"order_id": "EARLY", "customer_id": "STD", "order_ts": same - timedelta(seconds=1)},
               {"order_id": "LATE", "customer_id": "PLAT", "order_ts": same + timedelta(seconds=1)})
    c = customers({"customer_id": "STD", "tier": "standard"}, {"customer_id": "PLAT", "tier": "platinum"})
    assert order_priority(o, c, CFG).sort("priority")["order_id"].to_list() == ["EARLY", "Z-PLAT", "A-STD", "LATE"]
    ln = lines(*[{"order_id": x, "quantity": 2} for x in ("A-STD", "Z-PLAT", "EARLY", "LATE")])
    rsv, _ = reserve(o, ln, c, products({"sku": "S1"}), stock(S1=4))
    got = {r["order_id"]: r["decision"] for r in rsv.to_dicts()}
    assert got == {"EARLY": "RESERVE", "Z-PLAT": "RESERVE", "A-STD": "BACKORDER", "LATE": "BACKORDER"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_reservation_invariants(data):
    skus = ["S1", "S2", "S3"]
    n_orders = data.draw(st.integers(1, 8))
    o_rows, l_rows = [], []
    for i in range(n_orders):
        oid = f"O{i}"
        o_rows.append({"order_id": oid, "customer_id": data.draw(st.sampled_from(["C1", "C2", "C3"])),
                       "order_ts": T0 + timedelta(minutes=data.draw(st.integers(0, 3))),
                       "ship_complete": data.draw(st.booleans())})
        for j, sku in enumerate(data.draw(st.lists(st.sampled_from(skus), min_size=1, max_size=3, unique=True))):
            l_rows.append({"order_id": oid, "line_no": j + 1, "sku": sku, "quantity": data.draw(st.integers(1, 9))})
    c = customers(*[{"customer_id": cid, "tier": data.draw(st.sampled_from(schemas.TIERS)),
                     "ship_complete": data.draw(st.booleans()), "allow_substitutes": data.draw(st.booleans())}
                    for cid in ("C1", "C2", "C3")])
    p = products({"sku": "S1", "substitutes": data.draw(st.sampled_from([None, "S2", "S3|S2", "S2|S3"]))},
                 {"sku": "S2", "substitutes": data.draw(st.sampled_from([None, "S1", "S3"]))}, {"sku": "S3"})
    on_hand = {s: data.draw(st.integers(0, 12)) for s in skus}
    fixed = pl.DataFrame({"sku": skus, "quantity": [data.draw(st.integers(0, 4)) for _ in skus]})
    o, ln = orders(*o_rows), lines(*l_rows)
    rsv, res = reserve(o, ln, c, p, stock(**on_hand), fixed)

    available = {s: max(0, on_hand[s] - q) for s, q in zip(skus, fixed["quantity"].to_list(), strict=True)}
    per_sku = rsv.group_by("sku").agg(pl.col("quantity_reserved").sum())
    for sku, q in per_sku.iter_rows():
        assert q <= available[sku]
    assert rsv.select(pl.min_horizontal(pl.col("^quantity_.*$")).min()).item() >= 0
    per_line = rsv.group_by("order_id", "line_no").agg(pl.col("quantity_requested").sum())
    assert per_line.join(ln, on=["order_id", "line_no"]).filter(
        pl.col("quantity_requested") != pl.col("quantity")).height == 0
    sc = o.join(c, on="customer_id").filter(pl.col("ship_complete") | pl.col("ship_complete_right"))["order_id"]
    assert rsv.filter(pl.col("order_id").is_in(sc.to_list()) & pl.col("decision").is_in(["SPLIT", "SUBSTITUTE"])
                      ).height == 0
    # every order has an inventory result row
    assert set(res["order_id"]) == set(o["order_id"])


# ------------------------------------------------------------------------------------------------
# Credit
# ------------------------------------------------------------------------------------------------
def test_unpaid_bills_over_limit_hold_credit():
    c = customers({"credit_limit": D("1000.00")})
    items = open_items({"amount_open": D("500.00")}, {"amount_open": D("300.00")})
    o = orders({"order_id": "A", "order_total": D("150.00")},
               {"order_id": "B", "order_total": D("150.00"), "order_ts": T0 + timedelta(hours=1)})
    committed = pl.DataFrame({"customer_id": ["C1"], "amount": [D("25.00")]})
    res = check_credit(o, c, items, committed, AS_OF, CFG)
    ValidationFindingModel.validate(res, lazy=True)
    got = findings(res)
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in got] == [("B", "CREDIT_LIMIT", "fail")]
    e = ev(got[0])
    assert e == {**e, "open_receivables": "800.00", "committed_unbilled": "25.00", "approved_in_run": "150.00",
                 "this_order": "150.00", "exposure": "1125.00", "credit_limit": "1000.00"}
    assert res.filter(pl.col("order_id") == "A")["outcome"].to_list() == ["pass"]  # 975 <= 1000


def _credit_outcomes(res: pl.DataFrame) -> dict[str, tuple[str, str]]:
    r = res.filter(pl.col("rule") == "credit")
    return {row["order_id"]: (row["outcome"], ev(row).get("approved_in_run")) for row in r.to_dicts()}


def test_credit_exposure_counts_only_orders_the_pass_approves_ahead():
    """Limit 100: A (60) is held by another check, so it does not use the credit B (50) and C (30) need."""
    c = customers({"credit_limit": D("100.00")})
    o = orders({"order_id": "A", "order_total": D("60.00")},
               {"order_id": "B", "order_total": D("50.00"), "order_ts": T0 + timedelta(hours=1)},
               {"order_id": "C", "order_total": D("30.00"), "order_ts": T0 + timedelta(hours=2)})
    held_a = pl.DataFrame([{"order_id": "A", "line_no": None, "rule": "price", "outcome": "fail",
                            "reason_code": "PRICE_MISMATCH", "message": "m", "evidence": "{}"}])
    res = check_credit(o, c, NO_ITEMS, None, AS_OF, CFG, screened=held_a)
    # A itself is judged against everything the pass approves (it can only be released after them): 80 + 60
    assert _credit_outcomes(res) == {"A": ("fail", "80.00"), "B": ("pass", "0.00"), "C": ("pass", "50.00")}
    # without the other hold, A is approved ahead: B no longer fits, and a refused B adds nothing for C
    res = check_credit(o, c, NO_ITEMS, None, AS_OF, CFG)
    assert _credit_outcomes(res) == {"A": ("pass", "0.00"), "B": ("fail", "60.00"), "C": ("pass", "60.00")}
    # a warn (not a hold) from another check does not stop an order counting
    res = check_credit(o, c, NO_ITEMS, None, AS_OF, CFG, screened=held_a.with_columns(outcome=pl.lit("warn")))
    assert _credit_outcomes(res)["B"] == ("fail", "60.00")


def test_credit_pass_counts_per_customer_when_tight_customers_interleave():
    """Two customers both crossing their limit in the pass, their orders alternating in priority: each one's
    approvals count against its own later orders only (the scan once reset its running total at every change
    of customer, so X2 was judged without X1 and Y2 without Y1)."""
    c = customers({"customer_id": "X", "credit_limit": D("100.00")}, {"customer_id": "Y", "credit_limit": D("100.00")})
    o = orders(*({"order_id": oid, "customer_id": oid[0], "order_total": D(total), "order_ts": T0 + timedelta(hours=h)}
                 for h, (oid, total) in enumerate([("X1", "60.00"), ("Y1", "70.00"), ("X2", "50.00"),
                                                   ("Y2", "40.00"), ("X3", "30.00"), ("Y3", "30.00")])))
    res = check_credit(o, c, NO_ITEMS, None, AS_OF, CFG)
    assert _credit_outcomes(res) == {"X1": ("pass", "0.00"), "Y1": ("pass", "0.00"), "X2": ("fail", "60.00"),
                                     "Y2": ("fail", "70.00"), "X3": ("pass", "60.00"), "Y3": ("pass", "70.00")}


def test_overdue_invoice_holds_credit():
    c = customers({})
    items = open_items({"invoice_id": "INV-OLD", "amount_open": D("10.00"), "due_date": AS_OF - timedelta(days=16)},
                       {"invoice_id": "INV-GRACE", "amount_open": D("10.00"), "due_date": AS_OF - timedelta(days=15)})
    res = check_credit(orders({"order_id": "A"}), c, items, None, AS_OF, CFG)
    got = findings(res)
    assert [f["reason_code"] for f in got] == ["CREDIT_OVERDUE"]
    inv = ev(got[0])["invoices"]
    assert [(i["invoice_id"], i["days_overdue"]) for i in inv] == [("INV-OLD", 16)]  # 15 days = within grace
    # paid (item gone): the hold's cause is gone on the next run
    assert findings(check_credit(orders({"order_id": "A"}), c, items.filter(pl.col("invoice_id") != "INV-OLD"),
                                 None, AS_OF, CFG)) == []


def test_prepaid_orders_skip_credit():
    c = customers({"credit_limit": D("100.00")})
    o = orders({"order_id": "PAID", "payment_status": "paid", "order_total": D("5000.00")},
               {"order_id": "OPEN", "payment_status": "pending", "order_total": D("60.00"),
                "order_ts": T0 + timedelta(hours=1)})
    items = open_items({"amount_open": D("10.00"), "due_date": AS_OF - timedelta(days=90)})
    res = check_credit(o, c, items, None, AS_OF, CFG)
    paid = res.filter(pl.col("order_id") == "PAID").to_dicts()
    assert [(r["outcome"], ev(r)["prepaid"]) for r in paid] == [("pass", True)]
    # the prepaid 5000 adds no exposure: OPEN is 10 + 60 <= 100 (but the overdue item still holds it)
    assert [f["reason_code"] for f in findings(res) if f["order_id"] == "OPEN"] == ["CREDIT_OVERDUE"]


def test_unpriced_order_is_valued_at_list_price_for_credit():
    c = customers({"credit_limit": D("100.00")})
    o = orders({"order_id": "U", "items_subtotal": None, "order_total": None, "shipping_total": D("5.00"),
                "unpriced_lines": 1})
    ln = lines({"order_id": "U", "quantity": 3, "unit_price": None, "line_amount": None})
    values = estimate_order_totals(o, ln, c, prices({"price": D("33.3350")}))
    assert values.to_dicts() == [{"order_id": "U", "value": D("105.01")}]  # 3 x 33.335 = 100.005 -> 100.01, + 5
    got = findings(check_credit(o, c, NO_ITEMS, None, AS_OF, CFG, order_values=values))
    assert [(f["reason_code"], ev(f)["this_order"], ev(f)["this_order_estimated"]) for f in got] == [
        ("CREDIT_LIMIT", "105.01", True)]
    # without a value the order is not silently passed
    assert [f["reason_code"] for f in findings(check_credit(o, c, NO_ITEMS, None, AS_OF, CFG))] == [
        "CREDIT_UNCHECKED"]


def test_credit_other_currency_and_unknown_customer_are_not_blocking():
    c = customers({"currency": "EUR", "credit_limit": D("1.00")})
    o = orders({"order_id": "USD-ORDER", "order_total": D("999.00")}, {"order_id": "NOBODY", "customer_id": None})
    res = check_credit(o, c, NO_ITEMS, None, AS_OF, CFG)
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in findings(res)] == [
        ("NOBODY", "NOT_EVALUATED", "warn"), ("USD-ORDER", "CREDIT_UNCHECKED", "warn")]


# ------------------------------------------------------------------------------------------------
# Promotions
# ------------------------------------------------------------------------------------------------
def _promo_check(o, ln, pr, prior=None, c=None):
    c = customers({}) if c is None else c
    res = check_promo(o, ln, c, products({"sku": "S1"}, {"sku": "S2", "category": "Safety"}), pr, prior, CFG)
    ValidationFindingModel.validate(res, lazy=True)
    return res


def test_expired_promo_blocked():
    pr = promos({"code": "SUMMER20", "valid_from": date(2026, 6, 1), "valid_to": date(2026, 8, 31)})
    res = _promo_check(orders({"order_id": "A", "promo_code": "summer20 "}), lines({"order_id": "A"}), pr)
    got = findings(res)
    assert [(f["reason_code"], f["outcome"]) for f in got] == [("PROMO_EXPIRED", "fail")]
    assert ev(got[0])["valid_to"] == "2026-08-31"


def test_promo_not_yet_valid():
    pr = promos({"code": "HOLIDAY25", "valid_from": date(2026, 11, 20)})
    res = _promo_check(orders({"order_id": "A", "promo_code": "HOLIDAY25"}), lines({"order_id": "A"}), pr)
    assert [f["reason_code"] for f in findings(res)] == ["PROMO_NOT_YET_VALID"]


def test_unknown_and_ineligible_promos():
    pr = promos({"code": "GOLD10", "eligible_tiers": "gold|platinum"},
                {"code": "PPE12", "eligible_categories": "Safety"},
                {"code": "SHOP", "eligible_channels": "shopify"})
    o = orders({"order_id": "A", "promo_code": "NOPE"}, {"order_id": "B", "promo_code": "GOLD10"},
               {"order_id": "C", "promo_code": "PPE12"}, {"order_id": "D", "promo_code": "PPE12"},
               {"order_id": "E", "promo_code": "SHOP"}, {"order_id": "F"})
    ln = lines(*[{"order_id": x} for x in "ABCEF"], {"order_id": "D", "sku": "S2"})
    res = _promo_check(o, ln, pr)
    assert {f["order_id"]: f["reason_code"] for f in findings(res)} == {
        "A": "PROMO_UNKNOWN", "B": "PROMO_INELIGIBLE", "C": "PROMO_INELIGIBLE", "E": "PROMO_INELIGIBLE"}
    assert res.filter(pl.col("order_id").is_in(["D", "F"]))["outcome"].to_list() == ["pass", "pass"]
    assert "tier standard not in gold|platinum" in findings(res)[1]["message"]


def test_promo_exhausted_counts_earlier_orders():
    pr = promos({"code": "FLASH30", "usage_cap": 3})
    o = orders(*[{"order_id": f"O{i}", "promo_code": "flash30", "order_ts": T0 + timedelta(minutes=10 - i)}
                 for i in range(4)],
               {"order_id": "BAD", "promo_code": "FLASH30", "channel": "csv", "order_ts": T0 - timedelta(hours=1),
                "customer_id": "NOBODY"})
    ln = lines(*[{"order_id": f"O{i}"} for i in range(4)])  # BAD has no lines: ineligible, does not count
    prior = pl.DataFrame({"code": ["Flash30"], "used": [1]})
    res = _promo_check(o, ln, pr, prior)
    # priority = order time: O3, O2 are the 2nd and 3rd uses; O1 and O0 exceed the cap
    assert {f["order_id"]: f["reason_code"] for f in findings(res)} == {
        "BAD": "PROMO_INELIGIBLE", "O1": "PROMO_EXHAUSTED", "O0": "PROMO_EXHAUSTED"}
    e = ev(next(f for f in findings(res) if f["order_id"] == "O1"))
    assert (e["usage_cap"], e["used_in_earlier_runs"], e["used_earlier_in_run"]) == (3, 1, 2)


# ------------------------------------------------------------------------------------------------
# Price
# ------------------------------------------------------------------------------------------------
def _price(o, ln, pl_rows, pr=NO_PROMOS, c=None):
    c = customers({}) if c is None else c
    res = check_price(o, ln, c, pl_rows, pr, CFG, products=products({"sku": "S1"}))
    ValidationFindingModel.validate(res, lazy=True)
    return res


def test_wrong_tier_price_blocked():
    pl_rows = prices({"tier": "standard", "price": D("10.0000")}, {"tier": "platinum", "price": D("8.5000")})
    o = orders({"order_id": "A"}, {"order_id": "B"})
    ln = lines({"order_id": "A", "unit_price": D("8.5000"), "quantity": 4},
               {"order_id": "B", "unit_price": D("10.0000"), "quantity": 4})
    res = _price(o, ln, pl_rows)
    got = findings(res)
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in got] == [("A", "PRICE_MISMATCH", "fail")]
    e = ev(got[0])
    assert (e["actual_unit_price"], e["expected_unit_price"], e["difference"]) == ("8.5000", "10.0000", "-1.5000")
    assert e["price_list"]["tier"] == "standard" and e["price_list"]["min_qty"] == 1


def test_quantity_breaks_pick_the_right_price():
    pl_rows = prices({"min_qty": 1, "price": D("10.0000")}, {"min_qty": 10, "price": D("9.5000")},
                     {"min_qty": 50, "price": D("9.0000")},
                     # an expired, cheaper generation must not apply
                     {"min_qty": 10, "price": D("7.0000"), "valid_from": date(2025, 1, 1),
                      "valid_to": date(2025, 12, 31)})
    o = orders(*[{"order_id": x} for x in "ABCD"])
    ln = lines({"order_id": "A", "quantity": 12, "unit_price": D("9.5000")},
               {"order_id": "B", "quantity": 12, "unit_price": D("10.0000")},
               {"order_id": "C", "quantity": 50, "unit_price": D("9.0000")},
               {"order_id": "D", "quantity": 9, "unit_price": D("10.0050")})  # within 0.01 tolerance
    res = _price(o, ln, pl_rows)
    got = findings(res)
    assert [(f["order_id"], f["reason_code"]) for f in got] == [("B", "PRICE_MISMATCH")]
    assert ev(got[0])["expected_unit_price"] == "9.5000" and ev(got[0])["price_list"]["min_qty"] == 10


def test_no_price_row_and_unpriced_line():
    pl_rows = prices({"sku": "S1", "price": D("10.0000")})
    o = orders({"order_id": "A"}, {"order_id": "B"}, {"order_id": "C", "currency": "EUR"})
    ln = lines({"order_id": "A", "unit_price": None, "line_amount": None, "quantity": 3},
               {"order_id": "B", "sku": "S2"}, {"order_id": "C"})
    res = _price(o, ln, pl_rows)
    got = {f["order_id"]: f for f in findings(res)}
    assert (got["A"]["reason_code"], got["A"]["outcome"], ev(got["A"])["expected_unit_price"]) == (
        "PRICED_FROM_LIST", "warn", "10.0000")
    assert got["B"]["reason_code"] == "PRICE_MISMATCH" and got["B"]["message"].startswith("no price for tier")
    assert got["C"]["reason_code"] == "PRICE_MISMATCH" and "EUR" in got["C"]["message"]


def test_discount_above_tier_max():
    pl_rows = prices({"price": D("10.0000"), "max_discount_pct": D("0.080000")})
    o = orders({"order_id": "OVER"}, {"order_id": "MAX"}, {"order_id": "PROMO", "promo_code": "SAVE20"},
               {"order_id": "FIXED", "promo_code": "TAKE30"}, {"order_id": "EXPIRED", "promo_code": "OLD20"})
    base = {"quantity": 10, "unit_price": D("10.0000")}
    ln = lines({"order_id": "OVER", **base, "discount_amount": D("20.00")},
               {"order_id": "MAX", **base, "discount_amount": D("8.00")},
               {"order_id": "PROMO", **base, "discount_amount": D("20.00")},
               {"order_id": "FIXED", **base, "line_no": 1, "discount_amount": D("15.00")},
               {"order_id": "FIXED", **base, "line_no": 2, "discount_amount": D("15.00")},
               {"order_id": "EXPIRED", **base, "discount_amount": D("20.00")})
    pr = promos({"code": "SAVE20", "value": D("0.2000")},
                {"code": "TAKE30", "kind": "fixed_amount", "value": D("30.0000")},
                {"code": "OLD20", "valid_to": date(2026, 3, 1)})
    res = _price(o, ln, pl_rows, pr)
    got = findings(res)
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in got] == [
        ("EXPIRED", "DISCOUNT_NOT_APPROVED", "fail"), ("OVER", "DISCOUNT_NOT_APPROVED", "fail")]
    e = ev(got[1])
    assert (e["discount_pct"], e["tier_max_discount_pct"], e["allowed"]) == ("0.2000", "0.080000", "8.00")


# ------------------------------------------------------------------------------------------------
# Quantity anomaly
# ------------------------------------------------------------------------------------------------
def _history(qtys: list[int], *, customer: str = "C1", sku: str = "S1", start: datetime = T0 - timedelta(days=60)):
    ho = orders(*[{"order_id": f"H-{customer}-{sku}-{i}", "customer_id": customer, "order_ts": start + timedelta(days=i)}
                  for i in range(len(qtys))])
    hl = lines(*[{"order_id": f"H-{customer}-{sku}-{i}", "sku": sku, "quantity": q} for i, q in enumerate(qtys)])
    return ho, hl


def test_ten_to_thousand_is_held():
    ho, hl = _history([8, 10, 12, 9, 11])
    o = orders({"order_id": "BIG"}, {"order_id": "NORMAL"})
    ln = lines({"order_id": "BIG", "quantity": 1000, "unit_price": D("1.0000")},
               {"order_id": "NORMAL", "quantity": 14, "unit_price": D("1.0000")})
    res = check_quantity_anomaly(o, ln, ho, hl, CFG)
    ValidationFindingModel.validate(res, lazy=True)
    got = findings(res)
    assert [(f["order_id"], f["line_no"], f["reason_code"], f["outcome"]) for f in got] == [
        ("BIG", 1, "QTY_ANOMALY", "fail")]
    e = ev(got[0])
    assert (e["baseline_level"], e["median"], e["mad"], e["history_observations"]) == ("customer_sku", 10.0, 1.0, 5)
    assert e["robust_z"] == pytest.approx(990 / 1.4826, rel=1e-3)
    assert "median 10" in got[0]["message"]
    assert res.filter(pl.col("order_id") == "NORMAL")["outcome"].to_list() == ["pass"]


def test_quantity_baseline_uses_only_history_before_the_order_and_falls_back():
    # C1's big S1 history lies AFTER the orders: it must not count; C1 has other SKUs before them
    ho, hl = _history([900, 1000, 1100], start=T0 + timedelta(days=1))
    ho2, hl2 = _history([5, 6, 5, 7], sku="S2")
    ho3, hl3 = _history([500, 400, 450], customer="C9", sku="S3")  # the population of S3
    o = orders({"order_id": "A"}, {"order_id": "B", "customer_id": "C8"}, {"order_id": "B2", "customer_id": "C8"},
               {"order_id": "C", "customer_id": "C7"})
    ln = lines({"order_id": "A", "sku": "S1", "quantity": 1000}, {"order_id": "B", "sku": "S3", "quantity": 400},
               {"order_id": "B2", "sku": "S3", "quantity": 5000}, {"order_id": "C", "sku": "NEW", "quantity": 1000})
    res = check_quantity_anomaly(o, ln, pl.concat([ho, ho2, ho3]), pl.concat([hl, hl2, hl3]), CFG)
    got = {f["order_id"]: ev(f) for f in findings(res, "QTY_ANOMALY")}
    assert set(got) == {"A", "B2", "C"}
    assert (got["A"]["baseline_level"], got["A"]["median"], got["A"]["history_observations"]) == ("customer", 5.5, 4)
    assert (got["B2"]["baseline_level"], got["B2"]["median"]) == ("sku_population", 450.0)
    assert (got["C"]["baseline_level"], got["C"]["median"], got["C"]["history_observations"]) == (
        "global", CFG.qty_global_median, None)
    b = json.loads(res.filter(pl.col("order_id") == "B")["evidence"][0])
    assert b["baseline_levels"] == ["sku_population"]


def test_quantity_baseline_window_keeps_the_most_recent_history():
    cfg = replace(CFG, qty_baseline_window=3)
    ho, hl = _history([1000, 1000, 1000, 1000, 10, 10, 10])  # habits changed: the last 3 are 10
    res = check_quantity_anomaly(orders({"order_id": "A"}), lines({"order_id": "A", "quantity": 1000}), ho, hl, cfg)
    e = ev(findings(res, "QTY_ANOMALY")[0])
    assert (e["median"], e["history_observations"]) == (10.0, 3)
    assert findings(check_quantity_anomaly(orders({"order_id": "A"}), lines({"order_id": "A", "quantity": 1000}),
                                           ho, hl, CFG)) == []  # all 7: median 1000


def test_order_value_anomaly():
    ho = orders(*[{"order_id": f"H{i}", "items_subtotal": D(v), "order_ts": T0 - timedelta(days=10 - i)}
                  for i, v in enumerate(["100.00", "120.00", "90.00", "110.00", "105.00"])])
    hl = lines(*[{"order_id": f"H{i}", "sku": f"X{i}", "quantity": 10} for i in range(5)])
    o = orders({"order_id": "BIG", "items_subtotal": D("2000.00")}, {"order_id": "OK", "items_subtotal": D("130.00")})
    ln = lines({"order_id": "BIG", "sku": "X1", "quantity": 10}, {"order_id": "OK", "sku": "X1", "quantity": 10})
    got = findings(check_quantity_anomaly(o, ln, ho, hl, CFG))
    assert [(f["order_id"], f["line_no"], ev(f)["kind"]) for f in got] == [("BIG", None, "order_value")]
    assert (ev(got[0])["median"], ev(got[0])["history_observations"]) == (105.0, 5)


def test_new_customer_large_first_order():
    ho, hl = _history([1, 1, 1], customer="OLD")
    o = orders({"order_id": "NEW-1", "customer_id": "NEW", "items_subtotal": D("9000.00")},
               {"order_id": "NEW-2", "customer_id": "NEW", "items_subtotal": D("9000.00"),
                "order_ts": T0 + timedelta(hours=1)},
               {"order_id": "SMALL", "customer_id": "NEW2", "items_subtotal": D("4999.99")},
               {"order_id": "OLD-1", "customer_id": "OLD", "items_subtotal": D("9000.00")})
    ln = lines(*[{"order_id": x, "quantity": 1} for x in ("NEW-1", "NEW-2", "SMALL", "OLD-1")])
    got = findings(check_quantity_anomaly(o, ln, ho, hl, CFG), "NEW_CUSTOMER_REVIEW")
    assert [f["order_id"] for f in got] == ["NEW-1"]  # only the first; the threshold is exclusive
    assert (ev(got[0])["order_value"], ev(got[0])["threshold"]) == ("9000.00", "5000.00")


# ------------------------------------------------------------------------------------------------
# Compliance and customer
# ------------------------------------------------------------------------------------------------
def test_embargo_rejects():
    o = orders({"order_id": "IR", "ship_to_country": "ir", "ship_to_postal_code": "1966734511"}, {"order_id": "US"})
    ln = lines({"order_id": "IR"}, {"order_id": "US"})
    p = products({"sku": "S1"})
    res = check_compliance(o, ln, p, CFG)
    assert [(f["order_id"], f["reason_code"], f["outcome"]) for f in findings(res)] == [("IR", "EMBARGO", "fail")]
    assert CFG.severity["EMBARGO"] == "reject"
    run = run_checks(o, ln, customers=customers({}), products=p, price_lists=prices({}), promotions=NO_PROMOS,
                     inventory=stock(S1=100), open_items=NO_ITEMS, as_of=AS_OF, cfg=CFG)
    assert run.rejected["order_id"].to_list() == ["IR"]
    assert run.reservations["order_id"].to_list() == ["US"]  # a rejected order reserves nothing


def test_hazmat_by_air_restricted():
    p = products({"sku": "HZ", "hazmat": True}, {"sku": "BAT", "restricted_countries": "AU|MX"})
    o = orders({"order_id": "AIR", "ship_method": "UPS_AIR"}, {"order_id": "NEXT", "ship_method": "Next Day Air"},
               {"order_id": "GROUND", "ship_method": "UPS_GROUND"},
               {"order_id": "MX", "ship_to_country": "MX", "ship_to_postal_code": "06600"})
    ln = lines({"order_id": "AIR", "sku": "HZ"}, {"order_id": "NEXT", "sku": "HZ"},
               {"order_id": "GROUND", "sku": "HZ"}, {"order_id": "MX", "sku": "BAT"})
    got = findings(check_compliance(o, ln, p, CFG))
    assert [(f["order_id"], f["reason_code"], ev(f)["kind"]) for f in got] == [
        ("AIR", "RESTRICTED_ITEM", "hazmat_by_air"), ("MX", "RESTRICTED_ITEM", "country"),
        ("NEXT", "RESTRICTED_ITEM", "hazmat_by_air")]


def test_air_ship_method_patterns():
    s = pl.Series(["UPS_AIR", "FedEx Priority Overnight", "2nd Day Air", "FEDEX_2DAY", "NextDay", "DHL_EXPRESS",
                   "UPS_GROUND", "Standard", "Fairway Freight", "3 Day Select", "Expedited"])
    air = s.str.contains(CFG.air_regex).to_list()
    assert air == [True] * 6 + [False] * 5


def test_invalid_postal_code():
    o = orders({"order_id": "ZIP4", "ship_to_postal_code": "4321"},
               {"order_id": "GB-OK", "ship_to_country": "GB", "ship_to_postal_code": "sw1a 1aa"},
               {"order_id": "CA-BAD", "ship_to_country": "CA", "ship_to_postal_code": "12345"},
               {"order_id": "NL-OK", "ship_to_country": "NL", "ship_to_postal_code": "5928 LZ"},
               {"order_id": "BR-ANY", "ship_to_country": "BR", "ship_to_postal_code": "whatever"},
               {"order_id": "XX", "ship_to_country": "XX"},
               {"order_id": "NO-STREET", "ship_to_line1": "  ", "ship_to_city": None},
               {"order_id": "NO-ZIP", "ship_to_postal_code": None})
    ln = lines(*[{"order_id": x} for x in o["order_id"]])
    got = {f["order_id"]: f for f in findings(check_compliance(o, ln, products({"sku": "S1"}), CFG))}
    assert set(got) == {"ZIP4", "CA-BAD", "XX", "NO-STREET", "NO-ZIP"}
    assert all(f["reason_code"] == "ADDRESS_INVALID" for f in got.values())
    assert ev(got["ZIP4"])["problems"] == ["postal code '4321' does not match the US format"]
    assert ev(got["NO-STREET"])["problems"] == ["street line missing", "city missing"]
    assert "not an ISO 3166-1 alpha-2 code" in got["XX"]["message"]


def test_unknown_and_inactive_sku():
    p = products({"sku": "S1"}, {"sku": "OLD", "active": False})
    o = orders({"order_id": "A"})
    ln = lines({"order_id": "A", "line_no": 1, "sku": "S1"}, {"order_id": "A", "line_no": 2, "sku": "ELC-99871"},
               {"order_id": "A", "line_no": 3, "sku": "OLD"})
    got = findings(check_compliance(o, ln, p, CFG), "UNKNOWN_SKU")
    assert [(f["line_no"], f["message"]) for f in got] == [
        (2, "SKU 'ELC-99871' is not in the catalog"), (3, "SKU 'OLD' is inactive in the catalog")]


def test_unknown_and_inactive_customer():
    c = customers({"customer_id": "C1"}, {"customer_id": "GONE", "active": False})
    o = orders({"order_id": "A"}, {"order_id": "B", "customer_id": None}, {"order_id": "C", "customer_id": "C404"},
               {"order_id": "D", "customer_id": "GONE"})
    got = {f["order_id"]: f["reason_code"] for f in findings(check_customer(o, c, CFG))}
    assert got == {"B": "UNKNOWN_CUSTOMER", "C": "UNKNOWN_CUSTOMER", "D": "CUSTOMER_INACTIVE"}


# ------------------------------------------------------------------------------------------------
# run_checks and the result contract
# ------------------------------------------------------------------------------------------------
def test_every_rule_leaves_a_row_for_every_order():
    o = orders({"order_id": "CLEAN"}, {"order_id": "MESSY", "customer_id": None, "ship_to_country": "KP"})
    ln = lines({"order_id": "CLEAN", "quantity": 2}, {"order_id": "MESSY", "sku": "NOPE"})
    run = run_checks(o, ln, customers=customers({}), products=products({"sku": "S1"}), price_lists=prices({}),
                     promotions=NO_PROMOS, inventory=stock(S1=10), open_items=NO_ITEMS, as_of=AS_OF, cfg=CFG)
    ValidationFindingModel.validate(run.results, lazy=True)
    assert run.results.schema == pl.Schema(RESULT_SCHEMA)
    clean = run.results.filter(pl.col("order_id") == "CLEAN")
    assert sorted(clean["rule"]) == sorted(["customer", "compliance", "price", "promo", "quantity", "credit",
                                            "inventory"])
    assert set(clean["outcome"]) == {"pass"}
    messy = run.results.filter(pl.col("order_id") == "MESSY")
    assert set(messy["rule"]) == {"customer", "compliance", "price", "promo", "quantity", "credit"}  # rejected
    assert {"EMBARGO", "UNKNOWN_CUSTOMER", "UNKNOWN_SKU"} <= set(messy["reason_code"].drop_nulls())
    for e in run.results["evidence"]:
        assert isinstance(json.loads(e), dict)


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------
def test_config_defaults_override_and_errors(tmp_path, monkeypatch):
    assert CFG.credit_grace_days == 15 and CFG.hold_reservation_hours == 72
    assert CFG.price_tolerance_abs == D("0.01") and isinstance(CFG.new_customer_threshold, Decimal)
    assert CFG.tier_order == ("platinum", "gold", "silver", "standard")
    assert len(ISO_COUNTRIES) == 249 and {"US", "GB", "KP"} <= ISO_COUNTRIES and "UK" not in ISO_COUNTRIES
    assert set(CFG.severity) == set(VALIDATION_REASONS)
    assert {"US", "CA", "GB", "DE", "FR", "NL", "MX", "AU"} <= set(CFG.postal_code_patterns)

    f = tmp_path / "v.toml"
    f.write_text('[credit]\ngrace_days = 30\n[severity]\nWAIT_SHIP_COMPLETE = "hold"\n'
                 '[compliance.postal_code_patterns]\nBR = \'\\d{5}-?\\d{3}\'\n', encoding="utf-8")
    monkeypatch.setenv("SOM_VALIDATION_CONFIG", str(f))
    cfg = load_config()
    assert cfg.credit_grace_days == 30 and cfg.severity["WAIT_SHIP_COMPLETE"] == "hold"
    assert cfg.postal_code_patterns["BR"] and cfg.postal_code_patterns["US"]  # merged, not replaced
    assert cfg.price_tolerance_abs == D("0.01")

    for bad, needle in [('[credit]\ngrace_dayz = 1\n', "unknown key 'grace_dayz'"),
                        ('[price]\ntolerance_abs = 0.01\n', "money is never a float"),
                        ('[severity]\nEMBARGO = "ignore"\n', "not one of reject|hold|warn"),
                        ('[compliance]\nair_ship_method_patterns = ["(air"]\n', "invalid regular expression")]:
        f.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=needle.replace("|", r"\|").replace("(", r"\(")):
            load_config(f)
