"""Frame typing shared by the validation checks: a check accepts eager or lazy frames alike."""

from __future__ import annotations

import polars as pl

Frame = pl.DataFrame | pl.LazyFrame


def lazy(df: Frame) -> pl.LazyFrame:
    return df.lazy() if isinstance(df, pl.DataFrame) else df


def eager(df: Frame) -> pl.DataFrame:
    return df.collect() if isinstance(df, pl.LazyFrame) else df


def is_catalog() -> pl.Expr:
    """True for an order line that sells a catalog product (``item_kind`` 'catalog'; null counts as catalog):
    only those are looked up in ref.products / the price lists and reserve stock. 'custom' and 'service'
    lines carry a placeholder sku (see ``schemas.orders._Line.item_kind``)."""
    return pl.col("item_kind").fill_null("catalog") == "catalog"


__all__ = ["Frame", "eager", "is_catalog", "lazy"]
