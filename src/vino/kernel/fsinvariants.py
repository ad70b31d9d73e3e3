"""The mounted file system's invariants, checked against its memory and its journal.

A mix-in of ``FileSystem`` (``fs.py``). ``fs.check_invariants()`` raises
``InvariantViolation`` naming the first broken invariant, then checks the cache;
the tests call it after every step of their workloads, and ``fsck.py`` checks the
same rules on an unmounted image. The invariants:

- the bitmap marks exactly the metadata blocks and the blocks reachable from inodes
  (``_busy`` is the bitmap plus the blocks freed since the last commit);
  no block is reachable twice; every pointer is inside the data area;
- no block pointer lies at or beyond ``ceil(size / BLOCK_SIZE)`` (sizes consistent);
- what an inode remembers of its block map (``Inode.bmap``) is what the map says;
- the directory names each live regular inode exactly once, except unlinked files
  that are still open (orphans), which are freed at their last ``close``;
- each owner's disk quota usage (``quota``) is the inodes it owns and the blocks their
  maps walk to (``diskquota.py``);
- the in-memory inode table, bitmap and directory equal what the journal (the running
  transaction, else the cache / device) holds.
"""

from __future__ import annotations

from vino.kernel import params
from vino.kernel.errors import InvariantViolation
from vino.kernel.fileio import FileIO
from vino.kernel.inode import (
    BS,
    DIRENT,
    INODES_PER_BLOCK,
    MAX_FILE_SIZE,
    NDIRECT,
    ROOT_INUM,
    S_IFDIR,
    S_IFMT,
    S_IFREG,
    ceil_div,
    encode_name,
)

__all__ = ["Invariants"]


