"""EDI channel: ANSI X12 004010 850 purchase orders -> raw rows, and the 997 that answers them.

The module has three small parts, all pure functions of the text they are given:

1. **Tokenizer** (:func:`_read_isa`, :func:`_next_segment`): the ISA segment declares the separators
   (element = the character after ``ISA``, repetition = ISA11 when it is not a letter/digit, component =
   ISA16, segment terminator = the character after ISA16). Nothing is hard-coded: ``|``, ``^``, a
   newline as terminator all work. Segments are stripped of surrounding whitespace (newlines, CRLF,
   indentation between segments are fine); a line break *inside* a stripped segment means a terminator is
   missing and two segments ran together: the segment is marked broken and its set is rejected.
2. **Envelope walker** (:class:`_Walker`): ISA/GS/ST..SE/GE/IEA, several interchanges per file (each one
   re-reads its own ISA). One record = one transaction set. A damaged set is rejected alone; segments that
   belong to no set (a damaged ST, junk after IEA) form one rejected record per run, so nothing is lost
   silently. Envelope problems (GE01/IEA01 counts, GE02/IEA02 control numbers, missing GE/IEA) never
   reject a sound set: they are reported in ``extras["interchanges"]`` (and in the 997 AK9 / as TA1 note
   codes), not as rejections. One exception: a set with no GS before it is rejected ``X12_SYNTAX``, because
   without a functional group it cannot be acknowledged (a 997 answers groups). Runs of stray segments are
   rejected with record_kind ``transaction_set`` (the closest kind; they are usually a set whose ST broke).
3. **Set mapper** (:func:`_map_850`): an 850 -> one raw row per PO1 (header repeated on each row).

Tolerated ISA deviations (all four EDI.Net samples need them; each is reported in the interchange's
``warnings``; a TA1 would be the place to tell the partner):
- an ISA that is not 106 characters fixed-width (short padded fields, a line break inside) is read by its
  element separators, as long as it has its 16 elements and consistent separators;
- an ISA whose ISA16 is missing (``...*T*~`` followed by a line break) is recognised when the GS segment
  after it ends with that same character: it is the segment terminator, and the component separator is
  unknown (not needed to read an 850).
An ISA that cannot be read this way (cut short, alphanumeric or equal separators) is a file-level
``X12_SYNTAX`` rejection: nothing after it can be split reliably.

850 field mapping (decisions)
- ``order_ref`` = ``"<ISA06 stripped>:<BEG03>"``: a PO number is only unique per trading partner.
  ``customer_ref`` = ISA06 stripped (the trading-partner id, always present and stable; N1*BY N104 is a
  buying-location code that varies by division, so it is not used). ``customer_po`` = BEG03.
- ``order_ts`` = BEG05 (CCYYMMDD -> ``YYYY-MM-DD``, midnight UTC); a header ``DTM*004`` with a time wins
  (DTM02 + DTM03, DTM04 time code -> UTC offset; ``LT``/unknown codes: no offset = UTC). Dates that are not
  8 digits are passed through as sent, and 8 digits are only re-punctuated (``20260230`` ->
  ``2026-02-30``), so ``normalise`` flags ``BAD_DATE``.
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
  null: priced later from the price list), ``sku`` from the PO106/PO107.. qualifier/id pairs preferring
  VN (vendor's = our part number), then SK, then BP (buyer's part number), else the first id given;
  an id containing blanks (free text in an id slot) is only taken when there is no other;
  ``description`` = first PID05 in the PO1 loop; ``requested_date`` = DTM*002 in the PO1 loop, else the
  header DTM*002.
- header/summary ``AMT*TT`` -> ``channel_total``. SAC, TAX, ITD, line AMT and CTT are not mapped.

997 codes follow X12 (element 718): AK5 1 = set not supported, 2 = trailer missing, 3 = ST02/SE02 do not
match, 4 = SE01 segment count wrong, 5 = segments in error, 6 = missing/invalid set id, 7 = missing control
number. AK9 (element 716): 3 = GE missing, 4 = GE02/GS06 differ, 5 = GE01 count wrong; AK901 = A (all
accepted), E (all accepted, group errors noted), P (some accepted), R (none accepted).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from som_pipeline.ingest.common import Captured, DecodeError, ParseResult, Rejection, decode_text, raw_frame

CHANNEL = "edi"
RECORD_UNIT = "transaction_set"
RECORD_KIND = "transaction_set"
FILE_RECORD_ID = "(file)"
SUPPORTED_SET = "850"
DEFAULT_CURRENCY = "USD"  # X12 004010 850: amounts are US dollars unless a CUR segment says otherwise

ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)  # ISA01..ISA16
ISA_LENGTH = 106  # "ISA" + 16 separators + ISA01..ISA16 + the segment terminator
_ISA_WINDOW = 400  # an ISA (even badly padded) ends well within this many characters
_WS = " \t\r\n\x0b\x0c\ufeff"  # a BOM between concatenated files counts as whitespace
_BREAKS = "\r\n"
_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_SKU_PREFERENCE = ("VN", "SK", "BP")
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


# ================================================================================================
# Tokenizer
# ================================================================================================
@dataclass(frozen=True)
class Separators:
    element: str
    segment: str
    component: str | None  # None: ISA16 missing
    repetition: str | None  # None: ISA11 is a standards id ("U"), not a separator

    def as_dict(self) -> dict[str, str | None]:
        return {"element": self.element, "component": self.component, "repetition": self.repetition,
                "segment": self.segment}


@dataclass
class Segment:
    no: int  # 1-based position in the file
    line: int  # line of its first character
    start: int  # offset of its first character
    end: int  # offset just after its terminator
    text: str  # stripped, without terminator
    elements: list[str]
    problem: tuple[str, int | None, str] | None = None  # (AK304 code, AK401 element position, message)

    @property
    def id(self) -> str:
        return self.elements[0]

    def el(self, i: int) -> str:
        return self.elements[i] if i < len(self.elements) else ""


class X12Error(Exception):
    """The ISA cannot be read: nothing after it can be split reliably."""


@dataclass
class _Isa:
    fields: list[str]  # ISA01..ISA16 as sent (ISA16 "" when missing)
    seps: Separators
    segment: Segment
    next_pos: int
    next_line: int
    warnings: list[str]


def _show(ch: str | None) -> str:
    return {None: "(none)", "\n": "'\\n'", "\r": "'\\r'", "\t": "'\\t'", " ": "' '"}.get(ch, f"'{ch}'")


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


def _looks_like_isa(text: str, pos: int) -> bool:
    return text.startswith("ISA", pos) and pos + 3 < len(text) and not text[pos + 3].isalnum()


def _check_separators(seps: Separators) -> None:
    named = [("element", seps.element), ("segment terminator", seps.segment)]
    if seps.component is not None:
        named.append(("component", seps.component))
    if seps.repetition is not None:
        named.append(("repetition", seps.repetition))
    for name, ch in named:
        if len(ch) != 1 or ch.isalnum():
            raise X12Error(f"ISA declares an unusable {name} separator {_show(ch)} (letters and digits are not allowed)")
        if name != "segment terminator" and ch in _WS:
            raise X12Error(f"ISA declares whitespace {_show(ch)} as the {name} separator")
    if seps.segment in " \t":
        raise X12Error(f"ISA declares {_show(seps.segment)} as the segment terminator")
    chars = [ch for _, ch in named]
    if len(set(chars)) != len(chars):
        raise X12Error("ISA declares the same character for two separators: "
                       + ", ".join(f"{name} {_show(ch)}" for name, ch in named))


def _read_isa(text: str, pos: int, no: int, line: int) -> _Isa:
    """Read the ISA starting at ``pos``: its 16 fields, the separators and where the next segment starts."""
    if not _looks_like_isa(text, pos):
        raise X12Error("expected an ISA segment (interchange header)")
    elem = text[pos + 3]
    if elem in _WS:
        raise X12Error(f"ISA declares whitespace {_show(elem)} as the element separator")
    cuts: list[int] = [pos + 3]
    limit = min(len(text), pos + _ISA_WINDOW)
    while len(cuts) < 16:
        j = text.find(elem, cuts[-1] + 1, limit)
        if j < 0:
            raise X12Error(f"the ISA segment is cut short: {len(cuts) - 1} of its 16 elements found "
                           f"(element separator {_show(elem)})")
        cuts.append(j)
    fields = [text[a + 1:b] for a, b in zip(cuts, cuts[1:], strict=False)]  # ISA01..ISA15
    for k, (value, width) in enumerate(zip(fields, ISA_WIDTHS, strict=False), 1):
        if len(value.strip()) > width:
            raise X12Error(f"ISA{k:02d} '{value.strip()[:30]}' is longer than {width} characters: "
                           f"the ISA is malformed (element separator {_show(elem)})")
    k16 = cuts[-1]
    c = text[k16 + 1] if k16 + 1 < len(text) else ""
    after = text[k16 + 2] if k16 + 2 < len(text) else ""
    if not c:
        raise X12Error("the file ends inside the ISA segment (no ISA16 / segment terminator)")
    rep = fields[10].strip()
    rep_sep = rep if len(rep) == 1 and not rep.isalnum() and rep not in _WS else None
    warnings: list[str] = []

    def gs_follows(start: int, term: str, comp: str | None) -> bool:
        end = text.find(term, start) if term else -1
        seg = text[start:end if end >= 0 else len(text)].strip(_WS)
        return (seg.startswith(("GS" + elem, "IEA" + elem, "ST" + elem)) and not any(b in seg for b in _BREAKS)
                and (comp is None or not seg.endswith(comp)))

    full = Separators(elem, after, c, rep_sep)  # ISA16 present: c = component, the next char terminates
    short = Separators(elem, c, None, rep_sep)  # ISA16 missing: c terminates the ISA
    if after and not after.isalnum() and gs_follows(k16 + 3, after, c):
        seps, end = full, k16 + 3
    elif not c.isalnum() and c not in " \t" and gs_follows(k16 + 2, c, None):
        seps, end = short, k16 + 2
        warnings.append(f"ISA16 (component separator) is missing: {_show(c)} read as the segment terminator")
    else:
        seps, end = full, k16 + 3
        if not after:
            raise X12Error("the file ends right after ISA16: no segment terminator")
    _check_separators(seps)
    isa_text = text[pos:end - 1]
    if seps.component is not None:
        fields.append(seps.component)
        off = [f"ISA{k:02d} has {len(v)}" for k, (v, w) in enumerate(zip(fields, ISA_WIDTHS, strict=False), 1)
               if len(v) != w]
        brk = any(b in isa_text for b in _BREAKS)
        if off or brk:
            warnings.append(f"the ISA is not fixed-width ({end - pos} characters with its terminator, expected "
                            f"{ISA_LENGTH}{'; a line break inside' if brk else ''}"
                            f"{'; ' + ', '.join(off) + ' characters' if off else ''}); read by its element separators")
    else:
        fields.append("")
    if not _DIGITS.match(fields[12].strip()) or len(fields[12].strip()) != 9:
        warnings.append(f"ISA13 '{fields[12].strip()}' is not a 9-digit control number")
    seg = Segment(no, line, pos, end, isa_text.strip(_WS), ["ISA", *fields])
    return _Isa(fields, seps, seg, end, line + text.count("\n", pos, end), warnings)


def _next_segment(text: str, pos: int, line: int, no: int, seps: Separators) -> tuple[Segment | None, int, int]:
    """The segment starting at or after ``pos`` -> ``(segment or None at end, next pos, next line)``."""
    while True:  # empty segments (two terminators in a row) carry nothing: skipped
        start = _skip_ws(text, pos)
        line += text.count("\n", pos, start)
        if start >= len(text):
            return None, start, line
        cut = text.find(seps.segment, start)
        end = len(text) if cut < 0 else cut + 1
        body = text[start:end if cut < 0 else cut].rstrip(_WS)
        if body:
            break
        line += text.count("\n", start, end)
        pos = end
    seg = Segment(no, line, start, end, body, body.split(seps.element))
    if any(b in body for b in _BREAKS):
        k = next(i for i, v in enumerate(seg.elements) if any(b in v for b in _BREAKS))
        tail = re.split(r"[\r\n]+", body, maxsplit=1)[1].split(seps.element)[0].strip()[:10]
        seg.elements[0] = seg.elements[0].split("\n")[0].split("\r")[0].strip()
        seg.problem = ("8", k if k else None, (
            f"segment {no} (line {line}) '{_preview(body)}' contains a line break: the segment terminator "
            f"{_show(seps.segment)} is missing, so two segments ran together ({seg.elements[0]} and {tail})"))
    elif not _SEG_ID.match(seg.id):
        seg.problem = ("1", None, f"segment {no} (line {line}) '{_preview(body)}' has no valid segment id")
    return seg, end, line + text.count("\n", start, end)


def _preview(s: str, n: int = 60) -> str:
    s = s.replace("\r", "\\r").replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def split_segments(text: str) -> list[Segment]:
    """All segments of an X12 text (separators read from each ISA); for tests and tools.

    Raises :class:`X12Error` when an ISA cannot be read."""
    out: list[Segment] = []
    pos = _skip_ws(text, 0)
    line = 1 + text.count("\n", 0, pos)
    seps: Separators | None = None
    while pos < len(text):
        if _looks_like_isa(text, _skip_ws(text, pos)) or seps is None:
            start = _skip_ws(text, pos)
            isa = _read_isa(text, start, len(out) + 1, line + text.count("\n", pos, start))
            out.append(isa.segment)
            seps, pos, line = isa.seps, isa.next_pos, isa.next_line
            continue
        seg, pos, line = _next_segment(text, pos, line, len(out) + 1, seps)
        if seg is None:
            break
        out.append(seg)
    return out


# ================================================================================================
# Envelope walker
# ================================================================================================
@dataclass
class _OpenSet:
    ic: dict[str, Any]
    group: dict[str, Any]
    ordinal: int
    segments: list[Segment] = field(default_factory=list)


class _Walker:
    def __init__(self, text: str) -> None:
        self.text = text
        self.rows: list[dict[str, Any]] = []
        self.rejected: list[Rejection] = []
        self.interchanges: list[dict[str, Any]] = []
        self.ic: dict[str, Any] | None = None
        self.group: dict[str, Any] | None = None
        self.cur: _OpenSet | None = None
        self.stray: list[Segment] = []
        self.stray_path = ""
        self.ordinal = 0
        self.st02_seen: dict[int, dict[str, int]] = {}  # id(group) -> ST02 -> first set ordinal

    # --- driver ---------------------------------------------------------------------------------
    def run(self) -> None:
        text = self.text
        pos = _skip_ws(text, 0)
        line = 1 + text.count("\n", 0, pos)
        if not _looks_like_isa(text, pos):
            raise X12Error(f"the file does not start with an ISA segment (starts with '{_preview(text[pos:pos + 20], 20)}')")
        isa = _read_isa(text, pos, 1, line)  # X12Error -> file-level rejection (caller)
        no = 2
        self._open_interchange(isa)
        seps, pos, line = isa.seps, isa.next_pos, isa.next_line
        while True:
            seg, pos, line = _next_segment(text, pos, line, no, seps)
            if seg is None:
                break
            if _looks_like_isa(text, seg.start):
                self._close_interchange(None)
                try:
                    isa = _read_isa(text, seg.start, no, seg.line)
                except X12Error as e:
                    self._reject_tail(seg, str(e))
                    break
                self._open_interchange(isa)
                seps, pos, line = isa.seps, isa.next_pos, isa.next_line
                no += 1
                continue
            no += 1
            self._dispatch(seg)
        self._close_interchange(None)

    def _dispatch(self, seg: Segment) -> None:
        sid = seg.id
        if self.ic is None:
            self._stray(seg)
        elif sid == "GS":
            self._close_set(None)
            self._close_group(None)
            self._open_group(seg)
        elif sid == "ST":
            self._close_set(None)
            self._open_set(seg)
        elif sid == "SE" and self.cur is not None:
            self.cur.segments.append(seg)
            self._close_set(seg)
        elif sid == "GE":
            self._close_set(None)
            self._close_group(seg)
        elif sid == "IEA":
            self._close_interchange(seg)
        elif self.cur is not None:
            self.cur.segments.append(seg)
        else:
            self._stray(seg)

    # --- interchange / group ------------------------------------------------------------------
    def _open_interchange(self, isa: _Isa) -> None:
        self._flush_stray()
        f = isa.fields
        self.ic = {
            "isa_control_number": f[12].strip(),
            "sender_qualifier": f[4].strip(),
            "sender_id": f[5].strip(),
            "receiver_qualifier": f[6].strip(),
            "receiver_id": f[7].strip(),
            "date": f[8].strip(),
            "time": f[9].strip(),
            "standards_id": f[10].strip(),  # ISA11 as sent ("U" or the repetition separator)
            "version": f[11].strip(),
            "ack_requested": f[13].strip(),
            "usage": f[14].strip(),
            "separators": isa.seps.as_dict(),
            "location": f"segment {isa.segment.no}, line {isa.segment.line}",
            "warnings": list(isa.warnings),
            "errors": [],
            "groups": [],
            "trailer": None,
        }
        self.interchanges.append(self.ic)

    def _close_interchange(self, iea: Segment | None) -> None:
        self._close_set(None)
        self._close_group(None)
        self._flush_stray()
        ic = self.ic
        if ic is None:
            if iea is not None:
                self._stray(iea)
            return
        icn = ic["isa_control_number"]
        if iea is None:
            ic["errors"].append({"code": "X12_SYNTAX", "ta1": "023",
                                 "message": f"interchange {icn}: IEA trailer missing (file cut off?)"})
        else:
            ic["trailer"] = {"IEA01": iea.el(1), "IEA02": iea.el(2), "segment": iea.no}
            groups = sum(1 for g in ic["groups"] if not g["implicit"])
            if iea.el(1).strip() != str(groups):
                ic["errors"].append({"code": "X12_ENVELOPE_COUNT", "ta1": "021",
                                     "message": f"interchange {icn}: IEA01 says {iea.el(1)!r} functional groups, "
                                                f"{groups} received"})
            if iea.el(2).strip() != icn:
                ic["errors"].append({"code": "X12_CONTROL_NUMBER", "ta1": "001",
                                     "message": f"interchange {icn}: IEA02 {iea.el(2)!r} does not match ISA13 {icn!r}"})
        self.ic = None

    def _open_group(self, gs: Segment) -> None:
        assert self.ic is not None
        self._flush_stray()
        self.group = {
            "functional_id": gs.el(1), "sender": gs.el(2), "receiver": gs.el(3), "date": gs.el(4),
            "time": gs.el(5), "control_number": gs.el(6), "agency": gs.el(7), "version": gs.el(8),
            "location": f"segment {gs.no}, line {gs.line}", "implicit": False,
            "sets": [], "errors": [], "warnings": [], "trailer": None,
        }
        if gs.problem:
            self.group["errors"].append({"code": "X12_SYNTAX", "ak9": None, "message": gs.problem[2]})
        self.ic["groups"].append(self.group)

    def _close_group(self, ge: Segment | None) -> None:
        self._flush_stray()
        g = self.group
        if g is None:
            if ge is not None and self.ic is not None:
                self.ic["errors"].append({"code": "X12_SYNTAX", "ta1": "024",
                                          "message": f"segment {ge.no} (line {ge.line}): GE without a GS"})
            return
        gcn = g["control_number"]
        if g["implicit"]:
            pass
        elif ge is None:
            g["errors"].append({"code": "X12_SYNTAX", "ak9": "3", "message": f"group {gcn}: GE trailer missing"})
        else:
            g["trailer"] = {"GE01": ge.el(1), "GE02": ge.el(2), "segment": ge.no}
            n = len(g["sets"])
            if ge.el(1).strip() != str(n):
                g["errors"].append({"code": "X12_ENVELOPE_COUNT", "ak9": "5",
                                    "message": f"group {gcn}: GE01 says {ge.el(1)!r} transaction sets, {n} received"})
            if ge.el(2).strip() != gcn.strip():
                g["errors"].append({"code": "X12_CONTROL_NUMBER", "ak9": "4",
                                    "message": f"group {gcn}: GE02 {ge.el(2)!r} does not match GS06 {gcn!r}"})
        self.group = None

    # --- sets ----------------------------------------------------------------------------------
    def _open_set(self, st: Segment) -> None:
        assert self.ic is not None
        self._flush_stray()
        if self.group is None:  # ST outside a functional group: its sets cannot be acknowledged
            self.group = {"functional_id": None, "sender": None, "receiver": None, "date": None, "time": None,
                          "control_number": "?", "agency": None, "version": None,
                          "location": f"segment {st.no}, line {st.line}", "implicit": True,
                          "sets": [], "errors": [{"code": "X12_SYNTAX", "ak9": None,
                                                  "message": "transaction set(s) outside a functional group (no GS)"}],
                          "warnings": [], "trailer": None}
            self.ic["groups"].append(self.group)
        self.ordinal += 1
        self.cur = _OpenSet(self.ic, self.group, self.ordinal, [st])

    def _close_set(self, se: Segment | None) -> None:
        s = self.cur
        if s is None:
            return
        self.cur = None
        segs = s.segments
        st = segs[0]
        ic, g = s.ic, s.group
        st01, st02 = st.el(1), st.el(2)
        path = f"ISA {ic['isa_control_number']} > GS {g['control_number']} > ST {st02}"
        record_id = f"{path} #{s.ordinal}"
        location = f"{path} (segments {st.no}-{segs[-1].no}, line {st.line})"
        raw = self.text[st.start:segs[-1].end]
        seen = self.st02_seen.setdefault(id(g), {})
        if st02 in seen:
            g["warnings"].append(f"ST02 {st02!r} repeats in group {g['control_number']} "
                                 f"(sets #{seen[st02]} and #{s.ordinal})")
        seen.setdefault(st02, s.ordinal)

        problems: list[tuple[str, str]] = []  # (reason code, message), first = the rejection reason
        ak5: list[str] = []
        ak3: list[dict[str, Any]] = []
        if g["implicit"]:
            problems.append(("X12_SYNTAX", "the transaction set is not inside a functional group (no GS before ST)"))
        if st01 != SUPPORTED_SET and _DIGITS.match(st01):
            problems.append(("X12_UNSUPPORTED_SET",
                             f"transaction set {st01} is not a purchase order (850): acknowledged as not supported"))
            ak5.append("1")
        elif st01 != SUPPORTED_SET:
            problems.append(("X12_SYNTAX", f"ST01 {st01!r} is not a transaction set identifier"))
            ak5.append("6")
        if not st02.strip():
            problems.append(("X12_SYNTAX", "ST02 (transaction set control number) is missing"))
            ak5.append("7")
        bad = [(i, x) for i, x in enumerate(segs, 1) if x.problem]
        for i, x in bad:
            code, elem_pos, msg = x.problem  # type: ignore[misc]
            problems.append(("X12_SYNTAX", msg))
            ak3.append({"segment_id": x.id, "position": i, "code": code,
                        "elements": [{"position": elem_pos, "code": "6"}] if elem_pos else []})
        if bad:
            ak5.append("5")
        if se is None:
            last = segs[-1]
            problems.append(("X12_SYNTAX", f"the transaction set is cut off after segment {last.no} (line {last.line}): "
                                           "no SE trailer"))
            ak5.append("2")
        else:
            count = len(segs)
            if se.el(1).strip() != str(count):
                problems.append(("X12_SEGMENT_COUNT",
                                 f"SE01 says {se.el(1)!r} segments, the set has {count} (ST to SE)"))
                ak5.append("4")
            if se.el(2).strip() != st02.strip():
                problems.append(("X12_CONTROL_NUMBER", f"SE02 {se.el(2)!r} does not match ST02 {st02!r}"))
                ak5.append("3")

        sender = ic["sender_id"]
        outcome: dict[str, Any] = {"ordinal": s.ordinal, "record_id": record_id, "location": location,
                                   "st01": st01, "st02": st02, "ak3": ak3}
        if not problems:
            mapped = _map_850(segs, sender, path, record_id, location, raw)
            if isinstance(mapped, list):
                self.rows.extend(mapped)
                outcome.update(parse_status="accepted", reason_code=None, message=None, ak5_codes=[])
                g["sets"].append(outcome)
                return
            code, msg, ref, ak3_extra = mapped
            problems.append((code, msg))
            ak3.extend(ak3_extra)
            ak5.append("5")
            order_ref = ref
        else:
            order_ref = _order_ref_of(segs, sender)
        reason = problems[0][0]
        message = "; ".join(m for _, m in problems[:4]) + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else "")
        self.rejected.append(Rejection(record_id, RECORD_KIND, location, reason, message, raw, order_ref))
        outcome.update(parse_status="rejected", reason_code=reason, message=message,
                       ak5_codes=list(dict.fromkeys(ak5))[:5])
        g["sets"].append(outcome)

    # --- segments outside any set ---------------------------------------------------------------
    def _stray(self, seg: Segment) -> None:
        if not self.stray:
            if self.ic is None:
                self.stray_path = "outside any interchange"
            elif self.group is None:
                self.stray_path = f"ISA {self.ic['isa_control_number']}"
            else:
                self.stray_path = f"ISA {self.ic['isa_control_number']} > GS {self.group['control_number']}"
        self.stray.append(seg)

    def _flush_stray(self) -> None:
        if not self.stray:
            return
        segs, self.stray = self.stray, []
        a, b = segs[0], segs[-1]
        ids = ", ".join(dict.fromkeys(s.id[:3] for s in segs[:10]))
        where = "outside an ISA/IEA interchange" if self.stray_path.startswith("outside") else "outside a transaction set"
        msg = f"{len(segs)} segment(s) {where} ({ids}): not part of any ST..SE set"
        broken = [s.problem[2] for s in segs if s.problem]
        if broken:
            msg += "; " + broken[0]
        rid = f"{self.stray_path} > segments {a.no}-{b.no}"
        self.rejected.append(Rejection(rid, RECORD_KIND, f"{rid} (line {a.line})", "X12_SYNTAX", msg,
                                       self.text[a.start:b.end]))
        if self.ic is not None and not self.stray_path.startswith("outside"):
            self.ic["errors"].append({"code": "X12_SYNTAX", "ta1": None, "message": f"{rid}: {msg}"})

    def _reject_tail(self, seg: Segment, why: str) -> None:
        rid = f"interchange at segment {seg.no}"
        self.rejected.append(Rejection(rid, RECORD_KIND, f"{rid} (line {seg.line}) to end of file", "X12_SYNTAX",
                                       f"an interchange header that cannot be read: {why}; the rest of the file "
                                       "is not parsed", self.text[seg.start:]))


# ================================================================================================
# Set mapper (850)
# ================================================================================================
def _x12_date(s: str) -> str | None:
    s = s.strip()
    if not s:
        return None
    if len(s) == 8 and _DIGITS.match(s):
        return f"{s[:4]}-{s[4:6]}-{s[6:]}"
    return s  # as sent: normalise flags it BAD_DATE


def _x12_timestamp(d: str, t: str, code: str) -> str | None:
    day = _x12_date(d)
    if day is None:
        return None
    t = t.strip()
    m = re.fullmatch(r"(\d\d)(\d\d)(?:(\d\d)(\d{1,2})?)?", t)
    if not m:
        return f"{day}T{t}"  # as sent: normalise flags it BAD_DATE
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


def _sku(po1: Segment) -> str | None:
    pairs = [(po1.el(i).strip(), po1.el(i + 1).strip()) for i in range(6, len(po1.elements), 2)]
    # an id with blanks is free text some partners put in an id slot (850a: "VN*SINGLE LINE DIAMOND
    # PATTERN"), not a part number: it is used only when nothing else is given
    pairs = sorted(((q, v) for q, v in pairs if v), key=lambda p: " " in p[1])
    for want in _SKU_PREFERENCE:
        for q, v in pairs:
            if q == want and " " not in v:
                return v
    return pairs[0][1] if pairs else None


def _currency_of(cur_segments: list[Segment]) -> str | None:
    for c in cur_segments:
        if c.el(1).strip() in ("BY", "SE") and c.el(2).strip():
            return c.el(2).strip()
    for c in cur_segments:
        if c.el(2).strip():
            return c.el(2).strip()
    return None


def _order_ref_of(segs: list[Segment], sender: str) -> str | None:
    beg = next((s for s in segs if s.id == "BEG"), None)
    po = beg.el(3).strip() if beg else ""
    return f"{sender}:{po}" if po else None


@dataclass
class _Line:
    po1: Segment
    description: str | None = None
    requested: str | None = None
    cur: list[Segment] = field(default_factory=list)


def _map_850(
    segs: list[Segment], sender: str, path: str, record_id: str, location: str, raw: str
) -> list[dict[str, Any]] | tuple[str, str, str | None, list[dict[str, Any]]]:
    """Rows of a sound 850 set, or ``(reason, message, order_ref, ak3 notes)`` when it cannot be mapped."""
    beg = None
    header_cur: list[Segment] = []
    dtm004 = None
    header_requested = None
    td5 = None
    csh = None
    total = None
    ship: dict[str, str | None] | None = None
    in_ship = False
    lines: list[_Line] = []
    summary = False
    for seg in segs[1:-1]:
        sid = seg.id
        if sid == "PO1":
            lines.append(_Line(seg))
            in_ship = False
            continue
        if sid == "CTT":
            summary = True
        line = lines[-1] if lines and not summary else None
        if line is not None:
            if sid == "PID" and line.description is None and seg.el(5).strip():
                line.description = seg.el(5)
            elif sid == "DTM" and seg.el(1) == "002" and line.requested is None:
                line.requested = _x12_date(seg.el(2))
            elif sid == "CUR":
                line.cur.append(seg)
            continue
        if sid == "N1":
            in_ship = seg.el(1).strip() == "ST" and ship is None and not summary
            if in_ship:
                ship = {"ship_to_name": seg.el(2) or None}
            continue
        if in_ship and ship is not None and sid in _SHIP_TO_LOOP:
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
            elif sid == "TD5" and td5 is None:
                td5 = seg
            continue
        in_ship = False
        if sid == "BEG" and beg is None:
            beg = seg
        elif sid == "CUR":
            header_cur.append(seg)
        elif sid == "DTM" and seg.el(1) == "004" and dtm004 is None:
            dtm004 = seg
        elif sid == "DTM" and seg.el(1) == "002" and header_requested is None:
            header_requested = _x12_date(seg.el(2))
        elif sid == "TD5" and td5 is None:
            td5 = seg
        elif sid == "CSH" and csh is None:
            csh = seg
        elif sid == "AMT" and seg.el(1).strip() == "TT" and total is None:
            total = seg.el(2) or None

    po = beg.el(3).strip() if beg else ""
    order_ref = f"{sender}:{po}" if po else None
    if not lines:
        pos = next((i for i, s in enumerate(segs, 1) if s.id == "CTT"), len(segs))
        return ("NO_LINES", "the purchase order has no PO1 (line item) segments", order_ref,
                [{"segment_id": "PO1", "position": pos, "code": "3", "elements": []}])

    # currency: header CUR, line CURs must agree; none at all -> the 004010 default (USD)
    currency = _currency_of(header_cur)
    line_currencies = {c for c in (_currency_of(ln.cur) for ln in lines) if c}
    if currency is not None and line_currencies - {currency}:
        return ("CURRENCY_MISMATCH", f"line CUR {sorted(line_currencies - {currency})} differs from the header "
                                     f"currency {currency}", order_ref, [])
    if currency is None and len(line_currencies) > 1:
        return ("CURRENCY_MISMATCH", f"lines are in different currencies {sorted(line_currencies)}", order_ref, [])
    if currency is None:
        currency = next(iter(line_currencies)) if line_currencies else DEFAULT_CURRENCY

    order_ts = None
    if dtm004 is not None and dtm004.el(3).strip():
        order_ts = _x12_timestamp(dtm004.el(2), dtm004.el(3), dtm004.el(4))
    if order_ts is None and beg is not None:
        order_ts = _x12_date(beg.el(5))
    if order_ts is None and dtm004 is not None:
        order_ts = _x12_date(dtm004.el(2))

    ship_method = None
    if td5 is not None:
        ship_method = next((td5.el(i).strip() for i in (5, 3, 12, 4) if td5.el(i).strip()), None)
    ship_complete = None
    if csh is not None:
        ship_complete = "true" if csh.el(1).strip() in ("SC", "N") else "false"

    header: dict[str, Any] = {
        "record_id": record_id,
        "record_kind": RECORD_KIND,
        "record_location": location,
        "order_key": record_id,
        "raw": raw,
        "order_ref": order_ref,
        "order_ts": order_ts,
        "customer_ref": sender or None,
        "customer_po": po or None,
        "currency": currency,
        **(ship or {}),
        "ship_method": ship_method,
        "ship_complete": ship_complete,
        "channel_total": total,
    }
    rows = []
    for k, ln in enumerate(lines, 1):
        p = ln.po1
        rows.append({
            **header,
            "location": f"{path} > PO1 #{k} (segment {p.no}, line {p.line})",
            "line_ref": p.el(1) or None,
            "sku": _sku(p),
            "quantity": p.el(2) or None,
            "uom": p.el(3) or None,
            "unit_price": p.el(4) or None,
            "description": ln.description,
            "requested_date": ln.requested or header_requested,
        })
    return rows


# ================================================================================================
# Public API
# ================================================================================================
def parse_x12(data: bytes, source_file: str) -> ParseResult:
    """Parse an X12 file (any number of interchanges) into raw rows (one per PO1 of each sound 850 set).

    Never raises on bad input. ``extras["interchanges"]`` describes every interchange (ISA fields,
    separators, groups, per-set parse outcome with AK5/AK3/AK4 codes, envelope errors) for :func:`build_997`.
    """
    try:
        text, encoding = decode_text(data)
    except DecodeError as e:
        return ParseResult(CHANNEL, RECORD_UNIT, raw_frame([]),
                           [Rejection(FILE_RECORD_ID, "file", "whole file", e.reason_code, e.message)],
                           extras={"interchanges": []})
    text = text.lstrip("\ufeff")
    walker = _Walker(text)
    try:
        walker.run()
    except X12Error as e:
        pos = _skip_ws(text, 0)
        where = f"ISA segment (line {1 + text.count(chr(10), 0, pos)})" if _looks_like_isa(text, pos) else "whole file"
        return ParseResult(CHANNEL, RECORD_UNIT, raw_frame([]),
                           [Rejection(FILE_RECORD_ID, "file", where, "X12_SYNTAX",
                                      f"{e}: the file cannot be split into segments", text)],
                           encoding=encoding, extras={"interchanges": []})
    return ParseResult(CHANNEL, RECORD_UNIT, raw_frame(walker.rows), walker.rejected, encoding=encoding,
                       extras={"interchanges": walker.interchanges})


def accepted_set_ids(captured: Captured) -> set[str]:
    """Record ids of the sets :func:`normalise` finally accepted (X12 order_key = record_id, and
    ``capture_id`` = ``<sha256[:16]>/<order_key>``): the input :func:`build_997` needs."""
    return {cid.split("/", 1)[1] for cid in captured.headers["capture_id"].to_list()}


def _clean(value: Any, seps: Separators, width: int | None = None) -> str:
    """A value safe to write as an element: ASCII, no separators or control characters."""
    s = unicodedata.normalize("NFKD", "" if value is None else str(value)).encode("ascii", "ignore").decode()
    banned = {seps.element, seps.segment, seps.component, seps.repetition}
    s = "".join(ch for ch in s if ch not in banned and ch.isprintable())
    if width is not None:
        s = s.strip()[:width].ljust(width)
    return s


def build_997(interchange: dict[str, Any], accepted_record_ids: set[str], ack_control_number: int,
              now: datetime) -> str:
    """A 997 interchange (ISA..IEA) acknowledging one received interchange.

    ``interchange`` is one entry of ``ParseResult.extras["interchanges"]``; ``accepted_record_ids`` the
    record ids finally accepted after :func:`normalise` (a set the parser accepted but the normaliser
    rejected is answered ``AK5*R*5``). One 997 transaction set per received functional group (each with
    one AK1); separators as received; sender/receiver swapped; ISA13 = GS06 = ``ack_control_number``.
    """
    if not 1 <= ack_control_number <= 999_999_999:
        raise ValueError(f"ack_control_number must be 1..999999999, got {ack_control_number}")
    rs = interchange["separators"]
    elem, term, rep = rs["element"], rs["segment"], rs["repetition"]
    comp = rs["component"] or next(c for c in ">:^\\!" if c not in (elem, term, rep))
    seps = Separators(elem, term, comp, rep)
    eol = "" if term in _BREAKS else "\n"
    out: list[str] = []

    def seg(*els: Any) -> None:
        out.append(elem.join(str(e) for e in els) + term + eol)

    def c(v: Any, width: int | None = None) -> str:
        return _clean(v, seps, width)

    isa11 = rep if rep else (c(interchange.get("standards_id"), 1).strip() or "U")
    version = c(interchange.get("version")).strip()
    version = version if _DIGITS.match(version) and len(version) == 5 else "00401"
    usage = interchange.get("usage") if interchange.get("usage") in ("P", "T") else "P"
    icn = f"{ack_control_number:09d}"
    seg("ISA", "00", " " * 10, "00", " " * 10,
        c(interchange.get("receiver_qualifier"), 2), c(interchange.get("receiver_id"), 15),
        c(interchange.get("sender_qualifier"), 2), c(interchange.get("sender_id"), 15),
        now.strftime("%y%m%d"), now.strftime("%H%M"), isa11, version, icn, "0", usage, comp)
    groups = [g for g in interchange.get("groups", []) if not g.get("implicit")]
    if groups:
        first = groups[0]
        gcn = str(ack_control_number)
        seg("GS", "FA", c(first.get("receiver")) or c(interchange.get("receiver_id")).strip(),
            c(first.get("sender")) or c(interchange.get("sender_id")).strip(),
            now.strftime("%Y%m%d"), now.strftime("%H%M"), gcn, "X", "004010")
        for n, g in enumerate(groups, 1):
            stcn = f"{n:04d}"
            start = len(out)
            seg("ST", "997", stcn)
            seg("AK1", c(g.get("functional_id")), c(g.get("control_number")))
            accepted = 0
            for s in g.get("sets", []):
                seg("AK2", c(s.get("st01")), c(s.get("st02")))
                if s.get("parse_status") == "accepted" and s.get("record_id") in accepted_record_ids:
                    accepted += 1
                    seg("AK5", "A")
                    continue
                for note in s.get("ak3", []):
                    sid = re.sub(r"[^A-Z0-9]", "", c(note.get("segment_id")).upper())[:3]
                    seg("AK3", sid if len(sid) >= 2 else "ZZ", note.get("position", 1), "", note.get("code", "8"))
                    for e in note.get("elements", []):
                        seg("AK4", e.get("position", 1), "", e.get("code", "6"))
                codes = s.get("ak5_codes") or ["5"]
                seg("AK5", "R", *codes[:5])
            received = len(g.get("sets", []))
            trailer = g.get("trailer") or {}
            included = str(trailer.get("GE01", "")).strip()
            included = included if _DIGITS.match(included) and len(included) <= 6 else str(received)
            if received and accepted == received:
                status = "E" if g.get("errors") else "A"
            elif accepted:
                status = "P"
            else:
                status = "R"
            group_codes = [e["ak9"] for e in g.get("errors", []) if e.get("ak9")][:5]
            seg("AK9", status, included, received, accepted, *group_codes)
            seg("SE", len(out) - start + 1, stcn)
        seg("GE", len(groups), gcn)
    seg("IEA", 1 if groups else 0, icn)
    return "".join(out)


def ack_file_name(source_file: str, isa13: str) -> str:
    """File name for the 997 answering ``source_file``'s interchange ``isa13``: ASCII, no path, no ``..``."""
    base = re.split(r"[\\/]", source_file)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, ext = base.rpartition(".")
    if dot and stem and ext.lower() in ("edi", "x12", "txt", "dat", "850"):
        base = stem
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)
    base = re.sub(r"\.{2,}", ".", base).strip("._-")[:100] or "x12"
    icn = re.sub(r"[^0-9A-Za-z]", "", isa13)[:15] or "0"
    return f"997_{base}_{icn}.edi"


__all__ = ["X12Error", "accepted_set_ids", "ack_file_name", "build_997", "parse_x12", "split_segments"]
