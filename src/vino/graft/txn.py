"""Transactions: begin, commit, abort, with an undo log and nesting.

Every graft invocation runs in a ``Transaction``. Host state changes only
through accessors, and every accessor records how to undo itself with
``Transaction.record`` (or the one-line helpers ``set``, ``setitem``,
``delitem``, ``append``). The log is transient: a list of undo closures.

Order of calls:
    txn = begin(...)          # pushes txn as the thread's current transaction
    ... accessors record undo entries; locks are added by the lock manager ...
    txn.commit()  or  txn.abort()   # pops it

Nesting: ``begin`` while a transaction is current makes a child. A child's
commit hands its undo entries, locks and deferred actions to its parent (they
take effect, or are undone, with the parent), and a doom that reached it too late
(a waiter wants a lock it took) passes to the parent, which now holds that lock.
A child's abort undoes only the child's own entries, in reverse order, and
releases the locks it took.

Bounded undo: a graft's transaction may hold at most ``undo_room`` entries (its
principal's ``undo_entries`` quota less what that principal's calls already keep
alive in enclosing host transactions). Recording one more applies that entry at
once -- the change it undoes is reverted, so nothing is left unrecorded -- and
raises ``QuotaExceeded`` (the graft aborts with ``resource``). Entries a nested
call commits into a graft's transaction count against *that* transaction's room:
past it, that transaction is doomed (``resource``), not the nested graft, so a
caller cannot spend another principal's quota by calling its graft again and
again. Entries a graft's transaction commits into a host transaction stay alive
until the outermost one ends: they are charged to the graft's principal
(``undo_charges``) and given back then, so grafts called again and again inside
one long host transaction cannot pile up entries without bound.

Ending is whole: ``abort``, and a commit that hands anything to its parent or releases
anything, run with Python signal handlers held off (``interrupts.held``), so a Ctrl-C
cannot stop an undo log or a lock release half way; it is raised when the ending is done.

Invariant: a thread's current transaction is the innermost live one; a
transaction is live (``state == ACTIVE``) until exactly one of commit / abort.
Invariant: undo entries run at most once, newest first.
Invariant: ``undo_charges`` sum to the entries of committed graft children held in
``undo``; they are given back exactly once, when those entries run or are dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping, MutableSequence
from typing import TYPE_CHECKING, Final, TypeVar

from vino.errors import AbortReason, Doomed, QuotaExceeded, TransactionError
from vino.graft import fastpath, interrupts

if TYPE_CHECKING:
    from vino.graft.accounting import Principal
    from vino.graft.hold import Hold
    from vino.graft.invoke import Graft
    from vino.graft.locks import HostLock

log = logging.getLogger("vino.txn")

ACTIVE: Final = 0
COMMITTED: Final = 1
ABORTED: Final = 2

Undo = Callable[[], None]
UNBOUNDED: Final = 1 << 62  # undo_room of host transactions: host code is trusted
K = TypeVar("K")  # the keys of a mapping an accessor changes
V = TypeVar("V")  # the values of a mapping or sequence it changes


class ThreadState:
    """Per-thread state: the innermost live transaction. Fetched once per invocation."""

    __slots__ = ("acting", "hold", "txn")

    def __init__(self) -> None:
        self.txn: Transaction | None = None
        # The principal on whose behalf host code is working (accounting.acting_for), if
        # it said: the CPU of another principal's graft it runs is "hosted" (see there).
        self.acting: Principal | None = None
        self.hold: Hold | None = None  # set while the thread holds a SharedLock (hold.py)


class _Local(threading.local):
    # Invariant: a thread's ThreadState is made once, here, and never replaced: the
    # native protected call (fastpath.c) keeps a borrowed pointer to it per thread.
    def __init__(self) -> None:
        self.ts = ThreadState()


_LOCAL: Final = _Local()


def thread_state() -> ThreadState:
    """The calling thread's ``ThreadState``."""
    return _LOCAL.ts


def current() -> Transaction | None:
    """The calling thread's innermost live transaction, or ``None``."""
    return _LOCAL.ts.txn


def clear_current() -> Transaction | None:
    """Forget the calling thread's current transaction without ending it, and return it.

    For test rigs recovering after a failed test left one current (later work on the
    thread would nest in it). Its undo entries, locks and deferred actions stay as
    they are: nothing is undone or released.
    """
    ts = _LOCAL.ts
    txn, ts.txn = ts.txn, None
    return txn


