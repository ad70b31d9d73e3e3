"""Concurrency under load: 32 threads, grafts that lock, spin, trap, lie and get replaced.

What if 32 threads call grafts that take locks (and deadlock each other), hold a lock
while spinning, trap, answer nonsense, hoard memory or touch root's state -- some of
the calls inside host transactions that are then aborted -- while another thread keeps
replacing and removing the grafts under them? Nothing may be lost: every counter kept
through accessors equals the committed calls that added to it, every wait is bounded
(the threads reach a barrier with a time-out), no lock, handle or page is left held,
and memory does not grow. The normal suite soaks a few seconds; ``-m slow`` (or
``vino reliability --soak SECONDS``) soaks for minutes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vino.testing.soak import KernelSoakResult, SoakResult, kernel_soak, soak


def _assert_nothing_lost(r: SoakResult, rounds: int) -> None:
    assert r.problems == [], "\n".join(r.problems)
    assert r.rounds == rounds
    assert r.threads >= 32
    assert r.counted > 100 and r.calls > r.counted
    assert r.host_aborts > 0  # committed graft work undone by its host transaction
    # Every way to fail happened, and each was survived.
    assert {"lock_timeout", "trap", "invalid_result", "forbidden_call", "resource"} <= set(
        r.aborts), r.aborts
    assert r.installs > 50 and r.removals > 0


def test_32_threads_of_locking_spinning_trapping_replaced_grafts_lose_no_update() -> None:
    r = soak(seconds=3.0, threads=32, rounds=3)
    _assert_nothing_lost(r, 3)
    # No growth the rounds can show: live Python objects stay level.
    assert max(r.objects) - min(r.objects) < 2000, r.objects


def test_32_threads_driving_the_kernel_through_hostile_grafts_lose_no_data(
        tmp_path: Path) -> None:
    r: KernelSoakResult = kernel_soak(seconds=2.0, threads=32, workdir=tmp_path)
    assert r.problems == [], "\n".join(r.problems)
    assert r.file_ops > 32 and r.page_ops > 32
    assert r.aborts  # the hostile read-ahead and eviction grafts were caught


@pytest.mark.slow
def test_soak_for_minutes_finds_nothing_lost_and_no_memory_growth(
        caplog: pytest.LogCaptureFixture) -> None:
    # pytest keeps every log record it captures: vino's warnings of thousands of aborts
    # would grow the live objects by ~200 a round, which is the runner's, not vino's.
    caplog.set_level(logging.CRITICAL, logger="vino")
    r = soak(seconds=180.0, threads=32, rounds=18)
    _assert_nothing_lost(r, 18)
    assert max(r.objects) - min(r.objects) < 2000, r.objects
    half = len(r.rss_mib) // 2  # after the allocator's arenas have settled
    assert r.rss_mib[-1] - min(r.rss_mib[half:]) < 4.0, r.rss_mib


@pytest.mark.slow
def test_kernel_soak_for_a_minute_loses_no_data(tmp_path: Path) -> None:
    r = kernel_soak(seconds=60.0, threads=32, workdir=tmp_path)
    assert r.problems == [], "\n".join(r.problems)
