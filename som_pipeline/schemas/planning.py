"""Demand forecast & replenishment (``core.*``): the daily forecast per SKU x warehouse, its backtested accuracy,
and the transfer / purchase plan; the demand history they learn from (``state.daily_demand``).
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas.base import TsUTC, _f, _Strict


class DailyDemandModel(_Strict):
    """``state.daily_demand``: units ordered per SKU x warehouse x order date, days with demand only (the demand
    history the forecast reads; docs/forecasting.md). Maintained per run: the order dates whose inputs changed are
    recomputed (delete + insert of those dates, one transaction), never the whole history."""

    sku: str = _f("SKU the lines asked for.")
    warehouse_id: str = _f("Warehouse the units are attributed to (allocation, else the order's home warehouse).")
    order_date: pl.Date = _f("Order date (UTC).")
    units: pl.Int64 = _f("Units of live, not-cancelled order lines.", gt=0)
    day_fingerprint: str = _f("Fingerprint of everything the order date's rows derive from (its live lines, their "
                              "allocations, the home-warehouse reference); the same on every row of the date. A "
                              "date whose fingerprint changes is recomputed.")

    class Config:
        strict = True
        unique = ["sku", "warehouse_id", "order_date"]


class ForecastFitModel(_Strict):
    """``state.forecast_fits``: what the last fit of each series learnt, so that a run refits only the series that
    changed (docs/forecasting.md, "Nightly runs"). One row per series x model scored by its backtest (the baseline
    included; a series without backtest: one row, its model, null sums); the series' own columns repeat on its rows.
    A run replaces the rows of the series it refits and deletes those of series that left the window. Everything
    ``core.forecast_accuracy`` shows is recomputed from these sums (per series and overall)."""

    sku: str = _f("SKU.")
    warehouse_id: str = _f("Warehouse.")
    model: str = _f("Model scored on the series (or its model, without backtest).")
    chosen: bool = _f("True for the model chosen for the series.")
    candidate: bool = _f("The model was eligible for the choice (a candidate of the series' class).")
    n: pl.Int64 = _f("Backtest points; null: no backtest.", nullable=True, ge=0)
    sum_abs: float = _f("Sum of |yhat - y| over the backtest points.", nullable=True)
    sum_err: float = _f("Sum of yhat - y.", nullable=True)
    sum_sq: float = _f("Sum of (yhat - y)^2.", nullable=True)
    sum_y: float = _f("Sum of y.", nullable=True)
    mae: float = _f("sum_abs / n.", nullable=True)
    sn_sum_abs: float = _f("Seasonal naive's sum of |yhat - y| on the same points.", nullable=True)
    series_class: str = _f("Demand class at the fit.")
    backtest: bool = _f("The series was long enough to backtest at the fit.")
    theta: bool = _f("In the Theta budget at the fit.")
    ets: bool = _f("In the AutoETS budget at the fit.")
    scale: float = _f("MASE scale (in-sample seasonal-naive MAE) at the fit.", nullable=True)
    sigma_daily: float = _f("Chosen model's backtest RMSE per day.", nullable=True)
    window_fingerprint: str = _f("Fingerprint of the series' demand rows in the window at the fit (and whether it "
                                 "started before it); a different fingerprint now = refit.")
    fit_end: pl.Date = _f("Last day of history of the fit (its window's end); refit once the history's last day is "
                          "more than refit_after_days later.")
    fitted_at: TsUTC = _f("When the series was fitted (its core.forecast_accuracy rows' evaluated_at and its "
                          "core.demand_forecast rows' generated_at).")
    config_fingerprint: str = _f("Hash of the forecast config the fit used; another config = refit.")

    class Config:
        strict = True
        unique = ["sku", "warehouse_id", "model"]


class DemandForecastModel(_Strict):
    """``core.demand_forecast``: daily demand forecast per SKU x warehouse with prediction intervals."""

    sku: str = _f("SKU.")
    warehouse_id: str = _f("Warehouse.")
    forecast_date: pl.Date = _f("Day forecast.")
    forecast: float = _f("Expected units (mean).", ge=0)
    lo_80: float = _f("80 % interval, low.", ge=0)
    hi_80: float = _f("80 % interval, high.", ge=0)
    lo_95: float = _f("95 % interval, low.", ge=0)
    hi_95: float = _f("95 % interval, high.", ge=0)
    model: str = _f("Model chosen for the series by backtest.")
    generated_at: TsUTC = _f("When the forecast was made.")

    class Config:
        strict = True
        unique = ["sku", "warehouse_id", "forecast_date"]


class ForecastAccuracyModel(_Strict):
    """``core.forecast_accuracy``: rolling-origin backtest per series (and ``*``/``*`` overall)."""

    sku: str = _f("SKU ('*' = overall).")
    warehouse_id: str = _f("Warehouse ('*' = overall).")
    model: str = _f("Model (chosen one for the series, or each candidate when evaluated).")
    chosen: bool = _f("True for the model chosen for the series.")
    series_class: str = _f("smooth | intermittent | lumpy | erratic | sparse.")
    mase: float = _f("Mean absolute scaled error (scale: in-sample seasonal naive, season 7).", nullable=True)
    wape: float = _f("Weighted absolute percentage error.", nullable=True)
    bias: float = _f("Mean error / mean actual (positive = over-forecast).", nullable=True)
    mase_vs_seasonal_naive: float = _f("MAE of the model / MAE of seasonal naive on the same folds (< 1 = better).",
                                       nullable=True)
    folds: int = _f("Backtest windows.", ge=0)
    horizon_days: int = _f("Days per window.", ge=1)
    sigma_daily: float = _f("Chosen model's backtest RMSE per day (safety stock uses it); null: no backtest.",
                            nullable=True, ge=0)
    evaluated_at: TsUTC = _f("When.")


class ReplenishmentPlanModel(_Strict):
    """``core.replenishment_plan``: transfers first, then purchase suggestions, each with its reason."""

    proposal_id: str = _f("Id.", unique=True)
    kind: str = _f("transfer | purchase.", isin=["transfer", "purchase"])
    sku: str = _f("SKU.")
    from_warehouse: str = _f("Source warehouse (transfer) or null (purchase).", nullable=True)
    to_warehouse: str = _f("Destination warehouse.")
    quantity: pl.Int64 = _f("Units.", gt=0)
    on_hand: pl.Int64 = _f("Destination units on hand after reservations.")
    safety_stock: pl.Int64 = _f("Safety stock at the destination.", ge=0)
    reorder_point: pl.Int64 = _f("Reorder point at the destination.", ge=0)
    expected_stockout_date: pl.Date = _f("When the destination runs out without this proposal.", nullable=True)
    lead_time_days: int = _f("Lead time assumed.", ge=0)
    reason: str = _f("Why, in words.")
    priority: int = _f("1 = most urgent.", ge=1)
    generated_at: TsUTC = _f("When.")
