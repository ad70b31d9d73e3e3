"""Attacks on the kernel's graft rights: who may graft what, and what a graft may touch.

(Named test_kernel_rights.py, not test_rights.py: tests/graft/test_rights.py exists
and pytest's default import mode needs unique basenames without __init__.py files.)

Install time (points.py): a file's read-ahead, a reader of the file, on an open file
of its own; a file's filter, its owner; an address space or a process group, its
owner; a global graft, root. Every refusal is a ``GraftRejected`` naming the reason
and changes nothing: ``k.registry.snapshot()`` and every user's usage are as before.

Run time: accessors check again against the graft's own target, so a graft can never
touch another user's pages or threads, and an attempt aborts the graft
(``forbidden_call``) with everything it did undone.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vino.errors import GraftRejected
from vino.graft import GLOBAL, Graft, Principal
from vino.kernel.errors import AccessDenied, InvalidArgument
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.kernel.sched import Cpu, Wait, cpu_hog
from vino.sdk.build import sample_path

from .kernel_world import (
    BS,
    Boot,
    assert_removed,
    benign,
    make_file,
    pattern,
    usage,
    wat,
)

PRINCIPALS_MADE = 20_000  # at most, to land on a freed principal's address

POINTS = ("fs.readahead", "vm.evict", "sched.pick", "fs.filter", "fs.access")


@pytest.fixture
def k(boot: Boot) -> Kernel:
    return boot()


def _world(k: Kernel) -> tuple[User, User]:
    """alice and bob; alice already has a live graft, so her usage is in the snapshot."""
    alice, bob = k.add_user("alice"), k.add_user("bob")
    make_file(k, alice, "alice-own", pattern(2))
    own = k.fs.open(k.spawn(alice), "alice-own", "r")
    k.graft(alice, "fs.readahead", sample_path("null.wasm"), target=own)
    return alice, bob


def assert_rejected(k: Kernel, install: Callable[[], Any], reason: str) -> GraftRejected:
    """``install()`` raises GraftRejected whose reason contains ``reason``; nothing changed."""
    before = k.registry.snapshot()
    users = {u.name: usage(u) for u in k.users.values()}
    with pytest.raises(GraftRejected) as info:
        install()
    assert reason in info.value.reason, info.value.reason
    assert k.registry.snapshot() == before
    assert {u.name: usage(u) for u in k.users.values()} == users
    k.check_invariants()
    return info.value


# ---- install time ---------------------------------------------------------------------

def test_readahead_on_a_file_the_user_cannot_read_is_rejected(k: Kernel) -> None:
    alice, bob = _world(k)
    bob_proc = make_file(k, bob, "bob-private", pattern(4), 0o600)
    with pytest.raises(AccessDenied):
        k.fs.open(alice, "bob-private", "r")
    # alice got hold of bob's open file object: still not hers to graft.
    with k.fs.open(bob_proc, "bob-private", "r") as of:
        exc = assert_rejected(
            k, lambda: k.graft(alice, "fs.readahead", sample_path("null.wasm"), target=of),
            "principal 'alice' may not graft fs.readahead on this OpenFile")
        assert exc.point == "fs.readahead"
        assert k.graft(bob, "fs.readahead", sample_path("null.wasm"), target=of).state == "live"


def test_a_reader_cannot_graft_or_replace_readahead_on_another_users_open_file(
        k: Kernel) -> None:
    alice, bob = _world(k)
    proc = make_file(k, alice, "shared", pattern(8), 0o644)
    with k.fs.open(proc, "shared", "r") as hers, k.fs.open(bob, "shared", "r") as his:
        # bob may read the file, yet alice's open file (her access history, her
        # prefetching) is not his to graft ...
        assert_rejected(k, lambda: k.graft(bob, "fs.readahead", sample_path("null.wasm"),
                                           target=hers),
                        "principal 'bob' may not graft fs.readahead")
        # ... nor to take over once she has grafted it.
        mine = k.graft(alice, "fs.readahead", sample_path("readahead_stride.wasm"),
                       target=hers)
        assert_rejected(k, lambda: k.graft(bob, "fs.readahead", sample_path("null.wasm"),
                                           target=hers, replace=True),
                        "principal 'bob' may not graft fs.readahead")
        assert mine.state == "live" and mine in k.registry.grafts("fs.readahead")
        # His own open file of the same file is his to graft.
        assert k.graft(bob, "fs.readahead", sample_path("null.wasm"), target=his).state == "live"


def test_filter_on_a_readable_file_of_another_user_is_rejected(k: Kernel) -> None:
    alice, bob = _world(k)
    make_file(k, bob, "bob-public", pattern(2), 0o644)
    with k.fs.open(alice, "bob-public", "r") as of:  # alice may read it ...
        assert k.fs.read(of, 2 * BS) == pattern(2)
        # ... but not decide how it is stored, nor replace its owner's filter.
        assert_rejected(k, lambda: k.graft(alice, "fs.filter", benign("fs.filter"),
                                           target=of.inode), "may not graft fs.filter")
        bobs = k.graft(bob, "fs.filter", benign("fs.filter"), target=of.inode)
        assert_rejected(k, lambda: k.graft(alice, "fs.filter", benign("fs.filter"),
                                           target=of.inode, replace=True),
                        "may not graft fs.filter")
        assert bobs.state == "live"


def test_a_principal_born_where_a_users_dead_one_lay_gets_none_of_her_rights(
        k: Kernel) -> None:
    # alice's first principal is replaced (User.principal is a plain field) and nothing
    # else holds it, so CPython may free it; mallory then makes principals, keeping each,
    # until one sits at its address. Were users found by id(principal), that one would
    # be taken for alice's and could decide how alice's file is stored.
    alice = k.add_user("alice")  # no graft of hers holds her principal
    make_file(k, alice, "alice-secret", pattern(2))
    with k.fs.open(k.spawn(alice), "alice-secret", "r") as of:
        inode = of.inode
    first = weakref.ref(alice.principal)
    dead = id(alice.principal)
    alice.principal = Principal("alice", alice.quota)
    gc.collect()
    freed = first() is None
    made: list[Principal] = []  # each kept, so the next takes a new place
    for _ in range(PRINCIPALS_MADE):
        made.append(Principal("mallory"))
        if id(made[-1]) == dead:
            break
    mallory = made[-1]
    if freed:  # the attack's setup: she was born where alice's principal lay
        assert id(mallory) == dead
    else:  # the kernel kept the first principal alive: it still stands for alice
        old = first()
        assert old is not None and k.user_of(old) is alice
    assert [p for p in made if k.user_of(p) is not None] == []
    assert_rejected(k, lambda: k.registry.install("fs.filter", benign("fs.filter"), mallory,
                                                  inode), "may not graft fs.filter")


def test_another_users_address_space_cannot_be_grafted(k: Kernel) -> None:
    alice, bob = _world(k)
    bobs = k.address_space(k.spawn(bob, "db"))
    assert_rejected(k, lambda: k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"),
                                       target=bobs), "principal 'alice' may not graft vm.evict")
    assert k.graft(bob, "vm.evict", sample_path("evict_keep.wasm"), target=bobs).state == "live"


def test_another_users_process_group_cannot_be_grafted_or_joined(k: Kernel) -> None:
    alice, bob = _world(k)
    group = k.new_group(bob, "bob")
    k.sched.spawn(k.spawn(bob, "b", group), cpu_hog())
    assert_rejected(k, lambda: k.graft(alice, "sched.pick",
                                       sample_path("sched_interactive.wasm"), target=group),
                    "principal 'alice' may not graft sched.pick")
    with pytest.raises(InvalidArgument):
        k.spawn(alice, "intruder", group)
    assert k.graft(bob, "sched.pick", sample_path("sched_interactive.wasm"),
                   target=group).state == "live"


@pytest.mark.parametrize("point", POINTS)
def test_an_unprivileged_user_cannot_install_a_global_graft(k: Kernel, point: str) -> None:
    alice, _ = _world(k)
    assert_rejected(k, lambda: k.graft(alice, point, benign(point)),
                    f"principal 'alice' may not graft {point} on GLOBAL")
    assert_rejected(k, lambda: k.graft(alice, point, benign(point), replace=True),
                    f"may not graft {point} on GLOBAL")


def _exercise(k: Kernel, point: str, alice: User) -> None:
    """Make alice's objects consult ``point`` (none of them has a graft of its own)."""
    proc = k.spawn(alice, "app", k.new_group(alice))
    if point == "vm.evict":
        aspace = k.address_space(proc)
        for v in range(k.cache.nframes + 4):
            aspace.touch(v)
    elif point == "sched.pick":
        for _ in range(2):
            k.sched.spawn(proc, [Cpu(1_000_000), Wait(1_000_000)] * 2)
        k.sched.run(until_ns=k.clock.now_ns() + 20_000_000)
    else:
        make_file(k, alice, "exercise", pattern(10))
        with k.fs.open(proc, "exercise", "r") as f:
            assert k.fs.read(f, 10 * BS) == pattern(10)


