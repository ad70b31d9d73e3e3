"""Module emission: a checked ``SourceModule`` to the text of one WebAssembly module.

    wat = emit_module(mod)        # then wasmtime.wat2wasm(wat), in compiler

The module holds, in order: the ``vino`` imports the graft uses (and only those, with
the point's or the common signatures), one memory (exported as ``memory``) sized for
the static data and ``STACK_RESERVE`` bytes of stack, the stack pointer ``$sp`` and its
base ``$sp0``, module state (scalars as mutable globals, arrays as data segments at
the offsets the front end planned, all-zero arrays left to the zeroed memory), the
``log`` strings, ``vino_buffer`` (the buffer's address), ``$grow_to`` when some function
has a frame, and every function (``function.FunctionCompiler``).

Invariant: the module's initial memory is what the loader will see: no function grows
memory unless it has a frame that does not fit, and then only by ``$grow_to``.
"""

from __future__ import annotations

from typing import Final

from vino.pygraft.calls import IMPORT_SIGS
from vino.pygraft.frontend import Repeat, SourceModule
from vino.pygraft.function import FunctionCompiler
from vino.pygraft.values import (
    BUFFER_AT,
    COMMON_CALLABLES,
    ELEM_SIZE,
    STACK_RESERVE,
    WASM_PAGE,
    WASM_T,
    align,
)


def _data(at: int, data: bytes) -> str:
    esc = "".join(f"\\{b:02x}" for b in data)
    return f'(data (i32.const {at}) "{esc}")'


def emit_module(mod: SourceModule) -> str:
    lay = mod.layout
    funcs: list[str] = []
    needs_grow = False
    for name, fn in mod.funcs.items():
        role = "entry" if name == mod.entry else "message" if name == mod.message else "helper"
        f = FunctionCompiler(mod, fn, role)
        funcs.append(f.compile())
        needs_grow |= f.frame > 0
    used = set(mod.imported) & (COMMON_CALLABLES | set(lay.callables))
    lines = ["(module"]
    for name in sorted(used):
        if name in lay.callables:
            params, results = lay.callables[name]
            sig = (f"(param {' '.join(params)})" if params else "") + (
                f" (result {' '.join(results)})" if results else "")
        else:
            sig = IMPORT_SIGS[name]
        lines.append(f'  (import "vino" "{name}" (func $i_{name} {sig}))')
    stack_base = align(mod.strings_at + len(mod.string_data), 16)
    pages = max(1, -(-(stack_base + STACK_RESERVE) // WASM_PAGE))
    lines.append(f'  (memory (export "memory") {pages})')
    lines.append(f"  (global $sp (mut i32) (i32.const {stack_base}))")
    lines.append(f"  (global $sp0 i32 (i32.const {stack_base}))")
    for st in mod.state.values():
        if st.type.startswith("list:"):
            elem = st.type[5:]
            init = st.init
            assert isinstance(init, list)
            if not any(init):
                continue
            vals = [init[0]] * init.n if isinstance(init, Repeat) else init
            size = ELEM_SIZE[elem]
            blob = b"".join((v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                            for v in vals)
            lines.append("  " + _data(st.at, blob))
        else:
            w = WASM_T[st.type]
            assert isinstance(st.init, int)
            v = st.init
            lines.append(f"  (global $g_{st.name} (mut {w}) ({w}.const {v}))")
    if mod.string_data:
        lines.append("  " + _data(mod.strings_at, bytes(mod.string_data)))
    lines.append(f'  (func (export "vino_buffer") (result i32) i32.const {BUFFER_AT})')
    if needs_grow:
        lines.append(_GROW)
    lines += funcs
    lines.append(")")
    return "\n".join(lines)


# Grows memory so that address ``need`` is inside it. If it cannot have all of it, it
# takes every page it can before stopping, so the host sees the memory over quota.
_GROW: Final = """(func $grow_to (param $need i32)
  local.get $need i32.const 65535 i32.add i32.const 16 i32.shr_u memory.size i32.sub
  memory.grow i32.const -1 i32.ne if return end
  loop $more i32.const 1 memory.grow i32.const -1 i32.ne br_if $more end
  unreachable)"""


