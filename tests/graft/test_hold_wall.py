"""The wall-time bound under a shared lock charges what the graft ran, not how busy the host is.

What if an honest graft's first epoch tick finds the GIL taken by busy host threads (or
its thread descheduled by a loaded machine) for longer than its principal's whole
allowance per hold (``HOLD_GRAFT_WALL_S``)? That wait is not the graft running: the call
is neither stopped nor charged for it. What if a graft that has run past its first tick
is kept waiting at a later one? Then it has held the lock for that long: it is stopped,
as before. The lateness is injected into the epoch callback's clock at a known tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from vino import limits
from vino.errors import AbortReason
from vino.graft import (
    FunctionPoint,
    Graft,
    GraftCallable,
    Principal,
    Quota,
    Registry,
    any_principal,
    sandbox,
)
from vino.graft.hold import SharedLock
from vino.graft.txn import thread_state

LATE_NS = int(3 * limits.HOLD_GRAFT_WALL_S * 1e9)  # three whole allowances


# A nap returns at the ticker's next tick; it gives up only after this long (the ticker
# stopped). 50 ms was too short: a loaded machine left the ticker unscheduled for
# longer, the nap met no tick and the graft it should have stopped answered.
NAP_LIMIT_S = 5.0


def _napper(reg: Registry) -> Callable[[object], int]:
    """A graft-callable that sleeps (the GIL released) until the ticker has ticked at
    least once: a fixed sleep let a loaded machine's ticker miss the nap altogether, and
    then no tick met the graft at all."""
    counter = reg.sandbox.ticker.counter

    def nap(txn: object) -> int:
        start, until = counter.value, time.monotonic() + NAP_LIMIT_S
        while counter.value == start and time.monotonic() < until:
            time.sleep(0.001)
        return 0

    return nap


@pytest.fixture
def reg() -> Iterator[Registry]:
    r = Registry()
    yield r
    r.close()


def _point(reg: Registry) -> FunctionPoint[object, int, int]:
    return reg.declare(FunctionPoint[object, int, int](
        name="hold.pick", entry="pick", buffer_size=16, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: -1,
        callables=(GraftCallable("nap", (), ("i32",), _napper(reg)),), may_install=any_principal,
        target_type=object))


def _late_from_tick(n: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From the ``n``-th epoch callback on, its clock reads ``LATE_NS`` late: as if that
    callback had waited that long for the GIL. Returns the callbacks' count (one cell)."""
    seen = [0]
    real = time.perf_counter_ns

    def late() -> int:
        seen[0] += 1
        return real() + (LATE_NS if seen[0] >= n else 0)

    monkeypatch.setattr(sandbox, "_wall_ns", late)
    return seen


# Naps (a tick passes), then enters a loop: the first loop header meets that tick.
NAP_THEN_ANSWER = ('(module (import "vino" "nap" (func $nap (result i32)))'
                   ' (memory (export "memory") 1)'
                   ' (func (export "vino_buffer") (result i32) i32.const 0)'
                   ' (func (export "pick") (result i32) (local $i i32)'
                   ' (drop (call $nap))'
                   ' (loop (local.set $i (i32.add (local.get $i) (i32.const 1)))'
                   '  (br_if 0 (i32.lt_u (local.get $i) (i32.const 100))))'
                   ' (i32.const 5)))')

SPIN = ('(module (memory (export "memory") 1)'
        ' (func (export "vino_buffer") (result i32) i32.const 0)'
        ' (func (export "pick") (result i32) (loop br 0) (i32.const 5)))')


