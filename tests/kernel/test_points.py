"""Attacks on the kernel's graft points: defaults, then hostile grafts at each point.

Part 1: with no graft installed, each point's answer is the subsystem's own default
(sequential read-ahead, clock eviction, round robin, identity filter), and wiring
the point in changes nothing a workload can measure: the same device requests, the
same faults, the same schedule as the bare subsystem.

Part 2: a graft that answers wrongly, traps, spins or oversteps its rights is
aborted with the right reason and removed; the operation completes with the
default (the same measurable behaviour as if no graft had been installed) -- except
at ``fs.filter``, whose identity default is no equivalent answer: there the file fails
closed until its owner acts; no data is lost, not even after unmount and remount;
every invariant holds.
"""

from __future__ import annotations

import pytest

from vino.graft import Graft, Quota
from vino.graft.loader import Source
from vino.kernel.cache import AddressSpace
from vino.kernel.errors import FilterUnavailable
from vino.kernel.fs import sequential_readahead
from vino.kernel.kernel import Kernel
from vino.kernel.proc import Process, ProcessGroup, User
from vino.kernel.sched import Cpu, Thread, Wait, cpu_hog
from vino.sdk.build import SDK_DIR, sample_path

from .kernel_world import (
    BS,
    Boot,
    assert_removed,
    cold,
    make_file,
    pattern,
    read_blocks,
    read_file,
    unwire,
    usage,
    wat,
)

HOSTILE = SDK_DIR / "hostile"
SCAN_BLOCKS = 32


# ---- part 1: the defaults ------------------------------------------------------------

