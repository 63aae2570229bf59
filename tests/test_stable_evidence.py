"""Re-evaluating an order whose outcome did not change keeps its previous evidence (validation/stable.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from som_pipeline.validation.stable import keep_open_hold_text, keep_unchanged_results


def _results(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"order_id": pl.String, "line_no": pl.Int64, "rule": pl.String,
                                      "outcome": pl.String, "reason_code": pl.String, "message": pl.String,
                                      "evidence": pl.String}, orient="row")


def test_same_outcome_keeps_old_rows_changed_outcome_replaces_all() -> None:
    old = _results([("A", None, "credit", "fail", "CREDIT_LIMIT", "exposure 120 > 100", "{\"x\":1}"),
                    ("A", None, "promo", "pass", None, "no promo code", "{}"),
                    ("B", None, "credit", "fail", "CREDIT_LIMIT", "exposure 150 > 100", "{\"x\":2}")])
    new = _results([("A", None, "credit", "fail", "CREDIT_LIMIT", "exposure 130 > 100", "{\"x\":9}"),  # same outcome
                    ("A", None, "promo", "pass", None, "no promo code", "{}"),
                    ("B", None, "credit", "pass", None, "exposure 90 within 100", "{\"x\":3}"),  # outcome changed
                    ("C", None, "credit", "pass", None, "new order", "{}")])
    got = keep_unchanged_results(new, old).sort("order_id", "rule")
    msgs = dict(zip(got["order_id"] + "/" + got["rule"], got["message"], strict=True))
    assert msgs == {"A/credit": "exposure 120 > 100", "A/promo": "no promo code",
                    "B/credit": "exposure 90 within 100", "C/credit": "new order"}


def test_open_holds_keep_their_text_new_holds_get_theirs() -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    schema = {"order_id": pl.String, "version": pl.Int64, "reason_code": pl.String, "since": pl.Datetime("us", "UTC"),
              "message": pl.String, "evidence": pl.String}
    old = pl.DataFrame([("A", 1, "CREDIT_LIMIT", t, "placed text", "[1]")], schema=schema, orient="row")
    new = pl.DataFrame([("A", 1, "CREDIT_LIMIT", t, "rerun text", "[2]"), ("A", 2, "CREDIT_LIMIT", t, "v2", "[3]")],
                       schema=schema, orient="row")
    got = keep_open_hold_text(new, old)
    assert got["message"].to_list() == ["placed text", "v2"] and got["evidence"].to_list() == ["[1]", "[3]"]
