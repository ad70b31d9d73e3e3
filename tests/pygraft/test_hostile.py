"""Hostile Python grafts: compiled, they are aborted for the right reason, state restored.

The grafts are Python files in src/vino/sdk/hostile/ (the demo's gallery runs them too,
with ``vino demo --python-grafts``); each test runs the operation the graft is
attached to on a real kernel and checks the abort reason, the removal, the
operation's answer and the state afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vino.demo.gallery import attack_lock_hog
from vino.graft import Quota
from vino.kernel import params
from vino.kernel.kernel import Kernel
from vino.workloads import hostile_path

BS = params.BLOCK_SIZE


def hostile(name: str) -> str:
    """A hostile Python graft's source (src/vino/sdk/hostile/NAME.py)."""
    return hostile_path(f"{name}.py").read_text()


SPIN = hostile("readahead_loop")
RECURSE = hostile("readahead_recurse")
OUT_OF_RANGE = hostile("readahead_out_of_range")
MEMORY_HOG = hostile("evict_memory_hog")


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path / "k.img", frames=32)
    yield k
    k.check_invariants()
    k.shutdown()


def _read_all_with(k: Kernel, src: str, reason: str) -> None:
    user = k.add_user("mallory")
    proc = k.spawn(user, "reader")
    k.fs.create(user, "f", 0o600)
    data = bytes(i % 251 for i in range(8 * BS))
    with k.fs.open(proc, "f", "w") as f:
        k.fs.write(f, data)
    k.cache.sync()
    k.cache.invalidate(k.device)
    with k.fs.open(proc, "f", "r") as f:
        g = k.graft(user, "fs.readahead", src, target=f, name="hostile")
        back = k.fs.read(f, len(data))
    assert back == data  # the reads completed, with the default policy
    assert g.state == "removed" and g.removal is not None
    assert g.removal.reason.value == reason, g.removal


def test_python_graft_that_loops_forever_is_stopped_by_its_budget(kernel: Kernel) -> None:
    _read_all_with(kernel, SPIN, "timeout")


def test_python_graft_that_recurses_forever_cannot_kill_the_host(kernel: Kernel) -> None:
    _read_all_with(kernel, RECURSE, "trap")


def test_python_graft_that_answers_past_the_file_is_refused(kernel: Kernel) -> None:
    _read_all_with(kernel, OUT_OF_RANGE, "invalid_result")


def test_python_graft_that_hogs_its_groups_lock_is_doomed_and_the_waiter_proceeds(
        kernel: Kernel) -> None:
    # the demo gallery's attack, with the Python hog: a waiter that gets the lock, none left
    g, waiter_proceeded, detail = attack_lock_hog(kernel, "sched_lock_hog.py")
    assert waiter_proceeded, detail
    assert g is not None and g.removal is not None
    assert g.removal.reason.value == "lock_timeout"


def test_python_graft_with_a_huge_local_array_is_aborted_for_memory(kernel: Kernel) -> None:
    k = kernel
    user = k.add_user("mallory", Quota(memory_bytes=1 << 20))
    aspace = k.address_space(k.spawn(user, "hog"))
    for v in range(8):
        aspace.write(v, f"page {v}".encode())
    before = user.principal.usage.snapshot()
    g = k.graft(user, "vm.evict", MEMORY_HOG, target=aspace, name="memory_hog")
    for v in range(100, 100 + k.cache.nframes + 8):
        aspace.touch(v)
    assert all(aspace.read(v).startswith(f"page {v}".encode()) for v in range(8))
    assert g.state == "removed" and g.removal is not None
    assert g.removal.reason.value == "resource", g.removal
    after = user.principal.usage.snapshot()
    assert {x: after[x] for x in after if x != "cpu_ns"} == {
        x: before[x] for x in before if x != "cpu_ns"}
