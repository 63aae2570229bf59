"""Tracking events in: one reader per source format, bytes -> normalised event rows + rejects. Pure, never raises.

Every reader is ``(data: bytes, source_file: str) -> TrackingFile(events, rejected, received)`` with
``received == events.height + rejected.height`` (counts conserve per file). A record is one status event:

| reader | source | record | location |
|---|---|---|---|
| :func:`read_x12_214` | ``x12_214`` | one AT7 of a sound 214 set (a damaged set is one rejected record) | ``ISA <ISA13> / ST <ST02> / LX <LX01>`` (``/ AT7 <k>`` for the k-th AT7 of a loop, k > 1) + segment, line |
| :func:`read_tracker_json` | ``easypost`` | one ``tracking_details`` entry (a Tracker without any: its own status) | JSON pointer, e.g. ``/result/tracking_details/0`` |
| :func:`read_shopify_fulfillment_event` | ``shopify`` | one fulfillment event | JSON pointer, e.g. ``/fulfillment_events/3`` |
| :func:`read_amazon_tracking_notification` | ``amazon`` | one milestone (``milestoneHistory`` entries; ``latestMilestone`` when it is not among them) | JSON pointer |

Output (``EVENT_SCHEMA``, the same for every source)
- ``event_id`` = sha256 of ``carrier|tracking_number|carrier_code|event_at`` (event_at as
  ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; an empty carrier as ""; a Shopify event, which has no tracking number,
  uses its ``shipment_ref``): the dedup key of ``core.tracking_events``. Duplicates inside one file are kept
  (both counted): dedup is the caller's, over everything it has stored.
- ``milestone`` one of :data:`~.milestones.MILESTONES`, or null for an informational code (an estimate, an
  appointment: see :mod:`.milestones`); ``exception_subtype`` only on EXCEPTION (null when the source does not
  say which kind).
- ``carrier_code`` the source's own code (X12 ``AT701/AT702``, EasyPost ``status/status_detail``, Shopify
  ``status``, Amazon ``code/subCode``); ``carrier_text`` its text (the message sent, else the code's definition).
- ``event_at`` UTC; ``event_local`` the time text as sent with its zone or code (X12: ``AT705 AT706 AT707``,
  plus the zone used for local time in brackets).
- ``carrier``: UPS / FEDEX / USPS / DHL when recognised (:func:`~.milestones.normalise_carrier`), else the
  SCAC or name as given; null for Shopify (the fulfillment knows it).
- ``shipment_ref``: X12 B1002 (the shipper's shipment id), EasyPost ``shipment_id``, Shopify
  ``fulfillment_id`` (the caller joins it to its package/shipment); ``tracking_number`` is null for Shopify.
- ``signed_by`` only on DELIVERED events; ``est_delivery_at`` the source's estimate as of this message.

X12 214 field decisions
- The envelope (several ISA interchanges, several ST sets, separators from each ISA, damaged sets rejected
  alone, stray segments) is the EDI channel's walker (:mod:`som_pipeline.ingest.x12.envelope`); only the set
  verdict is the 214's. A set that is not a 214 (an 850 handed to this reader) is rejected
  ``UNSUPPORTED_TRANSACTION_SET``; versions as the 850 reader (:mod:`~som_pipeline.ingest.x12.versions`).
- Tracking number: the LX loop's ``L11``/``REF`` with qualifier ``2I`` (tracking number), else ``CN``
  (carrier's reference / PRO), else the same in the header, else ``B1001``. ``shipment_ref`` = ``B1002``,
  SCAC = ``B1003``.
- Time: 004010+ ``AT705`` date (CCYYMMDD), ``AT706`` time, ``AT707`` time code; before 004010 ``AT705`` YYMMDD,
  ``AT706`` century, ``AT707`` time, ``AT708`` code. Codes with a fixed offset (``ES`` -5, ``ED`` -4, ``UT`` ...)
  and zone codes with daylight saving (``ET`` America/New_York, ``CT``, ``MT``, ``PT``, ``AT``, ``HT``...) as the
  850 reader reads DTM04. ``LT`` (or no code: "local time of the status") uses the AT7's ``MS1`` state or
  province (``MS102``) in :data:`STATE_ZONES` (one zone per state: the zone of most of its population; the
  few split states -- TX's El Paso, FL's panhandle, parts of IN, KY, TN, ND, SD, NE, KS, ID, OR, MI -- take
  that zone). An unknown code, or local time with no state we can place, is ``BAD_EVENT_TIME``: never
  read as UTC. A date without time is local midnight (``event_local`` shows no time was sent). A local
  time in the spring-forward gap takes the offset before the change (``fold=0``).
- Location: ``MS1`` after the AT7 (city, state, country). ``signed_by``: not mapped from X12 (no standard
  element; carriers put it in free text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from som_pipeline.hashing import sha256_series
from som_pipeline.ingest.common import DecodeError, Rejection, decode_text, parse_ts
from som_pipeline.ingest.jsondoc import (
    FileProblem,
    RecordProblem,
    dump_json,
    get_list,
    get_obj,
    get_text,
    read_json_document,
)
from som_pipeline.ingest.x12.envelope import EnvelopeWalker
from som_pipeline.ingest.x12.po850 import _TZ_FIXED, _TZ_ZONES, x12_date
from som_pipeline.ingest.x12.tokenizer import DIGITS, Segment, X12Error, looks_like_isa, skip_ws
from som_pipeline.ingest.x12.transaction_set import (
    OpenSet,
    SetSyntax,
    _check_se,
    _check_segments,
    rejection_reason,
)
from som_pipeline.ingest.x12.versions import Version, set_version, supported_list
from som_pipeline.tracking.milestones import (
    DELIVERED,
    EASYPOST_UNMAPPED,
    EXCEPTION,
    X12_APPOINTMENT_KEY,
    X12_AT7_REASON,
    amazon_key,
    code_table,
    easypost_key,
    normalise_carrier,
)
from som_pipeline.validation.approvals import REJECT_SCHEMA

SOURCES = ("x12_214", "easypost", "shopify", "amazon")
SET_214 = "214"

EVENT_SCHEMA: dict[str, Any] = {
    "event_id": pl.String, "source": pl.String, "carrier": pl.String, "tracking_number": pl.String,
    "shipment_ref": pl.String, "milestone": pl.String, "exception_subtype": pl.String,
    "carrier_code": pl.String, "carrier_text": pl.String, "event_at": pl.Datetime("us", "UTC"),
    "event_local": pl.String, "location_city": pl.String, "location_region": pl.String,
    "location_country": pl.String, "location_postal": pl.String, "signed_by": pl.String,
    "est_delivery_at": pl.Datetime("us", "UTC"), "source_file": pl.String, "location": pl.String, "raw": pl.String,
}

# New reason codes this module emits (to be listed in som_pipeline/reasons.py); the others it uses
# (EMPTY_FILE, BAD_ENCODING, INVALID_JSON, UNSUPPORTED_DOCUMENT, UNREADABLE_FILE, MISSING_FIELD, X12_*) exist.
NEW_REASONS: dict[str, str] = {
    "UNKNOWN_MILESTONE_CODE": "A tracking event's status code is in none of the milestone tables "
    "(som_pipeline/tracking/milestones.py): quarantined, never guessed, until it is mapped.",
    "MISSING_TRACKING_NUMBER": "A tracking event names no tracking number and no shipment reference "
    "(X12 B10/L11/REF, EasyPost tracking_code, Shopify fulfillment_id, Amazon identifier.aftn): it cannot be "
    "attached to a shipment.",
    "BAD_EVENT_TIME": "A tracking event's time is missing, not a date/time, or cannot be placed in UTC "
    "(an unknown X12 time code, or local time with no state/province to give its time zone).",
    "UNSUPPORTED_TRANSACTION_SET": "An X12 transaction set the reader it was routed to does not read (e.g. an "
    "850 in a 214 file): quarantined, acknowledged as not supported.",
}

# US states, DC, territories and Canadian provinces -> IANA zone (split states: the zone of most people)
STATE_ZONES: dict[str, str] = {
    **dict.fromkeys(("CT", "DE", "DC", "FL", "GA", "IN", "KY", "ME", "MD", "MA", "MI", "NH", "NJ", "NY", "NC", "OH",
                     "PA", "RI", "SC", "VT", "VA", "WV"), "America/New_York"),
    **dict.fromkeys(("AL", "AR", "IL", "IA", "KS", "LA", "MN", "MS", "MO", "NE", "ND", "OK", "SD", "TN", "TX",
                     "WI"), "America/Chicago"),
    **dict.fromkeys(("CO", "ID", "MT", "NM", "UT", "WY"), "America/Denver"),
    "AZ": "America/Phoenix",  # no daylight saving
    **dict.fromkeys(("CA", "NV", "OR", "WA"), "America/Los_Angeles"),
    "AK": "America/Anchorage", "HI": "Pacific/Honolulu", "PR": "America/Puerto_Rico", "VI": "America/St_Thomas",
    "GU": "Pacific/Guam", "AS": "Pacific/Pago_Pago", "MP": "Pacific/Saipan",
    # Canada
    **dict.fromkeys(("ON", "QC"), "America/Toronto"), "NS": "America/Halifax", "NB": "America/Moncton",
    "PE": "America/Halifax", "NL": "America/St_Johns", "MB": "America/Winnipeg", "SK": "America/Regina",
    "AB": "America/Edmonton", "BC": "America/Vancouver", "YT": "America/Whitehorse", "NT": "America/Yellowknife",
    "NU": "America/Iqaluit",
}
_US_CA = {"", "US", "USA", "CA", "CAN"}
ESTIMATE_CODES = frozenset({"AG", "X2"})  # AT701 codes whose date/time is an estimated delivery
_TIME = re.compile(r"(\d\d)(\d\d)(?:(\d\d)(\d{1,2})?)?")
MAX_RAW = 100_000


@dataclass
class TrackingFile:
    events: pl.DataFrame  # EVENT_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA (location, order_ref = tracking number, reason_code, message, raw)
    received: int  # records read: events.height + rejected.height


# ------------------------------------------------------------------------------------------------
# Shared: candidate rows (text) -> typed events + rejects, vectorised
# ------------------------------------------------------------------------------------------------
_CAND_COLS = ("source", "carrier", "tracking_number", "shipment_ref", "key", "reason_key", "carrier_code",
              "carrier_text", "event_ts", "event_local", "location_city", "location_region", "location_country",
              "location_postal", "signed_by", "est_delivery_ts", "location", "raw", "problem_code", "problem_message")
_CAND_SCHEMA = {c: pl.String for c in _CAND_COLS}


def _cand(**kw: Any) -> dict[str, Any]:
    return {c: kw.get(c) for c in _CAND_COLS}


def _reject(location: str, reason: str, message: str, raw: str | None, order_ref: str | None = None) -> dict[str, Any]:
    return {"location": location, "order_ref": order_ref, "reason_code": reason, "message": message,
            "raw": raw if raw is None or len(raw) <= MAX_RAW else raw[:MAX_RAW] + f"... ({len(raw):,} characters)"}


def _reason_frame() -> pl.DataFrame:
    return pl.DataFrame([(k, s, t) for k, (s, t) in X12_AT7_REASON.items()],
                        schema={"reason_key": pl.String, "_reason_subtype": pl.String, "_reason_text": pl.String},
                        orient="row")


def _finish(cands: list[dict[str, Any]], rejects: list[dict[str, Any]], source_file: str) -> TrackingFile:
    """Map codes, type times, flag the records that cannot be events, hash the event ids (all vectorised)."""
    df = pl.DataFrame(cands, schema=_CAND_SCHEMA)
    table = code_table().with_columns(pl.lit(True).alias("_known"))
    df = (df.join(table, on=["source", "key"], how="left", maintain_order="left")
          .join(_reason_frame(), on="reason_key", how="left", maintain_order="left")
          .with_columns(parse_ts("event_ts").alias("event_at"), parse_ts("est_delivery_ts").alias("est_delivery_at")))
    known = pl.col("_known").fill_null(False)
    no_ref = pl.col("tracking_number").is_null() & pl.col("shipment_ref").is_null()
    df = df.with_columns(
        pl.when(pl.col("problem_code").is_not_null()).then(pl.col("problem_code"))
        .when(no_ref).then(pl.lit("MISSING_TRACKING_NUMBER"))
        .when(~known).then(pl.lit("UNKNOWN_MILESTONE_CODE"))
        .when(pl.col("event_at").is_null()).then(pl.lit("BAD_EVENT_TIME"))
        .alias("reason_code"),
        pl.when(pl.col("problem_code").is_not_null()).then(pl.col("problem_message"))
        .when(no_ref).then(pl.lit("the event names no tracking number and no shipment reference: it cannot be "
                                  "attached to a shipment"))
        .when(~known).then(pl.format("{} status code '{}' is not a known milestone code: quarantined (not guessed) "
                                     "until it is mapped in som_pipeline/tracking/milestones.py",
                                     pl.col("source"), pl.col("key").fill_null("(none)")))
        .when(pl.col("event_ts").is_null()).then(pl.lit("the event has no time"))
        .otherwise(pl.format("event time '{}' is not a date/time", pl.col("event_ts")))
        .alias("message"),
    )
    bad = df.filter(pl.col("reason_code").is_not_null())
    rejected = pl.concat([
        pl.DataFrame(rejects, schema=REJECT_SCHEMA),
        bad.select("location", pl.coalesce("tracking_number", "shipment_ref").alias("order_ref"), "reason_code",
                   "message", "raw"),
    ])
    ok = df.filter(pl.col("reason_code").is_null())
    is_exc = pl.col("milestone") == EXCEPTION
    reason_text = pl.when(pl.col("_reason_text").is_not_null()).then(pl.lit("; ") + pl.col("_reason_text"))
    ok = ok.with_columns(
        pl.when(is_exc).then(pl.coalesce("_reason_subtype", "exception_subtype")).alias("exception_subtype"),
        pl.coalesce("carrier_text", pl.concat_str([pl.col("code_text"), reason_text], ignore_nulls=True))
        .alias("carrier_text"),
        pl.when(pl.col("milestone") == DELIVERED).then(pl.col("signed_by")).alias("signed_by"),
        pl.lit(source_file, dtype=pl.String).alias("source_file"),
    )
    key = pl.concat_str([pl.col("carrier").fill_null(""), pl.coalesce("tracking_number", "shipment_ref"),
                         pl.col("carrier_code").fill_null(""),
                         pl.col("event_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")], separator="|")
    ok = ok.with_columns(sha256_series(key, ok).alias("event_id")).select(list(EVENT_SCHEMA))
    return TrackingFile(ok.cast(EVENT_SCHEMA), rejected.cast(REJECT_SCHEMA), df.height + len(rejects))


def _file_reject(reason: str, message: str, location: str = "whole file", raw: str | None = None) -> TrackingFile:
    return _finish([], [_reject(location, reason, message, raw)], "")


def _guard(read: Callable[[bytes, str], TrackingFile], data: bytes, source_file: str) -> TrackingFile:
    """Run a reader; an unexpected error (a bug, not bad input) still ends as one rejected record."""
    try:
        return read(data, source_file)
    except Exception as e:  # noqa: BLE001 - the contract: bad input never raises
        return _file_reject("UNREADABLE_FILE", f"internal error reading the file ({type(e).__name__}: {e}); "
                                               "please report it", raw=_printable(data))


def _printable(data: bytes) -> str:
    head = data[:4096].decode("utf-8", errors="backslashreplace")
    text = "".join(ch if (ch >= " " or ch in "\t\r\n") else f"\\x{ord(ch):02x}" for ch in head)
    return text + (f"... ({len(data):,} bytes)" if len(data) > 4096 else "")


# ------------------------------------------------------------------------------------------------
# X12 214
# ------------------------------------------------------------------------------------------------
def read_x12_214(data: bytes, source_file: str) -> TrackingFile:
    """X12 214 carrier shipment status messages (any number of interchanges and sets) -> one event per AT7."""
    return _guard(_read_x12_214, data, source_file)


def _read_x12_214(data: bytes, source_file: str) -> TrackingFile:
    try:
        text, _ = decode_text(data)
    except DecodeError as e:
        return _file_reject(e.reason_code, e.message, raw=_printable(data) if e.reason_code == "BAD_ENCODING" else None)
    text = text.lstrip("\ufeff")
    walker = _Walker214(text)
    try:
        walker.run()
    except X12Error as e:
        pos = skip_ws(text, 0)
        where = f"ISA segment (line {1 + text.count(chr(10), 0, pos)})" if looks_like_isa(text, pos) else "whole file"
        return _finish([], [_reject(where, "X12_SYNTAX", f"{e}: the file cannot be split into segments", text)],
                       source_file)
    rejects = [_from_rejection(r) for r in walker.rejected] + walker.set_rejects
    return _finish(walker.rows, rejects, source_file)


def _from_rejection(r: Rejection) -> dict[str, Any]:
    return _reject(r.location, r.reason_code, r.message, r.raw, r.order_ref)


class _Walker214(EnvelopeWalker):
    """The EDI channel's envelope walker with a 214 verdict per set (instead of the 850 one)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.set_rejects: list[dict[str, Any]] = []

    def _close_set(self, se: Segment | None) -> None:
        s = self.cur
        if s is None:
            return
        self.cur = None
        self._note_repeated_st02(s)
        rows, reject, outcome = judge_214(s, se, self.text)
        self.rows.extend(rows)
        if reject is not None:
            self.set_rejects.append(reject)
        s.group["sets"].append(outcome)


