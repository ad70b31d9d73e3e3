"""The sample workloads: one per sample graft, shared by the demo, the benchmarks and tests.

Each function boots a fresh kernel (``booted``), runs one workload with the
point's default policy or with a graft installed, checks the kernel's
invariants, and returns plain figures:

    d = readahead_scan(workdir, DISK_1996, graft=False)
    s = readahead_scan(workdir, DISK_1996, graft=True)
    d["requests"], s["requests"]          # device requests, default vs graft

- ``readahead_scan``: a file of ``RA_FILE_BLOCKS`` blocks read backwards block by
  block (like ``tac`` on a log);
- ``eviction_run``: a hot set of ``EVICT_HOT`` pages re-used between scans of
  ``EVICT_COLD_PER_ROUND`` cold pages, in ``EVICT_FRAMES`` frames
  (``write_hot_pages`` and ``evict_rounds`` are its accesses alone, for callers
  that boot their own kernel);
- ``sched_run``: one interactive thread among ``SCHED_HOGS`` CPU hogs;
- ``encryption_run``: a secret written through the ChaCha20 filter, the raw image
  inspected, remounted without and with the key.

``vino demo`` (``vino.demo``) shows these figures, ``vino bench savings`` turns them
into device time saved against protection spent, and ``vino.bench.setups`` takes
the benchmark's inputs from the same patterns. The sizes are named here once.

Invariant: every run is deterministic (simulated device time, a seeded workload);
the same arguments give the same counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from vino.graft import Graft, Quota
from vino.kernel import params
from vino.kernel.cache import AddressSpace
from vino.kernel.device import DiskProfile
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.kernel.proc import Process
from vino.kernel.sched import cpu_hog, interactive_loop
from vino.sdk.build import SDK_DIR, sample_path

__all__ = [
    "EVICT_COLD_BASE",
    "EVICT_COLD_PER_ROUND",
    "EVICT_FRAMES",
    "EVICT_HOT",
    "EVICT_ROUNDS",
    "HOSTILE_DIR",
    "RA_FILE_BLOCKS",
    "SCHED_HOGS",
    "SCHED_UI_BURST_NS",
    "SCHED_UI_WAIT_NS",
    "booted",
    "encryption_run",
    "evict_rounds",
    "eviction_run",
    "graft_figures",
    "hostile_path",
    "hot_pages_intact",
    "hot_set_message",
    "pattern",
    "readahead_scan",
    "sample",
    "sched_run",
    "write_hot_pages",
]

BS: Final = params.BLOCK_SIZE
HOSTILE_DIR: Final = SDK_DIR / "hostile"

RA_FILE_BLOCKS: Final = 256  # the file readahead_scan reads backwards
EVICT_FRAMES: Final = 48  # page frames of eviction_run's kernel
EVICT_HOT: Final = tuple(range(16))  # the important pages (told to the graft)
EVICT_COLD_BASE: Final = 1000  # the first cold page
EVICT_COLD_PER_ROUND: Final = 64  # cold pages scanned once per round
EVICT_ROUNDS: Final = 12
SCHED_HOGS: Final = 4  # CPU hogs beside the interactive thread
SCHED_UI_BURST_NS: Final = 200_000  # the interactive thread's bursts (0.2 ms) ...
SCHED_UI_WAIT_NS: Final = 3_000_000  # ... between waits (3 ms)
SCHED_RUN_NS: Final = 2_000_000_000  # simulated time sched_run runs for
CHACHA_KEY: Final = hashlib.sha256(b"vino demo key").digest()
CHACHA_NONCE: Final = hashlib.sha256(b"vino demo nonce").digest()[:12]


def sample(name: str, python: bool = False) -> Path:
    """A sample graft: its C build (``.wasm``), or with ``python`` its Python twin (``.py``)."""
    return sample_path(f"{name}.py" if python else f"{name}.wasm")


def hostile_path(name: str) -> Path:
    """A hostile graft: ``name`` as WAT, or as given when it has an extension (``.py``)."""
    return HOSTILE_DIR / (name if "." in name else f"{name}.wat")


@contextmanager
def booted(workdir: Path, name: str, **kw: Any) -> Iterator[Kernel]:
    """A fresh kernel on ``workdir/name.img`` (``Kernel.boot`` keywords), shut down after."""
    k = Kernel.boot(workdir / f"{name}.img", **kw)
    try:
        yield k
    finally:
        k.shutdown()


def pattern(nblocks: int, tag: str = "block") -> bytes:
    """Distinct, checkable content: each block names itself (``tag`` and its number)."""
    unit = [f"{tag} {i:06d} ".encode() for i in range(nblocks)]
    return b"".join((u * (BS // len(u) + 1))[:BS] for u in unit)


def write_file(k: Kernel, proc: Process, name: str, data: bytes, mode: int = 0o600) -> None:
    """Create file ``name``, owned by ``proc``'s user, and write ``data`` into it."""
    k.fs.create(proc.user, name, mode)
    with k.fs.open(proc, name, "w") as f:
        k.fs.write(f, data)


