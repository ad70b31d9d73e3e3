"""Events: an ``EventPoint`` delivers each one to its handlers, ``deliver`` runs one.

A handler (a graft installed at an event point) runs like any protected call
(``invoke.py``) -- its store held, in a transaction of its own, its CPU and a held
shared lock's wall time accounted -- but answers nothing: a negative answer aborts
it (``InvalidResult``), and a handler that fails, is busy, or whose payer's
allowance or share of others' waits is spent just misses the event; the others still
run. Every call is timed (``Stats.samples``): events are rarer than function calls.

Invariant: a handler runs in ``Context.EVENT`` and only while the graft is live.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from vino.errors import InvalidResult, MessageRefused
from vino.graft import aborts
from vino.graft.aborts import is_host_fault
from vino.graft.point import HOST_FAULTS_DEFAULT, Context
from vino.graft.txn import _LOCAL

if TYPE_CHECKING:
    from vino.graft.fastcall import RawFunc
    from vino.graft.invoke import Graft
    from vino.graft.txn import Transaction

# Where a handler's call is, for telling host faults from graft faults.
_ENCODE: Final = "encode"
_GUEST: Final = "graft-callable"


def deliver(g: Graft, args: tuple[object, ...]) -> bool:
    """Run ``g``, one handler of an event point, on ``args``; True if it committed."""
    point = g.point
    if not g._mutex.acquire(False) and not g._enter():
        g.stats.busy += 1  # an event handler that is busy misses this event
        return False
    try:
        if not g.live:
            return False
        ts = _LOCAL.ts
        parent = ts.txn
        if parent is not None and aborts.too_deep(g, parent):
            return False
        if not g._pay(ts.acting, parent):
            return False  # the payer's allowance is spent: the handler misses it
        if ts.hold is not None and not g._may_hold():
            return False  # its share of others' waits is spent: it misses it
        stage = _ENCODE
        txn = g._begin()  # current from here: nothing but the try's entry before it
        try:
            t0 = txn.start_ns
            g.context = Context.EVENT
            wasm_args = point.encode(g.buffer, *args)
            stage = _GUEST
            t1, t2 = call_handler(g, txn, g.entry, wasm_args, "handler")
        except BaseException as exc:  # an interrupt as well: aborted, never left current
            interrupt = not isinstance(exc, Exception)  # always re-raised
            if interrupt or stage is _ENCODE or is_host_fault(exc):
                aborts.host_fault(g, txn, exc, f"{point.name} encode" if stage is _ENCODE
                                 else "graft-callable" if not interrupt
                                 else "code during the guest call")
                if point.host_faults == HOST_FAULTS_DEFAULT and not interrupt:
                    return False
                raise
            aborts.abort(g, txn, exc)
            return False
        finally:
            g.context = None
        st = g.stats
        st.commits += 1
        st.graft_ns += t2 - t1
        st.samples += 1
        st.sampled_ns += time.perf_counter_ns() - t0
        st.sampled_graft_ns += t2 - t1
        return True
    finally:
        g._end_call()


def call_handler(g: Graft, txn: Transaction, func: RawFunc, wasm_args: tuple[int, ...],
                 what: str, refusable: bool = False) -> tuple[int, int]:
    """Call an event or message handler of ``g`` inside ``txn`` and commit; return
    (t1, t2), the guest's entry and return.

    A trap, memory over quota, a doom or a negative answer raises instead (the
    caller aborts), and so does, before the guest runs, a principal whose lifetime CPU
    is spent. The function-point hot path, ``Graft.invoke``, inlines its own.
    """
    g._check_cpu_left(txn)
    if g._ticks.value != g._deadline_tick:
        g._renew_deadline()
    t1 = time.perf_counter_ns()
    rc = func.call(*wasm_args) if wasm_args else func.call0()
    t2 = time.perf_counter_ns()
    hold = txn.ts.hold
    if hold is not None:
        g._spend_hold(hold, txn, t2 - t1)
    if rc:
        raise aborts.failure(g, rc, txn, func)
    g._account_memory()
    ret = func.result_i32()
    if ret < 0:
        if refusable:
            # Refusing is its right (undone, not a failure), but the time is its
            # principal's like any call's (or the payer's allowance): uncharged, a graft
            # doing its work in messages it refuses would run free of its CPU quota.
            g._charge_cpu(t2 - t1)  # QuotaExceeded: stopped for resource
            raise MessageRefused(g.name, ret)
        raise InvalidResult(f"{what} returned {ret}")
    g._finish(txn, t1, t2)
    return t1, t2
