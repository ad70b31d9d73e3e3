"""``vino demo``: boot the kernel, show what each sample graft changes, then attack it.

Part 1 runs one workload per sample graft, first with the default policy and
then with the graft, on a fresh kernel each time, and reports what changed:
I/Os and device time saved by read-ahead, faults avoided by eviction, latency of
the favoured thread, ciphertext on disk.

Part 2 installs a gallery of misbehaving grafts, one per way a graft can fail
at each point, runs the operation each one is attached to, and checks that the
kernel survived: the operation completed with the right answer, the graft was
aborted for the expected reason and removed, and every invariant holds.

The exit status is 0 only if every check held.

``vino demo sqlite`` runs a real database instead: SQLite on the kernel's file
system, with and without the SQLite grafts, encrypted, and under attack
(``run_sqlite``; the experiments live in ``vino.sqlite.scenarios``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vino.console import Output, plain_table
from vino.errors import GraftRejected
from vino.graft import Graft, Quota
from vino.kernel import params
from vino.kernel.device import DISK_1996, SSD, DiskProfile
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.kernel.sched import Cpu, Wait, cpu_hog, interactive_loop
from vino.sdk.build import SDK_DIR, sample_path

BS = params.BLOCK_SIZE
HOSTILE_DIR = Path(__file__).resolve().parent / "sdk" / "hostile"


def sample(name: str, python: bool = False) -> Path:
    """A sample graft: its C build (``.wasm``), or with ``python`` its Python twin (``.py``)."""
    return sample_path(f"{name}.py" if python else f"{name}.wasm")


def hostile_path(name: str) -> Path:
    """A hostile graft: ``name`` as WAT, or as given when it has an extension (``.py``)."""
    return HOSTILE_DIR / (name if "." in name else f"{name}.wat")


@dataclass(slots=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Report:
    checks: list[Check] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(what, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@contextmanager
def booted(workdir: Path, name: str, **kw: Any) -> Iterator[Kernel]:
    k = Kernel.boot(workdir / f"{name}.img", **kw)
    try:
        yield k
    finally:
        k.shutdown()


_table = plain_table


def _pattern(nblocks: int) -> bytes:
    """Distinct, checkable content: each block names itself."""
    return b"".join((f"block {i:06d} ".encode() * (BS // 13 + 1))[:BS] for i in range(nblocks))


# ---- part 1: what each sample graft changes ----------------------------------------------

def readahead_scan(workdir: Path, profile: DiskProfile, graft: bool,
                   nblocks: int = 256, module: Path | None = None) -> dict[str, Any]:
    """Read a file backwards block by block (like ``tac`` on a log).

    ``module``: the read-ahead graft to install (default: the C sample).
    """
    with booted(workdir, f"ra-{profile.name}-{graft}", profile=profile) as k:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "tac")
        k.fs.create(alice, "log", 0o600)
        data = _pattern(nblocks)
        with k.fs.open(proc, "log", "w") as f:
            k.fs.write(f, data)
        k.cache.sync()
        k.cache.invalidate(k.device)
        reads0, busy0 = k.device.stats.reads, k.device.stats.busy_ns
        g: Graft | None = None
        intact = True
        with k.fs.open(proc, "log", "r") as f:
            if graft:
                g = k.graft(alice, "fs.readahead",
                            module or sample_path("readahead_stride.wasm"), target=f)
            for b in reversed(range(nblocks)):
                k.fs.seek(f, b * BS)
                intact &= k.fs.read(f, BS) == data[b * BS:(b + 1) * BS]
        k.check_invariants()
        return {"requests": k.device.stats.reads - reads0,
                "device_ms": (k.device.stats.busy_ns - busy0) / 1e6,
                "intact": intact,
                "graft_calls": g.stats.commits if g else 0,
                "graft_aborts": sum(g.stats.aborts.values()) if g else 0,
                "overhead_ms": g.stats.overhead_ns / 1e6 + g.stats.graft_ns / 1e6 if g else 0.0}


def eviction_run(workdir: Path, graft: bool, rounds: int = 12,
                 module: Path | None = None) -> dict[str, Any]:
    """A hot set of 16 pages re-used between scans of 64 cold pages, in 48 frames.

    ``module``: the eviction graft to install (default: the C sample).
    """
    hot = list(range(16))
    with booted(workdir, f"vm-{graft}", frames=48) as k:
        alice = k.add_user("alice")
        aspace = k.address_space(k.spawn(alice, "db"))
        g: Graft | None = None
        if graft:
            g = k.graft(alice, "vm.evict", module or sample_path("evict_keep.wasm"),
                        target=aspace)
            g.send(len(hot).to_bytes(4, "little") + b"".join(v.to_bytes(4, "little")
                                                               for v in hot))
        for v in hot:
            aspace.write(v, f"hot page {v}".encode())
        faults0 = aspace.faults
        hot_faults = 0
        for r in range(rounds):
            for v in hot:
                hot_faults += aspace.touch(v, write=True)
            for v in range(1000 + 64 * r, 1000 + 64 * (r + 1)):
                aspace.touch(v)
        intact = all(aspace.read(v).startswith(f"hot page {v}".encode()) for v in hot)
        k.check_invariants()
        return {"faults": aspace.faults - faults0, "hot_faults": hot_faults, "intact": intact,
                "graft_calls": g.stats.commits if g else 0,
                "graft_aborts": sum(g.stats.aborts.values()) if g else 0}


def sched_run(workdir: Path, graft: bool, module: Path | None = None) -> dict[str, Any]:
    """One interactive thread (0.2 ms bursts, 3 ms waits) among four CPU hogs."""
    with booted(workdir, f"sched-{graft}") as k:
        alice = k.add_user("alice")
        group = k.new_group(alice, "editor")
        proc = k.spawn(alice, "editor", group)
        for _ in range(4):
            k.sched.spawn(proc, cpu_hog())
        ui = k.sched.spawn(proc, interactive_loop(200_000, 3_000_000), interactive=True)
        g: Graft | None = None
        if graft:
            g = k.graft(alice, "sched.pick", module or sample("sched_interactive"),
                        target=group)
        k.sched.run(until_ns=k.clock.now_ns() + 2_000_000_000)
        lat = k.sched.latency(ui.tid)
        k.check_invariants()
        return {"mean_ms": lat.mean_us / 1000, "p99_ms": lat.p99_us / 1000,
                "samples": lat.samples, "graft_calls": g.stats.commits if g else 0,
                "graft_aborts": sum(g.stats.aborts.values()) if g else 0}


def encryption_run(workdir: Path, module: Path | None = None) -> dict[str, Any]:
    """Write a secret through the ChaCha20 filter; look at the raw image; read it back."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    key = hashlib.sha256(b"vino demo key").digest()
    nonce = hashlib.sha256(b"vino demo nonce").digest()[:12]
    secret = (b"The quick brown fox jumps over the lazy dog. Attack at dawn! " * 200)[:3 * BS]
    image = workdir / "crypt.img"
    k = Kernel.boot(image)
    try:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "vault")
        k.fs.create(alice, "secret", 0o600)
        with k.fs.open(proc, "secret", "rw") as f:
            g = k.graft(alice, "fs.filter", module or sample("chacha20_filter"), target=f.inode)
            g.send(key + nonce)
            k.fs.write(f, secret)
            k.fs.seek(f, 0)
            back = k.fs.read(f, len(secret))
        k.fs.unmount()
        raw = image.read_bytes()
        enc = Cipher(algorithms.ChaCha20(key, (0).to_bytes(4, "little") + nonce), None)
        expected = enc.encryptor().update(secret)
        calls, aborts = g.stats.commits, sum(g.stats.aborts.values())
    finally:
        k.shutdown()
    # Mount the image again: without the graft the file is ciphertext; with it, the secret.
    k2 = Kernel.boot(image, fresh=False)
    try:
        alice2 = k2.add_user("alice")
        proc2 = k2.spawn(alice2, "vault")
        with k2.fs.open(proc2, "secret", "r") as f:
            cold = k2.fs.read(f, len(secret))
        with k2.fs.open(proc2, "secret", "r") as f:
            g2 = k2.graft(alice2, "fs.filter", module or sample("chacha20_filter"),
                          target=f.inode)
            g2.send(key + nonce)
            warm = k2.fs.read(f, len(secret))
        k2.check_invariants()
    finally:
        k2.shutdown()
    return {"roundtrip": back == secret, "plaintext_on_disk": secret[:40] in raw,
            "ciphertext_matches": expected in raw, "remount_without_key": cold == expected,
            "remount_with_key": warm == secret, "graft_calls": calls, "graft_aborts": aborts}


