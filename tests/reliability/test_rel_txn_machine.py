"""Nested transactions against a model: random begin / accessor / lock / commit / abort.

What if transactions nest six deep, take locks their ancestors hold, take locks other
threads hold (time-out, dooming a foreign transaction), go over their lock quota,
record undo entries that raise, defer actions, and end in any order of commits and
aborts? ``vino.testing.model.TxnModel`` runs the real ``vino.graft.txn`` transactions
and ``LockManager`` beside a model of them (a dict, a list, an attribute, who holds
which lock, what is charged, what ran); hypothesis drives it and shrinks any
disagreement to the shortest sequence that shows it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from vino.graft import Transaction
from vino.graft.txn import ABORTED
from vino.testing.model import TxnModel, txn_walks

keys = st.integers(0, 5)
values = st.integers(0, 99)


class Transactions(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = TxnModel()

    @initialize(quota=st.sampled_from([2, 3, 8]))
    def set_quota(self, quota: int) -> None:
        self.m = TxnModel(quota_locks=quota)

    @precondition(lambda self: self.m.depth < 6)
    @rule()
    def begin(self) -> None:
        self.m.begin()

    @precondition(lambda self: self.m.depth > 0)
    @rule(key=keys, value=values)
    def write(self, key: int, value: int) -> None:
        self.m.write(key, value)

    @precondition(lambda self: self.m.depth > 0)
    @rule(key=keys)
    def delete(self, key: int) -> None:
        self.m.delete(key)

    @precondition(lambda self: self.m.depth > 0)
    @rule(value=values)
    def append(self, value: int) -> None:
        self.m.append(value)

    @precondition(lambda self: self.m.depth > 0)
    @rule(value=values)
    def assign(self, value: int) -> None:
        self.m.assign(value)

    @precondition(lambda self: self.m.depth > 0)
    @rule(key=keys, value=values)
    def change_whose_undo_raises(self, key: int, value: int) -> None:
        self.m.failing_write(key, value)

    @precondition(lambda self: self.m.depth > 0)
    @rule()
    def defer(self) -> None:
        self.m.defer()

    @precondition(lambda self: self.m.depth > 0)
    @rule(i=st.integers(0, TxnModel.NLOCKS - 1))
    def lock(self, i: int) -> None:
        self.m.lock(i)

    @precondition(lambda self: self.m.depth > 0)
    @rule()
    def commit(self) -> None:
        self.m.commit()

    @precondition(lambda self: self.m.depth > 0)
    @rule()
    def abort(self) -> None:
        self.m.abort()

    @invariant()
    def real_equals_model(self) -> None:
        assert self.m.problems() == []

    def teardown(self) -> None:
        self.m.close()
        assert self.m.problems() == []
        assert [lk.name for lk in self.m.mgr.held()] == ["M4", "M5"]  # the other threads'


Transactions.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestNestedTransactionsAgainstTheirModel = Transactions.TestCase


def test_seeded_random_walks_agree_with_the_model() -> None:
    r = txn_walks(walks=60, steps=50, seed=7)
    assert r.failures == []
    assert r.max_depth >= 4
    assert r.lock_timeouts > 0 and r.ops["failing_write"] > 0


def test_the_model_notices_an_abort_that_undoes_oldest_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The checker has teeth: break abort's order and the walks must fail.
    real_abort = Transaction.abort

    def oldest_first(self: Transaction) -> None:
        if self.undo:
            self.undo.reverse()
        real_abort(self)

    monkeypatch.setattr(Transaction, "abort", oldest_first)
    r = txn_walks(walks=40, steps=50, seed=3)
    assert r.failures


def test_the_model_notices_a_child_abort_that_releases_its_parents_locks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_abort = Transaction.abort

    def greedy(self: Transaction) -> None:
        parent = self.parent
        real_abort(self)
        if parent is not None and parent.locks:
            for lk in parent.locks:
                lk.release(parent)
        assert self.state == ABORTED

    monkeypatch.setattr(Transaction, "abort", greedy)
    r = txn_walks(walks=40, steps=50, seed=3)
    assert r.failures
