"""``fsck``: check every invariant of a file-system image, offline, without writing to it.

Usage::

    report = check_image(Path("disk.img"))
    if not report.clean: print(*report.damage, sep="\\n")
    # or: vino fsck disk.img   (exit status 1 on damage)

It reads the image as the next mount would see it: the committed transaction in
the log, if there is one, is laid over the blocks it names (in memory: nothing is
ever written to the image). Then it checks, naming the first few violations of each:

1. the superblock: magic, version, block size, geometry consistent with the image
   (the superblock a replay of the log would install too);
2. every inode: a free inode is all zeros, a used one has a regular or (inode 1
   only) directory mode, a size at most ``MAX_FILE_SIZE`` (the directory: at most
   one entry per inode, ``Geometry.max_dir_size``), no pointer at or beyond
   ``ceil(size / BLOCK_SIZE)``, and flags of known bits only, the seal (``INODE_SEALED``)
   on a regular file only;
3. every pointer (direct and in indirect blocks at every level) is inside the data
   area, and no block is reached twice (so no cycle either);
4. the bitmap marks exactly the metadata blocks and the reachable blocks (a block
   marked used but unreachable is a leak; reachable but free, a double allocation
   waiting to happen), and no block past the end of the device;
5. the directory: whole entries, each naming a used regular inode, names valid
   UTF-8 without NUL or '/', no name twice and no inode under two names.

``mount`` makes the same checks (``check_metadata``, on the blocks after its replay)
and refuses a damaged image with ``CorruptFileSystem``: a hostile or damaged image
never mounts, so no operation ever follows a pointer out of the data area, gives a
block to two files or reads a directory of a trillion entries. Every check reads
at most the metadata the image really holds (each indirect block once), whatever
its fields claim.

Not damage (reported in ``notes``): inodes with no name (files unlinked while open
when the power went; the next mount frees them), a committed transaction waiting in
the log, an image not cleanly unmounted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vino.kernel import params
from vino.kernel.device import BlockDevice
from vino.kernel.errors import CorruptFileSystem
from vino.kernel.inode import (
    DIRENT,
    INODES_PER_BLOCK,
    LEVEL_START,
    MAX_FILE_SIZE,
    NDIRECT,
    NLEVELS,
    NPTR,
    ROOT_INUM,
    S_IFDIR,
    S_IFMT,
    S_IFREG,
    SUPER,
    Geometry,
    Inode,
    ceil_div,
    index_path,
)
from vino.kernel.journal import read_log

__all__ = ["FsckReport", "check_device", "check_image", "check_metadata", "refuse_damaged"]

BS = params.BLOCK_SIZE
MAX_REPORTED = 20  # damage lines kept per report (the count is always exact)


@dataclass(slots=True)
class FsckReport:
    """What ``check_image`` found. ``clean`` is True when ``damage`` is empty."""

    path: str
    damage: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: int = 0  # every violation found (damage keeps the first MAX_REPORTED)
    orphans: list[int] = field(default_factory=list)  # used files no name reaches (not damage)
    files: int = 0
    used_blocks: int = 0
    nblocks: int = 0

    @property
    def clean(self) -> bool:
        return self.problems == 0

    def bad(self, what: str) -> None:
        self.problems += 1
        if len(self.damage) < MAX_REPORTED:
            self.damage.append(what)

    def summary(self) -> str:
        head = (f"{self.path}: {'clean' if self.clean else f'{self.problems} problem(s)'}, "
                f"{self.files} files, {self.used_blocks}/{self.nblocks} blocks used")
        return "\n".join([head, *(f"  damage: {d}" for d in self.damage),
                          *(f"  note: {n}" for n in self.notes)])


def check_image(path: str | Path) -> FsckReport:
    """Check the image at ``path`` (see the module docstring). Never writes to it."""
    dev = BlockDevice.open(path, durable=False)
    try:
        return check_device(dev, str(path))
    finally:
        dev.close()


def check_device(dev: BlockDevice, where: str) -> FsckReport:
    """``check_image`` of the image on an open device (not mounted). Never writes."""
    report = FsckReport(where)
    _check(dev, report)
    return report


def _check(dev: BlockDevice, report: FsckReport) -> None:
    report.nblocks = dev.nblocks
    try:
        geo = Geometry.from_super(dev.read_block(0), dev.nblocks, str(dev.path))
    except CorruptFileSystem as exc:
        report.bad(f"superblock: {exc}")
        return
    clean = SUPER.unpack_from(dev.read_block(0))[-1]
    if not clean:
        report.notes.append("not cleanly unmounted")
    logged = read_log(dev, geo.log_start, geo.log_blocks)
    overlay = logged.blocks if logged is not None else {}
    if logged is not None:
        report.notes.append(f"log: transaction {logged.seq} ({len(overlay)} blocks) committed; "
                            f"checked as a mount would replay it")
        if 0 in overlay:
            try:
                replayed = Geometry.from_super(overlay[0], dev.nblocks, str(dev.path))
            except CorruptFileSystem as exc:
                report.bad(f"superblock in the log: {exc}")
                return
            if replayed != geo:
                report.bad(f"superblock in the log: geometry {replayed} != {geo}")
                return

    def block(b: int) -> bytes:
        got = overlay.get(b)
        return got if got is not None else dev.read_block(b)

    check_metadata(geo, block, report)


def refuse_damaged(geo: Geometry, block: Callable[[int], bytes | bytearray | memoryview],
                   where: str) -> None:
    """``check_metadata`` for ``mount``: raise ``CorruptFileSystem`` naming the first
    damage (and how much more there is) unless the image is clean."""
    report = FsckReport(where)
    check_metadata(geo, block, report)
    if not report.clean:
        more = f" (and {report.problems - 1} more)" if report.problems > 1 else ""
        raise CorruptFileSystem(f"{where}: damaged: {report.damage[0]}{more}; "
                                f"`vino fsck` lists the damage")


def check_metadata(geo: Geometry, block: Callable[[int], bytes | bytearray | memoryview],
                   report: FsckReport) -> None:
    """Checks 2-5 of the module docstring on the image whose block ``b`` reads as
    ``block(b)`` (fsck: the device with the log laid over it; mount: its journal after
    the replay). ``block`` is only asked for blocks inside the device."""
    report.nblocks = geo.nblocks
    bitmap = b"".join(bytes(block(geo.bitmap_start + i)) for i in range(geo.bitmap_blocks))
    owner: dict[int, int] = {}

    def own(b: int, inum: int, what: str) -> bool:
        if not geo.data_start <= b < geo.nblocks:
            report.bad(f"inode {inum}: {what} points at block {b}, outside the data area "
                       f"{geo.data_start}..{geo.nblocks - 1}")
            return False
        if b in owner:
            report.bad(f"block {b} is reached from inode {owner[b]} and from inode {inum} "
                       f"({what})")
            return False
        owner[b] = inum
        return True

    def walk(node: int, depth: int, first: int, inum: int, nb: int) -> None:
        span = NPTR ** (depth - 1)
        for i, p in enumerate(struct.unpack(f"<{NPTR}I", block(node))):
            if not p:
                continue
            lo = first + i * span
            if lo >= nb:
                report.bad(f"inode {inum}: file block {lo} mapped beyond its size")
            if own(p, inum, f"file block {lo}" if depth == 1 else "an indirect pointer") \
                    and depth > 1:
                walk(p, depth - 1, lo, inum, nb)

    inodes: dict[int, Inode] = {}
    for i in range(geo.inode_blocks):
        raw = block(geo.inode_start + i)
        for k in range(INODES_PER_BLOCK):
            inum = i * INODES_PER_BLOCK + k
            chunk = bytes(raw[k * params.FS_INODE_SIZE:(k + 1) * params.FS_INODE_SIZE])
            ino = Inode.unpack(inum, chunk)
            if ino.mode == 0:
                if any(chunk):
                    report.bad(f"inode {inum} is free but not zero")
                continue
            kind = ino.mode & S_IFMT
            if inum == 0 or kind not in (S_IFREG, S_IFDIR) or (kind == S_IFDIR) != (
                    inum == ROOT_INUM):
                report.bad(f"inode {inum} has mode {ino.mode:o}")
                continue
            why = ino.flags_damage()
            if why:
                report.bad(why)
            limit = geo.max_dir_size if kind == S_IFDIR else MAX_FILE_SIZE
            if ino.size > limit:
                report.bad(f"inode {inum}: size {ino.size} is past the largest "
                           f"{'directory' if kind == S_IFDIR else 'file'} ({limit})")
                continue
            inodes[inum] = ino
            nb = ceil_div(ino.size, BS)
            for j, b in enumerate(ino.direct[:NDIRECT]):
                if b:
                    if j >= nb:
                        report.bad(f"inode {inum}: file block {j} mapped beyond its size")
                    own(b, inum, f"file block {j}")
            for level in range(NLEVELS):
                top = ino.ind[level]
                if top and own(top, inum, f"indirect level {level + 1}"):
                    if LEVEL_START[level] >= nb:
                        report.bad(f"inode {inum}: indirect level {level + 1} beyond its size")
                    walk(top, level + 1, LEVEL_START[level], inum, nb)
    expected = bytearray(len(bitmap))
    for b in [*range(geo.data_start), *owner]:
        expected[b >> 3] |= 1 << (b & 7)
    report.used_blocks = int.from_bytes(bitmap, "little").bit_count()
    if bitmap != expected:
        for i, (want, got) in enumerate(zip(expected, bitmap, strict=True)):
            if want == got:
                continue
            for bit in range(8):
                b = i * 8 + bit
                if not (want ^ got) >> bit & 1:
                    continue
                if b >= geo.nblocks:
                    report.bad(f"bitmap: block {b}, past the end of the device, is marked used")
                elif b < geo.data_start:
                    report.bad(f"bitmap: metadata block {b} is marked free")
                elif got >> bit & 1:
                    report.bad(f"bitmap: block {b} is marked used but reached by no inode "
                               f"(leaked)")
                else:
                    report.bad(f"bitmap: block {b} is reached by an inode but marked free")
    root = inodes.get(ROOT_INUM)
    if root is None:
        report.bad(f"inode {ROOT_INUM} is not the root directory")
        return
    if root.size % params.FS_DIRENT_SIZE:
        report.bad(f"directory size {root.size} is not whole entries")
    names: dict[str, int] = {}
    named: dict[int, str] = {}
    nslots = root.size // params.FS_DIRENT_SIZE
    for slot in range(nslots):
        bidx, off = divmod(slot * params.FS_DIRENT_SIZE, BS)
        b = _bmap(root, bidx, block, owner)
        raw = block(b) if b else bytes(BS)
        inum, raw_name = DIRENT.unpack_from(raw, off)
        if inum == 0:
            continue
        name_bytes = raw_name.rstrip(b"\0")
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            report.bad(f"directory slot {slot}: name {name_bytes!r} is not UTF-8")
            continue
        if not name or "/" in name or "\0" in name:
            report.bad(f"directory slot {slot}: bad name {name!r}")
        target = inodes.get(inum)
        if target is None or target.is_dir:
            report.bad(f"directory entry {name!r} -> inode {inum}, which is not a used file")
        if name in names:
            report.bad(f"directory: {name!r} appears twice")
        if inum in named:
            report.bad(f"directory: inode {inum} is named {named[inum]!r} and {name!r}")
        names[name] = inum
        named[inum] = name
    report.files = len(names)
    orphans = report.orphans = sorted(i for i in inodes if i != ROOT_INUM and i not in named)
    if orphans:
        report.notes.append(f"inodes {orphans} have no name (unlinked while open; the next "
                            f"mount frees them)")


def _bmap(ino: Inode, bidx: int, block: Callable[[int], bytes | bytearray | memoryview],
          owned: dict[int, int]) -> int:
    """Device block of ``ino``'s file block ``bidx`` (0: a hole), following only the
    blocks the walk gave ``ino`` (``owned``): a pointer outside them, damage already
    reported, reads as a hole."""
    if bidx < NDIRECT:
        b = ino.direct[bidx]
        return b if owned.get(b) == ino.inum else 0
    level, idx = index_path(bidx)
    b = ino.ind[level]
    for k in idx:
        if b == 0 or owned.get(b) != ino.inum:
            return 0
        b = int.from_bytes(block(b)[4 * k:4 * k + 4], "little")
    return b if owned.get(b) == ino.inum else 0
