"""Test harness of the graft mechanism: a small generic point over plain host state.

``make_world()`` (the ``world`` fixture of conftest.py) gives each test a fresh
``Registry`` with:

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

import copy
from dataclasses import dataclass, field
from typing import Any

from vino.errors import AbortReason, Forbidden, InvalidResult
from vino.graft import (
    I32,
    EventPoint,
    FunctionPoint,
    Graft,
    HostLock,
    Principal,
    Quota,
    Registry,
    Transaction,
    current,
    graft_callable,
)
from vino.graft.loader import Source
from vino.graft.point import U32, any_principal

DEFAULT_ANSWER = 7  # what test.pick's default answers
ROOT_KEYS = 1000  # put(key >= ROOT_KEYS) needs the privileged principal
BUFFER = 64
LOCK_TIMEOUT_S = 0.05
CALL_BUDGET_S = 0.02

TARGET = "t1"  # a target alice may graft (anything but GLOBAL)


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


# Import lines for the graft-callables, ready to paste into ``graft(imports=...)``.
IMPORT_PUT = '(import "vino" "put" (func $put (param i32 i32) (result i32)))'
IMPORT_PUSH = '(import "vino" "push" (func $push (param i32) (result i32)))'
IMPORT_LOCK = '(import "vino" "lock" (func $lock (param i32) (result i32)))'
IMPORT_LOG = '(import "vino" "log" (func $log (param i32 i32)))'
IMPORT_KALLOC = '(import "vino" "kalloc" (func $kalloc (param i32) (result i32)))'
IMPORT_KFREE = '(import "vino" "kfree" (func $kfree (param i32)))'
IMPORT_KREAD = '(import "vino" "kread" (func $kread (param i32 i32 i32 i32) (result i32)))'
IMPORT_KWRITE = '(import "vino" "kwrite" (func $kwrite (param i32 i32 i32 i32) (result i32)))'
IMPORT_DEFAULT = '(import "vino" "default" (func $default (result i32)))'
IMPORT_BOOM = '(import "vino" "boom" (func $boom (result i32)))'
IMPORT_PICK_FOR = '(import "vino" "pick_for" (func $pick_for (param i32 i32) (result i32)))'


@dataclass
class Host:
    """The host state grafts change through accessors: plain data, easy to compare."""

    d: dict[int | str, int] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)
    default_records: bool = False  # the default policy records undo entries when set
    default_calls: int = 0  # bookkeeping of the test, not host state (not undone)

    def state(self) -> dict[str, Any]:
        return {"d": copy.deepcopy(self.d), "items": list(self.items)}


@dataclass
class World:
    """One test's registry, points, host state and principals."""

    registry: Registry
    host: Host
    pick: FunctionPoint[int]
    event: EventPoint
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
        p = Principal(name, Quota(**{"cpu_call_s": CALL_BUDGET_S, **quota}), privileged)
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

    def encode(buf: memoryview, x: int) -> tuple[int, ...]:
        U32.pack_into(buf, 0, x)
        return ()

    def decode(buf: memoryview, ret: int, x: int) -> int:
        if not 0 <= ret <= 100:
            raise InvalidResult(f"pick answered {ret}, not in 0..100")
        return ret

    def encode_result(buf: memoryview, result: int, x: int) -> int:
        return result

    def default(x: int) -> int:
        host.default_calls += 1
        txn = current()
        if host.default_records and txn is not None:
            txn.setitem(host.d, "default", x)
            txn.append(host.items, -x)
        return DEFAULT_ANSWER

    @graft_callable("put", (I32, I32))
    def put(txn: Transaction, key: int, value: int) -> int:
        if key >= ROOT_KEYS and not txn.graft.principal.privileged:
            raise Forbidden(f"key {key} belongs to root, not {txn.graft.principal.name}")
        txn.setitem(host.d, key, value)
        return 0

    @graft_callable("push", (I32,))
    def push(txn: Transaction, value: int) -> int:
        txn.append(host.items, value)
        return len(host.items)

    @graft_callable("get", (I32,))
    def get(txn: Transaction, key: int) -> int:
        return host.d.get(key, -1)

    @graft_callable("boom", ())
    def boom(txn: Transaction) -> int:
        raise RuntimeError("a bug in host code called by the graft")

    @graft_callable("pick_for", (I32, I32))
    def pick_for(txn: Transaction, target_no: int, x: int) -> int:
        return pick(f"t{target_no}", x)

    def resolve(txn: Transaction, lock_id: int) -> HostLock | None:
        return registry.locks.lock(f"L{lock_id}") if 1 <= lock_id <= 3 else None

    callables = (put, push, get, boom, pick_for)
    pick: FunctionPoint[int] = FunctionPoint(
        name="test.pick", entry="pick", buffer_size=BUFFER, encode=encode, decode=decode,
        encode_result=encode_result, default=default, callables=callables,
        lock_resolver=resolve, may_install=any_principal)
    event = EventPoint(name="test.event", entry="on_event", buffer_size=BUFFER, encode=encode,
                       callables=(put, push), lock_resolver=resolve, may_install=any_principal)
    registry.declare(pick)
    registry.declare(event)
    alice = Principal("alice", Quota(**{"cpu_call_s": CALL_BUDGET_S, **(alice_quota or {})}))
    root = Principal("root", Quota(cpu_call_s=CALL_BUDGET_S), privileged=True)
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
