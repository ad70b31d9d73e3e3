"""Attacks through WebAssembly features the host cannot account for.

The engine enables only the features grafts need (``sandbox.WASM_FEATURES``).
With GC on, eight grafts of one principal held 123 MB of host memory in GC
arrays while the principal was charged 0.5 MB. Each attack here installs a graft
using one disabled feature: it is refused at load, naming the feature, and
leaves no trace (no graft, no charge, nothing cached); a bystander graft still
answers. Tables, which the engine must allow, are charged and capped.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vino import limits
from vino.errors import GraftRejected
from vino.graft import GLOBAL

from .engine_caches import cache_entries, cached
from .harness import TARGET, Tenancy, module, pick, pick_returning

ENTRY = ('(func (export "vino_buffer") (result i32) i32.const 0)'
         ' (func (export "pick") (result i32) i32.const 1))')
FEATURE_GRAFTS = {
    "GC (structs and arrays)": pick(
        "(global.set $keep (array.new_default $a (i32.const 1000000))) i32.const 1", [],
        "(type $a (array (mut i8)))", "(global $keep (mut (ref null $a)) (ref.null $a))"),
    "exception handling": pick(
        "(block $h (try_table (catch_all $h) (throw $e))) i32.const 1", [], "(tag $e)"),
    "threads (shared memory and atomics)": pick("(i32.atomic.load (i32.const 0))"),
    "SIMD (vector instructions)": pick("(drop (v128.const i32x4 0 0 0 0)) i32.const 1"),
    "tail calls": pick("return_call $one", [], "(func $one (result i32) i32.const 1)"),
    "typed function references": pick(
        "(call_ref $t (ref.func $one))", [], "(type $t (func (result i32)))",
        "(func $one (type $t) i32.const 1)", "(elem declare func $one)"),
    "memory64 (64-bit memories)": f'(module (memory (export "memory") i64 1) {ENTRY}',
    "custom page sizes": f'(module (memory (export "memory") 1 (pagesize 1)) {ENTRY}',
}


@pytest.mark.parametrize("feature", list(FEATURE_GRAFTS))
def test_graft_using_a_feature_the_host_cannot_charge_is_rejected_naming_it(
        tenancy: Tenancy, feature: str) -> None:
    tenancy.install(pick_returning(3), tenancy.root, GLOBAL, name="bystander")
    before = tenancy.snapshot()
    caches = cache_entries(tenancy)
    source = FEATURE_GRAFTS[feature]
    with pytest.raises(GraftRejected) as info:
        tenancy.install(source, name="evil")
    assert info.value.reason.startswith(f"uses {feature}, which vino does not enable"), \
        info.value.reason
    tenancy.assert_unchanged(before)
    assert cache_entries(tenancy) == caches and not cached(tenancy, source)
    assert tenancy.pick("anything", 0) == 3


TABLE_GROWER = module([], "(table $t 1 funcref)", '''
  (func (export "pick") (result i32)
    ;; grow to the cap (4096 elements), then try past it: 1 if the second grow failed
    (drop (table.grow $t (ref.null func) (i32.const 4095)))
    (i32.eq (table.grow $t (ref.null func) (i32.const 1)) (i32.const -1)))''')


def test_graft_growing_its_table_is_charged_up_front_and_held_to_the_cap(
        tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    g = tenancy.install(TABLE_GROWER)
    table_bytes = limits.MAX_TABLE_ELEMENTS * limits.TABLE_ELEMENT_BYTES
    assert tenancy.alice.usage.memory_bytes == limits.WASM_PAGE + table_bytes
    assert tenancy.pick(TARGET, 0) == 1  # grown to the cap; one more element was refused
    assert g.state == "live" and not g.aborts
    assert tenancy.alice.usage.memory_bytes == limits.WASM_PAGE + table_bytes
    tenancy.assert_no_live_work()  # every live graft's charges add up to its usage
    g.remove()
    tenancy.assert_unchanged(before)


def test_graft_whose_table_does_not_fit_the_quota_is_rejected_and_changes_nothing(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"memory_bytes": limits.WASM_PAGE})
    before = t.snapshot()
    caches = cache_entries(t)
    with pytest.raises(GraftRejected, match="would exceed the quota"):
        t.install(TABLE_GROWER, name="evil")
    t.assert_unchanged(before)
    assert t.alice.usage.memory_bytes == 0
    assert cache_entries(t) == caches and not cached(t, TABLE_GROWER)
