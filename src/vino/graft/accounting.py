"""Principals, their quotas and what they use.

A ``Principal`` is whoever installs grafts; its grafts act with its rights and
are charged to its ``Usage``. Every charge goes through ``Principal.charge``
(which raises ``QuotaExceeded`` and changes nothing when it would go over) and
is given back with ``Principal.release``; a graft that is removed releases
everything it still holds, so ``usage`` returns to what it was before install.

Invariant: every field of ``Usage`` equals the sum of the charges of live
grafts and live transactions of this principal, except the two lifetime totals,
``cpu_ns`` and ``log_bytes``: time spent and log volume written are never given
back (the quota bounds what a principal may ever use, like an account's budget).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from vino import limits
from vino.errors import QuotaExceeded
from vino.graft import fastpath
from vino.graft.txn import thread_state


@dataclass(slots=True, frozen=True)
class Quota:
    """Per-principal limits. Going over any of them aborts the transaction."""

    memory_bytes: int = limits.QUOTA_MEMORY_BYTES  # linear memory and tables, all grafts
    kalloc_bytes: int = limits.QUOTA_KALLOC_BYTES
    handles: int = limits.QUOTA_HANDLES
    locks: int = limits.QUOTA_LOCKS
    log_bytes: int = limits.QUOTA_LOG_BYTES
    undo_entries: int = limits.QUOTA_UNDO_ENTRIES  # held at once (see txn.py)
    cpu_call_s: float = limits.CALL_BUDGET_S  # one call
    cpu_total_s: float = limits.QUOTA_CPU_TOTAL_S  # all calls, ever
    grafts: int = limits.QUOTA_GRAFTS  # installed at once, over every point (Sandbox.admit)
    installs_per_s: float = limits.QUOTA_INSTALLS_PER_S  # install attempts, sustained
    install_burst: int = limits.QUOTA_INSTALL_BURST  # install attempts at once
    # What another principal's grafts may take of this one's operations (hosting.py).
    hosted_cpu_per_s: float = limits.QUOTA_HOSTED_CPU_PER_S
    hosted_cpu_burst_s: float = limits.QUOTA_HOSTED_CPU_BURST_S
    # Its own grafts' share of the time others wait for a shared host lock (hold.py).
    lock_wall_per_s: float = limits.QUOTA_LOCK_WALL_PER_S
    lock_wall_burst_s: float = limits.QUOTA_LOCK_WALL_BURST_S


USAGE_FIELDS: Final = ("memory_bytes", "kalloc_bytes", "handles", "locks", "log_bytes",
                       "undo_entries", "cpu_ns")


class _UsageCounters:
    """``Usage``'s fields as Python ints (no native fast path)."""

    __slots__ = USAGE_FIELDS


_NATIVE: Final = fastpath.PART.get()
if TYPE_CHECKING:
    _UsageBase = _UsageCounters
else:  # C integers that the native protected call reads and adds to (fastpath.c)
    _UsageBase = _NATIVE.UsageCounters if _NATIVE is not None else _UsageCounters


class Usage(_UsageBase):
    """What a principal holds now, and (``cpu_ns``, ``log_bytes``) has ever used: ints."""

    __slots__ = ()

    memory_bytes: int
    kalloc_bytes: int
    handles: int
    locks: int
    log_bytes: int
    undo_entries: int
    cpu_ns: int

    def __init__(self) -> None:
        for name in USAGE_FIELDS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    def __repr__(self) -> str:
        return f"Usage({self.snapshot()})"


_LIMIT_OF = {
    "memory_bytes": "memory_bytes",
    "kalloc_bytes": "kalloc_bytes",
    "handles": "handles",
    "locks": "locks",
    "log_bytes": "log_bytes",
    "undo_entries": "undo_entries",
}


class acting_for:  # lower case: used like a function, ``with acting_for(p): ...``
    """Host code runs an operation on behalf of ``principal`` (``HOST``: of nobody).

    Who pays when one principal's operation runs another's graft (a reader of a
    filtered file, a fault that evicts from another address space) is ``hosting.py``:
    such a *hosted* call is charged to nobody's lifetime quota -- not the graft's
    principal's, whom any reader could otherwise drain until its graft is removed, and
    not the operation's, whose own grafts another's slow graft could otherwise get
    removed -- but to the operation's principal's hosting allowance for the graft's
    principal, a bounded share of time; it is counted (``Stats.hosted_ns``), and log
    lines past the graft principal's log quota are dropped and counted instead of
    aborting. What the graft holds (memory, handles, locks, undo entries) stays its own
    principal's. Without ``acting_for`` a call is its graft's principal's own, unless
    it is nested in another principal's graft call (then that principal pays).
    """

    __slots__ = ("principal", "saved")

    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal
        self.saved: Principal | None = None

    def __enter__(self) -> None:
        ts = thread_state()
        self.saved = ts.acting
        ts.acting = self.principal

    def __exit__(self, *exc: object) -> None:
        thread_state().acting = self.saved


@dataclass(slots=True, eq=False, weakref_slot=True)
class Principal:
    """Who installs grafts. ``privileged`` principals may graft global points.

    Compared and hashed by identity; weakly referenceable, so that what the host keeps
    per principal (install rates, hosting allowances) goes when the principal does.
    """

    name: str
    quota: Quota = field(default_factory=Quota)
    privileged: bool = False
    usage: Usage = field(default_factory=Usage)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def charge(self, what: str, amount: int) -> None:
        """Add ``amount`` to ``usage.<what>``, or raise ``QuotaExceeded`` and add nothing."""
        limit = getattr(self.quota, _LIMIT_OF[what])
        with self._mutex:
            now = getattr(self.usage, what)
            if now + amount > limit:
                raise QuotaExceeded(
                    f"{self.name}: {what} {now} + {amount} would exceed the quota of {limit}")
            setattr(self.usage, what, now + amount)

    def release(self, what: str, amount: int) -> None:
        with self._mutex:
            setattr(self.usage, what, getattr(self.usage, what) - amount)

    def add_cpu(self, ns: int) -> int:
        """Add ``ns`` to the lifetime CPU total (``usage.cpu_ns``); return the new total.

        Invariant: Python adds to ``cpu_ns`` only here, under the lock, with the amount
        computed before (pass a number, not a clock read in the expression). The native
        protected call adds to it holding the GIL with nothing run between its read and
        its write; this read and write call nothing either, so neither lands in the
        other's window. A clock read between the read and the write (``cpu_ns += clock()
        - t0``) let the interpreter switch threads there and lost what other threads'
        graft calls added meanwhile.
        """
        with self._mutex:
            total = self.usage.cpu_ns + ns
            self.usage.cpu_ns = total
        return total


# The payer of work the host does for no principal in particular (a file-system lookup, a
# sync, a cache load nobody's operation asked for): another principal's graft run in it
# is hosted, out of the host's own allowance for that principal (hosting.py). It
# installs nothing and holds nothing.
HOST = Principal("host")
