"""The typed fast path over wasmtime's low-level bindings.

wasmtime's public ``Func.__call__`` converts every value through ``Val`` and
costs ~12 µs; its host functions cost ~5 µs per guest→host call. This module is
the only place in vino that touches the package's private ctypes bindings
(``wasmtime._bindings`` via ``wasmtime._ffi``) to get those down to ~1 µs and
~0.3 µs. Everything else in vino goes through the names exported here.

Contract:
- ``RawFunc.call`` takes and returns plain ints (i32/i64); it never raises for a
  guest fault, it returns a ``CallOutcome`` code and leaves the detail in
  ``RawFunc.trap_code`` and ``RawFunc.message`` (wasmtime's own words, read
  only when a call failed) so the hot path never formats a backtrace.
- Host functions are defined on a ``Linker`` with ``define_host``; the Python
  callable receives plain ints and returns an int (or ``None`` for no result).
  A Python exception inside it stops the guest (wasmtime 50 reports it as an
  error, ``ERROR``, rather than a trap); the exception object is handed to the
  definer's ``on_fault`` (vino's keeps it on the calling graft's transaction,
  ``txn.keep_fault``) for the caller to re-raise or classify.
- Pooling: ``use_pooling(config, ...)`` switches an engine configuration to
  wasmtime's pooling instance allocator (not exposed by the public ``Config``).
- Stores, instances and epoch callbacks: ``store.py``, through ``c_function``.
- Inlining callers (the protected call's hot path) use the public C entry points
  ``set_deadline(ctx, ticks)`` and ``memory_data_size(ctx, memory)`` with the
  addresses ``RawFunc.context()`` and ``MemoryView.size_args()`` (memory.py) give.

``check_internals()`` asserts every private name and layout this module relies
on; ``tests/graft/test_fastcall.py`` calls it so a change in the pinned package
fails loudly instead of corrupting memory.
"""

from __future__ import annotations

import ctypes
import importlib
import struct
from collections.abc import Callable, Sequence
from ctypes import c_size_t, c_uint64, c_void_p
from types import ModuleType
from typing import TYPE_CHECKING, Final, Protocol

import wasmtime

if TYPE_CHECKING:  # typeshed's ctypes value, and function object (untyped: typed where made)
    from _ctypes import CFuncPtr, _CData

from vino.errors import EngineMismatch, InvalidDeclaration

# The package's private ctypes bindings (only this module uses them): a module without
# types, so what it holds is checked by check_internals(), not by mypy.
raw = importlib.import_module("wasmtime._bindings")

PINNED_WASMTIME: Final = "50.0.1"

I32: Final = "i32"
I64: Final = "i64"
_VALTYPES: Final = {I32: wasmtime.ValType.i32, I64: wasmtime.ValType.i64}

# Outcome of a raw call.
OK: Final = 0
TRAP: Final = 1  # the guest trapped (trap_code says how) or a host function raised
ERROR: Final = 2  # wasmtime returned an error (e.g. the epoch callback said stop)
NO_STACK: Final = 3  # not called: the thread's native stack has no room (see stack.py)
_NO_STACK_PTR: Final = 1  # what the stack guard returns instead of an error pointer

# The trap code we name (wasmtime_trap_code_enum).
TRAP_UNREACHABLE: Final = 9

_RAW_SIZE: Final = 16  # sizeof(wasmtime_val_raw_t)
_FUNC_SIZE: Final = 16  # sizeof(wasmtime_func_t)
_EXTERN_OF: Final = 8  # offsetof(wasmtime_extern_t, of) (store.py checks the layout)
_WIDE: Final = {(): (), (I32,): (False,), (I32, I32): (False, False)}  # which params are i64
_MAX_VALS: Final = 8


OnFault = Callable[[BaseException], None]  # gets what a host function or callback raised
CArg = c_void_p | c_size_t  # an argument of the raw call: a ctypes object made once


