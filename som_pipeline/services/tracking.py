"""Tracking service: carrier events -> shipment status, ETA and late risk -> exceptions -> customer notifications.

One run:

1. **Labels**: every package shipped since the last run gets its own LABEL_CREATED event (source ``label``), so a
   shipment has a status from the moment it leaves.
2. **Events** (``landing/carrier_events/``: X12 214, carrier-aggregator trackers, Shopify fulfillment events,
   Amazon tracking notifications; the format is told by the content) are normalised (``tracking.parsers``), and
   with the pending ones, attached to our packages by tracking number (or shipment reference). New events go to
   ``core.tracking_events`` (dedup on carrier + tracking number + code + time); the rest wait in
   ``core.tracking_pending`` and, older than ``pending_max_hours``, are quarantined ``UNKNOWN_TRACKING_NUMBER``.
3. **Status** of the shipments with new events, from all their events (``tracking.status``: never backwards);
   the newly delivered ones become transit observations (``state.transit_observations``).
4. **ETA**: the transit model fitted on the observations predicts P50/P90 and P(late) for every open shipment.
5. **Exceptions** (``core.shipment_exceptions``): opened once, carried from run to run, resolved when they clear.
6. **Notifications** (``ops.notifications``): one message per milestone and exception the customer sees, each
   with an idempotency key, written once to ``$SOM_HOME/outbound/notifications/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_series
from som_pipeline.schemas import (
    NotificationModel,
    ShipmentExceptionModel,
    ShipmentStatusModel,
    TrackingEventModel,
    TrackingPendingModel,
    TransitObservationModel,
    conform,
)
from som_pipeline.services import Step
from som_pipeline.services.landing import archive, incoming
from som_pipeline.services.stock import feed_quarantine, record_feed_file
from som_pipeline.tracking.status import shipment_status
from som_pipeline.warehouse import Warehouse, insert_frame, registered, replace_keys, select_keys, transaction

TRACKING = Step(
    reads=("core.shipments", "core.packages", "core.orders", "core.allocations", "core.tracking_events",
           "core.tracking_pending", "core.shipment_status", "state.transit_observations", "core.shipment_exceptions",
           "ref.carrier_rates", "ref.shipping_zones", "ref.customers"),
    writes=("core.tracking_events", "core.tracking_pending", "core.shipment_status", "state.transit_observations",
            "core.eta_accuracy", "core.shipment_exceptions"),
    appends=("ops.notifications",),  # the outbox: bookkeeping (ops.*), no asset of its own
)


@dataclass(frozen=True)
class TrackingConfig:
    pending_max_hours: float = 72.0  # an event for an unknown tracking number waits this long for its label
    no_pickup_hours: float = 24.0  # no PICKED_UP this long after shipping: NO_PICKUP
    no_scan_hours: float = 48.0  # in transit with no event this long: NO_SCAN
    late_risk: float = 0.5  # P(late) above this before the promised date: LATE_RISK (and the delay notice)


@dataclass
class TrackingReport:
    files: list[str] = field(default_factory=list)
    events_received: int = 0
    events_attached: int = 0
    events_duplicate: int = 0
    pending: int = 0
    expired: int = 0
    shipments_updated: int = 0
    delivered: int = 0
    open_shipments: int = 0
    exceptions_opened: int = 0
    exceptions_resolved: int = 0
    notifications: int = 0
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("files", "notes")} | {"files": len(self.files)}


def run_tracking(wh: Warehouse, settings: Settings, now: datetime, cfg: TrackingConfig | None = None
                 ) -> TrackingReport:
    cfg = cfg or TrackingConfig()
    rep = TrackingReport()
    with wh.connect() as con:
        touched = [_label_events(con, now, rep)]
        files, settled = incoming(con, settings, "carrier_events", now, rep.notes)
        fresh = [_read_file(con, f, now, rep) for f in files]
        touched.append(_attach(con, [x for x in fresh if x is not None], now, cfg, rep))
        ids = pl.concat([t for t in touched if t.height]).unique() if any(t.height for t in touched) else None
        if ids is not None:
            _statuses(con, ids, now, rep)
        _eta(con, now, cfg, rep)
        _backtest(con, now, rep)
        _exceptions(con, now, cfg, rep)
        _notifications(con, settings, now, cfg, rep)
    for f in files:
        archive(f)
    rep.notes += [f"{o.source_file}: identical content already processed ({o.status}); archived" for o in settled]
    return rep


# ------------------------------------------------------------------------------------------------
# 1-2. events
# ------------------------------------------------------------------------------------------------
def _label_events(con, now: datetime, rep: TrackingReport) -> pl.DataFrame:
    """LABEL_CREATED for every package of a shipment that has no tracking event yet."""
    new = con.execute("""
        SELECT p.package_id, p.shipment_id, p.tracking_number, s.carrier_id, s.shipped_at
        FROM core.packages p JOIN core.shipments s USING (shipment_id)
        WHERE NOT EXISTS (SELECT 1 FROM core.tracking_events e WHERE e.shipment_id = s.shipment_id)
    """).pl()
    if new.height == 0:
        return pl.DataFrame(schema={"shipment_id": pl.String})
    ev = new.with_columns(
        pl.lit("label").alias("source"), pl.col("carrier_id").alias("carrier"), pl.lit("LABEL_CREATED").alias("milestone"),
        pl.lit("LABEL").alias("carrier_code"), pl.lit("label created").alias("carrier_text"),
        pl.col("shipped_at").alias("event_at"), pl.lit("core.packages").alias("source_file"),
        pl.col("package_id").alias("location"), pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("recorded_at"))
    ev = ev.with_columns(_event_id(ev))
    with transaction(con):
        insert_frame(con, "core.tracking_events", conform(ev, TrackingEventModel))
    return new.select("shipment_id").unique()


def _event_id(df: pl.DataFrame) -> pl.Series:
    return sha256_series(pl.concat_str([pl.col("carrier").fill_null(""), pl.col("tracking_number").fill_null(""),
                                        pl.col("carrier_code"), pl.col("event_at").cast(pl.String)], separator="|"),
                         df).alias("event_id")


def _read_file(con, f, now: datetime, rep: TrackingReport):
    from som_pipeline.tracking import parsers

    data = f.read()
    if data is None:
        rep.notes.append(f"{f.name}: changed while read; left for the next run")
        return None
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:4000]
    if head[:3] == b"ISA":
        r = parsers.read_x12_214(data, f.name)
    elif b"fulfillment_event" in head:
        r = parsers.read_shopify_fulfillment_event(data, f.name)
    elif b"shipmenttrackingmilestone" in head.lower():
        r = parsers.read_amazon_tracking_notification(data, f.name)
    else:
        r = parsers.read_tracker_json(data, f.name)
    rep.files.append(f.name)
    rep.events_received += r.events.height
    return f, r


def _attach(con, fresh: list, now: datetime, cfg: TrackingConfig, rep: TrackingReport) -> pl.DataFrame:
    """New and pending events matched to our packages; the rest pending (or, too old, quarantined)."""
    cols = list(TrackingPendingModel.to_schema().columns)
    parts = [r.events.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("first_seen_at"))
             for _, r in fresh if r.events.height]
    pending = con.execute("SELECT * FROM core.tracking_pending").pl()
    cand = pl.concat([conform(p, TrackingPendingModel) for p in parts] + [pending]) if parts else pending
    arrived = cand.height
    cand = cand.unique("event_id", keep="last", maintain_order=True)  # a pending one keeps its first_seen_at
    repeats = arrived - cand.height  # the same event twice in this run's files (or already pending): counted once
    if pending.height:
        cand = cand.join(pending.select("event_id", pl.col("first_seen_at").alias("_fs")), on="event_id",
                         how="left").with_columns(pl.coalesce("_fs", "first_seen_at").alias("first_seen_at")).drop("_fs")
    # a tracking number names one package; an event without one names its package or shipment by reference
    # (a shipment-level event has no package). Equality joins only: each key matches at most one row.
    with registered(con, cand.select("tracking_number").drop_nulls().unique()) as t:
        by_tn = con.execute(f"SELECT p.tracking_number, p.package_id, p.shipment_id FROM core.packages p "  # noqa: S608
                            f"SEMI JOIN {t} USING (tracking_number)").pl()
    with registered(con, cand.filter(pl.col("tracking_number").is_null()).select("shipment_ref").drop_nulls()
                    .unique()) as r:
        by_ref = con.execute(f"""
            SELECT r.shipment_ref, p.package_id AS _p, p.shipment_id AS _s FROM {r} r
            JOIN core.packages p ON p.package_id = r.shipment_ref
            UNION ALL SELECT r.shipment_ref, NULL, s.shipment_id FROM {r} r
            JOIN core.shipments s ON s.shipment_id = r.shipment_ref
        """).pl()  # noqa: S608
    no_tn = pl.col("tracking_number").is_null()
    m = cand.join(by_tn, on="tracking_number", how="left").join(by_ref, on="shipment_ref", how="left").with_columns(
        pl.coalesce("shipment_id", pl.when(no_tn).then(pl.col("_s"))).alias("shipment_id"),
        pl.coalesce("package_id", pl.when(no_tn).then(pl.col("_p"))).alias("package_id"))
    found = m.filter(pl.col("shipment_id").is_not_null())
    known = select_keys(con, "core.tracking_events", found.select("event_id"), "event_id")
    new = found.join(known, on="event_id", how="anti").with_columns(
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("recorded_at"))
    waiting = m.filter(pl.col("shipment_id").is_null()).select(cols)
    too_old = waiting.filter(pl.col("first_seen_at") <= now - timedelta(hours=cfg.pending_max_hours))
    waiting = waiting.join(too_old.select("event_id"), on="event_id", how="anti")
    expired_q = _expired_quarantine(too_old, now)
    with transaction(con):
        for f, r in fresh:
            record_feed_file(con, f, "carrier_events", r.received,
                             feed_quarantine(r.rejected, "carrier_events", "tracking_event", f.name, f.sha, now), now)
        insert_frame(con, "core.tracking_events", conform(new, TrackingEventModel))
        con.execute("DELETE FROM core.tracking_pending")
        insert_frame(con, "core.tracking_pending", conform(waiting, TrackingPendingModel))
        from som_pipeline.services.capture import write_quarantine

        write_quarantine(con, expired_q)
    rep.events_attached += new.height
    rep.events_duplicate += found.height - new.height + repeats
    rep.pending = waiting.height
    rep.expired += too_old.height
    return new.select("shipment_id").unique()


def _expired_quarantine(rows: pl.DataFrame, now: datetime) -> pl.DataFrame:
    if rows.height == 0:
        return feed_quarantine(pl.DataFrame(schema={"location": pl.String, "order_ref": pl.String,
                                                    "reason_code": pl.String, "message": pl.String, "raw": pl.String}),
                               "carrier_events", "tracking_event", "", "", now)
    q = rows.select("location", pl.col("tracking_number").alias("order_ref"),
                    pl.lit("UNKNOWN_TRACKING_NUMBER").alias("reason_code"),
                    pl.format("no shipment of ours has tracking number {} ({}); waited since {}",
                              pl.col("tracking_number").fill_null(pl.col("shipment_ref")), pl.col("carrier"),
                              pl.col("first_seen_at")).alias("message"), "raw", "source_file")
    parts = [feed_quarantine(g.drop("source_file"), "carrier_events", "tracking_event", name, "", now)
             for (name,), g in q.group_by("source_file")]
    return pl.concat(parts)


# ------------------------------------------------------------------------------------------------
# 3. status
# ------------------------------------------------------------------------------------------------
def _statuses(con, ids: pl.DataFrame, now: datetime, rep: TrackingReport) -> None:
    events = select_keys(con, "core.tracking_events", ids)
    st = shipment_status(events)
    with registered(con, ids) as k:
        info = con.execute(f"""
            SELECT s.shipment_id, s.order_id, s.carrier_id, s.service, s.warehouse_id, s.shipped_at,
                   (SELECT max(a.promised_date) FROM core.allocations a JOIN core.shipment_lines l
                       ON a.order_id = l.order_id AND a.line_no = l.line_no AND a.sku = l.sku
                       AND a.warehouse_id = l.warehouse_id WHERE l.shipment_id = s.shipment_id) AS promised_date
            FROM core.shipments s SEMI JOIN {k} USING (shipment_id)
        """).pl()  # noqa: S608
    old = select_keys(con, "core.shipment_status", ids)
    rows = info.join(st, on="shipment_id", how="inner").join(
        old.select("shipment_id", "eta_p50", "eta_p90", "p_late", "eta_model"), on="shipment_id", how="left"
    ).with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at"))
    newly = rows.filter(pl.col("delivered_at").is_not_null()).join(
        old.filter(pl.col("delivered_at").is_not_null()).select("shipment_id"), on="shipment_id", how="anti")
    obs = _observations(con, newly, events, now)
    rows = rows.with_columns(*(pl.when(pl.col("delivered_at").is_not_null()).then(None).otherwise(pl.col(c)).alias(c)
                               for c in ("eta_p50", "eta_p90", "p_late", "eta_model")))
    with transaction(con):
        replace_keys(con, "core.shipment_status", ids, conform(rows, ShipmentStatusModel))
        if obs.height:
            replace_keys(con, "state.transit_observations", obs.select("shipment_id"), obs)
    rep.shipments_updated += rows.height
    rep.delivered += newly.height


def _observations(con, delivered: pl.DataFrame, events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """One transit observation per newly delivered shipment (what the ETA model learns from)."""
    from som_pipeline.tracking.eta import observations_from_events

    if delivered.height == 0:
        return pl.DataFrame()
    sh = _lanes(con, delivered.select("shipment_id"), now).join(
        delivered.select("shipment_id", "carrier_id", "service", "warehouse_id", "shipped_at", "promised_date"),
        on="shipment_id")
    obs = observations_from_events(events.join(delivered.select("shipment_id"), on="shipment_id", how="semi"), sh)
    return conform(obs, TransitObservationModel)


def _lanes(con, ids: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """``shipment_id, dest_zone, utc_offset_h``: the shipping zone from the origin warehouse to the destination
    (ref.shipping_zones) and the destination's offset from UTC now."""
    from zoneinfo import ZoneInfo

    from som_pipeline.tracking.notify import time_zone

    with registered(con, ids) as k:
        z = con.execute(f"""
            SELECT s.shipment_id, coalesce(z.zone, zc.zone, 0)::BIGINT AS dest_zone, o.ship_to_country AS c,
                   o.ship_to_region AS r
            FROM core.shipments s SEMI JOIN {k} USING (shipment_id)
            JOIN core.orders o USING (order_id)
            LEFT JOIN ref.shipping_zones z ON z.warehouse_id = s.warehouse_id AND z.dest_country = o.ship_to_country
                 AND z.dest_region = o.ship_to_region
            LEFT JOIN ref.shipping_zones zc ON zc.warehouse_id = s.warehouse_id AND zc.dest_country = o.ship_to_country
                 AND zc.dest_region = '*'
        """).pl()  # noqa: S608
    places = z.select("c", "r").unique()  # a handful of destinations: their offset now, joined back
    offs = places.with_columns(pl.Series("utc_offset_h", [
        now.astimezone(ZoneInfo(time_zone(c, r))).utcoffset().total_seconds() / 3600 for c, r in places.iter_rows()],
        dtype=pl.Float64))
    return z.join(offs, on=["c", "r"], how="left", nulls_equal=True).drop("c", "r")


