"""The three holes read in the code, each shown by an attack first.

1. A doom that reaches a nested graft's transaction as it commits used to be
   dropped: the lock it took passed to the parent, which ran on, and the waiter
   that had doomed the holder timed out instead. The doom now passes to the parent.
2. A graft could grow the host's undo log without bound within its CPU budget, and
   grafts called again and again inside one host transaction piled up committed
   entries until it ended. Both are bounded by the principal's ``undo_entries``
   quota: past it the graft aborts with ``resource``.
3. The lock table kept one lock per name ever used (one per pid and pgid,
   forever). Unused locks now leave the table.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from vino.errors import AbortReason
from vino.graft import Transaction, transaction

from .harness import (
    DEFAULT_ANSWER,
    RECORD_LOCKS,
    TARGET,
    KernelArena,
    Tenancy,
    pick,
)

# ---- 1. a doom racing a nested commit ---------------------------------------------------

# B (on t2) takes L1 and writes; A (on t1) calls B through pick_for, writes, answers 42.
NESTED_LOCKER = pick("(drop (call $lock (i32.const 1)))"
                     " (drop (call $put (i32.const 2) (i32.const 2))) i32.const 3",
                     ["lock", "put"])
CALLS_THE_LOCKER = pick("(drop (call $pick_for (i32.const 2) (i32.const 9)))"
                        " (drop (call $put (i32.const 1) (i32.const 1))) i32.const 42",
                        ["pick_for", "put"])


def test_graft_doomed_as_its_nested_call_commits_aborts_the_caller_that_now_holds_the_lock(
        tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tenancy.snapshot()
    b = tenancy.install(NESTED_LOCKER, target="t2")
    a = tenancy.install(CALLS_THE_LOCKER)
    commit = Transaction.commit

    def doomed_while_committing(self: Transaction) -> None:
        # The race, injected: a waiter for L1 dooms B between B's last check and its
        # commit into A (the doom-the-holder rule, locks.py).
        if self.graft is b:
            self.doom(AbortReason.LOCK_TIMEOUT, "held lock 'L1' while another thread waited")
        commit(self)

    monkeypatch.setattr(Transaction, "commit", doomed_while_committing)
    assert tenancy.pick(TARGET, 5) == DEFAULT_ANSWER  # A aborted: the default answered
    monkeypatch.undo()
    assert a.removal is not None and a.removal.reason is AbortReason.LOCK_TIMEOUT
    assert b.state == "live" and b.stats.commits == 1  # B committed, into A: undone with A
    tenancy.registry.remove(b)
    tenancy.assert_unchanged(before)
    tenancy.assert_no_live_work()


# ---- 2. the undo log -------------------------------------------------------------------

WRITES_FOREVER = pick("""(local $i i32)
    (loop $l
      (drop (call $put (local.get $i) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))
    i32.const 1""", ["put"])


def test_graft_that_writes_in_a_loop_cannot_grow_the_undo_log_past_its_quota(
        new_tenancy: type[Tenancy]) -> None:
    t = new_tenancy(alice_quota={"undo_entries": 500, "cpu_call_s": 10.0})
    # With a ten-second budget only the undo quota stops it, long before the CPU.
    g = t.attack(WRITES_FOREVER, AbortReason.RESOURCE, detail="undo log full")
    assert g.stats.aborts["resource"] == 1
    assert t.host.d == {}


WRITES_TEN = pick("""(local $i i32)
    (loop $l
      (drop (call $put (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 10))
                                (local.get $i)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    i32.const 1""", ["put"])


@pytest.mark.parametrize("host_ends", ["commit", "abort"])
def test_graft_called_again_and_again_in_one_host_transaction_cannot_pile_up_undo_entries(
        new_tenancy: type[Tenancy], host_ends: str) -> None:
    t = new_tenancy(alice_quota={"undo_entries": 100})
    before = t.snapshot()
    g = t.install(WRITES_TEN)
    answers = []
    with transaction() as host:
        for x in range(50):
            answers.append(t.pick(TARGET, x))
        # Ten calls of ten entries each fill the quota; the eleventh aborts (resource)
        # and the graft is removed: the host transaction holds 100 entries, not 500.
        assert answers == [1] * 10 + [DEFAULT_ANSWER] * 40
        assert len(host.undo or ()) == 100
        assert t.alice.usage.undo_entries == 100
        if host_ends == "abort":
            host.abort()
    assert t.alice.usage.undo_entries == 0  # given back when the host transaction ended
    assert g.removal is not None and g.removal.reason is AbortReason.RESOURCE
    if host_ends == "abort":
        t.assert_unchanged(before)
    else:
        assert t.host.d == {k: k % 10 for k in range(100)}


# ---- 3. the lock table ---------------------------------------------------------------

# Takes the lock of record 100 + x: a new name on every call, then commits.
LOCKS_A_NEW_RECORD = pick(f"""
    (drop (call $lock (i32.add (i32.const {RECORD_LOCKS}) (i32.load (i32.const 0)))))
    i32.const 1""", ["lock"])


def test_graft_that_locks_a_new_record_every_call_does_not_grow_the_lock_table(
        tenancy: Tenancy) -> None:
    g = tenancy.install(LOCKS_A_NEW_RECORD)
    gc.collect()
    entries = len(tenancy.registry.locks)
    for x in range(300):
        assert tenancy.pick(TARGET, x) == 1
    assert g.stats.commits == 300
    assert len(tenancy.registry.locks) == entries
    assert tenancy.registry.locks.held() == []


def test_a_lock_still_referenced_keeps_its_name_so_no_second_lock_is_made(
        tenancy: Tenancy) -> None:
    locks = tenancy.registry.locks
    mine = locks.lock("R7")
    gc.collect()
    assert locks.lock("R7") is mine  # whoever asks gets the same lock, so it excludes
    with locks.hold(mine):
        assert locks.lock("R7").holder is not None


EVICT_TAKING_ITS_LOCK = """(module
  (import "vino" "lock" (func $lock (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32) (drop (call $lock (i32.const 1))) i32.const 0))"""

SCHED_TAKING_ITS_LOCK = EVICT_TAKING_ITS_LOCK.replace("vino_evict", "vino_pick")


def test_processes_that_come_and_go_leave_no_lock_behind(kernel: KernelArena) -> None:
    from vino.kernel.sched import Cpu

    k = kernel.k
    alice = kernel.tenants["alice"].user
    gc.collect()
    entries = len(k.registry.locks)
    for _ in range(40):
        group = k.new_group(alice)
        proc = k.spawn(alice, "short-lived", group)
        aspace = k.address_space(proc)
        ge = k.graft(alice, "vm.evict", EVICT_TAKING_ITS_LOCK, target=aspace)
        gp = k.graft(alice, "sched.pick", SCHED_TAKING_ITS_LOCK, target=group)
        for v in range(k.cache.nframes + 4):  # evictions through its graft
            aspace.touch(v)
        k.sched.spawn(proc, [Cpu(1_000_000)])
        k.sched.run(until_ns=k.clock.now_ns() + 5_000_000)  # picks through its graft
        assert ge.stats.commits > 0 and gp.stats.commits > 0
        aspace.release()
        k.registry.remove(gp)
    gc.collect()
    assert len(k.registry.locks) == entries
    assert k.registry.locks.held() == []


def test_nested_grafts_committing_into_a_host_transaction_are_charged_once(
        tenancy: Tenancy) -> None:
    # alice's graft on t1 writes once and calls bob's graft on t2, which writes once;
    # bob's entry joins alice's call's log, and alice's call hands both to the host
    # transaction: charged once, to alice, whose call holds them there.
    tenancy.install(pick("(drop (call $put (i32.const 1) (i32.const 1)))"
                         " (drop (call $pick_for (i32.const 2) (i32.const 0))) i32.const 1",
                         ["put", "pick_for"]))
    tenancy.install(pick("(drop (call $put (i32.const 2) (i32.const 2))) i32.const 2", ["put"]),
                    tenancy.bob, "t2")
    with transaction() as host:
        assert tenancy.pick(TARGET, 0) == 1
        assert len(host.undo or ()) == 2
        assert (tenancy.alice.usage.undo_entries, tenancy.bob.usage.undo_entries) == (2, 0)
    assert (tenancy.alice.usage.undo_entries, tenancy.bob.usage.undo_entries) == (0, 0)


# Calls bob's graft on t2 again and again within one call.
CALLS_T2_FOREVER = pick("(loop $l (drop (call $pick_for (i32.const 2) (i32.const 0))) (br $l))"
                        " i32.const 1", ["pick_for"])
WRITES_TEN_ON_T2 = WRITES_TEN


def test_graft_that_calls_another_tenants_graft_again_and_again_cannot_exhaust_its_quota(
        new_tenancy: Callable[..., Tenancy]) -> None:
    # Each of bob's calls records ten entries and commits into alice's call, where they
    # stay until her call ends. They count against alice's undo log, not bob's quota:
    # alice's call is aborted (resource) and bob's graft is untouched.
    t = new_tenancy(alice_quota={"undo_entries": 50, "cpu_call_s": 10.0},
                    bob_quota={"undo_entries": 20})
    before = t.snapshot()
    b = t.install(WRITES_TEN_ON_T2, t.bob, "t2")
    g = t.attack(CALLS_T2_FOREVER, AbortReason.RESOURCE, detail="undo log full")
    # bob's graft is kept: calls of it that began after alice's call was doomed were
    # refused, recorded as not its fault, and not counted towards its removal.
    assert b.state == "live" and b.failures == 0 and b.stats.commits >= 5
    assert all(not r.graft_at_fault and "its caller's transaction was doomed" in r.detail
               for r in b.aborts)
    assert t.bob.usage.undo_entries == 0
    t.registry.remove(b)
    t.assert_unchanged(before)
    assert g.state == "removed"
