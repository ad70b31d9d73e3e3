"""Anonymous memory: a process's address space, its pages in the cache's frames,
and swap.

``AddressSpace`` is one process's anonymous memory, pages named by vpn; ``AnonPages``
is the half of ``Cache`` (``cache.py``, a mix-in) that serves it: faults, release and
swap. Usage::

    aspace = AddressSpace(process, cache)
    aspace.touch(vpn, write=True)             # faults the page in if not resident
    aspace.write(vpn, b"xy", offset=100); aspace.read(vpn)
    aspace.release()                          # frames and swap slots back to the cache

A page is zero-filled on first touch; when evicted dirty it is written to swap
(the ``swap`` device if the cache has one, else kept in host memory at no modelled
cost) and read back on the next fault. Which page is evicted is the cache's rule
(``cache.py``), with the address space's own policy (``vm.evict``) choosing among its
pages.

Locking: all state here is guarded by the owning cache's lock (``Cache._lock``).

Invariants (``Cache.check_invariants`` checks them):
- ``_resident[vpn]`` is the frame holding ``(aspace, vpn)``, whose ``aspace`` is it;
- ``_slots`` values are distinct swap blocks, none on the cache's free swap list;
- after ``release()`` nothing is resident or swapped, and every method raises
  ``BadHandle``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from vino.kernel import params
from vino.kernel.device import BlockDevice
from vino.kernel.errors import BadHandle, CacheBusy, InvalidArgument, NoSpace
from vino.kernel.proc import Process

if TYPE_CHECKING:
    from vino.kernel.cache import Cache, CacheStats, _Frame

__all__ = ["AddressSpace", "AnonPages"]

PAGE = params.PAGE_SIZE
_ZERO_PAGE = bytes(PAGE)


class AddressSpace:
    """The anonymous memory of one process: pages named by vpn, backed by the cache's frames.

    All state is guarded by the owning cache's lock. After ``release()`` every
    method raises ``BadHandle``.
    """

    def __init__(self, owner: Process, cache: Cache) -> None:
        self.owner = owner
        self.cache = cache
        self.faults = 0  # touches that found the page not resident
        self.evictions = 0  # pages of this address space evicted
        # Invariant: _resident[vpn] is the frame holding (self, vpn); frame.aspace is self.
        self._resident: dict[int, _Frame] = {}
        self._hand = 0  # this address space's clock hand: the vpn where the next scan starts
        self._backing: dict[int, bytes] = {}  # swapped-out contents when the cache has no swap
        # Invariant: _slots values are distinct swap blocks, none on cache._swap_free.
        self._slots: dict[int, int] = {}
        # vpn -> important, set through the vm.evict graft-callable vm_hint for the address
        # space's own policy to use. The cache and the default policy do not read it.
        self.hints: dict[int, bool] = {}
        self._tick = 0  # this address space's touches: the clock behind its pages' last_use
        # The further victims of its policy's last batch, the next to go last:
        # (frame, vpn, last_use) as the policy saw them; re-validated before use (cache.py).
        self._victims: list[tuple[_Frame, int, int]] = []
        self._released = False
        cache._register(self)

    def touch(self, vpn: int, write: bool = False) -> bool:
        """Reference page ``vpn`` (and mark it dirty if ``write``). Returns True if it faulted."""
        return self.cache._touch(self, vpn, write) is not None

    def read(self, vpn: int) -> bytes:
        """The page's bytes (touching it)."""
        with self.cache._lock:
            # A copy: the frame's buffer goes on to hold other pages (and is swapped with
            # the cache's spare), so a view of it would come to show another page's bytes.
            return bytes(self.cache._touch_frame(self, vpn, False).data)

    def write(self, vpn: int, data: bytes, offset: int = 0) -> None:
        """Store ``data`` at ``offset`` in page ``vpn`` (touching it for write)."""
        if offset < 0 or offset + len(data) > PAGE:
            raise InvalidArgument(
                f"write of {len(data)} bytes at offset {offset} does not fit a {PAGE}-byte page")
        with self.cache._lock:
            frame = self.cache._touch_frame(self, vpn, True)
            frame.data[offset:offset + len(data)] = data

    def is_resident(self, vpn: int) -> bool:
        with self.cache._lock:
            return vpn in self._resident

    def resident(self) -> list[int]:
        """Resident vpns, ascending."""
        with self.cache._lock:
            return sorted(self._resident)

    @property
    def resident_count(self) -> int:
        return len(self._resident)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Free every frame and swap slot of this address space (contents are discarded)."""
        self.cache._release(self)

    def __repr__(self) -> str:
        return (f"AddressSpace(pid={self.owner.pid}, resident={len(self._resident)}, "
                f"faults={self.faults})")


class AnonPages:
    """The anonymous-page half of a ``Cache`` (a mix-in; see the module)."""

    stats: CacheStats
    swap: BlockDevice | None
    _lock: threading.RLock
    _free: list[int]
    _spare: bytearray | None
    _aspaces: dict[AddressSpace, None]
    _swap_free: list[int]
    on_release: Callable[[AddressSpace], None] | None

    if TYPE_CHECKING:
        def _take_frame(self, requester: AddressSpace | None) -> _Frame: ...
        def _use(self, frame: _Frame) -> None: ...
        def _not_busy(self) -> bytearray: ...

    def _register(self, aspace: AddressSpace) -> None:
        with self._lock:
            self._aspaces[aspace] = None

    def _touch(self, aspace: AddressSpace, vpn: int, write: bool) -> _Frame | None:
        """Touch; return the frame if the touch faulted, else None."""
        with self._lock:
            faulted = vpn not in aspace._resident
            frame = self._touch_frame(aspace, vpn, write)
            return frame if faulted else None

    def _touch_frame(self, aspace: AddressSpace, vpn: int, write: bool) -> _Frame:
        if aspace._released:
            raise BadHandle(f"address space of pid {aspace.owner.pid} was released")
        if not 0 <= vpn < params.VPN_LIMIT:
            raise InvalidArgument(f"vpn {vpn} is outside 0 .. {params.VPN_LIMIT - 1}")
        frame = aspace._resident.get(vpn)
        if frame is None:
            spare = self._not_busy()  # (the cache's busy mark: cache.py)
            aspace.faults += 1
            self.stats.faults += 1
            self._spare = None  # busy until the frame is taken
            try:
                saved = self._swap_in(aspace, vpn, spare)
                frame = self._take_frame(aspace)
            except BaseException:
                self._spare = spare
                raise
            frame.aspace = aspace
            frame.vpn = vpn
            if saved is spare:  # read from swap: the frame takes the buffer, no copy
                self._spare, frame.data = frame.data, saved
            else:
                self._spare = spare
                if saved is None:
                    frame.data[:] = _ZERO_PAGE
                else:  # a copy: the backing keeps its bytes (a clean page leaves unwritten)
                    frame.data[:] = saved
            aspace._resident[vpn] = frame
        if write:
            if frame.pinned:  # being swapped out: a handler's write would go with it
                raise CacheBusy(f"page {vpn} of pid {aspace.owner.pid} is being swapped out on "
                                f"this thread (a signal handler writing it amid that?): the "
                                f"write is refused, nothing changed")
            frame.dirty = True
        self._use(frame)
        return frame

    def _release(self, aspace: AddressSpace) -> None:
        self._free_aspace(aspace)
        if self.on_release is not None:
            self.on_release(aspace)

    def _free_aspace(self, aspace: AddressSpace) -> None:
        with self._lock:
            if aspace._released:
                return
            for frame in list(aspace._resident.values()):
                frame.clear()
                self._free.append(frame.index)
            aspace._resident.clear()
            self._swap_free.extend(aspace._slots.values())
            aspace._slots.clear()
            aspace._backing.clear()
            aspace.hints.clear()
            aspace._victims = []
            aspace._released = True
            del self._aspaces[aspace]

    def _swap_in(self, aspace: AddressSpace, vpn: int,
                 spare: bytearray) -> bytes | bytearray | None:
        """The page's saved bytes: its backing's, or ``spare`` (the cache's spare buffer)
        holding them read from swap (read before a frame is taken: a failed read claims
        nothing; the caller swaps the spare into the frame); None if it has none."""
        saved: bytes | bytearray | None
        if self.swap is None:
            saved = aspace._backing.get(vpn)
        else:
            slot = aspace._slots.get(vpn)
            saved = None
            if slot is not None:
                saved = spare
                self.swap.read_into(slot, saved)
        if saved is not None:
            self.stats.swapins += 1
        return saved

    def _swap_out_victim(self, frame: _Frame) -> None:
        """Save the dirty page in ``frame`` before the frame goes (``Cache._evict``). A
        signal handler may run amid the save, on this thread, through the re-entrant
        lock: the frame stays pinned until ``_evict`` unmaps it, so a write to the page
        meanwhile is refused (``_touch_frame``: its bytes would go with the frame; before,
        they did). A handler's fault is refused already (the busy mark, ``cache.py``)."""
        assert frame.aspace is not None
        frame.pinned = True
        try:
            self._swap_out(frame.aspace, frame.vpn, frame.data)
        except BaseException:
            frame.pinned = False
            raise

    def _swap_out(self, aspace: AddressSpace, vpn: int, data: bytearray) -> None:
        if self.swap is None:  # a copy: the frame's buffer goes on to hold other pages
            aspace._backing[vpn] = bytes(data)
        else:
            slot = aspace._slots.get(vpn)
            if slot is None:
                if not self._swap_free:
                    raise NoSpace(f"swap device {self.swap.path} is full")
                slot = self._swap_free[-1]
                self.swap.write_block(slot, data)
                self._swap_free.pop()
                aspace._slots[vpn] = slot
            else:
                self.swap.write_block(slot, data)
        self.stats.swapouts += 1
