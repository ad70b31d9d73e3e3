"""docs/DESIGN.md §5.9: after an abort the graft is removed; the operation still completes.

What if a graft fails now and then? By default its first failure removes it; with
``remove_after=N`` it stays until its Nth failure. Either way every call that hit a
failure answers with the default, and ``graft.aborts`` tells the installer why.
"""

from __future__ import annotations

from collections.abc import Callable

from vino.errors import AbortReason
from vino.graft import GLOBAL

from .graft_world import (
    DEFAULT_ANSWER,
    TARGET,
    World,
    graft,
    pick_returning,
)

# Answers its input x, but traps on odd x: a graft that fails every other call.
FLAKY = graft("", '(func (export "pick") (result i32) (local $x i32)'
                  ' (local.set $x (i32.load (i32.const 0)))'
                  ' (if (i32.and (local.get $x) (i32.const 1)) (then unreachable))'
                  ' (local.get $x))')


def test_graft_failing_once_is_removed_by_default_and_the_default_takes_over(
        world: World) -> None:
    g = world.install(FLAKY)
    assert world.pick(TARGET, 2) == 2
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert g.state == "removed"
    assert world.pick.graft_for(TARGET) is None
    assert world.pick(TARGET, 4) == DEFAULT_ANSWER  # nothing installed any more
    assert [a.reason for a in g.aborts] == [AbortReason.TRAP]
    assert g.removal is g.aborts[-1]


def test_graft_failing_with_remove_after_three_stays_until_its_third_failure(
        world: World) -> None:
    g = world.install(FLAKY, remove_after=3)
    answers = [world.pick(TARGET, x) for x in (1, 2, 3, 4, 5, 6)]
    assert answers == [DEFAULT_ANSWER, 2, DEFAULT_ANSWER, 4, DEFAULT_ANSWER, DEFAULT_ANSWER]
    assert g.state == "removed"
    assert g.failures == 3
    assert [a.reason for a in g.aborts] == [AbortReason.TRAP] * 3
    assert g.stats.commits == 2
    assert g.removal is not None and g.removal.reason is AbortReason.TRAP


def test_graft_failing_in_different_ways_records_each_reason(
        new_world: Callable[..., World]) -> None:
    w = new_world(remove_after=3)
    g = w.install(graft("", '(func (export "pick") (result i32) (local $x i32)'
                            ' (local.set $x (i32.load (i32.const 0)))'
                            ' (if (i32.eq (local.get $x) (i32.const 1)) (then unreachable))'
                            ' (if (i32.eq (local.get $x) (i32.const 2)) (then (loop br 0)))'
                            ' (i32.const 500))'))  # x == 3: an invalid answer
    assert [w.pick(TARGET, x) for x in (1, 2, 3)] == [DEFAULT_ANSWER] * 3
    assert [a.reason for a in g.aborts] == [AbortReason.TRAP, AbortReason.TIMEOUT,
                                            AbortReason.INVALID_RESULT]
    assert g.state == "removed"
    assert dict(g.stats.aborts) == {"trap": 1, "timeout": 1, "invalid_result": 1}


def test_registry_wide_removal_policy_applies_to_every_graft(
        new_world: Callable[..., World]) -> None:
    w = new_world(remove_after=2)
    g = w.install(FLAKY)
    assert w.pick(TARGET, 1) == DEFAULT_ANSWER
    assert g.state == "live"
    assert w.pick(TARGET, 1) == DEFAULT_ANSWER
    assert g.state == "removed"


def test_removed_target_graft_falls_back_to_the_global_graft(world: World) -> None:
    world.install(pick_returning(50), world.root, GLOBAL)
    g = world.install(FLAKY)
    assert world.pick(TARGET, 2) == 2
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER  # this call: the default
    assert g.state == "removed"
    assert world.pick(TARGET, 3) == 50  # later calls: the global graft


def test_removing_a_graft_by_hand_gives_everything_back(world: World) -> None:
    before = world.snapshot()
    g = world.install(pick_returning(5))
    assert world.snapshot() != before
    world.registry.remove(g)
    assert g.state == "removed" and g.removal is None  # removed, not aborted
    assert world.snapshot() == before
    world.registry.remove(g)  # removing twice is harmless
    assert world.snapshot() == before


def test_closing_the_registry_removes_every_graft(world: World) -> None:
    a = world.install(pick_returning(5))
    b = world.registry.install(world.event, graft("", '(func (export "on_event") (result i32)'
                                                      ' (i32.const 0))'), world.alice, TARGET)
    world.registry.close()
    assert a.state == b.state == "removed"
    assert world.registry.grafts() == []
    assert world.alice.usage.memory_bytes == 0
