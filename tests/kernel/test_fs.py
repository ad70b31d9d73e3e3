"""Attacks on the file system: rights, names, space, holes, persistence, policies, invariants."""

from __future__ import annotations

import functools
import inspect
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice
from vino.kernel.errors import (
    AccessDenied,
    BadHandle,
    CorruptFileSystem,
    FileExists,
    InvalidArgument,
    NoSpace,
    NoSuchFile,
)
from vino.kernel.fs import (
    FILTER_READ,
    FILTER_WRITE,
    MAX_FILE_SIZE,
    NDIRECT,
    NINDIRECT,
    NPTR,
    OP_READ,
    OP_WRITE,
    FileSystem,
    Inode,
    OpenFile,
    sequential_readahead,
)
from vino.kernel.proc import Process, User
from vino.testing.threads import run_threads

MakeDevice = Callable[..., BlockDevice]  # the make_device fixture (conftest.py)
BS = params.BLOCK_SIZE


@dataclass
class Mounted:
    dev: BlockDevice
    fs: FileSystem
    clock: SimClock

    def remount(self, nframes: int = 64) -> FileSystem:
        """Unmount and mount again with a fresh, empty cache."""
        self.fs.unmount()
        self.fs = FileSystem.mount(self.dev, Cache(nframes), self.clock)
        return self.fs


@pytest.fixture
def mounted(make_device: MakeDevice, sim_clock: SimClock) -> Iterator[Mounted]:
    """A formatted 8 MiB image mounted with a 64-frame cache; invariants checked at the end."""
    dev = make_device(2048)
    FileSystem.format(dev)
    m = Mounted(dev, FileSystem.mount(dev, Cache(64), sim_clock), sim_clock)
    yield m
    if m.fs.mounted:
        m.fs.check_invariants()


def _write_file(fs: FileSystem, user: User, name: str, data: bytes, mode: int = 0o644) -> None:
    fs.create(user, name, mode)
    with fs.open(user, name, "w") as f:
        fs.write(f, data)


def _read_file(fs: FileSystem, user: User, name: str) -> bytes:
    with fs.open(user, name, "r") as f:
        return fs.read(f, MAX_FILE_SIZE)



def _replace(obj: object, slot: str, fn: Callable[..., object]) -> None:
    """Plug ``fn`` into a policy slot of one instance, the way a graft point does."""
    setattr(obj, slot, fn)

# ---- basic behaviour and persistence -----------------------------------------------------------


def test_write_then_read_back_through_the_cache(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "notes")
    with fs.open(alice, "notes", "rw") as f:
        assert fs.write(f, b"hello, world") == 12
        fs.seek(f, 7)
        assert fs.read(f, 100) == b"world"
        assert fs.read(f, 100) == b""  # at end of file
    st_ = fs.stat("notes")
    assert (st_.size, st_.uid, st_.mode, st_.blocks) == (12, alice.uid, 0o644, 1)
    assert fs.listdir() == ["notes"]


def test_everything_survives_unmount_close_and_a_fresh_mount(
        make_device: MakeDevice, sim_clock: SimClock, tmp_path: Path, alice: User,
        bob: User) -> None:
    dev = make_device(4608)  # big is within alice's disk quota
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    rng = random.Random(1)
    big = rng.randbytes((NDIRECT + NINDIRECT + 40) * BS)  # direct, single and double indirect
    small = b"tiny"
    _write_file(fs, alice, "big", big, 0o600)
    _write_file(fs, bob, "small", small, 0o640)
    fs.create(alice, "sparse")
    with fs.open(alice, "sparse", "rw") as f:
        fs.seek(f, (NDIRECT + 50) * BS + 17)  # a hole across the indirect boundary
        fs.write(f, b"tail")
    fs.create(alice, "gone")
    fs.unlink(alice, "gone")
    fs.check_invariants()
    fs.unmount()
    dev.close()
    assert b"tiny" in (tmp_path / "disk.img").read_bytes()  # really on the disk image
    with BlockDevice.open(tmp_path / "disk.img", clock=sim_clock, durable=False) as dev2:
        fs2 = FileSystem.mount(dev2, Cache(8), sim_clock)  # another, smaller cache
        fs2.check_invariants()
        assert fs2.listdir() == ["big", "small", "sparse"]
        assert _read_file(fs2, alice, "big") == big
        assert _read_file(fs2, bob, "small") == small
        sparse = _read_file(fs2, alice, "sparse")
        assert sparse == bytes((NDIRECT + 50) * BS + 17) + b"tail"
        assert fs2.stat("sparse").blocks == 1
        assert (fs2.stat("big").uid, fs2.stat("big").mode) == (alice.uid, 0o600)
        assert (fs2.stat("small").uid, fs2.stat("small").mode) == (bob.uid, 0o640)
        fs2.unmount()


