"""Two-phase locks with time-outs, and the doom-the-holder rule.

A ``HostLock`` protects some piece of host state. It is held either by a
transaction (a graft took it through the ``lock`` graft-callable, or host code
running inside a transaction took it) or by a plain host thread (``hold``).

Rules:
- Two-phase: a transaction never releases a lock early; its locks are released
  when its outermost transaction ends (a child's commit hands them to the
  parent; a child's abort releases the ones the child took).
- A transaction already holds every lock its ancestors hold.
- Every wait is bounded. A waiter that has waited ``timeout`` for a lock held by
  a transaction dooms that transaction (it is aborted within about one epoch
  tick of its thread running, even while spinning inside Wasm, its locks
  released and its changes undone) and then waits up to ``release_wait_s``
  (``limits.LOCK_RELEASE_WAIT_S``, at least ``timeout``) for the release: on a
  loaded machine the doomed graft's thread may not run for tens of ms, and the
  waiter must still proceed (docs/DESIGN.md §5.5), not fail on a lock about to
  be free. A transaction that takes the lock meanwhile (another waiter won the race
  for it) is a new holder: it gets its own ``timeout``, then is doomed in turn, so
  holders taking turns cannot time the waiter out. Only a holder that never looks
  at its doom (host code inside a host transaction) keeps it waiting that long; then
  it raises ``LockTimeout``. A
  waiter whose holder is a plain host thread raises ``LockTimeout`` after
  ``timeout``; inside a graft that aborts the graft with ``lock_timeout``.
- A doomed waiter stops waiting at once (``Doomed``).

Lock order is not needed for safety: a deadlock between transactions ends when
a waiter's time-out dooms a holder.

The lock table holds its locks weakly: a lock lives while someone holds it, waits
for it or keeps a reference to it, and its entry goes with it. Names are cheap
(``aspace:<pid>``, one per record a graft may lock), so a table that kept every
name ever used would grow without bound; one that dropped a lock still referenced
would hand out a second lock of the same name.
Invariant: ``LockManager.lock(name)`` returns the same object for as long as any
reference to it exists.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from vino import limits
from vino.errors import AbortReason, LockTimeout
from vino.graft.accounting import Principal
from vino.graft.txn import Transaction

_POLL_S: Final = limits.EPOCH_TICK_S  # a waiting transaction re-checks its own doom this often


class _HostHolder:
    """A host thread holding a lock outside any transaction."""

    __slots__ = ("thread",)

    def __init__(self) -> None:
        self.thread = threading.get_ident()


Holder = Transaction | _HostHolder


class HostLock:
    """A named lock on host state. Create them through ``LockManager.lock``."""

    __slots__ = ("__weakref__", "_charged", "_mgr", "acquisitions", "holder", "name",
                 "timeouts")

    def __init__(self, mgr: LockManager, name: str) -> None:
        self._mgr = mgr
        self.name = name
        # Invariant: holder is None, a live Transaction, or a _HostHolder of a live thread.
        self.holder: Holder | None = None
        self._charged: Principal | None = None  # whose ``locks`` quota this hold counts in
        self.acquisitions = 0
        self.timeouts = 0

    def release(self, who: Holder) -> None:
        """Called by the transaction protocol at the end of the holder's transaction."""
        with self._mgr._cond:
            if self.holder is who:
                self.holder = None
                if self._charged is not None:
                    self._charged.release("locks", 1)
                    self._charged = None
                self._mgr._cond.notify_all()

    def transfer(self, child: Transaction, parent: Transaction) -> None:
        with self._mgr._cond:
            if self.holder is child:
                self.holder = parent

    def __repr__(self) -> str:
        return f"HostLock({self.name!r}, held={self.holder is not None})"


def _covers(holder: Holder, who: Holder) -> bool:
    """True if ``who`` already holds what ``holder`` holds (itself or an ancestor)."""
    if holder is who:
        return True
    if isinstance(who, Transaction):
        t = who.parent
        while t is not None:
            if t is holder:
                return True
            t = t.parent
    return False


