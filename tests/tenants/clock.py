"""A clock in seconds, moved by hand: the registry's clock (install rates, hosting
allowances, shares of time) in the multi-tenant tests."""

from __future__ import annotations


class FakeClock:
    """Seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
