"""One transaction set (ST..SE) closed by the envelope walker: its identity, its syntax checks (997 AK5/AK3
codes), and the verdict: rows from the 850 reader, or one rejected record.

997 set codes follow X12 (element 718): AK5 1 = set not supported (also: an 850 in an X12 version the
reader does not map, :mod:`.versions`, quarantined ``X12_VERSION_UNSUPPORTED``), 2 = trailer missing, 3 = ST02/SE02 do
not match, 4 = SE01 segment count wrong, 5 = segments in error, 6 = missing/invalid set id, 7 = missing
control number. The AK3 notes name the broken segments (element 720 codes from the tokenizer).

A set whose ST01 the caller routes elsewhere (``parse_x12(routed_sets=...)``, e.g. a 214 handed on to tracking) is
not judged as an 850: :func:`route_set` gives it an outcome entry with ``routed`` (its ST01) and ``raw`` (its text,
to be copied to the file handed on), and no rows and no rejection: it is not a record of this file, the reader it
goes to counts it. Its 997 verdict is that reader's (``judge``), else the syntax checks below without the ST01 one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from som_pipeline.ingest.common import Rejection
from som_pipeline.ingest.x12.po850 import SUPPORTED_SET, map_850, order_ref_of
from som_pipeline.ingest.x12.products import DEFAULT_RULES, SkuRules
from som_pipeline.ingest.x12.tokenizer import DIGITS, Segment
from som_pipeline.ingest.x12.versions import set_version, supported_list

RECORD_KIND = "transaction_set"


@dataclass
class OpenSet:
    """A set being read: its interchange and group entries, its ordinal in the file, its segments so far."""

    ic: dict[str, Any]
    group: dict[str, Any]
    ordinal: int
    segments: list[Segment] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"ISA {self.ic['isa_control_number']} > GS {self.group['control_number']} > ST {self.segments[0].el(2)}"


@dataclass
class SetSyntax:
    """The syntax problems of one set: ``problems`` are (reason code, message), the first is the rejection
    reason; ``ak5`` the 997 AK5 codes, ``ak3`` the 997 AK3 notes."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    ak5: list[str] = field(default_factory=list)
    ak3: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SetVerdict:
    """What a closed set yields: raw rows (accepted) or a rejection, and the outcome entry for the 997."""

    rows: list[dict[str, Any]]
    rejection: Rejection | None
    outcome: dict[str, Any]


def close_set(s: OpenSet, se: Segment | None, text: str, sku_rules: SkuRules = DEFAULT_RULES) -> SetVerdict:
    """Check the set ``s`` (``se``: its SE trailer, None when cut off) and map it when it is sound."""
    segs = s.segments
    st = segs[0]
    st01, st02 = st.el(1), st.el(2)
    path = s.path
    record_id = f"{path} #{s.ordinal}"
    location = f"{path} (segments {st.no}-{segs[-1].no}, line {st.line})"
    raw = text[st.start:segs[-1].end]
    version, sent = set_version(s.group.get("version"), st.el(3))
    syntax = check_syntax(segs, se, implicit_group=s.group["implicit"],
                          version_problem=None if version is not None else sent)
    sender = s.ic["sender_id"]
    outcome: dict[str, Any] = {"ordinal": s.ordinal, "record_id": record_id, "location": location,
                               "st01": st01, "st02": st02, "ak3": syntax.ak3,
                               "version": version.code if version else sent}
    if not syntax.problems and version is not None:
        meta = {"record_id": record_id, "record_kind": RECORD_KIND, "record_location": location,
                "order_key": record_id, "raw": raw}
        mapped = map_850(segs, sender, path, meta, version, sku_rules)
        if isinstance(mapped, list):
            outcome.update(parse_status="accepted", reason_code=None, message=None, ak5_codes=[])
            return SetVerdict(mapped, None, outcome)
        syntax.problems.append((mapped.reason, mapped.message))
        syntax.ak3.extend(mapped.ak3)
        syntax.ak5.append("5")
        order_ref = mapped.order_ref
    else:
        order_ref = order_ref_of(segs, sender)
    reason, message = rejection_reason(syntax.problems)
    outcome.update(parse_status="rejected", reason_code=reason, message=message,
                   ak5_codes=list(dict.fromkeys(syntax.ak5))[:5])
    return SetVerdict([], Rejection(record_id, RECORD_KIND, location, reason, message, raw, order_ref), outcome)


# The verdict of the reader a routed set goes to: (the set, its SE or None, the text) -> an outcome entry with at
# least parse_status ("accepted" | "rejected"), reason_code, message, ak5_codes, ak3 (e.g. tracking's judge_214).
RoutedJudge = Callable[["OpenSet", Segment | None, str], dict[str, Any]]


