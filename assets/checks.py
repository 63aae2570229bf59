"""Asset-check helpers: Pandera models and the conservation rule as blocking checks.

Checks run inside the asset's step (``check_specs`` on the asset), so a failing ERROR-severity check
stops downstream assets in the same run. Failure cases go to the check metadata (count + sample).
"""


import dagster as dg
import pandera.errors as pae
import pandera.polars as pa
import polars as pl

from som_pipeline.reporting import md_table


def model_check_spec(asset_key: dg.AssetKey, model: type[pa.DataFrameModel]) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name="matches_model",
        asset=asset_key,
        blocking=True,
        description=f"Every row satisfies the Pandera model {model.__name__} (types, nullability, ranges, keys).",
    )


def model_check_result(asset_key: dg.AssetKey, model: type[pa.DataFrameModel], df: pl.DataFrame) -> dg.AssetCheckResult:
    """Validate the full frame (eager: data-level checks run, not just the schema)."""
    check = ModelCheck(asset_key, model)
    check.add(df)
    return check.result()


class ModelCheck:
    """A ``matches_model`` check over a table's rows given in parts (:meth:`add` validates each part as it comes:
    bounded memory), reported as one result. The parts must not split a key of the model's ``unique`` checks
    (e.g. parts by order)."""

    def __init__(self, asset_key: dg.AssetKey, model: type[pa.DataFrameModel]) -> None:
        self.asset_key, self.model = asset_key, model
        self.rows, self.preview, self.failures = 0, None, []

    def add(self, df: pl.DataFrame) -> None:
        self.rows += df.height
        if self.preview is None or (self.preview.height == 0 and df.height):
            self.preview = df.head(5)
        try:
            self.model.validate(df, lazy=True)
        except pae.SchemaErrors as err:
            self.failures.append(err.failure_cases)

    def result(self) -> dg.AssetCheckResult:
        if self.failures:
            fc = pl.concat(self.failures, how="diagonal_relaxed")
            return dg.AssetCheckResult(
                asset_key=self.asset_key,
                check_name="matches_model",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failure_cases": fc.height,
                    "by_check": dg.MetadataValue.json(
                        {f"{r[0]}: {r[1]}": r[2] for r in fc.group_by("column", "check").len().rows()}
                    ),
                    "sample": dg.MetadataValue.md(md_table(fc.select([c for c in fc.columns if c != "schema_context"]),
                                                           20)),
                },
            )
        return dg.AssetCheckResult(asset_key=self.asset_key, check_name="matches_model", passed=True,
                                   metadata={"rows": self.rows})


def rule_check_result(asset_key: dg.AssetKey, name: str, violations: pl.DataFrame, what: str,
                      severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    """A rule expressed as 'the rows that break it' (empty = pass)."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=violations.height == 0,
        severity=severity,
        metadata={"violations": violations.height, "rule": what,
                  **({"sample": dg.MetadataValue.md(md_table(violations, 20))} if violations.height else {})},
    )


def model_check_specs(tables: tuple[str, ...] | list[str]) -> list[dg.AssetCheckSpec]:
    """A blocking ``matches_model`` check per table, generated from the table registry (``schemas.TABLES``)."""
    from assets.lineage import table_key
    from som_pipeline.schemas import TABLES

    return [model_check_spec(table_key(t), TABLES[t]) for t in tables]


def model_check_results(frames: dict[str, pl.DataFrame]) -> list[dg.AssetCheckResult]:
    """``matches_model`` results for ``{table: current content}`` (validated eagerly: data checks run)."""
    from assets.lineage import table_key
    from som_pipeline.schemas import TABLES

    return [model_check_result(table_key(t), TABLES[t], df) for t, df in frames.items()]


def reconciliation_spec(name: str, asset: dg.AssetKey, check: str | None = None) -> dg.AssetCheckSpec:
    """A check that runs ``sql/reconciliation/<name>.sql`` (no rows = pass): blocking, unless the file says
    ``-- severity: warn`` (then a WARN that never stops downstream assets)."""
    from som_pipeline.sqlfiles import sql_file

    f = sql_file("reconciliation", name)
    return dg.AssetCheckSpec(check or name, asset=asset, blocking=f.severity != "warn", description=f.summary)


def reconciliation_result(con, name: str, asset: dg.AssetKey, check: str | None = None,
                          **params) -> dg.AssetCheckResult:
    from som_pipeline.services.analytics import run_reconciliation_query
    from som_pipeline.sqlfiles import sql_file

    f = sql_file("reconciliation", name)
    severity = dg.AssetCheckSeverity.WARN if f.severity == "warn" else dg.AssetCheckSeverity.ERROR
    return rule_check_result(asset, check or name, run_reconciliation_query(con, f, **params), f.summary, severity)


def step_results(wh, writes: tuple[str, ...], now, this_run: dict[str, str], rules: dict[str, dg.AssetKey],
                 meta: dict[str, dict] | None = None):
    """What a stage's multi-asset yields after its service ran: per table it writes a MaterializeResult (row count,
    the rows this run wrote -- ``this_run[table]``, SQL from code with ``$now`` bound to the run's clock -- a
    preview, and ``meta[table]``), the model checks of those rows, and its reconciliation rules (``rules``: rule
    name -> the asset it checks)."""
    from assets.lineage import table_key

    with wh.connect() as con:
        frames = {t: con.execute(f"SELECT * FROM {t} WHERE {this_run[t]}",  # noqa: S608 (names and SQL from code)
                                 {"now": now} if "$now" in this_run[t] else {}).pl() for t in writes}
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in writes}  # noqa: S608
        checks = [reconciliation_result(con, n, k) for n, k in rules.items()]
    for t in writes:
        m = {"dagster/row_count": counts[t], "rows_written_this_run": frames[t].height,
             "preview": dg.MetadataValue.md(md_table(frames[t], 5)), **(meta or {}).get(t, {})}
        yield dg.MaterializeResult(asset_key=table_key(t), metadata=m)
    yield from model_check_results(frames)
    yield from checks


def json_metadata(d: dict) -> dict:
    """A service report's metadata with its dicts as JSON values."""
    return {k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in d.items()}
