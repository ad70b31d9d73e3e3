"""Attacks on the plain read's miss in native code (``plainread.py`` 3., ``miss_locked``
in ``native/plainread.c``): the twin of ``Cache._miss`` with ``BlockDevice.read_into``
and the global clock, for a plain read of a block the cache does not hold.

It must change nothing a workload can measure (the same bytes, counts, clock time,
and the same frames holding the same blocks with the same bits, ticks and hand as
the Python miss), never show a frame another block's bytes, leave no trace when the
device fails the read, never run in place of an eviction policy (an address space's
page goes by its policy, asked exactly as before), and step aside for anything it is
not the twin of: a fault patched into the device or the cache, a crash plan, a lock
another thread holds.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from typing import Any

import pytest

from vino.graft.txn import thread_state
from vino.kernel import plainread
from vino.kernel.cache import Cache, PageInfo
from vino.kernel.errors import CacheBusy, KernelError
from vino.kernel.fs import OpenFile
from vino.kernel.kernel import Kernel
from vino.kernel.power import CrashPlan
from vino.testing.faults import InjectedFault, Injector
from vino.testing.leaks import blocks_kept

from .kernel_world import BS, Boot, make_file, pattern

BLOCKS = 70  # past the direct blocks: the remembered block map serves the rest
FRAMES = 24


pytestmark = pytest.mark.usefixtures("native_misses")


def _opened(k: Kernel, clean: bool = True) -> tuple[OpenFile, OpenFile]:
    """alice's file "f" of BLOCKS pattern blocks, open for reading and for writing; with
    ``clean``, written back (a dirty victim is the Python's to write back)."""
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(BLOCKS))
    if clean:
        k.fs.sync()
    return k.fs.open(proc, "f", "r"), k.fs.open(proc, "f", "rw")


def _frames(k: Kernel) -> list[tuple[Any, ...]]:
    """Every frame as the cache holds it, with what the clock and the policies see."""
    return [(f.dev is not None, f.block, f.aspace is not None, f.vpn, f.referenced, f.dirty,
             f.prefetched, f.pinned, f.last_use, bytes(f.data) if f.dev or f.aspace else None)
            for f in k.cache._frames]


def _state(k: Kernel) -> dict[str, Any]:
    c = k.cache
    return {"frames": _frames(k), "hand": c._hand, "tick": c._tick, "free": list(c._free),
            "files": sorted(b for _, b in c._files), "dirty": sorted(b for _, b in c._dirty_files),
            "cache": c.stats.snapshot(), "device": k.device.stats.snapshot(),
            "fs": k.fs.stats.snapshot(), "now": k.clock.now_ns()}


def _resident(k: Kernel, of: OpenFile, block: int) -> bool:
    return k.cache.is_resident(k.device, k.fs._bmap(of.inode, block))


def _workload(k: Kernel) -> dict[str, object]:
    """Jumps (the native miss), sequential runs (read-ahead: the general path, whose
    prefetched blocks the clock later takes), another handle's writes (dirty victims),
    and an address space's pages among the frames (taken by its own policy, which a spy
    records with whom it runs for), on a cache a third of the file, some of it free
    (a file unlinked), the rest dirty (the file just written)."""
    r, w = _opened(k, clean=False)
    make_file(k, r.user, "scratch", pattern(8, "scratch"))
    k.fs.unlink(r.user, "scratch")  # its blocks leave frames free: misses take them first
    free = k.cache.free_frames
    bob = k.add_user("bob")
    theirs = k.address_space(k.spawn(bob, "bob-app"))
    k.cache.min_resident = 4  # bob's faults take frames from everyone (rule 2)
    asked: list[tuple[str, list[int]]] = []
    builtin = k.cache.evict_policy

    def spy(aspace: Any, candidates: list[PageInfo]) -> int:
        acting = thread_state().acting
        asked.append((acting.name if acting else "", [c.vpn for c in candidates]))
        choice = builtin(aspace, candidates)
        assert isinstance(choice, int)
        return choice

    k.cache.evict_policy = spy
    content = {b: pattern(b + 1)[b * BS:] for b in range(BLOCKS)}
    got_ok = True
    order = [(i * 37 + 11) % BLOCKS for i in range(120)]
    order[40:40] = list(range(20, 34))  # scans: read-ahead, whose blocks the clock takes
    order[90:90] = list(range(3, 30))
    order[100:100] = list(range(45, 62))
    for i, b in enumerate(order):
        if i % 9 == 4:
            theirs.touch(i % 6, write=True)
        if i % 17 == 8:
            content[b] = pattern(1, f"w{i}")
            k.fs.pwrite(w, b * BS, content[b])
        got_ok &= k.fs.pread(r, b * BS, BS) == content[b]
    k.check_invariants()
    state = _state(k)
    plain = state["fs"].pop("plain_reads")  # the native read serves more reads plainly
    return {"bytes right": got_ok, "asked": asked, "free": free, "state": state, "plain": plain}


