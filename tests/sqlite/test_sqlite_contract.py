"""SQLite's VFS contract, attacked where the VFS used to break it.

- a failing device reaches SQLite as the right SQLITE_IOERR_* extended code (or
  SQLITE_FULL), never as SQLITE_ERROR ("SQL logic error"), and the pager recovers
  once the device works again;
- two vino processes on one database: never two writers, never a stale page;
- ``busy_timeout`` really waits; ``synchronous=EXTRA`` syncs the directory after the
  journal is deleted; a hot journal deleted between the check and the open is gone;
- a Session's default cache keeps its pages (SQLite's own cache is not 16 pages).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from vino.kernel.errors import ImageInUse
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sqlite.params import SQLITE_CACHE_PAGES, WRITE_BUFFER_BYTES
from vino.sqlite.session import Session
from vino.sqlite.vfs import VinoVFS
from vino.testing.faults import InjectedFault, Injector
from vino.testing.threads import run_threads

ROWS = 1000


def _fill(db: apsw.Connection, rows: int = ROWS, start: int = 0, width: int = 40) -> None:
    db.execute("create table if not exists t(id integer primary key, v text)")
    with db:
        db.executemany("insert into t values(?, ?)",
                       ((i, f"{i:08d}".ljust(width, "x")) for i in range(start, start + rows)))


def _rows(db: apsw.Connection) -> list[tuple[int, str]]:
    return [(int(i), str(v)) for i, v in db.execute("select id, v from t order by id")]


def _ok(db: apsw.Connection) -> bool:
    return db.execute("pragma integrity_check").fetchall() == [("ok",)]


def _cold(kernel: Kernel) -> None:
    kernel.cache.sync(kernel.device)
    kernel.cache.invalidate(kernel.device)


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "extendedresult", -1))


def _codes(exc: BaseException | None) -> list[int]:
    """The extended codes of ``exc`` and every exception chained before it (apsw
    chains the errors of one SQLite call: the first failure, then its recovery's)."""
    out = []
    while exc is not None:
        if isinstance(exc, apsw.Error):
            out.append(_code(exc))
        exc = exc.__context__
    return out


@pytest.fixture
def inj() -> Iterator[Injector]:
    yield Injector()


# ---- device errors become SQLITE_IOERR_* ------------------------------------------------

def test_a_failing_disk_read_is_sqlite_ioerr_read_not_a_logic_error(
        kernel: Kernel, alice: User, inj: Injector) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
    _cold(kernel)
    with Session(kernel, alice, "app.db") as s, \
            inj.patch(kernel.device, "read_into", "device.read"):
        inj.arm("device.read", 1, persistent=True)
        with pytest.raises(apsw.IOError) as err:
            s.db.execute("select count(*), max(v) from t").fetchall()
        assert _code(err.value) == apsw.SQLITE_IOERR_READ
        inj.disarm()
        assert len(_rows(s.db)) == ROWS and _ok(s.db)  # the pager recovered


def test_a_failing_disk_at_commit_is_ioerr_fsync_and_the_commit_rolls_back(
        kernel: Kernel, alice: User, inj: Injector) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        before = _rows(s.db)
        with inj.patch(kernel.device, "write_blocks", "device.write"):
            inj.arm("device.write", 1, persistent=True)
            with pytest.raises(apsw.IOError) as err, s.db:
                s.db.execute("update t set v = 'lost' where id < 10")
            assert _code(err.value) == apsw.SQLITE_IOERR_FSYNC
            inj.disarm()
            assert _rows(s.db) == before and _ok(s.db)


def test_a_write_that_evicts_onto_a_failing_disk_is_ioerr_write(
        kernel: Kernel, alice: User, inj: Injector) -> None:
    # The transaction dirties more pages than the kernel has frames (64): writing the
    # journal evicts dirty blocks onto the failing disk inside xWrite, before any sync.
    # The database and its journal outgrow a quarter of this small image: no disk quota.
    kernel.fs.quota.user_blocks = kernel.fs.geo.nblocks
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db, 4 * ROWS, width=400)
        before = _rows(s.db)
        with inj.patch(kernel.device, "write_blocks", "device.write"):
            inj.arm("device.write", 1, persistent=True)
            s.db.execute("begin")
            with pytest.raises(apsw.IOError) as err:
                s.db.execute("update t set v = upper(v)")
            codes = _codes(err.value)
            assert apsw.SQLITE_IOERR_WRITE in codes  # the write that hit the disk
            assert all(c & 0xFF == apsw.SQLITE_IOERR for c in codes), codes
            inj.disarm()
            if not s.db.getautocommit():
                s.db.execute("rollback")
            assert _rows(s.db) == before and _ok(s.db)


