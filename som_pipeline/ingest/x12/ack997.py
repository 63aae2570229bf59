"""The 997 functional acknowledgment answering one received interchange, and its file name.

997 codes follow X12: AK5 (element 717) A = accepted, R = rejected, with the set error codes (element
718) of :mod:`.transaction_set`; AK9 (element 715) A (all accepted), E (all accepted, group errors noted),
P (some accepted), R (none accepted), with the group error codes (element 716) of :mod:`.envelope`.

Addressing: each received functional group is answered to its own application sender. The received groups
are gathered by (GS03 receiver, GS02 sender, version) and each gathering gets its own FA group with GS02/GS03
reversed (GS02 = the received GS03, GS03 = the received GS02), GS08 = the received version (the 997's
AK1..AK9 are the same in every release from 003010 on; GS04 is YYMMDD before 004010), one 997 set per
received group. Group control numbers (GS06) are ``ack_control_number`` + 0, 1, ... (:func:`ack_group_count`
of them are used; the caller does not reuse them).

A routed set (a 214 the EDI channel hands on to tracking, :mod:`.routing`) is answered in the same 997 as the
other sets of its interchange, with the verdict of the reader it goes to (``AK5*A``, or ``AK5*R`` with its codes).

A duplicate interchange (``interchange["duplicate_of"]`` set by :func:`.duplicates.flag_duplicate_interchanges`)
is not acknowledged twice: it is answered with an interchange holding only a TA1 (TA104 ``R``, TA105 ``025``
duplicate interchange control number; X12 interchange note codes, element I18) and no FA group.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from som_pipeline.ingest.common import Captured
from som_pipeline.ingest.x12.tokenizer import BREAKS, DIGITS, Separators
from som_pipeline.ingest.x12.versions import DEFAULT_VERSION, version_code


def accepted_set_ids(captured: Captured) -> set[str]:
    """Record ids of the sets :func:`normalise` finally accepted (X12 order_key = record_id, and
    ``capture_id`` = ``<sha256[:16]>/<order_key>``), and of the routed sets (214s handed on to tracking) that
    their reader accepts: the input :func:`build_997` needs."""
    routed = {s["record_id"] for ic in captured.extras.get("interchanges") or [] for g in ic.get("groups", [])
              for s in g.get("sets", []) if s.get("routed") and s.get("parse_status") == "accepted"}
    return {cid.split("/", 1)[1] for cid in captured.headers["capture_id"].to_list()} | routed


def build_997(interchange: dict[str, Any], accepted_record_ids: set[str], ack_control_number: int,
              now: datetime) -> str:
    """A 997 interchange (ISA..IEA) acknowledging one received interchange.

    ``interchange`` is one entry of ``ParseResult.extras["interchanges"]``; ``accepted_record_ids`` the
    record ids finally accepted after :func:`normalise` (a set the parser accepted but the normaliser
    rejected is answered ``AK5*R*5``). One 997 transaction set per received functional group (each with
    one AK1), in FA groups addressed per received sender (see the module doc); separators as received;
    ISA sender/receiver swapped; ISA13 = ``ack_control_number``; GS06 = ``ack_control_number`` + k.
    """
    if not 1 <= ack_control_number <= 999_999_999 - max(0, ack_group_count(interchange) - 1):
        raise ValueError(f"ack_control_number must be 1..999999999, got {ack_control_number}")
    rs = interchange["separators"]
    elem, term, rep = rs["element"], rs["segment"], rs["repetition"]
    comp = rs["component"] or next(c for c in ">:^\\!" if c not in (elem, term, rep))
    w = _Writer(Separators(elem, term, comp, rep), "" if term in BREAKS else "\n")
    icn = f"{ack_control_number:09d}"
    _write_isa(w, interchange, now, icn)
    if interchange.get("duplicate_of"):
        w.seg("TA1", w.c(interchange.get("isa_control_number")), w.c(interchange.get("date")),
              w.c(interchange.get("time")), "R", "025")
        w.seg("IEA", 0, icn)
        return "".join(w.out)
    fa_groups = _fa_groups(interchange)
    for k, (key, groups) in enumerate(fa_groups.items()):
        gcn = str(ack_control_number + k)
        _write_gs(w, key, now, gcn)
        for n, g in enumerate(groups, 1):
            _write_group_ack(w, g, f"{n:04d}", accepted_record_ids)
        w.seg("GE", len(groups), gcn)
    w.seg("IEA", len(fa_groups), icn)
    return "".join(w.out)


def ack_group_count(interchange: dict[str, Any]) -> int:
    """How many FA groups (so GS06 control numbers) the 997 answering ``interchange`` uses."""
    return 0 if interchange.get("duplicate_of") else len(_fa_groups(interchange))


def _fa_groups(interchange: dict[str, Any]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The received groups gathered by our (GS02, GS03, GS08) answer: received GS03, GS02, six-digit version
    (a missing sender/receiver falls back to the ISA ids; a version that is not six digits to 004010)."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for g in interchange.get("groups", []):
        if g.get("implicit"):
            continue
        ours = (g.get("receiver") or "").strip() or (interchange.get("receiver_id") or "").strip()
        theirs = (g.get("sender") or "").strip() or (interchange.get("sender_id") or "").strip()
        version = version_code(g.get("version")) or DEFAULT_VERSION.code
        out.setdefault((ours, theirs, version), []).append(g)
    return out


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


# ------------------------------------------------------------------------------------------------
# Writing the 997
# ------------------------------------------------------------------------------------------------
class _Writer:
    """Collects segments written with the received separators."""

    def __init__(self, seps: Separators, eol: str) -> None:
        self.seps = seps
        self.eol = eol
        self.out: list[str] = []

    def seg(self, *els: Any) -> None:
        self.out.append(self.seps.element.join(str(e) for e in els) + self.seps.segment + self.eol)

    def c(self, v: Any, width: int | None = None) -> str:
        return _clean(v, self.seps, width)


def _clean(value: Any, seps: Separators, width: int | None = None) -> str:
    """A value safe to write as an element: ASCII, no separators or control characters."""
    s = unicodedata.normalize("NFKD", "" if value is None else str(value)).encode("ascii", "ignore").decode()
    banned = {seps.element, seps.segment, seps.component, seps.repetition}
    s = "".join(ch for ch in s if ch not in banned and ch.isprintable())
    if width is not None:
        s = s.strip()[:width].ljust(width)
    return s


def _write_isa(w: _Writer, interchange: dict[str, Any], now: datetime, icn: str) -> None:
    """ISA with sender and receiver swapped, the received separators, version and usage."""
    c, rep = w.c, w.seps.repetition
    isa11 = rep if rep else (c(interchange.get("standards_id"), 1).strip() or "U")
    version = c(interchange.get("version")).strip()
    version = version if DIGITS.match(version) and len(version) == 5 else "00401"
    usage = interchange.get("usage") if interchange.get("usage") in ("P", "T") else "P"
    w.seg("ISA", "00", " " * 10, "00", " " * 10,
          c(interchange.get("receiver_qualifier"), 2), c(interchange.get("receiver_id"), 15),
          c(interchange.get("sender_qualifier"), 2), c(interchange.get("sender_id"), 15),
          now.strftime("%y%m%d"), now.strftime("%H%M"), isa11, version, icn, "0", usage, w.seps.component)


def _write_gs(w: _Writer, key: tuple[str, str, str], now: datetime, gcn: str) -> None:
    """GS (functional id FA) from us (the received GS03) to the received GS02, in the received version."""
    ours, theirs, version = key
    day = now.strftime("%Y%m%d" if version >= "004010" else "%y%m%d")  # GS04 is YYMMDD before 004010
    w.seg("GS", "FA", w.c(ours), w.c(theirs), day, now.strftime("%H%M"), gcn, "X", version)


def _write_group_ack(w: _Writer, g: dict[str, Any], stcn: str, accepted_record_ids: set[str]) -> None:
    """One 997 set (ST..SE) answering group ``g``: AK1, an AK2..AK5 per received set, AK9."""
    c = w.c
    start = len(w.out)
    w.seg("ST", "997", stcn)
    w.seg("AK1", c(g.get("functional_id")), c(g.get("control_number")))
    accepted = sum(_write_set_ack(w, s, accepted_record_ids) for s in g.get("sets", []))
    received = len(g.get("sets", []))
    trailer = g.get("trailer") or {}
    included = str(trailer.get("GE01", "")).strip()
    included = included if DIGITS.match(included) and len(included) <= 6 else str(received)
    group_codes = [e["ak9"] for e in g.get("errors", []) if e.get("ak9")][:5]
    w.seg("AK9", _ak9_status(received, accepted, bool(g.get("errors"))), included, received, accepted, *group_codes)
    w.seg("SE", len(w.out) - start + 1, stcn)


def _write_set_ack(w: _Writer, s: dict[str, Any], accepted_record_ids: set[str]) -> bool:
    """AK2, then AK5*A (accepted by the parser and the normaliser), else AK3/AK4 notes and AK5*R."""
    c = w.c
    w.seg("AK2", c(s.get("st01")), c(s.get("st02")))
    if s.get("parse_status") == "accepted" and s.get("record_id") in accepted_record_ids:
        w.seg("AK5", "A")
        return True
    for note in s.get("ak3", []):
        sid = re.sub(r"[^A-Z0-9]", "", c(note.get("segment_id")).upper())[:3]
        w.seg("AK3", sid if len(sid) >= 2 else "ZZ", note.get("position", 1), "", note.get("code", "8"))
        for e in note.get("elements", []):
            bad = c(e.get("value"))[:99]  # AK404: a copy of the bad element, when known
            w.seg("AK4", e.get("position", 1), c(e.get("ref")), e.get("code", "6"), *([bad] if bad else []))
    codes = s.get("ak5_codes") or ["5"]
    w.seg("AK5", "R", *codes[:5])
    return False


def _ak9_status(received: int, accepted: int, group_errors: bool) -> str:
    if received and accepted == received:
        return "E" if group_errors else "A"
    if accepted:
        return "P"
    return "R"
