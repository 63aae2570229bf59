"""The Dagster layer: thin assets over the som_pipeline core, one module per stage (each reads, calls one
service function, writes, attaches metadata), their checks, jobs, schedules and sensors.

Specs, lineage and model checks derive from the services' ``Step`` declarations (``assets/lineage.py``,
``assets/checks.py``). **A new stage**: a module here whose asset is built with ``table_specs(STEP, …)``,
``model_check_specs(STEP.writes)``, plus its reconciliation rules; add it to ``all_assets`` below (in graph order)
and, if it reads a landing feed, to ``FEED_ASSETS`` in ``assets/automation.py``.
"""

from assets.allocation import allocation
from assets.analytics import analyst_views, reconciliation
from assets.billing import billing
from assets.capture import capture_assets
from assets.fulfilment import fulfilment, stock_ledger
from assets.orders import core_orders, daily_sales
from assets.planning import demand_forecast, replenishment_plan
from assets.reference import disruption_feed, reference_data
from assets.returns import closure, returns
from assets.tracking import tracking
from assets.validation import order_validation

all_assets = [reference_data, disruption_feed, *capture_assets, core_orders, stock_ledger, order_validation, allocation,
              fulfilment, tracking, billing, returns, closure, demand_forecast, replenishment_plan, daily_sales, analyst_views, reconciliation]

__all__ = ["all_assets"]