def judge_214(s: OpenSet, se: Segment | None, text: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None,
                                                                     dict[str, Any]]:
    """One closed set -> (candidate event rows, the set's rejection or None, its outcome entry for a 997)."""
    segs = s.segments
    st = segs[0]
    st01, st02 = st.el(1).strip(), st.el(2).strip()
    set_path = f"ISA {s.ic['isa_control_number']} / ST {st02 or '?'}"
    location = f"{set_path} (segments {st.no}-{segs[-1].no}, line {st.line})"
    raw = text[st.start:segs[-1].end]
    version, sent = set_version(s.group.get("version"), st.el(3))
    syn = _syntax_214(segs, se, st01, st02, s.group["implicit"], version, sent)
    outcome: dict[str, Any] = {"ordinal": s.ordinal, "record_id": f"{set_path} #{s.ordinal}", "location": location,
                               "st01": st01, "st02": st02, "ak3": syn.ak3, "version": version.code if version else sent}
    b10 = next((x for x in segs if x.id == "B10"), None)
    order_ref = (b10.el(1).strip() or b10.el(2).strip() or None) if b10 else None
    if not syn.problems and version is not None:
        rows, problem = _map_214(segs, s.ic["isa_control_number"], st02, version, text)
        if problem is None:
            outcome.update(parse_status="accepted", reason_code=None, message=None, ak5_codes=[])
            return rows, None, outcome
        syn.problems.append(problem)
        syn.ak5.append("5")
    reason, message = rejection_reason(syn.problems)
    outcome.update(parse_status="rejected", reason_code=reason, message=message,
                   ak5_codes=list(dict.fromkeys(syn.ak5))[:5])
    return [], _reject(location, reason, message, raw, order_ref), outcome


