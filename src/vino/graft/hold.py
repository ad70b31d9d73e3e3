"""Shared host locks, and the wall-time bound on grafts run while one is held.

A graft's per-call budget counts its thread's CPU time, not wall time (waiting
for the GIL is not the graft running). But a graft called while the host holds a
lock other principals need keeps them waiting for its *wall* time, and a graft
whose graft-callables each wait for the GIL behind a busy host thread can stretch
that far past its budget.

A ``SharedLock`` is a re-entrant lock that bounds every graft its holder runs:
while a thread holds one, each principal's grafts together get at most
``limits.HOLD_GRAFT_WALL_S`` of wall time per outermost hold. A graft past its
principal's allowance is stopped at its next epoch tick and aborted with
``timeout``. It is blamed (and, by the usual policy, removed) if its own calls in
the hold -- one long call or many short ones -- spent at least as much of the
allowance as the principal's other grafts (``Hold.by_graft``); one stopped because
the others had spent most of it is kept (``AllowanceSpent``): a good graft's short
call meets a tick only when a loaded machine stretches it, and that tick must not
cost it its place. So one hold lasts at most the
host's own work plus ``HOLD_GRAFT_WALL_S`` for each principal whose grafts it
runs, plus one tick and about two GIL hand-overs (``sys.getswitchinterval()``)
each -- whatever the grafts do, however busy the host -- plus, per call, the wait of
its first epoch tick's callback past one tick: the host's or the machine's, not the
graft's, so neither charged nor a cause to stop it (``sandbox._decide``).

Across holds, each principal's own grafts get a *share* of the time others wait
(``Shares``): while another thread waits for a lock this thread holds, the wall time
of the principal's own calls (not hosted ones: ``hosting.py`` bounds those) is paid
from its allowance, refilled at ``Quota.lock_wall_per_s`` seconds per second up to
``Quota.lock_wall_burst_s``. While that is spent its grafts are not called under a
shared lock: the point answers with its default (``Stats.throttled``), the graft is
not blamed. So in any T seconds a principal's grafts keep others waiting at most
``lock_wall_burst_s + T * lock_wall_per_s`` plus one hold's allowance, however often
it reinstalls them or they fail. Nobody waiting, nothing is charged: a principal
that keeps nobody waiting is never held back. Privileged principals are exempt.

Usage::

    self._lock = SharedLock("fs")
    with self._lock:
        ...  point(target, ...)   # grafts bounded in wall time

Invariant: a thread's ``ThreadState.hold`` is not None exactly while it holds
at least one ``SharedLock``; nested holds (of one lock or several) share the
outermost hold's allowances; ``Hold.locks`` lists the locks it holds, once each.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Final

from vino import limits
from vino.errors import LockNotHeld
from vino.graft.accounting import Principal
from vino.graft.ratelimit import Allowance
from vino.graft.txn import _LOCAL

_HOLD_NS: Final = int(limits.HOLD_GRAFT_WALL_S * 1e9)


class Hold:
    """What one outermost hold of shared locks has let each principal's grafts spend."""

    __slots__ = ("by_graft", "depth", "locks", "spent")

    def __init__(self) -> None:
        self.depth = 0  # SharedLock acquisitions not yet released, on this thread
        self.locks: list[SharedLock] = []  # the distinct locks held, outermost first
        # Invariant: spent[id(p)] is the wall time of p's grafts so far in this hold.
        self.spent: dict[int, int] = {}
        # Invariant: by_graft[id(g)] is the wall time of g's own calls so far in this
        # hold (part of its principal's spent): who spent an allowance (sandbox._decide).
        self.by_graft: dict[int, int] = {}

    def deadline_ns(self, principal: Principal, now_ns: int) -> int:
        """``perf_counter_ns`` past which ``principal``'s graft must be stopped."""
        return now_ns + _HOLD_NS - self.spent.get(id(principal), 0)

    def spend(self, principal: Principal, ns: int, graft: object = None) -> None:
        """``ns`` of wall time of ``principal``'s graft ``graft`` (None: not one graft's)."""
        key = id(principal)
        self.spent[key] = self.spent.get(key, 0) + ns
        if graft is not None:
            key = id(graft)
            self.by_graft[key] = self.by_graft.get(key, 0) + ns

    def own_ns(self, graft: object) -> int:
        """The wall time of ``graft``'s own calls so far in this hold."""
        return self.by_graft.get(id(graft), 0)

    def contended(self) -> bool:
        """True if another thread waits for a lock of this hold."""
        return any(lk.waiting() for lk in self.locks)


class Shares:
    """Each principal's share of the time others wait for a shared lock (see the module).

    Invariant: held weakly: a principal nobody keeps leaves nothing here.
    """

    __slots__ = ("_by_principal", "_mutex", "clock")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._by_principal: weakref.WeakKeyDictionary[Principal, Allowance] = (
            weakref.WeakKeyDictionary())
        self._mutex = threading.Lock()

    def of(self, principal: Principal) -> Allowance:
        """``principal``'s share (made on first use; unlimited if privileged)."""
        with self._mutex:
            a = self._by_principal.get(principal)
            if a is None:
                q = principal.quota
                rate = float("inf") if principal.privileged else q.lock_wall_per_s
                a = self._by_principal[principal] = Allowance(rate, q.lock_wall_burst_s,
                                                              self.clock)
            return a


class SharedLock:
    """A re-entrant, first-come-first-served host lock under which grafts are bounded in
    wall time (see the module). First come, first served: a principal that takes the lock
    again at once, in a loop, cannot starve a waiter -- each waiter waits for the holds
    ahead of it, each of them bounded."""

    __slots__ = ("_cond", "_count", "_mutex", "_next", "_owner", "_serving", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._mutex = threading.Lock()  # taken directly: a Condition's __enter__ is Python
        self._cond = threading.Condition(self._mutex)
        # Invariant: _owner is None exactly when _count == 0; tickets _serving .. _next - 1
        # are the waiters, in arrival order.
        self._owner: int | None = None
        self._count = 0
        self._next = 0  # the next ticket to hand out
        self._serving = 0  # the ticket whose turn it is

    def acquire(self, blocking: bool = True) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._count += 1
            elif self._owner is None and self._serving == self._next:
                self._owner, self._count = me, 1
            elif not blocking:
                return False
            else:
                ticket = self._next
                self._next += 1
                while self._owner is not None or self._serving != ticket:
                    self._cond.wait()
                self._serving += 1
                self._owner, self._count = me, 1
        ts = _LOCAL.ts
        hold = ts.hold
        if hold is None:
            hold = ts.hold = Hold()
        hold.depth += 1
        if self._count == 1:
            hold.locks.append(self)
        return True

    def release(self) -> None:
        ts = _LOCAL.ts
        hold = ts.hold
        if hold is not None:
            hold.depth -= 1
            if self._count == 1 and self in hold.locks:
                hold.locks.remove(self)
            if hold.depth <= 0:
                ts.hold = None
        with self._mutex:
            if self._owner != threading.get_ident():
                raise LockNotHeld(f"release of {self.name!r}, which this thread does not hold")
            self._count -= 1
            if self._count == 0:
                self._owner = None
                if self._serving != self._next:
                    self._cond.notify_all()

    def waiting(self) -> bool:
        """True if some thread waits for this lock (a glance: no lock taken)."""
        return self._serving != self._next

    def __enter__(self) -> SharedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"SharedLock({self.name!r})"
