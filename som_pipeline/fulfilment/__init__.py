"""Fulfilment: every allocated line to a package on a truck, on one append-only stock ledger.

Pure functions over Polars frames (no Dagster, no connections), one module per step:

- ``ledger``    the stock ledger's movement kinds, their effect on on-hand / reserved / picked, and the
                balances derived from movements (on-hand cannot drift: it is a sum of the ledger)
- ``waves``     pick waves per warehouse before its cutoff; pick tasks per line x bin on a serpentine walk
- ``scans``     scanner events (CSV / JSON lines) read and judged against the open tasks
- ``receipts``  purchase-order and transfer receipts read into receipt movements
- ``packing``   carton choice: a 3-D packing heuristic under each carton's weight limit
- ``labels``    carrier tracking numbers (UPS, FedEx, USPS, DHL) and SSCC-18, each with its check digit
- ``outbound``  ship confirmations in the channels' formats (X12 856, Shopify, Amazon) and manifests

The I/O shell is ``services/fulfilment.py``; the Dagster layer ``assets/fulfilment.py``.
"""
