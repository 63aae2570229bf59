"""Operations (``ops.*``): the quarantine (every record not accepted, by any stage), the capture ledger and
re-drops, EDI 997 acknowledgments, the B2B portal watermark, Amazon orders waiting for their other half.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from som_pipeline.schemas.base import TsUTC, _f, _Strict

RECORD_KINDS = ["file", "order", "order_line", "order_item", "transaction_set", "row", "reference_row", "decision",
                "receipt", "scan", "tracking_event"]


class QuarantineModel(_Strict):
    """``ops.quarantine``: every record not accepted, with why, where and what it was."""

    quarantine_id: str = _f("Stable id: sha256 of the source file content + location + reason.", unique=True)
    channel: str = _f("Channel or feed (shopify, amazon, edi, csv, b2b_portal, reference/<table>, approvals).")
    source_file: str = _f("File name (or portal table) as received.")
    file_sha256: str = _f("SHA-256 of the file content (ties the record to ops.ingest_files).", nullable=True)
    location: str = _f("Where in the source: JSON pointer, X12 ISA/GS/ST path and segment range, CSV line, row id.")
    record_kind: str = _f("What the record is.", isin=RECORD_KINDS)
    order_ref: str = _f("Channel order ref, when it could be read.", nullable=True)
    reason_code: str = _f("Reason code (see the reason table).")
    message: str = _f("Human-readable explanation.")
    raw: str = _f("The record's raw text (JSON object, X12 segments, CSV line).", nullable=True)
    quarantined_at: TsUTC = _f("When it was quarantined.")


class IngestFileModel(_Strict):
    """``ops.ingest_files``: the ledger, one row per distinct file content processed."""

    source_file: str = _f("File name as received.")
    channel: str = _f("Channel.")
    sha256: str = _f("SHA-256 of the content: a re-dropped identical file is recognised by it.", unique=True)
    size_bytes: int = _f("File size.", ge=0)
    encoding: str = _f("Detected text encoding (utf-8, utf-8-sig, utf-16, cp1252, binary...).", nullable=True)
    record_unit: str = _f("What one record is for this channel (order, transaction_set, row, order_item...).")
    records_received: int = _f("Records found in the file.", ge=0)
    records_accepted: int = _f("Records accepted (into stage/core).", ge=0)
    records_quarantined: int = _f("Records quarantined (ops.quarantine).", ge=0)
    orders_accepted: int = _f("Distinct orders (or order-item pages) accepted from this file.", ge=0)
    archived_to: str = _f("Where the file was moved after processing.", nullable=True)
    processed_at: TsUTC = _f("When it was processed.")

    @pa.dataframe_check(description="received = accepted + quarantined, for every file")
    def conservation(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("records_received") == pl.col("records_accepted") + pl.col("records_quarantined")
        )


class IngestRedropModel(_Strict):
    """``ops.ingest_redrops``: files whose identical content was already processed (not counted again)."""

    source_file: str = _f("File name as received this time.")
    channel: str = _f("Channel.")
    sha256: str = _f("Content hash (found in ops.ingest_files).")
    first_source_file: str = _f("Name under which the content was first processed.")
    seen_at: TsUTC = _f("When the re-drop was seen.")


WAIT_REASONS = ["in_progress_name", "symlink", "not_a_file", "settling", "changed_while_read"]


class LandingWaitingModel(_Strict):
    """``ops.landing_waiting``: landing entries not taken by the last run of their feed, and why (state: replaced
    per feed each run; empty when everything landed was complete)."""

    feed: str = _f("Landing feed (folder under $SOM_HOME/landing).")
    source_file: str = _f("Entry name.")
    reason: str = _f("Why it waits: an in-progress name (.tmp/.part/leading dot), a symlink (never followed), not "
                     "a regular file, still growing within the settle interval, or changed while it was read.",
                     isin=WAIT_REASONS)
    detail: str = _f("Human-readable explanation.")
    size_bytes: int = _f("Size when seen.", nullable=True, ge=0)
    first_seen_at: TsUTC = _f("First run that saw it waiting for this reason.")
    last_seen_at: TsUTC = _f("Last run that saw it.")


class EdiAckModel(_Strict):
    """``ops.edi_acks``: the 997 functional acknowledgments written, one per interchange received (a TA1 for a
    duplicate interchange). Also the memory of (ISA05, ISA06, ISA13) that duplicate interchanges are found by."""

    source_file: str = _f("Inbound file.")
    file_sha256: str = _f("Inbound file content hash.")
    interchange_control: str = _f("Inbound ISA13.", nullable=True)
    sender_id: str = _f("Inbound ISA06 (trimmed).", nullable=True)
    ack_file: str = _f("997 file written to outbound/edi/.")
    ack_control: int = _f("Our ISA13 of the 997; its FA groups' GS06 are ack_control .. ack_control_last.", ge=1)
    sets_received: int = _f("Transaction sets received in the interchange.", ge=0)
    sets_accepted: int = _f("Transaction sets accepted.", ge=0)
    envelope_errors: str = _f(
        "Envelope problems (ISA/IEA, GS/GE counts and control numbers: X12_ENVELOPE_COUNT, X12_CONTROL_NUMBER, "
        "X12_SYNTAX), reported in the 997 (TA1/AK9 codes); sound sets inside are still kept. Null: none.",
        nullable=True,
    )
    created_at: TsUTC = _f("When the 997 was written.")
    sender_qualifier: str = _f("Inbound ISA05 (the qualifier of sender_id).", nullable=True)
    ack_control_last: int = _f(
        "Last control number the 997 used: one FA group (GS06 = ack_control, +1, ...) per received application "
        "sender/receiver/version (GS02/GS03/GS08); the next 997 starts after it. Null: only ack_control was used.",
        nullable=True, ge=1)
    duplicate_of: str = _f(
        "Set when the sender (ISA05/ISA06) already used this ISA13: the file and place it was first received. "
        "The sets are quarantined X12_DUPLICATE_INTERCHANGE and ack_file holds a TA1 (note 025), not a 997.",
        nullable=True)


class B2BWatermarkModel(_Strict):
    """``ops.b2b_watermark``: how far the portal has been read (persisted between runs)."""

    source: str = _f("Portal database identity (URL without credentials).", unique=True)
    watermark_ts: TsUTC = _f("Greatest updated_at read so far.", nullable=True)
    watermark_id: str = _f("Greatest order id at that updated_at (tie-breaker).", nullable=True)
    rows_read: int = _f("Rows read in the last run.", ge=0)
    updated_at: TsUTC = _f("When the watermark moved.")


class WatermarkModel(_Strict):
    """``ops.watermarks``: how far each incremental stage has processed its input (persisted between runs).

    A stage reads only what lies beyond its position, writes its results and moves the position in the same
    transaction: a killed run moves nothing, and the next run redoes exactly that work.
    """

    consumer: str = _f("The stage (e.g. core_orders).", unique=True)
    position: int = _f("Last input sequence processed (core_orders: stage.order_headers.capture_seq; 0 for the "
                       "stages that only keep a fingerprint: validation, allocation).", ge=0)
    fingerprint: str = _f("Digest of the other inputs the results depend on (core_orders: the customer "
                          "aliases, whose change makes it redo the affected orders; validation and allocation: "
                          "all their inputs, the date and the configuration, equal = the run is skipped).",
                          nullable=True)
    updated_at: TsUTC = _f("When the position moved.")


class PendingPartitionModel(_Strict):
    """``ops.pending_partitions``: partitions whose inputs changed since they were last built (core_orders marks
    the order dates it rebuilt; building core.daily_sales for a range clears them). ``som run`` refreshes
    exactly these days, in one run over their range."""

    asset: str = _f("The partitioned table (core.daily_sales).")
    partition_key: str = _f("The partition (order date, YYYY-MM-DD).")
    since: TsUTC = _f("When it was first marked.")

    class Config:
        strict = True
        unique = ["asset", "partition_key"]


class AmazonPendingModel(_Strict):
    """``ops.amazon_pending``: Amazon orders waiting for their other half (replaced on every capture run)."""

    amazon_order_id: str = _f("AmazonOrderId.", unique=True)
    waiting_for: str = _f("items | order header | more item pages", isin=["items", "order header", "more item pages"])
    since: TsUTC = _f("When the first half arrived.")
    source_file: str = _f("Files received so far.")
