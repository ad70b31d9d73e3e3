"""Attacks on the plain write (``fspolicy.py``, ``FileIO._plain_overwrites``): whole
mapped blocks of a file no graft or seal can act on, given to the cache in one call.

It must change nothing a workload can measure (the same bytes on the device, the same
device requests, cache and file-system counts, history and position as the general
path), never hide a write from a graft or a policy that arrived after it warmed up,
never write past a filter's seal, and keep ``pwritev``'s promise when the device fails
in the middle: the writes not done are exactly those left, and nothing is lost.
"""

from __future__ import annotations

import errno

import pytest

from vino.kernel.errors import DeviceError, FilterUnavailable
from vino.kernel.fs import NDIRECT, OpenFile
from vino.kernel.inode import Inode
from vino.kernel.kernel import Kernel
from vino.testing.faults import Injector

from .kernel_world import BS, Boot, benign, make_file, pattern, read_file

BLOCKS = NDIRECT + 15  # past the direct blocks: the remembered block map serves them too
FAR = NDIRECT + 5  # a block mapped through the indirect block


def _opened(k: Kernel) -> OpenFile:
    """alice's file "f" of ``BLOCKS`` pattern blocks, open for reading and writing."""
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(BLOCKS))
    return k.fs.open(proc, "f", "rw")


def _workload(k: Kernel) -> dict[str, object]:
    """Overwrites of whole blocks (one and several, direct and indirect), partial
    blocks, writes past the end and into holes, a truncate and a sync between them, on
    a cache smaller than the file (write-back by eviction)."""
    w = _opened(k)
    fs = k.fs
    got: list[object] = []
    for i in range(40):
        b = (i * 7) % BLOCKS
        writes: list[tuple[int, bytes | bytearray]] = [
            (b * BS, pattern(1, f"a{i}")),
            (((b + 3) % (BLOCKS - 2)) * BS, pattern(2, f"b{i}")),
            (FAR * BS + 100, b"partial %d" % i),
        ]
        if i % 9 == 4:
            writes.append((fs.stat("f").size, pattern(1, f"grow{i}")))  # grows the file
        if i % 13 == 6:
            writes.append((fs.stat("f").size + 2 * BS, pattern(1, f"hole{i}")))  # a hole
        fs.pwritev(w, writes)
        fs.pwrite(w, ((i * 5) % BLOCKS) * BS, pattern(1, f"c{i}"))
        if i % 4 == 1:  # a journal's life: new blocks the inode maps directly, then unlinked
            fs.create(w.user, "j", 0o600)
            with fs.open(w.user, "j", "rw") as j:
                fs.pwritev(j, [(0, pattern(1, f"h{i}")[:28]), (BS, pattern(2, f"j{i}")),
                               (3 * BS + 100, pattern(2, f"k{i}")[:BS + 7])])
                if i % 8 == 1:
                    fs.fsync(j)
                got.append(fs.pread(j, 0, 5 * BS))
            fs.unlink(w.user, "j")
        fs.seek(w, ((i * 3) % BLOCKS) * BS)
        fs.write(w, pattern(1, f"d{i}"))
        got.append((w.pos, w.history))
        if i % 10 == 7:
            fs.sync()
        if i == 20:
            fs.truncate(w, (BLOCKS - 3) * BS + 10)
    got.append(fs.pread(w, 0, fs.stat("f").size))
    fs.close(w)
    fs.sync()
    k.check_invariants()
    stats = fs.stats.snapshot()
    plain = stats.pop("plain_writes")
    return {"data": got, "fs": stats, "plain": plain, "cache": k.cache.stats.snapshot(),
            "device": k.device.stats.snapshot()}


def test_the_plain_write_changes_nothing_a_workload_can_measure(boot: Boot) -> None:
    general_k = boot("general", frames=24)
    general_k.fs.plain_read = lambda of: False
    general = _workload(general_k)
    plain_k = boot("plain", frames=24)
    plain = _workload(plain_k)
    assert general.pop("plain") == 0
    served = plain.pop("plain")
    assert isinstance(served, int) and served > 100  # most overwrites went the plain way
    assert plain == general
    for k in (general_k, plain_k):  # and the image holds the same file
        k.shutdown()
    assert (boot.image(general_k).read_bytes() == boot.image(plain_k).read_bytes())


@pytest.mark.parametrize("point", ["fs.access", "fs.filter"])
def test_a_graft_installed_after_the_plain_write_warmed_up_sees_every_write(
        boot: Boot, point: str) -> None:
    k = boot()
    w = _opened(k)
    k.fs.pwritev(w, [(FAR * BS, pattern(1, "x")), (0, pattern(2, "y"))])
    assert k.fs.stats.plain_writes == 2
    g = k.graft(w.user, point, benign(point), target=w.inode)
    k.fs.pwritev(w, [(FAR * BS, pattern(1, "z")), (0, pattern(2, "z"))])
    k.fs.pwrite(w, 3 * BS, pattern(1, "q"))
    assert k.fs.stats.plain_writes == 2
    assert g.stats.commits == 4  # every block written went through the graft
    assert k.fs.pread(w, FAR * BS, BS) == pattern(1, "z")


