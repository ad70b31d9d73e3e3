"""Fault-injection loops, SQLite style: the Nth call at a site fails, N = 1, 2, ...

What if the 1st, 2nd, ... Nth accessor call, allocation (a principal's charge: kalloc,
a lock's quota, an install's memory), lock acquisition, device request or undo step
fails -- once (one-shot) or from then on (persistent)? Each loop runs its operation
until it completes without reaching the fault; after every run the state must be
exactly the state before or exactly the committed result (``vino.testing.loops``
computes both and compares), and the invariants must hold. The loops themselves live
in ``vino.testing`` so that ``vino reliability`` reports the same figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vino.testing.kernel_loops import (
    DeviceFaultTally,
    device_fault_loop,
    evict_fault_loop,
    sched_fault_loop,
)
from vino.testing.loops import (
    MODES,
    NESTINGS,
    SITES,
    LoopResult,
    graft_fault_loop,
    install_fault_loop,
    undo_fault_loop,
)


def _assert_survived(r: LoopResult, min_faults: int = 1) -> None:
    assert r.failures == [], "\n".join(r.failures)
    assert r.injected >= min_faults, f"the loop never reached a fault: {r}"
    assert r.survived == r.runs
    assert r.runs >= 2  # at least one faulty run and the final fault-free one


@pytest.mark.parametrize("removal", [False, True], ids=["kept", "removed"])
@pytest.mark.parametrize("nesting", NESTINGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("site", SITES)
def test_multi_step_graft_whose_nth_call_fails_leaves_state_before_or_committed(
        site: str, mode: str, nesting: str, removal: bool) -> None:
    # Two locks, three accessor calls, two allocations (one freed), a host-memory write
    # and a nested default(); alone or inside a host transaction that commits or aborts.
    r = graft_fault_loop(site, mode, nesting, removal=removal)
    _assert_survived(r)
    assert set(r.reasons) == {"host_error"}  # an injected fault is the host's error


@pytest.mark.parametrize("removal", [False, True], ids=["kept", "removed"])
@pytest.mark.parametrize("mode", MODES)
def test_abort_whose_nth_undo_step_fails_still_completes_and_leaves_only_that_residue(
        mode: str, removal: bool) -> None:
    r = undo_fault_loop(mode, removal=removal)
    _assert_survived(r, min_faults=5)  # five undo steps, each failed once at least
    assert set(r.reasons) == {"trap"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("site", SITES)
def test_install_whose_nth_call_fails_changes_nothing_or_completes(site: str,
                                                                    mode: str) -> None:
    # vino_buffer() takes a lock, writes host state and allocates; then the install
    # charges the graft's memory. A failure anywhere: nothing changed, nothing charged.
    _assert_survived(install_fault_loop(site, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("site", ["device.read", "device.write"])
def test_device_error_under_a_filtered_write_reaches_the_caller_and_blames_no_graft(
        site: str, mode: str, tmp_path: Path) -> None:
    tally = DeviceFaultTally()
    r = device_fault_loop(site, mode, tmp_path, tally)
    _assert_survived(r, min_faults=5 if site == "device.read" else 3)
    assert set(r.reasons) == {"InjectedFault"}
    # every device access of an operation comes before its first change: the file
    # system's own invariants hold after every fault too
    assert tally.runs == r.runs
    assert tally.fs_damaged == 0, dict(tally.broken)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("site", "end"), [*((s, "i32.const 0") for s in SITES),
                                           ("accessor", "unreachable")],
                         ids=[*(f"{s}-commits" for s in SITES), "accessor-undo-traps"])
def test_sched_graft_whose_nth_priority_change_lock_or_charge_fails_is_undone_exactly(
        site: str, end: str, mode: str, tmp_path: Path) -> None:
    # "traps": the graft always traps after its changes, so later N fail undo steps.
    r = sched_fault_loop(site, mode, end, tmp_path)
    _assert_survived(r)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("site", [*SITES, "undo"])
def test_evict_graft_whose_nth_hint_lock_or_charge_fails_leaves_hints_none_or_all(
        site: str, mode: str, tmp_path: Path) -> None:
    end = "i32.const 9999" if site == "undo" else "i32.const 0"  # undo: always aborts
    r = evict_fault_loop(site, mode, end, tmp_path)
    _assert_survived(r)
