"""The one reader of the WebAssembly binary format in vino: numbers, names, sections.

Used by the loader's section scan (``loader.scan_sections``), the code scan
(``wasmscan.may_grow_memory``), the SDK's checks of a build (``sdk.build``: its
imports; dropping exported globals) and the fuzzer (``vino.testing.fuzz``: splicing
sections). Nothing here compiles or validates: it reads just enough structure for
those, and wasmtime's validator judges the rest.

    check_header(wasm, version=True)     # b"\\0asm" and, if asked, version 1
    for s in sections(wasm): ...         # Section(id, start, body, end), in order
    for imp in imports(wasm, s): ...     # Import(module, name, kind), lazily
    interface(wasm)                      # the imported and exported functions' types

Every reader takes the bytes and a position and returns the value and the next
position. Anything truncated or malformed raises ``MalformedWasm`` (a
``ValueError``) saying what; ``IndexError`` never escapes a reader but ``read_byte``
callers' own indexing.

The types of the functions a module imports and exports are read here too
(``interface``), never asked of wasmtime: its C API aborts the process when asked
the kind of a value type it has no code for (``v128``, since SIMD is compiled for
some points; typed references).

Invariant: ``sections`` never yields a section that runs past the end of the
module (``strict=False``, for the fuzzer, yields that one last and stops).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NamedTuple

from vino.errors import MalformedWasm

MAGIC: Final = b"\0asm"
VERSION_1: Final = b"\x01\0\0\0"
HEADER_BYTES: Final = 8  # magic + version

# Section ids (the binary format's numbering).
CUSTOM: Final = 0
TYPE: Final = 1
IMPORT: Final = 2
FUNCTION: Final = 3
TABLE: Final = 4
MEMORY: Final = 5
GLOBAL: Final = 6
EXPORT: Final = 7
START: Final = 8
ELEMENT: Final = 9
CODE: Final = 10
DATA: Final = 11

# Import and export kinds.
KIND_FUNCTION: Final = 0
KIND_TABLE: Final = 1
KIND_MEMORY: Final = 2
KIND_GLOBAL: Final = 3

_U32_MAX_SHIFT: Final = 28  # a u32 takes at most five LEB128 bytes (shifts 0..28)


class Section(NamedTuple):
    """One section: its id, where it starts (the id byte), its body and its end."""

    id: int
    start: int
    body: int
    end: int


# Value types by their one-byte encoding; ``value_type`` names any other ("type 0x..").
VALUE_TYPES: Final = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
                      0x70: "funcref", 0x6F: "externref"}
_REF_PREFIXES: Final = (0x63, 0x64)  # (ref null ht), (ref ht): a heap type follows
_FUNC_TYPE: Final = 0x60

Signature = tuple[tuple[str, ...], tuple[str, ...]]  # (params, results), types by name


class Interface(NamedTuple):
    """What a module imports and exports, with the signature of each function."""

    imports: list[tuple[str, str, int, Signature | None]]  # module, name, kind, signature
    exports: dict[str, tuple[int, Signature | None]]  # name -> kind, signature


class Import(NamedTuple):
    module: str
    name: str
    kind: int  # KIND_FUNCTION, ...


def read_u32(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 (u32) at ``pos``: (value, next position).

    Raises ``MalformedWasm`` if it is truncated or longer than a u32's five bytes.
    """
    result = shift = 0
    while True:
        if pos >= len(data) or shift > _U32_MAX_SHIFT:
            raise MalformedWasm("truncated or overlong LEB128")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def skip_leb(data: bytes, pos: int) -> int:
    """The position after the LEB128 number at ``pos``, of any width (i64 immediates
    take up to ten bytes). Raises ``MalformedWasm`` if it is truncated."""
    while True:
        if pos >= len(data):
            raise MalformedWasm("truncated LEB128")
        b = data[pos]
        pos += 1
        if not b & 0x80:
            return pos


