"""Expressions: a Python expression to Wasm code that leaves its value, and the value's type.

    code, t = self.expr(node)       # t is INT, U32, BOOL (or NONE for a call)
    code, _ = self.cond(node)       # any value as an i32 truth value

The arithmetic is Python's on 64-bit integers: ``+ - * << -x abs`` trap where the
exact result leaves i64, ``//`` and ``%`` round toward minus infinity, ``>>`` of a
large count gives the sign; ``u32`` values stay in i32 where the result is known to
fit (bit operations, comparisons, ``>>`` by a constant). ``arr[i]`` is bounds-checked
with a negative index counting from the end, except where a ``for`` loop proved the
index in range (``in_range``) or the index and the bound are constants. ``and`` and
``or`` are evaluated lazily, and only on bools when used as values (Python would
return an operand). Calls are ``calls.Calls``' concern (``call``, abstract here).

Invariant: the code for ``x + c``, ``x - c`` and ``x * c`` with a constant ``c`` traps
on exactly the inputs the general form traps on; only the test is cheaper.
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod

from vino.pygraft.scope import Scope, i64_literal
from vino.pygraft.values import (
    BOOL,
    I64_MAX,
    I64_MIN,
    INT,
    NONE,
    U32,
    WASM_T,
    ArrayRef,
    check_fits,
    kind_of,
    what,
)


class Expressions(Scope, ABC):
    """Code for values: names, elements, fields, operators, comparisons, conditions."""

    @abstractmethod
    def call(self, node: ast.Call) -> tuple[list[str], str]:
        """A call's code and result type (``calls.Calls``)."""

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
        code = list(parts[0])  # extended in place: a chain's code is linear in its length
        for p in parts[1:]:
            if isinstance(node.op, ast.And):
                code += ["if (result i32)", *p, "else", "i32.const 0", "end"]
            else:
                code += ["if (result i32)", "i32.const 1", "else", *p, "end"]
        return code, BOOL

    def expr(self, node: ast.expr) -> tuple[list[str], str]:
        cv = self.mod.try_const(node) if not isinstance(node, ast.Name) or (
            node.id not in self.locals and node.id not in self.arrays) else None
        if cv is not None and not (isinstance(node, ast.Constant) and type(node.value) is bool):
            check_fits(node, cv, "i64")
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
            return self.load_scalar(addr, kind_of(f), f.offset)
        if isinstance(node, ast.Call):
            code, t = self.call(node)
            if t == NONE:
                raise self.err(node, "a call that returns nothing used as a value",
                               "call it as a statement")
            return code, t
        raise self.err(node, f"{what(node)} is not in the compiled subset",
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
        ca, cb = i64_literal(a), i64_literal(b)
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
        code = list(parts[0])  # extended in place (boolop)
        for p in parts[1:]:
            code += ["if (result i32)", *p, "else", "i32.const 0", "end"]
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
