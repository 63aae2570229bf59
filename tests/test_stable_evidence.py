"""Re-evaluating an order whose outcome did not change keeps its previous evidence (validation/stable.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from som_pipeline.parquet_stage import part_files
from som_pipeline.schemas import ValidationResultModel, conform
from som_pipeline.services.validation import write_results
from som_pipeline.validation.stable import keep_open_hold_text
from som_pipeline.warehouse import Warehouse, insert_frame, read_table, transaction

T0, T1 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)


def _results(rows: list[tuple], at: datetime = T1) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema={"order_id": pl.String, "line_no": pl.Int64, "rule": pl.String,
                                    "outcome": pl.String, "reason_code": pl.String, "message": pl.String,
                                    "evidence": pl.String}, orient="row")
    return conform(df.with_columns(pl.lit(1, pl.Int64).alias("version"), pl.lit(None, pl.String).alias("waived_by"),
                                   pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("evaluated_at")),
                   ValidationResultModel)


def test_same_outcome_keeps_old_rows_changed_outcome_replaces_all(tmp_path) -> None:
    """write_results: the new findings come in memory (failures) and as staged part files (passes); an order
    whose signature is unchanged keeps its old rows, any other evaluated order gets its new rows, an order not
    evaluated keeps its rows whatever the new findings say."""
    old = _results([("A", None, "credit", "fail", "CREDIT_LIMIT", "exposure 120 > 100", "{\"x\":1}"),
                    ("A", None, "promo", "pass", None, "no promo code", "{}"),
                    ("B", None, "credit", "fail", "CREDIT_LIMIT", "exposure 150 > 100", "{\"x\":2}"),
                    ("B", 1, "price", "pass", None, "price ok", "{}"),
                    ("D", None, "credit", "pass", None, "not evaluated", "{}")], T0)
    fails = _results([("A", None, "credit", "fail", "CREDIT_LIMIT", "exposure 130 > 100", "{\"x\":9}")])  # same
    passes = [_results([("A", None, "promo", "pass", None, "no promo code", "{}"),
                        ("B", None, "credit", "pass", None, "exposure 90 within 100", "{\"x\":3}")]),  # changed
              _results([("C", None, "credit", "pass", None, "new order", "{}")])]
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.connect() as con, part_files(tmp_path / "stage", "v-") as stage:
        insert_frame(con, "core.validation_results", old)
        for p in passes:
            stage.add("passes", p)
        with transaction(con):
            write_results(con, pl.DataFrame({"order_id": ["A", "B", "C"]}), fails, stage)
        got = read_table(con, "core.validation_results").sort("order_id", "rule")
    msgs = dict(zip(got["order_id"] + "/" + got["rule"], got["message"], strict=True))
    assert msgs == {"A/credit": "exposure 120 > 100", "A/promo": "no promo code",
                    "B/credit": "exposure 90 within 100", "C/credit": "new order", "D/credit": "not evaluated"}
    at = dict(zip(got["order_id"] + "/" + got["rule"], got["evaluated_at"], strict=True))
    assert at["A/credit"] == at["D/credit"] == T0 and at["B/credit"] == at["C/credit"] == T1



def test_no_staged_passes_and_no_findings_clear_the_evaluated_orders(tmp_path) -> None:
    """Nothing new for an evaluated order (no part file at all): its old rows go; others stay."""
    old = _results([("A", None, "credit", "fail", "CREDIT_LIMIT", "m", "{}"),
                    ("B", None, "credit", "pass", None, "m", "{}")], T0)
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.connect() as con, part_files(tmp_path / "stage", "v-") as stage:
        insert_frame(con, "core.validation_results", old)
        with transaction(con):
            write_results(con, pl.DataFrame({"order_id": ["A"]}), _results([]), stage)
        assert read_table(con, "core.validation_results")["order_id"].to_list() == ["B"]


def test_open_holds_keep_their_text_new_holds_get_theirs() -> None:
    t = T0
    schema = {"order_id": pl.String, "version": pl.Int64, "reason_code": pl.String, "since": pl.Datetime("us", "UTC"),
              "message": pl.String, "evidence": pl.String}
    old = pl.DataFrame([("A", 1, "CREDIT_LIMIT", t, "placed text", "[1]")], schema=schema, orient="row")
    new = pl.DataFrame([("A", 1, "CREDIT_LIMIT", t, "rerun text", "[2]"), ("A", 2, "CREDIT_LIMIT", t, "v2", "[3]")],
                       schema=schema, orient="row")
    got = keep_open_hold_text(new, old)
    assert got["message"].to_list() == ["placed text", "v2"] and got["evidence"].to_list() == ["[1]", "[3]"]
