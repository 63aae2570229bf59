"""The template's columns, and a file's header mapped onto them (names case-insensitive, surrounding
spaces ignored, any order; unknown columns are ignored, a missing required or a repeated template column
makes every row ``CSV_MISSING_COLUMN``)."""

from __future__ import annotations

from typing import Any

from som_pipeline.ingest.common import HEADER_FIELDS, LINE_FIELDS

CHANNEL = "csv"
RECORD_UNIT = "row"
RECORD_KIND = "row"

REQUIRED_COLUMNS: tuple[str, ...] = (
    "channel_order_ref", "order_ts", "customer_ref", "currency", "ship_to_name", "ship_to_line1",
    "ship_to_city", "ship_to_postal_code", "ship_to_country", "line_no", "sku", "quantity", "unit_price",
    "discount_pct", "tax_rate", "promo_code",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "customer_po", "ship_to_company", "ship_to_line2", "ship_to_region", "ship_method", "ship_complete",
    "description", "uom",
)
TEMPLATE_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
#: template column -> raw-row field (common.HEADER_FIELDS / LINE_FIELDS); all others keep their name
RAW_FIELD: dict[str, str] = {c: ("order_ref" if c == "channel_order_ref" else c) for c in TEMPLATE_COLUMNS}
assert set(RAW_FIELD.values()) <= set(HEADER_FIELDS) | set(LINE_FIELDS)

#: order-level values the template requires (besides sku, quantity and line_no, which normalise()
#: always requires with ``line_no_given=True``); pass as ``normalise(chunk, ..., **NORMALISE_OPTIONS)``
REQUIRED_HEADER_VALUES: tuple[str, ...] = (
    "order_ref", "order_ts", "customer_ref", "currency", "ship_to_name", "ship_to_line1", "ship_to_city",
    "ship_to_postal_code", "ship_to_country",
)
NORMALISE_OPTIONS: dict[str, Any] = {"line_no_given": True, "required_header": REQUIRED_HEADER_VALUES}


class Columns:
    """The file's columns mapped to the template; staged column ``c<i>`` holds the file's column ``i``."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.names = [h.replace("\ufeff", "").strip().lower() for h in header]
        self.n = len(header)
        self.stage = [f"c{i}" for i in range(self.n)]
        where: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            where.setdefault(name, []).append(i)
        self.index = {name: idx[0] for name, idx in where.items() if name in TEMPLATE_COLUMNS}
        self.missing = [c for c in REQUIRED_COLUMNS if c not in where]
        self.duplicates = {c: idx for c, idx in where.items() if c in TEMPLATE_COLUMNS and len(idx) > 1}
        self.ignored = [header[i] for i, name in enumerate(self.names) if name not in TEMPLATE_COLUMNS]
        self.problem = self._problem()

    def _problem(self) -> str | None:
        """Why no row can be read (missing or repeated template columns), or None."""
        problems = []
        if self.missing:
            problems.append("the header lacks required column(s): " + ", ".join(self.missing))
            if self.n == 1 and any(s in self.header[0] for s in (";", "\t", "|")):
                problems[-1] += " (the file does not look comma-separated)"
        for c, idx in self.duplicates.items():
            problems.append(
                f"column {c} appears {len(idx)} times (columns " + ", ".join(str(i + 1) for i in idx)
                + "): the template does not say which one holds the value"
            )
        return "; ".join(problems) or None

    @property
    def ref_col(self) -> str | None:
        i = self.index.get("channel_order_ref")
        return None if i is None else self.stage[i]
