"""Calibrate the demo's credit and stock to the simulated demand, after the orders exist.

The reference builder draws credit limits, open invoices and stock before the orders are simulated; a real
business sets them from what customers buy. So, from the simulated orders:

- **credit limit** = max(the tier's floor, 3 months of the customer's average spend), rounded up to 5,000;
- **open items** = the last weeks' invoices of each customer on terms (about a month of spend, mostly not due
  yet); a few customers are late within the grace period, four are chronically late (an invoice 25-60 days
  past due: ``CREDIT_OVERDUE``), and the designated over-limit customers owe 108-133 % of their limit;
- **stock** covers the open window's demand of each SKU 1.5-3 times over (spread over the warehouses as
  drawn), except the SKUs the scenarios need short or out of stock, and a realistic 3 % of SKUs that
  run short.

Deterministic (seeded), exact decimals.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

TIER_FLOOR = {"standard": 5_000, "silver": 25_000, "gold": 75_000, "platinum": 250_000}
Q2 = Decimal("0.01")


def _value(o: Any) -> Decimal:
    return sum((ln.unit_price * ln.qty - ln.discount + ln.tax for ln in o.lines), Decimal(0)) + o.shipping


def calibrate(ref: Any, orders: list[Any], end: date, days_open: int, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}:calibrate")
    start_30 = end - timedelta(days=29)
    open_from = end - timedelta(days=days_open - 1)
    good = [o for o in orders if not o.bad and o.customer_id]
    spend_90: dict[str, Decimal] = defaultdict(Decimal)
    spend_30: dict[str, Decimal] = defaultdict(Decimal)
    demand: dict[str, int] = defaultdict(int)
    for o in good:
        v = _value(o)
        spend_90[o.customer_id] += v
        if o.ts.date() >= start_30:
            spend_30[o.customer_id] += v
        if o.ts.date() >= open_from:
            for ln in o.lines:
                demand[ln.sku] += ln.qty

    # --- credit limits ------------------------------------------------------------------------------
    days_total = max(1, (end - min((o.ts.date() for o in good), default=end)).days + 1)
    limits: dict[str, Decimal] = {}
    for cid, c in ref.customers.items():
        monthly = spend_90.get(cid, Decimal(0)) * 30 / days_total
        need = (monthly * 3 / 5000).to_integral_value(rounding=ROUND_CEILING) * 5000
        limits[cid] = max(Decimal(TIER_FLOOR[c.tier]), need)
        c.credit_limit = limits[cid]
    for row in ref.tables["customers"]:
        if row["customer_id"] in limits and row.get("credit_limit") != "TBD":
            row["credit_limit"] = f"{limits[row['customer_id']]:.2f}"

    # --- open items ---------------------------------------------------------------------------------
    over_limit = set(ref.special["over_limit"])
    new_customer = ref.special["new_customer"]
    on_terms = sorted(cid for cid, c in ref.customers.items() if c.terms > 0 and cid != new_customer)
    candidates = [cid for cid in on_terms if cid not in over_limit and spend_30.get(cid)]
    chronic = sorted(rng.sample(candidates, min(4, len(candidates))))
    items: list[dict[str, Any]] = []
    inv_no = 2026_000_100
    for cid in on_terms:
        c = ref.customers[cid]
        if cid in over_limit:
            total = (c.credit_limit * Decimal(str(round(1.08 + rng.random() * 0.25, 2)))).quantize(Q2)
        else:
            total = (spend_30.get(cid, Decimal(0)) * Decimal(str(round(0.6 + rng.random() * 0.4, 2)))).quantize(Q2)
        if total <= 0:
            continue
        n = rng.randint(1, 4)
        parts = [Decimal(str(round(rng.random() + 0.2, 4))) for _ in range(n)]
        amounts = [(total * p / sum(parts)).quantize(Q2) for p in parts]
        amounts[-1] = total - sum(amounts[:-1])
        for i, a in enumerate(amounts):
            if a <= 0:
                continue
            inv_no += rng.randint(1, 40)
            if cid in chronic and i == 0:
                idate = end - timedelta(days=c.terms + rng.randint(25, 60))  # well past terms + grace
            elif rng.random() < 0.08:
                idate = end - timedelta(days=c.terms + rng.randint(1, 10))  # a little late, within grace
            else:
                idate = end - timedelta(days=rng.randint(1, max(1, c.terms - 1)))
            items.append({"invoice_id": f"INV-{inv_no}", "customer_id": cid, "amount_open": format(a, "f"),
                          "currency": c.currency, "invoice_date": idate, "due_date": idate + timedelta(days=c.terms)})
    ref.open_items[:] = items
    ref.tables["open_items"] = items

    # --- stock ------------------------------------------------------------------------------------
    keep_short = set(ref.special["oos_everywhere"]) | {ref.special["short_sku"]}
    skus = sorted(demand)
    runs_short = set(rng.sample([s for s in skus if s not in keep_short], max(1, len(skus) * 3 // 100)))
    by_sku: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in ref.tables["inventory"]:
        if isinstance(row.get("on_hand"), int) and row["on_hand"] >= 0:
            by_sku[row["sku"]].append(row)
    for sku, rows in by_sku.items():
        need = demand.get(sku, 0)
        if sku in keep_short or sku in runs_short or need == 0:
            continue
        have = sum(r["on_hand"] for r in rows)
        target = int(need * (1.5 + rng.random() * 1.5)) + 5
        if have >= target:
            continue
        extra = target - have
        weights = [r["on_hand"] + 1 for r in rows]
        wsum = sum(weights)
        for r, w in zip(rows, weights, strict=True):
            r["on_hand"] += extra * w // wsum + 1
    return {"credit_limits_from": "3 months of average spend (tier floor)", "chronic_late_payers": chronic,
            "over_limit": sorted(over_limit), "skus_running_short": sorted(runs_short)}
