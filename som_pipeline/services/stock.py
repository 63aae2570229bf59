"""Stock service: the stock ledger's postings that come from outside the warehouse floor.

- **Snapshots**: a new ``ref.inventory`` file is a count. The first one opens every warehouse x SKU
  (``opening``); each later one posts an ``adjustment`` for every difference between the count and the ledger's
  on-hand at the count's time (``ledger.cycle_count``). A snapshot is posted once (its content hash is the
  watermark ``stock.snapshot``).
- **Receipts** (``landing/receipts/``): purchase-order receipts post ``receipt`` movements; transfer receipts a
  ``transfer_in`` at the receiving warehouse and a ``transfer_out`` at the sender. Backordered lines fill on
  the same run: validation and allocation read the ledger after this.

Everything else (reserve, pick, ship...) is posted by ``services/fulfilment.py`` with the tasks and shipments it
belongs to. :func:`post` is the one way movements enter the ledger: ids it already holds are skipped, new ones
get the next posting numbers (``seq``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.fulfilment import ledger
from som_pipeline.hashing import sha256_series
from som_pipeline.schemas import QuarantineModel, ReceiptModel, conform
from som_pipeline.services import Step
from som_pipeline.services.capture import write_quarantine
from som_pipeline.services.landing import archive, incoming, ledger_row
from som_pipeline.warehouse import Warehouse, insert_frame, registered, set_watermark, transaction, watermark

STOCK = Step(
    reads=("ref.inventory", "ref.warehouses", "ref.products", "ref.product_aliases", "core.stock_ledger",
           "core.receipts"),
    writes=("core.stock_ledger", "core.receipts"),
)
SNAPSHOT = "stock.snapshot"


@dataclass
class StockReport:
    snapshot: str = "unchanged"  # opened | counted | unchanged | none
    opening: int = 0
    adjustments: int = 0
    receipt_files: list[str] = field(default_factory=list)
    receipts: int = 0
    receipts_quarantined: int = 0
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {"snapshot": self.snapshot, "opening_movements": self.opening, "adjustments": self.adjustments,
                "receipt_files": len(self.receipt_files), "receipt_lines": self.receipts,
                "receipt_lines_quarantined": self.receipts_quarantined}


def run_id_for(now: datetime) -> str:
    """The run id stamped on movements posted outside Dagster (CLI tools, tests): from the run's clock."""
    return f"local-{now:%Y%m%dT%H%M%S}"


def post(con, movements: pl.DataFrame) -> int:
    """Append ``movements`` (``ledger.movements`` rows) the ledger does not hold yet, numbered in frame order
    after the last posting. Inside the caller's transaction. Returns how many were new."""
    if movements.height == 0:
        return 0
    movements = movements.unique("movement_id", keep="first", maintain_order=True)
    with registered(con, movements.select("movement_id")) as ids:
        known = con.execute(f"SELECT movement_id FROM core.stock_ledger SEMI JOIN {ids} USING (movement_id)").pl()  # noqa: S608
    new = movements.join(known, on="movement_id", how="anti", maintain_order="left")
    start = con.execute("SELECT coalesce(max(seq), 0) FROM core.stock_ledger").fetchone()[0]
    new = new.with_columns((pl.int_range(pl.len()) + start + 1).cast(pl.Int64).alias("seq"))
    return insert_frame(con, "core.stock_ledger", new)


def balances(con, pairs: pl.DataFrame | None = None) -> pl.DataFrame:
    """``core.v_stock`` rows (all, or the ``pairs``' warehouse_id x sku)."""
    if pairs is None:
        return con.execute("SELECT * FROM core.v_stock").pl()
    with registered(con, pairs.select("warehouse_id", "sku").unique()) as p:
        return con.execute(f"SELECT * FROM core.v_stock SEMI JOIN {p} USING (warehouse_id, sku)").pl()  # noqa: S608


