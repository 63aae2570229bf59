"""Shared fixtures: a throw-away SOM_HOME and warehouse per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from som_pipeline.config import Settings
from som_pipeline.warehouse import Warehouse

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "som"
    monkeypatch.setenv("SOM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    monkeypatch.setenv("SOM_B2B_COMMIT_LAG_S", "0")
    monkeypatch.setenv("SOM_LANDING_SETTLE_S", "0")  # tests write complete files; settling has its own tests
    s = Settings.from_env(home)
    s.ensure_dirs()
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    return s


@pytest.fixture
def wh(settings: Settings) -> Warehouse:
    return Warehouse(settings.warehouse_path, lock_timeout_s=60)


def drop(settings: Settings, channel: str, *paths: Path, name: str | None = None) -> list[Path]:
    """Copy fixture files into the channel's landing folder."""
    out = []
    for p in paths:
        dest = settings.landing_dir(channel) / (name or p.name)
        shutil.copyfile(p, dest)
        out.append(dest)
    return out


def postgres_url() -> str:
    return os.environ.get("SOM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
