"""Load-time checks: everything is validated before any state changes.

``check`` reads a graft (``.wasm`` bytes, a path to ``.wasm``/``.wat`` given as an
``os.PathLike`` such as ``pathlib.Path``, or WAT text; a ``str`` is always text, never
opened: see ``read_source``) and returns a ``Checked`` record, or raises
``GraftRejected`` naming the graft, the point and the exact reason. It changes
nothing: installing is a separate step (``Registry.install``) that only commits what
``check`` accepted, and only then (``keep``) is the compiled module cached.

The checks run cheapest first, so that nobody can make the host compile (the
only costly step) a module it would refuse anyway. What is rejected, in order
(the limits are named in ``vino.limits``):
 1. unreadable input; WAT over ``MAX_WAT_CHARS`` or that does not parse (parsing is
    charged to the installer, as compiling is);
 2. a binary over ``MAX_MODULE_BYTES``;
 3. a principal whose total CPU quota is used up (compiling is charged to it);
 4. the section scan (``scan_sections``, no compiling): a start function (it would
    run unprotected at instantiation); more than ``MAX_FUNCTIONS`` functions,
    ``MAX_EXPORTS`` exports, ``MAX_IMPORTS`` imports, ``MAX_TYPES`` types,
    ``MAX_GLOBALS`` globals, ``MAX_DATA_SEGMENTS`` / ``MAX_ELEMENT_SEGMENTS``
    segments, ``MAX_SEGMENT_ELEMENTS`` elements in all; a function body over
    ``MAX_FUNCTION_BODY_BYTES`` or declaring more than ``MAX_LOCALS_PER_FUNCTION``
    locals; any import that is not a function from module ``"vino"`` named on the
    point's graft-callable list; more than one memory or table; memory limits over
    ``MAX_MEMORY_PAGES``; table limits over ``MAX_TABLE_ELEMENTS``;
 5. an initial memory larger than what is left of the principal's memory quota;
 5b. more than ``MAX_LOOPS_PER_FUNCTION`` loops in a function, ``MAX_LOOPS`` in all, or
    loops weighing more than ``MAX_LOOP_WEIGHT`` with their functions' locals (counted
    at the installer's expense: compile time grows with their square, and with loops
    times locals);
 6. a module that is not valid WebAssembly, or uses a feature the engine does
    not enable (GC, threads, relaxed SIMD, ...: the reason names it; see
    ``sandbox.WASM_FEATURES``), or SIMD on a point that does not declare it
    (``Point.simd``) -- wasmtime's validator, without compiling;
 7. compiling (its CPU time is charged to the principal's total CPU quota);
 8. an import with another type than the listed one; a missing or mistyped
    export: ``memory`` (a 32-bit, unshared memory), ``vino_buffer: () -> i32``,
    the point's entry, and ``vino_message: (i32) -> i32`` when present.
Before all of these, before the bytes are even read (``admit``): a target of the
wrong kind for the point (``target_type``), a target that has ended (``target_gone``;
asked again at the switch), then a principal without the right to graft that target
(``may_install``). A Python graft meets ``admit``, a length limit
(``MAX_PYGRAFT_SOURCE_CHARS``) and check 3 before the host compiles it to a module
(``Registry``), charged to the installer like check 7.

Checks 4 and 6-8 depend only on the bytes and the point; a module installed
once for a point is remembered (by SHA-256), so installing the same graft on many
targets scans and compiles it once. A rejected module is remembered nowhere: it
leaves nothing in any cache. ``admit`` and check 5 run on every install; check 3
whenever the host compiles.

Worst case of what passes the scan (docs/RELIABILITY.md): a 1 MiB module at the
limits compiles in at most about 1.7 s of CPU and 35 MB (Cranelift, one thread;
`vino bench install`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import wasmtime

from vino import limits
from vino.errors import GraftRejected, MalformedWasm
from vino.graft import traps, wasmbinary, wasmscan
from vino.graft.fastcall import I32
from vino.graft.hostapi import callables_of
from vino.graft.sandbox import SIMD, feature_of, refuse_simd

if TYPE_CHECKING:
    from vino.graft.accounting import Principal
    from vino.graft.point import Point
    from vino.graft.sandbox import Sandbox

# A ``str`` is source text, never a path: a path is an ``os.PathLike`` (``Path``), which
# only the application can make. (A one-line string ending in .wat was read as a path with
# the host's rights: an application passing a tenant's text could be made to read a file.)
Source = bytes | bytearray | str | os.PathLike[str]

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
    table_elements: int  # what its table may grow to (0: no table); charged at install
    static: _Static  # what checks 4-8 concluded, for ``keep``


def read_source(source: Source) -> tuple[bytes, str]:
    """The module's binary and a default name. Raises ``ValueError`` with the cause.

    Only an ``os.PathLike`` is opened, and at most ``_MAX_SOURCE_BYTES`` + 1 of it read
    (a path to ``/dev/zero`` is refused, not read forever). A ``str`` is WebAssembly
    text; one that looks like a file name is refused with that hint, never opened."""
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if data[:4] == b"\0asm":
            return data, "graft-" + hashlib.sha256(data).hexdigest()[:12]
        return _wat(data.decode("utf-8", errors="replace")), "graft-wat"
    if isinstance(source, os.PathLike):
        path = Path(source)
        data = read_bounded(path, _MAX_SOURCE_BYTES)
        if data[:4] == b"\0asm":
            return data, path.stem
        return _wat(data.decode("utf-8", errors="replace")), path.stem
    if looks_like_a_path(source):
        raise ValueError(path_hint(source))
    return _wat(source), "graft-wat"


def looks_like_a_path(text: str) -> bool:
    """A one-line string ending in ``.wasm``, ``.wat`` or ``.py``: not source text anyone
    means, and never opened (see ``Source``)."""
    return "\n" not in text and text.strip().endswith((".wasm", ".wat", ".py"))


def path_hint(text: str) -> str:
    """The refusal of a string that looks like a file name."""
    return (f"{text[:80]!r} is taken as source text, not a file name: a string is never "
            f"opened; pass a path as pathlib.Path to read a file")


def read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; ``ValueError`` if it is longer or unreadable."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise ValueError(f"{path} is longer than {limit} bytes; the limit is "
                         f"{limits.MAX_MODULE_BYTES} bytes (binary), {limits.MAX_WAT_CHARS} "
                         f"characters (text)")
    return data


def _wat(text: str) -> bytes:
    if len(text) > limits.MAX_WAT_CHARS:
        raise ValueError(f"WebAssembly text of {len(text)} characters; the limit is "
                         f"{limits.MAX_WAT_CHARS}")
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid text"
        raise ValueError(f"WAT does not parse: {first}") from exc


@dataclass(slots=True)
class Sections:
    """What the section scan read from a module, without compiling it."""

    counts: dict[int, int]  # section id -> items (vector sections 1-7, 9-11; 8 -> 1)
    imports: list[tuple[str, str, int]]  # (module, name, kind: 0 function, 1 table, ...)
    memory_min: int = 0  # pages, of the first memory defined (0: none defined)
    memory_max: int | None = None
    table_limits: list[tuple[int, int | None]] = field(default_factory=list)
    largest_body: int = 0  # bytes of the largest function body
    most_locals: int = 0  # locals declared by the function that declares the most
    # Elements of the element segments, read until past MAX_SEGMENT_ELEMENTS (then not on).
    elements: int = 0


def scan_sections(wasm: bytes) -> Sections:
    """Read the sections that bound compile and instantiation work, without compiling.

    Raises ``MalformedWasm`` (a ``ValueError``) on a binary too malformed to scan (the
    validator would refuse it too). Items the scan does not decode are left to the
    validator.
    """
    wasmbinary.check_header(wasm, version=False)
    out = Sections({}, [])
    try:
        for sec in wasmbinary.sections(wasm):
            sid = sec.id
            if sid == wasmbinary.START:
                out.counts[sid] = 1
            elif sid in _VECTOR_SECTIONS:
                n, p = wasmbinary.read_u32(wasm, sec.body)
                out.counts[sid] = out.counts.get(sid, 0) + n
                if sid == wasmbinary.IMPORT:
                    _scan_imports(wasm, sec, out)
                elif sid == wasmbinary.TABLE and n <= 2:
                    for _ in range(n):
                        lo, hi, _flags, p = wasmbinary.read_limits(wasm, p + 1)  # after the type
                        out.table_limits.append((lo, hi))
                elif sid == wasmbinary.MEMORY and n and not out.memory_min:
                    out.memory_min, out.memory_max, _flags, p = wasmbinary.read_limits(wasm, p)
                elif sid == wasmbinary.CODE and n <= limits.MAX_FUNCTIONS:
                    _scan_code(wasm, sec, out)
                elif sid == wasmbinary.ELEMENT and n <= limits.MAX_ELEMENT_SEGMENTS:
                    _scan_elements(wasm, sec, out)
    except IndexError:
        raise MalformedWasm("truncated module") from None
    return out


# Sections that are a vector of items (their count is read); 8 (start) is one item.
_VECTOR_SECTIONS: Final = frozenset((1, 2, 3, 4, 5, 6, 7, 9, 10, 11))


def _scan_imports(wasm: bytes, sec: wasmbinary.Section, out: Sections) -> None:
    for imp in itertools.islice(wasmbinary.imports(wasm, sec), limits.MAX_IMPORTS + 1):
        out.imports.append((imp.module, imp.name, imp.kind))
        if imp.kind != wasmbinary.KIND_FUNCTION:
            return  # refused whatever follows; its descriptor is not worth decoding


def _scan_code(wasm: bytes, sec: wasmbinary.Section, out: Sections) -> None:
    for start, end in wasmbinary.function_bodies(wasm, sec):
        out.largest_body = max(out.largest_body, end - start)
        nlocals, _ = wasmbinary.locals_of(wasm, start, limits.MAX_LOCALS_PER_FUNCTION)
        out.most_locals = max(out.most_locals, nlocals)


def _scan_elements(wasm: bytes, sec: wasmbinary.Section, out: Sections) -> None:
    for n in wasmbinary.element_counts(wasm, sec):
        out.elements += n
        if out.elements > limits.MAX_SEGMENT_ELEMENTS:
            return  # refused; the rest is not worth reading


_COUNT_LIMITS: Final = (  # section id, what, limit
    (1, "function types", limits.MAX_TYPES),
    (2, "imports", limits.MAX_IMPORTS),
    (3, "functions", limits.MAX_FUNCTIONS),
    (6, "globals", limits.MAX_GLOBALS),
    (7, "exports", limits.MAX_EXPORTS),
    (9, "element segments", limits.MAX_ELEMENT_SEGMENTS),
    (10, "function bodies", limits.MAX_FUNCTIONS),
    (11, "data segments", limits.MAX_DATA_SEGMENTS),
)


def _sig(t: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    return f"({', '.join(t[0])}) -> ({', '.join(t[1])})"


@dataclass(slots=True, frozen=True)
class _Static:
    """What checks 4 and 6-8 concluded from a module's bytes alone, for one point."""

    sandbox: Sandbox
    module: wasmtime.Module
    memory_min_bytes: int
    has_message: bool
    may_grow: bool
    table_elements: int


