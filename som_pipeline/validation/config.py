"""Validation configuration: one documented TOML file of thresholds and policies.

``defaults.toml`` (shipped next to this module, every key commented) holds the defaults. A deployment
overrides any subset with a TOML file of the same shape, given to :func:`load_config` or named by the
environment variable ``SOM_VALIDATION_CONFIG``. Tables are merged key by key; an unknown section or key,
a malformed value or a regular expression that does not compile is a :class:`ConfigError` (one clear line).

Money amounts and money rates are read as :class:`~decimal.Decimal` from quoted strings (a TOML float is
refused for them); statistical parameters (z thresholds, ratios) are floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from som_pipeline.reasons import VALIDATION_REASONS  # re-exported: the validation reason codes
from som_pipeline.tomlconf import load_layers

ENV_VAR = "SOM_VALIDATION_CONFIG"
DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
SEVERITIES = ("reject", "hold", "warn")

# Officially assigned ISO 3166-1 alpha-2 codes (249), shipped as data: never downloaded at run time.
ISO_COUNTRIES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET
    FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT
    JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ
    LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ
    OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA
    RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
    UA UG UM US UY UZ
    VA VC VE VG VI VN VU
    WF WS
    YE YT
    ZA ZM ZW
    """.split()
)


class ConfigError(ValueError):
    """The validation config file is malformed (message names the file and key)."""


@dataclass(frozen=True)
class ValidationConfig:
    """Every threshold and policy of the validation rules (see ``defaults.toml`` for each key's meaning)."""

    # [priority]
    tier_order: tuple[str, ...]
    # [price]
    price_tolerance_abs: Decimal
    price_tolerance_rel: Decimal
    discount_tolerance: Decimal
    discount_tolerance_abs: Decimal
    # [credit]
    credit_grace_days: int
    prepaid_payment_statuses: tuple[str, ...]
    # [quantity]
    qty_min_history: int
    qty_baseline_window: int
    qty_z_threshold: float
    qty_min_ratio: float
    qty_mad_floor: float
    qty_global_median: float
    qty_global_mad: float
    # [order_value]
    value_min_history: int
    value_baseline_window: int
    value_z_threshold: float
    value_min_ratio: float
    value_mad_floor_ratio: float
    value_min_order_value: Decimal
    # [new_customer]
    new_customer_threshold: Decimal
    new_customer_threshold_by_currency: Mapping[str, Decimal]
    # [compliance]
    embargoed_countries: frozenset[str]
    air_ship_method_patterns: tuple[str, ...]
    valid_countries: frozenset[str]
    postal_code_patterns: Mapping[str, str]
    # [inventory]
    hold_reservation_hours: int
    # [workflow]
    history_before: date | None
    as_of: date | None
    # [severity]
    severity: Mapping[str, str]

    # --- derived ----------------------------------------------------------------------------
    @property
    def air_regex(self) -> str:
        """One case-insensitive regex: any air pattern matches."""
        return "(?i)" + "|".join(f"(?:{p})" for p in self.air_ship_method_patterns)

    def outcome(self, reason_code: str) -> str:
        """Result outcome of a reason: 'fail' for reject/hold, 'warn' for warn."""
        return "warn" if self.severity[reason_code] == "warn" else "fail"

    def threshold_for(self, currency: str) -> Decimal:
        return self.new_customer_threshold_by_currency.get(currency, self.new_customer_threshold)


