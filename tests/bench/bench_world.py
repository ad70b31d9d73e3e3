"""Shared by the benchmark tests: the four set-ups, booted once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vino.bench import paper, workloads
from vino.graft.sandbox import Sandbox


def booted_setups(workdir: Path) -> Iterator[dict[str, workloads.Setup]]:
    """Boot every set-up in ``workdir``; shut them down when the generator is closed."""
    made: dict[str, workloads.Setup] = {}
    shared = Sandbox()
    try:
        for key in paper.GRAFTS:
            made[key] = workloads.build(key, workdir, shared)
        yield made
    finally:
        for s in made.values():
            s.close()
        shared.close()
