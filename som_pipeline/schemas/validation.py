"""Validation & approvals (``core.*``): check results, holds, order status and its history, stock reservations,
manual decisions; and the frames the validation functions return (``ValidationFindingModel``,
``ReservationDecisionModel``), with their allowed values.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from som_pipeline.reasons import VALIDATION_REASONS
from som_pipeline.schemas.base import Money, TsUTC, _f, _Strict

ANOMALY_LEVELS = ["customer_sku", "customer", "sku_population", "order_value"]
STATUSES = ["APPROVED", "ON_HOLD", "REJECTED", "CANCELLED", "HISTORICAL", "IN_FULFILMENT", "PARTIALLY_SHIPPED",
            "SHIPPED", "CLOSED", "REOPENED"]
VALIDATION_RULES = ["customer", "compliance", "price", "promo", "quantity", "credit", "inventory"]
RESERVATION_DECISIONS = ["RESERVE", "SPLIT", "BACKORDER", "SUBSTITUTE", "WAIT_SHIP_COMPLETE"]


class ValidationFindingModel(_Strict):
    """A check's finding, as the validation functions return it (one row per order and rule, or per line)."""

    order_id: str = _f("Order evaluated (core.orders.order_id).")
    line_no: pl.Int64 = _f("Line the finding is about; null for an order-level result.", nullable=True, ge=1)
    rule: str = _f("Check: " + " | ".join(VALIDATION_RULES) + ".", isin=VALIDATION_RULES)
    outcome: str = _f("pass | warn | fail (fail = the reason's severity is reject or hold).", isin=["pass", "warn", "fail"])
    reason_code: str = _f("Validation reason code; null on pass.", nullable=True, isin=list(VALIDATION_REASONS))
    message: str = _f("Human-readable sentence.")
    evidence: str = _f("JSON object: the numbers that decided the outcome.", str_startswith="{")

    @pa.dataframe_check(description="reason_code is null exactly on pass rows")
    def reason_iff_not_pass(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("outcome") == "pass") == pl.col("reason_code").is_null())


class ValidationResultModel(ValidationFindingModel):
    """``core.validation_results``: the latest evaluation of every check, per order (and line), with evidence."""

    version: int = _f("Order version evaluated.", ge=1)
    waived_by: str = _f("Approver whose manual decision overrode this failure (the hold is released).", nullable=True)
    evaluated_at: TsUTC = _f("When the order was evaluated.")


class OrderHoldModel(_Strict):
    """``core.order_holds``: open holds (an order is ON_HOLD while it has at least one)."""

    order_id: str = _f("Order.")
    version: int = _f("Order version held.", ge=1)
    reason_code: str = _f("Why (validation reason code).")
    since: TsUTC = _f("When this hold opened (kept across runs while the cause persists).")
    message: str = _f("What failed, in words.")
    evidence: str = _f("JSON evidence of the failing check(s).", str_startswith="[")

    class Config:
        strict = True
        unique = ["order_id", "reason_code"]


class OrderStatusModel(_Strict):
    """``core.order_status``: the current validation status of every live order."""

    order_id: str = _f("Order.", unique=True)
    version: int = _f("Order version the status is about.", ge=1)
    status: str = _f("APPROVED | ON_HOLD | REJECTED | CANCELLED | HISTORICAL (placed before the validation "
                     "start, workflow.history_before: processed elsewhere).", isin=STATUSES)
    since: TsUTC = _f("When the order entered this status.")
    reasons: str = _f("Reason codes behind the status ('|'-separated); empty when approved by the checks.")
    actor: str = _f("'system' or the approver who decided.")
    evaluated_at: TsUTC = _f("Last evaluation.")
    reservation_expires_at: TsUTC = _f("ON_HOLD: when its stock reservation lapses (see hold_reservation_hours).",
                                       nullable=True)


