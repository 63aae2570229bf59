"""The envelope walker: ISA/GS/ST..SE/GE/IEA, several interchanges per file (each one re-reads its own ISA).

One record = one transaction set (closed and judged by :mod:`.transaction_set`). A damaged set is
rejected alone; segments that belong to no set (a damaged ST, junk after IEA) form one rejected record
per run, so nothing is lost silently. Envelope problems (GE01/IEA01 counts, GE02/IEA02 control numbers,
missing GE/IEA) never reject a sound set: they are reported in the interchange entries (and in the 997
AK9 / as TA1 note codes), not as rejections. One exception: a set with no GS before it is rejected
``X12_SYNTAX``, because without a functional group it cannot be acknowledged (a 997 answers groups).
Runs of stray segments are rejected with record_kind ``transaction_set`` (the closest kind; they are
usually a set whose ST broke).

997 group codes (element 716): AK9 2 = the group's version (GS08) is not one the 850 reader maps (its 850s
are quarantined ``X12_VERSION_UNSUPPORTED``), 3 = GE missing, 4 = GE02/GS06 differ, 5 = GE01 count wrong.
A TA1 segment between ISA and GS (an interchange acknowledgment, as in our own 997 files) is noted in the
interchange entry's ``ta1``, not rejected.

Routed sets (``routed_sets``, e.g. 214s that go to tracking) are closed by :func:`.transaction_set.route_set`
instead: outcome entries with ``routed`` and ``raw``, no record here. Only sets inside a functional group are
routed (a set with no GS cannot be acknowledged: it is rejected here as any other). Each interchange entry keeps
its ISA's text (``isa_raw``) and each group entry its GS's (``raw``), so that :mod:`.routing` can copy the routed
sets into an interchange of their own.
"""

from __future__ import annotations

from typing import Any

from som_pipeline.ingest.common import Rejection
from som_pipeline.ingest.x12.products import DEFAULT_RULES, SkuRules
from som_pipeline.ingest.x12.tokenizer import (
    Isa,
    Segment,
    X12Error,
    looks_like_isa,
    next_segment,
    preview,
    read_isa,
    skip_ws,
)
from som_pipeline.ingest.x12.transaction_set import RECORD_KIND, OpenSet, RoutedJudge, close_set, route_set
from som_pipeline.ingest.x12.versions import set_version, supported_list


