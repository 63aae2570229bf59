"""The strategy: which path solves an instance (greedy, MIP, or the flow path) and, on the flow path, the sequence
bound -> flow -> check -> repairs (1)-(6), one named step each (``_relaxation``, ``_repair`` and its steps).
Only the order and the wiring live here: a new path or pass is written in its own module (:mod:`~.flow`,
:mod:`~.repairs`, ...) and called from here.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from som_pipeline.allocation.config import AllocationConfig
from som_pipeline.allocation.solver.bookkeeping import _at, _use, plan_cost
from som_pipeline.allocation.solver.bounds import _cover
from som_pipeline.allocation.solver.flow import _home_bias, solve_flow
from som_pipeline.allocation.solver.greedy import solve_greedy
from som_pipeline.allocation.solver.mip import solve_mip
from som_pipeline.allocation.solver.problem import ASSIGN_SCHEMA, PLAN_SCHEMA, UNLIMITED, Problem, SolveReport
from som_pipeline.allocation.solver.repairs import (
    _displace,
    _improvable,
    _over_parcels,
    consolidate,
    enforce,
    fit_carriers,
    shed_lines,
    violations,
)


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
    """The flow path: (with ``certify``) the relaxation and its bound, the plan's flow, then -- when the flow's plan
    breaks a rule -- the repairs (1)-(6). Returns ``(assign (i, x, solver), report)``."""
    rep = SolveReport()
    t0 = time.perf_counter()
    dem = p.dem.sort("d")
    arcs = p.opts.filter(pl.col("rank") == 0)
    # lines basis: a row uses one line whatever its units -- not a flow constraint: relaxed here, repaired after
    cap = p.cap if p.basis == "units" else np.full(len(p.cap), UNLIMITED, dtype=np.int64)
    if cfg.certify:
        plan, rep.lower_bound, rep.relaxation_unallocated = _relaxation(p, dem, arcs, cap)
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

    final, rep.repairs = _repair(p, cfg, plan)
    rep.seconds["repair"] = time.perf_counter() - t2
    rep.path = "min_cost_flow+repair"
    out = _label_repaired(final, plan)
    rep.objective = plan_cost(p, out.select("i", "x"))["objective"]
    rep.proven_optimal = rep.lower_bound is not None and rep.objective == rep.lower_bound
    return out, rep


def _relaxation(p: Problem, dem: pl.DataFrame, arcs: pl.DataFrame,
                cap: np.ndarray) -> tuple[pl.DataFrame, int, int]:
    """The plain relaxation, with the split penalties every order is forced to pay moved into a valid bound.
    Returns ``(its plan, lower bound, units it leaves unallocated)``."""
    kmin, impossible = _cover(p)
    forced = dem.select("d", "o").join(kmin, on="o", how="left").with_columns(pl.col("kmin").fill_null(1))
    bo = (p.big_m - p.split_penalty * (forced["kmin"].to_numpy() - 1)).astype(np.int64)
    plan, flow_cost = solve_flow(p, dem, arcs.join(impossible, on="o", how="anti"), p.stock, cap, bo)
    lower_bound = flow_cost + p.split_penalty * int((kmin["kmin"] - 1).sum())
    unallocated = int(p.dem["q"].sum()) - (int(plan["x"].sum()) if plan.height else 0)
    return plan, lower_bound, unallocated


def _repair(p: Problem, cfg: AllocationConfig, plan: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The repairs of a flow plan that breaks a rule, in order (see the package doc). Returns ``(plan, what each
    repair did)``."""
    # (1) carrier capacities, (2) line capacities: rows moved to another service / shed
    plan, moved = fit_carriers(p, plan, p.parcels.copy())
    shed = 0
    if p.basis == "lines":
        plan, shed = shed_lines(p, plan)
    # (3) ship-complete orders not served whole from one warehouse
    bad, _ = violations(p, plan)
    sc_all = p.dem.filter(pl.col("sc")).select("o").unique()
    sc_bad = bad.join(sc_all, on="o", how="semi")
    plan, sc_done, displaced = _place_ship_complete(p, plan, sc_all, sc_bad)
    stock, cap, parcels = p.stock.copy(), p.cap.copy(), p.parcels.copy()
    _use(p, plan, stock, cap, parcels)
    # (4) split orders, (4b) relocation, (5) units still unplaced -- on what is left (updated in place)
    split = bad.join(sc_bad, on="o", how="anti")
    plan, moved_o = _consolidate_split_orders(p, cfg, plan, split, stock, cap, parcels)
    plan, relocated = _relocate(p, cfg, plan, stock, cap, parcels)
    extra_plan = _reflow_unplaced(p, plan, stock, cap, parcels)
    # (6) a final check trims anything that would break a rule
    final, trimmed = enforce(p, pl.concat([plan, extra_plan]))
    return final, {"carrier_rows_moved": moved, "line_rows_shed": shed, "ship_complete_orders": sc_bad.height,
                   "ship_complete_placed": sc_done.height, "rows_displaced": displaced, "split_orders": split.height,
                   "split_orders_consolidated": moved_o.height, "orders_relocated": relocated,
                   "rows_reflowed": extra_plan.height, "rows_trimmed": trimmed}


