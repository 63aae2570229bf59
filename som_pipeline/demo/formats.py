"""Channel formats: the simulated orders rendered as the real channel documents.

- Shopify Admin REST ``Order`` objects (``{"orders": [...]}`` daily pages, ``{"order": {...}}`` singles);
- Amazon SP-API Orders v0 ``getOrders`` pages and ``getOrderItems`` responses;
- ANSI X12 004010 850 interchanges (separators chosen per trading partner);
- the sales-rep CSV template (and its bulk Parquet twin);
- the B2B portal's rows (written through :mod:`som_pipeline.ingest.b2b`).

Every money value is exact text built from ``Decimal``; document totals are consistent to the cent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from som_pipeline.demo.history import Order
from som_pipeline.demo.master_data import COUNTRY_NAMES, OUR_EDI_ID, Reference, money_text

STORE_TZ = ZoneInfo("America/New_York")
CSV_COLUMNS = [
    "channel_order_ref", "order_ts", "customer_ref", "customer_po", "currency", "ship_to_name", "ship_to_company",
    "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_region", "ship_to_postal_code", "ship_to_country",
    "ship_method", "promo_code", "ship_complete", "line_no", "sku", "description", "quantity", "uom",
    "unit_price", "discount_pct", "tax_rate",
]


def dec_text(d: Decimal) -> str:
    """Plain decimal text without exponent and without trailing fractional zeros ('0.0825', '20', '12.5')."""
    t = format(d, "f")
    if "." in t:
        t = t.rstrip("0").rstrip(".")
    return t or "0"


def iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(dt: datetime, tz: ZoneInfo = STORE_TZ) -> str:
    return dt.astimezone(tz).isoformat(timespec="seconds")


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def asin(sku: str) -> str:
    n, out = _h("asin", sku), ""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for _ in range(8):
        n, r = divmod(n, 36)
        out += alphabet[r]
    return "B0" + out


# ------------------------------------------------------------------------------------------------
# Shopify
# ------------------------------------------------------------------------------------------------
def _money_set(amount: str, currency: str) -> dict[str, Any]:
    m = {"amount": amount, "currency_code": currency}
    return {"shop_money": dict(m), "presentment_money": dict(m)}


def _tax_title(o: Order) -> str:
    c = o.ship_to.country
    if c == "US":
        return f"{o.ship_to.region} State Tax"
    return {"CA": "HST", "AU": "GST", "MX": "IVA"}.get(c, "VAT")


def shopify_order(o: Order, ref: Reference) -> dict[str, Any]:
    cust = ref.customers.get(o.customer_id or "")
    cur = o.currency
    created, updated = iso_local(o.ts), iso_local(o.updated or o.ts)
    promo = ref_promo(ref, o.promo)
    apps: list[dict[str, Any]] = []
    if promo:
        kind = promo["kind"]
        apps.append({
            "target_type": "shipping_line" if kind == "free_shipping" else "line_item",
            "type": "discount_code",
            "value": "100.0" if kind == "free_shipping" else (
                dec_text(Decimal(promo["value"]) * 100) + ".0" if kind == "percent" else promo["value"]),
            "value_type": "percentage" if kind in ("percent", "free_shipping") else "fixed_amount",
            "allocation_method": "each" if kind == "free_shipping" else "across",
            "target_selection": "all",
            "code": o.promo,
        })
    line_items = []
    for ln in o.lines:
        p = ref.products.get(ln.sku)
        title = p.name.split(",")[0] if p else ln.description
        variant = p.name.split(", ", 1)[1] if p and ", " in p.name else None
        tax_lines = []
        if ln.tax_rate:
            tax_lines.append({"channel_liable": False, "price": money_text(ln.tax),
                              "price_set": _money_set(money_text(ln.tax), cur), "rate": float(ln.tax_rate),
                              "title": _tax_title(o)})
        allocations = []
        if ln.discount:
            allocations.append({"amount": money_text(ln.discount), "amount_set": _money_set(money_text(ln.discount), cur),
                                "discount_application_index": 0})
        line_items.append({
            "id": ln.line_id,
            "admin_graphql_api_id": f"gid://shopify/LineItem/{ln.line_id}",
            "fulfillable_quantity": ln.qty,
            "fulfillment_service": "manual",
            "fulfillment_status": None,
            "gift_card": False,
            "grams": int(round((p.weight_kg if p else 0.5) * 1000)),
            "name": ln.description,
            "price": money_text(ln.unit_price),
            "price_set": _money_set(money_text(ln.unit_price), cur),
            "product_exists": True,
            "product_id": 7_400_000_000_000 + _h("product", title) % 900_000_000,
            "properties": [],
            "quantity": ln.qty,
            "requires_shipping": True,
            "sku": ln.sku,
            "taxable": True,
            "title": title,
            "total_discount": "0.00",
            "total_discount_set": _money_set("0.00", cur),
            "variant_id": 42_100_000_000_000 + _h("variant", ln.sku) % 900_000_000,
            "variant_inventory_management": "shopify",
            "variant_title": variant,
            "vendor": p.brand if p else None,
            "tax_lines": tax_lines,
            "duties": [],
            "discount_allocations": allocations,
        })
    ship_alloc = []
    if o.shipping_discount:
        ship_alloc.append({"amount": money_text(o.shipping_discount),
                           "amount_set": _money_set(money_text(o.shipping_discount), cur),
                           "discount_application_index": 0})
    method_title = o.ship_method.replace("_", " ").title().replace("Ups", "UPS").replace("Dhl", "DHL").replace(
        "Fedex", "FedEx")
    shipping_lines = [{
        "id": 4_300_000_000_000 + _h("ship", o.ref) % 900_000_000,
        "carrier_identifier": None,
        "code": o.ship_method,
        "discounted_price": money_text(o.shipping - o.shipping_discount),
        "discounted_price_set": _money_set(money_text(o.shipping - o.shipping_discount), cur),
        "phone": None,
        "price": money_text(o.shipping),
        "price_set": _money_set(money_text(o.shipping), cur),
        "requested_fulfillment_service_id": None,
        "source": "shopify",
        "title": method_title,
        "tax_lines": [],
        "discount_allocations": ship_alloc,
    }]
    subtotal = o.subtotal - o.discount_total
    discounts = o.discount_total + o.shipping_discount
    tax_lines_order = []
    if o.tax_total:
        rate = o.lines[0].tax_rate
        tax_lines_order.append({"price": money_text(o.tax_total), "rate": float(rate), "title": _tax_title(o),
                                "price_set": _money_set(money_text(o.tax_total), cur), "channel_liable": False})
    a = o.ship_to
    first, _, last = a.name.partition(" ")
    addr = {"first_name": first, "address1": a.line1, "phone": None, "city": a.city, "zip": a.postal,
            "province": a.region, "country": COUNTRY_NAMES.get(a.country, a.country), "last_name": last,
            "address2": a.line2, "company": a.company, "latitude": None, "longitude": None, "name": a.name,
            "country_code": a.country, "province_code": a.region}
    email = cust.email if cust else o.extra.get("email", "guest@example.com")
    note_attributes = [{"name": "PO Number", "value": o.po}] if o.po else []
    token = hashlib.sha256(f"token|{o.ref}".encode()).hexdigest()[:32]
    order = {
        "id": int(o.ref),
        "admin_graphql_api_id": f"gid://shopify/Order/{o.ref}",
        "app_id": 580111,
        "browser_ip": f"203.0.113.{_h('ip', o.ref) % 250 + 1}",
        "buyer_accepts_marketing": _h("bam", o.ref) % 3 == 0,
        "cancel_reason": "customer" if o.cancelled_at else None,
        "cancelled_at": iso_local(o.cancelled_at) if o.cancelled_at else None,
        "cart_token": hashlib.sha256(f"cart|{o.ref}".encode()).hexdigest()[:32],
        "checkout_id": int(o.ref) // 10 + 17,
        "checkout_token": hashlib.sha256(f"co|{o.ref}".encode()).hexdigest()[:32],
        "closed_at": None,
        "confirmation_number": hashlib.sha256(f"cn|{o.ref}".encode()).hexdigest()[:9].upper(),
        "confirmed": True,
        "contact_email": email,
        "created_at": created,
        "currency": cur,
        "current_subtotal_price": money_text(subtotal),
        "current_total_discounts": money_text(discounts),
        "current_total_price": money_text(o.total),
        "current_total_tax": money_text(o.tax_total),
        "customer_locale": "en-US" if o.ship_to.country == "US" else "en",
        "discount_codes": ([{"code": o.promo, "amount": money_text(discounts),
                             "type": {"percent": "percentage", "fixed_amount": "fixed_amount",
                                      "free_shipping": "shipping"}[promo["kind"]] if promo else "fixed_amount"}]
                           if o.promo else []),
        "email": email,
        "estimated_taxes": False,
        "financial_status": o.financial_status,
        "fulfillment_status": None,
        "landing_site": "/collections/all",
        "name": o.extra.get("name"),
        "note": None,
        "note_attributes": note_attributes,
        "number": int(str(o.extra.get("name", "#1")).lstrip("#")) - 1000,
        "order_number": int(str(o.extra.get("name", "#1")).lstrip("#")),
        "order_status_url": f"https://supply-demo.myshopify.com/69012345/orders/{token}/authenticate?key={token[:16]}",
        "payment_gateway_names": ["shopify_payments"] if o.financial_status != "pending" else ["bank_deposit"],
        "phone": None,
        "presentment_currency": cur,
        "processed_at": created,
        "reference": None,
        "referring_site": "",
        "source_identifier": None,
        "source_name": "web",
        "subtotal_price": money_text(subtotal),
        "subtotal_price_set": _money_set(money_text(subtotal), cur),
        "tags": "B2B" if cust and cust.channels[0] != "shopify" else "",
        "tax_lines": tax_lines_order,
        "taxes_included": False,
        "test": False,
        "token": token,
        "total_discounts": money_text(discounts),
        "total_discounts_set": _money_set(money_text(discounts), cur),
        "total_line_items_price": money_text(o.subtotal),
        "total_line_items_price_set": _money_set(money_text(o.subtotal), cur),
        "total_outstanding": "0.00" if o.financial_status == "paid" else money_text(o.total),
        "total_price": money_text(o.total),
        "total_price_set": _money_set(money_text(o.total), cur),
        "total_shipping_price_set": _money_set(money_text(o.shipping), cur),
        "total_tax": money_text(o.tax_total),
        "total_tax_set": _money_set(money_text(o.tax_total), cur),
        "total_weight": sum(li["grams"] * li["quantity"] for li in line_items),
        "updated_at": updated,
        "user_id": None,
        "billing_address": dict(addr),
        "customer": {
            "id": cust.shopify_id if cust and cust.shopify_id else 6_200_000_000_000 + _h("guest", email) % 10**9,
            "email": email,
            "created_at": iso_local(datetime.combine(cust.created_on, datetime.min.time(), tzinfo=UTC)) if cust
            else created,
            "first_name": first,
            "last_name": last,
            "state": "enabled",
            "verified_email": True,
            "tax_exempt": False,
            "currency": cur,
            "tags": "",
        },
        "discount_applications": apps,
        "fulfillments": [],
        "line_items": line_items,
        "payment_terms": None,
        "refunds": [],
        "shipping_address": addr,
        "shipping_lines": shipping_lines,
    }
    return order


def ref_promo(ref: Reference, code: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    return next((p for p in ref.promotions if p["code"] == code), None)


# ------------------------------------------------------------------------------------------------
# Amazon
# ------------------------------------------------------------------------------------------------
MARKETPLACES = {"US": ("ATVPDKIKX0DER", "Amazon.com", "Std US D2D Dom"),
                "CA": ("A2EUQ1WTGCTBG2", "Amazon.ca", "Std CA D2D Dom"),
                "GB": ("A1F83G8C2ARO7P", "Amazon.co.uk", "Std UK Dom_1"),
                "DE": ("A1PA6795UKMFR9", "Amazon.de", "Std DE Dom_1")}


def _amz_money(amount: str, cur: str) -> dict[str, str]:
    return {"CurrencyCode": cur, "Amount": amount}


def amazon_header(o: Order, ref: Reference) -> dict[str, Any]:
    cust = ref.customers.get(o.customer_id or "")
    country = cust.country if cust else o.ship_to.country
    mkt, channel_name, level = MARKETPLACES.get(country, MARKETPLACES["US"])
    status = o.extra.get("status", "Unshipped")
    a = o.ship_to
    h: dict[str, Any] = {
        "AmazonOrderId": o.ref,
        "PurchaseDate": iso_z(o.ts),
        "LastUpdateDate": iso_z(o.updated or o.ts),
        "OrderStatus": status,
        "FulfillmentChannel": "MFN",
        "SalesChannel": channel_name,
        "ShipServiceLevel": level if o.ship_method == "Standard" else level.replace("Std", "Exp"),
    }
    if status != "Pending":
        h["OrderTotal"] = _amz_money(money_text(o.total), o.currency)
    h.update({
        "NumberOfItemsShipped": 0,
        "NumberOfItemsUnshipped": sum(ln.qty for ln in o.lines),
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "IsReplacementOrder": False,
        "MarketplaceId": mkt,
        "ShipmentServiceLevelCategory": o.ship_method,
        "OrderType": "StandardOrder",
        "EarliestShipDate": iso_z(o.ts + timedelta(hours=2)),
        "LatestShipDate": iso_z(o.ts + timedelta(days=2)),
        "EarliestDeliveryDate": iso_z(o.ts + timedelta(days=3)),
        "LatestDeliveryDate": iso_z(o.ts + timedelta(days=7)),
        "IsBusinessOrder": bool(o.po),
        "IsPrime": _h("prime", o.ref) % 3 == 0,
        "IsGlobalExpressEnabled": False,
        "IsPremiumOrder": False,
        "IsSoldByAB": False,
        "IsIBA": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
        "ShippingAddress": {k: v for k, v in {
            "Name": a.name, "CompanyName": a.company, "AddressLine1": a.line1, "AddressLine2": a.line2,
            "City": a.city, "StateOrRegion": a.region, "PostalCode": a.postal, "CountryCode": a.country,
            "AddressType": "Commercial" if a.company else "Residential"}.items() if v is not None},
        "BuyerInfo": {k: v for k, v in {
            "BuyerEmail": cust.amazon_email if cust else o.extra.get("buyer_email"),
            "BuyerName": a.name, "PurchaseOrderNumber": o.po}.items() if v is not None},
    })
    return h


def amazon_items(o: Order, ref: Reference) -> dict[str, Any]:
    items = []
    for ln in o.lines:
        it: dict[str, Any] = {
            "ASIN": asin(ln.sku),
            "OrderItemId": str(ln.line_id),
            "SellerSKU": ln.sku,
            "Title": ln.description,
            "QuantityOrdered": ln.qty,
            "QuantityShipped": 0,
            "ProductInfo": {"NumberOfItems": "1"},
            "ItemPrice": _amz_money(money_text(ln.amount), o.currency),
            "ShippingPrice": _amz_money("0.00", o.currency),
            "ItemTax": _amz_money(money_text(ln.tax), o.currency),
            "ShippingTax": _amz_money("0.00", o.currency),
            "ShippingDiscount": _amz_money("0.00", o.currency),
            "PromotionDiscount": _amz_money(money_text(ln.discount), o.currency),
        }
        if ln.discount:
            it["PromotionIds"] = list(o.extra.get("promotion_ids", ["AMZ-COUPON"]))
        it.update({"IsGift": "false", "ConditionId": "New", "ConditionSubtypeId": "New", "IsTransparency": False,
                   "SerialNumberRequired": False})
        items.append(it)
    return {"payload": {"AmazonOrderId": o.ref, "OrderItems": items}}


# ------------------------------------------------------------------------------------------------
# X12 004010 850
# ------------------------------------------------------------------------------------------------
_SCAC = {"UPS": "UPSN", "FEDEX": "FDEG", "DHL": "DHLC"}


def x12_clean(s: str | None, partner: dict[str, Any]) -> str:
    """Upper-case ASCII without the partner's delimiters (what a translator would send)."""
    if not s:
        return ""
    t = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii").upper()
    for ch in (partner["elem"], partner["seg"], partner["comp"], "~", "*", "\n", "\r"):
        t = t.replace(ch, " ")
    return " ".join(t.split())


