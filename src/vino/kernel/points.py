"""The kernel's graft points: declarations, buffer codecs, validators, rights.

Each function here builds one graft point over a kernel subsystem, its layout
(entry, buffer, fields, callables' types) from ``vino.kernel.layouts``, and plugs
it into that subsystem's policy slot, with the subsystem's built-in policy as the
point's default, so a subsystem never knows whether a graft answered:

| point          | target          | slot (built-in default)                           |
|----------------|-----------------|---------------------------------------------------|
| ``vm.evict``   | AddressSpace    | ``Cache.evict_policy`` (``_evict_choice``)        |
| ``sched.pick`` | ProcessGroup    | ``Scheduler.pick_policy`` (``_pick``)             |
| ``fs.readahead`` | OpenFile      | ``FileSystem.readahead_policy`` (``_readahead``)  |
| ``fs.filter``  | Inode (a file)  | ``FileSystem.filter_policy`` (``_filter``)        |
| ``fs.access``  | Inode or GLOBAL | ``FileSystem.on_access`` (``_on_access``, event)  |

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

The function points declare their codecs (``graft/codec.py``: ``Rows``, ``IndexOf``,
``Batch``, ``Elements``, ``Bytes``, ``BytesOf``), and the slots of ``vm.evict``,
``sched.pick`` and ``fs.readahead`` are the point's own dispatch
(``FunctionPoint.on_first``), so with the native fast path a call from the subsystem to
the graft and back runs no Python frame (``fs.filter``'s, its guard's): the protected call
encodes, checks and builds the answer in C, and calls the codecs' Python only for what
their plans do not cover (a refused answer among it, whose error is the Python's).

Host faults (the kernel's own exception met during a graft's call: an I/O error in
an accessor, a failed charge): eviction, scheduling, read-ahead and access events
must complete whatever happens, so those points log the fault with its traceback,
keep the graft and answer with the default (``host_faults="default"``); ``fs.filter``
raises it to the caller, failing closed, since its default (the identity) would
write or return plaintext.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from vino.errors import Forbidden, QuotaExceeded
from vino.graft import GLOBAL, EventPoint, FunctionPoint, Graft, GraftCallable, Principal
from vino.graft.codec import COUNT, Batch, Bytes, BytesOf, Elements, From, IndexOf, Rows
from vino.graft.layout import Layout
from vino.graft.locks import HostLock
from vino.graft.point import HOST_FAULTS_DEFAULT
from vino.graft.registry import Registry
from vino.graft.txn import Transaction, current, thread_state
from vino.kernel import crypto, layouts, params
from vino.kernel.cache import AddressSpace, Cache, PageInfo, Victims
from vino.kernel.errors import FilterUnavailable, InvalidArgument
from vino.kernel.fs import FileSystem, Inode, OpenFile
from vino.kernel.proc import ProcessGroup, User
from vino.kernel.sched import Scheduler, ThreadInfo

T = TypeVar("T")
UserOf = Callable[[Principal], "User | None"]

# The kernel's points, each by its target, its arguments and its answer.
EvictPoint = FunctionPoint[AddressSpace, AddressSpace, list[PageInfo], Victims]
PickPoint = FunctionPoint[ProcessGroup, ProcessGroup, list[ThreadInfo], int]
ReadaheadPoint = FunctionPoint[OpenFile, OpenFile, int, list[int]]
FilterPoint = FunctionPoint[Inode, Inode, int, bytes | bytearray, int, bytes]
AccessPoint = EventPoint[Inode, Inode, int, int, int]

# ---- layouts: every offset, count and struct comes from kernel/layouts.py -----------
_EVICT = layouts.EVICT
_EVICT_MORE_AT: Final = _EVICT.field("more").offset  # where further victims are named
_EVICT_MORE_MAX: Final = _EVICT.field("more").count or 0
_EVICT_MORE_UNIT: Final = layouts.EVICT_MORE_UNIT
# The structs by count, compiled once: k further victims.
_EVICT_MORE: Final = tuple(_EVICT.elements("more", k) for k in range(_EVICT_MORE_MAX + 1))
_PICK = layouts.PICK
_RA = layouts.READAHEAD
_RA_HIST: Final = _RA.field("hist").count or 0  # entries offered in hist
_RA_OUT: Final = _RA.field("out")  # where the graft answers, and at most how many
_RA_OUT_MAX: Final = _RA_OUT.count or 0
# The structs by count, compiled once: n answers.
_RA_ANSWERS: Final = tuple(_RA.elements("out", n) for n in range(_RA_OUT_MAX + 1))
_FILTER_DATA: Final = layouts.FILTER.field("data").offset
_ACCESS: Final = layouts.ACCESS.fields.struct()


def _callable(lay: Layout, name: str,
              fn: Callable[[Transaction, int, int], int]) -> GraftCallable:
    """The accessor ``name`` of ``lay``'s point (two i32 arguments, an i32 result), with
    the Wasm types the layout declares."""
    params_, results = lay.callables[name]
    return GraftCallable(name, params_, results, fn)


def _same_index(buf: memoryview, result: int, *args: object) -> int:
    return result


# Why a target has ended (Point.target_gone): each is marked before the kernel removes its
# grafts (fs.close sets closed, the cache sets released, a freed inode's mode is 0,
# Kernel.remove_group sets removed).
def _file_closed(target: object) -> str | None:
    return "the file is closed" if isinstance(target, OpenFile) and target.closed else None


def _aspace_released(target: object) -> str | None:
    return ("the address space is released"
            if isinstance(target, AddressSpace) and target.released else None)


def _group_removed(target: object) -> str | None:
    return ("the process group is removed"
            if isinstance(target, ProcessGroup) and target.removed else None)


def _inode_free(target: object) -> str | None:
    return "the inode is free" if isinstance(target, Inode) and target.mode == 0 else None


def _owner_or_root(kind: type[T], owner_of: Callable[[T], User],
                   ) -> Callable[[Principal, object], bool]:
    def may(principal: Principal, target: object) -> bool:
        if principal.privileged:
            return True
        if not isinstance(target, kind):  # GLOBAL (the loader checked the kind before)
            return False
        return owner_of(target).principal is principal

    return may


# ---- vm.evict -----------------------------------------------------------------------

# ``vm.evict``'s encoder: the count, then each candidate's row. Each candidate carries its
# row packed (``PageInfo.row``, made once with the PageInfo; the cache hands an unchanged
# page's PageInfo out again), so encoding is a copy of kept bytes into the buffer (in C,
# by the native protected call; codec.py).
encode_evict: Final = Rows(_EVICT, "cand", (COUNT,), From(1), "vm.evict", attr="row",
                           too_many=InvalidArgument)


def evict_point(cache: Cache, registry: Registry) -> EvictPoint:
    """``vm.evict``: which of an address space's resident pages to evict, and optionally
    which go next (a batch: ``Cache`` module doc, docs/ABI.md).

    The answer is the victim's index, plus ``EVICT_MORE_UNIT`` times the number ``k`` of
    further victims the graft wrote to ``more[0..k)``. Rejected (``InvalidResult``: the
    graft is aborted and the default picks): an index not among the ``n`` candidates,
    ``k`` above ``MAX_EVICT_MORE`` (31) or negative, a duplicate in the batch.
    """
    default = cache._evict_choice

    def encode_result(buf: memoryview, answer: Victims, aspace: AddressSpace,
                      cands: list[PageInfo]) -> int:
        if isinstance(answer, int):
            return answer
        more = answer[1:]
        if more:
            _EVICT_MORE[len(more)].pack_into(buf, _EVICT_MORE_AT, *more)
        return answer[0] + _EVICT_MORE_UNIT * len(more)

    def hint(txn: Transaction, vpn: int, important: int) -> int:
        aspace = txn.graft.target if txn.graft is not None else None
        if not isinstance(aspace, AddressSpace) or not 0 <= vpn < params.VPN_LIMIT:
            raise Forbidden(f"vm_hint: vpn {vpn} is not a page of the graft's address space")
        if vpn not in aspace.hints and len(aspace.hints) >= params.MAX_VM_HINTS:
            raise QuotaExceeded(f"vm_hint: the address space already holds "
                                f"{params.MAX_VM_HINTS} hints")
        txn.setitem(aspace.hints, vpn, bool(important))
        return 0

    def lock(txn: Transaction, lock_id: int) -> HostLock | None:
        # Not cached here: the lock table frees a name's lock once nobody uses it.
        aspace = txn.graft.target if txn.graft is not None else None
        if lock_id != 1 or not isinstance(aspace, AddressSpace):  # GLOBAL, or its target type
            return None
        return registry.locks.lock(f"aspace:{aspace.owner.pid}")

    point: EvictPoint = FunctionPoint(
        name=_EVICT.point, entry=_EVICT.entry, buffer_size=_EVICT.buffer_size,
        encode=encode_evict, decode=Batch(_EVICT, "more", 1, _EVICT_MORE_UNIT, "vm.evict"),
        encode_result=encode_result, default=default,
        callables=(_callable(_EVICT, "vm_hint", hint),),
        may_install=_owner_or_root(AddressSpace, lambda a: a.owner.user),
        target_type=AddressSpace, target_gone=_aspace_released,
        lock_resolver=lock, layout=_EVICT, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)

    def forget(g: Graft, record: object) -> None:
        """A removed graft's batches are not taken any further."""
        if g.point is point:
            cache.forget_victims(g.target if isinstance(g.target, AddressSpace) else None)

    registry.on_remove(forget)
    cache.evict_policy = point.on_first()  # the dispatch itself, no Python frame
    return point


