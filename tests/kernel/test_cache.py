"""Attacks on the buffer cache / VM: counts, write-back, clocks, the per-address-space rule."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vino.kernel import params
from vino.kernel.cache import DIRTY, REFERENCED, Access, AddressSpace, Cache, PageInfo
from vino.kernel.device import BlockDevice
from vino.kernel.errors import BadBlock, BadHandle, InvalidArgument, NoSpace
from vino.kernel.proc import Process, User
from vino.testing.threads import run_threads

MakeDevice = Callable[..., BlockDevice]  # the make_device fixture (conftest.py)
BS = params.BLOCK_SIZE


def _proc(pid: int, uid: int = 1000) -> Process:
    return Process(pid, User(uid, f"u{uid}"))


def _fill(tag: int) -> bytes:
    return bytes([tag & 0xFF]) * BS



def _replace(obj: object, slot: str, fn: Callable[..., object]) -> None:
    """Plug ``fn`` into a policy slot of one instance, the way a graft point does."""
    setattr(obj, slot, fn)

# ---- file blocks ---------------------------------------------------------------------------


def test_second_read_is_a_hit_and_costs_no_device_read(make_device: MakeDevice) -> None:
    dev = make_device(16)
    dev.write_block(3, _fill(3))
    cache = Cache(4)
    assert cache.fetch(dev, 3) == (_fill(3), Access.MISS)
    assert cache.fetch(dev, 3) == (_fill(3), Access.HIT)
    assert (cache.stats.misses, cache.stats.hits, dev.stats.reads) == (1, 1, 1)
    cache.check_invariants()


def test_more_blocks_than_frames_evicts_exactly_the_overflow(make_device: MakeDevice) -> None:
    dev = make_device(16)
    cache = Cache(4)
    for b in range(6):
        cache.read_block(dev, b)
    assert (cache.stats.misses, cache.stats.evictions, cache.free_frames) == (6, 2, 0)
    assert len(cache.resident_blocks(dev)) == 4
    cache.check_invariants()


def test_out_of_range_block_through_the_cache_claims_no_frame(make_device: MakeDevice) -> None:
    dev = make_device(8)
    cache = Cache(4)
    with pytest.raises(BadBlock):
        cache.read_block(dev, 8)
    with pytest.raises(BadBlock):
        cache.write_block(dev, -1, _fill(0))
    assert cache.free_frames == 4
    cache.check_invariants()


def test_a_miss_the_device_fails_claims_no_frame_evicts_nothing_and_leaves_no_trace(
        make_device: MakeDevice, tmp_path: Path) -> None:
    # A miss reads into the cache's spare buffer before a frame is taken; a read that
    # fails half-way (the image cut short behind the device's back) leaves part of a
    # block in it. Nothing may be claimed or evicted, and no later read may see it.
    dev = make_device(8)
    for b in range(8):
        dev.write_block(b, _fill(b + 1))
    cache = Cache(4)
    for b in range(4):
        cache.read_block(dev, b)
    os.truncate(tmp_path / "disk.img", 6 * BS + 100)  # block 6 holds 100 bytes now
    with pytest.raises(BadBlock):
        cache.read_block(dev, 6)
    with pytest.raises(BadBlock):
        cache.write_block(dev, 7, b"z", offset=5)  # a partial write reads the block first
    assert cache.resident_blocks(dev) == [0, 1, 2, 3]
    assert (cache.stats.evictions, cache.free_frames) == (0, 0)
    cache.check_invariants()
    assert cache.fetch(dev, 5) == (_fill(6), Access.MISS)  # a frame freed, a whole block
    for b in range(6):
        assert cache.read_block(dev, b) == _fill(b + 1)
    cache.check_invariants()


def test_frames_swapped_with_the_spare_buffer_never_show_another_blocks_bytes(
        make_device: MakeDevice) -> None:
    # Every miss gives its frame's old buffer to the next miss: a block read, written,
    # evicted and read again many times over holds its own bytes, a copy handed out
    # earlier is not changed, and the spare is never a frame's buffer.
    dev = make_device(64)
    for b in range(64):
        dev.write_block(b, _fill(b))
    cache = Cache(5)
    rng = random.Random(7)
    want = {b: _fill(b) for b in range(64)}
    handed: list[tuple[bytes, bytes]] = []
    for _ in range(600):
        b = rng.randrange(64)
        if rng.random() < 0.2:
            data = bytes([rng.randrange(256)]) * 8
            cache.write_block(dev, b, data, offset=100)
            want[b] = want[b][:100] + data + want[b][108:]
        else:
            got = cache.read_block(dev, b)
            assert got == want[b]
            handed.append((got, want[b]))
    assert all(got == was for got, was in handed)
    cache.check_invariants()
    cache.sync()
    assert all(dev.read_block(b) == want[b] for b in range(64))


def test_dirty_block_is_written_back_on_eviction_and_clean_ones_are_not(
        make_device: MakeDevice) -> None:
    dev = make_device(16)
    cache = Cache(2)
    cache.write_block(dev, 0, _fill(0xAB))  # a whole block: no device read needed
    assert dev.stats.reads == 0
    assert dev.read_block(0) == bytes(BS)  # write-back: the device has not seen it yet
    for b in (1, 2, 3):  # push block 0 (and then clean ones) out
        cache.read_block(dev, b)
    assert dev.read_block(0) == _fill(0xAB)
    assert cache.stats.writebacks == 1
    assert dev.stats.writes == 1  # clean evictions wrote nothing


def test_partial_write_of_a_non_resident_block_reads_it_first(make_device: MakeDevice) -> None:
    dev = make_device(8)
    dev.write_block(2, _fill(7))
    cache = Cache(4)
    cache.write_block(dev, 2, b"xy", offset=10)
    assert cache.sync(dev) == 1
    want = bytearray(_fill(7))
    want[10:12] = b"xy"
    assert dev.read_block(2) == want
    with pytest.raises(InvalidArgument):
        cache.write_block(dev, 2, b"abc", offset=BS - 2)


def test_sync_writes_each_dirty_block_once_coalescing_runs(make_device: MakeDevice) -> None:
    dev = make_device(64)
    cache = Cache(32)
    for b in [*range(10, 18), 30]:
        cache.write_block(dev, b, _fill(b))
    writes = dev.stats.writes
    assert cache.sync(dev) == 9
    assert dev.stats.writes - writes == 2  # 10..17 in one request, 30 in another
    assert cache.sync(dev) == 0  # nothing dirty any more
    for b in [*range(10, 18), 30]:
        assert dev.read_block(b) == _fill(b)


def test_discard_drops_a_dirty_block_without_writing_it(make_device: MakeDevice) -> None:
    dev = make_device(8)
    cache = Cache(4)
    cache.write_block(dev, 1, _fill(1))
    cache.discard(dev, 1)
    assert cache.sync() == 0 and dev.read_block(1) == bytes(BS)
    assert not cache.is_resident(dev, 1)
    cache.check_invariants()


def test_global_clock_gives_referenced_blocks_a_second_chance(make_device: MakeDevice) -> None:
    dev = make_device(8)
    cache = Cache(3)
    for b in (0, 1, 2):
        cache.read_block(dev, b)
    cache.read_block(dev, 3)  # all referenced: one lap clears them, block 0 goes
    assert cache.resident_blocks(dev) == [1, 2, 3]
    cache.read_block(dev, 1)  # referenced again
    cache.read_block(dev, 4)  # the hand passes 1 (second chance) and takes 2
    assert cache.resident_blocks(dev) == [1, 3, 4]


def test_invalidate_writes_back_then_forgets_the_device(make_device: MakeDevice) -> None:
    dev = make_device(8)
    other = make_device(8, "other.img")
    cache = Cache(4)
    cache.write_block(dev, 5, _fill(5))
    cache.read_block(other, 1)
    cache.invalidate(dev)
    assert cache.resident_blocks(dev) == [] and cache.resident_blocks(other) == [1]
    assert dev.read_block(5) == _fill(5)
    cache.check_invariants()


# ---- prefetch --------------------------------------------------------------------------------


def test_prefetch_reads_contiguous_runs_in_one_request_and_counts_hits(
        make_device: MakeDevice) -> None:
    dev = make_device(32)
    for b in range(32):
        dev.write_block(b, _fill(b))
    cache = Cache(16)
    reads = dev.stats.reads
    assert cache.prefetch(dev, [5, 6, 7, 9]) == 4
    assert dev.stats.reads - reads == 2  # 5..7 and 9
    assert cache.fetch(dev, 6) == (_fill(6), Access.PREFETCH_HIT)
    assert cache.fetch(dev, 6)[1] is Access.HIT
    assert cache.prefetch(dev, [5, 6]) == 0  # already resident: no I/O
    assert cache.stats.prefetches == 4 and cache.stats.prefetch_hits == 1


def test_prefetch_with_one_bad_block_loads_nothing(make_device: MakeDevice) -> None:
    dev = make_device(8)
    cache = Cache(8)
    with pytest.raises(BadBlock):
        cache.prefetch(dev, [1, 2, 99])
    assert cache.free_frames == 8 and dev.stats.reads == 0


def test_long_prefetch_runs_through_spare_buffers_never_show_another_blocks_bytes(
        make_device: MakeDevice, tmp_path: Path) -> None:
    # Prefetch reads a run into spare page buffers and swaps them into the frames it
    # takes: runs longer than the spares kept, over and over, keep every block's own
    # bytes; the spares stay bounded; a run the device fails half-way claims nothing.
    dev = make_device(400)
    for b in range(400):
        dev.write_block(b, _fill(b))
    cache = Cache(100)
    for first in range(0, 400, 45):
        cache.prefetch(dev, range(first, min(first + 45, 400)))
        cache.check_invariants()
        assert len(cache._spares) <= params.PREFETCH_SPARE_PAGES
    for b in cache.resident_blocks(dev):
        assert cache.read_block(dev, b) == _fill(b)
    resident = cache.resident_blocks(dev)
    os.truncate(tmp_path / "disk.img", 20 * BS + 7)
    with pytest.raises(BadBlock):
        cache.prefetch(dev, range(10, 30))
    assert cache.resident_blocks(dev) == resident
    cache.check_invariants()


def test_prefetch_cannot_flush_the_whole_cache(make_device: MakeDevice) -> None:
    dev = make_device(64)
    cache = Cache(8)
    for b in range(8):
        cache.read_block(dev, b)
    assert cache.prefetch(dev, range(20, 60)) == 8 // params.PREFETCH_FRACTION
    assert len([b for b in cache.resident_blocks(dev) if b < 8]) >= 4


def test_unused_prefetches_are_the_first_victims_and_are_counted(make_device: MakeDevice) -> None:
    dev = make_device(64)
    cache = Cache(8)
    for b in range(4):
        cache.read_block(dev, b)
    cache.prefetch(dev, [40, 41, 42, 43])
    cache.read_block(dev, 10)  # frames full: the sweep clears 0..3 and takes unreferenced 40
    assert not cache.is_resident(dev, 40)
    assert all(cache.is_resident(dev, b) for b in range(4))
    assert cache.stats.prefetch_unused == 1


# ---- anonymous pages ------------------------------------------------------------------------


def test_first_touch_is_a_zero_fill_fault_and_second_is_not() -> None:
    cache = Cache(4)
    aspace = AddressSpace(_proc(1), cache)
    assert aspace.touch(7) is True
    assert aspace.touch(7) is False
    assert aspace.read(7) == bytes(BS)
    assert (aspace.faults, cache.stats.faults) == (1, 1)
    assert aspace.resident() == [7]


def test_anonymous_contents_survive_eviction_without_a_swap_device() -> None:
    cache = Cache(3, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(10):
        aspace.write(vpn, bytes([vpn]) * 100, offset=vpn)
    for vpn in range(10):
        assert aspace.read(vpn)[vpn:vpn + 100] == bytes([vpn]) * 100
    assert cache.stats.swapouts >= 7 and cache.stats.swapins >= 7
    cache.check_invariants()


def test_anonymous_pages_swap_to_a_real_device_and_clean_ones_are_not_rewritten(
        make_device: MakeDevice) -> None:
    swap = make_device(16, "swap.img")
    cache = Cache(2, swap=swap, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(4):
        aspace.write(vpn, _fill(vpn + 1))
    for vpn in range(4):
        assert aspace.read(vpn) == _fill(vpn + 1)
    writes_after_first_round = swap.stats.writes
    for vpn in range(4):  # only reads: pages come back clean and leave without a write
        aspace.read(vpn)
    assert swap.stats.writes == writes_after_first_round
    assert swap.stats.reads >= 4
    cache.check_invariants()


def test_pages_swapped_in_through_the_spare_buffer_never_show_another_pages_bytes(
        make_device: MakeDevice) -> None:
    # A swap-in reads into the spare buffer the file misses use too, and the frame takes
    # it: pages of two address spaces and file blocks cycling through four frames each
    # hold their own bytes, a page read earlier is not changed, and the spare is never
    # a frame's buffer.
    swap, dev = make_device(32, "swap.img"), make_device(16)
    for b in range(16):
        dev.write_block(b, _fill(200 + b))
    cache = Cache(4, swap=swap, min_resident=0)
    spaces = [AddressSpace(_proc(1), cache), AddressSpace(_proc(2), cache)]
    rng = random.Random(11)
    want: dict[tuple[int, int], bytes] = {}
    handed: list[tuple[bytes, bytes]] = []
    for _ in range(400):
        who, vpn = rng.randrange(2), rng.randrange(8)
        if rng.random() < 0.3:
            b = rng.randrange(16)
            assert cache.read_block(dev, b) == _fill(200 + b)
        elif rng.random() < 0.4:
            tag = rng.randrange(1, 200)
            spaces[who].write(vpn, _fill(tag))
            want[(who, vpn)] = _fill(tag)
        else:
            got = spaces[who].read(vpn)
            assert got == want.get((who, vpn), bytes(BS))
            handed.append((got, want.get((who, vpn), bytes(BS))))
    assert cache.stats.swapins > 20
    assert all(got == was for got, was in handed)
    cache.check_invariants()


def test_full_swap_device_refuses_to_evict_and_loses_nothing(make_device: MakeDevice) -> None:
    swap = make_device(1, "swap.img")
    cache = Cache(1, swap=swap, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    aspace.write(0, b"keep me")
    aspace.write(1, b"also me")  # vpn 0 goes to the only swap slot
    with pytest.raises(NoSpace, match="swap"):
        aspace.write(2, b"no room")
    assert aspace.read(1)[:7] == b"also me"
    cache.check_invariants()


def test_released_address_space_gives_back_frames_and_refuses_touches(
        make_device: MakeDevice) -> None:
    swap = make_device(8, "swap.img")
    cache = Cache(4, swap=swap, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(6):
        aspace.write(vpn, b"x")
    aspace.release()
    aspace.release()  # idempotent
    assert cache.free_frames == 4 and aspace.released
    with pytest.raises(BadHandle):
        aspace.touch(0)
    cache.check_invariants()  # includes: no swap slot leaked


@pytest.mark.parametrize("vpn", [-1, params.VPN_LIMIT])
def test_vpn_outside_u32_is_refused(vpn: int) -> None:
    aspace = AddressSpace(_proc(1), Cache(2))
    with pytest.raises(InvalidArgument):
        aspace.touch(vpn)
    assert aspace.faults == 0


def test_last_use_and_flags_describe_the_pages() -> None:
    cache = Cache(8, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    seen: list[list[PageInfo]] = []

    def spy(a: AddressSpace, cands: list[PageInfo]) -> int:
        seen.append(cands)
        return Cache._evict_choice(cache, a, cands)

    _replace(cache, "evict_policy", spy)
    for vpn in range(8):
        aspace.touch(vpn, write=vpn % 2 == 0)
    aspace.touch(8)
    cands = seen[0]
    assert [c.vpn for c in cands] == list(range(8))  # the hand starts at vpn 0
    assert all(c.flags & REFERENCED for c in cands)
    assert [bool(c.flags & DIRTY) for c in cands] == [v % 2 == 0 for v in range(8)]
    assert [c.last_use for c in cands] == sorted(c.last_use for c in cands)
    assert len({c.page_id for c in cands}) == 8


def test_address_space_clock_gives_a_second_chance() -> None:
    cache = Cache(4, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(4):
        aspace.touch(vpn)
    aspace.touch(4)  # all referenced: bits cleared, vpn 0 goes, hand moves to 1
    assert aspace.resident() == [1, 2, 3, 4]
    aspace.touch(1)  # referenced again
    aspace.touch(5)  # hand at 1: second chance; 2 goes
    assert aspace.resident() == [1, 3, 4, 5]


def test_candidates_are_capped_and_start_at_the_hand() -> None:
    n = params.MAX_EVICT_CANDIDATES + 44
    cache = Cache(n, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(n):
        aspace.touch(vpn)
    sizes: list[int] = []
    firsts: list[int] = []

    def spy(a: AddressSpace, cands: list[PageInfo]) -> int:
        sizes.append(len(cands))
        firsts.append(cands[0].vpn)
        return 0

    _replace(cache, "evict_policy", spy)
    aspace.touch(n)  # evicts vpn 0, hand -> 1
    aspace.touch(n + 1)
    assert sizes == [params.MAX_EVICT_CANDIDATES] * 2 and firsts == [0, 1]


# ---- the victim rule -------------------------------------------------------------------------


def test_a_process_above_its_minimum_pays_for_its_own_faults(make_device: MakeDevice) -> None:
    """Memory full; a greedy process keeps faulting: it only ever loses its own pages."""
    dev = make_device(32)
    cache = Cache(16, min_resident=4)
    greedy = AddressSpace(_proc(1), cache)
    modest = AddressSpace(_proc(2), cache)
    for vpn in range(3):
        modest.touch(vpn)
    for b in range(3):
        cache.read_block(dev, b)
    for vpn in range(10):
        greedy.touch(vpn)
    assert cache.free_frames == 0
    for vpn in range(10, 200):
        greedy.touch(vpn, write=True)
    assert modest.resident() == [0, 1, 2]
    assert cache.resident_blocks(dev) == [0, 1, 2]
    assert greedy.resident_count == 10
    assert cache.stats.local_evictions == 190
    cache.check_invariants()


def test_a_process_at_its_minimum_takes_a_frame_from_the_global_clock(
        make_device: MakeDevice) -> None:
    dev = make_device(32)
    cache = Cache(8, min_resident=4)
    small = AddressSpace(_proc(1), cache)
    for b in range(8):
        cache.read_block(dev, b)
    for vpn in range(5):  # at or below 4 resident: each fault takes a global victim
        small.touch(vpn)
    assert small.resident_count == 5
    assert len(cache.resident_blocks(dev)) == 3
    assert cache.stats.local_evictions == 0
    small.touch(5)  # now above the minimum: it replaces its own page
    assert small.resident_count == 5 and cache.stats.local_evictions == 1


def test_when_the_global_clock_lands_on_a_process_its_own_policy_picks_the_page() -> None:
    cache = Cache(8, min_resident=2)
    owner = AddressSpace(_proc(1), cache)
    newcomer = AddressSpace(_proc(2), cache)
    for vpn in range(100, 108):
        owner.touch(vpn)
    asked: list[tuple[AddressSpace, list[PageInfo]]] = []

    def keep_low_vpns(a: AddressSpace, cands: list[PageInfo]) -> int:
        asked.append((a, cands))
        return max(range(len(cands)), key=lambda i: cands[i].vpn)  # give up the highest vpn

    _replace(cache, "evict_policy", keep_low_vpns)
    newcomer.touch(0)
    assert len(asked) == 1
    a, cands = asked[0]
    assert a is owner
    assert sorted(c.vpn for c in cands) == list(range(100, 108))
    assert not owner.is_resident(107) and owner.resident_count == 7
    assert newcomer.resident() == [0]
    cache.check_invariants()


@pytest.mark.parametrize("answer", [-1, 8, 10**6, "0", None, True, [], [0, 0], [0, 8], (2, -1),
                                    [0, "1"], [0, None], {0: 1}])
def test_an_invalid_victim_index_is_refused_and_changes_nothing(answer: object) -> None:
    cache = Cache(8, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(8):
        aspace.write(vpn, bytes([vpn]))
    before = (aspace.resident(), cache.stats.evictions, aspace.faults)
    _replace(cache, "evict_policy", lambda a, c: answer)
    with pytest.raises(InvalidArgument, match="chose"):
        aspace.touch(8)
    assert (aspace.resident(), cache.stats.evictions, aspace.faults - 1) == before
    cache.check_invariants()
    cache.evict_policy = cache._evict_choice  # the built-in again: the same fault completes
    aspace.touch(8)
    assert all(aspace.read(v)[:1] == bytes([v]) for v in range(8))


def test_a_batch_longer_than_the_abi_allows_is_refused() -> None:
    n = params.MAX_EVICT_MORE + 4
    cache = Cache(n, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(n):
        aspace.touch(vpn)
    _replace(cache, "evict_policy", lambda a, c: list(range(params.MAX_EVICT_MORE + 2)))
    with pytest.raises(InvalidArgument, match="chose"):
        aspace.touch(n)
    assert aspace.resident() == list(range(n)) and cache.stats.evictions == 0
    cache.check_invariants()


def _batch_world(batch: list[int]) -> tuple[Cache, AddressSpace, list[list[int]]]:
    """Eight resident pages (vpns 0-7, hand at 0) and a policy answering ``batch`` over
    its candidates; the vpns it was offered, one list per call."""
    cache = Cache(8, min_resident=0)
    aspace = AddressSpace(_proc(1), cache)
    for vpn in range(8):
        aspace.touch(vpn)
    asked: list[list[int]] = []

    def policy(a: AddressSpace, cands: list[PageInfo]) -> list[int]:
        asked.append([c.vpn for c in cands])
        return batch

    _replace(cache, "evict_policy", policy)
    return cache, aspace, asked


def test_a_batch_serves_the_next_evictions_in_order_without_asking_again() -> None:
    cache, aspace, asked = _batch_world([5, 2, 7, 0])
    for vpn in range(100, 104):
        aspace.touch(vpn)
    assert len(asked) == 1  # one decision of the policy for four evictions
    assert aspace.resident() == [1, 3, 4, 6, 100, 101, 102, 103]
    assert (cache.stats.policy_calls, cache.stats.batched, cache.stats.stale) == (1, 3, 0)
    aspace.touch(104)  # the batch is used up: the policy is asked again
    assert len(asked) == 2
    cache.check_invariants()


def test_a_page_touched_since_the_batch_was_made_is_not_evicted_from_it() -> None:
    cache, aspace, asked = _batch_world([0, 1, 2])
    aspace.touch(100)  # evicts vpn 0; vpns 1, 2 wait in the batch
    aspace.touch(1)  # re-referenced: the policy's view of it is stale
    aspace.touch(101)  # skips 1, takes 2
    assert aspace.is_resident(1) and not aspace.is_resident(2)
    assert (cache.stats.batched, cache.stats.stale, len(asked)) == (1, 1, 1)
    cache.check_invariants()


def test_a_batched_victim_that_is_pinned_or_gone_is_skipped() -> None:
    cache, aspace, asked = _batch_world([0, 1, 2, 3])
    aspace.touch(100)  # evicts vpn 0; 1, 2, 3 wait
    frames = {v: aspace._resident[v] for v in (1, 2)}
    frames[1].pinned = True  # being filled by someone (as during a prefetch)
    frames[2].clear()  # gone from under the batch (as if freed) ...
    cache._free.append(frames[2].index)  # ... and on the free list
    del aspace._resident[2]
    aspace.touch(101)  # takes the free frame
    aspace.touch(102)  # 1 pinned: skipped; 2 gone: skipped; 3 goes
    frames[1].pinned = False
    assert not aspace.is_resident(3) and aspace.is_resident(1)
    assert (cache.stats.batched, cache.stats.stale, len(asked)) == (1, 2, 1)
    cache.check_invariants()


def test_a_forgotten_or_released_batch_is_not_used() -> None:
    cache, aspace, asked = _batch_world([0, 1, 2])
    aspace.touch(100)
    cache.forget_victims(aspace)
    aspace.touch(101)  # asks again: [0, 1, 2] of the new candidates
    assert len(asked) == 2 and cache.stats.batched == 0
    cache.forget_victims()  # every address space's
    assert aspace._victims == []
    aspace.touch(102)
    aspace.release()
    assert aspace._victims == []
    cache.check_invariants()


# ---- random operation sequences ------------------------------------------------------------

_KINDS = ["fread", "fwrite", "prefetch", "touch", "awrite", "sync", "release"]
_op = st.tuples(st.sampled_from(_KINDS), st.integers(0, 2), st.integers(0, 11),
                st.integers(0, 255))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=5, max_size=80), nframes=st.integers(1, 7),
       with_swap=st.booleans(), min_resident=st.integers(0, 3),
       batch_seed=st.one_of(st.none(), st.integers(0, 2**16)))
def test_random_operations_keep_invariants_and_contents(
        ops: list[tuple[str, int, int, int]], nframes: int, with_swap: bool,
        min_resident: int, batch_seed: int | None) -> None:
    """Two devices, three address spaces, a tiny cache: every read returns the model's bytes,
    every invariant holds after every step, and a final sync puts every write on disk --
    with the built-in policy, or (``batch_seed``) one answering random batches, whose
    further victims go stale as the steps touch, release and evict pages."""
    with tempfile.TemporaryDirectory() as tmp:
        devs = [BlockDevice.create(Path(tmp, f"d{i}"), 12, durable=False) for i in range(2)]
        swap = BlockDevice.create(Path(tmp, "swap"), 64, durable=False) if with_swap else None
        cache = Cache(nframes, swap=swap, min_resident=min_resident)
        if batch_seed is not None:
            rng = random.Random(batch_seed)

            def batches(a: AddressSpace, cands: list[PageInfo]) -> list[int]:
                order = list(range(len(cands)))
                rng.shuffle(order)
                return order[:rng.randint(1, 1 + params.MAX_EVICT_MORE)]

            _replace(cache, "evict_policy", batches)
        spaces = [AddressSpace(_proc(i), cache) for i in range(3)]
        files: dict[tuple[int, int], bytes] = {}
        anon: dict[tuple[int, int], bytes] = {}
        for kind, who, where, value in ops:
            d, a, vpn = who % 2, who, where % 10
            if kind == "fread":
                assert cache.read_block(devs[d], where) == files.get((d, where), bytes(BS))
            elif kind == "fwrite":
                cache.write_block(devs[d], where, bytes([value]) * 8, offset=where)
                old = bytearray(files.get((d, where), bytes(BS)))
                old[where:where + 8] = bytes([value]) * 8
                files[(d, where)] = bytes(old)
            elif kind == "prefetch":
                cache.prefetch(devs[d], [where, (where + 1) % 12, (where + 2) % 12])
            elif kind == "touch" and not spaces[a].released:
                spaces[a].touch(vpn, write=value % 2 == 0)
            elif kind == "awrite" and not spaces[a].released:
                spaces[a].write(vpn, bytes([value]) * 4, offset=vpn)
                old = bytearray(anon.get((a, vpn), bytes(BS)))
                old[vpn:vpn + 4] = bytes([value]) * 4
                anon[(a, vpn)] = bytes(old)
            elif kind == "sync":
                cache.sync()
            elif kind == "release":
                spaces[a].release()
                anon = {k: val for k, val in anon.items() if k[0] != a}
            cache.check_invariants()
        for (a, vpn), val in anon.items():
            assert spaces[a].read(vpn) == val
        cache.sync()
        for (d, b), val in files.items():
            assert devs[d].read_block(b) == val  # everything written reached the device
        cache.check_invariants()
        for dev in [*devs, *([swap] if swap else [])]:
            dev.close()


def test_concurrent_users_of_one_cache_keep_it_consistent(make_device: MakeDevice) -> None:
    dev = make_device(64)
    for b in range(64):
        dev.write_block(b, _fill(b))
    cache = Cache(12, min_resident=2)

    def reader() -> None:
        for i in range(300):
            b = (i * 7) % 64
            assert cache.read_block(dev, b) == _fill(b)

    def toucher(pid: int) -> None:
        aspace = AddressSpace(_proc(pid), cache)
        for i in range(300):
            vpn = (i * 5) % 23
            aspace.write(vpn, bytes([pid]))
            assert aspace.read(vpn)[:1] == bytes([pid])

    run_threads(reader, reader, lambda: toucher(1), lambda: toucher(2))
    cache.check_invariants()
