"""The demo's disputes, after orders have closed: chargebacks and a late return.

:func:`simulate_disputes` reads the closed orders and writes

- into ``landing/chargebacks/`` a Shopify Payments disputes document (``{"disputes": [...]}``) with a chargeback
  of a whole closed Shopify order still to answer (``needs_response``), one of part of another already lost, and
  an inquiry (no money moved); and a processor's dispute report (CSV) with a reversed payment (a direct debit the
  customer's bank returned as not authorised: lost) of a closed B2B order and one naming an order nobody knows
  (quarantined);
- into ``landing/returns/`` a return request for a closed order, long after its window (refused
  ``RETURN_WINDOW_CLOSED``: a late return does not re-open an order, a chargeback does).

Deterministic for a given warehouse. Demo only.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl


def simulate_disputes(home: Path, wh, now: datetime) -> dict:
    with wh.connect() as con:
        closed = con.execute("""
            SELECT c.order_id, o.channel, o.channel_order_ref, o.currency, c.paid_amount - c.refunded_amount AS paid,
                   (SELECT min(line_no) FROM core.order_lines l WHERE l.order_id = c.order_id) AS line_no
            FROM core.order_closure c JOIN core.orders o USING (order_id)
            WHERE c.closed AND c.paid_amount - c.refunded_amount > 0 ORDER BY c.order_id""").pl()
    if closed.height == 0:
        return {"chargebacks": 0, "late_returns": 0}
    at = now - timedelta(hours=6)
    iso = at.strftime("%Y-%m-%dT%H:%M:%S-00:00")
    due = (at + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%S-00:00")
    shop = closed.filter(pl.col("channel") == "shopify").head(3)
    other = closed.filter(pl.col("channel").is_in(["csv", "b2b_portal", "edi"])).head(1)
    disputes = []
    for k, r in enumerate(shop.iter_rows(named=True)):
        amount = r["paid"] if k != 1 else (r["paid"] / 2).quantize(Decimal("0.01"))
        status, kind = (("needs_response", "chargeback"), ("lost", "chargeback"), ("needs_response", "inquiry"))[k]
        reason = ("product_not_received", "product_unacceptable", "unrecognized")[k]
        ref = int(r["channel_order_ref"]) if str(r["channel_order_ref"]).isdigit() else r["channel_order_ref"]
        disputes.append({"id": 7700000 + k, "order_id": ref, "type": kind, "amount": str(amount),
                         "currency": r["currency"], "reason": reason, "network_reason_code": ("13.1", "13.3", "")[k],
                         "status": status, "evidence_due_by": due, "evidence_sent_on": None,
                         "finalized_on": iso if status == "lost" else None, "initiated_at": iso})
    out = home / "landing" / "chargebacks"
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    if disputes:
        (out / f"shopify_disputes_{now:%Y%m%d}.json").write_text(json.dumps({"disputes": disputes}, indent=1),
                                                                 encoding="utf-8")
        written += len(disputes)
    rows = [{"dispute_id": f"DP-{now:%Y%m%d}-{k + 1}", "order_ref": r["order_id"], "type": "chargeback",
             "amount": str(r["paid"]), "currency": r["currency"], "reason": "debit_not_authorized",
             "status": "lost", "opened_at": iso, "resolved_at": iso, "evidence_due_by": ""}
            for k, r in enumerate(other.iter_rows(named=True))]
    rows.append({"dispute_id": f"DP-{now:%Y%m%d}-X", "order_ref": "NO-SUCH-ORDER-1", "type": "chargeback",
                 "amount": "49.90", "currency": "USD", "reason": "fraudulent", "status": "needs_response",
                 "opened_at": iso, "resolved_at": "", "evidence_due_by": due})
    pl.DataFrame(rows).write_csv(out / f"processor_disputes_{now:%Y%m%d}.csv")
    written += len(rows)
    late = closed.filter(pl.col("line_no").is_not_null()).tail(1)
    if late.height:
        r = late.row(0, named=True)
        rdir = home / "landing" / "returns"
        rdir.mkdir(parents=True, exist_ok=True)
        pl.DataFrame([{"request_id": f"RR-LATE-{now:%Y%m%d}", "order_ref": r["order_id"], "line_no": str(r["line_no"]),
                       "quantity": "1", "reason": "NO_LONGER_NEEDED", "requested_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "customer_note": "found it in the garage", "exchange_sku": ""}]
                     ).write_csv(rdir / f"returns_late_{now:%Y%m%d}.csv")
    return {"chargebacks": written, "late_returns": late.height}


__all__ = ["simulate_disputes"]