class OrderEventModel(_Strict):
    """``core.order_events``: append-only history; every status an order ever had, why, and who decided."""

    event_id: str = _f("sha256(order, version, transition, time).", unique=True)
    order_id: str = _f("Order.")
    version: int = _f("Order version.", ge=1)
    from_status: str = _f("Previous status (null: first evaluation).", nullable=True)
    to_status: str = _f("New status.", isin=STATUSES)
    reason: str = _f("Why, in words (holds opened / released, manual decision...).")
    actor: str = _f("'system' or the approver.")
    at: TsUTC = _f("When.")
    details: str = _f("JSON: holds opened, released, still open; decision id.", str_startswith="{")


class ReservationDecisionModel(_Strict):
    """A stock decision of validation, as ``reserve_inventory`` returns it (one row per order line and SKU)."""

    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.", ge=1)
    sku: str = _f("SKU reserved (the substitute's SKU for a substitution).")
    requested_sku: str = _f("SKU the line asked for.")
    quantity_requested: pl.Int64 = _f("Part of the line's quantity this row covers.", ge=0)
    quantity_reserved: pl.Int64 = _f("Units reserved now.", ge=0)
    quantity_backordered: pl.Int64 = _f("Units waiting for stock.", ge=0)
    decision: str = _f(" | ".join(RESERVATION_DECISIONS), isin=RESERVATION_DECISIONS)

    class Config:
        strict = True
        unique = ["order_id", "line_no", "sku"]

    @pa.dataframe_check(description="requested = reserved + backordered")
    def conserved(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("quantity_requested") == pl.col("quantity_reserved") + pl.col("quantity_backordered"))


class ReservationModel(ReservationDecisionModel):
    """``core.reservations``: stock reserved by validation for approved and held orders (allocation consumes them)."""

    order_status: str = _f("Status of the order when reserved (APPROVED | ON_HOLD).", isin=["APPROVED", "ON_HOLD"])
    reserved_at: TsUTC = _f("When.")
    expires_at: TsUTC = _f("Held orders: when the reservation lapses; null for approved orders.", nullable=True)

    class Config:
        strict = True
        unique = ["order_id", "line_no", "sku"]


class ManualDecisionModel(_Strict):
    """``core.manual_decisions``: approvals and rejections by people, applied to one order version."""

    decision_id: str = _f("sha256 of the decision file content + row.", unique=True)
    order_id: str = _f("Order decided on.")
    version: int = _f("Order version it applies to (a changed order is evaluated afresh).", ge=1)
    decision: str = _f("approve | reject.", isin=["approve", "reject"])
    hold_codes: str = _f("Holds it releases ('|'-separated), '*' = every open hold.")
    reason: str = _f("Why (free text).")
    approver: str = _f("Who.")
    decided_at: TsUTC = _f("When the decision was made (file column, else when it was read).")
    source_file: str = _f("Decision file.")
    location: str = _f("Line in the file.")


class AnomalyBaselineModel(_Strict):
    """``core.anomaly_baselines``: the quantity / order-value anomaly baselines' state (rule quantity): per level
    and group, the most recent observations (``[quantity] baseline_window`` / ``[order_value] baseline_window``
    of them, newest by ``order_ts`` then value) of the orders validation has recorded. Updated per run for the
    groups the run's orders touch; ``som rebuild-anomaly-baselines`` rebuilds it from every order (identical)."""

    level: str = _f("customer_sku (key1 = customer_id, key2 = sku) | customer (key1 = customer_id) | "
                    "sku_population (key1 = sku) | order_value (key1 = customer_id, key2 = currency).",
                    isin=ANOMALY_LEVELS)
    key1: str = _f("First group key (see level).")
    key2: str = _f("Second group key (see level); '' for a one-key level.")
    order_ts: TsUTC = _f("The observed order's order_ts (baselines use observations strictly before an order).")
    order_id: str = _f("The observed order (core.orders.order_id).")
    line_no: pl.Int64 = _f("The observed line; null for an order_value observation.", nullable=True, ge=1)
    value: Money = _f("The line's quantity (quantity levels) or the order's items_subtotal (order_value).")

    class Config:
        strict = True
        unique = ["level", "key1", "key2", "order_id", "line_no"]
