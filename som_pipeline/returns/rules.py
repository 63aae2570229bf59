"""Return rules: per-channel policies, requests judged into RMAs, receipts judged against the RMAs. Pure, vectorised.

Policies (:class:`ReturnPolicy`, :data:`DEFAULT_POLICIES`, :func:`policies_from_frame`)
-------------------------------------------------------------------------------------
A policy is looked up like billing's: the customer's own row of ``ref.return_policies`` (channel, customer_id),
else the channel's row (customer_id ``'*'``), else :data:`DEFAULT_POLICIES` for the channel, else
:data:`DEFAULT_POLICY`. The defaults:

| channels | window_days | restocking_fee_rate | refund_shipping_on_fault | non_returnable |
|---|---|---|---|---|
| shopify, amazon, csv (consumer) | 30 | 0 | true | Hazmat |
| edi, b2b_portal (B2B) | 14 | 0.15 | true | Hazmat |

- **Window**: a request is in time when ``requested_at <= delivered_at + window_days`` (``delivered_at``: the
  line's last delivery). The boundary instant itself is **inside** (inclusive); one microsecond later is
  ``RETURN_WINDOW_CLOSED``.
- **Restocking fee**: ``restocking_fee_rate`` applies only when the reason is **not** the seller's fault
  (:data:`SELLER_FAULT`: DAMAGED, WRONG_ITEM, DEFECTIVE, NOT_AS_DESCRIBED); the money is
  :func:`som_pipeline.returns.money.refund_lines`'.
- **Shipping refund** (decided here, computed in :mod:`.money`): the order's shipping charge is refunded only
  when ``refund_shipping_on_fault`` and the return that **completes** the order (after it every billed unit of
  every item line of the order is returned) has a seller-fault reason. A partial return never refunds shipping.
- **Non-returnable**: a line whose product category is in ``non_returnable_categories`` (case-insensitive) is
  ``ITEM_NOT_RETURNABLE``.

The policy frame (:data:`POLICY_SCHEMA`): channel, customer_id ('*' = every customer of the channel),
window_days, restocking_fee_rate (RATE), refund_shipping_on_fault, non_returnable_categories (list of text).

Requests -> RMAs (:func:`judge_requests`)
-----------------------------------------
``requests``: :data:`~.readers.REQUEST_SCHEMA` (one or more files' requests). ``line_facts``: order_id,
channel_order_ref, channel, customer_id, line_no, channel_line_ref, sku, category, delivered_qty, returned_qty
(units of the line accepted for return before this batch), delivered_at (the line's last delivery; null: not
delivered). ``now``: the decision time (``decided_at``).

1. **Order**: ``order_ref`` is our ``order_id`` or a ``channel_order_ref`` (a channel's own document looks only
   at that channel's orders, :data:`SOURCE_CHANNEL`: a Shopify refund at ``shopify``, an Amazon returns report
   row at ``amazon``). None or several orders: ``UNKNOWN_ORDER_LINE``.
2. **Line**: by ``line_no`` when given, else ``channel_line_ref``, else ``sku`` (a SKU on several lines of the
   order is ambiguous: ``UNKNOWN_ORDER_LINE``, give the line number).
3. ``DUPLICATE_RETURN_REQUEST``: the same request_id for the same order line again in the batch (the first by
   requested_at, source_file, location stands). Across batches the caller drops request ids it already has.
4. ``RETURN_NOT_DELIVERED``: nothing of the line delivered yet (a refund before delivery is a cancellation).
5. ``ITEM_NOT_RETURNABLE`` and 6. ``RETURN_WINDOW_CLOSED``: not for channel-decided refunds (``status =
   'refunded'``: Shopify already paid the money back; it is recorded, never re-judged on window or category).
7. ``RETURN_QTY_EXCEEDS_DELIVERED``: per order line, requests in order of ``requested_at`` (then request_id,
   source_file, location) are accepted while ``returned_qty + Σ accepted earlier in the batch + quantity <=
   delivered_qty``; a request that does not fit is refused and takes nothing, so a later smaller request may
   still fit (the exact greedy rule; each round is vectorised, one round per refused request of a line).

Accepted rows are RMA lines (:data:`ACCEPTED_COLUMNS`): ``rma_id = 'RMA-' + sha256(request_id)[:12]`` (upper
case hex) -- one RMA per request -- and ``rma_line_no`` = the rank of the order line (order_id, line_no) among
the request's lines (stable under shuffles; a refused line leaves its number unused). ``status`` is
``authorised`` (to be received) or ``refunded`` (channel-decided). Refused rows keep the request's columns plus
order_id / order_line_no (when resolved), reason_code and message.

Receipts (:func:`judge_receipts`)
---------------------------------
``receipts``: :data:`~.readers.RECEIPT_SCHEMA`; ``rmas``: rma_id, rma_line_no, sku, quantity (authorised),
received_qty (received before this batch; null = 0). Per RMA line, receipts in order of received_at then
receipt_id: ``matched = min(quantity, authorised - received before - matched earlier)``.

- ``UNKNOWN_RMA``: no such RMA (or no such line of it): no movement, the units are held for a person.
- ``WRONG_ITEM_RECEIVED``: the SKU received is not the RMA line's: no movement, held.
- ``OVER_RECEIVED``: the units beyond the authorisation: held (exception with their quantity); the matched part
  moves.
- ``SHORT_RECEIVED``: after the batch an RMA line touched by it has fewer units than authorised: one exception
  with the difference, ``closed = true`` when one of its receipts says ``final`` (nothing more expected), else
  false (still open, reported so that it is seen).

Every received unit is either matched (and moved) or in an exception: ``Σ quantity = Σ matched + Σ held``.
Movements (:data:`MOVEMENT_COLUMNS`) for matched units, per grade: ``restock`` -> ``return_receipt`` (+q) at
the warehouse; ``refurbish`` -> ``return_receipt`` (+q) at ``<warehouse_id>-REFURB`` (the refurbishment
location); ``scrap`` -> a ``return_receipt`` (+q) **followed by** a ``scrap`` (-q) at the warehouse (``step`` 1
then 2): the unit came back on the books and was written off, the ledger shows both. ``source_doc`` = rma_id,
``source_line`` = ``<rma line>:<first 12 of receipt_id>`` (a movement id stays unique per receipt).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl

from som_pipeline.fulfilment.scans import first_problem
from som_pipeline.hashing import sha256_series
from som_pipeline.money import RATE
from som_pipeline.reasons import REASONS as ALL_REASONS

# Reason codes this package emits that reasons.py does not list yet (the integrator moves them there). Codes it
# also uses that exist: MISSING_FIELD, BAD_QUANTITY, BAD_LINE_NO, BAD_DATE, BAD_AMOUNT, DUPLICATE_LINE,
# UNSUPPORTED_DOCUMENT, INVALID_JSON, EMPTY_FILE, BAD_ENCODING, UNREADABLE_FILE, CSV_*.
#: This stage's reason codes (their texts live in :data:`som_pipeline.reasons.REASONS`, the one table).
REASONS: dict[str, str] = {k: ALL_REASONS[k] for k in (
    "BAD_RETURN_REASON", "BAD_RETURN_GRADE", "UNKNOWN_ORDER_LINE", "RETURN_NOT_DELIVERED", "ITEM_NOT_RETURNABLE",
    "RETURN_WINDOW_CLOSED", "RETURN_QTY_EXCEEDS_DELIVERED", "DUPLICATE_RETURN_REQUEST", "UNKNOWN_RMA",
    "WRONG_ITEM_RECEIVED", "OVER_RECEIVED", "SHORT_RECEIVED")}

SELLER_FAULT = ("DAMAGED", "WRONG_ITEM", "DEFECTIVE", "NOT_AS_DESCRIBED")
CHANNEL_DECIDED = "refunded"
#: A channel's own document names an order of that channel only (its references are the channel's).
SOURCE_CHANNEL = {"shopify_refund": "shopify", "amazon_fba_return": "amazon", "amazon_mfn_return": "amazon"}
REFURB_SUFFIX = "-REFURB"


@dataclass(frozen=True)
class ReturnPolicy:
    """One channel's (or customer's) return policy; the defaults are the consumer channels'."""

    window_days: int = 30
    restocking_fee_rate: Decimal = Decimal("0")  # on the net credited, when the reason is not the seller's fault
    refund_shipping_on_fault: bool = True  # shipping back when a seller-fault return completes the order
    non_returnable_categories: tuple[str, ...] = field(default=("Hazmat",))


