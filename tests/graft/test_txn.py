"""Transactions on their own: undo log, nesting, deferred actions, misuse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vino.errors import AbortReason, Doomed, TransactionError
from vino.graft import begin, current, transaction


@dataclass
class Box:
    value: int = 0


def test_abort_undoes_every_entry_newest_first() -> None:
    d: dict[str, int] = {"a": 1}
    seq: list[int] = [0]
    box = Box(5)
    order: list[int] = []
    txn = begin()
    txn.setitem(d, "a", 2)
    txn.setitem(d, "a", 3)
    txn.setitem(d, "b", 4)
    txn.append(seq, 1)
    assert txn.set(box, "value", 6) == 5
    assert txn.delitem(d, "a") == 3
    txn.record(lambda: order.append(1))
    txn.record(lambda: order.append(2))
    txn.abort()
    assert d == {"a": 1}
    assert seq == [0]
    assert box.value == 5
    assert order == [2, 1]
    assert current() is None


def test_commit_keeps_every_change_and_pops_the_transaction() -> None:
    d: dict[str, int] = {}
    txn = begin()
    assert current() is txn
    txn.setitem(d, "a", 1)
    txn.commit()
    assert d == {"a": 1}
    assert current() is None
    assert txn.undo is None


def test_nested_commit_passes_the_childs_undo_to_the_parent() -> None:
    d: dict[str, int] = {"x": 0}
    parent = begin()
    parent.setitem(d, "x", 1)
    child = begin()
    assert child.parent is parent and current() is child
    child.setitem(d, "x", 2)
    child.setitem(d, "y", 3)
    child.commit()
    assert current() is parent
    assert d == {"x": 2, "y": 3}
    parent.abort()  # undoes the child's entries too, newest first
    assert d == {"x": 0}


def test_child_abort_undoes_only_the_child() -> None:
    d: dict[str, int] = {"x": 0}
    parent = begin()
    parent.setitem(d, "x", 1)
    child = begin()
    child.setitem(d, "x", 2)
    child.setitem(d, "z", 9)
    child.abort()
    assert current() is parent
    assert d == {"x": 1}
    parent.commit()
    assert d == {"x": 1}


def test_undo_entry_that_fails_is_counted_and_the_rest_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    txn = begin()
    txn.record(lambda: ran.append("first"))

    def broken() -> None:
        raise RuntimeError("undo bug")

    txn.record(broken)
    txn.record(lambda: ran.append("last"))
    txn.record(broken)
    txn.abort()
    assert ran == ["last", "first"]
    assert txn.undo_errors == 2
    assert "undo entry" in caplog.text


def test_deferred_actions_run_only_when_the_outermost_transaction_commits() -> None:
    ran: list[str] = []
    parent = begin()
    child = begin()
    child.defer(lambda: ran.append("child"))
    child.commit()
    assert ran == []  # handed to the parent, not run yet
    parent.defer(lambda: ran.append("parent"))
    parent.commit()
    assert ran == ["child", "parent"]


def test_deferred_actions_are_dropped_on_abort() -> None:
    ran: list[str] = []
    parent = begin()
    child = begin()
    child.defer(lambda: ran.append("child"))
    child.commit()
    parent.abort()
    assert ran == []


def test_finished_transaction_refuses_to_record_commit_or_abort_again() -> None:
    txn = begin()
    txn.commit()
    with pytest.raises(TransactionError):
        txn.record(lambda: None)
    with pytest.raises(TransactionError):
        txn.commit()
    with pytest.raises(TransactionError):
        txn.abort()
    other = begin()
    other.abort()
    with pytest.raises(TransactionError):
        other.commit()


def test_transaction_scope_commits_on_exit_and_aborts_on_exception() -> None:
    d: dict[str, int] = {}
    with transaction() as txn:
        txn.setitem(d, "kept", 1)
    assert d == {"kept": 1}
    with pytest.raises(KeyError), transaction() as txn:
        txn.setitem(d, "lost", 2)
        raise KeyError("boom")
    assert d == {"kept": 1}
    assert current() is None


def test_transaction_scope_already_ended_inside_is_left_alone() -> None:
    d: dict[str, int] = {}
    with transaction() as txn:
        txn.setitem(d, "a", 1)
        txn.abort()
    assert d == {}
    assert current() is None


def test_doom_of_an_ancestor_is_seen_by_its_descendants() -> None:
    parent = begin()
    child = begin()
    assert child.doomed() is None
    parent.doom(AbortReason.LOCK_TIMEOUT, "waited too long")
    parent.doom(AbortReason.TIMEOUT, "a second doom does not overwrite the first")
    assert child.doomed() is parent
    with pytest.raises(Doomed) as info:
        child.check()
    assert info.value.reason is AbortReason.LOCK_TIMEOUT
    assert info.value.detail == "waited too long"
    child.abort()
    parent.abort()
    assert parent.doom_reason is None  # cleared with the abort: the object may be reused


def test_transactions_are_per_thread() -> None:
    import threading

    outer = begin()
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(current()))
    t.start()
    t.join()
    assert seen == [None]
    assert current() is outer
    outer.commit()
    assert outer.root is outer
