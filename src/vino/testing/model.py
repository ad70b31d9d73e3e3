"""Nested transactions run in lockstep with a model of them.

``TxnModel`` drives real ``vino.graft`` transactions and a ``LockManager`` beside a
model (a dict, a list, an attribute, who holds which lock, what is charged, what
ran), one operation at a time: ``begin``; on the innermost transaction ``write`` /
``delete`` / ``append`` / ``assign``, ``failing_write`` (a change whose undo raises),
``defer``, ``lock``; ``commit``, ``abort``. ``problems()`` compares the two after any
operation. ``txn_walks`` runs seeded random walks of it; the hypothesis state machine
in ``tests/reliability`` drives the same model.

Locks held by another thread's transaction or by a plain host thread time out on a
stepping clock (``StepClock``), so in microseconds and the same on every run.

Invariant: after every operation the real transactions and the model agree, or
``problems()`` says where they do not.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from vino.errors import LockTimeout, QuotaExceeded, VinoError
from vino.graft import Graft, LockManager, Principal, Quota, Transaction, begin, current
from vino.graft.txn import clear_current
from vino.testing.faults import StepClock
from vino.testing.rig import quiet_undo_log
from vino.testing.world import Host

__all__ = ["TxnModel", "UndoFailed", "WalkResult", "foreign_transaction", "txn_walks"]

@dataclass(slots=True)
class _ModelTxn:
    """The model of one open transaction: how to undo it, what it locked and deferred."""

    undo: list[tuple[str, Any]] = field(default_factory=list)  # (kind, data); kind "fail" raises
    locks: list[int] = field(default_factory=list)
    deferred: int = 0


class _FakeGraft(Graft):
    """What a lock acquisition reads from a transaction's graft: whom to charge (a graft
    with nothing else: never installed, never called)."""

    def __init__(self, principal: Principal) -> None:  # no Graft.__init__: nothing to bind
        self.principal = principal


_FOREIGN: list[Transaction] = []  # the first transaction made on a thread of its own
_FOREIGN_MUTEX: Final = threading.Lock()


def foreign_transaction() -> Transaction:
    """A fresh transaction of another thread, never current on this one.

    The first is made on a short-lived thread of its own; later ones belong to that
    thread too (a thread is started once per process, not once per model).
    """
    with _FOREIGN_MUTEX:
        if not _FOREIGN:
            t = threading.Thread(target=lambda: _FOREIGN.append(Transaction()),
                                 name="vino-foreign-txn")
            t.start()
            t.join()
    return Transaction(None, None, _FOREIGN[0].ts)


class UndoFailed(VinoError):
    """Raised by an undo entry the model made fail on purpose."""


class TxnModel:
    """Real nested transactions and a model of them, driven in lockstep.

    Operations (each a method; ``check()`` compares real and model after any of them):
    ``begin``; on the innermost transaction ``write`` / ``delete`` (a dict),
    ``append`` (a list), ``assign`` (an attribute), ``failing_write`` (a change whose
    undo raises), ``defer``, ``lock`` (``LockManager.acquire``); ``commit``, ``abort``.
    Lock ``FOREIGN`` is held by another thread's transaction and ``HOSTILE`` by a plain
    host thread: taking them times out (on a stepping clock, so in microseconds) with
    ``LockTimeout``, dooming the foreign transaction, and changes nothing else.
    Every transaction is charged to one principal whose lock quota is ``quota_locks``.
    """

    NLOCKS: Final = 6
    FOREIGN: Final = 4
    HOSTILE: Final = 5

    def __init__(self, quota_locks: int = 3) -> None:
        # The doomed foreign holder never releases: its waiters give up one time-out later.
        self.mgr = LockManager(timeout_s=0.05, clock=StepClock(step_ns=20_000_000).seconds,
                               release_wait_s=0.05)
        self.locks = [self.mgr.lock(f"M{i}") for i in range(self.NLOCKS)]
        self.principal = Principal("model", Quota(locks=quota_locks))
        self.graft = _FakeGraft(self.principal)
        self.foreign = foreign_transaction()
        self.mgr.acquire(self.locks[self.FOREIGN], self.foreign)
        self._host_hold = self.mgr.hold(self.locks[self.HOSTILE])  # kept for ever
        self._host_hold.__enter__()
        self.real: dict[int, int] = {}
        self.items: list[int] = []
        self.obj = Host()  # its ``items`` attribute is the assigned one
        self.deferred_runs = 0
        self.stack: list[Transaction] = []
        # the model
        self.m_d: dict[int, int] = {}
        self.m_items: list[int] = []
        self.m_attr: list[int] = []
        self.m_deferred_runs = 0
        self.m_undo_errors = 0
        self.m_stack: list[_ModelTxn] = []
        self.undo_errors = 0
        self.ops: Counter[str] = Counter()
        self.timeouts = 0

    @property
    def depth(self) -> int:
        return len(self.stack)

    # ---- operations -----------------------------------------------------------------
    def begin(self) -> None:
        self.ops["begin"] += 1
        t = begin(self.graft)
        self.stack.append(t)
        self.m_stack.append(_ModelTxn())

    def write(self, key: int, value: int) -> None:
        self.ops["write"] += 1
        self.stack[-1].setitem(self.real, key, value)
        self.m_stack[-1].undo.append(("d", (key, self.m_d.get(key))))
        self.m_d[key] = value

    def delete(self, key: int) -> None:
        if key not in self.m_d:
            return
        self.ops["delete"] += 1
        self.stack[-1].delitem(self.real, key)
        self.m_stack[-1].undo.append(("d", (key, self.m_d.pop(key))))

    def append(self, value: int) -> None:
        self.ops["append"] += 1
        self.stack[-1].append(self.items, value)
        self.m_stack[-1].undo.append(("items", None))
        self.m_items.append(value)

    def assign(self, value: int) -> None:
        self.ops["assign"] += 1
        self.stack[-1].set(self.obj, "items", [value])
        self.m_stack[-1].undo.append(("attr", list(self.m_attr)))
        self.m_attr = [value]

    def failing_write(self, key: int, value: int) -> None:
        """A change whose undo raises: an abort must run every other undo entry anyway."""
        self.ops["failing_write"] += 1
        self.real[key] = value

        def undo() -> None:
            raise UndoFailed(f"undo of key {key}")

        self.stack[-1].record(undo)
        self.m_stack[-1].undo.append(("fail", None))
        self.m_d[key] = value

    def defer(self) -> None:
        self.ops["defer"] += 1

        def run() -> None:
            self.deferred_runs += 1

        self.stack[-1].defer(run)
        self.m_stack[-1].deferred += 1

    def lock(self, i: int) -> None:
        self.ops["lock"] += 1
        txn = self.stack[-1]
        held = self._holder(i)
        charged = sum(len(m.locks) for m in self.m_stack)
        try:
            self.mgr.acquire(self.locks[i], txn)
        except LockTimeout:
            self.timeouts += 1
            if i not in (self.FOREIGN, self.HOSTILE):
                raise AssertionError(f"lock M{i} timed out, held by {held}") from None
            return
        except QuotaExceeded:
            if held is not None or charged < self.principal.quota.locks:
                raise AssertionError(f"lock M{i}: quota exceeded with {charged} held") from None
            return
        if i in (self.FOREIGN, self.HOSTILE):
            raise AssertionError(f"took lock M{i}, which another thread holds")
        if held is None:
            if charged >= self.principal.quota.locks:
                raise AssertionError(f"lock M{i} taken past the quota of {charged}")
            self.m_stack[-1].locks.append(i)

    def _holder(self, i: int) -> int | None:
        for level, m in enumerate(self.m_stack):
            if i in m.locks:
                return level
        return None

    def commit(self) -> None:
        self.ops["commit"] += 1
        self.stack.pop().commit()
        child = self.m_stack.pop()
        if self.m_stack:
            parent = self.m_stack[-1]
            parent.undo += child.undo
            parent.locks += child.locks
            parent.deferred += child.deferred
        else:
            self.m_deferred_runs += child.deferred

    def abort(self) -> None:
        self.ops["abort"] += 1
        t = self.stack.pop()
        errors = t.undo_errors
        with quiet_undo_log():
            t.abort()
        self.undo_errors += t.undo_errors - errors
        child = self.m_stack.pop()
        for kind, data in reversed(child.undo):
            if kind == "fail":
                self.m_undo_errors += 1
            elif kind == "d":
                key, old = data
                if old is None:
                    del self.m_d[key]
                else:
                    self.m_d[key] = old
            elif kind == "items":
                self.m_items.pop()
            else:
                self.m_attr = data

    def close(self) -> None:
        """Abort whatever is still open (innermost first); then nothing may be held."""
        while self.stack:
            self.abort()

    # ---- the comparison ------------------------------------------------------------
    def problems(self) -> list[str]:
        out: list[str] = []
        if self.real != self.m_d:
            out.append(f"dict {self.real} != model {self.m_d}")
        if self.items != self.m_items:
            out.append(f"list {self.items} != model {self.m_items}")
        if self.obj.items != self.m_attr:
            out.append(f"attribute {self.obj.items} != model {self.m_attr}")
        want_current = self.stack[-1] if self.stack else None
        if current() is not want_current:
            out.append("the thread's current transaction is not the innermost open one")
        for i, lk in enumerate(self.locks):
            if i in (self.FOREIGN, self.HOSTILE):
                continue
            level = self._holder(i)
            want = self.stack[level] if level is not None else None
            if lk.holder is not want:
                out.append(f"lock M{i} held by {lk.holder!r}, model says level {level}")
        held = sum(len(m.locks) for m in self.m_stack)
        if self.principal.usage.locks != held:
            out.append(f"{self.principal.usage.locks} locks charged, {held} held")
        if self.deferred_runs != self.m_deferred_runs:
            out.append(f"{self.deferred_runs} deferred actions ran, model {self.m_deferred_runs}")
        if self.undo_errors != self.m_undo_errors:
            out.append(f"{self.undo_errors} undo errors counted, model {self.m_undo_errors}")
        if not all(t.live for t in self.stack):
            out.append("an open transaction is not active")
        return out


@dataclass(slots=True)
class WalkResult:
    walks: int = 0
    steps: int = 0
    max_depth: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    lock_timeouts: int = 0
    failures: list[str] = field(default_factory=list)


def txn_walks(walks: int = 200, steps: int = 60, seed: int = 1) -> WalkResult:
    """Random walks of nested transactions, each step checked against the model."""
    rng = random.Random(seed)
    res = WalkResult()
    for w in range(walks):
        m = TxnModel(quota_locks=rng.choice((2, 3, 8)))
        try:
            for step in range(steps):
                _random_step(m, rng)
                res.max_depth = max(res.max_depth, m.depth)
                res.steps += 1
                bad = m.problems()
                if bad:
                    res.failures.append(f"walk {w} (seed {seed}) step {step}: {bad}")
                    break
            m.close()
            bad = m.problems()
            if bad or m.mgr.held() != [m.locks[m.FOREIGN], m.locks[m.HOSTILE]]:
                res.failures.append(f"walk {w} (seed {seed}) at the end: {bad}")
        except Exception as exc:
            res.failures.append(f"walk {w} (seed {seed}): {exc!r}")
            clear_current()
        res.walks += 1
        res.ops.update(m.ops)
        res.lock_timeouts += m.timeouts
    return res


def _random_step(m: TxnModel, rng: random.Random) -> None:
    if not m.stack or (m.depth < 6 and rng.random() < 0.15):
        m.begin()
        return
    r = rng.random()
    key = rng.randrange(6)
    if r < 0.25:
        m.write(key, rng.randrange(100))
    elif r < 0.32:
        m.delete(key)
    elif r < 0.42:
        m.append(rng.randrange(100))
    elif r < 0.47:
        m.assign(rng.randrange(100))
    elif r < 0.50:
        m.failing_write(key, rng.randrange(100))
    elif r < 0.55:
        m.defer()
    elif r < 0.72:
        m.lock(rng.randrange(m.NLOCKS - 2) if rng.random() < 0.9 else rng.choice(
            (m.FOREIGN, m.HOSTILE)))
    elif r < 0.86:
        m.commit()
    else:
        m.abort()