# (section, key) -> (field, kind). kinds: int, float, decimal, str_list, upper_set, regex_list,
# decimal_map, regex_map, severity_map.
_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("priority", "tier_order"): ("tier_order", "str_list"),
    ("price", "tolerance_abs"): ("price_tolerance_abs", "decimal"),
    ("price", "tolerance_rel"): ("price_tolerance_rel", "decimal"),
    ("price", "discount_tolerance"): ("discount_tolerance", "decimal"),
    ("price", "discount_tolerance_abs"): ("discount_tolerance_abs", "decimal"),
    ("credit", "grace_days"): ("credit_grace_days", "int"),
    ("credit", "prepaid_payment_statuses"): ("prepaid_payment_statuses", "lower_list"),
    ("quantity", "min_history"): ("qty_min_history", "pos_int"),
    ("quantity", "baseline_window"): ("qty_baseline_window", "pos_int"),
    ("quantity", "robust_z_threshold"): ("qty_z_threshold", "float"),
    ("quantity", "min_ratio_to_median"): ("qty_min_ratio", "float"),
    ("quantity", "mad_floor"): ("qty_mad_floor", "pos_float"),
    ("quantity", "global_median"): ("qty_global_median", "pos_float"),
    ("quantity", "global_mad"): ("qty_global_mad", "float"),
    ("order_value", "min_history"): ("value_min_history", "pos_int"),
    ("order_value", "baseline_window"): ("value_baseline_window", "pos_int"),
    ("order_value", "robust_z_threshold"): ("value_z_threshold", "float"),
    ("order_value", "min_ratio_to_median"): ("value_min_ratio", "float"),
    ("order_value", "mad_floor_ratio"): ("value_mad_floor_ratio", "pos_float"),
    ("order_value", "min_order_value"): ("value_min_order_value", "decimal"),
    ("new_customer", "first_order_value_threshold"): ("new_customer_threshold", "decimal"),
    ("new_customer", "threshold_by_currency"): ("new_customer_threshold_by_currency", "decimal_map"),
    ("compliance", "embargoed_countries"): ("embargoed_countries", "upper_set"),
    ("compliance", "air_ship_method_patterns"): ("air_ship_method_patterns", "regex_list"),
    ("compliance", "extra_valid_countries"): ("valid_countries", "upper_set"),
    ("compliance", "postal_code_patterns"): ("postal_code_patterns", "regex_map"),
    ("inventory", "hold_reservation_hours"): ("hold_reservation_hours", "pos_int"),
    ("workflow", "history_before"): ("history_before", "optional_date"),
    ("workflow", "as_of"): ("as_of", "optional_date"),
}
_MAP_KEYS = {("new_customer", "threshold_by_currency"), ("compliance", "postal_code_patterns")}


def _convert(kind: str, value: Any, where: str) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"validation config {where}: {why} (got {value!r})")

    if kind in ("int", "pos_int"):
        if not isinstance(value, int) or isinstance(value, bool) or (kind == "pos_int" and value < 1) or value < 0:
            raise bad("expected a " + ("positive" if kind == "pos_int" else "non-negative") + " integer")
        return value
    if kind in ("float", "pos_float"):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (
                kind == "pos_float" and value <= 0):
            raise bad("expected a " + ("positive" if kind == "pos_float" else "non-negative") + " number")
        return float(value)
    if kind == "decimal":
        if not isinstance(value, str):
            raise bad('expected a quoted decimal such as "0.01" (money is never a float)')
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise bad("not a decimal number") from None
        if not d.is_finite() or d < 0:
            raise bad("expected a non-negative decimal")
        return d
    if kind in ("str_list", "lower_list", "upper_set", "regex_list"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("expected a list of non-empty strings")
        if kind == "lower_list":
            return tuple(v.strip().lower() for v in value)
        if kind == "upper_set":
            return frozenset(v.strip().upper() for v in value)
        if kind == "regex_list":
            for p in value:
                _compile(p, where)
        return tuple(value)
    if kind == "decimal_map":
        return MappingProxyType({k.upper(): _convert("decimal", v, f"{where}.{k}") for k, v in value.items()})
    if kind == "regex_map":
        out = {}
        for k, v in value.items():
            if not isinstance(v, str) or not v:
                raise bad(f"pattern of {k} must be a non-empty string")
            _compile(v, f"{where}.{k}")
            out[k.upper()] = v
        return MappingProxyType(out)
    if kind == "optional_date":
        if value in ("", None):
            return None
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise bad(f"{value!r} is not a date (YYYY-MM-DD) or \"\"") from None
    raise AssertionError(kind)


def _compile(pattern: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"validation config {where}: invalid regular expression {pattern!r}: {e}") from None


def load_config(path: Path | str | None = None) -> ValidationConfig:
    """Defaults, overridden by the TOML file at ``path`` (else ``$SOM_VALIDATION_CONFIG``, if set)."""
    data, fields = load_layers(DEFAULTS_PATH, path, ENV_VAR, label="validation config", keys=_KEYS, maps=_MAP_KEYS,
                               convert=_convert, error=ConfigError, free={"severity": VALIDATION_REASONS})
    fields["valid_countries"] = ISO_COUNTRIES | fields["valid_countries"]

    sev = dict(data.get("severity", {}))
    missing = sorted(set(VALIDATION_REASONS) - set(sev))
    if missing:
        raise ConfigError(f"validation config: [severity] has no entry for {', '.join(missing)}")
    for code, s in sev.items():
        if s not in SEVERITIES:
            raise ConfigError(f"validation config [severity] {code}: {s!r} is not one of {'|'.join(SEVERITIES)}")
    fields["severity"] = MappingProxyType(sev)
    tiers = fields["tier_order"]
    if len(set(tiers)) != len(tiers):
        raise ConfigError("validation config [priority] tier_order lists a tier twice")
    return ValidationConfig(**fields)


__all__ = ["ENV_VAR", "ISO_COUNTRIES", "SEVERITIES", "VALIDATION_REASONS", "ConfigError", "ValidationConfig",
           "load_config"]
