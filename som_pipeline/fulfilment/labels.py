"""Labels: carrier tracking numbers, tracking URLs, SSCC-18 and the rated cost of a package.

Pure functions over Polars frames (polars, stdlib, python-stdnum; no Dagster, no connections).

Tracking numbers (:func:`tracking_numbers`)
    Built in each carrier's published format, with its check digit, deterministically from
    ``(carrier_id, shipper_account, service, serial)``; ``serial`` is a per-carrier sequence the caller allocates
    (unique per carrier), so numbers are unique per carrier. The formats, their regular expressions, check-digit
    rules and tracking-URL templates are those of the open *tracking_number_data* repository
    (jkeen/tracking_number_data @ b79ce4bfc045, ``couriers/*.json``, MIT licence), copied into :data:`FORMATS`
    below (the tests compare them with the data files and run every published test number through
    :func:`tracking_number_product`).

    ======  ================  =====================  ===================================================  =========
    carrier service           product (data file)    layout                                               serials
    ======  ================  =====================  ===================================================  =========
    UPS     GROUND/EXPRESS/   ``ups`` (1Z, 18 chars) ``1Z`` + account (6 [A-Z0-9]) + service code (2) +   < 10^7
            AIR                                      serial (7 digits) + check (mod 10, weights 1,2 from
                                                     the left; letters count ``(ord(c) - 3) % 10``)
    FEDEX   EXPRESS, AIR      ``fedex_12``           serial (11 digits) + check (weights 3,1,7 ...,       < 10^11
                                                     sum mod 11 mod 10)
    FEDEX   GROUND            ``fedex_ground`` (15)  serial (14 digits) + check (mod 10, weights 1,3)     < 10^14
    USPS    GROUND/EXPRESS/   ``usps_impb_c`` (22)   IMpb: ``92`` + STC (3) + Mailer ID (9 digits,        < 10^7
            AIR                                      starting 9) + serial (7) + check, or ``93`` + STC +  (< 10^10)
                                                     Mailer ID (6 digits, 0-8) + serial (10) + check
                                                     (mod 10, weights 3,1 from the left)
    DHL     any               ``dhl_express`` (10)   waybill: serial (9 digits) + check (serial mod 7)    < 10^9
    ======  ================  =====================  ===================================================  =========

    Service codes (:data:`SERVICE_CODES`): UPS ``03`` Ground, ``02`` Second Day Air (EXPRESS), ``01`` Next Day Air
    (AIR); USPS service type codes (Publication 199) ``612`` Parcel Select (GROUND), ``055`` Priority Mail
    (EXPRESS), ``701`` Priority Mail Express (AIR) -- confirm them with the mailer's own STC table. FedEx and DHL
    numbers do not carry the shipper account (those carriers allocate ranges); ``shipper_account`` is ignored
    for them. UPS needs a 6-character shipper number, USPS a Mailer ID (9 digits starting with 9, or 6 digits
    starting 0-8).

SSCC-18 (:func:`sscc18`, :func:`is_valid_sscc`)
    GS1 Serial Shipping Container Code: extension digit + GS1 company prefix (7-10 digits) + serial reference
    (padded so the three make 17 digits) + GS1 mod-10 check digit (the same value as
    ``stdnum.ean.calc_check_digit``; computed here on whole columns, checked against stdnum by the tests).

Rating (:func:`rate_packages`)
    Billable weight = max(actual gross weight, dimensional weight), dimensional weight = L x W x H (cm) / divisor
    (cm^3 per kg). The default divisor, 5000 cm^3/kg, is the international (IATA) volumetric standard; UPS and
    FedEx daily rates use 139 in^3/lb, which is 5016 cm^3/kg (~5000); some contracts use 6000. A divisor can be
    set per carrier. The rate band is the smallest ``max_weight_kg`` >= billable weight (bounds inclusive) for the
    package's carrier x service x zone; above the heaviest band, the package pays the heaviest band's rate once
    per started heaviest-band weight: ``rate x ceil(billable / heaviest max_weight_kg)``. Money is exact:
    ``rated_cost`` is Decimal(18, 2), the rate times an integer (no rounding happens).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import polars as pl
from stdnum import ean

from som_pipeline.money import MONEY, mul

CARRIERS = ("UPS", "FEDEX", "USPS", "DHL")

# --------------------------------------------------------------------------------------------------------------
# Formats, copied from jkeen/tracking_number_data @ b79ce4bfc045 (couriers/*.json, MIT licence, (c) 2017 Jeff Keen).
# Only the products this module generates; the test suite checks each entry against the data files.
# --------------------------------------------------------------------------------------------------------------
FORMATS: dict[str, dict[str, Any]] = {
    "ups": {
        "carrier_id": "UPS", "courier_code": "ups", "name": "UPS",
        "regex": [
            "\\s*1\\s*Z\\s*(?<SerialNumber>",
            "(?<ShipperId>(?:[A-Z0-9]\\s*){6,6})",
            "(?<ServiceType>(?:[A-Z0-9]\\s*){2,2})",
            "(?<PackageId>(?:[A-Z0-9]\\s*){7,7}))",
            "(?<CheckDigit>[0-9]\\s*)",
        ],
        "validation": {"checksum": {"name": "mod10", "modulo": 10, "evens_multiplier": 1, "odds_multiplier": 2,
                                    "reverse": False}},
        "tracking_url": "https://wwwapps.ups.com/WebTracking/track?track=yes&trackNums=%s",
    },
    "fedex_12": {
        "carrier_id": "FEDEX", "courier_code": "fedex", "name": "FedEx Express (12)",
        "regex": "\\s*(?<SerialNumber>([0-9]\\s*){11})(?<CheckDigit>[0-9]\\s*)",
        "validation": {"checksum": {"name": "sum_product_with_weightings_and_modulo",
                                    "weightings": [3, 1, 7, 3, 1, 7, 3, 1, 7, 3, 1], "modulo1": 11, "modulo2": 10}},
        "tracking_url": "https://www.fedex.com/apps/fedextrack/?tracknumbers=%s",
    },
    "fedex_ground": {
        "carrier_id": "FEDEX", "courier_code": "fedex", "name": "FedEx Ground",
        "regex": "\\s*(?<SerialNumber>([0-9]\\s*){14})(?<CheckDigit>([0-9]\\s*))",
        "validation": {"checksum": {"name": "mod10", "modulo": 10, "evens_multiplier": 1, "odds_multiplier": 3,
                                    "reverse": False}},
        "tracking_url": "https://www.fedex.com/apps/fedextrack/?tracknumbers=%s",
    },
    "usps_impb_c": {
        "carrier_id": "USPS", "courier_code": "usps", "name": "USPS IMpb C",
        "regex": [
            "\\s*(?:(?<RoutingApplicationId>4\\s*2\\s*0\\s*)(?<DestinationZip>([0-9]\\s*){5})(?<DestinationZipPlus4>"
            "([0-9]\\s*){4}(?=([0-9]\\s*){22}(?![0-9])))?)?",
            "(?<SerialNumber>",
            "(?<ApplicationIdentifier>9\\s*2\\s*(?=([0-9]\\s*){3}9)|9\\s*3\\s*(?=([0-9]\\s*){3}[0-8])|9\\s*5\\s*)",
            "(?<ServiceType>([0-9]\\s*){3})",
            "(?=9\\s*([0-9]\\s*){8}(([0-9]\\s*){11}|([0-9]\\s*){7})[0-9]\\s*(?![0-9])",
            "|[0-8]\\s*([0-9]\\s*){5}(([0-9]\\s*){14}|([0-9]\\s*){10})[0-9]\\s*(?![0-9]))",
            "(?<ShipperId>9\\s*([0-9]\\s*){8}|[0-8]\\s*([0-9]\\s*){5})",
            "(?<PackageId>([0-9]\\s*){14}|([0-9]\\s*){11}|([0-9]\\s*){10}|([0-9]\\s*){7})",
            ")",
            "(?<CheckDigit>[0-9]\\s*)",
        ],
        "validation": {"checksum": {"name": "mod10", "modulo": 10, "evens_multiplier": 3, "odds_multiplier": 1,
                                    "reverse": False}},
        "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=%s",
    },
    "dhl_express": {
        "carrier_id": "DHL", "courier_code": "dhl", "name": "DHL Express",
        "regex": "\\s*(?<SerialNumber>([0-9]\\s*){9,10})(?<CheckDigit>([0-9]\\s*))",
        "validation": {"checksum": {"name": "mod7", "modulo": 7}},
        "tracking_url": "http://www.dhl.com/en/express/tracking.html?brand=DHL&AWB=%s",
    },
}

#: The carrier's tracking page, ``%s`` = the tracking number (from the data files; DHL's is published as http).
TRACKING_URL_TEMPLATES: dict[str, str] = {
    "UPS": FORMATS["ups"]["tracking_url"],
    "FEDEX": FORMATS["fedex_12"]["tracking_url"],
    "USPS": FORMATS["usps_impb_c"]["tracking_url"],
    "DHL": FORMATS["dhl_express"]["tracking_url"],
}

#: Service codes carried inside the number (UPS service type; USPS IMpb service type code, STC).
SERVICE_CODES: dict[str, dict[str, str]] = {
    "UPS": {"GROUND": "03", "EXPRESS": "02", "AIR": "01"},
    "USPS": {"GROUND": "612", "EXPRESS": "055", "AIR": "701"},
}

#: (carrier_id, service) -> product in :data:`FORMATS`.
PRODUCTS: dict[tuple[str, str], str] = {
    **{("UPS", s): "ups" for s in SERVICE_CODES["UPS"]},
    ("FEDEX", "GROUND"): "fedex_ground", ("FEDEX", "EXPRESS"): "fedex_12", ("FEDEX", "AIR"): "fedex_12",
    **{("USPS", s): "usps_impb_c" for s in SERVICE_CODES["USPS"]},
    ("DHL", "GROUND"): "dhl_express", ("DHL", "EXPRESS"): "dhl_express", ("DHL", "AIR"): "dhl_express",
}

_UPS_ACCOUNT = r"^[A-Z0-9]{6}$"
_USPS_MID9 = r"^9[0-9]{8}$"
_USPS_MID6 = r"^[0-8][0-9]{5}$"
#: Digits of the serial each product holds (USPS: 7 with a 9-digit Mailer ID, 10 with a 6-digit one).
SERIAL_DIGITS = {"ups": 7, "fedex_12": 11, "fedex_ground": 14, "dhl_express": 9}


# --------------------------------------------------------------------------------------------------------------
# Generation (vectorised)
# --------------------------------------------------------------------------------------------------------------
def _char_values(body: pl.Expr, n: int, letters: bool = False) -> list[pl.Expr]:
    """The value of each of the ``n`` characters of ``body`` (digits; with ``letters``, UPS's (ord - 3) % 10)."""
    out = []
    for i in range(n):
        c = body.str.slice(i, 1)
        if letters:
            out.append(c.replace_strict(_UPS_VALUES, default=None, return_dtype=pl.Int64))
        else:
            out.append(c.cast(pl.Int64, strict=False))
    return out


_UPS_VALUES = {c: (int(c) if c.isdigit() else (ord(c) - 3) % 10) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def _weighted(values: list[pl.Expr], weights: list[int]) -> pl.Expr:
    return pl.sum_horizontal([v * w for v, w in zip(values, weights, strict=True)])


def _mod10(values: list[pl.Expr], evens: int, odds: int) -> pl.Expr:
    """tracking_number_data ``mod10``: index 0, 2, ... (from the left) times ``evens``, the others times ``odds``."""
    total = _weighted(values, [evens if i % 2 == 0 else odds for i in range(len(values))])
    return ((10 - total % 10) % 10).cast(pl.String)


def _pad(serial: pl.Expr, n: int) -> pl.Expr:
    return serial.cast(pl.String).str.zfill(n)


def _fail(df: pl.DataFrame, mask: pl.Expr, what: str) -> None:
    bad = df.filter(mask)
    if bad.height:
        ex = bad.select("carrier_id", "service", "shipper_account", "serial").row(0, named=True)
        raise ValueError(f"tracking_numbers: {bad.height} package(s) with {what}; first: {ex}")


def tracking_numbers(packages: pl.DataFrame) -> pl.Series:
    """The tracking number of each package (String series ``tracking_number``, in the input order).

    ``packages``: ``carrier_id`` (UPS | FEDEX | USPS | DHL), ``service`` (GROUND | EXPRESS | AIR), ``shipper_account``
    (str; used by UPS and USPS), ``serial`` (integer, >= 0, unique per carrier, below the product's capacity: see the
    module docstring). Raises ValueError naming the first offending package for an unknown carrier or service,
    a missing / negative / too large serial, or a shipper account in the wrong format for UPS / USPS.
    """
    missing = [c for c in ("carrier_id", "service", "shipper_account", "serial") if c not in packages.columns]
    if missing:
        raise ValueError(f"tracking_numbers: missing column(s) {missing}")
    if packages.schema["serial"] not in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32,
                                         pl.UInt64):
        raise ValueError(f"tracking_numbers: serial must be an integer column, got {packages.schema['serial']}")
    df = packages.select(pl.col("carrier_id").cast(pl.String), pl.col("service").cast(pl.String),
                         pl.col("shipper_account").cast(pl.String), pl.col("serial").cast(pl.Int64))
    products = pl.DataFrame({"carrier_id": [k[0] for k in PRODUCTS], "service": [k[1] for k in PRODUCTS],
                             "_product": list(PRODUCTS.values()),
                             "_code": [SERVICE_CODES.get(c, {}).get(s, "") for c, s in PRODUCTS]})
    df = df.join(products, on=["carrier_id", "service"], how="left", maintain_order="left")

    _fail(df, ~pl.col("carrier_id").is_in(CARRIERS) | pl.col("carrier_id").is_null(),
          f"an unknown carrier_id (known: {', '.join(CARRIERS)})")
    _fail(df, pl.col("_product").is_null(),
          f"a service the carrier has no tracking-number format for (known: "
          f"{', '.join(sorted({f'{c}:{s}' for c, s in PRODUCTS}))})")
    acct = pl.col("shipper_account")
    mid9 = acct.str.contains(_USPS_MID9).fill_null(False)
    is_usps = pl.col("_product") == "usps_impb_c"
    _fail(df, (pl.col("_product") == "ups") & ~acct.str.contains(_UPS_ACCOUNT).fill_null(False),
          "a UPS shipper_account that is not 6 characters [A-Z0-9]")
    _fail(df, is_usps & ~(mid9 | acct.str.contains(_USPS_MID6).fill_null(False)),
          "a USPS shipper_account that is not a Mailer ID (9 digits starting with 9, or 6 digits starting 0-8)")
    width = (pl.when(is_usps).then(pl.when(mid9).then(7).otherwise(10))
             .otherwise(pl.col("_product").replace_strict(SERIAL_DIGITS, default=0, return_dtype=pl.Int64)))
    _fail(df, pl.col("serial").is_null() | (pl.col("serial") < 0)
          | (pl.col("serial") >= pl.lit(10, pl.Int64).pow(width.cast(pl.Int64))),
          "a serial that is missing, negative or too large for the format (UPS < 10^7, FedEx Express < 10^11, "
          "FedEx Ground < 10^14, USPS < 10^7 (9-digit Mailer ID) or 10^10, DHL < 10^9)")

    product, serial = pl.col("_product"), pl.col("serial")
    ups_body = pl.concat_str([acct, pl.col("_code"), _pad(serial, 7)])
    f12_body = _pad(serial, 11)
    fg_body = _pad(serial, 14)
    usps_body = pl.when(mid9).then(pl.concat_str([pl.lit("92"), pl.col("_code"), acct, _pad(serial, 7)])) \
        .otherwise(pl.concat_str([pl.lit("93"), pl.col("_code"), acct, _pad(serial, 10)]))
    dhl_body = _pad(serial, 9)
    f12 = FORMATS["fedex_12"]["validation"]["checksum"]
    number = (
        pl.when(product == "ups")
        .then(pl.concat_str([pl.lit("1Z"), ups_body, _mod10(_char_values(ups_body, 15, letters=True), 1, 2)]))
        .when(product == "fedex_12")
        .then(pl.concat_str([f12_body, (_weighted(_char_values(f12_body, 11), f12["weightings"])
                                        % f12["modulo1"] % f12["modulo2"]).cast(pl.String)]))
        .when(product == "fedex_ground")
        .then(pl.concat_str([fg_body, _mod10(_char_values(fg_body, 14), 1, 3)]))
        .when(product == "usps_impb_c")
        .then(pl.concat_str([usps_body, _mod10(_char_values(usps_body, 21), 3, 1)]))
        .when(product == "dhl_express")
        .then(pl.concat_str([dhl_body, (serial % 7).cast(pl.String)]))
    )
    return df.select(number.alias("tracking_number")).to_series()


def tracking_url(carrier_id: str | pl.Expr, number: str | pl.Expr) -> pl.Expr:
    """Expression: the carrier's tracking page for ``number`` (column names or expressions). Whitespace in the
    number is removed; an unknown carrier gives null."""
    c = pl.col(carrier_id) if isinstance(carrier_id, str) else carrier_id
    n = pl.col(number) if isinstance(number, str) else number
    pre = {k: t.split("%s", 1)[0] for k, t in TRACKING_URL_TEMPLATES.items()}
    post = {k: t.split("%s", 1)[1] for k, t in TRACKING_URL_TEMPLATES.items()}
    return pl.concat_str([c.cast(pl.String).replace_strict(pre, default=None, return_dtype=pl.String),
                          n.cast(pl.String).str.replace_all(r"\s", ""),
                          c.cast(pl.String).replace_strict(post, default=None, return_dtype=pl.String)])


# --------------------------------------------------------------------------------------------------------------
# Validation: an interpreter of the data files' rules (regex + checksum), independent of the generator above
# --------------------------------------------------------------------------------------------------------------
def _python_regex(regex: str | list[str]) -> re.Pattern[str]:
    """The data files' PCRE (a string or a list of parts) as a Python pattern: ``(?<Name>`` -> ``(?P<Name>``."""
    return _compiled("".join(regex) if isinstance(regex, list) else regex)


@functools.lru_cache(maxsize=256)
def _compiled(pcre: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pcre))


