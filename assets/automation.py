"""Jobs, schedules and sensors.

- ``landing_sensor``: starts ``ingest_job`` when files land (cursor-based: name -> size+mtime of the files
  present; the run key is the identity of the new files, so a restart never repeats a request). It is only
  a trigger: the ingest ledger's content hashes decide what is processed.
- ``hourly_ingest``: the fallback (and the poll of the B2B portal database, which has no file to watch).
- ``nightly_reconciliation``: the whole graph plus every reconciliation query, every night.
- ``daily_planning``: forecast and replenishment plan every morning (04:00).
- ``daily_sales_schedule``: yesterday's partition of core.daily_sales.
- ``pick_waves`` (hourly): release the waves that are due before each warehouse's cutoff, take the floor's scans.
- ``end_of_day_manifests`` (hourly, each warehouse's cutoff in its own time zone): ship what is picked and write
  the manifests per carrier x warehouse whose cutoff has passed.
- ``publish_analytics_copy``: after every successful run, copy the warehouse to som_analytics.duckdb
  (atomic rename) so analysts can read it at any time, also during a run.
"""


import hashlib
import json

import dagster as dg

from assets.lineage import CAPTURE_KEYS
from assets.orders import daily_sales
from assets.reference import DISRUPTIONS_KEY
from assets.validation import KEYS as VALIDATION_KEYS
from resources import WarehouseResource
from som_pipeline.config import Settings
from som_pipeline.feeds import FEEDS
from som_pipeline.services.fulfilment import FLOOR
from som_pipeline.services.landing import list_landing

VIEWS_KEY = dg.AssetKey(["analytics", "views"])
FLOOR_KEYS = [dg.AssetKey(t.split(".")) for t in FLOOR.writes]  # the stock_ledger multi-asset runs whole
UNPARTITIONED = dg.AssetSelection.all() - dg.AssetSelection.assets(daily_sales)
INGEST_GROUPS = ("reference", "capture", "core", "validation", "allocation", "fulfilment", "tracking", "billing",
                 "returns")
INGEST = (
    dg.AssetSelection.groups(*INGEST_GROUPS) - dg.AssetSelection.assets(daily_sales)
) | dg.AssetSelection.assets(VIEWS_KEY)
# The asset that reads each landing feed (a test checks every feed of som_pipeline/feeds.py is here).
FEED_ASSETS: dict[str, dg.AssetKey] = {
    **{ch: key for ch, key in CAPTURE_KEYS.items() if ch in FEEDS},
    "approvals": VALIDATION_KEYS["manual_decisions"],
    "disruptions": DISRUPTIONS_KEY,
    "receipts": dg.AssetKey(["core", "stock_ledger"]),
    "scans": dg.AssetKey(["core", "pick_scans"]),
    "carrier_events": dg.AssetKey(["core", "tracking_events"]),
    # the bank and payout folders (and manual payment decisions) -> billing
    "bank": dg.AssetKey(["core", "bank_lines"]),
    "payouts": dg.AssetKey(["core", "bank_lines"]),
    "payment_decisions": dg.AssetKey(["core", "payment_allocations"]),
    "returns": dg.AssetKey(["core", "return_requests"]),
    "return_receipts": dg.AssetKey(["core", "return_receipts"]),
    "chargebacks": dg.AssetKey(["core", "return_requests"]),
}

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=INGEST,
    description="Reference data + stock postings + every channel's capture + canonical orders + validation + "
                "allocation + fulfilment + views.",
)
full_job = dg.define_asset_job(
    "full_job",
    selection=UNPARTITIONED,
    description="The whole unpartitioned graph, reconciliation included (what `som run` materializes first).",
)
planning_job = dg.define_asset_job(
    "planning_job",
    selection=dg.AssetSelection.groups("planning"),
    description="Demand forecast (backtest, model choice) and the replenishment plan.",
)
daily_sales_job = dg.define_asset_job(
    "daily_sales_job",
    selection=dg.AssetSelection.assets(daily_sales),
    description="core.daily_sales for a day or a range of days (single-run backfills).",
)

fulfilment_job = dg.define_asset_job(
    "fulfilment_job",
    selection=dg.AssetSelection.groups("fulfilment"),
    description="The floor's feedback (counts, receipts, scans, shipping, manifests), then stop and release waves.",
)
tracking_job = dg.define_asset_job(
    "tracking_job",
    selection=dg.AssetSelection.groups("tracking"),
    description="Carrier events, shipment status, ETA and late risk, exceptions, customer notifications.",
)
billing_job = dg.define_asset_job(
    "billing_job",
    selection=dg.AssetSelection.groups("billing"),
    description="Invoices for what shipped (PDF, X12 810), credit notes, bank statements and payouts, payment "
                "matching, receivables.",
)
floor_job = dg.define_asset_job(
    "floor_job",
    selection=dg.AssetSelection.assets(*FLOOR_KEYS),
    description="Counts, receipts, scans, shipping and the manifests that are due.",
)

