"""The kernel's graft points: declarations, buffer codecs, validators, rights.

Each function here builds one graft point (docs/ABI.md gives the byte layouts)
over a kernel subsystem and wires it in place of that subsystem's policy method,
so a subsystem never knows whether a graft answered:

| point          | target          | replaces                      |
|----------------|-----------------|-------------------------------|
| ``vm.evict``   | AddressSpace    | ``Cache._evict_choice``       |
| ``sched.pick`` | ProcessGroup    | ``Scheduler._pick``           |
| ``fs.readahead`` | OpenFile      | ``FileSystem._readahead``     |
| ``fs.filter``  | Inode (a file)  | ``FileSystem._filter``        |
| ``fs.access``  | Inode or GLOBAL | ``FileSystem._on_access`` (event) |

Every point declares the kind of its target (``target_type``), checked before
anything else at load time: a ``User`` record is not a file, whatever its uid.

Rights (who may install what, checked at load time): an open file's read-ahead, the
user who opened it, if that user may read the file; a file's filter and its
``fs.access`` handlers, its owner (a handler hears every user's accesses and runs
inside their operations, so a mere reader may not attach one); an address space or
process group, its owner; a global graft, root. Accessors check
again at run time against the graft's own target, so a graft can never touch another
user's pages or threads.

Validators reject before anything is applied: the subsystem receives only answers
that passed, so a bad answer can never half-happen.

Host faults (the kernel's own exception met during a graft's call: an I/O error in
an accessor, a failed charge): eviction, scheduling, read-ahead and access events
must complete whatever happens, so those points log the fault with its traceback,
keep the graft and answer with the default (``host_faults="default"``); ``fs.filter``
raises it to the caller, failing closed, since its default (the identity) would
write or return plaintext.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from vino.errors import Forbidden, InvalidResult, QuotaExceeded
from vino.graft import GLOBAL, I32, EventPoint, FunctionPoint, GraftCallable, Principal
from vino.graft.locks import HostLock
from vino.graft.point import HOST_FAULTS_DEFAULT
from vino.graft.registry import Registry
from vino.graft.txn import Transaction, current
from vino.kernel import layouts, params
from vino.kernel.cache import AddressSpace, Cache, PageInfo
from vino.kernel.errors import FilterUnavailable
from vino.kernel.fs import FileSystem, Inode, OpenFile
from vino.kernel.proc import ProcessGroup, User
from vino.kernel.sched import MAX_PICK_CANDIDATES, Scheduler, ThreadInfo

UserOf = Callable[[Principal], "User | None"]

# ---- layouts (docs/ABI.md) --------------------------------------------------------
EVICT_HEADER: Final = struct.Struct("<II")
EVICT_ROW: Final = struct.Struct("<IIIIQ")
EVICT_MAX: Final = params.MAX_EVICT_CANDIDATES
EVICT_BUFFER: Final = EVICT_HEADER.size + EVICT_ROW.size * EVICT_MAX

SCHED_HEADER: Final = struct.Struct("<II")
SCHED_ROW: Final = struct.Struct("<IiQQII")
SCHED_BUFFER: Final = SCHED_HEADER.size + SCHED_ROW.size * MAX_PICK_CANDIDATES

RA_HIST: Final = params.READAHEAD_HISTORY
RA_OUT_MAX: Final = params.READAHEAD_MAX_OUT_LIMIT
RA_HEADER: Final = struct.Struct("<IIII")  # file_blocks, block, max_out, n_hist
RA_OUT_OFFSET: Final = 80
RA_BUFFER: Final = 256

FILTER_HEADER: Final = struct.Struct("<QII")  # file_offset, len, file_id
FILTER_DATA: Final = 16
FILTER_BUFFER: Final = FILTER_DATA + params.BLOCK_SIZE
FILTER_WRITE: Final = 0
FILTER_READ: Final = 1

ACCESS_LAYOUT: Final = struct.Struct("<IIIIQ")  # file_id, block, op, pad, time_ns
ACCESS_BUFFER: Final = ACCESS_LAYOUT.size

# One precompiled struct per candidate count, so a buffer is packed in one call.
_evict_rows: dict[int, struct.Struct] = {}
_sched_rows: dict[int, struct.Struct] = {}
_ra_inputs: dict[int, struct.Struct] = {}  # fs.readahead header + n history entries
_u32s: dict[int, struct.Struct] = {}


def _rows(cache: dict[int, struct.Struct], header: str, row: str, n: int) -> struct.Struct:
    s = cache.get(n)
    if s is None:
        s = cache[n] = struct.Struct("<" + header + row * n)
    return s


def _u32_array(n: int) -> struct.Struct:
    s = _u32s.get(n)
    if s is None:
        s = _u32s[n] = struct.Struct(f"<{n}I")
    return s


def _index_result(kind: str) -> Callable[..., int]:
    def decode(buf: memoryview, ret: int, target: Any, rows: list[Any]) -> int:
        if not 0 <= ret < len(rows):
            raise InvalidResult(f"{kind}: index {ret} is not one of the {len(rows)} candidates")
        return ret

    return decode


def _same_index(buf: memoryview, result: int, *args: Any) -> int:
    return result


def _owner_or_root(owner_of: Callable[[Any], User]) -> Callable[[Principal, Any], bool]:
    def may(principal: Principal, target: Any) -> bool:
        if principal.privileged:
            return True
        if target is GLOBAL:
            return False
        return owner_of(target).principal is principal

    return may


# ---- vm.evict -----------------------------------------------------------------------

def evict_point(cache: Cache, registry: Registry) -> FunctionPoint[int]:
    """``vm.evict``: which of an address space's resident pages to evict."""
    default = cache._evict_choice

    def encode(buf: memoryview, aspace: AddressSpace, cands: list[PageInfo]) -> tuple[int, ...]:
        n = len(cands)
        flat: list[int] = [n]
        add = flat.extend  # the pads are "x" bytes in the struct: 4 values a row, one pack
        for c in cands:
            add((c.page_id, c.vpn, c.flags, c.last_use))
        _rows(_evict_rows, "I4x", "III4xQ", n).pack_into(buf, 0, *flat)
        return ()

    def hint(txn: Transaction, vpn: int, important: int) -> int:
        aspace = txn.graft.target
        if not isinstance(aspace, AddressSpace) or not 0 <= vpn < params.VPN_LIMIT:
            raise Forbidden(f"vm_hint: vpn {vpn} is not a page of the graft's address space")
        if vpn not in aspace.hints and len(aspace.hints) >= params.MAX_VM_HINTS:
            raise QuotaExceeded(f"vm_hint: the address space already holds "
                                f"{params.MAX_VM_HINTS} hints")
        txn.setitem(aspace.hints, vpn, bool(important))
        return 0

    def lock(txn: Transaction, lock_id: int) -> HostLock | None:
        # Not cached here: the lock table frees a name's lock once nobody uses it.
        aspace = txn.graft.target
        if lock_id != 1 or aspace is GLOBAL:
            return None
        return registry.locks.lock(f"aspace:{aspace.owner.pid}")

    point = FunctionPoint[int](
        name="vm.evict", entry="vino_evict", buffer_size=EVICT_BUFFER, encode=encode,
        decode=_index_result("vm.evict"), encode_result=_same_index, default=default,
        callables=(GraftCallable("vm_hint", (I32, I32), (I32,), hint),),
        may_install=_owner_or_root(lambda a: a.owner.user), target_type=AddressSpace,
        lock_resolver=lock, layout=layouts.EVICT, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)
    def choose(aspace: AddressSpace, candidates: list[PageInfo]) -> int:
        return point(aspace, aspace, candidates)

    cache._evict_choice = choose  # type: ignore[method-assign]
    return point


