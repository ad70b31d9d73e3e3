"""The red-team suite's harness: take a snapshot, run the attack, prove nothing changed.

Every attack in ``tests/attacks`` has the same shape:

    before = arena.snapshot()              # host state, every principal's usage, leaks
    g = arena.install(HOSTILE)             # the tenant's graft
    got = <the operation the graft is on>  # must complete, with the default's answer
    arena.assert_survived(before, g, AbortReason.X)

``assert_survived`` checks, in this order: the graft was aborted for exactly that
reason and removed (out of every dispatch table, its store dropped); the host
state, every principal's usage and the leak counters are exactly as before;
lifetime totals (CPU time, log volume) only grew; no transaction is left current.
The leak counters (``Snapshot``) cover every table a graft can make the host
grow: locks held and lock-table entries, live ``kalloc`` handles, undo entries of
the enclosing host transaction, installed grafts and the threads of the process.

Two arenas:
- ``Tenancy`` (``tenancy()``): a registry with a function point ``atk.pick`` and an
  event point ``atk.event`` over plain host state (a dict and a list), so "the
  state" is a value compared exactly (the points of ``vino.testing.world``). Its
  graft-callables are the hooks a tenant can pull: accessors (``put``, ``push``),
  a read (``get``), re-entry into the points (``pick_for``, ``fire``), host code
  that removes or replaces the calling graft (``remove_me``, ``replace_me``) and a
  message to another graft (``tell``). Lock ids 1..3 are shared locks ``L1``..``L3``; ids from
  ``RECORD_LOCKS`` on are one lock per record (``R<id>``), names without end.
  Principals ``alice`` and ``bob`` (tenants) and ``root``.
- ``KernelArena`` (``kernel_arena(tmp_path)``): a booted reference kernel with two
  users; its state is what a user can observe (files' bytes, priorities, hints,
  reference bits, residency) plus ``check_invariants``.

Attacks that can kill a process (native stack, signals, memory) run in a child
process with a time bound: ``in_child(code, timeout_s)`` runs Python source in a
fresh interpreter (this directory and ``src`` importable) and returns its exit
status and output; the parent asserts on them, so a dead child fails the test
instead of killing the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vino.errors import AbortReason, GraftAborted
from vino.graft import (
    I32,
    Graft,
    Principal,
    Registry,
    Transaction,
    graft_callable,
)
from vino.graft.hostapi import Signature
from vino.graft.loader import Source
from vino.graft.point import U32
from vino.graft.txn import thread_state
from vino.testing import world
from vino.testing.rig import inode_of
from vino.testing.world import (
    BUFFER,
    CALL_BUDGET_S,
    DEFAULT_ANSWER,
    LOCK_TIMEOUT_S,
    ROOT_KEYS,
    TARGET,
    Host,
    declare_points,
    tenant,
)

__all__ = [
    "BUFFER",
    "CALL_BUDGET_S",
    "DEFAULT_ANSWER",
    "LIFETIME",
    "LOCK_TIMEOUT_S",
    "RECORD_LOCKS",
    "ROOT_KEYS",
    "TARGET",
    "TENANCY_SIGNATURES",
    "AbortReason",
    "Arena",
    "ChildResult",
    "Host",
    "KernelArena",
    "Snapshot",
    "Tenancy",
    "Tenant",
    "handler",
    "import_line",
    "in_child",
    "module",
    "pick",
    "pick_returning",
    "with_message",
]

HERE: Final = Path(__file__).resolve().parent
SRC: Final = HERE.parent.parent / "src"

RECORD_LOCKS: Final = 100  # lock ids from here on name one record's lock each
LIFETIME: Final = ("cpu_ns", "log_bytes")  # usage that is consumed, never given back
COMPILE_TARGET: Final = "compile"  # root's target for compiling ahead (compile_beforehand)


# ---- WAT ---------------------------------------------------------------------------------

TENANCY_SIGNATURES: Final[dict[str, Signature]] = {  # the Tenancy's own graft-callables
    "fire": ((I32, I32), (I32,)), "remove_me": ((), (I32,)), "replace_me": ((), (I32,)),
    "tell": ((I32, I32), (I32,)),
}


def import_line(name: str, sigs: dict[str, Signature] | None = None) -> str:
    """``(import "vino" "name" (func $name ...))`` with the callable's exact type."""
    return world.import_line(name, {**TENANCY_SIGNATURES, **(sigs or {})})