def _syntax_214(segs: list[Segment], se: Segment | None, st01: str, st02: str, implicit: bool,
                version: Version | None, sent: str) -> SetSyntax:
    out = SetSyntax()
    if implicit:
        out.problems.append(("X12_SYNTAX", "the transaction set is not inside a functional group (no GS before ST)"))
    if st01 != SET_214 and DIGITS.match(st01):
        out.problems.append(("UNSUPPORTED_TRANSACTION_SET", f"transaction set {st01} is not a carrier shipment status "
                                                            "message (214): not read by the tracking reader"))
        out.ak5.append("1")
    elif st01 != SET_214:
        out.problems.append(("X12_SYNTAX", f"ST01 {st01!r} is not a transaction set identifier"))
        out.ak5.append("6")
    if not st02:
        out.problems.append(("X12_SYNTAX", "ST02 (transaction set control number) is missing"))
        out.ak5.append("7")
    if out.problems:
        return out
    if version is None:
        out.problems.append(("X12_VERSION_UNSUPPORTED", f"X12 version {sent or '(none: GS08 is empty)'!r} of this 214 "
                                                        f"is not supported (supported: {supported_list()})"))
        out.ak5.append("1")
        return out
    _check_segments(out, segs)
    _check_se(out, segs, se)
    return out


