"""Candidate models, the rolling-origin backtest, and the choice of a model per series.

Candidates per demand class (:data:`CANDIDATES`; docs/forecasting.md):

| class | candidates (simplest first) |
|---|---|
| smooth, erratic | HistoricAverage, WindowAverage, SeasonalNaive, SeasonalWindowAverage, Theta*, AutoETS* |
| intermittent, lumpy | CrostonClassic, ADIDA, TSB, CrostonOptimized, IMAPA |
| sparse | HistoricAverage |

\\* Theta runs on the ``theta_max_series`` smooth/erratic series with the most units in the window, AutoETS on
the ``ets_max_series`` ones (its fit costs ~0.13 s per series here); both on the last ``heavy_history_days``.
SeasonalNaive(7) is always backtested as the baseline (``mase_vs_seasonal_naive``), also where it is not a
candidate. Per series the candidate with the lowest backtest MAE wins; candidates within ``tie_tolerance`` of
it count as tied and the simplest (lowest :attr:`Spec.rank`) wins.

Everything runs through :class:`statsforecast.StatsForecast` (``cross_validation``: ``folds`` windows of
``fold_horizon_days``, step = horizon, refit per window), one call per group of series sharing a model list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl
from statsforecast import StatsForecast
from statsforecast.models import (
    ADIDA,
    IMAPA,
    TSB,
    AutoETS,
    CrostonClassic,
    CrostonOptimized,
    HistoricAverage,
    SeasonalNaive,
    SeasonalWindowAverage,
    Theta,
    WindowAverage,
)

from som_pipeline.planning.config import ForecastConfig
from som_pipeline.planning.demand import classify_series

log = logging.getLogger(__name__)

BASELINE = "SeasonalNaive"


@dataclass(frozen=True)
class Spec:
    """A candidate model: its name (the statsforecast alias), complexity rank and how to build it."""

    name: str
    rank: int  # lower = simpler; breaks ties
    native_intervals: bool  # statsforecast gives prediction intervals for it
    heavy: bool  # fitted on the heavy window, under a series budget, in worker processes
    build: Callable[[ForecastConfig], object]


SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("HistoricAverage", 0, True, False, lambda c: HistoricAverage(alias="HistoricAverage")),
    Spec("WindowAverage", 1, False, False, lambda c: WindowAverage(c.window_days, alias="WindowAverage")),
    Spec("SeasonalNaive", 2, True, False, lambda c: SeasonalNaive(c.season_length, alias="SeasonalNaive")),
    Spec("SeasonalWindowAverage", 3, False, False,
         lambda c: SeasonalWindowAverage(c.season_length, c.seasonal_windows, alias="SeasonalWindowAverage")),
    Spec("CrostonClassic", 4, False, False, lambda c: CrostonClassic(alias="CrostonClassic")),
    Spec("ADIDA", 5, False, False, lambda c: ADIDA(alias="ADIDA")),
    Spec("TSB", 6, False, False, lambda c: TSB(c.tsb_alpha_d, c.tsb_alpha_p, alias="TSB")),
    Spec("CrostonOptimized", 7, False, False, lambda c: CrostonOptimized(alias="CrostonOptimized")),
    Spec("IMAPA", 8, False, False, lambda c: IMAPA(alias="IMAPA")),
    Spec("Theta", 9, True, True, lambda c: Theta(season_length=c.season_length, alias="Theta")),
    Spec("AutoETS", 10, True, True,
         lambda c: AutoETS(season_length=c.season_length, model=c.ets_model, alias="AutoETS")),
)}

SMOOTH_CHEAP = ("HistoricAverage", "WindowAverage", "SeasonalNaive", "SeasonalWindowAverage")
INTERMITTENT = ("CrostonClassic", "ADIDA", "TSB", "CrostonOptimized", "IMAPA")
CANDIDATES: dict[str, tuple[str, ...]] = {
    "smooth": SMOOTH_CHEAP + ("Theta", "AutoETS"),
    "erratic": SMOOTH_CHEAP + ("Theta", "AutoETS"),
    "intermittent": INTERMITTENT,
    "lumpy": INTERMITTENT,
    "sparse": ("HistoricAverage",),
}
SPARSE_MODEL = "HistoricAverage"

ERRORS_SCHEMA = {"uid": pl.Int64, "model": pl.String, "ds": pl.Date, "cutoff": pl.Date, "y": pl.Float64,
                 "yhat": pl.Float64}


@dataclass
class Backtest:
    """What the backtest learnt.

    - ``series``: one row per series: ``uid, sku, warehouse_id, days, demand_days, units, adi, cv2, backtest,
      series_class, model`` (chosen), ``scale`` (in-sample seasonal-naive MAE), ``sigma_daily`` (RMSE of the
      chosen model's backtest errors; null without backtest), ``end`` (last day of history).
    - ``errors``: every backtest point ``uid, model, ds, cutoff, y, yhat`` (models evaluated on the series).
    - ``scores``: per ``uid, model``: ``n, sum_abs, sum_err, sum_sq, sum_y, mae, candidate`` (eligible for the
      choice) and ``sn_sum_abs`` (the seasonal-naive baseline's sum of absolute errors on the same points).
    """

    series: pl.DataFrame
    errors: pl.DataFrame
    scores: pl.DataFrame
    end: date
    folds: int
    horizon_days: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per backtest step (benchmarks)


# ------------------------------------------------------------------------------------------------
# Frames for statsforecast: unique_id = uid (Int64), ds = day number (Int64, days since 1970-01-01), y float
# ------------------------------------------------------------------------------------------------
def _day(col: str = "ds") -> pl.Expr:
    return pl.col(col).cast(pl.Int32).cast(pl.Int64)


def _date(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Int32).cast(pl.Date)


_EPOCH = date(1970, 1, 1)


def _dense(demand: pl.DataFrame, series: pl.DataFrame, end: date, lo: date, hi: date) -> pl.DataFrame:
    """``unique_id, ds, y`` (y Int64): each series' full daily grid over ``lo`` .. ``hi`` (from its start when
    later), zeros filled, sorted. A series starts ``days`` - 1 days before ``end`` (``series.days``, from
    :func:`~som_pipeline.planning.demand.classify_series`); ``demand`` may be sparse or a full grid."""
    hi_day, lo_day, end_day = (hi - _EPOCH).days, (lo - _EPOCH).days, (end - _EPOCH).days
    first = pl.max_horizontal(pl.lit(end_day + 1, pl.Int64) - pl.col("days").cast(pl.Int64), pl.lit(lo_day, pl.Int64))
    grid = (series.select(pl.col("uid").alias("unique_id"), first.alias("first"))
            .filter(pl.col("first") <= hi_day)
            .select("unique_id", pl.int_ranges("first", hi_day + 1, dtype=pl.Int64).alias("ds")).explode("ds"))
    rows = (demand.filter(pl.col("ds").is_between(lo, hi))
            .join(series.select("sku", "warehouse_id", "uid"), on=["sku", "warehouse_id"])
            .select(pl.col("uid").alias("unique_id"), _day().alias("ds"), pl.col("y").cast(pl.Int64)))
    return (grid.join(rows, on=["unique_id", "ds"], how="left")
            .with_columns(pl.col("y").fill_null(0))
            .sort("unique_id", "ds"))


def sf_frame(demand: pl.DataFrame, series: pl.DataFrame, end: date, days: int) -> pl.DataFrame:
    """``unique_id, ds, y`` of the series' last ``days`` days up to ``end`` (zeros filled, sorted): what
    statsforecast gets. ``series``: ``uid, sku, warehouse_id, days`` (see :func:`_dense`)."""
    lo = end - timedelta(days=days - 1)
    return _dense(demand, series, end, lo, end).with_columns(pl.col("y").cast(pl.Float64))


def batches(series: pl.DataFrame, days: int, max_rows: int) -> list[pl.DataFrame]:
    """``series`` cut, in order, into batches of at most ``max_rows`` series-days of a ``days``-day window (a
    series longer than that is a batch of its own): the dense frame statsforecast needs exists for one batch at
    a time. Every model fits each series on its own, so results do not depend on the batching."""
    if series.height == 0:
        return []
    rows = pl.min_horizontal(pl.col("days").cast(pl.Int64), pl.lit(days, pl.Int64))
    b = series.with_columns(((rows.cum_sum() - rows) // max(max_rows, 1)).alias("_batch"))
    return [part.drop("_batch") for part in b.partition_by("_batch", maintain_order=True)]


def _run_cv(df: pl.DataFrame, names: list[str], cfg: ForecastConfig, n_jobs: int) -> pl.DataFrame:
    if df.height == 0 or not names:
        return pl.DataFrame(schema=ERRORS_SCHEMA)
    sf = StatsForecast(models=[SPECS[n].build(cfg) for n in names], freq=1, n_jobs=n_jobs,
                       fallback_model=SeasonalNaive(cfg.season_length))
    cv = sf.cross_validation(df=df, h=cfg.fold_horizon_days, n_windows=cfg.folds, step_size=cfg.fold_horizon_days)
    return (cv.unpivot(index=["unique_id", "ds", "cutoff", "y"], on=names, variable_name="model", value_name="yhat")
            .select(pl.col("unique_id").cast(pl.Int64).alias("uid"), "model", _date("ds").alias("ds"),
                    _date("cutoff").alias("cutoff"), "y", "yhat"))


def _top(series: pl.DataFrame, classes: tuple[str, ...], n: int) -> pl.DataFrame:
    """The ``n`` backtested series of these classes with the most units (ties: sku, warehouse)."""
    if n <= 0:
        return series.clear()
    return (series.filter(pl.col("series_class").is_in(classes) & pl.col("backtest"))
            .sort(["units", "sku", "warehouse_id"], descending=[True, False, False]).head(n))


def heavy_budget(series: pl.DataFrame, cfg: ForecastConfig) -> dict[str, pl.DataFrame]:
    """Series that get each heavy model: the top-volume smooth/erratic series, capped by the config budgets."""
    return {"Theta": _top(series, ("smooth", "erratic"), cfg.theta_max_series),
            "AutoETS": _top(series, ("smooth", "erratic"), cfg.ets_max_series)}


def choose(scores: pl.DataFrame, tie_tolerance: float) -> pl.DataFrame:
    """``uid, model``: per series the candidate with the lowest MAE; within ``tie_tolerance`` the simplest."""
    ranks = pl.DataFrame({"model": list(SPECS), "rank": [s.rank for s in SPECS.values()]})
    cand = scores.filter(pl.col("candidate")).join(ranks, on="model")
    best = pl.col("mae").min().over("uid")
    return (cand.filter(pl.col("mae") <= best * (1 + tie_tolerance) + 1e-12)
            .sort("uid", "rank").group_by("uid", maintain_order=True).agg(pl.col("model").first()))


def score(errors: pl.DataFrame, series: pl.DataFrame) -> pl.DataFrame:
    """Per ``uid, model`` sums of the backtest errors, the baseline's, and whether the model is a candidate."""
    e = pl.col("yhat") - pl.col("y")
    s = (errors.group_by("uid", "model").agg(
        pl.len().alias("n"), e.abs().sum().alias("sum_abs"), e.sum().alias("sum_err"), e.pow(2).sum().alias("sum_sq"),
        pl.col("y").sum().alias("sum_y"))
        .with_columns((pl.col("sum_abs") / pl.col("n")).alias("mae")))
    base = s.filter(pl.col("model") == BASELINE).select("uid", pl.col("sum_abs").alias("sn_sum_abs"))
    allowed = pl.DataFrame(
        [(c, m) for c, ms in CANDIDATES.items() for m in ms], schema=["series_class", "model"], orient="row"
    ).with_columns(pl.lit(True).alias("candidate"))
    return (s.join(base, on="uid", how="left")
            .join(series.select("uid", "series_class"), on="uid")
            .join(allowed, on=["series_class", "model"], how="left")
            .with_columns(pl.col("candidate").fill_null(False))
            .drop("series_class")
            .sort("uid", "model"))


def _scale(demand: pl.DataFrame, series: pl.DataFrame, cfg: ForecastConfig, end: date) -> pl.DataFrame:
    """``uid, scale``: in-sample seasonal-naive MAE (season ``season_length``) on the window before the first
    backtest cutoff (the days no fold scores); null when it is 0 or undefined."""
    first_cutoff = end - timedelta(days=cfg.backtest_days)
    lo = end - timedelta(days=cfg.history_days - 1)
    m = cfg.season_length
    parts = [
        _dense(demand, batch, end, lo, first_cutoff)
        .with_columns((pl.col("y") - pl.col("y").shift(m).over("unique_id")).abs().alias("d"))
        .group_by(pl.col("unique_id").alias("uid")).agg(pl.col("d").mean().alias("scale"))
        for batch in batches(series, cfg.history_days, cfg.max_rows_per_call)
    ]
    out = pl.concat(parts) if parts else pl.DataFrame(schema={"uid": pl.Int64, "scale": pl.Float64})
    return out.with_columns(pl.when(pl.col("scale") > 0).then(pl.col("scale")).alias("scale"))


def classified(demand: pl.DataFrame, cfg: ForecastConfig, end: date) -> pl.DataFrame:
    """:func:`~som_pipeline.planning.demand.classify_series` of every series with a ``uid`` (row number) and its
    heavy-model budgets ``theta``, ``ets`` (bool: in :func:`heavy_budget`, which ranks all series)."""
    series = classify_series(demand, cfg, end).with_row_index("uid").with_columns(pl.col("uid").cast(pl.Int64))
    heavy = heavy_budget(series, cfg)
    return series.with_columns(pl.col("uid").is_in(heavy["Theta"]["uid"].implode()).alias("theta"),
                               pl.col("uid").is_in(heavy["AutoETS"]["uid"].implode()).alias("ets"))


def backtest(demand: pl.DataFrame, cfg: ForecastConfig, end: date | None = None, *,
             only: pl.DataFrame | None = None, classes: pl.DataFrame | None = None) -> Backtest:
    """Classify every series, backtest its candidates and the baseline, choose its model.

    ``demand``: ``sku, warehouse_id, ds, y``, sparse (:func:`~som_pipeline.planning.demand.window_demand`: days
    without a row are 0, a series starts at its first row) or a full daily grid
    (:func:`~som_pipeline.planning.demand.daily_demand`), up to ``end`` (default: its last day). Only series with
    demand in the last ``history_days`` get a model; statsforecast sees them in batches of at most
    ``max_rows_per_call`` series-days.

    ``only`` (``sku, warehouse_id``): backtest those series only (the incremental forecast's refits). The
    classification and the heavy-model budgets are still ranked over every series of ``demand``, so a series
    gets the same candidates as in a run over all series; every other step is per series.

    ``classes``: :func:`classified` of every series, when the caller has it (the service backtests its refits in
    parts: it classifies once, and ``demand`` then needs to hold only the rows of the ``only`` series).
    """
    if end is None:
        end = demand["ds"].max() or date.today()  # (no demand at all: empty results)
    series = classes if classes is not None else classified(demand, cfg, end)
    if only is not None:
        series = series.join(only.select("sku", "warehouse_id"), on=["sku", "warehouse_id"], how="semi")
    bt = series.filter(pl.col("backtest"))

    groups: list[tuple[pl.DataFrame, list[str], int]] = []  # (series, models, window days)
    for classes, names in ((("smooth", "erratic"), list(SMOOTH_CHEAP)),
                           (("intermittent", "lumpy"), [BASELINE, *INTERMITTENT]),
                           (("sparse",), [BASELINE, SPARSE_MODEL])):
        groups.append((bt.filter(pl.col("series_class").is_in(classes)), names, cfg.history_days))
    for name, flag in (("Theta", "theta"), ("AutoETS", "ets")):
        groups.append((series.filter(pl.col(flag)).sort(["units", "sku", "warehouse_id"],
                                                        descending=[True, False, False]), [name],
                       cfg.heavy_history_days))

    parts, timings = [], {}
    for sub, names, days in groups:
        if sub.height == 0:
            continue
        heavy = any(SPECS[n].heavy for n in names)
        n_jobs = min(cfg.n_jobs, max(1, sub.height // 20)) if heavy else 1
        t0 = time.perf_counter()
        for batch in batches(sub, days, cfg.max_rows_per_call):
            parts.append(_run_cv(sf_frame(demand, batch, end, days), names, cfg, n_jobs))
        key = f"cv {'+'.join(names)} ({sub.height} series)"
        timings[key] = time.perf_counter() - t0
        log.info("backtest: %s in %.1f s", key, timings[key])
    errors = pl.concat(parts) if parts else pl.DataFrame(schema=ERRORS_SCHEMA)
    errors = errors.with_columns(pl.col("yhat").fill_nan(None)).drop_nulls("yhat")

    scores = score(errors, series)
    chosen = choose(scores, cfg.tie_tolerance)
    sigma = (scores.join(chosen, on=["uid", "model"])
             .select("uid", (pl.col("sum_sq") / pl.col("n")).sqrt().alias("sigma_daily")))
    series = (series.join(chosen, on="uid", how="left")
              .with_columns(pl.col("model").fill_null(SPARSE_MODEL))
              .join(_scale(demand, series, cfg, end), on="uid", how="left")
              .join(sigma, on="uid", how="left")
              .with_columns(pl.lit(end, dtype=pl.Date).alias("end"))
              .sort("uid"))
    return Backtest(series=series, errors=errors, scores=scores, end=end, folds=cfg.folds,
                    horizon_days=cfg.fold_horizon_days, timings=timings)


def holdout_ratio(bt: Backtest, cfg: ForecastConfig) -> float | None:
    """Selection-honest check: choose each series' model on all folds but the last, then
    sum |error| of those choices / sum |error| of seasonal naive, on the last fold only (which the choice
    has not seen). The in-sample ``mase_vs_seasonal_naive`` is optimistic (the choice saw its folds); this
    one is not. None without at least two folds."""
    if bt.folds < 2 or bt.errors.height == 0:
        return None
    last = bt.errors["cutoff"].max()
    early = score(bt.errors.filter(pl.col("cutoff") < last), bt.series)
    picked = choose(early, cfg.tie_tolerance)
    late = bt.errors.filter(pl.col("cutoff") == last)
    mine = late.join(picked, on=["uid", "model"])
    base = late.filter(pl.col("model") == BASELINE).join(picked.select("uid"), on="uid")
    den = (base["yhat"] - base["y"]).abs().sum()
    return float((mine["yhat"] - mine["y"]).abs().sum() / den) if den else None


def model_mix(bt: Backtest) -> pl.DataFrame:
    """``series_class, model, series``: how many series chose each model."""
    return bt.series.group_by("series_class", "model").agg(pl.len().alias("series")).sort(
        "series_class", "series", descending=[False, True])


__all__ = ["BASELINE", "CANDIDATES", "SPECS", "Backtest", "Spec", "backtest", "batches", "choose", "classified",
           "heavy_budget",
           "holdout_ratio", "model_mix", "score", "sf_frame"]
