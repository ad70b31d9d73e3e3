"""Attacks through WebAssembly features the host cannot account for.

The engine enables only the features grafts need (``sandbox.WASM_FEATURES``).
With GC on, eight grafts of one principal held 123 MB of host memory in GC
arrays while the principal was charged 0.5 MB. Each attack here installs a graft
using one disabled feature: it is refused at load, naming the feature, and
leaves no trace (no graft, no charge, nothing cached); a bystander graft still
answers. Tables, which the engine must allow, are charged and capped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vino import limits
from vino.errors import GraftRejected
from vino.graft import GLOBAL

from .engine_arena import EngineArena, module, pick

FEATURE_GRAFTS = {
    "GC (structs and arrays)": pick(
        "(global.set $keep (array.new_default $a (i32.const 1000000))) i32.const 1", "",
        "(type $a (array (mut i8)))", "(global $keep (mut (ref null $a)) (ref.null $a))"),
    "exception handling": pick(
        "(block $h (try_table (catch_all $h) (throw $e))) i32.const 1", "", "(tag $e)"),
    "threads (shared memory and atomics)": pick("(i32.atomic.load (i32.const 0))"),
    "SIMD (vector instructions)": pick("(drop (v128.const i32x4 0 0 0 0)) i32.const 1"),
    "tail calls": pick("return_call $one", "", "(func $one (result i32) i32.const 1)"),
    "typed function references": pick(
        "(call_ref $t (ref.func $one))", "", "(type $t (func (result i32)))",
        "(func $one (type $t) i32.const 1)", "(elem declare func $one)"),
    "memory64 (64-bit memories)": '(module (memory (export "memory") i64 1)'
        ' (func (export "vino_buffer") (result i32) i32.const 0)'
        ' (func (export "pick") (result i32) i32.const 1))',
    "custom page sizes": '(module (memory (export "memory") 1 (pagesize 1))'
        ' (func (export "vino_buffer") (result i32) i32.const 0)'
        ' (func (export "pick") (result i32) i32.const 1))',
}


@pytest.fixture
def arena() -> Iterator[EngineArena]:
    a = EngineArena()
    yield a
    a.close()


@pytest.mark.parametrize("feature", list(FEATURE_GRAFTS))
def test_graft_using_a_feature_the_host_cannot_charge_is_rejected_naming_it(
        arena: EngineArena, feature: str) -> None:
    arena.install(pick("i32.const 3"), GLOBAL, arena.root, name="bystander")
    before = arena.snapshot()
    source = FEATURE_GRAFTS[feature]
    caches = arena.cache_entries()
    with pytest.raises(GraftRejected) as info:
        arena.install(source, name="evil")
    assert arena.cache_entries() == caches
    assert info.value.reason.startswith(f"uses {feature}, which vino does not enable"), \
        info.value.reason
    assert arena.snapshot() == before
    assert not arena.cached(source)
    assert arena.pick("anything", 0) == 3


TABLE_GROWER = module("", "(table $t 1 funcref)", '''
  (func (export "pick") (result i32)
    ;; grow to the cap (4096 elements), then try past it: 1 if the second grow failed
    (drop (table.grow $t (ref.null func) (i32.const 4095)))
    (i32.eq (table.grow $t (ref.null func) (i32.const 1)) (i32.const -1)))''')


def test_graft_growing_its_table_is_charged_up_front_and_held_to_the_cap(
        arena: EngineArena) -> None:
    before = arena.snapshot()
    g = arena.install(TABLE_GROWER)
    table_bytes = limits.MAX_TABLE_ELEMENTS * limits.TABLE_ELEMENT_BYTES
    assert arena.alice.usage.memory_bytes == limits.WASM_PAGE + table_bytes
    assert arena.pick("t1", 0) == 1  # grown to the cap; one more element was refused
    assert g.state == "live" and not g.aborts
    assert arena.alice.usage.memory_bytes == limits.WASM_PAGE + table_bytes  # nothing uncharged
    g.remove()
    assert arena.snapshot() == before


def test_graft_whose_table_does_not_fit_the_quota_is_rejected_and_changes_nothing() -> None:
    a = EngineArena()
    try:
        a.alice = type(a.alice)("alice", type(a.alice.quota)(memory_bytes=limits.WASM_PAGE))
        before = a.snapshot()
        caches = a.cache_entries()
        with pytest.raises(GraftRejected, match="would exceed the quota"):
            a.install(TABLE_GROWER, name="evil")
        assert a.snapshot() == before
        assert a.cache_entries() == caches
        assert a.alice.usage.memory_bytes == 0
        assert not a.cached(TABLE_GROWER)
    finally:
        a.close()
