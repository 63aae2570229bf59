"""Stable evidence: re-evaluating an order whose outcome did not change keeps the words and numbers it had.

Held orders are evaluated again on every run (holds release themselves when their cause goes away). Their
decision depends only on the inputs, but the evidence text of a re-evaluation is relative to the run: the
credit exposure of a held order includes orders approved since it was placed, a promo's uses split between
"earlier runs" and "this run" differently, the order's rank among the orders evaluated together changes. So:

- ``core.validation_results``: an order whose findings have the same signature as before (rule, line,
  outcome, reason for every finding) keeps its previous rows; any change of outcome replaces them all;
- ``core.order_holds``: a hold that stays open (same order, version and reason) keeps its message and evidence
  from when it was placed (``since`` is kept by the workflow already).

Rerunning with no new input therefore changes no table (a test hashes every table before and after).
"""

from __future__ import annotations

import polars as pl

_SIG = ("rule", "line_no", "outcome", "reason_code")


def _signatures(results: pl.DataFrame) -> pl.DataFrame:
    return (results.select("order_id", pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in _SIG],
                                                      separator="|").alias("_k"))
            .group_by("order_id").agg(pl.col("_k").sort().str.join(";").alias("_sig")))


def keep_unchanged_results(new: pl.DataFrame, old: pl.DataFrame) -> pl.DataFrame:
    """``new`` results, with the ``old`` rows for orders whose finding signature is unchanged."""
    if old.height == 0 or new.height == 0:
        return new
    same = (_signatures(new).join(_signatures(old), on="order_id", suffix="_old")
            .filter(pl.col("_sig") == pl.col("_sig_old")).select("order_id"))
    if same.height == 0:
        return new
    kept = old.join(same, on="order_id", how="semi").select(new.columns)
    return pl.concat([new.join(same, on="order_id", how="anti"), kept])


def keep_open_hold_text(new: pl.DataFrame, old: pl.DataFrame) -> pl.DataFrame:
    """``new`` holds, with message and evidence from ``old`` for the holds that stay open."""
    if old.height == 0 or new.height == 0:
        return new
    key = ["order_id", "version", "reason_code"]
    prev = old.select(*key, pl.col("message").alias("_m"), pl.col("evidence").alias("_e"))
    return (new.join(prev, on=key, how="left")
            .with_columns(pl.coalesce("_m", "message").alias("message"), pl.coalesce("_e", "evidence").alias("evidence"))
            .select(new.columns))
