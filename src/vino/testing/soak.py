"""Soaks: many threads, grafts of every kind replaced under them, nothing lost.

- ``soak``: at least 32 threads call ``rel.op`` on a ``Rig`` (some inside host
  transactions they then commit or abort) and fire ``rel.event``, while a replacer
  thread installs, replaces and removes grafts that count through accessors, take
  locks (and deadlock each other), spin holding a lock, trap, lie, hoard memory or
  write what is not theirs. At the end of each round, with the registry quiescent:
  no lost update, no deadlock, no leaked lock, handle or page, no memory growth.
- ``kernel_soak``: 32 threads of four users drive one kernel through good and
  hostile grafts, every read-back verified.

Each returns its figures (``SoakResult``, ``KernelSoakResult``) with ``problems``
(empty: nothing was lost). ``tests/reliability`` runs them briefly (longer under
``-m slow``), ``vino reliability --soak SECONDS`` as long as asked.

Invariant: the counters of ``rel.op``'s host state equal, after every round, the
committed counting calls that added to them.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

from vino.graft import Graft, Quota, transaction
from vino.graft.loader import Source
from vino.kernel.errors import FilterUnavailable, InvariantViolation
from vino.sdk.build import sample_path
from vino.testing.rig import (
    HOSTILE_DIR,
    LIVE,
    ROOT_KEYS,
    SPIN,
    XOR_FILTER,
    Rig,
    inode_of,
    module,
    pattern,
    registry_problems,
    scratch_kernel,
    usage_of,
)

__all__ = [
    "COUNTER_ALL", "COUNTER_EVENT", "COUNTING", "EVENT_COUNTER", "EVENT_TRAP", "SOAK_KINDS",
    "SOAK_TARGETS", "KernelSoakResult", "SoakResult", "kernel_soak", "soak",
]

COUNTER_ALL: Final = 63  # every committed counting call also adds one here
COUNTER_EVENT: Final = 62  # every committed event handler adds one here
SOAK_TARGETS: Final = 8


def _incs(code: int, middle: str = "", locals_: str = "") -> str:
    """Add one to the target's counter and to ``COUNTER_ALL``; ``middle``; answer ``code``."""
    return (f'(func (export "op") (result i32) {locals_}'
            f" (drop (call $inc (i32.load (i32.const 0)))) {middle}"
            f" (drop (call $inc (i32.const {COUNTER_ALL}))) i32.const {code})")



# The soak's grafts. Committing kinds answer 1..4 and count; the others always abort.
SOAK_KINDS: Final[dict[str, str]] = {
    "counter": module(["inc"], _incs(1)),
    "locker": module(["inc", "lock"], _incs(2, "(drop (call $lock (i32.const 1))) " + SPIN,
                                            "(local $i i32)")),
    "deadlock_a": module(["inc", "lock"], _incs(3, "(drop (call $lock (i32.const 2)))"
                                                   " (drop (call $lock (i32.const 3)))")),
    "deadlock_b": module(["inc", "lock"], _incs(4, "(drop (call $lock (i32.const 3)))"
                                                   " (drop (call $lock (i32.const 2)))")),
    "hog": module(["inc", "lock"], '(func (export "op") (result i32)'
                                   " (drop (call $inc (i32.load (i32.const 0))))"
                                   " (drop (call $lock (i32.const 1))) (loop $f (br $f))"
                                   " i32.const 5)"),
    "trapper": module(["inc"], '(func (export "op") (result i32)'
                               " (drop (call $inc (i32.load (i32.const 0)))) unreachable)"),
    "liar": module(["inc"], '(func (export "op") (result i32)'
                            " (drop (call $inc (i32.load (i32.const 0)))) i32.const 999)"),
    "hoarder": module(["inc", "kalloc"], '(func (export "op") (result i32)'
                                         " (drop (call $inc (i32.load (i32.const 0))))"
                                         " (loop $more (br_if $more (i32.gt_s"
                                         " (call $kalloc (i32.const 4096)) (i32.const 0))))"
                                         " i32.const 6)"),
    "thief": module(["put", "inc"], '(func (export "op") (result i32)'
                                    " (drop (call $inc (i32.load (i32.const 0))))"
                                    f" (drop (call $put (i32.const {ROOT_KEYS}) (i32.const 1)))"
                                    " i32.const 7)"),
}
COUNTING: Final = {1, 2, 3, 4}  # answers of committed counting calls
# How often the replacer picks each kind (the well-behaved ones dominate, as in life).
_KIND_WEIGHTS: Final = {"counter": 6, "locker": 3, "deadlock_a": 2, "deadlock_b": 2, "hog": 1,
                        "trapper": 1, "liar": 1, "hoarder": 1, "thief": 1}

