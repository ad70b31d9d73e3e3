"""One function, whole: its parameters bound, its body compiled, its ``func`` text.

    text = FunctionCompiler(mod, fn, "entry").compile()   # role: entry | message | helper

The entry's parameters are the point's fields and arguments by name: a scalar field
is loaded from the buffer once, in the prologue; an array field is reached in place,
bounded by its ``valid`` count (clamped to its capacity) or its full count; a point
argument arrives as an i32 parameter. ``message(msg)`` sees the buffer as ``bytes`` of
the message's length (clamped to the buffer). A helper takes scalars as Wasm
parameters and each array as a base and a bound. A function with local arrays takes
a frame on the stack (``$sp``) in its prologue, growing memory when the frame does
not fit (``$grow_to``, emitted by ``emit``) and pops it on every return; the entry
and the message handler start from an empty stack (``$sp0``), so an aborted call
leaks nothing into the next.

Invariant: a function that can reach its end without a ``return`` is refused unless
it returns ``None``; otherwise its end is ``unreachable``, never a made-up value.
"""

from __future__ import annotations

from vino.graft.layout import Field, Struct
from vino.pygraft.frontend import always_returns, field_names, is_docstring
from vino.pygraft.statements import Statements
from vino.pygraft.values import BUFFER_AT, INT, NONE, WASM_T, ArrayRef, align, kind_of


class FunctionCompiler(Statements):
    """Compiles one function of a graft's module to a WAT ``func``."""

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
            self.bind_helper()
            result = f"(result {WASM_T[self.ret]})" if self.ret != NONE else ""
        body = [s for i, s in enumerate(fn.body) if not (i == 0 and is_docstring(s))]
        self.block(body)
        if not always_returns(body):
            if self.ret not in (NONE,):
                raise self.err(fn, f"{fn.name} can reach its end without returning a value",
                               "end it with a return statement")
            self.code += self.epilogue()
        if self.frame:
            frame = align(self.frame, 16)
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

    def bind_helper(self) -> None:
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
                                   ", ".join(field_names(lay))) from None
                if f.pad:
                    raise self.err(p, f"{name} is padding", "leave it out")
                if f.count is None:
                    code, t = self.load_scalar([f"i32.const {BUFFER_AT + f.offset}"],
                                               kind_of(f), 0)
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
        pro: list[str] = []
        bound = [f"i64.const {f.count}"]
        if f.valid is not None:
            if f.valid in argnames:
                n = [f"local.get $arg_{f.valid}", "i64.extend_i32_u"]
            else:
                vf = lay.field(f.valid)
                n = [f"i32.const {BUFFER_AT + vf.offset}", "i64.load32_u"]
            pro, bound = self.bounded(n, f.count)
        row = f.elem if isinstance(f.elem, Struct) else None
        elem = "row" if row is not None else kind_of(f)
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
        pro, bound = self.bounded(["local.get $len", "i64.extend_i32_u"],
                                  self.mod.layout.buffer_size)
        self.arrays[name] = ArrayRef(name, "u8", [f"i32.const {BUFFER_AT}"], bound, False)
        self.assigned.add(name)
        return pro
