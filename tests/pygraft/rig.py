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


_MODULES: dict[bytes, wasmtime.Module] = {}
_CONFIG = wasmtime.Config()
_CONFIG.consume_fuel = True  # a runaway graft stops instead of hanging the test
_ENGINE = wasmtime.Engine(_CONFIG)


@dataclass
class Rig:
    compiled: Compiled | bytes  # a compiled Python graft, or any graft's binary (a C sample)
    layout: Layout
    host: shim.Host = field(default_factory=shim.Host)

    def __post_init__(self) -> None:
        self.engine = _ENGINE
        self.store = wasmtime.Store(self.engine)
        self.store.set_fuel(10**9)
        wasm = self.compiled.wasm if isinstance(self.compiled, Compiled) else self.compiled
        module = _MODULES.get(wasm)
        if module is None:
            module = _MODULES[wasm] = wasmtime.Module(self.engine, wasm)
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
        names = {e.name for e in module.exports}
        self.msg: Any = ex["vino_message"] if "vino_message" in names else None
        self.at = int(ex["vino_buffer"](self.store))  # type: ignore[operator]
        if isinstance(self.compiled, Compiled):
            assert self.at == BUFFER_AT

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
        self.memory.write(self.store, bytes(buf), self.at)
        named = dict(zip((a.name for a in self.layout.args), args, strict=True))
        self.host.fields = shim.fields_of(self.layout, buf, named)
        self.store.set_fuel(10**9)
        try:
            ret = self.entry(self.store, *args)
        except wasmtime.Trap:
            ret = TRAP
        out = bytes(self.memory.read(self.store, self.at, self.at + len(buf)))
        return ret, out

    def message(self, data: bytes) -> int | None:
        self.memory.write(self.store, data, self.at)
        try:
            return int(self.msg(self.store, len(data)))
        except wasmtime.Trap:
            return TRAP
