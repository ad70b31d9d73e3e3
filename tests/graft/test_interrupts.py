"""Attacks: a ``KeyboardInterrupt`` (any exception that is no ``Exception``) inside a call.

Ctrl-C, a ``SystemExit`` from a signal handler or a ``GeneratorExit`` can surface at any
bytecode of the protected call: in the point's encode or decode, at a clock read, in
the epoch callback while the guest runs. Whatever the step, the call must end as a host
fault does (``errors.py``): its transaction aborted and no longer the thread's current
one, the host state as before the call (or as after it, if the interrupt came once it
had committed), the graft kept and not blamed, its store let go -- and the interrupt
itself reaches the caller, never answered by the default. Each test runs the native
entry and ``Graft.invoke``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vino.graft import Graft, current, fastpath, invoke
from vino.graft.txn import ACTIVE

from .graft_world import (
    IMPORT_PUT,
    PUT_AND_ANSWER,
    TARGET,
    World,
    assert_host_fault_kept_and_restored,
    graft,
    make_world,
)

# Puts x -> 11, then runs until stopped.
PUT_AND_SPIN = graft(IMPORT_PUT, '''
  (func (export "pick") (result i32)
    (drop (call $put (i32.load (i32.const 0)) (i32.const 11)))
    (loop br 0)
    i32.const 5)''')
# An event handler that puts x -> 12.
PUT_ON_EVENT = graft(IMPORT_PUT, '''
  (func (export "on_event") (result i32)
    (drop (call $put (i32.load (i32.const 0)) (i32.const 12)))
    i32.const 0)''')

NATIVE = "native"
INVOKE = "invoke"
PATHS = [pytest.param(NATIVE, marks=pytest.mark.skipif(
             fastpath.protected(fastpath.native()) is None, reason=f"the protected call is "
             f"not native here: {fastpath.PART.reason or 'VINO_FASTPATH'}")),
         INVOKE]


@pytest.fixture
def world() -> Iterator[World]:
    w = make_world()
    yield w
    w.registry.close()


def _install(w: World, path: str, source: str = PUT_AND_ANSWER, **kw: Any) -> Graft:
    g = w.install(source, **kw)
    if path == NATIVE:
        assert g._native is not None and g.call is g._native
    else:
        g.call = g.invoke
    return g


def _assert_left_clean(g: Graft) -> None:
    assert current() is None, "the interrupted call's transaction is still current"
    assert g._txn.state != ACTIVE and g._txn.args is None
    assert not g.busy()


@pytest.mark.parametrize("path", PATHS)
def test_an_interrupt_at_any_clock_read_of_a_call_leaves_no_transaction_current(
        path: str, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection, one step further each round: the n-th clock read of the call
    raises ``KeyboardInterrupt``, until a call completes without meeting one."""
    g = _install(world, path)
    before = world.snapshot()
    undone = committed = 0
    for n in range(1, 20):
        reads = 0

        def clock(n: int = n) -> int:
            nonlocal reads
            reads += 1
            if reads == n:
                raise KeyboardInterrupt
            return time.perf_counter_ns()

        monkeypatch.setattr(invoke, "_perf_ns", clock)
        commits = g.stats.commits
        try:
            answer = world.pick(TARGET, 3)
        except KeyboardInterrupt as exc:
            _assert_left_clean(g)
            if g.stats.commits == commits:  # interrupted before its commit: undone
                assert_host_fault_kept_and_restored(world, g, exc, before)
                undone += 1
            else:  # after: committed, counted, nothing left open
                assert world.host.d == {3: 11}
                committed += 1
            continue
        assert answer == 5 and world.host.d == {3: 11}
        # the reads: the sampled call's start, the guest's entry and return, its end
        assert (undone, committed) == (3, 1)
        _assert_left_clean(g)
        break
    else:
        pytest.fail("every call was interrupted")
    monkeypatch.undo()
    assert world.pick(TARGET, 4) == 5 and world.host.d == {3: 11, 4: 11}