def barcode_map(con) -> pl.DataFrame:
    """``gtin`` (GTIN-14) -> ``sku``: the catalog's GTIN/UPC/EAN aliases, and SKUs that are themselves digits."""
    return con.execute(
        "SELECT lpad(alias, 14, '0') AS gtin, sku FROM ref.product_aliases "
        "WHERE regexp_full_match(alias, '[0-9]{8}|[0-9]{12,14}') "
        "UNION SELECT lpad(sku, 14, '0'), sku FROM ref.products WHERE regexp_full_match(sku, '[0-9]{8}|[0-9]{12,14}')"
    ).pl().unique("gtin", keep="first")


def feed_quarantine(rejected: pl.DataFrame, feed: str, kind: str, source_file: str, sha: str,
                    now: datetime) -> pl.DataFrame:
    """``ops.quarantine`` rows of a feed file's rejects (location, order_ref, reason_code, message, raw)."""
    if rejected.height == 0:
        return conform(pl.DataFrame(), QuarantineModel).clear()
    q = rejected.with_columns(pl.lit(source_file).alias("source_file"), pl.lit(sha).alias("file_sha256"))
    q = q.with_columns(
        sha256_series(pl.concat_str([pl.col("file_sha256"), pl.col("location"), pl.col("reason_code")],
                                    separator="|"), q).alias("quarantine_id"),
        pl.lit(feed).alias("channel"), pl.lit(kind).alias("record_kind"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"))
    return conform(q, QuarantineModel)


def record_feed_file(con, f, feed: str, received: int, quarantine: pl.DataFrame, now: datetime) -> None:
    """A feed file's quarantine and its ledger row (``received = accepted + quarantined``), in the caller's
    transaction with the rows it accepted."""
    write_quarantine(con, quarantine)
    insert_frame(con, "ops.ingest_files", ledger_row(
        f.name, feed, f.sha, f.lf.size, "utf-8", FEEDS[feed].record_unit, received,
        received - quarantine.height, quarantine.height, 0, str(f.dest), now))


def run_stock_postings(wh: Warehouse, settings: Settings, now: datetime, run_id: str | None = None) -> StockReport:
    run_id = run_id or run_id_for(now)
    rep = StockReport()
    with wh.connect() as con:
        _post_snapshot(con, now, run_id, rep)
        files, settled = incoming(con, settings, "receipts", now, rep.notes)
        if files:
            _post_receipts(con, files, now, run_id, rep)
    for f in files:
        archive(f)
    rep.notes += [f"{o.source_file}: identical content already posted ({o.status}); archived" for o in settled]
    return rep


def _post_snapshot(con, now: datetime, run_id: str, rep: StockReport) -> None:
    sha = watermark(con, "ref.inventory")[1]  # the content the ref.inventory table was last loaded from
    if sha is None:
        rep.snapshot = "none"
        return
    if watermark(con, SNAPSHOT)[1] == sha:
        return
    snap = con.execute("SELECT warehouse_id, sku, on_hand, as_of FROM ref.inventory").pl()
    with registered(con, snap.select("warehouse_id", "sku", "as_of")) as s:
        at_count = con.execute(  # every pair the ledger knows, with its on-hand at the count's time
            "SELECT m.warehouse_id, m.sku, coalesce(last(m.qty_after ORDER BY m.occurred_at, m.seq) "  # noqa: S608
            "FILTER (WHERE m.occurred_at <= s.as_of), 0)::BIGINT AS on_hand "
            f"FROM core.v_stock_movements m JOIN {s} s USING (warehouse_id, sku) GROUP BY ALL").pl()
    moves = ledger.cycle_count(snap, at_count, snapshot_id=f"snapshot:{sha[:16]}", recorded_at=now, run_id=run_id)
    with transaction(con):
        post(con, moves)
        set_watermark(con, SNAPSHOT, 0, sha, now)
    rep.opening = moves.filter(pl.col("kind") == "opening").height
    rep.adjustments = moves.filter(pl.col("kind") == "adjustment").height
    rep.snapshot = "counted" if rep.adjustments or not rep.opening else "opened"


def _post_receipts(con, files: list, now: datetime, run_id: str, rep: StockReport) -> None:
    from som_pipeline.fulfilment.receipts import read_receipts

    codes = barcode_map(con)
    whs = con.execute("SELECT warehouse_id FROM ref.warehouses").pl()
    skus = con.execute("SELECT sku FROM ref.products").pl()
    for f in files:
        data = f.read()
        if data is None:
            rep.notes.append(f"{f.name}: changed while read; left for the next run")
            continue
        r = read_receipts(data, f.name, f.sha, codes)
        rc = r.receipts.with_columns(pl.col("warehouse_id").is_in(whs["warehouse_id"].implode()).alias("_w"),
                                     (pl.col("from_warehouse_id").is_null()
                                      | pl.col("from_warehouse_id").is_in(whs["warehouse_id"].implode())).alias("_f"),
                                     pl.col("sku").is_in(skus["sku"].implode()).alias("_s"))
        bad = rc.filter(~pl.col("_w") | ~pl.col("_f") | ~pl.col("_s")).select(
            "location", pl.col("receipt_id").alias("order_ref"),
            pl.when(~pl.col("_s")).then(pl.lit("UNKNOWN_PRODUCT")).otherwise(pl.lit("UNKNOWN_WAREHOUSE")).alias("reason_code"),
            pl.when(~pl.col("_s")).then(pl.format("SKU '{}' is not in the catalog", pl.col("sku")))
            .when(~pl.col("_w")).then(pl.format("warehouse '{}' is not in ref.warehouses", pl.col("warehouse_id")))
            .otherwise(pl.format("sending warehouse '{}' is not in ref.warehouses", pl.col("from_warehouse_id")))
            .alias("message"), "raw")
        good = conform(rc.filter(pl.col("_w") & pl.col("_f") & pl.col("_s")).with_columns(
            pl.lit(f.name).alias("source_file")), ReceiptModel)
        with registered(con, good.select("receipt_id", "line_no")) as k:
            dup = con.execute(f"SELECT receipt_id, line_no FROM core.receipts SEMI JOIN {k} USING (receipt_id, line_no)").pl()  # noqa: S608
        again = good.join(dup, on=["receipt_id", "line_no"], how="semi")
        good = good.join(dup, on=["receipt_id", "line_no"], how="anti")
        bad = pl.concat([bad, rc.join(again, on=["receipt_id", "line_no"], how="semi").select(
            "location", pl.col("receipt_id").alias("order_ref"), pl.lit("DUPLICATE_RECEIPT").alias("reason_code"),
            pl.format("receipt {} line {} was already posted from an earlier file", pl.col("receipt_id"),
                      pl.col("line_no")).alias("message"), "raw")]).cast(r.rejected.schema) if again.height else bad
        q = feed_quarantine(pl.concat([r.rejected, bad.cast(r.rejected.schema)]), "receipts", "receipt", f.name,
                            f.sha, now)
        doc = pl.format("{}:{}", pl.col("kind"), pl.col("receipt_id"))
        line = pl.col("line_no").cast(pl.String)
        moves = pl.concat([
            ledger.movements(good.filter(pl.col("kind") == "po"), "receipt", qty="quantity",
                             reason=pl.format("PO {} received", pl.col("reference")), source_doc=doc, source_line=line,
                             occurred_at=pl.col("received_at"), recorded_at=now, run_id=run_id),
            ledger.movements(good.filter(pl.col("kind") == "transfer"), "transfer_in", qty="quantity",
                             reason=pl.format("transfer {} from {}", pl.col("reference"), pl.col("from_warehouse_id")),
                             source_doc=doc, source_line=line, occurred_at=pl.col("received_at"), recorded_at=now,
                             run_id=run_id),
            ledger.movements(good.filter(pl.col("kind") == "transfer").with_columns(
                pl.col("warehouse_id").alias("_to"), pl.col("from_warehouse_id").alias("warehouse_id")),
                "transfer_out", qty=-pl.col("quantity"),
                reason=pl.format("transfer {} to {}", pl.col("reference"), pl.col("_to")),
                source_doc=doc, source_line=line, occurred_at=pl.col("received_at"), recorded_at=now, run_id=run_id),
        ])
        with transaction(con):
            insert_frame(con, "core.receipts", good)
            post(con, moves)
            record_feed_file(con, f, "receipts", r.received, q, now)
        rep.receipt_files.append(f.name)
        rep.receipts += good.height
        rep.receipts_quarantined += q.height
