"""docs/data_dictionary.md, generated from the Pandera models (the one schema source).

A test regenerates it and fails when the committed file differs: run ``som docs`` after changing a model.
"""

from __future__ import annotations

from som_pipeline.reasons import REASONS, VALIDATION_REASONS
from som_pipeline.schemas import TABLES, duckdb_type
from som_pipeline.validation.config import DEFAULTS_PATH, load_config


def _checks(col) -> str:
    parts = []
    for c in col.checks:
        stats = {k: v for k, v in (c.statistics or {}).items() if v is not None}
        if stats:
            parts.append(f"{c.name}({', '.join(f'{k}={v!r}' for k, v in stats.items())})")
        else:
            parts.append(str(c.name))
    if col.unique:
        parts.append("unique")
    return "; ".join(parts)


def render_data_dictionary() -> str:
    out = [
        "# Data dictionary",
        "",
        "_Generated from the Pandera models in `som_pipeline/schemas/` by `som docs`; do not edit by hand._",
        "",
        "Every table lives in the DuckDB warehouse (`$SOM_HOME/warehouse/som.duckdb`; analysts open the copy",
        "`som_analytics.duckdb`). Money is `DECIMAL`: exact (rounding rule in `som_pipeline/money.py`).",
        "",
        "## Tables",
        "",
    ]
    for table in TABLES:
        out.append(f"- [`{table}`](#{table.replace('.', '')})")
    out.append("")
    for table, model in TABLES.items():
        schema = model.to_schema()
        doc = (model.__doc__ or "").strip().replace("\n", " ")
        out += [f"### {table}", "", doc, ""]
        if schema.unique:
            out += [f"Key: ({', '.join(schema.unique)})", ""]
        out += ["| column | type | null | rule | description |", "|---|---|---|---|---|"]
        for name, col in schema.columns.items():
            desc = (col.description or "").replace("|", "\\|")
            rule = _checks(col).replace("|", "\\|")
            out.append(f"| `{name}` | {duckdb_type(col.dtype.type)} | {'yes' if col.nullable else 'no'} | {rule} | {desc} |")
        for chk in schema.checks:
            out.append(f"\nTable rule: {chk.name}" + (f" ({chk.description})" if getattr(chk, "description", None) else ""))
        out.append("")
    out += ["## Quarantine reason codes", "", "Capture, reference data and manual decisions (`ops.quarantine.reason_code`).",
            "", "| code | meaning |", "|---|---|"]
    for code, text in REASONS.items():
        out.append(f"| `{code}` | {text.replace('|', chr(92) + '|')} |")
    out += ["", "## Validation reason codes", "",
            "`core.validation_results.reason_code` / `core.order_holds.reason_code`. Default severity from "
            "`som_pipeline/validation/defaults.toml` (reject: the order is REJECTED; hold: ON_HOLD until the cause "
            "goes away or a person approves; warn: recorded only).", "",
            "| code | default severity | meaning |", "|---|---|---|"]
    severity = load_config(DEFAULTS_PATH).severity
    for code, text in VALIDATION_REASONS.items():
        out.append(f"| `{code}` | {severity[code]} | {text.replace('|', chr(92) + '|')} |")
    out.append("")
    return "\n".join(out)