def hot_set_message(pages: tuple[int, ...] | list[int]) -> bytes:
    """The message that tells ``evict_keep`` (and ``sqlite_evict``) which pages matter."""
    return len(pages).to_bytes(4, "little") + b"".join(v.to_bytes(4, "little") for v in pages)


def graft_figures(g: Graft | None) -> dict[str, Any]:
    """A graft's calls, aborts and protection spent (zeros without a graft)."""
    if g is None:
        return {"graft_calls": 0, "graft_aborts": 0, "stats_overhead_ns": 0}
    return {"graft_calls": g.stats.commits, "graft_aborts": sum(g.stats.aborts.values()),
            "stats_overhead_ns": g.stats.overhead_ns + g.stats.graft_ns}


# ---- the four workloads ---------------------------------------------------------------------

def readahead_scan(workdir: Path, profile: DiskProfile, graft: bool,
                   nblocks: int = RA_FILE_BLOCKS, module: Path | None = None) -> dict[str, Any]:
    """Read a file backwards block by block (like ``tac`` on a log).

    ``module``: the read-ahead graft to install (default: the C sample).
    """
    with booted(workdir, f"ra-{profile.name}-{graft}", profile=profile) as k:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "tac")
        data = pattern(nblocks)
        write_file(k, proc, "log", data)
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
        fig = graft_figures(g)
        return {"requests": k.device.stats.reads - reads0,
                "device_ms": (k.device.stats.busy_ns - busy0) / 1e6,
                "intact": intact, "graft_calls": fig["graft_calls"],
                "graft_aborts": fig["graft_aborts"],
                "overhead_ms": fig["stats_overhead_ns"] / 1e6}


def write_hot_pages(aspace: AddressSpace) -> None:
    """The eviction workload's start: each hot page written once, naming itself."""
    for v in EVICT_HOT:
        aspace.write(v, f"hot page {v}".encode())


def hot_pages_intact(aspace: AddressSpace) -> bool:
    return all(aspace.read(v).startswith(f"hot page {v}".encode()) for v in EVICT_HOT)


def evict_rounds(aspace: AddressSpace, rounds: int) -> int:
    """The eviction workload's accesses after ``write_hot_pages``: ``rounds`` times, touch
    each hot page (a write), then scan ``EVICT_COLD_PER_ROUND`` new cold pages.

    Returns the faults taken on hot pages.
    """
    hot_faults = 0
    for r in range(rounds):
        for v in EVICT_HOT:
            hot_faults += aspace.touch(v, write=True)
        base = EVICT_COLD_BASE + EVICT_COLD_PER_ROUND * r
        for v in range(base, base + EVICT_COLD_PER_ROUND):
            aspace.touch(v)
    return hot_faults


