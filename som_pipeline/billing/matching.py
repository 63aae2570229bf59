"""Payment matching: bank receipts against open receivables (pure Polars; no Dagster, no DuckDB).

:func:`match_payments` decides, for every received payment, which open invoices it pays, how much of each,
what is written off, what is held as customer credit and what waits in suspense for a human; every automatic
decision carries a score (0..1) and a human sentence. :func:`evaluate` measures allocations against a truth.

Inputs (money is ``pl.Decimal(18, 2)``, never float; converted to integer cents internally and back exactly)
- ``payments``: ``payment_id`` str (unique), ``currency`` str, ``amount`` Decimal (> 0: money received; a row
  that is not positive goes to suspense as ``INVALID_AMOUNT``), ``value_date`` Date, ``payer_name`` str|null,
  ``payer_account`` str|null (IBAN / account, normalised upper without spaces; normalised again here),
  ``remittance`` str|null (free text), ``end_to_end_id`` str|null.
- ``open_items``: ``invoice_id`` str (unique), ``customer_id`` str, ``currency`` str, ``residual`` Decimal (> 0,
  still open; other rows are ignored), ``invoice_date`` Date, ``due_date`` Date, ``order_refs`` list[str] (our
  order id, the channel's order ref, the customer's PO number: any of them may be quoted by a payer).
- ``customer_accounts``: ``customer_id``, ``account`` (``ref.customer_bank_accounts``).
- ``customers``: ``customer_id``, ``name``.
- ``decisions`` (optional; manual decisions read from a file, applied on the next run): ``payment_id``,
  ``action`` (``match`` | ``credit`` | ``write_off`` | ``refund``), ``invoice_id`` str|null, ``amount``
  Decimal|null (null = whatever is left), ``note``; optionally ``customer_id`` (the customer of a ``credit``
  that names no invoice).
- ``cfg``: :class:`MatchConfig`.

Outputs (:class:`MatchResult`)
- ``allocations``: payment_id, invoice_id, customer_id, amount, method (``REFERENCE`` | ``REFERENCE_FUZZY`` |
  ``AMOUNT_CUSTOMER`` | ``SUBSET`` | ``PARTIAL`` | ``MANUAL``), score, explanation.
- ``write_offs``: payment_id, invoice_id, amount, reason (``SHORT_PAYMENT_TOLERANCE`` | ``MANUAL``).
- ``unapplied``: payment_id, customer_id, amount, reason (``OVERPAYMENT`` | ``MANUAL_CREDIT`` | ``REFUND``:
  money a decision sends back to the payer; customer_id may be null).
- ``suspense``: payment_id, amount, reason (``LOW_CONFIDENCE`` | ``NO_CANDIDATE`` | ``MANUAL_REMAINDER`` |
  ``MANUAL_DECISION_ERROR`` | ``INVALID_AMOUNT``), candidates (JSON text: a list of at most
  ``cfg.suspense_top_n`` objects ``{invoice_id, customer_id, score, why}``, best first).
- ``decision_errors``: payment_id, action, invoice_id, amount, message (a decision that cannot be applied; never
  raises).

Invariants: per payment, sum(allocations) + sum(unapplied) + suspense amount == amount; per invoice
sum(allocations) + sum(write-offs) <= residual; nothing negative, no zero rows (but an ``INVALID_AMOUNT``
suspense row, which carries the amount as received). The output does not depend on
the order of the input rows (everything is ranked by explicit keys; outputs are sorted).

The rules, in the order they run (each later stage sees the residuals the earlier ones left)
0. **Manual decisions** first: they override everything for their payment (its leftover, if any, waits in
   suspense as ``MANUAL_REMAINDER``); an invalid decision goes to ``decision_errors`` and its payment, when none
   of its decisions applied, to suspense (``MANUAL_DECISION_ERROR``) rather than to the automatic matcher.
1. **Reference.** The remittance text and the end-to-end id are upper-cased and *folded* (``O->0 I->1 L->1
   S->5 B->8``); the same fold is applied to our invoice numbers and order refs, so OCR-style confusions compare
   equal without guessing which letters sit in a digit context. Invoice numbers are read with a regex tolerant
   of prefixes (``INV`` / ``CN`` / none), separators and a missing block of leading zeros, and joined on the key
   (type, entity, year, int(sequence)) of each open item; any other quoted reference (order refs, PO numbers,
   non-standard invoice ids) is a token, or 2-4 adjacent tokens glued, joined on the folded alphanumeric form
   (``cfg.min_ref_len`` characters at least). Both are equi-joins. Only a payment without any exact hit gets the
   fuzzy check: its invoice-looking tokens against the invoice numbers of the payer's customer and of the open
   items of exactly the payment's amount (``rapidfuzz`` Levenshtein, ``cfg.max_ref_edits`` at most, computed
   pairwise with ``process.cpdist``).
   Score = strength (invoice number 0.95, order ref 0.90, fuzzy 0.90 - 0.05 x edits, -0.10 if the closest
   token is ambiguous) + amount (+0.05 the referenced residuals sum to the amount, 0 short within tolerance,
   -0.10 partial or overpaid) + payer (+0.05 the payer is the invoices' customer, -0.15 another customer).
   When the referenced set is more than the amount and no tolerance applies, an exact subset of it (rule 3) is
   taken instead. Accepted payments are then applied in (value_date, payment_id) order, each invoice oldest
   first, each allocation <= the residual left by earlier payments: several payments accumulate on one invoice;
   a short payment within tolerance writes the rest off; an overpayment (or a payment of an already paid
   invoice) leaves the excess as customer credit; a partial payment beyond tolerance leaves the invoice open
   (``PARTIAL``). Invoices shared by several payments are applied by a loop over just those rows; the others by
   cumulative sums.
2. **Amount + customer.** The customer is the owner of ``payer_account`` (confidence 1.0), else the best
   fuzzy match of the payer name (legal forms dropped; an exact normalised name first; the other distinct names
   are compared with the customer names sharing a word or the first three letters -- blocking, see
   :func:`_fuzzy_names` -- scored in one ``rapidfuzz.process.cpdist`` call with ``token_sort_ratio`` (a full
   ``cdist`` of 32k x 20k names took 45 s in the benchmark); identified at ``cfg.name_threshold`` and a margin
   ``cfg.name_margin`` over the second best customer; confidence = similarity). An open item of that customer
   with exactly the amount (0.90, 0.85 if there are several: the oldest is taken), else one within the
   short-payment tolerance (0.85), each x the customer confidence. Payments compete for items in
   (value_date, payment_id) order: rounds of "each payment proposes its best item, each item keeps the earliest
   proposer".
3. **One payment for several invoices.** Among the customer's open items of at most the amount, the oldest
   ``cfg.max_subset_candidates`` (by due date, invoice date, id), an exact subset summing to the amount with at
   most ``cfg.max_subset_size`` items: **meet-in-the-middle** over integer cents (all subset sums of each half,
   numpy, 2 x 2^(n/2); exact and exhaustive). The preferred subset has the fewest items (large subsets of a big
   pool hit an amount by chance), then the oldest (lexicographic on age). Score 0.88 if it is the only one of its
   size, else 0.80, x the customer confidence. A per-payment loop, only over the payments that reach this stage.
   Then a customer with a single open item that the payment exceeds: the item is paid, the excess is credit
   (0.80 x confidence).
4. Anything else, or below ``cfg.auto_threshold``, goes to **suspense** with its best candidates (reference
   hits, the identified or weakly matched customer's items nearest the amount, items of exactly the amount).
5. **Currency** is part of every join: a EUR payment never pays a USD invoice.

Short-payment tolerance: a payment short of the referenced / matched residual by ``d`` with ``0 < d <=
cfg.short_pay_abs`` and ``d <= cfg.short_pay_rel x residual`` pays the invoice; ``d`` is written off
(``SHORT_PAYMENT_TOLERANCE``) or, with ``cfg.write_off_short_pay = False``, left open as a deduction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from som_pipeline.money import MONEY

METHODS = ("REFERENCE", "REFERENCE_FUZZY", "AMOUNT_CUSTOMER", "SUBSET", "PARTIAL", "MANUAL")
ACTIONS = ("match", "credit", "write_off", "refund")

#: confusable letters folded to the digit they are read as (both sides of every reference comparison)
FOLD = {"O": "0", "Q": "0", "I": "1", "L": "1", "S": "5", "B": "8"}
#: an invoice number in folded text: type prefix (optional), entity (2 alnum + 2 digits), year, sequence
INV_RE = (
    r"(1NV|CN)?[^A-Z0-9]{0,3}([A-Z0-9]{2}[0-9]{2})[^A-Z0-9]{0,3}(20[0-9]{2})[^A-Z0-9]{0,3}([0-9]{1,6})(?:[^0-9]|$)"
)
#: a token: alphanumeric runs joined by inner separators (``112-1234567-1234567``, ``SO/2026/17``)
TOKEN_RE = r"[A-Z0-9]+(?:[-/._#][A-Z0-9]+)*"
#: legal forms dropped before comparing names
LEGAL_FORMS = (
    "INC INCORPORATED LLC LTD LIMITED CORP CORPORATION CO COMPANY GMBH AG SA SAS SARL BV NV PLC LLP LP KG "
    "OY AB AS SPA SRL PTY THE"
).split()

# scores (see the module docstring)
S_INVOICE, S_ORDER_REF, S_FUZZY, S_FUZZY_EDIT, S_AMBIGUOUS = 0.95, 0.90, 0.90, 0.05, 0.10
ADJ_EXACT, ADJ_OFF, ADJ_PAYER_OK, ADJ_PAYER_OTHER = 0.05, -0.10, 0.05, -0.15
S_AMOUNT_UNIQUE, S_AMOUNT_SEVERAL, S_AMOUNT_TOL = 0.90, 0.85, 0.85
S_SUBSET_UNIQUE, S_SUBSET_SEVERAL, S_SINGLE_OVERPAY = 0.88, 0.80, 0.80


@dataclass(frozen=True)
class MatchConfig:
    """Matching knobs (defaults are the documented policy)."""

    #: a decision at or above this score is applied automatically; below it the payment goes to suspense
    auto_threshold: float = 0.80
    #: short-payment tolerance: the shortfall must be <= this amount ...
    short_pay_abs: Decimal = Decimal("1.00")
    #: ... and <= this share of the residual due
    short_pay_rel: Decimal = Decimal("0.005")
    #: write the tolerated shortfall off (True) or keep it open on the invoice as a deduction (False)
    write_off_short_pay: bool = True
    #: at most this many invoices paid by one payment found by subset search
    max_subset_size: int = 10
    #: the subset search looks at the customer's oldest n open items (<= the amount); cost 2 x 2^(n/2)
    max_subset_candidates: int = 24
    #: payer-name similarity (token_sort_ratio / 100) identifying a customer ...
    name_threshold: float = 0.88
    #: ... when the next best customer is at least this much less similar
    name_margin: float = 0.03
    #: weaker name matches still propose candidates for suspense
    name_candidate_floor: float = 0.60
    #: fuzzy reference: at most this many edits between a quoted token and an invoice number
    max_ref_edits: int = 2
    #: quoted tokens / order refs shorter than this (folded, alphanumeric) are not references
    min_ref_len: int = 6
    #: an amount shared by more open items than this proposes none of them (fuzzy and suspense candidates)
    max_amount_candidates: int = 50
    #: candidates kept per suspense row
    suspense_top_n: int = 3


@dataclass
class MatchResult:
    """The frames :func:`match_payments` returns (see the module docstring)."""

    allocations: pl.DataFrame
    write_offs: pl.DataFrame
    unapplied: pl.DataFrame
    suspense: pl.DataFrame
    decision_errors: pl.DataFrame


ALLOC_SCHEMA = {
    "payment_id": pl.String, "invoice_id": pl.String, "customer_id": pl.String, "amount": MONEY,
    "method": pl.String, "score": pl.Float64, "explanation": pl.String,
}
WRITE_OFF_SCHEMA = {"payment_id": pl.String, "invoice_id": pl.String, "amount": MONEY, "reason": pl.String}
UNAPPLIED_SCHEMA = {"payment_id": pl.String, "customer_id": pl.String, "amount": MONEY, "reason": pl.String}
SUSPENSE_SCHEMA = {"payment_id": pl.String, "amount": MONEY, "reason": pl.String, "candidates": pl.String}
ERROR_SCHEMA = {
    "payment_id": pl.String, "action": pl.String, "invoice_id": pl.String, "amount": MONEY, "message": pl.String,
}
# internal (cents) row shapes
_A = {"payment_id": pl.String, "invoice_id": pl.String, "customer_id": pl.String, "cents": pl.Int64,
      "method": pl.String, "score": pl.Float64, "explanation": pl.String}
_W = {"payment_id": pl.String, "invoice_id": pl.String, "cents": pl.Int64, "reason": pl.String}
_U = {"payment_id": pl.String, "customer_id": pl.String, "cents": pl.Int64, "reason": pl.String}
_C = {"payment_id": pl.String, "invoice_id": pl.String, "customer_id": pl.String, "score": pl.Float64,
      "why": pl.String}


# --------------------------------------------------------------------------------------------------- helpers
def _cents(e: pl.Expr) -> pl.Expr:
    """Decimal money -> Int64 cents (exact)."""
    return (e.cast(pl.Decimal(18, 2)) * 100).cast(pl.Int64)


def _money(e: pl.Expr) -> pl.Expr:
    """Int64 cents -> Decimal(18, 2) (exact)."""
    return (e.cast(pl.Decimal(18, 0)) * pl.lit(Decimal("0.01"), pl.Decimal(18, 2))).cast(MONEY)


def _fmt(e: pl.Expr) -> pl.Expr:
    """Cents as text with two decimals, for explanations."""
    return _money(e).cast(pl.String)


def _fold(e: pl.Expr) -> pl.Expr:
    """Upper-case and fold OCR-confusable letters to digits."""
    return e.str.to_uppercase().str.replace_many(list(FOLD), list(FOLD.values()))


def _alnum(e: pl.Expr) -> pl.Expr:
    return e.str.replace_all(r"[^A-Z0-9]", "")


def _norm_account(e: pl.Expr) -> pl.Expr:
    return e.str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")


def _norm_name(e: pl.Expr) -> pl.Expr:
    """Upper, dots dropped (``L.L.C.``), other punctuation to spaces, legal forms dropped, spaces collapsed."""
    legal = r"\b(?:" + "|".join(LEGAL_FORMS) + r")\b"
    return (
        e.str.to_uppercase()
        .str.replace_all(r"&", " AND ")
        .str.replace_all(r"\.", "")
        .str.replace_all(r"[^A-Z0-9 ]", " ")
        .str.replace_all(legal, " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _inv_key(groups: pl.Expr) -> pl.Expr:
    """(type, entity, year, int(sequence)) of an INV_RE match, as one string."""
    return pl.concat_str(
        [groups.struct.field("1").fill_null("1NV"), groups.struct.field("2"), groups.struct.field("3"),
         groups.struct.field("4").cast(pl.Int64).cast(pl.String)],
        separator="|",
    )


def _inv_canon(groups: pl.Expr) -> pl.Expr:
    """The folded full invoice number (sequence zero-padded to 6): what fuzzy distances compare."""
    return pl.concat_str(
        [groups.struct.field("1").fill_null("1NV"), groups.struct.field("2"), groups.struct.field("3"),
         groups.struct.field("4").str.zfill(6)]
    )


def _tolerated(short: pl.Expr, due: pl.Expr, cfg: MatchConfig) -> pl.Expr:
    """0 < shortfall within both tolerances (integer arithmetic)."""
    num, den = cfg.short_pay_rel.as_integer_ratio()
    abs_c = int(cfg.short_pay_abs * 100)
    return (short > 0) & (short <= abs_c) & (short * den <= due * num)


def _tolerated_py(short: int, due: int, cfg: MatchConfig) -> bool:
    num, den = cfg.short_pay_rel.as_integer_ratio()
    return 0 < short <= int(cfg.short_pay_abs * 100) and short * den <= due * num


def _empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def _cat(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    frames = [f.select(list(schema)).cast(schema) for f in frames if f.height]
    return pl.concat(frames) if frames else _empty(schema)


# ---------------------------------------------------------------------------------------------- subset sums
def subset_exact(values: list[int], target: int, max_size: int) -> tuple[list[int], int] | None:
    """The preferred subset of ``values`` (positive cents, oldest first) summing exactly to ``target``.

    Meet-in-the-middle: every subset sum of each half (numpy; 2^(n/2) each), the right half sorted, each left sum
    looks up ``target - sum``. Among the solutions of at most ``max_size`` items the fewest items win, then the
    oldest (the item at index 0 is the most significant bit of a mask: the larger mask is preferred). Returns the
    indices and how many solutions have that size, or None.
    """
    n = len(values)
    if n == 0 or target <= 0 or n > 62:
        return None
    h = n // 2

    def half(vals: list[int], offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sums = np.zeros(1, np.int64)
        masks = np.zeros(1, np.int64)
        sizes = np.zeros(1, np.int64)
        for j, v in enumerate(vals):
            bit = np.int64(1) << np.int64(n - 1 - (offset + j))
            keep = sums + v <= target
            sums = np.concatenate([sums, sums[keep] + v])
            masks = np.concatenate([masks, masks[keep] | bit])
            sizes = np.concatenate([sizes, sizes[keep] + 1])
        ok = sizes <= max_size
        return sums[ok], masks[ok], sizes[ok]

    ls, lm, lz = half(values[:h], 0)
    rs, rm, rz = half(values[h:], h)
    order = np.argsort(rs, kind="stable")
    rs, rm, rz = rs[order], rm[order], rz[order]
    need = target - ls
    lo = np.searchsorted(rs, need, "left")
    hi = np.searchsorted(rs, need, "right")
    cnt = hi - lo
    hit = np.nonzero(cnt)[0]
    if hit.size == 0:
        return None
    reps = cnt[hit]
    li = np.repeat(hit, reps)
    starts = np.repeat(lo[hit], reps)
    offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    ri = starts + offs
    size = lz[li] + rz[ri]
    ok = size <= max_size
    if not ok.any():
        return None
    li, ri, size = li[ok], ri[ok], size[ok]
    best = size.min()
    at = size == best
    masks = lm[li[at]] | rm[ri[at]]
    m = int(masks.max())
    return [i for i in range(n) if m >> (n - 1 - i) & 1], int(at.sum())


# ------------------------------------------------------------------------------------------------ customers
def _block_keys(df: pl.DataFrame, idx: str) -> pl.DataFrame:
    """Blocking keys of normalised names: each word, and the first 3 letters of the name without spaces."""
    return df.select(
        idx,
        pl.concat_list(
            pl.col("nname").str.split(" "),
            pl.format("^{}", pl.col("nname").str.replace_all(" ", "").str.slice(0, 3)),
        ).alias("key"),
    ).explode("key").filter(pl.col("key").str.len_chars() > 1).unique()


def _fuzzy_names(queries: pl.DataFrame, names: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Best and second-best customer name per query name (``token_sort_ratio``, 0..100).

    Blocking: a query is compared only with the names sharing a word or the first three letters (a word common to
    more than max(500, 5 %) of the names does not block); the pairs are scored in one vectorised
    ``rapidfuzz.process.cpdist`` call. A name misspelt in every word and in its first letters is not found.
    """
    schema = {"nname": pl.String, "name_id": pl.String, "best": pl.Float64, "second": pl.Float64,
              "name_n": pl.UInt32}
    if queries.height == 0 or names.height == 0:
        return _empty(schema)
    q = queries.select("nname").sort("nname").with_row_index("qi")
    ch = names.sort("nname").with_row_index("ci")
    ck = _block_keys(ch, "ci")
    ck = ck.filter(pl.len().over("key") <= max(500, ch.height // 20))
    pairs = _block_keys(q, "qi").join(ck, on="key").select("qi", "ci").unique().sort("qi", "ci")
    if pairs.height == 0:
        return _empty(schema)
    floor = cfg.name_candidate_floor * 100
    qn = np.asarray(q["nname"].to_list(), dtype=object)[pairs["qi"].to_numpy()]
    cn = np.asarray(ch["nname"].to_list(), dtype=object)[pairs["ci"].to_numpy()]
    score = process.cpdist(qn, cn, scorer=fuzz.token_sort_ratio, score_cutoff=floor, workers=-1)
    pairs = pairs.with_columns(pl.Series("score", np.asarray(score, dtype=np.float64))).filter(
        pl.col("score") >= floor
    )
    top = pairs.sort(["qi", "score", "ci"], descending=[False, True, False]).group_by("qi", maintain_order=True).agg(
        pl.col("ci").first(), pl.col("score").first().alias("best"),
        pl.col("score").get(1, null_on_oob=True).fill_null(0.0).alias("second"),
    )
    return top.join(q, on="qi").join(ch, on="ci").select(
        "nname", "name_id", "best", "second", "name_n"
    ).cast(schema)


def _identify_customers(pay: pl.DataFrame, accounts: pl.DataFrame, customers: pl.DataFrame,
                        cfg: MatchConfig) -> pl.DataFrame:
    """payment_id -> cust_id, cust_conf, cust_how (identified), weak_id, weak_conf (suspense candidates)."""
    acc = (
        accounts.select(pl.col("customer_id").cast(pl.String), _norm_account(pl.col("account")).alias("acct"))
        .drop_nulls().unique()
        .group_by("acct").agg(pl.col("customer_id").min().alias("acc_id"), pl.len().alias("acc_n"))
    )
    by_acct = pay.select("payment_id", "acct").join(acc, on="acct", how="left").select(
        "payment_id", pl.when(pl.col("acc_n") == 1).then(pl.col("acc_id")).alias("acc_id")
    )
    cust = customers.select(pl.col("customer_id").cast(pl.String), _norm_name(pl.col("name")).alias("nname"))
    cust = cust.filter(pl.col("nname").is_not_null() & (pl.col("nname") != ""))
    names = cust.group_by("nname").agg(pl.col("customer_id").min().alias("name_id"), pl.len().alias("name_n"))
    need = pay.join(by_acct.filter(pl.col("acc_id").is_not_null()), on="payment_id", how="anti")
    qn = need.select("nname").drop_nulls().filter(pl.col("nname") != "").unique().sort("nname")
    # exact normalised name first; the rest by vectorised fuzzy scoring against every distinct customer name
    exact = qn.join(names, on="nname", how="inner").select(
        "nname", "name_id", pl.lit(100.0).alias("best"), pl.lit(0.0).alias("second"), "name_n"
    )
    fz = _fuzzy_names(qn.join(names, on="nname", how="anti"), names, cfg)
    by_name = pl.concat([exact.cast(fz.schema), fz])
    out = pay.select("payment_id", "nname").join(by_acct, on="payment_id", how="left").join(
        by_name, on="nname", how="left"
    )
    name_ok = (
        pl.col("name_id").is_not_null() & (pl.col("name_n") == 1)
        & (pl.col("best") >= cfg.name_threshold * 100)
        & (pl.col("second") <= pl.col("best") - cfg.name_margin * 100)
    )
    return out.select(
        "payment_id",
        pl.coalesce(pl.col("acc_id"), pl.when(name_ok).then(pl.col("name_id"))).alias("cust_id"),
        pl.when(pl.col("acc_id").is_not_null()).then(1.0)
        .when(name_ok).then(pl.col("best") / 100).alias("cust_conf"),
        pl.when(pl.col("acc_id").is_not_null()).then(pl.lit("account"))
        .when(name_ok).then(pl.lit("name")).alias("cust_how"),
        pl.when(pl.col("acc_id").is_null() & (pl.col("name_n") == 1)).then(pl.col("name_id")).alias("weak_id"),
        pl.when(pl.col("acc_id").is_null() & (pl.col("name_n") == 1)).then(pl.col("best") / 100).alias("weak_conf"),
    )


# ------------------------------------------------------------------------------------------ manual decisions
_ACTION_RANK = {"match": 0, "write_off": 1, "credit": 2, "refund": 2}


def _apply_decisions(decisions: pl.DataFrame | None, pay: pl.DataFrame, items: pl.DataFrame) -> dict:
    """Apply the manual decisions (a loop: they are a small, human-made file). Never raises."""
    out = {"alloc": [], "wo": [], "unapp": [], "susp": [], "errors": [], "handled": set(), "used": {}}
    if decisions is None or decisions.height == 0:
        return out
    cols = decisions.columns
    d = decisions.select(
        pl.col("payment_id").cast(pl.String),
        pl.col("action").cast(pl.String).str.strip_chars().str.to_lowercase().alias("action"),
        (pl.col("invoice_id").cast(pl.String) if "invoice_id" in cols else pl.lit(None, pl.String)).alias("invoice_id"),
        (_cents(pl.col("amount")) if "amount" in cols else pl.lit(None, pl.Int64)).alias("cents"),
        (pl.col("note").cast(pl.String) if "note" in cols else pl.lit(None, pl.String)).alias("note"),
        (pl.col("customer_id").cast(pl.String) if "customer_id" in cols else pl.lit(None, pl.String))
        .alias("customer_id"),
    )
    d = d.join(pay.select("payment_id", "pord"), on="payment_id", how="left").with_columns(
        pl.col("action").replace_strict(_ACTION_RANK, default=9, return_dtype=pl.Int64).alias("arank"),
        pl.col("cents").is_null().alias("rest"),
    ).sort(
        ["pord", "payment_id", "rest", "arank", "invoice_id", "cents", "note"], nulls_last=True
    )
    named_p = pay.join(d.select("payment_id").unique(), on="payment_id", how="semi")
    p_info = {r["payment_id"]: r for r in named_p.select("payment_id", "currency", "amt", "cust_id").to_dicts()}
    named_i = items.join(d.select("invoice_id").drop_nulls().unique(), on="invoice_id", how="semi")
    i_info = {r["invoice_id"]: r for r in named_i.select("invoice_id", "customer_id", "currency", "res").to_dicts()}
    left_p = {k: v["amt"] for k, v in p_info.items()}
    left_i = {k: v["res"] for k, v in i_info.items()}
    applied: set[str] = set()
    failed: set[str] = set()

    def money(c: int) -> str:
        return f"{Decimal(c) / 100:.2f}"

    for r in d.iter_rows(named=True):
        pid, act, iid, cents, note = r["payment_id"], r["action"], r["invoice_id"], r["cents"], r["note"]

        def err(msg: str, pid=pid, act=act, iid=iid, cents=cents) -> None:
            out["errors"].append((pid, act, iid, cents, msg))
            failed.add(pid)

        if pid not in p_info:
            err(f"payment {pid} is not among this run's payments")
            continue
        if act not in ACTIONS:
            err(f"action {act!r} is not one of {', '.join(ACTIONS)}")
            continue
        if cents is not None and cents <= 0:
            err("the amount must be positive")
            continue
        p = p_info[pid]
        inv = None
        if iid is not None:
            inv = i_info.get(iid)
            if inv is None:
                err(f"invoice {iid} is not open (unknown, or nothing left to pay)")
                continue
        if act in ("match", "write_off") and inv is None:
            err(f"a {act} decision needs an invoice_id")
            continue
        if act in ("match", "credit", "refund") and inv is not None and inv["currency"] != p["currency"]:
            err(f"invoice {iid} is in {inv['currency']}, the payment in {p['currency']}")
            continue
        note_txt = f": {note}" if note else ""
        if act == "write_off":
            amount = left_i[iid] if cents is None else cents
            if amount <= 0:
                err(f"nothing is left open on invoice {iid} to write off")
                continue
            if amount > left_i[iid]:
                err(f"write-off {money(amount)} exceeds what is open on invoice {iid} ({money(left_i[iid])})")
                continue
            left_i[iid] -= amount
            out["wo"].append((pid, iid, amount, "MANUAL"))
            applied.add(pid)
            continue
        amount = left_p[pid] if cents is None else cents
        if act == "match" and cents is None:
            amount = min(left_p[pid], left_i[iid])
        if amount <= 0:
            err(f"nothing is left of payment {pid} to {act}")
            continue
        if amount > left_p[pid]:
            err(f"amount {money(amount)} exceeds what is left of payment {pid} ({money(left_p[pid])})")
            continue
        if act == "match":
            if amount > left_i[iid]:
                err(f"amount {money(amount)} exceeds what is open on invoice {iid} ({money(left_i[iid])})")
                continue
            left_i[iid] -= amount
            out["alloc"].append((pid, iid, inv["customer_id"], amount, "MANUAL", 1.0,
                                 f"Manual decision: allocated {money(amount)} to invoice {iid}{note_txt}."))
        else:
            customer = r["customer_id"] or (inv["customer_id"] if inv else None) or p["cust_id"]
            if act == "credit" and customer is None:
                err("a credit needs a customer: name an invoice_id or a customer_id (the payer is not known)")
                continue
            out["unapp"].append((pid, customer, amount, "MANUAL_CREDIT" if act == "credit" else "REFUND"))
        left_p[pid] -= amount
        applied.add(pid)

    for pid in sorted(applied):
        if left_p[pid] > 0:
            out["susp"].append((pid, left_p[pid], "MANUAL_REMAINDER", "[]"))
    for pid in sorted((failed - applied) & set(p_info)):
        out["susp"].append((pid, left_p[pid], "MANUAL_DECISION_ERROR", "[]"))
    out["handled"] = (applied | failed) & set(p_info)
    out["used"] = {k: v["res"] - left_i[k] for k, v in i_info.items() if left_i[k] != v["res"]}
    return out


# --------------------------------------------------------------------------------------------- references
def _item_keys(items: pl.DataFrame, cfg: MatchConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(structured invoice keys, folded tokens) of the open items."""
    g = _fold(pl.col("invoice_id")).str.extract_groups(INV_RE)
    ik = items.select("invoice_id", "currency", g.alias("g")).filter(
        pl.col("g").struct.field("4").is_not_null()
    ).select("invoice_id", "currency", _inv_key(pl.col("g")).alias("key"))
    ids = items.select("invoice_id", "currency", _alnum(_fold(pl.col("invoice_id"))).alias("tok"),
                       pl.lit("invoice").alias("kind"))
    refs = items.select("invoice_id", "currency", pl.col("order_refs").alias("tok")).explode("tok").select(
        "invoice_id", "currency", _alnum(_fold(pl.col("tok"))).alias("tok"), pl.lit("order_ref").alias("kind")
    )
    tk = pl.concat([ids, refs]).filter(pl.col("tok").str.len_chars() >= cfg.min_ref_len).unique()
    return ik, tk


def _canon(items: pl.DataFrame) -> pl.Expr:
    g = _fold(pl.col("invoice_id")).str.extract_groups(INV_RE)
    return pl.when(g.struct.field("4").is_not_null()).then(_inv_canon(g)).otherwise(
        _alnum(_fold(pl.col("invoice_id")))
    )


def _reference_hits(todo: pl.DataFrame, items: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """(payment_id, invoice_id, strength, fuzzy, why): quoted references joined to the open items."""
    txt = todo.filter(pl.col("text").is_not_null() & (pl.col("text") != "")).select(
        "payment_id", "currency", "amt", "cust_id", "text"
    )
    ik, tk = _item_keys(items, cfg)
    # 1. invoice numbers read structurally
    found = txt.select("payment_id", "currency", pl.col("text").str.extract_all(INV_RE).alias("m")).explode("m")
    found = found.drop_nulls("m").with_columns(pl.col("m").str.extract_groups(INV_RE).alias("g")).select(
        "payment_id", "currency", _inv_key(pl.col("g")).alias("key"), _inv_canon(pl.col("g")).alias("canon")
    ).unique()
    h_inv = found.join(ik, on=["key", "currency"], how="inner").select(
        "payment_id", "invoice_id", pl.lit("invoice").alias("kind"), pl.lit(None, pl.String).alias("tok")
    )
    # 2. tokens and glued neighbours, on the folded alphanumeric form
    t = pl.col("text").str.extract_all(TOKEN_RE).list.eval(pl.element().str.replace_all(r"[^A-Z0-9]", ""))
    e = pl.element()
    grams = txt.select("payment_id", "currency", t.alias("t")).select(
        "payment_id", "currency",
        pl.concat_list(
            pl.col("t"),
            pl.col("t").list.eval(e + e.shift(-1)),
            pl.col("t").list.eval(e + e.shift(-1) + e.shift(-2)),
            pl.col("t").list.eval(e + e.shift(-1) + e.shift(-2) + e.shift(-3)),
        ).alias("tok"),
    ).explode("tok").filter(pl.col("tok").str.len_chars() >= cfg.min_ref_len).unique()
    h_tok = grams.join(tk, on=["tok", "currency"], how="inner").select("payment_id", "invoice_id", "kind", "tok")
    hits = pl.concat([h_inv, h_tok]).with_columns(
        pl.when(pl.col("kind") == "invoice").then(S_INVOICE).otherwise(S_ORDER_REF).alias("strength"),
        pl.lit(False).alias("fuzzy"),
        pl.when(pl.col("kind") == "invoice")
        .then(pl.format("the remittance quotes invoice {}", pl.col("invoice_id")))
        .otherwise(pl.format("the remittance quotes {}, an order reference of invoice {}", pl.col("tok"),
                             pl.col("invoice_id"))).alias("why"),
    ).sort("payment_id", "invoice_id", "strength", "why", descending=[False, False, True, False]).unique(
        ["payment_id", "invoice_id"], keep="first", maintain_order=True
    ).select("payment_id", "invoice_id", "strength", "fuzzy", "why")

    # 3. fuzzy: only payments without an exact hit; their invoice-looking tokens vs the invoice numbers of the
    #    payer's customer and of the open items of exactly the amount
    rest = txt.join(hits.select("payment_id").unique(), on="payment_id", how="anti")
    if rest.height == 0:
        return hits
    loose = grams.join(rest.select("payment_id"), on="payment_id", how="semi").filter(
        pl.col("tok").str.contains(r"^(1NV|CN)") & pl.col("tok").str.len_chars().is_between(12, 24)
    ).select("payment_id", pl.col("tok"))
    struct_tok = found.join(rest.select("payment_id"), on="payment_id", how="semi").select(
        "payment_id", pl.col("canon").alias("tok")
    )
    toks = pl.concat([loose, struct_tok]).unique()
    icanon = items.select("invoice_id", "customer_id", "currency", "res", _canon(items).alias("canon"))
    by_cust = rest.filter(pl.col("cust_id").is_not_null()).join(
        icanon, left_on=["cust_id", "currency"], right_on=["customer_id", "currency"], how="inner"
    ).select("payment_id", "invoice_id", "canon")
    amt_n = icanon.group_by("currency", "res").agg(pl.len().alias("n")).filter(
        pl.col("n") <= cfg.max_amount_candidates
    )
    by_amt = rest.join(amt_n, left_on=["currency", "amt"], right_on=["currency", "res"], how="semi").join(
        icanon, left_on=["currency", "amt"], right_on=["currency", "res"], how="inner"
    ).select("payment_id", "invoice_id", "canon")
    pairs = toks.join(pl.concat([by_cust, by_amt]).unique(), on="payment_id", how="inner").sort(
        "payment_id", "tok", "invoice_id"
    )
    if pairs.height == 0:
        return hits
    dist = process.cpdist(pairs["tok"].to_list(), pairs["canon"].to_list(), scorer=Levenshtein.distance,
                          score_cutoff=cfg.max_ref_edits, workers=-1)
    pairs = pairs.with_columns(pl.Series("d", np.asarray(dist, dtype=np.int64))).filter(
        pl.col("d") <= cfg.max_ref_edits
    ).join(todo.select("payment_id", "amt"), on="payment_id").join(
        items.select("invoice_id", "res"), on="invoice_id"
    )
    # per token: the closest invoices; a tie is broken by an exact amount, else it is ambiguous
    pairs = pairs.filter(pl.col("d") == pl.col("d").min().over("payment_id", "tok"))
    pairs = pairs.with_columns((pl.col("res") == pl.col("amt")).alias("fits"))
    pairs = pairs.filter(~pl.col("fits").any().over("payment_id", "tok") | pl.col("fits")).with_columns(
        (pl.len().over("payment_id", "tok") > 1).alias("amb")
    )
    fz = pairs.select(
        "payment_id", "invoice_id",
        (S_FUZZY - S_FUZZY_EDIT * pl.col("d") - pl.when(pl.col("amb")).then(S_AMBIGUOUS).otherwise(0.0))
        .alias("strength"),
        pl.lit(True).alias("fuzzy"),
        pl.format("the remittance quotes {} (as read: O/I/L/S/B folded to digits), {} edit(s) from invoice {}{}", pl.col("tok"), pl.col("d"),
                  pl.col("invoice_id"), pl.when(pl.col("amb")).then(pl.lit(" (one of several as close)"))
                  .otherwise(pl.lit(""))).alias("why"),
    ).sort("payment_id", "invoice_id", "strength", "why", descending=[False, False, True, False]).unique(
        ["payment_id", "invoice_id"], keep="first", maintain_order=True
    )
    return pl.concat([hits, fz])


def _payer_sentence() -> pl.Expr:
    return (
        pl.when(pl.col("payer_rel") == "same").then(
            pl.when(pl.col("cust_how") == "account").then(pl.lit("the payer's account belongs to the customer"))
            .otherwise(pl.format("the payer's name matches the customer ({})", pl.col("cust_conf").round(2)))
        )
        .when(pl.col("payer_rel") == "other").then(pl.format("but the payer looks like customer {}",
                                                             pl.col("cust_id")))
        .otherwise(pl.lit("the payer is not identified"))
    )


def _evaluate_references(hits: pl.DataFrame, todo: pl.DataFrame, items: pl.DataFrame,
                         cfg: MatchConfig) -> pl.DataFrame:
    """Per hit row: the payment's decision on its referenced set (restricted, subset), score, accepted."""
    h = hits.join(todo.select("payment_id", "pord", "amt", "cust_id", "cust_conf", "cust_how"), on="payment_id").join(
        items.select("invoice_id", "customer_id", "res", "iord"), on="invoice_id"
    )
    # the payer's own invoices win over other customers' when both are quoted
    own = pl.col("cust_id").is_not_null() & (pl.col("customer_id") == pl.col("cust_id"))
    h = h.filter(own | ~own.any().over("payment_id")).sort("pord", "iord")
    h = h.with_columns(pl.col("res").sum().over("payment_id").alias("due"), pl.len().over("payment_id").alias("n"))
    # several quoted invoices, more than the amount and no tolerance: an exact subset of them
    need = h.filter((pl.col("n") > 1) & (pl.col("amt") < pl.col("due"))
                    & ~_tolerated(pl.col("due") - pl.col("amt"), pl.col("due"), cfg))
    drop: list[tuple[str, str]] = []
    subset_of: dict[str, int] = {}
    for (pid,), g in need.group_by(["payment_id"], maintain_order=True):
        ids, vals = g["invoice_id"].to_list(), g["res"].to_list()
        found = subset_exact(vals, int(g["amt"][0]), cfg.max_subset_size)
        if found:
            keep = set(found[0])
            drop += [(pid, ids[i]) for i in range(len(ids)) if i not in keep]
            subset_of[pid] = len(ids)
    if drop:
        h = h.join(pl.DataFrame(drop, schema=["payment_id", "invoice_id"], orient="row"),
                   on=["payment_id", "invoice_id"], how="anti")
        h = h.with_columns(pl.col("res").sum().over("payment_id").alias("due"))
    quoted = pl.DataFrame({"payment_id": list(subset_of), "quoted": list(subset_of.values())},
                          schema={"payment_id": pl.String, "quoted": pl.Int64})
    h = h.join(quoted, on="payment_id", how="left")
    short = pl.col("due") - pl.col("amt")
    rel = (
        pl.when(short == 0).then(pl.lit("exact"))
        .when(_tolerated(short, pl.col("due"), cfg)).then(pl.lit("tolerance"))
        .when(short < 0).then(pl.lit("over"))
        .otherwise(pl.lit("partial"))
    )
    payer_rel = (
        pl.when(pl.col("cust_id").is_null()).then(pl.lit("unknown"))
        .when((pl.col("customer_id") == pl.col("cust_id")).all().over("payment_id")).then(pl.lit("same"))
        .otherwise(pl.lit("other"))
    )
    h = h.with_columns(rel.alias("rel"), payer_rel.alias("payer_rel"))
    score = (
        pl.col("strength").min().over("payment_id")
        + pl.when(pl.col("rel") == "exact").then(ADJ_EXACT).when(pl.col("rel") == "tolerance").then(0.0)
        .otherwise(ADJ_OFF)
        + pl.when(pl.col("payer_rel") == "same").then(ADJ_PAYER_OK).when(pl.col("payer_rel") == "other")
        .then(ADJ_PAYER_OTHER).otherwise(0.0)
    ).clip(0.0, 1.0).round(4)
    return h.with_columns(score.alias("score")).with_columns(
        (pl.col("score") >= cfg.auto_threshold).alias("accepted")
    )


def _waterfall(rows: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Apply accepted payments in (pord, iord) order: alloc, wo per row; due (at its turn), excess per payment.

    Payments sharing no invoice with another payment are applied with cumulative sums; the few that share an
    invoice (several payments for one invoice) by a loop over just their rows, in order.
    """
    rows = rows.sort("pord", "iord")
    shared = rows.group_by("invoice_id").agg(pl.len().alias("k")).filter(pl.col("k") > 1)
    seq_pay = rows.join(shared, on="invoice_id", how="semi").select("payment_id").unique()
    vec = rows.join(seq_pay, on="payment_id", how="anti")
    seq = rows.join(seq_pay, on="payment_id", how="semi")
    c = pl.col("res").cum_sum().over("payment_id")
    vec = vec.with_columns(c.alias("C"), pl.col("res").sum().over("payment_id").alias("due_now"))
    alloc = (pl.min_horizontal("amt", "C") - pl.min_horizontal(pl.col("amt"), pl.col("C") - pl.col("res"))).clip(0)
    vec = vec.with_columns(alloc.alias("alloc")).with_columns(
        pl.when(_tolerated(pl.col("due_now") - pl.col("amt"), pl.col("due_now"), cfg) & cfg.write_off_short_pay)
        .then(pl.col("res") - pl.col("alloc")).otherwise(0).alias("wo"),
        (pl.col("amt") - pl.col("due_now")).clip(0).alias("excess"),
    ).drop("C")
    if seq.height:
        left: dict[str, int] = {}
        allocs: list[int] = []
        wos: list[int] = []
        dues: list[int] = []
        excesses: list[int] = []
        pids = seq["payment_id"].to_list()
        iids = seq["invoice_id"].to_list()
        amts = seq["amt"].to_list()
        ress = seq["res"].to_list()
        i = 0
        while i < len(pids):
            j = i
            while j < len(pids) and pids[j] == pids[i]:
                left.setdefault(iids[j], ress[j])
                j += 1
            due = sum(left[iids[k]] for k in range(i, j))
            money = amts[i]
            for k in range(i, j):
                a = min(money, left[iids[k]])
                left[iids[k]] -= a
                money -= a
                allocs.append(a)
            tol = _tolerated_py(due - amts[i], due, cfg) and cfg.write_off_short_pay
            for k in range(i, j):
                w = left[iids[k]] if tol else 0
                left[iids[k]] -= w
                wos.append(w)
            dues += [due] * (j - i)
            excesses += [money] * (j - i)
            i = j
        seq = seq.with_columns(pl.Series("alloc", allocs, pl.Int64), pl.Series("wo", wos, pl.Int64),
                               pl.Series("due_now", dues, pl.Int64), pl.Series("excess", excesses, pl.Int64))
        return pl.concat([vec, seq.select(vec.columns)]).sort("pord", "iord")
    return vec


def _reference_stage(todo: pl.DataFrame, items: pl.DataFrame, cfg: MatchConfig) -> dict:
    hits = _reference_hits(todo, items, cfg)
    ev = _evaluate_references(hits, todo, items, cfg)
    acc = ev.filter(pl.col("accepted"))
    w = _waterfall(acc, cfg)
    short = pl.col("due_now") - pl.col("amt")
    partial = (short > 0) & ~_tolerated(short, pl.col("due_now"), cfg)
    w = w.with_columns(
        pl.when(partial).then(pl.lit("PARTIAL")).when(pl.col("fuzzy")).then(pl.lit("REFERENCE_FUZZY"))
        .otherwise(pl.lit("REFERENCE")).alias("method"),
        pl.when(pl.col("quoted").is_not_null())
        .then(pl.format(" (the amount is exactly {} of the {} quoted invoices)", pl.len().over("payment_id"),
                        pl.col("quoted")))
        .otherwise(pl.lit("")).alias("sub"),
    )
    outcome = (
        pl.when((short == 0) & (pl.col("excess") == 0)).then(pl.format("the payment of {} settles it",
                                                                        _fmt(pl.col("amt"))))
        .when(pl.col("excess") > 0).then(pl.format("overpaid by {}: held as customer credit", _fmt(pl.col("excess"))))
        .when(~partial & cfg.write_off_short_pay).then(pl.format("short by {} (within tolerance): written off",
                                                                  _fmt(short)))
        .when(~partial).then(pl.format("short by {} (within tolerance): kept open as a deduction", _fmt(short)))
        .otherwise(pl.format("partial payment: {} of {} stays open", _fmt(short), _fmt(pl.col("due_now"))))
    )
    expl = pl.format("{}{}; {}; {}.", pl.col("why"), pl.col("sub"), outcome, _payer_sentence())
    w = w.with_columns(expl.alias("explanation"))
    alloc = w.filter(pl.col("alloc") > 0).select(
        "payment_id", "invoice_id", "customer_id", pl.col("alloc").alias("cents"), "method", "score", "explanation"
    )
    wo = w.filter(pl.col("wo") > 0).select("payment_id", "invoice_id", pl.col("wo").alias("cents"),
                                           pl.lit("SHORT_PAYMENT_TOLERANCE").alias("reason"))
    unapp = w.filter(pl.col("excess") > 0).group_by("payment_id").agg(
        pl.coalesce(pl.col("cust_id"), pl.col("customer_id")).first().alias("customer_id"),
        pl.col("excess").first().alias("cents"),
    ).with_columns(pl.lit("OVERPAYMENT").alias("reason"))
    return {"alloc": alloc, "wo": wo, "unapp": unapp, "done": acc.select("payment_id").unique(), "cands": ev}


# ------------------------------------------------------------------------------------------ amount + customer
def _assign(pairs: pl.DataFrame, pref: list[str]) -> pl.DataFrame:
    """Unique (payment, item) pairs: rounds of 'each payment proposes its best item (``pref``), each item keeps
    the earliest proposer (``pord``)' until no pair is left."""
    won = []
    while pairs.height:
        best = pairs.sort(["pord", *pref]).group_by("payment_id", maintain_order=True).first()
        win = best.sort("pord").group_by("invoice_id", maintain_order=True).first()
        won.append(win)
        pairs = pairs.join(win.select("payment_id"), on="payment_id", how="anti").join(
            win.select("invoice_id"), on="invoice_id", how="anti"
        )
    return pl.concat(won) if won else pairs


def _cust_sentence() -> pl.Expr:
    return pl.when(pl.col("cust_how") == "account").then(
        pl.format("customer {} owns the payer's account", pl.col("customer_id"))
    ).otherwise(pl.format("the payer's name matches customer {} ({})", pl.col("customer_id"),
                          pl.col("cust_conf").round(2)))


def _amount_stage(todo: pl.DataFrame, items: pl.DataFrame, cfg: MatchConfig) -> dict:
    known = todo.filter(pl.col("cust_id").is_not_null())
    pairs = known.select("payment_id", "pord", "amt", "currency", "cust_id", "cust_conf", "cust_how").join(
        items.select("invoice_id", "customer_id", "currency", "res", "iord"),
        left_on=["cust_id", "currency"], right_on=["customer_id", "currency"], how="inner",
    ).with_columns(pl.col("cust_id").alias("customer_id"), (pl.col("res") - pl.col("amt")).alias("diff"))
    pairs = pairs.filter((pl.col("diff") == 0) | _tolerated(pl.col("diff"), pl.col("res"), cfg))
    pairs = pairs.with_columns((pl.col("diff") == 0).sum().over("payment_id").alias("n_exact"))
    base = (
        pl.when(pl.col("diff") > 0).then(S_AMOUNT_TOL)
        .when(pl.col("n_exact") == 1).then(S_AMOUNT_UNIQUE).otherwise(S_AMOUNT_SEVERAL)
    )
    pairs = pairs.with_columns((base * pl.col("cust_conf")).round(4).alias("score"))
    won = _assign(pairs.filter(pl.col("score") >= cfg.auto_threshold), ["diff", "iord"])
    what = (
        pl.when(pl.col("diff") > 0).then(
            pl.format("the payment of {} is {} short of invoice {} ({}) within tolerance: {}", _fmt(pl.col("amt")),
                      _fmt(pl.col("diff")), pl.col("invoice_id"), _fmt(pl.col("res")),
                      pl.lit("written off" if cfg.write_off_short_pay else "kept open as a deduction")))
        .when(pl.col("n_exact") == 1).then(pl.format("the payment of {} equals the open amount of invoice {}",
                                                     _fmt(pl.col("amt")), pl.col("invoice_id")))
        .otherwise(pl.format("the payment of {} equals the open amount of invoice {}, the oldest of {} such items",
                             _fmt(pl.col("amt")), pl.col("invoice_id"), pl.col("n_exact")))
    )
    won = won.with_columns(pl.format("{}; {}.", what, _cust_sentence()).alias("explanation"))
    alloc = won.select("payment_id", "invoice_id", "customer_id", pl.col("amt").alias("cents"),
                       pl.lit("AMOUNT_CUSTOMER").alias("method"), "score", "explanation")
    wo = won.filter((pl.col("diff") > 0) & cfg.write_off_short_pay).select(
        "payment_id", "invoice_id", pl.col("diff").alias("cents"), pl.lit("SHORT_PAYMENT_TOLERANCE").alias("reason")
    )
    return {"alloc": alloc, "wo": wo, "done": won.select("payment_id"), "cands": pairs}


def _subset_stage(todo: pl.DataFrame, items: pl.DataFrame, cfg: MatchConfig) -> dict:
    """Exact subsets of a customer's oldest open items, then a single open item overpaid (loop: the residue)."""
    known = todo.filter(pl.col("cust_id").is_not_null()).sort("pord")
    most = known.group_by(pl.col("cust_id").alias("customer_id"), "currency").agg(pl.col("amt").max().alias("most"))
    pool = items.join(most, on=["customer_id", "currency"], how="inner").filter(pl.col("res") <= pl.col("most"))
    pool = pool.sort("iord")
    n_open = dict(((c, k), n) for c, k, n in items.join(most, on=["customer_id", "currency"], how="semi").group_by(
        "customer_id", "currency").len().iter_rows())
    n_used: dict[tuple[str, str], int] = {}
    by_key: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
    for cid, cur, iord, iid, res in pool.select("customer_id", "currency", "iord", "invoice_id", "res").iter_rows():
        by_key.setdefault((cid, cur), []).append((iord, iid, res))
    used: set[str] = set()
    alloc, unapp = [], []
    for pid, amt, cur, cid, conf, how in known.select(
        "payment_id", "amt", "currency", "cust_id", "cust_conf", "cust_how"
    ).iter_rows():
        avail = [it for it in by_key.get((cid, cur), []) if it[1] not in used]
        who = f"customer {cid} owns the payer's account" if how == "account" else \
            f"the payer's name matches customer {cid} ({conf:.2f})"
        cands = [it for it in avail if it[2] <= amt][: cfg.max_subset_candidates]
        found = None
        if len(cands) >= 2 and sum(it[2] for it in cands) >= amt:
            found = subset_exact([it[2] for it in cands], amt, cfg.max_subset_size)
        if found and len(found[0]) >= 2:
            idx, n_sol = found
            score = round((S_SUBSET_UNIQUE if n_sol == 1 else S_SUBSET_SEVERAL) * conf, 4)
            if score >= cfg.auto_threshold:
                chosen = [cands[i] for i in idx]
                ids = ", ".join(it[1] for it in chosen)
                why = (f"the payment of {Decimal(amt) / 100:.2f} equals the sum of {len(chosen)} open invoices of "
                       f"the customer ({ids}), " + ("the only such combination of that size" if n_sol == 1 else
                                                    f"the oldest of {n_sol} such combinations")
                       + f" among its {len(cands)} oldest items; {who}.")
                n_used[(cid, cur)] = n_used.get((cid, cur), 0) + len(chosen)
                for it in chosen:
                    used.add(it[1])
                    alloc.append((pid, it[1], cid, it[2], "SUBSET", score, why))
                continue
        if len(avail) == 1 and n_open[(cid, cur)] - n_used.get((cid, cur), 0) == 1 and amt > avail[0][2]:
            score = round(S_SINGLE_OVERPAY * conf, 4)
            if score >= cfg.auto_threshold:
                iord, iid, res = avail[0]
                used.add(iid)
                n_used[(cid, cur)] = n_used.get((cid, cur), 0) + 1
                excess = amt - res
                why = (f"invoice {iid} ({Decimal(res) / 100:.2f}) is the customer's only open item and the payment "
                       f"of {Decimal(amt) / 100:.2f} exceeds it: {Decimal(excess) / 100:.2f} held as customer "
                       f"credit; {who}.")
                alloc.append((pid, iid, cid, res, "AMOUNT_CUSTOMER", score, why))
                unapp.append((pid, cid, excess, "OVERPAYMENT"))
    a = pl.DataFrame(alloc, schema=_A, orient="row")
    return {"alloc": a, "unapp": pl.DataFrame(unapp, schema=_U, orient="row"),
            "done": a.select("payment_id").unique()}


# -------------------------------------------------------------------------------------------------- suspense
def _suspense(left: pl.DataFrame, items: pl.DataFrame, ref_cands: pl.DataFrame, cfg: MatchConfig) -> pl.DataFrame:
    """Suspense rows with their best candidates (JSON text)."""
    parts = []
    if ref_cands.height:
        parts.append(ref_cands.join(left.select("payment_id"), on="payment_id", how="semi").select(
            "payment_id", "invoice_id", "customer_id", "score",
            pl.format("{}; score {} is below the threshold", pl.col("why"), pl.col("score")).alias("why"),
        ))
    who = left.with_columns(
        pl.coalesce("cust_id", "weak_id").alias("cid"), pl.coalesce("cust_conf", "weak_conf").alias("conf")
    ).filter(pl.col("cid").is_not_null())
    near = who.select("payment_id", "amt", "currency", "cid", "conf").join(
        items.select("invoice_id", "customer_id", "currency", "res", "iord"),
        left_on=["cid", "currency"], right_on=["customer_id", "currency"], how="inner",
    ).with_columns(
        (1 - ((pl.col("res") - pl.col("amt")).abs() / pl.max_horizontal("res", "amt")).clip(0, 1)).alias("close")
    )
    parts.append(near.select(
        "payment_id", "invoice_id", pl.col("cid").alias("customer_id"),
        (0.7 * pl.col("conf") * pl.col("close")).round(4).alias("score"),
        pl.format("open item of the payer's likely customer {} (payer match {}): {} open vs {} paid",
                  pl.col("cid"), pl.col("conf").round(2), _fmt(pl.col("res")), _fmt(pl.col("amt"))).alias("why"),
    ))
    amt_n = items.group_by("currency", "res").agg(pl.len().alias("n")).filter(
        pl.col("n") <= cfg.max_amount_candidates
    )
    same = left.select("payment_id", "amt", "currency").join(
        amt_n, left_on=["currency", "amt"], right_on=["currency", "res"], how="inner"
    ).join(items.select("invoice_id", "customer_id", "currency", "res"),
           left_on=["currency", "amt"], right_on=["currency", "res"], how="inner")
    parts.append(same.select(
        "payment_id", "invoice_id", "customer_id", (0.5 / pl.col("n")).round(4).alias("score"),
        pl.format("open for exactly the amount ({} item(s) are)", pl.col("n")).alias("why"),
    ))
    cands = pl.concat([p.cast(_C) for p in parts]).sort(
        ["payment_id", "score", "invoice_id", "why"], descending=[False, True, False, False]
    ).unique(["payment_id", "invoice_id"], keep="first", maintain_order=True)
    top = cands.group_by("payment_id", maintain_order=True).head(cfg.suspense_top_n)
    js = top.select(
        "payment_id", pl.struct("invoice_id", "customer_id", "score", "why").struct.json_encode().alias("j")
    ).group_by("payment_id", maintain_order=True).agg(pl.col("j").str.join(",").alias("j"))
    return left.select("payment_id", "amt").join(js, on="payment_id", how="left").select(
        "payment_id", pl.col("amt").alias("cents"),
        pl.when(pl.col("j").is_null()).then(pl.lit("NO_CANDIDATE")).otherwise(pl.lit("LOW_CONFIDENCE"))
        .alias("reason"),
        pl.format("[{}]", pl.col("j").fill_null("")).alias("candidates"),
    )


# ------------------------------------------------------------------------------------------------------ main
def _prepare_payments(payments: pl.DataFrame) -> pl.DataFrame:
    cols = payments.columns

    def opt(c: str) -> pl.Expr:
        return (pl.col(c).cast(pl.String) if c in cols else pl.lit(None, pl.String)).alias(c)

    text = pl.concat_str([pl.col("remittance"), pl.col("end_to_end_id")], separator=" ", ignore_nulls=True)
    return payments.select(
        pl.col("payment_id").cast(pl.String), pl.col("currency").cast(pl.String).str.to_uppercase(),
        _cents(pl.col("amount")).alias("amt"), pl.col("value_date"),
        opt("payer_name"), opt("payer_account"), opt("remittance"), opt("end_to_end_id"),
    ).sort(["value_date", "payment_id"], nulls_last=True).with_row_index("pord").with_columns(
        _norm_account(pl.col("payer_account")).alias("acct"),
        _norm_name(pl.col("payer_name")).alias("nname"),
        _fold(text).alias("text"),
    )


def _prepare_items(open_items: pl.DataFrame) -> pl.DataFrame:
    refs = (pl.col("order_refs") if "order_refs" in open_items.columns else pl.lit(None, pl.List(pl.String)))
    return open_items.select(
        pl.col("invoice_id").cast(pl.String), pl.col("customer_id").cast(pl.String),
        pl.col("currency").cast(pl.String).str.to_uppercase(), _cents(pl.col("residual")).alias("res"),
        "invoice_date", "due_date", refs.cast(pl.List(pl.String)).alias("order_refs"),
    ).filter(pl.col("res") > 0).sort(["due_date", "invoice_date", "invoice_id"], nulls_last=True).with_row_index(
        "iord"
    )


def _consume(items: pl.DataFrame, *frames: pl.DataFrame) -> pl.DataFrame:
    """Items with what the given allocation / write-off frames (cents) took off their residual."""
    used = pl.concat([f.select("invoice_id", "cents") for f in frames if f.height] or
                     [pl.DataFrame(schema={"invoice_id": pl.String, "cents": pl.Int64})])
    used = used.group_by("invoice_id").agg(pl.col("cents").sum().alias("used"))
    return items.join(used, on="invoice_id", how="left").with_columns(
        (pl.col("res") - pl.col("used").fill_null(0)).alias("res")
    ).drop("used").filter(pl.col("res") > 0)


def match_payments(payments: pl.DataFrame, open_items: pl.DataFrame, customer_accounts: pl.DataFrame,
                   customers: pl.DataFrame, decisions: pl.DataFrame | None = None,
                   cfg: MatchConfig | None = None) -> MatchResult:
    """Match received payments to open items (see the module docstring for the rules and the frames)."""
    cfg = cfg or MatchConfig()
    pay = _prepare_payments(payments)
    items = _prepare_items(open_items)
    pay = pay.join(_identify_customers(pay, customer_accounts, customers, cfg), on="payment_id", how="left")
    allocs: list[pl.DataFrame] = []
    wos: list[pl.DataFrame] = []
    unapps: list[pl.DataFrame] = []
    susps: list[pl.DataFrame] = []

    bad = pay.filter(pl.col("amt").is_null() | (pl.col("amt") <= 0))
    susps.append(bad.select("payment_id", pl.col("amt").alias("cents"), pl.lit("INVALID_AMOUNT").alias("reason"),
                            pl.lit("[]").alias("candidates")))
    todo = pay.join(bad, on="payment_id", how="anti")

    man = _apply_decisions(decisions, todo, items)
    m_alloc = pl.DataFrame(man["alloc"], schema=_A, orient="row")
    m_wo = pl.DataFrame(man["wo"], schema=_W, orient="row")
    allocs.append(m_alloc)
    wos.append(m_wo)
    unapps.append(pl.DataFrame(man["unapp"], schema=_U, orient="row"))
    susps.append(pl.DataFrame(man["susp"], schema={"payment_id": pl.String, "cents": pl.Int64,
                                                   "reason": pl.String, "candidates": pl.String}, orient="row"))
    errors = pl.DataFrame(man["errors"], schema={"payment_id": pl.String, "action": pl.String,
                                                 "invoice_id": pl.String, "cents": pl.Int64, "message": pl.String},
                          orient="row")
    todo = todo.filter(~pl.col("payment_id").is_in(sorted(man["handled"])))
    items = _consume(items, m_alloc, m_wo)

    ref = _reference_stage(todo, items, cfg)
    allocs.append(ref["alloc"])
    wos.append(ref["wo"])
    unapps.append(ref["unapp"])
    todo = todo.join(ref["done"], on="payment_id", how="anti")
    items = _consume(items, ref["alloc"], ref["wo"])

    amt = _amount_stage(todo, items, cfg)
    allocs.append(amt["alloc"])
    wos.append(amt["wo"])
    todo = todo.join(amt["done"], on="payment_id", how="anti")
    items = _consume(items, amt["alloc"], amt["wo"])

    sub = _subset_stage(todo, items, cfg)
    allocs.append(sub["alloc"])
    unapps.append(sub["unapp"])
    todo = todo.join(sub["done"], on="payment_id", how="anti")
    items = _consume(items, sub["alloc"])

    ref_c = ref["cands"].join(todo.select("payment_id"), on="payment_id", how="semi")
    amt_c = amt["cands"].join(todo.select("payment_id"), on="payment_id", how="semi").select(
        "payment_id", "invoice_id", "customer_id", "score",
        pl.format("same customer, {} open vs {} paid", _fmt(pl.col("res")), _fmt(pl.col("amt"))).alias("why"),
    )
    # candidates are scored against the residuals each stage saw (a later stage may have taken the item)
    cands = pl.concat([ref_c.select(list(_C)).cast(_C), amt_c.cast(_C)])
    susps.append(_suspense(todo, items, cands, cfg))

    def final(frames: list[pl.DataFrame], schema: dict, internal: dict, keys: list[str]) -> pl.DataFrame:
        f = _cat(frames, internal).filter(pl.col("cents") > 0) if "cents" in internal else _cat(frames, internal)
        if "explanation" in schema:  # a sentence starts with a capital
            f = f.with_columns(pl.col("explanation").str.slice(0, 1).str.to_uppercase()
                               + pl.col("explanation").str.slice(1))
        return f.with_columns(_money(pl.col("cents")).alias("amount")).select(list(schema)).cast(schema).sort(
            keys, nulls_last=True)

    susp_schema = {"payment_id": pl.String, "cents": pl.Int64, "reason": pl.String, "candidates": pl.String}
    susp = _cat(susps, susp_schema)
    return MatchResult(
        allocations=final(allocs, ALLOC_SCHEMA, _A, ["payment_id", "invoice_id", "method"]),
        write_offs=final(wos, WRITE_OFF_SCHEMA, _W, ["payment_id", "invoice_id", "reason"]),
        unapplied=final(unapps, UNAPPLIED_SCHEMA, _U, ["payment_id", "reason", "customer_id"]),
        suspense=susp.with_columns(_money(pl.col("cents")).alias("amount")).select(list(SUSPENSE_SCHEMA))
        .cast(SUSPENSE_SCHEMA).sort("payment_id"),
        decision_errors=errors.with_columns(_money(pl.col("cents")).alias("amount")).select(list(ERROR_SCHEMA))
        .cast(ERROR_SCHEMA).sort(["payment_id", "action", "invoice_id", "amount", "message"], nulls_last=True),
    )


def evaluate(allocations: pl.DataFrame, truth: pl.DataFrame) -> dict:
    """Precision and recall of the (payment_id, invoice_id) pairs of ``allocations`` against ``truth``."""
    pred = allocations.select(pl.col("payment_id").cast(pl.String), pl.col("invoice_id").cast(pl.String)).unique()
    true = truth.select(pl.col("payment_id").cast(pl.String), pl.col("invoice_id").cast(pl.String)).unique()
    tp = pred.join(true, on=["payment_id", "invoice_id"], how="inner").height
    return {
        "true_positives": tp,
        "predicted": pred.height,
        "truth": true.height,
        "precision": tp / pred.height if pred.height else 1.0,
        "recall": tp / true.height if true.height else 1.0,
    }
