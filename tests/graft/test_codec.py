"""Declared codecs (``codec.py``): the native protected call runs them in C, the Python
path calls them; both must write the same bytes, answer the same and fail the same.

Each case calls two grafts of one module through one point: one through the native
entry, one through ``Graft.invoke``, and compares what came back (an answer, or the
exception's type and words), the buffer's bytes, and each graft's counters and records.
"""

from __future__ import annotations

import ctypes
import enum
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from vino.errors import InvalidDeclaration
from vino.graft import I32, I64, FunctionPoint, Graft, Registry, any_principal, fastpath
from vino.graft.codec import InRange, Scalars
from vino.graft.layout import I32K, U8, U32, U64, Arg, Field, Layout, Struct
from vino.limits import NEVER_REMOVE
from vino.testing.leaks import blocks_kept
from vino.testing.world import tenant

NATIVE = fastpath.protected(fastpath.native())
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"the protected call is not native "
                                  f"here: {fastpath.PART.reason or 'VINO_FASTPATH'}")

LAYOUT = Layout(point="codec.pick", entry="pick", buffer_size=64,
                fields=Struct("codec_buf", (Field("b", U8, 0), Field("u", U32, 4),
                                            Field("s", I32K, 8), Field("q", U64, 16))),
                args=(Arg("a", I32), Arg("w", I64)))
INTO = ("b", "u", "s", "q", "a", "w")
DEFAULT = 99
# Answers its i32 parameter, after writing its i64 one at 32 (for the test to read).
ECHO = '''(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "pick") (param i32 i64) (result i32)
    (i64.store (i32.const 32) (local.get 1))
    local.get 0))'''


AnyPoint = FunctionPoint[Any, *tuple[Any, ...], Any]


class Small(enum.IntEnum):
    ONE = 1


@pytest.fixture
def twins() -> Iterator[tuple[AnyPoint, Graft, Graft]]:
    reg = Registry()
    point: AnyPoint = reg.declare(FunctionPoint(
        name=LAYOUT.point, entry="pick", buffer_size=LAYOUT.buffer_size, params=(I32, I64),
        encode=Scalars(LAYOUT, INTO), decode=InRange(-5, 100, "codec.pick"),
        default=lambda *args: DEFAULT, may_install=any_principal, target_type=object))
    who = tenant("codec")
    native = reg.install(point, ECHO, who, "native", remove_after=NEVER_REMOVE)
    python = reg.install(point, ECHO, who, "python", remove_after=NEVER_REMOVE)
    python.call = python.invoke
    if NATIVE is not None:
        assert native._native is not None and native.call is native._native
    yield point, native, python
    reg.close()


def _outcome(point: AnyPoint, g: Graft, args: tuple[object, ...]
             ) -> tuple[object, bytes, tuple[object, ...]]:
    g.buffer[:] = b"\xee" * len(g.buffer)  # whatever is not written shows
    try:
        got: object = point(g.target, *args)
    except Exception as exc:  # a host fault reaches the caller
        got = (type(exc).__name__, str(exc))
    return got, bytes(g.buffer), (g.stats.commits, dict(g.stats.aborts), g.failures,
                                  [(a.reason, a.detail) for a in g.aborts])


CASES: list[tuple[object, ...]] = [
    (1, 2, -3, 4, 5, 6),
    (255, 2**32 - 1, -2**31, 2**64 - 1, 100, -1),  # every field at its edge
    (0, 0, 2**31 - 1, 0, -5, -2**63),
    (256, 2, 3, 4, 5, 6),  # out of its field's range: the Python codec's struct.error
    (1, -1, 3, 4, 5, 6),
    (1, 2, 2**31, 4, 5, 6),
    (1, 2, 3, -1, 5, 6),
    (1, 2, 3, 2**64, 5, 6),
    (True, 2, 3, 4, 5, 6),  # an int subclass: the Python codec decides
    (Small.ONE, Small.ONE, 3, 4, Small.ONE, 6),
    (1, 2, 3, 4, 2**32 + 7, 2**64 + 9),  # Wasm parameters are masked to their width
    (1, 2, 3, 4, -6, 6),  # an answer below the range: rejected, the default answers
    (1, 2, 3, 4, 101, 6),
    (1, 2, 3, 4, 5),  # an argument missing
    (1, 2, 3, 4, 5, 6, 7),
    (1, 2, 3, 4, 5.0, 6),  # a float for a Wasm parameter
    (1, 2, 3, 4, "5", 6),
    (1, 2, 3, 4, 5, None),
    ("1", 2, 3, 4, 5, 6),
]


