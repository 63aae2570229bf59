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
        out += _fulfilment(con)
        out += _tracking(con)
        out += _billing(con)
        out += _closure(con)
        rp = con.execute(
            "SELECT priority, kind, sku, from_warehouse AS from_wh, to_warehouse AS to_wh, quantity, "
            "expected_stockout_date AS stockout FROM core.replenishment_plan ORDER BY priority, proposal_id LIMIT 8").pl()
        acc = con.execute("SELECT mase_vs_seasonal_naive FROM core.forecast_accuracy "
                          "WHERE sku = '*' AND model = '*' AND series_class = '*'").fetchone()
        if acc and acc[0] is not None:
            out += ["", f"demand forecast: backtest error {acc[0]:.2f}x seasonal naive's (core.forecast_accuracy)"]
        if rp.height:
            out += ["replenishment plan, top lines (core.replenishment_plan):", text_table(rp, 8)]
        else:
            out.append("replenishment plan: nothing to move or buy (no warehouse runs short before its lead time)")
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


def _fulfilment(con) -> list[str]:
    """Waves, picks, packages, shipments, what was sent, and the stock the ledger holds."""
    if not con.execute("SELECT count(*) FROM core.stock_ledger").fetchone()[0]:
        return []
    out = [""]
    st = con.execute("SELECT count(*) AS pairs, sum(on_hand) AS on_hand, sum(reserved) AS reserved, "
                     "sum(picked) AS picked, sum(available) AS available FROM core.v_stock").pl()
    mv = con.execute("SELECT kind, count(*) AS movements, sum(qty_delta) AS units FROM core.stock_ledger "
                     "GROUP BY 1 ORDER BY 1").pl()
    out += ["stock from the ledger (core.v_stock; every balance is a sum of core.stock_ledger):", text_table(st, 2),
            "ledger movements by kind:", text_table(mv, 20)]
    wv = con.execute("SELECT w.warehouse_id, count(DISTINCT w.wave_id) AS waves, count(t.task_id) AS tasks, "
                     "count(*) FILTER (WHERE t.status = 'OPEN') AS open, count(*) FILTER (WHERE t.status = 'PICKED') "
                     "AS picked, count(*) FILTER (WHERE t.status = 'SHORT') AS short, sum(t.quantity) AS units "
                     "FROM core.pick_waves w LEFT JOIN core.pick_tasks t USING (wave_id) GROUP BY 1 ORDER BY 1").pl()
    if wv.height:
        out += ["", "pick waves and tasks by warehouse (core.pick_waves, core.pick_tasks):", text_table(wv, 10)]
    sc = con.execute("SELECT outcome, count(*) AS scans FROM core.pick_scans GROUP BY 1 ORDER BY 2 DESC").pl()
    if sc.height:
        out += ["scans by outcome (core.pick_scans; the rejected ones are in the quarantine above):", text_table(sc, 10)]
    sh = con.execute("SELECT s.carrier_id, count(DISTINCT s.shipment_id) AS shipments, sum(s.packages) AS packages, "
                     "sum(s.units) AS units, sum(s.rated_cost) AS rated_cost, "
                     "count(*) FILTER (WHERE s.partial) AS partial FROM core.shipments s GROUP BY 1 ORDER BY 1").pl()
    if sh.height:
        ut = con.execute("SELECT round(avg(utilisation) FILTER (WHERE carton_id <> 'OWN_BOX'), 3) AS u, "
                         "count(*) FILTER (WHERE carton_id = 'OWN_BOX') AS own FROM core.packages").fetchone()
        out += ["", "shipments by carrier (core.shipments, core.packages):", text_table(sh, 10),
                f"cartons: average volume utilisation {ut[0]}; {ut[1]} package(s) in the item's own box"]
    docs = con.execute("SELECT kind, channel, count(*) AS documents FROM ops.outbound_documents GROUP BY ALL "
                       "ORDER BY 1, 2").pl()
    if docs.height:
        out += ["confirmations and manifests sent ($SOM_HOME/outbound/, ops.outbound_documents):", text_table(docs, 20)]
    of = con.execute("SELECT status, count(*) AS orders FROM core.order_fulfilment GROUP BY 1 ORDER BY 2 DESC").pl()
    if of.height:
        out += ["orders by fulfilment status (core.order_fulfilment):", text_table(of, 10)]
    return out


