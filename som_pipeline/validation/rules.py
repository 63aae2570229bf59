"""Validation rules: customer, compliance, price, promo. Pure and vectorised.

Inputs are Polars frames with the columns of ``core.orders`` / ``core.order_lines`` / ``ref.*``
(:mod:`som_pipeline.schemas`); every check returns rows of :data:`~som_pipeline.validation.results.RESULT_SCHEMA`.
No check loops over orders or lines in Python: joins, window functions and cumulative sums in the documented
priority order do the sequential parts.

Decisions (documented here, in ``defaults.toml`` and in the evidence of each row):

Priority
    ``order_ts``, then customer tier, then ``order_id`` (:mod:`som_pipeline.validation.priority`). Stock,
    credit exposure and promo usage caps are consumed in this order.
Customer (rule ``customer``)
    ``UNKNOWN_CUSTOMER`` when ``customer_id`` is null or not in ``ref.customers``; ``CUSTOMER_INACTIVE``.
    Rules that need the customer (price, credit) report ``NOT_EVALUATED`` (warn) for such an order instead of
    a second blocking reason.
Compliance
    One ``ADDRESS_INVALID`` row per order listing every problem; one ``RESTRICTED_ITEM`` row per line and cause
    (destination country / hazmat by air); ``UNKNOWN_SKU`` says "not in the catalog" or "inactive".
Price
    Expected unit price: the customer's tier row for the SKU in the order currency, valid on ``order_date``
    (``valid_from <= d <= valid_to``, open ``valid_to``), with the largest ``min_qty <= quantity``; equal
    ``min_qty`` rows with overlapping validity: the latest ``valid_from`` wins. Mismatch when
    ``|actual - expected| > max(tolerance_abs, tolerance_rel x expected)``. No row -> ``PRICE_MISMATCH``
    ("no price for tier/sku/currency on date"). No unit price -> ``PRICED_FROM_LIST`` (warn, list price in the
    evidence).
Discount
    ``discount_amount`` is allowed up to ``max(tier max_discount_pct x line amount, promo allowance)`` plus
    ``max(discount_tolerance_abs, discount_tolerance x line amount)``; the line amount is ``line_amount`` (or
    quantity x expected price, rounded once, for an unpriced line). The promo allowance is nonzero only when
    the order's promo code is known, inside its dates, eligible for the tier and channel and for this line's
    SKU/category: ``percent`` -> value x line amount; ``fixed_amount`` -> the amount spread over the order's
    eligible lines in proportion to their line amounts; ``free_shipping`` -> 0. Allowances are *not* stacked:
    a promotion explains a discount on its own, or the tier maximum does. Usage caps are not re-checked
    here (an exhausted promo is held by the promo rule).
Promo
    Codes are compared trimmed and case-insensitively. One row per order with a code, the first failing
    reason in the order UNKNOWN, EXPIRED / NOT_YET_VALID, INELIGIBLE, EXHAUSTED (evidence has every flag).
    Eligibility lists are '|'-separated, '*' = all; tiers, channels and categories compare case-insensitively,
    SKUs exactly. ``PROMO_EXHAUSTED``: with ``used`` = ``prior_usage`` (earlier runs) + the number of earlier
    orders of this evaluation (by priority) that pass the other promo tests, the order is exhausted when
    ``used + 1 > usage_cap``. The count does not look at other rules' outcomes (the caller chooses which orders
    are evaluated; ``prior_usage`` must not include the orders being evaluated).
Credit
    See :mod:`som_pipeline.validation.credit`.
"""

from __future__ import annotations

import polars as pl

from som_pipeline import money
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, is_catalog, lazy
from som_pipeline.validation.priority import resolve_priority
from som_pipeline.validation.results import collect, emit, evidence, fmt, passes, txt

D6 = pl.Decimal(38, 6)


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def _dec(value, scale: int = 6) -> pl.Expr:
    return pl.lit(value).cast(pl.Decimal(38, scale))


def _q(e: pl.Expr | str, scale: int) -> pl.Expr:
    """A decimal for display: rounded half away from zero to ``scale`` places."""
    e = pl.col(e) if isinstance(e, str) else e
    return e.round(scale, mode="half_away_from_zero").cast(pl.Decimal(38, scale))


