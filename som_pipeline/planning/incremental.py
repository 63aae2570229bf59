"""The incremental forecast: which series a run refits, what it keeps of the others (``state.forecast_fits``), and
how a kept forecast is carried forward to start after the new last day of history. Pure functions over Polars
frames; the service (``services/planning.py``) reads and writes the tables. docs/forecasting.md, "Nightly runs".

- :func:`refit_plan` -- per series of the window: refit (with the reason) or keep; series that left the window
- :func:`fit_rows` -- ``state.forecast_fits`` rows of a :class:`~som_pipeline.planning.models.Backtest`
- :func:`combined_backtest` -- kept fits (state rows) + a fresh backtest, as one ``Backtest`` for :func:`accuracy`
- :func:`carry_forward` -- a kept series' forecast rows re-dated to the run's horizon
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from som_pipeline.planning.config import ForecastConfig
from som_pipeline.planning.models import Backtest
from som_pipeline.schemas import DemandForecastModel, ForecastFitModel, conform

KEY = ["sku", "warehouse_id"]
REASONS = ("first run or rebuild", "config changed", "history end moved back", "new in window",
           "demand changed", "class or budget changed", "model follows recent days", "fit too old",
           "forecast rows missing")
# Models whose forecast moves with every day without demand (TSB's demand probability decays by 1 - alpha_p a
# day; the window averages, seasonal naive, Theta and AutoETS weigh the last days): a series that chose one is
# refitted whenever the history's last day moves, never carried forward. Measured (bench --history --compare, one
# day later): carried TSB forecasts were 11.1 % above the refit (= 1 / 0.9), i.e. ~2x after 7 days; the other
# models stayed within ~1.6 % (HistoricAverage 0.08 %).
FOLLOWS_RECENT_DAYS = frozenset({"TSB", "WindowAverage", "SeasonalNaive", "SeasonalWindowAverage", "Theta",
                                 "AutoETS"})
_SUMS = ("n", "sum_abs", "sum_err", "sum_sq", "sum_y", "mae", "sn_sum_abs")


def refit_plan(current: pl.DataFrame, fits: pl.DataFrame, end: date, cfg: ForecastConfig, *,
               rebuild: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(refit, kept, dropped)``, each ``sku, warehouse_id`` (``refit`` with its ``reason``, the first that holds).

    ``current``: every series with demand in the window: ``sku, warehouse_id, series_class, backtest, theta, ets``
    (:func:`~som_pipeline.planning.models.classified`) and ``window_fingerprint``. ``fits``: the series rows of
    ``state.forecast_fits`` (one per series: its ``chosen`` row). Everything is refitted on a rebuild, when there
    are no fits, when the config changed or when the history's last day moved back (a kept forecast cannot be
    carried backwards). Otherwise a series is refitted when it is new to the window, its window's demand changed,
    its class / backtest eligibility / heavy-model budget changed, its model follows the recent days
    (:data:`FOLLOWS_RECENT_DAYS`) and the last day moved, or its fit is more than ``refit_after_days`` days of
    history old. Series of ``fits`` no longer in the window are dropped.
    """
    cur = current.select(*KEY, "series_class", "backtest", "theta", "ets", "window_fingerprint")
    old = fits.select(*KEY, pl.col("series_class").alias("o_class"), pl.col("backtest").alias("o_backtest"),
                      pl.col("theta").alias("o_theta"), pl.col("ets").alias("o_ets"),
                      pl.col("window_fingerprint").alias("o_fp"), "fit_end", "config_fingerprint",
                      pl.col("model").alias("o_model"))
    dropped = old.join(cur, on=KEY, how="anti").select(KEY)
    everything = None
    if rebuild or fits.height == 0:
        everything = "first run or rebuild"
    elif (old["config_fingerprint"] != cfg.fit_fingerprint()).any():
        everything = "config changed"
    elif old["fit_end"].max() > end:
        everything = "history end moved back"
    if everything is not None:
        return cur.select(*KEY, pl.lit(everything).alias("reason")), cur.select(KEY).clear(), dropped
    j = cur.join(old, on=KEY, how="left")
    age = (pl.lit(end, dtype=pl.Date) - pl.col("fit_end")).dt.total_days()
    reason = (pl.when(pl.col("o_fp").is_null()).then(pl.lit("new in window"))
              .when(pl.col("window_fingerprint") != pl.col("o_fp")).then(pl.lit("demand changed"))
              .when((pl.col("series_class") != pl.col("o_class")) | (pl.col("backtest") != pl.col("o_backtest"))
                    | (pl.col("theta") != pl.col("o_theta")) | (pl.col("ets") != pl.col("o_ets")))
              .then(pl.lit("class or budget changed"))
              .when(pl.col("o_model").is_in(list(FOLLOWS_RECENT_DAYS)) & (age > 0))
              .then(pl.lit("model follows recent days"))
              .when(age > cfg.refit_after_days).then(pl.lit("fit too old")))
    j = j.with_columns(reason.alias("reason"))
    return (j.filter(pl.col("reason").is_not_null()).select(*KEY, "reason"),
            j.filter(pl.col("reason").is_null()).select(KEY), dropped)