@pytest.mark.parametrize("slot", ["on_access", "filter_policy"])
def test_a_policy_assigned_to_a_slot_after_plain_writes_is_called_on_the_next_write(
        boot: Boot, slot: str) -> None:
    k = boot()
    w = _opened(k)
    k.fs.pwrite(w, FAR * BS, pattern(1, "x"))
    assert k.fs.stats.plain_writes == 1
    calls: list[object] = []
    if slot == "filter_policy":
        def identity(inode: Inode, offset: int, data: bytearray, direction: int) -> None:
            calls.append((offset, direction))
        k.fs.filter_policy = identity
    else:
        k.fs.on_access = lambda inode, block, op: calls.append((block, op))
    k.fs.pwritev(w, [(FAR * BS, pattern(1, "y")), (0, pattern(1, "y"))])
    assert len(calls) == 2 and k.fs.stats.plain_writes == 1


def test_a_sealed_file_is_refused_not_written_plainly_once_its_filter_is_gone(
        boot: Boot) -> None:
    k = boot()
    w = _opened(k)
    g = k.graft(w.user, "fs.filter", benign("fs.filter"), target=w.inode)
    k.fs.pwrite(w, FAR * BS, pattern(1, "sealed"))  # the filter answered: the file is sealed
    g.remove()
    for _ in range(2):
        with pytest.raises(FilterUnavailable):
            k.fs.pwritev(w, [(0, pattern(1, "plain?"))])
    assert k.fs.stats.plain_writes == 0
    k.unseal(w.user, w.inode)
    k.fs.pwritev(w, [(0, pattern(1, "plain"))])
    assert k.fs.stats.plain_writes == 1


def test_plain_writes_failing_midway_leave_exactly_the_writes_not_done(boot: Boot) -> None:
    # Every frame holds a dirty block, so each plain write evicts one and writes it
    # back: the device fails at the third write-back.
    k = boot(frames=8)
    w = _opened(k)
    k.fs.sync()
    dirty = [(b * BS, pattern(1, f"dirty{b}")) for b in range(8)]
    k.fs.pwritev(w, list(dirty))
    writes: list[tuple[int, bytes | bytearray]] = [
        ((NDIRECT + b) * BS, pattern(1, f"new{b}")) for b in range(6)]
    inj = Injector()
    inj.on_exc("write", lambda site, n: DeviceError(errno.EIO, "write", -1, "disk.img"))
    with inj.patch(k.device, "write_blocks", "write"):
        inj.arm("write", 3)
        with pytest.raises(DeviceError):
            k.fs.pwritev(w, writes)
    assert [o for o, _ in writes] == [(NDIRECT + b) * BS for b in range(2, 6)]
    k.fs.pwritev(w, writes)  # the rest, once the device is well
    assert not writes
    k.fs.close(w)
    expect = bytearray(pattern(BLOCKS))
    for b in range(8):
        expect[b * BS:(b + 1) * BS] = pattern(1, f"dirty{b}")
    for b in range(6):
        expect[(NDIRECT + b) * BS:(NDIRECT + b + 1) * BS] = pattern(1, f"new{b}")
    k2 = boot.remount(k)
    assert read_file(k2, k2.root, "f") == bytes(expect)


def test_a_plain_append_the_cache_cannot_take_changes_nothing_and_can_be_retried(
        boot: Boot) -> None:
    # Every frame holds a dirty block: the new file's blocks evict them, and the device
    # fails at the second write-back. The new blocks are all given back.
    k = boot(frames=8)
    w = _opened(k)
    k.fs.sync()
    k.fs.pwritev(w, [(b * BS, pattern(1, f"dirty{b}")) for b in range(8)])
    k.fs.create(w.user, "j", 0o600)
    j = k.fs.open(w.user, "j", "rw")
    free = k.fs.free_blocks
    inj = Injector()
    inj.on_exc("write", lambda site, n: DeviceError(errno.EIO, "write", -1, "disk.img"))
    writes: list[tuple[int, bytes | bytearray]] = [(0, pattern(4, "journal"))]
    with inj.patch(k.device, "write_blocks", "write"):
        inj.arm("write", 2)
        with pytest.raises(DeviceError):
            k.fs.pwritev(j, writes)
    assert len(writes) == 1 and k.fs.stat("j").size == 0 and j.inode.direct[:4] == [0] * 4
    assert k.fs.free_blocks == free
    k.fs.check_invariants()
    k.fs.pwritev(j, writes)
    assert k.fs.pread(j, 0, 4 * BS) == pattern(4, "journal")
    k.fs.close(j)
    k2 = boot.remount(k)
    assert read_file(k2, k2.root, "j") == pattern(4, "journal")


def test_a_failed_plain_write_keeps_no_hold_on_the_callers_buffer(boot: Boot) -> None:
    # SQLite's VFS hands its pending bytearray to pwritev and grows it again after an
    # error: a view of it left in the traceback would make that a BufferError.
    k = boot(frames=8)
    w = _opened(k)
    k.fs.sync()
    k.fs.pwritev(w, [(b * BS, pattern(1, f"dirty{b}")) for b in range(8)])
    buf = bytearray(pattern(2, "mine"))
    inj = Injector()
    inj.on_exc("write", lambda site, n: DeviceError(errno.EIO, "write", -1, "disk.img"))
    with inj.patch(k.device, "write_blocks", "write"):
        inj.arm("write", 1)
        with pytest.raises(DeviceError) as failed:
            k.fs.pwritev(w, [((NDIRECT + 1) * BS, buf)])
    assert failed.value.__traceback__ is not None  # the frames are still alive
    buf += b"grown"
    buf.clear()
