"""The native fast path against its ctypes twin, on the same inputs.

Both ways of crossing into and out of Wasm -- the raw call, a graft-callable's
trampoline, the epoch callback -- must give the same answers, the same faults
and the same outcome codes. And a guest entered without releasing the GIL must
still let other threads run at every epoch tick.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
import wasmtime

from vino.graft import Registry, fastcall, fastpath, store
from vino.graft.fastcall import I32, I64
from vino.graft.point import FunctionPoint
from vino.graft.sandbox import Sandbox
from vino.graft.ticker import make_ticker

TICK_S = 0.001

NATIVE = fastpath.native()
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"no native fast path: "
                                  f"{fastpath.PART.reason}")
WAYS = [pytest.param(None, id="ctypes"),
        pytest.param(NATIVE, id="native", marks=needs_native)]

# host.f(i32, i64, i32) -> i64, called with the entry's own arguments.
CALLER = """(module
  (import "host" "f" (func $f (param i32 i64 i32) (result i64)))
  (import "host" "g" (func $g))
  (func (export "call") (param $a i32) (param $b i64) (param $c i32) (result i64)
    (call $f (local.get $a) (local.get $b) (local.get $c)))
  (func (export "call_g") (result i32) (call $g) (i32.const 7))
  (func (export "trap") (result i32) unreachable)
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))"""


class _Guest:
    """CALLER instantiated with host functions defined one way (ctypes or native)."""

    def __init__(self, way: Any, f: Callable[..., Any], g: Callable[..., None],
                 decide: Callable[[], bool] = lambda: True) -> None:
        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        self.engine = wasmtime.Engine(cfg)
        self.keep: list[Any] = []
        linker = wasmtime.Linker(self.engine)
        self.faults: list[BaseException] = []
        fastcall.define_host(linker, "host", "f", (I32, I64, I32), (I64,), f, self.keep,
                             self.faults.append, way)
        fastcall.define_host(linker, "host", "g", (), (), g, self.keep, self.faults.append,
                             way)
        # A ticker that needs no GIL (a guest entered natively holds it), when it builds.
        self.ticker, _ = make_ticker(self.engine, TICK_S)
        self.store = wasmtime.Store(self.engine)
        store.install_epoch_callback(self.store, decide, self.keep, self.faults.append,
                                     way)
        fastcall.set_epoch_deadline(self.store, 1)
        inst = linker.instantiate(self.store, wasmtime.Module(self.engine, CALLER))
        ex = inst.exports(self.store)
        native = way

        def fn(name: str, params: tuple[str, ...], results: tuple[str, ...]
               ) -> fastcall.RawFunc:
            export = ex[name]
            assert isinstance(export, wasmtime.Func)
            return fastcall.RawFunc(self.store, export, params, results, None, native)

        self.call = fn("call", (I32, I64, I32), (I64,))
        self.call_g = fn("call_g", (), (I32,))
        self.trap = fn("trap", (), (I32,))
        self.spin = fn("spin", (), (I32,))


def _run_all(way: Any) -> list[Any]:
    """Every case, one way: what the guest returned, what the host saw, the faults."""
    seen: list[tuple[int, ...]] = []
    answers: dict[int, Any] = {1: 5, 2: 2**64 + 5, 3: -1, 4: None, 5: 2.5, 6: True}

    def f(a: int, b: int, c: int) -> Any:
        seen.append((a, b, c))
        if c == 0:
            raise KeyError("the host's bug")
        return answers[c]

    def g() -> None:
        seen.append(())

    guest = _Guest(way, f, g)
    out: list[Any] = []
    for a, b, c in [(-1, -(2**63), 1), (2**31 - 1, 2**63 - 1, 2), (0, 0, 3), (7, 8, 4),
                    (7, 8, 5), (7, 8, 6), (7, 8, 0)]:
        rc = guest.call.call(a, b, c)
        exc = guest.faults.pop() if guest.faults else None
        out.append((rc, guest.call.result_i64() if rc == fastcall.OK else None,
                    type(exc).__name__ if exc else None, str(exc) if exc else None))
    out.append((guest.call_g.call0(), guest.call_g.result_i32()))
    rc = guest.trap.call0()
    out.append((rc, guest.trap.trap_code, guest.trap.message.splitlines()[0]))
    out.append((guest.call.call(1, 2, 1), guest.call.result_i64()))  # fine after a trap
    return [out, seen]


@needs_native
def test_native_crossings_answer_exactly_as_the_ctypes_ones_on_the_same_inputs() -> None:
    assert _run_all(NATIVE) == _run_all(None)


@pytest.mark.parametrize("way", WAYS)
def test_a_host_fault_keeps_the_exception_with_its_traceback(way: Any) -> None:
    def f(a: int, b: int, c: int) -> int:
        raise ValueError(f"bad {a}")

    guest = _Guest(way, f, lambda: None)
    assert guest.call.call(3, 0, 0) != fastcall.OK
    [exc] = guest.faults
    assert isinstance(exc, ValueError) and str(exc) == "bad 3"
    assert exc.__traceback__ is not None  # where the host's code raised


@pytest.mark.parametrize("way", WAYS)
def test_a_runaway_guest_is_stopped_at_a_tick_and_a_raising_decide_is_kept(way: Any) -> None:
    calls = [0]

    def decide() -> bool:
        calls[0] += 1
        if calls[0] >= 3:
            raise RuntimeError("decided to fail")
        return True

    guest = _Guest(way, lambda *a: 0, lambda: None, decide)
    if way and guest.ticker.kind != "native":
        pytest.skip("no native ticker to stop a guest that holds the GIL")
    guest.ticker.ensure_running()
    try:
        rc = guest.spin.call0()
    finally:
        guest.ticker.stop()
    assert rc == fastcall.ERROR and calls[0] == 3
    assert [type(e) for e in guest.faults] == [RuntimeError]


@needs_native
def test_a_graft_spinning_with_the_gil_held_still_lets_other_threads_run() -> None:
    # The native raw call keeps the GIL; the epoch callback must hand it over at each tick,
    # or a Python thread (a lock waiter, the host's other work) would not run until the
    # graft's call ended.
    progress = [0]
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            progress[0] += 1

    ends = [0.0]  # set as the call starts
    ticks = [0]

    def decide() -> bool:  # at least two ticks, then until 0.1 s after the call started
        ticks[0] += 1
        return ticks[0] < 3 or time.monotonic() < ends[0]

    guest = _Guest(NATIVE, lambda *a: 0, lambda: None, decide)
    assert guest.ticker.kind == "native"
    guest.ticker.ensure_running()
    th = threading.Thread(target=other, daemon=True)
    th.start()
    time.sleep(0.01)
    # Python's own hand-over (a waiter asks the holder to drop the GIL) comes only after
    # the switch interval: made longer than the call, only the GIL the call lets go at a
    # tick lets it run. (Each later tick's callback waits that long for the GIL back from
    # the spinning thread: five times the call, not fifty, keeps the test to ~2 s.)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        before = progress[0]
        ends[0] = time.monotonic() + 0.1
        assert guest.spin.call0() == fastcall.ERROR  # stopped by decide() after 0.1 s
        during = progress[0] - before
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        th.join()
        guest.ticker.stop()
    assert during > 0


@needs_native
def test_a_registry_with_the_native_ticker_enters_grafts_without_releasing_the_gil() -> None:
    reg = Registry()
    try:
        assert reg.sandbox.ticker.kind == "native" and reg.sandbox.fastpath is NATIVE
    finally:
        reg.close()


def test_the_ctypes_path_is_kept_where_no_native_ticker_can_stop_a_guest() -> None:
    sb = Sandbox(native_ticker=False)
    try:
        assert sb.ticker.kind == "python" and sb.fastpath is None
    finally:
        sb.close()


def test_the_ctypes_path_can_be_forced_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "PART", fastpath.PART.again())
    monkeypatch.setattr(fastpath, "_READY", [])
    monkeypatch.setenv("VINO_FASTPATH", "python")
    assert fastpath.native() is None
    assert "VINO_FASTPATH=python" in fastpath.PART.reason


@needs_native
def test_a_registry_reachable_from_its_own_callables_is_still_collected() -> None:
    # The native trampolines keep their Python callables alive through objects the
    # collector can see: a registry (whose lock callable is a bound method) must not leak.
    reg = Registry()
    reg.declare(FunctionPoint[object, int, int](
        name="t.pick", entry="pick", buffer_size=8, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: 0, target_type=object))
    ref = weakref.ref(reg)
    reg.close()
    del reg
    gc.collect()
    assert ref() is None


def test_a_native_fast_path_that_fails_to_build_fails_here_instead_of_skipping_silently() -> None:
    # The native-call tests skip when the extension is missing: a compile error (a
    # warning under -Werror) would otherwise leave the ctypes path serving and the
    # suite green. Only an explicit VINO_FASTPATH=python may leave it out.
    if os.environ.get("VINO_FASTPATH", "native") == "python":
        pytest.skip("the ctypes path was asked for (VINO_FASTPATH=python)")
    assert fastpath.PART.get() is not None and not fastpath.PART.failed, fastpath.PART.reason
