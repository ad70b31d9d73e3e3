"""Real SQLite through the VFS: every file is a vino kernel file of the session's user.

Each test attacks one VFS method the way SQLite (or a careless caller) uses it:
short reads, truncation, sync, delete, access, long paths, two connections
fighting over a lock, a user without rights.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from vino.errors import VinoError
from vino.kernel import plainread
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sqlite.names import kernel_name
from vino.sqlite.session import JournalModeRefused, Session, configure
from vino.sqlite.vfs import FilesStillOpen, VinoVFS
from vino.sqlite.vfsfile import VinoFile

from .conftest import TEST_BLOCKS

ROWS = 2000


def _fill(db: apsw.Connection, rows: int = ROWS, start: int = 0) -> None:
    db.execute("create table if not exists t(id integer primary key, v text)")
    with db:
        db.executemany("insert into t values(?, ?)",
                       ((i, f"value {i:06d}") for i in range(start, start + rows)))


def _intact(db: apsw.Connection, rows: int = ROWS) -> bool:
    got = db.execute("select id, v from t order by id").fetchall()
    return (db.execute("pragma integrity_check").fetchall() == [("ok",)]
            and got == [(i, f"value {i:06d}") for i in range(rows)])


def test_sqlite_files_are_kernel_files_of_its_user(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        assert _intact(s.db)
        st = kernel.fs.stat("app.db")
        assert st.uid == alice.uid and st.mode == 0o600
        assert s.db.execute("pragma page_count").fetchall() == [(st.size // 4096,)]
        assert s.vfs.stats.reads > 0 and s.vfs.stats.writes > 0
        assert kernel.device.stats.writes > 0  # the commit reached the device model
        s.vfs.check_invariants()
    kernel.check_invariants()


def test_a_long_path_and_its_journal_map_to_distinct_safe_names(kernel: Kernel,
                                                              alice: User) -> None:
    path = "/srv/data/" + "very-long-directory-name/" * 4 + "inventory.db"
    with Session(kernel, alice, path) as s:
        _fill(s.db)
        kf = s.vfs.file(path)
        assert kf is not None and kf.name == kernel_name(path) and len(kf.name) <= 60
        assert kernel.fs.listdir() == [kf.name]  # DELETE mode: the journal is gone again
        assert s.vfs.stats.deletes >= 1
        assert _intact(s.db)


def test_the_database_reads_back_after_unmount_and_remount(kernel: Kernel,
                                                          alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
    image = kernel.device.path
    kernel.shutdown()
    k2 = Kernel.boot(image, fresh=False)
    try:
        with Session(k2, k2.add_user("alice"), "app.db") as s:
            assert _intact(s.db)
    finally:
        k2.shutdown()


def test_a_read_past_the_end_is_short_zero_filled(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db, 10)
        size = kernel.fs.stat("app.db").size
        # apsw's Connection.read calls our xRead through SQLite's file pointer.
        complete, data = s.db.read("main", 0, size - 100, 1000)
        assert not complete and len(data) == 1000  # SQLITE_IOERR_SHORT_READ
        assert data[100:] == bytes(900)  # zero-filled beyond the end
        complete, data = s.db.read("main", 0, 0, 100)
        assert complete and data.startswith(b"SQLite format 3\0")
        assert s.vfs.stats.short_reads >= 1


def test_truncate_cuts_keeps_the_prefix_and_grows_with_a_hole(kernel: Kernel,
                                                              alice: User) -> None:
    vfs = VinoVFS(kernel, alice)
    try:
        flags = [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                 | apsw.SQLITE_OPEN_MAIN_JOURNAL, 0]
        f = vfs.xOpen("/scratch", flags)
        data = bytes(range(256)) * 48  # 3 blocks
        f.xWrite(data, 0)
        f.xTruncate(5000)
        assert f.xFileSize() == 5000 and f.xRead(6000, 0) == data[:5000]
        f.xTruncate(9000)
        assert f.xFileSize() == 9000 and f.xRead(9000, 0) == data[:5000] + bytes(4000)
        f.xTruncate(0)
        assert f.xFileSize() == 0 and f.xRead(10, 0) == b""
        assert vfs.stats.truncates == 3
        f.xClose()
    finally:
        vfs.close()
    kernel.check_invariants()


def test_vacuum_shrinks_the_database_through_truncate(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db, 5 * ROWS)
        big = kernel.fs.stat("app.db").size
        with s.db:
            s.db.execute("delete from t where id >= ?", (ROWS,))
        s.db.execute("vacuum")
        assert kernel.fs.stat("app.db").size < big
        assert s.vfs.stats.truncates >= 1
        assert _intact(s.db)
        s.vfs.check_invariants()  # no pool page beyond the new end survives
    kernel.check_invariants()


@pytest.mark.parametrize("mode", ["delete", "truncate", "persist"])
def test_each_rollback_journal_mode_commits_and_rolls_back(kernel: Kernel, alice: User,
                                                           mode: str) -> None:
    with Session(kernel, alice, "app.db", journal_mode=mode) as s:
        _fill(s.db)
        with pytest.raises(RuntimeError), s.db:
            s.db.execute("update t set v = 'gone'")
            _fill(s.db, ROWS, start=ROWS)  # grows the file inside the transaction
            raise RuntimeError("roll back")
        assert _intact(s.db)
        journal = "app.db-journal"
        assert (journal in kernel.fs.listdir()) == (mode != "delete")


def test_a_rollback_after_sqlite_spilled_pages_restores_the_file(kernel: Kernel,
                                                                  alice: User) -> None:
    # A 16-page SQLite cache spills dirty pages into the database file mid-transaction;
    # the rollback must then copy the journal back and truncate the grown file.
    with Session(kernel, alice, "app.db", cache_pages=16) as s:
        _fill(s.db)
        size = kernel.fs.stat("app.db").size
        with pytest.raises(RuntimeError), s.db:
            _fill(s.db, 5 * ROWS, start=ROWS)
            s.vfs.flush()
            assert kernel.fs.stat("app.db").size > size  # spilled
            raise RuntimeError("roll back")
        assert kernel.fs.stat("app.db").size == size
        assert _intact(s.db)
        s.vfs.check_invariants()


def test_sync_writes_the_commit_to_the_device_image(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db, 10)
        syncs = s.vfs.stats.syncs
        with s.db:
            s.db.execute("insert into t values(424242, 'committed and synced')")
        assert s.vfs.stats.syncs > syncs
        kernel.device.flush()
        assert b"committed and synced" in kernel.device.path.read_bytes()


def test_delete_and_access_follow_the_unix_vfs(kernel: Kernel, alice: User) -> None:
    vfs = VinoVFS(kernel, alice)
    try:
        with pytest.raises(apsw.IOError) as err:
            vfs.xDelete("/missing", False)
        assert getattr(err.value, "extendedresult", None) == apsw.SQLITE_IOERR_DELETE_NOENT
        kernel.fs.create(alice, "empty", 0o600)
        assert not vfs.xAccess("/empty", apsw.SQLITE_ACCESS_EXISTS)  # empty = no journal
        assert vfs.xAccess("/empty", apsw.SQLITE_ACCESS_READWRITE)
        bob_vfs = VinoVFS(kernel, kernel.add_user("bob"))
        assert not bob_vfs.xAccess("/empty", apsw.SQLITE_ACCESS_READ)
        bob_vfs.close()
        vfs.xDelete("/empty", False)
        assert "empty" not in kernel.fs.listdir()
    finally:
        vfs.close()


def test_a_name_made_by_another_process_between_two_access_checks_is_seen(
        kernel: Kernel, alice: User) -> None:
    a, b = VinoVFS(kernel, alice), VinoVFS(kernel, alice)
    exists = apsw.SQLITE_ACCESS_EXISTS
    try:
        assert not a.xAccess("/x-journal", exists)
        kept = a.stats.access_kept
        assert not a.xAccess("/x-journal", exists)  # nothing changed: not asked again
        assert a.stats.access_kept == kept + 1
        f = b.xOpen("/x-journal", [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                                   | apsw.SQLITE_OPEN_MAIN_JOURNAL, 0])
        f.xWrite(b"j" * 512, 0)
        f.xSync(apsw.SQLITE_SYNC_FULL)
        assert a.xAccess("/x-journal", exists)  # created by another process: seen
        f.xClose()
        b.xDelete("/x-journal", False)
        assert not a.xAccess("/x-journal", exists)  # deleted: gone
        kernel.fs.create(alice, "elsewhere", 0o600)
        with kernel.fs.open(alice, "elsewhere", "rw") as of:
            kernel.fs.write(of, b"hot journal")
        assert not a.xAccess("/x-journal", exists)
        kernel.fs.rename(alice, "elsewhere", "x-journal")  # renamed into the name: seen
        assert a.xAccess("/x-journal", exists)
        kernel.fs.unlink(alice, "x-journal")
        assert not a.xAccess("/x-journal", exists)
        kernel.fs.unmount()  # no file system: an I/O error, not a remembered answer
        with pytest.raises(apsw.IOError):
            a.xAccess("/x-journal", exists)
    finally:
        a.close()
        b.close()


def test_another_user_cannot_open_the_database(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db, 10)
    bob = kernel.add_user("bob")
    with pytest.raises(apsw.CantOpenError):
        Session(kernel, bob, "app.db")
    assert kernel.fs.stat("app.db").uid == alice.uid


def test_a_second_writer_is_refused_while_readers_go_on(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        other, third = s.connect(), s.connect()
        s.db.execute("begin immediate")  # RESERVED
        s.db.execute("update t set v = 'new' where id = 0")
        with pytest.raises(apsw.BusyError):
            other.execute("begin immediate")  # a second writer
        assert third.execute("select v from t where id = 0").fetchall() == [("value 000000",)]
        s.db.execute("rollback")
        other.execute("begin immediate")  # the writer slot is free again
        other.execute("rollback")
        s.vfs.check_invariants()


def test_commit_waits_for_the_reader_and_then_succeeds(kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "app.db") as s:
        _fill(s.db)
        other = s.connect()
        reader = other.execute("select id from t")
        next(reader)
        s.db.execute("begin")
        s.db.execute("update t set v = 'new' where id = 0")
        with pytest.raises(apsw.BusyError):
            s.db.execute("commit")  # EXCLUSIVE refused: a reader holds SHARED
        assert s.vfs.stats.busy >= 1
        reader.close()  # the reader finishes and drops SHARED
        s.db.execute("commit")
        assert other.execute("select v from t where id = 0").fetchall() == [("new",)]
        s.vfs.check_invariants()


def test_a_failing_open_hook_fails_the_open_and_leaks_nothing(kernel: Kernel,
                                                             alice: User) -> None:
    def refuse(kf: object) -> None:
        raise RuntimeError("no grafts for you")

    vfs = VinoVFS(kernel, alice, on_open=refuse)
    try:
        with pytest.raises(apsw.CantOpenError):
            apsw.Connection("app.db", vfs=vfs.vfs_name).execute("create table t(x)")
        assert vfs.files() == []
    finally:
        vfs.close()
    kernel.check_invariants()  # no open file left behind in the kernel


def test_closing_the_vfs_under_an_open_connection_is_refused_and_changes_nothing(
        kernel: Kernel, alice: User) -> None:
    vfs = VinoVFS(kernel, alice)
    db = apsw.Connection("app.db", vfs=vfs.vfs_name)
    _fill(db)
    with pytest.raises(FilesStillOpen, match=r"files still open: app\.db") as caught:
        vfs.close()
    assert isinstance(caught.value, VinoError)
    assert vfs.vfs_name in apsw.vfs_names()  # still registered: SQLite can still call it
    assert [kf.name for kf in vfs.files()] == ["app.db"]
    _fill(db, 10, start=ROWS)  # the connection goes on working through it
    assert _intact(db, ROWS + 10)
    vfs.check_invariants()
    db.close()
    vfs.close()
    assert vfs.vfs_name not in apsw.vfs_names()
    kernel.check_invariants()


def test_a_journal_mode_sqlite_will_not_take_is_refused_as_a_vino_error() -> None:
    db = apsw.Connection(":memory:")  # an in-memory database keeps journal mode memory
    with pytest.raises(JournalModeRefused, match=r"'delete'.*\('memory',\)") as caught:
        configure(db, cache_pages=17)
    assert isinstance(caught.value, VinoError)
    assert db.execute("pragma journal_mode").fetchall() == [("memory",)]
    assert db.execute("pragma cache_size").fetchall() == [(17,)]  # set before the refusal


def test_pages_one_process_reads_plainly_are_fresh_after_another_process_wrote_them(
        kernel: Kernel, alice: User) -> None:
    # A fresh connection reads every page through the kernel, where the cached blocks
    # are served on the plain path (fspolicy.py); after b rewrote some, SQLite sees the
    # change counter moved and reads again: the plain path must hand it b's pages.
    stats = kernel.fs.stats
    with Session(kernel, alice, "app.db") as a:
        _fill(a.db)
        reader = a.connect()
        before = stats.plain_reads
        assert _intact(reader)
        assert stats.plain_reads > before + 10
        with Session(kernel, alice, "app.db") as b, b.db:
            b.db.execute("update t set v = 'b was here' where id % 7 = 0")
        before = stats.plain_reads
        got = reader.execute("select id, v from t order by id").fetchall()
        assert stats.plain_reads > before + 10
        assert got == [(i, "b was here" if i % 7 == 0 else f"value {i:06d}")
                       for i in range(ROWS)]


def _reads(image: Path, cache_pages: int) -> dict[str, object]:
    """Reads of every kind through SQLite (cached pages, misses, the header, a pooled
    file's, after another process's write) on a fresh kernel; what they can measure."""
    k = Kernel.boot(image, nblocks=TEST_BLOCKS, frames=48)  # smaller than the database
    try:
        alice = k.add_user("alice")
        got: list[object] = []
        served = plainread.served()
        with Session(k, alice, "app.db", cache_pages=cache_pages) as a:
            _fill(a.db)
            _fill(a.db, start=ROWS)
            reader = a.connect()
            for q in ("select count(*), sum(length(v)) from t", "select v from t where id = 77",
                      "select id from t where id % 97 = 0 order by id desc",
                      "select count(*) from t where v > 'value 003'"):
                got += [reader.execute(q).fetchall(), reader.execute(q).fetchall()]
            with Session(k, alice, "app.db") as b, b.db:
                b.db.execute("update t set v = 'b' where id % 5 = 0")
            got.append(reader.execute("select sum(length(v)) from t").fetchall())
            vfs = a.vfs.stats.snapshot()
        return {"answers": got, "vfs": vfs, "fs": k.fs.stats.snapshot(),
                "cache": k.cache.stats.snapshot(), "device": k.device.stats.snapshot(),
                "native": plainread.served() - served}
    finally:
        k.shutdown()


@pytest.mark.parametrize("cache_pages", [2000, 10])
def test_the_native_xread_reads_what_the_python_one_reads_and_counts_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_pages: int) -> None:
    # SQLite's page read in C (plainread.py) against VinoFile._xread and the Python plain
    # path, on the same reads: the same answers, the same VFS, file-system, cache and
    # device counts. A tiny SQLite cache makes SQLite read its pages again and again.
    if plainread.native() is None:
        pytest.skip(f"no native plain read here: {plainread.PART.reason}")
    native = _reads(tmp_path / "native.img", cache_pages)
    with monkeypatch.context() as m:
        m.setattr(plainread, "reader", lambda *kinds: None)
        m.setattr(VinoFile, "xRead", VinoFile._xread)
        python = _reads(tmp_path / "python.img", cache_pages)
    assert python.pop("native") == 0
    served = native.pop("native")
    assert isinstance(served, int) and served > 20
    assert native == python
