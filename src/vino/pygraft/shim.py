"""The plain-Python side of a Python graft: helpers, graft-callables, buffer fields.

A graft written for ``vino.pygraft`` imports its helpers from ``vino.pygraft``;
run as ordinary Python (in a unit test, in a REPL) they are the functions below,
and compiled they become WebAssembly instructions with the same meaning:

    from vino.pygraft import shim
    mod = shim.load(Path("readahead_stride.py"))     # a fresh module: fresh state
    buf = bytearray(256); ...                       # the point's buffer, as the host fills it
    count = shim.run(mod, READAHEAD, buf)           # calls mod.readahead(file_blocks=..., ...)

``run`` hands the entry the fields it names, decoded from the buffer by the
point's ``Layout``: scalars as ints, arrays as lists holding only their valid
elements (``hist`` has ``n_hist`` entries, ``out`` has ``max_out``), rows with
attribute access (``cand[i].vpn``); afterwards it writes the writable fields
back. Graft-callables (``default()``, ``lock()``, ``log()``, ...) go to the
``Host`` in force (``with shim.hosting(Host(...))``); the default host logs to a
list, grants locks and has no default policy.

Invariant: every helper here means exactly what its compiled form computes, for
every int argument; where the compiled graft cannot represent a value it traps,
and the plain version raises (``IndexError``, ``OverflowError``, ...).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import struct
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

from vino.graft.layout import Field, Layout, Struct

u32: TypeAlias = int  # an int known to lie in [0, 2**32): held in 32 bits when compiled
M32: Final = 0xFFFFFFFF
I32_MIN: Final = -(1 << 31)
I32_MAX: Final = (1 << 31) - 1


# ---- 32-bit helpers (ChaCha20 and friends) ---------------------------------------------

def to_u32(x: int) -> u32:
    """``x`` modulo 2**32 (wraps)."""
    return x & M32


def u32_add(a: int, b: int) -> u32:
    """``a + b`` modulo 2**32."""
    return (a + b) & M32


def u32_sub(a: int, b: int) -> u32:
    """``a - b`` modulo 2**32."""
    return (a - b) & M32


def u32_mul(a: int, b: int) -> u32:
    """``a * b`` modulo 2**32."""
    return (a * b) & M32


def rotl32(x: int, n: int) -> u32:
    """The low 32 bits of ``x`` rotated left by ``n`` modulo 32."""
    n &= 31
    x &= M32
    return ((x << n) | (x >> (32 - n))) & M32


def rotr32(x: int, n: int) -> u32:
    """The low 32 bits of ``x`` rotated right by ``n`` modulo 32."""
    return rotl32(x, (32 - (n & 31)) & 31)


def le32(buf: bytes | bytearray, i: int) -> u32:
    """The little-endian u32 at byte ``i`` of ``buf`` (``IndexError`` past either end)."""
    if i < 0 or i + 4 > len(buf):
        raise IndexError(f"le32 at {i}: outside {len(buf)} bytes")
    return int.from_bytes(buf[i:i + 4], "little")


def set_le32(buf: bytearray, i: int, v: int) -> None:
    """Store ``v`` (0 <= v < 2**32) little-endian at byte ``i`` of ``buf``."""
    if i < 0 or i + 4 > len(buf):
        raise IndexError(f"set_le32 at {i}: outside {len(buf)} bytes")
    if not 0 <= v <= M32:
        raise OverflowError(f"set_le32: {v} is not a u32")
    buf[i:i + 4] = v.to_bytes(4, "little")


# ---- graft-callables --------------------------------------------------------------------

@dataclass(slots=True)
class Host:
    """What graft-callables do when a graft runs as plain Python."""

    default: Callable[[dict[str, Any]], int] | None = None  # gets the call's fields
    locks: Callable[[int], int] = lambda lock_id: 0
    clock: Callable[[], int] = lambda: 0
    logs: list[str] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)  # accessor calls, in order
    fields: dict[str, Any] = field(default_factory=dict)  # the running call's fields


_HOST: contextvars.ContextVar[Host] = contextvars.ContextVar("vino_pygraft_host")


def host() -> Host:
    h = _HOST.get(None)
    if h is None:
        h = Host()
        _HOST.set(h)
    return h


@contextlib.contextmanager
def hosting(h: Host) -> Iterator[Host]:
    token = _HOST.set(h)
    try:
        yield h
    finally:
        _HOST.reset(token)


def _i32(name: str, *args: int) -> None:
    for a in args:
        if not I32_MIN <= a <= I32_MAX:
            raise OverflowError(f"{name}: {a} does not fit an i32 argument")


def default() -> int:
    """Run the point's built-in policy on the current inputs; its answer."""
    h = host()
    if h.default is None:
        raise RuntimeError("default(): this Host has no default policy")
    return h.default(h.fields)


def lock(lock_id: int) -> int:
    _i32("lock", lock_id)
    return host().locks(lock_id)


def log(message: str) -> None:
    host().logs.append(message)


def now() -> int:
    return host().clock()


def vm_hint(vpn: int, important: int) -> int:
    _i32("vm_hint", vpn, important)
    host().calls.append(("vm_hint", vpn, important))
    return 0


def sched_set_priority(tid: int, priority: int) -> int:
    _i32("sched_set_priority", tid, priority)
    host().calls.append(("sched_set_priority", tid, priority))
    return 0


# ---- buffer fields ----------------------------------------------------------------------

