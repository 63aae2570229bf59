"""Configuration: everything comes from the environment, with documented defaults.

| variable | default | meaning |
|---|---|---|
| ``SOM_HOME`` | ``./data`` | root of all state: landing zone, archive, reference data, warehouse, outbound, Dagster home |
| ``SOM_B2B_DB_URL`` | ``sqlite:///$SOM_HOME/b2b_portal.sqlite`` | SQLAlchemy URL of the B2B portal database |
| ``SOM_PARTITIONS_START`` | ``2026-01-01`` | first day of the order-date daily partitions |
| ``SOM_DUCKDB_LOCK_TIMEOUT`` | ``900`` | seconds a writer waits for the warehouse lock before failing |
| ``SOM_DUCKDB_MEMORY_LIMIT`` | ``2GB`` | DuckDB memory limit for the warehouse and the CSV reader |
| ``SOM_B2B_COMMIT_LAG_S`` | ``60`` | portal rows stamped less than this long ago wait for the next run (late commits) |
| ``SOM_LANDING_SETTLE_S`` | ``1`` | a landing file is taken when its size and mtime are unchanged for this long |
| ``SOM_INVOICE_PDFS`` | ``all`` | which invoices get a PDF in ``$SOM_HOME/outbound/invoices`` (``all``, ``b2b``: EDI, portal and sales-rep channels, ``none``); ~30 ms each |
| ``SOM_REF_MAX_SHRINK`` | ``0.5`` | a reference file losing more than this share of its table's rows (or empty) is refused |
| ``SOM_VALIDATION_CONFIG`` | ``$SOM_HOME/validation.toml`` if present | validation thresholds and policies (TOML, merged over ``som_pipeline/validation/defaults.toml``) |
| ``SOM_EDI_PARTNERS_CONFIG`` | ``$SOM_HOME/edi_partners.toml`` if present | EDI trading partners: which PO1 product id is the SKU (TOML over ``som_pipeline/ingest/x12/partners.toml``) |
| ``SOM_FORECAST_CONFIG`` | ``$SOM_HOME/forecast.toml`` if present | forecasting and replenishment settings (TOML over ``som_pipeline/planning/defaults.toml``) |
| ``SOM_FULFILMENT_CONFIG`` | none (defaults in ``som_pipeline/fulfilment/config.py``) | carrier shipper accounts, GS1 company prefix for SSCC labels, dimensional-weight divisor, fragile padding (TOML) |
| ``DAGSTER_HOME`` | ``$SOM_HOME/dagster_home`` | Dagster instance (set by the CLI when absent) |

No secrets live in code: a database password belongs in the URL in the environment (or a Dagster EnvVar).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from som_pipeline.ingest.channels import CHANNEL_NAMES as CHANNELS  # noqa: F401 (re-exported)
from som_pipeline.ingest.channels import FILE_CHANNELS  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Settings:
    home: Path
    b2b_db_url: str
    partitions_start: str = "2026-01-01"
    lock_timeout_s: float = 900.0
    duckdb_memory_limit: str = "2GB"
    b2b_commit_lag_s: float = 60.0
    ref_max_shrink: float = 0.5
    landing_settle_s: float = 1.0
    invoice_pdfs: str = "all"

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        root = Path(home or os.environ.get("SOM_HOME") or "data").expanduser().resolve()
        return cls(
            home=root,
            b2b_db_url=os.environ.get("SOM_B2B_DB_URL") or f"sqlite:///{root / 'b2b_portal.sqlite'}",
            partitions_start=os.environ.get("SOM_PARTITIONS_START", "2026-01-01"),
            lock_timeout_s=float(os.environ.get("SOM_DUCKDB_LOCK_TIMEOUT", "900")),
            duckdb_memory_limit=os.environ.get("SOM_DUCKDB_MEMORY_LIMIT", "2GB"),
            b2b_commit_lag_s=float(os.environ.get("SOM_B2B_COMMIT_LAG_S", "60")),
            ref_max_shrink=float(os.environ.get("SOM_REF_MAX_SHRINK", "0.5")),
            landing_settle_s=float(os.environ.get("SOM_LANDING_SETTLE_S", "1")),
            invoice_pdfs=os.environ.get("SOM_INVOICE_PDFS", "all").strip().lower(),
        )

    # --- layout under SOM_HOME -------------------------------------------------------------
    @property
    def landing(self) -> Path:
        return self.home / "landing"

    def landing_dir(self, channel: str) -> Path:
        return self.landing / channel

    @property
    def edi_partners_config(self) -> Path | None:
        """``SOM_EDI_PARTNERS_CONFIG``, else ``$SOM_HOME/edi_partners.toml`` when it exists, else the defaults."""
        env = os.environ.get("SOM_EDI_PARTNERS_CONFIG")
        if env:
            return Path(env)
        p = self.home / "edi_partners.toml"
        return p if p.exists() else None

    @property
    def validation_config(self) -> Path | None:
        """``SOM_VALIDATION_CONFIG``, else ``$SOM_HOME/validation.toml`` when it exists, else the defaults."""
        env = os.environ.get("SOM_VALIDATION_CONFIG")
        if env:
            return Path(env)
        p = self.home / "validation.toml"
        return p if p.exists() else None

    @property
    def forecast_config(self) -> Path | None:
        """``SOM_FORECAST_CONFIG``, else ``$SOM_HOME/forecast.toml`` when it exists, else the defaults."""
        env = os.environ.get("SOM_FORECAST_CONFIG")
        if env:
            return Path(env)
        p = self.home / "forecast.toml"
        return p if p.exists() else None

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def reference(self) -> Path:
        return self.home / "reference"

    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / "som.duckdb"

    @property
    def analytics_path(self) -> Path:
        return self.warehouse_dir / "som_analytics.duckdb"

    @property
    def outbound(self) -> Path:
        return self.home / "outbound"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    def ensure_dirs(self) -> None:
        for d in (self.reference, self.warehouse_dir, self.archive, self.outbound / "edi", self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        from som_pipeline.feeds import FEEDS

        for feed in FEEDS:
            self.landing_dir(feed).mkdir(parents=True, exist_ok=True)
