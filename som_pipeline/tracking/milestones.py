"""Normalised tracking milestones, the "never move backwards" rank, and each source's codes mapped to them.

Milestones (``MILESTONES``): LABEL_CREATED < PICKED_UP < IN_TRANSIT < OUT_FOR_DELIVERY < AVAILABLE_FOR_PICKUP <
DELIVERED (``RANK``; a customer collects a parcel that was available for pickup, so DELIVERED ranks above it).
EXCEPTION has no rank: it is recorded (with a subtype from ``EXCEPTION_SUBTYPES`` when the source says which
kind, null when it does not) and never moves a shipment's status, forwards or backwards.

Informational codes: a few known codes are not a scan of the parcel at all -- an estimated delivery time
(X12 ``AG``/``X2``/``B6``/``C1``), an appointment (X12 AT703 with no AT701), Amazon's ``ORDER_PREPARING``
(before any carrier is involved). They map to milestone **null** (``INFO``): the event is accepted (the
estimate is worth keeping) but carries no milestone; status, "no scan for N hours" and the rank ignore it.
A code that is in no table is never guessed: the reader rejects the event ``UNKNOWN_MILESTONE_CODE``.

Where the tables come from
- X12 AT701 (element 1650, Shipment Status Code) and AT702 (element 1651, Shipment Status or Appointment
  Reason Code): the ASC X12 code lists of releases 004010-004050 (as published in the X12 element
  dictionary, e.g. stedi.com/edi/x12-004030/element/1650 and /x12-005010/element/1651). The milestone of
  each code is our reading of its definition (comments on the ambiguous ones). AT701 decides the milestone;
  AT702 only refines the subtype of an exception status (``SD`` + ``AO`` weather = DELAY, ``AP`` + ``A2``
  incorrect address = ADDRESS_ISSUE); on a normal status (``D1`` + ``AJ``) it is kept in the carrier code.
- EasyPost Tracker ``status`` and ``status_detail``: EasyPost's tracker documentation (statuses pre_transit,
  in_transit, out_for_delivery, delivered, available_for_pickup, return_to_sender, failure, cancelled, error,
  unknown). The status decides; an in-transit/out-for-delivery/failure status whose detail names a problem
  (``weather_delay``, ``damaged``, ``lost``, ``address_correction``...) is an EXCEPTION of that subtype.
  ``error`` (EasyPost could not track the number) and ``unknown`` carry no milestone: rejected.
- Shopify ``FulfillmentEvent.status``: the Admin REST / GraphQL ``FulfillmentEventStatus`` enum (REST sends
  lower case, GraphQL upper case; both accepted), including the newer ``buyer_action_required``,
  ``ready_for_recipient_pickup``, ``returning_to_sender``.
- Amazon ``SHIPMENT_TRACKING_MILESTONE_CHANGED`` ``status.code``: only the codes the published schema's
  example shows (ORDER_PREPARING, CARRIER_ASSIGNED, SHIPPED, OUT_FOR_DELIVERY, DELIVERED). The schema file
  (amzn/selling-partner-api-models, schemas/notifications/ShipmentTrackingMilestoneChangedNotification.json)
  has an empty ``definitions`` object, so no enum is published: other codes are rejected until they are
  known, never guessed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import polars as pl

LABEL_CREATED = "LABEL_CREATED"
PICKED_UP = "PICKED_UP"
IN_TRANSIT = "IN_TRANSIT"
OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
DELIVERED = "DELIVERED"
AVAILABLE_FOR_PICKUP = "AVAILABLE_FOR_PICKUP"
EXCEPTION = "EXCEPTION"
MILESTONES = (LABEL_CREATED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, AVAILABLE_FOR_PICKUP, EXCEPTION)

DELAY = "DELAY"
FAILED_ATTEMPT = "FAILED_ATTEMPT"
DAMAGED = "DAMAGED"
ADDRESS_ISSUE = "ADDRESS_ISSUE"
RETURN_TO_SENDER = "RETURN_TO_SENDER"
LOST = "LOST"
EXCEPTION_SUBTYPES = (DELAY, FAILED_ATTEMPT, DAMAGED, ADDRESS_ISSUE, RETURN_TO_SENDER, LOST)

INFO = None  # a known code that is information (an estimate, an appointment), not a milestone

# "never move backwards": a shipment's status is the highest-ranked milestone seen; EXCEPTION has no rank
RANK: dict[str, int] = {LABEL_CREATED: 1, PICKED_UP: 2, IN_TRANSIT: 3, OUT_FOR_DELIVERY: 4,
                        AVAILABLE_FOR_PICKUP: 5, DELIVERED: 6}


def rank(milestone: str | None) -> int | None:
    """The rank of a milestone (None for EXCEPTION, informational rows and anything unknown)."""
    return RANK.get(milestone) if milestone is not None else None


def advances(current: str | None, new: str | None) -> bool:
    """Whether ``new`` moves a shipment whose status is ``current`` forward (EXCEPTION never does)."""
    r = rank(new)
    return r is not None and (rank(current) or 0) < r


def rank_expr(col: str = "milestone") -> pl.Expr:
    """Vectorised :func:`rank` (null for EXCEPTION / informational rows)."""
    return pl.col(col).replace_strict(RANK, default=None, return_dtype=pl.Int8)


class Mapped(NamedTuple):
    milestone: str | None  # None: informational (INFO)
    subtype: str | None  # exception subtype (EXCEPTION only)
    text: str  # the code's definition (carrier_text when the source gives no text)


def _m(milestone: str | None, text: str, subtype: str | None = None) -> Mapped:
    return Mapped(milestone, subtype, text)


# ------------------------------------------------------------------------------------------------
# X12 214 AT701: Shipment Status Code (element 1650), releases 004010-004050
# ------------------------------------------------------------------------------------------------
X12_AT7_STATUS: dict[str, Mapped] = {
    "A3": _m(EXCEPTION, "Shipment Returned to Shipper", RETURN_TO_SENDER),
    "A7": _m(EXCEPTION, "Refused by Consignee", FAILED_ATTEMPT),
    "A9": _m(EXCEPTION, "Shipment Damaged", DAMAGED),
    "AF": _m(PICKED_UP, "Carrier Departed Pick-up Location with Shipment"),
    "AG": _m(INFO, "Estimated Delivery"),
    "AH": _m(EXCEPTION, "Attempted Delivery", FAILED_ATTEMPT),
    "AI": _m(EXCEPTION, "Shipment has been Reconsigned", ADDRESS_ISSUE),  # the destination changed
    "AJ": _m(OUT_FOR_DELIVERY, "Tendered for Delivery"),
    "AM": _m(IN_TRANSIT, "Loaded on Truck"),
    "AN": _m(IN_TRANSIT, "Diverted to Air Carrier"),
    "AP": _m(EXCEPTION, "Delivery Not Completed", FAILED_ATTEMPT),
    "AR": _m(IN_TRANSIT, "Rail Arrival at Destination Intermodal Ramp"),
    "AV": _m(IN_TRANSIT, "Available for Delivery"),  # at the destination terminal, not yet out
    "AW": _m(AVAILABLE_FOR_PICKUP, "Shipment Available for Pick-up"),  # 004050+
    "B6": _m(INFO, "Estimated to Arrive at Carrier Terminal"),
    "BA": _m(IN_TRANSIT, "Connecting Line or Cartage Pick-up"),
    "BC": _m(IN_TRANSIT, "Storage in Transit"),
    "C1": _m(INFO, "Estimated to Depart Terminal Location"),
    "CA": _m(EXCEPTION, "Shipment Cancelled"),  # no subtype fits: someone looks at it
    "CB": _m(DELIVERED, "Completed Shipment"),  # the final part of a partial shipment delivered
    # departs after unloading (D1 already DELIVERED) or after a failed attempt: OUT_FOR_DELIVERY never
    # claims a delivery, and the rank keeps DELIVERED when D1 came first
    "CD": _m(OUT_FOR_DELIVERY, "Carrier Departed Delivery Location"),
    "CL": _m(IN_TRANSIT, "Trailer Closed Out"),
    "CP": _m(PICKED_UP, "Completed Loading at Pick-up Location"),
    "D1": _m(DELIVERED, "Completed Unloading at Delivery Location"),
    "I1": _m(IN_TRANSIT, "In-Gate"),
    "J1": _m(IN_TRANSIT, "Delivered to Connecting Line"),
    "K1": _m(IN_TRANSIT, "Arrived at Customs"),
    "L1": _m(IN_TRANSIT, "Loading"),
    "OO": _m(LABEL_CREATED, "Paperwork Received - Did not Receive Shipment or Equipment"),
    "P1": _m(IN_TRANSIT, "Departed Terminal Location"),
    "PA": _m(EXCEPTION, "Partial Shipment"),  # only part delivered: not DELIVERED until CB/D1
    "PR": _m(EXCEPTION, "U.S. Customs Hold at In-Bond Location", DELAY),
    "R1": _m(IN_TRANSIT, "Received from Prior Carrier"),
    "RL": _m(IN_TRANSIT, "Rail Departure from Origin Intermodal Ramp"),
    "S1": _m(OUT_FOR_DELIVERY, "Trailer Spotted at Consignee's Location"),
    "SD": _m(EXCEPTION, "Shipment Delayed", DELAY),
    "X1": _m(OUT_FOR_DELIVERY, "Arrived at Delivery Location"),
    "X2": _m(INFO, "Estimated Date and/or Time of Arrival at Consignee's Location"),
    "X3": _m(LABEL_CREATED, "Arrived at Pick-up Location"),  # the truck is there, the freight not yet on it
    "X4": _m(IN_TRANSIT, "Arrived at Terminal Location"),
    "X5": _m(OUT_FOR_DELIVERY, "Arrived at Delivery Location Loading Dock"),
    "X6": _m(IN_TRANSIT, "En Route to Delivery Location"),
    "X8": _m(LABEL_CREATED, "Arrived at Pick-up Location Loading Dock"),
    "XB": _m(LABEL_CREATED, "Shipment Acknowledged"),
}
# An AT7 without AT701 carries an appointment status (AT703, element 1652): information, not a scan.
X12_APPOINTMENT_KEY = "(appointment)"
X12_APPOINTMENT = _m(INFO, "Appointment status (AT703)")

# AT702 / AT704: Shipment Status or Appointment Reason Code (element 1651). The subtype (None: no
# refinement) applies to an exception AT701 only; the text always goes into carrier_text.
X12_AT7_REASON: dict[str, tuple[str | None, str]] = {
    "NS": (None, "Normal Status"),
    "NA": (None, "Normal Appointment"),
    "A1": (FAILED_ATTEMPT, "Missed Delivery"),
    "A2": (ADDRESS_ISSUE, "Incorrect Address"),
    "A3": (None, "Indirect Delivery"),
    "A5": (None, "Unable to Locate"),
    "A6": (ADDRESS_ISSUE, "Address Corrected - Delivery Attempted"),
    "AD": (DELAY, "Customer Requested Future Delivery"),
    "AE": (None, "Restricted Articles Unacceptable"),
    "AG": (None, "Consignee Related"),
    "AH": (DELAY, "Driver Related"),
    "AI": (DELAY, "Mechanical Breakdown"),
    "AJ": (DELAY, "Other Carrier Related"),
    "AK": (DAMAGED, "Damaged, Rewrapped in Hub"),
    "AL": (DELAY, "Previous Stop"),
    "AM": (None, "Shipper Related"),
    "AN": (DELAY, "Holiday - Closed"),
    "AO": (DELAY, "Weather or Natural Disaster Related"),
    "AP": (DELAY, "Awaiting Export"),
    "AQ": (FAILED_ATTEMPT, "Recipient Unavailable - Delivery Delayed"),
    "AR": (DELAY, "Improper International Paperwork"),
    "AS": (DELAY, "Hold Due to Customs Documentation Problems"),
    "AT": (DELAY, "Unable to Contact Recipient for Broker Information"),
    "AU": (DELAY, "Civil Event Related Delay"),
    "AV": (None, "Exceeds Service Limitations"),
    "AW": (DELAY, "Past Cut-off Time"),
    "AX": (DELAY, "Insufficient Pick-up Time"),
    "AY": (DELAY, "Missed Pick-up"),
    "AZ": (None, "Alternate Carrier Delivered"),
    "B1": (FAILED_ATTEMPT, "Consignee Closed"),
    "B2": (None, "Trap for Customer"),
    "B4": (DELAY, "Held for Payment"),
    "B5": (None, "Held for Consignee"),
    "B8": (FAILED_ATTEMPT, "Improper Unloading Facility or Equipment"),
    "B9": (FAILED_ATTEMPT, "Receiving Time Restricted"),
    "BB": (DELAY, "Held per Shipper"),
    "BC": (DELAY, "Missing Documents"),
    "BD": (DELAY, "Border Clearance"),
    "BE": (DELAY, "Road Conditions"),
    "BF": (None, "Carrier Keying Error"),
    "BH": (DELAY, "Insufficient Time to Complete Delivery"),
    "BI": (None, "Cartage Agent"),
    "BJ": (None, "Customer Wanted Earlier Delivery"),
    "BK": (None, "Prearranged Appointment"),
    "BL": (DELAY, "Held for Protective Service"),
    "BM": (DELAY, "Flatcar Shortage"),
    "BN": (DELAY, "Failed to Release Billing"),
    "BO": (DELAY, "Railroad Failed to Meet Schedule"),
    "BP": (DAMAGED, "Load Shifted"),
    "BQ": (None, "Shipment Overweight"),
    "BR": (DELAY, "Train Derailment"),
    "BS": (FAILED_ATTEMPT, "Refused by Customer"),
    "BT": (RETURN_TO_SENDER, "Returned to Shipper"),
    "C1": (None, "Waiting for Customer Pick-up"),
    "C2": (DELAY, "Credit Hold"),
    "C3": (DELAY, "Suspended at Customer Request"),
    "C4": (FAILED_ATTEMPT, "Customer Vacation"),
    "C5": (FAILED_ATTEMPT, "Customer Strike"),
    "C6": (DELAY, "Waiting Shipping Instructions"),
    "C7": (DELAY, "Waiting for Customer Specified Carrier"),
    "C8": (None, "Collect on Delivery Required"),
    "C9": (FAILED_ATTEMPT, "Cash Not Available From Consignee"),
    "CA": (DELAY, "Customs (Import or Export)"),
    "CB": (None, "No Requested Arrival Date Provided by Shipper"),
    "CC": (None, "No Requested Arrival Time Provided by Shipper"),
    "D1": (DELAY, "Carrier Dispatch Error"),
    "D2": (DELAY, "Driver Not Available"),
    "F1": (DELAY, "Non-Express Clearance Delay"),
    "F2": (DELAY, "International Non-carrier Delay"),
    "HB": (DELAY, "Held Pending Appointment"),
}

# ------------------------------------------------------------------------------------------------
# EasyPost Tracker status / status_detail
# ------------------------------------------------------------------------------------------------
EASYPOST_STATUS: dict[str, Mapped] = {
    "pre_transit": _m(LABEL_CREATED, "pre_transit"),
    "in_transit": _m(IN_TRANSIT, "in_transit"),
    "out_for_delivery": _m(OUT_FOR_DELIVERY, "out_for_delivery"),
    "delivered": _m(DELIVERED, "delivered"),
    "available_for_pickup": _m(AVAILABLE_FOR_PICKUP, "available_for_pickup"),
    "return_to_sender": _m(EXCEPTION, "return_to_sender", RETURN_TO_SENDER),
    "failure": _m(EXCEPTION, "failure"),
    "cancelled": _m(EXCEPTION, "cancelled"),
}
# not mapped (rejected UNKNOWN_MILESTONE_CODE with this explanation)
EASYPOST_UNMAPPED = {
    "error": "EasyPost could not track the number (status 'error'): no milestone",
    "unknown": "the carrier's status is unknown to EasyPost (status 'unknown'): no milestone",
}
# a detail that names a problem turns in_transit / out_for_delivery / failure into an EXCEPTION of that kind
EASYPOST_EXCEPTION_DETAIL: dict[str, str] = {
    "address_correction": ADDRESS_ISSUE,
    "damaged": DAMAGED,
    "delayed": DELAY,
    "weather_delay": DELAY,
    "transit_exception": DELAY,
    "held": DELAY,
    "missorted": DELAY,
    "awaiting_information": DELAY,
    "delivery_exception": FAILED_ATTEMPT,
    "refused": FAILED_ATTEMPT,
    "lost": LOST,
    "return": RETURN_TO_SENDER,
}
_EASYPOST_DETAIL_STATUSES = ("in_transit", "out_for_delivery", "failure")

# ------------------------------------------------------------------------------------------------
# Shopify FulfillmentEvent.status (REST lower case; GraphQL upper case is lower-cased first)
# ------------------------------------------------------------------------------------------------
SHOPIFY_STATUS: dict[str, Mapped] = {
    "label_purchased": _m(LABEL_CREATED, "A shipping label has been purchased"),
    "label_printed": _m(LABEL_CREATED, "A purchased shipping label has been printed"),
    "confirmed": _m(LABEL_CREATED, "The fulfillment is confirmed"),
    "carrier_picked_up": _m(PICKED_UP, "The fulfillment has been picked up by the carrier"),
    "in_transit": _m(IN_TRANSIT, "The fulfillment is in transit"),
    "out_for_delivery": _m(OUT_FOR_DELIVERY, "The fulfillment is out for delivery"),
    "ready_for_pickup": _m(AVAILABLE_FOR_PICKUP, "The fulfillment is ready to be picked up"),
    "ready_for_recipient_pickup": _m(AVAILABLE_FOR_PICKUP, "The fulfillment is ready for the recipient to pick up"),
    "picked_up": _m(DELIVERED, "The fulfillment was successfully picked up"),  # by the customer
    "delivered": _m(DELIVERED, "The fulfillment was successfully delivered"),
    "attempted_delivery": _m(EXCEPTION, "A delivery was attempted", FAILED_ATTEMPT),
    "delayed": _m(EXCEPTION, "The fulfillment is delayed", DELAY),
    "returning_to_sender": _m(EXCEPTION, "The fulfillment is returning to the sender", RETURN_TO_SENDER),
    "buyer_action_required": _m(EXCEPTION, "The fulfillment requires action from the buyer"),
    "failure": _m(EXCEPTION, "The fulfillment request failed"),
}

# ------------------------------------------------------------------------------------------------
# Amazon tracking codes, compared as UPPER_SNAKE (:func:`amazon_key`): the SHIPMENT_TRACKING_MILESTONE_CHANGED
# status.code values of the schema's example, and the Amazon Shipping API v2 tracking EventCode values
# (ReadyForReceive, PickupDone, ...; documented with getTracking) that the same feeds carry
# ------------------------------------------------------------------------------------------------
AMAZON_STATUS: dict[str, Mapped] = {
    "ORDER_PREPARING": _m(INFO, "Order is preparing to ship"),  # before any carrier scan
    "CARRIER_ASSIGNED": _m(LABEL_CREATED, "Carrier was assigned"),
    "SHIPPED": _m(PICKED_UP, "Shipment has departed origin"),
    "OUT_FOR_DELIVERY": _m(OUT_FOR_DELIVERY, "Shipment is out for delivery"),
    "DELIVERED": _m(DELIVERED, "Shipment delivered"),
    # Amazon Shipping v2 EventCode
    "READY_FOR_RECEIVE": _m(LABEL_CREATED, "Ready for the carrier to receive"),
    "PICKUP_DONE": _m(PICKED_UP, "Picked up by the carrier"),
    "PICKUP_CANCELLED": _m(EXCEPTION, "Pickup cancelled", DELAY),
    "ARRIVED_AT_CARRIER_FACILITY": _m(IN_TRANSIT, "Arrived at a carrier facility"),
    "DEPARTED": _m(IN_TRANSIT, "Departed a carrier facility"),
    "IN_TRANSIT": _m(IN_TRANSIT, "In transit"),
    "DELIVERY_ATTEMPTED": _m(EXCEPTION, "Delivery attempted", FAILED_ATTEMPT),
    "AVAILABLE_FOR_PICKUP": _m(AVAILABLE_FOR_PICKUP, "Available for pickup"),
    "UNDELIVERABLE": _m(EXCEPTION, "Undeliverable", ADDRESS_ISSUE),
    "REJECTED": _m(EXCEPTION, "Rejected by the recipient", RETURN_TO_SENDER),
    "RETURN_INITIATED": _m(EXCEPTION, "Return to sender initiated", RETURN_TO_SENDER),
    "LOST": _m(EXCEPTION, "Lost", LOST),
    "DAMAGED": _m(EXCEPTION, "Damaged", DAMAGED),
    "DELAYED": _m(EXCEPTION, "Delayed", DELAY),
}


def amazon_key(code: str | None) -> str | None:
    """An Amazon tracking code as its mapping key: UPPER_SNAKE whether it came as ``PickupDone``,
    ``PICKUP_DONE`` or ``pickup-done``."""
    if code is None:
        return None
    c = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code.strip())
    return re.sub(r"[\s\-]+", "_", c).upper() or None

# ------------------------------------------------------------------------------------------------
# Carriers: SCACs and names as sources send them -> UPS / FEDEX / USPS / DHL (else kept as given)
# ------------------------------------------------------------------------------------------------
CARRIERS: dict[str, str] = {
    # names (compared upper case, spaces/dashes/underscores removed)
    "UPS": "UPS", "UNITEDPARCELSERVICE": "UPS", "UPSMAILINNOVATIONS": "UPS",
    "FEDEX": "FEDEX", "FEDERALEXPRESS": "FEDEX", "FEDEXGROUND": "FEDEX", "FEDEXEXPRESS": "FEDEX",
    "FEDEXSMARTPOST": "FEDEX",
    "USPS": "USPS", "USPOSTALSERVICE": "USPS", "UNITEDSTATESPOSTALSERVICE": "USPS",
    "DHL": "DHL", "DHLEXPRESS": "DHL", "DHLECOMMERCE": "DHL", "DHLECOMMERCESOLUTIONS": "DHL",
    # SCACs of the parcel networks
    "UPSN": "UPS", "FDEG": "FEDEX", "FDEN": "FEDEX", "FDE": "FEDEX", "DHLC": "DHL", "DHLG": "DHL", "DHXP": "DHL",
}


def normalise_carrier(value: str | None) -> str | None:
    """UPS / FEDEX / USPS / DHL for a name or SCAC we know; anything else as given (stripped)."""
    if value is None:
        return None
    v = value.strip()
    if not v:
        return None
    key = "".join(ch for ch in v.upper() if ch not in " -_.")
    return CARRIERS.get(key, v)


# ------------------------------------------------------------------------------------------------
# The tables as one frame, for the readers' vectorised joins
# ------------------------------------------------------------------------------------------------
def easypost_key(status: str | None, detail: str | None) -> str | None:
    """The mapping key of an EasyPost status/detail pair (see :func:`code_table`)."""
    if status is None:
        return None
    s = status.strip().lower()
    d = (detail or "").strip().lower()
    if s in _EASYPOST_DETAIL_STATUSES and d in EASYPOST_EXCEPTION_DETAIL:
        return f"{s}/{d}"
    return s


CODE_TABLE_SCHEMA = {"source": pl.String, "key": pl.String, "milestone": pl.String, "exception_subtype": pl.String,
                     "code_text": pl.String}


def code_table() -> pl.DataFrame:
    """Every mapped code: ``(source, key, milestone, exception_subtype, code_text)``.

    Keys: X12 AT701; EasyPost ``status`` or ``status/detail`` (:func:`easypost_key`); Shopify status lower case;
    Amazon ``status.code``. A row with a null milestone is an informational code."""
    rows: list[tuple[str, str, str | None, str | None, str]] = []
    rows += [("x12_214", k, m.milestone, m.subtype, m.text) for k, m in X12_AT7_STATUS.items()]
    rows.append(("x12_214", X12_APPOINTMENT_KEY, X12_APPOINTMENT.milestone, None, X12_APPOINTMENT.text))
    rows += [("easypost", k, m.milestone, m.subtype, m.text) for k, m in EASYPOST_STATUS.items()]
    rows += [("easypost", f"{s}/{d}", EXCEPTION, sub, f"{s}/{d}")
             for s in _EASYPOST_DETAIL_STATUSES for d, sub in EASYPOST_EXCEPTION_DETAIL.items()]
    rows += [("shopify", k, m.milestone, m.subtype, m.text) for k, m in SHOPIFY_STATUS.items()]
    rows += [("amazon", k, m.milestone, m.subtype, m.text) for k, m in AMAZON_STATUS.items()]
    return pl.DataFrame(rows, schema=CODE_TABLE_SCHEMA, orient="row")
