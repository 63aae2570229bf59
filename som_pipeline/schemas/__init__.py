"""Pandera models: the one schema source.

Every warehouse table is declared once, as a Pandera model in its stage's module, and registered in
:data:`TABLES`. From the models we derive
- the DuckDB DDL (:func:`ddl`; :func:`add_column_sql` for columns a release adds), so the tables are created
  from them;
- the blocking asset checks (they call ``Model.validate``);
- reference-data loading (files in ``$SOM_HOME/reference`` are typed and checked by the models of
  :data:`REFERENCE_TABLES`);
- ``docs/data_dictionary.md`` (:mod:`som_pipeline.datadict`, tables in :data:`TABLES` order; a test fails
  when it is stale).

What belongs here: table models and their allowed values (``TIERS``, ``STATUSES``...), models of the frames
stage functions hand each other (``ValidationFindingModel``, ``ReservationDecisionModel``), and the helpers
that derive from models. No pipeline logic, no I/O, no Dagster.

One module per stage, each building on ``base``:

- ``base``: dtypes (``Money``, ``UnitPrice``, ``Rate``, ``TsUTC``), ``_f`` (a documented field), ``_Strict``
  (every model's base); ``ddl``, ``add_column_sql``, ``conform``, ``from_rows``, ``empty``, ``validate``...
- ``capture``: ``stage.*``, orders as observed, Amazon header and items halves waiting to pair
- ``orders``: ``core.orders`` and lines, their versions, probable duplicates, daily sales
- ``validation``: results, holds, status and its events, reservations, manual decisions
- ``allocation``: allocations, backorders, ``ref.disruptions``
- ``fulfilment``: the stock ledger, waves, tasks, scans, receipts, packages, shipments, ``ref.bin_locations``,
  ``ref.cartons``, outbound documents
- ``tracking``: carrier events, shipment status, transit observations, ETA accuracy, exceptions, notifications
- ``planning``: demand forecast, forecast accuracy, replenishment plan, ``state.daily_demand``
- ``ops``: quarantine, ingest ledger and re-drops, EDI acks, portal watermark, Amazon pending
- ``reference``: ``ref.*`` master data (:data:`REFERENCE_TABLES`)

A new table: a model in the stage's module, one entry in TABLES; DDL, the asset check and
docs/data_dictionary.md derive from it; run ``som docs``. Import the model below and list it in ``__all__``:
callers import every model from ``som_pipeline.schemas``.
A new stage (fulfilment, tracking, billing, returns, closure): a new module, one import line below, its
tables in TABLES.

Conventions: every column is *required* (present); ``nullable=True`` says a value may be missing.
Money columns are exact decimals (see :mod:`som_pipeline.money`).
"""

from __future__ import annotations

import pandera.polars as pa

from som_pipeline.schemas.allocation import AllocationModel, BackorderModel, DisruptionModel
from som_pipeline.schemas.base import (
    Money,
    Rate,
    TsUTC,
    UnitPrice,
    add_column_sql,
    conform,
    ddl,
    duckdb_type,
    empty,
    from_rows,
    polars_schema,
    validate,
)
from som_pipeline.schemas.billing import (
    AROpenItemModel,
    BankLineModel,
    BankStatementModel,
    BillingPolicyModel,
    CreditNoteLineModel,
    CreditNoteModel,
    CustomerBankAccountModel,
    CustomerCreditModel,
    DocumentNumberModel,
    InvoiceLineModel,
    InvoiceModel,
    LegalEntityModel,
    PaymentAllocationModel,
    PaymentModel,
    PaymentSuspenseModel,
    TaxRateModel,
    WriteOffModel,
)
from som_pipeline.schemas.capture import (
    AmazonHeaderModel,
    AmazonItemsModel,
    AmazonPairModel,
    StagedLineModel,
    StagedOrderModel,
)
from som_pipeline.schemas.fulfilment import (
    FULFILMENT_STATUSES,
    MOVEMENT_KINDS,
    SCAN_OUTCOMES,
    TASK_STATUSES,
    BinLocationModel,
    CartonModel,
    OrderFulfilmentModel,
    OutboundDocumentModel,
    PackageContentModel,
    PackageModel,
    PickScanModel,
    PickTaskModel,
    PickWaveModel,
    ReceiptModel,
    ShipmentLineModel,
    ShipmentModel,
    StockMovementModel,
)
from som_pipeline.schemas.ops import (
    RECORD_KINDS,
    AmazonPendingModel,
    B2BWatermarkModel,
    EdiAckModel,
    IngestFileModel,
    IngestRedropModel,
    LandingWaitingModel,
    PendingPartitionModel,
    QuarantineModel,
    WatermarkModel,
)
from som_pipeline.schemas.orders import (
    DailySalesModel,
    OrderLineModel,
    OrderLineVersionModel,
    OrderModel,
    OrderVersionModel,
    ProbableDuplicateModel,
)
from som_pipeline.schemas.planning import (
    DailyDemandModel,
    DemandForecastModel,
    ForecastAccuracyModel,
    ForecastFitModel,
    ReplenishmentPlanModel,
)
from som_pipeline.schemas.reference import (
    PROMO_KINDS,
    SHIP_MODES,
    TIERS,
    CarrierModel,
    CarrierRateModel,
    CustomerAliasModel,
    CustomerModel,
    InventoryModel,
    OpenItemModel,
    PriceListModel,
    ProductAliasModel,
    ProductModel,
    PromotionModel,
    ShippingZoneModel,
    WarehouseModel,
)
from som_pipeline.schemas.returns import (
    GRADES,
    RETURN_REASONS,
    ChargebackModel,
    OrderClosureModel,
    OrderLineClosureModel,
    ReconciliationBreakModel,
    RefundModel,
    ReturnPolicyModel,
    ReturnReceiptModel,
    ReturnRequestModel,
)
from som_pipeline.schemas.tracking import (
    EXCEPTION_SUBTYPES,
    MILESTONES,
    EtaAccuracyModel,
    NotificationModel,
    ShipmentExceptionModel,
    ShipmentStatusModel,
    TrackingEventModel,
    TrackingPendingModel,
    TransitHistoryModel,
    TransitObservationModel,
)
from som_pipeline.schemas.validation import (
    ANOMALY_LEVELS,
    RESERVATION_DECISIONS,
    STATUSES,
    VALIDATION_RULES,
    AnomalyBaselineModel,
    ManualDecisionModel,
    OrderEventModel,
    OrderHoldModel,
    OrderStatusModel,
    ReservationDecisionModel,
    ReservationModel,
    ValidationFindingModel,
    ValidationResultModel,
)

