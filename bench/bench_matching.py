"""Benchmark: payment matching, 200,000 bank lines against 500,000 open items; time, peak RSS, precision/recall.

    .venv/bin/python bench/bench_matching.py [--items 500000] [--payments 200000] [--seed 7]

1. **generate** (seeded numpy + vectorised Polars string building, no per-row Python): ``items // 25``
   customers with unique two-word names and a legal form, one bank account each, 85 % USD / 15 % EUR; open
   items spread over them (invoice numbers ``INV-US01-2026-000123``-style with a shuffled sequence, residuals
   log-normal 10.00..20,000.00 with 10 % round amounts, order refs ``SO-...``, a PO for half, an Amazon-style
   ref for a fifth); then payments with a known truth (``TRUTH_MIX``): exact payments quoting the invoice in
   assorted spellings (prefix, separators, dropped zeros, in the end-to-end id), OCR-confused references
   (O/0, I/1, S/5, B/8), references with one real edit, order refs / POs, no reference (amount + account, amount
   + a varied payer name), several invoices in one payment (quoted or not), two partial payments of one
   invoice, short payments within tolerance, overpayments, and unknown payers (no truth).
2. **match**: :func:`som_pipeline.billing.matching.match_payments`, timed; a sampler thread reads
   ``/proc/self/statm`` every 10 ms for the peak RSS during the call (the inputs are already in memory).
3. **verify**: conservation per payment and per invoice; precision / recall of (payment, invoice) pairs
   (:func:`evaluate`) overall and per scenario. Exits 1 when conservation fails.

:func:`generate` is also used by ``tests/test_billing_matching.py`` at 2,000 payments.

Measured on the shared 2-core machine, seed 7, 500,000 open items (20,000 customers), 200,000 payments (216,157
truth pairs): ``match_payments`` **22.2 s** (another run under a load average of 6: 32.7 s), peak RSS **1.09 GB**
(0.63 GB before the call: the inputs and the generator's leftovers; +0.46 GB during it). Before blocking the name
search it was 78 s (a full 32k x 20k ``cdist`` and a ``np.partition`` of it: 45 s); then the reference stage
(regex extraction, n-gram tokens, joins) ~13 s and the subset residue (~8,000 meet-in-the-middle searches) ~7 s
were the largest parts. Results: 215,717 allocations (REFERENCE 142,065, AMOUNT_CUSTOMER 35,641, SUBSET 24,110,
PARTIAL 8,000, REFERENCE_FUZZY 5,901), 8,043 write-offs, 6,001 overpayment credits, 16,359 in suspense (all 16,000
unknown payers among them); **precision 0.9985, recall 0.9965**; per scenario the weakest are amount + varied
payer name (recall 0.958: names too far or too close to another customer's wait in suspense) and the ones that
pick among equal amounts / subsets without a reference (precision 0.994-0.996: the oldest is not always the
one paid). Conservation OK. This mix is ours and kind to a matcher (clean accounts for most payers, one
customer per account); real books will score lower on the no-reference paths.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from som_pipeline.billing.matching import MONEY, evaluate, match_payments  # noqa: E402

#: scenario -> share of the payments (each payment of a scenario consumes fresh invoices)
TRUTH_MIX = {
    "ref_exact": 0.36,  # quotes the invoice number (assorted spellings), pays it exactly
    "ref_ocr": 0.08,  # the quoted number OCR-confused (O/0, I/1, S/5, B/8)
    "ref_edit": 0.04,  # one digit of the sequence wrong or dropped; payer known by account
    "order_ref": 0.04,  # quotes our order id, the channel ref or the customer's PO instead
    "amount_account": 0.12,  # no reference; exact amount; payer account known
    "amount_name": 0.05,  # no reference; exact amount; no account, the payer name varied
    "group_ref": 0.04,  # 2-4 invoices of one customer, all quoted
    "group_noref": 0.04,  # 2-4 of the customer's oldest invoices, nothing quoted, account known
    "partial": 0.08,  # two payments of one invoice (share of payments; half as many invoices)
    "short": 0.04,  # quoted, short by up to min(1.00, 0.5 %)
    "over": 0.03,  # quoted, overpaid
    "unknown": 0.08,  # nobody we know, no reference: no truth
}
SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa", "do", "fu", "gri", "bra", "ston", "vel", "mar",
       "tek", "hol", "win"]
LEGAL = ["Inc", "LLC", "Ltd", "Corp", "GmbH", "Co."]


def _money(cents: pl.Expr) -> pl.Expr:
    return (cents.cast(pl.Decimal(18, 0)) * pl.lit(0.01).cast(pl.Decimal(18, 2))).cast(MONEY)


def generate(n_items: int = 500_000, n_payments: int = 200_000, seed: int = 7):
    """(payments, open_items, customer_accounts, customers, truth, scenario) with a known truth (see above)."""
    rng = np.random.default_rng(seed)
    words = [a + b for a in SYL for b in SYL]
    n_cust = max(40, n_items // 25)
    pair = rng.choice(len(words) ** 2, n_cust, replace=False)
    w1 = np.array(words)[pair // len(words)]
    w2 = np.array(words)[pair % len(words)]
    customers = pl.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n_cust)],
        "w1": w1, "w2": w2, "legal": np.array(LEGAL)[rng.integers(0, len(LEGAL), n_cust)],
    }).with_columns(
        pl.format("{} {} {}", pl.col("w1").str.to_titlecase(), pl.col("w2").str.to_titlecase(), "legal").alias("name"),
        pl.format("US{}", pl.Series(rng.integers(10**15, 10**16, n_cust)).cast(pl.String)).alias("account"),
        pl.Series(np.where(rng.random(n_cust) < 0.15, "EUR", "USD")).alias("currency"),
    )
    # open items
    cust = rng.integers(0, n_cust, n_items)
    cur = customers["currency"].to_numpy()[cust]
    entity = np.where(cur == "EUR", "DE01", np.where(rng.random(n_items) < 0.5, "US01", "US02"))
    year = np.where(rng.random(n_items) < 0.8, "2026", "2025")
    seq = rng.permutation(n_items) + 1
    res = np.clip(np.exp(rng.normal(np.log(30_000), 1.0, n_items)), 1_000, 2_000_000).astype(np.int64)
    res = np.where(rng.random(n_items) < 0.10, (res // 5_000 + 1) * 5_000, res)
    inv_day = rng.integers(0, 180, n_items)
    items = pl.DataFrame({
        "i": np.arange(n_items), "cust": cust, "currency": cur, "entity": entity, "year": year, "seq": seq,
        "res": res, "day": inv_day, "po": rng.integers(10**7, 10**8, n_items),
        "has_po": rng.random(n_items) < 0.5, "amz": rng.random(n_items) < 0.2,
        "a1": rng.integers(10**6, 10**7, n_items), "a2": rng.integers(10**6, 10**7, n_items),
    }).with_columns(
        pl.format("C{}", pl.col("cust").cast(pl.String).str.zfill(6)).alias("customer_id"),
        pl.format("INV-{}-{}-{}", "entity", "year", pl.col("seq").cast(pl.String).str.zfill(6)).alias("invoice_id"),
        (pl.date(2025, 9, 1) + pl.duration(days=pl.col("day"))).alias("invoice_date"),
    ).with_columns(
        (pl.col("invoice_date") + pl.duration(days=30)).alias("due_date"),
        pl.concat_list(
            pl.format("SO-{}", (pl.col("i") + 1_000_000).cast(pl.String)),
            pl.when(pl.col("has_po")).then(pl.format("PO{}", pl.col("po").cast(pl.String))),
            pl.when(pl.col("amz")).then(pl.format("112-{}-{}", pl.col("a1"), pl.col("a2"))),
        ).list.drop_nulls().alias("order_refs"),
    )
    # the scenarios: grouped payments first (a customer's oldest unpaid items), then one invoice each
    counts = {k: int(round(v * n_payments)) for k, v in TRUTH_MIX.items()}
    counts["partial"] -= counts["partial"] % 2
    by_cust = items.sort("cust", "due_date", "invoice_id").with_columns(
        pl.int_range(pl.len()).over("cust").alias("rank"), pl.len().over("cust").alias("n")
    )
    ks = rng.integers(2, 5, counts["group_ref"] + counts["group_noref"])
    gcust = rng.choice(n_cust, ks.size, replace=False)
    groups = pl.DataFrame({"cust": gcust, "k": ks, "g": np.arange(ks.size)}).join(by_cust, on="cust").filter(
        pl.col("rank") < pl.col("k")
    )
    free = items.join(groups.select("i"), on="i", how="anti").sample(fraction=1.0, shuffle=True, seed=seed)
    singles = [k for k in TRUTH_MIX if not k.startswith("group") and k != "unknown"]
    need = {k: counts[k] // 2 if k == "partial" else counts[k] for k in singles}
    pos, parts = 0, []
    for k in singles:
        parts.append(free.slice(pos, need[k]).with_columns(pl.lit(k).alias("scenario")))
        pos += need[k]
    single = pl.concat(parts)
    inv = items.select("i", "invoice_id", "customer_id", "currency", "entity", "year", "seq", "res", "order_refs",
                       "due_date")
    # rows: (payment, invoice, amount) of the truth
    grp = groups.select("i", "g").join(inv, on="i").with_columns(
        pl.when(pl.col("g") < counts["group_ref"]).then(pl.lit("group_ref")).otherwise(pl.lit("group_noref"))
        .alias("scenario"), pl.format("G{}", pl.col("g")).alias("pkey"),
    )
    one = single.select("i", "scenario").join(inv, on="i").with_columns(pl.format("S{}", "i").alias("pkey"))
    split = one.filter(pl.col("scenario") == "partial")
    frac = pl.Series(rng.uniform(0.2, 0.8, split.height))
    first = split.with_columns((pl.col("res") * frac).cast(pl.Int64).clip(1).alias("amt"), pl.lit(0).alias("lag"))
    second = split.with_columns((pl.col("res") - (pl.col("res") * frac).cast(pl.Int64).clip(1)).alias("amt"),
                                pl.lit(3).alias("lag"), pl.format("{}b", "pkey").alias("pkey"))
    rest = one.filter(pl.col("scenario") != "partial")
    u = pl.Series(rng.random(rest.height))
    short = pl.min_horizontal(pl.lit(100), pl.col("res") * 5 // 1000)
    rest = rest.with_columns(
        pl.when(pl.col("scenario") == "short").then(pl.col("res") - (1 + (u * (short - 1)).cast(pl.Int64)).clip(1))
        .when(pl.col("scenario") == "over").then(pl.col("res") + 100 + (u * 20_000).cast(pl.Int64))
        .otherwise(pl.col("res")).alias("amt"), pl.lit(0).alias("lag"),
    )
    lines = pl.concat([rest, first, second, grp.with_columns(pl.lit(0).alias("lag"))], how="diagonal")
    lines = lines.with_columns(pl.col("amt").fill_null(pl.col("res")))
    n_pay = lines.select("pkey").n_unique()
    pay = lines.group_by("pkey").agg(
        pl.col("scenario").first(), pl.col("customer_id").first(), pl.col("currency").first(),
        pl.col("amt").sum(), pl.col("lag").first(), pl.col("due_date").max(),
        pl.col("invoice_id").sort(), pl.col("entity").first(), pl.col("year").first(), pl.col("seq").first(),
        pl.col("order_refs").first(),
    ).sort("pkey")
    r = rng.random((pay.height, 6))
    pay = pay.with_columns(
        pl.Series("r0", r[:, 0]), pl.Series("r1", r[:, 1]), pl.Series("r2", r[:, 2]), pl.Series("r3", r[:, 3]),
        pl.Series("r4", r[:, 4]), pl.Series("r5", r[:, 5]),
        pl.Series("pos", rng.integers(0, 6, pay.height)), pl.Series("d", rng.integers(1, 10, pay.height)),
    ).join(customers.select("customer_id", "w1", "w2", "name", "account"), on="customer_id", how="left")
    s6 = pl.col("seq").cast(pl.String).str.zfill(6)
    spelled = (
        pl.when(pl.col("r0") < 0.3).then(pl.format("INV-{}-{}-{}", "entity", "year", s6))
        .when(pl.col("r0") < 0.5).then(pl.format("inv {} {} {}", pl.col("entity").str.to_lowercase(), "year",
                                                 pl.col("seq").cast(pl.String)))
        .when(pl.col("r0") < 0.7).then(pl.format("Invoice INV/{}/{}/{} thank you", "entity", "year", s6))
        .when(pl.col("r0") < 0.85).then(pl.format("INV{}{}{}", "entity", "year", s6))
        .otherwise(pl.format("Payment {}-{}-{}", "entity", "year", s6))
    )
    ocr = pl.format("INV{}{}{}", "entity", "year", s6).str.replace_many(["0", "1", "5", "8"], ["O", "I", "S", "B"])
    edited = (
        pl.when(pl.col("r1") < 0.5)  # one digit replaced
        .then(pl.format("{}{}{}", s6.str.slice(0, pl.col("pos")),
                        ((s6.str.slice(pl.col("pos"), 1).cast(pl.Int64) + pl.col("d")) % 10).cast(pl.String),
                        s6.str.slice(pl.col("pos") + 1)))
        .otherwise(pl.format("{}{}", s6.str.slice(0, pl.col("pos")), s6.str.slice(pl.col("pos") + 1)))
    )
    ref_of_order = pl.col("order_refs").list.get(
        (pl.col("r1") * pl.col("order_refs").list.len()).cast(pl.Int64).clip(0, 10), null_on_oob=True)
    grouped_ref = pl.col("invoice_id").list.join(", ")
    sc = pl.col("scenario")
    text = (
        pl.when(sc.is_in(["ref_exact", "short", "over", "partial"])).then(spelled)
        .when(sc == "ref_ocr").then(ocr)
        .when(sc == "ref_edit").then(pl.format("INV-{}-{}-{}", "entity", "year", edited))
        .when(sc == "order_ref").then(pl.format("Order {}", ref_of_order))
        .when(sc == "group_ref").then(pl.format("Invoices {}", grouped_ref))
        .otherwise(pl.lit("Payment thank you"))
    )
    in_e2e = (pl.col("r2") < 0.2) & sc.is_in(["ref_exact", "ref_ocr"])
    name_variant = (
        pl.when(pl.col("r3") < 0.4).then(pl.format("{} {}", pl.col("w1").str.to_uppercase(),
                                                   pl.col("w2").str.to_uppercase()))
        .when(pl.col("r3") < 0.7).then(pl.format("{} {} L.L.C.", "w1", "w2"))
        .otherwise(pl.format("{} {}", "w1", pl.col("w2").str.slice(0, pl.col("w2").str.len_chars() - 1)))
    )
    has_acct = ~sc.is_in(["amount_name"]) & ((pl.col("r4") < 0.8) | sc.is_in(["amount_account", "group_noref",
                                                                              "ref_edit"]))
    payments = pay.with_columns(
        pl.format("PAY{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(7)).alias("payment_id"),
        pl.when(in_e2e).then(pl.lit("NOTPROVIDED")).otherwise(text).alias("remittance"),
        pl.when(in_e2e).then(text).alias("end_to_end_id"),
        pl.when(has_acct).then(pl.col("account")).alias("payer_account"),
        pl.when(has_acct).then(pl.col("name")).otherwise(name_variant).alias("payer_name"),
        (pl.date(2026, 3, 1) + pl.duration(days=(pl.col("r5") * 25).cast(pl.Int64) + pl.col("lag")))
        .alias("value_date"),
    )
    truth = payments.select("payment_id", "pkey").join(lines.select("pkey", "invoice_id"), on="pkey").select(
        "payment_id", "invoice_id")
    n_unknown = counts["unknown"]
    unknown = pl.DataFrame({
        "payment_id": [f"PAY{n_pay + i:07d}" for i in range(n_unknown)],
        "currency": np.where(rng.random(n_unknown) < 0.85, "USD", "EUR"),
        "amt": np.clip(np.exp(rng.normal(np.log(30_000), 1.0, n_unknown)), 1_000, 2_000_000).astype(np.int64),
        "payer_name": [f"J. Q. Public {i}" for i in range(n_unknown)],
        "value_date": rng.integers(0, 25, n_unknown),
    }).with_columns(
        pl.lit("unknown").alias("scenario"), pl.lit(None, pl.String).alias("payer_account"),
        pl.lit("Payment thank you").alias("remittance"), pl.lit(None, pl.String).alias("end_to_end_id"),
        (pl.date(2026, 3, 1) + pl.duration(days=pl.col("value_date"))).alias("value_date"),
    )
    cols = ["payment_id", "currency", "amt", "value_date", "payer_name", "payer_account", "remittance",
            "end_to_end_id", "scenario"]
    allp = pl.concat([payments.select(cols), unknown.select(cols)])
    scenario = allp.select("payment_id", "scenario")
    payments_out = allp.select(
        "payment_id", "currency", _money(pl.col("amt")).alias("amount"), "value_date", "payer_name",
        "payer_account", "remittance", "end_to_end_id")
    open_items = items.select("invoice_id", "customer_id", "currency", _money(pl.col("res")).alias("residual"),
                              "invoice_date", "due_date", "order_refs")
    return (payments_out, open_items, customers.select("customer_id", "account"),
            customers.select("customer_id", "name"), truth, scenario)


def conservation(payments: pl.DataFrame, open_items: pl.DataFrame, r) -> list[str]:
    """The invariants that must hold; returns the violations."""
    bad = []
    paid = pl.concat([
        r.allocations.select("payment_id", "amount"), r.unapplied.select("payment_id", "amount"),
        r.suspense.select("payment_id", "amount"),
    ]).group_by("payment_id").agg(pl.col("amount").sum().alias("got"))
    chk = payments.select("payment_id", "amount").join(paid, on="payment_id", how="full", coalesce=True)
    n = chk.filter(pl.col("got").is_null() | pl.col("amount").is_null() | (pl.col("got") != pl.col("amount"))).height
    if n:
        bad.append(f"{n} payments do not conserve")
    used = pl.concat([r.allocations.select("invoice_id", "amount"), r.write_offs.select("invoice_id", "amount")])
    over = used.group_by("invoice_id").agg(pl.col("amount").sum()).join(
        open_items.select("invoice_id", "residual"), on="invoice_id", how="left"
    ).filter(pl.col("residual").is_null() | (pl.col("amount") > pl.col("residual"))).height
    if over:
        bad.append(f"{over} invoices over-allocated")
    for name in ("allocations", "write_offs", "unapplied", "suspense"):
        f = getattr(r, name)
        if f.filter(pl.col("amount") <= 0).height:
            bad.append(f"{name} has non-positive amounts")
    return bad


class PeakRSS:
    """Samples the resident set size (``/proc/self/statm``) every 10 ms in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._t = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self.before = self._read()
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=500_000)
    ap.add_argument("--payments", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t0 = time.perf_counter()
    payments, items, accounts, customers, truth, scenario = generate(args.items, args.payments, args.seed)
    print(f"generated {payments.height:,} payments, {items.height:,} open items, {customers.height:,} customers, "
          f"{truth.height:,} truth pairs in {time.perf_counter() - t0:.1f} s")
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        r = match_payments(payments, items, accounts, customers)
        secs = time.perf_counter() - t0
    print(f"match_payments: {secs:.1f} s, RSS {rss.before / 2**20:,.0f} MB before, peak {rss.peak / 2**20:,.0f} MB "
          f"(+{(rss.peak - rss.before) / 2**20:,.0f} MB)")
    print(f"allocations {r.allocations.height:,} ({r.allocations['payment_id'].n_unique():,} payments), "
          f"write-offs {r.write_offs.height:,}, unapplied {r.unapplied.height:,}, suspense {r.suspense.height:,}")
    print(r.allocations.group_by("method").len().sort("method"))
    ev = evaluate(r.allocations, truth)
    print(f"precision {ev['precision']:.4f}  recall {ev['recall']:.4f}  ({ev['true_positives']:,} of "
          f"{ev['predicted']:,} predicted, {ev['truth']:,} true)")
    per = []
    for (sc,), ids in scenario.group_by(["scenario"], maintain_order=True):
        e = evaluate(r.allocations.join(ids, on="payment_id", how="semi"), truth.join(ids, on="payment_id",
                                                                                          how="semi"))
        susp = r.suspense.join(ids, on="payment_id", how="semi").height
        per.append((sc, ids.height, e["precision"], e["recall"], susp))
    for sc, n, p, rc, s in sorted(per):
        print(f"  {sc:15s} {n:7,d} payments  precision {p:.4f}  recall {rc:.4f}  suspense {s:,}")
    bad = conservation(payments, items, r)
    print("conservation:", "OK" if not bad else "; ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