# ---- sched.pick ---------------------------------------------------------------------

def pick_point(sched: Scheduler, registry: Registry) -> FunctionPoint[int]:
    """``sched.pick``: which runnable thread of a process group runs next."""
    default = sched._pick

    def encode(buf: memoryview, group: ProcessGroup, rows: list[ThreadInfo]) -> tuple[int, ...]:
        n = len(rows)
        flat: list[int] = [n]
        add = flat.extend
        for r in rows:
            add((r.tid, r.priority, r.cpu_ns, r.waited_ns, r.flags))
        _rows(_sched_rows, "I4x", "IiQQI4x", n).pack_into(buf, 0, *flat)
        return ()

    def set_priority(txn: Transaction, tid: int, priority: int) -> int:
        group = txn.graft.target
        # One answer for "not yours" and "does not exist": a graft must not learn which
        # thread ids other groups use.
        try:
            thread = sched.thread(tid)
        except LookupError:
            thread = None
        if thread is None or group is GLOBAL or thread.group is not group:
            raise Forbidden(f"sched_set_priority: thread {tid} is not in the graft's group")
        old = sched.set_priority(tid, priority)

        def undo() -> None:
            sched.set_priority(tid, old)

        txn.record(undo)
        return old

    def lock(txn: Transaction, lock_id: int) -> HostLock | None:
        group = txn.graft.target
        if lock_id != 1 or group is GLOBAL:
            return None
        return registry.locks.lock(f"pgrp:{group.pgid}")

    point = FunctionPoint[int](
        name="sched.pick", entry="vino_pick", buffer_size=SCHED_BUFFER, encode=encode,
        decode=_index_result("sched.pick"), encode_result=_same_index, default=default,
        callables=(GraftCallable("sched_set_priority", (I32, I32), (I32,), set_priority),),
        may_install=_owner_or_root(lambda g: g.owner), target_type=ProcessGroup,
        lock_resolver=lock, layout=layouts.PICK, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)
    def pick(group: ProcessGroup, runnable: list[ThreadInfo]) -> int:
        return point(group, group, runnable)

    sched._pick = pick  # type: ignore[method-assign]
    return point


