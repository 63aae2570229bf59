"""Reference data: ``$SOM_HOME/reference/<table>.csv|parquet`` -> ``ref.<table>``, typed and checked by the models;
and the disruption feed (``landing/disruptions``) -> ``ref.disruptions``."""

import dagster as dg

from assets.checks import model_check_results, model_check_specs
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import REFERENCE_TABLES
from som_pipeline.services.disruptions import DISRUPTIONS, ingest_disruptions
from som_pipeline.services.reference import REFERENCE, load_reference_tables

REF_KEYS = {t.split(".", 1)[1]: table_key(t) for t in REFERENCE.writes}
DISRUPTIONS_KEY = table_key("ref.disruptions")


@dg.multi_asset(
    name="reference_data",
    specs=table_specs(
        REFERENCE, "reference", {"polars", "duckdb"}, skippable=True,
        descriptions={f"ref.{t}": f"ref.{t}: {(m.__doc__ or '').strip()} Loaded from $SOM_HOME/reference/{t}.csv|"
                      f"parquet; bad rows quarantined (ops.quarantine, channel reference/{t})."
                      for t, m in REFERENCE_TABLES.items()},
    ),
    check_specs=model_check_specs(REFERENCE.writes)
    + [dg.AssetCheckSpec("file_accepted", asset=k, blocking=False,
                         description="The latest reference file was not refused by a guard (empty, or shrinking the "
                         "table by more than SOM_REF_MAX_SHRINK); when it was, the previous table is kept.")
       for k in REF_KEYS.values()],
    can_subset=True,
    pool="duckdb",
)
def reference_data(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    tables = [t for t, k in REF_KEYS.items() if k in context.selected_asset_keys]
    for ld in load_reference_tables(wh, warehouse.settings(), tables):
        key = REF_KEYS[ld.table]
        if ld.unchanged:  # the content already loaded and checked: nothing read, nothing written
            n = wh.read(f"SELECT count(*) AS n FROM ref.{ld.table}")["n"].item()  # noqa: S608 (name from code)
            yield dg.MaterializeResult(asset_key=key, metadata={
                "dagster/row_count": n, "source_file": ld.source_file, "note": ld.message})
            yield dg.AssetCheckResult(asset_key=key, check_name="matches_model", passed=True,
                                      metadata={"rows": n, "note": "checked when this content was loaded"})
            yield dg.AssetCheckResult(asset_key=key, check_name="file_accepted", passed=True,
                                      severity=dg.AssetCheckSeverity.WARN, metadata={"note": ld.message})
            continue
        current = wh.read(f"SELECT * FROM ref.{ld.table}")  # noqa: S608 (name from code)
        reasons = dict(ld.quarantine.group_by("reason_code").len().rows()) if ld.quarantine.height else {}
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": current.height,
                "source_file": ld.source_file or "(none)",
                "rows_received": ld.received,
                "rows_accepted": ld.accepted,
                "rows_quarantined": ld.received - ld.accepted,
                "quarantine_by_reason": dg.MetadataValue.json(reasons),
                "note": ld.message or "table replaced",
                "preview": dg.MetadataValue.md(md_table(current, 5)),
            },
        )
        yield from model_check_results({f"ref.{ld.table}": current})
        yield dg.AssetCheckResult(asset_key=key, check_name="file_accepted", passed=not ld.refused,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"note": ld.message or "table replaced"})
        if ld.refused:
            context.log.warning(ld.message)


@dg.asset(
    key=DISRUPTIONS_KEY,
    group_name="reference",
    kinds={"polars", "duckdb"},
    description=table_specs(DISRUPTIONS, "reference", set())[0].description
    + " Fed by $SOM_HOME/landing/disruptions/ (CSV/Parquet); a disruption id seen again replaces the earlier row.",
    check_specs=model_check_specs(DISRUPTIONS.writes),
    pool="duckdb",
)
def disruption_feed(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    with wh.connect() as con:
        files = ingest_disruptions(con, warehouse.settings())
        current = con.execute("SELECT * FROM ref.disruptions").pl()
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": current.height,
        "files": dg.MetadataValue.json({f.source_file: f.status for f in files}),
        "rows_quarantined": sum(f.quarantined for f in files),
        "preview": dg.MetadataValue.md(md_table(current, 5))})
    yield from model_check_results({"ref.disruptions": current})
