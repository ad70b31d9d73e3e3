"""Fault-injection loops on the registry rig, SQLite style.

For a multi-step operation, make the 1st, 2nd, ... Nth call at one site fail (an
accessor, an allocation, a lock acquisition, an undo step) until the operation
completes without reaching the fault, once with one-shot and once with persistent
faults (``fault_loop`` drives any such loop). After every run the state is exactly
the state before or exactly the committed result, and the registry's invariants hold.

- ``graft_fault_loop``: the multi-step graft (``op_graft``) alone or inside a host
  transaction that commits or aborts, kept or removed at its first abort;
- ``undo_fault_loop``: faults during abort: the state is exactly what undoing every
  step but the failed ones gives;
- ``install_fault_loop``: a failed install changes nothing at all;
- ``graft_fault_loops``: all of them, as ``vino reliability`` runs them.

Each returns a ``LoopResult``; ``tests/reliability`` asserts on every one, the report
prints them. The kernel's loops are in ``vino.testing.kernel_loops``.

Invariant: a loop ends either with a run that reached no fault or after
``MAX_LOOP`` runs, counted as a failure.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from vino.errors import AbortReason, GraftRejected
from vino.graft import Graft, transaction
from vino.testing.faults import InjectedFault, Injector
from vino.testing.rig import (
    DEFAULT_ANSWER,
    LIVE,
    NEVER_REMOVE,
    OP_ANSWER,
    Rig,
    import_line,
    op_graft,
    puts_graft,
    state_diff,
)

__all__ = [
    "MAX_LOOP", "MODES", "NESTINGS", "PUTS", "SITES", "LoopResult", "buffer_graft",
    "fault_loop", "graft_fault_loop", "graft_fault_loops", "install_fault_loop",
    "undo_fault_loop",
]

SITES: Final = ("accessor", "alloc", "lock")
MODES: Final = ("one-shot", "persistent")
NESTINGS: Final = ("alone", "host-commit", "host-abort")


@dataclass(slots=True)
class LoopResult:
    """One fault loop: an operation run with the Nth call at ``site`` failing, N = 1, 2, ...

    ``runs`` counts every run including the last, fault-free one; ``injected``
    the faults raised; ``survived`` the runs after which everything checked out.
    """

    campaign: str
    scenario: str
    site: str
    mode: str
    runs: int = 0
    injected: int = 0
    survived: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.survived == self.runs


MAX_LOOP: Final = 200  # a loop that has not completed after this many runs is a failure


def fault_loop(result: LoopResult, inj: Injector,
               attempt: Callable[[int], list[str]]) -> LoopResult:
    """Run ``attempt(n)`` for n = 1, 2, ... until a run reaches no fault."""
    for n in range(1, MAX_LOOP + 1):
        inj.arm(result.site, n, persistent=result.mode == "persistent")
        try:
            problems = attempt(n)
        finally:
            inj.disarm()
        fired = sum(inj.fired.values())
        result.runs += 1
        result.injected += fired
        if problems:
            result.failures.extend(f"N={n}: {p}" for p in problems)
        else:
            result.survived += 1
        if not fired:
            return result
    result.failures.append(f"the operation still reached a fault after {MAX_LOOP} runs")
    return result


def graft_fault_loop(site: str, mode: str, nesting: str = "alone", *,
                     removal: bool = False) -> LoopResult:
    """The multi-step graft (``op_graft``) with the Nth ``site`` call failing.

    ``nesting``: the graft runs alone, or inside a host transaction that then
    commits or aborts. With ``removal`` the graft would be removed at its first
    failure (the default policy), else it stays installed. An injected fault is the
    host's (an I/O error in an accessor, a charge or a lock), never the graft's, so
    expected after every run: either a fault fired, the host's exception reached
    the caller, the graft is still installed (with a ``host_error`` record) and the
    whole snapshot, usage included, is exactly as before; or no fault fired, the
    answer is the graft's and the state is exactly the committed one (exactly as
    before when the host transaction aborted).
    """
    rig = Rig(remove_after=1 if removal else NEVER_REMOVE)
    res = LoopResult("graft", f"op/{nesting}" + ("/removal" if removal else ""), site, mode)
    try:
        committed = _committed_state(rig, nesting)

        def attempt(n: int) -> list[str]:
            rig.host.d.clear()
            rig.host.items.clear()
            rig.host.d[1] = 100  # overwritten by the graft: undo must restore it
            g = rig.install(op_graft(), replace=True)
            before = rig.snapshot()
            inj = rig.injector
            answer: int | None
            with rig.patched():
                try:
                    answer = _run_nested(rig, nesting, 0)
                except InjectedFault:
                    answer = None  # the host's fault, re-raised to the caller
            fired = sum(inj.fired.values()) > 0
            after = rig.snapshot()
            out = list(rig.problems())
            if fired:
                if g.aborts:
                    res.reasons[g.aborts[-1].reason.value] += 1
                else:
                    out.append("a fault fired but the graft recorded no abort")
                if answer is not None:
                    out.append(f"a host fault fired but the caller got {answer}, not the "
                               "host's exception")
                if g.state != LIVE:
                    out.append("the graft was removed for the host's fault")
                if after != before:
                    out.append(f"state after the abort differs: {state_diff(before, after)}")
            else:
                if answer != OP_ANSWER:
                    out.append(f"no fault fired but the answer is {answer}")
                want = before if nesting == "host-abort" else committed
                if after != want:
                    out.append(f"state after the commit differs: {state_diff(want, after)}")
            g.remove()
            return out

        return fault_loop(res, rig.injector, attempt)
    finally:
        rig.close()


def _run_nested(rig: Rig, nesting: str, x: int) -> int:
    if nesting == "alone":
        return rig.op("t1", x)
    txn = transaction()
    with txn as t:
        answer = rig.op("t1", x)
        if nesting == "host-abort":
            t.abort()
    return answer


def _committed_state(rig: Rig, nesting: str) -> dict[str, Any]:
    """The snapshot after a fault-free run of ``op_graft`` (graft still installed)."""
    rig.host.d.clear()
    rig.host.items.clear()
    rig.host.d[1] = 100
    g = rig.install(op_graft(), replace=True)
    answer = _run_nested(rig, nesting, 0)
    if answer != OP_ANSWER:
        raise AssertionError(f"the fault-free run answered {answer}: {list(g.aborts)}")
    snap = rig.snapshot()
    g.remove()
    return snap


def _without_graft(snap: dict[str, Any], rig: Rig) -> dict[str, Any]:
    """``snap`` with the installing principal's charges given back (its graft was removed)."""
    out = copy.deepcopy(snap)
    u = out["usage"][rig.alice.name]
    for k in ("memory_bytes", "kalloc_bytes", "handles", "locks"):
        u[k] = 0
    return out



