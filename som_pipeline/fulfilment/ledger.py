"""The stock ledger: movement kinds, what each does to the balances, and movements built from frames.

Stock is one append-only table, ``core.stock_ledger``; every balance is a sum over it, so on-hand cannot drift
from the movement history (the complaint of Odoo and ERPNext users: a cached on-hand that no longer equals the
moves). A movement has one signed ``qty_delta``; its *kind* says which balances it moves (:data:`EFFECTS`):

=============== ======= ======== ======= ==========================================================
kind            on_hand reserved picked  meaning (sign of qty_delta)
=============== ======= ======== ======= ==========================================================
opening         +1      0        0       first balance of a warehouse x SKU (the first snapshot) (+)
receipt         +1      0        0       purchase-order receipt (+)
transfer_in     +1      0        0       transfer received from another warehouse (+)
transfer_out    +1      0        0       transfer sent (-)
return_receipt  +1      0        0       customer return put back to stock (+)
scrap           +1      0        0       written off (-)
adjustment      +1      0        0       cycle count difference (+ or -); a short pick's missing units (-)
reserve         0       +1       0       units promised to a released pick task (+)
release         0       +1       0       a promise withdrawn: task cancelled or closed short (-)
pick            0       +1       -1      units taken from the bin for a task (-): reserved -> picked
putaway         0       0        +1      picked units put back to the bin (-), e.g. the order was cancelled
ship            +1      0        +1      picked units leave the building (-)
=============== ======= ======== ======= ==========================================================

``available = on_hand - reserved - picked``. A unit's life: reserve (+q) -> pick (-q) -> ship (-q) leaves
available where the reserve put it and on-hand q lower. Rules checked on every run (blocking checks):
on-hand and available never negative after any movement; every shipped unit has one pick and one ship
movement; balances equal opening + the sum of movements (they are that sum: ``core.v_stock``).

Movement ids are ``sha256(kind|warehouse|sku|source_doc|source_line)``: posting the same document again
is a no-op (the service inserts only ids it has not recorded), so reruns and re-dropped files are safe.
"""

from __future__ import annotations

import polars as pl

from som_pipeline.hashing import sha256_series
from som_pipeline.schemas import MOVEMENT_KINDS, StockMovementModel, conform

# kind -> (on_hand, reserved, picked) coefficients of qty_delta
EFFECTS: dict[str, tuple[int, int, int]] = {
    "opening": (1, 0, 0),
    "receipt": (1, 0, 0),
    "transfer_in": (1, 0, 0),
    "transfer_out": (1, 0, 0),
    "return_receipt": (1, 0, 0),
    "scrap": (1, 0, 0),
    "adjustment": (1, 0, 0),
    "reserve": (0, 1, 0),
    "release": (0, 1, 0),
    "pick": (0, 1, -1),
    "putaway": (0, 0, 1),
    "ship": (1, 0, 1),
}
assert set(EFFECTS) == set(MOVEMENT_KINDS), "every movement kind has its effect"

# the sign qty_delta must have per kind (None: either)
SIGNS: dict[str, int | None] = {"opening": 1, "receipt": 1, "transfer_in": 1, "transfer_out": -1,
                                "return_receipt": 1, "scrap": -1, "adjustment": None, "reserve": 1, "release": -1,
                                "pick": -1, "putaway": -1, "ship": -1}

BALANCES = ("on_hand", "reserved", "picked")


def effect(balance: str) -> pl.Expr:
    """The contribution of each movement to ``balance`` (on_hand | reserved | picked)."""
    i = BALANCES.index(balance)
    coef = pl.col("kind").replace_strict({k: v[i] for k, v in EFFECTS.items()}, return_dtype=pl.Int64)
    return coef * pl.col("qty_delta")


