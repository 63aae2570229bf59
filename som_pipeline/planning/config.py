"""Forecast & replenishment configuration: one documented TOML file (``defaults.toml`` next to this module).

A deployment overrides any subset with a TOML file of the same shape, given to :func:`load_config` or named by
the environment variable ``SOM_FORECAST_CONFIG``. Sections are merged key by key (the per-category tables too);
an unknown section or key, or a value of the wrong kind, is a :class:`ConfigError` (one clear line).
Use :func:`dataclasses.replace` on the returned :class:`ForecastConfig` to change a value in code (tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from types import MappingProxyType
from typing import Any

from som_pipeline.tomlconf import load_layers

ENV_VAR = "SOM_FORECAST_CONFIG"
DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
ACCURACY_ROWS = ("all", "chosen")
TRANSFER_SCOPES = ("country", "network")


class ConfigError(ValueError):
    """The forecast config file is malformed (the message names the file and key)."""


@dataclass(frozen=True)
class ForecastConfig:
    """Every knob of forecasting and replenishment (``defaults.toml`` holds the values and each key's meaning;
    :func:`load_config` is the way to get one)."""

    # [history]
    history_days: int
    heavy_history_days: int
    min_train_days: int
    min_demand_days: int
    # [classification]
    adi_cutoff: float
    cv2_cutoff: float
    # [backtest]
    folds: int
    fold_horizon_days: int
    tie_tolerance: float
    accuracy_rows: str
    # [models]
    season_length: int
    window_days: int
    seasonal_windows: int
    tsb_alpha_d: float
    tsb_alpha_p: float
    theta_max_series: int
    ets_max_series: int
    ets_model: str
    n_jobs: int
    max_rows_per_call: int
    # [forecast]
    horizon_days: int
    refit_after_days: int
    # [replenishment]
    service_level: float
    supplier_lead_time_days: int
    transfer_lead_time_days: int
    coverage_days: int
    min_transfer_units: int
    transfer_scope: str
    lead_time_by_category: Mapping[str, int]
    service_level_by_category: Mapping[str, float]

    # --- derived ----------------------------------------------------------------------------
    @property
    def backtest_days(self) -> int:
        """Days covered by the backtest windows."""
        return self.folds * self.fold_horizon_days

    @property
    def min_history_days(self) -> int:
        """Shortest active range that is backtested (shorter: class sparse, no backtest)."""
        return self.min_train_days + self.backtest_days

    def fit_fingerprint(self) -> str:
        """Hash of every knob a series' fit (classification, backtest, choice, forecast) depends on: a fit kept
        from a run with another value of any of them is refitted (``state.forecast_fits.config_fingerprint``).
        Not in it: ``refit_after_days``, ``n_jobs``, ``max_rows_per_call`` (results do not depend on them) and
        the replenishment keys."""
        import hashlib

        skip = {"refit_after_days", "n_jobs", "max_rows_per_call"}
        keys = [f for f, _k in _KEYS.values() if f not in skip and _SECTION[f] != "replenishment"]
        text = repr([(k, getattr(self, k)) for k in sorted(keys)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def lead_time(self, category: str | None) -> int:
        return self.lead_time_by_category.get(category or "", self.supplier_lead_time_days)

    def service(self, category: str | None) -> float:
        return self.service_level_by_category.get(category or "", self.service_level)

    @staticmethod
    def z(service_level: float) -> float:
        """Standard normal quantile of the service level (0.95 -> 1.6449)."""
        return NormalDist().inv_cdf(service_level)


# (section, key) -> (field, kind)
_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("history", "history_days"): ("history_days", "pos_int"),
    ("history", "heavy_history_days"): ("heavy_history_days", "pos_int"),
    ("history", "min_train_days"): ("min_train_days", "pos_int"),
    ("history", "min_demand_days"): ("min_demand_days", "int"),
    ("classification", "adi_cutoff"): ("adi_cutoff", "pos_float"),
    ("classification", "cv2_cutoff"): ("cv2_cutoff", "pos_float"),
    ("backtest", "folds"): ("folds", "pos_int"),
    ("backtest", "fold_horizon_days"): ("fold_horizon_days", "pos_int"),
    ("backtest", "tie_tolerance"): ("tie_tolerance", "float"),
    ("backtest", "accuracy_rows"): ("accuracy_rows", "accuracy_rows"),
    ("models", "season_length"): ("season_length", "pos_int"),
    ("models", "window_days"): ("window_days", "pos_int"),
    ("models", "seasonal_windows"): ("seasonal_windows", "pos_int"),
    ("models", "tsb_alpha_d"): ("tsb_alpha_d", "unit_float"),
    ("models", "tsb_alpha_p"): ("tsb_alpha_p", "unit_float"),
    ("models", "theta_max_series"): ("theta_max_series", "int"),
    ("models", "ets_max_series"): ("ets_max_series", "int"),
    ("models", "ets_model"): ("ets_model", "ets_model"),
    ("models", "n_jobs"): ("n_jobs", "pos_int"),
    ("models", "max_rows_per_call"): ("max_rows_per_call", "pos_int"),
    ("forecast", "horizon_days"): ("horizon_days", "pos_int"),
    ("forecast", "refit_after_days"): ("refit_after_days", "int"),
    ("replenishment", "service_level"): ("service_level", "service_level"),
    ("replenishment", "supplier_lead_time_days"): ("supplier_lead_time_days", "int"),
    ("replenishment", "transfer_lead_time_days"): ("transfer_lead_time_days", "int"),
    ("replenishment", "coverage_days"): ("coverage_days", "int"),
    ("replenishment", "min_transfer_units"): ("min_transfer_units", "pos_int"),
    ("replenishment", "transfer_scope"): ("transfer_scope", "transfer_scope"),
    ("replenishment", "lead_time_by_category"): ("lead_time_by_category", "int_map"),
    ("replenishment", "service_level_by_category"): ("service_level_by_category", "service_map"),
}
_MAPS = {k for k, (_f, kind) in _KEYS.items() if kind.endswith("_map")}
_SECTION = {f: section for (section, _key), (f, _kind) in _KEYS.items()}


def _convert(kind: str, value: Any, where: str) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"forecast config {where}: {why} (got {value!r})")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int":
        if not is_int or value < 0:
            raise bad("expected a non-negative integer")
        return value
    if kind == "pos_int":
        if not is_int or value < 1:
            raise bad("expected a positive integer")
        return value
    if kind == "float":
        if not is_num or value < 0:
            raise bad("expected a non-negative number")
        return float(value)
    if kind == "pos_float":
        if not is_num or value <= 0:
            raise bad("expected a positive number")
        return float(value)
    if kind == "unit_float":
        if not is_num or not 0 < value <= 1:
            raise bad("expected a number in (0, 1]")
        return float(value)
    if kind == "service_level":
        if not is_num or not 0.5 <= value < 1:
            raise bad("expected a service level in [0.5, 1)")
        return float(value)
    if kind == "accuracy_rows":
        if value not in ACCURACY_ROWS:
            raise bad(f"expected one of {' | '.join(ACCURACY_ROWS)}")
        return value
    if kind == "transfer_scope":
        if value not in TRANSFER_SCOPES:
            raise bad(f"expected one of {' | '.join(TRANSFER_SCOPES)}")
        return value
    if kind == "ets_model":
        ok = (isinstance(value, str) and len(value) == 3 and value[0] in "ZAM" and value[1] in "ZNAM"
              and value[2] in "ZNAM")
        if not ok:
            raise bad('expected an ETS spec of three letters such as "ZZZ" or "ANA"')
        return value
    if kind == "int_map":
        return MappingProxyType({str(k): _convert("int", v, f"{where}.{k}") for k, v in value.items()})
    if kind == "service_map":
        return MappingProxyType({str(k): _convert("service_level", v, f"{where}.{k}") for k, v in value.items()})
    raise AssertionError(kind)


def load_config(path: Path | str | None = None) -> ForecastConfig:
    """Defaults, overridden by the TOML file at ``path`` (else ``$SOM_FORECAST_CONFIG``, when set)."""
    _data, fields = load_layers(DEFAULTS_PATH, path, ENV_VAR, label="forecast config", keys=_KEYS, maps=_MAPS,
                               convert=_convert, error=ConfigError)
    if fields["heavy_history_days"] > fields["history_days"]:
        raise ConfigError("forecast config: [history] heavy_history_days must not exceed history_days")
    need = fields["min_train_days"] + fields["folds"] * fields["fold_horizon_days"]
    if need > fields["heavy_history_days"]:
        raise ConfigError(f"forecast config: [history] heavy_history_days ({fields['heavy_history_days']}) must "
                          f"cover min_train_days + folds x fold_horizon_days ({need})")
    return ForecastConfig(**fields)


__all__ = ["ACCURACY_ROWS", "TRANSFER_SCOPES", "DEFAULTS_PATH", "ENV_VAR", "ConfigError", "ForecastConfig", "load_config"]