def route_set(s: OpenSet, se: Segment | None, text: str, judge: RoutedJudge | None = None) -> dict[str, Any]:
    """The outcome entry of a set handed on to another reader: no rows, no rejection (see the module doc).

    ``parse_status`` etc. are ``judge``'s verdict (what the reader it goes to will make of it), for the 997; without
    a judge, the syntax checks (ST02, broken segments, SE) only."""
    segs = s.segments
    st = segs[0]
    path = s.path
    outcome: dict[str, Any] = {"ordinal": s.ordinal, "record_id": f"{path} #{s.ordinal}",
                               "location": f"{path} (segments {st.no}-{segs[-1].no}, line {st.line})",
                               "st01": st.el(1), "st02": st.el(2), "version": s.group.get("version"),
                               "routed": st.el(1).strip(), "raw": text[st.start:segs[-1].end]}
    if judge is not None:
        verdict = judge(s, se, text)
        outcome.update({k: verdict.get(k) for k in ("parse_status", "reason_code", "message", "ak3")},
                       ak5_codes=list(verdict.get("ak5_codes") or []))
        return outcome
    syntax = SetSyntax()
    if not st.el(2).strip():
        syntax.problems.append(("X12_SYNTAX", "ST02 (transaction set control number) is missing"))
        syntax.ak5.append("7")
    _check_segments(syntax, segs)
    _check_se(syntax, segs, se)
    reason, message = rejection_reason(syntax.problems) if syntax.problems else (None, None)
    outcome.update(parse_status="rejected" if syntax.problems else "accepted", reason_code=reason, message=message,
                   ak3=syntax.ak3, ak5_codes=list(dict.fromkeys(syntax.ak5))[:5])
    return outcome


def rejection_reason(problems: list[tuple[str, str]]) -> tuple[str, str]:
    """The reason code (the first problem's) and a message naming up to four problems."""
    more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
    return problems[0][0], "; ".join(m for _, m in problems[:4]) + more


# ------------------------------------------------------------------------------------------------
# Syntax checks: ST, the segments in between, SE
# ------------------------------------------------------------------------------------------------
def check_syntax(segs: list[Segment], se: Segment | None, *, implicit_group: bool,
                 version_problem: str | None = None) -> SetSyntax:
    """All syntax problems of the set ``segs`` (ST first; SE last when ``se`` is given).

    ``version_problem``: the version as sent when the reader does not map it (None: supported). An 850 in
    such a version is judged on that alone (AK5 code 1): its segments follow rules we do not know."""
    out = SetSyntax()
    if implicit_group:
        out.problems.append(("X12_SYNTAX", "the transaction set is not inside a functional group (no GS before ST)"))
    _check_st(out, segs[0])
    if version_problem is not None and not out.problems:
        out.problems.append(("X12_VERSION_UNSUPPORTED",
                             f"X12 version {version_problem or '(none: GS08 is empty)'!r} of this 850 is not "
                             f"supported (supported: {supported_list()}): acknowledged as not supported"))
        out.ak5.append("1")
        return out
    _check_segments(out, segs)
    _check_se(out, segs, se)
    return out


def _check_st(out: SetSyntax, st: Segment) -> None:
    st01, st02 = st.el(1), st.el(2)
    if st01 != SUPPORTED_SET and DIGITS.match(st01):
        out.problems.append(("X12_UNSUPPORTED_SET",
                             f"transaction set {st01} is not a purchase order (850): acknowledged as not supported"))
        out.ak5.append("1")
    elif st01 != SUPPORTED_SET:
        out.problems.append(("X12_SYNTAX", f"ST01 {st01!r} is not a transaction set identifier"))
        out.ak5.append("6")
    if not st02.strip():
        out.problems.append(("X12_SYNTAX", "ST02 (transaction set control number) is missing"))
        out.ak5.append("7")


def _check_segments(out: SetSyntax, segs: list[Segment]) -> None:
    """Segments the tokenizer marked broken (terminator missing, no valid id): one AK3 each."""
    bad = [(i, x) for i, x in enumerate(segs, 1) if x.problem]
    for i, x in bad:
        code, elem_pos, msg = x.problem  # type: ignore[misc]
        out.problems.append(("X12_SYNTAX", msg))
        out.ak3.append({"segment_id": x.id, "position": i, "code": code,
                        "elements": [{"position": elem_pos, "code": "6"}] if elem_pos else []})
    if bad:
        out.ak5.append("5")


def _check_se(out: SetSyntax, segs: list[Segment], se: Segment | None) -> None:
    """The SE trailer: present, SE01 = the segment count, SE02 = ST02."""
    if se is None:
        last = segs[-1]
        out.problems.append(("X12_SYNTAX", f"the transaction set is cut off after segment {last.no} "
                                           f"(line {last.line}): no SE trailer"))
        out.ak5.append("2")
        return
    count = len(segs)
    st02 = segs[0].el(2)
    if se.el(1).strip() != str(count):
        out.problems.append(("X12_SEGMENT_COUNT", f"SE01 says {se.el(1)!r} segments, the set has {count} (ST to SE)"))
        out.ak5.append("4")
    if se.el(2).strip() != st02.strip():
        out.problems.append(("X12_CONTROL_NUMBER", f"SE02 {se.el(2)!r} does not match ST02 {st02!r}"))
        out.ak5.append("3")
