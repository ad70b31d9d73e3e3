"""A block device backed by a real file (a disk image), with a latency model.

Usage::

    clock = SimClock()
    dev = BlockDevice.create(path, nblocks=1024, profile=DISK_1996, clock=clock)
    dev.write_block(7, data)        # len(data) == dev.block_size
    dev.read_blocks(7, 4)           # one request for 4 contiguous blocks
    dev.read_into(7, buf)           # the same into a buffer of 4 blocks (no copy)
    dev.write_runs([(7, a), (90, b)])  # write_blocks of each, in order
    dev.flush(); dev.close()
    dev = BlockDevice.open(path, clock=clock)

Contract:
- Blocks are ``params.BLOCK_SIZE`` (4096) bytes, numbered ``0 .. nblocks - 1``. The
  image file is exactly ``nblocks * block_size`` bytes; nothing else is stored in it
  (the file system's superblock is the file system's business).
- Every request is bounds-checked *before* any I/O or accounting: a block outside
  the device raises ``BadBlock`` naming the block and the device size.
- Time: each request (``read_into``, which ``read_block(s)`` call, and
  ``write_blocks``, which ``write_block`` calls) costs
  ``profile.request_ns(nbytes, sequential)`` simulated nanoseconds, where
  ``sequential`` means it starts at the block right after the previous request's
  last block (the head is already there, so no seek and no rotational wait). The
  cost is added to ``stats.busy_ns`` and, if a ``SimClock`` was injected, the clock
  is advanced by it. Real wall-clock time is never used.
- Thread-safe: one lock (``_lock``) is held around each request's file I/O and
  accounting, so requests are atomic with respect to each other and the head
  position is consistent.
- ``flush()`` is the barrier: every write completed before it is durable when it
  returns (``os.fsync`` when ``durable`` is true; the crash model of
  ``vino.kernel.power`` honours it either way). ``close()`` flushes, and any later
  request raises ``BadHandle``.
- Errors: a failing read, write or flush of the image raises ``DeviceError`` with
  the host's errno. Injected faults (``vino.testing.faults``) wrap the request methods
  (``read_into`` sees every read, ``write_blocks`` every write).
- Power cuts: ``arm_crash(CrashPlan(...))`` makes the Nth write lose power with one
  of the models of ``vino.kernel.power``; from then on every request raises
  ``PowerLost``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

from vino.kernel import params, plainread
from vino.kernel.clock import SimClock
from vino.kernel.errors import BadBlock, BadHandle, DeviceError, FileExists, InvalidArgument
from vino.kernel.power import CrashPlan, PowerSwitch

__all__ = ["DISK_1996", "SSD", "BlockDevice", "DeviceStats", "DiskProfile"]

_IOV_MAX: Final = 1024  # buffers one preadv takes (POSIX's IOV_MAX on Linux)


@dataclass(frozen=True, slots=True)
class DiskProfile:
    """How long a request takes. All times in ns, rates in bytes per second."""

    name: str
    overhead_ns: int  # paid by every request (command processing)
    seek_ns: int  # average seek, paid unless the request is sequential
    rotation_ns: int  # average rotational latency, paid with the seek
    transfer_bytes_per_s: int

    def request_ns(self, nbytes: int, sequential: bool) -> int:
        """Modelled duration of one request moving ``nbytes``."""
        ns = self.overhead_ns + nbytes * 1_000_000_000 // self.transfer_bytes_per_s
        if not sequential:
            ns += self.seek_ns + self.rotation_ns
        return ns


# A mid-1990s SCSI disk: ~9 ms to reach a random block, ~5 MB/s off the platter.
DISK_1996: DiskProfile = DiskProfile(
    "disk-1996",
    overhead_ns=params.DISK_1996_OVERHEAD_NS,
    seek_ns=params.DISK_1996_SEEK_NS,
    rotation_ns=params.DISK_1996_ROTATION_NS,
    transfer_bytes_per_s=params.DISK_1996_BYTES_PER_S,
)

# A SATA SSD: ~80 us to a random block, ~500 MB/s.
SSD: DiskProfile = DiskProfile(
    "ssd",
    overhead_ns=params.SSD_OVERHEAD_NS,
    seek_ns=params.SSD_SEEK_NS,
    rotation_ns=0,
    transfer_bytes_per_s=params.SSD_BYTES_PER_S,
)


@dataclass(slots=True)
class DeviceStats:
    reads: int = 0  # read requests (a multi-block read is one request)
    writes: int = 0  # write requests
    blocks_read: int = 0
    blocks_written: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seeks: int = 0  # requests that were not sequential
    flushes: int = 0  # flush (barrier) requests
    busy_ns: int = 0  # simulated time the device spent on requests

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class BlockDevice:
    """A fixed-size array of blocks stored in a real file. Open with ``create`` or ``open``."""

    # What a plain read's load reads and writes at fixed offsets (the native twin of
    # read_into, plainread.py 3.); everything else lives in the instance dict.
    __slots__ = ("__dict__", "__weakref__", "_block_ns", "_fd", "_head", "_lock", "_power",
                 "_profile", "clock", "nblocks", "stats")

    block_size: int = params.BLOCK_SIZE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        profile: DiskProfile = DISK_1996,
        clock: SimClock | None = None,
        durable: bool = True,
    ) -> None:
        """Open an existing image. Prefer ``BlockDevice.open`` / ``BlockDevice.create``."""
        self.path = Path(path)
        self._profile = profile
        # A one-block request's cost (every cache miss is one), not sequential and
        # sequential: the profile is fixed for the device's life.
        self._block_ns = (profile.request_ns(self.block_size, False),
                          profile.request_ns(self.block_size, True))
        self.clock = clock
        self.durable = durable
        self.stats = DeviceStats()
        size = self.path.stat().st_size
        if size == 0 or size % self.block_size:
            raise InvalidArgument(
                f"{self.path}: size {size} is not a positive multiple of {self.block_size}")
        self.nblocks = size // self.block_size
        # Held around each request: file I/O + accounting. The native twin of threading's
        # lock the plain read's load tries without a Python call (plainread.rlock).
        self._lock = plainread.rlock()
        self._fd: int | None = os.open(self.path, os.O_RDWR)  # guarded by _lock
        self._head = -1  # block after the last request's end; guarded by _lock
        self._power: PowerSwitch | None = None  # an armed crash plan; guarded by _lock

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        nblocks: int,
        *,
        profile: DiskProfile = DISK_1996,
        clock: SimClock | None = None,
        durable: bool = True,
        overwrite: bool = False,
    ) -> BlockDevice:
        """Make a zero-filled image of ``nblocks`` blocks and open it.

        Raises ``FileExists`` if ``path`` exists and ``overwrite`` is false.
        """
        if nblocks <= 0 or nblocks >= 1 << 32:
            raise InvalidArgument(f"nblocks must be in 1 .. 2**32 - 1, got {nblocks}")
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise FileExists(f"disk image {path} already exists") from None
        try:
            os.ftruncate(fd, nblocks * cls.block_size)
        finally:
            os.close(fd)
        return cls(path, profile=profile, clock=clock, durable=durable)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        profile: DiskProfile = DISK_1996,
        clock: SimClock | None = None,
        durable: bool = True,
    ) -> BlockDevice:
        """Open an existing image; its size fixes ``nblocks``."""
        return cls(path, profile=profile, clock=clock, durable=durable)

    @property
    def profile(self) -> DiskProfile:
        """How long a request takes (fixed when the device is opened)."""
        return self._profile

    # ---- requests ---------------------------------------------------------------------

    def check_block(self, n: int, count: int = 1) -> None:
        """Raise ``BadBlock`` unless blocks ``n .. n + count - 1`` are all on the device."""
        if n < 0 or n >= self.nblocks:
            raise BadBlock(n, self.nblocks, str(self.path))
        if count < 1:
            raise InvalidArgument(f"block count must be >= 1, got {count}")
        if n + count > self.nblocks:
            raise BadBlock(n + count - 1, self.nblocks, str(self.path))

    def read_block(self, n: int) -> bytes:
        return self.read_blocks(n, 1)

    def read_blocks(self, n: int, count: int) -> bytes:
        """Read ``count`` contiguous blocks starting at ``n`` as one request (``read_into``)."""
        self.check_block(n, count)
        buf = bytearray(count * self.block_size)
        self.read_into(n, buf)
        return bytes(buf)

    def read_into(self, n: int, *bufs: bytearray | memoryview) -> None:
        """Read the contiguous blocks starting at ``n`` into ``bufs``, filled in order (as
        many blocks as they hold together), as one request: every read of the device is
        one of these (the cache reads straight into its page buffers). Together the
        buffers must hold a positive whole number of blocks; after an error their
        content is undefined. (A plain read's miss does the same one-block request in
        native code, ``plainread.py`` 3., unless this method is patched.)"""
        bs = self.block_size
        nbytes = len(bufs[0]) if len(bufs) == 1 else sum(len(b) for b in bufs)
        count = nbytes // bs
        if n < 0 or count < 1 or n + count > self.nblocks or nbytes % bs:
            if nbytes % bs or not count:
                raise InvalidArgument(
                    f"read_into({n}): {nbytes} bytes is not a positive multiple of {bs}")
            self.check_block(n, count)  # raises the error that names the bad block
        # Every cache miss comes here: the request's accounting is written out in place
        # (a call would cost more than it does), as in write_blocks and the native miss.
        with self._lock:
            fd = self._fd
            if fd is None:
                raise BadHandle(f"device {self.path} is closed")
            if self._power is not None:
                self._power.before_request(self.path)
            try:
                if len(bufs) <= _IOV_MAX:
                    got = os.preadv(fd, bufs, n * bs)
                else:  # more buffers than one system call takes: the same request
                    got = 0
                    for i in range(0, len(bufs), _IOV_MAX):
                        part = bufs[i:i + _IOV_MAX]
                        size = sum(len(b) for b in part)
                        step = os.preadv(fd, part, n * bs + got)
                        got += step
                        if step != size:
                            break
            except OSError as e:
                raise DeviceError(e.errno or 0, "read", n, str(self.path), str(e)) from e
            if got != nbytes:  # the image was truncated behind our back
                raise BadBlock(n + got // bs, self.nblocks, str(self.path))
            stats = self.stats
            if n == self._head:  # sequential: the head is there
                ns = self._block_ns[1] if count == 1 else self.profile.request_ns(nbytes, True)
            else:
                ns = self._block_ns[0] if count == 1 else self.profile.request_ns(nbytes, False)
                stats.seeks += 1
            self._head = n + count
            stats.busy_ns += ns
            stats.reads += 1
            stats.blocks_read += count
            stats.bytes_read += nbytes
            if self.clock is not None:
                self.clock.advance(ns)

    def write_block(self, n: int, data: bytes | bytearray | memoryview) -> None:
        if len(data) != self.block_size:
            raise InvalidArgument(
                f"write_block({n}): data is {len(data)} bytes, a block is {self.block_size}")
        self.write_blocks(n, data)

    def write_blocks(self, n: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``len(data) // block_size`` contiguous blocks starting at ``n`` as one request."""
        nbytes = len(data)
        count, rest = divmod(nbytes, self.block_size)
        if rest or not count:
            raise InvalidArgument(
                f"write_blocks({n}): {nbytes} bytes is not a positive multiple of "
                f"{self.block_size}")
        if n < 0 or n + count > self.nblocks:
            self.check_block(n, count)  # raises BadBlock
        # Every commit's write-back comes here: _open_fd's check and the request's
        # accounting are written out in place, as in read_into.
        with self._lock:
            fd = self._fd
            if fd is None:
                raise BadHandle(f"device {self.path} is closed")
            if self._power is not None:
                self._power.before_write(fd, self.path, n, data)
            try:
                written = os.pwrite(fd, data, n * self.block_size)
            except OSError as e:
                raise DeviceError(e.errno or 0, "write", n, str(self.path), str(e)) from e
            if written != nbytes:
                raise DeviceError(errno.EIO, "write", n, str(self.path),
                                  f"short write ({written} of {nbytes} bytes)")
            stats = self.stats
            sequential = n == self._head
            if not sequential:
                stats.seeks += 1
            ns = self.profile.request_ns(nbytes, sequential)
            self._head = n + count
            stats.busy_ns += ns
            if self.clock is not None:
                self.clock.advance(ns)
            stats.writes += 1
            stats.blocks_written += count
            stats.bytes_written += nbytes

    def write_runs(self, runs: list[tuple[int, bytes | bytearray]]) -> None:
        """``write_blocks(n, data)`` of each ``(n, data)`` of ``runs`` in order (each a
        request of its own, through ``write_blocks``, so a fault injected there meets
        it). Each is taken off the front of ``runs`` once written: after an error
        ``runs`` holds exactly those not written, the failed one first."""
        done = 0
        write = self.write_blocks
        try:
            for n, data in runs:
                write(n, data)
                done += 1
        finally:
            del runs[:done]

    def flush(self) -> None:
        """The barrier: every completed write is durable when this returns (``fsync``
        if the device is ``durable``; a crash model forgets nothing written before it)."""
        with self._lock:
            fd = self._open_fd()
            if self._power is not None:
                self._power.before_request(self.path)
            if self.durable:
                try:
                    os.fsync(fd)
                except OSError as e:
                    raise DeviceError(e.errno or 0, "flush", -1, str(self.path), str(e)) from e
            self.stats.flushes += 1
            if self._power is not None:
                self._power.flushed()

    # ---- power cuts (vino.kernel.power) ------------------------------------------------

    def arm_crash(self, plan: CrashPlan) -> None:
        """Lose power at the ``plan.at_write``-th write request from now (see ``power``)."""
        with self._lock:
            self._power = PowerSwitch(plan)

    def disarm_crash(self) -> None:
        """Forget the plan (only before it fired: a dead device stays dead)."""
        with self._lock:
            if self._power is not None and not self._power.dead:
                self._power = None

    @property
    def crash_writes(self) -> int:
        """Write requests since ``arm_crash`` (0 if none is armed)."""
        return self._power.writes if self._power is not None else 0

    @property
    def power_lost(self) -> bool:
        return self._power is not None and self._power.dead

    def close(self) -> None:
        """Flush and close. Idempotent; later requests raise ``BadHandle``."""
        with self._lock:
            if self._fd is None:
                return
            try:
                if self.durable and not self.power_lost:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> BlockDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BlockDevice({str(self.path)!r}, nblocks={self.nblocks}, {self.profile.name})"

    # ---- internals (caller holds _lock) ----------------------------------------------

    def _open_fd(self) -> int:
        if self._fd is None:
            raise BadHandle(f"device {self.path} is closed")
        return self._fd



# The native loads read them:
plainread.device_classes(BlockDevice, DeviceStats, DiskProfile, SimClock)


def block_runs(blocks: list[int]) -> list[tuple[int, int]]:
    """Ascending ``blocks`` as (start, count) runs of consecutive numbers: one device
    request each (``read_into`` / ``write_blocks``)."""
    runs: list[tuple[int, int]] = []
    if not blocks:
        return runs
    start = prev = blocks[0]
    for b in blocks[1:]:
        if b != prev + 1:
            runs.append((start, prev - start + 1))
            start = b
        prev = b
    runs.append((start, prev - start + 1))
    return runs
