"""Carton choice: each shipment's picked units into the fewest, then cheapest, cartons (3-D, weight-limited).

Pure functions over Polars frames (no Dagster, no connections). :func:`pack_shipments` is the entry point;
:func:`one_box_per_line_volume` is the benchmark's baseline.

Why our own heuristic and not a library
    ``py3dbp`` (1.1.2, 2020) is unmaintained pure Python (one object per item) with no carton choice by
    cost. ``packingsolver3d`` (0.0.5, an alpha binding of the C++ PackingSolver) runs
    time-budgeted tree searches meant for large instances; we did not adopt it: it would be a new dependency
    for ~40k tiny instances, one solver call each, and a time-budgeted search need not return the same answer
    run to run. Our shipments hold a handful of units, where a constructive heuristic does well (on the
    benchmark's 100k lines, 127 of ~54k groups use more cartons than a simple volume / weight lower bound),
    so we keep a few hundred lines of plain code we can test and reason about, and spend the effort on the
    common case (one unit: a vectorised join, no geometry).

The rules
- Hazmat units never share a carton with non-hazmat units; fragile units are packed only with fragile
  units, in a carton whose usable inner dims are reduced by ``fragile_padding_cm`` on each side. So a
  shipment is split into *groups* by (hazmat, fragile) and each group is packed alone.
- A unit that fits no active carton (dimensions, or its weight + the carton's tare over the carton's max
  weight) ships alone in its own box: ``carton_id = "OWN_BOX"``, the unit's dims, tare 0.
- Objective: fewest packages, then the cheapest total carton cost. Cartons are ranked by (cost, inner
  volume, carton_id); "cheapest" below means first in this rank.

The heuristic
- Units are sorted by volume descending (first-fit decreasing). A group of one unit takes the cheapest
  carton its sorted dims fit (item's sorted dims <= the carton's sorted usable dims) and whose weight limit
  holds: a Polars join, no geometry (the unit is turned so that its longest side lies along the carton's
  longest side).
- A bigger group tries the cartons in cost order that pass the cheap bounds (total volume, total weight +
  tare, every unit's sorted dims); the first in which the extreme-point placement puts every unit (trying
  the units by volume, then longest side first, then largest face first) is the group's one package. If none holds everything, the largest carton that takes the first remaining unit is
  filled greedily (units that do not fit are skipped), downsized to the cheapest carton that still holds its
  contents, and the rest is packed the same way.
- Extreme-point placement (Crainic, Perboli & Tadei, 2008): candidate corners start at the origin; a placed
  box adds the corners at its three far faces, each projected back (towards the walls) onto the nearest
  box or wall. A unit goes to the first corner in (z, y, x) order, trying its distinct axis-aligned
  rotations flattest first, where it stays inside the usable dims and overlaps no placed box.
- Groups with the same units (dims and weights, in order) get the same packing: it is computed once.

Output (:class:`PackResult`)
- ``packages``: one row per package; ``package_no`` is 1..n per shipment, in order of creation: groups in
  (hazmat, fragile) order, then their packages, then the shipment's OWN_BOX units by sku.
- ``contents``: quantity per sku per package.
- ``placements``: one row per unit; ``unit_index`` is 0..quantity-1 per (shipment_id, sku), so
  (shipment_id, sku, unit_index) names a unit. Coordinates are in cm from the carton's inner corner, the box
  as rotated; for fragile packages they include the padding (a unit starts at >= the padding).

Repeated rows of one sku in a shipment are summed; their dims, weight and flags should agree (if not, the
largest dims and weight and any hazmat / fragile flag are used: the conservative choice).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

OWN_BOX = "OWN_BOX"
TOL = 1e-6  # cm / kg: float slack for sums of dimensions and weights

ITEM_COLUMNS = {
    "shipment_id": pl.String,
    "sku": pl.String,
    "quantity": pl.Int64,
    "length_cm": pl.Float64,
    "width_cm": pl.Float64,
    "height_cm": pl.Float64,
    "weight_kg": pl.Float64,
    "hazmat": pl.Boolean,
    "fragile": pl.Boolean,
}
CARTON_COLUMNS = {
    "carton_id": pl.String,
    "inner_length_cm": pl.Float64,
    "inner_width_cm": pl.Float64,
    "inner_height_cm": pl.Float64,
    "max_weight_kg": pl.Float64,
    "tare_kg": pl.Float64,
    "cost": None,  # Decimal(18, 2); compared, never converted to float
    "active": pl.Boolean,
}
PACKAGES_SCHEMA = {
    "shipment_id": pl.String,
    "package_no": pl.Int64,
    "carton_id": pl.String,
    "length_cm": pl.Float64,
    "width_cm": pl.Float64,
    "height_cm": pl.Float64,
    "gross_weight_kg": pl.Float64,
    "items_volume_cm3": pl.Float64,
    "carton_volume_cm3": pl.Float64,
    "utilisation": pl.Float64,
    "hazmat": pl.Boolean,
    "fragile": pl.Boolean,
}
CONTENTS_SCHEMA = {"shipment_id": pl.String, "package_no": pl.Int64, "sku": pl.String, "quantity": pl.Int64}
PLACEMENTS_SCHEMA = {
    "shipment_id": pl.String,
    "package_no": pl.Int64,
    "sku": pl.String,
    "unit_index": pl.Int64,
    "x": pl.Float64,
    "y": pl.Float64,
    "z": pl.Float64,
    "dx": pl.Float64,
    "dy": pl.Float64,
    "dz": pl.Float64,
}

# A package before numbering: identified by (shipment_id, kind, hazmat, fragile, local_no); kind 0 is a
# carton, 1 an OWN_BOX unit (numbered after the cartons of its shipment).
_PKG_KEY = ["shipment_id", "kind", "hazmat", "fragile", "local_no"]
_RAW_PLACEMENTS = {
    "shipment_id": pl.String,
    "kind": pl.Int8,
    "hazmat": pl.Boolean,
    "fragile": pl.Boolean,
    "local_no": pl.Int64,
    "carton_rank": pl.Int64,
    "sku": pl.String,
    "unit_index": pl.Int64,
    "x": pl.Float64,
    "y": pl.Float64,
    "z": pl.Float64,
    "dx": pl.Float64,
    "dy": pl.Float64,
    "dz": pl.Float64,
    "weight_kg": pl.Float64,
}


@dataclass
class PackResult:
    packages: pl.DataFrame
    contents: pl.DataFrame
    placements: pl.DataFrame


# --------------------------------------------------------------------------------------------- inputs


def _require(df: pl.DataFrame, columns: dict, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def _sorted3(a: pl.Expr, b: pl.Expr, c: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(smallest, middle, largest) of three columns, exactly (no arithmetic)."""
    lo = pl.min_horizontal(a, b, c)
    hi = pl.max_horizontal(a, b, c)
    mid = pl.max_horizontal(pl.min_horizontal(a, b), pl.min_horizontal(pl.max_horizontal(a, b), c))
    return lo, mid, hi


