"""Attacks that end in a trap: every abort detail says what happened.

Before, failures inside some features, and a trapping ``vino_buffer``, were
reported as "trap code -1". Each graft here traps one way; the operation answers
with the default, the graft is removed, nothing changed, and the abort detail
names the trap in words (``vino.graft.traps``).
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason
from vino.graft import fastcall, traps

from .harness import Tenancy, pick

WRITE = "(drop (call $put (i32.const 1) (i32.const 9))) "  # host state the abort must undo

TRAPPING = {
    "out-of-bounds memory access": "(i32.load (i32.const -4))",
    "integer divide by zero": "(i32.div_u (i32.const 1) (i32.const 0))",
    "integer overflow": "(i32.div_s (i32.const 0x80000000) (i32.const -1))",
    "invalid conversion to integer": "(i32.trunc_f32_s (f32.const nan))",
    "unreachable executed": "unreachable",
    "indirect call to null": "(call_indirect (type $v) (i32.const 0))",
    "out-of-bounds table access": "(call_indirect (type $v) (i32.const 5))",
    "indirect call type mismatch": "(call_indirect (type $v) (i32.const 1))",
    "stack overflow": "(call $deep)",
}
EXTRA = ('(type $v (func (result i32)))', '(table 2 funcref)', '(elem (i32.const 1) $wrong)',
         '(func $wrong (param i32) (result i32) i32.const 0)',
         '(func $deep (result i32) (call $deep))')


@pytest.mark.parametrize("detail", list(TRAPPING))
def test_graft_trapping_is_aborted_with_a_detail_naming_the_trap(tenancy: Tenancy,
                                                                 detail: str) -> None:
    g = tenancy.attack(pick(WRITE + TRAPPING[detail], ["put"], *EXTRA), AbortReason.TRAP,
                       detail=detail)
    assert g.removal is not None and g.removal.detail == detail


def test_every_wasmtime_trap_code_has_a_detail_in_words() -> None:
    codes = {m.value for m in fastcall.raw.wasmtime_trap_code_enum}
    assert codes <= set(traps.TRAP_DETAILS)
    for code in codes:
        assert "wasmtime code" not in traps.describe(code)
    # A code this wasmtime does not have yet, or an error without a code, still says what.
    assert traps.describe(200, "wasm trap: something new") == \
        "trap (wasmtime code 200): wasm trap: something new"
    assert traps.describe(-1, "error while executing\n\nCaused by:\n    out of fuel") == \
        "the engine stopped the call: out of fuel"