PUTS: Final = ((1, 10), (2, 20), (1, 11), (3, 30), (4, 40))  # what puts_graft writes


def _undo_residue(start: dict[int | str, int], failing: Callable[[int], bool]
                  ) -> dict[int | str, int]:
    """The dict after ``PUTS`` are undone newest first, skipping the undo calls
    ``failing(n)`` says fail (n counts undo calls from 1)."""
    d = dict(start)
    log: list[tuple[int, int | None]] = []
    for key, value in PUTS:
        log.append((key, d.get(key)))
        d[key] = value
    for n, (key, old) in enumerate(reversed(log), start=1):
        if failing(n):
            continue
        if old is None:
            del d[key]
        else:
            d[key] = old
    return d


def undo_fault_loop(mode: str, *, removal: bool = True) -> LoopResult:
    """Faults during abort: ``puts_graft`` writes five keys then traps, and the Nth
    undo step raises. The guarantee: the abort still completes (every other undo
    step runs, newest first; locks released; allocations freed; the graft removed
    per policy; the default answers), and the host state is exactly what undoing
    every step but the failed ones gives; the failures are counted."""
    rig = Rig(remove_after=1 if removal else NEVER_REMOVE)
    res = LoopResult("graft", "trap after 5 writes" + ("/removal" if removal else ""),
                     "undo", mode)
    try:
        def attempt(n: int) -> list[str]:
            rig.host.d.clear()
            rig.host.items.clear()
            rig.host.d[1] = 100
            g = rig.install(puts_graft(), replace=True)
            start = dict(rig.host.d)
            before = rig.snapshot()
            rig.graft_txn = None
            answer = rig.op("t1", 0)
            txn = rig.graft_txn  # the graft's own transaction (a fresh graft: 0 errors before)
            counted = txn.undo_errors if txn is not None else 0
            fired = sum(rig.injector.fired.values())
            out = list(rig.problems())
            if answer != DEFAULT_ANSWER:
                out.append(f"the graft traps, yet the answer is {answer}")
            if not g.aborts or g.aborts[-1].reason is not AbortReason.TRAP:
                out.append(f"want one trap abort, got {list(g.aborts)}")
            else:
                res.reasons[g.aborts[-1].reason.value] += 1
            if counted != fired:
                out.append(f"{fired} undo steps failed, {counted} counted")
            persistent = mode == "persistent"
            want_d = _undo_residue(start, lambda k: k == n or (persistent and k >= n))
            want_d["default"] = 0
            want = _without_graft(before, rig) if removal else copy.deepcopy(before)
            want["host"]["d"] = want_d
            after = rig.snapshot()
            if after != want:
                out.append(f"state after the abort differs: {state_diff(want, after)}")
            g.remove()
            return out

        return fault_loop(res, rig.injector, attempt)
    finally:
        rig.close()


