"""The file system's on-disk format: geometry (the superblock), inodes, directory
entries, and the path from a file block to its pointer.

Usage (by ``fs.py``, ``blockmap.py``, ``directory.py`` and ``fsck.py``; nothing here
does I/O)::

    geo = Geometry.plan(nblocks, ninodes)        # where everything lives
    raw = geo.pack(clean=True)                    # the superblock
    ino = Inode.unpack(inum, raw128); ino.pack()  # one inode
    level, idx = index_path(bidx)                 # bidx >= NDIRECT: pointers to follow

On-disk layout, format version 3 (little-endian; blocks of ``params.BLOCK_SIZE``)::

    block 0                     superblock: magic, version, geometry, clean flag
    log_start ..                the write-ahead log (journal.py): a header, then copies
    bitmap_start ..             free-block bitmap, bit b = block b in use (LSB first)
    inode_start ..              inode table, 128-byte inodes: u16 mode (0 = free),
                                u16 flags, u32 uid, u64 size, u32 direct[25],
                                u32 single, u32 double, u32 triple indirect
    data_start .. nblocks - 1   data and indirect blocks (an indirect block holds
                                1024 u32 pointers) -> largest file 25 + 1024 + 1024**2
                                + 1024**3 blocks (~4 TiB); an image may have up to
                                ``MAX_FS_BLOCKS`` blocks (~60 GiB: one transaction must
                                hold every bitmap block, which a truncate may all
                                touch). Image files are sparse: a hole costs nothing
                                on the host.

An inode's flags: ``INODE_SEALED`` (bit 0), a filter graft's stored form
(``points.FilterGuard``: its reads and writes are refused while no filter graft answers
for it); no other bit is defined, and only a regular file may be sealed. Version 2 wrote
the field as a zero pad, so a version 2 image reads as one with no file sealed (``mount``
writes its superblock as version 3: a kernel that would ignore a seal refuses it).

Inode 0 is never used (0 means "no inode"); inode 1 is the one flat root
directory, whose data is an array of 64-byte entries (u32 inode, 60 bytes of
NUL-padded UTF-8 name; inode 0 = free slot). A pointer 0 is a hole: it reads as

Invariants:
- ``Geometry.plan`` is a pure function of ``(nblocks, ninodes)``: a mount recomputes
  it from the superblock and refuses an image whose stored fields differ;
- the log holds any one operation: ``log_blocks >= bitmap_blocks + 2 * OP_LOG_BLOCKS``,
  and so does one transaction (``LOG_TX_BLOCKS``): ``nblocks <= MAX_FS_BLOCKS``;
- ``Inode.pack`` / ``Inode.unpack`` are inverse on the stored fields (``mode``, ``flags``,
  ``uid``, ``size``, ``direct``, ``ind``); the rest of an ``Inode`` lives in memory only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vino.kernel import params
from vino.kernel.errors import CorruptFileSystem, InvalidArgument
from vino.kernel.proc import User

__all__ = [
    "BLOCK_LOG_BLOCKS", "BS", "DIRENT", "DIRENTS_PER_BLOCK", "FS_READABLE_VERSIONS", "INODE",
    "INODES_PER_BLOCK", "INODE_FLAGS_KNOWN", "INODE_SEALED", "LEVEL_SPAN", "LEVEL_START",
    "LOG_TX_BLOCKS", "MAX_FILE_BLOCKS", "MAX_FILE_SIZE", "MAX_FS_BLOCKS", "NDIRECT",
    "NINDIRECT", "NLEVELS", "NPTR", "OP_LOG_BLOCKS", "ROOT_INUM", "SUPER", "S_IFDIR", "S_IFMT",
    "S_IFREG", "ZERO_BLOCK", "FileStat", "Geometry", "Inode", "ceil_div", "encode_name",
    "index_path", "permits",
]

BS = params.BLOCK_SIZE
NDIRECT = params.FS_DIRECT_BLOCKS
NPTR = BS // 4  # u32 pointers in one indirect block
NINDIRECT = NPTR  # file blocks mapped by the single indirect block
NLEVELS = 3  # single, double and triple indirect
# first file block mapped through each indirect level, and file blocks one level maps
LEVEL_SPAN = (NPTR, NPTR ** 2, NPTR ** 3)
LEVEL_START = (NDIRECT, NDIRECT + NPTR, NDIRECT + NPTR + NPTR ** 2)
MAX_FILE_BLOCKS = NDIRECT + sum(LEVEL_SPAN)
MAX_FILE_SIZE = MAX_FILE_BLOCKS * BS  # bytes
ROOT_INUM = 1
INODES_PER_BLOCK = BS // params.FS_INODE_SIZE
DIRENTS_PER_BLOCK = BS // params.FS_DIRENT_SIZE
# Metadata blocks one operation other than a write can add to a transaction, beyond the
# bitmap blocks a truncate may touch: two directory blocks and the growth of the
# directory (a data block, three indirect blocks, four bitmap blocks), two inode blocks.
OP_LOG_BLOCKS = 12
# Blocks one transaction can log: what the log header's list of homes holds
# (journal.HEADER_CAPACITY, which checks it is this).
LOG_TX_BLOCKS = (BS - 24) // 8
# The largest file system, blocks: one transaction holds any one operation, a truncate
# touching every bitmap block among them (bitmap blocks + 2 * OP_LOG_BLOCKS). Larger, a
# truncate of a file spread over the disk made a transaction no commit could write, and
# the file system never committed again.
MAX_FS_BLOCKS = (LOG_TX_BLOCKS - 2 * OP_LOG_BLOCKS) * BS * 8
# ... and one block of a write: its bitmap block, three indirect blocks and their
# bitmap blocks, the inode block, a directory block.
BLOCK_LOG_BLOCKS = 9

S_IFMT = 0o170000
S_IFREG = 0o100000
S_IFDIR = 0o040000

INODE_SEALED = 0x1  # flags: a filter's stored form (the module doc)
INODE_FLAGS_KNOWN = INODE_SEALED
# The superblock versions this kernel mounts: 2 had a zero pad where the flags are.
FS_READABLE_VERSIONS = (2, params.FS_VERSION)

SUPER = struct.Struct("<8s13I")
INODE = struct.Struct(f"<HHIQ{NDIRECT}I{NLEVELS}I")
DIRENT = struct.Struct(f"<I{params.FS_NAME_MAX}s")
ZERO_BLOCK = bytes(BS)
assert INODE.size == params.FS_INODE_SIZE and DIRENT.size == params.FS_DIRENT_SIZE


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Geometry:
    nblocks: int
    ninodes: int
    log_start: int
    log_blocks: int
    bitmap_start: int
    bitmap_blocks: int
    inode_start: int
    inode_blocks: int
    data_start: int

    @classmethod
    def plan(cls, nblocks: int, ninodes: int) -> Geometry:
        bitmap_blocks = ceil_div(nblocks, BS * 8)
        inode_blocks = ceil_div(ninodes, INODES_PER_BLOCK)
        # Invariant: a transaction can hold any one operation (see OP_LOG_BLOCKS).
        log_blocks = max(bitmap_blocks + 2 * OP_LOG_BLOCKS,
                         min(nblocks // params.FS_LOG_FRACTION, params.FS_LOG_MAX_BLOCKS))
        log_start = 1
        bitmap_start = log_start + log_blocks
        inode_start = bitmap_start + bitmap_blocks
        return cls(nblocks, inode_blocks * INODES_PER_BLOCK, log_start, log_blocks,
                   bitmap_start, bitmap_blocks, inode_start, inode_blocks,
                   inode_start + inode_blocks)

    @property
    def max_dir_size(self) -> int:
        """The largest directory, bytes: one entry per inode. A new name takes the lowest
        free slot, so the directory never has more slots than names it held at once, and
        every name holds an inode of its own."""
        return self.ninodes * params.FS_DIRENT_SIZE

    @classmethod
    def from_super(cls, raw: bytes | bytearray | memoryview, nblocks: int,
                   where: str) -> Geometry:
        """The geometry a superblock ``raw`` names for a device of ``nblocks`` blocks;
        ``CorruptFileSystem`` (naming ``where``) unless it is a vino file system of this
        version whose stored fields are exactly what ``plan`` makes of them."""
        (magic, version, bsize, stored_n, *stored_l, root, clean) = SUPER.unpack_from(raw)
        if magic != params.FS_MAGIC:
            raise CorruptFileSystem(f"{where}: no vino file system (magic {magic!r})")
        if version not in FS_READABLE_VERSIONS:
            raise CorruptFileSystem(f"{where}: version {version}, this kernel reads "
                                    f"{', '.join(map(str, FS_READABLE_VERSIONS))}")
        if bsize != BS or stored_n != nblocks:
            raise CorruptFileSystem(f"{where}: geometry {stored_n}x{bsize} does not match the "
                                    f"device {nblocks}x{BS}")
        if nblocks > MAX_FS_BLOCKS:
            raise CorruptFileSystem(f"{where}: {nblocks} blocks is past the largest file "
                                    f"system ({MAX_FS_BLOCKS}: its log holds one operation)")
        if not 2 <= stored_l[0] <= params.FS_MAX_INODES:
            raise CorruptFileSystem(f"{where}: {stored_l[0]} inodes, want 2 .. "
                                    f"{params.FS_MAX_INODES}")
        geo = cls.plan(nblocks, stored_l[0])
        stored, planned = tuple(stored_l), geo.fields()
        if stored != planned or root != ROOT_INUM or geo.data_start >= nblocks or clean > 1:
            raise CorruptFileSystem(f"{where}: inconsistent superblock {stored} != {planned}")
        return geo

    def fields(self) -> tuple[int, ...]:
        return (self.ninodes, self.log_start, self.log_blocks, self.bitmap_start,
                self.bitmap_blocks, self.inode_start, self.inode_blocks, self.data_start)

    def pack(self, clean: bool) -> bytes:
        raw = SUPER.pack(params.FS_MAGIC, params.FS_VERSION, BS, self.nblocks, *self.fields(),
                          ROOT_INUM, int(clean))
        return raw + bytes(BS - len(raw))


@dataclass(slots=True, eq=False)
class Inode:
    """An inode in memory. ``open_count``, ``orphan`` and ``bmap`` are not stored on disk."""

    inum: int
    mode: int  # S_IF* | permission bits; 0 = free
    uid: int
    size: int = 0  # Invariant: <= MAX_FILE_SIZE; no pointer at block >= ceil(size / BS)
    direct: list[int] = field(default_factory=lambda: [0] * NDIRECT)
    ind: list[int] = field(default_factory=lambda: [0] * NLEVELS)  # single, double, triple
    open_count: int = 0  # OpenFiles on this inode
    orphan: bool = False  # unlinked while open: freed at the last close
    # Invariant: bmap[b], unless None or b >= len(bmap), is the device block (0: a hole)
    # that the block map gives for file block b >= NDIRECT as of the running transaction
    # (blockmap.py keeps it so); bmap[b] is None for every b < NDIRECT, and len(bmap) <=
    # FS_BMAP_CACHE_ENTRIES. A list indexed by file block, not a dict: a page read finds
    # its block with one index (plainread.c), not a hash probe and an int comparison.
    bmap: list[int | None] = field(default_factory=list, repr=False)
    # Invariant: in a mounted file system, 0 or INODE_SEALED (only a regular file's), and
    # INODE_SEALED exactly while the kernel's FilterGuard seals the inode, but between the
    # guard's seal and the commit of the flag that follows it before the filtered block
    # is handed on (fileio.py). Stored: unpack keeps every bit, for fsck to judge.
    flags: int = 0

    def known(self, bidx: int) -> int | None:
        """The remembered device block of file block ``bidx >= NDIRECT`` (0: a hole), or
        None if the map is not remembered there."""
        bmap = self.bmap
        return bmap[bidx] if bidx < len(bmap) else None

    def remembered(self) -> dict[int, int]:
        """Every remembered file block: its device block (0: a hole)."""
        return {b: blk for b, blk in enumerate(self.bmap) if blk is not None}

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def perm(self) -> int:
        return self.mode & 0o777

    def pack(self) -> bytes:
        return INODE.pack(self.mode, self.flags, self.uid, self.size, *self.direct, *self.ind)

    @classmethod
    def unpack(cls, inum: int, raw: bytes | bytearray | memoryview) -> Inode:
        mode, flags, uid, size, *ptrs = INODE.unpack(raw)
        return cls(inum, mode, uid, size, list(ptrs[:NDIRECT]), list(ptrs[NDIRECT:]),
                   flags=flags)

    def flags_damage(self) -> str:
        """What is wrong with the stored flags ("" if nothing): bits no version defines,
        or a seal on the directory (it is never filtered)."""
        if self.flags & ~INODE_FLAGS_KNOWN:
            return f"inode {self.inum}: flags {self.flags:#x} has bits no version defines"
        if self.flags and self.mode & S_IFMT != S_IFREG:
            return f"inode {self.inum}: flags {self.flags:#x} on a directory"
        return ""

    def mend_flags(self) -> str:
        """``fsck --repair``'s fix of damaged flags, failing closed: a regular file whose
        flags hold bits no version defines is sealed (bits that may mean a seal are taken
        as one; its owner unseals it if no filter wrote it), the directory's are cleared.
        Returns what was done ("" if nothing was wrong)."""
        why = self.flags_damage()
        if not why:
            return ""
        self.flags = INODE_SEALED if self.mode & S_IFMT == S_IFREG else 0
        return f"{why}: " + ("sealed" if self.flags else "cleared")


def index_path(bidx: int) -> tuple[int, tuple[int, ...]]:
    """The indirect level (0 single, 1 double, 2 triple) of file block ``bidx``
    (``bidx >= NDIRECT``) and the pointer index to follow in each block on the way."""
    i = bidx - NDIRECT
    if i < NPTR:
        return 0, (i,)
    i -= NPTR
    if i < NPTR * NPTR:
        return 1, (i // NPTR, i % NPTR)
    i -= NPTR * NPTR
    return 2, (i // (NPTR * NPTR), (i // NPTR) % NPTR, i % NPTR)


@dataclass(frozen=True, slots=True)
class FileStat:
    name: str
    inum: int
    uid: int
    mode: int  # permission bits
    size: int  # bytes
    blocks: int  # data blocks allocated (holes and the indirect block not counted)


def permits(user: User, ino: Inode, *, read: bool, write: bool) -> bool:
    """True if ``user`` may open ``ino`` for ``read`` and/or ``write`` (the mode-bit rule)."""
    if user.is_root:
        return True
    bits = (ino.mode >> 6) & 7 if user.uid == ino.uid else ino.mode & 7
    return (not read or bool(bits & 4)) and (not write or bool(bits & 2))


def encode_name(name: str) -> bytes:
    raw = name.encode("utf-8") if isinstance(name, str) else b""
    if not raw or len(raw) > params.FS_NAME_MAX or b"\0" in raw or b"/" in raw:
        raise InvalidArgument(
            f"bad file name {name!r}: want 1..{params.FS_NAME_MAX} bytes of UTF-8 without "
            f"NUL or '/'")
    return raw
