"""Which PO1 product id is the SKU: a qualifier priority per trading partner, placeholders skipped.

A PO1 carries its product ids as qualifier/id pairs from PO106/PO107 on (X12 element 235 qualifiers:
VN, VP, SK, BP, IN, UP, EN...). Partners often fill a slot with a placeholder (``UNKNOWN``, ``-``, blanks,
zeros) while a real number sits in the next pair. The SKU is the id of the first qualifier of the
partner's priority list that carries a real id; with none of them, the first real id given; an id with
blanks (free text in an id slot) only when nothing else is given. Every pair is kept on the line
(``product_ids``, JSON ``[{"qualifier": "VN", "id": "A-1"}, ...]`` as sent).

Settings (decision: a shipped TOML plus an optional override rather than a reference table, because the
850 reader is a pure function of the file and the settings, read once per capture run):
``som_pipeline/ingest/x12/partners.toml`` (defaults, documented there), overridden by
``$SOM_EDI_PARTNERS_CONFIG`` or ``$SOM_HOME/edi_partners.toml`` (``Settings.edi_partners_config``).

Resolution to the catalog (``SkuRules.catalog`` = ``ref.products`` SKUs, ``SkuRules.aliases`` =
``ref.product_aliases``, given by the capture service): when the id the priority picks is not a catalog SKU,
the real ids are tried in priority order (then as sent) and the first that is a catalog SKU, or an alias of one
(GTIN/UPC/EAN → SKU), gives the SKU. With neither table given, or no id resolving, the priority's pick stays
(validation then reports ``UNKNOWN_SKU``). Every id stays in ``product_ids``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from som_pipeline.tomlconf import read_toml

DEFAULTS = Path(__file__).with_name("partners.toml")
_QUALIFIER = re.compile(r"[A-Z0-9]{2}\Z")
_NO_ID = re.compile(r"[\W_]*\Z|0+\Z")  # only punctuation / blanks, or only zeros


class EdiPartnersConfigError(ValueError):
    """The EDI partners TOML is unreadable or names an unknown key / a malformed qualifier."""


@dataclass(frozen=True)
class SkuRules:
    priority: tuple[str, ...]
    placeholders: frozenset[str]
    partners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ISA06 -> priority
    catalog: frozenset[str] = frozenset()  # ref.products SKUs (empty: no resolution)
    aliases: Mapping[str, str] = field(default_factory=dict)  # ref.product_aliases: alias -> SKU

    def priority_for(self, sender: str | None) -> tuple[str, ...]:
        return self.partners.get((sender or "").strip(), self.priority)

    def is_placeholder(self, value: str) -> bool:
        v = value.strip()
        return bool(_NO_ID.match(v)) or v.upper() in self.placeholders


def load_sku_rules(path: Path | None = None) -> SkuRules:
    """The shipped defaults, with the TOML at ``path`` (when given) over them."""
    data = read_toml(DEFAULTS, EdiPartnersConfigError, "EDI partners settings")
    if path is not None:
        over = read_toml(Path(path), EdiPartnersConfigError, "EDI partners settings")
        for section, table in over.items():
            if section not in ("sku", "partners") or not isinstance(table, dict):
                raise EdiPartnersConfigError(f"{path}: unknown section [{section}] (expected [sku], [partners.<ISA06>])")
            for key, value in table.items():
                if section == "sku" and key not in ("priority", "placeholders"):
                    raise EdiPartnersConfigError(f"{path}: unknown key {key!r} in [sku]")
                if section == "partners" and (not isinstance(value, dict) or set(value) - {"sku_priority"}):
                    raise EdiPartnersConfigError(f"{path}: [partners.{key}] takes one key, sku_priority")
                data[section][key] = value
    return SkuRules(
        _qualifiers(data["sku"].get("priority"), "[sku] priority"),
        frozenset(str(p).strip().upper() for p in _strings(data["sku"].get("placeholders"), "[sku] placeholders")),
        {str(k).strip(): _qualifiers(v.get("sku_priority"), f"[partners.{k}] sku_priority")
         for k, v in data.get("partners", {}).items()},
    )


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EdiPartnersConfigError(f"EDI partners settings: {where} must be a list of strings")
    return value


def _qualifiers(value: Any, where: str) -> tuple[str, ...]:
    out = tuple(q.strip().upper() for q in _strings(value, where))
    bad = [q for q in out if not _QUALIFIER.match(q)]
    if bad:
        raise EdiPartnersConfigError(f"EDI partners settings: {where}: {bad} are not X12 product id qualifiers "
                                     "(two letters/digits, e.g. VN, BP, UP)")
    return out


DEFAULT_RULES = load_sku_rules()


def id_pairs(elements: list[str]) -> list[tuple[str, str]]:
    """The PO106/PO107.. qualifier/id pairs of a PO1 (its elements, segment id first), stripped, empty pairs dropped."""
    pairs = [(elements[i].strip(), elements[i + 1].strip() if i + 1 < len(elements) else "")
             for i in range(6, len(elements), 2)]
    return [(q, v) for q, v in pairs if q or v]


def pick_sku(pairs: list[tuple[str, str]], priority: tuple[str, ...], rules: SkuRules) -> str | None:
    """The SKU among ``pairs``: first qualifier of ``priority`` with a real id, else the first real id
    (an id with blanks only when there is nothing else); None when every id is a placeholder."""
    real = [(q.upper(), v) for q, v in pairs if not rules.is_placeholder(v)]
    pick = _by_priority(real, priority)
    if pick is None or pick in rules.catalog or not (rules.catalog or rules.aliases):
        return pick
    ranked = sorted(real, key=lambda qv: priority.index(qv[0]) if qv[0] in priority else len(priority))
    for _q, v in ranked:  # the first id the catalog knows, directly or through an alias
        if v in rules.catalog:
            return v
        if v in rules.aliases:
            return rules.aliases[v]
    return pick


def _by_priority(real: list[tuple[str, str]], priority: tuple[str, ...]) -> str | None:
    for want in priority:
        for q, v in real:
            if q == want and " " not in v:
                return v
    plain = [v for _, v in real if " " not in v]
    return plain[0] if plain else (real[0][1] if real else None)


def product_ids_json(pairs: list[tuple[str, str]]) -> str | None:
    return json.dumps([{"qualifier": q, "id": v} for q, v in pairs], ensure_ascii=False,
                      separators=(",", ":")) if pairs else None
