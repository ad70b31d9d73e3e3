"""docs/DESIGN.md §5.8: an abort restores every piece of host state, in reverse order.

What if a graft changes host state many times and then traps? Every change is undone,
newest first (the dict key below is overwritten twice, so undoing in the wrong order
would leave the middle value). What if the changes came from the default policy run
through ``default()``, or the graft runs inside a host transaction? A child's abort
undoes only the child; the parent's own entries stay until the parent ends.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason
from vino.graft import (
    FunctionPoint,
    GraftCallable,
    Principal,
    Registry,
    Transaction,
    any_principal,
    current,
    transaction,
)

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_BOOM,
    IMPORT_DEFAULT,
    IMPORT_PICK_FOR,
    IMPORT_PUSH,
    IMPORT_PUT,
    TARGET,
    World,
    assert_aborted_and_restored,
    assert_host_fault_kept_and_restored,
    graft,
)

ACCESSORS = IMPORT_PUT + IMPORT_PUSH

# Overwrites key 1 twice, appends twice, adds key 2, then (maybe) traps.
SEVERAL = ('(drop (call $put (i32.const 1) (i32.const 10)))'
           ' (drop (call $push (i32.const 1)))'
           ' (drop (call $put (i32.const 1) (i32.const 20)))'
           ' (drop (call $push (i32.const 2)))'
           ' (drop (call $put (i32.const 2) (i32.const 30)))')


def _several_then(end: str) -> str:
    return graft(ACCESSORS, f'(func (export "pick") (result i32) {SEVERAL} {end})')


def test_graft_trapping_after_several_accessor_calls_has_all_undone_newest_first(
        world: World) -> None:
    world.host.d[1] = 100
    world.host.items.append(0)
    before = world.snapshot()
    g = world.install(_several_then("unreachable"))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)
    assert world.host.d == {1: 100}  # not 10: the first overwrite's undo ran last
    assert world.host.items == [0]


def test_graft_committing_after_several_accessor_calls_keeps_them_all(world: World) -> None:
    world.host.d[1] = 100
    g = world.install(_several_then("(i32.const 3)"))
    assert world.pick(TARGET, 0) == 3
    assert world.host.d == {1: 20, 2: 30}
    assert world.host.items == [1, 2]
    assert g.stats.commits == 1


@pytest.mark.parametrize("n", range(6))
def test_graft_trapping_after_the_nth_accessor_call_leaves_state_fully_before(
        world: World, n: int) -> None:
    # SQLite-style: fail after the 1st, 2nd, ... Nth change; the state is always the
    # state before, never a mixture.
    calls = SEVERAL.split(" (drop")
    body = " (drop".join(calls[:n]) if n else ""
    world.host.d.update({1: 100, 2: 200})
    world.host.items.extend([7, 8])
    before = world.snapshot()
    g = world.install(graft(ACCESSORS, f'(func (export "pick") (result i32) {body} unreachable)'))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_bug_in_a_host_callable_reaches_the_caller_and_the_innocent_graft_is_kept(
        world: World) -> None:
    # The host's own bug is not the graft's fault: the transaction is aborted (the
    # graft's earlier accessor calls undone), the graft stays installed, uncharged,
    # and the caller gets the exception with its traceback (before: the graft was
    # removed and the caller silently got the default).
    g = world.install(graft(ACCESSORS + IMPORT_BOOM,
                            f'(func (export "pick") (result i32) {SEVERAL} (call $boom))'))
    before = world.snapshot()
    with pytest.raises(RuntimeError, match="a bug in host code") as info:
        world.pick(TARGET, 0)
    assert g.aborts[-1].detail == ("graft-callable or default: RuntimeError: a bug in host "
                                   "code called by the graft")
    assert any(f.name == "boom" for f in __import__("traceback").extract_tb(
        info.value.__traceback__))  # the host's own frame is in the traceback
    assert_host_fault_kept_and_restored(world, g, info.value, before)


def test_graft_trapping_after_calling_the_default_has_the_defaults_changes_undone_too(
        world: World) -> None:
    world.host.default_records = True  # the default policy changes host state, undoably
    world.host.d[1] = 100
    before = world.snapshot()
    g = world.install(graft(ACCESSORS + IMPORT_DEFAULT,
                            '(func (export "pick") (result i32)'
                            ' (drop (call $put (i32.const 1) (i32.const 10)))'
                            ' (drop (call $default))'
                            ' (drop (call $put (i32.const 1) (i32.const 20)))'
                            ' (drop (call $push (i32.const 5)))'
                            ' unreachable)'))
    assert world.pick(TARGET, 4) == DEFAULT_ANSWER
    # The default ran twice: inside the graft (its changes undone with the graft's),
    # and after the abort, outside any transaction (where it changes nothing).
    assert world.host.default_calls == 2
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_graft_committing_after_calling_the_default_keeps_the_defaults_changes(
        world: World) -> None:
    world.host.default_records = True
    world.install(graft(ACCESSORS + IMPORT_DEFAULT,
                        '(func (export "pick") (result i32)'
                        ' (drop (call $push (i32.const 1)))'
                        ' (drop (call $default))'
                        ' (drop (call $push (i32.const 2)))'
                        ' (i32.const 9))'))
    assert world.pick(TARGET, 4) == 9
    assert world.host.d == {"default": 4}
    assert world.host.items == [1, -4, 2]


def test_bug_in_the_default_called_by_a_graft_reaches_the_caller_its_work_undone(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def fragile_default(x: int) -> int:
        # Inside a graft's default() it records a change, then fails half-way.
        txn = current()
        if txn is not None:
            txn.setitem(world.host.d, "half-done", x)
            raise ValueError("default policy bug")
        return DEFAULT_ANSWER

    g = world.install(graft(ACCESSORS + IMPORT_DEFAULT,
                            '(func (export "pick") (result i32)'
                            ' (drop (call $push (i32.const 1)))'
                            ' (call $default))'))
    before = world.snapshot()
    monkeypatch.setattr(world.pick, "default", fragile_default)
    # The default is the host's policy: its bug reaches the caller (before: the graft
    # was blamed, removed, and the caller got the same buggy default's answer).
    with pytest.raises(ValueError, match="default policy bug") as info:
        world.pick(TARGET, 4)
    assert_host_fault_kept_and_restored(world, g, info.value, before)


def test_graft_aborting_inside_a_host_transaction_undoes_only_its_own_changes(
        world: World) -> None:
    world.host.d[1] = 100
    before = world.snapshot()
    g = world.install(_several_then("unreachable"))
    with transaction() as parent:
        parent.setitem(world.host.d, "parent", 1)
        parent.append(world.host.items, 99)
        assert world.pick(TARGET, 0) == DEFAULT_ANSWER  # the child aborts
        assert world.host.d == {1: 100, "parent": 1}
        assert world.host.items == [99]
        parent.setitem(world.host.d, "parent", 2)
        parent.abort()  # now the parent aborts too: its own entries go
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_graft_committing_inside_a_host_transaction_is_undone_when_the_host_one_aborts(
        world: World) -> None:
    world.host.d[1] = 100
    before = world.snapshot()
    g = world.install(_several_then("(i32.const 3)"))
    with pytest.raises(KeyError), transaction() as parent:
        parent.setitem(world.host.d, "parent", 1)
        assert world.pick(TARGET, 0) == 3  # the child commits into the parent
        assert world.host.d == {1: 20, 2: 30, "parent": 1}
        raise KeyError("the host operation fails later")
    assert g.state == "live" and g.stats.commits == 1  # the graft did nothing wrong
    after = world.snapshot()
    assert after["host"] == before["host"]
    assert after["locks_held"] == before["locks_held"] == []


def test_graft_calling_its_own_point_re_entrantly_gets_the_default(world: World) -> None:
    world.install(graft(ACCESSORS + IMPORT_PICK_FOR,
                        '(func (export "pick") (result i32)'
                        ' (drop (call $push (i32.const 1)))'
                        ' (i32.add (call $pick_for (i32.const 1) (i32.const 3)) (i32.const 1)))'))
    assert TARGET == "t1"
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER + 1
    assert world.host.items == [1]


def _outer(end: str) -> str:
    """A graft on t1 that changes state, calls the point for t2, changes more, then ends."""
    return graft(ACCESSORS + IMPORT_PICK_FOR,
                 '(func (export "pick") (result i32) (local $r i32)'
                 ' (drop (call $push (i32.const 50)))'
                 ' (local.set $r (call $pick_for (i32.const 2) (i32.const 0)))'
                 ' (drop (call $push (i32.const 51)))'
                 f' {end})')


def test_inner_graft_aborting_under_an_outer_graft_undoes_only_the_inner_one(
        world: World) -> None:
    world.host.d[1] = 100
    inner = world.install(_several_then("unreachable"), world.alice, "t2")
    outer = world.install(_outer("(i32.add (local.get $r) (i32.const 1))"), world.root, "t1")
    assert world.pick("t1", 0) == DEFAULT_ANSWER + 1  # the inner answer was the default's
    assert world.host.items == [50, 51]
    assert world.host.d == {1: 100}
    assert inner.removal is not None and inner.removal.reason is AbortReason.TRAP
    assert outer.state == "live" and outer.stats.commits == 1


def test_outer_graft_aborting_after_its_inner_graft_committed_undoes_both(
        world: World) -> None:
    world.host.d[1] = 100
    before = world.snapshot()
    inner = world.install(_several_then("(i32.const 3)"), world.alice, "t2")
    outer = world.install(_outer("unreachable"), world.root, "t1")
    assert world.pick("t1", 0) == DEFAULT_ANSWER
    assert inner.state == "live" and inner.stats.commits == 1  # committed into the outer
    assert outer.removal is not None and outer.removal.reason is AbortReason.TRAP
    after = world.snapshot()
    assert after["host"] == before["host"]
    assert after["locks_held"] == []
    assert after["usage"]["root"] == before["usage"]["root"]


def _registry_with(callable_: GraftCallable) -> tuple[Registry, FunctionPoint[object, int, int]]:
    reg = Registry()
    point = FunctionPoint[object, int, int](
        name="bad.pick", entry="pick", buffer_size=16, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: -1, callables=(callable_,),
        may_install=any_principal, target_type=object)
    reg.declare(point)
    return reg, point


CALL_THEN_TRAP = ('(module (import "vino" "f" (func $f (result i32)))'
                  ' (memory (export "memory") 1)'
                  ' (func (export "vino_buffer") (result i32) i32.const 0)'
                  ' (func (export "pick") (result i32) (drop (call $f)) unreachable))')


def test_graft_whose_abort_meets_a_failing_undo_step_tells_its_installer() -> None:
    # An undo step that raises is host code's bug; the rest still runs, and the abort
    # record says the state was not fully restored instead of staying silent.
    state = {"a": 0, "b": 0}

    def accessor(txn: Transaction) -> int:
        txn.setitem(state, "a", 1)

        def broken() -> None:
            raise RuntimeError("undo bug")

        txn.record(broken)
        txn.setitem(state, "b", 1)
        return 0

    reg, point = _registry_with(GraftCallable("f", (), ("i32",), accessor))
    try:
        g = reg.install(point, CALL_THEN_TRAP, Principal("alice"), target="t")
        assert point("t", 0) == -1
        assert state == {"a": 0, "b": 0}  # the other entries were still undone
        assert g.removal is not None and "1 undo step(s) raised" in g.removal.detail
    finally:
        reg.close()


def test_host_running_out_of_memory_in_a_graft_callable_is_a_host_fault_not_a_trap() -> None:
    def accessor(txn: Transaction) -> int:
        raise MemoryError("host out of memory")

    reg, point = _registry_with(GraftCallable("f", (), ("i32",), accessor))
    try:
        g = reg.install(point, CALL_THEN_TRAP, Principal("alice"), target="t")
        with pytest.raises(MemoryError):
            point("t", 0)
        assert g.state == "live" and g.aborts[-1].reason is AbortReason.HOST_ERROR
    finally:
        reg.close()
