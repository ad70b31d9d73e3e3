"""The process scheduler of the reference kernel: a deterministic one-CPU simulation.

What it is. Threads (``Thread``) belong to processes (``proc.Process``), which belong
to process groups (``proc.ProcessGroup``). A thread's work is its *workload*: an
iterable (a list, a generator, an infinite ``itertools.repeat``) of ``Cpu(ns)`` bursts
and ``Wait(ns)`` blocking waits, consumed lazily. Time is simulated on an injected
clock (anything with ``now_ns()`` and ``advance(ns)``); the scheduler advances it.

How it is used::

    sched = Scheduler(clock, quantum_ns=QUANTUM_NS)
    t = sched.spawn(process, [Cpu(500_000), Wait(3_000_000)] * 10, interactive=True)
    sched.run(until_ns=clock.now_ns() + 1_000_000_000)
    sched.latency(t.tid)          # LatencyStats: mean / p50 / p99 in µs

One dispatch, in this order (``run`` repeats it):

1. Wake every blocked thread whose wait has ended (earliest wake first, ties in the
   order they blocked); a woken thread joins the back of its group's run queue.
2. Global level: ``pick_group_policy(groups)`` chooses among the groups that have runnable
   threads, listed in round-robin order; the default returns 0 (round robin).
3. Group level: ``pick_policy(group, runnable)`` chooses among the group's runnable
   threads as ``ThreadInfo`` rows in round-robin order (the ``sched.pick`` candidates,
   see docs/ABI.md); the default returns 0 (round robin). Priority is reported to the
   policy but the default ignores it.
4. Both answers are validated (``validate_pick``: an int with ``0 <= i < n``) before
   any state changes; an invalid answer raises ``InvalidResult`` and nothing changed.
5. The chosen thread runs ``min(quantum, rest of its burst)`` ns, non-preemptively.
   Then threads whose wait ended during the slice are woken (they queue ahead of the
   thread that just ran), the chosen thread goes to the back of its queue if its burst
   continues (or a new ``Cpu`` step follows), else it blocks or is done; its group goes
   to the back of the group rotation.

A workload that raises, or yields something other than ``Cpu``/``Wait``, ends its
thread (``DONE``) and the error propagates out of ``spawn``/``run``; the scheduler's
state stays consistent and ``run`` may be called again.

When nothing is runnable the clock jumps to the next wake-up (idle time); when no
thread is runnable or blocked, ``run`` returns.

Policy slots, one per level: public attributes holding plain callables, the built-in
methods ``_pick_group`` and ``_pick`` until something is plugged in (the kernel's
``sched.pick`` point goes into ``pick_policy``; a test or benchmark may assign its
own, and assigning the built-in back restores it): ``pick_group_policy`` (global) and
``pick_policy`` (per process group). ``Scheduler.set_priority`` is the accessor behind the
graft-callable ``sched_set_priority``; it returns the old priority, which is its undo.
Rights are checked by the caller (the graft point), not here.

Candidate cap: a group with more than ``MAX_PICK_CANDIDATES`` (64) runnable threads
offers only the first 64 in round-robin order. The rest are not starved: every
dispatch sends the thread that ran to the back, so under round robin they reach the
front 64 in turn; a policy that never picks index 0 can starve threads past the cap.

Response latency: each time a thread becomes runnable from outside the CPU (spawned,
or woken from a wait), the time until its next dispatch is one latency sample.
Being preempted at the end of a quantum is not a new sample (it shows in
``waited_ns``).

Determinism: the scheduler uses no randomness and iterates only ordered containers
(dicts in insertion order, a heap with sequence-number tie breaks), so a schedule is
a pure function of the workloads, spawn order, clock start, quantum and policy.
Seeded random workloads therefore give identical schedules (``tests/kernel/test_sched.py``).

Invariants (checked by ``check_invariants``): each thread is in exactly one state
and its bookkeeping matches it; a group's run queue holds exactly its runnable
threads; the blocked heap holds exactly the blocked threads; every thread is filed
under its process's group; CPU time never decreases and sums to the busy time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple, Protocol

from vino.errors import InvalidResult
from vino.kernel import layouts
from vino.kernel.errors import InvalidArgument
from vino.kernel.params import MAX_PICK_CANDIDATES, QUANTUM_NS
from vino.kernel.proc import Process, ProcessGroup

__all__ = [
    "FLAG_INTERACTIVE",
    "MAX_PICK_CANDIDATES",
    "QUANTUM_NS",
    "SCHED_BUFFER_BYTES",
    "Cpu",
    "Dispatch",
    "LatencyStats",
    "SchedClock",
    "Scheduler",
    "Step",
    "Thread",
    "ThreadInfo",
    "ThreadState",
    "Wait",
    "cpu_hog",
    "interactive_loop",
    "pack_threads",
    "unpack_threads",
    "validate_pick",
]

# ---- the sched.pick buffer: its layout is layouts.PICK (docs/ABI.md) -------------------
# QUANTUM_NS and MAX_PICK_CANDIDATES (rows in the buffer) live in kernel/params.py.
_PICK: Final = layouts.PICK
_ROWS: Final = "thread"  # the array of candidate rows
_HEAD: Final = _PICK.field(_ROWS).offset  # bytes before the first row (n and a pad)
_ROW: Final = _PICK.elements(_ROWS, 1)  # one vino_thread row; its pad is "x" bytes
SCHED_BUFFER_BYTES: Final = _PICK.buffer_size
FLAG_INTERACTIVE: Final = 1  # the application marked the thread interactive

_I32_MIN: Final = -(1 << 31)
_I32_MAX: Final = (1 << 31) - 1
_U32_MAX: Final = (1 << 32) - 1


class SchedClock(Protocol):
    """The clock the scheduler needs (``vino.kernel.clock.SimClock`` fits)."""

    def now_ns(self) -> int: ...

    def advance(self, ns: int) -> object: ...  # the return value is ignored


# ---- workloads -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Cpu:
    """A CPU burst of ``ns`` > 0 nanoseconds."""

    ns: int

    def __post_init__(self) -> None:
        _check_positive("Cpu", self.ns)


@dataclass(slots=True, frozen=True)
class Wait:
    """A blocking wait (I/O, sleep) of ``ns`` > 0 nanoseconds."""

    ns: int

    def __post_init__(self) -> None:
        _check_positive("Wait", self.ns)


Step = Cpu | Wait


def _check_positive(kind: str, ns: int) -> None:
    # A zero-length step would let an infinite workload spin without time passing.
    if isinstance(ns, bool) or not isinstance(ns, int) or ns <= 0:
        raise InvalidArgument(f"{kind} needs a positive int of ns, got {ns!r}")


def cpu_hog(burst_ns: int = QUANTUM_NS) -> Iterator[Step]:
    """An endless CPU-bound workload that never blocks."""
    return itertools.repeat(Cpu(burst_ns))


def interactive_loop(burst_ns: int, wait_ns: int, rounds: int | None = None) -> Iterator[Step]:
    """Short bursts separated by waits (an editor, a shell): ``rounds`` times, or forever."""
    pair = (Cpu(burst_ns), Wait(wait_ns))
    cycles = itertools.repeat(pair) if rounds is None else itertools.repeat(pair, rounds)
    return itertools.chain.from_iterable(cycles)


# ---- threads -------------------------------------------------------------------------


class ThreadState(StrEnum):
    RUNNABLE = "runnable"  # has CPU work and is in its group's run queue
    BLOCKED = "blocked"  # waiting; in the wake-up heap
    DONE = "done"  # workload exhausted; never runs again


@dataclass(slots=True, eq=False)
class Thread:
    """A simulated thread. Fields other than ``priority``/``interactive`` are the
    scheduler's; the application may set ``interactive`` at any time."""

    tid: int
    process: Process
    group: ProcessGroup  # the process's group when spawned; must stay equal to it
    priority: int
    interactive: bool
    clock: SchedClock = field(repr=False)
    steps: Iterator[Step] = field(repr=False)
    state: ThreadState = ThreadState.DONE
    # Invariant: cpu_ns only grows; the sum over all threads is the scheduler's busy time.
    cpu_ns: int = 0
    # Invariant: > 0 iff state is RUNNABLE (the rest of the current Cpu step).
    burst_left_ns: int = 0
    # Invariant: set iff state is RUNNABLE (end of its last slice, wake-up or spawn).
    ready_since_ns: int | None = None
    # Invariant: set iff state is BLOCKED.
    wake_at_ns: int | None = None
    # Invariant: set only if RUNNABLE; a latency sample is pending since this time.
    woke_at_ns: int | None = None
    latencies_ns: list[int] = field(default_factory=list, repr=False)

    @property
    def waited_ns(self) -> int:
        """Time spent runnable since it last ran (0 unless runnable)."""
        if self.ready_since_ns is None:
            return 0
        return self.clock.now_ns() - self.ready_since_ns

    def info(self) -> ThreadInfo:
        """This thread as a ``sched.pick`` candidate row."""
        return ThreadInfo(
            tid=self.tid,
            priority=self.priority,
            cpu_ns=self.cpu_ns,
            waited_ns=self.waited_ns,
            flags=FLAG_INTERACTIVE if self.interactive else 0,
        )


