"""An SQLite VFS (apsw) whose files are vino kernel files.

Every byte SQLite reads or writes goes through one vino process's file system
calls (``fs.open / pread / pwrite / unlink``), hence through the kernel's
buffer cache, block device model, read-ahead (``fs.readahead``), filter
(``fs.filter``) and access event (``fs.access``) -- and through whatever grafts are
installed there.

Usage::

    vfs = VinoVFS(kernel, user)                  # spawns a process of ``user``
    db = apsw.Connection("app.db", vfs=vfs.vfs_name)
    ...
    db.close(); vfs.close()                      # close connections first

This module is the VFS itself (opening, names, the buffer pool and gathered writes);
the files SQLite gets back and their io methods are in ``vfsfile.py``.

Hooks (optional): ``on_open(kfile)`` runs when a kernel file is first opened,
before SQLite reads or writes it -- the place to install a file's grafts (a filter
on ``kfile.of.inode``, a read-ahead on ``kfile.of``) or attach a ``PageObserver``;
``on_close(kfile)`` runs at its last close, before the kernel file is closed;
``on_delete(name)`` runs after SQLite deleted the kernel file ``name``.

Contract with SQLite (io methods version 1, so no WAL: there are no xShm methods;
the rollback journal in any of its DELETE / TRUNCATE / PERSIST modes works):
- Names: ``xFullPathname`` makes a name absolute; the kernel file is
  ``names.kernel_name(path)`` (one flat directory, names <= 60 bytes). A file opened
  with no name (a temporary file) gets ``TEMP_PREFIX`` + a counter.
- One kernel ``OpenFile`` per kernel file, shared by every connection of this VFS
  that opens it (opened "rw" when the user may write it, else "r"); SQLite's
  read-only opens are enforced here. The file is closed at its last xClose, and
  unlinked then if it was opened with DELETEONCLOSE.
- ``xRead`` returns fewer bytes than asked at the end of file; apsw then zero-fills
  the rest and reports SQLITE_IOERR_SHORT_READ to SQLite, as the VFS contract asks.
- ``xTruncate`` is the file system's ``truncate`` (atomic across a crash; growing
  leaves a hole).
- ``xSync`` is the file system's ``fsync`` of the file: its data, then its metadata
  (a journal commit), durable when it returns. Gathered writes of every file of the
  VFS reach the kernel first (``_flush_all``).
- ``xDeviceCharacteristics``: SQLITE_IOCAP_SAFE_APPEND. The file system writes a
  file's data before it commits the size that covers it (ordered data), so after a
  crash an appended region is either not in the file or holds what was written,
  never garbage; SQLite then writes its journal header once and syncs the journal
  once per commit instead of twice. The crash loops (``crashes``) check it.
- ``xFileSize`` is the kernel inode's size. ``xDelete`` unlinks (missing file:
  SQLITE_IOERR_DELETE_NOENT) and, when SQLite asks for it (``syncdir``: the journal
  of a commit in ``synchronous=EXTRA``), makes the unlink durable before it returns
  -- else a power cut after COMMIT returned could leave the journal hot and roll the
  commit back. ``xAccess(EXISTS)`` is true for a non-empty file, as in the Unix VFS
  (an empty journal is not a journal); ``READWRITE`` checks the user's write
  permission. A "no such file" is kept and given again without asking the kernel
  while the file system's ``names_version`` is unchanged (no name made or removed
  since: SQLite asks twice per transaction whether a journal and a WAL file exist).
  A file that vanishes between ``xAccess`` and ``xOpen`` (another
  process deleted a hot journal) is SQLITE_CANTOPEN, which SQLite's pager takes as
  "check again under EXCLUSIVE".
- Locking: one ``locks.FileLock`` per kernel file, shared by every VFS on the same
  file system (``locks.table_for``): the connections of all vino processes of a
  kernel exclude each other. Refusals are SQLITE_BUSY.
- Errors: every kernel or device error (``KernelError`` or ``OSError``) becomes the
  method's SQLITE_IOERR_* extended code (READ, WRITE, FSYNC, TRUNCATE, FSTAT,
  DELETE, DIR_FSYNC, ACCESS, LOCK, CLOSE), ``NoSpace`` becomes SQLITE_FULL, never
  SQLITE_ERROR: SQLite's pager enters its error state (and recovers from the
  journal) only on IOERR and FULL.
- ``xRandomness`` is a PRNG seeded with ``RANDOM_SEED``, so a run replays exactly.
  ``xSleep`` really waits (``sleep``, injectable), so a busy handler
  (``busy_timeout``) gives another thread time to finish. ``xCurrentTime`` is real
  time.

The buffer pool (``buffer_pool=True``): whole-page reads of main database files are
served from a ``pool.BufferPool`` in the process's address space when resident; see
that module for why and for its correctness rule. Across processes: each write
bumps the file lock's ``version``; taking SHARED with a version other than the one
the pool's copies were made at drops the file's pooled pages first (another process
wrote the file), so a pooled page is never served stale.

Threads: one lock (``VinoVFS._mutex``) serialises every call into the VFS, so
several connections may use it from several threads. Lock order: ``_mutex`` ->
the kernel's locks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import apsw

from vino.errors import VinoError
from vino.kernel import plainread
from vino.kernel.errors import AccessDenied, FileExists, KernelError, NoSuchFile
from vino.kernel.fs import MAX_FILE_SIZE, FileSystem
from vino.kernel.kernel import Kernel
from vino.kernel.proc import Process, User
from vino.sqlite import locks
from vino.sqlite.names import full_pathname, kernel_name
from vino.sqlite.params import (
    ABSENT_NAMES_KEPT,
    MAX_PATHNAME_BYTES,
    PAGE_BYTES,
    RANDOM_SEED,
    TEMP_PREFIX,
    WRITE_BUFFER_BYTES,
    WRITE_RESERVE_BLOCKS,
)
from vino.sqlite.pool import BufferPool
from vino.sqlite.vfsfile import (
    KernelFile,
    PageObserver,
    VanishedJournal,
    VfsStats,
    VinoFile,
    ioerr,
    sqlite_errors,
)

__all__ = ["FilesStillOpen", "KernelFile", "PageObserver", "VanishedJournal", "VfsStats",
           "VinoFile", "VinoVFS"]

_EXCLUDED = frozenset({"xDlOpen", "xDlSym", "xDlClose", "xDlError", "xGetSystemCall",
                       "xSetSystemCall", "xNextSystemCall"})
_ROLES = ((apsw.SQLITE_OPEN_MAIN_DB, "main"), (apsw.SQLITE_OPEN_MAIN_JOURNAL, "journal"),
          (apsw.SQLITE_OPEN_WAL, "wal"), (apsw.SQLITE_OPEN_TEMP_DB, "temp"),
          (apsw.SQLITE_OPEN_TEMP_JOURNAL, "temp-journal"),
          (apsw.SQLITE_OPEN_SUBJOURNAL, "subjournal"),
          (apsw.SQLITE_OPEN_SUPER_JOURNAL, "super-journal"),
          (apsw.SQLITE_OPEN_TRANSIENT_DB, "transient"))
_JULIAN_UNIX_EPOCH = 2440587.5  # Julian day number of 1970-01-01 00:00 UTC
_JULIAN_UNIX_EPOCH_MS = 210866760000000  # the same, in ms (sqlite3 os_unix.c)

_vfs_ids = iter(range(1, 1 << 62))


class FilesStillOpen(VinoError, RuntimeError):
    """``VinoVFS.close`` while SQLite still has files of the VFS open (a connection
    was not closed first). Nothing changed: the VFS stays registered, its files, pool
    and connections as they were; close the connections, then the VFS again."""


class VinoVFS(apsw.VFS):
    """The VFS: registered with SQLite under ``vfs_name`` until ``close``."""

    # The native xRead reads ``_mutex`` and ``stats`` at their offsets
    # (plainread.VFS_NAMES); the rest lives in the instance dict.
    __slots__ = ("__dict__", "__weakref__", *plainread.VFS_NAMES)

    def __init__(self, kernel: Kernel, user: User, *, name: str | None = None,
                 buffer_pool: bool = True,
                 on_open: Callable[[KernelFile], None] | None = None,
                 on_close: Callable[[KernelFile], None] | None = None,
                 on_delete: Callable[[str], None] | None = None,
                 mode: int = 0o600, sleep: Callable[[float], None] = time.sleep) -> None:
        self.kernel = kernel
        self.sleep = sleep  # xSleep's wait, in seconds (injectable: tests may fake time)
        self.user = user
        self.process: Process = kernel.spawn(user, "sqlite")
        self.vfs_name = name or f"vino-{next(_vfs_ids)}"
        self.on_open = on_open
        self.on_close = on_close
        self.on_delete = on_delete
        self.mode = mode
        self.stats = VfsStats()
        self.pool = BufferPool(kernel.address_space(self.process)) if buffer_pool else None
        self._mutex = plainread.rlock()  # threading.RLock's twin the native xRead can try
        self._rng = random.Random(RANDOM_SEED)
        self._temps = 0
        # Invariant: _files[n].name == n; each entry has at least one user.
        self._files: dict[str, KernelFile] = {}
        # Invariant: exactly the open kernel files whose ``pending`` is not empty;
        # _pending_runs is the number of their runs (a pending counts as one).
        self._pending: set[KernelFile] = set()
        self._pending_runs = 0
        # Invariant: _absent[n] == (fs, v): fs.probe(n) found no file n when
        # fs.names_version was v; while fs is the kernel's file system and v its
        # names_version, there is still none (xAccess answers without the kernel).
        self._absent: dict[str, tuple[FileSystem, int]] = {}
        self._closed = False
        super().__init__(self.vfs_name, base=None, makedefault=False,
                         maxpathname=MAX_PATHNAME_BYTES, iVersion=2, exclude=set(_EXCLUDED))

    # ---- files ---------------------------------------------------------------------------

    def xOpen(self, name: str | apsw.URIFilename | None,  # type: ignore[override]
              flags: list[int]) -> VinoFile | VanishedJournal:
        inflags = flags[0]
        if isinstance(name, apsw.URIFilename):
            path = name.filename()
        elif name is None:
            path = ""
        else:
            path = name
        with self._mutex:
            self.stats.opens += 1
            if not path:
                self._temps += 1
                path = f"/{TEMP_PREFIX}{self._temps:06d}"
            kname = kernel_name(path)
            readonly = not inflags & apsw.SQLITE_OPEN_READWRITE
            try:
                kf = self._files.get(kname) or self._open_kernel_file(kname, path, inflags)
            except NoSuchFile as exc:
                if readonly and inflags & apsw.SQLITE_OPEN_MAIN_JOURNAL:
                    flags[1] = apsw.SQLITE_OPEN_READONLY
                    return VanishedJournal(path)
                raise apsw.CantOpenError(f"cannot open {path!r} ({kname!r}): {exc}") from exc
            except (KernelError, OSError) as exc:
                raise apsw.CantOpenError(f"cannot open {path!r} ({kname!r}): {exc}") from exc
            if not readonly and not kf.of.writable:
                raise apsw.CantOpenError(f"{path!r}: user {self.user.name!r} may not write it")
            f = VinoFile(self, kf, readonly)
            kf.lock.register(f.holder)
            kf.users.append(f)
            flags[1] = inflags & (apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_READONLY)
            return f

    def _open_kernel_file(self, kname: str, path: str, inflags: int) -> KernelFile:
        fs = self.kernel.fs
        exists = fs.probe(kname) is not None
        if inflags & apsw.SQLITE_OPEN_EXCLUSIVE and exists:
            raise FileExists(f"{kname!r} exists and the open is exclusive")
        if not exists:
            if not inflags & apsw.SQLITE_OPEN_CREATE:
                raise NoSuchFile(f"no file {kname!r}")
            fs.create(self.user, kname, self.mode)
        try:
            of = fs.open(self.process, kname, "rw")
        except AccessDenied:
            of = fs.open(self.process, kname, "r")
        role = next((r for bit, r in _ROLES if inflags & bit), "other")
        lock = locks.table_for(fs).get(of.inode.inum, kname)
        kf = KernelFile(kname, path, of, role, lock,
                        delete_on_close=bool(inflags & apsw.SQLITE_OPEN_DELETEONCLOSE))
        kf.seen_version = lock.version  # nothing kept yet
        if role == "main" and self.pool is not None:
            kf.pool_base = self.pool.region()  # a fresh region: nothing pooled yet
        if self.on_open is not None:
            try:
                self.on_open(kf)
            except Exception as exc:  # e.g. a graft was rejected: the open fails cleanly
                fs.close(of)
                raise apsw.CantOpenError(f"{path!r}: on_open failed: {exc}") from exc
        self._files[kname] = kf
        return kf

    # ---- reading and writing (caller holds _mutex) ---------------------------------------

    def _read(self, kf: KernelFile, amount: int, offset: int) -> bytes:
        """``amount`` bytes at ``offset`` from the kernel file (fewer at its end)."""
        if kf.pending:
            self._flush(kf)
        fs = self.kernel.fs
        data = fs.pread(kf.of, offset, amount)
        if kf.observer is not None and len(data) == PAGE_BYTES and offset % PAGE_BYTES == 0:
            kf.observer.on_page(offset // PAGE_BYTES, data, False)
        return data

    def _read_pooled(self, kf: KernelFile, pool: BufferPool, base: int, amount: int,
                     offset: int) -> bytes:
        """A pool miss: read the whole page(s) from the kernel and keep whole pages.

        A read inside one page (SQLite's 16-byte look at the header's change counter
        at every transaction) fetches and pools the whole page, so the next look is
        a pool hit instead of a kernel read.
        """
        index, off = divmod(offset, PAGE_BYTES)
        if off + amount > PAGE_BYTES:
            return self._read(kf, amount, offset)
        page = self._read(kf, PAGE_BYTES, index * PAGE_BYTES)
        if len(page) == PAGE_BYTES:
            pool.fill(base, index, page)
        return page[off:off + amount]

    def _buffer(self, kf: KernelFile, raw: bytes, offset: int) -> None:
        """Write ``raw`` at ``offset``: appended to the file's pending run when it
        continues it, else the start of a new pending run (the earlier one kept in
        ``runs``).

        SQLite writes a journal record as three writes (page number, page, checksum)
        and its commit's pages in ascending order; one kernel write per run instead of
        per piece halves the cost of a commit, and one kernel call for every run of a
        file (``fs.pwritev``) saves a call per page of a commit scattered over the
        database. Pending bytes reach the kernel, in the order written, before
        anything could look at the file: any read of it, its size, a sync, a
        truncate, an unlock, an access check, a delete or a close (``_flush_all``).
        At most ``WRITE_BUFFER_BYTES`` of a file are held.

        Never lost, as an OS page cache never loses a written page: a write SQLite
        was told succeeded is the file's content from then on. If giving it to the
        kernel fails (a device error), the bytes not written stay pending, the
        operation that needed them reports the error to SQLite, and the next one tries
        again; so SQLite's pager, which then rolls back or stops, never reads a journal
        without records it wrote. Space: a run is begun only while the file system
        has room for all that every file may gather (``_room``); otherwise the write
        goes to the kernel at once, so a full disk is SQLITE_FULL at the write that
        needs the space, as without gathering.
        """
        n = len(raw)
        if not n:
            return
        pend = kf.pending
        end = offset + n
        if len(pend) + kf.runs_bytes + n <= WRITE_BUFFER_BYTES and end <= MAX_FILE_SIZE:
            if pend and offset == kf.pending_at + len(pend):
                pend += raw  # the room was reserved when the run began
                return
            if self._room():
                if pend:
                    kf.runs.append((kf.pending_at, bytes(pend)))
                    kf.runs_bytes += len(pend)
                    kf.runs_end = max(kf.runs_end, kf.pending_at + len(pend))
                    pend.clear()
                else:
                    self._pending.add(kf)
                kf.pending_at = offset
                pend += raw
                self._pending_runs += 1
                return
        if pend:
            self._flush(kf)
        if n < WRITE_BUFFER_BYTES and end <= MAX_FILE_SIZE and self._room():
            kf.pending_at = offset
            pend += raw
            self._pending_runs += 1
            self._pending.add(kf)
            return
        try:
            self.kernel.fs.pwrite(kf.of, offset, raw)
        except BaseException:
            self._forget_pooled(kf)
            raise

    def _flush(self, kf: KernelFile) -> None:
        """Give ``kf``'s pending bytes to the kernel, its runs first, in one call."""
        writes = kf.runs
        writes.append((kf.pending_at, kf.pending))
        count = len(writes)
        try:
            self.kernel.fs.pwritev(kf.of, writes)
        finally:  # an error: what was not written stays pending (see _buffer)
            self._pending_runs -= count - len(writes)
            if writes:
                writes.pop()  # the pending run, still in kf.pending
                kf.runs_bytes = sum(len(d) for _, d in writes)
            else:
                kf.pending.clear()
                kf.runs_bytes = kf.runs_end = 0
                self._pending.discard(kf)

    def _forget_pooled(self, kf: KernelFile) -> None:
        """A write to ``kf`` failed part-way: what the file holds is unknown, so no pooled
        page of it may be served again (the pool already holds what SQLite wrote)."""
        kf.head = None
        if self.pool is not None and kf.pool_base is not None:
            self.pool.truncate(kf.pool_base, 0)

    def _room(self) -> bool:
        """True if the file system could hold all that the files with pending bytes and
        one more may gather (``WRITE_BUFFER_BYTES`` each), each of their runs and one
        more in fresh blocks (with an indirect block each): room to begin a run."""
        need = ((len(self._pending) + 1) * (WRITE_BUFFER_BYTES // PAGE_BYTES)
                + 3 * (self._pending_runs + 1)  # a partial block at each end and an
                + WRITE_RESERVE_BLOCKS)          # indirect one, per run
        return self.kernel.fs.free_blocks >= need

    def _flush_all(self) -> None:
        for kf in list(self._pending):
            self._flush(kf)

    def _release(self, f: VinoFile) -> None:
        kf = f.kfile
        kf.users.remove(f)
        if kf.users:
            return
        fs = self.kernel.fs
        if kf.pending:
            self._flush(kf)
        if self.on_close is not None:
            self.on_close(kf)
        fs.close(kf.of)
        if self._files.get(kf.name) is kf:
            del self._files[kf.name]
            if kf.delete_on_close:
                try:
                    fs.unlink(self.user, kf.name)
                except NoSuchFile:
                    return
                if self.on_delete is not None:
                    self.on_delete(kf.name)

    def _truncate(self, kf: KernelFile, newsize: int) -> None:
        if newsize == kf.of.inode.size:
            return
        self.stats.truncates += 1
        try:
            self.kernel.fs.truncate(kf.of, newsize)
        finally:  # even a failed truncate may have cut: no pooled page past the end
            if kf.role == "main":
                kf.seen_version = kf.lock.bump()
                kf.head = None
            if self.pool is not None and kf.pool_base is not None:
                self.pool.truncate(kf.pool_base, newsize)

    def flush(self) -> None:
        """Give every gathered write to the kernel now (before looking at the kernel's
        files directly, e.g. ``fs.stat``, from outside SQLite)."""
        with self._mutex:
            self._flush_all()

    def file(self, path: str) -> KernelFile | None:
        """The open kernel file of SQLite path ``path`` (as SQLite names it), if open."""
        with self._mutex:
            return self._files.get(kernel_name(full_pathname(path)))

    def files(self) -> list[KernelFile]:
        with self._mutex:
            return list(self._files.values())

    # ---- names -------------------------------------------------------------------------------

    @sqlite_errors(apsw.SQLITE_IOERR_DELETE)
    def xDelete(self, filename: str, syncdir: bool) -> None:
        kname = kernel_name(filename)
        with self._mutex:
            self._flush_all()
            try:
                self.kernel.fs.unlink(self.user, kname)
            except NoSuchFile:
                raise apsw.exception_for(apsw.SQLITE_IOERR_DELETE_NOENT) from None
            self.stats.deletes += 1
            self._files.pop(kname, None)  # still open: lives on as an orphan until closed
            if self.on_delete is not None:
                self.on_delete(kname)
            if syncdir:
                try:
                    self.kernel.fs.sync_dir()
                except (KernelError, OSError) as exc:
                    raise ioerr(apsw.SQLITE_IOERR_DIR_FSYNC, "xDelete", exc) from exc
                self.stats.dir_syncs += 1

    def xAccess(self, pathname: str, flags: int) -> bool:
        kname = kernel_name(pathname)
        fs = self.kernel.fs
        gone = self._absent.get(kname)
        if gone is not None and gone[0] is fs and gone[1] == fs.names_version:
            self.stats.access_kept += 1
            return False  # no name was made since the kernel said there is none
        try:  # (not the sqlite_errors wrapper: SQLite asks twice per transaction)
            with self._mutex:
                if self._pending:
                    self._flush_all()
                version = fs.names_version  # before the probe: a name made after it shows
                found = fs.probe(kname)
                if found is None:
                    if len(self._absent) >= ABSENT_NAMES_KEPT:
                        self._absent.clear()
                    self._absent[kname] = (fs, version)
                    return False
        except (KernelError, OSError) as exc:
            raise ioerr(apsw.SQLITE_IOERR_ACCESS, "xAccess", exc) from exc
        size, uid, perm = found
        if flags == apsw.SQLITE_ACCESS_EXISTS:
            return size > 0
        if self.user.is_root:
            return True
        bits = (perm >> 6) & 7 if uid == self.user.uid else perm & 7
        want = 6 if flags == apsw.SQLITE_ACCESS_READWRITE else 4
        return bits & want == want

    def xFullPathname(self, name: str) -> str:
        return full_pathname(name)

    # ---- the rest of the OS interface ------------------------------------------------------

    def xRandomness(self, numbytes: int) -> bytes:
        return self._rng.randbytes(numbytes)

    def xSleep(self, microseconds: int) -> int:
        self.sleep(max(microseconds, 0) / 1e6)  # never under _mutex: others must go on
        return microseconds

    def xCurrentTime(self) -> float:
        return time.time() / 86400.0 + _JULIAN_UNIX_EPOCH

    def xCurrentTimeInt64(self) -> int:
        return time.time_ns() // 1_000_000 + _JULIAN_UNIX_EPOCH_MS

    def xGetLastError(self) -> tuple[int, str | None]:
        return (0, None)

    # ---- lifecycle ---------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError if lock state or the pool disagree with the files.

        Reads every resident pool page's bytes back through the file system (as a
        user read: filters, read-ahead and access events run), so call it between
        workloads, not inside one that is being measured.
        """
        with self._mutex:
            self._flush_all()
            for kf in self._files.values():
                assert kf.users, f"{kf.name}: open with no users"
                kf.lock.check()
                if kf.head is not None:
                    fs = self.kernel.fs
                    fs.seek(kf.of, 0)
                    assert fs.read(kf.of, PAGE_BYTES) == kf.head, f"{kf.name}: head is stale"
                if self.pool is not None and kf.pool_base is not None:
                    fs = self.kernel.fs
                    for index in self.pool.resident_pages(kf.pool_base):
                        fs.seek(kf.of, index * PAGE_BYTES)
                        disk = fs.read(kf.of, PAGE_BYTES)
                        pooled = self.pool.aspace.read(kf.pool_base + index)
                        assert disk == pooled, f"{kf.name}: pool page {index} is stale"

    def close(self) -> None:
        """Unregister from SQLite and give the pool's frames back. Close connections
        first: with a file still open raises ``FilesStillOpen`` and changes nothing."""
        with self._mutex:
            if self._closed:
                return
            if self._files:
                names = ", ".join(sorted(self._files))
                raise FilesStillOpen(f"VFS {self.vfs_name}: files still open: {names}; "
                                     "close their connections first")
            self._closed = True
            self.unregister()
            if self.pool is not None:
                self.pool.release()


plainread.vfs_classes(VinoVFS, VinoFile)  # the native xRead serves from now on