CONSUMER = ReturnPolicy()
B2B = ReturnPolicy(window_days=14, restocking_fee_rate=Decimal("0.15"))
DEFAULT_POLICY = CONSUMER
DEFAULT_POLICIES: dict[str, ReturnPolicy] = {
    "shopify": CONSUMER, "amazon": CONSUMER, "csv": CONSUMER, "edi": B2B, "b2b_portal": B2B,
}

POLICY_SCHEMA: dict[str, Any] = {
    "channel": pl.String, "customer_id": pl.String, "window_days": pl.Int64, "restocking_fee_rate": RATE,
    "refund_shipping_on_fault": pl.Boolean, "non_returnable_categories": pl.List(pl.String),
}
_POLICY_COLS = ("window_days", "restocking_fee_rate", "refund_shipping_on_fault", "non_returnable_categories")


def policy_frame(policies: Mapping[str | tuple[str, str], ReturnPolicy]) -> pl.DataFrame:
    """A policy frame (:data:`POLICY_SCHEMA`) from ``{channel: policy}`` or ``{(channel, customer_id): policy}``."""
    rows = []
    for key, p in policies.items():
        channel, customer = (key, "*") if isinstance(key, str) else key
        rows.append({"channel": channel, "customer_id": customer, "window_days": p.window_days,
                     "restocking_fee_rate": Decimal(p.restocking_fee_rate),
                     "refund_shipping_on_fault": p.refund_shipping_on_fault,
                     "non_returnable_categories": list(p.non_returnable_categories)})
    return pl.DataFrame(rows, schema=POLICY_SCHEMA)


