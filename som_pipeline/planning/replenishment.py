"""Replenishment: safety stock, reorder points, inter-warehouse transfers first, then purchase suggestions.

Per SKU x warehouse (docs/forecasting.md has the worked formulas):

- ``L`` = supplier lead time (config, per-category override); ``z`` = normal quantile of the service level;
  ``sigma`` = the chosen model's backtest RMSE per day (``sigma_daily``; without a backtest: sqrt of the mean
  daily forecast, a Poisson approximation); ``D(n)`` = forecast units over the first ``n`` days from today
  (beyond the forecast horizon: the mean of its last 7 days per extra day).
- safety stock ``SS = ceil(z x sigma x sqrt(L))``; reorder point ``ROP = ceil(D(L) + z x sigma x sqrt(L))``;
  order-up-to level ``S = ceil(D(L + coverage_days) + z x sigma x sqrt(L))``.
- available = on_hand - reserved, where active reservations (``core.reservations``: not expired at ``now``),
  which are network-wide per SKU, sit at the warehouse of their allocation when ``allocations`` are given, and
  are otherwise spread over the SKU's warehouses in proportion to on_hand (largest remainder, whole units).
- stock-out date: the first forecast day on which the cumulative forecast from today exceeds available.

Then, per SKU: warehouses with available < ROP need ``S - available``; warehouses with available > S have a
surplus of ``available - S``. Transfers come first, between warehouses of the same country
(``transfer_scope = "country"``; ``"network"``: any two): needs in order of urgency (earliest stock-out, bigger need,
warehouse id) are filled from surpluses in order of most days of cover (the lowest-demand stock first), a
greedy north-west-corner fill done with interval arithmetic on cumulative sums (no loops). What transfers
cannot cover becomes a purchase: when available + transfers in is still below ROP, order up to S (inactive
products are not purchased). Priority: earliest expected stock-out first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from som_pipeline.planning.config import ForecastConfig
from som_pipeline.schemas import ReplenishmentPlanModel, conform

_EPS = 1e-9


def _ceil(e: pl.Expr) -> pl.Expr:
    """Round up to whole units (a hair of float noise does not add a unit)."""
    return (e - _EPS).ceil().clip(lower_bound=0).cast(pl.Int64)


def _utc(now: datetime) -> datetime:
    """An aware UTC time (a naive one is taken as UTC)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def reserved_by_warehouse(reservations: pl.DataFrame | None, inventory: pl.DataFrame, now: datetime,
                          allocations: pl.DataFrame | None = None) -> pl.DataFrame:
    """``warehouse_id, sku, reserved``: active reservations attributed to warehouses (see module docstring)."""
    out_schema = {"warehouse_id": pl.String, "sku": pl.String, "reserved": pl.Int64}
    if reservations is None or reservations.height == 0:
        return pl.DataFrame(schema=out_schema)
    expires = pl.col("expires_at").dt.convert_time_zone("UTC")
    res = (reservations.filter((pl.col("quantity_reserved") > 0) & (expires.is_null() | (expires > _utc(now))))
           .group_by("order_id", "line_no", "sku").agg(pl.col("quantity_reserved").sum().cast(pl.Int64).alias("r")))
    parts = []
    if allocations is not None and allocations.height:
        alloc = (allocations.group_by("order_id", "line_no", "sku", "warehouse_id")
                 .agg(pl.col("quantity").sum().cast(pl.Int64).alias("a"))
                 .join(res.select("order_id", "line_no", "sku"), on=["order_id", "line_no", "sku"], how="semi"))
        parts.append(alloc.select("warehouse_id", "sku", pl.col("a").alias("reserved")))
        done = alloc.group_by("order_id", "line_no", "sku").agg(pl.col("a").sum())
        res = (res.join(done, on=["order_id", "line_no", "sku"], how="left")
               .with_columns((pl.col("r") - pl.col("a").fill_null(0)).clip(lower_bound=0).alias("r")))
    pool = res.group_by("sku").agg(pl.col("r").sum().alias("R")).filter(pl.col("R") > 0)
    inv = inventory.select("warehouse_id", "sku", pl.col("on_hand").cast(pl.Int64))
    w = (inv.join(pool, on="sku")
         .with_columns(pl.col("on_hand").sum().over("sku").alias("W"), pl.len().over("sku").alias("k"))
         .with_columns(pl.when(pl.col("W") > 0).then(pl.col("R") * pl.col("on_hand") / pl.col("W"))
                       .otherwise(pl.col("R") / pl.col("k")).alias("exact"))
         .with_columns(pl.col("exact").floor().cast(pl.Int64).alias("base"))
         .with_columns((pl.col("R") - pl.col("base").sum().over("sku")).alias("left"),
                       (pl.col("exact") - pl.col("base")).alias("frac"))
         .sort("sku", "frac", "warehouse_id", descending=[False, True, False])
         .with_columns(pl.int_range(pl.len()).over("sku").alias("pos"))
         .with_columns((pl.col("base") + (pl.col("pos") < pl.col("left")).cast(pl.Int64)).alias("reserved")))
    parts.append(w.select("warehouse_id", "sku", "reserved"))
    return (pl.concat(parts).group_by("warehouse_id", "sku").agg(pl.col("reserved").sum())
            .filter(pl.col("reserved") > 0).sort("warehouse_id", "sku"))


