"""A generic host for tests of the graft mechanism: two points over plain host state.

``declare_points(registry, host, "test")`` declares, on ``registry``:

- ``test.pick``, a function point. Entry ``pick() -> i32``; a ``BUFFER``-byte buffer
  whose first ``u32`` is the input ``x``. Answers 0..100 are valid (anything else is
  ``InvalidResult``); the default answers ``DEFAULT_ANSWER``, counts its calls and
  inputs in ``host``, and, when ``host.default_records`` is set, records undo entries
  in the current transaction, as host code running under a graft would.
- ``test.event``, an event point. Entry ``on_event() -> i32``; the same buffer.

Their graft-callables, over ``host`` (a ``Host``: a dict and a list, so "the state"
is a value compared exactly): ``put(key, value)`` and ``push(value)`` are accessors
that record their undo; ``get(key)`` reads; ``pick_for(n, x)`` calls the pick point
for target ``f"t{n}"``; ``extra`` adds the test's own. Keys from ``ROOT_KEYS`` on
belong to privileged principals: ``put`` on them by anyone else raises
``Forbidden``. Lock ids 1..3 resolve to the registry's locks ``L1``..``L3`` and, with
``record_locks``, ids from there on to one lock per record (``R<id>``).

Grafts for them are written as WAT: ``module(imports, *fields)`` wraps the
boilerplate every graft needs (the named imports with their exact types, ``memory``,
``vino_buffer``), so a test shows only what makes its graft hostile; ``import_line``
is one import. The types come from the graft mechanism's table of common
graft-callables and ``SIGNATURES`` (the world's own); ``sigs`` adds a test's.

``tenant(name)`` makes a principal with the tests' per-call budget. The graft
mechanism's tests (``graft_world``) and the red-team suite (``Tenancy``) build their
worlds on these; the reliability campaigns' ``Rig`` keeps the same ``Host``.

Invariant: host state changes only through the accessors, each of which records how
to undo itself in the calling graft's transaction; the default's bookkeeping
(``default_calls``, ``default_inputs``) is the test's, not host state.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from vino.errors import Forbidden
from vino.graft import (
    I32,
    EventPoint,
    FunctionPoint,
    GraftCallable,
    HostLock,
    Principal,
    Quota,
    Registry,
    Transaction,
    any_principal,
    current,
    graft_callable,
)
from vino.graft.codec import InRange, Scalars
from vino.graft.hostapi import COMMON_CALLABLES, DEFAULT_CALLABLE, Signature
from vino.graft.layout import U32, Field, Layout, Struct

__all__ = [
    "BUFFER", "CALL_BUDGET_S", "DEFAULT_ANSWER", "LOCK_TIMEOUT_S", "ROOT_KEYS", "SIGNATURES",
    "TARGET", "Host", "declare_points", "import_line", "module", "tenant",
]

DEFAULT_ANSWER: Final = 7  # what the pick point's default answers
ROOT_KEYS: Final = 1000  # put(key >= ROOT_KEYS) needs a privileged principal
BUFFER: Final = 64  # bytes of each point's buffer
LOCK_TIMEOUT_S: Final = 0.05  # the tests' registries wait this long for a lock
CALL_BUDGET_S: Final = 0.02  # each tenant's CPU budget per call
TARGET: Final = "t1"  # a target any principal may graft (anything but GLOBAL)
# Both points' buffer: the input x, then bytes the grafts may use.
LAYOUT: Final = Layout(point="test.pick", entry="pick", buffer_size=BUFFER,
                       fields=Struct("test_buf", (Field("x", U32, 0),)))

# The world's own graft-callables and their Wasm types (params, results).
SIGNATURES: Final[dict[str, Signature]] = {
    "put": ((I32, I32), (I32,)), "push": ((I32,), (I32,)), "get": ((I32,), (I32,)),
    "pick_for": ((I32, I32), (I32,)),
}


def import_line(name: str, sigs: dict[str, Signature] | None = None) -> str:
    """``(import "vino" "name" (func $name ...))`` with the callable's exact type:
    a common graft-callable, ``default``, one of ``SIGNATURES`` or of ``sigs``."""
    table = {**COMMON_CALLABLES, "default": DEFAULT_CALLABLE, **SIGNATURES, **(sigs or {})}
    params, results = table[name]
    p = f" (param {' '.join(params)})" if params else ""
    r = f" (result {' '.join(results)})" if results else ""
    return f'  (import "vino" "{name}" (func ${name}{p}{r}))'


def module(imports: list[str], *fields: str, memory_pages: int = 1,
           sigs: dict[str, Signature] | None = None) -> str:
    """A graft: the named imports, ``memory``, ``vino_buffer`` at 0, then ``fields``."""
    return "\n".join((
        "(module",
        *(import_line(i, sigs) for i in imports),
        f'  (memory (export "memory") {memory_pages})',
        '  (func (export "vino_buffer") (result i32) i32.const 0)',
        *fields,
        ")",
    ))


@dataclass
class Host:
    """The host state grafts change through accessors: plain data, compared exactly."""

    d: dict[int | str, int] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)
    default_records: bool = False  # the default policy records undo entries when set
    default_calls: int = 0  # bookkeeping of the test, not host state (not undone)
    default_inputs: list[int] = field(default_factory=list)  # every x the default saw

    def state(self) -> dict[str, Any]:
        return {"d": copy.deepcopy(self.d), "items": list(self.items)}


def tenant(name: str, quota: dict[str, Any] | None = None, *,
           privileged: bool = False) -> Principal:
    """A principal with ``CALL_BUDGET_S`` per call, and ``quota``'s other limits."""
    return Principal(name, Quota(**{"cpu_call_s": CALL_BUDGET_S, **(quota or {})}),
                     privileged)


