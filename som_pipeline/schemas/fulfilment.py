"""Fulfilment: the stock ledger (the one truth about stock), pick waves and tasks, scans, receipts, packages,
shipments and what was sent to the channels; the warehouse layout and cartons it works with (``ref.*``).

Rules of the ledger (``docs/stock_ledger.md``): movements are appended, never updated or deleted; on-hand,
reserved, picked and available are sums of movements (``som_pipeline.fulfilment.ledger.EFFECTS``), so they
cannot drift from the history.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas.base import Money, TsUTC, _f, _Strict

MOVEMENT_KINDS = ["opening", "receipt", "reserve", "release", "pick", "putaway", "ship", "return_receipt", "scrap",
                  "adjustment", "transfer_out", "transfer_in"]
TASK_STATUSES = ["OPEN", "PICKED", "SHORT", "CANCELLED"]
SCAN_OUTCOMES = ["CONFIRMED", "OVER_PICK", "SHORT_PICK", "WRONG_ITEM"]  # accepted; the rest are quarantined
FULFILMENT_STATUSES = ["AWAITING", "IN_FULFILMENT", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED"]


# ------------------------------------------------------------------------------------------------
# reference: warehouse layout and cartons
# ------------------------------------------------------------------------------------------------
class BinLocationModel(_Strict):
    """``ref.bin_locations``: the pick face of each SKU in a warehouse (one per warehouse x SKU). Pick tasks are
    walked in zone, aisle, serpentine bay order (odd aisles up, even aisles down), then level."""

    warehouse_id: str = _f("ref.warehouses.warehouse_id")
    sku: str = _f("ref.products.sku")
    bin_id: str = _f("Bin label, e.g. A-03-12-2.")
    zone: str = _f("Pick zone (a picker's area).")
    aisle: int = _f("Aisle number.", ge=0)
    bay: int = _f("Bay (position along the aisle).", ge=0)
    level: int = _f("Shelf level (0 = floor).", ge=0)

    class Config:
        strict = True
        unique = ["warehouse_id", "sku"]


class CartonModel(_Strict):
    """``ref.cartons``: the boxes packers choose from."""

    carton_id: str = _f("Carton id.", unique=True)
    inner_length_cm: float = _f("Inner length, cm.", gt=0)
    inner_width_cm: float = _f("Inner width, cm.", gt=0)
    inner_height_cm: float = _f("Inner height, cm.", gt=0)
    max_weight_kg: float = _f("Largest gross weight the carton may carry, kg.", gt=0)
    tare_kg: float = _f("Weight of the empty carton, kg.", ge=0)
    cost: Money = _f("Cost of one carton.", ge=0)
    active: bool = _f("In use.")


# ------------------------------------------------------------------------------------------------
# the stock ledger
# ------------------------------------------------------------------------------------------------
class StockMovementModel(_Strict):
    """``core.stock_ledger``: append-only stock movements; every balance is a sum of them (docs/stock_ledger.md)."""

    movement_id: str = _f("sha256 of kind, warehouse, SKU, source document and line: a re-posting is a no-op.",
                          unique=True)
    seq: pl.Int64 = _f("Posting order: 1, 2, ... (movements of one instant keep the order they were posted in).",
                       unique=True, ge=1)
    warehouse_id: str = _f("Warehouse.")
    sku: str = _f("SKU.")
    qty_delta: pl.Int64 = _f("Signed units; which balance it moves depends on the kind (ledger.EFFECTS).")
    kind: str = _f("opening | receipt | reserve | release | pick | putaway | ship | return_receipt | scrap | "
                   "adjustment | transfer_out | transfer_in.", isin=MOVEMENT_KINDS)
    reason: str = _f("Why, in words (cycle count difference, short pick, wave release...).")
    source_doc: str = _f("The document behind it: snapshot, receipt, task, shipment id.")
    source_line: str = _f("Line or scan within the document.", nullable=True)
    occurred_at: TsUTC = _f("When it happened in the warehouse.")
    recorded_at: TsUTC = _f("When the pipeline posted it.")
    run_id: str = _f("The run that posted it.")


# ------------------------------------------------------------------------------------------------
# waves, tasks, scans, receipts
# ------------------------------------------------------------------------------------------------
class PickWaveModel(_Strict):
    """``core.pick_waves``: work released to a warehouse before its cutoff."""

    wave_id: str = _f("Warehouse + ship date + release number.", unique=True)
    warehouse_id: str = _f("Warehouse.")
    ship_date: pl.Date = _f("The warehouse-local date the wave ships.")
    cutoff_at: TsUTC = _f("The warehouse's cutoff that day (its local cutoff_time in its time zone).")
    released_at: TsUTC = _f("When released.")
    tasks: pl.Int64 = _f("Pick tasks in the wave.", ge=0)
    units: pl.Int64 = _f("Units to pick.", ge=0)
    status: str = _f("OPEN (tasks to do) | DONE (every task closed).", isin=["OPEN", "DONE"])


class PickTaskModel(_Strict):
    """``core.pick_tasks``: one task per allocated line x bin, in walk order within its wave."""

    task_id: str = _f("Task id (T- + hash of wave, order, line, SKU).", unique=True)
    wave_id: str = _f("core.pick_waves.wave_id")
    warehouse_id: str = _f("Warehouse.")
    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.", ge=1)
    sku: str = _f("SKU to pick.")
    bin_id: str = _f("Bin (ref.bin_locations; UNSLOTTED when the SKU has no pick face).")
    walk_seq: pl.Int64 = _f("Position on the wave's walk path (1 = first).", ge=1)
    quantity: pl.Int64 = _f("Units to pick.", gt=0)
    picked_qty: pl.Int64 = _f("Units confirmed by scans.", ge=0)
    status: str = _f("OPEN | PICKED | SHORT (closed short) | CANCELLED (order cancelled before picking).",
                     isin=TASK_STATUSES)
    carrier_id: str = _f("Carrier of the allocation.")
    service: str = _f("Carrier service.")
    released_at: TsUTC = _f("When released.")
    closed_at: TsUTC = _f("When it was closed (picked, short or cancelled).", nullable=True)
    shipment_id: str = _f("The shipment its picked units left in (null: not shipped yet).", nullable=True)


class PickScanModel(_Strict):
    """``core.pick_scans``: accepted scanner events and what each did (the rest are in ``ops.quarantine``)."""

    scan_id: str = _f("Scanner's event id.", unique=True)
    task_id: str = _f("core.pick_tasks.task_id")
    warehouse_id: str = _f("Warehouse.")
    barcode: str = _f("Barcode as scanned.")
    sku_scanned: str = _f("SKU the barcode stands for (null: unknown to the catalog).", nullable=True)
    quantity: pl.Int64 = _f("Units the picker entered.", ge=0)
    action: str = _f("pick | short.", isin=["pick", "short"])
    user: str = _f("Picker.")
    station: str = _f("Scanner / station.", nullable=True)
    scanned_at: TsUTC = _f("When scanned.")
    outcome: str = _f("CONFIRMED | OVER_PICK | SHORT_PICK | WRONG_ITEM.", isin=SCAN_OUTCOMES)
    confirmed_qty: pl.Int64 = _f("Units it confirmed on the task.", ge=0)
    over_qty: pl.Int64 = _f("Units above the task (back to the bin).", ge=0)
    short_qty: pl.Int64 = _f("Units the task was closed short by.", ge=0)
    source_file: str = _f("Landing file.")
    location: str = _f("Line / record in the file.")


class ReceiptModel(_Strict):
    """``core.receipts``: purchase-order and transfer receipts posted to the ledger."""

    receipt_id: str = _f("Receipt document id.")
    line_no: pl.Int64 = _f("Line.", ge=1)
    kind: str = _f("po | transfer.", isin=["po", "transfer"])
    reference: str = _f("PO number or transfer id.")
    warehouse_id: str = _f("Receiving warehouse.")
    from_warehouse_id: str = _f("Transfers: the sending warehouse.", nullable=True)
    sku: str = _f("SKU.")
    quantity: pl.Int64 = _f("Units received.", gt=0)
    received_at: TsUTC = _f("When received.")
    source_file: str = _f("Landing file.")

    class Config:
        strict = True
        unique = ["receipt_id", "line_no"]


# ------------------------------------------------------------------------------------------------
# packages and shipments
# ------------------------------------------------------------------------------------------------
class ShipmentModel(_Strict):
    """``core.shipments``: what left a warehouse for one order with one carrier service."""

    shipment_id: str = _f("S- + hash of order, warehouse, carrier, service and the tasks shipped.", unique=True)
    order_id: str = _f("Order.")
    channel: str = _f("Channel the confirmation goes back to.")
    warehouse_id: str = _f("Warehouse.")
    carrier_id: str = _f("Carrier.")
    service: str = _f("Carrier service.")
    ship_date: pl.Date = _f("Warehouse-local ship date.")
    shipped_at: TsUTC = _f("When it left (the last pick of its tasks).")
    packages: pl.Int64 = _f("Packages.", gt=0)
    units: pl.Int64 = _f("Units shipped.", gt=0)
    gross_weight_kg: float = _f("Total gross weight.", ge=0)
    rated_cost: Money = _f("Carrier cost: the rate table at the billable (dimensional) weight of each package.",
                           nullable=True)
    currency: str = _f("Currency of rated_cost.", nullable=True)
    partial: bool = _f("Not every open unit of the order shipped in it (a partial shipment).")


class ShipmentLineModel(_Strict):
    """``core.shipment_lines``: units of each order line in a shipment."""

    shipment_id: str = _f("core.shipments.shipment_id")
    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.", ge=1)
    sku: str = _f("SKU shipped.")
    warehouse_id: str = _f("Warehouse.")
    quantity: pl.Int64 = _f("Units.", gt=0)

    class Config:
        strict = True
        unique = ["shipment_id", "line_no", "sku"]


class PackageModel(_Strict):
    """``core.packages``: cartons of a shipment, each with its label."""

    package_id: str = _f("shipment_id + '-' + package number.", unique=True)
    shipment_id: str = _f("core.shipments.shipment_id")
    package_no: pl.Int64 = _f("1..n within the shipment.", ge=1)
    carton_id: str = _f("ref.cartons.carton_id, or OWN_BOX (an item shipped in its own packaging).")
    length_cm: float = _f("Length.", gt=0)
    width_cm: float = _f("Width.", gt=0)
    height_cm: float = _f("Height.", gt=0)
    gross_weight_kg: float = _f("Items + tare.", gt=0)
    billable_weight_kg: float = _f("max(actual, dimensional weight).", gt=0)
    utilisation: float = _f("Items' volume / carton volume.", ge=0)
    hazmat: bool = _f("Holds hazardous material.")
    fragile: bool = _f("Holds fragile items (padded).")
    tracking_number: str = _f("Carrier tracking number (valid check digit).", unique=True)
    tracking_url: str = _f("Carrier tracking page.", nullable=True)
    sscc: str = _f("SSCC-18 of the carton (EDI customers).", nullable=True)
    rated_cost: Money = _f("Rate at the billable weight (null: no rate for the lane).", nullable=True)


class PackageContentModel(_Strict):
    """``core.package_contents``: units of each order line in a package."""

    package_id: str = _f("core.packages.package_id")
    shipment_id: str = _f("Shipment.")
    line_no: pl.Int64 = _f("Order line (core.shipment_lines).", ge=1)
    sku: str = _f("SKU.")
    quantity: pl.Int64 = _f("Units.", gt=0)

    class Config:
        strict = True
        unique = ["package_id", "line_no", "sku"]


class OrderFulfilmentModel(_Strict):
    """``core.order_fulfilment``: where each approved order is in the warehouse (quantities and a status).
    ``core.order_status`` keeps the validation status; this is the fulfilment status beside it."""

    order_id: str = _f("Order.", unique=True)
    status: str = _f("AWAITING (nothing released) | IN_FULFILMENT | PARTIALLY_SHIPPED | SHIPPED | CANCELLED.",
                     isin=FULFILMENT_STATUSES)
    units_ordered: pl.Int64 = _f("Catalog units ordered.", ge=0)
    units_released: pl.Int64 = _f("Units on pick tasks (open tasks: to pick; closed: picked).", ge=0)
    units_picked: pl.Int64 = _f("Units picked.", ge=0)
    units_short: pl.Int64 = _f("Units closed short (re-allocated or backordered).", ge=0)
    units_shipped: pl.Int64 = _f("Units shipped.", ge=0)
    updated_at: TsUTC = _f("When the row last changed.")


class OutboundDocumentModel(_Strict):
    """``ops.outbound_documents``: every document sent to a channel or carrier, written once."""

    document_id: str = _f("sha256 of kind and key: a rerun finds it and writes nothing.", unique=True)
    kind: str = _f("x12_856 | shopify_fulfillment | amazon_confirm_shipment | portal_shipment | manifest | "
                   "invoice_pdf | x12_810 | credit_note_pdf.")
    channel: str = _f("Channel or carrier it goes to.")
    key: str = _f("What it confirms: shipment id, or carrier|warehouse|date for a manifest.")
    path: str = _f("File under $SOM_HOME/outbound/ (portal: the portal table).")
    sha256: str = _f("Content hash of what was written.")
    written_at: TsUTC = _f("When.")
