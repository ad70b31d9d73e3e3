"""Attacks on a principal's accounting from several threads at once.

A principal's lifetime CPU (``usage.cpu_ns``) is added to by every call of its
grafts -- the native protected call and the Python one, without the principal's
lock, each add whole under the GIL -- and by its installs (compiling, and
``vino_buffer()``), under the lock. An install that read ``cpu_ns``, then read a
clock (a call: the interpreter may switch threads there) and stored the sum, lost
whatever another thread's graft calls added meanwhile: a principal could run
grafts on one thread while installing on another and have part of their time
charged to nobody. The clocks are read by a stand-in here, which runs the other
thread's calls exactly in that window (the clock and fault injection are what a
test may fake).
"""

from __future__ import annotations

import threading
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from vino.graft import loader, registry

from .harness import TARGET, Tenancy, pick

SPIN = pick("""(local $i i32)
    (block (loop
      (br_if 1 (i32.ge_u (local.get $i) (i32.const 200000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br 0)))
    (i32.const 1)""")


class RacingClock:
    """Stands in for module ``time`` in one module: its clock ``name`` reads 0 (so the
    install charges nothing of its own), and at its ``at``-th read first lets another
    thread run alice's graft calls, noting her ``cpu_ns`` before and after them."""

    def __init__(self, name: str, at: int, race: Any) -> None:
        self.name, self.at, self.race = name, at, race
        self.reads = 0
        self.seen: tuple[int, int] | None = None

    def make(self) -> Any:
        def clock() -> int:
            self.reads += 1
            if self.reads == self.at:
                self.seen = self.race()
            return 0

        names = {k: getattr(time, k) for k in dir(time) if not k.startswith("__")}
        return SimpleNamespace(**{**names, self.name: clock})


@pytest.mark.parametrize(("module", "clock", "at"), [
    (loader, "thread_time_ns", 2),  # the charge of parsing and compiling (loader.charged)
    (registry, "perf_counter_ns", 1),  # the charge of vino_buffer() (registry)
])
def test_graft_calls_on_another_thread_cannot_escape_their_cpu_charge_during_an_install(
        tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch, module: ModuleType, clock: str,
        at: int) -> None:
    t = tenancy
    t.install(SPIN)
    usage = t.alice.usage

    def race() -> tuple[int, int]:
        before = usage.cpu_ns
        th = threading.Thread(target=lambda: [t.pick(TARGET, 1) for _ in range(3)])
        th.start()
        th.join(10.0)
        assert not th.is_alive(), "the graft calls did not finish (a lock held?)"
        return before, usage.cpu_ns

    rc = RacingClock(clock, at, race)
    monkeypatch.setattr(module, "time", rc.make())
    t.registry.install(t.pick, pick("(i32.add (i32.const 1) (i32.const 1))"), t.alice, "t9")
    assert rc.seen is not None, "the install never read the clock where expected"
    before, after = rc.seen
    assert after > before  # the calls were charged while they ran
    # Lifetime totals only grow: what the calls added is still there once the install
    # charged its own time (0 by the stand-in clock). Before the fix, cpu_ns fell back.
    assert usage.cpu_ns >= after
