"""Attacks by a hostile or damaged disk image: every field of the superblock, the inodes,
the directory, the block map, the bitmap and the log header set to extreme values.

Mount must refuse such an image with ``CorruptFileSystem`` (and fsck name the damage),
or mount one fsck finds clean and work on it: never raise anything outside the
project's error hierarchy, never read without bound, never give one block to two files
or write a file's data over the file system's own metadata.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.errors import VinoError
from vino.graft.registry import Registry
from vino.kernel import kernel as kernel_module
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice, DeviceStats
from vino.kernel.errors import CorruptFileSystem, InvalidArgument
from vino.kernel.fs import NDIRECT, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.inode import INODE_SEALED, Geometry
from vino.kernel.journal import read_log
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User

BS = params.BLOCK_SIZE
INODE_SIZE = params.FS_INODE_SIZE
ROOT = User(0, "root")
NINODES = 32
FILES = {"small": 10, "direct": 5000, "single": (NDIRECT + 5) * BS, "double": 3 * BS}


def _make(path: Path, alice: User) -> tuple[Geometry, dict[str, int]]:
    """A clean image with files reaching direct, single and double indirect blocks and a
    committed transaction left in the log; returns the geometry and each file's inode."""
    with BlockDevice.create(path, 1024, durable=False, overwrite=True) as dev:
        FileSystem.format(dev, NINODES)
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        for i, (name, size) in enumerate(FILES.items()):
            fs.create(alice, name)
            with fs.open(alice, name, "w") as f:
                if name == "double":
                    fs.pwrite(f, (NDIRECT + BS // 4 + 7) * BS, bytes([i + 1]) * size)
                else:
                    fs.write(f, bytes([i + 1]) * size)
        fs.sync()
        inums = {name: fs.stat(name).inum for name in FILES}
        geo = fs.geo
        fs.unmount()
    return geo, inums


def _u32(img: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from("<I", img, off)[0])


def _seal_log(img: bytearray, geo: Geometry) -> None:
    """Give the log header a CRC that matches whatever its fields now say."""
    off = geo.log_start * BS
    n = min(_u32(img, off + 16), (BS - 24) // 8)
    head = bytearray(img[off:off + 24 + 8 * n])
    struct.pack_into("<I", head, 20, 0)
    struct.pack_into("<I", img, off + 20, zlib.crc32(bytes(head)))


EXTREMES = (0, 1, 2, 0x7FFF_FFFF, 0xFFFF_FFFF)


def _hostile(img: bytes, geo: Geometry, inums: dict[str, int]) -> Iterator[tuple[str, bytearray]]:
    """Every image one field away from ``img``: each field set to extreme values and to
    block numbers that matter (the superblock, the log, the bitmap, the inode table,
    the last block, the first past the end, its own block)."""
    blocks = (geo.log_start, geo.bitmap_start, geo.inode_start, geo.data_start - 1,
              geo.nblocks - 1, geo.nblocks)
    u32s = (*EXTREMES, *blocks)
    for k in range(13):  # the superblock's u32 fields after the magic
        for v in EXTREMES:
            out = bytearray(img)
            struct.pack_into("<I", out, 8 + 4 * k, v)
            yield f"superblock field {k} = {v}", out
    out = bytearray(img)
    out[0:8] = b"VINOFS95"
    yield "superblock magic", out
    for name, inum in [("root", 1), *inums.items()]:
        base = geo.inode_start * BS + inum * INODE_SIZE
        for mode in (0, 0o040755, 0o100644, 0o120777, 0xFFFF):
            out = bytearray(img)
            struct.pack_into("<H", out, base, mode)
            yield f"{name} mode {mode:o}", out
        for flags in (INODE_SEALED, 0x2, 0x8000, 0xFFFF):  # the seal, bits no version has
            out = bytearray(img)
            struct.pack_into("<H", out, base + 2, flags)
            yield f"{name} flags {flags:#x}", out
        for size in (0, 1, 64 * (NINODES + 1), 1 << 32, (1 << 42) + 1, (1 << 64) - 1):
            out = bytearray(img)
            struct.pack_into("<Q", out, base + 8, size)
            yield f"{name} size {size}", out
        ptrs = [(f"direct {j}", base + 16 + 4 * j) for j in (0, 1, NDIRECT - 1)]
        ptrs += [(f"indirect {j}", base + 16 + 4 * (NDIRECT + j)) for j in range(3)]
        for what, off in ptrs:
            for v in u32s:
                out = bytearray(img)
                struct.pack_into("<I", out, off, v)
                yield f"{name} {what} = {v}", out
    out = bytearray(img)  # a free inode's flags: a seal on nothing
    struct.pack_into("<H", out, geo.inode_start * BS + (NINODES - 1) * INODE_SIZE + 2,
                     INODE_SEALED)
    yield "free inode flags 0x1", out
    for name in ("single", "double"):
        base = geo.inode_start * BS + inums[name] * INODE_SIZE
        node = max(_u32(img, base + 16 + 4 * NDIRECT), _u32(img, base + 16 + 4 * NDIRECT + 4))
        for idx in (0, 3, 1023):
            for v in (*u32s, node):  # node: the block map points back at itself
                out = bytearray(img)
                struct.pack_into("<I", out, node * BS + 4 * idx, v)
                yield f"{name} indirect block {node}[{idx}] = {v}", out
    root_dir = _u32(img, geo.inode_start * BS + INODE_SIZE + 16)
    for slot in range(len(FILES) + 1):
        for v in (0, 1, 2, NINODES - 1, NINODES, 0xFFFF_FFFF):
            out = bytearray(img)
            struct.pack_into("<I", out, root_dir * BS + 64 * slot, v)
            yield f"directory slot {slot} inode = {v}", out
        for raw in (b"\xff\xfe", b"a/b", b"", b"small"):
            out = bytearray(img)
            out[root_dir * BS + 64 * slot + 4:root_dir * BS + 64 * slot + 64] = raw.ljust(60, b"\0")
            yield f"directory slot {slot} name = {raw!r}", out
    for b in (0, geo.data_start - 1, geo.data_start + 1, geo.nblocks - 1, geo.nblocks,
              geo.bitmap_blocks * BS * 8 - 1):
        out = bytearray(img)
        out[geo.bitmap_start * BS + (b >> 3)] ^= 1 << (b & 7)
        yield f"bitmap bit {b} flipped", out
    log = geo.log_start * BS
    for what, off, fmt, values in (
            ("sequence", 8, "<Q", (0, (1 << 63), (1 << 64) - 1)),
            ("count", 16, "<I", (0, geo.log_blocks - 1, geo.log_blocks, 509, 0xFFFF_FFFF)),
            ("first home", 24, "<I", (*u32s, geo.log_start + 1, root_dir)),
            ("second home", 32, "<I", (*u32s, _u32(img, log + 24)))):
        for v in values:
            out = bytearray(img)
            struct.pack_into(fmt, out, log + off, v)
            _seal_log(out, geo)
            yield f"log header {what} = {v}", out


def _use(path: Path, alice: User) -> None:
    """What a user does on a mounted image: read every file, write, truncate, create,
    unlink, sync, unmount; the invariants checked on the way."""
    with BlockDevice.open(path, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        fs.check_invariants()
        for name in fs.listdir():
            with fs.open(ROOT, name, "rw") as f:
                fs.read(f, min(fs.stat(name).size, 1 << 20))
                fs.pwrite(f, 3 * BS, b"z" * (2 * BS))
                fs.truncate(f, 1000)
        fs.create(alice, "new")
        with fs.open(alice, "new", "w") as f:
            fs.write(f, b"q" * (40 * BS))
        fs.unlink(ROOT, fs.listdir()[0])
        fs.check_invariants()
        fs.unmount()


def _refused(path: Path, match: str) -> DeviceStats:
    """Mount ``path``: it must raise ``CorruptFileSystem`` matching ``match``; the
    device's counts of what the attempt did."""
    with BlockDevice.open(path, durable=False) as dev:
        with pytest.raises(CorruptFileSystem, match=match):
            FileSystem.mount(dev, Cache(16), SimClock())
        return dev.stats


def test_a_hostile_image_is_refused_at_mount_or_is_sound_never_a_bare_exception(
        tmp_path: Path, alice: User) -> None:
    _attack_every_field(tmp_path, alice, stride=5)


@pytest.mark.slow
def test_every_hostile_image_one_field_away_is_refused_or_sound(
        tmp_path: Path, alice: User) -> None:
    _attack_every_field(tmp_path, alice, stride=1)


def _attack_every_field(tmp_path: Path, alice: User, stride: int) -> dict[str, int]:
    """Each image of ``_hostile`` (every ``stride``-th): fsck never raises; mount refuses
    it (fsck finds damage; nothing but a replay of its log was written) or fsck finds it
    clean and a user's operations keep it clean."""
    base = tmp_path / "base.img"
    geo, inums = _make(base, alice)
    img = base.read_bytes()
    assert read_log(BlockDevice.open(base, durable=False), geo.log_start,
                    geo.log_blocks) is not None  # the log header fields are live
    path = tmp_path / "hostile.img"
    outcomes = {"refused": 0, "mounted": 0}
    cases = 0
    for i, (what, out) in enumerate(_hostile(img, geo, inums)):
        if i % stride:
            continue
        cases += 1
        path.write_bytes(out)
        report = check_image(path)  # fsck never raises
        try:
            _use(path, alice)
        except CorruptFileSystem:
            outcomes["refused"] += 1
            assert not report.clean, f"{what}: mount refused an image fsck finds clean"
            if not what.startswith("log"):  # else its replay wrote the blocks it names
                assert path.read_bytes() == out, f"{what}: a refused mount wrote to the image"
            continue
        except VinoError as exc:
            pytest.fail(f"{what}: mounted, then {type(exc).__name__}: {exc}")
        outcomes["mounted"] += 1
        assert report.clean, f"{what}: mounted an image fsck finds damaged: {report.damage}"
        after = check_image(path)
        assert after.clean, f"{what}: damage after use: {after.damage}"
    assert cases * stride > 400, cases
    assert outcomes["refused"] * stride > 250 and outcomes["mounted"] * stride > 50, outcomes
    return outcomes


def test_a_directory_claiming_2_to_the_64_bytes_is_refused_without_reading_it(
        tmp_path: Path, alice: User) -> None:
    base = tmp_path / "d.img"
    geo, _ = _make(base, alice)
    img = bytearray(base.read_bytes())
    struct.pack_into("<Q", img, geo.inode_start * BS + INODE_SIZE + 8, (1 << 42) - 64)
    base.write_bytes(img)
    assert _refused(base, "largest directory").blocks_read < 200  # not 2**36 directory slots
    assert any("largest directory" in d for d in check_image(base).damage)


def test_a_file_block_pointing_into_the_inode_table_never_lets_a_write_overwrite_it(
        tmp_path: Path, alice: User) -> None:
    base = tmp_path / "m.img"
    geo, inums = _make(base, alice)
    img = bytearray(base.read_bytes())
    struct.pack_into("<I", img, geo.inode_start * BS + inums["small"] * INODE_SIZE + 16,
                     geo.inode_start)
    base.write_bytes(img)
    _refused(base, "outside the data area")
    assert base.read_bytes()[geo.inode_start * BS:] == img[geo.inode_start * BS:]


@pytest.mark.parametrize("target", ["itself", "another file's block"])
def test_a_block_map_cycle_or_cross_link_is_refused_so_no_block_has_two_files(
        tmp_path: Path, alice: User, target: str) -> None:
    base = tmp_path / "c.img"
    geo, inums = _make(base, alice)
    img = bytearray(base.read_bytes())
    ind = _u32(img, geo.inode_start * BS + inums["single"] * INODE_SIZE + 16 + 4 * NDIRECT)
    small0 = _u32(img, geo.inode_start * BS + inums["small"] * INODE_SIZE + 16)
    struct.pack_into("<I", img, ind * BS + 8, ind if target == "itself" else small0)
    base.write_bytes(img)
    _refused(base, "reached from inode")


def test_a_bitmap_marking_a_used_block_free_is_refused_so_it_is_never_given_twice(
        tmp_path: Path, alice: User) -> None:
    base = tmp_path / "b.img"
    geo, inums = _make(base, alice)
    img = bytearray(base.read_bytes())
    b = _u32(img, geo.inode_start * BS + inums["direct"] * INODE_SIZE + 16)
    img[geo.bitmap_start * BS + (b >> 3)] &= ~(1 << (b & 7)) & 0xFF
    base.write_bytes(img)
    _refused(base, "marked free")


def test_a_log_naming_blocks_outside_the_device_or_in_the_log_replays_nothing(
        tmp_path: Path, alice: User) -> None:
    base = tmp_path / "l.img"
    geo, _ = _make(base, alice)
    clean = bytearray(base.read_bytes())
    log = geo.log_start * BS
    for what, off, v in (("count past the log", 16, geo.log_blocks),
                         ("home past the end", 24, geo.nblocks),
                         ("home in the log", 24, geo.log_start + 1),
                         ("home the log header", 24, geo.log_start)):
        img = bytearray(clean)
        struct.pack_into("<I", img, log + off, v)
        _seal_log(img, geo)
        base.write_bytes(img)
        with BlockDevice.open(base, durable=False) as dev:
            assert read_log(dev, geo.log_start, geo.log_blocks) is None, what
            FileSystem.mount(dev, Cache(16), SimClock()).unmount()
        assert check_image(base).clean, what


def test_a_log_sequence_number_at_2_to_the_64_minus_1_wraps_and_commits_again(
        tmp_path: Path, alice: User) -> None:
    base = tmp_path / "s.img"
    geo, _ = _make(base, alice)
    img = bytearray(base.read_bytes())
    struct.pack_into("<Q", img, geo.log_start * BS + 8, (1 << 64) - 1)
    _seal_log(img, geo)
    base.write_bytes(img)
    with BlockDevice.open(base, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        fs.create(alice, "after")
        fs.sync()
        fs = FileSystem.mount(dev, Cache(16), SimClock())  # as after a power cut
        assert "after" in fs.listdir() and fs.journal.seq == 0
        fs.unmount()
    assert check_image(base).clean


def test_a_log_replaying_another_superblock_is_refused(tmp_path: Path, alice: User) -> None:
    base = tmp_path / "g.img"
    geo, _ = _make(base, alice)
    img = bytearray(base.read_bytes())
    other = Geometry.plan(geo.nblocks, NINODES * 4).pack(clean=False)
    log = geo.log_start * BS
    head = struct.pack("<8sQII", b"VINOJRNL", 99, 1, 0) + struct.pack("<II", 0, zlib.crc32(other))
    img[log:log + BS] = head.ljust(BS, b"\0")
    img[log + BS:log + 2 * BS] = other
    _seal_log(img, geo)
    base.write_bytes(img)
    assert any("superblock in the log" in d for d in check_image(base).damage)
    _refused(base, "another geometry")


def test_booting_a_hostile_image_again_and_again_leaks_nothing_and_locks_nothing(
        tmp_path: Path, alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "k.img"
    geo, _ = _make(base, alice)
    good = base.read_bytes()
    bad = bytearray(good)
    struct.pack_into("<Q", bad, geo.inode_start * BS + INODE_SIZE + 8, (1 << 64) - 1)
    base.write_bytes(bad)
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(CorruptFileSystem):
            Kernel.boot(base, fresh=False)
    assert len(os.listdir("/proc/self/fd")) == fds  # before, one image fd per attempt
    made: list[Registry] = []
    closed: list[Registry] = []

    class Counted(Registry):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(kernel_module, "Registry", Counted)
    with pytest.raises(CorruptFileSystem):
        Kernel.boot(base, fresh=False)
    assert made == closed  # a refused boot keeps no registry of its own (none made)
    monkeypatch.undo()
    base.write_bytes(good)
    Kernel.boot(base, fresh=False).shutdown()  # the image was never left locked


def test_a_superblock_claiming_an_inode_table_as_large_as_the_image_is_refused_unread(
        tmp_path: Path) -> None:
    path = tmp_path / "inodes.img"
    nblocks = 1 << 18  # 1 GiB, sparse
    with BlockDevice.create(path, nblocks, durable=False) as dev:
        with pytest.raises(InvalidArgument, match="ninodes"):
            FileSystem.format(dev, params.FS_MAX_INODES + 1)
        FileSystem.format(dev, params.FS_MAX_INODES)
        for ninodes in (params.FS_MAX_INODES + 32, (nblocks - 2048) * 32):
            dev.write_block(0, Geometry.plan(nblocks, ninodes).pack(clean=True))
            with pytest.raises(CorruptFileSystem, match="inodes, want"):
                FileSystem.mount(dev, Cache(16), SimClock())
    # before: 33 s and 1 GiB of memory to read the table of the second, then refused
    assert _refused(path, "inodes, want").blocks_read <= 1
    assert not check_image(path).clean


def _random_damage(tmp_path: Path, alice: User, images: int) -> dict[str, int]:
    """``images`` seeded images with 1-5 random bytes or words anywhere in the metadata
    (superblock, log, bitmap, inode table, the first data blocks: the directory and the
    indirect blocks): refused at mount exactly when fsck finds damage, else used
    without harm; never a bare exception."""
    base = tmp_path / "base.img"
    geo, _ = _make(base, alice)
    img = base.read_bytes()
    rng = random.Random(5)
    path = tmp_path / "random.img"
    outcomes = {"refused": 0, "mounted": 0}
    for i in range(images):
        out = bytearray(img)
        for _ in range(rng.randrange(1, 6)):
            off = rng.randrange((geo.data_start + 40) * BS - 4)
            if rng.random() < 0.5:
                out[off] = rng.randrange(256)
            else:
                out[off:off + 4] = rng.choice(
                    [b"\xff" * 4, bytes(4), rng.randrange(geo.nblocks).to_bytes(4, "little")])
        path.write_bytes(out)
        clean = check_image(path).clean
        try:
            _use(path, alice)
        except CorruptFileSystem:
            assert not clean, f"image {i}: refused, but fsck finds it clean"
            outcomes["refused"] += 1
            continue
        assert clean, f"image {i}: mounted, but fsck finds damage"
        assert check_image(path).clean, f"image {i}: damage after use"
        outcomes["mounted"] += 1
    return outcomes


def test_random_bytes_across_the_metadata_are_refused_or_harmless(
        tmp_path: Path, alice: User) -> None:
    outcomes = _random_damage(tmp_path, alice, 40)
    assert outcomes["refused"] >= 2 and outcomes["mounted"] >= 20, outcomes


@pytest.mark.slow
def test_many_random_bytes_across_the_metadata_are_refused_or_harmless(
        tmp_path: Path, alice: User) -> None:
    _random_damage(tmp_path, alice, 1000)
