"""TPC-H on SQLite: a seeded data generator, the 22 queries, and a comparison of answers.

Used to check that SQLite on vino answers exactly as stock SQLite does on an
ordinary file (``tests/sqlite/test_sqlite_tpch.py``)::

    tables = generate(sf=0.001, seed=1)     # table name -> rows, deterministic
    load(db, tables)                        # schema, rows, indexes, analyze
    got = answers(db, sf=0.001)             # query number -> rows
    diff = compare(got, other)              # query numbers whose answers differ

The generator follows the TPC-H specification's schema, cardinalities (per scale
factor: 10,000 suppliers, 200,000 parts with 4 suppliers each, 150,000 customers,
1,500,000 orders of 1..7 line items; 25 nations, 5 regions) and value domains
(types, containers, brands, segments, priorities, ship modes and instructions,
dates from 1992-01-01 to 1998-12-31, the return flag and line status rules, the
price formulas), so that every query's predicates select something. It is not
``dbgen``: its random streams, text and comments are its own (no download), and
order keys are dense. Same ``(sf, seed)``, same rows, on any machine.

The queries are the specification's 22 with its validation parameters, written in
SQLite's dialect: ``date(d, '+3 months')`` for interval arithmetic,
``strftime('%Y', d)`` for ``extract(year ...)``, ``substr`` for ``substring``, and
a common table expression for Q15's view. Q11's fraction is ``0.0001 / sf`` as
the specification scales it. Money is REAL, dates are ISO-8601 TEXT.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator, Sequence
from typing import Any, Final

import apsw

__all__ = ["QUERY_NUMBERS", "answers", "compare", "generate", "load", "queries", "rounded"]

QUERY_NUMBERS: Final = tuple(range(1, 23))
ANSWER_DIGITS: Final = 6  # REAL answers are compared rounded to this many decimals

REGIONS: Final = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
NATIONS: Final = (
    ("ALGERIA", 0), ("ARGENTINA", 1), ("BRAZIL", 1), ("CANADA", 1), ("EGYPT", 4),
    ("ETHIOPIA", 0), ("FRANCE", 3), ("GERMANY", 3), ("INDIA", 2), ("INDONESIA", 2),
    ("IRAN", 4), ("IRAQ", 4), ("JAPAN", 2), ("JORDAN", 4), ("KENYA", 0), ("MOROCCO", 0),
    ("MOZAMBIQUE", 0), ("PERU", 1), ("CHINA", 2), ("ROMANIA", 3), ("SAUDI ARABIA", 4),
    ("VIETNAM", 2), ("RUSSIA", 3), ("UNITED KINGDOM", 3), ("UNITED STATES", 1))
COLORS: Final = (
    "almond", "antique", "aquamarine", "azure", "beige", "bisque", "black", "blanched", "blue",
    "blush", "brown", "burlywood", "burnished", "chartreuse", "chiffon", "chocolate", "coral",
    "cornflower", "cornsilk", "cream", "cyan", "dark", "deep", "dim", "dodger", "drab",
    "firebrick", "floral", "forest", "frosted", "gainsboro", "ghost", "goldenrod", "green",
    "grey", "honeydew", "hot", "indian", "ivory", "khaki", "lace", "lavender", "lawn", "lemon",
    "light", "lime", "linen", "magenta", "maroon", "medium", "metallic", "midnight", "mint",
    "misty", "moccasin", "navajo", "navy", "olive", "orange", "orchid", "pale", "papaya",
    "peach", "peru", "pink", "plum", "powder", "puff", "purple", "red", "rose", "rosy",
    "royal", "saddle", "salmon", "sandy", "seashell", "sienna", "sky", "slate", "smoke",
    "snow", "spring", "steel", "tan", "thistle", "tomato", "turquoise", "violet", "wheat",
    "white", "yellow")
TYPE_1: Final = ("STANDARD", "SMALL", "MEDIUM", "LARGE", "ECONOMY", "PROMO")
TYPE_2: Final = ("ANODIZED", "BURNISHED", "PLATED", "POLISHED", "BRUSHED")
TYPE_3: Final = ("TIN", "NICKEL", "BRASS", "STEEL", "COPPER")
CONTAINER_1: Final = ("SM", "LG", "MED", "JUMBO", "WRAP")
CONTAINER_2: Final = ("CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM")
SEGMENTS: Final = ("AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD")
PRIORITIES: Final = ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
INSTRUCTIONS: Final = ("DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN")
MODES: Final = ("REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB")
WORDS: Final = (
    "furiously", "quickly", "carefully", "blithely", "slyly", "final", "regular", "express",
    "pending", "ironic", "bold", "even", "silent", "unusual", "packages", "deposits",
    "accounts", "theodolites", "pinto", "beans", "foxes", "ideas", "dependencies", "platelets",
    "asymptotes", "instructions", "courts", "dolphins", "sheaves", "sleep", "wake", "haggle",
    "nag", "use", "boost", "affix", "detect", "integrate", "among", "above", "across")

START: Final = datetime.date(1992, 1, 1)
ORDER_DAYS: Final = (datetime.date(1998, 8, 2) - START).days - 151  # last order date - START
CURRENT: Final = datetime.date(1995, 6, 17)  # the specification's CURRENTDATE

SCHEMA: Final = """
create table region(r_regionkey integer primary key, r_name text, r_comment text);
create table nation(n_nationkey integer primary key, n_name text, n_regionkey integer,
                    n_comment text);
