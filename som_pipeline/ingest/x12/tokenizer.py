"""X12 tokenizer: the separators an ISA declares, and the segments they cut the text into.

The ISA segment declares the separators (element = the character after ``ISA``, repetition = ISA11 when
it is not a letter/digit, component = ISA16, segment terminator = the character after ISA16). Nothing is
hard-coded: ``|``, ``^``, a newline as terminator all work. Segments are stripped of surrounding whitespace
(newlines, CRLF, indentation between segments are fine); a line break *inside* a stripped segment means a
terminator is missing and two segments ran together: the segment is marked broken (``Segment.problem``)
and its set is rejected.

Tolerated ISA deviations (all four EDI.Net samples need them; each is reported in the interchange's
``warnings``; a TA1 would be the place to tell the partner):
- an ISA that is not 106 characters fixed-width (short padded fields, a line break inside) is read by its
  element separators, as long as it has its 16 elements and consistent separators;
- an ISA whose ISA16 is missing (``...*T*~`` followed by a line break) is recognised when the GS segment
  after it ends with that same character: it is the segment terminator, and the component separator is
  unknown (not needed to read an 850).
An ISA that cannot be read this way (cut short, alphanumeric or equal separators) raises :class:`X12Error`:
nothing after it can be split reliably.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)  # ISA01..ISA16
ISA_LENGTH = 106  # "ISA" + 16 separators + ISA01..ISA16 + the segment terminator
_ISA_WINDOW = 400  # an ISA (even badly padded) ends well within this many characters
WS = " \t\r\n\x0b\x0c\ufeff"  # a BOM between concatenated files counts as whitespace
BREAKS = "\r\n"
DIGITS = re.compile(r"[0-9]+\Z")
_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")


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
class Isa:
    """An ISA segment read: its fields, the separators it declares and where the next segment starts."""

    fields: list[str]  # ISA01..ISA16 as sent (ISA16 "" when missing)
    seps: Separators
    segment: Segment
    next_pos: int
    next_line: int
    warnings: list[str]


def show(ch: str | None) -> str:
    """A separator character as a reader can see it in a message."""
    return {None: "(none)", "\n": "'\\n'", "\r": "'\\r'", "\t": "'\\t'", " ": "' '"}.get(ch, f"'{ch}'")


def preview(s: str, n: int = 60) -> str:
    """The start of a segment's text for a message (line breaks shown as ``\\n``)."""
    s = s.replace("\r", "\\r").replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in WS:
        pos += 1
    return pos


def looks_like_isa(text: str, pos: int) -> bool:
    return text.startswith("ISA", pos) and pos + 3 < len(text) and not text[pos + 3].isalnum()


# ------------------------------------------------------------------------------------------------
# ISA: separators and fields
# ------------------------------------------------------------------------------------------------
def read_isa(text: str, pos: int, no: int, line: int) -> Isa:
    """Read the ISA starting at ``pos``: its 16 fields, the separators and where the next segment starts."""
    if not looks_like_isa(text, pos):
        raise X12Error("expected an ISA segment (interchange header)")
    elem = text[pos + 3]
    if elem in WS:
        raise X12Error(f"ISA declares whitespace {show(elem)} as the element separator")
    cuts = _isa_element_cuts(text, pos, elem)
    fields = [text[a + 1:b] for a, b in zip(cuts, cuts[1:], strict=False)]  # ISA01..ISA15
    _check_field_widths(fields, elem)
    seps, end, warnings = _isa_separators(text, cuts[-1], elem, fields[10])
    _check_separators(seps)
    isa_text = text[pos:end - 1]
    if seps.component is not None:
        fields.append(seps.component)
        warnings += _fixed_width_warnings(fields, isa_text, end - pos)
    else:
        fields.append("")
    if not DIGITS.match(fields[12].strip()) or len(fields[12].strip()) != 9:
        warnings.append(f"ISA13 '{fields[12].strip()}' is not a 9-digit control number")
    seg = Segment(no, line, pos, end, isa_text.strip(WS), ["ISA", *fields])
    return Isa(fields, seps, seg, end, line + text.count("\n", pos, end), warnings)


def _isa_element_cuts(text: str, pos: int, elem: str) -> list[int]:
    """Offsets of the 16 element separators of the ISA at ``pos`` (the first is right after ``ISA``)."""
    cuts: list[int] = [pos + 3]
    limit = min(len(text), pos + _ISA_WINDOW)
    while len(cuts) < 16:
        j = text.find(elem, cuts[-1] + 1, limit)
        if j < 0:
            raise X12Error(f"the ISA segment is cut short: {len(cuts) - 1} of its 16 elements found "
                           f"(element separator {show(elem)})")
        cuts.append(j)
    return cuts


def _check_field_widths(fields: list[str], elem: str) -> None:
    for k, (value, width) in enumerate(zip(fields, ISA_WIDTHS, strict=False), 1):
        if len(value.strip()) > width:
            raise X12Error(f"ISA{k:02d} '{value.strip()[:30]}' is longer than {width} characters: "
                           f"the ISA is malformed (element separator {show(elem)})")