# C functions used here, with the arity this module calls them with.
_USED: Final = {
    "wasmtime_func_call_unchecked": 5,
    "wasmtime_trap_code": 2,
    "wasm_trap_delete": 1,
    "wasmtime_error_delete": 1,
    "wasmtime_error_message": 2,
    "wasm_trap_message": 2,
    "wasm_byte_vec_delete": 1,
    "wasmtime_context_set_epoch_deadline": 2,
    "wasmtime_memory_data": 2,
    "wasmtime_memory_data_size": 2,
    "wasmtime_linker_define_func_unchecked": 9,
    "wasmtime_trap_new": 2,
    "wasmtime_store_epoch_deadline_callback": 4,
    "wasmtime_error_new": 1,
    "wasmtime_engine_increment_epoch": 1,
    "wasmtime_pooling_allocation_config_new": 0,
    "wasmtime_pooling_allocation_config_delete": 1,
    "wasmtime_pooling_allocation_config_total_core_instances_set": 2,
    "wasmtime_pooling_allocation_config_total_memories_set": 2,
    "wasmtime_pooling_allocation_config_total_tables_set": 2,
    "wasmtime_pooling_allocation_config_max_memory_size_set": 2,
    "wasmtime_pooling_allocation_config_table_elements_set": 2,
    "wasmtime_pooling_allocation_strategy_set": 2,
}


def check_arity(used: dict[str, int]) -> None:
    """Each C function of ``used`` is declared by the bindings with that many arguments."""
    for name, arity in used.items():
        declared = getattr(raw, "_" + name, None)
        if declared is None or len(declared.argtypes) != arity:
            raise EngineMismatch(f"wasmtime internals changed: {name} is not ({arity} args)")


def check_internals() -> None:
    """Fail loudly if the pinned package's private layout is not what this module uses.

    Checks the version, the arity of every C function called here (as declared by
    the package's own bindings), the raw value layout, the callback types, and
    the private attributes read from public objects.
    """
    from importlib.metadata import version

    found = version("wasmtime")
    if found != PINNED_WASMTIME:
        raise EngineMismatch(f"vino needs wasmtime=={PINNED_WASMTIME}, found {found}")
    check_arity(_USED)
    if (ctypes.sizeof(raw.wasmtime_val_raw_t), ctypes.sizeof(raw.wasmtime_func_t)) != (16, 16):
        raise EngineMismatch("wasmtime internals changed: sizeof(wasmtime_val_raw_t) != 16")
    lanes = dict(raw.wasmtime_val_raw_t._fields_)
    if lanes.get("i32") is not ctypes.c_int32 or lanes.get("i64") is not ctypes.c_int64:
        raise EngineMismatch("wasmtime internals changed: wasmtime_val_raw_t lanes")
    host_cb = raw.wasmtime_func_unchecked_callback_t
    if host_cb._restype_ is not c_size_t or len(host_cb._argtypes_) != 4:
        raise EngineMismatch("wasmtime internals changed: unchecked host callback type")
    epoch_cb = raw._wasmtime_store_epoch_deadline_callback.argtypes[1]
    if epoch_cb._restype_ is not c_size_t or len(epoch_cb._argtypes_) != 4:
        raise EngineMismatch("wasmtime internals changed: epoch deadline callback type")
    for cls, attr in ((wasmtime.Func, "_func"), (wasmtime.Memory, "_memory"),
                      (wasmtime.Store, "_context"), (wasmtime.Linker, "ptr")):
        if not hasattr(cls, attr) and attr not in getattr(cls, "__annotations__", {}):
            raise EngineMismatch(f"wasmtime internals changed: {cls.__name__}.{attr}")


# --------------------------------------------------------------------------- native


def native_entry_points() -> tuple[int, ...]:
    """The addresses the native fast path calls, in ``_vino_fastpath.init``'s order."""
    return tuple(_address(getattr(raw.dll, name)) for name in (
        "wasmtime_trap_new", "wasmtime_error_new", "wasmtime_memory_data_size",
        "wasmtime_linker_define_func_unchecked", "wasmtime_store_epoch_deadline_callback",
        "wasmtime_context_set_epoch_deadline"))


# --------------------------------------------------------------------------- calls

def _address(obj: _CData) -> int:
    return ctypes.cast(obj, c_void_p).value or 0


def _cfn(name: str, restype: type[_CData] | None, *argtypes: type[_CData],
         blocking: bool = True) -> CFuncPtr:
    """A private function object for ``name`` taking plain ints; its caller types it.

    ``blocking`` functions (those that run guest code) release the GIL so the
    epoch ticker keeps ticking; the short bookkeeping ones keep it, which is
    cheaper.
    """
    address = _address(getattr(raw.dll, name))
    proto = ctypes.CFUNCTYPE if blocking else ctypes.PYFUNCTYPE
    return proto(restype, *argtypes)(address)


