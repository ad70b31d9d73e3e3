"""Attacks on the native plain read's own parts (``plainread.py``): its lock, twin of
``threading.RLock``, which the cache and the VFS hold, and its selection.

The reads themselves are attacked in ``test_plain_read.py`` (both paths) and, through
SQLite, in ``tests/sqlite/test_sqlite_vfs.py``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections.abc import Callable, Iterator

import pytest

from vino.kernel import plainread
from vino.kernel.cache import Cache
from vino.kernel.fs import FileSystem
from vino.sqlite.vfs import VinoVFS
from vino.sqlite.vfsfile import VinoFile

Factory = Callable[[], threading.RLock]


def _native_rlock() -> threading.RLock:
    mod = plainread.native()
    if mod is None:
        pytest.skip(f"no native plain read here: {plainread.PART.reason}")
    lock: threading.RLock = mod.RLock()
    return lock


LOCKS = pytest.mark.parametrize("make", [threading.RLock, _native_rlock],
                                ids=["threading", "native"])


@LOCKS
def test_a_lock_taken_twice_by_its_holder_is_free_only_after_two_releases(make: Factory) -> None:
    lock = make()
    assert lock.acquire() and lock.acquire(False) and lock.acquire(True, 0.1)
    with lock:
        pass
    for _ in range(2):
        lock.release()
    assert lock._is_owned()  # type: ignore[attr-defined]
    taken: list[bool] = []
    other = threading.Thread(target=lambda: taken.append(lock.acquire(False)))
    other.start()
    other.join()
    assert taken == [False]
    lock.release()
    assert not lock._is_owned()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        lock.release()


@LOCKS
def test_a_thread_cannot_release_a_lock_another_thread_holds(make: Factory) -> None:
    lock = make()
    lock.acquire()
    errors: list[BaseException] = []

    def steal() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    thief = threading.Thread(target=steal)
    thief.start()
    thief.join()
    assert len(errors) == 1
    assert lock._is_owned()  # type: ignore[attr-defined]
    lock.release()


@contextlib.contextmanager
def _held_by_another_thread(lock: threading.RLock) -> Iterator[threading.Event]:
    """``lock`` held by another thread until the event given is set (at the latest
    when the block ends); that thread is joined before the block is left."""
    held, go = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            go.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield go
    finally:
        go.set()
        holder.join()


@LOCKS
def test_a_waiter_times_out_and_then_gets_the_lock_once_it_is_released(make: Factory) -> None:
    lock = make()
    results: list[bool] = []
    with _held_by_another_thread(lock) as go:
        t0 = time.monotonic()
        results.append(lock.acquire(True, 0.05))
        waited = time.monotonic() - t0
        waiter = threading.Thread(target=lambda: results.append(lock.acquire()))
        waiter.start()
        go.set()  # the holder lets go: the blocked waiter gets it
        waiter.join(10)
    assert results == [False, True] and waited >= 0.04
    with pytest.raises(ValueError):
        lock.acquire(False, 1.0)


@LOCKS
def test_a_busy_lock_refuses_a_negative_or_endless_time_out_as_threading_does(
        make: Factory) -> None:
    lock = make()
    with _held_by_another_thread(lock):
        with pytest.raises(ValueError):
            lock.acquire(True, -2.0)
        with pytest.raises(OverflowError):
            lock.acquire(True, 1e300)
        assert not lock.acquire(True, 0)  # a time-out of 0 does not wait


@LOCKS
def test_threads_fighting_for_the_lock_never_hold_it_together_and_none_waits_for_ever(
        make: Factory) -> None:
    # Each holder lets the GIL go inside (sleep(0)), so the others find it taken and
    # wait, some with a time-out that may expire; a lost wake-up hangs the join.
    lock = make()
    inside: list[int] = []
    together: list[list[int]] = []
    counts = [0, 0]  # taken, timed out
    rounds = 300

    def fight(n: int) -> None:
        for i in range(rounds):
            got = lock.acquire(True, 0.0005) if (i + n) % 3 == 0 else lock.acquire()
            if not got:
                counts[1] += 1
                continue
            with lock:  # again, by its holder
                inside.append(n)
                time.sleep(0)
                if inside != [n]:
                    together.append(list(inside))
                inside.pop()
            counts[0] += 1
            lock.release()

    threads = [threading.Thread(target=fight, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads) and together == []
    assert counts[0] + counts[1] == 4 * rounds and counts[0] >= 4 * rounds * 2 // 3
    assert lock.acquire(False)
    lock.release()


def test_the_cache_and_the_vfs_hold_the_lock_the_native_read_tries() -> None:
    mod = plainread.native()
    if mod is None:
        pytest.skip(f"no native plain read here: {plainread.PART.reason}")
    assert type(Cache(4)._lock) is mod.RLock
    assert isinstance(VinoFile.xRead, mod.XRead)
    assert VinoFile.xRead.fallback is VinoFile._xread


def test_the_fields_the_native_read_reads_at_fixed_offsets_are_those_classes_slots() -> None:
    # Read at the slots' offsets: a property or any other descriptor of that name in
    # front of them would be bypassed, so each must be the class's own slot.
    for cls, names in ((FileSystem, plainread.FS_SLOTS), (Cache, plainread.CACHE_SLOTS),
                       (VinoVFS, plainread.VFS_NAMES), (VinoFile, plainread.VFS_FILE_NAMES)):
        assert [n for n in names if type(getattr(cls, n)) is not types.MemberDescriptorType
                or getattr(cls, n).__objclass__ is not cls] == []


def test_asking_for_the_python_path_turns_the_native_read_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plainread, "PART", plainread.PART.again())
    monkeypatch.setenv("VINO_PLAINREAD", "python")
    assert plainread.native() is None
    assert plainread.reader(object, object, object, object, object, object, object, 4096, 1) is None
    assert "VINO_PLAINREAD=python" in plainread.PART.reason
    assert type(plainread.rlock()) is type(threading.RLock())
    assert plainread.served() == 0

    def fallback(f: VinoFile, amount: int, offset: int) -> bytes:
        return b""

    assert plainread.xread(fallback, object, object, 4096) is fallback


def test_a_native_read_that_fails_to_build_fails_here_instead_of_skipping_silently() -> None:
    # Every native-read test skips when the extension is missing: a compile error (a
    # warning under -Werror) would otherwise leave the Python read serving and the
    # suite green. Only an explicit VINO_PLAINREAD/VINO_FASTPATH=python may leave it out.
    plainread.native()
    assert not plainread.PART.failed, plainread.PART.reason