def _prepare_items(items: pl.DataFrame) -> pl.DataFrame:
    _require(items, ITEM_COLUMNS, "items")
    df = items.select([pl.col(c).cast(t) for c, t in ITEM_COLUMNS.items()])
    nulls = df.null_count().row(0)
    if any(nulls):
        bad = [c for c, n in zip(df.columns, nulls, strict=True) if n]
        raise ValueError(f"items has nulls in {bad}")
    bad_rows = df.filter(
        (pl.col("quantity") <= 0)
        | (pl.min_horizontal("length_cm", "width_cm", "height_cm", "weight_kg") <= 0)
        | ~pl.all_horizontal(pl.col("length_cm", "width_cm", "height_cm", "weight_kg").is_finite())
    )
    if bad_rows.height:
        ex = bad_rows.row(0, named=True)
        raise ValueError(
            f"items: {bad_rows.height} row(s) with quantity <= 0 or a non-positive dimension or weight "
            f"(first: shipment {ex['shipment_id']!r}, sku {ex['sku']!r})"
        )
    lines = (
        df.group_by("shipment_id", "sku")
        .agg(
            pl.col("quantity").sum(),
            pl.col("length_cm", "width_cm", "height_cm", "weight_kg").max(),
            pl.col("hazmat").any(),
            pl.col("fragile").any(),
        )
        .sort("shipment_id", "sku")
    )
    s0, s1, s2 = _sorted3(pl.col("length_cm"), pl.col("width_cm"), pl.col("height_cm"))
    return lines.with_columns(s0=s0, s1=s1, s2=s2)


