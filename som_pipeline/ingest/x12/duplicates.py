"""Duplicate interchanges: an ISA13 control number its sender (ISA05/ISA06) already used.

X12 makes the interchange control number unique per sender; a second interchange with the same one is a
re-transmission (or a sender's numbering fault), reported with TA1 note code 025 "Duplicate Interchange
Control Number" (X12 element I18). :func:`flag_duplicate_interchanges` is a pure step after
:func:`~.parse.parse_x12`: given the keys already acknowledged (``ops.edi_acks`` and the earlier files of the
run), the sets of a duplicate interchange are taken out of the rows and quarantined
``X12_DUPLICATE_INTERCHANGE`` (sets the parser already rejected keep their reason: nothing is counted twice),
and the interchange entry gets ``duplicate_of`` (so :func:`~.ack997.build_997` answers with a TA1, not a
second 997) and an envelope error. A routed set of a duplicate interchange (a 214 the channel would hand on to
tracking) is not handed on again: it becomes a record of this file, quarantined ``X12_DUPLICATE_INTERCHANGE`` (or
with its reader's reason when that reader would reject it), so it is still counted once and kept with its text.
A byte-identical re-drop never gets here: the ledger's content hash catches it first.

Not done: a validity window (translators often forget control numbers after N days); a number reused years
later by a sender whose counter wrapped is flagged too.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from som_pipeline.ingest.common import ParseResult, Rejection
from som_pipeline.ingest.x12.transaction_set import RECORD_KIND

InterchangeKey = tuple[str, str, str]  # (ISA05, ISA06 trimmed, ISA13 trimmed)


def interchange_key(ic: dict[str, Any]) -> InterchangeKey:
    return ((ic.get("sender_qualifier") or "").strip(), (ic.get("sender_id") or "").strip(),
            (ic.get("isa_control_number") or "").strip())


def flag_duplicate_interchanges(result: ParseResult, seen: dict[InterchangeKey, str], source_file: str) -> ParseResult:
    """Mark the interchanges of ``result`` whose key is in ``seen`` (key -> where it was first received) as
    duplicates; add the others to ``seen``. Returns the result with the duplicates' rows turned into
    ``X12_DUPLICATE_INTERCHANGE`` rejections (conservation holds: one record per set either way)."""
    dup_records: dict[str, str] = {}  # record_id -> message
    routed: list[Rejection] = []  # routed sets of duplicates: records of this file after all
    for ic in result.extras.get("interchanges") or []:
        key = interchange_key(ic)
        if not key[2]:
            continue
        if key not in seen:
            seen[key] = f"{source_file} ({ic.get('location')})"
            continue
        first = seen[key]
        ic["duplicate_of"] = first
        msg = (f"interchange {key[2]} from sender {key[0]}/{key[1]} was already received in {first}: "
               "duplicate interchange control number (TA1 note 025); its sets are not captured again")
        ic["errors"].append({"code": "X12_DUPLICATE_INTERCHANGE", "ta1": "025", "message": msg})
        for g in ic.get("groups", []):
            for s in g.get("sets", []):
                if s.pop("routed", None):
                    if s.get("parse_status") != "rejected":
                        s.update(parse_status="rejected", reason_code="X12_DUPLICATE_INTERCHANGE", message=msg)
                    routed.append(Rejection(s["record_id"], RECORD_KIND, s["location"], s["reason_code"],
                                            s["message"], s.pop("raw", None)))
                elif s.get("parse_status") == "accepted":
                    dup_records[s["record_id"]] = msg
                    s.update(parse_status="rejected", reason_code="X12_DUPLICATE_INTERCHANGE", message=msg)
    if not dup_records and not routed:
        return result
    rows = result.rows
    moving = rows.filter(pl.col("record_id").is_in(list(dup_records)))
    rejected = list(result.rejected) + routed
    for r in moving.group_by("record_id", maintain_order=True).first().iter_rows(named=True):
        rejected.append(Rejection(r["record_id"], RECORD_KIND, r["record_location"], "X12_DUPLICATE_INTERCHANGE",
                                  dup_records[r["record_id"]], r["raw"], r["order_ref"]))
    return ParseResult(result.channel, result.record_unit, rows.filter(~pl.col("record_id").is_in(list(dup_records))),
                       rejected, result.encoding, result.extras)
