"""Demand rows and fulfilment options with their exact per-unit costs. Pure and vectorised.

Demand row
    One approved ``core.reservations`` row with ``quantity_reserved > 0`` (order line x reserved SKU); ``q``
    = its reserved units. Orders that wait to ship complete (a ``WAIT_SHIP_COMPLETE`` decision) have no
    demand: all their units wait (backorders).

Option
    (demand row, warehouse, carrier service): the warehouse is active; the destination has a zone from it
    (``ref.shipping_zones`` by warehouse, ship-to country and region, else the country's ``'*'`` row); the
    carrier service is active, has a rate for that zone, is not ``air`` for a hazmat SKU; no active
    ``closed`` disruption covers the warehouse, the carrier (service) or the destination.

Costs per unit, in integers of 1/10,000 (:data:`~som_pipeline.allocation.config.SCALE`), each rounded once
half up from the exact rational:

- shipping = parcel rate x parcels / q. The line's units travel as one parcel (weight = q x weight_kg) at
  the rate of the smallest weight band that holds it; above the heaviest band, as
  ``ceil(weight / heaviest band)`` equal parcels, each at the band of its weight. A line split across
  warehouses pays each part's share of the whole line's parcel price (documented simplification).
- handling = the warehouse's handling_cost per shipment / the order's units to allocate: an order shipped
  whole from one warehouse pays exactly one handling; a split order's extra shipments are charged by the
  split penalty.
- lateness = penalty per unit-day x calendar days the expected delivery is after the promised date.

Dates
    ship date = the warehouse's local date if ``now`` is before its cutoff on a business day, else the next
    business day; plus the business days of active ``degraded`` warehouse disruptions. Delivery = ship date +
    published transit + ``late_carrier_extra_days`` when the service's on-time rate is below the threshold +
    extra days of degraded carrier and destination disruptions (business days). Promised = the line's
    requested date, else order date + the promise of the ordered service class (business days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from som_pipeline.allocation.config import SCALE, AllocationConfig

Frame = pl.DataFrame | pl.LazyFrame


def eager(df: Frame) -> pl.DataFrame:
    return df.collect() if isinstance(df, pl.LazyFrame) else df


def money_e4(col: str | pl.Expr) -> pl.Expr:
    """A Decimal money column as optimiser integers (exact: scale <= 4)."""
    c = pl.col(col) if isinstance(col, str) else col
    return (c.cast(pl.Decimal(38, 4)) * SCALE).cast(pl.Int64)


def div_round(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den rounded half up, for num >= 0, den > 0 (integers)."""
    return (2 * num + den) // (2 * den)


def service_class(ship_method: pl.Expr, cfg: AllocationConfig) -> pl.Expr:
    expr: pl.Expr = pl.lit("GROUND")
    for cls, pat in reversed(cfg.service_class_patterns):
        expr = pl.when(ship_method.str.contains("(?i)" + pat).fill_null(False)).then(pl.lit(cls)).otherwise(expr)
    return expr


# ------------------------------------------------------------------------------------------------
# Disruptions
# ------------------------------------------------------------------------------------------------
def active_disruptions(disruptions: Frame | None, now: datetime) -> pl.DataFrame:
    cols = {"disruption_id": pl.String, "scope": pl.String, "target": pl.String, "severity": pl.String,
            "extra_days": pl.Int64, "note": pl.String}
    if disruptions is None:
        return pl.DataFrame(schema=cols)
    d = eager(disruptions).with_columns(pl.col("starts_at", "ends_at").dt.convert_time_zone("UTC"))
    return (d.filter((pl.col("starts_at") <= now) & (pl.col("ends_at") > now))
            .select("disruption_id", "scope", pl.col("target").str.strip_chars(), "severity",
                    pl.col("extra_days").cast(pl.Int64), pl.col("note"))
            .sort("disruption_id"))


