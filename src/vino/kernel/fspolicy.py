"""The file system's seams: its policy slots, their built-in read-ahead, its hooks, its counts.

``FileSystem`` (``fs.py``) asks each decision of one public attribute holding a plain
callable -- a *policy slot* -- set to the built-in method named beside it until the
kernel plugs a graft point in (``vino.kernel.points``; a test or benchmark may assign
its own, and assigning the built-in back restores it):

- ``readahead_policy(of, block) -> list[int]`` (``fs.readahead``; built-in
  ``_readahead``): consulted after every block a user ``read`` returns, with
  ``of.history`` already holding that block at index 0. Returns file block numbers
  to prefetch; ``read`` validates them (count <= ``readahead_max``, each inside the
  file, no duplicates) and loads the non-resident ones with one device request per
  contiguous run. Default: ``sequential_readahead`` (the next ``readahead_max``
  blocks, asked once per window).
- ``filter_policy(inode, file_offset, data, direction)`` (``fs.filter``; built-in
  ``_filter``, the identity): transforms a whole block in place, same length. Write
  path: the plaintext block is filtered (``FILTER_WRITE``) before it goes to the
  cache and the device. Read path: the block as it came from the device is filtered
  (``FILTER_READ``) before the user sees it. So the cache and the disk hold the
  filtered form. Holes are never filtered.
- ``on_access(inode, block, op)`` (``fs.access`` event; built-in ``_on_access``, a
  no-op): after every block of a user read (``OP_READ``, before read-ahead) or write
  (``OP_WRITE``).
- ``plain_read(of) -> bool`` (built-in ``_plain_read``): True if a user read of ``of``
  would run nothing but the three built-ins above and no hook (``FsHooks.on_behalf``
  None). Whoever plugs something into a slot that answers like a built-in when no
  graft is installed (the kernel's graft points) plugs its own answer here too.
Directory I/O is internal and bypasses all three.

The plain path (``fileio.py``, ``FileIO.pread``): a read of one whole block of an
open file whose ``plain_read`` was true at the file system's current *policy epoch*,
when the block is mapped, is served under the cache's lock alone, doing exactly what
the general path does with the built-ins: the block copied (loaded by the cache on a
miss), the cache reference recorded (a hit, read-ahead's first hit, a miss), the
history, the built-in read-ahead decided (its answer honoured inline when every block
it names is resident, which makes the prefetch a no-op; anything else, and a miss
after a sequential step, takes the general path), the counters. A hole, a partial
block and every other read take the general path. The epoch changes
(``policies_changed``) whenever any slot is assigned (``Slot``), and whenever the
pluggers' answer may change: the kernel bumps it on every graft installed or removed
and on ``unseal``. Every open file is then asked again at its next read, on the
general path. So a graft installed later sees every access from its installation on.
The plain path's cache hit has a native twin (``plainread.py``), tried first: it does
the same or nothing (then the Python plain path runs), and the tests hold the two equal.

The plain write (``FileIO._plain_overwrites``, for ``write`` / ``pwrite`` / ``pwritev``)
follows the same rule: a write of whole blocks, all mapped and inside the file, of an
open file for which ``plain_read`` is true at the current epoch (asked before the
write if the file's epoch is old) goes to the cache in one call, counted as the
general path counts it (the built-in filter and access event are no-ops; the history
and position as they leave them). Nothing of the metadata changes. A hole, a partial
block, a write that grows the file and every write of a file a graft or seal can act
on take the general path.

Hooks (``FsHooks``, given to ``mount``; each optional): ``on_close(of)`` after every
``close`` call and ``on_free(inode)`` after an inode is freed (its name unlinked and
its last open closed), so whatever was attached to them (grafts, a filter's
protection) goes with them; ``on_behalf(of)``, a context manager every ``read`` and
``write`` runs inside (the kernel's makes the grafts called in them act for the
file's opener).

Usage::

    fs = FileSystem.mount(dev, cache, clock, hooks=FsHooks(on_close=forget))
    fs.readahead_policy = lambda of, block: []   # no read-ahead from now on
    fs.readahead_policy = fs._readahead          # the built-in again

Invariant: a slot always holds a callable of its documented signature, and every
call of the decision it names goes through it (the directory's own I/O excepted).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar, overload

from vino.kernel import params

if TYPE_CHECKING:
    from vino.kernel.inode import Inode
    from vino.kernel.openfile import OpenFile

__all__ = ["NOT_PLAIN", "FsHooks", "FsStats", "Slot", "new_epoch", "sequential_readahead"]

NOT_PLAIN: Final = -1  # an open file's epoch when no plain read may be served (never an epoch)
_EPOCHS: Final[Iterator[int]] = itertools.count()  # unique across file systems
F = TypeVar("F")  # the callable type a slot holds


def new_epoch() -> int:
    """A policy epoch no file system has used."""
    return next(_EPOCHS)


class _Epoched(Protocol):
    def policies_changed(self) -> None: ...


class Slot(Generic[F]):
    """A policy slot: reads as the callable it holds; assigning one starts a new policy
    epoch of its owner (``policies_changed``), so no read takes the plain path past a
    change of policy without being asked again."""

    __slots__ = ("_attr",)

    def __init__(self) -> None:
        self._attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = "_slot_" + name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Slot[F]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> F: ...

    def __get__(self, obj: object, owner: type | None = None) -> Slot[F] | F:
        if obj is None:
            return self
        fn: F = getattr(obj, self._attr)
        return fn

    def __set__(self, obj: _Epoched, value: F) -> None:
        setattr(obj, self._attr, value)
        obj.policies_changed()


def sequential_readahead(file_blocks: int, block: int, hist: Sequence[int],
                         max_out: int) -> list[int]:
    """The default read-ahead (ABI ``fs.readahead``), as a pure function of its inputs.

    ``hist`` is most recent first and includes ``block`` at index 0. The file is read
    sequentially when the access before ``block`` was ``block - 1``. Then the next
    ``max_out`` blocks (clipped at the end of the file) are asked for -- once per
    window, not after every block: when the run has just become sequential
    (``hist[2] != block - 2``) and whenever ``block`` is a multiple of ``max_out``.
    Asking after every block would slide the window by one and turn read-ahead into
    one single-block device request per block, which saves nothing; asking once per
    window lets the missing blocks go to the device as one request. Otherwise nothing.
    """
    if max_out <= 0 or len(hist) < 2 or hist[0] != block or hist[1] != block - 1:
        return []
    just_sequential = len(hist) < 3 or hist[2] != block - 2
    if not just_sequential and block % max_out:
        return []
    return list(range(block + 1, min(block + 1 + max_out, file_blocks)))


class _WithPlain:
    """A count the plain path takes part in without touching it (one increment of
    ``plain_reads`` stands for all of them): reads as what the general path counted
    plus ``per`` for each plain read; an assignment (``+=``) keeps that sum."""

    __slots__ = ("_attr", "_per")

    def __init__(self, per: int = 1) -> None:
        self._attr = ""
        self._per = per

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = "_" + name

    def __get__(self, obj: FsStats, owner: type | None = None) -> int:
        general: int = getattr(obj, self._attr)
        return general + obj.plain_reads * self._per

    def __set__(self, obj: FsStats, value: int) -> None:
        setattr(obj, self._attr, value - obj.plain_reads * self._per)


class FsStats:
    """The file system's counts (``snapshot`` lists them all)."""

    __slots__ = ("_access_events", "_block_reads", "_bytes_read", "_filter_calls",
                 "_readahead_calls", "_reads", "block_writes", "bytes_written", "hole_reads",
                 "plain_reads", "plain_writes", "prefetch_hits", "prefetches",
                 "readahead_blocks", "writes")

    reads = _WithPlain()  # read() calls
    bytes_read = _WithPlain(params.BLOCK_SIZE)
    block_reads = _WithPlain()  # file blocks returned to users
    readahead_calls = _WithPlain()  # times readahead_policy was consulted
    filter_calls = _WithPlain()
    access_events = _WithPlain()

    def __init__(self) -> None:
        self._reads = self._bytes_read = self._block_reads = 0  # the general path's
        self._readahead_calls = self._filter_calls = self._access_events = 0
        self.writes = 0  # write() calls
        self.bytes_written = 0
        self.block_writes = 0  # file blocks written by users
        self.hole_reads = 0  # of block_reads, holes (no I/O)
        self.readahead_blocks = 0  # blocks readahead_policy asked for
        self.prefetches = 0  # blocks actually loaded by read-ahead
        self.prefetch_hits = 0  # user block reads served by a prefetched block
        # Of block_reads, those served on the plain path; each counts once here and is
        # included in reads, bytes_read (a block), block_reads, readahead_calls,
        # filter_calls and access_events (the decisions it took with the built-ins).
        self.plain_reads = 0
        # Of writes, those served on the plain write path (``FileIO._plain_overwrites``;
        # counted in the other counts as the general path counts them).
        self.plain_writes = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _FS_COUNTS}

    def __repr__(self) -> str:
        return f"FsStats({', '.join(f'{k}={v}' for k, v in self.snapshot().items())})"


_FS_COUNTS: Final = ("reads", "writes", "bytes_read", "bytes_written", "block_reads",
                     "block_writes", "hole_reads", "readahead_calls", "readahead_blocks",
                     "prefetches", "prefetch_hits", "filter_calls", "access_events",
                     "plain_reads", "plain_writes")


@dataclass(frozen=True, slots=True)
class FsHooks:
    """What a file system's host hears of it, and what user I/O runs inside (module doc)."""

    on_close: Callable[[OpenFile], None] | None = None  # after every close(of) call
    on_free: Callable[[Inode], None] | None = None  # after an inode is freed (lock held)
    # Entered around every read(of, n) and write(of, data), outside the file system's lock.
    on_behalf: Callable[[OpenFile], AbstractContextManager[object]] | None = None
