"""Allocation & routing: every approved, reserved unit to the warehouse and carrier service that ships it at
the lowest total cost within the rules. Pure functions over Polars frames: frames in, frames out -- no Dagster, no
I/O, no Python row loops on hot paths (numpy / Polars vectorised). Reading and writing the warehouse belongs to
``som_pipeline.services.allocation``; the Dagster asset to ``assets/``.

- :func:`allocate` -- the entry point: ``allocate(AllocationInputs(...), now=..., config=...)`` ->
  ``AllocationResult(allocations, backorders, metrics)``
- :mod:`~som_pipeline.allocation.config` -- :class:`AllocationConfig`: cost model, promise, capacity basis, solver
  limits (frozen, with defaults)
- :mod:`~som_pipeline.allocation.options` -- demand rows, options, dates and exact per-unit costs
- :mod:`~som_pipeline.allocation.plan` -- :func:`allocate` and its steps: previous allocations kept or released,
  the residual problem, then the output rows (costs in cents, explanations), backorders and metrics
- :mod:`~som_pipeline.allocation.solver` -- the optimiser, one module per part: problem, bookkeeping, bounds, flow,
  repairs, mip, greedy, strategy

Where a new thing goes
- a new input frame: a field of ``AllocationInputs`` (plan.py), read in ``allocate``
- a new parameter: ``AllocationConfig`` (config.py), with its default and check
- a new cost component: options.py (per-unit cost in ``_service_costs``), then its cents column in plan.py
  (``_costs``); a new option rule (eligibility, dates, disruptions): options.py
- a new output column, explanation or backorder reason: plan.py (``_rows`` / ``_explain``, ``_backorders``)
- a new resource or rule of the model: its residual array in plan.py (``_residual_problem``) and
  solver/problem.py (``Problem``), the exact model in solver/mip.py, the check in solver/repairs.py
  (``violations``, ``enforce``) and, if a flow cannot express it, a repair pass
- a new repair pass: solver/repairs.py, run in order by solver/strategy.py (``_repair``)
- a new solver path: a module of solver/, chosen in solver/strategy.py (``solve``)

Design, formulation and what is exact: ``docs/allocation.md``.
"""

from som_pipeline.allocation.config import SCALE, AllocationConfig
from som_pipeline.allocation.plan import AllocationInputs, AllocationResult, allocate

__all__ = ["SCALE", "AllocationConfig", "AllocationInputs", "AllocationResult", "allocate"]
