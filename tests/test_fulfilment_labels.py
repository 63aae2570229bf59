"""Labels: tracking numbers (checked by the tracking-numbers package and by our reading of the carriers' published
rules), tracking URLs, SSCC-18 (checked with python-stdnum) and package rating with dimensional weight.

Fixtures: tests/fixtures/tracking/tracking_number_data_*.json (jkeen/tracking_number_data, MIT; see the README
there)."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import tracking_numbers as tn
from stdnum import ean, gs1_128

from som_pipeline.fulfilment import labels as L

DATA = Path(__file__).parent / "fixtures" / "tracking"
ENTRIES = [(c, e) for c in ("ups", "fedex", "usps", "dhl")
           for e in json.loads((DATA / f"tracking_number_data_{c}.json").read_text())["tracking_numbers"]]

UPS_ACCT, USPS_MID9, USPS_MID6 = "X8V92A", "912345678", "123456"

# (carrier, service, account, our product, tracking-numbers' courier code and product name, length)
CASES = [
    ("UPS", "GROUND", UPS_ACCT, "ups", "ups", "UPS", 18),
    ("UPS", "EXPRESS", UPS_ACCT, "ups", "ups", "UPS", 18),
    ("UPS", "AIR", "1234AB", "ups", "ups", "UPS", 18),
    ("FEDEX", "GROUND", None, "fedex_ground", "fedex", "FedEx Ground", 15),
    ("FEDEX", "EXPRESS", None, "fedex_12", "fedex", "FedEx Express (12)", 12),
    ("FEDEX", "AIR", "ignored", "fedex_12", "fedex", "FedEx Express (12)", 12),
    ("USPS", "GROUND", USPS_MID9, "usps_impb_c", "usps", "USPS 91", 22),
    ("USPS", "EXPRESS", USPS_MID6, "usps_impb_c", "usps", "USPS 91", 22),
    ("USPS", "AIR", USPS_MID9, "usps_impb_c", "usps", "USPS 91", 22),
    ("DHL", "EXPRESS", None, "dhl_express", "dhl", "DHL Express", 10),
    ("DHL", "GROUND", None, "dhl_express", "dhl", "DHL Express", 10),
]
CAPACITY = {"ups": 10**7, "fedex_12": 10**11, "fedex_ground": 10**14, "dhl_express": 10**9}


def _capacity(product: str, account: str | None) -> int:
    if product == "usps_impb_c":
        return 10**7 if account == USPS_MID9 else 10**10
    return CAPACITY[product]


def _serials(cap: int, n: int = 2000) -> list[int]:
    rng = random.Random(cap)
    edge = [0, 1, 2, 9, 10, cap // 2, cap - 2, cap - 1]
    return list(dict.fromkeys(edge + list(range(3, 600)) + rng.sample(range(cap), n)))


def _frame(carrier, service, account, serials) -> pl.DataFrame:
    return pl.DataFrame({"carrier_id": carrier, "service": service, "shipper_account": account,
                         "serial": serials}, schema={"carrier_id": pl.String, "service": pl.String,
                                                     "shipper_account": pl.String, "serial": pl.Int64})


# ---- the formats we embed are the data files' --------------------------------------------------------------------
@pytest.mark.parametrize("pid", sorted(L.FORMATS))
def test_embedded_formats_are_the_published_ones(pid):
    fmt = L.FORMATS[pid]
    published = [e for c, e in ENTRIES if c == fmt["courier_code"] and e["name"] == fmt["name"]]
    assert len(published) == 1
    e = published[0]
    for key in ("regex", "validation", "tracking_url"):
        assert fmt[key] == e[key], (pid, key)


def test_rule_interpreter_accepts_every_published_valid_number_and_rejects_every_invalid_one():
    checked = 0
    for courier, e in ENTRIES:
        fmt = {**e, "courier_code": courier}
        for number in e["test_numbers"]["valid"]:
            assert L.format_accepts(fmt, number), (e["name"], number)
            checked += 1
        for number in e["test_numbers"]["invalid"]:
            assert not L.format_accepts(fmt, number), (e["name"], number)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("pid", sorted(L.FORMATS))
def test_published_valid_numbers_pass_our_validator(pid):
    fmt = L.FORMATS[pid]
    e = next(e for c, e in ENTRIES if c == fmt["courier_code"] and e["name"] == fmt["name"])
    for number in e["test_numbers"]["valid"]:
        assert L.tracking_number_product(number, fmt["carrier_id"]) is not None, number
        assert L.is_valid_tracking_number(fmt["carrier_id"], number)
    for number in e["test_numbers"]["invalid"]:
        assert L.tracking_number_product(number, fmt["carrier_id"]) != pid, number


def test_checksum_catches_known_bad_check_digits():
    assert L.is_valid_tracking_number("UPS", "1Z5R89390357567127")
    assert not L.is_valid_tracking_number("UPS", "1Z5R89390357567128")
    assert L.is_valid_tracking_number("FEDEX", "986578788855")
    assert not L.is_valid_tracking_number("FEDEX", "996578788855")
    assert L.is_valid_tracking_number("DHL", "3318810025")
    assert not L.is_valid_tracking_number("DHL", "3318810034")
    assert not L.is_valid_tracking_number("DHL", "986578788855")  # a FedEx number is not DHL's
    with pytest.raises(ValueError, match="unknown checksum"):
        L.checksum_passes({"name": "luhn37"}, "123", "4")


# ---- generated numbers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("carrier,service,account,pid,courier,product,length", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_generated_numbers_are_recognised_by_both_validators(carrier, service, account, pid, courier, product, length):
    serials = _serials(_capacity(pid, account))
    numbers = L.tracking_numbers(_frame(carrier, service, account, serials)).to_list()
    assert len(numbers) == len(serials) >= 2000
    assert len(set(numbers)) == len(numbers)  # unique across serials
    for n in numbers:
        assert len(n) == length, n
        t = tn.get_tracking_number(n)
        assert t is not None, n
        assert (t.courier.code, t.product.name, t.validation_errors) == (courier, product, []), n
        assert L.tracking_number_product(n, carrier) == pid, n
        assert L.tracking_number_product(n) == pid, n  # no other embedded format claims it


def test_layouts_carry_account_service_and_serial():
    df = pl.DataFrame({"carrier_id": ["UPS", "UPS", "USPS", "USPS", "FEDEX", "FEDEX", "DHL"],
                       "service": ["GROUND", "AIR", "GROUND", "EXPRESS", "GROUND", "EXPRESS", "EXPRESS"],
                       "shipper_account": [UPS_ACCT, UPS_ACCT, USPS_MID9, USPS_MID6, None, None, None],
                       "serial": [1234567, 42, 7654321, 42, 42, 42, 123456789]})
    got = L.tracking_numbers(df).to_list()
    assert got[0][:17] == "1Z" + UPS_ACCT + "03" + "1234567"
    assert got[1][:17] == "1Z" + UPS_ACCT + "01" + "0000042"
    assert got[2][:21] == "92" + "612" + USPS_MID9 + "7654321"
    assert got[3][:21] == "93" + "055" + USPS_MID6 + "0000000042"
    assert got[4][:14] == "00000000000042" and got[5][:11] == "00000000042"
    assert got[6] == "123456789" + str(123456789 % 7)
    # UPS worked by hand: 1Z X8V92A 03 1234567: values X=5 8 V=3 9 2 A=2 0 3 1 2 3 4 5 6 7, weights 1,2,...
    vals = [5, 8, 3, 9, 2, 2, 0, 3, 1, 2, 3, 4, 5, 6, 7]
    total = sum(v * (1 if i % 2 == 0 else 2) for i, v in enumerate(vals))
    assert got[0][-1] == str((10 - total % 10) % 10)


def test_generation_is_deterministic_and_follows_the_input_order():
    rows = [(c, s, a, i) for i, (c, s, a, *_) in enumerate(CASES * 30)]
    df = pl.DataFrame(rows, schema=["carrier_id", "service", "shipper_account", "serial"], orient="row")
    first = L.tracking_numbers(df)
    assert first.name == "tracking_number" and first.len() == df.height and first.null_count() == 0
    assert L.tracking_numbers(df).equals(first)
    shuffled = df.with_columns(first).sample(fraction=1.0, shuffle=True, seed=7)
    assert L.tracking_numbers(shuffled.drop("tracking_number")).equals(shuffled["tracking_number"])
    assert first.n_unique() == first.len()


@pytest.mark.parametrize("carrier,service,account,pid", [c[:4] for c in CASES[::2]])
def test_a_changed_digit_fails_our_validator(carrier, service, account, pid):
    numbers = L.tracking_numbers(_frame(carrier, service, account, _serials(_capacity(pid, account), 200))).to_list()
    caught = total = 0
    for n in numbers:
        wrong_check = n[:-1] + str((int(n[-1]) + 1) % 10)
        assert not L.is_valid_tracking_number(carrier, wrong_check), wrong_check
        for i, ch in enumerate(n[:-1]):
            if ch.isdigit():
                flipped = n[:i] + str((int(ch) + 1) % 10) + n[i + 1:]
                total += 1
                caught += not L.is_valid_tracking_number(carrier, flipped)
    if pid == "fedex_12":
        # mod 11 then mod 10 folds a remainder of 10 onto 0: a few one-digit changes keep the check digit.
        assert caught / total > 0.85
    else:
        assert caught == total  # weights 1/2/3 and place values mod 7 are all prime to the modulus


def test_bad_input_is_refused_with_a_clear_message():
    ok = _frame("UPS", "GROUND", UPS_ACCT, [1])
    with pytest.raises(ValueError, match="unknown carrier_id"):
        L.tracking_numbers(ok.with_columns(carrier_id=pl.lit("ROYALMAIL")))
    with pytest.raises(ValueError, match="unknown carrier_id"):
        L.tracking_numbers(ok.with_columns(carrier_id=pl.lit(None, pl.String)))
    with pytest.raises(ValueError, match="service"):
        L.tracking_numbers(ok.with_columns(service=pl.lit("SEA")))
    with pytest.raises(ValueError, match="UPS shipper_account"):
        L.tracking_numbers(ok.with_columns(shipper_account=pl.lit("x8v92a")))
    with pytest.raises(ValueError, match="USPS shipper_account"):
        L.tracking_numbers(_frame("USPS", "GROUND", "812345678", [1]))  # 9 digits must start with 9
    with pytest.raises(ValueError, match="serial"):
        L.tracking_numbers(ok.with_columns(serial=pl.lit(10**7, pl.Int64)))
    with pytest.raises(ValueError, match="serial"):
        L.tracking_numbers(ok.with_columns(serial=pl.lit(-1, pl.Int64)))
    with pytest.raises(ValueError, match="serial"):
        L.tracking_numbers(_frame("DHL", "EXPRESS", None, [None]))
    with pytest.raises(ValueError, match="integer"):
        L.tracking_numbers(ok.with_columns(serial=pl.lit("1")))
    with pytest.raises(ValueError, match="missing column"):
        L.tracking_numbers(ok.drop("serial"))
    assert L.tracking_numbers(_frame("DHL", "EXPRESS", None, [10**9 - 1])).item() == "999999999" + str(
        (10**9 - 1) % 7)


def test_tracking_url_per_carrier():
    df = pl.DataFrame({"c": ["UPS", "FEDEX", "USPS", "DHL", "TNT"],
                       "n": ["1Z5R89390357567127", "9865 7878 8855", "9261290123456700000074", "3318810025", "1"]})
    got = df.select(L.tracking_url("c", "n")).to_series().to_list()
    assert got == ["https://wwwapps.ups.com/WebTracking/track?track=yes&trackNums=1Z5R89390357567127",
                   "https://www.fedex.com/apps/fedextrack/?tracknumbers=986578788855",
                   "https://tools.usps.com/go/TrackConfirmAction?tLabels=9261290123456700000074",
                   "http://www.dhl.com/en/express/tracking.html?brand=DHL&AWB=3318810025",
                   None]
    # the templates are the published ones
    for carrier, template in L.TRACKING_URL_TEMPLATES.items():
        assert template in {e.get("tracking_url") for _, e in ENTRIES}, carrier


# ---- SSCC-18 -------------------------------------------------------------------------------------------------------
def test_sscc_matches_the_gs1_example():
    # GS1 General Specifications' example: (00) 1 0614141 123456789 7
    assert L.sscc18(1, "0614141", pl.Series([123456789])).to_list() == ["106141411234567897"]
    assert ean.calc_check_digit("10614141123456789") == "7"
    got = L.sscc18(0, "0614141", pl.Series([123456789])).item()
    assert got == "00614141123456789" + ean.calc_check_digit("00614141123456789")
    assert L.is_valid_sscc("106141411234567897")
    assert not L.is_valid_sscc("106141411234567898")
    assert not L.is_valid_sscc("10614141123456789")
    assert not L.is_valid_sscc("(00)106141411234567897")


@pytest.mark.parametrize("prefix", ["0614141", "06141411", "061414112", "0614141123"])
def test_sscc_check_digit_agrees_with_stdnum(prefix):
    width = 16 - len(prefix)
    rng = random.Random(len(prefix))
    serials = [0, 1, 10**width - 1] + rng.sample(range(10**width), 3000)
    got = L.sscc18(3, prefix, pl.Series(serials)).to_list()
    assert len(set(got)) == len(got)
    for s, code in zip(serials, got, strict=True):
        body = f"3{prefix}{s:0{width}d}"
        assert len(code) == 18 and code == body + ean.calc_check_digit(body)
        assert L.is_valid_sscc(code)
    assert gs1_128.validate(f"(00){got[-1]}") == f"00{got[-1]}"


def test_sscc_refuses_bad_input():
    s = pl.Series([1])
    for prefix in ("061414", "06141411234", "06141A1", 614141):
        with pytest.raises(ValueError, match="company prefix"):
            L.sscc18(0, prefix, s)  # type: ignore[arg-type]
    for ext in (-1, 10, True, "1"):
        with pytest.raises(ValueError, match="extension digit"):
            L.sscc18(ext, "0614141", s)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="9 digits"):
        L.sscc18(0, "0614141", pl.Series([10**9]))
    with pytest.raises(ValueError, match="6 digits"):
        L.sscc18(0, "0614141123", pl.Series([5, 10**6]))
    with pytest.raises(ValueError, match="serial reference"):
        L.sscc18(0, "0614141", pl.Series([1, None]))
    with pytest.raises(ValueError, match="integer"):
        L.sscc18(0, "0614141", pl.Series(["1"]))


# ---- rating ---------------------------------------------------------------------------------------------------------
def _rates() -> pl.DataFrame:
    rows = []
    for carrier, service, zone, bands in (("UPS", "GROUND", 4, [(1, "7.90"), (5, "11.40"), (10, "16.80"),
                                                                 (30, "34.50"), (70, "68.00")]),
                                          ("FEDEX", "EXPRESS", 2, [(5, "20.05"), (10, "30.10")])):
        for max_kg, rate in bands:
            rows.append({"carrier_id": carrier, "service": service, "zone": zone, "max_weight_kg": float(max_kg),
                         "rate": Decimal(rate), "currency": "USD", "transit_days": 3})
    return pl.DataFrame(rows, schema={"carrier_id": pl.String, "service": pl.String, "zone": pl.Int32,
                                      "max_weight_kg": pl.Float64, "rate": pl.Decimal(18, 2), "currency": pl.String,
                                      "transit_days": pl.Int64})


def _pkgs(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"package_id": pl.String, "carrier_id": pl.String, "service": pl.String,
                                      "zone": pl.Int64, "length_cm": pl.Float64, "width_cm": pl.Float64,
                                      "height_cm": pl.Float64, "gross_weight_kg": pl.Float64}, orient="row")


def test_rating_dimensional_vs_actual_weight_and_inclusive_bands():
    p = _pkgs([
        ("big-light", "UPS", "GROUND", 4, 60.0, 40.0, 40.0, 2.0),    # 96000 cm3 / 5000 = 19.2 kg > 2 kg
        ("small-heavy", "UPS", "GROUND", 4, 20.0, 10.0, 10.0, 8.0),  # 0.4 kg dim < 8 kg actual
        ("at-5", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 5.0),         # exactly on a band bound: that band
        ("just-over-5", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 5.001),
        ("dim-at-10", "UPS", "GROUND", 4, 50.0, 40.0, 25.0, 1.0),   # 50000 / 5000 = 10.0 exactly
        ("tiny", "FEDEX", "EXPRESS", 2, 5.0, 5.0, 5.0, 0.1),
    ])
    out = L.rate_packages(p, _rates())
    assert out.columns[: p.width] == p.columns and out.height == p.height
    assert out["package_id"].to_list() == p["package_id"].to_list()
    r = {row["package_id"]: row for row in out.iter_rows(named=True)}
    assert r["big-light"]["dim_weight_kg"] == pytest.approx(19.2)
    assert r["big-light"]["billable_weight_kg"] == pytest.approx(19.2)
    assert (r["big-light"]["rate_band_kg"], r["big-light"]["rated_cost"]) == (30.0, Decimal("34.50"))
    assert r["small-heavy"]["billable_weight_kg"] == 8.0
    assert (r["small-heavy"]["rate_band_kg"], r["small-heavy"]["rated_cost"]) == (10.0, Decimal("16.80"))
    assert (r["at-5"]["rate_band_kg"], r["at-5"]["rated_cost"]) == (5.0, Decimal("11.40"))
    assert (r["just-over-5"]["rate_band_kg"], r["just-over-5"]["rated_cost"]) == (10.0, Decimal("16.80"))
    assert (r["dim-at-10"]["billable_weight_kg"], r["dim-at-10"]["rate_band_kg"]) == (10.0, 10.0)
    assert (r["tiny"]["rate_band_kg"], r["tiny"]["rated_cost"]) == (5.0, Decimal("20.05"))
    assert all(row["rate_problem"] is None and row["rate_multiple"] == 1 and row["rate_currency"] == "USD"
               for row in r.values())
    assert out.schema["rated_cost"] == pl.Decimal(18, 2)
    assert all(isinstance(v, Decimal) for v in out["rated_cost"])


def test_rating_divisor_per_carrier_changes_the_billable_weight():
    p = _pkgs([("a", "UPS", "GROUND", 4, 60.0, 40.0, 40.0, 2.0), ("b", "FEDEX", "EXPRESS", 2, 30.0, 30.0, 30.0, 1.0)])
    out = L.rate_packages(p, _rates(), dim_divisor_cm3_per_kg={"UPS": 6000})
    assert out["dim_weight_kg"].to_list() == pytest.approx([16.0, 5.4])  # UPS 96000/6000; FedEx default 27000/5000
    assert out["rated_cost"].to_list() == [Decimal("34.50"), Decimal("30.10")]
    assert L.rate_packages(p, _rates(), 4000)["dim_weight_kg"].to_list() == pytest.approx([24.0, 6.75])
    for bad in (0, -5000, 5000.0, {"UPS": 0}):
        with pytest.raises(ValueError, match="divisor"):
            L.rate_packages(p, _rates(), bad)  # type: ignore[arg-type]


def test_rating_above_the_heaviest_band_pays_per_started_band():
    p = _pkgs([("70", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 70.0),
               ("70.5", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 70.5),
               ("140", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 140.0),
               ("141", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 141.0),
               ("fx-11", "FEDEX", "EXPRESS", 2, 10.0, 10.0, 10.0, 11.0)])
    out = L.rate_packages(p, _rates())
    assert out["rate_multiple"].to_list() == [1, 2, 2, 3, 2]
    assert out["rate_band_kg"].to_list() == [70.0, 70.0, 70.0, 70.0, 10.0]
    assert out["rated_cost"].to_list() == [Decimal("68.00"), Decimal("136.00"), Decimal("136.00"),
                                           Decimal("204.00"), Decimal("60.20")]
    assert out["rate_problem"].null_count() == out.height


def test_rating_flags_what_it_cannot_rate():
    p = _pkgs([("ok", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 1.0),
               ("no-zone-rate", "UPS", "GROUND", 11, 10.0, 10.0, 10.0, 1.0),
               ("no-service", "UPS", "AIR", 4, 10.0, 10.0, 10.0, 1.0),
               ("no-carrier", "DHL", "GROUND", 4, 10.0, 10.0, 10.0, 1.0),
               ("no-dims", "UPS", "GROUND", 4, None, 10.0, 10.0, 1.0),
               ("zero-weight", "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 0.0),
               ("null-zone", "UPS", "GROUND", None, 10.0, 10.0, 10.0, 1.0)])
    out = L.rate_packages(p, _rates())
    prob = dict(zip(out["package_id"], out["rate_problem"], strict=True))
    assert prob["ok"] is None
    assert prob["no-zone-rate"] == "no rate for UPS GROUND zone 11"
    assert prob["no-service"] == "no rate for UPS AIR zone 4"
    assert prob["no-carrier"] == "no rate for DHL GROUND zone 4"
    assert prob["no-dims"] == prob["zero-weight"] == "dimensions or gross weight missing or not positive"
    assert prob["null-zone"] == "no rate for UPS GROUND zone (none)"
    assert out["rated_cost"].to_list() == [Decimal("7.90")] + [None] * 6
    assert out.filter(pl.col("rate_problem").is_not_null())["rate_band_kg"].null_count() == 6


def test_rating_keeps_money_exact_and_refuses_float_rates():
    rates = _rates().with_columns(rate=pl.lit(Decimal("0.10"), pl.Decimal(18, 2)))
    p = _pkgs([(str(i), "UPS", "GROUND", 4, 10.0, 10.0, 10.0, 70.0 * 3 + 0.5) for i in range(3)])
    out = L.rate_packages(p, rates)
    assert out["rated_cost"].to_list() == [Decimal("0.40")] * 3  # 4 x 0.10, no 0.30000000000000004
    assert out["rated_cost"].sum() == Decimal("1.20")
    with pytest.raises(ValueError, match="Decimal"):
        L.rate_packages(p, rates.with_columns(pl.col("rate").cast(pl.Float64)))
    with pytest.raises(ValueError, match="Decimal"):
        L.rate_packages(p, rates.with_columns(pl.col("rate").cast(pl.Decimal(18, 4))))
    with pytest.raises(ValueError, match="lacks column"):
        L.rate_packages(p.drop("zone"), rates)


def test_rating_is_vectorised_over_many_groups_in_input_order():
    rng = random.Random(3)
    rows = [(str(i), rng.choice(["UPS", "FEDEX"]), rng.choice(["GROUND", "EXPRESS"]), rng.choice([2, 4]),
             rng.uniform(5, 80), rng.uniform(5, 60), rng.uniform(5, 60), rng.uniform(0.1, 90)) for i in range(3000)]
    p = _pkgs(rows)
    out = L.rate_packages(p, _rates())
    assert out["package_id"].to_list() == p["package_id"].to_list()
    rates = _rates()
    # reference: a plain Python reading of the rule, row by row
    for row in out.sample(300, seed=1).iter_rows(named=True):
        bands = sorted((b["max_weight_kg"], b["rate"]) for b in rates.iter_rows(named=True)
                       if (b["carrier_id"], b["service"], b["zone"]) == (row["carrier_id"], row["service"], row["zone"]))
        billable = max(row["gross_weight_kg"],
                       round(row["length_cm"] * row["width_cm"] * row["height_cm"] / 5000, 6))
        assert row["billable_weight_kg"] == pytest.approx(billable)
        if not bands:
            assert row["rated_cost"] is None and row["rate_problem"].startswith("no rate")
            continue
        fit = [b for b in bands if b[0] >= billable]
        if fit:
            expect = fit[0][1]
        else:
            top, rate = bands[-1]
            k = math.ceil(Decimal(str(billable)) / Decimal(str(top)))
            expect = rate * k
        assert row["rated_cost"] == expect, row
