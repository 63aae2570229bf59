"""Carton choice (som_pipeline.fulfilment.packing): conservation, geometry, weight, separation, choice."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from som_pipeline.fulfilment.packing import (
    CONTENTS_SCHEMA,
    OWN_BOX,
    PACKAGES_SCHEMA,
    PLACEMENTS_SCHEMA,
    one_box_per_line_volume,
    pack_shipments,
)

EPS = 1e-6


def cartons(*rows) -> pl.DataFrame:
    """rows: (carton_id, L, W, H, max_kg, tare_kg, cost[, active])."""
    rows = [r if len(r) == 8 else (*r, True) for r in rows]
    cid, length, width, height, mx, tare, cost, active = zip(*rows, strict=True)
    return pl.DataFrame({
        "carton_id": list(cid),
        "inner_length_cm": [float(v) for v in length],
        "inner_width_cm": [float(v) for v in width],
        "inner_height_cm": [float(v) for v in height],
        "max_weight_kg": [float(v) for v in mx],
        "tare_kg": [float(v) for v in tare],
        "cost": pl.Series([Decimal(str(v)) for v in cost], dtype=pl.Decimal(18, 2)),
        "active": list(active),
    })


def items(*rows) -> pl.DataFrame:
    """rows: (shipment_id, sku, qty, L, W, H, kg[, hazmat[, fragile]])."""
    rows = [(*r, False, False)[:9] for r in rows]
    sid, sku, qty, length, width, height, kg, hz, fr = zip(*rows, strict=True)
    return pl.DataFrame({
        "shipment_id": list(sid), "sku": list(sku), "quantity": pl.Series(list(qty), dtype=pl.Int64),
        "length_cm": [float(v) for v in length], "width_cm": [float(v) for v in width],
        "height_cm": [float(v) for v in height], "weight_kg": [float(v) for v in kg],
        "hazmat": list(hz), "fragile": list(fr),
    })


STD = cartons(
    ("S", 20, 15, 10, 8, 0.2, "0.50"),
    ("M", 40, 30, 20, 20, 0.4, "1.00"),
    ("L", 60, 40, 40, 30, 0.8, "2.00"),
)


def check_invariants(its: pl.DataFrame, ctn: pl.DataFrame, res, padding: float = 2.0) -> None:
    """What every result must satisfy, checked from the returned frames only."""
    # schemas
    assert res.packages.schema == pl.Schema(PACKAGES_SCHEMA)
    assert res.contents.schema == pl.Schema(CONTENTS_SCHEMA)
    assert res.placements.schema == pl.Schema(PLACEMENTS_SCHEMA)
    # conservation: quantities per shipment x sku, and each unit placed exactly once
    want = its.group_by("shipment_id", "sku").agg(pl.col("quantity").sum()).sort("shipment_id", "sku")
    got = res.contents.group_by("shipment_id", "sku").agg(pl.col("quantity").sum()).sort("shipment_id", "sku")
    assert got.equals(want)
    units = res.placements.select("shipment_id", "sku", "unit_index")
    assert not units.is_duplicated().any()
    per_pkg = res.placements.group_by("shipment_id", "package_no", "sku").agg(pl.len().cast(pl.Int64).alias("q"))
    assert per_pkg.join(res.contents, on=["shipment_id", "package_no", "sku"]).filter(
        pl.col("q") != pl.col("quantity")).height == 0
    # package numbers 1..n per shipment
    nums = res.packages.group_by("shipment_id").agg(pl.col("package_no").sort().alias("n"))
    for n in nums["n"].to_list():
        assert n == list(range(1, len(n) + 1))
    assert res.packages.select("shipment_id", "package_no").equals(
        res.contents.select("shipment_id", "package_no").unique(maintain_order=True)
    )
    # placed box = the item's dims in some rotation
    dims = its.group_by("shipment_id", "sku").agg(pl.col("length_cm", "width_cm", "height_cm").first())
    p = res.placements.join(dims, on=["shipment_id", "sku"])
    assert (
        p.select(pl.concat_list("dx", "dy", "dz").list.sort().alias("a"),
                 pl.concat_list("length_cm", "width_cm", "height_cm").list.sort().alias("b"))
        .filter(pl.col("a") != pl.col("b")).height == 0
    )
    # inside the carton (inside the padding for fragile cartons)
    pk = res.packages.with_columns(
        pad=pl.when(pl.col("fragile") & (pl.col("carton_id") != OWN_BOX)).then(padding).otherwise(0.0))
    p = res.placements.join(pk, on=["shipment_id", "package_no"])
    outside = p.filter(
        (pl.min_horizontal("x", "y", "z") < pl.col("pad") - EPS)
        | (pl.col("x") + pl.col("dx") > pl.col("length_cm") - pl.col("pad") + EPS)
        | (pl.col("y") + pl.col("dy") > pl.col("width_cm") - pl.col("pad") + EPS)
        | (pl.col("z") + pl.col("dz") > pl.col("height_cm") - pl.col("pad") + EPS)
    )
    assert outside.height == 0, outside
    # no two units of a package overlap
    a = res.placements.with_row_index("i")
    pairs = a.join(a, on=["shipment_id", "package_no"], suffix="_b").filter(pl.col("i") < pl.col("i_b"))
    overlap = pairs.filter(
        (pl.col("x") < pl.col("x_b") + pl.col("dx_b") - EPS) & (pl.col("x_b") < pl.col("x") + pl.col("dx") - EPS)
        & (pl.col("y") < pl.col("y_b") + pl.col("dy_b") - EPS) & (pl.col("y_b") < pl.col("y") + pl.col("dy") - EPS)
        & (pl.col("z") < pl.col("z_b") + pl.col("dz_b") - EPS) & (pl.col("z_b") < pl.col("z") + pl.col("dz") - EPS)
    )
    assert overlap.height == 0, overlap
    # gross weight = items + tare, within the carton's limit; OWN_BOX: one unit, its dims, no tare
    w = its.group_by("shipment_id", "sku").agg(pl.col("weight_kg").first())
    items_w = res.placements.join(w, on=["shipment_id", "sku"]).group_by("shipment_id", "package_no").agg(
        pl.col("weight_kg").sum().alias("iw"), pl.len().alias("units"))
    chk = (res.packages.join(items_w, on=["shipment_id", "package_no"])
           .join(ctn.select("carton_id", "max_weight_kg", "tare_kg", "active"), on="carton_id", how="left"))
    boxed = chk.filter(pl.col("carton_id") != OWN_BOX)
    assert boxed["active"].all()
    assert ((boxed["gross_weight_kg"] - boxed["iw"] - boxed["tare_kg"]).abs() < EPS).all()
    assert (boxed["gross_weight_kg"] <= boxed["max_weight_kg"] + EPS).all()
    own = chk.filter(pl.col("carton_id") == OWN_BOX)
    assert (own["units"] == 1).all()
    assert ((own["gross_weight_kg"] - own["iw"]).abs() < EPS).all()
    # volumes
    assert ((res.packages["carton_volume_cm3"] - res.packages["length_cm"] * res.packages["width_cm"]
             * res.packages["height_cm"]).abs() < 1e-6).all()
    assert (res.packages["utilisation"] <= 1 + EPS).all()
    # hazmat / fragile: a package's units all share its flags
    flags = its.group_by("shipment_id", "sku").agg(pl.col("hazmat", "fragile").first())
    mix = res.contents.join(flags, on=["shipment_id", "sku"]).join(
        res.packages.select("shipment_id", "package_no", pl.col("hazmat").alias("ph"), pl.col("fragile").alias("pf")),
        on=["shipment_id", "package_no"])
    assert mix.filter((pl.col("hazmat") != pl.col("ph")) | (pl.col("fragile") != pl.col("pf"))).height == 0


def test_single_unit_takes_the_cheapest_carton_it_fits_and_is_turned_to_fit():
    its = items(("A", "pen", 1, 5, 5, 5, 0.1), ("B", "pole", 1, 10, 10, 38, 1.0))
    res = pack_shipments(its, STD)
    check_invariants(its, STD, res)
    assert res.packages["carton_id"].to_list() == ["S", "M"]
    pole = res.placements.filter(pl.col("sku") == "pole").row(0, named=True)
    assert (pole["dx"], pole["dy"], pole["dz"]) == (38.0, 10.0, 10.0)  # the 38 cm side along the 40 cm one


def test_two_cubes_that_fit_together_share_one_carton():
    ctn = cartons(("PAIR", 20, 10, 10, 10, 0.2, "0.80"), ("BIG", 40, 40, 40, 30, 1.0, "3.00"))
    its = items(("A", "cube", 2, 10, 10, 10, 1.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages.select("carton_id", "gross_weight_kg", "utilisation").rows() == [("PAIR", 2.2, 1.0)]


def test_rotation_is_needed_to_fit_two_units():
    # 20 x 10 x 5 slabs given upright (5 x 10 x 20) fit the 20 x 10 x 10 carton only lying down, stacked.
    ctn = cartons(("FLAT", 20, 10, 10, 10, 0.1, "0.50"), ("BIG", 50, 50, 50, 30, 1.0, "5.00"))
    its = items(("A", "slab", 2, 5, 10, 20, 1.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages["carton_id"].to_list() == ["FLAT"]
    assert sorted(res.placements.select("dx", "dy", "dz").rows()) == [(20.0, 10.0, 5.0)] * 2
    assert sorted(res.placements["z"].to_list()) == [0.0, 5.0]


def test_mixed_units_need_a_layered_arrangement():
    # one 20 x 20 x 10 base plus four 10 x 10 x 10 cubes fill a 20 x 20 x 20 carton exactly
    ctn = cartons(("CUBE", 20, 20, 20, 20, 0.5, "1.00"), ("BIG", 60, 60, 60, 30, 1.0, "4.00"))
    its = items(("A", "base", 1, 20, 10, 20, 2.0), ("A", "cube", 4, 10, 10, 10, 1.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages.select("carton_id", "utilisation").rows() == [("CUBE", 1.0)]


def test_the_cheaper_of_two_fitting_cartons_is_chosen_not_the_smaller():
    ctn = cartons(("SMALL_DEAR", 30, 30, 30, 20, 0.3, "2.50"), ("BIG_CHEAP", 40, 40, 40, 20, 0.5, "1.20"))
    its = items(("A", "box", 1, 25, 25, 25, 2.0), ("B", "box", 2, 15, 15, 15, 1.0), ("C", "box", 1, 15, 15, 15, 1.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages["carton_id"].to_list() == ["BIG_CHEAP"] * 3
    # when the cheap one is the small one: the small one wherever everything fits it, else the dearer one
    # (one package beats two cheap ones: B's two cubes do not fit the small carton together)
    ctn2 = cartons(("SMALL_CHEAP", 20, 20, 20, 20, 0.3, "0.90"), ("BIG_DEAR", 40, 40, 40, 20, 0.5, "1.20"))
    res2 = pack_shipments(its, ctn2)
    check_invariants(its, ctn2, res2)
    assert res2.packages["carton_id"].to_list() == ["BIG_DEAR", "BIG_DEAR", "SMALL_CHEAP"]


def test_inactive_cartons_are_ignored():
    ctn = cartons(("OLD", 30, 30, 30, 20, 0.3, "0.10", False), ("NEW", 30, 30, 30, 20, 0.3, "0.90", True))
    its = items(("A", "box", 1, 10, 10, 10, 1.0))
    assert pack_shipments(its, ctn).packages["carton_id"].to_list() == ["NEW"]


def test_overflow_splits_into_the_fewest_cartons_then_downsizes_the_rest():
    # the big carton holds two 20 cm cubes; three need two packages: one big, the third downsized to the cube
    ctn = cartons(("ONE", 20, 20, 20, 20, 0.2, "1.00"), ("TWO", 40, 20, 20, 20, 0.3, "1.50"))
    its = items(("A", "cube", 3, 20, 20, 20, 1.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages.select("package_no", "carton_id").rows() == [(1, "TWO"), (2, "ONE")]
    assert res.contents["quantity"].to_list() == [2, 1]


def test_weight_limit_splits_packages():
    # 8 kg each, limit 20 with tare 1: two per carton although ten would fit by volume
    ctn = cartons(("M", 50, 50, 50, 20, 1.0, "1.00"))
    its = items(("A", "brick", 5, 10, 10, 10, 8.0))
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    assert res.packages["gross_weight_kg"].to_list() == [17.0, 17.0, 9.0]


def test_oversize_and_overweight_units_ship_in_their_own_box():
    its = items(
        ("A", "rug", 2, 150, 10, 10, 5.0),  # longer than every carton
        ("A", "anvil", 1, 10, 10, 10, 35.0),  # heavier than every carton allows
        ("A", "mug", 1, 10, 10, 10, 0.4),
    )
    res = pack_shipments(its, STD)
    check_invariants(its, STD, res)
    pk = res.packages
    assert pk.select("package_no", "carton_id").rows() == [(1, "S"), (2, OWN_BOX), (3, OWN_BOX), (4, OWN_BOX)]
    own = pk.filter(pl.col("carton_id") == OWN_BOX)
    assert sorted(own.select("length_cm", "width_cm", "height_cm", "gross_weight_kg").rows()) == [
        (10.0, 10.0, 10.0, 35.0), (150.0, 10.0, 10.0, 5.0), (150.0, 10.0, 10.0, 5.0)]
    assert (own["utilisation"] == 1.0).all()


def test_hazmat_and_fragile_are_packed_apart():
    ctn = cartons(("M", 40, 40, 40, 30, 0.5, "1.00"))
    its = items(
        ("A", "plain", 1, 10, 10, 10, 1.0, False, False),
        ("A", "acid", 1, 10, 10, 10, 1.0, True, False),
        ("A", "glass", 2, 10, 10, 10, 1.0, False, True),
        ("A", "plain2", 1, 10, 10, 10, 1.0, False, False),
    )
    res = pack_shipments(its, ctn)
    check_invariants(its, ctn, res)
    pk = res.packages.select("package_no", "hazmat", "fragile").rows()
    assert pk == [(1, False, False), (2, False, True), (3, True, False)]
    assert res.contents.filter(pl.col("package_no") == 1)["sku"].to_list() == ["plain", "plain2"]


def test_fragile_units_lose_the_padding_of_usable_space():
    ctn = cartons(("S", 20, 20, 20, 20, 0.2, "0.50"), ("M", 30, 30, 30, 20, 0.3, "1.00"))
    its = items(("A", "vase", 1, 18, 10, 10, 1.0, False, True), ("B", "tin", 1, 18, 10, 10, 1.0))
    res = pack_shipments(its, ctn, fragile_padding_cm=2.0)
    check_invariants(its, ctn, res, padding=2.0)
    assert res.packages.select("shipment_id", "carton_id").rows() == [("A", "M"), ("B", "S")]
    vase = res.placements.filter(pl.col("sku") == "vase").row(0, named=True)
    assert min(vase["x"], vase["y"], vase["z"]) >= 2.0
    # with no padding it fits the small one; with too much padding nothing holds it: its own box
    assert pack_shipments(its, ctn, fragile_padding_cm=0.0).packages["carton_id"].to_list() == ["S", "S"]
    assert pack_shipments(its, ctn, fragile_padding_cm=7.0).packages["carton_id"].to_list() == [OWN_BOX, "S"]


def test_repeated_sku_rows_are_summed():
    its = items(("A", "cube", 1, 10, 10, 10, 1.0), ("A", "cube", 2, 10, 10, 10, 1.0))
    res = pack_shipments(its, STD)
    check_invariants(its, STD, res)
    assert res.contents.rows() == [("A", 1, "cube", 3)]
    assert sorted(res.placements["unit_index"].to_list()) == [0, 1, 2]


def test_same_input_in_any_row_order_gives_the_same_output():
    its = items(
        ("B", "a", 3, 12, 9, 7, 1.2), ("A", "b", 2, 30, 5, 5, 0.7), ("A", "c", 1, 25, 25, 12, 4.0, True),
        ("C", "d", 4, 22, 18, 16, 3.3, False, True), ("A", "e", 2, 14, 14, 14, 2.0), ("C", "f", 1, 200, 1, 1, 1.0),
    )
    first = pack_shipments(its, STD)
    check_invariants(its, STD, first)
    for seed in (1, 2, 3):
        again = pack_shipments(its.sample(fraction=1.0, shuffle=True, seed=seed), STD.reverse())
        assert again.packages.equals(first.packages)
        assert again.contents.equals(first.contents)
        assert again.placements.equals(first.placements)


def test_empty_input_gives_empty_frames_with_the_schema():
    res = pack_shipments(items(("A", "x", 1, 1, 1, 1, 1.0)).clear(), STD)
    assert res.packages.height == res.contents.height == res.placements.height == 0
    assert res.packages.schema == pl.Schema(PACKAGES_SCHEMA)
    assert res.contents.schema == pl.Schema(CONTENTS_SCHEMA)
    assert res.placements.schema == pl.Schema(PLACEMENTS_SCHEMA)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="quantity <= 0"):
        pack_shipments(items(("A", "x", 0, 1, 1, 1, 1.0)), STD)
    with pytest.raises(ValueError, match="lacks column"):
        pack_shipments(items(("A", "x", 1, 1, 1, 1, 1.0)).drop("fragile"), STD)


def test_one_box_per_line_baseline_counts_each_line_alone():
    ctn = cartons(("PAIR", 20, 10, 10, 10, 0.2, "0.80"), ("BIG", 40, 40, 40, 30, 1.0, "3.00"))
    its = items(("A", "red", 1, 10, 10, 10, 1.0), ("A", "blue", 1, 10, 10, 10, 1.0))
    assert pack_shipments(its, ctn).packages["carton_volume_cm3"].sum() == 2000.0
    assert one_box_per_line_volume(its, ctn) == 4000.0


dims = st.floats(min_value=1.0, max_value=45.0, allow_nan=False).map(lambda v: round(v, 1))
line = st.tuples(
    st.sampled_from(["S1", "S2", "S3"]), st.sampled_from(["k1", "k2", "k3", "k4", "k5"]),
    st.integers(1, 4), dims, dims, dims, st.floats(0.1, 18.0).map(lambda v: round(v, 2)),
    st.booleans(), st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=8))
def test_property_conservation_geometry_and_weight(rows):
    # one sku has one set of dims / flags per shipment (as a catalogue would)
    seen, clean = set(), []
    for r in rows:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            clean.append(r)
    its = items(*clean)
    res = pack_shipments(its, STD)
    check_invariants(its, STD, res)
    # fewest packages: never more cartons than units
    boxed = res.packages.filter(pl.col("carton_id") != OWN_BOX).height
    assert boxed <= int(its["quantity"].sum())
