"""Stock reservation decided before approval (rule ``inventory``). Pure and vectorised.

Available per SKU = sum of ``on_hand`` over all warehouses - ``fixed_reserved`` (reservations of orders
approved in earlier runs, given by the caller), never below 0. The caller passes only the orders that
should reserve (not rejected ones); held orders reserve too (the workflow releases a held order's
reservation after ``[inventory] hold_reservation_hours``).

First pass -- primary SKUs, strictly in order priority (``order_ts``, tier, ``order_id``; then ``line_no``):
``demand_before`` = cumulative requested quantity of the SKU by earlier lines, and
``reserved = clip(available - demand_before, 0, quantity)``. An earlier order is never overtaken.

Second pass -- substitutes, only for a short line of an order that is *not* ship-complete whose customer
``allow_substitutes`` and whose product lists ``substitutes``: the whole shortfall comes from one substitute,
the first in the product's preference order that (a) is active, not restricted for the destination country
and not hazmat when the order ships by air, and (b) still has enough stock after ALL primary demand of this
evaluation and after the substitutions granted before it. Granting runs preference by preference (every
line's 1st choice, then the 2nd choice of the lines still short...), and within a preference in order
priority: a line gets the substitute while the cumulative shortfall of the lines before it (that could
each fit) plus its own fits the stock left -- again no overtaking. A line that is not served by any
substitute keeps its primary split/backorder.

Only catalog lines reserve (``order_lines.item_kind`` 'catalog'): a custom item or a service line has no stock
and gets no reservation row, hence no allocation; an order of such lines only gets no ``inventory`` result.

Decisions per line:

- ``RESERVE``            fully reserved from the requested SKU (pass);
- ``SPLIT``              partly reserved, rest backordered (``SPLIT_SHIPMENT``, warn);
- ``BACKORDER``          nothing reserved (``BACKORDER``, warn);
- ``SUBSTITUTE``         shortfall reserved from a substitute (``SUBSTITUTED``, warn): the line then has one
                         reservation row per SKU (the requested SKU's part, if any, and the substitute's);
- ``WAIT_SHIP_COMPLETE`` the order is ship-complete (``orders.ship_complete`` or the customer's default) and at
                         least one of its lines is short: every line of the order gets this decision, keeps what
                         the first pass reserved and waits -- never split, never substituted
                         (``WAIT_SHIP_COMPLETE``: warn or hold per config).

Invariants (tested with hypothesis): per SKU, the sum of ``quantity_reserved`` <= available; no quantity is
negative; ``quantity_requested = quantity_reserved + quantity_backordered`` per row and the rows of a line add
up to its quantity; a ship-complete order never has a ``SPLIT`` line.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas import ReservationDecisionModel, polars_schema
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, is_catalog, lazy
from som_pipeline.validation.priority import resolve_priority
from som_pipeline.validation.results import collect, emit, evidence, fmt, passes

DECISIONS = ("RESERVE", "SPLIT", "BACKORDER", "SUBSTITUTE", "WAIT_SHIP_COMPLETE")
# The model lives with every other model in som_pipeline.schemas (one schema source).
ReservationModel = ReservationDecisionModel
RESERVATION_SCHEMA: dict[str, pl.DataType] = polars_schema(ReservationDecisionModel)
# the columns of the orders / lines :func:`reserve_inventory` reads (its priority included): a caller holding
# wider frames passes these alone (a copy of the reserving orders' whole rows was ~1 GB at TPC-H SF 1)
ORDER_COLUMNS = ("order_id", "order_ts", "customer_id", "ship_complete", "ship_to_country", "ship_method")
LINE_COLUMNS = ("order_id", "line_no", "sku", "quantity", "item_kind")


def available_stock(inventory: Frame, fixed_reserved: Frame | None) -> pl.LazyFrame:
    """``[sku, _on_hand, _fixed, _available]`` (available = on hand over all warehouses - fixed, >= 0)."""
    on_hand = lazy(inventory).group_by("sku").agg(pl.col("on_hand").cast(pl.Int64).sum().alias("_on_hand"))
    fixed = (lazy(fixed_reserved).group_by("sku").agg(pl.col("quantity").cast(pl.Int64).sum().alias("_fixed"))
             if fixed_reserved is not None else pl.LazyFrame(schema={"sku": pl.String, "_fixed": pl.Int64}))
    return (on_hand.join(fixed, on="sku", how="full", coalesce=True)
            .with_columns(pl.col("_on_hand").fill_null(0), pl.col("_fixed").fill_null(0))
            .with_columns((pl.col("_on_hand") - pl.col("_fixed")).clip(lower_bound=0).alias("_available")))


def _substitute_options(cands: pl.DataFrame, products: Frame) -> pl.DataFrame:
    """Candidate lines x their admissible substitutes with a dense preference rank ``_k`` (0 = first)."""
    p = lazy(products)
    opts = (p.select(pl.col("sku").alias("_req"), pl.col("substitutes").str.split("|").alias("_sub"))
            .with_columns(pl.int_ranges(pl.col("_sub").list.len()).alias("_pos"))
            .explode(["_sub", "_pos"])
            .with_columns(pl.col("_sub").str.strip_chars())
            .filter(pl.col("_sub").is_not_null() & (pl.col("_sub") != "") & (pl.col("_sub") != pl.col("_req")))
            .unique(subset=["_req", "_sub"], keep="first", maintain_order=True))
    subs_info = p.select(pl.col("sku").alias("_sub"), pl.col("active").alias("_s_active"),
                         pl.col("hazmat").alias("_s_hazmat"))
    restricted = (p.select(pl.col("sku").alias("_sub"), pl.col("restricted_countries").str.split("|").alias("_c"))
                  .explode("_c").select("_sub", pl.col("_c").str.strip_chars().str.to_uppercase().alias("_country"))
                  .filter(pl.col("_country").is_not_null() & (pl.col("_country") != "")).unique())
    return (cands.lazy().join(opts, left_on="sku", right_on="_req", how="inner")
            .join(subs_info, on="_sub", how="inner")
            .filter(pl.col("_s_active") & ~(pl.col("_s_hazmat") & pl.col("_air")))
            .join(restricted, on=["_sub", "_country"], how="anti")
            .sort(["_prio", "line_no", "_pos"])
            .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(["order_id", "line_no"]).alias("_k"))
            .collect())


def _substitute(cands: pl.DataFrame, left: pl.DataFrame, products: Frame) -> pl.DataFrame:
    """Grant substitutes preference by preference; returns ``[order_id, line_no, _sub, _sub_qty, _sub_pref, ...]``."""
    opts = _substitute_options(cands, products)
    granted: list[pl.DataFrame] = []
    schema_done = {"order_id": pl.String, "line_no": pl.Int64}
    done = pl.DataFrame(schema=schema_done)
    stock = left.select(pl.col("sku").alias("_sub"), pl.col("_left").alias("_sub_left"))
    max_k = int(opts["_k"].max()) if opts.height else -1
    for k in range(max_k + 1):  # one vectorised pass per preference position (a handful), not per row
        step = (opts.filter(pl.col("_k") == k)
                .join(done, on=["order_id", "line_no"], how="anti")
                .join(stock, on="_sub", how="left")
                .with_columns(pl.col("_sub_left").fill_null(0))
                .filter(pl.col("_short") <= pl.col("_sub_left"))  # a line that can never fit does not block others
                .sort(["_prio", "line_no"])
                .with_columns(pl.col("_short").cum_sum().over("_sub").alias("_cum"))
                .filter(pl.col("_cum") <= pl.col("_sub_left")))
        if step.height == 0:
            continue
        granted.append(step.select("order_id", "line_no", "_sub", pl.col("_short").alias("_sub_qty"),
                                   (pl.col("_pos") + 1).alias("_sub_pref"),
                                   (pl.col("_sub_left") - pl.col("_cum")).alias("_sub_left_after")))
        done = pl.concat([done, step.select("order_id", "line_no")])
        taken = step.group_by("_sub").agg(pl.col("_short").sum().alias("_taken"))
        stock = (stock.join(taken, on="_sub", how="left")
                 .select("_sub", (pl.col("_sub_left") - pl.col("_taken").fill_null(0)).alias("_sub_left")))
    if not granted:
        return pl.DataFrame(schema={"order_id": pl.String, "line_no": pl.Int64, "_sub": pl.String,
                                    "_sub_qty": pl.Int64, "_sub_pref": pl.Int64, "_sub_left_after": pl.Int64})
    return pl.concat(granted)


def reserve_inventory(orders: Frame, lines: Frame, customers: Frame, products: Frame, inventory: Frame,
                      fixed_reserved: Frame | None, cfg: ValidationConfig, *,
                      priority: Frame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reserve stock in priority order and decide split / backorder / substitute / wait before approval.

    Returns ``(reservations, results)``: reservations of :data:`RESERVATION_SCHEMA` (see module doc) and
    result rows of rule ``inventory``.
    """
    prio = resolve_priority(orders, customers, cfg, priority)
    o = (lazy(orders).select("order_id", "customer_id", pl.col("ship_complete").alias("_o_sc"),
                             pl.col("ship_to_country").str.strip_chars().str.to_uppercase().alias("_country"),
                             pl.col("ship_method").str.contains(cfg.air_regex).fill_null(False).alias("_air"))
         .join(lazy(customers).select("customer_id", pl.col("ship_complete").alias("_c_sc"),
                                      pl.col("allow_substitutes").alias("_c_subs")), on="customer_id", how="left")
         .join(prio.rename({"priority": "_prio"}), on="order_id", how="left")
         .select("order_id", "_prio", "_country", "_air",
                 (pl.col("_o_sc").fill_null(False) | pl.col("_c_sc").fill_null(False)).alias("_sc"),
                 pl.col("_c_subs").fill_null(False).alias("_subs_ok")))
    stock = available_stock(inventory, fixed_reserved)
    # catalog lines only: a custom item or a service has no stock to reserve (and so no allocation). The day's
    # lines carry only what the first pass and the decisions need (TPC-H SF 1: 6M lines; with every column the
    # evidence uses the frame was 1.1 GB): destination and stock figures are joined to the few lines that need
    # them -- substitution candidates, findings
    ln = (lazy(lines).filter(is_catalog())
          .select("order_id", pl.col("line_no").cast(pl.Int64), "sku", pl.col("quantity").cast(pl.Int64))
          .join(o.select("order_id", "_prio", "_sc", "_subs_ok"), on="order_id", how="inner")
          .join(stock.select("sku", "_available"), on="sku", how="left")
          .with_columns(pl.col("_available").fill_null(0))
          .sort(["_prio", "line_no"])
          .with_columns((pl.col("quantity").cum_sum().over("sku") - pl.col("quantity")).alias("_demand_before"))
          .with_columns(pl.min_horizontal((pl.col("_available") - pl.col("_demand_before")).clip(lower_bound=0),
                                          "quantity").alias("_reserved"))
          .with_columns((pl.col("quantity") - pl.col("_reserved")).alias("_short"))
          .with_columns((pl.col("_sc") & (pl.col("_short") > 0).any().over("order_id")).alias("_wait"))
          .collect())

    # second pass: substitutes
    left = (stock.join(ln.lazy().group_by("sku").agg(pl.col("_reserved").sum()), on="sku", how="left")
            .select("sku", (pl.col("_available") - pl.col("_reserved").fill_null(0)).alias("_left"))
            .collect())
    cands = (ln.lazy().filter((pl.col("_short") > 0) & ~pl.col("_sc") & pl.col("_subs_ok"))
             .select("order_id", "line_no", "sku", "_short", "_prio")
             .join(o.select("order_id", "_country", "_air"), on="order_id", how="left", maintain_order="left")
             .collect())
    subs = _substitute(cands, left, products)
    if subs.height:
        ln = ln.join(subs, on=["order_id", "line_no"], how="left")
    else:  # no substitute granted (none listed, or none fits): no join, no copy of the day's lines
        ln = ln.with_columns(*(pl.lit(None, dtype=t).alias(c) for c, t in subs.schema.items()
                               if c not in ("order_id", "line_no")))
    ln = (ln.with_columns(pl.col("_sub_qty").fill_null(0))
          .with_columns(
              pl.when(pl.col("_wait")).then(pl.lit("WAIT_SHIP_COMPLETE"))
              .when(pl.col("_sub").is_not_null()).then(pl.lit("SUBSTITUTE"))
              .when(pl.col("_short") == 0).then(pl.lit("RESERVE"))
              .when(pl.col("_reserved") > 0).then(pl.lit("SPLIT"))
              .otherwise(pl.lit("BACKORDER")).alias("_decision")))

    x = ln.lazy()
    primary = x.select(
        "order_id", "line_no", "sku", pl.col("sku").alias("requested_sku"),
        (pl.col("quantity") - pl.col("_sub_qty")).alias("quantity_requested"),
        pl.col("_reserved").alias("quantity_reserved"),
        (pl.col("quantity") - pl.col("_reserved") - pl.col("_sub_qty")).alias("quantity_backordered"),
        pl.col("_decision").alias("decision"),
    ).filter(pl.col("quantity_requested") > 0)
    substitute = x.filter(pl.col("_sub").is_not_null()).select(
        "order_id", "line_no", pl.col("_sub").alias("sku"), pl.col("sku").alias("requested_sku"),
        pl.col("_sub_qty").alias("quantity_requested"), pl.col("_sub_qty").alias("quantity_reserved"),
        pl.lit(0, dtype=pl.Int64).alias("quantity_backordered"), pl.lit("SUBSTITUTE").alias("decision"))
    # in the order they were served: the lines in priority order, then the substitutes granted (a caller that
    # wants another order sorts: the workflow sorts the day's reservations once, with the kept ones)
    reservations = pl.concat([primary, substitute]).cast(RESERVATION_SCHEMA).collect()

    # the lines with a finding (every decision but a full reservation; a ship-complete line waiting without being
    # short has none), with the stock figures their evidence shows
    flagged = (x.filter(pl.col("_decision").is_in(["SPLIT", "BACKORDER", "SUBSTITUTE"])
                        | ((pl.col("_decision") == "WAIT_SHIP_COMPLETE") & (pl.col("_short") > 0)))
               .join(stock.select("sku", "_on_hand", "_fixed"), on="sku", how="left")
               .with_columns(pl.col("_on_hand").fill_null(0), pl.col("_fixed").fill_null(0),
                             (pl.col("_available") - pl.col("_demand_before")).clip(lower_bound=0).alias("_for_line"))
               .collect().lazy())
    stock_ev = dict(sku=pl.col("sku"), quantity=pl.col("quantity"), on_hand_all_warehouses=pl.col("_on_hand"),
                    reserved_earlier_runs=pl.col("_fixed"), available=pl.col("_available"),
                    demand_before_in_run=pl.col("_demand_before"), available_for_line=pl.col("_for_line"),
                    reserved=pl.col("_reserved"), short=pl.col("_short"), priority=pl.col("_prio"),
                    ship_complete=pl.col("_sc"), substitutes_allowed=pl.col("_subs_ok"))
    split = emit(flagged.filter(pl.col("_decision") == "SPLIT"), rule="inventory", reason="SPLIT_SHIPMENT",
                 cfg=cfg, line_no="line_no",
                 message=fmt("{} of {} x {} reserved now, {} backordered (split shipment)", "_reserved",
                             "quantity", "sku", "_short"),
                 evidence=evidence(**stock_ev))
    back = emit(flagged.filter(pl.col("_decision") == "BACKORDER"), rule="inventory", reason="BACKORDER", cfg=cfg,
                line_no="line_no",
                message=fmt("no stock of {} for this line: {} backordered ({} available after earlier orders)",
                            "sku", "quantity", "_for_line"),
                evidence=evidence(**stock_ev))
    sub = emit(flagged.filter(pl.col("_decision") == "SUBSTITUTE"), rule="inventory", reason="SUBSTITUTED",
               cfg=cfg, line_no="line_no",
               message=fmt("{} of {} x {} short: reserved from substitute {} (preference {}); {} of {} reserved",
                           "_sub_qty", "quantity", "sku", "_sub", "_sub_pref", "_reserved", "sku"),
               evidence=evidence(**stock_ev, substitute_sku=pl.col("_sub"), substitute_quantity=pl.col("_sub_qty"),
                                 substitute_preference=pl.col("_sub_pref"),
                                 substitute_stock_left_after=pl.col("_sub_left_after")))
    wait = emit(flagged.filter(pl.col("_decision") == "WAIT_SHIP_COMPLETE"), rule="inventory",
                reason="WAIT_SHIP_COMPLETE", cfg=cfg, line_no="line_no",
                message=fmt("ship-complete order: {} short by {} ({} of {} reserved); the order waits and is "
                            "never split", "sku", "_short", "_reserved", "quantity"),
                evidence=evidence(**stock_ev))
    findings = pl.concat([split, back, sub, wait]).collect()
    per_order = x.group_by("order_id").agg(pl.len().alias("_n"), pl.col("quantity").sum().alias("_units"))
    ok = passes(per_order, findings, rule="inventory",
                message=fmt("all {} line(s) reserved in full ({} units)", "_n", "_units"),
                evidence=evidence(lines=pl.col("_n"), units_reserved=pl.col("_units")))
    return reservations, collect([findings.lazy(), ok])


__all__ = ["DECISIONS", "LINE_COLUMNS", "ORDER_COLUMNS", "RESERVATION_SCHEMA", "ReservationModel", "available_stock",
           "reserve_inventory"]