# The raw call: a function object of our own with no argtypes, called with ctypes
# objects built once per export, which skips per-call argument conversion (~0.12 µs
# of ~0.45). A CDLL function releases the GIL while the guest runs.
_call_unchecked = raw.dll["wasmtime_func_call_unchecked"]
_call_unchecked.restype = c_void_p
_call_unchecked.argtypes = None


class RawCall(Protocol):
    """The raw call, ``call_fn()(*call_args())``: an error pointer back (None or 0: none).
    wasmtime's and the stack guard's take the five ctypes objects of ``call_args()``; the
    native fast path's holds them itself and takes none (``call_args()`` is empty)."""

    def __call__(self, *cargs: CArg) -> int | None: ...


def raw_call_address() -> int:
    """``wasmtime_func_call_unchecked``'s address, for the native stack guard to call."""
    return _RAW_CALL_AT


_RAW_CALL_AT: Final = _address(raw.dll.wasmtime_func_call_unchecked)
# Addresses of the few C functions a raw call may go through (the stack guard's), each
# kept with its object so that its id is not reused: ctypes.cast costs microseconds.
_CALL_AT: dict[int, tuple[CFuncPtr, int]] = {}


def _call_address(fn: CFuncPtr) -> int:
    known = _CALL_AT.get(id(fn))
    if known is not None and known[0] is fn:
        return known[1]
    at = _address(fn)
    if len(_CALL_AT) < 8:
        _CALL_AT[id(fn)] = (fn, at)
    return at

_trap_code: Final[Callable[[int, int], bool]] = _cfn(
    "wasmtime_trap_code", ctypes.c_bool, c_void_p, c_void_p, blocking=False)
_trap_delete: Final[Callable[[int], None]] = _cfn(
    "wasm_trap_delete", None, c_void_p, blocking=False)
_error_delete: Final[Callable[[int], None]] = _cfn(
    "wasmtime_error_delete", None, c_void_p, blocking=False)


def _text(read: Callable[[object, object], None], ptr: int, kind: type[ctypes.Structure]
          ) -> str:
    """wasmtime's message of the error or trap at ``ptr`` (slow path: failures only)."""
    vec = raw.wasm_byte_vec_t()
    read(ctypes.cast(ptr, ctypes.POINTER(kind)), ctypes.byref(vec))
    try:
        return ctypes.string_at(vec.data, vec.size).decode("utf-8", errors="replace")
    finally:
        raw.wasm_byte_vec_delete(ctypes.byref(vec))


def error_message(err: int) -> str:
    return _text(raw.wasmtime_error_message, err, raw.wasmtime_error_t)


def trap_message(trap: int) -> str:
    return _text(raw.wasm_trap_message, trap, raw.wasm_trap_t)


