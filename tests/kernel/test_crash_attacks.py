"""Attacks on durability the crash loops of test_journal.py do not make: power cuts
during mount's replay of the log (again and again), device errors at every request
followed by a power cut, a full disk, the largest images.

After each: fsck clean, the image mounts, and every file is as it was at the last
completed sync or later (``crashloop.check_after_crash``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vino import crashloop
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice
from vino.kernel.errors import CorruptFileSystem, InvalidArgument
from vino.kernel.fs import NDIRECT, FileSystem
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


def _mount_only(dev: BlockDevice) -> None:
    FileSystem.mount(dev, Cache(crashloop.CACHE_FRAMES), SimClock())
