"""The harness can fail: every change an attack could leave behind is seen.

A check that cannot fail proves nothing, so each kind of residue is planted by hand
here and the harness must object to it.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason
from vino.graft import transaction

from .harness import TARGET, Tenancy, in_child, pick, pick_returning


def test_a_changed_host_value_is_seen(tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    tenancy.host.d[1] = 1
    with pytest.raises(AssertionError):
        tenancy.assert_unchanged(before)


def test_a_lock_left_held_or_a_new_lock_table_entry_is_seen(tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    lk = tenancy.registry.locks.lock("L9")
    with pytest.raises(AssertionError):  # one more entry in the lock table
        tenancy.assert_unchanged(before)
    before = tenancy.snapshot()
    with tenancy.registry.locks.hold(lk), pytest.raises(AssertionError):
        tenancy.assert_unchanged(before)


def test_a_handle_or_charge_left_behind_is_seen(tenancy: Tenancy) -> None:
    g = tenancy.install(pick_returning(1))
    before = tenancy.snapshot()
    g.handles[99] = bytearray(8)  # a block nobody charged
    with pytest.raises(AssertionError):
        tenancy.assert_unchanged(before)
    with pytest.raises(AssertionError):
        tenancy.assert_no_live_work()
    del g.handles[99]
    tenancy.alice.charge("kalloc_bytes", 8)  # a charge no block accounts for
    with pytest.raises(AssertionError):
        tenancy.assert_no_live_work()
    tenancy.alice.release("kalloc_bytes", 8)


def test_an_undo_entry_left_in_the_host_transaction_is_seen(tenancy: Tenancy) -> None:
    with transaction() as txn:
        before = tenancy.snapshot()
        txn.record(lambda: None)
        with pytest.raises(AssertionError):
            tenancy.assert_unchanged(before)


def test_a_graft_that_commits_or_aborts_for_another_reason_fails_the_attack(
        tenancy: Tenancy) -> None:
    with pytest.raises(AssertionError):  # it committed: not removed
        tenancy.attack(pick_returning(3), AbortReason.TRAP)
    tenancy.registry.remove(tenancy.pick.table[TARGET])
    with pytest.raises(AssertionError):  # it trapped, not timed out
        tenancy.attack(pick("unreachable"), AbortReason.TIMEOUT)


def test_a_child_killed_by_a_signal_or_hanging_is_a_result_not_our_death() -> None:
    dead = in_child("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", timeout_s=30)
    assert dead.returncode == -11 and not dead.timed_out
    hung = in_child("import time\ntime.sleep(60)", timeout_s=1)
    assert hung.timed_out
    ok = in_child("import harness, vino\nreport({'answer': harness.DEFAULT_ANSWER})")
    assert ok.returncode == 0 and ok.result() == {"answer": 7}
