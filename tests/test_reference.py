"""Reference files are typed and checked by the same Pandera models; bad rows are quarantined."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from som_pipeline.reference import load_reference
from som_pipeline.schemas import CustomerModel

HEADER = "customer_id,name,email,tier,credit_limit,currency,payment_terms_days,country,ship_complete,allow_substitutes,active,created_on\n"


def test_bad_rows_quarantined_good_rows_typed(tmp_path: Path):
    p = tmp_path / "customers.csv"
    p.write_text(HEADER + "\n".join([
        "C1,Acme,a@x.com,gold,1000.00,USD,30,US,false,true,true,2024-01-01",
        "C2,Beta,,diamond,1000.00,USD,30,US,false,true,true,2024-01-01",   # unknown tier
        "C3,Gamma,,gold,abc,USD,30,US,false,true,true,2024-01-01",         # not a number
        "C4,Dup,,gold,5,USD,30,US,false,true,true,2024-01-01",
        "C4,Dup2,,gold,5,USD,30,US,false,true,true,2024-01-01",            # duplicate key (both rejected)
        "C6,,,gold,5,USD,30,US,false,true,true,2024-01-01",                # missing name
        "C7,Ok,,silver,5.5,USD,30,DE,yes,no,1,2024-02-29",
    ]) + "\n")
    r = load_reference("customers", p)
    assert r.received == 7 and r.accepted == 2
    assert r.frame["customer_id"].to_list() == ["C1", "C7"]
    assert r.frame.schema["credit_limit"] == pl.Decimal(18, 2)
    CustomerModel.validate(r.frame, lazy=True)
    got = dict(r.quarantine.select("location", "reason_code").rows())
    assert got == {"line 3": "REF_CHECK_FAILED", "line 4": "REF_BAD_VALUE", "line 5": "REF_DUPLICATE_KEY",
                   "line 6": "REF_DUPLICATE_KEY", "line 7": "MISSING_FIELD"}
    assert r.quarantine["raw"].str.contains('"customer_id"').all()


def test_unreadable_or_incomplete_file_keeps_previous_table(tmp_path: Path):
    p = tmp_path / "customers.csv"
    p.write_text("customer_id,name\nC1,Acme\n")
    r = load_reference("customers", p)
    assert r.frame is None and r.quarantine["reason_code"].to_list() == ["CSV_MISSING_COLUMN"]
    p.write_bytes(b"\x00\x01\x02\x03")
    r = load_reference("customers", p)
    assert r.frame is None and r.quarantine["reason_code"].to_list() == ["BAD_ENCODING"]
    assert load_reference("customers", None).frame is None


def test_parquet_reference(tmp_path: Path):
    csv = tmp_path / "customers.csv"
    csv.write_text(HEADER + "C1,Acme,a@x.com,gold,1000.00,USD,30,US,false,true,true,2024-01-01\n")
    pq = tmp_path / "customers.parquet"
    pl.read_csv(csv, infer_schema=False).write_parquet(pq)
    assert load_reference("customers", pq).frame.equals(load_reference("customers", csv).frame)
