"""The X12 versions of the 850 this reader maps, and the element rules that differ between them.

A set's version is ST03 (implementation convention reference, 004020+/005010: it names the guide the set
follows) when it starts with a six-digit version, else GS08 of its functional group (``004010``,
``004010VICS``, ``005010`` ...: the first six characters; an industry suffix is ignored).

Supported: 003040, 003050, 003060, 003070, 004010, 004020, 004030, 004040, 004050, 004060, 005010. For the
elements the 850 reader maps, these releases differ only in dates (ASC X12 data element dictionary;
the element lists of stupidedi's version definitions, e.g. kputnam/stupidedi
``lib/stupidedi/versions/003050/segment_defs/DTM.rb`` against ``.../004010/segment_defs/DTM.rb``):

- element 373 (Date: BEG05, DTM02) is ``YYMMDD`` (DT 6/6) before 004010 and ``CCYYMMDD`` (DT 8/8) from
  004010 (the Y2K change); a date of the other length breaks the version's rule (997 AK4 code 4 too short /
  5 too long), a date that is not a calendar day is AK4 code 8;
- DTM05 is element 624 (Century, ``19``/``20``) before 004010 and element 1250 (date/time period format
  qualifier) from 004010: a six-digit date takes its century from DTM05 when given, else the POSIX
  ``%y`` rule (``69``-``99`` -> 19xx, ``00``-``68`` -> 20xx);
- GS04 (group date) is ``YYMMDD`` before 004010 and ``CCYYMMDD`` from 004010: the 997 answering a group
  is written in the group's version with the matching date width.

Anything else (002xxx, 003010-003030, 005020+, a version that is not six digits) is
``X12_VERSION_UNSUPPORTED``: the set is quarantined and the 997 says "version not supported" (AK5 code 1,
AK9 code 2 when GS08 names it), never "segments in error".
"""

from __future__ import annotations

from dataclasses import dataclass

from som_pipeline.ingest.x12.tokenizer import DIGITS


@dataclass(frozen=True)
class Version:
    """The element rules of one X12 release (as far as the 850 mapping and the 997 need them)."""

    code: str  # six digits, e.g. "003050"
    date_digits: int  # element 373: 6 (YYMMDD) or 8 (CCYYMMDD)
    dtm_century: bool  # DTM05 is element 624 Century (before 004010)

    @property
    def date_format(self) -> str:
        return "YYMMDD" if self.date_digits == 6 else "CCYYMMDD"


def _v(code: str) -> Version:
    y2k = code >= "004010"
    return Version(code, 8 if y2k else 6, not y2k)


SUPPORTED_VERSIONS: dict[str, Version] = {c: _v(c) for c in (
    "003040", "003050", "003060", "003070",
    "004010", "004020", "004030", "004040", "004050", "004060",
    "005010",
)}
DEFAULT_VERSION = SUPPORTED_VERSIONS["004010"]


def version_code(text: str | None) -> str | None:
    """The six-digit version a GS08 / ST03 value starts with (None: it does not start with one)."""
    t = (text or "").strip()
    return t[:6] if len(t) >= 6 and DIGITS.match(t[:6]) else None


def set_version(gs08: str | None, st03: str | None) -> tuple[Version | None, str]:
    """``(rules, what was sent)`` of a set: ST03 when it names a version, else GS08; rules None = unsupported."""
    code = version_code(st03) or version_code(gs08)
    sent = (st03 or "").strip() if version_code(st03) else (gs08 or "").strip()
    return (SUPPORTED_VERSIONS.get(code) if code else None), sent


def supported_list() -> str:
    return ", ".join(SUPPORTED_VERSIONS)
