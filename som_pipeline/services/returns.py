"""Returns service: return requests (and the channels' refunds) judged into RMAs, the money given back, and what
comes back to the warehouse posted to the stock ledger.

1. **Requests** (``landing/returns``: CSV / JSON requests, Shopify refunds, Amazon returns reports;
   ``returns.readers``): judged against
   what each order line delivered and already returned (``returns.rules``: window, quantity, returnable, known
   line). Every request is recorded in ``core.return_requests``, accepted (an RMA) or refused with its reason.
2. **Money back** (``returns.money``): the returned units credited from the invoice lines that billed them,
   oldest first, by the invoicing rules; prepaid orders get a refund, invoiced B2B orders a credit note (RETURN,
   numbered in billing's series); both in ``core.refunds`` with the restocking fee and shipping by the policy.
   The fee is charged on both: a refund pays back ``refund_total = line_total - fee``; a credit note credits the
   returned lines and keeps the fee in a ``restocking_fee`` line (billing.invoicing rule 7), so its total is the
   same ``Σ refund_total`` of its rows in ``core.refunds`` (checked: ``credit_notes_match_refunds``).
3. **Chargebacks** (``landing/chargebacks``: payment disputes; ``services.chargebacks``) kept in
   ``core.chargebacks`` at their latest status; closure takes the money charged back from what was paid.
4. **Receipts** (``landing/return_receipts``): matched to the RMA lines and graded; restocked / refurbished units
   are ``return_receipt`` movements, scrapped ones a ``return_receipt`` then a ``scrap``; short, over, wrong and
   unknown receipts are recorded with their outcome. An accepted Amazon **FBA** return was received by Amazon
   (the report row is the receipt): its receipt is recorded with the request, without a stock movement
   (:func:`_fba_receipts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_series
from som_pipeline.money import MONEY
from som_pipeline.schemas import RefundModel, ReturnReceiptModel, ReturnRequestModel, conform
from som_pipeline.services import Step
from som_pipeline.services.landing import archive, incoming
from som_pipeline.services.stock import feed_quarantine, post, record_feed_file, run_id_for
from som_pipeline.warehouse import Warehouse, insert_frame, registered, select_keys, transaction

RETURNS = Step(
    reads=("core.orders", "core.order_lines", "core.shipments", "core.shipment_lines", "core.shipment_status",
           "core.invoices", "core.invoice_lines", "core.credit_note_lines", "ref.products", "ref.return_policies",
           "ref.billing_policies", "core.return_requests", "core.return_receipts", "core.refunds",
           "core.chargebacks"),
    writes=("core.return_requests", "core.return_receipts", "core.refunds", "core.chargebacks"),
    appends=("core.stock_ledger", "core.credit_notes", "core.credit_note_lines", "core.ar_open_items",
             "ops.document_numbers"),
)


@dataclass
class ReturnsReport:
    files: int = 0
    requests: int = 0
    accepted: int = 0
    refused: int = 0
    refunds: int = 0
    credit_notes: int = 0
    receipts: int = 0
    receipt_exceptions: int = 0
    exchanges: int = 0
    chargebacks: int = 0
    chargebacks_quarantined: int = 0
    notes: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


def run_returns(wh: Warehouse, settings: Settings, now: datetime, run_id: str | None = None) -> ReturnsReport:
    from som_pipeline.returns.readers import read_returns_file
    from som_pipeline.services.chargebacks import take_dispute_file

    rep = ReturnsReport()
    run_id = run_id or run_id_for(now)
    with wh.connect() as con:
        for feed in ("returns", "return_receipts", "chargebacks"):
            files, settled = incoming(con, settings, feed, now, rep.notes)
            rep.notes += [f"{o.source_file}: identical content already processed ({o.status}); archived"
                          for o in settled]
            for f in files:
                data = f.read()
                if data is None:
                    rep.notes.append(f"{f.name}: changed while read; left for the next run")
                    continue
                if feed == "chargebacks":
                    changed, held = take_dispute_file(con, f, data, now)
                    rep.chargebacks += changed
                    rep.chargebacks_quarantined += held
                    archive(f)
                    rep.files += 1
                    continue
                got = read_returns_file(data, f.name)
                if got.kind == "return_receipts":
                    _receipts(con, f, feed, got.file, now, run_id, rep)
                else:
                    _requests(con, settings, f, feed, got.file, now, rep)
                archive(f)
                rep.files += 1
    return rep


def _line_facts(con, refs: pl.DataFrame) -> pl.DataFrame:
    """``returns.rules`` line facts of the orders the requests name (by our id or the channel's reference)."""
    with registered(con, refs.select(pl.col("order_ref").alias("ref")).unique()) as k:
        return con.execute(f"""
            WITH o AS (SELECT order_id, channel_order_ref, channel, customer_id FROM core.orders
                       WHERE order_id IN (SELECT ref FROM {k}) OR channel_order_ref IN (SELECT ref FROM {k})),
            dl AS (SELECT sl.order_id, sl.line_no, sum(sl.quantity) AS q, max(st.delivered_at) AS at
                   FROM core.shipment_lines sl JOIN core.shipment_status st USING (shipment_id)
                   WHERE st.delivered_at IS NOT NULL AND sl.order_id IN (SELECT order_id FROM o) GROUP BY ALL),
            rt AS (SELECT order_id, line_no, sum(quantity) AS q FROM core.return_requests
                   WHERE status = 'accepted' AND order_id IN (SELECT order_id FROM o) GROUP BY ALL)
            SELECT o.order_id, o.channel_order_ref, o.channel, o.customer_id, l.line_no,
                   l.line_ref AS channel_line_ref, l.sku, p.category, coalesce(dl.q, 0)::BIGINT AS delivered_qty,
                   coalesce(rt.q, 0)::BIGINT AS returned_qty, dl.at AS delivered_at
            FROM o JOIN core.order_lines l USING (order_id) LEFT JOIN ref.products p ON p.sku = l.sku
            LEFT JOIN dl USING (order_id, line_no) LEFT JOIN rt USING (order_id, line_no)""").pl()  # noqa: S608


def _requests(con, settings: Settings, f, feed: str, rf, now: datetime, rep: ReturnsReport) -> None:
    from som_pipeline.returns.money import refund_lines
    from som_pipeline.returns.rules import judge_requests, policies_from_frame
    from som_pipeline.services.billing import BillingConfig, _post_credit_notes, _refresh_ar, policies

    req = rf.requests
    known = select_keys(con, "core.return_requests", req.select("request_id").unique(), "DISTINCT request_id")
    req = req.join(known, on="request_id", how="anti")  # a request seen in an earlier file is not judged again
    pol = policies_from_frame(con.execute("SELECT * FROM ref.return_policies").pl())
    judged = judge_requests(req, _line_facts(con, req), pol, now) if req.height else None
    at = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    rows = []
    if judged is not None:
        rows.append(judged.accepted.with_columns(pl.lit("accepted").alias("status"), pl.col("line_no"),
                                                 pl.col("order_id")))
        rows.append(judged.refused.with_columns(
            pl.lit("refused").alias("status"), pl.col("order_line_no").alias("line_no"),
            pl.col("reason_code").alias("refusal_code"), pl.col("message").alias("refusal_message")))
    recorded = (conform(pl.concat(rows, how="diagonal_relaxed").with_columns(
        pl.col("order_ref").fill_null(pl.col("order_id")), at.alias("received_at")), ReturnRequestModel)
        if rows else conform(pl.DataFrame(), ReturnRequestModel).clear())
    acc = judged.accepted if judged is not None else pl.DataFrame()
    refunds, heads, amounts = pl.DataFrame(), None, None
    if acc.height:
        orders_ = acc.select("order_id").unique()
        o = select_keys(con, "core.orders", orders_, "order_id, channel, customer_id, payment_status")
        prepaid = policies(con, o, BillingConfig()).select("order_id", "prepaid")
        il = select_keys(con, "core.invoice_lines", orders_)
        # units credited before this batch; a note naming one of the batch's RMAs was posted by an earlier attempt
        # at this very batch, killed before its commit (the RMAs are new): its units are this batch's, so the
        # money is computed again as it was and its refunds are recorded against it (the note is not re-posted)
        with registered(con, orders_) as k, registered(con, acc.select("rma_id").unique()) as r:
            credited = con.execute(f"""
                SELECT cl.invoice_id, cl.invoice_line_no AS line_no, sum(cl.quantity)::BIGINT AS credited_qty
                FROM core.credit_note_lines cl JOIN core.invoice_lines il
                     ON il.invoice_id = cl.invoice_id AND il.line_no = cl.invoice_line_no
                SEMI JOIN {k} ON il.order_id = {k}.order_id
                WHERE cl.kind <> 'restocking_fee' AND cl.credit_note_id NOT IN (
                      SELECT n.credit_note_id FROM core.credit_notes n
                      SEMI JOIN {r} ON n.reason = 'RETURN' AND split_part(n.source_ref, ':', 2) = {r}.rma_id)
                GROUP BY ALL""").pl()  # noqa: S608
            issued = con.execute(f"SELECT invoice_id, issued_at FROM core.invoices SEMI JOIN {k} USING (order_id)"  # noqa: S608
                                 ).pl()
        il = il.join(credited, on=["invoice_id", "line_no"], how="left").join(issued, on="invoice_id", how="left")
        money = refund_lines(acc.join(prepaid, on="order_id", how="left"), il, pol)
        cur = select_keys(con, "core.orders", orders_, "order_id, currency")
        refunds = money.join(cur, on="order_id", how="left")
        notes = refunds.filter(pl.col("kind") == "credit_note")
        if notes.height:
            inv = select_keys(con, "core.invoices", notes.select("invoice_id").unique(),
                              "invoice_id, legal_entity, order_id, customer_id, currency")
            # one credit note per invoice and batch, named after the batch's first RMA on it (deterministic)
            heads = inv.join(notes.group_by("invoice_id").agg(pl.col("rma_id").min()), on="invoice_id").select(
                "invoice_id", "legal_entity", "order_id", "customer_id", "currency",
                pl.lit("RETURN").alias("reason"), pl.format("return:{}:{}", pl.col("rma_id"), pl.col("invoice_id"))
                .alias("source_ref"), pl.format("goods returned under {}", pl.col("rma_id")).alias("note"))
            # per invoice line: the units credited and the fee kept from them (Σ of the rows' rounded fees: the
            # note's fee line is exactly what core.refunds records)
            amounts = notes.group_by("invoice_id", "invoice_line_no").agg(
                pl.col("credit_qty").sum().alias("credit_qty"), pl.col("restocking_fee").sum().cast(MONEY)
            ).with_columns(pl.lit(None, MONEY).alias("credit_amount"))
    # the credit notes first (their own transaction, idempotent by source_ref: a rerun after a kill here posts
    # nothing twice), then the requests, the refunds and the file's ledger row together
    if heads is not None:
        from som_pipeline.services.billing import BillingReport

        brep = BillingReport()
        touched = _post_credit_notes(con, heads, amounts, now, brep)
        _refresh_ar(con, touched, now, brep)  # the credited invoices' receivables, as billing keeps them
        rep.credit_notes += brep.credit_notes
    out = conform(pl.DataFrame(), RefundModel).clear()
    if refunds.height:
        first = refunds.group_by("invoice_id").agg(pl.col("rma_id").min().alias("_first"))
        rows = refunds.join(first, on="invoice_id", how="left").with_columns(
            pl.format("return:{}:{}", pl.col("_first"), pl.col("invoice_id")).alias("source_ref"))
        cn = select_keys(con, "core.credit_notes", rows.select("source_ref").unique(), "credit_note_id, source_ref")
        rows = rows.join(cn, on="source_ref", how="left").with_columns(
            pl.when(pl.col("kind") == "credit_note").then(pl.col("credit_note_id")).alias("credit_note_id"))
        rows = rows.group_by("rma_id", "order_id", "kind", "invoice_id", "credit_note_id", "currency").agg(
            pl.col("credit_qty").sum().alias("quantity"), pl.col("net_amount").sum(), pl.col("tax_amount").sum(),
            pl.col("restocking_fee").sum(),
            pl.when(pl.col("line_kind") == "shipping").then(pl.col("line_total")).otherwise(0).sum()
            .alias("shipping_refund"), pl.col("refund_total").sum())
        rows = rows.with_columns(sha256_series(pl.format("{}|{}", pl.col("rma_id"), pl.col("invoice_id")), rows)
                                 .alias("refund_id"), at.alias("refunded_at"))
        out = conform(rows, RefundModel)
        out = out.join(select_keys(con, "core.refunds", out.select("refund_id"), "refund_id"), on="refund_id",
                       how="anti")
    if acc.height:  # exchanges: new orders through the normal flow, written before the commit (a rerun rewrites them)
        _exchanges(con, settings, acc, now, rep)
    fba = _fba_receipts(con, req, acc)
    with transaction(con):
        insert_frame(con, "core.return_requests", recorded)
        insert_frame(con, "core.refunds", out)
        insert_frame(con, "core.return_receipts", fba)
        record_feed_file(con, f, feed, rf.received, feed_quarantine(rf.rejected, feed, "return_request", f.name,
                                                                    f.sha, now), now)
    rep.refunds += out.filter(pl.col("kind") == "refund").height
    rep.receipts += fba.height
    rep.requests += recorded.height
    rep.accepted += recorded.filter(pl.col("status") == "accepted").height
    rep.refused += recorded.filter(pl.col("status") == "refused").height


def _fba_receipts(con, req: pl.DataFrame, acc: pl.DataFrame) -> pl.DataFrame:
    """An accepted Amazon **FBA** return was received by Amazon: the report row is the receipt (the unit is back in
    the fulfillment center ``fulfillment-center-id`` at ``return-date``), nothing will come to
    ``landing/return_receipts``. Its RMA line gets a ``MATCHED`` receipt at ``AMAZON-FBA-<fc>``, graded from
    ``detailed-disposition`` (``readers.FBA_GRADES``), and no stock-ledger movement (FBA inventory is Amazon's
    to count, not one of our warehouses): the return counts as returned for closure, and its refund is not a
    ``REFUND_WITHOUT_RECEIPT``. ``receipt_id = sha256('fba|' rma_id '|' rma_line_no)``: once per RMA line."""
    from som_pipeline.returns.readers import FBA_DEFAULT_GRADE, FBA_GRADES, FBA_WAREHOUSE_PREFIX

    a = acc.filter(pl.col("source") == "amazon_fba_return") if acc.height else acc
    if a.height == 0:
        return conform(pl.DataFrame(), ReturnReceiptModel).clear()
    a = a.join(req.select("source_file", "location", "disposition", "fulfillment_center"),
               on=["source_file", "location"], how="left")
    a = a.with_columns(sha256_series(pl.format("fba|{}|{}", pl.col("rma_id"), pl.col("rma_line_no")), a)
                       .alias("receipt_id"))
    out = conform(a.select(
        "receipt_id", "rma_id", "order_id", "line_no", "sku", "quantity",
        pl.col("disposition").replace_strict(FBA_GRADES, default=FBA_DEFAULT_GRADE, return_dtype=pl.String)
        .alias("grade"),
        (pl.lit(FBA_WAREHOUSE_PREFIX) + pl.col("fulfillment_center").fill_null("UNKNOWN")).alias("warehouse_id"),
        pl.lit("MATCHED").alias("outcome"), pl.col("requested_at").alias("received_at"), "source_file"),
        ReturnReceiptModel)
    return out.join(select_keys(con, "core.return_receipts", out.select("receipt_id"), "receipt_id"),
                    on="receipt_id", how="anti")


EXCHANGE_COLUMNS = ("channel_order_ref", "order_ts", "customer_ref", "customer_po", "currency", "ship_to_name",
                    "ship_to_company", "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_region",
                    "ship_to_postal_code", "ship_to_country", "ship_method", "ship_complete", "line_no", "sku",
                    "description", "quantity", "uom", "unit_price", "discount_pct", "tax_rate", "promo_code")


def _exchanges(con, settings: Settings, acc: pl.DataFrame, now: datetime, rep: ReturnsReport) -> None:
    """An accepted return asking for another SKU is an exchange: a new order (``EXCH-<rma>``, the customer's PO
    ``EXCHANGE <rma>``) in the CSV order template, for the same customer and address at the returned line's price,
    dropped into ``landing/csv`` -- captured, validated, allocated and billed like any order (the returned units
    are credited as for any return). One file per RMA: re-written identically by a rerun, a re-drop for capture."""
    from som_pipeline.services.landing import write_atomic

    ex = acc.filter(pl.col("exchange_sku").is_not_null() & (pl.col("exchange_sku").str.strip_chars() != ""))
    if ex.height == 0:
        return
    o = select_keys(con, "core.orders", ex.select("order_id").unique())
    ol = select_keys(con, "core.order_lines", ex.select("order_id").unique(), "order_id, line_no, unit_price, tax_rate")
    rows = (ex.select("rma_id", "rma_line_no", "order_id", "line_no", pl.col("exchange_sku").str.strip_chars()
                      .alias("sku"), "quantity", pl.col("sku").alias("sku_returned"))
            .join(ol, on=["order_id", "line_no"], how="left").join(o, on="order_id", how="left")
            .sort("rma_id", "rma_line_no")
            .select(pl.format("EXCH-{}", pl.col("rma_id")).alias("channel_order_ref"),
                    pl.lit(now.strftime("%Y-%m-%dT%H:%M:%SZ")).alias("order_ts"), "customer_ref",
                    pl.format("EXCHANGE {}", pl.col("rma_id")).alias("customer_po"), "currency", "ship_to_name",
                    "ship_to_company", "ship_to_line1", "ship_to_line2", "ship_to_city", "ship_to_region",
                    "ship_to_postal_code", "ship_to_country", "ship_method", pl.lit("no").alias("ship_complete"),
                    pl.col("rma_line_no").alias("line_no"), "sku",
                    pl.format("Exchange for {} ({})", pl.col("sku_returned"), pl.col("rma_id")).alias("description"),
                    "quantity", pl.lit("EA").alias("uom"), "unit_price", pl.lit(None, pl.String).alias("discount_pct"),
                    "tax_rate", pl.lit(None, pl.String).alias("promo_code"))
            .with_columns(pl.all().cast(pl.String)))
    for (ref,), part in rows.group_by("channel_order_ref", maintain_order=True):
        write_atomic(settings.landing_dir("csv") / f"exchange_{ref.removeprefix('EXCH-')}.csv",
                     part.select(EXCHANGE_COLUMNS).write_csv())
        rep.exchanges += 1


def _receipts(con, f, feed: str, rf, now: datetime, run_id: str, rep: ReturnsReport) -> None:
    from som_pipeline.fulfilment.ledger import movements
    from som_pipeline.returns.rules import judge_receipts

    rc = rf.receipts
    known = select_keys(con, "core.return_receipts", rc.select("receipt_id"), "receipt_id")
    rc = rc.join(known, on="receipt_id", how="anti")
    with registered(con, rc.select("rma_id").unique()) as k:
        rmas = con.execute(f"""
            SELECT r.rma_id, r.rma_line_no, r.order_id, r.line_no, r.sku, r.quantity,
                   coalesce((SELECT sum(x.quantity) FROM core.return_receipts x WHERE x.rma_id = r.rma_id
                             AND x.line_no = r.line_no AND x.outcome IN ('MATCHED', 'OVER_RECEIVED',
                             'SHORT_RECEIVED')), 0)::BIGINT AS received_qty
            FROM core.return_requests r SEMI JOIN {k} USING (rma_id) WHERE r.status = 'accepted'""").pl()  # noqa: S608
    out = judge_receipts(rc, rmas.drop("order_id", "line_no"))
    mv = out.movements
    moves = pl.concat([movements(part, kind, reason=pl.col("reason"), source_doc=pl.col("source_doc"),
                                 source_line=pl.col("source_line"), occurred_at=pl.col("occurred_at"),
                                 recorded_at=now, run_id=run_id)
                       for (kind,), part in mv.sort("receipt_id", "step").group_by("kind", maintain_order=True)]
                      ) if mv.height else None
    exc = out.exceptions.filter(pl.col("receipt_id").is_not_null()).group_by("receipt_id").agg(
        pl.col("reason_code").first())
    # every receipt is recorded: matched ones, and those held aside (unknown RMA, wrong item) with their outcome
    held = rc.join(out.accepted.select("receipt_id"), on="receipt_id", how="anti")
    rows = (pl.concat([out.accepted, held], how="diagonal_relaxed").join(exc, on="receipt_id", how="left")
            .join(rmas.select("rma_id", pl.col("rma_line_no").alias("line_no"), "order_id",
                              pl.col("line_no").alias("order_line_no")), on=["rma_id", "line_no"], how="left")
            .with_columns(pl.coalesce("reason_code", pl.lit("MATCHED")).alias("outcome"),
                          pl.col("order_line_no").alias("line_no")))
    recs = conform(rows, ReturnReceiptModel)
    with transaction(con):
        insert_frame(con, "core.return_receipts", recs)
        if moves is not None:
            post(con, moves)
        record_feed_file(con, f, feed, rf.received, feed_quarantine(rf.rejected, feed, "return_receipt", f.name,
                                                                    f.sha, now), now)
    rep.receipts += recs.height
    rep.receipt_exceptions += out.exceptions.height
