"""Capture (``stage.*``): every distinct observation of an order as captured from a channel, in arrival order,
and the Amazon order-header and order-items halves waiting to pair.

The capture ledger, quarantine and other run state are ``ops.*`` tables: :mod:`~som_pipeline.schemas.ops`.
"""

from __future__ import annotations

from som_pipeline.schemas.base import TsUTC, _f, _Strict
from som_pipeline.schemas.orders import _Line, _OrderHeader


class StagedOrderModel(_OrderHeader):
    """``stage.order_headers``: every distinct captured observation of an order, in arrival order."""

    capture_id: str = _f("Id of this observation: sha256(source file content) + record location.", unique=True)
    capture_seq: int = _f("Arrival sequence (monotonic) used to order observations with equal timestamps.")


class StagedLineModel(_Line):
    """``stage.order_lines``: lines of each staged observation."""

    capture_id: str = _f("Observation the line belongs to (stage.order_headers.capture_id).")

    class Config:
        strict = True
        unique = ["capture_id", "line_no"]


class AmazonHeaderModel(_Strict):
    """``stage.amazon_headers``: Amazon getOrders records, waiting to pair with their items."""

    amazon_order_id: str = _f("AmazonOrderId.")
    last_update: TsUTC = _f("LastUpdateDate.", nullable=True)
    header_json: str = _f("The validated header fields (JSON) ready to merge with items.")
    source_file: str = _f("File it came from.")
    source_location: str = _f("JSON pointer.")
    header_hash: str = _f("Hash of the header content.")
    received_at: TsUTC = _f("When it arrived.")


class AmazonItemsModel(_Strict):
    """``stage.amazon_items``: Amazon getOrderItems pages, waiting to pair with their order header."""

    amazon_order_id: str = _f("AmazonOrderId.")
    items_json: str = _f("The validated items of this page (JSON).")
    item_count: int = _f("Items on the page.", ge=1)
    has_next_page: bool = _f("The page carries a NextToken: more items pages follow.")
    source_file: str = _f("File it came from.")
    source_location: str = _f("JSON pointer.")
    items_hash: str = _f("Hash of the items content.")
    received_at: TsUTC = _f("When it arrived.")


class AmazonPairModel(_Strict):
    """``stage.amazon_pairs``: header x items combinations already captured as an order observation."""

    amazon_order_id: str = _f("AmazonOrderId.")
    pair_key: str = _f("sha256(header_hash | items_hash): the same pair is never captured twice.", unique=True)
    source_file: str = _f("Header file + items file(s).")
    outcome: str = _f("captured | quarantined", isin=["captured", "quarantined"])
    paired_at: TsUTC = _f("When it was paired.")
