"""Fair shares of the host: one principal at its share is refused, clearly; the others
do not notice. Pool slots, the host's capacity in grafts, a principal's count of grafts."""

from __future__ import annotations

import pytest

from vino.errors import GraftRejected
from vino.graft import FunctionPoint, Principal, Quota, Registry
from vino.graft.point import U32
from vino.graft.sandbox import Pool, Sandbox

ONE_PAGE = """(module (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "pick") (result i32) i32.const 1))"""


def _encode(buf: memoryview, x: int) -> tuple[int, ...]:
    U32.pack_into(buf, 0, x)
    return ()


def _registry(sandbox: Sandbox) -> tuple[Registry, FunctionPoint[int]]:
    reg = Registry(sandbox=sandbox)
    point: FunctionPoint[int] = FunctionPoint(
        name="app.pick", entry="pick", buffer_size=16, encode=_encode,
        may_install=lambda principal, target: True,  # integer targets: anyone's
        decode=lambda buf, ret, x: ret, default=lambda x: 0)
    reg.declare(point)
    return reg, point


def test_one_principal_filling_a_shared_pool_leaves_the_others_their_slots() -> None:
    reg, point = _registry(Sandbox(pool=Pool(slots=4)))  # default share: 4 // 4 = 1 each
    alice, bob, carol = (Principal(n) for n in ("alice", "bob", "carol"))
    try:
        reg.install(point, ONE_PAGE, alice, target=1)
        before = alice.usage.snapshot()
        with pytest.raises(GraftRejected, match="holds 1 of the pool's 4 slots, its share"):
            reg.install(point, ONE_PAGE, alice, target=2)
        assert alice.usage.snapshot() == before  # the refusal took nothing
        for i, p in enumerate((bob, carol)):  # the others do not notice
            g = reg.install(point, ONE_PAGE, p, target=10 + i)
            assert point(10 + i, 0) == 1 and g.state == "live"
    finally:
        reg.close()


def test_many_principals_inside_their_quotas_meet_a_clear_host_limit_not_an_mmap_failure(
        ) -> None:
    sandbox = Sandbox(max_grafts=6)  # the default allocator's cap, made small
    reg, point = _registry(sandbox)
    users = [Principal(f"u{i}") for i in range(4)]
    try:
        for i in range(6):  # each inside its own quota
            reg.install(point, ONE_PAGE, users[i % 3], target=i)
        with pytest.raises(GraftRejected, match="the host holds its limit of 6 grafts"):
            reg.install(point, ONE_PAGE, users[3], target=99)
        assert sandbox.held(users[3]) == 0 and sandbox.live == 6
        reg.grafts()[0].remove()  # a removal frees a place at once
        reg.install(point, ONE_PAGE, users[3], target=99)
        assert sandbox.live == 6
    finally:
        reg.close()
    assert sandbox.live == 0 and all(sandbox.held(u) == 0 for u in users)


def test_a_principal_past_its_count_of_grafts_is_refused_and_the_others_are_not() -> None:
    reg, point = _registry(Sandbox())
    alice = Principal("alice", Quota(grafts=2))
    bob = Principal("bob")
    try:
        for t in range(2):
            reg.install(point, ONE_PAGE, alice, target=t)
        with pytest.raises(GraftRejected, match="alice holds 2 grafts, its quota"):
            reg.install(point, ONE_PAGE, alice, target=5)
        reg.install(point, ONE_PAGE, bob, target=5)
        assert reg.sandbox.held(alice) == 2 and reg.sandbox.held(bob) == 1
    finally:
        reg.close()
