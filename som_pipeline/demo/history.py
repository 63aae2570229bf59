"""Order history simulation: channel-neutral orders with exact money, plus the validation scenarios.

The history runs over ``days`` days ending ``end_date``: about 120 orders a day at scale 1.0 (Amazon ~6 a
day), weekday peak and weekend dip, one category growing and one declining, a promotion week with a spike
of web orders, and customers with stable habits (each has a basket of SKUs with typical quantities).
Prices come from the customer's tier price list in force on the order date; money is ``Decimal``, each
line amount, discount and tax rounded once, half up, to cents.

:func:`add_scenarios` appends the orders the later validation stage must flag (a 100x quantity spike, an
expired promo code, a wrong tier price, ...). They are structurally clean: capture accepts them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from som_pipeline.demo.master_data import (
    EDI_PARTNERS,
    REPS,
    Address,
    Customer,
    Reference,
    q2,
    tax_rate_for,
)

CHANNEL_SHARE = {"b2b_portal": 0.30, "csv": 0.20, "shopify": 0.25, "edi": 0.15}  # of the non-Amazon volume
ORDERS_PER_DAY = 120
AMAZON_PER_DAY = 6
WEEKDAY = [1.18, 1.22, 1.2, 1.12, 0.98, 0.55, 0.45]  # Mon..Sun, mean ~0.96
GROWING, DECLINING = "Safety & PPE", "Office Supplies"
ZERO = Decimal("0")


@dataclass
class Line:
    sku: str
    description: str
    qty: int
    unit_price: Decimal
    discount_pct: Decimal = ZERO  # percent 0-100 (CSV / portal), also used to compute discount
    discount: Decimal = ZERO  # absolute, rounded once
    tax_rate: Decimal = ZERO
    tax: Decimal = ZERO
    uom: str = "EA"
    line_id: int = 0

    @property
    def amount(self) -> Decimal:
        return q2(self.unit_price * self.qty)


@dataclass
class Order:
    channel: str
    ref: str
    customer_id: str | None
    ts: datetime  # UTC
    currency: str
    ship_to: Address
    ship_method: str
    lines: list[Line]
    promo: str | None = None
    ship_complete: bool = False
    po: str | None = None
    shipping: Decimal = ZERO
    shipping_discount: Decimal = ZERO
    updated: datetime | None = None
    financial_status: str = "paid"
    cancelled_at: datetime | None = None
    scenario: str | None = None
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # explicit landing file (else the channel's default grouping)
    file_day: date | None = None  # day of the landing file it arrives in (default: order day)
    mutate: Callable[[Any], None] | None = None  # channel-structure mutation (injected problems)
    bad: str | None = None  # reason code this order is expected to produce (injected problems)

    @property
    def day(self) -> date:
        return self.ts.date()

    @property
    def subtotal(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), ZERO)

    @property
    def discount_total(self) -> Decimal:
        return sum((ln.discount for ln in self.lines), ZERO)

    @property
    def tax_total(self) -> Decimal:
        return sum((ln.tax for ln in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount_total + self.tax_total + self.shipping - self.shipping_discount


_TZ = {"US": "America/New_York", "CA": "America/Toronto", "GB": "Europe/London", "DE": "Europe/Berlin",
       "FR": "Europe/Paris", "NL": "Europe/Amsterdam", "MX": "America/Mexico_City", "AU": "Australia/Sydney",
       "IR": "Asia/Tehran"}
_US_TZ = {"CA": "America/Los_Angeles", "WA": "America/Los_Angeles", "OR": "America/Los_Angeles",
          "TX": "America/Chicago", "IL": "America/Chicago", "MN": "America/Chicago", "TN": "America/Chicago",
          "CO": "America/Denver", "AZ": "America/Phoenix"}


def local_tz(a: Address) -> ZoneInfo:
    if a.country == "US" and a.region in _US_TZ:
        return ZoneInfo(_US_TZ[a.region])
    return ZoneInfo(_TZ.get(a.country, "UTC"))


def order_time(rng: random.Random, day: date, a: Address, business: bool = True) -> datetime:
    """A plausible local time on ``day`` (business hours for B2B), as UTC, kept within the UTC day."""
    if business:
        h = min(19.5, max(7.0, rng.gauss(11.5, 2.6)))
    else:
        h = min(23.6, max(6.0, rng.gauss(15.0, 4.2)))
    secs = int(h * 3600) + rng.randint(0, 59)
    local = datetime.combine(day, time(0), tzinfo=local_tz(a)) + timedelta(seconds=secs)
    utc = local.astimezone(UTC)
    if utc.date() != day:  # keep the order on its (UTC) day: that is how landing files are dated
        utc = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(seconds=(secs + 5 * 3600) % 86000)
    return utc


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Ids:
    """Channel order-id generators (deterministic, unique)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.shopify_id = 5_830_412_000_000
        self.shopify_number = 48_200
        self.line_id = 14_120_000_000_000
        self.amazon: set[str] = set()
        self.edi = {p["isa06"]: 0 for p in EDI_PARTNERS}
        self.csv: dict[str, int] = {}
        self.portal = 1_004_300
        self.pos: set[str] = set()

    def shopify(self) -> tuple[str, str]:
        self.shopify_id += self.rng.randint(20_000, 900_000)
        self.shopify_number += 1
        return str(self.shopify_id), f"#{self.shopify_number}"

    def shopify_line(self) -> int:
        self.line_id += self.rng.randint(1_000, 50_000)
        return self.line_id

    def amazon_id(self, country: str) -> str:
        prefix = {"US": (111, 112, 113, 114), "CA": (701, 702), "GB": (202, 203), "DE": (302, 303)}[country]
        while True:
            ref = f"{self.rng.choice(prefix)}-{self.rng.randint(0, 9_999_999):07d}-{self.rng.randint(0, 9_999_999):07d}"
            if ref not in self.amazon:
                self.amazon.add(ref)
                return ref

    def edi_po(self, partner: dict[str, Any]) -> str:
        self.edi[partner["isa06"]] += 1
        n = self.edi[partner["isa06"]]
        return {"45": f"45{31_000_000 + n * 7:08d}", "SB": f"SB{418_000 + n}", "GL": f"GL-{52_100 + n * 3}",
                "NM": f"NM{7_700_000 + n * 11}"}[partner["po"]]

    def csv_ref(self, rep_code: str, day: date) -> str:
        key = f"{rep_code}-{day:%y%m%d}"
        self.csv[key] = self.csv.get(key, 0) + 1
        return f"{key}-{self.csv[key]:03d}"

    def portal_ref(self) -> str:
        self.portal += self.rng.randint(1, 3)
        return f"B2B-{self.portal}"

    def customer_po(self, c: Customer) -> str:
        while True:
            po = f"{c.po_prefix}{self.rng.randint(10_000, 989_999)}"
            if po not in self.pos:
                self.pos.add(po)
                return po


