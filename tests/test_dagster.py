"""The Dagster layer: definitions load, sensor cursors, materializations into a temporary warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from assets import all_assets
from assets.automation import landing_sensor
from resources import B2BPortalResource, WarehouseResource
from som_pipeline.config import Settings
from som_pipeline.warehouse import Warehouse
from tests.conftest import FIXTURES, drop

ROOT = Path(__file__).resolve().parents[1]


def resources(settings: Settings) -> dict:
    return {"warehouse": WarehouseResource(som_home=str(settings.home), lock_timeout_s="120"),
            "b2b_portal": B2BPortalResource(url="")}


def test_definitions_load_and_validate():
    from som_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"core/orders", "core/order_lines", "stage/edi", "ref/customers", "core/daily_sales"} <= keys
    selected = {job: {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}
                for job in ("ingest_job", "full_job", "daily_sales_job", "planning_job")}
    assert {"ref/customers", "ref/disruptions", "stage/edi", "core/orders", "core/order_status", "core/allocations",
            "analytics/views"} <= selected["ingest_job"]
    assert not {"core/daily_sales", "core/demand_forecast", "ops/reconciliation"} & selected["ingest_job"]
    assert selected["daily_sales_job"] == {"core/daily_sales"}
    assert selected["planning_job"] == {"state/daily_demand", "state/forecast_fits", "core/demand_forecast",
                                        "core/forecast_accuracy", "core/replenishment_plan"}
    assert selected["full_job"] == keys - {"core/daily_sales"}
    env = {**os.environ, "DAGSTER_HOME": str(ROOT / ".pytest_cache" / "dh")}
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_lineage_is_derived_and_complete():
    """Every dependency derived from the services' Step declarations is a defined asset; every table a step
    writes has a generated matches_model check; every channel and feed has the asset that reads it."""
    from assets.automation import FEED_ASSETS
    from assets.lineage import CAPTURE_KEYS
    from som_pipeline.definitions import defs
    from som_pipeline.feeds import FEEDS
    from som_pipeline.ingest.channels import CHANNELS
    from som_pipeline.services.channels import CAPTURERS

    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    for key in keys:
        assert set(graph.get(key).parent_keys) <= keys, key
    assert set(FEED_ASSETS) == set(FEEDS) and set(FEED_ASSETS.values()) <= keys
    assert set(CAPTURE_KEYS) == set(CHANNELS) and set(CAPTURE_KEYS.values()) <= keys
    assert all(ch in CAPTURERS or c.parser for ch, c in CHANNELS.items())
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    from som_pipeline.schemas import TABLES
    for t in TABLES:
        if t.split(".")[0] in ("core", "ref", "state"):
            assert (t.replace(".", "/"), "matches_model") in checks, t
    # lineage follows what the services read: allocation reads the disruptions, validation the orders
    assert dg.AssetKey(["ref", "disruptions"]) in graph.get(dg.AssetKey(["core", "allocations"])).parent_keys
    assert dg.AssetKey(["core", "orders"]) in graph.get(dg.AssetKey(["core", "order_status"])).parent_keys


def test_sensor_selection_follows_the_fed_feeds():
    from assets.automation import sensor_selection

    only_shopify = {k.to_user_string() for k in sensor_selection(["shopify"])}
    assert "stage/shopify" in only_shopify
    assert not {"stage/edi", "stage/b2b_portal", "ref/customers", "ref/disruptions"} & only_shopify
    assert {"core/orders", "core/manual_decisions", "core/order_status", "core/allocations",
            "analytics/views"} <= only_shopify
    assert "ref/disruptions" in {k.to_user_string() for k in sensor_selection(["disruptions"])}


def test_landing_sensor_requests_each_file_once(settings: Settings):
    res = {"warehouse": WarehouseResource(som_home=str(settings.home))}
    ctx = dg.build_sensor_context(cursor=None, resources=res)
    first = landing_sensor(ctx)
    assert not first.run_requests  # nothing landed yet

    drop(settings, "shopify", FIXTURES / "shopify" / "orders.json")
    drop(settings, "edi", FIXTURES / "x12" / "edinet_x12.850.edi", name="PO with space ü.edi")
    ctx = dg.build_sensor_context(cursor=first.cursor, resources=res)
    second = landing_sensor(ctx)
    assert len(second.run_requests) == 1
    req = second.run_requests[0]
    assert req.tags["som/channels"] == "edi,shopify"
    assert {k.to_user_string() for k in req.asset_selection} >= {"stage/edi", "stage/shopify", "core/orders"}
    assert set(json.loads(second.cursor)) == {"shopify/orders.json", "edi/PO with space ü.edi"}

    # restart with the same cursor: nothing new, nothing repeated
    again = landing_sensor(dg.build_sensor_context(cursor=second.cursor, resources=res))
    assert not again.run_requests

    # a file still being written is ignored
    (settings.landing_dir("csv") / "big.csv.part").write_text("x")
    assert not landing_sensor(dg.build_sensor_context(cursor=second.cursor, resources=res)).run_requests


SELECTION_CAPTURE = ["stage/shopify", "stage/amazon", "stage/edi", "stage/csv", "stage/b2b_portal"]
VALIDATION = ["core/order_status", "core/order_holds", "core/validation_results", "core/order_events",
              "core/reservations", "core/manual_decisions", "core/anomaly_baselines"]


def _materialize(settings: Settings, selection: list[str], **kw) -> dg.ExecuteInProcessResult:
    return dg.materialize(all_assets, selection=selection, resources=resources(settings), **kw)


@pytest.fixture
def samples_landed(settings: Settings) -> Settings:
    for f in (FIXTURES / "shopify").glob("*.json"):
        # file names with spaces, unicode and '..' are just names
        drop(settings, "shopify", f, name="order ..ünïcode (2).json" if f.name == "order.json" else None)
    for f in (FIXTURES / "amazon").glob("*.json"):
        drop(settings, "amazon", f)
    for f in (FIXTURES / "x12").glob("*.edi"):
        drop(settings, "edi", f)
    return settings


def test_materialize_samples_into_core(samples_landed: Settings, wh: Warehouse):
    s = samples_landed
    res = _materialize(s, SELECTION_CAPTURE + ["core/orders", "core/order_lines", "core/order_versions",
                                               "core/order_line_versions", "core/probable_duplicates"]
                       + VALIDATION + ["analytics/views"])
    assert res.success
    checks = res.get_asset_check_evaluations()
    errors = [c for c in checks if not c.passed and c.severity != dg.AssetCheckSeverity.WARN]
    assert checks and not errors, [c.check_name for c in errors]
    # the upstream orders.json states subtotal_price 597.00 for lines of 597.00 with 10.00 of discounts (and
    # order.json a total of 409.94): a non-blocking warning on core/orders lists the live version
    (totals,) = [c for c in checks if c.check_name == "channel_totals"]
    assert not totals.passed and totals.severity == dg.AssetCheckSeverity.WARN
    assert "SHP-450789469" in totals.metadata["sample"].value

    files = wh.read("SELECT channel, source_file, records_received, records_accepted, records_quarantined FROM ops.ingest_files")
    assert (files["records_received"] == files["records_accepted"] + files["records_quarantined"]).all()
    assert "order ..ünïcode (2).json" in files["source_file"].to_list()
    archived = [p.name for p in s.archive.rglob("*") if p.is_file()]
    assert any(n.endswith("order_.unicode_2_.json") for n in archived) and all(".." not in n for n in archived)
    # nothing left in landing, everything archived
    assert not any(s.landing_dir(ch).iterdir().__next__() for ch in ("shopify", "amazon", "edi") if any(s.landing_dir(ch).iterdir()))

    orders = wh.read("SELECT order_id, channel, version, line_count, order_total, channel_total FROM core.orders ORDER BY order_id")
    by_id = {r["order_id"]: r for r in orders.iter_rows(named=True)}
    assert str(by_id["SHP-450789469"]["order_total"]) == "598.94" and by_id["SHP-450789469"]["version"] == 2
    assert str(by_id["AMZ-902-1845936-5435065"]["order_total"]) == "11.01"
    edi = orders.filter(orders["channel"] == "edi")
    # every sample 850 set except the damaged one and the second read of each pair of samples that share their
    # sender and ISA13 (EDI.Net's 850 and 850a: 01/000123456; stupidedi's two aerospace 850s: ZZ/123456789012345,
    # 000010216): a duplicate interchange, quarantined X12_DUPLICATE_INTERCHANGE and answered by a TA1
    assert edi.height >= 4
    dup = wh.read("SELECT source_file FROM ops.quarantine WHERE reason_code = 'X12_DUPLICATE_INTERCHANGE'")
    assert sorted(f.split(".")[0].split("_po850")[0] for f in dup["source_file"]) == ["edinet_x12", "stupidedi"]
    # validation: with no reference data loaded, every sample order is held (unknown customer / SKU), none lost
    st = wh.read("SELECT status, count(*) AS n FROM core.order_status GROUP BY 1")
    assert st["n"].sum() == orders.height and set(st["status"]) <= {"ON_HOLD", "CANCELLED"}
    assert wh.read("SELECT count(*) AS n FROM core.order_holds WHERE reason_code = 'UNKNOWN_CUSTOMER'")["n"][0] > 0
    pending = wh.read("SELECT amazon_order_id, waiting_for FROM ops.amazon_pending ORDER BY 1")
    assert pending.height == 3

    # the damaged issue135 set is quarantined alone; its sibling set is in core
    q = wh.read("SELECT reason_code FROM ops.quarantine WHERE source_file = 'edinet_x12.850.issue135.edi'")
    assert q.height == 1 and q["reason_code"][0].startswith("X12_")
    acks = wh.read("SELECT ack_file, sets_received, sets_accepted FROM ops.edi_acks WHERE source_file = 'edinet_x12.850.issue135.edi'")
    assert acks.rows() and acks["sets_received"][0] == 2 and acks["sets_accepted"][0] == 1
    assert Path(acks["ack_file"][0]).read_text().startswith("ISA")

    # idempotent: a second run changes nothing; a re-dropped identical file is not counted twice
    before = {t: wh.read(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in
              ("core.orders", "core.order_lines", "ops.quarantine", "ops.ingest_files", "stage.order_headers")}
    drop(s, "shopify", FIXTURES / "shopify" / "orders.json", name="orders (copy).json")
    assert _materialize(s, SELECTION_CAPTURE + ["core/orders", "core/order_lines", "core/order_versions",
                                                "core/order_line_versions", "core/probable_duplicates"]).success
    after = {t: wh.read(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in before}
    assert after == before
    assert wh.read("SELECT source_file, first_source_file FROM ops.ingest_redrops").rows() == [("orders (copy).json", "orders.json")]


def test_daily_sales_partition_range(samples_landed: Settings, wh: Warehouse):
    s = samples_landed
    assert _materialize(s, SELECTION_CAPTURE + ["core/orders", "core/order_lines", "core/order_versions",
                                                "core/order_line_versions", "core/probable_duplicates"]).success
    # put one order in the partition window so the range has something to count
    with wh.transaction() as con:
        con.execute("UPDATE core.orders SET order_date = DATE '2026-03-02' WHERE order_id = 'SHP-450789469'")
    tags = {"dagster/asset_partition_range_start": "2026-03-01", "dagster/asset_partition_range_end": "2026-03-03"}
    for _ in range(2):  # re-running the range replaces it: same rows
        assert _materialize(s, ["core/daily_sales"], tags=tags).success
    d = wh.read("SELECT order_date, channel, orders, order_total FROM core.daily_sales")
    assert d.rows() == [(date(2026, 3, 2), "shopify", 1, Decimal("598.94"))]


def test_multiprocess_run_never_hits_the_duckdb_lock(samples_landed: Settings, tmp_path: Path):
    """Two capture steps start at once under the multiprocess executor: they queue on the lock."""
    instance = dg.DagsterInstance.get()
    recon = dg.build_reconstructable_job("som_pipeline.definitions", "get_job", reconstructable_args=("ingest_job",))
    with dg.execute_job(
        recon, instance=instance, asset_selection=[dg.AssetKey(["stage", "shopify"]), dg.AssetKey(["stage", "edi"])],
        run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
    ) as result:
        assert result.success
        logs = "\n".join(str(e.message) for e in result.all_events if e.message)
    assert "Could not set lock" not in logs
    w = Warehouse(samples_landed.warehouse_path).read("SELECT DISTINCT channel FROM ops.ingest_files ORDER BY 1")
    assert w["channel"].to_list() == ["edi", "shopify"]
    shutil.rmtree(tmp_path, ignore_errors=True)
