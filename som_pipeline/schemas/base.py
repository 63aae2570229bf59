"""The machinery every stage's models share, and what is derived from a model.

- dtypes: ``Money`` (exact, cents), ``UnitPrice``, ``Rate``, ``TsUTC``;
- ``_f``: a documented field (the description goes to docs/data_dictionary.md; ``backfill`` is what existing
  rows get when a release adds the column); ``_Strict``: the base of every model (strict, no coercion);
- from a model: its Polars schema, empty or conformed frames, DuckDB DDL and ``ALTER TABLE`` statements,
  full validation.

Models live in the stage modules beside this one; the registry is :data:`som_pipeline.schemas.TABLES`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pandera.polars as pa
import polars as pl

Money = Annotated[pl.Decimal, 18, 2]
UnitPrice = Annotated[pl.Decimal, 18, 4]
Rate = Annotated[pl.Decimal, 9, 6]
TsUTC = Annotated[pl.Datetime, "us", "UTC"]


def _f(description: str, *, nullable: bool = False, backfill: object = None, **kw) -> object:
    """A documented field. ``backfill``: the value rows of an existing table get when a release adds this
    (non-nullable) column -- see :func:`add_column_sql`."""
    return pa.Field(description=description, nullable=nullable,
                    metadata=None if backfill is None else {"backfill": backfill}, **kw)


class _Strict(pa.DataFrameModel):
    class Config:
        strict = True
        coerce = False


# ================================================================================================
# Derivations
# ================================================================================================
def polars_schema(model: type[pa.DataFrameModel]) -> dict[str, pl.DataType]:
    """Column name -> Polars dtype, in declaration order."""
    return {name: col.dtype.type for name, col in model.to_schema().columns.items()}


def empty(model: type[pa.DataFrameModel]) -> pl.DataFrame:
    return pl.DataFrame(schema=polars_schema(model))


def from_rows(model: type[pa.DataFrameModel], rows: list[dict]) -> pl.DataFrame:
    """A frame of the model's columns and dtypes from dicts (missing keys -> null; no type guessing)."""
    schema = polars_schema(model)
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


def conform(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """Select the model's columns in order, casting to the model's dtypes (missing nullable -> null)."""
    schema = polars_schema(model)
    exprs = []
    for name, dtype in schema.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(exprs)


def duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    mapping = {
        pl.String: "VARCHAR",
        pl.Int64: "BIGINT",
        pl.Int32: "INTEGER",
        pl.Float64: "DOUBLE",
        pl.Boolean: "BOOLEAN",
        pl.Date: "DATE",
        pl.Time: "TIME",
    }
    for k, v in mapping.items():
        if dtype == k:
            return v
    raise TypeError(f"no DuckDB type for {dtype!r}")


def ddl(table: str, model: type[pa.DataFrameModel]) -> str:
    """CREATE TABLE statement for ``table`` (a name from code, never from input)."""
    cols = []
    for name, col in model.to_schema().columns.items():
        null = "" if col.nullable else " NOT NULL"
        cols.append(f'    "{name}" {duckdb_type(col.dtype.type)}{null}')
    return f"CREATE TABLE IF NOT EXISTS {table} (\n" + ",\n".join(cols) + "\n)"


def add_column_sql(table: str, model: type[pa.DataFrameModel], existing: set[str]) -> list[str]:
    """``ALTER TABLE`` statements adding the model's columns missing from an existing table (additive schema
    evolution: a release adds columns, old rows get the field's declared ``backfill``, or NULL when nullable).
    Names and values come from code. A non-nullable column without a backfill cannot be added: ValueError."""
    out = []
    for name, col in model.to_schema().columns.items():
        if name in existing:
            continue
        backfill = (col.metadata or {}).get("backfill")
        if backfill is None and not col.nullable:
            raise ValueError(f"{table} has no column {name} and the model gives no backfill value for its "
                             "existing rows; rebuild the warehouse (delete it and run again)")
        if isinstance(backfill, bool):
            default = " DEFAULT " + ("true" if backfill else "false")
        elif isinstance(backfill, int | Decimal):
            default = f" DEFAULT {backfill}"
        elif isinstance(backfill, str):
            default = " DEFAULT '" + backfill.replace("'", "''") + "'"
        else:
            default = ""
        out.append(f'ALTER TABLE {table} ADD COLUMN "{name}" {duckdb_type(col.dtype.type)}{default}')
    return out


def validate(model: type[pa.DataFrameModel], df: pl.DataFrame) -> pl.DataFrame:
    """Full (data-level) validation of an eager frame; raises ``pandera.errors.SchemaErrors``."""
    return model.validate(df, lazy=True)