# ------------------------------------------------------------------------------------------------
# 4. ETA
# ------------------------------------------------------------------------------------------------
def _history(con, now: datetime, extra_days: int = 0):
    """What the model learns from: our delivered shipments and the carriers' history (ref.transit_history), in the
    training window (``extra_days`` more for the backtest's earlier origins)."""
    from som_pipeline.tracking.eta import EtaConfig

    since = now - timedelta(days=EtaConfig().train_window_days + extra_days)
    return con.execute("SELECT * FROM state.transit_observations WHERE delivered_at >= ? UNION ALL BY NAME "
                       "SELECT * FROM ref.transit_history WHERE delivered_at >= ? AND shipment_id NOT IN "
                       "(SELECT shipment_id FROM state.transit_observations)", [since, since]).pl()


def _eta(con, now: datetime, cfg: TrackingConfig, rep: TrackingReport) -> None:
    """P50/P90 and P(late) for every open shipment (the in-flight ones: bounded by what is on the road)."""
    from som_pipeline.tracking import eta as model

    open_ = con.execute("SELECT * FROM core.shipment_status WHERE delivered_at IS NULL").pl()
    rep.open_shipments = open_.height
    if open_.height == 0:
        return
    hist = _history(con, now)
    if hist.height == 0:
        rep.notes.append("no delivered history yet (state.transit_observations, ref.transit_history): no ETA")
        return
    q = (open_.select("shipment_id", "carrier_id", "service", "milestone", "milestone_at", "promised_date")
         .join(_lanes(con, open_.select("shipment_id"), now), on="shipment_id", how="left")
         .join(select_keys(con, "core.shipments", open_.select("shipment_id"),
                           "shipment_id, warehouse_id AS origin_warehouse, shipped_at"), on="shipment_id"))
    with registered(con, open_.select("shipment_id")) as k:  # the open ones' milestone times: censored evidence
        times = con.execute(f"""
            SELECT shipment_id,
                   min(event_at) FILTER (WHERE milestone = 'PICKED_UP') AS picked_up_at,
                   min(event_at) FILTER (WHERE milestone = 'IN_TRANSIT') AS in_transit_at,
                   min(event_at) FILTER (WHERE milestone = 'OUT_FOR_DELIVERY') AS out_for_delivery_at
            FROM core.tracking_events SEMI JOIN {k} USING (shipment_id) GROUP BY shipment_id""").pl()  # noqa: S608
    q = q.join(times, on="shipment_id", how="left")
    fitted = model.fit_transit(hist, as_of=now, open_=q)
    pred = model.predict(q, fitted, now).select("shipment_id", "eta_p50", "eta_p90", "p_late",
                                                 pl.col("model_level").alias("eta_model"))
    rows = open_.drop("eta_p50", "eta_p90", "p_late", "eta_model").join(pred, on="shipment_id", how="left")
    rows = conform(rows, ShipmentStatusModel)
    changed = rows.join(conform(open_, ShipmentStatusModel), on=list(rows.columns), how="anti", nulls_equal=True)
    if changed.height:
        changed = changed.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at"))
        with transaction(con):
            replace_keys(con, "core.shipment_status", changed.select("shipment_id"), changed)