def policies_from_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``ref.return_policies`` (channel, customer_id, window_days, restocking_fee_rate, refund_shipping_on_fault,
    non_returnable_categories as ``'|'``-separated text) -> :data:`POLICY_SCHEMA`. A missing customer_id is '*';
    an empty category list is none; blanks around names are dropped."""
    cats = pl.col("non_returnable_categories").cast(pl.String).fill_null("")
    return df.select(
        pl.col("channel").cast(pl.String),
        pl.col("customer_id").cast(pl.String).fill_null("*") if "customer_id" in df.columns
        else pl.lit("*").alias("customer_id"),
        pl.col("window_days").cast(pl.Int64),
        pl.col("restocking_fee_rate").cast(pl.String).str.to_decimal(scale=6).cast(RATE)
        if df.schema["restocking_fee_rate"] == pl.String else pl.col("restocking_fee_rate").cast(RATE),
        pl.col("refund_shipping_on_fault").cast(pl.Boolean),
        cats.str.split("|").list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        .alias("non_returnable_categories"),
    ).cast(POLICY_SCHEMA)


def resolve_policies(keys: pl.DataFrame, policies: pl.DataFrame) -> pl.DataFrame:
    """``keys`` (channel, customer_id, ...) + the policy columns: own row, else channel '*', else the defaults."""
    own = policies.filter(pl.col("customer_id") != "*").select(
        "channel", "customer_id", *[pl.col(c).alias(f"_c_{c}") for c in _POLICY_COLS])
    chan = policies.filter(pl.col("customer_id") == "*").unique("channel", keep="last").select(
        "channel", *[pl.col(c).alias(f"_h_{c}") for c in _POLICY_COLS])
    dflt = policy_frame(DEFAULT_POLICIES).select("channel", *[pl.col(c).alias(f"_d_{c}") for c in _POLICY_COLS])
    g = policy_frame({"*": DEFAULT_POLICY}).row(0, named=True)
    out = (keys.join(own.unique(["channel", "customer_id"], keep="last"), on=["channel", "customer_id"], how="left",
                     maintain_order="left")
           .join(chan, on="channel", how="left", maintain_order="left")
           .join(dflt, on="channel", how="left", maintain_order="left"))
    return out.with_columns(
        pl.coalesce(f"_c_{c}", f"_h_{c}", f"_d_{c}", pl.lit(g[c], dtype=POLICY_SCHEMA[c])).alias(c)
        for c in _POLICY_COLS
    ).drop([f"_{p}_{c}" for p in "chd" for c in _POLICY_COLS])


# ------------------------------------------------------------------------------------------------
# requests -> RMAs
# ------------------------------------------------------------------------------------------------
FACT_SCHEMA: dict[str, Any] = {
    "order_id": pl.String, "channel_order_ref": pl.String, "channel": pl.String, "customer_id": pl.String,
    "line_no": pl.Int64, "channel_line_ref": pl.String, "sku": pl.String, "category": pl.String,
    "delivered_qty": pl.Int64, "returned_qty": pl.Int64, "delivered_at": pl.Datetime("us", "UTC"),
}
ACCEPTED_COLUMNS = ("rma_id", "rma_line_no", "request_id", "source", "status", "order_id", "line_no", "channel",
                    "customer_id", "sku", "category", "quantity", "reason", "seller_fault", "requested_at",
                    "delivered_at", "return_by", "window_days", "restocking_fee_rate", "refund_shipping_on_fault",
                    "exchange_sku", "customer_note", "restock_type", "channel_amount", "channel_tax",
                    "refund_amount", "refund_id", "decided_at", "source_file", "location")
_ORDER_KEYS = ["requested_at", "request_id", "source_file", "location"]


@dataclass
class Judged:
    accepted: pl.DataFrame  # RMA lines: ACCEPTED_COLUMNS
    refused: pl.DataFrame  # REQUEST_SCHEMA + order_id, order_line_no, reason_code, message


def _resolve_lines(req: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """Per request row (``_i``): ``_n_orders``, ``_n_lines`` and, when both are 1, the line's facts (``_f_*``)."""
    orders = facts.select("order_id", "channel_order_ref", "channel").unique()
    keys = req.select("_i", "order_ref", "source")
    by_id = keys.join(orders.select("order_id", "channel").unique(), left_on="order_ref", right_on="order_id",
                      how="inner").with_columns(pl.col("order_ref").alias("order_id"))
    by_ref = keys.join(orders.filter(pl.col("channel_order_ref").is_not_null()),
                       left_on="order_ref", right_on="channel_order_ref", how="inner")
    cand = (pl.concat([d.select("_i", "source", "order_id", "channel") for d in (by_id, by_ref)])
            .filter(pl.col("source").replace_strict(SOURCE_CHANNEL, default=None).is_null()
                    | (pl.col("channel") == pl.col("source").replace_strict(SOURCE_CHANNEL, default=None)))
            .unique(["_i", "order_id"]))
    n_orders = cand.group_by("_i").agg(pl.len().alias("_n_orders"), pl.col("order_id").first().alias("_order"))
    one = n_orders.filter(pl.col("_n_orders") == 1).select("_i", pl.col("_order").alias("order_id"))
    r = req.select("_i", pl.col("line_no").alias("_r_line"), pl.col("sku").alias("_r_sku"),
                   pl.col("channel_line_ref").alias("_r_ref")).join(one, on="_i")
    f = facts.select([pl.col(c).alias(f"_f_{c}") if c != "order_id" else pl.col(c) for c in FACT_SCHEMA])
    match = (pl.when(pl.col("_r_line").is_not_null()).then(pl.col("_f_line_no") == pl.col("_r_line"))
             .when(pl.col("_r_ref").is_not_null()).then(pl.col("_f_channel_line_ref") == pl.col("_r_ref"))
             .otherwise(pl.col("_f_sku") == pl.col("_r_sku")))
    lines = r.join(f, on="order_id").filter(match.fill_null(False)).with_columns(pl.len().over("_i").alias("_n_lines"))
    counts = lines.group_by("_i").agg(pl.len().alias("_n_lines"))
    out = (req.select("_i").join(n_orders.select("_i", "_n_orders"), on="_i", how="left", maintain_order="left")
           .join(counts, on="_i", how="left", maintain_order="left")
           .join(lines.filter(pl.col("_n_lines") == 1).drop("_r_line", "_r_sku", "_r_ref", "_n_lines"), on="_i",
                 how="left", maintain_order="left"))
    return out.with_columns(pl.col("_n_orders").fill_null(0), pl.col("_n_lines").fill_null(0))