def _tracking(con) -> list[str]:
    """Where the shipments are, how late they may be, what needs a person, what the customers were told."""
    if not con.execute("SELECT count(*) FROM core.shipment_status").fetchone()[0]:
        return []
    st = con.execute("SELECT milestone, count(*) AS shipments, round(avg(p_late), 2) AS avg_p_late, "
                     "count(*) FILTER (WHERE open_exception IS NOT NULL) AS with_exception "
                     "FROM core.shipment_status GROUP BY 1 ORDER BY 2 DESC").pl()
    out = ["", "shipments by milestone (core.shipment_status; never backwards):", text_table(st, 10)]
    ev = con.execute("SELECT source, count(*) AS events FROM core.tracking_events GROUP BY 1 ORDER BY 1").pl()
    pend = con.execute("SELECT count(*) FROM core.tracking_pending").fetchone()[0]
    out += [f"carrier events by source (core.tracking_events); {pend} waiting for a label (core.tracking_pending):",
            text_table(ev, 10)]
    acc = con.execute("SELECT carrier_id, service, n, round(coverage_p90, 3) AS p90_coverage, "
                      "round(mae_p50_h, 1) AS mae_p50_h, round(mae_static_h, 1) AS mae_static_h "
                      "FROM core.eta_accuracy ORDER BY carrier_id = '*', carrier_id, service").pl()
    if acc.height:
        out += ["ETA backtest (core.eta_accuracy; P90 coverage target 0.88-0.92, MAE vs the static transit table):",
                text_table(acc, 12)]
    ex = con.execute("SELECT kind, severity, owner_queue, count(*) FILTER (WHERE resolved_at IS NULL) AS open, "
                     "count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved FROM core.shipment_exceptions "
                     "GROUP BY ALL ORDER BY 1").pl()
    if ex.height:
        out += ["shipment exceptions (core.shipment_exceptions):", text_table(ex, 10)]
    nt = con.execute("SELECT kind, channel, language, count(*) AS messages FROM ops.notifications GROUP BY ALL "
                     "ORDER BY 1, 2, 3").pl()
    if nt.height:
        out += ["customer notifications ($SOM_HOME/outbound/notifications/, ops.notifications):", text_table(nt, 20)]
    return out


def _closure(con) -> list[str]:
    """Orders closed, open (why) and re-opened; the nightly reconciliation's open breaks."""
    if not con.execute("SELECT count(*) FROM core.order_closure").fetchone()[0]:
        return []
    st = con.execute("""
        SELECT CASE WHEN closed THEN 'closed' ELSE 'open: ' || blocking END AS state, count(*) AS orders
        FROM core.order_closure GROUP BY 1 ORDER BY (state = 'closed') DESC, 2 DESC""").pl()
    reopened = con.execute("SELECT count(DISTINCT order_id) FROM core.order_events WHERE to_status = 'REOPENED'"
                           ).fetchone()[0]
    out = ["", f"order closure (core.order_closure; {reopened} re-opened since closing, core.order_events):",
           text_table(st, 8)]
    br = con.execute("""
        SELECT break_type, owner_queue, count(*) AS open, sum(amount) AS amount, max(age_days) AS oldest_days
        FROM ops.reconciliation_breaks WHERE resolved_at IS NULL GROUP BY ALL ORDER BY 1""").pl()
    if br.height:
        out += ["open reconciliation breaks (ops.reconciliation_breaks; report: $SOM_HOME/reports/):",
                text_table(br, 12)]
    return out


def _billing(con) -> list[str]:
    """What was invoiced, what was paid and how it was matched, what is still owed."""
    if not con.execute("SELECT count(*) FROM core.invoices").fetchone()[0]:
        return []
    inv = con.execute("SELECT channel, currency, count(*) AS invoices, sum(total) AS total, "
                      "count(*) FILTER (WHERE prepaid) AS prepaid FROM core.invoices GROUP BY ALL ORDER BY 1, 2").pl()
    out = ["", "invoices by channel (core.invoices; PDFs in $SOM_HOME/outbound/invoices, EDI 810s in outbound/edi):",
           text_table(inv, 12)]
    pm = con.execute("SELECT method, count(*) AS allocations, sum(amount) AS amount, round(avg(score), 3) AS score "
                     "FROM core.payment_allocations GROUP BY 1 ORDER BY 2 DESC").pl()
    su = con.execute("SELECT count(*), coalesce(sum(amount), 0) FROM core.payment_suspense").fetchone()
    if pm.height:
        out += [f"payments matched (core.payment_allocations); {su[0]} in suspense for a person "
                f"(core.payment_suspense, {su[1]}):", text_table(pm, 10)]
    ar = con.execute("SELECT payment_state, count(*) AS items, sum(residual) AS residual FROM core.ar_open_items "
                     "GROUP BY 1 ORDER BY 1").pl()
    out += ["receivables by payment state (core.ar_open_items; aging: core.v_ar_aging):", text_table(ar, 10)]
    return out

