"""The rigs the campaigns run on: a registry over plain host state, and scratch kernels.

``Rig`` is a registry with two test points, ``rel.op`` (a function point) and
``rel.event`` (an event point), over a ``Host`` (a dict and a list), so "the state"
is a value compared exactly. Its graft-callables pass the fault sites of an
``Injector`` (``vino.testing.faults``); ``Rig.patched()`` routes lock acquisition and
principal charges through it as well. ``Rig.snapshot()`` is what an abort must
restore; ``registry_problems`` lists the broken invariants of a quiescent registry.

The grafts are written here as WAT: ``module(imports, *fields)`` wraps the
boilerplate (``memory``, ``vino_buffer``); ``op_graft`` is the multi-step graft of the
fault loops, ``puts_graft`` the one whose undo steps leave a known residue.

Kernel campaigns use ``scratch_kernel`` (a kernel on a fresh image), ``pattern``
(content that names each block) and ``inode_of``.

Usage::

    rig = Rig(remove_after=NEVER_REMOVE)
    g = rig.install(op_graft())
    before = rig.snapshot()
    with rig.patched():
        rig.op("t1", 0)
    assert rig.problems() == []
    rig.close()

Invariant: a rig's principals are exactly ``alice``, ``bob`` and ``root``; every
accessor call passes the ``accessor`` site before it changes anything, and every
undo entry it records passes ``undo``.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

from vino import limits
from vino.errors import Forbidden, InvalidResult
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
    any_principal,
    current,
    graft_callable,
)
from vino.graft.hostapi import Signature
from vino.graft.loader import Source
from vino.graft.point import U32
from vino.kernel import params
from vino.kernel.device import SSD
from vino.kernel.inode import Inode
from vino.kernel.kernel import Kernel
from vino.kernel.layouts import LAYOUTS
from vino.testing import world
from vino.testing.faults import Injector
from vino.testing.world import BUFFER, DEFAULT_ANSWER, ROOT_KEYS, Host
from vino.workloads import pattern

__all__ = [
    "ACCESS_NOP", "BS", "BUFFER", "DEFAULT_ANSWER", "HOSTILE_DIR", "LIVE",
    "NEVER_REMOVE", "OP_ANSWER", "POINT_ABI", "RELAXED", "RIG_SIGNATURES", "ROOT_KEYS", "SPIN",
    "XOR_FILTER",
    "Rig", "import_line", "inode_of", "module", "op_graft", "pattern", "puts_graft",
    "quiet_undo_log", "registry_problems", "scratch_kernel", "state_diff", "usage_of",
]

OP_ANSWER: Final = 42  # what the multi-step graft answers when it commits
NEVER_REMOVE: Final = limits.NEVER_REMOVE  # remove_after for grafts that must survive their aborts
LIVE: Final = "live"  # Graft.state of an installed graft (docs/API.md)
HOSTILE_DIR: Final = Path(__file__).resolve().parent.parent / "sdk" / "hostile"

# ---- WAT building blocks --------------------------------------------------------------

# The rig's own graft-callable beyond the world's (``put``, ``push``): the soak's counter.
RIG_SIGNATURES: Final[dict[str, Signature]] = {"inc": ((I32,), (I32,))}


def import_line(name: str) -> str:
    """The import of graft-callable ``name`` as a rig graft writes it."""
    return world.import_line(name, RIG_SIGNATURES)


def module(imports: list[str], *fields: str, memory_pages: int = 1) -> str:
    """A graft module: the named imports, ``memory``, ``vino_buffer`` at 0, ``fields``."""
    return world.module(imports, *fields, memory_pages=memory_pages, sigs=RIG_SIGNATURES)


def op_graft(end: str = f"i32.const {OP_ANSWER}") -> str:
    """The multi-step graft of the fault loops: two locks, three accessor calls, two
    allocations (one freed), a host-memory write, a nested ``default()``; then ``end``."""
    body = f"""
  (func (export "op") (result i32) (local $h i32) (local $h2 i32)
    (drop (call $lock (i32.const 1)))
    (drop (call $put (i32.const 1) (i32.const 11)))
    (drop (call $push (i32.const 21)))
    (local.set $h (call $kalloc (i32.const 64)))
    (drop (call $kwrite (local.get $h) (i32.const 0) (i32.const 8) (i32.const 8)))
    (local.set $h2 (call $kalloc (i32.const 32)))
    (drop (call $lock (i32.const 2)))
    (drop (call $put (i32.const 2) (i32.const 22)))
    (drop (call $default))
    (drop (call $push (i32.const 23)))
    (call $kfree (local.get $h2))
    {end})"""
    return module(["put", "push", "lock", "kalloc", "kwrite", "kfree", "default"], body)


def puts_graft(end: str = "unreachable") -> str:
    """Five dict writes (key 1 twice), a lock and an allocation; then ``end`` (default: trap).
    Dict writes undo exactly, one by one, so a failed undo step leaves a known residue."""
    body = f"""
  (func (export "op") (result i32)
    (drop (call $lock (i32.const 1)))
    (drop (call $put (i32.const 1) (i32.const 10)))
    (drop (call $put (i32.const 2) (i32.const 20)))
    (drop (call $kalloc (i32.const 16)))
    (drop (call $put (i32.const 1) (i32.const 11)))
    (drop (call $put (i32.const 3) (i32.const 30)))
    (drop (call $put (i32.const 4) (i32.const 40)))
    {end})"""
    return module(["put", "lock", "kalloc"], body)


# A short spin (~20,000 iterations, well under a millisecond), e.g. while holding a lock.
SPIN: Final = ("(local.set $i (i32.const 20000))"
               " (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1)))"
               " (br_if $l (i32.gt_s (local.get $i) (i32.const 0))))")


# ---- the registry rig ---------------------------------------------------------------------

class Rig:
    """A registry with ``rel.op`` (function point) and ``rel.event`` over a ``Host``.

    Graft-callables: ``put(key, value)`` and ``push(value)`` (accessors; their
    undo entries pass the ``undo`` fault site), ``inc(key)`` (takes counter lock
    ``C<key>`` for the transaction, then adds one: the soak's lost-update probe).
    Every accessor call passes the ``accessor`` site first. Lock ids 1..3 are
    ``L1``..``L3``; ``rig.patched()`` routes lock acquisition through ``lock`` and
    principal charges through ``alloc``.
    """

    def __init__(self, *, remove_after: int = 1, lock_timeout_s: float = 0.05,
                 cpu_call_s: float = 0.05, cpu_total_s: float = limits.QUOTA_CPU_TOTAL_S,
                 injector: Injector | None = None, registry: Registry | None = None) -> None:
        self.injector = injector or Injector()
        self.registry = registry or Registry(lock_timeout_s=lock_timeout_s,
                                             remove_after=remove_after)
        self.host = Host()
        self.removed: list[Graft] = []
        # The transaction the graft-callables were last handed: a graft's own (reused by
        # each of its calls), whose ``undo_errors`` the undo fault loop reads.
        self.graft_txn: Transaction | None = None
        inj = self.injector
        host = self.host
        reg = self.registry

        def encode(buf: memoryview, x: int) -> tuple[int, ...]:
            U32.pack_into(buf, 0, x & 0xFFFFFFFF)
            return ()

        def decode(buf: memoryview, ret: int, x: int) -> int:
            if not 0 <= ret <= 100:
                raise InvalidResult(f"rel.op answered {ret}, not in 0..100")
            return ret

        def encode_result(buf: memoryview, result: int, x: int) -> int:
            return result

        def default(x: int) -> int:
            # The default changes host state too: undoably inside a transaction (a
            # graft's default() or a host transaction), plainly outside any.
            txn = current()
            if txn is not None:
                self._setitem(txn, "default", x)
            else:
                host.d["default"] = x
            return DEFAULT_ANSWER

        @graft_callable("put", (I32, I32))
        def put(txn: Transaction, key: int, value: int) -> int:
            inj.hit("accessor")
            self.graft_txn = txn
            who = txn.calling_graft.principal
            if key >= ROOT_KEYS and not who.privileged:
                raise Forbidden(f"key {key} belongs to root, not {who.name}")
            self._setitem(txn, key, value)
            return 0

        @graft_callable("push", (I32,))
        def push(txn: Transaction, value: int) -> int:
            inj.hit("accessor")
            self.graft_txn = txn
            host.items.append(value)

            def undo() -> None:
                host.items.pop()

            txn.record(inj.wrap(undo, "undo"))
            return len(host.items)

        @graft_callable("inc", *RIG_SIGNATURES["inc"])
        def inc(txn: Transaction, key: int) -> int:
            inj.hit("accessor")
            self.graft_txn = txn
            if not 0 <= key < 64:
                raise Forbidden(f"inc: no counter {key}")
            reg.locks.acquire(reg.locks.lock(f"C{key}"), txn)
            self._setitem(txn, key, host.d.get(key, 0) + 1)
            return 0

        def resolve(txn: Transaction, lock_id: int) -> HostLock | None:
            return reg.locks.lock(f"L{lock_id}") if 1 <= lock_id <= 3 else None

        self.op: FunctionPoint[object, int, int] = FunctionPoint(
            name="rel.op", entry="op", buffer_size=BUFFER, encode=encode, decode=decode,
            encode_result=encode_result, default=default, callables=(put, push, inc),
            lock_resolver=resolve, may_install=any_principal, target_type=object)
        self.event: EventPoint[object, int] = EventPoint(
            name="rel.event", entry="on_event", buffer_size=BUFFER, encode=encode,
            callables=(put, push, inc), lock_resolver=resolve, may_install=any_principal,
            target_type=object)
        reg.declare(self.op)
        reg.declare(self.event)
        quota = Quota(cpu_call_s=cpu_call_s, cpu_total_s=cpu_total_s)
        self.alice = Principal("alice", quota)
        self.bob = Principal("bob", quota)
        self.root = Principal("root", quota, privileged=True)
        self.principals = [self.alice, self.bob, self.root]

    def _setitem(self, txn: Transaction, key: int | str, value: int) -> None:
        d = self.host.d
        if key in d:
            old = d[key]
            d[key] = value

            def undo() -> None:
                d[key] = old
        else:
            d[key] = value

            def undo() -> None:
                del d[key]
        txn.record(self.injector.wrap(undo, "undo"))

    def install(self, source: Source, principal: Principal | None = None,
                target: Any = "t1", **kw: Any) -> Graft:
        return self.registry.install(self.op, source, principal or self.alice, target, **kw)

    @contextmanager
    def patched(self) -> Iterator[None]:
        """Route lock acquisition (``lock``) and every charge of the rig's principals
        (``alloc``) through the injector."""
        mine = {id(p) for p in self.principals}
        with ExitStack() as stack:
            stack.enter_context(self.injector.patch(self.registry.locks, "acquire", "lock"))
            stack.enter_context(self.injector.patch(
                Principal, "charge", "alloc", when=lambda p, *a: id(p) in mine))
            yield

    def snapshot(self) -> dict[str, Any]:
        """Host state, every principal's usage (CPU time excepted: it is never given
        back) and the locks held: what an abort must restore."""
        return {
            "host": self.host.state(),
            "usage": {p.name: usage_of(p) for p in self.principals},
            "locks_held": sorted(lk.name for lk in self.registry.locks.held()),
        }

    def problems(self) -> list[str]:
        """Every broken invariant of the registry and its principals (empty: all hold)."""
        return registry_problems(self.registry, self.principals)

    def close(self) -> None:
        self.registry.close()


def usage_of(p: Principal) -> dict[str, int]:
    u = p.usage.snapshot()
    u.pop("cpu_ns")
    return u


def registry_problems(registry: Registry, principals: list[Principal]) -> list[str]:
    """The invariants of a quiescent registry, as a list of violations.

    - no transaction is current on this thread, and no lock is held;
    - every graft in a dispatch table is live, and every live graft's charges
      (linear memory, kalloc bytes and handles) are exactly what its principal's
      usage says; a principal with no live graft uses nothing.
    """
    out: list[str] = []
    if current() is not None:
        out.append(f"a transaction is still current: {current()!r}")
    held = registry.locks.held()
    if held:
        out.append(f"locks still held: {[lk.name for lk in held]}")
    live = registry.grafts()
    for g in live:
        if g.state != LIVE:
            out.append(f"{g!r} is in a dispatch table but not live")
    for p in principals:
        mine = [g for g in live if g.principal is p]
        want = {
            "memory_bytes": sum(g.mem_charged + g.table_charged for g in mine),
            "kalloc_bytes": sum(len(b) for g in mine for b in g.handles.values()),
            "handles": sum(len(g.handles) for g in mine),
            "locks": 0,
            "log_bytes": p.usage.log_bytes,  # log volume is consumption, never given back
            "undo_entries": 0,  # held only while a transaction is live
        }
        got = usage_of(p)
        if got != want:
            out.append(f"{p.name}: usage {got} != charges of its live grafts {want}")
    return out



# ---- the kernel rig -----------------------------------------------------------------------

BS: Final = params.BLOCK_SIZE

XOR_FILTER: Final = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (i32.const 16) (local.get $i))
        (i32.xor (i32.load8_u (i32.add (i32.const 16) (local.get $i))) (i32.const 0x5a)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    local.get $len))"""

