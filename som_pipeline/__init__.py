"""som_pipeline — the domain core of the sales-order-management batch ETL.

Pure functions over Polars frames (parsers, rules, allocation, forecasting, billing), the Pandera
models that define every table, and configuration. Nothing in this package imports Dagster except the
entry points (``cli``, ``definitions``); a test enforces it.
"""

__version__ = "0.1.0"
