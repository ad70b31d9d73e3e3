"""The graft namespace: declare points, install, invoke, replace, remove, stats.

A ``Registry`` owns one sandbox (engine + ticker), one lock manager, the
declared points and every installed ``Graft``.

Protected invocation (``Graft.invoke``), in order:
  1. begin a transaction (a child of the thread's current one, if any);
  2. copy the inputs into the graft's buffer (``point.encode``);
  3. call the entry through the fast path (its store's epoch deadline renewed
     to the next tick, at most once per tick); the epoch callback stops it if it
     runs past its budget or is doomed by a lock waiter;
  4. account memory growth and CPU time against the principal;
  5. read and validate the output (``point.decode``);
  6. commit — or, on any failure, abort: undo in reverse order, release locks,
     free what the transaction allocated; record the reason; remove the graft
     once it has failed ``remove_after`` times; and return the default's answer.
The operation that invoked the graft always completes.

Host faults are not graft faults: an exception raised by the host's own code
during the call -- ``encode``, ``decode`` (anything but ``InvalidResult``), the
default run through the ``default`` graft-callable, or a graft-callable's own bug
(anything but the graft-blaming errors: ``BadArgument``/``Forbidden``,
``QuotaExceeded``, ``WildPointer``, lock and time-outs) -- aborts the transaction
(its effects undone), is recorded as ``host_error`` without counting against the
graft (which stays installed), and is re-raised to the caller with its own
traceback and a note saying where vino met it -- or, on a point declared with
``host_faults="default"`` (a host that must complete every operation, like the
reference kernel's scheduler), logged with that traceback and answered by the
default.

Failures are visible as they happen (``failures``): each abort, removal,
rejection and host fault is logged under the ``vino`` logger and passed to the
``on_abort`` / ``on_remove`` hooks, after the undo and outside the graft's lock.

Rights: ``point.may_install`` decides who may graft which target (by default the
target's owner, and privileged principals); whatever the rule, a principal may
replace (``install(replace=True)``) or remove (``remove(by=...)``) only its own
grafts, a privileged principal any.

Invariant: a graft's store is used by one thread at a time (``Graft._mutex``);
a thread re-entering a graft it is already running gets the default.
Invariant: a graft's code runs in exactly one ``Context`` at a time (``context_of``):
its graft-callables know which, and ``default()`` runs the policy only during an
entry invocation, on that invocation's inputs.
Invariant: a removed graft is in no dispatch table and holds no charges.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

import wasmtime

from vino import limits
from vino.errors import (
    AbortReason,
    CallRefused,
    Doomed,
    Forbidden,
    GraftAborted,
    GraftRejected,
    InvalidResult,
    LockTimeout,
    MessageRefused,
    NoSuchGraft,
    QuotaExceeded,
    VinoError,
    WildPointer,
)
from vino.graft import failures, fastcall, hosting, loader, traps
from vino.graft.accounting import Principal
from vino.graft.fastcall import I32, _memory_size, _set_deadline
from vino.graft.hold import Hold, Shares
from vino.graft.locks import LockManager
from vino.graft.point import (
    ANY_CONTEXT,
    GLOBAL,
    HOST_FAULTS_DEFAULT,
    Context,
    EventPoint,
    FunctionPoint,
    GraftCallable,
    Point,
)
from vino.graft.ratelimit import Allowance, TokenBucket
from vino.graft.sandbox import Instance, Sandbox
from vino.graft.txn import _LOCAL, ACTIVE, COMMITTED, Transaction, begin

_perf_ns = time.perf_counter_ns
_SAMPLE_MASK: Final = 15  # the whole protected call is timed on 1 call in 16
_get_ident = threading.get_ident

LIVE: Final = "live"
REMOVED: Final = "removed"


class AbortRecord(NamedTuple):
    """Why one invocation of a graft was aborted (immutable).

    ``host_fault``: the host's own code raised (reason ``host_error``); the graft
    was not charged a failure and the exception went to the caller.

    A named tuple, not a frozen dataclass: one is made on every abort, and a frozen
    dataclass's ``__init__`` cost 1.6 µs against 0.6 µs (measured side by side).
    """

    reason: AbortReason
    detail: str
    at_ns: int
    graft_at_fault: bool = True  # False: not counted towards removal (see CallRefused)
    host_fault: bool = False  # the host's own code raised: the graft is not at fault


@dataclass(slots=True)
class Stats:
    """Counters of one graft (or, summed, of one point).

    ``graft_ns`` is time inside the Wasm entry, measured on every call.
    ``overhead_ns`` is the protection's cost (transaction, copies, validation,
    accounting): the whole call is timed on one committed call in 16
    (``samples``) and the overhead per call seen there is scaled to all commits.
    """

    commits: int = 0
    aborts: collections.Counter[str] = field(default_factory=collections.Counter)
    busy: int = 0  # calls that found the graft busy on another thread (see Graft.invoke)
    hosted_ns: int = 0  # CPU of calls run in another principal's operation (hosting.py)
    unpaid: int = 0  # calls not made: that principal's hosting allowance was spent
    throttled: int = 0  # calls not made: others waited and its share was spent (hold.py)
    graft_ns: int = 0
    samples: int = 0
    sampled_ns: int = 0  # whole protected calls, on sampled calls only
    sampled_graft_ns: int = 0  # time in the graft, on the same calls

    @property
    def invocations(self) -> int:
        return self.commits + sum(self.aborts.values())

    @property
    def overhead_ns(self) -> int:
        if not self.samples:
            return 0
        per_call = (self.sampled_ns - self.sampled_graft_ns) / self.samples
        return int(per_call * self.commits)

    def add(self, other: Stats) -> None:
        self.commits += other.commits
        self.aborts.update(other.aborts)
        self.busy += other.busy
        self.hosted_ns += other.hosted_ns
        self.unpaid += other.unpaid
        self.throttled += other.throttled
        self.graft_ns += other.graft_ns
        self.samples += other.samples
        self.sampled_ns += other.sampled_ns
        self.sampled_graft_ns += other.sampled_graft_ns

    def as_dict(self) -> dict[str, Any]:
        return {"invocations": self.invocations, "commits": self.commits,
                "aborts": dict(self.aborts), "busy": self.busy, "hosted_ns": self.hosted_ns,
                "unpaid": self.unpaid, "throttled": self.throttled,
                "graft_ns": self.graft_ns, "overhead_ns": self.overhead_ns}


def _classify(exc: BaseException) -> tuple[AbortReason, str]:
    if isinstance(exc, GraftAborted):
        return exc.reason, exc.detail
    if isinstance(exc, CallRefused):
        return AbortReason.RESOURCE, str(exc)
    if isinstance(exc, InvalidResult):
        return AbortReason.INVALID_RESULT, str(exc)
    if isinstance(exc, QuotaExceeded):
        return AbortReason.RESOURCE, str(exc)
    if isinstance(exc, Forbidden):
        return AbortReason.FORBIDDEN_CALL, str(exc)
    if isinstance(exc, Doomed):
        return exc.reason, exc.detail
    if isinstance(exc, LockTimeout):
        return AbortReason.LOCK_TIMEOUT, str(exc)
    if isinstance(exc, TimeoutError):
        return AbortReason.TIMEOUT, str(exc)
    if isinstance(exc, WildPointer):
        return AbortReason.TRAP, f"wild pointer passed to a graft-callable: {exc}"
    return AbortReason.HOST_ERROR, f"{type(exc).__name__}: {exc}"


# The exceptions that blame the graft (every class ``_classify`` names); any other is
# the host's own bug. Doomed is here because dooms are never for a host error.
_GRAFT_FAULTS: Final = (GraftAborted, CallRefused, InvalidResult, QuotaExceeded, Forbidden,
                        Doomed, LockTimeout, TimeoutError, WildPointer)


def _is_host_fault(exc: BaseException) -> bool:
    """True if ``exc`` is the host's own bug, not something to blame the graft for.

    One ``isinstance``: the abort path classifies an exception once (``_abort``), not
    here as well (``_classify`` formats the detail, which a type test does not need).
    """
    return not isinstance(exc, _GRAFT_FAULTS)


# Where a function-point call is, for telling host faults from graft faults.
_ENCODE: Final = "encode"
_GUEST: Final = "graft-callable"
_DECODE: Final = "decode"


class Graft:
    """One installed graft: a module instance bound to a point, target and principal."""

    def __init__(self, registry: Registry, point: Point, checked: loader.Checked,
                 principal: Principal, target: Any, remove_after: int) -> None:
        self.registry = registry
        self.point = point
        self.name = checked.name
        self.digest = checked.digest
        self.principal = principal
        self.target = target
        self.remove_after = remove_after
        self.state = LIVE
        self.failures = 0
        self.aborts: collections.deque[AbortRecord] = collections.deque(
            maxlen=limits.ABORTS_KEPT)
        self.removal: AbortRecord | None = None  # why it was removed, if it was
        # Invariant: events not yet emitted (failures.Observers); appended under the
        # graft's store lock, emitted by whoever releases it (``_flush``).
        self._events: list[tuple[str, AbortRecord | None, BaseException | None]] = []
        self.stats = Stats()
        self.logs: collections.deque[bytes] = collections.deque(maxlen=limits.LOG_LINES_KEPT)
        self.logs_dropped = 0
        self._log_calls = 0  # lines logged by the call that started at _log_call_ns
        self._log_call_ns = 0
        # Invariant: handles holds exactly the live kalloc blocks; their bytes and count are
        # charged to principal (kalloc_bytes, handles) until freed or the graft is removed.
        self.handles: dict[int, bytearray] = {}
        self._next_handle = 1
        self.mem_charged = 0  # bytes of linear memory charged to principal
        self._memory_over = False  # went over its quota: removed at once (see _account_memory)
        self._mutex = threading.Lock()
        # Invariant: _args holds the inputs of the entry invocation in progress and is None
        # outside one (a finished call's inputs are not kept: not for default(), not alive).
        self._args: tuple[Any, ...] | None = None
        self.context: Context | None = None  # the other contexts' marker (see context_of)
        self._txn = Transaction(None, self)
        self._txn.state = COMMITTED
        self._cpu_total_ns = int(principal.quota.cpu_total_s * 1e9)
        self._undo_quota = principal.quota.undo_entries
        self._usage = principal.usage
        # Invariant: during a call, the allowance of the principal it is hosted for (who
        # pays, hosting.py), or None for its own principal's call (set by _pay).
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
        self._ctx = self._call0[0]
        self._ticks = registry.sandbox.ticker.counter
        self._deadline_tick = -1  # ticker's count when the store's deadline was last renewed
        self._message = (self.instance.func("vino_message", (I32,), (I32,))
                         if checked.has_message else None)
        self.buffer_offset = 0
        self.buffer = memoryview(b"")

    def __repr__(self) -> str:
        return (f"Graft({self.name!r}, point={self.point.name!r}, target={self.target!r}, "
                f"state={self.state})")

    # ---- install-time -----------------------------------------------------------------
    def _bind_buffer(self) -> Transaction:
        """Ask the graft where its buffer is (protected) and bounds-check it.

        Returns vino_buffer()'s transaction still open: the install commits it once
        every check passed, or aborts it, so a rejected install changes nothing.
        """
        txn = self._begin()
        vino_buffer = self.instance_func("vino_buffer")
        self.context = Context.INSTALL
        try:
            rc = vino_buffer.call0()
        finally:
            self.context = None
        if rc != fastcall.OK:
            try:
                reason, detail = self._fault(rc, txn, vino_buffer)
            except BaseException:  # the host's own fault: the install fails with it
                txn.abort()
                raise
            txn.abort()
            raise GraftRejected(self.name, self.point.name,
                                f"vino_buffer() failed ({reason.value}): {detail}")
        try:
            off = self.instance_func("vino_buffer").result_i32() & 0xFFFFFFFF
            size = self.memory.refresh()
            need = self.point.buffer_size
            if off + need > size:
                raise GraftRejected(self.name, self.point.name,
                                    f"vino_buffer() returned offset {off}; {need} bytes from "
                                    f"there do not fit in linear memory of {size} bytes")
            self.buffer_offset = off
            self.buffer = self.memory.window(off, need)
        except BaseException:
            txn.abort()
            raise
        return txn

    def instance_func(self, name: str) -> fastcall.RawFunc:
        assert self.instance is not None
        return self.instance.func(name, (), (I32,))

    # ---- the protected call ----------------------------------------------------------
    def _begin(self) -> Transaction:
        """Start this graft's transaction (the one reusable object) as a child of the current."""
        txn = self._txn
        ts = _LOCAL.ts
        txn.reset(ts)
        txn.undo_room = self._undo_quota - self._usage.undo_entries
        txn.budget_ns = self.budget_ns
        txn.start_ns = time.perf_counter_ns()
        hold = ts.hold
        txn.wall_deadline_ns = hold.deadline_ns(self.principal, txn.start_ns) if hold else 0
        return txn

    def _failure(self, rc: int, txn: Transaction,
                 func: fastcall.RawFunc | None = None) -> VinoError:
        """The exception that aborts a guest call that did not return (rc != OK)."""
        if rc == fastcall.NO_STACK:
            return self._no_stack(txn)
        return GraftAborted(*self._fault(rc, txn, func), graft=self.name)

    # ---- native stack safety (stack.py) ---------------------------------------------------
    def _stack_detail(self) -> str:
        guard = self.registry.sandbox.stack_guard
        left = guard.left() if guard is not None else 0
        need = guard.need if guard is not None else self.registry.sandbox.stack_need
        return (f"{left // 1024} KiB of native stack left on this thread; a graft call needs "
                f"{need // 1024} KiB (MAX_WASM_STACK + HOST_STACK_RESERVE)")

    def _no_stack(self, txn: Transaction) -> CallRefused:
        """The guard refused the call: blame the enclosing graft, if any, else the host."""
        enclosing = _enclosing_graft(txn.parent)
        where = f"{self.name!r} at {self.point.name}"
        if enclosing is not None:
            detail = self._stack_detail()
            enclosing.doom(AbortReason.RESOURCE, f"its nested call of graft {where} was refused: "
                           f"{detail} (nested graft calls pile up on one stack)")
            return CallRefused(f"not called: {detail}; the enclosing graft "
                               f"{enclosing.graft.name!r} nested it and is aborted")
        return CallRefused(f"not called: {self._stack_detail()}; the host thread's stack is too "
                           "small, not the graft's fault (kept)")

    def _too_deep(self, parent: Transaction) -> bool:
        """True (and the enclosing graft doomed, the refusal recorded) if calling this graft
        under ``parent`` would nest graft calls more than ``MAX_GRAFT_NESTING`` deep."""
        depth = 0
        enclosing = None
        t: Transaction | None = parent
        while t is not None:
            if t.graft is not None:
                depth += 1
                enclosing = enclosing or t
            t = t.parent
        if depth < limits.MAX_GRAFT_NESTING or enclosing is None:
            return False
        what = (f"graft calls nested {depth + 1} deep on one thread; the limit is "
                f"{limits.MAX_GRAFT_NESTING} (MAX_GRAFT_NESTING)")
        enclosing.doom(AbortReason.RESOURCE,
                       f"{what}: its call of graft {self.name!r} at {self.point.name} was refused")
        rec = AbortRecord(AbortReason.RESOURCE, f"not called: {what}; the enclosing graft "
                          f"{enclosing.graft.name!r} nested it and is aborted",
                          time.monotonic_ns(), graft_at_fault=False)
        self.aborts.append(rec)
        self.stats.aborts[rec.reason.value] += 1
        return True

    def _fault(self, rc: int, txn: Transaction,
               func: fastcall.RawFunc | None = None) -> tuple[AbortReason, str]:
        """Why the guest call of ``func`` (default: the entry) stopped (rc is TRAP or ERROR)."""
        if rc == fastcall.NO_STACK:
            return AbortReason.RESOURCE, f"not called: {self._stack_detail()}"
        exc = fastcall.HOST_FAULT.exc
        if exc is not None:
            fastcall.HOST_FAULT.exc = None
            if _is_host_fault(exc):
                raise exc  # the host's bug: the caller's except clause handles it
            return _classify(exc)
        if txn.fault is not None:
            if _is_host_fault(txn.fault):
                raise txn.fault
            return _classify(txn.fault)
        doomed = txn.doomed()
        if doomed is not None and doomed.doom_reason is not None:
            return doomed.doom_reason, doomed.doom_detail
        f = func or self.entry
        return AbortReason.TRAP, traps.describe(f.trap_code if rc == fastcall.TRAP else -1,
                                                f.message)

    def _renew_deadline(self) -> None:
        """Move the store's epoch deadline to the next tick before a call.

        Between calls the epoch moves on, so a store called again after a tick
        or more would start by running the epoch callback (Python, needing the
        GIL) just to push its deadline. Renewing it here, at most once per
        tick, is the same rule the callback applies -- a running graft still
        meets the callback at every tick -- for one cheap FFI call.
        """
        self._deadline_tick = self._ticks.value
        _set_deadline(self._ctx, 1)

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
        self._charge_cpu(txn.ts, t2 - t1)
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

    def _may_hold(self, hold: Hold) -> bool:
        """False (counted in ``Stats.throttled``) if an own call may not start under
        ``hold``: its principal's share of others' waits is spent (hold.py)."""
        if self._allowance is not None or self._share.open():
            return True
        self.stats.throttled += 1
        return False

    def _spend_hold(self, hold: Hold, ns: int) -> None:
        """A call under ``hold`` took ``ns`` of wall time: its principal's, for this hold,
        and of its share while others wait (hosted calls: their payer's, hosting.py)."""
        hold.spend(self.principal, ns)
        if self._allowance is None and hold.contended():
            self._share.spend(ns)

    def _charge_cpu(self, ts: Any, ns: int) -> None:
        """One call's CPU: its principal's, or hosted (hosting.py)."""
        allowance = self._allowance
        if allowance is not None:
            self.stats.hosted_ns += ns
            allowance.spend(ns)
            return
        usage = self._usage
        usage.cpu_ns += ns
        if usage.cpu_ns > self._cpu_total_ns:
            raise QuotaExceeded(f"{self.principal.name}: total CPU quota of "
                                f"{self.principal.quota.cpu_total_s} s used up")

    def invoke(self, args: tuple[Any, ...]) -> Any:
        """Run the function graft on ``args``; on any failure return the default's answer.

        This is the hot path: ``_begin``, the raw call, ``_finish`` and the commit's
        common case are inlined here, and must stay equivalent to them.
        """
        point: FunctionPoint[Any] = self.point  # type: ignore[assignment]
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
            if parent is not None and self._too_deep(parent):
                return point.default(*args)
            if ts.acting is None and parent is None:
                self._allowance = None  # its own principal's call (the common case)
            elif not self._pay(ts.acting, parent):
                return point.default(*args)  # the payer's allowance is spent
            if ts.hold is not None and not self._may_hold(ts.hold):
                return point.default(*args)  # its share of others' waits is spent
            self._args = args
            txn = self._txn  # finished: the mutex admits one invocation at a time
            txn.parent = parent
            txn.ts = ts
            txn.state = ACTIVE
            txn.undo_room = self._undo_quota - self._usage.undo_entries
            txn.start_ns = 0  # set when the guest is entered; 0: it never was
            hold = ts.hold
            txn.wall_deadline_ns = hold.deadline_ns(self.principal, _perf_ns()) if hold else 0
            ts.txn = txn
            st = self.stats
            sample = not st.commits & 15  # time the whole call on 1 call in 16 (_SAMPLE_MASK)
            if sample:
                t0 = _perf_ns()
            stage = _ENCODE
            try:
                wasm_args = point.encode(self.buffer, *args)
                stage = _GUEST
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
                    self._spend_hold(hold, t2 - t1)
                if rc:
                    raise self._failure(rc, txn)
                if self.may_grow and _memory_size(*self._msize) != self.mem_charged:
                    self._account_memory()
                stage = _DECODE
                result = point.decode(self.buffer, self._result[0], *args)
                stage = _GUEST
                if txn.doom_reason is not None or (parent is not None and parent.doomed()):
                    txn.check()
                allowance = self._allowance
                if allowance is None:
                    usage = self._usage
                    usage.cpu_ns += t2 - t1
                    if usage.cpu_ns > self._cpu_total_ns:
                        raise QuotaExceeded(f"{self.principal.name}: total CPU quota of "
                                            f"{self.principal.quota.cpu_total_s} s used up")
                else:
                    st.hosted_ns += t2 - t1
                    allowance.spend(t2 - t1)
                if txn.undo is None and txn.locks is None and txn.deferred is None:
                    txn.state = COMMITTED
                    ts.txn = parent
                else:
                    txn.commit()
            except Exception as exc:
                if (stage is _ENCODE or _is_host_fault(exc)
                        or (stage is _DECODE and not isinstance(exc, InvalidResult))):
                    self._host_fault(txn, exc, f"{point.name} {stage}" if stage is not _GUEST
                                     else "graft-callable or default")
                    if point.host_faults == HOST_FAULTS_DEFAULT:
                        return point.default(*args)
                    raise
                self._abort(txn, exc)
                return point.default(*args)
            st.commits += 1
            st.graft_ns += t2 - t1
            if sample:
                st.sampled_ns += _perf_ns() - t0
                st.sampled_graft_ns += t2 - t1
                st.samples += 1
            return result
        finally:
            self._args = None
            if self.state is not LIVE and self.instance is not None:
                self._free()  # removed from inside this call: its store is free now
            self._mutex.release()
            if self._events:
                self._flush()

    def invoke_event(self, args: tuple[Any, ...]) -> bool:
        """Run one event handler; True if it committed."""
        point = self.point
        if not self._mutex.acquire(False) and not self._enter():
            self.stats.busy += 1  # an event handler that is busy misses this event
            return False
        try:
            if self.state is not LIVE:
                return False
            ts = _LOCAL.ts
            parent = ts.txn
            if parent is not None and self._too_deep(parent):
                return False
            if not self._pay(ts.acting, parent):
                return False  # the payer's allowance is spent: the handler misses it
            if ts.hold is not None and not self._may_hold(ts.hold):
                return False  # its share of others' waits is spent: it misses it
            txn = self._begin()
            t0 = txn.start_ns
            self.context = Context.EVENT
            stage = _ENCODE
            try:
                wasm_args = point.encode(self.buffer, *args)
                stage = _GUEST
                t1, t2 = self._call_handler(txn, self.entry, wasm_args, "handler")
            except Exception as exc:
                if stage is _ENCODE or _is_host_fault(exc):
                    self._host_fault(txn, exc, f"{point.name} encode" if stage is _ENCODE
                                     else "graft-callable")
                    if point.host_faults == HOST_FAULTS_DEFAULT:
                        return False
                    raise
                self._abort(txn, exc)
                return False
            finally:
                self.context = None
            st = self.stats
            st.commits += 1
            st.graft_ns += t2 - t1
            st.samples += 1
            st.sampled_ns += time.perf_counter_ns() - t0
            st.sampled_graft_ns += t2 - t1
            return True
        finally:
            if self.state is not LIVE and self.instance is not None:
                self._free()  # removed from inside this call
            self._mutex.release()
            self._flush()

    def _call_handler(self, txn: Transaction, func: fastcall.RawFunc, wasm_args: tuple[int, ...],
                      what: str, refusable: bool = False) -> tuple[int, int]:
        """Call an event or message handler inside ``txn`` and commit; return (t1, t2).

        A trap, memory over quota, a doom or a negative answer raises instead (the
        caller aborts). The function-point hot path, ``invoke``, inlines its own.
        """
        if self._ticks.value != self._deadline_tick:
            self._renew_deadline()
        t1 = time.perf_counter_ns()
        rc = func.call(*wasm_args) if wasm_args else func.call0()
        t2 = time.perf_counter_ns()
        hold = txn.ts.hold
        if hold is not None:
            self._spend_hold(hold, t2 - t1)
        if rc:
            raise self._failure(rc, txn, func)
        self._account_memory()
        ret = func.result_i32()
        if ret < 0:
            if refusable:
                raise MessageRefused(self.name, ret)
            raise InvalidResult(f"{what} returned {ret}")
        self._finish(txn, t1, t2)
        return t1, t2

    def _abort(self, txn: Transaction, exc: BaseException) -> AbortRecord:
        reason, detail = _classify(exc)
        # Stopped because a caller's transaction was doomed (its lock wanted, its undo log
        # full), not for anything of its own: abort, but do not blame this graft.
        caller = txn.parent.doomed() if txn.parent is not None else None
        callers_doom = (txn.doom_reason is None and caller is not None
                        and reason is caller.doom_reason and detail == caller.doom_detail)
        if callers_doom:
            detail = f"its caller's transaction was doomed: {detail}"
        if txn.state == ACTIVE:
            failed_before = txn.undo_errors
            txn.abort()
            failed = txn.undo_errors - failed_before
            if failed:  # the installer must learn that the state was not fully restored
                detail += f"; {failed} undo step(s) raised (logged), state not fully restored"
        # An aborted call still used CPU and may have grown its memory: charge both, so
        # failing calls cannot get round the total-CPU quota or hide their pages.
        if txn.start_ns:
            with contextlib.suppress(QuotaExceeded):  # aborting anyway
                self._charge_cpu(txn.ts, max(0, _perf_ns() - txn.start_ns))
        if self.may_grow and self.instance is not None:
            # Over quota: already charged truthfully and marked for removal.
            over_before = self._memory_over
            with contextlib.suppress(QuotaExceeded):
                self._account_memory()
            if self._memory_over and not over_before and reason is AbortReason.TRAP:
                # It took memory past its quota and then stopped (a compiled graft whose
                # frame does not fit takes every page it can first): the memory is the cause.
                reason, detail = AbortReason.RESOURCE, f"memory over quota, then {detail}"
        at_fault = not isinstance(exc, CallRefused) and not callers_doom
        rec = AbortRecord(reason, detail, time.monotonic_ns(), at_fault)
        self.aborts.append(rec)
        self.stats.aborts[reason.value] += 1
        if not at_fault:
            return rec
        self.failures += 1
        self._events.append((failures.ABORT, rec, None))
        if self.failures >= self.remove_after or self._memory_over:
            self._retire(rec)
        return rec

    def _host_fault(self, txn: Transaction, exc: BaseException, where: str) -> AbortRecord:
        """Abort ``txn`` for the host's own exception; keep the graft; note it on ``exc``.

        The caller re-raises ``exc`` (or answers with the default, per the point's
        ``host_faults``). The graft is charged the CPU it used but not a failure:
        it is not removed for the host's bug.
        """
        if txn.state == ACTIVE:
            failed_before = txn.undo_errors
            txn.abort()
            undo_failed = txn.undo_errors - failed_before
        else:
            undo_failed = 0
        if txn.start_ns:
            with contextlib.suppress(QuotaExceeded):  # aborting anyway
                self._charge_cpu(txn.ts, max(0, _perf_ns() - txn.start_ns))
        if self.may_grow and self.instance is not None:
            with contextlib.suppress(QuotaExceeded):
                self._account_memory()
        detail = f"{where}: {type(exc).__name__}: {exc}"
        if undo_failed:
            detail += f"; {undo_failed} undo step(s) raised (logged), state not fully restored"
        rec = AbortRecord(AbortReason.HOST_ERROR, detail, time.monotonic_ns(),
                          graft_at_fault=False, host_fault=True)
        self.aborts.append(rec)
        self.stats.aborts[AbortReason.HOST_ERROR.value] += 1
        self._events.append((failures.HOST_FAULT, rec, exc))
        failures.add_host_note(exc, where, self)
        return rec

    def _flush(self) -> None:
        """Emit the events queued while the store was held (logs, then hooks)."""
        while self._events:
            kind, rec, exc = self._events.pop(0)
            self.registry.observers.emit(kind, self, rec, exc)

    # ---- messages -----------------------------------------------------------------------
    def send(self, data: bytes) -> int:
        """Deliver ``data`` to the graft's ``vino_message`` inside a transaction.

        Returns the graft's (non-negative) answer. Raises ``MessageRefused`` if
        the graft answered negatively (its transaction undone; the graft stays,
        not charged a failure); ``ValueError`` (changing nothing) if the graft
        takes no messages or ``data`` exceeds its buffer; ``NoSuchGraft`` if it
        was removed; ``GraftAborted`` if the message transaction failed (a trap,
        a time-out, ...), after the usual failure handling; and the host's own
        exception if a graft-callable's bug raised (a host fault).
        """
        if self._message is None:
            raise ValueError(f"graft {self.name!r} exports no vino_message")
        if self.state is not LIVE:
            raise NoSuchGraft(f"graft {self.name!r} was removed")
        if len(data) > len(self.buffer):
            raise ValueError(f"message of {len(data)} bytes exceeds the graft's buffer of "
                             f"{len(self.buffer)} bytes")
        if not self._enter():
            raise GraftAborted(AbortReason.LOCK_TIMEOUT, "graft busy", graft=self.name)
        try:
            if self.state is not LIVE:  # removed while we waited for its store
                raise NoSuchGraft(f"graft {self.name!r} was removed")
            ts = _LOCAL.ts
            parent = ts.txn
            if parent is not None and self._too_deep(parent):
                raise GraftAborted(AbortReason.RESOURCE, self.aborts[-1].detail, graft=self.name)
            if not self._pay(ts.acting, parent):
                raise GraftAborted(AbortReason.RESOURCE, "not called: the sender's hosting "
                                   f"allowance for {self.principal.name}'s grafts is spent "
                                   "(Quota.hosted_cpu_per_s)", graft=self.name)
            txn = self._begin()
            self.context = Context.MESSAGE
            try:
                self.buffer[: len(data)] = data
                self._call_handler(txn, self._message, (len(data),), "vino_message",
                                   refusable=True)
                ret = self._message.result_i32()
            except MessageRefused:
                if txn.state == ACTIVE:
                    txn.abort()  # refusing is its right: undone, not a failure
                raise
            except Exception as exc:
                if _is_host_fault(exc):
                    self._host_fault(txn, exc, "graft-callable (message)")
                    raise
                rec = self._abort(txn, exc)
                raise GraftAborted(rec.reason, rec.detail, graft=self.name) from exc
            finally:
                self.context = None
            self.stats.commits += 1
            return ret
        finally:
            if self.state is not LIVE and self.instance is not None:
                self._free()  # removed from inside this call
            self._mutex.release()
            self._flush()

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
        with self._mutex:
            self._retire(None)
        self._flush()

    def _retire(self, why: AbortRecord | None) -> None:
        # Called with the graft's store held (or unused) and no guest code of it running.
        if self.state is LIVE:
            self._unlink_removed(why)
        self._free()

    def _unlink_removed(self, why: AbortRecord | None) -> None:
        self.state = REMOVED
        self.removal = why
        self._events.append((failures.REMOVE, why, None))
        self.registry._unlink(self)

    def _free(self) -> None:
        """Give back every charge and drop the store (idempotent)."""
        if self.instance is not None:  # the first time: no call of it is running any more
            self.registry._retire_stats(self)
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

    # ---- graft-callables common to every point ----------------------------------------
    def kalloc(self, txn: Transaction, size: int) -> int:
        if size <= 0:
            return -1
        p = self.principal
        p.charge("handles", 1)
        try:
            p.charge("kalloc_bytes", size)
        except BaseException:  # whatever went wrong, the handle was not handed out
            p.release("handles", 1)
            raise
        h = self._next_handle
        self._next_handle += 1
        self.handles[h] = bytearray(size)

        def undo() -> None:
            block = self.handles.pop(h, None)
            if block is not None:
                p.release("kalloc_bytes", len(block))
                p.release("handles", 1)

        txn.record(undo)
        return h

    def kfree(self, txn: Transaction, handle: int) -> None:
        block = self.handles.get(handle)
        if block is None:
            raise Forbidden(f"kfree of handle {handle}, which this graft does not hold")
        del self.handles[handle]
        p = self.principal

        def release() -> None:
            p.release("kalloc_bytes", len(block))
            p.release("handles", 1)

        def undo() -> None:
            self.handles[handle] = block
            # Removed meanwhile (an enclosing transaction outlived the graft): _retire has
            # given back every handle it held, so give this one back too.
            if self.state is not LIVE and self.handles.pop(handle, None) is not None:
                release()

        txn.record(undo)
        txn.defer(release)

    def kread(self, txn: Transaction, handle: int, off: int, ptr: int, n: int) -> int:
        block = self.handles.get(handle)
        if block is None or off < 0 or n < 0 or off + n > len(block):
            return -1
        self.memory.write(ptr, bytes(block[off: off + n]))
        return n

    def kwrite(self, txn: Transaction, handle: int, off: int, ptr: int, n: int) -> int:
        block = self.handles.get(handle)
        if block is None or off < 0 or n < 0 or off + n > len(block):
            return -1
        data = self.memory.read(ptr, n)
        old = bytes(block[off: off + n])
        block[off: off + n] = data

        def undo() -> None:
            block[off: off + n] = old

        txn.record(undo)
        return n

    def log(self, txn: Transaction, ptr: int, n: int) -> None:
        n = max(0, min(n, limits.LOG_LINE_MAX))
        line = self.memory.read(ptr, n)
        if txn.start_ns != self._log_call_ns:  # a new call: a new allowance of lines
            self._log_call_ns = txn.start_ns
            self._log_calls = 0
        if self._log_calls >= limits.LOG_LINES_PER_CALL:
            self.logs_dropped += 1
            return
        p = self.principal
        if self._allowance is not None:  # hosted: another's call cannot drain it
            try:
                p.charge("log_bytes", len(line))
            except QuotaExceeded:
                self.logs_dropped += 1
                return
        else:
            p.charge("log_bytes", len(line))
        if self.context is Context.INSTALL:  # a rejected install must change nothing
            txn.record(lambda: p.release("log_bytes", len(line)))
        self._log_calls += 1
        self.logs.append(line)