def _describe(d: pl.DataFrame) -> pl.Expr:
    """'D1: note' (or 'D1: closed warehouse WH-NJ' without a note)."""
    return pl.concat_str([pl.col("disruption_id"), pl.lit(": "),
                          pl.coalesce(pl.col("note"), pl.concat_str([pl.col("severity"), pl.lit(" "),
                                                                     pl.col("scope"), pl.lit(" "),
                                                                     pl.col("target")]))])


def disruption_effects(active: pl.DataFrame, keys: pl.DataFrame, match: pl.Expr) -> pl.DataFrame:
    """Per key row: ``_closed_by`` (first closing disruption, described), ``_extra`` (degraded days, summed),
    ``_degraded_by`` (first degrading disruption, described)."""
    key_cols = keys.columns
    if active.height == 0 or keys.height == 0:
        return keys.with_columns(pl.lit(None, pl.String).alias("_closed_by"), pl.lit(0, pl.Int64).alias("_extra"),
                                 pl.lit(None, pl.String).alias("_degraded_by"))
    hits = keys.join(active.with_columns(_describe(active).alias("_desc")), how="cross").filter(match)
    agg = hits.group_by(key_cols).agg(
        pl.col("_desc").filter(pl.col("severity") == "closed").first().alias("_closed_by"),
        pl.col("extra_days").filter(pl.col("severity") == "degraded").sum().alias("_extra"),
        pl.col("_desc").filter(pl.col("severity") == "degraded").first().alias("_degraded_by"))
    return (keys.join(agg, on=key_cols, how="left", nulls_equal=True)
            .with_columns(pl.col("_extra").fill_null(0)))


