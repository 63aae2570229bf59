"""Billing service: shipments -> invoices (and their documents), channel captures and bank payments -> matched to
invoices, credit notes, and the receivables the credit check reads.

One run, each step over what is new since the last (the cost follows the run's new work):

1. **Opening balances**: ``ref.open_items`` rows not yet in ``core.ar_open_items`` enter it (kind ``opening``).
2. **Invoices** (``billing.invoicing``): every shipment without an invoice whose policy says it is due (basis
   ``shipment``: shipped; ``delivery``: tracking's ``delivered_at``) gets one, priced by the module's rules,
   numbered gapless per legal entity and year inside the transaction that posts it (``ops.document_numbers``).
   A shipment that cannot be billed yet (an unpriced line, no tax rate for a table-taxed line) waits, said in the
   report. Documents: a PDF per invoice in ``outbound/invoices/``, an X12 810 per EDI invoice in
   ``outbound/edi/`` -- written before the commit that records them (``ops.outbound_documents``), so a killed run
   leaves files a rerun rewrites identically (same numbers: the counters were not advanced).
3. **Credit notes**: an invoiced order the channel cancelled gets its uncredited units credited (CANCELLATION).
4. **Channel captures**: a prepaid order (policy ``prepaid`` and the channel says paid) records its capture as a
   payment (``CAP-<order>``, uncleared until its payout is banked) and applies it to its invoices (PREPAYMENT);
   what is not applied yet is held for the customer (``core.customer_credits``, PREPAYMENT_HELD).
5. **Receivables**: the open items touched this run are recomputed from invoices, credit notes, allocations and
   write-offs (``core.ar_open_items``: residual and payment state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from som_pipeline.billing.invoicing import (
    FEE_KIND,
    credit_lines,
    invoice_totals,
    number_documents,
    price_lines,
    restocking_fee_lines,
    shipping_lines,
)
from som_pipeline.config import Settings
from som_pipeline.hashing import sha256_series, sha256_text
from som_pipeline.money import MONEY
from som_pipeline.schemas import (
    AROpenItemModel,
    BankLineModel,
    BankStatementModel,
    CreditNoteLineModel,
    CreditNoteModel,
    CustomerCreditModel,
    InvoiceLineModel,
    InvoiceModel,
    OutboundDocumentModel,
    PaymentAllocationModel,
    PaymentModel,
    PaymentSuspenseModel,
    WriteOffModel,
    conform,
    from_rows,
)
from som_pipeline.services import Step
from som_pipeline.services.landing import archive, incoming, write_atomic
from som_pipeline.services.stock import feed_quarantine, record_feed_file
from som_pipeline.warehouse import Warehouse, insert_frame, registered, replace_keys, select_keys, transaction

BILLING = Step(
    reads=("core.bank_statements", "core.bank_lines", "core.payment_suspense", "core.shipments", "core.shipment_lines", "core.orders", "core.order_lines", "core.shipment_status",
           "ref.products", "ref.customers", "ref.tax_rates", "ref.billing_policies", "ref.legal_entities",
           "ref.customer_bank_accounts", "ref.open_items",
           "core.invoices", "core.invoice_lines", "core.credit_notes", "core.credit_note_lines", "core.payments",
           "core.payment_allocations", "core.customer_credits", "core.write_offs", "core.ar_open_items",
           "ops.document_numbers"),
    writes=("core.invoices", "core.invoice_lines", "core.credit_notes", "core.credit_note_lines",
            "core.bank_statements", "core.bank_lines", "core.payment_suspense", "core.payments",
            "core.payment_allocations", "core.customer_credits", "core.write_offs", "core.ar_open_items"),
    appends=("ops.document_numbers", "ops.outbound_documents"),
)

#: Channels whose orders carry the channel's own tax (Shopify tax_lines, Amazon ItemTax).
CHANNEL_TAX = ("shopify", "amazon")
#: Business customers' channels (``SOM_INVOICE_PDFS=b2b``: only their invoices get a PDF).
B2B_CHANNELS = ("edi", "b2b_portal", "csv")


@dataclass(frozen=True)
class BillingConfig:
    """Defaults where ``ref.billing_policies`` / ``ref.legal_entities`` say nothing (documented in docs/billing.md)."""

    legal_entity: str = "US01"
    prepaid_channels: tuple[str, ...] = ("shopify", "amazon")
    prepaid_statuses: tuple[str, ...] = ("paid",)
    seller_name: str = "SOM Trading Inc."
    seller_address: str = "100 Commerce Way, Austin, TX 78701, US"


@dataclass
class BillingReport:
    invoices: int = 0
    invoice_lines: int = 0
    invoiced_total: dict[str, str] = field(default_factory=dict)
    waiting: int = 0
    credit_notes: int = 0
    captures: int = 0
    documents: int = 0
    bank_files: int = 0
    bank_lines: int = 0
    payments: int = 0
    allocated: int = 0
    suspense: int = 0
    cleared_captures: int = 0
    open_items: int = 0
    notes: list[str] = field(default_factory=list)
    _archive: list = field(default_factory=list, repr=False)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("notes", "_archive")}


def run_billing(wh: Warehouse, settings: Settings, now: datetime, cfg: BillingConfig | None = None) -> BillingReport:
    cfg = cfg or BillingConfig()
    rep = BillingReport()
    with wh.connect() as con:
        touched = [_opening_items(con, now)]
        touched.append(_invoice(con, settings, now, cfg, rep))
        touched.append(_cancellations(con, settings, now, cfg, rep))
        touched.append(_captures(con, now, cfg, rep))
        _bank_files(con, settings, now, rep)
        touched.append(_clear_payouts(con, rep))
        touched.append(_match(con, settings, now, rep))
        _refresh_ar(con, pl.concat(touched).unique(), now, rep)
    for f in rep._archive:
        archive(f)
    return rep


# ------------------------------------------------------------------------------------------------
# 1. opening balances
# ------------------------------------------------------------------------------------------------
def _opening_items(con, now: datetime) -> pl.DataFrame:
    """Open items to (re)compute besides this run's work: opening items not taken over yet, and -- after a run
    killed between posting and the receivables -- invoices without an open item and items whose documents are
    newer than their row."""
    return con.execute("""
        SELECT invoice_id AS item_id FROM ref.open_items o
        WHERE NOT EXISTS (SELECT 1 FROM core.ar_open_items a WHERE a.item_id = o.invoice_id)
        UNION SELECT invoice_id FROM core.invoices i
        WHERE NOT EXISTS (SELECT 1 FROM core.ar_open_items a WHERE a.item_id = i.invoice_id)
        UNION SELECT a.item_id FROM core.payment_allocations a JOIN core.ar_open_items r USING (item_id)
        WHERE a.allocated_at > r.updated_at
        UNION SELECT c.invoice_id FROM core.credit_notes c JOIN core.ar_open_items r ON r.item_id = c.invoice_id
        WHERE c.issued_at > r.updated_at
        UNION SELECT w.item_id FROM core.write_offs w JOIN core.ar_open_items r USING (item_id)
        WHERE w.written_off_at > r.updated_at""").pl()


# ------------------------------------------------------------------------------------------------
# 2. invoices
# ------------------------------------------------------------------------------------------------
def policies(con, orders: pl.DataFrame, cfg: BillingConfig) -> pl.DataFrame:
    """``order_id, basis, prepaid, legal_entity`` for ``orders`` (order_id, channel, customer_id, payment_status):
    the customer's own policy row, else its channel's ('*'), else the defaults. ``prepaid`` also needs the channel
    to say the order is paid."""
    pol = con.execute("SELECT * FROM ref.billing_policies").pl()
    own = pol.filter(pl.col("customer_id") != "*").select("channel", "customer_id", *[
        pl.col(c).alias(f"_c_{c}") for c in ("basis", "prepaid", "legal_entity")])
    chan = pol.filter(pl.col("customer_id") == "*").select("channel", *[
        pl.col(c).alias(f"_h_{c}") for c in ("basis", "prepaid", "legal_entity")])
    o = (orders.join(own, on=["channel", "customer_id"], how="left")
         .join(chan, on="channel", how="left"))
    paid = pl.col("payment_status").str.to_lowercase().is_in(list(cfg.prepaid_statuses)).fill_null(False)
    return o.select(
        "order_id",
        pl.coalesce("_c_basis", "_h_basis", pl.lit("shipment")).alias("basis"),
        (pl.coalesce("_c_prepaid", "_h_prepaid", pl.col("channel").is_in(list(cfg.prepaid_channels))) & paid)
        .alias("prepaid"),
        pl.coalesce("_c_legal_entity", "_h_legal_entity", pl.lit(cfg.legal_entity)).alias("legal_entity"))


def _candidates(con, cfg: BillingConfig) -> pl.DataFrame:
    """Shipments without an invoice, with their order's billing policy and the date that makes them due."""
    sh = con.execute("""
        SELECT s.shipment_id, s.order_id, s.ship_date, s.shipped_at, st.delivered_at,
               o.channel, o.customer_id, o.payment_status, o.currency
        FROM core.shipments s JOIN core.orders o USING (order_id)
        LEFT JOIN core.shipment_status st USING (shipment_id)
        WHERE NOT EXISTS (SELECT 1 FROM core.invoices i WHERE i.shipment_id = s.shipment_id)""").pl()
    if sh.height == 0:
        return sh
    pol = policies(con, sh.select("order_id", "channel", "customer_id", "payment_status").unique("order_id"), cfg)
    sh = sh.join(pol, on="order_id", how="left")
    by_delivery = pl.col("basis") == "delivery"
    return (sh.filter(~by_delivery | pl.col("delivered_at").is_not_null())
            .with_columns(pl.when(by_delivery).then(pl.col("delivered_at").dt.date()).otherwise(pl.col("ship_date"))
                          .alias("invoice_date"),
                          pl.when(by_delivery).then(pl.col("delivered_at")).otherwise(pl.col("shipped_at"))
                          .alias("basis_at")))


