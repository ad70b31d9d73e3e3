"""Workloads for SQLite on vino, each checked against a model, and how they are measured.

The database: ``t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)``
with an index ``t_k`` on ``k``, created before the rows are inserted (so the file
interleaves table and index pages, as a database grown by inserts does). Row ``i``
has a random ``k`` below ``KEY_RANGE`` (seeded) and ``v = "row%07d" % i``; the
``g``-th update of a row rewrites ``v`` as ``"u%02d%07d" % (g % 100, i)``. The text
keeps its length, so updates happen in place: the kernel's largest file is
~4.1 MiB and 100,000 rows with their index take ~3.5 MiB, which leaves no room for
the leaf splits that growing rows would cause. ``Model`` is the same table in
Python; every workload compares what SQLite returns with it, and ``verify``
compares the whole table.

Workloads (all seeded, so runs replay exactly):
- ``build``: insert ``rows`` rows in transactions of ``BUILD_BATCH_ROWS``;
- ``lookups``: point queries through the index (``WHERE k = ?``), uniform keys or
  a hot set;
- ``range_scans``: ``count / sum(k) / sum(length(v))`` over ``id BETWEEN lo AND
  hi`` (the table's leaves in key order), optionally announcing each scan to
  the advisor (``scan(True)`` / ``scan(False)``);
- ``updates``: transactions of ``per_txn`` updates of random rows;
- ``mixed``: rounds of hot-set lookups, each followed by one long range scan
  (the case where a buffer pool must not let a scan flush its working set).

``measure(session, fn)`` runs ``fn`` and returns a ``Measure``: the differences of
the kernel's device and cache statistics, the file system's read-ahead counters,
the buffer pool's and the VFS's, the simulated device time (``SimClock``), wall
time, and per graft point the grafts' commits, aborts, time in the graft and
protection overhead. ``cold(kernel)`` writes back and drops the kernel's cached
file blocks, so the next measurement starts from the disk.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import apsw

from vino.kernel.kernel import Kernel
from vino.sqlite.params import BUILD_BATCH_ROWS, SQLITE_BUILD_CACHE_PAGES
from vino.sqlite.session import Session

__all__ = ["Measure", "Model", "build", "cold", "lookups", "measure", "mixed", "range_scans",
           "updates", "verify"]

T = TypeVar("T")
KEY_RANGE = 1 << 23  # k is uniform in [0, KEY_RANGE): 3 bytes in a record
SCHEMA = ("create table t(id integer primary key, k integer not null, v text not null);"
          "create index t_k on t(k);")


def _int(value: object) -> int:
    """An SQLite number as an int (anything else as -1, which no check accepts)."""
    return int(value) if isinstance(value, int | float) else -1


def row_text(i: int) -> str:
    return f"row{i:07d}"


def update_text(i: int, gen: int) -> str:
    return f"u{gen % 100:02d}{i:07d}"


@dataclass(slots=True)
class Model:
    """The table as SQLite should hold it."""

    k: list[int] = field(default_factory=list)  # k[id]
    v: list[str] = field(default_factory=list)  # v[id]
    by_k: dict[int, list[int]] = field(default_factory=dict)  # k -> ids
    generation: int = 0  # updates applied so far

    @property
    def rows(self) -> int:
        return len(self.k)

    def add(self, i: int, k: int, v: str) -> None:
        self.k.append(k)
        self.v.append(v)
        self.by_k.setdefault(k, []).append(i)

    def range(self, lo: int, hi: int) -> tuple[int, int, int]:
        ids = range(max(lo, 0), min(hi, self.rows - 1) + 1)
        return (len(ids), sum(self.k[i] for i in ids), sum(len(self.v[i]) for i in ids))


def build(db: apsw.Connection, rows: int, seed: int = 1) -> Model:
    """Create the schema and insert ``rows`` rows; return the model."""
    rng = random.Random(seed)
    model = Model()
    db.execute(f"pragma cache_size = {SQLITE_BUILD_CACHE_PAGES}")
    db.execute(SCHEMA)
    for start in range(0, rows, BUILD_BATCH_ROWS):
        batch = []
        for i in range(start, min(start + BUILD_BATCH_ROWS, rows)):
            k = rng.randrange(KEY_RANGE)
            model.add(i, k, row_text(i))
            batch.append((i, k, model.v[i]))
        with db:
            db.executemany("insert into t values(?, ?, ?)", batch)
    return model


def lookups(db: apsw.Connection, model: Model, n: int, seed: int = 2,
            hot: list[int] | None = None) -> bool:
    """``n`` point queries by ``k`` (of random rows, or of rows in ``hot``); True if all right."""
    rng = random.Random(seed)
    ok = True
    for _ in range(n):
        i = rng.choice(hot) if hot else rng.randrange(model.rows)
        k = model.k[i]
        got = sorted(db.execute("select id, v from t where k = ?", (k,)).fetchall())
        ok &= got == sorted((j, model.v[j]) for j in model.by_k[k])
    return ok


def range_scans(db: apsw.Connection, model: Model, n: int, span: int, seed: int = 3,
                announce: Callable[[bool], None] | None = None) -> bool:
    """``n`` scans of ``span`` consecutive ids from random starts; True if all right."""
    rng = random.Random(seed)
    ok = True
    for _ in range(n):
        lo = rng.randrange(max(model.rows - span, 1))
        hi = lo + span - 1
        if announce is not None:
            announce(True)
        got = db.execute("select count(*), total(k), total(length(v)) from t "
                         "where id between ? and ?", (lo, hi)).fetchall()[0]
        if announce is not None:
            announce(False)
        ok &= tuple(_int(x) for x in got) == model.range(lo, hi)
    return ok


def updates(db: apsw.Connection, model: Model, txns: int, per_txn: int, seed: int = 4) -> bool:
    """``txns`` transactions of ``per_txn`` row updates; True if every update hit one row."""
    rng = random.Random(seed)
    ok = True
    for _ in range(txns):
        model.generation += 1
        with db:
            for _ in range(per_txn):
                i = rng.randrange(model.rows)
                text = update_text(i, model.generation)
                db.execute("update t set v = ? where id = ?", (text, i))
                ok &= db.changes() == 1
                model.v[i] = text
    return ok


def mixed(db: apsw.Connection, model: Model, rounds: int, lookups_per_round: int,
          hot: list[int], span: int, seed: int = 5,
          announce: Callable[[bool], None] | None = None) -> bool:
    """Rounds of hot-set lookups, each followed by one range scan of ``span`` ids."""
    ok = True
    for r in range(rounds):
        ok &= lookups(db, model, lookups_per_round, seed=seed * 1000 + r, hot=hot)
        ok &= range_scans(db, model, 1, span, seed=seed * 1000 + r, announce=announce)
    return ok


def verify(db: apsw.Connection, model: Model) -> bool:
    """The whole table equals the model, and SQLite's integrity check passes.

    Runs with SQLite's bulk-load cache: ``integrity_check`` looks every row up in
    every index, which with the measuring cache would re-read index leaves once per
    row.
    """
    old = db.execute("pragma cache_size").fetchall()[0][0]
    db.execute(f"pragma cache_size = {SQLITE_BUILD_CACHE_PAGES}")
    try:
        if db.execute("pragma integrity_check").fetchall() != [("ok",)]:
            return False
        got = db.execute("select id, k, v from t order by id").fetchall()
        return got == [(i, model.k[i], model.v[i]) for i in range(model.rows)]
    finally:
        db.execute(f"pragma cache_size = {_int(old)}")


def cold(kernel: Kernel) -> None:
    """Write back and drop every cached block of the kernel's disk."""
    kernel.cache.sync(kernel.device)
    kernel.cache.invalidate(kernel.device)


