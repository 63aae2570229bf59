"""The EDI channel routes by transaction set: 214s to tracking (mixed files too), 850s captured, a 997 for every
interchange (the 214 groups with the tracking reader's verdict), a TA1 for a re-sent 214 interchange."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline.ingest.common import file_sha256, normalise
from som_pipeline.ingest.x12 import (
    accepted_set_ids,
    build_997,
    encode_like,
    flag_duplicate_interchanges,
    parse_x12,
    routed_x12,
    split_segments,
)
from som_pipeline.services.channels import ROUTED_SETS, _judge_214, capture_channel
from som_pipeline.services.tracking import run_tracking
from som_pipeline.tracking.parsers import read_x12_214
from tests.conftest import FIXTURES
from tests.test_x12 import VARIANTS, assert_997_consistent, edi, isa, rewrite, seg, tset

NOW = datetime(2026, 3, 1, 9, 5, tzinfo=UTC)
PO_850 = (FIXTURES / "x12" / "edinet_x12.850.edi").read_bytes()
STATUS_214 = (FIXTURES / "x12" / "edinet_x12.214.edi").read_bytes()
BODY_850 = ["BEG*00*NE*PO-{n}**20260709", "PO1**1*EA*10.00**VN*VENDORSKU", "CTT*1"]
BODY_214 = ["B10*1Z999AA1000000000{n}*SHP-{n}*UPSN", "LX*1", "AT7*X6*NS***20240311*1415*CT", "MS1*MEMPHIS*TN*US"]
NO_AT7 = ["B10*1Z999AA10000000009*SHP-9*UPSN", "LX*1"]  # a 214 the tracking reader cannot read (no status)


def group(fid: str, gcn: str, *sets: list[str], version: str = "004010") -> list[str]:
    return [f"GS*{fid}*SENDER*RECEIVER*20260709*1200*{gcn}*X*{version}", *[x for t in sets for x in t],
            f"GE*{len(sets)}*{gcn}"]


def interchange(*groups: list[str], icn: str = "000000001") -> list[str]:
    return [isa(icn), *[x for g in groups for x in g], f"IEA*{len(groups)}*{icn}"]


def po(n: int, stcn: str) -> list[str]:
    return tset([x.format(n=n) for x in BODY_850], stcn)


def status(n: int, stcn: str, body: list[str] | None = None) -> list[str]:
    return tset([x.format(n=n) for x in (body or BODY_214)], stcn, st01="214")


# one interchange: an 850 group, a 214 group (one readable set, one not), and a group labelled PO that mixes a
# 214 with an 850 (routed by ST01, not GS01)
SEPARATE_GROUPS = edi(interchange(group("PO", "1", po(1, "0001")),
                                  group("QM", "2", status(1, "0001"), status(9, "0002", NO_AT7)),
                                  group("PO", "3", po(2, "0001"), status(2, "0002")), icn="000000500"))


def landed(settings, name: str, data: bytes) -> Path:
    p = settings.landing_dir("edi") / name
    p.write_bytes(data)
    return p


def routed_files(settings) -> list[Path]:
    return sorted(settings.landing_dir("carrier_events").iterdir())


def ledger(wh, channel: str) -> dict[str, tuple[int, int, int]]:
    return {r[0]: r[1:] for r in wh.read(
        "SELECT source_file, records_received, records_accepted, records_quarantined FROM ops.ingest_files "
        "WHERE channel = ?", [channel]).rows()}


def conservation_breaches(wh) -> int:
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    with wh.connect() as con:
        return run_reconciliation_query(con, sql_file("reconciliation", "ingest_conservation")).height


def acks(wh) -> list[dict]:
    return wh.read("SELECT * FROM ops.edi_acks ORDER BY ack_control").to_dicts()


# ------------------------------------------------------------------------------------------------
# parse_x12(routed_sets=...) and routed_x12: pure
# ------------------------------------------------------------------------------------------------
def test_routed_sets_are_not_records_of_the_file_and_copy_out_faithfully():
    text = SEPARATE_GROUPS.decode()
    plain = parse_x12(SEPARATE_GROUPS, "m.edi")
    assert sorted(r.reason_code for r in plain.rejected) == ["X12_UNSUPPORTED_SET"] * 3  # without routing
    r = parse_x12(SEPARATE_GROUPS, "m.edi", routed_sets=ROUTED_SETS, judge_routed=_judge_214)
    assert r.records_received == 2 and r.rejected == [] and r.rows["order_ref"].unique().sort().to_list() == [
        "SENDER:PO-1", "SENDER:PO-2"]
    out, n = routed_x12(r.extras["interchanges"])
    assert n == 3
    segs = split_segments(out)
    assert [x.id for x in segs] == ["ISA", "GS", *["ST", "B10", "LX", "AT7", "MS1", "SE"], *["ST", "B10", "LX", "SE"],
                                    "GE", "GS", *["ST", "B10", "LX", "AT7", "MS1", "SE"], "GE", "IEA"]
    assert [x.elements for x in segs if x.id in ("GS", "GE", "IEA")] == [
        ["GS", "QM", "SENDER", "RECEIVER", "20260709", "1200", "2", "X", "004010"], ["GE", "2", "2"],
        ["GS", "PO", "SENDER", "RECEIVER", "20260709", "1200", "3", "X", "004010"], ["GE", "1", "3"],
        ["IEA", "2", "000000500"]]
    # byte-faithful: every segment but our GE/IEA is a segment of the original, in its order
    copied = [s.text for s in split_segments(out) if s.id not in ("GE", "IEA")]
    assert all(c + "~" in text for c in copied)
    verdicts = [(s["st02"], s["parse_status"], s["ak5_codes"]) for ic in r.extras["interchanges"]
                for g in ic["groups"] for s in g["sets"] if s.get("routed")]
    assert verdicts == [("0001", "accepted", []), ("0002", "rejected", ["5"]), ("0002", "accepted", [])]
    t = read_x12_214(out.encode(), "routed.edi")  # the tracking reader agrees with the verdicts
    assert (t.received, t.events.height, t.rejected["reason_code"].to_list()) == (3, 2, ["MISSING_FIELD"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_routed_file_keeps_the_separators(variant):
    data = rewrite(edi(interchange(group("PO", "1", po(1, "0001"), status(1, "0002")), icn="000000700")),
                   **VARIANTS[variant])
    r = parse_x12(data, "s.edi", routed_sets=ROUTED_SETS, judge_routed=_judge_214)
    assert r.records_received == 1 and r.rejected == []
    out, n = routed_x12(r.extras["interchanges"])
    text = data.decode()
    elem, term = VARIANTS[variant].get("elem", "*"), VARIANTS[variant].get("term", "~")
    assert n == 1 and out.startswith(text.lstrip()[:106]) and f"GE{elem}1{elem}1{term}" in out  # the ISA as sent
    t = read_x12_214(out.encode(), "routed.edi")
    assert (t.received, t.events.height) == (1, 1)


def test_a_214_outside_any_group_is_not_routed_but_rejected():
    data = edi([isa("000000800"), *status(1, "0001"), "IEA*0*000000800"])
    r = parse_x12(data, "x.edi", routed_sets=ROUTED_SETS, judge_routed=_judge_214)
    assert [x.reason_code for x in r.rejected] == ["X12_SYNTAX"]
    assert routed_x12(r.extras["interchanges"]) == ("", 0)


# ------------------------------------------------------------------------------------------------
# The EDI channel end to end
# ------------------------------------------------------------------------------------------------
def test_mixed_file_850_captured_214_to_tracking_with_its_997(settings, wh):
    landed(settings, "first.edi", edi(interchange(group("PO", "7", po(7, "0001")), icn="000000400")))
    capture_channel("edi", wh, settings, now=NOW)  # uses ack control number 1
    mtime = landed(settings, "mixed.edi", PO_850 + b"\n" + STATUS_214).stat().st_mtime_ns  # an 850 ISA, a 214 ISA
    capture_channel("edi", wh, settings, now=NOW)

    assert ledger(wh, "edi")["mixed.edi"] == (1, 1, 0)  # the 850; the 214 is counted by tracking
    staged = wh.read("SELECT channel_order_ref FROM stage.order_headers WHERE source_file = 'mixed.edi'")
    assert staged["channel_order_ref"].to_list() == ["000123456:1000012"]
    assert wh.read("SELECT count(*) AS n FROM ops.quarantine")["n"][0] == 0  # no X12_UNSUPPORTED_SET
    [routed] = routed_files(settings)
    assert routed.name.startswith("edi-mixed-") and routed.name.endswith("-214.edi")
    assert routed.stat().st_mtime_ns == mtime  # its place in arrival order, not left to settle
    t = read_x12_214(routed.read_bytes(), routed.name)
    assert (t.received, t.events["tracking_number"].to_list()) == (1, ["1751807"])

    # one 997 per interchange, control numbers continuing the sequence (the first file used 1)
    rows = [r for r in acks(wh) if r["source_file"] == "mixed.edi"]
    assert [(r["interchange_control"], r["ack_control"], r["sets_received"], r["sets_accepted"]) for r in rows] == [
        ("000000055", 2, 1, 1), ("000082265", 3, 1, 1)]
    ack = Path(rows[1]["ack_file"]).read_text()
    assert Path(rows[1]["ack_file"]).name == "000000003_997_mixed_000082265.edi"
    assert seg(ack, "ISA")[0][13] == "000000003" and seg(ack, "GS")[0][1:3] == ["FA", "MGCTLYST"]
    assert seg(ack, "GS")[0][6] == "3" and seg(ack, "GS")[0][8] == "004030"
    assert seg(ack, "AK1") == [["AK1", "QM", "82265"]]
    assert seg(ack, "AK2") == [["AK2", "214", "822650001"]]
    assert seg(ack, "AK5") == [["AK5", "A"]]
    assert seg(ack, "AK9") == [["AK9", "A", "1", "1", "1"]]
    assert_997_consistent(ack)

    run_tracking(wh, settings, NOW)  # tracking reads the routed file: the event waits for a label of ours
    assert ledger(wh, "carrier_events") == {routed.name: (1, 1, 0)}
    assert wh.read("SELECT count(*) AS n FROM core.tracking_pending")["n"][0] == 1
    assert conservation_breaches(wh) == 0


def test_one_interchange_with_850_and_214_groups_gets_one_997(settings, wh):
    landed(settings, "groups.edi", SEPARATE_GROUPS)
    capture_channel("edi", wh, settings, now=NOW)
    assert ledger(wh, "edi")["groups.edi"] == (2, 2, 0)
    assert sorted(wh.read("SELECT channel_order_ref FROM stage.order_headers")["channel_order_ref"]) == [
        "SENDER:PO-1", "SENDER:PO-2"]
    [row] = acks(wh)
    assert (row["sets_received"], row["sets_accepted"], row["ack_control"], row["ack_control_last"]) == (5, 4, 1, None)
    ack = Path(row["ack_file"]).read_text()
    assert seg(ack, "AK1") == [["AK1", "PO", "1"], ["AK1", "QM", "2"], ["AK1", "PO", "3"]]  # one FA group
    assert seg(ack, "AK2")[1:3] == [["AK2", "214", "0001"], ["AK2", "214", "0002"]]
    assert seg(ack, "AK5") == [["AK5", "A"], ["AK5", "A"], ["AK5", "R", "5"], ["AK5", "A"], ["AK5", "A"]]
    assert seg(ack, "AK9") == [["AK9", "A", "1", "1", "1"], ["AK9", "P", "2", "2", "1"], ["AK9", "A", "2", "2", "2"]]
    assert_997_consistent(ack)
    [routed] = routed_files(settings)
    run_tracking(wh, settings, NOW)
    assert ledger(wh, "carrier_events") == {routed.name: (3, 2, 1)}  # two events, the unreadable set quarantined
    q = wh.read("SELECT reason_code, raw FROM ops.quarantine").to_dicts()
    assert [x["reason_code"] for x in q] == ["MISSING_FIELD"] and q[0]["raw"].startswith("ST*214*0002")
    assert conservation_breaches(wh) == 0


def test_two_interchanges_other_separators_a_damaged_214_and_an_850(settings, wh):
    """Tracking's own multi-interchange fixture (``*``/``~`` and ``|``/``~``; a 214 with a missing terminator; an
    850 in the second interchange): the 850 is captured, the four 214s (the damaged one too) go to tracking."""
    data = (FIXTURES / "tracking_events" / "som_x12_214_multi.edi").read_bytes()
    landed(settings, "carrier.edi", data)
    capture_channel("edi", wh, settings, now=NOW)
    assert ledger(wh, "edi")["carrier.edi"] == (1, 1, 0)
    [routed] = routed_files(settings)
    whole, part = read_x12_214(data, "whole"), read_x12_214(routed.read_bytes(), "routed")
    # every record once: the tracking reader on the whole file = the 850 capture's record + tracking's records
    assert whole.received == 1 + part.received and part.events.height == whole.events.height == 10
    assert sorted(whole.rejected["reason_code"]) == ["UNSUPPORTED_TRANSACTION_SET", *part.rejected["reason_code"]]
    rows = acks(wh)
    assert [(r["ack_control"], r["sets_received"], r["sets_accepted"]) for r in rows] == [(1, 3, 2), (2, 2, 2)]
    first, second = (Path(r["ack_file"]).read_text() for r in rows)
    assert seg(first, "AK5") == [["AK5", "A"], ["AK5", "R", "5", "4"], ["AK5", "A"]]
    assert seg(first, "AK3")[0][1] == "AT7"  # the segment whose terminator is missing
    assert seg(first, "AK9") == [["AK9", "P", "3", "3", "2"]]
    assert seg(second, "AK2") == [["AK2", "214", "0004"], ["AK2", "850", "0005"]]
    assert seg(second, "AK9") == [["AK9", "A", "2", "2", "2"]]
    for ack in (first, second):
        assert_997_consistent(ack)
    run_tracking(wh, settings, NOW)
    assert ledger(wh, "carrier_events") == {routed.name: (11, 10, 1)}
    assert conservation_breaches(wh) == 0


def test_redrop_is_settled_and_a_resent_214_interchange_gets_a_ta1(settings, wh):
    landed(settings, "mixed.edi", PO_850 + b"\n" + STATUS_214)
    capture_channel("edi", wh, settings, now=NOW)
    for p in routed_files(settings):
        p.unlink()  # tracking took it
    before = (len(acks(wh)), ledger(wh, "edi"), sorted((settings.outbound / "edi").iterdir()))

    landed(settings, "mixed-again.edi", PO_850 + b"\n" + STATUS_214)  # byte-identical: a re-drop
    capture_channel("edi", wh, settings, now=NOW)
    assert (len(acks(wh)), ledger(wh, "edi"), sorted((settings.outbound / "edi").iterdir())) == before
    assert routed_files(settings) == []
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops WHERE channel = 'edi'")["n"][0] == 1

    landed(settings, "resent.edi", STATUS_214.replace(b"~\n", b"~\r\n"))  # the same 214 interchange, other bytes
    capture_channel("edi", wh, settings, now=NOW)
    assert routed_files(settings) == []  # not handed on twice
    assert ledger(wh, "edi")["resent.edi"] == (1, 0, 1)
    q = wh.read("SELECT reason_code, raw, location FROM ops.quarantine WHERE source_file = 'resent.edi'").to_dicts()
    assert [x["reason_code"] for x in q] == ["X12_DUPLICATE_INTERCHANGE"] and q[0]["raw"].startswith("ST*214*822650001")
    dup = acks(wh)[-1]
    assert dup["duplicate_of"].startswith("mixed.edi") and dup["sets_accepted"] == 0
    ta1 = Path(dup["ack_file"])
    assert ta1.name.startswith("000000003_TA1_") and "TA1*000082265*160726*1303*R*025" in ta1.read_text()
    assert conservation_breaches(wh) == 0


# ------------------------------------------------------------------------------------------------
# Properties: damaged mixed files never raise, every set is a record here or routed (never both, never neither)
# ------------------------------------------------------------------------------------------------
MIXED = [SEPARATE_GROUPS, PO_850 + b"\n" + STATUS_214, (FIXTURES / "tracking_events" / "som_x12_214_multi.edi").read_bytes()]
_ALPHABET = st.sampled_from(list("*~>|^\n\r ISAGSTEQM0124589") + ["\xe9"])


@st.composite
def damaged(draw):
    data = bytearray(draw(st.sampled_from(MIXED)))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data)))
        if draw(st.booleans()) and data:
            del data[i: i + draw(st.integers(1, 25))]
        else:
            data[i:i] = "".join(draw(st.lists(_ALPHABET, min_size=1, max_size=6))).encode("latin-1")
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_property_routing_never_raises_and_every_set_is_counted_once(data):
    r = flag_duplicate_interchanges(
        parse_x12(data, "d.edi", routed_sets=ROUTED_SETS, judge_routed=_judge_214), {}, "d.edi")
    cap = normalise(r, source_file="d.edi", file_sha256=file_sha256(data), captured_at=NOW)
    assert cap.records_received == cap.records_accepted + cap.records_quarantined == r.records_received
    records = set(r.rows["record_id"]) | {x.record_id for x in r.rejected}
    sets = [s for ic in r.extras["interchanges"] for g in ic["groups"] for s in g["sets"]]
    assert all(bool(s.get("routed")) != (s["record_id"] in records) for s in sets)
    text, n = routed_x12(r.extras["interchanges"])
    assert n == sum(1 for s in sets if s.get("routed"))
    ok = accepted_set_ids(cap)
    for i, ic in enumerate(r.extras["interchanges"], 1):
        build_997(ic, ok, i, NOW)
    if n:
        routed = encode_like(text, r.encoding)
        t = read_x12_214(routed, "routed.edi")
        assert t.received == t.events.height + t.rejected.height
        # the routed file routed again: the same sets with the same verdicts (the 997's are the reader's), nothing else
        again = parse_x12(routed, "r.edi", routed_sets=ROUTED_SETS, judge_routed=_judge_214)
        assert again.records_received == 0 and routed_x12(again.extras["interchanges"]) == (text, n)
        assert verdicts(again) == verdicts(r)


def verdicts(r) -> list[tuple]:
    return [(s["st02"], s["parse_status"], s["ak5_codes"]) for ic in r.extras["interchanges"] for g in ic["groups"]
            for s in g["sets"] if s.get("routed")]
