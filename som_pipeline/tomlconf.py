"""Shared plumbing of the TOML settings files (validation, forecasting): read, and merge an override over
the shipped defaults key by key, refusing unknown sections and keys."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any


def read_toml(path: Path, error: Callable[[str], Exception], label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(f"{label} {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{label} {path} is not valid TOML: {e}") from None


def merge_toml(base: dict[str, Any], over: Mapping[str, Any], source: Path, *, keys: Collection[tuple[str, str]],
               maps: Collection[tuple[str, str]], error: Callable[[str], Exception],
               free: Mapping[str, Collection[str]] | None = None) -> None:
    """Merge ``over`` into ``base``. ``keys``: the known (section, key); ``maps``: those that are tables, merged
    key by key; ``free``: sections whose keys are any of the given names (e.g. severity per reason code)."""
    free = free or {}
    for section, table in over.items():
        if section not in base:
            raise error(f"{source}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise error(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            if section in free:
                if key not in free[section]:
                    raise error(f"{source}: [{section}] unknown key {key!r}")
                base[section][key] = value
                continue
            if (section, key) not in keys:
                raise error(f"{source}: unknown key {key!r} in [{section}]")
            if (section, key) in maps:
                if not isinstance(value, dict):
                    raise error(f"{source}: [{section}.{key}] must be a table")
                base[section].setdefault(key, {}).update(value)
            else:
                base[section][key] = value


def load_layers(defaults: Path, path: Path | str | None, env_var: str, *, label: str,
                keys: Mapping[tuple[str, str], tuple[str, str]], maps: Collection[tuple[str, str]],
                convert: Callable[[str, Any, str], Any], error: Callable[[str], Exception],
                free: Mapping[str, Collection[str]] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shipped ``defaults``, overridden by the TOML at ``path`` (else ``$env_var`` when set).

    Returns ``(data, fields)``: the merged sections, and every known key converted (``keys`` maps
    (section, key) to (field name, kind); ``convert(kind, value, where)`` checks and converts one value).
    """
    import os

    data = read_toml(defaults, error, label)
    override = path if path is not None else (os.environ.get(env_var) or None)
    if override is not None:
        p = Path(override).expanduser()
        merge_toml(data, read_toml(p, error, label), p, keys=keys, maps=maps, error=error, free=free)
    fields: dict[str, Any] = {}
    for (section, key), (field, kind) in keys.items():
        if key not in data.get(section, {}):
            raise error(f"{label}: [{section}] {key} is missing from the defaults")
        fields[field] = convert(kind, data[section][key], f"[{section}] {key}")
    return data, fields
