"""The demo's bank: what customers pay for the invoices billing issued, as the bank reports it, and the channels'
payouts.

:func:`simulate_bank` reads the open B2B invoices and writes, into ``landing/bank/``, statements in the three
formats (camt.053 for EUR / GBP, MT940 for USD payers with an account on file and for CAD / AUD, BAI2 for the
USD lockbox whose lines carry only a reference) with a realistic mix of payments:

- exact payments quoting the invoice number (clean, spaced, lower case, OCR-typed ``I`` for ``1``);
- one payment for two or three invoices of a customer (the numbers listed, or only the amount);
- partial payments (half), overpayments (+ 25.00), short payments within tolerance (- 0.40);
- payments with the right amount from the customer's account but no reference;
- a few from unknown payers with a reference that matches nothing (suspense);

and, into ``landing/payouts/``, a Shopify payout (its charges: the captured orders invoiced so far, less fees)
whose deposit the USD statement shows, so those captures clear (``in_payment`` -> ``paid``).

:func:`simulate_settlement` is the month after: the bank pays most invoices still open, exactly and quoting them
(some stay unpaid: overdue), and both channels pay out what they captured -- a Shopify payout and an Amazon
settlement report (flat file V2, fees as ItemFees rows) whose deposits the statements show -- so delivered,
invoiced and paid orders can close once their return window has passed.

The truth (which payment pays which invoice) goes to ``$SOM_HOME/demo_truth/payments.csv`` keyed by the payment's
end-to-end id, for the matcher's precision and recall. Deterministic for a given warehouse and seed. Demo only.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl

from som_pipeline.billing.bank import write_bai2, write_camt053, write_mt940
from som_pipeline.hashing import sha256_text

OUR_ACCOUNTS = {"USD": "021000021555000111", "EUR": "DE89370400440532013000", "GBP": "GB29NWBK60161331926819",
                "CAD": "CA0010012345678", "AUD": "AU063000123456789"}
SCENARIOS = (("exact", 0.46), ("group", 0.10), ("partial", 0.08), ("over", 0.05), ("short", 0.05),
             ("no_ref", 0.10), ("unpaid", 0.16))
SETTLEMENT = (("exact", 0.88), ("unpaid", 0.12))
AMAZON_FEE_RATE = Decimal("0.15")  # the referral fee, withheld in the settlement
SETTLEMENT_HEADER = ("settlement-id", "settlement-start-date", "settlement-end-date", "deposit-date", "total-amount",
                     "currency", "transaction-type", "order-id", "merchant-order-id", "adjustment-id", "shipment-id",
                     "marketplace-name", "amount-type", "amount-description", "amount", "fulfillment-id",
                     "posted-date", "posted-date-time", "order-item-code", "merchant-order-item-id",
                     "merchant-adjustment-item-id", "sku", "quantity-purchased", "promotion-id")


def _ref_text(rng: random.Random, inv: str) -> str:
    """The invoice number as a payer might type it."""
    _, ent, year, seq = inv.split("-")
    style = rng.random()
    if style < 0.45:
        return f"Invoice {inv}"
    if style < 0.65:
        return f"inv {ent.lower()} {year} {int(seq)}"
    if style < 0.80:
        return f"PAYMENT {inv.replace('-', '')}"
    if style < 0.92:
        return f"RE {inv.replace('1', 'I', 1)}"  # an OCR'd or mistyped 1
    return f"{inv} thank you"


def simulate_settlement(home: Path, wh, today: date, seed: int = 6) -> dict:
    """A month later: most open invoices paid exactly, the channels' captures paid out (Shopify and Amazon)."""
    return simulate_bank(home, wh, today, seed, scenarios=SETTLEMENT, unknown_payers=False, amazon=True)