# The common graft-callables, bound through the current transaction.
def _now() -> int:
    return time.monotonic_ns()


def _cur() -> Transaction:
    txn = _LOCAL.ts.txn
    if txn is None or txn.graft is None:
        raise RuntimeError("graft-callable called outside a graft invocation")
    return txn


def _with_graft(method: Callable[..., int | None]) -> Callable[..., int | None]:
    def call(*args: int) -> int | None:
        txn = _cur()
        return method(txn.graft, txn, *args)

    return call


PythonGraft = Callable[..., Any]


def _compiled(pt: Point, source: loader.Source | PythonGraft, name: str | None
              ) -> tuple[loader.Source, str | None]:
    """A Python graft (a function, a ``.py`` path or Python text) compiled for ``pt``.

    Any other source passes through unchanged. A Python graft that cannot be
    compiled raises ``PythonGraftError`` (a ``GraftRejected``): nothing changed.
    """
    from vino.pygraft import compile_function, compile_source, is_python

    if not callable(source) and not is_python(source):
        return source, name
    if pt.layout is None:
        raise GraftRejected(name or "python", pt.name,
                            "this point declares no layout, which Python grafts need")
    if callable(source):
        out = compile_function(source, pt.layout)
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise GraftRejected(path.name, pt.name, f"cannot read {path}: {exc}") from None
        out = compile_source(text, pt.layout, filename=str(path))
    else:
        assert isinstance(source, str)
        out = compile_source(source, pt.layout, filename="<python graft>", name="python")
    return out.wasm, name or out.name


