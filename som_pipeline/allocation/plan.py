"""``allocate``: approved reservations -> allocation rows, backorders and metrics. Pure: frames in, frames out.

Steps
1. Demand (:func:`~som_pipeline.allocation.options.build_demand`) and options with per-unit costs
   (:func:`~som_pipeline.allocation.options.build_options`).
2. Previous (open) allocations: a line keeps its rows unless (first reason wins) an active ``closed`` or
   ``degraded`` disruption covers one of them (-> ``rerouted: <id>: <note>``), its option is no longer offered
   (warehouse / carrier inactive, zone or rate gone), its reserved quantity changed, or the warehouse's stock
   snapshot no longer covers it (rows allocated last are released first). A ship-complete order is re-planned
   whole when any of its lines is. Rows of lines no longer approved/reserved are dropped. Kept rows are
   returned unchanged and consume stock, capacity and parcels first.
3. The optimiser (:mod:`~som_pipeline.allocation.solver`) plans the released and new units on what is left.
4. Rows: cost components, explanation, next best warehouse; backorders with reasons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from som_pipeline.allocation.config import SCALE, AllocationConfig
from som_pipeline.allocation.options import (
    Frame,
    Options,
    active_disruptions,
    build_demand,
    build_options,
    disruption_effects,
    eager,
)
from som_pipeline.allocation.solver import Problem, SolveReport, plan_cost, solve
from som_pipeline.money import cents_to_money
from som_pipeline.schemas import AllocationModel, BackorderModel, conform, polars_schema

ALLOCATION_SCHEMA = polars_schema(AllocationModel)
BACKORDER_SCHEMA = polars_schema(BackorderModel)


@dataclass(frozen=True)
class AllocationResult:
    """``allocations`` (AllocationModel: kept rows + new rows), ``backorders`` (BackorderModel), ``metrics``;
    ``parcels``: per ``warehouse_id, carrier_id, service`` the parcels of the allocation rows (what they take of
    the carrier capacity: a caller planning in parts passes them on as backlog)."""

    allocations: pl.DataFrame
    backorders: pl.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)
    parcels: pl.DataFrame | None = None


def e4_to_cents(v: pl.Expr) -> pl.Expr:
    """Round 1/10,000 units to cents, half away from zero (the money rule), once."""
    return pl.when(v >= 0).then((v + 50) // 100).otherwise(-((-v + 50) // 100))


def _fmt_money(cents: pl.Expr, signed: bool = False) -> pl.Expr:
    a = cents.abs()
    body = pl.format("{}.{}", a // 100, (a % 100).cast(pl.String).str.zfill(2))
    if not signed:
        return pl.when(cents < 0).then(pl.concat_str([pl.lit("-"), body])).otherwise(body)
    return pl.when(cents < 0).then(pl.concat_str([pl.lit("-"), body])).otherwise(pl.concat_str([pl.lit("+"), body]))


def _backlog(keys: pl.DataFrame, cfg: AllocationConfig, frame: Frame | None) -> pl.DataFrame:
    """Per (warehouse_id, carrier_id, service): parcels already committed (most specific key wins)."""
    table = dict(cfg.carrier_backlog_parcels)
    if frame is not None:
        for r in eager(frame).iter_rows(named=True):  # a handful of rows
            key = r["carrier_id"] + (f":{r['service']}" if r.get("service") else "")
            key += f"@{r['warehouse_id']}" if r.get("warehouse_id") else ""
            table[key] = int(r["backlog_parcels"])
    if not table:
        return keys.with_columns(pl.lit(0, pl.Int64).alias("_backlog"))
    t = pl.DataFrame({"_key": list(table), "_v": list(table.values())}, schema={"_key": pl.String, "_v": pl.Int64})
    k = keys.with_columns(
        pl.concat_str([pl.col("carrier_id"), pl.lit(":"), pl.col("service"), pl.lit("@"), pl.col("warehouse_id")]).alias("_k1"),
        pl.concat_str([pl.col("carrier_id"), pl.lit(":"), pl.col("service")]).alias("_k2"),
        pl.concat_str([pl.col("carrier_id"), pl.lit("@"), pl.col("warehouse_id")]).alias("_k3"),
        pl.col("carrier_id").alias("_k4"))
    for i in (1, 2, 3, 4):
        k = k.join(t.rename({"_key": f"_k{i}", "_v": f"_v{i}"}), on=f"_k{i}", how="left")
    return k.select(*keys.columns, pl.coalesce("_v1", "_v2", "_v3", "_v4", pl.lit(0)).cast(pl.Int64).alias("_backlog"))


@dataclass(frozen=True, kw_only=True, eq=False)
class AllocationInputs:
    """The frames :func:`allocate` reads (any may be lazy), by keyword.

    Required: ``core.orders``, ``core.order_lines`` (``lines``), ``core.reservations`` and the ``ref.*`` tables.
    Optional: ``disruptions`` (``ref.disruptions``); ``previous_allocations``: the *open* allocations of the last
    run; ``customers``: a customer's ``ship_complete`` default applies to its orders, as in validation;
    ``previous_backorders``: keeps ``since`` of units still waiting; ``carrier_backlog``: ``carrier_id, service
    (null = all), warehouse_id (null = all), backlog_parcels``.
    """

    orders: Frame
    lines: Frame
    reservations: Frame
    warehouses: Frame
    inventory: Frame
    products: Frame
    carriers: Frame
    carrier_rates: Frame
    shipping_zones: Frame
    disruptions: Frame | None = None
    previous_allocations: Frame | None = None
    customers: Frame | None = None
    previous_backorders: Frame | None = None
    carrier_backlog: Frame | None = None


def allocate(inputs: AllocationInputs, *, now: datetime, config: AllocationConfig | None = None) -> AllocationResult:
    """Route every approved, reserved unit to a warehouse and carrier service at the lowest total cost within
    the rules (see the package doc and ``docs/allocation.md``).

    ``inputs``: the frames (:class:`AllocationInputs`). ``now``: the run's time (timezone-aware). ``config``:
    the model's parameters (default ``AllocationConfig()``).
    """
    cfg = config or AllocationConfig()
    if now.tzinfo is None:
        raise ValueError("allocate: now must be timezone-aware")
    now = now.astimezone(UTC)
    t0 = time.perf_counter()
    secs: dict[str, float] = {}
    active = active_disruptions(inputs.disruptions, now)
    dem, waiting = build_demand(inputs.orders, inputs.lines, inputs.reservations, inputs.products,
                                 inputs.customers, cfg)
    options = build_options(dem, inputs.warehouses, inputs.inventory, inputs.carriers, inputs.carrier_rates,
                            inputs.shipping_zones, active, now, cfg, top_k=max(1, cfg.mip_services_per_option))
    best, whs, svcs = options.best, options.warehouses, options.services
    if whs.height > 62:
        raise ValueError(f"allocate: {whs.height} active warehouses; at most 62 are supported (see docs/allocation.md)")
    secs["options"] = time.perf_counter() - t0
    inv = (eager(inputs.inventory).join(whs.select("warehouse_id", "wi"), on="warehouse_id")
           .select("wi", "sku", pl.col("on_hand").cast(pl.Int64)))
    P = cfg.e4(cfg.split_penalty_per_shipment)

    t1 = time.perf_counter()
    previous = inputs.previous_allocations
    prev = (conform(eager(previous), AllocationModel) if previous is not None
            else pl.DataFrame(schema=ALLOCATION_SCHEMA))
    kept, released, dropped_prev = _keep_or_release(prev, dem, options, active, inv)
    secs["previous"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    res = _residual_problem(dem, kept, options, inv, P, inputs.carrier_backlog, cfg)
    secs["prepare"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    assign, report = solve(res.problem, cfg)
    secs["solve"] = time.perf_counter() - t3

    t4 = time.perf_counter()
    new = _rows(assign, res.sopt, dem, released, kept, best, inv, whs, svcs, res.wcap, P, now, cfg)
    allocations, kept_out = _with_kept_rows(prev, kept, new)
    p_left = _parcels_left_after(res, assign)
    parcels = _parcels_used(res, p_left, whs, svcs)
    backorders = _backorders(dem, waiting, allocations, options.diag, best, whs, p_left, inputs.previous_backorders,
                             now, cfg)
    secs["rows"] = time.perf_counter() - t4
    secs["total"] = time.perf_counter() - t0
    metrics = _metrics(dem, allocations, backorders, kept_out, new, prev.height - dropped_prev - kept.height,
                       dropped_prev, report, res.problem, assign, secs, cfg)
    return AllocationResult(allocations=allocations, backorders=backorders, metrics=metrics, parcels=parcels)


@dataclass(frozen=True)
class _Residual:
    """What the optimiser plans on: ``problem`` (residual stock, capacity and parcels after the kept rows),
    ``sopt`` (its options with every column of ``Options.best``; ``i`` = row), ``wcap`` (per warehouse: capacity
    left) and ``parcels_left`` (per carrier resource ``k``)."""

    problem: Problem
    sopt: pl.DataFrame
    wcap: pl.DataFrame
    parcels_left: np.ndarray
    kept_parcels: np.ndarray


def _residual_problem(dem: pl.DataFrame, kept: pl.DataFrame, options: Options, inv: pl.DataFrame, P: int,
                      carrier_backlog: Frame | None, cfg: AllocationConfig) -> _Residual:
    """The residual resources after the kept rows and the indexed :class:`Problem` of the rows still to plan."""
    best, whs, svcs = options.best, options.warehouses, options.services
    n_si = max(1, svcs.height)
    n_d, n_w = dem.height, whs.height
    sku_codes = dem.select("sku").unique().sort("sku").with_row_index("_s").with_columns(pl.col("_s").cast(pl.Int64))
    n_sku = max(1, sku_codes.height)
    d_sku = dem.join(sku_codes, on="sku", how="left", maintain_order="left")["_s"].to_numpy()  # dem is sorted by d
    d_o = dem["o"].to_numpy()
    inv_c = inv.join(sku_codes, on="sku", how="inner")
    stock2d = np.zeros((max(1, n_w), n_sku), dtype=np.int64)
    stock2d[inv_c["wi"].to_numpy(), inv_c["_s"].to_numpy()] = inv_c["on_hand"].to_numpy()
    if kept.height:
        np.subtract.at(stock2d, (kept["wi"].to_numpy(), d_sku[kept["d"].to_numpy()]), kept["quantity"].to_numpy())
    np.maximum(stock2d, 0, out=stock2d)
    todo_mask = np.ones(n_d, dtype=bool)
    todo_mask[kept["d"].to_numpy()] = False
    todo = dem.filter(pl.Series(todo_mask[dem["d"].to_numpy()])) if kept.height else dem
    kept_w = kept.group_by("wi").agg(pl.col("quantity").sum().alias("_units"), pl.len().alias("_lines"))
    wcap = (whs.select("wi", "warehouse_id", "daily_capacity_lines").join(kept_w, on="wi", how="left")
            .with_columns((pl.col("daily_capacity_lines")
                           - pl.col("_units" if cfg.capacity_basis == "units" else "_lines").fill_null(0))
                          .clip(lower_bound=0).alias("_cap_left")).sort("wi"))
    ks = (whs.select("wi", "warehouse_id").join(svcs.select("si", "carrier_id", "service", "daily_capacity_parcels"),
                                                 how="cross")
          .with_columns((pl.col("wi") * n_si + pl.col("si")).alias("k")))
    ks = _backlog(ks, cfg, carrier_backlog)
    kept_p = (kept.join(best.join(kept.select("d").unique(), on="d", how="semi").select("d", "wi", "si", "parcels"),
                        on=["d", "wi", "si"], how="left")
              .with_columns((pl.col("wi") * n_si + pl.col("si")).alias("k"))
              .group_by("k").agg(pl.col("parcels").fill_null(1).sum().alias("_kp")))
    ks = (ks.join(kept_p, on="k", how="left")
          .with_columns((pl.col("daily_capacity_parcels") - pl.col("_backlog") - pl.col("_kp").fill_null(0))
                        .clip(lower_bound=0).alias("_parcels_left")).sort("k"))
    parcels_left = np.zeros(whs.height * n_si, dtype=np.int64)
    parcels_left[ks["k"].to_numpy()] = ks["_parcels_left"].to_numpy()
    kept_parcels = np.zeros(whs.height * n_si, dtype=np.int64)
    kept_parcels[ks["k"].to_numpy()] = ks["_kp"].fill_null(0).to_numpy()
    bd, bw = best["d"].to_numpy(), best["wi"].to_numpy()
    bs = d_sku[bd]
    m = (stock2d[bw, bs] > 0) & todo_mask[bd]
    r_key = (bw * n_sku + bs)[m]  # stock resources: the (warehouse, SKU) pairs the options use, numbered densely
    present = np.zeros(max(1, n_w) * n_sku, dtype=bool)
    present[r_key] = True
    used_r = np.flatnonzero(present)
    r_idx = (np.cumsum(present) - 1)[r_key]
    sopt = best.filter(pl.Series(m)).with_columns(
        pl.Series("r", r_idx.astype(np.int64)), pl.Series("o", d_o[bd[m]]),
        pl.Series("i", np.arange(int(m.sum()), dtype=np.int64)))
    kept_wo = kept.select("o", "wi").unique()
    problem = Problem(dem=todo.select("d", "o", "q", "sc"),
                      opts=sopt.select("i", "d", "o", "wi", "r", "k", "unit", "parcels", "rank"),
                      stock=stock2d.ravel()[used_r].astype(np.int64),
                      cap=wcap["_cap_left"].to_numpy().astype(np.int64),
                      parcels=parcels_left, kept=kept_wo, split_penalty=P, basis=cfg.capacity_basis)
    return _Residual(problem=problem, sopt=sopt, wcap=wcap, parcels_left=parcels_left, kept_parcels=kept_parcels)


def _with_kept_rows(prev: pl.DataFrame, kept: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(allocations: the kept previous rows + the new rows, kept previous rows)``."""
    kept_out = prev.join(kept.select("order_id", "line_no", "sku", "warehouse_id"),
                         on=["order_id", "line_no", "sku", "warehouse_id"], how="semi")
    allocations = (pl.concat([conform(kept_out, AllocationModel), new])
                   .sort(["order_id", "line_no", "sku", "warehouse_id"]))
    return allocations, kept_out


