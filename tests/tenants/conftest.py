"""Fixtures of the multi-tenant tests: the kernel tests' helpers, and a booted kernel."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernel"))

from kernel_world import Boot


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Boot]:
    b = Boot(tmp_path)
    yield b
    b.close()