BACKTEST_DAYS = 56  # the backtest's origins reach this far before the training window


def _backtest(con, now: datetime, rep: TrackingReport) -> None:
    """The model's honest score (``core.eta_accuracy``), once per day: a rolling-origin backtest on the history."""
    from som_pipeline.schemas import EtaAccuracyModel
    from som_pipeline.tracking import eta as model
    from som_pipeline.warehouse import replace_table

    last = con.execute("SELECT max(evaluated_at) FROM core.eta_accuracy").fetchone()[0]
    if last is not None and last.date() == now.date():
        return
    hist = _history(con, now, extra_days=BACKTEST_DAYS)
    if hist.height == 0:
        return
    try:
        acc = model.backtest(hist, con.execute("SELECT * FROM ref.carrier_rates").pl())
    except ValueError as e:  # too little history yet: said, tried again tomorrow
        rep.notes.append(f"ETA backtest skipped: {e}")
        return
    acc = acc.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("evaluated_at"))
    with transaction(con):
        replace_table(con, "core.eta_accuracy", conform(acc, EtaAccuracyModel))


# ------------------------------------------------------------------------------------------------
# 5. exceptions
# ------------------------------------------------------------------------------------------------
def _exceptions(con, now: datetime, cfg: TrackingConfig, rep: TrackingReport) -> None:
    """What is wrong now, against what was open: new problems open (opened_at now), open ones that no longer
    hold resolve (resolved_at now), the rest are carried as they were."""
    today = now.date()
    st = con.execute("SELECT s.*, x.shipped_at FROM core.shipment_status s JOIN core.shipments x USING (shipment_id) "
                     "WHERE s.delivered_at IS NULL OR s.delivered_at >= ?", [now - timedelta(days=2)]).pl()
    if st.height == 0:
        return
    hours = lambda c: (pl.lit(now).cast(pl.Datetime("us", "UTC")) - pl.col(c)).dt.total_seconds() / 3600  # noqa: E731
    open_ = pl.col("delivered_at").is_null()
    rules = [
        ("NO_PICKUP", "high", "warehouse", open_ & (pl.col("milestone") == "LABEL_CREATED")
         & (hours("shipped_at") > cfg.no_pickup_hours),
         pl.format("no carrier pickup {} h after shipping", hours("shipped_at").round(0))),
        ("NO_SCAN", "medium", "carrier_desk", open_ & pl.col("milestone").is_in(["PICKED_UP", "IN_TRANSIT"])
         & (hours("last_event_at") > cfg.no_scan_hours),
         pl.format("no carrier scan for {} h", hours("last_event_at").round(0))),
        ("CARRIER_EXCEPTION", "high", "carrier_desk", pl.col("open_exception").is_not_null(),
         pl.format("the carrier reports {}", pl.col("open_exception"))),
        ("LATE_RISK", "medium", "customer_care", open_ & (pl.col("p_late") > cfg.late_risk)
         & (pl.col("promised_date") >= today),
         pl.format("P(late) {} before the promised {}; P90 ETA {}", pl.col("p_late").round(2), pl.col("promised_date"),
                   pl.col("eta_p90"))),
        ("DELIVERED_LATE", "low", "customer_care", pl.col("delivered_at").is_not_null()
         & (pl.col("delivered_at").dt.date() > pl.col("promised_date")),
         pl.format("delivered {} after the promised {}", pl.col("delivered_at").dt.date(), pl.col("promised_date"))),
    ]
    now_true = pl.concat([st.filter(cond).select("shipment_id", "order_id", pl.lit(kind).alias("kind"),
                                                 pl.lit(sev).alias("severity"), pl.lit(q).alias("owner_queue"),
                                                 msg.alias("detail"))
                          for kind, sev, q, cond, msg in rules])
    now_true = now_true.with_columns(pl.format("{}:{}", pl.col("shipment_id"), pl.col("kind")).alias("exception_id"))
    was_open = con.execute("SELECT * FROM core.shipment_exceptions WHERE resolved_at IS NULL").pl()
    opened = now_true.join(was_open.select("exception_id"), on="exception_id", how="anti").with_columns(
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("opened_at"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("resolved_at"))
    # an open problem of a shipment this run looked at that no longer holds: resolved
    resolved = (was_open.join(st.select("shipment_id"), on="shipment_id", how="semi")
                .join(now_true.select("exception_id"), on="exception_id", how="anti")
                .with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("resolved_at")))
    reopened = select_keys(con, "core.shipment_exceptions", opened.select("exception_id"),
                           "exception_id, resolved_at").filter(pl.col("resolved_at").is_not_null())
    opened = opened.with_columns(  # a problem that comes back opens again under a new id (history kept)
        pl.when(pl.col("exception_id").is_in(reopened["exception_id"].implode()))
        .then(pl.format("{}:{}", pl.col("exception_id"), pl.lit(now.strftime("%Y%m%dT%H%M%S"))))
        .otherwise(pl.col("exception_id")).alias("exception_id"))
    with transaction(con):
        insert_frame(con, "core.shipment_exceptions", conform(opened, ShipmentExceptionModel))
        if resolved.height:
            replace_keys(con, "core.shipment_exceptions", resolved.select("exception_id"),
                         conform(resolved, ShipmentExceptionModel))
    rep.exceptions_opened += opened.height
    rep.exceptions_resolved += resolved.height


