"""Who pays when one principal's operation runs another principal's graft.

A graft's call is *own* when the thread works for the graft's own principal, or
says it works for nobody: its CPU time is charged to its principal's lifetime
quota (``Quota.cpu_total_s``). It is *hosted* when the thread works for another
principal, the *payer*: the principal host code named with
``accounting.acting_for`` (the opener of a file being read or written, the process
whose page fault evicts from another address space, ``HOST`` for the host's own
work), or else the principal of the graft whose call this one is nested in.
Then:

- the graft's principal pays nothing: the payer cannot drain its quota and get its
  graft removed;
- the payer's lifetime quota pays nothing either: a graft the payer did not choose
  cannot drain it and get the payer's own grafts removed;
- the payer's operations pay in time, out of the payer's *hosting allowance* for
  the graft's principal (``Allowance``): CPU time refilled at
  ``Quota.hosted_cpu_per_s`` seconds per second up to ``Quota.hosted_cpu_burst_s``,
  both the payer's quota, since it is the payer's operations that wait. A hosted call
  is admitted while the allowance is above zero and spends its time when it ends
  (so it may overdraw by one call). While it is empty, that principal's grafts are
  not called in the payer's operations: the point answers with its default, as if
  nothing were grafted (for ``fs.filter`` on a sealed file, a refusal; for an event,
  the handler misses it), counted in the graft's ``Stats.unpaid``; the graft is
  neither aborted nor blamed, and is called again once the allowance refills.

The bound: in any T seconds, one principal's grafts run at most
``hosted_cpu_burst_s + T * hosted_cpu_per_s`` of time, plus one call, inside
another principal's operations -- whoever installs them, however often the payer
triggers them.

Usage (the registry, around each call)::

    allowance = registry.hosting.allowance(payer, graft.principal)
    if not allowance.open():
        ...  # the default; stats.unpaid += 1
    ...  # the call
    allowance.spend(ns)

The clock is injected (seconds; the registry's), so tests move it by hand.

Invariant: allowances are held weakly on both sides: a principal nobody keeps
(payer or graft's) leaves nothing here.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from vino.graft.accounting import Principal
from vino.graft.ratelimit import Allowance

if TYPE_CHECKING:
    from vino.graft.txn import Transaction

_Table = weakref.WeakKeyDictionary[Principal, Allowance]


class Hosting:
    """Every payer's allowance for every other principal whose grafts it has run."""

    __slots__ = ("_by_payer", "_mutex", "clock")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._by_payer: weakref.WeakKeyDictionary[Principal, _Table] = (
            weakref.WeakKeyDictionary())
        self._mutex = threading.Lock()

    def allowance(self, payer: Principal, owner: Principal) -> Allowance:
        """``payer``'s allowance for the grafts of ``owner`` (made on first use)."""
        table = self._by_payer.get(payer)
        if table is not None:
            a = table.get(owner)
            if a is not None:
                return a
        with self._mutex:
            table = self._by_payer.get(payer)
            if table is None:
                table = self._by_payer[payer] = weakref.WeakKeyDictionary()
            a = table.get(owner)
            if a is None:
                q = payer.quota
                a = table[owner] = Allowance(q.hosted_cpu_per_s, q.hosted_cpu_burst_s,
                                             self.clock)
            return a

    def spent(self, payer: Principal | None, owner: Principal) -> float:
        """Seconds until ``payer``'s operations may call ``owner``'s grafts again (0.0:
        they may now, or the call would be ``owner``'s own). Raises nothing."""
        if payer is None or payer is owner:
            return 0.0
        table = self._by_payer.get(payer)
        a = table.get(owner) if table is not None else None
        return a.reopens_in_s() if a is not None else 0.0


def caller(parent: Transaction) -> Principal | None:
    """The principal of the graft whose call ``parent`` (a transaction) is in, if any."""
    t: Transaction | None = parent
    while t is not None:
        g = t.graft
        if g is not None:
            p: Principal = g.principal
            return p
        t = t.parent
    return None


__all__ = ["Allowance", "Hosting", "caller"]
