"""Anomaly baselines as state (``core.anomaly_baselines``): what the quantity / order-value check needs from
history, kept per run instead of recomputed from every order. Pure and vectorised (Polars), no I/O.

An **observation** is one value in one group of one level (:data:`LEVEL_KEYS`): a line's quantity in its
``customer_sku``, ``customer`` and ``sku_population`` groups, an order's ``items_subtotal`` in its
``order_value`` group (customer, currency). Rows with a null key or value are no observation (as in the check).

The **state** holds, per group, the ``W`` most recent observations (``W`` = the level's ``baseline_window``),
"recent" ordered by ``order_ts``, then value, then ``order_id``, ``line_no`` (the check orders observations at
the same instant by value; the last two keys only make the kept rows deterministic: rows equal in time and
value give the same median and MAD whichever is kept).

- :func:`observations` -- the observations of some orders and their lines;
- :func:`update_state` -- state + new observations (-> the last ``W`` per group). Exact for insertions in any
  time order: the last ``W`` of (last ``W`` of H) and N are the last ``W`` of H and N. An order whose new
  version replaces its observations (``replaced``) removes its old rows; a group that was full and loses a row
  cannot know its next older observation: the caller refills such groups from the orders
  (:func:`groups_losing_rows`; the service reads those groups' observations from ``core``);
- :func:`baseline_from_state` -- each evaluated line's / order's baseline (level, median, MAD, number of
  observations) from the state and the run's observations strictly before it (earlier orders of the same
  run count, as in the full computation);
- :func:`unservable_groups` -- the groups whose state cannot answer a query exactly: a *full* group (``W``
  rows: older observations may have been dropped) asked about an order at or before its newest kept
  observation (a backdated order, or an order re-evaluated after newer ones were recorded, such as a held
  order). The service reads those groups' whole history from ``core`` (bounded: only those groups) and adds
  it, so the results equal the full computation in every case; for orders that arrive in time order the
  state alone suffices.

Exactness argument: for a query at ``t`` in a group whose state is complete (fewer than ``W`` rows: nothing
was ever dropped) or whose ``W`` kept rows all lie strictly before ``t``, every dropped observation is older
than ``W`` kept ones before ``t``, so it cannot be among the last ``W`` before ``t``.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas import AnomalyBaselineModel, empty, polars_schema
from som_pipeline.validation.config import ValidationConfig
from som_pipeline.validation.frames import Frame, lazy

#: level -> (key1, key2) columns of the observed order / line (key2 None: '' in the state)
LEVEL_KEYS: dict[str, tuple[str, str | None]] = {
    "customer_sku": ("customer_id", "sku"),
    "customer": ("customer_id", None),
    "sku_population": ("sku", None),
    "order_value": ("customer_id", "currency"),
}
QTY_LEVELS = ("customer_sku", "customer", "sku_population")
GROUP = ["level", "key1", "key2"]
OBS_KEY = [*GROUP, "order_id", "line_no"]
RECENT_FIRST = ["order_ts", "value", "order_id", "line_no"]
SCHEMA = polars_schema(AnomalyBaselineModel)


def windows(cfg: ValidationConfig) -> dict[str, int]:
    """level -> ``W``: how many observations a group keeps."""
    return {**dict.fromkeys(QTY_LEVELS, cfg.qty_baseline_window), "order_value": cfg.value_baseline_window}


def empty_state() -> pl.DataFrame:
    return empty(AnomalyBaselineModel)


def observations(orders: Frame, lines: Frame, *, require_value: bool = True,
                 levels: tuple[str, ...] | None = None) -> pl.LazyFrame:
    """The observations of ``orders`` and their ``lines`` (state columns). ``require_value=False``: also rows
    without a value (the groups an evaluated order asks about). ``levels``: only those levels (default: all)."""
    o = lazy(orders).select("order_id", "customer_id", "order_ts", "currency", "items_subtotal")
    ln = (lazy(lines).select("order_id", "line_no", "sku", "quantity")
          .join(o.select("order_id", "customer_id", "order_ts"), on="order_id", how="inner"))
    qty = pl.col("quantity").cast(SCHEMA["value"])
    parts = []
    for level, (k1, k2) in LEVEL_KEYS.items():
        if levels is not None and level not in levels:
            continue
        src, value, line_no = ((o, pl.col("items_subtotal").cast(SCHEMA["value"]), pl.lit(None, pl.Int64))
                               if level == "order_value" else (ln, qty, pl.col("line_no").cast(pl.Int64)))
        keep = pl.col(k1).is_not_null() & (pl.col(k2).is_not_null() if k2 else pl.lit(True))
        if require_value:
            keep = keep & value.is_not_null()
        parts.append(src.filter(keep).select(
            pl.lit(level).alias("level"), pl.col(k1).alias("key1"),
            (pl.col(k2) if k2 else pl.lit("")).alias("key2"),
            pl.col("order_ts").cast(SCHEMA["order_ts"]), "order_id", line_no.alias("line_no"), value.alias("value")))
    return pl.concat(parts)


def _last_w(obs: pl.LazyFrame, w: dict[str, int]) -> pl.LazyFrame:
    """The ``W`` most recent observations of each group (state order: group, then most recent first)."""
    return (obs.sort([*GROUP, *RECENT_FIRST], descending=[False] * 3 + [True] * 4, nulls_last=True)
            .filter(pl.int_range(pl.len()).over(GROUP) < pl.col("level").replace_strict(w, return_dtype=pl.Int64))
            .select(list(SCHEMA)))


def update_state(state: Frame, new: Frame, cfg: ValidationConfig, *,
                 replaced: Frame | None = None) -> pl.DataFrame:
    """The state of the groups in ``state`` and ``new`` after recording ``new`` observations: the last ``W``
    per group. ``replaced``: ``[order_id]`` of orders whose earlier observations are void (a new version: its
    current observations are in ``new``). ``new`` rows replace state rows of the same observation key (and the last
    of equal keys in ``new`` wins)."""
    s = lazy(state).select(list(SCHEMA))
    if replaced is not None:
        s = s.join(lazy(replaced).select("order_id").unique(), on="order_id", how="anti")
    n = lazy(new).select(list(SCHEMA)).unique(subset=OBS_KEY, keep="last", maintain_order=True)
    merged = pl.concat([s.join(n.select(OBS_KEY), on=OBS_KEY, how="anti", nulls_equal=True), n])
    return _last_w(merged, windows(cfg)).collect()


def rebuild_state(orders: Frame, lines: Frame, cfg: ValidationConfig) -> pl.DataFrame:
    """The state from every order (what :func:`update_state` run after run maintains)."""
    return update_state(empty_state(), observations(orders, lines), cfg)


def groups_losing_rows(state: Frame, replaced: Frame, cfg: ValidationConfig) -> pl.DataFrame:
    """``[level, key1, key2]`` of full groups of ``state`` holding a row of a ``replaced`` order: after the
    removal their state lacks the next older observation (refill them from the orders)."""
    s = lazy(state)
    full = s.group_by(GROUP).agg(pl.len().alias("_n")).filter(
        pl.col("_n") >= pl.col("level").replace_strict(windows(cfg), return_dtype=pl.Int64)).select(GROUP)
    hit = s.join(lazy(replaced).select("order_id").unique(), on="order_id", how="semi").select(GROUP).unique()
    return full.join(hit, on=GROUP, how="semi").collect()


def unservable_groups(state: Frame, queries: Frame, cfg: ValidationConfig) -> pl.DataFrame:
    """``[level, key1, key2]`` of full groups of ``state`` asked about at or before their newest kept
    observation (``queries``: ``[level, key1, key2, order_ts]``, e.g. ``observations(..., require_value=False)``
    of the orders to evaluate): the state alone cannot give those queries their last ``W`` observations."""
    newest = (lazy(state).group_by(GROUP).agg(pl.len().alias("_n"), pl.col("order_ts").max().alias("_newest"))
              .filter(pl.col("_n") >= pl.col("level").replace_strict(windows(cfg), return_dtype=pl.Int64)))
    return (lazy(queries).select(*GROUP, "order_ts").join(newest, on=GROUP, how="inner")
            .filter(pl.col("order_ts") <= pl.col("_newest")).select(GROUP).unique().collect())


def history_from_state(state: Frame, orders: Frame, lines: Frame, level: str | None = None) -> pl.LazyFrame:
    """Observations the baselines of ``orders`` are computed from: ``state`` (minus the rows of ``orders``:
    their current version counts) and the observations of ``orders`` themselves. ``level``: only that level's
    (the same rows: every step keys on the level)."""
    run = observations(orders, lines, levels=None if level is None else (level,))
    if level is not None:
        state = lazy(state).filter(pl.col("level") == level)
    s = (lazy(state).select(list(SCHEMA)).unique(subset=OBS_KEY, maintain_order=True)  # state + refills may overlap
         .join(lazy(orders).select("order_id"), on="order_id", how="anti"))
    return pl.concat([s.join(run.select(OBS_KEY), on=OBS_KEY, how="anti", nulls_equal=True), run])


def level_history(hist: pl.LazyFrame, level: str, *, with_order: bool = False) -> pl.LazyFrame:
    """One level of ``hist`` in the check's column names: keys ``customer_id``/``sku``/``currency``, ``_ts``, and
    the value as a float score (``_q`` for quantities, ``_v`` for order values); ``order_id`` if ``with_order``."""
    k1, k2 = LEVEL_KEYS[level]
    cols = [pl.col("key1").alias(k1)] + ([pl.col("key2").alias(k2)] if k2 else [])
    value = "_v" if level == "order_value" else "_q"
    return hist.filter(pl.col("level") == level).select(
        *(["order_id"] if with_order else []), *cols, pl.col("order_ts").alias("_ts"),
        pl.col("value").cast(pl.Float64).alias(value))


def baseline_from_state(state: Frame, orders: Frame, lines: Frame,
                        cfg: ValidationConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each evaluated line's and order's baseline from ``state`` and the observations of ``orders`` strictly
    before it: ``([order_id, line_no, level, median, mad, n], [order_id, median, mad, n])`` (order value:
    null median when the customer has fewer than ``[order_value] min_history`` past orders)."""
    from som_pipeline.validation.anomaly import baselines

    return baselines(orders, lines, history_from_state(state, orders, lines), cfg)


__all__ = ["LEVEL_KEYS", "QTY_LEVELS", "baseline_from_state", "empty_state", "groups_losing_rows",
           "history_from_state", "level_history", "observations", "rebuild_state", "unservable_groups",
           "update_state", "windows"]
