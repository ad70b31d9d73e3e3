"""Attacks on the loader: make the host compile (the one costly step) for nothing.

Before, the loader compiled first and checked rights and counts after: a 470 KB
module of 60,002 tiny functions took seconds to be refused, by a principal with
no rights at all, and stayed in the sandbox's cache (six refusals: +442 MB).
Now the checks run cheapest first (size, rights, section scan against named
limits) and compiling comes last. Each attack counts the compiles it caused (a
spy on ``Sandbox.compile``, the only way in) and checks that nothing is cached
and nothing changed.
"""

from __future__ import annotations

import hashlib
import types
from typing import Any

import pytest
import wasmtime

from vino import limits
from vino.errors import GraftRejected
from vino.graft import GLOBAL, Principal, Quota, loader

from .engine_caches import cache_entries, cached
from .harness import Tenancy, in_child, module, pick, pick_returning


class Spy:
    """Counts compiles of one sandbox."""

    def __init__(self, t: Tenancy) -> None:
        self.compiles = 0
        sandbox = t.registry.sandbox
        real = sandbox.compile

        def counting(wasm: bytes) -> Any:
            self.compiles += 1
            return real(wasm)

        sandbox.compile = counting  # type: ignore[method-assign]


@pytest.fixture
def arena(tenancy: Tenancy) -> Tenancy:
    tenancy.install(pick_returning(3), tenancy.root, GLOBAL, name="bystander")
    return tenancy


def _refused(t: Tenancy, source: str | bytes, why: str, *, target: Any = "t1",
             principal: Principal | None = None, compiles: int = 0) -> None:
    spy = Spy(t)
    before = t.snapshot()
    caches = cache_entries(t)
    with pytest.raises(GraftRejected) as info:
        t.install(source, principal, target, name="evil")
    assert why in info.value.reason, info.value.reason
    assert spy.compiles == compiles
    t.assert_unchanged(before)
    assert cache_entries(t) == caches  # a rejected module is remembered nowhere
    assert not cached(t, source)
    assert t.pick("elsewhere", 0) == 3  # the bystander still answers


def _with_imports(imports: str) -> str:
    """A graft whose import section is ``imports`` (raw WAT), answering 1."""
    return ('(module ' + imports + ' (memory (export "memory") 1)'
            ' (func (export "vino_buffer") (result i32) i32.const 0)'
            ' (func (export "pick") (result i32) i32.const 1))')


MANY_FUNCTIONS = pick("i32.const 1", [], "(func)" * 60_002)


def test_principal_without_rights_cannot_make_the_host_compile_anything(
        arena: Tenancy) -> None:
    _refused(arena, MANY_FUNCTIONS, "may not graft atk.pick on GLOBAL", target=GLOBAL)


def test_module_of_60002_tiny_functions_is_refused_before_compiling(arena: Tenancy) -> None:
    _refused(arena, MANY_FUNCTIONS, f"the limit is {limits.MAX_FUNCTIONS}")


def test_webassembly_text_is_parsed_at_the_installers_expense(arena: Tenancy) -> None:
    # Parsing text is work too (8 MB of it: 0.23 s of CPU and 120 MB): before, it was
    # charged to nobody, so installs refused at the scan cost their principal nothing.
    cpu = arena.alice.usage.cpu_ns
    _refused(arena, MANY_FUNCTIONS, f"the limit is {limits.MAX_FUNCTIONS}")
    assert arena.alice.usage.cpu_ns > cpu


