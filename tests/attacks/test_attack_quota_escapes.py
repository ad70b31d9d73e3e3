"""Attacks that try to keep what a quota forbids by getting stopped for someone else's fault.

A graft stopped through no fault of its own -- its caller's transaction doomed, its
principal's wall allowance in a hold spent by its other grafts, a call refused for
stack -- is aborted but kept (``aborts.abort``: not counted towards removal). Found: a
graft that had grown its memory past its principal's quota in that call was kept
too, holding the pages (charged, but over the quota) and committing from its next
call on, since nothing looks at its memory again until it grows: a principal could
hold its memory quota many times over, one graft at a time. Now a graft over its
memory quota is removed however its call ended.

Found too: a message the graft refuses (a negative answer from ``vino_message``) is
undone and not a failure -- and its CPU time was charged to nobody, so a graft doing
all its work in messages and refusing each one ran free of its principal's total CPU
quota (and, sent by another principal's graft, of that one's hosting allowance).
Now a refused message's time is charged like any call's.

And ``vino_buffer``, run at every install: its time was charged to nobody, and a
module already compiled (cached) met no CPU check at all, so a principal could
install and remove a graft whose ``vino_buffer`` works its whole budget, at the
install rate (200 a second), long after its total CPU quota was spent. Now its time
is charged to the installer and an installer out of CPU is refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from vino import limits
from vino.errors import AbortReason, GraftAborted, GraftRejected, MessageRefused

from .harness import DEFAULT_ANSWER, TARGET, Tenancy, handler, pick, with_message

PAGE = limits.WASM_PAGE


def test_graft_that_grows_past_its_memory_quota_under_a_doomed_caller_is_still_removed(
        new_tenancy: Callable[..., Tenancy]) -> None:
    # Alice's quota: 4 pages. Her hog (t1) takes L1 and calls her grower (t2), which takes
    # every page it may (to the cap: the quota plus one) and spins. A host thread waits for
    # L1 and dooms the hog; the grower is stopped by its caller's doom, not its own fault.
    t = new_tenancy(alice_quota={"cpu_call_s": 5.0, "memory_bytes": 4 * PAGE})
    before = t.snapshot()
    grower = t.install(pick("(drop (memory.grow (i32.const 4))) (loop $l (br $l)) i32.const 2"),
                       target="t2")
    hog = t.install(pick("(drop (call $lock (i32.const 1)))"
                         " (drop (call $pick_for (i32.const 2) (i32.const 0))) i32.const 1",
                         ["lock", "pick_for"]))

    def waiter() -> None:
        while not t.registry.locks.held():
            time.sleep(0.001)
        with t.registry.locks.hold(t.registry.locks.lock("L1")):
            pass

    th = threading.Thread(target=waiter)
    th.start()
    assert t.pick(TARGET, 0) == DEFAULT_ANSWER
    th.join(timeout=10)
    assert hog.removal is not None and hog.removal.reason is AbortReason.LOCK_TIMEOUT
    # Over its quota: removed, its pages given back -- whoever's doom stopped it.
    assert grower.removal is not None, (grower.aborts, t.alice.usage)
    assert grower.removal.reason is AbortReason.RESOURCE, grower.removal
    assert t.pick("t2", 0) == DEFAULT_ANSWER
    t.assert_unchanged(before)
    t.assert_no_live_work()


# vino_message: about a million loop turns of work, then a refusal.
WORK_THEN_REFUSE = with_message("""(local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    i32.const -1""")


def test_graft_that_works_in_vino_message_and_refuses_every_message_still_pays_its_cpu(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_total_s": 0.02})
    source = pick("i32.const 1", [], WORK_THEN_REFUSE)
    t.compile_beforehand(source)  # the quota is for her messages: the compile is not in it
    before = t.snapshot()
    g = t.install(source)
    cpu = t.alice.usage.cpu_ns
    with pytest.raises(MessageRefused):
        g.send(b"x")
    assert t.alice.usage.cpu_ns > cpu  # the refused message's time is the principal's
    # Refusing again and again, it meets the quota: stopped for resource, removed.
    with pytest.raises(GraftAborted) as err:
        for _ in range(10_000):
            with pytest.raises(MessageRefused):
                g.send(b"x")
    assert err.value.reason is AbortReason.RESOURCE, err.value
    assert g.removal is not None and g.removal.reason is AbortReason.RESOURCE
    t.assert_unchanged(before)
    t.assert_no_live_work()


# vino_buffer: about a million loop turns of work, then the buffer at 0.
WORKING_BUFFER = """(module (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) (local $i i32)
    (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    i32.const 0)
  (func (export "pick") (result i32) i32.const 1))"""


def test_principal_reinstalling_a_graft_whose_vino_buffer_works_pays_for_it_and_runs_out(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_total_s": 0.05})
    before = t.snapshot()
    t.registry.remove(t.install(WORKING_BUFFER))  # compiled once (charged), then cached
    cpu = t.alice.usage.cpu_ns
    t.registry.remove(t.install(WORKING_BUFFER))  # no compile: only vino_buffer ran
    assert t.alice.usage.cpu_ns > cpu
    with pytest.raises(GraftRejected, match="total CPU quota"):
        for _ in range(10_000):
            t.registry.remove(t.install(WORKING_BUFFER))
    t.assert_unchanged(before)
    t.assert_no_live_work()


# ---- the memory quota across threads --------------------------------------------------
# A graft's memory is charged when its call ends (``Graft._account_memory``); inside the
# call only its store's hard cap holds it: its principal's quota (at most
# MAX_MEMORY_PAGES) plus one page. So while k of one principal's grafts are inside calls
# at once, on k threads (or nested on one), they hold at most the charged usage plus k
# times that cap -- never more -- and when each call ends every page past the quota is
# refused: the graft that went over is removed for ``resource`` and its pages given back.

WAITERS = 4


def test_grafts_growing_on_many_threads_at_once_hold_at_most_their_caps_and_end_in_the_quota(
        ) -> None:
    from vino.graft import I32, Registry, graft_callable
    from vino.testing.world import Host, declare_points, module, tenant

    quota = 16 * PAGE
    grow = 6  # pages each graft takes in its call: 4 + 6 + 6 fit in the quota, a third not
    registry = Registry(lock_timeout_s=0.05)
    barrier = threading.Barrier(WAITERS, timeout=30)
    held: dict[str, int] = {}  # graft -> its memory while every graft was inside its call

    @graft_callable("wait_all", (), (I32,))
    def wait_all(txn: object) -> int:
        g = txn.calling_graft  # type: ignore[attr-defined]
        held[g.name] = g.memory.current_size()
        barrier.wait()  # returns once every graft has grown and is inside its call
        return 0

    pick_point, _ = declare_points(registry, Host(), "mq", extra=(wait_all,))
    alice = tenant("alice", {"memory_bytes": quota, "cpu_call_s": 5.0})
    src = module(["wait_all"], '  (func (export "pick") (result i32)\n'
                 f"    (drop (memory.grow (i32.const {grow}))) (drop (call $wait_all))"
                 " i32.const 1)", sigs={"wait_all": ((), (I32,))})
    try:
        grafts = [registry.install(pick_point, src, alice, f"t{i}", name=f"g{i}")
                  for i in range(WAITERS)]
        charged = alice.usage.memory_bytes  # one page each
        answers: list[int] = []
        threads = [threading.Thread(target=lambda i=i: answers.append(pick_point(f"t{i}", 0)))
                   for i in range(WAITERS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sorted(answers) == [1, 1, 7, 7]  # two committed, two got the default
        # At the barrier: every graft inside its call, each grown by `grow` pages.
        peak = sum(held.values())
        assert peak == WAITERS * (1 + grow) * PAGE
        assert peak > quota  # the overshoot is real: 1.75 times the quota ...
        cap = min(quota, limits.MAX_MEMORY_PAGES * PAGE) + PAGE
        assert peak <= charged + WAITERS * cap  # ... and never past k caps
        # Once the calls ended: within the quota, the two that went over removed, freed.
        kept = [g for g in grafts if g.state == "live"]
        gone = [g for g in grafts if g.state == "removed"]
        assert len(kept) == 2 and len(gone) == 2
        assert all(g.removal is not None and g.removal.reason is AbortReason.RESOURCE
                   and g.instance is None and g.mem_charged == 0 for g in gone)
        assert alice.usage.memory_bytes == sum(g.mem_charged for g in kept) <= quota
    finally:
        registry.close()


# ---- the lifetime CPU quota ----------------------------------------------------------
# Found: a call was charged, and the lifetime quota (Quota.cpu_total_s) checked, only when
# it ended. Once the quota was spent, every further call of the principal's grafts still
# ran its whole budget first; a graft kept through failures (remove_after: an
# application's policy) ran one budget per call without end -- 1.15 s of CPU in 20 calls
# against a 0.05 s quota. Now a call its own principal pays for stops before the guest
# runs once that principal's lifetime CPU is spent: aborted for ``resource``, the point's
# default answering (an event's handler misses it, a message is refused).

SPIN = "(loop $l (br $l))"


@pytest.mark.parametrize("path", ["call", "event", "message"])
def test_graft_kept_through_failures_cannot_run_past_its_principals_lifetime_cpu(
        new_tenancy: Callable[..., Tenancy], path: str) -> None:
    total_s = 0.05
    t = new_tenancy(alice_quota={"cpu_total_s": total_s}, remove_after=limits.NEVER_REMOVE)
    if path == "event":
        g = t.handle(handler(f"{SPIN} i32.const 0"))
    else:
        g = t.install(pick(f"{SPIN} i32.const 1", [], with_message(f"{SPIN} i32.const 0")))
    # 30 ms of the quota left, whatever compiling took (on a slow machine, all of it): room
    # for one or two calls of the 20 ms budget, each charged at least that.
    t.alice.usage.cpu_ns = int(total_s * 1e9) - 30_000_000

    def call() -> None:
        if path == "call":
            assert t.pick(TARGET, 0) == DEFAULT_ANSWER
        elif path == "event":
            t.event(TARGET, 0)
        else:
            with pytest.raises(GraftAborted):
                g.send(b"work")

    for _ in range(20):
        call()
    reasons = [a.reason for a in g.aborts]
    ran = reasons.count(AbortReason.TIMEOUT)  # every call that ran spun to its budget
    assert 1 <= ran <= 2, (ran, t.alice.usage.cpu_ns)
    assert reasons == [AbortReason.TIMEOUT] * ran + [AbortReason.RESOURCE] * (20 - ran)
    assert "total CPU quota of 0.05 s used up" in g.aborts[-1].detail
    assert g.state == "live"  # its application keeps it; it no longer runs
    spent = t.alice.usage.cpu_ns
    assert spent > total_s * 1e9
    # However often it is called now, the guest runs no more, and nothing is charged.
    for _ in range(5):
        call()
    assert t.alice.usage.cpu_ns == spent
    assert [a.reason for a in g.aborts][-5:] == [AbortReason.RESOURCE] * 5
    # Another principal's grafts run on.
    t.install(pick("i32.const 2"), t.bob, "t2")
    assert t.pick("t2", 0) == 2


def test_graft_whose_principals_lifetime_cpu_is_spent_is_removed_without_running(
        new_tenancy: Callable[..., Tenancy]) -> None:
    # The default policy (removed at the first failure): the call that finds the quota
    # spent -- by the principal's other grafts, here set by hand -- removes it, unrun.
    t = new_tenancy(alice_quota={"cpu_total_s": 10.0})
    before = t.snapshot()
    g = t.install(pick(f"{SPIN} i32.const 1"))
    spent = t.alice.usage.cpu_ns = int(10.0e9) + 1
    assert t.pick(TARGET, 0) == DEFAULT_ANSWER
    t.assert_survived(before, g, AbortReason.RESOURCE, "total CPU quota of 10.0 s used up")
    assert t.alice.usage.cpu_ns == spent  # it never ran
