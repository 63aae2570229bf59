"""The optimiser: the model, its exact MIP, the min-cost-flow relaxation that solves it at scale with a certified
bound, the repairs for the rules a flow cannot express, and the greedy baseline. See ``docs/allocation.md``.

The model (costs are integers of 1/10,000)::

    min  sum_i unit_i x_i  +  P * extra_shipments  +  M * units_not_allocated
    s.t. per demand row d:        sum_{i of d} x_i + u_d = q_d               (integers >= 0)
         per (warehouse, SKU):    sum x_i <= stock left
         per warehouse:           sum x_i <= capacity left (units basis) | rows <= capacity left (lines basis)
         per (warehouse, service): parcels of its rows <= parcels left
         per (line, warehouse):   at most one carrier service (one allocation row)
         ship-complete order:     every unit from one warehouse, or none
    extra_shipments(o) = |warehouses of o incl. kept| - max(1, |kept warehouses of o|)

``M`` = 10 x (largest unit cost + ``P`` x (warehouses + 1)) + 1: allocating a unit beats re-routing up to ten
others, so in effect the plan allocates every unit the rules allow, then minimises cost.

Paths
- ``mip`` (instances of at most ``mip_max_rows`` demand rows): the model above in CP-SAT. Exact (proven);
  without a proof within its work limit, the better of its best plan and the flow path's plan.
- flow path (larger instances): OR-Tools ``SimpleMinCostFlow`` on demand row -> (warehouse, SKU) stock node ->
  warehouse (units capacity) -> sink, one arc per (row, warehouse) at the row's cheapest service there, plus a
  backorder arc per row; stock nodes that can never bind are bypassed (exact). The network is split exactly
  first: a component (rows and the stock nodes they reach: one SKU) whose rows all fit at their cheapest arcs is
  solved by those arcs; the contested components go to the solver in batches of whole components; the split plan
  is kept when it fits the warehouse capacities (then optimal), else the whole network is solved. Without the split penalty,
  ship-complete, carrier capacities and the lines basis this is a *relaxation*: exact for everything linear.
  The plan's flow leans each order to its home warehouse (the cheapest that holds all of it): the split penalty
  spread over the order's units is added on every other warehouse's arcs. Then repairs for the rules the flow
  cannot express, in this order: (1) carrier capacity: rows of an overloaded service move to another service of
  the same warehouse, those that would lose least first; (2) lines basis: an overloaded warehouse keeps the rows
  with the largest regret; (3) ship-complete orders not served whole from one warehouse take their cheapest
  single warehouse, displacing rows of orders that can split; (4) split orders move to their cheapest plan on at
  most ``consolidate_max_warehouses`` warehouses when it is cheaper and fits; (4b) relocation: any order whose
  plan costs more than its cheapest conceivable one may move whole to one warehouse; (5) units still unplaced
  go through a last min-cost flow on what is left, its rows through (1) again, with another round for the units
  (1) drops (lines basis: cheapest option first); (6) a final check trims
  anything that would break a rule (counted; none expected). Moves are settled in order priority and never take
  what another order holds (except (3)). With ``certify``, the plain relaxation is solved too: its optimum plus
  the split penalties every order is forced to pay (fewest warehouses whose stock covers it) is a valid lower
  bound; ``gap`` = objective - bound; when the relaxation breaks no rule its plan is returned, proven optimal.
- ``greedy``: ship-complete orders whole at their cheapest warehouse, then cheapest option first (the
  benchmark's baseline; a fallback only if the MIP fails outright).

Modules (each part of the optimiser in its own module; ``solve`` is the entry point)
- :mod:`~.problem` -- :class:`Problem` (the indexed instance), :class:`SolveReport`, shared constants and schemas
- :mod:`~.bookkeeping` -- numpy helpers over a plan: warehouses per order, extra shipments, cost, resource usage
- :mod:`~.bounds` -- lower-bound helpers for the certified relaxation
- :mod:`~.flow` -- the min-cost flow: exact component split, network solve, home-warehouse bias
- :mod:`~.repairs` -- the repair passes (1)-(4b), the rule check and the final trim (6)
- :mod:`~.mip` -- the exact CP-SAT model
- :mod:`~.greedy` -- the greedy baseline (also the lines-basis fallback of step (5))
- :mod:`~.strategy` -- :func:`solve`: which path, and the flow path's sequence of steps
"""

from som_pipeline.allocation.solver.bookkeeping import extra_shipments, group_cumsum, plan_cost, wh_bits
from som_pipeline.allocation.solver.flow import solve_flow
from som_pipeline.allocation.solver.greedy import solve_greedy
from som_pipeline.allocation.solver.mip import solve_mip
from som_pipeline.allocation.solver.problem import ASSIGN_SCHEMA, PLAN_SCHEMA, UNLIMITED, Problem, SolveReport
from som_pipeline.allocation.solver.repairs import consolidate, enforce, fit_carriers, shed_lines, violations
from som_pipeline.allocation.solver.strategy import solve

__all__ = [
    "ASSIGN_SCHEMA",
    "PLAN_SCHEMA",
    "UNLIMITED",
    "Problem",
    "SolveReport",
    "consolidate",
    "enforce",
    "extra_shipments",
    "fit_carriers",
    "group_cumsum",
    "plan_cost",
    "shed_lines",
    "solve",
    "solve_flow",
    "solve_greedy",
    "solve_mip",
    "violations",
    "wh_bits",
]
