"""Attacks on durability: power cuts at every write, torn logs, failing commits, reused blocks."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from vino import crashloop
from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.crash import CrashModel, crash_points
from vino.kernel.device import BlockDevice
from vino.kernel.errors import DeviceError
from vino.kernel.fs import NDIRECT, NPTR, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.journal import read_log
from vino.kernel.proc import User
from vino.testing.faults import Injector

MakeDevice = Callable[..., BlockDevice]
BS = params.BLOCK_SIZE


def _write(fs: FileSystem, user: User, name: str, data: bytes) -> None:
    if name not in fs.listdir():
        fs.create(user, name)
    with fs.open(user, name, "w") as f:
        fs.write(f, data)


def _read(fs: FileSystem, user: User, name: str) -> bytes:
    with fs.open(user, name, "r") as f:
        return fs.read(f, fs.stat(name).size)


def _power_cut(dev: BlockDevice, sim_clock: SimClock) -> FileSystem:
    """Forget everything in memory (no unmount, no write-back) and mount the image again."""
    return FileSystem.mount(dev, Cache(32), sim_clock)


# ---- the crash loop ------------------------------------------------------------------------


def test_a_power_cut_at_any_write_of_a_busy_workload_loses_nothing_synced(
        tmp_path: Path) -> None:
    figures = crashloop.run(tmp_path, stride=1, seeds=1, workload_seed=11)
    assert figures.failures == [], "\n".join(figures.failures[:10])
    assert figures.writes >= 30  # the workload really has that many crash points
    for model in CrashModel:
        assert figures.tried[model.value] == figures.writes
        assert figures.survived[model.value] == figures.writes


@pytest.mark.slow
@pytest.mark.parametrize("workload_seed", range(1, 9))
def test_the_full_crash_loop_over_many_workloads_and_seeds(
        tmp_path: Path, workload_seed: int) -> None:
    figures = crashloop.run(tmp_path, stride=1, seeds=4, workload_seed=workload_seed,
                            nops=96)
    assert figures.failures == [], "\n".join(figures.failures[:10])


def test_the_crash_loop_catches_a_journal_without_its_barrier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop is not vacuous: commit without the flush before the log write (so the
    previous install may be lost while the log is overwritten) and it finds damage."""
    from vino.kernel import journal

    real = journal.Journal.commit

    def commit_without_barrier(self: journal.Journal) -> bool:
        flush = self.device.flush
        calls = [0]

        def skip_first() -> None:
            calls[0] += 1
            if calls[0] != 1:
                flush()

        self.device.flush = skip_first  # type: ignore[method-assign]
        try:
            return real(self)
        finally:
            del self.device.flush

    monkeypatch.setattr(journal.Journal, "commit", commit_without_barrier)
    figures = crashloop.run(tmp_path, [CrashModel.LOST], stride=1, workload_seed=11)
    assert figures.failures


def test_the_crash_loop_catches_metadata_committed_before_its_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vino.kernel.cache import Cache as RealCache

    monkeypatch.setattr(RealCache, "sync", lambda self, dev=None: 0)  # no ordered data
    figures = crashloop.run(tmp_path, [CrashModel.CUT], stride=1, workload_seed=11)
    assert figures.failures


# ---- the rules one by one ---------------------------------------------------------------------


def test_a_block_freed_by_a_transaction_is_not_reused_before_it_commits(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, tmp_path: Path) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    _write(fs, alice, "old", b"O" * BS)
    fs.sync()
    freed = fs._bmap(fs.inode(fs.stat("old").inum), 0)
    with fs.open(alice, "old", "rw") as f:
        fs.truncate(f, 0)  # frees `freed` in the running transaction
    fs._alloc_hint = freed  # the allocator would take it next if it could
    _write(fs, alice, "new", b"N" * BS)
    assert fs._bmap(fs.inode(fs.stat("new").inum), 0) != freed
    fs.check_invariants()
    fs.unmount()
    # Again across a power cut at every write of the next commit: the truncate of "old"
    # and the write that could reuse its block share one transaction.
    base = tmp_path / "base.img"
    shutil.copyfile(tmp_path / "disk.img", base)

    def truncate_then_reuse(d: BlockDevice) -> None:
        fs3 = FileSystem.mount(d, Cache(32), SimClock())
        block = fs3._bmap(fs3.inode(fs3.stat("old").inum), 0)
        with fs3.open(alice, "old", "rw") as f:
            fs3.truncate(f, 0)
        fs3._alloc_hint = block
        _write(fs3, alice, "reuser", b"R" * 3 * BS)
        fs3.sync()
        fs3.unmount()

    scratch = tmp_path / "scratch.img"
    for point in crash_points(base, scratch, truncate_then_reuse):
        assert point.lost
        assert check_image(scratch).clean
        with BlockDevice.open(scratch, durable=False) as d:
            fs4 = FileSystem.mount(d, Cache(32), SimClock())
            assert _read(fs4, alice, "old") in (b"O" * BS, b"")  # never another file's data