@pytest.mark.parametrize("kind", ["binary", "text"])
def test_module_too_large_is_refused_before_it_is_copied_hashed_or_decoded(
        arena: Tenancy, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    # A 64 MB upload: before, the loader copied and hashed a binary (SHA-256: ~0.15 s),
    # or decoded text to a str, before looking at its size.
    big = 64 << 20
    source = (b"\0asm\x01\0\0\0" + bytes(big) if kind == "binary"
              else b"(module" + b" " * big + b")")
    hashed: list[int] = []
    real = hashlib.sha256

    def sha256(data: bytes = b"") -> Any:
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(loader, "hashlib", types.SimpleNamespace(sha256=sha256))
    monkeypatch.setattr(loader, "_wat", lambda text: pytest.fail("decoded and parsed"))
    with pytest.raises(GraftRejected, match="the limit is"):
        arena.install(source, name="evil")
    assert not [n for n in hashed if n > limits.MAX_MODULE_BYTES]


def test_function_declaring_50000_locals_is_refused_before_compiling(arena: Tenancy) -> None:
    src = pick("i32.const 1", [], "(func (local" + " i32" * 50_000 + "))")
    _refused(arena, src, "a function declares 50000 locals; the limit is "
                         f"{limits.MAX_LOCALS_PER_FUNCTION}")


def test_one_huge_function_body_is_refused_before_compiling(arena: Tenancy) -> None:
    src = pick("i32.const 1", [], "(func" + " (drop (i32.const 1))" * 30_000 + ")")
    _refused(arena, src, f"; the limit is {limits.MAX_FUNCTION_BODY_BYTES}")


def _loops(n: int, nested: bool = True, nlocals: int = 0, nparams: int = 0) -> str:
    """A function of ``n`` loops, nested or one after another; the innermost changes each of
    its ``nlocals`` locals (or ``nparams`` parameters)."""
    decl = (f"(param{' i32' * nparams}) " if nparams else "") + \
        (f"(local{' i32' * nlocals}) " if nlocals else "")
    sets = "".join(f"(local.set {i} (i32.const 1))" for i in range(nlocals + nparams))
    body = "(loop " * n + sets + ")" * n if nested else "(loop) " * n + sets
    return f"(func {decl}{body})"


# Compile time grows with the square of a function's loops: one 64 KiB body of 21,800
# nested loops compiled in 13 s of CPU and 240 MB; a 1 MiB module holds 15 such bodies.
@pytest.mark.parametrize("nested", [True, False])
def test_function_of_21000_loops_is_refused_before_compiling(arena: Tenancy,
                                                            nested: bool) -> None:
    src = pick("i32.const 1", [], _loops(21_000, nested))
    _refused(arena, src, f"a function has 21000 loops; the limit is "
                         f"{limits.MAX_LOOPS_PER_FUNCTION} (compile time grows with their "
                         "square)")


def test_loops_split_over_many_functions_are_counted_together(arena: Tenancy) -> None:
    n = limits.MAX_LOOPS_PER_FUNCTION
    src = pick("i32.const 1", [], *[_loops(n)] * 5)
    _refused(arena, src, f"module has {5 * n} loops; the limit is {limits.MAX_LOOPS}")


# Each loop's head merges every local its body may change: 1,024 nested loops over 1,024
# locals compiled in 1.95 s from 12 KB; 86 functions of 16 over 1,024, 2.35 s.
@pytest.mark.parametrize(("loops", "nlocals", "nparams"), [(1024, 1024, 0), (300, 0, 1000)])
def test_loops_over_many_locals_or_parameters_are_refused_before_compiling(
        arena: Tenancy, loops: int, nlocals: int, nparams: int) -> None:
    src = pick("i32.const 1", [], _loops(loops, True, nlocals, nparams))
    weight = loops * (1 + nlocals + nparams)
    _refused(arena, src, f"module's loops weigh {weight} (each 1 + its function's locals "
                         f"and parameters); the limit is {limits.MAX_LOOP_WEIGHT}")


def test_grafts_at_the_loop_limits_install_and_code_full_of_threes_is_not_a_loop(
        arena: Tenancy) -> None:
    n = limits.MAX_LOOPS_PER_FUNCTION
    per = limits.MAX_LOOPS // n
    at_limit = pick("i32.const 1", [], *[_loops(n)] * per)
    heavy = limits.MAX_LOOP_WEIGHT // limits.MAX_LOCALS_PER_FUNCTION  # loops, 1023 locals
    at_weight = pick("i32.const 1", [], _loops(heavy, True, limits.MAX_LOCALS_PER_FUNCTION - 1))
    threes = pick("i32.const 3", [], "(func" + " (drop (i32.const 3))" * 5000 + ")")
    # Every 0x03 byte counted as a loop would refuse the last.
    for src in (at_limit, at_weight, threes):
        cpu = arena.alice.usage.cpu_ns
        g = arena.install(src, target="t2")
        assert arena.pick("t2", 0) in (1, 3) and not g.aborts
        assert arena.alice.usage.cpu_ns > cpu  # counting and compiling: charged
        g.remove()


@pytest.mark.parametrize(("imports", "why"), [
    ('(import "env" "put" (func (param i32 i32) (result i32)))', "only from module \"vino\""),
    ('(import "vino" "g" (global i32))', "only functions may be imported, not a global"),
    ('(import "vino" "system" (func))', "is not a graft-callable of atk.pick"),
    ('(import "vino" "put" (func))' * (limits.MAX_IMPORTS + 1), "imports; the limit is"),
])
def test_forbidden_imports_are_refused_before_compiling(arena: Tenancy, imports: str,
                                                         why: str) -> None:
    _refused(arena, _with_imports(imports), why)


def test_module_refused_after_compiling_leaves_nothing_cached_and_is_charged(
        arena: Tenancy) -> None:
    src = module([], '(func (export "pick") (param i32) (result i32) i32.const 1)')
    cpu = arena.alice.usage.cpu_ns
    _refused(arena, src, "export 'pick' has type (i32) -> (i32)", compiles=1)
    assert arena.alice.usage.cpu_ns > cpu  # the compile was charged to the installer


def test_module_whose_vino_buffer_traps_leaves_nothing_cached(arena: Tenancy) -> None:
    src = ('(module (memory (export "memory") 1)'
           ' (func (export "vino_buffer") (result i32) unreachable)'
           ' (func (export "pick") (result i32) i32.const 1))')
    _refused(arena, src, "vino_buffer() failed (trap): unreachable executed", compiles=1)


def test_principal_out_of_cpu_cannot_make_the_host_compile(arena: Tenancy) -> None:
    broke = Principal("broke", Quota(cpu_total_s=0.0))
    _refused(arena, pick("i32.const 1"), "has used its total CPU quota", principal=broke)


def test_webassembly_text_too_long_to_parse_is_refused_unparsed(arena: Tenancy) -> None:
    src = pick("i32.const 1") + ";;" + "x" * limits.MAX_WAT_CHARS
    _refused(arena, src, f"the limit is {limits.MAX_WAT_CHARS}")


def test_the_same_graft_installed_twice_is_compiled_once(arena: Tenancy) -> None:
    spy = Spy(arena)
    src = pick_returning(5)
    arena.install(src, target="t1")
    arena.install(src, target="t2")
    assert spy.compiles == 1 and cached(arena, src)
    assert arena.pick("t2", 0) == 5


# ---- the caches: a module is remembered by its exact bytes, per point, and only once
# installed; every check that depends on the installer runs on every install.

def _binary(source: str) -> bytes:
    return bytes(wasmtime.wat2wasm(source))


def _one_byte_changed(wasm: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and wasm.count(old) == 1
    changed = wasm.replace(old, new)
    assert sum(a != b for a, b in zip(wasm, changed, strict=True)) == 1
    return changed


def test_module_one_byte_away_from_a_cached_one_is_checked_in_full(arena: Tenancy) -> None:
    good = _binary(pick_returning(5))
    arena.install(good, target="t1")
    assert cached(arena, good)
    # Its entry renamed by one byte: compiled and refused, not taken for the cached one.
    renamed = _one_byte_changed(good, b"pick", b"pack")
    _refused(arena, renamed, "missing export 'pick'", compiles=1)
    # Its answer changed by one byte: compiled on its own, and its own code runs.
    spy = Spy(arena)
    six = _one_byte_changed(good, b"\x41\x05\x0b", b"\x41\x06\x0b")
    arena.install(six, target="t2")
    assert spy.compiles == 1 and cached(arena, six)
    assert (arena.pick("t1", 0), arena.pick("t2", 0)) == (5, 6)


def test_module_refused_once_is_refused_again_in_full(arena: Tenancy) -> None:
    src = module([], '(func (export "pick") (param i32) (result i32) i32.const 1)')
    for _ in range(2):  # no verdict is remembered: the second attempt compiles again
        _refused(arena, src, "export 'pick' has type (i32) -> (i32)", compiles=1)


def test_module_cached_for_one_principal_is_checked_against_the_next_ones_quota() -> None:
    t = Tenancy(bob_quota={"memory_bytes": limits.WASM_PAGE})
    try:
        two_pages = pick("i32.const 4", memory_pages=2)
        t.install(two_pages, t.alice, "t1")
        assert cached(t, two_pages)
        before = t.snapshot()
        with pytest.raises(GraftRejected, match="initial memory of 131072 bytes exceeds what"):
            t.install(two_pages, t.bob, "t2")
        t.assert_unchanged(before)
        assert t.pick("t1", 0) == 4  # alice's graft is untouched
    finally:
        t.close()


def test_module_cached_at_one_point_is_checked_again_at_another(arena: Tenancy) -> None:
    src = pick_returning(5)
    arena.install(src, target="t1")
    before = arena.snapshot()
    with pytest.raises(GraftRejected, match="missing export 'on_event'"):
        arena.handle(src, target="t1")
    arena.assert_unchanged(before)


def test_hostile_module_cannot_make_another_principal_run_its_code(arena: Tenancy) -> None:
    hostile = _binary(pick_returning(66))
    arena.install(hostile, arena.alice, "t1")
    honest = _binary(pick_returning(7))
    g = arena.install(honest, arena.bob, "t2")
    assert g.digest == hashlib.sha256(honest).hexdigest() != hashlib.sha256(hostile).hexdigest()
    assert (arena.pick("t1", 0), arena.pick("t2", 0)) == (66, 7)


# A passive element segment is compiled and kept by the host, one byte of the binary per
# element: before MAX_SEGMENT_ELEMENTS, 1,040,000 of them (a 1 MiB module) took 16.7 s
# of CPU and 2.3 GB of host memory to compile -- the memory charged to nobody.
_SEGMENTS = {
    "function indices": "(elem func {})",
    "reference expressions": "(elem funcref {})",
    "null references": "(elem funcref {})",
}
_ITEM = {"function indices": "$f ", "reference expressions": "(ref.func $f) ",
         "null references": "(ref.null func) "}


def _with_segments(kind: str, *sizes: int) -> str:
    segs = [_SEGMENTS[kind].format(_ITEM[kind] * n) for n in sizes]
    return pick("i32.const 1", [], "(table 1 funcref)", *segs, "(func $f)")


@pytest.mark.parametrize("kind", list(_SEGMENTS))
def test_element_segment_of_100000_elements_is_refused_before_compiling(
        arena: Tenancy, kind: str) -> None:
    _refused(arena, _with_segments(kind, 100_000),
             f"element segments hold more than {limits.MAX_SEGMENT_ELEMENTS} elements")


def test_elements_split_over_many_segments_are_counted_together(arena: Tenancy) -> None:
    n = limits.MAX_SEGMENT_ELEMENTS // 4
    _refused(arena, _with_segments("function indices", n, n, n, n, 1),
             f"element segments hold more than {limits.MAX_SEGMENT_ELEMENTS} elements")


def test_element_segments_up_to_the_limit_still_install(arena: Tenancy) -> None:
    n = limits.MAX_SEGMENT_ELEMENTS // 4
    g = arena.install(_with_segments("function indices", n, n, n, n), name="ok")
    assert arena.pick("t1", 0) == 1 and g.state == "live"


# Instantiating a module is a ctypes call that keeps the GIL. wasmtime may reach the
# store's epoch deadline while it initialises the element segments, and the epoch
# callback used to let the GIL go as if a RawCall had entered the guest -- but nothing
# took it back: the call returned into Python without its thread state, and the host
# died of SIGSEGV within 11-91 installs of a table-filling module (and ~1 suite in 4).
_FILL_THE_TABLE = """
import sys
from harness import Tenancy, pick
from vino import limits
n = limits.MAX_SEGMENT_ELEMENTS // 4
seg = "(elem func {})".format("$f " * n)
src = pick("i32.const 1", [], "(table 1 funcref)", seg, seg, seg, seg, "(func $f)")
t = Tenancy()
answers = 0
for i in range(INSTALLS):
    g = t.install(src, name=f"g{i}", target=f"t{i % 50}")
    answers += t.pick(f"t{i % 50}", 0)
    g.remove()
t.close()
report(answers)
"""


def test_grafts_filling_the_table_at_every_install_cannot_crash_the_host_at_instantiation(
        ) -> None:
    installs = 300
    child = in_child(_FILL_THE_TABLE.replace("INSTALLS", str(installs)), timeout_s=240.0)
    assert not child.timed_out and child.returncode == 0, child.stderr[-2000:]
    assert child.result() == installs  # every install instantiated and answered 1
