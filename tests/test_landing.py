"""THE landing protocol, run over every registered feed (som_pipeline/feeds.py): a new file is processed once
and conserves its records; an identical re-drop is recorded and archived, never processed twice; a file whose
transaction committed but whose archiving was interrupted is healed; re-drops are per feed.

Adding a feed to som_pipeline/feeds.py without a case here fails ``test_every_feed_has_a_case``."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.services.billing import run_billing
from som_pipeline.services.channels import capture_channel
from som_pipeline.services.disruptions import ingest_disruptions
from som_pipeline.services.fulfilment import run_floor
from som_pipeline.services.returns import run_returns
from som_pipeline.services.stock import run_stock_postings
from som_pipeline.services.tracking import run_tracking
from som_pipeline.services.validation import run_validation
from som_pipeline.sqlfiles import sql_file
from som_pipeline.warehouse import Warehouse
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

DECISIONS = (b"order_id,decision,hold_codes,reason,approver,decided_at\n"
             b"CSV-NOPE-1,approve,,credit checked,a.person,2026-11-26T08:00:00Z\n")
DISRUPTIONS = (b"disruption_id,scope,target,starts_at,ends_at,severity,extra_days,note\n"
               b"D-T1,warehouse,WH-NJ,2026-11-25T00:00:00Z,2026-11-28T00:00:00Z,degraded,1,snow\n")


PAYMENT_DECISIONS = (b"payment_id,action,invoice_id,amount,note\n"
                     b"NO-SUCH-PAYMENT,match,INV-US01-2026-000001,10.00,typo\n"
                     b"P-2,pay,,,not an action\n")
RETURN_REQUESTS = (b"request_id,order_ref,line_no,quantity,reason,requested_at\n"
                   b"R-1,CSV-NOPE-1,1,1,DAMAGED,2026-11-26T08:00:00Z\n"
                   b"R-2,CSV-NOPE-1,1,0,DAMAGED,2026-11-26T08:00:00Z\n")
RETURN_RECEIPTS = (b"rma_id,line_no,sku,quantity,grade,received_at,warehouse_id\n"
                   b"RMA-NOPE,1,S1,1,restock,2026-11-26T08:00:00Z,WH-NJ\n"
                   b"RMA-NOPE,1,S1,1,polish,2026-11-26T08:00:00Z,WH-NJ\n")
RECEIPTS = (b"receipt_id,line_no,kind,reference,warehouse_id,sku,quantity,received_at\n"
            b"GRN-1,1,po,PO-77,WH-NJ,NO-SUCH-SKU,5,2026-11-26T08:00:00Z\n")
SCANS = (b"scan_id,task_id,warehouse_id,barcode,quantity,user,station,scanned_at\n"
         b"SC-1,T-NOPE,WH-NJ,036000291452,1,picker01,RF-1,2026-11-26T08:30:00Z\n")


def _capture(feed: str) -> Callable[[Warehouse, Settings], None]:
    return lambda wh, s: capture_channel(feed, wh, s, now=NOW)


def _disruptions(wh: Warehouse, s: Settings) -> None:
    with wh.connect() as con:
        ingest_disruptions(con, s, NOW)


# feed -> (sample bytes, file name, how the pipeline reads the feed)
CASES: dict[str, tuple[bytes, str, Callable[[Warehouse, Settings], object]]] = {
    "shopify": ((FIXTURES / "shopify" / "orders.json").read_bytes(), "orders.json", _capture("shopify")),
    "amazon": ((FIXTURES / "amazon" / "getOrders.example.json").read_bytes(), "orders.json", _capture("amazon")),
    "edi": ((FIXTURES / "x12" / "edinet_x12.850.edi").read_bytes(), "po.edi", _capture("edi")),
    "csv": ((ROOT / "docs" / "csv_template_example.csv").read_bytes(), "orders.csv", _capture("csv")),
    "approvals": (DECISIONS, "decisions.csv", lambda wh, s: run_validation(wh, s, now=NOW)),
    "disruptions": (DISRUPTIONS, "disruptions.csv", _disruptions),
    "receipts": (RECEIPTS, "receipts.csv", lambda wh, s: run_stock_postings(wh, s, NOW)),
    "scans": (SCANS, "scans.csv", lambda wh, s: run_floor(wh, s, NOW)),
    "carrier_events": ((FIXTURES / "tracking_events" / "easypost_tracker_create_response.json").read_bytes(),
                       "trackers.json", lambda wh, s: run_tracking(wh, s, NOW)),
    "bank": ((FIXTURES / "bank" / "mt940_abnamro.sta").read_bytes(), "statement.sta",
             lambda wh, s: run_billing(wh, s, NOW)),
    "payouts": ((FIXTURES / "bank" / "payouts_transactions.json").read_bytes(), "payout.json",
                lambda wh, s: run_billing(wh, s, NOW)),
    "payment_decisions": (PAYMENT_DECISIONS, "decisions.csv", lambda wh, s: run_billing(wh, s, NOW)),
    "returns": (RETURN_REQUESTS, "returns.csv", lambda wh, s: run_returns(wh, s, NOW)),
    "return_receipts": (RETURN_RECEIPTS, "receipts.csv", lambda wh, s: run_returns(wh, s, NOW)),
    "chargebacks": ((FIXTURES / "shopify" / "disputes.json").read_bytes(), "disputes.json",
                    lambda wh, s: run_returns(wh, s, NOW)),
}


def test_every_feed_has_a_case() -> None:
    assert set(CASES) == set(FEEDS)


def _ledger(wh: Warehouse, feed: str):
    return wh.read("SELECT source_file, sha256, archived_to, records_received, records_accepted, "
                   "records_quarantined FROM ops.ingest_files WHERE channel = ?", [feed])


def _landed(s: Settings, feed: str) -> list[Path]:
    return sorted(p for p in s.landing_dir(feed).iterdir() if p.is_file())


@pytest.mark.parametrize("feed", sorted(CASES))
def test_process_once_conserve_redrop_and_heal(feed: str, settings: Settings, wh: Warehouse) -> None:
    data, name, run = CASES[feed]
    (settings.landing_dir(feed) / name).write_bytes(data)
    run(wh, settings)

    # processed once, records conserved, archived
    ledger = _ledger(wh, feed)
    assert ledger.height == 1
    row = ledger.row(0, named=True)
    assert row["records_received"] >= 1
    assert row["records_received"] == row["records_accepted"] + row["records_quarantined"]
    with wh.connect() as con:
        assert run_reconciliation_query(con, sql_file("reconciliation", "ingest_conservation"), channel=feed).height == 0
    assert _landed(settings, feed) == []
    archived = Path(row["archived_to"])
    assert archived.read_bytes() == data

    # the same bytes under another name: a re-drop, recorded and archived, not processed again
    (settings.landing_dir(feed) / f"again-{name}").write_bytes(data)
    run(wh, settings)
    assert _ledger(wh, feed).height == 1
    redrops = wh.read("SELECT source_file, first_source_file FROM ops.ingest_redrops WHERE channel = ?", [feed])
    assert redrops.rows() == [(f"again-{name}", name)]
    assert _landed(settings, feed) == []
    assert len(list(archived.parent.glob("*.redrop-*"))) == 1

    # committed but not archived (a crash between the two): the next run only moves the file
    shutil.move(archived, settings.landing_dir(feed) / name)
    run(wh, settings)
    assert _ledger(wh, feed).height == 1
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops WHERE channel = ?", [feed])["n"][0] == 1
    assert archived.read_bytes() == data and _landed(settings, feed) == []


def test_redrops_are_per_feed(settings: Settings, wh: Warehouse) -> None:
    """The same bytes in two feeds are two files (an empty file is not a re-drop of another feed's)."""
    for feed in ("csv", "shopify"):
        (settings.landing_dir(feed) / "empty").write_bytes(b"")
        capture_channel(feed, wh, settings, now=NOW)
    ledger = wh.read("SELECT channel, records_quarantined FROM ops.ingest_files ORDER BY channel")
    assert ledger["channel"].to_list() == ["csv", "shopify"]
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_redrops")["n"][0] == 0


# ------------------------------------------------------------------------------------------------
# Incomplete files: never taken half-written, always reported
# ------------------------------------------------------------------------------------------------
CSV = (ROOT / "docs" / "csv_template_example.csv").read_bytes()


def _waiting(wh: Warehouse, feed: str) -> dict[str, str]:
    return dict(wh.read("SELECT source_file, reason FROM ops.landing_waiting WHERE feed = ?", [feed]).rows())


def test_symlinks_in_progress_names_and_folders_wait_and_are_reported(settings: Settings, wh: Warehouse) -> None:
    d = settings.landing_dir("csv")
    (settings.home / "elsewhere.csv").write_bytes(CSV)
    (d / "link.csv").symlink_to(settings.home / "elsewhere.csv")
    (d / "big.csv.part").write_bytes(CSV[:100])
    (d / ".hidden.csv").write_bytes(CSV)
    (d / "a folder").mkdir()
    report = capture_channel("csv", wh, settings, now=NOW)
    assert report.files == []
    assert _waiting(wh, "csv") == {"link.csv": "symlink", "big.csv.part": "in_progress_name",
                                   ".hidden.csv": "in_progress_name", "a folder": "not_a_file"}
    assert any("link.csv: waits (symlink" in w for w in report.warnings)
    # the writer renames when done: taken, and no longer waiting
    (d / "big.csv.part").rename(d / "big.csv")
    (d / "big.csv").write_bytes(CSV)
    capture_channel("csv", wh, settings, now=NOW)
    assert "big.csv" not in _waiting(wh, "csv") and "big.csv.part" not in _waiting(wh, "csv")
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_files WHERE source_file = 'big.csv'")["n"][0] == 1


def test_a_file_still_growing_waits_for_the_settle_interval(settings: Settings, wh: Warehouse) -> None:
    import threading
    from dataclasses import replace

    s = replace(settings, landing_settle_s=0.8)
    f = s.landing_dir("csv") / "growing.csv"
    f.write_bytes(CSV[: len(CSV) // 2])
    writer = threading.Timer(0.3, lambda: f.write_bytes(CSV))  # the writer is not done yet
    writer.start()
    capture_channel("csv", wh, s, now=NOW)
    writer.join()
    assert _waiting(wh, "csv") == {"growing.csv": "settling"}
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_files")["n"][0] == 0
    time.sleep(0.9)  # stable now: taken whole
    capture_channel("csv", wh, s, now=NOW)
    assert _waiting(wh, "csv") == {}
    led = wh.read("SELECT sha256, records_received FROM ops.ingest_files")
    assert led["sha256"].to_list() == [hashlib.sha256(CSV).hexdigest()]


def test_a_file_changed_while_read_is_not_committed_and_is_read_again_whole(
        settings: Settings, wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    import som_pipeline.services.capture as capture

    f = settings.landing_dir("shopify") / "orders.json"
    data = (FIXTURES / "shopify" / "orders.json").read_bytes()
    f.write_bytes(data[:-1])  # the writer is one byte short when we read
    real = capture.changed

    def append_then_check(lf):
        f.write_bytes(data)  # ...and finishes while we parse
        return real(lf)

    monkeypatch.setattr(capture, "changed", append_then_check)
    capture_channel("shopify", wh, settings, now=NOW)
    assert wh.read("SELECT count(*) AS n FROM ops.ingest_files")["n"][0] == 0
    assert _waiting(wh, "shopify") == {"orders.json": "changed_while_read"}
    assert f.read_bytes() == data  # still in landing
    monkeypatch.setattr(capture, "changed", real)
    capture_channel("shopify", wh, settings, now=NOW)
    led = wh.read("SELECT sha256, records_quarantined FROM ops.ingest_files")
    assert led["sha256"].to_list() == [hashlib.sha256(data).hexdigest()] and led["records_quarantined"][0] == 0


def test_a_file_that_grew_after_archiving_is_landed_again(tmp_path: Path) -> None:
    from som_pipeline.services.landing import LandedFile, NewFile, reland_if_grown

    src = tmp_path / "landing" / "a.csv"
    src.parent.mkdir()
    dest = tmp_path / "archive" / "x__a.csv"
    dest.parent.mkdir()
    dest.write_bytes(b"row1\nrow2\nrow3\n")  # 15 bytes archived, 10 were read
    nf = NewFile("csv", LandedFile("csv", src, 10, 0), "sha", dest, NOW)
    assert reland_if_grown(nf) and src.read_bytes() == dest.read_bytes()
    assert not reland_if_grown(NewFile("csv", LandedFile("csv", src, 15, 0), "sha", dest, NOW))


def test_a_streamed_file_failing_part_way_commits_nothing_of_it_but_its_quarantine_record(settings, wh) -> None:
    """Big files are written chunk by chunk inside one transaction: a failure after the first chunk leaves no
    order of the file in stage, one UNREADABLE_FILE record, and a ledger row that conserves."""
    from som_pipeline.services.capture import capture_files
    from tests.helpers import capture, order_rows

    (settings.landing_dir("csv") / "big.csv").write_text("whatever\n")

    def stream(lf, sha, at):
        yield capture(order_rows("A", [{"sku": "S", "quantity": 1, "unit_price": "1"}]), sha=sha)
        raise ValueError("disk went away")

    report = capture_files(wh, settings, "csv", stream=stream)
    assert [(f.source_file, f.received, f.accepted, f.quarantined) for f in report.files] == [("big.csv", 1, 0, 1)]
    assert wh.read("SELECT count(*) AS n FROM stage.order_headers")["n"].item() == 0
    q = wh.read("SELECT reason_code, message FROM ops.quarantine")
    assert q["reason_code"].to_list() == ["UNREADABLE_FILE"] and "disk went away" in q["message"].item()
    assert wh.read("SELECT records_received AS r FROM ops.ingest_files")["r"].to_list() == [1]


def test_a_streamed_file_publishes_exactly_what_writing_each_chunk_would(settings, wh, tmp_path) -> None:
    """A big file's chunks are staged as part files and published in one step: the same rows, numbers and order as
    writing each chunk in turn (an observation already staged is left out with its lines and its number skipped, a
    quarantine record repeated in a later chunk is written once, a chunk of quarantine only stages nothing)."""
    from som_pipeline.services.capture import capture_files, write_captured
    from som_pipeline.warehouse import Warehouse
    from tests.helpers import capture, order_rows

    sha = "f" * 64
    ok = [{"sku": "S", "quantity": 1, "unit_price": "1"}, {"sku": "T", "quantity": 2, "unit_price": "2.5"}]
    bad = [{"sku": "S", "quantity": "x", "unit_price": "1"}]
    chunks = [
        capture(order_rows("A", ok) + order_rows("B", bad) + order_rows("C", ok), sha=sha),
        capture(order_rows("D", ok) + order_rows("B", bad) + order_rows("E", ok), sha=sha),  # B again
        capture(order_rows("F", bad), sha=sha),  # nothing accepted
        capture(order_rows("G", ok) + order_rows("H", ok), sha=sha),
    ]
    before = capture(order_rows("D", ok), sha=sha)  # D's observation already staged (same capture_id)
    expected = Warehouse(tmp_path / "expected.duckdb")
    for w in (wh, expected):
        with w.transaction() as con:
            write_captured(con, capture(order_rows("Z", ok), sha="e" * 64))
            write_captured(con, before)
    with expected.transaction() as con:
        for c in chunks:
            write_captured(con, c)

    (settings.landing_dir("csv") / "big.csv").write_text("whatever\n")
    report = capture_files(wh, settings, "csv", stream=lambda lf, sha_, at: iter(chunks))
    assert [f.status for f in report.files] == ["processed"]
    for table in ("stage.order_headers", "stage.order_lines", "ops.quarantine"):
        got, want = (w.read(f"SELECT * FROM {table} ORDER BY rowid") for w in (wh, expected))  # noqa: S608
        assert want.height and got.equals(want), table
    assert list(settings.tmp.glob(".capture-*")) == []  # the part files are gone
