"""Small renderers for run metadata and the CLI summary (no dependencies beyond Polars)."""

from __future__ import annotations

import polars as pl


def md_table(df: pl.DataFrame, n: int = 10, max_width: int = 60) -> str:
    """A Markdown table of the first ``n`` rows (cells cut at ``max_width`` characters)."""
    if df.width == 0:
        return "_(no columns)_"
    head = df.head(n)

    def cell(v: object) -> str:
        s = "" if v is None else str(v)
        s = s.replace("|", "\\|").replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for row in head.iter_rows():
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    if df.height > n:
        lines.append(f"\n_{df.height - n:,} more rows_")
    return "\n".join(lines)


def text_table(df: pl.DataFrame, n: int = 20) -> str:
    """A plain-text table for terminals."""
    head = df.head(n)
    cols = head.columns
    rows = [[("" if v is None else str(v)) for v in r] for r in head.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    if df.height > n:
        out.append(f"... {df.height - n:,} more rows")
    return "\n".join(out)
