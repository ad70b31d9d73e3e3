"""Test harness: run a sample graft directly under wasmtime's public API.

``load(name)`` instantiates ``samples/<name>.wasm`` in a fresh store, with every
``"vino"`` import it declares defined as a trivial Python function (returning
0 where a result is expected), and wraps it as a ``Graft`` that speaks the ABI
by hand: write inputs at the buffer, call the entry, read outputs back. No vino
runtime is involved, so these tests pin the samples' own decisions and the
buffer layouts of docs/ABI.md, independently of the host.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

import wasmtime

from vino.sdk.build import SAMPLES_DIR

# Every sample and its entry export.
ENTRIES: dict[str, str] = {
    "readahead_stride": "vino_readahead",
    "evict_keep": "vino_evict",
    "sched_interactive": "vino_pick",
    "chacha20_filter": "vino_filter",
    "chacha20_filter_scalar": "vino_filter",
    "chacha20_kernel": "vino_filter",  # the kernel's cipher: tests/kernel/test_kernel_cipher.py
    "null": "vino_readahead",
    "sqlite_readahead": "vino_readahead",
    "sqlite_evict": "vino_evict",
}

_ENGINE = wasmtime.Engine()


@functools.cache
def module(name: str) -> wasmtime.Module:
    """The compiled sample, shared by every test (compiling is the slow part).

    ``name`` is a C sample (``"evict_keep"``) or a port under its language's
    directory (``"rust/evict_keep"``).
    """
    return wasmtime.Module(_ENGINE, (SAMPLES_DIR / f"{name}.wasm").read_bytes())


@functools.cache
def module_of(data: bytes) -> wasmtime.Module:
    """A module compiled from bytes (a freshly built graft)."""
    return wasmtime.Module(_ENGINE, data)


def _stub(results: int) -> Callable[..., Any]:
    def stub(*_args: Any) -> int | None:
        return 0 if results else None

    return stub


class Graft:
    """One instance of a sample graft, driven through its exports."""

    def __init__(self, name: str | bytes) -> None:
        self.store = wasmtime.Store(_ENGINE)
        mod = module_of(name) if isinstance(name, bytes) else module(name)
        linker = wasmtime.Linker(_ENGINE)
        self.imports: list[str] = []
        for imp in mod.imports:
            assert imp.module == "vino", f"{name!r} imports {imp.module}.{imp.name}"
            assert imp.name is not None
            ty = imp.type
            assert isinstance(ty, wasmtime.FuncType)
            linker.define_func("vino", imp.name, ty, _stub(len(ty.results)))
            self.imports.append(imp.name)
        self.instance = linker.instantiate(self.store, mod)
        memory = self.instance.exports(self.store)["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.buffer = self.call("vino_buffer")

    def call(self, export: str, *args: int) -> int:
        func = self.instance.exports(self.store)[export]
        assert isinstance(func, wasmtime.Func)
        result = func(self.store, *args)
        assert isinstance(result, int)
        return result

    def write(self, data: bytes, at: int = 0) -> None:
        """Write ``data`` at byte ``at`` of the buffer."""
        self.memory.write(self.store, data, self.buffer + at)

    def read(self, length: int, at: int = 0) -> bytes:
        """Read ``length`` bytes at byte ``at`` of the buffer."""
        start = self.buffer + at
        return bytes(self.memory.read(self.store, start, start + length))

    def message(self, data: bytes) -> int:
        """Deliver a principal's message the way the host does."""
        self.write(data)
        return self.call("vino_message", len(data))

    # ---- per-point conveniences (layouts from docs/ABI.md) --------------------

    def readahead(self, file_blocks: int, block: int, max_out: int, hist: list[int]) -> list[int]:
        """Run fs.readahead; return the blocks it asks to prefetch."""
        padded = hist + [0] * (16 - len(hist))
        self.write(struct.pack("<4I16I", file_blocks, block, max_out, len(hist), *padded))
        self.write(b"\xee" * 128, at=80)  # garbage in out[] must not leak into the answer
        count = self.call("vino_readahead")
        assert count >= 0, count
        return list(struct.unpack(f"<{count}I", self.read(4 * count, at=80)))

    def evict(self, cands: list[tuple[int, int, int, int]]) -> list[int]:
        """Run vm.evict over (page_id, vpn, flags, last_use) candidates; return the
        victims it names in order (the victim, then any further ones in more[] at byte
        6152), or ``[answer]`` for a negative answer."""
        body = b"".join(struct.pack("<4IQ", p, v, f, 0, u) for p, v, f, u in cands)
        self.write(struct.pack("<II", len(cands), 0) + body)
        self.write(b"\xee" * 124, at=6152)  # garbage in more[] must not leak into the answer
        answer = self.call("vino_evict")
        if answer < 0:
            return [answer]
        k, victim = divmod(answer, 65536)
        return [victim, *struct.unpack(f"<{k}I", self.read(4 * k, at=6152))]

    def pick(self, threads: list[tuple[int, int, int, int, int]]) -> int:
        """Run sched.pick over (tid, priority, cpu_ns, waited_ns, flags) threads."""
        body = b"".join(struct.pack("<IiQQII", t, p, c, w, f, 0) for t, p, c, w, f in threads)
        self.write(struct.pack("<II", len(threads), 0) + body)
        return self.call("vino_pick")

    def filter(self, data: bytes, file_offset: int, direction: int = 0, file_id: int = 7) -> bytes:
        """Run fs.filter on ``data`` at ``file_offset``; return the transformed bytes."""
        self.write(struct.pack("<QII", file_offset, len(data), file_id) + data)
        result = self.call("vino_filter", direction, len(data))
        assert result == len(data), result
        return self.read(len(data), at=16)


def load(name: str | bytes) -> Graft:
    """A fresh instance of sample ``name`` (no ``.wasm`` suffix), or of module bytes."""
    return Graft(name)