# Public for callers that inline them: ``set_deadline(ctx, ticks)`` moves a store's epoch
# deadline ``ticks`` ticks past the engine's epoch; ``memory_data(ctx, memory)`` is a linear
# memory's base address, ``memory_data_size(ctx, memory)`` its size in bytes. Arguments:
# the addresses from ``RawFunc.context()`` and ``memory_of`` (``MemoryView.size_args()``).
set_deadline: Final[Callable[[int, int], None]] = _cfn(
    "wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64, blocking=False)
memory_data: Final[Callable[[int, int], int | None]] = _cfn(
    "wasmtime_memory_data", c_void_p, c_void_p, c_void_p, blocking=False)
memory_data_size: Final[Callable[[int, int], int]] = _cfn(
    "wasmtime_memory_data_size", c_size_t, c_void_p, c_void_p, blocking=False)


class RawFunc:
    """One exported function of one instance, called without ``Val`` boxing.

    Every pointer the call needs is resolved to an int once; the argument and
    result array and the trap slot are allocated once. Not thread-safe: a store
    runs on one thread at a time (the caller serialises).
    """

    # One ctypes array per function (the cyclic collector scans each object a host keeps):
    # its value slots (16 bytes each), then the trap slot (8), then a copy of the
    # wasmtime_func_t (16), seen as int32 lanes; views of it for the trap slot and, when
    # some value is an i64, for 64-bit lanes.
    __slots__ = ("_call", "_cargs", "_ctx", "_func", "_ints", "_longs", "_tslot", "_wide",
                 "message", "trap_code")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func,
                 params: Sequence[str], results: Sequence[str],
                 guarded: CFuncPtr | None = None, native: ModuleType | None = None) -> None:
        """``guarded``: the stack guard's call (``stack.StackGuard.call``, same arguments
        as the raw call), which refuses (``NO_STACK``) without enough native stack;
        None: the raw call, unguarded. ``native``: the fast path (``fastpath.native()``),
        to make the same call without converting arguments and without releasing the GIL
        (only where a native ticker ends runaway guests: ``Sandbox.fastpath``)."""
        def fill(extern: int) -> None:  # the function's wasmtime_func_t, as in an extern
            ctypes.memmove(extern + _EXTERN_OF, ctypes.addressof(func._func), _FUNC_SIZE)

        self._bind(_address(store._context()), fill, store, params, results, guarded, native)

    @classmethod
    def at(cls, ctx: int, fill: Callable[[int], None], keep: object, params: Sequence[str],
           results: Sequence[str], guarded: CFuncPtr | None = None,
           native: ModuleType | None = None) -> RawFunc:
        """A function of the store of context ``ctx``: ``fill(address)`` writes its
        ``wasmtime_extern_t`` there (in this object's own array: no copy), or raises;
        ``keep`` keeps the store alive. Else as ``__init__``."""
        f = cls.__new__(cls)
        f._bind(ctx, fill, keep, params, results, guarded, native)
        return f

    def _bind(self, ctx: int, fill: Callable[[int], None], keep: object,
              params: Sequence[str], results: Sequence[str], guarded: CFuncPtr | None,
              native: ModuleType | None) -> None:
        n = max(len(params), len(results), 1)
        if n > _MAX_VALS:
            raise InvalidDeclaration(f"too many parameters or results ({n} > {_MAX_VALS})")
        # [value slots | trap slot (8) | the function's wasmtime_extern_t (32)]
        self._ints = ints = (ctypes.c_int32 * (4 * n + 10))()
        argp = ctypes.addressof(ints)
        trapp = argp + _RAW_SIZE * n
        fill(trapp + 8)
        funcp = trapp + 8 + _EXTERN_OF
        self._longs = ((ctypes.c_int64 * (2 * n)).from_address(argp)
                       if I64 in params or I64 in results else None)
        self._tslot = (c_size_t * 1).from_address(trapp)
        wide = _WIDE.get(tuple(params))
        self._wide = wide if wide is not None else tuple(p == I64 for p in params)
        self._ctx = ctx
        self._func = keep  # keeps the store (and so the function) alive
        self._call: RawCall = guarded if guarded is not None else _call_unchecked
        if native is not None:  # the same C function, called from C with the same arguments
            address = _call_address(guarded) if guarded is not None else _RAW_CALL_AT
            self._call = native.RawCall(address, ctx, funcp, argp, n, trapp)
            self._cargs: tuple[CArg, ...] = ()
        else:
            self._cargs = (c_void_p(ctx), c_void_p(funcp), c_void_p(argp), c_size_t(n),
                           c_void_p(trapp))
        self.trap_code = -1
        self.message = ""  # wasmtime's message about the last failed call

    def call(self, *args: int) -> int:
        """Call with ints; return OK / TRAP / ERROR. Results via ``result_i32/64``."""
        wide = self._wide
        for i, a in enumerate(args):
            if wide[i]:
                self._longs[2 * i] = a  # type: ignore[index]  # made when a value is an i64
            else:
                self._ints[4 * i] = a
        return self.call0()

    def context(self) -> int:
        """The store's context pointer (for ``_set_deadline``)."""
        return self._ctx

    def call_args(self) -> tuple[CArg, ...]:
        """The arguments of the raw C call as ctypes objects, for callers that inline it
        (``call_fn()(*args)``); they stay valid as long as this object lives."""
        return self._cargs

    def call_fn(self) -> RawCall:
        """The C function the call goes through (the stack guard, or wasmtime's own)."""
        return self._call

    def results(self) -> ctypes.Array[ctypes.c_int32]:
        """The result slots as a ctypes int32 array (index 0 is the i32 result)."""
        return self._ints

    def trap_slot(self) -> ctypes.Array[c_size_t]:
        """The trap pointer slot as a one-element ctypes array (non-zero after a trap)."""
        return self._tslot

    def outcome(self, err: int | None) -> int:
        """Classify a finished inlined call: its error pointer, or a pending trap."""
        if err:
            return NO_STACK if err == _NO_STACK_PTR else self._take_error(err)
        if self._tslot[0]:
            return self._take_trap()
        return OK

    def call0(self) -> int:
        """Call with the arguments already in place (or none)."""
        err = self._call(*self._cargs)
        if err:
            return NO_STACK if err == _NO_STACK_PTR else self._take_error(err)
        if self._tslot[0]:
            return self._take_trap()
        return OK

    def _take_error(self, err: int) -> int:
        self.trap_code = -1
        try:
            self.message = error_message(err)
        finally:
            _error_delete(err)
        return ERROR

    def _take_trap(self) -> int:
        trap = self._tslot[0]
        code = ctypes.c_uint8()
        self.trap_code = code.value if _trap_code(trap, ctypes.addressof(code)) else -1
        try:
            self.message = trap_message(trap)
        finally:
            _trap_delete(trap)
        self._tslot[0] = 0
        return TRAP

    def result_i32(self) -> int:
        return int(self._ints[0])

    def result_i64(self) -> int:
        return int(self._ints[0] & 0xFFFFFFFF | self._ints[1] << 32)


