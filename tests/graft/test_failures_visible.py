"""Failures are visible as they happen: log records under ``vino`` with the graft, point,
principal and reason; ``on_abort`` / ``on_remove`` hooks after the undo; the report."""

from __future__ import annotations

import logging

import pytest

from vino.errors import AbortReason, GraftRejected
from vino.graft import AbortRecord, Graft

from .graft_world import (
    IMPORT_BOOM,
    IMPORT_PUSH,
    TARGET,
    World,
    graft,
    pick_returning,
)

TRAP_AFTER_PUSH = graft(IMPORT_PUSH, '(func (export "pick") (result i32)'
                                     ' (drop (call $push (i32.const 1))) unreachable)')


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vino"]


def test_a_graft_that_fails_is_logged_with_graft_point_principal_and_reason(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vino")
    g = world.install(TRAP_AFTER_PUSH, name="trapper")
    world.pick(TARGET, 0)
    recs = _records(caplog)
    assert [(r.levelname, r.getMessage().split()[0]) for r in recs] == [
        ("WARNING", "aborted"), ("WARNING", "removed")]
    for r in recs:
        assert (r.graft, r.point, r.principal, r.reason) == (  # type: ignore[attr-defined]
            "trapper", "test.pick", "alice", "trap")
    assert g.state == "removed"


def test_rejections_and_host_faults_are_logged_too(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vino")
    with pytest.raises(GraftRejected):
        world.install("(module)", name="empty")
    g = world.install(graft(IMPORT_BOOM, '(func (export "pick") (result i32) (call $boom))'),
                      name="innocent")
    with pytest.raises(RuntimeError):
        world.pick(TARGET, 0)
    recs = _records(caplog)
    assert recs[0].levelname == "INFO" and recs[0].getMessage().startswith("rejected graft")
    assert recs[0].graft == "empty"  # type: ignore[attr-defined]
    host = recs[-1]
    assert host.levelname == "ERROR" and host.reason == "host_error"  # type: ignore[attr-defined]
    assert host.exc_info is not None and host.exc_info[0] is RuntimeError  # the traceback
    assert g.state == "live"


def test_hooks_see_each_abort_and_removal_after_the_undo(world: World) -> None:
    seen: list[tuple[str, str, AbortReason | None, list[int]]] = []
    world.registry.on_abort(lambda g, rec: seen.append(
        ("abort", g.name, rec.reason if rec else None, list(world.host.items))))
    world.registry.on_remove(lambda g, rec: seen.append(
        ("remove", g.name, rec.reason if rec else None, list(world.host.items))))
    world.install(TRAP_AFTER_PUSH, name="t")
    world.pick(TARGET, 0)
    # The push was undone before any hook ran.
    assert seen == [("abort", "t", AbortReason.TRAP, []), ("remove", "t", AbortReason.TRAP, [])]
    ok = world.install(pick_returning(5), name="ok")
    ok.remove()
    assert seen[-1] == ("remove", "ok", None, [])  # an explicit removal: no record


def test_a_hook_may_remove_the_graft_that_aborted(world: World) -> None:
    world.registry.remove_after = 100
    removed: list[Graft] = []

    def remove_it(g: Graft, rec: AbortRecord | None) -> None:
        g.remove()  # the graft's store is released before hooks run: no deadlock
        removed.append(g)

    world.registry.on_abort(remove_it)
    g = world.install(TRAP_AFTER_PUSH, remove_after=100)
    world.pick(TARGET, 0)
    assert removed == [g] and g.state == "removed"


def test_a_hook_that_raises_is_logged_and_does_not_break_the_call(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    world.registry.on_abort(lambda g, rec: 1 // 0)
    world.registry.on_abort(lambda g, rec: calls.append(g.name))
    world.install(TRAP_AFTER_PUSH, name="t")
    assert world.pick(TARGET, 0) == 7  # the default, as always
    assert calls == ["t"]
    assert any("hook raised" in r.getMessage() for r in _records(caplog))


def test_the_report_says_what_failed_and_why(world: World) -> None:
    world.install(TRAP_AFTER_PUSH, name="trapper")
    world.pick(TARGET, 0)
    world.install(pick_returning(5), name="fine", target="t2")
    world.pick("t2", 0)
    report = world.registry.report()
    assert "test.pick (function point): 1 live, 1 removed" in report
    assert "trapper for 't1' by alice: removed" in report
    assert "removed for trap: unreachable executed" in report
    assert "fine for 't2' by alice: live; 1 commits" in report


def test_nothing_is_printed_when_the_application_configures_no_logging() -> None:
    vino_log = logging.getLogger("vino")
    assert any(isinstance(h, logging.NullHandler) for h in vino_log.handlers)


def test_no_record_is_built_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    # An abort must not pay for a log record nobody reads (it doubled its cost).
    from vino.graft import failures

    vino_log = logging.getLogger("vino")
    monkeypatch.setattr(vino_log, "propagate", False)  # only the NullHandler is left
    assert not failures._listening(logging.ERROR)
    handler = logging.StreamHandler()
    monkeypatch.setattr(vino_log, "handlers", [*vino_log.handlers, handler])
    assert failures._listening(logging.WARNING)


def test_a_handler_added_after_unheard_aborts_hears_the_next_one(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether anyone listens is remembered between aborts; adding, replacing or removing
    # a handler, or switching propagation, must be seen at the very next abort.
    from vino.graft import failures

    world.registry.remove_after = 100
    world.install(TRAP_AFTER_PUSH, name="t")
    vino_log = logging.getLogger("vino")
    root = logging.getLogger()
    monkeypatch.setattr(vino_log, "propagate", False)  # only the NullHandler is left
    monkeypatch.setattr(vino_log, "level", logging.WARNING)
    world.pick(TARGET, 0)
    assert not failures._listening(logging.WARNING)  # remembered: nobody listens
    heard: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record)

    handler = Keep(logging.WARNING)
    vino_log.addHandler(handler)
    try:
        world.pick(TARGET, 0)
        assert [r.getMessage().split()[0] for r in heard] == ["aborted"]
    finally:
        vino_log.removeHandler(handler)
    world.pick(TARGET, 0)
    assert len(heard) == 1  # removed: not heard
    root.addHandler(handler)
    try:
        world.pick(TARGET, 0)
        assert len(heard) == 1  # the root's handler, but propagation is off
        vino_log.propagate = True
        world.pick(TARGET, 0)
        assert len(heard) == 2  # heard through propagation
    finally:
        root.removeHandler(handler)
