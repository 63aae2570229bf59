"""The indexed instance the solvers work on (:class:`Problem`), the report they return (:class:`SolveReport`) and
the shared constants and plan schemas. A new field of the instance (a per-row, per-order or per-resource array
computed once) goes on :class:`Problem`; what a solve reports goes on :class:`SolveReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from som_pipeline.allocation.solver.bookkeeping import _ranges, wh_bits

UNLIMITED = 1 << 40
ASSIGN_SCHEMA = {"i": pl.Int64, "x": pl.Int64, "solver": pl.String}
PLAN_SCHEMA = {"i": pl.Int64, "x": pl.Int64}


@dataclass
class Problem:
    """Indexed instance.

    ``dem``: d, o (order priority index), q, sc. ``opts``: i, d, o, wi, r (stock resource), k (carrier
    resource), unit, parcels, rank (0 = cheapest service of the (row, warehouse)); only options whose stock
    resource has units left. ``kept``: (o, wi) pairs an order already ships from. Residual capacities are
    arrays indexed by r, wi, k.
    """

    dem: pl.DataFrame
    opts: pl.DataFrame
    stock: np.ndarray
    cap: np.ndarray
    parcels: np.ndarray
    kept: pl.DataFrame
    split_penalty: int
    basis: str
    big_m: int = 0

    def __post_init__(self) -> None:
        # per unit left unallocated: ten times the dearest way to ship one unit (split penalty included), so
        # allocating a unit beats any re-routing of up to ten others -- in effect: units first, then cost
        top = int(self.opts["unit"].max()) if self.opts.height else 0
        self.big_m = 10 * (max(1, top) + self.split_penalty * (len(self.cap) + 1)) + 1
        # numpy views for the bookkeeping: option columns by ``i``, per demand row by ``d``, per order by ``o``
        self.col = {c: self.opts[c].to_numpy() for c in self.opts.columns}
        d, o, q = (self.dem[c].to_numpy().astype(np.int64) for c in ("d", "o", "q"))
        sc = self.dem["sc"].to_numpy().astype(bool)
        highest = [int(a.max()) for a in (o, self.col.get("o", o), self.kept["o"].to_numpy()) if len(a)]
        self.n_o = 1 + max(highest, default=0)
        self.q_d = np.zeros(int(d.max()) + 1 if len(d) else 0, dtype=np.int64)
        self.q_d[d] = q
        self.units_o = np.bincount(o, weights=q, minlength=self.n_o).astype(np.int64)
        self.sc_o = np.zeros(self.n_o, dtype=bool)
        self.sc_o[o[sc]] = True
        self.kept_bits = wh_bits(self, self.kept["o"].to_numpy(), self.kept["wi"].to_numpy())
        by_d = np.argsort(d, kind="stable")
        self.dem_d, self.dem_o, self.dem_q = d[by_d], o[by_d], q[by_d]
        # options are sorted by d: the options of row d are opt_start[d]:opt_start[d + 1]
        od = self.col.get("d", np.zeros(0, dtype=np.int64))
        if len(od) and (np.diff(od) < 0).any():
            raise ValueError("Problem: options must be sorted by demand row")
        self.opt_start = np.searchsorted(od, np.arange(len(self.q_d) + 1))

    def options_of(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every option of the rows ``d``: ``(option index i, position in d it belongs to)``, by d then i."""
        n = self.opt_start[d + 1] - self.opt_start[d]
        return _ranges(self.opt_start[d], n), np.repeat(np.arange(len(d)), n)


@dataclass
class SolveReport:
    path: str = ""
    lower_bound: int | None = None
    objective: int = 0
    proven_optimal: bool = False
    relaxation_unallocated: int | None = None
    violations: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    mip_status: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
