"""Rate limits: a token bucket of events, and an allowance of time.

``TokenBucket``: at most ``burst`` events at once, ``rate`` per second sustained.
Used by the registry to bound each principal's installs per second
(``Quota.installs_per_s``, ``Quota.install_burst``): every install attempt,
accepted or not, takes a token (a refused module may still have cost a compile);
with none left the attempt is refused before any work is done.

The clock is injected (a function returning seconds, ``time.monotonic`` by
default), so tests drive it by hand instead of sleeping.

``Allowance``: time (nanoseconds) refilled at ``rate_s`` seconds per second up to
``burst_s``; work is admitted while it is above zero and paid after it ends, so it
may go below zero by what the last admitted work overdrew. Over any T seconds the
work admitted is at most ``burst_s + T * rate_s`` plus one piece of work. Used for
what one principal's operations may spend in another's grafts (``hosting.py``) and
for each principal's share of wall time under shared host locks (``hold.py``).

Invariant: 0 <= tokens <= burst; ``stamp`` is the clock reading tokens were last
brought up to date at, and never goes back.
Invariant: ``Allowance.level_ns <= burst_ns``; below zero only by overdrawn work.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from vino.errors import InvalidDeclaration

_EPSILON = 1e-9  # tokens; far below any rate's one token


class TokenBucket:
    """``take()`` spends one token, or says how long until one is there."""

    __slots__ = ("_mutex", "burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if not rate > 0 or burst < 1:
            raise InvalidDeclaration(f"a token bucket needs rate > 0 and burst >= 1, "
                                     f"not {rate!r} and {burst!r}")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._mutex = threading.Lock()

    def take(self) -> float:
        """Spend a token and return 0.0; or, with none left, spend nothing and return
        the seconds until one is there (> 0)."""
        if math.isinf(self.rate):
            return 0.0
        with self._mutex:
            now = self.clock()
            if now > self.stamp:
                self.tokens = min(float(self.burst),
                                  self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
            if self.tokens >= 1.0 - _EPSILON:  # float sums of whole intervals fall short
                self.tokens = max(0.0, self.tokens - 1.0)
                return 0.0
            return (1.0 - self.tokens) / self.rate


class Allowance:
    """Time work may still take: ``open()`` before, ``spend(ns)`` after (see the module).

    ``rate_s`` may be infinite (no limit: always open).
    """

    __slots__ = ("_mutex", "burst_ns", "clock", "level_ns", "rate_ns", "stamp")

    def __init__(self, rate_s: float, burst_s: float, clock: Callable[[], float]) -> None:
        if rate_s < 0 or burst_s < 0:
            raise InvalidDeclaration(f"a hosting allowance needs rate >= 0 and burst >= 0, "
                                     f"not {rate_s!r} and {burst_s!r}")
        self.rate_ns = rate_s * 1e9  # per second of the clock
        self.burst_ns = burst_s * 1e9
        self.level_ns = self.burst_ns
        self.clock = clock
        self.stamp = clock()
        self._mutex = threading.Lock()

    def _refill(self) -> None:
        if math.isinf(self.rate_ns):
            self.level_ns = self.burst_ns
            return
        now = self.clock()
        if now > self.stamp:
            self.level_ns = min(self.burst_ns, self.level_ns + (now - self.stamp) * self.rate_ns)
            self.stamp = now

    def open(self) -> bool:
        """True if a hosted call may start now."""
        with self._mutex:
            self._refill()
            return self.level_ns > 0

    def spend(self, ns: int) -> None:
        """A hosted call took ``ns``: take it from the allowance (it may go below zero)."""
        with self._mutex:
            self._refill()
            self.level_ns -= ns

    def reopens_in_s(self) -> float:
        """Seconds until a hosted call may start (0.0: now; inf: never, at rate 0)."""
        with self._mutex:
            self._refill()
            if self.level_ns > 0:
                return 0.0
            if self.rate_ns <= 0:
                return float("inf")
            return (1.0 - self.level_ns) / self.rate_ns