def _isa_separators(text: str, k16: int, elem: str, isa11: str) -> tuple[Separators, int, list[str]]:
    """The separators, the offset just after the ISA's terminator, and warnings. ``k16`` is the offset of
    the element separator before ISA16. ISA16 present: the next character is the component separator and
    the one after terminates the segment; ISA16 missing: the next character terminates it. Which one is
    decided by what follows (a GS, IEA or ST segment cut by that terminator)."""
    c = text[k16 + 1] if k16 + 1 < len(text) else ""
    after = text[k16 + 2] if k16 + 2 < len(text) else ""
    if not c:
        raise X12Error("the file ends inside the ISA segment (no ISA16 / segment terminator)")
    rep = isa11.strip()
    rep_sep = rep if len(rep) == 1 and not rep.isalnum() and rep not in WS else None
    warnings: list[str] = []

    def gs_follows(start: int, term: str, comp: str | None) -> bool:
        end = text.find(term, start) if term else -1
        seg = text[start:end if end >= 0 else len(text)].strip(WS)
        return (seg.startswith(("GS" + elem, "IEA" + elem, "ST" + elem)) and not any(b in seg for b in BREAKS)
                and (comp is None or not seg.endswith(comp)))

    full = Separators(elem, after, c, rep_sep)  # ISA16 present: c = component, the next char terminates
    short = Separators(elem, c, None, rep_sep)  # ISA16 missing: c terminates the ISA
    if after and not after.isalnum() and gs_follows(k16 + 3, after, c):
        return full, k16 + 3, warnings
    if not c.isalnum() and c not in " \t" and gs_follows(k16 + 2, c, None):
        warnings.append(f"ISA16 (component separator) is missing: {show(c)} read as the segment terminator")
        return short, k16 + 2, warnings
    if not after:
        raise X12Error("the file ends right after ISA16: no segment terminator")
    return full, k16 + 3, warnings


def _check_separators(seps: Separators) -> None:
    named = [("element", seps.element), ("segment terminator", seps.segment)]
    if seps.component is not None:
        named.append(("component", seps.component))
    if seps.repetition is not None:
        named.append(("repetition", seps.repetition))
    for name, ch in named:
        if len(ch) != 1 or ch.isalnum():
            raise X12Error(f"ISA declares an unusable {name} separator {show(ch)} (letters and digits are not allowed)")
        if name != "segment terminator" and ch in WS:
            raise X12Error(f"ISA declares whitespace {show(ch)} as the {name} separator")
    if seps.segment in " \t":
        raise X12Error(f"ISA declares {show(seps.segment)} as the segment terminator")
    chars = [ch for _, ch in named]
    if len(set(chars)) != len(chars):
        raise X12Error("ISA declares the same character for two separators: "
                       + ", ".join(f"{name} {show(ch)}" for name, ch in named))


def _fixed_width_warnings(fields: list[str], isa_text: str, length: int) -> list[str]:
    """A warning when the ISA (``length`` characters with its terminator) is not the fixed-width 106."""
    off = [f"ISA{k:02d} has {len(v)}" for k, (v, w) in enumerate(zip(fields, ISA_WIDTHS, strict=False), 1)
           if len(v) != w]
    brk = any(b in isa_text for b in BREAKS)
    if not (off or brk):
        return []
    return [f"the ISA is not fixed-width ({length} characters with its terminator, expected "
            f"{ISA_LENGTH}{'; a line break inside' if brk else ''}"
            f"{'; ' + ', '.join(off) + ' characters' if off else ''}); read by its element separators"]


# ------------------------------------------------------------------------------------------------
# Segments
# ------------------------------------------------------------------------------------------------
def next_segment(text: str, pos: int, line: int, no: int, seps: Separators) -> tuple[Segment | None, int, int]:
    """The segment starting at or after ``pos`` -> ``(segment or None at end, next pos, next line)``."""
    while True:  # empty segments (two terminators in a row) carry nothing: skipped
        start = skip_ws(text, pos)
        line += text.count("\n", pos, start)
        if start >= len(text):
            return None, start, line
        cut = text.find(seps.segment, start)
        end = len(text) if cut < 0 else cut + 1
        body = text[start:end if cut < 0 else cut].rstrip(WS)
        if body:
            break
        line += text.count("\n", start, end)
        pos = end
    seg = Segment(no, line, start, end, body, body.split(seps.element))
    if any(b in body for b in BREAKS):
        k = next(i for i, v in enumerate(seg.elements) if any(b in v for b in BREAKS))
        tail = re.split(r"[\r\n]+", body, maxsplit=1)[1].split(seps.element)[0].strip()[:10]
        seg.elements[0] = seg.elements[0].split("\n")[0].split("\r")[0].strip()
        seg.problem = ("8", k if k else None, (
            f"segment {no} (line {line}) '{preview(body)}' contains a line break: the segment terminator "
            f"{show(seps.segment)} is missing, so two segments ran together ({seg.elements[0]} and {tail})"))
    elif not _SEG_ID.match(seg.id):
        seg.problem = ("1", None, f"segment {no} (line {line}) '{preview(body)}' has no valid segment id")
    return seg, end, line + text.count("\n", start, end)


def split_segments(text: str) -> list[Segment]:
    """All segments of an X12 text (separators read from each ISA); for tests and tools.

    Raises :class:`X12Error` when an ISA cannot be read."""
    out: list[Segment] = []
    pos = skip_ws(text, 0)
    line = 1 + text.count("\n", 0, pos)
    seps: Separators | None = None
    while pos < len(text):
        if looks_like_isa(text, skip_ws(text, pos)) or seps is None:
            start = skip_ws(text, pos)
            isa = read_isa(text, start, len(out) + 1, line + text.count("\n", pos, start))
            out.append(isa.segment)
            seps, pos, line = isa.seps, isa.next_pos, isa.next_line
            continue
        seg, pos, line = next_segment(text, pos, line, len(out) + 1, seps)
        if seg is None:
            break
        out.append(seg)
    return out
