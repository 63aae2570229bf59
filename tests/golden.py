"""The demo through every stage (services, pinned clock) and a content hash of every warehouse table.

Used by the golden regression test (``tests/test_golden.py``): a refactor or a new stage must leave the demo's
tables identical. Hashes are order-independent (each row hashed, the row hashes sorted) and ignore only the
run-time columns listed in :data:`RUN_TIME_COLUMNS`; the home directory is replaced by ``$HOME`` so paths in
ledgers compare across machines. Regenerate the golden file (after a change that is *meant* to change the
demo's tables, and say why in the commit) with ``SOM_UPDATE_GOLDEN=1 pytest tests/test_golden.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from som_pipeline.config import Settings
from som_pipeline.demo import generate_demo
from som_pipeline.warehouse import Warehouse, content_hashes

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
GOLDEN_FILE = Path(__file__).parent / "golden" / "demo_tables.json"

# Columns stamped with the wall clock or a run id (not derived from the inputs and the pinned clock).
RUN_TIME_COLUMNS = frozenset({
    "ops.quarantine.quarantined_at",  # reference-file quarantine rows are stamped at load time
    "ops.watermarks.updated_at",  # reference loads record their file's hash at load time
})


def demo_settings(home: Path) -> Settings:
    # the demo writes its files whole before each run: nothing is left to settle (timing never decides what a run takes)
    s = Settings(home=home, b2b_db_url=f"sqlite:///{home / 'b2b_portal.sqlite'}", b2b_commit_lag_s=0,
                 landing_settle_s=0.0)
    s.ensure_dirs()
    return s


def run_all(s: Settings, wh: Warehouse, now: datetime = NOW) -> None:
    """Every stage in graph order, as the assets call them."""
    from som_pipeline.schemas import REFERENCE_TABLES
    from som_pipeline.services.allocation import run_allocation
    from som_pipeline.services.billing import run_billing
    from som_pipeline.services.channels import capture_channel
    from som_pipeline.services.closure import run_closure
    from som_pipeline.services.disruptions import ingest_disruptions
    from som_pipeline.services.fulfilment import run_floor, run_fulfilment
    from som_pipeline.services.orders import build_core_orders
    from som_pipeline.services.planning import run_forecast, run_replenishment
    from som_pipeline.services.reference import load_reference_tables
    from som_pipeline.services.returns import run_returns
    from som_pipeline.services.stock import run_stock_postings
    from som_pipeline.services.tracking import run_tracking
    from som_pipeline.services.validation import run_validation

    load_reference_tables(wh, s, list(REFERENCE_TABLES))
    for ch in ("shopify", "amazon", "edi", "csv", "b2b_portal"):
        capture_channel(ch, wh, s, now=now)
    build_core_orders(wh, now=now)
    run_stock_postings(wh, s, now)
    run_floor(wh, s, now)
    run_validation(wh, s, now=now)
    with wh.connect() as con:
        ingest_disruptions(con, s, now)
    run_allocation(wh, s, now=now)
    run_fulfilment(wh, s, now)
    run_tracking(wh, s, now)
    run_billing(wh, s, now)
    run_returns(wh, s, now)
    run_closure(wh, s, now)
    run_forecast(wh, s, now=now)
    run_replenishment(wh, s, now=now)


FLOOR_AT = NOW + timedelta(hours=1)  # the floor works the released waves ...
SECOND_RUN = NOW + timedelta(hours=3)  # ... and the next run takes its scans, receipts and count
CARRIER_HOURS = 72  # the carriers report three days of tracking events ...
THIRD_RUN = SECOND_RUN + timedelta(hours=CARRIER_HOURS)  # ... the third run takes them (and invoices) ...
BANK_RUN = THIRD_RUN + timedelta(hours=24)  # ... the bank reports the payments and returns come, a run matches them
SETTLE_RUN = BANK_RUN + timedelta(days=35)  # a month later the bank and the channels pay what is open: orders close
LAST_RUN = SETTLE_RUN + timedelta(hours=24)  # ... the next day brings chargebacks of closed orders: they re-open


def demo_pipeline(home: Path, month_later: bool = True) -> tuple[Settings, Warehouse, dict]:
    """``make run`` with a pinned clock: the demo, a run, the warehouse floor's work, a second run, three days of
    the carriers' tracking events, a third run, the bank's statements and returns, a run; then (``month_later``) a
    month later the settlements, a run, the next day's disputes, a last run."""
    from som_pipeline.demo.bank import simulate_bank, simulate_settlement
    from som_pipeline.demo.carrier_feed import simulate_carrier_feed
    from som_pipeline.demo.disputes import simulate_disputes
    from som_pipeline.demo.floor import simulate_floor
    from som_pipeline.demo.returns import simulate_returns

    manifest = generate_demo(home, scale=0.08, days=21)
    s = demo_settings(home)
    wh = Warehouse(s.warehouse_path)
    run_all(s, wh)
    manifest["floor"] = simulate_floor(home, wh, FLOOR_AT)
    run_all(s, wh, SECOND_RUN)
    manifest["carriers"] = simulate_carrier_feed(home, wh, SECOND_RUN, CARRIER_HOURS)
    run_all(s, wh, THIRD_RUN)
    manifest["bank"] = simulate_bank(home, wh, THIRD_RUN.date())
    manifest["returns"] = simulate_returns(home, wh, THIRD_RUN)
    run_all(s, wh, BANK_RUN)
    manifest["plan_kinds"] = wh.read("SELECT kind FROM core.replenishment_plan")["kind"].to_list()
    if month_later:
        manifest["carriers_month"] = simulate_carrier_feed(home, wh, BANK_RUN, (SETTLE_RUN - BANK_RUN).days * 24)
        manifest["settlement"] = simulate_settlement(home, wh, SETTLE_RUN.date())
        run_all(s, wh, SETTLE_RUN)
        manifest["disputes"] = simulate_disputes(home, wh, LAST_RUN)
        run_all(s, wh, LAST_RUN)
    return s, wh, manifest


# When a stage last ran: a full rebuild runs every stage at the last run's clock, where the incremental runs may
# have kept rows stamped by an earlier run (a forecast series not refit, a digest recorded once more)
REBUILD_STAMPS = frozenset({"core.demand_forecast.generated_at", "core.forecast_accuracy.evaluated_at",
                            "state.forecast_fits.fitted_at", "ops.watermarks.fingerprint"})


def table_hashes(path: Path, home: Path, exclude: frozenset[str] = frozenset()) -> dict[str, list]:
    """``schema.table`` -> ``[rows, md5]`` for every table of the warehouse file."""
    return content_hashes(path, home=home, exclude=RUN_TIME_COLUMNS | exclude)
