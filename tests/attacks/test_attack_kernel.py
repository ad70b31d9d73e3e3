"""Attacks on the reference kernel's points by one tenant against the host and another.

Alice and bob each own a file, an address space and a process group
(``KernelArena``). Bob's grafts try to watch alice or touch what is hers; alice's
grafts change their own things from ``vino_message`` and then fail. Where no
workload runs between the snapshots, the whole kernel state (frames with their
reference bits and bytes, hints, priorities, the disk image) must be exactly as
before.
"""

from __future__ import annotations

import struct

import pytest

from vino.errors import AbortReason, GraftAborted
from vino.kernel import layouts

from .harness import KernelArena

HINT = '(import "vino" "vm_hint" (func $hint (param i32 i32) (result i32)))'
SETPRIO = '(import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))'
LOG = '(import "vino" "log" (func $log (param i32 i32)))'
EVICT_HEAD = layouts.EVICT.field("cand").offset  # n and its pad
EVICT_ROW = layouts.EVICT.elements("cand", 1)  # page_id, vpn, flags, last_use (pad skipped)


def kernel_graft(entry: str, imports: str = "", message: str = "i32.const 0") -> str:
    return f"""(module {imports}
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  {entry}
  (func (export "vino_message") (param $len i32) (result i32) {message}))"""


EVICT_FIRST = '(func (export "vino_evict") (result i32) i32.const 0)'
PICK_FIRST = '(func (export "vino_pick") (result i32) i32.const 0)'


def _message_attack(kernel: KernelArena, point: str, source: str, target: object,
                    reason: AbortReason, detail: str | None = None) -> None:
    alice = kernel.tenants["alice"].user
    before = kernel.snapshot()
    g = kernel.k.graft(alice, point, source, target=target)
    with pytest.raises(GraftAborted) as err:
        g.send(b"")
    assert err.value.reason is reason
    kernel.assert_survived(before, g, reason, detail)


def test_graft_that_hints_its_pages_from_vino_message_then_traps_leaves_no_hint(
        kernel: KernelArena) -> None:
    t = kernel.tenants["alice"]
    _message_attack(kernel, "vm.evict", kernel_graft(EVICT_FIRST, HINT, """
        (drop (call $hint (i32.const 1) (i32.const 1)))
        (drop (call $hint (i32.const 2) (i32.const 0)))
        unreachable"""), t.aspace, AbortReason.TRAP)


def test_graft_that_hints_a_page_outside_any_address_space_is_forbidden(
        kernel: KernelArena) -> None:
    t = kernel.tenants["alice"]
    _message_attack(kernel, "vm.evict", kernel_graft(EVICT_FIRST, HINT, """
        (drop (call $hint (i32.const 1) (i32.const 1)))
        (drop (call $hint (i32.const -1) (i32.const 1)))
        i32.const 0"""), t.aspace, AbortReason.FORBIDDEN_CALL, "vm_hint")


def test_graft_that_boosts_its_threads_then_another_users_from_vino_message_is_undone(
        kernel: KernelArena) -> None:
    mine = kernel.tenants["alice"].threads
    theirs = kernel.tenants["bob"].threads[0]
    _message_attack(kernel, "sched.pick", kernel_graft(PICK_FIRST, SETPRIO, f"""
        (drop (call $setprio (i32.const {mine[0].tid}) (i32.const 99)))
        (drop (call $setprio (i32.const {mine[1].tid}) (i32.const 98)))
        (drop (call $setprio (i32.const {theirs.tid}) (i32.const -99)))
        i32.const 0"""), kernel.tenants["alice"].group, AbortReason.FORBIDDEN_CALL,
                    "not in the graft's group")
    assert theirs.priority == 0 and [t.priority for t in mine] == [0, 1, 2]


# Logs every call's buffer (the candidate rows, up to the line limit).
EVICT_SPY = kernel_graft('''(func (export "vino_evict") (result i32)
    (call $log (i32.const 0) (i32.const 512)) i32.const 0)''', LOG)


def test_graft_that_reads_its_evict_candidates_sees_only_its_own_pages(
        kernel: KernelArena) -> None:
    k = kernel.k
    alice, bob = kernel.tenants["alice"], kernel.tenants["bob"]
    g = k.graft(bob.user, "vm.evict", EVICT_SPY, target=bob.aspace)
    for v in range(1000, 1000 + k.cache.nframes + 8):  # bob's own growth: his evictions
        bob.aspace.touch(v)
    for v in range(100, 100 + k.cache.nframes):  # alice's growth: hers, bob's graft silent
        alice.aspace.touch(v)
    assert g.stats.commits > 0 and not g.aborts
    seen: set[int] = set()
    for line in g.logs:
        (n,) = struct.unpack_from("<I", line, 0)
        rows = min(n, (len(line) - EVICT_HEAD) // EVICT_ROW.size)
        for i in range(rows):
            _, vpn, _, _ = EVICT_ROW.unpack_from(line, EVICT_HEAD + i * EVICT_ROW.size)
            seen.add(vpn)
    bobs = set(range(6)) | set(range(1000, 1000 + k.cache.nframes + 8))
    assert seen and seen <= bobs  # never one of alice's pages


def test_handler_on_ones_own_file_hears_nothing_of_another_users_file(
        kernel: KernelArena) -> None:
    k = kernel.k
    alice, bob = kernel.tenants["alice"], kernel.tenants["bob"]
    listener = k.graft(bob.user, "fs.access", """(module
      (memory (export "memory") 1)
      (func (export "vino_buffer") (result i32) i32.const 0)
      (func (export "vino_on_access") (result i32) i32.const 0))""",
                       target=kernel.inode(bob.file))
    with k.fs.open(alice.proc, alice.file, "r") as f:
        k.fs.read(f, 1 << 16)
    assert listener.stats.invocations == 0
    with k.fs.open(bob.proc, bob.file, "r") as f:
        k.fs.read(f, 1 << 16)
    assert listener.stats.commits > 0
