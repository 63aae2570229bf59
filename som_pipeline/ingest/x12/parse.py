"""The X12 channel's parser entry point: bytes -> :class:`ParseResult` (one record per transaction set)."""

from __future__ import annotations

from som_pipeline.ingest.common import DecodeError, ParseResult, Rejection, decode_text, raw_frame
from som_pipeline.ingest.x12.envelope import EnvelopeWalker
from som_pipeline.ingest.x12.products import DEFAULT_RULES, SkuRules
from som_pipeline.ingest.x12.tokenizer import X12Error, looks_like_isa, skip_ws

CHANNEL = "edi"
RECORD_UNIT = "transaction_set"
FILE_RECORD_ID = "(file)"


def parse_x12(data: bytes, source_file: str, *, sku_rules: SkuRules = DEFAULT_RULES) -> ParseResult:
    """Parse an X12 file (any number of interchanges) into raw rows (one per PO1 of each sound 850 set).

    ``sku_rules``: which PO1 product id is the SKU (per trading partner; :mod:`.products`).
    Never raises on bad input. ``extras["interchanges"]`` describes every interchange (ISA fields,
    separators, groups, per-set parse outcome with AK5/AK3/AK4 codes, envelope errors) for :func:`build_997`.
    """
    try:
        text, encoding = decode_text(data)
    except DecodeError as e:
        return ParseResult(CHANNEL, RECORD_UNIT, raw_frame([]),
                           [Rejection(FILE_RECORD_ID, "file", "whole file", e.reason_code, e.message)],
                           extras={"interchanges": []})
    text = text.lstrip("\ufeff")
    walker = EnvelopeWalker(text, sku_rules)
    try:
        walker.run()
    except X12Error as e:
        pos = skip_ws(text, 0)
        where = f"ISA segment (line {1 + text.count(chr(10), 0, pos)})" if looks_like_isa(text, pos) else "whole file"
        return ParseResult(CHANNEL, RECORD_UNIT, raw_frame([]),
                           [Rejection(FILE_RECORD_ID, "file", where, "X12_SYNTAX",
                                      f"{e}: the file cannot be split into segments", text)],
                           encoding=encoding, extras={"interchanges": []})
    return ParseResult(CHANNEL, RECORD_UNIT, raw_frame(walker.rows), walker.rejected, encoding=encoding,
                       extras={"interchanges": walker.interchanges})