# ================================================================================================
# Customer
# ================================================================================================
def _customer_findings(orders: Frame, customers: Frame, cfg: ValidationConfig) -> pl.LazyFrame:
    o = (lazy(orders).select("order_id", "channel", "customer_ref", "customer_id")
         .join(lazy(customers).select("customer_id", pl.col("active").alias("_c_active"), pl.lit(True).alias("_c_known")),
               on="customer_id", how="left"))
    unknown = o.filter(pl.col("_c_known").is_null())
    unknown_rows = emit(
        unknown, rule="customer", reason="UNKNOWN_CUSTOMER", cfg=cfg,
        message=pl.when(pl.col("customer_id").is_null())
        .then(fmt("customer reference '{}' ({}) does not resolve to a customer (ref.customer_aliases)",
                  txt("customer_ref"), txt("channel")))
        .otherwise(fmt("customer_id '{}' is not in ref.customers", txt("customer_id"))),
        evidence=evidence(customer_id=pl.col("customer_id"), customer_ref=pl.col("customer_ref"),
                          channel=pl.col("channel"), resolved=pl.col("customer_id").is_not_null()),
    )
    inactive_rows = emit(
        o.filter(pl.col("_c_known") & ~pl.col("_c_active")), rule="customer", reason="CUSTOMER_INACTIVE", cfg=cfg,
        message=fmt("customer {} is inactive", pl.col("customer_id")),
        evidence=evidence(customer_id=pl.col("customer_id"), active=pl.lit(False)),
    )
    findings = pl.concat([unknown_rows, inactive_rows]).collect()
    return pl.concat([findings.lazy(), passes(o, findings, rule="customer", message="customer known and active",
                                       evidence=evidence(customer_id=pl.col("customer_id")))])


def check_customer(orders: Frame, customers: Frame, cfg: ValidationConfig | None = None) -> pl.DataFrame:
    """``UNKNOWN_CUSTOMER`` (null or not in ref.customers) / ``CUSTOMER_INACTIVE`` (rule ``customer``)."""
    return collect([_customer_findings(orders, customers, _cfg(cfg))])


def _cfg(cfg: ValidationConfig | None) -> ValidationConfig:
    if cfg is None:
        from som_pipeline.validation.config import load_config

        return load_config()
    return cfg


# ================================================================================================
# Compliance
# ================================================================================================
def _postal_ok(cfg: ValidationConfig) -> pl.Expr:
    chain = None
    for country, pattern in sorted(cfg.postal_code_patterns.items()):
        cond = pl.col("_country") == country
        ok = pl.col("_postal").str.contains(f"^(?:{pattern})$").fill_null(False)
        chain = pl.when(cond).then(ok) if chain is None else chain.when(cond).then(ok)
    return pl.lit(True) if chain is None else chain.otherwise(pl.lit(True))


