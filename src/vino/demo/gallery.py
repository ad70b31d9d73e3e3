"""Part 2 of ``vino demo``: a gallery of misbehaving grafts, and the checks they are held to.

``gallery(python)`` lists every ``Attack``: a hostile graft (WAT, or with
``python`` also Python, from ``vino/sdk/hostile``), the point it is installed
at, the abort reason expected (or ``"rejected"`` at install), and ``run(k)``,
which installs it on a fresh kernel, runs the operation it is attached to and
says whether the state is intact. ``part2(workdir, checks, out)`` runs them all,
one fresh kernel each, and records one check per attack: the graft was aborted
for the expected reason and removed (or rejected with nothing left behind), the
operation completed with the right answer, and every kernel invariant holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vino.console import Output
from vino.errors import GraftRejected
from vino.graft import Graft, Quota
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.kernel.sched import Cpu, Wait
from vino.report import Checks
from vino.workloads import booted, hostile_path, pattern, write_file

__all__ = ["Attack", "attack_lock_hog", "gallery", "part2"]



@dataclass(slots=True)
class Attack:
    name: str
    point: str
    expect: str  # the abort reason, or "rejected"
    run: Callable[[Kernel], tuple[Graft | None, bool, str]]  # -> graft, state intact, note


def _file_with_data(k: Kernel, nblocks: int = 16) -> tuple[Any, Any, bytes]:
    alice = k.add_user("mallory")
    proc = k.spawn(alice, "victim")
    data = pattern(nblocks)
    write_file(k, proc, "data", data)
    return alice, proc, data


def _readback(k: Kernel, proc: Any, data: bytes) -> bool:
    with k.fs.open(proc, "data", "r") as f:
        return k.fs.read(f, len(data)) == data


def attack_readahead(wat: str) -> Callable[[Kernel], tuple[Graft | None, bool, str]]:
    def run(k: Kernel) -> tuple[Graft | None, bool, str]:
        user, proc, data = _file_with_data(k)
        with k.fs.open(proc, "data", "r") as f:
            g = k.graft(user, "fs.readahead", hostile_path(wat), target=f)
            ok = k.fs.read(f, len(data)) == data
        return g, ok and _readback(k, proc, data), "file reads back intact"
    return run


def attack_filter(wat: str) -> Callable[[Kernel], tuple[Graft | None, bool, str]]:
    def run(k: Kernel) -> tuple[Graft | None, bool, str]:
        user, proc, data = _file_with_data(k, 2)
        extra = b"written while the filter misbehaves" * 50
        with k.fs.open(proc, "data", "rw") as f:
            g = k.graft(user, "fs.filter", hostile_path(wat), target=f.inode)
            k.fs.seek(f, len(data))
            try:
                k.fs.write(f, extra)
                refused = False
            except FilterUnavailable:  # fails closed: the identity never stands in
                refused = True
            k.unseal(user, f.inode)  # the owner acts
        return (g, refused and _readback(k, proc, data),
                "write refused, nothing of it stored; the file as before")
    return run


def attack_evict(wat: str, quota: Quota | None = None
                 ) -> Callable[[Kernel], tuple[Graft | None, bool, str]]:
    def run(k: Kernel) -> tuple[Graft | None, bool, str]:
        user = k.add_user("mallory", quota)
        aspace = k.address_space(k.spawn(user, "hog"))
        for v in range(8):
            aspace.write(v, f"page {v}".encode())
        before = user.principal.usage.snapshot()
        g = k.graft(user, "vm.evict", hostile_path(wat), target=aspace)
        for v in range(100, 100 + k.cache.nframes + 8):
            aspace.touch(v)
        ok = all(aspace.read(v).startswith(f"page {v}".encode()) for v in range(8))
        after = user.principal.usage.snapshot()
        same = {x: after[x] for x in after if x != "cpu_ns"} == {
            x: before[x] for x in before if x != "cpu_ns"}
        return g, ok and same, "pages keep their contents; usage back to before"
    return run


def attack_sched_other_group(k: Kernel) -> tuple[Graft | None, bool, str]:
    bob = k.add_user("bob")
    bob_group = k.new_group(bob, "bob")
    victim = k.sched.spawn(k.spawn(bob, "b", bob_group), [Cpu(1_000_000)])
    mallory = k.add_user("mallory")
    group = k.new_group(mallory, "m")
    proc = k.spawn(mallory, "m", group)
    for _ in range(3):
        k.sched.spawn(proc, [Cpu(1_000_000), Wait(1_000_000), Cpu(1_000_000)])
    prio = victim.priority
    src = hostile_path("sched_other_group").read_text().replace(
        "(i32.const 1) (i32.const 99)", f"(i32.const {victim.tid}) (i32.const 99)")
    g = k.graft(mallory, "sched.pick", src, target=group, name="sched_other_group")
    k.sched.run(until_ns=k.clock.now_ns() + 50_000_000)
    return g, victim.priority == prio, "the other user's thread keeps its priority"


def attack_sched_trap(k: Kernel) -> tuple[Graft | None, bool, str]:
    mallory = k.add_user("mallory")
    group = k.new_group(mallory, "m")
    proc = k.spawn(mallory, "m", group)
    threads = [k.sched.spawn(proc, [Cpu(2_000_000)], priority=i) for i in range(4)]
    before = [t.priority for t in threads]
    g = k.graft(mallory, "sched.pick", hostile_path("sched_trap_after_boost"), target=group)
    k.sched.run(until_ns=k.clock.now_ns() + 50_000_000)
    return g, [t.priority for t in threads] == before, "every priority restored"


def attack_lock_hog(k: Kernel, name: str = "sched_lock_hog") -> tuple[Graft | None, bool, str]:
    mallory = k.add_user("mallory", Quota(cpu_call_s=5.0))
    group = k.new_group(mallory, "m")
    proc = k.spawn(mallory, "m", group)
    for _ in range(2):
        k.sched.spawn(proc, [Cpu(1_000_000)])
    g = k.graft(mallory, "sched.pick", hostile_path(name), target=group)
    lock = k.registry.locks.lock(f"pgrp:{group.pgid}")
    waited: list[float] = []

    def waiter() -> None:
        while lock.holder is None and g.state == "live":
            time.sleep(0.0005)
        t = time.perf_counter()
        with k.registry.locks.hold(lock, timeout_s=k.registry.locks.timeout_s):
            waited.append(time.perf_counter() - t)

    th = threading.Thread(target=waiter)
    th.start()
    k.sched.run(until_ns=k.clock.now_ns() + 10_000_000)
    th.join(5.0)
    ok = bool(waited) and not th.is_alive() and lock.holder is None
    return g, ok, f"waiter got the lock after {waited[0] * 1e3:.0f} ms" if waited else "no lock"


def attack_handle_leak(k: Kernel) -> tuple[Graft | None, bool, str]:
    user, proc, data = _file_with_data(k, 4)
    before = user.principal.usage.snapshot()
    with k.fs.open(proc, "data", "r") as f:
        g = k.graft(user, "fs.access", hostile_path("access_handle_leak"), target=f.inode)
        ok = k.fs.read(f, len(data)) == data
    after = user.principal.usage.snapshot()
    freed = after["handles"] == before["handles"] and after["kalloc_bytes"] == 0
    return g, ok and freed, "read intact; every handle freed"


def attack_forbidden_import(k: Kernel) -> tuple[Graft | None, bool, str]:
    user, proc, _ = _file_with_data(k, 1)
    before = k.registry.snapshot()
    with k.fs.open(proc, "data", "r") as f:
        try:
            k.graft(user, "fs.readahead", hostile_path("forbidden_import"), target=f)
        except GraftRejected as exc:
            return None, k.registry.snapshot() == before, exc.reason
    return None, False, "was accepted"


def gallery(python: bool = False) -> list[Attack]:
    """Every attack; with ``python``, also the hostile grafts written in Python."""
    small = Quota(memory_bytes=2 << 20)
    in_python = [
        Attack("Python: loops forever", "fs.readahead", "timeout",
               attack_readahead("readahead_loop.py")),
        Attack("Python: recurses forever", "fs.readahead", "trap",
               attack_readahead("readahead_recurse.py")),
        Attack("Python: answers past the file", "fs.readahead", "invalid_result",
               attack_readahead("readahead_out_of_range.py")),
        Attack("Python: a 32 MB local array", "vm.evict", "resource",
               attack_evict("evict_memory_hog.py", small)),
        Attack("Python: holds its lock forever", "sched.pick", "lock_timeout",
               lambda k: attack_lock_hog(k, "sched_lock_hog.py")),
    ] if python else []
    return [
        Attack("read-ahead past end of file", "fs.readahead", "invalid_result",
               attack_readahead("readahead_out_of_range")),
        Attack("read-ahead never returns", "fs.readahead", "timeout",
               attack_readahead("readahead_loop")),
        Attack("imports env.system", "fs.readahead", "rejected", attack_forbidden_import),
        Attack("victim not a candidate", "vm.evict", "invalid_result",
               attack_evict("evict_not_candidate")),
        Attack("wild store outside memory", "vm.evict", "trap", attack_evict("evict_wild_store")),
        Attack("memory hog", "vm.evict", "resource", attack_evict("evict_memory_hog", small)),
        Attack("boosts another user's thread", "sched.pick", "forbidden_call",
               attack_sched_other_group),
        Attack("traps after boosting its group", "sched.pick", "trap", attack_sched_trap),
        Attack("holds its lock forever", "sched.pick", "lock_timeout", attack_lock_hog),
        Attack("filter changes the length", "fs.filter", "invalid_result",
               attack_filter("filter_changes_length")),
        Attack("filter traps mid-block", "fs.filter", "trap",
               attack_filter("filter_trap_midblock")),
        Attack("leaks host memory handles", "fs.access", "resource", attack_handle_leak),
        *in_python,
    ]


def part2(workdir: Path, checks: Checks, out: IO[str],
          say: Callable[[str], None] = lambda msg: None, python: bool = False) -> None:
    Output(out).heading("Part 2: a gallery of misbehaving grafts")
    rows = []
    for i, attack in enumerate(gallery(python)):
        say(f"part 2: {attack.point}: {attack.name}")
        with booted(workdir, f"gallery-{i}", frames=64) as k:
            t = time.perf_counter()
            graft, intact, note = attack.run(k)
            ms = (time.perf_counter() - t) * 1e3
            if graft is None:
                seen = "rejected" if intact or note != "was accepted" else "accepted"
                removed = True
            else:
                seen = graft.removal.reason.value if graft.removal else "still installed"
                removed = graft.state == "removed"
            try:
                k.check_invariants()
                invariants = True
            except Exception as exc:
                invariants = False
                note = f"invariant broken: {exc}"
            ok = checks.check(f"{attack.point}: {attack.name}",
                              seen == attack.expect and removed and intact and invariants, note)
            rows.append([attack.point, attack.name, attack.expect, seen,
                         "yes" if intact and invariants else "NO", f"{ms:.0f} ms",
                         "ok" if ok else "FAILED", note])
    Output(out).table(rows, ["point", "misbehaviour", "expected", "observed", "state intact",
                             "took", "", "what was checked"])
