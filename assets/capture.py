"""Capture: one asset per channel of ``ingest/channels.py``, landing zone (or portal DB) -> stage.*, ops.quarantine,
ops.ingest_files."""

import dagster as dg

from assets.checks import reconciliation_result, reconciliation_spec
from assets.lineage import CAPTURE_KEYS
from resources import B2BPortalResource, WarehouseResource
from som_pipeline.ingest.channels import CHANNELS
from som_pipeline.services.channels import capture_channel


def _capture_asset(channel: str) -> dg.AssetsDefinition:
    key = CAPTURE_KEYS[channel]

    @dg.asset(
        key=key,
        group_name="capture",
        kinds={"python", "polars", "duckdb"},
        description=CHANNELS[channel].description,
        check_specs=[reconciliation_spec("ingest_conservation", key, "conservation")],
        pool="duckdb",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, b2b_portal: B2BPortalResource):
        settings = warehouse.settings()
        wh = warehouse.warehouse()
        report = capture_channel(channel, wh, settings, b2b_portal.url or settings.b2b_db_url)
        for note in report.notes:
            context.log.info(note)
        for warning in report.warnings:
            context.log.warning(warning)
        meta = report.as_metadata()
        yield dg.MaterializeResult(
            metadata={
                **{k: v for k, v in meta.items() if k != "quarantine_by_reason"},
                "quarantine_by_reason": dg.MetadataValue.json(meta["quarantine_by_reason"]),
                "files": dg.MetadataValue.md(
                    "\n".join(f"- `{f.source_file}` {f.status}: {f.received} received, {f.accepted} accepted, "
                              f"{f.quarantined} quarantined" for f in report.files[:50]) or "_no new files_"
                ),
            }
        )
        with wh.connect() as con:
            yield reconciliation_result(con, "ingest_conservation", key, "conservation", channel=channel)

    return _asset


capture_assets = [_capture_asset(ch) for ch in CHANNELS]