@dataclass
class _At7:
    seg: Segment
    lx: str
    k: int  # ordinal of the AT7 in its LX loop
    ms1: Segment | None = None
    last: Segment | None = None


def _map_214(segs: list[Segment], isa: str, st02: str, version: Version,
             text: str) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """Candidate rows of a sound 214 set (one per AT7), or a set-level problem (reason, message)."""
    b10: Segment | None = None
    header_refs: dict[str, str] = {}
    loops: list[tuple[str, dict[str, str], list[_At7]]] = []
    for seg in segs[1:-1]:
        sid = seg.id
        if sid == "LX":
            loops.append((seg.el(1).strip() or "?", {}, []))
            continue
        if not loops:
            if sid == "B10" and b10 is None:
                b10 = seg
            elif sid in ("L11", "REF"):
                _note_ref(header_refs, seg)
            if sid != "AT7":
                continue
            loops.append(("(none)", {}, []))  # an AT7 outside any LX loop: still one record
        lx, refs, ats = loops[-1]
        if sid == "AT7":
            ats.append(_At7(seg, lx, len(ats) + 1, last=seg))
        elif sid == "MS1" and ats and ats[-1].ms1 is None:
            ats[-1].ms1 = seg
            ats[-1].last = seg
        elif sid in ("L11", "REF"):
            _note_ref(refs, seg)
        elif ats and sid in ("MS2", "K1", "AT5", "Q7", "MAN", "AT8"):
            ats[-1].last = seg
    if not any(ats for _, _, ats in loops):
        return [], ("MISSING_FIELD", "the 214 has no AT7 (shipment status) segment: no status to record")
    b1001 = b10.el(1).strip() if b10 else ""
    shipment_ref = (b10.el(2).strip() if b10 else "") or None
    scac = (b10.el(3).strip() if b10 else "") or None
    rows = []
    for _, refs, ats in loops:
        tracking = (refs.get("2I") or refs.get("CN") or header_refs.get("2I") or header_refs.get("CN") or b1001
                    or None)
        for a in ats:
            rows.append(_at7_row(a, isa, st02, version, text, tracking, shipment_ref, scac))
    return rows, None


