"""Python's meaning, or an abort: compiled grafts against the same source run as Python.

Each test compiles a small graft for ``fs.access`` (fields: file_id, block, op,
time_ns) and runs it twice on the same buffer: compiled, in a bare wasmtime
instance (``rig.Rig``), and as plain Python (``shim.run``). The answer must be
the same, or the compiled graft must have trapped where Python raised or where a
value left 64 bits.
"""

from __future__ import annotations

import textwrap
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vino.kernel.layouts import ACCESS, EVICT
from vino.pygraft import compile_source, shim
from vino.pygraft.compiler import I64_MAX, I64_MIN

from .rig import TRAP, Rig

CAND, CAND_AT = EVICT.elements("cand", 1), EVICT.field("cand").offset  # a row, pad skipped

U32S = st.integers(0, 2**32 - 1)
U63S = st.integers(0, 2**63 - 1)


def build(src: str) -> tuple[Rig, types.ModuleType]:
    text = textwrap.dedent(src)
    return Rig(compile_source(text, ACCESS), ACCESS), shim.load(text)


def access_buf(file_id: int, block: int, op: int, time_ns: int) -> bytearray:
    buf = bytearray(ACCESS.buffer_size)
    ACCESS.fields.struct().pack_into(buf, 0, file_id, block, op, time_ns)  # pad: "x" bytes
    return buf


def both(rig: Rig, mod: types.ModuleType, buf: bytearray) -> tuple[int | None, object]:
    compiled, _ = rig.call(buf)
    try:
        plain: object = shim.run(mod, ACCESS, bytearray(buf))
    except Exception as exc:
        plain = exc
    return compiled, plain


ARITH = """
    def compute(a: int, b: int, k: int) -> int:
        if k == 0:
            return a + b
        if k == 1:
            return a - b
        if k == 2:
            return a * b
        if k == 3:
            return a // b
        if k == 4:
            return a % b
        if k == 5:
            return a << (b % 70)
        if k == 6:
            return a >> (b % 300 - 100)
        if k == 7:
            return -a
        if k == 8:
            return abs(a)
        if k == 9:
            return min(a, b) - max(b, a)
        if k == 10:
            return a & b ^ (a | b)
        if k == 11:
            return ~a
        if k == 12:  # bounded: plain Python would build a gigantic int for a << 2**40
            return a << (b % 300 - 100)
        return int(a < b) + 2 * int(a <= b) + 4 * int(a == b) + 8 * int(-5 < a <= b)

    def operand(hi: int, lo: int, neg: bool) -> int:
        v = (hi & 0x7FFFFFFF) * 4294967296 + lo
        if neg:
            return -v - 1
        return v

    def on_access(file_id: int, block: int, op: int, time_ns: int) -> int:
        a = time_ns
        if op & 16:
            a = -time_ns - 1
        b = operand(block, file_id, op & 32 != 0)
        if op & 64:
            b = file_id % 200 - 100
        return compute(a, b, op % 16) % 2147483629
"""


@settings(max_examples=300, deadline=None)
@given(file_id=U32S, block=U32S, op=st.integers(0, 127), time_ns=U63S)
def test_arithmetic_means_python_or_traps_exactly_when_python_cannot_fit(
        file_id: int, block: int, op: int, time_ns: int) -> None:
    rig, mod = _ARITH
    compiled, plain = both(rig, mod, access_buf(file_id, block, op, time_ns))
    a = -time_ns - 1 if op & 16 else time_ns
    b = file_id % 200 - 100 if op & 64 else mod.operand(block, file_id, op & 32 != 0)
    try:
        exact: int | None = mod.compute(a, b, op % 16)
    except (ZeroDivisionError, ValueError, MemoryError, OverflowError):
        exact = None
    if exact is None or not I64_MIN <= exact <= I64_MAX:
        assert compiled is TRAP, (a, b, op % 16, compiled)
    else:
        assert compiled == plain == exact % 2147483629


_ARITH = build(ARITH)


