"""The demo's carriers: what they send back about our shipments while the demo's clock moves on.

:func:`simulate_carrier_feed` simulates every shipment's transit (``demo.carriers.simulate_transits``: lanes and
carriers that differ, weekday effects, delays, failed attempts, lost parcels, duplicates, out-of-order arrival)
and writes the events the carriers have *sent* by the end of the window into ``landing/carrier_events/``:

- B2B shipments (EDI, portal, sales reps): **X12 214** status messages (B10 with the tracking number, one LX/AT7
  per status, time code UT), as a freight carrier's EDI feed, into ``landing/edi/`` (the EDI channel routes 214s
  to tracking);
- Amazon's orders: Amazon's **SHIPMENT_TRACKING_MILESTONE_CHANGED** notifications; every 5th Shopify shipment:
  Shopify **fulfillment events**; the other channel shipments: **carrier-aggregator trackers** (EasyPost-style
  Tracker objects with their ``tracking_details``), a few as ``tracker.updated`` webhook events;
- one tracker for a parcel that is not ours (a carrier's mix-up: it waits in ``core.tracking_pending``).

It also writes ``reference/transit_history.parquet`` once: the carriers' delivered history of the months before
(``demo.carriers.history``, from the carriers' portals), which bootstraps the ETA model before our own deliveries
accumulate. Deterministic for a given warehouse state and seed. Demo only.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from som_pipeline.demo import carriers as sim

AT7 = {"PICKED_UP": "AF", "IN_TRANSIT": "X6", "OUT_FOR_DELIVERY": "AJ", "DELIVERED": "D1"}
AT7_EXCEPTION = {"DELAY": ("SD", "AH"), "FAILED_ATTEMPT": ("AH", "A1"), "LOST": ("SD", "AH")}
EASYPOST = {"PICKED_UP": ("in_transit", "arrived_at_facility"), "IN_TRANSIT": ("in_transit", "arrived_at_facility"),
            "OUT_FOR_DELIVERY": ("out_for_delivery", "out_for_delivery"), "DELIVERED": ("delivered", "arrived_at_destination")}
EASYPOST_EXCEPTION = {"DELAY": ("in_transit", "weather_delay"), "FAILED_ATTEMPT": ("failure", "delivery_exception"),
                      "LOST": ("failure", "lost")}
SCAC = {"UPS": "UPSN", "FEDEX": "FDEG", "DHL": "DHLC", "USPS": "USPS"}
B2B = ("edi", "b2b_portal", "csv")


def simulate_carrier_feed(home: Path, wh, start: datetime, hours: float, seed: int = 11) -> dict:
    with wh.connect() as con:
        sh = con.execute("""
            SELECT s.shipment_id, s.carrier_id, s.service, s.warehouse_id, s.shipped_at, s.order_id, o.channel,
                   (SELECT min(p.tracking_number) FROM core.packages p WHERE p.shipment_id = s.shipment_id) AS tn,
                   (SELECT min(p.package_id) FROM core.packages p WHERE p.shipment_id = s.shipment_id) AS package_id,
                   coalesce(z.zone, zc.zone, 4) AS dest_zone, o.ship_to_city, o.ship_to_region, o.ship_to_country
            FROM core.shipments s JOIN core.orders o USING (order_id)
            LEFT JOIN ref.shipping_zones z ON z.warehouse_id = s.warehouse_id AND z.dest_country = o.ship_to_country
                 AND z.dest_region = o.ship_to_region
            LEFT JOIN ref.shipping_zones zc ON zc.warehouse_id = s.warehouse_id AND zc.dest_country = o.ship_to_country
                 AND zc.dest_region = '*'
            ORDER BY s.shipment_id
        """).pl()
    out: dict = {"history": _history(home, start, seed)}
    if sh.height == 0:
        return out | {"events": 0}
    end = start + timedelta(hours=hours)
    ev = sim.simulate_transits(sh.select("shipment_id", "carrier_id", "service", "warehouse_id", "dest_zone",
                                         "shipped_at"), seed)
    ev = ev.filter((pl.col("received_at") <= end) & (pl.col("event_at") <= end)
                   & (pl.col("milestone") != "LABEL_CREATED"))  # our own label is the first event
    ev = ev.join(sh.select("shipment_id", "tn", "package_id", "channel", "ship_to_city", "ship_to_region",
                           "ship_to_country"),
                 on="shipment_id")
    d = home / "landing" / "carrier_events"
    d.mkdir(parents=True, exist_ok=True)
    b2b = ev.filter(pl.col("channel").is_in(B2B))
    retail = ev.filter(~pl.col("channel").is_in(B2B))
    files = 0
    edi = home / "landing" / "edi"  # the carriers' EDI mailbox: the EDI channel routes the 214s to tracking
    for (carrier,), g in b2b.group_by("carrier_id", maintain_order=True):
        (edi / f"214_{carrier}_{start:%Y%m%d}.edi").write_text(_x12_214(g, carrier, start), encoding="utf-8")
        files += 1
    # Amazon's own tracking notifications for its orders; Shopify's fulfillment events for every 5th Shopify
    # shipment (the fulfillment id Shopify returned for the package's request is stood in by our package id)
    amazon = retail.filter(pl.col("channel") == "amazon")
    shop_ids = retail.filter(pl.col("channel") == "shopify").select("shipment_id").unique().sort("shipment_id")
    shop_ev = retail.join(shop_ids.gather_every(5), on="shipment_id", how="semi")
    retail = retail.join(amazon.select("shipment_id"), on="shipment_id", how="anti").join(
        shop_ev.select("shipment_id"), on="shipment_id", how="anti")
    for i, note in enumerate(_amazon(amazon)):
        (d / f"amazon_{start:%Y%m%d}_{i:04d}.json").write_text(json.dumps(note, indent=1), encoding="utf-8")
        files += 1
    if shop_ev.height:
        (d / f"shopify_events_{start:%Y%m%d}.json").write_text(json.dumps(_shopify(shop_ev), indent=1),
                                                               encoding="utf-8")
        files += 1
    trackers = _trackers(retail)
    stray = {"object": "Tracker", "id": "trk_stray", "tracking_code": "1Z999AA10123456784", "carrier": "UPS",
             "status": "in_transit", "tracking_details": [{"object": "TrackingDetail", "status": "in_transit",
                                                            "status_detail": "arrived_at_facility",
                                                            "message": "Arrived at facility",
                                                            "datetime": (start + timedelta(hours=2)).strftime(
                                                                "%Y-%m-%dT%H:%M:%SZ"),
                                                            "tracking_location": {"city": "LOUISVILLE", "state": "KY",
                                                                                  "country": "US"}}]}
    webhooks = trackers[: max(1, len(trackers) // 10)]
    (d / f"trackers_{start:%Y%m%d}.json").write_text(json.dumps(trackers[len(webhooks):] + [stray], indent=1),
                                                     encoding="utf-8")
    for i, t in enumerate(webhooks):
        (d / f"webhook_{start:%Y%m%d}_{i:03d}.json").write_text(json.dumps(
            {"object": "Event", "description": "tracker.updated", "id": f"evt_{t['id']}", "result": t}, indent=1),
            encoding="utf-8")
    files += 1 + len(webhooks)
    return out | {"events": ev.height, "files": files, "shipments": ev["shipment_id"].n_unique()}


def _x12_214(g: pl.DataFrame, carrier: str, at: datetime) -> str:
    """One interchange, one ST 214 per shipment, one LX/AT7/MS1 per status in the order the carrier sent them."""
    scac = SCAC.get(carrier, carrier[:4])
    seg = []
    icn = int(at.strftime("%y%m%d")) % 999_999_999
    seg.append(f"ISA*00*          *00*          *02*{scac:<15}*ZZ*{'SOMPIPELINE':<15}*{at:%y%m%d}*{at:%H%M}*U*00401*"
               f"{icn:09d}*0*P*>")
    seg.append(f"GS*QM*{scac}*SOMPIPELINE*{at:%Y%m%d}*{at:%H%M}*{icn}*X*004010")
    n_sets = 0
    for (sid,), s in g.sort("received_at", "event_at").group_by("shipment_id", maintain_order=True):
        n_sets += 1
        body = [f"ST*214*{n_sets:04d}", f"B10*{s['tn'][0]}*{sid}*{scac}"]
        for i, r in enumerate(s.iter_rows(named=True), 1):
            code, reason = (AT7_EXCEPTION.get(r["exception"], ("SD", "AH")) if r["milestone"] == "EXCEPTION"
                            else (AT7[r["milestone"]], "NS"))
            t = r["event_at"]
            body += [f"LX*{i}", f"AT7*{code}*{reason}***{t:%Y%m%d}*{t:%H%M}*UT",
                     f"MS1*{_x12(r['ship_to_city'] or 'UNKNOWN')}*{_x12(r['ship_to_region'] or '')}"]
        body.append(f"SE*{len(body) + 1}*{n_sets:04d}")
        seg += body
    seg += [f"GE*{n_sets}*{icn}", f"IEA*1*{icn:09d}"]
    return "~\n".join(seg) + "~\n"


def _x12(text: str) -> str:
    return "".join(c for c in text.upper() if c not in "*~>^")[:30]


def _trackers(ev: pl.DataFrame) -> list[dict]:
    out = []
    for (sid,), s in ev.sort("received_at", "event_at").group_by("shipment_id", maintain_order=True):
        details = []
        for r in s.iter_rows(named=True):
            status, detail = (EASYPOST_EXCEPTION.get(r["exception"], ("in_transit", "delayed"))
                              if r["milestone"] == "EXCEPTION" else EASYPOST[r["milestone"]])
            details.append({"object": "TrackingDetail", "status": status, "status_detail": detail,
                            "message": f"{r['milestone'].replace('_', ' ').title()}",
                            "datetime": r["event_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "tracking_location": {"city": r["ship_to_city"], "state": r["ship_to_region"],
                                                  "country": r["ship_to_country"]}})
        last = details[-1]
        out.append({"object": "Tracker", "id": f"trk_{sid[2:18]}", "tracking_code": s["tn"][0],
                    "carrier": s["carrier_id"][0], "status": last["status"], "status_detail": last["status_detail"],
                    "signed_by": "J. DOE" if last["status"] == "delivered" else None, "tracking_details": details})
    return out


AMAZON_CODE = {"PICKED_UP": "SHIPPED", "OUT_FOR_DELIVERY": "OUT_FOR_DELIVERY", "DELIVERED": "DELIVERED"}
SHOPIFY_CODE = {"PICKED_UP": "carrier_picked_up", "IN_TRANSIT": "in_transit", "OUT_FOR_DELIVERY": "out_for_delivery",
                "DELIVERED": "delivered"}
SHOPIFY_EXCEPTION = {"DELAY": "delayed", "FAILED_ATTEMPT": "attempted_delivery", "LOST": "failure"}


def _amazon(ev: pl.DataFrame) -> list[dict]:
    """One SHIPMENT_TRACKING_MILESTONE_CHANGED notification per shipment: its latest milestone and the history
    (Amazon reports the milestones it knows: shipped, out for delivery, delivered)."""
    out = []
    for _sid, s in ev.filter(pl.col("milestone").is_in(list(AMAZON_CODE))).sort("event_at").group_by(
            "shipment_id", maintain_order=True):
        hist = [{"status": {"code": AMAZON_CODE[r["milestone"]]}, "occurredAt": r["event_at"].strftime(
            "%Y-%m-%dT%H:%M:%SZ"), "location": {"address": {"city": r["ship_to_city"], "region": r["ship_to_region"],
                                                            "countryCode": r["ship_to_country"]}}}
                for r in s.iter_rows(named=True)]
        out.append({"notificationVersion": "1.0", "notificationType": "SHIPMENT_TRACKING_MILESTONE_CHANGED",
                    "payloadVersion": "2026-01-30", "eventTime": hist[-1]["occurredAt"],
                    "payload": {"shipmentTrackingMilestoneChangedNotification": {"trackingDetail": {
                        "identifier": {"aftn": s["tn"][0]}, "latestMilestone": hist[-1], "milestoneHistory": hist}}}})
    return out


def _shopify(ev: pl.DataFrame) -> dict:
    rows = []
    for i, r in enumerate(ev.sort("received_at", "event_at").iter_rows(named=True), 1):
        status = (SHOPIFY_EXCEPTION.get(r["exception"], "delayed") if r["milestone"] == "EXCEPTION"
                  else SHOPIFY_CODE[r["milestone"]])
        rows.append({"id": 9_000_000 + i, "fulfillment_id": r["package_id"], "status": status, "message": None,
                     "happened_at": r["event_at"].strftime("%Y-%m-%dT%H:%M:%SZ"), "city": r["ship_to_city"],
                     "province": r["ship_to_region"], "country": r["ship_to_country"]})
    return {"fulfillment_events": rows}


def _history(home: Path, end: datetime, seed: int) -> int:
    """The carriers' delivered history before the demo (bootstraps the ETA model), written once."""
    path = home / "reference" / "transit_history.parquet"
    if path.exists():
        return 0
    h = sim.history(6000, seed, end=end)
    h.write_parquet(path)
    return h.height