class _TxnFields:
    """``start_ns`` as a Python int (no native fast path)."""

    __slots__ = ("start_ns",)
    start_ns: int


# ``start_ns``, which the native protected call stamps on every call, is a C integer of
# the fast path's ``TxnFields`` when it is built (no int made per call); Python reads and
# writes it as an int all the same.
_NATIVE: Final = fastpath.PART.get()
if TYPE_CHECKING:
    _Base = _TxnFields
else:
    _Base = _NATIVE.TxnFields if _NATIVE is not None else _TxnFields


class Transaction(_Base):
    """One unit of undoable work; see the module docstring for the protocol.

    The graft-specific fields (``graft``, ``args``, ``start_ns``, ``budget_ns``, ``fault``)
    are filled by the invocation wrapper; host-only transactions leave them
    empty.
    """

    __slots__ = ("args", "budget_ns", "cpu_call_ns", "cpu_start_ns", "deferred", "doom_detail",
                 "doom_reason", "fault", "graft", "locks", "parent", "state", "ts",
                 "undo", "undo_charges", "undo_errors", "undo_room", "wall_deadline_ns",
                 "wall_exempt_ns")

    def __init__(self, parent: Transaction | None = None, graft: Graft | None = None,
                 ts: ThreadState | None = None) -> None:
        self.ts = ts if ts is not None else _LOCAL.ts  # the thread it runs on
        self.parent = parent
        self.graft = graft
        # Invariant: the inputs of the graft's entry invocation this transaction runs, while
        # it runs; None for every other call (an event, a message, install) and outside one.
        self.args: tuple[object, ...] | None = None
        self.undo: list[Undo] | None = None  # created on first record (most calls record none)
        self.locks: list[HostLock] | None = None
        self.deferred: list[Undo] | None = None  # run once the top-level transaction commits
        self.state = ACTIVE
        self.doom_reason: AbortReason | None = None  # set by another thread: abort soon
        self.doom_detail = ""
        self.fault: BaseException | None = None
        self.start_ns = 0
        self.budget_ns = 0
        self.cpu_call_ns = 0  # start_ns of the call whose CPU time cpu_start_ns counts from
        self.cpu_start_ns = 0  # the thread's CPU time at that call's first epoch tick
        self.undo_errors = 0
        self.undo_room = UNBOUNDED  # entries it may still record (graft calls: bounded)
        # (principal, entries) of graft children committed into this one, still held
        self.undo_charges: list[tuple[Principal, int]] | None = None
        # perf_counter_ns past which the call is stopped (0: none); set under a SharedLock
        self.wall_deadline_ns = 0
        # Wall time of the call (the one cpu_call_ns names) before its first epoch tick, past
        # one tick: the host's GIL or the machine's scheduler, not charged (sandbox._decide)
        self.wall_exempt_ns = 0

    @property
    def calling_graft(self) -> Graft:
        """The graft whose call this is (what a graft-callable's ``txn`` runs for).

        Raises ``TransactionError`` for a host transaction (``graft`` is None)."""
        g = self.graft
        if g is None:
            raise TransactionError("a host transaction: no graft is calling")
        return g

    @property
    def live(self) -> bool:
        """Neither committed nor aborted yet."""
        return self.state == ACTIVE

    def reset(self, ts: ThreadState) -> None:
        """Make a finished transaction fresh again and current on ``ts``'s thread.

        A graft reuses one transaction object for all its calls. Safe because a
        graft runs at most one invocation at a time, and a finished transaction is
        referenced by no lock (released), no child (all ended) and holds no undo,
        lock or deferred list (commit and abort clear them). ``doom_reason`` and
        ``fault`` are cleared by ``abort``, the only way they end up set.
        """
        if self.state == ACTIVE:
            raise TransactionError("reset of a live transaction")
        self.ts = ts
        self.parent = ts.txn
        self.state = ACTIVE
        ts.txn = self

    # ---- recording -----------------------------------------------------------------
    def record(self, undo: Undo) -> None:
        """Add an undo entry; it runs if this transaction (or an ancestor) aborts."""
        if self.state != ACTIVE:
            raise TransactionError("record on a finished transaction")
        log_ = self.undo
        if log_ is None:
            if self.undo_room <= 0:
                self._undo_full(undo, 0)
            self.undo = [undo]
        elif len(log_) < self.undo_room:
            log_.append(undo)
        else:
            self._undo_full(undo, len(log_))

    def _undo_full(self, undo: Undo, held: int) -> None:
        """No room for ``undo``: revert its change now and raise ``QuotaExceeded``."""
        try:
            undo()
        except Exception:
            self.undo_errors += 1
            log.exception("undo entry %r failed when its log was full", undo)
        p = self.calling_graft.principal  # host transactions have room without bound
        raise QuotaExceeded(
            f"{p.name}: undo log full ({held} entries in this call, "
            f"{p.usage.undo_entries} held by committed calls; quota {p.quota.undo_entries})")

    def defer(self, action: Undo) -> None:
        """Run ``action`` when the outermost transaction commits; drop it on abort."""
        if self.deferred is None:
            self.deferred = [action]
        else:
            self.deferred.append(action)

    def set(self, obj: object, attr: str, value: object) -> object:
        """``obj.attr = value``, undoably. Returns the old value."""
        old = getattr(obj, attr)
        setattr(obj, attr, value)
        self.record(lambda: setattr(obj, attr, old))
        return old

    def setitem(self, mapping: MutableMapping[K, V], key: K, value: V) -> None:
        """``mapping[key] = value``, undoably (a new key is deleted again)."""
        if key in mapping:
            old = mapping[key]
            mapping[key] = value
            self.record(lambda: mapping.__setitem__(key, old))
        else:
            mapping[key] = value
            self.record(lambda: mapping.__delitem__(key))

    def delitem(self, mapping: MutableMapping[K, V], key: K) -> V:
        """``del mapping[key]``, undoably. Returns the removed value."""
        old = mapping.pop(key)
        self.record(lambda: mapping.__setitem__(key, old))
        return old

    def append(self, seq: MutableSequence[V], value: V) -> None:
        """``seq.append(value)``, undoably.

        The undo removes this very element (the last one that *is* ``value``), not
        whatever happens to be last: other transactions may have appended since.
        """
        seq.append(value)

        def undo() -> None:
            for i in range(len(seq) - 1, -1, -1):
                if seq[i] is value:
                    del seq[i]
                    return

        self.record(undo)

    # ---- doom ------------------------------------------------------------------------
    def doom(self, reason: AbortReason, detail: str) -> None:
        """Ask this transaction to abort as soon as its thread notices (thread-safe)."""
        if self.doom_reason is None:
            self.doom_detail = detail
            self.doom_reason = reason

    def doomed(self) -> Transaction | None:
        """This transaction or the nearest ancestor that has been doomed, if any."""
        t: Transaction | None = self
        while t is not None:
            if t.doom_reason is not None:
                return t
            t = t.parent
        return None

    def check(self) -> None:
        """Raise ``Doomed`` if this transaction or an ancestor has been doomed."""
        d = self.doomed()
        if d is not None and d.doom_reason is not None:
            raise Doomed(d.doom_reason, d.doom_detail)

    @property
    def root(self) -> Transaction:
        t = self
        while t.parent is not None:
            t = t.parent
        return t

    # ---- ending --------------------------------------------------------------------------
    def commit(self) -> None:
        """End successfully. A child hands everything to its parent.

        A graft's transaction that hands undo entries to a host transaction charges
        them to its principal first; over the quota, it raises ``QuotaExceeded`` and
        stays live (the caller aborts it). Handing them to a graft's transaction past
        that transaction's room dooms it (``resource``).
        """
        if self.state != ACTIVE:
            raise TransactionError("commit of a finished transaction")
        parent = self.parent
        if self.undo and parent is not None and self.graft is not None and parent.graft is None:
            p = self.graft.principal
            charges = self.undo_charges
            # Entries of its own committed graft children are charged already (to theirs).
            n = len(self.undo) - (sum(k for _, k in charges) if charges else 0)
            if n > 0:
                p.charge("undo_entries", n)
                if charges is None:
                    self.undo_charges = [(p, n)]
                else:
                    charges.append((p, n))
        if self.undo is None and self.locks is None and self.deferred is None:
            self.state = COMMITTED
            self.ts.txn = parent
            if self.doom_reason is not None and parent is not None:
                parent.doom(self.doom_reason, self.doom_detail)  # as in _hand_over
                self.doom_reason = None
            return  # the common case: nothing recorded, nothing held
        if parent is None and self.locks is None and self.deferred is None \
                and not self.undo_charges:  # undo entries only: dropped, in one step
            self.state = COMMITTED
            self.ts.txn = parent
            self.undo = None
            self.doom_reason = None
            return
        with interrupts.held():  # a signal handler must not cut the hand-over short
            self.state = COMMITTED
            self.ts.txn = parent
            if parent is not None:
                self._hand_over(parent)
            else:
                self._end_outermost()

    def _hand_over(self, parent: Transaction) -> None:
        """A child's commit: its undo entries, locks, deferred actions and charges go to
        ``parent``, and so does a doom that reached it too late."""
        if self.undo:
            if parent.undo is None:
                parent.undo = self.undo
            else:
                parent.undo.extend(self.undo)
            if len(parent.undo) > parent.undo_room:  # a graft's call holds them now
                parent.doom(AbortReason.RESOURCE, f"undo log full: {len(parent.undo)} "
                            f"entries, {parent.undo_room} allowed (nested calls' included)")
        if self.locks:
            for lock in self.locks:
                lock.transfer(self, parent)
            if parent.locks is None:
                parent.locks = self.locks
            else:
                parent.locks.extend(self.locks)
        if self.deferred:
            if parent.deferred is None:
                parent.deferred = self.deferred
            else:
                parent.deferred.extend(self.deferred)
        if self.undo_charges:
            if parent.undo_charges is None:
                parent.undo_charges = self.undo_charges
            else:
                parent.undo_charges.extend(self.undo_charges)
        self.undo = self.locks = self.deferred = self.undo_charges = None
        if self.doom_reason is not None:
            # A doom that raced the commit (a waiter wants a lock this transaction
            # took, now the parent's): the parent holds the lock, so the parent aborts.
            parent.doom(self.doom_reason, self.doom_detail)
            self.doom_reason = None

    def _end_outermost(self) -> None:
        """The outermost transaction's commit: its undo entries dropped, its locks released,
        its deferred actions run."""
        self.undo = None
        self._give_back_undo()
        locks, self.locks = self.locks, None
        if locks:
            for lock in reversed(locks):
                lock.release(self)
        self.doom_reason = None  # no lock is held any more, so no doom can be pending
        deferred, self.deferred = self.deferred, None
        if deferred:
            for action in deferred:
                action()

    def abort(self) -> None:
        """Undo every recorded entry, newest first, and release this transaction's locks.

        An undo entry that raises is logged and counted in ``undo_errors``; the
        remaining entries still run, so one faulty entry cannot strand the rest.
        """
        if self.state != ACTIVE:
            raise TransactionError("abort of a finished transaction")
        with interrupts.held():  # a signal handler must not cut the undo log short
            self.state = ABORTED
            self.ts.txn = self.parent
            undo = self.undo
            self.undo = None
            if undo:
                for entry in reversed(undo):
                    try:
                        entry()
                    except Exception:
                        self.undo_errors += 1
                        log.exception("undo entry %r failed during abort", entry)
            self._give_back_undo()
            if self.locks:
                for lock in reversed(self.locks):
                    lock.release(self)
                self.locks = None
            self.deferred = None
            # Cleared last: a waiter may doom this transaction until its locks are released,
            # and the object is reused by the graft's next call.
            self.doom_reason = None
            self.fault = None

    def _give_back_undo(self) -> None:
        charges, self.undo_charges = self.undo_charges, None
        if charges:
            for p, n in charges:
                p.release("undo_entries", n)


def keep_fault(exc: BaseException) -> None:
    """Keep ``exc``, raised by host code under a guest call, on the calling graft's
    transaction (``fault``), for the protected call to classify once the guest stopped.

    The caller's is the thread's innermost graft transaction: a nested graft call
    under that host code has ended (committed or aborted) before its exception got
    here. The first fault of a call is kept; outside any graft call it is dropped.
    """
    t = _LOCAL.ts.txn
    while t is not None and t.graft is None:
        t = t.parent
    if t is not None and t.fault is None:
        t.fault = exc


def begin(graft: Graft | None = None) -> Transaction:
    """Start a transaction (a child of the current one, if any) and make it current."""
    ts = _LOCAL.ts
    txn = Transaction(ts.txn, graft, ts)
    ts.txn = txn
    return txn


class transaction:  # lower case: used like a function, ``with transaction() as txn``
    """Host-side transaction scope: commits on normal exit, aborts on exception."""

    __slots__ = ("txn",)

    def __enter__(self) -> Transaction:
        self.txn = begin()
        return self.txn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.txn.state != ACTIVE:
            return
        if exc_type is None:
            self.txn.commit()
        else:
            self.txn.abort()