def test_a_full_disk_is_sqlite_full_and_the_database_stays_intact(
        kernel: Kernel, alice: User) -> None:
    # The disk itself full, not alice's share of it (her quota's refusal is a NoSpace
    # too, but this is the device's last block): no quota, no root reserve here.
    kernel.fs.quota.user_blocks, kernel.fs.quota.reserve_blocks = kernel.fs.geo.nblocks, 0
    # A file may now fill the disk: keep room aside, given back after FULL, so the
    # delete below can write its journal (SQLite needs space to free space).
    kernel.fs.create(alice, "ballast")
    with kernel.fs.open(alice, "ballast", "w") as f:
        kernel.fs.write(f, bytes(256 * 1024))
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        before = _rows(s.db)
        blob = bytes(64 * 1024)
        with pytest.raises(apsw.FullError):
            for _ in range(10_000):
                with s.db:
                    s.db.execute("insert into t(v) values(?)", (blob,))
        kernel.fs.unlink(alice, "ballast")
        with s.db:
            s.db.execute("delete from t where id >= ?", (ROWS,))
        assert _rows(s.db) == before and _ok(s.db)


BROKEN_CALLS = [
    # (VFS method, kernel call that fails under it, SQLite's extended code for it)
    ("xDelete", "unlink", apsw.SQLITE_IOERR_DELETE),
    ("xDelete(syncdir)", "sync_dir", apsw.SQLITE_IOERR_DIR_FSYNC),
    ("xAccess", "probe", apsw.SQLITE_IOERR_ACCESS),
    ("xTruncate", "truncate", apsw.SQLITE_IOERR_TRUNCATE),
    ("xSync", "fsync", apsw.SQLITE_IOERR_FSYNC),
    ("xRead", "pread", apsw.SQLITE_IOERR_READ),
    ("xWrite", "pwritev", apsw.SQLITE_IOERR_WRITE),
]


@pytest.mark.parametrize(("method", "call", "code"), BROKEN_CALLS)
def test_an_io_error_under_each_vfs_method_is_its_own_ioerr_code(
        kernel: Kernel, alice: User, inj: Injector, method: str, call: str, code: int) -> None:
    vfs = VinoVFS(kernel, alice)
    try:
        f = vfs.xOpen("/scratch", [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                                   | apsw.SQLITE_OPEN_MAIN_JOURNAL, 0])
        f.xWrite(b"j" * 10_000, 0)
        with inj.patch(kernel.fs, call, call):
            inj.arm(call, 1, persistent=True)
            with pytest.raises(apsw.IOError) as err:
                if method == "xDelete":
                    vfs.xDelete("/scratch", False)
                elif method == "xDelete(syncdir)":
                    vfs.xDelete("/scratch", True)
                elif method == "xAccess":
                    vfs.xAccess("/scratch", apsw.SQLITE_ACCESS_EXISTS)
                elif method == "xTruncate":
                    f.xTruncate(5000)
                elif method == "xSync":
                    f.xSync(apsw.SQLITE_SYNC_FULL)
                elif method == "xRead":
                    f.xRead(100, 0)
                else:  # more than is gathered: the pending bytes go to the kernel
                    f.xWrite(b"k" * WRITE_BUFFER_BYTES, 0)
            assert _code(err.value) == code, err.value
            assert isinstance(err.value.__cause__, InjectedFault)
            assert err.value.__cause__.errno == errno.EIO
        f.xClose()
    finally:
        vfs.close()


# ---- two vino processes on one database --------------------------------------------------