# ================================================================================================
# Registries: table name -> model. DDL, checks and docs iterate TABLES, in this order.
# ================================================================================================
# $SOM_HOME/reference/<table>.csv|.parquet -> ref.<table>
REFERENCE_TABLES: dict[str, type[pa.DataFrameModel]] = {
    "customers": CustomerModel,
    "customer_aliases": CustomerAliasModel,
    "products": ProductModel,
    "product_aliases": ProductAliasModel,
    "price_lists": PriceListModel,
    "promotions": PromotionModel,
    "warehouses": WarehouseModel,
    "inventory": InventoryModel,
    "carriers": CarrierModel,
    "carrier_rates": CarrierRateModel,
    "shipping_zones": ShippingZoneModel,
    "open_items": OpenItemModel,
    "bin_locations": BinLocationModel,
    "cartons": CartonModel,
    "transit_history": TransitHistoryModel,
    "tax_rates": TaxRateModel,
    "billing_policies": BillingPolicyModel,
    "legal_entities": LegalEntityModel,
    "customer_bank_accounts": CustomerBankAccountModel,
    "return_policies": ReturnPolicyModel,
}

TABLES: dict[str, type[pa.DataFrameModel]] = {
    # capture
    "stage.order_headers": StagedOrderModel,
    "stage.order_lines": StagedLineModel,
    "stage.amazon_headers": AmazonHeaderModel,
    "stage.amazon_items": AmazonItemsModel,
    "stage.amazon_pairs": AmazonPairModel,
    # orders
    "core.orders": OrderModel,
    "core.order_lines": OrderLineModel,
    "core.order_versions": OrderVersionModel,
    "core.order_line_versions": OrderLineVersionModel,
    "core.probable_duplicates": ProbableDuplicateModel,
    "core.daily_sales": DailySalesModel,
    # validation
    "core.validation_results": ValidationResultModel,
    "core.order_holds": OrderHoldModel,
    "core.order_status": OrderStatusModel,
    "core.order_events": OrderEventModel,
    "core.reservations": ReservationModel,
    "core.manual_decisions": ManualDecisionModel,
    "core.anomaly_baselines": AnomalyBaselineModel,
    # allocation
    "core.allocations": AllocationModel,
    "core.backorders": BackorderModel,
    # planning
    "core.demand_forecast": DemandForecastModel,
    "core.forecast_accuracy": ForecastAccuracyModel,
    "core.replenishment_plan": ReplenishmentPlanModel,
    # fulfilment
    "core.stock_ledger": StockMovementModel,
    "core.receipts": ReceiptModel,
    "core.pick_waves": PickWaveModel,
    "core.pick_tasks": PickTaskModel,
    "core.pick_scans": PickScanModel,
    "core.shipments": ShipmentModel,
    "core.shipment_lines": ShipmentLineModel,
    "core.packages": PackageModel,
    "core.package_contents": PackageContentModel,
    "core.order_fulfilment": OrderFulfilmentModel,
    # tracking
    "core.tracking_events": TrackingEventModel,
    "core.tracking_pending": TrackingPendingModel,
    "core.shipment_status": ShipmentStatusModel,
    "core.eta_accuracy": EtaAccuracyModel,
    "core.shipment_exceptions": ShipmentExceptionModel,
    # billing
    "core.invoices": InvoiceModel,
    "core.invoice_lines": InvoiceLineModel,
    "core.credit_notes": CreditNoteModel,
    "core.credit_note_lines": CreditNoteLineModel,
    "core.bank_statements": BankStatementModel,
    "core.bank_lines": BankLineModel,
    "core.payments": PaymentModel,
    "core.payment_allocations": PaymentAllocationModel,
    "core.payment_suspense": PaymentSuspenseModel,
    "core.customer_credits": CustomerCreditModel,
    "core.write_offs": WriteOffModel,
    "core.ar_open_items": AROpenItemModel,
    # returns and closure
    "core.return_requests": ReturnRequestModel,
    "core.return_receipts": ReturnReceiptModel,
    "core.refunds": RefundModel,
    "core.chargebacks": ChargebackModel,
    "core.order_closure": OrderClosureModel,
    "core.order_line_closure": OrderLineClosureModel,
    # state: derived statistics over history, updated per run for what changed
    "state.daily_demand": DailyDemandModel,
    "state.forecast_fits": ForecastFitModel,
    "state.transit_observations": TransitObservationModel,
    # allocation's input from the landing zone (placed here: the data dictionary's order)
    "ref.disruptions": DisruptionModel,
    # ops
    "ops.quarantine": QuarantineModel,
    "ops.ingest_files": IngestFileModel,
    "ops.ingest_redrops": IngestRedropModel,
    "ops.landing_waiting": LandingWaitingModel,
    "ops.edi_acks": EdiAckModel,
    "ops.b2b_watermark": B2BWatermarkModel,
    "ops.amazon_pending": AmazonPendingModel,
    "ops.watermarks": WatermarkModel,
    "ops.pending_partitions": PendingPartitionModel,
    "ops.outbound_documents": OutboundDocumentModel,
    "ops.notifications": NotificationModel,
    "ops.document_numbers": DocumentNumberModel,
    "ops.reconciliation_breaks": ReconciliationBreakModel,
    # reference
    **{f"ref.{name}": model for name, model in REFERENCE_TABLES.items()},
}