create table supplier(s_suppkey integer primary key, s_name text, s_address text,
                      s_nationkey integer, s_phone text, s_acctbal real, s_comment text);
create table part(p_partkey integer primary key, p_name text, p_mfgr text, p_brand text,
                  p_type text, p_size integer, p_container text, p_retailprice real,
                  p_comment text);
create table partsupp(ps_partkey integer, ps_suppkey integer, ps_availqty integer,
                      ps_supplycost real, ps_comment text,
                      primary key (ps_partkey, ps_suppkey));
create table customer(c_custkey integer primary key, c_name text, c_address text,
                      c_nationkey integer, c_phone text, c_acctbal real, c_mktsegment text,
                      c_comment text);
create table orders(o_orderkey integer primary key, o_custkey integer, o_orderstatus text,
                    o_totalprice real, o_orderdate text, o_orderpriority text, o_clerk text,
                    o_shippriority integer, o_comment text);
create table lineitem(l_orderkey integer, l_partkey integer, l_suppkey integer,
                      l_linenumber integer, l_quantity real, l_extendedprice real,
                      l_discount real, l_tax real, l_returnflag text, l_linestatus text,
                      l_shipdate text, l_commitdate text, l_receiptdate text,
                      l_shipinstruct text, l_shipmode text, l_comment text,
                      primary key (l_orderkey, l_linenumber));
"""
INDEXES: Final = """
create index lineitem_part on lineitem(l_partkey, l_suppkey);
create index orders_cust on orders(o_custkey);
create index customer_nation on customer(c_nationkey);
create index supplier_nation on supplier(s_nationkey);
"""
TABLES: Final = ("region", "nation", "supplier", "part", "partsupp", "customer", "orders",
                 "lineitem")
LOAD_BATCH_ROWS: Final = 10_000  # rows per insert transaction while loading


def _text(rng: random.Random, lo: int, hi: int) -> str:
    """A comment of ``lo``..``hi`` characters of the generator's words."""
    n = rng.randint(lo, hi)
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def _phone(rng: random.Random, nation: int) -> str:
    return (f"{nation + 10}-{rng.randint(100, 999)}-{rng.randint(100, 999)}-"
            f"{rng.randint(1000, 9999)}")


def _money(rng: random.Random, lo: float, hi: float) -> float:
    return round(rng.uniform(lo, hi), 2)


def _day(d: datetime.date) -> str:
    return d.isoformat()