def _compliance_findings(orders: Frame, lines: Frame, products: Frame, cfg: ValidationConfig) -> pl.LazyFrame:
    o = lazy(orders).select(
        "order_id", "ship_method",
        pl.col("ship_to_country").str.strip_chars().str.to_uppercase().alias("_country"),
        pl.col("ship_to_postal_code").str.strip_chars().str.to_uppercase().alias("_postal"),
        _blank("ship_to_line1").alias("_no_street"),
        _blank("ship_to_city").alias("_no_city"),
        pl.col("ship_method").str.contains(cfg.air_regex).fill_null(False).alias("_air"),
    ).collect().lazy()
    missing = pl.col("_country").is_null() | (pl.col("_country") == "")
    valid = pl.col("_country").is_in(sorted(cfg.valid_countries))
    pattern = pl.col("_country").replace_strict(dict(cfg.postal_code_patterns), default=None, return_dtype=pl.String)

    embargo = emit(
        o.filter(pl.col("_country").is_in(sorted(cfg.embargoed_countries))), rule="compliance", reason="EMBARGO",
        cfg=cfg, message=fmt("ship-to country {} is embargoed", pl.col("_country")),
        evidence=evidence(country=pl.col("_country"),
                          embargoed_countries=pl.lit(sorted(cfg.embargoed_countries), dtype=pl.List(pl.String))),
    )
    problems = pl.concat_list([
        pl.when(missing).then(pl.lit("ship-to country missing")),
        pl.when(~missing & ~valid).then(fmt("country '{}' is not an ISO 3166-1 alpha-2 code", "_country")),
        pl.when(valid & ~_postal_ok(cfg)).then(fmt("postal code '{}' does not match the {} format",
                                                          txt("_postal", "(missing)"), "_country")),
        pl.when(pl.col("_no_street")).then(pl.lit("street line missing")),
        pl.when(pl.col("_no_city")).then(pl.lit("city missing")),
    ]).list.drop_nulls()
    addr = o.with_columns(problems.alias("_problems"), pattern.alias("_pattern")).filter(
        pl.col("_problems").list.len() > 0)
    address = emit(
        addr, rule="compliance", reason="ADDRESS_INVALID", cfg=cfg,
        message=pl.concat_str([pl.lit("ship-to address cannot be shipped to: "), pl.col("_problems").list.join("; ")]),
        evidence=evidence(problems=pl.col("_problems"), country=pl.col("_country"), postal_code=pl.col("_postal"),
                          postal_pattern=pl.col("_pattern"), street_present=~pl.col("_no_street"),
                          city_present=~pl.col("_no_city")),
    )

    prod = lazy(products).select("sku", pl.col("active").alias("_p_active"), pl.col("hazmat").alias("_hazmat"),
                                 "restricted_countries", pl.lit(True).alias("_p_known"))
    all_lines = lazy(lines).select("order_id", "line_no", "sku", "description", "quantity",
                                   pl.col("item_kind").fill_null("catalog").alias("_kind")).collect()
    # custom physical items: outside the catalog, so no SKU lookup; a person decides how they ship
    custom = emit(
        all_lines.lazy().filter(pl.col("_kind") == "custom"), rule="compliance", reason="CUSTOM_ITEM_REVIEW",
        cfg=cfg, line_no="line_no",
        message=fmt("custom item '{}' ({} x, no catalog SKU) needs a review: nothing is reserved for it",
                    txt("description", "(no title)"), "quantity"),
        evidence=evidence(item_kind=pl.col("_kind"), sku=pl.col("sku"), description=pl.col("description"),
                          quantity=pl.col("quantity")),
    )
    # catalog lines only: a custom or service line's placeholder sku is not looked up
    ln = (all_lines.lazy().filter(pl.col("_kind") == "catalog").select("order_id", "line_no", "sku")
          .join(prod, on="sku", how="left")
          .join(o.select("order_id", "_country", "ship_method", "_air"), on="order_id", how="left")
          .collect().lazy())
    unknown = emit(
        ln.filter(pl.col("_p_known").is_null() | ~pl.col("_p_active")), rule="compliance", reason="UNKNOWN_SKU",
        cfg=cfg, line_no="line_no",
        message=pl.when(pl.col("_p_known").is_null())
        .then(fmt("SKU '{}' is not in the catalog", "sku"))
        .otherwise(fmt("SKU '{}' is inactive in the catalog", "sku")),
        evidence=evidence(sku=pl.col("sku"), in_catalog=pl.col("_p_known").fill_null(False),
                          active=pl.col("_p_active")),
    )
    restricted_table = (lazy(products).select("sku", pl.col("restricted_countries").str.split("|").alias("_rc"))
                        .explode("_rc")
                        .select("sku", pl.col("_rc").str.strip_chars().str.to_uppercase().alias("_country"))
                        .filter(pl.col("_country").is_not_null() & (pl.col("_country") != "")).unique())
    by_country = emit(
        ln.join(restricted_table, on=["sku", "_country"], how="semi"), rule="compliance", reason="RESTRICTED_ITEM",
        cfg=cfg, line_no="line_no",
        message=fmt("SKU {} may not ship to {} (restricted countries {})", "sku", "_country",
                    "restricted_countries"),
        evidence=evidence(kind=pl.lit("country"), sku=pl.col("sku"), country=pl.col("_country"),
                          restricted_countries=pl.col("restricted_countries")),
    )
    by_air = emit(
        ln.filter(pl.col("_hazmat").fill_null(False) & pl.col("_air")), rule="compliance", reason="RESTRICTED_ITEM",
        cfg=cfg, line_no="line_no",
        message=fmt("SKU {} is hazmat and ship method '{}' is air transport", "sku", "ship_method"),
        evidence=evidence(kind=pl.lit("hazmat_by_air"), sku=pl.col("sku"), hazmat=pl.lit(True),
                          ship_method=pl.col("ship_method"), transport=pl.lit("air")),
    )
    findings = pl.concat([embargo, address, unknown, custom, by_country, by_air]).collect()
    return pl.concat([findings.lazy(), passes(o, findings, rule="compliance",
                                       message="destination, address and items may ship",
                                       evidence=evidence(country=pl.col("_country"), air=pl.col("_air")))])


def check_compliance(orders: Frame, lines: Frame, products: Frame, cfg: ValidationConfig) -> pl.DataFrame:
    """``EMBARGO`` (reject), ``ADDRESS_INVALID``, ``RESTRICTED_ITEM`` (country / hazmat by air), ``UNKNOWN_SKU``
    (catalog lines), ``CUSTOM_ITEM_REVIEW`` (custom physical items; a service line passes)."""
    return collect([_compliance_findings(orders, lines, products, cfg)])


# ================================================================================================
# Promotions (shared by the price and promo rules)
# ================================================================================================
def _pipe_table(promos: pl.LazyFrame, col: str, *, lower: bool) -> pl.LazyFrame:
    """``[_code, _item]`` for the '|'-list column ``col`` of each promotion ('*' kept as an item)."""
    item = pl.col("_item").str.strip_chars()
    return (promos.select("_code", pl.col(col).str.split("|").alias("_item")).explode("_item")
            .select("_code", (item.str.to_lowercase() if lower else item).alias("_item"))
            .filter(pl.col("_item").is_not_null() & (pl.col("_item") != "")).unique())


