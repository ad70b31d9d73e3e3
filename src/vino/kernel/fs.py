"""A small journaling file system on a ``BlockDevice``: data through the ``Cache``,
metadata through the write-ahead log (``journal.py``).

Usage::

    FileSystem.format(dev)                        # writes an empty file system
    fs = FileSystem.mount(dev, cache, clock)      # replays the log after a crash
    fs.create(alice, "notes", 0o600)
    f = fs.open(alice, "notes", "rw")             # a User or a Process
    fs.write(f, b"..."); fs.seek(f, 0); fs.read(f, 100)
    fs.pwrite(f, 0, b"..."); fs.pread(f, 0, 100)   # seek + write / read, one operation
    fs.pwritev(f, [(0, b"a"), (8192, b"b")])      # several pwrites, one operation
    fs.truncate(f, 10); fs.fsync(f); fs.close(f)  # fsync: durable when it returns
    fs.rename(alice, "notes", "notes.old")        # atomic, replaces a file of that name
    fs.sync_dir()                                 # names durable (SQLite's dirSync)
    fs.unmount()                                  # commits, writes back; dev stays open

The pieces, one module each: the on-disk format (``inode.py``), the block map and
the allocator (``blockmap.py``), the directory (``directory.py``), a file's bytes
and the user policies (``fileio.py``), the invariants (``fsinvariants.py``), the
open files and the operations through them (``openfile.py``); this module is the
file system's face: format, mount, unmount, durability. ``FileSystem`` is all of
them (each a mix-in of the next).

Inode 0 is never used (0 means "no inode"); inode 1 is the one flat root
directory, whose data is an array of 64-byte entries (u32 inode, 60 bytes of
NUL-padded UTF-8 name; inode 0 = free slot). A pointer 0 is a hole: it reads as
zeros and costs no I/O.

Permissions: the owner's rwx bits apply to the owner, the "other" bits to everyone
else (group bits are stored but not consulted); root (uid 0) bypasses them. Only the
owner or root may unlink. Open modes: ``"r"``, ``"w"`` (write-only, truncates to
zero, like ``open(..., "w")``), ``"rw"`` (read and write, no truncation).

The policies and hooks (``fspolicy.py``): the policy slots ``readahead_policy``,
``filter_policy`` and ``on_access``, where the kernel plugs its graft points in, and the
hooks ``FsHooks`` given to ``mount``.

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
  and frees the inodes of files unlinked while open;
- a filter's seal (the inode's ``INODE_SEALED``) commits before the first block the
  filter transformed is handed on, and an unseal in a commit of its own (fileio.py).

Failure: space is checked before anything changes, so ``NoSpace`` leaves the file
system exactly as it was. A device error (``DeviceError``) fails the operation that
met it and nothing else: in a read or a write-back of data, that operation; in a
commit (``sync``, or an operation that had to make room in the log), the commit --
the transaction stays in memory and is committed again by the next commit, and the
image keeps its last committed transaction meanwhile. ``unmount`` that fails drops
everything in memory (the image keeps its last commit) and raises.

Invariants: ``check_invariants`` (``fsinvariants.py`` lists them); each piece's
own are in its module.
"""

from __future__ import annotations

from vino.graft.hold import SharedLock
from vino.kernel import params, plainread
from vino.kernel.cache import Cache, CacheStats, _Frame
from vino.kernel.clock import Clock, RealClock
from vino.kernel.device import BlockDevice
from vino.kernel.diskquota import DiskQuota
from vino.kernel.errors import CorruptFileSystem, InvalidArgument
from vino.kernel.fileio import FILTER_READ, FILTER_WRITE, OP_READ, OP_WRITE
from vino.kernel.fsck import refuse_damaged
from vino.kernel.fspolicy import FsHooks, FsStats, new_epoch, sequential_readahead
from vino.kernel.inode import (
    BS,
    INODE_SEALED,
    INODES_PER_BLOCK,
    MAX_FILE_SIZE,
    MAX_FS_BLOCKS,
    NDIRECT,
    NINDIRECT,
    NLEVELS,
    NPTR,
    OP_LOG_BLOCKS,
    ROOT_INUM,
    S_IFDIR,
    S_IFMT,
    S_IFREG,
    ZERO_BLOCK,
    FileStat,
    Geometry,
    Inode,
    permits,
)
from vino.kernel.journal import Journal
from vino.kernel.openfile import OpenFile, OpenFiles, OpenMode

