"""Pandera models: the one schema source (moving to one module per stage; for now all in :mod:`.base`)."""

from __future__ import annotations

import pandera.polars as pa

from som_pipeline.schemas import allocation, base, capture, orders, planning, reference, validation
from som_pipeline.schemas.allocation import AllocationModel, BackorderModel, DisruptionModel
from som_pipeline.schemas.base import (
    RECORD_KINDS,
    AmazonPendingModel,
    B2BWatermarkModel,
    EdiAckModel,
    IngestFileModel,
    IngestRedropModel,
    Money,
    QuarantineModel,
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
from som_pipeline.schemas.capture import (
    AmazonHeaderModel,
    AmazonItemsModel,
    AmazonPairModel,
    StagedLineModel,
    StagedOrderModel,
)
from som_pipeline.schemas.orders import (
    DailySalesModel,
    OrderLineModel,
    OrderLineVersionModel,
    OrderModel,
    OrderVersionModel,
    ProbableDuplicateModel,
)
from som_pipeline.schemas.planning import DemandForecastModel, ForecastAccuracyModel, ReplenishmentPlanModel
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
    ProductModel,
    PromotionModel,
    ShippingZoneModel,
    WarehouseModel,
)
from som_pipeline.schemas.validation import (
    RESERVATION_DECISIONS,
    STATUSES,
    VALIDATION_RULES,
    ManualDecisionModel,
    OrderEventModel,
    OrderHoldModel,
    OrderStatusModel,
    ReservationDecisionModel,
    ReservationModel,
    ValidationFindingModel,
    ValidationResultModel,
)

# Registry: table name -> model. DDL, checks and docs iterate TABLES, in this order.
REFERENCE_TABLES: dict[str, type[pa.DataFrameModel]] = {
    "customers": reference.CustomerModel,
    "customer_aliases": reference.CustomerAliasModel,
    "products": reference.ProductModel,
    "price_lists": reference.PriceListModel,
    "promotions": reference.PromotionModel,
    "warehouses": reference.WarehouseModel,
    "inventory": reference.InventoryModel,
    "carriers": reference.CarrierModel,
    "carrier_rates": reference.CarrierRateModel,
    "shipping_zones": reference.ShippingZoneModel,
    "open_items": reference.OpenItemModel,
}

TABLES: dict[str, type[pa.DataFrameModel]] = {
    "stage.order_headers": capture.StagedOrderModel,
    "stage.order_lines": capture.StagedLineModel,
    "stage.amazon_headers": capture.AmazonHeaderModel,
    "stage.amazon_items": capture.AmazonItemsModel,
    "stage.amazon_pairs": capture.AmazonPairModel,
    "core.orders": orders.OrderModel,
    "core.order_lines": orders.OrderLineModel,
    "core.order_versions": orders.OrderVersionModel,
    "core.order_line_versions": orders.OrderLineVersionModel,
    "core.probable_duplicates": orders.ProbableDuplicateModel,
    "core.daily_sales": orders.DailySalesModel,
    "core.validation_results": validation.ValidationResultModel,
    "core.order_holds": validation.OrderHoldModel,
    "core.order_status": validation.OrderStatusModel,
    "core.order_events": validation.OrderEventModel,
    "core.reservations": validation.ReservationModel,
    "core.manual_decisions": validation.ManualDecisionModel,
    "core.allocations": allocation.AllocationModel,
    "core.backorders": allocation.BackorderModel,
    "core.demand_forecast": planning.DemandForecastModel,
    "core.forecast_accuracy": planning.ForecastAccuracyModel,
    "core.replenishment_plan": planning.ReplenishmentPlanModel,
    "ref.disruptions": allocation.DisruptionModel,
    "ops.quarantine": base.QuarantineModel,
    "ops.ingest_files": base.IngestFileModel,
    "ops.ingest_redrops": base.IngestRedropModel,
    "ops.edi_acks": base.EdiAckModel,
    "ops.b2b_watermark": base.B2BWatermarkModel,
    "ops.amazon_pending": base.AmazonPendingModel,
    **{f"ref.{name}": model for name, model in REFERENCE_TABLES.items()},
}

__all__ = [
    "Money", "UnitPrice", "Rate", "TsUTC", "TIERS", "PROMO_KINDS", "SHIP_MODES", "RECORD_KINDS",
    "StagedOrderModel", "OrderModel", "OrderVersionModel", "StagedLineModel", "OrderLineModel",
    "OrderLineVersionModel", "ProbableDuplicateModel", "DailySalesModel", "STATUSES", "VALIDATION_RULES",
    "RESERVATION_DECISIONS", "ValidationFindingModel", "ValidationResultModel", "OrderHoldModel",
    "OrderStatusModel", "OrderEventModel", "ReservationDecisionModel", "ReservationModel",
    "ManualDecisionModel", "AllocationModel", "BackorderModel", "DisruptionModel", "DemandForecastModel",
    "ForecastAccuracyModel", "ReplenishmentPlanModel", "QuarantineModel", "IngestFileModel",
    "IngestRedropModel", "EdiAckModel", "B2BWatermarkModel", "AmazonHeaderModel", "AmazonItemsModel",
    "AmazonPairModel", "AmazonPendingModel", "CustomerModel", "CustomerAliasModel", "ProductModel",
    "PriceListModel", "PromotionModel", "WarehouseModel", "InventoryModel", "CarrierModel",
    "CarrierRateModel", "ShippingZoneModel", "OpenItemModel", "REFERENCE_TABLES", "TABLES",
    "polars_schema", "empty", "from_rows", "conform", "duckdb_type", "ddl", "add_column_sql", "validate",
]
