"""Final forecasts with prediction intervals (``core.demand_forecast``) and backtest accuracy
(``core.forecast_accuracy``).

Intervals (80 % and 95 %), docs/forecasting.md:
- models with native intervals in statsforecast (SeasonalNaive, HistoricAverage, Theta, AutoETS): theirs;
- the others (Croston family, ADIDA, IMAPA, TSB, WindowAverage, SeasonalWindowAverage), series too short to
  backtest, and wherever a native bound is undefined: a negative-binomial approximation -- daily units ~ NB
  with the forecast as mean and variance phi x mean, phi = the variance-to-mean ratio of the series' backtest
  errors of that model (sum (y - yhat)^2 / sum yhat), or of its daily history when it has no backtest, at
  least 1 (= Poisson). Its 2.5/10/90/97.5 % quantiles are the bounds. (Residual quantiles added to the forecast were tried first: they break when the
  level moves between the backtest and now, e.g. a lower bound above 0 for a series that is 0 most days.)
Every bound is clipped at 0 and widened where needed so that lo_95 <= lo_80 <= forecast <= hi_80 <= hi_95.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
from scipy.stats import nbinom, poisson
from statsforecast import StatsForecast
from statsforecast.models import SeasonalNaive

from som_pipeline.planning.config import ForecastConfig
from som_pipeline.planning.models import SPECS, Backtest, backtest, batches, sf_frame
from som_pipeline.schemas import DemandForecastModel, ForecastAccuracyModel, conform

LEVELS = (80, 95)
_Q = {"lo_95": 0.025, "lo_80": 0.10, "hi_80": 0.90, "hi_95": 0.975}


@dataclass
class ForecastResult:
    """Everything one forecasting run produces.

    ``forecast`` (DemandForecastModel rows), ``accuracy`` (ForecastAccuracyModel rows), ``errors``
    (``sku, warehouse_id, model, series_class, sigma_daily``: the chosen model's backtest RMSE per day, what
    replenishment needs for safety stock) and the :class:`~som_pipeline.planning.models.Backtest`.
    """

    forecast: pl.DataFrame
    accuracy: pl.DataFrame
    errors: pl.DataFrame
    backtest: Backtest


def _utc(now: datetime | None) -> datetime:
    """An aware UTC time (default: now; a naive one is taken as UTC)."""
    now = now or datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _dispersion(demand: pl.DataFrame, bt: Backtest, cfg: ForecastConfig) -> pl.DataFrame:
    """``uid, phi, native``: the variance-to-mean ratio for the count intervals, at least 1 (Poisson), 1 when
    undefined. Backtested series: of the chosen model's backtest errors, sum (y - yhat)^2 / sum yhat. Series
    without a backtest: of their daily history, var(y) / mean(y); their native intervals (from a handful of
    in-sample residuals) are not used (``native`` = False)."""
    e = bt.errors.join(bt.series.select("uid", "model"), on=["uid", "model"])
    tested = e.group_by("uid").agg(((pl.col("y") - pl.col("yhat")).pow(2).sum() / pl.col("yhat").sum()).alias("phi"))
    short = bt.series.filter(~pl.col("backtest")).select("uid", "sku", "warehouse_id", "days")
    untested = pl.concat([
        sf_frame(demand, batch, bt.end, cfg.history_days)
        .group_by(pl.col("unique_id").alias("uid")).agg((pl.col("y").var(ddof=0) / pl.col("y").mean()).alias("phi"))
        for batch in batches(short, cfg.history_days, cfg.max_rows_per_call)
    ]) if short.height else pl.DataFrame(schema={"uid": pl.Int64, "phi": pl.Float64})
    return (pl.concat([tested.with_columns(pl.lit(True).alias("native")),
                       untested.with_columns(pl.lit(False).alias("native"))])
            .with_columns(pl.when(pl.col("phi").is_finite()).then(pl.col("phi").clip(lower_bound=1.0))
                          .otherwise(1.0).alias("phi")))


def count_quantiles(mean: np.ndarray, phi: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of a negative binomial with this mean and variance ``phi x mean`` (Poisson when phi = 1)."""
    mean = np.maximum(np.nan_to_num(mean, nan=0.0), 0.0)
    phi = np.maximum(np.nan_to_num(phi, nan=1.0), 1.0)
    safe = np.maximum(mean, 1e-12)
    over = phi > 1 + 1e-9
    nb = nbinom.ppf(q, np.where(over, safe / np.where(over, phi - 1, 1.0), 1.0), 1 / phi)
    out = np.where(over, nb, poisson.ppf(q, safe))
    return np.where(mean > 1e-12, out, 0.0)


