"""Attacks through the common graft-callables: wild pointers and lengths, floods,
hoarding, lock games, message storms, answers at the edges of validity.

Each attack is what a tenant would try to crash, slow, starve or spy on the host or
another principal. The expected outcome is always the same: the call completes with
the default's answer (or, where the graft stayed within the rules, with its own
answer and nothing more than the rules allow), the abort reason is the right one,
and the host state and every principal's usage are exactly as before.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from vino import limits
from vino.errors import AbortReason, GraftAborted, MessageRefused
from vino.graft import invoke

from .harness import (
    DEFAULT_ANSWER,
    LOCK_TIMEOUT_S,
    RECORD_LOCKS,
    TARGET,
    Tenancy,
    handler,
    pick,
    with_message,
)

# ---- log -------------------------------------------------------------------------------


def test_graft_that_logs_from_a_wild_pointer_traps_and_logs_nothing(tenancy: Tenancy) -> None:
    g = tenancy.attack(pick("(call $log (i32.const 0xffffff00) (i32.const 200)) i32.const 1",
                            ["log"]), AbortReason.TRAP, detail="wild pointer")
    assert list(g.logs) == [] and tenancy.alice.usage.log_bytes == 0


def test_graft_that_logs_past_the_end_of_its_memory_traps(tenancy: Tenancy) -> None:
    tenancy.attack(pick("(call $log (i32.const 65530) (i32.const 100)) i32.const 1", ["log"]),
                   AbortReason.TRAP, detail="wild pointer")


def test_graft_that_grows_its_memory_then_logs_from_the_new_page_is_served(
        tenancy: Tenancy) -> None:
    # Not a wild pointer: the page exists, it was grown during this very call.
    g = tenancy.install(pick("""
        (drop (memory.grow (i32.const 1)))
        (i32.store (i32.const 65536) (i32.const 0x21696821))
        (call $log (i32.const 65536) (i32.const 4))
        i32.const 1""", ["log"]))
    assert tenancy.pick(TARGET, 0) == 1
    assert list(g.logs) == [b"!hi!"] and not g.aborts


def test_graft_that_logs_a_negative_or_huge_length_gets_its_line_clipped(
        tenancy: Tenancy) -> None:
    g = tenancy.install(pick("""
        (call $log (i32.const 0) (i32.const -1))
        (call $log (i32.const 0) (i32.const 0x7fffffff))
        i32.const 1""", ["log"]))
    assert tenancy.pick(TARGET, 0) == 1
    assert [len(line) for line in g.logs] == [0, limits.LOG_LINE_MAX]
    assert tenancy.alice.usage.log_bytes == limits.LOG_LINE_MAX


def test_graft_that_floods_the_log_in_one_call_keeps_only_its_lines_per_call(
        tenancy: Tenancy) -> None:
    g = tenancy.install(pick("""(local $i i32)
        (loop $l (call $log (i32.const 0) (i32.const 512))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 3000))))
        i32.const 1""", ["log"]))
    assert tenancy.pick(TARGET, 0) == 1
    assert len(g.logs) == limits.LOG_LINES_PER_CALL
    assert g.logs_dropped == 3000 - limits.LOG_LINES_PER_CALL
    assert tenancy.alice.usage.log_bytes == limits.LOG_LINES_PER_CALL * 512


def test_graft_that_logs_call_after_call_is_stopped_by_its_log_quota(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"log_bytes": 1000})
    before = t.snapshot()
    g = t.install(pick("(call $log (i32.const 0) (i32.const 100)) i32.const 1", ["log"]))
    assert [t.pick(TARGET, 0) for _ in range(12)] == [1] * 10 + [DEFAULT_ANSWER] * 2
    assert len(g.logs) == 10  # the lines written stay readable by the installer
    t.assert_survived(before, g, AbortReason.RESOURCE, detail="log_bytes")
    assert t.alice.usage.log_bytes == 1000  # consumed, never given back


# ---- host memory (kalloc and friends) ----------------------------------------------------

def test_graft_that_reads_a_block_into_a_wild_pointer_traps_and_frees_the_block(
        tenancy: Tenancy) -> None:
    tenancy.attack(pick("""(local $h i32)
        (local.set $h (call $kalloc (i32.const 64)))
        (drop (call $kread (local.get $h) (i32.const 0) (i32.const 0xfffffff0) (i32.const 64)))
        i32.const 1""", ["kalloc", "kread"]), AbortReason.TRAP, detail="wild pointer")


def test_graft_that_writes_a_block_from_a_wild_pointer_traps_and_changes_no_block(
        tenancy: Tenancy) -> None:
    tenancy.attack(pick("""(local $h i32)
        (local.set $h (call $kalloc (i32.const 64)))
        (drop (call $kwrite (local.get $h) (i32.const 0) (i32.const 65500) (i32.const 64)))
        i32.const 1""", ["kalloc", "kwrite"]), AbortReason.TRAP, detail="wild pointer")


def test_graft_that_reads_and_writes_blocks_at_wild_offsets_gets_minus_one_every_time(
        tenancy: Tenancy) -> None:
    # Every call is refused (-1) without touching memory; 10 + five -1s = 5.
    g = tenancy.install(pick("""(local $h i32) (local $sum i32)
        (local.set $h (call $kalloc (i32.const 64)))
        (local.set $sum (i32.const 10))
        (local.set $sum (i32.add (local.get $sum)
          (call $kread (local.get $h) (i32.const -1) (i32.const 0) (i32.const 1))))
        (local.set $sum (i32.add (local.get $sum)
          (call $kread (local.get $h) (i32.const 60) (i32.const 0) (i32.const 8))))
        (local.set $sum (i32.add (local.get $sum)
          (call $kread (local.get $h) (i32.const 0) (i32.const 0) (i32.const -5))))
        (local.set $sum (i32.add (local.get $sum)
          (call $kwrite (local.get $h) (i32.const 0x7fffffff) (i32.const 0) (i32.const 1))))
        (local.set $sum (i32.add (local.get $sum)
          (call $kread (i32.const 999) (i32.const 0) (i32.const 0) (i32.const 1))))
        local.get $sum""", ["kalloc", "kread", "kwrite"]))
    assert tenancy.pick(TARGET, 0) == 5
    assert list(g.handles.values()) == [bytearray(64)]
    tenancy.assert_no_live_work()


def test_graft_that_frees_a_handle_it_never_had_is_forbidden(tenancy: Tenancy) -> None:
    tenancy.attack(pick("(call $kfree (i32.const 12345)) i32.const 1", ["kfree"]),
                   AbortReason.FORBIDDEN_CALL, detail="kfree of handle 12345")


def test_graft_that_frees_a_handle_twice_is_forbidden_and_everything_undone(
        tenancy: Tenancy) -> None:
    tenancy.attack(pick("""(local $h i32)
        (local.set $h (call $kalloc (i32.const 64)))
        (call $kfree (local.get $h))
        (call $kfree (local.get $h))
        i32.const 1""", ["kalloc", "kfree"]), AbortReason.FORBIDDEN_CALL)


def test_graft_that_asks_for_absurd_allocations_is_refused_then_stopped_by_its_quota(
        tenancy: Tenancy) -> None:
    tenancy.attack(pick("""
        (if (i32.ne (call $kalloc (i32.const 0)) (i32.const -1)) (then unreachable))
        (if (i32.ne (call $kalloc (i32.const -5)) (i32.const -1)) (then unreachable))
        (drop (call $kalloc (i32.const 0x7fffffff)))
        i32.const 1""", ["kalloc"]), AbortReason.RESOURCE, detail="kalloc_bytes")


def test_graft_that_hoards_handles_call_after_call_is_stopped_and_all_are_freed(
        tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    g = tenancy.install(pick("""(local $i i32)
        (loop $l (drop (call $kalloc (i32.const 16)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
        i32.const 1""", ["kalloc"]))
    per_call = limits.QUOTA_HANDLES // 10
    answers = [tenancy.pick(TARGET, 0) for _ in range(per_call + 2)]
    assert answers == [1] * per_call + [DEFAULT_ANSWER] * 2
    tenancy.assert_survived(before, g, AbortReason.RESOURCE, detail="handles")


def test_graft_that_guesses_another_grafts_handles_can_neither_read_nor_free_them(
        tenancy: Tenancy) -> None:
    # alice's graft keeps a secret in host memory (handle 1); bob's graft tries handle 1.
    owner = tenancy.install(pick("""(local $h i32)
        (i32.store (i32.const 32) (i32.const 0x5ec12e7))
        (local.set $h (call $kalloc (i32.const 8)))
        (drop (call $kwrite (local.get $h) (i32.const 0) (i32.const 32) (i32.const 4)))
        local.get $h""", ["kalloc", "kwrite"]))
    assert tenancy.pick(TARGET, 0) == 1
    before = tenancy.snapshot()
    spy = tenancy.install(pick("""
        (if (i32.ne (call $kread (i32.const 1) (i32.const 0) (i32.const 32) (i32.const 4))
                    (i32.const -1)) (then unreachable))
        (call $kfree (i32.const 1))
        i32.const 1""", ["kread", "kfree"]), tenancy.bob, "t2")
    assert tenancy.pick("t2", 0) == DEFAULT_ANSWER
    tenancy.assert_survived(before, spy, AbortReason.FORBIDDEN_CALL, detail="kfree of handle 1")
    assert owner.handles[1][:4] == (0x5EC12E7).to_bytes(4, "little")


# ---- locks -----------------------------------------------------------------------------

def test_graft_that_asks_for_locks_that_do_not_exist_gets_minus_one_and_no_new_lock(
        tenancy: Tenancy) -> None:
    entries = len(tenancy.registry.locks)
    g = tenancy.install(pick("""
        (i32.sub (i32.const 10) (i32.add (i32.add (call $lock (i32.const 0))
          (call $lock (i32.const -1))) (i32.add (call $lock (i32.const 4))
          (call $lock (i32.const 99)))))""", ["lock"]))
    assert tenancy.pick(TARGET, 0) == 14
    assert g.stats.commits == 1
    assert len(tenancy.registry.locks) == entries and tenancy.registry.locks.held() == []


def test_graft_that_hoards_locks_past_its_quota_is_aborted_and_releases_every_one(
        tenancy: Tenancy) -> None:
    tenancy.attack(pick(f"""(local $i i32)
        (loop $l (drop (call $lock (i32.add (i32.const {RECORD_LOCKS}) (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l))
        i32.const 1""", ["lock"]), AbortReason.RESOURCE, detail="locks")


# Takes its first lock, says so (key ``mine``), waits until the other graft has taken
# its first lock too (key ``theirs``), then asks for the other's: a certain deadlock.
LOCKS_THEN_WAITS_THEN_LOCKS = """
    (drop (call $lock (i32.const {first})))
    (drop (call $put (i32.const {mine}) (i32.const 1)))
    (loop $wait (br_if $wait (i32.ne (call $get (i32.const {theirs})) (i32.const 1))))
    (drop (call $lock (i32.const {second})))
    i32.const {answer}"""


def test_grafts_that_take_locks_in_opposite_orders_cannot_deadlock_the_host(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_call_s": 1.0})  # only the lock time-out ends it
    before = t.snapshot()
    a = t.install(pick(LOCKS_THEN_WAITS_THEN_LOCKS.format(
        first=1, second=2, mine=500, theirs=501, answer=1), ["lock", "put", "get"]))
    b = t.install(pick(LOCKS_THEN_WAITS_THEN_LOCKS.format(
        first=2, second=1, mine=501, theirs=500, answer=2), ["lock", "put", "get"]),
        target="t2")
    answers: dict[str, int] = {}

    def run(target: str) -> None:
        answers[target] = t.pick(target, 0)

    threads = [threading.Thread(target=run, args=(x,)) for x in (TARGET, "t2")]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=10)
    assert not any(th.is_alive() for th in threads), "the host deadlocked"
    assert time.monotonic() - t0 < 20 * LOCK_TIMEOUT_S + 2.0
    # A time-out doomed one (both, if both timed out within the same poll) and the
    # doomed one was aborted; whoever was not doomed then committed its own answer.
    for g, target, own in ((a, TARGET, 1), (b, "t2", 2)):
        assert [r.reason for r in g.aborts] in ([], [AbortReason.LOCK_TIMEOUT])
        assert answers[target] == (DEFAULT_ANSWER if g.aborts else own)
    assert a.aborts or b.aborts
    for g in (a, b):
        t.registry.remove(g)
    t.host.d.pop(500, None)
    t.host.d.pop(501, None)
    t.assert_unchanged(before)


# ---- messages ----------------------------------------------------------------------------

def test_graft_that_storms_another_graft_with_messages_is_stopped_by_its_budget(
        tenancy: Tenancy) -> None:
    listener = tenancy.install(pick("i32.const 1", [], with_message("i32.const 0")),
                               target="t2")
    t0 = time.monotonic()
    tenancy.attack(pick("(loop $l (drop (call $tell (i32.const 2) (i32.const 1))) (br $l))"
                        " i32.const 1", ["tell"]), AbortReason.TIMEOUT)
    assert time.monotonic() - t0 < 2.0
    assert listener.state == "live" and listener.stats.commits > 0


def test_graft_whose_vino_message_answers_negative_has_refused_it_and_changes_nothing(
        tenancy: Tenancy) -> None:
    # A negative answer refuses the message (vino.h, ABI.md): its put is undone and
    # send() raises MessageRefused; refusing is not a failure, so the graft stays
    # (before: aborted with invalid_result and removed).
    g = tenancy.install(pick("i32.const 1", ["put"], with_message(
        "(drop (call $put (i32.const 1) (i32.const 1))) i32.const -1")))
    before = tenancy.snapshot()
    with pytest.raises(MessageRefused) as err:
        g.send(b"x")
    assert err.value.answer == -1
    assert g.state == "live" and g.failures == 0
    tenancy.assert_unchanged(before)  # its CPU time was charged: lifetime totals grow


def test_graft_that_spins_in_vino_message_is_stopped_by_its_budget(tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    g = tenancy.install(pick("i32.const 1", ["put"], with_message(
        "(drop (call $put (i32.const 1) (i32.const 1))) (loop $l (br $l)) i32.const 0")))
    with pytest.raises(GraftAborted) as err:
        g.send(b"x")
    assert err.value.reason is AbortReason.TIMEOUT
    tenancy.assert_survived(before, g, AbortReason.TIMEOUT)


def test_graft_that_grows_its_memory_in_vino_message_past_its_quota_gives_it_all_back(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"memory_bytes": 2 * limits.WASM_PAGE})
    before = t.snapshot()
    g = t.install(pick("i32.const 1", [], with_message(
        "(drop (memory.grow (i32.const 2))) i32.const 0")))
    with pytest.raises(GraftAborted) as err:
        g.send(b"")
    assert err.value.reason is AbortReason.RESOURCE
    t.assert_survived(before, g, AbortReason.RESOURCE, detail="memory_bytes")


# ---- answers at the edges ---------------------------------------------------------------

def test_graft_answering_at_the_edges_of_validity_commits(tenancy: Tenancy) -> None:
    low = tenancy.install(pick("i32.const 0"))
    high = tenancy.install(pick("i32.const 100"), target="t2")
    assert tenancy.pick(TARGET, 0) == 0 and tenancy.pick("t2", 0) == 100
    assert low.stats.commits == high.stats.commits == 1


@pytest.mark.parametrize("answer", ["101", "-1", "0x7fffffff", "0x80000000"])
def test_graft_answering_just_past_the_edges_of_validity_gets_the_default(
        tenancy: Tenancy, answer: str) -> None:
    tenancy.attack(pick(f"i32.const {answer}"), AbortReason.INVALID_RESULT)


# ---- CPU -------------------------------------------------------------------------------

SPIN_NS = 5_000_000
SPINS_5MS = """(local $t i64)
    (local.set $t (i64.add (call $now) (i64.const 5000000)))
    (loop $spin (br_if $spin (i64.lt_s (call $now) (local.get $t))))
    i32.const 1"""


def test_graft_that_spends_its_principals_cpu_quota_is_stopped_and_others_run_on(
        new_tenancy: Callable[..., Tenancy], monkeypatch: pytest.MonkeyPatch) -> None:
    # A call is charged the time its clock reads around the Wasm call. The clock is
    # injected: it moves 5 ms a reading, so each call is charged the 5 ms it spins, however
    # loaded the machine (on a real clock a loaded 2-core machine charged the first call
    # more than the whole 20 ms, so even it was refused).
    clock = itertools.count(0, SPIN_NS)
    monkeypatch.setattr(invoke, "_perf_ns", lambda: next(clock))
    t = new_tenancy(alice_quota={"cpu_total_s": 0.02})
    source = pick(SPINS_5MS, ["now"])
    t.compile_beforehand(source)  # the quota is for calls: the compile is not in it
    before = t.snapshot()
    hog = t.install(source)
    installed_ns = t.alice.usage.cpu_ns  # her install's own part is charged (thread CPU)
    assert installed_ns < 20_000_000 - SPIN_NS  # room for one call
    neighbour = t.install(pick("i32.const 2"), t.bob, "t2")
    answers = [t.pick(TARGET, 0) for _ in range(10)]
    # Every call that fits in what is left runs; the first past it is stopped, for good.
    fits = (20_000_000 - installed_ns) // SPIN_NS
    assert answers == [1] * fits + [DEFAULT_ANSWER] * (10 - fits), (installed_ns, answers)
    assert hog.removal is not None and hog.removal.reason is AbortReason.RESOURCE
    assert "total CPU quota" in hog.removal.detail
    assert t.pick("t2", 0) == 2 and neighbour.state == "live"
    t.registry.remove(neighbour)
    t.assert_unchanged(before)


def test_graft_that_calls_default_in_a_loop_is_stopped_by_its_budget(tenancy: Tenancy) -> None:
    tenancy.attack(pick("(loop $l (drop (call $default)) (br $l)) i32.const 1", ["default"]),
                   AbortReason.TIMEOUT, x=42)
    assert set(tenancy.host.default_inputs) == {42}  # on the call's own input, every time


# ---- events ----------------------------------------------------------------------------

def test_handler_that_traps_does_not_stop_another_tenants_handler(tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    bad = tenancy.handle(handler("(drop (call $push (i32.const 1))) unreachable", ["push"]))
    good = tenancy.handle(handler("(drop (call $push (i32.const 2))) i32.const 0", ["push"]),
                          tenancy.bob)
    assert tenancy.event(TARGET, 0) == 1
    assert tenancy.host.items == [2]
    assert bad.removal is not None and bad.removal.reason is AbortReason.TRAP
    assert good.stats.commits == 1
    tenancy.registry.remove(good)
    tenancy.host.items.clear()
    tenancy.assert_unchanged(before)


# The host thread of the next test stops looking for the hog's lock after this long: a
# run where it never sees L1 held (under valgrind's memcheck alice's graft ran out its 5 s
# budget and it saw nothing) fails instead of leaving a thread that keeps pytest from
# exiting.
WAITER_GIVES_UP_S = 10.0


def test_graft_whose_caller_hogs_a_lock_is_not_blamed_when_the_caller_is_doomed(
        new_tenancy: Callable[..., Tenancy]) -> None:
    # alice's graft takes L1 and then calls bob's graft on t2 again and again; a host
    # thread waits for L1, times out and dooms alice's call. Bob's graft, called under
    # the doomed call, is stopped too -- but it is alice's fault, not bob's.
    t = new_tenancy(alice_quota={"cpu_call_s": 5.0})
    before = t.snapshot()
    bobs = t.install(pick("(drop (call $put (i32.const 2) (i32.const 2))) i32.const 2",
                          ["put"]), t.bob, "t2")
    hog = t.install(pick("""(drop (call $lock (i32.const 1)))
        (loop $l (drop (call $pick_for (i32.const 2) (i32.const 0))) (br $l))
        i32.const 1""", ["lock", "pick_for"]))
    waited: list[float] = []

    def waiter() -> None:
        give_up = time.monotonic() + WAITER_GIVES_UP_S
        while not t.registry.locks.held():
            if time.monotonic() > give_up:
                return  # never saw L1 taken: waited stays empty and the test fails
            time.sleep(0.001)
        t0 = time.monotonic()
        with t.registry.locks.hold(t.registry.locks.lock("L1")):
            waited.append(time.monotonic() - t0)

    th = threading.Thread(target=waiter)
    th.start()
    assert t.pick(TARGET, 0) == DEFAULT_ANSWER
    th.join(timeout=WAITER_GIVES_UP_S)
    assert waited and waited[0] < 10 * LOCK_TIMEOUT_S + 1.0  # the waiter got its lock
    assert hog.removal is not None and hog.removal.reason is AbortReason.LOCK_TIMEOUT
    assert bobs.state == "live" and bobs.failures == 0 and bobs.stats.commits > 0
    assert t.pick("t2", 0) == 2
    t.registry.remove(bobs)
    t.host.d.clear()
    t.assert_unchanged(before)
