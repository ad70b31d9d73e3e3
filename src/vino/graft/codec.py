"""Codecs a point declares instead of writing them: inputs in, a checked answer out.

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

The kernel's points declare theirs with the rest (``kernel/points.py``):

- ``Rows(layout, array, head, rows, what)``: the scalars before an array and its first
  ``n`` elements in one pack -- ints, tuples of ints (``sched.pick``'s ``ThreadInfo``
  rows), or rows kept packed by the kernel (``vm.evict``'s ``PageInfo.row``, copied);
  each value a ``From``: an argument, an attribute path of one or of a held object
  (``fs.readahead``'s file blocks, ``max_out`` and history), ceil-divided or capped;
- ``IndexOf(arg, what)``: an index among an argument's candidates (``sched.pick``);
- ``Batch(layout, more, arg, unit, what)``: a victim, or a victim and up to ``more``'s
  count of further distinct ones (``vm.evict``);
- ``Elements(layout, array, most, below, what, noun, end)``: a count and that many
  distinct elements below a bound (``fs.readahead``'s blocks).

The native protected call (``fastpath.c``'s ``Protected``) recognises them and runs
their common case in C, with no Python call: exact ``int`` values within their fields'
ranges written straight into the buffer (everything read and checked before the first
byte is written), an answer the checks accept built as the Python builds it. Anything
else -- a ``bool`` or another ``int`` subclass, a value out of range, a row of another
shape or size, a sequence other than a list, tuple or deque, an attribute whose read
could run code, a buffer gone or too short, an answer the checks refuse -- calls the
Python codec itself, so errors, messages and the bytes written are the Python codec's
by construction. ``tests/graft/test_codec.py`` and ``tests/kernel/test_point_codecs.py``
run both on the same inputs and answers, hostile ones included.

Invariant: a codec is immutable; ``plan`` describes exactly what ``__call__`` does
in the common case (the native side compiles it once per codec and keeps the plan).
"""

from __future__ import annotations

import itertools
import operator
import struct
from collections.abc import Iterable, Sequence
from typing import Final

from vino.errors import InvalidDeclaration, InvalidResult
from vino.graft.fastcall import I64
from vino.graft.layout import U8, U32, Field, Kind, Layout

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


# ---- sources: where a plan's value comes from ------------------------------------------

