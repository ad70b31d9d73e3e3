"""Rights: who may install what, and what an installed graft may touch.

- ``rights_matrix``: every principal kind (root, the owner, a reader, another user)
  x kernel point x target kind (own, the owner's, an open file someone else opened,
  ``GLOBAL``) tries to install a well-behaved graft (``rights_cases`` lists the cases
  that exist, ``RightsWorld`` makes their objects); a refusal must be a
  ``GraftRejected`` that changed nothing. ``expected_rights`` is the rule.
- ``touch_matrix``: what a graft installed on its principal's own object may touch
  (another user's thread, pages, file accesses).
- ``reader_handler_cost``: what a handler on a world-readable file costs its owner,
  and that a reader may not attach one.

Invariant: each case runs against the same ``RightsWorld`` and removes the graft it
installed, so the cases do not see each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vino.errors import GraftRejected
from vino.graft import GLOBAL
from vino.graft.point import U32
from vino.kernel.kernel import Kernel
from vino.kernel.sched import cpu_hog
from vino.testing.rig import (
    BS,
    POINT_ABI,
    RELAXED,
    SPIN,
    inode_of,
    module,
    pattern,
    quiet_undo_log,
    scratch_kernel,
    usage_of,
)
from vino.workloads import write_file

__all__ = [
    "PRINCIPAL_KINDS", "TARGET_KINDS", "RightsCase", "RightsWorld", "TouchCase",
    "benign_graft", "expected_rights", "reader_handler_cost", "rights_cases",
    "rights_matrix", "touch_matrix",
]

PRINCIPAL_KINDS: Final = ("root", "owner", "reader", "other")
TARGET_KINDS: Final = ("own", "owner's", "owner's open", "GLOBAL")


def benign_graft(point: str) -> str:
    """A well-behaved graft for ``point``: the answer the default would often give."""
    entry, params_, _ = POINT_ABI[point]
    answer = "local.get $len" if point == "fs.filter" else "i32.const 0"
    return module([], f'(func (export "{entry}") {params_} (result i32) {answer})')


@dataclass(slots=True, frozen=True)
class RightsCase:
    principal: str  # a PRINCIPAL_KINDS
    point: str
    target: str  # a TARGET_KINDS
    installed: bool
    reason: str  # why not, if not


class RightsWorld:
    """alice owns a world-readable file W and a private file P, an address space and a
    process group. bob is a *reader* (W is readable to him, and he has it open), carol
    the *other* user (P is not readable to her); root; each has objects of their own.

    ``target(kind, point, target_kind)`` is the object a principal of ``kind`` aims
    at: ``own`` (its own file / open of its own file / address space / group),
    ``owner's`` (alice's: W for the reader, P for the other user and root; for alice
    herself bob's world-readable file; for fs.readahead an open of that file *by the
    principal*),
    ``owner's open`` (fs.readahead only: an open file someone else opened), ``GLOBAL``.
    """

    def __init__(self, k: Kernel) -> None:
        self.k = k
        alice, bob, carol = (k.add_user(n, RELAXED) for n in ("alice", "bob", "carol"))
        self.users = {"root": k.root, "owner": alice, "reader": bob, "other": carol}
        self.procs = {kind: k.spawn(u, kind, k.new_group(u, kind)) for kind, u in
                      self.users.items()}
        for kind in self.users:
            name = f"{kind}-own"
            write_file(k, self.procs[kind], name, pattern(2, name))
        for user, name, mode in ((alice, "W", 0o644), (alice, "P", 0o600),
                                 (bob, "bob-W", 0o644)):
            k.fs.create(user, name, mode)
            with k.fs.open(user, name, "w") as f:
                k.fs.write(f, pattern(2, name))
        self.owner_file = {"root": "P", "owner": "bob-W", "reader": "W", "other": "P"}
        self.opens: dict[tuple[str, str], Any] = {}

    def _open(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self.opens:
            self.opens[key] = self.k.fs.open(self.procs[kind], name, "r")
        return self.opens[key]

    def target(self, kind: str, point: str, target_kind: str) -> Any:
        k = self.k
        if target_kind == "GLOBAL":
            return GLOBAL
        if target_kind == "own":
            if point == "fs.readahead":
                return self._open(kind, f"{kind}-own")
            if point in ("fs.filter", "fs.access"):
                return inode_of(k, f"{kind}-own")
            if point == "vm.evict":
                return k.address_space(self.procs[kind])
            return self.procs[kind].group
        owner = "reader" if kind == "owner" else "owner"  # whose object it is
        name = self.owner_file[kind]
        if point == "fs.readahead":
            if target_kind == "owner's open":
                return self._open(owner, name)
            return self._open(kind, name)  # AccessDenied for the other user: no such case
        if point in ("fs.filter", "fs.access"):
            return inode_of(k, name)
        if point == "vm.evict":
            return k.address_space(self.procs[owner])
        return self.procs[owner].group


def rights_cases() -> list[tuple[str, str, str]]:
    """Every (principal kind, point, target kind) that exists: ``owner's open`` only for
    fs.readahead; the other user cannot open alice's private file, so has no open of it."""
    out = []
    for kind in PRINCIPAL_KINDS:
        for point in POINT_ABI:
            for tk in TARGET_KINDS:
                if tk == "owner's open" and point != "fs.readahead":
                    continue
                if (kind, point, tk) == ("other", "fs.readahead", "owner's"):
                    continue
                out.append((kind, point, tk))
    return out


