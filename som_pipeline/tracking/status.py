"""Shipment status from carrier events (pure, vectorised): the furthest milestone reached, never backwards.

A late IN_TRANSIT after DELIVERED is history, not a status: the status is the highest-ranked milestone among a
shipment's events (EXCEPTION ranks nowhere: it is recorded as the open exception until a later event shows
progress). ``milestone_at`` is the first time that rank was reached; ``last_event_at`` the latest event of any
kind (a scan counts as a sign of life for the no-scan alert).
"""

from __future__ import annotations

import polars as pl

RANK = {"LABEL_CREATED": 0, "PICKED_UP": 1, "IN_TRANSIT": 2, "OUT_FOR_DELIVERY": 3, "AVAILABLE_FOR_PICKUP": 4,
        "DELIVERED": 5}


def shipment_status(events: pl.DataFrame) -> pl.DataFrame:
    """``shipment_id, milestone, milestone_at, last_event_at, open_exception, delivered_at, signed_by`` from the
    events of the given shipments (``shipment_id, milestone, exception_subtype, event_at, signed_by``)."""
    e = events.with_columns(pl.col("milestone").replace_strict(RANK, default=None, return_dtype=pl.Int64)
                            .alias("_rank"))
    prog = e.filter(pl.col("_rank").is_not_null())
    best = (prog.group_by("shipment_id").agg(pl.col("_rank").max().alias("_best"))
            .join(prog, on="shipment_id").filter(pl.col("_rank") == pl.col("_best"))
            .group_by("shipment_id").agg(pl.col("milestone").first(), pl.col("event_at").min().alias("milestone_at"),
                                         pl.col("signed_by").drop_nulls().first()))
    last_progress = prog.group_by("shipment_id").agg(pl.col("event_at").max().alias("_last_prog"))
    exc = (e.filter(pl.col("milestone") == "EXCEPTION").sort("event_at")
           .group_by("shipment_id").agg(pl.col("exception_subtype").last().alias("_exc"),
                                        pl.col("event_at").max().alias("_exc_at")))
    last = e.group_by("shipment_id").agg(pl.col("event_at").max().alias("last_event_at"))
    out = (last.join(best, on="shipment_id", how="left").join(last_progress, on="shipment_id", how="left")
           .join(exc, on="shipment_id", how="left"))
    delivered = pl.col("milestone") == "DELIVERED"
    return out.select(
        "shipment_id", pl.col("milestone").fill_null("LABEL_CREATED"),
        pl.coalesce("milestone_at", "last_event_at").alias("milestone_at"), "last_event_at",
        # an exception stays open until progress after it (a delivered shipment has none open)
        pl.when(pl.col("_exc").is_not_null() & ~delivered
                & (pl.col("_last_prog").is_null() | (pl.col("_exc_at") >= pl.col("_last_prog"))))
        .then(pl.col("_exc")).alias("open_exception"),
        pl.when(delivered).then(pl.col("milestone_at")).alias("delivered_at"),
        pl.when(delivered).then(pl.col("signed_by")).alias("signed_by"),
    ).sort("shipment_id")
