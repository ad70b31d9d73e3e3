"""Attacks by power cut: the device loses power at its Nth write (cut, torn, lost)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from vino.errors import VinoError
from vino.kernel import params
from vino.kernel.crash import SECTOR_SIZE, CrashModel, CrashPlan, count_writes, crash_image
from vino.kernel.device import BlockDevice
from vino.kernel.errors import DeviceError, InvalidArgument, KernelError, PowerLost

MakeDevice = Callable[..., BlockDevice]

BS = params.BLOCK_SIZE


def _block(tag: int) -> bytes:
    return bytes([tag]) * BS


def _image(path: Path, nblocks: int = 8) -> Path:
    with BlockDevice.create(path, nblocks, durable=False):
        pass
    return path


def _five_writes(dev: BlockDevice) -> None:
    for i in range(1, 6):
        dev.write_block(i, _block(i))


def _blocks(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    return [raw[i * BS:(i + 1) * BS] for i in range(len(raw) // BS)]


def test_a_cut_keeps_the_writes_before_n_and_nothing_after(tmp_path: Path) -> None:
    img = _image(tmp_path / "d.img")
    assert crash_image(img, _five_writes, CrashPlan(3, CrashModel.CUT))
    got = _blocks(img)
    assert got[1:6] == [_block(1), _block(2), bytes(BS), bytes(BS), bytes(BS)]


def test_a_dead_device_refuses_every_later_request(tmp_path: Path) -> None:
    img = _image(tmp_path / "d.img")
    dev = BlockDevice.open(img, durable=False)
    dev.arm_crash(CrashPlan(1))
    with pytest.raises(PowerLost) as cut:
        dev.write_block(1, _block(1))
    assert cut.value.errno == errno.EIO and "write #1" in str(cut.value)
    assert isinstance(cut.value, DeviceError) and isinstance(cut.value, KernelError)
    for request in (lambda: dev.read_block(0), lambda: dev.write_block(2, _block(2)), dev.flush):
        with pytest.raises(PowerLost):
            request()
    dev.disarm_crash()  # too late: a dead device stays dead
    with pytest.raises(PowerLost):
        dev.read_block(0)
    dev.close()  # closing still works (and flushes nothing)
    assert _blocks(img)[1:3] == [bytes(BS), bytes(BS)]


def test_a_torn_write_keeps_some_leading_sectors_but_never_all(tmp_path: Path) -> None:
    seen: set[int] = set()
    for seed in range(20):
        img = _image(tmp_path / f"t{seed}.img")

        def big_write(dev: BlockDevice) -> None:
            dev.write_blocks(1, _block(7) * 2)

        assert crash_image(img, big_write, CrashPlan(1, CrashModel.TORN, seed))
        raw = img.read_bytes()[BS:3 * BS]
        kept = raw.rstrip(b"\0")
        assert kept == bytes([7]) * len(kept)  # a prefix, in order
        assert 0 < len(kept) < 2 * BS and len(kept) % SECTOR_SIZE == 0
        seen.add(len(kept))
    assert len(seen) > 5  # the seed really chooses


def test_lost_writes_hold_any_version_since_the_last_flush_and_nothing_older(
        tmp_path: Path) -> None:
    def workload(dev: BlockDevice) -> None:
        dev.write_block(1, _block(0xA1))
        dev.write_block(1, _block(0xB1))
        dev.write_block(4, _block(0x44))
        dev.flush()  # the barrier: 0xB1 and 0x44 are durable
        dev.write_block(1, _block(0xC1))
        dev.write_block(2, _block(0xD2))
        dev.write_block(2, _block(0xE2))
        dev.write_block(3, _block(0xF3))  # the power goes during this one

    outcomes: set[tuple[int, int, int, int]] = set()
    for seed in range(40):
        img = _image(tmp_path / f"l{seed}.img")
        assert crash_image(img, workload, CrashPlan(7, CrashModel.LOST, seed))
        got = _blocks(img)
        b1, b2, b3, b4 = (got[i][0] for i in (1, 2, 3, 4))
        assert got[1] == _block(b1) and got[2] == _block(b2) and got[3] == _block(b3)
        assert b1 in (0xB1, 0xC1) and b2 in (0, 0xD2, 0xE2) and b3 in (0, 0xF3)
        assert b4 == 0x44  # flushed before: never lost
        outcomes.add((b1, b2, b3, b4))
    # the volatile cache reorders: a later write survives while an earlier one is lost
    assert (0xB1, 0, 0xF3, 0x44) in outcomes
    assert len(outcomes) >= 8


@pytest.mark.parametrize("model", list(CrashModel))
def test_every_crash_replays_exactly_from_its_seed(tmp_path: Path, model: CrashModel) -> None:
    def workload(dev: BlockDevice) -> None:
        for i in range(12):
            dev.write_blocks(i % 6, _block(i + 1) * 2)
            if i % 5 == 4:
                dev.flush()

    images = []
    for run in range(2):
        img = _image(tmp_path / f"r{run}.img")
        assert crash_image(img, workload, CrashPlan(9, model, seed=5))
        images.append(img.read_bytes())
    assert images[0] == images[1]


def test_count_writes_finds_every_crash_point_and_a_plan_past_them_never_fires(
        tmp_path: Path) -> None:
    img = _image(tmp_path / "c.img")
    assert count_writes(img, _five_writes) == 5
    img2 = _image(tmp_path / "c2.img")
    assert not crash_image(img2, _five_writes, CrashPlan(6))
    assert _blocks(img2)[5] == _block(5)
    with pytest.raises(InvalidArgument):
        CrashPlan(0)


def test_a_host_io_error_reaches_the_caller_as_a_device_error_with_its_errno(
        make_device: MakeDevice, tmp_path: Path) -> None:
    dev = make_device(4)
    read_only = os.open(tmp_path / "disk.img", os.O_RDONLY)
    try:
        saved, dev._fd = dev._fd, read_only  # the host now refuses every write
        with pytest.raises(DeviceError) as err:
            dev.write_block(2, _block(2))
        assert err.value.errno == errno.EBADF and err.value.op == "write"
        assert err.value.block == 2 and isinstance(err.value, OSError)
        assert isinstance(err.value, VinoError)
    finally:
        dev._fd = saved
        os.close(read_only)
