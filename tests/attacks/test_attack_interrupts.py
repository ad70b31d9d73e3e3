"""Attacks on a transaction's ending: a signal handler raising while it aborts or commits.

A Python signal handler runs at the next point the interpreter checks, and what it raises
(Ctrl-C's ``KeyboardInterrupt``, a ``SystemExit``, an application's ``SIGALRM``
time-out) surfaces there -- also in the middle of an undo log being applied or of a
transaction's locks being released. Here a real signal is sent at exactly that moment:
from inside an undo entry, a lock's release, a deferred action, a removal's giving back
of charges. Whatever the moment, the ending completes -- every entry undone, every lock
released, every charge given back, the graft's record written -- and then the interrupt
reaches the caller (guarantee 12). Found open: an abort stopped at the interrupt, leaving
older entries unapplied and its lock held by a finished transaction for good: the next
graft wanting that lock waited out the time-out and was removed for ``lock_timeout``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vino.graft import current
from vino.graft.locks import HostLock

from .harness import DEFAULT_ANSWER, TARGET, AbortReason, Tenancy, module, pick

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers run on the main thread")

# Takes L1, puts key 1 then key 2 (both new), then traps: the abort undoes key 2 first.
PUT_TWO_THEN_TRAP = pick("(drop (call $lock (i32.const 1))) "
                         "(drop (call $put (i32.const 1) (i32.const 11))) "
                         "(drop (call $put (i32.const 2) (i32.const 12))) unreachable",
                         ["lock", "put"])
# Takes L1 and L2, puts key 1, kallocs and kfrees a block (its release deferred), answers 3.
COMMIT_WITH_LOCKS = pick("(local $h i32) (drop (call $lock (i32.const 1))) "
                         "(drop (call $lock (i32.const 2))) "
                         "(drop (call $put (i32.const 1) (i32.const 11))) "
                         "(local.set $h (call $kalloc (i32.const 64))) "
                         "(call $kfree (local.get $h)) i32.const 3",
                         ["lock", "put", "kalloc", "kfree"])
# Wants L1, answers 4.
WANTS_L1 = pick("(drop (call $lock (i32.const 1))) i32.const 4", ["lock"])


def _sigint() -> None:
    """Ctrl-C, now: the default handler raises ``KeyboardInterrupt`` at the next check."""
    signal.raise_signal(signal.SIGINT)


def _checkpoint() -> None:
    """A Python call: a pending signal's handler runs at its first instruction."""


def _interrupted(call: Callable[[], Any]) -> bool:
    """Run ``call``; True if a ``KeyboardInterrupt`` reached us, in it or right after."""
    try:
        call()
        _checkpoint()
    except KeyboardInterrupt:
        return True
    return False


def _ctrl_c_in_first(monkeypatch: pytest.MonkeyPatch, cls: type, method: str,
                     when: Callable[..., bool]) -> list[bool]:
    """Patch ``cls.method`` to send Ctrl-C from inside its first call whose arguments
    (``self`` first) satisfy ``when``, before the real method runs. Returns the armed flag
    (``[False]`` once sent)."""
    real = getattr(cls, method)
    armed = [True]

    def patched(self: Any, *args: Any) -> Any:
        if armed[0] and when(self, *args):
            armed[0] = False
            _sigint()
        return real(self, *args)

    monkeypatch.setattr(cls, method, patched)
    return armed


class OnceDict(dict[int | str, int]):
    """The host's dict, which sends Ctrl-C from inside the first deletion once armed (the
    undo of a put of a new key)."""

    armed = False

    def __delitem__(self, key: int | str) -> None:
        if self.armed:
            self.armed = False
            _sigint()
        super().__delitem__(key)


@pytest.fixture
def arena() -> Iterator[Tenancy]:
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = Tenancy()
    t.host.d = ONCE = OnceDict()
    t.once = ONCE  # type: ignore[attr-defined]
    try:
        yield t
    finally:
        t.close()
        signal.signal(signal.SIGINT, old)


def _the_lock_is_free(t: Tenancy) -> None:
    """Another tenant's graft takes L1 at once and commits (a held L1 would time it out)."""
    g = t.install(WANTS_L1, t.bob, "t2")
    assert t.pick("t2", 0) == 4
    assert not g.aborts and g.state == "live"
    g.remove()


