"""Attacks on the registry's lock through an install.

Every install, replacement and removal -- a graft removed after a failure, on the
path of the operation that called it, included -- changes a point's table under
the registry's one lock. An install runs the graft's own code, ``vino_buffer()``,
for up to its principal's per-call budget (and longer in wall time: waits in its
graft-callables cost no CPU). Found: it ran under that lock, so one principal's
install held up every other principal's installs and removals, and the operations
whose failing grafts were being removed, for as long as her ``vino_buffer()`` ran.
Now the graft is built and its buffer asked for outside the lock; the lock covers
only the checks of the table and the switch.
"""

from __future__ import annotations

import threading
import time

from vino.errors import GraftRejected

from .harness import DEFAULT_ANSWER, TARGET, Tenancy, module, pick

# vino_buffer() calls now() until its budget stops it: it lets other threads run.
SLOW_BUFFER = module(["now"], """  (func (export "vino_buffer") (result i32)
    (loop (drop (call $now)) (br 0)) (i32.const 0))""",
                     '  (func (export "pick") (result i32) (i32.const 1))').replace(
    '  (func (export "vino_buffer") (result i32) i32.const 0)\n', "", 1)

MALLORY_BUDGET_S = 0.6  # a generous per-call budget the host gave her
BOUND_S = 0.25  # what bob may wait, generously, on a loaded machine


def test_graft_whose_vino_buffer_runs_long_cannot_hold_up_other_principals_installs(
        new_tenancy: type[Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_call_s": MALLORY_BUDGET_S})
    mallory, bob = t.alice, t.bob
    t.registry.install(t.pick, pick("unreachable"), bob, "t2")  # fails at its first call
    started = threading.Event()
    rejected: list[BaseException] = []

    def install_slow() -> None:
        started.set()
        try:
            t.registry.install(t.pick, SLOW_BUFFER, mallory, "t1")
        except GraftRejected as e:
            rejected.append(e)

    th = threading.Thread(target=install_slow)
    th.start()
    started.wait(5.0)
    time.sleep(0.05)  # she is inside vino_buffer() by now
    t0 = time.perf_counter()
    g = t.registry.install(t.pick, pick("i32.const 3"), bob, TARGET)  # bob's own install
    t_install = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert t.pick("t2", 1) == DEFAULT_ANSWER  # his failing graft is removed on his call
    t_removal = time.perf_counter() - t0
    t0 = time.perf_counter()
    g.remove()
    t_remove = time.perf_counter() - t0
    th.join(10.0)
    assert not th.is_alive()
    assert rejected and "timeout" in str(rejected[0])  # her install ran to its budget
    # Before the fix each of bob's waited for her vino_buffer(): about MALLORY_BUDGET_S.
    assert t_install < BOUND_S, t_install
    assert t_removal < BOUND_S, t_removal
    assert t_remove < BOUND_S, t_remove


# vino_buffer() takes about 150 ms of wall time, calling now(), then answers.
LATE_BUFFER = module(["now"], """  (func (export "vino_buffer") (result i32) (local $t i64)
    (local.set $t (call $now))
    (loop (br_if 0 (i64.lt_u (i64.sub (call $now) (local.get $t)) (i64.const 150000000))))
    (i32.const 0))""", '  (func (export "pick") (result i32) (i32.const 1))').replace(
    '  (func (export "vino_buffer") (result i32) i32.const 0)\n', "", 1)


def test_two_installs_racing_for_one_target_leave_one_graft_and_nothing_of_the_other(
        new_tenancy: type[Tenancy]) -> None:
    # Built outside the lock, two installs for one target meet at the switch: the one
    # that comes second is refused there, and gives back everything its build took.
    t = new_tenancy(alice_quota={"cpu_call_s": MALLORY_BUDGET_S})
    before = t.snapshot()
    started = threading.Event()
    late: list[BaseException] = []

    def install_late() -> None:
        started.set()
        try:
            t.registry.install(t.pick, LATE_BUFFER, t.alice, TARGET)
        except GraftRejected as e:
            late.append(e)

    th = threading.Thread(target=install_late)
    th.start()
    started.wait(5.0)
    time.sleep(0.05)  # the late one is inside vino_buffer() by now
    g = t.registry.install(t.pick, pick("i32.const 3"), t.alice, TARGET)
    th.join(10.0)
    assert not th.is_alive()
    assert late and "already has graft" in str(late[0]), late
    assert t.registry.grafts(t.pick) == [g] and t.pick(TARGET, 1) == 3
    g.remove()
    t.assert_unchanged(before)  # the refused build's memory, instance and share returned
