"""Native stack safety: no graft call starts unless its thread's stack has room for it.

wasmtime counts a store's Wasm stack allowance (``MAX_WASM_STACK``) from wherever
the store is entered, so grafts nested through graft-callables pile allowances
on one native stack, and a host thread with a small stack (e.g. created after
``threading.stack_size(256 * 1024)``) cannot hold even one: past the thread's
real stack the process dies of SIGSEGV. Two rules close this:

1. Every entry into Wasm goes through ``vino_call`` (``native/stack.c``, built
   once per machine like the ticker): it compares the stack pointer with the
   thread's stack bottom (``pthread_getattr_np``, cached per thread) and calls
   nothing, answering ``NO_STACK``, unless ``Sandbox.stack_need`` bytes -- the
   Wasm allowance plus ``HOST_STACK_RESERVE`` for the host code its
   graft-callables run; the largest any sandbox of the process asked for -- are
   left. It takes the raw call's own arguments, so the check costs a compare
   inside the one FFI call the graft call makes anyway (measured, interleaved in
   one process: the protected call of a null graft 0.2-2% slower than unguarded,
   about 2.3 us either way).
2. Graft invocations nest at most ``MAX_GRAFT_NESTING`` deep per thread
   (``Graft.invoke`` counts the graft transactions above it).

Blame (``aborts.no_stack``): a call refused at the top level is the host's doing
(its thread's stack is too small): the default answers, the graft is kept. A
call refused inside another graft's call is that enclosing graft's doing: it
is doomed (``resource``) and removed per policy; the inner graft is kept.

wasmtime's allowance is per engine, not per store, so it cannot shrink with the
nesting level; the nesting limit and the check above bound the total instead.

When the helper cannot be built (not Linux, no compiler), ``guard()`` is None:
calls go straight to wasmtime and only the nesting limit applies (``PART.reason``
says why; ``PART``, ``nativepart.py``, builds and loads it once per process).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Final

from vino.graft import fastcall
from vino.graft.nativebuild import native_library
from vino.graft.nativepart import NativePart

_SOURCE: Final = Path(__file__).resolve().parent / "native" / "stack.c"


class StackGuard:
    """The loaded helper: ``call`` (a drop-in for the raw call) and ``require``."""

    def __init__(self, library: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.vino_stack_init.argtypes = [ctypes.c_void_p]
        lib.vino_stack_init.restype = None
        lib.vino_stack_init(fastcall.raw_call_address())
        lib.vino_stack_info.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 3
        lib.vino_stack_info.restype = ctypes.c_int
        lib.vino_stack_need.argtypes = [ctypes.c_size_t]
        lib.vino_stack_need.restype = None
        self._lib = lib
        self.need = 0  # what every call needs now (bytes): the largest require() asked for
        # Like fastcall's raw call: no argtypes (ctypes objects built once per export), and
        # a CDLL function, so the GIL is released while the guest runs.
        call = lib["vino_call"]
        call.restype = ctypes.c_void_p
        # A fastcall.RawCall, and a ctypes function: the native fast path reads its address.
        self.call = call

    def require(self, need: int) -> None:
        """Every call from now on needs at least ``need`` bytes of stack (never lowered:
        sandboxes of one process share the guard, so the largest need holds for all)."""
        with _LOCK:
            if need > self.need:
                self.need = need
                self._lib.vino_stack_need(need)

    def info(self) -> tuple[int, int, int]:
        """The calling thread's stack: (lowest usable address, top, stack pointer now)."""
        low, high, sp = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        if self._lib.vino_stack_info(ctypes.byref(low), ctypes.byref(high), ctypes.byref(sp)):
            raise OSError("pthread_getattr_np failed for this thread")
        return low.value, high.value, sp.value

    def left(self) -> int:
        """Bytes of native stack left below the caller (approximately: its C frame)."""
        low, _high, sp = self.info()
        return sp - low


_LOCK: Final = threading.Lock()
PART: Final = NativePart[StackGuard]("stack guard", lambda: StackGuard(native_library(_SOURCE)))


def guard() -> StackGuard | None:
    """The stack guard, built and loaded on first use; None if it cannot be had
    (``PART.reason`` says why)."""
    return PART.get()