def part1(workdir: Path, report: Report, out: IO[str],
          say: Callable[[str], None] = lambda msg: None, python: bool = False) -> None:
    Output(out).heading("Part 1: what each sample graft changes")
    say("part 1: the sample grafts")
    if python:
        out.write("(the samples' Python twins, compiled by vino.pygraft)\n\n")
    rows = []
    for profile in (DISK_1996, SSD):
        d = readahead_scan(workdir, profile, graft=False)
        s = readahead_scan(workdir, profile, graft=True,
                           module=sample("readahead_stride", python))
        rows.append([f"read-ahead, backward scan, {profile.name}", "device requests",
                     str(d["requests"]), str(s["requests"]),
                     f"device time {d['device_ms']:.0f} ms -> {s['device_ms']:.0f} ms"])
        report.check(f"read-ahead saves I/Os on {profile.name}",
                     s["requests"] < d["requests"] and s["device_ms"] < d["device_ms"]
                     and d["intact"] and s["intact"] and s["graft_aborts"] == 0,
                     f"{d['requests']} -> {s['requests']} requests")
    d = eviction_run(workdir, graft=False)
    s = eviction_run(workdir, graft=True, module=sample("evict_keep", python))
    rows.append(["eviction, hot set + scans", "faults on hot pages", str(d["hot_faults"]),
                 str(s["hot_faults"]), f"all faults {d['faults']} -> {s['faults']}"])
    report.check("eviction graft keeps the important pages",
                 s["hot_faults"] < d["hot_faults"] and s["faults"] < d["faults"]
                 and d["intact"] and s["intact"] and s["graft_aborts"] == 0,
                 f"{d['hot_faults']} -> {s['hot_faults']}")
    d = sched_run(workdir, graft=False)
    s = sched_run(workdir, graft=True, module=sample("sched_interactive", python))
    rows.append(["scheduling, 1 interactive + 4 hogs", "interactive latency (mean)",
                 f"{d['mean_ms']:.1f} ms", f"{s['mean_ms']:.1f} ms",
                 f"p99 {d['p99_ms']:.1f} -> {s['p99_ms']:.1f} ms"])
    report.check("scheduler graft favours the interactive thread",
                 s["mean_ms"] < d["mean_ms"] / 2 and s["graft_aborts"] == 0,
                 f"{d['mean_ms']:.1f} -> {s['mean_ms']:.1f} ms")
    e = encryption_run(workdir, module=sample("chacha20_filter", python))
    rows.append(["encryption filter (ChaCha20)", "plaintext on disk", "yes",
                 "yes" if e["plaintext_on_disk"] else "no",
                 "ciphertext = RFC 8439 ChaCha20" if e["ciphertext_matches"] else "MISMATCH"])
    report.check("encryption: ciphertext on disk, plaintext through the kernel",
                 e["roundtrip"] and not e["plaintext_on_disk"] and e["ciphertext_matches"]
                 and e["remount_without_key"] and e["remount_with_key"]
                 and e["graft_aborts"] == 0)
    Output(out).table(rows, ["workload", "measure", "default", "with graft", "note"])