@dataclass(frozen=True)
class _Carton:
    rank: int  # position in (cost, volume, carton_id) order
    carton_id: str
    length: float
    width: float
    height: float
    max_weight: float
    tare: float
    pad: float  # padding on each side (fragile groups), 0 otherwise
    ul: float  # usable dims along x, y, z
    uw: float
    uh: float
    usorted: tuple[float, float, float]  # usable dims, largest first
    uvolume: float


def _prepare_cartons(cartons: pl.DataFrame) -> pl.DataFrame:
    _require(cartons, CARTON_COLUMNS, "cartons")
    df = cartons.filter(pl.col("active").fill_null(False)).select(
        [pl.col(c).cast(t) if t is not None else pl.col(c) for c, t in CARTON_COLUMNS.items()]
    )
    bad = df.filter(
        pl.any_horizontal(pl.col("inner_length_cm", "inner_width_cm", "inner_height_cm", "max_weight_kg",
                                 "tare_kg").is_null())
        | (pl.min_horizontal("inner_length_cm", "inner_width_cm", "inner_height_cm", "max_weight_kg") <= 0)
        | (pl.col("tare_kg") < 0)
        | pl.col("cost").is_null()
    )
    if bad.height:
        raise ValueError(f"cartons: active carton(s) {bad['carton_id'].to_list()} lack dims, weights or cost")
    vol = pl.col("inner_length_cm") * pl.col("inner_width_cm") * pl.col("inner_height_cm")
    return (
        df.with_columns(volume=vol)
        .sort("cost", "volume", "carton_id")
        .with_row_index("rank")
        .with_columns(pl.col("rank").cast(pl.Int64))
    )


def _carton_list(cdf: pl.DataFrame, pad: float) -> list[_Carton]:
    out = []
    for r in cdf.iter_rows(named=True):
        ul, uw, uh = (r["inner_length_cm"] - 2 * pad, r["inner_width_cm"] - 2 * pad, r["inner_height_cm"] - 2 * pad)
        if min(ul, uw, uh) <= 0:
            continue
        out.append(_Carton(r["rank"], r["carton_id"], r["inner_length_cm"], r["inner_width_cm"],
                           r["inner_height_cm"], r["max_weight_kg"], r["tare_kg"], pad, ul, uw, uh,
                           tuple(sorted((ul, uw, uh), reverse=True)), ul * uw * uh))
    return out


def _usable_frame(cartons: list[_Carton], fragile: bool) -> pl.DataFrame:
    """Usable carton dims, sorted, and which item side goes along each axis (rank 0 = smallest side)."""
    rows = []
    for c in cartons:
        axes = sorted(range(3), key=lambda i: ((c.ul, c.uw, c.uh)[i], i))  # axis indices, smallest first
        rank = [0, 0, 0]
        for r, ax in enumerate(axes):
            rank[ax] = r
        rows.append((fragile, c.rank, c.usorted[2], c.usorted[1], c.usorted[0], c.max_weight, c.tare, c.pad,
                     *rank))
    return pl.DataFrame(
        rows,
        schema={"fragile": pl.Boolean, "carton_rank": pl.Int64, "c0": pl.Float64, "c1": pl.Float64,
                "c2": pl.Float64, "max_weight_kg": pl.Float64, "tare_kg": pl.Float64, "pad": pl.Float64,
                "rx": pl.Int64, "ry": pl.Int64, "rz": pl.Int64},
        orient="row",
    )


# ------------------------------------------------------------------------------------------ geometry


def _rotations(s2: float, s1: float, s0: float) -> tuple[tuple[float, float, float], ...]:
    """The distinct axis-aligned orientations (dx, dy, dz), flattest first, longest side along x first."""
    rots = {(s2, s1, s0), (s2, s0, s1), (s1, s2, s0), (s1, s0, s2), (s0, s2, s1), (s0, s1, s2)}
    return tuple(sorted(rots, key=lambda r: (r[2], -r[0], -r[1])))


