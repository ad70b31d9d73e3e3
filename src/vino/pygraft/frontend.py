"""The front end: a graft's module read and checked before any code is generated.

    mod = SourceModule(ast.parse(text), layout, "evict.py", entry_name=None)
    mod.entry, mod.sigs, mod.consts, mod.state   # what the code generator works from

``SourceModule`` walks the module level once: it accepts a docstring, imports from
``vino.pygraft`` (only names that exist for the point), ``POINT``, integer constants
(folded here, ``try_const``; none wider than ``CONST_BITS``), typed state and functions;
it finds the entry named for the point and the optional message handler, reads every
helper's ``Sig`` and plans
linear memory: ``[0, 16)`` unused, the point's buffer at ``BUFFER_AT``, state arrays,
``log`` strings, then the stack. The flow questions the code generator asks of a
function body (which names it assigns, whether a block always exits or returns) are
answered here too, from the syntax alone.

Invariant: the static part of memory (buffer, state arrays, strings) never exceeds
``MAX_STATIC_BYTES``, and initialised state arrays never ``MAX_DATA_BYTES``, both checked
before any data segment is built, so the loader's memory and module-size limits hold
for every module this compiler emits.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from vino.graft.layout import Layout
from vino.pygraft.values import (
    BOOL,
    BUFFER_AT,
    COMMON_CALLABLES,
    CONST_BITS,
    ELEM_SIZE,
    HELPERS,
    INT,
    MAX_DATA_BYTES,
    MAX_STATIC_BYTES,
    TYPE_NAMES,
    U32,
    Refused,
    Sig,
    align,
    ann_type,
    check_fits,
    what,
)


@dataclass(slots=True)
class State:
    """One name of module state: its type, initial value and (arrays) place in memory."""

    name: str
    type: str  # INT/U32/BOOL or "list:i64"/"list:u32"
    init: int | list[int]
    count: int = 0
    at: int = 0  # arrays: offset in linear memory


class SourceModule:
    """A graft's module level, checked: constants, state, functions, memory plan."""

    def __init__(self, tree: ast.Module, layout: Layout, filename: str,
                 entry_name: str | None) -> None:
        self.layout = layout
        self.filename = filename
        self.consts: dict[str, int] = {}
        self.state: dict[str, State] = {}
        self.funcs: dict[str, ast.FunctionDef] = {}
        self.imported: set[str] = set()
        self.strings: dict[bytes, int] = {}
        self.data_bytes = 0  # bytes of initialised state arrays (data segments), so far
        self.string_data = bytearray()
        self.point_name = self._read(tree)
        if self.point_name is not None and self.point_name != layout.point:
            raise Refused(None, f"POINT says {self.point_name!r} but the graft is compiled for "
                          f"{layout.point!r}", "compile it for the point it names")
        short = layout.entry.removeprefix("vino_")
        names = [entry_name] if entry_name else [short, layout.entry]
        found = [n for n in names if n in self.funcs]
        if not found:
            raise Refused(None, f"no entry function for {layout.point}",
                          f"define `def {short}(...) -> int` whose parameters are the "
                          f"point's fields ({', '.join(field_names(layout))})")
        self.entry = found[0]
        self.message = next((n for n in ("message", "vino_message") if n in self.funcs), None)
        self.sigs: dict[str, Sig] = {}
        for name, fn in self.funcs.items():
            if name not in (self.entry, self.message):
                self.sigs[name] = _signature(fn)
        # Linear memory: [0, 16) unused, the buffer, state arrays, strings, the stack.
        at = align(BUFFER_AT + layout.buffer_size, 8)
        for st in self.state.values():
            if st.type.startswith("list:"):
                st.at = at
                at += align(st.count * ELEM_SIZE[st.type[5:]], 8)
                if at > MAX_STATIC_BYTES:  # checked before any segment is built
                    raise Refused(tree.body[0] if tree.body else None,
                                  f"module state of more than {MAX_STATIC_BYTES} bytes",
                                  "keep module state smaller")
        self.strings_at = at

    def _read(self, tree: ast.Module) -> str | None:
        """Reads the module level into this object; returns the point ``POINT`` names."""
        _check_names(tree)
        point: str | None = None
        for i, node in enumerate(tree.body):
            if i == 0 and is_docstring(node):
                continue
            if isinstance(node, ast.ImportFrom):
                if node.module == "__future__":
                    continue
                if node.module not in ("vino.pygraft", "vino.pygraft.shim"):
                    raise Refused(node, f"import from {node.module!r}",
                                  "import only from vino.pygraft (helpers and graft-callables)")
                for a in node.names:
                    known = HELPERS | COMMON_CALLABLES | TYPE_NAMES | set(self.layout.callables)
                    if a.name not in known or a.asname not in (None, a.name):
                        raise Refused(node, f"vino.pygraft has nothing named {a.name!r} for "
                                      f"{self.layout.point}", "use one of: " +
                                      ", ".join(sorted(known)))
                    self.imported.add(a.name)
            elif isinstance(node, ast.FunctionDef):
                if node.decorator_list:  # plain Python would run the decorator's result
                    raise Refused(node.decorator_list[0], "a decorator (plain Python would "
                                  "call what it returns, not this function)",
                                  "call a helper from the function instead")
                if node.name in self.funcs:
                    raise Refused(node, f"function {node.name} defined twice", "rename one")
                self.funcs[node.name] = node
            elif isinstance(node, ast.Assign):
                if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                    raise Refused(node, "a module-level assignment to more than one name",
                                  "write `NAME = value` for a constant")
                name = node.targets[0].id
                if name == "POINT":
                    point = point_name(node)
                    if point is None:
                        raise Refused(node, "POINT is not a string", 'write POINT = "vm.evict"')
                    continue
                self.consts[name] = self.const(node.value)
            elif isinstance(node, ast.AnnAssign):
                self._state(node)
            elif isinstance(node, ast.Import):
                raise Refused(node, "a plain import", "write `from vino.pygraft import ...`")
            else:
                raise Refused(node, f"{what(node)} at module level",
                              "keep only imports, constants, typed state and functions there")
        return point

    def _state(self, node: ast.AnnAssign) -> None:
        if not isinstance(node.target, ast.Name) or node.value is None:
            raise Refused(node, "module state without a name and an initial value",
                          "write `name: int = 0`")
        name = node.target.id
        t = ann_type(node.annotation, allow_list=True)
        if t.startswith("list:"):
            if t == "list:u8":
                raise Refused(node, "byte arrays as state", "use list[u32]")
            count, init = self.array_init(node.value)
            if count * ELEM_SIZE[t[5:]] > MAX_STATIC_BYTES:
                raise Refused(node, f"array {name} of {count} elements is too large",
                              f"keep module state under {MAX_STATIC_BYTES} bytes")
            if any(init):  # emitted as a data segment (all zeros: none)
                self.data_bytes += count * ELEM_SIZE[t[5:]]
                if self.data_bytes > MAX_DATA_BYTES:
                    raise Refused(node, f"{self.data_bytes} bytes of initialised state; a "
                                  f"module holds at most {MAX_DATA_BYTES}",
                                  "initialise large arrays to 0 and fill them in code")
            for v in init:
                check_fits(node, v, t[5:])
            self.state[name] = State(name, t, init, count)
        else:
            v = self.const(node.value)
            check_fits(node, v, {INT: "i64", U32: "u32", BOOL: "bool"}[t])
            self.state[name] = State(name, t, v)

    def array_init(self, value: ast.expr) -> tuple[int, list[int]]:
        if isinstance(value, ast.List):
            return len(value.elts), [self.const(e) for e in value.elts]
        if (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
                and isinstance(value.left, ast.List) and len(value.left.elts) == 1):
            n = self.const(value.right)
            if n <= 0:
                raise Refused(value, f"an array of {n} elements", "give it a positive length")
            return n, [self.const(value.left.elts[0])] * n if n <= 4096 else Repeat(
                self.const(value.left.elts[0]), n)
        raise Refused(value, "an array initialised by something else",
                      "write `[0] * N` or `[c0, c1, ...]` with constants")

    def const(self, node: ast.expr) -> int:
        v = self.try_const(node)
        if v is None:
            raise Refused(node, "not a constant expression",
                          "use int literals, True/False and other constants here")
        return v

    def try_const(self, node: ast.expr) -> int | None:
        """``node``'s value if it is a constant expression (None if not). Raises ``Refused``
        for a value wider than ``CONST_BITS``: each one folded is checked, so no step
        multiplies more than two such values (Python's integers have no bound)."""
        v = self._fold(node)
        if v is not None and v.bit_length() > CONST_BITS:
            raise Refused(node, f"a constant wider than {CONST_BITS} bits "
                          f"({v.bit_length()} bits)", "keep constants within an int's 64 bits")
        return v

    def _fold(self, node: ast.expr) -> int | None:
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


