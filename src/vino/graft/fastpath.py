"""The native fast path: a CPython extension for the crossings into and out of Wasm.

``native/fastpath.c`` is compiled once per machine and Python version with the
``ziglang`` package (``nativebuild.python_extension``, as the ticker and the stack guard
are built), cached, and imported as ``_vino_fastpath``. ``fastcall`` takes it (``native=``)
for three things that ctypes does slowly (measured side by side by ``vino bench
goals`` and ``vino bench micro``):

1. the raw call of an export (``RawCall``): no argument conversion, and the GIL
   kept for the call, where a ctypes CDLL call releases and re-takes it -- only
   in a sandbox whose epoch ticker is native (``Sandbox.fastpath``): a Python
   ticker needs the GIL to tick, so a guest holding it would never be stopped;
2. graft-callable trampolines (``Host``): wasmtime calls C, which calls the
   Python function with the arguments read straight from the value slots;
3. the epoch-deadline callback: a guest that runs on past a tick lets the GIL go
   there for the rest of its call (``RawCall`` takes it back), so only calls
   shorter than a tick keep it throughout, and a graft running longer lets lock
   waiters and other threads progress (the lock time-out holds within a tick).

Each has the same contract as its ctypes twin in ``fastcall`` (the tests run
both on the same inputs). ``invoke.Graft`` takes two more, twins of its own Python:

4. ``Protected``: one graft's protected call, its common case in C (``invoke.py``
   says which; everything else goes back to ``Graft.invoke``, which it must equal);
5. ``Mutex``: the graft's store lock, ``threading.Lock``'s interface over the same
   kind of lock, which ``Protected`` tries without a Python call.

``Protected`` also runs a point's declared codecs (``codec.py``) in C, counts each
call in ``Counters`` and ``UsageCounters``, the C bases of ``Stats`` and ``Usage``, and
stamps its start in ``TxnFields``, the C base of ``Transaction`` (``stats.py``,
``accounting.py``, ``txn.py``: Python twins when this module cannot be had).

``native()`` is the ready module or None; then ``PART.reason`` says why (not
Linux, no compiler, a failed build, or ``VINO_FASTPATH=python``, which forces the
ctypes path), and everything runs through ctypes and ``Graft.invoke`` as before.
``PART`` (``nativepart.py``) builds and imports it once per process.
``VINO_FASTPATH=crossings`` keeps 1-3 native but 4-5 in Python (``protected()`` is
None): the protected call as it was before it was native, to measure one against
the other (``vino bench crossings``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Final, Protocol

from vino.graft import fastcall
from vino.graft.nativebuild import python_extension
from vino.graft.nativepart import NativePart

_SOURCE: Final = Path(__file__).resolve().parent / "native" / "fastpath.c"
MODULE_NAME: Final = "_vino_fastpath"


class Mutex(Protocol):
    """A graft's store lock: ``threading.Lock``, or the native ``Mutex`` (same interface)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None: ...


class ProtectedCall(Protocol):
    """A graft's native entry: called with the point's arguments, as ``Graft.invoke``."""

    def __call__(self, args: tuple[object, ...], /) -> object: ...
    def unlink(self) -> None: ...
    def forget(self) -> None: ...


# Whether grafts take 4-5 (``Protected``, ``Mutex``) from the native module: read once.
_PROTECTED: Final = os.environ.get("VINO_FASTPATH", "native") != "crossings"

# The module built and imported, not yet initialised (``native()`` gives it wasmtime's
# entry points): the C bases of ``Stats`` and ``Usage`` need no more.
PART: Final = NativePart[ModuleType](
    "fast path", lambda: python_extension(_SOURCE, MODULE_NAME, "the native fast path"),
    off=("VINO_FASTPATH",))
_READY: list[ModuleType | None] = []  # [PART's module given wasmtime's entry points, or None]
_LOCK: Final = threading.Lock()


def native() -> ModuleType | None:
    """The fast path ready for use (given the entry points ``fastcall`` resolved), as
    ``fastcall`` takes it (``native=``); None when it cannot be had (``PART.reason``)."""
    if _READY:
        return _READY[0]
    mod = PART.get()
    with _LOCK:
        if not _READY:
            if mod is not None:
                mod.init(*fastcall.native_entry_points())
            _READY.append(mod)
    return _READY[0]


def protected(native: ModuleType | None) -> ModuleType | None:
    """``native`` (a sandbox's fast path) for a graft's protected call and store lock, or
    None: they stay Python (``Graft.invoke``, ``threading.Lock``)."""
    return native if _PROTECTED else None