def _sequential_scan(k: Kernel, data: bytes) -> dict[str, int]:
    """alice writes ``data`` to "scan", the cache is dropped, she reads it block by block."""
    alice = k.add_user("alice")
    proc = make_file(k, alice, "scan", data)
    # A graft on another open file must not change this file's policy.
    make_file(k, alice, "other", pattern(4))
    other = k.fs.open(proc, "other", "r")
    k.graft(alice, "fs.readahead", sample_path("null.wasm"), target=other)
    cold(k)
    before = k.device.stats.snapshot()
    with k.fs.open(proc, "scan", "r") as f:
        assert read_blocks(k, f, list(range(len(data) // BS))) == data
    after = k.device.stats.snapshot()
    k.fs.close(other)
    k.check_invariants()
    return {"reads": after["reads"] - before["reads"],
            "blocks_read": after["blocks_read"] - before["blocks_read"],
            "busy_ns": after["busy_ns"] - before["busy_ns"],
            "prefetches": k.fs.stats.prefetches,
            "prefetch_hits": k.fs.stats.prefetch_hits}


def test_readahead_default_prefetches_a_sequential_scan_exactly_like_the_bare_fs(
        boot: Boot) -> None:
    data = pattern(SCAN_BLOCKS)
    bare_k = boot("bare")
    unwire(bare_k)
    bare = _sequential_scan(bare_k, data)
    seen = _sequential_scan(boot("kernel"), data)
    assert seen == bare
    # What the default does: whole windows of readahead_max blocks arrive in few requests.
    assert seen["prefetches"] >= SCAN_BLOCKS - 2
    assert seen["prefetch_hits"] == seen["prefetches"]
    # 32 blocks in 8 requests: blocks 0 and 1, the indirect block, then one per window.
    assert seen["reads"] <= SCAN_BLOCKS // 4


def test_readahead_point_answers_what_sequential_readahead_answers(boot: Boot) -> None:
    k = boot()
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(20))
    point = k.readahead_point
    with k.fs.open(proc, "f", "r") as f:
        for b in (0, 1, 2, 3, 7, 8, 9, 15, 19, 4, 12):
            k.fs.seek(f, b * BS)
            k.fs.read(f, 1)
            want = sequential_readahead(20, b, f.history, k.fs.readahead_max)
            assert point(f, f, b) == want
    # Sequential after 1, 2, 3: the window after block 1 was asked for; random: nothing.
    assert sequential_readahead(20, 1, [1, 0], 8) == list(range(2, 10))
    assert sequential_readahead(20, 12, [12, 4, 19], 8) == []


def _evict_workload(aspace: AddressSpace) -> list[int]:
    """A mix of re-use and scans that makes clock's second chance matter."""
    faults = []
    for r in range(4):
        for v in range(24):
            faults.append(aspace.touch(v, write=v % 3 == 0))
        for v in (0, 1, 2, 3, 5, 8):
            faults.append(aspace.touch(v))
        for v in range(100 + 10 * r, 110 + 10 * r):
            faults.append(aspace.touch(v))
    return [i for i, f in enumerate(faults) if f]


def test_evict_default_is_the_caches_own_clock(boot: Boot) -> None:
    bare_k = boot("bare", frames=24)
    unwire(bare_k)
    bare = bare_k.address_space(bare_k.spawn(bare_k.add_user("alice")))
    bare_faults = _evict_workload(bare)
    k = boot("kernel", frames=24)
    alice = k.add_user("alice")
    aspace = k.address_space(k.spawn(alice))
    faults = _evict_workload(aspace)
    assert k.registry.grafts("vm.evict") == []
    assert faults == bare_faults
    assert aspace.resident() == bare.resident()
    assert aspace.evictions == bare.evictions > 0
    assert k.cache.stats.snapshot() == bare_k.cache.stats.snapshot()
    k.check_invariants()
    bare_k.check_invariants()


def test_evict_default_gives_referenced_pages_a_second_chance(boot: Boot) -> None:
    k = boot(frames=32)
    alice = k.add_user("alice")
    aspace = k.address_space(k.spawn(alice))
    n = k.cache.free_frames  # the file system's metadata holds the other frames
    assert n > k.cache.min_resident + 2
    for v in range(n):
        aspace.touch(v)
    # Every page referenced: clock clears every bit on its first lap and takes the hand's.
    aspace.touch(n)
    assert not aspace.is_resident(0)
    # 1 is referenced again, 2 .. n - 1 are not: 1 gets its second chance, 2 goes.
    aspace.touch(1)
    aspace.touch(n + 1)
    assert aspace.is_resident(1) and not aspace.is_resident(2)
    k.check_invariants()


def _round_robin_trace(k: Kernel) -> list[tuple[int, int]]:
    alice = k.add_user("alice")
    procs = [k.spawn(alice, "", k.new_group(alice)) for _ in range(2)]
    for p in procs:
        for _ in range(3):
            k.sched.spawn(p, cpu_hog())
    k.sched.spawn(procs[0], [Cpu(3_000_000), Wait(5_000_000), Cpu(3_000_000)])
    k.sched.trace = []
    k.sched.run(steps=24)
    k.check_invariants()
    return [(d.tid, d.ran_ns) for d in k.sched.trace]


def test_pick_default_is_round_robin_like_the_bare_scheduler(boot: Boot) -> None:
    bare_k = boot("bare")
    unwire(bare_k)
    bare = _round_robin_trace(bare_k)
    seen = _round_robin_trace(boot("kernel"))
    assert seen == bare
    # Round robin: the groups alternate, and inside a group the threads take turns.
    assert [t for t, _ in seen][:8] == [1, 4, 2, 5, 3, 6, 7, 4]


def test_filter_default_is_identity_the_image_holds_the_plaintext(boot: Boot) -> None:
    k = boot()
    alice = k.add_user("alice")
    data = pattern(3, "plain")
    make_file(k, alice, "f", data)
    calls = k.fs.stats.filter_calls
    assert calls >= 3
    image = boot.image(k)
    k2 = boot.remount(k)
    raw = image.read_bytes()
    assert all(data[i:i + BS] in raw for i in range(0, len(data), BS))
    assert read_file(k2, k2.add_user("alice"), "f") == data


def test_access_event_without_handlers_changes_nothing(boot: Boot) -> None:
    k = boot()
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(4))
    with k.fs.open(proc, "f", "r") as f:
        inode = f.inode
        assert k.access_point(inode, inode, 0, 0, 0) == 0
        assert k.fs.read(f, 4 * BS) == pattern(4)
    assert k.fs.stats.access_events == 8  # 4 written, 4 read
    k.check_invariants()


# ---- part 2: hostile grafts --------------------------------------------------------------

def _ra_fill(count: str) -> str:
    """fs.readahead body: write blocks 0, 1, ... into out until i > the bound, return i."""
    return f"""(local $i i32)
    (block $done (loop $each
      (br_if $done (i32.gt_u (local.get $i) {count}))
      (i32.store (i32.add (i32.const 80) (i32.shl (local.get $i) (i32.const 2)))
                 (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (local.get $i)"""


READAHEAD_ATTACKS: dict[str, tuple[Source, str]] = {
    "block past the end of the file": (HOSTILE / "readahead_out_of_range.wat",
                                       "invalid_result"),
    "the same block twice": (wat("fs.readahead", """
        (i32.store (i32.const 80) (i32.add (i32.load (i32.const 4)) (i32.const 1)))
        (i32.store (i32.const 84) (i32.add (i32.load (i32.const 4)) (i32.const 1)))
        i32.const 2"""), "invalid_result"),
    "one more block than max_out (all distinct, all inside)": (
        wat("fs.readahead", _ra_fill("(i32.load (i32.const 8))")), "invalid_result"),
    "a negative count": (wat("fs.readahead", "i32.const -1"), "invalid_result"),
    "a count of 2^31 - 1": (wat("fs.readahead", "i32.const 0x7fffffff"), "invalid_result"),
    "never returns": (HOSTILE / "readahead_loop.wat", "timeout"),
    "traps": (wat("fs.readahead", "unreachable"), "trap"),
}


def _scan(k: Kernel, proc: Process, source: Source | None) -> tuple[Graft | None, bytes]:
    cold(k)
    with k.fs.open(proc, "f", "r") as f:
        g = k.graft(proc.user, "fs.readahead", source, target=f) if source else None
        got = read_blocks(k, f, list(range(SCAN_BLOCKS)))
    return g, got


@pytest.mark.parametrize("attack", sorted(READAHEAD_ATTACKS))
def test_hostile_readahead_is_aborted_and_the_default_reads_ahead(boot: Boot,
                                                                   attack: str) -> None:
    source, reason = READAHEAD_ATTACKS[attack]
    data = pattern(SCAN_BLOCKS)
    base = boot("baseline")
    _, got = _scan(base, make_file(base, base.add_user("alice"), "f", data), None)
    assert got == data
    k = boot("attacked")
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", data)
    before = usage(alice)
    g, got = _scan(k, proc, source)
    assert g is not None
    assert got == data
    # The default completed every read-ahead decision: the same device traffic as no graft.
    assert k.device.stats.snapshot() == base.device.stats.snapshot()
    assert k.fs.stats.prefetches == base.fs.stats.prefetches > 0
    assert_removed(k, g, reason)
    assert g.stats.invocations == 1  # removed at its first failure
    assert usage(alice) == before
    k2 = boot.remount(k)
    assert read_file(k2, k2.add_user("alice"), "f") == data
    k2.check_invariants()


EVICT_ATTACKS: dict[str, tuple[Source, str]] = {
    "victim not among the candidates": (HOSTILE / "evict_not_candidate.wat", "invalid_result"),
    "index n (one past the last)": (wat("vm.evict", "(i32.load (i32.const 0))"),
                                    "invalid_result"),
    "negative index": (wat("vm.evict", "i32.const -1"), "invalid_result"),
    "wild store": (HOSTILE / "evict_wild_store.wat", "trap"),
    # Batches (further victims in more[], at byte 6152; the answer counts them in 65536s):
    "batch: a further victim not among the candidates": (wat("vm.evict", """
        (i32.store (i32.const 6152) (i32.load (i32.const 0)))
        i32.const 65536"""), "invalid_result"),
    "batch: the victim named again as a further victim": (wat("vm.evict", """
        (i32.store (i32.const 6152) (i32.const 0))
        i32.const 65536"""), "invalid_result"),
    "batch: a further victim named twice": (wat("vm.evict", """
        (i32.store (i32.const 6152) (i32.const 1))
        (i32.store (i32.const 6156) (i32.const 1))
        i32.const 131072"""), "invalid_result"),
    "batch: more further victims than more[] holds (31)": (wat("vm.evict", """
        (local $i i32)
        (loop $fill
          (i32.store (i32.add (i32.const 6152) (i32.shl (local.get $i) (i32.const 2)))
                     (i32.add (local.get $i) (i32.const 1)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $fill (i32.lt_u (local.get $i) (i32.const 32))))
        i32.const 2097152"""), "invalid_result"),
    "batch: the victim not among the candidates": (wat("vm.evict", """
        (i32.store (i32.const 6152) (i32.const 0))
        (i32.add (i32.load (i32.const 0)) (i32.const 65536))"""), "invalid_result"),
    "hints a page, then traps": (wat("vm.evict", """
        (drop (call $hint (i32.const 3) (i32.const 1)))
        unreachable""", imports='(import "vino" "vm_hint" '
                                 '(func $hint (param i32 i32) (result i32)))'), "trap"),
}


def _evict_run(k: Kernel, source: Source | None) -> tuple[Graft | None, AddressSpace, User]:
    alice = k.add_user("alice")
    aspace = k.address_space(k.spawn(alice))
    for v in range(8):
        aspace.write(v, f"page {v}".encode())
    g = k.graft(alice, "vm.evict", source, target=aspace) if source else None
    for v in range(100, 100 + k.cache.nframes + 8):
        aspace.touch(v)
    return g, aspace, alice


@pytest.mark.parametrize("attack", sorted(EVICT_ATTACKS))
def test_hostile_evict_is_aborted_and_clock_picks_the_victim(boot: Boot, attack: str) -> None:
    source, reason = EVICT_ATTACKS[attack]
    _, base, _ = _evict_run(boot("baseline", frames=16), None)
    k = boot("attacked", frames=16)
    g, aspace, alice = _evict_run(k, source)
    assert g is not None
    assert_removed(k, g, reason)
    assert aspace.hints == {}  # an aborted graft's hints are undone
    # The default chose every victim: exactly the pages clock keeps.
    assert aspace.resident() == base.resident()
    assert aspace.faults == base.faults
    assert all(aspace.read(v).startswith(f"page {v}".encode()) for v in range(8))
    assert usage(alice)["memory_bytes"] == 0
    k.check_invariants()


def test_a_batch_of_a_removed_or_replaced_eviction_graft_is_not_taken(boot: Boot) -> None:
    """evict_keep answers in batches; once its graft is gone (or replaced), the next
    eviction is decided by whatever policy is now in place, not by the old batch."""
    k = boot("batch", frames=16)
    alice = k.add_user("alice")
    aspace = k.address_space(k.spawn(alice))
    g = k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"), target=aspace)
    for v in range(40):
        aspace.touch(v)
    assert g.stats.commits < aspace.evictions  # batches: fewer calls than evictions
    assert aspace._victims  # a batch is waiting
    g.remove()
    assert aspace._victims == []
    g2 = k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"), target=aspace)
    aspace.touch(100)
    assert aspace._victims
    k.graft(alice, "vm.evict", sample_path("evict_keep.wasm"), target=aspace, replace=True)
    assert aspace._victims == [] and g2.stats.commits == 1
    k.check_invariants()


def _sched_world(k: Kernel) -> tuple[User, ProcessGroup, list[Thread], Thread]:
    """alice's group of three threads; bob's group with one thread (the victim)."""
    bob = k.add_user("bob")
    bob_group = k.new_group(bob, "bob")
    victim = k.sched.spawn(k.spawn(bob, "b", bob_group), cpu_hog(), priority=5)
    alice = k.add_user("alice")
    group = k.new_group(alice, "alice")
    proc = k.spawn(alice, "a", group)
    mine = [k.sched.spawn(proc, [Cpu(2_000_000), Wait(1_000_000)] * 3, priority=i)
            for i in range(3)]
    return alice, group, mine, victim


def _other_group_wat(victim: int) -> str:
    return (HOSTILE / "sched_other_group.wat").read_text().replace(
        "(i32.const 1) (i32.const 99)", f"(i32.const {victim}) (i32.const 99)")


SETPRIO = '(import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))'

SCHED_ATTACKS: dict[str, tuple[str, str]] = {
    "index n (one past the last)": ("(i32.load (i32.const 0))", "invalid_result"),
    "negative index": ("i32.const -1", "invalid_result"),
    "huge index": ("i32.const 0x7fffffff", "invalid_result"),
    "boosts another group's thread": ("OTHER", "forbidden_call"),
    "boosts its own thread, then another group's": ("""
        (drop (call $setprio (i32.load (i32.const 8)) (i32.const 77)))
        (drop (call $setprio (i32.const VICTIM) (i32.const 99)))
        i32.const 0""", "forbidden_call"),
    "boosts its whole group, then traps": ("TRAP", "trap"),
    "a thread id that does not exist": ("""
        (drop (call $setprio (i32.const 999999) (i32.const 1)))
        i32.const 0""", "forbidden_call"),
}


def _trace(k: Kernel) -> list[tuple[int, int]]:
    k.sched.trace = []
    k.sched.run(until_ns=k.clock.now_ns() + 40_000_000)
    return [(d.tid, d.ran_ns) for d in k.sched.trace]


@pytest.mark.parametrize("attack", sorted(SCHED_ATTACKS))
def test_hostile_pick_is_aborted_and_round_robin_runs(boot: Boot, attack: str) -> None:
    body, reason = SCHED_ATTACKS[attack]
    base = boot("baseline")
    _sched_world(base)
    want = _trace(base)
    k = boot("attacked")
    alice, group, mine, victim = _sched_world(k)
    if body == "OTHER":
        source: Source = _other_group_wat(victim.tid)
    elif body == "TRAP":
        source = HOSTILE / "sched_trap_after_boost.wat"
    else:
        source = wat("sched.pick", body.replace("VICTIM", str(victim.tid)), imports=SETPRIO)
    g = k.graft(alice, "sched.pick", source, target=group)
    assert _trace(k) == want
    assert_removed(k, g, reason)
    assert victim.priority == 5
    assert [t.priority for t in mine] == [0, 1, 2]


FILTER_ATTACKS: dict[str, tuple[Source, str]] = {
    "changes the length": (HOSTILE / "filter_changes_length.wat", "invalid_result"),
    "scrambles half a block, then traps": (HOSTILE / "filter_trap_midblock.wat", "trap"),
    "returns a garbage length on read only": (wat("fs.filter", """
        (if (result i32) (local.get $dir)
          (then (i32.const 0x7fffffff))
          (else (local.get $len)))"""), "invalid_result"),
    "scrambles the block and returns len + 1": (wat("fs.filter", """
        (memory.fill (i32.const 16) (i32.const 0xa5) (local.get $len))
        (i32.add (local.get $len) (i32.const 1))"""), "invalid_result"),
    "scrambles the whole block, then traps on write": (wat("fs.filter", """
        (memory.fill (i32.const 16) (i32.const 0xa5) (local.get $len))
        (if (i32.eqz (local.get $dir)) (then unreachable))
        (local.get $len)"""), "trap"),
}


@pytest.mark.parametrize("attack", sorted(FILTER_ATTACKS))
def test_hostile_filter_is_aborted_and_its_file_fails_closed_until_the_owner_acts(
        boot: Boot, attack: str) -> None:
    """A filter's stored form is its own: when it fails, the identity must not stand in.

    Every operation either commits through the graft or raises ``FilterUnavailable``
    having written nothing of its failing block; later reads and writes keep failing
    until alice unseals the file; then what was committed reads back byte-exact.
    """
    source, reason = FILTER_ATTACKS[attack]
    k = boot()
    alice = k.add_user("alice")
    data = pattern(3, "before")
    proc = make_file(k, alice, "f", data)
    # Append (whole new blocks: write direction only), then patch the middle of a block
    # (read, modified, rewritten: both directions), then read everything.
    patch = b"PATCHED!" * 100
    extra = pattern(2, "after")[: 2 * BS - 123]
    want = bytearray(data)
    failed = 0
    with k.fs.open(proc, "f", "rw") as f:
        g = k.graft(alice, "fs.filter", source, target=f.inode)
        for pos, chunk in ((len(data), extra), (2 * BS + 100, patch)):
            k.fs.seek(f, pos)
            try:
                k.fs.write(f, chunk)
            except FilterUnavailable:
                failed += 1
                continue
            want[pos:pos + len(chunk)] = chunk  # committed through the (identity-like) graft
        k.fs.seek(f, 0)
        with pytest.raises(FilterUnavailable, match="removed"):
            k.fs.read(f, 10 * BS)
        with pytest.raises(FilterUnavailable):
            k.fs.write(f, b"after the failure")
        assert failed >= 1
        assert_removed(k, g, reason)
        k.unseal(alice, f.inode)
        k.fs.seek(f, 0)
        assert k.fs.read(f, 10 * BS) == want
    assert read_file(k, proc, "f") == want
    boot.image(k)
    k2 = boot.remount(k)
    assert read_file(k2, k2.add_user("alice"), "f") == want
    k2.check_invariants()


ACCESS_ATTACKS: dict[str, tuple[Source, str]] = {
    "leaks host memory handles": (HOSTILE / "access_handle_leak.wat", "resource"),
    "traps": (wat("fs.access", "unreachable"), "trap"),
    "returns a negative value": (wat("fs.access", "i32.const -1"), "invalid_result"),
}


@pytest.mark.parametrize("attack", sorted(ACCESS_ATTACKS))
def test_hostile_access_handler_is_aborted_and_the_read_completes(boot: Boot,
                                                                  attack: str) -> None:
    source, reason = ACCESS_ATTACKS[attack]
    k = boot()
    alice = k.add_user("alice", Quota(handles=16))
    data = pattern(4)
    proc = make_file(k, alice, "f", data)
    before = usage(alice)
    with k.fs.open(proc, "f", "r") as f:
        g = k.graft(alice, "fs.access", source, target=f.inode)
        assert k.fs.read(f, len(data)) == data
    assert_removed(k, g, reason)
    assert usage(alice) == before