def test_the_native_miss_changes_nothing_a_workload_can_measure(boot: Boot) -> None:
    plainread.native_misses(False)
    served = plainread.served_misses()
    python = _workload(boot("python", frames=FRAMES))
    assert plainread.served_misses() == served
    plainread.native_misses(True)
    ahead = plainread.served_readahead()
    native = _workload(boot("native", frames=FRAMES))
    assert plainread.served_misses() - served > 40, "the native code loaded too few misses"
    assert plainread.served_readahead() - ahead > 20, "the native code read ahead too little"
    more, fewer = native.pop("plain"), python.pop("plain")
    assert isinstance(more, int) and isinstance(fewer, int) and more > fewer
    assert native["bytes right"] and python["bytes right"]
    assert python["asked"], "no eviction policy was asked: the workload missed its point"
    assert isinstance(python["free"], int) and python["free"] >= 4
    assert native == python


def test_frames_the_native_miss_reuses_never_show_another_blocks_bytes(boot: Boot) -> None:
    # Each frame's buffer goes to the spare and back many times over: every read, and
    # every resident block, is exactly its own block's bytes.
    k = boot(frames=8)
    r, _w = _opened(k)
    served = plainread.served_misses()
    for i in range(300):
        b = (i * 29 + 3) % BLOCKS
        assert k.fs.pread(r, b * BS, BS) == pattern(b + 1)[b * BS:]
    assert plainread.served_misses() - served > 200
    for (_, blk), frame in k.cache._files.items():
        assert bytes(frame.data) == k.device.read_block(blk)
    assert all(buf is not k.cache._spare for buf in (f.data for f in k.cache._frames))
    k.check_invariants()


def test_a_read_the_device_cannot_complete_leaves_no_trace_and_can_be_retried(
        boot: Boot) -> None:
    # The image is cut short behind the kernel's back: the native read declines having
    # changed nothing; the Python meets the short read and raises, claiming no frame,
    # evicting nothing. Grown back, the read is served (zeros: what the image holds).
    k = boot(frames=FRAMES)
    r, _w = _opened(k)
    for b in range(0, BLOCKS, 3):
        k.fs.pread(r, b * BS, BS)
    victim = BLOCKS - 2
    assert not _resident(k, r, victim)
    blk = k.fs._bmap(r.inode, victim)
    image = boot.image(k)
    size = image.stat().st_size
    before, served = _state(k), plainread.served_misses()
    os.truncate(image, blk * BS)
    try:
        with pytest.raises(KernelError):
            k.fs.pread(r, victim * BS, BS)
        after = _state(k)
    finally:
        os.truncate(image, size)
    assert plainread.served_misses() == served
    assert after["cache"]["misses"] == before["cache"]["misses"] + 1  # counted, as ever
    after["cache"]["misses"] = before["cache"]["misses"]
    assert {x: after[x] for x in ("frames", "hand", "tick", "free", "files", "cache", "device")} \
        == {x: before[x] for x in ("frames", "hand", "tick", "free", "files", "cache", "device")}
    k.check_invariants()
    assert k.fs.pread(r, victim * BS, BS) == bytes(BS)
    assert plainread.served_misses() == served + 1


def test_a_fault_injected_into_the_device_read_is_met_not_stepped_around(
        boot: Boot) -> None:
    k = boot(frames=FRAMES)
    r, _w = _opened(k)
    inj = Injector()
    served = plainread.served_misses()
    with inj.patch(k.device, "read_into", "device.read"):
        inj.arm("device.read", 1)
        assert not _resident(k, r, 40)
        with pytest.raises(InjectedFault):
            k.fs.pread(r, 40 * BS, BS)
        assert k.fs.pread(r, 40 * BS, BS) == pattern(41)[40 * BS:]
        assert inj.counts["device.read"] == 2  # the fault, then the retry: both the patch
    assert inj.fired["device.read"] == 1
    assert plainread.served_misses() == served
    assert not _resident(k, r, 10)
    assert k.fs.pread(r, 10 * BS, BS) == pattern(11)[10 * BS:]
    assert plainread.served_misses() == served + 1  # unpatched: native again
    k.check_invariants()


