"""Fulfilment service: allocations -> pick waves and tasks -> scans -> packages, labels, shipments -> the channels.

One run, in the order the floor works (each step in its own transaction, with its ledger postings):

1. **Stop** the open tasks of orders that are no longer approved (cancelled at the channel, held or rejected
   on a new version): ``release`` what was reserved, ``putaway`` what was picked.
2. **Scans** (``landing/scans/``): judged against the tasks (``fulfilment.scans``); ``pick`` movements for the
   confirmed units; a task closed short posts a cycle-count ``adjustment`` for its bin and ``release``s the
   rest, which allocation re-routes (another warehouse) or backorders on the next run (an order event says so).
3. **Ship** every group of closed tasks (order x warehouse x carrier service) with nothing left open -- for a
   ship-complete order, only once all of it is picked: cartons (``fulfilment.packing``), labels and rated cost
   (``fulfilment.labels``), ``ship`` movements, and the confirmation in the channel's format, written once
   (``ops.outbound_documents``).
4. **Release** a wave per warehouse for the open allocations whose ship date has come (``fulfilment.waves``),
   with ``reserve`` movements.
5. **Statuses**: ``core.order_fulfilment`` for the orders touched, and their events in ``core.order_events``.

A run's cost follows its new work: it reads the tasks the scans name, the groups that became shippable, the
allocations not yet on a task -- never the whole history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.fulfilment import ledger
from som_pipeline.fulfilment.config import FulfilmentConfig, load_fulfilment_config
from som_pipeline.fulfilment.waves import build_waves, local_dates, releasable
from som_pipeline.hashing import sha256_series, sha256_text
from som_pipeline.lifecycle import APPROVED, IN_FULFILMENT, PARTIALLY_SHIPPED, SHIPPED, details, order_events
from som_pipeline.schemas import (
    OrderFulfilmentModel,
    OutboundDocumentModel,
    PackageContentModel,
    PackageModel,
    PickScanModel,
    PickTaskModel,
    PickWaveModel,
    ShipmentLineModel,
    ShipmentModel,
    conform,
    from_rows,
)
from som_pipeline.services import Step
from som_pipeline.services.landing import archive, incoming, write_atomic
from som_pipeline.services.stock import (
    balances,
    barcode_map,
    feed_quarantine,
    post,
    record_feed_file,
    run_id_for,
)
from som_pipeline.warehouse import (
    Warehouse,
    insert_frame,
    registered,
    replace_keys,
    select_keys,
    set_watermark,
    transaction,
    watermark,
)

# The floor's feedback, before validation and allocation (so a short pick is re-planned in the same run):
# counts and receipts (services/stock.py), scans, and shipping what is picked.
FLOOR = Step(
    reads=("ref.inventory", "ref.warehouses", "ref.products", "ref.product_aliases", "ref.cartons",
           "ref.carrier_rates", "ref.shipping_zones", "core.orders", "core.order_lines", "core.stock_ledger",
           "core.receipts", "core.pick_scans", "core.shipments", "core.shipment_lines"),
    writes=("core.stock_ledger", "core.receipts", "core.pick_scans", "core.shipments", "core.shipment_lines",
            "core.packages", "core.package_contents"),
    appends=("core.pick_tasks", "core.order_fulfilment", "core.order_events"),
    feedback=("core.pick_tasks", "core.order_fulfilment"),
)
# After allocation: stop what is no longer approved, release the next waves.
FULFILMENT = Step(
    reads=("core.allocations", "core.orders", "core.order_lines", "core.order_status", "core.stock_ledger",
           "ref.warehouses", "ref.bin_locations", "core.pick_waves", "core.pick_tasks", "core.order_fulfilment",
           "core.shipment_lines"),
    writes=("core.pick_waves", "core.pick_tasks", "core.order_fulfilment"),
    appends=("core.stock_ledger", "core.order_events"),
)
LIVE = (APPROVED,)  # validation statuses under which the warehouse works on an order


@dataclass
class FulfilmentReport:
    tasks_stopped: int = 0
    scan_files: list[str] = field(default_factory=list)
    scans: dict = field(default_factory=dict)  # outcome -> count (quarantined ones included)
    shipments: int = 0
    packages: int = 0
    units_shipped: int = 0
    documents: int = 0
    waves: int = 0
    tasks_released: int = 0
    units_released: int = 0
    events: int = 0
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {"tasks_stopped": self.tasks_stopped, "scan_files": len(self.scan_files), "scans": self.scans,
                "shipments": self.shipments, "packages": self.packages, "units_shipped": self.units_shipped,
                "documents_written": self.documents, "waves_released": self.waves,
                "tasks_released": self.tasks_released, "units_released": self.units_released,
                "order_events": self.events}


def run_floor(wh: Warehouse, settings: Settings, now: datetime, run_id: str | None = None,
              cfg: FulfilmentConfig | None = None) -> FulfilmentReport:
    """Scans (picks, short picks) and shipping of what is picked: the floor's work since the last run."""
    run_id = run_id or run_id_for(now)
    cfg = cfg or load_fulfilment_config()
    rep = FulfilmentReport()
    touched, events = [], []
    with wh.connect() as con:
        files, settled = incoming(con, settings, "scans", now, rep.notes)
        for f in files:
            t, e = _take_scans(con, f, now, run_id, rep)
            touched.append(t)
            events.append(e)
        touched.append(_ship(con, settings, now, run_id, cfg, rep))
        _manifests(con, settings, now, rep)
        _statuses(con, _ids(touched), events, now, rep)
    for f in files:
        archive(f)
    rep.notes += [f"{o.source_file}: identical content already processed ({o.status}); archived" for o in settled]
    return rep


def run_fulfilment(wh: Warehouse, settings: Settings, now: datetime, run_id: str | None = None) -> FulfilmentReport:
    """After allocation: stop the tasks of orders no longer approved, release the next waves."""
    run_id = run_id or run_id_for(now)
    rep = FulfilmentReport()
    with wh.connect() as con:
        touched = [_stop_tasks(con, now, run_id, rep), _release(con, now, run_id, rep), _unrecorded(con)]
        _statuses(con, _ids(touched), [], now, rep)
    return rep


