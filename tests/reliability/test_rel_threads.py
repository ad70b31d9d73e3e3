"""``run_threads``: what if an assertion fails inside a worker thread?

A thread's exception is otherwise printed and lost, and a test asserting on the
work's result could pass with a thread dead. It must fail the caller, after every
thread has finished.
"""

from __future__ import annotations

import threading

import pytest

from vino.testing.threads import run_threads


def test_a_failed_assertion_in_a_worker_thread_fails_the_caller_after_all_have_finished(
        ) -> None:
    done: list[str] = []
    gate = threading.Event()

    def fails() -> None:
        raise AssertionError("the worker saw a wrong byte")

    def slow() -> None:
        gate.wait(5)
        done.append("slow")

    def opens_the_gate() -> None:
        gate.set()
        raise ValueError("a second failure")

    with pytest.raises(AssertionError, match="wrong byte") as info:
        run_threads(fails, slow, opens_the_gate)
    assert done == ["slow"]  # joined: the slow worker finished before the raise
    assert any("ValueError" in note for note in info.value.__notes__)
    run_threads(lambda: done.append("ok"), lambda: done.append("ok"))  # none fails: returns
    assert done == ["slow", "ok", "ok"]
