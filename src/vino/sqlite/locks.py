"""SQLite's file-lock levels, kept per kernel file for every vino process of one kernel.

SQLite asks its VFS for five lock levels on the database file (sqlite.org/lockingv3):
NONE < SHARED < RESERVED < PENDING < EXCLUSIVE. The vino kernel has no file locks,
so this module keeps them, as the Unix VFS keeps its per-inode lock table: one
``FileLock`` per file of a mounted file system, found with ``table_for(fs).get(inum)``
and shared by every ``VinoVFS`` -- every vino process -- on that file system, and by
every connection of each. Two processes of one kernel therefore exclude each other
exactly as two connections of one process do.

What a "vino process" is here: a ``Process`` of the reference kernel (one per
``VinoVFS``); all of them live in the one Python process that booted the kernel.
Two OS processes cannot share a disk image: each would mount it with its own
in-memory metadata and cache, so there is nothing for a lock to protect. A disk
image is used by one kernel at a time, and the kernel enforces it (``Kernel.boot``
raises ``ImageInUse`` for an image another kernel, of any OS process, has booted).

The rules (each refusal raises ``Busy``, which the VFS turns into SQLITE_BUSY):
- SHARED is granted unless someone holds PENDING or EXCLUSIVE (a writer is waiting
  for readers to drain, or writing).
- RESERVED (from SHARED) is granted unless someone else holds RESERVED or higher:
  one writer at a time, readers continue.
- EXCLUSIVE (from SHARED or RESERVED) first takes PENDING -- from then on no new
  SHARED is granted -- and is granted once this holder is the only SHARED one. If
  other readers remain, the request fails but PENDING is kept, as in SQLite's Unix
  VFS, so the writer cannot be starved; SQLite retries or unlocks.
- PENDING alone may also be asked for (SQLite never does, but the state machine
  allows it).
- ``unlock(SHARED)`` drops RESERVED / PENDING / EXCLUSIVE; ``unlock(NONE)`` drops
  everything. Unlocking to a level at or above the current one does nothing.
- ``reserved()`` (xCheckReservedLock) is true while anyone holds RESERVED or higher.

The write version: ``version`` counts the writes any process made to the file
through a VFS (``bump``). A process that keeps copies of the file's pages (the
VFS's buffer pool) compares it, when it takes SHARED, with the version its copies
were made at, and drops them if another process wrote in between (SQLite itself
does the same for its own cache with the header's change counter).

Invariants (``check``): ``shared`` counts the registered holders at SHARED or above;
at most one holder is at RESERVED or above and it is ``writer``; an EXCLUSIVE holder
is the only SHARED holder.

Thread-safe: each ``FileLock`` has its own mutex; ``table_for`` has one for the tables.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final

from vino.errors import VinoError

__all__ = ["EXCLUSIVE", "NONE", "PENDING", "RESERVED", "SHARED", "Busy", "FileLock", "Holder",
           "LockTable", "table_for"]

NONE: Final = 0  # the values of SQLITE_LOCK_*
SHARED: Final = 1
RESERVED: Final = 2
PENDING: Final = 3
EXCLUSIVE: Final = 4


class Busy(VinoError):
    """The lock is held in a conflicting mode; nothing changed (except a kept PENDING)."""


class Holder:
    """One open file's view of the lock: its current level."""

    __slots__ = ("__weakref__", "level")

    def __init__(self) -> None:
        self.level = NONE


class FileLock:
    """The lock state of one kernel file, shared by every connection of every process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._mutex = threading.Lock()
        self.shared = 0  # holders at SHARED or above
        self.writer: Holder | None = None  # the one holder at RESERVED or above
        self.version = 0  # writes made to the file through any VFS (see the module doc)
        # Invariant: every Holder of an open VinoFile on this file, and no other.
        self._holders: weakref.WeakSet[Holder] = weakref.WeakSet()

    def register(self, h: Holder) -> None:
        with self._mutex:
            self._holders.add(h)

    def forget(self, h: Holder) -> None:
        """``h``'s file is closed: drop its locks and stop counting it."""
        self.unlock(h, NONE)
        with self._mutex:
            self._holders.discard(h)

    def lock(self, h: Holder, level: int) -> None:
        """Raise ``h`` to ``level`` (SHARED, RESERVED, PENDING or EXCLUSIVE) or raise Busy."""
        if level not in (SHARED, RESERVED, PENDING, EXCLUSIVE):
            raise ValueError(f"lock level {level} is not SHARED..EXCLUSIVE")
        with self._mutex:
            if h.level >= level:
                return
            if h.level == NONE:
                if level != SHARED:
                    raise ValueError(f"{self.name}: lock {level} asked for without SHARED")
                if self.writer is not None and self.writer.level >= PENDING:
                    raise Busy(f"{self.name}: a writer holds PENDING or EXCLUSIVE")
                self.shared += 1
                h.level = SHARED
                return
            if self.writer is not None and self.writer is not h:
                raise Busy(f"{self.name}: another connection holds RESERVED or higher")
            self.writer = h
            if level == RESERVED:
                h.level = RESERVED
                return
            h.level = max(h.level, PENDING)  # from here on no new readers are let in
            if level == PENDING:
                return
            if self.shared > 1:
                raise Busy(f"{self.name}: {self.shared - 1} other reader(s) hold SHARED")
            h.level = EXCLUSIVE

    def unlock(self, h: Holder, level: int) -> None:
        """Lower ``h`` to ``level`` (SHARED or NONE)."""
        if level not in (NONE, SHARED):
            raise ValueError(f"unlock level {level} is not NONE or SHARED")
        with self._mutex:
            if h.level <= level:
                return
            if self.writer is h:
                self.writer = None
            if level == NONE:
                self.shared -= 1
            h.level = level

    def reserved(self) -> bool:
        with self._mutex:
            return self.writer is not None

    def bump(self) -> int:
        """Count one write to the file; return the new version."""
        with self._mutex:
            self.version += 1
            return self.version

    def check(self) -> None:
        """Raise AssertionError if the state disagrees with the registered holders."""
        with self._mutex:
            holders = list(self._holders)
            assert self.shared == sum(1 for h in holders if h.level >= SHARED), "shared count"
            writers = [h for h in holders if h.level >= RESERVED]
            assert len(writers) <= 1, "two writers"
            assert (self.writer is None) == (not writers), "writer slot"
            if writers:
                assert self.writer is writers[0], "writer slot holds another holder"
                if writers[0].level == EXCLUSIVE:
                    assert self.shared == 1, "EXCLUSIVE beside readers"


class LockTable:
    """The ``FileLock`` of every file of one mounted file system, by inode number."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        # Invariant: _locks[inum].name is the name the file had when first locked.
        self._locks: dict[int, FileLock] = {}

    def get(self, inum: int, name: str) -> FileLock:
        with self._mutex:
            lock = self._locks.get(inum)
            if lock is None:
                lock = self._locks[inum] = FileLock(name)
            return lock


_tables_mutex = threading.Lock()
_tables: weakref.WeakKeyDictionary[object, LockTable] = weakref.WeakKeyDictionary()


def table_for(fs: object) -> LockTable:
    """The one lock table of the mounted file system ``fs`` (made on first use)."""
    with _tables_mutex:
        table = _tables.get(fs)
        if table is None:
            table = _tables[fs] = LockTable()
        return table