class From:
    """A value a codec reads: the call's argument ``arg`` (or, with ``obj``, that object),
    then each attribute of ``path`` in turn; ceil-divided by ``div`` if given, then held to
    at most ``cap`` if given. ``From(0, "inode", "size", div=4096)`` is a file's blocks.

    The native side follows an attribute only where reading it cannot run code (an
    instance's dict entry or a ``__slots__`` member, on a type with the ordinary lookup,
    no dict on the way holding a key that is no str, whose ``__eq__`` a lookup could
    call); anywhere else the codec's Python reads it.
    """

    __slots__ = ("arg", "cap", "div", "obj", "path", "plan")

    def __init__(self, arg: int | None, *path: str, obj: object = None, div: int = 0,
                 cap: int | None = None) -> None:
        if (arg is None) == (obj is None):
            raise InvalidDeclaration("From: an argument index or an object, not both")
        if div < 0 or (cap is not None and not 0 <= cap < 1 << 63):
            raise InvalidDeclaration(f"From: div {div}, cap {cap}")
        self.arg = arg
        self.obj = obj
        self.path = path
        self.div = div
        self.cap = cap
        self.plan = (-1 if arg is None else arg, obj, path, div, -1 if cap is None else cap)

    def __call__(self, args: Sequence[object]) -> object:
        v = args[self.arg] if self.arg is not None else self.obj
        for name in self.path:
            v = getattr(v, name)
        if self.div:
            v = -(-v // self.div)  # type: ignore[operator]
        cap = self.cap
        if cap is not None and not v < cap:  # type: ignore[operator]
            v = cap
        return v

    def __repr__(self) -> str:
        return f"From{self.plan!r}"


COUNT: Final = "count"  # Rows' head: the number of elements written


def _head_steps(layout: Layout, f: Field, head: Sequence[From | str]
                ) -> tuple[tuple[str, int, object], ...]:
    """The plan of the scalars before the array ``f``: (struct code, offset, the From's
    plan or None for COUNT) each, pads aside."""
    before = [g for g in layout.fields.fields if g.end <= f.offset and not g.pad]
    if len(before) != len(head):
        raise InvalidDeclaration(f"{layout.point}: {len(head)} values for the "
                                 f"{len(before)} scalars before {f.name}")
    steps: list[tuple[str, int, object]] = []
    for g, h in zip(before, head, strict=True):
        if g.count is not None or not isinstance(g.elem, Kind) \
                or g.elem.code not in BUFFER_KINDS:
            raise InvalidDeclaration(f"{layout.point}.{g.name}: not a scalar field")
        if not (h == COUNT or isinstance(h, From)):
            raise InvalidDeclaration(f"{layout.point}.{g.name}: From or COUNT, not {h!r}")
        steps.append((g.elem.code, g.offset, None if h == COUNT else h.plan))  # type: ignore[union-attr]
    return tuple(steps)


class Rows:
    """``encode``: the scalars before the array ``array`` (``Layout.rows``: pads and gaps
    as zero bytes), then its first ``n`` elements, in one pack at offset 0; answers ``()``.

    ``head`` gives each scalar before the array, in order (pads aside): a ``From``, or
    ``COUNT`` for ``n``. ``rows`` gives the elements, a sequence: of ints for an array of
    scalars; of tuples of ints in the row's field order (pads aside) for an array of
    structs, or, with ``attr``, of objects whose attribute ``attr`` holds the row packed
    (bytes of the row's size). More elements than the array holds: ``too_many`` raised
    (``"<what>: <n> candidates; the buffer holds <count>"``), or, if it is None, the first
    ``count`` of them taken.
    """

    __slots__ = ("_head", "_pack", "_rows", "array", "attr", "count", "layout", "plan",
                 "too_many", "what")

    def __init__(self, layout: Layout, array: str, head: Sequence[From | str], rows: From,
                 what: str, *, attr: str | None = None,
                 too_many: type[Exception] | None = None) -> None:
        f = layout.field(array)
        if f.count is None or f.pad:
            raise InvalidDeclaration(f"{layout.point}.{array}: not an array")
        steps = _head_steps(layout, f, head)
        elem = f.elem
        shape: tuple[object, ...]
        if attr is not None:
            shape = ("s", attr)  # each row's attribute: its bytes
        elif isinstance(elem, Kind):
            if elem.code not in BUFFER_KINDS:
                raise InvalidDeclaration(f"{layout.point}.{array}: kind {elem.name} has no codec")
            shape = ("k", elem.code)
        else:
            cols = []
            for g in elem.fields:
                if g.pad:
                    continue
                if g.count is not None or not isinstance(g.elem, Kind) \
                        or g.elem.code not in BUFFER_KINDS:
                    raise InvalidDeclaration(f"{elem.name}.{g.name}: not a scalar field")
                cols.append((g.elem.code, g.offset))
            shape = ("t", tuple(cols))
        count = f.count
        if attr is None:
            self._pack = tuple(layout.rows(array, n) for n in range(count + 1))
        else:
            head_fmt = layout.fields.format_before(array)
            self._pack = tuple(struct.Struct(f"<{head_fmt}" + f"{f.elem_size}s" * n)
                               for n in range(count + 1))
        self.layout = layout
        self.array = array
        self.attr = attr
        self.count = count
        self.what = what
        self.too_many = too_many
        self._head = tuple(head)
        self._rows = rows
        self.plan: tuple[object, ...] = (steps, rows.plan, f.offset, f.elem_size, count,
                                         too_many is not None, shape)

    def __call__(self, buf: memoryview, *args: object) -> tuple[int, ...]:
        rows: Sequence[object] = self._rows(args)  # type: ignore[assignment]
        n = len(rows)
        if n > self.count:
            if self.too_many is not None:
                raise self.too_many(f"{self.what}: {n} candidates; the buffer holds "
                                    f"{self.count}")
            rows = tuple(itertools.islice(rows, self.count))
            n = self.count
        head = [n if h == COUNT else h(args) for h in self._head]  # type: ignore[operator]
        attr = self.attr
        if attr is not None:
            values: Iterable[object] = map(operator.attrgetter(attr), rows)
        elif self.plan[6][0] == "t":  # type: ignore[index]
            values = itertools.chain.from_iterable(rows)  # type: ignore[arg-type]
        else:
            values = rows
        self._pack[n].pack_into(buf, 0, *head, *values)
        return ()

    def __repr__(self) -> str:
        return f"Rows({self.layout.point!r}, {self.array!r}, {self.plan!r})"


class IndexOf:
    """``decode``: the entry's result, if it indexes the call's argument ``arg`` (a
    sequence: ``0 <= result < len``); else rejected ("<what>: index <r> is not one of
    the <n> candidates")."""

    __slots__ = ("arg", "plan", "what")

    def __init__(self, arg: int, what: str) -> None:
        self.arg = arg
        self.what = what
        self.plan = (arg,)

    def __call__(self, buf: memoryview, ret: int, *args: object) -> int:
        n = len(args[self.arg])  # type: ignore[arg-type]
        if not 0 <= ret < n:
            raise InvalidResult(f"{self.what}: index {ret} is not one of the {n} candidates")
        return ret

    def __repr__(self) -> str:
        return f"IndexOf({self.arg}, {self.what!r})"


class Batch:
    """``decode``: an index among the ``n`` candidates of the call's argument ``arg``
    (answered as the int), or ``victim + unit * k`` naming ``k`` further candidates in the
    array ``more`` (answered as ``[victim, *more[0..k)]``). Rejected: an index not below
    ``n``, ``k`` above the array's count or negative, a further index not below ``n``, a
    candidate named twice."""

    __slots__ = ("_at", "_more", "arg", "max", "plan", "unit", "what")

    def __init__(self, layout: Layout, more: str, arg: int, unit: int, what: str) -> None:
        f = layout.field(more)
        if f.count is None or f.elem != U32 or unit <= 0:
            raise InvalidDeclaration(f"{layout.point}.{more}: not an array of u32 (or unit "
                                     f"{unit})")
        self.arg = arg
        self.unit = unit
        self.what = what
        self.max = f.count
        self._at = f.offset
        # The structs by count, compiled once: k further victims.
        self._more = tuple(layout.elements(more, k) for k in range(f.count + 1))
        self.plan = (arg, unit, f.offset, f.count)

    def __call__(self, buf: memoryview, ret: int, *args: object) -> int | list[int]:
        n = len(args[self.arg])  # type: ignore[arg-type]
        if 0 <= ret < n:  # one victim
            return ret
        k, victim = divmod(ret, self.unit)
        if not 0 < k <= self.max or victim >= n:
            raise InvalidResult(
                f"{self.what}: index {ret} is not one of the {n} candidates" if k == 0 else
                f"{self.what}: answer {ret} names victim {victim} and {k} more; expected a "
                f"victim below {n} and at most {self.max} more")
        more: tuple[int, ...] = self._more[k].unpack_from(buf, self._at)
        named = {victim, *more}
        for m in more:  # (not max(): it parses its keywords on every call)
            if m >= n:
                raise InvalidResult(f"{self.what}: further victim {m} is not one of the {n} "
                                    f"candidates")
        if len(named) != k + 1:
            raise InvalidResult(f"{self.what}: a candidate named twice in one batch")
        return [victim, *more]

    def __repr__(self) -> str:
        return f"Batch({self.what!r}, {self.plan!r})"


class Elements:
    """``decode``: the first ``ret`` elements of the u32 array ``array``, as a list, if
    ``0 <= ret <= most``, each element is below ``below`` and no two are equal; else
    rejected (``"<what>: <ret> <noun>s asked for; at most <most>"``, ``"<what>: <noun> <b>
    is past <end> (<below> <noun>s)"``, ``"<what>: duplicate <noun>s"``)."""

    __slots__ = ("_at", "_out", "below", "end", "most", "noun", "plan", "what")

    def __init__(self, layout: Layout, array: str, most: From, below: From, what: str,
                 noun: str, end: str) -> None:
        f = layout.field(array)
        if f.count is None or f.elem != U32:
            raise InvalidDeclaration(f"{layout.point}.{array}: not an array of u32")
        self.most = most
        self.below = below
        self.what = what
        self.noun = noun
        self.end = end
        self._at = f.offset
        self._out = tuple(layout.elements(array, n) for n in range(f.count + 1))
        self.plan = (most.plan, below.plan, f.offset, f.count)

    def __call__(self, buf: memoryview, ret: int, *args: object) -> list[int]:
        most: int = self.most(args)  # type: ignore[assignment]
        if not 0 <= ret <= most:
            raise InvalidResult(f"{self.what}: {ret} {self.noun}s asked for; at most {most}")
        if ret == 0:
            return []
        out: list[int] = list(self._out[ret].unpack_from(buf, self._at))
        below: int = self.below(args)  # type: ignore[assignment]
        for b in out:  # (not max(): it parses its keywords on every call)
            if b >= below:
                raise InvalidResult(f"{self.what}: {self.noun} {b} is past {self.end} "
                                    f"({below} {self.noun}s)")
        if ret > 1 and len(set(out)) != ret:
            raise InvalidResult(f"{self.what}: duplicate {self.noun}s")
        return out

    def __repr__(self) -> str:
        return f"Elements({self.what!r}, {self.plan!r})"


class Bytes:
    """``encode``: the scalars before the u8 array ``array`` (``head``: a ``From`` or
    ``COUNT`` each, as in ``Rows``), then the bytes ``data`` gives (bytes or a
    bytearray), copied into the array; answers the entry's arguments ``wasm`` (a
    ``From`` or ``COUNT`` each). More bytes than the array holds: ``too_many`` raised
    (``"<what>: <n> bytes; the buffer holds <count>"``)."""

    __slots__ = ("_at", "_data", "_head", "_head_struct", "_wasm", "count", "layout", "plan",
                 "too_many", "what")

    def __init__(self, layout: Layout, array: str, head: Sequence[From | str], data: From,
                 wasm: Sequence[From | str], what: str, *,
                 too_many: type[Exception] = ValueError) -> None:
        f = layout.field(array)
        if f.count is None or f.elem != U8:
            raise InvalidDeclaration(f"{layout.point}.{array}: not an array of u8")
        if len(wasm) != len(layout.args):
            raise InvalidDeclaration(f"{layout.point}: {len(wasm)} values for the "
                                     f"{len(layout.args)} Wasm parameters")
        steps = _head_steps(layout, f, head)
        for w in wasm:
            if not (w == COUNT or isinstance(w, From)):
                raise InvalidDeclaration(f"{layout.point}: From or COUNT, not {w!r}")
        self.layout = layout
        self.count = f.count
        self.what = what
        self.too_many = too_many
        self._at = f.offset
        self._head = tuple(head)
        self._head_struct = layout.rows(array, 0)
        self._data = data
        self._wasm = tuple(wasm)
        wasm_plan = tuple((None if w == COUNT else w.plan,  # type: ignore[union-attr]
                           1 if a.wasm == I64 else 0) for w, a in zip(wasm, layout.args,
                                                                      strict=True))
        self.plan: tuple[object, ...] = (steps, data.plan, f.offset, f.count, wasm_plan)

    def __call__(self, buf: memoryview, *args: object) -> tuple[int, ...]:
        data: bytes = self._data(args)  # type: ignore[assignment]
        n = len(data)
        if n > self.count:
            raise self.too_many(f"{self.what}: {n} bytes; the buffer holds {self.count}")
        self._head_struct.pack_into(
            buf, 0, *[n if h == COUNT else h(args) for h in self._head])  # type: ignore[operator]
        buf[self._at:self._at + n] = data
        return tuple([n if w == COUNT else w(args) for w in self._wasm])  # type: ignore[misc,operator]

    def __repr__(self) -> str:
        return f"Bytes({self.layout.point!r}, {self.plan!r})"


class BytesOf:
    """``decode``: the first ``len(args[arg])`` bytes of the u8 array ``array``, as
    bytes, if the entry answered exactly that length; else rejected ("<what>: returned
    length <r>, the block has <n>")."""

    __slots__ = ("_at", "arg", "plan", "what")

    def __init__(self, layout: Layout, array: str, arg: int, what: str) -> None:
        f = layout.field(array)
        if f.count is None or f.elem != U8:
            raise InvalidDeclaration(f"{layout.point}.{array}: not an array of u8")
        self.arg = arg
        self.what = what
        self._at = f.offset
        self.plan = (arg, f.offset, f.count)

    def __call__(self, buf: memoryview, ret: int, *args: object) -> bytes:
        n = len(args[self.arg])  # type: ignore[arg-type]
        if ret != n:
            raise InvalidResult(f"{self.what}: returned length {ret}, the block has {n}")
        return bytes(buf[self._at:self._at + ret])

    def __repr__(self) -> str:
        return f"BytesOf({self.what!r}, {self.plan!r})"