def _amazon_settlement(caps: pl.DataFrame, today: date, sid: str) -> tuple[str, Decimal]:
    """An Amazon settlement report (flat file V2) paying ``caps`` (channel_order_ref, amount) less the referral fee;
    ``(text, deposit)``."""
    start, end = today - timedelta(days=14), today - timedelta(days=1)
    rows, total = [], Decimal("0")
    for r in caps.iter_rows(named=True):
        fee = (r["amount"] * AMAZON_FEE_RATE).quantize(Decimal("0.01"))
        total += r["amount"] - fee
        posted = f"{end:%Y-%m-%d}"
        base = {"settlement-id": sid, "transaction-type": "Order", "order-id": r["channel_order_ref"],
                "marketplace-name": "Amazon.com", "fulfillment-id": "MFN", "posted-date": posted,
                "posted-date-time": f"{posted} 07:00:00 UTC", "quantity-purchased": "1"}
        rows.append({**base, "amount-type": "ItemPrice", "amount-description": "Principal", "amount": str(r["amount"])})
        rows.append({**base, "amount-type": "ItemFees", "amount-description": "Commission", "amount": str(-fee)})
    head = {"settlement-id": sid, "settlement-start-date": f"{start:%Y-%m-%d} 07:00:00 UTC",
            "settlement-end-date": f"{end:%Y-%m-%d} 07:00:00 UTC", "deposit-date": f"{today:%Y-%m-%d} 07:00:00 UTC",
            "total-amount": str(total), "currency": caps["currency"][0]}
    lines = ["\t".join(SETTLEMENT_HEADER)] + ["\t".join(r.get(c, "") for c in SETTLEMENT_HEADER)
                                              for r in [head, *rows]]
    return "\n".join(lines) + "\n", total


