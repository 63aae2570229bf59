"""Docs derived from code stay current."""

from __future__ import annotations

from pathlib import Path

from som_pipeline.datadict import render_data_dictionary
from som_pipeline.reasons import REASONS

ROOT = Path(__file__).resolve().parents[1]


def test_data_dictionary_is_current():
    committed = (ROOT / "docs" / "data_dictionary.md").read_text(encoding="utf-8")
    assert committed == render_data_dictionary(), "docs/data_dictionary.md is stale: run `som docs`"


def test_every_reason_code_is_documented_in_the_dictionary():
    text = render_data_dictionary()
    assert all(f"`{code}`" in text for code in REASONS)


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
