"""Fair shares of the host: one principal at its share is refused, clearly; the others
do not notice. Pool slots, the host's capacity in grafts, a principal's count of grafts."""

from __future__ import annotations

import gc
import weakref

import pytest

from vino import limits
from vino.errors import GraftRejected
from vino.graft import FunctionPoint, Principal, Quota, Registry, loader
from vino.graft.point import U32
from vino.graft.sandbox import Pool, Sandbox

from .clock import FakeClock

ONE_PAGE = """(module (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "pick") (result i32) i32.const 1))"""


def _encode(buf: memoryview, x: int) -> tuple[int, ...]:
    U32.pack_into(buf, 0, x)
    return ()


def _registry(sandbox: Sandbox) -> tuple[Registry, FunctionPoint[object, int, int]]:
    reg = Registry(sandbox=sandbox)
    point: FunctionPoint[object, int, int] = FunctionPoint(
        name="app.pick", entry="pick", buffer_size=16, encode=_encode,
        may_install=lambda principal, target: True,  # integer targets: anyone's
        decode=lambda buf, ret, x: ret, default=lambda x: 0, target_type=object)
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
        after = alice.usage.snapshot()
        assert after.pop("cpu_ns") >= before.pop("cpu_ns")  # (parsing the text is charged)
        assert after == before  # the refusal took nothing
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


def _distinct(i: int) -> str:
    """A module of its own (its own bytes, so its own cache entry) that answers ``i``."""
    return ONE_PAGE.replace("i32.const 1))", f"i32.const {i}))")


def test_one_principal_installing_many_modules_cannot_evict_anothers_compiled_code() -> None:
    reg, point = _registry(Sandbox())
    alice, mallory = Principal("alice"), Principal("mallory")
    try:
        mine = [_distinct(1000 + i) for i in range(4)]
        for i, src in enumerate(mine):
            reg.install(point, src, alice, target=i).remove()
        digests = {d for _, d in reg._pres}
        assert len(digests) == 4
        # mallory installs (and removes, staying within her count) far more modules
        # than the whole cache holds.
        for i in range(limits.MODULE_CACHE_ENTRIES + 40):
            reg.install(point, _distinct(i), mallory, target=100).remove()
        for d in digests:  # alice's code is still cached, linked and checked
            assert reg.sandbox.has_module(d) and any(k[1] == d for k in reg._pres)
            assert loader.cached(reg.sandbox, d)
        # The cache is bounded: mallory kept her share, the oldest of hers went.
        assert len(reg.sandbox._modules) == 4 + limits.MODULE_CACHE_SHARE
        assert len(reg._pres) == len(reg.sandbox._modules)
        g = reg.install(point, mine[0], alice, target=7)  # from the cache
        assert point(7, 0) == 1000 and g.state == "live"
    finally:
        reg.close()