def _memoise_interval_quantiles() -> None:
    """statsforecast computes the normal quantiles of the interval levels again for every series it forecasts
    (``statsforecast.utils._quantiles``: a scipy frozen distribution each time, ~2 ms -- three quarters of the
    forecast of 50k HistoricAverage series). They depend on the levels only: computed once per level set here,
    the very same numbers (pinned statsforecast; without dist_params, i.e. the normal quantiles, only)."""
    import statsforecast.utils as sfu

    if getattr(sfu._quantiles, "som_memoised", False):
        return
    original, memo = sfu._quantiles, {}

    def quantiles(level, distribution="normal", dist_params=None):
        if dist_params is not None:
            return original(level, distribution=distribution, dist_params=dist_params)
        key = (tuple(np.asarray(level, dtype=float).ravel().tolist()), str(distribution))
        if key not in memo:
            memo[key] = original(level, distribution=distribution)
        return memo[key].copy()

    quantiles.som_memoised = True
    sfu._quantiles = quantiles


def forecast(demand: pl.DataFrame, bt: Backtest, cfg: ForecastConfig, now: datetime | None = None) -> pl.DataFrame:
    """``core.demand_forecast`` rows: ``horizon_days`` days after the last day of history, per series, by the
    model the backtest chose (fitted on the series' window: ``history_days``, or ``heavy_history_days`` for
    Theta / AutoETS)."""
    now = _utc(now)
    h = cfg.horizon_days
    _memoise_interval_quantiles()
    parts = []
    for name, sub in bt.series.partition_by("model", as_dict=True).items():
        name = name[0]
        spec = SPECS[name]
        days = cfg.heavy_history_days if spec.heavy else cfg.history_days
        n_jobs = min(cfg.n_jobs, max(1, sub.height // 20)) if spec.heavy else 1
        cols = [pl.col("unique_id").cast(pl.Int64).alias("uid"), pl.col("ds").cast(pl.Int32).cast(pl.Date)
                .alias("forecast_date"), pl.col(name).alias("forecast")]
        for side in ("lo", "hi"):
            for lv in LEVELS:
                cols.append((pl.col(f"{name}-{side}-{lv}") if spec.native_intervals else pl.lit(None, pl.Float64))
                            .alias(f"{side}_{lv}"))
        for batch in batches(sub, days, cfg.max_rows_per_call):
            sf = StatsForecast(models=[spec.build(cfg)], freq=1, n_jobs=n_jobs,
                               fallback_model=SeasonalNaive(cfg.season_length))
            out = sf.forecast(df=sf_frame(demand, batch, bt.end, days), h=h,
                              level=list(LEVELS) if spec.native_intervals else None)
            parts.append(out.select(cols).with_columns(pl.lit(name).alias("model")))
    if not parts:
        return conform(pl.DataFrame(), DemandForecastModel).clear()
    fc = pl.concat(parts).with_columns(pl.col(pl.Float64).fill_nan(None))

    # negative-binomial intervals where the model has none (and where a native one is undefined)
    fc = (fc.join(_dispersion(demand, bt, cfg), on="uid", how="left")
          .with_columns(pl.col("forecast").fill_null(0.0).clip(lower_bound=0.0), pl.col("phi").fill_null(1.0))
          .with_columns([pl.when(pl.col("native").fill_null(True)).then(pl.col(k)).alias(k) for k in _Q]))
    # the quantiles of each distinct (mean, phi) once (flat forecasts repeat theirs every day; scipy's discrete
    # ppf was three quarters of the forecast of 20k one-day series), joined back: the same numbers
    pairs = fc.select("forecast", "phi").unique()
    mean, phi = pairs["forecast"].to_numpy(), pairs["phi"].to_numpy()
    pairs = pairs.with_columns([pl.Series(f"_q_{k}", count_quantiles(mean, phi, p)) for k, p in _Q.items()])
    fc = (fc.join(pairs, on=["forecast", "phi"], how="left", nulls_equal=True, maintain_order="left")
          .with_columns([pl.col(k).fill_null(pl.col(f"_q_{k}")) for k in _Q]).drop([f"_q_{k}" for k in _Q]))
    f = pl.col("forecast")
    fc = fc.with_columns(pl.min_horizontal(pl.col("lo_80").clip(lower_bound=0.0), f).alias("lo_80"),
                         pl.max_horizontal(pl.col("hi_80"), f).alias("hi_80"))
    fc = fc.with_columns(pl.min_horizontal(pl.col("lo_95").clip(lower_bound=0.0), pl.col("lo_80")).alias("lo_95"),
                         pl.max_horizontal(pl.col("hi_95"), pl.col("hi_80")).alias("hi_95"))
    fc = (fc.join(bt.series.select("uid", "sku", "warehouse_id"), on="uid")
          .with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("generated_at"))
          .sort("sku", "warehouse_id", "forecast_date"))
    return conform(fc, DemandForecastModel)


METRICS = ("mase", "wape", "bias", "mase_vs_seasonal_naive")


def _finite(cols: tuple[str, ...]) -> list[pl.Expr]:
    """NaN and +-inf (a zero denominator) -> null."""
    return [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in cols]


def _metrics(s: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Ratios of sums over the rows of ``s`` (one per series x model) grouped by ``by``."""
    has_scale = pl.col("scale").is_not_null()
    return s.group_by(by, maintain_order=True).agg(
        (pl.col("sum_abs").filter(has_scale).sum()
         / (pl.col("n") * pl.col("scale")).filter(has_scale).sum()).alias("mase"),
        (pl.col("sum_abs").sum() / pl.col("sum_y").sum()).alias("wape"),
        (pl.col("sum_err").sum() / pl.col("sum_y").sum()).alias("bias"),
        (pl.col("sum_abs").sum() / pl.col("sn_sum_abs").sum()).alias("mase_vs_seasonal_naive"),
    ).with_columns(_finite(METRICS))


def accuracy(bt: Backtest, cfg: ForecastConfig, now: datetime | None = None) -> pl.DataFrame:
    """``core.forecast_accuracy`` rows (definitions in docs/forecasting.md).

    Per series: the chosen model (``chosen`` = True) and, with ``accuracy_rows = "all"``, every other model
    evaluated on it (candidates and the seasonal-naive baseline). A series without backtest gets one row,
    ``folds`` = 0 and null metrics. Overall rows have ``sku = warehouse_id = '*'``: ``model = '*'`` is the chosen
    model of every series (``chosen`` = True), one row per other model over the series it was evaluated on;
    ``series_class = '*'`` over all series, plus one row per class. Every metric is a ratio of sums over the
    series' backtest points (so big series weigh more): MASE = sum|e| / sum(n x scale), WAPE = sum|e| / sum y,
    bias = sum(yhat - y) / sum y, mase_vs_seasonal_naive = sum|e| / sum|e_seasonal_naive|.
    """
    now = _utc(now)
    when = (pl.col("evaluated_at") if "evaluated_at" in bt.series.columns else pl.lit(None)) \
        .cast(pl.Datetime("us", "UTC")).alias("evaluated_at")
    ser = bt.series.select("uid", "sku", "warehouse_id", "series_class", "scale", pl.col("model").alias("chosen_model"),
                           when)
    s = (bt.scores.join(ser, on="uid")
         .with_columns((pl.col("model") == pl.col("chosen_model")).alias("chosen")))
    per = s if cfg.accuracy_rows == "all" else s.filter(pl.col("chosen"))
    per = per.with_columns(
        (pl.col("mae") / pl.col("scale")).alias("mase"),
        (pl.col("sum_abs") / pl.col("sum_y")).alias("wape"),
        (pl.col("sum_err") / pl.col("sum_y")).alias("bias"),
        (pl.col("sum_abs") / pl.col("sn_sum_abs")).alias("mase_vs_seasonal_naive"),
        pl.lit(bt.folds).alias("folds"),
    ).with_columns(_finite(METRICS))
    untested = (ser.join(s.select("uid").unique(), on="uid", how="anti")
                .select("sku", "warehouse_id", "series_class", pl.col("chosen_model").alias("model"),
                        pl.lit(True).alias("chosen"), pl.lit(0).alias("folds"), "evaluated_at"))

    chosen = s.filter(pl.col("chosen")).with_columns(pl.lit("*").alias("model"))
    others = s.filter(~pl.col("chosen"))
    # the chosen rows count for their model's overall too (every model over every series it was scored on)
    by_model = pl.concat([s.filter(pl.col("chosen")), others])
    overall = []
    for frame in (chosen, by_model):
        overall.append(_metrics(frame.with_columns(pl.lit("*").alias("series_class")), ["series_class", "model"]))
        overall.append(_metrics(frame, ["series_class", "model"]))
    ov = pl.concat(overall).with_columns(
        pl.lit("*").alias("sku"), pl.lit("*").alias("warehouse_id"), (pl.col("model") == "*").alias("chosen"),
        pl.lit(bt.folds).alias("folds"))
    # a series' rows are dated when it was evaluated (``bt.series.evaluated_at``: a kept fit's; default now), the
    # overall rows now
    out = pl.concat([per.drop("uid", "chosen_model", "scale"), untested, ov], how="diagonal_relaxed").with_columns(
        pl.lit(bt.horizon_days).alias("horizon_days"),
        pl.col("evaluated_at").fill_null(pl.lit(now).cast(pl.Datetime("us", "UTC"))),
        pl.col("folds").cast(pl.Int64),
    )
    order = pl.when(pl.col("sku") == "*").then(1).otherwise(0)
    return conform(out.sort(order, "sku", "warehouse_id", pl.col("chosen"), "series_class", "model",
                            descending=[False, False, False, True, False, False]), ForecastAccuracyModel)


def error_stats(bt: Backtest) -> pl.DataFrame:
    """``sku, warehouse_id, model, series_class, sigma_daily``: the chosen model's backtest RMSE per day
    (null for series without backtest; replenishment then uses sqrt(mean daily forecast), a Poisson spread)."""
    return bt.series.select("sku", "warehouse_id", "model", "series_class", "sigma_daily")


def run(demand: pl.DataFrame, cfg: ForecastConfig, now: datetime | None = None, end: date | None = None
        ) -> ForecastResult:
    """Backtest, choose, forecast and score every series of ``demand`` (see :func:`daily_demand`)."""
    now = _utc(now)
    bt = backtest(demand, cfg, end)
    return ForecastResult(forecast=forecast(demand, bt, cfg, now), accuracy=accuracy(bt, cfg, now),
                          errors=error_stats(bt), backtest=bt)


def overall(accuracy_rows: pl.DataFrame) -> dict[str, float | None]:
    """The headline: overall metrics of the chosen models (``'*','*','*'``, class ``'*'``)."""
    row = accuracy_rows.filter((pl.col("sku") == "*") & (pl.col("model") == "*") & (pl.col("series_class") == "*"))
    if row.height == 0:
        return {"mase": None, "wape": None, "bias": None, "mase_vs_seasonal_naive": None}
    return {k: row[k][0] for k in ("mase", "wape", "bias", "mase_vs_seasonal_naive")}


__all__ = ["LEVELS", "ForecastResult", "accuracy", "error_stats", "forecast", "overall", "run"]