def tax_rate_lookup(rates: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (country, region, postal_code, tax_class, on: Date) with ``rate`` and ``jurisdiction``: the most
    specific ``ref.tax_rates`` row valid on the date -- a postal prefix (the longest) over the region over the
    country ('*')."""
    r = rates.with_columns(
        pl.when(pl.col("postal_prefix") != "*").then(10 + pl.col("postal_prefix").str.len_chars())
        .when(pl.col("region") != "*").then(1).otherwise(0).alias("_spec"))
    keyed = rows.with_row_index("_row")
    cand = (keyed.join(r, left_on=["country", "tax_class"], right_on=["country", "tax_class"], how="inner")
            .filter((pl.col("region_right") == "*") | (pl.col("region_right") == pl.col("region")),
                    (pl.col("postal_prefix") == "*")
                    | pl.col("postal_code").fill_null("").str.starts_with(pl.col("postal_prefix")),
                    pl.col("valid_from") <= pl.col("on"),
                    pl.col("valid_to").is_null() | (pl.col("valid_to") >= pl.col("on")))
            .sort("_row", "_spec", "valid_from", descending=[False, True, True])
            .unique("_row", keep="first")
            .select("_row", "rate", "jurisdiction"))
    return keyed.join(cand, on="_row", how="left").drop("_row")


#: Shipments invoiced per transaction: a backlog is posted in batches (bounded memory), in issue order, so the
#: numbers still follow the invoice dates.
INVOICE_BATCH = 50_000


def _invoice(con, settings: Settings, now: datetime, cfg: BillingConfig, rep: BillingReport) -> pl.DataFrame:
    todo = _candidates(con, cfg)
    if todo.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    todo = todo.sort("legal_entity", "invoice_date", "basis_at", "shipment_id")
    done = [_invoice_batch(con, settings, now, cfg, rep, batch) for batch in todo.iter_slices(INVOICE_BATCH)]
    return pl.concat(done)


def _invoice_batch(con, settings: Settings, now: datetime, cfg: BillingConfig, rep: BillingReport,
                   todo: pl.DataFrame) -> pl.DataFrame:
    ids = todo.select("shipment_id")
    sl = select_keys(con, "core.shipment_lines", ids, "shipment_id, order_id, line_no, sku, quantity")
    orders_ = todo.select("order_id").unique()
    ol = select_keys(con, "core.order_lines", orders_)
    o = select_keys(con, "core.orders", orders_)
    with registered(con, orders_) as k:
        prior = con.execute(f"""
            SELECT l.order_id, l.order_line_no AS line_no, sum(l.quantity)::BIGINT AS prior_qty
            FROM core.invoice_lines l SEMI JOIN {k} USING (order_id) WHERE l.kind = 'item' GROUP BY ALL""").pl()  # noqa: S608
        shipping_billed = con.execute(f"""
            SELECT DISTINCT order_id FROM core.invoice_lines SEMI JOIN {k} USING (order_id)
            WHERE kind = 'shipping'""").pl()  # noqa: S608
    products = con.execute("SELECT sku, name, tax_class FROM ref.products").pl()
    lines = (sl.join(todo.select("shipment_id", "basis_at", "invoice_date"), on="shipment_id")
             .join(ol.select("order_id", "line_no", pl.col("quantity").alias("ordered_qty"), "unit_price",
                             "line_amount", "discount_amount", "discount_rate", "tax_amount",
                             pl.col("tax_rate").alias("_line_rate"), "description", "item_kind"),
                   on=["order_id", "line_no"], how="left")
             .join(o.select("order_id", "channel", "prices_include_tax", pl.col("ship_to_country").alias("country"),
                            pl.col("ship_to_region").alias("region"), pl.col("ship_to_postal_code")
                            .alias("postal_code")), on="order_id", how="left")
             .join(prior, on=["order_id", "line_no"], how="left")
             .join(products.select("sku", "tax_class", pl.col("name").alias("_pname")), on="sku", how="left")
             .with_columns(pl.col("prior_qty").fill_null(0),
                           pl.col("tax_class").fill_null("standard"),
                           pl.when(pl.col("channel").is_in(CHANNEL_TAX)).then(pl.lit("channel"))
                           .otherwise(pl.lit("table")).alias("tax_source")))
    rates = con.execute("SELECT * FROM ref.tax_rates").pl()
    looked = tax_rate_lookup(rates, lines.select("country", "region", "postal_code", "tax_class",
                                                 pl.col("invoice_date").alias("on")))
    lines = lines.with_columns(
        pl.when(pl.col("tax_source") == "channel").then(pl.col("_line_rate")).otherwise(looked["rate"])
        .alias("tax_rate"),
        pl.when(pl.col("tax_source") == "table").then(looked["jurisdiction"]).alias("tax_jurisdiction"))
    # what cannot be billed yet: the whole shipment waits (a partial invoice would number around the gap)
    problems = lines.select(
        "shipment_id",
        pl.when(pl.col("line_amount").is_null()).then(pl.lit("a line has no price yet"))
        .when((pl.col("tax_source") == "table") & pl.col("tax_rate").is_null())
        .then(pl.format("no tax rate in ref.tax_rates for {}/{}/{} class {}", pl.col("country"),
                        pl.col("region"), pl.col("postal_code"), pl.col("tax_class")))
        .alias("why")).drop_nulls("why").unique("shipment_id", keep="first")
    if problems.height:
        rep.waiting += problems.height
        rep.notes += [f"{s}: not invoiced yet: {w}" for s, w in problems.sort("shipment_id").head(20).rows()]
        lines = lines.join(problems, on="shipment_id", how="anti")
        todo = todo.join(problems, on="shipment_id", how="anti")
    if todo.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    priced = price_lines(lines)
    if priced.excess.height:
        rep.notes.append(f"{priced.excess['units'].sum()} shipped units beyond the ordered quantity are not billed "
                         f"(first: {priced.excess.row(0)})")
    items = priced.lines.with_columns(pl.lit("item").alias("kind"))
    # shipping: on the order's first invoice (the batch's earliest shipment of an order not charged before)
    first = (todo.join(shipping_billed, on="order_id", how="anti").sort("basis_at", "shipment_id")
             .unique("order_id", keep="first").select("shipment_id", "order_id", "invoice_date"))
    ship_rate = tax_rate_lookup(rates, first.join(o.select("order_id", pl.col("ship_to_country").alias("country"),
                                                           pl.col("ship_to_region").alias("region"),
                                                           pl.col("ship_to_postal_code").alias("postal_code")),
                                                  on="order_id", how="left")
                                .select("country", "region", "postal_code", pl.lit("shipping").alias("tax_class"),
                                        pl.col("invoice_date").alias("on")))
    first = first.with_columns(ship_rate["rate"].alias("shipping_rate"), ship_rate["jurisdiction"]
                               .alias("tax_jurisdiction")).join(
        o.select("order_id", "channel", "shipping_total", "shipping_tax", "prices_include_tax"), on="order_id")
    first = first.with_columns(pl.when(pl.col("channel").is_in(CHANNEL_TAX)).then(pl.lit("channel"))
                               .otherwise(pl.lit("table")).alias("tax_source"))
    ship = shipping_lines(first).with_columns(
        pl.lit("shipping").alias("kind"), pl.lit(None, pl.Int64).alias("line_no"), pl.lit(None, pl.String).alias("sku"),
        pl.lit("Shipping and handling").alias("description"), pl.lit(1, pl.Int64).alias("billed_qty"),
        pl.lit(0, pl.Int64).alias("c0"), pl.col("extended_amount").cast(pl.Decimal(18, 4)).alias("unit_price"),
        pl.when(pl.col("tax_source") == "table").then(pl.col("tax_jurisdiction")).alias("tax_jurisdiction"))
    all_lines = pl.concat([
        items.select(*_LINE_OUT, pl.coalesce("description", "_pname").alias("description")),
        ship.with_columns(pl.when((pl.col("tax_source") == "table") & pl.col("shipping_rate").is_null())
                          .then(pl.lit("none")).otherwise(pl.col("tax_source")).alias("tax_source"))
        .select(*_LINE_OUT, "description")], how="vertical_relaxed")
    # invoice headers, numbered in issue order
    cust = con.execute("SELECT customer_id, payment_terms_days FROM ref.customers").pl()
    heads = (todo.select("shipment_id", "order_id", "channel", "customer_id", "currency", "basis", "prepaid",
                         "legal_entity", "invoice_date", "basis_at")
             .join(cust, on="customer_id", how="left")
             .with_columns(pl.col("invoice_date").dt.year().cast(pl.Int32).alias("fiscal_year"),
                           pl.when(pl.col("prepaid")).then(pl.col("invoice_date"))
                           .otherwise(pl.col("invoice_date") + pl.duration(days=pl.col("payment_terms_days")
                                                                           .fill_null(0)))
                           .alias("due_date"))
             .sort("legal_entity", "fiscal_year", "invoice_date", "basis_at", "shipment_id"))
    last = con.execute("SELECT legal_entity, fiscal_year, last_seq FROM ops.document_numbers WHERE kind = 'invoice'"
                       ).pl()
    heads = number_documents(heads, last, "invoice").rename({"number": "invoice_id"})
    all_lines = (all_lines.join(heads.select("shipment_id", "invoice_id"), on="shipment_id")
                 .with_columns(pl.when(pl.col("kind") == "item").then(0).otherwise(1).alias("_k"))
                 .sort("invoice_id", "_k", "order_line_no", nulls_last=True)
                 .with_columns(pl.int_range(1, pl.len() + 1).over("invoice_id").cast(pl.Int64).alias("line_no"))
                 .drop("_k"))
    inv_lines = conform(all_lines, InvoiceLineModel)
    totals = invoice_totals(inv_lines)
    invoices = conform(heads.join(totals, on="invoice_id").with_columns(
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("issued_at")), InvoiceModel)
    counters = (heads.group_by("legal_entity", "fiscal_year").agg(pl.col("seq").max().alias("last_seq"))
                .with_columns(pl.lit("invoice").alias("kind")))
    docs, files = _documents(con, settings, invoices, inv_lines, o, cfg, now, rep)
    for path, data in files:  # before the commit that records them (see the module docstring)
        write_atomic(path, data)
    with transaction(con):
        insert_frame(con, "core.invoices", invoices)
        insert_frame(con, "core.invoice_lines", inv_lines)
        _advance_counters(con, counters)
        if docs.height:
            insert_frame(con, "ops.outbound_documents", docs)
    rep.invoices += invoices.height
    rep.invoice_lines += inv_lines.height
    rep.documents += docs.height
    for (cur,), part in invoices.group_by("currency"):
        rep.invoiced_total[cur] = str(part["total"].sum())
    return invoices.select(pl.col("invoice_id").alias("item_id"))


_LINE_OUT = ("shipment_id", "order_id", pl.col("line_no").alias("order_line_no"), "kind", "sku",
             pl.col("billed_qty").alias("quantity"), "unit_price", pl.col("c0").alias("first_unit"),
             "extended_amount", "discount_amount", "net_amount", "tax_rate", "tax_amount", "line_total", "tax_source",
             "tax_jurisdiction", "net_unrounded", "tax_unrounded")


def _advance_counters(con, counters: pl.DataFrame) -> None:
    """Set the numbering counters to the last number posted (inside the posting transaction)."""
    with registered(con, counters.select("legal_entity", "kind", "fiscal_year", "last_seq")) as k:
        con.execute(f"""DELETE FROM ops.document_numbers d USING {k} k
                        WHERE d.legal_entity = k.legal_entity AND d.kind = k.kind
                          AND d.fiscal_year = k.fiscal_year""")  # noqa: S608
        con.execute(f"INSERT INTO ops.document_numbers SELECT legal_entity, kind, fiscal_year::INTEGER, last_seq::BIGINT "  # noqa: S608
                    f"FROM {k}")


def _render_one(job: tuple) -> tuple[bytes | str | None, str | None]:
    """``(data, error)`` of one document job ``(kind, path, header, lines, writer arguments)``."""
    from som_pipeline.billing import documents as D
    from som_pipeline.fulfilment.outbound import OutboundError

    kind, _path, h, lines, kw = job
    try:
        if kind == "x12_810":
            return D.x12_810([h], lines, **kw), None
        return D.invoice_pdf(h, lines), None
    except OutboundError as e:
        return None, str(e)


def _documents(con, settings: Settings, invoices: pl.DataFrame, lines: pl.DataFrame, orders: pl.DataFrame,
               cfg: BillingConfig, now: datetime, rep: BillingReport) -> tuple[pl.DataFrame, list[tuple[Path, bytes | str]]]:
    """A PDF per invoice (``outbound/invoices/<number>.pdf``) and an X12 810 per EDI invoice
    (``outbound/edi/<number>.810.edi``), each recorded once in ``ops.outbound_documents``. A document the
    writer refuses (``OutboundError``: its arithmetic does not add up) is not written and is said in the report."""
    from som_pipeline.fulfilment.outbound import document_id

    if invoices.height == 0:
        return from_rows(OutboundDocumentModel, []), []
    ent = con.execute("SELECT * FROM ref.legal_entities").pl()
    ent = {r["legal_entity"]: r for r in ent.iter_rows(named=True)}
    cust = con.execute("SELECT customer_id, name, payment_terms_days FROM ref.customers").pl()
    heads = (invoices.join(orders.select("order_id", "customer_po", "channel_order_ref", "customer_ref",
                                         "ship_to_name", pl.col("ship_to_line1").alias("ship_to_address1"),
                                         "ship_to_city", "ship_to_region", "ship_to_postal_code", "ship_to_country",
                                         "prices_include_tax", pl.col("order_date").alias("po_date")),
                           on="order_id", how="left")
             .join(cust, on="customer_id", how="left")
             .with_columns(pl.lit("invoice").alias("kind"),
                           pl.coalesce("name", "ship_to_name", pl.lit("Customer")).alias("bill_to_name"),
                           (pl.col("due_date") - pl.col("invoice_date")).dt.total_days().alias("payment_terms_days"),
                           pl.when(pl.col("prepaid")).then(pl.col("total")).otherwise(pl.lit(0).cast(MONEY))
                           .alias("prepaid_amount"))
             .with_columns((pl.col("total") - pl.col("prepaid_amount")).cast(MONEY).alias("amount_due")))
    refs = select_keys(con, "core.order_lines", invoices.select("order_id").unique(),
                       "order_id, line_no AS order_line_no, line_ref AS channel_line_ref")
    ln = lines.join(refs, on=["order_id", "order_line_no"], how="left")
    by_inv = ln.partition_by("invoice_id", as_dict=True)
    root = settings.outbound
    jobs: list[tuple[str, Path, dict, list[dict], dict]] = []
    for h in heads.iter_rows(named=True):
        e = ent.get(h["legal_entity"], {})
        h.update(seller_name=e.get("name") or cfg.seller_name, seller_address=e.get("address") or cfg.seller_address,
                 seller_tax_id=e.get("tax_id"))
        mine = by_inv[(h["invoice_id"],)].to_dicts()
        if settings.invoice_pdfs == "all" or (settings.invoice_pdfs == "b2b" and h["channel"] in B2B_CHANNELS):
            jobs.append(("invoice_pdf", root / "invoices" / f"{h['invoice_id']}.pdf", h, mine, {}))
        if h["channel"] == "edi":
            edi = {**h, "customer_po": h["customer_po"] or (h["channel_order_ref"] or "").split(":")[-1]}
            jobs.append(("x12_810", root / "edi" / f"{h['invoice_id']}.810.edi", edi, mine, {
                "sender_id": e.get("edi_id") or "SOMPIPELINE", "receiver_id": (h["customer_ref"] or "PARTNER")[:15],
                "control_number": int(sha256_text(h["invoice_id"])[:8], 16) % 999_999_999 + 1, "now": now}))
    rows: list[dict] = []
    files: list[tuple[Path, bytes | str]] = []
    for (kind, path, h, _mine, _kw), (data, err) in zip(jobs, map(_render_one, jobs), strict=True):
        if err is not None:
            rows.append({"_error": f"{h['invoice_id']}: no {kind}: {err}"})
            continue
        raw = data.encode() if isinstance(data, str) else data
        rows.append({"document_id": document_id(kind, h["invoice_id"]), "kind": kind, "channel": h["channel"],
                     "key": h["invoice_id"], "path": str(path), "sha256": sha256_text(raw), "written_at": now})
        files.append((path, data))
    rep.notes += [r["_error"] for r in rows if "_error" in r]
    return from_rows(OutboundDocumentModel, [r for r in rows if "_error" not in r]), files


# ------------------------------------------------------------------------------------------------
# 3. credit notes for cancelled orders
# ------------------------------------------------------------------------------------------------
def _cancellations(con, settings: Settings, now: datetime, cfg: BillingConfig, rep: BillingReport) -> pl.DataFrame:
    """Invoiced orders cancelled at the channel: every invoice line's units not credited yet are credited."""
    inv = con.execute("""
        SELECT i.* FROM core.invoices i JOIN core.orders o USING (order_id)
        WHERE o.cancelled_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM core.credit_notes c WHERE c.invoice_id = i.invoice_id
                          AND c.reason = 'CANCELLATION')""").pl()
    if inv.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    heads = inv.select("invoice_id", "legal_entity", "order_id", "customer_id", "currency",
                       pl.lit("CANCELLATION").alias("reason"),
                       pl.format("cancelled:{}", pl.col("invoice_id")).alias("source_ref"),
                       pl.lit("the order was cancelled at the channel after it was invoiced").alias("note"))
    return _post_credit_notes(con, heads, None, now, rep)


def _post_credit_notes(con, heads: pl.DataFrame, amounts: pl.DataFrame | None, now: datetime,
                       rep: BillingReport) -> pl.DataFrame:
    """Post credit notes: ``heads`` one per note (invoice_id, legal_entity, order_id, customer_id, currency,
    reason, source_ref, note); ``amounts`` (invoice_id, invoice_line_no, credit_qty | credit_amount, optional
    restocking_fee: kept from that line's credit, a ``restocking_fee`` line right after it -- invoicing rule 7)
    or None (credit every unit not credited yet)."""
    # a note already posted for the same cause (a rerun after a kill) is not posted again
    done_refs = select_keys(con, "core.credit_notes", heads.select("source_ref"), "source_ref")
    heads = heads.join(done_refs, on="source_ref", how="anti")
    if heads.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    il = select_keys(con, "core.invoice_lines", heads.select("invoice_id"))
    with registered(con, heads.select("invoice_id")) as k:
        done = con.execute(f"""
            SELECT l.invoice_id, l.invoice_line_no AS line_no, sum(l.quantity)::BIGINT AS credited_qty
            FROM core.credit_note_lines l SEMI JOIN {k} USING (invoice_id)
            WHERE l.kind <> 'restocking_fee' GROUP BY ALL""").pl()  # noqa: S608
    il = (il.join(done, on=["invoice_id", "line_no"], how="left")
          .with_columns(pl.col("credited_qty").fill_null(0), pl.col("quantity").alias("billed_qty"),
                        pl.lit(False).alias("prices_include_tax")))
    if amounts is None:
        il = il.with_columns((pl.col("billed_qty") - pl.col("credited_qty")).alias("credit_qty"),
                             pl.lit(None, MONEY).alias("credit_amount")).filter(pl.col("credit_qty") > 0)
    else:
        il = il.join(amounts.rename({"invoice_line_no": "line_no"}), on=["invoice_id", "line_no"], how="inner")
    cl = credit_lines(il).filter(pl.col("line_total") > 0)
    if "restocking_fee" in cl.columns:  # a RETURN's fee: a line of its own, after the line it is kept from
        cl = pl.concat([cl, restocking_fee_lines(cl)], how="vertical_relaxed")
    heads = heads.join(cl.select("invoice_id").unique(), on="invoice_id", how="semi")
    if heads.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    heads = (heads.with_columns(pl.lit(now.date()).alias("credit_date"),
                                pl.lit(now.year).cast(pl.Int32).alias("fiscal_year"))
             .sort("legal_entity", "fiscal_year", "source_ref"))
    last = con.execute("SELECT legal_entity, fiscal_year, last_seq FROM ops.document_numbers "
                       "WHERE kind = 'credit_note'").pl()
    heads = number_documents(heads, last, "credit_note").rename({"number": "credit_note_id"})
    cl = (cl.join(heads.select("invoice_id", "credit_note_id"), on="invoice_id")
          .rename({"line_no": "invoice_line_no"})
          .sort("credit_note_id", "invoice_line_no", pl.col("kind") == FEE_KIND)
          .with_columns(pl.int_range(1, pl.len() + 1).over("credit_note_id").cast(pl.Int64).alias("line_no"),
                        pl.col("qty").alias("quantity")))
    lines = conform(cl, CreditNoteLineModel)
    notes = conform(heads.join(invoice_totals(lines.with_columns(pl.col("kind")), key="credit_note_id"),
                               on="credit_note_id")
                    .with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("issued_at")), CreditNoteModel)
    counters = (heads.group_by("legal_entity", "fiscal_year").agg(pl.col("seq").max().alias("last_seq"))
                .with_columns(pl.lit("credit_note").alias("kind")))
    with transaction(con):
        insert_frame(con, "core.credit_notes", notes)
        insert_frame(con, "core.credit_note_lines", lines)
        _advance_counters(con, counters)
    rep.credit_notes += notes.height
    return notes.select(pl.col("invoice_id").alias("item_id"))


