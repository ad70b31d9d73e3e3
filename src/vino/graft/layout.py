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
from dataclasses import dataclass, field
from typing import Final

from vino.errors import InvalidDeclaration
from vino.graft.fastcall import I32


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