EVENT_COUNTER: Final = module(["inc"], f'(func (export "on_event") (result i32)'
                                       f" (drop (call $inc (i32.const {COUNTER_EVENT})))"
                                       " i32.const 0)")
EVENT_TRAP: Final = module(["inc"], f'(func (export "on_event") (result i32)'
                                    f" (drop (call $inc (i32.const {COUNTER_EVENT})))"
                                    " unreachable)")


@dataclass(slots=True)
class SoakResult:
    """What a soak did and what it found (``problems`` empty: nothing was lost)."""

    threads: int
    seconds: float = 0.0
    rounds: int = 0
    calls: int = 0  # point invocations made by the driver threads
    counted: int = 0  # committed counting calls (each added 2 through accessors)
    host_transactions: int = 0  # calls made inside a host transaction
    host_aborts: int = 0  # of those, host transactions aborted afterwards
    events: int = 0
    installs: int = 0
    removals: int = 0
    commits: int = 0
    aborts: Counter[str] = field(default_factory=Counter)
    lock_timeouts: int = 0  # lock waits that doomed a holder or timed out
    process_cpu_s: float = 0.0  # CPU time the whole process used
    charged_cpu_s: float = 0.0  # what the principals' CPU quotas were charged
    rss_mib: list[float] = field(default_factory=list)  # after each round
    objects: list[int] = field(default_factory=list)  # live Python objects after each round
    problems: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def _collect_fully(max_passes: int = 4) -> None:
    """Collect until a pass frees nothing: one pass can leave garbage that finalizers and
    weak-reference callbacks of the pass itself made, which a count would then take for
    live objects."""
    for _ in range(max_passes):
        if gc.collect() == 0:
            return


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20
    except OSError:  # not Linux: report no figure rather than a wrong one
        return 0.0


