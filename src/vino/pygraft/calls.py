"""Calls: helpers defined in the graft, Python's builtins, ``vino.pygraft``'s helpers and
the graft-callables the host offers.

    code, t = self.call(node)    # from Expressions.expr

A call is by name, with positional arguments only. In the order tried: a helper of
this module (``call $f_name``, arrays passed as base and bound, a read-only array
refused where the helper stores into its parameter); ``min``/``max``/``abs``/``len``/
``int`` inline; the 32-bit helpers (``to_u32``, ``u32_add``, ``rotl32``, ``le32``, ...)
inline with exactly the shim's meaning; then the graft-callables (``now``, ``log``,
``lock``, ``kalloc``, ``kfree``, ``default`` and the point's own), which must be
imported from ``vino.pygraft`` and become calls to the module's ``vino`` imports
(``IMPORT_SIGS`` gives their Wasm types; ``emit`` declares the ones used).

Invariant: an int passed to a graft-callable reaches the host only if it fits an i32
(``narrow_i32`` traps otherwise), so the host never sees a silently truncated value.
"""

from __future__ import annotations

import ast
from typing import Final

from vino.pygraft.expressions import Expressions
from vino.pygraft.values import (
    BOOL,
    COMMON_CALLABLES,
    ELEM_NAME,
    HELPERS,
    I64_MIN,
    INT,
    NONE,
    U32,
    WASM_T,
    Sig,
)


class Calls(Expressions):
    """Code for calls, by what is called."""

    def call(self, node: ast.Call) -> tuple[list[str], str]:
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
            code = list(code)  # extended in place: linear in the number of arguments
            for a in args[1:]:
                bc, bt = self.expr(a)
                w = t if t == bt and t == U32 else INT
                ops = ("i32", "_u") if w == U32 else ("i64", "_s")
                cmp = f"{ops[0]}.{'lt' if f == 'min' else 'gt'}{ops[1]}"
                tmpt = WASM_T[w]
                ta, tb = self.new_local(tmpt), self.new_local(tmpt)
                code = self.conv(code, t, w, a)  # a copy at most once: from u32 to int
                code += [f"local.set {ta}", *self.conv(bc, bt, w, a),
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
                    have = ELEM_NAME.get(ref.elem, "row")
                    raise self.err(a, f"{ref.name} holds {have} elements; {sig.name}'s "
                                   f"{pname} takes {ELEM_NAME[t[5:]]}",
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
            return _low32(c, t), U32
        self._nargs(node, 2)
        (ac, at), (bc, bt) = self.expr(args[0]), self.expr(args[1])
        a32, b32 = _low32(ac, at), _low32(bc, bt)
        if f in ("rotl32", "rotr32"):
            return [*a32, *b32, "i32.rotl" if f == "rotl32" else "i32.rotr"], U32
        op = {"u32_add": "add", "u32_sub": "sub", "u32_mul": "mul"}[f]
        # Low 32 bits of the exact result = the 32-bit operation on the low 32 bits.
        return [*a32, *b32, f"i32.{op}"], U32

    def call_callable(self, f: str, node: ast.Call) -> tuple[list[str], str]:
        args = node.args
        if f == "log":
            self._nargs(node, 1)
            a = args[0]
            if not (isinstance(a, ast.Constant) and isinstance(a.value, str)):
                raise self.err(a, "log() of something other than a string literal",
                               'write log("what happened")')
            if not a.value.isascii():
                try:
                    a.value.encode()
                except UnicodeEncodeError:  # an escape such as "\ud800" makes a lone surrogate
                    raise self.err(a, "log() of a string that is not valid Unicode (a lone "
                                   "surrogate)", "write text that UTF-8 can hold") from None
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
            code += self.narrow_i32(self.conv(c, t, INT, a))
        code.append(f"call $i_{f}")
        if results:
            return [*code, "i64.extend_i32_s"], INT
        return code, NONE


_COMMON_SIGS: Final = {"lock": (("i32",), ("i32",)), "kalloc": (("i32",), ("i32",)),
                       "kfree": (("i32",), ())}
IMPORT_SIGS: Final = {"now": "(result i64)", "log": "(param i32 i32)",
                      "lock": "(param i32) (result i32)", "kalloc": "(param i32) (result i32)",
                      "kfree": "(param i32)", "default": "(result i32)"}


def _low32(code: list[str], t: str) -> list[str]:
    """The low 32 bits of a value as an i32 (a u32 or bool already is)."""
    return code if t in (U32, BOOL) else [*code, "i32.wrap_i64"]
