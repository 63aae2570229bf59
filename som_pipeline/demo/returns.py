"""The demo's returns: customers send back some of what was delivered, the warehouse grades what comes back.

:func:`simulate_returns` reads the delivered order lines and writes into ``landing/returns/`` a CSV of return
requests (in the window, a unit or two, the reasons people give; one asking more than was delivered, one naming a
line the order does not have, one for a line not delivered yet) and a Shopify refund for one delivered Shopify
line, and Amazon's merchant-fulfilled returns report for two delivered Amazon lines; and into
``landing/return_receipts/`` what came back for most of the requests (restocked, refurbished,
scrapped; one wrong item). Deterministic for a given warehouse and seed. Demo only.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

REASONS = ("DAMAGED", "WRONG_ITEM", "DEFECTIVE", "NOT_AS_DESCRIBED", "NO_LONGER_NEEDED", "SIZE_FIT")
GRADES = (("restock", 0.7), ("refurbish", 0.2), ("scrap", 0.1))


def _rma(request_id: str) -> str:
    return "RMA-" + hashlib.sha256(request_id.encode()).hexdigest()[:12].upper()  # returns.rules' rule


def simulate_returns(home: Path, wh, now: datetime, seed: int = 9) -> dict:
    rng = random.Random(seed)
    with wh.connect() as con:
        dl = con.execute("""
            SELECT sl.order_id, sl.line_no, sl.sku, s.warehouse_id, o.channel, o.channel_order_ref, o.currency,
                   l.line_ref,
                   sum(sl.quantity) AS qty
            FROM core.shipment_lines sl JOIN core.shipments s USING (shipment_id)
            JOIN core.shipment_status st USING (shipment_id) JOIN core.orders o ON o.order_id = sl.order_id
            JOIN core.order_lines l ON l.order_id = sl.order_id AND l.line_no = sl.line_no
            WHERE st.delivered_at IS NOT NULL GROUP BY ALL ORDER BY ALL""").pl()
        undelivered = con.execute("""
            SELECT l.order_id, l.line_no FROM core.order_lines l JOIN core.order_status s USING (order_id)
            WHERE s.status = 'APPROVED' AND NOT EXISTS (SELECT 1 FROM core.shipment_lines x
                  WHERE x.order_id = l.order_id AND x.line_no = l.line_no) ORDER BY 1, 2 LIMIT 1""").pl()
    if dl.height == 0:
        return {"requests": 0, "receipts": 0}
    picks = dl.filter(~pl.col("channel").is_in(["shopify", "amazon"])).sample(fraction=min(1.0, 60 / max(dl.height, 1)), seed=seed,
                                                              shuffle=True).sort("order_id", "line_no")
    at = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    req, rec = [], []
    for k, r in enumerate(picks.iter_rows(named=True)):
        qty = min(r["qty"], rng.choice((1, 1, 2)))
        rid = f"RR-{seed}-{k:04d}"
        req.append({"request_id": rid, "order_ref": r["order_id"], "line_no": r["line_no"], "quantity": qty,
                    "reason": rng.choice(REASONS), "requested_at": at, "customer_note": "", "exchange_sku": ""})
        if rng.random() < 0.75:
            grade = rng.choices([g for g, _ in GRADES], [w for _, w in GRADES])[0]
            wrong = k == 3
            rec.append({"rma_id": _rma(rid), "line_no": 1, "sku": "WRONG-SKU-1" if wrong else r["sku"],
                        "quantity": qty, "grade": grade, "received_at": at, "warehouse_id": r["warehouse_id"],
                        "note": "customer sent another item" if wrong else "", "final": "true"})
    if picks.height:
        first = picks.row(0, named=True)
        req.append({"request_id": f"RR-{seed}-OVER", "order_ref": first["order_id"], "line_no": first["line_no"],
                    "quantity": int(dl.filter((pl.col("order_id") == first["order_id"])
                                           & (pl.col("line_no") == first["line_no"]))["qty"].sum()) + 5, "reason": "NO_LONGER_NEEDED", "requested_at": at,
                    "customer_note": "all of them", "exchange_sku": ""})
        req.append({"request_id": f"RR-{seed}-NOLINE", "order_ref": first["order_id"], "line_no": 99,
                    "quantity": 1, "reason": "OTHER", "requested_at": at, "customer_note": "", "exchange_sku": ""})
    if undelivered.height:
        u = undelivered.row(0, named=True)
        req.append({"request_id": f"RR-{seed}-EARLY", "order_ref": u["order_id"], "line_no": u["line_no"],
                    "quantity": 1, "reason": "NO_LONGER_NEEDED", "requested_at": at, "customer_note": "",
                    "exchange_sku": ""})
    out = home / "landing" / "returns"
    out.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(req).with_columns(pl.all().cast(pl.String)).write_csv(out / f"returns_{now:%Y%m%d}.csv")
    shop = dl.filter(pl.col("channel") == "shopify", pl.col("line_ref").is_not_null()).head(1)
    if shop.height:
        s = shop.row(0, named=True)
        refund = {"refund": {"id": 900000 + seed, "order_id": int(s["channel_order_ref"])
                             if str(s["channel_order_ref"]).isdigit() else s["channel_order_ref"],
                             "created_at": at, "note": "damaged in transit", "restock": True,
                             "refund_line_items": [{"id": 910000 + seed, "line_item_id": int(s["line_ref"])
                                                    if str(s["line_ref"]).isdigit() else s["line_ref"],
                                                    "quantity": 1, "restock_type": "return"}],
                             "transactions": []}}
        (out / f"shopify_refund_{now:%Y%m%d}.json").write_text(json.dumps(refund, indent=1), encoding="utf-8")
    # Amazon's merchant-fulfilled returns report for two delivered Amazon lines; the units come back to us
    amz = dl.filter(pl.col("channel") == "amazon").head(2)
    if amz.height:
        head = ("Order ID", "Order date", "Return request date", "Return request status", "Amazon RMA ID",
                "Merchant RMA ID", "Label type", "Currency code", "Return carrier", "Tracking ID", "Merchant SKU",
                "Return quantity", "Return Reason", "In policy", "Return type", "Resolution")
        rows = []
        for k, r in enumerate(amz.iter_rows(named=True)):
            arma = f"D{hashlib.sha256(r['order_id'].encode()).hexdigest()[:8]}RMA"
            rows.append([r["channel_order_ref"], (now - timedelta(days=6)).strftime("%d-%b-%Y"),
                         (now - timedelta(hours=2)).strftime("%d-%b-%Y"), "Approved", arma, "", "AmazonPrePaidLabel",
                         r["currency"], "USPS", f"92020900000000000{k:05d}", r["sku"], "1",
                         ("CR-DEFECTIVE", "AMZ-PG-APP-TOO-LARGE")[k], "Y", "C-Returns", "StandardRefund"])
            rec.append({"rma_id": _rma(f"amazon-rma:{arma}"), "line_no": 1, "sku": r["sku"], "quantity": 1,
                        "grade": ("scrap", "restock")[k], "received_at": at, "warehouse_id": r["warehouse_id"],
                        "note": "", "final": "true"})
        (out / f"amazon_returns_{now:%Y%m%d}.tsv").write_text(
            "\n".join("\t".join(x) for x in [head, *rows]) + "\n", encoding="utf-8")
    if rec:
        rdir = home / "landing" / "return_receipts"
        rdir.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rec).with_columns(pl.all().cast(pl.String)).write_csv(rdir / f"receipts_{now:%Y%m%d}.csv")
    return {"requests": len(req), "receipts": len(rec), "shopify_refund": shop.height, "amazon_returns": amz.height}


__all__ = ["simulate_returns"]
