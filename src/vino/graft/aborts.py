"""The failure side of a protected call: why it stopped, whose fault, what follows.

Used by ``invoke.py`` only, on the slow path (nothing here runs for a call that
commits). In the order a failing call meets them:

1. ``too_deep`` before the call: graft calls nested ``MAX_GRAFT_NESTING`` deep
   are refused (recorded, the enclosing graft doomed, the default answers);
2. ``failure(g, rc, txn)`` after a guest call that did not return: the exception
   that aborts it -- ``CallRefused`` when the stack guard refused (``no_stack``),
   else ``GraftAborted`` with the reason ``fault`` finds: the exception host code
   raised under the guest and kept on the transaction (``txn.fault``; a host
   fault is re-raised as itself), the doom of the transaction or an ancestor, or
   the trap;
3. ``classify(exc)``: the reason and detail of any exception, from the error's
   own ``abort_reason`` (``vino.errors``) or the table of built-in ones; anything
   else is the host's (``host_error``, ``is_host_fault``);
4. ``abort(g, txn, exc)`` for the graft's fault: undo, charge the CPU and memory
   it used, record, count the failure, remove the graft at ``remove_after`` (or at
   once, over its memory quota). ``host_fault(g, txn, exc, where)`` for the host's:
   undo, charge, record as ``host_error``, note where on ``exc``; no failure
   counted. Events for the observers are queued on the graft (``Graft._events``)
   and emitted once its store is released.

Invariant: a refused call (``CallRefused``), an abort caused by a caller's doom and
one stopped by a hold's wall allowance that other calls spent (``AllowanceSpent``)
are recorded with ``graft_at_fault=False`` and never count towards removal -- unless
the call grew the graft's memory past its principal's quota: that is its own fault
(``resource``), and it is removed.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Final, NamedTuple

from vino import limits
from vino.errors import (
    AbortReason,
    AllowanceSpent,
    CallRefused,
    GraftAborted,
    QuotaExceeded,
    VinoError,
)
from vino.graft import failures, fastcall, interrupts, traps
from vino.graft.txn import ACTIVE, Transaction

if TYPE_CHECKING:
    from vino.graft.invoke import Graft


class AbortRecord(NamedTuple):
    """Why one invocation of a graft was aborted (immutable).

    ``host_fault``: the host's own code raised (reason ``host_error``); the graft
    was not charged a failure and the exception went to the caller.

    A named tuple, not a frozen dataclass: one is made on every abort, and a frozen
    dataclass's ``__init__`` cost 1.6 µs against 0.6 µs (measured side by side).
    """

    reason: AbortReason
    detail: str
    at_ns: int
    graft_at_fault: bool = True  # False: not counted towards removal (see CallRefused)
    host_fault: bool = False  # the host's own code raised: the graft is not at fault


# Built-in exceptions that blame the graft (vino's own errors say it themselves).
_BUILTIN_REASONS: Final[dict[type[BaseException], AbortReason]] = {
    TimeoutError: AbortReason.TIMEOUT,
}
_BUILTIN_FAULTS: Final = tuple(_BUILTIN_REASONS)


def classify(exc: BaseException) -> tuple[AbortReason, str]:
    """The reason and detail a call stopped by ``exc`` is aborted with."""
    if isinstance(exc, VinoError) and exc.abort_reason is not None:
        return exc.abort_reason, exc.abort_detail()
    for cls in type(exc).__mro__:
        reason = _BUILTIN_REASONS.get(cls)
        if reason is not None:
            return reason, str(exc)
    return AbortReason.HOST_ERROR, f"{type(exc).__name__}: {exc}"


def is_host_fault(exc: BaseException) -> bool:
    """True if ``exc`` is the host's own bug, not something to blame the graft for.

    A type test, no detail formatted: the abort path classifies an exception once
    (``abort``), not here as well.
    """
    if isinstance(exc, VinoError):
        return exc.abort_reason is None
    return not isinstance(exc, _BUILTIN_FAULTS)


def enclosing_graft(t: Transaction | None) -> Transaction | None:
    """The nearest graft transaction at or above ``t``."""
    while t is not None and t.graft is None:
        t = t.parent
    return t


# ---- before and after the guest call -------------------------------------------------------
def failure(g: Graft, rc: int, txn: Transaction,
            func: fastcall.RawFunc | None = None) -> VinoError:
    """The exception that aborts a guest call that did not return (rc != OK)."""
    if rc == fastcall.NO_STACK:
        return no_stack(g, txn)
    return GraftAborted(*fault(g, rc, txn, func), graft=g.name)


def stack_detail(g: Graft) -> str:
    guard = g.registry.sandbox.stack_guard
    left = guard.left() if guard is not None else 0
    need = guard.need if guard is not None else g.registry.sandbox.stack_need
    return (f"{left // 1024} KiB of native stack left on this thread; a graft call needs "
            f"{need // 1024} KiB (MAX_WASM_STACK + HOST_STACK_RESERVE)")


def _named_for(g: Graft, reader: Graft) -> str | None:
    """``g``'s name, quoted, for a detail ``reader``'s principal reads if ``g`` is its own
    (or it is privileged); None for another principal's graft: its name is its owner's
    to tell (SAFETY.md, information flow)."""
    same = g.principal is reader.principal or reader.principal.privileged
    return repr(g.name) if same else None


def _callee(g: Graft, reader: Graft) -> str:
    name = _named_for(g, reader)
    return f"graft {name}" if name else "a graft of another principal"


def _enclosing(outer: Graft, reader: Graft) -> str:
    name = _named_for(outer, reader)
    return f"the enclosing graft {name}" if name else "the enclosing graft (another principal's)"


def no_stack(g: Graft, txn: Transaction) -> CallRefused:
    """The guard refused the call: blame the enclosing graft, if any, else the host."""
    enclosing = enclosing_graft(txn.parent)
    if enclosing is not None:
        detail = stack_detail(g)
        outer = enclosing.calling_graft
        enclosing.doom(AbortReason.RESOURCE, f"its nested call of {_callee(g, outer)} at "
                       f"{g.point.name} was refused: {detail} (nested graft calls pile up on "
                       "one stack)")
        return CallRefused(f"not called: {detail}; {_enclosing(outer, g)} nested it "
                           "and is aborted")
    return CallRefused(f"not called: {stack_detail(g)}; the host thread's stack is too "
                       "small, not the graft's fault (kept)")


def too_deep(g: Graft, parent: Transaction) -> bool:
    """True (and the enclosing graft doomed, the refusal recorded) if calling ``g``
    under ``parent`` would nest graft calls more than ``MAX_GRAFT_NESTING`` deep."""
    depth = 0
    enclosing = None
    t: Transaction | None = parent
    while t is not None:
        if t.graft is not None:
            depth += 1
            enclosing = enclosing or t
        t = t.parent
    if depth < limits.MAX_GRAFT_NESTING or enclosing is None:
        return False
    what = (f"graft calls nested {depth + 1} deep on one thread; the limit is "
            f"{limits.MAX_GRAFT_NESTING} (MAX_GRAFT_NESTING)")
    outer = enclosing.calling_graft
    enclosing.doom(AbortReason.RESOURCE,
                   f"{what}: its call of {_callee(g, outer)} at {g.point.name} was refused")
    rec = AbortRecord(AbortReason.RESOURCE, f"not called: {what}; {_enclosing(outer, g)} "
                      "nested it and is aborted",
                      time.monotonic_ns(), graft_at_fault=False)
    g._keep_abort(rec)
    return True


def fault(g: Graft, rc: int, txn: Transaction,
          func: fastcall.RawFunc | None = None) -> tuple[AbortReason, str]:
    """Why the guest call of ``func`` (default: the entry) stopped (rc is TRAP or ERROR).

    Raises the host's own exception, if that is what stopped it (a host fault).
    """
    if rc == fastcall.NO_STACK:
        return AbortReason.RESOURCE, f"not called: {stack_detail(g)}"
    exc = txn.fault
    if exc is not None:
        if is_host_fault(exc):
            raise exc  # the host's bug: the caller's except clause handles it
        return classify(exc)
    doomed = txn.doomed()
    if doomed is not None and doomed.doom_reason is not None:
        return doomed.doom_reason, doomed.doom_detail
    f = func or g.entry
    return AbortReason.TRAP, traps.describe(f.trap_code if rc == fastcall.TRAP else -1,
                                            f.message)


# ---- ending a failed call ------------------------------------------------------------------
def _charge_used(g: Graft, txn: Transaction) -> None:
    """An aborted call still used CPU and may have grown its memory: charge both, so
    failing calls cannot get round the total-CPU quota or hide their pages."""
    if txn.start_ns:
        with contextlib.suppress(QuotaExceeded):  # aborting anyway
            g._charge_cpu(max(0, time.perf_counter_ns() - txn.start_ns))
    if g.may_grow and g.instance is not None:
        with contextlib.suppress(QuotaExceeded):  # over quota: charged, marked for removal
            g._account_memory()


def _undo(txn: Transaction) -> int:
    """Abort ``txn`` if it is still live; return how many of its undo steps raised."""
    if txn.state != ACTIVE:
        return 0
    failed_before = txn.undo_errors
    txn.abort()
    return txn.undo_errors - failed_before


def abort(g: Graft, txn: Transaction, exc: BaseException) -> AbortRecord:
    """Abort ``g``'s call for ``exc`` (the graft's fault, or a refusal); record it.

    Undone, recorded and (by the policy) removed whole: a signal handler's exception
    meanwhile is raised once all that is done (``interrupts``)."""
    with interrupts.held():
        return _abort(g, txn, exc)


def _abort(g: Graft, txn: Transaction, exc: BaseException) -> AbortRecord:
    reason, detail = classify(exc)
    # Stopped because its principal's other calls spent the hold's wall allowance (sandbox).
    others_spent = isinstance(txn.fault, AllowanceSpent)
    # Stopped because a caller's transaction was doomed (its lock wanted, its undo log
    # full), not for anything of its own: abort, but do not blame this graft.
    caller = txn.parent.doomed() if txn.parent is not None else None
    callers_doom = (txn.doom_reason is None and caller is not None
                    and reason is caller.doom_reason and detail == caller.doom_detail)
    if callers_doom:
        detail = f"its caller's transaction was doomed: {detail}"
    failed = _undo(txn)
    if failed:  # the installer must learn that the state was not fully restored
        detail += f"; {failed} undo step(s) raised (logged), state not fully restored"
    over_before = g._memory_over
    _charge_used(g, txn)
    at_fault = not isinstance(exc, CallRefused) and not callers_doom and not others_spent
    if g._memory_over and not over_before and (reason is AbortReason.TRAP or not at_fault):
        # It took memory past its quota and then stopped (a compiled graft whose frame
        # does not fit takes every page it can first), or was stopped for another's
        # fault: the memory is the cause, and its own. Kept, it would hold the pages and
        # commit from its next call on (nothing looks at its memory until it grows).
        reason, detail = AbortReason.RESOURCE, f"memory over quota, then {detail}"
        at_fault = True
    rec = AbortRecord(reason, detail, time.monotonic_ns(), at_fault)
    g._keep_abort(rec)
    if not at_fault:
        return rec
    g.failures += 1
    g._queue(failures.ABORT, rec, None)
    if g.failures >= g.remove_after or g._memory_over:
        g._retire(rec)
    return rec


def host_fault(g: Graft, txn: Transaction, exc: BaseException, where: str) -> AbortRecord:
    """Abort ``txn`` for the host's own exception; keep the graft; note it on ``exc``.

    The caller re-raises ``exc`` (or answers with the default, per the point's
    ``host_faults``). The graft is charged the CPU it used but not a failure:
    it is not removed for the host's bug. Whole, as ``abort`` is.
    """
    with interrupts.held():
        return _host_fault(g, txn, exc, where)


def _host_fault(g: Graft, txn: Transaction, exc: BaseException, where: str) -> AbortRecord:
    undo_failed = _undo(txn)
    _charge_used(g, txn)
    detail = f"{where}: {type(exc).__name__}: {exc}"
    if undo_failed:
        detail += f"; {undo_failed} undo step(s) raised (logged), state not fully restored"
    rec = AbortRecord(AbortReason.HOST_ERROR, detail, time.monotonic_ns(),
                      graft_at_fault=False, host_fault=True)
    g._keep_abort(rec)
    g._queue(failures.HOST_FAULT, rec, exc)
    failures.add_host_note(exc, where, g)
    return rec
