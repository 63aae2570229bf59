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
  go through a last min-cost flow on what is left (lines basis: cheapest option first); (6) a final check trims
  anything that would break a rule (counted; none expected). Moves are settled in order priority and never take
  what another order holds (except (3)). With ``certify``, the plain relaxation is solved too: its optimum plus
  the split penalties every order is forced to pay (fewest warehouses whose stock covers it) is a valid lower
  bound; ``gap`` = objective - bound; when the relaxation breaks no rule its plan is returned, proven optimal.
- ``greedy``: ship-complete orders whole at their cheapest warehouse, then cheapest option first (the
  benchmark's baseline; a fallback only if the MIP fails outright).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from ortools.graph.python import min_cost_flow
from ortools.sat.python import cp_model
from scipy import sparse
from scipy.sparse import csgraph

from som_pipeline.allocation.config import AllocationConfig

UNLIMITED = 1 << 40
_FLOW_BATCH_ROWS = 1_000  # contested components are solved in batches of about this many demand rows
ASSIGN_SCHEMA = {"i": pl.Int64, "x": pl.Int64, "solver": pl.String}
PLAN_SCHEMA = {"i": pl.Int64, "x": pl.Int64}


@dataclass
class Problem:
    """Indexed instance.

    ``dem``: d, o (order priority index), q, sc. ``opts``: i, d, o, wi, r (stock resource), k (carrier
    resource), unit, parcels, rank (0 = cheapest service of the (row, warehouse)); only options whose stock
    resource has units left. ``kept``: (o, wi) pairs an order already ships from. Residual capacities are
    arrays indexed by r, wi, k.
    """

    dem: pl.DataFrame
    opts: pl.DataFrame
    stock: np.ndarray
    cap: np.ndarray
    parcels: np.ndarray
    kept: pl.DataFrame
    split_penalty: int
    basis: str
    big_m: int = 0

    def __post_init__(self) -> None:
        # per unit left unallocated: ten times the dearest way to ship one unit (split penalty included), so
        # allocating a unit beats any re-routing of up to ten others -- in effect: units first, then cost
        top = int(self.opts["unit"].max()) if self.opts.height else 0
        self.big_m = 10 * (max(1, top) + self.split_penalty * (len(self.cap) + 1)) + 1
        # numpy views for the bookkeeping: option columns by ``i``, per demand row by ``d``, per order by ``o``
        self.col = {c: self.opts[c].to_numpy() for c in self.opts.columns}
        d, o, q = (self.dem[c].to_numpy().astype(np.int64) for c in ("d", "o", "q"))
        sc = self.dem["sc"].to_numpy().astype(bool)
        highest = [int(a.max()) for a in (o, self.col.get("o", o), self.kept["o"].to_numpy()) if len(a)]
        self.n_o = 1 + max(highest, default=0)
        self.q_d = np.zeros(int(d.max()) + 1 if len(d) else 0, dtype=np.int64)
        self.q_d[d] = q
        self.units_o = np.bincount(o, weights=q, minlength=self.n_o).astype(np.int64)
        self.sc_o = np.zeros(self.n_o, dtype=bool)
        self.sc_o[o[sc]] = True
        self.kept_bits = wh_bits(self, self.kept["o"].to_numpy(), self.kept["wi"].to_numpy())
        by_d = np.argsort(d, kind="stable")
        self.dem_d, self.dem_o, self.dem_q = d[by_d], o[by_d], q[by_d]
        # options are sorted by d: the options of row d are opt_start[d]:opt_start[d + 1]
        od = self.col.get("d", np.zeros(0, dtype=np.int64))
        if len(od) and (np.diff(od) < 0).any():
            raise ValueError("Problem: options must be sorted by demand row")
        self.opt_start = np.searchsorted(od, np.arange(len(self.q_d) + 1))

    def options_of(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every option of the rows ``d``: ``(option index i, position in d it belongs to)``, by d then i."""
        n = self.opt_start[d + 1] - self.opt_start[d]
        return _ranges(self.opt_start[d], n), np.repeat(np.arange(len(d)), n)


@dataclass
class SolveReport:
    path: str = ""
    lower_bound: int | None = None
    objective: int = 0
    proven_optimal: bool = False
    relaxation_unallocated: int | None = None
    violations: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    mip_status: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Plan bookkeeping
# ------------------------------------------------------------------------------------------------
def wh_bits(p: Problem, o: np.ndarray, wi: np.ndarray) -> np.ndarray:
    """Per order (index ``o``): the set of its warehouses as a bit mask (at most 62 warehouses)."""
    bits = np.zeros(p.n_o, dtype=np.int64)
    np.bitwise_or.at(bits, o.astype(np.int64), np.left_shift(1, wi.astype(np.int64)))
    return bits


def extra_shipments(p: Problem, bits: np.ndarray) -> np.ndarray:
    """Per order with rows (``bits`` != 0): |used or kept warehouses| - max(1, |kept|); 0 for the others."""
    n_kept = np.bitwise_count(p.kept_bits).astype(np.int64)
    n_all = np.bitwise_count(bits | p.kept_bits).astype(np.int64)
    return np.where(bits != 0, n_all - np.maximum(1, n_kept), 0)


def _ix(plan: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A plan's ``(i, x)`` as arrays, rows with ``x > 0`` only."""
    i, x = plan["i"].to_numpy().astype(np.int64), plan["x"].to_numpy().astype(np.int64)
    keep = x > 0
    return (i, x) if keep.all() else (i[keep], x[keep])


def group_cumsum(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` within each key, in the given order (like ``cum_sum().over(key)``)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argsort(keys, kind="stable")
    v = values[idx].astype(np.int64)
    cs = np.cumsum(v)
    k = keys[idx]
    start = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    before = np.repeat((cs - v)[start], np.diff(np.r_[start, len(k)]))
    out = np.empty_like(cs)
    out[idx] = cs - before
    return out


def _at(plan: pl.DataFrame, p: Problem, *cols: str) -> pl.DataFrame:
    """``plan`` (with column ``i``) plus the option columns ``cols`` (``i`` is the row index of ``p.opts``)."""
    extra = p.opts.select(cols)[plan["i"].to_numpy()] if plan.height else p.opts.select(cols).clear()
    return pl.concat([plan, extra], how="horizontal")


def plan_cost(p: Problem, assign: pl.DataFrame) -> dict[str, int]:
    """``{'cost', 'allocated', 'unallocated', 'extra_shipments', 'objective'}`` of a plan (i, x)."""
    i, x = _ix(assign)
    linear = int((x * p.col["unit"][i]).sum())
    allocated = int(x.sum())
    total = int(p.units_o.sum())
    extra = int(extra_shipments(p, wh_bits(p, p.col["o"][i], p.col["wi"][i])).sum())
    cost = linear + p.split_penalty * extra
    return {"cost": cost, "allocated": allocated, "unallocated": total - allocated, "extra_shipments": extra,
            "objective": cost + p.big_m * (total - allocated)}


def _use(p: Problem, plan: pl.DataFrame, stock: np.ndarray, cap: np.ndarray, parcels: np.ndarray,
         sign: int = -1) -> None:
    """Subtract (sign -1) or add back (+1) a plan's usage to residual arrays, in place."""
    u = plan.filter(pl.col("x") > 0).pipe(_at, p, "r", "wi", "k", "parcels")
    if u.height == 0:
        return
    np.add.at(stock, u["r"].to_numpy(), sign * u["x"].to_numpy())
    np.add.at(cap, u["wi"].to_numpy(),
              sign * (u["x"].to_numpy() if p.basis == "units" else np.ones(u.height, dtype=np.int64)))
    np.add.at(parcels, u["k"].to_numpy(), sign * u["parcels"].to_numpy())


# ------------------------------------------------------------------------------------------------
# Lower-bound helpers
# ------------------------------------------------------------------------------------------------
def _cover(p: Problem) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per order, ignoring competition between orders: ``kmin`` = fewest warehouses whose stock covers each of
    its rows (1 when unknown), and the ship-complete orders no single warehouse can serve whole."""
    n_w = len(p.cap)
    best = p.opts.filter(pl.col("rank") == 0).select("d", "o", "wi", "r")
    dem = p.dem.sort("d")
    d_pos = np.full(int(dem["d"].max()) + 1 if dem.height else 0, -1, dtype=np.int64)
    d_pos[dem["d"].to_numpy()] = np.arange(dem.height)
    avail = np.zeros((dem.height, max(1, n_w)), dtype=np.int64)
    if best.height:
        avail[d_pos[best["d"].to_numpy()], best["wi"].to_numpy()] = p.stock[best["r"].to_numpy()]
    q = dem["q"].to_numpy()
    o = dem["o"].to_numpy()
    starts = np.flatnonzero(np.r_[True, o[1:] != o[:-1]]) if len(o) else np.zeros(0, dtype=np.int64)
    order_ids = o[starts]
    # ship-complete: a single warehouse holding every row's units
    single = avail >= q[:, None]
    if p.basis == "units":
        units = np.add.reduceat(q, starts) if len(starts) else np.zeros(0, dtype=np.int64)
    all_w = np.logical_and.reduceat(single, starts, axis=0) if len(starts) else np.zeros((0, n_w), bool)
    if p.basis == "units" and len(starts):
        all_w &= units[:, None] <= p.cap[None, :]
    sc_orders = set(dem.filter(pl.col("sc"))["o"].to_list())
    impossible = [int(oid) for oid, ok in zip(order_ids, all_w.any(axis=1), strict=True) if oid in sc_orders and not ok] \
        if sc_orders else []
    kmin = np.ones(len(order_ids), dtype=np.int64)
    if 1 < n_w <= 6 and dem.height:
        masks = np.arange(1, 1 << n_w)
        bits = ((masks[None, :] >> np.arange(n_w)[:, None]) & 1).astype(np.int64)  # n_w x masks
        size = bits.sum(axis=0)
        covered = (avail @ bits) >= q[:, None]  # rows x masks
        per_order = np.logical_and.reduceat(covered, starts, axis=0)
        sizes = np.where(per_order, size[None, :], n_w + 1).min(axis=1)
        kmin = np.where(sizes <= n_w, sizes, 1)
    k = pl.DataFrame({"o": order_ids.astype(np.int64), "kmin": kmin.astype(np.int64)})
    k = k.join(dem.filter(pl.col("sc")).select("o").unique(), on="o", how="anti")  # ship-complete: single anyway
    return k, pl.DataFrame({"o": impossible}, schema={"o": pl.Int64})


# ------------------------------------------------------------------------------------------------
# Min-cost flow
# ------------------------------------------------------------------------------------------------
def solve_flow(p: Problem, dem: pl.DataFrame, opts: pl.DataFrame, stock: np.ndarray, cap: np.ndarray,
               backorder_cost: np.ndarray | None = None) -> tuple[pl.DataFrame, int]:
    """Min-cost flow of ``dem`` over the given (row, warehouse) arcs (one per pair) on residual stock and a units
    capacity per warehouse (``cap``). Returns ``(plan (i, x), optimal cost)``.

    Exact decomposition first: rows reach only stock nodes of their own resources, so the network falls apart into
    components (one per SKU in practice). A component where every row's cheapest arc fits the stock is solved by
    those arcs; only the contested components go to the solver. Warehouse capacities couple every component: the
    decomposed plan is kept when it fits them (it is then optimal without them, hence with them), otherwise the
    whole network is solved at once."""
    n_d, n_r = dem.height, len(stock)
    if n_d == 0:
        return pl.DataFrame(schema=PLAN_SCHEMA), 0
    d_of = dem["d"].to_numpy()
    pos = np.full(int(max(d_of.max(), opts["d"].max() if opts.height else 0)) + 1, -1, dtype=np.int64)
    pos[d_of] = np.arange(n_d)
    opts = opts.filter(pl.Series(pos[opts["d"].to_numpy()] >= 0)) if opts.height else opts
    q = dem["q"].to_numpy().astype(np.int64)
    od = pos[opts["d"].to_numpy()]
    orr = opts["r"].to_numpy().astype(np.int64)
    unit = opts["unit"].to_numpy().astype(np.int64)
    r_w = np.zeros(n_r, dtype=np.int64)
    if opts.height:
        r_w[orr] = opts["wi"].to_numpy()
    bo = np.full(n_d, p.big_m, dtype=np.int64) if backorder_cost is None else backorder_cost.astype(np.int64)
    flows, cost = _decomposed_flow(q, od, orr, unit, r_w, stock, cap, bo)
    if flows is None:
        flows, cost = _network_flow(q, od, orr, unit, r_w, stock, cap, bo)
    plan = pl.DataFrame({"i": opts["i"], "x": flows}).filter(pl.col("x") > 0)
    return plan, cost


def _decomposed_flow(q: np.ndarray, od: np.ndarray, orr: np.ndarray, unit: np.ndarray, r_w: np.ndarray,
                     stock: np.ndarray, cap: np.ndarray, bo: np.ndarray) -> tuple[np.ndarray | None, int]:
    """``(flow per arc, cost)`` by components (see :func:`solve_flow`); ``(None, 0)`` when warehouse capacities
    bind and the whole network must be solved."""
    n_d, n_r, n_a = len(q), len(stock), len(od)
    flows = np.zeros(n_a, dtype=np.int64)
    # each row's cheapest way: its cheapest arc (first of equals), or the backorder when that is no dearer
    row_min = np.full(n_d, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(row_min, od, unit)
    cand = np.flatnonzero(unit == row_min[od])
    rows_c, first = np.unique(od[cand], return_index=True)
    best = np.full(n_d, -1, dtype=np.int64)
    best[rows_c] = cand[first]
    best[row_min >= bo] = -1
    served = best >= 0
    load = np.zeros(n_r, dtype=np.int64)
    np.add.at(load, orr[best[served]], q[served])
    if (np.bincount(r_w[orr[best[served]]], weights=q[served], minlength=len(cap)) > cap).any():
        return None, 0  # every row at its cheapest arc overloads a warehouse: its capacity (almost surely) binds
    over = np.flatnonzero(load > stock)
    if len(over):
        # components of the bipartite graph rows -- stock nodes; the contested ones hold an overloaded stock node
        g = sparse.coo_matrix((np.ones(n_a, dtype=np.int8), (od, n_d + orr)), shape=(n_d + n_r, n_d + n_r)).tocsr()
        _, label = csgraph.connected_components(g, directed=False)
        hot = np.zeros(label.max() + 1, dtype=bool)
        hot[label[n_d + over]] = True
        contested = hot[label[:n_d]]
    else:
        label, contested = np.zeros(n_d + n_r, dtype=np.int64), np.zeros(n_d, dtype=bool)
    free = ~contested
    pick = free & served
    flows[best[pick]] = q[pick]
    cost = int((unit[best[pick]] * q[pick]).sum()) + int((bo[free & ~served] * q[free & ~served]).sum())
    # contested components: solved in batches of whole components (smaller networks solve faster)
    rows = np.flatnonzero(contested)
    rows = rows[np.argsort(label[rows], kind="stable")]
    comp = label[rows]
    bounds = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]])  # first row of each component
    cuts = [0]
    for b in bounds[1:]:  # a batch closes at the first component boundary past _FLOW_BATCH_ROWS rows
        if b - cuts[-1] >= _FLOW_BATCH_ROWS:
            cuts.append(int(b))
    cuts.append(len(rows))
    batch_of_row = np.full(n_d, -1, dtype=np.int64)
    local = np.zeros(n_d, dtype=np.int64)
    for j in range(len(cuts) - 1):
        batch_of_row[rows[cuts[j]:cuts[j + 1]]] = j
        local[rows[cuts[j]:cuts[j + 1]]] = np.arange(cuts[j + 1] - cuts[j])
    arcs = np.flatnonzero(contested[od])
    arcs = arcs[np.argsort(batch_of_row[od[arcs]], kind="stable")]
    a_cut = np.searchsorted(batch_of_row[od[arcs]], np.arange(len(cuts)))
    unlimited = np.full(len(cap), UNLIMITED, dtype=np.int64)
    r_local = np.zeros(n_r, dtype=np.int64)
    for j in range(len(cuts) - 1):
        b_rows, b_arcs = rows[cuts[j]:cuts[j + 1]], arcs[a_cut[j]:a_cut[j + 1]]
        b_r = np.unique(orr[b_arcs])
        r_local[b_r] = np.arange(len(b_r))
        f_b, c_b = _network_flow(q[b_rows], local[od[b_arcs]], r_local[orr[b_arcs]], unit[b_arcs], r_w[b_r],
                                 stock[b_r], unlimited, bo[b_rows])
        flows[b_arcs] = f_b
        cost += c_b
    w_load = np.bincount(r_w[orr], weights=flows, minlength=len(cap))
    if (w_load > cap).any():
        return None, 0
    return flows, cost


def _network_flow(q: np.ndarray, od: np.ndarray, orr: np.ndarray, unit: np.ndarray, r_w: np.ndarray,
                  stock: np.ndarray, cap: np.ndarray, bo: np.ndarray) -> tuple[np.ndarray, int]:
    """OR-Tools min-cost flow: row -> (stock node ->) warehouse -> sink, plus a backorder arc per row.
    Returns ``(flow per option arc, optimal cost)``."""
    n_d, n_r, n_w = len(q), len(stock), len(cap)
    s_node, w_node, sink = n_d, n_d + n_r, n_d + n_r + n_w
    # a stock node whose arcs can bring no more than it holds never binds: its arcs go straight to the warehouse
    # (exact; most (warehouse, SKU) pairs in practice -- the network is then nearly bipartite)
    inflow = np.zeros(n_r, dtype=np.int64)
    np.add.at(inflow, orr, q[od])
    slack = inflow <= stock
    head_opt = np.where(slack[orr], w_node + r_w[orr], s_node + orr)
    tails = np.concatenate([od, s_node + np.arange(n_r), w_node + np.arange(n_w), np.arange(n_d)])
    heads = np.concatenate([head_opt, w_node + r_w, np.full(n_w, sink), np.full(n_d, sink)])
    caps = np.concatenate([q[od], np.maximum(stock, 0), np.maximum(cap, 0), q]).astype(np.int64)
    costs = np.concatenate([unit, np.zeros(n_r + n_w, dtype=np.int64), bo]).astype(np.int64)
    f = min_cost_flow.SimpleMinCostFlow()
    arcs = f.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n_d] = q
    supplies[sink] = -int(q.sum())
    f.set_nodes_supplies(np.arange(sink + 1), supplies)
    status = f.solve()
    if status != f.OPTIMAL:  # cannot happen: the backorder arcs make every instance feasible
        raise RuntimeError(f"min-cost flow failed with status {status}")
    return f.flows(arcs[: len(od)]).astype(np.int64), int(f.optimal_cost())


# ------------------------------------------------------------------------------------------------
# Repairs
# ------------------------------------------------------------------------------------------------
def fit_carriers(p: Problem, plan: pl.DataFrame, parcels_left: np.ndarray) -> tuple[pl.DataFrame, int]:
    """Move rows off overloaded carrier services to other services of the same warehouse (rows that would lose
    least move first); rows that fit nowhere there are dropped (their units are placed again later).
    ``parcels_left``: capacity net of rows not in ``plan``. Returns ``(plan, rows moved or dropped)``."""
    rows = plan.pipe(_at, p, "d", "o", "wi", "k", "unit", "parcels")
    load = np.zeros(len(parcels_left), dtype=np.int64)
    np.add.at(load, rows["k"].to_numpy(), rows["parcels"].to_numpy())
    over = np.flatnonzero(load > parcels_left)
    if len(over) == 0:
        return plan, 0
    at_over = rows.filter(pl.col("k").is_in(over.tolist()))
    # alternatives: the same (row, warehouse) on another service (a row's options are contiguous, by d)
    i0, d0, w0, k0, u0, x0 = (at_over[c].to_numpy() for c in ("i", "d", "wi", "k", "unit", "x"))
    i2, own = p.options_of(d0)
    same = (p.col["wi"][i2] == w0[own]) & (p.col["k"][i2] != k0[own])
    i2, own = i2[same], own[same]
    alts = pl.DataFrame({"i": i0[own], "i2": i2, "k2": p.col["k"][i2], "_p2": p.col["parcels"][i2],
                         "_delta": (p.col["unit"][i2] - u0[own]) * x0[own]})
    regret = alts.group_by("i").agg(pl.col("_delta").min().alias("_regret"))
    ranked = (at_over.join(regret, on="i", how="left")
              .with_columns(pl.col("_regret").fill_null(UNLIMITED))
              .sort(["k", "_regret", "o"], descending=[False, True, False])
              .with_columns(pl.col("parcels").cum_sum().over("k").alias("_cum")))
    cap_k = pl.Series(parcels_left)
    ranked = ranked.with_columns(pl.Series("_capk", cap_k.gather(ranked["k"]).to_numpy()))
    movers = ranked.filter(pl.col("_cum") > pl.col("_capk")).select("i", "x")
    left = parcels_left - load
    left[over] = 0
    for k in over:  # room left on the overloaded services after the rows that stay
        kept_load = int(ranked.filter((pl.col("k") == int(k)) & (pl.col("_cum") <= pl.col("_capk")))["parcels"].sum())
        left[k] = parcels_left[k] - kept_load
    moved = []
    cand = movers.join(alts.select("i", "i2", "k2", "_delta", "_p2"), on="i")
    while cand.height:
        pick = cand.sort(["_delta", "i", "i2"]).group_by("i", maintain_order=True).first()
        pick = (pick.with_columns(pl.Series("_room", left[pick["k2"].to_numpy()]))
                .with_columns(pl.col("_p2").cum_sum().over("k2").alias("_c"))
                .filter(pl.col("_c") <= pl.col("_room")))
        if pick.height == 0:
            # every first choice is full now: drop those alternatives and retry
            first = cand.sort(["_delta", "i", "i2"]).group_by("i", maintain_order=True).first().select("i", "i2")
            cand = cand.join(first, on=["i", "i2"], how="anti")
            continue
        np.subtract.at(left, pick["k2"].to_numpy(), pick["_p2"].to_numpy())
        moved.append(pick.select(pl.col("i2").alias("i"), "x"))
        cand = cand.join(pick.select("i"), on="i", how="anti")
        cand = cand.filter(pl.Series(left[cand["k2"].to_numpy()] >= cand["_p2"].to_numpy()))
    out = pl.concat([plan.join(movers.select("i"), on="i", how="anti"), *moved])
    return out, movers.height


def violations(p: Problem, plan: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Orders whose plan breaks a rule the flow does not model: split (non-ship-complete, extra shipments > 0),
    ship-complete (served partly or from several warehouses), lines basis (rows at an overloaded warehouse)."""
    i, x = _ix(plan)
    o, wi = p.col["o"][i], p.col["wi"][i]
    bits = wh_bits(p, o, wi)
    used = bits != 0
    served = np.bincount(o, weights=x, minlength=p.n_o).astype(np.int64)
    sc = used & p.sc_o & ((served < p.units_o) | (np.bitwise_count(bits) > 1))
    split = (extra_shipments(p, bits) > 0) & ~p.sc_o
    lines = np.zeros(p.n_o, dtype=bool)
    if p.basis == "lines" and len(i):
        over = np.bincount(wi, minlength=len(p.cap)) > p.cap
        lines[o[over[wi]]] = True
    bad = pl.DataFrame({"o": np.flatnonzero(split | sc | lines).astype(np.int64)})
    return bad, {"split_orders": int(split.sum()), "ship_complete_orders": int(sc.sum()),
                 "line_capacity_orders": int(lines.sum())}


def shed_lines(p: Problem, plan: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Lines basis: a warehouse with more rows than its capacity keeps the rows that would lose most elsewhere
    (regret = cost at the next best warehouse holding stock - cost here); the others are shed (their units are
    placed again later). Returns ``(plan, rows shed)``."""
    a = plan.pipe(_at, p, "d", "o", "wi", "unit")
    n = a.group_by("wi").agg(pl.len().alias("n"))
    over = n.filter(pl.col("n") > pl.Series(p.cap).gather(n["wi"]).to_numpy())
    if over.height == 0:
        return plan, 0
    rows = a.join(over.select("wi"), on="wi", how="semi")
    # regret: the cheapest service at another warehouse (a row's options are contiguous, by d)
    i0, d0, w0, u0, x0 = (rows[c].to_numpy() for c in ("i", "d", "wi", "unit", "x"))
    i2, own = p.options_of(d0)
    other = (p.col["rank"][i2] == 0) & (p.col["wi"][i2] != w0[own])
    i2, own = i2[other], own[other]
    alt = (pl.DataFrame({"i": i0[own], "_d": (p.col["unit"][i2] - u0[own]) * x0[own]})
           .group_by("i").agg(pl.col("_d").min().alias("_regret")))
    ranked = (rows.join(alt, on="i", how="left").with_columns(pl.col("_regret").fill_null(UNLIMITED))
              .sort(["wi", "_regret", "o"], descending=[False, True, False])
              .with_columns(pl.int_range(1, pl.len() + 1).over("wi").alias("_n")))
    ranked = ranked.with_columns(pl.Series("_cap", p.cap[ranked["wi"].to_numpy()]))
    shed = ranked.filter(pl.col("_n") > pl.col("_cap")).select("i")
    return plan.join(shed, on="i", how="anti"), shed.height


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for every pair."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)


def _aggregate(keys: np.ndarray, amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum ``amounts`` per key: ``(sorted distinct keys, sums)``."""
    u, inv = np.unique(keys, return_inverse=True)
    return u, np.bincount(inv, weights=amounts, minlength=len(u)).astype(np.int64)


def consolidate(p: Problem, plan: pl.DataFrame, orders: pl.DataFrame, stock: np.ndarray, cap: np.ndarray,
                parcels: np.ndarray, max_warehouses: int = 1, max_rounds: int = 500) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Move each order of ``orders`` to its cheapest plan that ships every row whole from at most
    ``max_warehouses`` warehouses (each row from the cheapest of the chosen warehouses that holds its units), when
    that is cheaper than its current plan in ``plan`` (an order without one takes any that fits) and fits in
    what is left; moves are settled in order priority and never take what another order holds. The residual
    arrays are net of every row of ``plan`` and are updated in place. Returns ``(new rows, orders moved)``."""
    n_r, n_w, n_k = len(stock), len(cap), len(parcels)
    n_res = n_r + n_w + n_k
    left = np.concatenate([stock, cap, parcels]).astype(np.int64)
    col = p.col
    wanted = np.zeros(p.n_o, dtype=bool)
    wanted[orders["o"].to_numpy()] = True
    rows = np.flatnonzero(wanted[p.dem_o])  # demand rows of these orders, by d (order priority)
    d_row, o_row, q_row = p.dem_d[rows], p.dem_o[rows], p.dem_q[rows]
    n_rows = len(rows)
    cur_cost, has_rows = _order_costs(p, plan)
    pi, px = _ix(plan)
    mine = wanted[col["o"][pi]]
    pi, px = pi[mine], px[mine]  # the current rows of these orders
    # per (row, warehouse): its cheapest service with parcel room, if the row's units fit there (stock left plus
    # what the order itself holds there) -- dense arrays U (unit) and I (option) of shape (rows, warehouses)
    sel, row_of_sel = p.options_of(d_row)
    own_keys, own_units = _aggregate(col["o"][pi] * n_r + col["r"][pi], px)
    sel_key = col["o"][sel] * n_r + col["r"][sel]
    at = np.minimum(np.searchsorted(own_keys, sel_key), max(0, len(own_keys) - 1))
    own = np.where((len(own_keys) > 0) & (own_keys[at] == sel_key), own_units[at], 0) if len(own_keys) else 0
    fits = ((parcels[col["k"][sel]] >= col["parcels"][sel])
            & (stock[col["r"][sel]] + own >= q_row[row_of_sel]))
    sel, row_of_sel = sel[fits], row_of_sel[fits]
    inf = np.iinfo(np.int64).max // 4
    U = np.full((n_rows, n_w), inf, dtype=np.int64)
    Iopt = np.full((n_rows, n_w), -1, dtype=np.int64)
    if len(sel):  # options come by (row, warehouse): per pair the cheapest, ties: lowest i
        s_wi, s_unit = col["wi"][sel], col["unit"][sel]
        pair = row_of_sel * n_w + s_wi
        g0 = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        low = np.repeat(np.minimum.reduceat(s_unit, g0), np.diff(np.r_[g0, len(sel)]))
        at_low = np.flatnonzero(s_unit == low)
        first = at_low[np.r_[True, pair[at_low][1:] != pair[at_low][:-1]]]
        U[row_of_sel[first], s_wi[first]] = s_unit[first]
        Iopt[row_of_sel[first], s_wi[first]] = sel[first]
    subsets = [c for k in range(1, max(1, max_warehouses) + 1) for c in itertools.combinations(range(n_w), k)]
    members = np.zeros((len(subsets), n_w), dtype=bool)
    for j, c in enumerate(subsets):
        members[j, list(c)] = True
    masked = np.where(members[None, :, :], U[:, None, :], inf)  # (rows, subsets, warehouses)
    arg = masked.argmin(axis=2)
    best = np.take_along_axis(masked, arg[:, :, None], axis=2)[:, :, 0]  # (rows, subsets)
    starts = np.flatnonzero(np.r_[True, o_row[1:] != o_row[:-1]]) if n_rows else np.zeros(0, dtype=np.int64)
    order_of = o_row[starts]
    ok = np.logical_and.reduceat(best < inf, starts, axis=0) if n_rows else np.zeros((0, len(subsets)), bool)
    lin = np.add.reduceat(np.where(best < inf, best, 0) * q_row[:, None], starts, axis=0) if n_rows else ok.astype(np.int64)
    bits = np.bitwise_or.reduceat(np.left_shift(1, arg).astype(np.int64), starts, axis=0) if n_rows else ok.astype(np.int64)
    kept_bits = p.kept_bits[order_of]
    n_used = np.bitwise_count(bits).astype(np.int64)
    n_beyond = np.bitwise_count(bits & ~kept_bits[:, None]).astype(np.int64)
    extra = np.where(kept_bits[:, None] > 0, n_beyond, n_used - 1)
    cost = lin + p.split_penalty * extra
    good = ok & (~has_rows[order_of][:, None] | (cost < cur_cost[order_of][:, None]))
    oi, si = np.nonzero(good)
    c_cost = cost[oi, si]
    srt = np.lexsort((si, c_cost, order_of[oi]))  # candidates c = 0..: by order, cheapest first
    c_oi, c_s = oi[srt], si[srt]
    c_o = order_of[c_oi]
    n_cand = len(c_o)
    # rows of each candidate: every row of its order, from the chosen warehouse of the subset
    n_per = np.diff(np.r_[starts, n_rows])
    reps = n_per[c_oi]
    row_idx = _ranges(starts[c_oi], reps)
    crow_c = np.repeat(np.arange(n_cand), reps)
    crow_i = Iopt[row_idx, arg[row_idx, np.repeat(c_s, reps)]]
    crow_x = q_row[row_idx]

    def usage(i: np.ndarray, x: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner * n_res + resource, amount): stock, capacity (units or one line) and parcels of rows i."""
        lines = x if p.basis == "units" else np.ones(len(i), dtype=np.int64)
        keys = np.concatenate([owner * n_res + col["r"][i], owner * n_res + n_r + col["wi"][i],
                               owner * n_res + n_r + n_w + col["k"][i]])
        return keys, np.concatenate([x, lines, col["parcels"][i]])

    # net usage per (candidate, resource): its rows minus what its order holds now
    own_k, own_a = _aggregate(*usage(pi, px, col["o"][pi]))
    own_o = own_k // n_res
    lo, hi = np.searchsorted(own_o, c_o, side="left"), np.searchsorted(own_o, c_o, side="right")
    own_idx = _ranges(lo, hi - lo)
    own_c = np.repeat(np.arange(n_cand), hi - lo)
    ck, ca = usage(crow_i, crow_x, crow_c)
    net_k, net_amt = _aggregate(np.concatenate([ck, own_c * n_res + own_k[own_idx] % n_res]),
                                np.concatenate([ca, -own_a[own_idx]]))
    net_c, net_res = net_k // n_res, net_k % n_res
    todo = np.ones(n_cand, dtype=bool)
    accepted = np.zeros(n_cand, dtype=bool)
    for _ in range(max_rounds):
        if not todo.any():
            break
        bad = np.zeros(n_cand, dtype=bool)
        bad[net_c[net_amt > left[net_res]]] = True
        todo &= ~bad
        if not todo.any():
            break
        tc = np.flatnonzero(todo)
        prop = tc[np.unique(c_o[tc], return_index=True)[1]]  # each order's cheapest candidate still open
        is_prop = np.zeros(n_cand, dtype=bool)
        is_prop[prop] = True
        e = np.flatnonzero(is_prop[net_c])  # net entries come by (candidate, resource): by order priority
        over = group_cumsum(net_res[e], np.maximum(net_amt[e], 0)) > left[net_res[e]]
        is_prop[net_c[e[over]]] = False  # rejected this round: an earlier order took the room
        e = np.flatnonzero(is_prop[net_c])
        np.subtract.at(left, net_res[e], net_amt[e])
        accepted |= is_prop
        done_o = np.zeros(p.n_o, dtype=bool)
        done_o[c_o[is_prop]] = True
        todo &= ~done_o[c_o]
    stock[:] = left[:n_r]
    cap[:] = left[n_r:n_r + n_w]
    parcels[:] = left[n_r + n_w:]
    take = accepted[crow_c]
    return (pl.DataFrame({"i": crow_i[take].astype(np.int64), "x": crow_x[take].astype(np.int64)}),
            pl.DataFrame({"o": np.sort(c_o[accepted]).astype(np.int64)}))


def enforce(p: Problem, plan: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Keep rows in order priority while every resource has room; a ship-complete order losing a row loses all
    of them. Returns ``(plan, rows removed)`` -- none for a sound plan."""
    i, x = _ix(plan)
    n0 = len(i)
    d, o, wi = p.col["d"][i], p.col["o"][i], p.col["wi"][i]
    s = np.lexsort((wi, d, o))  # order priority, then row, then warehouse
    i, x, d, o, wi = i[s], x[s], d[s], o[s], wi[s]
    first = np.r_[True, (d[1:] != d[:-1]) | (wi[1:] != wi[:-1])] if n0 else np.zeros(0, dtype=bool)  # one per pair
    ok = first & (group_cumsum(d, np.where(first, x, 0)) <= p.q_d[d])
    i, x, d, o, wi = i[ok], x[ok], d[ok], o[ok], wi[ok]
    r, k, parcels = p.col["r"][i], p.col["k"][i], p.col["parcels"][i]
    lines = x if p.basis == "units" else np.ones(len(i), dtype=np.int64)
    ok = ((group_cumsum(r, x) <= p.stock[r]) & (group_cumsum(wi, lines) <= p.cap[wi])
          & (group_cumsum(k, parcels) <= p.parcels[k]))
    i, x, o, wi = i[ok], x[ok], o[ok], wi[ok]
    bits = wh_bits(p, o, wi)
    served = np.bincount(o, weights=x, minlength=p.n_o).astype(np.int64)
    bad_sc = p.sc_o & ((served < p.units_o) | (np.bitwise_count(bits) > 1))
    keep = ~bad_sc[o]
    return pl.DataFrame({"i": i[keep], "x": x[keep]}), n0 - int(keep.sum())


# ------------------------------------------------------------------------------------------------
# MIP (CP-SAT): exact
# ------------------------------------------------------------------------------------------------
def solve_mip(p: Problem, cfg: AllocationConfig) -> tuple[pl.DataFrame, str]:
    """Optimal plan of the whole problem. Returns ``(plan (i, x), status)``: optimal | time_limit | failed."""
    opts = p.opts
    m = cp_model.CpModel()
    ox = opts.to_dict(as_series=False)
    n = opts.height
    q_of = dict(zip(p.dem["d"].to_list(), p.dem["q"].to_list(), strict=True))
    x = [m.new_int_var(0, q_of[ox["d"][j]], "") for j in range(n)]
    b = [m.new_bool_var("") for _ in range(n)]
    groups: dict[str, dict] = {"dw": {}, "d": {}, "ow": {}, "r": {}, "w": {}, "k": {}}
    for j in range(n):
        m.add(x[j] <= q_of[ox["d"][j]] * b[j])
        m.add(x[j] >= b[j])
        d, o, w = ox["d"][j], ox["o"][j], ox["wi"][j]
        for key, val in (("dw", (d, w)), ("d", d), ("ow", (o, w)), ("r", ox["r"][j]), ("w", w), ("k", ox["k"][j])):
            groups[key].setdefault(val, []).append(j)
    for js in groups["dw"].values():
        if len(js) > 1:
            m.add(sum(b[j] for j in js) <= 1)
    y: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for (o, w), js in groups["ow"].items():
        v = m.new_bool_var("")
        y.setdefault(o, []).append((w, v))
        for j in js:
            m.add(b[j] <= v)
    kept: dict[int, set[int]] = {}
    for o, w in p.kept.iter_rows():
        kept.setdefault(o, set()).add(w)
    obj = []
    for o, ds, qs, sc in p.dem.group_by("o", maintain_order=True).agg("d", "q", pl.col("sc").first()).iter_rows():
        ys = y.get(o, [])
        if sc:
            a = m.new_bool_var("")
            for d, qd in zip(ds, qs, strict=True):
                m.add(sum(x[j] for j in groups["d"].get(d, [])) == qd * a)
                obj.append(p.big_m * qd * (1 - a))
            if ys:
                m.add(sum(v for _, v in ys) <= 1)
        else:
            for d, qd in zip(ds, qs, strict=True):
                u = m.new_int_var(0, qd, "")
                m.add(sum(x[j] for j in groups["d"].get(d, [])) + u == qd)
                obj.append(p.big_m * u)
            ko = kept.get(o, set())
            new = [v for w, v in ys if w not in ko]
            if new:
                obj.append(p.split_penalty * sum(new))
                if not ko:
                    v_o = m.new_bool_var("")
                    m.add(v_o <= sum(v for _, v in ys))
                    obj.append(-p.split_penalty * v_o)
    for r, js in groups["r"].items():
        if sum(q_of[ox["d"][j]] for j in js) > p.stock[r]:
            m.add(sum(x[j] for j in js) <= int(p.stock[r]))
    for w, js in groups["w"].items():
        if p.basis == "units":
            if sum(q_of[ox["d"][j]] for j in js) > p.cap[w]:
                m.add(sum(x[j] for j in js) <= int(p.cap[w]))
        elif len({ox["d"][j] for j in js}) > p.cap[w]:
            m.add(sum(b[j] for j in js) <= int(p.cap[w]))
    for k, js in groups["k"].items():
        if sum(ox["parcels"][j] for j in js) > p.parcels[k]:
            m.add(sum(ox["parcels"][j] * b[j] for j in js) <= int(p.parcels[k]))
    m.minimize(sum(ox["unit"][j] * x[j] for j in range(n)) + sum(obj))
    s = cp_model.CpSolver()
    # a deterministic work limit (not wall time): the same input gives the same plan on any machine or load
    s.parameters.max_deterministic_time = cfg.mip_time_limit_s
    s.parameters.num_workers = cfg.mip_workers
    s.parameters.random_seed = 0
    s.parameters.linearization_level = 2  # LP relaxation with the linking constraints: proves optimality fast
    st = s.solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return pl.DataFrame(schema=PLAN_SCHEMA), "failed"
    vals = np.fromiter((s.value(v) for v in x), dtype=np.int64, count=n)
    plan = pl.DataFrame({"i": opts["i"], "x": vals}).filter(pl.col("x") > 0)
    return plan, "optimal" if st == cp_model.OPTIMAL else "time_limit"


# ------------------------------------------------------------------------------------------------
# Greedy baseline: cheapest option first
# ------------------------------------------------------------------------------------------------
def solve_greedy(p: Problem, dem: pl.DataFrame | None = None, stock: np.ndarray | None = None,
                 cap: np.ndarray | None = None, parcels: np.ndarray | None = None,
                 used: pl.DataFrame | None = None) -> pl.DataFrame:
    """Ship-complete orders first, each whole at its cheapest warehouse that holds it (order priority); then
    vectorised rounds: every row with units left claims its cheapest (row, warehouse) option that still has room;
    claims are served cheapest first within each resource. ``dem`` (rows and units to place), the residual arrays
    (updated in place when given) and ``used`` ((d, wi) pairs that already have a row) default to the whole
    problem. Returns ``(i, x)``."""
    whole = dem is None
    dem = p.dem if dem is None else dem
    stock = p.stock.copy() if stock is None else stock
    cap = p.cap.copy() if cap is None else cap
    parcels = p.parcels.copy() if parcels is None else parcels
    sc_orders = dem.filter(pl.col("sc")).select("o").unique().sort("o")
    sc_plan, _ = consolidate(p, pl.DataFrame(schema=PLAN_SCHEMA), sc_orders, stock, cap, parcels, max_warehouses=1)
    col, n_w = p.col, len(p.cap)
    sc_o = np.zeros(p.n_o, dtype=bool)
    sc_o[sc_orders["o"].to_numpy()] = True
    d_dem, q_dem = dem["d"].to_numpy().astype(np.int64), dem["q"].to_numpy().astype(np.int64)
    keep = ~sc_o[dem["o"].to_numpy()]
    rem = np.zeros(len(p.q_d), dtype=np.int64)
    rem[d_dem[keep]] = q_dem[keep]
    taken = np.zeros((len(p.q_d), max(1, n_w)), dtype=bool)  # (row, warehouse) pairs that already have a row
    if used is not None and used.height:
        taken[used["d"].to_numpy(), used["wi"].to_numpy()] = True
    rows = np.sort(d_dem[keep])
    cand = p.options_of(rows)[0]  # every service: a full one leaves the next
    out = [sc_plan]
    while True:
        d, wi, r, k = col["d"][cand], col["wi"][cand], col["r"][cand], col["k"][cand]
        live = ((rem[d] > 0) & ~taken[d, wi] & (stock[r] > 0) & (cap[wi] > 0) & (parcels[k] >= col["parcels"][cand]))
        cand = cand[live]  # an option that is out now stays out: residuals only shrink
        if len(cand) == 0:
            break
        # each row's cheapest live option (ties: lowest i); options come by d
        d, unit = col["d"][cand], col["unit"][cand]
        g0 = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        low = np.repeat(np.minimum.reduceat(unit, g0), np.diff(np.r_[g0, len(cand)]))
        at_low = np.flatnonzero(unit == low)
        pick = cand[at_low[np.r_[True, d[at_low][1:] != d[at_low][:-1]]]]
        pick = pick[np.lexsort((pick, col["unit"][pick]))]  # claims are served cheapest first
        pd_, pr, pw, pk, pp = (col[c][pick] for c in ("d", "r", "wi", "k", "parcels"))
        want = rem[pd_]
        x = np.minimum(want, np.maximum(stock[pr] - group_cumsum(pr, want) + want, 0))
        if p.basis == "units":
            x = np.minimum(x, np.maximum(cap[pw] - group_cumsum(pw, x) + x, 0))
        else:
            x = np.where(group_cumsum(pw, (x > 0).astype(np.int64)) <= cap[pw], x, 0)
        x = np.where(group_cumsum(pk, np.where(x > 0, pp, 0)) <= parcels[pk], x, 0)
        got = x > 0
        plan = pl.DataFrame({"i": pick[got], "x": x[got]})
        _use(p, plan, stock, cap, parcels)
        out.append(plan)
        taken[pd_[got], pw[got]] = True
        rem[pd_] -= x
    plan = pl.concat(out)
    return enforce(p, plan)[0] if whole else plan


# ------------------------------------------------------------------------------------------------
# The strategy
# ------------------------------------------------------------------------------------------------
def solve(p: Problem, cfg: AllocationConfig) -> tuple[pl.DataFrame, SolveReport]:
    """Plan ``p``: returns ``(assign (i, x, solver), report)``."""
    rep = SolveReport()
    if p.dem.height == 0:
        rep.path, rep.proven_optimal, rep.lower_bound = "none", True, 0
        return pl.DataFrame(schema=ASSIGN_SCHEMA), rep
    t0 = time.perf_counter()
    if cfg.method == "greedy":
        plan = solve_greedy(p)
        rep.seconds["greedy"] = time.perf_counter() - t0
        rep.path = "greedy"
        rep.objective = plan_cost(p, plan)["objective"]
        return plan.with_columns(pl.lit("greedy").alias("solver")), rep
    if p.dem.height <= cfg.mip_max_rows:
        plan, status = solve_mip(p, cfg)
        rep.seconds["mip"] = time.perf_counter() - t0
        rep.mip_status = status
        if status == "optimal":
            rep.path, rep.proven_optimal = "mip", True
            rep.objective = rep.lower_bound = plan_cost(p, plan)["objective"]
            return plan.with_columns(pl.lit("mip").alias("solver")), rep
        # no proof within the limit: the better of the MIP's best plan and the flow path's
        flow_plan, flow_rep = _solve_flow_path(p, cfg)
        mip_obj = plan_cost(p, plan)["objective"] if status == "time_limit" else None
        if mip_obj is not None and mip_obj <= flow_rep.objective:
            rep.path, rep.objective = "mip_time_limit", mip_obj
            return plan.with_columns(pl.lit("mip_time_limit").alias("solver")), rep
        flow_rep.mip_status, flow_rep.seconds = status, {**rep.seconds, **flow_rep.seconds}
        return flow_plan, flow_rep
    return _solve_flow_path(p, cfg)


def _solve_flow_path(p: Problem, cfg: AllocationConfig) -> tuple[pl.DataFrame, SolveReport]:
    rep = SolveReport()
    t0 = time.perf_counter()
    dem = p.dem.sort("d")
    arcs = p.opts.filter(pl.col("rank") == 0)
    # lines basis: a row uses one line whatever its units -- not a flow constraint: relaxed here, repaired after
    cap = p.cap if p.basis == "units" else np.full(len(p.cap), UNLIMITED, dtype=np.int64)
    if cfg.certify:
        # the relaxation, with the split penalties every order is forced to pay moved into a valid bound
        kmin, impossible = _cover(p)
        forced = dem.select("d", "o").join(kmin, on="o", how="left").with_columns(pl.col("kmin").fill_null(1))
        bo = (p.big_m - p.split_penalty * (forced["kmin"].to_numpy() - 1)).astype(np.int64)
        plan, flow_cost = solve_flow(p, dem, arcs.join(impossible, on="o", how="anti"), p.stock, cap, bo)
        rep.lower_bound = flow_cost + p.split_penalty * int((kmin["kmin"] - 1).sum())
        rep.relaxation_unallocated = int(p.dem["q"].sum()) - (int(plan["x"].sum()) if plan.height else 0)
        rep.seconds["bound"] = time.perf_counter() - t0
        bad0, counts = violations(p, plan)
        if bad0.height == 0 and _over_parcels(p, plan) == 0:
            rep.path, rep.proven_optimal = "min_cost_flow", True
            rep.objective = plan_cost(p, plan)["objective"]
            return plan.with_columns(pl.lit("min_cost_flow").alias("solver")), rep
    # the plan's flow: each order's units lean to its home warehouse (the cheapest that holds all of it, ignoring
    # other orders) by the split penalty spread over its units on every other warehouse's arcs
    t1 = time.perf_counter()
    plan, _ = solve_flow(p, dem, _home_bias(p, arcs), p.stock, cap)
    rep.seconds["flow"] = time.perf_counter() - t1
    rep.path = "min_cost_flow"
    t2 = time.perf_counter()
    bad0, counts = violations(p, plan)
    over_k = _over_parcels(p, plan)
    rep.violations = {**counts, "carrier_capacity_services": over_k}
    if bad0.height == 0 and over_k == 0:
        rep.objective = plan_cost(p, plan)["objective"]
        rep.proven_optimal = rep.objective == rep.lower_bound
        rep.seconds["check"] = time.perf_counter() - t2
        return plan.with_columns(pl.lit("min_cost_flow").alias("solver")), rep

    flow_plan = plan
    # (1) carrier capacities, (2) line capacities: rows moved to another service / shed
    plan, moved = fit_carriers(p, plan, p.parcels.copy())
    shed = 0
    if p.basis == "lines":
        plan, shed = shed_lines(p, plan)
    # (3) ship-complete orders not served whole from one warehouse: all from one warehouse, or none. They may
    # take stock, capacity and parcels the flow gave to orders that can split (those rows are displaced and their
    # units placed again in (5)).
    bad, _ = violations(p, plan)
    sc_all = p.dem.filter(pl.col("sc")).select("o").unique()
    sc_bad = bad.join(sc_all, on="o", how="semi")
    with_o = plan.pipe(_at, p, "o")
    plan = with_o.join(sc_bad, on="o", how="anti").select("i", "x")
    s2, c2, p2 = p.stock.copy(), p.cap.copy(), p.parcels.copy()
    _use(p, with_o.join(sc_all, on="o", how="semi").join(sc_bad, on="o", how="anti").select("i", "x"), s2, c2, p2)
    sc_rows, sc_done = consolidate(p, plan, sc_bad, s2, c2, p2)
    plan, displaced = _displace(p, pl.concat([plan, sc_rows]), sc_all)
    stock, cap, parcels = p.stock.copy(), p.cap.copy(), p.parcels.copy()
    _use(p, plan, stock, cap, parcels)
    # (4) split orders: all from one warehouse when cheaper than the split (penalty included) and it fits
    split = bad.join(sc_bad, on="o", how="anti")
    new_rows, moved_o = consolidate(p, plan, split, stock, cap, parcels, max_warehouses=cfg.consolidate_max_warehouses)
    plan = pl.concat([plan.pipe(_at, p, "o").join(moved_o, on="o", how="anti").select("i", "x"),
                      new_rows])
    # (4b) relocation: any order whose plan costs more than its cheapest conceivable one may move whole to one
    # warehouse on what is left (true costs, no penalty bias)
    relocated = 0
    for _ in range(cfg.relocation_passes):
        movers = _improvable(p, plan)
        rows_, moved_ = consolidate(p, plan, movers, stock, cap, parcels, max_warehouses=1)
        plan = pl.concat([plan.pipe(_at, p, "o").join(moved_, on="o", how="anti").select("i", "x"), rows_])
        relocated += moved_.height
        if moved_.height == 0:
            break
    # (5) units still unplaced (not ship-complete) through a last flow on what is left
    got = plan.pipe(_at, p, "d").group_by("d").agg(pl.col("x").sum().alias("s"))
    rest = (p.dem.filter(~pl.col("sc")).join(got, on="d", how="left")
            .with_columns((pl.col("q") - pl.col("s").fill_null(0)).alias("q")).filter(pl.col("q") > 0)
            .select("d", "o", "q", "sc").sort("d"))
    extra_plan = pl.DataFrame(schema=PLAN_SCHEMA)
    if rest.height:
        used_dw = plan.pipe(_at, p, "d", "wi").select("d", "wi")
        if p.basis == "units":
            ro = p.opts.join(rest.select("d"), on="d", how="semi").join(used_dw, on=["d", "wi"], how="anti")
            ro = (ro.filter(pl.Series(parcels[ro["k"].to_numpy()] >= ro["parcels"].to_numpy()))
                  .sort(["d", "wi", "rank"]).group_by(["d", "wi"], maintain_order=True).first())
            extra_plan, _ = solve_flow(p, rest, ro, stock, cap)
        else:  # lines basis: a row costs one line whatever its units -- not a flow: cheapest option first
            extra_plan = solve_greedy(p, rest, stock, cap, parcels, used_dw)
    final, trimmed = enforce(p, pl.concat([plan, extra_plan]))
    rep.repairs = {"carrier_rows_moved": moved, "line_rows_shed": shed, "ship_complete_orders": sc_bad.height,
                   "ship_complete_placed": sc_done.height, "rows_displaced": displaced, "split_orders": split.height,
                   "split_orders_consolidated": moved_o.height, "orders_relocated": relocated, "rows_reflowed": extra_plan.height,
                   "rows_trimmed": trimmed}
    rep.seconds["repair"] = time.perf_counter() - t2
    rep.path = "min_cost_flow+repair"
    unchanged = final.join(flow_plan, on=["i", "x"], how="semi")
    out = pl.concat([unchanged.with_columns(pl.lit("min_cost_flow").alias("solver")),
                     final.join(flow_plan, on=["i", "x"], how="anti")
                     .with_columns(pl.lit("min_cost_flow+repair").alias("solver"))])
    rep.objective = plan_cost(p, out.select("i", "x"))["objective"]
    rep.proven_optimal = rep.lower_bound is not None and rep.objective == rep.lower_bound
    return out, rep


def _displace(p: Problem, plan: pl.DataFrame, sc_orders: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Where a resource is over its limit, remove rows of orders that may split, latest orders first, until it
    fits. Returns ``(plan, rows removed)``."""
    a = plan.pipe(_at, p, "o", "r", "wi", "k", "parcels").with_columns(
        pl.col("o").is_in(sc_orders["o"].implode()).alias("_sc"))
    n0 = a.height
    cap_amt = pl.col("x") if p.basis == "units" else pl.lit(1, pl.Int64)
    for res, amt, limit in (("r", pl.col("x"), p.stock), ("wi", cap_amt, p.cap), ("k", pl.col("parcels"), p.parcels)):
        a = a.with_columns(amt.alias("_amt"))
        load = a.group_by(res).agg(pl.col("_amt").sum().alias("_load"))
        over = load.with_columns(pl.Series("_lim", limit[load[res].to_numpy()]))
        over = over.filter(pl.col("_load") > pl.col("_lim")).select(res, (pl.col("_load") - pl.col("_lim")).alias("_over"))
        if over.height == 0:
            continue
        cand = (a.filter(~pl.col("_sc")).join(over, on=res).sort([res, "o"], descending=[False, True])
                .with_columns(pl.col("_amt").cum_sum().over(res).alias("_cum"))
                .filter(pl.col("_cum") - pl.col("_amt") < pl.col("_over")))
        a = a.join(cand.select("i"), on="i", how="anti")
    return a.select("i", "x"), n0 - a.height


def _order_costs(p: Problem, plan: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per order: ``(cost of its rows in plan incl. split penalties, has rows)``."""
    i, x = _ix(plan)
    o = p.col["o"][i]
    bits = wh_bits(p, o, p.col["wi"][i])
    lin = np.bincount(o, weights=x * p.col["unit"][i], minlength=p.n_o).astype(np.int64)
    return lin + p.split_penalty * extra_shipments(p, bits), bits != 0


def _improvable(p: Problem, plan: pl.DataFrame) -> pl.DataFrame:
    """Orders whose plan costs more than the cheapest conceivable one (each row at its cheapest warehouse, no
    split penalty): only these can gain from relocation."""
    cur, has = _order_costs(p, plan)
    rank0 = p.col["rank"] == 0
    d0 = p.col["d"][rank0]
    m = np.full(len(p.q_d), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(m, d0, p.col["unit"][rank0])
    reach = np.zeros(len(p.q_d), dtype=bool)
    reach[d0] = True
    dd = np.flatnonzero(reach)
    o_of_d = np.zeros(len(p.q_d), dtype=np.int64)
    o_of_d[p.col["d"]] = p.col["o"]
    floor = np.bincount(o_of_d[dd], weights=m[dd] * p.q_d[dd], minlength=p.n_o).astype(np.int64)
    reachable = np.zeros(p.n_o, dtype=bool)
    reachable[o_of_d[dd]] = True
    return pl.DataFrame({"o": np.flatnonzero(has & reachable & (cur > floor)).astype(np.int64)})


def _home_bias(p: Problem, arcs: pl.DataFrame) -> pl.DataFrame:
    """Arcs with ``unit`` + split penalty / order units on every warehouse but the order's home (the cheapest
    warehouse whose stock covers each of the order's rows, ignoring other orders)."""
    i = arcs["i"].to_numpy()
    d, o, wi, r, unit = (p.col[c][i] for c in ("d", "o", "wi", "r", "unit"))
    n_w = len(p.cap)
    q = p.q_d[d]
    fits = p.stock[r] >= q
    # per (order, warehouse): rows covered and their cost
    key = o * n_w + wi
    n_cov = np.bincount(key[fits], minlength=p.n_o * n_w).reshape(p.n_o, n_w)
    cost = np.bincount(key[fits], weights=(q * unit)[fits], minlength=p.n_o * n_w).reshape(p.n_o, n_w)
    rows_o = np.bincount(p.dem["o"].to_numpy(), minlength=p.n_o)
    whole = (n_cov == rows_o[:, None]) & (rows_o[:, None] > 0)
    home = np.where(whole.any(axis=1), np.where(whole, cost, np.inf).argmin(axis=1), -1)  # ties: lowest wi
    units = np.maximum(p.units_o, 1)
    away = (home[o] >= 0) & (home[o] != wi)
    bias = (2 * p.split_penalty + units[o]) // (2 * units[o])  # penalty / units, rounded half up
    return arcs.with_columns(pl.Series("unit", np.where(away, unit + bias, unit)))


def _over_parcels(p: Problem, plan: pl.DataFrame) -> int:
    u = plan.pipe(_at, p, "k", "parcels")
    load = np.zeros(len(p.parcels), dtype=np.int64)
    np.add.at(load, u["k"].to_numpy(), u["parcels"].to_numpy())
    return int((load > p.parcels).sum())
