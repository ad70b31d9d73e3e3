"""The graft-callables: what a graft may import from module ``"vino"``, and the linking.

Every point offers the common graft-callables (``COMMON``, below), each with its
Wasm signature; a function point adds ``default``; and a point adds its own
(``Point.callables``). ``callables_of(point)`` is that list by name (the loader
checks a module's imports against it) and ``link(engine, point)`` defines each on
a fresh ``Linker`` (``Registry.declare``). One table, ``COMMON``, holds the common
callables' names, signatures and functions: nothing is matched by name elsewhere.

How a graft-callable runs: the guest calls it on its own thread, inside the
calling graft's transaction (``current_graft_txn()``): ``txn.calling_graft`` is the graft.
It reads and writes the graft's memory only through the bounds-checked
``MemoryView`` (``WildPointer`` otherwise), records the undo of anything it
changes on ``txn``, and raises ``Forbidden``/``BadArgument`` (the graft's fault:
``forbidden_call``), ``QuotaExceeded`` (``resource``) or the host's own exception
(a host fault, see ``invoke.py``). An exception leaves the guest through
``fastcall``'s trampoline, which keeps it on the calling graft's transaction
(``txn.fault``) for the protected call to classify.

The common graft-callables:
- ``now() -> i64``: the monotonic clock, in nanoseconds;
- ``log(ptr, n)``: one line into the graft's log (at most ``LOG_LINE_MAX`` bytes,
  ``LOG_LINES_PER_CALL`` lines a call; charged to ``log_bytes``);
- ``lock(id) -> i32``: take the host lock the point's ``lock_resolver`` maps ``id``
  to, until the transaction ends (-1: no such lock);
- ``kalloc(size) -> handle``, ``kfree(handle)``, ``kread``/``kwrite(handle, off,
  ptr, n) -> n``: host memory blocks, charged to ``kalloc_bytes`` and ``handles``,
  all undone on abort (-1: a bad size, handle or range);
- ``default() -> i32`` (function points): the point's built-in policy on the
  current invocation's inputs, in a nested transaction, its answer written into the
  buffer by ``encode_result``.

Invariant: a graft's code runs in exactly one ``Context`` at a time (``context_of``);
a graft-callable limited to some contexts refuses (``Forbidden``) before it runs.
Invariant: ``Graft.handles`` holds exactly the live kalloc blocks; their bytes and
count are charged to the graft's principal until freed or the graft is removed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import wasmtime

from vino import limits
from vino.errors import Forbidden, QuotaExceeded, TransactionError
from vino.graft import fastcall, fastpath
from vino.graft.fastcall import I32, I64
from vino.graft.point import ANY_CONTEXT, Context, FunctionPoint, GraftCallable, Point, TxnFn
from vino.graft.txn import _LOCAL, Transaction, begin, keep_fault

if TYPE_CHECKING:
    from vino.graft.invoke import Graft

Signature = tuple[tuple[str, ...], tuple[str, ...]]  # (params, results), Wasm types


class GuestFn(Protocol):
    """What the guest calls: its ints in, an int (or nothing) out."""

    def __call__(self, *args: int) -> int | None: ...


@dataclass(frozen=True, slots=True)
class HostCallable:
    """One common graft-callable: its import name, Wasm signature and function.

    ``fn(txn, *args)`` receives the calling graft's transaction first, then the
    guest's ints.
    """

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    fn: TxnFn

    @property
    def signature(self) -> Signature:
        return self.params, self.results


# The common graft-callables narrow ``txn.graft`` themselves (``g is None`` cannot happen
# past current_graft_txn()): Transaction.calling_graft, a property, would cost several
# attribute reads on every crossing.
_OUTSIDE: Final = "graft-callable called outside a graft invocation"


def current_graft_txn() -> Transaction:
    """The transaction of the graft whose guest is calling (raises outside any call)."""
    txn = _LOCAL.ts.txn
    if txn is None or txn.graft is None:
        raise TransactionError(_OUTSIDE)
    return txn


def context_of(g: Graft) -> Context | None:
    """The context ``g``'s code is running in now (None: it is not running)."""
    return Context.ENTRY if g._txn.args is not None else g.context


# ---- the common graft-callables -----------------------------------------------------------
def now(txn: Transaction) -> int:
    return time.monotonic_ns()


def lock(txn: Transaction, lock_id: int) -> int:
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    resolve = g.point.lock_resolver
    lk = resolve(txn, lock_id) if resolve is not None else None
    if lk is None:
        return -1
    g.registry.locks.acquire(lk, txn)
    return 0


def kalloc(txn: Transaction, size: int) -> int:
    if size <= 0:
        return -1
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    p = g.principal
    p.charge("handles", 1)
    try:
        p.charge("kalloc_bytes", size)
    except BaseException:  # whatever went wrong, the handle was not handed out
        p.release("handles", 1)
        raise
    h = g._next_handle
    g._next_handle += 1
    g.handles[h] = bytearray(size)

    def undo() -> None:
        block = g.handles.pop(h, None)
        if block is not None:
            p.release("kalloc_bytes", len(block))
            p.release("handles", 1)

    txn.record(undo)
    return h


def kfree(txn: Transaction, handle: int) -> None:
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    block = g.handles.get(handle)
    if block is None:
        raise Forbidden(f"kfree of handle {handle}, which this graft does not hold")
    del g.handles[handle]
    p = g.principal

    def release() -> None:
        p.release("kalloc_bytes", len(block))
        p.release("handles", 1)

    def undo() -> None:
        g.handles[handle] = block
        # Removed meanwhile (an enclosing transaction outlived the graft): its removal
        # gave back every handle it held, so give this one back too.
        if not g.live and g.handles.pop(handle, None) is not None:
            release()

    txn.record(undo)
    txn.defer(release)


