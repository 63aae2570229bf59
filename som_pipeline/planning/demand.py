"""Daily demand per SKU x warehouse from order history, and the demand class of each series.

- :func:`home_warehouses` -- each order's home warehouse (lowest shipping zone to its ship-to address)
- :func:`demand_rows` -- ``sku, warehouse_id, ds, y``: the days with demand only (sparse; ``state.daily_demand``)
- :func:`window_demand` -- the forecast's input: the sparse rows of the history window, series with demand in it
- :func:`daily_demand` / :func:`densify` -- a full daily grid (zeros filled) per series (small data, tests)
- :func:`classify_series` -- ADI / CV2 (Syntetos-Boylan) class of each series over the history window

Sparse history never becomes a dense grid of zeros over years: the forecast reads the last ``history_days`` of
``state.daily_demand`` and densifies that window a batch of series at a time (``planning/models.py``).

Warehouse attribution (docs/forecasting.md): a line's units go to the warehouse(s) of its allocations
(``core.allocations``) when given; units not allocated (no allocation, or the backordered rest) go to the
order's home warehouse. Cancelled orders (``cancelled_at`` set) are not demand.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from som_pipeline.planning.config import ForecastConfig

DEMAND_SCHEMA = {"sku": pl.String, "warehouse_id": pl.String, "ds": pl.Date, "y": pl.Int64}
SERIES_CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "sparse")


def _norm(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.to_uppercase()


def home_warehouses(orders: pl.DataFrame, shipping_zones: pl.DataFrame, warehouses: pl.DataFrame) -> pl.DataFrame:
    """``order_id, warehouse_id``: the home warehouse of every order.

    Home = the active warehouse with the lowest zone to the ship-to address, where a warehouse's zone is its
    ``ref.shipping_zones`` row for (country, region) if it has one, else its (country, '*') row; ties go to the
    smallest ``warehouse_id``. An order no active warehouse has a zone for (unknown or missing country) goes to
    the first active warehouse by id, so that no demand is lost.
    """
    active = warehouses.filter(pl.col("active")).select("warehouse_id").sort("warehouse_id")
    if active.height == 0:
        raise ValueError("no active warehouse: demand cannot be attributed")
    fallback = active["warehouse_id"][0]
    zones = shipping_zones.join(active, on="warehouse_id", how="semi").select(
        "warehouse_id", _norm("dest_country").alias("country"), _norm("dest_region").alias("region"), "zone")
    dest = orders.select(
        "order_id",
        _norm("ship_to_country").fill_null("").alias("country"),
        _norm("ship_to_region").fill_null("").alias("region"),
    )
    places = dest.select("country", "region").unique()
    by_region = places.join(zones.filter(pl.col("region") != "*"), on=["country", "region"], how="inner")
    by_country = places.join(zones.filter(pl.col("region") == "*").drop("region"), on="country", how="inner")
    cand = (
        by_country.join(by_region, on=["country", "region", "warehouse_id"], how="full", coalesce=True,
                        suffix="_r")
        .with_columns(pl.coalesce("zone_r", "zone").alias("zone"))
        .sort("zone", "warehouse_id")
        .group_by("country", "region", maintain_order=True)
        .agg(pl.col("warehouse_id").first())
    )
    return (dest.join(cand, on=["country", "region"], how="left")
            .select("order_id", pl.col("warehouse_id").fill_null(fallback)))


def demand_rows(
    orders: pl.DataFrame,
    order_lines: pl.DataFrame,
    shipping_zones: pl.DataFrame,
    warehouses: pl.DataFrame,
    allocations: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Units ordered per ``sku, warehouse_id, ds`` (order date): only the days with demand (``y`` > 0), sorted.

    Units are the line quantities of live, not-cancelled orders (``core.orders`` / ``core.order_lines``), on the
    order's ``order_date``; the line's own SKU (what the customer asked for). See the module docstring for
    warehouse attribution. Each day depends only on that day's orders and their allocations (and the reference
    tables that choose home warehouses): what lets ``state.daily_demand`` be maintained per order date.
    """
    live = orders.filter(pl.col("cancelled_at").is_null())
    lines = order_lines.select("order_id", "version", "line_no", "sku", "quantity").join(
        live.select("order_id", "version", pl.col("order_date").alias("ds")), on=["order_id", "version"])
    if lines.height == 0:
        return pl.DataFrame(schema=DEMAND_SCHEMA)

    home = home_warehouses(live.join(lines.select("order_id").unique(), on="order_id", how="semi"),
                           shipping_zones, warehouses)
    parts = []
    rest = lines.with_columns(pl.col("quantity").cast(pl.Int64).alias("units"))
    if allocations is not None and allocations.height:
        alloc = (allocations.group_by("order_id", "line_no", "warehouse_id")
                 .agg(pl.col("quantity").cast(pl.Int64).sum().alias("units")))
        allocated = lines.join(alloc, on=["order_id", "line_no"])
        parts.append(allocated.select("sku", "warehouse_id", "ds", "units"))
        done = alloc.group_by("order_id", "line_no").agg(pl.col("units").sum().alias("allocated"))
        rest = (rest.join(done, on=["order_id", "line_no"], how="left")
                .with_columns((pl.col("units") - pl.col("allocated").fill_null(0)).clip(lower_bound=0).alias("units")))
    parts.append(rest.filter(pl.col("units") > 0).join(home, on="order_id").select("sku", "warehouse_id", "ds", "units"))
    return (pl.concat(parts).group_by("sku", "warehouse_id", "ds").agg(pl.col("units").sum().alias("y"))
            .filter(pl.col("y") > 0).sort("sku", "warehouse_id", "ds").select(list(DEMAND_SCHEMA)))


