"""A buffer pool for SQLite's database pages, held in a vino ``AddressSpace``.

Why it exists: in this kernel file blocks are evicted by the global clock, and the
only eviction graft point (``vm.evict``) governs the anonymous pages of one address
space. To let a graft decide which *database pages* stay in memory, the VFS keeps its
own copy of recently read pages in the SQLite process's address space -- a user-level
buffer pool over the kernel's file cache, as a database server keeps one over the
OS page cache -- and the pool's pages are evicted by that address space's
``vm.evict`` policy (default clock; a graft such as ``evict_keep`` can keep the
B-tree's interior pages). SQLite's own page cache is kept small while measuring, so
this pool *is* the page cache that matters.

Usage (by ``vfs.VinoVFS``; ``region`` gives each pooled file its own vpns)::

    pool = BufferPool(kernel.address_space(process))
    base = pool.region()                      # vpn of the file's page 0
    data = pool.read(base, offset, amount)    # bytes, or None: go to the file system
    pool.fill(base, page_index, page)         # after a whole page came from the file
    pool.update(base, offset, data)           # after every write to the file
    pool.truncate(base, size)                 # after the file was cut to ``size`` bytes

The rule that keeps it correct, whatever the eviction policy does:
``_valid`` holds the vpns whose pool content (resident or not) equals the file's
current bytes. A read is served from the pool only if the page is valid *and*
resident; anything else goes to the file system, so an evicted page always costs
the real file-system read (never a free reload from "swap"). Writes go through to
the file and update a valid page if it is resident; otherwise it is invalidated.

What the kernel sees: pool pages are anonymous pages written by the VFS, so when one
is evicted the kernel saves it as it would any dirty anonymous page (to host memory
when the cache has no swap device: no modelled device time). The pool never reads a
non-resident page, so those saved copies are never used.

Not thread-safe by itself: the VFS serialises every call under its own lock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from vino.kernel.cache import AddressSpace
from vino.sqlite.params import PAGE_BYTES, POOL_REGION_PAGES

__all__ = ["BufferPool", "PoolStats"]


@dataclass(slots=True)
class PoolStats:
    hits: int = 0  # reads served from a resident, valid pool page
    misses: int = 0  # reads of a pooled file that went to the file system
    fills: int = 0  # whole pages copied into the pool after a file-system read
    updates: int = 0  # resident valid pages changed by a write
    invalidations: int = 0  # valid pages dropped (written while evicted, or truncated)

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BufferPool:
    """Database pages in an address space: vpn = region base + page index."""

    def __init__(self, aspace: AddressSpace) -> None:
        self.aspace = aspace
        self.stats = PoolStats()
        # Invariant: v in _valid => the pool's page v (resident or saved) equals the file's
        # current bytes of that page.
        self._valid: set[int] = set()
        self._regions = 0

    def region(self) -> int:
        """A fresh region for one file: the vpn of its page 0."""
        base = self._regions * POOL_REGION_PAGES
        self._regions += 1
        return base

    def read(self, base: int, offset: int, amount: int) -> bytes | None:
        """``amount`` bytes at ``offset`` if one resident valid page holds them all."""
        index, off = divmod(offset, PAGE_BYTES)
        vpn = base + index
        if off + amount > PAGE_BYTES or vpn not in self._valid or not self.aspace.is_resident(vpn):
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return self.aspace.read(vpn)[off:off + amount]

    def fill(self, base: int, index: int, page: bytes) -> None:
        """Keep ``page`` (the file's whole page ``index``, just read) in the pool."""
        if len(page) != PAGE_BYTES:
            return
        vpn = base + index
        self.aspace.write(vpn, page)
        self._valid.add(vpn)
        self.stats.fills += 1

    def update(self, base: int, offset: int, data: bytes) -> None:
        """``data`` was written to the file at ``offset``: keep every valid page equal to it."""
        pos, end = offset, offset + len(data)
        while pos < end:
            index, off = divmod(pos, PAGE_BYTES)
            take = min(PAGE_BYTES - off, end - pos)
            vpn = base + index
            if vpn in self._valid:
                if self.aspace.is_resident(vpn):
                    self.aspace.write(vpn, data[pos - offset:pos - offset + take], off)
                    self.stats.updates += 1
                else:
                    self._valid.discard(vpn)
                    self.stats.invalidations += 1
            pos += take

    def truncate(self, base: int, size: int) -> None:
        """The file is now ``size`` bytes: forget every page not wholly inside it."""
        whole = size // PAGE_BYTES
        gone = [v for v in self._valid if base <= v < base + POOL_REGION_PAGES
                and v - base >= whole]
        for v in gone:
            self._valid.discard(v)
        self.stats.invalidations += len(gone)

    def resident_pages(self, base: int) -> list[int]:
        """Page indexes of the region that are resident and valid, ascending."""
        return [v - base for v in self.aspace.resident()
                if base <= v < base + POOL_REGION_PAGES and v in self._valid]

    def release(self) -> None:
        """Give every frame back to the kernel (the pool is empty afterwards)."""
        self._valid.clear()
        self.aspace.release()