def _note_ref(refs: dict[str, str], seg: Segment) -> None:
    """L11: L1101 value, L1102 qualifier; REF: REF01 qualifier, REF02 value (the first of each qualifier)."""
    q, v = (seg.el(2), seg.el(1)) if seg.id == "L11" else (seg.el(1), seg.el(2))
    if q.strip() and v.strip():
        refs.setdefault(q.strip().upper(), v.strip())


def _at7_row(a: _At7, isa: str, st02: str, version: Version, text: str, tracking: str | None,
             shipment_ref: str | None, scac: str | None) -> dict[str, Any]:
    seg = a.seg
    at701, at702, at703, at704 = (seg.el(i).strip() for i in (1, 2, 3, 4))
    if version.date_digits == 8:
        d, century, t, tc = seg.el(5).strip(), "", seg.el(6).strip(), seg.el(7).strip().upper()
    else:  # before 004010: AT705 YYMMDD, AT706 century, AT707 time, AT708 time code
        d, century, t, tc = seg.el(5).strip(), seg.el(6).strip(), seg.el(7).strip(), seg.el(8).strip().upper()
    ms1 = a.ms1
    city, region, country = ((ms1.el(1).strip() or None, ms1.el(2).strip() or None, ms1.el(3).strip() or None)
                             if ms1 else (None, None, None))
    location = (f"ISA {isa} / ST {st02} / LX {a.lx}" + (f" / AT7 {a.k}" if a.k > 1 else "")
                + f" (segment {seg.no}, line {seg.line})")
    if at701:
        key, reason_key, code = at701, at702 or None, f"{at701}/{at702}" if at702 else at701
    elif at703:
        key, reason_key, code = X12_APPOINTMENT_KEY, at704 or None, f"AT703 {at703}/{at704}" if at704 else f"AT703 {at703}"
    else:
        key, reason_key, code = None, None, None
    event_ts, local, problem = _x12_time(seg, d, century, t, tc, version, region, country)
    if key is None:
        problem = ("MISSING_FIELD", f"AT7 (segment {seg.no}, line {seg.line}) has neither AT701 (shipment status) "
                                    "nor AT703 (appointment status)")
    return _cand(
        source="x12_214", carrier=normalise_carrier(scac), tracking_number=tracking, shipment_ref=shipment_ref,
        key=key, reason_key=reason_key, carrier_code=code, event_ts=event_ts, event_local=local,
        location_city=city, location_region=region, location_country=country,
        est_delivery_ts=event_ts if at701 in ESTIMATE_CODES else None, location=location,
        raw=text[seg.start:(a.last or seg).end],
        problem_code=problem[0] if problem else None, problem_message=problem[1] if problem else None)


