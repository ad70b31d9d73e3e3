"""docs/DESIGN.md §5.1: a graft sees only its own linear memory.

What if a graft loads or stores far outside its memory, or hands a graft-callable a
pointer outside it? The access traps inside the sandbox (or is refused by the host's
bounds check before any byte moves); the graft is aborted with ``trap``, its earlier
accessor effects are undone, and the default answers.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason

from .graft_world import (
    DEFAULT_ANSWER,
    IMPORT_KALLOC,
    IMPORT_KREAD,
    IMPORT_KWRITE,
    IMPORT_LOG,
    IMPORT_PUSH,
    IMPORT_PUT,
    TARGET,
    World,
    assert_aborted_and_restored,
    graft,
)

# Every hostile graft first changes host state through accessors, so the test also sees
# that the abort undid it.
EFFECTS = "(drop (call $put (i32.const 1) (i32.const 11))) (drop (call $push (i32.const 5)))"
ACCESSORS = IMPORT_PUT + IMPORT_PUSH


@pytest.mark.parametrize("access", [
    "(i32.load (i32.const 0x7ffffff0))",  # far past the one page
    "(i32.load (i32.const -4))",  # 0xfffffffc
    "(i32.load offset=0xfffffff0 (i32.const 0x100))",  # address overflows 32 bits
    "(i32.load (i32.const 65534))",  # straddles the end of memory
    "(i32.store (i32.const 0x40000000) (i32.const 1)) (i32.const 0)",
    "(i64.store (i32.const -8) (i64.const -1)) (i32.const 0)",
    "(memory.fill (i32.const 65000) (i32.const 0) (i32.const 1000)) (i32.const 0)",
    "(memory.copy (i32.const 0) (i32.const 65500) (i32.const 100)) (i32.const 0)",
], ids=["load-far", "load-negative", "load-offset-overflow", "load-straddle", "store-far",
        "store-negative", "fill-past-end", "copy-from-past-end"])
def test_graft_touching_memory_outside_its_own_traps_and_changes_nothing(
        world: World, access: str) -> None:
    world.host.d[1] = 100
    before = world.snapshot()
    g = world.install(graft(ACCESSORS, f'(func (export "pick") (result i32) {EFFECTS} {access})'))
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert g.removal is not None
    assert "out-of-bounds memory access" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


@pytest.mark.parametrize("ptr, length", [
    (0x7FFF0000, 8),  # far outside
    (-16, 8),  # 0xfffffff0
    (65530, 100),  # starts inside, runs past the end
])
def test_graft_passing_a_wild_pointer_to_log_traps_and_logs_nothing(
        world: World, ptr: int, length: int) -> None:
    before = world.snapshot()
    g = world.install(graft(
        ACCESSORS + IMPORT_LOG,
        f'(func (export "pick") (result i32) {EFFECTS} '
        f'(call $log (i32.const {ptr}) (i32.const {length})) (i32.const 1))'))
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert g.removal is not None
    assert "wild pointer" in g.removal.detail
    assert list(g.logs) == []  # the host read nothing and kept nothing
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


@pytest.mark.parametrize("call", [
    "(call $kread (local.get $h) (i32.const 0) (i32.const 0x7fff0000) (i32.const 8))",
    "(call $kwrite (local.get $h) (i32.const 0) (i32.const -8) (i32.const 8))",
    "(call $kwrite (local.get $h) (i32.const 0) (i32.const 65532) (i32.const 8))",
], ids=["kread-to-wild", "kwrite-from-wild", "kwrite-straddle"])
def test_graft_copying_host_memory_through_a_wild_pointer_traps_and_frees_the_block(
        world: World, call: str) -> None:
    before = world.snapshot()
    g = world.install(graft(
        ACCESSORS + IMPORT_KALLOC + IMPORT_KREAD + IMPORT_KWRITE,
        '(func (export "pick") (result i32) (local $h i32)'
        f' {EFFECTS} (local.set $h (call $kalloc (i32.const 16))) (drop {call}) (i32.const 1))'))
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert g.handles == {}
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_graft_copying_past_the_end_of_its_host_block_gets_minus_one_not_host_bytes(
        world: World) -> None:
    # kread/kwrite bounds-check the handle's block: out-of-range offsets and lengths
    # and unknown handles answer -1 (the graft may go on); nothing past the block moves.
    g = world.install(graft(
        IMPORT_KALLOC + IMPORT_KREAD + IMPORT_KWRITE,
        '(func (export "pick") (result i32) (local $h i32) (local $bad i32)'
        ' (local.set $h (call $kalloc (i32.const 16)))'
        ' (local.set $bad (i32.add (local.get $bad)'
        '   (call $kread (local.get $h) (i32.const 8) (i32.const 0) (i32.const 9))))'
        ' (local.set $bad (i32.add (local.get $bad)'
        '   (call $kwrite (local.get $h) (i32.const -1) (i32.const 0) (i32.const 4))))'
        ' (local.set $bad (i32.add (local.get $bad)'
        '   (call $kread (local.get $h) (i32.const 0) (i32.const 0) (i32.const -1))))'
        ' (local.set $bad (i32.add (local.get $bad)'
        '   (call $kread (i32.const 999) (i32.const 0) (i32.const 0) (i32.const 4))))'
        ' (i32.sub (i32.const 0) (local.get $bad)))'))  # 4 refusals of -1 each: answers 4
    assert world.pick(TARGET, 3) == 4
    assert g.stats.commits == 1
    assert [len(b) for b in g.handles.values()] == [16]


def test_graft_recursing_without_end_overflows_its_own_stack_and_traps(world: World) -> None:
    before = world.snapshot()
    g = world.install(graft(
        ACCESSORS,
        '(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))'
        f'(func (export "pick") (result i32) {EFFECTS} (call $down (i32.const 0)))'))
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert g.removal is not None
    assert "stack overflow" in g.removal.detail
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


@pytest.mark.parametrize("body", [
    "(unreachable)",
    "(i32.div_u (i32.const 1) (i32.const 0))",
    "(i32.trunc_f32_s (f32.const nan))",
    "(call_indirect (type $t) (i32.const 5))",
], ids=["unreachable", "divide-by-zero", "bad-conversion", "call-indirect-out-of-table"])
def test_graft_executing_a_faulting_instruction_traps_and_changes_nothing(
        world: World, body: str) -> None:
    world.host.items.append(1)
    before = world.snapshot()
    g = world.install(graft(
        ACCESSORS,
        "(type $t (func (result i32))) (table 1 funcref)",
        f'(func (export "pick") (result i32) {EFFECTS} {body})'))
    assert world.pick(TARGET, 3) == DEFAULT_ANSWER
    assert_aborted_and_restored(world, g, AbortReason.TRAP, before)


def test_graft_cannot_see_the_memory_of_another_instance_of_the_same_module(
        world: World) -> None:
    # Identical modules share compiled code, never memory: each graft has its own store.
    keeper = graft("",
                   '(func (export "pick") (result i32)'
                   ' (if (i32.load (i32.const 0))'  # x != 0: remember x at 1000
                   '  (then (i32.store (i32.const 1000) (i32.load (i32.const 0)))))'
                   ' (i32.load (i32.const 1000)))')  # answer what is remembered
    a = world.install(keeper, world.alice, "a")
    b = world.install(keeper, world.alice, "b")
    assert a.digest == b.digest
    assert world.pick("a", 42) == 42
    assert world.pick("b", 0) == 0  # b's memory never saw 42
    assert world.pick("a", 0) == 42