def _unrecorded(con) -> pl.DataFrame:
    """Orders with open tasks released after their fulfilment status was last written: a run stopped after a
    warehouse's release and before the statuses (the next run records them). Open tasks only: bounded by the
    work in progress, not by history."""
    return con.execute("""
        SELECT DISTINCT t.order_id FROM core.pick_tasks t LEFT JOIN core.order_fulfilment f USING (order_id)
        WHERE t.status = 'OPEN' AND (f.order_id IS NULL OR f.updated_at < t.released_at)""").pl()


def _ids(frames: list[pl.DataFrame]) -> pl.DataFrame:
    parts = [f.select("order_id") for f in frames if f.height]
    return pl.concat(parts).unique() if parts else pl.DataFrame(schema={"order_id": pl.String})


# ------------------------------------------------------------------------------------------------
# 1. tasks of orders no longer approved
# ------------------------------------------------------------------------------------------------
def _stop_tasks(con, now: datetime, run_id: str, rep: FulfilmentReport) -> pl.DataFrame:
    stop = con.execute(
        "SELECT t.* FROM core.pick_tasks t JOIN core.order_status s USING (order_id) "
        "WHERE t.status = 'OPEN' AND s.status NOT IN (SELECT unnest(?::VARCHAR[]))", [list(LIVE)]).pl()
    if stop.height == 0:
        return stop.select("order_id")
    why = "order no longer approved (cancelled, held or rejected): task stopped"
    moves = pl.concat([
        ledger.movements(stop, "release", qty=-(pl.col("quantity") - pl.col("picked_qty")), reason=why,
                         source_doc=pl.col("task_id"), source_line="stop", occurred_at=pl.lit(now),
                         recorded_at=now, run_id=run_id),
        ledger.movements(stop, "putaway", qty=-pl.col("picked_qty"), reason=why + "; picked units put back",
                         source_doc=pl.col("task_id"), source_line="stop", occurred_at=pl.lit(now),
                         recorded_at=now, run_id=run_id),
    ])
    stopped = stop.with_columns(pl.lit("CANCELLED").alias("status"), pl.lit(0, pl.Int64).alias("picked_qty"),
                                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("closed_at"))
    with transaction(con):
        replace_keys(con, "core.pick_tasks", stopped.select("task_id"), conform(stopped, PickTaskModel))
        post(con, moves)
    rep.tasks_stopped = stop.height
    return stop.select("order_id")


# ------------------------------------------------------------------------------------------------
# 2. scans
# ------------------------------------------------------------------------------------------------
def _take_scans(con, f, now: datetime, run_id: str, rep: FulfilmentReport) -> tuple[pl.DataFrame, pl.DataFrame]:
    from som_pipeline.fulfilment.scans import judge_scans, read_scans

    none = (pl.DataFrame(schema={"order_id": pl.String}), pl.DataFrame())
    data = f.read()
    if data is None:
        rep.notes.append(f"{f.name}: changed while read; left for the next run")
        return none
    r = read_scans(data, f.name, f.sha)
    tasks = select_keys(con, "core.pick_tasks", r.scans.select("task_id").unique())
    seen = select_keys(con, "core.pick_scans", r.scans.select("scan_id").unique(), "scan_id")
    out = judge_scans(r.scans, tasks, barcode_map(con), seen)
    acc = out.accepted
    moved = acc.drop("sku", strict=False).join(tasks.select("task_id", "sku", "bin_id", "order_id", "line_no"),
                                               on="task_id", how="left")
    short = (acc.filter(pl.col("short_qty") > 0).select("task_id", "short_qty", "scanned_at", "scan_id")
             .join(tasks.select("task_id", "warehouse_id", "sku", "bin_id", "order_id", "line_no"), on="task_id"))
    why_short = pl.format("short pick on task {} at bin {}: {} unit(s) not found", pl.col("task_id"),
                          pl.col("bin_id"), pl.col("short_qty"))
    moves = pl.concat([
        ledger.movements(moved.filter(pl.col("confirmed_qty") > 0), "pick",
                         qty=-pl.col("confirmed_qty"), reason=pl.format("picked for order {}", pl.col("order_id")),
                         source_doc=pl.col("task_id"), source_line=pl.col("scan_id"),
                         occurred_at=pl.col("scanned_at"), recorded_at=now, run_id=run_id),
        # the promise is withdrawn before the count is corrected: available never dips below zero between them
        ledger.movements(short, "release", qty=-pl.col("short_qty"), reason=why_short + pl.lit("; released for re-allocation"),
                         source_doc=pl.col("task_id"), source_line="short", occurred_at=pl.col("scanned_at"),
                         recorded_at=now, run_id=run_id),
        ledger.movements(short, "adjustment", qty=-pl.col("short_qty"), reason=why_short,
                         source_doc=pl.col("task_id"), source_line="short", occurred_at=pl.col("scanned_at"),
                         recorded_at=now, run_id=run_id),
    ])
    rejected = out.rejected.select("location", "order_ref", "reason_code", "message", "raw")
    q = feed_quarantine(pl.concat([r.rejected, rejected], how="vertical_relaxed"), "scans", "scan", f.name, f.sha, now)
    changed = tasks.select([c for c in tasks.columns if c not in ("picked_qty", "status", "closed_at")]).join(
        out.tasks.select("task_id", "picked_qty", "status", "closed_at"), on="task_id", how="inner")
    scans = conform(acc.with_columns(pl.lit(f.name).alias("source_file")), PickScanModel)
    with transaction(con):
        replace_keys(con, "core.pick_tasks", changed.select("task_id"), conform(changed, PickTaskModel))
        insert_frame(con, "core.pick_scans", scans)
        post(con, moves)
        record_feed_file(con, f, "scans", r.received, q, now)
    rep.scan_files.append(f.name)
    for k, v in out.counts.items():
        rep.scans[k] = rep.scans.get(k, 0) + int(v)
    for code, n in r.rejected.group_by("reason_code").len().iter_rows():
        rep.scans[code] = rep.scans.get(code, 0) + n
    ev = short.select(
        "order_id", pl.format("short pick: {} unit(s) of {} line {} not found at bin {} (task {}); re-allocated to "
                              "another warehouse or backordered on the next allocation", pl.col("short_qty"),
                              pl.col("sku"), pl.col("line_no"), pl.col("bin_id"), pl.col("task_id")).alias("reason"),
        pl.col("scanned_at").alias("at"),
        details(task=pl.col("task_id"), sku=pl.col("sku"), short_qty=pl.col("short_qty"),
                scan=pl.col("scan_id")).alias("details"))
    return changed.select("order_id"), ev


