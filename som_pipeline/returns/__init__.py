"""Returns: the pure core (readers, rules, money). Bytes and frames in, frames out: no Dagster, no DuckDB.

- :mod:`.readers`: return requests (CSV / JSON), Shopify refunds, return receipts -> typed rows + rejects.
- :mod:`.rules`: per-channel return policies, judging requests against the delivered order lines (RMAs),
  judging receipts against the RMAs (stock movements and exceptions); the reason codes (``rules.REASONS``).
- :mod:`.money`: what an accepted return is worth, from the invoice lines that billed the units
  (``billing.invoicing.credit_lines``), restocking fees, the shipping refund.
"""
