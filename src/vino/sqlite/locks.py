"""SQLite's file-lock levels, as a single-process state machine per kernel file.

SQLite asks its VFS for five lock levels on the database file (sqlite.org/lockingv3):
NONE < SHARED < RESERVED < PENDING < EXCLUSIVE. The vino kernel has no file locks,
so the VFS keeps, per kernel file, one ``FileLock`` shared by every connection of
this process that opened it (the same role as the Unix VFS's per-inode lock table).
Connections in other processes are not seen -- vino's processes all live in one
Python process, and the VFS serves one kernel process.

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

Invariants (``check``): ``shared`` counts the holders at SHARED or above; at most one
holder is at RESERVED or above; an EXCLUSIVE holder is the only SHARED holder.

Thread-safe: one lock guards every ``FileLock`` of a table.
"""

from __future__ import annotations

import threading
from typing import Final

__all__ = ["EXCLUSIVE", "NONE", "PENDING", "RESERVED", "SHARED", "Busy", "FileLock", "Holder"]

NONE: Final = 0  # the values of SQLITE_LOCK_*
SHARED: Final = 1
RESERVED: Final = 2
PENDING: Final = 3
EXCLUSIVE: Final = 4


class Busy(Exception):
    """The lock is held in a conflicting mode; nothing changed (except a kept PENDING)."""


class Holder:
    """One open file's view of the lock: its current level."""

    __slots__ = ("level",)

    def __init__(self) -> None:
        self.level = NONE


class FileLock:
    """The lock state of one kernel file, shared by every connection of the process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._mutex = threading.Lock()
        self.shared = 0  # holders at SHARED or above
        self.writer: Holder | None = None  # the one holder at RESERVED or above

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

    def check(self, holders: list[Holder]) -> None:
        """Raise AssertionError if the state disagrees with ``holders`` (every open file)."""
        with self._mutex:
            assert self.shared == sum(1 for h in holders if h.level >= SHARED), "shared count"
            writers = [h for h in holders if h.level >= RESERVED]
            assert len(writers) <= 1, "two writers"
            assert (self.writer is None) == (not writers), "writer slot"
            if writers and writers[0].level == EXCLUSIVE:
                assert self.shared == 1, "EXCLUSIVE beside readers"
