"""Greedy baseline: cheapest option first (ship-complete orders whole first). The benchmark's baseline, the
fallback of the lines basis for units the flow left, and ``method="greedy"``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from som_pipeline.allocation.solver.bookkeeping import _use, group_cumsum
from som_pipeline.allocation.solver.problem import PLAN_SCHEMA, Problem
from som_pipeline.allocation.solver.repairs import consolidate, enforce


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
