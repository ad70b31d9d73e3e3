"""A small arena for the engine attacks (native stack, features, loader, trap details).

``EngineArena`` is a registry with one function point, ``eng.pick`` (entry
``pick() -> i32``, answers 0..100 accepted, default ``DEFAULT_ANSWER``), whose
graft-callables are the hooks the attacks pull: ``put(key, value)``, an accessor
over a plain dict that records undo, and ``pick_for(n, x)``, which invokes
``eng.pick`` for target ``f"t{n}"`` (how grafts nest). Principals: ``alice``
(may graft any target but ``GLOBAL``) and ``root``.

``snapshot()`` is everything an aborted or refused graft must leave as it was:
the host dict, the dispatch table, every principal's usage (CPU time, a lifetime
total, left out), the locks held and the number of installed grafts.
``cached(source)`` says whether a module is remembered anywhere (the sandbox's
compiled modules, the loader's passed checks, the registry's linked modules).

Attacks that can kill a process run in a child interpreter: ``in_child(code)``
runs Python source with ``src`` and this directory importable, bounded in time,
and returns (exit status, output); the parent asserts on them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from vino.errors import AbortReason, InvalidResult
from vino.graft import (
    GLOBAL,
    I32,
    FunctionPoint,
    Graft,
    Principal,
    Quota,
    Registry,
    Transaction,
    graft_callable,
    loader,
)
from vino.graft.point import U32
from vino.graft.txn import thread_state

HERE: Final = Path(__file__).resolve().parent
SRC: Final = HERE.parent.parent / "src"
DEFAULT_ANSWER: Final = 7
BUFFER: Final = 64
CHILD_TIMEOUT_S: Final = 60.0

IMPORT_PUT: Final = '(import "vino" "put" (func $put (param i32 i32) (result i32)))'
IMPORT_PICK_FOR: Final = '(import "vino" "pick_for" (func $pick_for (param i32 i32) (result i32)))'


def module(imports: str = "", *fields: str) -> str:
    """A graft: ``imports``, a one-page ``memory``, ``vino_buffer`` at 0, then ``fields``."""
    return "\n".join(("(module", imports, '  (memory (export "memory") 1)',
                      '  (func (export "vino_buffer") (result i32) i32.const 0)', *fields, ")"))


def pick(body: str, imports: str = "", *extra: str) -> str:
    """An ``eng.pick`` graft whose entry is ``body``."""
    return module(imports, *extra, f'  (func (export "pick") (result i32) {body})')


class EngineArena:
    """A registry with ``eng.pick`` over a dict, and the principals alice and root."""

    def __init__(self, **registry_kw: Any) -> None:
        self.registry = Registry(**registry_kw)
        self.host: dict[int, int] = {}
        self.default_calls = 0
        host = self.host

        def encode(buf: memoryview, x: int) -> tuple[int, ...]:
            U32.pack_into(buf, 0, x)
            return ()

        def decode(buf: memoryview, ret: int, x: int) -> int:
            if not 0 <= ret <= 100:
                raise InvalidResult(f"pick answered {ret}, not in 0..100")
            return ret

        def default(x: int) -> int:
            self.default_calls += 1
            return DEFAULT_ANSWER

        @graft_callable("put", (I32, I32))
        def put(txn: Transaction, key: int, value: int) -> int:
            txn.setitem(host, key, value)
            return 0

        @graft_callable("pick_for", (I32, I32))
        def pick_for(txn: Transaction, target_no: int, x: int) -> int:
            return self.pick(f"t{target_no}", x)

        self.pick: FunctionPoint[int] = FunctionPoint(
            name="eng.pick", entry="pick", buffer_size=BUFFER, encode=encode, decode=decode,
            encode_result=lambda buf, result, x: result, default=default,
            callables=(put, pick_for))
        self.registry.declare(self.pick)
        self.alice = Principal("alice", Quota(cpu_call_s=0.05))
        self.root = Principal("root", Quota(cpu_call_s=0.05), privileged=True)

    def install(self, source: loader.Source, target: Any = "t1",
                principal: Principal | None = None, **kw: Any) -> Graft:
        return self.registry.install(self.pick, source, principal or self.alice, target, **kw)

    def snapshot(self) -> dict[str, Any]:
        reg = self.registry.snapshot()
        return {
            "host": copy.deepcopy(self.host),
            "points": reg["points"],
            "usage": {p.name: {k: v for k, v in p.usage.snapshot().items() if k != "cpu_ns"}
                      for p in (self.alice, self.root)},
            "locks_held": reg["locks_held"],
            "grafts": len(self.registry.grafts()),
        }

    def cache_entries(self) -> tuple[int, int, int]:
        """Entries in the sandbox's compiled modules, the registry's linked modules and the
        loader's passed checks for ``eng.pick``."""
        passed = loader._PASSED.get(self.pick) or {}
        return len(self.registry.sandbox._modules), len(self.registry._pres), len(passed)

    def cached(self, source: loader.Source) -> bool:
        """Whether the module of ``source`` is remembered in any cache."""
        try:
            wasm = loader.read_source(source)[0]
        except ValueError:  # never became a module
            return False
        digest = hashlib.sha256(wasm).hexdigest()
        linked = any(d == digest for _, d in self.registry._pres)
        return linked or loader.cached(self.registry.sandbox, digest)

    def close(self) -> None:
        self.registry.close()
        assert thread_state().txn is None, "an attack left a live transaction current"


def assert_removed_for(g: Graft, reason: AbortReason, detail: str) -> None:
    """``g`` was aborted once, for ``reason`` with ``detail`` in its record, and removed."""
    assert g.removal is not None, f"{g!r} was not removed; aborts: {list(g.aborts)}"
    assert g.removal.reason is reason, g.removal
    assert detail in g.removal.detail, g.removal.detail
    assert [a.reason for a in g.aborts] == [reason], list(g.aborts)
    assert g.state == "removed" and g.instance is None


def in_child(code: str, timeout_s: float = CHILD_TIMEOUT_S) -> tuple[int, str]:
    """Run Python ``code`` in a fresh interpreter; return (exit status, stdout + stderr).

    A child killed by a signal has a negative status (-11: SIGSEGV).
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout_s, check=False,
                          env={**os.environ, "PYTHONPATH": f"{SRC}:{HERE.parent}"})
    return done.returncode, done.stdout + done.stderr


__all__ = ["DEFAULT_ANSWER", "GLOBAL", "IMPORT_PICK_FOR", "IMPORT_PUT", "EngineArena",
           "assert_removed_for", "in_child", "module", "pick"]
