"""A small journaling file system on a ``BlockDevice``: data through the ``Cache``,
metadata through the write-ahead log (``journal.py``).

Usage::

    FileSystem.format(dev)                        # writes an empty file system
    fs = FileSystem.mount(dev, cache, clock)      # replays the log after a crash
    fs.create(alice, "notes", 0o600)
    f = fs.open(alice, "notes", "rw")             # a User or a Process
    fs.write(f, b"..."); fs.seek(f, 0); fs.read(f, 100)
    fs.truncate(f, 10); fs.fsync(f); fs.close(f)  # fsync: durable when it returns
    fs.rename(alice, "notes", "notes.old")        # atomic, replaces a file of that name
    fs.sync_dir()                                 # names durable (SQLite's dirSync)
    fs.unmount()                                  # commits, writes back; dev stays open

On-disk layout, format version 2 (little-endian; blocks of ``params.BLOCK_SIZE``)::

    block 0                     superblock: magic, version, geometry, clean flag
    log_start ..                the write-ahead log (journal.py): a header, then copies
    bitmap_start ..             free-block bitmap, bit b = block b in use (LSB first)
    inode_start ..              inode table, 128-byte inodes: u16 mode (0 = free),
                                u16 pad, u32 uid, u64 size, u32 direct[25],
                                u32 single, u32 double, u32 triple indirect
    data_start .. nblocks - 1   data and indirect blocks (an indirect block holds
                                1024 u32 pointers) -> largest file 25 + 1024 + 1024**2
                                + 1024**3 blocks (~4 TiB); an image may have 2**32 - 1
                                blocks (16 TiB). Image files are sparse: a hole costs
                                nothing on the host.

Inode 0 is never used (0 means "no inode"); inode 1 is the one flat root
directory, whose data is an array of 64-byte entries (u32 inode, 60 bytes of
NUL-padded UTF-8 name; inode 0 = free slot). A pointer 0 is a hole: it reads as
zeros and costs no I/O.

Permissions: the owner's rwx bits apply to the owner, the "other" bits to everyone
else (group bits are stored but not consulted); root (uid 0) bypasses them. Only the
owner or root may unlink. Open modes: ``"r"``, ``"w"`` (write-only, truncates to
zero, like ``open(..., "w")``), ``"rw"`` (read and write, no truncation).

The three policy methods -- each the single place for its decision, so a graft point
can replace exactly one method:
- ``_readahead(of, block) -> list[int]`` (``fs.readahead``): consulted after every
  block a user ``read`` returns, with ``of.history`` already holding that block at
  index 0. Returns file block numbers to prefetch; ``read`` validates them (count
  <= ``readahead_max``, each inside the file, no duplicates) and loads the
  non-resident ones with one device request per contiguous run. Default:
  ``sequential_readahead`` (the next ``readahead_max`` blocks, asked once per window).
- ``_filter(inode, file_offset, data, direction)`` (``fs.filter``): transforms a
  whole block in place, same length. Write path: the plaintext block is filtered
  (``FILTER_WRITE``) before it goes to the cache and the device. Read path: the block
  as it came from the device is filtered (``FILTER_READ``) before the user sees it.
  So the cache and the disk hold the filtered form. Holes are never filtered.
- ``_on_access(inode, block, op)`` (``fs.access`` event): after every block of a user
  read (``OP_READ``, before read-ahead) or write (``OP_WRITE``).
Directory I/O is internal and bypasses all three.

- ``_on_free(inode)``: after an inode is freed (its name unlinked and its last open
  closed), so whatever was attached to it (grafts, a filter's protection) goes with it.

Locking: one re-entrant lock (``FileSystem._lock``) serialises every operation and
is held while the policies run; it is a ``SharedLock``, so the grafts run under it
are bounded in wall time per principal (another user waits a bounded time). Lock
order: ``FileSystem._lock`` -> ``Cache._lock`` -> ``BlockDevice._lock``.

Crash consistency (the write-ahead log of ``journal.py``, ext3's ordered mode):
- every metadata change (superblock, bitmap, inodes, indirect blocks, the directory)
  joins the running transaction; nothing of it reaches its home location before the
  transaction commits, so every operation is atomic across a crash: after one, a
  mount sees the state after the last committed transaction, never part of one;
- a transaction commits at ``sync`` / ``fsync`` / ``sync_dir`` / ``unmount``, and
  when the log is about to fill (before an operation that might not fit, or between
  the blocks of a write larger than the log: such a write is atomic per transaction);
- a file's data reaches the device before the metadata that points to it commits
  (the commit writes back every dirty data block first): after a crash no file
  shows a block it never wrote. Overwrites of existing blocks go in place and are
  durable at the next commit (as in ext3 ordered mode);
- a block freed by a transaction is not allocated again before that transaction has
  committed (``_busy`` keeps it taken), so a crash can never show a committed
  file holding another file's uncommitted data;
- ``mount`` replays the committed transaction in the log (discarding a torn one),
  and frees the inodes of files unlinked while open.

Failure: space is checked before anything changes, so ``NoSpace`` leaves the file
system exactly as it was. A device error (``DeviceError``) fails the operation that
met it and nothing else: in a read or a write-back of data, that operation; in a
commit (``sync``, or an operation that had to make room in the log), the commit --
the transaction stays in memory and is committed again by the next commit, and the
image keeps its last committed transaction meanwhile. ``unmount`` that fails drops
everything in memory (the image keeps its last commit) and raises.

Invariants (``check_invariants``):
- the bitmap marks exactly the metadata blocks and the blocks reachable from inodes
  (``_busy`` is the bitmap plus the blocks freed since the last commit);
  no block is reachable twice; every pointer is inside the data area;
- no block pointer lies at or beyond ``ceil(size / BLOCK_SIZE)`` (sizes consistent);
  plaintext bytes of the last block beyond ``size`` are zero;
- the directory names each live regular inode exactly once, except unlinked files
  that are still open (orphans), which are freed at their last ``close``;
- the in-memory inode table, bitmap and directory equal what the journal (the running
  transaction, else the cache / device) holds.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Literal

from vino.graft.hold import SharedLock
from vino.kernel import params
from vino.kernel.cache import Access, Cache
from vino.kernel.clock import Clock, RealClock
from vino.kernel.device import BlockDevice
from vino.kernel.errors import (
    AccessDenied,
    BadHandle,
    CorruptFileSystem,
    FileExists,
    InvalidArgument,
    InvariantViolation,
    NoSpace,
    NoSuchFile,
)
from vino.kernel.journal import Journal
from vino.kernel.proc import Process, User

__all__ = [
    "FILTER_READ", "FILTER_WRITE", "MAX_FILE_SIZE", "OP_READ", "OP_WRITE", "FileStat", "FileSystem",
    "FsStats", "Inode", "OpenFile", "permits", "sequential_readahead",
]

BS = params.BLOCK_SIZE
NDIRECT = params.FS_DIRECT_BLOCKS
NPTR = BS // 4  # u32 pointers in one indirect block
NINDIRECT = NPTR  # file blocks mapped by the single indirect block
NLEVELS = 3  # single, double and triple indirect
# first file block mapped through each indirect level, and file blocks one level maps
_LEVEL_SPAN = (NPTR, NPTR ** 2, NPTR ** 3)
_LEVEL_START = (NDIRECT, NDIRECT + NPTR, NDIRECT + NPTR + NPTR ** 2)
MAX_FILE_BLOCKS = NDIRECT + sum(_LEVEL_SPAN)
MAX_FILE_SIZE = MAX_FILE_BLOCKS * BS  # bytes
ROOT_INUM = 1
INODES_PER_BLOCK = BS // params.FS_INODE_SIZE
DIRENTS_PER_BLOCK = BS // params.FS_DIRENT_SIZE
# Metadata blocks one operation other than a write can add to a transaction, beyond the
# bitmap blocks a truncate may touch: two directory blocks and the growth of the
# directory (a data block, three indirect blocks, four bitmap blocks), two inode blocks.
_OP_LOG_BLOCKS = 12
# ... and one block of a write: its bitmap block, three indirect blocks and their
# bitmap blocks, the inode block, a directory block.
_BLOCK_LOG_BLOCKS = 9

S_IFMT = 0o170000
S_IFREG = 0o100000
S_IFDIR = 0o040000

OP_READ = 0  # _on_access op
OP_WRITE = 1
FILTER_WRITE = 0  # _filter direction: plaintext in, stored form out
FILTER_READ = 1  # stored form in, plaintext out

OpenMode = Literal["r", "w", "rw"]

_SUPER = struct.Struct("<8s13I")
_INODE = struct.Struct(f"<HHIQ{NDIRECT}I{NLEVELS}I")
_DIRENT = struct.Struct(f"<I{params.FS_NAME_MAX}s")
_ZERO_BLOCK = bytes(BS)
assert _INODE.size == params.FS_INODE_SIZE and _DIRENT.size == params.FS_DIRENT_SIZE


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def sequential_readahead(file_blocks: int, block: int, hist: list[int], max_out: int) -> list[int]:
    """The default read-ahead (ABI ``fs.readahead``), as a pure function of its inputs.

    ``hist`` is most recent first and includes ``block`` at index 0. The file is read
    sequentially when the access before ``block`` was ``block - 1``. Then the next
    ``max_out`` blocks (clipped at the end of the file) are asked for -- once per
    window, not after every block: when the run has just become sequential
    (``hist[2] != block - 2``) and whenever ``block`` is a multiple of ``max_out``.
    Asking after every block would slide the window by one and turn read-ahead into
    one single-block device request per block, which saves nothing; asking once per
    window lets the missing blocks go to the device as one request. Otherwise nothing.
    """
    if max_out <= 0 or len(hist) < 2 or hist[0] != block or hist[1] != block - 1:
        return []
    just_sequential = len(hist) < 3 or hist[2] != block - 2
    if not just_sequential and block % max_out:
        return []
    return list(range(block + 1, min(block + 1 + max_out, file_blocks)))


@dataclass(frozen=True, slots=True)
class _Geometry:
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
    def plan(cls, nblocks: int, ninodes: int) -> _Geometry:
        bitmap_blocks = _ceil_div(nblocks, BS * 8)
        inode_blocks = _ceil_div(ninodes, INODES_PER_BLOCK)
        # Invariant: a transaction can hold any one operation (see _OP_LOG_BLOCKS).
        log_blocks = max(bitmap_blocks + 2 * _OP_LOG_BLOCKS,
                         min(nblocks // params.FS_LOG_FRACTION, params.FS_LOG_MAX_BLOCKS))
        log_start = 1
        bitmap_start = log_start + log_blocks
        inode_start = bitmap_start + bitmap_blocks
        return cls(nblocks, inode_blocks * INODES_PER_BLOCK, log_start, log_blocks,
                   bitmap_start, bitmap_blocks, inode_start, inode_blocks,
                   inode_start + inode_blocks)

    def fields(self) -> tuple[int, ...]:
        return (self.ninodes, self.log_start, self.log_blocks, self.bitmap_start,
                self.bitmap_blocks, self.inode_start, self.inode_blocks, self.data_start)

    def pack(self, clean: bool) -> bytes:
        raw = _SUPER.pack(params.FS_MAGIC, params.FS_VERSION, BS, self.nblocks, *self.fields(),
                          ROOT_INUM, int(clean))
        return raw + bytes(BS - len(raw))


@dataclass(slots=True, eq=False)
class Inode:
    """An inode in memory. ``open_count`` and ``orphan`` are not stored on disk."""

    inum: int
    mode: int  # S_IF* | permission bits; 0 = free
    uid: int
    size: int = 0  # Invariant: <= MAX_FILE_SIZE; no pointer at block >= ceil(size / BS)
    direct: list[int] = field(default_factory=lambda: [0] * NDIRECT)
    ind: list[int] = field(default_factory=lambda: [0] * NLEVELS)  # single, double, triple
    open_count: int = 0  # OpenFiles on this inode
    orphan: bool = False  # unlinked while open: freed at the last close

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def perm(self) -> int:
        return self.mode & 0o777

    def pack(self) -> bytes:
        return _INODE.pack(self.mode, 0, self.uid, self.size, *self.direct, *self.ind)

    @classmethod
    def unpack(cls, inum: int, raw: bytes | bytearray | memoryview) -> Inode:
        mode, _, uid, size, *ptrs = _INODE.unpack(raw)
        return cls(inum, mode, uid, size, list(ptrs[:NDIRECT]), list(ptrs[NDIRECT:]))


def _path(bidx: int) -> tuple[int, tuple[int, ...]]:
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


@dataclass(slots=True)
class FsStats:
    reads: int = 0  # read() calls
    writes: int = 0  # write() calls
    bytes_read: int = 0
    bytes_written: int = 0
    block_reads: int = 0  # file blocks returned to users
    block_writes: int = 0  # file blocks written by users
    hole_reads: int = 0  # of block_reads, holes (no I/O)
    readahead_calls: int = 0  # times _readahead was consulted
    readahead_blocks: int = 0  # blocks it asked for
    prefetches: int = 0  # blocks actually loaded by read-ahead
    prefetch_hits: int = 0  # user block reads served by a prefetched block
    filter_calls: int = 0
    access_events: int = 0

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class OpenFile:
    """One open of a file: position, rights, and the access history read-ahead sees."""

    __slots__ = ("_history", "closed", "fid", "fs", "inode", "name", "pos", "prefetch_hits",
                 "prefetches", "process", "readable", "user", "writable")

    def __init__(self, fs: FileSystem, inode: Inode, name: str, user: User,
                 process: Process | None, readable: bool, writable: bool, fid: int) -> None:
        self.fs = fs
        self.inode = inode
        self.name = name
        self.user = user
        self.process = process
        self.readable = readable
        self.writable = writable
        self.fid = fid
        self.pos = 0
        self.closed = False
        self.prefetches = 0  # blocks read-ahead loaded for this open file
        self.prefetch_hits = 0
        # Invariant: most recent first, no two equal neighbours, at most READAHEAD_HISTORY.
        self._history: deque[int] = deque(maxlen=params.READAHEAD_HISTORY)

    @property
    def history(self) -> list[int]:
        """File blocks accessed through this open file, most recent first (repeats collapsed)."""
        return list(self._history)

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fs.close(self)

    def __repr__(self) -> str:
        return f"OpenFile({self.name!r}, pos={self.pos}, closed={self.closed})"


class FileSystem:
    """A mounted file system. Build it with ``FileSystem.mount``."""

    def __init__(self, device: BlockDevice, cache: Cache, clock: Clock, geo: _Geometry) -> None:
        self.device = device
        self.cache = cache
        self.clock = clock
        self.geo = geo
        self.stats = FsStats()
        self.readahead_max = params.READAHEAD_MAX_OUT  # max_out given to _readahead
        # Re-entrant; grafts run under it are bounded in wall time (graft/hold.py).
        self._lock = SharedLock("fs")
        self._mounted = True
        self.journal = Journal(device, cache, geo.log_start, geo.log_blocks)
        # Invariant: keys are the used inodes; _inodes[i].inum == i.
        self._inodes: dict[int, Inode] = {}
        # Invariant: equals the bitmap as of the running transaction (each changed
        # bitmap block is logged as a live window on it: _bitmap_view).
        self._bitmap = bytearray(geo.bitmap_blocks * BS)
        self._bitmap_view = memoryview(self._bitmap)
        # Invariant: the inode table as of the running transaction (logged like the bitmap),
        # so storing an inode never reads the device.
        self._itable = bytearray(geo.inode_blocks * BS)
        self._itable_view = memoryview(self._itable)
        # Invariant: _busy == _bitmap | the blocks freed since the last commit; blocks are
        # allocated from _busy, so none is reused before the transaction freeing it commits.
        self._busy = bytearray(self._bitmap)
        self._nfree = 0  # Invariant: zero bits of _bitmap below nblocks
        self._npending = 0  # Invariant: bits set in _busy and clear in _bitmap
        self._alloc_hint = geo.data_start  # where a block search with no better idea starts
        # Invariant: _dir[name] = (inum, slot); slots distinct, below root.size / DIRENT_SIZE.
        self._dir: dict[str, tuple[int, int]] = {}
        self._free_slots: list[int] = []  # slots inside the directory with inode 0
        self._open: dict[int, OpenFile] = {}  # fid -> open file
        self._next_fid = 1

    # ---- policies (one method each: graft points) -------------------------------------

    def _readahead(self, of: OpenFile, block: int) -> list[int]:
        """Blocks of ``of``'s file to prefetch after ``block`` was read. Default: sequential."""
        return sequential_readahead(
            _ceil_div(of.inode.size, BS), block, list(of._history), self.readahead_max)

    def _filter(self, inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        """Transform ``data`` (one block at ``file_offset``) in place, keeping its length.

        ``direction`` is ``FILTER_WRITE`` or ``FILTER_READ``. Default: identity.
        """

    def _on_access(self, inode: Inode, block: int, op: int) -> None:
        """Event: a user read (``OP_READ``) or wrote (``OP_WRITE``) file block ``block``."""

    def _on_free(self, inode: Inode) -> None:
        """Event: ``inode`` was freed; its number may be given to the next new file."""

    # ---- format / mount / unmount -----------------------------------------------------

    @staticmethod
    def format(device: BlockDevice, ninodes: int = params.FS_DEFAULT_INODES) -> None:
        """Write an empty file system (root directory only) straight to ``device``.

        ``ninodes`` is rounded up to a whole inode block. Must not be used on a
        mounted device (its cache would be stale). The log area is left as it is
        except its header, which is cleared (an old log must not replay into a new
        file system); an image made by ``BlockDevice.create`` stays sparse.
        """
        if ninodes < 2:
            raise InvalidArgument(f"ninodes must be >= 2 (inode 0 and the root), got {ninodes}")
        geo = _Geometry.plan(device.nblocks, ninodes)
        if geo.data_start + 1 > device.nblocks:
            raise InvalidArgument(
                f"{device.nblocks} blocks is too small: metadata needs {geo.data_start} and "
                f"at least one data block is required")
        bitmap = bytearray(geo.bitmap_blocks * BS)
        for b in range(geo.data_start):
            bitmap[b >> 3] |= 1 << (b & 7)
        table = bytearray(geo.inode_blocks * BS)
        root = Inode(ROOT_INUM, S_IFDIR | 0o755, 0)
        off = ROOT_INUM * params.FS_INODE_SIZE
        table[off:off + params.FS_INODE_SIZE] = root.pack()
        device.write_block(geo.log_start, _ZERO_BLOCK)
        device.write_blocks(geo.bitmap_start, bitmap)
        device.write_blocks(geo.inode_start, table)
        device.flush()  # everything else is in place before the superblock names it
        device.write_block(0, geo.pack(clean=True))
        device.flush()

    @classmethod
    def mount(cls, device: BlockDevice, cache: Cache, clock: Clock | None = None) -> FileSystem:
        """Read the superblock, replay the log, read the bitmap, inode table and
        directory; reclaim orphans.

        Raises ``CorruptFileSystem`` (having written nothing but a replay of the log)
        if the image is not a file system of this version and geometry.
        """
        if clock is None:
            clock = device.clock if device.clock is not None else RealClock()
        raw = cache.read_block(device, 0)
        try:
            geo = cls._check_super(device, raw)
        except CorruptFileSystem:
            cache.discard(device, 0)
            raise
        fs = cls(device, cache, clock, geo)
        with fs._lock:
            fs.journal.seq = fs.journal.last_seq()
            fs.journal.replay()
            try:
                fs._load()
            except CorruptFileSystem:
                for b in cache.resident_blocks(device):
                    cache.discard(device, b)
                raise
            fs.journal.write(0, geo.pack(clean=False))
        return fs

    @staticmethod
    def _check_super(device: BlockDevice, raw: bytes) -> _Geometry:
        (magic, version, bsize, nblocks, *stored_l, root, _clean) = _SUPER.unpack_from(raw)
        where = f"{device.path}"
        if magic != params.FS_MAGIC:
            raise CorruptFileSystem(f"{where}: no vino file system (magic {magic!r})")
        if version != params.FS_VERSION:
            raise CorruptFileSystem(f"{where}: version {version}, this kernel reads "
                                    f"{params.FS_VERSION}")
        if bsize != BS or nblocks != device.nblocks:
            raise CorruptFileSystem(f"{where}: geometry {nblocks}x{bsize} does not match the "
                                    f"device {device.nblocks}x{BS}")
        geo = _Geometry.plan(nblocks, stored_l[0])
        stored, planned = tuple(stored_l), geo.fields()
        if stored != planned or root != ROOT_INUM or geo.data_start >= nblocks:
            raise CorruptFileSystem(f"{where}: inconsistent superblock {stored} != {planned}")
        return geo

    def _load(self) -> None:
        geo, dev = self.geo, self.device
        for i in range(geo.bitmap_blocks):
            self._bitmap[i * BS:(i + 1) * BS] = self.cache.read_block(dev, geo.bitmap_start + i)
        self._busy[:] = self._bitmap
        used = int.from_bytes(self._bitmap, "little").bit_count()
        self._nfree = geo.nblocks - used
        for i in range(geo.inode_blocks):
            raw = self.cache.read_block(dev, geo.inode_start + i)
            self._itable[i * BS:(i + 1) * BS] = raw
            for k in range(INODES_PER_BLOCK):
                inum = i * INODES_PER_BLOCK + k
                off = k * params.FS_INODE_SIZE
                ino = Inode.unpack(inum, raw[off:off + params.FS_INODE_SIZE])
                if ino.mode == 0:
                    continue
                if inum == 0 or ino.mode & S_IFMT not in (S_IFREG, S_IFDIR):
                    raise CorruptFileSystem(f"{dev.path}: inode {inum} has mode {ino.mode:o}")
                self._inodes[inum] = ino
        root = self._inodes.get(ROOT_INUM)
        if root is None or not root.is_dir:
            raise CorruptFileSystem(f"{dev.path}: inode {ROOT_INUM} is not the root directory")
        data, _ = self._read_at(root, 0, root.size, None)
        for slot in range(len(data) // params.FS_DIRENT_SIZE):
            inum, raw_name = _DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)
            if inum == 0:
                self._free_slots.append(slot)
                continue
            name = raw_name.rstrip(b"\0").decode("utf-8", "replace")
            entry = self._inodes.get(inum)
            if entry is None or entry.is_dir or name in self._dir:
                raise CorruptFileSystem(f"{dev.path}: bad directory entry {name!r} -> {inum}")
            self._dir[name] = (inum, slot)
        named = {inum for inum, _ in self._dir.values()}
        for orphan in [i for i in self._inodes.values() if not i.is_dir and i.inum not in named]:
            self._begin()
            self._free_inode(orphan)  # unlinked while open, and never closed (a crash)

    def unmount(self) -> None:
        """Close every open file, mark the image clean, commit, write back and drop
        every cached block of the device, and flush the device. The device stays open.

        If a device error stops it, everything in memory is dropped (the image keeps
        its last committed transaction), the file system is unmounted, and the error
        is raised.
        """
        with self._lock:
            self._check_mounted()
            try:
                for of in list(self._open.values()):
                    self.close(of)
                self.journal.write(0, self.geo.pack(clean=True))
                self.journal.commit()
                self.cache.invalidate(self.device)
                self.device.flush()
            except BaseException:
                for b in self.cache.resident_blocks(self.device):
                    self.cache.discard(self.device, b)
                self.journal.tx.clear()
                raise
            finally:
                self._mounted = False

    @property
    def mounted(self) -> bool:
        return self._mounted

    # ---- durability -----------------------------------------------------------------------

    def sync(self) -> None:
        """Make everything done so far durable: commit the running transaction (after
        writing back every dirty data block) and flush the device. A crash after this
        returns loses nothing done before it."""
        with self._lock:
            self._check_mounted()
            self._commit()

    def fsync(self, of: OpenFile) -> None:
        """Make ``of``'s file durable: its data, its size and its name. (The log commits
        everything with it, as ext3's ordered mode does.)"""
        with self._lock:
            self._check_open(of)
            self._commit()

    def sync_dir(self) -> None:
        """Make the directory durable: every create, unlink and rename done so far
        survives a crash once this returns (SQLite's ``dirSync`` after a delete)."""
        self.sync()

    def _commit(self) -> None:
        """Commit the running transaction (on a device error it stays to commit later)."""
        self.journal.commit()
        if self._npending:
            self._busy[:] = self._bitmap  # blocks freed by the committed transaction
            self._npending = 0

    def _begin(self, need: int = 0) -> None:
        """Start an operation that may log up to ``need`` + ``_OP_LOG_BLOCKS`` blocks more
        than the bitmap: commit first if the log might not hold it."""
        if self.journal.room() < need + _OP_LOG_BLOCKS + self.geo.bitmap_blocks:
            self._commit()

    # ---- names ----------------------------------------------------------------------------

    def create(self, user: User, name: str, mode: int = 0o644) -> FileStat:
        """Make an empty regular file owned by ``user`` with permission bits ``mode``."""
        raw_name = _encode_name(name)
        if mode & ~0o777:
            raise InvalidArgument(f"mode {mode:o} has bits other than permission bits")
        with self._lock:
            self._check_mounted()
            if name in self._dir:
                raise FileExists(f"{name!r} already exists")
            inum = next((i for i in range(ROOT_INUM + 1, self.geo.ninodes)
                         if i not in self._inodes), None)
            if inum is None:
                raise NoSpace(f"no free inode (all {self.geo.ninodes - 2} in use)")
            self._begin()
            root = self._inodes[ROOT_INUM]
            slot = min(self._free_slots) if self._free_slots else (
                root.size // params.FS_DIRENT_SIZE)
            ino = Inode(inum, S_IFREG | mode, user.uid)
            # the directory write checks space before changing anything
            self._write_at(root, slot * params.FS_DIRENT_SIZE, _DIRENT.pack(inum, raw_name), None)
            if self._free_slots:
                self._free_slots.remove(slot)
            self._inodes[inum] = ino
            self._store_inode(ino)
            self._dir[name] = (inum, slot)
            return self._stat(name, ino)

    def open(self, who: User | Process, name: str, mode: OpenMode = "r") -> OpenFile:
        """Open ``name`` for ``who`` (a ``Process`` opens with its user's rights)."""
        if mode not in ("r", "w", "rw"):
            raise InvalidArgument(f"open mode must be 'r', 'w' or 'rw', got {mode!r}")
        process = who if isinstance(who, Process) else None
        user = who.user if isinstance(who, Process) else who
        readable, writable = "r" in mode, "w" in mode
        with self._lock:
            self._check_mounted()
            ino = self._lookup(name)
            if not permits(user, ino, read=readable, write=writable):
                raise AccessDenied(
                    f"user {user.name!r} (uid {user.uid}) may not open {name!r} for {mode!r}: "
                    f"mode {ino.perm:03o}, owner uid {ino.uid}")
            if mode == "w":
                self._begin()
                self._truncate(ino)
            of = OpenFile(self, ino, name, user, process, readable, writable, self._next_fid)
            self._next_fid += 1
            ino.open_count += 1
            self._open[of.fid] = of
            return of

    def unlink(self, user: User, name: str) -> None:
        """Remove ``name``. Only its owner or root may. An open file lives until its last close."""
        with self._lock:
            self._check_mounted()
            ino = self._lookup(name)
            if not (user.is_root or user.uid == ino.uid):
                raise AccessDenied(f"user {user.name!r} (uid {user.uid}) does not own {name!r} "
                                   f"(owner uid {ino.uid})")
            self._begin()
            self._own_dir_slot(self._dir[name][1])  # reads first: a failure changes nothing
            if ino.open_count:
                ino.orphan = True
            else:
                self._free_inode(ino)
            self._remove_name(name)

    def rename(self, user: User, old: str, new: str) -> None:
        """Give ``old`` the name ``new``, atomically replacing a file called ``new``
        (which lives on until its last close if open). The owner of ``old`` (and of
        ``new``, if it exists) or root may. A crash leaves either name, never both
        or neither."""
        raw_new = _encode_name(new)
        with self._lock:
            self._check_mounted()
            ino = self._lookup(old)
            target = self._dir.get(new)
            victim = self._inodes[target[0]] if target is not None else None
            for who, name in ((ino, old), (victim, new)):
                if who is not None and not (user.is_root or user.uid == who.uid):
                    raise AccessDenied(f"user {user.name!r} (uid {user.uid}) does not own "
                                       f"{name!r} (owner uid {who.uid})")
            if old == new:
                return
            self._begin()
            self._own_dir_slot(self._dir[old][1])  # reads first: a failure changes nothing
            if victim is not None:
                self._own_dir_slot(self._dir[new][1])
                if victim.open_count:
                    victim.orphan = True
                else:
                    self._free_inode(victim)
                self._remove_name(new)
            inum, slot = self._dir.pop(old)
            self._write_at(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE,
                           _DIRENT.pack(inum, raw_new), None)
            self._dir[new] = (inum, slot)
            for of in self._open.values():
                if of.inode is ino:
                    of.name = new

    def _own_dir_slot(self, slot: int) -> None:
        blk = self._bmap(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE // BS)
        if blk:
            self.journal.own(blk)

    def _remove_name(self, name: str) -> None:
        _, slot = self._dir.pop(name)
        self._write_at(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE,
                       bytes(params.FS_DIRENT_SIZE), None)
        self._free_slots.append(slot)

    def listdir(self) -> list[str]:
        with self._lock:
            self._check_mounted()
            return sorted(self._dir)

    def stat(self, name: str) -> FileStat:
        with self._lock:
            self._check_mounted()
            return self._stat(name, self._lookup(name))

    def probe(self, name: str) -> tuple[int, int, int] | None:
        """``(size, uid, permission bits)`` of ``name``, or None if there is no such file:
        ``stat`` without walking the block map (SQLite asks at every transaction
        whether a journal exists)."""
        with self._lock:
            self._check_mounted()
            entry = self._dir.get(name)
            if entry is None:
                return None
            ino = self._inodes[entry[0]]
            return ino.size, ino.uid, ino.perm

    @property
    def free_blocks(self) -> int:
        """Free blocks (including those freed by the running transaction, which are
        allocated again only after it commits)."""
        return self._nfree

    # ---- open files -----------------------------------------------------------------------

    def read(self, of: OpenFile, n: int) -> bytes:
        """Up to ``n`` bytes from the position (fewer at end of file); advances the position."""
        if n < 0:
            raise InvalidArgument(f"read of {n} bytes")
        with self._lock:
            self._check_open(of)
            if not of.readable:
                raise AccessDenied(f"{of.name!r} is not open for reading")
            data, of.pos = self._read_at(of.inode, of.pos, n, of)
            self.stats.reads += 1
            self.stats.bytes_read += len(data)
            return data

    def write(self, of: OpenFile, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` at the position (growing the file); return ``len(data)``.

        All or nothing with respect to space: ``NoSpace`` is raised before any change.
        """
        with self._lock:
            self._check_open(of)
            if not of.writable:
                raise AccessDenied(f"{of.name!r} is not open for writing")
            data = bytes(data)
            self._begin()  # room for the inode and the first block's metadata
            self._write_at(of.inode, of.pos, data, of)
            of.pos += len(data)
            self.stats.writes += 1
            self.stats.bytes_written += len(data)
            return len(data)

    def truncate(self, of: OpenFile, size: int) -> None:
        """Set the file's size to ``size``: blocks past it are freed, a larger size reads
        as zeros (a hole). Atomic across a crash. ``of`` must be open for writing."""
        if size < 0 or size > MAX_FILE_SIZE:
            raise InvalidArgument(f"truncate to {size}: want 0 .. {MAX_FILE_SIZE}")
        with self._lock:
            self._check_open(of)
            if not of.writable:
                raise AccessDenied(f"{of.name!r} is not open for writing")
            ino = of.inode
            if size == ino.size:
                return
            self._begin()
            if size < ino.size:
                cut = self._prepare_cut(ino, size, of)
                try:
                    self._trim(ino, _ceil_div(size, BS))
                except BaseException:
                    if cut is not None:
                        self._unalloc_block(cut[1])
                    raise
                if cut is not None:
                    old, new, leaf = cut
                    self._set_pointer(ino, size // BS, new, leaf)
                    self._free_block(old)
            else:
                self._zero_tail(ino, of)
            ino.size = size
            self._store_inode(ino)

    def seek(self, of: OpenFile, pos: int) -> int:
        """Set the position (beyond the end is allowed: a later write leaves a hole)."""
        if pos < 0:
            raise InvalidArgument(f"seek to {pos}")
        with self._lock:
            self._check_open(of)
            of.pos = pos
            return pos

    def close(self, of: OpenFile) -> None:
        """Close (idempotent). The last close of an unlinked file frees it."""
        with self._lock:
            if of.closed or of.fs is not self:
                return
            of.closed = True
            del self._open[of.fid]
            ino = of.inode
            ino.open_count -= 1
            if ino.orphan and ino.open_count == 0 and self._mounted:
                self._begin()
                self._free_inode(ino)

    # ---- block I/O (caller holds _lock) -------------------------------------------------

    def _read_at(self, ino: Inode, start: int, n: int, of: OpenFile | None) -> tuple[bytes, int]:
        """Bytes ``start .. start + n`` clipped at the end of file, and the end position.
        With ``of``: a user read (filter, history, access event, read-ahead)."""
        end = min(ino.size, start + n)
        out = bytearray()
        pos = start
        while pos < end:
            bidx, boff = divmod(pos, BS)
            take = min(BS - boff, end - pos)
            blk = self._bmap(ino, bidx)
            if blk == 0:
                plain = bytearray(BS)
                if of is not None:
                    self.stats.hole_reads += 1
            elif ino.is_dir:
                plain = bytearray(self.journal.read(blk))
            else:
                stored, how = self.cache.fetch(self.device, blk)
                plain = bytearray(stored)
                if of is not None:
                    self._apply_filter(ino, bidx * BS, plain, FILTER_READ)
                    if how is Access.PREFETCH_HIT:
                        self.stats.prefetch_hits += 1
                        of.prefetch_hits += 1
            out += plain[boff:boff + take]
            pos += take
            if of is not None:
                self.stats.block_reads += 1
                self._record(of, ino, bidx, OP_READ)
                self.stats.readahead_calls += 1
                self._prefetch(of, self._readahead(of, bidx))
        return bytes(out), max(pos, start)

    def _write_at(self, ino: Inode, start: int, data: bytes, of: OpenFile | None) -> None:
        n = len(data)
        if n == 0:
            return
        end = start + n
        if end > MAX_FILE_SIZE:
            raise NoSpace(f"file would be {end} bytes; the largest file is {MAX_FILE_SIZE}")
        first, last = start // BS, (end - 1) // BS
        need = self._blocks_needed(ino, first, last)
        if need > self._nfree:
            raise NoSpace(f"write needs {need} blocks, {self._nfree} free")
        if need > self._nfree - self._npending:
            self._commit()  # the blocks freed by the running transaction become usable
        old_size = ino.size
        meta = ino.is_dir
        if start > old_size and old_size // BS < first:
            self._zero_tail(ino, of)
        try:
            for bidx in range(first, last + 1):
                bstart = bidx * BS
                lo, hi = max(start, bstart), min(end, bstart + BS)
                blk = self._bmap(ino, bidx)
                if hi - lo == BS:
                    plain = bytearray(data[lo - start:hi - start])
                else:
                    if blk == 0:  # new block or hole: reads as zeros
                        plain = bytearray(BS)
                    else:
                        plain = bytearray(self.journal.read(blk) if meta
                                          else self.cache.read_block(self.device, blk))
                        if of is not None:
                            self._apply_filter(ino, bstart, plain, FILTER_READ)
                        keep = max(old_size - bstart, 0)  # bytes of this block inside the file
                        if keep < BS:  # beyond the old end must read back as zeros
                            plain[keep:] = bytes(BS - keep)
                    plain[lo - bstart:hi - bstart] = data[lo - start:hi - start]
                if of is not None:
                    self._apply_filter(ino, bstart, plain, FILTER_WRITE)
                if blk == 0:
                    if self.journal.room() < _BLOCK_LOG_BLOCKS:
                        self._store_inode(ino)  # a write larger than the log: commit a step
                        self._commit()
                    blk = self._map_new_block(ino, bidx, None if meta else plain)
                    if meta:
                        self.journal.write(blk, plain)
                elif meta:
                    self.journal.write(blk, plain)
                else:
                    self.cache.write_block(self.device, blk, plain)
                ino.size = max(ino.size, hi)
                if of is not None:
                    self.stats.block_writes += 1
                    self._record(of, ino, bidx, OP_WRITE)
        finally:
            if ino.size != old_size or need:
                self._store_inode(ino)

    def _zero_tail(self, ino: Inode, of: OpenFile | None) -> None:
        """Zero the bytes of the last block past the end of file before the file grows
        over them (a shrinking truncate leaves them as they were; growing must not
        bring them back). A data write beyond the committed size: crash-safe."""
        keep = ino.size % BS
        blk = self._bmap(ino, ino.size // BS) if keep else 0
        if not blk or ino.is_dir:
            return
        plain = bytearray(self.cache.read_block(self.device, blk))
        if of is not None:
            self._apply_filter(ino, ino.size - keep, plain, FILTER_READ)
        if not any(plain[keep:]):
            return
        plain[keep:] = bytes(BS - keep)
        if of is not None:
            self._apply_filter(ino, ino.size - keep, plain, FILTER_WRITE)
        self.cache.write_block(self.device, blk, plain)

    def _prepare_cut(self, ino: Inode, size: int, of: OpenFile | None,
                     ) -> tuple[int, int, int] | None:
        """Before a truncate to ``size``: the bytes of the new last block past ``size``
        must read as zeros. They are the committed file's data until the truncate
        commits, so they are not zeroed in place: the block is copied to a new one
        (zeros past ``size``), returned as ``(old, new, leaf indirect block or 0)`` for
        the caller to map and free. None if nothing needs doing. On a full disk (no
        block usable before the commit) they are zeroed in place. All I/O is here."""
        keep = size % BS
        old = self._bmap(ino, size // BS) if keep else 0
        if not old:
            return None
        plain = bytearray(self.cache.read_block(self.device, old))
        if of is not None:
            self._apply_filter(ino, size - keep, plain, FILTER_READ)
        if not any(plain[keep:]):
            return None
        plain[keep:] = bytes(BS - keep)
        if of is not None:
            self._apply_filter(ino, size - keep, plain, FILTER_WRITE)
        if self._nfree - self._npending < 1:
            self.cache.write_block(self.device, old, plain)
            return None
        leaf = 0
        if size // BS >= NDIRECT:
            level, idx = _path(size // BS)
            leaf = ino.ind[level]
            for k in idx[:-1]:
                leaf = self.journal.read_u32(leaf, k)
            self.journal.own(leaf)
        new = self._alloc_block(old + 1)
        try:
            self.cache.write_block(self.device, new, plain)
        except BaseException:
            self._unalloc_block(new)
            raise
        return old, new, leaf

    def _set_pointer(self, ino: Inode, bidx: int, blk: int, leaf: int) -> None:
        """Point mapped file block ``bidx`` at ``blk`` (``leaf``: its indirect block)."""
        if bidx < NDIRECT:
            ino.direct[bidx] = blk
        else:
            self.journal.write(leaf, blk.to_bytes(4, "little"), 4 * _path(bidx)[1][-1])

    def _apply_filter(self, ino: Inode, offset: int, buf: bytearray, direction: int) -> None:
        self.stats.filter_calls += 1
        self._filter(ino, offset, buf, direction)
        if len(buf) != BS:
            raise InvalidArgument(
                f"filter changed the length of block {offset // BS} of inode {ino.inum} "
                f"from {BS} to {len(buf)}")

    def _record(self, of: OpenFile, ino: Inode, bidx: int, op: int) -> None:
        if not of._history or of._history[0] != bidx:
            of._history.appendleft(bidx)
        self.stats.access_events += 1
        self._on_access(ino, bidx, op)

    def _prefetch(self, of: OpenFile, blocks: list[int]) -> None:
        if not blocks:
            return
        file_blocks = _ceil_div(of.inode.size, BS)
        if (len(blocks) > self.readahead_max or len(set(blocks)) != len(blocks)
                or any(not isinstance(b, int) or not 0 <= b < file_blocks for b in blocks)):
            raise InvalidArgument(
                f"read-ahead for {of.name!r} asked for {blocks!r}: want at most "
                f"{self.readahead_max} distinct blocks below {file_blocks}")
        self.stats.readahead_blocks += len(blocks)
        targets = [d for d in (self._bmap(of.inode, b) for b in blocks) if d]
        loaded = self.cache.prefetch(self.device, targets)
        self.stats.prefetches += loaded
        of.prefetches += loaded

    # ---- block map and allocation (caller holds _lock) ----------------------------------

    def _bmap(self, ino: Inode, bidx: int) -> int:
        """Device block of file block ``bidx``, or 0 for a hole."""
        if bidx < NDIRECT:
            return ino.direct[bidx]
        if bidx >= MAX_FILE_BLOCKS:
            return 0
        level, idx = _path(bidx)
        b = ino.ind[level]
        for k in idx:
            if b == 0:
                return 0
            b = self.journal.read_u32(b, k)
        return b

    def _blocks_needed(self, ino: Inode, first: int, last: int) -> int:
        """Blocks a write of file blocks ``first .. last`` would allocate (data + indirect)."""
        need = sum(1 for b in range(first, min(last, NDIRECT - 1) + 1) if ino.direct[b] == 0)
        missing: set[tuple[int, tuple[int, ...]]] = set()  # indirect blocks to make
        for bidx in range(max(first, NDIRECT), last + 1):
            level, idx = _path(bidx)
            b = ino.ind[level]
            depth = 0
            while b and depth < len(idx):
                b = self.journal.read_u32(b, idx[depth])
                depth += 1
            if b:
                continue
            need += 1
            # the indirect blocks below the first missing pointer (the root if depth is 0)
            for d in range(max(depth, 1) if ino.ind[level] else 0, len(idx)):
                missing.add((level, idx[:d]))
        return need + len(missing)

    def _map_new_block(self, ino: Inode, bidx: int, data: bytes | bytearray | None) -> int:
        """Allocate a block for hole ``bidx``, store ``data`` in it (through the cache;
        None: the caller logs it as metadata), and map it. Every device access comes
        before the first change: if one fails, nothing changed."""
        prev = self._bmap(ino, bidx - 1) if bidx > 0 else 0
        hint = prev + 1 if prev else self._alloc_hint
        path: list[int] = []  # existing indirect blocks on the way (root first)
        level, idx = _path(bidx) if bidx >= NDIRECT else (0, ())
        if bidx >= NDIRECT:
            node = ino.ind[level]
            for k in idx:
                if not node:
                    break
                path.append(node)
                node = self.journal.read_u32(node, k)
            if path:
                self.journal.own(path[-1])  # it gets the new pointer: no read later
        blk = self._alloc_block(hint)
        if data is not None:
            try:
                self.cache.write_block(self.device, blk, data)
            except BaseException:
                self._unalloc_block(blk)
                raise
        if bidx < NDIRECT:
            ino.direct[bidx] = blk
            return blk
        # from here no device I/O: new indirect blocks are whole-block writes to the log
        if not path:
            ino.ind[level] = self._new_indirect(blk + 1)
            path.append(ino.ind[level])
        node = path[-1]
        for k in idx[len(path) - 1:-1]:
            nxt = self._new_indirect(blk + 1)
            self.journal.write(node, nxt.to_bytes(4, "little"), 4 * k)
            node = nxt
        self.journal.write(node, blk.to_bytes(4, "little"), 4 * idx[-1])
        return blk

    def _unalloc_block(self, b: int) -> None:
        """Give back a block allocated by this operation and never mapped (no data of
        any file is in it: it may be used again at once)."""
        i = b >> 3
        self._bitmap[i] &= ~(1 << (b & 7)) & 0xFF
        self._busy[i] &= ~(1 << (b & 7)) & 0xFF
        self._nfree += 1
        self.cache.discard(self.device, b)

    def _new_indirect(self, near: int) -> int:
        b = self._alloc_block(near)
        self.cache.discard(self.device, b)
        self.journal.write(b, _ZERO_BLOCK)
        return b

    def _alloc_block(self, near: int) -> int:
        """Take the first block free in ``_busy`` at or after ``near`` (wrapping); mark it used."""
        geo = self.geo
        if not geo.data_start <= near < geo.nblocks:
            near = geo.data_start
        bm = self._busy
        for lo, hi in ((near, geo.nblocks), (geo.data_start, near)):
            b = lo
            while b < hi:
                byte = bm[b >> 3]
                if byte == 0xFF:
                    b = (b | 7) + 1
                    continue
                if not byte >> (b & 7) & 1:
                    self._set_bit(b, True)
                    self._nfree -= 1
                    self._alloc_hint = b + 1
                    return b
                b += 1
        raise NoSpace(f"no free block on {self.device.path}")

    def _free_block(self, b: int) -> None:
        self._set_bit(b, False)
        self._nfree += 1
        self._npending += 1
        self.journal.forget(b)
        self.cache.discard(self.device, b)

    def _set_bit(self, b: int, used: bool) -> None:
        i = b >> 3
        if used:
            self._bitmap[i] |= 1 << (b & 7)
            self._busy[i] |= 1 << (b & 7)
        else:  # _busy keeps the block taken until the transaction commits
            self._bitmap[i] &= ~(1 << (b & 7)) & 0xFF
        blk = i // BS
        home = self.geo.bitmap_start + blk
        if home not in self.journal.tx:
            self.journal.attach(home, self._bitmap_view[blk * BS:(blk + 1) * BS])

    def _truncate(self, ino: Inode) -> None:
        """Free every block of ``ino`` and make it empty."""
        self._trim(ino, 0)
        ino.size = 0
        self._store_inode(ino)

    def _trim(self, ino: Inode, keep: int) -> None:
        """Free every data block of ``ino`` at file block ``keep`` or beyond, and every
        indirect block left without pointers. The caller sets the size. Every read
        comes first (a plan); if one fails, nothing changed."""
        frees: list[int] = []
        writes: dict[int, bytes] = {}
        cleared: list[int] = []
        for level in range(NLEVELS):
            node = ino.ind[level]
            if node and self._plan_trim(node, level + 1, _LEVEL_START[level], keep, frees,
                                        writes):
                frees.append(node)
                cleared.append(level)
        for i in range(keep, NDIRECT):  # from here no device I/O
            if ino.direct[i]:
                self._free_block(ino.direct[i])
                ino.direct[i] = 0
        for level in cleared:
            ino.ind[level] = 0
        for node, raw in writes.items():
            self.journal.write(node, raw)
        for b in frees:
            self._free_block(b)

    def _plan_trim(self, node: int, depth: int, first: int, keep: int, frees: list[int],
                   writes: dict[int, bytes]) -> bool:
        """Plan the trim below indirect block ``node`` (``depth`` 1: its pointers are data
        blocks), whose first pointer maps file block ``first``: blocks to free go to
        ``frees``, new contents of blocks that keep some pointers to ``writes``. True if
        it is left empty (the caller frees it; an empty block is not written)."""
        span = NPTR ** (depth - 1)  # file blocks under one pointer
        if first + NPTR * span <= keep:
            return False
        ptrs = list(struct.unpack(f"<{NPTR}I", self.journal.read(node)))
        changed = False
        empty = True
        for i, p in enumerate(ptrs):
            if not p:
                continue
            lo = first + i * span
            if lo + span <= keep:
                empty = False
            elif depth == 1 or self._plan_trim(p, depth - 1, lo, keep, frees, writes):
                frees.append(p)
                ptrs[i] = 0
                changed = True
            else:
                empty = False
        if not empty and changed:
            writes[node] = struct.pack(f"<{NPTR}I", *ptrs)
        return empty

    def _free_inode(self, ino: Inode) -> None:
        self._truncate(ino)
        ino.mode = ino.uid = 0  # a free inode is all zeros on disk
        self._store_inode(ino)
        del self._inodes[ino.inum]
        self._on_free(ino)

    def _walk(self, ino: Inode) -> list[tuple[int, int, bool]]:
        """Every block of ``ino``: (file block or -1, device block, is an indirect block)."""
        out = [(i, b, False) for i, b in enumerate(ino.direct) if b]

        def down(node: int, depth: int, first: int) -> None:
            out.append((-1, node, True))
            span = NPTR ** (depth - 1)
            raw = self.journal.read(node)
            for i, p in enumerate(struct.unpack(f"<{NPTR}I", raw)):
                if p:
                    if depth == 1:
                        out.append((first + i, p, False))
                    else:
                        down(p, depth - 1, first + i * span)

        for level in range(NLEVELS):
            if ino.ind[level]:
                down(ino.ind[level], level + 1, _LEVEL_START[level])
        return out

    def _data_blocks(self, ino: Inode) -> list[int]:
        return [b for _, b, indirect in self._walk(ino) if not indirect]

    def _store_inode(self, ino: Inode) -> None:
        off = ino.inum * params.FS_INODE_SIZE
        self._itable[off:off + params.FS_INODE_SIZE] = ino.pack()
        blk = off // BS
        home = self.geo.inode_start + blk
        if home not in self.journal.tx:
            self.journal.attach(home, self._itable_view[blk * BS:(blk + 1) * BS])

    # ---- helpers -----------------------------------------------------------------------

    def _check_mounted(self) -> None:
        if not self._mounted:
            raise BadHandle(f"file system on {self.device.path} is not mounted")

    def _check_open(self, of: OpenFile) -> None:
        self._check_mounted()
        if of.closed or of.fs is not self:
            raise BadHandle(f"{of.name!r} (fid {of.fid}) is closed or not of this file system")

    def _lookup(self, name: str) -> Inode:
        entry = self._dir.get(name)
        if entry is None:
            raise NoSuchFile(f"no file named {name!r}")
        return self._inodes[entry[0]]

    def _stat(self, name: str, ino: Inode) -> FileStat:
        return FileStat(name, ino.inum, ino.uid, ino.perm, ino.size, len(self._data_blocks(ino)))

    # ---- checking ------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise ``InvariantViolation`` naming the first broken invariant (then check the cache)."""
        with self._lock:
            self._check_mounted()
            geo = self.geo
            owner: dict[int, int] = {}  # block -> inode that reaches it

            def own(b: int, inum: int, what: str) -> None:
                _check(geo.data_start <= b < geo.nblocks,
                       f"inode {inum}: {what} pointer {b} is outside the data area")
                _check(b not in owner, f"block {b} is owned by inodes {owner.get(b)} and {inum}")
                owner[b] = inum

            for inum, ino in self._inodes.items():
                _check(ino.inum == inum, f"inode {inum} is filed as {ino.inum}")
                _check(ino.mode & S_IFMT in (S_IFREG, S_IFDIR), f"inode {inum} has a bad mode")
                _check((inum == ROOT_INUM) == ino.is_dir, f"inode {inum}: only the root is a dir")
                _check(0 <= ino.size <= MAX_FILE_SIZE, f"inode {inum}: size {ino.size}")
                nb = _ceil_div(ino.size, BS)
                for bidx, b, indirect in self._walk(ino):
                    _check(indirect or bidx < nb,
                           f"inode {inum}: block {bidx} mapped beyond size {ino.size}")
                    own(b, inum, "indirect" if indirect else f"block {bidx}")
            expected = bytearray(len(self._bitmap))
            for b in [*range(geo.data_start), *owner]:
                expected[b >> 3] |= 1 << (b & 7)
            if expected != self._bitmap:
                bad = next(b for b in range(geo.nblocks)
                           if (expected[b >> 3] ^ self._bitmap[b >> 3]) >> (b & 7) & 1)
                raise InvariantViolation(
                    f"fs: bitmap says block {bad} is "
                    f"{'used' if self._bitmap[bad >> 3] >> (bad & 7) & 1 else 'free'}, "
                    f"reachability says otherwise")
            used = int.from_bytes(self._bitmap, "little").bit_count()
            _check(self._nfree == geo.nblocks - used, f"free count {self._nfree} != "
                   f"{geo.nblocks - used}")
            busy = int.from_bytes(self._busy, "little")
            _check(busy & int.from_bytes(self._bitmap, "little")
                   == int.from_bytes(self._bitmap, "little"), "a used block is not busy")
            _check(busy.bit_count() - used == self._npending, "pending-free count is wrong")
            _check(len(self.journal.tx) <= self.journal.capacity, "the transaction is too big")
            for b in self.journal.tx:
                _check(b < geo.data_start or b in owner,
                       f"logged block {b} is neither metadata nor owned")
            # the directory and orphans
            root = self._inodes.get(ROOT_INUM)
            _check(root is not None, "no root directory")
            assert root is not None
            nslots = root.size // params.FS_DIRENT_SIZE
            _check(root.size % params.FS_DIRENT_SIZE == 0, "directory size is not whole entries")
            slots = [s for _, s in self._dir.values()] + self._free_slots
            _check(sorted(slots) == list(range(nslots)), "directory slots are not a partition")
            named = [inum for inum, _ in self._dir.values()]
            _check(len(set(named)) == len(named), "an inode has two names")
            for name, (inum, _) in self._dir.items():
                _check(inum in self._inodes and not self._inodes[inum].orphan,
                       f"{name!r} names a free or orphaned inode {inum}")
            named_set = set(named)
            opens: dict[int, int] = {}
            for of in self._open.values():
                opens[of.inode.inum] = opens.get(of.inode.inum, 0) + 1
                _check(self._inodes.get(of.inode.inum) is of.inode,
                       f"open file {of.name!r} refers to a freed inode")
            for inum, ino in self._inodes.items():
                _check(ino.open_count == opens.get(inum, 0), f"inode {inum}: open count wrong")
                if inum != ROOT_INUM and inum not in named_set:
                    _check(ino.orphan and ino.open_count > 0,
                           f"inode {inum} is neither named nor an open orphan")
            # memory == what the journal (the transaction, else the cache / device) holds
            for i in range(geo.bitmap_blocks):
                _check(bytes(self.journal.read(geo.bitmap_start + i))
                       == self._bitmap[i * BS:(i + 1) * BS], f"bitmap block {i} is stale")
            for i in range(geo.inode_blocks):
                raw = bytes(self.journal.read(geo.inode_start + i))
                for k in range(INODES_PER_BLOCK):
                    inum = i * INODES_PER_BLOCK + k
                    mem = self._inodes.get(inum)
                    disk = raw[k * params.FS_INODE_SIZE:(k + 1) * params.FS_INODE_SIZE]
                    want = mem.pack() if mem is not None else bytes(params.FS_INODE_SIZE)
                    _check(disk == want, f"inode {inum} on disk differs from memory")
            data, _ = self._read_at(root, 0, root.size, None)
            for name, (inum, slot) in self._dir.items():
                _check(_DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)
                       == (inum, _encode_name(name).ljust(params.FS_NAME_MAX, b"\0")),
                       f"directory entry {name!r} on disk differs")
            for slot in self._free_slots:
                _check(_DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)[0] == 0,
                       f"free directory slot {slot} is not empty on disk")
            self.cache.check_invariants()


def permits(user: User, ino: Inode, *, read: bool, write: bool) -> bool:
    """True if ``user`` may open ``ino`` for ``read`` and/or ``write`` (the mode-bit rule)."""
    if user.is_root:
        return True
    bits = (ino.mode >> 6) & 7 if user.uid == ino.uid else ino.mode & 7
    return (not read or bool(bits & 4)) and (not write or bool(bits & 2))


def _encode_name(name: str) -> bytes:
    raw = name.encode("utf-8") if isinstance(name, str) else b""
    if not raw or len(raw) > params.FS_NAME_MAX or b"\0" in raw or b"/" in raw:
        raise InvalidArgument(
            f"bad file name {name!r}: want 1..{params.FS_NAME_MAX} bytes of UTF-8 without "
            f"NUL or '/'")
    return raw


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantViolation(f"fs: {what}")