def test_floor_division_and_modulo_round_like_python_on_negatives() -> None:
    rig, mod = build("""
        def on_access(file_id: int, block: int, op: int, time_ns: int) -> int:
            a = file_id - 1000
            b = block - 7
            return (a // b) * 100000 + a % b
    """)
    for fid, blk in [(993, 0), (1007, 0), (993, 14), (1007, 14), (0, 3), (2000, 11)]:
        compiled, plain = both(rig, mod, access_buf(fid, blk, 0, 0))
        a, b = fid - 1000, blk - 7
        assert compiled == plain == (a // b) * 100000 + a % b


def test_graft_that_divides_by_zero_traps_where_python_raises() -> None:
    rig, mod = build("""
        def on_access(file_id: int, block: int, op: int, time_ns: int) -> int:
            return file_id // block
    """)
    compiled, plain = both(rig, mod, access_buf(5, 0, 0, 0))
    assert compiled is TRAP and isinstance(plain, ZeroDivisionError)


def test_u64_field_past_i64_traps_instead_of_turning_negative() -> None:
    rig, _ = build("""
        def on_access(time_ns: int) -> int:
            return 1 if time_ns > 0 else 0
    """)
    assert rig.call(access_buf(0, 0, 0, 2**63 - 1))[0] == 1
    assert rig.call(access_buf(0, 0, 0, 2**63))[0] is TRAP


INDEXING = """
    table: list[int] = [10, 20, 30, 40]

    def on_access(file_id: int, block: int, op: int) -> int:
        local = [0] * 5
        for i in range(5):
            local[i] = i * i
        if op == 0:
            return table[file_id - 4]
        return local[block - 5]
"""


@settings(max_examples=60, deadline=None)
@given(file_id=st.integers(0, 12), block=st.integers(0, 15), op=st.integers(0, 1))
def test_negative_indexes_count_from_the_end_and_out_of_range_traps(
        file_id: int, block: int, op: int) -> None:
    rig, mod = _INDEXING
    compiled, plain = both(rig, mod, access_buf(file_id, block, op, 0))
    if isinstance(plain, IndexError):
        assert compiled is TRAP
    else:
        assert compiled == plain


_INDEXING = build(INDEXING)


def test_state_persists_between_calls_and_loops_break_and_continue() -> None:
    rig, mod = build("""
        from vino.pygraft import u32

        calls: int = 0
        seen: list[u32] = [0] * 8

        def count_odd(n: int) -> int:
            total = 0
            i = 0
            while True:
                i += 1
                if i > n:
                    break
                if i % 2 == 0:
                    continue
                total += 1
            return total

        def on_access(block: int) -> int:
            global calls
            calls += 1
            seen[calls % 8] = block
            best = 0
            for j in range(7, -1, -1):
                best = max(best, seen[j])
            return calls * 1000000 + best * 1000 + count_odd(block)
    """)
    for blk in [3, 9, 4, 100, 0]:
        compiled, plain = both(rig, mod, access_buf(0, blk, 0, 0))
        assert compiled == plain


def test_helper_recursion_and_arrays_passed_to_helpers() -> None:
    rig, mod = build("""
        def fib(n: int) -> int:
            if n < 2:
                return n
            return fib(n - 1) + fib(n - 2)

        def fill(xs: list[int], v: int) -> None:
            for i in range(len(xs)):
                xs[i] = v + i

        def total(xs: list[int]) -> int:
            s = 0
            for i in range(len(xs)):
                s += xs[i]
            return s

        def on_access(block: int, op: int) -> int:
            xs = [0] * 6
            fill(xs, op)
            return fib(block % 20) + total(xs)
    """)
    for blk, op in [(0, 0), (10, 3), (19, 7)]:
        compiled, plain = both(rig, mod, access_buf(0, blk, op, 0))
        assert compiled == plain


@settings(max_examples=200, deadline=None)
@given(x=U32S, y=U32S, n=st.integers(0, 40))
def test_u32_helpers_wrap_exactly_as_the_shim(x: int, y: int, n: int) -> None:
    rig, _ = _U32
    got, _ = rig.call(access_buf(x, y, n, 0))
    expect = (shim.u32_add(x, y) ^ shim.rotl32(x, n) ^ shim.u32_mul(x, y) ^ shim.rotr32(y, n)
              ^ shim.u32_sub(y, x) ^ shim.to_u32(-x - y)) & 0x7FFFFFFF
    assert got == expect


_U32 = build("""
    from vino.pygraft import rotl32, rotr32, to_u32, u32_add, u32_mul, u32_sub

    def on_access(file_id: int, block: int, op: int) -> int:
        v = u32_add(file_id, block) ^ rotl32(file_id, op) ^ u32_mul(file_id, block)
        v = v ^ rotr32(block, op) ^ u32_sub(block, file_id) ^ to_u32(-file_id - block)
        return v & 0x7FFFFFFF
""")


def test_row_fields_and_out_of_range_answer_are_python_meaning() -> None:
    src = textwrap.dedent("""
        from vino.pygraft import Row

        def evict(cand: list[Row]) -> int:
            best = -1
            for i in range(len(cand)):
                if best < 0 or cand[i].last_use < cand[best].last_use:
                    best = i
            return cand[best].vpn
    """)
    rig, mod = Rig(compile_source(src, EVICT), EVICT), shim.load(src)
    buf = bytearray(EVICT.buffer_size)
    EVICT.rows("cand", 0).pack_into(buf, 0, 3)
    for i, (vpn, use) in enumerate([(7, 5), (8, 2), (9, 9)]):
        CAND.pack_into(buf, CAND_AT + CAND.size * i, i, vpn, 0, use)
    assert rig.call(buf)[0] == shim.run(mod, EVICT, bytearray(buf)) == 8
    EVICT.rows("cand", 0).pack_into(buf, 0, 0)  # no rows: cand[-1] is out of range in both
    assert rig.call(buf)[0] is TRAP
    with pytest.raises(IndexError):
        shim.run(mod, EVICT, bytearray(buf))


CONSTS = [0, 1, 3, -7, 2**31, -(2**40), 2**62, -(2**63), 2**63 - 1]
CONST_ARITH = "def compute(a: int, k: int) -> int:\n" + "".join(
    f"    if k == {i}:\n        return a + ({c})\n"
    f"    if k == {i + 100}:\n        return a - ({c})\n"
    f"    if k == {i + 200}:\n        return a * ({c})\n"
    f"    if k == {i + 300}:\n        return ({c}) * a\n" for i, c in enumerate(CONSTS)
) + "    return 0\n" + """
def on_access(file_id: int, op: int, time_ns: int) -> int:
    a = time_ns
    if file_id & 1:
        a = -time_ns - 1
    return compute(a, op) % 2147483629
"""


@settings(max_examples=300, deadline=None)
@given(file_id=st.integers(0, 1), k=st.sampled_from(
    [i + j for i in range(len(CONSTS)) for j in (0, 100, 200, 300)]),
    time_ns=st.one_of(U63S, st.integers(2**63 - 2**20, 2**63 - 1), st.integers(0, 2**20)))
def test_arithmetic_with_a_constant_operand_traps_exactly_when_python_leaves_64_bits(
        file_id: int, k: int, time_ns: int) -> None:
    rig, mod = _CONST_ARITH
    compiled, _ = rig.call(access_buf(file_id, 0, k, time_ns))
    exact = mod.compute(-time_ns - 1 if file_id & 1 else time_ns, k)
    if I64_MIN <= exact <= I64_MAX:
        assert compiled == exact % 2147483629
    else:
        assert compiled is TRAP


_CONST_ARITH = build(CONST_ARITH)


def test_loop_that_moves_its_counter_past_the_array_still_traps() -> None:
    """Bounds checks are dropped only where the loop proves the index in range."""
    rig, mod = build("""
        def on_access(block: int, op: int) -> int:
            xs = [0] * 8
            total = 0
            for i in range(len(xs)):
                xs[i] = i
                total += xs[i]
            for i in range(len(xs)):
                i += op
                total += xs[i]
            return total
    """)
    for op in (0, 1):
        compiled, plain = both(rig, mod, access_buf(0, 0, op, 0))
        if op == 0:
            assert compiled == plain == 56
        else:
            assert compiled is TRAP and isinstance(plain, IndexError)


def test_graft_callables_are_called_alike_compiled_and_as_plain_python() -> None:
    src = textwrap.dedent("""
        from vino.pygraft import kalloc, lock, log, now, vm_hint

        def evict(n: int) -> int:
            log("choosing")
            got = lock(1) + now()
            h = kalloc(64)
            vm_hint(n, 1)
            if n > 2:
                log("many")
            return got + h * 0
    """)
    rig = Rig(compile_source(src, EVICT), EVICT, shim.Host(clock=lambda: 5))
    mod = shim.load(src)
    buf = bytearray(EVICT.buffer_size)
    EVICT.rows("cand", 0).pack_into(buf, 0, 3)
    h = shim.Host(clock=lambda: 5)
    assert rig.call(buf)[0] == shim.run(mod, EVICT, bytearray(buf), (), h) == 5
    assert rig.host.logs == h.logs == ["choosing", "many"]
    assert rig.host.calls == h.calls == [("kalloc", 64), ("vm_hint", 3, 1)]


def test_graft_callable_argument_past_i32_traps_where_python_raises() -> None:
    src = "from vino.pygraft import vm_hint\n\ndef evict(n: int) -> int:\n" \
          "    return vm_hint(n * 4294967296, 1)\n"
    rig, mod = Rig(compile_source(src, EVICT), EVICT), shim.load(src)
    buf = bytearray(EVICT.buffer_size)
    EVICT.rows("cand", 0).pack_into(buf, 0, 1)
    assert rig.call(buf)[0] is TRAP and not rig.host.calls
    with pytest.raises(OverflowError):
        shim.run(mod, EVICT, bytearray(buf))
