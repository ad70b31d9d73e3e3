"""Two-phase locks on their own: held to the end, handed up on commit, bounded waits."""

from __future__ import annotations

import threading
import time

import pytest

from vino.errors import AbortReason, Doomed, LockTimeout, QuotaExceeded
from vino.graft import Graft, HostLock, LockManager, Principal, Quota, begin
from vino.graft.locks import Holder

TIMEOUT_S = 0.03


def holder_now(lk: HostLock) -> Holder | None:
    """``lk.holder`` read afresh. (A type checker keeps ``lk.holder`` narrowed to the
    transaction an earlier assertion saw, across the commit that clears it.)"""
    return lk.holder


@pytest.fixture
def mgr() -> LockManager:
    return LockManager(TIMEOUT_S)


def test_lock_is_held_until_the_top_level_transaction_ends(mgr: LockManager) -> None:
    lk = mgr.lock("a")
    assert mgr.lock("a") is lk  # one lock per name
    txn = begin()
    mgr.acquire(lk, txn)
    assert lk.holder is txn
    assert mgr.held() == [lk]
    txn.commit()
    assert holder_now(lk) is None
    assert mgr.held() == []


def test_childs_locks_pass_to_the_parent_on_commit(mgr: LockManager) -> None:
    lk = mgr.lock("a")
    parent = begin()
    child = begin()
    mgr.acquire(lk, child)
    child.commit()
    assert lk.holder is parent  # not released: two-phase
    assert parent.locks == [lk]
    parent.commit()
    assert lk.holder is None


def test_childs_abort_releases_only_the_locks_the_child_took(mgr: LockManager) -> None:
    mine, childs = mgr.lock("parent's"), mgr.lock("child's")
    parent = begin()
    mgr.acquire(mine, parent)
    child = begin()
    mgr.acquire(mine, child)  # already held by an ancestor: nothing to do
    mgr.acquire(childs, child)
    child.abort()
    assert childs.holder is None
    assert mine.holder is parent
    parent.abort()
    assert mine.holder is None


def test_host_waiter_on_a_host_held_lock_raises_lock_timeout(mgr: LockManager) -> None:
    lk = mgr.lock("a")
    taken, done = threading.Event(), threading.Event()

    def keeper() -> None:
        with mgr.hold(lk):
            taken.set()
            done.wait(5)

    t = threading.Thread(target=keeper)
    t.start()
    taken.wait(5)
    t0 = time.perf_counter()
    try:
        with pytest.raises(LockTimeout, match="waited 30 ms for lock 'a'"), mgr.hold(lk):
            pass
    finally:
        done.set()
        t.join()
    assert TIMEOUT_S * 0.9 <= time.perf_counter() - t0 < 0.5
    assert lk.timeouts == 1
    assert lk.holder is None
    with mgr.hold(lk):  # free again
        assert lk.holder is not None


def test_transaction_waiter_on_a_host_held_lock_raises_lock_timeout(mgr: LockManager) -> None:
    lk = mgr.lock("a")
    with mgr.hold(lk):
        txn = begin()
        with pytest.raises(LockTimeout):
            mgr.acquire(lk, txn)  # same thread, but the host hold is not the transaction's
        assert txn.locks is None
        txn.abort()


def test_waiter_on_a_transaction_held_lock_dooms_the_holder_then_proceeds(
        mgr: LockManager) -> None:
    lk = mgr.lock("a")
    holder_ready, holder_done = threading.Event(), threading.Event()
    doomed: list[object] = []

    def holder() -> None:
        txn = begin()
        mgr.acquire(lk, txn)
        holder_ready.set()
        while txn.doomed() is None:  # a graft notices at the next epoch tick
            time.sleep(0.001)
        doomed.append(txn.doom_reason)
        txn.abort()
        holder_done.set()

    t = threading.Thread(target=holder)
    t.start()
    holder_ready.wait(5)
    t0 = time.perf_counter()
    with mgr.hold(lk):
        waited = time.perf_counter() - t0
    t.join()
    assert doomed == [AbortReason.LOCK_TIMEOUT]
    assert TIMEOUT_S * 0.9 <= waited < 0.5
    assert lk.timeouts == 1


