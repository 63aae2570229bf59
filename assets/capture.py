"""Capture: one asset per channel, landing zone (or portal DB) -> stage.*, ops.quarantine, ops.ingest_files."""


import dagster as dg

from assets.checks import rule_check_result
from resources import B2BPortalResource, WarehouseResource
from som_pipeline.config import CHANNELS
from som_pipeline.services.analytics import run_reconciliation_query
from som_pipeline.services.channels import capture_channel
from som_pipeline.sqlfiles import sql_file

DESCRIPTIONS = {
    "shopify": "Shopify Admin REST order JSON ({'order'} / {'orders'}) from $SOM_HOME/landing/shopify.",
    "amazon": "Amazon SP-API Orders v0 getOrders pages and getOrderItems responses from $SOM_HOME/landing/amazon, "
    "paired by AmazonOrderId (an order waits, visible in ops.v_amazon_pending, until its items arrive).",
    "edi": "ANSI X12 004010 850 purchase orders from $SOM_HOME/landing/edi; a 997 per interchange in "
    "$SOM_HOME/outbound/edi.",
    "csv": "Sales-rep / bulk order template (CSV or Parquet, one row per line) from $SOM_HOME/landing/csv, streamed.",
    "b2b_portal": "B2B portal orders read through SQLAlchemy (SOM_B2B_DB_URL), incrementally by updated_at watermark.",
}

CAPTURE_KEYS = {ch: dg.AssetKey(["stage", ch]) for ch in CHANNELS}


def _capture_asset(channel: str) -> dg.AssetsDefinition:
    key = CAPTURE_KEYS[channel]

    @dg.asset(
        key=key,
        group_name="capture",
        kinds={"python", "polars", "duckdb"},
        description=DESCRIPTIONS[channel],
        check_specs=[
            dg.AssetCheckSpec(
                "conservation",
                asset=key,
                blocking=True,
                description="Per file: records received = accepted + quarantined, and ops.quarantine holds "
                "exactly the quarantined records (sql/reconciliation/ingest_conservation.sql).",
            )
        ],
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
            bad = run_reconciliation_query(con, sql_file("reconciliation", "ingest_conservation"), channel=channel)
        yield rule_check_result(key, "conservation", bad, "received = accepted + quarantined, per file")

    return _asset


capture_assets = [_capture_asset(ch) for ch in CHANNELS]
