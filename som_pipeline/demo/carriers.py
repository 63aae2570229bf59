"""A carrier simulator that makes the ETA problem non-trivial. Seeded numpy, vectorised (200k shipments in
about a second).

:func:`simulate_transits` turns shipments (``shipment_id, carrier_id, service, warehouse_id, dest_zone,
shipped_at`` [, ``utc_offset_h``]) into normalised milestone events::

    shipment_id, carrier_id, service, milestone (LABEL_CREATED | PICKED_UP | IN_TRANSIT | OUT_FOR_DELIVERY |
    DELIVERED | EXCEPTION), exception (DELAY | FAILED_ATTEMPT | LOST, null for a regular milestone),
    event_at (when it happened, UTC), received_at (when the feed delivered it, UTC)

sorted by ``received_at`` (the feed's arrival order). The world it simulates:

- **Local time**: each shipment lives in its origin warehouse's fixed UTC offset (:data:`WAREHOUSE_UTC_OFFSET`;
  the demo's lanes are mostly domestic); weekends and mornings are local.
- **Pickup**: the carrier collects at 17:00 local on business days (Mon-Fri); a label created after the 16:00
  cutoff, or on a weekend, waits for the next business day (Friday evening labels wait until Monday); 4 % of
  pickups are missed by a day.
- **Line haul**: first IN_TRANSIT scan 1.5-5 h after pickup, then a scan about every 16 operating hours; the
  haul lasts ``transit_days(service, zone)`` days (the static table's formula, which the allocation plans with)
  x a carrier speed x a lane factor (fixed per carrier x warehouse x zone: some lanes are systematically slower
  or faster than the table), times a gamma noise whose spread is the carrier's: UPS tight, FEDEX wider, DHL
  15 % slower and much more variable. It runs on the service's operating days (GROUND Mon-Fri, EXPRESS / AIR
  Mon-Sat).
- **Delivery**: OUT_FOR_DELIVERY at 07:30-09:00 local on the first operating day after the parcel reaches the
  destination hub (the same day when it arrives before 06:00): no weekend delivery for GROUND, no Sunday one for
  anyone; DELIVERED after a route of ~4 h (GROUND) or ~2.5 h (EXPRESS / AIR).
- **Exceptions**: 3 % EXCEPTION/DELAY during the haul (18-60 more operating hours); 1 % EXCEPTION/FAILED_ATTEMPT
  at the first attempt, then OUT_FOR_DELIVERY again the next operating day and DELIVERED; 0.3 % LOST: scans stop
  mid-haul, EXCEPTION/LOST ten days later, never delivered.
- **Disruption** (optional ``Disruption(carrier_id, start, end, extra_hours)``): that carrier's shipments whose
  haul overlaps the window take 0.5-1.5 x ``extra_hours`` more and their noise doubles.
- **Feed defects**: received 0-24 h after the event (log-normal lag, so arrivals interleave out of order);
  :data:`DUPLICATE_RATE` of the events arrive twice; :data:`STRAGGLER_RATE` of the delivered shipments get a
  late IN_TRANSIT scan timestamped after their DELIVERED.

A carrier outside :data:`CARRIERS` is simulated as DHL, a service outside :data:`SERVICES` as GROUND.

:func:`shipments` draws a realistic shipment mix (weekday volumes, warehouses, zones, carriers, services,
promised dates); :func:`history` simulates them and returns the delivered history the ETA model learns from
(:func:`som_pipeline.tracking.eta.observations_from_events`), by default with a DHL disruption in it;
:func:`snapshot` is what a status table would say at a moment (the open shipments to predict).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
import polars as pl

from som_pipeline.tracking.eta import from_operating_hours, observations_from_events, operating_hours

WAREHOUSE_UTC_OFFSET = {"WH-NJ": -5.0, "WH-CA": -8.0, "WH-TX": -6.0, "WH-NL": 1.0}
CARRIERS = ("UPS", "FEDEX", "DHL")
SERVICES = ("GROUND", "EXPRESS", "AIR")
#: carrier -> (speed factor on the haul, coefficient of variation of its gamma noise)
CARRIER_PROFILE = {"UPS": (1.00, 0.12), "FEDEX": (1.02, 0.20), "DHL": (1.15, 0.38)}
BUSINESS = "1111100"
OPERATING = {"GROUND": "1111100", "EXPRESS": "1111110", "AIR": "1111110"}
PICKUP_LOCAL_H, PICKUP_CUTOFF_H, MISSED_PICKUP = 17.0, 16.0, 0.04
DELAY_RATE, FAILED_RATE, LOST_RATE = 0.03, 0.01, 0.003
DUPLICATE_RATE, STRAGGLER_RATE = 0.02, 0.01
WORLD_SEED = 20261205  # the lanes' fixed factors: the same world whatever the shipments' seed
MILESTONE_NAMES = ("LABEL_CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION")
EXCEPTION_NAMES = (None, "DELAY", "FAILED_ATTEMPT", "LOST")
HISTORY_END = datetime(2026, 11, 30, tzinfo=UTC)
EVENT_SCHEMA = {"shipment_id": pl.String, "carrier_id": pl.String, "service": pl.String, "milestone": pl.String,
                "exception": pl.String, "event_at": pl.Datetime("us", "UTC"), "received_at": pl.Datetime("us", "UTC")}


class Disruption(NamedTuple):
    carrier_id: str
    start: datetime
    end: datetime
    extra_hours: float


def transit_days(service: str, zone: int) -> int:
    """The published business days in transit (``ref.carrier_rates.transit_days`` of the demo's reference)."""
    return max(0, {"GROUND": 1 + (zone + 1) // 2, "EXPRESS": 1 + zone // 4, "AIR": 1}[service]
               + (3 if zone >= 9 and service == "GROUND" else 0))


def carrier_rates() -> pl.DataFrame:
    """The static transit table (``carrier_id, service, zone, transit_days``) for zones 1-10."""
    rows = [(c, s, z, transit_days(s, z)) for c in CARRIERS for s in SERVICES for z in range(1, 11)]
    return pl.DataFrame(rows, schema={"carrier_id": pl.String, "service": pl.String, "zone": pl.Int64,
                                      "transit_days": pl.Int64}, orient="row")


def _lane_factor(carrier: np.ndarray, wh: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """A fixed factor per carrier x warehouse x zone (log-normal, sd 0.15; WH-CA's hub 10 % slower)."""
    rng = np.random.default_rng(WORLD_SEED)
    table = np.exp(rng.normal(0.0, 0.15, size=(len(CARRIERS), len(WAREHOUSE_UTC_OFFSET) + 1, 12)))
    table[:, list(WAREHOUSE_UTC_OFFSET).index("WH-CA"), :] *= 1.10
    return table[carrier, wh, np.clip(zone, 0, 11)]


def _gamma_noise(rng: np.random.Generator, cv: np.ndarray) -> np.ndarray:
    shape = 1.0 / cv**2
    return rng.gamma(shape, 1.0 / shape)


def _busday(day: np.ndarray, offset: np.ndarray | int, mask_of_row: np.ndarray, masks: dict[str, int]) -> np.ndarray:
    """``np.busday_offset(day, offset, roll='forward')`` per row with each row's week mask (days as int64)."""
    out = np.empty(day.shape, dtype=np.int64)
    off = np.broadcast_to(np.asarray(offset), day.shape)
    for mask, i in masks.items():
        sel = mask_of_row == i
        out[sel] = np.busday_offset(day[sel].astype("datetime64[D]"), off[sel], roll="forward",
                                    weekmask=mask).astype(np.int64)
    return out


def _hours_of(s: pl.Series) -> np.ndarray:
    return s.dt.epoch("us").cast(pl.Float64).to_numpy() / 3.6e9


def simulate_transits(shipments: pl.DataFrame, seed: int, disruption: Disruption | tuple | None = None) -> pl.DataFrame:
    """Milestone events for ``shipments`` (see the module docstring). Same shipments and seed, same events."""
    rng = np.random.default_rng(seed)
    sh = shipments
    n = sh.height
    wh_names = list(WAREHOUSE_UTC_OFFSET)
    wh = sh["warehouse_id"].replace_strict({w: i for i, w in enumerate(wh_names)}, default=len(wh_names),
                                           return_dtype=pl.Int64).to_numpy()
    off = (sh["utc_offset_h"].cast(pl.Float64).fill_null(0.0).to_numpy() if "utc_offset_h" in sh.columns
           else np.array([WAREHOUSE_UTC_OFFSET.get(w, 0.0) for w in wh_names] + [0.0])[wh])
    car = sh["carrier_id"].replace_strict({c: i for i, c in enumerate(CARRIERS)}, default=2,
                                          return_dtype=pl.Int64).to_numpy()
    svc = sh["service"].replace_strict({s: i for i, s in enumerate(SERVICES)}, default=0,
                                       return_dtype=pl.Int64).to_numpy()
    zone = sh["dest_zone"].cast(pl.Int64).to_numpy()
    t0 = _hours_of(sh["shipped_at"])
    masks = sorted(set(OPERATING.values()))
    mask_ix = {m: i for i, m in enumerate(masks)}
    op_mask = np.array([mask_ix[OPERATING[s]] for s in SERVICES])[svc]
    biz = np.zeros(n, dtype=np.int64)

    # pickup: 17:00 local on the first business day whose cutoff the label made
    loc = t0 + off
    d0 = np.floor(loc / 24.0).astype(np.int64)
    late = (loc - d0 * 24.0) >= PICKUP_CUTOFF_H
    pday = _busday(d0 + late, 0, biz, {BUSINESS: 0})
    pday = _busday(pday, (rng.random(n) < MISSED_PICKUP).astype(np.int64), biz, {BUSINESS: 0})
    pick = pday * 24.0 + PICKUP_LOCAL_H + np.clip(rng.normal(0.0, 0.4, n), -1.0, 1.0) - off
    first_it = pick + rng.uniform(1.5, 5.0, n)

    # line haul on the service's operating clock
    base = np.array([[transit_days(s, z) for z in range(12)] for s in SERVICES], dtype=np.float64)[svc, np.clip(zone, 0, 11)]
    speed, cv = np.array([CARRIER_PROFILE[c][0] for c in CARRIERS])[car], np.array([CARRIER_PROFILE[c][1] for c in CARRIERS])[car]
    nominal = np.maximum(base * 24.0 * speed * _lane_factor(car, wh, zone) - 20.0, 3.0)
    noise = _gamma_noise(rng, cv)
    b_it = operating_hours(first_it, off, op_mask, masks)
    extra_u = rng.uniform(0.5, 1.5, n)  # drawn always: a disruption changes only the disrupted carrier's events
    if disruption is not None:
        dc, ds, de, extra = disruption
        hub0 = from_operating_hours(b_it + nominal * noise, off, op_mask, masks)
        hit = ((car == CARRIERS.index(dc)) & (first_it < de.timestamp() / 3600.0)
               & (hub0 >= ds.timestamp() / 3600.0))
        noise = np.where(hit, np.maximum(1.0 + 2.0 * (noise - 1.0), 0.3), noise)
        haul = nominal * noise + np.where(hit, extra * extra_u, 0.0)
    else:
        haul = nominal * noise
    delayed = rng.random(n) < DELAY_RATE
    delay_at = b_it + haul * rng.uniform(0.2, 0.8, n)
    haul = haul + np.where(delayed, rng.uniform(18.0, 60.0, n), 0.0)
    hub = from_operating_hours(b_it + haul, off, op_mask, masks)
    lost = rng.random(n) < LOST_RATE

    # delivery: the first operating morning after the hub
    hub_loc = hub + off
    hd = np.floor(hub_loc / 24.0).astype(np.int64)
    oday = _busday(hd + ((hub_loc - hd * 24.0) >= 6.0), 0, op_mask, mask_ix)
    ofd = oday * 24.0 + 7.5 + rng.uniform(0.0, 1.5, n) - off
    route_mean = np.where(svc == 0, 4.0, 2.5)
    route = np.minimum(rng.gamma(2.0, route_mean / 2.0), 11.0)
    failed = (rng.random(n) < FAILED_RATE) & ~lost
    attempt = ofd + route
    oday2 = _busday(oday, 1, op_mask, mask_ix)
    ofd2 = oday2 * 24.0 + 7.5 + rng.uniform(0.0, 1.5, n) - off
    delivered = np.where(failed, ofd2 + np.minimum(rng.gamma(2.0, route_mean / 2.0), 11.0), attempt)

    # intermediate IN_TRANSIT scans, about every 16 operating hours (lost parcels: the first half only)
    n_scan = np.clip(np.floor(haul / 16.0), 0, 5).astype(np.int64)
    n_scan = np.where(lost, n_scan // 2, n_scan)
    rep = np.repeat(np.arange(n), n_scan)
    step = np.arange(rep.size) - np.repeat(np.cumsum(n_scan) - n_scan, n_scan)
    scan_t = from_operating_hours(b_it[rep] + (step + 1) / (n_scan[rep] + 1) * haul[rep], off[rep], op_mask[rep], masks)
    last_scan = np.maximum(first_it, np.where(n_scan > 0, from_operating_hours(
        b_it + n_scan / (n_scan + 1) * haul, off, op_mask, masks), first_it))

    ok = ~lost
    idx_all = np.arange(n)
    parts = [  # (shipment index, milestone code, exception code, event time)
        (idx_all, 0, 0, t0), (idx_all, 1, 0, pick), (idx_all, 2, 0, first_it), (rep, 2, 0, scan_t),
        (idx_all[delayed], 5, 1, from_operating_hours(delay_at, off, op_mask, masks)[delayed]),
        (idx_all[ok], 3, 0, ofd[ok]),
        (idx_all[failed], 5, 2, attempt[failed]), (idx_all[failed], 3, 0, ofd2[failed]),
        (idx_all[ok], 4, 0, delivered[ok]),
        (idx_all[lost], 5, 3, (last_scan + 240.0)[lost]),
    ]
    s_idx = np.concatenate([p[0] for p in parts])
    mil = np.concatenate([np.full(p[0].size, p[1], np.int8) for p in parts])
    exc = np.concatenate([np.full(p[0].size, p[2], np.int8) for p in parts])
    ev_t = np.concatenate([p[3] for p in parts])
    lag = np.minimum(rng.lognormal(np.log(0.25), 1.0, ev_t.size), 24.0)
    recv = ev_t + lag
    # late stragglers: an IN_TRANSIT timestamped after DELIVERED, received after it
    strag = idx_all[ok][rng.random(int(ok.sum())) < STRAGGLER_RATE]
    st_t = delivered[strag] + rng.uniform(0.5, 12.0, strag.size)
    st_r = np.maximum(st_t, delivered[strag] + lag.max()) + rng.uniform(0.1, 2.0, strag.size)
    # duplicates: the same event again, a little later
    dup = np.flatnonzero(rng.random(ev_t.size) < DUPLICATE_RATE)
    s_idx = np.concatenate([s_idx, strag, s_idx[dup]])
    mil = np.concatenate([mil, np.full(strag.size, 2, np.int8), mil[dup]])
    exc = np.concatenate([exc, np.zeros(strag.size, np.int8), exc[dup]])
    ev_t = np.concatenate([ev_t, st_t, ev_t[dup]])
    recv = np.concatenate([recv, st_r, recv[dup] + rng.uniform(0.05, 6.0, dup.size)])

    def ts(h: np.ndarray, name: str) -> pl.Series:
        return pl.Series(name, (np.round(h * 3600.0) * 1_000_000).astype(np.int64)).cast(pl.Datetime("us", "UTC"))

    order = np.lexsort((mil, s_idx, np.round(recv * 3600.0)))
    ids = sh.select("shipment_id", "carrier_id", "service")[s_idx[order]]
    return ids.with_columns(
        pl.Series("milestone", mil[order]).replace_strict(dict(enumerate(MILESTONE_NAMES)), return_dtype=pl.String),
        pl.Series("exception", exc[order]).replace_strict(dict(enumerate(EXCEPTION_NAMES)), return_dtype=pl.String),
        ts(ev_t[order], "event_at"), ts(recv[order], "received_at"),
    ).select(list(EVENT_SCHEMA)) if n else pl.DataFrame(schema=EVENT_SCHEMA)


def shipments(n: int, seed: int, start: datetime, end: datetime) -> pl.DataFrame:
    """``n`` shipments labelled in ``[start, end)``: weekday volumes (Saturday light, Sunday rare), labels 08:00-19:00
    local, a warehouse / zone / carrier / service mix, and a promised date (ship date + the table's transit + 1
    business day). Columns: shipment_id, carrier_id, service, warehouse_id, dest_zone, utc_offset_h, shipped_at,
    promised_date."""
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64(start.date(), "D"), np.datetime64(end.date(), "D")).astype(np.int64)
    wd_w = np.array([1.0, 1.05, 1.0, 0.95, 0.9, 0.25, 0.05])
    p = wd_w[(days + 3) % 7]
    day = rng.choice(days, size=n, p=p / p.sum())
    whs = np.array(list(WAREHOUSE_UTC_OFFSET))
    w = rng.choice(len(whs), size=n, p=[0.35, 0.28, 0.25, 0.12])
    nl = whs[w] == "WH-NL"
    us_z = np.array([.06, .10, .12, .14, .14, .14, .10, .10, .06, .04])
    nl_z = np.array([.20, .30, .20, .05, .02, .02, .01, .01, .12, .07])
    zone = np.where(nl, rng.choice(10, size=n, p=nl_z), rng.choice(10, size=n, p=us_z)) + 1
    carrier = np.where(nl, rng.choice(3, size=n, p=[0.3, 0.2, 0.5]), rng.choice(3, size=n, p=[0.45, 0.37, 0.18]))
    service = rng.choice(3, size=n, p=[0.68, 0.22, 0.10])
    off = np.array([WAREHOUSE_UTC_OFFSET[x] for x in whs])[w]
    local_h = day * 24.0 + rng.uniform(8.0, 19.0, n)
    shipped = np.round((local_h - off) * 3600.0).astype(np.int64) * 1_000_000
    table = np.array([[transit_days(s, z) for z in range(11)] for s in SERVICES])
    promised = np.busday_offset(day.astype("datetime64[D]"), table[service, zone] + 1, roll="forward",
                                weekmask=BUSINESS)
    width = max(6, len(str(n)))
    return pl.DataFrame({
        "shipment_id": [f"SHP-{seed % 1000:03d}-{i:0{width}d}" for i in range(n)],
        "carrier_id": np.array(CARRIERS)[carrier], "service": np.array(SERVICES)[service],
        "warehouse_id": whs[w], "dest_zone": zone.astype(np.int64), "utc_offset_h": off,
        "shipped_at": pl.Series(shipped).cast(pl.Datetime("us", "UTC")), "promised_date": promised,
    })


def default_disruption(end: datetime = HISTORY_END) -> Disruption:
    """DHL degrades for six days, five to six weeks before ``end``: 30 extra hours."""
    return Disruption("DHL", end - timedelta(days=42), end - timedelta(days=36), 30.0)


def history(n: int, seed: int, *, end: datetime = HISTORY_END, days: int = 150,
            disruption: Disruption | None | str = "default") -> pl.DataFrame:
    """A delivered history for fitting: ``n`` shipments labelled over ``days`` days before ``end`` - 10 days,
    simulated (``disruption='default'``: :func:`default_disruption`; None: none), reduced to one row per delivered
    shipment (:func:`~som_pipeline.tracking.eta.observations_from_events`, with ``utc_offset_h`` and
    ``promised_date``), sorted by delivery."""
    dis = default_disruption(end) if disruption == "default" else disruption
    sh = shipments(n, seed, end - timedelta(days=days), end - timedelta(days=10))
    ev = simulate_transits(sh, seed, dis)
    return observations_from_events(ev, sh).sort("delivered_at", "shipment_id")


def snapshot(events: pl.DataFrame, shipments_: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The open shipments at ``now`` as a status table would show them: the furthest regular milestone among the
    events received (and happened) by then, entered at its first time; delivered and lost ones left out.
    Columns: the shipments' plus ``origin_warehouse, milestone, milestone_at``."""
    rank = {m: i for i, m in enumerate(MILESTONE_NAMES[:5])}
    seen = (events.lazy().filter(pl.col("received_at") <= now, pl.col("event_at") <= now)
            .with_columns(pl.col("milestone").replace_strict(rank, default=None, return_dtype=pl.Int8).alias("_r")))
    gone = seen.filter((pl.col("milestone") == "DELIVERED") | (pl.col("exception") == "LOST")).select(
        "shipment_id").unique()
    cur = (seen.filter(pl.col("_r").is_not_null())
           .group_by("shipment_id", "_r").agg(pl.col("event_at").min())
           .sort("shipment_id", "_r").group_by("shipment_id").last()
           .join(gone, on="shipment_id", how="anti")
           .select("shipment_id", pl.col("_r").replace_strict(
               {i: m for m, i in rank.items()}, return_dtype=pl.String).alias("milestone"),
               pl.col("event_at").alias("milestone_at")))
    return (shipments_.lazy().join(cur, on="shipment_id", how="inner", maintain_order="left")
            .with_columns(pl.col("warehouse_id").alias("origin_warehouse")).collect())