# ---- sched.pick ---------------------------------------------------------------------

def pick_point(sched: Scheduler, registry: Registry) -> PickPoint:
    """``sched.pick``: which runnable thread of a process group runs next."""
    default = sched._pick

    # Packed afresh on every call: between two picks every runnable thread has waited (or
    # run), so no row is the same as last time (vm.evict's rows, by contrast, are packed
    # once per page state). A ThreadInfo is a named tuple of its row's values in layout
    # order: the native protected call packs them in C (codec.py's Rows).
    encode = Rows(_PICK, "thread", (COUNT,), From(1), "sched.pick", too_many=InvalidArgument)

    def set_priority(txn: Transaction, tid: int, priority: int) -> int:
        group = txn.graft.target if txn.graft is not None else None
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
        group = txn.graft.target if txn.graft is not None else None
        if lock_id != 1 or not isinstance(group, ProcessGroup):  # GLOBAL, or its target type
            return None
        return registry.locks.lock(f"pgrp:{group.pgid}")

    point: PickPoint = FunctionPoint(
        name=_PICK.point, entry=_PICK.entry, buffer_size=_PICK.buffer_size, encode=encode,
        decode=IndexOf(1, "sched.pick"), encode_result=_same_index, default=default,
        callables=(_callable(_PICK, "sched_set_priority", set_priority),),
        may_install=_owner_or_root(ProcessGroup, lambda g: g.owner),
        target_type=ProcessGroup, target_gone=_group_removed,
        lock_resolver=lock, layout=_PICK, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)
    sched.pick_policy = point.on_first()  # the dispatch itself, no Python frame
    return point


