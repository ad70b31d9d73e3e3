"""Fixtures of the red-team suite; the harness itself is harness.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import KernelArena, Tenancy


@pytest.fixture
def tenancy() -> Iterator[Tenancy]:
    """The generic host with tenants alice and bob (closed at teardown)."""
    t = Tenancy()
    yield t
    t.close()


@pytest.fixture
def new_tenancy() -> Iterator[Callable[..., Tenancy]]:
    """A factory of tenancies with other settings (``Tenancy``'s keywords); all closed."""
    made: list[Tenancy] = []

    def make(**kw: Any) -> Tenancy:
        t = Tenancy(**kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelArena]:
    """A booted reference kernel with tenants alice and bob (shut down at teardown)."""
    a = KernelArena(tmp_path)
    yield a
    a.close()
