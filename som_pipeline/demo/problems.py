"""Injected bad inputs: every capture reason code of :mod:`som_pipeline.reasons` (except ``REF_*``) appears.

Two kinds of injections:

- bad *orders* travel through the normal channel writers with a ``mutate`` hook that damages the
  rendered document (a negative Shopify discount, a CSV row with ``tax_rate`` 8.25, an X12 set with a
  wrong SE count...), or with flags the writers understand (an Amazon header without its items);
- bad *files* are produced here as bytes (an empty file, gzip bytes named ``.json``, truncated JSON, a
  Shopify refund, an X12 810, a CSV without the ``sku`` column, a broken Parquet file...).

Every injection is recorded as ``{"reason", "channel", "file", "order_ref", "note"}`` for the manifest.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from som_pipeline.demo.formats import CSV_COLUMNS, csv_rows, csv_text, shopify_order, x12_interchange
from som_pipeline.demo.history import Line, Order, Simulator
from som_pipeline.demo.master_data import EDI_PARTNERS, Customer
from som_pipeline.demo.writer import RAW, json_bytes

Injection = dict[str, Any]
# reasons that reject a whole file (one "file" record)
FILE_LEVEL = {"EMPTY_FILE", "BAD_ENCODING", "INVALID_JSON", "UNSUPPORTED_DOCUMENT", "UNREADABLE_FILE",
              "CSV_MISSING_COLUMN", "X12_UNSUPPORTED_SET"}


def _at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=UTC)


class Injector:
    def __init__(self, sim: Simulator, seed: int) -> None:
        self.sim = sim
        self.ref = sim.ref
        self.rng = random.Random(f"{seed}:problems")
        self.items: list[Injection] = []
        self.raw_files: list[tuple[str, str, bytes, datetime]] = []
        self.end = sim.ref.end
        self.days = sim.days

    def day(self, back: int) -> date:
        return self.end - timedelta(days=min(back, self.days - 1))

    def note(self, reason: str, channel: str, note: str, *, file: str | None = None, order_ref: str | None = None,
             **kw: Any) -> None:
        level = "file" if reason in FILE_LEVEL else "record"
        self.items.append({"reason": reason, "channel": channel, "level": level, "file": file,
                           "order_ref": order_ref, "note": note, **kw})

    def customer(self, channel: str, k: int = 0, pred: Callable[[Customer], bool] | None = None) -> Customer:
        pool = [c for c in self.sim.by_channel[channel] if c.channels[0] == channel and c.history]
        cs = [c for c in pool if pred is None or pred(c)] or pool
        cs.sort(key=lambda c: c.customer_id)
        return cs[(k * 7 + self.rng.randrange(len(cs))) % len(cs)]

    def order(self, channel: str, back: int, *, k: int = 0, min_lines: int = 1,
              pred: Callable[[Customer], bool] | None = None, bad: str | None = None) -> Order:
        c = self.customer(channel, k, pred)
        d = self.day(back)
        for _ in range(20):
            o = self.sim.make_order(channel, c, d)
            if len(o.lines) >= min_lines:
                break
        if len(o.lines) < min_lines:
            extra = [s for s in self.sim.orderable if s not in {ln.sku for ln in o.lines}
                     and not self.ref.products[s].restricted][: min_lines - len(o.lines)]
            for s in extra:
                o.lines.append(Line(s, self.ref.products[s].name, 2,
                                    self.ref.price(c.tier, s, c.currency, d, 2)))
            self.sim.price_order(o, c, promo=None)
        self.sim.decorate(o)
        o.bad = bad
        self.sim.orders.append(o)
        return o

    # --------------------------------------------------------------------------------------------
    def shopify(self) -> None:
        def no_lines(doc: dict[str, Any]) -> None:
            doc["line_items"] = []

        o = self.order("shopify", 3, k=1, bad="NO_LINES")
        o.mutate = no_lines
        self.note("NO_LINES", "shopify", "order object with an empty line_items list", order_ref=o.ref)

        def neg_discount(doc: dict[str, Any]) -> None:
            li = doc["line_items"][0]
            li["discount_allocations"] = [{"amount": "-5.00", "amount_set": {
                "shop_money": {"amount": "-5.00", "currency_code": doc["currency"]},
                "presentment_money": {"amount": "-5.00", "currency_code": doc["currency"]}},
                "discount_application_index": 0}]

        o = self.order("shopify", 4, k=2, bad="BAD_AMOUNT")
        o.mutate = neg_discount
        self.note("BAD_AMOUNT", "shopify", "line_items/0 discount_allocations amount -5.00", order_ref=o.ref)

        def rmb(doc: dict[str, Any]) -> None:
            doc["currency"] = doc["presentment_currency"] = "RMB"

        o = self.order("shopify", 5, k=3, bad="UNKNOWN_CURRENCY")
        o.mutate = rmb
        self.note("UNKNOWN_CURRENCY", "shopify", "currency 'RMB' (not ISO 4217; CNY is)", order_ref=o.ref)

        def bad_created(doc: dict[str, Any]) -> None:
            doc["created_at"] = doc["processed_at"] = "2026-02-30T10:12:00-05:00"

        o = self.order("shopify", 6, k=4, bad="BAD_DATE")
        o.mutate = bad_created
        self.note("BAD_DATE", "shopify", "created_at 2026-02-30T10:12:00-05:00 (no such day)", order_ref=o.ref)

        # truncated page (INVALID_JSON): a second page of the day that was cut off in transfer
        d = self.day(7)
        extra = [self.order("shopify", 7, k=5 + i, bad="INVALID_JSON") for i in range(2)]
        for o in extra:
            o.file = RAW
        body = json_bytes({"orders": [shopify_order(o, self.ref) for o in extra]})
        name = f"orders_{d:%Y%m%d}_page2.json"
        self.raw_files.append(("shopify", name, body[: int(len(body) * 0.62)], _at(d + timedelta(days=1), 0, 40)))
        self.note("INVALID_JSON", "shopify", "page truncated at 62 % of its bytes (2 orders lost)", file=name,
                  order_refs=[o.ref for o in extra])

        # binary garbage (BAD_ENCODING): a gzip-compressed page saved under a .json name
        d = self.day(8)
        extra = [self.order("shopify", 8, k=7, bad="BAD_ENCODING")]
        extra[0].file = RAW
        raw = json_bytes({"orders": [shopify_order(o, self.ref) for o in extra]})
        name = f"orders_{d:%Y%m%d}_page2.json"
        self.raw_files.append(("shopify", name, gzip.compress(raw, mtime=0), _at(d + timedelta(days=1), 0, 41)))
        self.note("BAD_ENCODING", "shopify", "gzip bytes saved as .json (not text)", file=name)

        # a refund dropped into the orders folder (UNSUPPORTED_DOCUMENT)
        shop = sorted((o for o in self.sim.orders if o.channel == "shopify" and not o.bad and not o.scenario),
                      key=lambda o: o.ts)
        target = shop[len(shop) // 2]
        ln = target.lines[0]
        refund = {"refund": {
            "id": 9_100_000_000 + int(target.ref) % 1_000_000, "order_id": int(target.ref),
            "created_at": (target.ts + timedelta(days=3)).astimezone(UTC).isoformat(timespec="seconds"),
            "note": "damaged in transit", "restock": False, "user_id": None,
            "refund_line_items": [{"id": 1_200_000_000 + ln.line_id % 1_000_000, "quantity": 1, "line_item_id": ln.line_id,
                                   "location_id": None, "restock_type": "no_restock",
                                   "subtotal": format(ln.unit_price, "f"), "total_tax": "0.00"}],
            "transactions": [{"id": 7_700_000_000 + int(target.ref) % 1_000_000, "order_id": int(target.ref),
                              "kind": "refund", "gateway": "shopify_payments", "status": "success",
                              "amount": format(ln.unit_price, "f"), "currency": target.currency}],
            "order_adjustments": []}}
        rd = min(target.day + timedelta(days=3), self.end)
        name = f"refund_{target.ref}.json"
        self.raw_files.append(("shopify", name, json_bytes(refund), _at(rd, 16, 5)))
        self.note("UNSUPPORTED_DOCUMENT", "shopify", "a Shopify refund resource in the orders folder", file=name,
                  order_ref=target.ref)

    # --------------------------------------------------------------------------------------------
    def amazon(self) -> None:
        amz = sorted((o for o in self.sim.orders if o.channel == "amazon" and not o.bad and not o.scenario),
                     key=lambda o: (o.ts, o.ref))
        # two headers whose items are not there yet (Pending), one items page whose header never came
        last = amz[-3:]
        for o in last[:2]:
            o.extra["no_items"] = True
            o.extra["status"] = "Pending"
        last[2].extra["no_header"] = True
        self.pairing = {"headers_without_items": [o.ref for o in last[:2]],
                        "items_without_header": [last[2].ref]}

        # two currencies on one items page
        o = self.order("amazon", 2, k=1, min_lines=2, pred=lambda c: c.currency == "CAD", bad="CURRENCY_MISMATCH")

        def two_currencies(doc: dict[str, Any]) -> None:
            first = doc["payload"]["OrderItems"][0]["ItemPrice"]["CurrencyCode"]
            for v in doc["payload"]["OrderItems"][1].values():
                if isinstance(v, dict) and "CurrencyCode" in v:
                    v["CurrencyCode"] = "USD" if first != "USD" else "CAD"

        o.mutate = two_currencies
        self.note("CURRENCY_MISMATCH", "amazon", "item 1 in another currency than item 0", file=f"getOrderItems_{o.ref}.json",
                  order_ref=o.ref)

        o = self.order("amazon", 3, k=2, bad="BAD_AMOUNT")

        def neg_promo(doc: dict[str, Any]) -> None:
            doc["payload"]["OrderItems"][0]["PromotionDiscount"]["Amount"] = "-2.50"

        o.mutate = neg_promo
        self.note("BAD_AMOUNT", "amazon", "PromotionDiscount -2.50", file=f"getOrderItems_{o.ref}.json",
                  order_ref=o.ref)

    # --------------------------------------------------------------------------------------------
    def edi(self) -> None:
        partners = {p["code"]: p for p in EDI_PARTNERS}

        def edi_order(code: str, back: int, bad: str | None) -> Order:
            idx = next(i for i, p in enumerate(EDI_PARTNERS) if p["code"] == code)
            c = self.ref.customers[f"C{idx + 1:04d}"]
            o = self.sim.make_order("edi", c, self.day(back))
            self.sim.decorate(o)
            o.bad = bad
            self.sim.orders.append(o)
            return o

        # SE01 wrong, in a second interchange of the day (one good set + one bad set)
        d = self.day(3)
        name = f"PO_GRTLAKES_{d:%Y%m%d}_02.edi"
        good, bad = edi_order("GRTLAKES", 3, None), edi_order("GRTLAKES", 3, "X12_SEGMENT_COUNT")
        good.file = bad.file = name

        def se_count(segs: list[list[str]]) -> None:
            segs[-1][1] = str(int(segs[-1][1]) - 2)

        bad.mutate = se_count
        self.note("X12_SEGMENT_COUNT", "edi", "SE01 two less than the segments sent", file=name, order_ref=bad.ref)

        d = self.day(4)
        name = f"PO_SUNBELT_{d:%Y%m%d}_02.edi"
        good, bad = edi_order("SUNBELT", 4, None), edi_order("SUNBELT", 4, "X12_CONTROL_NUMBER")
        good.file = bad.file = name

        def se_ctrl(segs: list[list[str]]) -> None:
            segs[-1][2] = "9002"

        bad.mutate = se_ctrl
        self.note("X12_CONTROL_NUMBER", "edi", "SE02 9002 does not match ST02", file=name, order_ref=bad.ref)

        d = self.day(5)
        name = f"PO_ACMEHW_{d:%Y%m%d}_02.edi"
        a, b = edi_order("ACMEHW", 5, None), edi_order("ACMEHW", 5, "X12_SYNTAX")
        a.file = b.file = name
        b.extra["drop_terminator"] = "DTM"
        self.note("X12_SYNTAX", "edi", "segment terminator missing after DTM: DTM and TD5 run together",
                  file=name, order_ref=b.ref)

        d = self.day(6)
        name = f"PO_NORTHMRT_{d:%Y%m%d}_02.edi"
        a, b = edi_order("NORTHMRT", 6, None), edi_order("NORTHMRT", 6, None)  # sound sets: still captured
        a.file = b.file = name
        a.extra["ge_wrong"] = True
        self.note("X12_ENVELOPE_COUNT", "edi", "GE01 says 3 sets, the group has 2: the X12 parser keeps the sound "
                  "sets and reports the count in extras['interchanges'] (997 AK9 code 5), not as a quarantine "
                  "row", file=name, order_refs=[a.ref, b.ref], quarantined=False)

        # an 810 invoice sent to the PO mailbox
        p = partners["ACMEHW"]
        d = self.day(2)
        inv = [["ST", "810", "0001"], ["BIG", d.strftime("%Y%m%d"), f"INV{d:%y%m%d}01", d.strftime("%Y%m%d"),
                                         "4531000140"],
               ["CUR", "SE", "USD"], ["N1", "ST", "ACME STORE 0412"], ["N3", "1400 COMMERCE ST"],
               ["N4", "DALLAS", "TX", "75201", "US"],
               ["IT1", "1", "24", "EA", "3.49", "", "VN", "OFF-10003"], ["PID", "F", "", "", "", "STICKY NOTES"],
               ["TDS", "8376"], ["CTT", "1"]]
        inv.append(["SE", str(len(inv) + 1), "0001"])
        text = x12_interchange(p, [inv], _at(d, 22, 10), 880_001, functional="IN")
        name = f"INV_ACMEHW_{d:%Y%m%d}.edi"
        self.raw_files.append(("edi", name, text.encode("ascii"), _at(d, 22, 15)))
        self.note("X12_UNSUPPORTED_SET", "edi", "an 810 invoice (not an 850) in the PO folder", file=name)

        # an 850 in X12 003010 (GS08; six-digit dates), a release the reader does not map (fixed content: no draw
        # from the simulator, so the rest of the demo is unchanged)
        p = partners["SUNBELT"]
        d = self.day(2)
        po = [["ST", "850", "0001"], ["BEG", "00", "SA", f"P3010{d:%y%m%d}", "", d.strftime("%y%m%d")],
              ["PO1", "1", "12", "EA", "3.49", "PE", "VN", "OFF-10003"], ["CTT", "1"]]
        po.append(["SE", str(len(po) + 1), "0001"])
        name = f"PO_SUNBELT_{d:%Y%m%d}_3010.edi"
        text = x12_interchange(p, [po], _at(d, 21, 30), 880_002, version="003010")
        self.raw_files.append(("edi", name, text.encode("ascii"), _at(d, 21, 35)))
        self.note("X12_VERSION_UNSUPPORTED", "edi", "an 850 in X12 003010 (GS08), a version the reader does not map: "
                  "997 AK5 code 1, AK9 code 2", file=name, order_ref=f"{p['isa06']}:P3010{d:%y%m%d}")

        # ACMEHW re-uses the ISA13 of its 810 above (880001) for an 850 the next morning: a duplicate interchange
        p = partners["ACMEHW"]
        d = self.day(1)
        po = [["ST", "850", "0001"], ["BEG", "00", "SA", f"PDUP{d:%y%m%d}", "", d.strftime("%Y%m%d")],
              ["PO1", "1", "24", "EA", "3.49", "PE", "VN", "OFF-10003"], ["CTT", "1"]]
        po.append(["SE", str(len(po) + 1), "0001"])
        name = f"PO_ACMEHW_{d:%Y%m%d}_resent.edi"
        text = x12_interchange(p, [po], _at(d, 7, 50), 880_001)
        self.raw_files.append(("edi", name, text.encode("ascii"), _at(d, 7, 55)))
        self.note("X12_DUPLICATE_INTERCHANGE", "edi", "ISA13 000880001 of ACMEHW again (its 810 used it): the set is "
                  "not captured, a TA1 note 025 answers it", file=name, order_ref=f"{p['isa06']}:PDUP{d:%y%m%d}")

    # --------------------------------------------------------------------------------------------
    def csv(self) -> None:
        rep, k = "marco_rossi", [0]

        def csv_order(back: int, bad: str | None, min_lines: int = 1) -> Order:
            k[0] += 1
            o = self.order("csv", back, k=k[0], min_lines=min_lines, pred=lambda c: c.rep == rep, bad=bad)
            return o

        def field(name: str, value: str, row: int = 0) -> Callable[[list[Any]], None]:
            def f(rows: list[Any]) -> None:
                rows[row][name] = value
            return f

        def all_rows(name: str, value: str) -> Callable[[list[Any]], None]:
            def f(rows: list[Any]) -> None:
                for r in rows:
                    r[name] = value
            return f

        simple = [
            ("BAD_QUANTITY", "quantity", "0", "quantity 0", 2),
            ("BAD_QUANTITY", "quantity", "-2", "quantity -2", 1),
            ("BAD_QUANTITY", "quantity", "ten", "quantity 'ten'", 1),
            ("BAD_LINE_NO", "line_no", "1.5", "line_no '1.5'", 1),
            ("BAD_PRICE", "unit_price", "12,50", "unit_price '12,50' (decimal comma)", 1),
            ("BAD_PRICE", "unit_price", "-3.00", "unit_price -3.00", 1),
            ("BAD_RATE", "tax_rate", "8.25", "tax_rate 8.25 (a percentage where a fraction is expected)", 1),
            ("MISSING_FIELD", "sku", "", "empty sku", 1),
        ]
        for i, (reason, col, value, note, lines) in enumerate(simple):
            o = csv_order(2 + i % 4, reason, min_lines=lines)
            o.mutate = field(col, value)
            self.note(reason, "csv", note, order_ref=o.ref, line=1)
            if lines > 1:
                self.note("ORDER_INCOMPLETE", "csv", "the order's other lines are rejected with it", order_ref=o.ref)
        o = csv_order(3, "UNKNOWN_CURRENCY")
        o.mutate = all_rows("currency", "EURO")
        self.note("UNKNOWN_CURRENCY", "csv", "currency 'EURO'", order_ref=o.ref)
        o = csv_order(4, "BAD_DATE")
        o.mutate = all_rows("order_ts", "2026-02-30 10:15")
        self.note("BAD_DATE", "csv", "order_ts 2026-02-30 10:15 (no such day)", order_ref=o.ref)

        def exact_copy(rows: list[Any]) -> None:
            rows.insert(1, dict(rows[0]))

        o = csv_order(5, None)  # the copy is dropped, the order is captured
        o.mutate = exact_copy
        self.note("DUPLICATE_LINE", "csv", "line 1 sent twice, identical: the copy is dropped, the order kept",
                  order_ref=o.ref, order_kept=True)

        def conflicting(rows: list[Any]) -> None:
            rows.append({**rows[0], "quantity": str(int(rows[0]["quantity"]) + 3)})

        o = csv_order(5, "DUPLICATE_LINE")
        o.mutate = conflicting
        self.note("DUPLICATE_LINE", "csv", "line 1 twice with different quantities: the order is rejected",
                  order_ref=o.ref)

        def inconsistent(rows: list[Any]) -> None:
            other = rows[0]["order_ts"][:10] + " 16:45"
            rows[1]["order_ts"] = other if other != rows[0]["order_ts"] else rows[0]["order_ts"][:10] + " 16:46"

        o = csv_order(6, "INCONSISTENT_HEADER", min_lines=2)
        o.mutate = inconsistent
        self.note("INCONSISTENT_HEADER", "csv", "line 2 carries a different order_ts", order_ref=o.ref)

        # structural row problems: raw lines
        def raw_line(values: dict[str, str], transform: Callable[[list[str]], list[str]]) -> str:
            vals = transform([values[c] for c in CSV_COLUMNS])
            return ",".join(vals)

        def safe(r: dict[str, str]) -> dict[str, str]:
            return {c: v.replace(",", " ").replace('"', "").replace("\n", " ") for c, v in r.items()}

        def extra_field(rows: list[Any]) -> None:
            r = safe(rows[0])
            r["description"] = r["description"].split(" ")[0] + " Gloves, nitrile"
            rows[0] = raw_line(r, lambda v: v)

        o = csv_order(2, "CSV_EXTRA_FIELDS")
        o.mutate = extra_field
        self.note("CSV_EXTRA_FIELDS", "csv", "unquoted comma in the description: one field too many",
                  order_ref=o.ref)

        def missing_fields(rows: list[Any]) -> None:
            rows[0] = raw_line(safe(rows[0]), lambda v: v[:-2])

        o = csv_order(3, "CSV_MISSING_FIELDS")
        o.mutate = missing_fields
        self.note("CSV_MISSING_FIELDS", "csv", "row cut after uom: two fields missing", order_ref=o.ref)

        # unterminated quote near the end of another rep's weekly file: the open quote runs on into the
        # next row (a one-line order whose description is quoted), which is swallowed into the same
        # malformed record
        last_week = self.day(1)
        o = self.order("csv", 1, k=3, min_lines=2, pred=lambda c: c.rep == "alice_chen", bad="CSV_MALFORMED_ROW")
        v = self.order("csv", 1, k=4, pred=lambda c: c.rep == "alice_chen", bad="CSV_MALFORMED_ROW")
        v.lines = v.lines[:1]
        o.ts, v.ts = _at(last_week, 23, 50), _at(last_week, 23, 51)
        for x, rank in ((o, 1), (v, 2)):
            x.extra["rep"] = "alice_chen"
            x.extra["last_in_file"] = rank

        def unterminated(rows: list[Any]) -> None:
            r = safe(rows[-1])
            r["description"] = '"' + r["description"] + " 12 in"
            rows[-1] = raw_line(r, lambda v: v)

        def quoted(rows: list[Any]) -> None:
            rows[0]["description"] += ", per quote Q-40417"

        o.mutate, v.mutate = unterminated, quoted
        self.note("CSV_MALFORMED_ROW", "csv", "unterminated quote in the description of the order's last row; "
                  "the open quote swallows the next row (order swallowed_order_ref)", order_ref=o.ref,
                  swallowed_order_ref=v.ref)
        self.note("ORDER_INCOMPLETE", "csv", "line 1 of the order with the unterminated quote", order_ref=o.ref)

        # a rep export missing the sku column (the whole file)
        d = self.day(9)
        cols = ["item_number" if c == "sku" else c for c in CSV_COLUMNS]
        lost = self.order("csv", 9, k=5, pred=lambda c: c.rep == "dana_kim", bad="CSV_MISSING_COLUMN")
        lost.file = RAW
        rows = [{("item_number" if c == "sku" else c): v for c, v in r.items()} for r in csv_rows(lost, self.ref)]
        name = f"rep_dana_kim_week{d.isocalendar()[1]:02d}_export.csv"
        self.raw_files.append(("csv", name, csv_text(rows, columns=cols, line_terminator="\r\n").encode(),
                               _at(d, 18, 30)))
        self.note("CSV_MISSING_COLUMN", "csv", "header has item_number instead of sku", file=name)

        # an empty re-download
        d = self.day(10)
        name = f"rep_dana_kim_week{d.isocalendar()[1]:02d} (1).csv"
        self.raw_files.append(("csv", name, b"", _at(d, 18, 31)))
        self.note("EMPTY_FILE", "csv", "zero-byte file (a failed re-download)", file=name)

        # a cp1252 ("ANSI") file must be accepted: one of francois's orders carries accents
        o = self.order("csv", 4, k=2, pred=lambda c: c.rep == "francois_dubois")
        o.extra["rep"] = "francois_dubois"

        def accents(rows: list[Any]) -> None:
            for r in rows:
                r["ship_to_name"] = "Hélène Lefèvre"
                r["description"] = r["description"] + " – qualité supérieure"

        o.mutate = accents
        self.cp1252_order = o.ref

        # a broken Parquet export
        d = self.day(7)
        lost = [self.order("csv", 7, k=7 + i, bad="UNREADABLE_FILE") for i in range(2)]
        rows = [r for o in lost for r in csv_rows(o, self.ref)]
        for o in lost:
            o.file = RAW
        df = pl.DataFrame({c: [r[c] for r in rows] for c in CSV_COLUMNS}, schema={c: pl.String for c in CSV_COLUMNS})
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", statistics=False)
        data = buf.getvalue()
        name = f"bulk_orders_{d:%Y%m%d}.parquet"
        self.raw_files.append(("csv", name, data[: len(data) // 2], _at(d, 21, 0)))
        self.note("UNREADABLE_FILE", "csv", "Parquet file cut in half (no footer)", file=name)

    # --------------------------------------------------------------------------------------------
    def portal(self) -> None:
        o = self.order("b2b_portal", 2, k=3, min_lines=2, bad="BAD_QUANTITY")

        def zero_qty(rec: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
            rec[1][0]["quantity"] = Decimal("0")

        o.mutate = zero_qty
        self.note("BAD_QUANTITY", "b2b_portal", "portal_order_lines quantity 0 on line 1", order_ref=o.ref,
                  file="b2b_portal.sqlite")
        self.note("ORDER_INCOMPLETE", "b2b_portal", "line 2 of the same order", order_ref=o.ref,
                  file="b2b_portal.sqlite")

    # --------------------------------------------------------------------------------------------
    def sprinkle(self) -> None:
        """At realistic volume, ~1.2 % of web and rep orders carry a random field defect."""
        defects: list[tuple[str, str, Callable[[Any], None]]] = []

        def shop_qty(doc: dict[str, Any]) -> None:
            doc["line_items"][0]["quantity"] = 0

        def shop_price(doc: dict[str, Any]) -> None:
            doc["line_items"][-1]["price"] = "$" + doc["line_items"][-1]["price"]

        def csv_qty(rows: list[Any]) -> None:
            rows[0]["quantity"] = "1O"

        def csv_rate(rows: list[Any]) -> None:
            rows[0]["tax_rate"] = "7%"

        defects = [("shopify", "BAD_QUANTITY", shop_qty), ("shopify", "BAD_PRICE", shop_price),
                   ("csv", "BAD_QUANTITY", csv_qty), ("csv", "BAD_RATE", csv_rate)]
        for channel in ("shopify", "csv"):
            pool = sorted((o for o in self.sim.orders if o.channel == channel and not o.bad and not o.scenario
                           and o.mutate is None and not o.extra.get("bulk")), key=lambda o: (o.ts, o.ref))
            n = max(1, int(len(pool) * 0.012)) if pool else 0
            for o in self.rng.sample(pool, n) if n else []:
                choices = [d for d in defects if d[0] == channel]
                _ch, reason, fn = self.rng.choice(choices)
                o.mutate, o.bad = fn, reason
                self.note(reason, channel, "random field defect", order_ref=o.ref, sprinkled=True)

    def custom_items(self) -> None:
        """A Shopify POS order with a custom line item (sku and variant_id null, ships): captured as item_kind
        'custom', held CUSTOM_ITEM_REVIEW. Drawn last, so the rest of the demo does not move."""
        def engraving(doc: dict[str, Any]) -> None:
            first = doc["line_items"][0]
            doc["line_items"].append({
                **{k: v for k, v in first.items() if k not in ("tax_lines", "discount_allocations")},
                "id": first["id"] + 1, "product_id": None, "variant_id": None, "sku": None,
                "title": "Engraved brass plaque", "name": "Engraved brass plaque", "quantity": 1, "price": "45.00",
                "requires_shipping": True, "total_discount": "0.00", "discount_allocations": [], "tax_lines": []})
            doc["source_name"] = "pos"
            for k in ("total_price", "subtotal_price", "total_line_items_price"):  # the stated totals include it
                if doc.get(k) is not None:
                    doc[k] = format(Decimal(doc[k]) + Decimal("45.00"), "f")

        o = self.order("shopify", 1, k=9)
        o.mutate = engraving
        o.scenario = "custom_item"  # a validation case, not an injected capture defect: no manifest note

    def run(self) -> None:
        self.shopify()
        self.amazon()
        self.edi()
        self.csv()
        self.portal()
        self.sprinkle()
        self.custom_items()


__all__ = ["Injector"]
