"""Channel parsers and the shared normaliser: how an order file (or portal batch) becomes staged orders.

What belongs here: pure code that turns what a channel sends into staged orders and quarantine rows.
Parsers and the normaliser do no warehouse writes, no landing-zone bookkeeping and no Dagster (that is
``services/`` and ``assets/``); the one exception is ``b2b``, which reads (and, for the demo and tests,
creates) the portal database it parses.

- :mod:`.common`: the raw-row contract (``RAW_COLUMNS``, :func:`~.common.raw_frame`,
  :class:`~.common.ParseResult`, :class:`~.common.Rejection`), :func:`~.common.decode_text`, and
  :func:`~.common.normalise` / :func:`~.common.normalise_many`, which type and check every field
  (vectorised) and return a :class:`~.common.Captured`: staged headers, lines and quarantine.
- :mod:`.jsondoc`: exact JSON reading shared by the JSON channels (numbers kept as sent).
- one module or package per channel: :mod:`.shopify`, :mod:`.amazon`, :mod:`.x12` (EDI 850 + 997),
  :mod:`.csv_template` (CSV/Parquet template, streamed in chunks), :mod:`.b2b` (portal database).

Adding a channel's parser: a parser returns ``ingest.common.ParseResult`` (structure only, fields as
text); the shared ``normalise()`` types and checks it. Concretely:

1. Decode with :func:`~.common.decode_text` (or stream, as ``csv_template`` does for large files). Never
   raise on bad input: an unreadable file is one :class:`~.common.Rejection` of record kind ``file``.
2. Emit one raw row per order line (:func:`~.common.raw_frame`, every value as text, exactly as sent):
   ``record_id`` unique per record in the file, ``order_key`` shared by the rows of one order, the order's
   header fields repeated on each line, ``location`` / ``record_location`` / ``raw`` so a quarantined
   record can be found and read back. Do not convert, round or default values: ``normalise`` does that,
   the same way for every channel, and names the field when a value is bad.
3. A record that cannot even be split into fields (bad JSON object, damaged X12 set, ragged CSV row) goes
   to ``ParseResult.rejected`` with a reason code registered in :data:`som_pipeline.reasons.REASONS`;
   every record received ends accepted or quarantined (``normalise`` asserts the counts per file).
4. Channel-specific requirements are ``normalise`` options (e.g. ``csv_template.NORMALISE_OPTIONS``:
   stated line numbers, more required header fields); anything the channel must answer (an X12 997)
   is built from ``ParseResult.extras`` and the ``Captured`` result.
5. Tests: real or realistic samples, every reason code, and the property "any bytes: no exception,
   received = accepted + quarantined" (see ``tests/test_shopify.py``).

Wiring the parser into capture (which channel reads which files, extra writes) is not done here.
"""