def x12_850(o: Order, partner: dict[str, Any], st_ctrl: str) -> list[list[str]]:
    """Segments (ST..SE) of one 850, each a list of elements (segment id first)."""
    c = lambda s: x12_clean(s, partner)  # noqa: E731
    a = o.ship_to
    carrier, _, service = o.ship_method.partition("_")
    segs: list[list[str]] = [
        ["ST", "850", st_ctrl],
        ["BEG", "00", "SA", o.po or o.ref, "", o.ts.strftime("%Y%m%d")],
        ["CUR", "BY", o.currency],
    ]
    if partner["code"] == "ACMEHW":
        segs.append(["REF", "DP", f"{_h('dept', o.ref) % 90 + 10:03d}"])
    segs.append(["PER", "BD", c(o.extra.get("buyer", a.name)), "TE", f"555{_h('tel', o.ref) % 10_000_000:07d}"])
    segs.append(["DTM", "002", (o.ts + timedelta(days=5 + _h("dtm", o.ref) % 6)).strftime("%Y%m%d")])
    segs.append(["TD5", "O", "2", _SCAC.get(carrier, carrier), "A" if service == "AIR" else "M", o.ship_method])
    segs.append(["N1", "ST", c(a.company or a.name), "92", a.store or "0001"])
    if a.line1:
        segs.append(["N3", c(a.line1)] + ([c(a.line2)] if a.line2 else []))
    segs.append(["N4", c(a.city), a.region or "", a.postal, a.country])
    qty_total = 0
    unpriced = set(o.extra.get("unpriced_lines", ()))
    for i, ln in enumerate(o.lines, 1):
        price = "" if i in unpriced else dec_text(ln.unit_price)
        segs.append(["PO1", str(i), str(ln.qty), ln.uom, price, "PE" if price else "", "VN", ln.sku,
                     "BP", f"{partner['code'][:2]}{_h('bp', partner['code'], ln.sku) % 1_000_000:06d}"])
        segs.append(["PID", "F", "", "", "", c(ln.description)])
        qty_total += ln.qty
    segs.append(["CTT", str(len(o.lines)), str(qty_total)])
    if partner["code"] in ("SUNBELT", "GRTLAKES"):
        segs.append(["AMT", "TT", dec_text(o.subtotal)])
    segs.append(["SE", str(len(segs) + 1), st_ctrl])
    return segs