class Simulator:
    def __init__(self, ref: Reference, seed: int, scale: float) -> None:
        self.ref = ref
        self.rng = random.Random(f"{seed}:orders")
        self.ids = Ids(random.Random(f"{seed}:ids"))
        self.scale = scale
        self.days = (ref.end - ref.start).days + 1
        self.orders: list[Order] = []
        self.promos = {p["code"]: p for p in ref.promotions}
        self.excluded = set(ref.special["excluded_skus"])
        self.orderable = [s for s, p in ref.products.items() if p.active and s not in self.excluded]
        self.pop_w = [ref.products[s].popularity for s in self.orderable]
        by_ch: dict[str, list[Customer]] = {}
        for c in ref.customers.values():
            if not c.active or not c.history:
                continue
            for ch in c.channels:
                by_ch.setdefault(ch, []).append(c)
        self.by_channel = by_ch
        self.ch_weights = {ch: [c.weight * (1.0 if c.channels[0] == ch else 0.25) for c in cs]
                           for ch, cs in by_ch.items()}

    # -------------------------------------------------------------------------------------------
    def trend(self, category: str, t: float) -> float:
        if category == GROWING:
            return 0.7 + 1.2 * t
        if category == DECLINING:
            return 1.3 - 0.8 * t
        return 1.0

    def in_window(self, code: str, d: date) -> bool:
        p = self.promos[code]
        return p["valid_from"] <= d and (p["valid_to"] is None or d <= p["valid_to"])

    def pick_lines(self, c: Customer, channel: str, d: date, t: float) -> list[tuple[str, int]]:
        rng, products = self.rng, self.ref.products
        k = max(1, min(len(c.basket), 1 + poisson(rng, c.lines_mean - 1)))
        chosen: dict[str, int] = {}
        basket = [b for b in c.basket if b[0] not in self.excluded and products[b[0]].active]
        weights = [w * self.trend(products[s].category, t) for s, _q, w in basket]
        tries = 0
        while len(chosen) < k and tries < 40:
            tries += 1
            if rng.random() < 0.9 and basket:
                s, q, _w = rng.choices(basket, weights=weights)[0]
                q = max(1, round(q * rng.lognormvariate(0, 0.22) * (0.85 + 0.3 * self.trend(products[s].category, t))))
            else:
                s = rng.choices(self.orderable, weights=self.pop_w)[0]
                q = rng.choice((1, 1, 2, 3, 5, 10)) if channel not in ("shopify", "amazon") else 1
            p = products[s]
            if s in chosen or c.country in p.restricted:
                continue
            if channel == "edi":
                q = max(6, int(round(q / 6.0)) * 6)
            chosen[s] = q
        return list(chosen.items())

    def make_order(self, channel: str, c: Customer, d: date, t: float = 0.5,
                   items: list[tuple[str, int]] | None = None, ts: datetime | None = None) -> Order:
        rng, ref = self.rng, self.ref
        site = rng.choice(c.sites)
        ts = ts or order_time(rng, d, site, business=channel not in ("shopify", "amazon"))
        items = items if items is not None else self.pick_lines(c, channel, d, t)
        lines = []
        for s, q in items:
            p = ref.products[s]
            price = ref.price(c.tier, s, c.currency, d, q) if (c.tier, s, c.currency, 0) in ref.prices \
                else q2(p.list_price)
            lines.append(Line(sku=s, description=p.name, qty=q, unit_price=price))
        if channel == "shopify":
            ref_id, name = self.ids.shopify()
            o = Order(channel, ref_id, c.customer_id, ts, c.currency, site, c.ship_method, lines,
                      extra={"name": name})
            for ln in o.lines:
                ln.line_id = self.ids.shopify_line()
        elif channel == "amazon":
            o = Order(channel, self.ids.amazon_id(c.country), c.customer_id, ts, c.currency, site,
                      rng.choice(("Standard", "Standard", "Standard", "Expedited")), lines)
            for ln in o.lines:
                ln.line_id = rng.randint(10_000_000_000_000, 99_999_999_999_999)
        elif channel == "edi":
            po = self.ids.edi_po(c.edi)
            o = Order(channel, f"{c.edi['isa06']}:{po}", c.customer_id, ts, c.currency, site,
                      rng.choice(("UPS_GROUND", "UPS_GROUND", "FEDEX_GROUND")), lines, po=po)
        elif channel == "csv":
            code = dict(REPS)[c.rep] if c.rep else "HQ"
            o = Order(channel, self.ids.csv_ref(code, d), c.customer_id, ts, c.currency, site, c.ship_method, lines,
                      po=self.ids.customer_po(c) if rng.random() < 0.8 else None)
            o.extra["rep"] = c.rep
        else:
            o = Order(channel, self.ids.portal_ref(), c.customer_id, ts, c.currency, site, c.ship_method, lines,
                      po=self.ids.customer_po(c) if rng.random() < 0.9 else None)
        o.ship_complete = c.ship_complete
        if "EXPRESS" in o.ship_method and any(ref.products[ln.sku].hazmat for ln in o.lines):
            o.ship_method = o.ship_method.replace("EXPRESS", "GROUND")  # shippers do not fly dangerous goods
        self.price_order(o, c)
        return o

    def price_order(self, o: Order, c: Customer, promo: str | None = "auto") -> None:
        """Promotion, discounts, tax and shipping of an order (exact, rounded once per line)."""
        rng = self.rng
        if promo == "auto":
            promo = self.choose_promo(o, c)
        o.promo = promo
        pct = ZERO
        kind = None
        if promo:
            p = self.promos[promo]
            kind = p["kind"]
            if kind == "percent":
                pct = Decimal(p["value"]) * 100
        rep_pct = ZERO
        if o.channel in ("csv", "b2b_portal") and not promo and c.tier in ("gold", "platinum") and rng.random() < 0.25:
            rep_pct = Decimal(rng.choice((2, 3, 5)))
        exempt = o.channel in ("csv", "b2b_portal", "edi") and (c.tier in ("gold", "platinum") or c.weight > 3)
        rate = ZERO if exempt else tax_rate_for(o.ship_to.country, o.ship_to.region)
        for ln in o.lines:
            cat = self.ref.products[ln.sku].category if ln.sku in self.ref.products else ""
            line_pct = pct
            if promo and self.promos[promo]["eligible_categories"] not in ("*", cat):
                line_pct = ZERO
            ln.discount_pct = line_pct if promo else rep_pct
            if o.channel == "edi":
                ln.discount_pct = ZERO
            ln.discount = q2(ln.amount * ln.discount_pct / 100)
            ln.tax_rate = ZERO if o.channel == "edi" else rate
            ln.tax = q2((ln.amount - ln.discount) * ln.tax_rate)
        if kind == "fixed_amount" and o.channel == "shopify":
            self.allocate_fixed(o, Decimal(self.promos[promo]["value"]))
        # shipping
        sub = o.subtotal
        if o.channel == "shopify":
            o.shipping = ZERO if sub >= 150 else (Decimal("9.95") if "GROUND" in o.ship_method else Decimal("19.95"))
            if kind == "free_shipping":
                o.shipping_discount = o.shipping
        elif o.channel == "amazon":
            o.shipping = ZERO
            if rng.random() < 0.08:  # an Amazon coupon on the first item
                ln = o.lines[0]
                ln.discount = q2(ln.amount * Decimal("0.10"))
                ln.tax = q2((ln.amount - ln.discount) * ln.tax_rate)
                o.extra["promotion_ids"] = ["AMZ-COUPON-10"]
        elif o.channel == "b2b_portal":
            o.shipping = ZERO if sub >= 500 or kind == "free_shipping" else Decimal(rng.choice(("12.50", "18.00", "24.00")))

    def allocate_fixed(self, o: Order, amount: Decimal) -> None:
        sub = o.subtotal
        left = amount
        for i, ln in enumerate(o.lines):
            share = left if i == len(o.lines) - 1 else q2(amount * ln.amount / sub)
            share = min(share, ln.amount)
            ln.discount, left = share, left - share
            ln.tax = q2((ln.amount - ln.discount) * ln.tax_rate)

    def choose_promo(self, o: Order, c: Customer) -> str | None:
        rng, d = self.rng, o.day
        if o.channel == "shopify":
            if self.in_window("FALL15", d) and rng.random() < 0.55:
                return "FALL15"
            r = rng.random()
            if r < 0.08 and self.in_window("WELCOME10", d):
                return "WELCOME10"
            if r < 0.12 and self.in_window("FREESHIP", d):
                return "FREESHIP"
            if r < 0.15 and self.in_window("TAKE5", d) and o.subtotal > 40:
                return "TAKE5"
            return None
        if o.channel in ("csv", "b2b_portal"):
            r = rng.random()
            if r < 0.04 and c.tier in ("gold", "platinum") and self.in_window("GOLD10", d):
                return "GOLD10"
            if r < 0.07 and self.in_window("FREESHIP", d):
                return "FREESHIP"
        return None

    # -------------------------------------------------------------------------------------------
    def history(self) -> None:
        rng, ref = self.rng, self.ref
        spike = self.promos["FALL15"]
        for i in range(self.days):
            d = ref.start + timedelta(days=i)
            t = i / max(1, self.days - 1)
            wf = WEEKDAY[d.weekday()]
            amazon = poisson(rng, max(1.0, AMAZON_PER_DAY * self.scale) * wf)
            rest = (ORDERS_PER_DAY - AMAZON_PER_DAY) * self.scale * wf
            counts = {"amazon": amazon}
            for ch, share in CHANNEL_SHARE.items():
                lam = rest * share / sum(CHANNEL_SHARE.values())
                if ch == "shopify" and spike["valid_from"] <= d <= spike["valid_to"]:
                    lam *= 1.8
                counts[ch] = poisson(rng, lam)
            for ch in ("b2b_portal", "csv", "shopify", "amazon", "edi"):
                for _ in range(counts[ch]):
                    c = rng.choices(self.by_channel[ch], weights=self.ch_weights[ch])[0]
                    o = self.make_order(ch, c, d, t)
                    if o.lines:
                        self.decorate(o)
                        self.orders.append(o)

    def decorate(self, o: Order) -> None:
        """Channel statuses and update times."""
        rng = self.rng
        if o.channel == "shopify":
            o.financial_status = rng.choices(("paid", "authorized", "pending"), weights=(85, 11, 4))[0]
            o.updated = o.ts + timedelta(seconds=rng.randint(4, 900))
        elif o.channel == "amazon":
            o.updated = o.ts + timedelta(seconds=rng.randint(600, 4 * 3600))
            o.extra["status"] = "Unshipped"
        else:
            o.updated = o.ts + timedelta(seconds=rng.randint(0, 5))