def _promo_eval(orders: Frame, lines: Frame, customers: Frame, products: Frame | None,
                promotions: Frame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Per order with a promo code: found / date window / eligibility flags; per line: eligible or not.

    Returns ``(orders_with_code, line_eligibility)``; ``_valid`` = every test but the usage cap passed.
    """
    promos = (lazy(promotions).with_columns(pl.col("code").str.strip_chars().str.to_uppercase().alias("_code"))
              .unique(subset=["_code"], keep="first", maintain_order=True))
    star = {c: pl.col(c).str.strip_chars() == "*" for c in
            ("eligible_tiers", "eligible_channels", "eligible_skus", "eligible_categories")}
    p = promos.select(
        "_code", pl.col("code").alias("_p_code"), "kind", "value", pl.col("valid_from").alias("_p_from"),
        pl.col("valid_to").alias("_p_to"), "usage_cap", "eligible_tiers", "eligible_channels", "eligible_skus",
        "eligible_categories", pl.lit(True).alias("_found"),
        *[(e | pl.col(c).str.split("|").list.eval(pl.element().str.strip_chars() == "*").list.any())
          .alias(f"_star_{c.split('_')[1]}") for c, e in star.items()],
    )
    o = (lazy(orders).filter(~_blank("promo_code"))
         .select("order_id", "promo_code", "order_date", "customer_id",
                 pl.col("channel").str.to_lowercase().alias("_channel"),
                 pl.col("promo_code").str.strip_chars().str.to_uppercase().alias("_code"))
         .join(lazy(customers).select("customer_id", pl.col("tier").str.to_lowercase().alias("_tier")),
               on="customer_id", how="left")
         .join(p, on="_code", how="left")
         .join(_pipe_table(promos, "eligible_tiers", lower=True).with_columns(pl.lit(True).alias("_tier_in")),
               left_on=["_code", "_tier"], right_on=["_code", "_item"], how="left")
         .join(_pipe_table(promos, "eligible_channels", lower=True).with_columns(pl.lit(True).alias("_chan_in")),
               left_on=["_code", "_channel"], right_on=["_code", "_item"], how="left"))

    cat = (lazy(products).select("sku", pl.col("category").str.strip_chars().str.to_lowercase().alias("_category"))
           if products is not None else pl.LazyFrame(schema={"sku": pl.String, "_category": pl.String}))
    ln = (lazy(lines).select("order_id", "line_no", "sku")
          .join(o.filter(pl.col("_found").fill_null(False)).select("order_id", "_code", "_star_skus",
                                                                    "_star_categories"), on="order_id", how="inner")
          .join(cat, on="sku", how="left")
          .join(_pipe_table(promos, "eligible_skus", lower=False).with_columns(pl.lit(True).alias("_sku_in")),
                left_on=["_code", "sku"], right_on=["_code", "_item"], how="left")
          .join(_pipe_table(promos, "eligible_categories", lower=True).with_columns(pl.lit(True).alias("_cat_in")),
                left_on=["_code", "_category"], right_on=["_code", "_item"], how="left")
          .select("order_id", "line_no",
                  ((pl.col("_star_skus") | pl.col("_sku_in").fill_null(False))
                   & (pl.col("_star_categories") | pl.col("_cat_in").fill_null(False))).alias("_line_eligible")))
    per_order = ln.group_by("order_id").agg(pl.col("_line_eligible").sum().alias("_eligible_lines"))
    o = (o.join(per_order, on="order_id", how="left")
         .with_columns(
             pl.col("_found").fill_null(False),
             (pl.col("_p_to").is_not_null() & (pl.col("order_date") > pl.col("_p_to"))).alias("_expired"),
             (pl.col("order_date") < pl.col("_p_from")).fill_null(False).alias("_not_yet"),
             (pl.col("_star_tiers") | pl.col("_tier_in").fill_null(False)).fill_null(False).alias("_tier_ok"),
             (pl.col("_star_channels") | pl.col("_chan_in").fill_null(False)).fill_null(False).alias("_channel_ok"),
             pl.col("_eligible_lines").fill_null(0).alias("_eligible_lines"),
         ))
    status = (pl.when(~pl.col("_found")).then(pl.lit("PROMO_UNKNOWN"))
              .when(pl.col("_expired")).then(pl.lit("PROMO_EXPIRED"))
              .when(pl.col("_not_yet")).then(pl.lit("PROMO_NOT_YET_VALID"))
              .when(~pl.col("_tier_ok") | ~pl.col("_channel_ok") | (pl.col("_eligible_lines") == 0))
              .then(pl.lit("PROMO_INELIGIBLE"))
              .otherwise(pl.lit(None, dtype=pl.String)))
    o = o.with_columns(status.alias("_status")).with_columns(pl.col("_status").is_null().alias("_valid"))
    return o, ln


def _promo_findings(orders: Frame, lines: Frame, customers: Frame, products: Frame, promotions: Frame,
                    prior_usage: Frame | None, cfg: ValidationConfig, priority: pl.LazyFrame) -> pl.LazyFrame:
    o, _ = _promo_eval(orders, lines, customers, products, promotions)
    prior = (lazy(prior_usage).select(pl.col("code").str.strip_chars().str.to_uppercase().alias("_code"),
                                      pl.col("used").cast(pl.Int64))
             .group_by("_code").agg(pl.col("used").sum().alias("_prior"))
             if prior_usage is not None else pl.LazyFrame(schema={"_code": pl.String, "_prior": pl.Int64}))
    o = (o.join(priority, on="order_id", how="left").join(prior, on="_code", how="left")
         .with_columns(pl.col("_prior").fill_null(0))
         .sort("priority")
         .with_columns(
             pl.when(pl.col("_valid")).then(pl.col("_valid").cast(pl.Int64).cum_sum().over("_code") - 1)
             .otherwise(None).alias("_earlier"))
         .with_columns(
             (pl.col("_valid") & pl.col("usage_cap").is_not_null()
              & (pl.col("_prior") + pl.col("_earlier") + 1 > pl.col("usage_cap"))).fill_null(False).alias("_exh"))
         .with_columns(pl.when(pl.col("_exh")).then(pl.lit("PROMO_EXHAUSTED")).otherwise(pl.col("_status"))
                       .alias("_status"))
         .collect().lazy())
    code = pl.col("promo_code")
    message = (
        pl.when(pl.col("_status") == "PROMO_UNKNOWN").then(fmt("promo code '{}' is unknown", code))
        .when(pl.col("_status") == "PROMO_EXPIRED").then(fmt("promo {} expired on {} (order date {})", code,
                                                             txt("_p_to"), "order_date"))
        .when(pl.col("_status") == "PROMO_NOT_YET_VALID").then(
            fmt("promo {} is valid from {} (order date {})", code, txt("_p_from"), "order_date"))
        .when(pl.col("_status") == "PROMO_INELIGIBLE").then(fmt(
            "promo {} is not eligible: {}", code,
            pl.concat_list([
                pl.when(~pl.col("_tier_ok")).then(fmt("tier {} not in {}", txt("_tier"), "eligible_tiers")),
                pl.when(~pl.col("_channel_ok")).then(fmt("channel {} not in {}", "_channel",
                                                         "eligible_channels")),
                pl.when(pl.col("_eligible_lines") == 0).then(fmt(
                    "no line's SKU/category is eligible (skus {}, categories {})", "eligible_skus",
                    "eligible_categories")),
            ]).list.drop_nulls().list.join("; ")))
        .when(pl.col("_status") == "PROMO_EXHAUSTED").then(fmt(
            "promo {} reached its usage cap {} ({} earlier runs + {} earlier orders in this run)", code,
            "usage_cap", "_prior", "_earlier"))
        .otherwise(fmt("promo {} valid ({} {})", code, "kind", txt("value")))
    )
    ev = evidence(
        code=pl.col("_code"), found=pl.col("_found"), kind=pl.col("kind"), value=pl.col("value"),
        order_date=pl.col("order_date"), valid_from=pl.col("_p_from"), valid_to=pl.col("_p_to"),
        tier=pl.col("_tier"), tier_ok=pl.col("_tier_ok"), channel=pl.col("_channel"),
        channel_ok=pl.col("_channel_ok"), eligible_lines=pl.col("_eligible_lines"), usage_cap=pl.col("usage_cap"),
        used_in_earlier_runs=pl.col("_prior"), used_earlier_in_run=pl.col("_earlier"), priority=pl.col("priority"),
    )
    bad = emit(o.filter(pl.col("_status").is_not_null()), rule="promo", reason=pl.col("_status"), message=message,
               evidence=ev, cfg=cfg)
    good = o.filter(pl.col("_status").is_null()).select(
        pl.col("order_id"), pl.lit(None, dtype=pl.Int64).alias("line_no"), pl.lit("promo").alias("rule"),
        pl.lit("pass").alias("outcome"), pl.lit(None, dtype=pl.String).alias("reason_code"),
        message.alias("message"), ev.alias("evidence"))
    no_code = passes(lazy(orders).select("order_id"), o.select("order_id"), rule="promo",
                     message="no promo code", evidence=pl.lit('{"promo_code":null}'))
    return pl.concat([bad, good, no_code])


def check_promo(orders: Frame, lines: Frame, customers: Frame, products: Frame, promotions: Frame,
                prior_usage: Frame | None, cfg: ValidationConfig, *, priority: Frame | None = None) -> pl.DataFrame:
    """Promo code checks (see module doc). ``prior_usage``: ``[code, used]`` from earlier runs (None = 0)."""
    return collect([_promo_findings(orders, lines, customers, products, promotions, prior_usage, cfg,
                                    resolve_priority(orders, customers, cfg, priority))])


# ================================================================================================
# Price and discount
# ================================================================================================
def _line_context(orders: Frame, lines: Frame, customers: Frame) -> pl.LazyFrame:
    """Catalog lines with their order's customer, tier, currency and date. Custom and service lines have no
    price-list row: their price is what the channel charged (a custom item is reviewed by CUSTOM_ITEM_REVIEW)."""
    o = (lazy(orders).select("order_id", "customer_id", "currency", "order_date")
         .join(lazy(customers).select("customer_id", "tier"), on="customer_id", how="left"))
    return lazy(lines).filter(is_catalog()).join(o, on="order_id", how="inner")


def _with_expected(ctx: pl.DataFrame, price_lists: Frame) -> pl.DataFrame:
    """``ctx`` (lines with ``tier, sku, currency, order_date, quantity``) + the applicable price-list row:
    ``_exp_price, _max_pct, _pl_min_qty, _pl_from, _pl_to`` (null when there is none).

    Work per distinct (tier, sku, currency, date) -- not per line -- then an as-of join on quantity picks the
    largest ``min_qty <= quantity`` (rows of equal ``min_qty`` valid the same day: latest ``valid_from``).
    """
    keys = ["tier", "sku", "currency", "order_date"]
    combos = ctx.select(keys).unique().with_row_index("_combo")
    pls = lazy(price_lists).select("tier", "sku", "currency", pl.col("min_qty").cast(pl.Int64).alias("_pl_min_qty"),
                                   pl.col("price").alias("_exp_price"), pl.col("valid_from").alias("_pl_from"),
                                   pl.col("valid_to").alias("_pl_to"), pl.col("max_discount_pct").alias("_max_pct"))
    cand = (combos.lazy().join(pls, on=["tier", "sku", "currency"], how="inner")
            .filter((pl.col("_pl_from") <= pl.col("order_date"))
                    & (pl.col("_pl_to").is_null() | (pl.col("_pl_to") >= pl.col("order_date"))))
            .sort(["_combo", "_pl_min_qty", "_pl_from"])
            .unique(subset=["_combo", "_pl_min_qty"], keep="last", maintain_order=True)
            .drop(keys).sort("_pl_min_qty").collect())
    return (ctx.join(combos, on=keys, how="left").sort("quantity")
            .join_asof(cand, left_on="quantity", right_on="_pl_min_qty", by="_combo", strategy="backward",
                       check_sortedness=False)
            .drop("_combo"))


def expected_prices(orders: Frame, lines: Frame, customers: Frame, price_lists: Frame) -> pl.DataFrame:
    """Per line (``order_id, line_no``): the applicable tier price-list row (see :func:`check_price`)."""
    ctx = _line_context(orders, lines, customers).select(
        "order_id", "line_no", "tier", "sku", "currency", "order_date", pl.col("quantity").cast(pl.Int64)).collect()
    return _with_expected(ctx, price_lists).select(
        "order_id", "line_no", "_exp_price", "_max_pct", "_pl_min_qty", "_pl_from", "_pl_to")


def _price_findings(orders: Frame, lines: Frame, customers: Frame, price_lists: Frame, promotions: Frame,
                    cfg: ValidationConfig, products: Frame | None) -> pl.LazyFrame:
    ctx = _with_expected(_line_context(orders, lines, customers)
                         .with_columns(pl.col("quantity").cast(pl.Int64)).collect(), price_lists).lazy()
    no_tier = ctx.filter(pl.col("tier").is_null()).select("order_id", "customer_id").unique("order_id")
    not_eval = emit(no_tier, rule="price", reason="NOT_EVALUATED", cfg=cfg,
                    message=pl.lit("price not checked: the customer (and so its tier) is unknown"),
                    evidence=evidence(customer_id=pl.col("customer_id")))
    ctx = ctx.filter(pl.col("tier").is_not_null())
    has_exp = pl.col("_exp_price").is_not_null()
    priced = pl.col("unit_price").is_not_null()
    tol = pl.max_horizontal(_dec(cfg.price_tolerance_abs, 8),
                            money.mul(_dec(cfg.price_tolerance_rel, 4), 4, pl.col("_exp_price"), 4))
    diff = (pl.col("unit_price") - pl.col("_exp_price"))
    price_list_row = pl.struct(tier=pl.col("tier"), sku=pl.col("sku"), currency=pl.col("currency"),
                               min_qty=pl.col("_pl_min_qty"), price=pl.col("_exp_price"),
                               valid_from=pl.col("_pl_from"), valid_to=pl.col("_pl_to"))
    ctx = ctx.with_columns(tol.alias("_tol"), diff.alias("_diff")).collect().lazy()
    no_price = emit(
        ctx.filter(~has_exp), rule="price", reason="PRICE_MISMATCH", cfg=cfg, line_no="line_no",
        message=fmt("no price for tier {} / sku {} / {} on {} (quantity {})", "tier", "sku", "currency",
                    "order_date", "quantity"),
        evidence=evidence(kind=pl.lit("no_price_list_row"), tier=pl.col("tier"), sku=pl.col("sku"),
                          currency=pl.col("currency"), order_date=pl.col("order_date"),
                          quantity=pl.col("quantity"), actual_unit_price=pl.col("unit_price")),
    )
    mismatch = emit(
        ctx.filter(has_exp & priced & (pl.col("_diff").abs() > pl.col("_tol"))), rule="price",
        reason="PRICE_MISMATCH", cfg=cfg, line_no="line_no",
        message=fmt("unit price {} of {} differs from the {} list price {} (min qty {}) by {}, beyond "
                    "tolerance {}", "unit_price", "sku", "tier", "_exp_price", "_pl_min_qty", "_diff",
                    _q("_tol", 4)),
        evidence=evidence(kind=pl.lit("price_differs"), sku=pl.col("sku"), quantity=pl.col("quantity"),
                          actual_unit_price=pl.col("unit_price"), expected_unit_price=pl.col("_exp_price"),
                          difference=pl.col("_diff"), tolerance=_q("_tol", 4), price_list=price_list_row),
    )
    from_list = emit(
        ctx.filter(has_exp & ~priced), rule="price", reason="PRICED_FROM_LIST", cfg=cfg, line_no="line_no",
        message=fmt("no unit price given for {}: the {} list price {} applies (min qty {})", "sku", "tier",
                    "_exp_price", "_pl_min_qty"),
        evidence=evidence(sku=pl.col("sku"), quantity=pl.col("quantity"), expected_unit_price=pl.col("_exp_price"),
                          price_list=price_list_row),
    )

    # --- discounts --------------------------------------------------------------------------------
    promo_o, promo_l = (x.collect().lazy() for x in _promo_eval(orders, lines, customers, products, promotions))
    amount = pl.coalesce(pl.col("line_amount"),
                         money.round_money(money.mul(pl.col("quantity"), 0, pl.col("_exp_price"), 4)))
    d = (ctx.filter(has_exp & (pl.col("discount_amount") > 0))
         .with_columns(amount.alias("_amount"))
         .filter(pl.col("_amount") > 0)
         .join(promo_o.filter(pl.col("_valid")).select("order_id", "_code", "kind", pl.col("value").alias("_pv")),
               on="order_id", how="left")
         .join(promo_l, on=["order_id", "line_no"], how="left")
         .with_columns((pl.col("_line_eligible").fill_null(False) & pl.col("_code").is_not_null()).alias("_promo_line")))
    # eligible amount of the whole order (for fixed-amount spreads): every line, discounted or not
    elig_total = (ctx.filter(has_exp).with_columns(amount.alias("_amount"))
                  .join(promo_l.filter(pl.col("_line_eligible")), on=["order_id", "line_no"], how="semi")
                  .group_by("order_id").agg(pl.col("_amount").sum().alias("_elig_total")))
    d = d.join(elig_total, on="order_id", how="left")
    pct_allow = money.mul(pl.col("_pv"), 4, pl.col("_amount"), 2)
    fixed_allow = money.mul(pl.col("_pv"), 4, pl.col("_amount"), 2) / pl.col("_elig_total")
    promo_allow = (pl.when(pl.col("_promo_line") & (pl.col("kind") == "percent")).then(pct_allow.cast(D6))
                   .when(pl.col("_promo_line") & (pl.col("kind") == "fixed_amount") & (pl.col("_elig_total") > 0))
                   .then(fixed_allow.cast(D6))
                   .otherwise(_dec(0)))
    tier_allow = money.mul(pl.col("_max_pct"), 6, pl.col("_amount"), 2).cast(D6)
    d_tol = pl.max_horizontal(_dec(cfg.discount_tolerance_abs),
                              money.mul(_dec(cfg.discount_tolerance, 6), 6, pl.col("_amount"), 2).cast(D6))
    d = d.with_columns(tier_allow.alias("_tier_allow"), promo_allow.alias("_promo_allow"), d_tol.alias("_dtol"))
    d = d.with_columns(pl.max_horizontal("_tier_allow", "_promo_allow").alias("_allowed"))
    pct = _q(pl.col("discount_amount").cast(D6) / pl.col("_amount"), 4)
    discount = emit(
        d.filter(pl.col("discount_amount") > pl.col("_allowed") + pl.col("_dtol")), rule="price",
        reason="DISCOUNT_NOT_APPROVED", cfg=cfg, line_no="line_no",
        message=fmt("discount {} on {} ({} of {}) exceeds the allowed {} (tier {} max {}{})",
                    "discount_amount", "sku", pct, "_amount", _q("_allowed", 2), "tier",
                    "_max_pct",
                    pl.when(pl.col("_code").is_not_null())
                    .then(fmt("; promo {} {} {} allows {}", "_code", "kind", "_pv",
                                    _q("_promo_allow", 2)))
                          .otherwise(pl.lit(""))),
        evidence=evidence(sku=pl.col("sku"), line_amount=pl.col("_amount"), discount_amount=pl.col("discount_amount"),
                          discount_pct=pct, tier=pl.col("tier"), tier_max_discount_pct=pl.col("_max_pct"),
                          tier_allowance=_q("_tier_allow", 2), promo_code=pl.col("_code"),
                          promo_kind=pl.col("kind"), promo_value=pl.col("_pv"),
                          promo_applies_to_line=pl.col("_promo_line"),
                          promo_allowance=_q("_promo_allow", 2),
                          allowed=_q("_allowed", 2), tolerance=_q("_dtol", 2)),
    )
    findings = pl.concat([not_eval, no_price, mismatch, from_list, discount]).collect()
    lines_checked = ctx.group_by("order_id").agg(pl.len().alias("_n"))
    return pl.concat([findings.lazy(), passes(lines_checked, findings, rule="price",
                                       message=fmt("{} line(s) at the tier price, discounts within limits",
                                                   "_n"),
                                       evidence=evidence(lines_checked=pl.col("_n")))])


def check_price(orders: Frame, lines: Frame, customers: Frame, price_lists: Frame, promotions: Frame,
                cfg: ValidationConfig, *, products: Frame | None = None) -> pl.DataFrame:
    """``PRICE_MISMATCH`` / ``PRICED_FROM_LIST`` / ``DISCOUNT_NOT_APPROVED`` (see module doc).

    ``products`` (ref.products) lets a category-restricted promotion explain a discount; without it only
    promotions open to all categories do.
    """
    return collect([_price_findings(orders, lines, customers, price_lists, promotions, cfg, products)])


def estimate_order_totals(orders: Frame, lines: Frame, customers: Frame, price_lists: Frame) -> pl.DataFrame:
    """``[order_id, value]``: ``order_total``, or for an order with unpriced lines its list-price value.

    The estimate: sum of ``line_amount`` (an unpriced line: quantity x its expected tier price, rounded once,
    half away from zero) - ``discount_total`` + ``tax_total`` (unless ``prices_include_tax``) +
    ``shipping_total``. Tax the channel did not state on unpriced lines is not estimated. Null when an unpriced
    line has no price-list row.
    """
    todo = lazy(orders).filter(pl.col("order_total").is_null()).collect()  # only these need an estimate
    todo_lines = lazy(lines).join(todo.lazy().select("order_id"), on="order_id", how="semi").collect()
    exp = expected_prices(todo, todo_lines, customers, price_lists).lazy()
    est = (todo_lines.lazy().select("order_id", "line_no", "quantity", "line_amount")
           .join(exp.select("order_id", "line_no", "_exp_price"), on=["order_id", "line_no"], how="left")
           .with_columns(pl.coalesce(pl.col("line_amount"),
                                     money.round_money(money.mul(pl.col("quantity"), 0, pl.col("_exp_price"), 4)))
                         .alias("_a"))
           .group_by("order_id")
           .agg(pl.when(pl.col("_a").is_null().any()).then(None).otherwise(pl.col("_a").sum()).alias("_items")))
    tax = pl.when(pl.col("prices_include_tax")).then(pl.lit(0, money.MONEY)).otherwise(pl.col("tax_total"))
    return (lazy(orders).select("order_id", "order_total", "discount_total", "tax_total", "shipping_total",
                                "prices_include_tax")
            .join(est, on="order_id", how="left")
            .select("order_id", pl.coalesce(pl.col("order_total"),
                                            (pl.col("_items") - pl.col("discount_total") + tax
                                             + pl.col("shipping_total"))).cast(money.MONEY).alias("value"))
            .collect())