def isa_segment(partner: dict[str, Any], when: datetime, ctrl: int, *, receiver: str = OUR_EDI_ID) -> str:
    e = partner["elem"]
    els = ["ISA", "00", " " * 10, "00", " " * 10, partner["qual"], partner["isa06"].ljust(15), "ZZ",
           receiver.ljust(15), when.strftime("%y%m%d"), when.strftime("%H%M"), "U", "00401", f"{ctrl:09d}", "0",
           "P", partner["comp"]]
    isa = e.join(els) + partner["seg"]
    assert len(isa) == 106, (len(isa), isa)
    return isa


def x12_interchange(partner: dict[str, Any], sets: list[list[list[str]]], when: datetime, ctrl: int,
                    *, functional: str = "PO", version: str = "004010", ge_count: int | None = None,
                    raw_sets: list[str] | None = None) -> str:
    """A whole interchange: ISA, one GS group with the given sets, GE, IEA (separators of the partner)."""
    e, s, nl = partner["elem"], partner["seg"], partner["nl"]

    def seg(elements: list[str]) -> str:
        while len(elements) > 1 and elements[-1] == "":
            elements = elements[:-1]
        return e.join(elements) + s + nl

    out = [isa_segment(partner, when, ctrl) + nl]
    out.append(seg(["GS", functional, partner["gs02"], OUR_EDI_ID, when.strftime("%Y%m%d"), when.strftime("%H%M"),
                    str(ctrl), "X", version]))
    for st in sets:
        out.extend(seg(x) for x in st)
    for raw in raw_sets or []:
        out.append(raw)
    n_sets = len(sets) + len(raw_sets or [])
    out.append(seg(["GE", str(n_sets if ge_count is None else ge_count), str(ctrl)]))
    out.append(seg(["IEA", "1", f"{ctrl:09d}"]))
    return "".join(out)