# ---- measuring ----------------------------------------------------------------------------

@dataclass(slots=True)
class Measure:
    """What one workload cost. Counts are differences over the run."""

    ok: bool = False  # the workload's own check held
    wall_s: float = 0.0
    device: dict[str, int] = field(default_factory=dict)  # DeviceStats fields
    cache: dict[str, int] = field(default_factory=dict)  # CacheStats fields
    fs: dict[str, int] = field(default_factory=dict)  # FsStats fields
    pool: dict[str, int] = field(default_factory=dict)  # PoolStats fields
    vfs: dict[str, int] = field(default_factory=dict)  # VfsStats fields
    grafts: dict[str, dict[str, Any]] = field(default_factory=dict)  # point -> stats

    @property
    def requests(self) -> int:
        """Device requests (reads + writes)."""
        return self.device.get("reads", 0) + self.device.get("writes", 0)

    @property
    def device_ms(self) -> float:
        return self.device.get("busy_ns", 0) / 1e6

    def graft(self, point: str, key: str) -> Any:
        return self.grafts.get(point, {}).get(key, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "wall_s": self.wall_s, "requests": self.requests,
                "device_ms": self.device_ms, "device": self.device, "cache": self.cache,
                "fs": self.fs, "pool": self.pool, "vfs": self.vfs, "grafts": self.grafts}


def _diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a.get(k, 0) for k in b}


def _graft_stats(s: Session) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for point, grafts in s.grafts.by_point().items():
        aborts: dict[str, int] = {}
        row = {"grafts": len(grafts), "commits": 0, "graft_ns": 0, "overhead_ns": 0}
        for g in grafts:
            row["commits"] += g.stats.commits
            row["graft_ns"] += g.stats.graft_ns
            row["overhead_ns"] += g.stats.overhead_ns
            for reason, n in g.stats.aborts.items():
                aborts[reason] = aborts.get(reason, 0) + n
        out[point] = {**row, "aborts": aborts}
    return out


def _graft_diff(a: dict[str, dict[str, Any]],
                b: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for point, row in b.items():
        before = a.get(point, {})
        d: dict[str, Any] = {k: row[k] - before.get(k, 0) for k in
                             ("commits", "graft_ns", "overhead_ns")}
        d["grafts"] = row["grafts"]
        d["aborts"] = {r: n - before.get("aborts", {}).get(r, 0)
                       for r, n in row["aborts"].items()
                       if n - before.get("aborts", {}).get(r, 0)}
        out[point] = d
    return out


def _snap(s: Session) -> dict[str, Any]:
    k = s.kernel
    pool = s.vfs.pool.stats.snapshot() if s.vfs.pool is not None else {}
    return {"device": k.device.stats.snapshot(), "cache": k.cache.stats.snapshot(),
            "fs": k.fs.stats.snapshot(), "pool": pool, "vfs": s.vfs.stats.snapshot(),
            "grafts": _graft_stats(s)}


def measure(s: Session, fn: Callable[[], bool]) -> Measure:
    """Run ``fn`` (a workload returning its check) on session ``s`` and measure it."""
    before = _snap(s)
    t = time.perf_counter()
    ok = fn()
    wall = time.perf_counter() - t
    after = _snap(s)
    return Measure(ok=bool(ok), wall_s=wall,
                   device=_diff(before["device"], after["device"]),
                   cache=_diff(before["cache"], after["cache"]),
                   fs=_diff(before["fs"], after["fs"]),
                   pool=_diff(before["pool"], after["pool"]),
                   vfs=_diff(before["vfs"], after["vfs"]),
                   grafts=_graft_diff(before["grafts"], after["grafts"]))
