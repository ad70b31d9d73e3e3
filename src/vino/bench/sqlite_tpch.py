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
files, taking turns going first; the figure is the median), the queries run once.
Stock reads through the host's page cache, which holds the whole file; vino through
its kernel's buffer cache and its device model, twice: with
``KERNEL_FRAMES`` frames (a quarter of the sf 0.1 database: most page reads that miss
SQLite's cache miss the kernel's too) and with enough frames for the whole database
(as the host's page cache is for stock) -- each on its own copy of the loaded image,
both kernels booted cold after the load. A fourth contender reads a copy of stock's
file through a pass-through VFS written in Python (``_PassThroughVFS``: every page
read calls a Python ``xRead`` that calls the Unix VFS): the floor of any VFS in
Python, so that what vino's kernel costs is told apart from what crossing into Python
costs. The contenders take turns going first.
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
    query_s: dict[str, dict[int, float]] = field(default_factory=dict)  # who -> n -> CPU s
    answer_rows: dict[int, int] = field(default_factory=dict)  # n -> rows in stock's answer
    differ: list[int] = field(default_factory=list)  # queries whose answers differ

    def total(self, who: str) -> float:
        return sum(self.query_s[who].values())

    def as_dict(self) -> dict[str, Any]:
        return {"sf": self.sf, "rows": self.rows, "db_bytes": self.db_bytes,
                "load_s": self.load_s, "load_rounds_s": self.load_rounds_s,
                "query_s": self.query_s,
                "answer_rows": self.answer_rows, "differ": self.differ,
                "ratio": {"load": self.load_s["vino"] / self.load_s["stock"],
                          "queries": self.total(VINO) / self.total("stock"),
                          "queries, cache holds the database":
                              self.total(VINO_WHOLE) / self.total("stock"),
                          "queries, python VFS": self.total(PYVFS) / self.total("stock")}}


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
        try:
            with Session(k, k.add_user("tpch"), "tpch.db") as s:
                out["vino"] = _cpu(lambda: tpch.load(s.db, tables))[1]
        finally:
            k.shutdown()

    for step in ((stock, vino) if stock_first else (vino, stock)):
        step()
    return out


def run(sf: float = 0.01, seed: int = 1, load_rounds: int = 1,
        progress: Callable[[str], None] | None = None) -> Result:
    """The load ``load_rounds`` times by each contender, interleaved (the figure: the
    median), then the queries once on the databases of the last load."""
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
            sessions = [Session(k, k.add_user("tpch"), "tpch.db") for k in kernels]
            try:
                dbs = {"stock": stock, PYVFS: pyvfs, VINO: sessions[0].db,
                       VINO_WHOLE: sessions[1].db}
                answers: dict[str, dict[int, list[tuple[Any, ...]]]] = {w: {} for w in dbs}
                result.query_s = {w: {} for w in dbs}
                for n in tpch.QUERY_NUMBERS:
                    order = list(dbs.items())
                    for who, db in order[n % 4:] + order[:n % 4]:  # each goes first in turn
                        t = time.process_time()
                        rows = db.execute(qs[n]).fetchall()
                        cpu = time.process_time() - t
                        answers[who][n] = tpch.rounded(rows)
                        result.query_s[who][n] = cpu
                    say(f"Q{n}: " + ", ".join(f"{w} {result.query_s[w][n] * 1e3:.0f} ms"
                                               for w in dbs))
            finally:
                for sess in sessions:
                    sess.close()
            result.answer_rows = {n: len(a) for n, a in answers["stock"].items()}
            result.differ = sorted({n for w in (PYVFS, VINO, VINO_WHOLE)
                                    for n in tpch.compare(answers["stock"], answers[w])})
        finally:
            stock.close()
            if pyvfs is not None:
                pyvfs.close()
            passthrough.unregister()
            for k in kernels:
                k.shutdown()
    return result


def render(r: Result) -> str:
    def ratio(who: str, n: int) -> str:
        a = r.query_s["stock"][n]
        return f"{r.query_s[who][n] / a if a else float('nan'):.2f}x"

    tot = {w: r.total(w) for w in r.query_s}
    lines = [f"TPC-H scale factor {r.sf}: {r.rows.get('lineitem', 0):,} line items; database "
             f"{r.db_bytes['stock'] / 2**20:.1f} MiB (stock) / "
             f"{r.db_bytes['vino'] / 2**20:.1f} MiB (vino); answers "
             + ("all equal" if not r.differ else f"DIFFER for {r.differ}"),
             "",
             markdown_table(
                 ["step", "stock CPU (ms)", "Python VFS (ms)", "its / stock", "vino CPU (ms)",
                  "vino / stock", "vino, cache holds the db (ms)", "its / stock", "rows"],
                 [[f"load (median of {len(r.load_rounds_s.get('stock', [0]))})",
                   f"{r.load_s['stock'] * 1e3:.0f}", "", "",
                   f"{r.load_s['vino'] * 1e3:.0f}",
                   f"{r.load_s['vino'] / r.load_s['stock']:.2f}x", "", "", ""],
                  *([f"Q{n}", f"{r.query_s['stock'][n] * 1e3:.0f}",
                     f"{r.query_s[PYVFS][n] * 1e3:.0f}", ratio(PYVFS, n),
                     f"{r.query_s[VINO][n] * 1e3:.0f}", ratio(VINO, n),
                     f"{r.query_s[VINO_WHOLE][n] * 1e3:.0f}", ratio(VINO_WHOLE, n),
                     r.answer_rows[n]] for n in tpch.QUERY_NUMBERS),
                  ["**22 queries**", f"{tot['stock'] * 1e3:.0f}", f"{tot[PYVFS] * 1e3:.0f}",
                   f"**{tot[PYVFS] / tot['stock']:.2f}x**", f"{tot[VINO] * 1e3:.0f}",
                   f"**{tot[VINO] / tot['stock']:.2f}x**", f"{tot[VINO_WHOLE] * 1e3:.0f}",
                   f"**{tot[VINO_WHOLE] / tot['stock']:.2f}x**", ""]])]
    return "\n".join(lines)
