"""Fixtures of the graft mechanism's tests; the harness itself is graft_world.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .graft_world import World, make_world


@pytest.fixture
def world() -> Iterator[World]:
    """A fresh registry with test.pick and test.event declared (closed at teardown)."""
    w = make_world()
    yield w
    w.registry.close()


@pytest.fixture
def new_world() -> Iterator[Callable[..., World]]:
    """A factory of worlds with other settings (``make_world``'s keywords); all closed."""
    made: list[World] = []

    def make(**kw: Any) -> World:
        w = make_world(**kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.registry.close()