ACCESS_NOP: Final = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_on_access") (result i32) i32.const 0))"""


# Kernel users of the campaigns that are not about time-outs: a generous per-call budget,
# so that no check that expects a commit depends on how fast this machine is today.
RELAXED: Final = Quota(cpu_call_s=1.0)


@contextmanager
def scratch_kernel(workdir: Path | None = None, *, nblocks: int = 256,
                   frames: int = 16) -> Iterator[Kernel]:
    """A kernel on a fresh image in ``workdir`` (a temporary directory if None)."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vino-rel-")))
        k = Kernel.boot(workdir / f"k{next(_IMAGES)}.img", nblocks=nblocks, frames=frames,
                        profile=SSD)
        try:
            yield k
        finally:
            with quiet_undo_log():
                try:
                    k.shutdown()
                except Exception:  # a damaged file system may not unmount: close the device
                    k.device.close()
                    k.registry.close()


_IMAGES: Final = itertools.count()  # image names unique within the process


@contextmanager
def quiet_undo_log() -> Iterator[None]:
    """Silence the undo-failure log while a campaign makes undo steps fail on purpose."""
    logger = logging.getLogger("vino.txn")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def inode_of(k: Kernel, name: str) -> Inode:
    """The inode of file ``name``: the target of ``fs.filter`` and ``fs.access`` grafts."""
    return k.fs.inode(k.fs.stat(name).inum)


def state_diff(want: dict[str, Any], got: dict[str, Any]) -> str:
    """The keys on which two snapshots differ, each with both values."""
    parts = [f"{k}: want {want.get(k)!r}, got {got.get(k)!r}"
             for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)]
    return "; ".join(parts)


# Entry signature and buffer size of each kernel point (docs/ABI.md).
POINT_ABI: Final = {
    "fs.readahead": ("vino_readahead", "", LAYOUTS["fs.readahead"].buffer_size),
    "vm.evict": ("vino_evict", "", LAYOUTS["vm.evict"].buffer_size),
    "sched.pick": ("vino_pick", "", LAYOUTS["sched.pick"].buffer_size),
    "fs.filter": ("vino_filter", "(param $dir i32) (param $len i32)",
                  LAYOUTS["fs.filter"].buffer_size),
    "fs.access": ("vino_on_access", "", LAYOUTS["fs.access"].buffer_size),
}