def test_max_file_size_is_at_least_4_mib() -> None:
    assert MAX_FILE_SIZE >= 4 << 20


def test_growing_past_the_largest_file_fails_and_changes_nothing(
        mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "f")
    with fs.open(alice, "f", "rw") as f:
        fs.write(f, b"x" * 100)
        free = fs.free_blocks
        fs.seek(f, MAX_FILE_SIZE - 2)
        with pytest.raises(NoSpace, match="largest"):
            fs.write(f, b"abc")
        assert fs.free_blocks == free and fs.stat("f").size == 100
        fs.write(f, b"ab")  # exactly up to the limit is fine
    assert fs.stat("f").size == MAX_FILE_SIZE


def test_a_write_is_told_exactly_the_blocks_it_will_take_across_holes_and_indirect_levels(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    # The space check before a write counts what it will allocate (data and indirect
    # blocks, looked up once per leaf, nothing past the end of file): too few and a
    # write fails half done, too many and a disk with room refuses it.
    dev = make_device(8192)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(64), sim_clock)
    fs.create(alice, "f")
    rng = random.Random(7)
    span = NDIRECT + 3 * NPTR  # direct, the single indirect and three double-indirect leaves
    with fs.open(alice, "f", "rw") as f:
        for step in range(40):
            if step % 10 == 9:
                fs.truncate(f, rng.randrange(f.inode.size + 1))
            start = rng.choice((rng.randrange(span * BS),  # anywhere, or across the end
                                max(0, f.inode.size - rng.randrange(1, 3 * BS))))
            n = rng.randrange(1, rng.choice((2, 40, 300)) * BS)
            first, last = start // BS, (start + n - 1) // BS
            need = fs._blocks_needed(f.inode, first, last)
            free = fs.free_blocks
            fs.pwrite(f, start, rng.randbytes(n))
            assert free - fs.free_blocks == need, (step, start, n)
        fs.check_invariants()


def test_a_full_disk_refuses_the_whole_write_and_recovers_after_unlink(
        make_device: MakeDevice, sim_clock: SimClock, root_user: User) -> None:
    # root fills it: a user's disk quota would stop her first (test_disk_quota.py)
    dev = make_device(64)
    FileSystem.format(dev, ninodes=32)
    fs = FileSystem.mount(dev, Cache(16), sim_clock)
    fs.create(root_user, "a")
    fs.create(root_user, "b")
    with fs.open(root_user, "a", "w") as f:
        fs.write(f, bytes((fs.free_blocks - 1) * BS))  # fill the disk exactly (+1 indirect)
    assert fs.free_blocks == 0
    with fs.open(root_user, "b", "w") as g:
        with pytest.raises(NoSpace):
            fs.write(g, b"!")
        assert fs.stat("b").size == 0
        fs.check_invariants()
        fs.unlink(root_user, "a")
        assert fs.write(g, b"!" * 10 * BS) == 10 * BS
    fs.check_invariants()