def densify(rows: pl.DataFrame, end: date | None = None) -> pl.DataFrame:
    """The full daily grid of a demand frame: each series from its first row to ``end`` (default: the last day
    of ``rows``), days without a row = 0. Small data and tests only: the forecast never builds this over all
    series (it densifies a bounded window, a batch of series at a time; :func:`~som_pipeline.planning.models.sf_frame`).
    """
    if end is None:
        end = rows["ds"].max() if rows.height else None
    if rows.height == 0 or end is None:
        return pl.DataFrame(schema=DEMAND_SCHEMA)
    rows = rows.filter(pl.col("ds") <= end)
    grid = (rows.group_by("sku", "warehouse_id").agg(pl.col("ds").min().alias("first"))
            .with_columns(pl.date_ranges("first", pl.lit(end, dtype=pl.Date)).alias("ds"))
            .drop("first").explode("ds"))
    return (grid.join(rows, on=["sku", "warehouse_id", "ds"], how="left")
            .with_columns(pl.col("y").fill_null(0).cast(pl.Int64))
            .sort("sku", "warehouse_id", "ds")
            .select(list(DEMAND_SCHEMA)))


def daily_demand(
    orders: pl.DataFrame,
    order_lines: pl.DataFrame,
    shipping_zones: pl.DataFrame,
    warehouses: pl.DataFrame,
    allocations: pl.DataFrame | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """Units ordered per ``sku, warehouse_id, ds`` (order date), a full daily grid per series
    (:func:`demand_rows` of the orders dated ``start`` .. ``end``, then :func:`densify`).

    Each series runs from its first day with demand (on or after ``start``) to ``end`` (default: the last
    order date), zeros filled. For small data and tests: the pipeline keeps the sparse rows in
    ``state.daily_demand`` and reads only the forecast's window (:func:`window_demand`).
    """
    live = orders
    if start is not None:
        live = live.filter(pl.col("order_date") >= start)
    if end is not None:
        live = live.filter(pl.col("order_date") <= end)
    return densify(demand_rows(live, order_lines, shipping_zones, warehouses, allocations), end)


def window_demand(rows: pl.DataFrame, first_day: pl.DataFrame, end: date, days: int) -> pl.DataFrame:
    """The forecast's input from sparse history: the rows of the last ``days`` days up to ``end``, of the series
    with demand in that window only, each led by a zero row on the window's first day when the series had
    demand before the window (so that every series still starts where its full daily grid would: its first day
    with demand, or the window start).

    ``rows``: ``sku, warehouse_id, ds, y`` (may hold days outside the window); ``first_day``:
    ``sku, warehouse_id, first`` (first day with demand of each series, over all history).
    """
    lo = end - timedelta(days=days - 1)
    inside = rows.filter(pl.col("ds").is_between(lo, end) & (pl.col("y") > 0))
    lead = (first_day.filter(pl.col("first") < lo)
            .join(inside.select("sku", "warehouse_id").unique(), on=["sku", "warehouse_id"], how="semi")
            .select("sku", "warehouse_id", pl.lit(lo, dtype=pl.Date).alias("ds"), pl.lit(0, pl.Int64).alias("y")))
    return (pl.concat([lead, inside.select(list(DEMAND_SCHEMA))])
            .group_by("sku", "warehouse_id", "ds").agg(pl.col("y").sum())
            .sort("sku", "warehouse_id", "ds").select(list(DEMAND_SCHEMA)))


def classify_series(demand: pl.DataFrame, cfg: ForecastConfig, end: date | None = None) -> pl.DataFrame:
    """One row per series with demand in the window: ``sku, warehouse_id, days, demand_days, units, adi, cv2,
    backtest, series_class``.

    ``demand`` may be sparse (days without a row are 0; a series starts at its first row, see
    :func:`window_demand`) or a full grid (:func:`daily_demand`): the result is the same. Over the history window
    (the last ``history_days`` days up to ``end``): ``days`` = days from the series' start (first row, or the
    window start) to ``end``; ADI = days / days with demand, CV2 = squared coefficient of variation (population
    std / mean) of the non-zero daily demands. Classes (Syntetos-Boylan cut-offs from the config): smooth,
    erratic, intermittent, lumpy; ``sparse`` when the series has fewer than ``min_demand_days`` days with demand
    in the window or too short a history to backtest (``min_train_days + folds x fold_horizon_days``).
    ``backtest`` says whether it is long enough to backtest. A series without demand in the window is left out
    (no model, no forecast: docs/forecasting.md).
    """
    if end is None:
        end = demand["ds"].max()
    lo = end - timedelta(days=cfg.history_days - 1)
    upto = demand.filter(pl.col("ds") <= end)
    start = (upto.group_by("sku", "warehouse_id").agg(pl.col("ds").min().alias("first"))
             .select("sku", "warehouse_id",
                     ((pl.lit(end, dtype=pl.Date) - pl.max_horizontal(pl.col("first"), pl.lit(lo, dtype=pl.Date)))
                      .dt.total_days() + 1).cast(pl.UInt32).alias("days")))
    nz = pl.col("y").filter(pl.col("y") > 0).cast(pl.Float64)
    stats = (
        upto.filter(pl.col("ds") >= lo)
        .sort("sku", "warehouse_id", "ds")
        .group_by("sku", "warehouse_id")
        .agg(
            (pl.col("y") > 0).sum().alias("demand_days"),
            pl.col("y").sum().alias("units"),
            (nz.std(ddof=0) / nz.mean()).pow(2).alias("cv2"),
        )
        .filter(pl.col("demand_days") > 0)
        .join(start, on=["sku", "warehouse_id"])
        .with_columns(
            (pl.col("days") / pl.col("demand_days")).alias("adi"),
            pl.col("cv2").fill_null(0.0).fill_nan(0.0),
            (pl.col("days") >= cfg.min_history_days).alias("backtest"),
        )
    )
    adi_hi = pl.col("adi") >= cfg.adi_cutoff
    cv_hi = pl.col("cv2") >= cfg.cv2_cutoff
    cls = (
        pl.when(~pl.col("backtest") | (pl.col("demand_days") < max(cfg.min_demand_days, 1))).then(pl.lit("sparse"))
        .when(~adi_hi & ~cv_hi).then(pl.lit("smooth"))
        .when(~adi_hi).then(pl.lit("erratic"))
        .when(~cv_hi).then(pl.lit("intermittent"))
        .otherwise(pl.lit("lumpy"))
    )
    return (stats.with_columns(cls.alias("series_class"))
            .select("sku", "warehouse_id", "days", "demand_days", "units", "adi", "cv2", "backtest", "series_class")
            .sort("sku", "warehouse_id"))


__all__ = ["DEMAND_SCHEMA", "SERIES_CLASSES", "classify_series", "daily_demand", "demand_rows", "densify",
           "home_warehouses", "window_demand"]
