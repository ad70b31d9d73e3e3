"""Codecs a point declares instead of writing them: scalar arguments in, a ranged answer out.

A point whose arguments (after the target) are plain integers and whose answer is
the entry's result within a range need not write its ``encode`` and ``decode``:

    LAY = Layout(point="app.pick", entry="pick", buffer_size=64,
                 fields=Struct("pick_buf", (Field("x", U32, 0),)))
    FunctionPoint(..., layout=LAY, encode=Scalars(LAY, ("x",)),
                  decode=InRange(0, 100, "pick"))

``Scalars(layout, into)`` puts argument i into the layout's scalar field (or the
entry's Wasm parameter, ``Layout.args``) named ``into[i]``; ``InRange(lo, hi, what)``
answers the entry's result when ``lo <= result <= hi`` and rejects it otherwise
(``InvalidResult``, "<what> answered <r>, not in <lo>..<hi>"). Both are plain
callables with the signatures of ``encode`` and ``decode`` (``point.py``), compiled
once from the layout (structs, offsets, which argument goes where).

The native protected call (``fastpath.c``'s ``Protected``) recognises them and runs
their common case in C, with no Python call: an ``int`` argument within its field's
range written straight into the buffer, a result within the range answered as it
is. Anything else -- a ``bool`` or another ``int`` subclass, a value out of range, a
buffer gone, a result out of range -- calls the Python codec itself, so errors,
messages and the bytes written are the Python codec's by construction.
``tests/graft/test_codec.py`` runs both on the same inputs.

Invariant: a codec is immutable; ``plan`` describes exactly what ``__call__`` does
for ``int`` arguments within range (the native side compiles it once per codec).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from vino.errors import InvalidDeclaration, InvalidResult
from vino.graft.fastcall import I64
from vino.graft.layout import Kind, Layout

# How the native side reads a plan: per argument, a letter and a number.
BUFFER_KINDS: Final = ("B", "I", "i", "Q")  # a scalar field's struct code, at its offset
WASM_I32: Final = "w"  # the entry's i32 parameter of that index
WASM_I64: Final = "W"  # the entry's i64 parameter of that index


class Scalars:
    """``encode``: each argument into one scalar field of the buffer or one Wasm
    parameter of the entry, by name (the layout's ``fields`` and ``args``)."""

    __slots__ = ("_fields", "_wasm", "layout", "nargs", "plan")

    def __init__(self, layout: Layout, into: Sequence[str]) -> None:
        args = {a.name: (i, a.wasm) for i, a in enumerate(layout.args)}
        fields: list[tuple[struct.Struct, int, int]] = []  # (struct, offset, argument)
        wasm: list[int | None] = [None] * len(layout.args)  # argument of each parameter
        plan: list[tuple[str, int]] = []
        for i, name in enumerate(into):
            if name in args:
                at, kind = args[name]
                wasm[at] = i
                plan.append((WASM_I64 if kind == I64 else WASM_I32, at))
                continue
            f = layout.field(name)
            if f.count is not None or not isinstance(f.elem, Kind) or f.pad:
                raise InvalidDeclaration(f"{layout.point}.{name}: not a scalar field")
            if f.elem.code not in BUFFER_KINDS:
                raise InvalidDeclaration(f"{layout.point}.{name}: kind {f.elem.name} has no "
                                         f"codec")
            fields.append((struct.Struct("<" + f.elem.code), f.offset, i))
            plan.append((f.elem.code, f.offset))
        if None in wasm:
            raise InvalidDeclaration(f"{layout.point}: every Wasm parameter needs an argument")
        self.layout = layout
        self.nargs = len(into)
        self._fields = tuple(fields)
        self._wasm = tuple(i for i in wasm if i is not None)
        self.plan: tuple[tuple[str, int], ...] = tuple(plan)

    def __call__(self, buf: memoryview, *args: object) -> tuple[int, ...]:
        if len(args) != self.nargs:
            raise TypeError(f"{self.layout.point}: {len(args)} arguments; the codec takes "
                            f"{self.nargs}")
        for s, offset, i in self._fields:
            s.pack_into(buf, offset, args[i])
        wasm = self._wasm
        # The entry's arguments as they came (RawFunc.call masks them to their width).
        return tuple([args[i] for i in wasm]) if wasm else ()  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Scalars({self.layout.point!r}, {self.plan!r})"


class InRange:
    """``decode``: the entry's result itself, if ``lo <= result <= hi``; else rejected
    (``InvalidResult``: the graft is aborted, the default answers)."""

    __slots__ = ("hi", "lo", "plan", "what")

    def __init__(self, lo: int, hi: int, what: str) -> None:
        if not -(1 << 31) <= lo <= hi < 1 << 31:
            raise InvalidDeclaration(f"{what}: range {lo}..{hi} is not within the i32 range")
        self.lo = lo
        self.hi = hi
        self.what = what
        self.plan = (lo, hi)

    def __call__(self, buf: memoryview, ret: int, *args: object) -> int:
        if not self.lo <= ret <= self.hi:
            raise InvalidResult(f"{self.what} answered {ret}, not in {self.lo}..{self.hi}")
        return ret

    def __repr__(self) -> str:
        return f"InRange({self.lo}, {self.hi}, {self.what!r})"