@pytest.mark.parametrize("point", POINTS)
def test_root_can_install_a_global_graft_that_serves_every_user(k: Kernel,
                                                                point: str) -> None:
    alice, _ = _world(k)
    g = k.graft(k.root, point, benign(point))
    assert g.state == "live" and g.target is GLOBAL
    _exercise(k, point, alice)
    assert g.stats.commits > 0 and not g.stats.aborts
    k.check_invariants()


# ---- run time ---------------------------------------------------------------------------

HINT = '(import "vino" "vm_hint" (func $hint (param i32 i32) (result i32)))'
SETPRIO = '(import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))'


def _evict_pressure(k: Kernel, user: User, source: str, target: Any = None
                    ) -> tuple[Graft, Any]:
    aspace = k.address_space(k.spawn(user, "app"))
    g = k.graft(user, "vm.evict", source, target=aspace if target is None else target)
    for v in range(k.cache.nframes + 4):
        aspace.touch(v)
    return g, aspace


def test_vm_hint_marks_only_the_grafts_own_address_space(k: Kernel) -> None:
    alice, bob = _world(k)
    bobs = k.address_space(k.spawn(bob, "db"))
    bobs.touch(7)
    src = wat("vm.evict", "(drop (call $hint (i32.const 7) (i32.const 1))) i32.const 0",
              imports=HINT)
    g, aspace = _evict_pressure(k, alice, src)
    assert g.state == "live" and g.stats.commits > 0
    assert aspace.hints == {7: True}
    assert bobs.hints == {}


