"""Attacks through WebAssembly SIMD, which only points that declare it allow.

The engine compiles SIMD (128-bit vectors) for the points whose grafts transform
blocks (``Point.simd``: the kernel's ``fs.filter``, for its ciphers); every other
point refuses a module using it at load, naming the feature, exactly as a disabled
feature is refused (``test_attack_engine_features``). Here the tenancy gets a
second function point, ``atk.vec``, declared with ``simd=True``, and a tenant tries
to carry vector code over to ``atk.pick`` (the same bytes, already compiled and
cached for ``atk.vec``; a vector only in a local's type), to use relaxed SIMD
(results that differ by machine: refused everywhere), and to escape a vector
point's limits (a vector loop that never ends; a 16-byte store across the end of
its memory). Each leaves the host as it was.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vino.errors import GraftRejected, InvalidResult
from vino.graft import FunctionPoint, Graft, any_principal
from vino.graft.point import U32
from vino.testing.world import BUFFER, CALL_BUDGET_S, DEFAULT_ANSWER

from .engine_caches import cache_entries, cached
from .harness import TARGET, AbortReason, Tenancy, in_child, module, pick, pick_returning

NOT_ENABLED = "uses SIMD (vector instructions), which vino does not enable"

# Adds 1 to each lane of (0, 1, 2, 3) and answers lane 2: 3.
VECTOR_PICK = pick(
    "(i32x4.extract_lane 2 (i32x4.add (v128.const i32x4 0 1 2 3) (v128.const i32x4 1 1 1 1)))")
V128_LOCAL_ONLY = module([], '  (func (export "pick") (result i32) (local $v v128)\n'
                             "    i32.const 3)")
RELAXED = pick("(i32x4.extract_lane 0 (i32x4.relaxed_trunc_f32x4_s "
               "(v128.const f32x4 1.5 0 0 0)))")
VECTOR_LOOP = pick("""(local $v v128)
    (loop $l
      (local.set $v (i32x4.add (local.get $v) (v128.const i32x4 1 2 3 4)))
      (br $l))
    i32.const 3""")
# A 16-byte store at 65536 - 8: half of it past the end of the one-page memory.
VECTOR_STORE_PAST_END = pick(
    "(v128.store (i32.const 65528) (v128.const i32x4 -1 -1 -1 -1)) i32.const 3")


class VectorTenancy(Tenancy):
    """The tenancy with a second function point, ``atk.vec``, that allows SIMD."""

    def __init__(self) -> None:
        super().__init__()

        def encode(buf: memoryview, x: int) -> tuple[int, ...]:
            U32.pack_into(buf, 0, x)
            return ()

        def decode(buf: memoryview, ret: int, x: int) -> int:
            if not 0 <= ret <= 100:
                raise InvalidResult(f"vec answered {ret}, not in 0..100")
            return ret

        def default(x: int) -> int:
            self.vec_defaults += 1
            return DEFAULT_ANSWER

        self.vec_defaults = 0
        self.vec: FunctionPoint[str, int, int] = self.registry.declare(FunctionPoint(
            name="atk.vec", entry="pick", buffer_size=BUFFER, encode=encode, decode=decode,
            default=default, may_install=any_principal, target_type=str,
            budget_s=CALL_BUDGET_S, simd=True))

    def install_vec(self, source: str) -> Graft:
        return self.registry.install(self.vec, source, self.alice, TARGET)


@pytest.fixture
def vectors() -> Iterator[VectorTenancy]:
    t = VectorTenancy()
    yield t
    t.close()


def test_vector_graft_cached_for_a_simd_point_is_still_rejected_on_one_without(
        vectors: VectorTenancy) -> None:
    vectors.install(pick_returning(3), vectors.root, name="bystander")
    g = vectors.install_vec(VECTOR_PICK)
    assert vectors.vec(TARGET, 0) == 3 and not g.aborts
    assert cached(vectors, VECTOR_PICK)
    before = vectors.snapshot()
    caches = cache_entries(vectors)
    with pytest.raises(GraftRejected) as info:
        vectors.install(VECTOR_PICK, name="evil")
    assert info.value.reason.startswith(NOT_ENABLED), info.value.reason
    assert "atk.pick" in info.value.reason
    vectors.assert_unchanged(before)
    assert cache_entries(vectors) == caches
    assert vectors.pick(TARGET, 0) == 3


def test_graft_with_a_vector_only_in_a_locals_type_is_rejected_on_a_point_without_simd(
        vectors: VectorTenancy) -> None:
    before = vectors.snapshot()
    with pytest.raises(GraftRejected) as info:
        vectors.install(V128_LOCAL_ONLY, name="evil")
    assert info.value.reason.startswith(NOT_ENABLED), info.value.reason
    vectors.assert_unchanged(before)
    assert not cached(vectors, V128_LOCAL_ONLY)


def test_relaxed_simd_is_rejected_even_on_a_simd_point_naming_it(
        vectors: VectorTenancy) -> None:
    before = vectors.snapshot()
    with pytest.raises(GraftRejected) as info:
        vectors.install_vec(RELAXED)
    assert info.value.reason.startswith("uses relaxed SIMD"), info.value.reason
    vectors.assert_unchanged(before)
    assert not cached(vectors, RELAXED)


@pytest.mark.parametrize(("source", "reason"), [(VECTOR_LOOP, AbortReason.TIMEOUT),
                                                (VECTOR_STORE_PAST_END, AbortReason.TRAP)])
def test_vector_graft_that_loops_forever_or_stores_past_its_memory_is_stopped(
        vectors: VectorTenancy, source: str, reason: AbortReason) -> None:
    before = vectors.snapshot()
    g = vectors.install_vec(source)
    assert vectors.vec(TARGET, 5) == DEFAULT_ANSWER
    assert vectors.vec_defaults == 1
    vectors.assert_survived(before, g, reason)


# On a SIMD point a vector may appear in the signature of a function the module imports or
# exports: the loader compares those signatures with the point's. It read them through
# wasmtime's C API, whose value-type kind aborts the process on a v128 ("support for v128
# is not implemented"): any user could kill the kernel with a filter on her own file.
_V128_SIGNATURES = """
import tempfile
from pathlib import Path
from harness import KernelArena
from vino.errors import GraftRejected

