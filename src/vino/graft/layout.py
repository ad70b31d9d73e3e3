"""A graft point's buffer layout, declared once: fields, offsets, counts, element structs.

A ``Layout`` says what a point's buffer holds, byte by byte (little-endian,
packed), and how the entry is called. Host code, tools and front ends read it
instead of restating offsets:

    RA = Layout(point="fs.readahead", entry="vino_readahead", buffer_size=256,
                fields=Struct("vino_ra_buf", (Field("file_blocks", U32, 0), ...)))
    RA.field("hist").offset          # 16
    RA.fields.format()               # "<IIII16I32I": a struct format for the whole record
    RA.rows("hist", 3)               # struct "<IIII3I": the scalars before hist, 3 entries
    RA.elements("out", 2)            # struct "<2I": out[0..2), read at RA.field("out").offset

Encoders and decoders take their structs from ``rows`` and ``elements`` (cached per
count), so no format string or offset is written anywhere but in the layout.

An array of rows offered call after call (eviction candidates, runnable threads)
is kept packed between calls by a ``PackedRows``: only the rows that changed are
packed again, and each call copies header and rows into the graft's buffer in
one slice assignment -- the same bytes a fresh ``rows(array, n).pack_into`` writes.

Vocabulary:
- a ``Field`` is a scalar (``count`` is None) or an array of ``count`` elements; an
  element is a scalar kind or a ``Struct`` (a row, e.g. one eviction candidate);
- ``valid`` names the scalar field that says how many elements of an array hold
  data (``n_hist`` for ``hist``); readers clamp it to ``count``;
- ``writable`` marks the fields the graft answers in (``out``, ``data``);
- ``args`` are the entry's Wasm parameters, in order (``fs.filter``'s direction and
  length); ``result`` its result kind.
- ``callables`` names the point's own graft-callables beyond the common ones, with
  their Wasm types, so a compiler can target a point without a running host.

Invariant: fields of a struct are listed in offset order, do not overlap, and end
within the struct's ``size`` (checked at construction); pads are fields too, so
a struct's format covers every byte it declares.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from vino.errors import InvalidDeclaration
from vino.graft.fastcall import I32

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Kind:
    """A scalar's machine type: its size in bytes, struct code, signedness."""

    name: str
    size: int
    code: str  # the ``struct`` format character
    signed: bool


U8: Final = Kind("u8", 1, "B", False)
U32: Final = Kind("u32", 4, "I", False)
I32K: Final = Kind("i32", 4, "i", True)
U64: Final = Kind("u64", 8, "Q", False)
KINDS: Final = {k.name: k for k in (U8, U32, I32K, U64)}


@dataclass(frozen=True, slots=True)
class Field:
    """One named field at a byte offset: a scalar, or ``count`` elements of ``elem``."""

    name: str
    elem: Kind | Struct
    offset: int
    count: int | None = None  # None: a scalar
    valid: str | None = None  # the scalar field counting the valid elements of an array
    writable: bool = False  # the graft answers here
    pad: bool = False  # reserved bytes: not offered to grafts

    @property
    def elem_size(self) -> int:
        return self.elem.size

    @property
    def size(self) -> int:
        return self.elem_size * (1 if self.count is None else self.count)

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Struct:
    """A packed little-endian record: the buffer itself, or one row of an array."""

    name: str
    fields: tuple[Field, ...]
    size: int = 0  # 0: the end of the last field

    def __post_init__(self) -> None:
        end = 0
        for f in self.fields:
            if f.offset < end:
                raise InvalidDeclaration(f"{self.name}.{f.name} at {f.offset} overlaps the field "
                                         f"before it (ends at {end})")
            if f.count is not None and f.count <= 0:
                raise InvalidDeclaration(f"{self.name}.{f.name}: an array needs a positive count")
            end = f.end
        if self.size == 0:
            object.__setattr__(self, "size", end)
        elif end > self.size:
            raise InvalidDeclaration(f"{self.name}: fields end at {end}, past its size {self.size}")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def format(self) -> str:
        """A ``struct`` format for the whole record (pads and gaps as ``x``)."""
        out = ["<"]
        at = 0
        for f in self.fields:
            if f.offset > at:
                out.append(f"{f.offset - at}x")
            if f.pad:
                out.append(f"{f.size}x")
            elif isinstance(f.elem, Struct):
                inner = f.elem.format()[1:]
                out.append(inner * (f.count or 1))
            else:
                out.append(f.elem.code if f.count is None else f"{f.count}{f.elem.code}")
            at = f.end
        if self.size > at:
            out.append(f"{self.size - at}x")
        return "".join(out)

    def struct(self) -> struct.Struct:
        return struct.Struct(self.format())

    def format_before(self, name: str) -> str:
        """A format (no byte-order prefix) for bytes ``[0, offset of name)``, pads as ``x``."""
        stop = self.field(name).offset
        head = Struct(self.name, tuple(f for f in self.fields if f.end <= stop), stop)
        return head.format()[1:]