def test_vm_hint_of_an_impossible_page_aborts_and_undoes_the_earlier_hints(k: Kernel) -> None:
    alice, _ = _world(k)
    src = wat("vm.evict", """
        (drop (call $hint (i32.const 3) (i32.const 1)))
        (drop (call $hint (i32.const -1) (i32.const 1)))
        i32.const 0""", imports=HINT)
    g, aspace = _evict_pressure(k, alice, src)
    assert_removed(k, g, "forbidden_call")
    assert aspace.hints == {}


def test_a_global_evict_graft_has_no_address_space_to_hint(k: Kernel) -> None:
    alice, _ = _world(k)
    src = wat("vm.evict", "(drop (call $hint (i32.const 3) (i32.const 1))) i32.const 0",
              imports=HINT)
    g = k.graft(k.root, "vm.evict", src)
    aspace = k.address_space(k.spawn(alice, "app"))
    for v in range(k.cache.nframes + 4):
        aspace.touch(v)
    assert_removed(k, g, "forbidden_call")
    assert aspace.hints == {}


def test_set_priority_on_another_groups_thread_aborts_and_changes_nothing(k: Kernel) -> None:
    alice, bob = _world(k)
    victim = k.sched.spawn(k.spawn(bob, "b", k.new_group(bob)), cpu_hog(), priority=3)
    group = k.new_group(alice)
    proc = k.spawn(alice, "a", group)
    mine = [k.sched.spawn(proc, cpu_hog(), priority=1) for _ in range(2)]
    src = wat("sched.pick", f"""
        (drop (call $setprio (i32.load (i32.const 8)) (i32.const 50)))
        (drop (call $setprio (i32.const {victim.tid}) (i32.const 99)))
        i32.const 0""", imports=SETPRIO)
    g = k.graft(alice, "sched.pick", src, target=group)
    k.sched.run(until_ns=k.clock.now_ns() + 30_000_000)
    assert_removed(k, g, "forbidden_call")
    assert victim.priority == 3
    assert [t.priority for t in mine] == [1, 1]  # its own, legal boost was undone too


def test_set_priority_on_its_own_groups_thread_is_allowed(k: Kernel) -> None:
    alice, _ = _world(k)
    group = k.new_group(alice)
    proc = k.spawn(alice, "a", group)
    t = k.sched.spawn(proc, cpu_hog(), priority=1)
    src = wat("sched.pick", f"(drop (call $setprio (i32.const {t.tid}) (i32.const 42))) "
                            "i32.const 0", imports=SETPRIO)
    g = k.graft(alice, "sched.pick", src, target=group)
    k.sched.run(until_ns=k.clock.now_ns() + 20_000_000)
    assert g.state == "live" and g.stats.commits > 0
    assert t.priority == 42
    k.check_invariants()


def test_grafting_an_object_of_the_wrong_kind_is_rejected_not_crashed(tmp_path: Path) -> None:
    # An open file where fs.filter wants a file (inode): a clear rejection, nothing changed.
    k = Kernel.boot(tmp_path / "kind.img", nblocks=512)
    try:
        alice = k.add_user("alice")
        proc = k.spawn(alice, "p")
        k.fs.create(alice, "f", 0o600)
        with k.fs.open(proc, "f", "r") as f:
            before = k.registry.snapshot()
            with pytest.raises(GraftRejected, match=r"is not a target of fs\.filter"):
                k.graft(alice, "fs.filter", sample_path("chacha20_filter.wasm"), target=f)
            assert k.registry.snapshot() == before
    finally:
        k.shutdown()


def test_a_reader_cannot_attach_an_access_handler_to_another_users_file(tmp_path: Path) -> None:
    # A handler hears every user's accesses and runs inside their reads: the owner's only.
    k = Kernel.boot(tmp_path / "access.img", nblocks=512)
    try:
        alice, bob = k.add_user("alice"), k.add_user("bob")
        k.fs.create(alice, "shared", 0o644)  # bob may read it
        with k.fs.open(k.spawn(bob, "b"), "shared", "r") as f:
            before = k.registry.snapshot()
            with pytest.raises(GraftRejected, match="may not graft"):
                k.graft(bob, "fs.access", wat_access_nop(), target=f.inode)
            assert k.registry.snapshot() == before
            g = k.graft(alice, "fs.access", wat_access_nop(), target=f.inode)
            assert g.state == "live"
    finally:
        k.shutdown()


def wat_access_nop() -> str:
    return ('(module (memory (export "memory") 1)'
            ' (func (export "vino_buffer") (result i32) i32.const 0)'
            ' (func (export "vino_on_access") (result i32) i32.const 0))')