@needs_native
@pytest.mark.parametrize("args", CASES, ids=[str(i) for i in range(len(CASES))])
def test_declared_codecs_in_c_write_answer_and_fail_as_their_python(
        twins: tuple[AnyPoint, Graft, Graft], args: tuple[object, ...]
        ) -> None:
    point, native, python = twins
    for _ in range(2):  # the first call compiles the codecs, the second runs them compiled
        assert _outcome(point, native, args) == _outcome(point, python, args)


@needs_native
def test_the_c_codecs_really_ran_and_wrote_every_field(
        twins: tuple[AnyPoint, Graft, Graft]) -> None:
    """Guards the comparison above: what the native call wrote, byte by byte."""
    point, native, _ = twins
    got, buf, counters = _outcome(point, native, (0xAB, 0x01020304, -2, 2**64 - 2, 42, -7))
    assert got == 42 and counters[0] == 1
    assert buf[0] == 0xAB and buf[1:4] == b"\xee" * 3  # a gap is left as it was
    assert buf[4:8] == bytes([4, 3, 2, 1]) and buf[8:12] == (-2).to_bytes(4, "little", signed=True)
    assert buf[16:24] == (2**64 - 2).to_bytes(8, "little")
    assert buf[32:40] == (-7).to_bytes(8, "little", signed=True)  # the i64 parameter


@needs_native
def test_a_codec_replaced_on_a_live_point_is_the_one_that_runs(
        twins: tuple[AnyPoint, Graft, Graft]) -> None:
    """The native entry compiles a codec once and keeps it only while the point's
    fields are unchanged: a new encode or decode is used from the next call on."""
    point, native, _ = twins
    args = (1, 2, 3, 4, 50, 6)
    assert point("native", *args) == 50
    declared = point.encode, point.decode
    point.encode = lambda buf, *a: (7, 8)  # another encode: the entry's arguments differ
    assert point("native", *args) == 7
    point.decode = lambda buf, ret, *a: ret * 2
    assert point("native", *args) == 14
    point.encode, point.decode = declared
    assert point("native", *args) == 50
    point.decode = InRange(0, 10, "codec.pick")  # a new range: 50 is now refused
    assert point("native", *args) == DEFAULT
    assert native.aborts[-1].detail.endswith("codec.pick answered 50, not in 0..10")


class _Emptier:
    """An entry's argument whose ``__index__`` empties the list the encoder answered (a
    caller's object can reach it: ``gc.get_referrers``), then gives 5."""

    def __init__(self, victims: list[list[object]]) -> None:
        self.victims = victims

    def __index__(self) -> int:
        for v in self.victims:
            v.clear()
            v.extend(object() for _ in range(64))  # its array freed and another made
        return 5


@needs_native
def test_an_argument_whose_index_empties_the_encoders_list_cannot_crash_the_host(
        twins: tuple[AnyPoint, Graft, Graft]) -> None:
    """The native call converts the entry's arguments as ``RawFunc.call(*args)`` does:
    the encoder's list taken whole first (read in place, a cleared list's freed array
    was read past its end)."""
    point, native, python = twins
    made: list[list[object]] = []

    def encode(buf: memoryview, *args: object) -> list[object]:
        out = [_Emptier(made), 2**40 + 3]
        made.append(out)
        return out

    point.encode = encode  # type: ignore[assignment]
    point.decode = lambda buf, ret, *a: ret
    for g in (native, python):
        for _ in range(3):
            made.clear()
            assert point(g.target, 0) == 5
            assert bytes(g.memory.read(32, 8)) == (2**40 + 3).to_bytes(8, "little")


# Answers its i32 parameter; traps on 13.
TRAPS_ON_13 = '''(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "pick") (param i32 i64) (result i32)
    (if (i32.eq (local.get 0) (i32.const 13)) (then unreachable))
    local.get 0))'''