__all__ = [
    "FILTER_READ", "FILTER_WRITE", "INODES_PER_BLOCK", "MAX_FILE_SIZE", "NDIRECT", "NINDIRECT",
    "NLEVELS", "NPTR", "OP_READ", "OP_WRITE", "ROOT_INUM", "S_IFDIR", "S_IFMT", "S_IFREG",
    "FileStat", "FileSystem", "FsHooks", "FsStats", "Inode", "OpenFile", "OpenMode", "permits",
    "sequential_readahead",
]

class FileSystem(OpenFiles):
    """A mounted file system. Build it with ``FileSystem.mount``."""

    # The attributes every page read looks at, kept at fixed offsets (the native plain
    # read reads them there, plainread.py); the others live in the instance dict.
    __slots__ = plainread.FS_SLOTS

    def __init__(self, device: BlockDevice, cache: Cache, clock: Clock, geo: Geometry,
                 hooks: FsHooks | None = None, seals: dict[int, Inode] | None = None) -> None:
        self.device = device
        self.cache = cache
        self.clock = clock
        self.geo = geo
        self.hooks = hooks if hooks is not None else FsHooks()
        self.stats = FsStats()
        self.readahead_max = params.READAHEAD_MAX_OUT  # max_out given to readahead_policy
        self._epoch = new_epoch()
        # The policy slots (module doc): the built-in methods until something is plugged in.
        self.readahead_policy = self._readahead
        self.filter_policy = self._filter
        self.on_access = self._on_access
        self.plain_read = self._plain_read
        # The filter's guard's seals (fileio.py): the sealed inodes are put in at mount.
        self.seals = seals if seals is not None else {}
        # The plain read's hit in native code (plainread.py), tried first by pread; None:
        # the Python plain path only.
        self._native_read = plainread.reader(FileSystem, OpenFile, Inode, FsStats, Cache,
                                             CacheStats, _Frame, BS, NDIRECT)
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
        # Per-user blocks and inodes (diskquota.py): counted from the image at mount.
        self.quota = DiskQuota.for_geometry(geo)
        self._cut_pending = False  # Invariant: a full-disk truncate's commit failed
        # Invariant: _dir[name] = (inum, slot); slots distinct, below root.size / DIRENT_SIZE.
        self._dir: dict[str, tuple[int, int]] = {}
        # Invariant: grows whenever the set of names changes (create, rename, unlink) and
        # at unmount, so "no file of that name" answered at one value still holds while
        # the value is unchanged (``probe``'s callers may keep such answers).
        self.names_version = 0
        self._free_slots: list[int] = []  # slots inside the directory with inode 0
        self._open: dict[int, OpenFile] = {}  # fid -> open file
        self._next_fid = 1

    # ---- the built-in policies (the slots' defaults: graft points) ---------------------

    def _readahead(self, of: OpenFile, block: int) -> list[int]:
        """Blocks of ``of``'s file to prefetch after ``block`` was read. Default: sequential."""
        return sequential_readahead(
            -(-of.inode.size // BS), block, of._history, self.readahead_max)

    def _filter(self, inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        """Transform ``data`` (one block at ``file_offset``) in place, keeping its length.

        ``direction`` is ``FILTER_WRITE`` or ``FILTER_READ``. Default: identity.
        """

    def _on_access(self, inode: Inode, block: int, op: int) -> None:
        """Event: a user read (``OP_READ``) or wrote (``OP_WRITE``) file block ``block``."""

    def _on_free(self, inode: Inode) -> None:
        """Event: ``inode`` was freed; its number may be given to the next new file."""
        if self.hooks.on_free is not None:
            self.hooks.on_free(inode)

    # ---- format / mount / unmount -----------------------------------------------------

    @staticmethod
    def format(device: BlockDevice, ninodes: int = params.FS_DEFAULT_INODES) -> None:
        """Write an empty file system (root directory only) straight to ``device``.

        ``ninodes`` is rounded up to a whole inode block. Must not be used on a
        mounted device (its cache would be stale). The log area is left as it is
        except its header, which is cleared (an old log must not replay into a new
        file system); an image made by ``BlockDevice.create`` stays sparse.
        """
        if not 2 <= ninodes <= params.FS_MAX_INODES:
            raise InvalidArgument(f"ninodes must be 2 (inode 0 and the root) .. "
                                  f"{params.FS_MAX_INODES}, got {ninodes}")
        if device.nblocks > MAX_FS_BLOCKS:
            raise InvalidArgument(
                f"{device.nblocks} blocks is too large: a file system has at most "
                f"{MAX_FS_BLOCKS} (~{MAX_FS_BLOCKS * BS >> 30} GiB; its log holds one operation)")
        geo = Geometry.plan(device.nblocks, ninodes)
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
        device.write_block(geo.log_start, ZERO_BLOCK)
        device.write_blocks(geo.bitmap_start, bitmap)
        device.write_blocks(geo.inode_start, table)
        device.flush()  # everything else is in place before the superblock names it
        device.write_block(0, geo.pack(clean=True))
        device.flush()

    @classmethod
    def mount(cls, device: BlockDevice, cache: Cache, clock: Clock | None = None, *,
              hooks: FsHooks | None = None, seals: dict[int, Inode] | None = None,
              ) -> FileSystem:
        """Read the superblock, replay the log, read the bitmap, inode table and
        directory; reclaim orphans (``hooks.on_free`` hears of each). Every inode stored
        sealed (``INODE_SEALED``) is put in ``seals`` (the filter's guard's: a sealed
        file stays sealed across a reboot, fileio.py).

        Raises ``CorruptFileSystem`` (having written nothing but a replay of the log)
        if the image is not a file system of this version and geometry, or is damaged:
        mount makes ``fsck``'s checks first (``_check_image``), so no operation on a
        mounted file system follows a pointer a hostile image planted.
        """
        if clock is None:
            clock = device.clock if device.clock is not None else RealClock()
        raw = cache.read_block(device, 0)
        try:
            geo = Geometry.from_super(raw, device.nblocks, str(device.path))
        except CorruptFileSystem:
            cache.discard(device, 0)
            raise
        fs = cls(device, cache, clock, geo, hooks, seals)
        with fs._lock:
            fs.journal.seq = fs.journal.last_seq()
            fs.journal.replay()
            try:
                fs._check_image()
                fs._load()
            except BaseException:
                for b in cache.resident_blocks(device):
                    cache.discard(device, b)
                raise
            fs.journal.write(0, geo.pack(clean=False))
        return fs

    def _check_image(self) -> None:
        """At mount, after the replay: refuse (``CorruptFileSystem``) an image that
        ``fsck`` would find damaged -- the superblock the replay installed, every inode,
        pointer, bitmap bit and directory entry (``fsck.refuse_damaged``)."""
        dev = self.device
        if Geometry.from_super(self.cache.read_block(dev, 0), dev.nblocks,
                               str(dev.path)) != self.geo:
            raise CorruptFileSystem(f"{dev.path}: the log replayed another geometry")
        refuse_damaged(self.geo, self.journal.read, str(dev.path))

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
                if ino.flags:  # INODE_SEALED (_check_image refused any other bits)
                    self.seals[id(ino)] = ino
        self.quota = self._count_usage()  # before orphans are freed (they give theirs back)
        self._load_directory()

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
                self.names_version += 1

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

    def _seal_stored(self, ino: Inode) -> None:
        """Commit ``ino``'s seal, which its filter's guard has just set (module doc): the
        flag joins the running transaction, which commits now. On a device error the
        flag stays set in memory and in the transaction (the next commit writes it) and
        the error is raised: the block the filter transformed is not handed on."""
        ino.flags |= INODE_SEALED
        self._store_inode(ino)
        self._commit()

    def set_unsealed(self, ino: Inode) -> None:
        """Clear ``ino``'s stored seal in a commit of its own (``Kernel.unseal``, which
        drops the guard's seal once this returns). On a device error nothing changed:
        the flag is set again (in memory and in the running transaction) and the error
        is raised."""
        with self._lock:
            self._check_mounted()
            if not ino.flags & INODE_SEALED:
                return
            ino.flags &= ~INODE_SEALED
            self._store_inode(ino)
            try:
                self._commit()
            except BaseException:
                ino.flags |= INODE_SEALED
                self._store_inode(ino)
                raise

    def _commit(self) -> None:
        """Commit the running transaction (on a device error it stays to commit later)."""
        self.journal.commit()
        self._cut_pending = False  # (_begin commits first while it is True)
        if self._npending:
            self._busy[:] = self._bitmap  # blocks freed by the committed transaction
            self._npending = 0

    def _begin(self, need: int = 0) -> None:
        """Start an operation that may log up to ``need`` + ``OP_LOG_BLOCKS`` blocks more
        than the bitmap: commit first if the log might not hold it or a full-disk truncate's
        commit failed (its cut block holds committed bytes until one succeeds)."""
        if self._cut_pending or self.journal.room() < need + OP_LOG_BLOCKS + self.geo.bitmap_blocks:
            self._commit()

    @property
    def free_blocks(self) -> int:
        """Free blocks (including those freed by the running transaction, which are
        allocated again only after it commits)."""
        return self._nfree