__all__ = [
    "REFERENCE_TABLES", "TABLES",
    # base
    "Money", "UnitPrice", "Rate", "TsUTC",
    "polars_schema", "empty", "from_rows", "conform", "duckdb_type", "ddl", "add_column_sql", "validate",
    # capture
    "StagedOrderModel", "StagedLineModel", "AmazonHeaderModel", "AmazonItemsModel", "AmazonPairModel",
    # orders
    "OrderModel", "OrderVersionModel", "OrderLineModel", "OrderLineVersionModel", "ProbableDuplicateModel",
    "DailySalesModel",
    # validation
    "STATUSES", "VALIDATION_RULES", "RESERVATION_DECISIONS", "ValidationFindingModel", "ValidationResultModel",
    "OrderHoldModel", "OrderStatusModel", "OrderEventModel", "ReservationDecisionModel", "ReservationModel",
    "ManualDecisionModel", "ANOMALY_LEVELS", "AnomalyBaselineModel",
    # allocation
    "AllocationModel", "BackorderModel", "DisruptionModel",
    # planning
    "DailyDemandModel", "DemandForecastModel", "ForecastAccuracyModel", "ForecastFitModel", "ReplenishmentPlanModel",
    # fulfilment
    "MOVEMENT_KINDS", "TASK_STATUSES", "SCAN_OUTCOMES", "FULFILMENT_STATUSES", "BinLocationModel", "CartonModel",
    "StockMovementModel", "ReceiptModel", "PickWaveModel", "PickTaskModel", "PickScanModel", "ShipmentModel",
    "ShipmentLineModel", "PackageModel", "PackageContentModel", "OrderFulfilmentModel", "OutboundDocumentModel",
    # tracking
    "MILESTONES", "EXCEPTION_SUBTYPES", "TrackingEventModel", "TrackingPendingModel", "ShipmentStatusModel",
    "TransitObservationModel", "TransitHistoryModel", "EtaAccuracyModel", "ShipmentExceptionModel", "NotificationModel",
    # billing
    "TaxRateModel", "BillingPolicyModel", "LegalEntityModel", "CustomerBankAccountModel", "InvoiceModel",
    "InvoiceLineModel", "CreditNoteModel", "CreditNoteLineModel", "BankStatementModel", "BankLineModel", "PaymentModel",
    "PaymentAllocationModel", "PaymentSuspenseModel", "CustomerCreditModel", "WriteOffModel", "AROpenItemModel",
    "DocumentNumberModel",
    # returns and closure
    "RETURN_REASONS", "GRADES", "ReturnPolicyModel", "ReturnRequestModel", "ReturnReceiptModel", "RefundModel",
    "ChargebackModel", "OrderClosureModel", "OrderLineClosureModel", "ReconciliationBreakModel",
    # ops
    "RECORD_KINDS", "QuarantineModel", "IngestFileModel", "IngestRedropModel", "LandingWaitingModel", "EdiAckModel",
    "B2BWatermarkModel", "AmazonPendingModel", "WatermarkModel",
    "PendingPartitionModel",
    # reference
    "TIERS", "PROMO_KINDS", "SHIP_MODES", "CustomerModel", "CustomerAliasModel", "ProductModel", "ProductAliasModel",
    "PriceListModel", "PromotionModel", "WarehouseModel", "InventoryModel", "CarrierModel",
    "CarrierRateModel", "ShippingZoneModel", "OpenItemModel",
]
