"""Frame typing shared by the validation checks: a check accepts eager or lazy frames alike."""

from __future__ import annotations

import polars as pl

Frame = pl.DataFrame | pl.LazyFrame


def lazy(df: Frame) -> pl.LazyFrame:
    return df.lazy() if isinstance(df, pl.DataFrame) else df


__all__ = ["Frame", "lazy"]
