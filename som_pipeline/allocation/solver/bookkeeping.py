"""Plan bookkeeping: vectorised numpy helpers over a plan ``(i, x)`` of a :class:`~.problem.Problem` -- its
warehouses per order, extra shipments, cost and objective, usage of the residual resources, running sums per key
and index ranges. Pure array arithmetic shared by every solver and repair; no solving or decisions here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from som_pipeline.allocation.solver.problem import Problem


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
