"""Billing: invoices on what shipped (and their PDF / 810), credit notes, bank statements and payouts, payments
matched to invoices, and the receivables the credit check reads. Blocking checks: every shipped line invoiced once
and only once, invoice totals = Σ rounded lines, payments conserved (allocations never beyond the payment), the
receivables equal their documents."""

import dagster as dg

from assets.checks import json_metadata, model_check_specs, reconciliation_spec, step_results
from assets.lineage import table_key, table_specs
from resources import WarehouseResource
from som_pipeline.reporting import md_table
from som_pipeline.services.billing import BILLING, run_billing
from som_pipeline.services.validation import business_now

INVOICES = table_key("core.invoices")
PAYMENTS = table_key("core.payments")
AR = table_key("core.ar_open_items")
RULES = {"shipped_lines_invoiced_once": INVOICES, "invoice_totals": INVOICES, "payments_conserved": PAYMENTS,
         "bank_statements_balance": table_key("core.bank_statements"), "receivables_match_documents": AR}
# the rows a run wrote (by its clock): what the model checks validate (the tables grow with history)
THIS_RUN = {
    "core.invoices": "issued_at = $now",
    "core.invoice_lines": "invoice_id IN (SELECT invoice_id FROM core.invoices WHERE issued_at = $now)",
    "core.credit_notes": "issued_at = $now",
    "core.credit_note_lines": "credit_note_id IN (SELECT credit_note_id FROM core.credit_notes WHERE issued_at = $now)",
    "core.bank_statements": "received_at = $now",
    "core.bank_lines": "received_at = $now",
    "core.payment_suspense": "last_tried_at = $now",
    "core.payments": "received_at = $now",
    "core.payment_allocations": "allocated_at = $now",
    "core.customer_credits": "created_at = $now",
    "core.write_offs": "written_off_at = $now",
    "core.ar_open_items": "updated_at = $now",
}


@dg.multi_asset(
    name="billing",
    specs=table_specs(BILLING, "billing", {"polars", "duckdb"}),
    check_specs=model_check_specs(BILLING.writes) + [reconciliation_spec(n, k) for n, k in RULES.items()],
    pool="duckdb",
)
def billing(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    wh, settings = warehouse.warehouse(), warehouse.settings()
    now = business_now(settings)
    rep = run_billing(wh, settings, now)
    for note in rep.notes:
        context.log.info(note)
    with wh.connect() as con:
        aging = con.execute("SELECT * FROM core.v_ar_aging").pl()
    yield from step_results(wh, BILLING.writes, now, THIS_RUN, RULES, {
        "core.invoices": json_metadata(rep.as_metadata()),
        "core.ar_open_items": {"aging": dg.MetadataValue.md(md_table(aging, 20))}})