def test_doomed_holder_whose_thread_is_not_run_for_three_time_outs_still_lets_the_waiter_in(
        mgr: LockManager) -> None:
    # A loaded machine may not run a doomed holder's thread for longer than a lock
    # time-out (injected: the holder sleeps that long after seeing its doom). The waiter
    # must still get the lock, not give up on a lock about to be free.
    lk = mgr.lock("a")
    holder_ready = threading.Event()
    late_s = 3 * TIMEOUT_S

    def holder() -> None:
        txn = begin()
        mgr.acquire(lk, txn)
        holder_ready.set()
        while txn.doomed() is None:
            time.sleep(0.001)
        time.sleep(late_s)  # not run: the machine's wait, not the holder's choice
        txn.abort()

    t = threading.Thread(target=holder)
    t.start()
    holder_ready.wait(5)
    t0 = time.perf_counter()
    try:
        with mgr.hold(lk):
            waited = time.perf_counter() - t0
            assert lk.holder is not None
    finally:
        t.join()
    assert waited >= TIMEOUT_S + late_s * 0.9
    assert lk.timeouts == 1  # the one doom; no time-out of the waiter


def test_doomed_holder_that_never_releases_times_the_waiter_out_after_the_release_wait(
        ) -> None:
    # Host code in a host transaction never looks at its doom: the wait is still bounded.
    mgr = LockManager(TIMEOUT_S, release_wait_s=2 * TIMEOUT_S)
    lk = mgr.lock("a")
    taken, done = threading.Event(), threading.Event()

    def holder() -> None:
        txn = begin()
        mgr.acquire(lk, txn)
        taken.set()
        done.wait(5)  # ignores its doom
        txn.abort()

    t = threading.Thread(target=holder)
    t.start()
    taken.wait(5)
    t0 = time.perf_counter()
    try:
        with pytest.raises(LockTimeout, match="waited 30 ms for lock 'a', then 60 ms more"), \
                mgr.hold(lk):
            pass
    finally:
        done.set()
        t.join()
    assert time.perf_counter() - t0 >= 3 * TIMEOUT_S * 0.9
    assert lk.timeouts == 2  # the doom, then the waiter's time-out
    assert lk.holder is None


def test_doomed_waiter_stops_waiting_at_once(mgr: LockManager) -> None:
    lk = mgr.lock("a")
    with mgr.hold(lk):
        txn = begin()
        txn.doom(AbortReason.TIMEOUT, "out of time")
        t0 = time.perf_counter()
        with pytest.raises(Doomed):
            mgr.acquire(lk, txn, timeout_s=5.0)
        assert time.perf_counter() - t0 < 0.5
        txn.abort()


def test_graft_transactions_lock_is_charged_to_its_principal_and_released(
        mgr: LockManager) -> None:
    class FakeGraft(Graft):  # what a lock reads of a graft: whom to charge, nothing else
        principal = Principal("p", Quota(locks=1))

        def __init__(self) -> None:
            pass

    a, b = mgr.lock("a"), mgr.lock("b")
    txn = begin(FakeGraft())
    mgr.acquire(a, txn)
    assert FakeGraft.principal.usage.locks == 1
    with pytest.raises(QuotaExceeded):
        mgr.acquire(b, txn)
    assert b.holder is None  # not taken
    txn.abort()
    assert FakeGraft.principal.usage.locks == 0
    assert a.holder is None


def test_time_out_is_read_from_the_injected_clock(mgr: LockManager) -> None:
    # With a clock that jumps, the wait gives up without sleeping for real.
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0
        return now[0]

    fast = LockManager(5.0, clock=clock)
    lk = fast.lock("a")
    t0 = time.perf_counter()
    with fast.hold(lk), pytest.raises(LockTimeout):
        fast.acquire(lk, begin())
    assert time.perf_counter() - t0 < 1.0
    from vino.graft import current

    txn = current()
    assert txn is not None
    txn.abort()