def test_two_vino_processes_can_never_both_hold_reserved(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as a, Session(kernel, alice, "app.db") as b:
        _fill(a.db)
        assert a.vfs.process.pid != b.vfs.process.pid
        a.db.execute("begin immediate")
        a.db.execute("update t set v = 'a' where id = 1")
        with pytest.raises(apsw.BusyError):
            b.db.execute("begin immediate")
        a.db.execute("commit")
        b.db.execute("begin immediate")  # the writer slot is free again
        b.db.execute("update t set v = 'b' where id = 2")
        b.db.execute("commit")
        assert _rows(a.db)[1:3] == [(1, "a"), (2, "b")]


def test_a_commit_in_one_process_waits_for_a_reader_in_another(kernel: Kernel,
                                                                 alice: User) -> None:
    with Session(kernel, alice, "app.db") as a, Session(kernel, alice, "app.db") as b:
        _fill(a.db)
        reader = b.db.execute("select id from t")
        next(reader)  # b holds SHARED
        a.db.execute("begin")
        a.db.execute("update t set v = 'new' where id = 0")
        with pytest.raises(apsw.BusyError):
            a.db.execute("commit")  # EXCLUSIVE: b still reads
        reader.close()
        a.db.execute("commit")
        assert b.db.execute("select v from t where id = 0").fetchall() == [("new",)]


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "no-pool"])
def test_a_page_kept_by_one_process_is_not_served_after_another_wrote_it(
        tmp_path: Path, pool: bool) -> None:
    # Strictly one after the other: a reads (its pool fills), b rewrites every row,
    # a reads and then inserts; the next process must find an intact database. The
    # kernel has frames enough that nothing of a's pool is evicted meanwhile.
    kernel = Kernel.boot(tmp_path / "big.img", nblocks=2048, frames=1024)
    alice = kernel.add_user("alice")
    try:
        _pooled_then_rewritten(kernel, alice, pool)
    finally:
        kernel.shutdown()


def _pooled_then_rewritten(kernel: Kernel, alice: User, pool: bool) -> None:
    with Session(kernel, alice, "app.db", buffer_pool=pool) as a:
        _fill(a.db)
        reader = a.connect()  # a fresh connection: its pages come through the pool
        assert len(_rows(reader)) == ROWS
        with Session(kernel, alice, "app.db", buffer_pool=pool) as b:
            with b.db:
                b.db.execute("update t set v = 'rewritten by b'")
            _fill(b.db, 500, start=ROWS)
        got = _rows(reader)
        a.vfs.check_invariants()
        assert len(got) == ROWS + 500 and got[0] == (0, "rewritten by b")
        _fill(reader, 10, start=ROWS + 500)
    with Session(kernel, alice, "app.db") as c:
        assert _ok(c.db) and len(_rows(c.db)) == ROWS + 510


def test_lost_update_is_impossible_between_processes_with_a_busy_timeout(
        kernel: Kernel, alice: User) -> None:
    # Two processes increment one counter 50 times each, from two threads, each
    # waiting on the other's lock (busy_timeout): every increment must count.
    with Session(kernel, alice, "app.db") as s:
        s.db.execute("create table c(n integer)")
        s.db.execute("insert into c values(0)")

    def increment() -> None:
        with Session(kernel, alice, "app.db", busy_timeout_ms=10_000) as s:
            for _ in range(50):
                s.db.execute("begin immediate")
                s.db.execute("update c set n = (select n from c) + 1")
                s.db.execute("commit")

    run_threads(increment, increment)
    with Session(kernel, alice, "app.db") as s:
        assert s.db.execute("select n from c").fetchall() == [(100,)]


_BOOT = ("import sys; from pathlib import Path; from vino.kernel.kernel import Kernel\n"
         "try:\n    Kernel.boot(Path(sys.argv[1]), fresh=False).shutdown()\n"
         "except Exception as exc:\n    print(type(exc).__name__); sys.exit(3)\n")


