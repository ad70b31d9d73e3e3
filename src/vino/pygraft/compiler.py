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
  constants ``NAME = <int expression>`` (folded; no value wider than
  ``PYGRAFT_CONST_BITS``); state ``name: int|u32|bool = <const>`` and
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

The compiler, in the order a source passes through it:
``frontend`` (the module level read and checked, constants folded, memory planned),
``function`` on ``statements`` on ``calls`` on ``expressions`` on ``scope`` (one
function's code, a layer a module), ``emit`` (the module's text); ``values`` holds the
vocabulary they share. This module is the entry: it parses, runs them, locates any
refusal in the author's file and assembles the binary.

Invariant: a local is read only where it is definitely assigned (checked in
``statements``), so no read can see a value plain Python would not have.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime

from vino.errors import PythonGraftError
from vino.graft.layout import Layout
from vino.pygraft.emit import emit_module
from vino.pygraft.frontend import SourceModule, point_name
from vino.pygraft.values import BUFFER_AT, I64_MAX, I64_MIN, Refused

__all__ = ["BUFFER_AT", "I64_MAX", "I64_MIN", "Compiled", "compile_function", "compile_source",
           "parse", "point_of"]


@dataclass(slots=True, frozen=True)
class Compiled:
    """A compiled Python graft: its binary, its text, and what it exports."""

    name: str
    point: str
    wasm: bytes
    wat: str
    has_message: bool


def _locate(exc: Refused, filename: str, line_offset: int) -> PythonGraftError:
    node = exc.node
    line = getattr(node, "lineno", 1) + line_offset
    col = getattr(node, "col_offset", 0) + 1
    return PythonGraftError(filename, line, col, exc.problem, exc.instead)


def parse(source: str, filename: str = "<graft>", line_offset: int = 0) -> ast.Module:
    """``source``'s syntax tree, or ``PythonGraftError`` saying in words why it has none:
    not Python, nested past the parser's depth (``RecursionError`` or ``MemoryError``, no
    ``SyntaxError``) or holding a lone surrogate, which no UTF-8 can (``UnicodeEncodeError``)."""
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise PythonGraftError(filename, (exc.lineno or 1) + line_offset, exc.offset or 1,
                               f"not valid Python: {exc.msg}", "fix the syntax") from None
    except (RecursionError, MemoryError):  # the parser's depth limits, not SyntaxErrors:
        # past its own stack (6,000 elifs, 156 KB) CPython's parser raises MemoryError
        raise PythonGraftError(filename, 1 + line_offset, 1, "an expression nested too deeply "
                               "for Python's parser", "split it into several statements"
                               ) from None
    except UnicodeEncodeError as exc:  # a lone surrogate: a str no UTF-8 can hold
        line = source.count("\n", 0, exc.start) + 1
        col = exc.start - (source.rfind("\n", 0, exc.start) + 1) + 1
        raise PythonGraftError(filename, line + line_offset, col, "a character that is not "
                               "valid Unicode (a lone surrogate)", "write the source as UTF-8 "
                               "text") from None


def compile_source(source: str, layout: Layout, *, filename: str = "<graft>",
                   name: str | None = None, entry: str | None = None,
                   line_offset: int = 0) -> Compiled:
    """Compile a graft's Python source for ``layout``'s point (``PythonGraftError`` if not)."""
    tree = parse(source, filename, line_offset)
    try:
        mod = SourceModule(tree, layout, filename, entry)
        wat = emit_module(mod)
    except Refused as exc:
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
    except Refused as exc:
        raise _locate(exc, path, 0) from None


def _compile_nodes(body: list[ast.stmt], layout: Layout, path: str, entry: str) -> Compiled:
    mod = SourceModule(ast.Module(body=body, type_ignores=[]), layout, path, entry)
    wat = emit_module(mod)
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


def point_of(source: str, layouts: dict[str, Layout], filename: str = "<graft>"
             ) -> Layout | None:
    """The layout a graft's source is written for: its ``POINT``, else its entry's name
    (None: neither says). Raises ``PythonGraftError`` for a source with no syntax tree
    (``parse``)."""
    tree = parse(source, filename)
    names = set()
    for node in tree.body:
        named = point_name(node)
        if named is not None:
            return layouts.get(named)
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
    found = [lay for lay in layouts.values()
             if lay.entry in names or lay.entry.removeprefix("vino_") in names]
    return found[0] if len(found) == 1 else None
