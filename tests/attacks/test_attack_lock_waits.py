"""Attacks on the bounded lock wait: keep a waiter from its lock by taking turns.

A waiter that has waited a lock time-out dooms the holder and waits for its release
(``locks.py``). Found: it doomed only the first holder. Two grafts of one principal,
each taking the lock and spinning (with a generous per-call budget), took turns: the
first was doomed, released, and the second -- waiting too -- won the race for the
lock; the waiter, having doomed once, never doomed the new holder and failed with
``LockTimeout`` after ``LOCK_RELEASE_WAIT_S`` (2 runs in 4 with real grafts and real
threads: a host operation failed, against guarantee 5). Now every new holder gets
its own time-out and is doomed in turn.

The race's outcome is injected (the lock passes straight from the doomed holder to
the other transaction, as when that one wins), so the attack is the same on every run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vino.errors import AbortReason
from vino.graft import HostLock, LockManager, Transaction, begin
from vino.graft.locks import Holder

TIMEOUT_S = 0.03
RELEASE_WAIT_S = 10 * TIMEOUT_S


@pytest.fixture
def handoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Transaction]]:
    """When ``frm`` releases a lock, ``to`` has it at once: the other waiter won the race."""
    plan: dict[str, Transaction] = {}
    real = HostLock.release

    def release(self: HostLock, who: Holder) -> None:
        if who is plan.get("frm") and self.holder is who:
            to = plan["to"]
            with self._mgr._cond:
                self.holder = to
                self.acquisitions += 1
                self._mgr._cond.notify_all()
            to.locks = [self]  # released when it ends, as any lock it took
            return
        real(self, who)

    monkeypatch.setattr(HostLock, "release", release)
    yield plan


def _hog(mgr: LockManager, lk: HostLock, ready: threading.Event, made: list[Transaction],
         dooms: list[AbortReason | None], gives_to: Transaction | None = None) -> None:
    """A transaction that holds ``lk`` (taken, or handed to it) until it is doomed,
    then aborts at once, as a spinning graft does at its next epoch tick."""
    txn = begin()
    made.append(txn)
    if gives_to is None:
        mgr.acquire(lk, txn)
    ready.set()
    deadline = time.monotonic() + 30 * RELEASE_WAIT_S
    while txn.doomed() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    dooms.append(txn.doom_reason)
    txn.abort()


def test_two_lock_hogs_taking_turns_cannot_time_out_a_host_waiter(
        handoff: dict[str, Transaction]) -> None:
    mgr = LockManager(TIMEOUT_S, release_wait_s=RELEASE_WAIT_S)
    lk = mgr.lock("L1")
    first, second = threading.Event(), threading.Event()
    made: list[Transaction] = []
    dooms: list[AbortReason | None] = []
    a = threading.Thread(target=_hog, args=(mgr, lk, first, made, dooms))
    a.start()
    first.wait(5)
    b_made: list[Transaction] = []
    b = threading.Thread(target=_hog, args=(mgr, lk, second, b_made, dooms, made[0]))
    b.start()
    second.wait(5)
    handoff.update(frm=made[0], to=b_made[0])
    t0 = time.perf_counter()
    try:
        with mgr.hold(lk):
            waited = time.perf_counter() - t0
            assert lk.holder is not None  # the waiter's own hold
    finally:
        a.join(10)
        b.join(10)
    # Each hog was doomed in turn, after its own time-out; the waiter proceeded.
    assert dooms == [AbortReason.LOCK_TIMEOUT, AbortReason.LOCK_TIMEOUT]
    assert waited < RELEASE_WAIT_S
    assert lk.holder is None
