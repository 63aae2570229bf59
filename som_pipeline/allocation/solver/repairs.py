"""Repairs: the passes that make a flow plan obey the rules a flow cannot express (carrier capacity, lines basis,
ship-complete, split orders, relocation), the rule check (:func:`violations`) and the final trim
(:func:`enforce`). Each pass takes a plan ``(i, x)`` and returns a new one; the order in which they run is in
:mod:`~.strategy`.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from som_pipeline.allocation.solver.bookkeeping import (
    _aggregate,
    _at,
    _ix,
    _ranges,
    extra_shipments,
    group_cumsum,
    wh_bits,
)
from som_pipeline.allocation.solver.problem import UNLIMITED, Problem


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


def _over_parcels(p: Problem, plan: pl.DataFrame) -> int:
    u = plan.pipe(_at, p, "k", "parcels")
    load = np.zeros(len(p.parcels), dtype=np.int64)
    np.add.at(load, u["k"].to_numpy(), u["parcels"].to_numpy())
    return int((load > p.parcels).sum())
