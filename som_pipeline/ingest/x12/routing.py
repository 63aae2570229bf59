"""The routed sets of a parsed X12 file as an X12 file of their own (what the EDI channel hands on to tracking).

:func:`~.parse.parse_x12` with ``routed_sets`` leaves those sets out of the file's records and keeps their text
(``raw``) in the interchange entries. :func:`routed_x12` copies them, per interchange that has any, into:

- the interchange's ISA, exactly as received (same ISA13, same separators, so a reader sees the same interchange);
- per functional group holding routed sets: its GS as received, those ST..SE sets as received (in order), and a GE
  whose GE01 counts them (GE02 as received, GS06 when the group had no GE);
- an IEA whose IEA01 counts the groups copied (IEA02 as received, ISA13 when there was none).

Segments are byte-faithful copies (only the GE/IEA counts are ours; segments are separated by a line break unless
the terminator is one). Everything else (the other sets, segments outside any set, ISA/GS/GE/IEA problems) stays
with the original file, whose capture quarantines or acknowledges it: a segment is never in both. Sets of an
interchange flagged duplicate are not routed (:func:`~.duplicates.flag_duplicate_interchanges` quarantines them).
The text is deterministic (same file, same text): handing it on twice is recognised by its content hash.
"""

from __future__ import annotations

from typing import Any

from som_pipeline.ingest.x12.tokenizer import BREAKS


def routed_sets_of(ic: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(group, its routed sets)`` for each functional group of ``ic`` that has routed sets."""
    out = []
    for g in ic.get("groups", []):
        sets = [s for s in g.get("sets", []) if s.get("routed")]
        if sets and not g.get("implicit"):
            out.append((g, sets))
    return out


def routed_x12(interchanges: list[dict[str, Any]]) -> tuple[str, int]:
    """The routed sets of ``interchanges`` (``ParseResult.extras["interchanges"]``) as X12 text, and how many
    sets it holds ("" and 0 when there are none)."""
    parts: list[str] = []
    n = 0
    for ic in interchanges:
        groups = routed_sets_of(ic)
        if not groups or ic.get("duplicate_of"):
            continue
        seps = ic["separators"]
        el, term = seps["element"], seps["segment"]
        eol = "" if term in BREAKS else "\n"

        segs = [ic["isa_raw"]]
        for g, sets in groups:
            segs.append(g["raw"])
            # a set cut off at the very end of the file has no terminator after its last segment: close it
            segs += [s["raw"] if s["raw"].endswith(term) else s["raw"] + term for s in sets]
            # a damaged trailer element (blank, a stray line break) gives way to the header's control number
            ge02 = ((g.get("trailer") or {}).get("GE02") or "").strip() or g.get("control_number") or ""
            segs.append(f"GE{el}{len(sets)}{el}{ge02}{term}")
            n += len(sets)
        iea02 = ((ic.get("trailer") or {}).get("IEA02") or "").strip() or ic.get("isa_control_number") or ""
        segs.append(f"IEA{el}{len(groups)}{el}{iea02}{term}")
        parts.append(eol.join(segs) + eol)
    return "".join(parts), n


def encode_like(text: str, encoding: str | None) -> bytes:
    """``text`` in the encoding the original file came in (UTF-8 when it has none or cannot hold the text)."""
    try:
        return text.encode(encoding or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return text.encode("utf-8")