# ---- fs.readahead -------------------------------------------------------------------

def _may_read(user_of: UserOf, principal: Principal, inode: Inode) -> bool:
    from vino.kernel.fs import permits

    user = user_of(principal)
    return user is not None and permits(user, inode, read=True, write=False)


def readahead_point(fs: FileSystem, registry: Registry,
                    user_of: UserOf) -> ReadaheadPoint:
    """``fs.readahead``: which blocks of an open file to prefetch after a read."""
    default = fs._readahead
    bs = params.BLOCK_SIZE

    out_at = _RA_OUT.offset

    # The header (file blocks, the block read, max_out, n_hist) and the history, most
    # recent first (at most hist's count: the list is kept no longer than the layout's
    # count); the answer's count and blocks checked: both in C in the native protected
    # call (codec.py).
    nblocks = From(0, "inode", "size", div=bs)
    max_out = From(None, "readahead_max", obj=fs, cap=_RA_OUT_MAX)
    encode = Rows(_RA, "hist", (nblocks, From(1), max_out, COUNT), From(0, "_history"),
                  "fs.readahead")
    decode = Elements(_RA, "out", max_out, nblocks, "fs.readahead", "block",
                      "the end of the file")

    def encode_result(buf: memoryview, blocks: list[int], of: OpenFile, block: int) -> int:
        blocks = blocks[:min(fs.readahead_max, _RA_OUT_MAX)]
        if blocks:
            _RA_ANSWERS[len(blocks)].pack_into(buf, out_at, *blocks)
        return len(blocks)

    def may(principal: Principal, target: object) -> bool:
        if not isinstance(target, OpenFile):  # GLOBAL (the loader checked the kind before)
            return principal.privileged
        # The open file is its opener's: another reader may not see its history or
        # take over (replace) its policy.
        if not principal.privileged and target.user.principal is not principal:
            return False
        return _may_read(user_of, principal, target.inode)

    point: ReadaheadPoint = FunctionPoint(
        name=_RA.point, entry=_RA.entry, buffer_size=_RA.buffer_size, encode=encode,
        decode=decode, encode_result=encode_result, default=default, may_install=may,
        target_type=OpenFile, layout=_RA, host_faults=HOST_FAULTS_DEFAULT,
        target_gone=_file_closed)
    registry.declare(point)
    fs.readahead_policy = point.on_first()  # the dispatch itself, no Python frame
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

    The seal is stored in the inode (``inode.INODE_SEALED``): the file system commits it
    before the first block the filter transformed is handed on (``fileio.py``), puts
    every inode stored sealed in ``sealed`` at mount, and ``Kernel.unseal`` clears it in
    a commit of its own before the guard lets go; so a seal survives a reboot, and a
    power cut during a seal or an unseal leaves the file sealed or not.

    Invariant: ``sealed`` maps id(inode) to the inode, for live inodes only; it is never
    rebound (``filter_point``'s slot and the file system keep it, and the slot seals
    without a method call).
    """

    __slots__ = ("sealed",)

    def __init__(self, sealed: dict[int, Inode] | None = None) -> None:
        self.sealed: dict[int, Inode] = sealed if sealed is not None else {}

    def seal(self, inode: Inode) -> None:
        self.sealed[id(inode)] = inode

    def is_sealed(self, inode: Inode) -> bool:
        return id(inode) in self.sealed

    def release(self, inode: Inode) -> None:
        self.sealed.pop(id(inode), None)


def filter_point(fs: FileSystem, registry: Registry, user_of: UserOf,
                 guard: FilterGuard | None = None) -> FilterPoint:
    """``fs.filter``: a same-length transform of each block on the write and read paths.

    Busy or failed, it never falls back to the identity for a sealed file (``FilterGuard``).
    """
    default_apply = fs._filter
    lay = layouts.FILTER
    guard = guard if guard is not None else FilterGuard()

    def not_called(g: Graft) -> str:
        """Why ``g`` did not answer this call."""
        ts = thread_state()
        wait = registry.hosting.spent(ts.acting, g.principal)
        if wait:
            return (f"this operation's hosting allowance for {g.principal.name}'s grafts is "
                    f"spent (Quota.hosted_cpu_per_s); it refills in {wait:.3f} s")
        if ts.hold is not None and ts.acting in (None, g.principal):
            wait = registry.shares.of(g.principal).reopens_in_s()
            if wait:
                return (f"{g.principal.name}'s share of others' waits for the file system is "
                        f"spent (Quota.lock_wall_per_s); it refills in {wait:.3f} s")
        # The graft is not named: a reader of another user's file would learn its name.
        if g.busy():
            return "its filter graft is busy on another call"
        return "its filter graft failed on this call (see the owner's abort records)"

    def refuse(inode: Inode) -> None:
        g = point.table.get(inode) or point.table.get(GLOBAL)
        why = ("its filter graft was removed (see the owner's abort records)" if g is None else
               not_called(g))
        raise FilterUnavailable(f"inode {inode.inum}: {why}; the identity is not used in its "
                                f"place, so this read or write is refused")

    def default(inode: Inode, offset: int, data: bytes | bytearray, direction: int) -> bytes:
        if guard.sealed and guard.is_sealed(inode):
            txn = current()
            while txn is not None and txn.graft is None:  # default() runs in a child
                txn = txn.parent
            # A filter graft may answer with the identity itself (default()) on its own
            # call's inode; nobody else may: not another file's filter graft, whatever host
            # path under its call reaches this inode's slot.
            if (txn is None or txn.calling_graft.point is not point or txn.args is None
                    or txn.args[0] is not inode):
                refuse(inode)
        out = bytearray(data)
        default_apply(inode, offset, out, direction)
        return bytes(out)

    # The header (file offset, length, file id) and the block copied in, the direction and
    # length as the entry's arguments; the answer must keep the block's length: both in C
    # in the native protected call (codec.py).
    encode = Bytes(lay, "data", (From(1), COUNT, From(0, "inum")), From(2), (From(3), COUNT),
                   "fs.filter")
    decode = BytesOf(lay, "data", 2, "fs.filter")

    def encode_result(buf: memoryview, out: bytes, inode: Inode, offset: int,
                      data: bytes | bytearray, direction: int) -> int:
        buf[_FILTER_DATA:_FILTER_DATA + len(out)] = out
        return len(out)

    def may(principal: Principal, target: object) -> bool:
        if principal.privileged:
            return True
        user = user_of(principal)
        return isinstance(target, Inode) and user is not None and user.uid == target.uid

    point: FilterPoint = FunctionPoint(
        name=lay.point, entry=lay.entry, params=tuple(a.wasm for a in lay.args),
        buffer_size=lay.buffer_size, encode=encode, decode=decode,
        encode_result=encode_result, default=default, may_install=may, target_type=Inode,
        target_gone=_inode_free,
        callables=(crypto.CHACHA20,),  # the kernel's cipher, for filters that want it
        layout=lay, simd=True)  # a block transform: its ciphers may use vectors
    registry.declare(point)

    def unguarded(inode: Inode, file_offset: int, data: bytearray, direction: int) -> None:
        """The slot with no filter graft installed anywhere."""
        if guard.sealed and guard.is_sealed(inode):
            refuse(inode)
        default_apply(inode, file_offset, data, direction)

    # The block goes in as it is (encode copies it into the graft's buffer, once); it
    # changes only after the call, to the answer that passed decode (data[:] = answer).
    # An inode whose own or the GLOBAL graft is installed is sealed before the call.
    # (unguarded takes the bytearray the file system always hands the slot)
    apply = point.on_first_in_place(2, guard.sealed, unguarded)  # type: ignore[arg-type]
    fs.filter_policy = apply
    return point


# ---- fs.access (event) ------------------------------------------------------------------

def access_point(fs: FileSystem, registry: Registry, user_of: UserOf) -> AccessPoint:
    """``fs.access``: an event after every block a file system reads or writes."""
    default = fs._on_access

    def encode(buf: memoryview, inode: Inode, block: int, op: int,
               now_ns: int) -> tuple[int, ...]:
        _ACCESS.pack_into(buf, 0, inode.inum, block, op, now_ns)  # the pad is "x" bytes
        return ()

    def may(principal: Principal, target: object) -> bool:
        if principal.privileged:
            return True
        user = user_of(principal)
        return isinstance(target, Inode) and user is not None and user.uid == target.uid

    lay = layouts.ACCESS
    point: AccessPoint = EventPoint(name=lay.point, entry=lay.entry, buffer_size=lay.buffer_size,
                       encode=encode, may_install=may, target_type=Inode,
                       target_gone=_inode_free, layout=lay, host_faults=HOST_FAULTS_DEFAULT)
    registry.declare(point)

    def fire(inode: Inode, block: int, op: int) -> None:
        default(inode, block, op)
        if point.handlers:
            point(inode, inode, block, op, fs.clock.now_ns())

    fs.on_access = fire
    return point