def checksum_passes(spec: Mapping[str, Any], serial: str, check_digit: str, courier_code: str = "") -> bool:
    """Whether ``check_digit`` is right for ``serial`` under a data-file ``validation.checksum`` spec
    (mod10, mod7, sum_product_with_weightings_and_modulo, s10). UPS maps letters to ``(ord(c) - 3) % 10``."""
    if not check_digit.isdigit():
        return False
    if courier_code == "ups":
        if not all(c in _UPS_VALUES for c in serial):
            return False
        digits = [_UPS_VALUES[c] for c in serial]
    else:
        if not serial.isdigit():
            return False
        digits = [int(c) for c in serial]
    check = int(check_digit)
    name = spec.get("name")
    if name == "mod10":
        seq = digits[::-1] if spec.get("reverse") else digits
        evens, odds = spec.get("evens_multiplier") or 1, spec.get("odds_multiplier") or 1
        total = sum(d * (evens if i % 2 == 0 else odds) for i, d in enumerate(seq))
        return (10 - total % spec.get("modulo", 10)) % 10 == check
    if name == "mod7":
        return int(serial) % spec.get("modulo", 7) == check
    if name == "sum_product_with_weightings_and_modulo":
        w = spec["weightings"]
        if len(digits) != len(w):
            return False
        return sum(d * x for d, x in zip(digits, w, strict=True)) % spec["modulo1"] % spec["modulo2"] == check
    if name == "s10":
        r = sum(d * x for d, x in zip(digits, [8, 6, 4, 2, 3, 5, 9, 7], strict=False)) % 11
        return {0: 5, 1: 0}.get(r, 11 - r) == check
    raise ValueError(f"unknown checksum rule {name!r}")