def buffer_graft() -> str:
    """A graft whose ``vino_buffer`` (run once, at install, in a transaction) takes a
    lock, writes host state and allocates: what a failed install must give back."""
    return "\n".join((
        "(module",
        import_line("put"), import_line("lock"), import_line("kalloc"),
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32)',
        "    (drop (call $lock (i32.const 1)))",
        "    (drop (call $put (i32.const 5) (i32.const 55)))",
        "    (drop (call $kalloc (i32.const 128)))",
        "    i32.const 0)",
        f'  (func (export "op") (result i32) i32.const {OP_ANSWER})',
        ")",
    ))


def install_fault_loop(site: str, mode: str) -> LoopResult:
    """§5.10 under faults: install ``buffer_graft`` with the Nth ``site`` call failing.
    Either the install raised (``GraftRejected``, or the injected fault itself) and
    nothing changed at all, or it succeeded and the state is exactly that of a
    fault-free install."""
    rig = Rig()
    res = LoopResult("graft", "install (vino_buffer locks, writes, allocates)", site, mode)
    try:
        g0 = rig.install(buffer_graft())
        committed = rig.snapshot()
        g0.remove()
        committed_usage_alice = committed["usage"]["alice"]

        def attempt(n: int) -> list[str]:
            rig.host.d.clear()
            rig.host.items.clear()
            before = rig.snapshot()
            out: list[str] = []
            g: Graft | None = None
            with rig.patched():
                try:
                    g = rig.install(buffer_graft())
                except (GraftRejected, InjectedFault) as exc:
                    res.reasons[type(exc).__name__] += 1
            fired = sum(rig.injector.fired.values())
            out.extend(rig.problems())
            after = rig.snapshot()
            if g is None:
                if not fired:
                    out.append("the install failed although no fault fired")
                if after != before:
                    out.append(f"a failed install changed the state: {state_diff(before, after)}")
                if rig.registry.grafts():
                    out.append("a failed install left a graft in the registry")
            else:
                if fired:
                    out.append("a fault fired but the install went through")
                if after["usage"]["alice"] != committed_usage_alice:
                    out.append(f"install charged {after['usage']['alice']}, "
                               f"want {committed_usage_alice}")
                if after["host"] != committed["host"]:
                    out.append(f"install left host state {after['host']}")
                g.remove()
            return out

        return fault_loop(res, rig.injector, attempt)
    finally:
        rig.close()


def graft_fault_loops() -> list[LoopResult]:
    """Every graft-level loop: the multi-step graft per site x mode x nesting (with
    and without removal), faults during abort, faults during install."""
    out = [graft_fault_loop(site, mode, nesting, removal=removal)
           for removal in (False, True) for nesting in NESTINGS
           for site in SITES for mode in MODES]
    out += [undo_fault_loop(mode, removal=removal) for removal in (False, True)
            for mode in MODES]
    out += [install_fault_loop(site, mode) for site in SITES for mode in MODES]
    return out

