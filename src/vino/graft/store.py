"""One graft's store and instance, made through wasmtime's C API.

``Instance`` is what ``Sandbox.instantiate`` returns for each graft: a store with
its limits, the sandbox's epoch callback and a deadline one tick ahead, one
instance of a linked module (``InstancePre``) in it, and its ``memory`` export. It
costs a fraction of ``wasmtime.Store`` + ``InstancePre.instantiate`` +
``Instance.exports`` -- which wrap every export in Python objects the host would
keep for the graft's life, and the cyclic collector would rescan at every full
collection: each step is one C call on addresses, and what the calls fill lives in
one ctypes block. ``func(name, ...)`` looks one export up when asked (the caller
keeps the ``RawFunc``), so a graft holds only the exports it calls.

``EpochCallback`` is the epoch-deadline callback: at each epoch tick past a store's
deadline, ``decide()`` says go on (the deadline is pushed one tick on) or stop (the
guest's call returns ``ERROR``); an exception in ``decide`` goes to ``on_fault`` and
stops the guest. It keeps no state of any store, so one serves a whole sandbox.

Invariant: an ``Instance``'s store is deleted -- its memory and pool slot given
back -- exactly when the object goes (``__del__``): nothing it holds refers back to
it, so that is when its last reference is dropped, not at some later collection.
Each ``RawFunc`` it made keeps it alive; its ``memory`` view keeps only the block.
Invariant: the ``EpochCallback`` attached to a store outlives it (the store keeps it).

The C functions and layouts used here are checked by ``check_internals`` (called
with ``fastcall.check_internals`` by every ``Registry``), so a change in the pinned
package fails loudly.
"""

from __future__ import annotations

import ctypes
import importlib
from collections.abc import Callable, Sequence
from ctypes import c_bool, c_int64, c_size_t, c_uint8, c_uint64, c_void_p
from types import ModuleType
from typing import TYPE_CHECKING, Final

import wasmtime

from vino.errors import EngineMismatch
from vino.graft.fastcall import (
    OnFault,
    RawFunc,
    c_function,
    check_arity,
    error_message,
    raw,
    set_deadline,
    trap_message,
)
from vino.graft.memory import MemoryView

if TYPE_CHECKING:
    from _ctypes import CFuncPtr  # the stack guard's call (stack.py), a ctypes function

# C functions used here, with the arity this module calls them with.
_USED: Final = {
    "wasmtime_store_new": 3,
    "wasmtime_store_context": 1,
    "wasmtime_store_limiter": 6,
    "wasmtime_store_delete": 1,
    "wasmtime_instance_pre_instantiate": 4,
    "wasmtime_instance_export_get": 5,
    "wasmtime_store_epoch_deadline_callback": 4,
    "wasmtime_error_new": 1,
    "wasmtime_error_delete": 1,
    "wasm_trap_delete": 1,
}

_store_new = c_function("wasmtime_store_new", c_void_p, c_void_p, c_void_p, c_void_p)
_store_context = c_function("wasmtime_store_context", c_void_p, c_void_p)
_store_limiter = c_function("wasmtime_store_limiter", None, c_void_p, c_int64, c_int64,
                            c_int64, c_int64, c_int64)
_store_delete = c_function("wasmtime_store_delete", None, c_void_p)
_pre_instantiate = c_function("wasmtime_instance_pre_instantiate", c_void_p, c_void_p,
                              c_void_p, c_void_p, c_void_p)
_export_get = c_function("wasmtime_instance_export_get", c_bool, c_void_p, c_void_p, c_void_p,
                         c_size_t, c_void_p)
_error_delete = c_function("wasmtime_error_delete", None, c_void_p)
_trap_delete = c_function("wasm_trap_delete", None, c_void_p)

_EXTERN_BYTES: Final = 32  # sizeof(wasmtime_extern_t): kind (u8), then the union at 8
_EXTERN_OF: Final = 8
_INSTANCE_BYTES: Final = 16  # sizeof(wasmtime_instance_t)
_EXTERN_FUNC: Final = 0  # WASMTIME_EXTERN_FUNC
_EXTERN_MEMORY: Final = 3  # WASMTIME_EXTERN_MEMORY
# An instance's block: [wasmtime_instance_t | trap slot (8) | its memory's wasmtime_extern_t]
_BLOCK_TRAP: Final = _INSTANCE_BYTES
_BLOCK_MEMORY: Final = _BLOCK_TRAP + 8
_BLOCK_BYTES: Final = _BLOCK_MEMORY + _EXTERN_BYTES


def check_internals() -> None:
    """Fail loudly if a C function or layout used here is not what the bindings declare."""
    check_arity(_USED)
    ffi = importlib.import_module("wasmtime._ffi")
    if (ctypes.sizeof(raw.wasmtime_extern_t) != _EXTERN_BYTES
            or raw.wasmtime_extern_t.of.offset != _EXTERN_OF
            or ctypes.sizeof(raw.wasmtime_instance_t) != _INSTANCE_BYTES
            or ctypes.sizeof(raw.wasmtime_memory_t) > _EXTERN_BYTES - _EXTERN_OF
            or ctypes.sizeof(raw.wasmtime_func_t) > _EXTERN_BYTES - _EXTERN_OF
            or ffi.WASMTIME_EXTERN_FUNC.value != _EXTERN_FUNC
            or ffi.WASMTIME_EXTERN_MEMORY.value != _EXTERN_MEMORY):
        raise EngineMismatch("wasmtime internals changed: wasmtime_extern_t / instance layout")


