"""Hostile input: mutated modules against the loader, random outputs at every point,
wild arguments to every graft-callable.

What if a module is a sample graft with bits flipped, bytes inserted or deleted,
constants changed, sections spliced in from another graft, swapped or dropped? The
loader must answer ``GraftRejected`` -- never another exception -- and change nothing;
a mutant it accepts must run protected without harming the host. What if a graft
writes random bytes over its whole buffer and answers anything at all? Only valid
answers may pass. What if it calls every graft-callable with pointers outside its
memory, handles it never had, a handle twice, lock ids out of range, another user's
threads? The call fails or the graft is aborted; another user's state never changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vino.errors import GraftRejected
from vino.graft import GLOBAL
from vino.kernel.kernel import Kernel
from vino.testing.fuzz import (
    ANSWERS,
    CALLABLES,
    HOSTILE_CALL_REASONS,
    MUTATIONS,
    FuzzResult,
    HostileResult,
    Stage,
    fuzz_corpus,
    fuzz_loader,
    hostile_call_graft,
    hostile_callables,
    hostile_outputs,
    mutate,
    random_output_graft,
    run_case,
    try_graft,
)
from vino.testing.rig import POINT_ABI, scratch_kernel

CORPUS = fuzz_corpus()
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    max_examples=250)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with scratch_kernel(tmp_path_factory.mktemp("fuzz"), nblocks=1024, frames=32) as k:
        yield Stage(k)


def test_corpus_holds_every_sample_and_hostile_graft_for_every_point() -> None:
    assert len(CORPUS) >= 19
    assert {point for _, _, point in CORPUS} == set(POINT_ABI)


mutation = st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 1 << 16),
                     st.integers(0, 1 << 16), st.integers(0, len(CORPUS) - 1))


@SETTINGS
@given(seed=st.integers(0, len(CORPUS) - 1), mutations=st.lists(mutation, min_size=1,
                                                                max_size=3))
def test_mutated_graft_is_rejected_with_graft_rejected_or_runs_without_harm(
        stage: Stage, seed: int, mutations: list[tuple[str, int, int, int]]) -> None:
    name, wasm, point = CORPUS[seed]
    for op, a, b, other in mutations:
        wasm = mutate(wasm, op, a, b, CORPUS[other][1])
    res = FuzzResult()
    try_graft(stage, point, wasm, res, f"{name} {mutations}")
    assert res.problems == []


@pytest.fixture(scope="module")
def check_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path_factory.mktemp("check") / "check.img", nblocks=256)
    yield k
    k.shutdown()


@settings(deadline=None, max_examples=300)
@given(data=st.binary(max_size=300), magic=st.booleans())
def test_arbitrary_bytes_are_rejected_with_graft_rejected_and_change_nothing(
        check_kernel: Kernel, data: bytes, magic: bool) -> None:
    k = check_kernel
    if magic:
        data = b"\0asm\x01\0\0\0" + data
    before = k.registry.snapshot()
    for point in POINT_ABI:
        with contextlib.suppress(GraftRejected):
            k.registry.check(point, data, k.root.principal, GLOBAL)
    assert k.registry.snapshot() == before


def test_a_seeded_mutation_campaign_finds_no_crash_and_no_harm(tmp_path: Path) -> None:
    r = fuzz_loader(n=600, seed=11, workdir=tmp_path)
    assert r.problems == [], "\n".join(r.problems[:10])
    assert r.inputs == 600 and r.rejected + r.accepted == 600
    assert r.accepted > 30 and r.rejected > 300  # both paths were exercised
    assert r.accepted_aborted > 0  # and accepted mutants misbehaved, and were caught


@SETTINGS
@given(point=st.sampled_from(sorted(POINT_ABI)), seed=st.integers(0, (1 << 31) - 1),
       answer=st.sampled_from(ANSWERS), fill=st.none() | st.integers(1, 9000))
def test_graft_writing_random_bytes_and_answers_at_any_point_harms_nothing(
        stage: Stage, point: str, seed: int, answer: str, fill: int | None) -> None:
    res = HostileResult()
    run_case(stage, point, random_output_graft(point, seed, answer, fill), res,
              f"{point} {seed} {answer} {fill}", frozenset({"invalid_result"}))
    assert res.problems == []


def test_random_outputs_at_every_point_pass_validation_only_when_valid(
        tmp_path: Path) -> None:
    r = hostile_outputs(per_point=30, seed=5, workdir=tmp_path)
    assert r.problems == [], "\n".join(r.problems[:10])
    assert set(r.per_point) == set(POINT_ABI)
    assert set(r.reasons) == {"invalid_result"}  # the only way such a graft can fail
    assert r.aborted > 0 and r.committed > 0


WILD = st.sampled_from([0, 1, -1, 2, 3, 16, 4096, 65535, 65536, 65537, 0x7FFFFFF0,
                        0x7FFFFFFF, -0x80000000, 1 << 20])


@st.composite
def hostile_calls(draw: st.DrawFn, point: str) -> list[tuple[str, list[int]]]:
    names = [n for n in CALLABLES if not (n == "default" and point == "fs.access")]
    if point == "sched.pick":
        names.append("sched_set_priority")
    if point == "vm.evict":
        names.append("vm_hint")
    calls = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(names))
        nargs = CALLABLES[name][1] if name in CALLABLES else 2
        calls.append((name, [draw(WILD) for _ in range(nargs)]))
    return calls


@SETTINGS
@given(data=st.data(), point=st.sampled_from(sorted(POINT_ABI)))
def test_graft_calling_graft_callables_with_wild_arguments_fails_safely(
        stage: Stage, data: st.DataObject, point: str) -> None:
    calls = data.draw(hostile_calls(point))
    res = HostileResult()
    run_case(stage, point, hostile_call_graft(point, calls), res, f"{point} {calls}",
              HOSTILE_CALL_REASONS)
    assert res.problems == []


def test_a_seeded_wild_argument_campaign_finds_no_harm(tmp_path: Path) -> None:
    r = hostile_callables(cases=200, seed=9, workdir=tmp_path)
    assert r.problems == [], "\n".join(r.problems[:10])
    assert {"forbidden_call", "trap", "resource"} <= set(r.reasons)
    assert "host_error" not in r.reasons


# The attacks the issue names, one by one: (point, calls, what must happen).
NAMED_ATTACKS: dict[str, tuple[str, list[tuple[str, list[int]]], str]] = {
    "log from a wild pointer": ("fs.access", [("log", [0x7FFFFFF0, 64])], "trap"),
    "log with a negative length": ("fs.access", [("log", [0, -1])], "commit"),
    "kread past the end of its own handle": (
        "fs.access", [("kalloc", [16]), ("kread", [1, 8, 0, 64])], "commit"),
    "kwrite from a wild pointer": (
        "fs.access", [("kalloc", [16]), ("kwrite", [1, 0, 0x7FFFFFF0, 8])], "trap"),
    "kread of a handle only another graft holds": ("fs.access", [("kread", [1, 0, 0, 4])],
                                                   "commit"),
    "kfree of a handle twice": ("fs.access", [("kalloc", [16]), ("kfree", [1]),
                                              ("kfree", [1])], "forbidden_call"),
    "kalloc of a negative size": ("fs.access", [("kalloc", [-1])], "commit"),
    "kalloc of more than the quota": ("fs.access", [("kalloc", [0x7FFFFFFF])], "resource"),
    "lock id out of range": ("vm.evict", [("lock", [-1]), ("lock", [2]), ("lock", [1 << 20])],
                             "commit"),
    "vm_hint of a vpn past the ABI": ("vm.evict", [("vm_hint", [-1, 1])], "forbidden_call"),
    "default() twice, then its own answer": ("fs.readahead", [("default", []),
                                                               ("default", [])], "commit"),
}


@pytest.mark.parametrize("attack", sorted(NAMED_ATTACKS))
def test_named_attack_on_a_graft_callable(stage: Stage, attack: str) -> None:
    point, calls, outcome = NAMED_ATTACKS[attack]
    res = HostileResult()
    run_case(stage, point, hostile_call_graft(point, calls), res, attack,
              HOSTILE_CALL_REASONS)
    assert res.problems == []
    if outcome == "commit":
        assert res.committed == 1 and res.aborted == 0, res
    else:
        assert set(res.reasons) == {outcome}, res


def test_sched_set_priority_on_another_users_thread_is_forbidden_and_changes_nothing(
        stage: Stage) -> None:
    tid = stage.bob_threads[0].tid
    for t in stage.alice_threads:  # earlier cases may have changed them, legitimately
        t.priority = 1
    res = HostileResult()
    run_case(stage, "sched.pick", hostile_call_graft(
        "sched.pick", [("sched_set_priority", [stage.alice_threads[0].tid, 50]),
                       ("sched_set_priority", [tid, 99])]), res, "bob's thread",
              HOSTILE_CALL_REASONS)
    assert res.problems == []
    assert set(res.reasons) == {"forbidden_call"}
    assert stage.bob_threads[0].priority == 5 and stage.alice_threads[0].priority == 1
