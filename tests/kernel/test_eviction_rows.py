"""Eviction candidates handed out again and their rows packed once, against a fresh encode.

The cache hands an unchanged page's ``PageInfo`` out again (``victims._info``) and each
``PageInfo`` carries its ``vm.evict`` row, packed once (``PageInfo.row``), so the
encoder only joins rows. A model-based test drives a cache through any sequence of
reads, writes, faults, evictions (by the policy it asks) and released address spaces,
and at every eviction checks that each candidate says exactly what its frame holds
now and that the encoded buffer -- over a buffer the graft scrambled -- is byte for
byte the layout's fresh pack of those values.
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vino.kernel import layouts
from vino.kernel.cache import DIRTY, REFERENCED, AddressSpace, Cache, PageInfo
from vino.kernel.points import encode_evict
from vino.kernel.proc import Process, User

VPNS = st.integers(0, 23)


def _fresh(rows: list[tuple[int, int, int, int]], size: int) -> bytes:
    """The layout's own encode of these values, from scratch."""
    out = bytearray(size)
    flat = [len(rows)]
    for r in rows:
        flat.extend(r)
    struct = layouts.EVICT.rows("cand", len(rows))
    struct.pack_into(out, 0, *flat)
    return bytes(out[:struct.size])


class CacheModel(RuleBasedStateMachine):
    """Address spaces sharing a few frames; every eviction is checked where it is asked."""

    @initialize(frames=st.integers(3, 9), seed=st.integers(0, 2**32 - 1))
    def start(self, frames: int, seed: int) -> None:
        self.cache = Cache(nframes=frames, min_resident=1)
        self.rng = random.Random(seed)
        self.pid = 0
        self.spaces: list[AddressSpace] = [self._space(), self._space()]
        self.checked = 0
        self.cache.evict_policy = self._policy

    def _space(self) -> AddressSpace:
        self.pid += 1
        return AddressSpace(Process(self.pid, User(1000, "u")), self.cache)

    def _policy(self, aspace: AddressSpace, cands: list[PageInfo]) -> int:
        frames = self.cache._frames
        now = []
        for c in cands:
            f = frames[c.page_id]
            assert f.aspace is aspace and c.vpn == f.vpn and c.last_use == f.last_use
            assert c.flags == (REFERENCED if f.referenced else 0) | (DIRTY if f.dirty else 0)
            now.append((c.page_id, c.vpn, c.flags, c.last_use))
        buf = bytearray(self.rng.randbytes(layouts.EVICT.buffer_size))
        encode_evict(memoryview(buf), aspace, cands)
        want = _fresh(now, layouts.EVICT.buffer_size)
        assert bytes(buf[:len(want)]) == want
        self.checked += 1
        return self.rng.randrange(len(cands))

    @rule(i=st.integers(0, 1), vpn=VPNS, write=st.booleans())
    def touch(self, i: int, vpn: int, write: bool) -> None:
        self.spaces[i].touch(vpn, write=write)

    @rule(i=st.integers(0, 1), vpns=st.lists(VPNS, min_size=2, max_size=12))
    def scan(self, i: int, vpns: list[int]) -> None:
        for v in vpns:
            self.spaces[i].touch(v)

    @rule(i=st.integers(0, 1), vpn=VPNS, data=st.binary(min_size=1, max_size=8))
    def write(self, i: int, vpn: int, data: bytes) -> None:
        self.spaces[i].write(vpn, data)

    @precondition(lambda self: hasattr(self, "cache"))
    @rule(i=st.integers(0, 1))
    def release_and_start_again(self, i: int) -> None:
        self.spaces[i].release()
        self.spaces[i] = self._space()

    @invariant()
    def the_cache_is_consistent(self) -> None:
        if hasattr(self, "cache"):
            self.cache.check_invariants()


CacheModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_eviction_candidates_and_their_rows_say_what_the_frames_hold = CacheModel.TestCase


def test_an_unchanged_page_is_offered_as_the_same_candidate_and_a_changed_one_anew() -> None:
    cache = Cache(nframes=4, min_resident=1)
    a = AddressSpace(Process(1, User(1000, "u")), cache)
    seen: list[list[PageInfo]] = []

    def policy(aspace: AddressSpace, cands: list[PageInfo]) -> int:
        seen.append(list(cands))
        return len(cands) - 1

    cache.evict_policy = policy
    for v in range(4):
        a.touch(v)
    a.touch(10)  # evicts page 3; the policy saw pages 0..3
    a.touch(11)  # evicts page 2
    a.write(1, b"x")  # page 1 written; page 0 left alone
    a.touch(12)
    first, _, third = ({c.vpn: c for c in cands} for cands in seen)
    assert third[0] is first[0]  # nothing changed: the same PageInfo
    page1 = third[1]
    assert page1 is not first[1] and page1.flags & DIRTY and not first[1].flags & DIRTY
    assert page1.row == layouts.EVICT.elements("cand", 1).pack(
        page1.page_id, page1.vpn, page1.flags, page1.last_use)
