"""One SQLite session on a vino kernel: a process, its VFS, its grafts, a connection.

Usage::

    with Session(kernel, user, "bench.db", plan=Plan(readahead=True)) as s:
        s.db.execute("select ...")            # an apsw.Connection through the VFS
        s.advisor                             # the main database's BTreeAdvisor
        other = s.connect()                   # a second connection, same VFS

``close`` closes every connection, then removes the session's grafts, then
unregisters the VFS and frees its buffer pool; the database stays in the
kernel's file system. ``abandon`` does the same after a simulated power cut,
forcibly and ignoring errors.

Connection settings (``configure``): 4 KiB pages (one kernel block each; only
effective when the database is created), SQLite's own cache of ``cache_pages``
pages (default ``SQLITE_CACHE_PAGES``, 8 MiB; the graft experiments pass a small
one on purpose), temporary tables and statement journals in memory, the given
rollback journal mode, and ``busy_timeout_ms`` (default 0: a conflicting lock fails
at once with SQLITE_BUSY; with a time-out SQLite's busy handler sleeps through
``xSleep``, which really waits, and retries).

WAL is refused: the VFS answers ``pragma journal_mode = wal`` with an error (it has
no shared memory; ``vfsfile.VinoFile.xFileControl``). A database file found in WAL
mode anyway (made elsewhere) is opened once in exclusive locking mode, which
replays its WAL, and switched to the session's journal mode (``leave_wal``).

The VFS's buffer pool (``pool.BufferPool``): by default only when the plan installs
the eviction graft, which acts on it. Without one the pool would only cache again
what the kernel's buffer cache holds, and take frames from it (a TPC-H query reading
more than the cache: 1.8x the CPU with the pool); the graft experiments ask for it
(``buffer_pool=True``) so that default and graft runs are alike.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import apsw

from vino.errors import VinoError
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sqlite.advisor import BTreeAdvisor
from vino.sqlite.grafts import Plan, SqliteGrafts
from vino.sqlite.params import BUSY_TIMEOUT_MS, SQLITE_CACHE_PAGES, SQLITE_PAGE_BYTES
from vino.sqlite.vfs import VinoVFS

__all__ = ["JOURNAL_MODES", "JournalModeRefused", "Session", "configure", "leave_wal"]

JOURNAL_MODES = ("delete", "truncate", "persist")  # the rollback-journal modes supported


class JournalModeRefused(VinoError, RuntimeError):
    """SQLite kept another journal mode than the one ``configure`` asked for (an
    in-memory database keeps ``memory``). The connection's other settings were
    applied; its journal mode is the one SQLite answered, named in the message."""


def configure(db: apsw.Connection, cache_pages: int = SQLITE_CACHE_PAGES,
              journal_mode: str = "delete", busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    if journal_mode not in JOURNAL_MODES:
        raise ValueError(f"journal mode {journal_mode!r} is not one of {JOURNAL_MODES}")
    db.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")  # first: the others may lock
    db.execute(f"pragma page_size = {SQLITE_PAGE_BYTES}")
    db.execute(f"pragma cache_size = {int(cache_pages)}")
    db.execute("pragma temp_store = memory")
    got = db.execute(f"pragma journal_mode = {journal_mode}").fetchall()
    if got != [(journal_mode,)]:
        raise JournalModeRefused(f"SQLite refused journal mode {journal_mode!r}: it "
                                 f"answered {got}; the connection keeps that mode")


def leave_wal(db: apsw.Connection, journal_mode: str) -> bool:
    """If ``db``'s file is in WAL mode (SQLite cannot open it without shared memory):
    open it in exclusive locking mode, which replays and checkpoints a WAL left by a
    crash, switch it to ``journal_mode`` and back to normal locking. False if the file
    is not in WAL mode (the open failed for another reason)."""
    try:
        db.execute("pragma locking_mode = exclusive")
        try:
            if db.execute("pragma journal_mode").fetchall() != [("wal",)]:
                return False
        except apsw.Error:
            return False
        db.execute(f"pragma journal_mode = {journal_mode}")
        return True
    finally:
        db.execute("pragma locking_mode = normal")
        db.execute("select count(*) from sqlite_master").fetchall()  # the lock goes here


class Session:
    """A process of ``user`` running SQLite on ``path`` through a VinoVFS."""

    def __init__(self, kernel: Kernel, user: User, path: str = "bench.db", *,
                 plan: Plan | None = None, buffer_pool: bool | None = None,
                 cache_pages: int = SQLITE_CACHE_PAGES, journal_mode: str = "delete",
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.kernel = kernel
        self.user = user
        self.path = path
        self.cache_pages = cache_pages
        self.journal_mode = journal_mode
        self.busy_timeout_ms = busy_timeout_ms
        self.grafts = SqliteGrafts(kernel, user, plan or Plan())
        if buffer_pool is None:  # the pool is where an eviction graft acts; else it
            buffer_pool = self.grafts.plan.evict  # only caches what the kernel caches
        self.vfs = VinoVFS(kernel, user, buffer_pool=buffer_pool)
        self.grafts.bind(self.vfs)
        self._conns: list[apsw.Connection] = []
        try:
            self.db = self.connect()
        except BaseException:
            self.close()
            raise

    def connect(self) -> apsw.Connection:
        db = apsw.Connection(self.path, vfs=self.vfs.vfs_name)
        self._conns.append(db)
        try:
            configure(db, self.cache_pages, self.journal_mode, self.busy_timeout_ms)
        except apsw.CantOpenError:
            if not leave_wal(db, self.journal_mode):
                raise
            configure(db, self.cache_pages, self.journal_mode, self.busy_timeout_ms)
        return db

    @property
    def advisor(self) -> BTreeAdvisor | None:
        kf = self.vfs.file(self.path)
        return self.grafts.advisors.get(kf.name) if kf is not None else None

    def close(self) -> None:
        for db in self._conns:
            db.close()
        self._conns.clear()
        self.grafts.close()
        self.vfs.close()

    def abandon(self) -> None:
        """Close after the kernel's power went (crash loops): every connection is closed
        forcibly and every error on the way ignored, since nothing may reach the image."""
        for db in self._conns:
            with contextlib.suppress(Exception):
                db.close(True)
        self._conns.clear()
        with contextlib.suppress(Exception):
            self.grafts.close()
        with contextlib.suppress(Exception):
            self.vfs.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
