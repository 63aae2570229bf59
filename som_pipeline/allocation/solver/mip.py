"""MIP (CP-SAT): the exact model of the whole problem for small instances. Only the model's translation into
CP-SAT and its solver parameters belong here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from ortools.sat.python import cp_model

from som_pipeline.allocation.config import AllocationConfig
from som_pipeline.allocation.solver.problem import PLAN_SCHEMA, Problem


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
