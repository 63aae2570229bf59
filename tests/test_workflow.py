"""Validation & approvals workflow across runs: holds that release themselves, manual decisions, events,
reservation expiry, cancellations, idempotency."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl

from som_pipeline.schemas import (
    ManualDecisionModel,
    OrderEventModel,
    OrderHoldModel,
    OrderStatusModel,
    ReservationModel,
    ValidationResultModel,
)
from som_pipeline.validation.approvals import DECISION_SCHEMA, read_decisions
from som_pipeline.validation.workflow import Reference, State, explain, run_workflow
from tests.builders import (
    CFG,
    NO_ITEMS,
    NO_PROMOS,
    T0,
    customers,
    lines,
    open_items,
    orders,
    prices,
    products,
    stock,
)

D = Decimal
NOW = T0 + timedelta(days=1)
NO_DECISIONS = pl.DataFrame(schema=DECISION_SCHEMA)


def ref(**kw) -> Reference:
    base = dict(
        customers=customers({"customer_id": "C1", "credit_limit": D("1000.00")},
                            {"customer_id": "C2", "tier": "gold", "credit_limit": D("100000.00")}),
        products=products({"sku": "S1"}, {"sku": "S2"}),
        price_lists=prices({"sku": "S1"}, {"sku": "S2"}, {"tier": "gold", "sku": "S1"}, {"tier": "gold", "sku": "S2"}),
        promotions=NO_PROMOS,
        inventory=stock(S1=100, S2=100),
        open_items=NO_ITEMS,
    )
    base.update(kw)
    return Reference(**base)


def run(o, ln, state, r, now=NOW, decisions=NO_DECISIONS, cfg=CFG):
    out = run_workflow(o, ln, state, decisions, r, cfg, now)
    for model, df in ((OrderStatusModel, out.status), (OrderHoldModel, out.holds), (ReservationModel, out.reservations),
                      (ValidationResultModel, out.results), (OrderEventModel, out.events),
                      (ManualDecisionModel, out.decisions)):
        model.validate(df, lazy=True)
    return out, State(out.status, out.holds, out.reservations,
                      pl.concat([state.decisions, out.decisions], how="vertical_relaxed"))


def status_of(out, oid: str) -> str:
    return out.status.filter(pl.col("order_id") == oid)["status"].item()


def decision(order_id: str, verdict: str, codes: str = "*", approver: str = "ana") -> pl.DataFrame:
    text = f"order_id,decision,hold_codes,reason,approver\n{order_id},{verdict},{'' if codes == '*' else codes},checked,{approver}\n"
    return read_decisions(text.encode(), "d.csv", f"{order_id}{verdict}{codes}".ljust(64, "0"), NOW).decisions


def test_unpaid_bills_hold_then_release_when_paid():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("300.00"), "items_subtotal": D("300.00")})
    ln = lines({"order_id": "A", "quantity": 30})
    unpaid = open_items({"customer_id": "C1", "amount_open": D("900.00")})
    out1, st = run(o, ln, State.empty(), ref(open_items=unpaid))
    assert status_of(out1, "A") == "ON_HOLD"
    assert out1.holds["reason_code"].to_list() == ["CREDIT_LIMIT"]
    # next run: the invoice is paid -> the hold releases itself
    out2, st = run(o, ln, st, ref(open_items=NO_ITEMS), now=NOW + timedelta(hours=1))
    assert status_of(out2, "A") == "APPROVED"
    assert out2.holds.height == 0
    history = explain(pl.concat([out1.events, out2.events]), "A")
    assert len(history) == 2 and "NEW -> ON_HOLD" in history[0] and "CREDIT_LIMIT" in history[0]
    assert "ON_HOLD -> APPROVED" in history[1] and "cause gone: CREDIT_LIMIT" in history[1]


def test_manual_approval_moves_the_order_on_and_is_audited():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    ln = lines({"order_id": "A", "quantity": 5})
    out1, st = run(o, ln, State.empty(), ref())
    assert status_of(out1, "A") == "ON_HOLD"
    out2, st = run(o, ln, st, ref(), now=NOW + timedelta(hours=2), decisions=decision("A", "approve", approver="m.rossi"))
    assert status_of(out2, "A") == "APPROVED"
    assert out2.status.filter(pl.col("order_id") == "A")["actor"].item() == "m.rossi"
    assert out2.decisions["hold_codes"].to_list() == ["CREDIT_LIMIT"]  # '*' recorded as the concrete codes
    waived = out2.results.filter(pl.col("reason_code") == "CREDIT_LIMIT")
    assert waived["waived_by"].to_list() == ["m.rossi"]
    e = out2.events.row(0, named=True)
    assert (e["from_status"], e["to_status"], e["actor"]) == ("ON_HOLD", "APPROVED", "m.rossi")
    # the approval sticks on later runs of the same version; no new events
    out3, _ = run(o, ln, st, ref(), now=NOW + timedelta(hours=3))
    assert status_of(out3, "A") == "APPROVED" and out3.events.height == 0


def test_same_run_decision_is_its_own_step_in_the_history():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    ln = lines({"order_id": "A", "quantity": 5})
    out, _ = run(o, ln, State.empty(), ref(), decisions=decision("A", "approve"))
    steps = explain(out.events, "A")
    assert len(steps) == 2
    assert "NEW -> ON_HOLD" in steps[0] and "(system)" in steps[0]
    assert "ON_HOLD -> APPROVED: manual approval by ana" in steps[1]


def test_manual_rejection():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    ln = lines({"order_id": "A", "quantity": 5})
    out, _ = run(o, ln, State.empty(), ref(), decisions=decision("A", "reject"))
    assert status_of(out, "A") == "REJECTED"
    assert out.reservations.filter(pl.col("order_id") == "A").height == 0  # rejected orders reserve nothing


def test_decisions_that_do_not_apply_are_quarantined_with_a_reason():
    o = orders({"order_id": "A", "customer_id": "C2"}, {"order_id": "B", "customer_id": "C1",
                                                        "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    ln = lines({"order_id": "A"}, {"order_id": "B", "quantity": 5})
    ds = pl.concat([decision("NOPE", "approve"), decision("A", "approve"), decision("B", "approve", "PRICE_MISMATCH"),
                    decision("B", "approve", "NOT_A_CODE")])
    out, _ = run(o, ln, State.empty(), ref(), decisions=ds)
    got = dict(out.decision_rejects.select("order_ref", "reason_code").rows())
    assert got["NOPE"] == "UNKNOWN_ORDER"
    assert got["A"] == "HOLD_NOT_OPEN"  # approved by the checks: nothing to release
    assert sorted(out.decision_rejects.filter(pl.col("order_ref") == "B")["reason_code"]) == ["BAD_DECISION", "HOLD_NOT_OPEN"]
    assert out.decisions.height == 0
    assert status_of(out, "B") == "ON_HOLD"


def test_held_order_reservation_lapses_and_stock_goes_to_the_next_order():
    cfg = replace(CFG, hold_reservation_hours=24)
    r = ref(inventory=stock(S1=10, S2=100))
    held = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    hl = lines({"order_id": "A", "quantity": 10})
    out1, st = run(held, hl, State.empty(), r, cfg=cfg)
    assert out1.reservations.filter(pl.col("order_id") == "A")["quantity_reserved"].sum() == 10
    expires = out1.status.filter(pl.col("order_id") == "A")["reservation_expires_at"].item()
    assert expires == NOW + timedelta(hours=24)
    # a later order for the same SKU arrives; after the hold window the held order's stock goes to it
    later = pl.concat([held, orders({"order_id": "B", "customer_id": "C2", "order_ts": T0 + timedelta(hours=2)})])
    ll = pl.concat([hl, lines({"order_id": "B", "quantity": 10})])
    out2, st = run(later, ll, st, r, now=NOW + timedelta(hours=1), cfg=cfg)
    assert out2.reservations.filter(pl.col("order_id") == "B")["quantity_reserved"].sum() == 0  # still held for A
    out3, _ = run(later, ll, st, r, now=NOW + timedelta(hours=25), cfg=cfg)
    assert out3.reservations.filter(pl.col("order_id") == "A").height == 0
    assert out3.reservations.filter(pl.col("order_id") == "B")["quantity_reserved"].sum() == 10


def test_cancellation_releases_reservations_and_holds():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")})
    ln = lines({"order_id": "A", "quantity": 5})
    out1, st = run(o, ln, State.empty(), ref())
    assert out1.holds.height == 1 and out1.reservations.height == 1
    cancelled = o.with_columns(pl.lit(NOW).alias("cancelled_at"), pl.lit(2).alias("version"))
    out2, _ = run(cancelled, ln.with_columns(pl.lit(2).alias("version")), st, ref(), now=NOW + timedelta(hours=1))
    assert status_of(out2, "A") == "CANCELLED"
    assert out2.holds.height == 0 and out2.reservations.height == 0
    assert "cancelled at the channel" in out2.events["reason"].item()


def test_approved_orders_keep_their_status_and_reservations():
    o = orders({"order_id": "A", "customer_id": "C2"})
    ln = lines({"order_id": "A", "quantity": 60})
    out1, st = run(o, ln, State.empty(), ref())
    assert status_of(out1, "A") == "APPROVED"
    # a second order competes for the rest of the stock: A's reservation is fixed
    o2 = pl.concat([o, orders({"order_id": "B", "customer_id": "C2", "order_ts": T0 + timedelta(hours=1)})])
    l2 = pl.concat([ln, lines({"order_id": "B", "quantity": 60})])
    out2, _ = run(o2, l2, st, ref(), now=NOW + timedelta(hours=1))
    assert set(out2.evaluated["order_id"]) == {"B"}
    res = dict(out2.reservations.group_by("order_id").agg(pl.col("quantity_reserved").sum()).rows())
    assert res == {"A": 60, "B": 40}
    assert out2.reservations.filter(pl.col("order_id") == "B")["decision"].item() == "SPLIT"


def test_rerun_without_changes_is_idempotent():
    o = orders({"order_id": "A", "customer_id": "C1", "order_total": D("3000.00"), "items_subtotal": D("3000.00")},
               {"order_id": "B", "customer_id": "C2"})
    ln = lines({"order_id": "A", "quantity": 3}, {"order_id": "B", "quantity": 3})
    out1, st = run(o, ln, State.empty(), ref())
    out2, _ = run(o, ln, st, ref(), now=NOW + timedelta(hours=5))
    assert out2.events.height == 0
    assert out2.status.drop("evaluated_at").equals(out1.status.drop("evaluated_at"))
    assert out2.holds.drop("evidence").equals(out1.holds.drop("evidence"))  # evidence re-ranks priority
    assert out2.reservations.equals(out1.reservations)


def test_credit_decisions_do_not_depend_on_run_history():
    """One customer near its limit (1000), orders of 400 in priority order; B is held by a price mismatch.
    The first pass must decide exactly as a rerun does, where the approved orders come back as committed."""
    o = orders(*[{"order_id": k, "customer_id": "C1", "order_ts": T0 + timedelta(minutes=i),
                  "items_subtotal": D("400.00"), "order_total": D("400.00")} for i, k in enumerate("ABCDE")])
    ln = lines(*[{"order_id": k, "quantity": 40} for k in "ACDE"],
               {"order_id": "B", "quantity": 40, "unit_price": D("99.0000"), "line_amount": D("400.00")})
    out1, st = run(o, ln, State.empty(), ref())
    first = dict(out1.status.select("order_id", "status").rows())
    # A 400, C 800 fit; D would make 1200 (held); E: 400 + 400 + 400 = 1200 held as well; B has a price hold
    assert first == {"A": "APPROVED", "B": "ON_HOLD", "C": "APPROVED", "D": "ON_HOLD", "E": "ON_HOLD"}
    out2, _ = run(o, ln, st, ref(), now=NOW + timedelta(hours=1))
    assert dict(out2.status.select("order_id", "status").rows()) == first
    assert out2.events.height == 0


def test_orders_before_validation_start_are_history():
    cfg = replace(CFG, history_before=(T0 + timedelta(days=1)).date())
    o = orders({"order_id": "OLD", "customer_id": "C2"},
               {"order_id": "NEW", "customer_id": "C2", "order_ts": T0 + timedelta(days=2)})
    ln = lines({"order_id": "OLD"}, {"order_id": "NEW"})
    out, _ = run(o, ln, State.empty(), ref(), cfg=cfg)
    assert status_of(out, "OLD") == "HISTORICAL" and status_of(out, "NEW") == "APPROVED"
    assert set(out.reservations["order_id"]) == {"NEW"}


def test_a_formula_as_approver_is_refused_and_free_text_is_neutralised() -> None:
    """No spreadsheet formula reaches core.manual_decisions / exports (=HYPERLINK(...) as the approver)."""
    data = ('order_id,decision,hold_codes,reason,approver\n'
            'O1,approve,,checked,"=HYPERLINK(""http://evil"",""click"")"\n'
            'O2,approve,,=2+2 looks fine,m.rossi (credit desk)\n'
            'O3,reject,,ok,José Núñez\n').encode()
    r = read_decisions(data, "d.csv", "s" * 64, datetime(2026, 11, 26, tzinfo=UTC))
    assert r.decisions["order_id"].to_list() == ["O2", "O3"]
    assert r.decisions["reason"].to_list() == ["'=2+2 looks fine", "ok"]
    assert r.rejected["reason_code"].to_list() == ["BAD_DECISION"] and "not a name" in r.rejected["message"][0]


def _filled(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """The builders leave some required columns null: give them a neutral value for the warehouse."""
    from som_pipeline.schemas import TABLES

    cols = TABLES[table].to_schema().columns
    neutral = {pl.Boolean: False, pl.String: "x"}
    return df.with_columns(
        pl.col(c).fill_null(neutral.get(df.schema[c].base_type(), 0)) for c, col in cols.items()
        if not col.nullable and df[c].null_count())


def test_service_reads_only_orders_that_can_change_and_ends_like_the_full_workflow(settings, wh) -> None:
    """The validation service gives the workflow only new, held, backordered and decision-named orders and
    sums the kept approved ones in SQL (credit, stock, promo uses). Over three runs -- approvals that use credit
    and stock, new orders competing with them, a manual release -- its tables equal the pure workflow's run
    on every order."""
    from som_pipeline.fulfilment import ledger as stock_ledger
    from som_pipeline.schemas import TABLES
    from som_pipeline.services.stock import post
    from som_pipeline.services.validation import run_validation
    from som_pipeline.warehouse import insert_frame, set_watermark

    r = ref(customers=customers({"customer_id": "C1", "credit_limit": D("1000.00")},
                                {"customer_id": "C2", "tier": "gold", "credit_limit": D("100000.00")}),
            inventory=stock(S1=10, S2=100))

    def batch(first: int, n: int, cust: str, qty: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        ks = [f"O{i:02d}" for i in range(first, first + n)]
        o = orders(*[{"order_id": k, "customer_id": cust, "order_ts": T0 + timedelta(minutes=i),
                      "items_subtotal": D("400.00"), "order_total": D("400.00")} for i, k in enumerate(ks, first)])
        return o, lines(*[{"order_id": k, "quantity": qty} for k in ks])

    runs = [batch(0, 3, "C1", 4), batch(3, 3, "C1", 4), batch(6, 2, "C2", 3)]
    with wh.transaction() as con:
        for name in ("customers", "products", "price_lists", "promotions", "inventory", "open_items"):
            insert_frame(con, f"ref.{name}", getattr(r, name))
        # the stock count opens the ledger (what the stock_ledger asset posts from ref.inventory)
        post(con, stock_ledger.cycle_count(r.inventory, pl.DataFrame(schema={"warehouse_id": pl.String, "sku": pl.String,
                                                                        "on_hand": pl.Int64}),
                                           snapshot_id="count-1", recorded_at=NOW, run_id="test"))
    state, all_o, all_l = State.empty(), None, None
    for i, (o, ln) in enumerate(runs):
        now = NOW + timedelta(hours=i)
        all_o = o if all_o is None else pl.concat([all_o, o])
        all_l = ln if all_l is None else pl.concat([all_l, ln])
        with wh.transaction() as con:
            insert_frame(con, "core.orders", _filled(o, "core.orders"))
            insert_frame(con, "core.order_lines", ln)
            set_watermark(con, "core_orders", i + 1, None, now)  # as core_orders does when it writes orders
        decisions = decision("O02", "approve") if i == 2 else NO_DECISIONS
        if i == 2:
            (settings.landing_dir("approvals") / "d.csv").write_text(
                "order_id,decision,hold_codes,reason,approver\nO02,approve,,checked,ana\n")
        report = run_validation(wh, settings, now=now, cfg=CFG)
        expected, state = run(all_o, all_l, state, r, now=now, decisions=decisions)
        assert report.orders_read <= all_o.height
        for table, frame in (("core.order_status", expected.status), ("core.order_holds", expected.holds),
                             ("core.reservations", expected.reservations)):
            got = wh.read(f"SELECT * FROM {table}")
            cols = [c for c in TABLES[table].to_schema().columns if c not in ("evidence", "message", "decision_id")]
            assert got.select(cols).sort(cols[:3]).equals(frame.select(cols).cast(got.select(cols).schema)
                                                          .sort(cols[:3])), (i, table)
    # nothing new: the next run skips (same inputs, same day, no lapse due, no decision file) ...
    assert run_validation(wh, settings, now=now + timedelta(minutes=5), cfg=CFG).skipped
    # ... a new day is a new input (overdue invoices and lapses depend on it)
    assert not run_validation(wh, settings, now=now + timedelta(days=1), cfg=CFG).skipped
    # the last run read the new orders, the held ones and the released order, never the approved C1 orders
    assert report.orders_read < all_o.height
    st = dict(wh.read("SELECT order_id, status FROM core.order_status").rows())
    assert st == {"O00": "APPROVED", "O01": "APPROVED", "O02": "APPROVED", "O03": "ON_HOLD", "O04": "ON_HOLD",
                  "O05": "ON_HOLD", "O06": "APPROVED", "O07": "APPROVED"}, st
    assert wh.read("SELECT sum(quantity_backordered) AS b FROM core.reservations")["b"].item() > 0


# ------------------------------------------------------------------------------------------------
# Custom and service lines (issue 11, item 1): no catalog lookup, no reservation, hence no allocation
# ------------------------------------------------------------------------------------------------
def _custom_orders():
    o = orders({"order_id": "SVC", "customer_id": "C2", "items_subtotal": D("90.00"), "order_total": D("90.00"),
                "line_count": 2},
               {"order_id": "CUS", "customer_id": "C2", "items_subtotal": D("55.00"), "order_total": D("55.00"),
                "line_count": 2})
    ln = lines({"order_id": "SVC", "line_no": 1, "sku": "S1"},
               {"order_id": "SVC", "line_no": 2, "sku": "CUSTOM:11003", "item_kind": "service", "quantity": 2,
                "unit_price": D("40.0000")},
               {"order_id": "CUS", "line_no": 1, "sku": "S1"},
               {"order_id": "CUS", "line_no": 2, "sku": "CUSTOM:11002", "item_kind": "custom",
                "unit_price": D("45.0000"), "description": "Engraved brass plaque"})
    return o, ln


def test_service_line_is_approved_without_reservation_and_custom_item_is_held_for_review():
    o, ln = _custom_orders()
    out, _ = run(o, ln, State.empty(), ref(inventory=stock(S1=100, **{"CUSTOM:11003": 5})))
    assert status_of(out, "SVC") == "APPROVED"
    assert status_of(out, "CUS") == "ON_HOLD"
    assert out.holds.select("order_id", "reason_code").rows() == [("CUS", "CUSTOM_ITEM_REVIEW")]
    fails = out.results.filter(pl.col("outcome") != "pass")
    # no catalog lookup of the placeholder sku (UNKNOWN_SKU), no price-list check (PRICE_MISMATCH)
    assert fails.select("order_id", "line_no", "reason_code").rows() == [("CUS", 2, "CUSTOM_ITEM_REVIEW")]
    assert "Engraved brass plaque" in fails["message"][0]
    # only the catalog lines reserve stock (even a stock row under the placeholder sku is never touched)
    assert out.reservations.select("order_id", "line_no", "sku").sort("order_id").rows() == [
        ("CUS", 1, "S1"), ("SVC", 1, "S1")]


def test_custom_item_hold_is_released_by_a_manual_approval():
    o, ln = _custom_orders()
    _, st = run(o, ln, State.empty(), ref())
    out, _ = run(o, ln, st, ref(), now=NOW + timedelta(hours=1),
                 decisions=decision("CUS", "approve", "CUSTOM_ITEM_REVIEW"))
    assert status_of(out, "CUS") == "APPROVED"
    assert out.reservations.filter(pl.col("order_id") == "CUS")["line_no"].to_list() == [1]
