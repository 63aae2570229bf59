"""Allocation & routing: where each approved line ships from, how, when and at what cost (``core.allocations``),
what cannot ship now (``core.backorders``), and the disruptions that remove or penalise options
(``ref.disruptions``, from the landing zone).
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas.base import Money, TsUTC, _f, _Strict


class AllocationModel(_Strict):
    """``core.allocations``: where each approved order line ships from, how, when, and at what cost."""

    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.", ge=1)
    sku: str = _f("SKU shipped (the reserved SKU: a substitute's for substitutions).")
    warehouse_id: str = _f("Warehouse it ships from.")
    quantity: pl.Int64 = _f("Units from this warehouse.", gt=0)
    carrier_id: str = _f("Carrier.")
    service: str = _f("Carrier service.")
    expected_ship_date: pl.Date = _f("Ship date: today if released before the warehouse's cutoff, else the next day.")
    expected_delivery_date: pl.Date = _f("Ship date + transit (adjusted by the carrier's on-time record and disruptions).")
    promised_date: pl.Date = _f("Date promised to the customer (requested date, else order date + service promise).", nullable=True)
    shipping_cost: Money = _f("Carrier cost attributed to this line (rate by zone and weight).", ge=0)
    handling_cost: Money = _f("Warehouse handling attributed to this line.", ge=0)
    lateness_penalty: Money = _f("Penalty for expected delivery after the promised date.", ge=0)
    split_penalty: Money = _f("Penalty share for an extra shipment when the order is split.", ge=0)
    total_cost: Money = _f("Sum of the cost components.", ge=0)
    solver: str = _f("How the row was decided (docs/allocation.md): mip (exact) | mip_time_limit | min_cost_flow | "
                     "min_cost_flow+repair | greedy | kept (a previous allocation left as it was).")
    explanation: str = _f("Why this warehouse, in words.")
    next_best_warehouse: str = _f("The best alternative warehouse (null: none could serve).", nullable=True)
    next_best_cost: Money = _f("Its total cost for the same units.", nullable=True)
    reason: str = _f("Why this row exists: initial | rerouted: <disruption> | ...")
    allocated_at: TsUTC = _f("When decided.")

    class Config:
        strict = True
        unique = ["order_id", "line_no", "sku", "warehouse_id"]


class BackorderModel(_Strict):
    """``core.backorders``: approved order line units that no warehouse can ship now."""

    order_id: str = _f("Order.")
    line_no: pl.Int64 = _f("Order line.", ge=1)
    sku: str = _f("SKU.")
    quantity: pl.Int64 = _f("Units waiting.", gt=0)
    reason: str = _f("Why (no stock after reservations, capacity, disruption, ship-complete waiting...).")
    since: TsUTC = _f("When first backordered.")

    class Config:
        strict = True
        unique = ["order_id", "line_no", "sku"]


class DisruptionModel(_Strict):
    """``ref.disruptions``: events that remove or penalise fulfilment options (``$SOM_HOME/landing/disruptions``)."""

    disruption_id: str = _f("Id.", unique=True)
    scope: str = _f("warehouse | region | carrier.", isin=["warehouse", "region", "carrier"])
    target: str = _f("warehouse_id, destination region/country code, or carrier_id (carrier:service allowed).")
    starts_at: TsUTC = _f("Start.")
    ends_at: TsUTC = _f("End.")
    severity: str = _f("closed (option removed) | degraded (penalised).", isin=["closed", "degraded"])
    extra_days: int = _f("Degraded: extra transit / processing days.", ge=0)
    note: str = _f("What happened.", nullable=True)
