"""The WebAssembly sandbox: one engine, one epoch ticker, one store per graft.

- One ``wasmtime.Engine`` per ``Sandbox`` with epoch interruption on; compiled
  modules of installed grafts are cached by content hash (``keep``) so identical
  grafts share code; each principal keeps at most ``MODULE_CACHE_SHARE`` entries
  and, past ``MODULE_CACHE_ENTRIES`` in all, the principal keeping the most loses
  its oldest, so one principal's installs cannot evict another's entries;
  ``compile`` itself caches nothing, so a module the loader refuses after
  compiling it leaves nothing behind. Compiling runs on the
  calling thread (parallel compilation off): its CPU time is the installing
  principal's, measured and charged, and one install cannot take every core.
- One ``Store`` + instance per graft (``Instance``): its memory limit is a store
  limit, its CPU limit an epoch deadline. A single ticker thread (native when it
  can be built, see ``ticker.py``) bumps the engine's epoch every ``tick_s``; at
  each tick past a running store's deadline the store's callback asks the
  current transaction whether to go on (budget left, not doomed) or stop. The
  callback pushes the deadline one tick further each time; ``Graft.invoke`` also
  renews it at most once per tick, so an idle store does not meet a stale one.
- Linear memory never moves (``memory_may_move = False``), so a graft's
  buffer window, computed once at install, stays valid.
- Optionally (``Pool``) instances come from wasmtime's pooling allocator: slots
  reserved once, each wholly accessible (no guard region, reservation = the
  slot's memory), so neighbouring slots' mappings merge and the process's
  mapping count stays flat. The default allocator maps each instance's memory
  separately (two mappings each), and Linux allows 65,530 mappings per process:
  about 32,000 grafts. The price of a pool: bounds checks compiled into the code
  (there is no guard region to catch them), a fixed capacity, and a cap on each
  graft's linear memory.

The engine enables only the WebAssembly features in ``WASM_FEATURES`` (the
MVP plus what the C SDK's output needs); every other proposal -- GC, exception
handling, threads and shared memory, function references, memory64, multiple
memories, tail calls, relaxed SIMD, ... -- is off, so a module using one fails
validation and the loader names the feature (``feature_of``). SIMD (128-bit
vectors) is on in the engine but only for the points that declare it
(``Point.simd``: block transforms such as ``fs.filter``'s ciphers): for any other
point the loader validates the module again with SIMD off (``refuse_simd``), so it
is refused there exactly as a disabled feature is. None of the enabled ones lets
a graft make the host hold memory outside its linear memory and its one table,
both capped per store and charged to the principal (a vector lives in locals and
on the operand stack, inside the capped native stack, like any other value).

Isolation (docs/DESIGN.md §5.1): a graft sees only its own linear memory; the host
copies bytes in and out of it, bounds-checked, and never hands out a host
pointer.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import threading
import time
import weakref
from dataclasses import dataclass
from types import ModuleType
from typing import Final

import wasmtime

from vino import limits
from vino.errors import AllowanceSpent, InvalidDeclaration, QuotaExceeded, TimedOut
from vino.graft import fastcall, fastpath, stack
from vino.graft.store import EpochCallback, Instance
from vino.graft.ticker import Ticker, make_ticker
from vino.graft.txn import keep_fault, thread_state


class _GcTime(threading.local):
    """CPU time this thread has spent in Python's cyclic garbage collector."""

    total_ns = 0
    start_ns = 0


_GC: Final = _GcTime()


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _GC.start_ns = time.thread_time_ns()
    elif _GC.start_ns:
        _GC.total_ns += time.thread_time_ns() - _GC.start_ns
        _GC.start_ns = 0


gc.callbacks.append(_on_gc)


# One epoch tick: a call meets its first tick at most this long after it started.
_TICK_NS: Final = int(limits.EPOCH_TICK_S * 1e9)
_HOLD_NS: Final = int(limits.HOLD_GRAFT_WALL_S * 1e9)  # a principal's whole allowance per hold
_wall_ns = time.perf_counter_ns  # the callback's wall clock (tests inject a late one)


def _net_cpu_ns() -> int:
    """The thread's CPU time less its time in the garbage collector."""
    return time.thread_time_ns() - _GC.total_ns


