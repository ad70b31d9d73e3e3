"""``fsck --repair``: make a damaged image one that ``fsck`` finds clean and ``mount``
accepts, losing no committed data, atomically, and saying what it changed.

Usage::

    report = repair_image(Path("disk.img"))     # or repair_device(dev), dev opened by you
    print(report.summary()); sys.exit(report.status)
    # or: vino fsck --repair disk.img

The way e2fsck does it, in this order:

1. Check the image (``fsck.check_image``'s view). Clean, and every file named:
   nothing is written (status 0).
2. Find the geometry: the superblock's, or, if it is damaged but its magic and
   version stand, the geometry ``Geometry.plan`` makes of the inode count most of its
   fields agree on. Nothing agrees: nothing is written (status 4).
3. Replay the committed transaction in the log, as a mount would -- unless it would
   install another superblock (a hostile log): then it is skipped, and the repair's
   own commit replaces it in the log.
4. Work out every fix in memory, on the image as replayed (``_Fixer``):

   - the superblock rewritten from the geometry;
   - inode 0, and a free inode not all zeros: zeroed; a used inode of a kind this
     file system has no room for: a regular file (owner-only permissions), the root a
     directory; a size past the largest file or directory: cut to the blocks mapped;
     flags of unknown bits: a file sealed (failing closed), the directory's cleared;
   - a pointer outside the data area, or past the file's size: cut (a hole);
   - a block reached twice (two files, or a cycle in one block map): the first
     claimant, in inode order, keeps it; each later one gets a copy in a block no
     pointer names (an indirect block's copy is walked in turn, so its children are
     copied too); with no such block left, the later pointer is cut;
   - the directory: an entry naming a free inode, the root or a number past the
     table, or naming an inode a second time, removed; a name that is not valid
     UTF-8 without NUL or '/', or a second copy of a name, replaced; a size that is
     not whole entries, cut to them;
   - every used file no name reaches (an orphan) given the name
     ``lost+found.<inode>`` (this file system has one flat directory: the name is
     the lost+found directory). Without a link count or an orphan list a file that
     lost its name to damage looks like one unlinked while open when the power went
     (which a mount frees): a repair keeps both, and the user deletes what was meant
     to go;
   - the bitmap rebuilt: exactly the metadata and the blocks reached (leaked blocks
     freed, reached blocks marked, bits past the device cleared). The file system
     keeps no free count and no link count: the bitmap and the directory are them.

   The fixes are applied until ``fsck.check_metadata`` finds the result clean (at most
   ``REPAIR_PASSES`` passes); if it does not, nothing is written (status 4).
5. Write the fixes through the log (``journal.Journal``): the copies of cross-linked
   data blocks first, into blocks no pointer names (ordered data), then the metadata
   as one transaction -- several if it is larger than the log holds -- then a flush.

Invariants:
- without ``--repair`` (``check_image``) nothing is written; a repair that cannot
  make the image clean writes nothing but the replay of step 3 (what a mount writes);
- a power cut at any write of a repair leaves an image that reads (as mount and fsck
  see it, the log replayed) as before the repair or as after it, when the metadata
  fits one transaction (every image up to ``HEADER_CAPACITY`` changed blocks; a
  larger repair is atomic per transaction, and a second repair finishes it);
- a block whose content some file reads before the repair is read by the same file
  at the same offset after it (kept or copied): only pointers that were damage are cut.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.device import BlockDevice
from vino.kernel.errors import CorruptFileSystem
from vino.kernel.fsck import FsckReport, check_device, check_metadata
from vino.kernel.inode import (
    DIRENT,
    FS_READABLE_VERSIONS,
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
from vino.kernel.journal import Journal, read_log

__all__ = ["LOST_FOUND", "REPAIR_PASSES", "STATUS_CLEAN", "STATUS_DAMAGED", "STATUS_REPAIRED",
           "STATUS_UNREADABLE", "RepairReport", "repair_device", "repair_image"]

BS = params.BLOCK_SIZE
DIRENT_SIZE = params.FS_DIRENT_SIZE
LOST_FOUND = "lost+found"  # the name prefix orphans are given: lost+found.<inode>
REPAIR_PASSES = 3  # fix passes before a repair gives up (one suffices for any damage tried)
REPAIR_CACHE_FRAMES = 16  # cache frames the repair's journal writes through
ORPHAN_MODE = S_IFREG | 0o600  # a used inode whose kind was damage becomes this
# fsck's exit statuses: clean, repaired, damage left, the image could not be read
STATUS_CLEAN, STATUS_REPAIRED, STATUS_DAMAGED, STATUS_UNREADABLE = 0, 1, 4, 8


@dataclass(slots=True)
class RepairReport:
    """What a repair found and did. ``status`` is fsck's exit status: 0 clean (nothing
    written), 1 repaired (clean now), 4 damage left (nothing written but a replay)."""

    path: str
    before: FsckReport
    after: FsckReport
    changes: list[str] = field(default_factory=list)  # every change, in order
    written: bool = False
    commits: int = 0

    @property
    def status(self) -> int:
        if not self.after.clean:
            return STATUS_DAMAGED
        return STATUS_REPAIRED if self.written else STATUS_CLEAN

    def summary(self) -> str:
        lines = [f"{self.path}: before repair: "
                 f"{'clean' if self.before.clean else f'{self.before.problems} problem(s)'}"]
        lines += [f"  damage: {d}" for d in self.before.damage]
        lines += [f"  repaired: {c}" for c in self.changes]
        if self.written:
            lines.append(f"  written through the log in {self.commits} transaction(s)")
        lines.append(self.after.summary())
        return "\n".join(lines)


def repair_image(path: str | Path) -> RepairReport:
    """Repair the image at ``path`` (the module docstring's steps)."""
    dev = BlockDevice.open(path, durable=True)
    try:
        return repair_device(dev)
    finally:
        dev.close()


def repair_device(dev: BlockDevice) -> RepairReport:
    """Repair the image on ``dev`` (opened by the caller, not mounted anywhere)."""
    before = check_device(dev, str(dev.path))
    report = RepairReport(str(dev.path), before, before)
    if before.clean and not before.orphans:
        return report
    geo, why = _geometry(dev)
    if geo is None:
        report.changes.append(f"nothing written: {why}")
        return report
    if why:
        report.changes.append(why)
    cache = Cache(REPAIR_CACHE_FRAMES)
    journal = Journal(dev, cache, geo.log_start, geo.log_blocks)
    journal.seq = journal.last_seq()
    logged = read_log(dev, geo.log_start, geo.log_blocks)
    if logged is not None and 0 in logged.blocks and _planned(logged.blocks[0], dev) != geo:
        report.changes.append(f"log: transaction {logged.seq} would install another "
                              f"superblock: not replayed (replaced by this repair's)")
    elif logged is not None:
        journal.replay()
    fixer = _Fixer(dev, geo)
    check = FsckReport(str(dev.path))
    for _ in range(REPAIR_PASSES):
        fixer.fix()
        check = FsckReport(str(dev.path))
        check_metadata(geo, fixer.read, check)
        if check.clean:
            break
    report.changes += fixer.changes
    if not check.clean:
        report.changes.append("nothing written: the fixes above do not make it clean")
        report.after = check_device(dev, str(dev.path))
        return report
    fixer.write(0, geo.pack(clean=True))  # always logged: replaces a skipped log
    for b, data in sorted(fixer.copies.items()):
        cache.write_block(dev, b, data)  # ordered: on the device before the commit
    changed = sorted(fixer.blocks)
    for i in range(0, len(changed), journal.capacity):
        for b in changed[i:i + journal.capacity]:
            journal.write(b, fixer.blocks[b])
        journal.commit()
        report.commits += 1
    dev.flush()
    report.written = True
    report.after = check_device(dev, str(dev.path))
    return report


def _planned(raw: bytes, dev: BlockDevice) -> Geometry | None:
    try:
        return Geometry.from_super(raw, dev.nblocks, str(dev.path))
    except CorruptFileSystem:
        return None


def _geometry(dev: BlockDevice) -> tuple[Geometry | None, str]:
    """The image's geometry and what was wrong with its superblock ("" if nothing)."""
    raw = dev.read_block(0)
    geo = _planned(raw, dev)
    if geo is not None:
        return geo, ""
    magic, version, bsize, nblocks, *stored, _root, _clean = SUPER.unpack_from(raw)
    ipb = INODES_PER_BLOCK
    guesses = {stored[0], stored[6] * ipb, (stored[7] - stored[5]) * ipb}
    best: tuple[int, Geometry] | None = None
    for ninodes in sorted(guesses):
        if not 2 <= ninodes <= params.FS_MAX_INODES:
            continue
        plan = Geometry.plan(dev.nblocks, ninodes)
        if plan.data_start >= dev.nblocks:
            continue
        agree = sum(a == b for a, b in zip(plan.fields(), stored, strict=True))
        if best is None or agree > best[0]:
            best = (agree, plan)
    fields = len(stored)
    # The magic and all but two fields, or all fields but one of the magic and the version.
    if best is not None and (
            (magic == params.FS_MAGIC and best[0] >= fields - 2
             and (version in FS_READABLE_VERSIONS or best[0] == fields))
            or (version in FS_READABLE_VERSIONS and (bsize, nblocks) == (BS, dev.nblocks)
                and best[0] == fields)):
        return best[1], (f"superblock: rewritten for {best[1].ninodes} inodes "
                         f"({best[0]} of its {fields} geometry fields agreed)")
    return None, "the superblock names no geometry of this version (no vino file system?)"


class _Fixer:
    """The fixes of one repair, worked out over the image as replayed: ``blocks`` the
    metadata blocks changed (logged), ``copies`` the new data blocks (ordered)."""

    def __init__(self, dev: BlockDevice, geo: Geometry) -> None:
        self.dev = dev
        self.geo = geo
        self.blocks: dict[int, bytearray] = {}
        self.copies: dict[int, bytes] = {}
        self.changes: list[str] = []
        self._pool: list[int] = []  # blocks no pointer names, for copies (pop: lowest)
        self._owner: dict[int, int] = {}
        self._inodes: dict[int, Inode] = {}

    # ---- the image as changed so far ----------------------------------------------------

    def read(self, b: int) -> bytes:
        got = self.blocks.get(b)
        if got is not None:
            return bytes(got)
        copy = self.copies.get(b)
        return copy if copy is not None else self.dev.read_block(b)

    def write(self, b: int, data: bytes) -> None:
        self.blocks[b] = bytearray(data)

    def _ptr(self, node: int, i: int) -> int:
        return int.from_bytes(self.read(node)[4 * i:4 * i + 4], "little")

    def _set_ptr(self, node: int, i: int, value: int) -> None:
        if node in self.copies:  # a data block copied, not an indirect one: never here
            raise AssertionError(node)
        buf = self.blocks.get(node)
        if buf is None:
            buf = self.blocks[node] = bytearray(self.read(node))
        struct.pack_into("<I", buf, 4 * i, value)

    # ---- one pass ---------------------------------------------------------------------------

    def fix(self) -> None:
        geo = self.geo
        self._owner = {}
        self._inodes = {}
        self._pool = self._free_pool()
        table = bytearray(b"".join(self.read(geo.inode_start + i)
                                   for i in range(geo.inode_blocks)))
        for inum in range(geo.ninodes):
            off = inum * params.FS_INODE_SIZE
            chunk = bytes(table[off:off + params.FS_INODE_SIZE])
            ino = self._inode(inum, chunk)
            if ino is not None:
                self._walk_inode(ino)
                self._inodes[inum] = ino
            packed = ino.pack() if ino is not None else bytes(params.FS_INODE_SIZE)
            table[off:off + params.FS_INODE_SIZE] = packed
        root = self._inodes.get(ROOT_INUM)
        if root is None:
            root = Inode(ROOT_INUM, S_IFDIR | 0o755, 0)
            self._inodes[ROOT_INUM] = root
            self.changes.append(f"inode {ROOT_INUM}: an empty root directory made")
        self._fix_directory(root)
        off = ROOT_INUM * params.FS_INODE_SIZE
        table[off:off + params.FS_INODE_SIZE] = root.pack()
        for i in range(geo.inode_blocks):
            raw = bytes(table[i * BS:(i + 1) * BS])
            if raw != self.read(geo.inode_start + i):
                self.write(geo.inode_start + i, raw)
        self._fix_bitmap()

    def _free_pool(self) -> list[int]:
        """Data blocks no pointer of any inode names (at any level, damaged or not) and
        the bitmap marks free first, then those it marks used: copies go there."""
        geo = self.geo
        named: set[int] = set()
        stack: list[tuple[int, int]] = []
        for i in range(geo.inode_blocks):
            raw = self.read(geo.inode_start + i)
            for k in range(INODES_PER_BLOCK):
                ino = Inode.unpack(0, raw[k * params.FS_INODE_SIZE:(k + 1) * params.FS_INODE_SIZE])
                if not ino.mode:
                    continue
                named.update(ino.direct)
                for level, top in enumerate(ino.ind):
                    stack.append((top, level + 1))
        seen: set[int] = set()
        while stack:
            b, depth = stack.pop()
            named.add(b)
            if not geo.data_start <= b < geo.nblocks or b in seen:
                continue
            seen.add(b)
            for p in struct.unpack(f"<{NPTR}I", self.read(b)):
                if p:
                    if depth > 1:
                        stack.append((p, depth - 1))
                    else:
                        named.add(p)
        bitmap = b"".join(self.read(geo.bitmap_start + i) for i in range(geo.bitmap_blocks))
        free = [b for b in range(geo.data_start, geo.nblocks) if b not in named]
        marked = [b for b in free if bitmap[b >> 3] >> (b & 7) & 1]
        unmarked = [b for b in free if not bitmap[b >> 3] >> (b & 7) & 1]
        return (unmarked + marked)[::-1]

    def _inode(self, inum: int, chunk: bytes) -> Inode | None:
        """The inode ``inum`` as repaired (None: free); its pointers not yet checked."""
        ino = Inode.unpack(inum, chunk)
        if ino.mode == 0:
            if any(chunk):
                self.changes.append(f"inode {inum}: free but not zero: zeroed")
            return None
        if inum == 0:
            self.changes.append("inode 0 (never used) was in use: zeroed")
            return None
        kind = ino.mode & S_IFMT
        if inum == ROOT_INUM and kind != S_IFDIR:
            self.changes.append(f"inode {inum}: mode {ino.mode:o}: made the root directory")
            ino.mode = S_IFDIR | 0o755
        elif inum != ROOT_INUM and kind != S_IFREG:
            self.changes.append(f"inode {inum}: mode {ino.mode:o}: made a regular file "
                                f"({ORPHAN_MODE:o})")
            ino.mode = ORPHAN_MODE
        if mended := ino.mend_flags():  # fail closed (inode.py)
            self.changes.append(mended)
        return ino

    def _limit(self, ino: Inode) -> int:
        return self.geo.max_dir_size if ino.is_dir else MAX_FILE_SIZE

    def _walk_inode(self, ino: Inode) -> None:
        """Check ``ino``'s size and every pointer; claim the blocks it keeps."""
        limit = self._limit(ino)
        oversize = ino.size > limit
        nb = ceil_div(min(ino.size, limit), BS)
        what = f"inode {ino.inum}"
        last = -1  # the highest file block kept
        for j in range(NDIRECT):
            b = ino.direct[j]
            if b:
                ino.direct[j] = self._claim(ino, b, j, nb, 0, f"{what}: file block {j}")
                if ino.direct[j]:
                    last = j
        for level in range(NLEVELS):
            top = ino.ind[level]
            if not top:
                continue
            ino.ind[level] = self._claim(ino, top, LEVEL_START[level], nb, level + 1,
                                         f"{what}: indirect level {level + 1}")
            if ino.ind[level]:
                last = max(last, self._walk(ino, ino.ind[level], level + 1,
                                            LEVEL_START[level], nb))
        if oversize:
            size = min(limit, (last + 1) * BS)
            if ino.is_dir:
                size -= size % DIRENT_SIZE
            self.changes.append(f"{what}: size {ino.size} is past the largest "
                                f"({limit}): cut to {size}, the blocks it maps")
            ino.size = size
        if ino.is_dir and ino.size % DIRENT_SIZE:
            size = ino.size - ino.size % DIRENT_SIZE
            self.changes.append(f"{what}: directory size {ino.size} cut to whole entries "
                                f"({size})")
            ino.size = size
            self._trim(ino, ceil_div(size, BS))

    def _walk(self, ino: Inode, node: int, depth: int, first: int, nb: int) -> int:
        """Check the pointers of indirect block ``node`` (``depth`` levels above the
        data); returns the highest file block kept under it (-1: none)."""
        span = NPTR ** (depth - 1)
        last = -1
        for i, p in enumerate(struct.unpack(f"<{NPTR}I", self.read(node))):
            if not p:
                continue
            lo = first + i * span
            kept = self._claim(ino, p, lo, nb, depth - 1,
                               f"inode {ino.inum}: " + (f"file block {lo}" if depth == 1
                                                        else f"an indirect pointer at {lo}"))
            if kept != p:
                self._set_ptr(node, i, kept)
            if not kept:
                continue
            if depth > 1:
                last = max(last, self._walk(ino, kept, depth - 1, lo, nb))
            else:
                last = max(last, lo)
        return last

    def _claim(self, ino: Inode, b: int, lo: int, nb: int, depth: int, what: str) -> int:
        """The pointer to keep for ``b`` (``depth``: 0 a data block, else an indirect
        one) mapping from file block ``lo``: ``b``, a copy of it, or 0 (cut)."""
        geo = self.geo
        if not geo.data_start <= b < geo.nblocks:
            self.changes.append(f"{what} points at block {b}, outside the data area: cut")
            return 0
        if lo >= nb:
            self.changes.append(f"{what} is mapped past the file's size: cut")
            return 0
        if b not in self._owner:
            self._owner[b] = ino.inum
            return b
        if not self._pool:
            self.changes.append(f"{what}: block {b} is inode {self._owner[b]}'s too and "
                                f"no block is free for a copy: cut")
            return 0
        new = self._pool.pop()
        data = self.read(b)
        if depth:
            self.write(new, data)
        else:
            self.copies[new] = data
        self._owner[new] = ino.inum
        self.changes.append(f"{what}: block {b} is inode {self._owner[b]}'s too: "
                            f"given a copy, block {new}")
        return new

    def _trim(self, ino: Inode, keep: int) -> None:
        """Cut the direct pointers at or past file block ``keep`` (a directory cut to
        whole entries loses at most its last block, and a directory is never past
        the direct blocks by more than the single indirect one)."""
        for j in range(keep, NDIRECT):
            if ino.direct[j]:
                self._owner.pop(ino.direct[j], None)
                ino.direct[j] = 0
        if keep <= LEVEL_START[0] and ino.ind[0]:
            top = ino.ind[0]
            for i in range(NPTR):
                self._owner.pop(self._ptr(top, i), None)
            self._owner.pop(top, None)
            ino.ind[0] = 0

    # ---- the directory ------------------------------------------------------------------------

    def _slot_block(self, root: Inode, slot: int, make: bool) -> int:
        """The device block holding directory slot ``slot`` (0: a hole); ``make``: map
        a zeroed block there from the pool first (0 if there is none)."""
        bidx = slot * DIRENT_SIZE // BS
        if bidx < NDIRECT:
            b = root.direct[bidx]
            if not b and make and self._pool:
                b = root.direct[bidx] = self._new_meta(root.inum)
            return b
        level, idx = index_path(bidx)
        if level:
            return 0  # past any directory: max_dir_size is within the single indirect
        top = root.ind[0]
        if not top:
            if not (make and self._pool):
                return 0
            top = root.ind[0] = self._new_meta(root.inum)
        b = self._ptr(top, idx[0])
        if not b and make and self._pool:
            b = self._new_meta(root.inum)
            self._set_ptr(top, idx[0], b)
        return b

    def _new_meta(self, inum: int) -> int:
        b = self._pool.pop()
        self.write(b, bytes(BS))
        self._owner[b] = inum
        return b

    def _fix_directory(self, root: Inode) -> None:
        names: dict[str, int] = {}
        named: dict[int, str] = {}
        renames: list[tuple[int, int]] = []  # (slot, inum) needing a new name
        free_slots: list[int] = []
        for slot in range(root.size // DIRENT_SIZE):
            b = self._slot_block(root, slot, make=False)
            off = slot * DIRENT_SIZE % BS
            raw = self.read(b)[off:off + DIRENT_SIZE] if b else bytes(DIRENT_SIZE)
            inum, raw_name = DIRENT.unpack(raw)
            if inum == 0:
                free_slots.append(slot)
                continue
            name_bytes = raw_name.rstrip(b"\0")
            target = self._inodes.get(inum)
            if target is None or target.is_dir or inum in named:
                why = (f"is also named {named[inum]!r}" if inum in named
                       else "is not a used file")
                self.changes.append(f"directory: entry {name_bytes!r} -> inode {inum}, which "
                                    f"{why}: removed")
                self._set_entry(root, slot, 0, b"")
                free_slots.append(slot)
                continue
            try:
                name = name_bytes.decode("utf-8")
            except UnicodeDecodeError:
                name = ""
            if not name or "/" in name or "\0" in name or name in names:
                renames.append((slot, inum))
                named[inum] = f"slot {slot}"
                continue
            names[name] = inum
            named[inum] = name
        for slot, inum in renames:
            new = self._fresh_name(names, inum)
            b = self._slot_block(root, slot, make=False)
            off = slot * DIRENT_SIZE % BS
            old = DIRENT.unpack(self.read(b)[off:off + DIRENT_SIZE])[1].rstrip(b"\0")
            self.changes.append(f"directory: inode {inum}'s name {old!r} is not valid or "
                                f"not unique: renamed {new!r}")
            self._set_entry(root, slot, inum, new.encode())
            names[new] = inum
            named[inum] = new
        orphans = [i for i, ino in sorted(self._inodes.items())
                   if not ino.is_dir and i not in named]
        free_slots.reverse()
        for inum in orphans:
            new = self._fresh_name(names, inum)
            if free_slots:
                slot = free_slots.pop()
            else:
                slot = root.size // DIRENT_SIZE
                if (slot + 1) * DIRENT_SIZE > self.geo.max_dir_size:
                    self.changes.append(f"inode {inum} has no name and the directory is "
                                        f"full: left for the next mount to free")
                    continue
                if not self._slot_block(root, slot, make=True):
                    self.changes.append(f"inode {inum} has no name and no block is free "
                                        f"to grow the directory: left for the next mount")
                    continue
                root.size = (slot + 1) * DIRENT_SIZE
            self.changes.append(f"inode {inum} has no name (an orphan): named {new!r}")
            self._set_entry(root, slot, inum, new.encode())
            names[new] = inum
            named[inum] = new

    @staticmethod
    def _fresh_name(names: dict[str, int], inum: int) -> str:
        name, k = f"{LOST_FOUND}.{inum}", 1
        while name in names:
            name, k = f"{LOST_FOUND}.{inum}.{k}", k + 1
        return name

    def _set_entry(self, root: Inode, slot: int, inum: int, name: bytes) -> None:
        b = self._slot_block(root, slot, make=False)
        if not b:  # a hole inside the directory: map a block for the entry
            b = self._slot_block(root, slot, make=True)
            if not b:
                return  # removing from a hole: nothing there (with no pool left)
        buf = self.blocks.get(b)
        if buf is None:
            buf = self.blocks[b] = bytearray(self.read(b))
        DIRENT.pack_into(buf, slot * DIRENT_SIZE % BS, inum, name)

    # ---- the bitmap ------------------------------------------------------------------------

    def _fix_bitmap(self) -> None:
        geo = self.geo
        bitmap = bytearray(b"".join(self.read(geo.bitmap_start + i)
                                    for i in range(geo.bitmap_blocks)))
        want = bytearray(len(bitmap))
        for b in [*range(geo.data_start), *self._owner]:
            want[b >> 3] |= 1 << (b & 7)
        if want == bitmap:
            return
        got = int.from_bytes(bitmap, "little")
        should = int.from_bytes(want, "little")
        leaked = (got & ~should).bit_count()
        unmarked = (should & ~got).bit_count()
        past = (got >> geo.nblocks).bit_count()
        self.changes.append(f"bitmap: {leaked - past} block(s) marked used that nothing "
                            f"reaches freed, {unmarked} reached block(s) marked used, "
                            f"{past} bit(s) past the device cleared")
        for i in range(geo.bitmap_blocks):
            chunk = bytes(want[i * BS:(i + 1) * BS])
            if chunk != bitmap[i * BS:(i + 1) * BS]:
                self.write(geo.bitmap_start + i, chunk)