class ThreadInfo(NamedTuple):
    """One candidate row of the ``sched.pick`` buffer (docs/ABI.md).

    A named tuple, so a row is its values in ``layouts.THREAD``'s order (pads aside): the
    ``sched.pick`` encoder packs a list of rows without reading a field by name, and a
    row costs half a frozen dataclass's to make (one per runnable thread per pick).
    Invariant: the fields are ``layouts.THREAD``'s non-pad fields, in order
    (tests/kernel/test_layouts.py).
    """

    tid: int  # u32
    priority: int  # i32
    cpu_ns: int  # u64, CPU time used so far
    waited_ns: int  # u64, time runnable since it last ran
    flags: int  # u32, FLAG_INTERACTIVE


def pack_threads(rows: Sequence[ThreadInfo]) -> bytes:
    """The ``sched.pick`` buffer contents as ``layouts.PICK`` lays them out: the header
    (``n``), then one ``vino_thread`` row each.

    Returns exactly the header and ``len(rows)`` rows (the graft point copies them to
    the start of the graft's buffer). More than ``MAX_PICK_CANDIDATES`` rows, or a field
    out of its type's range, raises ``ValueError``.
    """
    if len(rows) > MAX_PICK_CANDIDATES:
        raise InvalidArgument(
            f"{len(rows)} rows; the sched.pick buffer holds {MAX_PICK_CANDIDATES}")
    out = bytearray(_PICK.rows(_ROWS, len(rows)).size)
    _PICK.rows(_ROWS, 0).pack_into(out, 0, len(rows))
    for i, r in enumerate(rows):
        try:
            _ROW.pack_into(out, _HEAD + _ROW.size * i,
                           r.tid, r.priority, r.cpu_ns, r.waited_ns, r.flags)
        except struct.error as e:
            raise InvalidArgument(f"row {i} ({r}) does not fit the sched.pick layout: {e}") from e
    return bytes(out)