def _place(units: list, L: float, W: float, H: float, capacity: float, fill: bool):
    """Extreme-point placement of ``units`` (in order) into an L x W x H box, total weight <= ``capacity``.

    ``units``: tuples (s2, s1, s0, weight, rotations). Returns ``[(i, x, y, z, dx, dy, dz), ...]`` for the
    placed units; with ``fill=False`` it returns None as soon as one unit cannot be placed, with
    ``fill=True`` it skips that unit and goes on.
    """
    boxes: list[tuple[float, float, float, float, float, float]] = []  # x1, y1, z1, x2, y2, z2
    eps: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)]  # (z, y, x): sorted = lowest, then back, left
    load = 0.0
    placed = []
    for i, u in enumerate(units):
        if load + u[3] > capacity + TOL:
            if fill:
                continue
            return None
        hit = None
        for pz, py, px in eps:
            for dx, dy, dz in u[4]:
                x2 = px + dx
                y2 = py + dy
                z2 = pz + dz
                if x2 > L + TOL or y2 > W + TOL or z2 > H + TOL:
                    continue
                for b in boxes:
                    if (px < b[3] - TOL and b[0] < x2 - TOL and py < b[4] - TOL and b[1] < y2 - TOL
                            and pz < b[5] - TOL and b[2] < z2 - TOL):
                        break
                else:
                    hit = (px, py, pz, x2, y2, z2, dx, dy, dz)
                    break
            if hit is not None:
                break
        if hit is None:
            if fill:
                continue
            return None
        px, py, pz, x2, y2, z2, dx, dy, dz = hit
        boxes.append(hit[:6])
        load += u[3]
        placed.append((i, px, py, pz, dx, dy, dz))  # the unit's own sides, exact (not x2 - px)
        new = (
            (pz, _proj(boxes, 1, x2, py, pz), x2), (_proj(boxes, 2, x2, py, pz), py, x2),
            (pz, y2, _proj(boxes, 0, px, y2, pz)), (_proj(boxes, 2, px, y2, pz), y2, px),
            (z2, py, _proj(boxes, 0, px, py, z2)), (z2, _proj(boxes, 1, px, py, z2), px),
        )
        kept = {
            p for p in eps
            if not (px - TOL <= p[2] < x2 - TOL and py - TOL <= p[1] < y2 - TOL and pz - TOL <= p[0] < z2 - TOL)
        }
        kept.update(p for p in new if p[2] < L - TOL and p[1] < W - TOL and p[0] < H - TOL)
        eps = sorted(kept)
    return placed


def _proj(boxes, axis: int, x: float, y: float, z: float) -> float:
    """Slide the point (x, y, z) towards 0 along ``axis`` (0 x, 1 y, 2 z): the coordinate where it stops."""
    p = (x, y, z)
    a, b = [k for k in range(3) if k != axis]
    start = p[axis]
    best = 0.0
    for bx in boxes:
        far = bx[axis + 3]
        if best < far <= start + TOL and bx[a] - TOL <= p[a] < bx[a + 3] - TOL and bx[b] - TOL <= p[b] < bx[b + 3] - TOL:
            best = far
    return best


def _bounds_ok(c: _Carton, vol: float, weight: float, m2: float, m1: float, m0: float) -> bool:
    u = c.usorted
    return (vol <= c.uvolume + TOL and weight + c.tare <= c.max_weight + TOL
            and m2 <= u[0] + TOL and m1 <= u[1] + TOL and m0 <= u[2] + TOL)


def _fits_one(c: _Carton, u) -> bool:
    return _bounds_ok(c, 0.0, u[3], u[0], u[1], u[2])


def _stats(units: list) -> tuple[float, float, float, float, float]:
    return (sum(u[0] * u[1] * u[2] for u in units), sum(u[3] for u in units),
            max(u[0] for u in units), max(u[1] for u in units), max(u[2] for u in units))


def _cheapest_holding(units: list, cartons: list[_Carton], below_rank: int | None = None):
    """The first carton (cost order) in which every unit is placed, with its placements; else None."""
    st = _stats(units)
    for c in cartons:
        if below_rank is not None and c.rank >= below_rank:
            break
        if not _bounds_ok(c, *st):
            continue
        for order in _orders(units):
            placed = _place([units[k] for k in order], c.ul, c.uw, c.uh, c.max_weight - c.tare, fill=False)
            if placed is not None:
                return c, [(order[i], *rest) for i, *rest in placed]
    return None


