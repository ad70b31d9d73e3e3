"""Attacks on the remembered block map (``Inode.bmap``) and on one-call pread / pwrite."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice
from vino.kernel.errors import AccessDenied, InvalidArgument, InvariantViolation
from vino.kernel.fs import NDIRECT, NPTR, FileSystem
from vino.kernel.proc import User

MakeDevice = Callable[..., BlockDevice]
BS = params.BLOCK_SIZE


def _mount(make_device: MakeDevice, clock: SimClock, frames: int = 64) -> FileSystem:
    dev = make_device(8192)  # the tests' 1100-block files are within alice's disk quota
    FileSystem.format(dev)
    return FileSystem.mount(dev, Cache(frames), clock)


def test_a_remembered_block_map_never_serves_blocks_a_truncate_freed(
        make_device: MakeDevice, sim_clock: SimClock, alice: User,
        bob: User) -> None:
    fs = _mount(make_device, sim_clock)
    nblocks = NDIRECT + NPTR + 40  # direct, single and double indirect
    first = os.urandom(nblocks * BS)
    fs.create(alice, "db")
    f = fs.open(alice, "db", "rw")
    fs.write(f, first)
    assert fs.pread(f, 0, len(first)) == first  # every block's place remembered
    ino = f.inode
    assert len(ino.remembered()) == nblocks - NDIRECT
    cut = (NDIRECT + 10) * BS + 5
    fs.truncate(f, cut)
    fs.sync()  # the freed blocks may now be given to anyone
    fs.create(bob, "other")
    g = fs.open(bob, "other", "rw")
    fs.write(g, b"\xee" * (nblocks - NDIRECT) * BS)  # takes the freed blocks
    second = os.urandom((nblocks - NDIRECT - 10) * BS)
    fs.pwrite(f, cut, second)
    fs.check_invariants()  # includes: what each inode remembers is what its map says
    want = first[:cut] + second
    assert fs.pread(f, 0, len(want) + BS) == want
    assert fs.pread(g, 0, BS) == b"\xee" * BS
    fs.close(f)
    fs.close(g)
    fs.unmount()


def test_a_page_read_walks_no_indirect_block_once_its_place_is_known(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    fs = _mount(make_device, sim_clock)
    fs.create(alice, "db")
    f = fs.open(alice, "db", "rw")
    fs.write(f, os.urandom((NDIRECT + NPTR + 8) * BS))
    far = (NDIRECT + NPTR + 3) * BS  # mapped through the double indirect block
    fs.pread(f, far, BS)
    before = fs.cache.stats.hits + fs.cache.stats.misses
    fs.pread(f, far, BS)
    assert fs.cache.stats.hits + fs.cache.stats.misses - before == 1  # the data block only
    fs.close(f)
    fs.unmount()


def test_a_file_longer_than_the_remembered_map_reads_right_past_its_end(
        make_device: MakeDevice, sim_clock: SimClock, alice: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An inode remembers the blocks below FS_BMAP_CACHE_ENTRIES only (the list would
    # grow with the file): here the single indirect leaf, not the double's. Every block
    # past it is walked to on each read, and reads, writes and a cut stay exact.
    cap = NDIRECT + NPTR
    monkeypatch.setattr(params, "FS_BMAP_CACHE_ENTRIES", cap)
    fs = _mount(make_device, sim_clock)
    nblocks = cap + 40
    data = bytearray(os.urandom(nblocks * BS))
    fs.create(alice, "big")
    f = fs.open(alice, "big", "rw")
    fs.write(f, data)
    for b in (3, NDIRECT + 7, cap - 1, cap, cap + 39, cap + 1, NDIRECT):
        assert fs.pread(f, b * BS, BS) == data[b * BS:(b + 1) * BS]
    assert len(f.inode.bmap) <= cap
    assert max(f.inode.remembered()) == cap - 1
    fs.pwrite(f, (cap + 5) * BS, b"\x5a" * BS)
    data[(cap + 5) * BS:(cap + 6) * BS] = b"\x5a" * BS
    fs.truncate(f, (cap + 20) * BS)
    del data[(cap + 20) * BS:]
    fs.check_invariants()
    assert fs.pread(f, 0, len(data) + BS) == data
    fs.close(f)
    fs.unmount()


def test_a_stale_remembered_block_is_caught_by_the_invariants(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    fs = _mount(make_device, sim_clock)
    fs.create(alice, "db")
    f = fs.open(alice, "db", "rw")
    fs.write(f, bytes((NDIRECT + 4) * BS))
    fs.pread(f, NDIRECT * BS, BS)
    f.inode.bmap[NDIRECT] = f.inode.remembered()[NDIRECT] + 1  # what a missed update leaves
    with pytest.raises(InvariantViolation, match="remembers block"):
        fs.check_invariants()


def test_pread_and_pwrite_are_seek_then_read_or_write(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    fs = _mount(make_device, sim_clock)
    fs.create(alice, "f")
    f = fs.open(alice, "f", "rw")
    assert fs.pwrite(f, 10, b"hello") == 5 and f.pos == 15
    assert fs.pread(f, 8, 100) == b"\0\0hello" and f.pos == 15
    assert fs.pread(f, 100, 10) == b"" and f.pos == 100
    for bad in (lambda: fs.pread(f, -1, 1), lambda: fs.pread(f, 0, -1),
                lambda: fs.pwrite(f, -1, b"x")):
        with pytest.raises(InvalidArgument):
            bad()
    r = fs.open(alice, "f", "r")
    with pytest.raises(AccessDenied):
        fs.pwrite(r, 0, b"x")
    assert fs.pread(r, 10, 5) == b"hello"
    fs.close(r)
    fs.close(f)
    fs.check_invariants()
