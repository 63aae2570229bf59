"""Fulfilment settings: carrier accounts, the GS1 company prefix for SSCC labels, dimensional weight, packing.

Defaults below; a TOML file at ``SOM_FULFILMENT_CONFIG`` overrides any of them (same names, top level)::

    gs1_company_prefix = "0614141"
    dim_divisor_cm3_per_kg = 5000
    [shipper_accounts]
    UPS = "A1B2C3"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass(frozen=True)
class FulfilmentConfig:
    # the shipper account number each carrier gave us (part of UPS 1Z numbers; kept on the label of the others)
    shipper_accounts: dict[str, str] = field(default_factory=lambda: {
        "UPS": "5R8939", "FEDEX": "510087020", "USPS": "901234567", "DHL": "1234567890"})
    gs1_company_prefix: str = "0614141"  # GS1 company prefix for SSCC-18 (the GS1 example prefix by default)
    sscc_extension_digit: int = 0
    dim_divisor_cm3_per_kg: int = 5000  # dimensional weight = L x W x H / divisor (the international standard)
    fragile_padding_cm: float = 2.0  # padding around fragile items on each side
    sscc_channels: tuple[str, ...] = ("edi",)  # customers who receive an ASN get an SSCC per carton


def load_fulfilment_config(path: str | os.PathLike[str] | None = None) -> FulfilmentConfig:
    path = path or os.environ.get("SOM_FULFILMENT_CONFIG")
    if not path:
        return FulfilmentConfig()
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    known = {f.name for f in fields(FulfilmentConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown fulfilment setting(s): {', '.join(unknown)}")
    base = FulfilmentConfig()
    if "shipper_accounts" in data:
        data["shipper_accounts"] = {**base.shipper_accounts, **data["shipper_accounts"]}
    if "sscc_channels" in data:
        data["sscc_channels"] = tuple(data["sscc_channels"])
    return FulfilmentConfig(**{**{f.name: getattr(base, f.name) for f in fields(FulfilmentConfig)}, **data})
