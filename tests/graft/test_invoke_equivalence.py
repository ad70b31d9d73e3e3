"""The hot paths inline the transaction's begin and commit: they must not drift from them.

A point calls ``Graft.call``: the native entry (``fastpath.c``'s ``Protected``: the
common case in C, the rest handed to ``invoke``) or ``Graft.invoke``, which inlines
``_begin``, the raw call, ``_finish`` and the commit's common case. ``invoke_plain``
below is the same call through ``Graft._begin``, ``RawFunc.call`` and ``Graft._finish``
(``Transaction.commit``), nothing inlined: the reference. Identical worlds run the
same script -- one dispatching every call of ``test.pick`` through the hot path under
test (the native entry, or ``invoke``), the other through ``invoke_plain`` (nested
calls included) -- and must end each step in the same state: answers, host state,
usage, locks, the grafts' records and counters, and the reused transaction object. A
change to a hot path's steps needs the same change here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pytest

from vino.errors import AbortReason
from vino.graft import Graft, aborts, current, fastpath, transaction
from vino.graft.invoke import _DECODE, _ENCODE, _GUEST, LIVE
from vino.graft.point import FunctionPoint
from vino.graft.stats import SAMPLE_MASK
from vino.graft.txn import thread_state

from .graft_world import (
    IMPORT_BOOM,
    IMPORT_KALLOC,
    IMPORT_KFREE,
    IMPORT_LOCK,
    IMPORT_PICK_FOR,
    IMPORT_PUSH,
    IMPORT_PUT,
    PUT_AND_ANSWER,
    World,
    graft,
    make_world,
)

PUT_THEN_TRAP = graft(IMPORT_PUT, '''
  (func (export "pick") (result i32)
    (drop (call $put (i32.const 2) (i32.const 22)))
    unreachable)''')
NEST_AND_PUSH = graft(f"{IMPORT_PICK_FOR}\n{IMPORT_PUSH}", '''
  (func (export "pick") (result i32)
    (drop (call $push (i32.load (i32.const 0))))
    (call $pick_for (i32.const 1) (i32.load (i32.const 0))))''')
KALLOC_AND_ANSWER = graft(IMPORT_KALLOC, '''
  (func (export "pick") (result i32)
    (drop (call $kalloc (i32.const 64)))
    i32.const 9)''')
LOCK_AND_ANSWER = graft(IMPORT_LOCK, '''
  (func (export "pick") (result i32) (drop (call $lock (i32.const 1))) i32.const 3)''')
KFREE_FIRST_AND_ANSWER = graft(IMPORT_KFREE, '''
  (func (export "pick") (result i32) (call $kfree (i32.const 1)) i32.const 8)''')
HOST_BUG = graft(IMPORT_BOOM, '(func (export "pick") (result i32) (call $boom))')
REENTER = graft(IMPORT_PICK_FOR, '''
  (func (export "pick") (result i32) (call $pick_for (i32.const 5) (i32.const 1)))''')
OUT_OF_RANGE = graft("", '(func (export "pick") (result i32) i32.const 1000)')

GRAFTS = {"t1": PUT_AND_ANSWER, "t2": PUT_THEN_TRAP, "t3": NEST_AND_PUSH,
          "t4": KALLOC_AND_ANSWER, "t5": REENTER, "t6": HOST_BUG, "t7": OUT_OF_RANGE,
          "t8": LOCK_AND_ANSWER, "t9": KFREE_FIRST_AND_ANSWER}


def invoke_plain(g: Graft, args: tuple[Any, ...]) -> Any:
    """``g.invoke(args)`` with nothing inlined. As there, the call's CPU counts from the
    guest's entry (``start_ns`` 0 until then)."""
    point = g.point
    assert isinstance(point, FunctionPoint)
    if not g._enter():
        g.stats.busy += 1
        return point.default(*args)
    try:
        if g.state is not LIVE:
            return point.redispatch(g, args)
        ts = thread_state()
        parent = ts.txn
        if parent is not None and aborts.too_deep(g, parent):
            return point.default(*args)
        if not g._pay(ts.acting, parent):
            return point.default(*args)
        if ts.hold is not None and not g._may_hold():
            return point.default(*args)
        txn = g._begin()
        txn.args = args
        txn.start_ns = 0
        st = g.stats
        sample = not st.commits & SAMPLE_MASK
        stage = _ENCODE
        try:
            t0 = time.perf_counter_ns()
            wasm_args = point.encode(g.buffer, *args)
            stage = _GUEST
            if g._ticks.value != g._deadline_tick:
                g._renew_deadline()
            t1 = txn.start_ns = time.perf_counter_ns()
            rc = g.entry.call(*wasm_args)
            t2 = time.perf_counter_ns()
            if txn.ts.hold is not None:
                g._spend_hold(txn.ts.hold, txn, t2 - t1)
            if rc:
                raise aborts.failure(g, rc, txn)
            if g.may_grow:
                g._account_memory()
            stage = _DECODE
            result = point.decode(g.buffer, g.entry.result_i32(), *args)
            stage = _GUEST
            g._finish(txn, t1, t2)
        except BaseException as exc:
            return g._failed(txn, exc, stage, args)
        st.commits += 1
        st.graft_ns += t2 - t1
        if sample:
            st.sampled_ns += time.perf_counter_ns() - t0
            st.sampled_graft_ns += t2 - t1
            st.samples += 1
        return result
    finally:
        g._txn.args = None
        g._allowance = None
        if g.state is not LIVE and g.instance is not None:
            g._free()
        g._mutex.release()
        g._flush()