def declare_points(registry: Registry, host: Host, prefix: str, *,
                   extra: Collection[GraftCallable] = (),
                   event_callables: Collection[str] | None = None,
                   record_locks: int | None = None,
                   target_type: type | tuple[type, ...] = object,
                   ) -> tuple[FunctionPoint[object, int, int], EventPoint[object, int]]:
    """Declare ``<prefix>.pick`` and ``<prefix>.event`` on ``registry`` over ``host``.

    ``extra``: further graft-callables of both points; ``event_callables``: the names
    of those the event point offers (default: all); ``record_locks``: lock ids from
    this one on name one record's lock each; ``target_type``: the kind of target.
    """

    # Declared, not written (codec.py): the native protected call runs both in C.
    encode = Scalars(LAYOUT, ("x",))
    decode = InRange(0, 100, "pick")

    def encode_result(buf: memoryview, result: int, x: int) -> int:
        return result

    def default(x: int) -> int:
        host.default_calls += 1
        host.default_inputs.append(x)
        txn = current()
        if host.default_records and txn is not None:
            txn.setitem(host.d, "default", x)
            txn.append(host.items, -x)
        return DEFAULT_ANSWER

    @graft_callable("put", *SIGNATURES["put"])
    def put(txn: Transaction, key: int, value: int) -> int:
        who = txn.calling_graft.principal
        if key >= ROOT_KEYS and not who.privileged:
            raise Forbidden(f"key {key} belongs to root, not {who.name}")
        txn.setitem(host.d, key, value)
        return 0

    @graft_callable("push", *SIGNATURES["push"])
    def push(txn: Transaction, value: int) -> int:
        txn.append(host.items, value)
        return len(host.items)

    @graft_callable("get", *SIGNATURES["get"])
    def get(txn: Transaction, key: int) -> int:
        return host.d.get(key, -1)

    @graft_callable("pick_for", *SIGNATURES["pick_for"])
    def pick_for(txn: Transaction, target_no: int, x: int) -> int:
        return pick(f"t{target_no}", x)

    def resolve(txn: Transaction, lock_id: int) -> HostLock | None:
        if 1 <= lock_id <= 3:  # three shared locks
            return registry.locks.lock(f"L{lock_id}")
        if record_locks is not None and lock_id >= record_locks:  # names without end
            return registry.locks.lock(f"R{lock_id}")
        return None

    callables = (put, push, get, pick_for, *extra)
    on_event = callables if event_callables is None else tuple(
        c for c in callables if c.name in event_callables)
    pick: FunctionPoint[object, int, int] = FunctionPoint(
        name=f"{prefix}.pick", entry="pick", buffer_size=BUFFER, encode=encode,
        decode=decode, encode_result=encode_result, default=default, callables=callables,
        lock_resolver=resolve, target_type=target_type, may_install=any_principal,
        layout=LAYOUT)
    event: EventPoint[object, int] = EventPoint(
        name=f"{prefix}.event", entry="on_event", buffer_size=BUFFER, encode=encode,
        callables=on_event, lock_resolver=resolve, target_type=target_type,
        may_install=any_principal)
    registry.declare(pick)
    registry.declare(event)
    return pick, event
