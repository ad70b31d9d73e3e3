"""``vino doctor``: which of vino's native parts this machine runs, and why not.

Every native part (``graft/nativepart.py``: the graft fast path, the stack guard,
the epoch ticker, the kernel's plain read) has a Python twin that takes over,
silently, when the part cannot be built here. ``check()`` tries each one, exactly
as a program using vino would (built once, from the same cache), and says which
runs: ``native``, ``off`` (asked for the twin by an environment variable) or
``failed`` with the compiler's or loader's reason. ``main`` prints that, as text or
JSON; it exits 1 when a part failed, 0 otherwise (``off`` is a choice, not a fault).

Graft languages are another command's (``vino graft toolchains``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import import_module, metadata
from typing import Final, Literal

__all__ = ["PartStatus", "check", "main"]

# The modules that make the native parts (each makes its own at import).
_OWNERS: Final = ("vino.graft.fastpath", "vino.graft.stack", "vino.graft.ticker",
                  "vino.kernel.plainread")


@dataclass(frozen=True, slots=True)
class PartStatus:
    name: str
    state: Literal["native", "off", "failed"]
    reason: str  # "" when native


def check() -> list[PartStatus]:
    """Each native part tried (built if needed), with what it answered."""
    for owner in _OWNERS:
        import_module(owner)
    from vino.graft.nativepart import parts

    out = []
    for part in parts():
        loaded = part.get() is not None
        state: Literal["native", "off", "failed"] = (
            "native" if loaded else "failed" if part.failed else "off")
        out.append(PartStatus(part.name, state, part.reason))
    return out


def main(args: argparse.Namespace) -> int:
    status = check()
    if args.json:
        print(json.dumps({"python": platform.python_version(),
                          "wasmtime": metadata.version("wasmtime"),
                          "parts": [asdict(s) for s in status]}, indent=2))
    else:
        print(f"python {platform.python_version()} ({sys.platform}, {platform.machine()}), "
              f"wasmtime {metadata.version('wasmtime')}")
        for s in status:
            line = f"  {s.name:<13} {s.state}"
            print(line if not s.reason else f"{line}: the Python twin runs ({s.reason})")
    return 1 if any(s.state == "failed" for s in status) else 0
