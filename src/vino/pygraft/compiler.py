"""Compile a typed subset of Python to a WebAssembly graft for one point's layout.

    from vino.pygraft.compiler import compile_source
    out = compile_source(text, layouts.EVICT, filename="evict_keep.py")
    out.wasm   # a module for vm.evict: memory, vino_buffer, vino_evict[, vino_message]

The module goes through the ordinary loader like any other graft, so safety
never depends on this compiler; what depends on it is the meaning, and the
meaning is Python's: a compiled graft returns exactly what the same function
returns run as plain Python (``vino.pygraft.shim``), or it traps. Integers are
64-bit and every operation that would leave 64 bits traps (as would storing a
value outside a field's width); ``//`` and ``%`` round toward minus infinity;
a negative index counts from the end; an index out of range traps.

The subset (anything else is rejected with file, line, column and what to write):
- module level: a docstring; ``from vino.pygraft import ...``; ``POINT = "name"``;
  constants ``NAME = <int expression>``; state ``name: int|u32|bool = <const>`` and
  ``name: list[int]|list[u32] = [c] * N`` or ``[c0, c1, ...]``; functions;
- the entry, named for the point (``evict`` or ``vino_evict``), whose parameters
  are the point's fields and arguments by name (``cand``, ``n``, ``hist``, ...);
  an optional ``message(msg: bytes) -> int``; helpers with annotated parameters
  (``int``, ``u32``, ``bool``, ``list[int]``, ``list[u32]``, ``bytes``) and result;
- statements: assignment (one target), augmented assignment, ``if``/``elif``/
  ``else``, ``while``, ``for x in range(...)`` (constant step), ``break``,
  ``continue``, ``return``, ``pass``, ``assert``, ``global``, calls;
- expressions: int and bool literals, names, ``arr[i]``, ``rows[i].field``,
  arithmetic, bitwise, comparisons (chained too), ``and``/``or``/``not`` (on
  bools, or as conditions), ``x if c else y``; ``min``, ``max``, ``abs``, ``len``,
  ``int``; ``to_u32``, ``u32_add``, ``u32_sub``, ``u32_mul``, ``rotl32``,
  ``rotr32``, ``le32``, ``set_le32``; the graft-callables ``default()``,
  ``lock(id)``, ``log("text")``, ``now()``, ``kalloc(n)``, ``kfree(h)`` and the
  point's own (``vm_hint``, ``sched_set_priority``).

Representation: ``int`` is an i64; ``u32`` (a value known to be in [0, 2**32)) and
``bool`` are i32. Local arrays live in a frame on a stack in linear memory; a
frame that does not fit grows memory, and one that cannot grow stops the graft.

Invariant: a local is read only where it is definitely assigned (checked here),
so no read can see a value plain Python would not have.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import wasmtime

from vino import limits
from vino.errors import PythonGraftError
from vino.graft.layout import Field, Layout, Struct

INT: Final = "int"
U32: Final = "u32"
BOOL: Final = "bool"
NONE: Final = "None"
I64_MIN: Final = -(1 << 63)
I64_MAX: Final = (1 << 63) - 1
M32: Final = 0xFFFFFFFF

BUFFER_AT: Final = 16  # the buffer's offset in linear memory (0 stays unused)
STACK_RESERVE: Final = limits.PYGRAFT_STACK_RESERVE_BYTES  # initial memory above the stack
MAX_ARRAY_BYTES: Final = limits.PYGRAFT_MAX_LOCAL_ARRAY_BYTES
# State, the buffer and log strings are the initial memory, which the loader holds to this:
MAX_STATIC_BYTES: Final = limits.MAX_MEMORY_PAGES * limits.WASM_PAGE - STACK_RESERVE
WASM_PAGE: Final = limits.WASM_PAGE

HELPERS: Final = frozenset({"to_u32", "u32_add", "u32_sub", "u32_mul", "rotl32", "rotr32",
                            "le32", "set_le32"})
COMMON_CALLABLES: Final = frozenset({"now", "log", "lock", "kalloc", "kfree", "default"})
BUILTINS: Final = frozenset({"min", "max", "abs", "len", "int", "range"})
TYPE_NAMES: Final = frozenset({"u32", "Row"})
ELEM_OF: Final = {INT: "i64", U32: "u32"}
ELEM_SIZE: Final = {"i64": 8, "u32": 4, "u8": 1, "i32": 4, "u64": 8}
WASM_T: Final = {INT: "i64", U32: "i32", BOOL: "i32"}
_ELEM_NAME: Final = {"i64": "int", "u32": "u32", "u8": "bytes", "i32": "int", "u64": "int"}


@dataclass(slots=True, frozen=True)
class Compiled:
    """A compiled Python graft: its binary, its text, and what it exports."""

    name: str
    point: str
    wasm: bytes
    wat: str
    has_message: bool


@dataclass(slots=True)
class ArrayRef:
    """How to reach an array: its base address (i32 code), bound (i64 code), elements."""

    name: str
    elem: str  # "i64" | "u32" | "u8" | "i32" | "u64" | "row"
    base: list[str]
    bound: list[str]
    writable: bool
    row: Struct | None = None
    const_bound: int | None = None

    @property
    def stride(self) -> int:
        return self.row.size if self.row is not None else ELEM_SIZE[self.elem]


@dataclass(slots=True)
class Sig:
    name: str
    params: list[tuple[str, str]]  # (name, type): INT/U32/BOOL or "list:i64"/"list:u32"/"list:u8"
    ret: str
    node: ast.FunctionDef
    writes: set[str] = field(default_factory=set)  # array params it stores into


class _Fail(Exception):
    def __init__(self, node: ast.AST | None, problem: str, instead: str) -> None:
        super().__init__(problem)
        self.node = node
        self.problem = problem
        self.instead = instead


def _fail(node: ast.AST | None, problem: str, instead: str) -> _Fail:
    return _Fail(node, problem, instead)


# ---- module level ---------------------------------------------------------------------------

@dataclass(slots=True)
class _State:
    name: str
    type: str  # INT/U32/BOOL or "list:i64"/"list:u32"
    init: int | list[int]
    count: int = 0
    at: int = 0  # arrays: offset in linear memory


class _Module:
    def __init__(self, tree: ast.Module, layout: Layout, filename: str,
                 entry_name: str | None) -> None:
        self.layout = layout
        self.filename = filename
        self.consts: dict[str, int] = {}
        self.state: dict[str, _State] = {}
        self.funcs: dict[str, ast.FunctionDef] = {}
        self.imported: set[str] = set()
        self.point_name: str | None = None
        self.strings: dict[bytes, int] = {}
        self.string_data = bytearray()
        self._read(tree)
        if self.point_name is not None and self.point_name != layout.point:
            raise _fail(None, f"POINT says {self.point_name!r} but the graft is compiled for "
                        f"{layout.point!r}", "compile it for the point it names")
        short = layout.entry.removeprefix("vino_")
        names = [entry_name] if entry_name else [short, layout.entry]
        found = [n for n in names if n in self.funcs]
        if not found:
            raise _fail(None, f"no entry function for {layout.point}",
                        f"define `def {short}(...) -> int` whose parameters are the "
                        f"point's fields ({', '.join(_field_names(layout))})")
        self.entry = found[0]
        self.message = next((n for n in ("message", "vino_message") if n in self.funcs), None)
        self.sigs: dict[str, Sig] = {}
        for name, fn in self.funcs.items():
            if name not in (self.entry, self.message):
                self.sigs[name] = _signature(fn)
        # Linear memory: [0, 16) unused, the buffer, state arrays, strings, the stack.
        at = _align(BUFFER_AT + layout.buffer_size, 8)
        for st in self.state.values():
            if st.type.startswith("list:"):
                st.at = at
                at += _align(st.count * ELEM_SIZE[st.type[5:]], 8)
                if at > MAX_STATIC_BYTES:  # checked before any segment is built
                    raise _fail(tree.body[0] if tree.body else None,
                                f"module state of more than {MAX_STATIC_BYTES} bytes",
                                "keep module state smaller")
        self.strings_at = at

    def _read(self, tree: ast.Module) -> None:
        for i, node in enumerate(tree.body):
            if i == 0 and _is_docstring(node):
                continue
            if isinstance(node, ast.ImportFrom):
                if node.module == "__future__":
                    continue
                if node.module not in ("vino.pygraft", "vino.pygraft.shim"):
                    raise _fail(node, f"import from {node.module!r}",
                                "import only from vino.pygraft (helpers and graft-callables)")
                for a in node.names:
                    known = HELPERS | COMMON_CALLABLES | TYPE_NAMES | set(self.layout.callables)
                    if a.name not in known or a.asname not in (None, a.name):
                        raise _fail(node, f"vino.pygraft has nothing named {a.name!r} for "
                                    f"{self.layout.point}", "use one of: " +
                                    ", ".join(sorted(known)))
                    self.imported.add(a.name)
            elif isinstance(node, ast.FunctionDef):
                if node.name in self.funcs:
                    raise _fail(node, f"function {node.name} defined twice", "rename one")
                self.funcs[node.name] = node
            elif isinstance(node, ast.Assign):
                if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                    raise _fail(node, "a module-level assignment to more than one name",
                                "write `NAME = value` for a constant")
                name = node.targets[0].id
                if name == "POINT":
                    if not (isinstance(node.value, ast.Constant)
                            and isinstance(node.value.value, str)):
                        raise _fail(node, "POINT is not a string", 'write POINT = "vm.evict"')
                    self.point_name = node.value.value
                    continue
                self.consts[name] = self.const(node.value)
            elif isinstance(node, ast.AnnAssign):
                self._state(node)
            elif isinstance(node, ast.Import):
                raise _fail(node, "a plain import", "write `from vino.pygraft import ...`")
            else:
                raise _fail(node, f"{_what(node)} at module level",
                            "keep only imports, constants, typed state and functions there")

    def _state(self, node: ast.AnnAssign) -> None:
        if not isinstance(node.target, ast.Name) or node.value is None:
            raise _fail(node, "module state without a name and an initial value",
                        "write `name: int = 0`")
        name = node.target.id
        t = _ann_type(node.annotation, allow_list=True)
        if t.startswith("list:"):
            if t == "list:u8":
                raise _fail(node, "byte arrays as state", "use list[u32]")
            count, init = self.array_init(node.value)
            if count * ELEM_SIZE[t[5:]] > MAX_STATIC_BYTES:
                raise _fail(node, f"array {name} of {count} elements is too large",
                            f"keep module state under {MAX_STATIC_BYTES} bytes")
            for v in init:
                _check_fits(node, v, t[5:])
            self.state[name] = _State(name, t, init, count)
        else:
            v = self.const(node.value)
            _check_fits(node, v, {INT: "i64", U32: "u32", BOOL: "bool"}[t])
            self.state[name] = _State(name, t, v)

    def array_init(self, value: ast.expr) -> tuple[int, list[int]]:
        if isinstance(value, ast.List):
            return len(value.elts), [self.const(e) for e in value.elts]
        if (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
                and isinstance(value.left, ast.List) and len(value.left.elts) == 1):
            n = self.const(value.right)
            if n <= 0:
                raise _fail(value, f"an array of {n} elements", "give it a positive length")
            return n, [self.const(value.left.elts[0])] * n if n <= 4096 else _Repeat(
                self.const(value.left.elts[0]), n)
        raise _fail(value, "an array initialised by something else",
                    "write `[0] * N` or `[c0, c1, ...]` with constants")

    def const(self, node: ast.expr) -> int:
        v = self.try_const(node)
        if v is None:
            raise _fail(node, "not a constant expression",
                        "use int literals, True/False and other constants here")
        return v

    def try_const(self, node: ast.expr) -> int | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return int(node.value)
        if isinstance(node, ast.Name) and node.id in self.consts:
            return self.consts[node.id]
        if isinstance(node, ast.UnaryOp):
            v = self.try_const(node.operand)
            if v is None:
                return None
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return v
            if isinstance(node.op, ast.Invert):
                return ~v
            return None
        if isinstance(node, ast.BinOp):
            a, b = self.try_const(node.left), self.try_const(node.right)
            if a is None or b is None:
                return None
            op = _CONST_OPS.get(type(node.op))
            if op is None:
                return None
            try:
                return op(a, b)
            except (ZeroDivisionError, ValueError):
                return None
        return None

    def string(self, s: str) -> tuple[int, int]:
        data = s.encode()
        if data not in self.strings:
            self.strings[data] = self.strings_at + len(self.string_data)
            self.string_data += data
        return self.strings[data], len(data)


class _Repeat(list[int]):
    """``[c] * n`` for large n without building the list."""

    def __init__(self, value: int, n: int) -> None:
        super().__init__([value])
        self.n = n


_CONST_OPS: Final[dict[type, Callable[[int, int], int]]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.LShift: lambda a, b: a << b if 0 <= b <= 64 else _bad(),
    ast.RShift: lambda a, b: a >> b, ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b, ast.BitXor: lambda a, b: a ^ b,
}


def _bad() -> int:
    raise ValueError


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _what(node: ast.AST) -> str:
    names = {ast.ClassDef: "a class", ast.Try: "try", ast.With: "with", ast.Lambda: "lambda",
             ast.ListComp: "a list comprehension", ast.Dict: "a dict", ast.Set: "a set",
             ast.Tuple: "a tuple", ast.JoinedStr: "an f-string", ast.Raise: "raise",
             ast.Delete: "del", ast.AsyncFunctionDef: "async def", ast.Await: "await",
             ast.Yield: "yield", ast.GeneratorExp: "a generator", ast.Starred: "*args",
             ast.DictComp: "a dict comprehension", ast.SetComp: "a set comprehension",
             ast.NamedExpr: "the walrus operator", ast.Nonlocal: "nonlocal",
             ast.Match: "match", ast.Slice: "a slice"}
    return names.get(type(node), type(node).__name__)


def _check_fits(node: ast.AST, v: int, kind: str) -> None:
    lo, hi = {"i64": (I64_MIN, I64_MAX), "u32": (0, M32), "bool": (0, 1),
              "u8": (0, 255)}[kind]
    if not lo <= v <= hi:
        raise _fail(node, f"{v} does not fit a {kind}", f"use a value in [{lo}, {hi}]")


def _ann_type(node: ast.expr | None, *, allow_list: bool = False,
              allow_none: bool = False) -> str:
    if node is None:
        if allow_none:
            return NONE
        raise _fail(node, "a parameter without a type", "annotate it: int, u32, bool, ...")
    if isinstance(node, ast.Constant) and node.value is None and allow_none:
        return NONE
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _ann_type(ast.parse(node.value, mode="eval").body, allow_list=allow_list,
                         allow_none=allow_none)
    if isinstance(node, ast.Name) and node.id in (INT, U32, BOOL):
        return node.id
    if allow_list:
        if isinstance(node, ast.Name) and node.id in ("bytes", "bytearray"):
            return "list:u8"
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "list" and isinstance(node.slice, ast.Name)
                and node.slice.id in (INT, U32)):
            return "list:" + ELEM_OF[node.slice.id]
    raise _fail(node, f"the type {ast.unparse(node)}",
                "use int, u32, bool" + (", list[int], list[u32] or bytes" if allow_list
                                        else ""))


def _signature(fn: ast.FunctionDef) -> Sig:
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise _fail(fn, f"{fn.name}: *args, **kwargs, keyword-only or default arguments",
                    "use plain positional parameters")
    params = [(p.arg, _ann_type(p.annotation, allow_list=True)) for p in a.args]
    ret = _ann_type(fn.returns, allow_none=True)
    writes = {p for p, t in params if t.startswith("list:") and _stores_into(fn, p)}
    return Sig(fn.name, params, ret, fn, writes)


def _stores_into(fn: ast.FunctionDef, name: str) -> bool:
    for node in ast.walk(fn):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                    and t.value.id == name):
                return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "set_le32" and node.args
                and isinstance(node.args[0], ast.Name) and node.args[0].id == name):
            return True
    return False


def _field_names(layout: Layout) -> list[str]:
    return [a.name for a in layout.args] + [f.name for f in layout.fields.fields if not f.pad]


def _assigned_names(fn: ast.FunctionDef) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif (isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For)
              and isinstance(node.target, ast.Name)):
            out.add(node.target.id)
    return out


# ---- functions ------------------------------------------------------------------------------

class _Func:
    """Compiles one function body to WAT instructions."""

    def __init__(self, mod: _Module, fn: ast.FunctionDef, role: str) -> None:
        self.mod = mod
        self.fn = fn
        self.role = role  # "entry" | "message" | "helper"
        self.locals: dict[str, str] = {}  # scalar name -> type
        self.wasm_locals: list[tuple[str, str]] = []
        self.arrays: dict[str, ArrayRef] = {}
        self.params: list[str] = []  # wasm params, "(param $x i64)"
        self.globals: set[str] = set()
        self.assigned: set[str] = set()  # definitely assigned here
        self.frame = 0
        self.loops: list[tuple[str, str]] = []
        # Loop variables proved to index an array in range: var -> array name.
        self.in_range: dict[str, str] = {}
        self.labels = 0
        self.fresh = 0
        self.code: list[str] = []
        self.local_names = _assigned_names(fn)
        self.has_frame = any(isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None
                             and _is_array_value(n.value) for n in ast.walk(fn))
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                for n in node.names:
                    if n not in mod.state:
                        raise _fail(node, f"global {n}: no module state of that name",
                                    f"declare it at module level: `{n}: int = 0`")
                    self.globals.add(n)
                self.local_names -= set(node.names)
            elif isinstance(node, ast.Lambda):
                raise _fail(node, "a lambda", "define a helper function at module level")
            elif isinstance(node, ast.FunctionDef) and node is not fn:
                raise _fail(node, "a function inside a function",
                            "define helpers at module level")
        for n in self.local_names & (set(mod.consts) | set(mod.state)):
            raise _fail(fn, f"{fn.name} assigns {n}, a module constant or state",
                        f"use `global {n}` for state, or another name for a local")
        if role == "helper":
            self.sig = mod.sigs[fn.name]
            self.ret = self.sig.ret
        else:
            self.ret = "entry"
        for t in ("$a", "$b", "$r", "$ix", "$c"):
            self.wasm_locals.append((t, "i64"))
        self.wasm_locals.append(("$fp", "i32"))

    # ---- helpers ------------------------------------------------------------------------
    def err(self, node: ast.AST | None, problem: str, instead: str) -> _Fail:
        return _fail(node, problem, instead)

    def label(self, kind: str) -> str:
        self.labels += 1
        return f"${kind}{self.labels}"

    def new_local(self, t: str) -> str:
        self.fresh += 1
        name = f"$t{self.fresh}"
        self.wasm_locals.append((name, t))
        return name

    def declare(self, name: str, t: str) -> None:
        self.locals[name] = t
        self.wasm_locals.append((f"$v_{name}", WASM_T[t]))

    # ---- the function ---------------------------------------------------------------------
    def compile(self) -> str:
        fn = self.fn
        pro: list[str] = []
        if self.role == "entry":
            pro += self.bind_entry()
            result = "(result i32)"
        elif self.role == "message":
            pro += self.bind_message()
            result = "(result i32)"
        else:
            for pname, t in self.sig.params:
                if t.startswith("list:"):
                    base, bound = f"$p_{pname}", f"$n_{pname}"
                    self.params += [f"(param {base} i32)", f"(param {bound} i64)"]
                    self.arrays[pname] = ArrayRef(pname, t[5:], [f"local.get {base}"],
                                                  [f"local.get {bound}"],
                                                  writable=pname in self.sig.writes)
                else:
                    self.params.append(f"(param $v_{pname} {WASM_T[t]})")
                    self.locals[pname] = t
                self.assigned.add(pname)
            result = f"(result {WASM_T[self.ret]})" if self.ret != NONE else ""
        body = [s for i, s in enumerate(fn.body) if not (i == 0 and _is_docstring(s))]
        self.block(body)
        if not _always_returns(body):
            if self.ret not in (NONE,):
                raise self.err(fn, f"{fn.name} can reach its end without returning a value",
                               "end it with a return statement")
            self.code += self.epilogue()
        if self.frame:
            frame = _align(self.frame, 16)
            pro += ["global.get $sp", "local.tee $fp", f"i32.const {frame}", "i32.add",
                    "local.tee $ix_fp", "memory.size", "i32.const 16", "i32.shl", "i32.gt_u",
                    "if", "local.get $ix_fp", "call $grow_to", "end",
                    "local.get $ix_fp", "global.set $sp"]
            self.wasm_locals.append(("$ix_fp", "i32"))
        if self.role in ("entry", "message"):
            pro = ["global.get $sp0", "global.set $sp", *pro]
        name = {"entry": "$entry", "message": "$message"}.get(self.role, f"$f_{fn.name}")
        export = {"entry": f' (export "{self.mod.layout.entry}")',
                  "message": ' (export "vino_message")'}.get(self.role, "")
        locs = " ".join(f"(local {n} {t})" for n, t in self.wasm_locals)
        lines = [f"(func {name}{export} {' '.join(self.params)} {result} {locs}"]
        lines += ["  " + c for c in pro + self.code]
        lines.append("  unreachable)" if self.ret != NONE else ")")
        return "\n".join(lines)

    def epilogue(self) -> list[str]:
        return ["local.get $fp", "global.set $sp"] if self.has_frame else []

    def bind_entry(self) -> list[str]:
        lay = self.mod.layout
        a = self.fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
            raise self.err(self.fn, "the entry takes *args, **kwargs or defaults",
                           "name the fields you use as plain parameters")
        pro: list[str] = []
        argnames = [x.name for x in lay.args]
        for x in lay.args:
            self.params.append(f"(param $arg_{x.name} i32)")
        for p in a.args:
            name = p.arg
            if name in argnames:
                self.declare(name, INT)
                pro += [f"local.get $arg_{name}", "i64.extend_i32_s", f"local.set $v_{name}"]
            else:
                try:
                    f = lay.field(name)
                except KeyError:
                    raise self.err(p, f"{lay.point} has no field {name!r}",
                                   "name parameters after the point's fields: " +
                                   ", ".join(_field_names(lay))) from None
                if f.pad:
                    raise self.err(p, f"{name} is padding", "leave it out")
                if f.count is None:
                    code, t = self.load_scalar([f"i32.const {BUFFER_AT + f.offset}"],
                                               _kind(f), 0)
                    self.declare(name, t)
                    pro += [*code, f"local.set $v_{name}"]
                else:
                    pro += self.bind_field_array(f, argnames)
            self.assigned.add(name)
        return pro

    def bind_field_array(self, f: Field, argnames: list[str]) -> list[str]:
        assert f.count is not None
        lay = self.mod.layout
        base = [f"i32.const {BUFFER_AT + f.offset}"]
        if f.valid is None:
            bound, pro = [f"i64.const {f.count}"], []
        else:
            loc = self.new_local("i64")
            if f.valid in argnames:
                n = [f"local.get $arg_{f.valid}", "i64.extend_i32_u"]
            else:
                vf = lay.field(f.valid)
                n = [f"i32.const {BUFFER_AT + vf.offset}", "i64.load32_u"]
            pro = [*n, "local.tee $c", f"i64.const {f.count}", "local.get $c",
                   f"i64.const {f.count}", "i64.lt_u", "select", f"local.set {loc}"]
            bound = [f"local.get {loc}"]
        row = f.elem if isinstance(f.elem, Struct) else None
        elem = "row" if row is not None else _kind(f)
        self.arrays[f.name] = ArrayRef(f.name, elem, base, bound, f.writable, row,
                                       f.count if f.valid is None else None)
        return pro

    def bind_message(self) -> list[str]:
        a = self.fn.args
        if len(a.args) != 1 or a.vararg or a.kwarg or a.kwonlyargs:
            raise self.err(self.fn, "message() takes one parameter",
                           "write `def message(msg: bytes) -> int`")
        name = a.args[0].arg
        self.params.append("(param $len i32)")
        loc = self.new_local("i64")
        size = self.mod.layout.buffer_size
        self.arrays[name] = ArrayRef(name, "u8", [f"i32.const {BUFFER_AT}"], [f"local.get {loc}"],
                                     False)
        self.assigned.add(name)
        return ["local.get $len", "i64.extend_i32_u", "local.tee $c", f"i64.const {size}",
                "local.get $c", f"i64.const {size}", "i64.lt_u", "select", f"local.set {loc}"]

    # ---- statements -------------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        c = self.code
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise self.err(s, "chained assignment", "assign one name at a time")
            self.assign(s.targets[0], s.value, None, s)
        elif isinstance(s, ast.AnnAssign):
            t = _ann_type(s.annotation, allow_list=True)
            if not isinstance(s.target, ast.Name):
                raise self.err(s, "an annotated assignment to something other than a name",
                               "annotate plain names")
            if s.value is None:
                raise self.err(s, "a declaration without a value", "give it a value")
            self.assign(s.target, s.value, t, s)
        elif isinstance(s, ast.AugAssign):
            self.augassign(s)
        elif isinstance(s, ast.If):
            code, _ = self.cond(s.test)
            c += code
            before = set(self.assigned)
            c.append("if")
            self.block(s.body)
            after_then = self.assigned if not _always_exits(s.body) else None
            self.assigned = set(before)
            if s.orelse:
                c.append("else")
                self.block(s.orelse)
            after_else = self.assigned if not _always_exits(s.orelse) else None
            c.append("end")
            if after_then is None and after_else is None:
                self.assigned = before | self.local_names
            elif after_then is None:
                self.assigned = after_else or before
            elif after_else is None:
                self.assigned = after_then
            else:
                self.assigned = after_then & after_else
        elif isinstance(s, ast.While):
            if s.orelse:
                raise self.err(s, "while ... else", "set a flag before break instead")
            brk, top = self.label("brk"), self.label("top")
            c += [f"block {brk}", f"loop {top}"]
            code, _ = self.cond(s.test)
            c += [*code, "i32.eqz", f"br_if {brk}"]
            before = set(self.assigned)
            self.loops.append((brk, top))
            self.block(s.body)
            self.loops.pop()
            self.assigned = before
            c += [f"br {top}", "end", "end"]
        elif isinstance(s, ast.For):
            self.for_range(s)
        elif isinstance(s, ast.Break):
            if not self.loops:
                raise self.err(s, "break outside a loop", "remove it")
            c.append(f"br {self.loops[-1][0]}")
        elif isinstance(s, ast.Continue):
            if not self.loops:
                raise self.err(s, "continue outside a loop", "remove it")
            c.append(f"br {self.loops[-1][1]}")
        elif isinstance(s, ast.Return):
            self.ret_stmt(s)
        elif isinstance(s, ast.Pass | ast.Global):
            pass
        elif isinstance(s, ast.Assert):
            code, _ = self.cond(s.test)
            c += [*code, "i32.eqz", "if", "unreachable", "end"]
        elif isinstance(s, ast.Expr):
            if not isinstance(s.value, ast.Call):
                if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                    return  # a comment-like string
                raise self.err(s, "an expression whose value is thrown away",
                               "assign it, or call a function")
            code, t = self.call(s.value, statement=True)
            c += code
            if t != NONE:
                c.append("drop")
        else:
            raise self.err(s, f"{_what(s)} is not in the compiled subset",
                           "use if/while/for-range, assignments, calls and return")

    def ret_stmt(self, s: ast.Return) -> None:
        if self.ret == NONE:
            if s.value is not None:
                raise self.err(s, f"{self.fn.name} is declared to return None",
                               "annotate the return type, or return nothing")
            self.code += [*self.epilogue(), "return"]
            return
        if s.value is None:
            raise self.err(s, "a bare return", f"return a value from {self.fn.name}")
        code, t = self.expr(s.value)
        if self.ret == "entry":
            code = self.conv(code, t, INT, s.value)
            code += ["local.tee $c", "local.get $c", "i32.wrap_i64", "i64.extend_i32_s",
                     "i64.ne", "if", "unreachable", "end", "local.get $c", "i32.wrap_i64"]
        else:
            code = self.conv(code, t, self.ret, s.value)
        self.code += [*code, *self.epilogue(), "return"]

    def for_range(self, s: ast.For) -> None:
        if s.orelse:
            raise self.err(s, "for ... else", "set a flag before break instead")
        it = s.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and 1 <= len(it.args) <= 3 and not it.keywords):
            raise self.err(it, "a for loop over something other than range(...)",
                           "loop with `for i in range(n)` and index the array")
        if not isinstance(s.target, ast.Name):
            raise self.err(s.target, "a for loop target that is not a name",
                           "use one name: `for i in range(n)`")
        step = 1
        if len(it.args) == 3:
            sv = self.mod.try_const(it.args[2])
            if sv is None or sv == 0:
                raise self.err(it.args[2], "a range step that is not a non-zero constant",
                               "use a constant step, or a while loop")
            step = sv
        start_n: ast.expr = it.args[0] if len(it.args) > 1 else ast.Constant(0)
        stop_n = it.args[1] if len(it.args) > 1 else it.args[0]
        k, end = self.new_local("i64"), self.new_local("i64")
        c = self.code
        for node, loc in ((start_n, k), (stop_n, end)):
            code, t = self.expr(node)
            c += [*self.conv(code, t, INT, node), f"local.set {loc}"]
        var = s.target.id
        if var in self.arrays:
            raise self.err(s.target, f"{var} is an array", "use another name for the counter")
        if var in self.globals:
            raise self.err(s.target, f"{var} is module state", "count with a local")
        if var not in self.locals:
            self.declare(var, INT)
        brk, top, cont = self.label("brk"), self.label("top"), self.label("cont")
        cmp = "i64.ge_s" if step > 0 else "i64.le_s"
        c += [f"block {brk}", f"loop {top}", f"local.get {k}", f"local.get {end}", cmp,
              f"br_if {brk}", *self.conv([f"local.get {k}"], INT, self.locals[var], s.target),
              f"local.set $v_{var}", f"block {cont}"]
        before = set(self.assigned)
        self.assigned.add(var)
        self.loops.append((brk, cont))
        safe = self._in_range_of(var, start_n, stop_n, step, s.body)
        if safe is not None:
            self.in_range[var] = safe
        self.block(s.body)
        if safe is not None:
            del self.in_range[var]
        self.loops.pop()
        self.assigned = before
        # The next counter passes the stop (and range ends) iff it would leave i64.
        limit = I64_MAX - step if step > 0 else I64_MIN - step
        over = "i64.gt_s" if step > 0 else "i64.lt_s"
        c += ["end", f"local.get {k}", f"i64.const {limit}", over, f"br_if {brk}",
              f"local.get {k}", f"i64.const {step}", "i64.add", f"local.set {k}",
              f"br {top}", "end", "end"]

    def _in_range_of(self, var: str, start: ast.expr, stop: ast.expr, step: int,
                     body: list[ast.stmt]) -> str | None:
        """The array ``var`` always indexes in range in ``body``, if the loop proves one.

        ``for i in range(c, len(a))`` with a constant c >= 0 and step > 0, where the body
        never assigns ``i``: every ``a[i]`` in the body is in range (an array's length
        never changes), so its bounds check can go.
        """
        c = self.mod.try_const(start)
        if (step <= 0 or c is None or c < 0 or var in self.in_range
                or not (isinstance(stop, ast.Call) and isinstance(stop.func, ast.Name)
                        and stop.func.id == "len" and len(stop.args) == 1
                        and isinstance(stop.args[0], ast.Name))):
            return None
        name = stop.args[0].id
        if name not in self.arrays and not (name in self.mod.state
                                            and self.mod.state[name].type.startswith("list:")):
            return None
        for stmt in body:
            for node in ast.walk(stmt):
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign):
                    targets = list(node.targets)
                elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For):
                    targets = [node.target]
                if any(isinstance(t, ast.Name) and t.id in (var, name) for t in targets):
                    return None
        return name

    def assign(self, target: ast.expr, value: ast.expr, ann: str | None, s: ast.stmt) -> None:
        c = self.code
        if isinstance(target, ast.Subscript):
            if ann is not None:
                raise self.err(s, "an annotated element", "annotate names only")
            addr, ref = self.address(target)
            if not ref.writable:
                raise self.err(target, f"{ref.name} is read-only",
                               "write only to out/data, your own arrays and state")
            code, t = self.expr(value)
            c += [*addr, *self.store(ref, code, t, value)]
            return
        if isinstance(target, ast.Tuple | ast.List):
            raise self.err(target, "unpacking assignment", "assign one name at a time")
        if not isinstance(target, ast.Name):
            raise self.err(target, f"assignment to {_what(target)}",
                           "assign to a name or an array element")
        name = target.id
        if (ann is not None and ann.startswith("list:")) or _is_array_value(value):
            self.local_array(name, value, ann, s)
            return
        if name in self.arrays:
            raise self.err(target, f"{name} is an array", "assign to its elements: name[i] = v")
        if name in self.globals:
            st = self.mod.state[name]
            if st.type.startswith("list:"):
                raise self.err(target, f"{name} is an array", "assign to its elements")
            code, t = self.expr(value)
            c += [*self.conv(code, t, st.type, value), f"global.set $g_{name}"]
            return
        if name in self.mod.state:  # (the constructor rejects assigning constants)
            raise self.err(target, f"assigning module state {name} without `global {name}`",
                           f"add `global {name}` at the top of {self.fn.name}")
        code, t = self.expr(value)
        if t == NONE:
            raise self.err(value, "a call that returns nothing", "call it as a statement")
        if name not in self.locals:  # a local is u32 only when annotated so
            self.declare(name, ann or (INT if t == U32 else t))
        elif ann is not None and ann != self.locals[name]:
            raise self.err(s, f"{name} was {self.locals[name]} before", "keep one type per name")
        c += [*self.conv(code, t, self.locals[name], value), f"local.set $v_{name}"]
        self.assigned.add(name)

    def local_array(self, name: str, value: ast.expr, ann: str | None, s: ast.stmt) -> None:
        if name in self.arrays or name in self.locals:
            raise self.err(s, f"{name} is assigned an array twice",
                           "create each local array once, then assign its elements")
        elem = ann[5:] if ann else "i64"
        if elem == "u8":
            raise self.err(s, "local byte arrays", "use list[u32]")
        if isinstance(value, ast.List):
            items = value.elts
            n = len(items)
        else:
            assert isinstance(value, ast.BinOp) and isinstance(value.left, ast.List)
            nv = self.mod.try_const(value.right)
            if nv is None or nv <= 0:
                raise self.err(value.right, "an array length that is not a positive constant",
                               "size local arrays with a constant: [0] * N")
            n, items = nv, []
        size = n * ELEM_SIZE[elem]
        if size > MAX_ARRAY_BYTES:
            raise self.err(s, f"a local array of {size} bytes",
                           f"keep arrays under {MAX_ARRAY_BYTES} bytes")
        at = self.frame
        self.frame = _align(at + size, 8)
        ref = ArrayRef(name, elem, ["local.get $fp", f"i32.const {at}", "i32.add"],
                       [f"i64.const {n}"], True, None, n)
        self.arrays[name] = ref
        self.assigned.add(name)
        c = self.code
        if items:
            for i, e in enumerate(items):
                code, t = self.expr(e)
                c += [*ref.base, f"i32.const {i * ELEM_SIZE[elem]}", "i32.add",
                      *self.store(ref, code, t, e)]
            return
        assert isinstance(value, ast.BinOp) and isinstance(value.left, ast.List)
        fill = value.left.elts[0]
        if self.mod.try_const(fill) == 0:
            c += [*ref.base, "i32.const 0", f"i32.const {size}", "memory.fill"]
            return
        code, t = self.expr(fill)
        tmp = self.new_local(WASM_T[INT] if elem == "i64" else "i32")
        c += [*self.conv(code, t, INT if elem == "i64" else U32, fill), f"local.set {tmp}"]
        iv = self.new_local("i32")
        top, brk = self.label("top"), self.label("brk")
        store = "i64.store" if elem == "i64" else "i32.store"
        c += ["i32.const 0", f"local.set {iv}", f"block {brk}", f"loop {top}",
              f"local.get {iv}", f"i32.const {n}", "i32.ge_u", f"br_if {brk}",
              *ref.base, f"local.get {iv}", f"i32.const {ELEM_SIZE[elem]}", "i32.mul",
              "i32.add", f"local.get {tmp}", store, f"local.get {iv}", "i32.const 1",
              "i32.add", f"local.set {iv}", f"br {top}", "end", "end"]

    def augassign(self, s: ast.AugAssign) -> None:
        t = s.target
        if isinstance(t, ast.Subscript) and not isinstance(t.slice, ast.Name | ast.Constant):
            raise self.err(t, "augmented assignment to an element with a computed index",
                           "compute the index into a name first")
        if isinstance(t, ast.Name) and t.id not in self.assigned and t.id not in self.globals:
            raise self.err(t, f"{t.id} may be read before it is assigned",
                           f"assign {t.id} before this line on every path")
        if isinstance(t, ast.Attribute):
            raise self.err(t, "assignment to a field", "fields of rows are read-only")
        load: ast.expr = (ast.Name(t.id, ast.Load()) if isinstance(t, ast.Name) else
                          ast.Subscript(t.value, t.slice, ast.Load()))
        ast.copy_location(load, t)
        value = ast.copy_location(ast.BinOp(load, s.op, s.value), s)
        self.assign(t, value, None, s)

    # ---- conditions and expressions -------------------------------------------------------
    def cond(self, node: ast.expr) -> tuple[list[str], str]:
        """``node`` as an i32 truth value."""
        if isinstance(node, ast.BoolOp):
            return self.boolop(node, truth=True)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            code, _ = self.cond(node.operand)
            return [*code, "i32.eqz"], BOOL
        code, t = self.expr(node)
        return self.truth(code, t, node), BOOL

    def truth(self, code: list[str], t: str, node: ast.AST) -> list[str]:
        if t == INT:
            return [*code, "i64.eqz", "i32.eqz"]
        if t == U32:
            return [*code, "i32.eqz", "i32.eqz"]
        if t == BOOL:
            return code
        raise self.err(node, "a value with no truth value", "compare it explicitly")

    def boolop(self, node: ast.BoolOp, truth: bool) -> tuple[list[str], str]:
        parts = []
        for v in node.values:
            if truth:
                parts.append(self.cond(v)[0])
            else:
                code, t = self.expr(v)
                if t != BOOL:
                    raise self.err(v, f"`{'and' if isinstance(node.op, ast.And) else 'or'}` "
                                   "on a non-bool value (Python would return the value itself)",
                                   "compare explicitly (x != 0), or use it in a condition")
                parts.append(code)
        code = parts[0]
        for p in parts[1:]:
            if isinstance(node.op, ast.And):
                code = [*code, "if (result i32)", *p, "else", "i32.const 0", "end"]
            else:
                code = [*code, "if (result i32)", "i32.const 1", "else", *p, "end"]
        return code, BOOL

    def expr(self, node: ast.expr) -> tuple[list[str], str]:
        cv = self.mod.try_const(node) if not isinstance(node, ast.Name) or (
            node.id not in self.locals and node.id not in self.arrays) else None
        if cv is not None and not (isinstance(node, ast.Constant) and type(node.value) is bool):
            _check_fits(node, cv, "i64")
            return [f"i64.const {cv}"], INT
        if isinstance(node, ast.Constant):
            if type(node.value) is bool:
                return [f"i32.const {int(node.value)}"], BOOL
            raise self.err(node, f"the constant {node.value!r}",
                           "only ints and True/False are values; strings go to log()")
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node, truth=False)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            tc, _ = self.cond(node.test)
            a, ta = self.expr(node.body)
            b, tb = self.expr(node.orelse)
            t = ta if ta == tb else INT
            if t in (NONE,):
                raise self.err(node, "a conditional without a value", "give both sides values")
            a, b = self.conv(a, ta, t, node.body), self.conv(b, tb, t, node.orelse)
            return [*tc, f"if (result {WASM_T[t]})", *a, "else", *b, "end"], t
        if isinstance(node, ast.Subscript):
            addr, ref = self.address(node)
            if ref.row is not None:
                raise self.err(node, f"a whole row of {ref.name}",
                               f"read one field: {ref.name}[i].{ref.row.fields[0].name}")
            code, t = self.load_scalar(addr, ref.elem, 0)
            return code, t
        if isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Subscript):
                raise self.err(node, "attribute access", "read fields of rows: cand[i].vpn")
            addr, ref = self.address(node.value)
            if ref.row is None:
                raise self.err(node, f"{ref.name} has no fields", f"use {ref.name}[i]")
            try:
                f = ref.row.field(node.attr)
            except KeyError:
                raise self.err(node, f"{ref.row.name} has no field {node.attr!r}",
                               "use one of: " + ", ".join(
                                   x.name for x in ref.row.fields if not x.pad)) from None
            if f.pad:
                raise self.err(node, f"{node.attr} is padding", "leave it out")
            return self.load_scalar(addr, _kind(f), f.offset)
        if isinstance(node, ast.Call):
            code, t = self.call(node, statement=False)
            if t == NONE:
                raise self.err(node, "a call that returns nothing used as a value",
                               "call it as a statement")
            return code, t
        raise self.err(node, f"{_what(node)} is not in the compiled subset",
                       "use ints, bools, names, fields, arithmetic and calls")

    def name(self, node: ast.Name) -> tuple[list[str], str]:
        n = node.id
        if n in self.locals or n in self.local_names:
            if n not in self.assigned:
                raise self.err(node, f"{n} may be read before it is assigned",
                               f"assign {n} before this line on every path")
            if n in self.arrays:
                raise self.err(node, f"the array {n} as a value",
                               f"index it ({n}[i]) or pass it to a helper")
            return [f"local.get $v_{n}"], self.locals[n]
        if n in self.arrays:
            raise self.err(node, f"the array {n} as a value",
                           f"index it ({n}[i]) or pass it to a helper")
        st = self.mod.state.get(n)
        if st is not None:
            if st.type.startswith("list:"):
                raise self.err(node, f"the array {n} as a value", f"index it: {n}[i]")
            return [f"global.get $g_{n}"], st.type
        if n in ("True", "False"):
            return [f"i32.const {int(n == 'True')}"], BOOL
        raise self.err(node, f"unknown name {n!r}",
                       "use a parameter, a local, module state, a constant or an import")

    def array(self, node: ast.expr) -> ArrayRef:
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            raise self.err(node, "a slice", "index one element at a time in a loop")
        if isinstance(node, ast.Name):
            n = node.id
            if n in self.arrays:
                return self.arrays[n]
            st = self.mod.state.get(n)
            if st is not None and st.type.startswith("list:"):
                return ArrayRef(n, st.type[5:], [f"i32.const {st.at}"], [f"i64.const {st.count}"],
                                True, None, st.count)
            lay = self.mod.layout
            if any(f.name == n for f in lay.fields.fields) and n not in self.locals:
                raise self.err(node, f"the field {n} is not a parameter of {self.fn.name}",
                               f"add {n} to the entry's parameters")
        raise self.err(node, f"{ast.unparse(node)} is not an array",
                       "index parameters, local arrays and state arrays")

    def address(self, node: ast.Subscript) -> tuple[list[str], ArrayRef]:
        """The i32 address of ``arr[i]`` (bounds-checked, negative counts from the end)."""
        ref = self.array(node.value)
        if isinstance(node.slice, ast.Slice):
            raise self.err(node, "a slice", "index one element at a time in a loop")
        ci = self.mod.try_const(node.slice)
        if ci is not None and ref.const_bound is not None:
            i = ci + ref.const_bound if ci < 0 else ci
            if not 0 <= i < ref.const_bound:
                raise self.err(node, f"index {ci} is outside {ref.name}'s {ref.const_bound} "
                               "elements", "use an index inside the array")
            return [*ref.base, f"i32.const {i * ref.stride}", "i32.add"], ref
        code, t = self.expr(node.slice)
        code = self.conv(code, t, INT, node.slice)
        if (isinstance(node.slice, ast.Name) and isinstance(node.value, ast.Name)
                and self.in_range.get(node.slice.id) == node.value.id):
            return [*ref.base, *code, "i32.wrap_i64", f"i32.const {ref.stride}", "i32.mul",
                    "i32.add"], ref
        return [*code, "local.tee $ix", "i64.const 0", "i64.lt_s", "if",
                "local.get $ix", *ref.bound, "i64.add", "local.set $ix", "end",
                "local.get $ix", *ref.bound, "i64.ge_u", "if", "unreachable", "end",
                *ref.base, "local.get $ix", "i32.wrap_i64", f"i32.const {ref.stride}",
                "i32.mul", "i32.add"], ref

    def load_scalar(self, addr: list[str], kind: str, off: int) -> tuple[list[str], str]:
        o = f" offset={off}" if off else ""
        if kind == "u8":
            return [*addr, f"i32.load8_u{o}"], U32
        if kind == "u32":
            return [*addr, f"i32.load{o}"], U32
        if kind == "i32":
            return [*addr, f"i64.load32_s{o}"], INT
        if kind == "i64":
            return [*addr, f"i64.load{o}"], INT
        if kind == "u64":  # above 2**63 it is no i64: stop rather than go negative
            return [*addr, f"i64.load{o}", "local.tee $c", "i64.const 0", "i64.lt_s", "if",
                    "unreachable", "end", "local.get $c"], INT
        raise AssertionError(kind)

    def store(self, ref: ArrayRef, code: list[str], t: str, node: ast.AST) -> list[str]:
        """Store the value (code of type t) at the address already on the stack."""
        if ref.elem == "i64":
            return [*self.conv(code, t, INT, node), "i64.store"]
        if ref.elem == "u32":
            return [*self.conv(code, t, U32, node), "i32.store"]
        if ref.elem == "u8":
            return [*self.conv(code, t, U32, node), *self._u8_check(), "i32.store8"]
        raise self.err(node, f"{ref.name} is read-only", "write to out/data or your own arrays")

    def _u8_check(self) -> list[str]:
        tmp = self.new_local("i32")
        return [f"local.tee {tmp}", f"local.get {tmp}", "i32.const 255", "i32.gt_u", "if",
                "unreachable", "end"]

    def conv(self, code: list[str], t: str, want: str, node: ast.AST) -> list[str]:
        if t == want:
            return code
        if want == INT and t in (U32, BOOL):
            return [*code, "i64.extend_i32_u"]
        if want == U32 and t == BOOL:
            return code
        if want == U32 and t == INT:
            if len(code) == 1 and code[0].startswith("i64.const "):
                v = int(code[0].split()[1])
                if 0 <= v <= M32:
                    return [f"i32.const {v if v < 1 << 31 else v - (1 << 32)}"]
            return [*code, "local.tee $c", f"i64.const {M32}", "i64.gt_u", "if", "unreachable",
                    "end", "local.get $c", "i32.wrap_i64"]
        if want == BOOL:
            raise self.err(node, f"a {t} where a bool is needed", "compare it: x != 0")
        if t == NONE:
            raise self.err(node, "a call that returns nothing used as a value",
                           "call it as a statement")
        raise self.err(node, f"a {t} where a {want} is needed", "convert it explicitly")

    def binop(self, node: ast.BinOp) -> tuple[list[str], str]:
        op = node.op
        if isinstance(op, ast.Div):
            raise self.err(node, "`/` (true division makes floats)", "use // for integers")
        if isinstance(op, ast.Pow):
            raise self.err(node, "`**`", "multiply explicitly, or use a constant")
        if isinstance(op, ast.MatMult):
            raise self.err(node, "`@`", "there is no matrix type")
        a, ta = self.expr(node.left)
        b, tb = self.expr(node.right)
        for t, n in ((ta, node.left), (tb, node.right)):
            if t == NONE:
                raise self.err(n, "a call that returns nothing used as a value",
                               "call it as a statement")
        bits = {ast.BitAnd: "and", ast.BitOr: "or", ast.BitXor: "xor"}.get(type(op))
        if bits is not None:
            if ta == tb and ta in (U32, BOOL):
                return [*a, *b, f"i32.{bits}"], ta
            ua, ub = self._as_u32_const(a, ta), self._as_u32_const(b, tb)
            if ua is not None and ub is not None:
                return [*ua, *ub, f"i32.{bits}"], U32
            return [*self.conv(a, ta, INT, node.left), *self.conv(b, tb, INT, node.right),
                    f"i64.{bits}"], INT
        if isinstance(op, ast.RShift) and ta == U32:
            sc = self.mod.try_const(node.right)
            if sc is not None and 0 <= sc < 32:
                return [*a, f"i32.const {sc}", "i32.shr_u"], U32
        a, b = self.conv(a, ta, INT, node.left), self.conv(b, tb, INT, node.right)
        fast = self._const_operand(op, a, b)
        if fast is not None:
            return fast, INT
        pre = [*a, *b, "local.set $b", "local.set $a"]
        trap = ["if", "unreachable", "end"]
        if isinstance(op, ast.Add):
            return [*pre, "local.get $a", "local.get $b", "i64.add", "local.set $r",
                    "local.get $a", "local.get $r", "i64.xor", "local.get $b", "local.get $r",
                    "i64.xor", "i64.and", "i64.const 0", "i64.lt_s", *trap, "local.get $r"], INT
        if isinstance(op, ast.Sub):
            return [*pre, "local.get $a", "local.get $b", "i64.sub", "local.set $r",
                    "local.get $a", "local.get $b", "i64.xor", "local.get $a", "local.get $r",
                    "i64.xor", "i64.and", "i64.const 0", "i64.lt_s", *trap, "local.get $r"], INT
        if isinstance(op, ast.Mult):
            return [*pre, "local.get $a", "local.get $b", "i64.mul", "local.set $r",
                    "local.get $a", "i64.eqz", "i32.eqz", "if",
                    "local.get $r", "local.get $a", "i64.div_s", "local.get $b", "i64.ne",
                    *trap, "end", "local.get $r"], INT
        if isinstance(op, ast.FloorDiv):  # div_s traps on 0 and on MIN // -1, as it should
            return [*pre, "local.get $a", "local.get $b", "i64.div_s", "local.set $r",
                    "local.get $a", "local.get $b", "i64.rem_s", "local.tee $ix",
                    "i64.const 0", "i64.ne", "local.get $ix", "local.get $b", "i64.xor",
                    "i64.const 0", "i64.lt_s", "i32.and", "if", "local.get $r", "i64.const 1",
                    "i64.sub", "local.set $r", "end", "local.get $r"], INT
        if isinstance(op, ast.Mod):
            return [*pre, "local.get $a", "local.get $b", "i64.rem_s", "local.tee $r",
                    "i64.const 0", "i64.ne", "local.get $r", "local.get $b", "i64.xor",
                    "i64.const 0", "i64.lt_s", "i32.and", "if", "local.get $r", "local.get $b",
                    "i64.add", "local.set $r", "end", "local.get $r"], INT
        if isinstance(op, ast.LShift):
            return [*pre, "local.get $b", "i64.const 0", "i64.lt_s", *trap,
                    "local.get $a", "i64.eqz", "if (result i64)", "i64.const 0", "else",
                    "local.get $b", "i64.const 63", "i64.gt_s", *trap,
                    "local.get $a", "local.get $b", "i64.shl", "local.tee $r", "local.get $b",
                    "i64.shr_s", "local.get $a", "i64.ne", *trap, "local.get $r", "end"], INT
        if isinstance(op, ast.RShift):
            return [*pre, "local.get $b", "i64.const 0", "i64.lt_s", *trap, "local.get $a",
                    "local.get $b", "i64.const 63", "local.get $b", "i64.const 63", "i64.lt_s",
                    "select", "i64.shr_s"], INT
        raise self.err(node, f"the operator {type(op).__name__}", "use + - * // % << >> & | ^")

    def _const_operand(self, op: ast.operator, a: list[str], b: list[str]) -> list[str] | None:
        """``x + c``, ``x - c``, ``x * c``, ``c * x``: the overflow test is one comparison."""
        def const(code: list[str]) -> int | None:
            if len(code) == 1 and code[0].startswith("i64.const "):
                return int(code[0].split()[1])
            return None

        ca, cb = const(a), const(b)
        if isinstance(op, ast.Mult) and ca is not None and cb is None:
            a, b, ca, cb = b, a, cb, ca
        if cb is None or ca is not None:
            return None
        trap = ["if", "unreachable", "end"]
        if isinstance(op, ast.Sub) and cb != I64_MIN:
            op, cb = ast.Add(), -cb
            b = [f"i64.const {cb}"]
        if isinstance(op, ast.Add):
            if cb >= 0:  # x + c leaves i64 iff x > MAX - c
                test = [f"i64.const {I64_MAX - cb}", "i64.gt_s"]
            else:
                test = [f"i64.const {I64_MIN - cb}", "i64.lt_s"]
            return [*a, "local.tee $a", *test, *trap, "local.get $a", *b, "i64.add"]
        if isinstance(op, ast.Mult) and cb > 0:
            return [*a, "local.tee $a", f"i64.const {I64_MAX // cb}", "i64.gt_s",
                    "local.get $a", f"i64.const {-(I64_MIN // -cb)}", "i64.lt_s", "i32.or",
                    *trap, "local.get $a", *b, "i64.mul"]
        return None

    def _as_u32_const(self, code: list[str], t: str) -> list[str] | None:
        if t == U32:
            return code
        if t == INT and len(code) == 1 and code[0].startswith("i64.const "):
            v = int(code[0].split()[1])
            if 0 <= v <= M32:
                return [f"i32.const {v if v < 1 << 31 else v - (1 << 32)}"]
        return None

    def unary(self, node: ast.UnaryOp) -> tuple[list[str], str]:
        if isinstance(node.op, ast.Not):
            code, _ = self.cond(node.operand)
            return [*code, "i32.eqz"], BOOL
        code, t = self.expr(node.operand)
        code = self.conv(code, t, INT, node.operand)
        if isinstance(node.op, ast.UAdd):
            return code, INT
        if isinstance(node.op, ast.USub):
            return [*code, "local.tee $c", "i64.const " + str(I64_MIN), "i64.eq", "if",
                    "unreachable", "end", "i64.const 0", "local.get $c", "i64.sub"], INT
        return [*code, "i64.const -1", "i64.xor"], INT  # ~x

    def compare(self, node: ast.Compare) -> tuple[list[str], str]:
        ops = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
               ast.NotEq: "ne"}
        for o in node.ops:
            if type(o) not in ops:
                raise self.err(node, f"the comparison {type(o).__name__}",
                               "compare with < <= > >= == !=")
        left, lt = self.expr(node.left)
        parts: list[list[str]] = []
        for i, (o, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            rc, rt = self.expr(right)
            last = i == len(node.ops) - 1
            mid = None
            if not last:  # a chain: the middle operand is evaluated once
                mid = self.new_local(WASM_T[rt])
                rc = [*rc, f"local.tee {mid}"]
            parts.append(self.cmp(left, lt, rc, rt, ops[type(o)], node))
            if mid is not None:
                left, lt = [f"local.get {mid}"], rt
        code = parts[0]
        for p in parts[1:]:
            code = [*code, "if (result i32)", *p, "else", "i32.const 0", "end"]
        return code, BOOL

    def cmp(self, a: list[str], ta: str, b: list[str], tb: str, op: str,
            node: ast.AST) -> list[str]:
        if ta == tb and ta in (U32, BOOL):
            return [*a, *b, f"i32.{op}" if op in ("eq", "ne") else f"i32.{op}_u"]
        ua, ub = self._as_u32_const(a, ta), self._as_u32_const(b, tb)
        if ua is not None and ub is not None and (ta == U32 or tb == U32):
            return [*ua, *ub, f"i32.{op}" if op in ("eq", "ne") else f"i32.{op}_u"]
        a, b = self.conv(a, ta, INT, node), self.conv(b, tb, INT, node)
        return [*a, *b, f"i64.{op}" if op in ("eq", "ne") else f"i64.{op}_s"]

    # ---- calls ------------------------------------------------------------------------------
    def call(self, node: ast.Call, statement: bool) -> tuple[list[str], str]:
        if not isinstance(node.func, ast.Name):
            raise self.err(node, f"calling {ast.unparse(node.func)}",
                           "call helpers, builtins and graft-callables by name")
        if node.keywords:
            raise self.err(node, "keyword arguments", "pass arguments by position")
        f = node.func.id
        args = node.args
        mod = self.mod
        if f in mod.sigs:
            return self.call_helper(mod.sigs[f], node)
        if f in (mod.entry, mod.message):
            raise self.err(node, f"calling {f}", "move the shared code into a helper")
        if f in ("min", "max"):
            if len(args) < 2:
                raise self.err(node, f"{f} of fewer than two values", f"write {f}(a, b, ...)")
            code, t = self.expr(args[0])
            for a in args[1:]:
                bc, bt = self.expr(a)
                w = t if t == bt and t == U32 else INT
                ops = ("i32", "_u") if w == U32 else ("i64", "_s")
                cmp = f"{ops[0]}.{'lt' if f == 'min' else 'gt'}{ops[1]}"
                tmpt = WASM_T[w]
                ta, tb = self.new_local(tmpt), self.new_local(tmpt)
                code = [*self.conv(code, t, w, a), f"local.set {ta}", *self.conv(bc, bt, w, a),
                        f"local.set {tb}", f"local.get {tb}", f"local.get {ta}",
                        f"local.get {tb}", f"local.get {ta}", cmp, "select"]
                t = w
            return code, t
        if f == "abs":
            self._nargs(node, 1)
            code, t = self.expr(args[0])
            if t == U32:
                return code, U32
            return [*self.conv(code, t, INT, args[0]), "local.tee $c", f"i64.const {I64_MIN}",
                    "i64.eq", "if", "unreachable", "end", "i64.const 0", "local.get $c",
                    "i64.sub", "local.get $c", "local.get $c", "i64.const 0", "i64.lt_s",
                    "select"], INT
        if f == "len":
            self._nargs(node, 1)
            return list(self.array(args[0]).bound), INT
        if f == "int":
            self._nargs(node, 1)
            code, t = self.expr(args[0])
            return self.conv(code, t, INT, args[0]), INT
        if f == "range":
            raise self.err(node, "range() outside a for loop", "use it as `for i in range(n)`")
        if f in HELPERS:
            return self.call_builtin_helper(f, node)
        callables = mod.layout.callables
        if f in COMMON_CALLABLES or f in callables:
            if f not in mod.imported:
                raise self.err(node, f"{f}() is not imported",
                               f"add `from vino.pygraft import {f}`")
            return self.call_callable(f, node)
        raise self.err(node, f"unknown function {f!r}",
                       "call a helper defined in this file, a builtin (min, max, abs, len) or "
                       "a graft-callable imported from vino.pygraft")

    def _nargs(self, node: ast.Call, n: int) -> None:
        if len(node.args) != n:
            name = ast.unparse(node.func)
            raise self.err(node, f"{name} takes {n} argument{'s' if n != 1 else ''}",
                           f"call {name} with {n}")

    def call_helper(self, sig: Sig, node: ast.Call) -> tuple[list[str], str]:
        self._nargs(node, len(sig.params))
        code: list[str] = []
        for (pname, t), a in zip(sig.params, node.args, strict=True):
            if t.startswith("list:"):
                ref = self.array(a)
                if ref.row is not None or ref.elem != t[5:]:
                    have = _ELEM_NAME.get(ref.elem, "row")
                    raise self.err(a, f"{ref.name} holds {have} elements; {sig.name}'s "
                                   f"{pname} takes {_ELEM_NAME[t[5:]]}",
                                   f"annotate {pname} as list[{have}]" if ref.row is None
                                   else "pass the fields you need instead of the rows")
                if pname in sig.writes and not ref.writable:
                    raise self.err(a, f"{sig.name} writes to {pname}, and {ref.name} is "
                                   "read-only", "copy it into a local array first")
                code += [*ref.base, *ref.bound]
            else:
                c, at = self.expr(a)
                code += self.conv(c, at, t, a)
        return [*code, f"call $f_{sig.name}"], sig.ret

    def call_builtin_helper(self, f: str, node: ast.Call) -> tuple[list[str], str]:
        args = node.args
        if f in self.mod.sigs or f not in self.mod.imported:
            raise self.err(node, f"{f}() is not imported", f"add `from vino.pygraft import {f}`")
        if f in ("le32", "set_le32"):
            self._nargs(node, 2 if f == "le32" else 3)
            ref = self.array(args[0])
            if ref.elem != "u8":
                raise self.err(args[0], f"{f} on {ref.name}, which is not bytes",
                               "use it on data or a message")
            ic, it = self.expr(args[1])
            addr = [*self.conv(ic, it, INT, args[1]), "local.tee $ix", "i64.const 0",
                    "i64.lt_s", "local.get $ix", "i64.const 4", "i64.add", *ref.bound,
                    "i64.gt_s", "i32.or", "if", "unreachable", "end", *ref.base,
                    "local.get $ix", "i32.wrap_i64", "i32.add"]
            if f == "le32":
                return [*addr, "i32.load"], U32
            if not ref.writable:
                raise self.err(args[0], f"{ref.name} is read-only", "write to data")
            vc, vt = self.expr(args[2])
            return [*addr, *self.conv(vc, vt, U32, args[2]), "i32.store"], NONE
        if f == "to_u32":
            self._nargs(node, 1)
            c, t = self.expr(args[0])
            if t in (U32, BOOL):
                return c, U32
            return [*c, "i32.wrap_i64"], U32
        self._nargs(node, 2)
        (ac, at), (bc, bt) = self.expr(args[0]), self.expr(args[1])
        if f in ("rotl32", "rotr32"):
            a32 = ac if at in (U32, BOOL) else [*ac, "i32.wrap_i64"]
            b32 = bc if bt in (U32, BOOL) else [*bc, "i32.wrap_i64"]
            return [*a32, *b32, "i32.rotl" if f == "rotl32" else "i32.rotr"], U32
        op = {"u32_add": "add", "u32_sub": "sub", "u32_mul": "mul"}[f]
        # Low 32 bits of the exact result = the 32-bit operation on the low 32 bits.
        a32 = ac if at in (U32, BOOL) else [*ac, "i32.wrap_i64"]
        b32 = bc if bt in (U32, BOOL) else [*bc, "i32.wrap_i64"]
        return [*a32, *b32, f"i32.{op}"], U32

    def call_callable(self, f: str, node: ast.Call) -> tuple[list[str], str]:
        args = node.args
        if f == "log":
            self._nargs(node, 1)
            a = args[0]
            if not (isinstance(a, ast.Constant) and isinstance(a.value, str)):
                raise self.err(a, "log() of something other than a string literal",
                               'write log("what happened")')
            at, n = self.mod.string(a.value)
            return [f"i32.const {at}", f"i32.const {n}", "call $i_log"], NONE
        if f == "now":
            self._nargs(node, 0)
            return ["call $i_now"], INT
        if f == "default":
            if self.mod.layout.kind != "function":
                raise self.err(node, "default() at an event point", "event points have none")
            self._nargs(node, 0)
            return ["call $i_default", "i64.extend_i32_s"], INT
        params, results = self.mod.layout.callables.get(f) or _COMMON_SIGS[f]
        self._nargs(node, len(params))
        code: list[str] = []
        for a in args:
            c, t = self.expr(a)
            code += [*self.conv(c, t, INT, a), "local.tee $c", "local.get $c", "i32.wrap_i64",
                     "i64.extend_i32_s", "i64.ne", "if", "unreachable", "end", "local.get $c",
                     "i32.wrap_i64"]
        code.append(f"call $i_{f}")
        if results:
            return [*code, "i64.extend_i32_s"], INT
        return code, NONE


_COMMON_SIGS: Final = {"lock": (("i32",), ("i32",)), "kalloc": (("i32",), ("i32",)),
                       "kfree": (("i32",), ())}
_IMPORT_SIGS: Final = {"now": "(result i64)", "log": "(param i32 i32)",
                       "lock": "(param i32) (result i32)", "kalloc": "(param i32) (result i32)",
                       "kfree": "(param i32)", "default": "(result i32)"}


def _kind(f: Field) -> str:
    assert not isinstance(f.elem, Struct)
    return f.elem.name


def _is_array_value(value: ast.expr) -> bool:
    return isinstance(value, ast.List) or (
        isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
        and isinstance(value.left, ast.List))


def _always_exits(body: list[ast.stmt]) -> bool:
    """The block never falls through (it returns, breaks or continues on every path)."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return | ast.Break | ast.Continue):
        return True
    if isinstance(last, ast.If):
        return _always_exits(last.body) and _always_exits(last.orelse)
    return False


