"""Load-time checks: everything is validated before any state changes.

``check`` reads a graft (``.wasm`` bytes, a path to ``.wasm``/``.wat``, or WAT
text) and returns a ``Checked`` record, or raises ``GraftRejected`` naming the
graft, the point and the exact reason. It changes nothing: installing is a
separate step (``Registry.install``) that only commits what ``check`` accepted.

What is rejected, and why (the limits are named in ``vino.limits``):
 1. unreadable input, WAT that does not parse;
 2. a binary over ``MAX_MODULE_BYTES``;
 3. a module that is not valid WebAssembly (wasmtime's validator);
 4. a start function (it would run unprotected at instantiation);
 5. more than ``MAX_FUNCTIONS`` defined functions, ``MAX_EXPORTS`` exports;
 6. any import that is not a function from module ``"vino"`` whose name is on
    the point's graft-callable list, with exactly the listed type;
 7. a missing or mistyped export: ``memory`` (a 32-bit, unshared memory),
    ``vino_buffer: () -> i32``, the point's entry, and ``vino_message:
    (i32) -> i32`` when present;
 8. more than one memory or table; memory minimum or maximum over
    ``MAX_MEMORY_PAGES``; table limits over ``MAX_TABLE_ELEMENTS``;
 9. an initial memory larger than what is left of the principal's memory quota;
10. a principal without the right to graft that target (``may_install``).
Before all of these: a target of the wrong kind for the point (``target_type``).

Checks 2-8 depend only on the bytes and the point; a module that passed them for
a point is remembered (by SHA-256), so installing the same graft on many targets
scans it once. Checks 9 and 10 run on every install.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime

from vino import limits
from vino.errors import GraftRejected
from vino.graft import wasmscan
from vino.graft.fastcall import I32, I64
from vino.graft.wasmscan import read_leb

if TYPE_CHECKING:
    from vino.graft.accounting import Principal
    from vino.graft.point import Point
    from vino.graft.sandbox import Sandbox

Source = bytes | bytearray | str | Path

COMMON_CALLABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "now": ((), (I64,)),
    "log": ((I32, I32), ()),
    "lock": ((I32,), (I32,)),
    "kalloc": ((I32,), (I32,)),
    "kfree": ((I32,), ()),
    "kread": ((I32, I32, I32, I32), (I32,)),
    "kwrite": ((I32, I32, I32, I32), (I32,)),
}
DEFAULT_CALLABLE: tuple[tuple[str, ...], tuple[str, ...]] = ((), (I32,))


@dataclass(slots=True, frozen=True)
class Checked:
    """A graft that passed every static check for one point, principal and target."""

    name: str
    wasm: bytes
    module: wasmtime.Module
    memory_min_bytes: int
    has_message: bool
    digest: str
    may_grow: bool  # False: no memory.grow in its code (see wasmscan)


def callables_of(point: Point) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every import name a graft of ``point`` may use, with its Wasm type."""
    allowed = dict(COMMON_CALLABLES)
    if point.kind == "function":
        allowed["default"] = DEFAULT_CALLABLE
    for c in point.callables:
        allowed[c.name] = (c.params, c.results)
    return allowed


def read_source(source: Source) -> tuple[bytes, str]:
    """The module's binary and a default name. Raises ``ValueError`` with the cause."""
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if data[:4] == b"\0asm":
            return data, "graft-" + hashlib.sha256(data).hexdigest()[:12]
        return _wat(data.decode("utf-8", errors="replace")), "graft-wat"
    if isinstance(source, Path) or (isinstance(source, str) and "(" not in source
                                    and source.endswith((".wasm", ".wat"))):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if data[:4] == b"\0asm":
            return data, path.stem
        return _wat(data.decode("utf-8", errors="replace")), path.stem
    return _wat(source), "graft-wat"


def _wat(text: str) -> bytes:
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid text"
        raise ValueError(f"WAT does not parse: {first}") from exc


def scan_sections(wasm: bytes) -> dict[int, int]:
    """Section id → item count for the vector sections we limit (1-7, 9-11); 8 → 1."""
    if wasm[:4] != b"\0asm" or len(wasm) < 8:
        raise ValueError("not a WebAssembly binary (bad magic)")
    counts: dict[int, int] = {}
    pos = 8
    while pos < len(wasm):
        sid = wasm[pos]
        size, body = read_leb(wasm, pos + 1)
        end = body + size
        if end > len(wasm):
            raise ValueError(f"section {sid} runs past the end of the module")
        if sid == 8:
            counts[8] = 1
        elif sid in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11):
            n, _ = read_leb(wasm, body)
            counts[sid] = counts.get(sid, 0) + n
        pos = end
    return counts


def _types(ft: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ft.params), tuple(str(r) for r in ft.results)


