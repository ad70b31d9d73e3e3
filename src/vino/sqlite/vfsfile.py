"""The VFS's files: one kernel file shared by every connection that opens it
(``KernelFile``), and SQLite's io methods on it (``VinoFile``).

``VinoVFS.xOpen`` (``vfs.py``) returns a ``VinoFile`` (or a ``VanishedJournal`` for a
journal deleted between SQLite's check and its open); SQLite then calls its ``x*``
methods. The io methods' contract with SQLite is the one in ``vfs.py``'s docstring;
the reading and writing behind them (the buffer pool, gathered writes) is
``VinoVFS``'s, under its mutex. Usage, as SQLite does it::

    f = vfs.xOpen(name, flags)
    f.xLock(apsw.SQLITE_LOCK_SHARED); f.xRead(4096, 0); f.xUnlock(apsw.SQLITE_LOCK_NONE)
    f.xWrite(page, offset); f.xSync(0); f.xClose()

Errors: every kernel or device error (``KernelError`` or ``OSError``) becomes the
method's SQLITE_IOERR_* extended code (``ioerr``, ``sqlite_errors``), ``NoSpace``
SQLITE_FULL.

Invariants (of ``KernelFile``, kept by ``VinoVFS``):
- while any user holds SHARED, the pooled pages and ``head`` equal the file as of
  ``lock.version == seen_version`` (no other process can write without EXCLUSIVE);
- ``pending`` holds bytes written at ``pending_at`` that the kernel file does not
  hold yet, and is non-empty only while the file is in ``VinoVFS._pending``; ``runs``
  hold earlier such writes (other offsets) and are empty whenever ``pending`` is;
- ``users`` are exactly the ``VinoFile``s open on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import apsw

from vino.kernel import plainread
from vino.kernel.errors import KernelError, NoSpace
from vino.kernel.fs import MAX_FILE_SIZE, OpenFile
from vino.sqlite import locks
from vino.sqlite.params import PAGE_BYTES, SECTOR_BYTES, WRITE_BUFFER_BYTES

if TYPE_CHECKING:
    from vino.sqlite.vfs import VinoVFS

__all__ = ["KernelFile", "PageObserver", "VanishedJournal", "VfsStats", "VinoFile", "ioerr",
           "sqlite_errors"]

P = ParamSpec("P")
R = TypeVar("R")


class PageObserver(Protocol):
    """Told every whole page of a main database file that crosses the file system."""

    def on_page(self, index: int, page: bytes, write: bool) -> None:
        """``page`` (``PAGE_BYTES`` bytes) is now the content of page ``index`` (0-based)."""
        ...


@dataclass(slots=True)
class VfsStats:
    opens: int = 0  # xOpen calls
    reads: int = 0  # xRead calls
    writes: int = 0  # xWrite calls
    bytes_read: int = 0
    bytes_written: int = 0
    short_reads: int = 0  # xRead calls answered with fewer bytes (SQLITE_IOERR_SHORT_READ)
    syncs: int = 0  # xSync calls (each syncs the device)
    truncates: int = 0  # xTruncate calls that changed the size
    deletes: int = 0  # xDelete calls that removed a file
    busy: int = 0  # xLock calls refused with SQLITE_BUSY
    dir_syncs: int = 0  # xDelete calls that made the unlink durable (syncdir)
    flush_errors: int = 0  # gathered writes that an unlock could not give to the kernel
    access_kept: int = 0  # xAccess calls answered "no such file" without asking the kernel

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True, eq=False)
class KernelFile:
    """One kernel file opened by the VFS, shared by every VinoFile (connection) on it."""

    name: str  # the kernel name
    path: str  # SQLite's full path name
    of: OpenFile  # the one kernel open file
    role: str  # main, journal, wal, temp, ... (from the open flags)
    lock: locks.FileLock
    pool_base: int | None = None  # vpn of page 0 in the buffer pool, if pooled
    # Invariant: while any user holds SHARED, the pooled pages equal the file as of
    # lock.version == seen_version (no other process can write without EXCLUSIVE).
    seen_version: int = 0
    # Invariant: None, or the main database's first page as the file holds it now,
    # under the same rule as the pooled pages (SQLite reads the header's change
    # counter at every transaction: without a pool this keeps it off the kernel).
    head: bytes | None = None
    observer: PageObserver | None = None
    delete_on_close: bool = False
    # Invariant: exactly the VinoFiles open on this kernel file.
    users: list[VinoFile] = field(default_factory=list)
    # Invariant: bytes written at pending_at .. pending_at + len(pending) that the kernel
    # file does not hold yet; non-empty only while this file is in VinoVFS._pending.
    pending: bytearray = field(default_factory=bytearray)
    pending_at: int = 0
    # Invariant: earlier runs written and not in the kernel yet, (offset, bytes) in the
    # order written, all before ``pending``; empty whenever ``pending`` is empty.
    # runs_bytes is the sum of their lengths, runs_end their largest end (0 if none).
    runs: list[tuple[int, bytes | bytearray]] = field(default_factory=list)
    runs_bytes: int = 0
    runs_end: int = 0


def ioerr(code: int, what: str, exc: BaseException) -> Exception:
    """The apsw exception that reports extended result ``code`` to SQLite."""
    if isinstance(exc, NoSpace):
        return apsw.FullError(f"{what}: {exc}")
    err = apsw.exception_for(code)
    err.args = (f"{what}: {exc}",)
    return err


def sqlite_errors(code: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn kernel and device errors into SQLite's ``code`` (``NoSpace`` into SQLITE_FULL)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except (KernelError, OSError) as exc:
                raise ioerr(code, fn.__name__, exc) from exc

        return call

    return wrap


class VinoFile:
    """One SQLite open of a kernel file (what xOpen returns).

    The hot methods catch kernel errors themselves (no wrapper frame: every call
    costs, see ``vino bench sqlite``); each maps them with ``_ioerr`` to its code.
    """

    # All its attributes; ``vfs`` and ``kfile`` are read by the native xRead at their
    # offsets (plainread.VFS_FILE_NAMES).
    __slots__ = ("closed", "holder", "kfile", "readonly", "vfs")

    def __init__(self, vfs: VinoVFS, kfile: KernelFile, readonly: bool) -> None:
        self.vfs = vfs
        self.kfile = kfile
        self.readonly = readonly
        self.holder = locks.Holder()
        self.closed = False

    @property
    def lock_level(self) -> int:
        return self.holder.level

    def _xread(self, amount: int, offset: int) -> bytes:
        """SQLite's xRead in Python: every branch (``xRead`` is its native twin's
        common branch, then this)."""
        vfs, kf = self.vfs, self.kfile
        mutex = vfs._mutex
        mutex.acquire()  # not ``with``: a page read is the hottest call there is
        try:
            stats = vfs.stats
            stats.reads += 1
            if (offset >= PAGE_BYTES and kf.pool_base is None and not kf.pending
                    and kf.observer is None):
                of = kf.of  # most page reads: the kernel's, as they are (vfs._read)
                data = of.fs.pread(of, offset, amount)
            else:
                pool, base = vfs.pool, kf.pool_base
                if pool is not None and base is not None:
                    pooled = pool.read(base, offset, amount)
                    data = (pooled if pooled is not None
                            else vfs._read_pooled(kf, pool, base, amount, offset))
                elif kf.role == "main" and offset + amount <= PAGE_BYTES:
                    head = kf.head
                    if head is None:
                        head = vfs._read(kf, PAGE_BYTES, 0)
                        if len(head) == PAGE_BYTES:
                            kf.head = head
                    data = head[offset:offset + amount]
                else:
                    data = vfs._read(kf, amount, offset)
            stats.bytes_read += len(data)
            if len(data) < amount:
                stats.short_reads += 1  # apsw zero-fills: SQLITE_IOERR_SHORT_READ
            return data
        except (KernelError, OSError) as exc:
            raise ioerr(apsw.SQLITE_IOERR_READ, "xRead", exc) from exc
        finally:
            mutex.release()

    # SQLite's page read: a cached page past the first of a file with no pool, nothing
    # pending and no observer in one native call (plainread.py), everything else _xread.
    xRead = plainread.xread(_xread, KernelFile, VfsStats, PAGE_BYTES)

    def xWrite(self, data: Any, offset: int) -> None:
        if self.readonly:
            raise apsw.ReadOnlyError(f"{self.kfile.path} was opened read-only")
        raw = data if type(data) is bytes else bytes(data)  # apsw gives bytes
        vfs, kf = self.vfs, self.kfile
        mutex = vfs._mutex
        mutex.acquire()  # not ``with``: ~80 writes per commit (a journal record is three)
        try:
            pend = kf.pending
            n = len(raw)
            if (pend and offset == kf.pending_at + len(pend)
                    and len(pend) + kf.runs_bytes + n <= WRITE_BUFFER_BYTES
                    and offset + n <= MAX_FILE_SIZE):
                pend += raw  # continues the pending run: _buffer's first case, inline
            else:
                vfs._buffer(kf, raw, offset)
            stats = vfs.stats
            stats.writes += 1
            stats.bytes_written += n
            if kf.role == "main":
                kf.seen_version = kf.lock.bump()
                if offset < PAGE_BYTES:
                    kf.head = None
                if kf.pool_base is not None and vfs.pool is not None:
                    vfs.pool.update(kf.pool_base, offset, raw)
            if kf.observer is not None and offset % PAGE_BYTES == 0:
                for i in range(n // PAGE_BYTES):
                    kf.observer.on_page(offset // PAGE_BYTES + i,
                                        raw[i * PAGE_BYTES:(i + 1) * PAGE_BYTES], True)
        except (KernelError, OSError) as exc:
            raise ioerr(apsw.SQLITE_IOERR_WRITE, "xWrite", exc) from exc
        finally:
            mutex.release()

    @sqlite_errors(apsw.SQLITE_IOERR_TRUNCATE)
    def xTruncate(self, newsize: int) -> None:
        if self.readonly:
            raise apsw.ReadOnlyError(f"{self.kfile.path} was opened read-only")
        vfs, kf = self.vfs, self.kfile
        with vfs._mutex:
            vfs._flush_all()
            vfs._truncate(kf, newsize)

    @sqlite_errors(apsw.SQLITE_IOERR_FSYNC)
    def xSync(self, flags: int) -> None:
        vfs = self.vfs
        with vfs._mutex:
            vfs.stats.syncs += 1
            vfs._flush_all()
            vfs.kernel.fs.fsync(self.kfile.of)

    def xFileSize(self) -> int:
        kf = self.kfile
        if kf.pending:
            end = kf.pending_at + len(kf.pending)  # written, not yet in the kernel
            return max(kf.of.inode.size, end, kf.runs_end)
        return kf.of.inode.size

    def xLock(self, level: int) -> None:
        kf = self.kfile
        first = self.holder.level == locks.NONE
        try:
            kf.lock.lock(self.holder, level)
        except locks.Busy as exc:
            self.vfs.stats.busy += 1
            raise apsw.BusyError(str(exc)) from None
        if first and kf.role == "main" and kf.seen_version != kf.lock.version:
            with self.vfs._mutex:  # another process wrote the file since we kept pages
                if kf.seen_version != kf.lock.version:
                    kf.head = None
                    if self.vfs.pool is not None and kf.pool_base is not None:
                        self.vfs.pool.truncate(kf.pool_base, 0)
                    kf.seen_version = kf.lock.version

    def xUnlock(self, level: int) -> None:
        vfs = self.vfs
        if vfs._pending:  # what we wrote must be in the kernel before others may look
            with vfs._mutex:
                try:
                    vfs._flush_all()
                except (KernelError, OSError):
                    # The device fails: the bytes stay pending and fail the next
                    # operation of ours that needs them; another process finds the
                    # journal hot, as after a crash. An unlock itself never fails.
                    vfs.stats.flush_errors += 1
        self.kfile.lock.unlock(self.holder, level)

    def xCheckReservedLock(self) -> bool:
        return self.kfile.lock.reserved()

    def xFileControl(self, op: int, ptr: int) -> bool:
        """SQLITE_NOTFOUND (False) for every file control but one: ``pragma journal_mode
        = wal`` is refused with an error naming why (SQLite sends every pragma to the
        main database file first). The VFS has no shared memory (io methods version 1);
        SQLite would still take WAL under ``locking_mode = exclusive``, writing a
        database header that no later open in normal locking mode can read."""
        if op != apsw.SQLITE_FCNTL_PRAGMA:
            return False
        pragma = apsw.VFSFcntlPragma(ptr)
        if (pragma.name.lower() == "journal_mode" and pragma.value is not None
                and pragma.value.strip("'\" ").lower() == "wal"):
            raise apsw.SQLError(WAL_REFUSED)
        return False

    def xSectorSize(self) -> int:
        return SECTOR_BYTES

    def xDeviceCharacteristics(self) -> int:
        return apsw.SQLITE_IOCAP_SAFE_APPEND  # ordered data: see the module docstring

    @sqlite_errors(apsw.SQLITE_IOERR_CLOSE)
    def xClose(self) -> None:
        with self.vfs._mutex:
            if self.closed:
                return
            self.closed = True
            self.kfile.lock.forget(self.holder)
            self.vfs._release(self)


WAL_REFUSED = ("journal_mode WAL needs shared memory, which SQLite on vino does not have: "
               "use delete, truncate or persist")


class VanishedJournal:
    """A journal that was deleted between SQLite's ``xAccess`` and its ``xOpen``.

    SQLite checks a journal for hotness by opening it read-only and reading its
    first byte. If its owner committed and deleted it in between, the Unix VFS's
    open fails with SQLITE_CANTOPEN, which SQLite's pager takes as "maybe hot, check
    again under EXCLUSIVE". Through apsw a refused open would also surface as an
    exception to the application once the statement ends, so the VFS answers the
    same question the other way SQLite accepts: the journal is empty (a short read
    of a zero byte), hence not hot -- which is the truth, since it is gone.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def xRead(self, amount: int, offset: int) -> bytes:
        return b""  # apsw zero-fills and reports SQLITE_IOERR_SHORT_READ: "empty"

    def xWrite(self, data: Any, offset: int) -> None:
        raise apsw.ReadOnlyError(f"{self.path} is gone")

    def xTruncate(self, newsize: int) -> None:
        raise apsw.ReadOnlyError(f"{self.path} is gone")

    def xSync(self, flags: int) -> None:
        pass

    def xFileSize(self) -> int:
        return 0

    def xLock(self, level: int) -> None:
        pass

    def xUnlock(self, level: int) -> None:
        pass

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return SECTOR_BYTES

    def xDeviceCharacteristics(self) -> int:
        return 0

    def xClose(self) -> None:
        pass
