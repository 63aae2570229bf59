"""Reference (master) data: the ``ref.*`` tables loaded from ``$SOM_HOME/reference/<table>.csv|.parquet``,
typed and checked by these models (:mod:`som_pipeline.reference`); registered in ``REFERENCE_TABLES``.
(``ref.disruptions`` arrives through the landing zone: :mod:`~som_pipeline.schemas.allocation`.)"""

from __future__ import annotations

import polars as pl

from som_pipeline.config import CHANNELS
from som_pipeline.schemas.base import Money, Rate, TsUTC, UnitPrice, _f, _Strict

TIERS = ["standard", "silver", "gold", "platinum"]
PROMO_KINDS = ["percent", "fixed_amount", "free_shipping"]
SHIP_MODES = ["ground", "air", "sea"]


class CustomerModel(_Strict):
    """``ref.customers``"""

    customer_id: str = _f("Customer id.", unique=True)
    name: str = _f("Legal / display name.")
    email: str = _f("Main contact email.", nullable=True)
    tier: str = _f("Commercial tier: drives price list and promo eligibility.", isin=TIERS)
    credit_limit: Money = _f("Credit limit in the customer's currency.", ge=0)
    currency: str = _f("Customer's billing currency (ISO 4217).", str_length={"min_value": 3, "max_value": 3})
    payment_terms_days: int = _f("Invoice due after this many days.", ge=0, le=365)
    country: str = _f("Country (ISO 3166-1 alpha-2).", str_length={"min_value": 2, "max_value": 2})
    ship_complete: bool = _f("Default: orders must ship complete.")
    allow_substitutes: bool = _f("Customer accepts catalog substitutes for out-of-stock items.")
    active: bool = _f("Customer may order.")
    created_on: pl.Date = _f("Customer since.")


class CustomerAliasModel(_Strict):
    """``ref.customer_aliases``: maps a channel's customer reference to a customer id."""

    channel: str = _f("Channel.", isin=list(CHANNELS))
    external_ref: str = _f("The channel's customer reference (email, EDI partner id, account no.).")
    customer_id: str = _f("ref.customers.customer_id")

    class Config:
        strict = True
        unique = ["channel", "external_ref"]


class ProductAliasModel(_Strict):
    """``ref.product_aliases``: another number a trading partner may send for a catalog product (a GTIN, UPC or
    EAN, a buyer's or the manufacturer's part number). EDI capture resolves a PO1 line to the catalog through it
    when the id its qualifier priority picks is not a catalog SKU (:mod:`som_pipeline.ingest.x12.products`)."""

    alias: str = _f("The id as partners send it (e.g. a GTIN-12 '036000291452'), unique.", unique=True)
    sku: str = _f("The catalog SKU it stands for (ref.products.sku).")
    qualifier: str = _f("The X12 product id qualifier it is usually sent under (UP, EN, BP, MG...), for the record.",
                        nullable=True)


class ProductModel(_Strict):
    """``ref.products``"""

    sku: str = _f("Stock keeping unit.", unique=True)
    name: str = _f("Product name.")
    category: str = _f("Category.")
    weight_kg: float = _f("Shipping weight per unit, kg.", gt=0)
    length_cm: float = _f("Package length, cm.", gt=0)
    width_cm: float = _f("Package width, cm.", gt=0)
    height_cm: float = _f("Package height, cm.", gt=0)
    list_price: UnitPrice = _f("List price per unit.", gt=0)
    currency: str = _f("Currency of list_price.", str_length={"min_value": 3, "max_value": 3})
    hazmat: bool = _f("Hazardous material (no air shipping).")
    fragile: bool = _f("Fragile: packed padded, only with fragile items (a file without the column: not fragile).",
                       nullable=True)
    tax_class: str = _f("Tax class for ref.tax_rates (null: 'standard').", nullable=True)
    restricted_countries: str = _f("Countries the item may not ship to, '|'-separated ISO-2 codes.", nullable=True)
    substitutes: str = _f("Acceptable substitute SKUs in order of preference, '|'-separated.", nullable=True)
    active: bool = _f("Orderable.")


class PriceListModel(_Strict):
    """``ref.price_lists``: tier prices with quantity breaks and validity."""

    tier: str = _f("Customer tier.", isin=TIERS)
    sku: str = _f("SKU.")
    min_qty: int = _f("Price applies from this quantity.", ge=1)
    price: UnitPrice = _f("Unit price.", gt=0)
    currency: str = _f("Currency.", str_length={"min_value": 3, "max_value": 3})
    valid_from: pl.Date = _f("First day valid.")
    valid_to: pl.Date = _f("Last day valid (null = open).", nullable=True)
    max_discount_pct: Rate = _f("Largest discount a rep may give without approval (0.10 = 10 %).", ge=0, le=1)

    class Config:
        strict = True
        unique = ["tier", "sku", "min_qty", "currency", "valid_from"]


