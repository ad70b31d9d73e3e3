"""A point's policy slots (``FunctionPoint.on_first`` and ``on_first_in_place``): the
native ``Targeted`` and its Python twin, called the same way, must answer, seal, replace
in place and fail the same.

``on_first_in_place`` is the filter's slot (``kernel/points.py``): with no graft
installed anywhere it runs ``empty``; before a call the target's or the ``GLOBAL`` graft
answers it records the target in ``seal`` (the filter's guard fails closed for such a
file afterwards); the answer replaces the buffer argument in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vino.graft import GLOBAL, FunctionPoint, Registry, any_principal, fastpath
from vino.limits import NEVER_REMOVE
from vino.testing.leaks import blocks_kept
from vino.testing.world import tenant

NATIVE = fastpath.protected(fastpath.native())
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"the protected call is not native "
                                  f"here: {fastpath.PART.reason or 'VINO_FASTPATH'}")

ANSWER0 = '''(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "xform") (result i32) i32.const 0))'''

AnyPoint = FunctionPoint[Any, *tuple[Any, ...], Any]


class Boom(Exception):
    pass


def _default(target: object, data: Any, grow: int) -> bytes:
    if grow < 0:
        raise Boom("the default failed")
    return b"d:" + bytes(data)[: len(data) - 2 + grow] if len(data) >= 2 else bytes(data)


def _decode(buf: memoryview, ret: int, target: object, data: Any, grow: int) -> bytes:
    return bytes(data).upper()[::-1]


@pytest.fixture
def point() -> Iterator[AnyPoint]:
    reg = Registry()
    p: AnyPoint = reg.declare(FunctionPoint(
        name="slots.xform", entry="xform", buffer_size=64, encode=lambda buf, *a: (),
        decode=_decode, default=_default, may_install=any_principal, target_type=object))
    yield p
    reg.close()


def _install(point: AnyPoint, target: object) -> None:
    assert point.registry is not None
    point.registry.install(point, ANSWER0, tenant("slots", privileged=True), target,
                           remove_after=NEVER_REMOVE)


def _run(point: AnyPoint, native: bool, target: object, data: Any, grow: int,
         empty_fails: bool = False) -> tuple[object, ...]:
    """One call of a fresh in-place slot: what it answered or raised, the buffer after,
    what it sealed, what ``empty`` saw."""
    seal: dict[int, object] = {}
    seen: list[tuple[object, ...]] = []

    def empty(*args: object) -> None:
        seen.append(args)
        if empty_fails:
            raise Boom("empty failed")

    slot = point.on_first_in_place(1, seal, empty, native=native)
    if native:
        assert NATIVE is not None and type(slot) is NATIVE.Targeted
    try:
        got: object = slot(target, data, grow)
    except Exception as exc:
        got = (type(exc).__name__, str(exc))
    after = bytes(data) if not isinstance(data, str) else data
    return got, after, sorted(seal.items(), key=repr), seen


Install = Callable[[AnyPoint], None]
SETUPS: dict[str, Install] = {
    "nothing installed": lambda p: None,
    "the target's graft": lambda p: _install(p, "t1"),
    "another target's graft": lambda p: _install(p, "t2"),
    "a GLOBAL graft": lambda p: _install(p, GLOBAL),
}
CALLS: dict[str, tuple[Callable[[], Any], int, bool]] = {
    "a bytearray": (lambda: bytearray(b"abcdef"), 0, False),
    "a bytearray, the answer longer": (lambda: bytearray(b"abcdef"), 3, False),
    "a bytearray, the answer shorter": (lambda: bytearray(b"abcdef"), -1 + 0, False),
    "a memoryview": (lambda: memoryview(bytearray(b"abcdef")), 0, False),
    "a memoryview, the answer longer": (lambda: memoryview(bytearray(b"abcdef")), 2, False),
    "bytes (immutable)": (lambda: b"abcdef", 0, False),
    "a list": (lambda: [1, 2, 3], 0, False),
    "the default fails": (lambda: bytearray(b"abcdef"), -1, False),
    "empty fails": (lambda: bytearray(b"abcdef"), 0, True),
}


@needs_native
@pytest.mark.parametrize("setup", SETUPS, ids=list(SETUPS))
@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_the_in_place_slot_in_c_answers_seals_and_fails_as_its_python(
        point: AnyPoint, setup: str, call: str) -> None:
    SETUPS[setup](point)
    make, grow, empty_fails = CALLS[call]
    for _ in range(2):
        native = _run(point, True, "t1", make(), grow, empty_fails)
        python = _run(point, False, "t1", make(), grow, empty_fails)
        assert native == python


@needs_native
def test_the_in_place_slot_seals_before_the_graft_answers(point: AnyPoint) -> None:
    """Guards the comparison above: what the native slot did, step by step."""
    assert _run(point, True, "t1", bytearray(b"abc"), 0) == (
        None, b"abc", [], [("t1", bytearray(b"abc"), 0)])  # nothing installed: empty ran
    _install(point, "t1")
    data = bytearray(b"abc")
    got, after, sealed, seen = _run(point, True, "t1", data, 0)
    assert (got, after, sealed, seen) == (None, b"CBA", [(id("t1"), "t1")], [])
    got, after, sealed, seen = _run(point, True, "t2", bytearray(b"abcd"), 1)
    assert (got, after, sealed) == (None, b"d:abc", [])  # no graft for t2: the default


@needs_native
def test_the_plain_slot_in_c_is_the_dispatch(point: AnyPoint) -> None:
    _install(point, "t1")
    for native in (True, False):
        slot = point.on_first(native=native)
        assert slot("t1", b"ab", 0) == b"BA"
        assert slot("t2", b"abcd", 0) == b"d:ab"
        with pytest.raises(Boom):
            slot("t2", b"abcd", -1)
        with pytest.raises(TypeError):
            slot()


@needs_native
def test_the_in_place_slot_leaks_nothing_on_any_path(point: AnyPoint) -> None:
    """The graft's answer copied in place, the default's, answers refused (a list, bytes),
    a default and an ``empty`` that raise, nothing installed: a reference kept by mistake
    on one path shows as a block per call."""
    seal: dict[int, object] = {}

    def failing(*args: object) -> None:
        raise Boom("empty failed")

    def calls(slot: Any) -> Callable[[], object]:
        def run() -> object:
            for target, make, grow in (("t1", lambda: bytearray(b"abcdef"), 0),
                                       ("t2", lambda: bytearray(b"abcdef"), 0),
                                       ("t1", lambda: memoryview(bytearray(b"abcdef")), 2),
                                       ("t1", lambda: [1, 2, 3], 0),
                                       ("t1", lambda: b"abcdef", 0),
                                       ("t2", lambda: bytearray(b"abcdef"), -1)):
                with contextlib.suppress(Exception):  # refused: what the slot raises
                    slot(target, make(), grow)
            return None
        return run

    empty = point.on_first_in_place(1, seal, failing, native=True)
    assert blocks_kept(calls(empty), 300) < 60  # nothing installed: empty raises
    _install(point, "t1")
    slot = point.on_first_in_place(1, seal, failing, native=True)
    assert blocks_kept(calls(slot), 300) < 60
