"""Builders for small test inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from som_pipeline.ingest.common import Captured, ParseResult, normalise, raw_frame


def order_rows(ref: str, lines: list[dict], *, record_prefix: str = "r", **header) -> list[dict]:
    """Raw rows (one per line) for one order, record-per-line like the CSV template."""
    base = {"order_ref": ref, "order_ts": "2026-10-01T10:00:00Z", "currency": "USD", "customer_ref": "C1"}
    base.update(header)
    rows = []
    for i, ln in enumerate(lines, start=1):
        r = {"record_id": f"{record_prefix}{ref}-{i}", "record_kind": "row", "record_location": f"line {i + 1}",
             "order_key": ref, "location": f"line {i + 1}", "raw": f"{ref},{i}", "line_no": str(i)}
        r.update(base)
        r.update({k: str(v) for k, v in ln.items()})
        rows.append(r)
    return rows


def capture(rows: list[dict], *, channel: str = "csv", sha: str = "a" * 64, at: datetime | None = None,
            line_no_given: bool = True) -> Captured:
    pr = ParseResult(channel, "row", raw_frame(rows))
    return normalise(pr, source_file=f"{sha[:6]}.csv", file_sha256=sha,
                     captured_at=at or datetime(2026, 10, 2, tzinfo=UTC), line_no_given=line_no_given)


def staged(*caps: Captured) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Concatenate captures as stage.order_headers / stage.order_lines with arrival sequence numbers."""
    h = pl.concat([c.headers for c in caps]).with_columns(pl.int_range(1, pl.len() + 1).cast(pl.Int64).alias("capture_seq"))
    return h, pl.concat([c.lines for c in caps])
