"""The protected call: one installed graft (``Graft``) and its invocations.

A ``Graft`` is made by ``Registry.install`` (one module instance bound to a point,
target and principal) and called by its point: ``FunctionPoint.__call__`` calls
``invoke``, ``EventPoint.__call__`` calls ``invoke_event``; the installer calls
``send``. Each runs the graft in a transaction, in order:
  1. begin a transaction (a child of the thread's current one, if any);
  2. copy the inputs into the graft's buffer (``point.encode``);
  3. call the entry through the fast path (its store's epoch deadline renewed
     to the next tick, at most once per tick); the epoch callback stops it if it
     runs past its budget or is doomed by a lock waiter;
  4. account memory growth and CPU time against the principal;
  5. read and validate the output (``point.decode``);
  6. commit -- or, on any failure, abort (``aborts.py``): undo in reverse order,
     release locks, free what the transaction allocated; record the reason; remove
     the graft once it has failed ``remove_after`` times; return the default's answer.
The operation that invoked the graft always completes.

Points call ``Graft.call``: with the native fast path (``fastpath.py``) a
``Protected`` entry that runs the common case in C -- a live graft called by host
code outside any transaction, working for nobody in particular, holding no shared
lock: store lock, transaction fields, deadline, encode, the call, decode, CPU
accounting, commit, counters -- and hands every other case to ``invoke`` before
changing anything, and every failure to the Python ``invoke`` uses (``_failed``,
``_stopped``, ``_cpu_used_up``, ``Transaction.commit``); without it, ``invoke``
itself, which inlines ``_begin``, the raw call, ``_finish`` and the commit's common
case. Both must stay equivalent to the plain steps:
``tests/graft/test_invoke_equivalence.py`` runs each, and the same call made through
``_begin`` and ``Transaction.commit``, on the same inputs and compares the state.

Host faults are not graft faults: the host's own exception during the call
(``encode``, ``decode`` but for ``InvalidResult``, the default, a graft-callable's
bug: ``abort_reason`` None) aborts the transaction, is recorded as ``host_error``
without blame and is re-raised with a note (or, with ``host_faults="default"``,
logged and answered by the default). Host code under the guest hands its exception
to the transaction (``txn.keep_fault``), never to a global.

Invariant: a graft's store is used by one thread at a time (``Graft._mutex``); a
thread re-entering a graft it is already running gets the default.
Invariant: a graft's code runs in one ``Context`` at a time (``hostapi.context_of``).
Invariant: a removed graft is in no dispatch table, holds no charges and no wasmtime
object (``_free``).
"""

from __future__ import annotations

import collections
import ctypes
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Final

from vino import limits
from vino.errors import (
    Forbidden,
    InvalidResult,
    QuotaExceeded,
)
from vino.graft import aborts, events, failures, fastcall, fastpath, hosting, interrupts
from vino.graft.aborts import AbortRecord, is_host_fault
from vino.graft.codec import (
    Batch,
    Bytes,
    BytesOf,
    Elements,
    IndexOf,
    InRange,
    Rows,
    Scalars,
)
from vino.graft.fastcall import I64, memory_data_size, set_deadline
from vino.graft.fastpath import Mutex, ProtectedCall
from vino.graft.point import HOST_FAULTS_DEFAULT, Context, ErasedFunctionPoint, Point
from vino.graft.ratelimit import Allowance
from vino.graft.stats import SAMPLE_MASK, Stats
from vino.graft.store import Instance
from vino.graft.txn import _LOCAL, ACTIVE, COMMITTED, ThreadState, Transaction

if TYPE_CHECKING:
    from vino.graft.accounting import Principal
    from vino.graft.hold import Hold
    from vino.graft.loader import Checked
    from vino.graft.registry import Registry

_perf_ns = time.perf_counter_ns
_Event = tuple[str, AbortRecord | None, BaseException | None]  # what Observers.emit takes

LIVE: Final = "live"
REMOVED: Final = "removed"

_NATIVE_SET_UP: list[ModuleType] = []  # the native module, once setup_protected was called

_INSTANCE_OBJECTS: Final = ("pre", "memory", "entry", "_call0", "_rawcall", "_result", "_msize",
                            "_trap_slot", "_ctx")

# Where a function-point call is, for telling host faults from graft faults.
_ENCODE: Final = "encode"
_GUEST: Final = "graft-callable"
_DECODE: Final = "decode"