class Invariants(FileIO):
    """``check_invariants`` of a ``FileSystem`` (a mix-in; see the module)."""

    def check_invariants(self) -> None:
        """Raise ``InvariantViolation`` naming the first broken invariant (then check the cache)."""
        with self._lock:
            self._check_mounted()
            geo = self.geo
            owner: dict[int, int] = {}  # block -> inode that reaches it

            def own(b: int, inum: int, what: str) -> None:
                _check(geo.data_start <= b < geo.nblocks,
                       f"inode {inum}: {what} pointer {b} is outside the data area")
                _check(b not in owner, f"block {b} is owned by inodes {owner.get(b)} and {inum}")
                owner[b] = inum

            blocks_of: dict[int, int] = {}  # the disk quota's counts, from the walk
            inodes_of: dict[int, int] = {}
            for inum, ino in self._inodes.items():
                inodes_of[ino.uid] = inodes_of.get(ino.uid, 0) + 1
                _check(ino.inum == inum, f"inode {inum} is filed as {ino.inum}")
                _check(ino.mode & S_IFMT in (S_IFREG, S_IFDIR), f"inode {inum} has a bad mode")
                _check((inum == ROOT_INUM) == ino.is_dir, f"inode {inum}: only the root is a dir")
                _check(0 <= ino.size <= MAX_FILE_SIZE, f"inode {inum}: size {ino.size}")
                nb = ceil_div(ino.size, BS)
                mapped: dict[int, int] = {}
                walked = self._walk(ino)
                if walked:
                    blocks_of[ino.uid] = blocks_of.get(ino.uid, 0) + len(walked)
                for bidx, b, indirect in walked:
                    _check(indirect or bidx < nb,
                           f"inode {inum}: block {bidx} mapped beyond size {ino.size}")
                    own(b, inum, "indirect" if indirect else f"block {bidx}")
                    if not indirect:
                        mapped[bidx] = b
                _check(len(ino.bmap) <= params.FS_BMAP_CACHE_ENTRIES,
                       f"inode {inum}: remembers {len(ino.bmap)} blocks' places")
                for bidx, b in ino.remembered().items():
                    _check(bidx >= NDIRECT and mapped.get(bidx, 0) == b,
                           f"inode {inum}: remembers block {bidx} at {b}, the map says "
                           f"{mapped.get(bidx, 0)}")
            expected = bytearray(len(self._bitmap))
            for b in [*range(geo.data_start), *owner]:
                expected[b >> 3] |= 1 << (b & 7)
            if expected != self._bitmap:
                bad = next(b for b in range(geo.nblocks)
                           if (expected[b >> 3] ^ self._bitmap[b >> 3]) >> (b & 7) & 1)
                raise InvariantViolation(
                    f"fs: bitmap says block {bad} is "
                    f"{'used' if self._bitmap[bad >> 3] >> (bad & 7) & 1 else 'free'}, "
                    f"reachability says otherwise")
            _check((blocks_of, inodes_of) == (self.quota.blocks, self.quota.inodes),
                   f"disk quota usage {self.quota.blocks} blocks, {self.quota.inodes} inodes; "
                   f"the map says {blocks_of}, {inodes_of}")
            used = int.from_bytes(self._bitmap, "little").bit_count()
            _check(self._nfree == geo.nblocks - used, f"free count {self._nfree} != "
                   f"{geo.nblocks - used}")
            busy = int.from_bytes(self._busy, "little")
            _check(busy & int.from_bytes(self._bitmap, "little")
                   == int.from_bytes(self._bitmap, "little"), "a used block is not busy")
            _check(busy.bit_count() - used == self._npending, "pending-free count is wrong")
            _check(len(self.journal.tx) <= self.journal.capacity, "the transaction is too big")
            for b in self.journal.tx:
                _check(b < geo.data_start or b in owner,
                       f"logged block {b} is neither metadata nor owned")
            # the directory and orphans
            root = self._inodes.get(ROOT_INUM)
            _check(root is not None, "no root directory")
            assert root is not None
            nslots = root.size // params.FS_DIRENT_SIZE
            _check(root.size % params.FS_DIRENT_SIZE == 0, "directory size is not whole entries")
            slots = [s for _, s in self._dir.values()] + self._free_slots
            _check(sorted(slots) == list(range(nslots)), "directory slots are not a partition")
            named = [inum for inum, _ in self._dir.values()]
            _check(len(set(named)) == len(named), "an inode has two names")
            for name, (inum, _) in self._dir.items():
                _check(inum in self._inodes and not self._inodes[inum].orphan,
                       f"{name!r} names a free or orphaned inode {inum}")
            named_set = set(named)
            opens: dict[int, int] = {}
            for of in self._open.values():
                opens[of.inode.inum] = opens.get(of.inode.inum, 0) + 1
                _check(self._inodes.get(of.inode.inum) is of.inode,
                       f"open file {of.name!r} refers to a freed inode")
            for inum, ino in self._inodes.items():
                _check(ino.open_count == opens.get(inum, 0), f"inode {inum}: open count wrong")
                if inum != ROOT_INUM and inum not in named_set:
                    _check(ino.orphan and ino.open_count > 0,
                           f"inode {inum} is neither named nor an open orphan")
            # memory == what the journal (the transaction, else the cache / device) holds
            for i in range(geo.bitmap_blocks):
                _check(bytes(self.journal.read(geo.bitmap_start + i))
                       == self._bitmap[i * BS:(i + 1) * BS], f"bitmap block {i} is stale")
            for i in range(geo.inode_blocks):
                raw = bytes(self.journal.read(geo.inode_start + i))
                for k in range(INODES_PER_BLOCK):
                    inum = i * INODES_PER_BLOCK + k
                    mem = self._inodes.get(inum)
                    disk = raw[k * params.FS_INODE_SIZE:(k + 1) * params.FS_INODE_SIZE]
                    want = mem.pack() if mem is not None else bytes(params.FS_INODE_SIZE)
                    _check(disk == want, f"inode {inum} on disk differs from memory")
            data, _ = self._read_at(root, 0, root.size, None)
            for name, (inum, slot) in self._dir.items():
                _check(DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)
                       == (inum, encode_name(name).ljust(params.FS_NAME_MAX, b"\0")),
                       f"directory entry {name!r} on disk differs")
            for slot in self._free_slots:
                _check(DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)[0] == 0,
                       f"free directory slot {slot} is not empty on disk")
            self.cache.check_invariants()


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantViolation(f"fs: {what}")
