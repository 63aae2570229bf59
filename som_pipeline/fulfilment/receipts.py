"""Purchase-order and transfer receipts: files in ``$SOM_HOME/landing/receipts/`` (CSV with header, JSON lines or
a JSON array: the same reader and rules of format as :mod:`som_pipeline.fulfilment.scans`). Pure.

Columns (CSV names case-insensitive, any order):

| column | required | meaning |
|---|---|---|
| ``receipt_id`` | yes | the receiving document |
| ``line_no`` | no | line of the receipt, a positive whole number (default 1); ``receipt_id`` + ``line_no`` is unique in a file |
| ``kind`` | yes | ``po`` (supplier delivery) or ``transfer`` (from another warehouse of ours); case-insensitive |
| ``reference`` | yes | the PO number or the transfer id (free text: a formula start is neutralised) |
| ``warehouse_id`` | yes | the receiving warehouse |
| ``sku`` / ``barcode`` | one of them | the item: ``sku`` as given, else the ``barcode`` (a GTIN) through the catalog's aliases |
| ``quantity`` | yes | units received, a whole number >= 1 |
| ``received_at`` | yes | ISO-8601 time; no offset = UTC |
| ``from_warehouse_id`` | transfers | the sending warehouse (required for a transfer; null for a PO) |

When both ``sku`` and ``barcode`` are given, ``sku`` is the item; the barcode must still be a valid GTIN.
Whether warehouse and SKU exist in the reference data is the caller's check; this reader only resolves
barcodes (``UNKNOWN_SKU``: a barcode no alias names, or that names several SKUs).

Duplicates (``DUPLICATE_LINE``), among the rows that pass the field checks: identical copies of a
``receipt_id`` + ``line_no`` keep the first and quarantine the later ones; copies that differ are all quarantined
(which one is right is a person's call). ``received = len(receipts) + len(rejected)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from som_pipeline import money
from som_pipeline.fulfilment.scans import (
    barcode_problem,
    finish_rejects,
    first_problem,
    missing_fields,
    read_records,
    record_ids,
    to_gtin14,
    valid_gtins,
)
from som_pipeline.ingest.common import MAX_QUANTITY, parse_ts
from som_pipeline.validation.approvals import neutralise

FIELDS = ("receipt_id", "line_no", "kind", "reference", "warehouse_id", "sku", "barcode", "quantity", "received_at",
          "from_warehouse_id")
REQUIRED = ("receipt_id", "kind", "reference", "warehouse_id", "quantity", "received_at")
ITEM = ("sku", "barcode")
KINDS = ("po", "transfer")
CONTENT = ("kind", "reference", "warehouse_id", "from_warehouse_id", "sku", "quantity", "received_at")

RECEIPT_SCHEMA = {
    "record_id": pl.String, "receipt_id": pl.String, "line_no": pl.Int64, "kind": pl.String, "reference": pl.String,
    "warehouse_id": pl.String, "from_warehouse_id": pl.String, "sku": pl.String, "barcode": pl.String,
    "gtin": pl.String, "quantity": pl.Int64, "received_at": pl.Datetime("us", "UTC"), "source_file": pl.String,
    "location": pl.String, "raw": pl.String,
}


@dataclass
class ReceiptFile:
    receipts: pl.DataFrame  # RECEIPT_SCHEMA
    rejected: pl.DataFrame  # REJECT_SCHEMA (order_ref = receipt_id)
    received: int


def read_receipts(data: bytes, source_file: str, file_sha256: str, barcode_map: pl.DataFrame) -> ReceiptFile:
    """Read a receipts file. ``barcode_map``: gtin (GTIN-14), sku. Never raises on bad input."""
    rec = read_records(data, FIELDS, REQUIRED, "receipt_id", one_of=ITEM)
    df = rec.rows
    valid = valid_gtins(df["barcode"].drop_nulls())
    aliases = (barcode_map.select("gtin", "sku").unique().group_by("gtin")
               .agg(pl.col("sku").sort().first().alias("_mapped"), pl.col("sku").n_unique().alias("_n_skus")))
    qty, qty_ok = money.parse_int(pl.col("quantity"))
    line, line_ok = money.parse_int(pl.col("line_no"))
    df = (df.with_columns(
        pl.col("kind").str.to_lowercase().alias("kind"),
        qty.alias("_q"), qty_ok.alias("_q_ok"), line.alias("_line"), line_ok.alias("_line_ok"),
        parse_ts("received_at").alias("_at"),
        pl.when(pl.col("barcode").is_in(valid.implode())).then(to_gtin14("barcode")).alias("gtin"),
    ).join(aliases, on="gtin", how="left").sort("_n"))
    missing = pl.concat_str([
        missing_fields(REQUIRED).replace("", None),
        pl.when(pl.col("sku").is_null() & pl.col("barcode").is_null()).then(pl.lit("sku or barcode")),
        pl.when((pl.col("kind") == "transfer") & pl.col("from_warehouse_id").is_null())
        .then(pl.lit("from_warehouse_id (a transfer)")),
    ], separator=", ", ignore_nulls=True)
    q, bad_bc = pl.col("_q"), barcode_problem("barcode", valid)
    code, msg = first_problem([
        (missing != "", "MISSING_FIELD", pl.format("required field(s) empty: {}", missing)),
        (~pl.col("kind").is_in(KINDS), "BAD_RECEIPT_KIND",
         pl.format("kind '{}' is neither po nor transfer", pl.col("kind"))),
        (~pl.col("_line_ok") | (pl.col("_line") <= 0), "BAD_LINE_NO",
         pl.format("line_no '{}' is not a positive whole number", pl.col("line_no"))),
        (~pl.col("_q_ok") | (q <= 0) | (q > MAX_QUANTITY), "BAD_QUANTITY",
         pl.format("quantity '{}' is not a whole number between 1 and {}", pl.col("quantity"),
                   pl.lit(f"{MAX_QUANTITY:,}"))),
        (pl.col("_at").is_null(), "BAD_DATE",
         pl.format("received_at '{}' is not an ISO date/time (e.g. 2026-11-26T08:30:00+01:00)", pl.col("received_at"))),
        (pl.col("barcode").is_not_null() & bad_bc.is_not_null(), "BAD_BARCODE", bad_bc),
        (pl.col("sku").is_null() & pl.col("_mapped").is_null(), "UNKNOWN_PRODUCT",
         pl.format("barcode {} is no known product (no catalog alias names it)", pl.col("barcode"))),
        (pl.col("sku").is_null() & (pl.col("_n_skus") > 1), "UNKNOWN_PRODUCT",
         pl.format("barcode {} names {} SKUs in the catalog aliases: which one is ambiguous", pl.col("barcode"),
                   pl.col("_n_skus"))),
    ])
    df = df.with_columns(code.alias("reason_code"), msg.alias("message")).with_columns(
        pl.coalesce("sku", "_mapped").alias("sku"),
        pl.col("_line").fill_null(1).alias("line_no"),
        pl.col("_q").alias("quantity"),
        pl.col("_at").alias("received_at"),
        pl.when(pl.col("kind") == "transfer").then(pl.col("from_warehouse_id")).alias("from_warehouse_id"),
        neutralise(pl.col("reference")).alias("reference"),
    )

    # duplicates among the rows that pass the field checks
    key = ["receipt_id", "line_no"]
    ok = df.filter(pl.col("reason_code").is_null())
    content = pl.concat_str([pl.col(c).cast(pl.String).fill_null("\x00") for c in CONTENT], separator="\x1f")
    ok = ok.with_columns(
        content.n_unique().over(key).alias("_variants"),
        pl.col("_n").min().over(key).alias("_first_n"),
        pl.col("location").sort_by("_n").first().over(key).alias("_first_loc"),
        pl.col("location").sort_by("_n").str.join(", ").over(key).alias("_all_locs"),
    )
    conflict, copy = pl.col("_variants") > 1, pl.col("_n") != pl.col("_first_n")
    ok = ok.with_columns(
        pl.when(conflict | copy).then(pl.lit("DUPLICATE_LINE")).alias("reason_code"),
        pl.when(conflict)
        .then(pl.format("receipt {} line {} appears at {} with different content: none is counted, correct and resend",
                        pl.col("receipt_id"), pl.col("line_no"), pl.col("_all_locs")))
        .when(copy)
        .then(pl.format("receipt {} line {} is an identical copy of {}: counted once", pl.col("receipt_id"),
                        pl.col("line_no"), pl.col("_first_loc")))
        .alias("message"),
    )
    bad = pl.concat([
        d.filter(pl.col("reason_code").is_not_null()).select(
            "_n", "location", pl.col("receipt_id").alias("order_ref"), "reason_code", "message", "raw")
        for d in (df, ok)
    ])
    good = ok.filter(pl.col("reason_code").is_null())
    good = good.with_columns(record_ids(good, file_sha256).alias("record_id"), pl.lit(source_file).alias("source_file"))
    receipts = good.sort("_n").select(list(RECEIPT_SCHEMA)).cast(RECEIPT_SCHEMA)
    return ReceiptFile(receipts, finish_rejects(rec.rejected, bad), rec.received)


__all__ = ["KINDS", "RECEIPT_SCHEMA", "ReceiptFile", "read_receipts"]