def eviction_run(workdir: Path, graft: bool, rounds: int = EVICT_ROUNDS,
                 module: Path | None = None, quota: Quota | None = None,
                 with_cost: bool = False) -> dict[str, Any]:
    """A hot set of 16 pages re-used between scans of 64 cold pages, in 48 frames.

    ``module``: the eviction graft to install (default: the C sample); ``quota``:
    the installing user's (default: the kernel's default quota); ``with_cost``:
    also the protection the graft's statistics count (``stats_overhead_ns``, a
    timing: it differs from run to run, the other figures do not).
    """
    with booted(workdir, f"vm-{graft}", frames=EVICT_FRAMES) as k:
        alice = k.add_user("alice", quota)
        aspace = k.address_space(k.spawn(alice, "db"))
        g: Graft | None = None
        if graft:
            g = k.graft(alice, "vm.evict", module or sample_path("evict_keep.wasm"),
                        target=aspace)
            g.send(hot_set_message(EVICT_HOT))
        write_hot_pages(aspace)
        faults0 = aspace.faults
        hot_faults = evict_rounds(aspace, rounds)
        intact = hot_pages_intact(aspace)
        faults = aspace.faults - faults0  # the check's reads count: as the figures published
        k.check_invariants()
        fig = graft_figures(g)
        if not with_cost:
            del fig["stats_overhead_ns"]
        return {"faults": faults, "hot_faults": hot_faults, "intact": intact,
                "batched": k.cache.stats.batched, "stale": k.cache.stats.stale, **fig}


def sched_run(workdir: Path, graft: bool, module: Path | None = None) -> dict[str, Any]:
    """One interactive thread (0.2 ms bursts, 3 ms waits) among four CPU hogs."""
    with booted(workdir, f"sched-{graft}") as k:
        alice = k.add_user("alice")
        group = k.new_group(alice, "editor")
        proc = k.spawn(alice, "editor", group)
        for _ in range(SCHED_HOGS):
            k.sched.spawn(proc, cpu_hog())
        ui = k.sched.spawn(proc, interactive_loop(SCHED_UI_BURST_NS, SCHED_UI_WAIT_NS),
                           interactive=True)
        g: Graft | None = None
        if graft:
            g = k.graft(alice, "sched.pick", module or sample("sched_interactive"),
                        target=group)
        k.sched.run(until_ns=k.clock.now_ns() + SCHED_RUN_NS)
        lat = k.sched.latency(ui.tid)
        k.check_invariants()
        fig = graft_figures(g)
        return {"mean_ms": lat.mean_us / 1000, "p99_ms": lat.p99_us / 1000,
                "samples": lat.samples, "graft_calls": fig["graft_calls"],
                "graft_aborts": fig["graft_aborts"]}


def encryption_run(workdir: Path, module: Path | None = None) -> dict[str, Any]:
    """Write a secret through the ChaCha20 filter; look at the raw image; read it back."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    key, nonce = CHACHA_KEY, CHACHA_NONCE
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
    # Mount the image again: without the graft the file refuses every read (its seal is
    # stored in its inode: no ciphertext as data); with it, the secret.
    k2 = Kernel.boot(image, fresh=False)
    try:
        alice2 = k2.add_user("alice")
        proc2 = k2.spawn(alice2, "vault")
        with k2.fs.open(proc2, "secret", "r") as f:
            try:
                k2.fs.read(f, len(secret))
                refused = False
            except FilterUnavailable:
                refused = True
        with k2.fs.open(proc2, "secret", "r") as f:
            g2 = k2.graft(alice2, "fs.filter", module or sample("chacha20_filter"),
                          target=f.inode)
            g2.send(key + nonce)
            warm = k2.fs.read(f, len(secret))
        k2.check_invariants()
    finally:
        k2.shutdown()
    return {"roundtrip": back == secret, "plaintext_on_disk": secret[:40] in raw,
            "ciphertext_matches": expected in raw, "remount_without_key": refused,
            "remount_with_key": warm == secret, "graft_calls": calls, "graft_aborts": aborts}
