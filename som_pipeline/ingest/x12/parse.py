"""The X12 channel's parser entry point: bytes -> :class:`ParseResult` (one record per transaction set)."""

from __future__ import annotations

from som_pipeline.ingest.common import DecodeError, ParseResult, Rejection, decode_text, raw_frame
from som_pipeline.ingest.x12.envelope import EnvelopeWalker
from som_pipeline.ingest.x12.products import DEFAULT_RULES, SkuRules
from som_pipeline.ingest.x12.tokenizer import X12Error, looks_like_isa, skip_ws
from som_pipeline.ingest.x12.transaction_set import RoutedJudge

CHANNEL = "edi"
RECORD_UNIT = "transaction_set"
FILE_RECORD_ID = "(file)"


def parse_x12(data: bytes, source_file: str, *, sku_rules: SkuRules = DEFAULT_RULES,
              routed_sets: frozenset[str] = frozenset(), judge_routed: RoutedJudge | None = None) -> ParseResult:
    """Parse an X12 file (any number of interchanges) into raw rows (one per PO1 of each sound 850 set).

    ``sku_rules``: which PO1 product id is the SKU (per trading partner; :mod:`.products`).
    ``routed_sets``: ST01 ids handed on to another reader (the EDI channel routes ``{"214"}`` to tracking): such a
    set (inside a functional group) is neither a row nor a rejection of this file, so it is not counted here and
    not quarantined ``X12_UNSUPPORTED_SET``; its outcome entry has ``routed`` and ``raw`` (see
    :func:`.routing.routed_x12`) and the 997 verdict of ``judge_routed`` (the other reader's; None: syntax only).
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
    walker = EnvelopeWalker(text, sku_rules, routed_sets, judge_routed)
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