# ------------------------------------------------------------------------------------------------
# 4. channel captures (prepaid orders)
# ------------------------------------------------------------------------------------------------
def _captures(con, now: datetime, cfg: BillingConfig, rep: BillingReport) -> pl.DataFrame:
    """Prepaid orders invoiced: their capture is a payment (recorded once), applied to their invoices oldest
    first; the part not applied yet is held (PREPAYMENT_HELD) until the next invoice of the order."""
    inv = con.execute("""
        SELECT i.invoice_id, i.order_id, i.customer_id, i.currency, i.total, i.invoice_date,
               o.order_total, o.order_date, o.channel, o.payment_status
        FROM core.invoices i JOIN core.orders o USING (order_id)
        WHERE i.prepaid AND NOT EXISTS (SELECT 1 FROM core.payment_allocations a
                                        WHERE a.item_id = i.invoice_id AND a.method = 'PREPAYMENT')""").pl()
    if inv.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    orders_ = inv.select("order_id").unique()
    known = select_keys(con, "core.payments", orders_, "payment_id, order_id, amount")
    new_pay = (inv.unique("order_id").join(known, on="order_id", how="anti")
               .select(pl.format("CAP-{}", pl.col("order_id")).alias("payment_id"),
                       pl.lit("channel_capture").alias("source"), "currency", pl.col("order_total").alias("amount"),
                       pl.col("order_date").alias("value_date"), "order_id",
                       pl.format("{} capture of order {}", pl.col("channel"), pl.col("order_id")).alias("remittance"),
                       pl.lit(False).alias("cleared"), pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("received_at"))
               .filter(pl.col("amount") > 0))
    pays = pl.concat([known.select("payment_id", "order_id", "amount"),
                      new_pay.select("payment_id", "order_id", "amount")])
    with registered(con, pays.select("payment_id")) as k:
        used = con.execute(f"""SELECT payment_id, sum(amount) AS used FROM core.payment_allocations
                               SEMI JOIN {k} USING (payment_id) GROUP BY 1""").pl()  # noqa: S608
    pays = pays.join(used, on="payment_id", how="left").with_columns(
        (pl.col("amount") - pl.col("used").fill_null(0)).cast(MONEY).alias("left"))
    # oldest invoice first: each takes min(its total, what the capture has left after the earlier ones)
    alloc = (inv.join(pays.select("payment_id", "order_id", "left"), on="order_id")
             .sort("order_id", "invoice_date", "invoice_id")
             .with_columns((pl.col("total").cum_sum().over("order_id") - pl.col("total")).alias("_before"))
             .with_columns(pl.min_horizontal(pl.col("total"), pl.max_horizontal(pl.col("left") - pl.col("_before"),
                                                                                 pl.lit(0).cast(MONEY)))
                           .cast(MONEY).alias("amount"))
             .filter(pl.col("amount") > 0))
    alloc = conform(alloc.with_columns(
        sha256_series(pl.format("{}|{}|PREPAYMENT", pl.col("payment_id"), pl.col("invoice_id")), alloc)
        .alias("allocation_id"), pl.col("invoice_id").alias("item_id"), pl.lit("PREPAYMENT").alias("method"),
        pl.lit(1.0).alias("score"),
        pl.format("the {} capture of order {} pays its invoice", pl.col("channel"), pl.col("order_id"))
        .alias("explanation"), pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("allocated_at")),
        PaymentAllocationModel)
    held = (pays.join(alloc.group_by("payment_id").agg(pl.col("amount").sum().alias("now")), on="payment_id",
                      how="left")
            .with_columns((pl.col("left") - pl.col("now").fill_null(0)).cast(MONEY).alias("amount"))
            .join(inv.unique("order_id").select("order_id", "customer_id", "currency"), on="order_id"))
    credits = conform(held.filter(pl.col("amount") > 0).with_columns(
        pl.lit("PREPAYMENT_HELD").alias("reason"), pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("created_at")),
        CustomerCreditModel)
    with transaction(con):
        insert_frame(con, "core.payments", conform(new_pay, PaymentModel))
        insert_frame(con, "core.payment_allocations", alloc)
        replace_keys(con, "core.customer_credits", pays.select("payment_id"), credits)
    rep.captures += new_pay.height
    return alloc.select("item_id")