# Checks 4 and 6-8 depend only on the module's bytes and the point (its entry, types and
# graft-callables), so a module installed once for a point -- the same graft on many
# targets -- is not scanned again. Only installed modules are remembered (``keep``).
_PASSED: weakref.WeakKeyDictionary[Point, dict[str, _Static]] = weakref.WeakKeyDictionary()
_PASSED_MUTEX = threading.Lock()


def check(sandbox: Sandbox, point: Point, source: Source, principal: Principal,
          target: object, name: str | None = None) -> Checked:
    """Run every load-time check, cheapest first; return ``Checked`` or raise
    ``GraftRejected``. Caches nothing (``keep`` does, once the install succeeded)."""
    label = name or "graft"

    def reject(reason: str) -> GraftRejected:
        return GraftRejected(label, point.name, reason)

    admit(point, principal, target, label)  # before any work on the bytes
    digest = ""
    if isinstance(source, bytes | bytearray) and len(source) > _MAX_SOURCE_BYTES:
        raise reject(f"module of {len(source)} bytes; the limit is {limits.MAX_MODULE_BYTES}"
                     f" (binary), {limits.MAX_WAT_CHARS} characters (text)")
    if isinstance(source, bytes | bytearray) and source[:4] == b"\0asm":
        if len(source) > limits.MAX_MODULE_BYTES:  # before it is copied and hashed
            raise reject(f"module is {len(source)} bytes; the limit is "
                         f"{limits.MAX_MODULE_BYTES}")
        wasm = bytes(source)  # the common case: hashed once, for the name and the caches
        digest = hashlib.sha256(wasm).hexdigest()
        default_name = "graft-" + digest[:12]
    else:
        try:
            with charged(principal):  # parsing text is work too (8 MB: 0.23 s of CPU)
                wasm, default_name = read_source(source)
        except ValueError as exc:
            raise reject(str(exc)) from None
    label = name or default_name
    if len(wasm) > limits.MAX_MODULE_BYTES:
        raise reject(f"module is {len(wasm)} bytes; the limit is {limits.MAX_MODULE_BYTES}")
    if not digest:
        digest = hashlib.sha256(wasm).hexdigest()
    passed = _PASSED.get(point)
    st = passed.get(digest) if passed is not None else None
    if st is None or st.sandbox is not sandbox:
        st = _static_checks(sandbox, point, wasm, principal, reject)
    _check_memory_left(principal, st.memory_min_bytes, reject)
    return Checked(label, wasm, st.module, st.memory_min_bytes, st.has_message, digest,
                   st.may_grow, st.table_elements, st)


