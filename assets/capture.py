"""Capture: one asset per channel of ``ingest/channels.py``, landing zone (or portal DB) -> stage.*, ops.quarantine,
ops.ingest_files."""

import dagster as dg

from assets.checks import reconciliation_result, reconciliation_spec
from assets.lineage import CAPTURE_KEYS
from resources import B2BPortalResource, WarehouseResource
from som_pipeline.ingest.channels import CHANNELS
from som_pipeline.services.channels import capture_channel
from som_pipeline.services.landing import SourceUnavailable


def _capture_asset(channel: str) -> dg.AssetsDefinition:
    key = CAPTURE_KEYS[channel]

    @dg.asset(
        key=key,
        group_name="capture",
        kinds={"python", "polars", "duckdb"},
        description=CHANNELS[channel].description,
        check_specs=[reconciliation_spec("ingest_conservation", key, "conservation"),
                     dg.AssetCheckSpec("source_available", asset=key, blocking=False,
                                       description="The source could be read (portal database reachable, landing "
                                       "folder readable). When it cannot, this channel reads nothing this run and "
                                       "the other channels still flow to core.")],
        pool="duckdb",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, b2b_portal: B2BPortalResource):
        settings = warehouse.settings()
        wh = warehouse.warehouse()
        try:
            report = capture_channel(channel, wh, settings, b2b_portal.url or settings.b2b_db_url)
        except SourceUnavailable as e:  # this source only: the run goes on with the others
            context.log.error(f"{channel}: {e}")
            yield dg.MaterializeResult(metadata={"source_error": str(e), "records_received": 0})
            yield dg.AssetCheckResult(check_name="source_available", passed=False,
                                      severity=dg.AssetCheckSeverity.ERROR, metadata={"error": str(e)})
            with wh.connect() as con:
                yield reconciliation_result(con, "ingest_conservation", key, "conservation", channel=channel)
            return
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
        yield dg.AssetCheckResult(check_name="source_available", passed=True)
        with wh.connect() as con:
            yield reconciliation_result(con, "ingest_conservation", key, "conservation", channel=channel)

    return _asset


capture_assets = [_capture_asset(ch) for ch in CHANNELS]
