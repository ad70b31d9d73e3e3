"""What stopped a guest call, in words: every wasmtime trap code and error, named.

``describe(code, message)`` turns what ``fastcall.RawFunc`` kept of a failed
call (the trap code, or -1, and wasmtime's own message when there was one) into
the detail of an abort record. The registry uses it once it has ruled out the
causes it knows better (a host function that raised, a budget or a doom set by
the epoch callback).

Invariant: ``describe`` never answers a bare number: an unknown code (a newer
wasmtime) is still said to be a trap, with wasmtime's message when it gave one.
"""

from __future__ import annotations

from typing import Final

# wasmtime_trap_code_enum (wasmtime 50), each with what it means for a graft. Codes 17-53
# (but 19 and 49) belong to the component model and proposals vino does not enable; they are
# named all the same.
TRAP_DETAILS: Final = {
    0: "stack overflow",  # past the Wasm stack allowance (MAX_WASM_STACK)
    1: "out-of-bounds memory access",  # outside the graft's own linear memory
    2: "misaligned memory access",
    3: "out-of-bounds table access",
    4: "indirect call to null",
    5: "indirect call type mismatch",
    6: "integer overflow",
    7: "integer divide by zero",
    8: "invalid conversion to integer",
    9: "unreachable executed",
    10: "interrupted",
    11: "ran out of fuel",
    12: "atomic wait on an unshared memory",
    13: "null reference dereferenced",
    14: "out-of-bounds array access",
    15: "allocation too large",
    16: "reference cast failed",
    17: "component re-entered in violation of its rules",
    18: "asynchronous export returned no result",
    19: "exception thrown with no handler (unhandled tag)",
    20: "continuation resumed twice",
    21: "disabled instruction executed",
    22: "asynchronous deadlock",
    23: "component left in violation of its rules",
    24: "synchronous task blocked",
    25: "invalid character",
    26: "string encoding check failed",
    27: "string code unit check failed",
    28: "pointer alignment check failed",
    29: "upper bits check failed",
    30: "string out of bounds",
    31: "list out of bounds",
    32: "invalid variant discriminant",
    33: "unaligned pointer",
    34: "task cancel without cancellation",
    35: "task cancelled or returned twice",
    36: "subtask cancelled after it finished",
    37: "invalid task return",
    38: "waitable set dropped while it had waiters",
    39: "subtask dropped before it resolved",
    40: "new thread with an invalid function type",
    41: "new thread with an uninitialized function",
    42: "backpressure counter overflow",
    43: "unsupported callback code",
    44: "thread cannot be resumed",
    45: "concurrent future or stream operation",
    46: "reference count overflow",
    47: "stream operation too big",
    48: "waitable used both synchronously and asynchronously",
    49: "uncaught exception",
    50: "read from a dropped stream",
    51: "write to a dropped stream",
    52: "write to a dropped future",
    53: "lift of a dropped stream",
}
_MESSAGE_MAX: Final = 200  # characters of wasmtime's own message kept in a detail


def _first_line(message: str) -> str:
    """The message's most specific line: wasmtime puts the cause last."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    lines = [ln for ln in lines if ln not in ("Caused by:",) and not ln.startswith("wasm backtrace")
             and not ln[:1].isdigit()] or lines
    return lines[-1][:_MESSAGE_MAX] if lines else ""


def describe(code: int, message: str = "") -> str:
    """The abort detail of a guest call that trapped (``code`` >= 0) or failed (-1)."""
    if code >= 0:
        known = TRAP_DETAILS.get(code)
        if known is not None:
            return known
        tail = _first_line(message)
        return f"trap (wasmtime code {code}){': ' + tail if tail else ''}"
    tail = _first_line(message)
    if tail:
        return f"the engine stopped the call: {tail}"
    return "the engine stopped the call without saying why"
