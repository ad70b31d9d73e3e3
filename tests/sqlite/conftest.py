"""Fixtures for SQLite on vino: a fresh kernel per test, a built database per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.demo.sqlite import Config, Lab
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User

TEST_ROWS = 10_000  # rows in the tests' database (the demo uses 100,000)
TEST_BLOCKS = 2048  # disk image of the per-test kernels (8 MiB)
TEST_FRAMES = 64  # page frames of the per-test kernels


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests here marked ``slow`` (the 100,000-row demo) run only when ``-m`` asks for them."""
    if "slow" in (config.getoption("-m") or ""):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path / "disk.img", nblocks=TEST_BLOCKS, frames=TEST_FRAMES)
    try:
        yield k
    finally:
        k.shutdown()


@pytest.fixture
def alice(kernel: Kernel) -> User:
    return kernel.add_user("alice")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A 10,000-row database, built once per module; experiments boot copies of it."""
    return Lab(tmp_path_factory.mktemp("lab"), Config.small(TEST_ROWS))