# ------------------------------------------------------------------------------------------------
# 3. ship
# ------------------------------------------------------------------------------------------------
def _shippable(con) -> pl.DataFrame:
    """Closed tasks with picked units not shipped, in groups (order x warehouse x carrier service) with no open
    task left; a ship-complete order's only when the whole order is picked."""
    return con.execute("""
        WITH cand AS (
            SELECT * FROM core.pick_tasks WHERE shipment_id IS NULL AND status IN ('PICKED', 'SHORT') AND picked_qty > 0
        ), open_groups AS (
            SELECT DISTINCT order_id, warehouse_id, carrier_id, service FROM core.pick_tasks
            WHERE status = 'OPEN' AND order_id IN (SELECT order_id FROM cand)
        ), sc AS (
            SELECT o.order_id, o.ship_complete,
                   (SELECT coalesce(sum(l.quantity), 0) FROM core.order_lines l
                    WHERE l.order_id = o.order_id AND l.item_kind = 'catalog') AS ordered,
                   (SELECT coalesce(sum(t.picked_qty), 0) FROM core.pick_tasks t
                    WHERE t.order_id = o.order_id AND t.status IN ('PICKED', 'SHORT')) AS picked,
                   EXISTS (SELECT 1 FROM core.pick_tasks t WHERE t.order_id = o.order_id AND t.status = 'OPEN') AS any_open
            FROM core.orders o WHERE o.order_id IN (SELECT order_id FROM cand)
        )
        SELECT c.* FROM cand c JOIN sc USING (order_id)
        WHERE NOT EXISTS (SELECT 1 FROM open_groups g WHERE g.order_id = c.order_id AND g.warehouse_id = c.warehouse_id
                          AND g.carrier_id = c.carrier_id AND g.service = c.service)
          AND (NOT sc.ship_complete OR (NOT sc.any_open AND sc.picked >= sc.ordered))
        ORDER BY c.order_id, c.warehouse_id, c.carrier_id, c.service, c.line_no, c.sku
    """).pl()


