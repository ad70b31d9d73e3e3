"""Messages (``graft.send``) and event points, both under the same protection.

What if a message handler changes host state and then traps? The message transaction
is undone and the sender sees ``GraftAborted``. What if one of several event handlers
fails? Each handler runs in its own transaction: the failing one is undone and removed,
the others commit.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason, GraftAborted, NoSuchGraft
from vino.graft import GLOBAL

from .graft_world import (
    BUFFER,
    IMPORT_PUSH,
    IMPORT_PUT,
    TARGET,
    World,
    assert_aborted_and_restored,
    graft,
)

# Stores the message's first byte under key 1; traps if that byte is 0xFF.
MESSAGE = graft(IMPORT_PUT,
                '(func (export "pick") (result i32) (i32.load (i32.const 100)))',
                '(func (export "vino_message") (param $len i32) (result i32)'
                ' (drop (call $put (i32.const 1) (i32.load8_u (i32.const 0))))'
                ' (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 255)) (then unreachable))'
                ' (i32.store (i32.const 100) (i32.load8_u (i32.const 0)))'
                ' (local.get $len))')


def test_message_is_delivered_inside_a_transaction_and_commits(world: World) -> None:
    g = world.install(MESSAGE)
    assert g.send(b"\x2a and more") == 10
    assert world.host.d == {1: 42}
    assert world.pick(TARGET, 0) == 42  # the graft kept what it was told
    assert g.state == "live" and list(g.aborts) == []
    assert g.stats.commits == 2  # the message and the call both count as commits


def test_message_whose_handler_traps_is_undone_and_raises_graft_aborted(world: World) -> None:
    world.host.d[1] = 100
    before = world.snapshot()
    g = world.install(MESSAGE)
    with pytest.raises(GraftAborted) as info:
        g.send(b"\xff")
    assert info.value.reason is AbortReason.TRAP
    assert info.value.detail == "unreachable executed"  # the handler's own trap, named
    assert info.value.graft == g.name
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_message_to_a_removed_graft_raises_no_such_graft(world: World) -> None:
    g = world.install(MESSAGE)
    g.remove()
    with pytest.raises(NoSuchGraft):
        g.send(b"\x01")


def test_message_larger_than_the_buffer_is_refused_and_changes_nothing(world: World) -> None:
    g = world.install(MESSAGE)
    before = world.snapshot()
    with pytest.raises(ValueError, match="exceeds the graft's buffer"):
        g.send(b"x" * (BUFFER + 1))
    assert world.snapshot() == before
    assert g.state == "live" and g.stats.invocations == 0


def test_message_to_a_graft_without_a_handler_is_refused(world: World) -> None:
    g = world.install(graft("", '(func (export "pick") (result i32) (i32.const 1))'))
    with pytest.raises(ValueError, match="exports no vino_message"):
        g.send(b"hi")
    assert g.state == "live"


def _handler(value: int, end: str = "(i32.const 0)") -> str:
    return graft(IMPORT_PUSH + IMPORT_PUT,
                 '(func (export "on_event") (result i32)'
                 f' (drop (call $push (i32.const {value})))'
                 f' (drop (call $put (i32.const {value}) (i32.load (i32.const 0))))'
                 f' {end})')


def test_event_handlers_run_each_in_its_own_transaction_and_a_failing_one_is_removed(
        world: World) -> None:
    reg = world.registry
    h1 = reg.install(world.event, _handler(1), world.alice, TARGET)
    h2 = reg.install(world.event, _handler(2, "unreachable"), world.alice, TARGET)
    h3 = reg.install(world.event, _handler(3), world.root, GLOBAL)
    assert world.event(TARGET, 9) == 2
    assert world.host.items == [1, 3]  # h2's push undone, the others' kept
    assert world.host.d == {1: 9, 3: 9}
    assert h2.removal is not None and h2.removal.reason is AbortReason.TRAP
    assert h1.stats.commits == h3.stats.commits == 1
    assert reg.grafts(world.event) == [h1, h3]
    assert world.event(TARGET, 5) == 2
    assert world.host.items == [1, 3, 1, 3]


def test_event_on_a_target_without_handlers_runs_only_the_global_ones(world: World) -> None:
    world.registry.install(world.event, _handler(1), world.alice, TARGET)
    world.registry.install(world.event, _handler(3), world.root, GLOBAL)
    assert world.event("other", 0) == 1
    assert world.host.items == [3]
    assert world.event(GLOBAL, 0) == 1  # the global handlers, once
    assert world.host.items == [3, 3]


def test_event_with_no_handlers_at_all_does_nothing(world: World) -> None:
    assert world.event(TARGET, 0) == 0
    assert world.host.state() == {"d": {}, "items": []}


def test_event_handler_failing_inside_a_host_transaction_undoes_only_itself(
        world: World) -> None:
    from vino.graft import transaction

    world.registry.install(world.event, _handler(1), world.alice, TARGET)
    world.registry.install(world.event, _handler(2, "unreachable"), world.alice, TARGET)
    with transaction() as parent:
        parent.append(world.host.items, 0)
        assert world.event(TARGET, 4) == 1
        assert world.host.items == [0, 1]
        parent.abort()
    assert world.host.state() == {"d": {}, "items": []}
