"""Tracking events in: the milestone tables, and the four readers (X12 214, EasyPost trackers, Shopify fulfillment
events, Amazon tracking notifications) on the public samples, our own documents, every rejection, time zones,
conservation, and arbitrary bytes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline.reasons import REASONS
from som_pipeline.tracking import milestones as M
from som_pipeline.tracking.parsers import (
    EVENT_SCHEMA,
    NEW_REASONS,
    READERS,
    STATE_ZONES,
    TrackingFile,
    read_amazon_tracking_notification,
    read_shopify_fulfillment_event,
    read_tracker_json,
    read_x12_214,
)
from som_pipeline.validation.approvals import REJECT_SCHEMA

FIX = Path(__file__).parent / "fixtures" / "tracking_events"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def check(tf: TrackingFile) -> TrackingFile:
    """What every file must satisfy: counts conserve, schemas hold, every reject is explained and coded."""
    assert tf.received == tf.events.height + tf.rejected.height
    assert dict(tf.events.schema) == EVENT_SCHEMA
    assert dict(tf.rejected.schema) == REJECT_SCHEMA
    assert set(tf.rejected["reason_code"].to_list()) <= set(REASONS) | set(NEW_REASONS)
    assert tf.rejected.filter(pl.col("message").is_null() | pl.col("location").is_null()).height == 0
    assert not any(m.startswith("internal error") for m in tf.rejected["message"].to_list())
    ev = tf.events
    assert ev.filter(pl.col("event_id").is_null() | pl.col("event_at").is_null() | pl.col("raw").is_null()
                     | pl.col("location").is_null()).height == 0
    assert set(ev["milestone"].drop_nulls().to_list()) <= set(M.MILESTONES)
    assert ev.filter((pl.col("milestone") != M.EXCEPTION) & pl.col("exception_subtype").is_not_null()).height == 0
    assert set(ev["exception_subtype"].drop_nulls().to_list()) <= set(M.EXCEPTION_SUBTYPES)
    assert ev.filter(pl.col("tracking_number").is_null() & pl.col("shipment_ref").is_null()).height == 0
    return tf


def codes(tf: TrackingFile) -> list[str]:
    return tf.rejected["reason_code"].to_list()


def jbytes(doc: object) -> bytes:
    return json.dumps(doc).encode()


# ------------------------------------------------------------------------------------------------
# X12 builders (our own documents)
# ------------------------------------------------------------------------------------------------
def isa(ctl: int, ver: str = "00401", e: str = "*", c: str = ">", t: str = "~") -> str:
    f = ["00", " " * 10, "00", " " * 10, "02", "UPSN".ljust(15), "ZZ", "SOMSHIPPER".ljust(15), "240315", "1200",
         "U", ver, f"{ctl:09d}", "0", "P"]
    return "ISA" + e + e.join(f) + e + c + t


def st_set(st02: str, body: list[str], st01: str = "214") -> str:
    segs = [f"ST*{st01}*{st02}", *body]
    segs.append(f"SE*{len(segs) + 1}*{st02}")
    return "".join(s + "~\n" for s in segs)


def x12(*sets: str, gsver: str = "004010", ctl: int = 7) -> bytes:
    return (isa(ctl) + "\n" + f"GS*QM*UPSN*SOMSHIPPER*20240315*1200*{ctl}*X*{gsver}~\n" + "".join(sets)
            + f"GE*{len(sets)}*{ctl}~\nIEA*1*{ctl:09d}~\n").encode()


def one_at7(at7: str, ms1: str | None = "MS1*ALBANY*NY*US", b10: str = "B10*TRK1*SHP-1*UPSN") -> bytes:
    return x12(st_set("0001", [b10, "LX*1", at7, *([ms1] if ms1 else [])]))


# ------------------------------------------------------------------------------------------------
# milestones
# ------------------------------------------------------------------------------------------------
def test_rank_never_moves_backwards():
    order = [M.LABEL_CREATED, M.PICKED_UP, M.IN_TRANSIT, M.OUT_FOR_DELIVERY, M.AVAILABLE_FOR_PICKUP, M.DELIVERED]
    assert [M.rank(m) for m in order] == sorted(M.rank(m) for m in order)
    assert M.advances(None, M.LABEL_CREATED) and M.advances(M.IN_TRANSIT, M.DELIVERED)
    assert not M.advances(M.DELIVERED, M.IN_TRANSIT)  # a late IN_TRANSIT is history, not status
    assert not M.advances(M.IN_TRANSIT, M.EXCEPTION) and not M.advances(None, M.EXCEPTION)
    assert not M.advances(M.IN_TRANSIT, None)  # informational rows never move status
    ranks = pl.DataFrame({"milestone": [M.DELIVERED, M.EXCEPTION, None]}).select(M.rank_expr())["milestone"]
    assert ranks.to_list() == [6, None, None]


def test_code_table_is_consistent():
    t = M.code_table()
    assert t.select("source", "key").is_duplicated().sum() == 0
    assert set(t["milestone"].drop_nulls()) <= set(M.MILESTONES)
    assert set(t["exception_subtype"].drop_nulls()) <= set(M.EXCEPTION_SUBTYPES)
    assert t.filter((pl.col("milestone") != M.EXCEPTION) & pl.col("exception_subtype").is_not_null()).height == 0
    assert {s for s, _ in M.X12_AT7_REASON.values()} - {None} <= set(M.EXCEPTION_SUBTYPES)
    # every value of Shopify's FulfillmentEventStatus enum (Admin REST/GraphQL) is mapped
    shopify_enum = {"attempted_delivery", "carrier_picked_up", "confirmed", "delayed", "delivered", "failure",
                    "in_transit", "label_printed", "label_purchased", "out_for_delivery", "picked_up",
                    "ready_for_pickup"}
    assert shopify_enum <= set(M.SHOPIFY_STATUS)
    easypost = {"pre_transit", "in_transit", "out_for_delivery", "delivered", "available_for_pickup",
                "return_to_sender", "failure", "cancelled", "error", "unknown"}
    assert easypost == set(M.EASYPOST_STATUS) | set(M.EASYPOST_UNMAPPED)
    # every exception subtype is reachable from every source family that has a detail for it
    assert set(M.EXCEPTION_SUBTYPES) <= set(M.EASYPOST_EXCEPTION_DETAIL.values())


@pytest.mark.parametrize("name,expected", [("UPSN", "UPS"), ("FedEx", "FEDEX"), ("fedex_ground", "FEDEX"),
                                           ("U.S. Postal Service", "USPS"), ("DHLExpress", "DHL"),
                                           ("ODFL", "ODFL"), (" ", None), (None, None)])
def test_carrier_normalisation(name, expected):
    assert M.normalise_carrier(name) == expected


def test_state_zones_are_real_zones():
    from zoneinfo import ZoneInfo

    for zone in set(STATE_ZONES.values()):
        ZoneInfo(zone)
    assert len([s for s in STATE_ZONES if len(s) == 2]) == len(STATE_ZONES)


# ------------------------------------------------------------------------------------------------
# X12 214
# ------------------------------------------------------------------------------------------------
def test_x12_sample_edinet():
    tf = check(read_x12_214((FIX / "edinet_x12.214.edi").read_bytes(), "edinet.edi"))
    assert tf.received == 1 and tf.rejected.height == 0
    e = tf.events.row(0, named=True)
    assert (e["source"], e["tracking_number"], e["shipment_ref"], e["carrier"]) == ("x12_214", "1751807",
                                                                                    "75027674", "SCAC")
    assert (e["milestone"], e["carrier_code"]) == (M.DELIVERED, "D1/NS")
    assert e["carrier_text"] == "Completed Unloading at Delivery Location; Normal Status"
    # 12:30 local time in Brattleboro VT, July: EDT (UTC-4)
    assert e["event_at"] == utc(2016, 7, 26, 16, 30)
    assert e["event_local"] == "20160726 1230 LT [America/New_York]"
    assert (e["location_city"], e["location_region"]) == ("BRATTLEBORO", "VT")
    assert e["location"].startswith("ISA 000082265 / ST 822650001 / LX 1 ")
    # the AT7 with the segments of its loop (MS1 location, MS2 equipment), as sent
    assert e["raw"].startswith("AT7*D1*NS***20160726*1230*LT~") and e["raw"].endswith("MS2*SCAC*30402~")
    assert e["source_file"] == "edinet.edi"


def test_x12_multi_interchange_file():
    tf = check(read_x12_214((FIX / "som_x12_214_multi.edi").read_bytes(), "multi.edi"))
    # 6 + 2 + 2 AT7s in sound sets, the damaged set and the 850 set as one record each
    assert (tf.received, tf.events.height) == (12, 10)
    rej = {r["location"].split(" (")[0]: r for r in tf.rejected.to_dicts()}
    assert rej["ISA 000000101 / ST 0002"]["reason_code"] == "X12_SYNTAX"
    assert rej["ISA 000000101 / ST 0002"]["order_ref"] == "1Z999AA10123456795"
    assert "AT7*AF" in rej["ISA 000000101 / ST 0002"]["raw"]
    assert rej["ISA 000000102 / ST 0005"]["reason_code"] == "UNSUPPORTED_TRANSACTION_SET"
    ev = {e["location"].split(" (")[0]: e for e in tf.events.to_dicts()}
    first = ev["ISA 000000101 / ST 0001 / LX 1"]
    second = ev["ISA 000000101 / ST 0001 / LX 1 / AT7 2"]  # two AT7 in one LX loop: two records
    assert (first["milestone"], second["milestone"]) == (M.LABEL_CREATED, M.PICKED_UP)
    assert first["carrier"] == "UPS" and first["tracking_number"] == "1Z999AA10123456784"
    assert first["event_at"] == utc(2024, 3, 10, 12, 0)  # 08:00 ET on the day daylight saving starts: EDT
    assert ev["ISA 000000101 / ST 0001 / LX 2"]["event_at"] == utc(2024, 3, 11, 19, 15)  # CT in March: CDT
    delay = ev["ISA 000000101 / ST 0001 / LX 3"]
    assert (delay["milestone"], delay["exception_subtype"], delay["carrier_code"]) == (M.EXCEPTION, M.DELAY, "SD/AO")
    assert "Weather or Natural Disaster Related" in delay["carrier_text"]
    assert delay["event_at"] == utc(2024, 3, 12, 12, 0)  # CS = central standard, fixed UTC-6, even in DST
    estimate = ev["ISA 000000101 / ST 0001 / LX 4"]
    assert estimate["milestone"] is None and estimate["est_delivery_at"] == utc(2024, 3, 15, 0, 0)  # 17:00 PDT
    delivered = ev["ISA 000000101 / ST 0001 / LX 5"]
    assert delivered["event_at"] == utc(2024, 3, 14, 17, 12)  # LT in WA (MS1): PDT
    assert delivered["event_local"] == "20240314 1012 LT [America/Los_Angeles]"
    # loop-level L11 *2I tracking numbers win over the header's CN and B1001: one per package
    failed = ev["ISA 000000101 / ST 0003 / LX 1"]
    assert (failed["tracking_number"], failed["shipment_ref"]) == ("1Z999AA10123456801", "SHP-1003")
    assert (failed["milestone"], failed["exception_subtype"]) == (M.EXCEPTION, M.ADDRESS_ISSUE)
    assert failed["event_at"] == utc(2024, 3, 13, 23, 30)  # ES = eastern standard, fixed UTC-5
    assert ev["ISA 000000101 / ST 0003 / LX 2"]["tracking_number"] == "1Z999AA10123456812"
    assert ev["ISA 000000101 / ST 0003 / LX 2"]["event_at"] == utc(2024, 3, 13, 19, 0)  # ED fixed UTC-4
    # second interchange: 004030, '|' separators, November (standard time)
    usps = ev["ISA 000000102 / ST 0004 / LX 1"]
    assert (usps["carrier"], usps["event_at"]) == ("USPS", utc(2016, 11, 26, 17, 30))
    assert ev["ISA 000000102 / ST 0004 / LX 2"]["exception_subtype"] == M.DAMAGED


@pytest.mark.parametrize("at7,ms1,expected", [
    ("AT7*X6*NS***20161126*1230*ET", None, utc(2016, 11, 26, 17, 30)),  # EST
    ("AT7*X6*NS***20160726*1230*ET", None, utc(2016, 7, 26, 16, 30)),  # EDT
    ("AT7*X6*NS***20161106*0130*ET", None, utc(2016, 11, 6, 5, 30)),  # the repeated hour: first (EDT) reading
    ("AT7*X6*NS***20160726*1230*UT", None, utc(2016, 7, 26, 12, 30)),
    ("AT7*X6*NS***20160726*1230*GM", None, utc(2016, 7, 26, 12, 30)),
    ("AT7*X6*NS***20160726*1230*PS", None, utc(2016, 7, 26, 20, 30)),
    ("AT7*X6*NS***20160726*1230*MT", None, utc(2016, 7, 26, 18, 30)),
    ("AT7*X6*NS***20160726*1230*HT", None, utc(2016, 7, 26, 22, 30)),
    ("AT7*X6*NS***20160726*1230*LT", "MS1*PHOENIX*AZ", utc(2016, 7, 26, 19, 30)),  # Arizona: no DST
    ("AT7*X6*NS***20160726*1230*LT", "MS1*TORONTO*ON*CA", utc(2016, 7, 26, 16, 30)),
    ("AT7*X6*NS***20160726*1230", "MS1*CHICAGO*IL", utc(2016, 7, 26, 17, 30)),  # no code: local time
    ("AT7*X6*NS***20160726*123045*UT", None, utc(2016, 7, 26, 12, 30, 45)),
    ("AT7*X6*NS***20160726*12304512*UT", None, datetime(2016, 7, 26, 12, 30, 45, 120000, tzinfo=UTC)),
    ("AT7*X6*NS***20160726**ET", None, utc(2016, 7, 26, 4, 0)),  # date only: local midnight
])
def test_x12_time_codes(at7, ms1, expected):
    tf = check(read_x12_214(one_at7(at7, ms1), "t.edi"))
    assert tf.rejected.height == 0, tf.rejected.to_dicts()
    assert tf.events["event_at"].item() == expected


def test_x12_version_before_004010_reads_yymmdd_and_century():
    body = ["B10*TRK1*SHP-1*UPSN", "LX*1", "AT7*D1*NS***160726*20*1230*ET"]
    tf = check(read_x12_214(x12(st_set("0001", body), gsver="003070"), "old.edi"))
    assert tf.events["event_at"].item() == utc(2016, 7, 26, 16, 30)


@pytest.mark.parametrize("at7,ms1,fragment", [
    ("AT7*X6*NS***20160726*1230*ZZ", None, "time code 'ZZ'"),
    ("AT7*X6*NS***20160726*1230*LT", None, "no MS1 location"),
    ("AT7*X6*NS***20160726*1230*LT", "MS1*PARIS**FR", "country 'FR'"),
    ("AT7*X6*NS***20160726*1230*LT", "MS1*NOWHERE*XX", "state/province 'XX'"),
    ("AT7*X6*NS***20160231*1230*ET", None, "not a calendar date"),
    ("AT7*X6*NS***160726*1230*ET", None, "too short"),
    ("AT7*X6*NS***20160726*2561*ET", None, "not HHMM"),
    ("AT7*X6*NS****1230*ET", None, "AT705 (date of the status) is empty"),
    ("AT7*X6*NS***99991231*2300*ET", None, "out of the representable time range"),
])
def test_x12_bad_event_time(at7, ms1, fragment):
    tf = check(read_x12_214(one_at7(at7, ms1), "t.edi"))
    assert codes(tf) == ["BAD_EVENT_TIME"] and fragment in tf.rejected["message"].item()
    assert tf.rejected["order_ref"].item() == "TRK1"
    assert tf.rejected["raw"].item().startswith(at7)


def test_x12_unknown_status_is_not_guessed_and_the_rest_of_the_set_is_kept():
    body = ["B10*TRK1*SHP-1*UPSN", "LX*1", "AT7*ZZ*NS***20160726*1230*ET", "LX*2", "AT7*D1*NS***20160727*0900*ET"]
    tf = check(read_x12_214(x12(st_set("0001", body)), "u.edi"))
    assert codes(tf) == ["UNKNOWN_MILESTONE_CODE"] and "'ZZ'" in tf.rejected["message"].item()
    assert tf.events["milestone"].to_list() == [M.DELIVERED]


def test_x12_exception_reason_refines_only_exception_statuses():
    body = ["B10*TRK1*SHP-1*UPSN", "LX*1", "AT7*AP*A1***20160726*1230*ET", "LX*2", "AT7*D1*AJ***20160727*0900*ET",
            "LX*3", "AT7*CA*NS***20160727*1000*ET"]
    ev = check(read_x12_214(x12(st_set("0001", body)), "r.edi")).events
    assert ev.select("milestone", "exception_subtype", "carrier_code").rows() == [
        (M.EXCEPTION, M.FAILED_ATTEMPT, "AP/A1"),  # missed delivery
        (M.DELIVERED, None, "D1/AJ"),  # delivered late (other carrier related): still delivered
        (M.EXCEPTION, None, "CA/NS"),  # cancelled: an exception without a subtype
    ]


def test_x12_appointment_is_informational():
    tf = check(read_x12_214(one_at7("AT7***AB*NA*20160728*0900*ET"), "a.edi"))
    assert tf.events.select("milestone", "carrier_code").row(0) == (None, "AT703 AB/NA")


def test_x12_set_level_rejections():
    no_refs = st_set("0001", ["B10***UPSN", "LX*1", "AT7*D1*NS***20160726*1230*ET"])
    no_at7 = st_set("0002", ["B10*TRK2*SHP-2*UPSN", "LX*1"])
    no_status = st_set("0003", ["B10*TRK3*SHP-3*UPSN", "LX*1", "AT7*****20160726*1230*ET"])
    bad_count = st_set("0004", ["B10*TRK4*SHP-4*UPSN", "LX*1", "AT7*D1*NS***20160726*1230*ET"]).replace("SE*5", "SE*9")
    tf = check(read_x12_214(x12(no_refs, no_at7, no_status, bad_count), "s.edi"))
    by_set = {r["location"].split(" (")[0].split(" / LX")[0]: r for r in tf.rejected.to_dicts()}
    assert {k: r["reason_code"] for k, r in by_set.items()} == {
        "ISA 000000007 / ST 0001": "MISSING_TRACKING_NUMBER",  # B1001, B1002 empty, no L11/REF
        "ISA 000000007 / ST 0002": "MISSING_FIELD",  # a set without any AT7: one record
        "ISA 000000007 / ST 0003": "MISSING_FIELD",  # an AT7 without a status
        "ISA 000000007 / ST 0004": "X12_SEGMENT_COUNT"}
    assert tf.received == 4 and tf.events.height == 0
    assert "no AT7" in by_set["ISA 000000007 / ST 0002"]["message"]
    assert "neither AT701" in by_set["ISA 000000007 / ST 0003"]["message"]
    assert by_set["ISA 000000007 / ST 0004"]["order_ref"] == "TRK4"


def test_x12_unsupported_version():
    tf = check(read_x12_214(x12(st_set("0001", ["B10*TRK1*SHP-1*UPSN", "LX*1", "AT7*D1*NS***20160726*1230*ET"]),
                                gsver="002001"), "v.edi"))
    assert codes(tf) == ["X12_VERSION_UNSUPPORTED"] and tf.rejected["order_ref"].item() == "TRK1"


def test_x12_header_reference_and_ref_segment():
    body = ["B10*PRO9*SHP-9*FDEG", "REF*2I*794612345678", "LX*1", "AT7*AF*NS***20160726*1230*CT"]
    e = check(read_x12_214(x12(st_set("0001", body)), "h.edi")).events.row(0, named=True)
    assert (e["tracking_number"], e["carrier"]) == ("794612345678", "FEDEX")


@pytest.mark.parametrize("data,code", [
    (b"", "EMPTY_FILE"), (b"  \n ", "EMPTY_FILE"), (b"\x00\x01\x02binary", "BAD_ENCODING"),
    (b"hello, not an interchange", "X12_SYNTAX"), (b"ISA*00*", "X12_SYNTAX"),
])
def test_x12_file_level_rejections(data, code):
    tf = check(read_x12_214(data, "f.edi"))
    assert (tf.received, codes(tf)) == (1, [code])


def test_x12_stray_segments_after_the_interchange_are_kept_as_a_rejection():
    data = one_at7("AT7*D1*NS***20160726*1230*ET") + b"LX*9~AT7*D1*NS***20160727*1230*ET~"
    tf = check(read_x12_214(data, "s.edi"))
    assert tf.events.height == 1 and codes(tf) == ["X12_SYNTAX"]


# ------------------------------------------------------------------------------------------------
# EasyPost trackers
# ------------------------------------------------------------------------------------------------
def tracker(code: str = "1Z1", carrier: str = "UPS", details: list | None = None, **kw: object) -> dict:
    return {"object": "Tracker", "tracking_code": code, "carrier": carrier, "status": "in_transit",
            "updated_at": "2025-03-06T19:48:26Z", "tracking_details": details or [], **kw}


def detail(status: str, when: str, sd: str = "status_update", msg: str | None = "m", **loc: str) -> dict:
    return {"object": "TrackingDetail", "status": status, "status_detail": sd, "message": msg, "datetime": when,
            "tracking_location": {"object": "TrackingLocation", **loc}}


def test_easypost_sample():
    tf = check(read_tracker_json((FIX / "easypost_tracker_create_response.json").read_bytes(), "ep.json"))
    assert (tf.received, tf.rejected.height) == (2, 0)
    ev = tf.events
    assert ev["milestone"].to_list() == [M.LABEL_CREATED, M.LABEL_CREATED]
    assert ev["carrier"].unique().to_list() == ["USPS"] and ev["tracking_number"].unique().to_list() == ["EZ1000000001"]
    assert ev["carrier_text"].to_list() == ["Pre-Shipment Info Sent to USPS", "Shipping Label Created"]
    assert ev["carrier_code"][0] == "pre_transit/status_update"
    assert ev["event_at"].to_list() == [utc(2025, 2, 6, 19, 48, 26), utc(2025, 2, 7, 8, 25, 26)]
    assert ev["est_delivery_at"].unique().to_list() == [utc(2025, 3, 6, 19, 48, 26)]
    assert ev.row(1, named=True)["location_city"] == "HOUSTON" and ev["location_postal"][1] == "77063"
    assert ev["location"].to_list() == ["/tracking_details/0", "/tracking_details/1"]


def test_easypost_webhook_event_every_status():
    details = [
        detail("pre_transit", "2025-03-01T10:00:00Z"),
        detail("in_transit", "2025-03-02T10:00:00Z", "arrived_at_facility", city="MEMPHIS", state="TN"),
        detail("in_transit", "2025-03-03T10:00:00Z", "weather_delay"),
        detail("out_for_delivery", "2025-03-04T08:00:00Z", "out_for_delivery"),
        detail("failure", "2025-03-04T12:00:00Z", "delivery_exception"),
        detail("available_for_pickup", "2025-03-04T16:00:00Z", "arrived_at_pickup_location"),
        detail("delivered", "2025-03-05T09:30:00-05:00", "arrived_at_destination"),
        detail("return_to_sender", "2025-03-06T10:00:00Z", "return"),
        detail("failure", "2025-03-07T10:00:00Z", "lost"),
        detail("failure", "2025-03-07T11:00:00Z", "something_new"),
        detail("cancelled", "2025-03-08T10:00:00Z", "cancelled"),
    ]
    event = {"object": "Event", "description": "tracker.updated",
             "result": tracker("9400100000000000000000", "USPS", details, signed_by="J ROE", shipment_id="shp_1")}
    tf = check(read_tracker_json(jbytes(event), "wh.json"))
    assert tf.rejected.height == 0
    assert tf.events.select("milestone", "exception_subtype").rows() == [
        (M.LABEL_CREATED, None), (M.IN_TRANSIT, None), (M.EXCEPTION, M.DELAY), (M.OUT_FOR_DELIVERY, None),
        (M.EXCEPTION, M.FAILED_ATTEMPT), (M.AVAILABLE_FOR_PICKUP, None), (M.DELIVERED, None),
        (M.EXCEPTION, M.RETURN_TO_SENDER), (M.EXCEPTION, M.LOST), (M.EXCEPTION, None), (M.EXCEPTION, None)]
    # signed_by only on the delivered event; its offset normalised to UTC
    assert tf.events["signed_by"].to_list() == [None] * 6 + ["J ROE"] + [None] * 4
    assert tf.events["event_at"][6] == utc(2025, 3, 5, 14, 30)
    assert tf.events["location"][0] == "/result/tracking_details/0"
    assert tf.events["shipment_ref"].unique().to_list() == ["shp_1"]


def test_easypost_lists_and_tracker_without_history():
    trackers = [tracker("A", "FedEx", [detail("in_transit", "2025-03-02T10:00:00Z")]),
                tracker("B", "DHLExpress", [], status="delivered", updated_at="2025-03-03T10:00:00Z")]
    for doc, prefix in ((trackers, "/1"), ({"trackers": trackers}, "/trackers/1")):
        tf = check(read_tracker_json(jbytes(doc), "l.json"))
        assert tf.events.select("tracking_number", "carrier", "milestone").rows() == [
            ("A", "FEDEX", M.IN_TRANSIT), ("B", "DHL", M.DELIVERED)]
        assert tf.events["location"][1] == prefix  # the tracker's own status stands for its empty history


def test_easypost_rejections():
    details = [
        detail("error", "2025-03-01T10:00:00Z"),
        detail("unknown", "2025-03-01T11:00:00Z"),
        detail("teleported", "2025-03-01T12:00:00Z"),
        detail("in_transit", "yesterday"),
        detail("in_transit", None),
        "not an object",
        {"status": {"nested": 1}, "datetime": "2025-03-01T10:00:00Z"},
        {"datetime": "2025-03-01T10:00:00Z"},
        detail("in_transit", "2025-03-02T10:00:00Z"),
    ]
    docs = [tracker("OK1", "UPS", details), tracker(None, "UPS", [detail("in_transit", "2025-03-02T10:00:00Z")]),
            {"object": "Event", "description": "batch.created", "result": {}}, {"object": "Shipment"}, 42]
    tf = check(read_tracker_json(jbytes(docs), "r.json"))
    assert codes(tf) == [
        "UNSUPPORTED_DOCUMENT", "UNSUPPORTED_DOCUMENT", "UNSUPPORTED_DOCUMENT",  # batch event, Shipment, 42
        "UNSUPPORTED_DOCUMENT",  # a detail that is not an object
        "UNSUPPORTED_DOCUMENT",  # status is an object
        "UNKNOWN_MILESTONE_CODE", "UNKNOWN_MILESTONE_CODE", "UNKNOWN_MILESTONE_CODE",  # error, unknown, teleported
        "BAD_EVENT_TIME", "BAD_EVENT_TIME", "MISSING_FIELD", "MISSING_TRACKING_NUMBER"]
    assert tf.events.height == 1 and tf.received == 13
    msgs = dict(zip(tf.rejected["location"], tf.rejected["message"], strict=True))
    assert "could not track" in msgs["/0/tracking_details/0"]
    assert "'teleported'" in msgs["/0/tracking_details/2"]
    assert tf.rejected.filter(pl.col("location") == "/0/tracking_details/3")["order_ref"].item() == "OK1"


@pytest.mark.parametrize("data,code", [(b"{", "INVALID_JSON"), (b"", "EMPTY_FILE"), (b"\xff\xfe\x00\xd8", "BAD_ENCODING"),
                                       (b'"a string"', "UNSUPPORTED_DOCUMENT")])
def test_json_file_level_rejections(data, code):
    for read in (read_tracker_json, read_shopify_fulfillment_event, read_amazon_tracking_notification):
        tf = check(read(data, "f.json"))
        assert (tf.received, codes(tf)) == (1, [code]), read.__name__


# ------------------------------------------------------------------------------------------------
# Shopify fulfillment events
# ------------------------------------------------------------------------------------------------
def shopify_event(status: str | None, when: str | None = "2021-01-25T16:32:23-05:00", fid: object = 2608403447971,
                  **kw: object) -> dict:
    return {"id": 1, "fulfillment_id": fid, "status": status, "message": None, "happened_at": when, "city": None,
            "province": None, "country": None, "zip": None, "order_id": 2776493818019, **kw}


def test_shopify_sample():
    tf = check(read_shopify_fulfillment_event((FIX / "shopify_fulfillment_event.json").read_bytes(), "s.json"))
    e = tf.events.row(0, named=True)
    assert (e["milestone"], e["carrier_code"], e["tracking_number"], e["shipment_ref"], e["carrier"]) == (
        M.LABEL_CREATED, "label_printed", None, "2608403447971", None)
    assert e["event_at"] == utc(2021, 1, 25, 21, 32, 23) and e["event_local"] == "2021-01-25T16:32:23-05:00"
    assert e["carrier_text"] == "A purchased shipping label has been printed" and e["location"] == "/fulfillment_event"


def test_shopify_every_status_and_shapes():
    events = [shopify_event(s) for s in M.SHOPIFY_STATUS] + [
        shopify_event("IN_TRANSIT", city="Memphis", province="Tennessee", country="United States", zip="38118",
                      message="Departed facility", estimated_delivery_at="2021-01-28T20:00:00Z")]
    tf = check(read_shopify_fulfillment_event(jbytes({"fulfillment_events": events}), "s.json"))
    assert tf.rejected.height == 0
    assert tf.events["milestone"].to_list()[:-1] == [m.milestone for m in M.SHOPIFY_STATUS.values()]
    last = tf.events.row(-1, named=True)  # GraphQL upper case
    assert (last["milestone"], last["carrier_code"], last["carrier_text"]) == (M.IN_TRANSIT, "IN_TRANSIT",
                                                                              "Departed facility")
    assert (last["location_city"], last["location_postal"], last["est_delivery_at"]) == (
        "Memphis", "38118", utc(2021, 1, 28, 20))
    assert check(read_shopify_fulfillment_event(jbytes(events[:2]), "l.json")).events.height == 2
    assert check(read_shopify_fulfillment_event(jbytes(events[0]), "b.json")).events.height == 1


def test_shopify_rejections():
    events = [shopify_event("delivered", fid=None), shopify_event("beamed_up"), shopify_event("delivered", when=None),
              shopify_event("delivered", when="2021-02-30T10:00:00Z"), shopify_event(None), [1],
              shopify_event("delivered", message={"x": 1})]
    tf = check(read_shopify_fulfillment_event(jbytes({"fulfillment_events": events}), "r.json"))
    assert codes(tf) == ["UNSUPPORTED_DOCUMENT", "UNSUPPORTED_DOCUMENT", "MISSING_TRACKING_NUMBER",
                         "UNKNOWN_MILESTONE_CODE", "BAD_EVENT_TIME", "BAD_EVENT_TIME", "MISSING_FIELD"]
    assert tf.rejected.filter(pl.col("reason_code") == "UNKNOWN_MILESTONE_CODE")["order_ref"].item() == "2608403447971"
    tf = check(read_shopify_fulfillment_event(jbytes({"order": {}}), "o.json"))
    assert codes(tf) == ["UNSUPPORTED_DOCUMENT"]


# ------------------------------------------------------------------------------------------------
# Amazon tracking notifications
# ------------------------------------------------------------------------------------------------
def amazon_doc() -> dict:
    return json.loads((FIX / "amazon_notification_example.json").read_text())


def test_amazon_example():
    tf = check(read_amazon_tracking_notification((FIX / "amazon_notification_example.json").read_bytes(), "a.json"))
    assert (tf.received, tf.rejected.height) == (5, 0)  # latestMilestone is history[0]: not counted twice
    ev = tf.events
    assert ev.select("milestone", "carrier_code").rows() == [
        (M.DELIVERED, "DELIVERED/PORCH"), (M.OUT_FOR_DELIVERY, "OUT_FOR_DELIVERY"), (M.PICKED_UP, "SHIPPED"),
        (M.LABEL_CREATED, "CARRIER_ASSIGNED"), (None, "ORDER_PREPARING")]
    e = ev.row(0, named=True)
    assert (e["tracking_number"], e["carrier"], e["carrier_text"]) == ("AFTN987654321", "AMAZON",
                                                                       "Shipment delivered to porch")
    assert (e["location_city"], e["location_region"], e["location_country"]) == ("Austin", "Texas", "US")
    assert e["event_at"] == utc(2026, 6, 14, 1, 26, 56) and e["est_delivery_at"] == utc(2026, 6, 14, 3)
    assert e["location"].endswith("/trackingDetail/milestoneHistory/0")


def test_amazon_shipping_v2_event_codes_in_any_case():
    doc = amazon_doc()
    td = doc["payload"]["shipmentTrackingMilestoneChangedNotification"]["trackingDetail"]
    codes_ = ["ReadyForReceive", "PickupDone", "ArrivedAtCarrierFacility", "DELIVERY_ATTEMPTED", "out-for-delivery",
              "Undeliverable", "AvailableForPickup"]
    td["latestMilestone"] = None
    td["milestoneHistory"] = [{"status": {"code": c}, "occurredAt": f"2026-06-1{i}T10:00:00Z"}
                              for i, c in enumerate(codes_)]
    tf = check(read_amazon_tracking_notification(jbytes(doc), "v2.json"))
    assert tf.rejected.height == 0
    assert tf.events.select("milestone", "exception_subtype").rows() == [
        (M.LABEL_CREATED, None), (M.PICKED_UP, None), (M.IN_TRANSIT, None), (M.EXCEPTION, "FAILED_ATTEMPT"),
        (M.OUT_FOR_DELIVERY, None), (M.EXCEPTION, "ADDRESS_ISSUE"), (M.AVAILABLE_FOR_PICKUP, None)]
    assert tf.events["carrier_code"].to_list() == codes_  # the carrier's own code is kept as sent
    assert [M.amazon_key(c) for c in ("PickupDone", "PICKUP_DONE", "pickup done", None)] == [
        "PICKUP_DONE", "PICKUP_DONE", "PICKUP_DONE", None]


def test_amazon_schema_file_is_not_a_notification():
    data = (FIX / "amazon_ShipmentTrackingMilestoneChangedNotification.schema.json").read_bytes()
    tf = check(read_amazon_tracking_notification(data, "schema.json"))
    assert codes(tf) == ["UNSUPPORTED_DOCUMENT"] and tf.events.height == 0


def test_amazon_variations_and_rejections():
    newer = amazon_doc()
    td = newer["payload"]["shipmentTrackingMilestoneChangedNotification"]["trackingDetail"]
    td["latestMilestone"] = {"status": {"code": "RETURNING", "description": "Returning"},
                             "occurredAt": "2026-06-15T10:00:00Z"}  # not in the history, and not a known code
    td["milestoneHistory"][1]["occurredAt"] = "not a time"
    td["milestoneHistory"][2]["status"] = {}
    no_aftn = amazon_doc()
    no_aftn["payload"]["shipmentTrackingMilestoneChangedNotification"]["trackingDetail"]["identifier"] = {}
    no_aftn["payload"]["shipmentTrackingMilestoneChangedNotification"]["trackingDetail"]["milestoneHistory"] = []
    other = {**amazon_doc(), "notificationType": "ORDER_CHANGE"}
    tf = check(read_amazon_tracking_notification(jbytes([newer, no_aftn, other, "x"]), "r.json"))
    assert codes(tf) == ["UNSUPPORTED_DOCUMENT", "UNSUPPORTED_DOCUMENT", "BAD_EVENT_TIME", "MISSING_FIELD",
                         "UNKNOWN_MILESTONE_CODE", "MISSING_TRACKING_NUMBER"]
    assert tf.events.height == 3  # the first document's other milestones are kept
    empty = amazon_doc()
    empty["payload"]["shipmentTrackingMilestoneChangedNotification"]["trackingDetail"].update(
        milestoneHistory=[], latestMilestone=None)
    none = check(read_amazon_tracking_notification(jbytes(empty), "e.json"))  # nothing to lose, still accounted for
    assert codes(none) == ["MISSING_FIELD"] and none.rejected["location"].item() == "/"
    assert tf.received == 6 + 1 + 2  # 6 of the first (history + a new latest), the latest of the second, two docs
    loc = tf.rejected.filter(pl.col("reason_code") == "UNKNOWN_MILESTONE_CODE")["location"].item()
    assert loc.endswith("/trackingDetail/latestMilestone") and loc.startswith("/0/")


# ------------------------------------------------------------------------------------------------
# event ids, conservation under arbitrary input
# ------------------------------------------------------------------------------------------------
def test_event_id_is_the_documented_dedup_key():
    a = check(read_x12_214((FIX / "edinet_x12.214.edi").read_bytes(), "one.edi")).events
    b = check(read_x12_214((FIX / "edinet_x12.214.edi").read_bytes(), "two.edi")).events
    assert a["event_id"].item() == b["event_id"].item()  # re-dropped file, same event
    expected = hashlib.sha256(b"SCAC|1751807|D1/NS|2016-07-26T16:30:00.000000+00:00").hexdigest()
    assert a["event_id"].item() == expected
    s = check(read_shopify_fulfillment_event((FIX / "shopify_fulfillment_event.json").read_bytes(), "s")).events
    assert s["event_id"].item() == hashlib.sha256(
        b"|2608403447971|label_printed|2021-01-25T21:32:23.000000+00:00").hexdigest()
    # the same detail twice in one file: both kept (and counted), same id, for the caller to dedup
    dup = check(read_tracker_json(jbytes(tracker("D", "UPS", [detail("in_transit", "2025-03-02T10:00:00Z")] * 2)), "d"))
    assert dup.events.height == 2 and dup.events["event_id"].n_unique() == 1


SOUND_214 = (FIX / "som_x12_214_multi.edi").read_bytes()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["in_transit", "delivered", "2025-03-02T10:00:00Z", "Tracker", "Event", "tracker.updated"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["object", "status", "tracking_code", "tracking_details", "result", "description", "datetime",
                         "fulfillment_event", "fulfillment_events", "fulfillment_id", "happened_at", "payload",
                         "trackingDetail", "milestoneHistory", "identifier", "aftn", "code", "occurredAt",
                         "shipmentTrackingMilestoneChangedNotification", "latestMilestone", "tracking_location"]),
        inner, max_size=5),
    max_leaves=20)


@pytest.mark.parametrize("source", sorted(READERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(source, data):
    check(READERS[source](data, "fuzz"))


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.tuples(st.integers(0, len(SOUND_214) - 1), st.integers(0, 6), st.binary(max_size=3)),
                     max_size=4))
def test_damaged_214_never_raises_and_conserves(cuts):
    data = bytearray(SOUND_214)
    for pos, n, ins in cuts:
        data[pos:pos + n] = ins
    check(read_x12_214(bytes(data), "fuzz.edi"))


@pytest.mark.parametrize("source", ["easypost", "shopify", "amazon"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=JSON_VALUES)
def test_arbitrary_json_never_raises(source, doc):
    check(READERS[source](json.dumps(doc).encode(), "fuzz.json"))