def module(imports: list[str], *fields: str, memory_pages: int = 1,
           sigs: dict[str, Signature] | None = None) -> str:
    """A graft: the named imports, ``memory``, ``vino_buffer`` at 0, then ``fields``."""
    return world.module(imports, *fields, memory_pages=memory_pages,
                        sigs={**TENANCY_SIGNATURES, **(sigs or {})})


def pick(body: str, imports: list[str] | None = None, *extra: str, **kw: Any) -> str:
    """An ``atk.pick`` graft whose entry is ``body``."""
    return module(imports or [], *extra, f'  (func (export "pick") (result i32)\n    {body})',
                  **kw)


def handler(body: str, imports: list[str] | None = None, *extra: str, **kw: Any) -> str:
    """An ``atk.event`` graft whose handler is ``body``."""
    return module(imports or [], *extra,
                  f'  (func (export "on_event") (result i32)\n    {body})', **kw)


def with_message(body: str) -> str:
    """A ``vino_message`` export whose body is ``body`` (to pass as an extra field)."""
    return f'  (func (export "vino_message") (param $len i32) (result i32)\n    {body})'


# ---- the snapshot --------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """Everything an aborted graft must leave as it was, as plain data."""

    host: Any
    points: dict[str, Any]  # every dispatch table and handler list
    usage: dict[str, dict[str, int]]  # every principal, lifetime totals excepted
    lifetime: dict[str, dict[str, int]]  # cpu_ns, log_bytes: may only grow
    locks_held: list[str]
    lock_entries: int  # entries in the lock table (held or not)
    handles: int  # live kalloc blocks over every installed graft
    undo: int  # undo entries of the live host transactions on this thread
    grafts: int
    threads: int

    def comparable(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "lifetime"}


def _undo_entries() -> int:
    n = 0
    t = thread_state().txn
    while t is not None:
        n += len(t.undo or ())
        t = t.parent
    return n


class Arena:
    """A registry, the principals whose usage is watched, and the host's state."""

    def __init__(self, registry: Registry, principals: list[Principal],
                 host_state: Callable[[], Any]) -> None:
        self.registry = registry
        self.principals = principals
        self.host_state = host_state

    def snapshot(self) -> Snapshot:
        reg = self.registry
        grafts = reg.grafts()
        usage = {p.name: p.usage.snapshot() for p in self.principals}
        return Snapshot(
            host=self.host_state(),
            points=reg.snapshot()["points"],
            usage={n: {k: v for k, v in u.items() if k not in LIFETIME}
                   for n, u in usage.items()},
            lifetime={n: {k: u[k] for k in LIFETIME} for n, u in usage.items()},
            locks_held=sorted(lk.name for lk in reg.locks.held()),
            lock_entries=len(reg.locks),
            handles=sum(len(g.handles) for g in grafts),
            undo=_undo_entries(),
            grafts=len(grafts),
            threads=threading.active_count(),
        )

    def assert_unchanged(self, before: Snapshot) -> None:
        """State, usage and leak counters exactly as ``before``; lifetime totals only grew."""
        after = self.snapshot()
        assert after.comparable() == before.comparable()
        for name, totals in after.lifetime.items():
            for k, v in totals.items():
                assert v >= before.lifetime[name][k], (name, k)

    def assert_survived(self, before: Snapshot, g: Graft, reason: AbortReason,
                        detail: str | None = None) -> None:
        """``g`` aborted for ``reason`` (its detail containing ``detail``), removed, and
        everything exactly as ``before`` (taken before ``g`` was installed)."""
        assert g.removal is not None, f"{g!r} was not removed; aborts: {list(g.aborts)}"
        assert g.removal.reason is reason, g.removal
        assert [a.reason for a in g.aborts] == [reason], list(g.aborts)
        if detail is not None:
            assert detail in g.removal.detail, g.removal.detail
        assert g.state == "removed"
        assert g.instance is None  # the store is dropped, never reused
        assert g.handles == {} and g.mem_charged == 0 and g.table_charged == 0
        assert g not in self.registry.grafts()
        self.assert_unchanged(before)
        self.assert_no_live_work()

    def assert_no_live_work(self) -> None:
        """No graft transaction current on this thread, and every live graft's charges
        add up to exactly its principal's usage."""
        t = thread_state().txn
        while t is not None:
            assert t.graft is None, f"a graft transaction is still current: {t!r}"
            t = t.parent
        live = self.registry.grafts()
        for p in self.principals:
            mine = [g for g in live if g.principal is p]
            want = {"memory_bytes": sum(g.mem_charged + g.table_charged for g in mine),
                    "kalloc_bytes": sum(len(b) for g in mine for b in g.handles.values()),
                    "handles": sum(len(g.handles) for g in mine)}
            got = {k: getattr(p.usage, k) for k in want}
            assert got == want, f"{p.name}: usage {got} != its live grafts' charges {want}"


