"""Billing: invoices, payments, receivables (pure core)."""
