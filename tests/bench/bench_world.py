"""Shared by the benchmark tests: the four set-ups, booted once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vino.bench import paper
from vino.bench import setups as bench_setups
from vino.graft.sandbox import Sandbox


def booted_setups(workdir: Path) -> Iterator[dict[str, bench_setups.Setup]]:
    """Boot every set-up in ``workdir``; shut them down when the generator is closed."""
    made: dict[str, bench_setups.Setup] = {}
    shared = Sandbox()
    try:
        for key in paper.GRAFTS:
            made[key] = bench_setups.build(key, workdir, shared)
        yield made
    finally:
        for s in made.values():
            s.close()
        shared.close()