# Bytes a module's source may take: a binary's limit, or the most UTF-8 text of
# MAX_WAT_CHARS characters can take. Longer bytes are refused before any work.
_MAX_SOURCE_BYTES: Final = max(limits.MAX_MODULE_BYTES, 4 * limits.MAX_WAT_CHARS)


def admit(point: Point, principal: Principal, target: object, label: str) -> None:
    """The checks that need no bytes, first of all: a target of the point's kind (so no
    rights rule ever sees another), then the installer's right to graft it. Raises
    ``GraftRejected``; the host has done no work on the graft yet."""
    from vino.graft.point import describe_target, owner_or_privileged

    wrong_kind = point.target_problem(target)
    if wrong_kind is not None:
        raise GraftRejected(label, point.name, wrong_kind)
    check_target_alive(point, target, label)
    try:
        allowed = point.may_install(principal, target)
    except Exception as exc:  # a rights rule that cannot judge this target: not a target
        raise GraftRejected(label, point.name, f"{describe_target(target)} is not a target of "
                            f"{point.name} ({type(exc).__name__}: {exc})") from None
    if not allowed:
        why = (" (the default rule: only the target's owner, target.owner, or a privileged "
               "principal; a point states another with may_install=)"
               if point.may_install is owner_or_privileged else "")
        raise GraftRejected(label, point.name, f"principal {principal.name!r} may not graft "
                            f"{point.name} on {describe_target(target)}{why}")


