"""Host faults are not graft faults: the application's own bug, raised during a protected
call, aborts the transaction (state restored), keeps the graft, and reaches the caller
with its traceback; a graft that passes bad arguments is still the graft's fault."""

from __future__ import annotations

import traceback

import pytest

from vino.errors import AbortReason, BadArgument
from vino.graft import I32, FunctionPoint, Principal, Registry, Transaction, graft_callable
from vino.graft.point import any_principal

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_BOOM,
    IMPORT_PUSH,
    TARGET,
    World,
    assert_aborted_and_restored,
    assert_host_fault_kept_and_restored,
    graft,
    pick_returning,
)

PUSH_THEN_7 = graft(IMPORT_PUSH, '(func (export "pick") (result i32)'
                                 ' (drop (call $push (i32.const 1))) (i32.const 7))')


def test_encode_that_raises_reaches_the_caller_and_the_graft_is_kept(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    g = world.install(PUSH_THEN_7)
    before = world.snapshot()

    def encode_one_byte(buf: memoryview, x: int) -> tuple[int, ...]:
        buf[0] = x  # the host's bug: more than 255 choices do not fit in a byte
        return ()

    monkeypatch.setattr(world.pick, "encode", encode_one_byte)
    with pytest.raises(ValueError, match="invalid value") as info:
        world.pick(TARGET, 300)
    assert "test.pick encode" in info.value.__notes__[0]
    assert_host_fault_kept_and_restored(world, g, info.value, before)
    assert world.pick(TARGET, 3) == 7  # the graft still serves


def test_decode_that_raises_a_bug_reaches_the_caller_with_the_graft_kept_and_undone(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    g = world.install(PUSH_THEN_7)
    before = world.snapshot()

    def buggy_decode(buf: memoryview, ret: int, x: int) -> int:
        return {1: 1}[ret]  # KeyError: the host's bug, not an invalid answer

    monkeypatch.setattr(world.pick, "decode", buggy_decode)
    with pytest.raises(KeyError) as info:
        world.pick(TARGET, 0)
    assert "buggy_decode" in {f.name for f in traceback.extract_tb(info.value.__traceback__)}
    assert_host_fault_kept_and_restored(world, g, info.value, before)  # the push undone


def test_invalid_result_from_decode_is_still_the_grafts_fault(world: World) -> None:
    before = world.snapshot()
    g = world.install(pick_returning(500))  # decode rejects anything over 100
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert_aborted_and_restored(world, g, AbortReason.INVALID_RESULT, before)


def test_graft_passing_bad_arguments_to_a_validating_callable_is_blamed() -> None:
    @graft_callable("credit", (I32,))
    def credit(txn: Transaction, points: int) -> int:
        if not 0 <= points <= 1000:
            raise BadArgument(f"credit: {points} points is outside 0..1000")
        return 0

    reg = Registry()
    point = reg.declare(FunctionPoint[object, int, int](
        name="shop.credit", entry="pick", buffer_size=16, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: -1, callables=(credit,),
        may_install=any_principal, target_type=object))
    try:
        g = reg.install(point, graft('(import "vino" "credit" (func $c (param i32) '
                                     '(result i32)))', '(func (export "pick") (result i32) '
                                     '(call $c (i32.const 5000)))'), Principal("alice"), "t")
        assert point("t", 0) == -1  # the default: the graft's failure is not the caller's
        assert g.removal is not None and g.removal.reason is AbortReason.FORBIDDEN_CALL
        assert "5000 points is outside" in g.removal.detail
    finally:
        reg.close()


def test_event_handler_host_fault_reaches_the_caller_and_the_handler_stays(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    h = world.registry.install(world.event, graft(IMPORT_PUSH, (
        '(func (export "on_event") (result i32) (drop (call $push (i32.const 1))) '
        '(i32.const 0))')), world.alice, TARGET)
    before = world.snapshot()
    monkeypatch.setattr(world.event, "encode", lambda buf, x: 1 // 0)
    with pytest.raises(ZeroDivisionError) as info:
        world.event(TARGET, 0)
    assert_host_fault_kept_and_restored(world, h, info.value, before)


def test_host_fault_does_not_count_toward_removal(world: World) -> None:
    # remove_after=1: the first *graft* failure removes; host faults never do.
    g = world.install(graft(IMPORT_BOOM,
                            '(func (export "pick") (result i32) (call $boom))'))
    for _ in range(3):
        with pytest.raises(RuntimeError):
            world.pick(TARGET, 0)
    assert g.state == "live" and g.failures == 0
    assert g.stats.aborts == {"host_error": 3}