def test_ctrl_c_amid_an_aborting_grafts_undo_log_still_undoes_everything_and_frees_its_lock(
        arena: Tenancy) -> None:
    t = arena
    before = t.snapshot()
    g = t.install(PUT_TWO_THEN_TRAP)
    t.once.armed = True  # type: ignore[attr-defined]
    assert _interrupted(lambda: t.pick(TARGET, 5))
    assert current() is None
    assert dict(t.host.d) == {}  # key 2's undo was interrupted, key 1's still ran
    t.assert_survived(before, g, AbortReason.TRAP)
    assert not any(lk.holder for lk in t.registry.locks.held())
    _the_lock_is_free(t)
    assert t.pick(TARGET, 5) == DEFAULT_ANSWER


def test_ctrl_c_amid_a_committing_grafts_lock_release_still_releases_every_lock(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    t = arena
    g = t.install(COMMIT_WITH_LOCKS)
    before = t.snapshot()
    # between the commit and the release of its first lock
    armed = _ctrl_c_in_first(monkeypatch, HostLock, "release", lambda *_: True)
    assert _interrupted(lambda: t.pick(TARGET, 5))
    assert not armed[0]
    assert current() is None
    assert dict(t.host.d) == {1: 11}  # committed: the interrupt came after the commit
    assert g.state == "live" and g.failures == 0  # the host's interrupt: nobody blamed
    after = t.snapshot()
    assert after.locks_held == before.locks_held == []
    assert after.usage == before.usage  # the lock charges and the kfree'd block given back
    assert after.handles == before.handles
    _the_lock_is_free(t)


def test_ctrl_c_amid_a_committing_grafts_deferred_action_still_runs_the_rest(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    t = arena
    g = t.install(COMMIT_WITH_LOCKS)
    before = t.snapshot()
    alice = t.alice
    armed = _ctrl_c_in_first(  # in kfree's deferred release
        monkeypatch, type(alice), "release",
        lambda who, what, amount: who is alice and what == "kalloc_bytes")
    assert _interrupted(lambda: t.pick(TARGET, 5))
    assert not armed[0]
    assert current() is None
    assert dict(t.host.d) == {1: 11}
    assert g.state == "live" and g.failures == 0
    after = t.snapshot()
    assert after.usage == before.usage and after.locks_held == []
    _the_lock_is_free(t)


def test_ctrl_c_amid_a_grafts_removal_still_gives_back_every_charge(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch) -> None:
    t = arena
    before = t.snapshot()
    g = t.install(WANTS_L1)
    assert t.pick(TARGET, 0) == 4
    alice = t.alice
    armed = _ctrl_c_in_first(  # as its pages are given back
        monkeypatch, type(alice), "release",
        lambda who, what, amount: who is alice and what == "memory_bytes")
    assert _interrupted(g.remove)
    assert not armed[0]
    assert g.state == "removed" and g.instance is None
    t.assert_unchanged(before)


# vino_buffer() allocates, takes L1, puts key 4, then spins: only Ctrl-C stops it in time.
SPINS_AT_INSTALL = module(["kalloc", "lock", "put"], """  (func (export "pick") (result i32)
    i32.const 3)""").replace(
    '(func (export "vino_buffer") (result i32) i32.const 0)',
    '(func (export "vino_buffer") (result i32) (drop (call $kalloc (i32.const 100))) '
    '(drop (call $lock (i32.const 1))) (drop (call $put (i32.const 4) (i32.const 4))) '
    '(loop br 0) i32.const 0)')


def test_ctrl_c_while_vino_buffer_runs_at_install_leaves_nothing_installed_or_held() -> None:
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = Tenancy(alice_quota={"cpu_call_s": 5.0})  # only the interrupt stops it
    try:
        assert "(loop br 0)" in SPINS_AT_INSTALL
        before = t.snapshot()
        main = threading.main_thread().ident
        assert main is not None

        def ctrl_c() -> None:
            time.sleep(0.3)
            signal.pthread_kill(main, signal.SIGINT)

        sender = threading.Thread(target=ctrl_c)
        sender.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            t.install(SPINS_AT_INSTALL)
        sender.join(30.0)
        assert time.monotonic() - t0 < 4.0  # the interrupt stopped it, not its budget
        assert current() is None
        t.assert_unchanged(before)  # no graft, no key 4, L1 free, 100 bytes given back
        _the_lock_is_free(t)
    finally:
        t.close()
        signal.signal(signal.SIGINT, old)