class Graft:
    """One installed graft: a module instance bound to a point, target and principal."""

    # Slots, not a __dict__: one object fewer per graft for the cyclic collector to scan,
    # and cheaper to fill at install (a host may hold 100,000 of them).
    __slots__ = ("__weakref__", "_admitted", "_allowance", "_call0", "_cpu_total_ns", "_ctx",
                 "_deadline_tick", "_events", "_log_call_ns", "_log_calls", "_memory_over",
                 "_message", "_msize", "_mutex", "_native", "_next_handle", "_rawcall",
                 "_result", "_share", "_ticks", "_trap_slot", "_txn", "_undo_quota", "_usage",
                 "aborts", "budget_ns", "buffer", "call", "context", "digest",
                 "entry", "failures", "handles", "has_message", "instance", "logs",
                 "logs_dropped", "may_grow", "mem_charged", "memory", "name", "point", "pre",
                 "principal", "registry", "removal", "remove_after", "state", "stats",
                 "table_bytes", "table_charged", "target")

    def __init__(self, registry: Registry, point: Point, checked: Checked,
                 principal: Principal, target: object, remove_after: int) -> None:
        self.registry = registry
        self.point = point
        self.name = checked.name
        self.digest = checked.digest
        self.principal = principal
        self.target = target
        self.remove_after = remove_after
        self.state = LIVE
        self.failures = 0
        # Abort records and log lines, made at the first (_keep_abort, _keep_log): most never are.
        self.aborts: collections.deque[AbortRecord] | tuple[AbortRecord, ...] = ()
        self.removal: AbortRecord | None = None  # why it was removed, if it was
        # Invariant: events not yet emitted (failures.Observers); appended under the
        # graft's store lock, emitted by whoever releases it (``_flush``).
        self._events: list[_Event] = []
        self.stats = Stats()
        self.logs: collections.deque[bytes] | tuple[bytes, ...] = ()
        self.logs_dropped = 0
        self._log_calls = 0  # lines logged by the call that started at _log_call_ns
        self._log_call_ns = 0
        # Invariant: handles holds exactly the live kalloc blocks; their bytes and count are
        # charged to principal (kalloc_bytes, handles) until freed or the graft is removed.
        self.handles: dict[int, bytearray] = {}
        self._next_handle = 1
        self.mem_charged = 0  # bytes of linear memory charged to principal
        self._memory_over = False  # went over its quota: removed at once (see _account_memory)
        native = fastpath.protected(registry.sandbox.fastpath)
        # The store lock; native: one the Protected entry can try from C.
        self._mutex: Mutex = native.Mutex() if native is not None else threading.Lock()
        self.context: Context | None = None  # the other contexts' marker (see context_of)
        # Its one transaction, reused by every call; ``args`` holds the inputs of the entry
        # invocation in progress (a finished call's inputs are not kept: not for default(),
        # not alive).
        self._txn = Transaction(None, self)
        self._txn.state = COMMITTED
        self._cpu_total_ns = int(principal.quota.cpu_total_s * 1e9)
        self._undo_quota = principal.quota.undo_entries
        self._usage = principal.usage
        # Invariant: during a call, the allowance of the principal it is hosted for (who
        # pays, hosting.py), or None for its own principal's call (set by _pay); None
        # outside any call (each call's end), so the native entry need not set it.
        self._allowance: Allowance | None = None
        self._share = registry.shares.of(principal)  # of others' waits (hold.py)
        budget = point.budget_s if point.budget_s is not None else principal.quota.cpu_call_s
        self.budget_ns = int(budget * 1e9)
        self.pre = pre = registry._instance_pre(point, checked)
        # A module that can grow its memory may grow one page past the quota, so that going
        # over is seen (and aborts) rather than silently refused; one that cannot grow is
        # held to its initial memory, so a memory.grow the scanner missed just fails.
        self.may_grow = checked.may_grow
        hard_cap = (min(principal.quota.memory_bytes, limits.MAX_MEMORY_PAGES * limits.WASM_PAGE)
                    + limits.WASM_PAGE if checked.may_grow else checked.memory_min_bytes)
        # A share of the host (graft count, pool slots) first: QuotaExceeded takes nothing.
        registry.sandbox.admit(principal)
        self._admitted = True  # Invariant: holds one instance admitted by the sandbox
        try:
            self.instance: Instance | None = registry.sandbox.instantiate(
                pre, hard_cap, checked.table_elements)
        except BaseException:
            self._let_go()
            raise
        # Host memory its table may hold, charged (memory_bytes) from install to removal.
        self.table_bytes = checked.table_elements * limits.TABLE_ELEMENT_BYTES
        self.table_charged = 0
        self.memory = self.instance.memory
        self.entry = self.instance.func(point.entry, point.params, (point.result,))
        self._call0 = self.entry.call_args()  # the raw call's arguments, resolved once
        self._rawcall = self.entry.call_fn()  # through the native stack guard (stack.py)
        self._result = self.entry.results()
        self._msize = self.memory.size_args()
        self._trap_slot = self.entry.trap_slot()
        self._ctx = self.entry.context()
        self._ticks = registry.sandbox.ticker.counter
        self._deadline_tick = -1  # ticker's count when the store's deadline was last renewed
        self.has_message = checked.has_message
        # Made at the first message (most grafts are never sent one).
        self._message: fastcall.RawFunc | None = None
        self.buffer = memoryview(b"")
        # The protected call as points make it (see the module docstring): the native
        # entry, which hands all but the common case to ``invoke``, or ``invoke``.
        self._native: ProtectedCall | None = (
            self._protected(native) if native is not None and point.kind == "function"
            else None)
        self.call: ProtectedCall | Callable[[tuple[object, ...]], object] = (
            self._native if self._native is not None else self.invoke)

    def _protected(self, native: ModuleType) -> ProtectedCall:
        """This graft's native entry (``fastpath.c``'s ``Protected``): the objects and
        constants it reads and writes, resolved once."""
        if not _NATIVE_SET_UP:
            # Its clock is this module's _perf_ns (read in C while that is perf_counter_ns).
            native.setup_protected(_LOCAL, globals(), time.perf_counter_ns, _ENCODE, _GUEST,
                                   _DECODE, ACTIVE, COMMITTED, SAMPLE_MASK, Graft, Transaction,
                                   ThreadState,
                                   (Scalars, InRange, Rows, IndexOf, Batch, Elements, Bytes,
                                    BytesOf))
            _NATIVE_SET_UP.append(native)
        ticks = self._ticks
        assert isinstance(ticks, ctypes.c_uint64)  # a native ticker's count
        point: ErasedFunctionPoint = self.point  # type: ignore[assignment]
        params = "".join("q" if p == I64 else "i" for p in point.params)
        protected: ProtectedCall = native.Protected(
            self, point, self._txn, self.stats, self._usage, self._events,
            self._mutex, self.entry, self._rawcall, params, ticks, ctypes.addressof(ticks),
            self._cpu_total_ns, self._undo_quota, self.may_grow, self._msize[1])
        return protected

    def __repr__(self) -> str:
        return (f"Graft({self.name!r}, point={self.point.name!r}, target={self.target!r}, "
                f"state={self.state})")

    @property
    def live(self) -> bool:
        """False once removed (it is then in no dispatch table)."""
        return self.state is LIVE

    # ---- the protected call ----------------------------------------------------------
    def _begin(self) -> Transaction:
        """Start this graft's transaction (the one reusable object) as a child of the current."""
        txn = self._txn
        ts = _LOCAL.ts
        start = time.perf_counter_ns()
        hold = ts.hold
        wall = hold.deadline_ns(self.principal, start) if hold else 0
        txn.undo_room = self._undo_quota - self._usage.undo_entries
        txn.budget_ns = self.budget_ns
        txn.start_ns = start
        txn.wall_deadline_ns = wall
        txn.reset(ts)  # last: an interrupt before it leaves nothing begun
        return txn

    def _renew_deadline(self) -> None:
        """Move the store's epoch deadline to the next tick before a call.

        Between calls the epoch moves on, so a store called again after a tick
        or more would start by running the epoch callback (Python, needing the
        GIL) just to push its deadline. Renewing it here, at most once per
        tick, is the same rule the callback applies -- a running graft still
        meets the callback at every tick -- for one cheap FFI call.
        """
        self._deadline_tick = self._ticks.value
        set_deadline(self._ctx, 1)

    def busy(self) -> bool:
        """True while some thread is running this graft."""
        return self._mutex.locked()

    def _enter(self) -> bool:
        """Take the graft's store for this thread; False: use the default instead."""
        if self._mutex.acquire(False):
            return True
        t = _LOCAL.ts.txn
        while t is not None:
            if t is self._txn:
                return False  # re-entry from one of its own graft-callables
            t = t.parent
        return self._mutex.acquire(True, self.budget_ns / 1e9 + self.registry.locks.timeout_s)

    def _account_memory(self) -> None:
        size = self.memory.current_size()
        if size == self.mem_charged:
            return
        delta = size - self.mem_charged
        self.memory.refresh()
        try:
            self.principal.charge("memory_bytes", delta)
        except QuotaExceeded:
            # The pages exist whatever happens next: keep usage truthful, then abort.
            with self.principal._mutex:
                self.principal.usage.memory_bytes += delta
            self.mem_charged = size
            self._memory_over = True  # memory never shrinks: it could not commit again
            raise
        self.mem_charged = size

    def _finish(self, txn: Transaction, t1: int, t2: int) -> None:
        """Checks after a clean return, then commit (raises to abort instead)."""
        if txn.doom_reason is not None or (txn.parent is not None and txn.doomed()):
            txn.check()
        self._charge_cpu(t2 - t1)
        txn.commit()

    def _pay(self, acting: Principal | None, parent: Transaction | None) -> bool:
        """Say who pays for the call starting (hosting.py): its principal, or another's
        allowance; False (counted in ``Stats.unpaid``) if that allowance is spent."""
        if acting is None and parent is not None:
            acting = hosting.caller(parent)
        if acting is None or acting is self.principal:
            self._allowance = None
            return True
        allowance = self._allowance = self.registry.hosting.allowance(acting, self.principal)
        if allowance.open():
            return True
        self.stats.unpaid += 1
        return False

    def _may_hold(self) -> bool:
        """False (counted in ``Stats.throttled``) if an own call may not start under the
        thread's hold: its principal's share of others' waits is spent (hold.py)."""
        if self._allowance is not None or self._share.open():
            return True
        self.stats.throttled += 1
        return False

    def _spend_hold(self, hold: Hold, txn: Transaction, ns: int) -> None:
        """``ns`` of wall time under ``hold`` (less its first tick's wait, sandbox._decide):
        its principal's, and of its share while others wait (hosted: hosting.py)."""
        ns = max(0, ns - txn.wall_exempt_ns) if txn.cpu_call_ns == txn.start_ns else ns
        hold.spend(self.principal, ns, self)
        if self._allowance is None and hold.contended():
            self._share.spend(ns)

    def _charge_cpu(self, ns: int) -> None:
        """One call's CPU: its principal's, or hosted (hosting.py)."""
        allowance = self._allowance
        if allowance is not None:
            self.stats.hosted_ns += ns
            allowance.spend(ns)
            return
        if self.principal.add_cpu(ns) > self._cpu_total_ns:
            raise self._cpu_used_up()

    def _check_cpu_left(self, txn: Transaction) -> None:
        """Before the guest runs: a call its own principal pays for stops here, aborted for
        ``resource`` and charged nothing, once that principal's lifetime CPU
        (``Quota.cpu_total_s``) is spent. Checked only at a call's end, every call after
        the quota was spent ran its whole budget first -- without end, for a graft kept
        through failures."""
        if self._allowance is None and self._usage.cpu_ns > self._cpu_total_ns:
            txn.start_ns = 0  # the guest never ran: nothing to charge (aborts._charge_used)
            raise self._cpu_used_up()

    def _cpu_used_up(self) -> QuotaExceeded:
        """What a call raises once its principal's lifetime CPU is over the quota."""
        return QuotaExceeded(f"{self.principal.name}: total CPU quota of "
                             f"{self.principal.quota.cpu_total_s} s used up")

    def _stopped(self, txn: Transaction, err: int) -> Exception:
        """What aborts an entry call that stopped (``err``: the raw call's error
        pointer; 0: it trapped): ``aborts.failure`` of its outcome."""
        return aborts.failure(self, self.entry.outcome(err), txn)

    def invoke(self, args: tuple[object, ...]) -> object:
        """Run the function graft on ``args``; on any failure return the default's answer.

        This is the hot path: ``_begin``, the raw call, ``_finish`` and the commit's
        common case are inlined here, and must stay equivalent to them.
        """
        point: ErasedFunctionPoint = self.point  # type: ignore[assignment]
        if not self._mutex.acquire(False) and not self._enter():
            self.stats.busy += 1  # the point's busy rule: its default (which may refuse)
            return point.default(*args)
        try:
            if self.state is not LIVE:
                # Replaced or removed between the point's lookup and here: dispatch again,
                # so a hot replacement is seen as the new graft, never as the default.
                return point.redispatch(self, args)
            ts = _LOCAL.ts
            parent = ts.txn
            if parent is not None and aborts.too_deep(self, parent):
                return point.default(*args)
            if ts.acting is None and parent is None:
                self._allowance = None  # its own principal's call (the common case)
            elif not self._pay(ts.acting, parent):
                return point.default(*args)  # the payer's allowance is spent
            if ts.hold is not None and not self._may_hold():
                return point.default(*args)  # its share of others' waits is spent
            txn = self._txn  # finished: the mutex admits one invocation at a time
            txn.args = args
            txn.parent = parent
            txn.ts = ts
            txn.undo_room = self._undo_quota - self._usage.undo_entries
            txn.start_ns = 0  # set when the guest is entered; 0: it never was
            hold = ts.hold
            txn.wall_deadline_ns = hold.deadline_ns(self.principal, _perf_ns()) if hold else 0
            st = self.stats
            sample = not st.commits & SAMPLE_MASK  # time the whole call on 1 call in 16
            stage = _ENCODE
            # Begun: from here on, whatever is raised (an interrupt too) ends it (_failed).
            txn.state = ACTIVE
            ts.txn = txn
            try:
                if sample:
                    t0 = _perf_ns()
                wasm_args = point.encode(self.buffer, *args)
                stage = _GUEST
                if self._allowance is None and self._usage.cpu_ns > self._cpu_total_ns:
                    raise self._cpu_used_up()  # (_check_cpu_left, inlined)
                entry = self.entry
                if self._ticks.value != self._deadline_tick:
                    self._renew_deadline()
                t1 = txn.start_ns = _perf_ns()
                if wasm_args:
                    rc = entry.call(*wasm_args)
                else:
                    err = self._rawcall(*self._call0)
                    rc = entry.outcome(err) if err or self._trap_slot[0] else 0
                t2 = _perf_ns()
                if hold is not None:
                    self._spend_hold(hold, txn, t2 - t1)
                if rc:
                    raise aborts.failure(self, rc, txn)
                if self.may_grow and memory_data_size(*self._msize) != self.mem_charged:
                    self._account_memory()
                stage = _DECODE
                result = point.decode(self.buffer, self._result[0], *args)
                stage = _GUEST
                if txn.doom_reason is not None or (parent is not None and parent.doomed()):
                    txn.check()
                allowance = self._allowance
                if allowance is None:
                    if self.principal.add_cpu(t2 - t1) > self._cpu_total_ns:
                        raise self._cpu_used_up()
                else:
                    st.hosted_ns += t2 - t1
                    allowance.spend(t2 - t1)
                if txn.undo is None and txn.locks is None and txn.deferred is None:
                    txn.state = COMMITTED
                    ts.txn = parent
                else:
                    txn.commit()
            except BaseException as exc:  # an interrupt as well: never left current
                return self._failed(txn, exc, stage, args)
            st.commits += 1
            st.graft_ns += t2 - t1
            if sample:
                st.sampled_ns += _perf_ns() - t0
                st.sampled_graft_ns += t2 - t1
                st.samples += 1
            return result
        finally:
            self._txn.args = None
            self._allowance = None
            if self.state is not LIVE and self.instance is not None:
                self._free()  # removed from inside this call: its store is free now
            self._mutex.release()
            if self._events:
                self._flush()

    def _failed(self, txn: Transaction, exc: BaseException, stage: str,
                args: tuple[object, ...]) -> object:
        """A function-point call that raised at ``stage``: the host's fault (aborted and
        re-raised, or the default's answer per the point's ``host_faults``) or the
        graft's (aborted; the default's answer). An interrupt (no ``Exception``: Ctrl-C)
        is the host's too, always re-raised: no transaction is left current."""
        point: ErasedFunctionPoint = self.point  # type: ignore[assignment]
        interrupt = not isinstance(exc, Exception)
        if (interrupt or stage is _ENCODE or is_host_fault(exc)
                or (stage is _DECODE and not isinstance(exc, InvalidResult))):
            aborts.host_fault(self, txn, exc, f"{point.name} {stage}" if stage is not _GUEST
                              else "graft-callable or default" if not interrupt
                              else "code during the guest call")
            if point.host_faults == HOST_FAULTS_DEFAULT and not interrupt:
                return point.default(*args)
            raise exc
        aborts.abort(self, txn, exc)
        return point.default(*args)

    def invoke_event(self, args: tuple[object, ...]) -> bool:
        """Run one event handler; True if it committed (``events.deliver``)."""
        return events.deliver(self, args)

    def _end_call(self) -> None:
        """How every call that took the store ends (``finally``; ``invoke`` inlines it):
        no allowance, a graft removed from inside the call freed, the store let go, the
        queued events emitted."""
        self._allowance = None
        if self.state is not LIVE and self.instance is not None:
            self._free()  # removed from inside this call: its store is free now
        self._mutex.release()
        self._flush()

    def _keep_abort(self, rec: AbortRecord) -> None:
        """Keep ``rec`` among the last ``ABORTS_KEPT`` records and count it."""
        if isinstance(self.aborts, tuple):
            self.aborts = collections.deque(maxlen=limits.ABORTS_KEPT)
        self.aborts.append(rec)
        self.stats.aborts[rec.reason.value] += 1

    def _keep_log(self, line: bytes) -> None:
        """Keep ``line`` among the last ``LOG_LINES_KEPT``."""
        if isinstance(self.logs, tuple):
            self.logs = collections.deque(maxlen=limits.LOG_LINES_KEPT)
        self.logs.append(line)

    def _queue(self, kind: str, rec: AbortRecord | None, exc: BaseException | None) -> None:
        """Queue an event for the observers (emitted by ``_flush``)."""
        self._events.append((kind, rec, exc))

    def _flush(self) -> None:
        """Emit the events queued while the store was held (logs, then hooks). Two
        threads may flush at once: each event is taken by one pop, which may find the
        list emptied by the other (SAFETY.md: a test, then a pop, raised IndexError)."""
        events = self._events
        while True:
            try:
                kind, rec, exc = events.pop(0)
            except IndexError:  # all emitted, here or by another thread
                return
            self.registry.observers.emit(kind, self, rec, exc)

    # ---- messages -----------------------------------------------------------------------
    def send(self, data: bytes) -> int:
        """Deliver ``data`` to the graft's ``vino_message`` inside a transaction
        (``messages.send``: what it returns and raises)."""
        from vino.graft import messages

        return messages.send(self, data)

    # ---- removal ------------------------------------------------------------------------
    def remove(self, by: Principal | None = None) -> None:
        """Uninstall: wait for a running call to finish, then free everything it holds.

        From inside the graft's own call (host code under one of its graft-callables
        removes or replaces it) the graft is unlinked at once -- no new call reaches
        it -- and freed when that call ends: its store is still running below.

        ``by``: the principal asking. A principal may remove only its own grafts (a
        privileged one, any); ``None`` is the application itself. Raises
        ``Forbidden`` (and removes nothing) otherwise. Removing a removed graft
        does nothing.
        """
        if by is not None and by is not self.principal and not by.privileged:
            raise Forbidden(f"{by.name} may not remove graft {self.name!r} of "
                            f"{self.principal.name}: a principal removes only its own grafts")
        if self.state is not LIVE:
            return
        if self._txn.state == ACTIVE and self._txn.ts is _LOCAL.ts:
            self._unlink_removed(None)
            return
        with self._mutex, interrupts.held():  # freed whole, whatever a signal handler raises
            self._retire(None)
        self._flush()

    def _retire(self, why: AbortRecord | None) -> None:
        # Called with the graft's store held (or unused) and no guest code of it running.
        if self.state is LIVE:
            self._unlink_removed(why)
        self._free()

    def _unlink_removed(self, why: AbortRecord | None) -> None:
        self.state = REMOVED
        if self._native is not None:
            self._native.unlink()
        self.removal = why
        self._queue(failures.REMOVE, why, None)
        self.registry._unlink(self)

    def _free(self) -> None:
        """Give back every charge and drop the store (idempotent)."""
        if self.instance is not None:  # the first time: no call of it is running any more
            self.registry._retire_stats(self)
            if self._native is not None:
                self._native.forget()  # keeps calling invoke, which redispatches
            # A removed graft the application still holds keeps none of its instance's
            # objects alive (_INSTANCE_OBJECTS: ctypes views, call arguments, functions).
            for attr in _INSTANCE_OBJECTS:
                delattr(self, attr)
            self._message = None
        p = self.principal
        handles, self.handles = self.handles, {}  # a racing kfree undo sees one or the other
        if handles:
            p.release("kalloc_bytes", sum(len(b) for b in handles.values()))
            p.release("handles", len(handles))
        if self.mem_charged:
            p.release("memory_bytes", self.mem_charged)
            self.mem_charged = 0
        if self.table_charged:
            p.release("memory_bytes", self.table_charged)
            self.table_charged = 0
        self.instance = None
        self.buffer = memoryview(b"")
        self._let_go()

    def _let_go(self) -> None:
        if self._admitted:
            self._admitted = False
            self.registry.sandbox.let_go(self.principal)