def edi_postprocess(text: str, orders: list[Order], elem: str, seg: str) -> str:
    """Group-level damage the set builder cannot express (a missing terminator)."""
    for o in orders:
        target = o.extra.get("drop_terminator")
        if target:
            po = o.po or ""
            start = text.find(f"BEG{elem}00{elem}SA{elem}{po}")
            at = text.find(f"{seg}", text.find(f"{target}{elem}", start))
            text = text[:at] + text[at + len(seg):]
    return text


# ------------------------------------------------------------------------------------------------
# CSV template
# ------------------------------------------------------------------------------------------------
REP_STYLE = {
    # rep: (order_ts style, ship_complete words, line terminator, encoding)
    "alice_chen": ("iso_z", ("true", "false"), "\n", "utf-8"),
    "marco_rossi": ("space_min", ("Y", "N"), "\r\n", "utf-8"),
    "José Núñez": ("iso_offset", ("yes", "no"), "\n", "utf-8"),
    "francois_dubois": ("space_sec", ("1", "0"), "\r\n", "cp1252"),
    "dana_kim": ("iso_z", ("TRUE", "FALSE"), "\r\n", "utf-8"),
    None: ("iso_z", ("true", "false"), "\n", "utf-8"),
}


def csv_ts(dt: datetime, style: str, a_tz: ZoneInfo | None = None) -> str:
    if style == "iso_z":
        return iso_z(dt)
    if style == "space_min":
        return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if style == "space_sec":
        return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return dt.astimezone(a_tz or STORE_TZ).isoformat(timespec="seconds")


