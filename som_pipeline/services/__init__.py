"""Services: the I/O shells around the pure core, one module per stage.

Each service reads warehouse tables, calls the stage's pure functions, and writes its tables in one
transaction. Each declares what it reads and writes as a :class:`Step`; the Dagster layer derives asset
lineage (``deps``) and the model checks of what it writes from that declaration, so there is no second,
hand-kept copy of the lineage. Files arrive through the one landing protocol (``services/landing.py``).

**A new stage**: a package in the core (pure functions over Polars frames), its models in ``schemas/``,
a module here with its ``Step`` and ``run_…`` function, an asset module in ``assets/`` built from the ``Step``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """The warehouse tables a service reads and writes (``schema.table`` names).

    ``appends``: tables it adds rows to that another stage's asset owns (the stock ledger, the order events):
    written in the same transaction as its own tables, no asset of their own here. ``feedback``: tables it reads
    as a later stage left them in the previous run (validation and allocation read what fulfilment shipped and
    released): read, part of its input digest, but not upstream in the graph (that would be a cycle)."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]
    appends: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        """What it reads that it does not write itself (its upstream)."""
        return tuple(t for t in self.reads if t not in self.writes and t not in self.appends)


# Tables summarised by the watermark of the stage that writes them (cheaper than hashing their rows).
WATERMARKED = {"core.orders": "core_orders", "core.order_lines": "core_orders"}
# Append-only tables summarised by their size and last posting number (never rewritten: that is all that changes;
# hashing them would read the whole history and the run ids they carry)
APPEND_ONLY = {"core.stock_ledger": "seq"}
# Run-time stamps left out of an input's digest: when a reservation was made or lapses does not change what
# allocation does with it (and would make the digest differ between equal tables).
RUN_STAMPS = {"core.reservations": ("reserved_at", "expires_at")}


def inputs_fingerprint(con, step: Step, *extra: object) -> str:
    """A digest of everything ``step`` reads from upstream plus ``extra`` (the clock-dependent facts and the
    configuration its results depend on). Equal digests mean a rerun would write the same rows, so the stage
    may skip (``som ingest`` then ``som run``). Each input table counts by its row count and the sum of its
    rows' hashes (one DuckDB scan), or by its writer's watermark (:data:`WATERMARKED`)."""
    from som_pipeline.hashing import sha256_text
    from som_pipeline.schemas import TABLES

    parts = [_canonical(extra)]
    for t in sorted({*step.inputs, *step.feedback}):
        if t not in TABLES:
            raise KeyError(f"{t} is not a declared table")
        if t in APPEND_ONLY:
            row = con.execute(f"SELECT count(*), coalesce(max({APPEND_ONLY[t]}), 0) FROM {t}").fetchone()  # noqa: S608
        elif t in WATERMARKED:
            row = con.execute("SELECT position, fingerprint FROM ops.watermarks WHERE consumer = ?",
                              [WATERMARKED[t]]).fetchone()
        elif t in RUN_STAMPS:  # the columns a reader acts on: not the run-time stamps
            cols = ", ".join(c for c in TABLES[t].to_schema().columns if c not in RUN_STAMPS[t])
            row = con.execute(f"SELECT count(*), coalesce(sum(hash({cols})), 0)::VARCHAR FROM {t}").fetchone()  # noqa: S608
        else:
            row = con.execute(f"SELECT count(*), coalesce(sum(hash(x)), 0)::VARCHAR FROM {t} x").fetchone()  # noqa: S608
        parts.append(f"{t}={row}")
    return sha256_text("|".join(parts).encode())


def _canonical(value: object) -> str:
    """A text of ``value`` equal across processes (sets sorted: their repr follows the hash seed)."""
    import dataclasses
    import json

    def plain(v: object) -> object:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
        if isinstance(v, (set, frozenset)):
            return sorted((plain(x) for x in v), key=str)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)

    return json.dumps(plain(value), sort_keys=True)
