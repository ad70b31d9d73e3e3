"""Attacks on images: fsck finds every kind of damage; real sizes (8 GiB images, 4 GiB files)."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from vino.cli import main
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice
from vino.kernel.fs import MAX_FILE_SIZE, NDIRECT, NPTR, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.proc import User

MakeDevice = Callable[..., BlockDevice]
BS = params.BLOCK_SIZE
GIB = 1 << 30


def _image(tmp_path: Path, alice: User, nblocks: int = 512) -> tuple[Path, dict[str, int]]:
    """A clean image with two files; returns where their blocks are."""
    path = tmp_path / "fs.img"
    with BlockDevice.create(path, nblocks, durable=False, overwrite=True) as dev:
        FileSystem.format(dev)
        fs = FileSystem.mount(dev, Cache(32), SimClock())
        for name, size in (("a", 3 * BS), ("b", (NDIRECT + 3) * BS)):
            fs.create(alice, name)
            with fs.open(alice, name, "w") as f:
                fs.write(f, os.urandom(size))
        where = {
            "a0": fs._bmap(fs.inode(fs.stat("a").inum), 0),
            "b_ind": fs._inodes[fs.stat("b").inum].ind[0],
            "b_inum": fs.stat("b").inum,
            "inode_start": fs.geo.inode_start,
            "bitmap_start": fs.geo.bitmap_start,
            "root_dir": fs._bmap(fs._inodes[1], 0),
        }
        log_start = fs.geo.log_start
        fs.unmount()
        dev.write_block(log_start, bytes(BS))  # installed: the log no longer masks damage
    return path, where


def _poke(path: Path, block: int, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(block * BS + offset)
        f.write(data)


def test_a_clean_image_is_clean_and_the_command_says_so(
        tmp_path: Path, alice: User, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _image(tmp_path, alice)
    report = check_image(path)
    assert report.clean and report.files == 2, report.summary()
    assert main(["fsck", str(path)]) == 0
    assert "clean" in capsys.readouterr().out
    assert main(["fsck", str(tmp_path / "missing.img")]) == 8


def test_a_leaked_block_a_double_owner_and_a_free_owned_block_are_damage(
        tmp_path: Path, alice: User, capsys: pytest.CaptureFixture[str]) -> None:
    path, w = _image(tmp_path, alice)
    bitmap_byte = (500 >> 3)
    _poke(path, w["bitmap_start"], bitmap_byte, bytes([1 << (500 & 7)]))  # leaked
    report = check_image(path)
    assert not report.clean and any("500" in d and "leaked" in d for d in report.damage)
    assert main(["fsck", str(path)]) == 4
    assert "damage" in capsys.readouterr().out
    path, w = _image(tmp_path, alice)
    # b's indirect block also points at a's first block
    _poke(path, w["b_ind"], 0, struct.pack("<I", w["a0"]))
    report = check_image(path)
    assert any("reached from inode" in d for d in report.damage), report.summary()
    path, w = _image(tmp_path, alice)
    a0 = w["a0"]
    with open(path, "r+b") as f:  # a's first block marked free
        f.seek(w["bitmap_start"] * BS + (a0 >> 3))
        byte = f.read(1)[0]
        f.seek(w["bitmap_start"] * BS + (a0 >> 3))
        f.write(bytes([byte & ~(1 << (a0 & 7)) & 0xFF]))
    assert any("marked free" in d for d in check_image(path).damage)


def test_bad_inodes_and_bad_directory_entries_are_damage(tmp_path: Path, alice: User) -> None:
    path, w = _image(tmp_path, alice)
    inode_block, k = divmod(w["b_inum"], BS // params.FS_INODE_SIZE)
    _poke(path, w["inode_start"] + inode_block, k * params.FS_INODE_SIZE + 8,
          struct.pack("<Q", 1))  # size 1 but blocks mapped far beyond it
    assert any("beyond its size" in d for d in check_image(path).damage)
    path, w = _image(tmp_path, alice)
    _poke(path, w["root_dir"], 0, struct.pack("<I", 77))  # "a" -> a free inode
    assert any("not a used file" in d for d in check_image(path).damage)
    path, w = _image(tmp_path, alice)
    _poke(path, w["root_dir"], params.FS_DIRENT_SIZE + 4, b"a\0")  # "b" renamed "a": twice
    report = check_image(path)
    assert any("appears twice" in d for d in report.damage)
    path, _ = _image(tmp_path, alice)
    _poke(path, 0, 0, b"NOTVINO!")
    assert any("magic" in d for d in check_image(path).damage)


def test_a_4_gib_file_on_an_8_gib_sparse_image(tmp_path: Path, alice: User) -> None:
    nblocks = 8 * GIB // BS
    path = tmp_path / "big.img"
    with BlockDevice.create(path, nblocks, durable=False) as dev:
        FileSystem.format(dev)
        fs = FileSystem.mount(dev, Cache(64), SimClock())
        fs.create(alice, "huge")
        tail = b"the end of a file past 5 GiB"
        with fs.open(alice, "huge", "rw") as f:
            fs.write(f, b"head")
            fs.seek(f, 4 * GIB - 10)  # through the double indirect blocks
            fs.write(f, b"four-GiB-boundary")
            fs.seek(f, 5 * GIB)  # the triple indirect blocks
            fs.write(f, tail)
        assert fs.stat("huge").size == 5 * GIB + len(tail)
        assert fs.stat("huge").blocks == 4  # head, two across 4 GiB, tail
        fs.sync()
        fs = FileSystem.mount(dev, Cache(64), SimClock())  # as after a power cut
        with fs.open(alice, "huge", "r") as f:
            assert fs.read(f, 4) == b"head"
            assert fs.read(f, 8) == bytes(8)  # a hole
            fs.seek(f, 4 * GIB - 10)
            assert fs.read(f, 17) == b"four-GiB-boundary"
            fs.seek(f, 5 * GIB)
            assert fs.read(f, 100) == tail
        fs.check_invariants()
        with fs.open(alice, "huge", "rw") as f:
            fs.truncate(f, 4 * GIB + 2)  # frees the triple indirect tree
        fs.unmount()
    assert path.stat().st_size == 8 * GIB
    assert path.stat().st_blocks * 512 < 64 << 20  # sparse: a few MiB on the host
    report = check_image(path)
    assert report.clean, report.summary()
    assert MAX_FILE_SIZE >= 4 * GIB and (NDIRECT + NPTR + NPTR ** 2) * BS > 4 * GIB
