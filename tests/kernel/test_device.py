"""Attacks on the block device: bounds, lengths, closed handles, the latency model, threads."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from vino.kernel import params
from vino.kernel.clock import Clock, RealClock, SimClock
from vino.kernel.device import DISK_1996, SSD, BlockDevice, block_runs
from vino.kernel.errors import BadBlock, BadHandle, FileExists, InvalidArgument
from vino.testing.threads import run_threads

MakeDevice = Callable[..., BlockDevice]  # the make_device fixture (conftest.py)

BS = params.BLOCK_SIZE


def _block(tag: int) -> bytes:
    return bytes([tag & 0xFF]) * BS


def test_image_is_a_real_file_of_exactly_nblocks(make_device: MakeDevice, tmp_path: Path) -> None:
    dev = make_device(10)
    assert (tmp_path / "disk.img").stat().st_size == 10 * BS
    assert dev.nblocks == 10
    assert dev.read_block(9) == bytes(BS)  # a new image reads as zeros


def test_bytes_survive_close_and_reopen(make_device: MakeDevice, tmp_path: Path) -> None:
    dev = make_device(8)
    payload = os.urandom(BS)
    dev.write_block(5, payload)
    dev.close()
    with BlockDevice.open(tmp_path / "disk.img") as again:
        assert again.read_block(5) == payload
        assert again.nblocks == 8
    raw = (tmp_path / "disk.img").read_bytes()
    assert raw[5 * BS:6 * BS] == payload  # it is really in the file, at the right place


@pytest.mark.parametrize("block", [-1, 10, 11, 1 << 40])
def test_out_of_range_block_is_refused_naming_block_and_size(
        make_device: MakeDevice, block: int) -> None:
    dev = make_device(10)
    with pytest.raises(BadBlock) as read_err:
        dev.read_block(block)
    assert f"block {block}" in str(read_err.value) and "10 blocks" in str(read_err.value)
    assert (read_err.value.block, read_err.value.nblocks) == (block, 10)
    with pytest.raises(BadBlock):
        dev.write_block(block, _block(1))
    assert dev.stats.reads == dev.stats.writes == dev.stats.busy_ns == 0  # nothing was charged


def test_multi_block_request_running_off_the_end_is_refused_before_any_io(
        make_device: MakeDevice) -> None:
    dev = make_device(10)
    with pytest.raises(BadBlock, match="block 10"):
        dev.read_blocks(8, 3)
    with pytest.raises(BadBlock):
        dev.write_blocks(9, _block(7) * 2)
    assert dev.read_block(9) == bytes(BS)  # the part that fit was not written either
    assert dev.stats.writes == 0


@pytest.mark.parametrize("size", [0, 1, BS - 1, BS + 1])
def test_a_read_into_a_buffer_of_no_whole_blocks_is_refused_before_any_io(
        make_device: MakeDevice, size: int) -> None:
    dev = make_device(4)
    buf = bytearray(b"x" * size)
    with pytest.raises(InvalidArgument):
        dev.read_into(0, buf)
    with pytest.raises(BadBlock, match="block 4"):
        dev.read_into(3, bytearray(2 * BS))
    assert buf == b"x" * size and dev.stats.reads == dev.stats.busy_ns == 0


def test_read_into_fills_the_buffer_as_one_request_costed_like_read_blocks(
        make_device: MakeDevice) -> None:
    dev = make_device(8)
    dev.write_blocks(2, _block(2) + _block(3))
    buf = bytearray(2 * BS)
    costs = []
    for read in (lambda: dev.read_into(2, memoryview(buf)), lambda: dev.read_blocks(2, 2)):
        before = dev.stats.busy_ns
        got = read()
        costs.append(dev.stats.busy_ns - before)
    assert buf == _block(2) + _block(3) == got
    assert dev.stats.reads == 2 and dev.stats.blocks_read == 4 and dev.stats.seeks == 3
    assert costs == [DISK_1996.request_ns(2 * BS, False)] * 2  # one seek and transfer each
    dev.read_into(4, bytearray(BS))  # right after the last: no seek
    assert dev.stats.seeks == 3


@pytest.mark.parametrize(("blocks", "runs"), [
    ([], []), ([3], [(3, 1)]), ([1, 2, 3, 5, 6, 9], [(1, 3), (5, 2), (9, 1)]),
    ([4, 4, 5], [(4, 1), (4, 2)]), ([0, 2, 4], [(0, 1), (2, 1), (4, 1)])])
def test_block_runs_join_only_consecutive_blocks(blocks: list[int],
                                                 runs: list[tuple[int, int]]) -> None:
    assert block_runs(blocks) == runs


def test_read_into_fills_several_buffers_in_order_as_one_request(
        make_device: MakeDevice) -> None:
    dev = make_device(8)
    dev.write_blocks(1, _block(1) + _block(2) + _block(3))
    bufs = [bytearray(BS), bytearray(2 * BS)]
    dev.read_into(1, *bufs)
    assert bufs == [_block(1), _block(2) + _block(3)]
    assert (dev.stats.reads, dev.stats.blocks_read) == (1, 3)


def test_a_read_of_an_image_truncated_behind_the_devices_back_is_bad_block(
        make_device: MakeDevice, tmp_path: Path) -> None:
    dev = make_device(8)
    dev.write_block(7, _block(7))
    os.truncate(tmp_path / "disk.img", 6 * BS + 100)
    with pytest.raises(BadBlock, match="block 6"):
        dev.read_into(6, bytearray(2 * BS))
    with pytest.raises(BadBlock):
        dev.read_block(7)


@pytest.mark.parametrize("size", [0, 1, BS - 1, BS + 1])
def test_wrong_length_write_is_refused(make_device: MakeDevice, size: int) -> None:
    dev = make_device(4)
    with pytest.raises(InvalidArgument):
        dev.write_block(0, bytes(size))
    with pytest.raises(InvalidArgument):
        dev.write_blocks(0, bytes(size))


def test_closed_device_refuses_requests(make_device: MakeDevice) -> None:
    dev = make_device(4)
    dev.close()
    dev.close()  # idempotent
    assert dev.closed
    with pytest.raises(BadHandle):
        dev.read_block(0)
    with pytest.raises(BadHandle):
        dev.write_block(0, _block(0))


def test_create_refuses_to_clobber_an_existing_image(tmp_path: Path) -> None:
    BlockDevice.create(tmp_path / "d", 2, durable=False).close()
    with pytest.raises(FileExists):
        BlockDevice.create(tmp_path / "d", 2, durable=False)
    BlockDevice.create(tmp_path / "d", 3, durable=False, overwrite=True).close()
    assert (tmp_path / "d").stat().st_size == 3 * BS


def test_open_refuses_an_image_that_is_not_whole_blocks(tmp_path: Path) -> None:
    (tmp_path / "odd").write_bytes(bytes(BS + 1))
    with pytest.raises(InvalidArgument, match="multiple"):
        BlockDevice.open(tmp_path / "odd")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InvalidArgument):
        BlockDevice.open(tmp_path / "empty")


def test_clock_advances_by_exactly_the_modelled_time(
        make_device: MakeDevice, sim_clock: SimClock) -> None:
    dev = make_device(100)
    dev.read_block(10)  # first request: seek + rotation
    dev.read_block(11)  # the head is there: no seek
    dev.read_blocks(12, 4)  # still sequential, one request
    dev.write_block(50, _block(1))  # seek again
    p = DISK_1996
    expected = (p.request_ns(BS, False) + p.request_ns(BS, True) + p.request_ns(4 * BS, True)
                + p.request_ns(BS, False))
    assert sim_clock.now_ns() == dev.stats.busy_ns == expected
    s = dev.stats
    assert (s.reads, s.writes, s.blocks_read, s.blocks_written, s.seeks) == (3, 1, 6, 1, 2)
    assert (s.bytes_read, s.bytes_written) == (6 * BS, BS)


def test_a_1996_random_access_costs_about_9ms_and_an_ssd_one_about_80us() -> None:
    assert 8_000_000 < DISK_1996.seek_ns + DISK_1996.rotation_ns < 10_000_000
    assert 60_000 <= SSD.seek_ns + SSD.rotation_ns + SSD.overhead_ns <= 100_000
    # transfer of one block: ~0.8 ms at 5 MB/s, ~8 us at 500 MB/s
    assert DISK_1996.request_ns(BS, True) - DISK_1996.overhead_ns == BS * 10**9 // 5_000_000


def _scan_cost(dev: BlockDevice, order: list[int]) -> int:
    before = dev.stats.busy_ns
    for b in order:
        dev.read_block(b)
    return dev.stats.busy_ns - before


def test_sequential_scan_is_much_cheaper_than_random(make_device: MakeDevice) -> None:
    dev = make_device(256)
    seq = _scan_cost(dev, list(range(256)))
    order = list(range(256))
    random.Random(7).shuffle(order)
    rnd = _scan_cost(dev, order)
    assert rnd > 5 * seq
    assert dev.stats.seeks >= 250  # the shuffled scan seeks almost every time


def test_ssd_is_cheaper_than_a_1996_disk_for_the_same_work(make_device: MakeDevice) -> None:
    order = list(range(128))
    random.Random(3).shuffle(order)
    old = make_device(128, "old.img", DISK_1996)
    new = make_device(128, "new.img", SSD)
    assert _scan_cost(new, order) * 50 < _scan_cost(old, order)
    assert _scan_cost(new, list(range(128))) < _scan_cost(old, list(range(128)))


def test_device_without_a_clock_still_accounts_busy_time(tmp_path: Path) -> None:
    with BlockDevice.create(tmp_path / "d", 4, durable=False) as dev:
        dev.read_block(0)
        assert dev.stats.busy_ns == DISK_1996.request_ns(BS, False)


def test_concurrent_writers_all_land_and_accounting_is_consistent(
        make_device: MakeDevice, sim_clock: SimClock) -> None:
    dev = make_device(64)

    def writer(t: int) -> None:
        for i in range(16):
            dev.write_block(t * 16 + i, _block(t * 16 + i))

    run_threads(*(functools.partial(writer, t) for t in range(4)))
    for b in range(64):
        assert dev.read_block(b) == _block(b)
    assert dev.stats.writes == 64
    assert sim_clock.now_ns() == dev.stats.busy_ns


def test_flush_on_a_durable_device_fsyncs_and_keeps_data(tmp_path: Path) -> None:
    with BlockDevice.create(tmp_path / "d", 2) as dev:
        dev.write_block(1, _block(9))
        dev.flush()
    assert (tmp_path / "d").read_bytes()[BS:] == _block(9)


def test_sim_clock_cannot_go_backwards_and_real_clock_is_monotonic() -> None:
    clock = SimClock(5)
    assert clock.advance(10) == 15
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        SimClock(-1)
    assert clock.now_ns() == 15
    real = RealClock()
    a = real.now_ns()
    assert real.now_ns() >= a
    assert isinstance(real, Clock) and isinstance(clock, Clock)