class EnvelopeWalker:
    """Walks a decoded X12 text once; collects ``rows`` (sound sets), ``rejected`` records and the
    ``interchanges`` entries (ISA fields, separators, groups, per-set outcomes, envelope errors)."""

    def __init__(self, text: str, sku_rules: SkuRules = DEFAULT_RULES, routed_sets: frozenset[str] = frozenset(),
                 judge_routed: RoutedJudge | None = None) -> None:
        self.text = text
        self.sku_rules = sku_rules
        self.routed_sets = routed_sets
        self.judge_routed = judge_routed
        self.rows: list[dict[str, Any]] = []
        self.rejected: list[Rejection] = []
        self.interchanges: list[dict[str, Any]] = []
        self.ic: dict[str, Any] | None = None
        self.group: dict[str, Any] | None = None
        self.cur: OpenSet | None = None
        self.stray: list[Segment] = []
        self.stray_path = ""
        self.ordinal = 0
        self.st02_seen: dict[int, dict[str, int]] = {}  # id(group) -> ST02 -> first set ordinal

    # --- driver ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Walk the whole text. Raises :class:`X12Error` when the first ISA cannot be read."""
        text = self.text
        pos = skip_ws(text, 0)
        line = 1 + text.count("\n", 0, pos)
        if not looks_like_isa(text, pos):
            raise X12Error(f"the file does not start with an ISA segment (starts with '{preview(text[pos:pos + 20], 20)}')")
        isa = read_isa(text, pos, 1, line)  # X12Error -> file-level rejection (caller)
        no = 2
        self._open_interchange(isa)
        seps, pos, line = isa.seps, isa.next_pos, isa.next_line
        while True:
            seg, pos, line = next_segment(text, pos, line, no, seps)
            if seg is None:
                break
            if looks_like_isa(text, seg.start):
                self._close_interchange(None)
                try:
                    isa = read_isa(text, seg.start, no, seg.line)
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
        elif sid == "TA1" and self.group is None and self.cur is None and not self.stray:
            self.ic.setdefault("ta1", []).append(seg.elements[1:])
        elif self.cur is not None:
            self.cur.segments.append(seg)
        else:
            self._stray(seg)

    # --- interchange (ISA..IEA) -----------------------------------------------------------------
    def _open_interchange(self, isa: Isa) -> None:
        self._flush_stray()
        self.ic = interchange_entry(isa)
        self.ic["isa_raw"] = self.text[isa.segment.start:isa.segment.end]
        self.interchanges.append(self.ic)

    def _close_interchange(self, iea: Segment | None) -> None:
        self._close_set(None)
        self._close_group(None)
        self._flush_stray()
        if self.ic is None:
            if iea is not None:
                self._stray(iea)
            return
        check_iea(self.ic, iea)
        self.ic = None

    # --- functional group (GS..GE) --------------------------------------------------------------
    def _open_group(self, gs: Segment) -> None:
        assert self.ic is not None
        self._flush_stray()
        self.group = group_entry(gs)
        self.group["raw"] = self.text[gs.start:gs.end]
        self.ic["groups"].append(self.group)

    def _close_group(self, ge: Segment | None) -> None:
        self._flush_stray()
        if self.group is None:
            if ge is not None and self.ic is not None:
                self.ic["errors"].append({"code": "X12_SYNTAX", "ta1": "024",
                                          "message": f"segment {ge.no} (line {ge.line}): GE without a GS"})
            return
        check_version(self.group)
        check_ge(self.group, ge)
        self.group = None

    # --- transaction set (ST..SE) ---------------------------------------------------------------
    def _open_set(self, st: Segment) -> None:
        assert self.ic is not None
        self._flush_stray()
        if self.group is None:  # ST outside a functional group: its sets cannot be acknowledged
            self.group = implicit_group_entry(st)
            self.ic["groups"].append(self.group)
        self.ordinal += 1
        self.cur = OpenSet(self.ic, self.group, self.ordinal, [st])

    def _close_set(self, se: Segment | None) -> None:
        s = self.cur
        if s is None:
            return
        self.cur = None
        self._note_repeated_st02(s)
        if s.segments[0].el(1).strip() in self.routed_sets and not s.group["implicit"]:
            s.group["sets"].append(route_set(s, se, self.text, self.judge_routed))
            return
        verdict = close_set(s, se, self.text, self.sku_rules)
        self.rows.extend(verdict.rows)
        if verdict.rejection is not None:
            self.rejected.append(verdict.rejection)
        s.group["sets"].append(verdict.outcome)

    def _note_repeated_st02(self, s: OpenSet) -> None:
        """A group warning when a set's ST02 control number was already used in its group."""
        g, st02 = s.group, s.segments[0].el(2)
        seen = self.st02_seen.setdefault(id(g), {})
        if st02 in seen:
            g["warnings"].append(f"ST02 {st02!r} repeats in group {g['control_number']} "
                                 f"(sets #{seen[st02]} and #{s.ordinal})")
        seen.setdefault(st02, s.ordinal)

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
        outside = self.stray_path.startswith("outside")
        ids = ", ".join(dict.fromkeys(s.id[:3] for s in segs[:10]))
        where = "outside an ISA/IEA interchange" if outside else "outside a transaction set"
        msg = f"{len(segs)} segment(s) {where} ({ids}): not part of any ST..SE set"
        broken = [s.problem[2] for s in segs if s.problem]
        if broken:
            msg += "; " + broken[0]
        rid = f"{self.stray_path} > segments {a.no}-{b.no}"
        self.rejected.append(Rejection(rid, RECORD_KIND, f"{rid} (line {a.line})", "X12_SYNTAX", msg,
                                       self.text[a.start:b.end]))
        if self.ic is not None and not outside:
            self.ic["errors"].append({"code": "X12_SYNTAX", "ta1": None, "message": f"{rid}: {msg}"})

    def _reject_tail(self, seg: Segment, why: str) -> None:
        rid = f"interchange at segment {seg.no}"
        self.rejected.append(Rejection(rid, RECORD_KIND, f"{rid} (line {seg.line}) to end of file", "X12_SYNTAX",
                                       f"an interchange header that cannot be read: {why}; the rest of the file "
                                       "is not parsed", self.text[seg.start:]))


