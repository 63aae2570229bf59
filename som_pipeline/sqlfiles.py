"""The analyst-facing SQL shipped with the package (``sql/`` in the repository).

Each file holds one object or one query and starts with a ``--`` header saying what it answers.
Reconciliation queries return the rows that break a rule (no rows = reconciled); their header carries
``-- severity: error|warn``. Views are ``CREATE OR REPLACE VIEW`` statements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@cache
def sql_dir() -> Path:
    here = Path(__file__).resolve().parent
    for cand in (here / "_sql", here.parent / "sql"):  # installed wheel, then source checkout
        if cand.is_dir():
            return cand
    raise FileNotFoundError("the sql/ directory is not installed with som_pipeline")


@dataclass(frozen=True)
class SqlFile:
    name: str
    path: Path
    text: str

    @property
    def summary(self) -> str:
        lines = [ln[2:].strip() for ln in self.text.splitlines() if ln.startswith("--")]
        return " ".join(ln for ln in lines if ln and not ln.startswith("severity:"))

    @property
    def tables(self) -> tuple[str, ...]:
        """The warehouse tables the SQL reads (``schema.table``; views ``v_*`` and the object it creates excluded)."""
        body = re.sub(r"--[^\n]*", "", self.text)
        created = set(re.findall(r"CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(\w+\.\w+)", body, re.I))
        found = re.findall(r"\b((?:stage|core|ref|ops)\.[a-z_][a-z0-9_]*)\b", body)
        return tuple(sorted({t for t in found if t not in created and not t.split(".")[1].startswith("v_")}))

    @property
    def severity(self) -> str:
        m = re.search(r"^--\s*severity:\s*(\w+)", self.text, re.M)
        return m.group(1).lower() if m else "error"


def sql_files(kind: str) -> list[SqlFile]:
    """``kind``: ``views`` or ``reconciliation``; sorted by file name (views may depend on earlier ones)."""
    return [SqlFile(p.stem, p, p.read_text(encoding="utf-8")) for p in sorted((sql_dir() / kind).glob("*.sql"))]


def sql_file(kind: str, name: str) -> SqlFile:
    p = sql_dir() / kind / f"{name}.sql"
    return SqlFile(name, p, p.read_text(encoding="utf-8"))
