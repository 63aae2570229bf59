"""The order channels: one record per channel, declared once.

Everything else derives from :data:`CHANNELS`: the landing folders (``Settings.ensure_dirs``), the channel
column's allowed values (``schemas``), the order-id prefix (``orders.order_id_expr``), the record unit in the
ledger (``ops.ingest_files.record_unit``), the capture assets and their descriptions (``assets/capture.py``),
the landing sensor's watch list and the re-drop/conservation tests that run over every feed.

**A new channel**: add a :class:`Channel` record here and a parser module in ``ingest/`` that returns
``ingest.common.ParseResult`` (structure only, fields as text; the shared ``normalise()`` types and checks it).
A file channel whose parser takes ``(bytes, file name)`` names it in ``parser`` and needs nothing else; a
channel with extra writes (acknowledgments, pairing) or a database source adds its capture function to
``services/channels.py`` (``CAPTURERS``).

Pure data: this module imports nothing of the project (config and schemas import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Channel:
    name: str  # ledger/quarantine channel, landing folder, asset key stage/<name>
    code: str  # order_id prefix: <code>-<channel_order_ref>
    record_unit: str  # what one received record is (ops.ingest_files.record_unit)
    source: Literal["landing", "database"]
    description: str
    parser: str | None = None  # "module:function" taking (bytes, file name) -> ParseResult, for plain file channels


CHANNELS: dict[str, Channel] = {c.name: c for c in (
    Channel("shopify", "SHP", "order", "landing",
            "Shopify Admin REST order JSON ({'order'} / {'orders'}) from $SOM_HOME/landing/shopify.",
            parser="som_pipeline.ingest.shopify:parse_shopify"),
    Channel("amazon", "AMZ", "order / order_item", "landing",
            "Amazon SP-API Orders v0 getOrders pages and getOrderItems responses from $SOM_HOME/landing/amazon, "
            "paired by AmazonOrderId (an order waits, visible in ops.amazon_pending, until its items arrive)."),
    Channel("edi", "EDI", "transaction_set", "landing",
            "ANSI X12 004010 850 purchase orders from $SOM_HOME/landing/edi; a 997 per interchange in "
            "$SOM_HOME/outbound/edi.", parser="som_pipeline.ingest.x12:parse_x12"),
    Channel("csv", "CSV", "row", "landing",
            "Sales-rep / bulk order template (CSV or Parquet, one row per line) from $SOM_HOME/landing/csv, streamed."),
    Channel("b2b_portal", "B2B", "order_line", "database",
            "B2B portal orders read through SQLAlchemy (SOM_B2B_DB_URL), incrementally by updated_at watermark."),
)}

CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)
FILE_CHANNELS: tuple[str, ...] = tuple(n for n, c in CHANNELS.items() if c.source == "landing")
CHANNEL_CODES: dict[str, str] = {n: c.code for n, c in CHANNELS.items()}
