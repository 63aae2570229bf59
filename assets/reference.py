"""Reference data: $SOM_HOME/reference/<table>.csv|parquet -> ref.<table>, typed and checked by the models."""


import dagster as dg

from assets.checks import model_check_result, model_check_spec
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.schemas import REFERENCE_TABLES
from som_pipeline.services.reference import load_reference_tables

REF_KEYS = {t: dg.AssetKey(["ref", t]) for t in REFERENCE_TABLES}


@dg.multi_asset(
    name="reference_data",
    specs=[
        dg.AssetSpec(
            key,
            group_name="reference",
            kinds={"polars", "duckdb"},
            description=f"ref.{t}: {(REFERENCE_TABLES[t].__doc__ or '').strip()} Loaded from "
            f"$SOM_HOME/reference/{t}.csv|parquet; bad rows quarantined (ops.quarantine, channel reference/{t}).",
            skippable=True,
        )
        for t, key in REF_KEYS.items()
    ],
    check_specs=[model_check_spec(key, REFERENCE_TABLES[t]) for t, key in REF_KEYS.items()],
    can_subset=True,
    pool="duckdb",
)
def reference_data(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    tables = [t for t, k in REF_KEYS.items() if k in context.selected_asset_keys]
    for ld in load_reference_tables(wh, warehouse.settings(), tables):
        key = REF_KEYS[ld.table]
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
        yield model_check_result(key, REFERENCE_TABLES[ld.table], current)
