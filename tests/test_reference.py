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
        "C4,Dup2,,gold,5,USD,30,US,false,true,true,2024-01-01",            # duplicate key: the last one wins
        "C6,,,gold,5,USD,30,US,false,true,true,2024-01-01",                # missing name
        "C7,Ok,,silver,5.5,USD,30,DE,yes,no,1,2024-02-29",
    ]) + "\n")
    r = load_reference("customers", p)
    assert r.received == 7 and r.accepted == 3
    assert r.frame["customer_id"].to_list() == ["C1", "C4", "C7"]
    assert r.frame.filter(pl.col("customer_id") == "C4")["name"].to_list() == ["Dup2"]
    assert r.frame.schema["credit_limit"] == pl.Decimal(18, 2)
    CustomerModel.validate(r.frame, lazy=True)
    got = dict(r.quarantine.select("location", "reason_code").rows())
    assert got == {"line 3": "REF_CHECK_FAILED", "line 4": "REF_BAD_VALUE", "line 5": "REF_DUPLICATE_KEY",
                   "line 7": "MISSING_FIELD"}
    assert "the last one (line 6) is kept" in r.quarantine.filter(pl.col("location") == "line 5")["message"][0]
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


def _customers(n: int) -> str:
    return HEADER + "".join(f"C{i},Name {i},,gold,1000.00,USD,30,US,false,true,true,2024-01-01\n" for i in range(n))


def test_a_file_that_would_empty_or_gut_a_table_is_refused(settings, wh) -> None:
    """Header-only or truncated uploads keep the previous table (REF_SHRINK_REFUSED); a modest change loads."""
    from som_pipeline.services.reference import load_reference_tables

    f = settings.reference / "customers.csv"
    f.write_text(_customers(300))
    assert [ld.accepted for ld in load_reference_tables(wh, settings, ["customers"])] == [300]

    for text, kept in ((HEADER, 300), (_customers(75), 300)):  # empty; 75 % lost
        f.write_text(text)
        (ld,) = load_reference_tables(wh, settings, ["customers"])
        assert ld.refused and ld.frame is None and "REF_SHRINK_REFUSED" in ld.message
        assert wh.read("SELECT count(*) AS n FROM ref.customers")["n"][0] == kept
    q = wh.read("SELECT reason_code, message FROM ops.quarantine WHERE reason_code = 'REF_SHRINK_REFUSED'")
    assert q.height == 2 and "from 300 to 75 rows" in " ".join(q["message"])

    f.write_text(_customers(200))  # a third fewer customers: within the default 50 %
    (ld,) = load_reference_tables(wh, settings, ["customers"])
    assert not ld.refused and wh.read("SELECT count(*) AS n FROM ref.customers")["n"][0] == 200


def test_an_unchanged_reference_file_is_not_read_again(settings, wh) -> None:
    """The content last loaded is skipped (the run's cost follows what changed); any change is loaded."""
    from som_pipeline.services.reference import load_reference_tables

    f = settings.reference / "customers.csv"
    f.write_text(_customers(300))
    (first,) = load_reference_tables(wh, settings, ["customers"])
    (again,) = load_reference_tables(wh, settings, ["customers"])
    assert (first.unchanged, first.accepted) == (False, 300)
    assert again.unchanged and again.frame is None and "unchanged" in again.message
    f.write_text(_customers(290))
    (changed,) = load_reference_tables(wh, settings, ["customers"])
    assert not changed.unchanged and changed.accepted == 290
    assert wh.read("SELECT count(*) AS n FROM ref.customers")["n"][0] == 290
    # a refused file records nothing: the next run looks at it again (and refuses it again)
    f.write_text(HEADER)
    assert load_reference_tables(wh, settings, ["customers"])[0].refused
    assert load_reference_tables(wh, settings, ["customers"])[0].refused
