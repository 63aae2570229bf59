"""The documented processing order of orders: who is served first when stock, credit or a promo cap is scarce.

``order_ts``, then customer tier (``[priority] tier_order``, platinum first; unknown customers last), then
``order_id``. Stock (:mod:`~som_pipeline.validation.inventory`), credit exposure
(:mod:`~som_pipeline.validation.credit`) and promo usage caps (:func:`~som_pipeline.validation.rules.check_promo`)
are consumed in this order.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, lazy


def priority_frame(orders: Frame, customers: Frame, cfg: ValidationConfig) -> pl.LazyFrame:
    rank = {t: i for i, t in enumerate(cfg.tier_order)}
    return (
        lazy(orders).select("order_id", "order_ts", "customer_id")
        .join(lazy(customers).select("customer_id", "tier"), on="customer_id", how="left")
        .with_columns(pl.col("tier").replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
                      .fill_null(len(rank)).alias("_tier_rank"))
        .sort(["order_ts", "_tier_rank", "order_id"], nulls_last=True)
        .select("order_id", pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("priority"))
    )


def order_priority(orders: Frame, customers: Frame, cfg: ValidationConfig) -> pl.DataFrame:
    """``[order_id, priority]``: 1 = served first. Order: ``order_ts``, tier (``cfg.tier_order``), ``order_id``."""
    return priority_frame(orders, customers, cfg).collect()


def resolve_priority(orders: Frame, customers: Frame | None, cfg: ValidationConfig,
                     priority: Frame | None) -> pl.LazyFrame:
    """``[order_id, priority]``: the caller's ``priority`` when given, else the documented order of ``orders``
    (without ``customers`` every order ranks as an unknown customer's)."""
    if priority is not None:
        return lazy(priority).select("order_id", "priority")
    if customers is None:
        customers = pl.DataFrame(schema={"customer_id": pl.String, "tier": pl.String})
    return priority_frame(orders, customers, cfg)


__all__ = ["order_priority", "priority_frame", "resolve_priority"]
