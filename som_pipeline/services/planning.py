"""Planning services: the demand history (``state.daily_demand``), demand forecast (backtest, model choice) and
the replenishment plan.

The forecast never recomputes demand from all orders. :func:`update_demand_history` keeps ``state.daily_demand``
(sparse: days with demand only) current per order date: DuckDB fingerprints each order date's inputs (its live
lines, their allocations, the home-warehouse reference) in one streaming aggregate; only the dates whose
fingerprint changed (new orders, a changed or cancelled order, a new allocation, new zones) are recomputed by the
pure core (:func:`~som_pipeline.planning.demand_rows`, over those dates' orders only, in batches) and upserted
(delete + insert of those dates, one transaction). The forecast then reads the last ``history_days`` of the
state table (:func:`read_demand_window`) and only series with demand in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from som_pipeline.config import Settings
from som_pipeline.parquet_stage import PartFiles, part_files
from som_pipeline.services import Step
from som_pipeline.services.validation import business_now
from som_pipeline.warehouse import read_table, read_tables, transaction

DEMAND_INPUTS = ("core.orders", "core.order_lines", "core.allocations", "ref.shipping_zones", "ref.warehouses")
FORECAST = Step(reads=(*DEMAND_INPUTS, "state.daily_demand", "state.forecast_fits"),
                writes=("state.daily_demand", "state.forecast_fits", "core.demand_forecast", "core.forecast_accuracy"))
REPLENISHMENT = Step(reads=("core.demand_forecast", "core.forecast_accuracy", "core.stock_ledger", "core.reservations",
                            "ref.warehouses", "ref.products", "core.allocations", "core.shipment_lines"),
                     writes=("core.replenishment_plan",))

# Series per part of the forecast: a part's statsforecast frames, backtest errors and forecast rows (horizon_days
# per series) are what it holds at once -- the kept series' forecast rows are read and carried forward in parts
# of the same size. Each part's rows are staged in Parquet; one transaction publishes them. Every series is
# fitted on its own and anything global (classes, heavy-model budgets, the overall accuracy rows) is computed
# over all series, so the tables do not depend on the part size (a test forces parts of 2 series).
PART_SERIES = 50_000
Sink = Callable[[str, pl.DataFrame], None]

# Order lines recomputed per batch when the history is (re)built: bounds the memory of a first run or a rebuild.
# A batch is whole order dates; a date with more lines than this (TPC-H SF 1 on one day: 6M) is recomputed in
# buckets of its orders (by a hash of the order id), whose units are summed per SKU x warehouse x date.
HISTORY_BATCH_LINES = 500_000

# One row per order date with live lines: its fingerprint and line count. Everything a date's demand rows derive
# from is hashed: the live lines (order, version, ship-to, line, SKU, quantity), their allocations, and the
# reference that chooses home warehouses (zones, active warehouses) -- a change of that reference changes every
# date's fingerprint, i.e. recomputes the whole history, as it must. bit_xor makes it order-independent.
_FINGERPRINTS = """
WITH alloc AS (
    SELECT order_id, line_no, bit_xor(hash(sku, warehouse_id, quantity)) AS h
    FROM core.allocations GROUP BY order_id, line_no
), ref AS (
    SELECT hash(
        (SELECT coalesce(bit_xor(hash(warehouse_id, dest_country, dest_region, zone)), 0) FROM ref.shipping_zones),
        (SELECT coalesce(bit_xor(hash(warehouse_id, active)), 0) FROM ref.warehouses)) AS h
)
SELECT o.order_date,
       count(*) AS lines,
       lower(hex(hash(bit_xor(hash(o.order_id, o.version, o.ship_to_country, o.ship_to_region, l.line_no, l.sku,
                                   l.quantity, coalesce(a.h, 0))), any_value(ref.h)))) AS day_fingerprint