NATIVE = "native"  # Graft.call as installed: the native entry
INVOKE = "invoke"  # Graft.invoke, the Python hot path
PLAIN = "plain"  # invoke_plain, the reference
HOT_PATHS = [pytest.param(NATIVE, marks=pytest.mark.skipif(
                 fastpath.protected(fastpath.native()) is None, reason=f"the protected call "
                 f"is not native here: {fastpath.PART.reason or 'VINO_FASTPATH'}")),
             INVOKE]


def _world(path: str) -> tuple[World, dict[str, Graft]]:
    w = make_world(remove_after=3)
    grafts = {t: w.install(src, target=t, name=t) for t, src in GRAFTS.items()}
    for g in grafts.values():
        if path == NATIVE:
            assert g._native is not None and g.call is g._native
        elif path == INVOKE:
            g.call = g.invoke
        else:
            g.call = functools.partial(invoke_plain, g)
    return w, grafts


def _state(w: World, grafts: dict[str, Graft]) -> dict[str, Any]:
    out: dict[str, Any] = {"world": w.snapshot(), "default_calls": w.host.default_calls,
                           "current": current() is not None}
    for t, g in grafts.items():
        txn = g._txn
        out[t] = {
            "state": g.state, "failures": g.failures, "handles": len(g.handles),
            "aborts": [(a.reason, a.detail, a.graft_at_fault, a.host_fault) for a in g.aborts],
            "stats": (g.stats.commits, dict(g.stats.aborts), g.stats.busy, g.stats.samples),
            "txn": (txn.state, txn.parent is None, txn.undo, txn.locks, txn.deferred,
                    txn.doom_reason, txn.fault, txn.undo_room, txn.budget_ns,
                    txn.wall_deadline_ns, txn.undo_charges, txn.args, txn.start_ns == 0),
            "allowance": g._allowance,
        }
    return out


def _call(w: World, target: str, x: int) -> object:
    try:
        return w.pick(target, x)
    except RuntimeError as exc:  # a host fault reaches the caller
        return f"raised {type(exc).__name__}: {exc}"


def _in_host_txn(w: World, steps: Callable[[], list[object]], *, commit: bool,
                 doom: bool = False) -> list[object]:
    with transaction() as txn:
        if doom:
            txn.doom(AbortReason.LOCK_TIMEOUT, "a waiter wants a lock it holds")
        out = steps()
        if not commit:
            txn.abort()
    return out


SCRIPT: list[tuple[str, Callable[[World], list[object]]]] = [
    ("commit", lambda w: [_call(w, "t1", 3), _call(w, "t1", 4)]),
    ("abort", lambda w: [_call(w, "t2", 1)]),
    ("invalid result", lambda w: [_call(w, "t7", 1)]),
    ("nested", lambda w: [_call(w, "t3", 6)]),
    ("re-entered", lambda w: [_call(w, "t5", 1)]),
    ("host fault", lambda w: [_call(w, "t6", 1)]),
    ("undo kept by a host transaction that commits",
     lambda w: _in_host_txn(w, lambda: [_call(w, "t1", 7), _call(w, "t4", 0)], commit=True)),
    ("undo run by a host transaction that aborts",
     lambda w: _in_host_txn(w, lambda: [_call(w, "t3", 8), _call(w, "t4", 0)], commit=False)),
    ("doom of the caller's transaction",
     lambda w: _in_host_txn(w, lambda: [_call(w, "t1", 9), _call(w, "t3", 2)], commit=False,
                            doom=True)),
    ("a lock held to the end of the call", lambda w: [_call(w, "t8", 0)]),
    ("a lock handed to the host transaction",
     lambda w: _in_host_txn(w, lambda: [_call(w, "t8", 0), _call(w, "t1", 1)], commit=True)),
    ("a free deferred to the commit", lambda w: [_call(w, "t4", 0), _call(w, "t9", 0)]),
    ("abort until removal", lambda w: [_call(w, "t2", 1), _call(w, "t2", 1), _call(w, "t2", 1)]),
    ("sixteen commits: the sampled call", lambda w: [_call(w, "t1", i) for i in range(16)]),
]


@pytest.mark.parametrize("path", HOT_PATHS)
def test_hot_path_and_plain_begin_commit_leave_the_same_state(path: str) -> None:
    fast, fast_grafts = _world(path)
    plain, plain_grafts = _world(PLAIN)
    try:
        assert _state(fast, fast_grafts) == _state(plain, plain_grafts)
        for step, run in SCRIPT:
            got_fast, got_plain = run(fast), run(plain)
            assert got_fast == got_plain, step
            assert _state(fast, fast_grafts) == _state(plain, plain_grafts), step
    finally:
        fast.registry.close()
        plain.registry.close()


@pytest.mark.parametrize("path", [*HOT_PATHS, PLAIN])
def test_every_path_really_ran_the_script(path: str) -> None:
    """Guards the comparison above: each script step changes what it should."""
    w, grafts = _world(path)
    try:
        assert _call(w, "t1", 3) == 5 and w.host.d == {3: 11}
        assert _call(w, "t2", 1) == 7 and grafts["t2"].failures == 1  # trapped: the default
        assert _call(w, "t3", 6) == 5 and w.host.items == [6]  # nested t1 answered
        assert _call(w, "t6", 1) == "raised RuntimeError: a bug in host code called by the graft"
        assert _call(w, "t5", 1) == 7  # re-entered itself: the default answered inside
        assert grafts["t5"].stats.commits == 1 and w.host.default_calls == 2
    finally:
        w.registry.close()
