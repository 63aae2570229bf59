"""Lower-bound helpers: what every order is forced to pay whatever the plan (fewest warehouses whose stock covers
it) and which ship-complete orders no single warehouse can serve -- the inputs of the certified relaxation bound.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from som_pipeline.allocation.solver.problem import Problem


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
