"""The "csv" channel: the sales-rep / bulk order template (CSV, or Parquet for bulk loads).

One row per order line, a header row naming the columns (see ``docs/csv_template.md``). The parser only
does structure; :func:`som_pipeline.ingest.common.normalise` (with :data:`NORMALISE_OPTIONS`) types and
checks the values. Files can be large (millions of rows), so nothing here loads a whole file into Python:

1. **Prepare** (:mod:`.prepare`, streaming, 4 MiB blocks): format, encoding, a UTF-8/LF copy when needed,
   line count and blank lines outside quoted fields; the **header** record (:mod:`.columns` maps it onto
   the template: names case-insensitive, surrounding spaces ignored, any order).
2. **Stage** (:mod:`.stage`): DuckDB's CSV reader (``all varchar``, RFC 4180 quoting, ``store_rejects``)
   copies the rows, in file order, to a compressed Parquet file under ``work_dir``; ragged/malformed rows
   land in DuckDB's rejects table. Parquet input is staged the same way, every column cast to text exactly.
3. **Layout** (:mod:`.layout`): a small per-row frame (order key, lines spanned, blank flag) gives every
   row its exact physical line and data-row number.
4. **Group** (:mod:`.chunks`): whole orders to chunks of about ``chunk_rows`` rows, in order of first
   appearance; a chunk is a slice of the staged file plus its orders' rows found elsewhere.
5. **Yield** (:mod:`.rows`, driven by :mod:`.parse`) one :class:`ParseResult` per chunk, each holding
   complete orders only.

Row numbering: ``record_id`` is ``row <n>`` (n counts data rows, rejected ones included, blank ones
not); ``location`` is ``line <physical line>``, exact even after quoted newlines, blank lines and
rejected rows.
"""

from som_pipeline.ingest.csv_template.columns import (
    CHANNEL,
    NORMALISE_OPTIONS,
    OPTIONAL_COLUMNS,
    RAW_FIELD,
    RECORD_KIND,
    RECORD_UNIT,
    REQUIRED_COLUMNS,
    REQUIRED_HEADER_VALUES,
    TEMPLATE_COLUMNS,
)
from som_pipeline.ingest.csv_template.parse import iter_csv_chunks, parse_csv_bytes
from som_pipeline.ingest.csv_template.prepare import BLOCK, HEADER_PROBE
from som_pipeline.ingest.csv_template.stage import DUCKDB_MEMORY_LIMIT, MAX_LINE_BYTES, RAW_TRUNCATED_AT

__all__ = [
    "BLOCK",
    "CHANNEL",
    "DUCKDB_MEMORY_LIMIT",
    "HEADER_PROBE",
    "MAX_LINE_BYTES",
    "NORMALISE_OPTIONS",
    "OPTIONAL_COLUMNS",
    "RAW_FIELD",
    "RAW_TRUNCATED_AT",
    "RECORD_KIND",
    "RECORD_UNIT",
    "REQUIRED_COLUMNS",
    "REQUIRED_HEADER_VALUES",
    "TEMPLATE_COLUMNS",
    "iter_csv_chunks",
    "parse_csv_bytes",
]
