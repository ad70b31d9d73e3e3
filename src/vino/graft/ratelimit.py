"""A token bucket: at most ``burst`` events at once, ``rate`` per second sustained.

Used by the registry to bound each principal's installs per second
(``Quota.installs_per_s``, ``Quota.install_burst``): every install attempt,
accepted or not, takes a token (a refused module may still have cost a compile);
with none left the attempt is refused before any work is done.

The clock is injected (a function returning seconds, ``time.monotonic`` by
default), so tests drive it by hand instead of sleeping.

Invariant: 0 <= tokens <= burst; ``stamp`` is the clock reading tokens were last
brought up to date at, and never goes back.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

_EPSILON = 1e-9  # tokens; far below any rate's one token


class TokenBucket:
    """``take()`` spends one token, or says how long until one is there."""

    __slots__ = ("_mutex", "burst", "clock", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, "
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
