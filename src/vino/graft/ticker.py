"""The epoch ticker: the one thread that advances a sandbox engine's epoch.

A running graft meets its store's epoch deadline at the next tick; the store's
callback then decides whether it goes on (budget left, not doomed) or stops.

Two implementations, one interface (``ensure_running``, ``stop``, and
``counter``, whose ``.value`` is the number of ticks so far — read on the hot
path, so it is a plain attribute on both):

- ``NativeTicker`` (preferred): a pthread in a tiny C library
  (``native/ticker.c``), compiled once per machine (``nativebuild.native_library``:
  the ``ziglang`` package that vino already depends on, a cache keyed on the bytes
  built from) and loaded with ctypes. It never needs the GIL.
- ``PythonTicker``: a daemon Python thread. It needs the GIL once per tick, and
  takes it while the host is busy in Python, so the next graft call pays for
  the hand-over (measured: tens of µs per call on a busy host).

``make_ticker`` builds the native one and falls back to the Python one if the
platform is not Linux, the compiler is missing, or the build fails (it says why);
``VINO_TICKER=python``, read for each sandbox, forces the fallback. The library is
built and found once per process (``LIBRARY``, ``nativepart.py``).
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from pathlib import Path
from typing import Final, Protocol

import wasmtime

from vino.graft import fastcall
from vino.graft.nativebuild import native_library
from vino.graft.nativepart import NativePart

_SOURCE: Final = Path(__file__).resolve().parent / "native" / "ticker.c"
# The compiled ticker; each sandbox loads it (ctypes) for a ticker of its own.
LIBRARY: Final = NativePart[Path]("epoch ticker", lambda: native_library(_SOURCE))


class TickCount(Protocol):
    @property
    def value(self) -> int: ...


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class Ticker(Protocol):
    kind: str
    counter: TickCount

    def ensure_running(self) -> None: ...

    def stop(self) -> None: ...


class PythonTicker:
    """A daemon Python thread calling ``engine.increment_epoch()`` every ``tick_s``."""

    kind = "python"

    def __init__(self, engine: wasmtime.Engine, tick_s: float) -> None:
        self._engine = engine
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._count = _Count()
        self.counter: TickCount = self._count

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                t = threading.Thread(target=self._run, name="vino-epoch-ticker", daemon=True)
                t.start()
                self._thread = t

    def _run(self) -> None:
        wait = self._stop.wait
        counter = self._count
        while not wait(self.tick_s):
            self._engine.increment_epoch()
            counter.value += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class _TickerStruct(ctypes.Structure):
    _fields_ = [  # the layout of struct vino_ticker in ticker.c
        ("inc", ctypes.c_void_p),
        ("engine", ctypes.c_void_p),
        ("period_ns", ctypes.c_int64),
        ("stop", ctypes.c_int32),
        ("ticks", ctypes.c_uint64),
        ("thread", ctypes.c_ulong),
    ]


def _stop_native(lib: ctypes.CDLL, state: _TickerStruct, running: list[bool],
                 engine: wasmtime.Engine) -> None:
    # Runs when the ticker is stopped or collected: the engine (held here) outlives it.
    if running[0]:
        running[0] = False
        lib.vino_ticker_stop(ctypes.byref(state))


class NativeTicker:
    """A pthread advancing the epoch without the GIL (``native/ticker.c``)."""

    kind = "native"

    def __init__(self, engine: wasmtime.Engine, tick_s: float, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._lib.vino_ticker_start.argtypes = [ctypes.POINTER(_TickerStruct)]
        self._lib.vino_ticker_stop.argtypes = [ctypes.POINTER(_TickerStruct)]
        self.tick_s = tick_s
        self._state = _TickerStruct()
        inc, engine_ptr = fastcall.epoch_incrementer(engine)
        self._state.inc = inc
        self._state.engine = engine_ptr
        self._state.period_ns = int(tick_s * 1e9)
        self.counter: TickCount = ctypes.c_uint64.from_address(
            ctypes.addressof(self._state) + _TickerStruct.ticks.offset)
        self._running = [False]
        self._start_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop_native, self._lib, self._state,
                                           self._running, engine)

    def ensure_running(self) -> None:
        if self._running[0]:
            return
        with self._start_lock:
            if not self._running[0]:
                if self._lib.vino_ticker_start(ctypes.byref(self._state)) != 0:
                    raise OSError("pthread_create failed for the epoch ticker")
                self._running[0] = True

    def stop(self) -> None:
        self._finalizer()


def make_ticker(engine: wasmtime.Engine, tick_s: float,
                native: bool | None = None) -> tuple[Ticker, str]:
    """The native ticker if it can be had (``native`` None or True), else the Python one.

    Returns the ticker and, for the Python fallback, why the native one was not used.
    """
    if native is None:
        native = os.environ.get("VINO_TICKER", "native") != "python"
    if not native:
        return PythonTicker(engine, tick_s), "asked for the Python ticker"
    library = LIBRARY.get()
    if library is None:
        return PythonTicker(engine, tick_s), LIBRARY.reason
    try:
        return NativeTicker(engine, tick_s, library), ""
    except OSError as exc:
        return PythonTicker(engine, tick_s), str(exc)