class Row:
    """One element of an array of structs (``cand[i]``): its fields as attributes."""

    def __init__(self, values: dict[str, int]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> int:
        raise AttributeError(f"this row has no field {name!r}")

    def __repr__(self) -> str:
        return f"Row({self.__dict__})"


class U32List(list[int]):
    """A writable u32 array: storing a value outside [0, 2**32) raises OverflowError."""

    def __setitem__(self, i: Any, v: Any) -> None:
        if isinstance(i, slice) or not 0 <= v <= M32:
            raise OverflowError(f"{v!r} is not a u32")
        super().__setitem__(i, v)


def _scalar(buf: bytes | bytearray, f: Field, base: int = 0) -> int:
    assert not isinstance(f.elem, Struct)
    return int(struct.unpack_from("<" + f.elem.code, buf, base + f.offset)[0])


def _row(buf: bytes | bytearray, row: Struct, at: int) -> Row:
    return Row({f.name: _scalar(buf, f, at) for f in row.fields if not f.pad})


def valid_count(layout: Layout, buf: bytes | bytearray, f: Field, args: dict[str, int]) -> int:
    """How many elements of array ``f`` a graft sees: its count field, clamped."""
    assert f.count is not None
    if f.valid is None:
        return f.count
    n = args[f.valid] if f.valid in args else _scalar(buf, layout.field(f.valid))
    return max(0, min(n, f.count))


def fields_of(layout: Layout, buf: bytes | bytearray, args: dict[str, int]) -> dict[str, Any]:
    """Every field (and entry argument) of ``buf`` as the plain-Python graft sees it."""
    out: dict[str, Any] = {}
    for f in layout.fields.fields:
        if f.pad:
            continue
        if f.count is None:
            out[f.name] = _scalar(buf, f)
            continue
        n = valid_count(layout, buf, f, args)
        if isinstance(f.elem, Struct):
            out[f.name] = [_row(buf, f.elem, f.offset + i * f.elem.size) for i in range(n)]
        elif f.elem.size == 1:
            out[f.name] = bytearray(buf[f.offset:f.offset + n])
        else:
            vals = struct.unpack_from(f"<{n}{f.elem.code}", buf, f.offset)
            out[f.name] = U32List(vals) if f.writable else list(vals)
    out.update(args)
    return out


def _write_back(layout: Layout, buf: bytearray, values: dict[str, Any]) -> None:
    for f in layout.fields.fields:
        if not f.writable or isinstance(f.elem, Struct):
            continue
        v = values[f.name]
        if f.elem.size == 1:
            buf[f.offset:f.offset + len(v)] = v
        else:
            struct.pack_into(f"<{len(v)}{f.elem.code}", buf, f.offset, *v)


def entry_of(mod: types.ModuleType, layout: Layout) -> Callable[..., Any]:
    short = layout.entry.removeprefix("vino_")
    fn = getattr(mod, short, None) or getattr(mod, layout.entry, None)
    if not callable(fn):
        raise LookupError(f"{mod.__name__} defines no {short}() for {layout.point}")
    return fn  # type: ignore[no-any-return]


def run(graft: types.ModuleType | Callable[..., Any], layout: Layout, buf: bytearray,
        args: tuple[int, ...] = (), h: Host | None = None) -> int:
    """Run the entry as plain Python on ``buf`` (filled as the host fills it); its answer.

    The writable fields are written back into ``buf``, as the compiled graft
    would leave them. ``args`` are the entry's Wasm arguments (``fs.filter``).
    """
    fn = entry_of(graft, layout) if isinstance(graft, types.ModuleType) else graft
    named = dict(zip((a.name for a in layout.args), args, strict=True))
    values = fields_of(layout, buf, named)
    wanted = inspect.signature(fn).parameters
    unknown = [p for p in wanted if p not in values]
    if unknown:
        raise TypeError(f"{layout.point} has no field {unknown[0]!r}")
    with contextlib.ExitStack() as stack:
        hh = stack.enter_context(hosting(h)) if h is not None else host()
        hh.fields = values
        result = fn(**{p: values[p] for p in wanted})
    if not isinstance(result, int):
        raise TypeError(f"the entry returned {result!r}, not an int")
    _write_back(layout, buf, values)
    return result


def message(graft: types.ModuleType, data: bytes) -> int:
    """Deliver ``data`` to the module's ``message`` handler as plain Python."""
    fn = getattr(graft, "message", None) or getattr(graft, "vino_message", None)
    if fn is None:
        raise LookupError(f"{graft.__name__} takes no messages")
    result = fn(bytes(data))
    if not isinstance(result, int):
        raise TypeError(f"message() returned {result!r}, not an int")
    return result


def load(source: str | Path, name: str = "pygraft_module") -> types.ModuleType:
    """A fresh module from a graft's path (a ``Path``) or source text (a ``str``, never
    opened), with its own, fresh state. It runs the source as plain Python with the
    caller's rights: for one's own policies, never a tenant's source (the host only
    compiles those)."""
    text = source.read_text() if isinstance(source, Path) else source
    filename = str(source) if isinstance(source, Path) else name
    mod = types.ModuleType(name)
    mod.__file__ = filename
    exec(compile(text, filename, "exec"), mod.__dict__)
    return mod


def kalloc(size: int) -> int:
    """Host memory charged to the principal: a handle > 0 (plain Python: a counter)."""
    _i32("kalloc", size)
    h = host()
    h.calls.append(("kalloc", size))
    return len(h.calls)


def kfree(handle: int) -> None:
    _i32("kfree", handle)
    host().calls.append(("kfree", handle))