def simulate_bank(home: Path, wh, today: date, seed: int = 5, scenarios=SCENARIOS, unknown_payers: bool = True,
                  amazon: bool = False) -> dict:
    rng = random.Random(seed)
    with wh.connect() as con:
        inv = con.execute("""
            SELECT a.item_id AS invoice_id, a.customer_id, a.currency, a.residual, a.invoice_date, c.name,
                   (SELECT min(account) FROM ref.customer_bank_accounts b WHERE b.customer_id = a.customer_id)
                   AS account
            FROM core.ar_open_items a JOIN core.invoices i ON i.invoice_id = a.item_id
            JOIN ref.customers c ON c.customer_id = a.customer_id
            WHERE a.residual > 0 AND NOT i.prepaid ORDER BY a.item_id""").pl()
        payouts = con.execute("""
            SELECT o.channel_order_ref, p.amount, p.currency, o.order_date FROM core.payments p
            JOIN core.orders o USING (order_id)
            WHERE p.source = 'channel_capture' AND o.channel = 'shopify' AND NOT p.cleared
            ORDER BY o.channel_order_ref""").pl()
        amazon_caps = con.execute("""
            SELECT o.channel_order_ref, p.amount, p.currency FROM core.payments p JOIN core.orders o USING (order_id)
            WHERE p.source = 'channel_capture' AND o.channel = 'amazon' AND NOT p.cleared
            ORDER BY p.currency, o.channel_order_ref""").pl() if amazon else pl.DataFrame()
    pays: list[dict] = []  # one per bank credit: currency, amount, payer, account, remittance, e2e, invoices
    by_cust = {k[0]: g for k, g in inv.group_by("customer_id", maintain_order=True)}
    names = [s for s, _ in scenarios]
    weights = [w for _, w in scenarios]
    n = 0
    for _cid, g in by_cust.items():
        rows = g.sort("invoice_date", "invoice_id").to_dicts()
        i = 0
        while i < len(rows):
            sc = rng.choices(names, weights)[0]
            r = rows[i]
            take = [r]
            if sc == "group" and i + 1 < len(rows):
                take = rows[i:i + rng.choice((2, 3))]
            i += len(take)
            if sc == "unpaid":
                continue
            n += 1
            total = sum((t["residual"] for t in take), Decimal("0"))
            amount = {"partial": (total / 2).quantize(Decimal("0.01")), "over": total + Decimal("25.00"),
                      "short": total - Decimal("0.40")}.get(sc, total)
            if amount <= 0:
                continue
            if sc == "no_ref":
                remit = f"Payment {r['name'][:20]}"
            elif sc == "group" and rng.random() < 0.5:
                remit = "Invoices " + ", ".join(t["invoice_id"] for t in take)
            elif sc == "group":
                remit = f"Remittance {today:%b %Y}"  # amount only: the matcher finds the subset
            else:
                remit = _ref_text(rng, r["invoice_id"])
            pays.append({"currency": r["currency"], "amount": amount, "payer_name": r["name"].upper(),
                         "payer_account": r["account"], "remittance": remit, "end_to_end_id": f"E2E-{seed}-{n:06d}",
                         "invoices": [t["invoice_id"] for t in take], "scenario": sc})
    for k in range(max(2, len(pays) // 60) if unknown_payers else 0):  # unknown payers quoting nothing we know
        pays.append({"currency": "USD", "amount": Decimal(f"{rng.randint(50, 5000)}.{rng.randint(0, 99):02d}"),
                     "payer_name": f"UNKNOWN TRADER {k + 1}", "payer_account": None,
                     "remittance": f"Order ref ZX-{rng.randint(10000, 99999)}", "end_to_end_id": f"E2E-{seed}-U{k:04d}",
                     "invoices": [], "scenario": "unknown"})
    # the Shopify payout of the captures so far: charges less 2.9 % + 0.30 fees; its deposit on the USD statement
    payout_amount = Decimal("0")
    payout_file = None
    if payouts.height:
        txs, pid = [], 800000 + seed
        for k, r in enumerate(payouts.iter_rows(named=True)):
            fee = (r["amount"] * Decimal("0.029") + Decimal("0.30")).quantize(Decimal("0.01"))
            txs.append({"id": 9000000 + k, "type": "charge", "test": False, "payout_id": pid,
                        "payout_status": "paid", "currency": "USD", "amount": str(r["amount"]), "fee": str(fee),
                        "net": str(r["amount"] - fee), "source_id": 7000000 + k, "source_type": "charge",
                        "source_order_transaction_id": None, "source_order_id": int(r["channel_order_ref"])
                        if str(r["channel_order_ref"]).isdigit() else r["channel_order_ref"],
                        "processed_at": f"{today - timedelta(days=1)}T12:00:00-05:00"})
            payout_amount += r["amount"] - fee
        payout_file = {"payouts": [{"id": pid, "status": "paid", "date": str(today), "currency": "USD",
                                    "amount": str(payout_amount)}],
                       "transactions": txs + [{"id": 9999999, "type": "payout", "test": False, "payout_id": pid,
                                               "payout_status": "paid", "currency": "USD",
                                               "amount": str(-payout_amount), "fee": "0.00",
                                               "net": str(-payout_amount), "source_id": pid,
                                               "source_type": "payout",
                                               "processed_at": f"{today}T06:00:00-05:00"}]}
    # the Amazon settlements (one per currency) and their deposits
    out = home / "landing" / "bank"
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    deposits: dict[str, dict] = {}
    if amazon and amazon_caps.height:
        pdir = home / "landing" / "payouts"
        pdir.mkdir(parents=True, exist_ok=True)
        for (cur,), g in amazon_caps.group_by("currency", maintain_order=True):
            sid = f"{today:%Y%m%d}{seed:02d}{len(deposits):02d}"
            text, total = _amazon_settlement(g, today, sid)
            (pdir / f"amazon_settlement_{cur}_{today:%Y%m%d}.tsv").write_text(text, encoding="utf-8")
            written[f"amazon settlement {cur} orders"] = g.height
            deposits[cur] = {"amount": total, "booking_date": today, "value_date": today,
                             "bank_reference": "AMAZONSETTLE", "end_to_end_id": f"SETTLEMENT-{sid}",
                             "payer_name": "AMAZON.COM SERVICES LLC", "payer_account": None,
                             "remittance": f"AMAZON SETTLEMENT {sid}", "kind": "credit"}
    # statements
    for cur in sorted({p["currency"] for p in pays} | ({"USD"} if payout_file else set()) | set(deposits)):
        mine = [p for p in pays if p["currency"] == cur]
        lines = [{"amount": p["amount"], "booking_date": today, "value_date": today,
                  "bank_reference": f"BR{int(sha256_text(p['end_to_end_id'])[:12], 16) % 10**10:010d}",
                  "end_to_end_id": p["end_to_end_id"], "payer_name": p["payer_name"],
                  "payer_account": p["payer_account"], "remittance": p["remittance"], "kind": "credit"}
                 for p in mine]
        if cur in deposits:
            lines.append(deposits[cur])
        if cur == "USD" and payout_file:
            lines.append({"amount": payout_amount, "booking_date": today, "value_date": today,
                          "bank_reference": "SHOPIFYPAYOUT", "end_to_end_id": f"PAYOUT-{800000 + seed}",
                          "payer_name": "SHOPIFY INC", "payer_account": None,
                          "remittance": f"SHOPIFY PAYOUT {800000 + seed}", "kind": "credit"})
        lines.append({"amount": Decimal("-12.50"), "booking_date": today, "value_date": today,
                      "bank_reference": "FEE", "end_to_end_id": None, "payer_name": None, "payer_account": None,
                      "remittance": "Account maintenance fee", "kind": "fee"})
        opening = Decimal("100000.00")
        st = {"statement_id": f"STMT-{cur}-{today:%Y%m%d}", "account": OUR_ACCOUNTS.get(cur, f"ACC{cur}"),
              "currency": cur, "statement_date": today, "opening_balance": opening,
              "closing_balance": opening + sum((ln["amount"] for ln in lines), Decimal("0"))}
        if cur in ("EUR", "GBP"):
            text, name = write_camt053(st, lines, version="08"), f"camt053_{cur}_{today:%Y%m%d}.xml"
        elif cur == "USD":
            # payers with an account on file: MT940; the lockbox (reference only): BAI2
            acct = [ln for ln in lines if ln["payer_account"] or ln["bank_reference"] in ("SHOPIFYPAYOUT", "FEE",
                                                                                        "AMAZONSETTLE")]
            box = [ln for ln in lines if ln not in acct]
            st1 = {**st, "closing_balance": opening + sum((ln["amount"] for ln in acct), Decimal("0"))}
            (out / f"mt940_USD_{today:%Y%m%d}.sta").write_text(write_mt940(st1, acct), encoding="utf-8")
            written[f"mt940_USD_{today:%Y%m%d}.sta"] = len(acct)
            if not box:
                continue
            st2 = {**st, "account": "021000021555000999", "closing_balance": opening + sum(
                (ln["amount"] for ln in box), Decimal("0"))}
            text, name = write_bai2(st2, box), f"bai2_USD_lockbox_{today:%Y%m%d}.bai2"
            lines = box
        else:
            text, name = write_mt940(st, lines), f"mt940_{cur}_{today:%Y%m%d}.sta"
        (out / name).write_text(text, encoding="utf-8")
        written[name] = len(lines)
    if payout_file:
        pdir = home / "landing" / "payouts"
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / f"shopify_payout_{today:%Y%m%d}.json").write_text(json.dumps(payout_file, indent=1), encoding="utf-8")
        written["shopify payout charges"] = len(payout_file["transactions"]) - 1
    truth = home / "demo_truth"
    truth.mkdir(parents=True, exist_ok=True)
    schema = {"end_to_end_id": pl.String, "invoice_id": pl.String, "scenario": pl.String}
    known = (pl.read_csv(truth / "payments.csv", schema=schema) if (truth / "payments.csv").exists()
             else pl.DataFrame(schema=schema))  # the truth of every statement so far
    pl.concat([known, pl.DataFrame([{"end_to_end_id": p["end_to_end_id"], "invoice_id": i,
                                     "scenario": p["scenario"]} for p in pays for i in p["invoices"]],
                                   schema=schema)]).unique(maintain_order=True).write_csv(truth / "payments.csv")
    return {"payments": len(pays), "files": written}


def score_matching(home: Path, wh) -> dict:
    """Precision and recall of the matcher's allocations of the demo's bank payments against the truth
    :func:`simulate_bank` wrote, overall and per scenario."""
    from som_pipeline.billing.matching import evaluate

    truth = pl.read_csv(home / "demo_truth" / "payments.csv", schema_overrides={"end_to_end_id": pl.String})
    with wh.connect() as con:
        pays = con.execute("SELECT payment_id, end_to_end_id FROM core.payments WHERE source = 'bank'").pl()
        alloc = con.execute("SELECT a.payment_id, a.item_id AS invoice_id FROM core.payment_allocations a "
                            "JOIN core.payments p USING (payment_id) WHERE p.source = 'bank'").pl()
    t = truth.join(pays, on="end_to_end_id").select("payment_id", "invoice_id", "scenario")
    out = evaluate(alloc, t.select("payment_id", "invoice_id"))
    found = t.join(alloc.with_columns(pl.lit(True).alias("_hit")), on=["payment_id", "invoice_id"], how="left")
    out["recall_by_scenario"] = {r["scenario"]: round(r["recall"], 4) for r in found.group_by("scenario").agg(
        pl.col("_hit").fill_null(False).mean().alias("recall")).sort("scenario").iter_rows(named=True)}
    return out


__all__ = ["score_matching", "simulate_bank"]
