"""The fast path over wasmtime's private bindings, and the check that guards it.

``check_internals()`` must pass on the pinned package and fail loudly, naming what
changed, when a binding it relies on is not what it expects (so a package upgrade
cannot silently corrupt memory).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
from typing import Any

import pytest
import wasmtime

from vino.graft import fastcall, store
from vino.graft.fastcall import I32, I64


class _FakeRaw:
    """The real bindings module, except for the attributes given."""

    def __init__(self, real: Any, **override: Any) -> None:
        self._real = real
        self._override = override

    def __getattr__(self, name: str) -> Any:
        if name in self._override:
            value = self._override[name]
            if value is None:
                raise AttributeError(name)
            return value
        return getattr(self._real, name)


class _Binding:
    """Stands in for a ctypes function object: only ``argtypes`` is looked at."""

    def __init__(self, n: int) -> None:
        self.argtypes = [ctypes.c_void_p] * n


def test_check_internals_passes_on_the_pinned_package() -> None:
    fastcall.check_internals()
    assert importlib.metadata.version("wasmtime") == fastcall.PINNED_WASMTIME


@pytest.mark.parametrize("name", sorted(fastcall._USED))
def test_check_internals_fails_loudly_when_a_bindings_arity_differs(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    arity = fastcall._USED[name]
    fake = _FakeRaw(fastcall.raw, **{"_" + name: _Binding(arity + 1)})
    monkeypatch.setattr(fastcall, "raw", fake)
    with pytest.raises(RuntimeError, match=f"internals changed: {name} is not"):
        fastcall.check_internals()


def test_check_internals_of_stores_passes_on_the_pinned_package() -> None:
    store.check_internals()


@pytest.mark.parametrize("name", sorted(store._USED))
def test_check_internals_of_stores_fails_loudly_when_a_bindings_arity_differs(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    arity = store._USED[name]
    monkeypatch.setattr(fastcall, "raw",
                        _FakeRaw(fastcall.raw, **{"_" + name: _Binding(arity + 1)}))
    with pytest.raises(RuntimeError, match=f"internals changed: {name} is not"):
        store.check_internals()


def test_check_internals_of_stores_fails_loudly_when_the_extern_layout_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Wider(ctypes.Structure):
        _fields_ = [("kind", ctypes.c_uint8), ("of", ctypes.c_byte * 40)]

    monkeypatch.setattr(store, "raw", _FakeRaw(fastcall.raw, wasmtime_extern_t=Wider))
    with pytest.raises(RuntimeError, match="wasmtime_extern_t"):
        store.check_internals()


def test_check_internals_fails_loudly_when_a_binding_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastcall, "raw",
                        _FakeRaw(fastcall.raw, _wasmtime_func_call_unchecked=None))
    with pytest.raises(RuntimeError, match="wasmtime_func_call_unchecked"):
        fastcall.check_internals()


def test_check_internals_fails_loudly_on_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0.0")
    with pytest.raises(RuntimeError, match=r"needs wasmtime==.*found 99\.0\.0"):
        fastcall.check_internals()


def test_check_internals_fails_loudly_when_the_raw_value_layout_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Wider(ctypes.Union):
        _fields_ = [("i32", ctypes.c_int32), ("i64", ctypes.c_int64), ("v128", ctypes.c_byte * 32)]

    monkeypatch.setattr(fastcall, "raw", _FakeRaw(fastcall.raw, wasmtime_val_raw_t=Wider))
    with pytest.raises(RuntimeError, match="sizeof"):
        fastcall.check_internals()


def test_check_internals_fails_loudly_when_the_host_callback_type_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)
    monkeypatch.setattr(fastcall, "raw",
                        _FakeRaw(fastcall.raw, wasmtime_func_unchecked_callback_t=other))
    with pytest.raises(RuntimeError, match="unchecked host callback type"):
        fastcall.check_internals()


# ---- the fast path itself -----------------------------------------------------------

ADD = """
(module
  (import "h" "twice" (func $twice (param i64) (result i64)))
  (import "h" "fail" (func $fail))
  (func (export "add") (param i32 i64) (result i64)
    (i64.add (i64.extend_i32_s (local.get 0)) (call $twice (local.get 1))))
  (func (export "fail") (result i32) (call $fail) (i32.const 0))
  (func (export "trap") (result i32) unreachable))
"""


def _export(store: wasmtime.Store, inst: wasmtime.Instance, name: str) -> wasmtime.Func:
    f = inst.exports(store)[name]
    assert isinstance(f, wasmtime.Func)
    return f


_FAULTS: list[BaseException] = []  # what the host functions below raised, newest last


def _instance() -> tuple[wasmtime.Store, wasmtime.Instance, list[Any]]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    keep: list[Any] = []

    def fail(*args: int) -> None:  # a host function takes the guest's ints (here none)
        raise KeyError("host side")

    fastcall.define_host(linker, "h", "twice", (I64,), (I64,), lambda *x: 2 * x[0], keep,
                         _FAULTS.append)
    fastcall.define_host(linker, "h", "fail", (), (), fail, keep, _FAULTS.append)
    inst = linker.instantiate(store, wasmtime.Module(engine, ADD))
    return store, inst, keep


def test_raw_call_passes_ints_and_host_functions_receive_ints() -> None:
    store, inst, _keep = _instance()
    add = fastcall.RawFunc(store, _export(store, inst, "add"), (I32, I64), (I64,))
    assert add.call(-5, 1 << 40) == fastcall.OK
    assert add.result_i64() == -5 + (2 << 40)


def test_raw_call_reports_a_trap_without_raising() -> None:
    store, inst, _keep = _instance()
    trap = fastcall.RawFunc(store, _export(store, inst, "trap"), (), (I32,))
    assert trap.call0() == fastcall.TRAP
    assert trap.trap_code == fastcall.TRAP_UNREACHABLE
    assert trap.call0() == fastcall.TRAP  # the function stays callable


def test_host_function_exception_stops_the_guest_and_is_kept_for_the_caller() -> None:
    store, inst, _keep = _instance()
    fail = fastcall.RawFunc(store, _export(store, inst, "fail"), (), (I32,))
    # wasmtime 50 reports a trap returned by an unchecked host callback as an error
    # (ERROR), not through the trap slot; callers treat both alike.
    assert fail.call0() in (fastcall.TRAP, fastcall.ERROR)
    exc = _FAULTS.pop()
    assert isinstance(exc, KeyError)