def _span(txn: Transaction, handle: int, off: int, n: int) -> tuple[Graft, bytearray] | None:
    """The calling graft and its block ``handle`` if ``n`` bytes from ``off`` lie inside
    it; None (the graft-callable answers -1) if not."""
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    block = g.handles.get(handle)
    if block is None or off < 0 or n < 0 or off + n > len(block):
        return None
    return g, block


def kread(txn: Transaction, handle: int, off: int, ptr: int, n: int) -> int:
    span = _span(txn, handle, off, n)
    if span is None:
        return -1
    g, block = span
    g.memory.write(ptr, bytes(block[off: off + n]))
    return n


def kwrite(txn: Transaction, handle: int, off: int, ptr: int, n: int) -> int:
    span = _span(txn, handle, off, n)
    if span is None:
        return -1
    g, block = span
    data = g.memory.read(ptr, n)
    old = bytes(block[off: off + n])
    block[off: off + n] = data

    def undo() -> None:
        block[off: off + n] = old

    txn.record(undo)
    return n


def log(txn: Transaction, ptr: int, n: int) -> None:
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    n = max(0, min(n, limits.LOG_LINE_MAX))
    line = g.memory.read(ptr, n)
    if txn.start_ns != g._log_call_ns:  # a new call: a new allowance of lines
        g._log_call_ns = txn.start_ns
        g._log_calls = 0
    if g._log_calls >= limits.LOG_LINES_PER_CALL:
        g.logs_dropped += 1
        return
    p = g.principal
    if g._allowance is not None:  # hosted: another's call cannot drain it
        try:
            p.charge("log_bytes", len(line))
        except QuotaExceeded:
            g.logs_dropped += 1
            return
    else:
        p.charge("log_bytes", len(line))
    if g.context is Context.INSTALL:  # a rejected install must change nothing
        txn.record(lambda: p.release("log_bytes", len(line)))
    g._log_calls += 1
    g._keep_log(line)


def run_default(txn: Transaction) -> int:
    """``default()``: the built-in policy, in a nested transaction.

    Valid only during an entry invocation, on its inputs; anywhere else there are
    no inputs of its own, and the policy's side effects would land outside any call.
    """
    g = txn.graft
    if g is None:
        raise TransactionError(_OUTSIDE)
    point = g.point
    if not isinstance(point, FunctionPoint) or point.encode_result is None:
        raise Forbidden(f"{point.name} offers no default() to grafts")
    args = g._txn.args
    if args is None:
        raise Forbidden(f"default() is valid only during an invocation of {point.entry}; "
                        f"called from {g.context or 'outside any call'}")
    child = begin()
    try:
        result = point.default(*args)
        ret = point.encode_result(g.buffer, result, *args)
    except BaseException:
        child.abort()
        raise
    child.commit()
    return ret


# The table. Invariant: the only list of the common graft-callables and their signatures.
COMMON: Final = (
    HostCallable("now", (), (I64,), now),
    HostCallable("log", (I32, I32), (), log),
    HostCallable("lock", (I32,), (I32,), lock),
    HostCallable("kalloc", (I32,), (I32,), kalloc),
    HostCallable("kfree", (I32,), (), kfree),
    HostCallable("kread", (I32, I32, I32, I32), (I32,), kread),
    HostCallable("kwrite", (I32, I32, I32, I32), (I32,), kwrite),
)
DEFAULT: Final = HostCallable("default", (), (I32,), run_default)  # function points only

COMMON_CALLABLES: Final[dict[str, Signature]] = {c.name: c.signature for c in COMMON}
DEFAULT_CALLABLE: Final[Signature] = DEFAULT.signature


def callables_of(point: Point) -> dict[str, Signature]:
    """Every import name a graft of ``point`` may use, with its Wasm type."""
    allowed = dict(COMMON_CALLABLES)
    if isinstance(point, FunctionPoint):
        allowed[DEFAULT.name] = DEFAULT_CALLABLE
    for c in point.callables:
        allowed[c.name] = (c.params, c.results)
    return allowed


# ---- linking -------------------------------------------------------------------------------
def _through_txn(fn: TxnFn) -> GuestFn:
    def call(*args: int) -> int | None:
        return fn(current_graft_txn(), *args)

    return call


def _in_contexts(c: GraftCallable) -> GuestFn:
    fn = c.fn
    valid = c.contexts

    def checked(*args: int) -> int | None:
        txn = current_graft_txn()
        ctx = context_of(txn.calling_graft)
        if ctx not in valid:
            raise Forbidden(f"{c.name} is not valid in {ctx or 'no context'} (only in "
                            f"{', '.join(sorted(valid))})")
        return fn(txn, *args)

    return checked


def link(engine: wasmtime.Engine, point: Point) -> tuple[wasmtime.Linker, list[object]]:
    """A linker with every graft-callable of ``point`` defined, and what must outlive it.

    The trampolines are the native fast path's when it loads (``fastpath.native()``),
    else ctypes callbacks: the same contract either way."""
    linker = wasmtime.Linker(engine)
    keep: list[object] = []
    native = fastpath.native()
    for c in COMMON:
        fastcall.define_host(linker, "vino", c.name, c.params, c.results, _through_txn(c.fn),
                             keep, keep_fault, native)
    if isinstance(point, FunctionPoint):
        fastcall.define_host(linker, "vino", DEFAULT.name, DEFAULT.params, DEFAULT.results,
                             _through_txn(DEFAULT.fn), keep, keep_fault, native)
    for gc in point.callables:
        fn = _through_txn(gc.fn) if gc.contexts == ANY_CONTEXT else _in_contexts(gc)
        fastcall.define_host(linker, "vino", gc.name, gc.params, gc.results, fn, keep,
                             keep_fault, native)
    return linker, keep
