"""Tracking: carrier events normalised to milestones, each shipment's status (never backwards), ETAs with their
backtest, exceptions and the customer notifications outbox."""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas.base import TsUTC, _f, _Strict

MILESTONES = ["LABEL_CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "AVAILABLE_FOR_PICKUP", "DELIVERED",
              "EXCEPTION"]
EXCEPTION_SUBTYPES = ["DELAY", "FAILED_ATTEMPT", "DAMAGED", "ADDRESS_ISSUE", "RETURN_TO_SENDER", "LOST"]
EVENT_SOURCES = ["x12_214", "easypost", "shopify", "amazon", "label"]


class _Event(_Strict):
    event_id: str = _f("sha256 of carrier | tracking number | carrier code | event time: the dedup key.", unique=True)
    source: str = _f("x12_214 | easypost | shopify | amazon | label (our own label's LABEL_CREATED).",
                     isin=EVENT_SOURCES)
    carrier: str = _f("Carrier (UPS, FEDEX, DHL, USPS, or as the source named it).", nullable=True)
    tracking_number: str = _f("Tracking number (null: a Shopify event names the fulfillment instead).", nullable=True)
    shipment_ref: str = _f("The source's reference of the shipment when it gives no tracking number.", nullable=True)
    milestone: str = _f("Normalised milestone (null: information, not a scan -- an estimate, an appointment).",
                        isin=MILESTONES, nullable=True)
    exception_subtype: str = _f("EXCEPTION only: DELAY | FAILED_ATTEMPT | DAMAGED | ADDRESS_ISSUE | "
                                "RETURN_TO_SENDER | LOST.", nullable=True, isin=EXCEPTION_SUBTYPES)
    carrier_code: str = _f("The carrier's own status code (AT7 code, tracker status/status_detail...).")
    carrier_text: str = _f("The carrier's own words.", nullable=True)
    event_at: TsUTC = _f("When it happened (UTC).")
    event_local: str = _f("The time as the source gave it (local time and zone/code).", nullable=True)
    location_city: str = _f("Where.", nullable=True)
    location_region: str = _f("Region.", nullable=True)
    location_country: str = _f("Country.", nullable=True)
    signed_by: str = _f("DELIVERED: who signed.", nullable=True)
    est_delivery_at: TsUTC = _f("The carrier's own estimate, when it gives one.", nullable=True)
    source_file: str = _f("Landing file.")
    location: str = _f("Record within the file.")


class TrackingEventModel(_Event):
    """``core.tracking_events``: every carrier event attached to our shipments (history: out-of-order and duplicate
    arrivals are kept once each; the status never moves backwards)."""

    shipment_id: str = _f("core.shipments.shipment_id")
    package_id: str = _f("core.packages.package_id (null: a shipment-level event).", nullable=True)
    recorded_at: TsUTC = _f("When the pipeline took it.")


class TrackingPendingModel(_Event):
    """``core.tracking_pending``: events whose tracking number is not ours (yet): they attach when the label
    appears; older than ``tracking.pending_max_hours`` they are quarantined ``UNKNOWN_TRACKING_NUMBER``."""

    first_seen_at: TsUTC = _f("When the pipeline first saw it.")
    raw: str = _f("The record's raw text (for the quarantine).", nullable=True)


class ShipmentStatusModel(_Strict):
    """``core.shipment_status``: where each shipment is, when it will arrive, and how likely late."""

    shipment_id: str = _f("Shipment.", unique=True)
    order_id: str = _f("Order.")
    carrier_id: str = _f("Carrier.")
    service: str = _f("Service.")
    milestone: str = _f("Furthest milestone reached (never moves backwards; EXCEPTION does not advance it).",
                        isin=MILESTONES)
    milestone_at: TsUTC = _f("When it was reached.")
    last_event_at: TsUTC = _f("The latest carrier event of any kind (scans count).")
    open_exception: str = _f("The latest carrier exception not followed by progress (subtype).", nullable=True)
    delivered_at: TsUTC = _f("DELIVERED: when.", nullable=True)
    signed_by: str = _f("DELIVERED: who signed.", nullable=True)
    promised_date: pl.Date = _f("Date promised to the customer (from the allocation).", nullable=True)
    eta_p50: TsUTC = _f("Median delivery estimate (open shipments).", nullable=True)
    eta_p90: TsUTC = _f("90th-percentile delivery estimate (open shipments).", nullable=True)
    p_late: float = _f("Probability of delivery after the promised date (open shipments).", nullable=True, ge=0, le=1)
    eta_model: str = _f("Which level of the transit model answered (lane, carrier x service, carrier, global).",
                        nullable=True)
    updated_at: TsUTC = _f("When the row last changed.")


