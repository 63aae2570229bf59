"""Stable evidence: re-evaluating an order whose outcome did not change keeps the words and numbers it had.

Held orders are evaluated again on every run (holds release themselves when their cause goes away). Their
decision depends only on the inputs, but the evidence text of a re-evaluation is relative to the run: the
credit exposure of a held order includes orders approved since it was placed, a promo's uses split between
"earlier runs" and "this run" differently, the order's rank among the orders evaluated together changes. So:

- ``core.validation_results``: an order whose findings have the same signature as before (rule, line,
  outcome, reason for every finding: :data:`SIGNATURE_COLUMNS`) keeps its previous rows; any change of outcome
  replaces them all (``services.validation.write_results``, in SQL);
- ``core.order_holds``: a hold that stays open (same order, version and reason) keeps its message and evidence
  from when it was placed (``since`` is kept by the workflow already).

Rerunning with no new input therefore changes no table (a test hashes every table before and after).
"""

from __future__ import annotations

import polars as pl

# what makes an order's findings "the same" (every finding's rule, line, outcome and reason): the signature
# services.validation.write_results compares in SQL, over findings it reads from disk
SIGNATURE_COLUMNS = ("rule", "line_no", "outcome", "reason_code")


def keep_open_hold_text(new: pl.DataFrame, old: pl.DataFrame) -> pl.DataFrame:
    """``new`` holds, with message and evidence from ``old`` for the holds that stay open."""
    if old.height == 0 or new.height == 0:
        return new
    key = ["order_id", "version", "reason_code"]
    prev = old.select(*key, pl.col("message").alias("_m"), pl.col("evidence").alias("_e"))
    return (new.join(prev, on=key, how="left")
            .with_columns(pl.coalesce("_m", "message").alias("message"), pl.coalesce("_e", "evidence").alias("evidence"))
            .select(new.columns))
