"""Deterministic synthetic daily demand (tests and ``bench/bench_forecast.py``; no I/O, numpy only).

A mix of series shapes, each a full daily grid ending at ``end``:
- ``seasonal`` (share ``smooth_share``): level x weekly profile (weekend dip) x linear trend, Poisson noise;
- ``intermittent``: demand on a random ~3-30 % of days, Poisson sizes;
- ``lumpy``: demand on a random ~3-30 % of days, heavy-tailed (negative binomial) sizes;
- a few ``new`` series that start late (short history) and a few almost-dead ones (sparse).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

WEEK = np.array([1.2, 1.25, 1.2, 1.1, 1.0, 0.65, 0.6])  # Mon..Sun


def synthetic_demand(n_series: int, days: int, *, seed: int = 7, end: date = date(2026, 6, 30),
                     warehouses: int = 4, smooth_share: float = 0.45, intermittent_share: float = 0.35,
                     new_share: float = 0.02, sparse_share: float = 0.02) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(demand, truth)``: demand ``sku, warehouse_id, ds, y`` and per series its generating ``kind``."""
    rng = np.random.default_rng(seed)
    n, t = n_series, np.arange(days)
    kind = rng.choice(3, size=n, p=[smooth_share, intermittent_share, 1 - smooth_share - intermittent_share])
    start = end - timedelta(days=days - 1)
    dow = (np.datetime64(start) + t).astype("datetime64[D]").astype(int)  # days since epoch
    weekday = (dow + 3) % 7  # 1970-01-01 was a Thursday -> Monday = 0
    level = np.exp(rng.normal(1.6, 1.0, n))[:, None]
    amp = rng.uniform(0.3, 1.0, n)[:, None]
    profile = 1 + amp * (WEEK[weekday][None, :] - 1)
    trend = 1 + rng.normal(0, 0.5, n)[:, None] * (t[None, :] / days)
    mu = np.clip(level * profile * trend, 0.05, None)
    smooth = rng.poisson(mu)
    p = rng.uniform(0.03, 0.3, n)[:, None]
    occurs = rng.random((n, days)) < p
    size = rng.poisson(np.exp(rng.normal(1.0, 0.6, n))[:, None], (n, days)) + 1
    big = rng.negative_binomial(1, 1 / (1 + np.exp(rng.normal(1.5, 0.6, n)))[:, None], (n, days)) + 1
    y = np.where(kind[:, None] == 0, smooth, np.where(kind[:, None] == 1, occurs * size, occurs * big))
    names = np.array(["seasonal", "intermittent", "lumpy"])[kind].astype(object)
    # new series: history starts in the last 20-60 days; sparse: a couple of sales in the whole history
    u = rng.random(n)
    first = np.zeros(n, dtype=int)
    new = u < new_share
    first[new] = days - rng.integers(20, 61, new.sum())
    sparse = (u >= new_share) & (u < new_share + sparse_share)
    y[sparse] = (rng.random((sparse.sum(), days)) < 0.004) * rng.integers(1, 4, (sparse.sum(), days))
    names[new], names[sparse] = "new", "sparse"
    mask = t[None, :] >= first[:, None]
    # a series starts at its first day with demand (as daily_demand builds it)
    y = np.where(mask, y, 0)
    firstsale = np.where((y > 0).any(axis=1), (y > 0).argmax(axis=1), days - 1)
    keep = t[None, :] >= firstsale[:, None]
    sku = np.array([f"SKU-{i // warehouses:05d}" for i in range(n)])
    wh = np.array([f"WH-{i % warehouses + 1}" for i in range(n)])
    rows, cols = np.nonzero(keep)
    demand = pl.DataFrame({
        "sku": sku[rows], "warehouse_id": wh[rows],
        "ds": (np.datetime64(start) + cols).astype("datetime64[D]"), "y": y[rows, cols].astype(np.int64),
    }).with_columns(pl.col("ds").cast(pl.Date))
    truth = pl.DataFrame({"sku": sku, "warehouse_id": wh, "kind": names.astype(str)})
    return demand, truth


__all__ = ["synthetic_demand"]
