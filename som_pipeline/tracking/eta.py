"""ETA and late risk: remaining transit time learned from delivered history. Pure and vectorised (Polars + numpy).

Frames
------
**History / state** (``HISTORY_COLUMNS``): one row per *delivered* shipment -- this is the state table of transit
observations (``state.transit_observations`` when the stage stores it)::

    shipment_id str, carrier_id str, service str, origin_warehouse str, dest_zone int|str (the lane key, read as
    text), shipped_at (LABEL_CREATED), picked_up_at, in_transit_at (the first IN_TRANSIT scan),
    out_for_delivery_at (the first OUT_FOR_DELIVERY), delivered_at -- Datetime UTC; a milestone never scanned is
    null; utc_offset_h float (optional, default 0: the destination's offset from UTC, which defines its local
    day: weekends and the end of the promised day); promised_date Date (optional: only the backtest's P(late)).

:func:`observations_from_events` builds it from normalised milestone events (``shipment_id, milestone,
event_at``: duplicates and out-of-order arrivals are harmless -- each milestone's *first* time is taken, the
delivery's first DELIVERED). A run updates it incrementally with :func:`update_state`: append the shipments
delivered since the last run (an upsert on ``shipment_id``, so a rerun adds nothing) and drop those delivered
before the training window (``EtaConfig.train_window_days``). The model is refitted from the state each run
(500k observations fit in seconds); nothing else carries over.

**Model** (:func:`fit_transit`): one row per cell::

    level (lane | carrier_service | carrier | global), carrier_id, service, origin_warehouse, dest_zone (null
    where the level does not key on them), milestone, age_bucket (index into ``age_edges_h``), age_from_h,
    age_to_h (null: open-ended), landmark_h, n, p00 p05 p10 ... p90 p95 p98 p100

``pXX`` are the empirical quantiles of the *remaining* operating hours from the cohort's landmark (the moment the
shipment had been ``landmark_h`` operating hours in the milestone; ``landmark_h = age_from_h`` except in the
global level's cells filled from a neighbouring bucket), ``p00`` / ``p100`` the minimum and maximum.

**Open shipments** (:func:`predict`)::

    shipment_id, carrier_id, service, origin_warehouse, dest_zone, milestone (LABEL_CREATED | PICKED_UP |
    IN_TRANSIT | OUT_FOR_DELIVERY: the last regular milestone -- a shipment in EXCEPTION is passed with the
    milestone it had), milestone_at (when it entered it, UTC), promised_date (Date, nullable), utc_offset_h
    (optional)

-> ``shipment_id, milestone, eta_p50, eta_p90 (Datetime UTC), p_late, model_level, n_obs`` (same rows, same
order; an unknown milestone gets nulls and ``model_level = 'none'``).

**Accuracy** (:func:`backtest`): per carrier x service, and a ``'*'`` / ``'*'`` row over all:
``carrier_id, service, n, coverage_p90, mae_p50_h, mae_static_h, bias_p50_h, n_static, folds``.

Model: empirical conditional quantiles (landmarking), not a survival model
-------------------------------------------------------------------------
For every delivered shipment, every milestone m it passed and every age bucket start ``a0`` it reached while
still in m (its dwell in m exceeded ``a0``), the history yields one observation: the remaining operating hours
from that landmark to delivery. Quantiles of these per cell (carrier x service x lane x milestone x age bucket)
are the model. Why not Kaplan-Meier / a survival model: censoring is a problem of samples drawn by *ship date*
(the slow shipments of recent weeks are still open). We sample by *delivery date* -- every shipment delivered in
the training window -- which in a steady state has exactly the transit distribution of all shipments, with no
censoring to correct; it also weights what the network is doing *now* (a window of recent deliveries) rather
than the cohort shipped weeks ago. The open shipments are what we predict; LOST ones never enter the history
(the exceptions stage catches them: no scan for N hours). Quantiles are exact order statistics, need no
distributional assumption (the tails of DHL or of a disrupted week are skewed and multi-modal: weekends, failed
attempts), and are computed for millions of observations with one sort per level.

Within a bucket a shipment is older than the landmark by ``e = age - landmark_h``: its remaining time is the
cell's distribution conditioned on ``R > e`` (it is not delivered yet): ``Q_cond(p) = Q(F(e) + p (1 - F(e))) -
e``, where F is the piecewise-linear CDF through the stored quantiles (knots ``(pXX, XX/100)``; 0 below ``p00``,
1 above ``p100``) and Q its inverse. ``P(late) = 1 - (F(x) - F(e)) / (1 - F(e))`` with ``x`` the operating hours
from the landmark to the end of the promised day (midnight local, ``utc_offset_h``); 1 when that has passed.
Remaining times are clipped below at ``min_remaining_h`` so ``now <= eta_p50 <= eta_p90``.

Fallback: a cell is used when it has at least ``min_obs`` observations; else carrier x service (all lanes),
carrier, global (milestone x bucket). Global cells are always kept; an empty global (milestone, bucket) takes the
nearest lower (else higher) bucket's distribution with that bucket's landmark. ``model_level`` says which level
answered, ``n_obs`` its count.

Calibration: the quantile levels that hold now
----------------------------------------------
The window's quantiles describe the last eight weeks; a carrier that has slowed since (a disruption, a peak
week) would make them optimistic, and a pooled lane can be mis-calibrated. So each fit measures its own
calibration on the most recent evidence, PIT recalibration (Kuleshov et al., 2018, "Accurate uncertainties for
deep learning using calibrated regression") made honest for what has not arrived yet: every landmark reached in
the last ``calib_days`` -- by the deliveries of the window and by the shipments still open (``open_``: their
milestone times) -- gives the model's conditional CDF value (PIT) of its remaining time: observed for the
delivered, right-censored at ``as_of`` for the open ones (only "more than so far" is known; leaving them out
would keep only the fast ones). A Kaplan-Meier estimate of the PIT distribution per carrier x service (shrunk
towards the all-carrier one with ``calib_prior`` pseudo-observations, that one towards the identity) gives the
*map*: the nominal level whose quantile recent shipments actually fall under with probability p. The model
frame carries the maps as ``level = 'calibration'`` rows (the knot columns hold the map at each knot);
:func:`predict` reads P50 / P90 at the mapped levels and maps P(late) through the inverse. Identity when the
model is right; measured on the simulator's history: P90 coverage 88.8 % vs 88.1 % unmapped (500k deliveries,
8 rolling origins), and the fold a week after the DHL disruption 84 % vs 68 % for DHL. The onset of a disruption
is not in any history (the fold three days into it: 61 % for DHL either way): the exceptions stage's no-scan
and P(late) alerts are what catch it.

Time: operating-day hours
-------------------------
Weekday effects are handled by measuring every duration on an *operating clock*: calendar hours with the days a
service does not operate removed (``operating_days`` per service: GROUND Mon-Fri, EXPRESS / AIR Mon-Sat by
default), in the destination's local day (``utc_offset_h``, a fixed offset: DST is the caller's offset of the
day). A GROUND parcel picked up on Friday at 17:00 has 7 operating hours left that week, so "20 hours to go"
lands on Monday 13:00 local, not on Saturday. Quantiles, ages and ETAs are on this clock; ETAs are mapped back to
UTC instants. Holidays are not modelled (as in allocation).

Static baseline: ``ref.carrier_rates.transit_days`` business days (Mon-Fri) after the ship date (the local date
of ``shipped_at``), at ``static_eta_local_hour`` -- what allocation plans with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import numpy as np
import polars as pl

Frame = pl.DataFrame | pl.LazyFrame

MILESTONES = ("LABEL_CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY")
MILESTONE_TIMES = ("shipped_at", "picked_up_at", "in_transit_at", "out_for_delivery_at")
LEVELS = ("lane", "carrier_service", "carrier", "global")
LANE_KEYS = ("carrier_id", "service", "origin_warehouse", "dest_zone")
LEVEL_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "lane": LANE_KEYS, "carrier_service": ("carrier_id", "service"), "carrier": ("carrier_id",), "global": ()})
HISTORY_COLUMNS = ("shipment_id", *LANE_KEYS, *MILESTONE_TIMES, "delivered_at")
_US_PER_H = 3_600_000_000


@dataclass(frozen=True)
class EtaConfig:
    """Parameters of the ETA model (defaults documented here)."""

    #: A cell answers when it has at least this many observations; else the next coarser level.
    min_obs: int = 30
    #: Age buckets (operating hours since the milestone): bucket i = [edge i, edge i+1), the last open-ended.
    age_edges_h: tuple[float, ...] = (0, 2, 4, 8, 12, 18, 24, 36, 48, 72, 96, 144)
    #: Probabilities of the stored quantiles (0 and 1: the minimum and maximum).
    knots: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.98, 1.0)
    #: Operating days (Mon..Sun, '1' = operates) per service; others use ``default_operating_days``.
    operating_days: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"EXPRESS": "1111110", "AIR": "1111110"}))
    default_operating_days: str = "1111100"
    #: The model learns from the shipments delivered in this many days before the fit (``as_of``).
    train_window_days: int = 56
    #: Remaining time never predicted below this (hours): ETAs stay after ``now``.
    min_remaining_h: float = 0.25
    #: Static baseline: transit_days business days (this mask, Mon..Sun) after the ship date, at this local hour.
    static_week_mask: str = "1111100"
    static_eta_local_hour: float = 12.0
    #: Recalibration (see "Calibration" in the module docstring): the deliveries of this many days before the fit
    #: measure how the model's quantiles hold *now* (0: no recalibration) ...
    calib_days: float = 7.0
    #: ... per carrier x service, shrunk towards the identity with this many pseudo-observations (a carrier x
    #: service with fewer recent observations than this leans on the all-carrier map).
    calib_prior: int = 300

    def __post_init__(self) -> None:
        e = self.age_edges_h
        if not e or e[0] != 0 or any(b <= a for a, b in zip(e, e[1:], strict=False)) or len(e) > 60:
            raise ValueError("EtaConfig.age_edges_h must start at 0 and increase (at most 60 edges)")
        k = self.knots
        if k[0] != 0 or k[-1] != 1 or any(b <= a for a, b in zip(k, k[1:], strict=False)):
            raise ValueError("EtaConfig.knots must increase from 0 to 1")
        if not {0.5, 0.8, 0.9, 0.95} <= set(k):
            raise ValueError("EtaConfig.knots must include 0.5, 0.8, 0.9 and 0.95")
        for m in (self.default_operating_days, self.static_week_mask, *self.operating_days.values()):
            if len(m) != 7 or set(m) - {"0", "1"} or "1" not in m:
                raise ValueError(f"operating-day mask {m!r}: 7 characters of 0/1, at least one 1")
        if self.min_obs < 1 or self.train_window_days < 1 or self.min_remaining_h < 0:
            raise ValueError("EtaConfig: min_obs >= 1, train_window_days >= 1, min_remaining_h >= 0")
        if self.calib_days < 0 or self.calib_days >= self.train_window_days or self.calib_prior < 0:
            raise ValueError("EtaConfig: 0 <= calib_days < train_window_days, calib_prior >= 0")

    @property
    def knot_columns(self) -> list[str]:
        return [f"p{round(k * 100):02d}" for k in self.knots]


# --- the operating clock -------------------------------------------------------------------------------------

def _mask_tables(masks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    open_ = np.array([[c == "1" for c in m] for m in masks], dtype=bool)
    cum = np.zeros((len(masks), 8))
    cum[:, 1:] = np.cumsum(open_ * 24.0, axis=1)
    return open_, cum


def operating_hours(t_h: np.ndarray, offset_h: np.ndarray, mask_id: np.ndarray, masks: Sequence[str]) -> np.ndarray:
    """Operating hours since the epoch's week start of the instants ``t_h`` (hours since 1970-01-01 UTC; NaN
    stays NaN), each on its own mask (``masks[mask_id]``) and local offset. Closed days contribute nothing: an
    instant on a closed day maps to the start of the next open day."""
    open_, cum = _mask_tables(masks)
    loc = t_h + offset_h
    nan = np.isnan(loc)
    loc = np.where(nan, 0.0, loc)
    d = np.floor(loc / 24.0)
    h = loc - d * 24.0
    x = d + 3.0  # days since Monday 1969-12-29 (1970-01-01 was a Thursday)
    w = np.floor(x / 7.0)
    wd = (x - 7.0 * w).astype(np.int64)
    b = w * cum[mask_id, 7] + cum[mask_id, wd] + np.where(open_[mask_id, wd], h, 0.0)
    return np.where(nan, np.nan, b)


def from_operating_hours(b: np.ndarray, offset_h: np.ndarray, mask_id: np.ndarray,
                         masks: Sequence[str]) -> np.ndarray:
    """Inverse of :func:`operating_hours`: hours since the epoch (UTC) of operating-clock readings."""
    open_, cum = _mask_tables(masks)
    nan = np.isnan(b)
    b = np.where(nan, 0.0, b)
    opw = cum[mask_id, 7]
    w = np.floor(b / opw)
    rem = b - w * opw
    wd = np.zeros(b.shape, dtype=np.int64)
    for m in np.unique(mask_id):  # a handful of masks, not rows
        sel = mask_id == m
        wd[sel] = np.searchsorted(cum[m, :7], rem[sel], side="right") - 1
    loc = ((w * 7.0 + wd) - 3.0) * 24.0 + (rem - cum[mask_id, wd])
    return np.where(nan, np.nan, loc - offset_h)


def _hours(s: pl.Series) -> np.ndarray:
    """A Datetime series as float hours since the epoch (UTC), null -> NaN."""
    if s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us"))
    return (s.dt.epoch("us").cast(pl.Float64) / _US_PER_H).fill_null(np.nan).to_numpy()


def _datetimes(h: np.ndarray, name: str) -> pl.Series:
    """Float hours since the epoch -> Datetime(us, UTC), rounded to the second; NaN -> null."""
    us = np.where(np.isnan(h), 0, np.round(np.nan_to_num(h) * 3600.0)).astype(np.int64) * 1_000_000
    s = pl.Series(name, us).cast(pl.Datetime("us", "UTC"))
    return s.scatter(np.flatnonzero(np.isnan(h)), None) if np.isnan(h).any() else s


def _clock(df: pl.DataFrame, cfg: EtaConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per row: local offset (hours) and operating mask id; the masks."""
    masks = sorted({cfg.default_operating_days, *cfg.operating_days.values()})
    svc_mask = {s: masks.index(m) for s, m in cfg.operating_days.items()}
    mid = (df.select(pl.col("service").replace_strict(svc_mask, default=masks.index(cfg.default_operating_days),
                                                      return_dtype=pl.Int64)).to_series().to_numpy())
    off = (df["utc_offset_h"].cast(pl.Float64).fill_null(0.0).to_numpy() if "utc_offset_h" in df.columns
           else np.zeros(df.height))
    return off, mid, masks


