"""A bare wasmtime instance of a compiled Python graft, for differential tests.

Runs the module outside any registry (no transaction, no validator), so a test
sees exactly what the compiled code computed -- or that it trapped -- and can
compare it with the same source run as plain Python through ``shim.run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import wasmtime

from vino.graft.layout import Layout
from vino.pygraft import shim
from vino.pygraft.compiler import BUFFER_AT, Compiled

TRAP = None  # what ``call`` returns when the graft trapped


@dataclass
class Rig:
    compiled: Compiled
    layout: Layout
    host: shim.Host = field(default_factory=shim.Host)

    def __post_init__(self) -> None:
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        self.engine = wasmtime.Engine(cfg)
        self.store = wasmtime.Store(self.engine)
        self.store.set_fuel(10**9)
        module = wasmtime.Module(self.engine, self.compiled.wasm)
        linker = wasmtime.Linker(self.engine)
        for imp in module.imports:
            assert imp.module == "vino" and imp.name is not None
            ty = imp.type
            assert isinstance(ty, wasmtime.FuncType)
            linker.define_func("vino", imp.name, ty, self._import(imp.name))
        self.instance = linker.instantiate(self.store, module)
        ex = self.instance.exports(self.store)
        self.memory: wasmtime.Memory = ex["memory"]  # type: ignore[assignment]
        self.entry: wasmtime.Func = ex[self.layout.entry]  # type: ignore[assignment]
        self.msg: Any = ex["vino_message"] if self.compiled.has_message else None
        assert ex["vino_buffer"](self.store) == BUFFER_AT  # type: ignore[operator]

    def _import(self, name: str) -> Any:
        h = self.host

        def call(*args: int) -> Any:
            if name == "log":
                ptr, n = args
                h.logs.append(bytes(self.memory.read(self.store, ptr, ptr + n)).decode())
                return None
            if name == "default":
                return h.default(h.fields) if h.default else 0
            if name == "lock":
                return h.locks(args[0])
            if name == "now":
                return h.clock()
            h.calls.append((name, *args))
            return 0 if name != "kfree" else None

        return call

    def call(self, buf: bytes | bytearray, args: tuple[int, ...] = ()) -> tuple[int | None, bytes]:
        """(answer or TRAP, the buffer afterwards)."""
        self.memory.write(self.store, bytes(buf), BUFFER_AT)
        named = dict(zip((a.name for a in self.layout.args), args, strict=True))
        self.host.fields = shim.fields_of(self.layout, buf, named)
        self.store.set_fuel(10**9)
        try:
            ret = self.entry(self.store, *args)
        except wasmtime.Trap:
            ret = TRAP
        out = bytes(self.memory.read(self.store, BUFFER_AT, BUFFER_AT + len(buf)))
        return ret, out

    def message(self, data: bytes) -> int | None:
        self.memory.write(self.store, data, BUFFER_AT)
        try:
            return int(self.msg(self.store, len(data)))
        except wasmtime.Trap:
            return TRAP
