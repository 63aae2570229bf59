"""Benchmark: every validation check + stock reservation on 1,000,000 order lines.

    .venv/bin/python bench/bench_validation.py [--orders 250000] [--history-orders 125000] [--keep DIR]

1. generates (deterministically, vectorised with Polars, in a child process so its memory is not counted)
   ~250k orders / ~1,000,000 lines over one week from 300 customers and 1,000 SKUs, plus a history of ~125k
   orders / ~500k lines over the six months before, and reference frames shaped like the demo's (tier price
   lists with quantity breaks and two validity generations in USD and EUR, promotions with caps and windows,
   4 warehouses of stock, open items with some overdue). Sprinkled problems: wrong prices, unpriced lines,
   big discounts, quantity spikes, unknown/inactive SKUs and customers, embargoed and bad addresses, hazmat
   by air, expired/unknown promo codes;
2. loads the frames (Parquet) and runs ``run_checks`` -- the check registry (``validation.checks.CHECKS``)
   through the code path the pipeline uses -- timing each check and each derived input;
3. prints wall time per check, total, lines/s, findings per reason, and peak RSS
   (``resource.getrusage(...).ru_maxrss``). Target: total <= 20 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

M = 2_147_483_647  # 2^31 - 1
AS_OF = date(2026, 9, 8)
BATCH_START = datetime(2026, 9, 1, tzinfo=UTC)
HIST_START = datetime(2026, 3, 1, tzinfo=UTC)
N_CUSTOMERS, N_SKUS = 300, 1000
TIERS = ["standard", "standard", "standard", "standard", "standard", "silver", "silver", "gold", "gold", "platinum"]
TABLES = ["orders", "lines", "history_orders", "history_lines", "customers", "products", "price_lists",
          "promotions", "inventory", "open_items", "committed", "fixed_reserved", "prior_usage"]


def rnd(e: pl.Expr, seed: int) -> pl.Expr:
    """Deterministic pseudo-random integer in [0, 2^31 - 1) from an integer expression (Park-Miller mixing)."""
    x = (e.cast(pl.Int64) * 7919 + seed * 104_729 + 12_345) % M
    x = (x * 48_271) % M
    x = (x * 48_271) % M
    return (x * 16_807) % M


def dec(cents: pl.Expr, scale: int = 2) -> pl.Expr:
    return (cents.cast(pl.Decimal(38, scale)) / 100).cast(pl.Decimal(18, scale))


# ------------------------------------------------------------------------------------------------
# Reference frames
# ------------------------------------------------------------------------------------------------
def reference() -> dict[str, pl.DataFrame]:
    from som_pipeline import schemas

    i = pl.col("i")
    customers = pl.DataFrame({"i": pl.int_range(N_CUSTOMERS, eager=True)}).select(
        pl.format("C{}", (i + 1).cast(pl.String).str.zfill(4)).alias("customer_id"),
        pl.format("Customer {}", i).alias("name"),
        pl.lit(None, dtype=pl.String).alias("email"),
        pl.lit(pl.Series(TIERS)).gather(i % 10).alias("tier"),
        dec((1_000_000 + (rnd(i, 1) % 40) * 100_000) * 100).alias("credit_limit"),  # ~ a week of orders
        pl.when(i % 15 == 0).then(pl.lit("EUR")).otherwise(pl.lit("USD")).alias("currency"),
        pl.when(i % 7 == 0).then(0).otherwise(30).alias("payment_terms_days"),
        pl.when(i % 15 == 0).then(pl.lit("DE")).otherwise(pl.lit("US")).alias("country"),
        (i % 11 == 0).alias("ship_complete"),
        (i % 3 == 0).alias("allow_substitutes"),
        (i % 97 != 5).alias("active"),
        pl.lit(date(2024, 1, 1)).alias("created_on"),
    )
    products = pl.DataFrame({"i": pl.int_range(N_SKUS, eager=True)}).select(
        pl.format("P{}", i.cast(pl.String).str.zfill(5)).alias("sku"),
        pl.format("Product {}", i).alias("name"),
        pl.format("Category {}", i % 10).alias("category"),
        (0.1 + (rnd(i, 2) % 500) / 100).alias("weight_kg"),
        pl.lit(20.0).alias("length_cm"), pl.lit(10.0).alias("width_cm"), pl.lit(5.0).alias("height_cm"),
        dec(100 + rnd(i, 3) % 20_000, 4).alias("list_price"),
        pl.lit("USD").alias("currency"),
        (i % 20 == 3).alias("hazmat"),
        pl.when(i % 33 == 1).then(pl.lit("AU|MX")).otherwise(None).alias("restricted_countries"),
        pl.when(i % 5 == 0).then(pl.format("P{}|P{}", ((i + 1) % N_SKUS).cast(pl.String).str.zfill(5),
                                           ((i + 2) % N_SKUS).cast(pl.String).str.zfill(5)))
        .otherwise(None).alias("substitutes"),
        (i % 100 != 99).alias("active"),
    )
    # price lists: tier x sku x break (1, 10, 50) x generation (to 2026-06-30 / from 2026-07-01) x currency
    lp = products.select("sku", (pl.col("list_price").cast(pl.Float64) * 100).round(0).cast(pl.Int64).alias("c"))
    grid = (lp.join(pl.DataFrame({"tier": ["standard", "silver", "gold", "platinum"], "td": [0, 5, 10, 15]}),
                    how="cross")
            .join(pl.DataFrame({"min_qty": [1, 10, 50], "bd": [0, 3, 6]}), how="cross")
            .join(pl.DataFrame({"gen": [0, 1]}), how="cross")
            .join(pl.DataFrame({"currency": ["USD", "EUR"], "fx": [100, 92]}), how="cross"))
    price_lists = grid.select(
        "tier", "sku", "min_qty",
        dec(pl.col("c") * pl.col("fx") * (100 - pl.col("td") - pl.col("bd")) * (100 + 4 * pl.col("gen"))
            // 1_000_000, 4).alias("price"),
        "currency",
        pl.when(pl.col("gen") == 0).then(pl.lit(date(2025, 1, 1))).otherwise(pl.lit(date(2026, 7, 1)))
        .alias("valid_from"),
        pl.when(pl.col("gen") == 0).then(pl.lit(date(2026, 6, 30))).otherwise(None).alias("valid_to"),
        pl.col("tier").replace_strict({"standard": "0.05", "silver": "0.08", "gold": "0.12", "platinum": "0.15"})
        .str.to_decimal(scale=6).alias("max_discount_pct"),
    )
    promotions = pl.DataFrame({
        "code": ["WELCOME10", "FALL15", "SUMMER20", "HOLIDAY25", "FREESHIP", "TAKE5", "GOLD10", "CAT3", "FLASH30",
                 "NEWCUST15"],
        "kind": ["percent", "percent", "percent", "percent", "free_shipping", "fixed_amount", "percent", "percent",
                 "percent", "percent"],
        "value": ["0.10", "0.15", "0.20", "0.25", "0", "5.00", "0.10", "0.12", "0.30", "0.15"],
        "valid_from": [date(2025, 1, 1), date(2026, 9, 1), date(2026, 5, 1), date(2026, 11, 20), date(2026, 1, 1),
                       date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 1), date(2026, 9, 3), date(2025, 1, 1)],
        "valid_to": [None, date(2026, 9, 7), date(2026, 8, 20), date(2026, 12, 31), None, date(2026, 12, 31), None,
                     None, date(2026, 9, 5), None],
        "eligible_tiers": ["*", "*", "*", "*", "*", "*", "gold|platinum", "*", "*", "standard"],
        "eligible_channels": ["shopify", "shopify|b2b_portal", "*", "*", "*", "shopify", "*", "*", "shopify", "*"],
        "eligible_skus": ["*"] * 10,
        "eligible_categories": ["*", "*", "*", "*", "*", "*", "*", "Category 3", "*", "*"],
        "usage_cap": [None, None, None, None, None, None, None, None, 300, 5000],
    }).with_columns(pl.col("value").str.to_decimal(scale=4))
    inventory = (products.select("sku", pl.int_range(N_SKUS).alias("i"))
                 .join(pl.DataFrame({"warehouse_id": ["WH-NJ", "WH-CA", "WH-TX", "WH-NL"], "w": [0, 1, 2, 3]}),
                       how="cross")
                 .select("warehouse_id", "sku",
                         pl.when(rnd(i * 4 + pl.col("w"), 4) % 20 == 0).then(0)
                         .otherwise(rnd(i * 4 + pl.col("w"), 5) % 8_000).alias("on_hand"),
                         pl.lit(datetime(2026, 9, 8, 6, tzinfo=UTC)).alias("as_of")))
    oi = pl.DataFrame({"i": pl.int_range(N_CUSTOMERS * 2, eager=True)})
    open_items = oi.join(customers.with_row_index("ci").with_columns(pl.col("ci").cast(pl.Int64)),
                         left_on=pl.col("i") // 2, right_on="ci").select(
        pl.format("INV-{}", i).alias("invoice_id"), "customer_id",
        dec(5_000 + rnd(i, 6) % 300_000).alias("amount_open"), "currency",
        (pl.lit(AS_OF) - pl.duration(days=10 + rnd(i, 7) % 60)).alias("invoice_date"),
    ).with_columns((pl.col("invoice_date") + pl.duration(days=30)).alias("due_date"))
    out = {
        "customers": schemas.conform(customers, schemas.CustomerModel),
        "products": schemas.conform(products, schemas.ProductModel),
        "price_lists": schemas.conform(price_lists, schemas.PriceListModel),
        "promotions": schemas.conform(promotions, schemas.PromotionModel),
        "inventory": schemas.conform(inventory, schemas.InventoryModel),
        "open_items": schemas.conform(open_items, schemas.OpenItemModel),
        "committed": customers.select("customer_id", dec(rnd(pl.int_range(pl.len()), 8) % 100_000).alias("amount")),
        "fixed_reserved": products.select("sku", (rnd(pl.int_range(pl.len()), 9) % 200).alias("quantity")),
        "prior_usage": pl.DataFrame({"code": ["FLASH30", "NEWCUST15"], "used": [120, 4_000]}),
    }
    return out


# ------------------------------------------------------------------------------------------------
# Orders
# ------------------------------------------------------------------------------------------------
def make_orders(prefix: str, n_orders: int, start: datetime, span_s: int, seed: int,
                ref: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    from som_pipeline import schemas

    o = pl.col("o")
    cust = ref["customers"].with_row_index("cix").with_columns(pl.col("cix").cast(pl.Int64))
    channels = pl.Series(["shopify", "amazon", "edi", "csv", "b2b_portal"])
    promo = pl.Series(["WELCOME10", "FALL15", "SUMMER20", "HOLIDAY25", "FREESHIP", "TAKE5", "GOLD10", "CAT3",
                       "FLASH30", "NEWCUST15", "BOGUS99"])
    hdr = (pl.DataFrame({"o": pl.int_range(n_orders, eager=True)})
           .with_columns((rnd(o, seed) % N_CUSTOMERS).alias("cix"),
                         (1 + rnd(o, seed + 1) % 7).alias("n_lines"))
           .join(cust.select("cix", "customer_id", "tier", pl.col("currency").alias("c_cur")), on="cix", how="left")
           .with_columns(
               pl.format("{}-{}", pl.lit(prefix), o.cast(pl.String).str.zfill(7)).alias("order_id"),
               pl.lit(channels).gather(o % 5).alias("channel"),
               (pl.lit(start) + pl.duration(microseconds=(o * span_s * 1_000_000) // n_orders)).alias("order_ts"),
           ))
    # one line per row: sku from the customer's basket of ~12 SKUs, quantity around the customer x sku habit
    ln = (hdr.select("order_id", "o", "cix", "tier", "c_cur", "order_ts", "n_lines")
          .with_columns(pl.int_ranges(1, pl.col("n_lines") + 1).alias("line_no")).explode("line_no")
          .with_columns(pl.int_range(pl.len()).alias("li"))
          .with_columns(((pl.col("cix") * 31 + (rnd(pl.col("li"), seed + 2) % 12) * 7) % N_SKUS).alias("si")))
    li, si = pl.col("li"), pl.col("si")
    habit = 1 + (pl.col("cix") * 7 + si) % 20
    qty = (habit + rnd(li, seed + 3) % 5 - 2).clip(lower_bound=1)
    ln = ln.with_columns(
        pl.when(rnd(li, seed + 4) % 5_000 == 0).then(qty * 100).otherwise(qty).alias("quantity"),
        pl.when(rnd(li, seed + 5) % 4_000 == 0).then(pl.lit("ELC-99871"))
        .otherwise(pl.format("P{}", si.cast(pl.String).str.zfill(5))).alias("sku"),
    ).with_columns(
        pl.when(pl.col("quantity") >= 50).then(50).when(pl.col("quantity") >= 10).then(10).otherwise(1)
        .alias("min_qty"),
        pl.when(pl.col("order_ts").dt.date() <= date(2026, 6, 30)).then(pl.lit(date(2025, 1, 1)))
        .otherwise(pl.lit(date(2026, 7, 1))).alias("valid_from"),
    )
    pls = ref["price_lists"].select("tier", "sku", "currency", "min_qty", "valid_from", pl.col("price").alias("_p"))
    ln = ln.join(pls, left_on=["tier", "sku", "c_cur", "min_qty", "valid_from"],
                 right_on=["tier", "sku", "currency", "min_qty", "valid_from"], how="left")
    r = rnd(li, seed + 6) % 1_000
    unit_price = (pl.when(r < 20).then(None)                                   # 2 % unpriced
                  .when(r < 30).then((pl.col("_p") * pl.lit(11).cast(pl.Decimal(18, 4)) / 10).cast(pl.Decimal(18, 4)))
                  .otherwise(pl.col("_p")))
    ln = ln.with_columns(unit_price.alias("unit_price")).with_columns(
        (pl.col("unit_price").cast(pl.Decimal(38, 4)) * pl.col("quantity").cast(pl.Decimal(38, 4)))
        .round(2, mode="half_away_from_zero").cast(pl.Decimal(18, 2)).alias("line_amount"))
    disc_pct = pl.when(r % 50 == 7).then(20).when(r % 20 == 3).then(5).otherwise(0)
    ln = ln.with_columns(
        (pl.col("line_amount").fill_null(0).cast(pl.Decimal(38, 4)) * disc_pct.cast(pl.Decimal(38, 4)) / 100)
        .round(2, mode="half_away_from_zero").cast(pl.Decimal(18, 2)).alias("discount_amount"),
        pl.lit("EA").alias("uom"), pl.lit(0).cast(pl.Decimal(18, 2)).alias("tax_amount"),
        pl.lit(0).cast(pl.Decimal(18, 2)).alias("shipping_amount"), pl.lit(1).alias("version"),
    )
    tot = ln.group_by("order_id").agg(
        pl.when(pl.col("line_amount").is_null().any()).then(None).otherwise(pl.col("line_amount").sum())
        .alias("items_subtotal"),
        pl.col("discount_amount").sum().alias("discount_total"),
        pl.col("unit_price").is_null().sum().alias("unpriced_lines"),
        pl.len().alias("line_count"))
    country = (pl.when(o % 1_000 == 17).then(pl.lit("IR")).when(o % 40 == 1).then(pl.lit("CA"))
               .when(o % 40 == 2).then(pl.lit("GB")).when(o % 15 == 0).then(pl.lit("DE")).otherwise(pl.lit("US")))
    postal = (pl.when(o % 700 == 3).then(pl.lit("4321")).when(country == "CA").then(pl.lit("K1A 0B1"))
              .when(country == "GB").then(pl.lit("SW1A 1AA")).when(country == "IR").then(pl.lit("1966734511"))
              .otherwise((10_000 + rnd(o, seed + 7) % 89_999).cast(pl.String)))
    orders = (hdr.join(tot, on="order_id", how="left").with_columns(
        pl.when(o % 500 == 11).then(None).otherwise(pl.col("customer_id")).alias("customer_id"),
        pl.col("order_id").str.split_exact("-", 1).struct.field("field_1").alias("channel_order_ref"),
        pl.format("ref-{}", pl.col("customer_id")).alias("customer_ref"),
        pl.col("c_cur").alias("currency"),
        pl.lit("Pat Doe").alias("ship_to_name"),
        pl.when(o % 900 == 5).then(None).otherwise(pl.format("{} Main St", o % 999 + 1)).alias("ship_to_line1"),
        pl.lit("Springfield").alias("ship_to_city"),
        country.alias("ship_to_country"), postal.alias("ship_to_postal_code"),
        pl.when(o % 10 == 0).then(pl.lit("UPS_AIR")).when(o % 10 == 1).then(pl.lit("FEDEX_EXPRESS"))
        .otherwise(pl.lit("UPS_GROUND")).alias("ship_method"),
        pl.when(o % 10 == 4).then(pl.lit(promo).gather(rnd(o, seed + 8) % 11)).otherwise(None).alias("promo_code"),
        pl.when(pl.col("channel").is_in(["shopify", "amazon"])).then(pl.lit("paid")).otherwise(None)
        .alias("payment_status"),
        (o % 25 == 0).alias("ship_complete"),
        pl.lit(0).cast(pl.Decimal(18, 2)).alias("tax_total"),
        pl.lit(0).cast(pl.Decimal(18, 2)).alias("shipping_total"),
        pl.lit("bench").alias("source_file"), pl.lit("row").alias("source_location"),
        pl.lit("h").alias("content_hash"), pl.col("order_ts").alias("captured_at"), pl.lit(1).alias("version"),
        pl.col("order_ts").dt.date().alias("order_date"), pl.col("order_ts").alias("first_captured_at"),
        pl.col("order_id").alias("capture_id"),
    ).with_columns((pl.col("items_subtotal") - pl.col("discount_total")).alias("order_total")))
    return schemas.conform(orders, schemas.OrderModel), schemas.conform(ln.with_columns(pl.lit("catalog").alias("item_kind")), schemas.OrderLineModel)


def generate(out_dir: Path, n_orders: int, n_hist: int) -> dict[str, int]:
    ref = reference()
    orders, lines = make_orders("B", n_orders, BATCH_START, 7 * 86_400, 100, ref)
    h_orders, h_lines = make_orders("H", n_hist, HIST_START, 183 * 86_400, 200, ref)
    frames = {**ref, "orders": orders, "lines": lines, "history_orders": h_orders, "history_lines": h_lines}
    for name, df in frames.items():
        df.write_parquet(out_dir / f"{name}.parquet")
    return {"orders": orders.height, "lines": lines.height, "history_orders": h_orders.height,
            "history_lines": h_lines.height}


# ------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(data_dir: Path) -> None:
    import som_pipeline.validation as v

    f = {name: pl.read_parquet(data_dir / f"{name}.parquet") for name in TABLES}
    cfg = v.load_config()
    n_lines, n_orders = f["lines"].height, f["orders"].height
    rss0 = _rss_mb()
    timings: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        timings[name] = time.perf_counter() - t
        print(f"  {name:<24} {timings[name]:6.2f} s   (peak RSS so far {_rss_mb():,.0f} MB)", flush=True)
        return out

    def timed_check(check, inputs):
        # derived inputs (priority, estimated order values) are timed on their own, once per CheckInputs
        for name in check.inputs:
            if name in v.checks.DERIVED_INPUTS and name not in vars(inputs):
                timed(f"{check.rule}: {name}", getattr, inputs, name)
        return timed(check.fn.__name__, v.run_check, check, inputs)

    t_all = time.perf_counter()
    run = v.run_checks(f["orders"], f["lines"], customers=f["customers"], products=f["products"],
                       price_lists=f["price_lists"], promotions=f["promotions"], inventory=f["inventory"],
                       open_items=f["open_items"], as_of=AS_OF, history_orders=f["history_orders"],
                       history_lines=f["history_lines"], prior_usage=f["prior_usage"], committed=f["committed"],
                       fixed_reserved=f["fixed_reserved"], cfg=cfg, runner=timed_check, sort=False)
    results, rsv = run.results, run.reservations
    total = time.perf_counter() - t_all

    print()
    print(f"{n_orders:,} orders / {n_lines:,} lines (history {f['history_orders'].height:,} orders / "
          f"{f['history_lines'].height:,} lines) -> {results.height:,} result rows, {rsv.height:,} reservation rows")
    by_reason = (results.group_by("rule", "outcome", "reason_code").agg(pl.len().alias("rows"))
                 .sort("rule", "outcome", "reason_code"))
    with pl.Config(tbl_rows=60, tbl_hide_dataframe_shape=True, tbl_formatting="ASCII_MARKDOWN"):
        print(by_reason)
        print(rsv.group_by("decision").agg(pl.len().alias("rows"), pl.col("quantity_reserved").sum(),
                                            pl.col("quantity_backordered").sum()).sort("decision"))
    # invariant: never more reserved than available
    avail = v.available_stock(f["inventory"], f["fixed_reserved"]).collect()
    over = (rsv.group_by("sku").agg(pl.col("quantity_reserved").sum()).join(avail, on="sku", how="left")
            .filter(pl.col("quantity_reserved") > pl.col("_available").fill_null(0)))
    assert over.height == 0, over
    load = os.getloadavg()
    print(f"total {total:.2f} s for all checks + reservation (timed steps {sum(timings.values()):.2f} s): "
          f"{n_lines / total:,.0f} lines/s ({n_orders / total:,.0f} orders/s); target <= 20 s")
    print(f"peak RSS {_rss_mb():,.0f} MB (after loading the frames {rss0:,.0f} MB); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=250_000)
    ap.add_argument("--history-orders", type=int, default=125_000)
    ap.add_argument("--keep", type=Path, help="write the generated Parquet files into this directory and keep them")
    ap.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:
        info = generate(args.generate_only, args.orders, args.history_orders)
        print(" ".join(f"{k}={v}" for k, v in info.items()))
        return
    with tempfile.TemporaryDirectory(prefix="bench_validation_") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        # generated in a child process: its memory does not count towards this process's peak RSS
        out = subprocess.run(
            [sys.executable, __file__, "--orders", str(args.orders), "--history-orders", str(args.history_orders),
             "--generate-only", str(base)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        info = {k: int(v) for k, v in (kv.split("=") for kv in out.split())}
        print(f"generated {info['orders']:,} orders / {info['lines']:,} lines + history {info['history_orders']:,} "
              f"/ {info['history_lines']:,} in {time.perf_counter() - t:.1f} s")
        run(base)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
