"""The buffer cache's invariants, checked against its frames, maps and swap.

A mix-in of ``Cache`` (``cache.py``, whose header lists the invariants).
``cache.check_invariants()`` raises ``InvariantViolation`` naming the first broken
one; the tests call it after every step of their workloads, and the file system's
own check ends with it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from vino.kernel import params
from vino.kernel.errors import InvariantViolation

if TYPE_CHECKING:
    from vino.kernel.aspace import AddressSpace
    from vino.kernel.cache import _Frame
    from vino.kernel.device import BlockDevice

__all__ = ["CacheInvariants"]

PAGE = params.PAGE_SIZE


class CacheInvariants:
    """``check_invariants`` of a ``Cache`` (a mix-in; see the module)."""

    nframes: int
    swap: BlockDevice | None
    _lock: threading.RLock
    _frames: list[_Frame]
    _free: list[int]
    _files: dict[tuple[BlockDevice, int], _Frame]
    _dirty_files: dict[tuple[BlockDevice, int], _Frame]
    _aspaces: dict[AddressSpace, None]
    _swap_free: list[int]
    _spare: bytearray | None
    _spares: list[bytearray]
    _hint: bytearray

    def check_invariants(self) -> None:
        """Raise ``InvariantViolation`` naming the first broken invariant."""
        with self._lock:
            _check(len(self._frames) == self.nframes, "frame count changed")
            free = set(self._free)
            _check(len(free) == len(self._free), "a frame is on the free list twice")
            keys: set[tuple[object, int]] = set()
            used = 0
            for i, f in enumerate(self._frames):
                _check(f.index == i, f"frame {i} has index {f.index}")
                _check(len(f.data) == PAGE, f"frame {i} holds {len(f.data)} bytes")
                _check(not f.pinned, f"frame {i} is pinned outside a cache operation")
                if i in free:
                    _check(f.is_free and not f.dirty and f.key is None,
                           f"frame {i} is on the free list but in use")
                    continue
                _check(not f.is_free, f"frame {i} is neither free nor in use")
                _check(f.dev is not None or f.key is None, f"frame {i} has a key, no block")
                _check(f.dev is None or f.aspace is None, f"frame {i} is both kinds")
                used += 1
                key: tuple[object, int]
                if f.dev is not None:
                    key = (f.dev, f.block)
                    _check(self._files.get(key) is f,
                           f"frame {i} (block {f.block}) is not in the file map")
                    _check(f.key == key, f"frame {i} (block {f.block}) has key {f.key!r}")
                else:
                    assert f.aspace is not None
                    key = (f.aspace, f.vpn)
                    _check(f.aspace in self._aspaces, f"frame {i} belongs to a dead address space")
                    _check(f.aspace._resident.get(f.vpn) is f,
                           f"frame {i} (vpn {f.vpn}) is not in its address space's map")
                _check(key not in keys, f"page {key} is in two frames")
                keys.add(key)
            dirty = {k for k, f in self._files.items() if f.dirty}
            _check(set(self._dirty_files) == dirty
                   and all(self._files[k] is f for k, f in self._dirty_files.items()),
                   "the dirty index differs from the dirty file blocks")
            anon = sum(len(a._resident) for a in self._aspaces)
            _check(len(self._files) + anon == used, "maps and frames disagree on residency")
            _check(used + len(free) == self.nframes, "frames leaked")
            spare = self._spare
            _check(spare is not None, "the spare buffer is held outside a load")
            assert spare is not None
            spares = [spare, *self._spares]
            held = {id(f.data) for f in self._frames}
            _check(len(held) == self.nframes, "two frames share one page buffer")
            _check(all(len(b) == PAGE for b in spares)
                   and len({id(b) for b in spares} | held) == len(spares) + len(held)
                   and len(self._spares) <= params.PREFETCH_SPARE_PAGES,
                   "a spare buffer is a frame's or another spare, or not a page")
            entries = len(self._hint) // 4
            _check(len(self._hint) % 4 == 0 and entries > 0 and not entries & (entries - 1)
                   and max(memoryview(self._hint).cast("I")) <= self.nframes,
                   "the hint is not 2**k entries each naming a frame or none")
            for a in self._aspaces:
                _check(not a._released, "a released address space is still registered")
                for vpn, f in a._resident.items():
                    _check(f.aspace is a and f.vpn == vpn, f"residency map of vpn {vpn} is stale")
            if self.swap is not None:
                slots = [s for a in self._aspaces for s in a._slots.values()]
                _check(len(set(slots)) == len(slots), "a swap slot is used twice")
                _check(not set(slots) & set(self._swap_free), "a used swap slot is also free")
                _check(len(slots) + len(self._swap_free) == self.swap.nblocks,
                       "swap slots leaked")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantViolation(f"cache: {what}")
