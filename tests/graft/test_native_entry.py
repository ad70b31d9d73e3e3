"""The native protected call (``Protected``), its store lock (``Mutex``) and dispatch.

``test_invoke_equivalence.py`` runs the native entry against the plain steps on one
script; these cover what that script cannot: its lock against ``threading.Lock``'s
contract, threads (each its own thread state, a busy store), the clock it stamps calls
with, an exception that is no ``Exception``, a removed graft's cycle through it, and
the native ``FunctionPoint.__call__`` against its Python twin.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

from vino.graft import GLOBAL, FunctionPoint, Graft, current, fastpath
from vino.graft.fastpath import Mutex
from vino.graft.point import _dispatch
from vino.graft.txn import thread_state

from .graft_world import DEFAULT_ANSWER, TARGET, World, graft, make_world, pick_returning

# The module grafts take Protected, Mutex and Dispatch from (None with VINO_FASTPATH=python
# or =crossings, or without a build).
NATIVE = fastpath.protected(fastpath.native())
pytestmark = pytest.mark.skipif(NATIVE is None, reason=f"the protected call is not native "
                                f"here: {fastpath.PART.reason or 'VINO_FASTPATH'}")

# Answers its input (the buffer's first u32) plus one.
ECHO = graft("", '''(func (export "pick") (result i32)
    (i32.add (i32.load (i32.const 0)) (i32.const 1)))''')


@pytest.fixture
def echo() -> Iterator[tuple[World, Graft]]:
    w = make_world()
    g = w.install(ECHO)
    assert g._native is not None and g.call is g._native  # the native entry is what runs
    yield w, g
    w.registry.close()


def _mutex() -> Mutex:
    assert NATIVE is not None
    m: Mutex = NATIVE.Mutex()
    return m


def test_native_mutex_keeps_the_threading_lock_contract() -> None:
    m = _mutex()
    assert not m.locked() and m.acquire(False) and m.locked()
    assert not m.acquire(False)  # not re-entrant, like threading.Lock
    t = time.perf_counter()
    assert not m.acquire(True, 0.05)  # a time-out waits, then fails
    assert time.perf_counter() - t >= 0.04
    with pytest.raises(ValueError):
        m.acquire(False, 1.0)
    m.release()
    with pytest.raises(RuntimeError):
        m.release()  # releasing an unlocked lock is an error, as for threading.Lock
    with m:
        assert m.locked()
    assert not m.locked()


@pytest.mark.parametrize("make", [threading.Lock, _mutex], ids=["threading", "native"])
def test_a_busy_mutex_refuses_a_negative_or_endless_time_out_as_threading_does(
        make: Callable[[], Mutex]) -> None:
    m = make()
    m.acquire()
    with pytest.raises(ValueError):
        m.acquire(True, -2.0)
    with pytest.raises(OverflowError):
        m.acquire(True, 1e300)
    assert not m.acquire(True, 0)  # a time-out of 0 does not wait
    m.release()


def test_a_waiter_on_the_native_mutex_gets_it_when_released() -> None:
    m = _mutex()
    m.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(m.acquire(True, 5.0)))
    waiter.start()
    time.sleep(0.02)
    assert not got  # still waiting: the GIL was let go while it waits
    m.release()
    waiter.join(5.0)
    assert got == [True] and m.locked()


def test_waiters_on_the_native_mutex_each_get_it_in_turn_and_one_that_gave_up_loses_none(
        ) -> None:
    """Taking and giving the lock is a store under the GIL; waiters sleep on a gate a
    release leaves one permit on. No wake-up is lost: three waiters each get the lock in
    turn, and one that timed out meanwhile takes no permit with it."""
    m = _mutex()
    m.acquire()
    got: list[str] = []
    inside: list[int] = []

    def waiter(name: str, timeout: float) -> None:
        if not m.acquire(True, timeout):
            got.append(f"{name} timed out")
            return
        inside.append(1)
        assert len(inside) == 1  # alone while it holds it
        time.sleep(0.005)
        got.append(name)
        inside.pop()
        m.release()

    quitter = threading.Thread(target=waiter, args=("quitter", 0.05))
    quitter.start()
    quitter.join(5.0)
    assert got == ["quitter timed out"] and m.locked()
    waiters = [threading.Thread(target=waiter, args=(f"w{j}", 60.0)) for j in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.05)
    assert got == ["quitter timed out"]  # all three wait: the GIL is let go meanwhile
    released = time.perf_counter()
    m.release()
    for t in waiters:
        t.join(60.0)
    # a lost wake-up would leave a waiter asleep until its time-out (60 s)
    assert time.perf_counter() - released < 20.0
    assert sorted(got[1:]) == ["w0", "w1", "w2"]
    assert not m.locked() and m.acquire(False)  # left free, and taken at once
    m.release()


def test_each_thread_calling_one_graft_sees_its_own_answers_and_no_transaction_left(
        echo: tuple[World, Graft]) -> None:
    """Threads share one store: a call finding it busy goes the Python way (and waits for
    it); every answer is its own caller's, and no thread is left inside a transaction."""
    w, g = echo
    errors: list[str] = []
    left_current: list[bool] = []

    def caller(base: int) -> None:
        for i in range(200):
            x = base + i % 20  # answers x + 1, within the validator's 0..100
            got = w.pick(TARGET, x)
            if got not in (x + 1, DEFAULT_ANSWER):
                errors.append(f"{x} -> {got}")
        left_current.append(current() is not None)

    threads = [threading.Thread(target=caller, args=(j * 20,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and left_current == [False] * 4
    assert g.stats.commits + g.stats.busy == 800 and not g.busy()


def test_short_lived_threads_each_get_their_own_thread_state(
        echo: tuple[World, Graft]) -> None:
    """The native entry caches the calling thread's state: a new thread is a new one."""
    w, _ = echo
    seen: list[tuple[int, bool]] = []

    def once(x: int) -> None:
        answer = w.pick(TARGET, x)
        seen.append((answer, thread_state().txn is None))

    for x in range(20):
        t = threading.Thread(target=once, args=(x,))
        t.start()
        t.join(10)
    assert seen == [(x + 1, True) for x in range(20)]
    assert w.pick(TARGET, 41) == 42 and current() is None


def test_the_native_entry_stamps_calls_with_perf_counter_ns(
        echo: tuple[World, Graft]) -> None:
    """``start_ns`` is read against ``time.perf_counter_ns`` (budgets, aborts, logs)."""
    w, g = echo
    before = time.perf_counter_ns()
    assert w.pick(TARGET, 1) == 2
    after = time.perf_counter_ns()
    assert before <= g._txn.start_ns <= after


def test_an_exception_that_is_no_exception_passes_through_and_frees_the_store(
        echo: tuple[World, Graft]) -> None:
    """A ``KeyboardInterrupt`` in the host's encode is not a fault to answer with the
    default: it reaches the caller, its transaction aborted (none left current) and the
    graft's store let go (``finally``); test_interrupts.py attacks every step."""
    w, g = echo
    encode = w.pick.encode

    def interrupted(buf: memoryview, x: int) -> tuple[int, ...]:
        raise KeyboardInterrupt

    assert NATIVE is not None
    w.pick.encode = interrupted
    g.call = g._native = g._protected(NATIVE)  # the entry reads encode when it is made
    with pytest.raises(KeyboardInterrupt):
        w.pick(TARGET, 1)
    assert not g.busy() and g._txn.args is None and current() is None
    w.pick.encode = encode
    g.call = g._native = g._protected(NATIVE)
    assert w.pick(TARGET, 5) == 6


def test_a_removed_graft_with_a_native_entry_is_collected() -> None:
    """graft -> Protected -> graft is a cycle the collector sees (``tp_traverse``); once
    removed, the entry holds no instance object and any late call is ``invoke``'s."""
    w = make_world()
    try:
        g = w.install(pick_returning(9))
        late_call = g.call
        assert w.pick(TARGET, 0) == 9
        g.remove()
        assert getattr(late_call, "dead", False)
        assert late_call((0,)) == DEFAULT_ANSWER  # invoke: no longer live, redispatched
        ref = weakref.ref(g)
        del g, late_call
        gc.collect()
        assert ref() is None
    finally:
        w.registry.close()


def test_native_dispatch_answers_as_the_python_dispatch() -> None:
    """``FunctionPoint.__call__`` in C (``Dispatch``) against ``point._dispatch``: the
    target's graft, else GLOBAL's, else the default, and the same errors."""
    w = make_world()
    try:
        assert type(FunctionPoint.__call__).__name__ == "Dispatch"  # the native one runs
        w.install(pick_returning(9))
        glob = w.install(pick_returning(4), w.root, GLOBAL)
        cases = [(TARGET, 1), ("elsewhere", 2)]
        assert [w.pick(t, x) for t, x in cases] == [9, 4]
        assert [_dispatch(w.pick, t, x) for t, x in cases] == [9, 4]
        glob.remove()
        assert w.pick("elsewhere", 2) == _dispatch(w.pick, "elsewhere", 2) == DEFAULT_ANSWER
        calls: list[Callable[..., object]] = [w.pick, functools.partial(_dispatch, w.pick)]
        for call in calls:
            with pytest.raises(TypeError):
                call([], 1)  # an unhashable target, as dict.get says
            with pytest.raises(TypeError):
                call()  # no target
    finally:
        w.registry.close()