def format_accepts(fmt: Mapping[str, Any], number: str) -> bool:
    """Whether ``number`` matches a data-file tracking-number entry: its regex (whole string) and its checksum
    (after ``serial_number_format.prepend_if``). An entry without a checksum accepts any match."""
    m = _python_regex(fmt["regex"]).fullmatch(number)
    if not m:
        return False
    validation = fmt.get("validation") or {}
    spec = validation.get("checksum")
    if not spec:
        return True
    groups = m.groupdict()
    serial = re.sub(r"\s", "", groups.get("SerialNumber") or "")
    check = re.sub(r"\s", "", groups.get("CheckDigit") or "")
    if not serial or not check:
        return False
    prepend = (validation.get("serial_number_format") or {}).get("prepend_if")
    if prepend and _python_regex(prepend["matches_regex"]).match(serial):
        serial = prepend["content"] + serial
    return checksum_passes(spec, serial, check, fmt.get("courier_code", ""))


def tracking_number_product(number: str, carrier_id: str | None = None) -> str | None:
    """The product (a key of :data:`FORMATS`) whose format and check digit ``number`` satisfies, optionally only
    among ``carrier_id``'s products; None when none does."""
    for pid, fmt in FORMATS.items():
        if (carrier_id is None or fmt["carrier_id"] == carrier_id) and format_accepts(fmt, number):
            return pid
    return None