def test_running_out_of_inodes_is_no_space(make_device: MakeDevice, root_user: User,
                                           sim_clock: SimClock) -> None:
    dev = make_device(64)
    FileSystem.format(dev, ninodes=32)  # inode 0 and the root are taken; root is not
    # held to a disk quota (a user is, test_disk_quota.py)
    fs = FileSystem.mount(dev, Cache(8), sim_clock)
    for i in range(30):
        fs.create(root_user, f"f{i}")
    with pytest.raises(NoSpace, match="inode"):
        fs.create(root_user, "one-too-many")
    assert "one-too-many" not in fs.listdir()
    fs.unlink(root_user, "f3")
    fs.create(root_user, "one-too-many")
    fs.check_invariants()


def test_seek_past_the_end_leaves_a_hole_that_reads_as_zeros(mounted: Mounted,
                                                              alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "h")
    with fs.open(alice, "h", "rw") as f:
        fs.write(f, b"head")
        fs.seek(f, 100_000)
        fs.write(f, b"end")
        fs.seek(f, 0)
        data = fs.read(f, 200_000)
    assert data == b"head" + bytes(100_000 - 4) + b"end"
    assert fs.stat("h").blocks == 2  # the blocks in between were never allocated
    assert fs.stats.hole_reads == 100_000 // BS - 1


def test_extending_a_file_inside_its_last_block_never_shows_stale_bytes(
        mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "f")
    with fs.open(alice, "f", "rw") as f:
        fs.write(f, b"A" * 3000)
    with fs.open(alice, "f", "w") as f:  # truncate: the freed block may come back
        fs.write(f, b"B" * 10)
        fs.seek(f, 20)
        fs.write(f, b"C")
    assert _read_file(fs, alice, "f") == b"B" * 10 + bytes(10) + b"C"


def test_a_recycled_indirect_block_carries_no_stale_pointers(mounted: Mounted,
                                                              alice: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "old", os.urandom((NDIRECT + 30) * BS))
    fs = mounted.remount()  # the old indirect block, full of pointers, is on the disk now
    with fs.open(alice, "old", "w"):
        pass  # frees it
    fs.create(alice, "new")
    with fs.open(alice, "new", "rw") as f:
        fs.seek(f, (NDIRECT + 29) * BS)  # only the last pointer of a fresh indirect block
        fs.write(f, b"z")
    fs.check_invariants()
    assert _read_file(fs, alice, "new") == bytes((NDIRECT + 29) * BS) + b"z"
    assert fs.stat("new").blocks == 1


def test_a_block_map_remembered_a_whole_leaf_at_a_time_never_lies(mounted: Mounted,
                                                                    alice: User) -> None:
    # One read past the direct blocks remembers every pointer of its leaf indirect block
    # (holes as 0): writes into those holes, a truncate into the leaf, a regrowth and an
    # unmount must leave what is remembered equal to the map (check_invariants walks it).
    rng = random.Random(3)
    model = bytearray()

    def put(fs: FileSystem, f: OpenFile, block: int, data: bytes) -> None:
        fs.seek(f, block * BS)
        fs.write(f, data)
        end = block * BS + len(data)
        model.extend(bytes(max(0, end - len(model))))
        model[block * BS:end] = data

    fs = mounted.fs
    fs.create(alice, "f")
    with fs.open(alice, "f", "rw") as f:
        for block in (NDIRECT + 2, NDIRECT + 9, NDIRECT + 40):  # a leaf mostly of holes
            put(fs, f, block, rng.randbytes(BS))
    fs = mounted.remount()
    with fs.open(alice, "f", "rw") as f:
        fs.seek(f, (NDIRECT + 9) * BS)
        assert fs.read(f, BS) == model[(NDIRECT + 9) * BS:(NDIRECT + 10) * BS]
        assert len(f.inode.remembered()) == NPTR  # the whole leaf, from one read
        fs.check_invariants()
        put(fs, f, NDIRECT + 5, rng.randbytes(BS))  # a remembered hole gets a block
        fs.check_invariants()
        fs.truncate(f, (NDIRECT + 7) * BS + 100)  # cut inside the leaf
        del model[(NDIRECT + 7) * BS + 100:]
        fs.check_invariants()
        fs.seek(f, 0)
        assert fs.read(f, len(model) + BS) == model
        put(fs, f, NDIRECT + 30, rng.randbytes(BS))  # grown again over forgotten pointers
        fs.seek(f, 0)
        assert fs.read(f, len(model) + BS) == model
        fs.check_invariants()
    fs = mounted.remount()
    assert _read_file(fs, alice, "f") == model


