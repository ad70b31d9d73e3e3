"""Bugs the reliability campaigns found, each pinned by the attack that shows it.

A bug is fixed when a test that shows it exists (STYLE.md). Each test names the
campaign that found it; docs/RELIABILITY.md lists them with their fixes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vino.errors import GraftRejected
from vino.graft import GLOBAL, Principal, Quota, transaction
from vino.testing.rig import DEFAULT_ANSWER, NEVER_REMOVE, Rig, module, scratch_kernel


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    r.close()


def test_kalloc_whose_byte_charge_fails_with_an_unexpected_error_gives_back_the_handle(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the fault loop "alloc": kalloc charged the handle, then the byte charge
    # raised something other than QuotaExceeded and the handle stayed charged forever.
    charge = Principal.charge

    def failing(self: Principal, what: str, amount: int) -> None:
        if self is rig.alice and what == "kalloc_bytes":
            raise MemoryError("host out of memory")
        charge(self, what, amount)

    g = rig.install(module(["kalloc"], '(func (export "op") (result i32)'
                                       ' (drop (call $kalloc (i32.const 64))) i32.const 1)'),
                    remove_after=NEVER_REMOVE)
    monkeypatch.setattr(Principal, "charge", failing)
    with pytest.raises(MemoryError):  # the host's own failure reaches the caller
        rig.op("t1", 0)
    assert g.aborts and g.aborts[-1].host_fault
    assert rig.alice.usage.handles == 0
    assert rig.problems() == []


KFREE_THEN_TRAP = module(["kalloc", "kfree"], """
  (func (export "op") (result i32)
    (if (i32.eqz (i32.load (i32.const 0)))
      (then (drop (call $kalloc (i32.const 100))) (return (i32.const 1))))
    (if (i32.eq (i32.load (i32.const 0)) (i32.const 1))
      (then (call $kfree (i32.const 1)) (return (i32.const 2))))
    unreachable)""")


def test_kfree_undone_after_its_graft_was_removed_leaves_nothing_charged(rig: Rig) -> None:
    # Found while modelling nested transactions' undo paths: a graft frees a handle in a host
    # transaction, is then aborted and removed (its other handles given back), and
    # the host transaction aborts. Undoing the kfree put the handle back into the
    # removed graft, so its bytes stayed charged to the principal for ever.
    g = rig.install(KFREE_THEN_TRAP)
    assert rig.op("t1", 0) == 1  # kalloc: handle 1, committed
    assert rig.alice.usage.kalloc_bytes == 100
    with pytest.raises(RuntimeError), transaction():
        assert rig.op("t1", 1) == 2  # kfree(1): the release waits for the host commit
        assert rig.op("t1", 2) == DEFAULT_ANSWER  # traps: aborted and removed
        assert g.state == "removed"
        raise RuntimeError("the host operation fails")
    usage: dict[str, Any] = rig.alice.usage.snapshot()
    assert (usage["kalloc_bytes"], usage["handles"], usage["memory_bytes"]) == (0, 0, 0)
    assert g.handles == {}
    assert rig.problems() == []


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_a_principal_with_no_rights_cannot_grow_host_memory_by_trying_distinct_modules(
        rig: Rig) -> None:
    # Found while sizing the loader fuzzer (RSS per attempt): every module the loader
    # compiled was kept for ever (the sandbox's module cache, the loader's table of passed
    # checks), even when the install was then rejected, so anyone could grow the host by
    # ~20 KiB per attempt, uncharged. Half of these fail the import check, half the rights
    # check (GLOBAL).
    mallory = Principal("mallory")

    def attempt(i: int) -> None:
        text = module([], f'(func (export "op") (result i32) i32.const {i})')
        if i % 2:
            text = text.replace("(module", '(module (import "env" "x" (func))', 1)
        with pytest.raises(GraftRejected):
            rig.registry.install(rig.op, text, mallory, GLOBAL)

    for i in range(300):  # warm up: allocator arenas, the caches' steady state
        attempt(i)
    before = _rss_mib()
    for i in range(300, 1800):
        attempt(i)
    assert _rss_mib() - before < 10.0  # unbounded: ~29 MiB for these 1,500 attempts
    assert _usage_of(mallory) == {"memory_bytes": 0, "kalloc_bytes": 0, "handles": 0}


def _usage_of(p: Principal) -> dict[str, int]:
    u = p.usage
    return {"memory_bytes": u.memory_bytes, "kalloc_bytes": u.kalloc_bytes, "handles": u.handles}


def _buffer_graft(grow: bool) -> str:
    """vino_buffer writes host state and allocates (then maybe grows its memory)."""
    return "\n".join((
        "(module",
        '  (import "vino" "put" (func $put (param i32 i32) (result i32)))',
        '  (import "vino" "kalloc" (func $kalloc (param i32) (result i32)))',
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32)',
        "    (drop (call $put (i32.const 5) (i32.const 55)))",
        "    (drop (call $kalloc (i32.const 128)))",
        "    (drop (memory.grow (i32.const 1)))" if grow else "",
        "    i32.const 0)",
        '  (func (export "op") (result i32) i32.const 1)',
        ")",
    ))


def test_install_rejected_after_vino_buffer_changed_host_state_changes_nothing(
        rig: Rig) -> None:
    # Found by the install fault loop: vino_buffer() ran in a transaction that committed
    # before the install's last check (the memory charge), so a rejected install kept
    # vino_buffer's host writes -- against "a rejected install changes nothing".
    mallory = Principal("mallory", Quota(memory_bytes=65536))  # one page: the grow goes over
    with pytest.raises(GraftRejected, match="quota"):
        rig.registry.install(rig.op, _buffer_graft(grow=True), mallory, "t1")
    assert rig.host.state() == {"d": {}, "items": []}
    assert _usage_of(mallory) == {"memory_bytes": 0, "kalloc_bytes": 0, "handles": 0}
    assert rig.registry.grafts() == []
    assert rig.problems() == []


def test_install_failing_with_a_host_error_after_vino_buffer_allocated_gives_all_back(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the install fault loop ("alloc", the memory charge): an error other than
    # GraftRejected skipped the clean-up, so vino_buffer's handle stayed charged for ever.
    charge = Principal.charge

    def failing(self: Principal, what: str, amount: int) -> None:
        if self is rig.alice and what == "memory_bytes":
            raise MemoryError("host out of memory")
        charge(self, what, amount)

    monkeypatch.setattr(Principal, "charge", failing)
    with pytest.raises(MemoryError):
        rig.install(_buffer_graft(grow=False))
    monkeypatch.undo()
    assert rig.host.state() == {"d": {}, "items": []}
    assert _usage_of(rig.alice) == {"memory_bytes": 0, "kalloc_bytes": 0, "handles": 0}
    assert rig.registry.grafts() == []
    assert rig.problems() == []


@pytest.mark.parametrize("segment", [
    '(data (i32.const 70000) "past the end of the one page")',
    '(table 1 funcref) (elem (i32.const 5) func $f) (func $f)',
], ids=["data", "elem"])
def test_module_whose_segment_lies_outside_its_memory_or_table_is_rejected_cleanly(
        rig: Rig, segment: str) -> None:
    # Found by the loader fuzzer (an i32.const mutated in a sample's data segment): the
    # segment traps at instantiation, and the install raised wasmtime.Trap instead of
    # GraftRejected.
    before = rig.snapshot()
    with pytest.raises(GraftRejected, match="instantiation failed"):
        rig.install(module([], segment, '(func (export "op") (result i32) i32.const 1)'))
    assert rig.snapshot() == before
    assert rig.registry.grafts() == []


HINT_FLOOD = """(module
  (import "vino" "vm_hint" (func $hint (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $v (mut i32) (i32.const 0))
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32) (local $i i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const 500)))
      (drop (call $hint (global.get $v) (i32.const 1)))
      (global.set $v (i32.add (global.get $v) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    i32.const 0))"""


def test_evict_graft_cannot_grow_host_memory_without_bound_through_vm_hint(
        tmp_path: Path) -> None:
    # Found by the hostile-callables campaign (vm_hint on ever new vpns): every hint is a
    # host dict entry, uncharged and unbounded, so a graft adding 500 per eviction grew the
    # host for as long as it lived. Now an address space holds a bounded number of hints
    # and a graft that asks for more is aborted (resource), its hints of that call undone.
    with scratch_kernel(tmp_path, frames=16) as k:
        # A generous per-call budget: the test is about memory, not time.
        alice = k.add_user("alice", Quota(cpu_call_s=2.0))
        aspace = k.address_space(k.spawn(alice, "app"))
        g = k.graft(alice, "vm.evict", HINT_FLOOD, target=aspace)
        for n in range(4000):
            aspace.touch(n % 64)
            if g.state != "live":
                break
        assert g.removal is not None and g.removal.reason.value == "resource", g.removal
        assert len(aspace.hints) <= 8192
        assert len(aspace.hints) % 500 == 0  # whole committed calls only
        k.check_invariants()