# ------------------------------------------------------------------------------------------------
# 6. notifications
# ------------------------------------------------------------------------------------------------
def _notifications(con, settings: Settings, now: datetime, cfg: TrackingConfig, rep: TrackingReport) -> None:

    due = con.execute("""
        WITH m AS (
            SELECT e.shipment_id, e.event_id,
                   CASE WHEN e.milestone = 'LABEL_CREATED' THEN 'shipped'
                        WHEN e.milestone = 'OUT_FOR_DELIVERY' THEN 'out_for_delivery'
                        WHEN e.milestone = 'DELIVERED' THEN 'delivered'
                        WHEN e.milestone = 'EXCEPTION' AND e.exception_subtype = 'FAILED_ATTEMPT' THEN 'failed_attempt'
                   END AS kind, e.event_at AS t
            FROM core.tracking_events e
            WHERE e.milestone IN ('LABEL_CREATED', 'OUT_FOR_DELIVERY', 'DELIVERED', 'EXCEPTION')
              -- only the shipments this run gave events to: the others were told when theirs arrived
              AND e.shipment_id IN (SELECT shipment_id FROM core.tracking_events WHERE recorded_at = $now)
        ), one AS (  -- one message per shipment and kind (the first event that tells it)
            SELECT shipment_id, kind, arg_min(event_id, t) AS event_id, min(t) AS t FROM m
            WHERE kind IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT shipment_id, 'delayed', exception_id, opened_at FROM core.shipment_exceptions
            WHERE kind = 'LATE_RISK' AND opened_at = $now
        )
        SELECT one.*, s.order_id, s.carrier_id, st.eta_p90, st.promised_date, st.signed_by, st.delivered_at,
               o.ship_to_name, o.ship_to_country, o.ship_to_region, o.customer_ref, o.channel,
               (SELECT count(*) FROM core.packages p WHERE p.shipment_id = one.shipment_id) AS packages,
               (SELECT min(p.tracking_url) FROM core.packages p WHERE p.shipment_id = one.shipment_id) AS url
        FROM one JOIN core.shipments s USING (shipment_id) JOIN core.orders o ON o.order_id = s.order_id
        LEFT JOIN core.shipment_status st ON st.shipment_id = one.shipment_id
        WHERE NOT EXISTS (SELECT 1 FROM ops.notifications n WHERE n.shipment_id = one.shipment_id AND n.kind = one.kind)
    """, {"now": now}).pl()
    if due.height == 0:
        return
    due = due.with_columns(sha256_series(pl.concat_str([pl.col("shipment_id"), pl.col("kind"), pl.col("event_id")],
                                                       separator="|"), due).alias("notification_id"))
    for batch in due.iter_slices(NOTIFY_BATCH):  # rendered, written and recorded a batch at a time (bounded memory)
        _notify_batch(con, settings, batch, now, rep)