def _decide() -> bool:
    """Epoch-tick callback body: go on unless the current call is over budget or doomed.

    The budget is the thread's CPU time from the call's first tick, not wall time: this
    callback needs the GIL, and time spent waiting for it while host threads hold it is
    not the graft running (wall time would abort well-behaved grafts of busy hosts).
    Time in the cyclic garbage collector is left out too: a collection that host
    allocations trigger inside a graft-callable is the host's, not the graft's.
    Wall time is bounded only while the host holds a shared lock (``hold.py``):
    there others wait for it, so ``wall_deadline_ns`` stops the call. The call's first
    tick comes at most one tick after it started; what it waited past that before this
    callback ran -- the GIL behind busy host threads, the scheduler of a loaded machine
    -- is not the graft running, so it is not charged (``wall_exempt_ns``): a call that
    returns within a tick is never stopped or charged for how busy the host is. From
    its second tick on a call has run past a tick, and all its wall time counts.
    """
    ts = thread_state()
    txn = ts.txn
    if txn is None:
        return True
    if txn.doomed() is not None:
        return False
    first = txn.cpu_call_ns != txn.start_ns  # the first tick of this call
    if first:
        txn.cpu_call_ns = txn.start_ns
        txn.cpu_start_ns = _net_cpu_ns() if txn.budget_ns else 0
    if txn.wall_deadline_ns:
        now = _wall_ns()
        if first:
            txn.wall_exempt_ns = max(0, now - txn.start_ns - _TICK_NS)
        if now - txn.wall_exempt_ns > txn.wall_deadline_ns:
            own = now - txn.wall_exempt_ns - txn.start_ns  # this call's charged wall time
            # Who spent the allowance: this graft (this call and its own earlier calls in
            # the hold) or the principal's other grafts. The one that spent at least as
            # much as the others is at fault -- one long call or many short ones -- and
            # is blamed; a graft stopped by what the others spent is stopped but kept.
            hold = ts.hold
            mine = own + (hold.own_ns(txn.graft) if hold is not None else 0)
            others = max(0, _HOLD_NS - (txn.wall_deadline_ns - txn.start_ns) - (mine - own))
            if mine >= others:
                txn.fault = TimedOut(
                    f"ran past its principal's wall-time allowance of "
                    f"{limits.HOLD_GRAFT_WALL_S * 1e3:.0f} ms while the host held a shared lock")
            else:
                txn.fault = AllowanceSpent(
                    f"stopped after {own / 1e6:.1f} ms: its principal's wall-time allowance "
                    f"of {limits.HOLD_GRAFT_WALL_S * 1e3:.0f} ms while the host held a shared "
                    f"lock was spent, {others / 1e6:.1f} ms of it by the principal's other "
                    f"calls in this hold (not this graft's fault: kept)")
            return False
    if txn.budget_ns and not first and _net_cpu_ns() - txn.cpu_start_ns > txn.budget_ns:
        txn.fault = TimedOut(f"ran past its CPU budget of {txn.budget_ns / 1e6:.1f} ms")
        return False
    return True


# The engine's WebAssembly proposals: True = enabled, with why; everything absent is off.
# Always on in wasmtime and not switchable: mutable globals, sign extension, saturating
# float-to-int conversion (all part of WebAssembly 2.0, and emitted by the C SDK).
WASM_FEATURES: Final = {
    "wasm_bulk_memory": True,  # memory.copy/fill: the C SDK's output uses them (memcpy)
    "wasm_multi_value": True,  # block types with several results: emitted by the SDK's clang
    # The engine cannot be built without it; a graft can use it only on its one table
    # (table.grow is held by the store's table_elements limit).
    "wasm_reference_types": True,
    # 128-bit vectors: deterministic, held in locals like any value; ChaCha20 over four
    # blocks at once runs 5x faster than scalar (chacha20_filter.c). Only for points that
    # declare it (Point.simd): the loader refuses it for the others (refuse_simd).
    "wasm_simd": True,
    # Results that differ between machines (fused multiply-add or not, ...): off.
    "wasm_relaxed_simd": False,
    "wasm_threads": False,  # shared memory and atomics
    "wasm_tail_call": False,
    "wasm_multi_memory": False,
    "wasm_memory64": False,
    "wasm_gc": False,  # GC structs and arrays would live outside linear memory, uncharged
    "wasm_function_references": False,
    "wasm_exceptions": False,
    "wasm_wide_arithmetic": False,
    "wasm_custom_page_sizes": False,
    "wasm_stack_switching": False,
    "wasm_component_model": False,
}