def csv_rows(o: Order, ref: Reference, *, rep: str | None = None) -> list[dict[str, str]]:
    from som_pipeline.demo.history import local_tz

    style, words, _lt, _enc = REP_STYLE.get(rep, REP_STYLE[None])
    a = o.ship_to
    head = {
        "channel_order_ref": o.ref,
        "order_ts": csv_ts(o.ts, style, local_tz(a)),
        "customer_ref": o.customer_id or "",
        "customer_po": o.po or "",
        "currency": o.currency,
        "ship_to_name": a.name,
        "ship_to_company": a.company or "",
        "ship_to_line1": a.line1 or "",
        "ship_to_line2": a.line2 or "",
        "ship_to_city": a.city,
        "ship_to_region": a.region or "",
        "ship_to_postal_code": a.postal,
        "ship_to_country": a.country,
        "ship_method": o.ship_method,
        "promo_code": o.promo or "",
        "ship_complete": words[0] if o.ship_complete else words[1],
    }
    rows = []
    for i, ln in enumerate(o.lines, 1):
        desc = ln.description
        k = _h("desc", o.ref, i) % 100
        if k < 4:
            desc = f'{desc}\nDeliver to dock 2, "fragile"'
        elif k < 10:
            desc = f"{desc}, per quote Q-{_h('q', o.ref) % 90000 + 10000}"
        rows.append({**head, "line_no": str(i), "sku": ln.sku, "description": desc, "quantity": str(ln.qty),
                     "uom": ln.uom, "unit_price": format(ln.unit_price, "f"), "discount_pct": dec_text(ln.discount_pct),
                     "tax_rate": dec_text(ln.tax_rate)})
    return rows