def _parcels_left_after(res: _Residual, assign: pl.DataFrame) -> pl.DataFrame:
    """Parcels left per (warehouse, service) ``k`` after the plan: to say "no carrier capacity" in backorder
    reasons."""
    parcels_left, problem = res.parcels_left, res.problem
    a_i = assign["i"].to_numpy()
    new_p = np.bincount(problem.col["k"][a_i], weights=problem.col["parcels"][a_i], minlength=len(parcels_left))
    return pl.DataFrame({"k": np.arange(len(parcels_left), dtype=np.int64),
                         "_p_left": parcels_left - new_p.astype(np.int64)})


def _parcels_used(res: _Residual, p_left: pl.DataFrame, whs: pl.DataFrame, svcs: pl.DataFrame) -> pl.DataFrame:
    """Per (warehouse, carrier service) with any: the parcels of the kept and the new rows."""
    n_si = max(1, svcs.height)
    used = res.kept_parcels + res.parcels_left - p_left.sort("k")["_p_left"].to_numpy()
    k = np.flatnonzero(used > 0)
    return (pl.DataFrame({"wi": k // n_si, "si": k % n_si, "parcels": used[k]},
                         schema={"wi": pl.Int64, "si": pl.Int64, "parcels": pl.Int64})
            .join(whs.select("wi", "warehouse_id"), on="wi").join(svcs.select("si", "carrier_id", "service"), on="si")
            .select("warehouse_id", "carrier_id", "service", "parcels").sort("warehouse_id", "carrier_id", "service"))


def carrier_backlog(cfg: AllocationConfig, keys: pl.DataFrame, more: pl.DataFrame) -> pl.DataFrame:
    """A ``carrier_backlog`` input for :class:`AllocationInputs`: per ``keys`` row (``warehouse_id, carrier_id,
    service``) the configured backlog plus the parcels in ``more`` (same keys, ``parcels``) -- e.g. what an
    earlier part of the same run took."""
    k = keys.select("warehouse_id", "carrier_id", "service").unique()
    return (_backlog(k, cfg, None).join(more, on=["warehouse_id", "carrier_id", "service"], how="left")
            .select("carrier_id", "service", "warehouse_id",
                    (pl.col("_backlog") + pl.col("parcels").fill_null(0)).alias("backlog_parcels")))


def _keep_or_release(prev: pl.DataFrame, dem: pl.DataFrame, options: Options, active: pl.DataFrame,
              inv: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """``(kept rows, released demand rows with reasons, previous rows dropped)`` -- see the module doc."""
    rel_schema = {"d": pl.Int64, "release_reason": pl.String, "prev_warehouse": pl.String, "prev_carrier": pl.String,
                  "prev_service": pl.String, "_degraded_only": pl.Boolean}
    kept_schema = {"d": pl.Int64, "o": pl.Int64, "wi": pl.Int64, "si": pl.Int64, "sku": pl.String,
                   "quantity": pl.Int64, "order_id": pl.String, "line_no": pl.Int64, "warehouse_id": pl.String}
    if prev.height == 0:
        return pl.DataFrame(schema=kept_schema), pl.DataFrame(schema=rel_schema), 0
    whs, svcs = options.warehouses, options.services
    pj = prev.join(dem.select("order_id", "line_no", "sku", "d", "o", "q", "sc", "country", "region", "hazmat"),
                   on=["order_id", "line_no", "sku"], how="inner")
    dropped = prev.height - pj.height
    keys = pj.select("warehouse_id", "carrier_id", "service", "country", "region").unique()
    up = pl.col("target").str.to_uppercase()
    hit = disruption_effects(
        active, keys,
        ((pl.col("scope") == "warehouse") & (pl.col("target") == pl.col("warehouse_id")))
        | ((pl.col("scope") == "carrier") & ((pl.col("target") == pl.col("carrier_id"))
                                             | (pl.col("target") == pl.concat_str(["carrier_id", pl.lit(":"), "service"]))))
        | ((pl.col("scope") == "region") & ((up == pl.col("country"))
                                            | (up == pl.concat_str(["country", pl.lit("-"), "region"]))
                                            | (up == pl.concat_str(["country", pl.lit(":"), "region"])))))
    offered = (options.dest_zones.filter(pl.col("_dest_closed").is_null()).select("country", "region", "wi", "zone")
               .join(options.offered, on=["wi", "zone"])
               .select("country", "region", "wi", "si", pl.col("mode"), pl.lit(True).alias("_offered")))
    pj = (pj.join(hit, on=["warehouse_id", "carrier_id", "service", "country", "region"], how="left", nulls_equal=True)
          .join(whs.select("warehouse_id", "wi"), on="warehouse_id", how="left")
          .join(svcs.select("carrier_id", "service", "si"), on=["carrier_id", "service"], how="left")
          .join(offered, on=["country", "region", "wi", "si"], how="left", nulls_equal=True)
          .join(inv, on=["wi", "sku"], how="left")
          .with_columns(pl.col("on_hand").fill_null(0),
                        (pl.col("_offered").fill_null(False) & ~(pl.col("hazmat") & (pl.col("mode") == "air")))
                        .alias("_offered"),
                        pl.col("quantity").sum().over("d").alias("_prev_q"))
          .sort(["allocated_at", "d", "warehouse_id"])
          .with_columns(pl.col("quantity").cum_sum().over(["warehouse_id", "sku"]).alias("_cum_stock")))
    prio = (pl.when(pl.col("_closed_by").is_not_null()).then(0)
            .when(pl.col("_degraded_by").is_not_null()).then(1)
            .when(~pl.col("_offered")).then(2)
            .when(pl.col("_prev_q") != pl.col("q")).then(3)
            .when(pl.col("_cum_stock") > pl.col("on_hand")).then(4))
    why = (pl.when(pl.col("_prio") == 0).then(pl.concat_str([pl.lit("rerouted: "), pl.col("_closed_by")]))
           .when(pl.col("_prio") == 1).then(pl.concat_str([pl.lit("rerouted: "), pl.col("_degraded_by")]))
           .when(pl.col("_prio") == 2).then(pl.lit("reallocated: option no longer available (warehouse, carrier, zone or rate)"))
           .when(pl.col("_prio") == 3).then(pl.format("reallocated: reservation changed ({} -> {} units)", "_prev_q", "q"))
           .when(pl.col("_prio") == 4).then(pl.format("reallocated: stock at {} below its open allocations", "warehouse_id")))
    pj = pj.with_columns(prio.alias("_prio")).with_columns(why.alias("_why"))
    rel = (pj.filter(pl.col("_why").is_not_null()).sort(["_prio", "warehouse_id"])
           .group_by("d", maintain_order=True)
           .agg(pl.col("_why").first().alias("release_reason"), pl.col("warehouse_id").first().alias("prev_warehouse"),
                pl.col("carrier_id").first().alias("prev_carrier"), pl.col("service").first().alias("prev_service"),
                (pl.col("_prio") == 1).first().alias("_degraded_only")))
    # ship-complete orders are re-planned whole when any line is released or has no kept rows
    covered = pj.select("d").unique()
    sc_dem = dem.filter(pl.col("sc"))
    touched = pl.concat([rel.join(dem.select("d", "o"), on="d").select("o"),
                         sc_dem.join(covered, on="d", how="anti").select("o")]).unique()
    first = pj.sort(["d", "warehouse_id"]).group_by("d", maintain_order=True).agg(
        pl.col("warehouse_id").first().alias("prev_warehouse"), pl.col("carrier_id").first().alias("prev_carrier"),
        pl.col("service").first().alias("prev_service"))
    sc_rel = (sc_dem.join(touched, on="o", how="semi").join(covered, on="d", how="semi")
              .join(rel.select("d"), on="d", how="anti")
              .select("d", pl.lit("reallocated: ship-complete order re-planned").alias("release_reason"))
              .join(first, on="d").with_columns(pl.lit(False).alias("_degraded_only")))
    rel = pl.concat([rel, sc_rel.select(rel.columns)], how="vertical_relaxed").cast(rel_schema)
    kept = pj.join(rel.select("d"), on="d", how="anti").select(*kept_schema).cast(kept_schema)
    return kept, rel, dropped


def _rows(assign: pl.DataFrame, sopt: pl.DataFrame, dem: pl.DataFrame, released: pl.DataFrame,
          kept: pl.DataFrame, best: pl.DataFrame, inv: pl.DataFrame, whs: pl.DataFrame, svcs: pl.DataFrame,
          wcap: pl.DataFrame, P: int, now: datetime, cfg: AllocationConfig) -> pl.DataFrame:
    """The new allocation rows (AllocationModel) of the plan ``assign``: cost components, next best warehouse,
    explanation and reason."""
    if assign.height == 0:
        return pl.DataFrame(schema=ALLOCATION_SCHEMA)
    a = (pl.concat([assign, sopt.drop("i", "o")[assign["i"].to_numpy()]], how="horizontal")  # i: row of sopt
         .join(dem.select("d", "o", "order_id", "line_no", "sku", "sc", "promised"), on="d")
         .join(released, on="d", how="left")
         .join(whs.select("wi", "warehouse_id"), on="wi")
         .join(svcs.select("si", "carrier_id", "service"), on="si")
         .rename({"x": "quantity"}))
    a = _costs(a, kept, P)
    a = _next_best(a, best, dem, whs)
    a = _explain(a, kept, inv, wcap, cfg)
    out = a.select(
        "order_id", "line_no", "sku", "warehouse_id", pl.col("quantity").cast(pl.Int64), "carrier_id", "service",
        pl.col("ship_date").alias("expected_ship_date"), pl.col("delivery").alias("expected_delivery_date"),
        pl.col("promised").alias("promised_date"),
        cents_to_money(pl.col("_ship_c")).alias("shipping_cost"), cents_to_money(pl.col("_hand_c")).alias("handling_cost"),
        cents_to_money(pl.col("_late_c")).alias("lateness_penalty"), cents_to_money(pl.col("_split_c")).alias("split_penalty"),
        cents_to_money(pl.col("_total_c")).alias("total_cost"), "solver", "explanation", "next_best_warehouse",
        cents_to_money(pl.col("_nb_c")).alias("next_best_cost"), "reason",
        pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("allocated_at"))
    return conform(out, AllocationModel)


def _costs(a: pl.DataFrame, kept: pl.DataFrame, P: int) -> pl.DataFrame:
    """Rows with their split penalty (``split_u``) and cost components in cents, each rounded once."""
    # split penalty: one per extra shipment, on the first row (line order) of that shipment
    kept_w = kept.select("o", "wi").unique().with_columns(pl.lit(True).alias("_kept_w"))
    ship = (a.group_by("o", "wi").agg(pl.col("quantity").sum().alias("_u"), pl.col("d").min().alias("_first_d"))
            .join(kept_w, on=["o", "wi"], how="left")
            .join(kept_w.group_by("o").agg(pl.len().alias("_nk")), on="o", how="left")
            .with_columns(pl.col("_kept_w").fill_null(False), pl.col("_nk").fill_null(0))
            .sort(["o", "_u", "wi"], descending=[False, True, False])
            .with_columns(pl.when(pl.col("_nk") > 0).then(~pl.col("_kept_w"))
                          .otherwise(~pl.col("o").is_first_distinct()).alias("_extra")))
    a = (a.join(ship.select("o", "wi", "_first_d", "_extra"), on=["o", "wi"])
         .with_columns(pl.when(pl.col("_extra") & (pl.col("d") == pl.col("_first_d"))).then(P).otherwise(0)
                       .alias("split_u")))
    a = a.with_columns(e4_to_cents(pl.col("quantity") * pl.col("ship_u")).alias("_ship_c"),
                       e4_to_cents(pl.col("quantity") * pl.col("hand_u")).alias("_hand_c"),
                       e4_to_cents(pl.col("quantity") * pl.col("late_u")).alias("_late_c"),
                       e4_to_cents(pl.col("split_u")).alias("_split_c"))
    a = a.with_columns((pl.col("_ship_c") + pl.col("_hand_c") + pl.col("_late_c") + pl.col("_split_c")).alias("_total_c"))
    return a


def _next_best(a: pl.DataFrame, best: pl.DataFrame, dem: pl.DataFrame, whs: pl.DataFrame) -> pl.DataFrame:
    """Rows with the next best warehouse and its cost, and the cheapest warehouse overall (``_best_w``)."""
    # per (row, warehouse holding the SKU) its cheapest service: next best and the cheapest overall
    # dense (row, warehouse) arrays: cheapest service's unit cost (inf = none) and the warehouse's stock
    b0 = best.filter(pl.col("rank") == 0)
    n_w = whs.height
    inf = np.iinfo(np.int64).max
    unit2 = np.full((int(dem["d"].max()) + 1, n_w), inf, dtype=np.int64)
    on_hand2 = np.zeros(unit2.shape, dtype=np.int64)
    unit2[b0["d"].to_numpy(), b0["wi"].to_numpy()] = b0["unit"].to_numpy()
    on_hand2[b0["d"].to_numpy(), b0["wi"].to_numpy()] = b0["on_hand"].to_numpy()
    d_a, w_a, q_a = a["d"].to_numpy(), a["wi"].to_numpy(), a["quantity"].to_numpy()
    u_a = unit2[d_a]
    other = ((np.arange(n_w)[None, :] != w_a[:, None]) & (on_hand2[d_a] >= q_a[:, None]) & (u_a < inf))
    nb_w = np.where(other, u_a, inf).argmin(axis=1)  # ties: lowest warehouse index
    has_nb = other.any(axis=1)
    nb_e4 = np.where(has_nb, q_a * np.where(has_nb, u_a[np.arange(len(d_a)), nb_w], 0), 0)
    low_w = u_a.argmin(axis=1)
    has_low = (u_a < inf).any(axis=1)
    wh_id = whs.sort("wi")["warehouse_id"]
    a = a.with_columns(
        pl.Series("next_best_warehouse", wh_id.gather(nb_w)).set(pl.Series(~has_nb), None),
        pl.when(pl.Series(has_nb)).then(e4_to_cents(pl.Series(nb_e4))).alias("_nb_c"),
        pl.Series("_best_w", wh_id.gather(low_w)).set(pl.Series(~has_low), None),
        pl.when(pl.Series(has_low)).then(pl.Series(low_w)).alias("_best_wi"))
    return a


def _explain(a: pl.DataFrame, kept: pl.DataFrame, inv: pl.DataFrame, wcap: pl.DataFrame,
             cfg: AllocationConfig) -> pl.DataFrame:
    """Rows with their ``explanation`` and ``reason``."""
    # why not the cheapest warehouse: no stock left / at capacity / ship-complete / consolidation / carriers
    used_stock = (pl.concat([kept.select("wi", "sku", "quantity"), a.select("wi", "sku", "quantity")])
                  .group_by("wi", "sku").agg(pl.col("quantity").sum().alias("_used"))
                  .join(inv, on=["wi", "sku"], how="left"))
    oos = used_stock.filter(pl.col("_used") >= pl.col("on_hand")).select(
        pl.col("wi").alias("_best_wi"), "sku", pl.lit(True).alias("_best_oos"))
    use_w = (pl.concat([kept.select("wi", "quantity"), a.select("wi", "quantity")])
             .group_by("wi").agg((pl.col("quantity").sum() if cfg.capacity_basis == "units" else pl.len()).alias("_wused")))
    full = (wcap.select("wi", "daily_capacity_lines").join(use_w, on="wi", how="left")
            .filter(pl.col("_wused").fill_null(0) >= pl.col("daily_capacity_lines"))
            .select(pl.col("wi").alias("_best_wi"), pl.lit(True).alias("_best_full")))
    order_rows = a.group_by("o").agg(pl.col("d").n_unique().alias("_n_d"))
    a = (a.join(oos, on=["_best_wi", "sku"], how="left").join(full, on="_best_wi", how="left")
         .join(order_rows, on="o", how="left")
         .with_columns(pl.col("_best_oos").fill_null(False), pl.col("_best_full").fill_null(False)))
    late = pl.when(pl.col("days_late") > 0).then(pl.format(", {} day(s) late", "days_late")).otherwise(pl.lit(""))
    detail = pl.format("({} {}, zone {}, {} days{})", "carrier_id", "service", "zone", "transit_eff", late)
    why = (pl.when(pl.col("_best_wi").is_null() | (pl.col("_best_wi") == pl.col("wi")))
           .then(pl.when(pl.col("rank") > 0).then(pl.lit("cheapest warehouse; cheaper services at carrier capacity"))
                 .when(pl.col("days_late") == 0).then(pl.lit("cheapest on-time option"))
                 .otherwise(pl.lit("cheapest option")))
           .when(pl.col("_best_oos")).then(pl.format("{} (cheaper) has no stock left", "_best_w"))
           .when(pl.col("_best_full")).then(pl.format("{} (cheaper) is at capacity: work shed here", "_best_w"))
           .when(pl.col("sc")).then(pl.lit("ships complete from one warehouse"))
           .when(pl.col("_n_d") > 1).then(pl.format("ships with the order's other lines (a split via {} costs more)",
                                                    "_best_w"))
           .otherwise(pl.format("{} (cheaper) has no carrier capacity left", "_best_w")))
    nb = (pl.when(pl.col("next_best_warehouse").is_null()).then(pl.lit("; no other warehouse could ship these units"))
          .otherwise(pl.concat_str([pl.lit("; next best "), pl.col("next_best_warehouse"), pl.lit(" "),
                                    _fmt_money(pl.col("_nb_c") - pl.col("_total_c"), signed=True)])))
    rer = (pl.when(pl.col("release_reason").is_not_null())
           .then(pl.format("{} (was {} {} {}); ", "release_reason", "prev_warehouse", "prev_carrier", "prev_service"))
           .otherwise(pl.lit("")))
    same = ((pl.col("prev_warehouse") == pl.col("warehouse_id")) & (pl.col("prev_carrier") == pl.col("carrier_id"))
            & (pl.col("prev_service") == pl.col("service")))
    reason = (pl.when(pl.col("release_reason").is_null()).then(pl.lit("initial"))
              .when(pl.col("_degraded_only").fill_null(False) & same)
              .then(pl.concat_str([pl.lit("re-planned, still the best option after "),
                                   pl.col("release_reason").str.strip_prefix("rerouted: ")]))
              .otherwise(pl.col("release_reason")))
    a = a.with_columns(
        pl.concat_str([rer, pl.col("warehouse_id"), pl.lit(": "), why, pl.lit(" "), detail, nb]).alias("explanation"),
        reason.alias("reason"))
    return a


def _backorders(dem: pl.DataFrame, waiting: pl.DataFrame, allocations: pl.DataFrame, diag: pl.DataFrame,
                best: pl.DataFrame, whs: pl.DataFrame, p_left: pl.DataFrame, previous: Frame | None,
                now: datetime, cfg: AllocationConfig) -> pl.DataFrame:
    waits = waiting.select(
        "order_id", "line_no", "sku",
        pl.when(pl.col("decision") == "WAIT_SHIP_COMPLETE").then(pl.col("quantity_requested"))
        .otherwise(pl.col("quantity_backordered")).cast(pl.Int64).alias("quantity"),
        pl.when(pl.col("decision") == "WAIT_SHIP_COMPLETE")
        .then(pl.lit("ship-complete order waiting until every line is in stock (validation: WAIT_SHIP_COMPLETE)"))
        .otherwise(pl.format("no stock after reservations (validation: {})", "decision")).alias("reason"))
    got = allocations.group_by("order_id", "line_no", "sku").agg(pl.col("quantity").sum().alias("_got"))
    short = (dem.join(got, on=["order_id", "line_no", "sku"], how="left")
             .with_columns((pl.col("q") - pl.col("_got").fill_null(0)).alias("quantity"))
             .filter(pl.col("quantity") > 0)
             .join(diag, on="d", how="left"))
    # per warehouse holding the SKU: why it did not ship these units
    used_w = allocations.group_by("warehouse_id").agg(
        (pl.col("quantity").sum() if cfg.capacity_basis == "units" else pl.len()).alias("_wused"))
    used_ws = allocations.group_by("warehouse_id", "sku").agg(pl.col("quantity").sum().alias("_sused"))
    no_carrier = (best.join(short.select("d"), on="d", how="semi").join(p_left, on="k", how="left")
                  .group_by("d", "wi").agg((pl.col("parcels") > pl.col("_p_left").fill_null(0)).all().alias("_nc")))
    stocked = (best.filter(pl.col("rank") == 0).join(short.select("d", "sku"), on="d", how="inner")
               .join(no_carrier, on=["d", "wi"], how="left")
               .join(whs.select("wi", "warehouse_id", "daily_capacity_lines"), on="wi")
               .join(used_w, on="warehouse_id", how="left").join(used_ws, on=["warehouse_id", "sku"], how="left")
               .with_columns(pl.when(pl.col("_wused").fill_null(0) >= pl.col("daily_capacity_lines"))
                             .then(pl.concat_str([pl.col("warehouse_id"), pl.lit(" at capacity")]))
                             .when(pl.col("_sused").fill_null(0) >= pl.col("on_hand"))
                             .then(pl.concat_str([pl.col("warehouse_id"), pl.lit(" out of stock")]))
                             .when(pl.col("_nc").fill_null(False))
                             .then(pl.concat_str([pl.col("warehouse_id"), pl.lit(" has no carrier capacity left")]))
                             .otherwise(pl.concat_str([pl.col("warehouse_id"),
                                                       pl.lit(" not chosen by the plan")]))
                             .alias("_st"))
               .sort("d", "warehouse_id")
               .group_by("d").agg(pl.len().alias("_stocked"), pl.col("_st").alias("_ws")))
    dest = pl.concat_str([pl.col("country").fill_null("?"), pl.lit("/"), pl.col("region").fill_null("*")])
    short = short.join(stocked, on="d", how="left").with_columns(pl.col("_stocked").fill_null(0))
    reason = (pl.when(pl.col("weight_kg").is_null()).then(pl.lit("unknown product: no weight to route it"))
              .when(pl.col("country").is_null()).then(pl.lit("unreachable: the order has no ship-to country"))
              .when(pl.col("_zones") == 0).then(pl.concat_str([pl.lit("unreachable: no shipping zone from an active warehouse to "), dest]))
              .when(pl.col("_services") == 0).then(pl.concat_str([
                  pl.lit("unreachable: no active carrier service (rate for the zone and weight; no air for hazmat) to "), dest]))
              .when(pl.col("_open") == 0).then(pl.concat_str([pl.lit("unreachable: disruption "), pl.col("_closed_by")]))
              .when(pl.col("_stocked") == 0).then(pl.concat_str([pl.lit("no stock at a warehouse that can ship to "), dest]))
              .when(pl.col("sc")).then(pl.concat_str([
                  pl.lit("ship-complete: no single warehouse can ship the whole order now ("),
                  pl.col("_ws").list.join(", "), pl.lit(")")]))
              .otherwise(pl.concat_str([pl.lit("not allocated today: "), pl.col("_ws").list.join(", ")])))
    short = short.select("order_id", "line_no", "sku", "quantity", reason.alias("reason"))
    allb = (pl.concat([waits.filter(pl.col("quantity") > 0), short])
            .group_by("order_id", "line_no", "sku", maintain_order=True)
            .agg(pl.col("quantity").sum(), pl.col("reason").str.join("; ")))
    if previous is not None:
        pb = conform(eager(previous), BackorderModel).select("order_id", "line_no", "sku", pl.col("since").alias("_since"))
        allb = allb.join(pb, on=["order_id", "line_no", "sku"], how="left")
    else:
        allb = allb.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("_since"))
    allb = allb.with_columns(pl.coalesce(pl.col("_since"), pl.lit(now, dtype=pl.Datetime("us", "UTC"))).alias("since"))
    return conform(allb, BackorderModel).sort(["order_id", "line_no", "sku"])


def _metrics(dem: pl.DataFrame, allocations: pl.DataFrame, backorders: pl.DataFrame, kept_out: pl.DataFrame,
             new: pl.DataFrame, released_rows: int, dropped_prev: int, report: SolveReport, problem: Problem,
             assign: pl.DataFrame, secs: dict[str, float], cfg: AllocationConfig) -> dict[str, Any]:
    pc = plan_cost(problem, assign.select("i", "x"))
    money = Decimal(1) / SCALE
    by_solver = new.group_by("solver").agg(pl.len().alias("rows")).sort("solver")
    by_wh = allocations.group_by("warehouse_id").agg(pl.col("quantity").sum().alias("units"), pl.len().alias("rows"),
                                                      pl.col("total_cost").sum().alias("cost")).sort("warehouse_id")
    return {
        "demand_rows": dem.height,
        "demand_units": int(dem["q"].sum()) if dem.height else 0,
        "allocated_units": int(allocations["quantity"].sum()) if allocations.height else 0,
        "backordered_units": int(backorders["quantity"].sum()) if backorders.height else 0,
        "rows_kept": kept_out.height,
        "rows_new": new.height,
        "rows_released": released_rows,
        "rows_rerouted": new.filter(pl.col("reason").str.starts_with("rerouted")).height,
        "previous_rows_dropped": dropped_prev,
        "solver_path": report.path,
        "rows_by_solver": dict(by_solver.iter_rows()),
        "proven_optimal": report.proven_optimal,
        "lower_bound": None if report.lower_bound is None else Decimal(report.lower_bound) * money,
        "objective": Decimal(report.objective) * money,
        "plan_cost": Decimal(pc["cost"]) * money,
        "gap": (None if report.lower_bound is None else Decimal(report.objective - report.lower_bound) * money),
        "relaxation_unallocated_units": report.relaxation_unallocated,
        "unallocated_units": pc["unallocated"],
        "backorder_penalty_per_unit": Decimal(problem.big_m) * money,
        "extra_shipments": pc["extra_shipments"],
        "violations": report.violations,
        "repairs": report.repairs,
        "mip_status": report.mip_status,
        "total_cost": allocations["total_cost"].sum() if allocations.height else Decimal("0.00"),
        "by_warehouse": by_wh.to_dicts(),
        "seconds": {**secs, **{f"solve.{k}": v for k, v in report.seconds.items()}},
        "capacity_basis": cfg.capacity_basis,
    }
