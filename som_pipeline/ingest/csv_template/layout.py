"""Step 4a, row metadata and line layout: for every staged row its order key, and its exact physical line
and data-row ordinal, even after quoted newlines, blank lines and rejected rows.

Row numbering: ``record_id`` is ``row <n>`` (n counts data rows, rejected ones included, blank ones
not); ``location`` is ``line <physical line>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from som_pipeline.ingest.csv_template.columns import Columns
from som_pipeline.ingest.csv_template.prepare import Source


def row_meta(stage: Path, cols: Columns, is_parquet: bool) -> pl.DataFrame:
    """rid (file order), order key, physical lines spanned (1 + newlines in the fields), blank flag."""
    lf = pl.scan_parquet(stage).with_row_index("rid")
    c = [pl.col(s) for s in cols.stage]
    if cols.ref_col is not None:
        ref = pl.col(cols.ref_col).str.strip_chars()
        ref = pl.when(ref.is_null() | (ref == "")).then(None).otherwise(ref)
    else:
        ref = pl.lit(None, pl.String)
    # empty refs must not group together: a key no real reference can equal
    okey = pl.coalesce(ref, pl.lit("\x00row ") + pl.col("rid").cast(pl.String))
    if is_parquet:
        span = pl.lit(1, pl.Int64)
        blank = pl.lit(False)
    else:
        span = 1 + pl.sum_horizontal([x.str.count_matches("\n", literal=True).fill_null(0) for x in c]).cast(pl.Int32)
        blank = pl.all_horizontal([x.is_null() | (x.str.strip_chars() == "") for x in c])
    return lf.select("rid", okey.alias("okey"), span.alias("span"), blank.alias("blank")).collect(engine="streaming")


def layout(
    meta: pl.DataFrame, rej: pl.DataFrame, src: Source
) -> tuple[pl.Series, pl.Series, pl.DataFrame, bool, int]:
    """Physical line and data-row ordinal of every parsed row and every rejected record.

    After the header, the file is a sequence of *units*: parsed rows (known only by order and by how
    many lines they span: 1 + newlines inside their fields), rejected records (DuckDB gives their
    logical number: records and blank lines before them count one each) and blank lines (known by
    physical line, from the preparation scan). The few rejects and blank lines are placed by a merge
    (:func:`_place_events`); parsed rows fill the gaps, so their lines come from cumulative sums
    (vectorised). Returns (line, ordinal, rejects with ``phys_line``/``ordinal``, exact, last line)."""
    n = meta.height
    base = src.lead_lines + src.header_lines + 1  # physical line of the first unit
    pre = _Prefix.of(meta)
    blanks = [o for o in src.blank_lines if o >= base]
    ev = _place_events(pre, rej, blanks, base, first_logical=src.lead_lines + 2)
    last_line = base + pre.total + ev.phys_extra - 1  # the last physical line accounted for

    # each parsed row takes the offsets of the last event before it
    seg_k = pl.Series(ev.seg_start, dtype=pl.Int64)
    idx = seg_k.search_sorted(pl.int_range(n, eager=True, dtype=pl.Int64), side="right") - 1
    line = (base + pre.pref + pl.Series(ev.seg_phys, dtype=pl.Int64).gather(idx)).alias("line")
    ordinal = (pl.int_range(1, n + 1, eager=True, dtype=pl.Int64) - pre.bpref
               + pl.Series(ev.seg_ord, dtype=pl.Int64).gather(idx))
    rej = rej.with_columns(
        pl.Series("phys_line", ev.r_line, dtype=pl.Int64), pl.Series("ordinal", ev.r_ord, dtype=pl.Int64)
    )
    return line, ordinal.alias("ordinal"), rej, ev.exact, last_line


@dataclass
class _Prefix:
    """Prefix sums over the parsed rows: ``pref[k]`` = physical lines before row k (relative to the first
    unit, rejects and blank lines not counted), ``bpref[k]`` = blank rows before row k."""

    n: int
    pref: pl.Series
    bpref: pl.Series
    total: int  # physical lines of all parsed rows
    b_total: int  # blank parsed rows

    @classmethod
    def of(cls, meta: pl.DataFrame) -> _Prefix:
        n = meta.height
        extra = (meta["span"] - 1).cast(pl.Int64)
        pref = (pl.int_range(n, eager=True, dtype=pl.Int64) + extra.cum_sum() - extra).alias("pref")
        bl = meta["blank"].cast(pl.Int64)
        return cls(n, pref, bl.cum_sum() - bl, n + int(extra.sum() or 0), int(bl.sum() or 0))

    def lines_before(self, k: int) -> int:
        return self.total if k >= self.n else int(self.pref[k])

    def blanks_before(self, k: int) -> int:
        return self.b_total if k >= self.n else int(self.bpref[k])


@dataclass
class _Events:
    """Rejects and blank lines placed among the parsed rows. After event j, parsed rows from
    ``seg_start[j]`` on are shifted by ``seg_phys[j]`` lines and ``seg_ord[j]`` ordinals."""

    r_line: list[int] = field(default_factory=list)  # physical line of each reject
    r_ord: list[int | None] = field(default_factory=list)  # its data-row ordinal (None: blank)
    seg_start: list[int] = field(default_factory=lambda: [0])
    seg_phys: list[int] = field(default_factory=lambda: [0])
    seg_ord: list[int] = field(default_factory=lambda: [0])
    exact: bool = True
    phys_extra: int = 0  # physical lines of the events placed


def _place_events(pre: _Prefix, rej: pl.DataFrame, blanks: list[int], base: int, first_logical: int) -> _Events:
    """Merge the rejects (by DuckDB's logical line) and the blank lines (by physical line) in file order."""
    n = pre.n
    r_logical = rej["line"].to_list()
    r_span = rej["span"].to_list()
    r_blank = rej["blank"].to_list()
    ev = _Events()
    a = units = ord_extra = 0
    ri = bi = 0
    while ri < len(r_logical) or bi < len(blanks):
        take_blank = False
        if bi < len(blanks):
            target = blanks[bi] - base - ev.phys_extra
            a_j = max(a, int(pre.pref.search_sorted(target, side="left"))) if target <= pre.total else n
            unit_j = units + (a_j - a)
            take_blank = ri >= len(r_logical) or unit_j < r_logical[ri] - first_logical
        if take_blank:
            bi += 1
            if pre.lines_before(a_j) != target:
                ev.exact = False  # parity misread (a stray quote): skip this blank line
                continue
            a, units, ev.phys_extra = a_j, unit_j + 1, ev.phys_extra + 1
        else:
            unit_r = r_logical[ri] - first_logical
            a_r = a + (unit_r - units)
            if not a <= a_r <= n:
                ev.exact = False
                a_r = min(max(a_r, a), n)
            ev.r_line.append(base + pre.lines_before(a_r) + ev.phys_extra)
            ev.r_ord.append(None if r_blank[ri] else a_r - pre.blanks_before(a_r) + ord_extra + 1)
            units = units + (a_r - a) + 1
            a = a_r
            ev.phys_extra += r_span[ri]
            ord_extra += 0 if r_blank[ri] else 1
            ri += 1
        ev.seg_start.append(a)
        ev.seg_phys.append(ev.phys_extra)
        ev.seg_ord.append(ord_extra)
    return ev