class LockManager:
    """All host locks of one registry, with one time-out policy."""

    def __init__(self, timeout_s: float = limits.LOCK_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic,
                 release_wait_s: float = limits.LOCK_RELEASE_WAIT_S) -> None:
        self.timeout_s = timeout_s
        self.release_wait_s = release_wait_s  # after dooming a holder (module rules)
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._locks: weakref.WeakValueDictionary[str, HostLock] = weakref.WeakValueDictionary()
        self.timeouts = 0  # waits that doomed a holder or timed out, over every lock ever

    def lock(self, name: str) -> HostLock:
        """The lock called ``name`` (created on first use)."""
        with self._cond:
            lk = self._locks.get(name)
            if lk is None:
                lk = self._locks[name] = HostLock(self, name)
            return lk

    def __len__(self) -> int:
        """Entries in the lock table, held or not."""
        with self._cond:
            return len(self._locks)

    def held(self) -> list[HostLock]:
        with self._cond:
            return [lk for lk in self._locks.values() if lk.holder is not None]

    def acquire(self, lock: HostLock, who: Holder, timeout_s: float | None = None) -> None:
        """Take ``lock`` for ``who``; see the module rules for time-outs.

        A transaction's lock is charged to its graft's principal (``locks``
        quota) and recorded on the transaction, which releases it when it ends.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        txn = who if isinstance(who, Transaction) else None
        with self._cond:
            if lock.holder is None or not _covers(lock.holder, who):
                self._wait(lock, who, txn, timeout)
            else:
                return  # already held by who or an ancestor: nothing to do
            if txn is not None and txn.graft is not None:
                principal = txn.graft.principal
                principal.charge("locks", 1)  # QuotaExceeded: not taken
                lock._charged = principal
            lock.holder = who
            lock.acquisitions += 1
        if txn is not None:
            if txn.locks is None:
                txn.locks = [lock]
            else:
                txn.locks.append(lock)

    def _wait(self, lock: HostLock, who: Holder, txn: Transaction | None,
              timeout: float) -> None:
        # Called with self._cond held; returns with lock.holder None.
        deadline = self._clock() + timeout
        doomed_holder = False
        # Which hold this waiter is timing, by acquisition: a graft's one transaction
        # object is reused by all its calls, so a new hold by it is a new holder too;
        # a child's commit handing the lock to its parent (transfer) is the same hold.
        held_by = lock.acquisitions
        while lock.holder is not None:
            if txn is not None:
                txn.check()  # a doomed waiter stops waiting at once
            if lock.acquisitions != held_by:
                # Another took the lock as the one this waiter doomed let it go (it won
                # the race): it gets its own time-out, then is doomed in turn. Holders
                # taking turns (two grafts of one principal) cannot time the waiter out.
                held_by = lock.acquisitions
                doomed_holder = False
                deadline = self._clock() + timeout
            remaining = deadline - self._clock()
            if remaining <= 0:
                holder = lock.holder
                if isinstance(holder, Transaction) and not doomed_holder:
                    holder.doom(AbortReason.LOCK_TIMEOUT,
                                f"held lock {lock.name!r} while another thread waited "
                                f"{timeout * 1e3:.0f} ms")
                    lock.timeouts += 1
                    self.timeouts += 1
                    doomed_holder = True
                    deadline = self._clock() + max(timeout, self.release_wait_s)
                    continue
                lock.timeouts += 1
                self.timeouts += 1
                more = (f", then {max(timeout, self.release_wait_s) * 1e3:.0f} ms more for "
                        f"the holder it doomed to release it" if doomed_holder else "")
                raise LockTimeout(f"waited {timeout * 1e3:.0f} ms for lock {lock.name!r}{more}")
            self._cond.wait(min(remaining, _POLL_S) if txn is not None else remaining)

    @contextmanager
    def hold(self, lock: HostLock, timeout_s: float | None = None) -> Iterator[None]:
        """Hold ``lock`` from plain host code (outside any transaction)."""
        me = _HostHolder()
        self.acquire(lock, me, timeout_s)
        try:
            yield
        finally:
            lock.release(me)
