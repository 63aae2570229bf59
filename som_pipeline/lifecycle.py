"""The order lifecycle: the statuses an order can have, the transitions allowed between them, and THE function
that writes ``core.order_events`` rows (:func:`order_events`). Pure: frames in, frames out.

Today the validation stage (:mod:`som_pipeline.validation.workflow`) sets every status. Each later stage
(fulfilment, tracking, billing, returns, closure) adds its statuses and events here, the same way:

1. **Statuses**: a constant (``SHIPPED = "SHIPPED"``) appended to :data:`STATUSES`. The table models check
   statuses against ``schemas.STATUSES`` (``core.order_status.status``, ``core.order_events.to_status``): add
   it there too -- ``tests/test_lifecycle.py`` holds the two lists equal.
2. **Transitions**: one :class:`Transition` per cause in :data:`TRANSITIONS` (from which statuses, to which,
   and when). A transition no rule allows is refused by :func:`order_events` (``ValueError``): a stage cannot
   write a history the lifecycle does not know -- e.g. validation's "a new version is checked again" covers
   only the validation statuses, so a new version of a shipped order does not silently go back ON_HOLD.
3. **Events**: the stage computes, per order that changed, ``order_id, version, from_status`` (null for the
   first event of an order), ``to_status, reason`` (words), ``actor`` (``'system'`` or a person), ``at`` and
   ``details`` (a JSON object, e.g. built with :func:`details`), and passes them to :func:`order_events`, which
   checks the transitions, derives ``event_id`` and conforms the rows to ``schemas.OrderEventModel``. Only
   changes make events: a re-run that changes nothing must pass no rows (idempotent history).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from som_pipeline.hashing import sha256_series
from som_pipeline.schemas import OrderEventModel, conform, polars_schema

# ------------------------------------------------------------------------------------------------
# Statuses
# ------------------------------------------------------------------------------------------------
NEW = None  # from_status of an order's first event: it had no status yet
APPROVED = "APPROVED"  # validation passed (or a person released its holds): the warehouse may act on it
ON_HOLD = "ON_HOLD"  # at least one open hold (core.order_holds); re-checked every run
REJECTED = "REJECTED"  # a reject-severity finding, or rejected by a person
CANCELLED = "CANCELLED"  # cancelled at the channel: reservations and holds released
HISTORICAL = "HISTORICAL"  # placed before the validation start (workflow.history_before): processed elsewhere
# fulfilment (services/fulfilment.py): core.order_fulfilment.status and its events; core.order_status keeps the
# validation status beside it
IN_FULFILMENT = "IN_FULFILMENT"  # lines released to a pick wave, nothing shipped yet
PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"  # some units shipped, more to come
SHIPPED = "SHIPPED"  # every unit of the order shipped
# closure (services/closure.py): core.order_closure and its events
CLOSED = "CLOSED"  # delivered, invoiced and paid (net of returns, credits, refunds), its return window passed
REOPENED = "REOPENED"  # a closed order that something changed again (a return, a chargeback)

STATUSES: tuple[str, ...] = (APPROVED, ON_HOLD, REJECTED, CANCELLED, HISTORICAL, IN_FULFILMENT, PARTIALLY_SHIPPED,
                             SHIPPED, CLOSED, REOPENED)
FULFILMENT_PROGRESS: tuple[str, ...] = (IN_FULFILMENT, PARTIALLY_SHIPPED, SHIPPED)
VALIDATION_OUTCOMES: tuple[str, ...] = (APPROVED, ON_HOLD, REJECTED)  # what the checks (and approvers) decide


# ------------------------------------------------------------------------------------------------
# Transitions
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """Orders may go from any of ``sources`` (``NEW``: no status yet) to any of ``targets`` ``when`` ..."""

    sources: tuple[str | None, ...]
    targets: tuple[str, ...]
    when: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition((NEW, ON_HOLD), VALIDATION_OUTCOMES,
               "validation: a new order is checked; a held order is checked again every run (a hold releases "
               "itself when its cause is gone, holds open and close) and people approve or reject it"),
    Transition((APPROVED, REJECTED, CANCELLED, HISTORICAL), VALIDATION_OUTCOMES,
               "validation: a new version of the order is checked again (a manual decision of the same run "
               "follows the checks' step)"),
    Transition((NEW, *STATUSES), (CANCELLED,), "cancelled at the channel (again, on a new version)"),
    Transition((NEW, *STATUSES), (HISTORICAL,), "placed before workflow.history_before (again, on a new version)"),
    Transition((APPROVED, IN_FULFILMENT, PARTIALLY_SHIPPED), FULFILMENT_PROGRESS,
               "fulfilment: lines released to a pick wave, a task closed short (its units re-allocated or "
               "backordered: the status stays), units shipped in part or in whole"),
    Transition((NEW, *STATUSES), (CLOSED,), "closure: delivered, invoiced and paid net of returns, credits and "
               "refunds, and its return window passed"),
    Transition((CLOSED,), (REOPENED,), "closure: a later return, credit or chargeback opened it again"),
)


def is_allowed(source: str | None, target: str | None) -> bool:
    """Whether some rule of :data:`TRANSITIONS` lets an order go from ``source`` to ``target``."""
    return any(source in t.sources and target in t.targets for t in TRANSITIONS)


def forbidden(changes: pl.DataFrame) -> list[tuple[str | None, str | None]]:
    """The distinct ``(from_status, to_status)`` pairs of ``changes`` that no transition allows."""
    pairs = changes.select("from_status", "to_status").unique().sort("from_status", "to_status", nulls_last=False)
    return [(s, t) for s, t in pairs.iter_rows() if not is_allowed(s, t)]


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------
EVENT_COLUMNS = ("order_id", "version", "from_status", "to_status", "reason", "actor", "at", "details")
_AT = polars_schema(OrderEventModel)["at"]


def details(**fields: pl.Expr) -> pl.Expr:
    """An event's ``details``: the JSON object of the given named expressions."""
    return pl.struct(**fields).struct.json_encode()


def order_events(changes: pl.DataFrame) -> pl.DataFrame:
    """``core.order_events`` rows (``schemas.OrderEventModel``), sorted by order and time, from ``changes``:
    one row per status change with :data:`EVENT_COLUMNS`.

    ``event_id`` = sha256 of ``order_id|version|from_status ('-' when new)|to_status|at|details``. Raises
    ``ValueError`` when a row makes a transition :data:`TRANSITIONS` does not allow.
    """
    bad = forbidden(changes)
    if bad:
        raise ValueError(f"order lifecycle: transitions not allowed (from_status, to_status): {bad}")
    out = changes.select(*EVENT_COLUMNS).with_columns(pl.col("at").cast(_AT))
    out = out.with_columns(sha256_series(pl.concat_str(
        [pl.col("order_id"), pl.col("version").cast(pl.String), pl.col("from_status").fill_null("-"),
         pl.col("to_status"), pl.col("at").cast(pl.String), pl.col("details")], separator="|"), out).alias("event_id"))
    return conform(out, OrderEventModel).sort("order_id", "at")


__all__ = ["APPROVED", "CANCELLED", "CLOSED", "REOPENED", "EVENT_COLUMNS", "FULFILMENT_PROGRESS", "HISTORICAL", "IN_FULFILMENT", "NEW",
           "ON_HOLD", "PARTIALLY_SHIPPED", "REJECTED", "SHIPPED", "STATUSES",
           "TRANSITIONS", "VALIDATION_OUTCOMES", "Transition", "details", "forbidden", "is_allowed", "order_events"]