# ------------------------------------------------------------------------------------------------
# Demand
# ------------------------------------------------------------------------------------------------
def build_demand(orders: Frame, lines: Frame, reservations: Frame, products: Frame,
                 customers: Frame | None, cfg: AllocationConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(demand, waiting)``: allocatable demand rows (index ``d``) and the approved reservation rows that wait
    (validation backorders and ship-complete waits), both with the order context."""
    res = eager(reservations).filter(pl.col("order_status") == "APPROVED")
    o = eager(orders).select(
        "order_id", "order_ts", "order_date", "customer_id",
        pl.col("ship_to_country").str.strip_chars().str.to_uppercase().alias("country"),
        pl.col("ship_to_region").str.strip_chars().str.to_uppercase().alias("region"),
        service_class(pl.col("ship_method"), cfg).alias("svc_class"),
        pl.col("ship_complete").fill_null(False).alias("sc"))
    if customers is not None:
        c = eager(customers).select("customer_id", pl.col("ship_complete").alias("_c_sc"))
        o = (o.join(c, on="customer_id", how="left")
             .with_columns((pl.col("sc") | pl.col("_c_sc").fill_null(False)).alias("sc")).drop("_c_sc"))
    o = o.drop("customer_id")
    waits = res.filter(pl.col("decision") == "WAIT_SHIP_COMPLETE").select("order_id").unique()
    ln = eager(lines).select("order_id", pl.col("line_no").cast(pl.Int64), "requested_date")
    p = eager(products).select("sku", "weight_kg", "hazmat")
    promise = pl.DataFrame({"svc_class": list(cfg.promise_business_days),
                            "_promise_days": list(cfg.promise_business_days.values())},
                           schema={"svc_class": pl.String, "_promise_days": pl.Int64})
    dem = (res.filter(pl.col("quantity_reserved") > 0)
           .join(waits, on="order_id", how="anti")
           .select("order_id", pl.col("line_no").cast(pl.Int64), "sku", pl.col("quantity_reserved").cast(pl.Int64).alias("q"))
           .join(o, on="order_id", how="left")
           .join(ln, on=["order_id", "line_no"], how="left")
           .join(p, on="sku", how="left")
           .join(promise, on="svc_class", how="left")
           .with_columns(pl.col("_promise_days").fill_null(cfg.promise_business_days["GROUND"]))
           .with_columns(pl.coalesce(
               pl.col("requested_date"),
               pl.col("order_date").dt.add_business_days(pl.col("_promise_days"), week_mask=cfg.week_mask,
                                                         roll="forward")).alias("promised"))
           .with_columns((pl.col("q") * pl.col("weight_kg")).alias("weight"),
                         pl.col("hazmat").fill_null(False),
                         pl.col("sc").fill_null(False))
           .sort(["order_ts", "order_id", "line_no", "sku"], nulls_last=True)
           .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("d"),
                         # order index in priority order (order_ts, order_id): rows of an order are contiguous
                         (pl.col("order_id") != pl.col("order_id").shift(1)).fill_null(True).cast(pl.Int64)
                         .cum_sum().sub(1).alias("o"),
                         pl.col("q").sum().over("order_id").alias("order_units"))
           .drop("_promise_days"))
    waiting = res.filter((pl.col("quantity_backordered") > 0)
                         | pl.col("order_id").is_in(waits["order_id"].implode()))
    return dem, waiting


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """Options of the demand rows, with integer keys: ``wi`` (warehouse index), ``si`` (carrier service index),
    ``k = wi * n_services + si``.

    ``best``: per (demand row, warehouse holding the SKU), its ``top_k`` cheapest carrier services (``rank`` 0 =
    cheapest), with dates and per-unit costs. ``diag``: per demand row, counts explaining an empty option set.
    ``warehouses`` / ``services``: the index tables. ``offered``: open (warehouse, zone, service) triples and
    ``dest_zones`` (destination -> warehouse, zone), to check that a previous allocation's option still exists.
    """

    best: pl.DataFrame
    diag: pl.DataFrame
    warehouses: pl.DataFrame
    services: pl.DataFrame
    offered: pl.DataFrame
    dest_zones: pl.DataFrame


def ship_dates(warehouses: pl.DataFrame, now: datetime, cfg: AllocationConfig) -> pl.DataFrame:
    """Per warehouse: its local ship date for work released at ``now`` (before degraded extra days)."""
    rows = []
    mask = cfg.week_mask
    for w in warehouses.select("warehouse_id", "cutoff_time", "timezone").iter_rows(named=True):  # a few rows
        local = now.astimezone(ZoneInfo(w["timezone"]))
        day = local.date()
        if not (mask[day.weekday()] and local.time().replace(tzinfo=None) < w["cutoff_time"]):
            day = day + timedelta(days=1)
            while not mask[day.weekday()]:
                day += timedelta(days=1)
        rows.append({"warehouse_id": w["warehouse_id"], "_ship_base": day})
    return pl.DataFrame(rows, schema={"warehouse_id": pl.String, "_ship_base": pl.Date})


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2... within runs of equal consecutive keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    start = np.r_[True, keys[1:] != keys[:-1]]
    return idx - np.maximum.accumulate(np.where(start, idx, 0))


def build_options(dem: pl.DataFrame, warehouses: Frame, inventory: Frame, carriers: Frame, carrier_rates: Frame,
                  shipping_zones: Frame, active: pl.DataFrame, now: datetime, cfg: AllocationConfig,
                  top_k: int) -> Options:
    """The options of the demand rows ``dem``, at most ``top_k`` services per (row, warehouse): see
    :class:`Options`."""
    whs = _warehouse_index(warehouses, active, now, cfg)
    svcs = _service_index(carriers, active, cfg)
    n_si = max(1, svcs.height)
    dz = _destination_zones(dem, shipping_zones, whs, active)
    rates, edges = _active_rates(carrier_rates, svcs)
    wzs = _reachable_services(dz, rates, svcs, whs)
    base = dem.select("d", "sku", "country", "region", "q", "weight", "hazmat", "promised", "order_units")
    dw = base.join(dz, on=["country", "region"], how="inner", nulls_equal=True)
    diag = _diagnostics(dem, dw, wzs)
    offered = (wzs.filter(pl.col("_closed_wc").is_null()).select("wi", "zone", "si", "mode"))
    dws = _stocked_pairs(dw, inventory, whs)
    opt = _service_costs(dws, rates, svcs, edges, cfg, top_k)
    opt = opt.with_columns((pl.col("wi") * n_si + pl.col("si")).alias("k"))
    return Options(best=opt, diag=diag, warehouses=whs, services=svcs, offered=offered,
                   dest_zones=dz.select("country", "region", "wi", "zone", "_dest_closed"))


def _warehouse_index(warehouses: Frame, active: pl.DataFrame, now: datetime, cfg: AllocationConfig) -> pl.DataFrame:
    """Active warehouses by ``wi``: capacity, handling per shipment, ship date (degraded days included), and the
    disruption closing / degrading each."""
    wh = eager(warehouses).filter(pl.col("active")).sort("warehouse_id").with_row_index("wi") \
        .with_columns(pl.col("wi").cast(pl.Int64))
    sd = ship_dates(wh, now, cfg)
    wd = disruption_effects(active.filter(pl.col("scope") == "warehouse"), wh.select("warehouse_id"),
                            pl.col("target") == pl.col("warehouse_id"))
    whs = (wh.select("wi", "warehouse_id", pl.col("daily_capacity_lines").cast(pl.Int64),
                     money_e4("handling_cost").alias("_handling_e4"))
           .join(sd, on="warehouse_id").join(wd, on="warehouse_id", how="left")
           .with_columns(pl.col("_ship_base").dt.add_business_days(pl.col("_extra"), week_mask=cfg.week_mask,
                                                                   roll="forward").alias("ship_date"))
           .select("wi", "warehouse_id", "daily_capacity_lines", "_handling_e4", "ship_date",
                   pl.col("_closed_by").alias("_wh_closed"), pl.col("_degraded_by").alias("_wh_degraded"))
           .sort("wi"))
    return whs


def _service_index(carriers: Frame, active: pl.DataFrame, cfg: AllocationConfig) -> pl.DataFrame:
    """Active carrier services by ``si``: mode, parcel capacity, extra days (late carrier, degraded), and the
    disruption closing / degrading each."""
    car = (eager(carriers).filter(pl.col("active")).sort("carrier_id", "service").with_row_index("si")
           .with_columns(pl.col("si").cast(pl.Int64)))
    cd = disruption_effects(
        active.filter(pl.col("scope") == "carrier"), car.select("carrier_id", "service"),
        (pl.col("target") == pl.col("carrier_id"))
        | (pl.col("target") == pl.concat_str([pl.col("carrier_id"), pl.lit(":"), pl.col("service")])))
    svcs = (car.join(cd, on=["carrier_id", "service"], how="left")
            .select("si", "carrier_id", "service", "mode", pl.col("daily_capacity_parcels").cast(pl.Int64),
                    pl.when(pl.col("on_time_rate") < cfg.on_time_threshold).then(cfg.late_carrier_extra_days)
                    .otherwise(0).cast(pl.Int64).alias("_otr_days"),
                    pl.col("_closed_by").alias("_car_closed"), pl.col("_extra").alias("_car_extra"),
                    pl.col("_degraded_by").alias("_car_degraded"))
            .sort("si"))
    return svcs


def _destination_zones(dem: pl.DataFrame, shipping_zones: Frame, whs: pl.DataFrame,
                       active: pl.DataFrame) -> pl.DataFrame:
    """Destination -> zone per warehouse (exact region, else the country's '*'), with the destination's
    disruptions."""
    dest = dem.select("country", "region").unique()
    z = (eager(shipping_zones)
         .select("warehouse_id", pl.col("dest_country").str.to_uppercase().alias("country"),
                 pl.col("dest_region").str.strip_chars().str.to_uppercase().alias("region"), pl.col("zone").cast(pl.Int64))
         .join(whs.select("warehouse_id", "wi"), on="warehouse_id").drop("warehouse_id"))
    exact = dest.join(z.filter(pl.col("region") != "*"), on=["country", "region"], how="inner")
    star = dest.join(z.filter(pl.col("region") == "*").drop("region"), on="country", how="inner")
    dz = (star.join(exact, on=["country", "region", "wi"], how="full", coalesce=True, suffix="_x", nulls_equal=True)
          .select("country", "region", "wi", pl.coalesce("zone_x", "zone").alias("zone")))
    rd = disruption_effects(
        active.filter(pl.col("scope") == "region"), dest,
        (pl.col("target").str.to_uppercase() == pl.col("country"))
        | (pl.col("target").str.to_uppercase() == pl.concat_str([pl.col("country"), pl.lit("-"), pl.col("region")]))
        | (pl.col("target").str.to_uppercase() == pl.concat_str([pl.col("country"), pl.lit(":"), pl.col("region")])))
    rd = rd.select("country", "region", pl.col("_closed_by").alias("_dest_closed"),
                   pl.col("_extra").alias("_dest_extra"), pl.col("_degraded_by").alias("_dest_degraded"))
    dz = dz.join(rd, on=["country", "region"], how="left", nulls_equal=True)
    return dz


def _active_rates(carrier_rates: Frame, svcs: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """``(rates of active services, global band edges)``: every ``max_weight_kg``, for the band lookup."""
    rates = (eager(carrier_rates)
             .join(svcs.select("carrier_id", "service", "si"), on=["carrier_id", "service"], how="inner")
             .select("si", pl.col("zone").cast(pl.Int64), "max_weight_kg", money_e4("rate").alias("_rate_e4"),
                     pl.col("transit_days").cast(pl.Int64)))
    edges = np.unique(rates["max_weight_kg"].to_numpy()) if rates.height else np.array([1.0])
    return rates, edges


def _reachable_services(dz: pl.DataFrame, rates: pl.DataFrame, svcs: pl.DataFrame,
                        whs: pl.DataFrame) -> pl.DataFrame:
    """Services reachable per (warehouse, zone): the zone must have a rate for the service (``_closed_wc``: the
    disruption closing the warehouse or the service)."""
    wzs = (dz.select("wi", "zone").unique()
           .join(rates.group_by("si", "zone").agg(pl.col("max_weight_kg").max().alias("_maxband")), on="zone")
           .join(svcs.select("si", "mode", "_otr_days", "_car_closed", "_car_extra", "_car_degraded"), on="si")
           .join(whs.select("wi", "_wh_closed"), on="wi")
           .with_columns(pl.coalesce("_wh_closed", "_car_closed").alias("_closed_wc")))
    return wzs


def _diagnostics(dem: pl.DataFrame, dw: pl.DataFrame, wzs: pl.DataFrame) -> pl.DataFrame:
    """Per demand row (before stock): zones, services, services not closed, and the first closing disruption."""
    cnt = (wzs.with_columns((pl.col("mode") == "air").alias("_air"))
           .group_by("wi", "zone").agg(pl.len().alias("_n_all"), (~pl.col("_air")).sum().alias("_n_ground"),
                                       (pl.col("_closed_wc").is_null()).sum().alias("_open_all"),
                                       (pl.col("_closed_wc").is_null() & ~pl.col("_air")).sum().alias("_open_ground"),
                                       pl.col("_closed_wc").drop_nulls().first().alias("_closed_any")))
    dg = (dw.join(cnt, on=["wi", "zone"], how="left")
          .with_columns(pl.when(pl.col("hazmat")).then("_n_ground").otherwise("_n_all").fill_null(0).alias("_svc"),
                        pl.when(pl.col("_dest_closed").is_not_null()).then(0)
                        .when(pl.col("hazmat")).then("_open_ground").otherwise("_open_all").fill_null(0).alias("_open"),
                        pl.coalesce("_dest_closed", "_closed_any").alias("_closed_by")))
    diag = (dem.select("d")
            .join(dg.group_by("d").agg(pl.len().alias("_zones"), pl.col("_svc").sum().alias("_services"),
                                       pl.col("_open").sum().alias("_open"),
                                       pl.col("_closed_by").drop_nulls().first().alias("_closed_by")), on="d", how="left")
            .with_columns(pl.col("_zones", "_services", "_open").fill_null(0)))
    return diag


def _stocked_pairs(dw: pl.DataFrame, inventory: Frame, whs: pl.DataFrame) -> pl.DataFrame:
    """(row, warehouse) pairs at open warehouses holding the SKU, to open destinations, with the handling per
    unit; sorted by (d, wi)."""
    inv = (eager(inventory).join(whs.select("warehouse_id", "wi"), on="warehouse_id")
           .select("wi", "sku", pl.col("on_hand").cast(pl.Int64)).filter(pl.col("on_hand") > 0))
    open_w = whs.filter(pl.col("_wh_closed").is_null()).select("wi", "ship_date", "_handling_e4")
    dws = (dw.filter(pl.col("_dest_closed").is_null())
           .join(inv, on=["wi", "sku"], how="inner")
           .join(open_w, on="wi")
           .with_columns(pl.col("_dest_extra").fill_null(0),
                         div_round(pl.col("_handling_e4"), pl.col("order_units")).alias("hand_u"))
           .select("d", "wi", "zone", "q", "weight", "hazmat", "promised", "ship_date", "_dest_extra", "hand_u",
                   "on_hand")
           .sort("d", "wi"))
    return dws


_CHUNK = 32_768


def _service_costs(dws: pl.DataFrame, rates: pl.DataFrame, svcs: pl.DataFrame, edges: np.ndarray,
                   cfg: AllocationConfig, top_k: int) -> pl.DataFrame:
    """Per (row, warehouse) in ``dws``: its ``top_k`` cheapest services with parcels, dates and per-unit costs.
    Dense over services: one numpy array per quantity, shape (services, pairs)."""
    n_s, n_m = svcs.height, dws.height
    out_schema = {"d": pl.Int64, "wi": pl.Int64, "si": pl.Int64, "zone": pl.Int64, "parcels": pl.Int64,
                  "ship_date": pl.Date, "delivery": pl.Date, "transit_eff": pl.Int64, "days_late": pl.Int64,
                  "ship_u": pl.Int64, "hand_u": pl.Int64, "late_u": pl.Int64, "unit": pl.Int64, "on_hand": pl.Int64,
                  "rank": pl.Int64}
    if n_s == 0 or n_m == 0 or rates.height == 0:
        return pl.DataFrame(schema=out_schema)
    zones = np.unique(np.concatenate([rates["zone"].to_numpy(), dws["zone"].to_numpy()]))
    n_z, n_e = len(zones), len(edges)
    # rate / transit per (service, zone, band edge j): the smallest own band >= edge j; -1 = no rate
    rate = np.full((n_s, n_z, n_e), -1, dtype=np.int64)
    transit = np.zeros((n_s, n_z, n_e), dtype=np.int64)
    maxband = np.zeros((n_s, n_z), dtype=np.float64)
    r = rates.sort("si", "zone", "max_weight_kg", descending=[False, False, True])
    rs, rz = r["si"].to_numpy(), np.searchsorted(zones, r["zone"].to_numpy())
    rj = np.searchsorted(edges, r["max_weight_kg"].to_numpy())
    rr, rt = r["_rate_e4"].to_numpy(), r["transit_days"].to_numpy()
    for s_, z_, j_, rate_, t_ in zip(rs, rz, rj, rr, rt, strict=True):  # the rate table (hundreds of rows)
        rate[s_, z_, : j_ + 1] = rate_  # descending bands: smaller bands overwrite below their edge
        transit[s_, z_, : j_ + 1] = t_
        maxband[s_, z_] = max(maxband[s_, z_], edges[j_])
    air = (svcs["mode"].to_numpy() == "air")[:, None]
    closed = svcs["_car_closed"].is_not_null().to_numpy()[:, None]
    svc_days = (svcs["_otr_days"].to_numpy() + svcs["_car_extra"].fill_null(0).to_numpy())[:, None]
    # delivery = ship date + business days: a lookup table per (distinct ship date, days)
    ship_all = dws["ship_date"].cast(pl.Int32).to_numpy()
    u_ship = np.unique(ship_all)
    t_max = int(transit.max() + svc_days.max() + dws["_dest_extra"].max())
    mask = "".join("1" if b else "0" for b in cfg.week_mask)
    table = np.busday_offset(u_ship.astype("datetime64[D]")[:, None], np.arange(t_max + 1)[None, :], roll="forward",
                             weekmask=mask).astype(np.int64)
    pen = cfg.e4(cfg.lateness_penalty_per_unit_day)
    big = np.iinfo(np.int64).max
    s_idx = np.arange(n_s)[:, None]
    parts = []
    for lo in range(0, n_m, _CHUNK):  # column blocks keep the (services x pairs) arrays small
        c = dws.slice(lo, _CHUNK)
        n_c = c.height
        zi = np.searchsorted(zones, c["zone"].to_numpy())
        weight = c["weight"].to_numpy().astype(np.float64)
        q = c["q"].to_numpy().astype(np.int64)
        mb = maxband[:, zi]  # (S, M)
        # parcels: one unless the line is heavier than the service's largest band there (rare: done sparsely);
        # band j: the smallest edge >= the weight per parcel
        hs, hm = np.nonzero((mb > 0) & (weight[None, :] > mb))
        parcels = np.ones((n_s, n_c), dtype=np.int64)
        parcels[hs, hm] = np.ceil(weight[hm] / mb[hs, hm]).astype(np.int64)
        j = np.repeat(np.minimum(np.searchsorted(edges, weight - 1e-9, side="left"), n_e - 1)[None, :], n_s, axis=0)
        j[hs, hm] = np.minimum(np.searchsorted(edges, weight[hm] / parcels[hs, hm] - 1e-9, side="left"), n_e - 1)
        r_ = rate[s_idx, zi[None, :], j]
        valid = (r_ >= 0) & (mb > 0) & ~closed & ~(air & c["hazmat"].to_numpy()[None, :])
        t_eff = transit[s_idx, zi[None, :], j] + svc_days + c["_dest_extra"].to_numpy()[None, :]
        ship_days = c["ship_date"].cast(pl.Int32).to_numpy()
        deliv = table[np.searchsorted(u_ship, ship_days)[None, :], t_eff]
        prom = c["promised"].cast(pl.Int32).fill_null(np.iinfo(np.int32).max).to_numpy().astype(np.int64)
        late_days = np.maximum(0, deliv - prom[None, :])
        ship_u = (2 * np.maximum(r_, 0) * parcels + q[None, :]) // (2 * q[None, :])
        hand_u = c["hand_u"].to_numpy()
        unit = ship_u + hand_u[None, :] + pen * late_days
        key = np.where(valid, unit, big)
        order = np.argsort(key, axis=0, kind="stable")[:top_k].T  # (M, K): cheapest first (ties: service order)
        cols = np.arange(n_c)[:, None]
        keep = key[order, cols] != big
        sel_s, sel_m = order[keep], np.broadcast_to(cols, order.shape)[keep]  # row-major: by pair, then rank
        rank = np.broadcast_to(np.arange(order.shape[1])[None, :], order.shape)[keep]
        parts.append({
            "d": c["d"].to_numpy()[sel_m], "wi": c["wi"].to_numpy()[sel_m], "si": sel_s.astype(np.int64),
            "zone": c["zone"].to_numpy()[sel_m], "parcels": parcels[sel_s, sel_m],
            "ship_date": ship_days[sel_m], "delivery": deliv[sel_s, sel_m].astype(np.int32),
            "transit_eff": t_eff[sel_s, sel_m], "days_late": late_days[sel_s, sel_m].astype(np.int64),
            "ship_u": ship_u[sel_s, sel_m], "hand_u": hand_u[sel_m], "late_u": (pen * late_days[sel_s, sel_m]).astype(np.int64),
            "unit": unit[sel_s, sel_m], "on_hand": c["on_hand"].to_numpy()[sel_m], "rank": rank.astype(np.int64)})
    # one frame of contiguous columns (later steps gather from it by option index)
    out = pl.DataFrame({k: np.concatenate([part[k] for part in parts]) for k in parts[0]})
    return out.cast(out_schema)  # sorted by (d, wi, rank): dws is sorted by (d, wi)
