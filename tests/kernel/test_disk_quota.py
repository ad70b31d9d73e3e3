"""Attacks on the disk: one user's own file operations filling the blocks or the inodes
so that another user (or root) can no longer create or write (``diskquota.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import BlockDevice
from vino.kernel.errors import DiskQuotaExceeded, InvariantViolation, NoSpace
from vino.kernel.fs import FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.proc import User

MakeDevice = Callable[..., BlockDevice]
BS = params.BLOCK_SIZE
NBLOCKS = 512  # a 2 MiB image: 256 inodes (254 files), about 480 data blocks


def _mount(make_device: MakeDevice, clock: SimClock) -> tuple[BlockDevice, FileSystem]:
    dev = make_device(NBLOCKS)
    FileSystem.format(dev)
    return dev, FileSystem.mount(dev, Cache(32), clock)


def _fill_blocks(fs: FileSystem, user: User, name: str) -> None:
    """``user`` grows one file 4 KiB at a time until refused: the refusal must be the quota."""
    fs.create(user, name)
    with fs.open(user, name, "w") as f, pytest.raises(DiskQuotaExceeded) as refused:
        while True:
            fs.write(f, b"a" * BS)
    assert refused.value.uid == user.uid


def test_quota_refusal_is_a_no_space_from_the_hierarchy() -> None:
    assert issubclass(DiskQuotaExceeded, NoSpace)


def test_alice_at_her_inode_limit_cannot_stop_bobs_create(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User) -> None:
    _, fs = _mount(make_device, sim_clock)
    made = 0
    with pytest.raises(DiskQuotaExceeded, match="inodes"):
        while True:
            fs.create(alice, f"a{made}")
            made += 1
    assert made == fs.quota.user_inodes < fs.geo.ninodes - 2  # she stopped at her limit
    assert fs.quota.usage(alice.uid) == (0, made)
    assert f"a{made}" not in fs.listdir()
    for i in range(fs.quota.user_inodes):  # bob gets his whole share
        fs.create(bob, f"b{i}")
    assert fs.quota.usage(bob.uid) == (0, fs.quota.user_inodes)
    fs.check_invariants()
    fs.unmount()


def test_alice_at_her_block_limit_cannot_stop_bobs_write(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User) -> None:
    _, fs = _mount(make_device, sim_clock)
    _fill_blocks(fs, alice, "hog")
    held, _ = fs.quota.usage(alice.uid)
    # refused one 4 KiB write short of it at most (the write needing an indirect block too)
    assert fs.quota.user_blocks - 2 < held <= fs.quota.user_blocks
    assert fs.free_blocks > fs.quota.user_blocks  # she could not take the disk
    fs.create(bob, "b")
    with fs.open(bob, "b", "rw") as f:
        assert fs.write(f, b"b" * BS) == BS
        assert fs.pread(f, 0, BS) == b"b" * BS
    fs.check_invariants()
    fs.unmount()


def test_writer_of_alices_file_is_held_to_alices_quota(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User) -> None:
    """Blocks are the owner's: bob writing into alice's world-writable file cannot take
    more than her quota for her, nor she more by letting him write."""
    _, fs = _mount(make_device, sim_clock)
    fs.create(alice, "shared", 0o666)
    with fs.open(bob, "shared", "w") as f, pytest.raises(DiskQuotaExceeded) as refused:
        while True:
            fs.write(f, b"x" * BS)
    assert refused.value.uid == alice.uid
    assert fs.quota.usage(bob.uid) == (0, 0)
    assert fs.quota.usage(alice.uid)[0] <= fs.quota.user_blocks
    fs.check_invariants()
    fs.unmount()


def test_alice_cannot_escape_her_limits_by_a_remount(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User) -> None:
    dev, fs = _mount(make_device, sim_clock)
    _fill_blocks(fs, alice, "hog")
    fs.create(alice, "small")
    usage = fs.quota.usage(alice.uid)
    fs.unmount()
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    assert fs.quota.usage(alice.uid) == usage  # counted again from the image
    with fs.open(alice, "small", "w") as f, pytest.raises(DiskQuotaExceeded):
        fs.write(f, b"s" * 2 * BS)
    assert fs.stat("small").size == 0
    fs.create(bob, "b")
    with fs.open(bob, "b", "w") as g:
        fs.write(g, b"b" * BS)
    fs.check_invariants()
    fs.unmount()


def test_alice_cannot_escape_her_limits_by_a_crash(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    """A mount after a crash (no unmount; the log replays) counts what the image holds."""
    dev, fs = _mount(make_device, sim_clock)
    _fill_blocks(fs, alice, "hog")
    fs.sync()
    usage = fs.quota.usage(alice.uid)
    fs.create(alice, "lost")  # not committed: gone after the crash
    with fs.open(alice, "lost", "w") as f, pytest.raises(DiskQuotaExceeded):
        fs.write(f, b"l" * 4 * BS)
    # the crash: the mount is dropped without unmount; the cache's copies are lost
    for b in fs.cache.resident_blocks(dev):
        fs.cache.discard(dev, b)
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    assert "lost" not in fs.listdir()
    assert fs.quota.usage(alice.uid) == usage
    with fs.open(alice, "hog", "rw") as f, pytest.raises(DiskQuotaExceeded):
        fs.pwrite(f, fs.stat("hog").size, b"h" * 2 * BS)
    fs.check_invariants()
    fs.unmount()


def test_truncate_and_unlink_give_alices_blocks_and_inodes_back(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    _, fs = _mount(make_device, sim_clock)
    _fill_blocks(fs, alice, "hog")
    with fs.open(alice, "hog", "rw") as f:
        fs.truncate(f, 10 * BS + 5)  # keeps 11 blocks
        assert fs.quota.usage(alice.uid) == (11, 1)
        fs.check_invariants()
        fs.pwrite(f, 11 * BS, b"again" * 1000)  # room again
        assert fs.quota.usage(alice.uid) == (13, 1)
    fs.unlink(alice, "hog")
    assert fs.quota.usage(alice.uid) == (0, 0)
    _fill_blocks(fs, alice, "hog2")  # the whole quota is hers again
    assert fs.quota.usage(alice.uid)[0] > fs.quota.user_blocks - 2
    fs.check_invariants()
    fs.unmount()


def test_unlinked_open_file_holds_alices_quota_until_its_last_close(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    _, fs = _mount(make_device, sim_clock)
    _fill_blocks(fs, alice, "hog")
    held = fs.quota.usage(alice.uid)
    f = fs.open(alice, "hog", "r")
    fs.unlink(alice, "hog")
    assert fs.quota.usage(alice.uid) == held  # the orphan still holds its blocks
    fs.create(alice, "next")
    with fs.open(alice, "next", "w") as g, pytest.raises(DiskQuotaExceeded):
        fs.write(g, b"n" * 2 * BS)
    fs.close(f)
    assert fs.quota.usage(alice.uid) == (0, 1)
    fs.check_invariants()
    fs.unmount()


def test_refused_write_leaves_alices_file_and_the_image_unchanged(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    dev, fs = _mount(make_device, sim_clock)
    fs.create(alice, "f")
    body = bytes(range(256)) * (3 * BS // 256)
    with fs.open(alice, "f", "rw") as f:
        fs.write(f, body)
        free, usage = fs.free_blocks, fs.quota.usage(alice.uid)
        room = fs.quota.user_blocks - usage[0]
        # one write over the hole past the end and over existing bytes: refused whole
        with pytest.raises(DiskQuotaExceeded, match="blocks held"):
            fs.pwrite(f, BS, b"z" * (room + 5) * BS)
        assert fs.free_blocks == free and fs.quota.usage(alice.uid) == usage
        assert fs.stat("f").size == len(body)
        assert fs.pread(f, 0, len(body) + 1) == body
        # several writes, one operation: the one refused is left whole, not half-written
        big = b"z" * (room + 5) * BS
        writes: list[tuple[int, bytes | bytearray]] = [(0, b"y"), (50 * BS, big)]
        with pytest.raises(DiskQuotaExceeded):
            fs.pwritev(f, writes)
        assert writes == [(50 * BS, big)]
        body = b"y" + body[1:]
        assert fs.pread(f, 0, len(body) + 1) == body
        assert fs.free_blocks == free and fs.quota.usage(alice.uid) == usage
        fs.check_invariants()
    fs.unmount()
    assert check_image(dev.path).clean
    fs = FileSystem.mount(dev, Cache(32), sim_clock)
    with fs.open(alice, "f", "r") as f:
        assert fs.pread(f, 0, len(body) + 1) == body
    fs.unmount()


def test_users_together_cannot_take_roots_reserve(
        make_device: MakeDevice, sim_clock: SimClock, alice: User, bob: User,
        root_user: User) -> None:
    """Even with limits raised past the disk, users leave root its reserve of blocks
    and of inodes; root's own files are not limited."""
    _, fs = _mount(make_device, sim_clock)
    fs.quota.user_blocks = fs.quota.user_inodes = 1 << 30
    with pytest.raises(DiskQuotaExceeded, match="reserve"):
        for i in range(fs.geo.ninodes):
            fs.create(alice if i % 2 else bob, f"n{i}")
    free_inodes = fs.geo.ninodes - 1 - len(fs.listdir()) - 1
    assert free_inodes == fs.quota.reserve_inodes
    for u in (alice, bob):
        with (fs.open(u, "n1" if u is alice else "n0", "w") as f,
              pytest.raises(DiskQuotaExceeded, match="reserve")):
            while True:
                fs.write(f, b"u" * BS)
    assert fs.free_blocks >= fs.quota.reserve_blocks
    fs.create(root_user, "rootfile")  # root still can
    with fs.open(root_user, "rootfile", "w") as f:
        fs.write(f, b"r" * (fs.free_blocks - 1) * BS)
    with fs.open(root_user, "rootfile", "rw") as f, pytest.raises(NoSpace):
        fs.pwrite(f, fs.stat("rootfile").size, b"r" * 2 * BS)
    fs.check_invariants()
    fs.unmount()


