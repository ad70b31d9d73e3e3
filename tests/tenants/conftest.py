"""Fixtures of the multi-tenant tests: the kernel tests' helpers, and a booted kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.graft import Registry
from vino.kernel.kernel import Kernel

from .clock import FakeClock


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Kernel, FakeClock]]:
    """A booted kernel whose registry reads a clock the test moves by hand."""
    clock = FakeClock()
    k = Kernel.boot(tmp_path / "disk.img", nblocks=2048, frames=64,
                    registry=Registry(clock=clock))
    try:
        yield k, clock
    finally:
        k.shutdown()
        k.registry.close()
