"""Validation & approvals: is a captured order fit for the warehouse? Pure and vectorised (Polars frames in,
frames out; no Dagster, no I/O besides reading the config).

What belongs here:

- the **checks** -- one function per rule: :mod:`~som_pipeline.validation.rules` (customer, compliance, price,
  promo), :mod:`~som_pipeline.validation.anomaly` (quantity), :mod:`~som_pipeline.validation.credit`,
  :mod:`~som_pipeline.validation.inventory` (stock reservation, rule inventory);
- the **check registry** :mod:`~som_pipeline.validation.checks`: the ordered list of checks (rule, function,
  inputs) and the one code path that runs them, for the pipeline (the workflow) and for tests/benchmarks
  (:func:`run_checks`) alike;
- what checks share: the result rows and their helpers (:mod:`~som_pipeline.validation.results`), the
  processing order (:mod:`~som_pipeline.validation.priority`), the configuration
  (:mod:`~som_pipeline.validation.config` over ``defaults.toml``);
- the **workflow** (:mod:`~som_pipeline.validation.workflow`): from the findings to statuses, holds,
  reservations, manual decisions (read by :mod:`~som_pipeline.validation.approvals`) and events.

Not here: reading and writing the warehouse (``som_pipeline.services.validation``), Dagster
(``assets/validation.py``), table models (``som_pipeline.schemas``), reason-code descriptions
(``som_pipeline.reasons``), the order statuses and their allowed transitions (``som_pipeline.lifecycle``).

**A new check**: a function in ``rules.py`` (or its own module) and one record in the registry
(``checks.CHECKS``); its reason codes in ``som_pipeline/reasons.py``; their default severity / its
thresholds in ``defaults.toml``. Its rule name also goes into ``schemas.VALIDATION_RULES`` (a test holds the
two equal). Every check returns rows of :data:`RESULT_SCHEMA` (``order_id, line_no, rule, outcome,
reason_code, message, evidence``); every evaluated order gets at least one row per rule (a ``pass`` row when
nothing is wrong). Rules that need the customer report NOT_EVALUATED (warn) when it is unknown.

Severity (reject | hold | warn) per reason code is configuration (``defaults.toml`` [severity]); a result's
outcome is ``fail`` for reject/hold and ``warn`` for warn.

The checks, in the order they run (``checks.CHECKS``):

- :func:`check_customer` -- rule customer: UNKNOWN_CUSTOMER, CUSTOMER_INACTIVE
- :func:`check_compliance` -- rule compliance: EMBARGO, ADDRESS_INVALID, RESTRICTED_ITEM, UNKNOWN_SKU
- :func:`check_price` -- rule price: PRICE_MISMATCH, PRICED_FROM_LIST, DISCOUNT_NOT_APPROVED
- :func:`check_promo` -- rule promo: PROMO_UNKNOWN / _EXPIRED / _NOT_YET_VALID / _INELIGIBLE / _EXHAUSTED
- :func:`check_quantity_anomaly` -- rule quantity: QTY_ANOMALY, NEW_CUSTOMER_REVIEW
- :func:`check_credit` -- rule credit: CREDIT_LIMIT, CREDIT_OVERDUE, CREDIT_UNCHECKED
- :func:`reserve_inventory` -- rule inventory: BACKORDER, SPLIT_SHIPMENT, SUBSTITUTED, WAIT_SHIP_COMPLETE
  (only for orders without a reject-severity finding)
"""

from __future__ import annotations

from som_pipeline.validation.anomaly import check_quantity_anomaly
from som_pipeline.validation.checks import (
    CHECKS,
    Check,
    CheckInputs,
    ValidationRun,
    rejected_orders,
    run_check,
    run_checks,
)
from som_pipeline.validation.config import (
    ISO_COUNTRIES,
    VALIDATION_REASONS,
    ConfigError,
    ValidationConfig,
    load_config,
)
from som_pipeline.validation.credit import check_credit
from som_pipeline.validation.frames import Frame
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
    check_compliance,
    check_customer,
    check_price,
    check_promo,
    estimate_order_totals,
)

__all__ = [
    "CHECKS",
    "DECISIONS",
    "ISO_COUNTRIES",
    "RESERVATION_SCHEMA",
    "RESULT_SCHEMA",
    "RULES",
    "VALIDATION_REASONS",
    "Check",
    "CheckInputs",
    "ConfigError",
    "Frame",
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
    "run_check",
    "run_checks",
]