def set_epoch_deadline(store: wasmtime.Store, ticks: int) -> None:
    set_deadline(_address(store._context()), ticks)


# --------------------------------------------------------------------------- memory

def memory_of(store: wasmtime.Store, memory: wasmtime.Memory) -> tuple[int, int, object]:
    """``memory``'s arguments to ``memory_data`` and ``memory_data_size`` (its store's
    context, its own address) and what must stay alive while they are used (its
    ``wasmtime_memory_t``), as ``MemoryView.at`` (memory.py) takes them."""
    return _address(store._context()), ctypes.addressof(memory._memory), memory._memory


# --------------------------------------------------------------------------- host functions

class HostFn(Protocol):
    """A host function as the guest calls it: its ints in, an int (or nothing) out."""

    def __call__(self, *args: int) -> int | None: ...


_HostCb = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)
# (linker, module, its length, name, its length, function type, callback, env, finalizer)
_define_unchecked: Final[Callable[[int, bytes, int, bytes, int, int, CFuncPtr, None, None],
                                  int | None]] = _cfn(
    "wasmtime_linker_define_func_unchecked", c_void_p, c_void_p, c_void_p, c_size_t,
    c_void_p, c_size_t, c_void_p, _HostCb, c_void_p, c_void_p)
_new_trap: Final[Callable[[int, int], int | None]] = _cfn(
    "wasmtime_trap_new", c_void_p, c_void_p, c_size_t, blocking=False)
_TRAP_MSG: Final = ctypes.create_string_buffer(b"vino: host function failed")
_TRAP_LEN: Final = len(_TRAP_MSG.value)


def _arg_struct(params: Sequence[str]) -> struct.Struct:
    """Unpacks ``len(params)`` values from consecutive 16-byte wasmtime_val_raw_t slots."""
    lanes = ["q" if p == I64 else "i" for p in params]
    pads = ["8x" if p == I64 else "12x" for p in params]
    fmt = "<" + "".join(lane + pad for lane, pad in zip(lanes[:-1], pads[:-1], strict=True))
    return struct.Struct(fmt + lanes[-1])


def _make_trampoline(fn: HostFn, params: Sequence[str], has_result: bool,
                     on_fault: OnFault) -> CFuncPtr:
    """The C callback for one host function (unchecked calling convention).

    Arguments arrive in ``vals[0..nparams)``; the result goes to ``vals[0]``
    (the i64 lane also carries an i32 result: the guest reads the low half).
    """
    string_at = ctypes.string_at
    result_slot = ctypes.c_int64.from_address
    new_trap = _new_trap
    msg = ctypes.addressof(_TRAP_MSG)

    if not params:
        def trampoline(env: int, caller: int, vals: int, nvals: int) -> int:
            try:
                r = fn()
                if has_result:
                    result_slot(vals).value = r  # type: ignore[assignment]
                return 0
            except BaseException as exc:  # every host-side exception stops the guest here
                on_fault(exc)
                return int(new_trap(msg, _TRAP_LEN) or 0)
        return _HostCb(trampoline)

    unpack = _arg_struct(params).unpack
    size = _arg_struct(params).size

    def trampoline_args(env: int, caller: int, vals: int, nvals: int) -> int:
        try:
            r = fn(*unpack(string_at(vals, size)))
            if has_result:
                result_slot(vals).value = r  # type: ignore[assignment]
            return 0
        except BaseException as exc:
            on_fault(exc)
            return int(new_trap(msg, _TRAP_LEN) or 0)
    return _HostCb(trampoline_args)