def test_a_patched_clock_or_an_armed_crash_plan_sends_every_miss_to_the_python(
        boot: Boot, monkeypatch: pytest.MonkeyPatch) -> None:
    k = boot(frames=8)
    r, _w = _opened(k)
    for b in range(0, 16, 2):  # the cache is full: each miss sweeps
        k.fs.pread(r, b * BS, BS)
    sweeps: list[int] = []
    sweep = Cache._sweep

    def counted(self: Cache) -> Any:
        sweeps.append(self._hand)
        return sweep(self)

    served = plainread.served_misses()
    monkeypatch.setattr(Cache, "_sweep", counted)
    for b in range(20, 30, 2):
        assert k.fs.pread(r, b * BS, BS) == pattern(b + 1)[b * BS:]
    assert len(sweeps) == 5 and plainread.served_misses() == served
    monkeypatch.undo()
    k.device.arm_crash(CrashPlan(at_write=1000))
    for b in range(40, 50, 2):
        assert k.fs.pread(r, b * BS, BS) == pattern(b + 1)[b * BS:]
    assert plainread.served_misses() == served
    k.device.disarm_crash()
    assert not _resident(k, r, 60)
    assert k.fs.pread(r, 60 * BS, BS) == pattern(61)[60 * BS:]
    assert plainread.served_misses() == served + 1
    k.check_invariants()


def test_a_miss_meeting_the_device_lock_held_waits_for_it_in_the_python(boot: Boot) -> None:
    k = boot(frames=FRAMES)
    r, _w = _opened(k)
    got: list[bytes] = []
    served = plainread.served_misses()
    k.fs.pread(r, 0, BS)  # asked plain_read: the next read is plain
    assert not _resident(k, r, 33)
    reader = threading.Thread(target=lambda: got.append(k.fs.pread(r, 33 * BS, BS)))
    with k.device._lock:
        reader.start()
        reader.join(0.05)
        assert reader.is_alive(), "the miss did not wait for the device's lock"
    reader.join()
    assert got == [pattern(34)[33 * BS:]]
    assert plainread.served_misses() == served
    assert not _resident(k, r, 3)
    assert k.fs.pread(r, 3 * BS, BS) == pattern(4)[3 * BS:]
    assert plainread.served_misses() == served + 1  # the lock free: native again
    k.check_invariants()


def _scans(k: Kernel) -> dict[str, Any]:
    """Scans of two files written a block of each in turn (their blocks interleave on
    the device: each read-ahead window is several runs), over a cache smaller than
    either, with the last scans racing the clock round the whole cache."""
    alice = k.add_user("alice")
    proc = k.spawn(alice, "alice-app")
    opened = []
    for name in ("a", "b"):
        k.fs.create(alice, name, 0o600)
        opened.append(k.fs.open(proc, name, "rw"))
    for i in range(BLOCKS):
        for j, of in enumerate(opened):
            k.fs.pwrite(of, i * BS, pattern(i + 1, "ab"[j])[i * BS:])
    k.fs.sync()
    ok = True
    for rounds in range(3):
        for j, of in enumerate(opened):
            for i in range(rounds * 7, BLOCKS):
                ok &= k.fs.pread(of, i * BS, BS) == pattern(i + 1, "ab"[j])[i * BS:]
    k.check_invariants()
    state = _state(k)
    state["fs"].pop("plain_reads")
    return {"bytes right": ok, "state": state}


def test_read_ahead_loaded_natively_in_scattered_runs_is_the_pythons_block_for_block(
        boot: Boot) -> None:
    plainread.native_misses(False)
    python = _scans(boot("python", frames=FRAMES))
    plainread.native_misses(True)
    ahead = plainread.served_readahead()
    native = _scans(boot("native", frames=FRAMES))
    assert plainread.served_readahead() - ahead > 100
    assert native["bytes right"] and python["bytes right"]
    assert native == python