def check_target_alive(point: Point, target: object, label: str) -> None:
    """Raise ``GraftRejected`` if ``target`` has ended (``Point.target_gone``): a graft
    lives no longer than its target."""
    gone = point.target_gone(target) if point.target_gone is not None else None
    if gone is not None:
        raise GraftRejected(label, point.name, f"the target has gone ({gone}): a graft "
                            "lives no longer than its target")


def check_cpu_left(principal: Principal, reject: Callable[[str], GraftRejected]) -> None:
    """Check 3: installing is charged to the installer (compiling, ``vino_buffer()``),
    who must have CPU left."""
    if principal.quota.cpu_total_s * 1e9 - principal.usage.cpu_ns <= 0:
        raise reject(f"{principal.name} has used its total CPU quota of "
                     f"{principal.quota.cpu_total_s} s; installing a graft (compiling it, "
                     f"its vino_buffer()) is charged to it")


@contextlib.contextmanager
def charged(principal: Principal) -> Iterator[None]:
    """Charge the CPU time this thread spends inside to ``principal``'s quota (compiling
    runs on the installer's thread), whatever happens inside."""
    t0 = time.thread_time_ns()
    try:
        yield
    finally:
        principal.add_cpu(time.thread_time_ns() - t0)  # the clock read before the lock


