"""Fixtures of every test: no test may leave a live transaction behind; ``boot``.

Each test directory is a package (``__init__.py``), so this file and each directory's
own conftest.py have module names of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.kernel_world import Boot
from vino.graft.txn import clear_current


@pytest.fixture(autouse=True)
def no_transaction_left() -> Iterator[None]:
    """Every test ends with no live transaction on its thread (else later tests would nest)."""
    yield
    left = clear_current()
    if left is not None:
        pytest.fail(f"test left a live transaction current: {left!r}")


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Boot]:
    """Boots kernels on images in tmp_path (``Boot``); every one shut down at teardown."""
    b = Boot(tmp_path)
    yield b
    b.close()