def rights_matrix(workdir: Path | None = None) -> list[RightsCase]:
    """Try every case of ``rights_cases`` with a well-behaved graft; a refused install
    must be a ``GraftRejected`` that changed nothing. Returns what happened."""
    out: list[RightsCase] = []
    with scratch_kernel(workdir, nblocks=512, frames=32) as k:
        world = RightsWorld(k)
        for kind, point, tk in rights_cases():
            user = world.users[kind]
            target = world.target(kind, point, tk)
            before = (k.registry.snapshot(), usage_of(user.principal))
            try:
                g = k.graft(user, point, benign_graft(point), target=target)
            except GraftRejected as exc:
                after = (k.registry.snapshot(), usage_of(user.principal))
                reason = exc.reason if after == before else f"CHANGED STATE: {exc.reason}"
                out.append(RightsCase(kind, point, tk, False, reason))
                continue
            out.append(RightsCase(kind, point, tk, True, ""))
            g.remove()
    return out


@dataclass(slots=True, frozen=True)
class TouchCase:
    principal: str
    point: str
    action: str  # what the graft tried
    outcome: str  # "done" or the abort reason


_LOG_BUFFER: Final = module(["log"], '(func (export "vino_on_access") (result i32)'
                                     " (call $log (i32.const 0) (i32.const 24)) i32.const 0)")


