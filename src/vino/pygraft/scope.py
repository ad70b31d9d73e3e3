"""One function being compiled: its names, its Wasm locals, and how values move.

    class Expressions(Scope): ...          # each layer of code generation extends it
    f = FunctionCompiler(mod, fn, "helper")  # (vino.pygraft.function): the whole chain

A ``Scope`` holds what the code generator knows of one Python function while it
compiles the body: the scalar locals and their types, the arrays it can index
(parameters, local arrays in the frame, state), the module state it declared
``global``, the names definitely assigned at this point, the open loops, fresh Wasm
locals and labels, and the size of its frame. The layers built on it, each in its own
module, are ``expressions`` (values), ``calls`` (helpers, builtins, graft-callables),
``statements`` (control flow, assignment) and ``function`` (binding parameters, the
prologue and the finished ``func``); their methods call each other through ``self``.

Here too are the few code shapes every layer uses: ``conv`` (one value type to
another, trapping where Python's value would not fit), ``load_scalar`` and ``store``
(a buffer field's or element's bytes to a value and back) and ``narrow_i32``.

Invariant: every Wasm local a method emits is declared in ``wasm_locals`` (the scratch
locals ``$a $b $r $ix $c`` and ``$fp`` always are), and every Python local is read
only where ``assigned`` holds it, so no read can see a value plain Python would not.
"""

from __future__ import annotations

import ast

from vino.pygraft.frontend import SourceModule, assigned_names, is_array_value
from vino.pygraft.values import (
    BOOL,
    INT,
    M32,
    NONE,
    U32,
    WASM_T,
    ArrayRef,
    Refused,
)


class Scope:
    """One function's compile-time state, and the value conversions every layer uses."""

    def __init__(self, mod: SourceModule, fn: ast.FunctionDef, role: str) -> None:
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
        self.local_names = assigned_names(fn)
        self.has_frame = any(isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None
                             and is_array_value(n.value) for n in ast.walk(fn))
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                for n in node.names:
                    if n not in mod.state:
                        raise Refused(node, f"global {n}: no module state of that name",
                                      f"declare it at module level: `{n}: int = 0`")
                    self.globals.add(n)
                self.local_names -= set(node.names)
            elif isinstance(node, ast.Lambda):
                raise Refused(node, "a lambda", "define a helper function at module level")
            elif isinstance(node, ast.FunctionDef) and node is not fn:
                raise Refused(node, "a function inside a function",
                              "define helpers at module level")
        for n in self.local_names & (set(mod.consts) | set(mod.state)):
            raise Refused(fn, f"{fn.name} assigns {n}, a module constant or state",
                          f"use `global {n}` for state, or another name for a local")
        if role == "helper":
            self.sig = mod.sigs[fn.name]
            self.ret = self.sig.ret
        else:
            self.ret = "entry"
        for t in ("$a", "$b", "$r", "$ix", "$c"):
            self.wasm_locals.append((t, "i64"))
        self.wasm_locals.append(("$fp", "i32"))

    # ---- names, locals and labels ---------------------------------------------------------
    def err(self, node: ast.AST | None, problem: str, instead: str) -> Refused:
        return Refused(node, problem, instead)

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

    def epilogue(self) -> list[str]:
        """Pops the frame (before every return)."""
        return ["local.get $fp", "global.set $sp"] if self.has_frame else []

    # ---- values in memory and on the stack -------------------------------------------------
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
            lit = u32_literal(code)
            if lit is not None:
                return lit
            return [*code, "local.tee $c", f"i64.const {M32}", "i64.gt_u", "if", "unreachable",
                    "end", "local.get $c", "i32.wrap_i64"]
        if want == BOOL:
            raise self.err(node, f"a {t} where a bool is needed", "compare it: x != 0")
        if t == NONE:
            raise self.err(node, "a call that returns nothing used as a value",
                           "call it as a statement")
        raise self.err(node, f"a {t} where a {want} is needed", "convert it explicitly")

    def _as_u32_const(self, code: list[str], t: str) -> list[str] | None:
        """``code`` as an i32 u32, if it is one or an int literal in u32's range."""
        if t == U32:
            return code
        if t == INT:
            return u32_literal(code)
        return None

    def narrow_i32(self, code: list[str]) -> list[str]:
        """An int (i64 code) as an i32 for the host, trapping unless it fits a signed i32."""
        return [*code, "local.tee $c", "local.get $c", "i32.wrap_i64", "i64.extend_i32_s",
                "i64.ne", "if", "unreachable", "end", "local.get $c", "i32.wrap_i64"]

    def bounded(self, n: list[str], count: int) -> tuple[list[str], list[str]]:
        """A fresh i64 local set to min(n, count) (n: i64 code, unsigned): (code, read)."""
        loc = self.new_local("i64")
        return ([*n, "local.tee $c", f"i64.const {count}", "local.get $c",
                 f"i64.const {count}", "i64.lt_u", "select", f"local.set {loc}"],
                [f"local.get {loc}"])


def i64_literal(code: list[str]) -> int | None:
    """The value of ``code`` if it is one ``i64.const``."""
    if len(code) == 1 and code[0].startswith("i64.const "):
        return int(code[0].split()[1])
    return None


def u32_literal(code: list[str]) -> list[str] | None:
    """An int literal in u32's range as the i32 that holds it (two's complement above 2**31)."""
    v = i64_literal(code)
    if v is not None and 0 <= v <= M32:
        return [f"i32.const {v if v < 1 << 31 else v - (1 << 32)}"]
    return None

