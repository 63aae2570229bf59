"""TPC-H as a SOM home: reference data and CSV-channel order files from ``tpchgen-cli`` (offline, deterministic).

``load_tpch(home, sf=0.01, days=1)`` generates the TPC-H tables at scale factor ``sf`` with the ``tpchgen-cli``
binary (Parquet, cached under ``$SOM_HOME/tmp/tpch/sf<sf>/``; same SF, same bytes) and turns them, in DuckDB
(vectorised, streaming, bounded by ``SOM_DUCKDB_MEMORY_LIMIT`` with spilling to ``$SOM_HOME/tmp``), into:

| TPC-H | SOM |
|---|---|
| part | ``reference/products.parquet`` (sku ``P<partkey>``, list price = ``p_retailprice``) and ``price_lists`` (every tier, one price = ``p_retailprice``, ``max_discount_pct`` 0.10 = TPC-H's largest discount) |
| part (p_mfgr) | ``product_aliases``: ``MFG<n>-<partkey>``, the manufacturer's part number (qualifier MG) |
| customer, nation | ``customers`` (``C<custkey>``; tier and credit limit from ``c_acctbal``), ``customer_aliases`` (csv channel: ``c_name``) and a real-looking address per nation (ISO country, city, region, a postal code of that country's format, street) |
| customer with ``c_acctbal < 0`` | an overdue open item of ``-c_acctbal`` (``open_items``): their orders are held ``CREDIT_OVERDUE`` |
| region, supplier, partsupp | one warehouse per TPC-H region; ``inventory`` = Σ ``ps_availqty`` of the part's suppliers in that region |
| orders, lineitem | ``landing/csv/tpch_sf<sf>_*.parquet``: the order template, one row per line item: ``quantity`` = ``l_quantity``, ``unit_price`` = ``p_retailprice`` (so quantity × unit_price = ``l_extendedprice`` exactly), ``discount_pct`` = ``l_discount`` × 100, ``tax_rate`` = ``l_tax`` |

Dates: TPC-H's order dates (1992-01-01 … 1998-08-02) are shifted so that the last one is ``end_date``.
``days=1`` (default): every order on ``end_date`` (one file); ``days=0``: every order at its (shifted) real date;
``days=D``: the orders of the last ``D`` real dates only. Spread orders go to one file per month; the orders
before ``end_date`` are history (``$SOM_HOME/validation.toml``: ``history_before = end_date``; ``as_of`` is pinned
to the day after ``end_date``).

What validation holds or rejects on a TPC-H home (by design, the rest is approved):

- ``EMBARGO`` (reject): customers of IRAN (IR is embargoed by default): 1 nation in 25.
- ``CREDIT_OVERDUE`` (hold): customers with a negative ``c_acctbal`` (about 9 %) owe that amount since 60 days.
- ``CREDIT_LIMIT`` (hold): the limit is 2,000,000 + 500 × ``c_acctbal`` (2.0–7.0 M); a customer's orders
  all placed on one day (``days=1``) exceed it only for the largest buyers.
- ``NEW_CUSTOMER_REVIEW`` (hold): with ``days=1`` nobody has history, so each customer's first order above 5,000
  is reviewed (about one order in 15); with history (``days`` 0 or > 1) only customers new on the evaluated day.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from som_pipeline.config import Settings

TPCH_LAST_ORDER_DATE = date(1998, 8, 2)
TPCH_TABLES = ("nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem")
DEFAULT_END_DATE = date(2026, 11, 25)
MANIFEST_NAME = "tpch_manifest.json"
MAX_DISCOUNT = "0.10"  # TPC-H l_discount is 0.00 … 0.10

# nation -> (ISO-2, region id of the warehouse's time zone, street style, [(city, region code, postal code)],
# [streets]); postal codes follow the country's format (validation/defaults.toml patterns where there is one)
NATIONS: dict[str, tuple[str, str, list[tuple[str, str, str]], list[str]]] = {
    "ALGERIA": ("DZ", "name_no", [("Alger", "16", "16000"), ("Oran", "31", "31000"), ("Constantine", "25", "25000")],
                ["Rue Didouche Mourad", "Boulevard Zighoud Youcef", "Rue Larbi Ben M'hidi"]),
    "ARGENTINA": ("AR", "name_no", [("Buenos Aires", "C", "C1002AAP"), ("Córdoba", "X", "X5000IJK"),
                                    ("Rosario", "S", "S2000BQA")],
                  ["Avenida Corrientes", "Calle Florida", "Avenida Santa Fe"]),
    "BRAZIL": ("BR", "name_no", [("São Paulo", "SP", "01310-100"), ("Rio de Janeiro", "RJ", "20040-020"),
                                 ("Belo Horizonte", "MG", "30130-010")],
               ["Avenida Paulista", "Rua da Assembleia", "Avenida Afonso Pena"]),
    "CANADA": ("CA", "no_name", [("Toronto", "ON", "M5V 2T6"), ("Montréal", "QC", "H3B 4W8"),
                                 ("Vancouver", "BC", "V6B 1A1")],
               ["King Street West", "Rue Sainte-Catherine", "Granville Street"]),
    "EGYPT": ("EG", "no_name", [("Cairo", "C", "11511"), ("Alexandria", "ALX", "21500"), ("Giza", "GZ", "12511")],
              ["Tahrir Street", "El Horreya Road", "Pyramids Road"]),
    "ETHIOPIA": ("ET", "name_no", [("Addis Ababa", "AA", "1000"), ("Dire Dawa", "DD", "3000"),
                                   ("Bahir Dar", "AM", "6000")],
                 ["Churchill Avenue", "Bole Road", "Africa Avenue"]),
    "FRANCE": ("FR", "no_name", [("Paris", "IDF", "75008"), ("Lyon", "ARA", "69002"), ("Marseille", "PAC", "13001")],
               ["rue du Faubourg Saint-Honoré", "rue de la République", "La Canebière"]),
    "GERMANY": ("DE", "name_no", [("Berlin", "BE", "10115"), ("Hamburg", "HH", "20095"), ("München", "BY", "80331")],
                ["Invalidenstraße", "Mönckebergstraße", "Kaufingerstraße"]),
    "INDIA": ("IN", "no_name", [("Mumbai", "MH", "400001"), ("Bengaluru", "KA", "560001"), ("New Delhi", "DL", "110001")],
              ["Marine Drive", "MG Road", "Janpath"]),
    "INDONESIA": ("ID", "name_no", [("Jakarta", "JK", "10110"), ("Surabaya", "JI", "60111"), ("Bandung", "JB", "40111")],
                  ["Jalan Thamrin", "Jalan Tunjungan", "Jalan Braga"]),
    "IRAN": ("IR", "no_name", [("Tehran", "THR", "11369-13111"), ("Isfahan", "ISF", "81467-35111"),
                               ("Mashhad", "RKH", "91735-11111")],
             ["Valiasr Street", "Chaharbagh Avenue", "Imam Reza Street"]),
    "IRAQ": ("IQ", "no_name", [("Baghdad", "BG", "10001"), ("Basra", "BA", "61001"), ("Erbil", "AR", "44001")],
             ["Al-Rasheed Street", "Al-Corniche Street", "Gulan Street"]),
    "JAPAN": ("JP", "no_name", [("Tokyo", "13", "100-0005"), ("Osaka", "27", "530-0001"), ("Yokohama", "14", "220-0011")],
              ["Marunouchi", "Umeda", "Minatomirai"]),
    "JORDAN": ("JO", "no_name", [("Amman", "AM", "11118"), ("Irbid", "IR", "21110"), ("Zarqa", "AZ", "13110")],
               ["Rainbow Street", "University Street", "King Abdullah II Street"]),
    "KENYA": ("KE", "no_name", [("Nairobi", "30", "00100"), ("Mombasa", "28", "80100"), ("Kisumu", "42", "40100")],
              ["Kenyatta Avenue", "Moi Avenue", "Oginga Odinga Street"]),
    "MOROCCO": ("MA", "no_name", [("Casablanca", "CAS", "20000"), ("Rabat", "RBA", "10000"),
                                  ("Marrakech", "MAR", "40000")],
                ["Boulevard Mohammed V", "Avenue Hassan II", "Avenue Mohammed VI"]),
    "MOZAMBIQUE": ("MZ", "name_no", [("Maputo", "MPM", "1100"), ("Beira", "S", "2100"), ("Nampula", "N", "3100")],
                   ["Avenida Julius Nyerere", "Avenida Eduardo Mondlane", "Avenida Paulo Samuel Kankhomba"]),
    "PERU": ("PE", "name_no", [("Lima", "LIM", "15001"), ("Arequipa", "ARE", "04001"), ("Trujillo", "LAL", "13001")],
             ["Avenida Arequipa", "Calle Mercaderes", "Jirón Pizarro"]),
    "CHINA": ("CN", "no_name", [("Shanghai", "SH", "200000"), ("Beijing", "BJ", "100000"), ("Shenzhen", "GD", "518000")],
              ["Nanjing Road", "Wangfujing Street", "Shennan Avenue"]),
    "ROMANIA": ("RO", "name_no", [("București", "B", "010011"), ("Cluj-Napoca", "CJ", "400001"),
                                  ("Timișoara", "TM", "300001")],
                ["Calea Victoriei", "Strada Memorandumului", "Bulevardul Revoluției"]),
    "SAUDI ARABIA": ("SA", "no_name", [("Riyadh", "01", "11564"), ("Jeddah", "02", "21442"), ("Dammam", "04", "32241")],
                     ["King Fahd Road", "Tahlia Street", "King Saud Street"]),
    "VIETNAM": ("VN", "no_name", [("Hà Nội", "HN", "100000"), ("Hồ Chí Minh", "SG", "700000"),
                                  ("Đà Nẵng", "DN", "550000")],
                ["Phố Tràng Tiền", "Đường Đồng Khởi", "Đường Bạch Đằng"]),
    "RUSSIA": ("RU", "name_no", [("Moskva", "MOW", "101000"), ("Sankt-Peterburg", "SPE", "190000"),
                                 ("Novosibirsk", "NVS", "630000")],
               ["ulitsa Tverskaya", "Nevsky prospekt", "Krasny prospekt"]),
    "UNITED KINGDOM": ("GB", "no_name", [("London", "ENG", "EC1A 1BB"), ("Manchester", "ENG", "M1 1AE"),
                                         ("Edinburgh", "SCT", "EH1 1YZ")],
                       ["High Holborn", "Deansgate", "Princes Street"]),
    "UNITED STATES": ("US", "no_name", [("New York", "NY", "10001"), ("Chicago", "IL", "60601"),
                                        ("Houston", "TX", "77002")],
                      ["Broadway", "North Michigan Avenue", "Main Street"]),
}

# one warehouse per TPC-H region, in a nation of that region
WAREHOUSES = {
    "AFRICA": ("WH-AFRICA", "Africa DC (Casablanca, MA)", "MA", "CAS", "20250", 33.5731, -7.5898, "Africa/Casablanca"),
    "AMERICA": ("WH-AMERICA", "Americas DC (Dallas, TX)", "US", "TX", "75261", 32.8998, -97.0403, "America/Chicago"),
    "ASIA": ("WH-ASIA", "Asia DC (Shanghai, CN)", "CN", "SH", "201100", 31.2304, 121.4737, "Asia/Shanghai"),
    "EUROPE": ("WH-EUROPE", "Europe DC (Duisburg, DE)", "DE", "NW", "47051", 51.4344, 6.7623, "Europe/Berlin"),
    "MIDDLE EAST": ("WH-MIDEAST", "Middle East DC (Dammam, SA)", "SA", "04", "32241", 26.4207, 50.0888, "Asia/Riyadh"),
}
# zone between regions (symmetric); same nation = 1, same region = 3
REGION_ZONE = {
    frozenset(["AFRICA", "EUROPE"]): 6, frozenset(["AFRICA", "MIDDLE EAST"]): 5, frozenset(["AFRICA", "AMERICA"]): 9,
    frozenset(["AFRICA", "ASIA"]): 9, frozenset(["AMERICA", "EUROPE"]): 8, frozenset(["AMERICA", "ASIA"]): 9,
    frozenset(["AMERICA", "MIDDLE EAST"]): 10, frozenset(["ASIA", "EUROPE"]): 8, frozenset(["ASIA", "MIDDLE EAST"]): 6,
    frozenset(["EUROPE", "MIDDLE EAST"]): 5,
}


class TpchError(Exception):
    """A clear, one-line problem (the CLI prints it)."""


@dataclass
class TpchLoad:
    home: Path
    sf: float
    days: int
    end_date: date
    source_dir: Path  # the generated TPC-H Parquet files (lineitem.parquet, ...)
    order_files: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {"sf": self.sf, "days": self.days, "end_date": self.end_date.isoformat(),
                "source_dir": str(self.source_dir), "order_files": [p.name for p in self.order_files],
                "counts": self.counts, "seconds": self.seconds}


def sf_text(sf: float) -> str:
    """``0.01`` -> ``"0.01"``, ``1.0`` -> ``"1"`` (file and folder names)."""
    return format(sf, "g")


def tpchgen_binary() -> str:
    """The ``tpchgen-cli`` executable installed with the package (next to the interpreter), else on PATH."""
    here = Path(sys.executable).parent / "tpchgen-cli"
    if here.exists():
        return str(here)
    found = shutil.which("tpchgen-cli")
    if not found:
        raise TpchError("tpchgen-cli is not installed (pip install tpchgen-cli==4.0.0)")
    return found


def generate(sf: float, out_dir: Path) -> Path:
    """TPC-H tables at ``sf`` as Parquet in ``out_dir`` (kept as a cache: generated once per SF)."""
    done = out_dir / ".complete"
    if done.exists():
        return out_dir
    if sf <= 0:
        raise TpchError(f"--sf must be positive (got {sf})")
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        cmd = [tpchgen_binary(), "parquet", "-s", sf_text(sf), "-o", str(tmp), "-q", "--tables", ",".join(TPCH_TABLES)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv, no shell)
        if r.returncode != 0:
            raise TpchError(f"tpchgen-cli failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
        done.write_text(" ".join(cmd[1:]) + "\n")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _q(p: Path | str) -> str:
    """A path as a SQL string literal (paths come from code and settings, never from data)."""
    return "'" + str(p).replace("'", "''") + "'"


def _connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    spill = settings.tmp / "duckdb_spill"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = {_q(settings.duckdb_memory_limit)}")
    con.execute(f"SET temp_directory = {_q(spill)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _views(con: duckdb.DuckDBPyConnection, src: Path) -> None:
    for t in TPCH_TABLES:
        con.execute(f"CREATE OR REPLACE VIEW {t} AS SELECT * FROM read_parquet({_q(src / (t + '.parquet'))})")  # noqa: S608 (names and paths from code)
    geo_rows = [(n, iso, i, city, reg, postal, street, style)
                for n, (iso, style, places, streets) in NATIONS.items()
                for i, ((city, reg, postal), street) in enumerate(zip(places, streets, strict=True))]
    con.execute("CREATE OR REPLACE TEMP TABLE geo (nation VARCHAR, iso VARCHAR, i INTEGER, city VARCHAR, "
                "region VARCHAR, postal VARCHAR, street VARCHAR, style VARCHAR)")
    con.executemany("INSERT INTO geo VALUES (?, ?, ?, ?, ?, ?, ?, ?)", geo_rows)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE cust AS
        SELECT c.c_custkey, 'C' || lpad(c.c_custkey::VARCHAR, 9, '0') AS customer_id, c.c_name, c.c_acctbal,
               n.n_name, g.iso, g.city, g.region, g.postal,
               CASE WHEN g.style = 'no_name' THEN (1 + c.c_custkey % 250)::VARCHAR || ' ' || g.street
                    ELSE g.street || ' ' || (1 + c.c_custkey % 250)::VARCHAR END AS street
        FROM customer c JOIN nation n ON n.n_nationkey = c.c_nationkey
        JOIN geo g ON g.nation = n.n_name AND g.i = c.c_custkey % 3
    """)
    missing = con.execute("SELECT count(*) FROM customer WHERE c_custkey NOT IN (SELECT c_custkey FROM cust)").fetchone()
    if missing and missing[0]:
        raise TpchError(f"{missing[0]} customers of a nation without an address table")


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path, params: list | None = None) -> int:
    """``COPY (sql) TO path`` (Parquet, zstd) written as ``name.tmp`` then renamed; returns the row count."""
    tmp = path.with_name(path.name + ".tmp")
    con.execute(f"COPY ({sql}) TO {_q(tmp)} (FORMAT parquet, COMPRESSION zstd)", params or [])  # noqa: S608
    os.replace(tmp, path)
    n = con.execute(f"SELECT count(*) FROM read_parquet({_q(path)})").fetchone()  # noqa: S608
    return int(n[0]) if n else 0


