"""The 850 transaction-set reader: one sound 850 set -> one raw row per PO1 (header repeated on each row).

850 field mapping (decisions)
- ``order_ref`` = ``"<ISA06 stripped>:<BEG03>"``: a PO number is only unique per trading partner.
  ``customer_ref`` = ISA06 stripped (the trading-partner id, always present and stable; N1*BY N104 is a
  buying-location code that varies by division, so it is not used). ``customer_po`` = BEG03.
- ``order_ts`` = BEG05 (``YYYY-MM-DD``, midnight UTC); a header ``DTM*004`` with a time wins
  (DTM02 + DTM03, DTM04 time code -> UTC offset; ``LT``/unknown codes: no offset = UTC). Dates follow the
  set's X12 version (:mod:`.versions`: ``YYMMDD`` with DTM05 century before 004010, ``CCYYMMDD`` from
  004010). A mapped date (BEG05, DTM*004, DTM*002) or time that breaks its version's rule or is not a
  calendar date rejects the set ``BAD_DATE``, its message naming the segment (e.g. ``BEG05 ... segment 3,
  line 3``) and its 997 AK3/AK4 pointing at that segment and element (AK4 code 4/5 length, 8 date, 9 time).
- ``currency``: header ``CUR`` (CUR01 = BY/SE preferred, else the first CUR's CUR02); line-level CUR inside
  PO1 loops must agree with it (else the set is rejected ``CURRENCY_MISMATCH``); with no CUR at all the
  X12 default for 004010 850 is used: ``USD``.
- ship-to = the header ``N1`` loop with N101 = ``ST``: N102 -> ship_to_name, N301/N302 -> line1/line2
  (a second N3 is appended to line2), N4 -> city/region/postal/country (no N404 -> null). N2 is not mapped.
  Ship-to N1 loops inside PO1 loops (line-level ship-to) are ignored.
- ``ship_method`` = first header TD5: TD505 (routing), else TD503 (carrier code), else TD512 (service
  level), else TD504 (transport method). ``ship_complete`` = CSH01 in {SC, N} -> "true" (other CSH01 ->
  "false"; no CSH -> null).
- line: ``line_ref`` = PO101, ``quantity`` = PO102, ``uom`` = PO103, ``unit_price`` = PO104 (absent ->
  null: priced later from the price list), ``sku`` from the PO106/PO107.. qualifier/id pairs by the
  trading partner's qualifier priority, placeholders skipped (:mod:`.products`; default VN, VP, SK, BP,
  IN, MG, UP, EN, UK, UA, else the first real id; an id with blanks only when there is no other);
  ``product_ids`` = every pair as JSON;
  ``description`` = first PID05 in the PO1 loop; ``requested_date`` = DTM*002 in the PO1 loop, else the
  header DTM*002.
- header/summary ``AMT*TT`` -> ``channel_total``; ``CTT01`` (number of PO1 lines) -> ``channel_line_count`` and
  ``CTT02`` (hash total of the PO102 quantities) -> ``channel_quantity_total``, kept as sent and reconciled
  (sql/reconciliation/channel_totals.sql). SAC, TAX, ITD and line AMT are not mapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from som_pipeline.ingest.x12.products import DEFAULT_RULES, SkuRules, id_pairs, pick_sku, product_ids_json
from som_pipeline.ingest.x12.tokenizer import DIGITS, Segment
from som_pipeline.ingest.x12.versions import DEFAULT_VERSION, Version

SUPPORTED_SET = "850"
DEFAULT_CURRENCY = "USD"  # X12 004010 850: amounts are US dollars unless a CUR segment says otherwise
_SHIP_TO_LOOP = {"N2", "N3", "N4", "NX2", "REF", "PER", "SI", "FOB", "TD1", "TD3", "TD4", "TD5", "PKG"}

# DTM04 time codes (X12 element 623) -> fixed UTC offsets (hours) or a zone with DST.
_TZ_FIXED = {
    "UT": 0, "GM": 0, "ES": -5, "ED": -4, "CS": -6, "CD": -5, "MS": -7, "MD": -6, "PS": -8, "PD": -7,
    "AS": -9, "AD": -8, "HS": -10, "HD": -9, "TS": -4, "TD": -3, "NS": -3.5, "ND": -2.5,
}
_TZ_ZONES = {
    "ET": "America/New_York", "CT": "America/Chicago", "MT": "America/Denver", "PT": "America/Los_Angeles",
    "AT": "America/Anchorage", "HT": "Pacific/Honolulu", "TT": "America/Halifax", "NT": "America/St_Johns",
}


class Unmapped(NamedTuple):
    """Why a syntactically sound 850 set cannot be mapped to rows."""

    reason: str
    message: str
    order_ref: str | None
    ak3: list[dict[str, Any]]  # 997 AK3 notes (segment id, position, code, elements)


@dataclass
class _Line:
    po1: Segment
    position: int  # segment position in the set (ST = 1)
    description: str | None = None
    requested: str | None = None
    cur: list[Segment] = field(default_factory=list)


@dataclass
class _Po850:
    """The segments of one 850 that the mapping uses, gathered in one pass, and the date errors found."""

    version: Version
    beg: Segment | None = None
    header_cur: list[Segment] = field(default_factory=list)
    dtm004: Segment | None = None
    dtm004_pos: int = 0
    header_requested: str | None = None
    td5: Segment | None = None
    csh: Segment | None = None
    total: str | None = None
    ctt: Segment | None = None
    ship: dict[str, str | None] | None = None
    lines: list[_Line] = field(default_factory=list)
    errors: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (message, 997 AK3 note)

    def date(self, seg: Segment, pos: int, i: int) -> str | None:
        """Element ``i`` of ``seg`` (a date, element 373) as ``YYYY-MM-DD`` by the version's rule; an error is
        recorded (and None returned) when it breaks the rule. DTM05 is the century where the version has it."""
        raw = seg.el(i).strip()
        if not raw:
            return None
        century = seg.el(5).strip() if seg.id == "DTM" and self.version.dtm_century else ""
        day, code = x12_date(raw, self.version, century)
        if code is not None:
            v = self.version
            why = {"4": f"too short for {v.date_format}", "5": f"too long for {v.date_format}",
                   "8": "not a calendar date"}[code]
            self._error(seg, pos, i, "373", code, raw,
                        f"{seg.id}{i:02d} '{raw}' (segment {seg.no}, line {seg.line}) is {why} "
                        f"(X12 {v.code} dates are {v.date_format})")
        return day

    def _error(self, seg: Segment, pos: int, i: int, ref: str, code: str, raw: str, message: str) -> None:
        self.errors.append((message, {"segment_id": seg.id, "position": pos, "code": "8",
                                      "elements": [{"position": i, "code": code, "ref": ref, "value": raw}]}))


def map_850(segs: list[Segment], sender: str, path: str, meta: dict[str, Any], version: Version = DEFAULT_VERSION,
            sku_rules: SkuRules = DEFAULT_RULES) -> list[dict[str, Any]] | Unmapped:
    """Rows of a sound 850 set (ST..SE; each starts with the record's ``meta`` columns), or :class:`Unmapped`.

    ``version``: the set's X12 release (date rules); ``sku_rules``: which product id is the SKU."""
    po = _read_850(segs, version)
    po_number = po.beg.el(3).strip() if po.beg else ""
    order_ref = f"{sender}:{po_number}" if po_number else None
    if not po.lines:
        pos = next((i for i, s in enumerate(segs, 1) if s.id == "CTT"), len(segs))
        return Unmapped("NO_LINES", "the purchase order has no PO1 (line item) segments", order_ref,
                        [{"segment_id": "PO1", "position": pos, "code": "3", "elements": []}])
    missing = _missing_beg(po, segs)
    if missing is not None:
        return Unmapped("MISSING_FIELD", missing[0], order_ref, [missing[1]])
    order_ts = _order_ts(po)
    if po.errors:
        return Unmapped("BAD_DATE", "; ".join(m for m, _ in po.errors), order_ref, [n for _, n in po.errors])
    currency, mismatch = _currency(po)
    if mismatch is not None:
        return Unmapped("CURRENCY_MISMATCH", mismatch, order_ref, [])
    header: dict[str, Any] = {
        **meta,
        "order_ref": order_ref,
        "order_ts": order_ts,
        "customer_ref": sender or None,
        "customer_po": po_number or None,
        "currency": currency,
        **(po.ship or {}),
        "ship_method": _ship_method(po.td5),
        "ship_complete": _ship_complete(po.csh),
        "channel_total": po.total,
        "channel_line_count": (po.ctt.el(1).strip() or None) if po.ctt else None,
        "channel_quantity_total": (po.ctt.el(2).strip() or None) if po.ctt else None,
    }
    priority = sku_rules.priority_for(sender)
    return [_line_row(header, path, k, ln, po.header_requested, priority, sku_rules)
            for k, ln in enumerate(po.lines, 1)]


def _missing_beg(po: _Po850, segs: list[Segment]) -> tuple[str, dict[str, Any]] | None:
    """BEG (mandatory), its BEG03 PO number and BEG05 date (a DTM*004 date may stand in for BEG05): the
    message and the 997 AK3 note (AK304 3 = mandatory segment missing; AK403 1 = mandatory element missing)."""
    beg = po.beg
    if beg is None:
        return ("the set has no BEG segment: no PO number (order_ref) and no order date",
                {"segment_id": "BEG", "position": 2, "code": "3", "elements": []})
    pos = next(i for i, s in enumerate(segs, 1) if s is beg)
    where = f"(segment {beg.no}, line {beg.line})"
    if not beg.el(3).strip():
        return (f"BEG03 (PO number, the order_ref) is empty {where}",
                {"segment_id": "BEG", "position": pos, "code": "8", "elements": [{"position": 3, "code": "1"}]})
    if not beg.el(5).strip() and (po.dtm004 is None or not po.dtm004.el(2).strip()):
        return (f"BEG05 (purchase order date, the order_ts) is empty and no DTM*004 gives it {where}",
                {"segment_id": "BEG", "position": pos, "code": "8", "elements": [{"position": 5, "code": "1"}]})
    return None


def order_ref_of(segs: list[Segment], sender: str) -> str | None:
    """The order reference of a set that is rejected before mapping (first BEG's BEG03)."""
    beg = next((s for s in segs if s.id == "BEG"), None)
    po = beg.el(3).strip() if beg else ""
    return f"{sender}:{po}" if po else None


# ------------------------------------------------------------------------------------------------
# One pass over the set: PO1 loops, the ship-to N1 loop, header segments
# ------------------------------------------------------------------------------------------------
def _read_850(segs: list[Segment], version: Version) -> _Po850:
    po = _Po850(version)
    in_ship = False
    summary = False
    for pos, seg in enumerate(segs[1:-1], 2):
        sid = seg.id
        if sid == "PO1":
            po.lines.append(_Line(seg, pos))
            in_ship = False
            continue
        if sid == "CTT":
            summary = True
            po.ctt = po.ctt or seg
        if po.lines and not summary:
            _read_line_segment(po, po.lines[-1], seg, pos)
            continue
        if sid == "N1":
            in_ship = seg.el(1).strip() == "ST" and po.ship is None and not summary
            if in_ship:
                po.ship = {"ship_to_name": seg.el(2) or None}
            continue
        if in_ship and po.ship is not None and sid in _SHIP_TO_LOOP:
            _read_ship_to_segment(po, po.ship, seg)
            continue
        in_ship = False
        _read_header_segment(po, seg, pos)
    return po


def _read_line_segment(po: _Po850, line: _Line, seg: Segment, pos: int) -> None:
    """A segment inside a PO1 loop: PID, DTM*002 and CUR are used."""
    sid = seg.id
    if sid == "PID" and line.description is None and seg.el(5).strip():
        line.description = seg.el(5)
    elif sid == "DTM" and seg.el(1) == "002" and line.requested is None:
        line.requested = po.date(seg, pos, 2)
    elif sid == "CUR":
        line.cur.append(seg)


def _read_ship_to_segment(po: _Po850, ship: dict[str, str | None], seg: Segment) -> None:
    """A segment of the header N1*ST loop: N3 (address lines), N4 (city...), TD5."""
    sid = seg.id
    if sid == "N3":
        if ship.get("ship_to_line1") is None:
            ship["ship_to_line1"] = seg.el(1) or None
            ship["ship_to_line2"] = seg.el(2) or None
        else:
            more = ", ".join(v for v in (seg.el(1), seg.el(2)) if v)
            ship["ship_to_line2"] = ", ".join(v for v in (ship.get("ship_to_line2"), more) if v) or None
    elif sid == "N4" and "ship_to_city" not in ship:
        ship.update(ship_to_city=seg.el(1) or None, ship_to_region=seg.el(2) or None,
                    ship_to_postal_code=seg.el(3) or None, ship_to_country=seg.el(4) or None)
    elif sid == "TD5" and po.td5 is None:
        po.td5 = seg


def _read_header_segment(po: _Po850, seg: Segment, pos: int) -> None:
    """A header (or summary) segment outside the loops: the first of each kind counts."""
    sid = seg.id
    if sid == "BEG" and po.beg is None:
        po.beg = seg
        po.date(seg, pos, 5)  # checked here, where its position is known
    elif sid == "CUR":
        po.header_cur.append(seg)
    elif sid == "DTM" and seg.el(1) == "004" and po.dtm004 is None:
        po.dtm004, po.dtm004_pos = seg, pos
    elif sid == "DTM" and seg.el(1) == "002" and po.header_requested is None:
        po.header_requested = po.date(seg, pos, 2)
    elif sid == "TD5" and po.td5 is None:
        po.td5 = seg
    elif sid == "CSH" and po.csh is None:
        po.csh = seg
    elif sid == "AMT" and seg.el(1).strip() == "TT" and po.total is None:
        po.total = seg.el(2) or None


# ------------------------------------------------------------------------------------------------
# Header fields
# ------------------------------------------------------------------------------------------------
def _currency(po: _Po850) -> tuple[str | None, str | None]:
    """``(currency, None)``, or ``(None, why)`` when the currencies disagree. Header CUR; line CURs must
    agree with it (or, without one, with each other); none at all -> the 004010 default (USD)."""
    currency = _currency_of(po.header_cur)
    line_currencies = {c for c in (_currency_of(ln.cur) for ln in po.lines) if c}
    if currency is not None and line_currencies - {currency}:
        return None, f"line CUR {sorted(line_currencies - {currency})} differs from the header currency {currency}"
    if currency is None and len(line_currencies) > 1:
        return None, f"lines are in different currencies {sorted(line_currencies)}"
    if currency is None:
        currency = next(iter(line_currencies)) if line_currencies else DEFAULT_CURRENCY
    return currency, None


def _currency_of(cur_segments: list[Segment]) -> str | None:
    for c in cur_segments:
        if c.el(1).strip() in ("BY", "SE") and c.el(2).strip():
            return c.el(2).strip()
    for c in cur_segments:
        if c.el(2).strip():
            return c.el(2).strip()
    return None


def _order_ts(po: _Po850) -> str | None:
    """DTM*004 with a time, else BEG05, else DTM*004's date (BEG05 was checked when it was read)."""
    dtm004, beg, pos = po.dtm004, po.beg, po.dtm004_pos
    day004 = po.date(dtm004, pos, 2) if dtm004 is not None else None
    if day004 is not None and dtm004 is not None and dtm004.el(3).strip():
        t = dtm004.el(3).strip()
        ts = _x12_timestamp(day004, t, dtm004.el(4))
        if ts is None:
            po._error(dtm004, pos, 3, "337", "9", t, f"DTM03 '{t}' (segment {dtm004.no}, line {dtm004.line}) is "
                                                     "not a time (HHMM, HHMMSS or HHMMSSd..d)")
        return ts
    beg_day = x12_date(beg.el(5), po.version, "")[0] if beg is not None else None
    return beg_day or day004


def _ship_method(td5: Segment | None) -> str | None:
    if td5 is None:
        return None
    return next((td5.el(i).strip() for i in (5, 3, 12, 4) if td5.el(i).strip()), None)


def _ship_complete(csh: Segment | None) -> str | None:
    if csh is None:
        return None
    return "true" if csh.el(1).strip() in ("SC", "N") else "false"


def x12_date(s: str, version: Version, century: str = "") -> tuple[str | None, str | None]:
    """``(YYYY-MM-DD, None)`` or ``(None, 997 AK4 code)``: 4 too short, 5 too long, 8 not a date.

    ``version`` gives the length (6 = YYMMDD, 8 = CCYYMMDD); a six-digit date takes ``century`` (DTM05, two
    digits) when given, else the POSIX ``%y`` rule (69-99 -> 19xx, 00-68 -> 20xx)."""
    s = s.strip()
    if not s:
        return None, None
    if not DIGITS.match(s):
        return None, "8"
    if len(s) != version.date_digits:
        return None, "4" if len(s) < version.date_digits else "5"
    if len(s) == 6:
        cc = century if len(century) == 2 and DIGITS.match(century) else ("19" if int(s[:2]) >= 69 else "20")
        s = cc + s
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:])).isoformat(), None
    except ValueError:
        return None, "8"