def _x12_time(seg: Segment, d: str, century: str, t: str, tc: str, version: Version, region: str | None,
              country: str | None) -> tuple[str | None, str | None, tuple[str, str] | None]:
    """(UTC ISO text, local text as sent, problem) of an AT7's date/time/time code."""
    where = f"AT7 (segment {seg.no}, line {seg.line})"
    local = " ".join(x for x in (d, t, tc) if x) or None
    if not d:
        return None, local, ("BAD_EVENT_TIME", f"{where}: AT705 (date of the status) is empty")
    day, code = x12_date(d, version, century)
    if day is None:
        why = {"4": "too short", "5": "too long"}.get(code or "", "not a calendar date")
        return None, local, ("BAD_EVENT_TIME", f"{where}: date '{d}' is {why} (X12 {version.code} dates are "
                                               f"{version.date_format})")
    m = _TIME.fullmatch(t) if t else None
    if t and (m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59):
        return None, local, ("BAD_EVENT_TIME", f"{where}: time '{t}' is not HHMM, HHMMSS or HHMMSSd..d")
    hh, mi, ss, frac = (m.groups() if m else ("00", "00", None, None))
    micro = int((frac or "0").ljust(6, "0")) if frac else 0
    y, mo, dd = (int(x) for x in day.split("-"))
    naive = datetime(y, mo, dd, int(hh), int(mi), int(ss or 0), micro)
    if tc in _TZ_FIXED:
        tz: Any = timezone(timedelta(minutes=round(_TZ_FIXED[tc] * 60)))
    elif tc in _TZ_ZONES:
        tz = ZoneInfo(_TZ_ZONES[tc])
    elif tc in ("LT", ""):
        st = (region or "").upper()
        zone = STATE_ZONES.get(st) if (country or "").upper() in _US_CA else None
        if zone is None:
            what = "AT707 'LT' (local time)" if tc else "no time code (local time)"
            place = (f"MS1 state/province {region!r}" + (f" country {country!r}" if country else "")
                     if region or country else "no MS1 location")
            return None, local, ("BAD_EVENT_TIME", f"{where}: {what} with {place}: the time zone is unknown, "
                                                   "the time cannot be placed in UTC")
        tz = ZoneInfo(zone)
        local = f"{local} [{zone}]"
    else:
        return None, local, ("BAD_EVENT_TIME", f"{where}: time code '{tc}' is not one the reader converts "
                                               "(fixed-offset and US/Canada zone codes, LT)")
    try:
        return naive.replace(tzinfo=tz).astimezone(UTC).isoformat(), local, None
    except (OverflowError, ValueError):  # e.g. 9999-12-31 23:00 ET is past the last representable instant
        return None, local, ("BAD_EVENT_TIME", f"{where}: {d} {t} {tc} is out of the representable time range")


# ------------------------------------------------------------------------------------------------
# JSON sources: shared walking
# ------------------------------------------------------------------------------------------------
def _read_json(data: bytes) -> tuple[Any, TrackingFile | None]:
    try:
        doc, _, _ = read_json_document(data)
    except FileProblem as e:
        return None, _file_reject(e.reason_code, e.message, e.location, e.raw)
    return doc, None


def _loc_text(v: Any) -> str | None:
    return v.strip() or None if isinstance(v, str) else None


# ------------------------------------------------------------------------------------------------
# EasyPost trackers
# ------------------------------------------------------------------------------------------------
def read_tracker_json(data: bytes, source_file: str) -> TrackingFile:
    """EasyPost Tracker objects (one, a list, ``{"trackers": [...]}``) or ``tracker.updated``/``tracker.created``
    webhook Events (``result`` is the Tracker) -> one event per ``tracking_details`` entry."""
    return _guard(_read_tracker_json, data, source_file)


def _read_tracker_json(data: bytes, source_file: str) -> TrackingFile:
    doc, problem = _read_json(data)
    if problem is not None:
        return problem
    if isinstance(doc, list):
        items = [(f"/{i}", x) for i, x in enumerate(doc)]
    elif isinstance(doc, dict) and isinstance(doc.get("trackers"), list):
        items = [(f"/trackers/{i}", x) for i, x in enumerate(doc["trackers"])]
    else:
        items = [("", doc)]
    cands: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for ptr, item in items:
        tracker, ptr, why = _tracker_of(item, ptr)
        if tracker is None:
            rejects.append(_reject(ptr or "/", "UNSUPPORTED_DOCUMENT", why or "", _dump(item)))
            continue
        try:
            _tracker_rows(tracker, ptr, cands, rejects)
        except RecordProblem as e:
            rejects.append(_reject(ptr or "/", e.reason_code, e.message, _dump(tracker),
                                   _safe_text(tracker, "tracking_code")))
    return _finish(cands, rejects, source_file)


def _tracker_of(item: Any, ptr: str) -> tuple[dict[str, Any] | None, str, str | None]:
    if not isinstance(item, dict):
        return None, ptr, f"{ptr or 'the document'} is not an EasyPost Tracker or Event object"
    obj = item.get("object")
    if obj == "Event":
        desc = item.get("description")
        if desc not in ("tracker.updated", "tracker.created"):
            return None, ptr, f"EasyPost event {desc!r} is not a tracker event (tracker.updated / tracker.created)"
        result = item.get("result")
        if not isinstance(result, dict):
            return None, ptr, "the tracker event has no 'result' Tracker object"
        return result, f"{ptr}/result", None
    if obj == "Tracker" or (obj is None and ("tracking_code" in item or "tracking_details" in item)):
        return item, ptr, None
    return None, ptr, f"{ptr or 'the document'} is an EasyPost {obj!r} object, not a Tracker"


