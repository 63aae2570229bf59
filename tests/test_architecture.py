"""House rules that a test can enforce."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"cli.py", "definitions.py", "__main__.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
    return mods


def test_domain_core_never_imports_dagster():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "som_pipeline").rglob("*.py")
        if p.name not in ENTRY_POINTS and {"dagster", "assets", "resources"} & _imports(p)
    ]
    assert offenders == [], f"domain modules importing the Dagster layer: {offenders}"


def test_entry_points_exist_and_meet_dagster():
    assert "dagster" in _imports(ROOT / "som_pipeline" / "definitions.py")


def test_no_float_money_in_models():
    """Money columns are decimals: no Float64 column whose name says it is an amount."""
    import polars as pl

    from som_pipeline.schemas import TABLES, polars_schema

    moneyish = ("price", "amount", "total", "subtotal", "limit", "cost", "rate")
    bad = [
        f"{t}.{c}"
        for t, m in TABLES.items()
        for c, dt in polars_schema(m).items()
        if dt == pl.Float64 and any(w in c for w in moneyish) and c != "on_time_rate"
    ]
    assert bad == []
