"""Bugs the reliability campaigns found, each pinned by the attack that shows it.

A bug is fixed when a test that shows it exists (STYLE.md). Each test names the
campaign that found it; docs/RELIABILITY.md lists them with their fixes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vino.graft import Principal
from vino.reliability import DEFAULT_ANSWER, NEVER_REMOVE, Rig, module


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_kalloc_whose_byte_charge_fails_with_an_unexpected_error_gives_back_the_handle(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the fault loop "alloc": kalloc charged the handle, then the byte charge
    # raised something other than QuotaExceeded and the handle stayed charged forever.
    charge = Principal.charge

    def failing(self: Principal, what: str, amount: int) -> None:
        if self is rig.alice and what == "kalloc_bytes":
            raise MemoryError("host out of memory")
        charge(self, what, amount)

    g = rig.install(module(["kalloc"], '(func (export "op") (result i32)'
                                       ' (drop (call $kalloc (i32.const 64))) i32.const 1)'),
                    remove_after=NEVER_REMOVE)
    monkeypatch.setattr(Principal, "charge", failing)
    assert rig.op("t1", 0) == DEFAULT_ANSWER
    assert g.aborts
    assert rig.alice.usage.handles == 0
    assert rig.problems() == []
