"""EDI channel: ANSI X12 850 purchase orders (versions 003040-005010) -> raw rows, and the 997 that answers them.

All pure functions of the text they are given, in the order a file goes through them:

- :mod:`.versions`: the X12 releases the 850 reader maps (003040-005010) and their date rules.
- :mod:`.products`: which PO1 product id is the SKU (per-partner qualifier priority, placeholders skipped).
- :mod:`.tokenizer`: the separators each ISA declares (tolerating the ISA deviations real partners send)
  and the segments they cut the text into; :func:`split_segments` for tests and tools.
- :mod:`.envelope`: the ISA/GS/ST..SE/GE/IEA walker; envelope errors are reported, never reject a sound set.
- :mod:`.transaction_set`: one ST..SE set: syntax checks (997 AK5/AK3 codes) and its verdict.
- :mod:`.po850`: the 850 reader (field mapping decisions in its docstring): one raw row per PO1.
- :mod:`.parse`: :func:`parse_x12`, bytes -> ``ParseResult`` (one record per transaction set).
- :mod:`.duplicates`: :func:`flag_duplicate_interchanges` (an ISA13 its sender already used).
- :mod:`.routing`: :func:`routed_x12`, the sets ``parse_x12(routed_sets=...)`` left out (214s for tracking) as an
  X12 file of their own.
- :mod:`.ack997`: :func:`build_997` (one 997 per received interchange, one FA group per received sender;
  a TA1 for a duplicate), :func:`ack_group_count`, :func:`ack_file_name`, :func:`accepted_set_ids`.
"""

from som_pipeline.ingest.x12.ack997 import accepted_set_ids, ack_file_name, ack_group_count, build_997
from som_pipeline.ingest.x12.duplicates import flag_duplicate_interchanges, interchange_key
from som_pipeline.ingest.x12.parse import CHANNEL, FILE_RECORD_ID, RECORD_UNIT, parse_x12
from som_pipeline.ingest.x12.po850 import DEFAULT_CURRENCY, SUPPORTED_SET
from som_pipeline.ingest.x12.products import EdiPartnersConfigError, SkuRules, load_sku_rules
from som_pipeline.ingest.x12.routing import encode_like, routed_x12
from som_pipeline.ingest.x12.tokenizer import (
    ISA_LENGTH,
    ISA_WIDTHS,
    Segment,
    Separators,
    X12Error,
    split_segments,
)
from som_pipeline.ingest.x12.transaction_set import RECORD_KIND
from som_pipeline.ingest.x12.versions import SUPPORTED_VERSIONS

__all__ = [
    "CHANNEL",
    "DEFAULT_CURRENCY",
    "FILE_RECORD_ID",
    "ISA_LENGTH",
    "ISA_WIDTHS",
    "RECORD_KIND",
    "RECORD_UNIT",
    "SUPPORTED_SET",
    "SUPPORTED_VERSIONS",
    "EdiPartnersConfigError",
    "SkuRules",
    "Segment",
    "Separators",
    "X12Error",
    "accepted_set_ids",
    "ack_file_name",
    "ack_group_count",
    "flag_duplicate_interchanges",
    "interchange_key",
    "load_sku_rules",
    "build_997",
    "encode_like",
    "parse_x12",
    "routed_x12",
    "split_segments",
]