def test_graft_whose_first_tick_waits_past_the_allowance_is_not_stopped_or_charged(
        reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    point = _point(reg)
    g = reg.install(point, NAP_THEN_ANSWER, Principal("alice"), target="t")
    seen = _late_from_tick(1, monkeypatch)
    lock = SharedLock("fs")
    with lock:
        assert point("t", 0) == 5  # its first tick came 300 ms late: the host's wait
        assert seen[0] >= 1  # the late tick was met
        hold = thread_state().hold
        assert hold is not None
        # Charged what it ran (a 5 ms nap and a short loop), not the 300 ms.
        assert hold.spent[id(g.principal)] < LATE_NS // 3
    assert g.state == "live" and g.stats.commits == 1 and not g.aborts


def test_graft_kept_waiting_at_a_later_tick_is_still_stopped_by_the_allowance(
        reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    point = _point(reg)
    # A CPU budget of a whole second: only the wall-time bound can stop it early.
    g = reg.install(point, SPIN, Principal("mallory", Quota(cpu_call_s=1.0)), target="t")
    seen = _late_from_tick(2, monkeypatch)
    with SharedLock("fs"):
        t0 = time.thread_time()
        assert point("t", 0) == -1
        assert time.thread_time() - t0 < 0.5  # stopped long before its CPU budget
    assert seen[0] >= 2
    assert g.aborts and g.aborts[0].reason is AbortReason.TIMEOUT
    assert "wall-time allowance" in g.aborts[0].detail
    # Its own call ran past a whole allowance: blamed, and removed by the usual policy.
    assert g.aborts[0].graft_at_fault and g.state == "removed"


def _stopped_with_the_allowance_spent(reg: Registry, name: str, own: bool
                                     ) -> tuple[FunctionPoint[object, int, int], Graft]:
    """A napping graft of principal ``name``, called in a hold whose whole allowance the
    principal has spent already (injected): by the graft's own earlier calls (``own``),
    or by its other grafts. The call is stopped at the tick its nap met (the default
    answers) for a time-out; returns the point and the graft."""
    point = _point(reg)
    who = Principal(name)
    g = reg.install(point, NAP_THEN_ANSWER, who, target="t")
    allowance_ns = int(limits.HOLD_GRAFT_WALL_S * 1e9)
    with SharedLock("fs"):
        hold = thread_state().hold
        assert hold is not None
        hold.spend(who, allowance_ns, g if own else None)
        assert hold.own_ns(g) == (allowance_ns if own else 0)
        assert point("t", 0) == -1  # stopped at the tick its nap met: the default answered
    assert g.aborts and g.aborts[0].reason is AbortReason.TIMEOUT
    return point, g


def test_good_graft_stopped_because_its_principals_other_calls_spent_the_allowance_is_kept(
        reg: Registry) -> None:
    # What if a principal's other grafts spent the hold's whole allowance (a hostile
    # read-ahead spinning before its owner's encryption filter runs in the same hold), and
    # the loaded machine stretches the good graft's short call across a tick? It is
    # stopped there (the allowance is spent), but it ran for a tick, not past a whole
    # allowance: not its fault, so it is kept -- not removed, its file not sealed for good.
    point, g = _stopped_with_the_allowance_spent(reg, "alice", own=False)
    assert not g.aborts[0].graft_at_fault
    assert "by the principal's other calls in this hold" in g.aborts[0].detail
    assert g.state == "live" and g.failures == 0
    assert point("t", 0) == 5  # kept: its next call answers


def test_graft_spending_the_allowance_in_many_short_calls_of_one_hold_is_still_blamed(
        reg: Registry) -> None:
    # What if one graft spends its principal's allowance not in one long call but in
    # several short ones in the same hold, each under the allowance? Its earlier calls
    # are its own spending, not another graft's: the call the tick stops is blamed and
    # the graft removed by the usual policy, as if it had made one long call.
    _, g = _stopped_with_the_allowance_spent(reg, "mallory", own=True)
    assert g.aborts[0].graft_at_fault
    assert "wall-time allowance" in g.aborts[0].detail
    assert "not this graft's fault" not in g.aborts[0].detail


def test_each_call_of_a_graft_under_a_hold_is_charged_to_it_by_name(reg: Registry) -> None:
    # The hold records what each graft's own calls spent (the base of the blame above).
    point = _point(reg)
    alice = Principal("alice")
    g = reg.install(point, NAP_THEN_ANSWER, alice, target="t")
    with SharedLock("fs"):
        hold = thread_state().hold
        assert hold is not None
        assert point("t", 0) == 5
        assert point("t", 0) == 5
        assert hold.own_ns(g) > 0
        assert hold.own_ns(g) == hold.spent[id(alice)]