# --------------------------------------------------------------------------- epochs

_EpochCb = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_void_p)
_set_epoch_callback = c_function("wasmtime_store_epoch_deadline_callback", None, c_void_p,
                                 _EpochCb, c_void_p, c_void_p, blocking=True)
_new_error = c_function("wasmtime_error_new", c_void_p, c_void_p)
_STOP_MSG: Final = ctypes.create_string_buffer(b"vino: interrupted")
_UPDATE_CONTINUE: Final = 0


class EpochCallback:
    """An epoch-deadline callback made once and attached to any number of stores.

    With the native fast path (``native``, as for ``fastcall.define_host``) a guest
    entered holding the GIL lets it go at its first tick, for the rest of its call.
    """

    __slots__ = ("_cb", "_native")

    def __init__(self, decide: Callable[[], bool], on_fault: OnFault,
                 native: ModuleType | None = None) -> None:
        self._native = native
        if native is not None:
            self._cb: object = native.Host(decide, "", False, on_fault)
            return
        stop = ctypes.addressof(_STOP_MSG)

        def on_deadline(ctx: int, data: int, delta: int, kind: int) -> int:
            try:
                go_on = decide()
            except BaseException as exc:
                on_fault(exc)
                go_on = False
            if go_on:
                c_uint64.from_address(delta).value = 1
                c_uint8.from_address(kind).value = _UPDATE_CONTINUE
                return 0
            return int(_new_error(stop) or 0)

        self._cb = _EpochCb(on_deadline)

    def attach(self, store: int) -> None:
        """Make this the callback of the store at address ``store``."""
        if self._native is not None:
            self._native.set_epoch_callback(store, self._cb)
        else:
            _set_epoch_callback(store, self._cb, None, None)


def install_epoch_callback(store: wasmtime.Store, decide: Callable[[], bool],
                           keepalive: list[object], on_fault: OnFault,
                           native: ModuleType | None = None) -> None:
    """``EpochCallback(decide, on_fault, native)`` attached to a ``wasmtime.Store``;
    ``keepalive`` (which must outlive the store) holds it."""
    cb = EpochCallback(decide, on_fault, native)
    keepalive.append(cb)
    cb.attach(ctypes.cast(store.ptr(), c_void_p).value or 0)


# --------------------------------------------------------------------------- instances

class Instance:
    """One store holding one instance of a linked module (see the module docstring).

    ``engine`` and ``pre``: addresses (``fastcall.address_of``). ``memory_limit``
    (bytes) and ``table_elements`` are the store's hard caps (``memory.grow`` /
    ``table.grow`` fail past them). ``guarded`` and ``native`` are passed to every
    ``RawFunc`` (see there). Raises ``WasmtimeError`` (instantiation failed, the
    pool is full, no ``memory`` export) or ``Trap`` (a segment out of bounds); the
    store is deleted then.
    """

    __slots__ = ("_block", "_epoch", "_guard", "_native", "base", "ctx", "memory", "store")

    def __init__(self, engine: int, pre: int, memory_limit: int, table_elements: int,
                 epoch: EpochCallback, guarded: CFuncPtr | None = None,
                 native: ModuleType | None = None) -> None:
        self.store = 0
        store = _store_new(engine, None, None)
        if not store:
            raise wasmtime.WasmtimeError("wasmtime could not make a store")
        self.store = store
        self._epoch = epoch
        self._guard = guarded
        self._native = native
        ctx = self.ctx = _store_context(store)
        _store_limiter(store, memory_limit, table_elements, 1, 1, 1)
        epoch.attach(store)
        set_deadline(ctx, 1)
        block = self._block = (ctypes.c_ubyte * _BLOCK_BYTES)()
        base = self.base = ctypes.addressof(block)
        err = _pre_instantiate(pre, ctx, base, base + _BLOCK_TRAP)
        if err:
            msg = error_message(err)
            _error_delete(err)
            raise wasmtime.WasmtimeError(msg)
        trap = c_size_t.from_address(base + _BLOCK_TRAP).value
        if trap:
            msg = trap_message(trap)
            _trap_delete(trap)
            raise wasmtime.Trap(msg)
        if self._export(b"memory", base + _BLOCK_MEMORY) != _EXTERN_MEMORY:
            raise wasmtime.WasmtimeError("export 'memory' is not a memory")
        self.memory = MemoryView.at(ctx, base + _BLOCK_MEMORY + _EXTERN_OF, block)

    def __del__(self) -> None:
        store, self.store = self.store, 0
        if store:
            _store_delete(store)

    def _export(self, name: bytes, extern: int) -> int:
        """Write export ``name`` at ``extern`` (a wasmtime_extern_t); its kind, or -1."""
        if not _export_get(self.ctx, self.base, name, len(name), extern):
            return -1
        return int(c_uint8.from_address(extern).value)

    def func(self, name: str, params: Sequence[str], results: Sequence[str]) -> RawFunc:
        """Export ``name`` as a ``RawFunc`` (which keeps this instance alive); raises
        ``WasmtimeError`` if it is not a function. Not cached: the caller keeps it."""
        key = name.encode()

        def fill(extern: int) -> None:  # straight into the RawFunc's own array
            if self._export(key, extern) != _EXTERN_FUNC:
                raise wasmtime.WasmtimeError(f"export {name!r} is not a function")

        return RawFunc.at(self.ctx, fill, self, params, results, self._guard, self._native)