# ------------------------------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------------------------------
def _near_end(sim: Simulator, back: int) -> date:
    return sim.ref.end - timedelta(days=min(back, sim.days - 1))


def _customer(sim: Simulator, channel: str, pred: Callable[[Customer], bool]) -> Customer:
    for c in sorted(sim.by_channel[channel], key=lambda c: (-c.weight, c.customer_id)):
        if c.channels[0] == channel and pred(c):
            return c
    raise LookupError(f"no {channel} customer for a scenario")


def add_scenarios(sim: Simulator) -> list[dict[str, Any]]:
    """Append the validation scenarios to ``sim.orders``; returns their manifest entries."""
    ref, rng, products = sim.ref, sim.rng, sim.ref.products
    out: list[dict[str, Any]] = []
    plain = [s for s in sim.orderable if not products[s].hazmat and not products[s].restricted]

    def record(o: Order, name: str, description: str, **kw: Any) -> Order:
        o.scenario = name
        if o.updated is None:
            sim.decorate(o)
        sim.orders.append(o)
        out.append({"name": name, "channel": o.channel, "order_ref": o.ref, "customer_id": o.customer_id,
                    "order_date": o.day.isoformat(), "description": description, **kw})
        return o

    # 1. quantity spike: a CSV customer who usually buys ~10 of a SKU orders 1,000
    c = _customer(sim, "csv", lambda c: c.tier in ("silver", "gold") and c.rep is not None)
    sku = next(s for s in plain if s not in {b[0] for b in c.basket})
    c.basket[0] = (sku, 10, max(w for _s, _q, w in c.basket) * 3)  # his favourite: ~10 units each time
    d = _near_end(sim, 2)
    for back in (40, 33, 26, 19, 12, 8, 5):  # a visible habit inside any window
        if back < sim.days - 1 and back > 2:
            h = sim.make_order("csv", c, ref.end - timedelta(days=back), items=[(sku, rng.choice((9, 10, 10, 11, 12)))])
            sim.decorate(h)
            sim.orders.append(h)
    record(sim.make_order("csv", c, d, items=[(sku, 1000)]), "quantity_spike",
           f"{c.customer_id} usually orders ~10 x {sku}; this order asks for 1,000", sku=sku, quantity=1000)

    # 2. a brand-new customer with an unusually large first order (portal)
    nc = ref.customers[ref.special["new_customer"]]  # kept out of the history by the reference builder
    big = [(s, rng.choice((150, 200, 250, 300))) for s in rng.sample(plain, 12)]
    record(sim.make_order("b2b_portal", nc, _near_end(sim, 1), items=big), "new_customer_large_first_order",
           f"{nc.customer_id} was created {nc.created_on.isoformat()}; its first order is far above a typical order")

    # 3. expired promo code (Shopify)
    sc = _customer(sim, "shopify", lambda c: c.country == "US" and c.tier == "standard")
    o = sim.make_order("shopify", sc, _near_end(sim, 4))
    sim.price_order(o, sc, promo="SUMMER20")
    record(o, "expired_promo", "uses SUMMER20, which expired before the order date", promo_code="SUMMER20")

    # 3b. promo not valid yet
    sc2 = _customer(sim, "shopify", lambda c: c.country == "US" and c is not sc)
    o = sim.make_order("shopify", sc2, _near_end(sim, 3))
    sim.price_order(o, sc2, promo="HOLIDAY25")
    record(o, "promo_not_yet_valid", "uses HOLIDAY25 before its valid_from", promo_code="HOLIDAY25")

    # 3c. promo usage cap exceeded: FLASH30 (cap 3) used by 5 web orders
    cap_refs = []
    shop_us = [c for c in sim.by_channel["shopify"] if c.channels[0] == "shopify" and c.country == "US"]
    for k in range(5):
        cu = shop_us[(k * 7) % len(shop_us)]
        o = sim.make_order("shopify", cu, _near_end(sim, 5 - k))
        sim.price_order(o, cu, promo="FLASH30")
        sim.decorate(o)
        sim.orders.append(o)
        cap_refs.append(o.ref)
    out.append({"name": "promo_usage_cap_exceeded", "channel": "shopify", "order_ref": cap_refs[-1],
                "order_refs": cap_refs, "customer_id": None, "order_date": _near_end(sim, 1).isoformat(),
                "description": "FLASH30 has usage_cap 3; five orders use it (the 4th and 5th exceed the cap)",
                "promo_code": "FLASH30"})

    # 4. wrong tier price: platinum price for a standard customer (CSV)
    wc = _customer(sim, "csv", lambda c: c.tier == "standard" and c.currency == "USD")
    d = _near_end(sim, 6)
    s = rng.choice(plain)
    o = sim.make_order("csv", wc, d, items=[(s, 4), (rng.choice(plain), 2)])
    o.lines[0].unit_price = ref.price("platinum", s, wc.currency, d, 4)
    sim.price_order(o, wc, promo=None)
    record(o, "wrong_tier_price", f"line 1 is priced at the platinum price {o.lines[0].unit_price} for a "
           f"standard customer (standard price {ref.price('standard', s, wc.currency, d, 4)})", sku=s)

    # 5. discount above the tier's maximum (portal, silver: max 8 %)
    dc = _customer(sim, "b2b_portal", lambda c: c.tier == "silver")
    o = sim.make_order("b2b_portal", dc, _near_end(sim, 5))
    sim.price_order(o, dc, promo=None)
    for ln in o.lines:
        ln.discount_pct = Decimal("20")
        ln.discount = q2(ln.amount * ln.discount_pct / 100)
        ln.tax = q2((ln.amount - ln.discount) * ln.tax_rate)
    record(o, "discount_above_max", "every line carries discount_pct 20 for a silver customer (max 8 %)")

    # 6. ship to an embargoed country (CSV)
    ec = _customer(sim, "csv", lambda c: c.currency == "USD" and c is not wc)
    o = sim.make_order("csv", ec, _near_end(sim, 7))
    o.ship_to = Address("Reza Ahmadi", "Pars Trading Co.", "No. 12, Valiasr Street", None, "Tehran", None,
                        "1966734511", "IR")
    sim.price_order(o, ec, promo=None)
    record(o, "embargoed_destination", "ships to IR (embargoed)", ship_to_country="IR")

    # 7. hazmat item with an air ship method (portal)
    hz = next(s for s in sim.orderable if products[s].hazmat and not products[s].restricted)
    hc = _customer(sim, "b2b_portal", lambda c: c.country == "US" and c is not dc)
    o = sim.make_order("b2b_portal", hc, _near_end(sim, 3), items=[(hz, 12), (rng.choice(plain), 5)])
    o.ship_method = "UPS_AIR"
    record(o, "hazmat_by_air", f"{hz} is hazmat; ship method UPS_AIR", sku=hz)

    # 8. invalid postal code for the country (EDI: a 4-digit US ZIP)
    ep = sim.ref.customers["C0003"]
    o = sim.make_order("edi", ep, _near_end(sim, 4))
    o.ship_to = Address(o.ship_to.name, o.ship_to.company, o.ship_to.line1, o.ship_to.line2, o.ship_to.city,
                        o.ship_to.region, "4321", "US", o.ship_to.store)
    record(o, "invalid_postal_code", "US ship-to with ZIP '4321'", postal_code="4321")

    # 9. missing street (portal)
    mc = _customer(sim, "b2b_portal", lambda c: c not in (dc, hc, nc))
    o = sim.make_order("b2b_portal", mc, _near_end(sim, 2))
    o.ship_to = Address(o.ship_to.name, o.ship_to.company, None, None, o.ship_to.city, o.ship_to.region,
                        o.ship_to.postal, o.ship_to.country)
    record(o, "missing_street", "ship-to has no street line")

    # 10. unknown SKU (EDI: a retired vendor part number)
    ep2 = sim.ref.customers["C0002"]
    o = sim.make_order("edi", ep2, _near_end(sim, 6))
    o.lines.append(Line(sku="ELC-99871", description="WIRELESS PRESENTER REMOTE", qty=12, unit_price=Decimal("18.75")))
    record(o, "unknown_sku", "PO1 with vendor part ELC-99871, not in the catalog", sku="ELC-99871")

    # 11. inactive SKU (CSV)
    inactive = next(s for s, p in products.items() if not p.active)
    ic = _customer(sim, "csv", lambda c: c.currency == "USD" and c not in (wc, ec))
    o = sim.make_order("csv", ic, _near_end(sim, 8), items=[(inactive, 6), (rng.choice(plain), 3)])
    o.lines[0].unit_price = q2(products[inactive].list_price)
    sim.price_order(o, ic, promo=None)
    record(o, "inactive_sku", f"{inactive} is inactive", sku=inactive)

    # 12. customer over credit limit (portal)
    oc_id = next(cid for cid in ref.special["over_limit"] if ref.customers[cid].channels[0] == "b2b_portal"
                 and ref.customers[cid].history)
    oc = ref.customers[oc_id]
    record(sim.make_order("b2b_portal", oc, _near_end(sim, 1)), "over_credit_limit",
           f"{oc_id}'s open items already exceed its credit limit {oc.credit_limit}")

    # 13. ship-complete order for a SKU short in stock (portal)
    short = ref.special["short_sku"]
    sc3 = _customer(sim, "b2b_portal", lambda c: c.country == "US" and c not in (dc, hc, mc, nc, oc))
    o = sim.make_order("b2b_portal", sc3, _near_end(sim, 2), items=[(short, 40), (rng.choice(plain), 10)])
    o.ship_complete = True
    record(o, "ship_complete_short", f"ship_complete order for 40 x {short}; only {ref.total_on_hand(short)} on hand",
           sku=short)

    # 13b. partial stock, no substitutes, may split: ships what is there, backorders the rest (portal)
    sp = _customer(sim, "b2b_portal", lambda c: c.country == "US" and not c.ship_complete and not c.allow_substitutes
                   and c not in (dc, hc, mc, nc, oc, sc3))
    o = sim.make_order("b2b_portal", sp, _near_end(sim, 3), items=[(short, 12)])
    record(o, "partial_stock_split", f"12 x {short}; only {ref.total_on_hand(short)} on hand: split shipment",
           sku=short)

    # 14. out of stock everywhere, with a substitute (CSV, customer accepts substitutes)
    oos = ref.special["oos_everywhere"][0]
    subc = _customer(sim, "csv", lambda c: c.allow_substitutes and c not in (wc, ec, ic))
    o = sim.make_order("csv", subc, _near_end(sim, 3), items=[(oos, 8)])
    record(o, "out_of_stock_with_substitute", f"{oos} has no stock in any warehouse; substitutes: "
           f"{'|'.join(products[oos].substitutes)}", sku=oos)

    # 15. the same customer PO on two channels (EDI and portal)
    p1 = ref.customers["C0001"]
    d = _near_end(sim, 5)
    o1 = sim.make_order("edi", p1, d)
    dup = Order("b2b_portal", sim.ids.portal_ref(), p1.customer_id, o1.ts + timedelta(hours=3), p1.currency,
                o1.ship_to, "UPS_GROUND", [Line(ln.sku, ln.description, ln.qty, ln.unit_price) for ln in o1.lines],
                po=o1.po)
    sim.price_order(dup, p1, promo=None)
    record(o1, "duplicate_po_across_channels", f"PO {o1.po} sent by EDI and keyed again on the portal",
           customer_po=o1.po, other_order_ref=dup.ref)
    record(dup, "duplicate_po_across_channels", f"PO {o1.po} keyed on the portal after the EDI order",
           customer_po=o1.po, other_order_ref=o1.ref)

    # 16-18. Shopify re-sends and a cancellation
    shop = [c for c in sim.by_channel["shopify"] if c.channels[0] == "shopify"]
    d = _near_end(sim, 6)
    o = sim.make_order("shopify", shop[1], d, items=[(plain[5], 2), (plain[17], 1)])
    record(o, "shopify_resent_changed", "re-sent two days later with line 1 quantity 2 -> 5 (new version)",
           resent_on=(d + timedelta(days=2)).isoformat())
    o.extra["resend_changed"] = True
    o = sim.make_order("shopify", shop[2], d)
    record(o, "shopify_resent_identical", "re-sent the next day unchanged (identical: ignored)",
           resent_on=(d + timedelta(days=1)).isoformat())
    o.extra["resend_identical"] = True
    o = sim.make_order("shopify", shop[3], _near_end(sim, 5))
    record(o, "shopify_cancelled", "cancelled by the customer the next day (re-sent with cancelled_at)")
    o.extra["cancel_next_day"] = True

    # 19. a price from the expired price-list generation (CSV rep using an old sheet)
    sc4 = _customer(sim, "csv", lambda c: c.currency == "USD" and c not in (wc, ec, ic, subc))
    d = max(_near_end(sim, 9), ref.price_gens[1][0])  # after the old list expired
    s = rng.choice(plain)
    o = sim.make_order("csv", sc4, d, items=[(s, 6)])
    o.lines[0].unit_price = ref.price(sc4.tier, s, sc4.currency, d, 6, gen=0)
    sim.price_order(o, sc4, promo=None)
    record(o, "expired_price_list", f"priced from the price list that expired {ref.price_gens[0][1].isoformat()}",
           sku=s)

    # 20. restricted-country item (portal, DE customer ordering a solvent restricted in DE)
    rs = next(s for s in sim.orderable if "DE" in products[s].restricted)
    rc = next((c for c in sim.by_channel["b2b_portal"] if c.country == "DE" and c.channels[0] == "b2b_portal"), None)
    if rc is not None:
        o = sim.make_order("b2b_portal", rc, _near_end(sim, 4), items=[(rs, 6)])
        record(o, "restricted_country_item", f"{rs} may not ship to DE", sku=rs)

    # 21. an inactive customer orders (portal)
    ina = next(c for c in ref.customers.values() if not c.active)
    ch = ina.channels[0] if ina.channels[0] != "edi" else "b2b_portal"
    o = sim.make_order(ch, ina, _near_end(sim, 2))
    record(o, "inactive_customer", f"{ina.customer_id} is inactive")

    # 22. an unknown promo code (Shopify; typed by the buyer, no discount applied)
    uc = _customer(sim, "shopify", lambda c: c.country == "US" and c not in (sc, sc2))
    o = sim.make_order("shopify", uc, _near_end(sim, 3))
    sim.price_order(o, uc, promo=None)
    o.promo = "BLACKFRIDAY70"
    record(o, "unknown_promo", "uses BLACKFRIDAY70, which is not in ref.promotions", promo_code="BLACKFRIDAY70")

    # 23. a promo the customer's tier is not eligible for (CSV: GOLD10 by a standard customer)
    pc = _customer(sim, "csv", lambda c: c.tier == "standard" and c.currency == "USD" and c not in (wc, ec, ic, sc4))
    o = sim.make_order("csv", pc, _near_end(sim, 5))
    sim.price_order(o, pc, promo="GOLD10")
    record(o, "ineligible_promo", f"{pc.customer_id} is {pc.tier}; GOLD10 is for gold and platinum",
           promo_code="GOLD10")

    # 24. a guest buyer the alias table does not know (Shopify)
    gc = _customer(sim, "shopify", lambda c: c.country == "US" and c not in (sc, sc2, uc))
    o = sim.make_order("shopify", gc, _near_end(sim, 2))
    sim.price_order(o, gc, promo=None)
    o.customer_id = None
    o.extra["email"] = "first.time.buyer@mailbox.example"
    record(o, "unknown_customer", "a guest checkout: the buyer is not in ref.customer_aliases")

    # 25. an EDI purchase order line without a price: priced from the list (PRICED_FROM_LIST, a warning)
    eu = _customer(sim, "edi", lambda c: c.currency == "USD")
    o = sim.make_order("edi", eu, _near_end(sim, 3))
    o.extra["unpriced_lines"] = [1]
    record(o, "edi_unpriced_line", "PO1 line 1 carries no unit price: the tier price list prices it")

    # 26. an order in a currency other than the customer's (CSV: credit cannot be checked without FX)
    fx = _customer(sim, "csv", lambda c: c.currency == "USD" and c not in (wc, ec, ic, sc4, pc))
    o = sim.make_order("csv", fx, _near_end(sim, 4))
    o.currency = "EUR"
    record(o, "foreign_currency_order", f"{fx.customer_id} is billed in USD; this order is in EUR")
    return out


def simulate(ref: Reference, seed: int, scale: float) -> tuple[Simulator, list[dict[str, Any]]]:
    sim = Simulator(ref, seed, scale)
    sim.history()
    scenarios = add_scenarios(sim)
    sim.orders.sort(key=lambda o: (o.ts, o.channel, o.ref))
    return sim, scenarios


__all__ = ["Line", "Order", "Simulator", "add_scenarios", "simulate"]
