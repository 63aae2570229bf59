"""ConfigurableResources over the domain's Warehouse and settings.

``SOM_HOME`` (default ``./data``), ``SOM_DUCKDB_LOCK_TIMEOUT`` (900 s), ``SOM_DUCKDB_MEMORY_LIMIT`` (2GB) and
``SOM_B2B_DB_URL`` (default: the demo SQLite file under SOM_HOME) are read through ``dg.EnvVar`` when set,
so launched runs resolve them at run time and the UI never shows a secret.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine, create_engine

from som_pipeline.config import Settings
from som_pipeline.warehouse import Warehouse


def _env_or(name: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(name) if os.environ.get(name) else default


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse under ``$SOM_HOME/warehouse`` (single writer, see som_pipeline.warehouse)."""

    som_home: str
    lock_timeout_s: str = "900"
    memory_limit: str = "2GB"

    def settings(self) -> Settings:
        base = Settings.from_env(self.som_home)
        s = replace(base, lock_timeout_s=float(self.lock_timeout_s), duckdb_memory_limit=self.memory_limit)
        s.ensure_dirs()
        return s

    def warehouse(self) -> Warehouse:
        s = self.settings()
        return Warehouse(s.warehouse_path, lock_timeout_s=s.lock_timeout_s, memory_limit=s.duckdb_memory_limit)


class B2BPortalResource(dg.ConfigurableResource):
    """SQLAlchemy URL of the B2B portal database (empty: the demo SQLite file under SOM_HOME)."""

    url: str = ""

    def engine(self, settings: Settings) -> Engine:
        return create_engine(self.url or settings.b2b_db_url, pool_pre_ping=True)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    home = _env_or("SOM_HOME", str(Path("data").resolve()))
    return {
        "warehouse": WarehouseResource(
            som_home=home,
            lock_timeout_s=_env_or("SOM_DUCKDB_LOCK_TIMEOUT", "900"),
            memory_limit=_env_or("SOM_DUCKDB_MEMORY_LIMIT", "2GB"),
        ),
        "b2b_portal": B2BPortalResource(url=_env_or("SOM_B2B_DB_URL", "")),
    }
