"""Benchmarks: the overhead table, peers, savings and scale (``vino bench``).

Every benchmark is a module with ``run(...)`` returning plain data and
``render(result)`` printing it (tables from ``vino.report``); ``suite`` runs the
table, savings and scale together; ``setups`` boots the kernels the overhead
table measures, with inputs from ``vino.workloads``. They measure through public
seams only: the kernel's policy slots, graft points, statistics and options.

``bench_quota()`` is the quota of every benchmark principal: the defaults, but a
total CPU budget (``BENCH_CPU_TOTAL_S``) no run reaches, so a long measurement is
never cut short by accounting.
"""

from __future__ import annotations

from typing import Final

from vino.graft import Quota

__all__ = ["BENCH_CPU_TOTAL_S", "bench_quota"]

BENCH_CPU_TOTAL_S: Final = 1e9  # seconds: a benchmark principal's total CPU, never reached


def bench_quota() -> Quota:
    """A benchmark principal's quota: the defaults, but its total CPU never runs out."""
    return Quota(cpu_total_s=BENCH_CPU_TOTAL_S)