def _x12_timestamp(day: str, t: str, code: str) -> str | None:
    """``day`` + DTM03 time (HHMM, HHMMSS, HHMMSSd..d) + the DTM04 offset; None when the time is not one."""
    m = re.fullmatch(r"(\d\d)(\d\d)(?:(\d\d)(\d{1,2})?)?", t)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        return None
    hh, mi, ss, frac = m.groups()
    ts = f"{day}T{hh}:{mi}:{ss or '00'}" + (f".{frac}" if frac else "")
    return ts + _tz_offset(day, code.strip().upper())


def _tz_offset(day: str, code: str) -> str:
    hours: float | None = _TZ_FIXED.get(code)
    if hours is None and code in _TZ_ZONES:
        try:
            d = date.fromisoformat(day)
            off = ZoneInfo(_TZ_ZONES[code]).utcoffset(datetime(d.year, d.month, d.day, 12))
            hours = off.total_seconds() / 3600 if off is not None else None
        except (ValueError, KeyError, OSError):
            hours = None
    if hours is None:
        return ""  # LT (local time), numeric or unknown codes: no offset (read as UTC)
    minutes = round(hours * 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ------------------------------------------------------------------------------------------------
# Line fields
# ------------------------------------------------------------------------------------------------
def _line_row(header: dict[str, Any], path: str, k: int, ln: _Line, header_requested: str | None,
              priority: tuple[str, ...], rules: SkuRules) -> dict[str, Any]:
    p = ln.po1
    pairs = id_pairs(p.elements)
    return {
        **header,
        "location": f"{path} > PO1 #{k} (segment {p.no}, line {p.line})",
        "line_ref": p.el(1) or None,
        "sku": pick_sku(pairs, priority, rules),
        "product_ids": product_ids_json(pairs),
        "quantity": p.el(2) or None,
        "uom": p.el(3) or None,
        "unit_price": p.el(4) or None,
        "description": ln.description,
        "requested_date": ln.requested or header_requested,
    }