def test_a_second_os_process_cannot_boot_a_disk_image_in_use(kernel: Kernel,
                                                            alice: User) -> None:
    # Two OS processes on one image are not supported (each would mount it with its
    # own in-memory metadata): the kernel refuses, whichever process asks.
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
    image = kernel.device.path
    other = subprocess.run([sys.executable, "-c", _BOOT, str(image)], capture_output=True,
                           text=True, timeout=120, check=False)
    assert other.returncode == 3 and other.stdout.strip() == "ImageInUse", other
    with pytest.raises(ImageInUse):
        Kernel.boot(image, fresh=False)  # nor a second kernel of this process
    with pytest.raises(ImageInUse):
        Kernel.boot(image)  # and a fresh boot would have formatted it: refused first
    kernel.shutdown()
    again = subprocess.run([sys.executable, "-c", _BOOT, str(image)], capture_output=True,
                           text=True, timeout=120, check=False)
    assert again.returncode == 0, again


# ---- waiting ---------------------------------------------------------------------------

def test_busy_timeout_really_waits_for_the_writer_to_finish(kernel: Kernel,
                                                            alice: User) -> None:
    with Session(kernel, alice, "app.db") as a, \
            Session(kernel, alice, "app.db", busy_timeout_ms=2000) as b:
        _fill(a.db)
        a.db.execute("begin immediate")
        holding = 0.3

        def finish() -> None:
            time.sleep(holding)
            a.db.execute("commit")

        t = threading.Thread(target=finish)
        start = time.monotonic()
        t.start()
        b.db.execute("begin immediate")  # waits, then gets RESERVED
        waited = time.monotonic() - start
        b.db.execute("commit")
        t.join()
        assert waited >= holding * 0.9


