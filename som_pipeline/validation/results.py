"""The common output of every validation check, and the helpers that build it.

One row per finding: ``order_id``, ``line_no`` (null for an order-level finding), ``rule``, ``outcome``
(``pass`` | ``warn`` | ``fail``), ``reason_code`` (null on pass), a human ``message`` and ``evidence``: a JSON
object with the numbers that decided it. Money in evidence is a JSON *string* holding the exact decimal
("12.3400"), never a float. Every evaluated order gets at least one row per rule it was checked by: an
order-level ``pass`` row when the rule found nothing, so the audit shows every check ran.

``outcome`` follows the configured severity of the reason code: ``reject``/``hold`` -> ``fail``,
``warn`` -> ``warn`` (see ``defaults.toml`` [severity]).
"""

from __future__ import annotations

import polars as pl

from som_pipeline.schemas import VALIDATION_RULES, ValidationFindingModel, polars_schema
from som_pipeline.validation.config import VALIDATION_REASONS, ValidationConfig

# The rule names, in the order the checks run (defined once, in schemas; the check registry
# som_pipeline.validation.checks.CHECKS lists the same rules in the same order: a test holds them equal).
RULES: tuple[str, ...] = tuple(VALIDATION_RULES)
OUTCOMES = ("pass", "warn", "fail")

# The finding model lives with every other model in som_pipeline.schemas (one schema source). It is not
# schemas.ValidationResultModel: that is the table core.validation_results (a finding + version, waiver, time).
RESULT_SCHEMA: dict[str, pl.DataType] = polars_schema(ValidationFindingModel)
RESULT_COLUMNS = list(RESULT_SCHEMA)


def empty_results() -> pl.DataFrame:
    return pl.DataFrame(schema=RESULT_SCHEMA)


# ------------------------------------------------------------------------------------------------
# Expression helpers
# ------------------------------------------------------------------------------------------------
def txt(e: pl.Expr | str, null: str = "(none)") -> pl.Expr:
    """A value as text for a message (decimals keep their exact digits)."""
    e = pl.col(e) if isinstance(e, str) else e
    return e.cast(pl.String).fill_null(null)


def fmt(template: str, *args: pl.Expr | str) -> pl.Expr:
    """``pl.format`` equivalent (a null argument gives null) built on ``pl.concat_str``.

    polars 2.1.0's ``pl.format`` panics in the streaming engine on some filtered string columns
    ("assertion failed: i < self.len()" in binview); ``concat_str`` does not.
    """
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"template {template!r} expects {len(pieces) - 1} arguments, got {len(args)}")
    exprs: list[pl.Expr] = []
    for i, piece in enumerate(pieces):
        if piece:
            exprs.append(pl.lit(piece, dtype=pl.String))
        if i < len(args):
            a = args[i]
            exprs.append((pl.col(a) if isinstance(a, str) else a).cast(pl.String))
    return pl.concat_str(exprs) if exprs else pl.lit("", dtype=pl.String)


def evidence(**fields: pl.Expr) -> pl.Expr:
    """JSON object text of the given named expressions (decimals become exact strings)."""
    return pl.struct(**fields).struct.json_encode()


def outcome_of(reason: pl.Expr, cfg: ValidationConfig) -> pl.Expr:
    return reason.replace_strict({c: cfg.outcome(c) for c in VALIDATION_REASONS}, default=None,
                                 return_dtype=pl.String)


def emit(lf: pl.LazyFrame, *, rule: str, reason: str | pl.Expr, message: pl.Expr, evidence: pl.Expr,
         cfg: ValidationConfig, line_no: pl.Expr | str | None = None) -> pl.LazyFrame:
    """Result rows for every row of ``lf`` (which has ``order_id`` and the columns the expressions use)."""
    r = pl.lit(reason, dtype=pl.String) if isinstance(reason, str) else reason.cast(pl.String)
    ln = pl.lit(None, dtype=pl.Int64) if line_no is None else (pl.col(line_no) if isinstance(line_no, str)
                                                               else line_no)
    return lf.select(
        pl.col("order_id").cast(pl.String),
        ln.cast(pl.Int64).alias("line_no"),
        pl.lit(rule, dtype=pl.String).alias("rule"),
        outcome_of(r, cfg).alias("outcome"),
        r.alias("reason_code"),
        message.cast(pl.String).alias("message"),
        evidence.alias("evidence"),
    )


def passes(orders: pl.LazyFrame | pl.DataFrame, findings: pl.LazyFrame | pl.DataFrame, *, rule: str,
           message: pl.Expr | str, evidence: pl.Expr | None = None) -> pl.LazyFrame:
    """An order-level pass row for every order of ``orders`` without a finding of this rule.

    Pass ``findings`` materialised (a DataFrame): a lazy plan would be evaluated a second time.
    """
    msg = pl.lit(message) if isinstance(message, str) else message
    ev = evidence if evidence is not None else pl.lit("{}")
    return orders.lazy().join(findings.lazy().select("order_id").unique(), on="order_id", how="anti").select(
        pl.col("order_id").cast(pl.String),
        pl.lit(None, dtype=pl.Int64).alias("line_no"),
        pl.lit(rule, dtype=pl.String).alias("rule"),
        pl.lit("pass", dtype=pl.String).alias("outcome"),
        pl.lit(None, dtype=pl.String).alias("reason_code"),
        msg.cast(pl.String).alias("message"),
        ev.alias("evidence"),
    )


def collect(parts: list[pl.LazyFrame | pl.DataFrame]) -> pl.DataFrame:
    """Concatenate result parts (same columns) into one sorted, eager frame of RESULT_SCHEMA."""
    if not parts:
        return empty_results()
    out = pl.concat([p.lazy().select(RESULT_COLUMNS) for p in parts], how="vertical").collect()
    return out.cast(RESULT_SCHEMA).sort(["order_id", "rule", "line_no"], nulls_last=False, maintain_order=True)


__all__ = ["OUTCOMES", "RESULT_COLUMNS", "RESULT_SCHEMA", "RULES", "ValidationFindingModel", "collect", "emit",
           "empty_results", "evidence", "fmt", "outcome_of", "passes", "txt"]
