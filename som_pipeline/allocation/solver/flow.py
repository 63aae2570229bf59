"""Min-cost flow: the relaxation of the model on demand row -> (warehouse, SKU) stock node -> warehouse -> sink,
its exact split into independent components, the OR-Tools network solve, and the home-warehouse bias of the
plan's arcs. Anything that builds or solves a flow network goes here; the rules a flow cannot express are
repaired in :mod:`~.repairs`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from ortools.graph.python import min_cost_flow
from scipy import sparse
from scipy.sparse import csgraph

from som_pipeline.allocation.solver.problem import PLAN_SCHEMA, UNLIMITED, Problem

_FLOW_BATCH_ROWS = 1_000  # contested components are solved in batches of about this many demand rows


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
