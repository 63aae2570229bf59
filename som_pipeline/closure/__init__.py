"""Order closure: status, reconciliation breaks and the nightly report (pure Polars)."""