@pytest.mark.parametrize("stage", ["encode", "decode"])
@pytest.mark.parametrize("path", PATHS)
def test_an_interrupt_in_the_points_codec_aborts_the_call_and_reaches_the_caller(
        path: str, stage: str, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a fault the default may answer: the interrupt reaches the caller after the
    call was undone -- also for a point whose host faults are answered by the default."""
    g = _install(world, path)
    monkeypatch.setattr(world.pick, "host_faults", "default")
    before = world.snapshot()
    codec: Callable[..., Any] = getattr(world.pick, stage)

    def interrupted(*args: Any) -> Any:
        codec(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(world.pick, stage, interrupted)
    for _ in range(2):  # the second call begins from what the first one left
        with pytest.raises(KeyboardInterrupt) as info:
            world.pick(TARGET, 3)
        _assert_left_clean(g)
        assert_host_fault_kept_and_restored(world, g, info.value, before)
    assert g.stats.commits == 0 and world.host.default_calls == 0
    monkeypatch.undo()
    assert world.pick(TARGET, 3) == 5 and world.host.d == {3: 11}


@pytest.mark.parametrize("path", PATHS)
def test_an_interrupt_in_an_enclosing_call_leaves_its_parent_current(
        path: str, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a host transaction, the interrupted graft's transaction is popped and the
    host's own is current again, its earlier work still there to commit or abort."""
    g = _install(world, path)

    def interrupted(buf: memoryview, x: int) -> tuple[int, ...]:
        raise KeyboardInterrupt

    from vino.graft import transaction

    with transaction() as host_txn:
        host_txn.setitem(world.host.d, "host", 1)
        monkeypatch.setattr(world.pick, "encode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            world.pick(TARGET, 3)
        assert current() is host_txn and g._txn.state != ACTIVE and not g.busy()
        monkeypatch.undo()
        assert world.pick(TARGET, 3) == 5
    assert world.host.d == {"host": 1, 3: 11}


def test_an_interrupt_in_an_event_handlers_encode_leaves_no_transaction_current(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    g = world.registry.install(world.event, PUT_ON_EVENT, world.alice, TARGET)
    before = world.snapshot()

    def interrupted(buf: memoryview, x: int) -> tuple[int, ...]:
        raise KeyboardInterrupt

    monkeypatch.setattr(world.event, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        world.event(TARGET, 3)
    _assert_left_clean(g)
    assert_host_fault_kept_and_restored(world, g, info.value, before)
    monkeypatch.undo()
    assert world.event(TARGET, 3) == 1 and world.host.d == {3: 12}


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers run on the main thread")
@pytest.mark.parametrize("path", PATHS)
def test_ctrl_c_while_a_graft_runs_aborts_it_and_reaches_the_caller(path: str) -> None:
    """A real SIGINT, sent once the guest is running (a five-second budget, so only the
    interrupt stops it): its handler raises in the epoch callback, the guest is stopped,
    its put undone, and the ``KeyboardInterrupt`` reaches the caller."""
    w = make_world(alice_quota={"cpu_call_s": 5.0})
    try:
        g = _install(w, path, PUT_AND_SPIN)
        before = w.snapshot()
        main = threading.main_thread().ident
        assert main is not None
        late: list[str] = []

        def on_sigint(signum: int, frame: object) -> None:
            if g.busy():
                raise KeyboardInterrupt
            late.append("outside the call")  # never raised into the test's own code

        def ctrl_c() -> None:
            deadline = time.monotonic() + 30.0
            while not (g.busy() and g._txn.state == ACTIVE and g._txn.start_ns):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)
            signal.pthread_kill(main, signal.SIGINT)

        old = signal.signal(signal.SIGINT, on_sigint)
        sender = threading.Thread(target=ctrl_c)
        try:
            sender.start()
            t = time.perf_counter()
            with pytest.raises(KeyboardInterrupt) as info:
                w.pick(TARGET, 3)
            elapsed = time.perf_counter() - t
        finally:
            sender.join(30.0)
            signal.signal(signal.SIGINT, old)
        assert not late and elapsed < 4.0  # stopped by the interrupt, not by its budget
        _assert_left_clean(g)
        assert_host_fault_kept_and_restored(w, g, info.value, before)
    finally:
        w.registry.close()
