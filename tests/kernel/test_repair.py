"""Attacks on ``vino fsck --repair``: images damaged in every way the hostile-image tests
make, and power cuts at every write of a repair.

A repair must never raise, never hang, never make things worse: every file whose
inode and blocks the damage did not touch reads back byte-identical afterwards
(under its name or ``lost+found.<inode>``); a repaired image is clean and mounts; an
image it cannot repair is left as it was; and a power cut at any write of a repair
leaves the image as before or repaired.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.cli import main
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.crash import CrashModel, crash_points
from vino.kernel.device import BlockDevice
from vino.kernel.fs import NDIRECT, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.inode import Geometry
from vino.kernel.journal import read_log
from vino.kernel.proc import User
from vino.kernel.repair import (
    LOST_FOUND,
    STATUS_CLEAN,
    STATUS_DAMAGED,
    STATUS_REPAIRED,
    repair_device,
    repair_image,
)

from .test_hostile_images import _hostile, _make, _use

BS = params.BLOCK_SIZE
INODE_SIZE = params.FS_INODE_SIZE
ROOT = User(0, "root")

Trees = dict[int, tuple[int, list[int]]]  # inum -> (its inode's offset, every block of it)


READ_AT_MOST = 1 << 20  # bytes of a file compared (a damaged size may claim 4 GiB)


def _contents(path: Path) -> dict[int, bytes]:
    """Every named file's size and bytes (its first MiB), by inode (names may change in
    a repair)."""
    with BlockDevice.open(path, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        out = {}
        for name in fs.listdir():
            size = fs.stat(name).size
            with fs.open(ROOT, name, "r") as f:
                out[fs.stat(name).inum] = size.to_bytes(8, "little") + fs.read(
                    f, min(size, READ_AT_MOST))
        fs.unmount()
    return out


def _trees(path: Path) -> Trees:
    with BlockDevice.open(path, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        geo = fs.geo
        out = {}
        for name in fs.listdir():
            ino = fs.inode(fs.stat(name).inum)
            off = geo.inode_start * BS + ino.inum * INODE_SIZE
            out[ino.inum] = (off, [b for _, b, _ in fs._walk(ino)])
        fs.unmount()
    return out


def _logical(img: bytes | bytearray, path: Path, geo: Geometry) -> bytearray:
    """The image as a mount would replay it (a log installing another superblock: not)."""
    out = bytearray(img)
    path.write_bytes(img)
    with BlockDevice.open(path, durable=False) as dev:
        logged = read_log(dev, geo.log_start, geo.log_blocks)
    if logged is not None and (0 not in logged.blocks or logged.blocks[0] == img[:BS]):
        for b, data in logged.blocks.items():
            out[b * BS:(b + 1) * BS] = data
    return out


def _untouched(base: bytes, damaged: bytes, trees: Trees) -> set[int]:
    """The files whose inode and every block read the same in both images."""
    keep = set()
    for inum, (off, blocks) in trees.items():
        if damaged[off:off + INODE_SIZE] != base[off:off + INODE_SIZE]:
            continue
        if all(damaged[b * BS:(b + 1) * BS] == base[b * BS:(b + 1) * BS] for b in blocks):
            keep.add(inum)
    return keep


def _repair_and_judge(path: Path, geo: Geometry, what: str, base: bytes, logical: bytearray,
                      trees: Trees, contents: dict[int, bytes], alice: User) -> int:
    """Repair the damaged image at ``path``; check it was no worse; its status."""
    report = repair_image(path)  # never raises
    if report.status == STATUS_DAMAGED:
        assert not report.written, what
        after = _logical(path.read_bytes(), path.with_suffix(".tmp"), geo)
        assert after == logical or what.startswith(("superblock", "log")), \
            f"{what}: an image repair left damaged was changed"
        return report.status
    assert report.after.clean and check_image(path).clean, f"{what}: {report.summary()}"
    got = _contents(path)
    for inum in _untouched(base, bytes(logical), trees):
        assert got.get(inum) == contents[inum], f"{what}: inode {inum} changed\n" \
            f"{report.summary()}"
    _use(path, alice)  # mounts and works
    assert check_image(path).clean, what
    return report.status


def _damaged_images(tmp_path: Path, alice: User, stride: int, randoms: int
                    ) -> Iterator[tuple[str, bytearray]]:
    base = tmp_path / "base.img"
    geo, inums = _make(base, alice)
    img = base.read_bytes()
    for i, (what, out) in enumerate(_hostile(img, geo, inums)):
        if i % stride == 0:
            yield what, out
    rng = random.Random(5)
    for i in range(randoms):
        out = bytearray(img)
        for _ in range(rng.randrange(1, 6)):
            off = rng.randrange((geo.data_start + 40) * BS - 4)
            if rng.random() < 0.5:
                out[off] = rng.randrange(256)
            else:
                out[off:off + 4] = rng.choice(
                    [b"\xff" * 4, bytes(4), rng.randrange(geo.nblocks).to_bytes(4, "little")])
        yield f"random image {i}", out


def _repair_every_damaged_image(tmp_path: Path, alice: User, stride: int,
                                randoms: int) -> dict[int, int]:
    base = tmp_path / "base.img"
    geo, _ = _make(base, alice)
    img = base.read_bytes()
    trees, contents = _trees(base), _contents(base)
    path = tmp_path / "damaged.img"
    statuses = {STATUS_CLEAN: 0, STATUS_REPAIRED: 0, STATUS_DAMAGED: 0}
    left: list[str] = []
    for what, out in _damaged_images(tmp_path, alice, stride, randoms):
        logical = _logical(out, path, geo)
        path.write_bytes(out)
        status = _repair_and_judge(path, geo, what, img, logical, trees, contents, alice)
        statuses[status] += 1
        if status == STATUS_DAMAGED:
            left.append(what)
    # Left damaged: only a superblock naming no geometry of this version.
    assert all(w.startswith("superblock") for w in left), left
    return statuses


def test_every_kind_of_hostile_damage_is_repaired_losing_nothing_untouched(
        tmp_path: Path, alice: User) -> None:
    statuses = _repair_every_damaged_image(tmp_path, alice, stride=7, randoms=12)
    assert statuses[STATUS_REPAIRED] >= 40 and statuses[STATUS_CLEAN] >= 5, statuses


@pytest.mark.slow
def test_all_1633_hostile_images_are_repaired_or_left_as_they_were(
        tmp_path: Path, alice: User) -> None:
    statuses = _repair_every_damaged_image(tmp_path, alice, stride=1, randoms=1000)
    assert sum(statuses.values()) == 1633, statuses


# ---- one kind of damage at a time ---------------------------------------------------------


def _field(img: bytearray, off: int, value: int, fmt: str = "<I") -> None:
    struct.pack_into(fmt, img, off, value)


@pytest.fixture
def made(tmp_path: Path, alice: User) -> tuple[Path, Geometry, dict[str, int], bytes]:
    base = tmp_path / "base.img"
    geo, inums = _make(base, alice)
    return base, geo, inums, base.read_bytes()


def _inode_off(geo: Geometry, inum: int) -> int:
    return geo.inode_start * BS + inum * INODE_SIZE


def _u32(img: bytes | bytearray, off: int) -> int:
    return int.from_bytes(img[off:off + 4], "little")


def test_without_repair_fsck_writes_nothing_and_exits_4_with_repair_1_then_0(
        made: tuple[Path, Geometry, dict[str, int], bytes],
        capsys: pytest.CaptureFixture[str]) -> None:
    base, geo, _, img = made
    out = bytearray(img)
    b = geo.nblocks - 3  # a free block marked used: leaked
    out[geo.bitmap_start * BS + (b >> 3)] |= 1 << (b & 7)
    base.write_bytes(out)
    assert main(["fsck", str(base)]) == 4
    assert base.read_bytes() == out
    assert main(["fsck", "--repair", str(base)]) == 1
    said = capsys.readouterr().out
    assert "1 block(s) marked used that nothing reaches freed" in said, said
    assert main(["fsck", "--repair", str(base)]) == 0
    assert main(["fsck", str(base)]) == 0


def test_a_block_claimed_by_two_files_is_copied_so_both_keep_their_bytes(
        made: tuple[Path, Geometry, dict[str, int], bytes], alice: User) -> None:
    base, geo, inums, img = made
    before = _contents(base)
    out = bytearray(img)
    # "single"'s indirect block points its block 3 at "small"'s first block
    ind = _u32(out, _inode_off(geo, inums["single"]) + 16 + 4 * NDIRECT)
    small0 = _u32(out, _inode_off(geo, inums["small"]) + 16)
    _field(out, ind * BS + 4 * 3, small0)
    base.write_bytes(out)
    report = repair_image(base)
    assert report.status == STATUS_REPAIRED, report.summary()
    assert any("given a copy" in c for c in report.changes), report.changes
    got = _contents(base)
    assert got[inums["small"]] == before[inums["small"]]  # the first claimant: unchanged
    single = bytearray(before[inums["single"]])
    single[8 + (NDIRECT + 3) * BS:8 + (NDIRECT + 4) * BS] = img[small0 * BS:(small0 + 1) * BS]
    assert got[inums["single"]] == bytes(single)  # its pointer's bytes, in a copy


def test_an_entry_naming_a_free_inode_is_removed_and_an_orphan_goes_to_lost_found(
        made: tuple[Path, Geometry, dict[str, int], bytes]) -> None:
    base, geo, _inums, img = made
    before = _contents(base)
    out = bytearray(img)
    root_dir = _u32(out, _inode_off(geo, 1) + 16)
    # slot 0 -> inode 30 (free); "direct" loses its name: an orphan
    _field(out, root_dir * BS + 0, 30)
    base.write_bytes(out)
    report = repair_image(base)
    assert report.status == STATUS_REPAIRED, report.summary()
    with BlockDevice.open(base, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(16), SimClock())
        names = {fs.stat(n).inum: n for n in fs.listdir()}
        fs.unmount()
    first = _u32(img, root_dir * BS)
    assert names[first] == f"{LOST_FOUND}.{first}", names
    assert _contents(base) == before  # every file, every byte


def test_a_cycle_in_a_block_map_and_a_pointer_into_the_inode_table_are_cut(
        made: tuple[Path, Geometry, dict[str, int], bytes]) -> None:
    base, geo, inums, img = made
    before = _contents(base)
    out = bytearray(img)
    ind = _u32(out, _inode_off(geo, inums["double"]) + 16 + 4 * (NDIRECT + 1))
    _field(out, ind * BS + 4 * 5, ind)  # the double indirect block names itself
    _field(out, _inode_off(geo, inums["small"]) + 16 + 4, geo.inode_start)  # block 1
    base.write_bytes(out)
    report = repair_image(base)
    assert report.status == STATUS_REPAIRED, report.summary()
    assert any("outside the data area: cut" in c for c in report.changes)
    got = _contents(base)
    assert got[inums["small"]] == before[inums["small"]]  # block 1 is past its 10 bytes
    assert got[inums["direct"]] == before[inums["direct"]]


def test_a_superblock_with_a_damaged_field_is_rewritten_from_the_geometry(
        made: tuple[Path, Geometry, dict[str, int], bytes]) -> None:
    base, _geo, _, img = made
    before = _contents(base)
    out = bytearray(img)
    _field(out, 8 + 4 * 6, 0xFFFF_FFFF)  # bitmap_start
    base.write_bytes(out)
    report = repair_image(base)
    assert report.status == STATUS_REPAIRED, report.summary()
    assert _contents(base) == before


def test_no_superblock_at_all_is_left_as_it_was_with_status_4(
        made: tuple[Path, Geometry, dict[str, int], bytes]) -> None:
    base, _, _, img = made
    out = bytearray(img)
    out[:BS] = bytes(BS)
    base.write_bytes(out)
    report = repair_image(base)
    assert report.status == STATUS_DAMAGED and not report.written
    assert base.read_bytes() == out


def _damage_for_cuts(img: bytes, geo: Geometry, inums: dict[str, int]) -> bytearray:
    """Several kinds at once: a leak, a cross-link, an entry to a free inode, an inode
    of a bad kind, a free inode not zero."""
    out = bytearray(img)
    b = geo.nblocks - 3
    out[geo.bitmap_start * BS + (b >> 3)] |= 1 << (b & 7)
    ind = _u32(out, _inode_off(geo, inums["single"]) + 16 + 4 * NDIRECT)
    _field(out, ind * BS + 4 * 3, _u32(out, _inode_off(geo, inums["small"]) + 16))
    root_dir = _u32(out, _inode_off(geo, 1) + 16)
    _field(out, root_dir * BS + 64 * 6, 30)  # an entry in a free slot -> a free inode
    out[root_dir * BS + 64 * 6 + 4:root_dir * BS + 64 * 6 + 8] = b"gone"
    _field(out, _inode_off(geo, inums["direct"]), 0o120777, "<H")
    out[_inode_off(geo, 20) + 8] = 1
    return out


@pytest.mark.parametrize("model", list(CrashModel))
def test_a_power_cut_at_every_write_of_a_repair_leaves_it_as_before_or_repaired(
        tmp_path: Path, made: tuple[Path, Geometry, dict[str, int], bytes],
        model: CrashModel) -> None:
    _base, geo, inums, img = made
    damaged = tmp_path / "damaged.img"
    damaged.write_bytes(_damage_for_cuts(img, geo, inums))
    was = check_image(damaged)
    assert not was.clean
    reference = tmp_path / "reference.img"
    reference.write_bytes(damaged.read_bytes())
    assert repair_image(reference).status == STATUS_REPAIRED
    repaired = _contents(reference)

    def repair(dev: BlockDevice) -> None:
        repair_device(dev)

    scratch, before, after = tmp_path / "scratch.img", 0, 0
    for point in crash_points(damaged, scratch, repair, [model]):
        now = check_image(scratch)
        if now.clean and not now.orphans:
            after += 1
            assert _contents(scratch) == repaired, point
        else:
            before += 1
            assert now.damage == was.damage, point
            assert repair_image(scratch).status == STATUS_REPAIRED, point
            assert _contents(scratch) == repaired, point
    assert before and after, (before, after)


def _cut_every_repair(tmp_path: Path, alice: User, stride: int,
                      models: list[CrashModel]) -> int:
    """A cut at every write of the repair of every ``stride``-th damaged image that
    needs one: each cut leaves it as before (the same damage) or repaired; a second
    repair then gives what an uncut repair gives."""
    base = tmp_path / "base.img"
    _make(base, alice)
    damaged, scratch, reference = (tmp_path / n for n in ("d.img", "s.img", "r.img"))
    tried = 0

    def repair(dev: BlockDevice) -> None:
        repair_device(dev)

    for i, (what, out) in enumerate(_damaged_images(tmp_path / "x", alice, 1, 40)):
        if i % stride:
            continue
        damaged.write_bytes(out)
        reference.write_bytes(out)
        if repair_image(reference).status != STATUS_REPAIRED:
            continue
        was, repaired = check_image(damaged), _contents(reference)
        for point in crash_points(damaged, scratch, repair, models):
            now = check_image(scratch)
            if not now.clean or now.orphans:  # as before: the same damage, the same orphans
                same = [d.replace(str(scratch), str(damaged)) for d in now.damage]
                assert (same, now.orphans) == (was.damage, was.orphans), f"{what}: {point}"
                assert repair_image(scratch).status == STATUS_REPAIRED, f"{what}: {point}"
            assert _contents(scratch) == repaired, f"{what}: {point}"
            tried += 1
    return tried


def test_a_power_cut_at_every_write_of_repairs_of_hostile_images_loses_nothing(
        tmp_path: Path, alice: User) -> None:
    (tmp_path / "x").mkdir()
    assert _cut_every_repair(tmp_path, alice, 97, [CrashModel.CUT, CrashModel.LOST]) > 40


@pytest.mark.slow
def test_a_power_cut_at_every_write_of_every_repair_of_a_hostile_image_loses_nothing(
        tmp_path: Path, alice: User) -> None:
    (tmp_path / "x").mkdir()
    _cut_every_repair(tmp_path, alice, 1, list(CrashModel))