def _ship(con, settings: Settings, now: datetime, run_id: str, cfg: FulfilmentConfig,
          rep: FulfilmentReport) -> pl.DataFrame:
    from som_pipeline.fulfilment.labels import rate_packages, sscc18, tracking_numbers, tracking_url
    from som_pipeline.fulfilment.packing import pack_shipments

    tasks = _shippable(con)
    if tasks.height == 0:
        return tasks.select("order_id")
    gkey = ["order_id", "warehouse_id", "carrier_id", "service"]
    groups = tasks.group_by(gkey, maintain_order=True).agg(pl.col("task_id").sort().str.join(",").alias("_tasks"))
    groups = groups.with_columns((pl.lit("S-") + sha256_series(pl.concat_str(
        [*[pl.col(c) for c in gkey], pl.col("_tasks")], separator="|"), groups).str.slice(0, 20)).alias("shipment_id"))
    tasks = tasks.drop("shipment_id").join(groups.select(*gkey, "shipment_id"), on=gkey, how="left")
    orders = select_keys(con, "core.orders", groups.select("order_id").unique())
    days = local_dates(con.execute("SELECT * FROM ref.warehouses").pl(), now)
    lines = (tasks.group_by("shipment_id", "order_id", "line_no", "sku", "warehouse_id", maintain_order=True)
             .agg(pl.col("picked_qty").sum().cast(pl.Int64).alias("quantity")))
    products = select_keys(con, "ref.products", lines.select("sku").unique())
    items = lines.join(products.select("sku", "length_cm", "width_cm", "height_cm", "weight_kg", "hazmat",
                                       pl.col("fragile").fill_null(False)), on="sku", how="left")
    missing = items.filter(pl.col("weight_kg").is_null())
    if missing.height:  # a SKU not in the catalog cannot be packed: it waits, and the run says so
        rep.notes.append(f"{missing.height} shipment line(s) of SKUs without catalog dimensions wait: "
                         f"{', '.join(sorted(set(missing['sku'].to_list()))[:5])}")
        bad = missing.select("shipment_id").unique()
        items = items.join(bad, on="shipment_id", how="anti")
        lines = lines.join(bad, on="shipment_id", how="anti")
        tasks = tasks.join(bad, on="shipment_id", how="anti")
        groups = groups.join(bad, on="shipment_id", how="anti")
        if groups.height == 0:
            return tasks.select("order_id")
    cartons = con.execute("SELECT * FROM ref.cartons WHERE active").pl()
    packed = pack_shipments(items.group_by("shipment_id", "sku", maintain_order=True).agg(
        pl.col("quantity").sum(), *[pl.col(c).first() for c in ("length_cm", "width_cm", "height_cm", "weight_kg",
                                                                  "hazmat", "fragile")]),
        cartons, fragile_padding_cm=cfg.fragile_padding_cm)
    g = groups.join(orders.select("order_id", "channel", "channel_order_ref", "ship_to_country", "ship_to_region",
                                  "ship_complete"), on="order_id", how="left")
    pk = packed.packages.join(g.select("shipment_id", "order_id", "warehouse_id", "carrier_id", "service", "channel",
                                       "ship_to_country", "ship_to_region"), on="shipment_id", how="left")
    pk = pk.sort("shipment_id", "package_no").with_columns(pl.col("gross_weight_kg").round(3))  # grams
    # labels: per carrier, the next serial numbers after the last label (a watermark per carrier)
    serial_parts = []
    for (carrier,), part in pk.group_by("carrier_id", maintain_order=True):
        start = watermark(con, f"labels.{carrier}")[0]
        serial_parts.append(part.with_columns((pl.int_range(pl.len()) + start + 1).cast(pl.Int64).alias("serial")))
    pk = pl.concat(serial_parts).sort("shipment_id", "package_no")
    pk = pk.with_columns(pl.col("carrier_id").replace_strict(cfg.shipper_accounts, default="000000")
                         .alias("shipper_account"))
    pk = pk.with_columns(tracking_numbers(pk).alias("tracking_number"))
    pk = pk.with_columns(tracking_url("carrier_id", "tracking_number").alias("tracking_url"))
    sscc_rows = pk.with_row_index("_r").filter(pl.col("channel").is_in(list(cfg.sscc_channels)))
    if sscc_rows.height:
        start = watermark(con, "labels.sscc")[0]
        codes = sscc18(cfg.sscc_extension_digit, cfg.gs1_company_prefix,
                       pl.Series("serial", range(start + 1, start + 1 + sscc_rows.height), dtype=pl.Int64))
        pk = pk.with_row_index("_r").join(sscc_rows.select("_r").with_columns(codes.alias("sscc")), on="_r",
                                          how="left").drop("_r")
    else:
        pk = pk.with_columns(pl.lit(None, pl.String).alias("sscc"))
    zones = _zones(con, pk)
    rated = rate_packages(pk.join(zones, on="shipment_id", how="left").rename({"gross_weight_kg": "gross_weight_kg"}),
                          con.execute("SELECT * FROM ref.carrier_rates").pl(),
                          dim_divisor_cm3_per_kg=cfg.dim_divisor_cm3_per_kg)
    pk = pk.join(rated.select("shipment_id", "package_no", "billable_weight_kg", "rated_cost",
                             pl.col("rate_currency").alias("currency")),
                 on=["shipment_id", "package_no"], how="left")
    pk = pk.with_columns(pl.format("{}-{}", pl.col("shipment_id"), pl.col("package_no")).alias("package_id"))
    packages = conform(pk, PackageModel)
    per_ship = pk.group_by("shipment_id").agg(pl.len().cast(pl.Int64).alias("packages"),
                                              pl.col("gross_weight_kg").sum().round(3), pl.col("rated_cost").sum(),
                                              pl.col("currency").drop_nulls().first())
    units = lines.group_by("shipment_id").agg(pl.col("quantity").sum().cast(pl.Int64).alias("units"))
    shipped_before = con.execute("SELECT order_id, sum(quantity)::BIGINT AS before FROM core.shipment_lines "
                                 "WHERE order_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
                                 [g["order_id"].unique().to_list()]).pl()
    ordered = con.execute("SELECT order_id, sum(quantity)::BIGINT AS ordered FROM core.order_lines WHERE "
                          "item_kind = 'catalog' AND order_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
                          [g["order_id"].unique().to_list()]).pl()
    ships = (g.join(per_ship, on="shipment_id").join(units, on="shipment_id")
             .join(days.select("warehouse_id", pl.when(pl.lit(now).cast(pl.Datetime("us", "UTC")) > pl.col("cutoff_at"))
                               .then(pl.col("local_date") + pl.duration(days=1)).otherwise(pl.col("local_date"))
                               .alias("ship_date")), on="warehouse_id", how="left")  # after the cutoff: tomorrow's truck
             .join(shipped_before, on="order_id", how="left").join(ordered, on="order_id", how="left")
             .with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("shipped_at"),
                           ((pl.col("before").fill_null(0) + pl.col("units").sum().over("order_id"))
                            < pl.col("ordered").fill_null(0)).alias("partial")))
    shipments = conform(ships, ShipmentModel)
    slines = conform(lines, ShipmentLineModel)
    moves = ledger.movements(lines, "ship", qty=-pl.col("quantity"),
                             reason=pl.format("shipped to order {}", pl.col("order_id")),
                             source_doc=pl.col("shipment_id"),
                             source_line=pl.format("{}:{}", pl.col("line_no"), pl.col("sku")),
                             occurred_at=pl.lit(now), recorded_at=now, run_id=run_id)
    shipped_tasks = conform(tasks, PickTaskModel)
    contents = conform(contents_by_line(packed.contents, lines).with_columns(
        pl.format("{}-{}", pl.col("shipment_id"), pl.col("package_no")).alias("package_id")), PackageContentModel)
    docs, files, problems = _confirmations(con, settings, shipments, slines, packages,
                                           contents.join(pk.select("package_id", "package_no"), on="package_id"),
                                           orders, now)
    rep.notes += problems
    # the files first, then the commit that records them: a run killed in between left files a rerun rewrites
    # (same shipments, same paths); a document recorded always has its file
    for path, text in files:
        write_atomic(path, text)
    with transaction(con):
        insert_frame(con, "core.shipments", shipments)
        insert_frame(con, "core.shipment_lines", slines)
        insert_frame(con, "core.packages", packages)
        insert_frame(con, "core.package_contents", contents)
        replace_keys(con, "core.pick_tasks", shipped_tasks.select("task_id"), shipped_tasks)
        post(con, moves)
        for (carrier,), part in pk.group_by("carrier_id"):
            set_watermark(con, f"labels.{carrier}", int(part["serial"].max()), None, now)
        if sscc_rows.height:
            set_watermark(con, "labels.sscc", watermark(con, "labels.sscc")[0] + sscc_rows.height, None, now)
        insert_frame(con, "ops.outbound_documents", docs)
    rep.shipments += shipments.height
    rep.packages += packages.height
    rep.units_shipped += int(slines["quantity"].sum() or 0)
    rep.documents += docs.height
    return shipments.select("order_id")


