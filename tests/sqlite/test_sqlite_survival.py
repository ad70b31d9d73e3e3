"""Survival: misbehaving grafts are installed into each point SQLite uses while it runs.
The queries keep returning the model's answers (at the filter, which fails closed, the
transaction is refused with an I/O error instead), integrity_check stays ok, no
committed row is lost, and each graft is aborted for its own reason and removed.

A filter's stored form is its own, so the identity never stands in for a removed one:
the file's reads and writes fail until the owner acts (``Kernel.unseal``).
"""

from __future__ import annotations

import copy
import hashlib

import apsw
import pytest

from vino.demo import sqlite as scenarios
from vino.demo.sqlite import Attack, Lab
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sdk.build import sample_path
from vino.sqlite import workloads as wl
from vino.sqlite.grafts import Plan
from vino.sqlite.session import Session


@pytest.fixture(scope="module")
def attacks(lab: Lab) -> dict[str, Attack]:
    return {a.point + ": " + a.name: a for a in scenarios.survival(lab)}


EXPECTED = {
    "fs.filter: filter traps mid-block": "trap",
    "fs.readahead: read-ahead never returns": "timeout",
    "vm.evict: evicts a page that is not a candidate": "invalid_result",
    "vm.evict: holds the pool's lock forever": "lock_timeout",
}


def test_every_point_sqlite_uses_was_attacked(attacks: dict[str, Attack]) -> None:
    assert set(attacks) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sqlite_survives(attacks: dict[str, Attack], name: str) -> None:
    a = attacks[name]
    assert a.seen == EXPECTED[name], a.note
    assert a.refused if a.fails_closed else a.queries_ok, a.note
    assert a.integrity_ok and a.rows_ok and a.invariants_ok, a.note


def test_the_lock_hogs_waiter_got_the_lock(attacks: dict[str, Attack]) -> None:
    assert "got the lock" in attacks["vm.evict: holds the pool's lock forever"].note


def test_removing_a_filter_that_encrypted_fails_closed_until_the_owner_acts(
        kernel: Kernel, alice: User) -> None:
    # Without its filter an encrypted database is refused (never handed over as
    # garbage, never written in plaintext); the bytes are intact -- sending the key
    # again recovers them.
    key = hashlib.sha256(b"k").digest()
    with Session(kernel, alice, "c.db", plan=Plan(key=key), journal_mode="truncate") as s:
        model = wl.build(s.db, 300)
        kf = s.vfs.file("c.db")
        assert kf is not None
        inode = kf.of.inode
    with pytest.raises(apsw.IOError, match="filter"):
        Session(kernel, alice, "c.db")  # its first statement reads the header: refused
    assert kernel.filters.is_sealed(inode)
    with Session(kernel, alice, "c.db", plan=Plan(key=key), journal_mode="truncate") as s:
        assert wl.verify(s.db, model)
    kernel.check_invariants()


def test_a_trapping_filter_on_a_plain_database_refuses_the_transaction_and_loses_nothing(
        kernel: Kernel, alice: User) -> None:
    with Session(kernel, alice, "p.db") as s:
        model = wl.build(s.db, 300)
        kf = s.vfs.file("p.db")
        assert kf is not None
        hostile = scenarios.HOSTILE_DIR / "filter_trap_midblock.wat"
        g = kernel.graft(alice, "fs.filter", hostile, target=kf.of.inode)
        with pytest.raises(apsw.Error) as refused:
            wl.updates(s.db, copy.deepcopy(model), 1, 5)
        assert scenarios.filter_refusal(refused.value) is not None
        assert g.removal is not None and g.removal.reason.value == "trap"
        kernel.unseal(alice, kf.of.inode)  # the owner acts
        assert wl.verify(s.db, model)  # the refused transaction left nothing behind
    assert sample_path("chacha20_filter.wasm").exists()