def _orders(units: list):
    """Unit orders to try, lazily: by volume (as given), then longest side first, then largest face first."""
    n = len(units)
    seen = [tuple(range(n))]
    yield seen[0]
    for key in (lambda k: (-units[k][0], -units[k][1], k), lambda k: (-units[k][0] * units[k][1], -units[k][2], k)):
        o = tuple(sorted(range(n), key=key))
        if o not in seen:
            seen.append(o)
            yield o


def _pack_group(units: list, cartons: list[_Carton], by_volume: list[_Carton]):
    """Packages of one group: ``[(carton, [(unit_pos, x, y, z, dx, dy, dz), ...]), ...]``."""
    remaining = list(range(len(units)))
    out = []
    while remaining:
        sub = [units[i] for i in remaining]
        one = _cheapest_holding(sub, cartons)
        if one is not None:
            c, placed = one
            out.append((c, [(remaining[i], *rest) for i, *rest in placed]))
            break
        big = next(c for c in by_volume if _fits_one(c, sub[0]))  # the first unit fits some carton
        placed = _place(sub, big.ul, big.uw, big.uh, big.max_weight - big.tare, fill=True)
        chosen = [sub[p[0]] for p in placed]
        smaller = _cheapest_holding(chosen, cartons, below_rank=big.rank)
        if smaller is not None:
            big, placed2 = smaller
            placed = [(placed[j][0], *rest) for j, *rest in placed2]
        out.append((big, [(remaining[i], *rest) for i, *rest in placed]))
        taken = {p[0] for p in placed}
        remaining = [r for k, r in enumerate(remaining) if k not in taken]
    return out


# ------------------------------------------------------------------------------------------ packing


def _empty_result() -> PackResult:
    return PackResult(
        packages=pl.DataFrame(schema=PACKAGES_SCHEMA),
        contents=pl.DataFrame(schema=CONTENTS_SCHEMA),
        placements=pl.DataFrame(schema=PLACEMENTS_SCHEMA),
    )


def pack_shipments(items: pl.DataFrame, cartons: pl.DataFrame, fragile_padding_cm: float = 2.0) -> PackResult:
    """Pack every shipment's units into cartons (see the module docstring for the rules and heuristic)."""
    if fragile_padding_cm < 0:
        raise ValueError("fragile_padding_cm must be >= 0")
    lines = _prepare_items(items)
    cdf = _prepare_cartons(cartons)
    if lines.height == 0:
        return _empty_result()
    plain = _carton_list(cdf, 0.0)
    padded = _carton_list(cdf, float(fragile_padding_cm))
    usable = pl.concat([_usable_frame(plain, False), _usable_frame(padded, True)])

    # Which carton each line's unit fits alone (dims and weight): none -> OWN_BOX, one unit per package.
    fits = (
        lines.select("shipment_id", "sku", "fragile", "s0", "s1", "s2", "weight_kg")
        .join(usable, on="fragile", how="inner")
        .filter(
            (pl.col("s0") <= pl.col("c0") + TOL) & (pl.col("s1") <= pl.col("c1") + TOL)
            & (pl.col("s2") <= pl.col("c2") + TOL)
            & (pl.col("weight_kg") + pl.col("tare_kg") <= pl.col("max_weight_kg") + TOL)
        )
    )
    first_fit = fits.group_by("shipment_id", "sku").agg(pl.col("carton_rank").min().alias("first_rank"))
    lines = lines.join(first_fit, on=["shipment_id", "sku"], how="left")
    own = lines.filter(pl.col("first_rank").is_null())
    packable = lines.filter(pl.col("first_rank").is_not_null()).with_columns(
        group_units=pl.col("quantity").sum().over("shipment_id", "hazmat", "fragile")
    )

    parts = [_own_box_placements(own)]

    # One unit in its group: the cheapest carton it fits, turned longest side along the longest axis.
    single = packable.filter(pl.col("group_units") == 1)
    if single.height:
        parts.append(_single_placements(single, usable))

    multi = packable.filter(pl.col("group_units") > 1).sort("shipment_id", "hazmat", "fragile", "sku")
    if multi.height:
        parts.append(_multi_placements(multi, plain, padded))

    raw = pl.concat(parts, how="vertical")
    return _assemble(raw, cdf)


