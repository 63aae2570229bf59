"""Allocation & routing: every approved, reserved unit to the warehouse and carrier service that ships it at
the lowest total cost within the rules. Pure functions over Polars frames (no Dagster, no I/O).

- :func:`allocate` -- the entry point: ``AllocationResult(allocations, backorders, metrics)``
- :class:`AllocationConfig` -- cost model, promise, capacity basis, solver limits (frozen, with defaults)
- :mod:`~som_pipeline.allocation.options` -- demand rows, options, dates and exact per-unit costs
- :mod:`~som_pipeline.allocation.solver` -- the model; min-cost flow, MIP (CP-SAT) and the greedy baseline

Design, formulation and what is exact: ``docs/allocation.md``.
"""

from som_pipeline.allocation.config import SCALE, AllocationConfig
from som_pipeline.allocation.plan import AllocationInputs, AllocationResult, allocate

__all__ = ["SCALE", "AllocationConfig", "AllocationInputs", "AllocationResult", "allocate"]