def fit_rows(bt: Backtest, fingerprints: pl.DataFrame, cfg: ForecastConfig, fitted_at: datetime) -> pl.DataFrame:
    """``state.forecast_fits`` rows of a backtest: per series every model scored on it (a series whose chosen
    model has no score -- no backtest -- gets one row for it with null sums). ``fingerprints``:
    ``sku, warehouse_id, window_fingerprint`` of the window the backtest saw."""
    ser = bt.series.select("uid", *KEY, "series_class", "backtest", "theta", "ets", "scale", "sigma_daily",
                           pl.col("model").alias("chosen_model"))
    sc = bt.scores.select("uid", "model", "candidate", *_SUMS)
    scored = ser.join(sc, on="uid")
    own = (ser.with_columns(pl.col("chosen_model").alias("model"))
           .join(sc.select("uid", "model"), on=["uid", "model"], how="anti"))
    rows = (pl.concat([scored, own], how="diagonal_relaxed")
            .join(fingerprints.select(*KEY, "window_fingerprint"), on=KEY, how="left")
            .with_columns((pl.col("model") == pl.col("chosen_model")).alias("chosen"),
                          pl.col("candidate").fill_null(False),
                          pl.lit(bt.end, dtype=pl.Date).alias("fit_end"),
                          pl.lit(fitted_at).cast(pl.Datetime("us", "UTC")).alias("fitted_at"),
                          pl.lit(cfg.fit_fingerprint()).alias("config_fingerprint"))
            .sort(*KEY, "model"))
    return conform(rows, ForecastFitModel)


def combined_backtest(kept: pl.DataFrame, fresh: Backtest) -> Backtest:
    """One :class:`Backtest` over the kept fits (``state.forecast_fits`` rows) and a fresh backtest: what
    :func:`~som_pipeline.planning.forecast.accuracy` needs (``series`` with ``evaluated_at``: the kept fits'
    ``fitted_at``, null = now for the fresh ones; ``scores``). Fresh series keep their ``uid``; kept ones are
    numbered after them. With no kept fits it is the fresh backtest (a first run's accuracy is unchanged)."""
    if kept.height == 0:
        return fresh
    base = (fresh.series["uid"].max() + 1) if fresh.series.height else 0
    ks = (kept.filter(pl.col("chosen")).sort(KEY).with_row_index("uid")
          .with_columns((pl.col("uid").cast(pl.Int64) + base).alias("uid")))
    series = pl.concat([
        fresh.series.select("uid", *KEY, "series_class", "scale", "model",
                            pl.lit(None, pl.Datetime("us", "UTC")).alias("evaluated_at")),
        ks.select("uid", *KEY, "series_class", "scale", "model", pl.col("fitted_at").alias("evaluated_at"))],
        how="vertical_relaxed")
    kscores = (kept.filter(pl.col("n").is_not_null()).join(ks.select("uid", *KEY), on=KEY)
               .select("uid", "model", *_SUMS, "candidate"))
    scores = pl.concat([fresh.scores.select("uid", "model", *_SUMS, "candidate"), kscores], how="vertical_relaxed")
    return Backtest(series=series, errors=fresh.errors, scores=scores, end=fresh.end, folds=fresh.folds,
                    horizon_days=fresh.horizon_days, timings=fresh.timings)


def carry_forward(rows: pl.DataFrame, end: date, cfg: ForecastConfig) -> pl.DataFrame:
    """A kept series' forecast re-dated to the run's horizon ``end + 1 .. end + horizon_days``: its rows on those
    days are kept as they are; each day after its last row repeats the row of the same weekday in its last
    ``season_length`` days (values, intervals, model and generated_at). ``rows``: ``core.demand_forecast`` rows of
    the kept series after ``end`` (at least ``season_length`` consecutive days each: the service refits a
    series with fewer). Returns only the new days' rows."""
    m, last = cfg.season_length, end + timedelta(days=cfg.horizon_days)
    if rows.height == 0:
        return conform(pl.DataFrame(), DemandForecastModel).clear()
    live = rows.filter(pl.col("forecast_date") > end)
    top = pl.col("forecast_date").max().over(KEY)
    src = live.filter(pl.col("forecast_date") > top - timedelta(days=m)).with_columns(top.alias("_top"))
    reps = (cfg.horizon_days + m - 1) // m
    out = (src.join(pl.DataFrame({"_k": list(range(1, reps + 1))}), how="cross")
           .with_columns((pl.col("forecast_date") + pl.duration(days=pl.col("_k") * m)).alias("forecast_date"))
           .filter((pl.col("forecast_date") > pl.col("_top")) & (pl.col("forecast_date") <= last))
           .drop("_top", "_k").sort(*KEY, "forecast_date"))
    return conform(out, DemandForecastModel)


__all__ = ["FOLLOWS_RECENT_DAYS", "REASONS", "carry_forward", "combined_backtest", "fit_rows", "refit_plan"]
