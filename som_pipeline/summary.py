"""The run summary printed by `som run` / `som summary` (reads the analyst copy when it exists)."""

from __future__ import annotations

import duckdb

from som_pipeline.config import Settings
from som_pipeline.reporting import text_table
from som_pipeline.schemas import TABLES

EXAMPLE_QUERY = "SELECT channel, count(*) AS orders, sum(order_total) AS total FROM core.v_orders GROUP BY channel ORDER BY channel"


def render_summary(s: Settings) -> str:
    path = s.analytics_path if s.analytics_path.exists() else s.warehouse_path
    if not path.exists():
        return f"no warehouse yet at {s.warehouse_path}: run `som run` (or `make run`)"
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = [f"warehouse: {s.warehouse_path}", f"analyst copy (open this one): {s.analytics_path}", ""]
        counts = con.execute(
            "SELECT schema_name || '.' || table_name AS t, estimated_size FROM duckdb_tables() ORDER BY 1"
        ).fetchall()
        rows = []
        for t, _ in counts:
            if t in TABLES:
                n = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 (names from the catalog)
                rows.append((t, n))
        import polars as pl

        out.append("rows per table:")
        out.append(text_table(pl.DataFrame(rows, schema=["table", "rows"], orient="row"), 100))
        out.append("")
        q = con.execute(
            "SELECT reason_code, count(*) AS records, string_agg(DISTINCT channel, ', ' ORDER BY channel) AS channels "
            "FROM ops.quarantine GROUP BY reason_code ORDER BY records DESC, reason_code"
        ).pl()
        out.append(f"quarantined records by reason ({q['records'].sum() if q.height else 0} in all):")
        out.append(text_table(q, 60) if q.height else "  none")
        out.append("")
        h = con.execute(
            "SELECT channel, sum(records_received) AS received, sum(records_accepted) AS accepted, "
            "sum(records_quarantined) AS quarantined, count(*) AS files FROM ops.ingest_files GROUP BY 1 ORDER BY 1"
        ).pl()
        out.append("ingest by channel (received = accepted + quarantined):")
        out.append(text_table(h, 20) if h.height else "  nothing ingested yet")
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        if "v_orders" in views:
            out += ["", "example analyst query:", f"  som query \"{EXAMPLE_QUERY}\""]
            out.append(text_table(con.execute(EXAMPLE_QUERY).pl(), 10))
    finally:
        con.close()
    out += [
        "",
        "open the analyst copy from Python (works during runs too):",
        f"  python -c \"import duckdb; print(duckdb.connect('{s.analytics_path}', read_only=True).sql('FROM core.v_orders LIMIT 5'))\"",
        "Dagster UI: make dev   (= DAGSTER_HOME=$SOM_HOME/dagster_home dagster dev -w workspace.yaml)",
    ]
    return "\n".join(out)