def _leak_check(k: Kernel, calls: int) -> None:
    r, _w = _opened(k)
    at = [0]

    def run() -> bytes:
        # runs of four blocks from scattered starts: a miss, then sequential steps whose
        # read-ahead loads; every seventh read unaligned (declined: the Python's)
        i = at[0] = at[0] + 1
        b = (i // 4 * 29 + i % 4) % BLOCKS
        return k.fs.pread(r, b * BS + (i % 7 == 0), BS)

    misses, ahead = plainread.served_misses(), plainread.served_readahead()
    kept = blocks_kept(run, calls)
    assert plainread.served_misses() - misses > calls // 10, "too few native misses"
    assert plainread.served_readahead() - ahead > calls // 10, "too little native read-ahead"
    assert kept < calls // 10, f"{kept} blocks kept by {calls} reads"
    k.check_invariants()


def test_misses_and_read_ahead_loaded_natively_again_and_again_leak_nothing(
        boot: Boot) -> None:
    """Every frame a victim again and again, runs read ahead, reads declined: a
    reference kept by mistake shows as a block per read."""
    _leak_check(boot(frames=8), 3_000)


@pytest.mark.slow
def test_misses_and_read_ahead_loaded_natively_leak_nothing_over_many_reads(
        boot: Boot) -> None:
    _leak_check(boot(frames=8), 200_000)


@pytest.mark.parametrize("path", ["native", "python"])
def test_a_finalizer_run_by_the_collector_inside_a_load_cannot_reenter_it(
        boot: Boot, path: str) -> None:
    """The native read allocates tuples (the cache's keys) while the frames a load has
    chosen are pinned and the clock's bits cleared: an allocation may start the cyclic
    collector, whose finalizers run any code -- here a read of another block, on the same
    thread (the cache's lock is re-entrant). Run inside the native read, it served
    another block's bytes and left two frames mapping one block; the native read now
    holds the collector off while it holds the lock, and so does the Python miss (its
    spare buffer and the frame its clock chose were another load's to take)."""
    plainread.native_misses(path == "native")  # the fixture puts it back
    k = boot(frames=8)
    r, _w = _opened(k)
    got: list[tuple[int, bytes]] = []

    class Reader:
        def __init__(self, block: int) -> None:
            self.block = block
            self.cycle = self  # garbage only the collector frees

        def __del__(self) -> None:
            got.append((self.block, k.fs.pread(r, self.block * BS, BS)))

    served = plainread.served_misses()
    threshold = gc.get_threshold()
    gc.collect()
    try:
        for i in range(300):
            gc.set_threshold(1 + i % 7)  # a collection at one allocation or another
            Reader((i * 13 + 5) % BLOCKS)
            b = (i * 29 + 3) % BLOCKS
            got.append((b, k.fs.pread(r, b * BS, BS)))
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    assert (plainread.served_misses() - served > 50) == (path == "native")
    assert len(got) > 500
    assert all(data == pattern(b + 1)[b * BS:] for b, data in got)
    for (_, blk), frame in k.cache._files.items():
        assert bytes(frame.data) == k.device.read_block(blk)
    k.check_invariants()


@pytest.mark.parametrize(("where", "path"), [("device read", "python"),
                                             ("eviction policy", "native"),
                                             ("eviction policy", "python")])
def test_a_signal_handler_reading_a_file_inside_a_load_cannot_take_its_buffer_or_frame(
        boot: Boot, where: str, path: str) -> None:
    """A signal handler runs between any two bytecodes of the thread it interrupts: amid
    a miss's load (the collector is held off, a signal is not), a handler that reads a
    file re-entered the cache (its lock is re-entrant) and took the load's spare buffer:
    the load read its block into the buffer the handler's frame had just taken, and a
    frame showed another block's bytes. The handler's read is now refused (CacheBusy)
    while a load is under way -- in the device's read (a patched read_into sends the
    signal), or in the eviction policy the load asks (its inner read native or not) --
    and served as ever outside one."""
    plainread.native_misses(path == "native")  # the fixture puts it back
    k = boot(frames=8)
    r, _w = _opened(k)
    got: list[tuple[int, bytes]] = []
    refused: list[int] = []
    nth = [0]
    handling = [False]

    def handler(signum: int, _frame: object) -> None:
        nth[0] += 1
        b = (nth[0] * 17 + 1) % BLOCKS
        handling[0] = True
        try:
            got.append((b, k.fs.pread(r, b * BS, BS)))
        except CacheBusy:
            refused.append(b)
        finally:
            handling[0] = False

    def interrupt() -> None:
        if not handling[0]:  # (the handler's own loads are not interrupted)
            os.kill(os.getpid(), signal.SIGUSR1)  # handled at once, before this returns

    if where == "device read":
        real = k.device.read_into

        def read_into(n: int, *bufs: bytearray | memoryview) -> None:
            interrupt()
            real(n, *bufs)

        k.device.read_into = read_into  # type: ignore[method-assign]
    else:
        theirs = k.address_space(k.spawn(k.add_user("bob"), "bob-app"))
        k.cache.min_resident = 1  # bob's pages are the global clock's to take (rule 2)
        builtin = k.cache.evict_policy

        def policy(aspace: Any, candidates: list[PageInfo]) -> Any:
            interrupt()
            return builtin(aspace, candidates)

        k.cache.evict_policy = policy
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        for i in range(120):
            if where == "eviction policy" and i % 3 == 0:
                theirs.touch(i % 5, write=True)
            b = (i * 29 + 3) % BLOCKS
            got.append((b, k.fs.pread(r, b * BS, BS)))
        vars(k.device).pop("read_into", None)
        k.cache.evict_policy = k.cache._evict_choice
        before = (len(got), len(refused))
        os.kill(os.getpid(), signal.SIGUSR1)  # outside any load: served as ever
        assert (len(got), len(refused)) == (before[0] + 1, before[1])
    finally:
        vars(k.device).pop("read_into", None)
        k.cache.evict_policy = k.cache._evict_choice
        signal.signal(signal.SIGUSR1, old)
    assert all(data == pattern(b + 1)[b * BS:] for b, data in got)
    for (_, blk), frame in k.cache._files.items():
        assert bytes(frame.data) == k.device.read_block(blk)
    k.check_invariants()
    assert len(refused) > 10  # the handler did run inside loads
