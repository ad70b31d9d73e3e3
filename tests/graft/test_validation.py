"""docs/DESIGN.md §5.7: a graft whose result fails validation is aborted; the default answers.

What if a graft answers something the point does not allow (test.pick takes 0..100)?
The validator raises ``InvalidResult``; the graft is aborted with ``invalid_result``,
what it changed is undone, and the caller gets the default's answer, never the bad one.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason, GraftAborted, MessageRefused

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_DEFAULT,
    IMPORT_PUSH,
    IMPORT_PUT,
    TARGET,
    World,
    assert_aborted_and_restored,
    graft,
)


@pytest.mark.parametrize("bad", [101, -1, 0x7FFFFFFF, -0x80000000])
def test_graft_answering_out_of_range_is_aborted_and_the_default_answers(
        world: World, bad: int) -> None:
    world.host.d[1] = 1
    before = world.snapshot()
    g = world.install(graft(IMPORT_PUT + IMPORT_PUSH,
                            '(func (export "pick") (result i32)'
                            ' (drop (call $put (i32.const 1) (i32.const 2)))'
                            ' (drop (call $push (i32.const 3)))'
                            f' (i32.const {bad}))'))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None
    assert f"pick answered {bad}, not in 0..100" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.INVALID_RESULT, before)


@pytest.mark.parametrize("answer", [0, 100])
def test_graft_answering_at_the_edges_of_the_range_commits(world: World, answer: int) -> None:
    g = world.install(graft("", f'(func (export "pick") (result i32) (i32.const {answer}))'))
    assert world.pick(TARGET, 0) == answer
    assert g.stats.commits == 1


def test_graft_extending_the_default_into_an_invalid_answer_is_aborted(world: World) -> None:
    # default() answers 7; the graft "adjusts" it to 7 + 200.
    before = world.snapshot()
    g = world.install(graft(IMPORT_DEFAULT, '(func (export "pick") (result i32)'
                                            ' (i32.add (call $default) (i32.const 200)))'))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert world.host.default_calls == 2  # once inside the graft, once after the abort
    assert_aborted_and_restored(world, g, AbortReason.INVALID_RESULT, before)


def test_graft_extending_the_default_within_range_commits(world: World) -> None:
    world.install(graft(IMPORT_DEFAULT, '(func (export "pick") (result i32)'
                                        ' (i32.add (call $default) (i32.const 1)))'))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER + 1


def test_event_handler_returning_negative_is_aborted(world: World) -> None:
    before = world.snapshot()
    g = world.registry.install(world.event, graft(IMPORT_PUSH,
                                                  '(func (export "on_event") (result i32)'
                                                  ' (drop (call $push (i32.const 1)))'
                                                  ' (i32.const -5))'), world.alice, TARGET)
    assert world.event(TARGET, 0) == 0
    assert g.removal is not None and "handler returned -5" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.INVALID_RESULT, before)


def test_message_a_graft_refuses_raises_message_refused_and_the_graft_stays(
        world: World) -> None:
    # Refusing a message is the graft's right (vino.h: "return a negative value to
    # refuse them"), not a failure: what the handler did is undone, send() raises,
    # and the graft stays installed, uncharged (before: it was removed).
    g = world.install(graft(IMPORT_PUSH, '(func (export "pick") (result i32) (i32.const 1))',
                            '(func (export "vino_message") (param i32) (result i32)'
                            ' (drop (call $push (i32.const 1))) (i32.const -1))'))
    before = world.snapshot()
    with pytest.raises(MessageRefused) as info:
        g.send(b"x")
    assert info.value.answer == -1 and "refused the message" in str(info.value)
    assert g.state == "live" and g.failures == 0 and not g.aborts
    assert world.snapshot() == before
    assert world.pick(TARGET, 0) == 1


def test_message_handler_that_traps_is_still_a_failure(world: World) -> None:
    before = world.snapshot()
    g = world.install(graft(IMPORT_PUSH, '(func (export "pick") (result i32) (i32.const 1))',
                            '(func (export "vino_message") (param i32) (result i32)'
                            ' (drop (call $push (i32.const 1))) unreachable)'))
    with pytest.raises(GraftAborted) as info:
        g.send(b"x")
    assert info.value.reason is AbortReason.TRAP
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)