def stock_positions(forecast: pl.DataFrame, errors: pl.DataFrame | None, inventory: pl.DataFrame,
                    reservations: pl.DataFrame | None, warehouses: pl.DataFrame, products: pl.DataFrame,
                    cfg: ForecastConfig, now: datetime, allocations: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per active SKU x warehouse with its policy levels: ``sku, warehouse_id, category, product_active,
    on_hand, reserved, available, sigma, lead_time, z, d_lt, safety_stock, reorder_point, order_up_to,
    days_of_cover, stockout_date``."""
    today = now.date()
    lane = pl.col("country") if cfg.transfer_scope == "country" else pl.lit("*")
    wh = warehouses.filter(pl.col("active")).select("warehouse_id", lane.alias("lane"))
    prod = products.select("sku", "category", pl.col("active").alias("product_active"))
    fc = (forecast.filter(pl.col("forecast_date") >= today)
          .join(wh, on="warehouse_id", how="semi").join(prod, on="sku", how="semi")
          .select("sku", "warehouse_id", "forecast_date", "forecast")
          .sort("sku", "warehouse_id", "forecast_date"))
    inv = (inventory.join(wh, on="warehouse_id", how="semi").join(prod, on="sku", how="semi")
           .select("sku", "warehouse_id", pl.col("on_hand").cast(pl.Int64)))
    pairs = pl.concat([fc.select("sku", "warehouse_id"), inv.select("sku", "warehouse_id")]).unique()

    lead = pl.DataFrame({"category": list(cfg.lead_time_by_category),
                         "lt": list(cfg.lead_time_by_category.values())}, schema={"category": pl.String, "lt": pl.Int64})
    svc = pl.DataFrame({"category": list(cfg.service_level_by_category),
                        "z_cat": [cfg.z(v) for v in cfg.service_level_by_category.values()]},
                       schema={"category": pl.String, "z_cat": pl.Float64})
    pos = (pairs.join(prod, on="sku").join(wh, on="warehouse_id")
           .join(lead, on="category", how="left").join(svc, on="category", how="left")
           .with_columns(pl.col("lt").fill_null(cfg.supplier_lead_time_days).alias("lead_time"),
                         pl.col("z_cat").fill_null(cfg.z(cfg.service_level)).alias("z"))
           .drop("lt", "z_cat"))

    # demand over n days from today, per pair (extended past the horizon by the mean of its last 7 days)
    c = cfg.coverage_days
    k = pl.int_range(pl.len())
    agg = (fc.join(pos.select("sku", "warehouse_id", "lead_time"), on=["sku", "warehouse_id"])
           .group_by("sku", "warehouse_id").agg(
               pl.len().alias("h"),
               pl.col("forecast").tail(7).mean().alias("tail"),
               pl.col("forecast").mean().alias("mean_f"),
               pl.col("forecast").filter(k < pl.col("lead_time").first()).sum().alias("d_l0"),
               pl.col("forecast").filter(k < pl.col("lead_time").first() + c).sum().alias("d_lc0"),
           ))
    ext = pl.col("tail").fill_null(0.0)
    pos = (pos.join(agg, on=["sku", "warehouse_id"], how="left")
           .with_columns(pl.col("h").fill_null(0), pl.col("mean_f", "d_l0", "d_lc0").fill_null(0.0))
           .with_columns(
               (pl.col("d_l0") + (pl.col("lead_time") - pl.col("h")).clip(lower_bound=0) * ext).alias("d_lt"),
               (pl.col("d_lc0") + (pl.col("lead_time") + c - pl.col("h")).clip(lower_bound=0) * ext).alias("d_ltc"))
           .drop("d_l0", "d_lc0", "tail"))

    sig = (errors.select("sku", "warehouse_id", pl.col("sigma_daily").cast(pl.Float64))
           if errors is not None and "sigma_daily" in errors.columns
           else pl.DataFrame(schema={"sku": pl.String, "warehouse_id": pl.String, "sigma_daily": pl.Float64}))
    reserved = reserved_by_warehouse(reservations, inventory, now, allocations)
    pos = (pos.join(sig, on=["sku", "warehouse_id"], how="left")
           .join(inv, on=["sku", "warehouse_id"], how="left")
           .join(reserved, on=["sku", "warehouse_id"], how="left")
           .with_columns(pl.coalesce("sigma_daily", pl.col("mean_f").sqrt()).alias("sigma"),
                         pl.col("on_hand").fill_null(0), pl.col("reserved").fill_null(0))
           .with_columns((pl.col("on_hand") - pl.col("reserved")).alias("available"),
                         (pl.col("z") * pl.col("sigma") * pl.col("lead_time").cast(pl.Float64).sqrt()).alias("ss_f"))
           .with_columns(_ceil(pl.col("ss_f")).alias("safety_stock"),
                         _ceil(pl.col("d_lt") + pl.col("ss_f")).alias("reorder_point"),
                         _ceil(pl.col("d_ltc") + pl.col("ss_f")).alias("order_up_to"),
                         (pl.col("available") / pl.col("mean_f")).alias("days_of_cover"))
           .drop("sigma_daily"))
    return pos.join(stockout_dates(fc, pos.select("sku", "warehouse_id", "available")),
                    on=["sku", "warehouse_id"], how="left").sort("sku", "warehouse_id")


def stockout_dates(forecast: pl.DataFrame, stock: pl.DataFrame, col: str = "available") -> pl.DataFrame:
    """``sku, warehouse_id, stockout_date``: the first forecast day whose cumulative forecast (from the first
    day given) exceeds ``stock[col]``; null when it never does within the forecast."""
    return (forecast.sort("sku", "warehouse_id", "forecast_date")
            .with_columns(pl.col("forecast").cum_sum().over("sku", "warehouse_id").alias("cum"))
            .join(stock.select("sku", "warehouse_id", pl.col(col).alias("_stock")), on=["sku", "warehouse_id"])
            .filter(pl.col("cum") > pl.col("_stock") + _EPS)
            .group_by("sku", "warehouse_id").agg(pl.col("forecast_date").min().alias("stockout_date")))


def _transfers(pos: pl.DataFrame, cfg: ForecastConfig) -> pl.DataFrame:
    """Greedy fill of needs from surpluses per SKU and lane (country, or the whole network), as overlaps of
    cumulative intervals."""
    need = (pos.filter(pl.col("available") < pl.col("reorder_point"))
            .with_columns((pl.col("order_up_to") - pl.col("available")).alias("need"))
            .sort(["sku", "lane", "stockout_date", "need", "warehouse_id"],
                  descending=[False, False, False, True, False], nulls_last=True)
            .with_columns(pl.col("need").cum_sum().over("sku", "lane").alias("a1"))
            .with_columns((pl.col("a1") - pl.col("need")).alias("a0")))
    give = (pos.filter(pl.col("available") > pl.col("order_up_to"))
            .with_columns((pl.col("available") - pl.col("order_up_to")).alias("surplus"),
                          pl.col("days_of_cover").fill_null(float("inf")).alias("_cover"))
            .sort(["sku", "lane", "_cover", "surplus", "warehouse_id"], descending=[False, False, True, True, False])
            .with_columns(pl.col("surplus").cum_sum().over("sku", "lane").alias("b1"))
            .with_columns((pl.col("b1") - pl.col("surplus")).alias("b0")))
    src = give.select("sku", "lane", pl.col("warehouse_id").alias("from_warehouse"), "surplus", "b0", "b1",
                      pl.col("order_up_to").alias("src_level"), pl.col("days_of_cover").alias("src_cover"))
    return (need.join(src, on=["sku", "lane"])
            .with_columns((pl.min_horizontal("a1", "b1") - pl.max_horizontal("a0", "b0")).alias("quantity"))
            .filter(pl.col("quantity") >= max(cfg.min_transfer_units, 1)))


def _fmt(e: pl.Expr, decimals: int = 0) -> pl.Expr:
    return e.round(decimals).cast(pl.Int64 if decimals == 0 else pl.Float64).cast(pl.String)


def replenishment_plan(forecast: pl.DataFrame, errors: pl.DataFrame | None, inventory: pl.DataFrame,
                       reservations: pl.DataFrame | None, warehouses: pl.DataFrame, products: pl.DataFrame,
                       cfg: ForecastConfig, now: datetime | None = None,
                       allocations: pl.DataFrame | None = None) -> pl.DataFrame:
    """``core.replenishment_plan`` rows: transfers first, then purchases (see the module docstring).

    ``forecast``: ``core.demand_forecast`` rows; ``errors``: ``sku, warehouse_id, sigma_daily`` (what
    :func:`~som_pipeline.planning.forecast.run` returns as ``errors``); ``inventory``: ``ref.inventory``;
    ``reservations``: ``core.reservations``; ``allocations``: ``core.allocations`` (optional).
    ``prioritised(proposals(...))``: every step but the priority is per SKU, so the plan can be proposed in
    parts of SKUs and prioritised once (the service does, for bounded memory).
    """
    now = _utc(now or datetime.now(UTC))
    return prioritised(proposals(forecast, errors, inventory, reservations, warehouses, products, cfg, now,
                                 allocations), now)


PROPOSAL_COLUMNS = ["kind", "sku", "from_warehouse", "to_warehouse", "quantity", "available", "safety_stock",
                    "reorder_point", "stockout_date", "lead_time_days", "reason"]


def proposals(forecast: pl.DataFrame, errors: pl.DataFrame | None, inventory: pl.DataFrame,
              reservations: pl.DataFrame | None, warehouses: pl.DataFrame, products: pl.DataFrame,
              cfg: ForecastConfig, now: datetime | None = None,
              allocations: pl.DataFrame | None = None) -> pl.DataFrame:
    """The transfers and purchases of :func:`replenishment_plan` (:data:`PROPOSAL_COLUMNS`), not yet
    prioritised. Per SKU: the rows of a SKU depend only on that SKU's rows of every input."""
    now = _utc(now or datetime.now(UTC))
    today = now.date()
    pos = stock_positions(forecast, errors, inventory, reservations, warehouses, products, cfg, now, allocations)
    lt_t = cfg.transfer_lead_time_days
    tr = _transfers(pos, cfg)

    when = pl.coalesce(pl.col("stockout_date").cast(pl.String), pl.lit("not within the forecast horizon"))
    policy = pl.concat_str([
        pl.lit("; reorder point "), pl.col("reorder_point").cast(pl.String),
        pl.lit(" = demand over the "), pl.col("lead_time").cast(pl.String), pl.lit("-day supplier lead time ("),
        _fmt(pl.col("d_lt"), 1), pl.lit(") + safety stock "), pl.col("safety_stock").cast(pl.String),
        pl.lit("; stock-out expected: "), when,
    ])
    transfers = tr.with_columns(
        pl.lit("transfer").alias("kind"), pl.col("warehouse_id").alias("to_warehouse"),
        pl.lit(lt_t, dtype=pl.Int64).alias("lead_time_days"),
        pl.concat_str([
            pl.col("warehouse_id"), pl.lit(" has "), pl.col("available").cast(pl.String),
            pl.lit(" available after reservations"), policy, pl.lit(". "), pl.col("from_warehouse"),
            pl.lit(" holds "), pl.col("surplus").cast(pl.String), pl.lit(" above its own order-up-to level "),
            pl.col("src_level").cast(pl.String), pl.lit(" ("),
            pl.when(pl.col("src_cover").is_finite()).then(_fmt(pl.col("src_cover"))).otherwise(pl.lit("unlimited")),
            pl.lit(" days of cover): transfer "), pl.col("quantity").cast(pl.String), pl.lit(" (arrives in "),
            pl.lit(str(lt_t)), pl.lit(" days) toward the order-up-to level "), pl.col("order_up_to").cast(pl.String),
            pl.lit("."),
        ]).alias("reason"),
    )

    inbound = tr.group_by("sku", "warehouse_id").agg(pl.col("quantity").sum().alias("transfer_in"))
    after = (pos.join(inbound, on=["sku", "warehouse_id"], how="left")
             .with_columns(pl.col("transfer_in").fill_null(0))
             .with_columns((pl.col("available") + pl.col("transfer_in")).alias("position")))
    buy = after.filter((pl.col("position") < pl.col("reorder_point")) & pl.col("product_active"))
    fc = forecast.filter(pl.col("forecast_date") >= today).select("sku", "warehouse_id", "forecast_date", "forecast")
    later = stockout_dates(fc, buy, "position").rename({"stockout_date": "stockout_after"})
    purchases = (buy.join(later, on=["sku", "warehouse_id"], how="left")
                 .with_columns(
                     pl.lit("purchase").alias("kind"), pl.lit(None, pl.String).alias("from_warehouse"),
                     pl.col("warehouse_id").alias("to_warehouse"),
                     (pl.col("order_up_to") - pl.col("position")).alias("quantity"),
                     pl.col("lead_time").cast(pl.Int64).alias("lead_time_days"),
                     pl.col("stockout_after").alias("stockout_date"))
                 .with_columns(pl.concat_str([
                     pl.col("warehouse_id"), pl.lit(" has "), pl.col("available").cast(pl.String),
                     pl.lit(" available after reservations"),
                     pl.when(pl.col("transfer_in") > 0).then(pl.concat_str([
                         pl.lit(" (+"), pl.col("transfer_in").cast(pl.String), pl.lit(" by transfer)")]))
                     .otherwise(pl.lit("")),
                     policy,
                     pl.when(pl.col("transfer_in") > 0).then(pl.lit(". Transfers cannot cover the rest"))
                     .otherwise(pl.lit(". No other warehouse has stock above its own order-up-to level")),
                     pl.lit(": purchase "), pl.col("quantity").cast(pl.String),
                     pl.lit(" to reach the order-up-to level "), pl.col("order_up_to").cast(pl.String),
                     pl.lit(" (demand over lead time + "), pl.lit(str(cfg.coverage_days)),
                     pl.lit(" days of cover + safety stock)."),
                 ]).alias("reason"))
                 .filter(pl.col("quantity") > 0))

    return pl.concat([transfers.select(PROPOSAL_COLUMNS), purchases.select(PROPOSAL_COLUMNS)])


def prioritised(plan: pl.DataFrame, now: datetime | None = None) -> pl.DataFrame:
    """``core.replenishment_plan`` rows from :func:`proposals` (of every SKU, or the concatenated proposals of
    parts of SKUs): ``priority`` over all of them (earliest stock-out first, then transfers before purchases,
    then bigger quantity; the order is total), ``proposal_id``, ``generated_at``."""
    now = _utc(now or datetime.now(UTC))
    stamp = now.date().strftime("%Y%m%d")
    plan = (plan.sort(["stockout_date", "kind", "quantity", "sku", "to_warehouse", "from_warehouse"],
                      descending=[False, True, True, False, False, False], nulls_last=True)
            .with_columns(
                (pl.int_range(pl.len()) + 1).alias("priority"),
                pl.when(pl.col("kind") == "transfer")
                .then(pl.concat_str([pl.lit(f"TR-{stamp}-"), pl.col("sku"), pl.lit("-"), pl.col("from_warehouse"),
                                     pl.lit("-"), pl.col("to_warehouse")]))
                .otherwise(pl.concat_str([pl.lit(f"PO-{stamp}-"), pl.col("sku"), pl.lit("-"), pl.col("to_warehouse")]))
                .alias("proposal_id"),
                pl.col("available").alias("on_hand"),
                pl.col("stockout_date").alias("expected_stockout_date"),
                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("generated_at"),
            ))
    return conform(plan, ReplenishmentPlanModel)


__all__ = ["PROPOSAL_COLUMNS", "prioritised", "proposals", "replenishment_plan", "reserved_by_warehouse",
           "stock_positions", "stockout_dates"]
