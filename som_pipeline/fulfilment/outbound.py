"""Ship confirmations in the channels' own formats, and the carriers' end-of-day manifest.

Pure: frames in, documents out (no I/O, no clock: ``now`` is an argument). The service layer decides what
to send, records each document under :func:`document_id` in its ledger of what was sent, and never sends a
document id twice.

Input frames (one stage's view of a shipment as it leaves; extra columns are ignored):

- ``shipments``: shipment_id, order_id, channel, channel_order_ref, warehouse_id, carrier_id (UPS | FEDEX |
  DHL | USPS), service, shipped_at (Datetime, UTC; a naive value is read as UTC), ship_to_name,
  ship_to_address1, ship_to_city, ship_to_region, ship_to_postal_code, ship_to_country, partner_id, customer_po
- ``lines``: shipment_id, order_id, line_no, sku, quantity, channel_line_ref, buyer_part, upc
- ``packages``: shipment_id, package_no, tracking_number, tracking_url, sscc, gross_weight_kg, carton_id
- ``contents``: shipment_id, package_no, sku, line_no, quantity

Every document checks the shipment first (:func:`check_shipment`): at least one package, unique package
numbers, each content row naming a line and a package of the shipment with the line's SKU, positive integer
quantities, and per line the packed quantities summing to the shipped quantity. A broken shipment raises
:class:`OutboundError` naming it: a confirmation that loses or invents units is never written.

Formats and the choices made
----------------------------
**X12 856 ship notice** (:func:`x12_856`), ASC X12 004010, one interchange per trading partner (the caller
groups shipments by ``partner_id``), one functional group (GS01 ``SH``), one ST/SE 856 per shipment:

- envelope as our 997 writer (:mod:`som_pipeline.ingest.x12.ack997`, whose segment writer and element
  cleaner are reused): ``*`` elements, ``>`` components (ISA16), ``~`` then a newline after each segment,
  ISA fixed width, ISA11 ``U`` and ISA12 ``00401``, ISA14 ``0`` (no TA1 asked), ISA15 ``P`` (``usage``),
  ISA13 = IEA02 = ``control_number`` (nine digits), GS06 = GE02 = ``control_number``, ST02 = SE02 =
  ``0001``, ``0002``... in shipment-id order. ISA09/10, GS04/05 and BSN03/04 are ``now`` as given (its own
  wall clock, as the 997 writer does).
- ``BSN*00*<shipment_id>*<CCYYMMDD>*<HHMM>*0001``: original, the shipment id, creation date/time, hierarchy
  structure 0001 (shipment, order, pack, item: pick and pack).
- HL S (shipment): ``TD1*CTN25*<packages>****G*<gross kg>*KG`` (cartons, sum of package gross weights,
  exact decimals), ``TD5**2*<SCAC>*U*<service>`` (SCAC: UPS→UPSN, USPS→USPS, DHL→DHLC, FedEx→FDEG when
  the service is Ground or Home Delivery (FedEx Ground Package System), else FDE (FedEx Express); U =
  private parcel service), ``REF*CN*<lead tracking number>`` (the lowest package number's: parcel
  shipments have no bill of lading, so no REF*BM is invented), ``DTM*011*<date>*<time>*<code>`` shipped,
  ``N1*ST`` / ``N3`` / ``N4`` ship-to (N402 only for a two-letter region code: the element is ID 2/2).
- HL O (order): ``PRF*<PO>``: for an EDI order the 850's PO number (BEG03, ``channel_order_ref``), else
  ``customer_po``, else ``channel_order_ref``: an EDI shipment without ``customer_po`` is valid.
- HL P (pack), one per package: ``MAN*GM*<SSCC-18>`` (required, 18 digits with a valid GS1 check digit)
  and ``REF*CN*<tracking number>``.
- HL I (item), one per content row of the package: ``LIN*<id>*IN*<buyer part>*VN*<sku>*<UP|EN|UK>*<GTIN>``
  (LIN01 = the PO1 assigned id ``channel_line_ref``, else our line number; IN only when the 850 gave a
  buyer part; the GTIN qualifier by length: 12 UP, 13 EN, 14 UK), ``SN1*<id>*<quantity>*EA``.
- ``CTT*<number of HL segments>*<hash total of SN102>``: the convention of the public 856 sample
  (walmartlabs/gozer ``asn856.txt``: ``CTT*4*30`` closes 4 HLs whose SN102 are 24 and 6).
- Text (names, addresses, service) is made safe by the 997 writer's cleaner: ASCII (accents folded), the
  separators ``* > ~`` and control characters removed, then cut to the element's maximum length. An
  identifier (shipment id, PO, SKU, tracking number...) that holds a separator or is too long raises
  :class:`OutboundError` instead: a changed id would not match on the partner's side.
- ``tz``: DTM*011 is the shipment's UTC date and time (DTM04 ``UT``) by default; with ``tz`` (an IANA name,
  or a mapping warehouse_id -> IANA name) it is the warehouse's local date and time (DTM04 ``LT``). The
  same ``tz`` gives the manifest's ship dates.

**Shopify** (:func:`shopify_fulfillment`): the current REST Admin API ``POST /admin/api/<version>/
fulfillments.json`` body, ``{"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id",
"fulfillment_order_line_items": [{"id", "quantity"}]}], "tracking_info": {"number", "url", "company"},
"notify_customer"}}``. The classic ``POST /orders/<id>/fulfillments.json`` with ``line_items`` and
``location_id`` was removed from the REST API in version 2023-01, so it is not written. The fulfillment
order line item ids come from the order's fulfillment orders (``GET /orders/<id>/fulfillment_orders.json``,
the shape of the public sample ``fulfillment_orders.json``: ``line_items[].line_item_id`` is the order's line
item id, our ``channel_line_ref``; ``line_items[].id`` the id to fulfil; ``fulfillable_quantity`` the most
that can be fulfilled). The REST Fulfillment resource carries one tracking number per fulfillment ("if you
need to use multiple tracking numbers, then you should create separate fulfillments"), so a shipment of N
packages is N requests, each with its package's contents; ids and quantities are JSON integers.

**Amazon** (:func:`amazon_confirm_shipment`): SP-API Orders v0 ``confirmShipment``, ``POST /orders/v0/orders/
<AmazonOrderId>/shipmentConfirmation``, body ``ConfirmShipmentRequest`` as in ``ordersV0.json``
(camelCase, unlike the PascalCase order responses): ``{"marketplaceId", "packageDetail": {"packageReferenceId"
(the package number as a string: positive numbers only), "carrierCode" (UPS, FedEx, DHL, USPS), "shippingMethod",
"trackingNumber", "shipDate" (ISO 8601 UTC, ``Z``), "orderItems": [{"orderItemId", "quantity" (integer)}]}}``.
One request per package (the body holds one package). ``carrierName`` is only for carrierCode ``Others`` and
``codCollectionMethod`` only for JP cash on delivery: neither is written. ``marketplaceId`` is not in the
frames: it is an argument.

**Manifest** (:func:`manifest`, :func:`manifest_csv`): one row per carrier x warehouse x ship date (UTC, or
local with ``tz``): shipments, packages, total gross kilograms (exact decimal), tracking numbers (sorted).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

# The 997 writer's segment writer and element cleaner (private there; see the module doc).
from som_pipeline.ingest.x12.ack997 import _clean, _Writer
from som_pipeline.ingest.x12.tokenizer import Separators

CARRIERS = ("UPS", "FEDEX", "DHL", "USPS")
SEPARATORS = Separators(element="*", segment="~", component=">", repetition=None)
X12_VERSION = "004010"
ISA_VERSION = "00401"

# Shopify's tracking company names (its list of supported carriers; capitalisation matters).
SHOPIFY_COMPANY = {"UPS": "UPS", "FEDEX": "FedEx", "DHL": "DHL Express", "USPS": "USPS"}
# Amazon CarrierCode values (amzn-base.xsd CarrierCode list).
AMAZON_CARRIER = {"UPS": "UPS", "FEDEX": "FedEx", "DHL": "DHL", "USPS": "USPS"}
SHOPIFY_API_VERSION = "2025-01"

DOCUMENT_KINDS = ("x12_856", "shopify_fulfillment", "amazon_confirm_shipment", "manifest", "portal_shipment",
                  "invoice_pdf", "x12_810", "credit_note_pdf")

_GTIN_QUALIFIER = {12: "UP", 13: "EN", 14: "UK"}
_FEDEX_GROUND = re.compile(r"GROUND|HOME", re.I)


class OutboundError(ValueError):
    """A shipment that cannot be confirmed as given (the message names it and says why)."""


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request to a channel: method, path, JSON body, and the id to record it under once sent."""

    method: str
    path: str
    body: dict[str, Any]
    document_id: str
    shipment_id: str
    package_no: int


