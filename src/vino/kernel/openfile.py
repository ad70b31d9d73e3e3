"""Open files: a user's handle on a file (``OpenFile``) and the operations through it
-- open, read, write, truncate, seek, close (``OpenFiles``).

A mix-in of ``FileSystem`` (``fs.py``), which users call::

    f = fs.open(alice, "notes", "rw")             # a User or a Process
    fs.write(f, b"..."); fs.seek(f, 0); fs.read(f, 100)
    fs.pwrite(f, 0, b"..."); fs.pread(f, 0, 100)   # seek + write / read, one operation
    fs.pwritev(f, [(0, b"a"), (8192, b"b")])      # several pwrites, one operation
    fs.truncate(f, 10); fs.close(f)

Each operation takes the file system's lock, checks the handle (open, of this
mounted file system) and its rights, then works through the byte half
(``fileio.py``); an operation that may log metadata opens with ``_begin`` (room in
the log, ``fs.py``). Rights are checked at ``open`` against the inode's permission
bits (``inode.permits``); afterwards the handle's ``readable`` / ``writable`` decide.

Invariants:
- ``fs._open`` holds exactly the open files of the mount that are not closed, keyed
  by ``fid``; an inode's ``open_count`` is the number of them on it;
- a closed handle, or one of another (or an unmounted) file system, is refused with
  ``BadHandle`` before anything is looked at;
- the last close of an unlinked file (an orphan) frees its inode and blocks.
"""

from __future__ import annotations

from typing import Literal

from vino.kernel.errors import AccessDenied, BadHandle, InvalidArgument
from vino.kernel.fsinvariants import Invariants
from vino.kernel.fspolicy import NOT_PLAIN
from vino.kernel.inode import BS, MAX_FILE_SIZE, Inode, ceil_div, permits
from vino.kernel.proc import Process, User

__all__ = ["OpenFile", "OpenFiles", "OpenMode"]

OpenMode = Literal["r", "w", "rw"]


