"""Fixtures of every test: no test may leave a live transaction behind.

Each test directory is a package (``__init__.py``), so this file and each directory's
own conftest.py have module names of their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vino.graft.txn import clear_current


@pytest.fixture(autouse=True)
def no_transaction_left() -> Iterator[None]:
    """Every test ends with no live transaction on its thread (else later tests would nest)."""
    yield
    left = clear_current()
    if left is not None:
        pytest.fail(f"test left a live transaction current: {left!r}")
