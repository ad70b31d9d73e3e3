"""Fixtures of the multi-tenant tests: the kernel tests' helpers, and a booted kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.kernel_world import Boot


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Boot]:
    b = Boot(tmp_path)
    yield b
    b.close()
