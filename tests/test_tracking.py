"""Tracking: status from events (never backwards), notifications (languages, quiet hours, stable bytes), and the
demo's three days of carrier events end to end (statuses, pending, ETAs, exceptions, notifications)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from som_pipeline.tracking import notify
from som_pipeline.tracking.status import shipment_status

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _events(*rows) -> pl.DataFrame:
    return pl.DataFrame([{"shipment_id": s, "milestone": m, "exception_subtype": x, "event_at": T + timedelta(hours=h),
                          "signed_by": sb} for s, m, x, h, sb in rows],
                        schema={"shipment_id": pl.String, "milestone": pl.String, "exception_subtype": pl.String,
                                "event_at": pl.Datetime("us", "UTC"), "signed_by": pl.String})


def test_a_late_event_never_moves_a_shipment_backwards() -> None:
    st = shipment_status(_events(("S1", "LABEL_CREATED", None, 0, None), ("S1", "PICKED_UP", None, 5, None),
                                 ("S1", "DELIVERED", None, 30, "KIM"),
                                 ("S1", "IN_TRANSIT", None, 35, None)))  # a straggler scan after the delivery
    r = st.row(0, named=True)
    assert (r["milestone"], r["delivered_at"], r["signed_by"]) == ("DELIVERED", T + timedelta(hours=30), "KIM")
    assert r["last_event_at"] == T + timedelta(hours=35) and r["open_exception"] is None


def test_an_exception_stays_open_until_progress_after_it() -> None:
    st = shipment_status(_events(("S1", "IN_TRANSIT", None, 2, None), ("S1", "EXCEPTION", "DELAY", 10, None),
                                 ("S2", "IN_TRANSIT", None, 2, None), ("S2", "EXCEPTION", "DELAY", 10, None),
                                 ("S2", "OUT_FOR_DELIVERY", None, 20, None),
                                 ("S3", "IN_TRANSIT", None, 2, None), ("S3", "IN_TRANSIT", None, 2, None)))
    got = {r["shipment_id"]: (r["milestone"], r["open_exception"], r["milestone_at"]) for r in st.iter_rows(named=True)}
    assert got["S1"] == ("IN_TRANSIT", "DELAY", T + timedelta(hours=2))
    assert got["S2"] == ("OUT_FOR_DELIVERY", None, T + timedelta(hours=20))
    assert got["S3"] == ("IN_TRANSIT", None, T + timedelta(hours=2))  # a duplicate changes nothing


def test_quiet_hours_in_the_customers_time_zone() -> None:
    tz = notify.time_zone("US", "CA")
    assert tz == "America/Los_Angeles"
    late = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)  # 22:30 in Los Angeles the evening before
    assert notify.not_before(late, tz) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 08:00 there
    day = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 10:00 there
    assert notify.not_before(day, tz) == day
    assert notify.language("DE") == "de" and notify.language("MX") == "es" and notify.language("US") == "en"


@pytest.mark.parametrize("lang", ["en", "de", "fr", "es"])
def test_every_kind_renders_in_every_language(lang: str) -> None:
    fields = {"name": "Ana", "order": "SHP-1", "carrier": "UPS", "packages": 2, "url": "https://t/1",
              "eta": "2026-11-30", "promised": "2026-11-29", "signed_by": "ANA", "when": "2026-11-30"}
    for kind in notify.KINDS:
        subject, body = notify.render(kind, lang, fields)
        assert "SHP-1" in subject and "SHP-1" in body
    text = notify.email("ana@example.com", *notify.render("delayed", lang, fields), T, "k" * 64)
    assert text == notify.email("ana@example.com", *notify.render("delayed", lang, fields), T, "k" * 64)
    from email import message_from_string, policy

    msg = message_from_string(text, policy=policy.default)  # RFC 5322: it parses back
    assert msg["Message-ID"] == "<" + "k" * 40 + "@som.example>" and str(msg["X-Idempotency-Key"]).strip() == "k" * 64
    assert "SHP-1" in msg.get_content() and msg["To"] == "ana@example.com"
