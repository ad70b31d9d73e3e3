"""Attacks with targets of the wrong kind: every point checks the kind first.

A rights rule compares what it expects to find on a target (a uid, an owner); handed
an object of another kind with the same attribute -- a ``User`` record as a file --
it could say yes. Each point declares the kind of its target and the loader checks
it before anything else, so the rule never sees a stranger.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from vino.errors import GraftRejected
from vino.graft import GLOBAL, FunctionPoint, Principal, any_principal

from .harness import BUFFER, DEFAULT_ANSWER, KernelArena, Tenancy, pick_returning

BENIGN = {
    "fs.readahead": '(func (export "vino_readahead") (result i32) i32.const 0)',
    "vm.evict": '(func (export "vino_evict") (result i32) i32.const 0)',
    "sched.pick": '(func (export "vino_pick") (result i32) i32.const 0)',
    "fs.filter": '(func (export "vino_filter") (param i32 i32) (result i32) local.get 1)',
    "fs.access": '(func (export "vino_on_access") (result i32) i32.const 0)',
}


def benign(point: str) -> str:
    return ('(module (memory (export "memory") 1)'
            ' (func (export "vino_buffer") (result i32) i32.const 0) '
            f'{BENIGN[point]})')


def _targets(a: KernelArena) -> dict[str, Any]:
    """One object of every kind a kernel point could be handed, all alice's."""
    t = a.tenants["alice"]
    of = a.k.fs.open(t.proc, t.file, "r")
    return {"user": t.user, "process": t.proc, "group": t.group, "aspace": t.aspace,
            "inode": a.inode(t.file), "open file": of, "principal": t.user.principal,
            "uid": t.user.uid, "file name": t.file, "thread": t.threads[0], "none": None}


RIGHT_KIND = {"fs.readahead": "open file", "vm.evict": "aspace", "sched.pick": "group",
              "fs.filter": "inode", "fs.access": "inode"}
KINDS = ["user", "process", "group", "aspace", "inode", "open file", "principal", "uid",
         "file name", "thread", "none"]


@pytest.mark.parametrize("point", sorted(RIGHT_KIND))
def test_graft_aimed_at_a_target_of_the_wrong_kind_is_rejected_at_every_kernel_point(
        kernel: KernelArena, point: str) -> None:
    targets = _targets(kernel)
    alice = kernel.tenants["alice"].user
    before = kernel.snapshot()
    wrong_kind = re.escape(f"is not a target of {point}: it takes")
    for kind in KINDS:
        if kind == RIGHT_KIND[point]:
            continue
        with pytest.raises(GraftRejected, match=wrong_kind) as err:
            kernel.k.graft(alice, point, benign(point), target=targets[kind])
        assert type(targets[kind]).__name__ in err.value.reason
        # root, who may graft anything, is refused the same way: it is not a right
        with pytest.raises(GraftRejected, match=wrong_kind):
            kernel.k.graft(kernel.k.root, point, benign(point), target=targets[kind])
    kernel.assert_unchanged(before)
    # The right kind is accepted (the check is about kinds, not a blanket refusal).
    g = kernel.k.graft(alice, point, benign(point), target=targets[RIGHT_KIND[point]])
    assert g.state == "live"


def test_graft_that_targets_a_user_record_at_fs_filter_is_rejected_with_a_clear_reason(
        kernel: KernelArena) -> None:
    # The rule compares uids only: alice's User record has alice's uid, like her files.
    alice = kernel.tenants["alice"].user
    before = kernel.snapshot()
    with pytest.raises(GraftRejected) as err:
        kernel.k.graft(alice, "fs.filter", benign("fs.filter"), target=alice)
    assert err.value.reason == ("this User is not a target of fs.filter: "
                                "it takes Inode (or GLOBAL), not User")
    kernel.assert_unchanged(before)


def test_every_kernel_point_declares_the_kind_of_its_target(kernel: KernelArena) -> None:
    for point in kernel.k.points.values():
        assert point.target_type is not object, point.name


def test_graft_aimed_at_the_wrong_kind_at_an_application_point_is_rejected(
        tenancy: Tenancy) -> None:
    point: FunctionPoint[str, int, int] = FunctionPoint(
        name="atk.typed", entry="pick", buffer_size=BUFFER, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: DEFAULT_ANSWER, target_type=str,
        may_install=any_principal)
    tenancy.registry.declare(point)
    alice = Principal("carol")
    before = tenancy.snapshot()
    for wrong in (1, b"t1", ("t1",), alice):
        with pytest.raises(GraftRejected, match=r"not a target of atk\.typed: it takes str"):
            tenancy.registry.install(point, pick_returning(1), alice, wrong)
    tenancy.assert_unchanged(before)
    assert tenancy.registry.install(point, pick_returning(1), alice, "t1").state == "live"
    root = Principal("root2", privileged=True)
    assert tenancy.registry.install(point, pick_returning(1), root, GLOBAL).state == "live"


