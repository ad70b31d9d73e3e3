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


class Target:
    """A target that hashes and compares by identity, as the kernel's do: the plain
    slot remembers the graft it found for such a target."""


class Rehashed:
    """A target whose hash changes: a lookup after the change may find nothing, so no
    slot may answer from what it found before."""

    def __init__(self) -> None:
        self.h = 1

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return other is self


ANSWER1 = ANSWER0.replace('"xform") (result i32) i32.const 0', '"xform") (result i32) i32.const 1')


@needs_native
def test_a_plain_slot_never_answers_from_a_graft_it_found_before_the_table_changed(
        point: AnyPoint) -> None:
    """The native slot remembers the graft it found last (no lookup while nothing changed);
    after every change of the table, the point's fields or a target's hash it answers as
    its Python twin and the point itself, step by step."""
    assert point.registry is not None
    reg = point.registry
    who = tenant("slots", privileged=True)
    a, b, r = Target(), Target(), Rehashed()
    native, python = point.on_first(native=True), point.on_first(native=False)
    decode = point.decode
    seen: list[int] = []

    def direct(target: object, data: Any, grow: int) -> object:
        return point(target, target, data, grow)

    def tagged(buf: memoryview, ret: int, target: object, data: Any, grow: int) -> bytes:
        seen.append(ret)
        return bytes(decode(buf, ret, target, data, grow))

    def same(target: object) -> object:
        answers = []
        for slot in (native, native, python, direct):
            seen.clear()
            answers.append((slot(target, b"ab", 0), tuple(seen)))
        assert answers.count(answers[0]) == 4, answers
        return answers[0]

    point.decode = tagged
    assert same(a) == (b"d:", ())  # nothing installed: the default
    ga = reg.install(point, ANSWER0, who, a, remove_after=NEVER_REMOVE)
    assert same(a) == (b"BA", (0,))
    assert same(b) == (b"d:", ())
    gg = reg.install(point, ANSWER1, who, GLOBAL, remove_after=NEVER_REMOVE)
    assert same(b) == (b"BA", (1,))  # the GLOBAL graft for a target without its own
    gb0 = reg.install(point, ANSWER0, who, b, remove_after=NEVER_REMOVE)
    assert same(b) == (b"BA", (0,))  # its own now, the GLOBAL one still installed
    reg.remove(gb0)
    assert same(b) == (b"BA", (1,))
    assert same(a) == (b"BA", (0,))
    reg.remove(ga)
    assert same(a) == (b"BA", (1,))  # its own removed: the GLOBAL one
    reg.remove(gg)
    assert same(a) == (b"d:", ()) and same(b) == (b"d:", ())
    reg.install(point, ANSWER1, who, r, remove_after=NEVER_REMOVE)
    assert same(r) == (b"BA", (1,))
    r.h = 2  # the table cannot find it any more: the default, in every slot
    assert same(r) == (b"d:", ())
    r.h = 1
    gb = reg.install(point, ANSWER1, who, b, remove_after=NEVER_REMOVE)
    assert same(b) == (b"BA", (1,))
    saved = point.table
    point.table = {}  # the point's field replaced: nothing installed as far as calls see
    assert same(b) == (b"d:", ())
    point.table = saved
    assert same(b) == (b"BA", (1,))
    reg.remove(gb)
    assert same(b) == (b"d:", ())


@needs_native
def test_a_callable_that_keeps_the_calls_arguments_sees_them_unchanged_later(
        point: AnyPoint) -> None:
    """The native slot reuses the tuple of its last call's arguments for the next one
    unless somebody else holds it: a graft-callable keeping ``txn.args`` keeps its own."""
    from vino.graft import I32, GraftCallable
    from vino.graft.txn import Transaction

    kept: list[tuple[object, ...]] = []

    def keep(txn: Transaction, i: int) -> int:
        assert txn.args is not None
        kept.append(txn.args)
        return 0

    reg = Registry()
    p: AnyPoint = reg.declare(FunctionPoint(
        name="slots.keep", entry="xform", buffer_size=64, encode=lambda buf, *a: (),
        decode=_decode, default=_default, may_install=any_principal, target_type=object,
        callables=(GraftCallable("keep", (I32,), (I32,), keep),)))
    try:
        wat = '''(module
  (import "vino" "keep" (func $keep (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "xform") (result i32) (call $keep (i32.const 0))))'''
        t = Target()
        reg.install(p, wat, tenant("slots", privileged=True), t, remove_after=NEVER_REMOVE)
        slot = p.on_first(native=True)
        firsts = [bytearray(b"ab"), bytearray(b"cd"), bytearray(b"ef")]
        for data in firsts:
            assert slot(t, data, 0) == bytes(data).upper()[::-1]
        assert [k[1] for k in kept] == firsts and all(k[0] is t for k in kept)
        assert len({id(k) for k in kept}) == 3  # each call its own tuple, none reused
    finally:
        reg.close()


@needs_native
def test_a_plain_slot_leaks_nothing_while_it_remembers_and_reuses(point: AnyPoint) -> None:
    a, b = Target(), Target()
    _install(point, a)
    slot = point.on_first(native=True)

    def run() -> object:
        for target in (a, a, b, a):
            slot(target, bytearray(b"abcd"), 0)
        return None

    assert blocks_kept(run, 300) < 60
