"""A native part: one of vino's C files, built and loaded once per process, or why not.

Each native part (the graft fast path, the stack guard, the epoch ticker's library,
the kernel's plain read) has a Python twin that runs whenever the part cannot be
had. ``NativePart`` is the one place that decides which of the two runs, and keeps
the reason; the module that owns a part makes it once, at import::

    PART: Final = NativePart("fast path", lambda: python_extension(...),
                             off=("VINO_FASTPATH",))
    mod = PART.get()     # the loaded part, or None: the Python twin runs
    PART.reason          # why None ("" while it is loaded or not yet tried)

The contract:

1. ``get()`` tries ``load`` at most once per process, under a lock (the callers of a
   first ``get`` that race wait for the one attempt), and answers the same from then
   on: the build cache (``nativebuild.py``) is consulted once, not per use.
2. The part is left out, without building anything, when one of its ``off``
   environment variables is ``python`` at that first ``get``; ``reason`` names it
   and ``failed`` stays False.
3. ``load`` reports a part that cannot be had here by raising ``OSError`` (not Linux,
   no compiler, a failed build) or ``ImportError``: the message is ``reason`` and
   ``failed`` is True. Anything else it raises is a bug in vino, not a fact about
   this machine: it propagates, nothing is recorded, and the next ``get`` tries again.
4. ``parts()`` lists every part made so far, in the order made; ``vino doctor``
   tries each and shows what it answered and why.

Invariant: once ``_tried`` is True, ``_value is None`` exactly when ``reason`` is
not empty, and none of them changes again (tests try a part under another
environment with ``again()``, a copy not yet tried).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

__all__ = ["NativePart", "parts"]

T = TypeVar("T", covariant=True)  # a part of a subclass is a part of its base

_PARTS: Final[list[NativePart[object]]] = []  # every part made, in order: parts()


class NativePart(Generic[T]):
    """One native part: ``load()``'s answer once per process, or the reason it has none."""

    def __init__(self, name: str, load: Callable[[], T], *, off: Sequence[str] = (),
                 listed: bool = True) -> None:
        self.name = name  # as ``vino doctor`` lists it: "fast path", "stack guard"...
        self._load = load
        self._off = tuple(off)  # environment variables whose value "python" leaves it out
        self._lock = threading.Lock()
        # Invariant (see the module): set under _lock, _tried last; then never changed.
        self._tried = False
        self._value: T | None = None
        self.reason = ""
        self.failed = False  # True: load raised (a build or import failed), not asked off
        if listed:
            _PARTS.append(self)

    def get(self) -> T | None:
        """The loaded part, or None (``reason`` says why): tried on the first call only."""
        if self._tried:
            return self._value
        with self._lock:
            if not self._tried:
                self._try()
        return self._value

    def _try(self) -> None:
        asked = [var for var in self._off if os.environ.get(var, "native") == "python"]
        if asked:
            self.reason = f"asked for the Python twin ({' or '.join(asked)}=python)"
        else:
            try:
                self._value = self._load()
            except (OSError, ImportError) as exc:
                self.reason = str(exc) or type(exc).__name__
                self.failed = True
        self._tried = True

    @property
    def tried(self) -> bool:
        """Whether ``get`` has decided (loaded, left out or failed)."""
        return self._tried

    def again(self) -> NativePart[T]:
        """A part like this one, not yet tried and not in ``parts()``: tests try it under
        another environment and leave the one in use as it is (a CPython extension is
        never imported twice into one process)."""
        part = NativePart(self.name, self._load, off=self._off, listed=False)
        return part


def parts() -> list[NativePart[object]]:
    """Every native part made so far (their modules imported), in the order made."""
    return list(_PARTS)
