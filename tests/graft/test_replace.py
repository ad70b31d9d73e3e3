"""Hot replacement: ``install(..., replace=True)`` switches grafts atomically.

What if the point is being called while its graft is replaced? Every call must see the
old graft or the new one: never the default, never an error; and the old graft gives
back everything it held.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_KALLOC,
    TARGET,
    World,
    graft,
    pick_returning,
)

OLD, NEW = 11, 22


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, so the races below actually interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("busy_switching")
def test_graft_replaced_while_callers_hammer_the_point_never_leaves_a_gap(
        new_world: Callable[..., World]) -> None:
    # A generous CPU budget: with five threads fighting for the GIL, a 20 ms wall-clock
    # budget can run out while a graft waits for the GIL (a timeout is not what this
    # test is about).
    # And no install rate to meet: on an idle machine the loop below replaced more than
    # the default burst plus a second's rate (1,200) and was refused for installing
    # too fast (not what this test is about either).
    world = new_world(alice_quota={"cpu_call_s": 5.0, "installs_per_s": 1e9,
                                   "install_burst": 10**9})
    world.install(pick_returning(OLD))
    stop = threading.Event()
    seen: list[dict[int, int]] = []
    errors: list[BaseException] = []

    def caller() -> None:
        counts: dict[int, int] = {}
        try:
            while not stop.is_set():
                answer = world.pick(TARGET, 0)
                counts[answer] = counts.get(answer, 0) + 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        seen.append(counts)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    replacements = 0
    deadline = time.monotonic() + 1.0
    try:
        while time.monotonic() < deadline:
            world.install(pick_returning(NEW if replacements % 2 == 0 else OLD), replace=True)
            replacements += 1
    finally:
        stop.set()
        for t in callers:
            t.join()
    assert errors == []
    total: dict[int, int] = {}
    for counts in seen:
        for answer, n in counts.items():
            total[answer] = total.get(answer, 0) + n
    assert set(total) <= {OLD, NEW}, total  # never DEFAULT_ANSWER, never anything else
    assert replacements > 10
    assert len(world.registry.grafts(world.pick)) == 1


def test_call_that_looked_up_the_old_graft_just_before_the_switch_gets_old_or_new(
        world: World) -> None:
    # The interleaving the hammering test hunts for, made deterministic: a caller
    # looked the graft up, then the replacement switched and removed it, then the
    # caller invoked what it had found.
    old = world.install(pick_returning(OLD))
    found = world.pick.graft_for(TARGET)
    assert found is old
    world.install(pick_returning(NEW), replace=True)
    assert old.state == "removed"
    assert found.invoke((0,)) in (OLD, NEW)
    assert found.invoke((0,)) != DEFAULT_ANSWER


def test_graft_replaced_gives_back_what_the_old_one_held(world: World) -> None:
    before = world.snapshot()
    old = world.install(graft(IMPORT_KALLOC, '(func (export "pick") (result i32)'
                                             ' (call $kalloc (i32.const 100)))'))
    assert world.pick(TARGET, 0) == 1
    assert world.alice.usage.handles == 1
    new = world.install(pick_returning(NEW), replace=True)
    assert old.state == "removed" and old.removal is None
    assert world.alice.usage.handles == 0
    assert world.pick(TARGET, 0) == NEW
    world.registry.remove(new)
    assert world.snapshot() == before


def test_graft_replacement_that_is_rejected_leaves_the_old_graft_in_place(world: World) -> None:
    old = world.install(pick_returning(OLD))
    before = world.snapshot()
    with pytest.raises(Exception, match="missing export 'pick'"):
        world.install(graft(""), replace=True)
    assert world.snapshot() == before
    assert old.state == "live"
    assert world.pick(TARGET, 0) == OLD


def test_graft_replacing_on_an_empty_target_just_installs(world: World) -> None:
    g = world.install(pick_returning(NEW), replace=True)
    assert world.pick.graft_for(TARGET) is g
    assert world.pick(TARGET, 0) == NEW