def write_reference(con: duckdb.DuckDBPyConnection, ref_dir: Path, first: date, end: date,
                    capacity_lines: int) -> dict[str, int]:
    """``reference/<table>.parquet`` for every reference table (text columns: the loader types them)."""
    ref_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    since = (first - timedelta(days=1)).isoformat()
    as_of = f"{end.isoformat()}T06:00:00Z"
    due = (end - timedelta(days=60)).isoformat()
    inv_date = (end - timedelta(days=90)).isoformat()
    counts["products"] = _copy(con, """
        SELECT 'P' || lpad(p_partkey::VARCHAR, 8, '0') AS sku, p_name AS name, p_type AS category,
               (p_size * 0.1)::VARCHAR AS weight_kg,
               (CASE split_part(p_container, ' ', 1) WHEN 'SM' THEN 20 WHEN 'MED' THEN 30 WHEN 'LG' THEN 45
                     WHEN 'JUMBO' THEN 80 ELSE 35 END)::VARCHAR AS length_cm,
               (10 + p_size % 20)::VARCHAR AS width_cm, (5 + p_size % 10)::VARCHAR AS height_cm,
               p_retailprice::VARCHAR AS list_price, 'USD' AS currency, 'false' AS hazmat,
               NULL::VARCHAR AS restricted_countries, NULL::VARCHAR AS substitutes, 'true' AS active
        FROM part ORDER BY p_partkey""", ref_dir / "products.parquet")
    counts["price_lists"] = _copy(con, f"""
        SELECT t.tier, 'P' || lpad(p_partkey::VARCHAR, 8, '0') AS sku, '1' AS min_qty,
               p_retailprice::VARCHAR AS price, 'USD' AS currency, {_q(since)} AS valid_from,
               NULL::VARCHAR AS valid_to, {_q(MAX_DISCOUNT)} AS max_discount_pct
        FROM part, (VALUES ('standard'), ('silver'), ('gold'), ('platinum')) t(tier)
        ORDER BY p_partkey, t.tier""", ref_dir / "price_lists.parquet")  # noqa: S608 (values from code)
    counts["customers"] = _copy(con, f"""
        SELECT customer_id, c_name AS name, lower(replace(c_name, '#', '.')) || '@tpch.example' AS email,
               CASE WHEN c_acctbal >= 7500 THEN 'platinum' WHEN c_acctbal >= 5000 THEN 'gold'
                    WHEN c_acctbal >= 2500 THEN 'silver' ELSE 'standard' END AS tier,
               (2000000 + 500 * greatest(c_acctbal, 0))::DECIMAL(18, 2)::VARCHAR AS credit_limit,
               'USD' AS currency, '30' AS payment_terms_days, iso AS country, 'false' AS ship_complete,
               'false' AS allow_substitutes, 'true' AS active, {_q(since)} AS created_on
        FROM cust ORDER BY c_custkey""", ref_dir / "customers.parquet")  # noqa: S608
    # the manufacturer's part number, as partners may send it (X12 qualifier MG): an alias of the catalog SKU
    counts["product_aliases"] = _copy(con, """
        SELECT 'MFG' || split_part(p_mfgr, '#', 2) || '-' || p_partkey::VARCHAR AS alias,
               'P' || lpad(p_partkey::VARCHAR, 8, '0') AS sku, 'MG' AS qualifier
        FROM part ORDER BY p_partkey""", ref_dir / "product_aliases.parquet")
    counts["customer_aliases"] = _copy(con, """
        SELECT 'csv' AS channel, c_name AS external_ref, customer_id FROM cust ORDER BY c_custkey""",
        ref_dir / "customer_aliases.parquet")
    counts["open_items"] = _copy(con, f"""
        SELECT 'INV-TPCH-' || c_custkey::VARCHAR AS invoice_id, customer_id,
               (-c_acctbal)::DECIMAL(18, 2)::VARCHAR AS amount_open, 'USD' AS currency,
               {_q(inv_date)} AS invoice_date, {_q(due)} AS due_date
        FROM cust WHERE c_acctbal < 0 ORDER BY c_custkey""", ref_dir / "open_items.parquet")  # noqa: S608
    # a promotion no TPC-H order uses (the table is never empty)
    counts["promotions"] = _copy(con, f"""
        SELECT 'TPCH5' AS code, 'percent' AS kind, '0.05' AS value, {_q(since)} AS valid_from, NULL AS valid_to,
               '*' AS eligible_tiers, 'csv' AS eligible_channels, '*' AS eligible_skus, '*' AS eligible_categories,
               NULL AS usage_cap""", ref_dir / "promotions.parquet")  # noqa: S608
    wh_rows = [(region, *w) for region, w in WAREHOUSES.items()]
    con.execute("CREATE OR REPLACE TEMP TABLE wh (r_name VARCHAR, warehouse_id VARCHAR, name VARCHAR, country VARCHAR, "
                "region VARCHAR, postal_code VARCHAR, latitude DOUBLE, longitude DOUBLE, timezone VARCHAR)")
    con.executemany("INSERT INTO wh VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", wh_rows)
    counts["warehouses"] = _copy(con, """
        SELECT warehouse_id, name, country, region, postal_code, latitude::VARCHAR AS latitude,
               longitude::VARCHAR AS longitude, ?::VARCHAR AS daily_capacity_lines, '15:00:00' AS cutoff_time,
               timezone, '3.50' AS handling_cost, 'true' AS active
        FROM wh ORDER BY warehouse_id""", ref_dir / "warehouses.parquet", [capacity_lines])
    counts["inventory"] = _copy(con, f"""
        SELECT w.warehouse_id, 'P' || lpad(ps.ps_partkey::VARCHAR, 8, '0') AS sku,
               sum(ps.ps_availqty)::VARCHAR AS on_hand, {_q(as_of)} AS as_of
        FROM partsupp ps JOIN supplier s ON s.s_suppkey = ps.ps_suppkey
        JOIN nation n ON n.n_nationkey = s.s_nationkey JOIN region r ON r.r_regionkey = n.n_regionkey
        JOIN wh w ON w.r_name = r.r_name
        GROUP BY ALL ORDER BY 1, 2""", ref_dir / "inventory.parquet")  # noqa: S608
    carriers = [("UPS", "GROUND", "ground", "0.95"), ("UPS", "EXPRESS", "air", "0.97"),
                ("DHL", "GROUND", "ground", "0.94"), ("DHL", "EXPRESS", "air", "0.965")]
    con.execute("CREATE OR REPLACE TEMP TABLE carrier (carrier_id VARCHAR, service VARCHAR, mode VARCHAR, "
                "on_time_rate VARCHAR)")
    con.executemany("INSERT INTO carrier VALUES (?, ?, ?, ?)", carriers)
    counts["carriers"] = _copy(con, """
        SELECT carrier_id, service, mode, on_time_rate, (? * 4)::VARCHAR AS daily_capacity_parcels, 'true' AS active
        FROM carrier ORDER BY 1, 2""", ref_dir / "carriers.parquet", [capacity_lines])
    counts["carrier_rates"] = _copy(con, """
        SELECT c.carrier_id, c.service, z.zone::VARCHAR AS zone, b.w::VARCHAR AS max_weight_kg,
               round(b.base * (1 + (z.zone - 1) * 0.18) * CASE c.service WHEN 'EXPRESS' THEN 1.7 ELSE 1 END
                     * CASE c.carrier_id WHEN 'DHL' THEN 0.97 ELSE 1 END, 2)::DECIMAL(18, 2)::VARCHAR AS rate,
               'USD' AS currency,
               (CASE c.service WHEN 'EXPRESS' THEN 1 + z.zone // 4 ELSE 1 + (z.zone + 1) // 2 END)::VARCHAR
                 AS transit_days
        FROM carrier c, range(1, 11) z(zone),
             (VALUES (1.0, 7.90), (5.0, 11.40), (10.0, 16.80), (30.0, 34.50), (70.0, 68.00)) b(w, base)
        ORDER BY 1, 2, z.zone, b.w""", ref_dir / "carrier_rates.parquet")
    zone_rows = [(a, b, z) for pair, z in REGION_ZONE.items() for a, b in (tuple(pair), tuple(pair)[::-1])]
    con.execute("CREATE OR REPLACE TEMP TABLE rzone (a VARCHAR, b VARCHAR, zone INTEGER)")
    con.executemany("INSERT INTO rzone VALUES (?, ?, ?)", zone_rows)
    counts["shipping_zones"] = _copy(con, """
        SELECT w.warehouse_id, g.iso AS dest_country, '*' AS dest_region,
               (CASE WHEN g.iso = w.country THEN 1 WHEN r.r_name = w.r_name THEN 3 ELSE z.zone END)::VARCHAR AS zone
        FROM wh w CROSS JOIN (SELECT DISTINCT nation, iso FROM geo) g
        JOIN nation n ON n.n_name = g.nation JOIN region r ON r.r_regionkey = n.n_regionkey
        LEFT JOIN rzone z ON z.a = w.r_name AND z.b = r.r_name
        ORDER BY 1, 2""", ref_dir / "shipping_zones.parquet")
    # the warehouse floor: every stocked part slotted by its TPC-H brand (zone) and type (aisles), and the
    # packing station's cartons (the demo's)
    counts["bin_locations"] = _copy(con, """
        WITH s AS (SELECT warehouse_id, sku, 'Z' || right(p_brand, 2) AS zone,
                          row_number() OVER (PARTITION BY warehouse_id, p_brand ORDER BY sku) - 1 AS k
                   FROM read_parquet(?) i JOIN part p ON 'P' || lpad(p.p_partkey::VARCHAR, 8, '0') = i.sku)
        SELECT warehouse_id, sku, zone || '-' || lpad((k // 48 + 1)::VARCHAR, 3, '0') || '-'
               || lpad((k % 48 // 4 + 1)::VARCHAR, 2, '0') || '-' || (k % 4)::VARCHAR AS bin_id, zone,
               (k // 48 + 1)::VARCHAR AS aisle, (k % 48 // 4 + 1)::VARCHAR AS bay, (k % 4)::VARCHAR AS level
        FROM s ORDER BY 1, 2""", ref_dir / "bin_locations.parquet", [str(ref_dir / "inventory.parquet")])
    from som_pipeline.demo.master_data import CARTONS

    con.execute("CREATE OR REPLACE TEMP TABLE carton (carton_id VARCHAR, l DOUBLE, w DOUBLE, h DOUBLE, kg DOUBLE, "
                "tare DOUBLE, cost VARCHAR, active BOOLEAN)")
    con.executemany("INSERT INTO carton VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [list(c) for c in CARTONS])
    counts["cartons"] = _copy(con, """
        SELECT carton_id, l::VARCHAR AS inner_length_cm, w::VARCHAR AS inner_width_cm, h::VARCHAR AS inner_height_cm,
               kg::VARCHAR AS max_weight_kg, tare::VARCHAR AS tare_kg, cost, active::VARCHAR AS active
        FROM carton ORDER BY 1""", ref_dir / "cartons.parquet")
    return counts


def _order_rows_sql(shift_days: int, one_day: date | None, first_real: date | None) -> tuple[str, list]:
    """The order template, one row per line item, plus ``_order_date``; and its parameters."""
    if one_day is not None:
        od, params = "SELECT o_orderkey, o_custkey, ?::DATE AS d FROM orders", [one_day]
    else:
        od, params = "SELECT o_orderkey, o_custkey, o_orderdate + ?::INTEGER AS d FROM orders", [shift_days]
        if first_real is not None:
            od += " WHERE o_orderdate >= ?"
            params.append(first_real)
    # order time of day: spread deterministically over the day by order key
    sql = f"""
        WITH od AS ({od})
        SELECT 'TPCH-' || o.o_orderkey::VARCHAR AS channel_order_ref,
               (o.d + to_seconds((o.o_orderkey * 7919) % 86400))::TIMESTAMP AS order_ts,
               c.c_name AS customer_ref, 'USD' AS currency, c.c_name AS ship_to_name, c.street AS ship_to_line1,
               c.city AS ship_to_city, c.region AS ship_to_region, c.postal AS ship_to_postal_code,
               c.iso AS ship_to_country, 'Standard' AS ship_method, l.l_linenumber AS line_no,
               'P' || lpad(l.l_partkey::VARCHAR, 8, '0') AS sku, p.p_name AS description,
               l.l_quantity::BIGINT AS quantity, p.p_retailprice AS unit_price,
               (l.l_discount * 100)::DECIMAL(6, 2) AS discount_pct, l.l_tax AS tax_rate,
               NULL::VARCHAR AS promo_code, o.d AS _order_date, o.o_orderkey AS _key
        FROM lineitem l JOIN od o ON o.o_orderkey = l.l_orderkey
        JOIN cust c ON c.c_custkey = o.o_custkey JOIN part p ON p.p_partkey = l.l_partkey
    """  # noqa: S608 (SQL from code; values are parameters)
    return sql, params


def write_orders(con: duckdb.DuckDBPyConnection, settings: Settings, sf: float, days: int, end: date) -> tuple[
        list[Path], dict[str, int]]:
    """Order-template Parquet files in ``landing/csv``: one file (``days=1``) or one per month of order date."""
    shift = (end - TPCH_LAST_ORDER_DATE).days
    landing = settings.landing_dir("csv")
    landing.mkdir(parents=True, exist_ok=True)
    name = f"tpch_sf{sf_text(sf)}"
    if days == 1:
        sql, params = _order_rows_sql(shift, end, None)
        path = landing / f"{name}_{end.isoformat()}.parquet"
        n = _copy(con, f"SELECT * EXCLUDE (_order_date, _key) FROM ({sql}) ORDER BY _key, line_no",  # noqa: S608
                  path, params)
        return [path], {"order_files": 1, "order_rows": n}
    first_real = None if days == 0 else TPCH_LAST_ORDER_DATE - timedelta(days=days - 1)
    sql, params = _order_rows_sql(shift, None, first_real)
    work = Path(tempfile.mkdtemp(prefix=".tpch-orders-", dir=settings.tmp))
    try:
        con.execute(f"""COPY (SELECT * EXCLUDE (_order_date, _key), strftime(_order_date, '%Y-%m') AS month
                        FROM ({sql}) ORDER BY _key, line_no)
                        TO {_q(work)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (month))""",  # noqa: S608
                    params)
        files = []
        for part in sorted(work.glob("month=*")):
            month = part.name.split("=", 1)[1]
            dest = landing / f"{name}_{month}.parquet"
            src = sorted(part.glob("*.parquet"))
            if len(src) == 1:
                os.replace(src[0], dest)
            else:  # DuckDB may write several files per partition: one file per month
                _copy(con, f"SELECT * FROM read_parquet({_q(str(part / '*.parquet'))}) "  # noqa: S608
                           "ORDER BY channel_order_ref, line_no", dest)  # (rare: a large month)
            files.append(dest)
        n = con.execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return files, {"order_files": len(files), "order_rows": int(n[0]) if n else 0}


def write_validation_setup(home: Path, end: date, days: int) -> None:
    """``$SOM_HOME/validation.toml``: pin the business date; with spread dates, everything before ``end`` is
    history (HISTORICAL: the anomaly baseline, never re-evaluated)."""
    lines = ["# Written by `som tpch`: the TPC-H home's business calendar (see som_pipeline/validation/defaults.toml).",
             "[workflow]", f'as_of = "{(end + timedelta(days=1)).isoformat()}"']
    if days != 1:
        lines.append(f'history_before = "{end.isoformat()}"')
    (home / "validation.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_tpch(home: Path | str, *, sf: float = 0.01, days: int = 1, end_date: date = DEFAULT_END_DATE,
              settings: Settings | None = None, cache_dir: Path | None = None) -> TpchLoad:
    """Write a SOM home from TPC-H at scale factor ``sf`` (see the module docstring). Replaces the home's
    reference files, its ``landing/csv/tpch_*`` files and ``validation.toml``; leaves everything else.
    ``cache_dir``: where generated TPC-H sets are kept (``<cache_dir>/sf<sf>``; default ``$SOM_HOME/tmp/tpch``)."""
    import time

    if days < 0:
        raise TpchError(f"--days must be 0 (all dates) or positive (got {days})")
    home = Path(home).resolve()
    s = settings or Settings.from_env(home)
    s.ensure_dirs()
    out = TpchLoad(home=home, sf=sf, days=days, end_date=end_date,
                   source_dir=Path(cache_dir or s.tmp / "tpch") / f"sf{sf_text(sf)}")
    t0 = time.perf_counter()
    generate(sf, out.source_dir)
    out.seconds["generate"] = round(time.perf_counter() - t0, 2)
    t1 = time.perf_counter()
    for old in s.landing_dir("csv").glob("tpch_sf*.parquet"):
        old.unlink()
    if s.reference.exists():
        shutil.rmtree(s.reference)
    con = _connect(s)
    try:
        _views(con, out.source_dir)
        first = con.execute("SELECT min(o_orderdate) FROM orders").fetchone()[0]
        shift = (end_date - TPCH_LAST_ORDER_DATE).days
        busiest = con.execute(
            "SELECT count(*) FROM lineitem" if days == 1 else
            "SELECT max(n) FROM (SELECT count(*) AS n FROM lineitem JOIN orders ON o_orderkey = l_orderkey "
            "GROUP BY o_orderdate)").fetchone()[0]
        # capacity is not what a TPC-H load measures: every warehouse could pick the busiest day alone
        capacity = max(1000, int(busiest))
        out.counts.update(write_reference(con, s.reference, first + timedelta(days=shift), end_date, capacity))
        out.order_files, c = write_orders(con, s, sf, days, end_date)
        out.counts.update(c)
        first_real = None if days in (0, 1) else TPCH_LAST_ORDER_DATE - timedelta(days=days - 1)
        where = "" if first_real is None else "WHERE o_orderdate >= ?"
        prm = [] if first_real is None else [first_real]
        out.counts["orders"] = int(con.execute(f"SELECT count(*) FROM orders {where}", prm).fetchone()[0])  # noqa: S608
        out.counts["lineitems"] = int(con.execute(
            f"SELECT count(*) FROM lineitem JOIN orders ON o_orderkey = l_orderkey {where}", prm).fetchone()[0])  # noqa: S608
    finally:
        con.close()
    write_validation_setup(home, end_date, days)
    out.seconds["transform"] = round(time.perf_counter() - t1, 2)
    (home / MANIFEST_NAME).write_text(json.dumps(out.manifest(), indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["DEFAULT_END_DATE", "NATIONS", "TpchError", "TpchLoad", "generate", "load_tpch", "sf_text"]


def lineitem_invoice_todo(lineitem: Path) -> pl.DataFrame:
    """TPC-H line items as invoice work (:func:`som_pipeline.billing.invoicing.price_lines`' input): every line
    item one B2B order line shipped whole and invoiced. Its extended price is the order line's amount, its discount
    a rate (discount_amount = round(rate x amount), as capture computes it), its tax a table rate; the Q1 columns
    (l_returnflag, l_linestatus, l_shipdate) ride along."""
    from som_pipeline.money import MONEY, RATE

    li = pl.scan_parquet(lineitem).with_columns(
        pl.col("l_extendedprice").cast(MONEY), pl.col("l_discount").cast(RATE), pl.col("l_tax").cast(RATE))
    return li.select(
        pl.col("l_orderkey").cast(pl.String).alias("shipment_id"), pl.col("l_orderkey").cast(pl.String).alias("order_id"),
        pl.col("l_linenumber").cast(pl.Int64).alias("line_no"), pl.col("l_quantity").cast(pl.Int64).alias("quantity"),
        pl.col("l_quantity").cast(pl.Int64).alias("ordered_qty"), pl.lit(0, pl.Int64).alias("prior_qty"),
        pl.col("l_shipdate").cast(pl.Datetime("us")).alias("basis_at"), pl.col("l_extendedprice").alias("line_amount"),
        (pl.col("l_extendedprice").cast(pl.Decimal(38, 2)) * pl.col("l_discount").cast(pl.Decimal(38, 6)))
        .round(2, mode="half_away_from_zero").cast(MONEY).alias("discount_amount"),
        pl.col("l_discount").alias("discount_rate"), pl.lit("table").alias("tax_source"),
        pl.lit(0).cast(MONEY).alias("tax_amount"), pl.col("l_tax").alias("tax_rate"),
        pl.lit(False).alias("prices_include_tax"), "l_returnflag", "l_linestatus", "l_shipdate").collect()

