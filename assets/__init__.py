"""The Dagster layer: thin assets over the som_pipeline core (each reads, calls one domain/service
function, writes, attaches metadata), their checks, jobs, schedules and sensors."""

from assets.capture import capture_assets
from assets.core import analyst_views, core_orders, daily_sales, reconciliation
from assets.allocation import allocation
from assets.planning import demand_forecast, replenishment_plan
from assets.reference import reference_data
from assets.validation import order_validation

all_assets = [reference_data, *capture_assets, core_orders, order_validation, allocation, demand_forecast,
              replenishment_plan, daily_sales, analyst_views, reconciliation]

__all__ = ["all_assets"]
