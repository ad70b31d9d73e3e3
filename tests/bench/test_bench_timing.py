"""The timing helpers' contracts that a loaded machine breaks first."""

from __future__ import annotations

import threading
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