LEAK_CALLS = 1_000  # per path in the default run (a leak per call: >= this many blocks)
LEAK_CALLS_SLOW = 200_000
LEAK_PATHS: dict[str, tuple[object, ...]] = {
    "answered": (1, 2, 3, 4, 5, 6),
    "an answer refused": (1, 2, 3, 4, 101, 6),
    "an argument refused": (256, 2, 3, 4, 5, 6),
    "an int subclass (the Python codec)": (Small.ONE, 2, 3, 4, 5, 6),
    "a trap": (1, 2, 3, 4, 13, 6),
    "an argument missing": (1, 2, 3, 4, 5),
}


def _leak_check(calls: int) -> None:
    reg = Registry()
    point: AnyPoint = reg.declare(FunctionPoint(
        name=LAYOUT.point, entry="pick", buffer_size=LAYOUT.buffer_size, params=(I32, I64),
        encode=Scalars(LAYOUT, INTO), decode=InRange(-5, 100, "codec.pick"),
        default=lambda *args: DEFAULT, may_install=any_principal, target_type=object))
    g = reg.install(point, TRAPS_ON_13, tenant("leaks"), "t", remove_after=NEVER_REMOVE)
    assert NATIVE is None or g.call is g._native
    try:
        kept = {}
        for name, args in LEAK_PATHS.items():
            def run(args: tuple[object, ...] = args) -> object:
                try:
                    return point("t", *args)
                except Exception as exc:  # a refused input reaches the caller
                    return exc

            kept[name] = blocks_kept(run, calls)
        assert all(n < calls // 4 for n in kept.values()), kept
    finally:
        reg.close()


def test_the_protected_call_leaks_nothing_on_any_path() -> None:
    """Answers taken and refused, inputs refused and left to the Python, traps: a
    reference kept by mistake on one path shows as a block per call."""
    _leak_check(LEAK_CALLS)


@pytest.mark.slow
def test_the_protected_call_leaks_nothing_on_any_path_over_many_calls() -> None:
    _leak_check(LEAK_CALLS_SLOW)


@needs_native
def test_a_protected_call_over_a_raw_call_never_initialised_is_refused(
        twins: tuple[AnyPoint, Graft, Graft]) -> None:
    """``RawCall.__new__`` makes one with no function: a ``Protected`` over it called a
    null pointer at its first call (the process gone); it is refused when made."""
    assert NATIVE is not None
    _, g, _ = twins
    raw = NATIVE.RawCall.__new__(NATIVE.RawCall)
    ticks = g._ticks
    with pytest.raises(ValueError, match="null"):
        NATIVE.Protected(g, g.point, g._txn, g.stats, g._usage, g._events, g._mutex, g.entry,
                         raw, "iq", ticks, ctypes.addressof(ticks),  # type: ignore[arg-type]
                         g._cpu_total_ns,
                         g._undo_quota, g.may_grow, g._msize[1])
    with pytest.raises(TypeError):
        raw()  # not callable until made properly (no vectorcall yet)


def test_a_codec_refuses_what_it_cannot_declare() -> None:
    with pytest.raises(InvalidDeclaration, match="not a scalar field"):
        Scalars(Layout(point="p", entry="e", buffer_size=64, fields=Struct(
            "s", (Field("arr", U32, 0, count=4),))), ("arr",))
    with pytest.raises(KeyError):
        Scalars(LAYOUT, ("nowhere",))
    with pytest.raises(InvalidDeclaration, match="every Wasm parameter"):
        Scalars(LAYOUT, ("b", "a"))  # w has no argument
    with pytest.raises(InvalidDeclaration, match="i32 range"):
        InRange(0, 2**31, "p")


def test_without_the_native_module_counters_and_usage_are_python_ints() -> None:
    """``VINO_FASTPATH=python``: no C anywhere; the Python twins count the same."""
    script = textwrap.dedent("""
        from vino.graft import stats, accounting
        from vino.testing.world import TARGET
        from tests.graft.graft_world import make_world, pick_returning
        assert stats._NATIVE is None and stats.Stats.__mro__[1] is stats._Counters
        assert accounting.Usage.__mro__[1] is accounting._UsageCounters
        w = make_world()
        g = w.install(pick_returning(9))
        assert g._native is None
        assert [w.pick(TARGET, x) for x in range(17)] == [9] * 17
        assert g.stats.commits == 17 and g.stats.samples == 2 and g.stats.graft_ns > 0
        assert w.alice.usage.cpu_ns > 0 and w.alice.usage.snapshot()["handles"] == 0
        w.registry.close()
        print("ok")
    """)
    env = {**os.environ, "VINO_FASTPATH": "python"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