class PromotionModel(_Strict):
    """``ref.promotions``"""

    code: str = _f("Promo code (case-insensitive).", unique=True)
    kind: str = _f("percent | fixed_amount | free_shipping.", isin=PROMO_KINDS)
    value: UnitPrice = _f("Percent as a fraction (0.15) or an amount.", ge=0)
    valid_from: pl.Date = _f("First day valid.")
    valid_to: pl.Date = _f("Last day valid.", nullable=True)
    eligible_tiers: str = _f("'|'-separated tiers, or '*' for all.")
    eligible_channels: str = _f("'|'-separated channels, or '*'.")
    eligible_skus: str = _f("'|'-separated SKUs, or '*'.")
    eligible_categories: str = _f("'|'-separated categories, or '*'.")
    usage_cap: int = _f("Maximum number of orders that may use it (null = unlimited).", nullable=True, ge=1)


class WarehouseModel(_Strict):
    """``ref.warehouses``"""

    warehouse_id: str = _f("Warehouse id.", unique=True)
    name: str = _f("Name.")
    country: str = _f("Country (ISO-2).", str_length={"min_value": 2, "max_value": 2})
    region: str = _f("State / region code.")
    postal_code: str = _f("Postal code.")
    latitude: float = _f("Latitude.", ge=-90, le=90)
    longitude: float = _f("Longitude.", ge=-180, le=180)
    daily_capacity_lines: int = _f("Order lines it can pick per day.", gt=0)
    cutoff_time: pl.Time = _f("Orders released before this local time ship the same day.")
    timezone: str = _f("IANA time zone of cutoff_time.")
    handling_cost: Money = _f("Handling cost per shipment.", ge=0)
    active: bool = _f("Accepting work.")


class InventoryModel(_Strict):
    """``ref.inventory``: stock snapshot."""

    warehouse_id: str = _f("ref.warehouses.warehouse_id")
    sku: str = _f("ref.products.sku")
    on_hand: int = _f("Units on hand.", ge=0)
    as_of: TsUTC = _f("Snapshot time.")

    class Config:
        strict = True
        unique = ["warehouse_id", "sku"]


class CarrierModel(_Strict):
    """``ref.carriers``: carrier services."""

    carrier_id: str = _f("Carrier.")
    service: str = _f("Service level (GROUND, EXPRESS, ...).")
    mode: str = _f("Transport mode: ground | air | sea.", isin=SHIP_MODES)
    on_time_rate: float = _f("Historical on-time delivery share.", ge=0, le=1)
    daily_capacity_parcels: int = _f("Parcels it takes per warehouse per day.", gt=0)
    active: bool = _f("Available.")

    class Config:
        strict = True
        unique = ["carrier_id", "service"]


class CarrierRateModel(_Strict):
    """``ref.carrier_rates``: price and transit by zone and weight band."""

    carrier_id: str = _f("Carrier.")
    service: str = _f("Service.")
    zone: int = _f("Shipping zone (see ref.shipping_zones).", ge=1)
    max_weight_kg: float = _f("Upper bound of the weight band (inclusive).", gt=0)
    rate: Money = _f("Price per parcel in the band.", ge=0)
    currency: str = _f("Currency.", str_length={"min_value": 3, "max_value": 3})
    transit_days: int = _f("Business days in transit.", ge=0)

    class Config:
        strict = True
        unique = ["carrier_id", "service", "zone", "max_weight_kg"]


class ShippingZoneModel(_Strict):
    """``ref.shipping_zones``: zone of a destination as seen from a warehouse."""

    warehouse_id: str = _f("Origin warehouse.")
    dest_country: str = _f("Destination country (ISO-2).", str_length={"min_value": 2, "max_value": 2})
    dest_region: str = _f("Destination region code, or '*' for the rest of the country.")
    zone: int = _f("Zone.", ge=1)

    class Config:
        strict = True
        unique = ["warehouse_id", "dest_country", "dest_region"]


class OpenItemModel(_Strict):
    """``ref.open_items``: open receivables per customer (credit exposure). Billing feeds it later."""

    invoice_id: str = _f("Invoice number.", unique=True)
    customer_id: str = _f("ref.customers.customer_id")
    amount_open: Money = _f("Amount still unpaid.", ge=0)
    currency: str = _f("Currency.", str_length={"min_value": 3, "max_value": 3})
    invoice_date: pl.Date = _f("Invoice date.")
    due_date: pl.Date = _f("Due date (invoice date + payment terms).")
