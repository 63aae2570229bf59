"""Canonical orders (``core.*``): the live version of every order and its lines, every version (history),
probable duplicates across channels, daily sales.

``_OrderHeader`` and ``_Line`` are the order's columns as captured; the staged observations
(:mod:`~som_pipeline.schemas.capture`) share them.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from som_pipeline.config import CHANNELS
from som_pipeline.schemas.base import Money, Rate, TsUTC, UnitPrice, _f, _Strict


class _OrderHeader(_Strict):
    channel: str = _f("Channel the order came from.", isin=list(CHANNELS))
    channel_order_ref: str = _f(
        "The channel's own id of the order (Shopify order id, AmazonOrderId, EDI sender:PO number, "
        "CSV channel_order_ref, portal order number). One live order per (channel, channel_order_ref)."
    )
    customer_ref: str = _f("The channel's id of the buyer (email, EDI partner id, account number).", nullable=True)
    customer_po: str = _f("Customer purchase-order number, where the channel gives one.", nullable=True)
    order_ts: TsUTC = _f("When the customer placed the order (UTC).")
    currency: str = _f("ISO 4217 currency of every amount of the order.", str_length={"min_value": 3, "max_value": 3})
    ship_to_name: str = _f("Ship-to recipient name.", nullable=True)
    ship_to_company: str = _f("Ship-to company.", nullable=True)
    ship_to_line1: str = _f("Ship-to street, first line.", nullable=True)
    ship_to_line2: str = _f("Ship-to street, second line.", nullable=True)
    ship_to_city: str = _f("Ship-to city.", nullable=True)
    ship_to_region: str = _f("Ship-to state / province / region code.", nullable=True)
    ship_to_postal_code: str = _f("Ship-to postal code as given.", nullable=True)
    ship_to_country: str = _f("Ship-to country, ISO 3166-1 alpha-2 as given (upper-cased).", nullable=True)
    ship_method: str = _f("Requested shipping service as given by the channel (e.g. Standard, UPSG).", nullable=True)
    promo_code: str = _f("Promotion / discount code the customer used.", nullable=True)
    payment_status: str = _f("Payment status at the channel (Shopify financial_status, Amazon 'paid').", nullable=True)
    channel_status: str = _f("Order status at the channel (Amazon OrderStatus, Shopify cancelled...).", nullable=True)
    cancelled_at: TsUTC = _f("When the channel cancelled the order.", nullable=True)
    ship_complete: bool = _f("True: the order must ship in one shipment (never split).")
    items_subtotal: Money = _f(
        "Sum of line_amount (quantity x unit price, each rounded once). Null when a line has no price yet.",
        nullable=True,
    )
    discount_total: Money = _f("Sum of line discounts.")
    tax_total: Money = _f("Sum of line taxes (as given by the channel, or rate x net, rounded per line) plus "
                          "shipping_tax.")
    shipping_total: Money = _f("Shipping charged to the customer.")
    shipping_tax: Money = _f("Tax on shipping (Shopify shipping_lines[].tax_lines); part of tax_total.",
                             backfill=Decimal("0"))
    prices_include_tax: bool = _f(
        "True: unit prices, discounts and shipping include the tax (Shopify taxes_included, common outside the "
        "US); tax_total is then already in them and not added again to order_total.", backfill=False)
    order_total: Money = _f(
        "items_subtotal - discount_total + shipping_total + tax_total (the tax only when prices_include_tax is "
        "false). Null when a line is unpriced.",
        nullable=True,
    )
    channel_total: Money = _f(
        "Grand total as stated by the channel's document (Shopify total_price, Amazon OrderTotal, X12 AMT*TT), "
        "kept as sent to reconcile against order_total (sql/reconciliation/channel_totals.sql lists the orders "
        "where they differ). Null when the document states none.", nullable=True)
    channel_subtotal: Money = _f(
        "Goods after discounts, before shipping and tax, as stated by the channel (Shopify subtotal_price); "
        "compared with items_subtotal - discount_total. Null when the document states none.", nullable=True)
    channel_discount_total: Money = _f(
        "Total discount as stated by the channel (Shopify total_discounts: line and shipping discounts, while "
        "discount_total counts line discounts and shipping_total is net of its discounts), for reference; not "
        "reconciled on its own. Null when the document states none.", nullable=True)
    channel_tax_total: Money = _f(
        "Total tax as stated by the channel (Shopify total_tax, lines and shipping); compared with tax_total. "
        "Null when the document states none.", nullable=True)
    channel_line_count: int = _f(
        "Number of lines as stated by the document (X12 CTT01); compared with line_count. Null when not stated.",
        nullable=True, ge=0)
    channel_quantity_total: UnitPrice = _f(
        "Hash total of the line quantities as stated by the document (X12 CTT02, 4 places); compared with the "
        "sum of the captured quantities. Null when not stated.", nullable=True, ge=0)
    line_count: int = _f("Number of lines.", ge=1)
    unpriced_lines: int = _f("Lines without a unit price (EDI/CSV/portal may leave price to the price list).", ge=0)
    source_file: str = _f("File (or portal table) the order was captured from.")
    source_location: str = _f("Where in the source: JSON pointer, X12 envelope path and segments, CSV line.")
    source_updated_at: TsUTC = _f("The channel's last-update time of this order, if it gives one.", nullable=True)
    content_hash: str = _f("SHA-256 of the canonical order content (header + lines): equal hash = same order.")
    captured_at: TsUTC = _f("When this content was captured.")


class OrderModel(_OrderHeader):
    """``core.orders``: the live version of every captured order (one row per channel order)."""

    order_id: str = _f("Our order id: <CHANNEL CODE>-<channel_order_ref>.", unique=True)
    version: int = _f("Version number, 1 = first capture; a changed re-send makes a new version.", ge=1)
    customer_id: str = _f("Resolved customer (ref.customers) via ref.customer_aliases; null when unknown.", nullable=True)
    order_date: pl.Date = _f("Date part of order_ts (UTC): the daily partition key.")
    first_captured_at: TsUTC = _f("When version 1 was captured.")
    capture_id: str = _f("Observation (stage.order_headers.capture_id) this version comes from.")


class OrderVersionModel(OrderModel):
    """``core.order_versions``: every version of every order (history; latest wins)."""

    order_id: str = _f("Our order id: <CHANNEL CODE>-<channel_order_ref>.")
    is_current: bool = _f("True for the version in core.orders.")
    superseded_at: TsUTC = _f("When a later version replaced this one.", nullable=True)


ITEM_KINDS = ("catalog", "custom", "service")
#: sku of a line without a catalog identity: CUSTOM_SKU_PREFIX + the channel's line id (or its position)
CUSTOM_SKU_PREFIX = "CUSTOM:"


class _Line(_Strict):
    line_no: int = _f("Line number within the order (as given by CSV/portal; position for JSON/EDI).", ge=1)
    line_ref: str = _f("The channel's id of the line (Shopify line item id, Amazon OrderItemId, PO101).", nullable=True)
    sku: str = _f("SKU as sent by the channel (seller SKU / vendor part number).")
    description: str = _f("Item description as sent.", nullable=True)
    quantity: int = _f("Ordered quantity (units of uom), a positive whole number.", gt=0)
    uom: str = _f("Unit of measure (EA unless the channel says otherwise).")
    unit_price: UnitPrice = _f("Unit price in the order currency; null = to be priced from the price list.", nullable=True, gt=0)
    line_amount: Money = _f(
        "Extended amount: as stated by the channel (Amazon ItemPrice), else quantity x unit_price rounded "
        "half away from zero to cents, once.",
        nullable=True,
    )
    discount_amount: Money = _f("Discount on this line (absolute; from discount_rate x line_amount rounded once).", ge=0)
    discount_rate: Rate = _f(
        "Discount as a fraction of line_amount as given by the channel (CSV/portal discount_pct / 100: 0.05 = 5 %); "
        "null where the channel gives an absolute discount (Shopify, Amazon) or none.", nullable=True, ge=0, le=1)
    tax_rate: Rate = _f("Tax rate as given (0.06 = 6 %).", nullable=True)
    tax_amount: Money = _f("Tax on this line as given, or tax_rate x (line_amount - discount) rounded once.", ge=0)
    shipping_amount: Money = _f("Shipping charged on this line (Amazon ShippingPrice); 0 elsewhere.", ge=0)
    requested_date: pl.Date = _f("Requested delivery / ship date, where given.", nullable=True)
    item_kind: str = _f(
        "What the line sells: 'catalog' (a product the channel identifies by SKU or variant: checked against "
        "ref.products, reserved and allocated), 'custom' (a physical item outside the catalog: a Shopify custom "
        "line item, sku and variant_id null, requires_shipping true; held CUSTOM_ITEM_REVIEW, nothing reserved), "
        "'service' (a custom line that ships nothing, Shopify requires_shipping false: no reservation, no "
        "allocation). A non-catalog line's sku is the placeholder CUSTOM:<channel line id>.",
        isin=list(ITEM_KINDS), backfill="catalog")
    product_ids: str = _f(
        "Every product id the channel sent for the line, as JSON [{\"qualifier\": \"VN\", \"id\": \"A-1\"}, ...] in "
        "the order sent (EDI: the PO1 qualifier/id pairs, placeholders included; sku is the one the partner's "
        "qualifier priority picked). Null where the channel sends one id. Not part of content_hash.",
        nullable=True)


class OrderLineModel(_Line):
    """``core.order_lines``: lines of the live version of each order."""

    order_id: str = _f("Order (core.orders.order_id).")
    version: int = _f("Order version these lines belong to.", ge=1)

    class Config:
        strict = True
        unique = ["order_id", "line_no"]


class OrderLineVersionModel(_Line):
    """``core.order_line_versions``: lines of every order version."""

    order_id: str = _f("Order (core.orders.order_id).")
    version: int = _f("Order version these lines belong to.", ge=1)

    class Config:
        strict = True
        unique = ["order_id", "version", "line_no"]


class ProbableDuplicateModel(_Strict):
    """``core.probable_duplicates``: the same customer PO number live on more than one channel order."""

    customer_key: str = _f("customer_id when resolved, else the channel customer_ref.")
    customer_po: str = _f("The shared customer PO number.")
    order_id: str = _f("One of the orders carrying it.")
    channel: str = _f("That order's channel.")
    other_order_ids: str = _f("The other orders with the same customer and PO, comma-separated.")
    channels_involved: int = _f("Number of distinct channels among them.", ge=1)


class DailySalesModel(_Strict):
    """``core.daily_sales``: per order date (daily partition) and channel x currency."""

    order_date: pl.Date = _f("Order date (UTC): the partition key.")
    channel: str = _f("Channel.")
    currency: str = _f("Currency of the amounts.")
    orders: int = _f("Live orders placed that day.", ge=0)
    lines: int = _f("Their lines.", ge=0)
    units: int = _f("Their units.", ge=0)
    items_subtotal: Money = _f("Sum of priced line amounts.")
    discount_total: Money = _f("Sum of discounts.")
    tax_total: Money = _f("Sum of taxes.")
    order_total: Money = _f("Sum of order totals (priced orders only).")
    unpriced_orders: int = _f("Orders with at least one unpriced line (excluded from order_total).", ge=0)
    cancelled_orders: int = _f("Orders cancelled at the channel.", ge=0)
