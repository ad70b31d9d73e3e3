"""Fault-injection loops on a scratch kernel: device errors, and faults in kernel points.

The same method as ``vino.testing.loops`` (``fault_loop``: the Nth call at a site
fails, N = 1, 2, ... until a run reaches no fault), on a kernel booted on a fresh
image (``scratch_kernel``):

- ``device_fault_loop``: a filtered file is rewritten and read back while the
  device's Nth read or write raises ``OSError`` (EIO); the error reaches the caller
  unchanged and is never blamed on a graft. ``DeviceFaultTally`` counts the runs
  after which the file system's own invariants did not hold;
- ``sched_fault_loop`` / ``evict_fault_loop``: ``sched.pick``'s and ``vm.evict``'s
  grafts change kernel state through accessors while the Nth accessor call,
  allocation, lock acquisition or undo step fails; the state afterwards is exactly
  what the committed or undone changes give;
- ``kernel_fault_loops``: all of them, as ``vino reliability`` runs them.

Invariant: every run boots its own kernel, so no run sees another's state.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vino.graft import Principal, current
from vino.kernel.errors import InvariantViolation
from vino.kernel.sched import cpu_hog
from vino.sdk.build import sample_path
from vino.testing.faults import InjectedFault, Injector
from vino.testing.loops import MODES, SITES, LoopResult, fault_loop
from vino.testing.rig import (
    ACCESS_NOP,
    BS,
    LIVE,
    RELAXED,
    XOR_FILTER,
    import_line,
    inode_of,
    pattern,
    quiet_undo_log,
    registry_problems,
    scratch_kernel,
    usage_of,
)

__all__ = [
    "DeviceFaultTally", "FaultyDict", "device_fault_loop", "evict_fault_loop",
    "evict_hint_graft", "kernel_fault_loops", "sched_boost_graft", "sched_fault_loop",
]

@dataclass(slots=True)
class DeviceFaultTally:
    """What a device fault left behind, over all runs of a loop (the tests assert that
    the file system's invariants held after every one)."""

    runs: int = 0
    fs_damaged: int = 0  # runs after which fs.check_invariants() failed
    broken: Counter[str] = field(default_factory=Counter)  # which invariant, how often


def device_fault_loop(site: str, mode: str, workdir: Path | None = None,
                      tally: DeviceFaultTally | None = None) -> LoopResult:
    """A filtered file is rewritten and read back (cold) while the device's Nth read
    (``device.read``) or write (``device.write``) raises ``OSError`` (EIO).

    Guaranteed, and checked after every run: the error reaches the caller as the very
    ``OSError`` the device raised (never swallowed, never turned into another error);
    it is never blamed on a graft (every graft still live, no abort recorded); no
    transaction is left current, no lock held, no principal's usage changed; the
    cache's invariants hold; another file's blocks already on the disk read back
    intact. Without a fault the file reads back exactly as written. Counted in
    ``tally``: runs after which the file system's invariants did not hold.
    """
    res = LoopResult("kernel", "filtered write + cold read-back", site, mode)
    data = pattern(6)
    new = pattern(5, "rewrite")[: 4 * BS + BS // 2]  # straddles five blocks
    tail = pattern(3, "append")  # grows the file: new blocks, bitmap and inode writes
    want = data[: BS // 2] + new + data[BS // 2 + len(new):] + tail

    def attempt(n: int) -> list[str]:
        out: list[str] = []
        with scratch_kernel(workdir, frames=8) as k:
            alice = k.add_user("alice", RELAXED)
            proc = k.spawn(alice, "app")
            for name in ("f", "other"):
                k.fs.create(alice, name, 0o600)
            filt = k.graft(alice, "fs.filter", XOR_FILTER, target=inode_of(k, "f"))
            acc = k.graft(alice, "fs.access", ACCESS_NOP, target=inode_of(k, "f"))
            with k.fs.open(proc, "f", "w") as f:
                k.fs.write(f, data)
            with k.fs.open(proc, "other", "w") as f:
                k.fs.write(f, pattern(4, "other"))
            k.fs.sync()  # both files are on the disk, committed
            k.cache.invalidate(k.device)
            of = k.fs.open(proc, "f", "rw")
            ra = k.graft(alice, "fs.readahead", sample_path("readahead_stride.wasm"), target=of)
            grafts = [filt, acc, ra]
            usage0 = usage_of(alice.principal)
            raised: BaseException | None = None
            got = b""
            with ExitStack() as stack:
                stack.enter_context(inj.patch(k.device, "read_into", "device.read"))
                stack.enter_context(inj.patch(k.device, "write_blocks", "device.write"))
                try:
                    k.fs.seek(of, BS // 2)
                    k.fs.write(of, new)
                    k.fs.seek(of, len(data))
                    k.fs.write(of, tail)
                    k.fs.fsync(of)  # data, log, install: every kind of write
                    k.cache.invalidate(k.device)
                    k.fs.seek(of, 0)
                    got = k.fs.read(of, len(want) + 1)
                except BaseException as exc:
                    raised = exc
            inj.disarm()
            fired = sum(inj.fired.values())
            if fired:
                if not isinstance(raised, InjectedFault):
                    out.append(f"the device error reached the caller as {raised!r}")
            else:
                if raised is not None:
                    out.append(f"no fault fired but the operation raised {raised!r}")
                elif got != want:
                    out.append("no fault fired but the file did not read back as written")
            if current() is not None:
                out.append("a transaction is still current")
            if k.registry.locks.held():
                out.append(f"locks held: {k.registry.locks.held()}")
            for g in grafts:
                if g.state != LIVE or g.aborts:
                    out.append(f"{g.point.name} graft blamed for a device error: "
                               f"{g.state}, {list(g.aborts)}")
            if usage_of(alice.principal) != usage0:
                out.append("a principal's usage changed")
            try:
                k.cache.check_invariants()
            except InvariantViolation as exc:
                out.append(f"cache: {exc}")
            try:
                with k.fs.open(proc, "other", "r") as f:
                    if k.fs.read(f, 5 * BS) != pattern(4, "other"):
                        out.append("another file's data changed")
                k.fs.check_invariants()
            except InvariantViolation as exc:
                if tally is not None:
                    tally.fs_damaged += 1
                    tally.broken[re.sub(r"\d+", "N", str(exc))] += 1
            except Exception as exc:
                out.append(f"after the fault: {exc!r}")
            if fired:
                res.reasons[type(raised).__name__] += 1
            if tally is not None:
                tally.runs += 1
        return out

    inj = Injector()
    return fault_loop(res, inj, attempt)



def _kernel_graft(imports: list[str], entry: str, loop_body: str, n_expr: str, end: str,
                  row: int, extra_imports: str) -> str:
    row_at = f"(i32.add (i32.const 8) (i32.mul (local.get $i) (i32.const {row})))"
    return "\n".join((
        "(module",
        extra_imports,
        *(import_line(i) for i in imports),
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32) i32.const 0)',
        f'  (func (export "{entry}") (result i32) (local $i i32) (local $n i32)',
        "    (drop (call $lock (i32.const 1)))",
        "    (drop (call $kalloc (i32.const 32)))",
        f"    (local.set $n {n_expr})",
        "    (block $done (loop $next",
        "      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))",
        "      " + loop_body.replace("ROW", row_at),
        "      (local.set $i (i32.add (local.get $i) (i32.const 1)))",
        "      (br $next)))",
        f"    {end})",
        ")",
    ))


def sched_boost_graft(end: str) -> str:
    """sched.pick: lock, allocate, raise every candidate's priority to 9, then ``end``."""
    return _kernel_graft(
        ["lock", "kalloc"], "vino_pick",
        "(drop (call $prio (i32.load ROW) (i32.const 9)))", "(i32.load (i32.const 0))", end,
        32, '(import "vino" "sched_set_priority" (func $prio (param i32 i32) (result i32)))')


def evict_hint_graft(end: str) -> str:
    """vm.evict: lock, allocate, hint the first three candidates important, then ``end``."""
    return _kernel_graft(
        ["lock", "kalloc"], "vino_evict",
        "(drop (call $hint (i32.load (i32.add ROW (i32.const 4))) (i32.const 1)))",
        "(select (i32.const 3) (i32.load (i32.const 0))"
        " (i32.gt_u (i32.load (i32.const 0)) (i32.const 3)))", end,
        24, '(import "vino" "vm_hint" (func $hint (param i32 i32) (result i32)))')


class FaultyDict(dict[Any, Any]):
    """A dict whose stores pass the ``accessor`` site and whose deletions (the undo of a
    new key) pass ``undo``: put in place of host state a graft-callable changes."""

    def __init__(self, inj: Injector) -> None:
        super().__init__()
        self.inj = inj

    def __setitem__(self, key: Any, value: Any) -> None:
        self.inj.hit("accessor")
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.inj.hit("undo")
        super().__delitem__(key)


def sched_fault_loop(site: str, mode: str, end: str = "i32.const 0",
                     workdir: Path | None = None) -> LoopResult:
    """sched.pick's graft raises three threads' priorities; the Nth ``site`` call fails.
    ``accessor`` counts every ``Scheduler.set_priority`` call, the undo's included, so
    later N are faults during abort. With ``end`` = ``unreachable`` the graft always
    traps after its changes. Expected: the dispatch happens; each priority is exactly
    what undoing every change but the failed undo steps gives (all 9 on commit)."""
    trap = end == "unreachable"
    res = LoopResult("kernel", "sched.pick boosts 3 threads" + (", then traps" if trap else ""),
                     site, mode)
    inj = Injector()

    def attempt(n: int) -> list[str]:
        out: list[str] = []
        with scratch_kernel(workdir) as k, quiet_undo_log():
            alice = k.add_user("alice", RELAXED)
            group = k.new_group(alice, "g")
            proc = k.spawn(alice, "app", group)
            threads = [k.sched.spawn(proc, cpu_hog(), priority=p) for p in (1, 2, 3)]
            g = k.graft(alice, "sched.pick", sched_boost_graft(end), target=group)
            before = {t.tid: t.priority for t in threads}
            with ExitStack() as stack:
                stack.enter_context(inj.patch(k.sched, "set_priority", "accessor"))
                stack.enter_context(inj.patch(k.registry.locks, "acquire", "lock"))
                stack.enter_context(inj.patch(Principal, "charge", "alloc",
                                              when=lambda p, *a: p is alice.principal))
                made = k.sched.run(steps=1)
            persistent = mode == "persistent"

            def fails(call: int) -> bool:
                return site == "accessor" and (call == n or (persistent and call >= n))

            early = site != "accessor" and n <= (3 if site == "alloc" else 1)  # before any
            want = _replay_priorities(before, fails, trap or early)
            got = {t.tid: t.priority for t in threads}
            if made != 1:
                out.append(f"{made} dispatches made, want 1")
            if got != want:
                out.append(f"priorities {got}, want {want}")
            aborted = bool(g.aborts)
            if aborted:
                res.reasons[g.aborts[-1].reason.value] += 1
                host = g.aborts[-1].host_fault  # the kernel's fault: the graft is kept
                if g.state == LIVE and not host:
                    out.append("the aborted graft was not removed")
                if g.state != LIVE and host:
                    out.append("the graft was removed for the kernel's own fault")
            out.extend(registry_problems(k.registry, [alice.principal]))
            try:
                k.check_invariants()
            except InvariantViolation as exc:
                out.append(str(exc))
        return out

    return fault_loop(res, inj, attempt)


def _replay_priorities(before: dict[int, int], fails: Callable[[int], bool], aborts: bool
                       ) -> dict[int, int]:
    prio = dict(before)
    applied: list[tuple[int, int]] = []
    call = 0
    for tid in before:
        call += 1
        if fails(call):
            aborts = True
            break
        applied.append((tid, prio[tid]))
        prio[tid] = 9
    if aborts:
        for tid, old in reversed(applied):
            call += 1
            if not fails(call):
                prio[tid] = old
    return prio


def evict_fault_loop(site: str, mode: str, end: str = "i32.const 0",
                     workdir: Path | None = None) -> LoopResult:
    """vm.evict's graft takes its address space's lock, allocates and hints three pages
    important before answering; the Nth ``site`` call fails (``undo``: the deletion of
    a hint while aborting; use ``end`` = an invalid index to abort every time).
    Expected: the eviction completes (with the default after an abort); every page
    reads back as written; the hints are exactly none (aborted) or exactly the three
    (committed), or, for undo faults, exactly the hints whose deletion failed."""
    invalid = end != "i32.const 0"
    res = LoopResult("kernel", "vm.evict hints 3 pages" + (", then answers out of range"
                                                           if invalid else ""), site, mode)
    inj = Injector()

    def attempt(n: int) -> list[str]:
        out: list[str] = []
        with scratch_kernel(workdir, frames=16) as k, quiet_undo_log():
            alice = k.add_user("alice", RELAXED)
            aspace = k.address_space(k.spawn(alice, "app"))
            aspace.hints = FaultyDict(inj)
            g = k.graft(alice, "vm.evict", evict_hint_graft(end), target=aspace)
            pages: dict[int, bytes] = {}
            with ExitStack() as stack:
                stack.enter_context(inj.patch(k.registry.locks, "acquire", "lock"))
                stack.enter_context(inj.patch(Principal, "charge", "alloc",
                                              when=lambda p, *a: p is alice.principal))
                vpn = 0
                while g.stats.invocations == 0 and vpn < 64:
                    pages[vpn] = f"page {vpn} ".encode() * 8
                    aspace.write(vpn, pages[vpn])
                    vpn += 1
            hinted = dict(aspace.hints)
            aborted = bool(g.aborts)
            inj.disarm()  # reading the pages back evicts again: no faults there
            if g.stats.invocations != 1:
                out.append(f"the graft ran {g.stats.invocations} times, want 1")
            for v, content in pages.items():
                if aspace.read(v)[: len(content)] != content:
                    out.append(f"page {v} lost its content")
            if aborted:
                res.reasons[g.aborts[-1].reason.value] += 1
                undo_failed = inj.fired["undo"]
                if site != "undo" and hinted:
                    out.append(f"aborted, yet hints remain: {hinted}")
                if site == "undo" and len(hinted) != undo_failed:
                    out.append(f"{undo_failed} hint deletions failed, {hinted} remain")
            elif len(hinted) != 3:
                out.append(f"committed, yet hints are {hinted}")
            out.extend(registry_problems(k.registry, [alice.principal]))
            try:
                k.check_invariants()
            except InvariantViolation as exc:
                out.append(str(exc))
            aspace.release()
        return out

    return fault_loop(res, inj, attempt)


def kernel_fault_loops(workdir: Path | None = None,
                       tally: DeviceFaultTally | None = None) -> list[LoopResult]:
    """Every kernel-level loop: device faults under a filtered file; faults in
    sched.pick's and vm.evict's accessors, allocations and locks, and in their undo."""
    out = [device_fault_loop(site, mode, workdir, tally)
           for site in ("device.read", "device.write") for mode in MODES]
    for mode in MODES:
        out += [sched_fault_loop(site, mode, workdir=workdir) for site in SITES]
        out.append(sched_fault_loop("accessor", mode, "unreachable", workdir))
        out += [evict_fault_loop(site, mode, workdir=workdir) for site in SITES]
        out.append(evict_fault_loop("undo", mode, "i32.const 9999", workdir))
    return out