def is_valid_tracking_number(carrier_id: str, number: str) -> bool:
    """Whether ``number`` is a well-formed ``carrier_id`` tracking number with a correct check digit."""
    return tracking_number_product(number, carrier_id) is not None


# --------------------------------------------------------------------------------------------------------------
# SSCC-18
# --------------------------------------------------------------------------------------------------------------
def sscc18(extension_digit: int, company_prefix: str, serial: pl.Series) -> pl.Series:
    """SSCC-18 of each serial reference (String series ``sscc``): extension digit (0-9) + GS1 company prefix
    (7-10 digits) + serial reference zero-padded to ``16 - len(prefix)`` digits + GS1 mod-10 check digit.

    Raises ValueError for an extension digit outside 0-9, a prefix that is not 7-10 digits, or a serial that is
    not an integer series, is null, negative, or does not fit its ``16 - len(prefix)`` digits."""
    if isinstance(extension_digit, bool) or not isinstance(extension_digit, int) or not 0 <= extension_digit <= 9:
        raise ValueError(f"sscc18: extension digit must be an integer 0-9, got {extension_digit!r}")
    if not isinstance(company_prefix, str) or not re.fullmatch(r"[0-9]{7,10}", company_prefix):
        raise ValueError(f"sscc18: GS1 company prefix must be 7 to 10 digits, got {company_prefix!r}")
    if not serial.dtype.is_integer():
        raise ValueError(f"sscc18: serial must be an integer series, got {serial.dtype}")
    width = 16 - len(company_prefix)
    s = serial.cast(pl.Int64)
    bad = s.is_null() | (s < 0) | (s >= 10**width)
    if bad.any():
        first = s.filter(bad).to_list()[0]
        raise ValueError(f"sscc18: {int(bad.sum())} serial reference(s) missing, negative or longer than "
                         f"{width} digits (prefix {company_prefix}); first: {first}")
    body = pl.concat_str([pl.lit(f"{extension_digit}{company_prefix}"), _pad(pl.col("s"), width)])
    # GS1: weights 3, 1, 3, ... from the rightmost data digit; 17 data digits, so 3 at even indexes from the left.
    return (pl.DataFrame({"s": s})
            .select(pl.concat_str([body, _mod10(_char_values(body, 17), 3, 1)]).alias("sscc"))
            .to_series())


