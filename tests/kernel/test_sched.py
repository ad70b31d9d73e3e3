"""The reference kernel's scheduler: round robin at both levels, policy hooks, the
sched.pick buffer layout, invariants under random workloads, determinism."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vino.errors import InvalidResult
from vino.kernel.clock import SimClock
from vino.kernel.proc import Process, ProcessGroup, User, new_pgid, new_pid
from vino.kernel.sched import (
    FLAG_INTERACTIVE,
    MAX_PICK_CANDIDATES,
    SCHED_BUFFER_BYTES,
    Cpu,
    Dispatch,
    Scheduler,
    Step,
    ThreadInfo,
    ThreadState,
    Wait,
    cpu_hog,
    interactive_loop,
    pack_threads,
    unpack_threads,
)

MS = 1_000_000  # ns
Q = 10 * MS  # the quantum used by most tests


USER = User(1000, "alice")


def group(name: str = "") -> ProcessGroup:
    return ProcessGroup(new_pgid(), USER, name)


def proc(g: ProcessGroup) -> Process:
    return Process(new_pid(), USER, "p", g)


def new_sched(quantum_ns: int = Q, start_ns: int = 0) -> tuple[Scheduler, SimClock]:
    clock = SimClock(start_ns)
    return Scheduler(clock, quantum_ns, trace=True), clock


def trace_of(s: Scheduler) -> list[Dispatch]:
    assert s.trace is not None
    return s.trace


def favour_interactive(group: ProcessGroup, runnable: list[ThreadInfo]) -> int:
    for i, row in enumerate(runnable):
        if row.flags & FLAG_INTERACTIVE:
            return i
    return 0


# ---- round robin ----------------------------------------------------------------------


def test_round_robin_gives_equal_cpu_shares_within_a_group() -> None:
    s, _ = new_sched()
    g = group()
    hogs = [s.spawn(proc(g), cpu_hog()) for _ in range(3)]
    assert s.run(steps=300) == 300
    assert [t.cpu_ns for t in hogs] == [100 * Q] * 3
    assert [d.tid for d in trace_of(s)[:6]] == [1, 2, 3, 1, 2, 3]
    s.run(until_ns=s.clock.now_ns() + 17 * Q + 3)  # stop at an awkward time
    shares = [t.cpu_ns for t in hogs]
    assert max(shares) - min(shares) <= Q
    s.check_invariants()


def test_groups_alternate_and_split_the_cpu_between_groups() -> None:
    s, _ = new_sched()
    a, b = group("a"), group("b")
    lone = s.spawn(proc(a), cpu_hog())
    crowd = [s.spawn(proc(b), cpu_hog()) for _ in range(3)]
    s.run(steps=600)
    pgids = [d.pgid for d in trace_of(s)]
    assert pgids == [a.pgid, b.pgid] * 300
    # Two-level: each group gets half; the lone thread gets three times a crowd thread's.
    assert lone.cpu_ns == sum(t.cpu_ns for t in crowd) == 300 * Q
    assert [t.cpu_ns for t in crowd] == [100 * Q] * 3
    s.check_invariants()


def test_a_group_with_nothing_runnable_is_skipped() -> None:
    s, _ = new_sched()
    a, b = group(), group()
    s.spawn(proc(a), [Wait(1_000 * Q)])
    hog = s.spawn(proc(b), cpu_hog())
    s.run(steps=5)
    assert {d.tid for d in trace_of(s)} == {hog.tid}


# ---- blocking and waking --------------------------------------------------------------


def test_blocked_thread_does_not_run_until_its_wait_ends() -> None:
    s, _ = new_sched()
    g = group()
    s.spawn(proc(g), cpu_hog())
    s.spawn(proc(g), cpu_hog())
    sleeper = s.spawn(proc(g), [Wait(25 * MS), Cpu(MS)])
    assert sleeper.state is ThreadState.BLOCKED
    s.run(until_ns=30 * MS)
    assert sleeper.cpu_ns == 0
    assert s.thread(sleeper.tid).state is ThreadState.RUNNABLE  # woke at 25 ms, during a slice
    s.run(until_ns=60 * MS)
    runs = [d for d in trace_of(s) if d.tid == sleeper.tid]
    # Woken at 25 ms, queued ahead of the hog whose slice was running, behind the other.
    assert runs == [Dispatch(40 * MS, sleeper.tid, g.pgid, MS)]
    assert sleeper.latencies_ns == [15 * MS]
    assert s.thread(sleeper.tid).state is ThreadState.DONE
    s.check_invariants()


def test_wake_up_on_an_idle_cpu_is_immediate() -> None:
    s, clock = new_sched(start_ns=7)
    t = s.spawn(proc(group()), [Cpu(MS), Wait(5 * MS), Cpu(2 * MS)])
    assert s.run(steps=100) == 2  # returns when every thread is done
    assert [(d.start_ns, d.ran_ns) for d in trace_of(s)] == [(7, MS), (7 + 6 * MS, 2 * MS)]
    assert t.latencies_ns == [0, 0]
    assert (s.busy_ns, s.idle_ns, clock.now_ns()) == (3 * MS, 5 * MS, 7 + 8 * MS)
    assert t.state is ThreadState.DONE
    s.check_invariants()


def test_idle_run_until_stops_at_the_deadline() -> None:
    s, clock = new_sched()
    t = s.spawn(proc(group()), [Wait(50 * MS), Cpu(MS)])
    assert s.run(until_ns=20 * MS) == 0
    assert clock.now_ns() == 20 * MS and t.state is ThreadState.BLOCKED
    assert s.run(until_ns=100 * MS) == 1
    assert trace_of(s) == [Dispatch(50 * MS, t.tid, t.group.pgid, MS)]


def test_waited_ns_counts_runnable_time_since_the_last_slice() -> None:
    s, _ = new_sched()
    g = group()
    a = s.spawn(proc(g), cpu_hog())
    b = s.spawn(proc(g), cpu_hog())
    s.run(steps=1)  # a ran 0..Q
    assert (a.waited_ns, b.waited_ns) == (0, Q)
    assert [r.waited_ns for r in s.runnable(g)] == [Q, 0]  # b is now at the front
    s.run(steps=1)
    assert (a.waited_ns, b.waited_ns) == (Q, 0)


# ---- the interactive workload: the baseline a graft will improve ------------------------


def interactive_among_hogs(s: Scheduler, hogs: int = 4) -> int:
    g = group("mixed")
    for _ in range(hogs):
        s.spawn(proc(g), cpu_hog())
    editor = s.spawn(proc(g), interactive_loop(200_000, 3 * MS), interactive=True)
    s.run(until_ns=s.clock.now_ns() + 2_000 * MS)
    s.check_invariants()
    return editor.tid


def test_interactive_thread_waits_behind_hogs_under_round_robin() -> None:
    s, _ = new_sched()
    tid = interactive_among_hogs(s)
    stats = s.latency(tid)
    # Measured: 49 samples in 2 s, mean 37.06 ms, p50 37.0 ms, p99 40.0 ms. A wake-up
    # (3 ms into a hog's slice) waits out that slice's last 7 ms plus a full slice
    # for each of the three hogs queued ahead of it: 7 + 3 * 10 = 37 ms.
    assert stats.samples >= 40
    assert stats.mean_us > 3 * Q / 1000
    assert stats.p50_us > 3 * Q / 1000
    assert stats.p99_us <= 4 * Q / 1000  # bounded: round robin does not starve it


def test_a_pick_favouring_the_interactive_thread_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, _ = new_sched()
    baseline = base.latency(interactive_among_hogs(base))

    s, _ = new_sched()
    seen: list[list[ThreadInfo]] = []

    def pick(group: ProcessGroup, runnable: list[ThreadInfo]) -> int:
        seen.append(runnable)
        return favour_interactive(group, runnable)

    monkeypatch.setattr(s, "pick_policy", pick)
    tid = interactive_among_hogs(s)
    better = s.latency(tid)
    assert better.samples > baseline.samples  # it also gets more work done
    # Measured: 197 samples, mean 6.96 ms, p99 7.0 ms: only the rest of the running slice.
    assert better.p99_us <= Q / 1000
    assert better.mean_us < baseline.mean_us / 4
    # The policy saw the interactive flag exactly on the thread the application marked.
    assert all((row.flags == FLAG_INTERACTIVE) == (row.tid == tid) for rows in seen for row in rows)


def test_pick_group_index_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    s, _ = new_sched()
    a, b = group(), group()
    s.spawn(proc(a), cpu_hog())
    s.spawn(proc(b), [Cpu(5 * Q)])
    # Always the last in rotation: the chosen group goes to the back, so b keeps
    # winning (a starves) until it has nothing left to run.
    monkeypatch.setattr(s, "pick_group_policy", lambda groups: len(groups) - 1)
    s.run(steps=8)
    assert [d.pgid for d in trace_of(s)] == [b.pgid] * 5 + [a.pgid] * 3


# ---- attacks on the policy hook ----------------------------------------------------------


@pytest.mark.parametrize("bad", [5, -1, True, "0", 1.0, None])
def test_a_pick_outside_the_candidates_is_refused_before_anything_changes(
    monkeypatch: pytest.MonkeyPatch, bad: object
) -> None:
    s, clock = new_sched()
    g = group()
    threads = [s.spawn(proc(g), cpu_hog()) for _ in range(2)]
    s.run(steps=3)
    before = (clock.now_ns(), [t.cpu_ns for t in threads], s.runnable(g))
    monkeypatch.setattr(s, "pick_policy", lambda group, runnable: bad)
    with pytest.raises(InvalidResult):
        s.run(steps=1)
    assert (clock.now_ns(), [t.cpu_ns for t in threads], s.runnable(g)) == before
    assert len(trace_of(s)) == 3
    s.check_invariants()


def test_a_pick_group_outside_the_candidates_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    s, clock = new_sched()
    s.spawn(proc(group()), cpu_hog())
    monkeypatch.setattr(s, "pick_group_policy", lambda groups: len(groups))
    with pytest.raises(InvalidResult):
        s.run(steps=1)
    assert clock.now_ns() == 0 and trace_of(s) == []


def test_more_than_64_runnable_threads_offer_the_first_64_in_round_robin_order() -> None:
    s, _ = new_sched()
    g = group()
    threads = [s.spawn(proc(g), cpu_hog()) for _ in range(MAX_PICK_CANDIDATES + 6)]
    assert [r.tid for r in s.runnable(g)] == [t.tid for t in threads[:MAX_PICK_CANDIDATES]]
    s.run(steps=10)
    # The ten that ran went to the back; threads 65..70 have moved into view.
    ahead = threads[10:] + threads[:4]
    assert [r.tid for r in s.runnable(g)] == [t.tid for t in ahead]
    s.run(steps=len(threads) - 10)
    assert [d.tid for d in trace_of(s)] == [t.tid for t in threads]  # nobody starved


def test_a_workload_that_fails_ends_only_its_own_thread() -> None:
    def broken() -> Iterator[Step]:
        yield Cpu(MS)
        raise RuntimeError("workload bug")

    def junk() -> Iterator[object]:
        yield "not a step"

    s, _ = new_sched()
    g = group()
    hog = s.spawn(proc(g), cpu_hog())
    bad = s.spawn(proc(g), broken())
    with pytest.raises(RuntimeError, match="workload bug"):
        s.run(steps=10)
    assert bad.state is ThreadState.DONE and bad.cpu_ns == MS
    s.check_invariants()
    with pytest.raises(TypeError, match="not Cpu or Wait"):
        s.spawn(proc(g), junk())  # type: ignore[arg-type]
    s.check_invariants()
    s.run(steps=3)
    assert hog.cpu_ns == 4 * Q
    s.check_invariants()


@pytest.mark.parametrize("make", [lambda: Cpu(0), lambda: Wait(-1), lambda: Cpu(True)])
def test_zero_negative_or_bool_steps_are_rejected(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_a_process_without_a_group_cannot_spawn() -> None:
    s, _ = new_sched()
    with pytest.raises(ValueError, match="no process group"):
        s.spawn(Process(new_pid(), USER), cpu_hog())


def test_run_without_a_bound_is_refused() -> None:
    s, _ = new_sched()
    with pytest.raises(ValueError):
        s.run()


# ---- the accessor ----------------------------------------------------------------------


def test_set_priority_returns_the_old_priority_and_is_reported_to_the_policy() -> None:
    s, _ = new_sched()
    g = group()
    t = s.spawn(proc(g), cpu_hog(), priority=3)
    assert s.set_priority(t.tid, -7) == 3
    assert s.runnable(g)[0].priority == -7
    assert s.set_priority(t.tid, 3) == -7  # the undo
    with pytest.raises(LookupError):
        s.set_priority(999, 0)
    with pytest.raises(ValueError):
        s.set_priority(t.tid, 1 << 31)
    assert t.priority == 3


# ---- invariants ------------------------------------------------------------------------


def test_check_invariants_catches_a_process_moved_behind_the_schedulers_back() -> None:
    s, _ = new_sched()
    p = proc(group())
    s.spawn(p, cpu_hog())
    s.check_invariants()
    p.group = group()
    with pytest.raises(AssertionError, match="moved to another group"):
        s.check_invariants()


def test_check_invariants_catches_cpu_time_going_backwards() -> None:
    s, _ = new_sched()
    t = s.spawn(proc(group()), cpu_hog())
    s.run(steps=2)
    s.check_invariants()
    t.cpu_ns -= 1
    with pytest.raises(AssertionError, match="cpu time went back"):
        s.check_invariants()


def test_check_invariants_catches_a_blocked_thread_in_the_run_queue() -> None:
    s, _ = new_sched()
    t = s.spawn(proc(group()), cpu_hog())
    t.state = ThreadState.BLOCKED
    with pytest.raises(AssertionError):
        s.check_invariants()


STEP = st.one_of(
    st.integers(1, 3 * 1000).map(Cpu),
    st.integers(1, 5 * 1000).map(Wait),
)
THREAD = st.tuples(st.lists(STEP, max_size=8), st.booleans(), st.integers(0, 1))
GROUPS = st.lists(st.lists(THREAD, min_size=1, max_size=5), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(groups=GROUPS, chunks=st.lists(st.integers(1, 15), min_size=1, max_size=10))
def test_invariants_and_timelines_hold_under_random_workloads(
    groups: list[list[tuple[list[Step], bool, int]]], chunks: list[int]
) -> None:
    quantum = 1000
    s, clock = new_sched(quantum_ns=quantum, start_ns=1_000)
    workloads: dict[int, list[Step]] = {}
    for spec in groups:
        g = group()
        procs = [proc(g), proc(g)]
        for steps, interactive, which in spec:
            t = s.spawn(procs[which], list(steps), interactive=interactive)
            workloads[t.tid] = steps
    s.check_invariants()
    for n in chunks:
        s.run(steps=n)
        s.check_invariants()
    trace = trace_of(s)

    # Slices never overlap; the CPU idles only until someone wakes.
    ready_at: dict[tuple[int, int], int] = {}
    for tid, steps in workloads.items():
        mine = [d for d in trace if d.tid == tid]
        ready_at.update(replay(steps, mine, 1_000, quantum))
    prev_end = 1_000
    for d in trace:
        assert d.start_ns >= prev_end
        if d.start_ns > prev_end:
            assert ready_at[(d.tid, d.start_ns)] == d.start_ns
        prev_end = d.start_ns + d.ran_ns
    assert s.busy_ns + s.idle_ns == clock.now_ns() - 1_000
    for t in s.threads:
        if t.state is ThreadState.DONE:
            assert t.cpu_ns == sum(x.ns for x in workloads[t.tid] if isinstance(x, Cpu))


def replay(
    steps: list[Step], slices: list[Dispatch], spawn_ns: int, quantum: int
) -> dict[tuple[int, int], int]:
    """Check one thread's slices against its workload: it runs only while it has a
    burst, never before its wait ends, one quantum at most. Returns when each slice's
    thread became ready, keyed by (tid, start)."""
    ready = spawn_ns
    it = iter(slices)
    out: dict[tuple[int, int], int] = {}
    for step in steps:
        if isinstance(step, Wait):
            ready += step.ns
            continue
        left = step.ns
        while left:
            d = next(it, None)
            if d is None:
                return out  # the run stopped before this thread finished
            assert d.start_ns >= ready, "ran while blocked"
            assert d.ran_ns == min(quantum, left)
            out[(d.tid, d.start_ns)] = ready
            left -= d.ran_ns
            ready = d.start_ns + d.ran_ns
    assert next(it, None) is None, "ran after its workload ended"
    return out


# ---- determinism --------------------------------------------------------------------------


Schedule = list[tuple[int, int, int, int]]  # start, tid, group number, ran


def seeded_run(seed: int, split_at_ns: int | None = None) -> tuple[Schedule, list[int]]:
    rng = random.Random(seed)
    s, _ = new_sched(quantum_ns=2 * MS)
    number: dict[int, int] = {}  # pgids come from a process-wide counter
    for i in range(3):
        g = group()
        number[g.pgid] = i
        for _ in range(rng.randint(1, 4)):
            steps: list[Step] = []
            for _ in range(rng.randint(1, 30)):
                steps.append(Cpu(rng.randint(1, 5 * MS)))
                steps.append(Wait(rng.randint(1, 8 * MS)))
            s.spawn(proc(g), steps, priority=rng.randint(-5, 5), interactive=rng.random() < 0.3)
        s.spawn(proc(g), cpu_hog(3 * MS))
    if split_at_ns is not None:
        s.run(until_ns=split_at_ns)
    s.run(until_ns=500 * MS)
    s.check_invariants()
    schedule = [(d.start_ns, d.tid, number[d.pgid], d.ran_ns) for d in trace_of(s)]
    return schedule, [x for t in s.threads for x in t.latencies_ns]


def test_same_seed_same_schedule() -> None:
    first = seeded_run(42)
    assert len(first[0]) > 100
    assert seeded_run(42) == first
    assert seeded_run(42, split_at_ns=123 * MS + 1) == first  # runs compose
    assert seeded_run(43) != first


# ---- the sched.pick buffer -----------------------------------------------------------------


def test_pack_threads_layout_is_byte_exact() -> None:
    rows = [
        ThreadInfo(tid=1, priority=-2, cpu_ns=3, waited_ns=0x0102030405060708, flags=1),
        ThreadInfo(tid=0xFFFFFFFF, priority=2**31 - 1, cpu_ns=2**64 - 1, waited_ns=0, flags=0),
    ]
    expected = bytes.fromhex(
        "02000000 00000000"  # n = 2, pad
        + "01000000 feffffff 0300000000000000 0807060504030201 01000000 00000000"
        + "ffffffff ffffff7f ffffffffffffffff 0000000000000000 00000000 00000000"
    )
    assert pack_threads(rows) == expected
    assert unpack_threads(expected) == rows
    assert pack_threads([]) == bytes(8)
    assert SCHED_BUFFER_BYTES == 8 + 32 * 64


def test_pack_threads_refuses_what_does_not_fit() -> None:
    row = ThreadInfo(1, 0, 0, 0, 0)
    assert len(pack_threads([row] * MAX_PICK_CANDIDATES)) == SCHED_BUFFER_BYTES
    with pytest.raises(ValueError):
        pack_threads([row] * (MAX_PICK_CANDIDATES + 1))
    with pytest.raises(ValueError):
        pack_threads([ThreadInfo(1, 2**31, 0, 0, 0)])
    with pytest.raises(ValueError):
        pack_threads([ThreadInfo(1, 0, -1, 0, 0)])
    with pytest.raises(ValueError):
        unpack_threads(bytes.fromhex("41000000 00000000"))


def test_candidates_pack_as_the_policy_saw_them() -> None:
    s, _ = new_sched()
    g = group()
    s.spawn(proc(g), cpu_hog(), priority=4, interactive=True)
    s.spawn(proc(g), cpu_hog())
    s.run(steps=1)
    rows = s.runnable(g)
    assert unpack_threads(pack_threads(rows)) == rows
    assert rows == [ThreadInfo(2, 0, 0, Q, 0), ThreadInfo(1, 4, Q, 0, FLAG_INTERACTIVE)]
