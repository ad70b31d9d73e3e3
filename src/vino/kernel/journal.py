"""The file system's write-ahead log: metadata committed atomically, data ordered before it.

A physical redo log in the style of xv6's ``log.c`` with ext3's *ordered* mode. The
file system changes metadata blocks (superblock, bitmap, inode table, indirect
blocks, directory blocks) only through ``read`` / ``write`` here; file data goes
through the ``Cache`` as before. Usage (the file system holds its lock throughout)::

    j = Journal(dev, cache, log_start, log_blocks)
    j.replay()                          # at mount, before reading any metadata
    raw = j.read(b); j.write(b, data, offset)
    if j.room() < need: j.commit()      # before an operation that may need `need` blocks
    j.forget(b)                         # block b was freed by the running transaction
    j.commit()                          # fsync / sync / unmount / log full

The running transaction (``tx``) holds the current content of every metadata block
changed since the last commit; nothing of it reaches a home location before it
commits. ``commit`` -- the order is the whole design:

1. write back every dirty block of the device (file data: *ordered* mode -- a file's
   data reaches the device before the metadata that points to it commits);
2. ``flush`` -- barrier: that data, and the previous transaction's home writes, are
   durable before the log area is overwritten;
3. write the header and the logged blocks to the log area as one request;
4. ``flush`` -- the commit point: from here a crash replays this transaction;
5. install: the blocks go to the cache and are written to their home locations (no
   flush: until the next commit's step 2 the log still holds them).

A device error before step 4 leaves the transaction running (a later commit tries
again; the image keeps the previous one); in step 5, the committed blocks rejoin the
running transaction, so the next commit logs and installs them again.

On disk the log area is ``log_blocks`` blocks at ``log_start``: a header block, then
the copies. Header (little-endian): ``b"VINOJRNL"``, u64 sequence, u32 n, u32 CRC-32
of the header (this field zero), then n pairs ``(u32 home block, u32 CRC-32 of the
copy)``. The header is never cleared: replaying the last committed transaction again
is harmless, because no home block it names changes before the next commit replaces
it. A header or a copy that does not match its CRC (a torn or lost write of the
log) means that transaction never committed: it is ignored, and the one before it
is already installed (step 2). So is a header naming a block outside the device, in
the log area itself, or twice (no commit writes one): a hostile image's log writes
nothing outside the file system's own blocks. The sequence number is only compared
for equality: it wraps at 2**64.

Invariants:
- ``len(tx) <= capacity``; no block in ``tx`` is in the data area's free space;
- outside ``commit`` nothing in ``tx`` has been written to the device;
- the cache never holds a dirty metadata block (metadata is written only by step 5).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.device import BlockDevice, block_runs
from vino.kernel.errors import InvalidArgument, InvariantViolation
from vino.kernel.inode import LOG_TX_BLOCKS

__all__ = ["HEADER_CAPACITY", "LOG_MAGIC", "Journal", "LoggedTransaction", "read_log"]

BS = params.BLOCK_SIZE
LOG_MAGIC = b"VINOJRNL"
_HEAD = struct.Struct("<8sQII")
_ENTRY = struct.Struct("<II")
HEADER_CAPACITY = (BS - _HEAD.size) // _ENTRY.size  # blocks one transaction can log
assert HEADER_CAPACITY == LOG_TX_BLOCKS  # the geometry's limits are planned on it
SEQ_MASK = (1 << 64) - 1  # the header's u64 sequence number wraps (an image may hold any)

Buffer = bytearray | memoryview


@dataclass(frozen=True, slots=True)
class LoggedTransaction:
    """The committed transaction found in a log area."""

    seq: int
    blocks: dict[int, bytes]  # home block -> content


def read_log(device: BlockDevice, log_start: int, log_blocks: int) -> LoggedTransaction | None:
    """The transaction committed in the log area, or None if there is none intact.

    Reads only; used by ``Journal.replay`` and by ``fsck``.
    """
    head = device.read_block(log_start)
    magic, seq, n, crc = _HEAD.unpack_from(head)
    if magic != LOG_MAGIC or not 0 < n <= min(HEADER_CAPACITY, log_blocks - 1):
        return None
    end = _HEAD.size + n * _ENTRY.size
    if zlib.crc32(head[:_HEAD.size - 4] + bytes(4) + head[_HEAD.size:end]) != crc:
        return None
    body = device.read_blocks(log_start + 1, n)
    blocks: dict[int, bytes] = {}
    for i in range(n):
        home, bcrc = _ENTRY.unpack_from(head, _HEAD.size + i * _ENTRY.size)
        data = body[i * BS:(i + 1) * BS]
        if (zlib.crc32(data) != bcrc or not 0 <= home < device.nblocks
                or log_start <= home < log_start + log_blocks or home in blocks):
            return None  # a block outside the device or in the log itself: never committed
        blocks[home] = data
    return LoggedTransaction(seq, blocks)


def _pack_header(seq: int, entries: list[tuple[int, int]]) -> bytes:
    body = b"".join(_ENTRY.pack(h, c) for h, c in entries)
    head = _HEAD.pack(LOG_MAGIC, seq, len(entries), 0) + body
    crc = zlib.crc32(head)
    head = _HEAD.pack(LOG_MAGIC, seq, len(entries), crc) + body
    return head + bytes(BS - len(head))


class Journal:
    """The log of one mounted file system (see the module docstring)."""

    def __init__(self, device: BlockDevice, cache: Cache, log_start: int, log_blocks: int) -> None:
        if log_blocks < 2:
            raise InvalidArgument(f"a log needs a header and one block, got {log_blocks}")
        self.device = device
        self.cache = cache
        self.log_start = log_start
        self.log_blocks = log_blocks
        self.capacity = min(HEADER_CAPACITY, log_blocks - 1)  # blocks per transaction
        # Invariant: the running transaction; block -> its current content. A memoryview
        # is a live window on a structure the file system keeps in memory (the bitmap).
        self.tx: dict[int, Buffer] = {}
        self._views: dict[int, memoryview] = {}  # every live window ever attached
        self.seq = 0  # sequence number of the last committed transaction
        self.commits = 0  # transactions committed by this journal
        self.logged_blocks = 0  # blocks written to the log by them

    # ---- the running transaction --------------------------------------------------------

    def read(self, block: int) -> bytes | Buffer:
        """The current content of metadata block ``block`` (the transaction's, if changed)."""
        buf = self.tx.get(block)
        return buf if buf is not None else self.cache.read_block(self.device, block)

    def read_u32(self, block: int, index: int) -> int:
        """Pointer ``index`` of metadata block ``block`` (no copy of the whole block)."""
        buf = self.tx.get(block)
        if buf is not None:
            return int.from_bytes(buf[4 * index:4 * index + 4], "little")
        return int.from_bytes(self.cache.read_range(self.device, block, 4 * index, 4), "little")

    def write(self, block: int, data: bytes | Buffer, offset: int = 0) -> None:
        """Change ``len(data)`` bytes of metadata block ``block`` at ``offset``."""
        buf = self.tx.get(block)
        if buf is None:
            if offset == 0 and len(data) == BS:
                self.tx[block] = bytearray(data)
                return
            buf = self.tx[block] = bytearray(self.cache.read_block(self.device, block))
        buf[offset:offset + len(data)] = data

    def own(self, block: int) -> None:
        """Bring ``block`` into the running transaction now (reading it if need be), so
        that changing it later needs no device I/O."""
        if block not in self.tx:
            self.tx[block] = bytearray(self.cache.read_block(self.device, block))

    def attach(self, block: int, view: memoryview) -> None:
        """Log ``block`` with the live content ``view`` (a window on an in-memory table)."""
        self.tx[block] = self._views[block] = view

    def forget(self, block: int) -> None:
        """``block`` was freed by the running transaction: it is not logged or installed."""
        self.tx.pop(block, None)

    def room(self) -> int:
        """Blocks the running transaction can still take."""
        return self.capacity - len(self.tx)

    # ---- commit and replay ------------------------------------------------------------

    def commit(self) -> bool:
        """Commit the running transaction (steps 1-5 of the module docstring) and make
        every earlier write durable. Returns False if there was nothing to log (the
        data was still written back and flushed)."""
        dev, cache = self.device, self.cache
        cache.sync(dev)  # 1. ordered data
        dev.flush()  # 2. barrier
        if not self.tx:
            return False
        if len(self.tx) > self.capacity:
            raise InvariantViolation(f"journal: a transaction of {len(self.tx)} blocks does "
                                     f"not fit the log ({self.capacity})")
        homes = sorted(self.tx)
        copies = [bytes(self.tx[b]) for b in homes]
        seq = (self.seq + 1) & SEQ_MASK  # only told apart from the last: may wrap
        header = _pack_header(seq, [(b, zlib.crc32(c)) for b, c in zip(homes, copies, strict=True)])
        dev.write_blocks(self.log_start, header + b"".join(copies))  # 3. the log
        dev.flush()  # 4. the commit point
        self.seq = seq
        self.commits += 1
        self.logged_blocks += len(homes)
        self.tx.clear()
        try:
            for b, c in zip(homes, copies, strict=True):  # 5. install
                cache.write_block(dev, b, c)
            cache.sync(dev)
        except BaseException:
            # Committed, but maybe not in the cache nor at home: log them again with the
            # next transaction (the same content: harmless) so no reader sees a stale home.
            for b, c in zip(homes, copies, strict=True):
                view = self._views.get(b)
                self.tx.setdefault(b, view if view is not None else bytearray(c))
            raise
        return True

    def replay(self) -> int:
        """Install the committed transaction in the log, if any; return its block count.

        Writes the home blocks straight to the device and flushes; drops any cached
        copy of them. Idempotent (see the module docstring)."""
        found = read_log(self.device, self.log_start, self.log_blocks)
        if found is None:
            return 0
        self.seq = found.seq
        for b in found.blocks:
            self.cache.discard(self.device, b)
        for start, count in block_runs(sorted(found.blocks)):
            self.device.write_blocks(
                start, b"".join(found.blocks[start + i] for i in range(count)))
        self.device.flush()
        return len(found.blocks)

    def last_seq(self) -> int:
        """The sequence number in the log header, whatever its state (for a new mount)."""
        head = self.device.read_block(self.log_start)
        magic, seq, _, _ = _HEAD.unpack_from(head)
        return int(seq) if magic == LOG_MAGIC else 0

