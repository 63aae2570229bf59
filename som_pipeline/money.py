"""Exact money. Amounts are decimals, never floats.

Types
- ``MONEY``      Decimal(18, 2): every stored amount in the order currency (line amounts, totals, tax).
- ``UNIT_PRICE`` Decimal(18, 4): unit prices (EDI and B2B price lists quote to 4 places).
- ``RATE``       Decimal(9, 6):  tax and discount rates (0.0825 = 8.25 %).

The rounding rule (one place, one rule)
- Products are computed at full scale first: Polars ``Decimal(a) * Decimal(b)`` keeps only
  ``max(scale_a, scale_b)`` digits and rounds every row, so :func:`mul` widens both operands to
  Decimal(38, scale_a + scale_b) before multiplying; the product is exact.
- A line's extended amount (quantity x unit price), a percentage discount and a rate-based tax are each
  rounded **once, per line, half away from zero ("commercial half-up") to 2 places** (:func:`round_money`).
- Header totals are plain sums of the already-rounded line amounts: never rounded again, so the order
  total always equals the sum of what its lines show.
"""

from __future__ import annotations

import polars as pl

MONEY = pl.Decimal(18, 2)
UNIT_PRICE = pl.Decimal(18, 4)
RATE = pl.Decimal(9, 6)
MONEY_SCALE = 2
ROUNDING = "half_away_from_zero"

# A decimal literal as channels send it: optional sign, digits, optional fraction. No exponents,
# no thousands separators, no currency symbols (those are rejected, never guessed).
DECIMAL_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
INTEGER_RE = r"^[+-]?\d+(\.0*)?$"


def mul(a: pl.Expr, scale_a: int, b: pl.Expr, scale_b: int) -> pl.Expr:
    """Exact product of two decimals (or a decimal and an integer, scale 0)."""
    scale = scale_a + scale_b
    return a.cast(pl.Decimal(38, scale)) * b.cast(pl.Decimal(38, scale))


def round_money(x: pl.Expr) -> pl.Expr:
    """Round once to cents, half away from zero, and store as MONEY."""
    return x.round(MONEY_SCALE, mode=ROUNDING).cast(MONEY)


def parse_decimal(s: pl.Expr, scale: int, precision: int = 18) -> tuple[pl.Expr, pl.Expr]:
    """Parse a string column to Decimal(38, scale).

    Returns ``(value, ok)``: ``value`` is null where the text is empty; ``ok`` is False where the text
    is present but not a plain decimal literal, carries more fraction digits than ``scale`` (we refuse
    to round what a channel sent), or more integer digits than Decimal(precision, scale) can hold.
    """
    t = s.str.strip_chars()
    present = t.is_not_null() & (t != "")
    literal = t.str.contains(DECIMAL_RE)
    frac = t.str.extract(r"\.(\d*)$", 1).fill_null("").str.strip_chars_end("0").str.len_chars()
    whole = t.str.extract(r"^[+-]?(\d*)", 1).fill_null("").str.strip_chars_start("0").str.len_chars()
    fits = (frac <= scale) & (whole <= precision - scale)
    ok = ~present | (literal & fits)
    value = pl.when(present & literal & fits).then(t).otherwise(None).str.to_decimal(scale=scale)
    return value.cast(pl.Decimal(38, scale)), ok


def parse_int(s: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Parse a string column to Int64 ("3", "3.0" and "+3" are 3; "3.5", "1e3", "x" are not integers)."""
    t = s.str.strip_chars()
    present = t.is_not_null() & (t != "")
    literal = t.str.contains(INTEGER_RE)
    digits = t.str.replace(r"\.0*$", "").str.replace(r"^\+", "")
    value = pl.when(present & literal).then(digits).otherwise(None).cast(pl.Int64, strict=False)
    ok = ~present | (literal & value.is_not_null())
    return value, ok


def to_cents(x: pl.Expr) -> pl.Expr:
    """A MONEY amount as integer cents (Int64), exactly."""
    return (x.cast(pl.Decimal(38, 2)) * 100).cast(pl.Int64)


def cents_to_money(cents: pl.Expr) -> pl.Expr:
    """Integer cents -> Decimal(18, 2), exactly."""
    from decimal import Decimal

    return (cents.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("0.01"), dtype=pl.Decimal(38, 2))).cast(MONEY)


def share_cents(total_cents: pl.Expr, part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """``total_cents x part / whole`` rounded half away from zero to a cent, in integer arithmetic (exact; ``whole``
    > 0). Used cumulatively (share(c1) - share(c0)) the pieces of a total always add up to it."""
    n = total_cents * part
    w = whole.cast(pl.Int64)
    return pl.when(n >= 0).then((2 * n + w) // (2 * w)).otherwise(-((-2 * n + w) // (2 * w)))