hourly_ingest = dg.ScheduleDefinition(
    name="hourly_ingest", job=ingest_job, cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Fallback for the landing sensor, and the B2B portal poll.",
)
nightly_reconciliation = dg.ScheduleDefinition(
    name="nightly_reconciliation", job=full_job, cron_schedule="30 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-materialize the graph: every order's closure, the reconciliation breaks carried from night to "
    "night (ops.reconciliation_breaks), the HTML report in $SOM_HOME/reports/, and every sql/reconciliation query.",
)
planning_schedule = dg.ScheduleDefinition(
    name="daily_planning", job=planning_job, cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Forecast and replenishment every morning, after the nightly reconciliation.",
)
wave_schedule = dg.ScheduleDefinition(
    name="pick_waves", job=fulfilment_job, cron_schedule="45 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: release the waves whose ship date has come (each warehouse before its cutoff, in its "
    "time zone; released after it, the wave ships the next day) and take the floor's scans.",
)
manifest_schedule = dg.ScheduleDefinition(
    name="end_of_day_manifests", job=floor_job, cron_schedule="10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour, so each warehouse's cutoff (in its own time zone) is met within the hour: ship what "
    "is picked and write the manifest per carrier x warehouse of every ship date whose cutoff has passed.",
)
risk_schedule = dg.ScheduleDefinition(
    name="tracking_risk_scan", job=tracking_job, cron_schedule="25 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: ETAs and late risk of every open shipment, exceptions opened and resolved, the "
    "proactive delay notices (before the promised date passes).",
)
daily_sales_schedule = dg.build_schedule_from_partitioned_job(
    daily_sales_job, minute_of_hour=0, hour_of_day=3, default_status=dg.DefaultScheduleStatus.RUNNING
)


def landing_snapshot(settings: Settings) -> dict[str, str]:
    """``feed/name`` -> ``size:mtime_ns`` of every ready landing file."""
    snap = {}
    for feed in FEEDS:
        for f in list_landing(settings.landing_dir(feed), feed):
            snap[f"{feed}/{f.name}"] = f"{f.size}:{f.mtime_ns}"
    return snap


def sensor_selection(feeds: list[str]) -> list[dg.AssetKey]:
    """What a landing run materializes: ingest_job's assets, less the reference files (polled by the schedules)
    and the readers of feeds that brought nothing (a multi-asset runs whole when any of its keys is needed)."""
    from assets import all_assets
    from assets.reference import REF_KEYS

    idle = ({k for f, k in {**CAPTURE_KEYS, **FEED_ASSETS}.items() if f not in feeds}  # the portal: hourly poll
            | set(REF_KEYS.values()))
    keys: list[dg.AssetKey] = []
    for a in all_assets:
        in_ingest = a is not daily_sales and (
            bool(set(a.group_names_by_key.values()) & set(INGEST_GROUPS)) or VIEWS_KEY in a.keys)
        if in_ingest and not set(a.keys) <= idle:
            keys += sorted(a.keys, key=lambda k: k.to_user_string())
    return keys


def new_files(previous: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in current.items() if previous.get(k) != v}


@dg.sensor(
    name="landing_sensor",
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts ingest_job when files land in $SOM_HOME/landing/<feed>/: orders, manual decisions "
    "(approvals), disruptions, receipts, pick scans, carrier events (each file once).",
)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    previous = json.loads(context.cursor) if context.cursor else {}
    current = landing_snapshot(warehouse.settings())
    fresh = new_files(previous, current)
    if not fresh:
        return dg.SensorResult(skip_reason="no new files", cursor=json.dumps(current, sort_keys=True))
    identity = hashlib.sha256(json.dumps(fresh, sort_keys=True).encode()).hexdigest()[:32]
    channels = sorted({k.split("/", 1)[0] for k in fresh})
    selection = sensor_selection(channels)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"landing-{identity}",
                asset_selection=selection,
                tags={"som/trigger": "landing_sensor", "som/files": str(len(fresh)), "som/channels": ",".join(channels)},
            )
        ],
        cursor=json.dumps(current, sort_keys=True),
    )


@dg.run_status_sensor(
    name="publish_analytics_copy",
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful run: atomically replace $SOM_HOME/warehouse/som_analytics.duckdb.",
)
def publish_analytics_copy(context: dg.RunStatusSensorContext, warehouse: WarehouseResource):
    settings = warehouse.settings()
    dest = warehouse.warehouse().publish_analytics_copy(settings.analytics_path)
    context.log.info(f"published {dest} after run {context.dagster_run.run_id}")


schedules = [hourly_ingest, nightly_reconciliation, planning_schedule, daily_sales_schedule, wave_schedule,
             manifest_schedule, risk_schedule]
sensors = [landing_sensor, publish_analytics_copy]
jobs = [ingest_job, full_job, planning_job, daily_sales_job, fulfilment_job, floor_job, tracking_job, billing_job]