# ------------------------------------------------------------------------------------------------
# Document ids
# ------------------------------------------------------------------------------------------------
def document_id(kind: str, key: Any) -> str:
    """A deterministic id ``<kind>:<sha256 hex>`` for the document of ``kind`` about ``key``.

    ``key`` is a value or a sequence of values (each taken as text; ``None`` as ``null``). What each kind
    uses: ``x12_856`` the shipment id (one ST set per shipment, whatever interchange carries it: a re-send
    gets new control numbers, not a new id); ``shopify_fulfillment`` and ``amazon_confirm_shipment``
    ``(shipment_id, package_no)``; ``manifest`` ``(carrier_id, warehouse_id, ship_date ISO)``.
    """
    if kind not in DOCUMENT_KINDS:
        raise OutboundError(f"unknown document kind {kind!r} (known: {', '.join(DOCUMENT_KINDS)})")
    parts = list(key) if isinstance(key, (list, tuple)) else [key]
    text = json.dumps([kind, [None if p is None else str(p) for p in parts]], separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


# ------------------------------------------------------------------------------------------------
# Shipment checks and shared helpers
# ------------------------------------------------------------------------------------------------
def _rows(frame: pl.DataFrame, shipment_id: str, sort: Sequence[str]) -> list[dict[str, Any]]:
    if frame.height <= 64:  # one shipment's own rows (the caller split them): no query plan per call
        rows = [r for r in frame.to_dicts() if r["shipment_id"] == shipment_id]
        return sorted(rows, key=lambda r: tuple(r[c] for c in sort))
    return frame.filter(pl.col("shipment_id") == shipment_id).sort(list(sort)).to_dicts()


def _shipment_row(shipment: Mapping[str, Any] | pl.DataFrame) -> dict[str, Any]:
    if isinstance(shipment, pl.DataFrame):
        if shipment.height != 1:
            raise OutboundError(f"expected one shipment row, got {shipment.height}")
        return shipment.row(0, named=True)
    return dict(shipment)


def _pos_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or v is None or int(v) != v or int(v) <= 0:
        raise OutboundError(f"{what}: quantity must be a positive whole number, got {v!r}")
    return int(v)


@dataclass
class _Shipment:
    row: dict[str, Any]
    lines: list[dict[str, Any]]  # by line_no
    packages: list[dict[str, Any]]  # by package_no
    contents: list[dict[str, Any]]  # by package_no, line_no

    @property
    def id(self) -> str:
        return str(self.row["shipment_id"])

    def line(self, line_no: int) -> dict[str, Any]:
        return next(ln for ln in self.lines if ln["line_no"] == line_no)

    def package_contents(self, package_no: int) -> list[dict[str, Any]]:
        return [c for c in self.contents if c["package_no"] == package_no]


def check_shipment(shipment: Mapping[str, Any] | pl.DataFrame, lines: pl.DataFrame, packages: pl.DataFrame,
                   contents: pl.DataFrame | None = None) -> _Shipment:
    """One shipment's rows, checked (see the module doc). ``contents`` may be omitted for a one-package
    shipment (everything is in it)."""
    row = _shipment_row(shipment)
    sid = str(row["shipment_id"])
    ls = _rows(lines, sid, ["line_no"])
    ps = _rows(packages, sid, ["package_no"])
    if not ls:
        raise OutboundError(f"shipment {sid}: no shipment lines")
    if not ps:
        raise OutboundError(f"shipment {sid}: no packages")
    nos = [p["package_no"] for p in ps]
    if len(set(nos)) != len(nos):
        raise OutboundError(f"shipment {sid}: package numbers repeat ({nos})")
    line_nos = [ln["line_no"] for ln in ls]
    if len(set(line_nos)) != len(line_nos):
        raise OutboundError(f"shipment {sid}: line numbers repeat ({line_nos})")
    for ln in ls:
        _pos_int(ln["quantity"], f"shipment {sid} line {ln['line_no']}")
    if contents is None:
        if len(ps) != 1:
            raise OutboundError(f"shipment {sid}: {len(ps)} packages need package contents")
        cs = [{"shipment_id": sid, "package_no": nos[0], "sku": ln["sku"], "line_no": ln["line_no"],
               "quantity": ln["quantity"]} for ln in ls]
    else:
        cs = _rows(contents, sid, ["package_no", "line_no"])
    by_line = {ln["line_no"]: ln for ln in ls}
    packed: dict[Any, int] = {}
    for c in cs:
        where = f"shipment {sid} package {c['package_no']} line {c['line_no']}"
        if c["package_no"] not in nos:
            raise OutboundError(f"{where}: contents name a package the shipment does not have")
        ln = by_line.get(c["line_no"])
        if ln is None:
            raise OutboundError(f"{where}: contents name a line the shipment does not have")
        if c["sku"] != ln["sku"]:
            raise OutboundError(f"{where}: packed SKU {c['sku']!r} is not the line's SKU {ln['sku']!r}")
        packed[c["line_no"]] = packed.get(c["line_no"], 0) + _pos_int(c["quantity"], where)
    for ln in ls:
        got = packed.get(ln["line_no"], 0)
        if got != ln["quantity"]:
            raise OutboundError(f"shipment {sid} line {ln['line_no']} ({ln['sku']}): {ln['quantity']} shipped "
                                f"but {got} packed")
    for p in ps:
        if not any(c["package_no"] == p["package_no"] for c in cs):
            raise OutboundError(f"shipment {sid} package {p['package_no']}: empty (no contents)")
    return _Shipment(row, ls, ps, cs)


def _carrier(row: Mapping[str, Any]) -> str:
    c = str(row.get("carrier_id") or "").upper()
    if c not in CARRIERS:
        raise OutboundError(f"shipment {row.get('shipment_id')}: carrier {row.get('carrier_id')!r} is not one of "
                            f"{', '.join(CARRIERS)}")
    return c


def scac(carrier_id: str, service: str | None) -> str:
    """The carrier's SCAC for TD503 (FedEx: FDEG for Ground / Home Delivery, FDE for Express services)."""
    c = _carrier({"carrier_id": carrier_id})
    if c == "FEDEX":
        return "FDEG" if _FEDEX_GROUND.search(service or "") else "FDE"
    return {"UPS": "UPSN", "DHL": "DHLC", "USPS": "USPS"}[c]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _zone_of(warehouse_id: Any, tz: str | Mapping[str, str] | None) -> str | None:
    if tz is None:
        return None
    if isinstance(tz, str):
        name = tz
    elif warehouse_id in tz:
        name = tz[warehouse_id]
    else:
        raise OutboundError(f"no time zone given for warehouse {warehouse_id!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise OutboundError(f"unknown time zone {name!r} (warehouse {warehouse_id!r})") from e
    return name


def _decimal(v: Any, what: str) -> Decimal:
    if v is None:
        raise OutboundError(f"{what}: missing")
    d = v if isinstance(v, Decimal) else Decimal(str(v))  # str(): a float's shortest repr, not its binary
    if not d.is_finite() or d < 0:
        raise OutboundError(f"{what}: {v!r} is not a weight")
    return d


def _dec_text(d: Decimal) -> str:
    """A decimal as X12 R text: no exponent, no trailing zeros after the point."""
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (the number without its check digit)."""
    total = sum(int(ch) * (3 if i % 2 == 0 else 1) for i, ch in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


# ------------------------------------------------------------------------------------------------
# X12 856
# ------------------------------------------------------------------------------------------------
class _Set:
    """Segments of one ST..SE set, with the separators and cleaning rules of the 856."""

    def __init__(self, w: _Writer) -> None:
        self.w = w
        self.start = len(w.out)

    def seg(self, *els: Any) -> None:
        vals = ["" if e is None else str(e) for e in els]
        while vals and vals[-1] == "":  # no trailing empty elements
            vals.pop()
        self.w.seg(*vals)

    @property
    def count(self) -> int:
        return len(self.w.out) - self.start


def _text(v: Any, width: int) -> str:
    """Free text (names, addresses): cleaned of separators and non-ASCII, cut to the element's length."""
    return " ".join(_clean(v, SEPARATORS).split())[:width].strip()


def _ident(v: Any, width: int, what: str, required: bool = True) -> str:
    """An identifier: written as given, or an error (a changed id would not match on the other side)."""
    if v is None or str(v).strip() == "":
        if required:
            raise OutboundError(f"{what}: missing")
        return ""
    s = str(v).strip()
    if _clean(s, SEPARATORS) != s:
        raise OutboundError(f"{what}: {s!r} holds an X12 separator or a character that is not printable ASCII")
    if len(s) > width:
        raise OutboundError(f"{what}: {s!r} is longer than {width} characters")
    return s


def _sscc(v: Any, what: str) -> str:
    s = "" if v is None else str(v).strip()
    if not (len(s) == 18 and s.isdigit()):
        raise OutboundError(f"{what}: SSCC {v!r} is not 18 digits")
    if gs1_check_digit(s[:-1]) != int(s[-1]):
        raise OutboundError(f"{what}: SSCC {s} has a wrong check digit (expected {gs1_check_digit(s[:-1])})")
    return s


def _gtin(v: Any, what: str) -> tuple[str, str] | None:
    if v is None or str(v).strip() == "":
        return None
    s = str(v).strip()
    if not s.isdigit() or len(s) not in _GTIN_QUALIFIER:
        raise OutboundError(f"{what}: UPC/GTIN {v!r} is not 12, 13 or 14 digits")
    return _GTIN_QUALIFIER[len(s)], s


def _isa_id(v: str, what: str) -> str:
    s = _ident(v, 15, what)
    return s.ljust(15)


def open_interchange(functional_id: str, *, sender_id: str, receiver_id: str, control_number: int, now: datetime,
                     usage: str = "P", sender_qualifier: str = "ZZ", receiver_qualifier: str = "ZZ",
                     gs_sender: str | None = None, gs_receiver: str | None = None) -> tuple[_Writer, str, str]:
    """A writer holding the ISA and GS (GS01 ``functional_id``) of an outbound interchange, with the interchange
    and group control numbers its trailers repeat (``w.seg("GE", sets, gcn)``, ``w.seg("IEA", 1, icn)``)."""
    w = _Writer(SEPARATORS, "\n")
    icn = f"{control_number:09d}"
    gcn = str(control_number)
    w.seg("ISA", "00", " " * 10, "00", " " * 10,
          _ident(sender_qualifier, 2, "ISA05").ljust(2), _isa_id(sender_id, "ISA06 sender id"),
          _ident(receiver_qualifier, 2, "ISA07").ljust(2), _isa_id(receiver_id, "ISA08 receiver id"),
          now.strftime("%y%m%d"), now.strftime("%H%M"), "U", ISA_VERSION, icn, "0", usage, SEPARATORS.component)
    w.seg("GS", functional_id, _ident(gs_sender or sender_id, 15, "GS02"),
          _ident(gs_receiver or receiver_id, 15, "GS03"), now.strftime("%Y%m%d"), now.strftime("%H%M"), gcn, "X",
          X12_VERSION)
    return w, icn, gcn


def x12_856(shipments: pl.DataFrame, lines: pl.DataFrame, packages: pl.DataFrame, contents: pl.DataFrame, *,
            sender_id: str, receiver_id: str, control_number: int, now: datetime,
            tz: str | Mapping[str, str] | None = None, sender_qualifier: str = "ZZ", receiver_qualifier: str = "ZZ",
            gs_sender: str | None = None, gs_receiver: str | None = None, usage: str = "P") -> str:
    """One X12 856 interchange (ISA..IEA) for one trading partner: one ST/SE set per shipment.

    ``sender_id``/``receiver_id`` are ISA06/ISA08 (``*_qualifier`` ISA05/ISA07); GS02/GS03 default to them.
    A shipment whose ``partner_id`` is set and differs from ``receiver_id`` is refused (the caller grouped
    wrong). ``control_number`` is ISA13/IEA02 and GS06/GE02. See the module doc for each segment.
    """
    if not 1 <= control_number <= 999_999_999:
        raise OutboundError(f"control_number must be 1..999999999, got {control_number}")
    if usage not in ("P", "T"):
        raise OutboundError(f"usage must be P (production) or T (test), got {usage!r}")
    if shipments.height == 0:
        raise OutboundError("no shipments: an 856 interchange needs at least one")
    ids = shipments["shipment_id"].to_list()
    if len(set(ids)) != len(ids):
        raise OutboundError("a shipment id repeats in the shipments frame")
    for r in shipments.iter_rows(named=True):
        if r.get("partner_id") not in (None, "") and str(r["partner_id"]).strip() != receiver_id.strip():
            raise OutboundError(f"shipment {r['shipment_id']}: partner {r['partner_id']!r} is not the interchange "
                                f"receiver {receiver_id!r}")
    w, icn, gcn = open_interchange("SH", sender_id=sender_id, receiver_id=receiver_id, control_number=control_number,
                                   now=now, usage=usage, sender_qualifier=sender_qualifier,
                                   receiver_qualifier=receiver_qualifier, gs_sender=gs_sender, gs_receiver=gs_receiver)
    rows = shipments.sort("shipment_id").iter_rows(named=True)
    n_sets = 0
    for k, row in enumerate(rows, 1):
        s = check_shipment(row, lines, packages, contents)
        _write_856_set(w, s, f"{k:04d}", now, tz)
        n_sets = k
    w.seg("GE", n_sets, gcn)
    w.seg("IEA", 1, icn)
    return "".join(w.out)


def _write_856_set(w: _Writer, s: _Shipment, st02: str, now: datetime, tz: str | Mapping[str, str] | None) -> None:
    r, sid = s.row, s.id
    where = f"shipment {sid}"
    st = _Set(w)
    st.seg("ST", "856", st02)
    st.seg("BSN", "00", _ident(sid, 30, f"{where}: BSN02 shipment id"), now.strftime("%Y%m%d"),
           now.strftime("%H%M"), "0001")
    hl = 0

    def open_hl(parent: int | None, level: str) -> int:
        nonlocal hl
        hl += 1
        st.seg("HL", hl, parent or "", level)
        return hl

    # S: shipment
    ship_hl = open_hl(None, "S")
    weight = sum((_decimal(p["gross_weight_kg"], f"{where} package {p['package_no']}: gross_weight_kg")
                  for p in s.packages), Decimal(0))
    st.seg("TD1", "CTN25", len(s.packages), "", "", "", "G", _dec_text(weight), "KG")
    carrier = _carrier(r)
    st.seg("TD5", "", "2", scac(carrier, r.get("service")), "U", _text(r.get("service"), 35))
    lead = s.packages[0]
    st.seg("REF", "CN", _ident(lead["tracking_number"], 30, f"{where} package {lead['package_no']}: tracking number"))
    shipped = _utc(r["shipped_at"])
    zone = _zone_of(r.get("warehouse_id"), tz)
    local = shipped.astimezone(ZoneInfo(zone)) if zone else shipped
    st.seg("DTM", "011", local.strftime("%Y%m%d"), local.strftime("%H%M"), "LT" if zone else "UT")
    st.seg("N1", "ST", _text(r.get("ship_to_name"), 60))
    st.seg("N3", _text(r.get("ship_to_address1"), 55))
    region = _text(r.get("ship_to_region"), 3)
    st.seg("N4", _text(r.get("ship_to_city"), 30), region if len(region) == 2 else "",
           _text(r.get("ship_to_postal_code"), 15), _text(r.get("ship_to_country"), 3))
    # O: order
    order_hl = open_hl(ship_hl, "O")
    if r.get("channel") == "edi":
        po = r.get("channel_order_ref") or r.get("customer_po")
    else:
        po = r.get("customer_po") or r.get("channel_order_ref")
    st.seg("PRF", _ident(po, 22, f"{where}: PRF01 purchase order number"))
    # P: packs, I: items
    units = 0
    for p in s.packages:
        pw = f"{where} package {p['package_no']}"
        pack_hl = open_hl(order_hl, "P")
        st.seg("MAN", "GM", _sscc(p.get("sscc"), pw))
        st.seg("REF", "CN", _ident(p["tracking_number"], 30, f"{pw}: tracking number"))
        for c in s.package_contents(p["package_no"]):
            ln = s.line(c["line_no"])
            lw = f"{pw} line {ln['line_no']}"
            open_hl(pack_hl, "I")
            lin01 = _ident(ln.get("channel_line_ref") or ln["line_no"], 20, f"{lw}: LIN01")
            ids: list[str] = []
            buyer = _ident(ln.get("buyer_part"), 48, f"{lw}: buyer part", required=False)
            if buyer:
                ids += ["IN", buyer]
            ids += ["VN", _ident(ln["sku"], 48, f"{lw}: SKU")]
            gtin = _gtin(ln.get("upc"), lw)
            if gtin:
                ids += list(gtin)
            st.seg("LIN", lin01, *ids)
            qty = int(c["quantity"])
            units += qty
            st.seg("SN1", lin01, qty, "EA")
    st.seg("CTT", hl, units)
    st.seg("SE", st.count + 1, st02)


# ------------------------------------------------------------------------------------------------
# Shopify
# ------------------------------------------------------------------------------------------------
def shopify_fulfillment(shipment: Mapping[str, Any] | pl.DataFrame, lines: pl.DataFrame, packages: pl.DataFrame,
                        contents: pl.DataFrame | None = None, *, fulfillment_orders: Sequence[Mapping[str, Any]],
                        notify_customer: bool = True, location_id: int | None = None,
                        api_version: str = SHOPIFY_API_VERSION) -> list[ApiCall]:
    """The ``POST /admin/api/<version>/fulfillments.json`` requests confirming one Shopify shipment: one per
    package (REST fulfillments hold one tracking number each), in package order.

    ``fulfillment_orders``: the order's fulfillment orders (``GET /orders/<id>/fulfillment_orders.json``,
    the list under ``fulfillment_orders``). Each shipped line (``channel_line_ref`` = the order line item id)
    is matched to fulfillment order line items with that ``line_item_id`` (of fulfillment orders that are
    ``open`` or ``in_progress``, at ``location_id`` when given), filled in fulfillment order id order up to
    each one's ``fulfillable_quantity``. All fulfillment orders of one request must be at one location.
    """
    s = check_shipment(shipment, lines, packages, contents)
    carrier = _carrier(s.row)
    remaining: dict[tuple[int, int], int] = {}
    by_line: dict[str, list[tuple[int, int, int | None]]] = {}  # line_item_id -> [(fo id, fo line id, location)]
    for fo in sorted(fulfillment_orders, key=lambda f: int(f["id"])):
        if fo.get("status") not in ("open", "in_progress"):
            continue
        loc = fo.get("assigned_location_id")
        if location_id is not None and loc != location_id:
            continue
        for li in sorted(fo.get("line_items", []), key=lambda x: int(x["id"])):
            key = (int(fo["id"]), int(li["id"]))
            remaining[key] = int(li.get("fulfillable_quantity", li.get("quantity", 0)))
            by_line.setdefault(str(li["line_item_id"]), []).append((key[0], key[1], loc))
    calls = []
    for p in s.packages:
        pw = f"shipment {s.id} package {p['package_no']}"
        items: dict[int, dict[int, int]] = {}  # fo id -> fo line id -> quantity
        locations = set()
        for c in s.package_contents(p["package_no"]):
            ln = s.line(c["line_no"])
            ref = ln.get("channel_line_ref")
            need = int(c["quantity"])
            for fo_id, fo_line, loc in by_line.get(str(ref), []):
                take = min(need, remaining[(fo_id, fo_line)])
                if take <= 0:
                    continue
                remaining[(fo_id, fo_line)] -= take
                items.setdefault(fo_id, {})
                items[fo_id][fo_line] = items[fo_id].get(fo_line, 0) + take
                locations.add(loc)
                need -= take
                if need == 0:
                    break
            if need:
                raise OutboundError(f"{pw} line {ln['line_no']}: Shopify line item {ref!r} has {need} unit(s) more "
                                    "than its open fulfillment orders can fulfil")
        if len(locations) > 1:
            raise OutboundError(f"{pw}: its items are on fulfillment orders at several locations {sorted(locations)}; "
                                "one fulfillment covers one location")
        tracking: dict[str, Any] = {"number": _json_ident(p["tracking_number"], f"{pw}: tracking number"),
                                    "company": SHOPIFY_COMPANY[carrier]}
        if p.get("tracking_url"):
            tracking["url"] = str(p["tracking_url"])
        body = {"fulfillment": {
            "line_items_by_fulfillment_order": [
                {"fulfillment_order_id": fo_id,
                 "fulfillment_order_line_items": [{"id": li, "quantity": q} for li, q in sorted(lines_.items())]}
                for fo_id, lines_ in sorted(items.items())],
            "tracking_info": tracking,
            "notify_customer": bool(notify_customer),
        }}
        calls.append(ApiCall("POST", f"/admin/api/{api_version}/fulfillments.json", body,
                             document_id("shopify_fulfillment", (s.id, p["package_no"])), s.id, int(p["package_no"])))
    return calls


def _json_ident(v: Any, what: str) -> str:
    if v is None or str(v).strip() == "":
        raise OutboundError(f"{what}: missing")
    return str(v).strip()


# ------------------------------------------------------------------------------------------------
# Amazon
# ------------------------------------------------------------------------------------------------
def amazon_confirm_shipment(shipment: Mapping[str, Any] | pl.DataFrame, lines: pl.DataFrame,
                            packages: pl.DataFrame, contents: pl.DataFrame | None = None, *,
                            marketplace_id: str) -> list[ApiCall]:
    """The SP-API ``confirmShipment`` requests for one Amazon shipment: one per package, in package order
    (``POST /orders/v0/orders/<AmazonOrderId>/shipmentConfirmation``; the body is ``ConfirmShipmentRequest``)."""
    s = check_shipment(shipment, lines, packages, contents)
    carrier = _carrier(s.row)
    order = _json_ident(s.row.get("channel_order_ref"), f"shipment {s.id}: AmazonOrderId (channel_order_ref)")
    if not marketplace_id:
        raise OutboundError("marketplace_id is required")
    ship_date = _utc(s.row["shipped_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    calls = []
    for p in s.packages:
        pw = f"shipment {s.id} package {p['package_no']}"
        if int(p["package_no"]) <= 0:
            raise OutboundError(f"{pw}: packageReferenceId must be a positive number")
        qty: dict[str, int] = {}
        for c in s.package_contents(p["package_no"]):
            ln = s.line(c["line_no"])
            item = _json_ident(ln.get("channel_line_ref"), f"{pw} line {ln['line_no']}: OrderItemId (channel_line_ref)")
            qty[item] = qty.get(item, 0) + int(c["quantity"])
        detail: dict[str, Any] = {
            "packageReferenceId": str(int(p["package_no"])),
            "carrierCode": AMAZON_CARRIER[carrier],
            "trackingNumber": _json_ident(p["tracking_number"], f"{pw}: tracking number"),
            "shipDate": ship_date,
            "orderItems": [{"orderItemId": i, "quantity": q} for i, q in sorted(qty.items())],
        }
        if s.row.get("service"):
            detail["shippingMethod"] = str(s.row["service"])
        body = {"marketplaceId": marketplace_id, "packageDetail": detail}
        calls.append(ApiCall("POST", f"/orders/v0/orders/{order}/shipmentConfirmation", body,
                             document_id("amazon_confirm_shipment", (s.id, p["package_no"])), s.id,
                             int(p["package_no"])))
    return calls


# ------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------
MANIFEST_SCHEMA = {"carrier_id": pl.String, "warehouse_id": pl.String, "ship_date": pl.Date,
                   "shipment_count": pl.UInt32, "package_count": pl.UInt32,
                   "total_weight_kg": pl.Decimal(38, 3), "tracking_numbers": pl.List(pl.String)}


def _ship_date(dtype: pl.DataType, warehouses: list[Any], tz: str | Mapping[str, str] | None) -> pl.Expr:
    ts = pl.col("shipped_at")
    ts = ts.dt.replace_time_zone("UTC") if getattr(dtype, "time_zone", None) is None else ts
    if tz is None or not warehouses:
        return ts.dt.convert_time_zone("UTC").dt.date()
    zones = {w: _zone_of(w, tz) for w in warehouses}
    expr: Any = pl
    for w, z in sorted(zones.items(), key=lambda kv: str(kv[0])):
        expr = expr.when(pl.col("warehouse_id") == w).then(ts.dt.convert_time_zone(z).dt.date())
    return expr.otherwise(None)


def manifest(shipments: pl.DataFrame, packages: pl.DataFrame, *,
             tz: str | Mapping[str, str] | None = None) -> pl.DataFrame:
    """End-of-day manifest: one row per carrier x warehouse x ship date (UTC date, or the warehouse's local
    date with ``tz``), sorted by those keys. Every package must belong to a shipment of ``shipments``."""
    ps = packages.select("shipment_id", "package_no", "tracking_number", "gross_weight_kg")
    orphans = ps.join(shipments.select("shipment_id"), on="shipment_id", how="anti")
    if orphans.height:
        raise OutboundError(f"{orphans.height} package(s) of unknown shipments, e.g. "
                            f"{orphans['shipment_id'][0]!r}")
    bad = shipments.filter(~pl.col("carrier_id").is_in(list(CARRIERS)))
    if bad.height:
        raise OutboundError(f"shipment {bad['shipment_id'][0]}: carrier {bad['carrier_id'][0]!r} is not one of "
                            f"{', '.join(CARRIERS)}")
    if ps["gross_weight_kg"].null_count():
        raise OutboundError("a package has no gross_weight_kg")
    wdt = ps.schema["gross_weight_kg"]
    weight = pl.col("gross_weight_kg")
    if wdt.is_float():  # through text: the shortest decimal form of each float, never its binary expansion
        weight = weight.round(3).cast(pl.String).str.to_decimal(scale=3)
    weight = weight.cast(pl.Decimal(38, 3))
    ship = shipments.select("shipment_id", "carrier_id", "warehouse_id",
                            _ship_date(shipments.schema["shipped_at"], shipments["warehouse_id"].unique().to_list(),
                                       tz).alias("ship_date"))
    out = (ps.with_columns(weight.alias("w"))
           .join(ship, on="shipment_id", how="inner")
           .group_by("carrier_id", "warehouse_id", "ship_date")
           .agg(pl.col("shipment_id").n_unique().cast(pl.UInt32).alias("shipment_count"),
                pl.len().cast(pl.UInt32).alias("package_count"),
                pl.col("w").sum().cast(pl.Decimal(38, 3)).alias("total_weight_kg"),
                pl.col("tracking_number").cast(pl.String).sort().alias("tracking_numbers"))
           .sort("ship_date", "carrier_id", "warehouse_id"))
    return out.select([pl.col(c).cast(t) for c, t in MANIFEST_SCHEMA.items()])


def manifest_csv(df: pl.DataFrame) -> str:
    """The manifest as CSV (header, ``\\n`` line ends, ISO dates, weights with three decimals, tracking
    numbers separated by a space)."""
    return (df.select(list(MANIFEST_SCHEMA))
            .with_columns(pl.col("tracking_numbers").list.join(" "))
            .write_csv(line_terminator="\n"))
