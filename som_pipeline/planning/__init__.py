"""Demand forecasting and replenishment: pure functions over Polars frames (no Dagster, no I/O besides the config).

Method, model choice rule, metric definitions and replenishment formulas: ``docs/forecasting.md``.

- :func:`load_config` -- ``defaults.toml`` overridden by ``$SOM_FORECAST_CONFIG`` (or a path)
- :func:`demand_rows` -- ``sku, warehouse_id, ds, y``: daily units per SKU x warehouse, days with demand only
- :func:`window_demand` -- the forecast's input: the last ``history_days`` of sparse history, recent series only
- :func:`daily_demand` -- the same as a full daily grid, zeros filled (small data, tests)
- :func:`classify_series` -- ADI / CV2 class of each series (smooth, erratic, intermittent, lumpy, sparse)
- :func:`backtest` -- rolling-origin backtest of the candidates + the seasonal-naive baseline; model per series
- :func:`forecast` -- ``core.demand_forecast`` rows (80 % / 95 % intervals) from a :class:`Backtest`
- :func:`accuracy` -- ``core.forecast_accuracy`` rows (per series and overall)
- :func:`run` -- all three: a :class:`ForecastResult` (``forecast``, ``accuracy``, ``errors``, ``backtest``)
- :func:`replenishment_plan` -- ``core.replenishment_plan`` rows: transfers first, then purchases
"""

from som_pipeline.planning.config import ConfigError, ForecastConfig, load_config
from som_pipeline.planning.demand import (
    DEMAND_SCHEMA,
    SERIES_CLASSES,
    classify_series,
    daily_demand,
    demand_rows,
    densify,
    home_warehouses,
    window_demand,
)
from som_pipeline.planning.forecast import ForecastResult, accuracy, error_stats, forecast, overall, run
from som_pipeline.planning.models import (
    BASELINE,
    CANDIDATES,
    SPECS,
    Backtest,
    backtest,
    holdout_ratio,
    model_mix,
)
from som_pipeline.planning.replenishment import (
    replenishment_plan,
    reserved_by_warehouse,
    stock_positions,
    stockout_dates,
)

__all__ = [
    "BASELINE",
    "CANDIDATES",
    "DEMAND_SCHEMA",
    "SERIES_CLASSES",
    "SPECS",
    "Backtest",
    "ConfigError",
    "ForecastConfig",
    "ForecastResult",
    "accuracy",
    "backtest",
    "classify_series",
    "daily_demand",
    "demand_rows",
    "densify",
    "error_stats",
    "forecast",
    "holdout_ratio",
    "home_warehouses",
    "load_config",
    "model_mix",
    "overall",
    "replenishment_plan",
    "reserved_by_warehouse",
    "run",
    "stock_positions",
    "stockout_dates",
    "window_demand",
]