def csv_text(rows: list[dict[str, str] | str], *, line_terminator: str = "\n",
             columns: list[str] | None = None) -> str:
    """Render template rows; a ``str`` entry is emitted verbatim (one physical line, terminator added)."""
    cols = columns or CSV_COLUMNS
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=line_terminator, quoting=csv.QUOTE_MINIMAL)
    w.writerow(cols)
    for r in rows:
        if isinstance(r, str):
            buf.write(r + line_terminator)
        else:
            w.writerow([r.get(c, "") for c in cols])
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# B2B portal
# ------------------------------------------------------------------------------------------------
def portal_records(o: Order, ref: Reference) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cust = ref.customers.get(o.customer_id or "")
    a = o.ship_to
    header = {
        "order_number": o.ref,
        "account_id": (cust.portal_account if cust and cust.portal_account else o.extra.get("account_id")),
        "po_number": o.po,
        "created_at": o.ts,
        "currency": o.currency,
        "status": "cancelled" if o.cancelled_at else "submitted",
        "ship_to_name": a.name,
        "ship_to_company": a.company,
        "ship_to_line1": a.line1,
        "ship_to_line2": a.line2,
        "ship_to_city": a.city,
        "ship_to_region": a.region,
        "ship_to_postal_code": a.postal,
        "ship_to_country": a.country,
        "ship_method": o.ship_method,
        "promo_code": o.promo,
        "ship_complete": o.ship_complete,
        "shipping_amount": o.shipping,
    }
    lines = [{"line_no": i, "sku": ln.sku, "description": ln.description, "quantity": Decimal(ln.qty),
              "unit_price": ln.unit_price, "discount_pct": ln.discount_pct, "tax_rate": ln.tax_rate}
             for i, ln in enumerate(o.lines, 1)]
    return header, lines


def week_key(d: date) -> tuple[int, int]:
    iso = d.isocalendar()
    return iso[0], iso[1]


__all__ = [
    "CSV_COLUMNS", "REP_STYLE", "amazon_header", "amazon_items", "asin", "csv_rows", "csv_text", "dec_text",
    "iso_local", "iso_z", "portal_records", "shopify_order", "week_key", "x12_850", "x12_interchange",
]
