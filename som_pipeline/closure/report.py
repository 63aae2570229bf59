"""The nightly closure report: one self-contained HTML document (inline CSS, inline SVG charts, no JavaScript).

:func:`render_report` takes

- ``breaks``: the break state of :func:`som_pipeline.closure.breaks.carry_breaks` (``STATE_COLUMNS``); the open
  rows (``resolved_at`` null) are counted, rows with ``first_seen = now`` are "new tonight" and rows with
  ``resolved_at = now`` "resolved tonight";
- ``orders_closed``: :func:`som_pipeline.closure.status.order_status`'s output (``order_id, closed, closed_at,
  blocking``): orders open / closed / closed in the 24 h before ``now``, open orders per blocking reason;
- ``cycle_times``: :func:`som_pipeline.closure.status.cycle_time_summary` (``stage, n, median_h, p90_h``);
- ``money_at_risk``: :func:`som_pipeline.closure.breaks.money_at_risk` (``break_type, n, amount``).

Sections (each table has an ``id``; each chart is an ``<svg data-chart="...">`` whose bars are ``<rect
class="bar" data-label=".." data-value="..">``, one per row of the table beside it): ``summary``; ``by-type``
(open breaks per type); ``by-age`` (open breaks per age bucket 0-1, 2-7, 8-30, >30 days, all four always
shown); ``money`` (money at risk per type); ``cycle`` (median hours per stage: bars grow left of the zero axis
for a negative median, e.g. invoicing at shipment); ``blocking`` (open orders per reason); ``oldest`` (the
``oldest_n`` oldest open breaks: age desc, then type, key).

The document is UTF-8, every text is escaped (:func:`html.escape`), it references nothing outside itself (no
URL, no script, no font or image to fetch), and the same input gives the same bytes (every table is sorted;
the only clock is ``now``). Money is shown exactly (Decimal text), hours to one decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape

import polars as pl

from som_pipeline.closure.status import REASONS

AGE_BUCKETS = (("0-1", 0, 1), ("2-7", 2, 7), ("8-30", 8, 30), (">30", 31, None))
TS = pl.Datetime("us", "UTC")

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.asof{color:#57606a;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.row{display:flex;gap:32px;align-items:flex-start;flex-wrap:wrap}
svg text{font-size:11px;fill:#1f2328}svg .bar{fill:#0969da}svg .neg{fill:#cf222e}svg .axis{stroke:#57606a}
"""


def _e(x: object) -> str:
    return escape("" if x is None else str(x), quote=True)


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M UTC")
    return str(v)


def bar_chart(name: str, title: str, items: Sequence[tuple[str, float | int | Decimal | None]], *,
              width: int = 520, label_w: int = 190, row_h: int = 22) -> str:
    """A horizontal bar chart as inline SVG: one ``<rect class="bar">`` per item (a null value draws an empty
    bar of width 0), a zero axis, the values printed beside the bars. Negative values grow to the left."""
    vals = [float(v) if v is not None else 0.0 for _, v in items]
    lo, hi = min([0.0, *vals]), max([0.0, *vals])
    span = (hi - lo) or 1.0
    plot_w = width - label_w - 70
    x0 = label_w + plot_w * (-lo / span)
    height = row_h * max(len(items), 1) + 30
    out = [f'<svg data-chart="{_e(name)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f'<text x="0" y="14" font-weight="bold">{_e(title)}</text>']
    for i, ((label, v), f) in enumerate(zip(items, vals, strict=True)):
        y = 22 + i * row_h
        w = plot_w * abs(f) / span
        x = x0 - w if f < 0 else x0
        cls = "bar neg" if f < 0 else "bar"
        out.append(f'<text x="{label_w - 6}" y="{y + row_h * 0.65:.1f}" text-anchor="end">{_e(label)}</text>')
        out.append(f'<rect class="{cls}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                   f'data-label="{_e(label)}" data-value="{_e(_fmt(v))}"><title>{_e(label)}: {_e(_fmt(v))}</title></rect>')
        tx = max(x0, x + w) + 4
        out.append(f'<text x="{tx:.1f}" y="{y + row_h * 0.65:.1f}">{_e(_fmt(v))}</text>')
    out.append(f'<line class="axis" x1="{x0:.1f}" y1="20" x2="{x0:.1f}" y2="{height - 6}"/>')
    out.append("</svg>")
    return "".join(out)


def _table(tid: str, header: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int] = frozenset()) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(_fmt(v))}</td>' if j in numeric else f"<td>{_e(_fmt(v))}</td>"
                                    for j, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table id="{_e(tid)}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{_e(title)}</h2><div class=\"row\">{''.join(parts)}</div></section>"


