"""The demo's validation setup: the business calendar (validation.toml) and a file of manual decisions.

- ``$SOM_HOME/validation.toml`` pins the demo's business date (``as_of`` = the day after the last order day)
  and treats orders older than the scenario window as history (``history_before``): they were processed
  before go-live, so the demo evaluates the last ten days, as a nightly run would.
- ``$SOM_HOME/landing/approvals/decisions_<date>.csv``: what a credit desk and sales managers decided,
  including the mistakes a real inbox has (an unknown order id, a decision on an order that is not on
  hold, a typo in the decision) so every approvals reason code appears.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from som_pipeline.orders import CHANNEL_CODES

HISTORY_DAYS_OPEN = 10


def _order_id(scenario: dict[str, Any]) -> str:
    return f"{CHANNEL_CODES[scenario['channel']]}-{scenario['order_ref']}"


def write_validation_setup(home: Path, end_date: date, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    history_before = end_date - timedelta(days=HISTORY_DAYS_OPEN - 1)
    as_of = end_date + timedelta(days=1)
    (home / "validation.toml").write_text(
        "# Written by `som demo`: the demo's business calendar (see som_pipeline/validation/defaults.toml).\n"
        "[workflow]\n"
        f'history_before = "{history_before.isoformat()}"\n'
        f'as_of = "{as_of.isoformat()}"\n',
        encoding="utf-8",
    )
    by_name = {s["name"]: s for s in scenarios}
    decided = datetime.combine(as_of, time(8, 30)).isoformat() + "Z"
    rows = [
        # the credit desk called the new customer and approves the review hold
        (_order_id(by_name["new_customer_large_first_order"]), "approve", "NEW_CUSTOMER_REVIEW",
         "called the buyer, confirmed the order and the delivery address", "m.rossi (credit desk)"),
        # a sales manager rejects the order keyed at the wrong tier price
        (_order_id(by_name["wrong_tier_price"]), "reject", "",
         "customer will re-order at their tier price", "j.okafor (sales manager)"),
        # mistakes a real inbox has:
        ("CSV-NO-SUCH-ORDER", "approve", "", "approved by phone", "j.okafor (sales manager)"),  # UNKNOWN_ORDER
        (_order_id(by_name["shopify_cancelled"]), "approve", "", "please ship", "a.berg (ops)"),  # HOLD_NOT_OPEN
        (_order_id(by_name["quantity_spike"]), "aprove", "", "customer confirmed 1,000", "a.berg (ops)"),  # BAD_DECISION
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["order_id", "decision", "hold_codes", "reason", "approver", "decided_at"])
    for r in rows:
        w.writerow([*r, decided])
    folder = home / "landing" / "approvals"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"decisions_{as_of:%Y%m%d}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    stamp = datetime.combine(as_of, time(8, 30)).timestamp()
    os.utime(path, (stamp, stamp))
    # the disruption feed: a winter storm degrades the Texas warehouse and one carrier service is down
    dis = home / "landing" / "disruptions"
    dis.mkdir(parents=True, exist_ok=True)
    start = datetime.combine(as_of - timedelta(days=1), time(18, 0)).isoformat() + "Z"
    rows_d = [
        ("STORM-TX-1126", "warehouse", "WH-TX", start,
         datetime.combine(as_of + timedelta(days=4), time(0, 0)).isoformat() + "Z", "degraded", 2,
         "winter storm: dock closed half days, outbound two days late"),
        ("DHL-EXP-OUTAGE", "carrier", "DHL:EXPRESS", start,
         datetime.combine(as_of + timedelta(days=2), time(0, 0)).isoformat() + "Z", "closed", 0,
         "DHL Express hub outage: no pickups"),
        ("BAD-ROW", "planet", "Mars", start, start, "closed", 0, "a row the feed validation quarantines"),
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["disruption_id", "scope", "target", "starts_at", "ends_at", "severity", "extra_days", "note"])
    w.writerows(rows_d)
    dpath = dis / f"disruptions_{as_of:%Y%m%d}.csv"
    dpath.write_text(buf.getvalue(), encoding="utf-8")
    os.utime(dpath, (stamp, stamp))
    return {"history_before": history_before.isoformat(), "as_of": as_of.isoformat(),
            "disruptions_file": f"disruptions/{dpath.name}",
            "decisions_file": f"approvals/{path.name}",
            "decisions": [dict(zip(["order_id", "decision", "hold_codes", "reason", "approver"], r, strict=True))
                          for r in rows]}