def _tracker_rows(tr: dict[str, Any], ptr: str, cands: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
    tracking = get_text(tr, "tracking_code", ptr)
    head = {"source": "easypost", "carrier": normalise_carrier(get_text(tr, "carrier", ptr)),
            "tracking_number": tracking, "shipment_ref": get_text(tr, "shipment_id", ptr),
            "signed_by": get_text(tr, "signed_by", ptr), "est_delivery_ts": get_text(tr, "est_delivery_date", ptr)}
    details = get_list(tr, "tracking_details", ptr)
    if not details:  # no history: the tracker's own status is the one event
        cands.append(_easypost_cand(head, tr.get("status"), tr.get("status_detail"), None,
                                    tr.get("updated_at") or tr.get("created_at"), None, ptr, _dump(tr)))
        return
    for j, det in enumerate(details):
        p = f"{ptr}/tracking_details/{j}"
        if not isinstance(det, dict):
            rejects.append(_reject(p, "UNSUPPORTED_DOCUMENT", f"{p} is not a TrackingDetail object", _dump(det),
                                   tracking))
            continue
        try:
            loc = get_obj(det, "tracking_location", p)
            cands.append(_easypost_cand(head, get_text(det, "status", p), get_text(det, "status_detail", p),
                                        get_text(det, "message", p), get_text(det, "datetime", p), loc, p, _dump(det)))
        except RecordProblem as e:
            rejects.append(_reject(p, e.reason_code, e.message, _dump(det), tracking))


def _easypost_cand(head: dict[str, Any], status: Any, detail: Any, message: str | None, when: Any,
                   loc: dict[str, Any] | None, ptr: str, raw: str) -> dict[str, Any]:
    status = _loc_text(status)
    detail = _loc_text(detail)
    problem: tuple[str, str] | None = None
    if status is None:
        problem = ("MISSING_FIELD", "the tracking detail has no status")
    elif status.lower() in EASYPOST_UNMAPPED:
        problem = ("UNKNOWN_MILESTONE_CODE", EASYPOST_UNMAPPED[status.lower()])
    loc = loc or {}
    return _cand(**head, key=easypost_key(status, detail),
                 carrier_code=f"{status}/{detail}" if detail else status, carrier_text=message,
                 event_ts=_loc_text(when), event_local=_loc_text(when),
                 location_city=_loc_text(loc.get("city")), location_region=_loc_text(loc.get("state")),
                 location_country=_loc_text(loc.get("country")), location_postal=_loc_text(loc.get("zip")),
                 location=ptr or "/", raw=raw,
                 problem_code=problem[0] if problem else None, problem_message=problem[1] if problem else None)


def _dump(v: Any) -> str | None:
    try:
        return dump_json(v)
    except Exception:  # noqa: BLE001 - only for the raw text of a rejected record
        return repr(v)[:MAX_RAW]


def _safe_text(obj: Any, key: str) -> str | None:
    return _loc_text(obj.get(key)) if isinstance(obj, dict) else None


# ------------------------------------------------------------------------------------------------
# Shopify fulfillment events
# ------------------------------------------------------------------------------------------------
def read_shopify_fulfillment_event(data: bytes, source_file: str) -> TrackingFile:
    """Shopify ``{"fulfillment_event": {...}}`` or ``{"fulfillment_events": [...]}`` (or a bare event / list)."""
    return _guard(_read_shopify, data, source_file)


def _read_shopify(data: bytes, source_file: str) -> TrackingFile:
    doc, problem = _read_json(data)
    if problem is not None:
        return problem
    if isinstance(doc, dict) and "fulfillment_event" in doc:
        items = [("/fulfillment_event", doc["fulfillment_event"])]
    elif isinstance(doc, dict) and isinstance(doc.get("fulfillment_events"), list):
        items = [(f"/fulfillment_events/{i}", x) for i, x in enumerate(doc["fulfillment_events"])]
    elif isinstance(doc, list):
        items = [(f"/{i}", x) for i, x in enumerate(doc)]
    elif isinstance(doc, dict) and "status" in doc and "fulfillment_id" in doc:
        items = [("", doc)]
    else:
        return _file_reject("UNSUPPORTED_DOCUMENT", "not a Shopify fulfillment event document (expected "
                                                    "'fulfillment_event' or 'fulfillment_events')", raw=_dump(doc))
    cands: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for ptr, ev in items:
        loc = ptr or "/"
        if not isinstance(ev, dict):
            rejects.append(_reject(loc, "UNSUPPORTED_DOCUMENT", f"{loc} is not a fulfillment event object", _dump(ev)))
            continue
        try:
            status = get_text(ev, "status", ptr)
            fid = get_text(ev, "fulfillment_id", ptr)
            when = get_text(ev, "happened_at", ptr)
            problem = None
            if status is None:
                problem = ("MISSING_FIELD", "the fulfillment event has no status")
            elif fid is None:
                problem = ("MISSING_TRACKING_NUMBER", "the fulfillment event has no fulfillment_id: it cannot be "
                                                      "attached to a shipment (Shopify events carry no tracking number)")
            cands.append(_cand(
                source="shopify", carrier=None, tracking_number=None, shipment_ref=fid,
                key=status.lower() if status else None, carrier_code=status, carrier_text=get_text(ev, "message", ptr),
                event_ts=when, event_local=when, location_city=get_text(ev, "city", ptr),
                location_region=get_text(ev, "province", ptr), location_country=get_text(ev, "country", ptr),
                location_postal=get_text(ev, "zip", ptr), est_delivery_ts=get_text(ev, "estimated_delivery_at", ptr),
                location=loc, raw=_dump(ev),
                problem_code=problem[0] if problem else None, problem_message=problem[1] if problem else None))
        except RecordProblem as e:
            rejects.append(_reject(loc, e.reason_code, e.message, _dump(ev), _safe_text(ev, "fulfillment_id")))
    return _finish(cands, rejects, source_file)


# ------------------------------------------------------------------------------------------------
# Amazon SP-API SHIPMENT_TRACKING_MILESTONE_CHANGED notifications
# ------------------------------------------------------------------------------------------------
AMAZON_NOTIFICATION_TYPE = "SHIPMENT_TRACKING_MILESTONE_CHANGED"
AMAZON_CARRIER = "AMAZON"  # the AFTN is Amazon's own tracking number (swiship.com)


def read_amazon_tracking_notification(data: bytes, source_file: str) -> TrackingFile:
    """An SP-API ``SHIPMENT_TRACKING_MILESTONE_CHANGED`` notification (or a list of them) -> one event per
    milestone of ``milestoneHistory`` (plus ``latestMilestone`` when it is not in the history).

    Tracking number = ``trackingDetail.identifier.aftn``; carrier ``AMAZON``; ``est_delivery_at`` = the end of
    the ``ESTIMATED_DELIVERY_DATE`` estimate's interval (the latest promised time)."""
    return _guard(_read_amazon, data, source_file)


def _read_amazon(data: bytes, source_file: str) -> TrackingFile:
    doc, problem = _read_json(data)
    if problem is not None:
        return problem
    items = [(f"/{i}", x) for i, x in enumerate(doc)] if isinstance(doc, list) else [("", doc)]
    cands: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for ptr, n in items:
        loc = ptr or "/"
        if not isinstance(n, dict):
            rejects.append(_reject(loc, "UNSUPPORTED_DOCUMENT", f"{loc} is not a notification object", _dump(n)))
            continue
        ntype = n.get("notificationType")
        if ntype is not None and ntype != AMAZON_NOTIFICATION_TYPE:
            rejects.append(_reject(loc, "UNSUPPORTED_DOCUMENT", f"notificationType {ntype!r} is not "
                                                                f"{AMAZON_NOTIFICATION_TYPE}", _dump(n)))
            continue
        try:
            _amazon_rows(n, ptr, cands, rejects)
        except RecordProblem as e:
            rejects.append(_reject(loc, e.reason_code, e.message, _dump(n)))
    return _finish(cands, rejects, source_file)


def _amazon_rows(n: dict[str, Any], ptr: str, cands: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
    p = f"{ptr}/payload/shipmentTrackingMilestoneChangedNotification"
    payload = get_obj(get_obj(n, "payload", ptr), "shipmentTrackingMilestoneChangedNotification", f"{ptr}/payload")
    td = get_obj(payload, "trackingDetail", p)
    p = f"{p}/trackingDetail"
    if not td:
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{p} is missing: not a shipment tracking notification")
    aftn = get_text(get_obj(td, "identifier", p), "aftn", f"{p}/identifier")
    est = None
    for e in get_list(td, "trackingEstimates", p):
        if isinstance(e, dict) and e.get("type") == "ESTIMATED_DELIVERY_DATE" and isinstance(e.get("estimatedInterval"),
                                                                                              dict):
            iv = e["estimatedInterval"]
            est = _loc_text(iv.get("endTime")) or _loc_text(iv.get("startTime"))
            break
    history = [(f"{p}/milestoneHistory/{j}", m) for j, m in enumerate(get_list(td, "milestoneHistory", p))]
    latest = td.get("latestMilestone")
    if latest is not None and not any(_same_milestone(latest, m) for _, m in history):
        history.append((f"{p}/latestMilestone", latest))
    if not history:
        raise RecordProblem("MISSING_FIELD", f"{p} has no milestone (milestoneHistory and latestMilestone are empty)")
    for q, m in history:
        if not isinstance(m, dict):
            rejects.append(_reject(q, "UNSUPPORTED_DOCUMENT", f"{q} is not a milestone object", _dump(m), aftn))
            continue
        try:
            st = get_obj(m, "status", q)
            code, sub = get_text(st, "code", f"{q}/status"), get_text(st, "subCode", f"{q}/status")
            addr = get_obj(get_obj(m, "location", q), "address", f"{q}/location")
            when = get_text(m, "occurredAt", q)
            problem = ("MISSING_FIELD", "the milestone has no status code") if code is None else None
            cands.append(_cand(
                source="amazon", carrier=AMAZON_CARRIER, tracking_number=aftn, shipment_ref=None, key=amazon_key(code),
                carrier_code=f"{code}/{sub}" if sub else code, carrier_text=get_text(st, "description", f"{q}/status"),
                event_ts=when, event_local=when, location_city=_loc_text(addr.get("city")),
                location_region=_loc_text(addr.get("region")) or _loc_text(addr.get("stateOrRegion")),
                location_country=_loc_text(addr.get("countryCode")), location_postal=_loc_text(addr.get("postalCode")),
                est_delivery_ts=est, location=q, raw=_dump(m),
                problem_code=problem[0] if problem else None, problem_message=problem[1] if problem else None))
        except RecordProblem as e:
            rejects.append(_reject(q, e.reason_code, e.message, _dump(m), aftn))


def _same_milestone(a: Any, b: Any) -> bool:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    sa, sb = a.get("status"), b.get("status")
    if not (isinstance(sa, dict) and isinstance(sb, dict)):
        return False
    return (sa.get("code"), sa.get("subCode"), a.get("occurredAt")) == (sb.get("code"), sb.get("subCode"),
                                                                         b.get("occurredAt"))


READERS: dict[str, Callable[[bytes, str], TrackingFile]] = {
    "x12_214": read_x12_214,
    "easypost": read_tracker_json,
    "shopify": read_shopify_fulfillment_event,
    "amazon": read_amazon_tracking_notification,
}
