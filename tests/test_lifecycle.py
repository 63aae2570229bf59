"""The order lifecycle: statuses, allowed transitions, and the one builder of core.order_events rows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
import pytest

from som_pipeline import lifecycle, schemas
from som_pipeline.lifecycle import (
    APPROVED,
    CANCELLED,
    HISTORICAL,
    NEW,
    ON_HOLD,
    REJECTED,
    STATUSES,
    details,
    is_allowed,
    order_events,
)

AT = datetime(2026, 10, 2, 10, 0, tzinfo=UTC)


def test_statuses_are_the_ones_the_tables_accept():
    assert list(STATUSES) == list(schemas.STATUSES)
    every_target = {t for tr in lifecycle.TRANSITIONS for t in tr.targets}
    assert every_target == set(STATUSES)  # every status can be reached, and only statuses


@pytest.mark.parametrize(("source", "target"), [
    (NEW, APPROVED), (NEW, ON_HOLD), (NEW, REJECTED), (NEW, CANCELLED), (NEW, HISTORICAL),
    (ON_HOLD, APPROVED), (ON_HOLD, ON_HOLD), (ON_HOLD, REJECTED),  # re-checked every run, decided by people
    (APPROVED, ON_HOLD), (REJECTED, APPROVED), (CANCELLED, APPROVED),  # a new version is checked again
    (APPROVED, CANCELLED), (ON_HOLD, CANCELLED), (CANCELLED, CANCELLED),
    (APPROVED, HISTORICAL), (HISTORICAL, HISTORICAL),
])
def test_allowed_transitions(source, target):
    assert is_allowed(source, target)


@pytest.mark.parametrize(("source", "target"), [
    (APPROVED, NEW), (ON_HOLD, NEW), (NEW, NEW),  # an order never becomes new again
    (APPROVED, "DELIVERED"), ("DELIVERED", ON_HOLD),  # unknown statuses: no rule yet
    ("SHIPPED", ON_HOLD), ("SHIPPED", APPROVED), ("SHIPPED", "IN_FULFILMENT"),  # fulfilment never goes back
    (ON_HOLD, "IN_FULFILMENT"),  # only an approved order is released to the warehouse
    ("approved", ON_HOLD), (APPROVED, "on_hold"),  # statuses are exact
])
def test_forbidden_transitions(source, target):
    assert not is_allowed(source, target)


def _changes(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(
        [dict(zip(("order_id", "version", "from_status", "to_status", "reason", "actor", "at"), r, strict=True))
         for r in rows],
        schema={"order_id": pl.String, "version": pl.Int64, "from_status": pl.String, "to_status": pl.String,
                "reason": pl.String, "actor": pl.String, "at": pl.Datetime("us", "UTC")},
    ).with_columns(details(holds_open=pl.lit(["CREDIT_LIMIT"])).alias("details"))


def test_order_events_builds_conforming_rows_with_a_stable_id():
    ch = _changes(("B", 1, None, ON_HOLD, "on hold: CREDIT_LIMIT", "system", AT),
                  ("A", 2, ON_HOLD, APPROVED, "manual approval", "ana", AT))
    ev = order_events(ch)
    schemas.OrderEventModel.validate(ev, lazy=True)
    assert ev["order_id"].to_list() == ["A", "B"]
    b = ev.row(1, named=True)
    assert b["details"] == '{"holds_open":["CREDIT_LIMIT"]}'
    at_text = ch["at"].cast(pl.String)[0]  # as Polars writes a UTC timestamp
    assert at_text.startswith("2026-10-02 10:00:00")
    text = f"B|1|-|ON_HOLD|{at_text}|{b['details']}"
    assert b["event_id"] == hashlib.sha256(text.encode()).hexdigest()
    assert order_events(ch).equals(ev)  # same changes, same events (idempotent history)
    assert order_events(ch.head(0)).height == 0


def test_order_events_refuses_a_transition_the_lifecycle_does_not_allow():
    ch = _changes(("A", 1, "SHIPPED", APPROVED, "approved again", "system", AT),
                  ("B", 1, None, APPROVED, "all checks passed", "system", AT))
    with pytest.raises(ValueError, match=r"not allowed.*\('SHIPPED', 'APPROVED'\)"):
        order_events(ch)