def test_mount_replays_a_committed_transaction_and_ignores_a_torn_log(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    _write(fs, alice, "a", b"first")
    fs.sync()
    geo = fs.geo
    logged = read_log(dev, geo.log_start, geo.log_blocks)
    assert logged is not None and geo.inode_start in logged.blocks
    # the home copies never made it (lost writes after the commit): replay installs them
    for b in logged.blocks:
        if b != 0:
            dev.write_block(b, bytes(BS))
    fs2 = _power_cut(dev, sim_clock)
    assert _read(fs2, alice, "a") == b"first"
    fs2.check_invariants()
    # a log whose copy does not match its checksum is a transaction that never committed
    _write(fs2, alice, "b", b"second")
    fs2.sync()
    home_before = dev.read_block(geo.inode_start)
    copy = bytearray(dev.read_block(geo.log_start + 1))
    copy[100] ^= 0xFF
    dev.write_block(geo.log_start + 1, copy)
    assert read_log(dev, geo.log_start, geo.log_blocks) is None
    fs3 = _power_cut(dev, sim_clock)
    assert dev.read_block(geo.inode_start) == home_before  # nothing replayed
    assert fs3.listdir() == ["a", "b"]


def test_an_operation_not_synced_is_all_or_nothing_and_a_synced_one_stays(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(8), sim_clock)
    _write(fs, alice, "kept", os.urandom(5 * BS))
    fs.sync_dir()
    fs.unlink(alice, "kept")
    _write(fs, alice, "fresh", b"z" * 10 * BS)
    fs.cache.sync(dev)  # data and evictions reach the disk; no commit
    fs2 = _power_cut(dev, sim_clock)
    assert fs2.listdir() == ["kept"] and fs2.stat("kept").size == 5 * BS
    fs2.unlink(alice, "kept")
    fs2.sync_dir()
    fs3 = _power_cut(dev, sim_clock)
    assert fs3.listdir() == []
    fs3.check_invariants()


@pytest.mark.parametrize("nth", [1, 2, 3])  # the data, the log, the install
def test_a_failing_commit_keeps_the_image_at_the_last_commit_and_commits_later(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, nth: int) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    _write(fs, alice, "safe", b"committed")
    fs.sync()
    _write(fs, alice, "later", b"committed by the retry")
    inj = Injector()
    inj.on_exc("write", lambda site, n: DeviceError(errno.EIO, "write", -1, "disk.img"))
    with inj.patch(dev, "write_blocks", "write"):
        inj.arm("write", nth, persistent=True)
        with pytest.raises(DeviceError):
            fs.sync()
        assert inj.fired["write"]
        inj.disarm()  # the device is well again
        if nth < 3:  # the commit did not happen: the image has only "safe"
            cut = _power_cut(dev, sim_clock)
            assert cut.listdir() == ["safe"] and _read(cut, alice, "safe") == b"committed"
            cut.check_invariants()
        fs.check_invariants()  # in memory nothing was lost
        assert _read(fs, alice, "later") == b"committed by the retry"
    fs.sync()  # the same transaction commits
    fs2 = _power_cut(dev, sim_clock)
    assert fs2.listdir() == ["later", "safe"]
    assert _read(fs2, alice, "later") == b"committed by the retry"
    fs2.check_invariants()
    assert check_image(dev.path).clean


def test_an_unmount_that_fails_leaves_the_last_commit(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    _write(fs, alice, "safe", b"committed")
    fs.sync()
    _write(fs, alice, "lost", b"x")
    inj = Injector()
    with inj.patch(dev, "write_blocks", "write"):
        inj.arm("write", 1, persistent=True)
        with pytest.raises(OSError):
            fs.unmount()
    assert not fs.mounted
    fs2 = FileSystem.mount(dev, Cache(32), sim_clock)  # never unmountable
    assert fs2.listdir() == ["safe"]
    fs2.check_invariants()


def test_writes_that_outgrow_the_log_commit_in_steps_and_stay_consistent(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(4096)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(16), sim_clock)
    fs.create(alice, "sparse")
    room = fs.journal.capacity
    with fs.open(alice, "sparse", "rw") as f:
        for i in range(room + 10):  # each block needs an indirect block of its own
            fs.seek(f, (NDIRECT + NPTR + i * NPTR) * BS)
            fs.write(f, bytes([i % 251 + 1]) * BS)
            assert len(fs.journal.tx) <= room
    assert fs.journal.commits >= 1
    fs.check_invariants()
    fs2 = _power_cut(dev, sim_clock)  # what committed is consistent; the rest is gone
    assert check_image(dev.path).clean
    fs2.check_invariants()


# ---- rename and truncate ------------------------------------------------------------------


def test_rename_replaces_the_target_atomically_and_the_open_victim_lives_on(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User) -> None:
    dev = make_device(256)
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    _write(fs, alice, "new.tmp", b"new contents")
    _write(fs, alice, "data", b"old contents")
    victim = fs.open(alice, "data", "r")
    with pytest.raises(PermissionError):
        fs.rename(bob, "new.tmp", "data")
    fs.rename(alice, "new.tmp", "data")
    assert fs.listdir() == ["data"] and _read(fs, alice, "data") == b"new contents"
    assert fs.read(victim, 100) == b"old contents"
    fs.check_invariants()
    fs.sync()
    fs2 = _power_cut(dev, sim_clock)  # the victim was open: mount frees it
    assert fs2.listdir() == ["data"] and _read(fs2, alice, "data") == b"new contents"
    fs2.check_invariants()
    assert check_image(dev.path).clean


def test_truncate_frees_the_tail_and_growing_again_never_shows_old_bytes(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev = make_device(5120)  # the file is within alice's disk quota
    FileSystem.format(dev)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    data = os.urandom(1200 * BS + 77)  # direct, single and double indirect blocks
    _write(fs, alice, "t", data)
    free = fs.free_blocks
    with fs.open(alice, "t", "rw") as f:
        fs.truncate(f, 10 * BS + 5)
        assert fs.free_blocks > free + 1180  # the data blocks and the indirect blocks
        fs.check_invariants()
        fs.truncate(f, 12 * BS)  # grows: bytes past the old end read as zeros
        fs.seek(f, 0)
        assert fs.read(f, 20 * BS) == data[:10 * BS + 5] + bytes(2 * BS - 5)
        fs.truncate(f, 3)
        fs.seek(f, 100)
        fs.write(f, b"!")
        fs.seek(f, 0)
        assert fs.read(f, 200) == data[:3] + bytes(97) + b"!"
    fs.check_invariants()
    fs.unmount()
    assert check_image(dev.path).clean


def test_vino_crashloop_reports_every_model_and_exits_0_when_nothing_was_lost(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vino.cli import main

    real = crashloop.run
    monkeypatch.setattr(crashloop, "run", lambda *a, **kw: real(*a, **{**kw, "nops": 12}))
    assert main(["crashloop", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "workload 5: 12 operations" in out
    assert all(f"{m.value} " in out for m in CrashModel) and "LOST" not in out


def test_a_write_after_an_uncommitted_truncate_never_zeroes_committed_bytes(
        tmp_path: Path, alice: User) -> None:
    """Found by the crash loop: truncate to the middle of a block, write into that block,
    and a cut before the commit must still show the committed file whole."""
    old = os.urandom(5 * BS)
    base = tmp_path / "base.img"
    with BlockDevice.create(base, 256, durable=False) as d:
        FileSystem.format(d)
        fs = FileSystem.mount(d, Cache(8), SimClock())
        _write(fs, alice, "f", old)
        fs.unmount()

    def shrink_then_write(d: BlockDevice) -> None:
        fs = FileSystem.mount(d, Cache(8), SimClock())
        with fs.open(alice, "f", "rw") as f:
            fs.truncate(f, 2 * BS + 100)
            fs.seek(f, 10)
            fs.write(f, b"new" * 100)  # blocks 0 .. 0: not the cut block
            fs.seek(f, 2 * BS)
            fs.write(f, b"N" * 50)  # into the cut block, below the new size
        fs.sync()
        fs.unmount()

    new = bytearray(old[:2 * BS + 100])
    new[10:310] = b"new" * 100
    new[2 * BS:2 * BS + 50] = b"N" * 50
    scratch = tmp_path / "s.img"
    for point in crash_points(base, scratch, shrink_then_write, CrashModel):
        with BlockDevice.open(scratch, durable=False) as d:
            got = _read(FileSystem.mount(d, Cache(8), SimClock()), alice, "f")
        if len(got) == len(old):  # not committed: the bytes past the cut are intact
            assert got[2 * BS + 100:] == old[2 * BS + 100:], point
        else:
            assert got == bytes(new), point