# ------------------------------------------------------------------------------------------------
# 6. bank statements and channel payouts -> payments
# ------------------------------------------------------------------------------------------------
BANK_FORMATS = ("mt940", "bai2", "camt053")
#: A bank credit from one of these payers is a channel's payout, not a customer's payment.
PAYOUT_PAYERS = ("SHOPIFY", "AMAZON")


def _bank_files(con, settings: Settings, now: datetime, rep: BillingReport) -> None:
    """Every new file of ``landing/bank`` and ``landing/payouts``: statements and lines (kept whole, dedup by id),
    the rejected records quarantined, one ledger row per file; the customers' credits become payments."""
    from som_pipeline.billing.bank import read_bank_file

    for feed in ("bank", "payouts"):
        files, settled = incoming(con, settings, feed, now, rep.notes)
        rep.notes += [f"{o.source_file}: identical content already processed ({o.status}); archived" for o in settled]
        for f in files:
            data = f.read()
            if data is None:
                rep.notes.append(f"{f.name}: changed while read; left for the next run")
                continue
            bf = read_bank_file(data, f.name)
            at = pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("received_at")
            st = conform(bf.statements.with_columns(at), BankStatementModel)
            ln = conform(bf.lines.with_columns(at), BankLineModel)
            st = st.join(select_keys(con, "core.bank_statements", st.select("statement_id"), "statement_id"),
                         on="statement_id", how="anti")
            ln = ln.join(select_keys(con, "core.bank_lines", ln.select("line_id"), "line_id"), on="line_id",
                         how="anti")
            pay = _payments_from_lines(ln, now)
            with transaction(con):
                insert_frame(con, "core.bank_statements", st)
                insert_frame(con, "core.bank_lines", ln)
                insert_frame(con, "core.payments", pay)
                record_feed_file(con, f, feed, bf.received,
                                 feed_quarantine(bf.rejected, feed, BANK_RECORD_KIND[feed], f.name, f.sha, now), now)
            rep._archive.append(f)
            rep.bank_files += 1
            rep.bank_lines += ln.height
            rep.payments += pay.height
            unbalanced = st.filter(~pl.col("balanced").fill_null(True))
            rep.notes += [f"{f.name}: statement {r} does not balance (see the quarantine)" for r in
                          unbalanced["statement_id"].to_list()]