# ---- the tenancy: a generic host with tenants ----------------------------------------

class Tenancy(Arena):
    """``atk.pick`` and ``atk.event`` over a ``Host``; tenants alice and bob, and root.

    The points are ``vino.testing.world``'s (``declare_points``); the tenancy adds
    the hooks a tenant can pull beyond the accessors: ``fire``, ``remove_me``,
    ``replace_me`` and ``tell``, all on both points, and one lock per record.
    """

    def __init__(self, *, remove_after: int = 1, lock_timeout_s: float = LOCK_TIMEOUT_S,
                 alice_quota: dict[str, Any] | None = None,
                 bob_quota: dict[str, Any] | None = None) -> None:
        registry = Registry(lock_timeout_s=lock_timeout_s, remove_after=remove_after)
        self.host = host = Host()
        self.replacement: Source = pick_returning(DEFAULT_ANSWER + 1)

        @graft_callable("fire", *TENANCY_SIGNATURES["fire"])
        def fire(txn: Transaction, target_no: int, x: int) -> int:
            return self.event(f"t{target_no}", x)

        @graft_callable("remove_me", *TENANCY_SIGNATURES["remove_me"])
        def remove_me(txn: Transaction) -> int:
            txn.calling_graft.remove()
            return 0

        @graft_callable("replace_me", *TENANCY_SIGNATURES["replace_me"])
        def replace_me(txn: Transaction) -> int:
            g = txn.calling_graft
            registry.install(g.point, self.replacement, g.principal, g.target, replace=True)
            return 0

        @graft_callable("tell", *TENANCY_SIGNATURES["tell"])
        def tell(txn: Transaction, target_no: int, x: int) -> int:
            g = self.pick.graft_for(f"t{target_no}")
            if g is None:
                return -1
            try:
                return g.send(U32.pack(x & 0xFFFFFFFF))
            except GraftAborted:
                return -1

        self.pick, self.event = declare_points(
            registry, host, "atk", extra=(fire, remove_me, replace_me, tell),
            record_locks=RECORD_LOCKS, target_type=str)
        self.alice = tenant("alice", alice_quota)
        self.bob = tenant("bob", bob_quota)
        self.root = tenant("root", privileged=True)
        super().__init__(registry, [self.alice, self.bob, self.root], host.state)

    def install(self, source: Source, principal: Principal | None = None,
                target: Any = TARGET, **kw: Any) -> Graft:
        return self.registry.install(self.pick, source, principal or self.alice, target, **kw)

    def handle(self, source: Source, principal: Principal | None = None,
               target: Any = TARGET, **kw: Any) -> Graft:
        return self.registry.install(self.event, source, principal or self.alice, target, **kw)

    def compile_beforehand(self, source: Source) -> None:
        """Compile ``source`` before any tenant's CPU quota is counted: root installs it
        on a target of its own and removes it; the sandbox keeps the compiled module and
        the loader its checks, so a tenant's install of the same module is charged only
        its own part (parsing the text, ``vino_buffer``), not the compile. For attacks
        whose quota is meant for calls: on a slow build (under valgrind's memcheck)
        compiling a small graft took 49 ms of CPU, more than such a quota."""
        self.registry.remove(self.install(source, self.root, COMPILE_TARGET))

    def attack(self, source: Source, reason: AbortReason, *, x: int = 5,
               detail: str | None = None, **kw: Any) -> Graft:
        """Install ``source`` on alice's target, call ``atk.pick`` once and prove that the
        call got the default's answer on its own input and that nothing changed."""
        before = self.snapshot()
        g = self.install(source, **kw)
        calls = self.host.default_calls
        assert self.pick(TARGET, x) == DEFAULT_ANSWER
        assert self.host.default_calls > calls
        assert self.host.default_inputs[-1] == x
        self.assert_survived(before, g, reason, detail)
        return g

    def close(self) -> None:
        self.registry.close()