def balances(ledger: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """``warehouse_id, sku, on_hand, reserved, picked, available`` summed from movements (the reference
    implementation of the ``core.v_stock`` view; a test holds the two equal)."""
    lf = ledger.lazy() if isinstance(ledger, pl.DataFrame) else ledger
    out = lf.group_by("warehouse_id", "sku").agg(*(effect(b).sum().alias(b) for b in BALANCES))
    return (out.with_columns((pl.col("on_hand") - pl.col("reserved") - pl.col("picked")).alias("available"))
            .sort("warehouse_id", "sku").collect())


def movements(df: pl.DataFrame, kind: str, *, reason: pl.Expr | str, source_doc: pl.Expr | str,
              source_line: pl.Expr | str | None, occurred_at: pl.Expr, recorded_at, run_id: str,
              qty: pl.Expr | str = "qty_delta") -> pl.DataFrame:
    """``core.stock_ledger`` rows of ``kind`` from ``df`` (one movement per row with a non-zero quantity):
    ``df`` has ``warehouse_id``, ``sku`` and the columns the expressions use. ``qty`` is the signed delta.
    Raises ``ValueError`` if a delta has the wrong sign for its kind (a programming error, not input)."""
    if kind not in EFFECTS:
        raise ValueError(f"unknown movement kind {kind!r}")

    def ex(v):
        return pl.lit(v) if isinstance(v, str) or v is None else v

    q = pl.col(qty) if isinstance(qty, str) else qty
    out = df.select(
        "warehouse_id", "sku", q.cast(pl.Int64).alias("qty_delta"), pl.lit(kind).alias("kind"),
        ex(reason).cast(pl.String).alias("reason"), ex(source_doc).cast(pl.String).alias("source_doc"),
        ex(source_line).cast(pl.String).alias("source_line"), occurred_at.alias("occurred_at"),
    ).filter(pl.col("qty_delta") != 0)
    sign = SIGNS[kind]
    if sign is not None and out.filter(pl.col("qty_delta") * sign < 0).height:
        raise ValueError(f"{kind} movements must have qty_delta {'> 0' if sign > 0 else '< 0'}")
    out = out.with_columns(
        sha256_series(pl.concat_str([pl.lit(kind), pl.col("warehouse_id"), pl.col("sku"), pl.col("source_doc"),
                                     pl.col("source_line").fill_null("-")], separator="|"), out).alias("movement_id"),
        pl.lit(recorded_at).cast(pl.Datetime("us", "UTC")).alias("recorded_at"),
        pl.lit(run_id).alias("run_id"),
    )
    return conform(out, StockMovementModel)  # seq: given by the service when it posts (ledger order)


def cycle_count(snapshot: pl.DataFrame, on_hand_at_count: pl.DataFrame, counted: set[tuple[str, str]] | None = None,
                *, snapshot_id: str, recorded_at, run_id: str) -> pl.DataFrame:
    """Movements that make the ledger agree with a stock snapshot (``ref.inventory``: warehouse_id, sku,
    on_hand, as_of): an **opening** movement for a warehouse x SKU the ledger has never seen, else an
    **adjustment** of the difference between the count and the ledger's on-hand at the count's time
    (``on_hand_at_count``: warehouse_id, sku, on_hand -- movements up to ``as_of``; later ones are not what the
    counter saw). A snapshot counts only the rows it holds: a SKU it does not list is not zeroed."""
    seen = on_hand_at_count.select("warehouse_id", "sku", pl.col("on_hand").alias("_ledger"), pl.lit(True).alias("_seen"))
    d = (snapshot.join(seen, on=["warehouse_id", "sku"], how="left")
         .with_columns(pl.col("_seen").fill_null(False), pl.col("_ledger").fill_null(0)))
    d = d.with_columns((pl.col("on_hand").cast(pl.Int64) - pl.col("_ledger")).alias("_diff"))
    opening = d.filter(~pl.col("_seen"))
    adjust = d.filter(pl.col("_seen") & (pl.col("_diff") != 0))
    common = dict(source_doc=pl.lit(snapshot_id), source_line=None, occurred_at=pl.col("as_of"),
                  recorded_at=recorded_at, run_id=run_id, qty="_diff")
    return pl.concat([
        movements(opening, "opening", reason="opening balance from the stock snapshot", **common),
        movements(adjust, "adjustment",
                  reason=pl.format("cycle count: counted {}, ledger had {}", pl.col("on_hand"), pl.col("_ledger")),
                  **common),
    ])