def _own_box_placements(own: pl.DataFrame) -> pl.DataFrame:
    """OWN_BOX units: one per package, the unit as given, at the origin."""
    return (
        own.with_columns(unit_index=pl.int_ranges(0, pl.col("quantity")))
        .explode("unit_index")
        .sort("shipment_id", "sku", "unit_index")
        .with_columns(
            kind=pl.lit(1, pl.Int8),
            local_no=pl.int_range(pl.len()).over("shipment_id").cast(pl.Int64),
            carton_rank=pl.lit(-1, pl.Int64),
            x=pl.lit(0.0), y=pl.lit(0.0), z=pl.lit(0.0),
            dx=pl.col("length_cm"), dy=pl.col("width_cm"), dz=pl.col("height_cm"),
        )
        .select([pl.col(c).cast(t) for c, t in _RAW_PLACEMENTS.items()])
    )


def _single_placements(single: pl.DataFrame, usable: pl.DataFrame) -> pl.DataFrame:
    side = {0: pl.col("s0"), 1: pl.col("s1"), 2: pl.col("s2")}

    def along(r: str) -> pl.Expr:
        return pl.when(pl.col(r) == 0).then(side[0]).when(pl.col(r) == 1).then(side[1]).otherwise(side[2])

    return (
        single.join(usable.select("fragile", "carton_rank", "pad", "rx", "ry", "rz"),
                    left_on=["fragile", "first_rank"], right_on=["fragile", "carton_rank"], how="left")
        .with_columns(
            kind=pl.lit(0, pl.Int8), local_no=pl.lit(0, pl.Int64), carton_rank=pl.col("first_rank"),
            unit_index=pl.lit(0, pl.Int64), x=pl.col("pad"), y=pl.col("pad"), z=pl.col("pad"),
            dx=along("rx"), dy=along("ry"), dz=along("rz"),
        )
        .select([pl.col(c).cast(t) for c, t in _RAW_PLACEMENTS.items()])
    )


def _multi_placements(multi: pl.DataFrame, plain: list[_Carton], padded: list[_Carton]) -> pl.DataFrame:
    """The extreme-point heuristic, group by group (groups with equal units share one computation)."""
    by_volume = {
        False: sorted(plain, key=lambda c: (-c.uvolume, c.rank)),
        True: sorted(padded, key=lambda c: (-c.uvolume, c.rank)),
    }
    lists = {False: plain, True: padded}
    cache: dict = {}
    cols = {c: multi[c].to_list() for c in ("shipment_id", "sku", "quantity", "s0", "s1", "s2", "weight_kg",
                                           "hazmat", "fragile")}
    rot_cache: dict = {}
    out = {c: [] for c in _RAW_PLACEMENTS}
    n = multi.height
    start = 0
    while start < n:
        key = (cols["shipment_id"][start], cols["hazmat"][start], cols["fragile"][start])
        end = start + 1
        while end < n and (cols["shipment_id"][end], cols["hazmat"][end], cols["fragile"][end]) == key:
            end += 1
        # Units of the group, largest first; ties by dims, weight, sku, unit index (deterministic).
        units = []
        for r in range(start, end):
            dims = (cols["s2"][r], cols["s1"][r], cols["s0"][r])
            rots = rot_cache.get(dims)
            if rots is None:
                rots = rot_cache[dims] = _rotations(*dims)
            w = cols["weight_kg"][r]
            for k in range(cols["quantity"][r]):
                units.append((-dims[0] * dims[1] * dims[2], -dims[0], -dims[1], -dims[2], -w,
                              cols["sku"][r], k, (dims[0], dims[1], dims[2], w, rots)))
        units.sort(key=lambda t: t[:7])
        geo = [t[7] for t in units]
        frag = key[2]
        sig = (frag, tuple(g[:4] for g in geo))
        packs = cache.get(sig)
        if packs is None:
            packs = cache[sig] = _pack_group(geo, lists[frag], by_volume[frag])
        for local_no, (c, placed) in enumerate(packs):
            for pos, x, y, z, dx, dy, dz in placed:
                t = units[pos]
                out["shipment_id"].append(key[0])
                out["kind"].append(0)
                out["hazmat"].append(key[1])
                out["fragile"].append(frag)
                out["local_no"].append(local_no)
                out["carton_rank"].append(c.rank)
                out["sku"].append(t[5])
                out["unit_index"].append(t[6])
                out["x"].append(x + c.pad)
                out["y"].append(y + c.pad)
                out["z"].append(z + c.pad)
                out["dx"].append(dx)
                out["dy"].append(dy)
                out["dz"].append(dz)
                out["weight_kg"].append(-t[4])
        start = end
    return pl.DataFrame(out, schema=_RAW_PLACEMENTS)