# ---- part 2: the rogues' gallery ----------------------------------------------------------

@dataclass(slots=True)
class Attack:
    name: str
    point: str
    expect: str  # the abort reason, or "rejected"
    run: Callable[[Kernel], tuple[Graft | None, bool, str]]  # -> graft, state intact, note


def _file_with_data(k: Kernel, nblocks: int = 16) -> tuple[Any, Any, bytes]:
    alice = k.add_user("mallory")
    proc = k.spawn(alice, "victim")
    k.fs.create(alice, "data", 0o600)
    data = _pattern(nblocks)
    with k.fs.open(proc, "data", "w") as f:
        k.fs.write(f, data)
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


def part2(workdir: Path, report: Report, out: IO[str],
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
            ok = report.check(f"{attack.point}: {attack.name}",
                              seen == attack.expect and removed and intact and invariants, note)
            rows.append([attack.point, attack.name, attack.expect, seen,
                         "yes" if intact and invariants else "NO", f"{ms:.0f} ms",
                         "ok" if ok else "FAILED", note])
    Output(out).table(rows, ["point", "misbehaviour", "expected", "observed", "state intact",
                             "took", "", "what was checked"])


def run_sqlite(out: IO[str], workdir: Path | None = None, rows: int = 100_000,
               profile: DiskProfile = DISK_1996,
               progress: Callable[[str], None] | None = None, python: bool = False) -> bool:
    """SQLite on vino (``vino demo sqlite``); True if every check held.

    ``python``: the SQLite grafts' Python twins (vino.pygraft) instead of their C builds.
    """
    import dataclasses

    from vino.sqlite import scenarios

    config = dataclasses.replace(scenarios.Config.for_rows(rows), profile=profile,
                                 python_grafts=python)
    return scenarios.run(out, workdir, config, progress)


def run(out: IO[str], workdir: Path | None = None,
        progress: Callable[[str], None] | None = None, python: bool = False) -> bool:
    """Run both parts; print tables to ``out``; return True if every check held.

    ``progress`` hears each part and each attack as it starts; ``python`` runs the
    samples' Python twins instead of their C builds.
    """
    say = progress or (lambda msg: None)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="vino-demo-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        out.write(f"vino demo: kernel images in {wd} (pid {os.getpid()})\n")
        part1(wd, report, out, say, python)
        part2(wd, report, out, say, python)
    failed = [c for c in report.checks if not c.ok]
    o = Output(out)
    o.verdict(not failed, f"\n{len(report.checks) - len(failed)} of {len(report.checks)} "
              "checks held.")
    for c in failed:
        o.verdict(False, f"FAILED: {c.what}: {c.detail}")
    return report.ok


# ---- vino stats ------------------------------------------------------------------------------

def stats_run(workdir: Path) -> dict[str, Any]:
    """Run each sample graft's workload on one kernel, plus one misbehaving graft.

    Returns ``{"points": [per-point statistics], "report": Registry.report()}``: the
    report says what failed and why (here, a read-ahead graft that asks for blocks
    past the end of its file, aborted for ``invalid_result`` and removed).
    """
    with booted(workdir, "stats", frames=48) as k:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "app", k.new_group(alice, "app"))
        k.fs.create(alice, "log", 0o600)
        data = _pattern(64)
        with k.fs.open(proc, "log", "rw") as f:
            flt = k.graft(alice, "fs.filter", sample_path("chacha20_filter.wasm"), target=f.inode)
            flt.send(bytes(range(32)) + bytes(12))
            k.fs.write(f, data)
            k.graft(alice, "fs.readahead", sample_path("readahead_stride.wasm"), target=f)
            for b in reversed(range(64)):
                k.fs.seek(f, b * BS)
                k.fs.read(f, BS)
        aspace = k.address_space(proc)
        ev = k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"), target=aspace)
        ev.send((4).to_bytes(4, "little") + b"".join(v.to_bytes(4, "little") for v in range(4)))
        for v in range(200):
            aspace.touch(v % 4)
            aspace.touch(100 + v)
        assert proc.group is not None
        for _ in range(3):
            k.sched.spawn(proc, cpu_hog())
        k.sched.spawn(proc, interactive_loop(200_000, 3_000_000), interactive=True)
        k.graft(alice, "sched.pick", sample_path("sched_interactive.wasm"), target=proc.group)
        k.sched.run(until_ns=k.clock.now_ns() + 500_000_000)
        k.fs.create(alice, "other", 0o600)
        with k.fs.open(proc, "other", "rw") as f:
            k.fs.write(f, data[: 4 * BS])
            k.graft(alice, "fs.readahead", SDK_DIR / "hostile" / "readahead_out_of_range.wat",
                    target=f, name="readahead_out_of_range")
            k.fs.seek(f, 0)
            for _ in range(4):
                k.fs.read(f, BS)
        rows = []
        for name in sorted(k.points):
            st = k.registry.point_stats(name)
            rows.append({"point": name, **st.as_dict(),
                         "graft_us_per_call": st.graft_ns / 1e3 / max(st.commits, 1),
                         "overhead_us_per_call": st.overhead_ns / 1e3 / max(st.commits, 1)})
        return {"points": rows, "report": k.registry.report()}


def render_stats(stats: dict[str, Any]) -> str:
    """The per-point table, then the registry's report of what failed and why."""
    rows = stats["points"]
    table = [[r["point"], str(r["invocations"]), str(r["commits"]),
              ", ".join(f"{k}={v}" for k, v in r["aborts"].items()) or "-",
              f"{r['graft_us_per_call']:.2f}", f"{r['overhead_us_per_call']:.2f}"]
             for r in rows]
    return (_table(table, ["point", "invocations", "commits", "aborts", "graft µs/call",
                           "protection µs/call"])
            + "\n\nWhat failed and why (Registry.report()):\n" + str(stats["report"]))