def _eager(df: Frame) -> pl.DataFrame:
    return df.collect() if isinstance(df, pl.LazyFrame) else df


def _lane_text(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("dest_zone").cast(pl.String))


# --- the state: one row per delivered shipment ---------------------------------------------------------------

def observations_from_events(events: Frame, shipments: Frame) -> pl.DataFrame:
    """The history (one row per *delivered* shipment) from normalised milestone events ``shipment_id, milestone,
    event_at`` (other columns ignored) and ``shipments`` (``shipment_id, carrier_id, service, origin_warehouse |
    warehouse_id, dest_zone, shipped_at`` [, ``utc_offset_h``, ``promised_date``]). Each milestone's first time
    counts, so duplicates and late stragglers (an IN_TRANSIT scan received after DELIVERED) change nothing; an
    IN_TRANSIT / OUT_FOR_DELIVERY time after the delivery is ignored."""
    sh = _eager(shipments)
    if "origin_warehouse" not in sh.columns:
        sh = sh.rename({"warehouse_id": "origin_warehouse"})
    ev = (_eager(events).lazy()
          .filter(pl.col("milestone").is_in(["PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]))
          .group_by("shipment_id", "milestone").agg(pl.col("event_at").min())
          .collect()
          .pivot(on="milestone", index="shipment_id", values="event_at",
                 on_columns=["PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]))
    ev = ev.rename({"PICKED_UP": "picked_up_at", "IN_TRANSIT": "in_transit_at",
                    "OUT_FOR_DELIVERY": "out_for_delivery_at", "DELIVERED": "delivered_at"})
    extra = [c for c in ("utc_offset_h", "promised_date") if c in sh.columns]
    out = (sh.select("shipment_id", *LANE_KEYS, "shipped_at", *extra)
           .join(ev, on="shipment_id", how="inner", maintain_order="left")
           .filter(pl.col("delivered_at").is_not_null())
           .with_columns([pl.when(pl.col(c) <= pl.col("delivered_at")).then(pl.col(c)).alias(c)
                          for c in ("picked_up_at", "in_transit_at", "out_for_delivery_at")]))
    return out.select(*HISTORY_COLUMNS, *extra)


def update_state(state: Frame, delivered: Frame, as_of: datetime, cfg: EtaConfig | None = None) -> pl.DataFrame:
    """A run's incremental update of the state table: append the newly delivered shipments (an upsert on
    ``shipment_id``: re-running with the same deliveries gives the same state) and keep only the training window
    (``delivered_at >= as_of - train_window_days``). Equal to building it from the whole history at once."""
    cfg = cfg or EtaConfig()
    st_, new = _eager(state), _eager(delivered)
    new = new.select([c for c in st_.columns if c in new.columns]) if st_.height else new
    both = pl.concat([st_, new], how="diagonal_relaxed") if st_.height else new
    cut = as_of - timedelta(days=cfg.train_window_days)
    return (both.unique("shipment_id", keep="last", maintain_order=True)
            .filter(pl.col("delivered_at") >= cut).sort("delivered_at", "shipment_id"))


# --- fit -----------------------------------------------------------------------------------------------------

def _landmarks(h: pl.DataFrame, cfg: EtaConfig, since_h: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations of the landmark expansion: ``lane_id, cell (milestone * n_buckets + bucket), remaining``.
    ``since_h`` (per row, on its operating clock): only the landmarks reached at or after it."""
    off, mid, masks = _clock(h, cfg)
    t = np.column_stack([operating_hours(_hours(h[c]), off, mid, masks) for c in MILESTONE_TIMES])
    dlv = operating_hours(_hours(h["delivered_at"]), off, mid, masks)
    lane = h["_lane"].to_numpy()
    edges = np.asarray(cfg.age_edges_h, dtype=np.float64)
    nb = len(edges)
    nxt = dlv.copy()
    lanes, cells, rems = [], [], []
    for j in range(len(MILESTONES) - 1, -1, -1):  # 4 milestones x buckets: loops over cells, not rows
        tj = t[:, j]
        dwell, s = nxt - tj, dlv - tj
        ok = ~np.isnan(tj) & (s >= 0) & (dwell >= 0)
        for k, a0 in enumerate(edges):
            sel = ok & (dwell > a0) if k else ok
            if not sel.any():
                break
            if since_h is not None:
                sel = sel & (tj + a0 >= since_h)
            idx = np.flatnonzero(sel)
            lanes.append(lane[idx])
            cells.append(np.full(idx.size, j * nb + k, dtype=np.int32))
            rems.append((s[idx] - a0).astype(np.float64))
        nxt = np.where(np.isnan(tj), nxt, np.fmin(tj, nxt))
    if not lanes:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0)
    return np.concatenate(lanes), np.concatenate(cells), np.concatenate(rems)


def _argsort(values: pl.Series | np.ndarray, stable: bool = False) -> np.ndarray:
    """Permutation sorting ``values`` (multi-threaded Polars sort; small integer keys: numpy's radix sort)."""
    v = np.asarray(values)
    if stable and v.dtype.kind in "iu" and (v.size == 0 or (v.min() >= 0 and v.max() < 2**15)):
        return np.argsort(v.astype(np.int16), kind="stable")
    return (pl.DataFrame({"v": v}).with_row_index("i").sort("v", maintain_order=stable)["i"].to_numpy())


def _quantile_rows(key: np.ndarray, rem: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key: ``key, n, quantiles (linear interpolation between order statistics)``. ``rem`` must be
    sorted ascending: a stable sort by key then leaves each key's values sorted (one float sort for all levels)."""
    perm = _argsort(key, stable=True)
    k, r = key[perm], rem[perm]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if k.size else np.zeros(0, np.int64)
    n = np.diff(np.r_[starts, k.size])
    pos = starts[:, None] + knots[None, :] * (n - 1)[:, None]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, (starts + n - 1)[:, None])
    q = r[lo] + (pos - lo) * (r[hi] - r[lo])
    return k[starts], n, q


def fit_transit(history: Frame, cfg: EtaConfig | None = None, as_of: datetime | None = None,
                open_: Frame | None = None) -> pl.DataFrame:
    """The model frame (see the module docstring) from delivered history. ``as_of``: learn only from the
    shipments delivered in ``[as_of - train_window_days, as_of)`` (what was known then); None: all rows.
    ``open_``: the shipments open at ``as_of`` (lane keys, ``shipped_at`` and the milestone times reached, the
    history's columns without ``delivered_at``) -- the censored evidence of the calibration, which runs only with
    both ``as_of`` and ``open_`` (without what is still on the road, recent deliveries are the fast ones)."""
    cfg = cfg or EtaConfig()
    h = _lane_text(_eager(history)).filter(pl.col("delivered_at").is_not_null())
    if as_of is not None:
        h = h.filter(pl.col("delivered_at") < as_of,
                     pl.col("delivered_at") >= as_of - timedelta(days=cfg.train_window_days))
    lanes = h.select(LANE_KEYS).unique().sort(LANE_KEYS).with_row_index("_lane")
    h = h.join(lanes, on=list(LANE_KEYS), how="left", maintain_order="left")
    lane_id, cell, rem = _landmarks(h, cfg)
    by_rem = _argsort(rem)
    lane_id, cell, rem = lane_id[by_rem], cell[by_rem], rem[by_rem]
    edges = list(cfg.age_edges_h)
    nb, nm = len(edges), len(MILESTONES)
    knots = np.asarray(cfg.knots)
    cols = cfg.knot_columns
    parts = []
    for level in LEVELS:
        keys = list(LEVEL_KEYS[level])
        grp = lanes.select(keys).unique().sort(keys).with_row_index("_g") if keys else None
        g_of_lane = (lanes.join(grp, on=keys, how="left", maintain_order="left")["_g"].to_numpy().astype(np.int64)
                     if keys else np.zeros(lanes.height, np.int64))
        key = g_of_lane[lane_id] * (nm * nb) + cell if lane_id.size else np.zeros(0, np.int64)
        u, n, q = _quantile_rows(key, rem, knots)
        g, c = u // (nm * nb), u % (nm * nb)
        rows = pl.DataFrame({"_g": g.astype(np.uint32), "_m": (c // nb).astype(np.int64),
                             "age_bucket": (c % nb).astype(np.int64), "n": n.astype(np.int64),
                             **{col: q[:, i] for i, col in enumerate(cols)}})
        if level == "global":
            rows = _fill_global(rows, nm, nb, cols)
        else:
            rows = rows.filter(pl.col("n") >= cfg.min_obs)
        if grp is not None:
            rows = rows.join(grp, on="_g", how="left", maintain_order="left")
        parts.append(rows.with_columns(pl.lit(level).alias("level")))
    model = pl.concat(parts, how="diagonal_relaxed")
    for c in LANE_KEYS:
        if c not in model.columns:
            model = model.with_columns(pl.lit(None, pl.String).alias(c))
    to = edges[1:] + [None]
    model = model.with_columns(
        pl.col("_m").replace_strict(dict(enumerate(MILESTONES)), return_dtype=pl.String).alias("milestone"),
        pl.col("age_bucket").replace_strict(dict(enumerate(edges)), return_dtype=pl.Float64).alias("age_from_h"),
        pl.col("age_bucket").replace_strict(dict(enumerate(to)), return_dtype=pl.Float64).alias("age_to_h"),
        pl.col("_src").replace_strict(dict(enumerate(edges)), default=None, return_dtype=pl.Float64)
        .alias("landmark_h") if "_src" in model.columns else pl.lit(None, pl.Float64).alias("landmark_h"),
    ).with_columns(pl.coalesce("landmark_h", "age_from_h").alias("landmark_h"))
    model = model.with_columns(pl.col("age_bucket").cast(pl.Int8))
    order = {lv: i for i, lv in enumerate(LEVELS)}
    model = (model.with_columns(pl.col("level").replace_strict(order, return_dtype=pl.Int8).alias("_o"))
             .sort("_o", *LANE_KEYS, "_m", "age_bucket", nulls_last=True)
             .select("level", *LANE_KEYS, "milestone", "age_bucket", "age_from_h", "age_to_h", "landmark_h", "n",
                     *cols))
    if cfg.calib_days > 0 and h.height and as_of is not None and open_ is not None:
        model = pl.concat([model, _calibration(h, lanes, model, cfg, as_of, _eager(open_))],
                          how="diagonal_relaxed").select(model.columns)
    return model


def _calibration(h: pl.DataFrame, lanes: pl.DataFrame, model: pl.DataFrame, cfg: EtaConfig, ref: datetime,
                 open_: pl.DataFrame) -> pl.DataFrame:
    """The calibration rows (``level = 'calibration'``; see "Calibration" in the module docstring): per carrier x
    service and over all (carrier_id null), the Kaplan-Meier quantiles at the knots of the PIT values of the
    landmarks reached in the last ``calib_days`` -- delivered ones observed, the open shipments' censored at
    ``ref`` -- under ``model``, shrunk towards the all-carrier map (that one towards the identity) with
    ``calib_prior`` pseudo-observations."""
    cols = cfg.knot_columns
    knots = np.asarray(cfg.knots)
    edges = np.asarray(cfg.age_edges_h)
    nb = len(edges)
    cut_h = (ref - timedelta(days=cfg.calib_days)).timestamp() / 3600.0
    off, mid, masks = _clock(h, cfg)
    lane_id, cell, rem = _landmarks(h, cfg, operating_hours(np.full(h.height, cut_h), off, mid, masks))
    # the open shipments: their landmarks reached since the cut, censored at ref (delivered_at := ref)
    c_lane, c_cell, c_rem = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0)
    if open_.height:
        at = pl.lit(ref).cast(pl.Datetime("us", "UTC"))
        o = (_lane_text(open_).join(lanes, on=list(LANE_KEYS), how="inner", maintain_order="left")
             .with_columns(*[pl.when(pl.col(c) <= at).then(pl.col(c)).alias(c) for c in MILESTONE_TIMES],
                           at.alias("delivered_at")))
        if o.height:
            oo, om, omasks = _clock(o, cfg)
            c_lane, c_cell, c_rem = _landmarks(o, cfg, operating_hours(np.full(o.height, cut_h), oo, om, omasks))
    event = np.r_[np.ones(rem.size, bool), np.zeros(c_rem.size, bool)]
    lane_id, cell, rem = np.r_[lane_id, c_lane], np.r_[cell, c_cell], np.r_[rem, c_rem]
    if rem.size == 0:
        return model.head(0)
    a0 = edges[cell % nb]
    q = (lanes[lane_id].select(*LANE_KEYS)
         .with_columns(pl.Series("milestone", np.asarray(MILESTONES)[cell // nb]),
                       pl.Series("age_bucket", cell % nb, dtype=pl.Int8)))
    r, _ = _lookup(q, model)
    ok = r >= 0
    r, event = r[ok], event[ok]
    kn = model.select(cols).to_numpy()[r]
    land = model["landmark_h"].to_numpy()[r]
    fe = _cdf(kn, knots, np.maximum(a0[ok] - land, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(1.0 - fe > 1e-9, (_cdf(kn, knots, rem[ok] + a0[ok] - land) - fe) / (1.0 - fe), 1.0)
    u = np.clip(u, 0.0, 1.0)
    cs = q.filter(pl.Series(ok)).select("carrier_id", "service")
    groups = cs.unique().sort("carrier_id", "service").with_row_index("_g")
    g = cs.join(groups, on=["carrier_id", "service"], how="left", maintain_order="left")["_g"].to_numpy()
    prior = cfg.calib_prior
    n_all, q_all = u.size, _km_quantiles(u, event, knots)
    glob = (n_all * q_all + prior * knots) / (n_all + prior)
    rows = []
    for gi in range(groups.height):  # a carrier x service per iteration: a handful
        sel = g == gi
        n = int(sel.sum())
        rows.append((n * _km_quantiles(u[sel], event[sel], knots) + prior * glob) / (n + prior))
    maps = np.vstack([*rows, glob[None, :]])
    maps[:, 0], maps[:, -1] = 0.0, 1.0  # a bijection of [0, 1]
    counts = np.r_[np.bincount(g, minlength=groups.height), n_all]
    keys = pl.concat([groups.select("carrier_id", "service"),
                      pl.DataFrame({"carrier_id": [None], "service": [None]}, schema=groups.select(
                          "carrier_id", "service").schema)])
    return keys.with_columns(pl.lit("calibration").alias("level"), pl.Series("n", counts, dtype=pl.Int64),
                             *[pl.Series(c, maps[:, i]) for i, c in enumerate(cols)])


def _km_quantiles(u: np.ndarray, event: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Quantiles at ``knots`` of the Kaplan-Meier estimate of the distribution of ``u`` in [0, 1] (``event``
    False: right-censored, the value is only known to exceed ``u``); a level the estimate never reaches (too
    much censoring above it) is 1."""
    order = np.lexsort((~event, u))  # at a tie, the event leaves the risk set before the censored one
    u, ev = u[order], event[order]
    at_risk = u.size - np.arange(u.size)
    with np.errstate(divide="ignore"):
        cdf = 1.0 - np.exp(np.cumsum(np.where(ev, np.log1p(-1.0 / at_risk), 0.0)))
    pos = np.searchsorted(cdf, knots, side="left")
    return np.where(pos < u.size, u[np.minimum(pos, u.size - 1)], 1.0)


def _fill_global(rows: pl.DataFrame, nm: int, nb: int, cols: list[str]) -> pl.DataFrame:
    """The global level on the full (milestone x bucket) grid: an empty cell takes the nearest lower bucket's
    quantiles (else the nearest higher's), keeping that bucket's landmark (``_src``)."""
    grid = pl.DataFrame({"_m": np.repeat(np.arange(nm), nb), "age_bucket": np.tile(np.arange(nb), nm)})
    g = (grid.join(rows.with_columns(pl.col("age_bucket").alias("_src")), on=["_m", "age_bucket"], how="left",
                   maintain_order="left")
         .with_columns(pl.lit(0, pl.UInt32).alias("_g")))
    fill = ["_src", "n", *cols]
    g = g.with_columns([pl.col(c).forward_fill().backward_fill().over("_m") for c in fill])
    return g.filter(pl.col("n").is_not_null())


# --- predict -------------------------------------------------------------------------------------------------

def _cdf(kn: np.ndarray, probs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Piecewise-linear CDF through each row's knots (``kn[i]`` ascending) at ``x[i]``."""
    nk = probs.size
    cnt = (kn <= x[:, None]).sum(axis=1)
    i = np.clip(cnt - 1, 0, nk - 2)
    r = np.arange(x.size)
    x0, x1 = kn[r, i], kn[r, i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(x1 > x0, (x - x0) / (x1 - x0), 1.0)
    f = probs[i] + (probs[i + 1] - probs[i]) * np.clip(frac, 0.0, 1.0)
    return np.where(cnt == 0, 0.0, np.where(cnt >= nk, 1.0, f))


def _qf(kn: np.ndarray, probs: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_cdf`: each row's quantile at ``p[i]``."""
    i = np.clip(np.searchsorted(probs, p, side="right") - 1, 0, probs.size - 2)
    r = np.arange(p.size)
    frac = np.clip((p - probs[i]) / (probs[i + 1] - probs[i]), 0.0, 1.0)
    return kn[r, i] + frac * (kn[r, i + 1] - kn[r, i])


def _lookup(q: pl.DataFrame, model: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``q`` (lane keys, milestone, age_bucket): the model row that answers (the finest level with the
    cell; -1: none) and its level's name."""
    m = model.with_row_index("_mr")
    idx = pl.lit(None, pl.UInt32)
    lvl = pl.lit("none")
    for level in reversed(LEVELS):  # the finest level that answers wins
        keys = [*LEVEL_KEYS[level], "milestone", "age_bucket"]
        cells = m.filter(pl.col("level") == level).select(*keys, pl.col("_mr").alias(f"_r_{level}"))
        q = q.join(cells, on=keys, how="left", maintain_order="left")
        idx = pl.when(pl.col(f"_r_{level}").is_not_null()).then(pl.col(f"_r_{level}")).otherwise(idx)
        lvl = pl.when(pl.col(f"_r_{level}").is_not_null()).then(pl.lit(level)).otherwise(lvl)
    q = q.select(idx.cast(pl.Int64).fill_null(-1).alias("_mr"), lvl.alias("model_level"))
    return q["_mr"].to_numpy(), q["model_level"].to_numpy()


def _calibration_maps(o: pl.DataFrame, model: pl.DataFrame, cfg: EtaConfig) -> np.ndarray:
    """Per row of ``o`` (carrier_id, service): its calibration map -- the level of the model's quantile that
    recent deliveries say holds each nominal knot (its carrier x service's, else the all-carrier map, else the
    identity)."""
    cols = cfg.knot_columns
    cal = model.filter(pl.col("level") == "calibration")
    ident = np.tile(np.asarray(cfg.knots), (o.height, 1))
    if cal.height == 0:
        return ident
    glob = cal.filter(pl.col("carrier_id").is_null()).select(cols)
    per = cal.filter(pl.col("carrier_id").is_not_null()).select("carrier_id", "service", *cols)
    j = o.select("carrier_id", "service").join(per, on=["carrier_id", "service"], how="left", maintain_order="left")
    out = j.select(cols).to_numpy()
    miss = np.isnan(out[:, 0])
    out[miss] = glob.to_numpy()[0] if glob.height else ident[miss]
    return out


def predict(open_shipments: Frame, model: pl.DataFrame, now: datetime, cfg: EtaConfig | None = None) -> pl.DataFrame:
    """P50 / P90 ETA and P(late) of open shipments at ``now`` (see the module docstring)."""
    cfg = cfg or EtaConfig()
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    o = _lane_text(_eager(open_shipments))
    if "promised_date" not in o.columns:
        o = o.with_columns(pl.lit(None, pl.Date).alias("promised_date"))
    off, mid, masks = _clock(o, cfg)
    edges = np.asarray(cfg.age_edges_h, dtype=np.float64)
    t_m = operating_hours(_hours(o["milestone_at"]), off, mid, masks)
    b_now = operating_hours(np.full(o.height, now.timestamp() / 3600.0), off, mid, masks)
    age = np.maximum(b_now - t_m, 0.0)
    bucket = np.searchsorted(edges, np.nan_to_num(age), side="right") - 1
    q = o.select(*LANE_KEYS, "milestone").with_columns(pl.Series("age_bucket", bucket, dtype=pl.Int8))
    r, level_name = _lookup(q, model)
    found = (r >= 0) & ~np.isnan(t_m)
    r = np.maximum(r, 0)
    kn = model.select(cfg.knot_columns).to_numpy()[r]
    probs = np.asarray(cfg.knots)
    land = model["landmark_h"].to_numpy()[r]
    n_obs = model["n"].to_numpy()[r]
    cmap = _calibration_maps(o, model, cfg)
    base = t_m + land  # the cohort's landmark on the operating clock
    e = np.maximum(np.nan_to_num(age) - land, 0.0)
    fe = _cdf(kn, probs, e)
    floor = b_now + cfg.min_remaining_h
    eta = {}
    for p in (0.5, 0.9):
        level = cmap[:, cfg.knots.index(p)]  # the nominal level the recent deliveries say holds p
        eta[p] = np.maximum(base + _qf(kn, probs, fe + level * (1.0 - fe)), floor)
    # P(late): the end of the promised day (local midnight) on the operating clock
    pd_h = _hours(o["promised_date"]) + 24.0 - off
    x = operating_hours(pd_h, off, mid, masks) - base
    tail = 1.0 - fe
    with np.errstate(divide="ignore", invalid="ignore"):
        on_time = np.where(tail > 1e-9, _cdf(cmap, probs, np.clip((_cdf(kn, probs, x) - fe) / tail, 0.0, 1.0)),
                           (operating_hours(pd_h, off, mid, masks) >= eta[0.5]).astype(np.float64))
    p_late = 1.0 - np.clip(on_time, 0.0, 1.0)
    p_late = np.where(pd_h <= now.timestamp() / 3600.0, 1.0, p_late)
    p_late = np.where(np.isnan(pd_h) | ~found, np.nan, np.round(p_late, 6))
    e50 = np.where(found, from_operating_hours(eta[0.5], off, mid, masks), np.nan)
    e90 = np.where(found, from_operating_hours(eta[0.9], off, mid, masks), np.nan)
    return pl.DataFrame([
        o["shipment_id"], o["milestone"], _datetimes(e50, "eta_p50"), _datetimes(e90, "eta_p90"),
        pl.Series("p_late", p_late).fill_nan(None),
        pl.Series("model_level", np.where(found, level_name, "none"), dtype=pl.String),
        pl.Series("n_obs", np.where(found, n_obs, 0), dtype=pl.Int64),
    ])


# --- backtest ------------------------------------------------------------------------------------------------

def milestone_at(history: Frame, at: datetime) -> pl.DataFrame:
    """The shipments of ``history`` in transit at ``at`` (shipped, not delivered) as open shipments: the last
    milestone each had reached by then and when."""
    h = _eager(history).filter(pl.col("shipped_at") <= at, pl.col("delivered_at") > at)
    ms, mt = pl.lit(None, pl.String), pl.lit(None, pl.Datetime("us", "UTC"))
    for name, col in zip(MILESTONES, MILESTONE_TIMES, strict=True):  # later milestones override earlier ones
        reached = pl.col(col).is_not_null() & (pl.col(col) <= at)
        ms = pl.when(reached).then(pl.lit(name)).otherwise(ms)
        mt = pl.when(reached).then(pl.col(col).cast(pl.Datetime("us", "UTC"))).otherwise(mt)
    return h.with_columns(ms.alias("milestone"), mt.alias("milestone_at"))


def static_eta(shipments: Frame, carrier_rates: Frame, cfg: EtaConfig | None = None) -> pl.DataFrame:
    """``shipment_id, static_eta``: the static table's delivery (ship date + ``transit_days`` business days at
    ``static_eta_local_hour`` local; ``carrier_rates`` keyed by carrier_id, service, zone -- the smallest transit
    over weight bands); null when the lane has no rate."""
    cfg = cfg or EtaConfig()
    s = _lane_text(_eager(shipments))
    off = pl.col("utc_offset_h").cast(pl.Float64).fill_null(0.0) if "utc_offset_h" in s.columns else pl.lit(0.0)
    rates = (_eager(carrier_rates).group_by("carrier_id", "service", pl.col("zone").cast(pl.String))
             .agg(pl.col("transit_days").min().cast(pl.Int64)))
    mask = tuple(c == "1" for c in cfg.static_week_mask)
    to_us = (off * _US_PER_H).cast(pl.Int64)
    local_day = (pl.col("shipped_at").dt.replace_time_zone(None) + pl.duration(microseconds=to_us)).dt.date()
    return (s.join(rates, left_on=["carrier_id", "service", "dest_zone"],
                   right_on=["carrier_id", "service", "zone"], how="left", maintain_order="left")
            .select("shipment_id", (
                local_day.dt.add_business_days(pl.col("transit_days"), week_mask=mask, roll="forward")
                .cast(pl.Datetime("us"))
                + pl.duration(microseconds=(cfg.static_eta_local_hour * _US_PER_H) - to_us)
            ).dt.replace_time_zone("UTC").alias("static_eta")))


def default_origins(history: Frame, cfg: EtaConfig | None = None, folds: int = 8) -> list[datetime]:
    """``folds`` rolling origins at 10:00 UTC, evenly spaced from two weeks plus one training window after the
    first shipment (the window's first deliveries are then not only the fast ones of the history's first days)
    to a week before the last shipment (every origin has deliveries after it)."""
    cfg = cfg or EtaConfig()
    h = _eager(history)
    lo = h["shipped_at"].min() + timedelta(days=cfg.train_window_days + 14)
    hi = h["shipped_at"].max() - timedelta(days=7)
    if lo is None or hi is None or hi <= lo:
        raise ValueError("backtest: the history is shorter than one training window plus a week")
    span = (hi - lo) / max(folds - 1, 1)
    return [(lo + i * span).replace(hour=10, minute=0, second=0, microsecond=0) for i in range(folds)]


def backtest(history: Frame, carrier_rates: Frame, cfg: EtaConfig | None = None,
             origins: Sequence[datetime] | None = None, folds: int = 8) -> pl.DataFrame:
    """Rolling-origin accuracy (``core.eta_accuracy``): at each origin, fit on the deliveries before it
    (``fit_transit(as_of=origin)``), predict every shipment in transit at it from the milestone it had then, and
    score against its actual delivery; the static table (``carrier_rates.transit_days``) is scored on the same
    shipments. Per carrier x service plus an all row (``'*'``): ``n`` scored predictions, ``coverage_p90``
    (share delivered on or before eta_p90), ``mae_p50_h``, ``bias_p50_h`` (mean eta_p50 - delivered, hours),
    ``mae_static_h`` over the ``n_static`` shipments whose lane has a rate, ``folds``."""
    cfg = cfg or EtaConfig()
    h = _eager(history)
    origins = list(origins) if origins is not None else default_origins(h, cfg, folds)
    static = static_eta(h, carrier_rates, cfg)
    scored = []
    for at in origins:  # a handful of origins, each fully vectorised
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        test = milestone_at(h, at)
        model = fit_transit(h, cfg, as_of=at, open_=test)
        pred = predict(test, model, at, cfg)
        scored.append(pred.join(test.select("shipment_id", "carrier_id", "service", "delivered_at"),
                                on="shipment_id", how="left", maintain_order="left")
                      .join(static, on="shipment_id", how="left", maintain_order="left")
                      .with_columns(pl.lit(at).alias("origin")))
    s = pl.concat(scored).filter(pl.col("eta_p50").is_not_null())
    hrs = 1.0 / _US_PER_H
    s = s.with_columns(
        ((pl.col("eta_p50") - pl.col("delivered_at")).dt.total_microseconds() * hrs).alias("_err"),
        ((pl.col("static_eta") - pl.col("delivered_at")).dt.total_microseconds() * hrs).alias("_serr"),
        (pl.col("delivered_at") <= pl.col("eta_p90")).alias("_cov"))
    aggs = [pl.len().cast(pl.Int64).alias("n"), pl.col("_cov").mean().alias("coverage_p90"),
            pl.col("_err").abs().mean().alias("mae_p50_h"), pl.col("_serr").abs().mean().alias("mae_static_h"),
            pl.col("_err").mean().alias("bias_p50_h"), pl.col("_serr").count().cast(pl.Int64).alias("n_static"),
            pl.col("origin").n_unique().cast(pl.Int64).alias("folds")]
    per = s.group_by("carrier_id", "service").agg(aggs).sort("carrier_id", "service")
    tot = s.select(pl.lit("*").alias("carrier_id"), pl.lit("*").alias("service"), *aggs)
    return pl.concat([per, tot]).with_columns(pl.col(c).round(4) for c in
                                              ("coverage_p90", "mae_p50_h", "mae_static_h", "bias_p50_h"))