# ------------------------------------------------------------------------------------------------
# Interchange and group entries (``ParseResult.extras["interchanges"]``), trailer checks
# ------------------------------------------------------------------------------------------------
def interchange_entry(isa: Isa) -> dict[str, Any]:
    f = isa.fields
    return {
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


def check_iea(ic: dict[str, Any], iea: Segment | None) -> None:
    """Record the IEA trailer of ``ic`` (None: missing) and its count / control-number errors."""
    icn = ic["isa_control_number"]
    if iea is None:
        ic["errors"].append({"code": "X12_SYNTAX", "ta1": "023",
                             "message": f"interchange {icn}: IEA trailer missing (file cut off?)"})
        return
    ic["trailer"] = {"IEA01": iea.el(1), "IEA02": iea.el(2), "segment": iea.no}
    groups = sum(1 for g in ic["groups"] if not g["implicit"])
    if iea.el(1).strip() != str(groups):
        ic["errors"].append({"code": "X12_ENVELOPE_COUNT", "ta1": "021",
                             "message": f"interchange {icn}: IEA01 says {iea.el(1)!r} functional groups, "
                                        f"{groups} received"})
    if iea.el(2).strip() != icn:
        ic["errors"].append({"code": "X12_CONTROL_NUMBER", "ta1": "001",
                             "message": f"interchange {icn}: IEA02 {iea.el(2)!r} does not match ISA13 {icn!r}"})


def group_entry(gs: Segment) -> dict[str, Any]:
    g: dict[str, Any] = {
        "functional_id": gs.el(1), "sender": gs.el(2), "receiver": gs.el(3), "date": gs.el(4),
        "time": gs.el(5), "control_number": gs.el(6), "agency": gs.el(7), "version": gs.el(8),
        "location": f"segment {gs.no}, line {gs.line}", "implicit": False,
        "sets": [], "errors": [], "warnings": [], "trailer": None,
    }
    if gs.problem:
        g["errors"].append({"code": "X12_SYNTAX", "ak9": None, "message": gs.problem[2]})
    return g


def implicit_group_entry(st: Segment) -> dict[str, Any]:
    """The group entry for sets that arrive without a GS (they are rejected: a 997 answers groups)."""
    return {"functional_id": None, "sender": None, "receiver": None, "date": None, "time": None,
            "control_number": "?", "agency": None, "version": None,
            "location": f"segment {st.no}, line {st.line}", "implicit": True,
            "sets": [], "errors": [{"code": "X12_SYNTAX", "ak9": None,
                                    "message": "transaction set(s) outside a functional group (no GS)"}],
            "warnings": [], "trailer": None}


def check_version(g: dict[str, Any]) -> None:
    """AK9 code 2 for a group whose GS08 version is not mapped, when its 850s were refused for it."""
    if g["implicit"] or set_version(g["version"], None)[0] is not None:
        return
    if any(s.get("reason_code") == "X12_VERSION_UNSUPPORTED" for s in g["sets"]):
        g["errors"].append({"code": "X12_VERSION_UNSUPPORTED", "ak9": "2",
                            "message": f"group {g['control_number']}: GS08 version {g['version']!r} is not supported "
                                       f"(supported: {supported_list()})"})


def check_ge(g: dict[str, Any], ge: Segment | None) -> None:
    """Record the GE trailer of group ``g`` (None: missing) and its count / control-number errors."""
    if g["implicit"]:
        return
    gcn = g["control_number"]
    if ge is None:
        g["errors"].append({"code": "X12_SYNTAX", "ak9": "3", "message": f"group {gcn}: GE trailer missing"})
        return
    g["trailer"] = {"GE01": ge.el(1), "GE02": ge.el(2), "segment": ge.no}
    n = len(g["sets"])
    if ge.el(1).strip() != str(n):
        g["errors"].append({"code": "X12_ENVELOPE_COUNT", "ak9": "5",
                            "message": f"group {gcn}: GE01 says {ge.el(1)!r} transaction sets, {n} received"})
    if ge.el(2).strip() != gcn.strip():
        g["errors"].append({"code": "X12_CONTROL_NUMBER", "ak9": "4",
                            "message": f"group {gcn}: GE02 {ge.el(2)!r} does not match GS06 {gcn!r}"})
