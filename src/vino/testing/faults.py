"""Fault injection: make the Nth call at a named site fail; and the stepping clock.

In the style of SQLite's OOM and I/O-error tests: an operation is run again and
again, the 1st, 2nd, ... Nth call at a *site* (an accessor, an allocation, a lock
acquisition, a device request, an undo step) failing each time, until it
completes without reaching the fault. ``Injector`` does the counting::

    inj = Injector()
    with inj.patch(registry.locks, "acquire", "lock"):   # count calls of locks.acquire
        for n in itertools.count(1):
            inj.arm("lock", n, persistent=False)          # the nth call raises, once
            run_the_operation()
            if not inj.fired:                             # it got through: done
                break

A plan is one of: ``one-shot`` (only the Nth call fails) or ``persistent`` (the
Nth and every later call fail: a resource that stays broken). Faults are raised by
the site's ``make_exc`` (``InjectedFault``, an ``OSError`` with ``errno.EIO``,
unless the site says otherwise), so the code under test sees the exception a
real failure there would raise.

What may be faked: only faults (this module) and the clock (``StepClock``, a
``vino.kernel.clock.SimClock`` that moves on every read).
Everything else the tests touch is the real code.

Invariant: a disarmed injector never raises; ``counts`` counts every call at a
patched site whether or not a plan is armed, under one lock (thread-safe).
"""

from __future__ import annotations

import errno
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from vino.kernel.clock import SimClock

__all__ = ["ONE_SHOT", "PERSISTENT", "InjectedFault", "Injector", "Plan", "StepClock"]

ONE_SHOT: Final = "one-shot"
PERSISTENT: Final = "persistent"

F = TypeVar("F", bound=Callable[..., Any])


class InjectedFault(OSError):
    """The failure an injector raises at a site (``errno.EIO``): an I/O error by default.

    It derives from ``OSError`` so device code sees what a failing disk raises; the
    message names the site and the call number, so every failure can be replayed.
    """

    def __init__(self, site: str, n: int) -> None:
        self.site = site
        self.n = n
        super().__init__(errno.EIO, f"injected fault at {site} call #{n}")


ExcFactory = Callable[[str, int], BaseException]


@dataclass(slots=True, frozen=True)
class Plan:
    """Which calls at ``site`` fail: the ``nth`` (one-shot), or ``nth`` onwards
    (persistent)."""

    site: str
    kind: str = ONE_SHOT
    nth: int = 1


class Injector:
    """Counts calls at named sites and raises where the armed plan says."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.counts: Counter[str] = Counter()  # calls seen per site since arm/reset
        self.fired: Counter[str] = Counter()  # faults raised per site since arm/reset
        self.total_fired = 0  # faults raised over the injector's life
        self._plan: Plan | None = None
        self._make_exc: dict[str, ExcFactory] = {}

    # ---- plans ----------------------------------------------------------------------
    def arm(self, site: str, nth: int = 1, *, persistent: bool = False) -> None:
        """Fail the ``nth`` call at ``site`` (and every later one if ``persistent``)."""
        if nth < 1:
            raise ValueError(f"nth counts from 1, got {nth}")
        self._set(Plan(site, PERSISTENT if persistent else ONE_SHOT, nth))

    def _set(self, plan: Plan) -> None:
        with self._mutex:
            self._plan = plan
            self.counts.clear()
            self.fired.clear()

    def disarm(self) -> None:
        with self._mutex:
            self._plan = None

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def on_exc(self, site: str, make_exc: ExcFactory) -> None:
        """Raise ``make_exc(site, n)`` at ``site`` instead of ``InjectedFault``."""
        self._make_exc[site] = make_exc

    # ---- sites ----------------------------------------------------------------------
    def hit(self, site: str) -> None:
        """One call at ``site``: count it, and raise if the plan says this one fails."""
        with self._mutex:
            self.counts[site] += 1
            n = self.counts[site]
            plan = self._plan
            if plan is None or plan.site != site:
                return
            if n != plan.nth and not (plan.kind == PERSISTENT and n > plan.nth):
                return
            self.fired[site] += 1
            self.total_fired += 1
            make = self._make_exc.get(site, InjectedFault)
        raise make(site, n)

    def wrap(self, fn: F, site: str) -> F:
        """``fn`` with a call at ``site`` before each call (the fault comes first)."""
        hit = self.hit

        def wrapped(*args: Any, **kw: Any) -> Any:
            hit(site)
            return fn(*args, **kw)

        wrapped.__name__ = getattr(fn, "__name__", "wrapped")
        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    @contextmanager
    def patch(self, obj: Any, attr: str, site: str,
              when: Callable[..., bool] | None = None) -> Iterator[None]:
        """Route ``obj.attr`` through ``site`` for the duration of the block.

        ``obj`` may be an instance (the attribute is shadowed on it) or a class (for
        slotted instances; ``when(*args)`` then picks the calls that count, e.g. one
        principal's). The original is restored on exit, even after an exception.
        """
        had_own = isinstance(obj, type) or attr in getattr(obj, "__dict__", {})
        original = getattr(obj, attr)
        hit = self.hit
        if when is None:
            replacement = self.wrap(original, site)
        else:
            def replacement(*args: Any, **kw: Any) -> Any:
                if when(*args, **kw):
                    hit(site)
                return original(*args, **kw)
        setattr(obj, attr, replacement)
        try:
            yield
        finally:
            if had_own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)


class StepClock(SimClock):
    """Simulated time that moves ``step_ns`` every time it is read: a kernel ``SimClock``.

    The one clock type of the tests, in nanoseconds like the kernel's injected clocks
    (``vino.kernel.clock``). ``seconds`` reads it for the graft layer's clocks, which
    take seconds (``LockManager(clock=...)``, ``Registry(clock=...)``): given to a lock
    manager, lock time-outs expire after a fixed number of polls instead of real
    waiting, so time-out paths run in microseconds and replay exactly.
    """

    __slots__ = ("step_ns",)

    def __init__(self, step_ns: int = 10_000_000, start_ns: int = 0) -> None:
        if step_ns <= 0:
            raise ValueError(f"step_ns must be > 0, got {step_ns}")
        super().__init__(start_ns)
        self.step_ns = step_ns

    def now_ns(self) -> int:
        return self.advance(self.step_ns)

    def seconds(self) -> float:
        """``now_ns()`` in seconds (it moves the clock too)."""
        return self.now_ns() / 1e9