def _age_bucket() -> pl.Expr:
    e = pl.lit(AGE_BUCKETS[-1][0])
    for label, _, hi in reversed(AGE_BUCKETS[:-1]):
        e = pl.when(pl.col("age_days") <= hi).then(pl.lit(label)).otherwise(e)
    return e


def render_report(breaks: pl.DataFrame, orders_closed: pl.DataFrame, cycle_times: pl.DataFrame,
                  money_at_risk: pl.DataFrame, now: datetime, title: str = "Order closure and reconciliation",
                  *, oldest_n: int = 20) -> str:
    """The report as a UTF-8 HTML string (see the module docstring)."""
    now_l = pl.lit(now).cast(TS)
    open_ = breaks.filter(pl.col("resolved_at").is_null())
    new_n = breaks.filter(pl.col("first_seen").cast(TS) == now_l).height
    resolved_n = breaks.filter(pl.col("resolved_at").cast(TS) == now_l).height
    by_type = (open_.group_by("break_type").agg(pl.len().alias("n"), pl.col("owner_queue").first())
               .sort(["n", "break_type"], descending=[True, False]))
    ages = open_.with_columns(_age_bucket().alias("bucket")).group_by("bucket").agg(pl.len().alias("n"))
    age_n = dict(zip(ages["bucket"].to_list(), ages["n"].to_list(), strict=True))
    age_rows = [(label, age_n.get(label, 0)) for label, _, _ in AGE_BUCKETS]
    mar = money_at_risk.sort(["amount", "break_type"], descending=[True, False])
    mar_rows = list(mar.select("break_type", "n", "amount").iter_rows())
    total_risk = sum((r[2] for r in mar_rows if r[2] is not None), Decimal("0.00"))
    cyc_rows = list(cycle_times.select("stage", "n", "median_h", "p90_h").iter_rows())
    n_closed = orders_closed.filter(pl.col("closed")).height
    day_ago = pl.lit(now - timedelta(days=1)).cast(TS)
    n_closed_24h = orders_closed.filter(pl.col("closed") & (pl.col("closed_at").cast(TS) > day_ago)).height
    blk = (orders_closed.filter(~pl.col("closed")).select(pl.col("blocking").explode()).drop_nulls()
           .group_by("blocking").agg(pl.len().alias("n")))
    blk_n = dict(zip(blk["blocking"].to_list(), blk["n"].to_list(), strict=True))
    blk_rows = [(r, blk_n.get(r, 0)) for r in REASONS] + sorted((r, n) for r, n in blk_n.items() if r not in REASONS)
    oldest = (open_.sort(["age_days", "break_type", "key"], descending=[True, False, False]).head(oldest_n)
              .select("age_days", "break_type", "key", "order_id", "amount", "quantity", "owner_queue", "first_seen",
                      "detail"))
    summary = [("open breaks", open_.height), ("new tonight", new_n), ("resolved tonight", resolved_n),
               ("money at risk", total_risk), ("orders open", orders_closed.height - n_closed),
               ("orders closed", n_closed), ("orders closed in the last 24 h", n_closed_24h)]
    bt_rows = list(by_type.select("break_type", "owner_queue", "n").iter_rows())
    body = [
        f"<h1>{_e(title)}</h1><p class=\"asof\">as of {_e(_fmt(now))}</p>",
        _section("Summary", _table("summary", ("measure", "value"), summary, {1})),
        _section("Open breaks by type", bar_chart("by-type", "Open breaks by type", [(t, n) for t, _, n in bt_rows]),
                 _table("by-type", ("break type", "owner queue", "open"), bt_rows, {2})),
        _section("Open breaks by age (days)", bar_chart("by-age", "Open breaks by age (days)", age_rows),
                 _table("by-age", ("age (days)", "open"), age_rows, {1})),
        _section("Money at risk", bar_chart("money", "Money at risk by type", [(t, a) for t, _, a in mar_rows]),
                 _table("money", ("break type", "breaks", "amount"), mar_rows, {1, 2})),
        _section("Cycle times (hours)", bar_chart("cycle", "Median hours per stage", [(s, m) for s, _, m, _ in cyc_rows]),
                 _table("cycle", ("stage", "orders", "median h", "p90 h"), cyc_rows, {1, 2, 3})),
        _section("Open orders by blocking reason", bar_chart("blocking", "Open orders by reason", blk_rows),
                 _table("blocking", ("reason", "orders"), blk_rows, {1})),
        _section(f"Oldest open breaks (top {oldest_n})",
                 _table("oldest", ("age (days)", "break type", "key", "order", "amount", "quantity", "owner queue",
                                   "first seen", "detail"), list(oldest.iter_rows()), {0, 4, 5})),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>" + "".join(body) + "</body></html>\n")
