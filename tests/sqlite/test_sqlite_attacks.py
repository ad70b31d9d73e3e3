"""Attacks by a careless user on SQLite on vino: WAL asked of a VFS without shared
memory, a database left in WAL mode by a crash, two processes with a power cut between."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import apsw
import pytest

from vino.kernel.crash import CrashModel, CrashPlan
from vino.kernel.kernel import Kernel
from vino.sqlite.session import Session
from vino.sqlite.vfsfile import VinoFile


def test_journal_mode_wal_is_refused_clearly_even_with_exclusive_locking(
        tmp_path: Path) -> None:
    image = tmp_path / "wal.img"
    k = Kernel.boot(image, nblocks=1024, frames=64)
    try:
        u = k.add_user("carol")
        with Session(k, u, "w.db") as s:
            s.db.execute("create table t(a)")
            s.db.execute("pragma locking_mode = exclusive")
            for how in ("wal", "WAL", "'wal'"):
                with pytest.raises(apsw.SQLError, match="WAL needs shared memory"):
                    s.db.execute(f"pragma journal_mode = {how}")
            with pytest.raises(apsw.SQLError, match="WAL needs shared memory"):
                s.db.execute("pragma main.journal_mode = wal")
            with s.db:
                s.db.execute("insert into t values (1)")
            assert s.db.execute("pragma journal_mode").fetchall() == [("delete",)]
        with Session(k, u, "w.db") as s:  # before, "unable to open database file"
            assert s.db.execute("select a from t").fetchall() == [(1,)]
            assert s.db.execute("pragma integrity_check").fetchall() == [("ok",)]
        assert "w.db-wal" not in k.fs.listdir()
    finally:
        k.shutdown()


def test_a_database_left_in_wal_mode_by_a_power_cut_opens_with_every_committed_row(
        tmp_path: Path) -> None:
    image = tmp_path / "wal.img"
    k = Kernel.boot(image, nblocks=1024, frames=64)
    u = k.add_user("carol")
    s = Session(k, u, "w.db")
    # as a database made in WAL mode elsewhere: the refusal lifted for this test
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VinoFile, "xFileControl", lambda self, op, ptr: False)
        s.db.execute("pragma locking_mode = exclusive")
        assert s.db.execute("pragma journal_mode = wal").fetchall() == [("wal",)]
    s.db.execute("pragma locking_mode = exclusive")
    s.db.execute("pragma synchronous = full")
    s.db.execute("create table t(a)")
    for i in range(20):
        with s.db:
            s.db.execute("insert into t values (?)", (i,))
    assert "w.db-wal" in k.fs.listdir()  # the rows are in the WAL, not checkpointed
    k.device.arm_crash(CrashPlan(1))
    with contextlib.suppress(apsw.Error, OSError), s.db:
        s.db.execute("insert into t values (99)")
    s.abandon()
    with contextlib.suppress(Exception):
        k.registry.close()
    k.device.close()
    k.release_image()
    k = Kernel.boot(image, fresh=False, frames=64)
    try:
        with Session(k, k.add_user("carol"), "w.db") as s:
            assert s.db.execute("select a from t order by a").fetchall() == [
                (i,) for i in range(20)]
            assert s.db.execute("pragma integrity_check").fetchall() == [("ok",)]
            assert s.db.execute("pragma journal_mode").fetchall() == [("delete",)]
        assert "w.db-wal" not in k.fs.listdir()
    finally:
        k.shutdown()


def _abandon(k: Kernel, sessions: list[Session]) -> None:
    for s in sessions:
        s.abandon()
    with contextlib.suppress(Exception):
        k.registry.close()
    k.device.close()
    k.release_image()


def _two_writers(image: Path, plan: CrashPlan | None) -> tuple[list[int], int]:
    """Two processes (a VFS each) on one database commit in turn, synchronous EXTRA;
    the power goes at ``plan``. Returns the rows whose COMMIT returned, and the writes."""
    k = Kernel.boot(image, fresh=False, frames=64)
    committed: list[int] = []
    sessions: list[Session] = []
    try:
        if plan is not None:
            k.device.arm_crash(plan)
        user = k.add_user("p0")  # two processes of one user: a VFS each
        sessions = [Session(k, user, "two.db", busy_timeout_ms=2000) for _ in range(2)]
        for s in sessions:
            s.db.execute("pragma synchronous = extra")
        for i in range(12):
            db = sessions[i % 2].db
            with db:
                db.execute("insert into t values (?, ?)", (i, bytes(900 + i)))
            committed.append(i)
    except (apsw.Error, OSError):
        pass
    writes = k.device.crash_writes
    if k.device.power_lost:
        _abandon(k, sessions)
    else:
        for s in sessions:
            s.close()
        k.shutdown()
    return committed, writes


@pytest.mark.parametrize("model", list(CrashModel))
def test_two_processes_committing_in_turn_lose_no_committed_row_at_a_power_cut(
        tmp_path: Path, model: CrashModel) -> None:
    start, image = tmp_path / "start.img", tmp_path / "two.img"
    k = Kernel.boot(start, nblocks=1024, frames=64)
    with Session(k, k.add_user("p0"), "two.db") as s:
        s.db.execute("create table t(id integer primary key, p blob)")
    k.shutdown()
    shutil.copyfile(start, image)
    _, writes = _two_writers(image, CrashPlan(1 << 62))
    assert writes > 40
    for n in range(1, writes + 1, 3):
        shutil.copyfile(start, image)
        committed, _ = _two_writers(image, CrashPlan(n, model, n))
        k = Kernel.boot(image, fresh=False, frames=64)
        try:
            k.check_invariants()
            with Session(k, k.add_user("p0"), "two.db") as s:
                assert s.db.execute("pragma integrity_check").fetchall() == [("ok",)]
                rows = [i for (i,) in s.db.execute("select id from t order by id")]
        finally:
            k.shutdown()
        assert rows[:len(committed)] == committed and len(rows) <= len(committed) + 1, (
            f"cut at write {n} ({model}): rows {rows}, COMMITs returned {committed}")
