"""File I/O: a file's bytes read and written block by block, with the user policies.

A mix-in of ``FileSystem`` (``fs.py``); every method runs with the file system's lock
held. ``_read_at`` / ``_write_at`` serve both user I/O (``of`` given: the filter, the
access history and event, read-ahead) and the directory's own (``of`` None: none of
them). Usage::

    data, end = fs._read_at(ino, start, n, of)   # clipped at the end of file
    fs._write_at(ino, start, data, of)           # grows the file; holes read as zeros
    cut = fs._prepare_cut(ino, size, of)         # before a shrinking truncate

How each policy is consulted (the policies are ``FileSystem``'s policy slots, where
the kernel plugs its graft points in): after each block a user read returns,
the access event (``on_access``) then ``readahead_policy``, whose answer ``_prefetch``
validates and loads; ``filter_policy`` on every whole block that crosses between the
user and the cache, in both directions.

Invariants:
- data blocks go through the cache (write-back, ordered before the commit that
  points to them, ``journal.py``); directory blocks through the journal only;
- space is checked before anything changes: ``NoSpace`` leaves the file as it was;
- bytes of the last block past the end of file read as zeros: a growing write or
  truncate zeroes them first (``_zero_tail``), a shrinking truncate copies the new
  last block instead of zeroing the committed one in place (``_prepare_cut``; on a
  full disk it commits first and zeroes the block after, and if that commit fails
  the next write or truncate commits before changing anything,
  ``FileSystem._cut_pending``): no byte of a committed file changes in place
  except by a user's write to it;
- a filter's seal reaches the device before the first block it transformed: after
  each call of ``filter_policy``, an inode its guard sealed (``seals``, the kernel's
  ``points.FilterGuard``) whose stored flags do not say so yet gets ``INODE_SEALED``
  committed at once (``_seal_stored``: one commit per seal), before the block is
  handed to the cache or the caller; a crash before that commit finds no block of
  the filter's on the device, after it finds the file sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from vino.kernel.cache import Access
from vino.kernel.directory import Directory
from vino.kernel.errors import InvalidArgument, NoSpace
from vino.kernel.fspolicy import NOT_PLAIN, Slot, new_epoch
from vino.kernel.inode import (
    BLOCK_LOG_BLOCKS,
    BS,
    MAX_FILE_SIZE,
    NDIRECT,
    Inode,
    ceil_div,
    index_path,
)
from vino.kernel.params import READAHEAD_HISTORY as HISTORY
from vino.kernel.plainread import PlainRead

if TYPE_CHECKING:
    from vino.kernel.fspolicy import FsHooks, FsStats
    from vino.kernel.openfile import OpenFile

__all__ = ["FILTER_READ", "FILTER_WRITE", "OP_READ", "OP_WRITE", "FileIO"]

OP_READ = 0  # on_access op
OP_WRITE = 1
FILTER_WRITE = 0  # filter_policy direction: plaintext in, stored form out
FILTER_READ = 1  # stored form in, plaintext out

_P = ParamSpec("_P")
_R = TypeVar("_R")


class FileIO(Directory):
    """The byte half of a ``FileSystem`` (a mix-in; see the module)."""

    stats: FsStats
    readahead_max: int

    # The policy slots (fspolicy.py): assigning one starts a new policy epoch.
    readahead_policy: Slot[Callable[[OpenFile, int], list[int]]] = Slot()
    filter_policy: Slot[Callable[[Inode, int, bytearray, int], None]] = Slot()
    on_access: Slot[Callable[[Inode, int, int], None]] = Slot()
    plain_read: Slot[Callable[[OpenFile], bool]] = Slot()
    # Invariant: a fresh value (new_epoch) after every change that could make a plain
    # read differ from the general one; see OpenFile._plain.
    _epoch: int
    _native_read: PlainRead | None
    # The inodes a filter's guard seals, by id (the kernel's points.FilterGuard.sealed,
    # given to mount; never rebound): see _seal_stored.
    seals: dict[int, Inode]

    if TYPE_CHECKING:
        hooks: FsHooks

        def _commit(self) -> None: ...
        def _store_inode(self, ino: Inode) -> None: ...
        def _seal_stored(self, ino: Inode) -> None: ...
        def _read(self, of: OpenFile, offset: int | None, n: int) -> bytes: ...
        def _readahead(self, of: OpenFile, block: int) -> list[int]: ...
        def _filter(self, inode: Inode, file_offset: int, data: bytearray,
                    direction: int) -> None: ...
        def _on_access(self, inode: Inode, block: int, op: int) -> None: ...

    def _plain_read(self, of: OpenFile) -> bool:
        """True if a user read of ``of`` runs only the built-in policies and no hook."""
        return (of.readable and self.hooks.on_behalf is None
                and self.readahead_policy == self._readahead
                and self.filter_policy == self._filter and self.on_access == self._on_access)

    def _for_opener(self, of: OpenFile, op: Callable[_P, _R],
                    *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``op(*args, **kwargs)`` done for the user who opened ``of``: inside the kernel's
        ``hooks.on_behalf(of)`` when it gave one (whoever's policy runs meanwhile, e.g. an
        eviction graft giving up a frame, runs on that user's behalf)."""
        behalf = self.hooks.on_behalf
        if behalf is None:
            return op(*args, **kwargs)
        with behalf(of):
            return op(*args, **kwargs)

    def policies_changed(self) -> None:
        """Start a new policy epoch: every open file is asked ``plain_read`` again at its
        next read (call after anything that may change a slot's answer)."""
        self._epoch = new_epoch()

    def pread(self, of: OpenFile, offset: int, n: int) -> bytes:
        """``seek(of, offset)`` then ``read(of, n)`` as one operation (SQLite's xRead).

        A read of one whole mapped block of a file whose ``of._plain`` is the current
        epoch takes the plain path (``fspolicy.py``), inline here (every page SQLite
        reads comes here): the same bytes, counts and decisions as the general path
        with the built-ins. Anything else -- a hole, a partial or unaligned read, a
        read-ahead that would load blocks, a miss after a sequential step -- changes
        nothing and takes the general path.

        The plain path holds the cache's lock alone, taken before anything is looked
        at: while it is held no block can be loaded into a frame, written, evicted or
        handed to another file except by this read (a block freed by a truncate
        running meanwhile is reused only after a commit, which writes back through the
        cache), so the block read is the file's at one instant, as under the file
        system's lock. A miss is loaded by the cache as the general path's is, for the
        opener: the cache enters the opener's ``on_behalf`` only if another address
        space's eviction policy must give up a page for it (``Cache._miss``), which is
        then paid for as on the general path; nothing else a miss runs asks whom the
        read is for.

        A hit is served by the native twin of this path first when there is one
        (``plainread.py``: the same checks, lock, bytes and counts); it answers None
        having changed nothing for everything else, which then runs here.
        """
        native = self._native_read
        if native is not None:
            data = native(self, of, offset, n)
            if data is not None:
                return data
        if of._plain == self._epoch and n == BS and offset >= 0 and not offset % BS:
            cache = self.cache
            lock = cache._lock
            lock.acquire()
            try:
                ino = of.inode
                bidx = offset // BS
                blk = None
                if offset + BS <= ino.size:  # else past the end, or the last partial block
                    known = ino.bmap  # (a list: None where not remembered)
                    blk = (ino.direct[bidx] if bidx < NDIRECT
                           else known[bidx] if bidx < len(known) else None)
                if blk:  # else a hole, or not mapped yet
                    frame = cache._files.get((self.device, blk))
                    # The history as _record leaves it; the built-in read-ahead asks
                    # only after a sequential step (then a miss is the general path's:
                    # the load could evict a block it names).
                    hist = of._history
                    h0 = hist[0] if hist else None
                    ahead = 0
                    if h0 == bidx - 1 or (h0 == bidx and len(hist) > 1 and hist[1] == bidx - 1):
                        ahead = -1 if frame is None else self._plain_ahead(ino, bidx, hist)
                    if ahead >= 0:
                        stats = self.stats
                        if frame is None:  # a miss: loaded as fetch_copy loads it, for
                            # the opener (whoever's eviction policy gives up a frame)
                            behalf = self.hooks.on_behalf
                            frame = cache._miss(self.device, blk, None if behalf is None
                                                else lambda: behalf(of))
                        else:
                            tick = cache._tick + 1  # a hit, as fetch_copy counts it
                            cache._tick = tick
                            frame.last_use = tick
                            frame.referenced = True
                            cstats = cache.stats
                            cstats.hits += 1
                            if frame.prefetched:  # read-ahead's first hit (PREFETCH_HIT)
                                frame.prefetched = False
                                cstats.prefetch_hits += 1
                                stats.prefetch_hits += 1
                                of.prefetch_hits += 1
                        if h0 != bidx:
                            hist.insert(0, bidx)
                            del hist[HISTORY:]
                        stats.plain_reads += 1  # also a read, a block read, ... (FsStats)
                        if ahead:
                            stats.readahead_blocks += ahead
                        of.pos = offset + BS
                        return bytes(frame.data)
            finally:
                lock.release()
        if offset < 0:
            raise InvalidArgument(f"seek to {offset}")
        return self._for_opener(of, self._read, of, offset, n)

    def _plain_overwrites(self, of: OpenFile,
                          writes: list[tuple[int, bytes | bytearray]]) -> int:
        """The plain write: take ``(offset, data)`` writes off the front of ``writes`` and
        write them while each is whole blocks, all mapped and inside the file, and a user
        read of ``of`` would be plain at this epoch (``plain_read``, asked here if need
        be: no filter, no access event, no hook can act on the file). Each goes to the
        cache in one call, with the counts, history and position the general path
        (``_write``) leaves. Returns how many were written (also removed on an error:
        those before the one that failed); the first left is for the general path.
        Caller holds the lock and has checked that ``of`` is open for writing. A block
        the remembered block map (``Inode.bmap``) does not know yet goes the general way.

        Nothing of the file's metadata changes (no block is allocated, the size stays):
        the blocks are overwritten in place, durable at the next commit, as on the
        general path (ordered mode, ``journal.py``)."""
        if of._plain != self._epoch:
            epoch = self._epoch  # before asking: a change meanwhile starts a new one
            of._plain = epoch if self.plain_read(of) else NOT_PLAIN
        ino = of.inode
        size, direct, known = ino.size, ino.direct, ino.bmap
        cache, dev, hist = self.cache, self.device, of._history
        done = nblocks = nbytes = 0
        try:
            for offset, data in writes:
                n = len(data)
                if (not n or offset % BS or n % BS or offset + n > size
                        or of._plain != self._epoch):
                    break
                first = offset // BS
                blocks: list[int] = []
                for bidx in range(first, first + n // BS):
                    blk = (direct[bidx] if bidx < NDIRECT
                           else known[bidx] if bidx < len(known) else None)
                    if not blk:  # a hole, or not looked up yet: the general path maps
                        break    # it or walks to it (and remembers it)
                    blocks.append(blk)
                else:
                    if not done:
                        self._begin()  # as the general path (nothing is logged here)
                    cache.write_blocks(dev, blocks, data)
                    done += 1
                    nblocks += len(blocks)
                    nbytes += n
                    for bidx in range(first, first + len(blocks)):
                        if not hist or hist[0] != bidx:
                            hist.insert(0, bidx)
                            del hist[HISTORY:]
                    of.pos = offset + n
                    continue
                break
        finally:
            if done:
                del writes[:done]
                stats = self.stats
                stats.writes += done
                stats.plain_writes += done
                stats.bytes_written += nbytes
                stats.block_writes += nblocks
                stats.filter_calls += nblocks  # the built-in filter and access event: no-ops
                stats.access_events += nblocks
        return done

    def _plain_ahead(self, ino: Inode, bidx: int, hist: list[int]) -> int:
        """After a sequential plain read of ``bidx`` (``hist`` before it is recorded): how
        many blocks the built-in read-ahead (``sequential_readahead``) asks for, if all
        are resident or holes (its prefetch then loads nothing); -1 if any is not (the
        general path must prefetch). Caller holds the cache's lock."""
        at = 2 if hist[0] == bidx else 1  # where the block two steps back will be
        prev2 = hist[at] if len(hist) > at else None
        max_out = self.readahead_max
        if max_out <= 0 or (prev2 == bidx - 2 and bidx % max_out):
            return 0
        last = min(bidx + 1 + max_out, -(-ino.size // BS))
        files, dev, direct, known = self.cache._files, self.device, ino.direct, ino.bmap
        for b in range(bidx + 1, last):
            blk = direct[b] if b < NDIRECT else known[b] if b < len(known) else None
            if blk is None or (blk and (dev, blk) not in files):
                return -1
        return max(last - bidx - 1, 0)

    def _read_at(self, ino: Inode, start: int, n: int, of: OpenFile | None) -> tuple[bytes, int]:
        """Bytes ``start .. start + n`` clipped at the end of file, and the end position.
        With ``of``: a user read (filter, history, access event, read-ahead)."""
        end = min(ino.size, start + n)
        if end <= start:
            return b"", start
        stats, cache, dev, is_dir = self.stats, self.cache, self.device, ino.is_dir
        pieces: list[bytes | bytearray] = []
        pos = start
        while pos < end:
            bidx, boff = divmod(pos, BS)
            take = min(BS - boff, end - pos)
            blk = self._bmap(ino, bidx)
            if blk == 0:
                plain = bytearray(BS)
                if of is not None:
                    stats.hole_reads += 1
            elif is_dir:
                plain = bytearray(self.journal.read(blk))
            else:
                plain, how = cache.fetch_copy(dev, blk)
                if of is not None:
                    stats.filter_calls += 1  # _apply_filter, inline: the hot path
                    try:
                        self.filter_policy(ino, bidx * BS, plain, FILTER_READ)
                    finally:
                        if not ino.flags and id(ino) in self.seals:
                            self._seal_stored(ino)
                    if len(plain) != BS:
                        self._bad_filter(ino, bidx * BS, plain)
                    if how is Access.PREFETCH_HIT:
                        stats.prefetch_hits += 1
                        of.prefetch_hits += 1
            pieces.append(plain if take == BS else plain[boff:boff + take])
            pos += take
            if of is not None:
                stats.block_reads += 1
                hist = of._history  # _record, inline: the hot path
                if not hist or hist[0] != bidx:
                    hist.insert(0, bidx)
                    del hist[HISTORY:]
                stats.access_events += 1
                self.on_access(ino, bidx, OP_READ)
                stats.readahead_calls += 1
                ahead = self.readahead_policy(of, bidx)
                if ahead:
                    self._prefetch(of, ahead)
        return (bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)), pos

    def _write_at(self, ino: Inode, start: int, data: bytes, of: OpenFile | None,
                  plain: bool = False) -> None:
        """Write ``data`` at ``start`` (growing the file; holes read as zeros). With
        ``of``: a user write (filter, history, access event); ``plain``: ``of`` is plain
        at this epoch (``_plain_overwrites``), so the built-in filter and access event,
        no-ops, are counted and not called, and a whole block goes to the cache
        without a copy of its own."""
        n = len(data)
        if n == 0:
            return
        end = start + n
        if end > MAX_FILE_SIZE:
            raise NoSpace(f"file would be {end} bytes; the largest file is {MAX_FILE_SIZE}")
        first, last = start // BS, (end - 1) // BS
        need = self._blocks_needed(ino, first, last)
        if need > self._nfree:
            raise NoSpace(f"write needs {need} blocks, {self._nfree} free")
        self._check_quota(ino, need, of.user if of is not None else None)
        if need > self._nfree - self._npending:
            self._commit()  # the blocks freed by the running transaction become usable
        old_size = ino.size
        mapped_end = -(-old_size // BS)  # blocks at or past it are holes (fsinvariants)
        view = memoryview(data)  # slices of it are not copies
        stats, cache, dev, journal = self.stats, self.cache, self.device, self.journal
        meta = ino.is_dir
        user = of is not None
        policies = user and not plain  # the policies are called (else counted only)
        nfilter = naccess = 0  # filter calls and access events counted, not made (plain)
        if start > old_size and old_size // BS < first:
            self._zero_tail(ino, of)
        if (plain and not meta and first >= mapped_end and last < NDIRECT
                and journal.room() >= BLOCK_LOG_BLOCKS + self.geo.bitmap_blocks):
            assert of is not None
            try:
                self._plain_append(ino, start, view, of)
            finally:
                self._store_inode(ino)
            return
        try:
            for bidx in range(first, last + 1):
                bstart = bidx * BS
                lo, hi = max(start, bstart), min(end, bstart + BS)
                blk = self._bmap(ino, bidx) if bidx < mapped_end else 0
                block: bytearray | memoryview
                if hi - lo == BS:
                    block = view[lo - start:hi - start]
                    if policies:
                        block = bytearray(block)  # the filter may change it in place
                else:
                    if blk == 0:  # new block or hole: reads as zeros
                        block = bytearray(BS)
                    else:
                        block = bytearray(journal.read(blk) if meta
                                          else cache.read_block(dev, blk))
                        if policies:
                            self._apply_filter(ino, bstart, block, FILTER_READ)
                        elif user:
                            nfilter += 1
                        keep = max(old_size - bstart, 0)  # bytes of this block inside the file
                        if keep < BS:  # beyond the old end must read back as zeros
                            block[keep:] = bytes(BS - keep)
                    block[lo - bstart:hi - bstart] = view[lo - start:hi - start]
                if policies:
                    assert isinstance(block, bytearray)
                    stats.filter_calls += 1  # _apply_filter, inline: the hot path
                    try:
                        self.filter_policy(ino, bstart, block, FILTER_WRITE)
                    finally:
                        if not ino.flags and id(ino) in self.seals:
                            self._seal_stored(ino)
                    if len(block) != BS:
                        self._bad_filter(ino, bstart, block)
                elif user:
                    nfilter += 1
                if blk == 0:
                    if journal.room() < BLOCK_LOG_BLOCKS:
                        self._store_inode(ino)  # a write larger than the log: commit a step
                        self._commit()
                    blk = self._map_new_block(ino, bidx, None if meta else block)
                    if meta:
                        journal.write(blk, block)
                elif meta:
                    journal.write(blk, block)
                else:
                    cache.write_block(dev, blk, block)
                if hi > ino.size:
                    ino.size = hi
                if user:
                    assert of is not None
                    stats.block_writes += 1
                    hist = of._history  # _record, inline: the hot path
                    if not hist or hist[0] != bidx:
                        hist.insert(0, bidx)
                        del hist[HISTORY:]
                    if policies:
                        stats.access_events += 1
                        self.on_access(ino, bidx, OP_WRITE)
                    else:
                        naccess += 1
        finally:
            if nfilter:
                stats.filter_calls += nfilter
            if naccess:
                stats.access_events += naccess
            if ino.size != old_size or need:
                self._store_inode(ino)

    def _plain_append(self, ino: Inode, start: int, data: memoryview, of: OpenFile) -> None:
        """``_write_at``'s loop for a plain write into new blocks only, all mapped directly
        by the inode (a journal SQLite has just created): the same blocks taken in the
        same order (each from the one before), given to the cache in one call per
        partial or run of whole blocks (a partial one padded with zeros, as a new block
        reads), the same counts, history and size. If the cache fails (writing back a
        victim), every block taken is given back and nothing changed. The log has room
        for the bitmap blocks (the caller checked), so no step commits."""
        n = len(data)
        first, last = start // BS, (start + n - 1) // BS
        count = last - first + 1
        blocks: list[int] = []
        hint = ino.direct[first - 1] + 1 if first and ino.direct[first - 1] else self._alloc_hint
        cache, dev = self.cache, self.device
        try:
            for _ in range(count):
                blk = self._alloc_block(hint)
                blocks.append(blk)
                hint = blk + 1
            lead = start - first * BS  # zeros before the data in the first block
            at = i = 0  # bytes of data and blocks written so far
            if lead:
                head = bytearray(BS)
                at = min(BS - lead, n)
                head[lead:lead + at] = data[:at]
                cache.write_blocks(dev, blocks[:1], head)
                i = 1
            whole = (n - at) // BS
            if whole:
                cache.write_blocks(dev, blocks[i:i + whole], data[at:at + whole * BS])
                at += whole * BS
                i += whole
            if at < n:
                tail = bytearray(BS)
                tail[:n - at] = data[at:]
                cache.write_blocks(dev, blocks[i:], tail)
        except BaseException:
            for blk in blocks:
                self._unalloc_block(blk)
            raise
        ino.direct[first:last + 1] = blocks
        self.quota.charge(ino.uid, blocks=count)
        ino.size = max(ino.size, start + n)
        stats = self.stats
        stats.block_writes += count
        stats.filter_calls += count  # the built-in filter and access event: no-ops
        stats.access_events += count
        hist = of._history
        for bidx in range(first, last + 1):
            if not hist or hist[0] != bidx:
                hist.insert(0, bidx)
                del hist[HISTORY:]

    def _zero_tail(self, ino: Inode, of: OpenFile | None) -> None:
        """Zero the bytes of the last block past the end of file before the file grows
        over them (a shrinking truncate leaves them as they were; growing must not
        bring them back). A data write beyond the committed size: crash-safe."""
        keep = ino.size % BS
        blk = self._bmap(ino, ino.size // BS) if keep else 0
        if not blk or ino.is_dir:
            return
        plain = bytearray(self.cache.read_block(self.device, blk))
        if of is not None:
            self._apply_filter(ino, ino.size - keep, plain, FILTER_READ)
        if not any(plain[keep:]):
            return
        plain[keep:] = bytes(BS - keep)
        if of is not None:
            self._apply_filter(ino, ino.size - keep, plain, FILTER_WRITE)
        self.cache.write_block(self.device, blk, plain)

    def _prepare_cut(self, ino: Inode, size: int, of: OpenFile | None,
                     ) -> tuple[int, int, int, bytearray] | None:
        """Before a truncate to ``size``: the bytes of the new last block past ``size``
        must read as zeros. They are the committed file's data until the truncate
        commits, so they are not zeroed in place: the block is copied to a new one
        (zeros past ``size``), returned as ``(old, new, leaf indirect block or 0,
        stored form)`` for the caller to map and free. None if nothing needs doing.
        On a full disk the running transaction is committed first (the blocks it
        freed become usable); if still no block is free, ``new`` is 0: the caller
        commits the truncate and only then writes the stored form over ``old``, whose
        bytes past ``size`` are no committed file's any more. All reads are here."""
        keep = size % BS
        old = self._bmap(ino, size // BS) if keep else 0
        if not old:
            return None
        plain = bytearray(self.cache.read_block(self.device, old))
        if of is not None:
            self._apply_filter(ino, size - keep, plain, FILTER_READ)
        if not any(plain[keep:]):
            return None
        plain[keep:] = bytes(BS - keep)
        if of is not None:
            self._apply_filter(ino, size - keep, plain, FILTER_WRITE)
        if self._nfree - self._npending < 1 and self._npending:
            self._commit()  # the blocks freed before are usable from here
        if self._nfree - self._npending < 1:
            return old, 0, 0, plain
        leaf = 0
        if size // BS >= NDIRECT:
            level, idx = index_path(size // BS)
            leaf = ino.ind[level]
            for k in idx[:-1]:
                leaf = self.journal.read_u32(leaf, k)
            self.journal.own(leaf)
        new = self._alloc_block(old + 1)
        try:
            self.cache.write_block(self.device, new, plain)
        except BaseException:
            self._unalloc_block(new)
            raise
        return old, new, leaf, plain

    def _apply_filter(self, ino: Inode, offset: int, buf: bytearray, direction: int) -> None:
        self.stats.filter_calls += 1
        try:
            self.filter_policy(ino, offset, buf, direction)
        finally:
            if not ino.flags and id(ino) in self.seals:
                self._seal_stored(ino)
        if len(buf) != BS:
            self._bad_filter(ino, offset, buf)

    def _bad_filter(self, ino: Inode, offset: int, buf: bytearray) -> None:
        raise InvalidArgument(
            f"filter changed the length of block {offset // BS} of inode {ino.inum} "
            f"from {BS} to {len(buf)}")

    def _prefetch(self, of: OpenFile, blocks: list[int]) -> None:
        if not blocks:
            return
        file_blocks = ceil_div(of.inode.size, BS)
        if (len(blocks) > self.readahead_max or len(set(blocks)) != len(blocks)
                or any(not isinstance(b, int) or not 0 <= b < file_blocks for b in blocks)):
            raise InvalidArgument(
                f"read-ahead for {of.name!r} asked for {blocks!r}: want at most "
                f"{self.readahead_max} distinct blocks below {file_blocks}")
        self.stats.readahead_blocks += len(blocks)
        targets = [d for d in (self._bmap(of.inode, b) for b in blocks) if d]
        loaded = self.cache.prefetch(self.device, targets)
        self.stats.prefetches += loaded
        of.prefetches += loaded