def test_a_wrong_quota_count_is_caught_by_the_invariants(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    _, fs = _mount(make_device, sim_clock)
    fs.create(alice, "f")
    with fs.open(alice, "f", "w") as f:
        fs.write(f, b"f" * 30 * BS)  # direct and single indirect
    assert fs.quota.usage(alice.uid) == (31, 1)
    fs.check_invariants()
    fs.quota.charge(alice.uid, blocks=-1)  # as if a block were lost from her count
    with pytest.raises(InvariantViolation, match="disk quota"):
        fs.check_invariants()
    fs.quota.charge(alice.uid, blocks=1)
    fs.unmount()


def test_sole_user_takes_all_but_roots_reserve_and_no_more(
        make_device: MakeDevice, sim_clock: SimClock, alice: User) -> None:
    # A benchmark's or a crash loop's one user: past any share, never into root's reserve.
    _, fs = _mount(make_device, sim_clock)
    share = fs.quota.user_blocks
    fs.quota.sole_user()
    _fill_blocks(fs, alice, "db")
    held, _ = fs.quota.usage(alice.uid)
    assert held > 3 * share  # she took far more than one user's share
    assert fs.quota.reserve_blocks <= fs.free_blocks < fs.quota.reserve_blocks + 2
    fs.check_invariants()
    fs.unmount()
