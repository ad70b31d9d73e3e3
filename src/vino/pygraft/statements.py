"""Statements: control flow and assignment, with definite assignment tracked as Python's.

    self.block(fn.body)        # appends the body's code to self.code

``if``/``elif``/``else`` and ``while`` become Wasm blocks; ``for x in range(a, b, c)``
(a constant, non-zero step) counts in an i64 local and ends exactly where Python's
range ends, even next to the ends of i64; ``break`` and ``continue`` branch to the
innermost loop's labels. An assignment to a name declares a local (typed by its
first value, ``u32`` only when annotated), to ``arr[i]`` stores through a checked
address into a writable array, to ``global`` state sets a Wasm global; ``[c] * N`` and
``[a, b, ...]`` make a local array in the function's frame. ``return`` converts to the
declared type (the entry's int must fit an i32) and pops the frame.

Invariant: after each statement ``assigned`` holds exactly the names assigned on every
path to it (both arms of an ``if`` unless one always exits; nothing a loop body
assigns), so ``Expressions.name`` refuses any read Python could make of an unbound
local.
"""

from __future__ import annotations

import ast

from vino.pygraft.calls import Calls
from vino.pygraft.frontend import always_exits, is_array_value, targets_of
from vino.pygraft.values import (
    ELEM_SIZE,
    I64_MAX,
    I64_MIN,
    INT,
    MAX_ARRAY_BYTES,
    NONE,
    U32,
    WASM_T,
    ArrayRef,
    align,
    ann_type,
    what,
)


class Statements(Calls):
    """Code for statements; ``assigned`` follows definite assignment through them."""

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
            t = ann_type(s.annotation, allow_list=True)
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
            after_then = self.assigned if not always_exits(s.body) else None
            self.assigned = set(before)
            if s.orelse:
                c.append("else")
                self.block(s.orelse)
            after_else = self.assigned if not always_exits(s.orelse) else None
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
            code, t = self.call(s.value)
            c += code
            if t != NONE:
                c.append("drop")
        else:
            raise self.err(s, f"{what(s)} is not in the compiled subset",
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
            code = self.narrow_i32(self.conv(code, t, INT, s.value))
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
                if any(isinstance(t, ast.Name) and t.id in (var, name)
                       for t in targets_of(node)):
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
            raise self.err(target, f"assignment to {what(target)}",
                           "assign to a name or an array element")
        name = target.id
        if (ann is not None and ann.startswith("list:")) or is_array_value(value):
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
        self.frame = align(at + size, 8)
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

