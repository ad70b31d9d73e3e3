"""Attacks on durability the crash loops of test_journal.py do not make: power cuts
during mount's replay of the log (again and again), device errors at every request
followed by a power cut, a full disk, the largest images.

After each: fsck clean, the image mounts, and every file is as it was at the last
completed sync or later (``crashloop.check_after_crash``).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from vino import crashloop
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.crash import CrashModel, crash_points
from vino.kernel.device import BlockDevice
from vino.kernel.errors import CorruptFileSystem, DeviceError, InvalidArgument, NoSpace
from vino.kernel.fs import MAX_FILE_SIZE, NDIRECT, NPTR, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.inode import MAX_FS_BLOCKS, Geometry
from vino.kernel.proc import User

BS = params.BLOCK_SIZE


def test_a_truncate_touching_every_bitmap_block_of_the_largest_image_commits(
        tmp_path: Path, alice: User) -> None:
    path = tmp_path / "largest.img"
    with BlockDevice.create(path, MAX_FS_BLOCKS, durable=False) as dev:
        FileSystem.format(dev, 64)
        fs = FileSystem.mount(dev, Cache(64), SimClock())
        fs.create(alice, "spread")
        geo = fs.geo
        with fs.open(alice, "spread", "rw") as f:
            for i in range(geo.bitmap_blocks):  # one block under every bitmap block, as a
                fs._alloc_hint = max(i * BS * 8, geo.data_start)  # long-used disk has them
                fs.pwrite(f, (NDIRECT + 2 * i) * BS, bytes([i % 251 + 1]) * BS)
            fs.sync()
            fs.truncate(f, 0)  # frees a block under every bitmap block: one transaction
        fs.sync()  # before the limit: "a transaction of 486 blocks does not fit the log"
        fs.create(alice, "after")
        fs.unmount()
        fs = FileSystem.mount(dev, Cache(64), SimClock())
        assert fs.stat("spread").size == 0 and "after" in fs.listdir()
        fs.unmount()
    assert check_image(path).clean


def test_an_image_past_the_largest_file_system_is_refused_by_format_and_mount(
        tmp_path: Path) -> None:
    path = tmp_path / "huge.img"
    nblocks = MAX_FS_BLOCKS + 1
    with BlockDevice.create(path, nblocks, durable=False) as dev:
        with pytest.raises(InvalidArgument, match="too large"):
            FileSystem.format(dev, 64)
        dev.write_block(0, Geometry.plan(nblocks, 64).pack(clean=True))  # as formatted before
        with pytest.raises(CorruptFileSystem, match="largest file system"):
            FileSystem.mount(dev, Cache(16), SimClock())
    assert not check_image(path).clean


def test_power_cuts_during_the_replay_at_mount_and_the_next_mount_lose_nothing(
        tmp_path: Path) -> None:
    figures = crashloop.run(tmp_path, stride=11, nops=24, replays=True)
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.replays >= 60  # every replay write of each cut's next two mounts


@pytest.mark.slow
def test_power_cuts_at_every_write_then_at_every_replay_write(tmp_path: Path) -> None:
    figures = crashloop.run(tmp_path, stride=1, replays=True)
    assert figures.failures == [], "\n".join(figures.failures[:10])


def test_a_workload_that_fills_the_disk_loses_nothing_at_any_power_cut(
        tmp_path: Path) -> None:
    # workload 16 truncates on the full disk: before truncate copied or committed first
    # there, three of these cuts found committed bytes zeroed
    figures = crashloop.run(tmp_path, stride=3, workload_seed=16, nops=96,
                            image_blocks=crashloop.FULL_DISK_BLOCKS)
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.full >= 3  # operations really met a full disk (NoSpace)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(11, 19))
def test_workloads_that_fill_the_disk_lose_nothing_at_any_power_cut(
        tmp_path: Path, seed: int) -> None:
    figures = crashloop.run(tmp_path, workload_seed=seed, seeds=4, nops=96,
                            image_blocks=crashloop.FULL_DISK_BLOCKS)
    assert figures.failures == [], "\n".join(figures.failures[:10])


@pytest.mark.parametrize(("persistent", "retry"), [(False, True), (True, False)])
def test_a_device_error_at_any_request_then_a_power_cut_loses_nothing_synced(
        tmp_path: Path, persistent: bool, retry: bool) -> None:
    figures = crashloop.run_eio(tmp_path, persistent=persistent, retry_sync=retry,
                                nops=24, stride=3)
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.tried["eio"] >= 10


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("retry", [False, True])
def test_a_device_error_at_every_request_then_a_power_cut(
        tmp_path: Path, persistent: bool, retry: bool) -> None:
    figures = crashloop.run_eio(tmp_path, persistent=persistent, retry_sync=retry)
    assert figures.failures == [], "\n".join(figures.failures[:10])


ROOT = User(0, "root")  # fills the disk: a user's disk quota stops her first


def _fill(fs: FileSystem, user: User, name: str) -> None:
    """Write ``name`` until the disk is full (every block in use)."""
    fs.create(user, name)
    with fs.open(user, name, "rw") as f:
        while fs.free_blocks:
            try:
                fs.pwrite(f, fs.stat(name).size, bytes([7]) * BS)
            except NoSpace:
                break


@pytest.mark.parametrize("model", list(CrashModel))
def test_a_truncate_on_a_full_disk_never_zeroes_committed_bytes_before_it_commits(
        tmp_path: Path, alice: User, model: CrashModel) -> None:
    base = tmp_path / "full.img"
    old = bytes(range(256)) * (3 * BS // 256)
    with BlockDevice.create(base, 128, durable=False) as dev:
        FileSystem.format(dev, 16)
        fs = FileSystem.mount(dev, Cache(8), SimClock())
        fs.create(alice, "victim")
        with fs.open(alice, "victim", "w") as f:
            fs.write(f, old)
        _fill(fs, ROOT, "filler")
        fs.unmount()
    new = old[:BS + 10]

    def truncate_and_sync(dev: BlockDevice) -> None:
        fs = FileSystem.mount(dev, Cache(8), SimClock())
        assert fs.free_blocks == 0
        with fs.open(alice, "victim", "rw") as f:
            fs.truncate(f, BS + 10)  # the disk is full: no block for a copy of the tail
        fs.sync()

    scratch = tmp_path / "x.img"
    for point in crash_points(base, scratch, truncate_and_sync, [model]):
        assert check_image(scratch).clean
        with BlockDevice.open(scratch, durable=False) as dev:
            fs = FileSystem.mount(dev, Cache(8), SimClock())
            with fs.open(alice, "victim", "r") as f:
                got = fs.read(f, 4 * BS)
        assert got in (old, new), f"{point}: {len(got)} bytes, " \
            f"{'old size, zeroed tail' if len(got) == len(old) else 'neither state'}"


@pytest.mark.parametrize("grow", ["write", "truncate"])
@pytest.mark.parametrize("model", list(CrashModel))
def test_a_truncate_whose_commit_fails_on_a_full_disk_never_lets_a_growth_zero_committed_bytes(
        tmp_path: Path, alice: User, model: CrashModel, grow: str) -> None:
    """A full disk, a device error in the commit inside a truncate (the truncate stays
    uncommitted, the block it cuts not yet zeroed), then a growing write zeroing that
    block's tail, then a power cut at every write: the file is never its old size with
    a zeroed tail."""
    base = tmp_path / "full.img"
    old = bytes(range(256)) * (3 * BS // 256)
    with BlockDevice.create(base, 128, durable=False) as dev:
        FileSystem.format(dev, 16)
        fs = FileSystem.mount(dev, Cache(8), SimClock())
        fs.create(alice, "victim")
        with fs.open(alice, "victim", "w") as f:
            fs.write(f, old)
        _fill(fs, ROOT, "filler")
        fs.unmount()
    grown = old[:BS + 10] + bytes(90) + (b"grow" if grow == "write" else bytes(4))

    def truncate_fails_then_grow(dev: BlockDevice) -> None:
        fs = FileSystem.mount(dev, Cache(8), SimClock())
        assert fs.free_blocks == 0
        real = dev.write_blocks
        failed: list[int] = []

        def eio_once(n: int, data: bytes | bytearray | memoryview) -> None:
            if not failed:
                failed.append(n)
                raise DeviceError(errno.EIO, "write", n, str(dev.path), "injected")
            real(n, data)

        with fs.open(alice, "victim", "rw") as f:
            dev.write_blocks = eio_once  # type: ignore[method-assign]
            with pytest.raises(DeviceError):
                fs.truncate(f, BS + 10)  # the disk is full: commits inside, which fails
            del dev.write_blocks
            assert failed
            if grow == "write":  # into the block cut at BS + 10, past its new end
                fs.pwrite(f, BS + 100, b"grow")
            else:
                fs.truncate(f, BS + 104)
        fs.sync()

    scratch = tmp_path / "x.img"
    for point in crash_points(base, scratch, truncate_fails_then_grow, [model]):
        assert check_image(scratch).clean, point
        with BlockDevice.open(scratch, durable=False) as dev:
            fs = FileSystem.mount(dev, Cache(8), SimClock())
            with fs.open(alice, "victim", "r") as f:
                got = fs.read(f, 4 * BS + 10)
        assert got in (old, old[:BS + 10], grown), \
            f"{point}: {len(got)} bytes, " \
            f"{'old size, zeroed tail' if len(got) == len(old) else 'neither state'}"


L1, L2, L3 = NDIRECT, NDIRECT + NPTR, NDIRECT + NPTR + NPTR * NPTR  # first single/double/triple
EDGES = (0, L1 - 1, L1, L2 - 1, L2, L2 + NPTR - 1, L2 + NPTR, L3 - 1, L3, L3 + NPTR * NPTR,
         MAX_FILE_SIZE // BS - 1)  # file blocks at every indirect boundary, the last one


def _edges(fs: FileSystem, user: User) -> tuple[int, dict[int, bytes]]:
    with fs.open(user, "big", "r") as f:
        size = fs.stat("big").size
        return size, {b: fs.pread(f, b * BS, min(BS, size - b * BS)) for b in EDGES
                      if b * BS < size}


def _truncates_across_indirect_boundaries(tmp_path: Path, alice: User,
                                          models: list[CrashModel], cuts: list[int]) -> int:
    base = tmp_path / "edges.img"
    with BlockDevice.create(base, 2048, durable=False) as dev:
        FileSystem.format(dev, 16)
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        fs.create(alice, "big")
        with fs.open(alice, "big", "rw") as f:
            for i, b in enumerate(EDGES):
                fs.pwrite(f, b * BS + (BS - 100 if b == EDGES[-1] else 7), bytes([i + 1]) * 100)
        before = _edges(fs, alice)
        fs.unmount()
    scratch, tried = tmp_path / "x.img", 0
    for size in [b * BS + s for b in cuts for s in (0, 50)]:
        def truncate_grow_sync(dev: BlockDevice, size: int = size) -> None:
            fs = FileSystem.mount(dev, Cache(8), SimClock())
            with fs.open(alice, "big", "rw") as f:
                fs.truncate(f, size)
                fs.pwrite(f, size + 3 * BS, b"grow")
            fs.sync()

        shutil.copyfile(base, scratch)
        with BlockDevice.open(scratch, durable=False) as dev:
            truncate_grow_sync(dev)
        with BlockDevice.open(scratch, durable=False) as dev:
            after = _edges(FileSystem.mount(dev, Cache(16), SimClock()), alice)
        for point in crash_points(base, scratch, truncate_grow_sync, models):
            assert check_image(scratch).clean, (size, point)
            with BlockDevice.open(scratch, durable=False) as dev:
                fs = FileSystem.mount(dev, Cache(16), SimClock())
                got = _edges(fs, alice)
                fs.check_invariants()
            assert got in (before, after), f"truncate to {size}, cut at {point}"
            tried += 1
    return tried


def test_truncates_across_indirect_boundaries_are_atomic_at_any_power_cut(
        tmp_path: Path, alice: User) -> None:
    tried = _truncates_across_indirect_boundaries(
        tmp_path, alice, [CrashModel.LOST], [L1, L2 + NPTR, L3])
    assert tried >= 15


@pytest.mark.slow
def test_truncates_to_every_indirect_boundary_are_atomic_with_every_model(
        tmp_path: Path, alice: User) -> None:
    _truncates_across_indirect_boundaries(tmp_path, alice, list(CrashModel),
                                          [1, L1, L2, L2 + NPTR, L3, L3 + NPTR * NPTR])
