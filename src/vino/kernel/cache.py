"""The buffer cache / VM: a fixed set of 4 KiB page frames shared by everyone.

A frame holds one of two kinds of page:
- a *file block*, keyed ``(device, block)``: a copy of a device block, written back
  to the device when dirty (on eviction and on ``sync``);
- an *anonymous page* of an ``AddressSpace``, keyed ``(aspace, vpn)``: zero-filled on
  first touch; when evicted dirty it is written to swap (the ``swap`` device if the
  cache has one, else kept in host memory at no modelled cost) and read back on the
  next fault.

Usage::

    cache = Cache(nframes=256)
    data, how = cache.fetch(dev, 12)          # bytes of block 12; MISS / HIT / PREFETCH_HIT
    cache.write_block(dev, 12, b"xy", offset=100)
    cache.write_blocks(dev, [12, 40], two_blocks)   # whole blocks, one call
    cache.prefetch(dev, [13, 14, 15])         # contiguous runs become one device request
    cache.sync(dev)                           # write back dirty blocks of dev
    aspace = AddressSpace(process, cache)
    aspace.touch(vpn, write=True)             # faults the page in if not resident

Address spaces, faults and swap are in ``aspace.py`` (``AnonPages`` is the half of
``Cache`` that serves them), the choice of a victim in ``victims.py`` (``VictimChoice``,
by the rule below); this module keeps the frames and the file blocks.

Choosing a victim (when a frame is needed and none is free) -- the rule:
1. An anonymous fault by address space A, when A has more than ``min_resident`` pages
   resident, replaces one of A's own pages: a process that already holds more than
   its minimum pays for its own growth and cannot push other processes out.
2. Otherwise (a file block is loaded, or A is at or below its minimum) the global
   clock (second chance over all frames) picks a page. If that page is a file block
   it is the victim. If it is an anonymous page of address space B, the global clock
   has only chosen *B* as the one to lose a page: B's own policy then picks which of
   B's pages goes.
Who pays for B's policy when it runs for someone else's frame (graft/hosting.py): the
faulting address space's owner (rule 2, A is not B), or for a file-block load, the
principal the operation runs for (``acting_for``: the opener of a file being read), or
the host's own ``HOST`` if none was named -- never B's owner, whose quota another
process's faults would otherwise drain until B's graft was removed.
In both cases B's page is picked by B's policy, the cache's one policy slot
``evict_policy`` (graft point ``vm.evict``): its candidates, its answers and its
batches are ``victims.py``'s.

Hook: ``Cache(on_release=...)`` hears of every ``AddressSpace.release`` call, after the
address space's frames are freed and outside the cache lock (the kernel removes the
grafts installed on it).

Locking: one re-entrant lock (``Cache._lock``) guards every frame, every map and
every address space's residency. It is held across device I/O (so a page is never
seen half loaded) and while the policy runs. Lock order: ``FileSystem._lock`` ->
``Cache._lock`` -> ``BlockDevice._lock``; never call into a file system with the
cache lock held.

Invariants (checked by ``check_invariants``, ``cacheinvariants.py``):
- ``len(frames) == nframes``; every frame is exactly one of free, a file block or an
  anonymous page; free frames are exactly those on the free list.
- No page is in two frames: ``_files`` and each ``AddressSpace._resident`` map every key
  to the one frame that holds it, and every used frame is in exactly one map.
- ``free + file blocks + sum(anonymous pages) == nframes``.
- Outside a cache operation no frame is pinned; a write to a pinned one (a prefetch's,
  a dirty victim written back or swapped out: ``_write_back_victim``,
  ``_swap_out_victim``) is refused.
- ``_spare`` is None exactly while a load (a miss, a prefetch, a swap-in) holds it: the
  busy mark. Code run amid that load on its own thread -- a signal handler (the
  collector is held off during a load, a signal is not; the lock is re-entrant) --
  that needs a frame or a spare buffer finds it None and is refused with ``CacheBusy``
  before it changes anything (the native loads decline: their spare is no buffer; the
  Python then refuses). So a load's buffer and the frame its clock chose are its own.
- The spare page buffers (``_spare``, which a miss reads the device into and then
  swaps with the frame it takes; ``_spares``, prefetch's) are no frame's buffers.
- The native plain read's hint (``_hint``: block number -> frame, see ``__init__``)
  has 2**k entries, each naming a frame or none; it is a hint only, never a map.
- A batch's further victims are only candidates: none is evicted unless it passes
  re-validation when its turn comes (so a stale batch can never evict a page the
  policy did not see as it is).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from enum import IntEnum

from vino.kernel import params, plainread
from vino.kernel.aspace import AddressSpace, AnonPages
from vino.kernel.cacheinvariants import CacheInvariants
from vino.kernel.device import BlockDevice, block_runs
from vino.kernel.errors import CacheBusy, InvalidArgument
from vino.kernel.victims import DIRTY, REFERENCED, EvictPolicy, PageInfo, VictimChoice, Victims

__all__ = ["DIRTY", "REFERENCED", "Access", "AddressSpace", "Cache", "CacheStats", "EvictPolicy",
           "PageInfo", "Victims"]

PAGE = params.PAGE_SIZE


class Access(IntEnum):
    """How a file-block read was served."""

    MISS = 0  # read from the device
    HIT = 1  # already resident
    PREFETCH_HIT = 2  # resident because read-ahead brought it in, first use since


@dataclass(slots=True)
class CacheStats:
    hits: int = 0  # file-block requests served from a frame
    misses: int = 0  # file-block requests that needed a frame
    faults: int = 0  # anonymous touches of a non-resident page
    evictions: int = 0  # pages removed to make room (either kind)
    local_evictions: int = 0  # victims taken from the faulting address space itself (rule 1)
    writebacks: int = 0  # dirty file blocks written to their device
    prefetches: int = 0  # blocks loaded by prefetch
    prefetch_hits: int = 0  # prefetched blocks later read
    prefetch_unused: int = 0  # prefetched blocks evicted or dropped before any read
    swapouts: int = 0  # dirty anonymous pages saved on eviction
    swapins: int = 0  # anonymous faults served from swap (not zero-fill)
    policy_calls: int = 0  # eviction decisions the address-space policy was asked for
    batched: int = 0  # victims taken from a policy's earlier batch, without asking it
    stale: int = 0  # further victims of a batch skipped: gone, touched since, or pinned

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True, eq=False)
class _Frame:
    index: int
    data: bytearray
    # Invariant: at most one of (dev, aspace) is set; neither => the frame is free.
    dev: BlockDevice | None = None
    block: int = -1
    # Invariant: (dev, block), the one tuple that is this frame's key in ``_files`` (and
    # ``_dirty_files``), while the frame holds a file block; else None. Made once when
    # the block is claimed, so an eviction unmaps it without building the key again.
    key: tuple[BlockDevice, int] | None = None
    aspace: AddressSpace | None = None
    vpn: int = -1
    referenced: bool = False
    dirty: bool = False  # file: differs from the device; anon: differs from swap (or zeros)
    prefetched: bool = False  # loaded by prefetch and not read since
    pinned: bool = False  # being filled; the global clock skips it
    last_use: int = 0
    # The page as last offered to an eviction policy, handed out again while it still
    # describes the page (``_info``): policies and vm.evict's packed rows (kernel/points.py)
    # see an unchanged page as the same object. Invariant: None, or a PageInfo of this frame.
    info: PageInfo | None = None

    def clear(self) -> None:
        self.dev = None
        self.block = -1
        self.key = None
        self.aspace = None
        self.vpn = -1
        self.referenced = self.dirty = self.prefetched = self.pinned = False
        self.last_use = 0

    @property
    def is_free(self) -> bool:
        return self.dev is None and self.aspace is None


class Cache(AnonPages, VictimChoice, CacheInvariants):
    """The frames, the file-block map, the global clock, and the per-address-space policy."""

    # The attributes every page read looks at, kept at fixed offsets (the native plain
    # read reads them there, plainread.py); the others live in the instance dict.
    __slots__ = plainread.CACHE_SLOTS

    def __init__(
        self,
        nframes: int = params.CACHE_FRAMES,
        *,
        swap: BlockDevice | None = None,
        min_resident: int = params.MIN_RESIDENT_PAGES,
        on_release: Callable[[AddressSpace], None] | None = None,
    ) -> None:
        if nframes < 1:
            raise InvalidArgument(f"a cache needs at least one frame, got {nframes}")
        if min_resident < 0:
            raise InvalidArgument(f"min_resident must be >= 0, got {min_resident}")
        self.nframes = nframes
        self.min_resident = min_resident
        self.swap = swap
        self.on_release = on_release  # the hook (module doc)
        # The policy slot (module doc): the built-in clock until something is plugged in.
        self.evict_policy: EvictPolicy = self._evict_choice
        self.stats = CacheStats()
        self._lock = plainread.rlock()  # threading.RLock's twin the native read can try
        # Invariant: len(_frames) == nframes; _frames[i].index == i.
        self._frames = [_Frame(i, bytearray(PAGE)) for i in range(nframes)]
        # Invariant: a PAGE-byte buffer no frame holds. A miss reads the device into it,
        # then the frame it takes swaps buffers with it (``_miss``): no copy of the block.
        self._spare: bytearray | None = bytearray(PAGE)  # None: a load holds it (busy)
        # Invariant: at most PREFETCH_SPARE_PAGES PAGE-byte buffers, distinct, none a
        # frame's or _spare: prefetch reads its runs into them and swaps them in likewise.
        self._spares: list[bytearray] = []
        # Invariant: exactly the free frames, each once; pop() yields the lowest index first.
        self._free: list[int] = list(range(nframes - 1, -1, -1))
        # Invariant: _files[(dev, block)] is the frame holding that block, and vice versa.
        self._files: dict[tuple[BlockDevice, int], _Frame] = {}
        # The native plain read's hint (plainread.c), written by it alone: entry
        # ``block % len`` is 0 or 1 + the index of a frame that held a block of that
        # number. Never trusted: a frame is read only if it holds (dev, block) itself.
        # Invariant: 2**k four-byte entries, each at most nframes.
        self._hint = bytearray(4 * _hint_entries(nframes))
        # Invariant: exactly the entries of _files whose frame is dirty (sync visits only
        # these: a commit costs its dirty blocks, not the size of the cache).
        self._dirty_files: dict[tuple[BlockDevice, int], _Frame] = {}
        self._aspaces: dict[AddressSpace, None] = {}  # live address spaces (insertion order)
        self._hand = 0  # global clock hand: next frame the sweep looks at
        self._tick = 0  # access counter behind file blocks' last_use; only grows
        self._swap_free: list[int] = (
            list(range(swap.nblocks - 1, -1, -1)) if swap is not None else [])

    # ---- file blocks -------------------------------------------------------------------

    def fetch(self, dev: BlockDevice, block: int) -> tuple[bytes, Access]:
        """The bytes of ``block`` of ``dev`` and how they were found."""
        with self._lock:
            frame, how = self._find(dev, block)
            return bytes(frame.data), how

    def fetch_copy(self, dev: BlockDevice, block: int) -> tuple[bytearray, Access]:
        """As ``fetch``, the bytes as a new ``bytearray`` the caller may change (one copy,
        where ``bytearray(fetch(...)[0])`` makes two)."""
        with self._lock:  # _find and _use, inline: every page read comes here
            frame = self._files.get((dev, block))
            if frame is None:
                frame, how = self._find(dev, block)
                return bytearray(frame.data), how
            self.stats.hits += 1
            how = Access.HIT
            if frame.prefetched:
                frame.prefetched = False
                self.stats.prefetch_hits += 1
                how = Access.PREFETCH_HIT
            if frame.aspace is None:
                self._tick += 1
                frame.last_use = self._tick
                frame.referenced = True
            else:
                self._use(frame)
            return bytearray(frame.data), how

    def read_block(self, dev: BlockDevice, block: int) -> bytes:
        return self.fetch(dev, block)[0]

    def read_range(self, dev: BlockDevice, block: int, offset: int, length: int) -> bytes:
        """``length`` bytes of ``block`` at ``offset``: as ``read_block`` (same accounting),
        without copying the whole block (a pointer out of an indirect block)."""
        if offset < 0 or length < 0 or offset + length > PAGE:
            raise InvalidArgument(
                f"read of {length} bytes at offset {offset} does not fit a {PAGE}-byte block")
        with self._lock:
            frame, _ = self._find(dev, block)
            return bytes(frame.data[offset:offset + length])

    def write_block(
        self, dev: BlockDevice, block: int, data: bytes | bytearray | memoryview, offset: int = 0,
    ) -> None:
        """Store ``data`` at ``offset`` in the cached block (write-back: the device sees it
        on eviction or ``sync``). A whole-block write of a non-resident block does not
        read the device."""
        if offset < 0 or offset + len(data) > PAGE:
            raise InvalidArgument(
                f"write of {len(data)} bytes at offset {offset} does not fit a {PAGE}-byte block")
        with self._lock:
            key = (dev, block)
            frame = self._files.get(key)
            if frame is not None:
                if frame.pinned:  # prefetched or written back: amid it, refused
                    self._refuse_pinned(frame)
                self.stats.hits += 1
                frame.prefetched = False
                self._use(frame)
            elif offset == 0 and len(data) == PAGE:
                dev.check_block(block)
                self._not_busy()
                self.stats.misses += 1
                frame = self._take_frame(None)
                self._claim_file(frame, dev, block)
                self._use(frame)
            else:
                frame = self._miss(dev, block)  # counted as a miss and a use
            # Through a memoryview: bytearray slice assignment copies a bytes or memoryview
            # source into a temporary first (~0.8 µs of a 4 KiB block), a view does not.
            memoryview(frame.data)[offset:offset + len(data)] = data
            frame.dirty = True
            self._dirty_files[frame.key] = frame  # type: ignore[index]  # a file block's

    def write_blocks(self, dev: BlockDevice, blocks: Sequence[int],
                     data: bytes | bytearray | memoryview) -> None:
        """Store whole blocks: ``data``'s ``i``-th block as block ``blocks[i]``; the same as
        ``write_block`` of each in turn (same counts, same order), under one hold of the
        lock. ``len(data)`` must be ``len(blocks)`` blocks. Holds no view of ``data``
        once it returns or raises (a caller's bytearray can be resized again)."""
        if len(data) != len(blocks) * PAGE:
            raise InvalidArgument(
                f"write of {len(data)} bytes to {len(blocks)} whole blocks of {PAGE} bytes")
        with memoryview(data) as view, self._lock:  # released even if a traceback lives
            files, dirty, stats = self._files, self._dirty_files, self.stats
            at = 0
            for block in blocks:
                key = (dev, block)
                frame = files.get(key)
                if frame is not None:
                    if frame.pinned:
                        self._refuse_pinned(frame)
                    stats.hits += 1
                    frame.prefetched = False
                else:
                    dev.check_block(block)
                    self._not_busy()
                    stats.misses += 1
                    frame = self._take_frame(None)
                    self._claim_file(frame, dev, block)
                tick = self._tick = self._tick + 1  # _use of a file block, inline
                frame.last_use = tick
                frame.referenced = True
                memoryview(frame.data)[:] = view[at:at + PAGE]  # no temporary (write_block)
                at += PAGE
                frame.dirty = True
                dirty[frame.key] = frame  # type: ignore[index]  # a file block's

    def prefetch(self, dev: BlockDevice, blocks: Iterable[int]) -> int:
        """Bring ``blocks`` of ``dev`` into the cache ahead of use; return how many were loaded.

        Resident blocks are skipped; at most ``nframes // PREFETCH_FRACTION`` are
        loaded (in the order given), so a prefetch cannot flush the whole cache.
        Runs of consecutive block numbers are read as one device request. Every
        block is bounds-checked before any I/O. Prefetched pages start unreferenced:
        if nobody reads them they are the clock's first victims. (A plain read's
        read-ahead runs this in native code, ``plainread.py`` 3.: a change here is a
        change there; ``tests/kernel/test_plain_miss.py`` holds them equal.)
        """
        with self._lock:
            files, nblocks = self._files, dev.nblocks
            todo = [b for b in dict.fromkeys(blocks) if (dev, b) not in files]
            for b in todo:
                if not 0 <= b < nblocks:
                    dev.check_block(b)  # raises BadBlock
            todo = sorted(todo[: self.nframes // params.PREFETCH_FRACTION])
            if not todo:
                return 0
            spare = self._not_busy()
            self._spare = None  # busy (module doc): the spare buffers and frames are its own
            try:
                loaded = self._prefetch_runs(dev, todo)
            finally:
                self._spare = spare
            self.stats.prefetches += loaded
            return loaded

    def _prefetch_runs(self, dev: BlockDevice, todo: list[int]) -> int:
        """``prefetch``'s loads of the sorted blocks ``todo``; how many were loaded."""
        loaded = 0
        spares = self._spares
        for start, count in block_runs(todo):
            while len(spares) < count:
                spares.append(bytearray(PAGE))
            bufs = spares[:count]
            dev.read_into(start, *bufs)  # into spare buffers, as a miss reads
            pinned: list[_Frame] = []
            try:
                for i in range(count):
                    frame = self._take_frame(None)
                    self._claim_file(frame, dev, start + i)
                    spares[i], frame.data = frame.data, bufs[i]  # no copy: swapped
                    frame.prefetched = frame.pinned = True
                    pinned.append(frame)
                    loaded += 1
            finally:
                for frame in pinned:
                    frame.pinned = False
                del spares[params.PREFETCH_SPARE_PAGES:]
        return loaded

    def is_resident(self, dev: BlockDevice, block: int) -> bool:
        with self._lock:
            return (dev, block) in self._files

    def discard(self, dev: BlockDevice, block: int) -> None:
        """Drop the block without writing it back (its device block was freed)."""
        with self._lock:
            frame = self._files.get((dev, block))
            if frame is not None:
                self._drop(frame)

    def discard_blocks(self, dev: BlockDevice, blocks: Sequence[int]) -> None:
        """``discard`` of each of ``blocks``, under one hold of the lock."""
        with self._lock:
            files = self._files
            for block in blocks:
                frame = files.get((dev, block))
                if frame is not None:
                    self._drop(frame)

    def sync(self, dev: BlockDevice | None = None) -> int:
        """Write back every dirty file block (of ``dev``, or of all devices); return how many.

        Blocks are written in ascending order per device, runs of consecutive blocks
        as one request (``BlockDevice.write_runs``); a block is clean once its request
        is done, so after a device error exactly the blocks not written stay dirty.
        """
        with self._lock:
            by_dev: dict[BlockDevice, list[_Frame]] = {}
            for frame in self._dirty_files.values():
                if dev is None or frame.dev is dev:
                    assert frame.dev is not None
                    by_dev.setdefault(frame.dev, []).append(frame)
            written = 0
            for d, frames in by_dev.items():
                frames.sort(key=_block_of)
                groups: list[list[_Frame]] = []  # runs of consecutive blocks
                after = -1
                for f in frames:
                    if f.block == after:
                        groups[-1].append(f)
                    else:
                        groups.append([f])
                    after = f.block + 1
                runs: list[tuple[int, bytes | bytearray]] = [
                    (g[0].block, g[0].data if len(g) == 1 else b"".join([f.data for f in g]))
                    for g in groups]
                try:
                    d.write_runs(runs)  # a frame's bytes are not kept: the device copies them
                finally:
                    for g in groups[:len(groups) - len(runs)]:
                        for f in g:
                            f.dirty = False
                            del self._dirty_files[f.key]  # type: ignore[arg-type]
                        written += len(g)
                        self.stats.writebacks += len(g)
            return written

    def invalidate(self, dev: BlockDevice) -> None:
        """Write back and then drop every block of ``dev`` (before it is closed)."""
        with self._lock:
            self.sync(dev)
            for frame in [f for f in self._files.values() if f.dev is dev]:
                self._drop(frame)

    def resident_blocks(self, dev: BlockDevice) -> list[int]:
        with self._lock:
            return sorted(b for d, b in self._files if d is dev)

    @property
    def free_frames(self) -> int:
        return len(self._free)

    # ---- frames and victims (caller holds _lock) --------------------------------------

    def _use(self, frame: _Frame) -> None:
        owner = frame.aspace
        if owner is not None:  # an anonymous page: its address space's own clock
            owner._tick += 1
            frame.last_use = owner._tick
        else:
            self._tick += 1
            frame.last_use = self._tick
        frame.referenced = True

    def _find(self, dev: BlockDevice, block: int) -> tuple[_Frame, Access]:
        """The frame holding ``block`` of ``dev`` (loaded on a miss), counted as a use."""
        frame = self._files.get((dev, block))
        if frame is None:
            return self._miss(dev, block), Access.MISS
        self.stats.hits += 1
        how = Access.HIT
        if frame.prefetched:
            frame.prefetched = False
            self.stats.prefetch_hits += 1
            how = Access.PREFETCH_HIT
        self._use(frame)
        return frame, how

    def _miss(self, dev: BlockDevice, block: int,
              behalf: Callable[[], AbstractContextManager[object]] | None = None) -> _Frame:
        """``block`` of ``dev``, not resident: read, put in a frame, counted as a miss and
        a use (as ``_find`` does). ``behalf``: the context the operation runs in
        (``FileIO.pread``: the opener's ``on_behalf``), entered only if another
        address space's policy must give up a page (``_choose_victim``) -- the only
        code a miss runs that asks who the operation is for. Caller holds ``_lock``.
        Its native twin (``plainread.py`` 3.) loads a plain read's miss in its common
        case, as this does; ``tests/kernel/test_plain_miss.py`` holds them equal."""
        if not 0 <= block < dev.nblocks:
            dev.check_block(block)  # raises BadBlock
        # The cyclic collector is held off for the load, as the native twin holds it: an
        # allocation here may start it, and a finalizer reading a file on this thread
        # (the lock is re-entrant) would take the same spare buffer or the frame the
        # clock chose, serving another block's bytes.
        if gc.isenabled():
            gc.disable()
            try:
                return self._load(dev, block, behalf)
            finally:
                gc.enable()
        return self._load(dev, block, behalf)

    def _load(self, dev: BlockDevice, block: int,
              behalf: Callable[[], AbstractContextManager[object]] | None) -> _Frame:
        """``_miss``'s load, the collector held off (its caller's)."""
        data = self._spare  # read before a frame is taken: a failed read claims nothing
        if data is None:
            self._not_busy()  # raises CacheBusy
            raise AssertionError("unreachable")  # (for the type checker)
        self.stats.misses += 1
        self._spare = None  # busy (module doc) until the frame takes the buffer
        try:
            dev.read_into(block, data)
            free = self._free
            if free:
                frame = self._frames[free.pop()]
            else:  # _take_frame(None) inline: rule 2, the global clock ...
                frame = self._sweep()
                if frame.aspace is not None:  # ... names whose page goes (requester None)
                    frame = self._choose_for(frame.aspace, None, behalf)
                self._evict(frame)
        except BaseException:
            self._spare = data
            raise
        frame.dev = dev
        frame.block = block
        key = frame.key = (dev, block)
        self._files[key] = frame
        self._spare = frame.data  # the block is not copied: the frame takes the buffer
        frame.data = data
        tick = self._tick = self._tick + 1
        frame.last_use = tick
        frame.referenced = True
        return frame

    def _not_busy(self) -> bytearray:
        """The spare buffer; ``CacheBusy`` if a load of this thread holds it (module doc)."""
        spare = self._spare
        if spare is None:
            raise CacheBusy("the buffer cache was entered again amid a load on the same thread "
                            "(a signal handler doing file I/O?): refused, nothing changed")
        return spare

    def _claim_file(self, frame: _Frame, dev: BlockDevice, block: int) -> None:
        frame.dev = dev
        frame.block = block
        key = frame.key = (dev, block)
        self._files[key] = frame

    def _take_frame(self, requester: AddressSpace | None) -> _Frame:
        """A free frame, evicting a victim if needed. The caller must claim it at once."""
        if self._free:
            return self._frames[self._free.pop()]
        victim = self._choose_victim(requester)
        self._evict(victim)
        return victim

    def _evict(self, frame: _Frame) -> None:
        """Save the page if it must be saved, then unmap it, leaving the frame to the caller
        (not on the free list). Raises before unmapping if the save fails."""
        if frame.aspace is not None:
            aspace = frame.aspace
            if frame.dirty:
                self._swap_out_victim(frame)
            del aspace._resident[frame.vpn]
            aspace.evictions += 1
        else:
            key = frame.key  # (dev, block): not built again
            assert frame.dev is not None and key is not None
            if frame.dirty:
                self._write_back_victim(frame, key)
            if frame.prefetched:
                self.stats.prefetch_unused += 1
            del self._files[key]
        self.stats.evictions += 1
        frame.dev = frame.aspace = frame.key = None  # frame.clear() inline: every miss
        frame.block = frame.vpn = -1
        frame.referenced = frame.dirty = frame.prefetched = frame.pinned = False
        frame.last_use = 0

    def _drop(self, frame: _Frame) -> None:
        key = frame.key
        assert frame.dev is not None and key is not None
        if frame.prefetched:
            self.stats.prefetch_unused += 1
        del self._files[key]
        self._dirty_files.pop(key, None)
        frame.clear()
        self._free.append(frame.index)


def _block_of(frame: _Frame) -> int:
    return frame.block


def _hint_entries(nframes: int) -> int:
    """The hint's entries: the power of two at or above twice the frames (a run of
    consecutive blocks as long as the cache has no two on one entry)."""
    return max(64, 1 << (2 * nframes - 1).bit_length())
