"""Small allocation instances: frames conforming to the models, built from a compact description."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from som_pipeline import schemas
from som_pipeline.allocation import AllocationInputs

D = Decimal
# Thursday 2026-10-01 10:00 UTC = 06:00 in New York, 03:00 in Los Angeles: before every cutoff.
NOW = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
ORDER_TS = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
FAR = datetime(2030, 1, 1, tzinfo=UTC)
BANDS = ((1.0, "6.00"), (5.0, "9.00"), (20.0, "18.00"))


def frame(model: type, rows: list[dict]) -> pl.DataFrame:
    return schemas.conform(pl.DataFrame(rows, schema_overrides=None, infer_schema_length=None, strict=False)
                           if rows else schemas.empty(model), model)


def instance(*, warehouses: dict[str, dict] | None = None, stock: dict[tuple[str, str], int],
             orders: list[dict], zones: dict[tuple[str, str, str], int] | None = None,
             carriers: list[dict] | None = None, rate: Any = None, disruptions: list[dict] | None = None,
             products: dict[str, dict] | None = None) -> AllocationInputs:
    """The inputs of :func:`som_pipeline.allocation.allocate` (no previous allocations or backorders).

    ``orders``: ``{"order_id", "lines": [(sku, qty) | (sku, qty, requested_date)], "country", "region",
    "sc", "ship_method", "status", "backordered": {line_no: units}}``.
    ``zones``: ``(warehouse_id, country, region or '*') -> zone``; default: every warehouse -> US '*' zone 2.
    ``rate(carrier, service, zone, band_index) -> (Decimal rate, transit_days)``.
    """
    warehouses = warehouses or {"WH-A": {}, "WH-B": {}}
    whs = []
    for i, (wid, w) in enumerate(warehouses.items()):
        base = {"warehouse_id": wid, "name": wid, "country": "US", "region": "NY", "postal_code": "10001",
                "latitude": 40.0, "longitude": -74.0 + i, "daily_capacity_lines": 10_000, "cutoff_time": time(15, 0),
                "timezone": "America/New_York", "handling_cost": D("3.00"), "active": True}
        base.update(w)
        whs.append(base)
    skus = sorted({s for (_, s) in stock} | {ln[0] for o in orders for ln in o["lines"]})
    prods = []
    for s in skus:
        base = {"sku": s, "name": s, "category": "Tools", "weight_kg": 1.0, "length_cm": 1.0, "width_cm": 1.0,
                "height_cm": 1.0, "list_price": D("10.0000"), "currency": "USD", "hazmat": False,
                "restricted_countries": None, "substitutes": None, "active": True}
        base.update((products or {}).get(s, {}))
        prods.append(base)
    carriers = carriers or [{"carrier_id": "UPS", "service": "GROUND", "mode": "ground", "on_time_rate": 0.97,
                             "daily_capacity_parcels": 10_000, "active": True}]
    zones = zones if zones is not None else {(w, "US", "*"): 2 for w in warehouses}
    rate = rate or (lambda c, s, z, b: (D(BANDS[b][1]) + D(z), 2))
    rate_rows = []
    for c in carriers:
        for z in sorted(set(zones.values())):
            for b, (mx, _) in enumerate(BANDS):
                r, t = rate(c["carrier_id"], c["service"], z, b)
                rate_rows.append({"carrier_id": c["carrier_id"], "service": c["service"], "zone": z,
                                  "max_weight_kg": mx, "rate": D(r), "currency": "USD", "transit_days": t})
    o_rows, l_rows, r_rows = [], [], []
    for o in orders:
        ts = o.get("order_ts", ORDER_TS)
        o_rows.append({"channel": "csv", "channel_order_ref": o["order_id"], "customer_ref": None, "customer_po": None,
                       "order_ts": ts, "currency": "USD", "ship_to_region": o.get("region", "NY"),
                       "ship_to_country": o.get("country", "US"), "ship_method": o.get("ship_method", "UPS_GROUND"),
                       "ship_complete": o.get("sc", False), "discount_total": D("0"), "tax_total": D("0"),
                       "shipping_total": D("0"), "line_count": len(o["lines"]), "unpriced_lines": 0,
                       "source_file": "t.csv", "source_location": "line 2", "content_hash": "h", "captured_at": ts,
                       "order_id": o["order_id"], "version": 1, "customer_id": "C1", "order_date": ts.date(),
                       "first_captured_at": ts, "capture_id": "cap-" + o["order_id"]})
        for n, ln in enumerate(o["lines"], start=1):
            sku, qty = ln[0], ln[1]
            req = ln[2] if len(ln) > 2 else None
            l_rows.append({"order_id": o["order_id"], "version": 1, "line_no": n, "sku": sku, "quantity": qty,
                           "uom": "EA", "discount_amount": D("0"), "tax_amount": D("0"), "shipping_amount": D("0"),
                           "requested_date": req})
            back = o.get("backordered", {}).get(n, 0)
            r_rows.append({"order_id": o["order_id"], "line_no": n, "sku": sku, "requested_sku": sku,
                           "quantity_requested": qty, "quantity_reserved": qty - back, "quantity_backordered": back,
                           "decision": o.get("decision", "RESERVE" if back == 0 else "SPLIT"),
                           "order_status": o.get("status", "APPROVED"), "reserved_at": ts, "expires_at": None})
    inv = [{"warehouse_id": w, "sku": s, "on_hand": q, "as_of": NOW} for (w, s), q in stock.items()]
    zrows = [{"warehouse_id": w, "dest_country": c, "dest_region": r, "zone": z} for (w, c, r), z in zones.items()]
    drows = []
    for i, d in enumerate(disruptions or []):
        base = {"disruption_id": f"D{i + 1}", "starts_at": NOW - timedelta(hours=1), "ends_at": FAR,
                "severity": "closed", "extra_days": 0, "note": None}
        base.update(d)
        drows.append(base)
    return AllocationInputs(
        orders=frame(schemas.OrderModel, o_rows),
        lines=frame(schemas.OrderLineModel, l_rows),
        reservations=frame(schemas.ReservationModel, r_rows),
        warehouses=frame(schemas.WarehouseModel, whs),
        inventory=frame(schemas.InventoryModel, inv),
        products=frame(schemas.ProductModel, prods),
        carriers=frame(schemas.CarrierModel, carriers),
        carrier_rates=frame(schemas.CarrierRateModel, rate_rows),
        shipping_zones=frame(schemas.ShippingZoneModel, zrows),
        disruptions=frame(schemas.DisruptionModel, drows),
    )


def requested(days: int) -> date:
    return NOW.date() + timedelta(days=days)