def touch_matrix(workdir: Path | None = None) -> list[TouchCase]:
    """What a graft installed on its principal's own object may touch, per principal
    kind: sched_set_priority on a thread of its own group, and on another user's;
    vm_hint (it can name only pages of its own address space); an fs.access handler
    sees only its own file's accesses (it logs each event's file id)."""
    out: list[TouchCase] = []
    with scratch_kernel(workdir, nblocks=512, frames=16) as k, quiet_undo_log():
        world = RightsWorld(k)
        threads = {kind: k.sched.spawn(world.procs[kind], cpu_hog(), priority=1)
                   for kind in PRINCIPAL_KINDS}
        for kind in PRINCIPAL_KINDS:
            user = world.users[kind]
            victim = "reader" if kind == "owner" else "owner"
            for whose in (kind, victim):
                tid = threads[whose].tid
                g = k.graft(user, "sched.pick", _PRIO_GRAFT.format(tid=tid),
                            target=world.procs[kind].group, replace=True)
                for _ in range(2 * len(PRINCIPAL_KINDS)):  # until its group's turn
                    if g.stats.invocations:
                        break
                    k.sched.run(steps=1)
                changed = threads[whose].priority == 42
                threads[whose].priority = 1
                outcome = (g.aborts[-1].reason.value if g.aborts else
                           "done" if changed else "not consulted")
                who = "own group's thread" if whose == kind else "another user's thread"
                out.append(TouchCase(kind, "sched.pick", f"sched_set_priority({who})", outcome))
                g.remove()
            aspace = k.address_space(world.procs[kind])
            others = {o: dict(k.address_space(world.procs[o]).hints) for o in PRINCIPAL_KINDS
                      if o != kind}
            g = k.graft(user, "vm.evict", _HINT_GRAFT, target=aspace)
            for vpn in range(24):
                aspace.touch(vpn)
            mine = bool(aspace.hints) and not g.aborts
            theirs_same = all(dict(k.address_space(world.procs[o]).hints) == h
                              for o, h in others.items())
            out.append(TouchCase(kind, "vm.evict", "vm_hint(a candidate's vpn)",
                                 "done" if mine and theirs_same else
                                 f"own {mine}, others unchanged {theirs_same}"))
            g.remove()
            aspace.release()
            inode = inode_of(k, f"{kind}-own")
            g = k.graft(user, "fs.access", _LOG_BUFFER, target=inode)
            for name in (f"{kind}-own", "W"):
                with k.fs.open(world.procs["root"], name, "r") as f:
                    k.fs.read(f, BS)
            seen = {U32.unpack_from(line, 0)[0] for line in g.logs}
            out.append(TouchCase(kind, "fs.access", "hear only its own file's accesses",
                                 "done" if seen == {inode.inum} else f"saw inodes {seen}"))
            g.remove()
    return out


_PRIO_GRAFT: Final = """(module
  (import "vino" "sched_set_priority" (func $prio (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_pick") (result i32)
    (drop (call $prio (i32.const {tid}) (i32.const 42))) i32.const 0))"""

_HINT_GRAFT: Final = """(module
  (import "vino" "vm_hint" (func $hint (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32)
    (drop (call $hint (i32.load (i32.const 12)) (i32.const 1))) i32.const 0))"""


def reader_handler_cost(workdir: Path | None = None, blocks: int = 16,
                        spin: int = 8_000_000) -> tuple[float, float, int, bool]:
    """What a handler on alice's world-readable file costs her, and who may attach one.

    Returns alice's read time (ms) of ``blocks`` blocks without and with her *own*
    handler that spins just under its budget, how many of her accesses it heard, and
    whether a *reader* (bob) was refused when he tried to attach the same handler
    (the rule: a file's fs.access handlers are its owner's, since they run inside
    every user's operations on it and hear them)."""
    spinner = module([], '(func (export "vino_on_access") (result i32) (local $i i32) '
                     + SPIN.replace("20000", str(spin)) + " i32.const 0)")
    with scratch_kernel(workdir, nblocks=512, frames=64) as k:
        alice, bob = k.add_user("alice"), k.add_user("bob")  # default quotas
        k.fs.create(alice, "W", 0o644)
        with k.fs.open(alice, "W", "w") as f:
            k.fs.write(f, pattern(blocks))

        def alice_reads() -> float:
            t = time.perf_counter()
            with k.fs.open(alice, "W", "r") as f:
                for _ in range(blocks):
                    k.fs.read(f, BS)
            return (time.perf_counter() - t) * 1e3

        alone = alice_reads()
        try:
            k.graft(bob, "fs.access", spinner, target=inode_of(k, "W"))
            refused = False
        except GraftRejected:
            refused = True
        g = k.graft(alice, "fs.access", spinner, target=inode_of(k, "W"))
        slowed = alice_reads()
        heard = g.stats.commits
    return alone, slowed, heard, refused



def expected_rights(kind: str, point: str, target: str) -> bool:
    """Whether a principal of ``kind`` may install at ``point`` on a ``target`` kind: the
    rule (points.py, proc.py) as a function, for the report's check; the tests hold it
    again as a literal table."""
    if kind == "root":
        return True
    if target in ("GLOBAL", "owner's open"):
        return False
    if target == "own":
        return True
    return point == "fs.readahead" and kind in ("owner", "reader")