def test_open_for_w_truncates_and_frees_the_blocks(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "t")
    free = fs.free_blocks
    with fs.open(alice, "t", "w") as f:
        fs.write(f, bytes(40 * BS))
    assert fs.free_blocks == free - 41  # 40 data + 1 indirect
    with fs.open(alice, "t", "w"):
        pass
    assert fs.free_blocks == free and fs.stat("t").size == 0


def test_an_unlinked_open_file_lives_until_its_last_close(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "first")  # the directory's first block is allocated now
    free = fs.free_blocks
    _write_file(fs, alice, "u", b"still here" * 1000)
    f = fs.open(alice, "u", "r")
    fs.unlink(alice, "u")
    assert "u" not in fs.listdir()
    with pytest.raises(NoSuchFile):
        fs.open(alice, "u")
    fs.check_invariants()
    assert fs.read(f, 10) == b"still here"
    fs.close(f)
    assert fs.free_blocks == free
    fs.create(alice, "u")  # the name is free again
    assert fs.stat("u").size == 0


def test_a_crash_with_an_unlinked_open_file_leaks_no_blocks(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    cache = Cache(32)
    fs = FileSystem.mount(dev, cache, sim_clock)
    fs.create(alice, "first")  # the directory's first block is allocated now
    free = fs.free_blocks
    _write_file(fs, alice, "victim", bytes(20 * BS))
    fs.open(alice, "victim", "r")
    fs.unlink(alice, "victim")
    fs.sync()  # the metadata commits, then the machine "crashes"
    cache.invalidate(dev)
    fs2 = FileSystem.mount(dev, Cache(32), sim_clock)
    assert fs2.free_blocks == free
    fs2.check_invariants()


def test_mount_refuses_images_that_are_not_a_file_system(
        make_device: MakeDevice, sim_clock: SimClock) -> None:
    blank = make_device(64, "blank.img")
    cache = Cache(8)
    with pytest.raises(CorruptFileSystem, match="magic"):
        FileSystem.mount(blank, cache, sim_clock)
    assert blank.stats.writes == 0 and cache.free_frames == 8
    dev = make_device(64)
    FileSystem.format(dev)
    sb = bytearray(dev.read_block(0))
    sb[8] = 99  # version
    dev.write_block(0, sb)
    writes = dev.stats.writes
    with pytest.raises(CorruptFileSystem, match="version"):
        FileSystem.mount(dev, cache, sim_clock)
    sb[8] = params.FS_VERSION
    sb[16] ^= 1  # nblocks no longer matches the device
    dev.write_block(0, sb)
    with pytest.raises(CorruptFileSystem, match="geometry"):
        FileSystem.mount(dev, cache, sim_clock)
    assert dev.stats.writes == writes + 1 and cache.free_frames == 8
    with pytest.raises(InvalidArgument, match="too small"):
        FileSystem.format(make_device(2, "tiny.img"))


def test_unmounted_file_system_and_closed_files_refuse_service(mounted: Mounted,
                                                               alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "x")
    f = fs.open(alice, "x", "rw")
    fs.close(f)
    fs.close(f)  # idempotent
    for op in (lambda: fs.read(f, 1), lambda: fs.write(f, b"1"), lambda: fs.seek(f, 0)):
        with pytest.raises(BadHandle):
            op()
    g = fs.open(alice, "x", "r")
    fs.unmount()
    assert g.closed  # unmount closed it
    with pytest.raises(BadHandle):
        fs.open(alice, "x")
    with pytest.raises(BadHandle):
        fs.listdir()


@pytest.mark.parametrize("bad", [-1])
def test_negative_reads_and_seeks_are_refused(mounted: Mounted, alice: User, bad: int) -> None:
    fs = mounted.fs
    fs.create(alice, "x")
    with fs.open(alice, "x", "rw") as f:
        with pytest.raises(InvalidArgument):
            fs.read(f, bad)
        with pytest.raises(InvalidArgument):
            fs.seek(f, bad)


# ---- permissions and names ---------------------------------------------------------------------


def test_another_user_cannot_read_a_private_file(mounted: Mounted, alice: User,
                                                 bob: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "diary", b"secret", 0o600)
    with pytest.raises(AccessDenied, match="bob") as err:
        fs.open(bob, "diary", "r")
    assert isinstance(err.value, PermissionError)
    with pytest.raises(AccessDenied):
        fs.open(Process(7, bob), "diary", "r")  # a process has its user's rights, no more
    assert _read_file(fs, alice, "diary") == b"secret"


def test_other_bits_allow_reading_but_not_writing(mounted: Mounted, alice: User,
                                                  bob: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "public", b"read me", 0o644)
    assert _read_file(fs, bob, "public") == b"read me"
    for mode in ("w", "rw"):
        with pytest.raises(AccessDenied):
            fs.open(bob, "public", mode)
    assert _read_file(fs, alice, "public") == b"read me"  # "w" did not truncate on refusal


def test_owner_bits_bind_the_owner_and_root_bypasses_them(
        mounted: Mounted, alice: User, bob: User, root_user: User) -> None:
    fs = mounted.fs
    fs.create(alice, "ro", 0o444)
    with pytest.raises(AccessDenied):
        fs.open(alice, "ro", "rw")
    with fs.open(root_user, "ro", "w") as f:
        fs.write(f, b"frozen")
    _write_file(fs, alice, "mine", b"private", 0o600)
    assert _read_file(fs, root_user, "mine") == b"private"
    with fs.open(root_user, "ro", "rw") as f:
        fs.write(f, b"F")
    assert _read_file(fs, bob, "ro") == b"Frozen"


def test_an_open_for_reading_cannot_write_and_vice_versa(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "f", b"abc")
    with fs.open(alice, "f", "r") as f, pytest.raises(AccessDenied):
        fs.write(f, b"x")
    with fs.open(alice, "f", "w") as f, pytest.raises(AccessDenied):
        fs.read(f, 1)
    with pytest.raises(InvalidArgument):
        fs.open(alice, "f", "a")  # type: ignore[arg-type]


def test_only_the_owner_or_root_may_unlink(mounted: Mounted, alice: User, bob: User,
                                           root_user: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "a", b"1", 0o666)  # even world-writable
    _write_file(fs, alice, "b", b"2", 0o666)
    with pytest.raises(AccessDenied, match="does not own"):
        fs.unlink(bob, "a")
    assert fs.listdir() == ["a", "b"]
    fs.unlink(alice, "a")
    fs.unlink(root_user, "b")
    assert fs.listdir() == []


@pytest.mark.parametrize("name", ["", "a" * 61, "é" * 31, "a/b", "nul\0"])
def test_bad_names_are_refused(mounted: Mounted, alice: User, name: str) -> None:
    with pytest.raises(InvalidArgument, match="name"):
        mounted.fs.create(alice, name)
    assert mounted.fs.listdir() == []


def test_longest_name_works_and_duplicates_and_missing_names_are_refused(
        mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    longest = "é" * 30  # 60 bytes of UTF-8
    fs.create(alice, longest)
    with pytest.raises(FileExists):
        fs.create(alice, longest)
    fs = mounted.remount()
    assert fs.listdir() == [longest]
    for op in (lambda: fs.open(alice, "nope"), lambda: fs.stat("nope"),
               lambda: fs.unlink(alice, "nope")):
        with pytest.raises(NoSuchFile):
            op()
    with pytest.raises(InvalidArgument):
        fs.create(alice, "x", 0o1777)


# ---- the policies --------------------------------------------------------------------------------


def test_policy_methods_have_the_documented_signatures() -> None:
    def params_of(fn: Callable[..., object]) -> list[str]:
        return list(inspect.signature(fn).parameters)

    assert params_of(FileSystem._readahead) == ["self", "of", "block"]
    assert params_of(FileSystem._filter) == ["self", "inode", "file_offset", "data", "direction"]
    assert params_of(FileSystem._on_access) == ["self", "inode", "block", "op"]


def test_default_readahead_is_sequential_and_clipped() -> None:
    assert sequential_readahead(100, 1, [1, 0], 8) == list(range(2, 10))
    assert sequential_readahead(100, 5, [5, 4, 3], 8) == []  # inside a window: already asked
    assert sequential_readahead(100, 8, [8, 7, 6], 8) == list(range(9, 17))  # next window
    assert sequential_readahead(12, 8, [8, 7, 6], 8) == [9, 10, 11]  # end of file
    assert sequential_readahead(100, 9, [9, 3, 2], 8) == []  # a jump is not sequential
    assert sequential_readahead(100, 0, [0], 8) == []
    assert sequential_readahead(100, 1, [1, 0], 0) == []


def _scan_cost(m: Mounted, user: User, name: str, disable_readahead: bool) -> tuple[int, int]:
    fs = m.remount()
    if disable_readahead:
        _replace(fs, "readahead_policy", lambda of, block: [])
    reads, t0 = m.dev.stats.reads, m.clock.now_ns()
    with fs.open(user, name, "r") as f:
        while fs.read(f, BS):
            pass
    return m.dev.stats.reads - reads, m.clock.now_ns() - t0


def test_sequential_readahead_saves_device_reads_and_time(mounted: Mounted, alice: User) -> None:
    nblocks = 200
    data = os.urandom(nblocks * BS)
    _write_file(mounted.fs, alice, "seq", data)
    without_reads, without_ns = _scan_cost(mounted, alice, "seq", disable_readahead=True)
    with_reads, with_ns = _scan_cost(mounted, alice, "seq", disable_readahead=False)
    fs = mounted.fs
    assert without_reads >= nblocks
    assert with_reads * 4 < without_reads
    assert with_ns < without_ns
    assert fs.stats.prefetch_hits >= nblocks - 5 and fs.stats.prefetches >= nblocks - 5
    assert _read_file(fs, alice, "seq") == data


def test_readahead_does_not_fire_on_random_access(mounted: Mounted, alice: User) -> None:
    nblocks = 64
    _write_file(mounted.fs, alice, "rnd", os.urandom(nblocks * BS))
    fs = mounted.remount()
    order = [(i * 37) % nblocks for i in range(nblocks)]  # a stride: never block n then n + 1
    with fs.open(alice, "rnd", "r") as f:
        for b in order:
            fs.seek(f, b * BS)
            fs.read(f, BS)
    assert fs.stats.readahead_calls == nblocks
    assert fs.stats.readahead_blocks == fs.stats.prefetches == fs.stats.prefetch_hits == 0


def test_history_keeps_the_last_16_blocks_most_recent_first(mounted: Mounted,
                                                             alice: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "h", bytes(40 * BS))
    with fs.open(alice, "h", "r") as f:
        for b in range(20):
            fs.seek(f, b * BS)
            fs.read(f, 10)
            fs.read(f, 10)  # the same block again is not a new entry
        assert f.history == list(range(19, 3, -1))


def test_readahead_answers_outside_the_file_are_refused(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "f", bytes(4 * BS))
    for answer in ([4], [-1], [1, 1], list(range(fs.readahead_max + 1))):
        _replace(fs, "readahead_policy", lambda of, block, a=answer: a)
        with fs.open(alice, "f", "r") as f, pytest.raises(InvalidArgument, match="read-ahead"):
            fs.read(f, 1)
    fs.check_invariants()


def test_access_events_report_every_block_read_and_written(mounted: Mounted,
                                                           alice: User) -> None:
    fs = mounted.fs
    events: list[tuple[int, int, int]] = []
    _replace(fs, "on_access", lambda inode, block, op: events.append((inode.inum, block, op)))
    fs.create(alice, "e")
    inum = fs.stat("e").inum
    with fs.open(alice, "e", "rw") as f:
        fs.write(f, bytes(2 * BS + 1))
        fs.seek(f, BS)
        fs.read(f, BS + 1)
    assert events == [(inum, 0, OP_WRITE), (inum, 1, OP_WRITE), (inum, 2, OP_WRITE),
                      (inum, 1, OP_READ), (inum, 2, OP_READ)]


def _xor_filter(calls: list[tuple[int, int]]) -> Callable[[Inode, int, bytearray, int], None]:
    def xor(inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        calls.append((file_offset, direction))
        key = (file_offset // BS * 31 + 0x5A) & 0xFF
        data[:] = bytes(b ^ key for b in data)

    return xor


def test_filter_is_applied_on_the_way_to_disk_and_back(
        mounted: Mounted, alice: User, tmp_path: Path) -> None:
    fs = mounted.fs
    calls: list[tuple[int, int]] = []
    _replace(fs, "filter_policy", _xor_filter(calls))
    plain = b"attack at dawn! " * 700  # ~2.7 blocks
    _write_file(fs, alice, "secret", plain)
    with fs.open(alice, "secret", "rw") as f:  # a partial overwrite: read-modify-write
        fs.seek(f, 5000)
        fs.write(f, b"RETREAT")
    expected = plain[:5000] + b"RETREAT" + plain[5007:]
    assert _read_file(fs, alice, "secret") == expected
    assert {d for _, d in calls} == {FILTER_WRITE, FILTER_READ}
    assert all(off % BS == 0 for off, _ in calls)
    fs.unmount()
    image = (tmp_path / "disk.img").read_bytes()
    assert b"attack at dawn" not in image and b"RETREAT" not in image

    clear = FileSystem.mount(mounted.dev, Cache(16), mounted.clock)  # no filter: ciphertext
    stored = _read_file(clear, alice, "secret")
    assert len(stored) == len(expected) and stored != expected
    clear.unmount()

    again = FileSystem.mount(mounted.dev, Cache(16), mounted.clock)
    _replace(again, "filter_policy", _xor_filter([]))
    assert _read_file(again, alice, "secret") == expected
    mounted.fs = again


def test_a_filter_that_changes_the_length_is_refused(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "f")

    def shrink(inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        del data[-1]

    _replace(fs, "filter_policy", shrink)
    with fs.open(alice, "f", "w") as f, pytest.raises(InvalidArgument, match="length"):
        fs.write(f, b"abc")
    assert fs.stat("f").size == 0
    fs.check_invariants()


def test_directory_io_bypasses_the_policies(mounted: Mounted, alice: User,
                                           bob: User) -> None:
    fs = mounted.fs
    seen: list[int] = []
    _replace(fs, "filter_policy", lambda inode, off, data, d: seen.append(inode.inum))
    _replace(fs, "on_access", lambda inode, b, op: seen.append(inode.inum))
    for i in range(80):  # more than one directory block (two users: each one's quota)
        fs.create(alice if i % 2 else bob, f"n{i}")
    fs.unlink(alice, "n3")
    assert seen == []
    fs.check_invariants()


# ---- concurrency and random sequences --------------------------------------------------------


def test_concurrent_writers_on_different_files_keep_the_fs_consistent(
        mounted: Mounted, alice: User) -> None:
    fs = mounted.fs

    def worker(i: int) -> None:
        name = f"w{i}"
        payload = bytes([i]) * (5 * BS + i)
        _write_file(fs, alice, name, payload)
        assert _read_file(fs, alice, name) == payload

    run_threads(*(functools.partial(worker, i) for i in range(4)))
    fs.check_invariants()


class FsMachine(RuleBasedStateMachine):
    """Random creates, writes, reads, unlinks, truncations and remounts against a dict model,
    on a small disk with a tiny cache; every invariant is checked after every step."""

    filtered = False  # install an XOR filter on every mount

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = SimClock()
        self.dev = BlockDevice.create(Path(self.tmp.name, "d"), 160, clock=self.clock,
                                      durable=False)
        FileSystem.format(self.dev, ninodes=32)
        self.fs = self._mount()
        self.users = [User(0, "root"), User(1, "u1"), User(2, "u2")]
        self.model: dict[str, bytearray] = {}
        self.owner: dict[str, User] = {}

    names = st.sampled_from([f"f{i}" for i in range(6)])

    def _mount(self) -> FileSystem:
        fs = FileSystem.mount(self.dev, Cache(6), self.clock)
        if self.filtered:
            _replace(fs, "filter_policy", _xor_filter([]))
        return fs

    @initialize(who=st.integers(0, 2))
    def first_file(self, who: int) -> None:
        self.create("f0", who)

    @rule(name=names, who=st.integers(0, 2))
    def create(self, name: str, who: int) -> None:
        if name in self.model:
            with pytest.raises(FileExists):
                self.fs.create(self.users[who], name)
            return
        self.fs.create(self.users[who], name, 0o644)
        self.model[name] = bytearray()
        self.owner[name] = self.users[who]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), pos=st.integers(0, 160_000), size=st.integers(1, 9000))
    def write(self, data: st.DataObject, pos: int, size: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        payload = random.Random(pos * 7 + size).randbytes(size)
        with self.fs.open(self.owner[name], name, "rw") as f:
            self.fs.seek(f, pos)
            free = self.fs.free_blocks
            try:
                self.fs.write(f, payload)
            except NoSpace:
                assert self.fs.free_blocks == free
                return
        m = self.model[name]
        if len(m) < pos:
            m.extend(bytes(pos - len(m)))
        m[pos:pos + size] = payload

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), pos=st.integers(0, 170_000), size=st.integers(0, 20_000))
    def read(self, data: st.DataObject, pos: int, size: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        with self.fs.open(self.users[2], name, "r") as f:
            self.fs.seek(f, pos)
            assert self.fs.read(f, size) == bytes(self.model[name][pos:pos + size])

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        self.fs.close(self.fs.open(self.owner[name], name, "w"))
        self.model[name] = bytearray()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), who=st.integers(0, 2))
    def unlink(self, data: st.DataObject, who: int) -> None:
        name = data.draw(st.sampled_from(sorted(self.model)))
        user = self.users[who]
        if not user.is_root and user.uid != self.owner[name].uid:
            with pytest.raises(AccessDenied):
                self.fs.unlink(user, name)
            return
        self.fs.unlink(user, name)
        del self.model[name], self.owner[name]

    @rule()
    def remount(self) -> None:
        self.fs.unmount()
        self.fs = self._mount()

    @invariant()
    def consistent(self) -> None:
        self.fs.check_invariants()
        assert self.fs.listdir() == sorted(self.model)
        for name, m in self.model.items():
            assert self.fs.stat(name).size == len(m)

    def teardown(self) -> None:
        if self.fs.mounted:
            self.fs.unmount()
        self.dev.close()
        self.tmp.cleanup()


class FilteredFsMachine(FsMachine):
    filtered = True


_machine_settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
FsMachine.TestCase.settings = _machine_settings
FilteredFsMachine.TestCase.settings = _machine_settings
test_random_file_system_operations = FsMachine.TestCase
test_random_file_system_operations_through_a_filter = FilteredFsMachine.TestCase


def test_open_file_records_who_opened_it(mounted: Mounted, alice: User) -> None:
    fs = mounted.fs
    fs.create(alice, "p")
    proc = Process(42, alice)
    with fs.open(proc, "p", "r") as f:
        assert isinstance(f, OpenFile)
        assert f.process is proc and f.user is alice and f.readable and not f.writable


def test_an_inode_is_found_by_its_number_only_while_it_lives(mounted: Mounted,
                                                              alice: User) -> None:
    fs = mounted.fs
    _write_file(fs, alice, "f", b"x" * 10)
    inum = fs.stat("f").inum
    with fs.open(alice, "f", "r") as f:
        assert fs.inode(inum) is f.inode
    with pytest.raises(NoSuchFile):
        fs.inode(10_000)  # never used
    fs.unlink(alice, "f")
    with pytest.raises(NoSuchFile):
        fs.inode(inum)  # freed