def unpack_threads(data: bytes) -> list[ThreadInfo]:
    """Inverse of ``pack_threads`` (for the default inside a graft and for tests)."""
    (n,) = _PICK.rows(_ROWS, 0).unpack_from(data, 0)
    if n > MAX_PICK_CANDIDATES or len(data) < _HEAD + _ROW.size * n:
        raise InvalidArgument(f"sched.pick buffer claims {n} rows in {len(data)} bytes")
    return [ThreadInfo(*_ROW.unpack_from(data, _HEAD + _ROW.size * i)) for i in range(n)]


def validate_pick(index: object, n: int) -> int:
    """The ``sched.pick`` validator: ``index`` must be an int with ``0 <= index < n``.

    Returns it; otherwise raises ``InvalidResult`` (a graft is then aborted and the
    default runs; a plain-Python policy that does this has a bug).
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise InvalidResult(f"pick {index!r} is not an index into {n} candidates")
    return index


@dataclass(slots=True, frozen=True)
class Dispatch:
    """One slice of the schedule: ``tid`` (of group ``pgid``) ran ``ran_ns`` from ``start_ns``."""

    start_ns: int
    tid: int
    pgid: int
    ran_ns: int


@dataclass(slots=True, frozen=True)
class LatencyStats:
    """Response latency of one thread, in µs (nearest-rank percentiles)."""

    samples: int
    mean_us: float
    p50_us: float
    p99_us: float


def _percentile(sorted_ns: Sequence[int], pct: float) -> int:
    rank = max(1, math.ceil(pct / 100 * len(sorted_ns)))
    return sorted_ns[rank - 1]


@dataclass(slots=True, eq=False)
class _GroupState:
    group: ProcessGroup
    # Invariant: exactly the group's RUNNABLE threads, front = next in round robin.
    # A dict used as an ordered queue: O(1) removal and move-to-back.
    runq: dict[int, Thread] = field(default_factory=dict)
    # Invariant: every thread ever spawned into this group, in spawn order.
    threads: dict[int, Thread] = field(default_factory=dict)


# ---- the scheduler ---------------------------------------------------------------------


class Scheduler:
    """Two-level round-robin scheduler over process groups, one simulated CPU.

    Not thread-safe: one caller drives ``run``. Its policies are the two slots
    ``pick_group_policy`` and ``pick_policy`` (module doc).
    """

    def __init__(
        self, clock: SchedClock, quantum_ns: int = QUANTUM_NS, *, trace: bool = False
    ) -> None:
        _check_positive("quantum", quantum_ns)
        self.clock = clock
        self.quantum_ns = quantum_ns
        self.start_ns = clock.now_ns()
        # Every dispatch in order, when asked for (memory grows with the run).
        self.trace: list[Dispatch] | None = [] if trace else None
        self._tids = itertools.count(1)
        self._threads: dict[int, Thread] = {}
        # Invariant: one entry per group that ever had a thread; order = group
        # round robin (front is next); a group moves to the back when it runs.
        self._groups: dict[ProcessGroup, _GroupState] = {}
        # Invariant: exactly one entry (wake_at_ns, seq, tid) per BLOCKED thread.
        self._blocked: list[tuple[int, int, int]] = []
        self._seq = itertools.count()
        # Invariant: busy_ns == sum of cpu_ns over all threads.
        self.busy_ns = 0
        self.idle_ns = 0
        self._cpu_seen: dict[int, int] = {}
        # The policy slots (module doc): the built-in round robin until plugged in.
        self.pick_group_policy: Callable[[list[ProcessGroup]], int] = self._pick_group
        self.pick_policy: Callable[[ProcessGroup, list[ThreadInfo]], int] = self._pick

    # ---- the built-in policies (the slots' defaults) ------------------------------------

    def _pick_group(self, groups: list[ProcessGroup]) -> int:
        """Global policy: index into ``groups`` (those with runnable threads, in
        round-robin order, never empty). Default: round robin, the front one."""
        return 0

    def _pick(self, group: ProcessGroup, runnable: list[ThreadInfo]) -> int:
        """``sched.pick``: index into ``runnable`` (the group's runnable threads, first
        ``MAX_PICK_CANDIDATES`` in round-robin order, never empty). Default: round
        robin, the front one."""
        return 0

    # ---- accessors ----------------------------------------------------------------------

    def set_priority(self, tid: int, priority: int) -> int:
        """Set a thread's priority; returns the old one (``set_priority(tid, old)``
        undoes it). The caller checks rights. Unknown tid: ``LookupError``;
        priority outside i32: ``ValueError``."""
        _check_i32("priority", priority)
        t = self.thread(tid)
        old = t.priority
        t.priority = priority
        return old

    # ---- threads ------------------------------------------------------------------------

    def spawn(
        self,
        process: Process,
        workload: Iterable[Step],
        *,
        priority: int = 0,
        interactive: bool = False,
    ) -> Thread:
        """Create a thread of ``process`` running ``workload`` from now.

        The process must belong to a group (``ValueError`` otherwise). The first step
        is taken at once: a ``Cpu`` step makes it runnable (a latency sample starts),
        a ``Wait`` blocks it, an empty workload leaves it done.
        """
        if process.group is None:
            raise InvalidArgument(f"process {process.pid} has no process group")
        _check_i32("priority", priority)
        tid = next(self._tids)
        if tid > _U32_MAX:
            raise InvalidArgument("thread ids exhausted (u32)")
        t = Thread(
            tid=tid,
            process=process,
            group=process.group,
            priority=priority,
            interactive=interactive,
            clock=self.clock,
            steps=iter(workload),
        )
        self._threads[tid] = t
        gs = self._groups.get(t.group)
        if gs is None:
            gs = self._groups[t.group] = _GroupState(t.group)
        gs.threads[tid] = t
        self._next_step(t, self.clock.now_ns(), response=True)
        return t

    def thread(self, tid: int) -> Thread:
        try:
            return self._threads[tid]
        except KeyError:
            raise LookupError(f"no thread {tid}") from None

    @property
    def threads(self) -> list[Thread]:
        """All threads ever spawned, in spawn order."""
        return list(self._threads.values())

    def runnable(self, group: ProcessGroup) -> list[ThreadInfo]:
        """The ``sched.pick`` candidates of ``group`` right now (may be empty)."""
        gs = self._groups.get(group)
        if gs is None:
            return []
        return [t.info() for t in itertools.islice(gs.runq.values(), MAX_PICK_CANDIDATES)]

    def latency(self, tid: int) -> LatencyStats:
        """Response latency of thread ``tid``; ``ValueError`` if it has no samples."""
        samples = sorted(self.thread(tid).latencies_ns)
        if not samples:
            raise InvalidArgument(f"thread {tid} has no latency samples yet")
        return LatencyStats(
            samples=len(samples),
            mean_us=sum(samples) / len(samples) / 1000,
            p50_us=_percentile(samples, 50) / 1000,
            p99_us=_percentile(samples, 99) / 1000,
        )

    # ---- simulation -----------------------------------------------------------------------

    def run(self, *, until_ns: int | None = None, steps: int | None = None) -> int:
        """Dispatch until the clock reaches ``until_ns``, ``steps`` dispatches were
        made, or no thread is runnable or blocked — whichever comes first.

        A slice that starts before ``until_ns`` runs to its end (it may overshoot), so
        ``run(until_ns=a); run(until_ns=b)`` schedules exactly like ``run(until_ns=b)``.
        Idle jumps count as no step. Returns the number of dispatches made.
        """
        if until_ns is None and steps is None:
            raise InvalidArgument("run needs until_ns or steps (workloads may be endless)")
        if steps is not None and steps < 0:
            raise InvalidArgument(f"steps must be >= 0, got {steps}")
        made = 0
        while steps is None or made < steps:
            now = self.clock.now_ns()
            if until_ns is not None and now >= until_ns:
                break
            self._wake_due(now)
            groups = [gs.group for gs in self._groups.values() if gs.runq]
            if groups:
                self._dispatch(groups, now)
                made += 1
                continue
            if not self._blocked:
                break  # every thread is done
            target = self._blocked[0][0]
            if until_ns is not None:
                target = min(target, until_ns)
            self.idle_ns += target - now
            self.clock.advance(target - now)
        return made

    def _dispatch(self, groups: list[ProcessGroup], now: int) -> None:
        group = groups[validate_pick(self.pick_group_policy(groups), len(groups))]
        gs = self._groups[group]
        rows = self.runnable(group)
        t = gs.runq[rows[validate_pick(self.pick_policy(group, rows), len(rows))].tid]
        # Validated; state changes from here on.
        if t.woke_at_ns is not None:
            t.latencies_ns.append(now - t.woke_at_ns)
            t.woke_at_ns = None
        ran = min(self.quantum_ns, t.burst_left_ns)
        del gs.runq[t.tid]
        t.ready_since_ns = None
        self.clock.advance(ran)
        end = now + ran
        t.cpu_ns += ran
        t.burst_left_ns -= ran
        self.busy_ns += ran
        if self.trace is not None:
            self.trace.append(Dispatch(now, t.tid, group.pgid, ran))
        self._groups[group] = self._groups.pop(group)  # to the back of the rotation
        # Threads that woke during the slice queue ahead of the one that just ran.
        self._wake_due(end)
        if t.burst_left_ns > 0:
            self._make_ready(t, end, response=False)
        else:
            self._next_step(t, end, response=False)

    def _wake_due(self, now: int) -> None:
        while self._blocked and self._blocked[0][0] <= now:
            wake_at, _, tid = heapq.heappop(self._blocked)
            t = self._threads[tid]
            t.wake_at_ns = None
            self._next_step(t, wake_at, response=True)

    def _next_step(self, t: Thread, at_ns: int, *, response: bool) -> None:
        """Take ``t``'s next workload step at ``at_ns``: run, block, or finish."""
        try:
            # The workload is the caller's Python: whatever its type says, it may yield anything.
            step: object = next(t.steps, None)
        except Exception:
            self._finish(t)  # the workload itself failed: the thread ends, state stays sound
            raise
        if isinstance(step, Cpu):
            t.burst_left_ns = step.ns
            self._make_ready(t, at_ns, response=response)
        elif isinstance(step, Wait):
            t.state = ThreadState.BLOCKED
            t.wake_at_ns = at_ns + step.ns
            heapq.heappush(self._blocked, (t.wake_at_ns, next(self._seq), t.tid))
        elif step is None:
            self._finish(t)
        else:
            self._finish(t)
            raise TypeError(f"thread {t.tid}: workload yielded {step!r}, not Cpu or Wait")

    def _finish(self, t: Thread) -> None:
        t.state = ThreadState.DONE
        t.burst_left_ns = 0

    def _make_ready(self, t: Thread, at_ns: int, *, response: bool) -> None:
        t.state = ThreadState.RUNNABLE
        t.ready_since_ns = at_ns
        if response:
            t.woke_at_ns = at_ns
        self._groups[t.group].runq[t.tid] = t

    # ---- checking -------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` naming the first broken invariant (see module doc)."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise AssertionError(f"scheduler invariant broken: {what}")

        heap_tids = [tid for _, _, tid in self._blocked]
        blocked_tids = set(heap_tids)
        need(len(heap_tids) == len(blocked_tids), "a thread is in the heap twice")
        filed: dict[int, ProcessGroup] = {}
        for group, gs in self._groups.items():
            need(gs.group is group, f"group {group.pgid} filed under another key")
            for tid, t in gs.threads.items():
                need(tid not in filed, f"thread {tid} filed in two groups")
                filed[tid] = group
                need(t.group is group, f"thread {tid} filed under the wrong group")
            need(
                list(gs.runq) == [tid for tid in gs.runq if tid in gs.threads],
                f"group {group.pgid} queues a thread it does not own",
            )
            ready = {tid for tid, t in gs.threads.items() if t.state is ThreadState.RUNNABLE}
            need(set(gs.runq) == ready, f"group {group.pgid} run queue != runnable threads")
        need(set(filed) == set(self._threads), "threads and group membership disagree")
        cpu_total = 0
        for tid, t in self._threads.items():
            need(t.process.group is t.group, f"thread {tid}'s process moved to another group")
            runnable = t.state is ThreadState.RUNNABLE
            blocked = t.state is ThreadState.BLOCKED
            need((t.burst_left_ns > 0) == runnable, f"thread {tid}: burst vs state {t.state}")
            need((t.ready_since_ns is not None) == runnable, f"thread {tid}: ready vs state")
            need((t.wake_at_ns is not None) == blocked, f"thread {tid}: wake time vs state")
            need((tid in blocked_tids) == blocked, f"thread {tid}: wake heap vs state")
            need(t.woke_at_ns is None or runnable, f"thread {tid}: pending sample, not runnable")
            need(t.cpu_ns >= self._cpu_seen.get(tid, 0), f"thread {tid}: cpu time went back")
            need(all(s >= 0 for s in t.latencies_ns), f"thread {tid}: negative latency")
            self._cpu_seen[tid] = t.cpu_ns
            cpu_total += t.cpu_ns
        for wake_at, _, tid in self._blocked:
            need(self._threads[tid].wake_at_ns == wake_at, f"thread {tid}: heap wake time")
        need(cpu_total == self.busy_ns, "cpu time does not sum to busy time")
        elapsed = self.clock.now_ns() - self.start_ns
        need(self.busy_ns + self.idle_ns <= elapsed, "more time accounted than elapsed")


def _check_i32(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not _I32_MIN <= value <= _I32_MAX:
        raise InvalidArgument(f"{what} must be an i32, got {value!r}")