def is_valid_sscc(s: str) -> bool:
    """Whether ``s`` is 18 digits ending in the GS1 check digit of the first 17 (checked with stdnum)."""
    return (isinstance(s, str) and re.fullmatch(r"[0-9]{18}", s) is not None
            and ean.calc_check_digit(s[:17]) == s[17])


# --------------------------------------------------------------------------------------------------------------
# Rating
# --------------------------------------------------------------------------------------------------------------
#: Default dimensional-weight divisor, cm^3 per kg (IATA; UPS/FedEx 139 in^3/lb = 5016 cm^3/kg).
DIM_DIVISOR_CM3_PER_KG = 5000
_KEYS = ["carrier_id", "service", "zone"]


def rate_packages(packages: pl.DataFrame, rates: pl.DataFrame,
                  dim_divisor_cm3_per_kg: Mapping[str, int] | int = DIM_DIVISOR_CM3_PER_KG) -> pl.DataFrame:
    """``packages`` with the rating columns added, in the input order.

    ``packages``: ``carrier_id, service, zone, length_cm, width_cm, height_cm, gross_weight_kg``.
    ``rates``: ``ref.carrier_rates`` (``carrier_id, service, zone, max_weight_kg, rate`` Decimal with <= 2
    places, ``currency``). ``dim_divisor_cm3_per_kg``: one divisor, or one per carrier_id (carriers not named
    use :data:`DIM_DIVISOR_CM3_PER_KG`).

    Added: ``dim_weight_kg`` (L x W x H / divisor, rounded to 1e-6 kg to drop float noise), ``billable_weight_kg``
    (the larger of it and the gross weight), ``rate_band_kg`` (the band used: the smallest max_weight_kg >=
    billable, inclusive; the heaviest band above all bands), ``rate_multiple`` (1, or ceil(billable / heaviest
    band) above all bands), ``rated_cost`` (Decimal(18, 2): band rate x rate_multiple, exact), ``rate_currency``
    and ``rate_problem`` (null when rated; else why not: dimensions or weight missing / not positive, no rate for
    the carrier x service x zone, or a null rate). Unrated packages have null ``rated_cost``: the caller flags them.
    """
    need_p = _KEYS + ["length_cm", "width_cm", "height_cm", "gross_weight_kg"]
    need_r = _KEYS + ["max_weight_kg", "rate", "currency"]
    for name, frame, need in (("packages", packages, need_p), ("rates", rates, need_r)):
        miss = [c for c in need if c not in frame.columns]
        if miss:
            raise ValueError(f"rate_packages: {name} lacks column(s) {miss}")
    rate_t = rates.schema["rate"]
    if not isinstance(rate_t, pl.Decimal) or (rate_t.scale or 0) > 2:
        raise ValueError(f"rate_packages: rates.rate must be Decimal with at most 2 places (exact money), "
                         f"got {rate_t}")
    if isinstance(dim_divisor_cm3_per_kg, Mapping):
        divisors = {str(k): v for k, v in dim_divisor_cm3_per_kg.items()}
        default = DIM_DIVISOR_CM3_PER_KG
    else:
        divisors, default = {}, dim_divisor_cm3_per_kg
    for v in [*divisors.values(), default]:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"rate_packages: a dimensional divisor must be a positive integer (cm^3/kg), got {v!r}")

    carrier = pl.col("carrier_id").cast(pl.String)
    divisor = carrier.replace_strict(divisors, default=default, return_dtype=pl.Int64) if divisors else pl.lit(default)
    dims = [pl.col(c).cast(pl.Float64) for c in ("length_cm", "width_cm", "height_cm")]
    gross = pl.col("gross_weight_kg").cast(pl.Float64)
    measured = pl.all_horizontal([(d > 0).fill_null(False) for d in dims]) & (gross > 0).fill_null(False)
    p = (packages.select(carrier.alias("carrier_id"), pl.col("service").cast(pl.String),
                         pl.col("zone").cast(pl.Int64), (dims[0] * dims[1] * dims[2]).alias("_vol"), gross.alias("_g"),
                         measured.alias("_measured"), divisor.alias("_div"))
         .with_row_index("_row")
         .with_columns(pl.when("_measured").then((pl.col("_vol") / pl.col("_div")).round(6)).alias("dim_weight_kg"))
         .with_columns(pl.when("_measured").then(pl.max_horizontal("_g", "dim_weight_kg"))
                       .alias("billable_weight_kg")))

    r = rates.select(pl.col("carrier_id").cast(pl.String), pl.col("service").cast(pl.String),
                     pl.col("zone").cast(pl.Int64), pl.col("max_weight_kg").cast(pl.Float64).alias("_band"),
                     pl.col("rate").cast(MONEY).alias("_rate"), pl.col("currency").cast(pl.String).alias("_cur"))
    heaviest = (r.sort("_band").group_by(_KEYS)
                .agg(pl.col("_band").last().alias("_top_band"), pl.col("_rate").last().alias("_top_rate"),
                     pl.col("_cur").last().alias("_top_cur")))
    banded = (p.filter(pl.col("billable_weight_kg").is_not_null()).sort("billable_weight_kg")
              .join_asof(r.sort("_band"), left_on="billable_weight_kg", right_on="_band", by=_KEYS,
                         strategy="forward", check_sortedness=False)
              .select("_row", "_band", "_rate", "_cur"))
    out = (p.join(banded, on="_row", how="left").join(heaviest, on=_KEYS, how="left", nulls_equal=False)
           .sort("_row"))
    within = pl.col("_band").is_not_null()
    has_rates = pl.col("_top_band").is_not_null()
    multiple = (pl.when(within).then(1)
                .when(has_rates).then((pl.col("billable_weight_kg") / pl.col("_top_band")).round(9).ceil())
                .cast(pl.Int64))
    rate = pl.when(within).then("_rate").otherwise("_top_rate")
    out = out.with_columns(
        pl.when(pl.col("_measured") & has_rates).then(pl.coalesce("_band", "_top_band")).alias("rate_band_kg"),
        pl.when(pl.col("_measured") & has_rates).then(multiple).alias("rate_multiple"),
        pl.when(pl.col("_measured") & has_rates).then(pl.when(within).then("_cur").otherwise("_top_cur"))
        .alias("rate_currency"),
    ).with_columns(
        mul(rate, 2, pl.col("rate_multiple"), 0).cast(MONEY).alias("rated_cost"),
        pl.when(~pl.col("_measured"))
        .then(pl.lit("dimensions or gross weight missing or not positive"))
        .when(~has_rates)
        .then(pl.format("no rate for {} {} zone {}", *[pl.col(k).cast(pl.String).fill_null("(none)") for k in _KEYS]))
        .when(rate.is_null())
        .then(pl.format("null rate in the {} kg band", pl.col("rate_band_kg")))
        .alias("rate_problem"),
    )
    added = ["dim_weight_kg", "billable_weight_kg", "rate_band_kg", "rate_multiple", "rated_cost", "rate_currency",
             "rate_problem"]
    return packages.with_columns(out.select(added))
