"""Statistics: commits, aborts by reason, time in the graft and the protection's overhead."""

from __future__ import annotations

from collections.abc import Callable

from vino.graft import GLOBAL, Stats

from .graft_world import DEFAULT_ANSWER, TARGET, World, graft, pick_returning

# Answers x, traps on x == 1, answers out of range on x == 2.
MOODY = graft("", '(func (export "pick") (result i32) (local $x i32)'
                  ' (local.set $x (i32.load (i32.const 0)))'
                  ' (if (i32.eq (local.get $x) (i32.const 1)) (then unreachable))'
                  ' (if (i32.eq (local.get $x) (i32.const 2)) (then (return (i32.const 999))))'
                  ' (local.get $x))')


def test_stats_count_commits_and_aborts_by_reason(new_world: Callable[..., World]) -> None:
    w = new_world(remove_after=10)
    g = w.install(MOODY)
    answers = [w.pick(TARGET, x) for x in (5, 1, 6, 2, 1, 7)]
    assert answers == [5, DEFAULT_ANSWER, 6, DEFAULT_ANSWER, DEFAULT_ANSWER, 7]
    st = g.stats
    assert st.commits == 3
    assert dict(st.aborts) == {"trap": 2, "invalid_result": 1}
    assert st.invocations == 6
    assert st.graft_ns > 0
    assert st.overhead_ns > 0
    d = st.as_dict()
    assert d["invocations"] == 6 and d["commits"] == 3
    assert d["aborts"] == {"trap": 2, "invalid_result": 1}
    assert d["graft_ns"] == st.graft_ns and d["overhead_ns"] == st.overhead_ns


def test_stats_of_a_point_survive_the_removal_of_its_grafts(world: World) -> None:
    a = world.install(MOODY)
    world.install(pick_returning(3), world.root, GLOBAL)
    assert world.pick(TARGET, 4) == 4
    assert world.pick(TARGET, 1) == DEFAULT_ANSWER  # a removed
    assert a.state == "removed"
    assert world.pick(TARGET, 1) == 3  # the global graft now
    total = world.registry.point_stats(world.pick)
    assert total.commits == 2
    assert dict(total.aborts) == {"trap": 1}
    assert total.graft_ns >= a.stats.graft_ns > 0
    assert world.registry.point_stats("test.event").invocations == 0


def test_stats_add_sums_every_counter() -> None:
    a, b = Stats(), Stats()
    a.commits, b.commits = 2, 3
    a.aborts["trap"] += 1
    b.aborts["trap"] += 2
    b.aborts["timeout"] += 1
    a.graft_ns, b.graft_ns = 10, 20
    a.add(b)
    assert a.commits == 5
    assert dict(a.aborts) == {"trap": 3, "timeout": 1}
    assert a.graft_ns == 30
    assert a.invocations == 9