def retail_price(partkey: int) -> float:
    """The specification's P_RETAILPRICE formula."""
    return (90000 + ((partkey // 10) % 20001) + 100 * (partkey % 1000)) / 100


def part_suppliers(partkey: int, suppliers: int) -> list[int]:
    """The four suppliers of a part: the specification's formula, moved on to the next
    supplier where a small scale factor makes it repeat one."""
    out: list[int] = []
    for i in range(4):
        s = (partkey + i * (suppliers // 4 + (partkey - 1) // suppliers)) % suppliers + 1
        while s in out:
            s = s % suppliers + 1
        out.append(s)
    return out


def generate(sf: float, seed: int = 1) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows at scale factor ``sf`` (deterministic in ``sf`` and ``seed``)."""
    rng = random.Random(f"tpch {sf} {seed}")
    nsupp = max(int(10_000 * sf), 4)
    nparts = max(int(200_000 * sf), 1)
    ncust = max(int(150_000 * sf), 3)
    norders = max(int(1_500_000 * sf), 1)
    t: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
    t["region"] = [(i, name, _text(rng, 31, 115)) for i, name in enumerate(REGIONS)]
    t["nation"] = [(i, name, r, _text(rng, 31, 114)) for i, (name, r) in enumerate(NATIONS)]
    for s in range(1, nsupp + 1):
        nation = rng.randrange(25)
        comment = _text(rng, 25, 100)
        if rng.random() < 0.05:  # Q16: some suppliers have complaints
            comment = comment[:20] + " Customer sly Complaints " + comment[20:40]
        t["supplier"].append((s, f"Supplier#{s:09d}", _text(rng, 10, 40), nation,
                              _phone(rng, nation), _money(rng, -999.99, 9999.99), comment))
    for p in range(1, nparts + 1):
        m = rng.randint(1, 5)
        t["part"].append((
            p, " ".join(rng.sample(COLORS, 5)), f"Manufacturer#{m}",
            f"Brand#{m}{rng.randint(1, 5)}",
            f"{rng.choice(TYPE_1)} {rng.choice(TYPE_2)} {rng.choice(TYPE_3)}",
            rng.randint(1, 50), f"{rng.choice(CONTAINER_1)} {rng.choice(CONTAINER_2)}",
            retail_price(p), _text(rng, 5, 22)))
        for supp in part_suppliers(p, nsupp):
            t["partsupp"].append((p, supp, rng.randint(1, 9999), _money(rng, 1.0, 1000.0),
                                  _text(rng, 49, 198)))
    for c in range(1, ncust + 1):
        nation = rng.randrange(25)
        t["customer"].append((c, f"Customer#{c:09d}", _text(rng, 10, 40), nation,
                              _phone(rng, nation), _money(rng, -999.99, 9999.99),
                              rng.choice(SEGMENTS), _text(rng, 29, 116)))
    for o in range(1, norders + 1):
        t["orders"].append(_order(rng, o, ncust, nparts, nsupp, t["lineitem"]))
    return t


def _order(rng: random.Random, o: int, ncust: int, nparts: int, nsupp: int,
           lines: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One order; its line items are appended to ``lines``."""
    cust = rng.randint(1, ncust)
    while cust % 3 == 0:  # a third of the customers have no orders (Q13, Q22)
        cust = rng.randint(1, ncust)
    odate = START + datetime.timedelta(days=rng.randint(0, ORDER_DAYS))
    total = 0.0
    statuses = set()
    for n in range(1, rng.randint(1, 7) + 1):
        part = rng.randint(1, nparts)
        supp = rng.choice(part_suppliers(part, nsupp))
        qty = rng.randint(1, 50)
        price = round(qty * retail_price(part), 2)
        disc = rng.randint(0, 10) / 100
        tax = rng.randint(0, 8) / 100
        ship = odate + datetime.timedelta(days=rng.randint(1, 121))
        commit = odate + datetime.timedelta(days=rng.randint(30, 90))
        receipt = ship + datetime.timedelta(days=rng.randint(1, 30))
        flag = rng.choice("RA") if receipt <= CURRENT else "N"
        status = "O" if ship > CURRENT else "F"
        statuses.add(status)
        total += price * (1 + tax) * (1 - disc)
        lines.append((o, part, supp, n, float(qty), price, disc, tax, flag, status, _day(ship),
                      _day(commit), _day(receipt), rng.choice(INSTRUCTIONS), rng.choice(MODES),
                      _text(rng, 10, 43)))
    ostatus = "F" if statuses == {"F"} else "O" if statuses == {"O"} else "P"
    comment = _text(rng, 19, 78)
    if rng.random() < 0.01:  # Q13 leaves out orders about special requests
        comment = comment[:15] + " special packages requests " + comment[15:30]
    return (o, cust, ostatus, round(total, 2), _day(odate), rng.choice(PRIORITIES),
            f"Clerk#{rng.randint(1, max(int(ncust / 150), 1)):09d}", 0, comment)


def load(db: apsw.Connection, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    """Create the schema, insert every row, build the indexes and ``analyze``."""
    db.execute(SCHEMA)
    for name in TABLES:
        rows = tables[name]
        marks = ", ".join("?" * len(rows[0])) if rows else ""
        for start in range(0, len(rows), LOAD_BATCH_ROWS):
            with db:
                db.executemany(f"insert into {name} values({marks})",
                               rows[start:start + LOAD_BATCH_ROWS])
    with db:
        db.execute(INDEXES)
    db.execute("analyze")


def queries(sf: float) -> dict[int, str]:
    """The 22 queries in SQLite's dialect, with the validation parameters."""
    q = dict(_QUERIES)
    q[11] = q[11].replace(":fraction", repr(0.0001 / sf))
    return q


def rounded(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(round(v, ANSWER_DIGITS) if isinstance(v, float) else v for v in row)
            for row in rows]


def answers(db: apsw.Connection, sf: float,
            numbers: Sequence[int] = QUERY_NUMBERS) -> dict[int, list[tuple[Any, ...]]]:
    """Each query's rows (REALs rounded to ``ANSWER_DIGITS`` decimals)."""
    qs = queries(sf)
    return {n: rounded(db.execute(qs[n]).fetchall()) for n in numbers}


def compare(a: dict[int, list[tuple[Any, ...]]],
            b: dict[int, list[tuple[Any, ...]]]) -> list[int]:
    """The query numbers whose answers differ (or are missing from one side)."""
    return sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))


def rows_of(tables: dict[str, list[tuple[Any, ...]]]) -> Iterator[tuple[str, int]]:
    """(table, row count), in load order."""
    for name in TABLES:
        yield name, len(tables[name])


_QUERIES: Final[dict[int, str]] = {
    1: """select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty,
  sum(l_extendedprice) as sum_base_price, sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge, avg(l_quantity) as avg_qty,
  avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc, count(*) as count_order
from lineitem where l_shipdate <= date('1998-12-01', '-90 days')
group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus""",
    2: """select s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
from part, supplier, partsupp, nation, region
where p_partkey = ps_partkey and s_suppkey = ps_suppkey and p_size = 15
  and p_type like '%BRASS' and s_nationkey = n_nationkey and n_regionkey = r_regionkey
  and r_name = 'EUROPE'
  and ps_supplycost = (select min(ps_supplycost) from partsupp, supplier, nation, region
    where p_partkey = ps_partkey and s_suppkey = ps_suppkey and s_nationkey = n_nationkey
      and n_regionkey = r_regionkey and r_name = 'EUROPE')
order by s_acctbal desc, n_name, s_name, p_partkey limit 100""",
    3: """select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate,
  o_shippriority
from customer, orders, lineitem
where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
  and o_orderdate < '1995-03-15' and l_shipdate > '1995-03-15'
group by l_orderkey, o_orderdate, o_shippriority order by revenue desc, o_orderdate limit 10""",
    4: """select o_orderpriority, count(*) as order_count from orders
where o_orderdate >= '1993-07-01' and o_orderdate < date('1993-07-01', '+3 months')
  and exists (select * from lineitem where l_orderkey = o_orderkey
              and l_commitdate < l_receiptdate)
group by o_orderpriority order by o_orderpriority""",
    5: """select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
from customer, orders, lineitem, supplier, nation, region
where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey
  and c_nationkey = s_nationkey and s_nationkey = n_nationkey and n_regionkey = r_regionkey
  and r_name = 'ASIA' and o_orderdate >= '1994-01-01'
  and o_orderdate < date('1994-01-01', '+1 year')
group by n_name order by revenue desc""",
    6: """select sum(l_extendedprice * l_discount) as revenue from lineitem
where l_shipdate >= '1994-01-01' and l_shipdate < date('1994-01-01', '+1 year')
  and l_discount between 0.06 - 0.01 and 0.06 + 0.01 and l_quantity < 24""",
    7: """select supp_nation, cust_nation, l_year, sum(volume) as revenue from (
  select n1.n_name as supp_nation, n2.n_name as cust_nation,
    cast(strftime('%Y', l_shipdate) as integer) as l_year,
    l_extendedprice * (1 - l_discount) as volume
  from supplier, lineitem, orders, customer, nation n1, nation n2
  where s_suppkey = l_suppkey and o_orderkey = l_orderkey and c_custkey = o_custkey
    and s_nationkey = n1.n_nationkey and c_nationkey = n2.n_nationkey
    and ((n1.n_name = 'FRANCE' and n2.n_name = 'GERMANY')
      or (n1.n_name = 'GERMANY' and n2.n_name = 'FRANCE'))
    and l_shipdate between '1995-01-01' and '1996-12-31') as shipping
group by supp_nation, cust_nation, l_year order by supp_nation, cust_nation, l_year""",
    8: """select o_year, sum(case when nation = 'BRAZIL' then volume else 0 end) / sum(volume)
  as mkt_share from (
  select cast(strftime('%Y', o_orderdate) as integer) as o_year,
    l_extendedprice * (1 - l_discount) as volume, n2.n_name as nation
  from part, supplier, lineitem, orders, customer, nation n1, nation n2, region
  where p_partkey = l_partkey and s_suppkey = l_suppkey and l_orderkey = o_orderkey
    and o_custkey = c_custkey and c_nationkey = n1.n_nationkey
    and n1.n_regionkey = r_regionkey and r_name = 'AMERICA' and s_nationkey = n2.n_nationkey
    and o_orderdate between '1995-01-01' and '1996-12-31'
    and p_type = 'ECONOMY ANODIZED STEEL') as all_nations
group by o_year order by o_year""",
    9: """select nation, o_year, sum(amount) as sum_profit from (
  select n_name as nation, cast(strftime('%Y', o_orderdate) as integer) as o_year,
    l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount
  from part, supplier, lineitem, partsupp, orders, nation
  where s_suppkey = l_suppkey and ps_suppkey = l_suppkey and ps_partkey = l_partkey
    and p_partkey = l_partkey and o_orderkey = l_orderkey and s_nationkey = n_nationkey
    and p_name like '%green%') as profit
group by nation, o_year order by nation, o_year desc""",
    10: """select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue,
  c_acctbal, n_name, c_address, c_phone, c_comment
from customer, orders, lineitem, nation
where c_custkey = o_custkey and l_orderkey = o_orderkey and o_orderdate >= '1993-10-01'
  and o_orderdate < date('1993-10-01', '+3 months') and l_returnflag = 'R'
  and c_nationkey = n_nationkey
group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
order by revenue desc limit 20""",
    11: """select ps_partkey, sum(ps_supplycost * ps_availqty) as value
from partsupp, supplier, nation
where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'GERMANY'
group by ps_partkey having sum(ps_supplycost * ps_availqty) > (
  select sum(ps_supplycost * ps_availqty) * :fraction from partsupp, supplier, nation
  where ps_suppkey = s_suppkey and s_nationkey = n_nationkey and n_name = 'GERMANY')
order by value desc""",
    12: """select l_shipmode,
  sum(case when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH' then 1 else 0 end)
    as high_line_count,
  sum(case when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH' then 1 else 0
    end) as low_line_count
from orders, lineitem
where o_orderkey = l_orderkey and l_shipmode in ('MAIL', 'SHIP')
  and l_commitdate < l_receiptdate and l_shipdate < l_commitdate
  and l_receiptdate >= '1994-01-01' and l_receiptdate < date('1994-01-01', '+1 year')
group by l_shipmode order by l_shipmode""",
    13: """select c_count, count(*) as custdist from (
  select c_custkey, count(o_orderkey) as c_count
  from customer left outer join orders on c_custkey = o_custkey
    and o_comment not like '%special%requests%'
  group by c_custkey) as c_orders
group by c_count order by custdist desc, c_count desc""",
    14: """select 100.00 * sum(case when p_type like 'PROMO%'
    then l_extendedprice * (1 - l_discount) else 0 end)
  / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
from lineitem, part
where l_partkey = p_partkey and l_shipdate >= '1995-09-01'
  and l_shipdate < date('1995-09-01', '+1 month')""",
    15: """with revenue0 as (
  select l_suppkey as supplier_no, sum(l_extendedprice * (1 - l_discount)) as total_revenue
  from lineitem
  where l_shipdate >= '1996-01-01' and l_shipdate < date('1996-01-01', '+3 months')
  group by l_suppkey)
select s_suppkey, s_name, s_address, s_phone, total_revenue from supplier, revenue0
where s_suppkey = supplier_no and total_revenue = (select max(total_revenue) from revenue0)
order by s_suppkey""",
    16: """select p_brand, p_type, p_size, count(distinct ps_suppkey) as supplier_cnt
from partsupp, part
where p_partkey = ps_partkey and p_brand <> 'Brand#45'
  and p_type not like 'MEDIUM POLISHED%' and p_size in (49, 14, 23, 45, 19, 3, 36, 9)
  and ps_suppkey not in (select s_suppkey from supplier
                         where s_comment like '%Customer%Complaints%')
group by p_brand, p_type, p_size order by supplier_cnt desc, p_brand, p_type, p_size""",
    17: """select sum(l_extendedprice) / 7.0 as avg_yearly from lineitem, part
where p_partkey = l_partkey and p_brand = 'Brand#23' and p_container = 'MED BOX'
  and l_quantity < (select 0.2 * avg(l_quantity) from lineitem where l_partkey = p_partkey)""",
    18: """select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
from customer, orders, lineitem
where o_orderkey in (select l_orderkey from lineitem group by l_orderkey
                     having sum(l_quantity) > 300)
  and c_custkey = o_custkey and o_orderkey = l_orderkey
group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
order by o_totalprice desc, o_orderdate limit 100""",
    19: """select sum(l_extendedprice * (1 - l_discount)) as revenue from lineitem, part
where (p_partkey = l_partkey and p_brand = 'Brand#12'
    and p_container in ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
    and l_quantity >= 1 and l_quantity <= 1 + 10 and p_size between 1 and 5
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
  or (p_partkey = l_partkey and p_brand = 'Brand#23'
    and p_container in ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
    and l_quantity >= 10 and l_quantity <= 10 + 10 and p_size between 1 and 10
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')
  or (p_partkey = l_partkey and p_brand = 'Brand#34'
    and p_container in ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
    and l_quantity >= 20 and l_quantity <= 20 + 10 and p_size between 1 and 15
    and l_shipmode in ('AIR', 'AIR REG') and l_shipinstruct = 'DELIVER IN PERSON')""",
    20: """select s_name, s_address from supplier, nation
where s_suppkey in (
  select ps_suppkey from partsupp
  where ps_partkey in (select p_partkey from part where p_name like 'forest%')
    and ps_availqty > (
      select 0.5 * sum(l_quantity) from lineitem
      where l_partkey = ps_partkey and l_suppkey = ps_suppkey
        and l_shipdate >= '1994-01-01' and l_shipdate < date('1994-01-01', '+1 year')))
  and s_nationkey = n_nationkey and n_name = 'CANADA'
order by s_name""",
    21: """select s_name, count(*) as numwait from supplier, lineitem l1, orders, nation
where s_suppkey = l1.l_suppkey and o_orderkey = l1.l_orderkey and o_orderstatus = 'F'
  and l1.l_receiptdate > l1.l_commitdate
  and exists (select * from lineitem l2
              where l2.l_orderkey = l1.l_orderkey and l2.l_suppkey <> l1.l_suppkey)
  and not exists (select * from lineitem l3
                  where l3.l_orderkey = l1.l_orderkey and l3.l_suppkey <> l1.l_suppkey
                    and l3.l_receiptdate > l3.l_commitdate)
  and s_nationkey = n_nationkey and n_name = 'SAUDI ARABIA'
group by s_name order by numwait desc, s_name limit 100""",
    22: """select cntrycode, count(*) as numcust, sum(c_acctbal) as totacctbal from (
  select substr(c_phone, 1, 2) as cntrycode, c_acctbal from customer
  where substr(c_phone, 1, 2) in ('13', '31', '23', '29', '30', '18', '17')
    and c_acctbal > (select avg(c_acctbal) from customer where c_acctbal > 0.00
                     and substr(c_phone, 1, 2) in ('13', '31', '23', '29', '30', '18', '17'))
    and not exists (select * from orders where o_custkey = c_custkey)) as custsale
group by cntrycode order by cntrycode""",
}
