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


# ------------------------------------------------------------------------------------------------
# the demo's three days of carrier events, end to end
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from golden import demo_pipeline

    return demo_pipeline(tmp_path_factory.mktemp("tracking"), month_later=False)


def test_events_attach_dedup_and_wait_for_unknown_labels(demo) -> None:
    s, wh, m = demo
    ev = wh.read("SELECT source, count(*) AS n FROM core.tracking_events GROUP BY 1")
    sources = dict(ev.rows())
    assert all(sources.get(k, 0) > 0 for k in ("label", "x12_214", "easypost", "shopify", "amazon")), sources
    files = wh.read("SELECT sum(records_received) AS r, sum(records_accepted) AS a, sum(records_quarantined) AS q "
                    "FROM ops.ingest_files WHERE channel = 'carrier_events'").row(0, named=True)
    assert files["r"] == files["a"] + files["q"] > 0
    # the simulator's duplicates were kept once; the stray parcel waits for a label of ours
    assert wh.read("SELECT count(*) AS n FROM core.tracking_events")["n"][0] == wh.read(
        "SELECT count(DISTINCT event_id) AS n FROM core.tracking_events")["n"][0]
    pending = wh.read("SELECT tracking_number FROM core.tracking_pending")
    assert pending["tracking_number"].to_list() == ["1Z999AA10123456784"]


def test_statuses_never_go_back_and_open_shipments_have_etas(demo) -> None:
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    _s, wh, _m = demo
    with wh.connect() as con:
        assert run_reconciliation_query(con, sql_file("reconciliation", "tracking_never_backwards")).height == 0
        assert run_reconciliation_query(con, sql_file("reconciliation", "notifications_once")).height == 0
    st = wh.read("SELECT * FROM core.shipment_status")
    delivered = st.filter(pl.col("delivered_at").is_not_null())
    open_ = st.filter(pl.col("delivered_at").is_null())
    assert delivered.height > 0 and open_.height > 0
    assert (delivered["milestone"] == "DELIVERED").all()
    assert open_["eta_p50"].null_count() == 0 and (open_["eta_p90"] >= open_["eta_p50"]).all()
    assert open_["p_late"].is_between(0, 1).all()
    # every delivered shipment became one transit observation
    assert wh.read("SELECT count(*) AS n FROM state.transit_observations")["n"][0] == delivered.height
    acc = wh.read("SELECT * FROM core.eta_accuracy WHERE carrier_id = '*'").row(0, named=True)
    assert acc["n"] > 0 and acc["mae_p50_h"] < acc["mae_static_h"]  # the model beats the static table


def test_exceptions_and_notifications_are_kept_once(demo) -> None:
    from golden import BANK_RUN, run_all

    s, wh, _m = demo
    ex = wh.read("SELECT kind, count(*) AS n FROM core.shipment_exceptions WHERE resolved_at IS NULL GROUP BY 1")
    assert ex.height > 0
    n = wh.read("SELECT kind, language, channel, path FROM ops.notifications")
    assert {"shipped", "delivered"} <= set(n["kind"]) and "en" in set(n["language"])
    for p in n["path"][:20]:
        assert (s.home / "outbound" / "notifications").as_posix() in p
    before = (wh.read("SELECT count(*) AS n FROM ops.notifications")["n"][0],
              wh.read("SELECT count(*) AS n FROM core.shipment_exceptions")["n"][0])
    run_all(s, wh, BANK_RUN)  # the same clock again: nothing is told twice, no problem re-created
    after = (wh.read("SELECT count(*) AS n FROM ops.notifications")["n"][0],
             wh.read("SELECT count(*) AS n FROM core.shipment_exceptions")["n"][0])
    assert after == before


def test_the_edi_channel_routes_status_messages_to_tracking(tmp_path) -> None:
    """A file of 214s dropped in landing/edi goes to tracking (not captured as orders: the edi ledger row counts no
    record of it, tracking counts its events) and is acknowledged with a 997; again: a re-drop. Mixed files and the
    997s in detail: tests/test_edi_routing.py."""
    from golden import demo_settings

    from som_pipeline.services.channels import capture_channel
    from som_pipeline.services.tracking import run_tracking
    from som_pipeline.warehouse import Warehouse
    from tests.conftest import FIXTURES

    s = demo_settings(tmp_path)
    wh = Warehouse(s.warehouse_path)
    data = (FIXTURES / "tracking_events" / "edinet_x12.214.edi").read_bytes()
    (s.landing_dir("edi") / "status.edi").write_bytes(data)
    capture_channel("edi", wh, s, now=T)
    [routed] = list(s.landing_dir("carrier_events").iterdir())
    assert routed.name.startswith("edi-status-") and routed.name.endswith("-214.edi")
    row = wh.read("SELECT records_received, records_accepted, records_quarantined, archived_to FROM ops.ingest_files "
                  "WHERE channel = 'edi'").row(0, named=True)
    assert (row["records_received"], row["records_accepted"], row["records_quarantined"]) == (0, 0, 0)
    ack = wh.read("SELECT interchange_control, sets_received, sets_accepted FROM ops.edi_acks")
    assert ack.rows() == [("000082265", 1, 1)]
    run_tracking(wh, s, T)  # the event is not for a label of ours: it waits
    assert wh.read("SELECT count(*) AS n FROM core.tracking_pending")["n"][0] == 1
    assert wh.read("SELECT records_received FROM ops.ingest_files WHERE channel = 'carrier_events'").rows() == [(1,)]
    (s.landing_dir("edi") / "again.edi").write_bytes(data)
    capture_channel("edi", wh, s, now=T)
    assert list(s.landing_dir("carrier_events").iterdir()) == []
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops WHERE channel = 'edi'")["n"][0] == 1
