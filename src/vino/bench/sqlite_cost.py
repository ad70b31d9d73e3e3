"""What SQLite on vino costs in CPU against stock SQLite (``vino bench sqlite``).

The same workload, with the same SQLite settings (``session.configure``: 4 KiB
pages, the same ``cache_size``, DELETE journal, ``synchronous=FULL``), run by two
contenders side by side in one run, round after round (the order alternating, so a
noisy machine slows both alike):

- ``stock``: SQLite (apsw's build) with its own Unix VFS on an ordinary file in a
  temporary directory;
- ``vino``: a ``Session`` on a freshly booted reference kernel, no grafts: every
  read, write, sync, lock and delete goes through the ``VinoVFS`` into the kernel's
  file system, buffer cache and device model.

The phases are ``vino.sqlite.workloads``': ``build`` (insert ``rows`` rows in
transactions of 5,000), ``lookups`` (indexed point queries, each its own read
transaction), ``scans`` (range scans of 2,000 ids) and ``updates`` (transactions of
20 row updates, each a commit with its journal). The figure is CPU time
(``time.process_time``: user + system of the whole process) per phase, the median
over rounds; ``ratio`` is vino / stock. Each contender's workload checks its own
answers against the model, so a fast wrong answer cannot count.

What differs and is not hidden: stock's ``xSync`` is a real ``fsync`` (its system
CPU counts), vino's device model writes its image without ``fsync`` (the device
time is simulated).
"""

from __future__ import annotations

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
from vino.sqlite import workloads as wl
from vino.sqlite.params import SQLITE_CACHE_PAGES
from vino.sqlite.session import Session, configure

__all__ = ["CONTENDERS", "PHASES", "Result", "render", "run"]

PHASES: Final = ("build", "lookups", "scans", "updates")
CONTENDERS: Final = ("stock", "vino")
ROWS: Final = 20_000  # rows of the table (~1.6 MiB with its index)
LOOKUPS: Final = 2_000  # indexed point queries
SCANS: Final = 50  # range scans ...
SCAN_IDS: Final = 2_000  # ... of this many consecutive ids
UPDATE_TXNS: Final = 100  # transactions ...
UPDATES_PER_TXN: Final = 20  # ... of this many row updates
IMAGE_BLOCKS: Final = 8192  # the vino contender's disk image (32 MiB)
KERNEL_FRAMES: Final = 1024  # its kernel's page frames (4 MiB)


@dataclass(slots=True)
class Result:
    rows: int
    cache_pages: int
    rounds: int
    cpu_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # who -> phase -> s

    def median(self, who: str, phase: str) -> float:
        return statistics.median(self.cpu_s[who][phase])

    def total(self, who: str) -> float:
        return sum(self.median(who, p) for p in PHASES)

    def ratio(self, phase: str | None = None) -> float:
        if phase is None:
            return self.total("vino") / self.total("stock")
        return self.median("vino", phase) / self.median("stock", phase)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "cache_pages": self.cache_pages, "rounds": self.rounds,
                "cpu_s": self.cpu_s,
                "median_s": {w: {p: self.median(w, p) for p in PHASES} for w in CONTENDERS},
                "ratio": {**{p: self.ratio(p) for p in PHASES}, "total": self.ratio()}}


def _phases(db: apsw.Connection, rows: int, cache_pages: int) -> dict[str, float]:
    """Run every phase on ``db``; CPU seconds per phase. Raises if an answer is wrong."""
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], bool]) -> None:
        t = time.process_time()
        ok = fn()
        out[name] = time.process_time() - t
        if not ok:
            raise AssertionError(f"sqlite cost: the {name} phase answered wrongly")

    model = wl.Model()

    def build() -> bool:
        nonlocal model
        model = wl.build(db, rows)
        db.execute(f"pragma cache_size = {cache_pages}")  # build raised it
        return True

    timed("build", build)
    timed("lookups", lambda: wl.lookups(db, model, LOOKUPS))
    timed("scans", lambda: wl.range_scans(db, model, SCANS, SCAN_IDS))
    timed("updates", lambda: wl.updates(db, model, UPDATE_TXNS, UPDATES_PER_TXN))
    if not wl.verify(db, model):
        raise AssertionError("sqlite cost: the table differs from the model at the end")
    return out


def _stock(workdir: Path, rows: int, cache_pages: int) -> dict[str, float]:
    path = workdir / "stock.db"
    for p in workdir.glob("stock.db*"):
        p.unlink()
    db = apsw.Connection(str(path))
    try:
        configure(db, cache_pages)
        return _phases(db, rows, cache_pages)
    finally:
        db.close()


def _vino(workdir: Path, rows: int, cache_pages: int) -> dict[str, float]:
    k = Kernel.boot(workdir / "vino.img", nblocks=IMAGE_BLOCKS, frames=KERNEL_FRAMES)
    k.fs.quota.sole_user()  # one user's database: no share to keep
    try:
        with Session(k, k.add_user("bench"), "bench.db", cache_pages=cache_pages) as s:
            return _phases(s.db, rows, cache_pages)
    finally:
        k.shutdown()


def run(rounds: int = 7, rows: int = ROWS, cache_pages: int = SQLITE_CACHE_PAGES,
        progress: Callable[[str], None] | None = None) -> Result:
    """``rounds`` interleaved rounds of both contenders; the CPU time of every phase."""
    result = Result(rows, cache_pages, rounds,
                    {w: {p: [] for p in PHASES} for w in CONTENDERS})
    runners = {"stock": _stock, "vino": _vino}
    with tempfile.TemporaryDirectory(prefix="vino-sqlite-cost-") as tmp:
        workdir = Path(tmp)
        for r in range(rounds):
            order = CONTENDERS if r % 2 == 0 else tuple(reversed(CONTENDERS))
            for who in order:
                got = runners[who](workdir, rows, cache_pages)
                for p in PHASES:
                    result.cpu_s[who][p].append(got[p])
            if progress is not None:
                last = {w: sum(result.cpu_s[w][p][-1] for p in PHASES) for w in CONTENDERS}
                ratio = last["vino"] / last["stock"]
                progress(f"round {r + 1}/{rounds}: vino / stock {ratio:.2f}x")
    return result


def render(result: Result) -> str:
    lines = [f"SQLite CPU time, stock vs vino (no grafts): {result.rows} rows, "
             f"cache_size {result.cache_pages} pages, median of {result.rounds} rounds",
             "",
             markdown_table(
                 ["phase", "stock (ms)", "vino (ms)", "vino / stock"],
                 [*([p, f"{result.median('stock', p) * 1e3:.1f}",
                     f"{result.median('vino', p) * 1e3:.1f}", f"{result.ratio(p):.2f}x"]
                    for p in PHASES),
                  ["**total**", f"{result.total('stock') * 1e3:.1f}",
                   f"{result.total('vino') * 1e3:.1f}", f"**{result.ratio():.2f}x**"]])]
    return "\n".join(lines)