FILTER = '(func (export "vino_filter") (param i32 i32) (result i32) local.get 1)'
BUFFER = '(func (export "vino_buffer") (result i32) i32.const 0)'
ATTACKS = {
    "entry param": (BUFFER, '(func (export "vino_filter") (param v128 i32) (result i32) '
                            'i32.const 0)'),
    "entry result": (BUFFER, '(func (export "vino_filter") (param i32 i32) (result v128) '
                             'v128.const i64x2 0 0)'),
    "buffer result": ('(func (export "vino_buffer") (result v128) v128.const i64x2 0 0)',
                      FILTER),
    "import param": ('(import "vino" "log" (func (param v128)))', BUFFER, FILTER),
    "message param": (BUFFER, FILTER, '(func (export "vino_message") (param v128) '
                                      '(result i32) i32.const 0)'),
}
with tempfile.TemporaryDirectory() as d:
    arena = KernelArena(Path(d))
    k, bob = arena.k, arena.tenants["bob"]
    before = arena.snapshot()
    reasons = {}
    for what, fields in ATTACKS.items():
        src = "(module " + fields[0] + ' (memory (export "memory") 1) ' + " ".join(fields[1:]) + ")"
        try:
            k.graft(bob.user, "fs.filter", src, target=arena.inode(bob.file), name="evil")
            reasons[what] = "installed"
        except GraftRejected as exc:
            reasons[what] = exc.reason
    arena.assert_unchanged(before)
    with k.fs.open(bob.proc, bob.file, "r") as f:
        data = k.fs.read(f, 12).decode()
    arena.close()
report({"reasons": reasons, "data": data})
"""


def test_graft_with_a_vector_in_an_imported_or_exported_signature_is_rejected_not_fatal(
        ) -> None:
    child = in_child(_V128_SIGNATURES, timeout_s=120.0)
    assert not child.timed_out and child.returncode == 0, child.stderr[-2000:]
    got = child.result()
    reasons = got["reasons"]
    assert set(reasons) == {"entry param", "entry result", "buffer result", "import param",
                            "message param"}
    assert reasons["entry param"] == ("export 'vino_filter' has type (v128, i32) -> (i32); "
                                      "fs.filter needs (i32, i32) -> (i32)")
    assert reasons["entry result"] == ("export 'vino_filter' has type (i32, i32) -> (v128); "
                                       "fs.filter needs (i32, i32) -> (i32)")
    assert reasons["buffer result"] == ("export 'vino_buffer' has type () -> (v128); "
                                        "fs.filter needs () -> (i32)")
    assert reasons["import param"].startswith("import vino.log has type (v128) -> (); "
                                              "fs.filter offers ("), reasons
    assert reasons["message param"] == "export 'vino_message' must be a function (i32) -> (i32)"
    assert got["data"] == "bob's data b"  # his file reads as it did
