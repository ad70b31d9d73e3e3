"""docs/DESIGN.md §5.6: a graft that exceeds its principal's quotas is aborted.

What if a graft grows its memory without end, allocates handles without freeing them,
takes more locks than allowed, floods the log, or burns its principal's CPU? It is
aborted with ``resource``; what the aborted transaction allocated is freed, and once the
graft is removed everything it held is given back (``usage`` as before the install).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import wasmtime

from vino import limits
from vino.errors import AbortReason
from vino.graft import loader, wasmscan
from vino.sdk.build import sample_path

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_KALLOC,
    IMPORT_KFREE,
    IMPORT_LOCK,
    IMPORT_LOG,
    IMPORT_PUT,
    TARGET,
    World,
    assert_aborted_and_restored,
    graft,
    pick_returning,
)

PAGE = limits.WASM_PAGE
EFFECT = "(drop (call $put (i32.const 1) (i32.const 11)))"


def test_graft_growing_memory_past_its_quota_is_aborted_and_the_pages_given_back(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"memory_bytes": 4 * PAGE})
    before = w.snapshot()
    g = w.install(graft(IMPORT_PUT,
                        '(func (export "pick") (result i32)'
                        f' {EFFECT}'
                        ' (block (loop'  # grow a page at a time until refused
                        '  (br_if 1 (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))'
                        '  (br 0)))'
                        ' (i32.const 1))'))
    assert w.alice.usage.memory_bytes == PAGE
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None
    assert "memory_bytes" in g.removal.detail and "would exceed the quota" in g.removal.detail
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_graft_growing_memory_in_one_huge_step_is_refused_by_the_store(
        new_world: Callable[..., World]) -> None:
    # The store's hard cap refuses the grow itself (-1): the graft sees failure, and
    # a graft that copes with it commits without being charged for anything.
    w = new_world(alice_quota={"memory_bytes": 4 * PAGE})
    g = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (i32.add (memory.grow (i32.const 1000)) (i32.const 2)))'))
    assert w.pick(TARGET, 0) == 1
    assert g.state == "live"
    assert w.alice.usage.memory_bytes == PAGE


def test_graft_growing_memory_within_quota_is_charged_until_removed(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"memory_bytes": 4 * PAGE})
    before = w.snapshot()
    g = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (drop (memory.grow (i32.const 2))) (i32.const 1))'))
    assert w.pick(TARGET, 0) == 1
    assert w.alice.usage.memory_bytes == 3 * PAGE
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER  # 5 pages > 4
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_two_grafts_of_one_principal_share_one_memory_quota(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"memory_bytes": 4 * PAGE})
    w.install(graft("", '(func (export "pick") (result i32)'
                        ' (drop (memory.grow (i32.const 2))) (i32.const 1))'), w.alice, "a")
    assert w.pick("a", 0) == 1  # 3 pages charged
    b = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (drop (memory.grow (i32.const 1))) (i32.const 2))'), w.alice, "b")
    assert w.alice.usage.memory_bytes == 4 * PAGE
    assert w.pick("b", 0) == DEFAULT_ANSWER  # 5 pages over both grafts
    assert b.removal is not None and b.removal.reason is AbortReason.RESOURCE
    assert w.alice.usage.memory_bytes == 3 * PAGE


def test_graft_leaking_handles_in_a_loop_is_aborted_and_every_handle_freed(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"handles": 8})
    before = w.snapshot()
    g = w.install(graft(IMPORT_KALLOC + IMPORT_PUT,
                        '(func (export "pick") (result i32)'
                        f' {EFFECT}'
                        ' (loop (drop (call $kalloc (i32.const 64))) (br 0)) (i32.const 1))'))
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None and "handles 8 + 1 would exceed" in g.removal.detail
    assert g.handles == {}
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_graft_leaking_one_handle_per_call_is_charged_until_removed_then_all_freed(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"handles": 4, "kalloc_bytes": 1000})
    before = w.snapshot()
    g = w.install(graft(IMPORT_KALLOC, '(func (export "pick") (result i32)'
                                       ' (call $kalloc (i32.const 100)))'))
    assert [w.pick(TARGET, 0) for _ in range(4)] == [1, 2, 3, 4]  # handles kept across calls
    assert (w.alice.usage.handles, w.alice.usage.kalloc_bytes) == (4, 400)
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.handles == {}
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_graft_allocating_more_host_bytes_than_its_quota_is_aborted(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"kalloc_bytes": 1000})
    before = w.snapshot()
    g = w.install(graft(IMPORT_KALLOC + IMPORT_PUT,
                        '(func (export "pick") (result i32)'
                        f' {EFFECT}'
                        ' (drop (call $kalloc (i32.const 600)))'
                        ' (drop (call $kalloc (i32.const 600))) (i32.const 1))'))
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None and "kalloc_bytes 600 + 600" in g.removal.detail
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_graft_freeing_then_trapping_gets_its_handle_back_uncharged_twice(
        new_world: Callable[..., World]) -> None:
    # kfree's release is deferred to commit; the abort restores the handle instead.
    w = new_world(alice_quota={"handles": 4}, remove_after=2)
    g = w.install(graft(IMPORT_KALLOC + IMPORT_KFREE,
                        '(func (export "pick") (result i32)'
                        ' (if (i32.eqz (i32.load (i32.const 0)))'
                        '  (then (return (call $kalloc (i32.const 10)))))'
                        ' (call $kfree (i32.load (i32.const 0)))'
                        ' (if (i32.eq (i32.load (i32.const 0)) (i32.const 1)) (then unreachable))'
                        ' (i32.const 0))'))
    assert w.pick(TARGET, 0) == 1  # allocates handle 1
    assert w.pick(TARGET, 1) == DEFAULT_ANSWER  # frees it, then traps: undone
    assert list(g.handles) == [1]
    assert (w.alice.usage.handles, w.alice.usage.kalloc_bytes) == (1, 10)
    g.remove()
    assert (w.alice.usage.handles, w.alice.usage.kalloc_bytes) == (0, 0)


def test_graft_taking_more_locks_than_its_quota_is_aborted_and_releases_them(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"locks": 2})
    before = w.snapshot()
    g = w.install(graft(IMPORT_LOCK + IMPORT_PUT,
                        '(func (export "pick") (result i32)'
                        ' (drop (call $lock (i32.const 1)))'
                        f' {EFFECT}'
                        ' (drop (call $lock (i32.const 2)))'
                        ' (drop (call $lock (i32.const 3))) (i32.const 1))'))
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None and "locks 2 + 1 would exceed" in g.removal.detail
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)
    assert w.lock(3).holder is None


def test_graft_flooding_the_log_past_its_quota_is_aborted(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"log_bytes": 100})
    w.host.d[1] = 5
    before = w.snapshot()
    g = w.install(graft(IMPORT_LOG + IMPORT_PUT,
                        '(func (export "pick") (result i32)'
                        f' {EFFECT}'
                        ' (loop (call $log (i32.const 0) (i32.const 30)) (br 0)) (i32.const 1))'))
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None and "log_bytes 90 + 30 would exceed" in g.removal.detail
    # Log volume is consumption, like CPU time: what was written stays charged (and
    # the lines stay readable by the installer); nothing else the graft did remains.
    assert w.alice.usage.log_bytes == 90
    assert len(g.logs) == 3
    after = w.snapshot()
    assert after["usage"]["alice"].pop("log_bytes") == 90
    assert before["usage"]["alice"].pop("log_bytes") == 0
    assert after == before
    assert g.removal.reason is AbortReason.RESOURCE


def test_graft_logging_many_lines_in_one_call_is_rate_limited(world: World) -> None:
    g = world.install(graft(IMPORT_LOG, '(data (i32.const 100) "hello")',
                            '(func (export "pick") (result i32) (local $i i32)'
                            ' (loop (call $log (i32.const 100) (i32.const 5))'
                            '  (local.set $i (i32.add (local.get $i) (i32.const 1)))'
                            '  (br_if 0 (i32.lt_u (local.get $i) (i32.const 100))))'
                            ' (i32.const 1))'))
    assert world.pick(TARGET, 0) == 1
    assert list(g.logs) == [b"hello"] * limits.LOG_LINES_PER_CALL
    assert g.logs_dropped == 100 - limits.LOG_LINES_PER_CALL
    assert world.alice.usage.log_bytes == 5 * limits.LOG_LINES_PER_CALL
    assert world.pick(TARGET, 0) == 1  # the limit is per call
    assert len(g.logs) == 2 * limits.LOG_LINES_PER_CALL


def test_graft_using_up_its_principals_total_cpu_is_aborted(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"cpu_total_s": 1e-9})
    before = w.snapshot()
    # A binary: parsing text is charged too, and would use up the quota before compiling.
    g = w.install(wasmtime.wat2wasm(pick_returning(3)))
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.removal is not None and "total CPU quota" in g.removal.detail
    assert_aborted_and_restored(w, g, AbortReason.RESOURCE, before)


def test_graft_that_fools_the_grow_scanner_still_cannot_grow(
        new_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch) -> None:
    # Safety must not depend on wasmscan: a graft judged unable to grow is held to its
    # initial memory by the store, so its memory.grow just fails.
    monkeypatch.setattr(wasmscan, "may_grow_memory", lambda wasm: False)
    w = new_world(alice_quota={"memory_bytes": 8 * PAGE})
    g = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (i32.add (memory.grow (i32.const 1)) (i32.const 2)))'))
    assert not g.may_grow
    assert w.pick(TARGET, 0) == 1  # grow answered -1
    assert g.memory.current_size() == PAGE
    assert w.alice.usage.memory_bytes == PAGE


@pytest.mark.parametrize("code", [
    "(drop (memory.grow (i32.const 1)))",
    "(block (block (if (i32.const 0) (then (drop (memory.grow (i32.const 1)))))))",
    "(drop (i32.add (i32.const 1) (i32.const 2))) (drop (memory.grow (i32.const 0)))",
], ids=["plain", "nested", "after-arithmetic"])
def test_grow_scanner_sees_memory_grow_wherever_it_hides(code: str) -> None:
    src = graft("", f'(func (export "pick") (result i32) {code} i32.const 1)')
    wasm = loader.read_source(src)[0]
    assert wasmscan.may_grow_memory(wasm)
    assert not wasmscan.may_grow_memory(loader.read_source(pick_returning(1))[0])


# Vector instructions with each kind of immediate: a memarg, 16 bytes (v128.const and
# i8x16.shuffle, whose bytes include 0x40, memory.grow's opcode), a lane, a memarg and a lane.
VECTOR_CODE = ("(drop (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 31"
               " (v128.load offset=3 (i32.const 0)) (v128.const i32x4 64 64 64 64)))"
               " (drop (i32x4.extract_lane 3 (v128.load32_lane 1 (i32.const 0)"
               " (v128.const i64x2 0x40 0))))")


@pytest.mark.parametrize("grows", [False, True])
def test_grow_scanner_reads_vector_code_to_the_end(grows: bool) -> None:
    # SIMD (on the points that allow it) is decoded, not given up on: a vector graft that
    # never grows takes the cheap path, and memory.grow after vectors is still seen.
    code = VECTOR_CODE + (" (drop (memory.grow (i32.const 0)))" if grows else "")
    src = graft("", f'(func (export "pick") (result i32) {code} i32.const 1)')
    wasm = loader.read_source(src)[0]
    assert wasmscan.may_grow_memory(wasm) is grows
    assert not wasmscan.may_grow_memory(sample_path("chacha20_filter.wasm").read_bytes())


def test_graft_over_its_memory_quota_with_failures_to_spare_cannot_go_on_committing(
        new_world: Callable[..., World]) -> None:
    # Linear memory never shrinks: once a graft's growth is refused by the quota it
    # stays over it. With failures to spare it must not commit over quota later on.
    w = new_world(alice_quota={"memory_bytes": 4 * PAGE}, remove_after=3)
    before = w.snapshot()
    g = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (if (i32.load (i32.const 0))'
                            '  (then (drop (memory.grow (i32.const 4)))))'
                            ' (i32.const 1))'))
    assert w.pick(TARGET, 1) == DEFAULT_ANSWER  # grows to 5 pages: over the quota of 4
    assert [a.reason for a in g.aborts] == [AbortReason.RESOURCE]
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER  # still 5 pages: no commit over quota
    assert g.stats.commits == 0
    g.remove()
    assert w.snapshot() == before


def test_graft_failing_every_call_is_still_charged_for_the_cpu_it_used(
        new_world: Callable[..., World]) -> None:
    # An aborted call used CPU too: with failures to spare, a graft that spins to its
    # budget and is aborted every time is charged for each of those calls.
    w = new_world()
    g = w.install(graft("", '(func (export "pick") (result i32) (loop (br 0)) (i32.const 1))'),
                  remove_after=3)
    before = w.alice.usage.cpu_ns
    for _ in range(2):
        assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.stats.aborts["timeout"] == 2 and g.state == "live"
    assert w.alice.usage.cpu_ns - before >= 2 * g.budget_ns


def test_graft_growing_memory_then_trapping_is_charged_for_its_pages_at_once(
        new_world: Callable[..., World]) -> None:
    # Pages grown by a call that then traps exist all the same: the abort charges them.
    w = new_world(alice_quota={"memory_bytes": 8 * PAGE})
    g = w.install(graft("", '(func (export "pick") (result i32)'
                            ' (drop (memory.grow (i32.const 2))) unreachable)'),
                  remove_after=5)
    assert w.pick(TARGET, 0) == DEFAULT_ANSWER
    assert g.state == "live" and g.memory.current_size() == 3 * PAGE
    assert w.alice.usage.memory_bytes == 3 * PAGE
    g.remove()
    assert w.alice.usage.memory_bytes == 0
