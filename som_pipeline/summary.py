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
        st = con.execute("SELECT status, count(*) AS orders FROM core.order_status GROUP BY 1 ORDER BY 2 DESC").pl()
        if st.height:
            out += ["", "order status after validation:", text_table(st, 10)]
            hb = con.execute(
                "SELECT reason_code, count(*) AS orders, min(since) AS oldest_since FROM core.order_holds "
                "GROUP BY 1 ORDER BY 2 DESC, 1").pl()
            out += ["", f"open holds by reason ({hb['orders'].sum() if hb.height else 0} in all):",
                    text_table(hb, 40) if hb.height else "  none"]
            rs = con.execute(
                "SELECT decision, count(*) AS lines, sum(quantity_reserved) AS units_reserved, "
                "sum(quantity_backordered) AS units_backordered FROM core.reservations GROUP BY 1 ORDER BY 1").pl()
            out += ["", "stock decisions (reservations):", text_table(rs, 10)]
        al = con.execute(
            "SELECT warehouse_id, count(*) AS lines, sum(quantity) AS units, sum(total_cost) AS cost, "
            "count(*) FILTER (WHERE expected_delivery_date > promised_date) AS late_lines, "
            "count(*) FILTER (WHERE promised_date < CAST(allocated_at AS DATE)) AS past_promise "
            "FROM core.allocations GROUP BY 1 ORDER BY 1").pl()
        if al.height:
            out += ["", "allocations by warehouse (exact optimiser; core.allocations):", text_table(al, 10),
                    "(late_lines: expected delivery after the promised date; past_promise: of those, the backlog "
                    "whose promised date had already passed when allocated)"]
            bo = con.execute("SELECT count(*) AS lines, coalesce(sum(quantity), 0) AS units FROM core.backorders").pl()
            out.append(f"backorders: {bo['lines'][0]} lines, {bo['units'][0]} units (core.backorders)")
        rp = con.execute(
            "SELECT priority, kind, sku, from_warehouse AS from_wh, to_warehouse AS to_wh, quantity, "
            "expected_stockout_date AS stockout FROM core.replenishment_plan ORDER BY priority, proposal_id LIMIT 8").pl()
        if rp.height:
            acc = con.execute("SELECT mase_vs_seasonal_naive FROM core.forecast_accuracy "
                              "WHERE sku = '*' AND model = '*' AND series_class = '*'").fetchone()
            if acc and acc[0] is not None:
                out += ["", f"demand forecast: backtest error {acc[0]:.2f}x seasonal naive's (core.forecast_accuracy)"]
            out += ["replenishment plan, top lines (core.replenishment_plan):", text_table(rp, 8)]
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
