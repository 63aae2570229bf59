"""The forecast in parts of series (``services.planning.PART_SERIES``), the replenishment plan in parts of SKUs
(``PART_SKUS``) and the demand history in buckets of orders (``HISTORY_BATCH_LINES``) write exactly the tables of
one part: a first run, a nightly run that keeps and carries forward most series, and the plan on top of each
(bounded memory at TPC-H SF 1, issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from test_forecasting import _fc_tables, _forecast_home, _history_orders, _history_warehouse, _inventory

from som_pipeline.config import Settings
from som_pipeline.services import planning as svc
from som_pipeline.warehouse import Warehouse, replace_table
from tests import builders as b

NOW = datetime(2026, 4, 1, 6, tzinfo=UTC)


def _home(tmp_path, monkeypatch, name: str) -> tuple[Settings, Warehouse]:
    home = tmp_path / name
    monkeypatch.setenv("SOM_HOME", str(home))
    s = Settings.from_env(home)
    s.ensure_dirs()
    _forecast_home(s)
    return s, Warehouse(s.warehouse_path, lock_timeout_s=60)


def _stock(wh: Warehouse) -> None:
    """The SKUs as products and some stock per SKU in both (US) warehouses: the plan has transfers and
    purchases."""
    from som_pipeline.fulfilment import ledger
    from som_pipeline.services.stock import post

    snap = _inventory(**{f"{sku}__{w}": q for sku, q in zip("ABCDEF", (0, 3, 40, 1, 90, 7), strict=True)
                         for w, q in (("WH-E", q), ("WH-W", (q * 7) % 11))})
    seen = pl.DataFrame(schema={"warehouse_id": pl.String, "sku": pl.String, "on_hand": pl.Int64})
    moves = ledger.cycle_count(snap, seen, snapshot_id="snapshot:test", recorded_at=NOW, run_id="test")
    with wh.transaction() as con:
        replace_table(con, "ref.products", b.products(*({"sku": sku, "category": "Tools"} for sku in "ABCDEF")))
        post(con, moves)


def _run(tmp_path, monkeypatch, name: str, series: int, skus: int, lines: int) -> list[dict[str, pl.DataFrame]]:
    """Days 0-89, then day 90 (the nightly run): the demand history, the forecast tables and the plan after each."""
    monkeypatch.setattr(svc, "PART_SERIES", series)
    monkeypatch.setattr(svc, "PART_SKUS", skus)
    monkeypatch.setattr(svc, "HISTORY_BATCH_LINES", lines)
    s, wh = _home(tmp_path, monkeypatch, name)
    orders, lines = _history_orders(range(91))
    first = orders.filter(pl.col("order_date") < orders["order_date"].max())
    out = []
    for day, o in ((0, first), (1, orders)):
        _history_warehouse(wh, o, lines.join(o.select("order_id"), on="order_id", how="semi"))
        _stock(wh)
        now = NOW + timedelta(days=day)
        run = svc.run_forecast(wh, s, now=now)
        svc.run_replenishment(wh, s, now=now)
        tables = _fc_tables(wh)
        tables["state.daily_demand"] = wh.read("SELECT * FROM state.daily_demand ORDER BY ALL")
        tables["core.replenishment_plan"] = wh.read("SELECT * FROM core.replenishment_plan ORDER BY priority")
        out.append({**tables, "refit": run.refit.sort("sku", "warehouse_id")})
    return out


def test_parts_of_two_series_and_two_skus_write_the_tables_of_one_part(tmp_path, monkeypatch) -> None:
    """Also the demand history recomputed in buckets of a date's orders (2 lines a batch: 1-3 buckets a day)."""
    whole = _run(tmp_path, monkeypatch, "whole", 10**9, 10**9, 10**9)
    parts = _run(tmp_path, monkeypatch, "parts", 2, 2, 2)
    for one, many in zip(whole, parts, strict=True):
        for t, df in one.items():
            assert df.height > 0, t
            assert many[t].equals(df), t
    # the nightly run kept and carried forward some series, refitted others; the plan proposes both kinds
    assert 0 < whole[1]["refit"].height < whole[0]["refit"].height
    assert set(whole[1]["core.replenishment_plan"]["kind"]) == {"transfer", "purchase"}


@pytest.mark.parametrize("size", [1, 3])
def test_parts_helper_keeps_the_order(size) -> None:
    keys = pl.DataFrame({"sku": list("ABCDEFG"), "warehouse_id": "W"})
    got = svc._parts(keys, size)
    assert pl.concat(got).equals(keys) and all(p.height <= size for p in got)
    assert len(svc._parts(keys.clear(), size)) == 1