def pick_returning(n: int, imports: list[str] | None = None) -> str:
    """A well-behaved ``atk.pick`` graft answering ``n``."""
    return pick(f"i32.const {n}", imports)


# ---- processes that may die --------------------------------------------------------------

@dataclass(frozen=True)
class ChildResult:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool

    def result(self) -> Any:
        """The JSON value the child printed on its last ``RESULT `` line."""
        lines = [ln for ln in self.stdout.splitlines() if ln.startswith("RESULT ")]
        assert lines, f"child printed no RESULT (rc {self.returncode}): {self.stderr[-2000:]}"
        return json.loads(lines[-1][len("RESULT "):])


def in_child(code: str, timeout_s: float = 60.0) -> ChildResult:
    """Run ``code`` in a fresh interpreter; a crash or a hang is a result, not our death.

    The child can ``import harness`` and ``vino``; it reports with ``report(value)``
    (defined for it: prints ``RESULT <json>``). The time bound kills a hung child.
    """
    prelude = ("import json\n"
               "def report(value):\n"
               "    print('RESULT ' + json.dumps(value), flush=True)\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(SRC), env.get("PYTHONPATH", "")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                              text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return ChildResult(-9, out, err, True)
    return ChildResult(proc.returncode, proc.stdout, proc.stderr, False)


# ---- the reference kernel ---------------------------------------------------------------

@dataclass
class Tenant:
    """One kernel user with something of each kind a graft can target."""

    user: Any  # vino.kernel.proc.User
    proc: Any  # a Process of the user, in ``group``
    group: Any  # the user's ProcessGroup
    aspace: Any  # the process's AddressSpace, a few pages written
    threads: list[Any]  # three threads of ``group``
    file: str  # a file the user owns


class KernelArena(Arena):
    """A booted kernel with tenants alice and bob; the state is what they can observe."""

    def __init__(self, workdir: Path, *, frames: int = 32) -> None:
        from vino.kernel.kernel import Kernel
        from vino.kernel.sched import Cpu, Wait

        self.image = workdir / "attack.img"
        self.k = k = Kernel.boot(self.image, nblocks=512, frames=frames)
        self.tenants: dict[str, Tenant] = {}
        for name in ("alice", "bob"):
            user = k.add_user(name)
            group = k.new_group(user, name)
            proc = k.spawn(user, f"{name}-app", group)
            aspace = k.address_space(proc)
            for v in range(6):
                aspace.write(v, f"{name} page {v}".encode())
            threads = [k.sched.spawn(proc, [Cpu(2_000_000), Wait(1_000_000)] * 3, priority=i)
                       for i in range(3)]
            fname = f"{name}.dat"
            k.fs.create(user, fname, 0o600)
            with k.fs.open(proc, fname, "w") as f:
                k.fs.write(f, f"{name}'s data ".encode() * 700)
            self.tenants[name] = Tenant(user, proc, group, aspace, threads, fname)
        users = [t.user for t in self.tenants.values()]
        super().__init__(k.registry, [u.principal for u in (*users, k.root)], self.state)

    def state(self) -> dict[str, Any]:
        """Frames (owner, flags, bytes), hints, priorities, and the disk image's bytes."""
        k = self.k
        frames = [(f.index, f.block, f.aspace.owner.pid if f.aspace else None, f.vpn,
                   f.referenced, f.dirty, f.prefetched, bytes(f.data))
                  for f in k.cache._frames]
        k.check_invariants()
        return {
            "frames": frames,
            "hints": {n: dict(t.aspace.hints) for n, t in self.tenants.items()},
            "priorities": sorted((t.tid, t.priority) for t in k.sched.threads),
            "image": self.image.read_bytes(),
        }

    def inode(self, name: str) -> Any:
        """The inode of file ``name`` (the target of ``fs.filter`` and ``fs.access``)."""
        return inode_of(self.k, name)

    def close(self) -> None:
        self.k.shutdown()
