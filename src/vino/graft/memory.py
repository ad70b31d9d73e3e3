"""A bounds-checked window on one graft instance's linear memory.

    view = MemoryView(store, memory)     # or MemoryView.at(ctx, memp, keep) (store.py)
    view.read(offset, length)            # bytes; WildPointer outside [0, size)
    view.write(offset, data)
    buf = view.window(offset, length)    # a writable memoryview, valid until memory grows

How the host reads and writes a graft's memory: the graft-callables' accessors
(hostapi.py) and the point's buffer (invoke.py) go through it. It calls wasmtime's C
functions through ``fastcall``'s typed function objects (``memory_data``,
``memory_data_size``, ``memory_of``), never the private bindings themselves.

Invariant: ``base`` and ``size`` are the memory's as last read (``refresh``); a range
outside ``size`` is checked again against a fresh read before it is called wild, so a
graft that has grown its memory since is not refused. The memory never moves (the
engine is configured with ``memory_may_move`` off), so a grown memory keeps its base.
"""

from __future__ import annotations

import ctypes
from typing import Final

import wasmtime

from vino.errors import WildPointer
from vino.graft.fastcall import memory_data, memory_data_size, memory_of

# A memoryview straight over memory (format "B"): no ctypes object behind it, so one
# object fewer per graft for the cyclic collector.
_memory_view = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view.restype = ctypes.py_object
_memory_view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PYBUF_WRITE: Final = 0x200


class MemoryView:
    """A bounds-checked window on one instance's linear memory.

    ``refresh`` re-reads base and size; the owner calls it after every guest
    call whose memory size changed (``memory.grow`` may move the base unless the
    engine pins it). Reads and writes never leave [0, size).
    """

    __slots__ = ("_ctx", "_mem", "_memp", "base", "size")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self._bind(*memory_of(store, memory))

    @classmethod
    def at(cls, ctx: int, memp: int, keep: object) -> MemoryView:
        """The memory whose ``wasmtime_memory_t`` is at ``memp`` in the store of context
        ``ctx``; ``keep`` must keep that struct alive."""
        m = cls.__new__(cls)
        m._bind(ctx, memp, keep)
        return m

    def _bind(self, ctx: int, memp: int, keep: object) -> None:
        self._ctx = ctx
        self._mem = keep  # keeps the wasmtime_memory_t alive
        self._memp = memp
        self.base = 0
        self.size = 0
        self.refresh()

    def size_args(self) -> tuple[int, int]:
        """The arguments of ``memory_data_size`` for callers that inline it."""
        return (self._ctx, self._memp)

    def current_size(self) -> int:
        """The memory's size now, in bytes (one FFI call)."""
        return int(memory_data_size(self._ctx, self._memp))

    def refresh(self) -> int:
        """Re-read base and size; return the size in bytes."""
        self.base = memory_data(self._ctx, self._memp) or 0
        self.size = int(memory_data_size(self._ctx, self._memp))
        return self.size

    def check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            # The graft may have grown its memory since the size was read (the memory
            # never moves: memory_may_move is off): read it again before calling it wild.
            if offset >= 0 and length >= 0 and offset + length <= self.refresh():
                return
            raise WildPointer(
                f"[{offset}, {offset + length}) is outside linear memory of {self.size} bytes")

    def read(self, offset: int, length: int) -> bytes:
        self.check(offset, length)
        return ctypes.string_at(self.base + offset, length)

    def write(self, offset: int, data: bytes | bytearray) -> None:
        self.check(offset, len(data))
        ctypes.memmove(self.base + offset, bytes(data), len(data))

    def window(self, offset: int, length: int) -> memoryview:
        """A writable view of [offset, offset+length); valid until memory grows."""
        self.check(offset, length)
        return _memory_view(self.base + offset, length, _PYBUF_WRITE)  # type: ignore[no-any-return]