def judge_requests(requests: pl.DataFrame, line_facts: pl.DataFrame, policies: pl.DataFrame,
                   now: datetime) -> Judged:
    """Requests -> accepted RMA lines + refused requests (rules in the module doc). ``policies``:
    :data:`POLICY_SCHEMA` (:func:`policies_from_frame` / :func:`policy_frame`; may be empty: the defaults)."""
    facts = line_facts.select(list(FACT_SCHEMA)).cast(FACT_SCHEMA).with_columns(
        pl.col("returned_qty").fill_null(0), pl.col("delivered_qty").fill_null(0))
    req = requests.with_row_index("_i")
    res = _resolve_lines(req, facts)
    df = req.join(res, on="_i", how="left", maintain_order="left")
    df = df.with_columns(pl.col("_f_channel").alias("channel"), pl.col("_f_customer_id").alias("customer_id"))
    df = resolve_policies(df, policies.cast(POLICY_SCHEMA))
    decided = pl.col("status") == CHANNEL_DECIDED
    line_key = pl.concat_str([pl.col("order_id"), pl.col("_f_line_no").cast(pl.String).str.zfill(10)],
                             separator="\x1f")
    df = df.with_columns(
        line_key.alias("_key"),
        (pl.col("_f_delivered_at") + pl.duration(days=pl.col("window_days"))).alias("return_by"),
        pl.col("non_returnable_categories").list.eval(pl.element().str.to_lowercase())
        .list.contains(pl.col("_f_category").str.to_lowercase()).fill_null(False).alias("_not_returnable"),
    )
    dup_rank = pl.struct(_ORDER_KEYS).rank("ordinal").over("request_id", "_key")
    df = df.with_columns(pl.when(pl.col("_key").is_not_null()).then(dup_rank).alias("_dup"))
    code, msg = first_problem([
        (pl.col("_n_orders") == 0, "UNKNOWN_ORDER_LINE",
         pl.format("no order {} (neither our order id nor a channel order reference{})", pl.col("order_ref"),
                   pl.when(pl.col("source").is_in(list(SOURCE_CHANNEL))).then(
                       pl.lit(" of ") + pl.col("source").replace_strict(SOURCE_CHANNEL, default=None))
                   .otherwise(pl.lit("")))),
        (pl.col("_n_orders") > 1, "UNKNOWN_ORDER_LINE",
         pl.format("order reference {} names {} orders: give our order id", pl.col("order_ref"), pl.col("_n_orders"))),
        (pl.col("_n_lines") == 0, "UNKNOWN_ORDER_LINE",
         pl.format("order {} has no line {}", pl.col("order_ref"),
                   pl.coalesce(pl.col("line_no").cast(pl.String), pl.lit("with channel line id ") + pl.col(
                       "channel_line_ref"), pl.lit("with SKU ") + pl.col("sku")))),
        (pl.col("_n_lines") > 1, "UNKNOWN_ORDER_LINE",
         pl.format("SKU {} is on {} lines of order {}: give the line number", pl.col("sku"), pl.col("_n_lines"),
                   pl.col("order_ref"))),
        (pl.col("_dup") > 1, "DUPLICATE_RETURN_REQUEST",
         pl.format("request {} names order {} line {} again in this batch: the first stands", pl.col("request_id"),
                   pl.col("order_id"), pl.col("_f_line_no"))),
        ((pl.col("_f_delivered_qty") <= 0) | pl.col("_f_delivered_at").is_null(), "RETURN_NOT_DELIVERED",
         pl.format("nothing of order {} line {} is delivered yet", pl.col("order_id"), pl.col("_f_line_no"))),
        (~decided & pl.col("_not_returnable"), "ITEM_NOT_RETURNABLE",
         pl.format("{} is in category {}, not returnable on channel {}", pl.col("_f_sku"), pl.col("_f_category"),
                   pl.col("channel"))),
        (~decided & (pl.col("requested_at") > pl.col("return_by")), "RETURN_WINDOW_CLOSED",
         pl.format("requested {} after the window closed {} (delivered {} + {} days)",
                   pl.col("requested_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   pl.col("return_by").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   pl.col("_f_delivered_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pl.col("window_days"))),
    ])
    df = _quantity_check(df.with_columns(code.alias("reason_code"), msg.alias("message")))

    ok = df.filter(pl.col("reason_code").is_null())
    rank = pl.col("_key").rank("dense").over("request_id").cast(pl.Int64)
    ok = ok.with_columns(
        (pl.lit("RMA-") + sha256_series(pl.col("request_id"), ok).str.slice(0, 12).str.to_uppercase()).alias("rma_id"),
        pl.col("status").replace({"requested": "authorised"}).alias("status"),
        pl.col("_f_line_no").alias("line_no"), pl.col("_f_sku").alias("sku"), pl.col("_f_category").alias("category"),
        pl.col("reason").is_in(SELLER_FAULT).fill_null(False).alias("seller_fault"),
        pl.col("_f_delivered_at").alias("delivered_at"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("decided_at"),
    )
    # the line number within the request: over all its resolved lines (refused ones keep their number unused)
    numbers = (df.filter(pl.col("_key").is_not_null()).select("request_id", "_key").unique()
               .with_columns(rank.alias("rma_line_no")))
    accepted = (ok.join(numbers, on=["request_id", "_key"], how="left")
                .sort("rma_id", "rma_line_no", *_ORDER_KEYS).select(ACCEPTED_COLUMNS))
    refused = (df.filter(pl.col("reason_code").is_not_null())
               .with_columns(pl.col("_f_line_no").alias("order_line_no"))
               .sort(*_ORDER_KEYS, "order_ref", "line_no", "sku", "channel_line_ref", nulls_last=True)
               .select(*requests.columns, "order_id", "order_line_no", "reason_code", "message"))
    return Judged(accepted, refused)


def _quantity_check(df: pl.DataFrame) -> pl.DataFrame:
    """RETURN_QTY_EXCEEDS_DELIVERED, greedily by request time per order line (vectorised rounds: each refuses the
    first request of a line that no longer fits; the next round recomputes without it)."""
    df = df.with_row_index("_j")
    live = df.filter(pl.col("reason_code").is_null()).select(
        "_j", "_key", *_ORDER_KEYS, "quantity", "_f_delivered_qty", "_f_returned_qty"
    ).sort("_key", *_ORDER_KEYS)
    refused: list[pl.DataFrame] = []
    while live.height:
        live = live.with_columns(pl.col("quantity").cum_sum().over("_key").alias("_cum"))
        left = pl.col("_f_delivered_qty") - pl.col("_f_returned_qty")
        over = live.filter(pl.col("_cum") > left).group_by("_key").agg(pl.all().first())
        if over.height == 0:
            break
        refused.append(over.select("_j", "quantity", "_f_delivered_qty", "_f_returned_qty",
                                   (pl.col("_cum") - pl.col("quantity")).alias("_before")))
        live = live.join(over.select("_j"), on="_j", how="anti").drop("_cum")
    if not refused:
        return df.drop("_j")
    out = pl.concat(refused).with_columns(
        pl.lit("RETURN_QTY_EXCEEDS_DELIVERED").alias("_qcode"),
        pl.format("{} unit(s) requested, {} left to return (delivered {}, returned before {}, accepted earlier in "
                  "this batch {})", pl.col("quantity"),
                  pl.max_horizontal(pl.col("_f_delivered_qty") - pl.col("_f_returned_qty") - pl.col("_before"),
                                    pl.lit(0)),
                  pl.col("_f_delivered_qty"), pl.col("_f_returned_qty"), pl.col("_before")).alias("_qmsg"),
    ).select("_j", "_qcode", "_qmsg")
    return (df.join(out, on="_j", how="left", maintain_order="left")
            .with_columns(pl.coalesce("reason_code", "_qcode").alias("reason_code"),
                          pl.coalesce("message", "_qmsg").alias("message"))
            .drop("_j", "_qcode", "_qmsg"))


# ------------------------------------------------------------------------------------------------
# receipts
# ------------------------------------------------------------------------------------------------
MOVEMENT_COLUMNS = ("warehouse_id", "sku", "quantity", "qty_delta", "kind", "step", "reason", "source_doc",
                    "source_line", "occurred_at", "receipt_id")
EXCEPTION_COLUMNS = ("receipt_id", "rma_id", "line_no", "sku", "expected_sku", "quantity", "reason_code",
                     "message", "closed", "warehouse_id", "received_at")
RECEIPT_ACCEPTED_COLUMNS = ("receipt_id", "rma_id", "line_no", "sku", "quantity", "matched_qty", "grade",
                            "received_at", "warehouse_id", "note", "final", "source_file", "location")


@dataclass
class ReceiptOutcome:
    movements: pl.DataFrame  # MOVEMENT_COLUMNS
    exceptions: pl.DataFrame  # EXCEPTION_COLUMNS
    accepted: pl.DataFrame  # RECEIPT_ACCEPTED_COLUMNS: receipts with matched units


def judge_receipts(receipts: pl.DataFrame, rmas: pl.DataFrame) -> ReceiptOutcome:
    """Receipts against their RMA lines -> stock movements, exceptions, accepted receipts (module doc)."""
    rm = rmas.select(pl.col("rma_id").cast(pl.String), pl.col("rma_line_no").cast(pl.Int64).alias("line_no"),
                     pl.col("sku").cast(pl.String).alias("expected_sku"),
                     pl.col("quantity").cast(pl.Int64).alias("authorised"),
                     (pl.col("received_qty").cast(pl.Int64) if "received_qty" in rmas.columns
                      else pl.lit(0, pl.Int64)).fill_null(0).alias("received_before")).unique(["rma_id", "line_no"])
    known_rma = rm.select("rma_id").unique().with_columns(pl.lit(True).alias("_rma_known"))
    df = (receipts.join(rm, on=["rma_id", "line_no"], how="left")
          .join(known_rma, on="rma_id", how="left")
          .sort("rma_id", "line_no", "received_at", "receipt_id"))
    unknown = pl.col("authorised").is_null()
    wrong = ~unknown & (pl.col("sku") != pl.col("expected_sku"))
    fits = ~unknown & ~wrong
    df = df.with_columns(pl.when(fits).then(pl.col("quantity")).otherwise(0).alias("_fit_q"))
    df = df.with_columns((pl.col("_fit_q").cum_sum().over("rma_id", "line_no") - pl.col("_fit_q")).alias("_earlier"))
    room = pl.max_horizontal(pl.col("authorised") - pl.col("received_before") - pl.col("_earlier"), pl.lit(0))
    df = df.with_columns(pl.when(fits).then(pl.min_horizontal(pl.col("quantity"), room)).otherwise(0)
                         .cast(pl.Int64).alias("matched_qty"))
    held = (pl.col("quantity") - pl.col("matched_qty")).alias("quantity")
    exc_code = (pl.when(unknown).then(pl.lit("UNKNOWN_RMA")).when(wrong).then(pl.lit("WRONG_ITEM_RECEIVED"))
                .otherwise(pl.lit("OVER_RECEIVED")))
    exc_msg = (pl.when(unknown & pl.col("_rma_known").is_null())
               .then(pl.format("no RMA {}: {} unit(s) of {} held aside", pl.col("rma_id"), pl.col("quantity"),
                               pl.col("sku")))
               .when(unknown).then(pl.format("RMA {} has no line {}: {} unit(s) of {} held aside", pl.col("rma_id"),
                                            pl.col("line_no"), pl.col("quantity"), pl.col("sku")))
               .when(wrong).then(pl.format("received {} unit(s) of {}, the RMA line authorised {}: held aside",
                                           pl.col("quantity"), pl.col("sku"), pl.col("expected_sku")))
               .otherwise(pl.format("{} unit(s) beyond the {} authorised ({} received before): held aside",
                                    pl.col("quantity") - pl.col("matched_qty"), pl.col("authorised"),
                                    pl.col("received_before") + pl.col("_earlier"))))
    per_receipt = (df.filter(pl.col("quantity") > pl.col("matched_qty"))
                   .select("receipt_id", "rma_id", "line_no", "sku", "expected_sku", held, exc_code.alias("reason_code"),
                           exc_msg.alias("message"), pl.lit(None, pl.Boolean).alias("closed"), "warehouse_id",
                           "received_at"))
    touched = df.filter(fits).group_by("rma_id", "line_no").agg(
        pl.col("expected_sku").first(), pl.col("authorised").first(), pl.col("received_before").first(),
        pl.col("matched_qty").sum().alias("_matched"), pl.col("final").any().alias("closed"),
        pl.col("receipt_id").last(), pl.col("sku").first(), pl.col("warehouse_id").last(),
        pl.col("received_at").last())
    short = (touched.with_columns((pl.col("authorised") - pl.col("received_before") - pl.col("_matched"))
                                  .alias("quantity"))
             .filter(pl.col("quantity") > 0)
             .select("receipt_id", "rma_id", "line_no", "sku", "expected_sku", "quantity",
                     pl.lit("SHORT_RECEIVED").alias("reason_code"),
                     pl.format("{} of {} authorised unit(s) received: {} missing ({})",
                               pl.col("received_before") + pl.col("_matched"), pl.col("authorised"),
                               pl.col("quantity"), pl.when(pl.col("closed")).then(pl.lit("closed: final receipt"))
                               .otherwise(pl.lit("still open"))).alias("message"),
                     "closed", "warehouse_id", "received_at"))
    exceptions = (pl.concat([per_receipt, short.cast(per_receipt.schema)])
                  .sort("rma_id", "line_no", "received_at", "receipt_id", "reason_code").select(EXCEPTION_COLUMNS))

    matched = df.filter(pl.col("matched_qty") > 0)
    src_line = pl.format("{}:{}", pl.col("line_no"), pl.col("receipt_id").str.slice(0, 12))
    base = matched.select(
        "sku", pl.col("matched_qty").alias("quantity"), pl.col("rma_id").alias("source_doc"),
        src_line.alias("source_line"), pl.col("received_at").alias("occurred_at"), "receipt_id", "grade",
        "warehouse_id")
    receipt_moves = base.with_columns(
        pl.when(pl.col("grade") == "refurbish").then(pl.col("warehouse_id") + REFURB_SUFFIX)
        .otherwise(pl.col("warehouse_id")).alias("warehouse_id"),
        pl.col("quantity").alias("qty_delta"), pl.lit("return_receipt").alias("kind"), pl.lit(1).alias("step"),
        pl.format("customer return ({})", pl.col("grade")).alias("reason"))
    scrap_moves = base.filter(pl.col("grade") == "scrap").with_columns(
        (-pl.col("quantity")).alias("qty_delta"), pl.lit("scrap").alias("kind"), pl.lit(2).alias("step"),
        pl.lit("customer return graded scrap: written off").alias("reason"))
    movements = (pl.concat([receipt_moves.select(MOVEMENT_COLUMNS), scrap_moves.select(MOVEMENT_COLUMNS)])
                 .with_columns(pl.col("step").cast(pl.Int64))
                 .sort("occurred_at", "source_doc", "source_line", "step").select(MOVEMENT_COLUMNS))
    accepted = matched.sort("rma_id", "line_no", "received_at", "receipt_id").select(RECEIPT_ACCEPTED_COLUMNS)
    return ReceiptOutcome(movements, exceptions, accepted)
