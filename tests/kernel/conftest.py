"""Fixtures for the storage tests: a simulated clock, real disk images in tmp_path, users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vino.kernel import plainread
from vino.kernel.clock import SimClock
from vino.kernel.device import DISK_1996, BlockDevice, DiskProfile
from vino.kernel.proc import User

MakeDevice = Callable[..., BlockDevice]


@pytest.fixture
def native_misses() -> Iterator[None]:
    """The test's misses take the native path (skipped where it did not build), restored after."""
    if plainread.native() is None:
        pytest.skip(f"no native plain read here: {plainread.PART.reason}")
    was = plainread.native_misses(True)
    yield
    plainread.native_misses(was)


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
def make_device(tmp_path: Path, sim_clock: SimClock) -> Iterator[MakeDevice]:
    """``make_device(nblocks, name="disk.img", profile=DISK_1996)``: a fresh image in
    tmp_path on ``sim_clock``, not fsynced (tests do not need power-loss durability).
    Every device made is closed at teardown."""
    made: list[BlockDevice] = []

    def make(nblocks: int, name: str = "disk.img", profile: DiskProfile = DISK_1996
             ) -> BlockDevice:
        dev = BlockDevice.create(tmp_path / name, nblocks, profile=profile, clock=sim_clock,
                                 durable=False)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        dev.close()


@pytest.fixture
def alice() -> User:
    return User(1000, "alice")


@pytest.fixture
def bob() -> User:
    return User(1001, "bob")


@pytest.fixture
def root_user() -> User:
    return User(0, "root")
