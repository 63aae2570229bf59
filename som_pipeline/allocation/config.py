"""Allocation configuration: one frozen dataclass with documented defaults.

Money values are :class:`~decimal.Decimal` (exact); the optimiser works in integers of 1/10,000 of a currency
unit (:data:`SCALE`), so every money parameter must have at most 4 decimal places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

SCALE = 10_000  # money in the optimiser: integers of 1/10,000 of a unit


def _frozen(d: dict) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class AllocationConfig:
    """Parameters of the allocation model (see ``docs/allocation.md``)."""

    # --- cost model ---------------------------------------------------------------------------
    #: Penalty per unit and calendar day the expected delivery is after the promised date.
    lateness_penalty_per_unit_day: Decimal = Decimal("1.50")
    #: Penalty per extra shipment when an order ships from more than one warehouse (covers the extra
    #: parcel's handling and the customer's inconvenience). Charged once per extra warehouse.
    split_penalty_per_shipment: Decimal = Decimal("8.00")
    #: Promise when a line has no requested date: order_date + these business days, by the service class of
    #: the order's requested ship_method (classified by ``service_class_patterns``).
    promise_business_days: Mapping[str, int] = field(
        default_factory=lambda: _frozen({"GROUND": 5, "EXPRESS": 2, "AIR": 1}))
    #: Case-insensitive regular expressions tried in order on ``orders.ship_method``; no match -> GROUND.
    service_class_patterns: tuple[tuple[str, str], ...] = (
        ("AIR", r"(^|[^a-z])air|overnight|next[ _-]?day"),
        ("EXPRESS", r"express|expedited|priority|(^|[^0-9])2[ _-]?day|(2nd|second)[ _-]?day"),
    )
    #: A carrier service whose historical on-time rate is below this is planned ``late_carrier_extra_days``
    #: business days slower than its published transit time.
    on_time_threshold: float = 0.92
    late_carrier_extra_days: int = 1
    #: Business days (Mon..Sun) for ship dates, transit and promises. Holidays are not modelled.
    week_mask: tuple[bool, ...] = (True, True, True, True, True, False, False)

    # --- constraints --------------------------------------------------------------------------
    #: ``lines`` (what ``ref.warehouses.daily_capacity_lines`` says): a warehouse picks at most that many
    #: (order line, warehouse) rows a day, whatever their units -- a binary rule: exact in the MIP, relaxed in
    #: the flow and repaired (rows shed by regret). ``units``: at most that many units a day -- a flow
    #: constraint, exact in both paths, but only meaningful with a units capacity in the column.
    capacity_basis: Literal["units", "lines"] = "lines"
    #: Parcels a carrier service has already committed today (lowers ``daily_capacity_parcels``). Keys:
    #: ``CARRIER``, ``CARRIER:SERVICE``, ``CARRIER:SERVICE@WAREHOUSE`` (the most specific key wins). An
    #: input frame ``AllocationInputs.carrier_backlog`` adds to these.
    carrier_backlog_parcels: Mapping[str, int] = field(default_factory=lambda: _frozen({}))

    # --- solver -------------------------------------------------------------------------------
    #: ``optimal`` (the default: min-cost flow / MIP, see docs/allocation.md) or ``greedy`` (cheapest option
    #: first: the benchmark's baseline, never needed in production).
    method: Literal["optimal", "greedy"] = "optimal"
    #: Instances with at most this many demand rows (order line x SKU) are solved by the exact MIP
    #: directly; larger ones by the min-cost flow (exact for the linear part) and the documented repair
    #: passes for the rules a flow cannot express (docs/allocation.md).
    mip_max_rows: int = 400
    #: Work limit of the MIP, in CP-SAT's deterministic seconds (about wall seconds here; deterministic, so a
    #: re-run gives the same plan). Without a proof by then, the better of its best plan and the flow path's
    #: plan is used (rows say ``mip_time_limit`` or the flow path's labels).
    mip_time_limit_s: float = 20.0
    #: CP-SAT workers: 1 keeps every run reproducible (same input -> same plan).
    mip_workers: int = 1
    #: Flow path: also solve the plain relaxation (one more min-cost flow) for a lower bound, the gap and the
    #: ``proven_optimal`` certificate; when the relaxation breaks no rule its plan is returned, proven optimal.
    certify: bool = False
    #: Flow path: a split order may be re-planned onto any set of at most this many warehouses (each line whole
    #: from one of them) when that is cheaper than its split; more = better plans, more work.
    consolidate_max_warehouses: int = 2
    #: Flow path: passes of "relocation" (every order may move to a cheaper plan on what is left), after repairs.
    relocation_passes: int = 1
    #: The MIP considers this many cheapest carrier services per (line, warehouse) (more only matter when
    #: carrier capacities bind).
    mip_services_per_option: int = 3

    def __post_init__(self) -> None:
        for name in ("lateness_penalty_per_unit_day", "split_penalty_per_shipment"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or v < 0 or (v * SCALE) != (v * SCALE).to_integral_value():
                raise ValueError(f"AllocationConfig.{name} must be a Decimal >= 0 with at most 4 decimals")
        if self.capacity_basis not in ("units", "lines"):
            raise ValueError("AllocationConfig.capacity_basis must be 'units' or 'lines'")
        if "GROUND" not in self.promise_business_days:
            raise ValueError("AllocationConfig.promise_business_days needs a GROUND entry (the default class)")
        if len(self.week_mask) != 7 or not any(self.week_mask):
            raise ValueError("AllocationConfig.week_mask needs 7 booleans, at least one True")
        if self.method not in ("optimal", "greedy"):
            raise ValueError("AllocationConfig.method must be 'optimal' or 'greedy'")
        if self.mip_max_rows < 0 or self.mip_services_per_option < 1:
            raise ValueError("AllocationConfig.mip_max_rows >= 0 and mip_services_per_option >= 1")

    def e4(self, v: Decimal) -> int:
        """A money value in optimiser integers (1/10,000)."""
        return int(v * SCALE)