def soak(seconds: float = 3.0, threads: int = 32, rounds: int = 3, seed: int = 1,
         join_timeout_s: float = 20.0) -> SoakResult:
    """``threads`` threads call ``rel.op`` on eight targets (some inside host
    transactions they then commit or abort) and fire ``rel.event``, while a replacer
    thread keeps installing, replacing and removing grafts of every kind: counting
    ones that take locks (and deadlock each other), and ones that spin holding a
    lock, trap, lie, hoard memory or touch what is not theirs.

    The run is cut into ``rounds``; at the end of each every thread stops at a
    barrier (waiting at most ``join_timeout_s``: a thread that does not arrive is a
    deadlock) and, with the registry quiescent: every counter equals the committed
    calls that added to it (no lost update, no undone update that stayed), no lock is
    held, the registry's invariants hold. At the end every graft is removed and every
    principal's usage must be zero; RSS and the live-object count after each round
    show any growth. The same threads run every round.
    """
    res = SoakResult(threads)
    # The lifetime CPU quota is lifted: it is charged the wall time of each call, which
    # under 32 threads on a few cores is mostly waiting for the GIL (see the report).
    rig = Rig(lock_timeout_s=0.02, cpu_call_s=0.02, cpu_total_s=1e9)
    reg = rig.registry
    expected: Counter[int] = Counter()
    tally_lock = threading.Lock()
    master = random.Random(seed)
    targets = [f"s{i}" for i in range(SOAK_TARGETS)]
    kinds = list(_KIND_WEIGHTS)
    weights = [_KIND_WEIGHTS[k] for k in kinds]
    reg.install(rig.event, EVENT_COUNTER, rig.alice, "e0")
    reg.install(rig.event, EVENT_COUNTER, rig.bob, "e0")
    stop = threading.Event()
    start_line = threading.Barrier(threads + 2)
    finish_line = threading.Barrier(threads + 2)
    errors: list[str] = []

    def rounds_of(work: Callable[[], None], name: str) -> None:
        try:
            for _ in range(rounds):
                start_line.wait(join_timeout_s)
                try:
                    work()
                except BaseException as exc:  # a thread of the soak must never see one
                    errors.append(f"{name}: {exc!r}")
                finish_line.wait(join_timeout_s)
        except threading.BrokenBarrierError:
            pass  # the main thread reports the round that broke

    def driver(rng: random.Random) -> None:
        mine: Counter[int] = Counter()
        calls = counted = host_txns = host_aborts = events = 0
        try:
            while not stop.is_set():
                i = rng.randrange(SOAK_TARGETS)
                r = rng.random()
                if r < 0.08:
                    events += 1
                    mine[COUNTER_EVENT] += rig.event("e0", 0)
                    continue
                calls += 1
                keep = True
                if r < 0.25:
                    host_txns += 1
                    with transaction() as t:
                        answer = rig.op(targets[i], i)
                        if rng.random() < 0.5:
                            t.abort()
                            host_aborts += 1
                            keep = False
                else:
                    answer = rig.op(targets[i], i)
                if answer in COUNTING and keep:
                    counted += 1
                    mine[i] += 1
                    mine[COUNTER_ALL] += 1
        finally:
            with tally_lock:
                expected.update(mine)
                res.calls += calls
                res.counted += counted
                res.host_transactions += host_txns
                res.host_aborts += host_aborts
                res.events += events

    def replacer(rng: random.Random) -> None:
        while not stop.wait(0.004):
            tgt = rng.choice(targets)
            if rng.random() < 0.1:
                g = rig.op.table.get(tgt)
                if g is not None:
                    g.remove()
                    res.removals += 1
                continue
            kind = rng.choices(kinds, weights)[0]
            who = rig.alice if rng.random() < 0.7 else rig.bob
            current = rig.op.table.get(tgt)
            if current is not None:  # a principal replaces only its own graft
                who = current.principal
            reg.install(rig.op, SOAK_KINDS[kind], who, tgt, replace=True, name=kind)
            res.installs += 1
            if rng.random() < 0.05:
                handlers = rig.event.handlers.get("e0", [])
                if len(handlers) >= 4:  # keep the population steady
                    handlers[0].remove()
                    res.removals += 1
                handler = EVENT_TRAP if rng.random() < 0.5 else EVENT_COUNTER
                reg.install(rig.event, handler, who, "e0")
                res.installs += 1

    workers = [threading.Thread(target=rounds_of, name=f"soak-driver-{n}", daemon=True,
                                args=(partial(driver, random.Random(master.random())),
                                      f"driver {n}"))
               for n in range(threads)]
    workers.append(threading.Thread(target=rounds_of, name="soak-replacer", daemon=True,
                                    args=(partial(replacer, random.Random(master.random())),
                                          "replacer")))
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        for w in workers:
            w.start()
        for rnd in range(rounds):
            stop.clear()
            start_line.wait(join_timeout_s)
            time.sleep(seconds / rounds)
            stop.set()
            try:
                finish_line.wait(join_timeout_s)
            except threading.BrokenBarrierError:
                stuck = [w.name for w in workers if w.is_alive()]
                res.problems.append(f"round {rnd}: deadlock? not every thread stopped within "
                                    f"{join_timeout_s} s (alive: {len(stuck)})")
                start_line.abort()
                break
            res.rounds += 1
            res.problems.extend(f"round {rnd}: {e}" for e in errors)
            errors.clear()
            got = {k: v for k, v in rig.host.d.items() if isinstance(k, int)}
            want = {k: v for k, v in expected.items() if v}
            if got != want:
                lost = {k: (want.get(k, 0), got.get(k, 0)) for k in set(got) | set(want)
                        if got.get(k, 0) != want.get(k, 0)}
                res.problems.append(f"round {rnd}: counters (want, got) differ: {lost}")
            res.problems.extend(f"round {rnd}: {p}" for p in rig.problems())
            _collect_fully()
            res.rss_mib.append(_rss_mib())
            res.objects.append(len(gc.get_objects()))
        res.seconds = time.perf_counter() - t0
        res.process_cpu_s = time.process_time() - cpu0
        res.charged_cpu_s = sum(p.usage.cpu_ns for p in rig.principals) / 1e9
        for w in workers:
            w.join(join_timeout_s)
        stats = reg.point_stats(rig.op)
        stats.add(reg.point_stats(rig.event))
        res.commits = stats.commits
        res.aborts = Counter(stats.aborts)
        res.lock_timeouts = reg.locks.timeouts
        for g in reg.grafts():
            g.remove()
        for p in rig.principals:
            left = {k: v for k, v in usage_of(p).items() if k != "log_bytes" and v}
            if left:
                res.problems.append(f"{p.name} still charged after every graft was removed: "
                                    f"{left}")
        if reg.locks.held():
            res.problems.append(f"locks held at the end: {reg.locks.held()}")
    finally:
        stop.set()
        start_line.abort()
        finish_line.abort()
        rig.close()
    return res


# Per point: well-behaved grafts and hostile ones, for the kernel soak's replacements.
_KERNEL_GOOD: Final = {"fs.readahead": "readahead_stride.wasm", "vm.evict": "evict_keep.wasm"}
_KERNEL_BAD: Final = {
    "fs.readahead": ("readahead_out_of_range", "readahead_loop"),
    "vm.evict": ("evict_not_candidate", "evict_wild_store"),
}


