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
    """The warehouse tables a service reads and writes (``schema.table`` names)."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        """What it reads that it does not write itself (its upstream)."""
        return tuple(t for t in self.reads if t not in self.writes)
