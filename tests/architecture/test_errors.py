"""Every error vino defines is in the one hierarchy rooted at ``vino.errors.VinoError``.

What if a module grows its own ``class SomethingFailed(Exception)``? A caller catching
``VinoError`` would miss it. Each exception class defined in ``src/vino`` must derive
from ``VinoError``, except the few below, each for the reason given.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import vino
from vino.errors import VinoError

from .imports import modules, parse

SRC = Path(vino.__file__).parent

# Never reach a caller of vino, or must be a built-in exception to do their work.
OUTSIDE: dict[str, str] = {
    "vino.graft.wasmscan._Unknown": "the scan's own control flow, caught in the scan",
    "vino.pygraft.values.Refused": "the compiler's, turned into PythonGraftError",
    "vino.testing.faults.InjectedFault": "an injected I/O fault: an OSError, as a disk's is",
}


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for name, path in modules(SRC, "vino").items():
        if not any(isinstance(n, ast.ClassDef) for n in ast.walk(parse(path))):
            continue
        mod = importlib.import_module(name)
        found.extend(c for c in vars(mod).values() if isinstance(c, type)
                     and issubclass(c, BaseException) and c.__module__ == name)
    return found


def test_every_error_vino_defines_derives_from_vino_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 30  # the walk found them
    names = {f"{c.__module__}.{c.__qualname__}": c for c in classes}
    outside = sorted(n for n, c in names.items() if not issubclass(c, VinoError))
    assert outside == sorted(OUTSIDE)


# Raise a bare RuntimeError or Exception on their own account, each for the reason given.
BARE_RAISES: dict[str, str] = {
    "vino.bench": "the benchmarks' own harness (a child that failed, a probe's bug), "
                  "raised to the command line, never to a library caller",
    "vino.pygraft.shim": "default() in a test's plain-Python run of a graft, whose Host "
                         "was given no default: the caller's own set-up",
}


def test_vino_raises_no_bare_runtime_error_outside_the_hierarchy() -> None:
    # What if a module raises RuntimeError("...") where a VinoError belongs? A caller
    # catching VinoError would miss it (VinoVFS.close and sqlite's configure did).
    found = []
    for name, path in modules(SRC, "vino").items():
        if any(name == m or name.startswith(m + ".") for m in BARE_RAISES):
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Raise) and node.exc is not None:
                called = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(called, ast.Name) and called.id in ("RuntimeError",
                                                                   "Exception"):
                    found.append(f"{name}:{node.lineno}: raise {called.id}")
    assert found == []
