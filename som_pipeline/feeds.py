"""The landing feeds: every folder under ``$SOM_HOME/landing/`` and what reads it, declared once.

A feed is a stream of files that arrive in ``landing/<name>/`` and go through the one landing protocol
(``services/landing.py``: complete files only, content hash, ledger row in ``ops.ingest_files``, re-drop
detection in ``ops.ingest_redrops``, healing of an interrupted archive, quarantine with reasons, per-file
conservation). The order channels with files are feeds (from ``ingest/channels.py``); so are manual decisions
and the disruption feed; tracking events, receipts, bank statements and returns will be.

**A new feed**: add a :class:`Feed` here, a reader in the core (file -> typed rows + rejects), a service that
takes files through ``services.landing.incoming`` and archives them after its transaction, the asset that
runs it (``assets/``, which also maps the feed to that asset for the landing sensor), and a case in
``tests/test_landing.py``'s feed table. Folders, the sensor's watch list and the shared tests derive from here.

Pure data: imports only the channel registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from som_pipeline.ingest.channels import CHANNELS


@dataclass(frozen=True)
class Feed:
    name: str  # landing/<name>/, archive/<name>/, ops.ingest_files.channel
    record_unit: str  # what one record of a file is
    stage: str  # the stage whose service reads it
    description: str


FEEDS: dict[str, Feed] = {
    **{c.name: Feed(c.name, c.record_unit, "capture", c.description)
       for c in CHANNELS.values() if c.source == "landing"},
    "approvals": Feed("approvals", "decision", "validation",
                      "Manual decisions on held orders (CSV/JSON: order, hold, decision, approver, note)."),
    "disruptions": Feed("disruptions", "disruption", "reference",
                        "Warehouse / region / carrier disruptions (CSV/Parquet) -> ref.disruptions."),
    "receipts": Feed("receipts", "receipt", "stock",
                     "Purchase-order and transfer receipts (CSV / JSON lines) -> core.receipts and the stock ledger."),
    "carrier_events": Feed("carrier_events", "tracking_event", "tracking",
                           "Carrier tracking events: X12 214, carrier-aggregator trackers (EasyPost-style JSON), Shopify "
                           "fulfillment events, Amazon tracking notifications -> core.tracking_events."),
    "bank": Feed("bank", "bank_line", "billing",
                 "Bank statements: SWIFT MT940, BAI2, ISO 20022 camt.053 -> core.bank_statements, core.bank_lines, "
                 "the customers' payments (core.payments) matched to invoices."),
    "payouts": Feed("payouts", "payout_line", "billing",
                    "Channel payouts: Shopify payouts with their transactions, Amazon settlement reports: charges, "
                    "refunds, fees and the deposit, reconciled to the bank."),
    "payment_decisions": Feed("payment_decisions", "decision", "billing",
                              "Manual payment match decisions (CSV: payment_id, action match|credit|write_off|refund, "
                              "invoice_id, amount, note), applied on the next run."),
    "returns": Feed("returns", "return_request", "returns",
                    "Return requests (CSV / JSON: order, line, quantity, reason, requested_at, note, exchange SKU) "
                    "Shopify refunds and Amazon returns reports (FBA customer returns, merchant-fulfilled returns; "
                    "tab-separated) -> core.return_requests (RMAs or refusals), refunds and credit notes."),
    "return_receipts": Feed("return_receipts", "return_receipt", "returns",
                            "What came back against an RMA, graded restock | refurbish | scrap (CSV) -> "
                            "core.return_receipts and the stock ledger."),
    "chargebacks": Feed("chargebacks", "dispute", "returns",
                        "Payment disputes: Shopify Payments disputes (JSON), a card processor's dispute report (CSV / "
                        "JSON) -> core.chargebacks; a chargeback re-opens a closed order."),
    "scans": Feed("scans", "scan", "fulfilment",
                  "Pick scanner events (CSV / JSON lines) -> core.pick_scans, pick tasks and the stock ledger."),
}