BANK_RECORD_KIND = {"bank": "bank_line", "payouts": "payout_line"}


def _payments_from_lines(ln: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The customers' payments among new bank lines: credits of the bank formats, except the channels' payouts."""
    payer = pl.col("payer_name").fill_null("").str.to_uppercase()
    payout = pl.any_horizontal([payer.str.contains(p, literal=True) for p in PAYOUT_PAYERS])
    return conform(ln.filter(pl.col("format").is_in(BANK_FORMATS), pl.col("amount") > 0, pl.col("kind") != "fee",
                             ~payout)
                   .select(pl.col("line_id").alias("payment_id"), pl.lit("bank").alias("source"), "currency",
                           "amount", pl.coalesce("value_date", "booking_date").alias("value_date"), "payer_name",
                           "payer_account", "remittance", "end_to_end_id", pl.lit(True).alias("cleared"),
                           pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("received_at")), PaymentModel)


def _clear_payouts(con, rep: BillingReport) -> pl.DataFrame:
    """A channel capture is cleared (paid, not only in payment) once the payout carrying its order's charge is on a
    bank statement: the payout's deposit line and a bank credit from the channel of the same amount and currency
    within three days."""
    cleared = con.execute("""
        WITH banked AS (
            SELECT DISTINCT p.statement_id FROM core.bank_lines p
            JOIN core.bank_lines b ON b.format IN ('mt940', 'bai2', 'camt053') AND b.amount = p.amount
                 AND b.currency = p.currency AND abs(date_diff('day', b.booking_date, p.booking_date)) <= 3
                 AND (upper(coalesce(b.payer_name, '')) LIKE '%SHOPIFY%' OR upper(coalesce(b.payer_name, ''))
                      LIKE '%AMAZON%')
            WHERE p.format IN ('shopify_payout', 'amazon_settlement') AND p.kind = 'payout'),
        orders_paid AS (
            SELECT DISTINCT o.order_id FROM core.bank_lines c JOIN banked USING (statement_id)
            JOIN core.orders o ON o.channel_order_ref = c.order_ref
                 AND o.channel = CASE WHEN c.format = 'shopify_payout' THEN 'shopify' ELSE 'amazon' END
            WHERE c.order_ref IS NOT NULL)
        SELECT p.payment_id FROM core.payments p JOIN orders_paid USING (order_id)
        WHERE p.source = 'channel_capture' AND NOT p.cleared""").pl()
    if cleared.height == 0:
        return pl.DataFrame(schema={"item_id": pl.String})
    with registered(con, cleared) as k, transaction(con):
        con.execute(f"UPDATE core.payments SET cleared = true WHERE payment_id IN (SELECT payment_id FROM {k})")  # noqa: S608
    rep.cleared_captures += cleared.height
    return select_keys(con, "core.payment_allocations", cleared, "item_id")


# ------------------------------------------------------------------------------------------------
# 7. matching: new payments, and those waiting in suspense, against the open items
# ------------------------------------------------------------------------------------------------
def _decisions(con, settings: Settings, now: datetime, rep: BillingReport) -> tuple[pl.DataFrame, list]:
    """Manual decisions of ``landing/payment_decisions`` (CSV: payment_id, action, invoice_id, amount, note
    [, customer_id]); unreadable rows are quarantined ``PAYMENT_DECISION_INVALID``."""
    files, settled = incoming(con, settings, "payment_decisions", now, rep.notes)
    rep.notes += [f"{o.source_file}: identical content already processed ({o.status}); archived" for o in settled]
    frames, reads = [], []
    for f in files:
        data = f.read()
        if data is None:
            continue
        d, rej, received = read_payment_decisions(data, f.name)
        frames.append(d)
        reads.append((f, rej, received))
    schema = {"payment_id": pl.String, "action": pl.String, "invoice_id": pl.String, "amount": MONEY,
              "note": pl.String, "customer_id": pl.String, "_file": pl.String, "_loc": pl.String, "_raw": pl.String}
    return (pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=schema)), reads


DECISION_ACTIONS = ("match", "credit", "write_off", "refund")


def read_payment_decisions(data: bytes, name: str) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """``(decisions, rejected, received)`` of a decisions CSV (every field read as text, then checked)."""
    import io

    from som_pipeline.money import parse_decimal

    rej_schema = {"location": pl.String, "order_ref": pl.String, "reason_code": pl.String, "message": pl.String,
                  "raw": pl.String}
    try:
        df = pl.read_csv(io.BytesIO(data), infer_schema=False, truncate_ragged_lines=False)
    except Exception as e:  # noqa: BLE001 - bad input: one rejected record, never a traceback
        return (pl.DataFrame(), pl.DataFrame([{"location": "file", "order_ref": None, "reason_code":
                "PAYMENT_DECISION_INVALID", "message": f"not a readable CSV: {e}", "raw": data[:2000].decode(
                    "utf-8", "replace")}], schema=rej_schema), 1)
    for c in ("payment_id", "action", "invoice_id", "amount", "note", "customer_id"):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(c))
    amount, ok_amt = parse_decimal(pl.col("amount"), 2)
    df = df.with_row_index("_i").with_columns(
        pl.col("action").str.strip_chars().str.to_lowercase(), amount.cast(MONEY).alias("_amount"),
        ok_amt.alias("_ok_amt"), pl.format("line {}", pl.col("_i") + 2).alias("_loc"),
        pl.concat_str([pl.col(c).fill_null("") for c in ("payment_id", "action", "invoice_id", "amount", "note")],
                      separator=",").alias("_raw"), pl.lit(name).alias("_file"))
    why = (pl.when(pl.col("payment_id").is_null()).then(pl.lit("payment_id is empty"))
           .when(~pl.col("action").is_in(DECISION_ACTIONS)).then(pl.format("action '{}' is not one of {}",
                                                                           pl.col("action").fill_null(""),
                                                                           pl.lit("|".join(DECISION_ACTIONS))))
           .when(~pl.col("_ok_amt")).then(pl.format("amount '{}' is not a decimal with at most 2 places",
                                                    pl.col("amount")))
           .when((pl.col("action") == "match") & pl.col("invoice_id").is_null())
           .then(pl.lit("a match names no invoice_id")))
    df = df.with_columns(why.alias("_why"))
    rej = df.filter(pl.col("_why").is_not_null()).select(
        pl.col("_loc").alias("location"), pl.col("payment_id").alias("order_ref"),
        pl.lit("PAYMENT_DECISION_INVALID").alias("reason_code"), pl.col("_why").alias("message"),
        pl.col("_raw").alias("raw"))
    ok = df.filter(pl.col("_why").is_null()).select(
        "payment_id", "action", "invoice_id", pl.col("_amount").alias("amount"), "note", "customer_id", "_file",
        "_loc", "_raw")
    return ok, rej, df.height


def _match(con, settings: Settings, now: datetime, rep: BillingReport) -> pl.DataFrame:
    from som_pipeline.billing.matching import match_payments

    decisions, reads = _decisions(con, settings, now, rep)
    todo = con.execute("""
        SELECT p.payment_id, p.currency, coalesce(s.amount, p.amount) AS amount, p.value_date, p.payer_name,
               p.payer_account, p.remittance, p.end_to_end_id
        FROM core.payments p LEFT JOIN core.payment_suspense s USING (payment_id)
        WHERE p.source = 'bank' AND (s.payment_id IS NOT NULL OR NOT EXISTS (
              SELECT 1 FROM core.payment_allocations a WHERE a.payment_id = p.payment_id)
              AND NOT EXISTS (SELECT 1 FROM core.customer_credits c WHERE c.payment_id = p.payment_id))""").pl()
    # a decision only applies to a payment still to place (in suspense or new)
    named = decisions.join(todo.select("payment_id"), on="payment_id", how="anti")
    bad_named = named.with_columns(pl.lit("the payment is unknown or already placed").alias("message"))
    decisions = decisions.join(todo.select("payment_id"), on="payment_id", how="semi")
    touched = pl.DataFrame(schema={"item_id": pl.String})
    result = None
    if todo.height:
        items = con.execute("""
            SELECT a.item_id AS invoice_id, a.customer_id, a.currency, a.residual, a.invoice_date, a.due_date,
                   list_filter([i.order_id, o.channel_order_ref, o.customer_po,
                                split_part(o.channel_order_ref, ':', -1)], x -> x IS NOT NULL) AS order_refs
            FROM core.ar_open_items a LEFT JOIN core.invoices i ON i.invoice_id = a.item_id
            LEFT JOIN core.orders o ON o.order_id = i.order_id
            WHERE a.residual > 0 AND a.customer_id IS NOT NULL
              AND a.currency IN (SELECT DISTINCT currency FROM core.payments WHERE source = 'bank')""").pl()
        accounts = con.execute("SELECT customer_id, account FROM ref.customer_bank_accounts").pl()
        customers = con.execute("SELECT customer_id, name FROM ref.customers").pl()
        result = match_payments(todo, items, accounts, customers,
                                decisions.select("payment_id", "action", "invoice_id", "amount", "note",
                                                 "customer_id") if decisions.height else None)
    # quarantine: unreadable decision rows, and decisions that could not be applied
    errs = [bad_named.select("payment_id", "action", "invoice_id", "message", "_file", "_loc", "_raw")]
    if result is not None and result.decision_errors.height:
        errs.append(result.decision_errors.select("payment_id", "action", "invoice_id", "message").join(
            decisions.select("payment_id", "action", "invoice_id", "_file", "_loc", "_raw"),
            on=["payment_id", "action", "invoice_id"], how="left", nulls_equal=True).unique(["_file", "_loc"]))
    errs = pl.concat(errs, how="diagonal_relaxed")
    at = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    with transaction(con):
        for f, rej, received in reads:
            mine = errs.filter(pl.col("_file") == f.name).select(
                pl.col("_loc").alias("location"), pl.col("payment_id").alias("order_ref"),
                pl.lit("PAYMENT_DECISION_INVALID").alias("reason_code"), "message", pl.col("_raw").alias("raw"))
            record_feed_file(con, f, "payment_decisions", received,
                             feed_quarantine(pl.concat([rej, mine]), "payment_decisions", "decision", f.name, f.sha,
                                             now), now)
            rep._archive.append(f)
        if result is not None:
            cust = todo.select("payment_id", "currency")
            al = result.allocations.join(cust, on="payment_id", how="left")
            al = conform(al.with_columns(
                sha256_series(pl.format("{}|{}|{}", pl.col("payment_id"), pl.col("invoice_id"), pl.col("method")),
                              al).alias("allocation_id"), pl.col("invoice_id").alias("item_id"),
                at.alias("allocated_at")), PaymentAllocationModel)
            al = al.join(select_keys(con, "core.payment_allocations", al.select("allocation_id"), "allocation_id"),
                         on="allocation_id", how="anti")
            wo = conform(result.write_offs.join(cust, on="payment_id", how="left").with_columns(
                pl.col("invoice_id").alias("item_id"), at.alias("written_off_at")), WriteOffModel)
            un = conform(result.unapplied.join(cust, on="payment_id", how="left").with_columns(
                at.alias("created_at")), CustomerCreditModel)
            old = select_keys(con, "core.payment_suspense", todo.select("payment_id"), "payment_id, first_seen_at")
            su = conform(result.suspense.join(cust, on="payment_id", how="left").join(old, on="payment_id",
                                                                                     how="left")
                         .with_columns(pl.coalesce("first_seen_at", at).alias("first_seen_at"),
                                       at.alias("last_tried_at")), PaymentSuspenseModel)
            insert_frame(con, "core.payment_allocations", al)
            insert_frame(con, "core.write_offs", wo)
            replace_keys(con, "core.customer_credits", un.select("payment_id", "reason"), un)
            replace_keys(con, "core.payment_suspense", todo.select("payment_id"), su)
            rep.allocated += al.height
            rep.suspense = su.height
            touched = pl.concat([al.select("item_id"), wo.select("item_id")])
    return touched


# ------------------------------------------------------------------------------------------------
# 5. receivables
# ------------------------------------------------------------------------------------------------
def _refresh_ar(con, items: pl.DataFrame, now: datetime, rep: BillingReport) -> None:
    """Recompute the open items ``items`` (item_id) from what the tables say (never incremented in place: a rerun
    gives the same rows)."""
    if items.height == 0:
        return
    with registered(con, items.select("item_id").unique()) as k:
        ar = con.execute(f"""
            WITH base AS (
                SELECT invoice_id AS item_id, 'invoice' AS kind, customer_id, currency, total AS amount,
                       invoice_date, due_date FROM core.invoices SEMI JOIN {k} ON invoice_id = {k}.item_id
                UNION ALL
                SELECT invoice_id, 'opening', customer_id, currency, amount_open, invoice_date, due_date
                FROM ref.open_items SEMI JOIN {k} ON invoice_id = {k}.item_id),
            cr AS (SELECT invoice_id AS item_id, sum(total) AS credited FROM core.credit_notes
                   SEMI JOIN {k} ON invoice_id = {k}.item_id GROUP BY 1),
            pa AS (SELECT a.item_id, sum(a.amount) AS paid,
                          sum(a.amount) FILTER (WHERE NOT p.cleared) AS in_payment
                   FROM core.payment_allocations a JOIN core.payments p USING (payment_id)
                   SEMI JOIN {k} USING (item_id) GROUP BY 1),
            wo AS (SELECT item_id, sum(amount) AS written_off FROM core.write_offs SEMI JOIN {k} USING (item_id)
                   GROUP BY 1)
            SELECT b.*, coalesce(credited, 0)::DECIMAL(18, 2) AS credited, coalesce(paid, 0)::DECIMAL(18, 2) AS paid,
                   coalesce(in_payment, 0)::DECIMAL(18, 2) AS in_payment,
                   coalesce(written_off, 0)::DECIMAL(18, 2) AS written_off
            FROM base b LEFT JOIN cr USING (item_id) LEFT JOIN pa USING (item_id) LEFT JOIN wo USING (item_id)
        """).pl()  # noqa: S608
    if ar.height == 0:
        return
    ar = ar.with_columns((pl.col("amount") - pl.col("credited") - pl.col("paid") - pl.col("written_off"))
                         .cast(MONEY).alias("residual"))
    ar = ar.with_columns(payment_state_expr().alias("payment_state"),
                         pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at"))
    ar = conform(ar, AROpenItemModel)
    old = select_keys(con, "core.ar_open_items", ar.select("item_id")).drop("updated_at")
    changed = ar.join(conform(old.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("updated_at")),
                              AROpenItemModel).drop("updated_at"),
                      on=[c for c in ar.columns if c != "updated_at"], how="anti", nulls_equal=True)
    if changed.height:
        with transaction(con):
            replace_keys(con, "core.ar_open_items", changed.select("item_id"), changed)
    rep.open_items += changed.height


def payment_state_expr() -> pl.Expr:
    """not_paid | partial | in_payment | paid | over_paid | written_off from an open item's amounts."""
    due = pl.col("amount") - pl.col("credited")
    settled = pl.col("paid") + pl.col("written_off")
    return (pl.when(pl.col("paid") > due).then(pl.lit("over_paid"))
            .when((settled >= due) & (pl.col("written_off") > 0) & (pl.col("paid") < due)).then(pl.lit("written_off"))
            .when((settled >= due) & (pl.col("in_payment") > 0)).then(pl.lit("in_payment"))
            .when(settled >= due).then(pl.lit("paid"))
            .when(pl.col("paid") > 0).then(pl.lit("partial"))
            .otherwise(pl.lit("not_paid")))


def receivables(con) -> pl.DataFrame:
    """The open items the credit check reads (``ref.open_items``' columns): our receivables with something still
    owed, and the opening items billing has not taken over yet (before its first run)."""
    return con.execute("""
        SELECT item_id AS invoice_id, customer_id, residual AS amount_open, currency, invoice_date, due_date
        FROM core.ar_open_items WHERE residual > 0 AND customer_id IS NOT NULL
        UNION ALL
        SELECT invoice_id, customer_id, amount_open, currency, invoice_date, due_date FROM ref.open_items o
        WHERE NOT EXISTS (SELECT 1 FROM core.ar_open_items a WHERE a.item_id = o.invoice_id)
        ORDER BY 1""").pl()