def _always_returns(body: list[ast.stmt]) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return _always_returns(last.body) and _always_returns(last.orelse)
    if isinstance(last, ast.While):
        t = last.test
        forever = isinstance(t, ast.Constant) and t.value is True
        return forever and not any(isinstance(n, ast.Break) for n in _own_breaks(last.body))
    return False


def _own_breaks(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for s in body:
        if isinstance(s, ast.Break):
            yield s
        elif isinstance(s, ast.If):
            yield from _own_breaks(s.body)
            yield from _own_breaks(s.orelse)


# ---- the module -----------------------------------------------------------------------------

def _data(at: int, data: bytes) -> str:
    esc = "".join(f"\\{b:02x}" for b in data)
    return f'(data (i32.const {at}) "{esc}")'


def _emit(mod: _Module) -> str:
    lay = mod.layout
    funcs: list[str] = []
    needs_grow = False
    for name, fn in mod.funcs.items():
        role = "entry" if name == mod.entry else "message" if name == mod.message else "helper"
        f = _Func(mod, fn, role)
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
            sig = _IMPORT_SIGS[name]
        lines.append(f'  (import "vino" "{name}" (func $i_{name} {sig}))')
    stack_base = _align(mod.strings_at + len(mod.string_data), 16)
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
            vals = [init[0]] * init.n if isinstance(init, _Repeat) else init
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


def _locate(exc: _Fail, filename: str, line_offset: int) -> PythonGraftError:
    node = exc.node
    line = getattr(node, "lineno", 1) + line_offset
    col = getattr(node, "col_offset", 0) + 1
    return PythonGraftError(filename, line, col, exc.problem, exc.instead)


def compile_source(source: str, layout: Layout, *, filename: str = "<graft>",
                   name: str | None = None, entry: str | None = None,
                   line_offset: int = 0) -> Compiled:
    """Compile a graft's Python source for ``layout``'s point (``PythonGraftError`` if not)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise PythonGraftError(filename, (exc.lineno or 1) + line_offset, exc.offset or 1,
                               f"not valid Python: {exc.msg}", "fix the syntax") from None
    try:
        mod = _Module(tree, layout, filename, entry)
        wat = _emit(mod)
    except _Fail as exc:
        raise _locate(exc, filename, line_offset) from None
    except RecursionError:
        raise PythonGraftError(filename, 1 + line_offset, 1, "an expression nested too deeply",
                               "split it into several statements") from None
    try:
        wasm = bytes(wasmtime.wat2wasm(wat))
    except wasmtime.WasmtimeError as exc:  # a compiler bug: never the author's fault
        raise AssertionError(f"vino.pygraft emitted invalid WAT: {exc}\n{wat}") from exc
    stem = name or filename.rsplit("/", 1)[-1].removesuffix(".py")
    return Compiled(stem, layout.point, wasm, wat, mod.message is not None)


def compile_function(fn: Callable[..., Any], layout: Layout) -> Compiled:
    """Compile ``fn`` (defined at a module's top level) and what it uses from its module.

    Only the function, the helpers it calls, the constants and state they name and
    the ``vino.pygraft`` imports are taken from the module; a message handler is
    not (compile a whole file for that).
    """
    try:
        path = inspect.getsourcefile(fn) or "<graft>"
        lines, _ = inspect.findsource(fn)
    except (OSError, TypeError) as exc:
        raise PythonGraftError(getattr(fn, "__qualname__", "?"), 1, 1,
                               f"the source of {fn!r} is not available ({exc})",
                               "define the graft in a .py file") from None
    text = "".join(lines)
    tree = ast.parse(text, filename=path)
    top = {_name_of(n): n for n in tree.body if _name_of(n)}
    if fn.__name__ not in top or not isinstance(top[fn.__name__], ast.FunctionDef):
        node = getattr(fn, "__code__", None)
        raise PythonGraftError(path, node.co_firstlineno if node else 1, 1,
                               f"{fn.__qualname__} is not defined at module level",
                               "define grafts (and their helpers) at a module's top level")
    keep: dict[str, ast.stmt] = {}
    todo = [fn.__name__]
    while todo:
        n = todo.pop()
        if n in keep or n not in top:
            continue
        keep[n] = top[n]
        todo += [x.id for x in ast.walk(top[n]) if isinstance(x, ast.Name)]
        todo += [g for x in ast.walk(top[n]) if isinstance(x, ast.Global) for g in x.names]
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)
               and n.module in ("vino.pygraft", "vino.pygraft.shim")]
    body = [*imports, *sorted(keep.values(), key=lambda s: s.lineno)]
    try:
        return _compile_nodes(body, layout, path, fn.__name__)
    except _Fail as exc:
        raise _locate(exc, path, 0) from None


def _compile_nodes(body: list[ast.stmt], layout: Layout, path: str, entry: str) -> Compiled:
    mod = _Module(ast.Module(body=body, type_ignores=[]), layout, path, entry)
    wat = _emit(mod)
    wasm = bytes(wasmtime.wat2wasm(wat))
    return Compiled(entry, layout.point, wasm, wat, mod.message is not None)


def _name_of(n: ast.stmt) -> str | None:
    if isinstance(n, ast.FunctionDef):
        return n.name
    if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
        return n.targets[0].id
    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
        return n.target.id
    return None


def point_of(source: str, layouts: dict[str, Layout]) -> Layout | None:
    """The layout a graft's source is written for: its ``POINT``, else its entry's name."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "POINT"
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return layouts.get(node.value.value)
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
    found = [lay for lay in layouts.values()
             if lay.entry in names or lay.entry.removeprefix("vino_") in names]
    return found[0] if len(found) == 1 else None
