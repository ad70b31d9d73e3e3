"""The values a compiled Python graft computes with, and how each is held in WebAssembly.

    from vino.pygraft.values import INT, U32, WASM_T, Refused
    WASM_T[U32]                       # "i32": the Wasm type that holds a u32
    raise Refused(node, "a slice", "index one element at a time")

Every other module of the compiler speaks this vocabulary: a value's type is one of
``INT`` (an i64), ``U32`` (an i32 known to lie in [0, 2**32)), ``BOOL`` (an i32, 0 or
1) or ``NONE`` (no value: a call made as a statement); an array is reached through an
``ArrayRef`` (base address, bound, element kind) and a helper through its ``Sig``.
The memory plan's named sizes (``BUFFER_AT``, ``STACK_RESERVE``, ...) come from
``vino.limits``. A construct outside the subset is reported by raising ``Refused``;
``compiler`` turns it into a located ``PythonGraftError``.

Invariant: a value of type ``U32`` or ``BOOL`` on the Wasm stack is always in its range
(every conversion into it is checked or proved), so widening it to ``INT`` never
changes it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Final

from vino import limits
from vino.graft.layout import Field, Struct

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
CONST_BITS: Final = limits.PYGRAFT_CONST_BITS  # a wider folded constant is refused
# Initialised state becomes data segments in the module, which the loader refuses past
# this size: refused here before they are built (16 MB of them took 6 s and 1.2 GB).
MAX_DATA_BYTES: Final = limits.MAX_MODULE_BYTES
# State, the buffer and log strings are the initial memory, which the loader holds to this:
MAX_STATIC_BYTES: Final = limits.MAX_MEMORY_PAGES * limits.WASM_PAGE - STACK_RESERVE
WASM_PAGE: Final = limits.WASM_PAGE

HELPERS: Final = frozenset({"to_u32", "u32_add", "u32_sub", "u32_mul", "rotl32", "rotr32",
                            "le32", "set_le32"})
COMMON_CALLABLES: Final = frozenset({"now", "log", "lock", "kalloc", "kfree", "default"})
TYPE_NAMES: Final = frozenset({"u32", "Row"})
ELEM_OF: Final = {INT: "i64", U32: "u32"}
ELEM_SIZE: Final = {"i64": 8, "u32": 4, "u8": 1, "i32": 4, "u64": 8}
WASM_T: Final = {INT: "i64", U32: "i32", BOOL: "i32"}
ELEM_NAME: Final = {"i64": "int", "u32": "u32", "u8": "bytes", "i32": "int", "u64": "int"}


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
    """A helper function's signature: its parameters' types and its result's."""

    name: str
    params: list[tuple[str, str]]  # (name, type): INT/U32/BOOL or "list:i64"/"list:u32"/"list:u8"
    ret: str
    node: ast.FunctionDef
    writes: set[str] = field(default_factory=set)  # array params it stores into


class Refused(Exception):
    """A construct outside the subset: where, what is wrong, what to write instead.

    Internal to the compiler: ``compiler`` turns it into a ``PythonGraftError``.
    """

    def __init__(self, node: ast.AST | None, problem: str, instead: str) -> None:
        super().__init__(problem)
        self.node = node
        self.problem = problem
        self.instead = instead


def align(n: int, a: int) -> int:
    """``n`` rounded up to a multiple of ``a``."""
    return (n + a - 1) // a * a


def what(node: ast.AST) -> str:
    """The construct ``node`` is, in words an author knows ("a lambda", "try")."""
    names = {ast.ClassDef: "a class", ast.Try: "try", ast.With: "with", ast.Lambda: "lambda",
             ast.ListComp: "a list comprehension", ast.Dict: "a dict", ast.Set: "a set",
             ast.Tuple: "a tuple", ast.JoinedStr: "an f-string", ast.Raise: "raise",
             ast.Delete: "del", ast.AsyncFunctionDef: "async def", ast.Await: "await",
             ast.Yield: "yield", ast.GeneratorExp: "a generator", ast.Starred: "*args",
             ast.DictComp: "a dict comprehension", ast.SetComp: "a set comprehension",
             ast.NamedExpr: "the walrus operator", ast.Nonlocal: "nonlocal",
             ast.Match: "match", ast.Slice: "a slice"}
    return names.get(type(node), type(node).__name__)


def check_fits(node: ast.AST, v: int, kind: str) -> None:
    """Refuses a constant that does not fit its place (``kind``: i64, u32, bool, u8)."""
    lo, hi = {"i64": (I64_MIN, I64_MAX), "u32": (0, M32), "bool": (0, 1),
              "u8": (0, 255)}[kind]
    if not lo <= v <= hi:
        raise Refused(node, f"{v} does not fit a {kind}", f"use a value in [{lo}, {hi}]")


def ann_type(node: ast.expr | None, *, allow_list: bool = False,
             allow_none: bool = False) -> str:
    """The type an annotation names: INT, U32, BOOL, NONE or ``list:<elem>``."""
    if node is None:
        if allow_none:
            return NONE
        raise Refused(node, "a parameter without a type", "annotate it: int, u32, bool, ...")
    if isinstance(node, ast.Constant) and node.value is None and allow_none:
        return NONE
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return ann_type(ast.parse(node.value, mode="eval").body, allow_list=allow_list,
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
    raise Refused(node, f"the type {ast.unparse(node)}",
                  "use int, u32, bool" + (", list[int], list[u32] or bytes" if allow_list
                                          else ""))


def kind_of(f: Field) -> str:
    """A scalar field's element kind ("u32", "i64", ...)."""
    assert not isinstance(f.elem, Struct)
    return f.elem.name

