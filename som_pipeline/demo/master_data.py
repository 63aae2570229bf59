"""Reference data of the demo: catalog, customers, prices, promotions, warehouses, stock, carriers, credit.

Everything is built from seeded :class:`random.Random` streams (one per concern, seeded with a string so a
change in one concern does not shift the others) and kept both as Python objects (the order simulator needs
them) and as text tables written to ``$SOM_HOME/reference/<table>.csv`` with exactly the columns of the
model in :data:`som_pipeline.schemas.REFERENCE_TABLES` (booleans ``true``/``false``, ISO dates, decimals as
exact text, ``|``-separated lists).

A handful of deliberately bad rows (:data:`Reference.bad_rows`) exercise every ``REF_*`` reason code.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl

from som_pipeline import schemas

CENT = Decimal("0.01")
TIERS = ("standard", "silver", "gold", "platinum")
COUNTRY_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "MX": "USD",
                    "AU": "AUD"}
CURRENCIES = ("USD", "CAD", "GBP", "EUR", "AUD")
FX = {"USD": Decimal("1"), "CAD": Decimal("1.37"), "GBP": Decimal("0.79"), "EUR": Decimal("0.92"),
      "AUD": Decimal("1.53")}
TIER_DISCOUNT_PCT = {"standard": 0, "silver": 5, "gold": 10, "platinum": 15}
QTY_BREAKS = ((1, 0), (10, 3), (50, 6))  # (min_qty, extra % off)
MAX_DISCOUNT = {"standard": Decimal("0.05"), "silver": Decimal("0.08"), "gold": Decimal("0.12"),
                "platinum": Decimal("0.15")}
PRICE_INCREASE = Decimal("1.035")  # the successor price-list generation is 3.5 % dearer
EMBARGOED = ("CU", "IR", "KP", "SY")

# Sales tax / VAT by destination (US by state; rates as fractions).
US_STATE_TAX = {"NY": "0.08875", "NJ": "0.06625", "CA": "0.0725", "TX": "0.0625", "IL": "0.1025",
                "GA": "0.089", "WA": "0.1025", "CO": "0.0881", "MA": "0.0625", "FL": "0.07", "AZ": "0.086",
                "OH": "0.0775", "MN": "0.08025", "TN": "0.0975", "OR": "0"}
COUNTRY_TAX = {"CA": "0.13", "GB": "0.2", "DE": "0.19", "FR": "0.2", "NL": "0.21", "MX": "0.16", "AU": "0.1"}

FRAGILE_CATEGORIES = frozenset({"Lighting", "Electronics & Accessories"})  # plus every 11th SKU (glass, ceramics)
# the packing station's cartons: id, inner L x W x H (cm), max gross kg, tare kg, cost, active
CARTONS = [
    ("BOX-XS", 20.0, 15.0, 10.0, 5.0, 0.10, "0.35", True),
    ("BOX-S", 30.0, 20.0, 15.0, 10.0, 0.20, "0.55", True),
    ("BOX-M", 40.0, 30.0, 25.0, 20.0, 0.40, "0.95", True),
    ("BOX-L", 50.0, 40.0, 35.0, 25.0, 0.60, "1.45", True),
    ("BOX-XL", 60.0, 50.0, 45.0, 30.0, 0.90, "2.10", True),
    ("BOX-XXL", 80.0, 60.0, 60.0, 35.0, 1.40, "3.40", True),
    ("MAILER", 35.0, 25.0, 5.0, 2.0, 0.05, "0.25", True),
    ("BOX-OLD", 45.0, 35.0, 30.0, 20.0, 0.50, "1.20", False),
]


def q2(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def money_text(x: Decimal) -> str:
    return format(q2(x), "f")


def tax_rate_for(country: str, region: str | None) -> Decimal:
    if country == "US":
        return Decimal(US_STATE_TAX.get(region or "", "0.07"))
    return Decimal(COUNTRY_TAX.get(country, "0"))


# ------------------------------------------------------------------------------------------------
# Objects
# ------------------------------------------------------------------------------------------------
@dataclass
class Product:
    sku: str
    name: str
    category: str
    item: str
    brand: str
    weight_kg: float
    dims: tuple[float, float, float]
    list_price: Decimal  # USD
    hazmat: bool
    restricted: list[str]
    substitutes: list[str]
    active: bool
    popularity: float


@dataclass
class Address:
    name: str
    company: str | None
    line1: str | None
    line2: str | None
    city: str
    region: str | None
    postal: str
    country: str
    store: str | None = None  # EDI store number


@dataclass
class Customer:
    customer_id: str
    name: str
    email: str
    tier: str
    credit_limit: Decimal
    currency: str
    terms: int
    country: str
    ship_complete: bool
    allow_substitutes: bool
    active: bool
    created_on: date
    channels: list[str]
    aliases: dict[str, list[str]] = field(default_factory=dict)
    sites: list[Address] = field(default_factory=list)
    basket: list[tuple[str, int, float]] = field(default_factory=list)  # (sku, typical qty, weight)
    weight: float = 1.0
    lines_mean: float = 2.0
    rep: str | None = None
    shopify_id: int | None = None
    portal_account: str | None = None
    amazon_email: str | None = None
    edi: dict[str, Any] | None = None
    po_prefix: str = "PO"
    ship_method: str = "UPS_GROUND"
    history: bool = True  # False: must not appear in the generated history (scenario customers)


@dataclass
class Reference:
    start: date
    end: date
    products: dict[str, Product]
    customers: dict[str, Customer]
    prices: dict[tuple[str, str, str, int], list[tuple[int, Decimal]]]  # (tier, sku, cur, gen) -> breaks
    price_gens: list[tuple[date, date | None]]  # validity of generation 0 and 1
    promotions: list[dict[str, Any]]
    warehouses: list[dict[str, Any]]
    inventory: dict[tuple[str, str], int]
    carriers: list[dict[str, Any]]
    open_items: list[dict[str, Any]]
    tables: dict[str, list[dict[str, Any]]]
    bad_rows: list[dict[str, Any]]
    special: dict[str, Any]  # SKUs / customers reserved for scenarios

    def gen_for(self, d: date) -> int:
        return 0 if d <= self.price_gens[0][1] else 1

    def price(self, tier: str, sku: str, currency: str, d: date, qty: int, gen: int | None = None) -> Decimal:
        g = self.gen_for(d) if gen is None else gen
        best = None
        for min_qty, p in self.prices[(tier, sku, currency, g)]:
            if qty >= min_qty:
                best = p
        assert best is not None
        return best

    def total_on_hand(self, sku: str) -> int:
        return sum(self.inventory.get((w["warehouse_id"], sku), 0) for w in self.warehouses)


# ------------------------------------------------------------------------------------------------
# Catalog
# ------------------------------------------------------------------------------------------------
# item: (name, USD price, kg, (l, w, h) cm, variant kind, hazmat, restricted countries)
_PACKS = [("", 1.0, 1.0), ("2-Pack", 1.9, 2.0), ("6-Pack", 5.4, 6.0), ("12-Pack", 10.3, 12.0),
          ("Case of 24", 19.8, 24.0)]
_GRADES = [("", 1.0, 1.0), ("Pro", 1.45, 1.15), ("Heavy-Duty", 1.8, 1.35), ("Compact", 0.85, 0.8)]
_SIZES = [("Small", 0.9, 0.9), ("Medium", 1.0, 1.0), ("Large", 1.1, 1.1), ("X-Large", 1.2, 1.2)]
_COLORS = [("Black", 1.0, 1.0), ("Blue", 1.0, 1.0), ("White", 1.0, 1.0), ("Red", 1.05, 1.0), ("Gray", 1.0, 1.0)]
_VARIANTS = {"pack": _PACKS, "grade": _GRADES, "size": _SIZES, "color": _COLORS}

CATEGORIES: list[tuple[str, str, list[str], list[tuple]]] = [
    ("Office Supplies", "OFF", ["Staplex", "PaperPro", "Inkwell", "Desko", "Acme Office"], [
        ("Copy Paper 8.5x11 Ream", 7.49, 2.3, (28, 22, 5), "pack", False, ""),
        ("Ballpoint Pens Box of 12", 4.29, 0.15, (16, 6, 2), "color", False, ""),
        ("Gel Pens Box of 12", 9.99, 0.2, (16, 7, 2), "color", False, ""),
        ("Sticky Notes 3x3 Pad", 1.89, 0.08, (8, 8, 2), "pack", False, ""),
        ("Desktop Stapler", 12.99, 0.45, (18, 6, 7), "grade", False, ""),
        ("Letter File Folders Box of 100", 14.49, 1.6, (30, 24, 6), "color", False, ""),
        ("3-Ring Binder 2 in", 6.79, 0.5, (29, 27, 6), "color", False, ""),
        ("Highlighters Set of 6", 5.49, 0.1, (14, 9, 2), "pack", False, ""),
        ("Whiteboard Markers Set of 4", 6.99, 0.1, (14, 8, 2), "pack", False, ""),
        ("Spiral Notebook 100 Sheets", 3.49, 0.35, (27, 21, 1.5), "pack", False, ""),
    ]),
    ("Cleaning & Janitorial", "CLN", ["SparkleOne", "PureWay", "Janitek", "CleanCo"], [
        ("All-Purpose Cleaner 32 oz", 4.99, 1.0, (25, 10, 7), "pack", False, ""),
        ("Glass Cleaner 32 oz", 4.49, 1.0, (25, 10, 7), "pack", False, ""),
        ("Disinfectant Spray Aerosol 19 oz", 7.99, 0.65, (22, 7, 7), "pack", True, "AU"),
        ("Disinfecting Wipes Canister", 5.99, 0.7, (19, 9, 9), "pack", False, ""),
        ("Heavy Trash Bags 42 gal Box of 50", 24.99, 3.2, (30, 25, 12), "pack", False, ""),
        ("Paper Towel Rolls", 2.19, 0.3, (28, 12, 12), "pack", False, ""),
        ("Foaming Hand Soap Refill", 11.49, 1.4, (24, 12, 10), "pack", False, ""),
        ("Degreaser Aerosol 18 oz", 8.49, 0.6, (22, 7, 7), "pack", True, "AU"),
        ("Microfiber Cloths Pack of 24", 15.99, 0.8, (30, 20, 8), "color", False, ""),
        ("Concentrated Bleach 1 gal", 6.49, 4.1, (30, 16, 11), "pack", True, ""),
    ]),
    ("Safety & PPE", "PPE", ["ShieldPro", "SafeHands", "Guardline", "WorkSafe"], [
        ("Nitrile Gloves Box of 100", 13.99, 0.75, (24, 13, 7), "size", False, ""),
        ("Safety Glasses Clear Lens", 4.99, 0.05, (17, 6, 5), "pack", False, ""),
        ("Hard Hat Type I", 18.99, 0.4, (30, 23, 16), "color", False, ""),
        ("Hi-Vis Safety Vest Class 2", 9.49, 0.2, (30, 22, 2), "size", False, ""),
        ("N95 Respirator Box of 20", 24.99, 0.35, (20, 14, 12), "pack", False, ""),
        ("Foam Ear Plugs Box of 200", 21.99, 0.6, (20, 14, 10), "pack", False, ""),
        ("Cut-Resistant Gloves A4", 12.49, 0.1, (25, 12, 2), "size", False, ""),
        ("Face Shield with Headgear", 14.99, 0.3, (30, 25, 10), "pack", False, ""),
        ("First Aid Kit 100 Person", 49.99, 2.1, (34, 24, 9), "grade", False, ""),
        ("Steel Toe Safety Boots", 89.99, 1.9, (33, 23, 13), "size", False, ""),
    ]),
    ("Electrical", "ELE", ["VoltEdge", "Wireline", "Ampere", "CircuitPro"], [
        ("Extension Cord 25 ft 14 AWG", 21.99, 1.2, (25, 25, 8), "color", False, ""),
        ("Power Strip 6 Outlet", 12.99, 0.5, (30, 6, 4), "color", False, ""),
        ("Twist-On Wire Connectors Jar of 100", 9.49, 0.3, (10, 10, 10), "pack", False, ""),
        ("Vinyl Electrical Tape 3/4 in", 1.99, 0.08, (10, 10, 2), "color", False, ""),
        ("Non-Contact Voltage Tester", 19.99, 0.1, (16, 3, 3), "grade", False, ""),
        ("Duplex Receptacle 15A", 2.49, 0.1, (11, 4, 4), "pack", False, ""),
        ("Single-Pole Light Switch", 2.29, 0.09, (11, 4, 4), "color", False, ""),
        ("Cable Ties 8 in Bag of 100", 5.99, 0.2, (22, 10, 2), "color", False, ""),
        ("EMT Conduit 1/2 in x 10 ft", 6.99, 1.4, (305, 2, 2), "pack", False, ""),
        ("Junction Box 4 in Square", 3.79, 0.35, (11, 11, 6), "pack", False, ""),
    ]),
    ("Batteries & Power", "BAT", ["PowerMax", "Duravolt", "CellCore", "EverCharge"], [
        ("AA Alkaline Batteries 24-Pack", 14.99, 0.6, (14, 10, 3), "pack", False, ""),
        ("AAA Alkaline Batteries 24-Pack", 13.99, 0.3, (14, 9, 2), "pack", False, ""),
        ("9V Alkaline Battery", 3.99, 0.05, (5, 3, 2), "pack", False, ""),
        ("CR2032 Lithium Coin Cell", 2.49, 0.01, (3, 3, 1), "pack", True, "AU|MX"),
        ("18650 Li-ion Rechargeable Cell", 8.99, 0.05, (7, 2, 2), "pack", True, "AU|MX|NL"),
        ("Lithium Power Bank 20000 mAh", 39.99, 0.4, (16, 8, 3), "color", True, "MX"),
        ("D Alkaline Batteries 8-Pack", 12.99, 1.1, (14, 10, 7), "pack", False, ""),
        ("C Alkaline Batteries 8-Pack", 11.99, 0.7, (13, 9, 6), "pack", False, ""),
        ("Smart Battery Charger", 24.99, 0.3, (15, 10, 5), "grade", False, ""),
        ("Rechargeable AA NiMH 8-Pack", 19.99, 0.25, (12, 9, 3), "pack", False, ""),
    ]),
    ("Tools", "TLS", ["Forgeline", "Torqwell", "IronClad", "BuildRight"], [
        ("Cordless Drill 20V", 99.99, 1.8, (30, 25, 9), "grade", True, ""),
        ("Screwdriver Set 10 Piece", 19.99, 0.8, (25, 15, 4), "grade", False, ""),
        ("Claw Hammer 16 oz", 14.99, 0.7, (33, 13, 4), "grade", False, ""),
        ("Tape Measure 25 ft", 11.99, 0.35, (9, 9, 5), "grade", False, ""),
        ("Utility Knife Retractable", 7.99, 0.15, (17, 5, 2), "pack", False, ""),
        ("Adjustable Wrench 10 in", 15.99, 0.45, (27, 8, 2), "grade", False, ""),
        ("Pliers Set 3 Piece", 24.99, 0.9, (25, 18, 4), "grade", False, ""),
        ("Socket Set 40 Piece", 44.99, 2.4, (33, 20, 6), "grade", False, ""),
        ("Torpedo Level 9 in", 8.49, 0.2, (23, 4, 3), "grade", False, ""),
        ("Hex Key Set Metric", 9.99, 0.3, (15, 8, 2), "grade", False, ""),
    ]),
    ("Fasteners & Hardware", "FST", ["Boltmark", "FixRite", "AnchorPoint", "Threadline"], [
        ("Wood Screws #8 x 1-1/4 Box of 100", 6.49, 0.5, (10, 7, 4), "pack", False, ""),
        ("Machine Screws M6 x 20 Box of 100", 8.99, 0.6, (10, 7, 4), "pack", False, ""),
        ("Hex Bolts 3/8 x 2 Box of 50", 12.99, 1.5, (12, 9, 6), "pack", False, ""),
        ("Nylon Lock Nuts 3/8 Box of 100", 9.49, 0.7, (10, 7, 4), "pack", False, ""),
        ("Flat Washers 3/8 Box of 100", 5.49, 0.6, (10, 7, 4), "pack", False, ""),
        ("Drywall Anchors Kit of 50", 7.99, 0.3, (15, 10, 3), "pack", False, ""),
        ("Drywall Screws 1-5/8 Box of 1 lb", 7.49, 0.5, (12, 8, 5), "pack", False, ""),
        ("Pop Rivets Assortment 200", 11.99, 0.4, (20, 12, 4), "pack", False, ""),
        ("Butt Hinges 3.5 in Pair", 5.99, 0.3, (10, 9, 2), "color", False, ""),
        ("Eye Bolts 1/4 x 4 Pack of 10", 8.49, 0.5, (12, 8, 3), "pack", False, ""),
    ]),
    ("Lighting", "LGT", ["Lumenix", "BrightPath", "Solis", "GlowTech"], [
        ("LED A19 Bulb 60W Equivalent", 3.49, 0.06, (11, 6, 6), "pack", False, ""),
        ("LED T8 Tube 4 ft", 7.99, 0.25, (122, 3, 3), "pack", False, ""),
        ("LED Flood Light 50W", 34.99, 1.1, (22, 18, 6), "grade", False, ""),
        ("Rechargeable Work Light", 29.99, 0.8, (20, 15, 8), "grade", True, ""),
        ("Tactical Flashlight", 19.99, 0.2, (15, 4, 4), "color", False, ""),
        ("LED Headlamp", 14.99, 0.1, (10, 8, 5), "color", False, ""),
        ("LED Flat Panel 2x4", 69.99, 5.0, (122, 61, 5), "pack", False, ""),
        ("Emergency Exit Sign", 39.99, 1.0, (33, 22, 6), "color", False, ""),
        ("Motion Sensor Flood Light", 44.99, 1.2, (24, 18, 12), "color", False, ""),
        ("Camping Lantern", 24.99, 0.5, (20, 12, 12), "grade", False, ""),
    ]),
    ("Packaging & Shipping", "PKG", ["Packwell", "BoxCo", "ShipSmart", "WrapIt"], [
        ("Corrugated Box 12x12x12 Bundle of 25", 29.99, 6.5, (62, 32, 6), "pack", False, ""),
        ("Packing Tape 2 in x 110 yd", 3.29, 0.3, (10, 10, 5), "pack", False, ""),
        ("Bubble Wrap Roll 12 in x 175 ft", 24.99, 1.6, (31, 31, 31), "pack", False, ""),
        ("Stretch Film 18 in x 1500 ft", 22.99, 2.4, (46, 10, 10), "pack", False, ""),
        ("Poly Mailers 10x13 Pack of 100", 17.99, 1.2, (34, 26, 5), "color", False, ""),
        ("Shipping Labels 4x6 Roll of 250", 12.99, 0.6, (12, 12, 10), "pack", False, ""),
        ("Kraft Void Fill Paper Roll", 39.99, 6.8, (38, 38, 30), "pack", False, ""),
        ("Tape Gun Dispenser", 11.99, 0.5, (25, 20, 8), "grade", False, ""),
        ("Pallet Wrap Hand Roll", 19.99, 2.0, (46, 10, 10), "pack", False, ""),
        ("Poly Strapping Kit", 89.99, 14.0, (45, 45, 25), "grade", False, ""),
    ]),
    ("Breakroom", "BRK", ["Morning Roast", "CafeLine", "Hearth", "Daily Brew"], [
        ("Whole Bean Coffee 2 lb", 21.99, 0.95, (25, 15, 8), "pack", False, ""),
        ("Ground Coffee 30 oz Canister", 14.99, 0.95, (18, 13, 13), "pack", False, ""),
        ("Hot Cups 12 oz Sleeve of 50", 7.99, 0.6, (35, 10, 10), "pack", False, ""),
        ("Wood Stir Sticks Box of 1000", 4.99, 0.5, (20, 8, 6), "pack", False, ""),
        ("Sugar Packets Box of 500", 9.99, 2.1, (22, 15, 12), "pack", False, ""),
        ("Liquid Creamer Cups Box of 180", 16.99, 2.5, (25, 20, 10), "pack", False, ""),
        ("Tea Assortment Box of 100", 13.99, 0.4, (22, 15, 8), "pack", False, ""),
        ("Spring Water 16.9 oz Case of 24", 6.99, 12.5, (40, 27, 21), "pack", False, ""),
        ("Plastic Cutlery Kit of 250", 11.99, 1.1, (25, 20, 10), "color", False, ""),
        ("Paper Plates 9 in Pack of 100", 8.99, 1.4, (24, 24, 10), "pack", False, ""),
    ]),
    ("Paints & Coatings", "PNT", ["ColorGuard", "TrueCoat", "PrimeLine", "Duraseal"], [
        ("Spray Paint Gloss 12 oz Aerosol", 6.49, 0.45, (20, 7, 7), "color", True, "AU"),
        ("Spray Primer 12 oz Aerosol", 6.99, 0.45, (20, 7, 7), "pack", True, "AU"),
        ("Clear Coat Aerosol 11 oz", 7.49, 0.42, (20, 7, 7), "pack", True, "AU"),
        ("Interior Latex Paint 1 gal", 32.99, 4.8, (19, 19, 19), "color", False, ""),
        ("Exterior Acrylic Paint 1 gal", 38.99, 4.9, (19, 19, 19), "color", False, ""),
        ("Wood Stain Quart", 14.99, 1.1, (12, 12, 12), "color", True, "DE|FR|NL"),
        ("Paint Thinner 1 qt", 9.99, 0.9, (20, 10, 7), "pack", True, "DE|FR|NL|GB"),
        ("Inverted Marking Paint 17 oz", 8.49, 0.55, (25, 7, 7), "color", True, "AU"),
        ("Paint Roller Kit 9 in", 12.99, 0.6, (30, 25, 8), "grade", False, ""),
        ("Paint Brush Set 5 Piece", 15.99, 0.4, (30, 15, 3), "grade", False, ""),
    ]),
    ("Electronics & Accessories", "ELC", ["Nexon", "Cablix", "Techline", "Zentro"], [
        ("USB-C Charging Cable 6 ft", 9.99, 0.06, (15, 10, 2), "color", False, ""),
        ("HDMI 2.1 Cable 10 ft", 14.99, 0.2, (20, 15, 3), "pack", False, ""),
        ("Wireless Optical Mouse", 19.99, 0.12, (15, 10, 6), "color", True, ""),
        ("Full-Size USB Keyboard", 24.99, 0.7, (46, 16, 4), "color", False, ""),
        ("HD Webcam 1080p", 49.99, 0.25, (18, 12, 8), "grade", False, "CU|IR|KP|SY"),
        ("USB Headset with Microphone", 34.99, 0.3, (22, 19, 9), "grade", False, ""),
        ("Surge Protector 8 Outlet", 27.99, 0.8, (38, 10, 5), "color", False, ""),
        ("Managed Network Switch 8 Port", 129.99, 1.2, (28, 18, 5), "grade", False, "CU|IR|KP|SY|RU"),
        ("Encrypted USB Flash Drive 64 GB", 59.99, 0.03, (10, 6, 2), "grade", False, "CU|IR|KP|SY|RU"),
        ("Adjustable Laptop Stand", 29.99, 1.3, (28, 24, 5), "color", False, ""),
    ]),
]
# Hazmat flag on a "grade"/"color" item means: a lithium battery inside (drills, power banks, mice...).


def _price_charm(x: float) -> Decimal:
    """A shop-like price: ends in .49 / .99 (or .x9 under $5)."""
    if x < 5:
        d = Decimal(str(round(x, 1))) - Decimal("0.01")
        return max(d, Decimal("0.49"))
    whole = int(x)
    return Decimal(whole) + (Decimal("0.49") if x - whole < 0.5 else Decimal("0.99"))


def build_products(rng: random.Random, per_category: int = 84) -> dict[str, Product]:
    products: dict[str, Product] = {}
    for cat, prefix, brands, items in CATEGORIES:
        combos = []
        for ii, (item, price, kg, dims, vkind, hazmat, restricted) in enumerate(items):
            for brand in brands:
                for vi, var in enumerate(_VARIANTS[vkind]):
                    combos.append((ii, item, price, kg, dims, hazmat, restricted, brand, vi, var))
        chosen = sorted(rng.sample(range(len(combos)), min(per_category, len(combos))))
        for n, ci in enumerate(chosen):
            ii, item, price, kg, dims, hazmat, restricted, brand, vi, (vname, pmul, wmul) = combos[ci]
            sku = f"{prefix}-{10000 + n * 7 + rng.randrange(7)}"
            name = f"{brand} {item}" + (f", {vname}" if vname else "")
            brand_factor = 0.85 + 0.3 * rng.random()
            lp = _price_charm(price * pmul * brand_factor)
            w = round(kg * wmul * (0.9 + 0.2 * rng.random()), 3)
            scale = wmul ** (1 / 3)
            d = tuple(round(x * scale * (0.95 + 0.1 * rng.random()), 1) for x in dims)
            products[sku] = Product(
                sku=sku, name=name, category=cat, item=item, brand=brand, weight_kg=max(w, 0.01),
                dims=d, list_price=lp, hazmat=hazmat, restricted=restricted.split("|") if restricted else [],
                substitutes=[], active=True, popularity=rng.paretovariate(1.3),
            )
    skus = sorted(products)
    # substitutes: same item from another brand / variant, for ~20 % of SKUs
    by_item: dict[str, list[str]] = {}
    for s in skus:
        by_item.setdefault(products[s].item, []).append(s)
    for s in skus:
        if rng.random() < 0.2:
            peers = [x for x in by_item[products[s].item] if x != s]
            if peers:
                products[s].substitutes = rng.sample(peers, min(len(peers), rng.choice((1, 1, 2))))
    for s in rng.sample(skus, 15):
        products[s].active = False
    return dict(sorted(products.items()))


# ------------------------------------------------------------------------------------------------
# Geography, names
# ------------------------------------------------------------------------------------------------
CITIES: dict[str, list[tuple[str, str | None, list[str]]]] = {
    "US": [("New York", "NY", ["10001", "10013", "10018"]), ("Newark", "NJ", ["07102", "07105"]),
           ("Edison", "NJ", ["08817", "08837"]), ("Los Angeles", "CA", ["90012", "90021", "90058"]),
           ("San Jose", "CA", ["95110", "95131"]), ("Dallas", "TX", ["75201", "75207", "75247"]),
           ("Houston", "TX", ["77002", "77040"]), ("Chicago", "IL", ["60601", "60607", "60632"]),
           ("Atlanta", "GA", ["30303", "30318"]), ("Seattle", "WA", ["98101", "98108"]),
           ("Denver", "CO", ["80202", "80216"]), ("Boston", "MA", ["02108", "02118"]),
           ("Miami", "FL", ["33130", "33166"]), ("Phoenix", "AZ", ["85004", "85034"]),
           ("Columbus", "OH", ["43215", "43219"]), ("Minneapolis", "MN", ["55401", "55413"]),
           ("Nashville", "TN", ["37203", "37210"]), ("Portland", "OR", ["97204", "97217"])],
    "CA": [("Toronto", "ON", ["M5V 2T6", "M4W 1A8", "M9W 6K5"]), ("Vancouver", "BC", ["V6B 1A1", "V5L 3X2"]),
           ("Montréal", "QC", ["H2Y 1C6", "H4T 1E3"]), ("Calgary", "AB", ["T2P 1J9", "T2E 7H7"]),
           ("Mississauga", "ON", ["L5T 2N7", "L4W 4Y8"])],
    "GB": [("London", None, ["EC1A 1BB", "SE1 9SG", "E14 5AB"]), ("Manchester", None, ["M1 1AE", "M17 1DJ"]),
           ("Birmingham", None, ["B1 1BB", "B6 7EU"]), ("Leeds", None, ["LS1 4AP", "LS11 5LN"]),
           ("Bristol", None, ["BS1 6QF", "BS11 9YA"])],
    "DE": [("Berlin", "BE", ["10115", "10245", "12099"]), ("München", "BY", ["80331", "81829"]),
           ("Hamburg", "HH", ["20095", "22113"]), ("Köln", "NW", ["50667", "51149"]),
           ("Düsseldorf", "NW", ["40210", "40599"])],
    "FR": [("Paris", "IDF", ["75001", "75011", "75019"]), ("Lyon", "ARA", ["69002", "69007"]),
           ("Marseille", "PAC", ["13001", "13015"]), ("Lille", "HDF", ["59000", "59160"])],
    "NL": [("Amsterdam", "NH", ["1012 AB", "1043 DP"]), ("Rotterdam", "ZH", ["3011 AD", "3089 KM"]),
           ("Utrecht", "UT", ["3511 AX", "3542 DB"]), ("Eindhoven", "NB", ["5611 AZ", "5652 AM"])],
    "MX": [("Ciudad de México", "CMX", ["06000", "11520"]), ("Monterrey", "NLE", ["64000", "66600"]),
           ("Guadalajara", "JAL", ["44100", "45130"]), ("Tijuana", "BCN", ["22000", "22444"])],
    "AU": [("Sydney", "NSW", ["2000", "2170"]), ("Melbourne", "VIC", ["3000", "3026"]),
           ("Brisbane", "QLD", ["4000", "4110"]), ("Perth", "WA", ["6000", "6105"])],
}
COUNTRY_NAMES = {"US": "United States", "CA": "Canada", "GB": "United Kingdom", "DE": "Germany", "FR": "France",
                 "NL": "Netherlands", "MX": "Mexico", "AU": "Australia", "IR": "Iran"}
_STREETS = {
    "US": (["Main", "Oak", "Maple", "Commerce", "Industrial", "Park", "Lake", "Washington", "Market", "Harbor",
            "Airport", "Logistics", "Elm", "Cedar", "Franklin"], ["St", "Ave", "Blvd", "Rd", "Dr", "Way", "Pkwy"]),
    "CA": (["King", "Queen", "Dundas", "Bay", "Granville", "Rue Saint-Paul", "Industrial", "Airport"],
           ["St", "Ave", "Rd", "Blvd"]),
    "GB": (["High", "Station", "Church", "Mill", "Park", "Victoria", "Trafford", "Wharf"], ["Road", "Street", "Lane"]),
    "AU": (["George", "Collins", "Queen", "Murray", "Botany", "Princes"], ["Street", "Road", "Highway"]),
}
_DE_STREETS = ["Hauptstraße", "Industriestraße", "Bahnhofstraße", "Gewerbering", "Schillerstraße", "Am Hafen"]
_FR_STREETS = ["rue de la République", "avenue Jean Jaurès", "rue du Commerce", "boulevard Voltaire",
               "rue de l'Industrie", "quai de la Loire"]
_NL_STREETS = ["Keizersgracht", "Industrieweg", "Havenstraat", "Stationsplein", "Marconistraat", "Bedrijvenpark"]
_MX_STREETS = ["Av. Insurgentes Sur", "Calle Reforma", "Av. Constitución", "Blvd. Industrial", "Calle Hidalgo"]
_LINE2 = ["Suite 200", "Suite 110", "Unit B", "Dock 4", "Building 3", "Floor 2", "Receiving", "Attn: Purchasing"]

FIRST = ["James", "Mary", "Robert", "Patricia", "Michael", "Linda", "David", "Jennifer", "Carlos", "María",
         "Wei", "Aisha", "Liam", "Olivia", "Noah", "Emma", "Lukas", "Sophie", "Jan", "Anouk", "Pierre", "Camille",
         "Jack", "Charlotte", "Ethan", "Chloe", "Mohammed", "Priya", "Kenji", "Zoë", "Søren", "Björn", "Ana",
         "Luis", "Fatima", "Grace", "Daniel", "Sarah", "Thomas", "Laura"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Lee",
        "Nguyen", "Patel", "O'Brien", "Müller", "Schmidt", "de Vries", "van Dijk", "Dubois", "Lefèvre", "Taylor",
        "Wilson", "Thompson", "Martin", "Hernández", "López", "Kowalski", "Chen", "Kim", "Murphy", "Walsh"]
_CO_A = ["Northwind", "Bluebird", "Summit", "Harbor Point", "Redwood", "Lakeside", "Pioneer", "Keystone",
         "Silverline", "Evergreen", "Granite", "Beacon", "Cedar Ridge", "Riverbend", "Sunrise", "Ironwood",
         "Meridian", "Crescent", "Frontier", "Atlas", "Oakmont", "Prairie", "Coastal", "Horizon", "Canyon",
         "Maple Leaf", "Union", "Liberty", "Highland", "Golden Gate"]
_CO_B = ["Supply", "Facilities", "Hospitality", "Builders", "Logistics", "Medical Group", "Property Management",
         "Schools", "Manufacturing", "Hotels", "Office Solutions", "Contractors", "Restaurants", "Fitness",
         "Labs", "Dental", "Auto Care", "Print & Ship", "Coffee Co", "Warehousing"]
_CO_SUFFIX = {"US": ["Inc.", "LLC", "Co.", "Corp."], "CA": ["Inc.", "Ltd."], "GB": ["Ltd", "PLC"],
              "DE": ["GmbH", "AG", "GmbH & Co. KG"], "FR": ["SARL", "SAS"], "NL": ["B.V."],
              "MX": ["S.A. de C.V."], "AU": ["Pty Ltd"]}
_CO_LOCAL = {"DE": ["Müller", "Schäfer", "Rhein", "Nordlicht", "Becker", "Bürotechnik Weiß"],
             "FR": ["Lumière", "Société Dupont", "Atelier Lefèvre", "Boulangerie Générale", "Côte d'Azur"],
             "NL": ["Van Dijk", "De Groot", "Oranje", "Hollandse", "Noordzee"],
             "MX": ["Distribuidora del Norte", "Comercial Azteca", "Grupo Peñasco", "Servicios Jalisco"]}


def _slug(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "", s)


def street(rng: random.Random, country: str) -> str:
    n = rng.randint(1, 9800)
    if country == "DE":
        return f"{rng.choice(_DE_STREETS)} {rng.randint(1, 180)}"
    if country == "FR":
        return f"{rng.randint(1, 140)} {rng.choice(_FR_STREETS)}"
    if country == "NL":
        return f"{rng.choice(_NL_STREETS)} {rng.randint(1, 300)}"
    if country == "MX":
        return f"{rng.choice(_MX_STREETS)} {rng.randint(10, 3500)}"
    names, kinds = _STREETS.get(country, _STREETS["US"])
    return f"{n} {rng.choice(names)} {rng.choice(kinds)}"


def address(rng: random.Random, country: str, company: str | None, person: str | None = None) -> Address:
    city, region, zips = rng.choice(CITIES[country])
    return Address(
        name=person or f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        company=company,
        line1=street(rng, country),
        line2=rng.choice(_LINE2) if rng.random() < 0.3 else None,
        city=city,
        region=region,
        postal=rng.choice(zips),
        country=country,
    )


def company_name(rng: random.Random, country: str, taken: set[str]) -> str:
    for _ in range(100):
        if country in _CO_LOCAL and rng.random() < 0.6:
            base = f"{rng.choice(_CO_LOCAL[country])} {rng.choice(['Handel', 'Services', 'Logistik', 'Bureau', 'Techniek', 'Distribución', 'Group'])}"
        else:
            base = f"{rng.choice(_CO_A)} {rng.choice(_CO_B)}"
        name = f"{base} {rng.choice(_CO_SUFFIX[country])}"
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("ran out of company names")


# ------------------------------------------------------------------------------------------------
# Customers
# ------------------------------------------------------------------------------------------------
EDI_PARTNERS = [
    # (ISA05 qualifier, ISA06 sender id, GS02 app sender, name, country, element, segment, component, newline)
    {"code": "ACMEHW", "qual": "ZZ", "isa06": "ACMEHARDWARE", "gs02": "ACMEHW", "name": "Acme Hardware Stores Inc.",
     "country": "US", "elem": "*", "seg": "~", "comp": ">", "nl": "\n", "po": "45"},
    {"code": "SUNBELT", "qual": "01", "isa06": "007874200", "gs02": "007874200", "name": "Sunbelt Retail Group LLC",
     "country": "US", "elem": "|", "seg": "^", "comp": ":", "nl": "", "po": "SB"},
    {"code": "GRTLAKES", "qual": "ZZ", "isa06": "GREATLAKESFAC", "gs02": "GLFACILITY",
     "name": "Great Lakes Facility Services Corp.", "country": "US", "elem": "*", "seg": "~", "comp": ":",
     "nl": "\r\n", "po": "GL"},
    {"code": "NORTHMRT", "qual": "ZZ", "isa06": "NORTHMARTCA", "gs02": "NORTHMART", "name": "NorthMart Canada Ltd.",
     "country": "CA", "elem": "*", "seg": "~", "comp": ">", "nl": "", "po": "NM"},
]
OUR_EDI_ID = "SOMDISTRIB"
REPS = [("alice_chen", "AC"), ("marco_rossi", "MR"), ("José Núñez", "JN"), ("francois_dubois", "FD"),
        ("dana_kim", "DK")]
SHIP_METHODS = ["UPS_GROUND", "FEDEX_GROUND", "UPS_EXPRESS", "FEDEX_EXPRESS", "DHL_GROUND", "DHL_EXPRESS"]


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def build_customers(rng: random.Random, products: dict[str, Product], start: date, end: date,
                    excluded_skus: set[str]) -> dict[str, Customer]:
    country_w = {"US": 60, "CA": 8, "GB": 7, "DE": 7, "FR": 5, "NL": 5, "MX": 4, "AU": 4}
    plan = ["edi"] * 4 + ["amazon"] * 30 + ["shopify"] * 80 + ["csv"] * 70
    plan += ["b2b_portal"] * (300 - len(plan))
    taken: set[str] = set()
    customers: dict[str, Customer] = {}
    orderable = [s for s, p in products.items() if p.active and s not in excluded_skus]
    by_cat: dict[str, list[str]] = {}
    for s in orderable:
        by_cat.setdefault(products[s].category, []).append(s)
    cats = sorted(by_cat)
    used_emails: set[str] = set()
    for i, channel in enumerate(plan):
        cid = f"C{i + 1:04d}"
        if channel == "edi":
            partner = EDI_PARTNERS[i]
            country, name = partner["country"], partner["name"]
            taken.add(name)
            tier = "platinum" if i < 2 else "gold"
        else:
            if channel == "amazon":
                country = _pick(rng, {"US": 80, "CA": 8, "GB": 6, "DE": 6})
            else:
                country = _pick(rng, country_w)
            name = company_name(rng, country, taken)
            tw = {"shopify": {"standard": 70, "silver": 25, "gold": 5},
                  "amazon": {"standard": 100},
                  "csv": {"standard": 30, "silver": 30, "gold": 28, "platinum": 12},
                  "b2b_portal": {"standard": 40, "silver": 28, "gold": 22, "platinum": 10}}[channel]
            tier = _pick(rng, tw)
        currency = COUNTRY_CURRENCY[country]
        lim_base = {"standard": (5, 25), "silver": (25, 75), "gold": (75, 250), "platinum": (250, 1000)}[tier]
        credit = Decimal(rng.randint(*lim_base) * 1000)
        terms = 0 if channel in ("shopify", "amazon") else rng.choice((30, 30, 30, 45, 60))
        words = [w for w in name.split() if w.rstrip(".") not in ("Inc", "LLC", "Co", "Corp", "Ltd", "PLC", "GmbH", "AG",
                                                                   "SARL", "SAS", "B.V", "Pty", "&", "KG", "S.A", "de",
                                                                   "C.V")]
        slug = "".join(_slug(w) for w in words[:2]) or f"cust{i}"
        email = f"{rng.choice(['purchasing', 'orders', 'procurement', 'ap', 'office'])}@{slug}.example"
        while email in used_emails:
            email = f"orders{rng.randint(2, 99)}@{slug}.example"
        used_emails.add(email)
        c = Customer(
            customer_id=cid, name=name, email=email, tier=tier, credit_limit=credit, currency=currency,
            terms=terms, country=country,
            ship_complete=channel in ("csv", "b2b_portal", "edi") and rng.random() < 0.1,
            allow_substitutes=rng.random() < 0.45, active=True,
            created_on=date(2018, 1, 1) + timedelta(days=rng.randint(0, (start - date(2018, 1, 1)).days - 30)),
            channels=[channel],
        )
        # activity: a few big accounts, a long tail
        c.weight = rng.paretovariate(1.4) * (4.0 if channel == "edi" else 1.0)
        nsites = {"edi": rng.randint(5, 9), "amazon": 1, "shopify": 1}.get(channel, rng.choice((1, 1, 2, 3)))
        for _k in range(nsites):
            a = address(rng, country, None if channel == "amazon" else name)
            if channel == "edi":
                a.store = f"{rng.randint(100, 999):04d}"
                a.company = f"{name.split(' ')[0].upper()} STORE {a.store}"
            c.sites.append(a)
        # stable habits: a basket of preferred SKUs with typical quantities
        fav = rng.sample(cats, rng.randint(2, 4))
        basket_n = {"edi": rng.randint(25, 45), "amazon": rng.randint(3, 8), "shopify": rng.randint(4, 10)}.get(
            channel, rng.randint(6, 18))
        pool = [s for cat in fav for s in by_cat[cat]]
        pw = [products[s].popularity for s in pool]
        basket: list[tuple[str, int, float]] = []
        seen: set[str] = set()
        while len(basket) < basket_n:
            s = rng.choices(pool, weights=pw)[0] if rng.random() < 0.85 else rng.choice(orderable)
            if s in seen:
                continue
            seen.add(s)
            if channel == "edi":
                q = rng.choice((6, 12, 12, 24, 24, 36, 48, 72, 96, 144))
            elif channel in ("amazon", "shopify"):
                q = rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 6))
            else:
                q = rng.choice((1, 2, 3, 4, 5, 6, 8, 10, 10, 12, 15, 20, 24, 25, 30, 40, 50, 60))
            basket.append((s, q, rng.paretovariate(1.5)))
        c.basket = basket
        c.lines_mean = {"edi": 6.0, "amazon": 1.4, "shopify": 2.2}.get(channel, 3.2)
        c.ship_method = rng.choice(SHIP_METHODS[:2] if country == "US" else ["DHL_GROUND", "UPS_GROUND"]) \
            if rng.random() < 0.8 else rng.choice(SHIP_METHODS)
        c.po_prefix = rng.choice(["PO", "P", "PO-", "", "REQ"])
        customers[cid] = c

    # second channels: ~10 % of b2b customers also order from the web shop or through a rep
    for c in customers.values():
        if c.channels[0] in ("csv", "b2b_portal") and rng.random() < 0.1:
            c.channels.append("shopify" if c.channels[0] == "b2b_portal" else "b2b_portal")
    # the first EDI partner also has a portal account (the duplicate-PO scenario)
    customers["C0001"].channels.append("b2b_portal")

    # channel identities -> aliases
    reps = [r for r, _ in REPS]
    shop_id = 6_210_000_000_000
    acct = 104_200
    for cid, c in customers.items():
        for ch in c.channels:
            if ch == "shopify":
                shop_id += rng.randint(1_000, 90_000)
                c.shopify_id = shop_id
                c.aliases.setdefault("shopify", []).extend([c.email, str(shop_id)])
            elif ch == "amazon":
                tag = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(14))
                c.amazon_email = f"{tag}@marketplace.amazon.com"
                c.aliases.setdefault("amazon", []).append(c.amazon_email)
            elif ch == "edi":
                c.edi = EDI_PARTNERS[int(cid[1:]) - 1]
                c.aliases.setdefault("edi", []).append(c.edi["isa06"])
            elif ch == "csv":
                c.rep = rng.choice(reps)
                c.aliases.setdefault("csv", []).append(cid)
            elif ch == "b2b_portal":
                acct += rng.randint(3, 40)
                c.portal_account = f"ACC-{acct}"
                c.aliases.setdefault("b2b_portal", []).append(c.portal_account)
    # two inactive customers (they still appear in history until they were closed)
    for cid in ("C0137", "C0262"):
        customers[cid].active = False
    return customers


# ------------------------------------------------------------------------------------------------
# Builder
# ------------------------------------------------------------------------------------------------
def build_reference(seed: int, start: date, end: date) -> Reference:
    def r(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    products = build_products(r("products"))
    skus = list(products)
    prng = r("special")
    active_plain = [s for s in skus if products[s].active and not products[s].hazmat and not products[s].restricted]

    # SKUs reserved for scenarios and bad reference rows
    with_subs = [s for s in active_plain if products[s].substitutes
                 and all(products[x].active for x in products[s].substitutes)]
    oos_everywhere = prng.sample(with_subs, 6)  # out of stock everywhere, each with an in-stock substitute
    rest = [s for s in active_plain if s not in oos_everywhere
            and not any(s in products[x].substitutes for x in oos_everywhere)
            and s not in {y for x in oos_everywhere for y in products[x].substitutes}]
    dup_key_sku = prng.choice([s for s in rest if not products[s].substitutes])
    rest.remove(dup_key_sku)
    short_sku = prng.choice(rest)  # ship-complete short
    rest.remove(short_sku)
    # nobody lists the reserved SKUs as a substitute
    for p in products.values():
        p.substitutes = [x for x in p.substitutes if x not in (dup_key_sku, short_sku)]
    subs_of_oos = sorted({y for x in oos_everywhere for y in products[x].substitutes})
    excluded = set(oos_everywhere) | {dup_key_sku, short_sku}
    customers = build_customers(r("customers"), products, start, end, excluded)

    # --- price lists ------------------------------------------------------------------------
    mid = start + timedelta(days=max(1, (end - start).days // 2))
    gens = [(start - timedelta(days=182), mid), (mid + timedelta(days=1), None)]
    prices: dict[tuple[str, str, str, int], list[tuple[int, Decimal]]] = {}
    price_rows: list[dict[str, Any]] = []
    for sku, p in products.items():
        if not p.active:
            continue
        for cur in CURRENCIES:
            cur_list = q2(p.list_price * FX[cur])
            for g, (vf, vt) in enumerate(gens):
                base = cur_list if g == 0 else q2(cur_list * PRICE_INCREASE)
                for tier in TIERS:
                    breaks = []
                    for min_qty, extra in QTY_BREAKS:
                        factor = Decimal(100 - TIER_DISCOUNT_PCT[tier]) * Decimal(100 - extra) / Decimal(10000)
                        price = q2(base * factor)
                        breaks.append((min_qty, price))
                        price_rows.append({"tier": tier, "sku": sku, "min_qty": min_qty, "price": format(price, "f"),
                                           "currency": cur, "valid_from": vf, "valid_to": vt,
                                           "max_discount_pct": format(MAX_DISCOUNT[tier], "f")})
                    prices[(tier, sku, cur, g)] = breaks

    # --- promotions ---------------------------------------------------------------------------
    top_bat = [s for s in skus if products[s].category == "Batteries & Power" and products[s].active][:6]
    spike_from = end - timedelta(days=max(2, min(40, (end - start).days // 2 - 3)))
    promotions = [
        ("WELCOME10", "percent", "0.10", start - timedelta(days=400), None, "*", "shopify", "*", "*", None),
        ("FALL15", "percent", "0.15", spike_from, spike_from + timedelta(days=6), "*", "shopify|b2b_portal", "*", "*", None),
        ("SUMMER20", "percent", "0.20", start - timedelta(days=100), start - timedelta(days=12), "*", "*", "*", "*",
         None),
        ("HOLIDAY25", "percent", "0.25", end + timedelta(days=20), end + timedelta(days=50), "*", "*", "*", "*", None),
        ("FREESHIP", "free_shipping", "0", start - timedelta(days=200), None, "*", "*", "*", "*", None),
        ("TAKE5", "fixed_amount", "5.00", start - timedelta(days=60), end + timedelta(days=60), "*", "shopify", "*", "*", None),
        ("GOLD10", "percent", "0.10", start - timedelta(days=90), None, "gold|platinum", "*", "*", "*", None),
        ("PPE12", "percent", "0.12", start, end + timedelta(days=30), "*", "*", "*", "Safety & PPE", None),
        ("BULK50", "fixed_amount", "50.00", start - timedelta(days=30), None, "gold|platinum", "b2b_portal|csv", "*", "*", None),
        ("FLASH30", "percent", "0.30", end - timedelta(days=12), end - timedelta(days=1), "*", "shopify", "*", "*", 3),
        ("EDIPROMO2", "percent", "0.02", start - timedelta(days=365), None, "*", "edi", "*", "*", None),
        ("NEWCUST15", "percent", "0.15", start - timedelta(days=365), None, "standard", "*", "*", "*", 500),
        ("CLEAN8", "percent", "0.08", start + timedelta(days=5), end - timedelta(days=5), "*", "*", "*",
         "Cleaning & Janitorial", None),
        ("POWER5", "fixed_amount", "5.00", start - timedelta(days=20), None, "*", "*", "|".join(top_bat), "*", None),
        ("SPRING10", "percent", "0.10", start - timedelta(days=270), start - timedelta(days=180), "*", "*", "*", "*",
         None),
    ]
    promo_rows = [{"code": c, "kind": k, "value": v, "valid_from": vf, "valid_to": vt, "eligible_tiers": t,
                   "eligible_channels": ch, "eligible_skus": s, "eligible_categories": cat, "usage_cap": cap}
                  for c, k, v, vf, vt, t, ch, s, cat, cap in promotions]

    # --- warehouses, carriers, zones ----------------------------------------------------------
    warehouses = [
        {"warehouse_id": "WH-NJ", "name": "East Coast DC (Edison, NJ)", "country": "US", "region": "NJ",
         "postal_code": "08837", "latitude": 40.5187, "longitude": -74.3496, "daily_capacity_lines": 4200,
         "cutoff_time": "15:00:00", "timezone": "America/New_York", "handling_cost": "3.50", "active": True},
        {"warehouse_id": "WH-CA", "name": "West Coast DC (Ontario, CA)", "country": "US", "region": "CA",
         "postal_code": "91761", "latitude": 34.0633, "longitude": -117.6509, "daily_capacity_lines": 3600,
         "cutoff_time": "14:00:00", "timezone": "America/Los_Angeles", "handling_cost": "3.75", "active": True},
        {"warehouse_id": "WH-TX", "name": "Central DC (Dallas, TX)", "country": "US", "region": "TX",
         "postal_code": "75261", "latitude": 32.8998, "longitude": -97.0403, "daily_capacity_lines": 3000,
         "cutoff_time": "16:00:00", "timezone": "America/Chicago", "handling_cost": "3.25", "active": True},
        {"warehouse_id": "WH-NL", "name": "EU DC (Venlo, NL)", "country": "NL", "region": "LI",
         "postal_code": "5928 LZ", "latitude": 51.3704, "longitude": 6.1724, "daily_capacity_lines": 2000,
         "cutoff_time": "13:00:00", "timezone": "Europe/Amsterdam", "handling_cost": "3.20", "active": True},
    ]
    carriers = []
    crng = r("carriers")
    for carrier in ("UPS", "FEDEX", "DHL"):
        for service, mode, otr, cap in (("GROUND", "ground", 0.95, 1500), ("EXPRESS", "air", 0.965, 600),
                                        ("AIR", "air", 0.975, 300)):
            carriers.append({"carrier_id": carrier, "service": service, "mode": mode,
                             "on_time_rate": round(otr - crng.random() * 0.04, 3),
                             "daily_capacity_parcels": int(cap * (0.8 + 0.4 * crng.random())), "active": True})
    rate_rows = []
    for cr in carriers:
        svc_mult = {"GROUND": Decimal("1"), "EXPRESS": Decimal("1.7"), "AIR": Decimal("2.9")}[cr["service"]]
        car_mult = {"UPS": Decimal("1.00"), "FEDEX": Decimal("1.03"), "DHL": Decimal("0.97")}[cr["carrier_id"]]
        for zone in range(1, 11):
            for band, base in ((1, "7.90"), (5, "11.40"), (10, "16.80"), (30, "34.50"), (70, "68.00")):
                rate = q2(Decimal(base) * (1 + Decimal(zone - 1) * Decimal("0.18")) * svc_mult * car_mult)
                transit = max(0, {"GROUND": 1 + (zone + 1) // 2, "EXPRESS": 1 + zone // 4, "AIR": 1}[cr["service"]]
                              + (3 if zone >= 9 and cr["service"] == "GROUND" else 0))
                rate_rows.append({"carrier_id": cr["carrier_id"], "service": cr["service"], "zone": zone,
                                  "max_weight_kg": float(band), "rate": format(rate, "f"), "currency": "USD",
                                  "transit_days": transit})
    zone_rows = []
    dests = ["US", "CA", "MX", "GB", "DE", "FR", "NL", "AU"]
    base_zone = {"WH-NJ": {"US": 4, "CA": 5, "MX": 7, "GB": 9, "DE": 9, "FR": 9, "NL": 9, "AU": 10},
                 "WH-CA": {"US": 5, "CA": 6, "MX": 6, "GB": 10, "DE": 10, "FR": 10, "NL": 10, "AU": 9},
                 "WH-TX": {"US": 4, "CA": 6, "MX": 5, "GB": 9, "DE": 9, "FR": 9, "NL": 9, "AU": 10},
                 "WH-NL": {"US": 9, "CA": 9, "MX": 10, "GB": 3, "DE": 2, "FR": 2, "NL": 1, "AU": 10}}
    regions = {"WH-NJ": {"NJ": 1, "NY": 2, "MA": 3, "CA": 8, "WA": 8, "TX": 6},
               "WH-CA": {"CA": 1, "OR": 3, "WA": 3, "AZ": 2, "NY": 8, "NJ": 8},
               "WH-TX": {"TX": 1, "CO": 3, "AZ": 4, "IL": 4, "GA": 4, "CA": 6},
               "WH-NL": {}}
    for wh in warehouses:
        wid = wh["warehouse_id"]
        for d in dests:
            zone_rows.append({"warehouse_id": wid, "dest_country": d, "dest_region": "*", "zone": base_zone[wid][d]})
        for reg, z in regions[wid].items():
            zone_rows.append({"warehouse_id": wid, "dest_country": "US", "dest_region": reg, "zone": z})
        if wid == "WH-NJ":
            zone_rows.append({"warehouse_id": wid, "dest_country": "CA", "dest_region": "ON", "zone": 4})
            zone_rows.append({"warehouse_id": wid, "dest_country": "CA", "dest_region": "QC", "zone": 4})

    # --- inventory ----------------------------------------------------------------------------
    irng = r("inventory")
    inventory: dict[tuple[str, str], int] = {}
    by_pop = sorted(skus, key=lambda s: -products[s].popularity)
    popular_short = set(by_pop[:25])
    for sku in skus:
        p = products[sku]
        for wh in warehouses:
            wid = wh["warehouse_id"]
            if sku in oos_everywhere or not p.active:
                q = 0
            elif sku == short_sku:
                q = {"WH-NJ": 3, "WH-TX": 2}.get(wid, 0)
            elif wid == "WH-NL" and irng.random() < 0.55:
                q = 0
            elif irng.random() < 0.05:
                q = 0
            elif sku in popular_short and irng.random() < 0.6:
                q = irng.randint(2, 25)
            else:
                q = int(irng.lognormvariate(4.2, 0.9) * (0.5 if wid == "WH-NL" else 1.0)) + 1
            inventory[(wid, sku)] = q
    as_of = f"{end.isoformat()}T06:00:00Z"

    # --- customers and credit -----------------------------------------------------------------
    # the brand-new customer (created 3 days before the end, no history, no invoices yet)
    new_customer = prng.choice([c.customer_id for c in customers.values() if c.channels == ["b2b_portal"]
                                and c.tier == "standard" and c.country == "US" and c.active])
    customers[new_customer].created_on = end - timedelta(days=3)
    customers[new_customer].history = False
    orng = r("open_items")
    open_items: list[dict[str, Any]] = []
    inv_no = 2026_000_100
    on_terms = [c for c in customers if customers[c].terms > 0 and c not in ("C0001", new_customer)
                and customers[c].active]
    portal_first = [c for c in on_terms if customers[c].channels[0] == "b2b_portal"]
    over_limit = orng.sample(portal_first, 2)
    over_limit = sorted(over_limit + orng.sample([c for c in on_terms if c not in over_limit], 3))
    for cid, c in customers.items():
        if c.terms == 0 or cid == new_customer:
            continue
        n = orng.choice((0, 1, 1, 2, 3, 4, 5))
        amounts = []
        if cid in over_limit:
            target = c.credit_limit * Decimal(str(round(1.08 + orng.random() * 0.25, 2)))
            n = max(n, 3)
            parts = [orng.random() + 0.2 for _ in range(n)]
            amounts = [q2(target * Decimal(str(round(x / sum(parts), 4)))) for x in parts]
        else:
            amounts = [q2(c.credit_limit * Decimal(str(round(orng.random() * 0.12, 4))) + Decimal("50"))
                       for _ in range(n)]
        for a in amounts:
            inv_no += orng.randint(1, 40)
            overdue = orng.random() < 0.2
            idate = end - timedelta(days=(c.terms + orng.randint(5, 40)) if overdue else orng.randint(1, c.terms))
            open_items.append({"invoice_id": f"INV-{inv_no}", "customer_id": cid, "amount_open": format(a, "f"),
                               "currency": c.currency, "invoice_date": idate,
                               "due_date": idate + timedelta(days=c.terms)})

    # --- tables as rows -----------------------------------------------------------------------
    tables: dict[str, list[dict[str, Any]]] = {}
    tables["customers"] = [
        {"customer_id": c.customer_id, "name": c.name, "email": c.email, "tier": c.tier,
         "credit_limit": format(c.credit_limit, "f") + ".00", "currency": c.currency,
         "payment_terms_days": c.terms, "country": c.country, "ship_complete": c.ship_complete,
         "allow_substitutes": c.allow_substitutes, "active": c.active, "created_on": c.created_on}
        for c in customers.values()
    ]
    tables["customer_aliases"] = sorted(
        ({"channel": ch, "external_ref": ref, "customer_id": c.customer_id}
         for c in customers.values() for ch, refs in c.aliases.items() for ref in refs),
        key=lambda x: (x["channel"], x["external_ref"]),
    )
    tables["products"] = [
        {"sku": p.sku, "name": p.name, "category": p.category, "weight_kg": p.weight_kg, "length_cm": p.dims[0],
         "width_cm": p.dims[1], "height_cm": p.dims[2], "list_price": format(p.list_price, "f"), "currency": "USD",
         "hazmat": p.hazmat, "restricted_countries": "|".join(p.restricted) or None,
         "substitutes": "|".join(p.substitutes) or None, "active": p.active,
         "fragile": p.category in FRAGILE_CATEGORIES or i % 11 == 5}
        for i, p in enumerate(products.values())
    ]
    # GTIN-12 (UPC-A) numbers of the catalog, as retail partners send them (UP qualifier): deterministic from the
    # catalog order, with a valid check digit
    tables["product_aliases"] = [
        {"alias": _upc(i), "sku": p.sku, "qualifier": "UP"} for i, p in enumerate(products.values(), start=1)]
    tables["price_lists"] = price_rows
    tables["promotions"] = promo_rows
    tables["warehouses"] = warehouses
    tables["inventory"] = [{"warehouse_id": w, "sku": s, "on_hand": q, "as_of": as_of}
                           for (w, s), q in sorted(inventory.items())]
    # pick faces: one bin per stocked SKU per warehouse, zones by category, slotted in catalog order
    zone_of = {c: "ABCDEF"[k % 6] for k, c in enumerate(sorted({p.category for p in products.values()}))}
    slots: dict[tuple[str, str], int] = {}
    tables["bin_locations"] = []
    for (w, sku), _q in sorted(inventory.items()):
        zone = zone_of[products[sku].category]
        k = slots[(w, zone)] = slots.get((w, zone), -1) + 1
        aisle, bay, level = k // 48 + 1, (k % 48) // 4 + 1, k % 4
        tables["bin_locations"].append({"warehouse_id": w, "sku": sku, "bin_id": f"{zone}-{aisle:02d}-{bay:02d}-{level}",
                                        "zone": zone, "aisle": aisle, "bay": bay, "level": level})
    tables["cartons"] = [dict(zip(("carton_id", "inner_length_cm", "inner_width_cm", "inner_height_cm",
                                   "max_weight_kg", "tare_kg", "cost", "active"), row, strict=True)) for row in CARTONS]
    tables["carriers"] = carriers
    tables["carrier_rates"] = rate_rows
    tables["shipping_zones"] = zone_rows
    tables["open_items"] = open_items
    _billing_tables(tables, customers, start)

    # --- deliberately bad rows (every REF_* reason, 5 rows in all) -----------------------------
    bad: list[dict[str, Any]] = []
    tables["customers"].append({**tables["customers"][11], "customer_id": "C9001", "name": "Westbrook Dental LLC",
                                "email": "ap@westbrookdental.example", "credit_limit": "TBD"})
    bad.append({"table": "customers", "key": "C9001", "reason": "REF_BAD_VALUE",
                "detail": "credit_limit 'TBD' is not a number"})
    tables["customers"].append({**tables["customers"][12], "customer_id": "C9002", "name": "Kestrel Aviation Inc.",
                                "email": "orders@kestrelaviation.example", "tier": "diamond"})
    bad.append({"table": "customers", "key": "C9002", "reason": "REF_CHECK_FAILED",
                "detail": "tier 'diamond' is not one of standard|silver|gold|platinum"})
    neg = next(i for i, row in enumerate(tables["inventory"])
               if row["warehouse_id"] == "WH-TX" and row["sku"] == by_pop[40])
    tables["inventory"][neg] = {**tables["inventory"][neg], "on_hand": -4}
    bad.append({"table": "inventory", "key": f"WH-TX|{by_pop[40]}", "reason": "REF_CHECK_FAILED",
                "detail": "on_hand -4 is negative (a stock-count correction keyed the wrong way)"})
    pos = next(i for i, row in enumerate(tables["products"]) if row["sku"] == dup_key_sku)
    dup = {**tables["products"][pos], "name": tables["products"][pos]["name"] + " (old catalog entry)",
           "list_price": format(q2(products[dup_key_sku].list_price * Decimal("0.9")), "f")}
    tables["products"].insert(pos + 1, dup)
    bad.append({"table": "products", "key": dup_key_sku, "reason": "REF_DUPLICATE_KEY",
                "detail": "sku appears twice with different names/prices (both rows are rejected)", "rows": 2})
    for b in bad:
        b.setdefault("rows", 1)

    special = {"new_customer": new_customer, "oos_everywhere": oos_everywhere, "subs_of_oos": subs_of_oos, "dup_key_sku": dup_key_sku,
               "short_sku": short_sku, "over_limit": over_limit, "excluded_skus": sorted(excluded),
               "popular_short": sorted(popular_short), "neg_inventory_sku": by_pop[40]}
    return Reference(start=start, end=end, products=products, customers=customers, prices=prices,
                     price_gens=gens, promotions=promo_rows, warehouses=warehouses, inventory=inventory,
                     carriers=carriers, open_items=open_items, tables=tables, bad_rows=bad, special=special)


# ------------------------------------------------------------------------------------------------
# Billing reference data
# ------------------------------------------------------------------------------------------------
#: States that tax shipping charges when the goods are taxable (the demo's simplification of the real rules).
SHIPPING_TAXED_STATES = ("NY", "NJ", "TX", "GA", "WA", "MN", "TN", "OH", "CO")
B2B_CHANNELS = ("edi", "b2b_portal", "csv")


def iban(country: str, bban: str) -> str:
    """An IBAN with valid ISO 13616 check digits (mod 97) for ``bban`` (letters and digits)."""
    digits = "".join(str(int(ch, 36)) for ch in (bban + country + "00").upper())
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _billing_tables(tables: dict[str, list[dict[str, Any]]], customers: dict[str, Customer], start: date) -> None:
    """ref.tax_rates (the rates capture uses, per state / country, goods and -- where taxed -- shipping; a city
    surcharge by postal prefix), ref.billing_policies (prepaid consumer channels, B2B on shipment; one EDI customer
    billed on delivery), ref.legal_entities, ref.customer_bank_accounts (every B2B customer's paying account),
    ref.return_policies (consumer channels 30 days and no fee; B2B 14 days and 15 % when not the seller's fault)."""
    since = date(start.year - 1, 1, 1)
    rows = []
    for st, rate in sorted(US_STATE_TAX.items()):
        rows.append({"jurisdiction": f"US-{st}", "country": "US", "region": st, "postal_prefix": "*",
                     "tax_class": "standard", "rate": rate, "valid_from": since, "valid_to": None})
        if st in SHIPPING_TAXED_STATES:
            rows.append({**rows[-1], "tax_class": "shipping"})
    rows.append({"jurisdiction": "US (other states)", "country": "US", "region": "*", "postal_prefix": "*",
                 "tax_class": "standard", "rate": "0.07", "valid_from": since, "valid_to": None})
    for c, rate in sorted(COUNTRY_TAX.items()):
        for cls in ("standard", "shipping"):  # VAT / GST follows the goods onto the shipping charge
            rows.append({"jurisdiction": c, "country": c, "region": "*", "postal_prefix": "*", "tax_class": cls,
                         "rate": rate, "valid_from": since, "valid_to": None})
    tables["tax_rates"] = rows
    edi_customers = sorted(c.customer_id for c in customers.values() if "edi" in c.channels)
    tables["billing_policies"] = [
        {"channel": ch, "customer_id": "*", "basis": "shipment", "prepaid": ch in ("shopify", "amazon"),
         "legal_entity": "US01"} for ch in ("amazon", "b2b_portal", "csv", "edi", "shopify")
    ] + [{"channel": "edi", "customer_id": cid, "basis": "delivery", "prepaid": False, "legal_entity": "US01"}
         for cid in edi_customers[:1]]
    tables["legal_entities"] = [{"legal_entity": "US01", "name": "SOM Trading Inc.",
                                 "address": "100 Commerce Way, Austin, TX 78701, US", "tax_id": "US-EIN 74-1234567",
                                 "edi_id": "SOMTRADING"}]
    accounts = []
    for k, c in enumerate(sorted(customers.values(), key=lambda c: c.customer_id)):
        if not set(c.channels) & set(B2B_CHANNELS):
            continue
        bank = ("SOMB", "CITI", "WFBI", "BOFA")[k % 4]
        country = c.country if c.country in COUNTRY_TAX else "GB" if c.country != "US" else "US"
        acct = (iban(country, f"{bank}{k * 7919 % 10**8:08d}{k:06d}") if country != "US"
                else f"{('021000021', '121000248', '026009593', '011000138')[k % 4]}{k * 104729 % 10**10:010d}")
        accounts.append({"account": acct, "customer_id": c.customer_id, "holder_name": c.name.upper()})
    tables["customer_bank_accounts"] = accounts
    tables["return_policies"] = [
        {"channel": ch, "customer_id": "*", "window_days": 30 if ch in ("shopify", "amazon") else 14,
         "restocking_fee_rate": "0" if ch in ("shopify", "amazon") else "0.15", "refund_shipping_on_fault": True,
         "non_returnable_categories": "Hazmat"} for ch in ("amazon", "b2b_portal", "csv", "edi", "shopify")]


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
def _cell(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _upc(n: int) -> str:
    """A UPC-A (GTIN-12) under the demo company prefix 0 84512 with item number ``n`` and its check digit."""
    body = f"084512{n:05d}"
    odd = sum(int(d) for d in body[0::2])
    even = sum(int(d) for d in body[1::2])
    return body + str((10 - (odd * 3 + even) % 10) % 10)


def write_reference(ref: Reference, out_dir: Path) -> dict[str, int]:
    """Write one CSV per reference table (columns = the model's, in order). Returns rows per table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table, model in schemas.REFERENCE_TABLES.items():
        cols = list(schemas.polars_schema(model))
        rows = ref.tables.get(table)
        if rows is None:  # not master data of the demo's start (transit_history: the carriers send it later)
            continue
        data = {c: [_cell(r.get(c)) for r in rows] for c in cols}
        pl.DataFrame(data, schema={c: pl.String for c in cols}).write_csv(out_dir / f"{table}.csv")
        counts[table] = len(rows)
    return counts


__all__ = ["Address", "Customer", "Product", "Reference", "build_reference", "write_reference"]