NOTIFY_BATCH = 20_000


def _notify_batch(con, settings: Settings, due: pl.DataFrame, now: datetime, rep: TrackingReport) -> None:
    from som_pipeline.services.landing import write_atomic
    from som_pipeline.tracking import notify

    out_dir = settings.home / "outbound" / "notifications"
    rows, files = [], []
    for r in due.iter_rows(named=True):  # one message per row: rendering text
        lang = notify.language(r["ship_to_country"])
        tz = notify.time_zone(r["ship_to_country"], r["ship_to_region"])
        email_to = r["customer_ref"] if r["customer_ref"] and "@" in r["customer_ref"] else None
        fields = {"name": r["ship_to_name"] or "", "order": r["order_id"], "carrier": r["carrier_id"],
                  "packages": int(r["packages"] or 1), "url": r["url"] or "",
                  "eta": r["eta_p90"].astimezone(notify.ZoneInfo(tz)).strftime("%Y-%m-%d") if r["eta_p90"] else "",
                  "promised": str(r["promised_date"] or ""), "signed_by": r["signed_by"] or "",
                  "when": r["delivered_at"].strftime("%Y-%m-%d") if r["delivered_at"] else ""}
        subject, body = notify.render(r["kind"], lang, fields)
        key = r["notification_id"]
        if email_to:
            text, channel, path = (notify.email(email_to, subject, body, now, key), "email",
                                   out_dir / f"{key[:24]}.eml")
        else:
            text, channel, path = (notify.webhook(r["channel"], r["kind"], subject, body, fields, key), "webhook",
                                   out_dir / f"{key[:24]}.json")
        rows.append({"notification_id": key, "shipment_id": r["shipment_id"], "order_id": r["order_id"],
                     "kind": r["kind"], "channel": channel, "language": lang, "recipient": email_to or r["channel"],
                     "not_before": notify.not_before(now, tz), "path": str(path), "created_at": now})
        files.append((path, text))
    for path, text in files:  # written before they are recorded (as the fulfilment documents)
        write_atomic(path, text)
    with transaction(con):
        insert_frame(con, "ops.notifications", conform(pl.DataFrame(rows), NotificationModel))
    rep.notifications += len(rows)