class OpenFile:
    """One open of a file: position, rights, and the access history read-ahead sees."""

    __slots__ = ("_history", "_plain", "closed", "fid", "fs", "inode", "name", "pos",
                 "prefetch_hits", "prefetches", "process", "readable", "user", "writable")

    def __init__(self, fs: OpenFiles, inode: Inode, name: str, user: User,
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
        # Invariant: most recent first, no two equal neighbours, at most READAHEAD_HISTORY
        # entries (fileio.py inserts at 0 and drops the oldest past it; a list, which the
        # native read pushes without a call or, once full, a new int).
        self._history: list[int] = []
        # Invariant: equals its file system's policy epoch only while a read of this
        # open file runs nothing but the built-in policies (``plain_read`` said so at
        # that epoch, and it was not closed since): then a cached block may be read on
        # the plain path (``fileio.py``). Epochs are unique across file systems.
        self._plain = NOT_PLAIN

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


class OpenFiles(Invariants):
    """The open-file half of a ``FileSystem`` (a mix-in; see the module)."""

    _mounted: bool
    _next_fid: int
    _cut_pending: bool

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

    def read(self, of: OpenFile, n: int) -> bytes:
        """Up to ``n`` bytes from the position (fewer at end of file); advances the position."""
        return self._for_opener(of, self._read, of, None, n)

    def _read(self, of: OpenFile, offset: int | None, n: int) -> bytes:
        if n < 0:
            raise InvalidArgument(f"read of {n} bytes")
        with self._lock:
            self._check_open(of)
            if offset is not None:
                of.pos = offset
            if not of.readable:
                raise AccessDenied(f"{of.name!r} is not open for reading")
            data, of.pos = self._read_at(of.inode, of.pos, n, of)
            stats = self.stats
            stats.reads += 1
            stats.bytes_read += len(data)
            if of._plain != self._epoch:
                epoch = self._epoch  # before asking: a change meanwhile starts a new one
                of._plain = epoch if self.plain_read(of) else NOT_PLAIN
            return data

    def write(self, of: OpenFile, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` at the position (growing the file); return ``len(data)``.

        All or nothing with respect to space: ``NoSpace`` is raised before any change.
        """
        return self._for_opener(of, self._write, of, None, data)

    def pwrite(self, of: OpenFile, offset: int, data: bytes | bytearray | memoryview) -> int:
        """``seek(of, offset)`` then ``write(of, data)`` as one operation (SQLite's xWrite)."""
        if offset < 0:
            raise InvalidArgument(f"seek to {offset}")
        return self._for_opener(of, self._write, of, offset, data)

    def pwritev(self, of: OpenFile,
                writes: list[tuple[int, bytes | bytearray]]) -> None:
        """``pwrite`` of each ``(offset, data)`` of ``writes`` in order, as one operation
        (SQLite's commit: pages scattered over the file). Each is taken off the front of
        ``writes`` once the file holds it: after an error ``writes`` holds exactly those
        not written, the first of them the one that failed (as ``pwrite``)."""
        if any(offset < 0 for offset, _ in writes):
            raise InvalidArgument(f"seek to {min(offset for offset, _ in writes)}")
        self._for_opener(of, self._writev, of, writes)

    def _writev(self, of: OpenFile,
                writes: list[tuple[int, bytes | bytearray]]) -> None:
        with self._lock:  # held once: each _write below re-enters it
            plain = self._mounted and not of.closed and of.fs is self and of.writable
            while writes:
                if plain and self._plain_overwrites(of, writes) and not writes:
                    return
                offset, data = writes[0]
                self._write(of, offset, data)
                del writes[0]

    def _write(self, of: OpenFile, offset: int | None,
               data: bytes | bytearray | memoryview) -> int:
        with self._lock:
            self._check_open(of)
            if offset is not None:
                of.pos = offset
            if not of.writable:
                raise AccessDenied(f"{of.name!r} is not open for writing")
            if self._plain_overwrites(
                    of, [(of.pos, bytes(data) if isinstance(data, memoryview) else data)]):
                return len(data)
            plain = of._plain == self._epoch  # asked by _plain_overwrites
            data = bytes(data)
            self._begin()  # room for the inode and the first block's metadata
            self._write_at(of.inode, of.pos, data, of, plain)
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
                    self._trim(ino, ceil_div(size, BS))
                except BaseException:
                    if cut is not None and cut[1]:
                        self._unalloc_block(cut[1])
                    raise
                if cut is not None and cut[1]:
                    old, new, leaf, _ = cut
                    self._set_pointer(ino, size // BS, new, leaf)
                    self._free_block(old)
                elif cut is not None:  # a full disk: no copy; zeroed once committed
                    ino.size = size
                    self._store_inode(ino)
                    self._cut_pending = True
                    self._commit()
                    self.cache.write_block(self.device, cut[0], cut[3])
                    return
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
        """Close (idempotent). The last close of an unlinked file frees it. Then
        ``hooks.on_close`` hears of it (of every call, as the first)."""
        self._close(of)
        if self.hooks.on_close is not None:
            self.hooks.on_close(of)

    def _close(self, of: OpenFile) -> None:
        with self._lock:
            if of.closed or of.fs is not self:
                return
            of.closed = True
            of._plain = NOT_PLAIN
            del self._open[of.fid]
            ino = of.inode
            ino.open_count -= 1
            if ino.orphan and ino.open_count == 0 and self._mounted:
                self._begin()
                self._free_inode(ino)

    def _check_mounted(self) -> None:
        if not self._mounted:
            raise BadHandle(f"file system on {self.device.path} is not mounted")

    def _check_open(self, of: OpenFile) -> None:
        if not self._mounted:
            raise BadHandle(f"file system on {self.device.path} is not mounted")
        if of.closed or of.fs is not self:
            raise BadHandle(f"{of.name!r} (fid {of.fid}) is closed or not of this file system")
