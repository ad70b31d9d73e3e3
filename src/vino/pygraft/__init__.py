"""Grafts written in Python: a typed subset compiled to an isolated WebAssembly graft.

A policy is an ordinary Python function named for its point, whose parameters
are the point's buffer fields by name:

    from vino.pygraft import vm_hint

    def evict(cand: list[Row]) -> int:      # vm.evict: cand has n rows
        best = 0
        for i in range(len(cand)):
            if cand[i].last_use < cand[best].last_use:
                best = i
        return best

``compile_source`` / ``compile_function`` turn it into a module that the
ordinary loader checks and the ordinary registry runs, with every protection
unchanged; ``Registry.install`` accepts the function or a ``.py`` file
directly. Imported from here, the helpers and graft-callables are plain Python
(``vino.pygraft.shim``), so the same source runs in a unit test or a REPL.

The guarantee: a compiled graft returns exactly what the same function returns
run as plain Python, or it aborts. See ``compiler`` for the subset.
"""

import os
from pathlib import Path

from vino.pygraft.compiler import Compiled, compile_function, compile_source
from vino.pygraft.shim import (
    Host,
    Row,
    default,
    kalloc,
    kfree,
    le32,
    lock,
    log,
    now,
    rotl32,
    rotr32,
    sched_set_priority,
    set_le32,
    to_u32,
    u32,
    u32_add,
    u32_mul,
    u32_sub,
    vm_hint,
)

__all__ = [
    "Compiled",
    "Host",
    "Row",
    "compile_function",
    "compile_source",
    "default",
    "is_python",
    "kalloc",
    "kfree",
    "le32",
    "lock",
    "log",
    "now",
    "rotl32",
    "rotr32",
    "sched_set_priority",
    "set_le32",
    "to_u32",
    "u32",
    "u32_add",
    "u32_mul",
    "u32_sub",
    "vm_hint",
]


def is_python(source: object) -> bool:
    """True for a ``.py`` path (an ``os.PathLike``) or Python text (WAT text starts with
    ``(`` or ``;;``). A ``str`` is never a path: one that looks like a file name is no
    Python either (the loader refuses it, saying so)."""
    if isinstance(source, os.PathLike):
        return Path(source).suffix == ".py"
    if isinstance(source, str):
        if "\n" not in source and source.strip().endswith((".wasm", ".wat", ".py")):
            return False
        return not source.lstrip().startswith(("(", ";;"))
    return False
