"""The Python policies the peers run decide exactly what the sample grafts decide."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from vino.bench import peers, policies
from vino.bench import setups as bench_setups

from .bench_world import booted_setups

KEY = hashlib.sha256(b"k").digest()
NONCE = bytes(range(12))


@pytest.fixture(scope="module")
def setups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bench_setups.Setup]]:
    yield from booted_setups(tmp_path_factory.mktemp("bench"))


@pytest.mark.parametrize("offset", [0, 64, 8192, 100])
def test_pure_python_chacha20_matches_the_native_library(offset: int) -> None:
    data = bytes(range(256)) * 3
    native = policies.ChaCha20Native(KEY, NONCE)(None, offset, data, 0)
    assert policies.ChaCha20Python(KEY, NONCE)(None, offset, data, 0) == native
    assert native != data


def test_stride_policy_learns_a_backward_scan_once_per_window() -> None:
    hist = list(range(128, 144))
    assert policies.stride_policy(256, 128, 8, hist) == list(range(127, 119, -1))
    assert policies.stride_policy(256, 131, 8, list(range(131, 147))) == []  # mid-window
    assert policies.stride_policy(256, 5, 8, [5, 90, 3]) == []  # no pattern


def test_each_setup_checks_graft_and_policy_agree(setups: dict[str, bench_setups.Setup]) -> None:
    for s in setups.values():
        assert s.python(*s.args()) == s.expected


def test_the_pluggy_slot_keeps_the_policy_slots_contract(
        setups: dict[str, bench_setups.Setup]) -> None:
    """The goals compare the kernel's policy slot with a pluggy hook in the same slot: both
    give the same answer from the same arguments, and the filter's slot, like the kernel's,
    transforms the block in place."""
    pm = peers.plugin_manager(setups)
    for key, s in setups.items():
        slot = peers.pluggy_slot(pm, key)
        args = s.hook_args()
        if key != "encrypt":
            assert slot(*args) == s.hook(*args) == s.expected
            continue
        inode, offset, plaintext, direction = s.args()
        before = bytes(plaintext)
        mine, theirs = bytearray(before), bytearray(before)
        s.hook(inode, offset, mine, direction)
        assert slot(inode, offset, theirs, direction) is None
        assert mine == theirs == s.expected != before