def elements_format(f: Field, n: int) -> str:
    """A format (no byte-order prefix) for ``n`` elements of ``f``, their pads as ``x``."""
    if isinstance(f.elem, Struct):
        return f.elem.format()[1:] * n
    return f"{n}{f.elem.code}" if n != 1 else f.elem.code


@dataclass(frozen=True, slots=True)
class Arg:
    """One Wasm parameter of a point's entry."""

    name: str
    wasm: str = I32


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything a graft of one point sees: its entry, arguments, buffer and callables."""

    point: str
    entry: str
    buffer_size: int  # bytes the point declares (at least ``fields.size``)
    fields: Struct
    args: tuple[Arg, ...] = ()
    kind: str = "function"  # or "event"
    # The point's own graft-callables: name -> (Wasm params, Wasm results).
    callables: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    # (kind, array, count) -> its struct; filled on first use (counts are bounded by the
    # arrays' sizes, so this holds at most one struct per count).
    _structs: dict[tuple[str, str, int], struct.Struct] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fields.size > self.buffer_size:
            raise InvalidDeclaration(f"{self.point}: the layout needs {self.fields.size} bytes, "
                                     f"the buffer has {self.buffer_size}")
        names = {f.name for f in self.fields.fields}
        for f in self.fields.fields:
            if f.valid is not None and f.valid not in names:
                raise InvalidDeclaration(
                    f"{self.point}.{f.name}: counted by unknown field {f.valid!r}")

    def field(self, name: str) -> Field:
        return self.fields.field(name)

    def rows(self, array: str, n: int) -> struct.Struct:
        """A struct for the fields before ``array`` and its first ``n`` elements: how an
        encoder fills a buffer (header and rows) in one ``pack_into`` at offset 0.
        Pads are ``x`` bytes, so a row takes only its non-pad values."""
        key = ("rows", array, n)
        s = self._structs.get(key)
        if s is None:
            f = self._array(array, n)
            s = struct.Struct("<" + self.fields.format_before(array) + elements_format(f, n))
            self._structs[key] = s
        return s

    def elements(self, array: str, n: int) -> struct.Struct:
        """A struct for ``n`` elements of ``array`` alone (read or written at its offset)."""
        key = ("elements", array, n)
        s = self._structs.get(key)
        if s is None:
            s = struct.Struct("<" + elements_format(self._array(array, n), n))
            self._structs[key] = s
        return s

    def _array(self, name: str, n: int) -> Field:
        f = self.field(name)
        if f.count is None or not 0 <= n <= f.count:
            raise InvalidDeclaration(f"{self.point}.{name}: {n} elements do not fit "
                                     f"{'a scalar' if f.count is None else f'its {f.count}'}")
        return f


# Repack every row in one pack_into when more than 1/REPACK_ALL_FRACTION of them changed
# (one struct call for all beats one call a row once more than a few rows are new).
REPACK_ALL_FRACTION: Final = 4


class PackedRows(Generic[T]):
    """The header and rows of one array of a layout, kept packed between calls.

    ``write(buf, rows)`` leaves in ``buf`` exactly the bytes a fresh
    ``layout.rows(array, n).pack_into(buf, 0, *header, *values(row) for each row)``
    writes (``header``: the scalars before the array, its count ``n`` among them),
    but packs only the rows that changed since the last call: a row is unchanged if
    it is the same (immutable) object at the same position, or the whole list is
    equal; a window that moved on (the old rows from ``k`` on now first, as
    ``vm.evict``'s candidates move with the clock hand) keeps those rows' bytes.
    Every call then copies header and rows from the host's copy into ``buf`` in one
    slice assignment, so whatever the graft wrote into its buffer since, it sees
    exactly this call's inputs. Used by one point for one stream of inputs (a
    target); any stream is correct, a steady one is fast.

    The header's scalars are the array's count (the field its ``valid`` names) and
    constants given once (``head``: the others' values, in layout order, e.g.
    ``vm.evict``'s ``max_more``). Rows must be immutable (frozen dataclasses): a row
    changed in place would not be seen.

    Invariant: ``_packed[:size(len(_shadow))]`` holds the header and rows of ``_shadow``
    as ``rows(array, len(_shadow))`` packs them, and ``_src`` is that slice of it. A
    call owns them while it holds the one token (``_token``, taken by ``list.pop``,
    atomic); a call that finds it taken packs its rows afresh, straight into its buffer.
    """

    __slots__ = (
        "_array",
        "_consts",
        "_count",
        "_count_at",
        "_head",
        "_layout",
        "_packed",
        "_row",
        "_shadow",
        "_src",
        "_token",
        "_values",
        "_view",
    )

    def __init__(self, layout: Layout, array: str, values: Callable[[T], tuple[int, ...]],
                 head: tuple[int, ...] = ()) -> None:
        f = layout.field(array)
        if f.count is None or not isinstance(f.elem, Struct) or f.valid is None:
            raise InvalidDeclaration(f"{layout.point}.{array}: not an array of counted rows")
        scalars = [g for g in layout.fields.fields if g.end <= f.offset and not g.pad]
        count = layout.field(f.valid)
        if any(g.count is not None for g in scalars) or count not in scalars:
            raise InvalidDeclaration(f"{layout.point}.{array}: the fields before it are not "
                                     f"scalars holding its count")
        if len(head) != len(scalars) - 1:
            raise InvalidDeclaration(f"{layout.point}.{array}: {len(head)} header values for "
                                     f"its {len(scalars) - 1} scalars besides the count")
        self._layout = layout
        self._array = array
        self._count = f.count
        self._count_at = scalars.index(count)
        self._consts = head
        self._head = f.offset
        self._row = layout.elements(array, 1)
        self._values = values
        self._packed = bytearray(f.offset + f.count * self._row.size)
        self._view = memoryview(self._packed)
        self._shadow: list[T] = []
        self._src = self._view[:f.offset]
        self._token = [0]
        layout.rows(array, 0).pack_into(self._packed, 0, *self._header(0))

    def _header(self, n: int) -> list[int]:
        values = list(self._consts)
        values.insert(self._count_at, n)
        return values

    def size(self, n: int) -> int:
        """Bytes of the header and ``n`` rows."""
        return self._head + n * self._row.size

    def write(self, buf: memoryview, rows: Sequence[T]) -> None:
        """Put ``rows`` (at most the array's count) and their count at the start of ``buf``."""
        try:
            token = self._token.pop()
        except IndexError:  # another thread is writing: pack this call on its own
            self.fresh(buf, rows)
            return
        try:
            if rows != self._shadow:
                self._update(rows if type(rows) is list else list(rows))
            src = self._src
            buf[:len(src)] = src
        finally:
            self._token.append(token)

    def fresh(self, buf: memoryview, rows: Sequence[T]) -> None:
        """Pack header and ``rows`` straight into ``buf``, from scratch (what ``write``
        must equal)."""
        n = len(rows)
        if n > self._count:
            raise InvalidDeclaration(f"{self._layout.point}.{self._array}: {n} rows do not "
                                     f"fit its {self._count}")
        flat = self._header(n)
        add = flat.extend
        values = self._values
        for r in rows:
            add(values(r))
        self._layout.rows(self._array, n).pack_into(buf, 0, *flat)

    def _update(self, rows: list[T]) -> None:
        old = self._shadow
        packed = self._packed
        head, size = self._head, self._row.size
        n, m = len(rows), len(old)
        if n > self._count:
            raise InvalidDeclaration(f"{self._layout.point}.{self._array}: {n} rows do not "
                                     f"fit its {self._count}")
        try:
            if n and m and rows[0] is not old[0]:
                first = rows[0]
                for k in range(1, m):
                    if old[k] is first:  # the window moved on by k rows: keep their bytes
                        packed[head:head + (m - k) * size] = self._view[head + k * size:
                                                                        head + m * size]
                        old = old[k:]
                        m -= k
                        break
            changed = [i for i in range(n) if i >= m or rows[i] is not old[i]]
            if len(changed) * REPACK_ALL_FRACTION > n:
                self.fresh(self._view, rows)
            else:
                self._layout.rows(self._array, 0).pack_into(packed, 0, *self._header(n))
                pack, values = self._row.pack_into, self._values
                for i in changed:
                    pack(packed, head + i * size, *values(rows[i]))
        except BaseException:  # a row that does not pack: start again from no rows
            self._layout.rows(self._array, 0).pack_into(packed, 0, *self._header(0))
            self._shadow = []
            self._src = self._view[:head]
            raise
        self._src = self._view[:head + n * size]
        self._shadow = rows.copy()