def test_many_principals_filling_the_module_cache_keep_it_bounded() -> None:
    reg, point = _registry(Sandbox())
    many = [Principal(f"p{i}") for i in range(limits.MODULE_CACHE_ENTRIES // 16 + 4)]
    try:
        for n, p in enumerate(many):
            for i in range(20):  # more than an even split of the cache each
                reg.install(point, _distinct(n * 100 + i), p, target=n).remove()
        assert len(reg.sandbox._modules) <= limits.MODULE_CACHE_ENTRIES
        assert reg.sandbox._entries == limits.MODULE_CACHE_ENTRIES
        counts = sorted(len(k) for k in reg.sandbox._kept.values())
        assert counts[-1] - counts[0] <= 1  # shared evenly: the biggest keeper lost first
    finally:
        reg.close()



def test_principal_installing_in_a_tight_loop_is_refused_past_its_rate_and_others_are_not(
        ) -> None:
    clock = FakeClock()
    reg = Registry(clock=clock)
    point: FunctionPoint[object, int, int] = FunctionPoint(
        name="app.pick", entry="pick", buffer_size=16, encode=_encode,
        may_install=lambda principal, target: True,
        decode=lambda buf, ret, x: ret, default=lambda x: 0, target_type=object)
    reg.declare(point)
    mallory = Principal("mallory", Quota(installs_per_s=10.0, install_burst=5))
    alice = Principal("alice", Quota(installs_per_s=10.0, install_burst=5))
    try:
        for _ in range(5):  # the burst
            reg.install(point, ONE_PAGE, mallory, target=1).remove()
        before = mallory.usage.snapshot()
        with pytest.raises(GraftRejected, match=r"mallory installs too fast: at most 10 installs "
                           r"per second after a burst of 5 \(Quota.installs_per_s\); "
                           r"the next in 0.100 s"):
            reg.install(point, ONE_PAGE, mallory, target=1)
        assert mallory.usage.snapshot() == before and reg.sandbox.held(mallory) == 0
        assert point(1, 0) == 0  # nothing installed
        # alice has her own bucket: mallory's loop costs her nothing.
        g = reg.install(point, ONE_PAGE, alice, target=2)
        assert point(2, 0) == 1 and g.state == "live"
        # Time gives mallory tokens back at her rate, one per 0.1 s, at most her burst.
        clock.now += 0.05
        with pytest.raises(GraftRejected, match=r"the next in 0\.050 s"):
            reg.install(point, ONE_PAGE, mallory, target=1)
        clock.now += 0.05
        reg.install(point, ONE_PAGE, mallory, target=1).remove()
        with pytest.raises(GraftRejected, match="installs too fast"):
            reg.install(point, ONE_PAGE, mallory, target=1)
        clock.now += 3600.0
        for _ in range(5):
            reg.install(point, ONE_PAGE, mallory, target=1).remove()
        with pytest.raises(GraftRejected, match="installs too fast"):
            reg.install(point, ONE_PAGE, mallory, target=1)
        # A rejected module spends an attempt too (it may have cost a compile).
        clock.now += 0.1
        with pytest.raises(GraftRejected, match="missing export"):
            reg.install(point, "(module)", mallory, target=1)
        with pytest.raises(GraftRejected, match="installs too fast"):
            reg.install(point, ONE_PAGE, mallory, target=1)
    finally:
        reg.close()



def test_principals_that_come_and_go_leave_no_install_bucket_behind() -> None:
    # Every attempt takes a token from the principal's bucket, so each of these principals
    # got one; once nobody keeps a principal, its bucket goes with it (they were kept, and
    # with them every principal ever seen, for the registry's life). The registry's clock
    # stands still: on a loaded machine a second of wall time between the kept principal's
    # two installs would refill its bucket.
    clock = FakeClock()
    reg = Registry(clock=clock)
    point: FunctionPoint[object, int, int] = FunctionPoint(
        name="app.pick", entry="pick", buffer_size=16, encode=_encode,
        may_install=lambda principal, target: target != 0,  # target 0: nobody's
        decode=lambda buf, ret, x: ret, default=lambda x: 0, target_type=object)
    reg.declare(point)
    try:
        gone: list[weakref.ref[Principal]] = []
        for i in range(200):
            p = Principal(f"passer-by {i}")
            with pytest.raises(GraftRejected, match="may not"):
                reg.install(point, ONE_PAGE, p, target=0)
            gone.append(weakref.ref(p))
        assert len(reg._installs) >= 1  # the last one may still be referenced here
        del p
        gc.collect()
        assert all(r() is None for r in gone)
        assert len(reg._installs) == 0
        # A principal that is kept keeps its bucket (and so its rate).
        kept = Principal("kept", Quota(installs_per_s=1.0, install_burst=1))
        with pytest.raises(GraftRejected, match="may not"):
            reg.install(point, ONE_PAGE, kept, target=0)
        gc.collect()
        with pytest.raises(GraftRejected, match="installs too fast"):
            reg.install(point, ONE_PAGE, kept, target=1)
    finally:
        reg.close()
