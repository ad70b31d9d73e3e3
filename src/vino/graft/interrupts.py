"""Signal handlers held off while a transaction ends, so that its ending is never cut short.

A Python signal handler runs on the main thread at the next point the interpreter checks
(a function's first instruction, a loop's back edge), and what it raises -- Ctrl-C's
``KeyboardInterrupt``, a ``SystemExit``, a time-out an application raises from
``SIGALRM`` -- surfaces there. Inside ``Transaction.abort`` it stopped the undo log half
way: the older entries never ran, the transaction's locks stayed held by a finished
transaction (every later waiter timed out, and a graft that waited was blamed and
removed), its undo charges were never given back. So while a transaction ends, a failed
call is recorded or a graft is removed (``with held():``), every signal whose handler is
Python code gets one that only notes it; when the scope ends the handlers are put back
and each noted signal's handler is run, in order, as the interpreter would have run it.
What the first of them raises is raised as the scope ends, and reaches the caller as any
interrupt of a call does (guarantee 12). A handler already pending as the scope is
entered or left runs there (``signal.signal`` runs pending handlers first); what it
raises is kept and raised when the scope ends, too.

Only the main thread runs Python signal handlers, so elsewhere the scope does nothing; it
nests (only the outermost one swaps). Cost: about 4 us a scope (every signal's handler
asked, one or two swapped and back). Left open: an interrupt at the first instructions
of ``abort`` itself, before the scope is entered, or a second signal arriving at the
instant a handler is being put back.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final, cast

Handler = Callable[[int, FrameType | None], object]

_MAIN: Final = threading.main_thread().ident
_SIGNALS: Final = tuple(int(s) for s in signal.valid_signals())
# The C functions under ``signal.getsignal`` and ``signal.signal``, whose Python wrappers
# turn numbers into enums (every signal's handler asked: 26 us that way, 3 us this way).
_getsignal: Final[Callable[[int], object]] = signal._signal.getsignal  # type: ignore[attr-defined]
_setsignal: Final[Callable[[int, object], object]] = signal._signal.signal  # type: ignore[attr-defined]


class _Held:
    """The main thread's one scope: its depth, the handlers put aside, what was noted."""

    __slots__ = ("depth", "noted", "pending", "saved")

    def __init__(self) -> None:
        self.depth = 0
        self.saved: list[tuple[int, Handler]] = []
        self.noted: list[tuple[int, FrameType | None]] = []
        self.pending: BaseException | None = None  # raised by a handler at the edges

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.noted.append((signum, frame))

    def _install(self, todo: list[tuple[int, Handler]]) -> None:
        """``signal.signal`` for each of ``todo`` (emptied), whatever a handler raises."""
        while todo:
            try:
                while todo:
                    s, h = todo[-1]
                    _setsignal(s, h)
                    todo.pop()
            except BaseException as exc:  # a pending handler ran first, and raised
                if self.pending is None:
                    self.pending = exc

    def __enter__(self) -> None:
        if threading.get_ident() != _MAIN:
            return
        if self.depth:
            self.depth += 1
            return
        note = self._note
        while True:
            try:
                saved = [(s, cast(Handler, h)) for s in _SIGNALS
                         if callable(h := _getsignal(s))]
                todo: list[tuple[int, Handler]] = [(s, note) for s, _ in saved]
                break
            except BaseException as exc:  # a pending handler ran first, and raised
                if self.pending is None:
                    self.pending = exc
        self.saved = saved
        self._install(todo)
        self.depth = 1

    def __exit__(self, *exc: object) -> None:
        if threading.get_ident() != _MAIN:
            return
        self.depth -= 1
        if self.depth:
            return
        saved, self.saved = self.saved, []
        self._install(list(saved))
        handlers = dict(saved)
        while self.noted:  # each handler that was held off, now
            signum, frame = self.noted.pop(0)
            try:
                handlers[signum](signum, frame)
            except BaseException as exc:
                if self.pending is None:
                    self.pending = exc
            finally:
                del frame
        pending, self.pending = self.pending, None
        if pending is not None:
            try:
                raise pending
            finally:  # no cycle through this frame: what it kept alive goes with it
                del pending


_HELD: Final = _Held()


def held() -> _Held:
    """A ``with`` scope in which no Python signal handler runs (the module docstring)."""
    return _HELD
