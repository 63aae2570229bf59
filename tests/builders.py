"""Builders of small frames that conform to the models (orders, lines, reference data)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from som_pipeline import schemas
from som_pipeline.validation import load_config

CFG = load_config()
D = Decimal
T0 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
AS_OF = date(2026, 10, 2)


# ------------------------------------------------------------------------------------------------
# Builders: frames conforming to the models
# ------------------------------------------------------------------------------------------------
def orders(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        ts = r.get("order_ts", T0)
        base = {"channel": "csv", "channel_order_ref": r["order_id"], "customer_ref": "ref-" + str(r.get("customer_id")),
                "order_ts": ts, "currency": "USD", "ship_to_name": "Pat Doe", "ship_to_line1": "1 Main St",
                "ship_to_city": "Springfield", "ship_to_region": "IL", "ship_to_postal_code": "62701",
                "ship_to_country": "US", "ship_method": "UPS_GROUND", "ship_complete": False,
                "items_subtotal": D("100.00"), "discount_total": D("0"), "tax_total": D("0"),
                "shipping_total": D("0"), "order_total": D("100.00"), "line_count": 1, "unpriced_lines": 0,
                "source_file": "t.csv", "source_location": "line 2", "content_hash": "h", "captured_at": ts,
                "version": 1, "customer_id": "C1", "order_date": ts.date(), "first_captured_at": ts,
                "capture_id": "cap-" + r["order_id"]}
        base.update(r)
        base["order_date"] = base["order_ts"].date()
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.OrderModel)


def lines(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        base = {"line_no": 1, "sku": "S1", "item_kind": "catalog", "quantity": 1, "uom": "EA", "unit_price": D("10.0000"),
                "discount_amount": D("0"), "tax_amount": D("0"), "shipping_amount": D("0"), "version": 1}
        base.update(r)
        if "line_amount" not in r and base["unit_price"] is not None:
            base["line_amount"] = (base["unit_price"] * base["quantity"]).quantize(D("0.01"))
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.OrderLineModel)


def customers(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        base = {"customer_id": "C1", "name": "Acme", "email": None, "tier": "standard",
                "credit_limit": D("100000.00"), "currency": "USD", "payment_terms_days": 30, "country": "US",
                "ship_complete": False, "allow_substitutes": False, "active": True, "created_on": date(2025, 1, 1)}
        base.update(r)
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.CustomerModel)


def products(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        base = {"name": "Thing", "category": "Tools", "weight_kg": 1.0, "length_cm": 1.0, "width_cm": 1.0,
                "height_cm": 1.0, "list_price": D("10.0000"), "currency": "USD", "hazmat": False,
                "restricted_countries": None, "substitutes": None, "active": True}
        base.update(r)
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.ProductModel)


def prices(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        base = {"tier": "standard", "sku": "S1", "min_qty": 1, "price": D("10.0000"), "currency": "USD",
                "valid_from": date(2026, 1, 1), "valid_to": None, "max_discount_pct": D("0.080000")}
        base.update(r)
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.PriceListModel)


def promos(*rows: dict) -> pl.DataFrame:
    out = []
    for r in rows:
        base = {"kind": "percent", "value": D("0.2000"), "valid_from": date(2026, 1, 1), "valid_to": None,
                "eligible_tiers": "*", "eligible_channels": "*", "eligible_skus": "*", "eligible_categories": "*",
                "usage_cap": None}
        base.update(r)
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.PromotionModel)


def stock(**on_hand: int) -> pl.DataFrame:
    return schemas.conform(pl.DataFrame({"warehouse_id": ["WH-1"] * len(on_hand), "sku": list(on_hand),
                                         "on_hand": list(on_hand.values()), "as_of": [T0] * len(on_hand)}),
                           schemas.InventoryModel)


def open_items(*rows: dict) -> pl.DataFrame:
    out = []
    for i, r in enumerate(rows):
        base = {"invoice_id": f"INV-{i + 1}", "customer_id": "C1", "amount_open": D("0"), "currency": "USD",
                "invoice_date": AS_OF - timedelta(days=10), "due_date": AS_OF + timedelta(days=20)}
        base.update(r)
        out.append(base)
    return schemas.conform(pl.DataFrame(out, infer_schema_length=None), schemas.OpenItemModel)


NO_PROMOS = schemas.empty(schemas.PromotionModel)
NO_ITEMS = schemas.empty(schemas.OpenItemModel)