class Repeat(list[int]):
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


def _check_names(tree: ast.Module) -> None:
    """Refuse a name that is not ASCII (Python allows it): names become WebAssembly
    identifiers in the module's text, which take ASCII only."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names = list(node.names)
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.keyword) and node.arg is not None:
            names = [node.arg]
        elif isinstance(node, ast.alias):
            names = [node.name, node.asname or ""]
        for name in names:
            if not name.isascii():
                raise Refused(node, f"a name that is not ASCII ({name!r})",
                              "use ASCII letters, digits and _ in names")

def is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))

def _signature(fn: ast.FunctionDef) -> Sig:
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise Refused(fn, f"{fn.name}: *args, **kwargs, keyword-only or default arguments",
                      "use plain positional parameters")
    params = [(p.arg, ann_type(p.annotation, allow_list=True)) for p in a.args]
    ret = ann_type(fn.returns, allow_none=True)
    writes = {p for p, t in params if t.startswith("list:") and _stores_into(fn, p)}
    return Sig(fn.name, params, ret, fn, writes)


def point_name(node: ast.stmt) -> str | None:
    """The point a module-level ``POINT = "name"`` names (None for any other statement)."""
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "POINT"
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
        return node.value.value
    return None


def targets_of(node: ast.AST) -> list[ast.expr]:
    """What ``node`` assigns to: the targets of an assignment or a ``for`` (else none)."""
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For):
        return [node.target]
    return []


def _stores_into(fn: ast.FunctionDef, name: str) -> bool:
    for node in ast.walk(fn):
        # A for target that is no name is refused when the body compiles.
        targets = [] if isinstance(node, ast.For) else targets_of(node)
        for t in targets:
            if (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                    and t.value.id == name):
                return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "set_le32" and node.args
                and isinstance(node.args[0], ast.Name) and node.args[0].id == name):
            return True
    return False


def field_names(layout: Layout) -> list[str]:
    return [a.name for a in layout.args] + [f.name for f in layout.fields.fields if not f.pad]


def assigned_names(fn: ast.FunctionDef) -> set[str]:
    return {t.id for node in ast.walk(fn) for t in targets_of(node) if isinstance(t, ast.Name)}

def is_array_value(value: ast.expr) -> bool:
    return isinstance(value, ast.List) or (
        isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
        and isinstance(value.left, ast.List))


def always_exits(body: list[ast.stmt]) -> bool:
    """The block never falls through (it returns, breaks or continues on every path)."""
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return | ast.Break | ast.Continue):
        return True
    if isinstance(last, ast.If):
        return always_exits(last.body) and always_exits(last.orelse)
    return False


def always_returns(body: list[ast.stmt]) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return always_returns(last.body) and always_returns(last.orelse)
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

