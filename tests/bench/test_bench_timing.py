"""The timing helpers' contracts that a loaded machine breaks first."""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable

import pytest

from vino.bench import timing


class _StopSeenLate(threading.Event):
    """A stop event whose first look waits until the stop is set: every thread is as
    if the machine had descheduled it from the start until the end of the run."""

    def is_set(self) -> bool:
        self.wait()
        return True


def test_threads_the_machine_schedules_after_the_stop_still_count_their_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A rate of 0 made the quick thread-scaling ratios divide by zero.
    monkeypatch.setattr(timing, "threading", types.SimpleNamespace(
        Barrier=threading.Barrier, Thread=threading.Thread, Event=_StopSeenLate))
    threads = 4
    ran = [0] * threads

    def batch(j: int) -> Callable[[], int]:
        def run() -> int:
            ran[j] += 1
            return 8
        return run

    assert timing.threaded_rate(batch, threads, 0.001) > 0
    assert ran == [1] * threads


def test_a_batch_the_machine_takes_off_the_cpu_is_measured_again() -> None:
    # A quick table once showed Begin above the whole call containing it: milliseconds
    # of another process landed in one Begin batch. The batch off the CPU (a sleep here,
    # as certain as a descheduled thread) is run again and its figure not kept.
    runs: list[int] = []

    def batch(n: int) -> dict[str, float]:
        runs.append(n)
        if len(runs) == 1:
            time.sleep(0.005)
            return {"": 999.0}
        return {"": 1.0}

    c = timing.Contender("x", batch, calls=10, on_cpu=True)
    assert timing.measure(c) == {"": 1.0}
    assert runs[:2] == [10, 10] and c.off_cpu_runs >= 1


def test_a_contender_that_waits_by_design_is_not_measured_again() -> None:
    # A worker process's batch waits for the child: off the CPU, but not the machine's.
    runs: list[int] = []

    def batch(n: int) -> dict[str, float]:
        runs.append(n)
        time.sleep(0.002)
        return {"": 7.0}

    c = timing.Contender("worker", batch, calls=3)
    assert timing.measure(c) == {"": 7.0}
    assert runs == [3] and c.off_cpu_runs == 0


def test_a_batch_off_the_cpu_every_time_keeps_the_run_least_off_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake clocks: each run takes 10 ms of wall time and the CPU time given here.
    cpu_ms = iter([2.0, 7.0, 1.0, 6.0, 3.0])  # all below 80 %: off the CPU every time
    wall, cpu = [0], [0]
    monkeypatch.setattr(timing, "_perf_ns", lambda: wall[0])
    monkeypatch.setattr(timing, "_thread_ns", lambda: cpu[0])

    def batch(n: int) -> dict[str, float]:
        ms = next(cpu_ms)
        wall[0] += 10_000_000
        cpu[0] += int(ms * 1e6)
        return {"": ms}

    c = timing.Contender("x", batch, calls=1, on_cpu=True)
    assert timing.measure(c) == {"": 7.0}  # 3 ms off the CPU: the least
    assert c.off_cpu_runs == timing.REDO_OFF_CPU + 1