FROM core.orders o
JOIN core.order_lines l ON l.order_id = o.order_id AND l.version = o.version
LEFT JOIN alloc a ON a.order_id = l.order_id AND a.line_no = l.line_no
CROSS JOIN ref
WHERE o.cancelled_at IS NULL
GROUP BY o.order_date
"""


@dataclass
class HistoryUpdate:
    """What :func:`update_demand_history` did: the order dates recomputed (or removed), the rows written for
    them, and the table's size after."""

    dates: list[date]
    rows: pl.DataFrame  # the rows written (empty when a ``sink`` took them)
    total_rows: int
    written: int = 0  # rows written


def update_demand_history(con: duckdb.DuckDBPyConnection, *, rebuild: bool = False,
                          sink: Sink | None = None) -> HistoryUpdate:
    """Bring ``state.daily_demand`` up to date with the orders, in one transaction (call it outside one).

    Recomputes the order dates whose fingerprint changed (all dates with ``rebuild=True``: the explicit full
    rebuild, which must give the same table; it also forgets the forecast fits, ``state.forecast_fits``, so that
    the next forecast refits every series) and removes dates that no longer have live lines. ``sink(table,
    rows)``: gets each batch of rows written (the asset's checks) instead of the result holding them all."""
    from som_pipeline import planning as fc
    from som_pipeline.schemas import DailyDemandModel, conform
    from som_pipeline.warehouse import insert_frame

    current = con.execute(_FINGERPRINTS).pl()
    stored = con.execute("SELECT order_date, any_value(day_fingerprint) AS stored FROM state.daily_demand "
                         "GROUP BY order_date").pl()
    both = current.join(stored, on="order_date", how="full", coalesce=True)
    todo = both if rebuild else both.filter(pl.col("day_fingerprint").ne_missing(pl.col("stored")))
    todo = todo.sort("order_date")
    dates = todo["order_date"].to_list()
    written, n_written = [], 0
    with transaction(con):
        if rebuild:
            con.execute("DELETE FROM state.daily_demand")
            con.execute("DELETE FROM state.forecast_fits")  # the next forecast refits every series
        elif dates:
            con.execute("DELETE FROM state.daily_demand WHERE order_date IN (SELECT unnest(?::DATE[]))", [dates])
        live = todo.filter(pl.col("lines").is_not_null())
        if live.height:
            zones, whs = read_table(con, "ref.shipping_zones"), read_table(con, "ref.warehouses")
            live = live.with_columns(((pl.col("lines").cum_sum() - pl.col("lines")) // HISTORY_BATCH_LINES)
                                     .alias("_batch"))
            for part in live.partition_by("_batch", maintain_order=True):
                batch = part["order_date"].to_list()
                buckets = max(1, -(-int(part["lines"].sum()) // HISTORY_BATCH_LINES))
                rows = None
                for bucket in range(buckets):
                    args = [batch, buckets, bucket]
                    orders = con.execute(
                        "SELECT order_id, version, order_date, cancelled_at, ship_to_country, ship_to_region "
                        "FROM core.orders WHERE cancelled_at IS NULL AND order_date IN (SELECT unnest(?::DATE[])) "
                        "AND hash(order_id) % ? = ?", args).pl()
                    lines = con.execute(
                        "SELECT l.order_id, l.version, l.line_no, l.sku, l.quantity FROM core.order_lines l "
                        "JOIN core.orders o ON o.order_id = l.order_id AND o.version = l.version "
                        "WHERE o.cancelled_at IS NULL AND o.order_date IN (SELECT unnest(?::DATE[])) "
                        "AND hash(o.order_id) % ? = ?", args).pl()
                    allocations = con.execute(
                        "SELECT a.order_id, a.line_no, a.warehouse_id, a.quantity FROM core.allocations a "
                        "WHERE a.order_id IN (SELECT order_id FROM core.orders WHERE cancelled_at IS NULL "
                        "AND order_date IN (SELECT unnest(?::DATE[])) AND hash(order_id) % ? = ?)", args).pl()
                    got = fc.demand_rows(orders, lines, zones, whs, allocations if allocations.height else None)
                    del orders, lines, allocations
                    # a line's units count once, in its order's bucket: the buckets' units add up (integers)
                    rows = got if rows is None else (
                        pl.concat([rows, got]).group_by("sku", "warehouse_id", "ds").agg(pl.col("y").sum())
                        .sort("sku", "warehouse_id", "ds").select(list(fc.DEMAND_SCHEMA)))
                rows = conform(rows.rename({"ds": "order_date", "y": "units"})
                               .join(part.select("order_date", "day_fingerprint"), on="order_date"), DailyDemandModel)
                insert_frame(con, "state.daily_demand", rows)
                n_written += rows.height
                if sink is None:
                    written.append(rows)
                else:
                    sink("state.daily_demand", rows)
        total = con.execute("SELECT count(*) FROM state.daily_demand").fetchone()[0]
    rows = pl.concat(written) if written else conform(pl.DataFrame(), DailyDemandModel).clear()
    return HistoryUpdate(dates=dates, rows=rows, total_rows=total, written=n_written)


def read_demand_window(con: duckdb.DuckDBPyConnection, days: int) -> tuple[pl.DataFrame, date | None]:
    """``(demand, end)``: the forecast's input from ``state.daily_demand`` -- the last ``days`` days up to the
    last order date, series with demand in them only, as sparse rows (:func:`~som_pipeline.planning.window_demand`).
    Older history is not read, except to find where each of those series starts (one aggregate in DuckDB)."""
    from som_pipeline import planning as fc

    end = con.execute("SELECT max(order_date) FROM state.daily_demand").fetchone()[0]
    if end is None:
        return pl.DataFrame(schema=fc.DEMAND_SCHEMA), None
    lo = end - timedelta(days=days - 1)
    rows = con.execute("SELECT sku, warehouse_id, order_date AS ds, units AS y FROM state.daily_demand "
                       "WHERE order_date BETWEEN ? AND ?", [lo, end]).pl()
    first = con.execute(
        "SELECT d.sku, d.warehouse_id, min(d.order_date) AS first FROM state.daily_demand d "
        "SEMI JOIN (SELECT DISTINCT sku, warehouse_id FROM state.daily_demand WHERE order_date BETWEEN ? AND ?) r "
        "ON d.sku = r.sku AND d.warehouse_id = r.warehouse_id WHERE d.order_date < ? GROUP BY ALL",
        [lo, end, lo]).pl()
    return fc.window_demand(rows, first, end, days), end


# Per series with demand in the window [lo, end]: a hash of its days with demand in the window and of whether it
# started before the window (first day with demand < lo). One aggregate over the state table.
_WINDOW_FINGERPRINTS = """
SELECT sku, warehouse_id,
       lower(hex(hash(bit_xor(hash(order_date, units)) FILTER (WHERE order_date >= $lo),
                      min(order_date) < $lo))) AS window_fingerprint
FROM state.daily_demand WHERE order_date <= $end
GROUP BY sku, warehouse_id HAVING count(*) FILTER (WHERE order_date >= $lo) > 0
"""


def window_fingerprints(con: duckdb.DuckDBPyConnection, lo: date, end: date) -> pl.DataFrame:
    """``sku, warehouse_id, window_fingerprint`` of each series with demand in the window ``lo .. end``
    (:func:`read_demand_window`): a hash of its days with demand in the window and of whether it started before
    the window -- what the models see of it, except the window's length for a series that started inside it. The
    window's bounds are not in it, so a series whose demand did not change keeps its fingerprint as the window
    slides (until one of its days with demand leaves it); ``refit_after_days`` bounds that ageing."""
    return con.execute(_WINDOW_FINGERPRINTS, {"lo": lo, "end": end}).pl()


@dataclass
class ForecastRun:
    """What :func:`run_forecast` did.

    ``result``: the :class:`~som_pipeline.planning.ForecastResult` of the series refitted (``forecast``: their
    rows; ``accuracy``: the whole ``core.forecast_accuracy`` as written, empty when it was left as it was;
    ``backtest``: its series and scores, its errors only without a sink); ``refit``: ``sku, warehouse_id,
    reason`` of the series refitted; ``kept`` / ``dropped``: series whose fit was kept / that left the window;
    ``carried``: the rows added to kept forecasts (their new days); ``fits``: the ``state.forecast_fits`` rows
    written; ``series`` / ``forecast_rows``: the forecast table after the run; ``timings``: seconds per step;
    ``parts``: parts of series refitted. With a ``sink`` the rows written went to it, part by part, and
    ``result.forecast``, ``carried`` and ``fits`` are empty: ``written`` counts them (``fits``, ``fresh``,
    ``carried``) and ``preview`` holds the first forecast rows written."""

    result: object  # planning.ForecastResult
    history: HistoryUpdate
    refit: pl.DataFrame
    kept: int
    dropped: int
    carried: pl.DataFrame
    fits: pl.DataFrame
    series: int
    forecast_rows: int
    timings: dict
    written: dict = field(default_factory=dict)
    preview: pl.DataFrame | None = None
    parts: int = 0

    @property
    def written_forecast(self) -> pl.DataFrame:
        """The ``core.demand_forecast`` rows this run wrote (refits and carried-forward days; without a sink)."""
        return pl.concat([self.result.forecast, self.carried]) if self.carried.height else self.result.forecast


# A kept series' forecast rows after the new last day, and for each: how many it has and its last day (the
# rows of its last `season_length` days are what carry_forward repeats).
_KEPT_FORECAST = """
SELECT f.*, count(*) OVER w AS _live, max(f.forecast_date) OVER w AS _top
FROM core.demand_forecast f SEMI JOIN {kept} k USING (sku, warehouse_id)
WHERE f.forecast_date > ?
WINDOW w AS (PARTITION BY f.sku, f.warehouse_id)
QUALIFY f.forecast_date > _top - ?::INTEGER
"""


def _parts(keys: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """``keys`` cut, in order, into slices of at most ``size`` rows (at least one, possibly empty)."""
    n = max(size, 1)
    return [keys.slice(i, n) for i in range(0, keys.height, n)] or [keys]


class _Staged:
    """Rows written in parts: each part goes to a Parquet part file (:class:`~som_pipeline.parquet_stage.PartFiles`),
    to ``sink(table, rows)`` (the asset's checks) and, without a sink, to a list (small data, tests: the run returns
    them). :meth:`insert` appends a name's parts to its table in the publishing transaction."""

    def __init__(self, parts: PartFiles, sink: Sink | None) -> None:
        self.parts, self.sink = parts, sink
        self.frames: dict[str, list[pl.DataFrame]] = {}
        self.rows: dict[str, int] = {}
        self.preview: pl.DataFrame | None = None

    def add(self, name: str, table: str, df: pl.DataFrame) -> None:
        self.rows[name] = self.rows.get(name, 0) + df.height
        self.parts.add(name, df)
        if df.height and self.preview is None and table == "core.demand_forecast":
            self.preview = df.head(5)
        if self.sink is None:
            self.frames.setdefault(name, []).append(df)
        else:
            self.sink(table, df)

    def collected(self, name: str, empty: pl.DataFrame) -> pl.DataFrame:
        frames = self.frames.get(name, [])
        return pl.concat(frames, how="vertical_relaxed") if frames else empty

    def insert(self, con: duckdb.DuckDBPyConnection, name: str, table: str) -> None:
        self.parts.insert_into(con, table, name)


def run_forecast(wh, settings: Settings, now: datetime | None = None, *, rebuild: bool = False,
                 sink: Sink | None = None) -> ForecastRun:
    """Update ``state.daily_demand``, read its window, then refit (backtest, model choice, forecast) only the series
    that need it (:func:`~som_pipeline.planning.incremental.refit_plan`; every series on a first run, with
    ``rebuild=True`` or after a config change); kept series keep their fit (``state.forecast_fits``) and their
    forecast, carried forward to start after the new last day. Writes, in one transaction: the refitted series'
    fits and forecast rows, the carried days, the removal of expired days and of series that left the window, and
    ``core.forecast_accuracy`` (recomputed from the fits; only when a fit changed). docs/forecasting.md.

    In parts of :data:`PART_SERIES` series (bounded memory; the same tables whatever the part size): the kept
    series' rows are carried forward part by part, the refits backtested and forecast part by part, each part's
    rows staged in Parquet and given to ``sink(table, rows)`` when there is one (else returned); the accuracy
    is computed once over every series' scores; one transaction publishes it all."""
    import time

    from som_pipeline import planning as fc
    from som_pipeline.planning import incremental as inc
    from som_pipeline.planning.forecast import _utc
    from som_pipeline.planning.models import ERRORS_SCHEMA, Backtest, classified
    from som_pipeline.schemas import DemandForecastModel, ForecastAccuracyModel, ForecastFitModel, conform
    from som_pipeline.warehouse import registered, replace_keys, replace_table, select_keys

    now = _utc(now or business_now(settings))
    cfg = fc.load_config(settings.forecast_config)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    with wh.connect() as con:
        history = update_demand_history(con, sink=sink)
        demand, end = read_demand_window(con, cfg.history_days)
        end = end or now.date()
        fingerprints = window_fingerprints(con, end - timedelta(days=cfg.history_days - 1), end)
        fits = con.execute("SELECT * FROM state.forecast_fits WHERE chosen").pl()
    timings["read"] = time.perf_counter() - t
    classes = classified(demand, cfg, end)  # over every series: uids, classes and heavy budgets are global
    current = classes.join(fingerprints, on=inc.KEY, how="left")
    refit, kept, dropped = inc.refit_plan(current, fits, end, cfg, rebuild=rebuild)
    del fits, current
    empty_fc = conform(pl.DataFrame(), DemandForecastModel).clear()
    empty_fits = conform(pl.DataFrame(), ForecastFitModel).clear()

    with part_files(settings.tmp, "forecast-") as parts_dir:
        staged = _Staged(parts_dir, sink)
        # kept series: their rows after `end` carried forward; one without the rows it needs is refitted
        t = time.perf_counter()
        if kept.height:
            ok_parts, missing_parts = [], []
            for part in _parts(kept, PART_SERIES):
                with wh.connect() as con, registered(con, part) as k:
                    prev = con.execute(_KEPT_FORECAST.format(kept=k), [end, cfg.season_length]).pl()
                # a kept series needs its rows after `end`, consecutive, at least a season of them (else: refit)
                ok = (prev.group_by(inc.KEY).agg(pl.col("_live").first(), pl.col("_top").first())
                      .filter((pl.col("_live") == (pl.col("_top") - pl.lit(end)).dt.total_days())
                              & (pl.col("_live") >= cfg.season_length) & (pl.col("_live") <= cfg.horizon_days))
                      .select(inc.KEY))
                missing_parts.append(part.join(ok, on=inc.KEY, how="anti"))
                ok_parts.append(part.join(ok, on=inc.KEY, how="semi"))
                prev = prev.join(ok_parts[-1], on=inc.KEY, how="semi").drop("_live", "_top")
                staged.add("carried", "core.demand_forecast", inc.carry_forward(prev, end, cfg))
                del prev
            missing = pl.concat(missing_parts)
            if missing.height:
                refit = pl.concat([refit, missing.with_columns(pl.lit("forecast rows missing").alias("reason"))])
            kept = pl.concat(ok_parts)
        timings["carry"] = time.perf_counter() - t
        full = kept.height == 0  # everything refitted: the tables are replaced (a first run, a rebuild)

        # the refits, in parts of series (in uid order: the parts' rows concatenate to the one-part rows)
        todo = classes.join(refit.select(inc.KEY), on=inc.KEY, how="semi").select(inc.KEY)
        series, scores, errors, bt_timings = [], [], [], {}
        timings["backtest"] = timings["forecast"] = 0.0
        parts = _parts(todo, PART_SERIES)
        for part in parts:
            d = demand.join(part, on=inc.KEY, how="semi")
            t = time.perf_counter()
            bt = fc.backtest(d, cfg, end, only=part, classes=classes)
            timings["backtest"] += time.perf_counter() - t
            t = time.perf_counter()
            staged.add("fresh", "core.demand_forecast", fc.forecast(d, bt, cfg, now))
            timings["forecast"] += time.perf_counter() - t
            staged.add("fits", "state.forecast_fits", inc.fit_rows(bt, fingerprints, cfg, now))
            series.append(bt.series)
            scores.append(bt.scores)
            if sink is None:
                errors.append(bt.errors)
            for k, v in bt.timings.items():
                bt_timings[k] = bt_timings.get(k, 0.0) + v
            del bt, d
        bt = Backtest(series=pl.concat(series, how="vertical_relaxed"),
                      errors=pl.concat(errors, how="vertical_relaxed") if errors else pl.DataFrame(schema=ERRORS_SCHEMA),
                      scores=pl.concat(scores, how="vertical_relaxed"), end=end, folds=cfg.folds,
                      horizon_days=cfg.fold_horizon_days, timings=bt_timings)
        del series, scores, errors, demand

        t = time.perf_counter()
        changed = refit.height > 0 or dropped.height > 0
        acc = conform(pl.DataFrame(), ForecastAccuracyModel).clear()
        if changed:
            with wh.connect() as con:
                kept_fits = (select_keys(con, "state.forecast_fits", kept).sort(*inc.KEY, "model") if kept.height
                             else empty_fits)
            both = inc.combined_backtest(kept_fits, bt)
            acc = fc.accuracy(both, cfg, now)
            sigma = pl.concat([bt.series.select("sku", "warehouse_id", "model", "sigma_daily"),
                               kept_fits.filter(pl.col("chosen")).select("sku", "warehouse_id", "model",
                                                                         "sigma_daily")])
            acc = conform(acc.join(sigma, on=["sku", "warehouse_id", "model"], how="left")
                          .with_columns(pl.when(pl.col("chosen")).then(pl.col("sigma_daily")).alias("sigma_daily")),
                          ForecastAccuracyModel)
            del both, kept_fits, sigma
            if sink is not None:
                sink("core.forecast_accuracy", acc)
        timings["accuracy"] = time.perf_counter() - t

        t = time.perf_counter()
        with wh.transaction() as con:
            if full:
                con.execute("DELETE FROM state.forecast_fits")
                con.execute("DELETE FROM core.demand_forecast")
            else:
                gone = pl.concat([refit.select(inc.KEY), dropped])
                replace_keys(con, "state.forecast_fits", gone, empty_fits)
                replace_keys(con, "core.demand_forecast", gone, empty_fc)
                con.execute("DELETE FROM core.demand_forecast WHERE forecast_date <= ?", [end])
            staged.insert(con, "fits", "state.forecast_fits")
            staged.insert(con, "fresh", "core.demand_forecast")
            if not full:
                staged.insert(con, "carried", "core.demand_forecast")
            if changed:
                replace_table(con, "core.forecast_accuracy", acc)
            n_series, n_rows = con.execute(
                "SELECT count(DISTINCT (sku, warehouse_id)), count(*) FROM core.demand_forecast").fetchone()
        timings["write"] = time.perf_counter() - t
    fresh = staged.collected("fresh", empty_fc)
    result = fc.ForecastResult(forecast=fresh, accuracy=acc, errors=fc.error_stats(bt), backtest=bt)
    return ForecastRun(result=result, history=history, refit=refit, kept=kept.height, dropped=dropped.height,
                       carried=staged.collected("carried", empty_fc), fits=staged.collected("fits", empty_fits),
                       series=n_series, forecast_rows=n_rows, timings=timings, written=dict(staged.rows),
                       preview=staged.preview if staged.preview is not None else empty_fc, parts=len(parts))


# SKUs per part of the replenishment plan: a part's forecast rows (horizon_days per SKU x warehouse), reservations
# and allocations are what it holds at once. Every step but the priority is per SKU; the priority is given once
# over all proposals, so the plan does not depend on the part size (a test forces parts of 2 SKUs).
PART_SKUS = 25_000

# Per part of SKUs (``{k}``: a registered frame of ``sku``): what the plan reads. A reservation keeps its shipped
# units (the order's promise): what still holds stock is the rest; stock is the ledger's on hand; allocated units
# still to leave are the allocations less what shipped.
_REPLENISHMENT_READS = {
    "forecast": "SELECT sku, warehouse_id, forecast_date, forecast FROM core.demand_forecast SEMI JOIN {k} USING (sku)",
    "errors": "SELECT sku, warehouse_id, sigma_daily FROM core.forecast_accuracy SEMI JOIN {k} USING (sku) "
              "WHERE chosen AND sku <> '*'",
    "inventory": "SELECT warehouse_id, sku, on_hand FROM core.v_stock SEMI JOIN {k} USING (sku)",
    "reservations": """
        SELECT r.* REPLACE (r.quantity_reserved - coalesce(x.shipped, 0) AS quantity_reserved)
        FROM (SELECT * FROM core.reservations SEMI JOIN {k} USING (sku)) r
        LEFT JOIN (SELECT order_id, line_no, sku, sum(quantity) AS shipped
                   FROM core.shipment_lines SEMI JOIN {k} USING (sku) GROUP BY ALL) x USING (order_id, line_no, sku)
        WHERE r.quantity_reserved > coalesce(x.shipped, 0)""",
    "allocations": """
        SELECT a.* REPLACE (a.quantity - coalesce(x.shipped, 0) AS quantity)
        FROM (SELECT * FROM core.allocations SEMI JOIN {k} USING (sku)) a
        LEFT JOIN (SELECT order_id, line_no, sku, warehouse_id, sum(quantity) AS shipped
                   FROM core.shipment_lines SEMI JOIN {k} USING (sku) GROUP BY ALL) x
             USING (order_id, line_no, sku, warehouse_id)
        WHERE a.quantity > coalesce(x.shipped, 0)""",
}


def run_replenishment(wh, settings: Settings, now: datetime | None = None) -> pl.DataFrame:
    """Forecast + accuracy (sigma) + the ledger's stock - what is allocated and not shipped ->
    core.replenishment_plan (replaced). In parts of :data:`PART_SKUS` SKUs (every product, in order): each part's
    proposals from its own rows (:func:`~som_pipeline.planning.replenishment.proposals`), then one priority over
    all of them (:func:`~som_pipeline.planning.replenishment.prioritised`)."""
    from som_pipeline import planning as fc
    from som_pipeline.planning.replenishment import prioritised, proposals
    from som_pipeline.warehouse import registered, replace_table

    now = now or business_now(settings)
    cfg = fc.load_config(settings.forecast_config)
    with wh.connect() as con:
        t = read_tables(con, ("ref.warehouses", "ref.products"))
    whs, products = t["ref.warehouses"], t["ref.products"]
    skus = products.select("sku").unique().sort("sku")
    found = []
    for part in _parts(skus, PART_SKUS):
        with wh.connect() as con, registered(con, part) as k:
            r = {name: con.execute(sql.format(k=k)).pl() for name, sql in _REPLENISHMENT_READS.items()}
        allocations = r["allocations"]
        found.append(proposals(r["forecast"], r["errors"], r["inventory"], r["reservations"], whs,
                               products.join(part, on="sku", how="semi"), cfg, now,
                               allocations if allocations.height else None))
        del r, allocations
    plan = prioritised(pl.concat(found, how="vertical_relaxed"), now)
    with wh.transaction() as con:
        replace_table(con, "core.replenishment_plan", plan)
    return plan
