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
