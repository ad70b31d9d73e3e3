"""Test harness of the graft mechanism: a small generic point over plain host state.

``make_world()`` (the ``world`` fixture of conftest.py) gives each test a fresh
``Registry`` with the points of ``vino.testing.world`` (``declare_points``):

- ``test.pick``, a function point. Entry ``pick() -> i32``; a 64-byte buffer whose
  first ``u32`` is the input ``x``. The validator accepts answers 0..100; the default
  answers ``DEFAULT_ANSWER`` (and, when ``host.default_records`` is set, records undo
  entries in the current transaction, as host code running under a graft would).
- ``test.event``, an event point. Entry ``on_event() -> i32``; same buffer layout.
- Graft-callables over ``Host`` (a dict and a list): ``put(key, value)`` and
  ``push(value)`` are accessors that record undo; ``get(key)`` reads; ``boom()``
  raises a host bug; ``pick_for(n, x)`` calls ``test.pick`` for target ``f"t{n}"``. Keys from
  ``ROOT_KEYS`` on belong to the privileged principal: ``put`` on them by anyone
  else raises ``Forbidden``.
- Lock ids 1..3 resolve to the registry's locks ``L1``..``L3``.
- Principals ``alice`` (unprivileged, 20 ms per call) and ``root`` (privileged).

``graft(imports, *fields)`` wraps hostile code in the boilerplate every graft needs
(``memory`` and ``vino_buffer``), so each test shows only what makes its graft hostile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from vino.errors import AbortReason
from vino.graft import (
    I32,
    EventPoint,
    FunctionPoint,
    Graft,
    HostLock,
    Principal,
    Registry,
    Transaction,
    graft_callable,
)
from vino.graft.hostapi import Signature
from vino.graft.loader import Source
from vino.testing.world import (
    BUFFER,
    CALL_BUDGET_S,
    DEFAULT_ANSWER,
    LOCK_TIMEOUT_S,
    ROOT_KEYS,
    TARGET,
    Host,
    declare_points,
    import_line,
    tenant,
)

__all__ = [
    "BUFFER", "CALL_BUDGET_S", "DEFAULT_ANSWER", "IMPORT_BOOM", "IMPORT_DEFAULT",
    "IMPORT_KALLOC", "IMPORT_KFREE", "IMPORT_KREAD", "IMPORT_KWRITE", "IMPORT_LOCK",
    "IMPORT_LOG", "IMPORT_PICK_FOR", "IMPORT_PUSH", "IMPORT_PUT", "LOCK_TIMEOUT_S",
    "ROOT_KEYS", "TARGET", "Host", "World", "assert_aborted_and_restored",
    "assert_host_fault_kept_and_restored", "graft", "make_world", "pick_returning",
]


def graft(imports: str = "", *fields: str) -> str:
    """A graft module: ``imports``, a one-page ``memory``, ``vino_buffer`` at 0, ``fields``."""
    return "\n".join((
        "(module",
        imports,
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32) i32.const 0)',
        *fields,
        ")",
    ))


def pick_returning(n: int, imports: str = "") -> str:
    """A well-behaved ``test.pick`` graft answering ``n``."""
    return graft(imports, f'(func (export "pick") (result i32) i32.const {n})')


BOOM_SIGNATURE: Final[Signature] = ((), (I32,))  # test.pick's boom(): a bug in host code

# Import lines for the graft-callables, ready to paste into ``graft(imports=...)``.
IMPORT_PUT = import_line("put")
IMPORT_PUSH = import_line("push")
IMPORT_LOCK = import_line("lock")
IMPORT_LOG = import_line("log")
IMPORT_KALLOC = import_line("kalloc")
IMPORT_KFREE = import_line("kfree")
IMPORT_KREAD = import_line("kread")
IMPORT_KWRITE = import_line("kwrite")
IMPORT_DEFAULT = import_line("default")
IMPORT_BOOM = import_line("boom", {"boom": BOOM_SIGNATURE})
IMPORT_PICK_FOR = import_line("pick_for")

# Puts x -> 11 (an undo entry), then answers 5.
PUT_AND_ANSWER = graft(IMPORT_PUT, '''
  (func (export "pick") (result i32)
    (drop (call $put (i32.load (i32.const 0)) (i32.const 11)))
    i32.const 5)''')


@dataclass
class World:
    """One test's registry, points, host state and principals."""

    registry: Registry
    host: Host
    pick: FunctionPoint[object, int, int]
    event: EventPoint[object, int]
    alice: Principal
    root: Principal
    principals: list[Principal]

    def lock(self, lock_id: int) -> HostLock:
        return self.registry.locks.lock(f"L{lock_id}")

    def install(self, source: Source, principal: Principal | None = None, target: Any = TARGET,
                **kw: Any) -> Graft:
        return self.registry.install(self.pick, source, principal or self.alice, target, **kw)

    def principal(self, name: str, privileged: bool = False, **quota: Any) -> Principal:
        """A further principal whose usage the snapshot also covers."""
        p = tenant(name, quota, privileged=privileged)
        self.principals.append(p)
        return p

    def snapshot(self) -> dict[str, Any]:
        """Everything a graft or an install could change, as plain data.

        ``cpu_ns`` is left out of every usage: CPU time spent is consumption, never
        given back (accounting.py), so it is not state an abort restores.
        """
        reg = self.registry.snapshot()
        reg["usage"] = {name: _without_cpu(u) for name, u in reg["usage"].items()}
        return {
            "host": self.host.state(),
            "registry": reg,
            "usage": {p.name: _without_cpu(p.usage.snapshot()) for p in self.principals},
            "locks_held": sorted(lk.name for lk in self.registry.locks.held()),
        }


def _without_cpu(usage: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in usage.items() if k != "cpu_ns"}


def make_world(*, lock_timeout_s: float = LOCK_TIMEOUT_S, remove_after: int = 1,
               alice_quota: dict[str, Any] | None = None) -> World:
    registry = Registry(lock_timeout_s=lock_timeout_s, remove_after=remove_after)
    host = Host()

    @graft_callable("boom", *BOOM_SIGNATURE)
    def boom(txn: Transaction) -> int:
        raise RuntimeError("a bug in host code called by the graft")

    pick, event = declare_points(registry, host, "test", extra=(boom,),
                                 event_callables=("put", "push"))
    alice = tenant("alice", alice_quota)
    root = tenant("root", privileged=True)
    return World(registry, host, pick, event, alice, root, [alice, root])


def assert_host_fault_kept_and_restored(w: World, g: Graft, exc: BaseException,
                                        before: dict[str, Any]) -> None:
    """The host's own ``exc`` reached the caller with vino's note; ``g`` was not blamed
    (still installed, no failure counted, a ``host_error`` record saying so); everything
    is exactly as ``before`` (taken with ``g`` installed)."""
    assert any(n.startswith("vino: raised by the host's") for n in exc.__notes__)
    assert g.state == "live" and g.removal is None and g.failures == 0
    assert g.aborts[-1].reason is AbortReason.HOST_ERROR and g.aborts[-1].host_fault
    assert g in w.registry.grafts()
    assert w.snapshot() == before


def assert_aborted_and_restored(w: World, g: Graft, reason: AbortReason,
                                before: dict[str, Any]) -> None:
    """``g`` was aborted for ``reason`` and removed; everything is exactly as ``before``."""
    assert g.removal is not None, f"{g} was not removed"
    assert g.removal.reason is reason, g.removal
    assert [a.reason for a in g.aborts] == [reason]
    assert g.state == "removed"
    assert g.instance is None  # the store is dropped, never reused
    assert g not in w.registry.grafts()
    assert w.snapshot() == before