def encode_u32(value: int) -> bytes:
    """``value`` as unsigned LEB128, in the fewest bytes."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """A name (length-prefixed UTF-8; invalid bytes replaced): (name, next position)."""
    n, pos = read_u32(data, pos)
    if pos + n > len(data):
        raise MalformedWasm("a name runs past the end of the module")
    return data[pos: pos + n].decode("utf-8", errors="replace"), pos + n


def read_limits(data: bytes, pos: int) -> tuple[int, int | None, int, int]:
    """A limits record: (min, max or None, flags, next position)."""
    if pos >= len(data):
        raise MalformedWasm("truncated limits")
    flags = data[pos]
    lo, pos = read_u32(data, pos + 1)
    hi = None
    if flags & 1:
        hi, pos = read_u32(data, pos)
    return lo, hi, flags, pos


def check_header(wasm: bytes, *, version: bool = True) -> None:
    """Raise ``MalformedWasm`` unless ``wasm`` starts with the magic (and, with
    ``version``, binary format version 1)."""
    if version:
        if wasm[:HEADER_BYTES] != MAGIC + VERSION_1:
            raise MalformedWasm("not a WebAssembly binary module (version 1)")
    elif wasm[:4] != MAGIC or len(wasm) < HEADER_BYTES:
        raise MalformedWasm("not a WebAssembly binary (bad magic)")


def sections(wasm: bytes, *, strict: bool = True) -> Iterator[Section]:
    """Every section after the header, in order (the header is not checked here).

    Raises ``MalformedWasm`` on a truncated section size or (``strict``) a section
    that runs past the end; with ``strict=False`` that section is yielded, last.
    """
    pos = HEADER_BYTES
    n = len(wasm)
    while pos < n:
        sid = wasm[pos]
        size, body = read_u32(wasm, pos + 1)
        end = body + size
        if end > n and strict:
            raise MalformedWasm(f"section {sid} runs past the end of the module")
        yield Section(sid, pos, body, end)
        pos = end


def imports(wasm: bytes, section: Section) -> Iterator[Import]:
    """The import section's entries, lazily: an entry's descriptor is skipped only
    when the next one is asked for, so a caller may stop at any entry unread."""
    count, pos = read_u32(wasm, section.body)
    for _ in range(count):
        module, pos = read_name(wasm, pos)
        name, pos = read_name(wasm, pos)
        if pos >= len(wasm):
            raise MalformedWasm("truncated import")
        kind = wasm[pos]
        yield Import(module, name, kind)
        pos = _skip_import_type(wasm, pos + 1, kind)


def _skip_import_type(wasm: bytes, pos: int, kind: int) -> int:
    if kind == KIND_FUNCTION:  # a type index
        return read_u32(wasm, pos)[1]
    if kind == KIND_TABLE:  # a reference type, then limits
        return read_limits(wasm, pos + 1)[3]
    if kind == KIND_MEMORY:
        return read_limits(wasm, pos)[3]
    if kind == KIND_GLOBAL:  # a value type and its mutability
        return pos + 2
    raise MalformedWasm(f"unknown import kind {kind}")


def exports(wasm: bytes, section: Section) -> Iterator[tuple[int, int, int]]:
    """The export section's entries as (start, end, kind) byte spans, for rewriting."""
    count, pos = read_u32(wasm, section.body)
    for _ in range(count):
        start = pos
        _, pos = read_name(wasm, pos)
        if pos >= len(wasm):
            raise MalformedWasm("truncated export")
        kind = wasm[pos]
        _, pos = read_u32(wasm, pos + 1)
        yield start, pos, kind


def function_bodies(wasm: bytes, section: Section) -> Iterator[tuple[int, int]]:
    """The code section's function bodies as (start, end): ``start`` is where the
    body's locals are declared, ``end`` just past its code."""
    count, pos = read_u32(wasm, section.body)
    for _ in range(count):
        size, pos = read_u32(wasm, pos)
        yield pos, pos + size
        pos += size


def element_counts(wasm: bytes, section: Section) -> Iterator[int]:
    """The element section's segments' element counts, lazily: a segment's elements are
    skipped only when the next count is asked for, so a caller may stop at any segment
    unread. Every encoding (flags 0-7) is read; a constant expression may use only
    ``i32/i64.const``, ``global.get``, ``ref.null``, ``ref.func`` and the extended
    constant arithmetic (anything else raises ``MalformedWasm``)."""
    count, pos = read_u32(wasm, section.body)
    for _ in range(count):
        flags, pos = read_u32(wasm, pos)
        if flags > 7:
            raise MalformedWasm(f"unknown element segment flags {flags}")
        exprs = bool(flags & 4)
        if not flags & 1:  # active: a table index (flags 2, 6), then the offset
            if flags & 2:
                _, pos = read_u32(wasm, pos)
            pos = _skip_const_expr(wasm, pos)
        if flags & 3:  # the element kind (0x00) or reference type; absent for 0 and 4
            pos = skip_leb(wasm, pos)
        n, pos = read_u32(wasm, pos)
        yield n
        for _ in range(n):
            pos = _skip_const_expr(wasm, pos) if exprs else read_u32(wasm, pos)[1]


# Instructions of a constant expression: those with one LEB128 immediate, those with none.
_CONST_LEB: Final = frozenset((0x41, 0x42, 0x23, 0xD0, 0xD2))  # *.const global.get ref.*
_CONST_PLAIN: Final = frozenset((0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E))  # add sub mul


def _skip_const_expr(wasm: bytes, pos: int) -> int:
    while True:
        if pos >= len(wasm):
            raise MalformedWasm("truncated constant expression")
        op = wasm[pos]
        pos += 1
        if op == 0x0B:  # end
            return pos
        if op in _CONST_LEB:
            pos = skip_leb(wasm, pos)
        elif op not in _CONST_PLAIN:
            raise MalformedWasm(f"instruction 0x{op:02x} in a constant expression")


