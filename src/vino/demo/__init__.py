"""``vino demo``: boot the kernel, show what each sample graft changes, then attack it.

``run(out)`` prints two parts and returns True only if every check held:

1. ``vino.demo.samples``: one workload per sample graft (``vino.workloads``),
   first with the default policy and then with the graft, on a fresh kernel each
   time: I/Os and device time saved by read-ahead, faults avoided by eviction,
   latency of the favoured thread, ciphertext on disk.
2. ``vino.demo.gallery``: a gallery of misbehaving grafts, one per way a graft
   can fail at each point; each runs the operation it is attached to and checks
   that the kernel survived (the operation completed with the right answer, the
   graft was aborted for the expected reason and removed, every invariant holds).

``run_sqlite(out)`` (``vino demo sqlite``) runs a real database instead: SQLite on
the kernel's file system, with and without the SQLite grafts, encrypted, under
attack and through a power cut (``vino.demo.sqlite``). ``vino stats`` is
``vino.demo.stats``.

The verdicts are ``vino.report.Checks``; the tables go through
``vino.console.Output``. Nothing here is imported by the library or by the
benchmarks: the package imports the kernel, the workloads and the report, never
the reverse.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from vino.kernel.device import DISK_1996, DiskProfile

__all__ = ["run", "run_sqlite"]


def run(out: IO[str], workdir: Path | None = None,
        progress: Callable[[str], None] | None = None, python: bool = False) -> bool:
    """Run both parts; print tables to ``out``; return True if every check held.

    ``progress`` hears each part and each attack as it starts; ``python`` runs the
    samples' Python twins instead of their C builds.
    """
    from vino.console import Output
    from vino.demo import gallery, samples
    from vino.report import Checks

    say = progress or (lambda msg: None)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="vino-demo-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        out.write(f"vino demo: kernel images in {wd} (pid {os.getpid()})\n")
        samples.part1(wd, checks, out, say, python)
        gallery.part2(wd, checks, out, say, python)
    Output(out).checks(checks)
    return checks.ok


def run_sqlite(out: IO[str], workdir: Path | None = None, rows: int = 100_000,
               profile: DiskProfile = DISK_1996,
               progress: Callable[[str], None] | None = None, python: bool = False) -> bool:
    """SQLite on vino (``vino demo sqlite``); True if every check held.

    ``python``: the SQLite grafts' Python twins (vino.pygraft) instead of their C builds.
    """
    import dataclasses

    from vino.demo import sqlite

    config = dataclasses.replace(sqlite.Config.for_rows(rows), profile=profile,
                                 python_grafts=python)
    return sqlite.run(out, workdir, config, progress)