@dataclass(slots=True)
class KernelSoakResult:
    threads: int
    seconds: float = 0.0
    file_ops: int = 0  # whole-file rewrite + read-back cycles, each verified
    page_ops: int = 0  # address-space page writes + read-backs, each verified
    installs: int = 0
    # Writes or read-backs its own filter refused, kept (see ``kernel_soak``); never verified.
    refused: int = 0
    aborts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def kernel_soak(seconds: float = 2.0, threads: int = 32, workdir: Path | None = None,
                seed: int = 2, join_timeout_s: float = 30.0) -> KernelSoakResult:
    """``threads`` threads of four users drive one kernel: each rewrites and reads back
    its own encrypted (XOR-filtered) file through a fresh open file with a read-ahead
    graft (good or hostile), and writes and reads back pages of its own address space
    under an eviction graft (good or hostile), replacing grafts as it goes. Every
    read-back is verified; at the end every file's filter is still installed, the
    kernel's invariants hold, no lock is held, and once the kernel is shut down every
    user's usage is zero.

    A hostile read-ahead may spend its user's wall-time allowance of a hold of the file
    system (``graft/hold.py``); that user's filter, stopped at a tick later in the same
    hold, is kept, and the point fails closed: that write or read-back is refused
    (``refused``, by design) and the next version rewrites the whole file."""
    res = KernelSoakResult(threads)
    master = random.Random(seed)
    with scratch_kernel(workdir, nblocks=4096, frames=64) as k:
        # No share of others' waits (Quota.lock_wall_per_s) runs out here: it is charged in
        # wall time, so on a loaded machine eight threads of one user spent it within the
        # half-second soak, and its filter grafts, not called, refused the sealed files
        # (FilterUnavailable, as designed). This soak checks the bytes; the shares have
        # their own tests (tests/tenants).
        users = [k.add_user(f"u{i}", Quota(lock_wall_per_s=float("inf"))) for i in range(4)]
        stop = threading.Event()
        lock = threading.Lock()
        errors: list[str] = []

        def worker(n: int, rng: random.Random) -> None:
            user = users[n % len(users)]
            proc = k.spawn(user, f"w{n}")
            name = f"f{n}"
            aspace = k.address_space(proc)
            files = pages = installs = refused = 0
            filt: Graft | None = None
            try:
                k.fs.create(user, name, 0o600)
                filt = k.graft(user, "fs.filter", XOR_FILTER, target=inode_of(k, name))
                evict: Graft | None = None
                version = 0
                while not stop.is_set():
                    version += 1
                    data = pattern(4, f"{name} v{version}")
                    with k.fs.open(proc, name, "rw") as of:
                        ra = _pick_graft(rng, "fs.readahead")
                        k.graft(user, "fs.readahead", ra, target=of)
                        installs += 1
                        try:
                            k.fs.write(of, data)
                            k.fs.seek(of, 0)
                            back: bytes | None = k.fs.read(of, len(data) + 1)
                        except FilterUnavailable:
                            if filt.state != LIVE:
                                raise  # a good filter must never be removed
                            back = None
                            refused += 1
                        if back is not None and back != data:
                            errors.append(f"{name} v{version} read back wrong")
                    files += 1
                    if evict is None or evict.state != LIVE or rng.random() < 0.1:
                        evict = k.graft(user, "vm.evict", _pick_graft(rng, "vm.evict"),
                                        target=aspace, replace=True)
                        installs += 1
                    for vpn in rng.sample(range(16), 4):
                        content = f"{name} v{version} page {vpn}".encode()
                        aspace.write(vpn, content)
                        if aspace.read(vpn)[: len(content)] != content:
                            errors.append(f"{name} page {vpn} read back wrong")
                        pages += 1
            except BaseException as exc:
                errors.append(f"worker {n}: {exc!r}")
            if filt is not None and filt.state != LIVE:
                errors.append(f"{name}: its good filter was removed: {filt.removal}")
            with lock:
                res.file_ops += files - refused
                res.page_ops += pages
                res.installs += installs
                res.refused += refused

        workers = [threading.Thread(target=worker, args=(n, random.Random(master.random())),
                                    name=f"ksoak-{n}", daemon=True) for n in range(threads)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        time.sleep(seconds)
        stop.set()
        deadline = time.monotonic() + join_timeout_s
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        res.seconds = time.perf_counter() - t0
        stuck = [w.name for w in workers if w.is_alive()]
        if stuck:
            res.problems.append(f"deadlock? threads still running: {stuck}")
            return res
        res.problems.extend(errors)
        for point in ("fs.readahead", "vm.evict", "fs.filter"):
            res.aborts.update(k.registry.point_stats(point).aborts)
        try:
            k.check_invariants()
        except InvariantViolation as exc:
            res.problems.append(str(exc))
        res.problems.extend(registry_problems(k.registry, [u.principal for u in users]))
        k.shutdown()
        for u in users:
            left = {key: v for key, v in usage_of(u.principal).items()
                    if key != "log_bytes" and v}
            if left:
                res.problems.append(f"{u.name} still charged after shutdown: {left}")
    return res


def _pick_graft(rng: random.Random, point: str) -> Source:
    if rng.random() < 0.8:
        return sample_path(_KERNEL_GOOD[point])
    return HOSTILE_DIR / f"{rng.choice(_KERNEL_BAD[point])}.wat"

