"""Which page goes when the cache needs a frame: the global clock, an address space's
eviction policy (graft point ``vm.evict``), and the batches it may answer.

A mix-in of ``Cache`` (``cache.py``, whose header gives the rule: who loses a page
and who pays for the policy that picks it). ``Cache._take_frame`` (and a miss,
``Cache._miss``) call ``_choose_victim`` / ``_sweep`` / ``_choose_for`` with the
cache's lock held; ``forget_victims`` is public (the kernel calls it). Usage::

    cache.evict_policy = lambda aspace, candidates: 0   # the first candidate goes
    cache.evict_policy = cache._evict_choice             # the built-in again
    cache.forget_victims(aspace)                          # drop a batch now

An address space's policy is ``evict_policy(aspace, candidates)`` --
the cache's one policy slot (graft point ``vm.evict``): a public attribute holding a
plain callable, the built-in ``_evict_choice`` until the kernel plugs its point in (a
test or benchmark may assign its own; assigning the built-in back restores it). Its
candidates are up to ``MAX_EVICT_CANDIDATES`` of that address space's resident pages, in vpn
order starting at the address space's own clock hand; the default is clock (second
chance) over them. It returns an index into the candidates, or a *batch*: distinct
indices, the victim first and then up to ``MAX_EVICT_MORE`` further victims in the
order they are to go. Anything else (an index out of range, a duplicate, an empty or
too long batch, not an int) raises ``InvalidArgument`` before any state changes.

Batches (as cache_ext asks its eviction policy for a list of candidates): the further
victims of a batch are kept with the address space and taken, in order, by its next
evictions without asking the policy again. Each is re-validated when its turn comes:
a page that is no longer resident in that frame, was touched since the policy saw it
(its ``last_use`` moved) or is pinned is skipped; when none is left the policy is
asked again. A batch is the policy's decision at one instant: a change of policy
(a graft installed or sent a message) takes effect once the batch is used up, at most
``MAX_EVICT_MORE`` evictions of that address space later; ``forget_victims`` drops
batches at once (the kernel calls it when an eviction graft is removed or installed),
and releasing an address space drops its batch.

Invariant: a batch's further victims are only candidates: none is evicted unless it
passes re-validation when its turn comes (``_batched``). A dirty file block written
back as it goes (``_write_back_victim``) stays pinned until it is unmapped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vino.graft.accounting import HOST, Principal, acting_for
from vino.graft.txn import thread_state
from vino.kernel import layouts, params
from vino.kernel.aspace import AddressSpace
from vino.kernel.errors import CacheBusy, InvalidArgument, NoSpace

if TYPE_CHECKING:
    from vino.kernel.cache import CacheStats, _Frame
    from vino.kernel.device import BlockDevice

__all__ = ["DIRTY", "REFERENCED", "EvictPolicy", "PageInfo", "VictimChoice", "Victims"]

# PageInfo.flags bits (ABI vm.evict)
REFERENCED = 1
DIRTY = 2

_CAND_ROW = layouts.EVICT.elements("cand", 1)  # one vino_evict_cand row (pad as "x" bytes)


@dataclass(frozen=True, slots=True)
class PageInfo:
    """One eviction candidate, as offered to ``evict_policy`` (ABI ``vm.evict``).

    ``row`` is the candidate as the ``vm.evict`` buffer holds it (``layouts.EVICT``'s
    ``cand`` row), packed once when the PageInfo is made: the cache hands an unchanged
    page's PageInfo out again (``_info``), so a candidate list is copied into a graft's
    buffer by joining rows, and only pages that changed are packed.
    """

    page_id: int  # the frame number; stable while the page is resident
    vpn: int
    flags: int  # REFERENCED | DIRTY
    # The address space's own access counter at the page's last touch (larger = more
    # recent): it counts this address space's touches only, so it tells a policy nothing
    # of what other processes did (a cache-wide counter would).
    last_use: int
    # Invariant: row == _CAND_ROW.pack(page_id, vpn, flags, last_use).
    row: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "row", _CAND_ROW.pack(self.page_id, self.vpn, self.flags,
                                                       self.last_use))


# What an eviction policy answers: an index into its candidates, or a batch of distinct
# indices (the victim, then the further victims in the order they are to go).
Victims = int | Sequence[int]
EvictPolicy = Callable[[AddressSpace, list[PageInfo]], Victims]


class VictimChoice:
    """The victim half of a ``Cache`` (a mix-in; see the module)."""

    nframes: int
    min_resident: int
    stats: CacheStats
    evict_policy: EvictPolicy
    _frames: list[_Frame]
    _aspaces: dict[AddressSpace, None]
    _hand: int
    _dirty_files: dict[tuple[BlockDevice, int], _Frame]

    # ---- a dirty file block's write-back as it goes ---------------------------------------

    def _write_back_victim(self, frame: _Frame, key: tuple[BlockDevice, int]) -> None:
        """Write the dirty file block in ``frame`` back before the frame goes. A signal
        handler may run amid the write, on this thread, through the re-entrant locks
        (``cache.py``): the frame stays pinned until ``_evict`` unmaps it, so the
        handler's misses take other frames and its writes to this block are refused
        (``_refuse_pinned``: they would go with the frame); its sync may write this
        block back first, which changes nothing here. (Before, that sync made the
        eviction fail with a bare KeyError, and a handler's write here was lost.)"""
        assert frame.dev is not None
        frame.pinned = True
        try:
            frame.dev.write_block(frame.block, frame.data)
        except BaseException:
            frame.pinned = False
            raise
        self.stats.writebacks += 1
        self._dirty_files.pop(key, None)

    @staticmethod
    def _refuse_pinned(frame: _Frame) -> None:
        raise CacheBusy(f"block {frame.block} is being prefetched or written back on this thread "
                        f"(a signal handler writing a file amid it?): the write is refused, "
                        f"nothing changed")

    # ---- the built-in policy (evict_policy's default: graft point vm.evict) ----------

    def _evict_choice(self, aspace: AddressSpace, candidates: list[PageInfo]) -> int:
        """Pick the victim among ``aspace``'s resident pages; return its index in ``candidates``.

        Default: clock. ``candidates`` start at the address space's hand; the first
        page not referenced since the hand last passed is the victim, and every
        referenced page passed over loses its reference bit (its second chance). If all
        are referenced, the first one goes. Called with the cache lock held.
        """
        for i, cand in enumerate(candidates):
            if not cand.flags & REFERENCED:
                return i
            self._frames[cand.page_id].referenced = False
        return 0

    # ---- choosing (caller holds the cache's lock) ---------------------------------------

    def _choose_victim(self, requester: AddressSpace | None) -> _Frame:
        if requester is not None and len(requester._resident) > self.min_resident:
            self.stats.local_evictions += 1
            return self._choose_in(requester)  # rule 1: pay for your own growth
        frame = self._sweep()  # rule 2: global clock ...
        loser = frame.aspace
        if loser is None:
            return frame
        return self._choose_for(loser, requester, None)  # ... only picks whose page goes

    def _choose_for(
        self, loser: AddressSpace, requester: AddressSpace | None,
        behalf: Callable[[], AbstractContextManager[object]] | None,
    ) -> _Frame:
        """The page ``loser``'s policy gives up when the global clock chose ``loser`` to
        lose one for ``requester`` (rule 2)."""
        if loser is requester:
            return self._choose_in(loser)
        if behalf is None:
            with acting_for(_payer(requester)):  # another's policy, run for this operation
                return self._choose_in(loser)
        with behalf(), acting_for(_payer(requester)):  # (_miss: the operation's context)
            return self._choose_in(loser)

    def _sweep(self) -> _Frame:
        """Global clock: the first unpinned frame not referenced since the hand last passed.
        (Twinned in native code with ``Cache._miss``: ``plainread.py`` 3.)"""
        frames, n, hand = self._frames, self.nframes, self._hand  # (every miss sweeps)
        for _ in range(2 * n):  # one lap clears every bit, the second must find a frame
            frame = frames[hand]
            hand = (hand + 1) % n
            if frame.pinned or (frame.dev is None and frame.aspace is None):  # or free
                continue
            if frame.referenced:
                frame.referenced = False
                continue
            self._hand = hand
            return frame
        self._hand = hand
        raise NoSpace(f"all {n} frames are pinned; nothing can be evicted")

    def _choose_in(self, aspace: AddressSpace) -> _Frame:
        victim = self._batched(aspace)
        if victim is None:
            frames = self._candidates(aspace)
            infos = [_info(f) for f in frames]
            self.stats.policy_calls += 1
            order = _batch_of(aspace, self.evict_policy(aspace, infos), len(frames))
            victim = frames[order[0]]
            if len(order) > 1:  # kept last first: the next to go is popped off the end
                aspace._victims = [(f, f.vpn, f.last_use)
                                   for f in (frames[i] for i in reversed(order[1:]))]
        aspace._hand = victim.vpn + 1
        return victim

    def _batched(self, aspace: AddressSpace) -> _Frame | None:
        """The next further victim of the address space's batch that is still the page
        its policy saw (resident in that frame, not touched since, not pinned), else None."""
        queue = aspace._victims
        while queue:
            frame, vpn, last_use = queue.pop()
            if (frame.aspace is aspace and frame.vpn == vpn and frame.last_use == last_use
                    and not frame.pinned):
                self.stats.batched += 1
                return frame
            self.stats.stale += 1
        return None

    def forget_victims(self, aspace: AddressSpace | None = None) -> None:
        """Drop the batch of ``aspace`` (of every address space if None): its next
        eviction asks its policy. Takes no lock: a batch is advisory (every victim in it
        is re-validated under the cache lock), so a decision already under way may still
        take one victim of the batch dropped."""
        for a in (list(self._aspaces) if aspace is None else [aspace]):
            a._victims = []

    def _candidates(self, aspace: AddressSpace) -> list[_Frame]:
        vpns = sorted(aspace._resident)
        k = bisect.bisect_left(vpns, aspace._hand)
        ordered = vpns[k:] + vpns[:k]
        return [aspace._resident[v] for v in ordered[: params.MAX_EVICT_CANDIDATES]]


def _batch_of(aspace: AddressSpace, choice: object, n: int) -> Sequence[int]:
    """``choice`` (an eviction policy's answer over ``n`` candidates) as a batch of
    distinct indices, or ``InvalidArgument``."""
    order: Sequence[object] = ((choice,) if isinstance(choice, int)
                               else choice if isinstance(choice, (list, tuple)) else ())
    if (not 1 <= len(order) <= 1 + params.MAX_EVICT_MORE
            or not all(type(i) is int and 0 <= i < n for i in order)
            or len(set(order)) != len(order)):
        raise InvalidArgument(
            f"eviction policy of pid {aspace.owner.pid} chose {choice!r}; expected an "
            f"index in 0 .. {n - 1}, or 1 .. {1 + params.MAX_EVICT_MORE} distinct ones")
    return order  # type: ignore[return-value]  # every element checked to be an int


def _payer(requester: AddressSpace | None) -> Principal:
    """Who pays for another address space's policy run to give ``requester`` a frame."""
    if requester is not None:
        return requester.owner.user.principal
    acting: Principal | None = thread_state().acting
    return acting if acting is not None else HOST


def _info(frame: _Frame) -> PageInfo:
    """The frame's page as an eviction candidate: the one made last time if it still says
    exactly this (a frozen PageInfo costs far more to make than to compare)."""
    flags = (REFERENCED if frame.referenced else 0) | (DIRTY if frame.dirty else 0)
    info = frame.info
    if (info is None or info.last_use != frame.last_use or info.vpn != frame.vpn
            or info.flags != flags):
        info = frame.info = PageInfo(frame.index, frame.vpn, flags, frame.last_use)
    return info