# ---- fs.readahead -------------------------------------------------------------------

def _may_read(user_of: UserOf, principal: Principal, inode: Inode) -> bool:
    from vino.kernel.fs import permits

    user = user_of(principal)
    return user is not None and permits(user, inode, read=True, write=False)


def readahead_point(fs: FileSystem, registry: Registry,
                    user_of: UserOf) -> FunctionPoint[list[int]]:
    """``fs.readahead``: which blocks of an open file to prefetch after a read."""
    default = fs._readahead
    bs = params.BLOCK_SIZE

    def inputs(of: OpenFile, block: int) -> tuple[int, int, list[int]]:
        return (-(-of.inode.size // bs), min(fs.readahead_max, RA_OUT_MAX),
                of.history[:RA_HIST])

    def encode(buf: memoryview, of: OpenFile, block: int) -> tuple[int, ...]:
        hist = of._history  # most recent first; the deque's maxlen is RA_HIST
        n = len(hist)
        if n > RA_HIST:
            hist = deque(itertools.islice(hist, RA_HIST))
            n = RA_HIST
        _rows(_ra_inputs, "IIII", "I", n).pack_into(
            buf, 0, -(-of.inode.size // bs), block, min(fs.readahead_max, RA_OUT_MAX), n, *hist)
        return ()

    def decode(buf: memoryview, count: int, of: OpenFile, block: int) -> list[int]:
        max_out = min(fs.readahead_max, RA_OUT_MAX)
        if not 0 <= count <= max_out:
            raise InvalidResult(f"fs.readahead: {count} blocks asked for; at most {max_out}")
        if count == 0:
            return []
        out = list(_u32_array(count).unpack_from(buf, RA_OUT_OFFSET))
        nblocks = -(-of.inode.size // bs)
        if max(out) >= nblocks:
            b = next(b for b in out if b >= nblocks)
            raise InvalidResult(f"fs.readahead: block {b} is past the end of the file "
                                f"({nblocks} blocks)")
        if len(set(out)) != count:
            raise InvalidResult("fs.readahead: duplicate blocks")
        return out

    def encode_result(buf: memoryview, blocks: list[int], of: OpenFile, block: int) -> int:
        _, max_out, _ = inputs(of, block)
        blocks = blocks[:max_out]
        if blocks:
            _u32_array(len(blocks)).pack_into(buf, RA_OUT_OFFSET, *blocks)
        return len(blocks)

    def may(principal: Principal, target: Any) -> bool:
        if target is GLOBAL:
            return principal.privileged
        # The open file is its opener's: another reader may not see its history or
        # take over (replace) its policy.
        if not principal.privileged and target.user.principal is not principal:
            return False
        return _may_read(user_of, principal, target.inode)

    point = FunctionPoint[list[int]](
        name="fs.readahead", entry="vino_readahead", buffer_size=RA_BUFFER, encode=encode,
        decode=decode, encode_result=encode_result, default=default, may_install=may,
        target_type=OpenFile, layout=layouts.READAHEAD, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)
    fs._readahead = lambda of, block: point(of, of, block)  # type: ignore[method-assign]
    return point


# ---- fs.filter ------------------------------------------------------------------------

class FilterGuard:
    """Which files a filter graft protects: for those the point fails closed.

    A filter's stored form is the graft's own (ciphertext, say): the identity default
    is not an equivalent answer, so it must never stand in for the graft. From the
    first call dispatched to a filter graft for an inode (its own or the GLOBAL one),
    the inode is *sealed*: whenever no filter graft can answer for it (removed after a
    failure, removed by its owner, busy past the bounded wait) its reads and writes
    raise ``FilterUnavailable`` instead, so no plaintext reaches the device and no
    stored form reaches a reader as if it were the data. The seal is broken only by its
    owner (``Kernel.unseal``) or when the inode is freed.

    Invariant: ``sealed`` maps id(inode) to the inode, for live inodes only.
    """

    __slots__ = ("sealed",)

    def __init__(self) -> None:
        self.sealed: dict[int, Inode] = {}

    def seal(self, inode: Inode) -> None:
        self.sealed[id(inode)] = inode

    def is_sealed(self, inode: Inode) -> bool:
        return id(inode) in self.sealed

    def release(self, inode: Inode) -> None:
        self.sealed.pop(id(inode), None)


def filter_point(fs: FileSystem, registry: Registry, user_of: UserOf,
                 guard: FilterGuard | None = None) -> FunctionPoint[bytes]:
    """``fs.filter``: a same-length transform of each block on the write and read paths.

    Busy or failed, it never falls back to the identity for a sealed file (``FilterGuard``).
    """
    default_apply = fs._filter
    guard = guard if guard is not None else FilterGuard()

    def refuse(inode: Inode) -> None:
        g = point.table.get(inode) or point.table.get(GLOBAL)
        why = ("its filter graft was removed (see the owner's abort records)" if g is None else
               f"its filter graft {g.name!r} is busy on another call" if g.busy() else
               f"its filter graft {g.name!r} failed on this call (see the owner's abort records)")
        raise FilterUnavailable(f"inode {inode.inum}: {why}; the identity is not used in its "
                                f"place, so this read or write is refused")

    def default(inode: Inode, offset: int, data: bytes, direction: int) -> bytes:
        if guard.sealed and guard.is_sealed(inode):
            txn = current()
            while txn is not None and txn.graft is None:  # default() runs in a child
                txn = txn.parent
            # A filter graft may answer with the identity itself (default()); nobody else may.
            if txn is None or txn.graft.point is not point:
                refuse(inode)
        out = bytearray(data)
        default_apply(inode, offset, out, direction)
        return bytes(out)

    def encode(buf: memoryview, inode: Inode, offset: int, data: bytes,
               direction: int) -> tuple[int, ...]:
        n = len(data)
        FILTER_HEADER.pack_into(buf, 0, offset, n, inode.inum)
        buf[FILTER_DATA:FILTER_DATA + n] = data
        return (direction, n)

    def decode(buf: memoryview, ret: int, inode: Inode, offset: int, data: bytes,
               direction: int) -> bytes:
        if ret != len(data):
            raise InvalidResult(f"fs.filter: returned length {ret}, the block has {len(data)}")
        return bytes(buf[FILTER_DATA:FILTER_DATA + ret])

    def encode_result(buf: memoryview, out: bytes, inode: Inode, offset: int, data: bytes,
                      direction: int) -> int:
        buf[FILTER_DATA:FILTER_DATA + len(out)] = out
        return len(out)

    def may(principal: Principal, target: Any) -> bool:
        if principal.privileged:
            return True
        user = user_of(principal)
        return target is not GLOBAL and user is not None and user.uid == target.uid

    point = FunctionPoint[bytes](
        name="fs.filter", entry="vino_filter", params=(I32, I32), buffer_size=FILTER_BUFFER,
        encode=encode, decode=decode, encode_result=encode_result, default=default,
        may_install=may, target_type=Inode, layout=layouts.FILTER)
    registry.declare(point)

    def apply(inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        table = point.table
        if not table:
            if guard.sealed and guard.is_sealed(inode):
                refuse(inode)
            default_apply(inode, file_offset, data, direction)
            return
        if inode in table or GLOBAL in table:
            guard.seal(inode)
        data[:] = point(inode, inode, file_offset, bytes(data), direction)

    fs._filter = apply  # type: ignore[method-assign]
    return point


# ---- fs.access (event) ------------------------------------------------------------------

def access_point(fs: FileSystem, registry: Registry, user_of: UserOf) -> EventPoint:
    """``fs.access``: an event after every block a file system reads or writes."""
    default = fs._on_access

    def encode(buf: memoryview, inode: Inode, block: int, op: int,
               now_ns: int) -> tuple[int, ...]:
        ACCESS_LAYOUT.pack_into(buf, 0, inode.inum, block, op, 0, now_ns)
        return ()

    def may(principal: Principal, target: Any) -> bool:
        if principal.privileged:
            return True
        user = user_of(principal)
        return target is not GLOBAL and user is not None and user.uid == target.uid

    point = EventPoint(name="fs.access", entry="vino_on_access", buffer_size=ACCESS_BUFFER,
                       encode=encode, may_install=may, target_type=Inode,
                       layout=layouts.ACCESS, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)

    def fire(inode: Inode, block: int, op: int) -> None:
        default(inode, block, op)
        if point.handlers:
            point(inode, inode, block, op, fs.clock.now_ns())

    fs._on_access = fire  # type: ignore[method-assign]
    return point