def define_host(linker: wasmtime.Linker, module: str, name: str, params: Sequence[str],
                results: Sequence[str], fn: HostFn, keepalive: list[object],
                on_fault: OnFault, native: ModuleType | None = None) -> None:
    """Define ``module.name`` on ``linker`` as a fast host function.

    ``keepalive`` must outlive the linker and every instance made from it: it
    holds the C callback and the function type. ``on_fault(exc)`` receives what
    ``fn`` raised (on the guest's thread) before the guest is stopped. ``native``:
    the native fast path (``fastpath.native()``), for a C trampoline instead of a
    ctypes callback (same contract).
    """
    ty = wasmtime.FuncType([_VALTYPES[p]() for p in params], [_VALTYPES[r]() for r in results])
    m = module.encode()
    n = name.encode()
    if native is not None:  # the C trampoline (fastpath.c), same contract as _make_trampoline
        host = native.Host(fn, "".join("q" if p == I64 else "i" for p in params), bool(results),
                         on_fault)
        keepalive.extend((host, ty))
        err = native.define_host(_address(linker.ptr()), m, n, _address(ty.ptr()), host)
    else:
        cb = _make_trampoline(fn, params, bool(results), on_fault)
        keepalive.extend((cb, ty))
        err = _define_unchecked(_address(linker.ptr()), m, len(m), n, len(n),
                                _address(ty.ptr()), cb, None, None)
    if err:
        _error_delete(err)
        raise EngineMismatch(f"wasmtime refused to define host function {module}.{name}")


# --------------------------------------------------------------------------- epochs, stores

def epoch_incrementer(engine: wasmtime.Engine) -> tuple[int, int]:
    """``wasmtime_engine_increment_epoch``'s address and the engine pointer, for a
    native ticker thread that calls it without Python."""
    return _address(raw.dll.wasmtime_engine_increment_epoch), _address(engine.ptr())


def c_function(name: str, restype: type[_CData] | None, *argtypes: type[_CData],
               blocking: bool = False) -> CFuncPtr:
    """C function ``name`` of wasmtime's API taking plain ints (``store.py``; its
    ``check_internals`` covers the names it uses)."""
    return _cfn(name, restype, *argtypes, blocking=blocking)


def address_of(obj: wasmtime.Engine | wasmtime.InstancePre | wasmtime.Store) -> int:
    """The C object behind an engine, a linked module or a store."""
    return _address(obj.ptr())


# --------------------------------------------------------------------------- compilers

COMPILERS: Final = ("cranelift", "cranelift-none", "winch")


def use_compiler(config: wasmtime.Config, compiler: str) -> None:
    """``cranelift`` (optimising for speed, vino's default), ``cranelift-none`` (no
    optimisation) or ``winch`` (wasmtime's baseline compiler, not in the public Config)."""
    if compiler == "cranelift":
        config.cranelift_opt_level = "speed"
    elif compiler == "cranelift-none":
        config.cranelift_opt_level = "none"
    elif compiler == "winch":
        raw.wasmtime_config_strategy_set(config.ptr(), 2)  # WASMTIME_STRATEGY_WINCH
    else:
        raise InvalidDeclaration(f"unknown compiler {compiler!r}; one of {', '.join(COMPILERS)}")


# --------------------------------------------------------------------------- pooling


def use_pooling(config: wasmtime.Config, *, slots: int, memory_bytes: int,
                table_elements: int) -> None:
    """Make engines built from ``config`` use wasmtime's pooling instance allocator.

    The engine reserves, once, ``slots`` instance slots, each with one linear
    memory of at most ``memory_bytes`` and one table of at most
    ``table_elements``; instantiating more than ``slots`` instances at once, or
    a module whose initial memory exceeds ``memory_bytes``, fails with a
    ``WasmtimeError``. A dropped store gives its slot back.
    """
    if slots <= 0 or memory_bytes <= 0 or table_elements < 0:
        raise InvalidDeclaration("pooling needs positive slots and memory_bytes")
    pc = raw.wasmtime_pooling_allocation_config_new()
    try:
        raw.wasmtime_pooling_allocation_config_total_core_instances_set(pc, slots)
        raw.wasmtime_pooling_allocation_config_total_memories_set(pc, slots)
        raw.wasmtime_pooling_allocation_config_total_tables_set(pc, slots)
        raw.wasmtime_pooling_allocation_config_max_memory_size_set(pc, memory_bytes)
        raw.wasmtime_pooling_allocation_config_table_elements_set(pc, table_elements)
        raw.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)  # copies pc
    finally:
        raw.wasmtime_pooling_allocation_config_delete(pc)