SIMD: Final = "SIMD (vector instructions)"  # the feature's name in a refusal

# What wasmtime's validator says when a module uses a disabled feature -> its name.
_FEATURE_WORDS: Final = (
    ("relaxed SIMD", "relaxed SIMD (vector instructions whose results vary by machine)"),
    ("SIMD", SIMD),
    ("threads", "threads (shared memory and atomics)"),
    ("shared memor", "threads (shared memory and atomics)"),
    ("tail call", "tail calls"),
    ("multiple memories", "multiple memories"),
    ("memory64", "memory64 (64-bit memories)"),
    ("gc feature", "GC (structs and arrays)"),
    ("gc proposal", "GC (structs and arrays)"),
    ("function references", "typed function references"),
    ("exceptions", "exception handling"),
    ("wide arithmetic", "wide arithmetic"),
    ("custom page sizes", "custom page sizes"),
    ("stack switching", "stack switching"),
)


# Bytes every module using SIMD contains: the v128 value type (in a signature, a local,
# a global or a block type) and the prefix of every vector instruction. A module with
# neither cannot use SIMD, so only the others are validated again with SIMD off.
_V128_TYPE: Final = b"\x7b"
_SIMD_PREFIX: Final = b"\xfd"


@functools.cache
def _no_simd_engine() -> wasmtime.Engine:
    """An engine with SIMD off, for validating only (built on first use, then shared)."""
    cfg = wasmtime.Config()
    for feature, on in WASM_FEATURES.items():
        setattr(cfg, feature, on)
    cfg.wasm_simd = False
    return wasmtime.Engine(cfg)


def may_use_simd(wasm: bytes) -> bool:
    """False only if ``wasm`` cannot use SIMD (it has no byte that SIMD needs)."""
    return _V128_TYPE in wasm or _SIMD_PREFIX in wasm


def refuse_simd(wasm: bytes) -> None:
    """Raise ``WasmtimeError`` (about SIMD, see ``feature_of``) if ``wasm`` uses SIMD or
    is invalid, as the engine would with SIMD off; the loader calls it, before
    ``Sandbox.compile``, for a point that does not allow SIMD (``Point.simd``), whether
    or not a point that does has the same module cached. Costs nothing for a module
    without a byte SIMD needs; for the others, a validation (tens of µs)."""
    if may_use_simd(wasm):
        wasmtime.Module.validate(_no_simd_engine(), wasm)


def feature_of(message: str) -> str | None:
    """The disabled WebAssembly feature a validation error is about, if it is about one."""
    for words, feature in _FEATURE_WORDS:
        if words.lower() in message.lower():
            return feature
    return None


