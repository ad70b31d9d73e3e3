"""The WebAssembly sandbox: one engine, one epoch ticker, one store per graft.

- One ``wasmtime.Engine`` per ``Sandbox`` with epoch interruption on; compiled
  modules are cached by content hash so identical grafts share code.
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

Isolation (DESIGN.md §5.1): a graft sees only its own linear memory; the host
copies bytes in and out of it, bounds-checked, and never hands out a host
pointer.
"""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import wasmtime

from vino import limits
from vino.graft import fastcall
from vino.graft.ticker import Ticker, make_ticker
from vino.graft.txn import thread_state


class _GcTime(threading.local):
    """CPU time this thread has spent in Python's cyclic garbage collector."""

    total_ns = 0
    start_ns = 0


_GC: Final = _GcTime()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC.start_ns = time.thread_time_ns()
    elif _GC.start_ns:
        _GC.total_ns += time.thread_time_ns() - _GC.start_ns
        _GC.start_ns = 0


gc.callbacks.append(_on_gc)


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
    """
    txn = thread_state().txn
    if txn is None:
        return True
    if txn.doomed() is not None:
        return False
    if txn.budget_ns:
        cpu = _net_cpu_ns()
        if txn.cpu_call_ns != txn.start_ns:  # the first tick of this call
            txn.cpu_call_ns = txn.start_ns
            txn.cpu_start_ns = cpu
        elif cpu - txn.cpu_start_ns > txn.budget_ns:
            txn.fault = TimeoutError(f"ran past its CPU budget of {txn.budget_ns / 1e6:.1f} ms")
            return False
    return True


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

    def __post_init__(self) -> None:
        if self.slots <= 0:
            raise ValueError(f"a pool needs at least one slot, not {self.slots}")
        if self.memory_bytes <= 0 or self.memory_bytes % limits.WASM_PAGE:
            raise ValueError(f"pool memory_bytes {self.memory_bytes} is not a positive "
                             f"multiple of {limits.WASM_PAGE}")


class Sandbox:
    """Engine, ticker and module cache shared by every graft of a registry."""

    def __init__(self, tick_s: float = limits.EPOCH_TICK_S,
                 max_wasm_stack: int = limits.MAX_WASM_STACK, pool: Pool | None = None,
                 native_ticker: bool | None = None) -> None:
        cfg = wasmtime.Config()
        cfg.epoch_interruption = True
        cfg.memory_may_move = False
        cfg.max_wasm_stack = max_wasm_stack
        cfg.cranelift_opt_level = "speed"
        if pool is not None:
            fastcall.use_pooling(cfg, slots=pool.slots, memory_bytes=pool.memory_bytes,
                                 table_elements=limits.MAX_TABLE_ELEMENTS)
            cfg.memory_reservation = pool.memory_bytes
            cfg.memory_guard_size = 0
            cfg.memory_reservation_for_growth = 0
        self.pool = pool
        self.engine = wasmtime.Engine(cfg)
        # The native ticker when it can be built (None: unless VINO_TICKER=python).
        self.ticker: Ticker
        self.ticker, self.ticker_fallback = make_ticker(self.engine, tick_s, native_ticker)
        self._modules: dict[str, wasmtime.Module] = {}
        self._mutex = threading.Lock()

    def compile(self, wasm: bytes) -> wasmtime.Module:
        """Validate and compile ``wasm`` (cached by SHA-256, the last
        ``MODULE_CACHE_ENTRIES``). Raises ``WasmtimeError``."""
        key = hashlib.sha256(wasm).hexdigest()
        with self._mutex:
            mod = self._modules.get(key)
        if mod is None:
            mod = wasmtime.Module(self.engine, wasm)
            with self._mutex:
                mod = self._modules.setdefault(key, mod)
                _bound(self._modules)
        return mod

    def instantiate(self, pre: wasmtime.InstancePre, memory_limit: int) -> Instance:
        self.ticker.ensure_running()
        return Instance(self, pre, memory_limit)

    def close(self) -> None:
        self.ticker.stop()


class Instance:
    """One graft's store and instance, with cached raw entry points.

    ``memory_limit`` is a hard cap enforced by wasmtime (``memory.grow`` fails
    past it); the principal's quota, checked after each call, is the softer
    limit that aborts.
    """

    __slots__ = ("_funcs", "_keep", "exports", "instance", "memory", "store")

    def __init__(self, sandbox: Sandbox, pre: wasmtime.InstancePre, memory_limit: int) -> None:
        self._keep: list[Any] = []
        self.store = wasmtime.Store(sandbox.engine)
        self.store.set_limits(memory_size=memory_limit, table_elements=limits.MAX_TABLE_ELEMENTS,
                              instances=1, tables=1, memories=1)
        fastcall.install_epoch_callback(self.store, _decide, self._keep)
        fastcall.set_epoch_deadline(self.store, 1)
        self.instance = pre.instantiate(self.store)
        self.exports = self.instance.exports(self.store)
        mem = self.exports["memory"]
        if not isinstance(mem, wasmtime.Memory):
            raise wasmtime.WasmtimeError("export 'memory' is not a memory")
        self.memory = fastcall.MemoryView(self.store, mem)
        self._funcs: dict[str, fastcall.RawFunc] = {}

    def func(self, name: str, params: tuple[str, ...],
             results: tuple[str, ...]) -> fastcall.RawFunc:
        f = self._funcs.get(name)
        if f is None:
            export = self.exports[name]
            if not isinstance(export, wasmtime.Func):
                raise wasmtime.WasmtimeError(f"export {name!r} is not a function")
            f = self._funcs[name] = fastcall.RawFunc(self.store, export, params, results)
        return f


HostCallable = Callable[..., int | None]


def _bound(cache: dict[Any, Any]) -> None:
    """Drop the oldest entries of ``cache`` past ``MODULE_CACHE_ENTRIES`` (caller locks)."""
    while len(cache) > limits.MODULE_CACHE_ENTRIES:
        del cache[next(iter(cache))]
