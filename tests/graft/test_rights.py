"""docs/DESIGN.md §5.3: a graft acts with its principal's rights, never more.

What if an unprivileged principal grafts every target at once, or a graft reaches
through an accessor for host state that is not its principal's? The install is
refused; the accessor raises ``Forbidden``, the graft is aborted with
``forbidden_call`` and what it had already changed is undone.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason, GraftRejected
from vino.graft import GLOBAL

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_KALLOC,
    IMPORT_KFREE,
    IMPORT_LOCK,
    IMPORT_PUSH,
    IMPORT_PUT,
    ROOT_KEYS,
    TARGET,
    World,
    assert_aborted_and_restored,
    graft,
    pick_returning,
)


def test_unprivileged_principal_grafting_every_target_at_once_is_rejected(world: World) -> None:
    before = world.snapshot()
    with pytest.raises(GraftRejected) as info:
        world.install(pick_returning(1), world.alice, GLOBAL, name="everywhere")
    assert info.value.graft == "everywhere"
    assert info.value.point == "test.pick"
    assert "principal 'alice' may not graft test.pick on GLOBAL" in info.value.reason
    assert world.snapshot() == before
    assert world.pick("anyone", 0) == DEFAULT_ANSWER


def test_unprivileged_principal_attaching_a_global_event_handler_is_rejected(
        world: World) -> None:
    before = world.snapshot()
    with pytest.raises(GraftRejected, match=r"may not graft test\.event on GLOBAL"):
        world.registry.install(world.event, graft("", '(func (export "on_event") (result i32)'
                                                      " i32.const 0)"), world.alice, GLOBAL)
    assert world.snapshot() == before


def test_privileged_principal_may_graft_every_target(world: World) -> None:
    world.install(pick_returning(1), world.root, GLOBAL)
    world.install(pick_returning(2), world.alice, TARGET)
    assert world.pick("anyone", 0) == 1
    assert world.pick(TARGET, 0) == 2  # a target's own graft comes before the global one


def test_point_may_refuse_an_install_by_its_own_rule(world: World) -> None:
    world.pick.may_install = lambda principal, target: target == principal.name
    before = world.snapshot()
    with pytest.raises(GraftRejected, match=r"may not graft test\.pick on 'bob'"):
        world.install(pick_returning(1), world.alice, "bob")
    assert world.snapshot() == before
    world.install(pick_returning(1), world.alice, "alice")


ATTACK = (IMPORT_PUT + IMPORT_PUSH,
          '(func (export "pick") (result i32)'
          ' (drop (call $put (i32.const 1) (i32.const 11)))'
          ' (drop (call $push (i32.const 12)))'
          ' (drop (call $put (i32.const 2) (i32.const 13)))'
          f' (drop (call $put (i32.const {ROOT_KEYS}) (i32.const 666)))'  # not alice's
          ' (i32.const 1))')


def test_graft_writing_host_state_its_principal_does_not_own_is_aborted_and_undone(
        world: World) -> None:
    world.host.d.update({1: 100, ROOT_KEYS: 0})
    world.host.items.append(0)
    before = world.snapshot()
    g = world.install(graft(*ATTACK))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None
    assert f"key {ROOT_KEYS} belongs to root, not alice" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.FORBIDDEN_CALL, before)


def test_same_graft_installed_by_the_owner_commits(world: World) -> None:
    g = world.install(graft(*ATTACK), world.root)
    assert world.pick(TARGET, 0) == 1
    assert world.host.d == {1: 11, 2: 13, ROOT_KEYS: 666}
    assert world.host.items == [12]
    assert g.stats.commits == 1


def test_graft_freeing_a_handle_it_does_not_hold_is_aborted(world: World) -> None:
    # Handles are per graft: another graft's handle number means nothing here.
    other = world.install(graft(IMPORT_KALLOC, '(func (export "pick") (result i32)'
                                               ' (call $kalloc (i32.const 8)))'),
                          world.alice, "other")
    handle = world.pick("other", 0)
    assert handle in other.handles
    before = world.snapshot()
    g = world.install(graft(IMPORT_KFREE + IMPORT_PUT,
                            '(func (export "pick") (result i32)'
                            ' (drop (call $put (i32.const 1) (i32.const 1)))'
                            f' (call $kfree (i32.const {handle})) (i32.const 1))'))
    assert world.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None
    assert "which this graft does not hold" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.FORBIDDEN_CALL, before)
    assert handle in other.handles


def test_graft_asking_for_a_lock_it_may_not_name_gets_minus_one_and_holds_nothing(
        world: World) -> None:
    g = world.install(graft(IMPORT_LOCK, '(func (export "pick") (result i32)'
                                         ' (i32.add (i32.const 50)'
                                         '  (i32.add (call $lock (i32.const 99))'
                                         '           (call $lock (i32.const 0)))))'))
    assert world.pick(TARGET, 0) == 48
    assert g.stats.commits == 1
    assert world.registry.locks.held() == []
    assert world.alice.usage.locks == 0


# ---- safe defaults: only one's own targets, only one's own grafts ---------------------------


class Shop:
    def __init__(self, owner: object) -> None:
        self.owner = owner


def test_by_default_a_principal_grafts_only_targets_it_owns(world: World) -> None:
    # No rule stated: the default rule reads the target's owner.
    world.pick.may_install = __import__("vino.graft", fromlist=["x"]).owner_or_privileged
    bob = world.principal("bob")
    alices = Shop(world.alice)
    before = world.snapshot()
    with pytest.raises(GraftRejected, match=r"the default rule: only the target's owner"):
        world.install(pick_returning(1), bob, alices)
    with pytest.raises(GraftRejected):
        world.install(pick_returning(1), world.alice, "a string nobody owns")
    assert world.snapshot() == before
    world.install(pick_returning(1), world.alice, alices)
    world.install(pick_returning(2), world.root, Shop(bob))  # root: any target
    assert world.pick(alices, 0) == 1


def test_a_principal_may_not_replace_anothers_graft_even_where_it_may_install(
        world: World) -> None:
    # The point's own rule lets anyone graft any target (graft_world's any_principal);
    # replacing is still only for the graft's own principal (before: bob replaced it).
    bob = world.principal("bob")
    g = world.install(pick_returning(1), world.alice, TARGET)
    before = world.snapshot()
    with pytest.raises(GraftRejected, match=r"bob may not replace a graft of another principal"):
        world.install(pick_returning(2), bob, TARGET, replace=True)
    assert world.snapshot() == before and g.state == "live"
    assert world.pick(TARGET, 0) == 1
    world.install(pick_returning(3), world.alice, TARGET, replace=True)  # her own: fine
    world.install(pick_returning(4), world.root, TARGET, replace=True)  # root: any
    assert world.pick(TARGET, 0) == 4


def test_a_principal_may_not_remove_anothers_graft(world: World) -> None:
    from vino.errors import Forbidden

    bob = world.principal("bob")
    g = world.install(pick_returning(1), world.alice, TARGET)
    with pytest.raises(Forbidden, match="bob may not remove graft"):
        g.remove(by=bob)
    with pytest.raises(Forbidden):
        world.registry.remove(g, by=bob)
    assert g.state == "live" and world.pick(TARGET, 0) == 1
    g.remove(by=world.alice)
    assert g.state == "removed"
    g2 = world.install(pick_returning(1), world.alice, TARGET)
    world.registry.remove(g2, by=world.root)
    assert g2.state == "removed"
