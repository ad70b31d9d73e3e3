"""TPC-H on SQLite on vino against stock SQLite (``vino bench tpch [--sf F]``).

The data of ``vino.sqlite.tpch.generate(sf)`` is loaded twice in one run -- by stock
SQLite (apsw's build, its Unix VFS) into an ordinary file, and through a
``Session`` (no grafts) into the reference kernel's file system on a sparse disk
image -- with the same SQLite settings (``session.configure``: 4 KiB pages, a
``cache_size`` of ``SQLITE_CACHE_PAGES``, DELETE journal, ``synchronous=FULL``).
Then the 22 queries run on each, alternating stock and vino query by query, and
every answer is compared (``tpch.compare``).

Figures: CPU time (``time.process_time``) of the load and of each query, and the
database's size. The load may be repeated (``load_rounds``; each contender into fresh
files, taking turns going first; the figure is the median). Stock reads through the
host's page cache, which holds the whole file; vino through its kernel's buffer cache
and its device model, twice: with ``KERNEL_FRAMES`` frames (a quarter of the sf 0.1
database: most page reads that miss SQLite's cache miss the kernel's too) and with
enough frames for the whole database (as the host's page cache is for stock) -- each
on its own copy of the loaded image, both kernels booted cold after the load. A fourth
contender reads a copy of stock's file through a pass-through VFS written in Python
(``_PassThroughVFS``: every page read calls a Python ``xRead`` that calls the Unix
VFS): the floor of any VFS in Python, so that what vino's kernel costs is told apart
from what crossing into Python costs.

The queries run in ``query_rounds`` rounds (default ``QUERY_ROUNDS``) over the same
four open databases: in each round every query runs once on each contender, one
after the other, the order rotated by query and by round (``(n + round) % 4``
contenders skipped to the back), so each contender goes first in turn. Round 1 is
the **cold round**: both vino kernels start with empty caches (its figures include
their first loads of each block; stock's file is already in the host's page cache
from the load), and SQLite's own caches start empty on all four. The rounds after it
are **warm**. The figures, all kept in ``Result``:

- per query and contender, the **median of the warm rounds** (all rounds if there is
  one only), and the 22 queries' total as the sum of those medians; a query's ratio
  is its medians' (vino's over stock's);
- per warm round, each contender's 22-query total over stock's in that round: their
  median and their range (the spread the host's load puts on one round);
- the cold round's totals and ratios, shown beside them.

No figure is picked for being the best: every warm round counts, the cold one is shown
as what it is. Every answer of every round is compared with stock's first.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import apsw

from vino.kernel.kernel import Kernel
from vino.report import markdown_table
from vino.sqlite import tpch
from vino.sqlite.session import Session, configure

__all__ = ["Result", "render", "run"]

KERNEL_FRAMES: Final = 8192  # the vino kernel's buffer cache (32 MiB)
VINO: Final = "vino"  # the contender with KERNEL_FRAMES
VINO_WHOLE: Final = "vino, cache holds the database"  # frames for all of it + KERNEL_FRAMES
PYVFS: Final = "python VFS"  # stock's file through a pass-through VFS written in Python
QUERY_ROUNDS: Final = 4  # rounds of the 22 queries: the cold one and three warm (~2 min at sf 0.1)


class _PassThroughFile(apsw.VFSFile):
    """Each page read crosses into Python and back into the Unix VFS: the floor of any
    VFS written in Python (what apsw's callback alone costs)."""

    def xRead(self, amount: int, offset: int) -> bytes:
        return super().xRead(amount, offset)


class _PassThroughVFS(apsw.VFS):
    def __init__(self, name: str) -> None:
        super().__init__(name, "")

    def xOpen(self, name: str | apsw.URIFilename | None,
              flags: list[int]) -> _PassThroughFile:
        return _PassThroughFile("", name, flags)
IMAGE_HEADROOM: Final = 3  # disk image blocks per byte of raw data, roughly (sparse)
MIN_IMAGE_BLOCKS: Final = 8192


@dataclass(slots=True)
class Result:
    sf: float
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    db_bytes: dict[str, int] = field(default_factory=dict)  # who -> database file size
    load_s: dict[str, float] = field(default_factory=dict)  # who -> CPU s (median of rounds)
    load_rounds_s: dict[str, list[float]] = field(default_factory=dict)  # who -> each round's
    # who -> n -> CPU s of each query round, the cold round first
    query_rounds_s: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    answer_rows: dict[int, int] = field(default_factory=dict)  # n -> rows in stock's answer
    differ: list[int] = field(default_factory=list)  # queries whose answers differ

    @property
    def rounds(self) -> int:
        return len(self.query_rounds_s["stock"][tpch.QUERY_NUMBERS[0]])

    def _warm(self) -> slice:
        return slice(1, None) if self.rounds > 1 else slice(0, None)

    @property
    def query_s(self) -> dict[str, dict[int, float]]:
        """who -> n -> CPU s: the median of the warm rounds (of all, if only one ran)."""
        return {who: {n: statistics.median(cpu[self._warm()]) for n, cpu in qs.items()}
                for who, qs in self.query_rounds_s.items()}

    def total(self, who: str) -> float:
        """The 22 queries: the sum of their medians."""
        return sum(self.query_s[who].values())

    def round_total(self, who: str, r: int) -> float:
        return sum(cpu[r] for cpu in self.query_rounds_s[who].values())

    def round_ratios(self, who: str) -> list[float]:
        """Each warm round's 22-query total over stock's in that round."""
        return [self.round_total(who, r) / self.round_total("stock", r)
                for r in range(self.rounds)[self._warm()]]

    def as_dict(self) -> dict[str, Any]:
        contenders = {"queries": VINO, "queries, cache holds the database": VINO_WHOLE,
                      "queries, python VFS": PYVFS}
        return {"sf": self.sf, "rows": self.rows, "db_bytes": self.db_bytes,
                "load_s": self.load_s, "load_rounds_s": self.load_rounds_s,
                "query_s": self.query_s, "query_rounds_s": self.query_rounds_s,
                "answer_rows": self.answer_rows, "differ": self.differ,
                "ratio": {"load": self.load_s["vino"] / self.load_s["stock"],
                          **{k: self.total(w) / self.total("stock")
                             for k, w in contenders.items()}},
                "round_ratios": {k: self.round_ratios(w) for k, w in contenders.items()},
                "cold_ratio": {k: self.round_total(w, 0) / self.round_total("stock", 0)
                               for k, w in contenders.items()}}


def _cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def _load_round(workdir: Path, tables: dict[str, list[tuple[Any, ...]]], nblocks: int,
                stock_first: bool) -> dict[str, float]:
    """One more load by each contender into fresh files: CPU seconds, who -> s."""
    out: dict[str, float] = {}

    def stock() -> None:
        path = workdir / "round.db"
        path.unlink(missing_ok=True)
        db = apsw.Connection(str(path))
        try:
            configure(db)
            out["stock"] = _cpu(lambda: tpch.load(db, tables))[1]
        finally:
            db.close()

    def vino() -> None:
        k = Kernel.boot(workdir / "round.img", nblocks=nblocks, frames=KERNEL_FRAMES)
        k.fs.quota.sole_user()  # one user's database: no share to keep
        try:
            with Session(k, k.add_user("tpch"), "tpch.db") as s:
                out["vino"] = _cpu(lambda: tpch.load(s.db, tables))[1]
        finally:
            k.shutdown()

    for step in ((stock, vino) if stock_first else (vino, stock)):
        step()
    return out


def run(sf: float = 0.01, seed: int = 1, load_rounds: int = 1,
        query_rounds: int = QUERY_ROUNDS,
        progress: Callable[[str], None] | None = None) -> Result:
    """The load ``load_rounds`` times by each contender, interleaved (the figure: the
    median), then ``query_rounds`` rounds of the queries on the databases of the last
    load (the module's docstring says how they take turns and what is reported)."""
    if query_rounds < 1:
        raise ValueError(f"query_rounds must be at least 1, got {query_rounds}")
    say = progress or (lambda msg: None)
    result = Result(sf)
    say(f"generating TPC-H at scale factor {sf}")
    tables = tpch.generate(sf, seed)
    result.rows = dict(tpch.rows_of(tables))
    raw = sum(len(repr(r)) for rows in tables.values() for r in rows)
    nblocks = max(MIN_IMAGE_BLOCKS, IMAGE_HEADROOM * raw // 4096)
    qs = tpch.queries(sf)
    with tempfile.TemporaryDirectory(prefix="vino-tpch-") as tmp:
        for r in range(load_rounds - 1):
            say(f"loading, round {r + 1} of {load_rounds}")
            for who, cpu in _load_round(Path(tmp), tables, nblocks, r % 2 == 1).items():
                result.load_rounds_s.setdefault(who, []).append(cpu)
        stock_path = Path(tmp) / "stock.db"
        image, whole_image = Path(tmp) / "vino.img", Path(tmp) / "whole.img"
        stock = apsw.Connection(str(stock_path))
        pyvfs_name = f"vino-bench-passthrough-{id(result)}"
        passthrough = _PassThroughVFS(pyvfs_name)
        pyvfs: apsw.Connection | None = None
        kernels: list[Kernel] = [Kernel.boot(image, nblocks=nblocks, frames=KERNEL_FRAMES)]
        kernels[0].fs.quota.sole_user()  # one user's database: no share to keep
        try:
            configure(stock)
            with Session(kernels[0], kernels[0].add_user("tpch"), "tpch.db") as s:
                say("loading (stock)")
                _, result.load_s["stock"] = _cpu(lambda: tpch.load(stock, tables))
                say("loading (vino)")
                _, result.load_s["vino"] = _cpu(lambda: tpch.load(s.db, tables))
            for who, cpu in result.load_s.items():
                result.load_rounds_s.setdefault(who, []).append(cpu)
                result.load_s[who] = statistics.median(result.load_rounds_s[who])
            result.db_bytes = {"stock": stock_path.stat().st_size,
                               "vino": kernels[0].fs.stat("tpch.db").size}
            kernels.pop().shutdown()
            shutil.copyfile(stock_path, Path(tmp) / "pyvfs.db")
            pyvfs = apsw.Connection(str(Path(tmp) / "pyvfs.db"), vfs=pyvfs_name)
            configure(pyvfs)
            # The same database twice, each kernel cold: one cache a quarter of it, one
            # that holds it (as the host's page cache holds stock's file).
            shutil.copyfile(image, whole_image)
            whole_frames = -(-result.db_bytes["vino"] // 4096) + KERNEL_FRAMES
            kernels += [Kernel.boot(image, fresh=False, frames=KERNEL_FRAMES),
                        Kernel.boot(whole_image, fresh=False, frames=whole_frames)]
            for k in kernels:
                k.fs.quota.sole_user()
            sessions = [Session(k, k.add_user("tpch"), "tpch.db") for k in kernels]
            try:
                dbs = {"stock": stock, PYVFS: pyvfs, VINO: sessions[0].db,
                       VINO_WHOLE: sessions[1].db}
                _query_rounds(result, dbs, qs, query_rounds, say)
            finally:
                for sess in sessions:
                    sess.close()
        finally:
            stock.close()
            if pyvfs is not None:
                pyvfs.close()
            passthrough.unregister()
            for k in kernels:
                k.shutdown()
    return result


def _query_rounds(result: Result, dbs: dict[str, apsw.Connection], qs: dict[int, str],
                  rounds: int, say: Callable[[str], None]) -> None:
    """The 22 queries ``rounds`` times on every contender, taking turns going first;
    every answer compared with stock's in the first round."""
    answers: dict[str, dict[int, list[tuple[Any, ...]]]] = {w: {} for w in dbs}
    result.query_rounds_s = {w: {n: [] for n in tpch.QUERY_NUMBERS} for w in dbs}
    differ: set[int] = set()
    order = list(dbs.items())
    for r in range(rounds):
        what = "cold" if r == 0 and rounds > 1 else "warm"
        for n in tpch.QUERY_NUMBERS:
            first = (n + r) % len(order)
            for who, db in order[first:] + order[:first]:  # each goes first in turn
                t = time.process_time()
                rows = db.execute(qs[n]).fetchall()
                result.query_rounds_s[who][n].append(time.process_time() - t)
                got = tpch.rounded(rows)
                if r == 0:
                    answers[who][n] = got
                elif tpch.compare({n: answers["stock"][n]}, {n: got}):
                    differ.add(n)
            say(f"round {r + 1} of {rounds} ({what}), Q{n}: " + ", ".join(
                f"{w} {result.query_rounds_s[w][n][r] * 1e3:.0f} ms" for w in dbs))
    result.answer_rows = {n: len(a) for n, a in answers["stock"].items()}
    differ |= {n for w in dbs if w != "stock"
               for n in tpch.compare(answers["stock"], answers[w])}
    result.differ = sorted(differ)


def _spread(ratios: list[float]) -> str:
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}x"
    return (f"median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}-"
            f"{max(ratios):.2f}x")


def render(r: Result) -> str:
    med = r.query_s  # who -> n -> the median of the warm rounds
    tot = {w: sum(qs.values()) for w, qs in med.items()}
    warm = r.rounds - 1 if r.rounds > 1 else 1

    def ratio(who: str, n: int) -> str:
        a = med["stock"][n]
        return f"{med[who][n] / a if a else float('nan'):.2f}x"

    lines = [f"TPC-H scale factor {r.sf}: {r.rows.get('lineitem', 0):,} line items; database "
             f"{r.db_bytes['stock'] / 2**20:.1f} MiB (stock) / "
             f"{r.db_bytes['vino'] / 2**20:.1f} MiB (vino); answers "
             + ("all equal" if not r.differ else f"DIFFER for {r.differ}")
             + f"; queries: {r.rounds} round(s), "
             + (f"the first cold, each figure the median of the {warm} warm ones"
                if r.rounds > 1 else "one, cold"),
             "",
             markdown_table(
                 ["step", "stock CPU (ms)", "Python VFS (ms)", "its / stock", "vino CPU (ms)",
                  "vino / stock", "vino, cache holds the db (ms)", "its / stock", "rows"],
                 [[f"load (median of {len(r.load_rounds_s.get('stock', [0]))})",
                   f"{r.load_s['stock'] * 1e3:.0f}", "", "",
                   f"{r.load_s['vino'] * 1e3:.0f}",
                   f"{r.load_s['vino'] / r.load_s['stock']:.2f}x", "", "", ""],
                  *([f"Q{n}", f"{med['stock'][n] * 1e3:.0f}",
                     f"{med[PYVFS][n] * 1e3:.0f}", ratio(PYVFS, n),
                     f"{med[VINO][n] * 1e3:.0f}", ratio(VINO, n),
                     f"{med[VINO_WHOLE][n] * 1e3:.0f}", ratio(VINO_WHOLE, n),
                     r.answer_rows[n]] for n in tpch.QUERY_NUMBERS),
                  ["**22 queries**", f"{tot['stock'] * 1e3:.0f}", f"{tot[PYVFS] * 1e3:.0f}",
                   f"**{tot[PYVFS] / tot['stock']:.2f}x**", f"{tot[VINO] * 1e3:.0f}",
                   f"**{tot[VINO] / tot['stock']:.2f}x**", f"{tot[VINO_WHOLE] * 1e3:.0f}",
                   f"**{tot[VINO_WHOLE] / tot['stock']:.2f}x**", ""]])]
    names = ((PYVFS, "Python VFS"), (VINO, "vino"), (VINO_WHOLE, "vino, cache holds the db"))
    if r.rounds > 1:
        lines += ["", f"Each warm round's 22-query total over stock's ({warm} rounds): "
                  + "; ".join(f"{name} {_spread(r.round_ratios(w))}" for w, name in names)
                  + ".",
                  "", "The cold round (round 1: both vino kernels' caches empty, SQLite's "
                  "caches empty; stock's file in the host's page cache): stock "
                  f"{r.round_total('stock', 0) * 1e3:.0f} ms; "
                  + "; ".join(f"{name} {r.round_total(w, 0) * 1e3:.0f} ms, "
                              f"{r.round_total(w, 0) / r.round_total('stock', 0):.2f}x"
                              for w, name in names) + "."]
    return "\n".join(lines)