P = TypeVar("P", FunctionPoint[Any], EventPoint)


class Registry:
    """Points, grafts, the sandbox and the locks of one host program.

    ``remove_after``: failed calls after which a graft is removed (1: at its first
    failure). ``lock_timeout_s``: how long a lock waiter waits before the holder is
    doomed. Failures are logged under the ``vino`` logger and passed to the hooks
    registered with ``on_abort`` / ``on_remove``; ``report()`` lists them.
    """

    def __init__(self, *, sandbox: Sandbox | None = None, lock_timeout_s: float =
                 limits.LOCK_TIMEOUT_S, remove_after: int = limits.REMOVE_AFTER_FAILURES,
                 tick_s: float = limits.EPOCH_TICK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        fastcall.check_internals()
        self.clock = clock  # seconds; the install rate's (tests pass a fake one)
        # Each principal's bucket of install attempts, held weakly: a principal nobody
        # else keeps takes its bucket with it.
        self._installs: weakref.WeakKeyDictionary[Principal, TokenBucket] = (
            weakref.WeakKeyDictionary())
        # What each principal's operations may spend in other principals' grafts.
        self.hosting = hosting.Hosting(clock)
        # Each principal's share of the time others wait for a shared lock.
        self.shares = Shares(clock)
        self.sandbox = sandbox or Sandbox(tick_s)
        self.locks = LockManager(lock_timeout_s)
        self.remove_after = remove_after
        self.points: dict[str, Point] = {}
        self._linkers: dict[str, tuple[wasmtime.Linker, list[Any]]] = {}
        self._pres: dict[tuple[str, str], wasmtime.InstancePre] = {}
        self._mutex = threading.RLock()
        self.observers = failures.Observers()
        self.retired = Stats()  # stats of removed grafts, so point totals survive removal
        self._retired_by_point: dict[str, Stats] = {}

    # ---- points -------------------------------------------------------------------------
    def declare(self, point: P) -> P:
        """Register ``point`` and link its graft-callables; return it (with its type).

        Raises ``ValueError`` if a point of that name is already declared.
        """
        with self._mutex:
            if point.name in self.points:
                raise ValueError(f"graft point {point.name!r} is already declared")
            linker = wasmtime.Linker(self.sandbox.engine)
            keep: list[Any] = []
            for name, (params, results) in loader.COMMON_CALLABLES.items():
                fn: Callable[..., int | None] = (_now if name == "now" else
                                                 self._lock if name == "lock" else
                                                 _with_graft(getattr(Graft, name)))
                fastcall.define_host(linker, "vino", name, params, results, fn, keep)
            if isinstance(point, FunctionPoint):
                fastcall.define_host(linker, "vino", "default", *loader.DEFAULT_CALLABLE,
                                     _run_default, keep)
            for c in point.callables:
                fastcall.define_host(linker, "vino", c.name, c.params, c.results,
                                     _bind_callable(c), keep)
            self._linkers[point.name] = (linker, keep)
            point.registry = self
            self.points[point.name] = point
            self._retired_by_point[point.name] = Stats()
        return point

    def _lock(self, lock_id: int) -> int:
        txn = _cur()
        resolve = txn.graft.point.lock_resolver
        lk = resolve(txn, lock_id) if resolve is not None else None
        if lk is None:
            return -1
        self.locks.acquire(lk, txn)
        return 0

    def _instance_pre(self, point: Point, checked: loader.Checked) -> wasmtime.InstancePre:
        """The linked module: cached if a graft of it was installed, else made (not cached:
        an install that fails leaves nothing behind, see ``_remember``)."""
        pre = self._pres.get((point.name, checked.digest))
        if pre is None:
            pre = self._linkers[point.name][0].instantiate_pre(checked.module)
        return pre

    def _remember(self, point: Point, checked: loader.Checked, pre: wasmtime.InstancePre,
                  principal: Principal) -> None:
        """An install succeeded: cache its linked module and its checks, in the
        installer's share of the cache (caller locks)."""
        self._pres[(point.name, checked.digest)] = pre
        dropped = set(loader.keep(self.sandbox, point, checked, principal))
        if dropped:  # Invariant: _pres holds only digests the sandbox keeps (bounded there)
            for key in [k for k in self._pres if k[1] in dropped]:
                del self._pres[key]

    def _point(self, point: Point | str) -> Point:
        if isinstance(point, str):
            try:
                return self.points[point]
            except KeyError:
                raise ValueError(f"no graft point named {point!r}") from None
        if self.points.get(point.name) is not point:
            raise ValueError(f"graft point {point.name!r} is not declared in this registry")
        return point

    # ---- install / replace / remove -------------------------------------------------
    def check(self, point: Point | str, source: loader.Source | PythonGraft, principal: Principal,
              target: Any = GLOBAL, name: str | None = None) -> loader.Checked:
        """Every load-time check, changing nothing (``vino graft check``).

        Returns the ``Checked`` module. Raises ``GraftRejected`` with the reason,
        ``ValueError`` for a point not declared here.
        """
        pt = self._point(point)
        source, name = _compiled(pt, source, name)
        return loader.check(self.sandbox, pt, source, principal, target, name)

    def install(self, point: Point | str, source: loader.Source | PythonGraft,
                principal: Principal,
                target: Any = GLOBAL, *, name: str | None = None, replace: bool = False,
                remove_after: int | None = None) -> Graft:
        """Check, instantiate and bind a graft; then, and only then, make it live.

        With ``replace=True`` an existing graft of a function point's target is
        replaced atomically: calls see the old graft or the new one, never none; a
        principal may replace only its own graft (a privileged one, any).
        ``source``: ``.wasm`` bytes, a path to a ``.wasm``/``.wat``/``.py`` file,
        WebAssembly text, or a Python graft. ``remove_after``: this graft's own
        number of failures before removal (default: the registry's).
        Raises ``GraftRejected`` (nothing changed, and logged) on any failed check,
        ``ValueError`` for a point not declared here.
        """
        pt = self._point(point)
        try:
            self._rate(pt, principal, name)
            source, name = _compiled(pt, source, name)
            checked = loader.check(self.sandbox, pt, source, principal, target, name)
            with self._mutex:
                old = pt.table.get(target) if isinstance(pt, FunctionPoint) else None
                if old is not None and not replace:
                    raise GraftRejected(checked.name, pt.name,
                                        f"{target!r} already has graft {old.name!r} "
                                        "(use replace=True to replace it)")
                if (old is not None and old.principal is not principal
                        and not principal.privileged):
                    raise GraftRejected(checked.name, pt.name,
                                        f"{principal.name} may not replace graft {old.name!r} "
                                        f"of {old.principal.name}: a principal replaces only "
                                        "its own grafts")
                g = self._build(pt, checked, principal, target, remove_after)
                self._remember(pt, checked, g.pre, principal)
                if isinstance(pt, FunctionPoint):
                    pt.table[target] = g  # the atomic switch
                else:
                    pt.handlers[target] = [*pt.handlers.get(target, ()), g]
        except GraftRejected as exc:
            failures.rejected(exc.graft, exc.point, principal.name, exc.reason)
            raise
        if old is not None:
            old.remove()
        return g

    def _rate(self, pt: Point, principal: Principal, name: str | None) -> None:
        """Take one of ``principal``'s install attempts, or raise ``GraftRejected``
        (before any work) when its rate is spent; privileged principals are exempt."""
        if principal.privileged:
            return
        with self._mutex:
            bucket = self._installs.get(principal)
            if bucket is None:
                q = principal.quota
                bucket = self._installs[principal] = TokenBucket(
                    q.installs_per_s, q.install_burst, self.clock)
        wait = bucket.take()
        if wait > 0:
            q = principal.quota
            raise GraftRejected(name or "graft", pt.name,
                                f"{principal.name} installs too fast: at most "
                                f"{q.installs_per_s:g} installs per second after a burst of "
                                f"{q.install_burst} (Quota.installs_per_s); the next in "
                                f"{wait:.3f} s")

    def _build(self, pt: Point, checked: loader.Checked, principal: Principal, target: Any,
               remove_after: int | None) -> Graft:
        try:
            g = Graft(self, pt, checked, principal, target,
                      remove_after if remove_after is not None else self.remove_after)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:  # Trap: a segment out of bounds
            detail = " ".join(str(exc).split())[:300]
            raise GraftRejected(checked.name, pt.name, f"instantiation failed: {detail}") from None
        except QuotaExceeded as exc:  # its count of grafts, or its share of the host
            raise GraftRejected(checked.name, pt.name, str(exc)) from None
        try:
            txn = g._bind_buffer()
            try:
                if g.state is not LIVE:  # host code under vino_buffer removed it
                    raise GraftRejected(checked.name, pt.name, "removed during vino_buffer()")
                size = g.memory.refresh()
                try:
                    principal.charge("memory_bytes", size + g.table_bytes)
                except QuotaExceeded as exc:
                    raise GraftRejected(checked.name, pt.name, str(exc)) from None
            except BaseException:
                txn.abort()  # undo what vino_buffer() did
                raise
            txn.commit()
        except BaseException:  # rejected, or a host error: g was never linked
            g._retire(None)  # give back what vino_buffer() allocated
            raise
        g.mem_charged = size
        g.table_charged = g.table_bytes
        return g

    def remove(self, graft: Graft, by: Principal | None = None) -> None:
        """``graft.remove(by)``: raises ``Forbidden`` if ``by`` may not remove it."""
        graft.remove(by)

    def on_abort(self, hook: failures.Hook) -> failures.Hook:
        """Call ``hook(graft, record)`` after every abort (host faults included), once
        the transaction is undone and the graft's lock released; returns ``hook``
        (usable as a decorator). A hook that raises is logged and ignored."""
        self.observers.on_abort.append(hook)
        return hook

    def on_remove(self, hook: failures.Hook) -> failures.Hook:
        """Call ``hook(graft, record)`` after every removal (``record`` is ``None`` for
        an explicit one); returns ``hook``. A hook that raises is logged and ignored."""
        self.observers.on_remove.append(hook)
        return hook

    def report(self) -> str:
        """What failed and why: per point, each graft (live or recently removed) with
        its commits, aborts by reason, host faults and why it was removed. Raises
        nothing."""
        return failures.render(self)

    def remove_target(self, target: Any) -> int:
        """Remove every graft installed for ``target`` (at any point); return how many.

        Host code calls this when the object a graft was installed on goes away (a
        file is closed, an address space released), so the graft's memory and
        handles are given back at once instead of when the program ends. Raises
        nothing.
        """
        doomed = [g for g in self.grafts() if g.target is target]
        for g in doomed:
            g.remove()
        return len(doomed)

    def _unlink(self, g: Graft) -> None:
        with self._mutex:
            pt = g.point
            if isinstance(pt, FunctionPoint):
                if pt.table.get(g.target) is g:
                    del pt.table[g.target]
            else:
                hs = pt.handlers.get(g.target)
                if hs and g in hs:
                    rest = [h for h in hs if h is not g]
                    if rest:
                        pt.handlers[g.target] = rest
                    else:
                        del pt.handlers[g.target]

    def _retire_stats(self, g: Graft) -> None:
        """Keep a freed graft's counters in its point's totals (once: its last call ended)."""
        with self._mutex:
            self.retired.add(g.stats)
            self._retired_by_point[g.point.name].add(g.stats)

    # ---- inspection -----------------------------------------------------------------------
    def grafts(self, point: Point | str | None = None) -> list[Graft]:
        """The live grafts of ``point`` (of every point if None); raises ``ValueError``
        for an unknown point."""
        pts = [self._point(point)] if point is not None else list(self.points.values())
        out: list[Graft] = []
        for pt in pts:
            if isinstance(pt, FunctionPoint):
                out.extend(pt.table.values())
            else:
                for hs in pt.handlers.values():
                    out.extend(hs)
        return out

    def point_stats(self, point: Point | str) -> Stats:
        """A point's statistics, its removed grafts included; raises ``ValueError`` for
        an unknown point."""
        pt = self._point(point)
        total = Stats()
        total.add(self._retired_by_point[pt.name])
        for g in self.grafts(pt):
            total.add(g.stats)
        return total

    def snapshot(self) -> dict[str, Any]:
        """Everything an install could change, as plain data (for tests and `vino stats`).
        Raises nothing."""
        principals = {id(g.principal): g.principal for g in self.grafts()}
        return {
            "points": {name: sorted((repr(t), g.name, g.digest) for t, g in
                                    (pt.table.items() if isinstance(pt, FunctionPoint) else
                                     ((t, h) for t, hs in pt.handlers.items() for h in hs)))
                       for name, pt in self.points.items()},
            "usage": {p.name: p.usage.snapshot() for p in principals.values()},
            "locks_held": [lk.name for lk in self.locks.held()],
        }

    def close(self) -> None:
        """Remove every graft and stop the sandbox's ticker. Raises nothing."""
        for g in self.grafts():
            g.remove()
        self.sandbox.close()


def context_of(g: Graft) -> Context | None:
    """The context ``g``'s code is running in now (None: it is not running)."""
    return Context.ENTRY if g._args is not None else g.context


def _enclosing_graft(t: Transaction | None) -> Transaction | None:
    """The nearest graft transaction at or above ``t``."""
    while t is not None and t.graft is None:
        t = t.parent
    return t


def _run_default() -> int:
    """The ``default`` graft-callable: the built-in policy, in a nested transaction.

    Valid only during an entry invocation, on its inputs; anywhere else there are
    no inputs of its own, and the policy's side effects would land outside any call.
    """
    txn = _cur()
    g: Graft = txn.graft
    point: FunctionPoint[Any] = g.point  # type: ignore[assignment]
    if point.encode_result is None:
        raise Forbidden(f"{point.name} offers no default() to grafts")
    args = g._args
    if args is None:
        raise Forbidden(f"default() is valid only during an invocation of {point.entry}; "
                        f"called from {g.context or 'outside any call'}")
    child = begin()
    try:
        result = point.default(*args)
        ret = point.encode_result(g.buffer, result, *args)
    except BaseException:
        child.abort()
        raise
    child.commit()
    return ret


def _bind_callable(c: GraftCallable) -> Callable[..., int | None]:
    fn = c.fn
    if c.contexts == ANY_CONTEXT:
        def call(*args: int) -> int | None:
            return fn(_cur(), *args)

        return call
    valid = c.contexts

    def checked(*args: int) -> int | None:
        txn = _cur()
        ctx = context_of(txn.graft)
        if ctx not in valid:
            raise Forbidden(f"{c.name} is not valid in {ctx or 'no context'} (only in "
                            f"{', '.join(sorted(valid))})")
        return fn(txn, *args)

    return checked


__all__ = ["GLOBAL", "AbortRecord", "EventPoint", "FunctionPoint", "Graft", "Registry", "Stats"]
