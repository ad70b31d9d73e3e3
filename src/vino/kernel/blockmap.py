"""The block map of a file and the block allocator: which device block holds each
file block, and which blocks are free.

A mix-in of ``FileSystem`` (``fs.py``); every method runs with the file system's
lock held, and changes metadata only through the running transaction of the
journal (``journal.py``). Used by the file I/O and the directory::

    blk = fs._bmap(ino, bidx)                    # device block, 0 for a hole
    need = fs._blocks_needed(ino, first, last)   # before a write: data + indirect
    blk = fs._map_new_block(ino, bidx, data)     # fill a hole (data through the cache)
    fs._trim(ino, keep)                          # free every block at or past ``keep``
    fs._walk(ino)                                # every block, indirect ones too

A file maps its first ``NDIRECT`` blocks in the inode, the rest through a single,
a double and a triple indirect block (``inode.index_path``). A pointer 0 is a hole.

Invariants (state declared here, set up by ``FileSystem.__init__`` and ``_load``):
- ``_bitmap`` is the bitmap as of the running transaction; every changed bitmap
  block is logged as a live window on it (``_bitmap_view``); likewise ``_itable``;
- ``_busy == _bitmap | the blocks freed since the last commit``; blocks are allocated
  from ``_busy``, so none is reused before the transaction that freed it commits
  (a crash can never show a committed file holding another file's new data);
- ``_nfree`` counts the zero bits of ``_bitmap``; ``_npending`` the bits set in
  ``_busy`` and clear in ``_bitmap``;
- every change of the map reads first and changes after: if a device read fails,
  nothing changed;
- ``Inode.bmap`` remembers what ``_bmap`` found for file blocks past the direct ones
  (a hole too; every pointer of a leaf indirect block it read), so a page read does
  not walk two or three indirect blocks through the cache each time: a list indexed
  by file block (None: not remembered), up to ``FS_BMAP_CACHE_ENTRIES`` (the blocks
  past it are walked to every time; ``_remember``). It is exact:
  the map changes only in ``_map_new_block`` and ``_set_pointer``, which record the
  new pointer, and ``_trim``, which forgets them all; the map it remembers is the
  running transaction's, which is what every reader of this mount sees (a commit or
  a failed commit changes no pointer; a crash ends the mount). ``check_invariants``
  compares it with the walk.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.device import BlockDevice
from vino.kernel.diskquota import DiskQuota
from vino.kernel.errors import NoSpace
from vino.kernel.inode import (
    BS,
    LEVEL_START,
    MAX_FILE_BLOCKS,
    NDIRECT,
    NLEVELS,
    NPTR,
    ZERO_BLOCK,
    Geometry,
    Inode,
    index_path,
)
from vino.kernel.journal import Journal
from vino.kernel.proc import User

__all__ = ["BlockMap"]

_LEAF = struct.Struct(f"<{NPTR}I")  # an indirect block: NPTR little-endian u32 pointers


def _remember(known: list[int | None], first: int, blocks: tuple[int, ...]) -> None:
    """``known`` (an ``Inode.bmap``) remembers ``blocks`` for file blocks ``first ..``,
    unless they reach past ``FS_BMAP_CACHE_ENTRIES`` (then nothing is: a block that was
    remembered there cannot be, as no list grows that long)."""
    end = first + len(blocks)
    if end > params.FS_BMAP_CACHE_ENTRIES:
        return
    if len(known) < end:
        known.extend([None] * (end - len(known)))
    known[first:end] = blocks


class BlockMap:
    """The block-map and allocation half of a ``FileSystem`` (a mix-in; see the module)."""

    device: BlockDevice
    cache: Cache
    geo: Geometry
    journal: Journal
    _inodes: dict[int, Inode]
    _bitmap: bytearray
    _bitmap_view: memoryview
    _itable: bytearray
    _itable_view: memoryview
    _busy: bytearray
    _nfree: int
    _npending: int
    _alloc_hint: int
    quota: DiskQuota  # every owner's blocks and inodes (diskquota.py)

    if TYPE_CHECKING:
        def _on_free(self, inode: Inode) -> None: ...

    def _bmap(self, ino: Inode, bidx: int) -> int:
        """Device block of file block ``bidx``, or 0 for a hole."""
        if bidx < NDIRECT:
            return ino.direct[bidx]
        remembered = ino.bmap
        found = remembered[bidx] if bidx < len(remembered) else None
        if found is not None:
            return found
        if bidx >= MAX_FILE_BLOCKS:
            return 0
        level, idx = index_path(bidx)
        b = ino.ind[level]
        for k in idx[:-1]:
            if b == 0:
                break
            b = self.journal.read_u32(b, k)
        if b == 0:  # no leaf: a hole
            _remember(remembered, bidx, (0,))
            return 0
        # The leaf: every pointer in it remembered at once, so the next NPTR - 1 blocks
        # it maps (a scan's, or a cold cache's plain reads: fileio.py) walk nothing.
        ptrs: tuple[int, ...] = _LEAF.unpack(self.journal.read(b))
        _remember(remembered, bidx - idx[-1], ptrs)
        return ptrs[idx[-1]]

    def _blocks_needed(self, ino: Inode, first: int, last: int) -> int:
        """Blocks a write of file blocks ``first .. last`` would allocate (data + indirect).

        Each indirect block on the way is looked up once per call (a run of a write
        shares them), and a block past the end of file is a hole without looking
        (no pointer lies at or past ``ceil(size / BS)``: ``fsinvariants``)."""
        need = ino.direct[first:min(last, NDIRECT - 1) + 1].count(0)
        missing: set[tuple[int, tuple[int, ...]]] = set()  # indirect blocks to make
        known = ino.bmap
        mapped_end = -(-ino.size // BS)  # no block is mapped at or past it
        # (level, path to the leaf) -> (the leaf indirect block or 0, how deep the walk got)
        leaves: dict[tuple[int, tuple[int, ...]], tuple[int, int]] = {}
        read_u32 = self.journal.read_u32
        for bidx in range(max(first, NDIRECT), last + 1):
            if bidx < mapped_end and bidx < len(known) and known[bidx]:
                continue  # mapped
            level, idx = index_path(bidx)
            key = (level, idx[:-1])
            found = leaves.get(key)
            if found is None:
                b, depth = ino.ind[level], 0
                while b and depth < len(idx) - 1:
                    b = read_u32(b, idx[depth])
                    depth += 1
                found = leaves[key] = (b, depth)
            leaf, depth = found
            if leaf and bidx < mapped_end and read_u32(leaf, idx[-1]):
                continue  # mapped
            need += 1
            if not leaf:  # the indirect blocks below the first missing pointer
                for d in range(max(depth, 1) if ino.ind[level] else 0, len(idx)):
                    missing.add((level, idx[:d]))
        return need + len(missing)

    def _map_new_block(self, ino: Inode, bidx: int,
                       data: bytes | bytearray | memoryview | None) -> int:
        """Allocate a block for hole ``bidx``, store ``data`` in it (through the cache;
        None: the caller logs it as metadata), and map it, charging the blocks taken (it
        and new indirect blocks) to the owner. Every device access comes before the first
        change: if one fails, nothing changed."""
        nfree = self._nfree
        prev = self._bmap(ino, bidx - 1) if bidx > 0 else 0
        hint = prev + 1 if prev else self._alloc_hint
        path: list[int] = []  # existing indirect blocks on the way (root first)
        level, idx = index_path(bidx) if bidx >= NDIRECT else (0, ())
        if bidx >= NDIRECT:
            node = ino.ind[level]
            for k in idx[:-1]:
                if not node:
                    break
                path.append(node)
                node = self.journal.read_u32(node, k)
            else:  # the leaf's pointer is the hole itself: not read
                if node:
                    path.append(node)
            if path:
                self.journal.own(path[-1])  # it gets the new pointer: no read later
        blk = self._alloc_block(hint)
        if data is not None:
            try:
                self.cache.write_block(self.device, blk, data)
            except BaseException:
                self._unalloc_block(blk)
                raise
        if bidx < NDIRECT:
            ino.direct[bidx] = blk
            self.quota.charge(ino.uid, blocks=1)
            return blk
        # from here no device I/O: new indirect blocks are whole-block writes to the log
        if not path:
            ino.ind[level] = self._new_indirect(blk + 1)
            path.append(ino.ind[level])
        node = path[-1]
        for k in idx[len(path) - 1:-1]:
            nxt = self._new_indirect(blk + 1)
            self.journal.write(node, nxt.to_bytes(4, "little"), 4 * k)
            node = nxt
        self.journal.write(node, blk.to_bytes(4, "little"), 4 * idx[-1])
        _remember(ino.bmap, bidx, (blk,))
        self.quota.charge(ino.uid, blocks=nfree - self._nfree)
        return blk

    def _unalloc_block(self, b: int) -> None:
        """Give back a block allocated by this operation and never mapped (no data of
        any file is in it: it may be used again at once)."""
        i = b >> 3
        self._bitmap[i] &= ~(1 << (b & 7)) & 0xFF
        self._busy[i] &= ~(1 << (b & 7)) & 0xFF
        self._nfree += 1
        self.cache.discard(self.device, b)

    def _new_indirect(self, near: int) -> int:
        b = self._alloc_block(near)
        self.cache.discard(self.device, b)
        self.journal.write(b, ZERO_BLOCK)
        return b

    def _alloc_block(self, near: int) -> int:
        """Take the first block free in ``_busy`` at or after ``near`` (wrapping); mark it used."""
        geo = self.geo
        if not geo.data_start <= near < geo.nblocks:
            near = geo.data_start
        bm = self._busy
        for lo, hi in ((near, geo.nblocks), (geo.data_start, near)):
            b = lo
            while b < hi:
                byte = bm[b >> 3]
                if byte == 0xFF:
                    b = (b | 7) + 1
                    continue
                if not byte >> (b & 7) & 1:
                    self._set_bit(b, True)
                    self._nfree -= 1
                    self._alloc_hint = b + 1
                    return b
                b += 1
        raise NoSpace(f"no free block on {self.device.path}")

    def _free_block(self, b: int) -> None:
        self._set_bit(b, False)
        self._nfree += 1
        self._npending += 1
        self.journal.forget(b)
        self.cache.discard(self.device, b)

    def _free_blocks(self, blocks: list[int]) -> None:
        """``_free_block`` of each of ``blocks``, the cached copies dropped in one call."""
        forget = self.journal.forget
        for b in blocks:
            self._set_bit(b, False)
            forget(b)
        self._nfree += len(blocks)
        self._npending += len(blocks)
        self.cache.discard_blocks(self.device, blocks)

    def _set_bit(self, b: int, used: bool) -> None:
        i = b >> 3
        if used:
            self._bitmap[i] |= 1 << (b & 7)
            self._busy[i] |= 1 << (b & 7)
        else:  # _busy keeps the block taken until the transaction commits
            self._bitmap[i] &= ~(1 << (b & 7)) & 0xFF
        blk = i // BS
        home = self.geo.bitmap_start + blk
        if home not in self.journal.tx:
            self.journal.attach(home, self._bitmap_view[blk * BS:(blk + 1) * BS])

    def _truncate(self, ino: Inode) -> None:
        """Free every block of ``ino`` and make it empty."""
        self._trim(ino, 0)
        ino.size = 0
        self._store_inode(ino)

    def _trim(self, ino: Inode, keep: int) -> None:
        """Free every data block of ``ino`` at file block ``keep`` or beyond, and every
        indirect block left without pointers. The caller sets the size. Every read
        comes first (a plan); if one fails, nothing changed."""
        ino.bmap.clear()  # forgetting is always exact
        frees: list[int] = []
        writes: dict[int, bytes] = {}
        cleared: list[int] = []
        for level in range(NLEVELS):
            node = ino.ind[level]
            if node and self._plan_trim(node, level + 1, LEVEL_START[level], keep, frees,
                                        writes):
                frees.append(node)
                cleared.append(level)
        direct = ino.direct  # from here no device I/O
        frees += [b for b in direct[keep:] if b]
        direct[keep:] = [0] * max(NDIRECT - keep, 0)
        for level in cleared:
            ino.ind[level] = 0
        for node, raw in writes.items():
            self.journal.write(node, raw)
        self._free_blocks(frees)
        self.quota.charge(ino.uid, blocks=-len(frees))

    def _plan_trim(self, node: int, depth: int, first: int, keep: int, frees: list[int],
                   writes: dict[int, bytes]) -> bool:
        """Plan the trim below indirect block ``node`` (``depth`` 1: its pointers are data
        blocks), whose first pointer maps file block ``first``: blocks to free go to
        ``frees``, new contents of blocks that keep some pointers to ``writes``. True if
        it is left empty (the caller frees it; an empty block is not written)."""
        span = NPTR ** (depth - 1)  # file blocks under one pointer
        if first + NPTR * span <= keep:
            return False
        ptrs = list(struct.unpack(f"<{NPTR}I", self.journal.read(node)))
        changed = False
        empty = True
        for i, p in enumerate(ptrs):
            if not p:
                continue
            lo = first + i * span
            if lo + span <= keep:
                empty = False
            elif depth == 1 or self._plan_trim(p, depth - 1, lo, keep, frees, writes):
                frees.append(p)
                ptrs[i] = 0
                changed = True
            else:
                empty = False
        if not empty and changed:
            writes[node] = struct.pack(f"<{NPTR}I", *ptrs)
        return empty

    def _free_inode(self, ino: Inode) -> None:
        self._truncate(ino)
        self.quota.charge(ino.uid, inodes=-1)
        ino.mode = ino.uid = ino.flags = 0  # a free inode is all zeros on disk
        self._store_inode(ino)
        del self._inodes[ino.inum]
        self._on_free(ino)

    def _walk(self, ino: Inode) -> list[tuple[int, int, bool]]:
        """Every block of ``ino``: (file block or -1, device block, is an indirect block)."""
        out = [(i, b, False) for i, b in enumerate(ino.direct) if b]

        def down(node: int, depth: int, first: int) -> None:
            out.append((-1, node, True))
            span = NPTR ** (depth - 1)
            raw = self.journal.read(node)
            for i, p in enumerate(struct.unpack(f"<{NPTR}I", raw)):
                if p:
                    if depth == 1:
                        out.append((first + i, p, False))
                    else:
                        down(p, depth - 1, first + i * span)

        for level in range(NLEVELS):
            if ino.ind[level]:
                down(ino.ind[level], level + 1, LEVEL_START[level])
        return out

    def _count_usage(self) -> DiskQuota:
        """Every owner's blocks and inodes, counted from the map (a new ``DiskQuota``
        with ``quota``'s limits): ``mount`` sets ``quota`` to it."""
        q = self.quota
        counted = DiskQuota(q.user_blocks, q.user_inodes, q.reserve_blocks, q.reserve_inodes)
        for ino in self._inodes.values():
            counted.charge(ino.uid, blocks=len(self._walk(ino)), inodes=1)
        return counted

    def _check_quota(self, ino: Inode, need: int, writer: User | None = None) -> None:
        """Refuse (``DiskQuotaExceeded``) ``need`` more blocks for ``ino``'s owner; a
        ``writer`` other than the owner or root is not told the owner's usage."""
        if need and ino.uid:
            self.quota.check(ino.uid, blocks=need, free_blocks=self._nfree,
                             for_owner=writer is None or writer.uid in (0, ino.uid))

    def _data_blocks(self, ino: Inode) -> list[int]:
        return [b for _, b, indirect in self._walk(ino) if not indirect]

    def _store_inode(self, ino: Inode) -> None:
        off = ino.inum * params.FS_INODE_SIZE
        self._itable[off:off + params.FS_INODE_SIZE] = ino.pack()
        blk = off // BS
        home = self.geo.inode_start + blk
        if home not in self.journal.tx:
            self.journal.attach(home, self._itable_view[blk * BS:(blk + 1) * BS])

    def _set_pointer(self, ino: Inode, bidx: int, blk: int, leaf: int) -> None:
        """Point mapped file block ``bidx`` at ``blk`` (``leaf``: its indirect block)."""
        if bidx < NDIRECT:
            ino.direct[bidx] = blk
        else:
            self.journal.write(leaf, blk.to_bytes(4, "little"), 4 * index_path(bidx)[1][-1])
            _remember(ino.bmap, bidx, (blk,))
