"""The epoch ticker: native (a pthread, no GIL) by default, Python as the fallback.

What if the native ticker cannot be built, or stops? The Python ticker takes over,
and either way a graft that spins is still aborted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vino.errors import AbortReason
from vino.graft import Registry, ticker
from vino.graft.nativepart import NativePart

from .graft_world import DEFAULT_ANSWER, TARGET, World, graft, make_world


def _wait_for_ticks(t: ticker.Ticker, n: int, limit_s: float = 2.0) -> int:
    start = t.counter.value
    deadline = time.monotonic() + limit_s
    while t.counter.value - start < n and time.monotonic() < deadline:
        time.sleep(0.002)
    return t.counter.value - start


def test_the_native_ticker_is_built_and_ticks_without_python() -> None:
    reg = Registry()
    try:
        t = reg.sandbox.ticker
        assert t.kind == "native", reg.sandbox.ticker_fallback
        t.ensure_running()
        assert _wait_for_ticks(t, 5) >= 5
    finally:
        reg.close()
    stopped_at = t.counter.value
    time.sleep(0.02)
    assert t.counter.value == stopped_at  # stop() joined the thread: no tick after it


def test_a_failed_native_build_falls_back_to_the_python_ticker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_compiler() -> Path:
        raise OSError("no compiler here")

    monkeypatch.setattr(ticker, "LIBRARY", NativePart("epoch ticker", no_compiler, listed=False))
    reg = Registry()
    try:
        assert reg.sandbox.ticker.kind == "python"
        assert "no compiler here" in reg.sandbox.ticker_fallback
    finally:
        reg.close()


@pytest.mark.parametrize("kind", ["native", "python"])
def test_graft_spinning_forever_is_aborted_with_either_ticker(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VINO_TICKER", kind)
    w: World = make_world()
    try:
        assert w.registry.sandbox.ticker.kind == kind
        g = w.install(graft("", '(func (export "pick") (result i32) (loop (br 0)) i32.const 1)'))
        t = time.perf_counter()
        assert w.pick(TARGET, 0) == DEFAULT_ANSWER
        assert time.perf_counter() - t < 0.5
        assert g.removal is not None and g.removal.reason is AbortReason.TIMEOUT
    finally:
        w.registry.close()