@dataclass(frozen=True, slots=True)
class Pool:
    """Pre-reserved instance slots (wasmtime's pooling allocator), for many grafts.

    ``slots``: grafts that may be installed at once; installing one more is
    rejected (``GraftRejected``: instantiation failed) until one is removed.
    ``memory_bytes``: linear memory per graft (a multiple of the Wasm page): a
    graft whose initial memory is larger is rejected at install; one that tries
    to grow past it sees ``memory.grow`` fail (-1), as at any memory limit.
    """

    slots: int
    memory_bytes: int = limits.WASM_PAGE
    # Slots one principal may hold at once (None: slots // POOL_SHARES, at least 1), so
    # that one principal cannot fill the pool; a host with one tenant gives it all.
    share: int | None = None

    @property
    def per_principal(self) -> int:
        return self.share if self.share is not None else max(1, self.slots // limits.POOL_SHARES)

    def __post_init__(self) -> None:
        if self.share is not None and self.share <= 0:
            raise InvalidDeclaration(f"a pool share must be positive, not {self.share}")
        if self.slots <= 0:
            raise InvalidDeclaration(f"a pool needs at least one slot, not {self.slots}")
        if self.memory_bytes <= 0 or self.memory_bytes % limits.WASM_PAGE:
            raise InvalidDeclaration(f"pool memory_bytes {self.memory_bytes} is not a positive "
                                     f"multiple of {limits.WASM_PAGE}")


class Sandbox:
    """Engine, ticker and module cache shared by every graft of a registry."""

    def __init__(self, tick_s: float = limits.EPOCH_TICK_S,
                 max_wasm_stack: int = limits.MAX_WASM_STACK, pool: Pool | None = None,
                 native_ticker: bool | None = None, compiler: str = "cranelift",
                 max_grafts: int | None = None) -> None:
        cfg = wasmtime.Config()
        for feature, on in WASM_FEATURES.items():
            setattr(cfg, feature, on)
        cfg.gc_support = False  # no GC heap at all: nothing outside linear memory to charge
        cfg.shared_memory = False
        cfg.epoch_interruption = True
        cfg.memory_may_move = False
        cfg.max_wasm_stack = max_wasm_stack
        fastcall.use_compiler(cfg, compiler)  # cranelift at "speed" unless told otherwise
        cfg.parallel_compilation = False
        if pool is not None:
            fastcall.use_pooling(cfg, slots=pool.slots, memory_bytes=pool.memory_bytes,
                                 table_elements=limits.MAX_TABLE_ELEMENTS)
            cfg.memory_reservation = pool.memory_bytes
            cfg.memory_guard_size = 0
            cfg.memory_reservation_for_growth = 0
        self.pool = pool
        # Invariant: live == sum(_held.values()) == instances admitted and not yet let go.
        self.max_grafts = max_grafts if max_grafts is not None else (
            pool.slots if pool is not None else limits.MAX_GRAFTS_DEFAULT_ALLOCATOR)
        self.live = 0
        self._held: dict[int, int] = {}  # id(principal) -> its live instances
        self.engine = wasmtime.Engine(cfg)
        # Every entry into Wasm checks that this much native stack is left (stack.py).
        self.stack_need = max_wasm_stack + limits.HOST_STACK_RESERVE
        self.stack_guard = stack.guard()
        if self.stack_guard is not None:
            self.stack_guard.require(self.stack_need)
        # The native ticker when it can be built (None: unless VINO_TICKER=python).
        self.ticker: Ticker
        self.ticker, self.ticker_fallback = make_ticker(self.engine, tick_s, native_ticker)
        # Guests entered without releasing the GIL (fastpath.py): only with the native
        # ticker, which ends a runaway guest without the GIL; None: ctypes calls.
        self.fastpath: ModuleType | None = (fastpath.native() if self.ticker.kind == "native"
                                            else None)
        self._engine_at = fastcall.address_of(self.engine)
        # Each linked module's address, while it lives (looking it up anew costs microseconds).
        self._pre_at: weakref.WeakKeyDictionary[wasmtime.InstancePre, int] = (
            weakref.WeakKeyDictionary())
        self._guard = self.stack_guard.call if self.stack_guard is not None else None
        # Every store's epoch callback (it keeps no state of its own): outlives them all.
        self.epoch = EpochCallback(_decide, keep_fault, self.fastpath)
        self._modules: dict[str, wasmtime.Module] = {}
        # Invariant: a digest is in _modules iff some principal keeps it: _keepers[d] is
        # the ids of those principals, _kept[id] their digests (oldest first), and
        # _entries == sum of len(_kept[id]) <= MODULE_CACHE_ENTRIES.
        self._keepers: dict[str, set[int]] = {}
        self._kept: dict[int, dict[str, None]] = {}
        self._entries = 0
        self._mutex = threading.Lock()

    def compile(self, wasm: bytes) -> wasmtime.Module:
        """Validate (naming a disabled feature, see ``feature_of``), then compile ``wasm``:
        the cached module if it was kept, else a new one that is not cached.
        Raises ``WasmtimeError``. SIMD passes: for a point without it, ``refuse_simd``
        first."""
        key = hashlib.sha256(wasm).hexdigest()
        with self._mutex:
            mod = self._modules.get(key)
        if mod is not None:
            return mod
        wasmtime.Module.validate(self.engine, wasm)  # cheap: refuses before compiling
        return wasmtime.Module(self.engine, wasm)

    def keep(self, principal: object, key: str, module: wasmtime.Module) -> list[str]:
        """Cache ``module`` (an installed graft's) under its SHA-256 ``key`` for
        ``principal``; return the digests no longer cached.

        A principal keeps at most ``MODULE_CACHE_SHARE`` entries (its oldest goes);
        past ``MODULE_CACHE_ENTRIES`` entries in all, the principal keeping the most
        (``principal`` itself on a tie) loses its oldest. A module stays while any
        principal keeps it."""
        pid = id(principal)
        dropped: list[str] = []
        with self._mutex:
            mine = self._kept.setdefault(pid, {})
            if key in mine:
                del mine[key]  # most recent again
                mine[key] = None
                return dropped
            mine[key] = None
            self._entries += 1
            self._keepers.setdefault(key, set()).add(pid)
            self._modules.setdefault(key, module)
            while len(mine) > limits.MODULE_CACHE_SHARE:
                self._drop(pid, dropped)
            while self._entries > limits.MODULE_CACHE_ENTRIES:
                most = max(self._kept, key=lambda p: (len(self._kept[p]), p == pid))
                self._drop(most, dropped)
        return dropped

    def _drop(self, pid: int, dropped: list[str]) -> None:
        """``pid``'s oldest entry goes; its module too if nobody else keeps it (locked)."""
        kept = self._kept[pid]
        key = next(iter(kept))
        del kept[key]
        if not kept:
            del self._kept[pid]
        self._entries -= 1
        keepers = self._keepers[key]
        keepers.discard(pid)
        if not keepers:
            del self._keepers[key]
            del self._modules[key]
            dropped.append(key)

    def has_module(self, key: str) -> bool:
        with self._mutex:
            return key in self._modules

    def admit(self, principal: object) -> None:
        """Reserve one instance for ``principal``, or raise ``QuotaExceeded`` (nothing taken):
        past the sandbox's ``max_grafts``, or past the principal's share of a pool."""
        key = id(principal)
        with self._mutex:
            if self.live >= self.max_grafts:
                how = ("the pool's slots" if self.pool is not None else
                       "the default allocator maps each instance separately; a Pool holds more")
                raise QuotaExceeded(f"the host holds its limit of {self.max_grafts} grafts "
                                    f"({how}); remove one first")
            held = self._held.get(key, 0)
            quota = getattr(getattr(principal, "quota", None), "grafts", None)
            if quota is not None and held >= quota:
                raise QuotaExceeded(f"{getattr(principal, 'name', principal)} holds {held} "
                                    f"grafts, its quota (Quota.grafts)")
            if self.pool is not None and held >= self.pool.per_principal:
                raise QuotaExceeded(
                    f"{getattr(principal, 'name', principal)} holds {held} of the pool's "
                    f"{self.pool.slots} slots, its share; the other slots are the other "
                    f"principals'")
            self._held[key] = held + 1
            self.live += 1

    def held(self, principal: object) -> int:
        """Instances ``principal`` holds in this sandbox."""
        with self._mutex:
            return self._held.get(id(principal), 0)

    def let_go(self, principal: object) -> None:
        """Give back an instance ``admit`` reserved."""
        key = id(principal)
        with self._mutex:
            held = self._held.get(key, 0) - 1
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)
            self.live -= 1

    def instantiate(self, pre: wasmtime.InstancePre, memory_limit: int,
                    table_elements: int = limits.MAX_TABLE_ELEMENTS) -> Instance:
        """One store with one instance of ``pre`` in it.

        ``memory_limit`` is a hard cap enforced by wasmtime (``memory.grow`` fails
        past it); the principal's quota, checked after each call, is the softer
        limit that aborts. ``table_elements`` caps the table the same way
        (``table.grow`` fails past it); the loader charged it at install. The
        store's epoch callback is the sandbox's one (``_decide``). Raises
        ``WasmtimeError`` or ``Trap`` (nothing is left allocated).
        """
        self.ticker.ensure_running()
        at = self._pre_at.get(pre)
        if at is None:
            at = self._pre_at[pre] = fastcall.address_of(pre)
        return Instance(self._engine_at, at, memory_limit, table_elements, self.epoch,
                        self._guard, self.fastpath)

    def close(self) -> None:
        self.ticker.stop()