def test_busy_timeout_gives_up_only_after_the_timeout(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as a, \
            Session(kernel, alice, "app.db", busy_timeout_ms=300) as b:
        _fill(a.db)
        a.db.execute("begin immediate")
        start = time.monotonic()
        with pytest.raises(apsw.BusyError):
            b.db.execute("begin immediate")
        assert time.monotonic() - start >= 0.25
        a.db.execute("rollback")


# ---- journals ---------------------------------------------------------------------------

def _image_copy(kernel: Kernel, tmp_path: Path) -> Kernel:
    """What a power cut now would leave: boot a kernel on a copy of the device image."""
    copy = tmp_path / "after-cut.img"
    shutil.copyfile(kernel.device.path, copy)
    return Kernel.boot(copy, fresh=False)


def test_synchronous_extra_makes_the_journal_delete_durable_before_commit_returns(
        kernel: Kernel, alice: User, tmp_path: Path) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        s.db.execute("pragma synchronous = extra")
        with s.db:
            s.db.execute("update t set v = 'committed' where id = 7")
        # A power cut right after COMMIT returned: the journal must already be gone
        # from the disk, or the next open would roll the commit back.
        k2 = _image_copy(kernel, tmp_path)
        try:
            assert "app.db-journal" not in k2.fs.listdir()
            with Session(k2, k2.add_user("alice"), "app.db") as s2:
                assert s2.db.execute("select v from t where id = 7").fetchall() == [
                    ("committed",)]
        finally:
            k2.shutdown()


class _RacingVFS(VinoVFS):
    """Another process deletes the hot journal right after SQLite saw it exist."""

    racing = False

    def xAccess(self, pathname: str, flags: int) -> bool:
        found = super().xAccess(pathname, flags)
        if self.racing and found and pathname.endswith("-journal"):
            self.racing = False
            self.kernel.fs.unlink(self.user, "app.db-journal")
        return found


def test_a_hot_journal_deleted_between_the_check_and_the_open_is_treated_as_gone(
        kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        before = _rows(s.db)
    kernel.fs.create(alice, "app.db-journal", 0o600)  # a journal that looks hot...
    with kernel.fs.open(alice, "app.db-journal", "rw") as f:
        kernel.fs.write(f, b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(4088))
    vfs = _RacingVFS(kernel, alice)
    try:
        db = apsw.Connection("app.db", vfs=vfs.vfs_name)
        vfs.racing = True  # ...and is deleted by its owner just after SQLite checked
        assert _rows(db) == before and _ok(db)
        assert not vfs.racing  # the race really happened
        db.close()
    finally:
        vfs.close()


# ---- cache defaults --------------------------------------------------------------------

def test_a_default_session_does_not_reread_pages_it_has_just_read(kernel: Kernel,
                                                                   alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        assert s.db.execute("pragma cache_size").fetchall() == [(SQLITE_CACHE_PAGES,)]
        assert SQLITE_CACHE_PAGES >= 500  # at least SQLite's own default (2 MiB)
        _fill(s.db, 5 * ROWS)
        _rows(s.db)
        reads = s.vfs.stats.reads
        for _ in range(3):
            assert len(_rows(s.db)) == 5 * ROWS
        assert s.vfs.stats.reads - reads <= 3 * 2  # the header check per transaction


# ---- gathered writes ---------------------------------------------------------------------

def test_a_gathered_write_the_kernel_refused_is_kept_and_retried_not_lost(
        kernel: Kernel, alice: User, inj: Injector) -> None:
    vfs = VinoVFS(kernel, alice)
    try:
        f = vfs.xOpen("/j", [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                             | apsw.SQLITE_OPEN_MAIN_JOURNAL, 0])
        pieces = [b"\0\0\0\7", bytes(range(256)) * 16, b"\1\2\3\4"]  # a journal record
        at = 0
        for p in pieces:
            f.xWrite(p, at)
            at += len(p)
        assert f.xFileSize() == at  # SQLite sees its writes at once
        with inj.patch(kernel.fs, "pwritev", "fs.pwritev"):
            inj.arm("fs.pwritev", 1, persistent=True)
            with pytest.raises(apsw.IOError) as err:
                f.xSync(apsw.SQLITE_SYNC_FULL)
            assert _code(err.value) == apsw.SQLITE_IOERR_FSYNC
            inj.disarm()
        assert f.xRead(at, 0) == b"".join(pieces)  # kept, then written by the retry
        f.xSync(apsw.SQLITE_SYNC_FULL)
        assert kernel.fs.stat("j").size == at
        f.xClose()
    finally:
        vfs.close()


def test_scattered_gathered_writes_failing_midway_keep_their_order_and_lose_nothing(
        kernel: Kernel, alice: User, inj: Injector) -> None:
    # A commit's pages are gathered as runs at scattered offsets and given to the kernel
    # in one call. The device fails at the second run: the first is in the file, the
    # rest stay pending; a later write over an earlier one must still win.
    vfs = VinoVFS(kernel, alice)
    try:
        f = vfs.xOpen("/d", [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                             | apsw.SQLITE_OPEN_MAIN_DB, 0])
        f.xWrite(bytes(5 * 4096), 0)
        f.xSync(apsw.SQLITE_SYNC_FULL)
        f.xWrite(b"A" * 4096, 0)
        f.xWrite(b"B" * 4096, 3 * 4096)
        f.xWrite(b"C" * 100, 50)  # over A: written later, must stay on top
        f.xWrite(b"D" * 4096, 6 * 4096)  # past the end
        assert f.xFileSize() == 7 * 4096
        assert kernel.fs.stat("d").size == 5 * 4096  # all still gathered
        with inj.patch(kernel.fs, "_write", "fs.write"):
            inj.arm("fs.write", 2)  # the second run fails once
            with pytest.raises(apsw.IOError) as err:
                f.xSync(apsw.SQLITE_SYNC_FULL)
            assert _code(err.value) == apsw.SQLITE_IOERR_FSYNC
        assert kernel.fs.stat("d").size == 5 * 4096
        want = (b"A" * 50 + b"C" * 100 + b"A" * 3946 + bytes(2 * 4096) + b"B" * 4096
                + bytes(4096 + 4096) + b"D" * 4096)
        assert f.xFileSize() == len(want)
        assert f.xRead(len(want), 0) == want  # the rest went in by the read, in order
        f.xSync(apsw.SQLITE_SYNC_FULL)
        with kernel.fs.open(alice, "d", "r") as raw:
            assert kernel.fs.read(raw, len(want) + 1) == want
        vfs.check_invariants()
        f.xClose()
    finally:
        vfs.close()