class _Transit(_Strict):
    shipment_id: str = _f("Shipment.", unique=True)
    carrier_id: str = _f("Carrier.")
    service: str = _f("Service.")
    origin_warehouse: str = _f("Warehouse it left.")
    dest_zone: pl.Int64 = _f("Destination zone from that warehouse (ref.shipping_zones): the lane.")
    shipped_at: TsUTC = _f("Label created (shipped).")
    picked_up_at: TsUTC = _f("First PICKED_UP.", nullable=True)
    in_transit_at: TsUTC = _f("First IN_TRANSIT.", nullable=True)
    out_for_delivery_at: TsUTC = _f("First OUT_FOR_DELIVERY.", nullable=True)
    delivered_at: TsUTC = _f("DELIVERED.")
    utc_offset_h: float = _f("The destination's offset from UTC (its local day: weekends, the promised day's end).",
                             nullable=True)
    promised_date: pl.Date = _f("Date promised to the customer.", nullable=True)


class TransitObservationModel(_Transit):
    """``state.transit_observations``: one row per delivered shipment -- what the ETA model learns from (a run
    appends the shipments delivered since the last; never recomputed from all events)."""


class TransitHistoryModel(_Transit):
    """``ref.transit_history``: delivered shipments from the carriers' portals before ours accumulated (bootstraps
    the ETA model; ``$SOM_HOME/reference/transit_history.parquet``)."""


class EtaAccuracyModel(_Strict):
    """``core.eta_accuracy``: the ETA model's rolling-origin backtest against the static transit-days table the
    allocation plans with, per carrier x service ('*' x '*': all)."""

    carrier_id: str = _f("Carrier ('*': all).")
    service: str = _f("Service ('*': all).")
    n: pl.Int64 = _f("Predictions scored (shipments in transit at an origin, delivered later).", ge=0)
    coverage_p90: float = _f("Share delivered on or before the P90 estimate (target 0.88-0.92).", nullable=True)
    mae_p50_h: float = _f("Mean absolute error of the P50 estimate, hours.", nullable=True)
    mae_static_h: float = _f("The same for ship date + transit_days of ref.carrier_rates.", nullable=True)
    bias_p50_h: float = _f("Mean signed error of the P50 (negative: early).", nullable=True)
    n_static: pl.Int64 = _f("Predictions the static table could score (a rate row for the lane).", ge=0)
    folds: pl.Int64 = _f("Origins of the backtest.", ge=0)
    evaluated_at: TsUTC = _f("When.")


class ShipmentExceptionModel(_Strict):
    """``core.shipment_exceptions``: what needs a person, carried from run to run (never re-created) until it
    clears."""

    exception_id: str = _f("shipment_id + kind (+ carrier event): one row per problem.", unique=True)
    shipment_id: str = _f("Shipment.")
    order_id: str = _f("Order.")
    kind: str = _f("NO_PICKUP | NO_SCAN | CARRIER_EXCEPTION | LATE_RISK | DELIVERED_LATE.",
                   isin=["NO_PICKUP", "NO_SCAN", "CARRIER_EXCEPTION", "LATE_RISK", "DELIVERED_LATE"])
    severity: str = _f("low | medium | high.", isin=["low", "medium", "high"])
    owner_queue: str = _f("Who works it: carrier_desk | customer_care | warehouse.")
    detail: str = _f("What, in words.")
    opened_at: TsUTC = _f("When it was first seen.")
    resolved_at: TsUTC = _f("When it cleared (null: open).", nullable=True)


class NotificationModel(_Strict):
    """``ops.notifications``: the customer notifications outbox, one message per milestone or exception the
    customer should see, each written once (idempotency key)."""

    notification_id: str = _f("Idempotency key: sha256 of shipment, kind and the event it tells.", unique=True)
    shipment_id: str = _f("Shipment.")
    order_id: str = _f("Order.")
    kind: str = _f("shipped | out_for_delivery | delivered | delayed | failed_attempt.")
    channel: str = _f("email | webhook.", isin=["email", "webhook"])
    language: str = _f("Language rendered (en, de, fr, es).")
    recipient: str = _f("Email address or webhook target.", nullable=True)
    not_before: TsUTC = _f("Quiet hours: not sent before this time in the customer's time zone.")
    path: str = _f("The rendered message under $SOM_HOME/outbound/notifications/.")
    created_at: TsUTC = _f("When rendered.")