def keep(sandbox: Sandbox, point: Point, checked: Checked, principal: Principal) -> list[str]:
    """Remember a module that ``principal`` installed: its checks and its compiled code
    are reused for the same bytes at the same point, within the principal's share of
    the sandbox's cache (``Sandbox.keep``). Returns the digests no longer cached, whose
    checks are forgotten too."""
    dropped = sandbox.keep(principal, checked.digest, checked.module)
    with _PASSED_MUTEX:
        passed = _PASSED.setdefault(point, {})
        passed[checked.digest] = checked.static
        for d in dropped:
            for per_point in _PASSED.values():
                if d in per_point and per_point[d].sandbox is sandbox:
                    del per_point[d]
        while len(passed) > limits.MODULE_CACHE_ENTRIES:  # the oldest goes
            del passed[next(iter(passed))]
    return dropped


def cached(sandbox: Sandbox, digest: str) -> bool:
    """Whether a module with this SHA-256 is remembered anywhere (for tests and stats)."""
    with _PASSED_MUTEX:
        in_passed = any(d[digest].sandbox is sandbox for d in _PASSED.values() if digest in d)
    return in_passed or sandbox.has_module(digest)


def _check_scan(point: Point, sec: Sections, reject: Callable[[str], GraftRejected]) -> None:
    """Check 4: everything the section scan can judge, before any compiling."""
    counts = sec.counts
    if counts.get(8):
        raise reject("module has a start function; grafts may run only inside transactions")
    for sid, what, limit in _COUNT_LIMITS:
        if counts.get(sid, 0) > limit:
            raise reject(f"module has {counts[sid]} {what}; the limit is {limit}")
    if sec.elements > limits.MAX_SEGMENT_ELEMENTS:
        raise reject(f"element segments hold more than {limits.MAX_SEGMENT_ELEMENTS} "
                     "elements; the limit is that many in all")
    if sec.largest_body > limits.MAX_FUNCTION_BODY_BYTES:
        raise reject(f"a function body is {sec.largest_body} bytes; the limit is "
                     f"{limits.MAX_FUNCTION_BODY_BYTES}")
    if sec.most_locals > limits.MAX_LOCALS_PER_FUNCTION:
        raise reject(f"a function declares {sec.most_locals} locals; the limit is "
                     f"{limits.MAX_LOCALS_PER_FUNCTION}")
    allowed = callables_of(point)
    for module, name, kind in sec.imports:
        what = f"import {module}.{name}"
        if module != "vino":
            raise reject(f"{what}: grafts may import only from module \"vino\"")
        if kind != 0:
            raise reject(f"{what}: only functions may be imported, not a "
                         f"{_KINDS.get(kind, f'kind {kind}')}")
        if name not in allowed:
            raise reject(f"{what} is not a graft-callable of {point.name} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    if counts.get(5, 0) > 1:
        raise reject("module defines more than one memory")
    if counts.get(4, 0) > 1:
        raise reject("module defines more than one table")
    lo, hi = sec.memory_min, sec.memory_max
    if lo > limits.MAX_MEMORY_PAGES or (hi or 0) > limits.MAX_MEMORY_PAGES:
        raise reject(f"memory limits {lo}..{hi} pages exceed {limits.MAX_MEMORY_PAGES} pages")
    for tlo, thi in sec.table_limits:
        if tlo > limits.MAX_TABLE_ELEMENTS or (thi or 0) > limits.MAX_TABLE_ELEMENTS:
            raise reject(f"table limits {tlo}..{thi} exceed {limits.MAX_TABLE_ELEMENTS} elements")


def _check_loops(wasm: bytes, reject: Callable[[str], GraftRejected]) -> None:
    """Check 5b (charged: the count may decode every body): loops within the limits."""
    try:
        most, total, weight = wasmscan.loops(wasm)
    except ValueError as exc:
        raise reject(f"malformed module: {exc}") from None
    if most > limits.MAX_LOOPS_PER_FUNCTION:
        raise reject(f"a function has {most} loops; the limit is "
                     f"{limits.MAX_LOOPS_PER_FUNCTION} (compile time grows with their square)")
    if total > limits.MAX_LOOPS:
        raise reject(f"module has {total} loops; the limit is {limits.MAX_LOOPS}")
    if weight > limits.MAX_LOOP_WEIGHT:
        raise reject(f"module's loops weigh {weight} (each 1 + its function's locals and "
                     f"parameters); the limit is {limits.MAX_LOOP_WEIGHT}")


def _check_memory_left(principal: Principal, min_bytes: int,
                       reject: Callable[[str], GraftRejected]) -> None:
    """Check 5 (on every install): the initial memory fits in what is left of the quota."""
    left = principal.quota.memory_bytes - principal.usage.memory_bytes
    if min_bytes > left:
        raise reject(f"initial memory of {min_bytes} bytes exceeds what is left of "
                     f"{principal.name}'s memory quota ({left} bytes)")


_KINDS: Final = {1: "table", 2: "memory", 3: "global", 4: "tag"}


def _static_checks(sandbox: Sandbox, point: Point, wasm: bytes, principal: Principal,
                   reject: Callable[[str], GraftRejected]) -> _Static:
    """Checks 3 (CPU left), 4-8: scan, quota, validate, compile (charged), types."""
    try:
        sec = scan_sections(wasm)
    except ValueError as exc:
        raise reject(f"malformed module: {exc}") from None
    _check_scan(point, sec, reject)
    _check_memory_left(principal, sec.memory_min * limits.WASM_PAGE, reject)
    check_cpu_left(principal, reject)
    try:
        with charged(principal):  # the engine compiles on this thread (parallel compile off)
            _check_loops(wasm, reject)
            if not point.simd:
                refuse_simd(wasm)
            module = sandbox.compile(wasm)
    except wasmtime.WasmtimeError as exc:
        msg = str(exc)
        feature = feature_of(msg)
        detail = traps.describe(-1, msg).removeprefix("the engine stopped the call: ")
        if feature == SIMD:
            raise reject(f"uses {feature}, which vino does not enable for {point.name}'s grafts "
                         f"(only on points that declare it, such as fs.filter): {detail}"
                         ) from None
        if feature is not None:
            raise reject(f"uses {feature}, which vino does not enable: {detail}") from None
        raise reject(f"invalid WebAssembly: {detail}") from None

    # Signatures are read from the bytes, never asked of wasmtime: its C API aborts the
    # process on the kind of a value type it has no code for (v128 at a SIMD point).
    try:
        iface = wasmbinary.interface(wasm)
    except ValueError as exc:
        raise reject(f"malformed module: {exc}") from None
    allowed = callables_of(point)
    for module_name, name, kind, sig in iface.imports:
        what = f"import {module_name}.{name}"
        if sig is None:  # the scan refused these already
            raise reject(f"{what}: only functions may be imported, not a "
                         f"{_KINDS.get(kind, f'kind {kind}')}")
        want = allowed[name]
        if sig != want:
            raise reject(f"{what} has type {_sig(sig)}; {point.name} offers {_sig(want)}")

    mem = next((e.type for e in module.exports if e.name == "memory"), None)
    if not isinstance(mem, wasmtime.MemoryType):
        raise reject("missing export \"memory\" (a memory)")
    if mem.is_64 or mem.is_shared:
        raise reject("exported memory must be a 32-bit unshared memory")
    want_entry = (point.params, (point.result,))
    for export, want in (("vino_buffer", ((), (I32,))), (point.entry, want_entry)):
        fsig = iface.exports.get(export, (None, None))[1]
        if fsig is None:
            raise reject(f"missing export {export!r} (a function {_sig(want)})")
        if fsig != want:
            raise reject(f"export {export!r} has type {_sig(fsig)}; "
                         f"{point.name} needs {_sig(want)}")
    has_message = "vino_message" in iface.exports
    if has_message and iface.exports["vino_message"][1] != ((I32,), (I32,)):
        raise reject("export 'vino_message' must be a function (i32) -> (i32)")
    table = 0
    for tlo, thi in sec.table_limits:  # at most one (check 4)
        table = max(tlo, min(thi if thi is not None else limits.MAX_TABLE_ELEMENTS,
                             limits.MAX_TABLE_ELEMENTS))
    return _Static(sandbox, module, mem.limits.min * limits.WASM_PAGE, has_message,
                   wasmscan.may_grow_memory(wasm), table)