def _zones(con, pk: pl.DataFrame) -> pl.DataFrame:
    """``shipment_id, zone`` from ref.shipping_zones (the destination region's row, else the country's '*')."""
    s = pk.select("shipment_id", "warehouse_id", "ship_to_country", "ship_to_region").unique("shipment_id")
    z = con.execute("SELECT * FROM ref.shipping_zones").pl()
    exact = s.join(z, left_on=["warehouse_id", "ship_to_country", "ship_to_region"],
                   right_on=["warehouse_id", "dest_country", "dest_region"], how="left").select("shipment_id", "zone")
    rest = s.join(z.filter(pl.col("dest_region") == "*"), left_on=["warehouse_id", "ship_to_country"],
                  right_on=["warehouse_id", "dest_country"], how="left").select("shipment_id", pl.col("zone").alias("_z"))
    return exact.join(rest, on="shipment_id", how="left").select(
        "shipment_id", pl.coalesce("zone", "_z").cast(pl.Int64).alias("zone"))


def contents_by_line(contents: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """Package contents per SKU split over the shipment's lines of that SKU (line order, package order):
    ``shipment_id, package_no, line_no, sku, quantity``. Interval overlap of the cumulative unit ranges, so it is
    vectorised and conserves units per line and per package."""
    def ranges(df: pl.DataFrame, order: str) -> pl.DataFrame:
        return df.sort("shipment_id", "sku", order).with_columns(
            pl.col("quantity").cum_sum().over("shipment_id", "sku").alias("_end")).with_columns(
            (pl.col("_end") - pl.col("quantity")).alias("_start"))

    c = ranges(contents.select("shipment_id", "package_no", "sku", "quantity"), "package_no")
    ln = ranges(lines.select("shipment_id", "line_no", "sku", "quantity"), "line_no")
    j = c.join(ln, on=["shipment_id", "sku"], suffix="_l")
    j = j.with_columns((pl.min_horizontal("_end", "_end_l") - pl.max_horizontal("_start", "_start_l")).alias("q"))
    return (j.filter(pl.col("q") > 0).select("shipment_id", "package_no", "line_no", "sku",
                                             pl.col("q").cast(pl.Int64).alias("quantity"))
            .sort("shipment_id", "package_no", "line_no"))


def _confirmations(con, settings: Settings, shipments: pl.DataFrame, lines: pl.DataFrame, packages: pl.DataFrame,
                   contents: pl.DataFrame, orders: pl.DataFrame, now: datetime
                   ) -> tuple[pl.DataFrame, list[tuple[Path, str]]]:
    """Ship confirmations in each channel's format (``fulfilment.outbound``): (``ops.outbound_documents`` rows,
    files to write under ``$SOM_HOME/outbound/<channel>/``). A document already recorded is not written again.
    Shopify and Amazon: one API request per package (their bodies hold one tracking number), written as JSON
    ``{method, path, body}`` for the sender; EDI: one X12 856 per shipment."""

    out_root = settings.home / "outbound"
    rows, files = [], []
    ol = con.execute("SELECT order_id, line_no, line_ref AS channel_line_ref, product_ids FROM core.order_lines "
                     "WHERE order_id IN (SELECT unnest(?::VARCHAR[]))", [shipments["order_id"].unique().to_list()]).pl()
    pid = pl.col("product_ids").str.json_decode(pl.List(pl.Struct({"qualifier": pl.String, "id": pl.String})))

    def sent(*quals: str) -> pl.Expr:  # the id the partner sent under the first of ``quals`` (the 850's PO1)
        e = pl.element()
        return pl.coalesce(*(pid.list.eval(e.filter(e.struct.field("qualifier") == q).struct.field("id")).list.first()
                             for q in quals))

    sl = lines.join(ol, on=["order_id", "line_no"], how="left").with_columns(  # the 850's ids go back in the 856
        sent("BP", "IN").alias("buyer_part"), sent("UP", "EN", "UK").alias("upc"))
    sh = shipments.join(orders.select("order_id", "channel_order_ref", "customer_po", "customer_ref", "ship_to_name",
                                      pl.col("ship_to_line1").alias("ship_to_address1"), "ship_to_city",
                                      "ship_to_region", "ship_to_postal_code", "ship_to_country"),
                        on="order_id", how="left")
    todo = sh.filter(pl.col("channel").is_in(["shopify", "amazon", "edi"]))
    for batch in todo.iter_slices(CONFIRMATION_BATCH):
        _confirm_batch(batch, sl, packages, contents, out_root, now, rows)
    portal = sh.filter(pl.col("channel") == "b2b_portal")
    if portal.height:
        rows += _portal_writeback(settings, portal, sl, packages, now)
    ok = [r for r in rows if r["kind"] != "error"]
    errors = [r for r in rows if r["kind"] == "error"]
    docs = from_rows(OutboundDocumentModel, ok)
    if docs.height:
        known = set(select_keys(con, "ops.outbound_documents", docs.select("document_id"), "document_id")
                    ["document_id"].to_list())
        ok = [r for r in ok if r["document_id"] not in known]
        docs = from_rows(OutboundDocumentModel, ok)
    files = [(Path(r["path"]), r["_text"]) for r in ok if "_text" in r]
    return docs, files, [f"{r['key']}: no {r['channel']} confirmation: {r['_error']}" for r in errors]


CONFIRMATION_BATCH = 5_000  # shipments whose frames are split at a time (bounds the memory of the split)


def _confirm_batch(todo: pl.DataFrame, sl: pl.DataFrame, packages: pl.DataFrame, contents: pl.DataFrame,
                   out_root: Path, now: datetime, rows: list[dict]) -> None:
    """The documents of a batch of shipments, appended to ``rows``. Every frame is split once (not filtered whole
    per shipment): a document is built from its shipment's own rows."""
    from som_pipeline.fulfilment import outbound

    keep = todo.select("shipment_id")
    parts = {name: {k[0]: v for k, v in df.join(keep, on="shipment_id", how="semi")
                    .partition_by("shipment_id", as_dict=True).items()}
             for name, df in (("sh", todo), ("ln", sl), ("pk", packages), ("ct", contents))}
    for s in todo.iter_rows(named=True):
        sid, ch = s["shipment_id"], s["channel"]
        one, ln, pk, ct = (parts[n].get(sid) for n in ("sh", "ln", "pk", "ct"))
        if ln is None or pk is None or ct is None:
            rows.append({"document_id": f"error:{sid}", "kind": "error", "channel": ch, "key": sid, "path": "",
                         "sha256": "", "written_at": now, "_error": "no lines, packages or contents"})
            continue
        try:
            if ch == "edi":
                po = one.with_columns(  # our EDI order ref is "<sender>:<BEG03 PO number>": the 856 quotes the PO
                    pl.col("channel_order_ref").str.split(":").list.last(), pl.lit(None, pl.String).alias("partner_id"))
                text = outbound.x12_856(po, ln, pk, ct,
                                        sender_id="SOMPIPELINE", receiver_id=(s["customer_ref"] or "PARTNER")[:15],
                                        control_number=int(sha256_text(sid.encode())[:8], 16) % 999_999_999 + 1,
                                        now=now)
                docs = [("x12_856", outbound.document_id("x12_856", sid), out_root / ch / f"{sid}.856.edi", text)]
            else:
                if ch == "shopify":
                    calls = outbound.shopify_fulfillment(one, ln, pk, ct, fulfillment_orders=_fulfillment_orders(
                        s["channel_order_ref"], ln))
                else:
                    calls = outbound.amazon_confirm_shipment(one, ln, pk, ct, marketplace_id=AMAZON_MARKETPLACE)
                kind = "shopify_fulfillment" if ch == "shopify" else "amazon_confirm_shipment"
                docs = [(kind, c.document_id, out_root / ch / f"{sid}-{c.package_no}.json",
                         json.dumps({"method": c.method, "path": c.path, "body": c.body}, indent=1, sort_keys=True))
                        for c in calls]
        except outbound.OutboundError as e:  # a shipment the format cannot express: said, not raised
            docs = []
            rows.append({"document_id": f"error:{sid}", "kind": "error", "channel": ch, "key": sid, "path": "",
                         "sha256": sha256_text(str(e).encode()), "written_at": now, "_error": str(e)})
        for kind, doc_id, path, text in docs:
            rows.append({"document_id": doc_id, "kind": kind, "channel": ch, "key": sid, "path": str(path),
                         "sha256": sha256_text(text.encode()), "written_at": now, "_text": text})


def _portal_writeback(settings: Settings, shipments: pl.DataFrame, lines: pl.DataFrame, packages: pl.DataFrame,
                      now: datetime) -> list[dict]:
    """Portal orders' shipments written back to the portal database (``portal_shipments``, through SQLAlchemy),
    before the warehouse records them: a rerun finds the rows by key and inserts nothing twice. A portal that
    cannot be reached is said (an ``error`` row) and its shipments are confirmed by a later run."""
    import sqlalchemy as sa

    from som_pipeline.fulfilment import outbound
    from som_pipeline.ingest.b2b import create_portal_schema, portal_shipments

    tn = packages.group_by("shipment_id").agg(pl.col("tracking_number").sort().str.join(",").alias("tracking_numbers"),
                                              pl.len().cast(pl.Int64).alias("n"))
    ln = lines.group_by("shipment_id").agg(pl.struct("line_no", "sku", "quantity").sort_by("line_no").alias("lines"))
    rows = (shipments.join(tn, on="shipment_id").join(ln, on="shipment_id")
            .select("shipment_id", pl.col("channel_order_ref").alias("order_number"), pl.col("carrier_id").alias("carrier"),
                    "service", "shipped_at", pl.col("n").alias("packages"), "tracking_numbers",
                    pl.concat_str([pl.lit("["), pl.col("lines").list.eval(pl.element().struct.json_encode())
                                   .list.join(","), pl.lit("]")]).alias("lines")))
    try:
        engine = sa.create_engine(settings.b2b_db_url)
        with engine.begin() as conn:
            create_portal_schema(conn)
            have = {r[0] for r in conn.execute(sa.select(portal_shipments.c.shipment_id).where(
                portal_shipments.c.shipment_id.in_(rows["shipment_id"].to_list())))}
            new = [r for r in rows.iter_rows(named=True) if r["shipment_id"] not in have]
            if new:
                conn.execute(portal_shipments.insert(), new)
        engine.dispose()
    except sa.exc.SQLAlchemyError as e:
        return [{"document_id": f"error:{r['shipment_id']}", "kind": "error", "channel": "b2b_portal",
                 "key": r["shipment_id"], "path": "", "sha256": "", "written_at": now,
                 "_error": f"portal write-back failed ({type(e).__name__}); retried by the next run"}
                for r in rows.iter_rows(named=True)]
    return [{"document_id": outbound.document_id("portal_shipment", r["shipment_id"]), "kind": "portal_shipment",
             "channel": "b2b_portal", "key": r["shipment_id"], "path": "portal_shipments",
             "sha256": sha256_text(str(sorted(r.items())).encode()), "written_at": now}
            for r in rows.iter_rows(named=True)]


def _manifests(con, settings: Settings, now: datetime, rep: FulfilmentReport) -> None:
    """End-of-day manifests: per carrier x warehouse x ship date, once the warehouse's cutoff that day has passed
    (the trucks have left), written once to ``outbound/manifests/``."""
    from som_pipeline.fulfilment import outbound

    waiting = con.execute("""
        SELECT s.* FROM core.shipments s
        WHERE NOT EXISTS (SELECT 1 FROM ops.outbound_documents d WHERE d.kind = 'manifest'
             AND d.key = s.carrier_id || '|' || s.warehouse_id || '|' || strftime(s.ship_date, '%Y-%m-%d'))
    """).pl()
    if waiting.height == 0:
        return
    days = local_dates(con.execute("SELECT * FROM ref.warehouses").pl(), now)
    due = waiting.join(days, on="warehouse_id").filter(
        (pl.col("ship_date") < pl.col("local_date"))
        | ((pl.col("ship_date") == pl.col("local_date")) & (pl.col("cutoff_at") <= now))).drop("local_date", "cutoff_at")
    if due.height == 0:
        return
    pk = select_keys(con, "core.packages", due.select("shipment_id"))
    m = outbound.manifest(due, pk)
    rows, files = [], []
    for r in m.iter_rows(named=True):
        one = m.filter((pl.col("carrier_id") == r["carrier_id"]) & (pl.col("warehouse_id") == r["warehouse_id"])
                       & (pl.col("ship_date") == r["ship_date"]))
        key = f"{r['carrier_id']}|{r['warehouse_id']}|{r['ship_date']:%Y-%m-%d}"
        text = outbound.manifest_csv(one)
        path = settings.home / "outbound" / "manifests" / r["carrier_id"] / f"{r['warehouse_id']}-{r['ship_date']:%Y%m%d}.csv"
        rows.append({"document_id": outbound.document_id("manifest", (r["carrier_id"], r["warehouse_id"],
                                                                      r["ship_date"].isoformat())),
                     "kind": "manifest", "channel": r["carrier_id"], "key": key, "path": str(path),
                     "sha256": sha256_text(text.encode()), "written_at": now})
        files.append((path, text))
    for path, text in files:  # written before they are recorded (see _ship)
        write_atomic(path, text)
    with transaction(con):
        insert_frame(con, "ops.outbound_documents", from_rows(OutboundDocumentModel, rows))
    rep.documents += len(rows)


AMAZON_MARKETPLACE = "ATVPDKIKX0DER"  # amazon.com (the demo's marketplace); per-order marketplaces: an Amazon column


def _fulfillment_orders(order_ref: str, lines: pl.DataFrame) -> list[dict]:
    """The Shopify order's fulfillment orders as the sender would fetch them (``GET /orders/<id>/
    fulfillment_orders.json``) -- stood in here by one open fulfillment order of the shipped lines (ids from the
    order's line item ids); the sender replaces them with the live ones before posting."""
    items = [{"id": int(r["channel_line_ref"]), "line_item_id": int(r["channel_line_ref"]),
              "fulfillable_quantity": int(r["quantity"])}
             for r in lines.iter_rows(named=True) if str(r.get("channel_line_ref") or "").isdigit()]
    fo_id = int(order_ref) if str(order_ref).isdigit() else 1
    return [{"id": fo_id, "status": "open", "assigned_location_id": None, "line_items": items}]


# ------------------------------------------------------------------------------------------------
# 4. release
# ------------------------------------------------------------------------------------------------
def open_allocations(con, warehouse_id: str | None = None) -> pl.DataFrame:
    """Allocated units not on a task yet: allocation quantity - units its tasks hold (open tasks: their
    quantity; closed: what was picked), per order line x SKU x warehouse, for orders still approved (of one
    warehouse, or of all)."""
    return con.execute("""
        WITH held AS (
            SELECT order_id, line_no, sku, warehouse_id,
                   sum(CASE WHEN status = 'OPEN' THEN quantity WHEN status IN ('PICKED', 'SHORT') THEN picked_qty
                            ELSE 0 END)::BIGINT AS held
            FROM core.pick_tasks WHERE $1::VARCHAR IS NULL OR warehouse_id = $1 GROUP BY ALL
        )
        SELECT a.order_id, a.line_no, a.sku, a.warehouse_id, (a.quantity - coalesce(h.held, 0))::BIGINT AS quantity,
               a.carrier_id, a.service, a.expected_ship_date, a.allocated_at
        FROM core.allocations a
        JOIN core.order_status s ON s.order_id = a.order_id AND s.status = 'APPROVED'
        LEFT JOIN held h ON h.order_id = a.order_id AND h.line_no = a.line_no AND h.sku = a.sku
                            AND h.warehouse_id = a.warehouse_id
        WHERE a.quantity > coalesce(h.held, 0) AND ($1::VARCHAR IS NULL OR a.warehouse_id = $1)
    """, [warehouse_id]).pl()


def _release(con, now: datetime, run_id: str, rep: FulfilmentReport) -> pl.DataFrame:
    """Release the next waves, one warehouse at a time (a wave is one warehouse's; ship-complete orders ship
    from one warehouse: allocation's blocking check), each in its own transaction: memory follows the largest
    warehouse's day, and a run stopped between two warehouses releases the rest on the next run."""
    warehouses = con.execute("SELECT * FROM ref.warehouses ORDER BY warehouse_id").pl()
    days = local_dates(warehouses, now)
    bins = con.execute("SELECT * FROM ref.bin_locations").pl()
    released = [_release_warehouse(con, w, days, bins, now, run_id, rep) for w in warehouses["warehouse_id"]]
    return _ids(released)


def _release_warehouse(con, warehouse_id: str, days: pl.DataFrame, bins: pl.DataFrame, now: datetime, run_id: str,
                       rep: FulfilmentReport) -> pl.DataFrame:
    rows = open_allocations(con, warehouse_id)
    if rows.height == 0:
        return rows.select("order_id")
    ids = rows.select("order_id").unique()
    orders = select_keys(con, "core.orders", ids, "order_id, ship_complete")
    # a ship-complete order is ready when every catalog unit is allocated (nothing backordered)
    with registered(con, ids) as k:
        ready = con.execute(f"""
            SELECT l.order_id, sum(l.quantity)::BIGINT = coalesce(max(a.units), 0) AS order_ready
            FROM core.order_lines l SEMI JOIN {k} USING (order_id)
            LEFT JOIN (SELECT order_id, sum(quantity)::BIGINT AS units FROM core.allocations SEMI JOIN {k} USING (order_id)
                       GROUP BY 1) a USING (order_id)
            WHERE l.item_kind = 'catalog' GROUP BY 1
        """).pl()  # noqa: S608 (a registered frame's generated name)
    rows = rows.join(orders, on="order_id", how="left").join(ready, on="order_id", how="left").with_columns(
        pl.col("ship_complete").fill_null(False), pl.col("order_ready").fill_null(False))
    del orders, ready
    avail = balances(con, rows)
    go = releasable(rows, avail, days)
    del rows, avail
    if go.height == 0:
        return go.select("order_id")
    earlier = con.execute("SELECT warehouse_id, ship_date, count(*)::BIGINT AS waves FROM core.pick_waves "
                          "WHERE warehouse_id = ? GROUP BY ALL", [warehouse_id]).pl()
    waves, tasks = build_waves(go, bins.filter(pl.col("warehouse_id") == warehouse_id), earlier, now)
    del go
    moves = ledger.movements(tasks, "reserve", qty="quantity",
                             reason=pl.format("released in wave {} for order {}", pl.col("wave_id"), pl.col("order_id")),
                             source_doc=pl.col("task_id"), source_line=None, occurred_at=pl.lit(now),
                             recorded_at=now, run_id=run_id)
    with transaction(con):
        insert_frame(con, "core.pick_waves", conform(waves, PickWaveModel))
        insert_frame(con, "core.pick_tasks", conform(tasks, PickTaskModel))
        post(con, moves)
    rep.waves += waves.height
    rep.tasks_released += tasks.height
    rep.units_released += int(tasks["quantity"].sum())
    return tasks.select("order_id")


# ------------------------------------------------------------------------------------------------
# 5. statuses
# ------------------------------------------------------------------------------------------------
def _statuses(con, ids: pl.DataFrame, extra_events: list[pl.DataFrame], now: datetime, rep: FulfilmentReport) -> None:
    if ids.height == 0:
        return
    with registered(con, ids) as k:
        q = con.execute(f"""
            SELECT o.order_id, o.version, s.status AS validation_status,
                   (SELECT coalesce(sum(quantity), 0) FROM core.order_lines l
                    WHERE l.order_id = o.order_id AND l.item_kind = 'catalog')::BIGINT AS units_ordered,
                   (SELECT coalesce(sum(CASE WHEN status = 'OPEN' THEN quantity WHEN status IN ('PICKED', 'SHORT')
                                             THEN picked_qty ELSE 0 END), 0) FROM core.pick_tasks t
                    WHERE t.order_id = o.order_id)::BIGINT AS units_released,
                   (SELECT coalesce(sum(picked_qty), 0) FROM core.pick_tasks t
                    WHERE t.order_id = o.order_id AND t.status <> 'CANCELLED')::BIGINT AS units_picked,
                   (SELECT coalesce(sum(quantity - picked_qty), 0) FROM core.pick_tasks t
                    WHERE t.order_id = o.order_id AND t.status = 'SHORT')::BIGINT AS units_short,
                   (SELECT coalesce(sum(quantity), 0) FROM core.shipment_lines x
                    WHERE x.order_id = o.order_id)::BIGINT AS units_shipped,
                   f.status AS previous
            FROM core.orders o JOIN {k} USING (order_id)
            LEFT JOIN core.order_status s USING (order_id)
            LEFT JOIN core.order_fulfilment f USING (order_id)
        """).pl()  # noqa: S608
    q = q.with_columns(
        pl.when(pl.col("units_shipped") >= pl.col("units_ordered")).then(pl.lit(SHIPPED))
        .when(pl.col("units_shipped") > 0).then(pl.lit(PARTIALLY_SHIPPED))
        .when(pl.col("validation_status") == "CANCELLED").then(pl.lit("CANCELLED"))
        .when(pl.col("units_released") > 0).then(pl.lit(IN_FULFILMENT))
        .otherwise(pl.lit("AWAITING")).alias("status"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at"))
    rows = conform(q, OrderFulfilmentModel)
    old = select_keys(con, "core.order_fulfilment", ids)
    changed = rows.join(old, on=rows.columns[:-1], how="anti")  # every column but updated_at
    prog = q.filter(pl.col("status").is_in([IN_FULFILMENT, PARTIALLY_SHIPPED, SHIPPED])
                    & (pl.col("status") != pl.col("previous").fill_null("-")))
    ev_parts = [prog.select(
        "order_id", "version", pl.coalesce(pl.col("previous").replace({"AWAITING": None}), pl.lit(APPROVED))
        .alias("from_status"), pl.col("status").alias("to_status"),
        pl.format("fulfilment: {} of {} unit(s) released, {} picked, {} shipped", pl.col("units_released"),
                  pl.col("units_ordered"), pl.col("units_picked"), pl.col("units_shipped")).alias("reason"),
        pl.lit("system").alias("actor"), pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("at"),
        details(released=pl.col("units_released"), picked=pl.col("units_picked"), short=pl.col("units_short"),
                shipped=pl.col("units_shipped")).alias("details"))]
    for e in extra_events:
        if e.height:
            cur = q.select("order_id", "version", pl.col("status").alias("_s"), "previous")
            e = e.join(cur, on="order_id", how="inner").with_columns(
                pl.when(pl.col("previous").is_in([IN_FULFILMENT, PARTIALLY_SHIPPED])).then(pl.col("previous"))
                .otherwise(pl.lit(IN_FULFILMENT)).alias("from_status"))
            ev_parts.append(e.select("order_id", "version", "from_status", pl.col("from_status").alias("to_status"),
                                     "reason", pl.lit("system").alias("actor"),
                                     pl.col("at").cast(pl.Datetime("us", "UTC")), "details"))
    ev = order_events(pl.concat([p.cast({"version": pl.Int64}) for p in ev_parts], how="vertical_relaxed"))
    with transaction(con):
        con.execute("UPDATE core.pick_waves SET status = 'DONE' WHERE status = 'OPEN' AND NOT EXISTS ("
                    "SELECT 1 FROM core.pick_tasks t WHERE t.wave_id = pick_waves.wave_id AND t.status = 'OPEN')")
        replace_keys(con, "core.order_fulfilment", changed.select("order_id"), changed)
        if ev.height:
            known = select_keys(con, "core.order_events", ev.select("event_id"), "event_id")
            insert_frame(con, "core.order_events", ev.join(known, on="event_id", how="anti"))
    rep.events += ev.height
