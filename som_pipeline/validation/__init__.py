"""Validation checks: pure, vectorised functions over Polars frames (no Dagster, no I/O besides the config).

Every check returns rows of :data:`RESULT_SCHEMA` (``order_id, line_no, rule, outcome, reason_code, message,
evidence``); every evaluated order gets at least one row per rule (a ``pass`` row when nothing is wrong).

- :func:`order_priority` -- the documented processing order (order_ts, tier, order_id)
- :func:`check_customer` -- rule customer: UNKNOWN_CUSTOMER, CUSTOMER_INACTIVE
- :func:`check_compliance` -- rule compliance: EMBARGO, ADDRESS_INVALID, RESTRICTED_ITEM, UNKNOWN_SKU
- :func:`check_price` -- rule price: PRICE_MISMATCH, PRICED_FROM_LIST, DISCOUNT_NOT_APPROVED
- :func:`check_promo` -- rule promo: PROMO_UNKNOWN / _EXPIRED / _NOT_YET_VALID / _INELIGIBLE / _EXHAUSTED
- :func:`check_quantity_anomaly` -- rule quantity: QTY_ANOMALY, NEW_CUSTOMER_REVIEW
- :func:`check_credit` -- rule credit: CREDIT_LIMIT, CREDIT_OVERDUE, CREDIT_UNCHECKED
- :func:`reserve_inventory` -- rule inventory: BACKORDER, SPLIT_SHIPMENT, SUBSTITUTED, WAIT_SHIP_COMPLETE
- :func:`run_checks` -- all of the above (reservation only for orders without a reject-severity finding)

Rules that need the customer report NOT_EVALUATED (warn) when it is unknown.

Severity (reject | hold | warn) per reason code is configuration (``defaults.toml`` [severity]); a result's
outcome is ``fail`` for reject/hold and ``warn`` for warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from som_pipeline.validation.anomaly import check_quantity_anomaly
from som_pipeline.validation.config import (
    ISO_COUNTRIES,
    VALIDATION_REASONS,
    ConfigError,
    ValidationConfig,
    load_config,
)
from som_pipeline.validation.credit import check_credit
from som_pipeline.validation.inventory import (
    DECISIONS,
    RESERVATION_SCHEMA,
    ReservationModel,
    available_stock,
    reserve_inventory,
)
from som_pipeline.validation.priority import order_priority
from som_pipeline.validation.results import RESULT_SCHEMA, RULES, ValidationFindingModel, empty_results
from som_pipeline.validation.rules import (
    Frame,
    check_compliance,
    check_customer,
    check_price,
    check_promo,
    estimate_order_totals,
)


@dataclass(frozen=True)
class ValidationRun:
    """Everything :func:`run_checks` produced."""

    priority: pl.DataFrame      # [order_id, priority]
    results: pl.DataFrame       # RESULT_SCHEMA, every rule
    reservations: pl.DataFrame  # RESERVATION_SCHEMA
    rejected: pl.DataFrame      # [order_id]: orders with a reject-severity finding (they reserved nothing)


def rejected_orders(results: pl.DataFrame, cfg: ValidationConfig) -> pl.DataFrame:
    """``[order_id]`` of the orders with at least one finding whose severity is ``reject``."""
    codes = [c for c, s in cfg.severity.items() if s == "reject"]
    return results.filter(pl.col("reason_code").is_in(codes)).select("order_id").unique().sort("order_id")


def run_checks(
    orders: Frame,
    lines: Frame,
    *,
    customers: Frame,
    products: Frame,
    price_lists: Frame,
    promotions: Frame,
    inventory: Frame,
    open_items: Frame,
    as_of: date,
    history_orders: Frame | None = None,
    history_lines: Frame | None = None,
    prior_usage: Frame | None = None,
    committed: Frame | None = None,
    fixed_reserved: Frame | None = None,
    cfg: ValidationConfig | None = None,
) -> ValidationRun:
    """Run every check on ``orders``/``lines`` and reserve stock for the orders not rejected.

    ``history_orders``/``history_lines`` default to the evaluated orders themselves (only what lies strictly
    before each order counts). Unpriced orders are valued at list price for the credit check
    (:func:`estimate_order_totals`).
    """
    cfg = cfg or load_config()
    orders = orders.lazy().collect() if isinstance(orders, pl.LazyFrame) else orders
    lines = lines.lazy().collect() if isinstance(lines, pl.LazyFrame) else lines
    prio = order_priority(orders, customers, cfg)
    hist_o = orders if history_orders is None else history_orders
    hist_l = lines if history_lines is None else history_lines
    parts = [
        check_customer(orders, customers, cfg),
        check_compliance(orders, lines, products, cfg),
        check_price(orders, lines, customers, price_lists, promotions, cfg, products=products),
        check_promo(orders, lines, customers, products, promotions, prior_usage, cfg, priority=prio),
        check_quantity_anomaly(orders, lines, hist_o, hist_l, cfg),
        check_credit(orders, customers, open_items, committed, as_of, cfg, priority=prio,
                     order_values=estimate_order_totals(orders, lines, customers, price_lists)),
    ]
    rejected = rejected_orders(pl.concat(parts), cfg)
    keep = orders.join(rejected, on="order_id", how="anti")
    reservations, inv_results = reserve_inventory(keep, lines.join(rejected, on="order_id", how="anti"), customers,
                                                  products, inventory, fixed_reserved, cfg, priority=prio)
    results = pl.concat([*parts, inv_results]).sort(["order_id", "rule", "line_no"], nulls_last=False,
                                                    maintain_order=True)
    return ValidationRun(priority=prio, results=results, reservations=reservations, rejected=rejected)


__all__ = [
    "DECISIONS",
    "ISO_COUNTRIES",
    "RESERVATION_SCHEMA",
    "RESULT_SCHEMA",
    "RULES",
    "VALIDATION_REASONS",
    "ConfigError",
    "ReservationModel",
    "ValidationConfig",
    "ValidationFindingModel",
    "ValidationRun",
    "available_stock",
    "check_compliance",
    "check_credit",
    "check_customer",
    "check_price",
    "check_promo",
    "check_quantity_anomaly",
    "empty_results",
    "estimate_order_totals",
    "load_config",
    "order_priority",
    "rejected_orders",
    "reserve_inventory",
    "run_checks",
]