def _place_ship_complete(p: Problem, plan: pl.DataFrame, sc_all: pl.DataFrame,
                         sc_bad: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(3) Ship-complete orders ``sc_bad`` not served whole from one warehouse: all from one warehouse, or none.
    They may take stock, capacity and parcels the flow gave to orders that can split (those rows are displaced and
    their units placed again in (5)). Returns ``(plan, orders placed, rows displaced)``."""
    with_o = plan.pipe(_at, p, "o")
    plan = with_o.join(sc_bad, on="o", how="anti").select("i", "x")
    s2, c2, p2 = p.stock.copy(), p.cap.copy(), p.parcels.copy()
    _use(p, with_o.join(sc_all, on="o", how="semi").join(sc_bad, on="o", how="anti").select("i", "x"), s2, c2, p2)
    sc_rows, sc_done = consolidate(p, plan, sc_bad, s2, c2, p2)
    plan, displaced = _displace(p, pl.concat([plan, sc_rows]), sc_all)
    return plan, sc_done, displaced


def _consolidate_split_orders(p: Problem, cfg: AllocationConfig, plan: pl.DataFrame, split: pl.DataFrame,
                              stock: np.ndarray, cap: np.ndarray,
                              parcels: np.ndarray) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(4) Split orders: all from one warehouse when cheaper than the split (penalty included) and it fits.
    Returns ``(plan, orders moved)``; the residual arrays are updated in place."""
    new_rows, moved_o = consolidate(p, plan, split, stock, cap, parcels, max_warehouses=cfg.consolidate_max_warehouses)
    plan = pl.concat([plan.pipe(_at, p, "o").join(moved_o, on="o", how="anti").select("i", "x"),
                      new_rows])
    return plan, moved_o


def _relocate(p: Problem, cfg: AllocationConfig, plan: pl.DataFrame, stock: np.ndarray, cap: np.ndarray,
              parcels: np.ndarray) -> tuple[pl.DataFrame, int]:
    """(4b) Relocation: any order whose plan costs more than its cheapest conceivable one may move whole to one
    warehouse on what is left (true costs, no penalty bias). Returns ``(plan, orders moved)``; the residual
    arrays are updated in place."""
    relocated = 0
    for _ in range(cfg.relocation_passes):
        movers = _improvable(p, plan)
        rows_, moved_ = consolidate(p, plan, movers, stock, cap, parcels, max_warehouses=1)
        plan = pl.concat([plan.pipe(_at, p, "o").join(moved_, on="o", how="anti").select("i", "x"), rows_])
        relocated += moved_.height
        if moved_.height == 0:
            break
    return plan, relocated


def _reflow_unplaced(p: Problem, plan: pl.DataFrame, stock: np.ndarray, cap: np.ndarray,
                     parcels: np.ndarray) -> pl.DataFrame:
    """(5) Units still unplaced (not ship-complete) through a last flow on what is left (lines basis: cheapest
    option first). Returns the new rows ``(i, x)``; the residual arrays are updated in place."""
    rest = _unplaced(p, plan)
    if rest.height == 0:
        return pl.DataFrame(schema=PLAN_SCHEMA)
    used_dw = plan.pipe(_at, p, "d", "wi").select("d", "wi")
    if p.basis == "lines":  # a row costs one line whatever its units -- not a flow: cheapest option first
        return solve_greedy(p, rest, stock, cap, parcels, used_dw)
    # a row's parcels do not grow with its units: the flow cannot count them, and rows that each fit a service
    # may overload it together. (1) on the new rows: they move to another service of their warehouse or are
    # dropped, and their units take another round. The first row kept on each service always fits (every arc's
    # service had room for its row), so each round places a row on a new (row, warehouse) pair.
    out = []
    while rest.height:
        ro = p.opts.join(rest.select("d"), on="d", how="semi").join(used_dw, on=["d", "wi"], how="anti")
        ro = (ro.filter(pl.Series(parcels[ro["k"].to_numpy()] >= ro["parcels"].to_numpy()))
              .sort(["d", "wi", "rank"]).group_by(["d", "wi"], maintain_order=True).first())
        flowed, _ = solve_flow(p, rest, ro, stock, cap)
        fitted, _ = fit_carriers(p, flowed, parcels)
        _use(p, fitted, stock, cap, parcels)
        out.append(fitted)
        if fitted.height in (0, flowed.height):  # nothing dropped: the flow placed all it could
            break
        used_dw = pl.concat([used_dw, fitted.pipe(_at, p, "d", "wi").select("d", "wi")])
        rest = _unplaced(p, fitted, rest)
    return pl.concat(out)


def _unplaced(p: Problem, plan: pl.DataFrame, dem: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows of ``dem`` (default: the demand rows that may split) with units ``plan`` leaves unplaced, the units
    left as ``q``: ``(d, o, q, sc)`` by d."""
    dem = p.dem.filter(~pl.col("sc")) if dem is None else dem
    got = plan.pipe(_at, p, "d").group_by("d").agg(pl.col("x").sum().alias("s"))
    return (dem.join(got, on="d", how="left")
            .with_columns((pl.col("q") - pl.col("s").fill_null(0)).alias("q")).filter(pl.col("q") > 0)
            .select("d", "o", "q", "sc").sort("d"))


def _label_repaired(final: pl.DataFrame, flow_plan: pl.DataFrame) -> pl.DataFrame:
    """``final`` with column ``solver``: rows exactly as in the flow's plan say ``min_cost_flow``, the others
    ``min_cost_flow+repair``."""
    unchanged = final.join(flow_plan, on=["i", "x"], how="semi")
    return pl.concat([unchanged.with_columns(pl.lit("min_cost_flow").alias("solver")),
                      final.join(flow_plan, on=["i", "x"], how="anti")
                      .with_columns(pl.lit("min_cost_flow+repair").alias("solver"))])