def _sig(t: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    return f"({', '.join(t[0])}) -> ({', '.join(t[1])})"


@dataclass(slots=True, frozen=True)
class _Static:
    """What checks 2-8 concluded from a module's bytes alone, for one point."""

    sandbox: Sandbox
    module: wasmtime.Module
    memory_min_bytes: int
    has_message: bool
    may_grow: bool


# Checks 2-8 depend only on the module's bytes and the point (its entry, types and
# graft-callables), so a module that passed them once for a point -- the same graft
# installed on many targets -- is not scanned again. Only passes are remembered.
_PASSED: weakref.WeakKeyDictionary[Any, dict[str, _Static]] = weakref.WeakKeyDictionary()
_PASSED_MUTEX = threading.Lock()


def check(sandbox: Sandbox, point: Point, source: Source, principal: Principal,
          target: Any, name: str | None = None) -> Checked:
    """Run every load-time check; return ``Checked`` or raise ``GraftRejected``."""
    label = name or "graft"

    def reject(reason: str) -> GraftRejected:
        return GraftRejected(label, point.name, reason)

    wrong_kind = point.target_problem(target)  # first: no rule ever sees a wrong kind
    if wrong_kind is not None:
        raise reject(wrong_kind)
    try:
        wasm, default_name = read_source(source)
    except ValueError as exc:
        raise reject(str(exc)) from None
    label = name or default_name
    if len(wasm) > limits.MAX_MODULE_BYTES:
        raise reject(f"module is {len(wasm)} bytes; the limit is {limits.MAX_MODULE_BYTES}")
    digest = hashlib.sha256(wasm).hexdigest()
    passed = _PASSED.get(point)
    st = passed.get(digest) if passed is not None else None
    if st is None or st.sandbox is not sandbox:
        st = _static_checks(sandbox, point, wasm, reject)
        with _PASSED_MUTEX:
            passed = _PASSED.setdefault(point, {})
            passed[digest] = st
            while len(passed) > limits.MODULE_CACHE_ENTRIES:  # the oldest goes
                del passed[next(iter(passed))]
    min_bytes = st.memory_min_bytes
    left = principal.quota.memory_bytes - principal.usage.memory_bytes
    if min_bytes > left:
        raise reject(f"initial memory of {min_bytes} bytes exceeds what is left of "
                     f"{principal.name}'s memory quota ({left} bytes)")
    try:
        allowed = point.may_install(principal, target)
    except Exception as exc:  # a rights rule that cannot judge this target: not a target
        raise reject(f"{target!r} is not a target of {point.name} "
                     f"({type(exc).__name__}: {exc})") from None
    if not allowed:
        raise reject(f"principal {principal.name!r} may not graft {point.name} on {target!r}")
    return Checked(label, wasm, st.module, min_bytes, st.has_message, digest, st.may_grow)


def _static_checks(sandbox: Sandbox, point: Point, wasm: bytes,
                   reject: Callable[[str], GraftRejected]) -> _Static:
    """Checks 2-8 (everything that depends on the bytes and the point alone)."""
    try:
        counts = scan_sections(wasm)
    except ValueError as exc:
        raise reject(f"malformed module: {exc}") from None
    try:
        module = sandbox.compile(wasm)
    except wasmtime.WasmtimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise reject(f"invalid WebAssembly: {detail}") from None
    if counts.get(8):
        raise reject("module has a start function; grafts may run only inside transactions")
    if counts.get(3, 0) > limits.MAX_FUNCTIONS:
        raise reject(f"module defines {counts[3]} functions; the limit is "
                     f"{limits.MAX_FUNCTIONS}")
    if counts.get(7, 0) > limits.MAX_EXPORTS:
        raise reject(f"module has {counts[7]} exports; the limit is {limits.MAX_EXPORTS}")

    allowed = callables_of(point)
    for imp in module.imports:
        what = f"import {imp.module}.{imp.name}"
        if imp.module != "vino":
            raise reject(f"{what}: grafts may import only from module \"vino\"")
        ty = imp.type
        if not isinstance(ty, wasmtime.FuncType):
            raise reject(f"{what}: only functions may be imported, not {type(ty).__name__}")
        if imp.name not in allowed:
            raise reject(f"{what} is not a graft-callable of {point.name} "
                         f"(allowed: {', '.join(sorted(allowed))})")
        got, want = _types(ty), allowed[imp.name]
        if got != want:
            raise reject(f"{what} has type {_sig(got)}; {point.name} offers {_sig(want)}")

    exports = {e.name: e.type for e in module.exports}
    mem = exports.get("memory")
    if not isinstance(mem, wasmtime.MemoryType):
        raise reject("missing export \"memory\" (a memory)")
    if mem.is_64 or mem.is_shared:
        raise reject("exported memory must be a 32-bit unshared memory")
    want_entry = (point.params, (point.result,))
    for export, want in (("vino_buffer", ((), (I32,))), (point.entry, want_entry)):
        fty = exports.get(export)
        if not isinstance(fty, wasmtime.FuncType):
            raise reject(f"missing export {export!r} (a function {_sig(want)})")
        if _types(fty) != want:
            raise reject(f"export {export!r} has type {_sig(_types(fty))}; "
                         f"{point.name} needs {_sig(want)}")
    msg = exports.get("vino_message")
    has_message = msg is not None
    if has_message and (not isinstance(msg, wasmtime.FuncType)
                        or _types(msg) != ((I32,), (I32,))):
        raise reject("export 'vino_message' must be a function (i32) -> (i32)")

    if counts.get(5, 0) > 1:
        raise reject("module defines more than one memory")
    if counts.get(4, 0) > 1:
        raise reject("module defines more than one table")
    lim = mem.limits
    if lim.min > limits.MAX_MEMORY_PAGES or (lim.max or 0) > limits.MAX_MEMORY_PAGES:
        raise reject(f"memory limits {lim.min}..{lim.max} pages exceed "
                     f"{limits.MAX_MEMORY_PAGES} pages")
    for ety in exports.values():
        if isinstance(ety, wasmtime.TableType):
            tl = ety.limits
            if tl.min > limits.MAX_TABLE_ELEMENTS or (tl.max or 0) > limits.MAX_TABLE_ELEMENTS:
                raise reject(f"table limits exceed {limits.MAX_TABLE_ELEMENTS} elements")
    return _Static(sandbox, module, lim.min * limits.WASM_PAGE, has_message,
                   wasmscan.may_grow_memory(wasm))