def _assemble(raw: pl.DataFrame, cdf: pl.DataFrame) -> PackResult:
    carton_cols = cdf.select(
        pl.col("rank").alias("carton_rank"), "carton_id", pl.col("inner_length_cm").alias("c_length"),
        pl.col("inner_width_cm").alias("c_width"), pl.col("inner_height_cm").alias("c_height"), "tare_kg",
    )
    raw = raw.with_columns(unit_volume=pl.col("dx") * pl.col("dy") * pl.col("dz"))
    pk = (
        raw.group_by(_PKG_KEY)
        .agg(
            pl.col("carton_rank").first(),
            pl.col("weight_kg").sum().alias("items_weight"),
            pl.col("unit_volume").sum().alias("items_volume_cm3"),
            pl.col("dx", "dy", "dz").first(),  # OWN_BOX: the unit
        )
        .sort(_PKG_KEY)
        .with_columns(package_no=(pl.int_range(pl.len()).over("shipment_id") + 1).cast(pl.Int64))
        .join(carton_cols, on="carton_rank", how="left")
    )
    own = pl.col("kind") == 1
    packages = pk.with_columns(
        carton_id=pl.when(own).then(pl.lit(OWN_BOX)).otherwise(pl.col("carton_id")),
        length_cm=pl.when(own).then(pl.col("dx")).otherwise(pl.col("c_length")),
        width_cm=pl.when(own).then(pl.col("dy")).otherwise(pl.col("c_width")),
        height_cm=pl.when(own).then(pl.col("dz")).otherwise(pl.col("c_height")),
        gross_weight_kg=pl.col("items_weight") + pl.when(own).then(0.0).otherwise(pl.col("tare_kg")),
    ).with_columns(
        carton_volume_cm3=pl.col("length_cm") * pl.col("width_cm") * pl.col("height_cm"),
    ).with_columns(
        utilisation=pl.col("items_volume_cm3") / pl.col("carton_volume_cm3"),
    ).select([pl.col(c).cast(t) for c, t in PACKAGES_SCHEMA.items()])

    numbered = raw.join(pk.select(*_PKG_KEY, "package_no"), on=_PKG_KEY, how="left")
    placements = numbered.sort("shipment_id", "package_no", "sku", "unit_index").select(
        [pl.col(c).cast(t) for c, t in PLACEMENTS_SCHEMA.items()]
    )
    contents = (
        placements.group_by("shipment_id", "package_no", "sku")
        .agg(pl.len().cast(pl.Int64).alias("quantity"))
        .sort("shipment_id", "package_no", "sku")
        .select([pl.col(c).cast(t) for c, t in CONTENTS_SCHEMA.items()])
    )
    return PackResult(packages=packages, contents=contents, placements=placements)


def one_box_per_line_volume(items: pl.DataFrame, cartons: pl.DataFrame) -> float:
    """Baseline: every line packed alone (its units in the cheapest carton that holds them all, more
    cartons when none does; OWN_BOX units at their own volume). Returns the total carton volume in cm3.

    Lines are (shipment_id, sku) after summing repeated rows; the same packer and rules are used, so the
    difference to :func:`pack_shipments` is what consolidating a shipment's lines saves.
    """
    _require(items, ITEM_COLUMNS, "items")
    if items.height == 0:
        return 0.0
    per_line = items.with_columns(
        shipment_id=pl.col("shipment_id").cast(pl.String) + pl.lit("\x1f") + pl.col("sku").cast(pl.String)
    )
    res = pack_shipments(per_line, cartons)
    return float(res.packages["carton_volume_cm3"].sum())