def locals_of(wasm: bytes, body: int, most: int | None = None) -> tuple[int, int]:
    """(locals declared, position of the first instruction) of the body at ``body``;
    with ``most``, reading at most ``most`` + 1 declarations (the caller's limit, to
    stay bounded: the position is then not the first instruction's)."""
    ndecl, pos = read_u32(wasm, body)
    total = 0
    for _ in range(ndecl if most is None else min(ndecl, most + 1)):
        count, pos = read_u32(wasm, pos)
        total += count
        pos += 1  # the value type
    return total, pos


def value_type(data: bytes, pos: int) -> tuple[str, int]:
    """A value type's name (``VALUE_TYPES``; a typed reference is "ref ..."; an unknown
    byte "type 0x..") and the next position."""
    if pos >= len(data):
        raise MalformedWasm("truncated value type")
    b = data[pos]
    if b in _REF_PREFIXES:
        end = skip_leb(data, pos + 1)
        return f"ref {data[pos + 1:end].hex()}{' null' if b == 0x63 else ''}", end
    return VALUE_TYPES.get(b, f"type 0x{b:02x}"), pos + 1


def interface(wasm: bytes) -> Interface:
    """The module's imports and exports, each function's with its signature read from
    the type section (not from the engine). For a module the validator accepted; raises
    ``MalformedWasm`` on anything it cannot read (a type that is no function type, an
    index out of range)."""
    types: list[Signature] = []
    funcs: list[int] = []  # type index of every function, imported ones first
    out = Interface([], {})
    try:
        for sec in sections(wasm):
            if sec.id == TYPE:
                types = _func_types(wasm, sec)
            elif sec.id == IMPORT:
                for imp, tidx in _imports_typed(wasm, sec):
                    sig = None
                    if imp.kind == KIND_FUNCTION:
                        funcs.append(tidx)
                        sig = types[tidx]
                    out.imports.append((imp.module, imp.name, imp.kind, sig))
            elif sec.id == FUNCTION:
                count, pos = read_u32(wasm, sec.body)
                for _ in range(count):
                    tidx, pos = read_u32(wasm, pos)
                    funcs.append(tidx)
            elif sec.id == EXPORT:
                count, pos = read_u32(wasm, sec.body)
                for _ in range(count):
                    name, pos = read_name(wasm, pos)
                    kind = wasm[pos]
                    index, pos = read_u32(wasm, pos + 1)
                    out.exports[name] = (kind, types[funcs[index]]
                                         if kind == KIND_FUNCTION else None)
    except IndexError:
        raise MalformedWasm("a type or function index out of range") from None
    return out


def defined_params(wasm: bytes) -> list[int]:
    """The number of parameters of each function the module defines, in order (those of
    a function whose type is missing or unreadable: 0). Raises ``MalformedWasm`` on a
    section too malformed to read."""
    types: list[int] = []
    out: list[int] = []
    for sec in sections(wasm):
        if sec.id == TYPE:
            types += [len(params) for params, _ in _func_types(wasm, sec, strict=False)]
        elif sec.id == FUNCTION:
            count, pos = read_u32(wasm, sec.body)
            for _ in range(count):
                tidx, pos = read_u32(wasm, pos)
                out.append(types[tidx] if tidx < len(types) else 0)
    return out


def _func_types(wasm: bytes, section: Section, *, strict: bool = True) -> list[Signature]:
    """The type section's function types, in order. A type that is no function type
    raises ``MalformedWasm`` (``strict``) or ends the list (not ``strict``: the module is
    not validated yet)."""
    count, pos = read_u32(wasm, section.body)
    out: list[Signature] = []
    for _ in range(count):
        if pos >= section.end or wasm[pos] != _FUNC_TYPE:
            if not strict:
                break
            if pos >= section.end:
                raise MalformedWasm("truncated type section")
            raise MalformedWasm(f"type form 0x{wasm[pos]:02x} is not a function type")
        pos += 1
        both: list[tuple[str, ...]] = []
        for _ in range(2):  # params, results
            n, pos = read_u32(wasm, pos)
            vals = []
            for _ in range(n):
                name, pos = value_type(wasm, pos)
                vals.append(name)
            both.append(tuple(vals))
        out.append((both[0], both[1]))
    return out


def _imports_typed(wasm: bytes, section: Section) -> Iterator[tuple[Import, int]]:
    """Each import with its function's type index (-1 for another kind)."""
    count, pos = read_u32(wasm, section.body)
    for _ in range(count):
        module, pos = read_name(wasm, pos)
        name, pos = read_name(wasm, pos)
        kind = wasm[pos]
        tidx = read_u32(wasm, pos + 1)[0] if kind == KIND_FUNCTION else -1
        yield Import(module, name, kind), tidx
        pos = _skip_import_type(wasm, pos + 1, kind)
