"""docs/DESIGN.md §5.2 and §5.10: load-time checks, and a rejected install changes nothing.

What if a graft imports something that is not on its point's graft-callable list, or
arrives malformed? ``install`` raises ``GraftRejected`` naming the graft, the point and
the reason, and the registry, every principal's usage, the locks and the host state are
exactly as they were (compared as full snapshots, with a bystander graft installed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from vino import limits
from vino.errors import GraftRejected
from vino.graft import GLOBAL, loader

from .graft_world import (
    IMPORT_KALLOC,
    IMPORT_LOCK,
    IMPORT_LOG,
    IMPORT_PUT,
    TARGET,
    World,
    graft,
    pick_returning,
)

PICK = '(func (export "pick") (result i32) i32.const 1)'


def _bystander(w: World) -> None:
    """A live graft elsewhere, so the snapshots have something to lose."""
    w.install(pick_returning(3), w.root, GLOBAL, name="bystander")
    assert w.pick("elsewhere", 0) == 3


def _assert_rejected(w: World, source: loader.Source, why: str, *, point: str = "test.pick",
                     target: object = TARGET) -> GraftRejected:
    _bystander(w)
    w.host.d[1] = 1
    before = w.snapshot()
    grafts = w.registry.grafts()
    with pytest.raises(GraftRejected) as info:
        w.registry.install(point, source, w.alice, target, name="evil")
    exc = info.value
    assert exc.graft == "evil"
    assert exc.point == point
    assert why in exc.reason, exc.reason
    assert f"'evil' rejected at '{point}'" in str(exc)
    assert w.snapshot() == before
    assert w.registry.grafts() == grafts
    assert w.pick("elsewhere", 0) == 3  # the bystander still answers
    return exc


# ---- §5.2: nothing but the point's graft-callables can be imported ---------------------------

@pytest.mark.parametrize("imp, why", [
    ('(import "env" "system" (func (param i32) (result i32)))',
     'grafts may import only from module "vino"'),
    ('(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
     'grafts may import only from module "vino"'),
    ('(import "vino" "exec" (func (param i32) (result i32)))',
     "is not a graft-callable of test.pick"),
    ('(import "vino" "registry" (func))', "is not a graft-callable of test.pick"),
    ('(import "vino" "put" (func (param i64 i32) (result i32)))',
     "has type (i64, i32) -> (i32); test.pick offers (i32, i32) -> (i32)"),
    ('(import "vino" "lock" (func (param i32)))', "test.pick offers (i32) -> (i32)"),
    ('(import "vino" "now" (func (result i32)))', "test.pick offers () -> (i64)"),
    ('(import "vino" "memory" (memory 1))', "only functions may be imported"),
    ('(import "vino" "table" (table 1 funcref))', "only functions may be imported"),
    ('(import "vino" "secret" (global i32))', "only functions may be imported"),
], ids=["env", "wasi", "unlisted-name", "unlisted-void", "put-wrong-type", "lock-wrong-type",
        "now-wrong-type", "memory", "table", "global"])
def test_graft_importing_anything_not_on_the_list_is_rejected_and_changes_nothing(
        world: World, imp: str, why: str) -> None:
    _assert_rejected(world, graft(imp, PICK), why)


def test_graft_of_a_memory_imported_from_the_host_is_rejected(world: World) -> None:
    # The memory import comes first, so the module has no memory of its own to export.
    src = ('(module (import "vino" "memory" (memory 1)) (export "memory" (memory 0))'
           ' (func (export "vino_buffer") (result i32) i32.const 0) ' + PICK + ")")
    _assert_rejected(world, src, "only functions may be imported, not a memory")


@pytest.mark.parametrize("imp, why", [
    ('(import "vino" "default" (func (result i32)))', "is not a graft-callable of test.event"),
    ('(import "vino" "boom" (func (result i32)))', "is not a graft-callable of test.event"),
], ids=["default-on-event", "other-points-callable"])
def test_graft_importing_a_callable_of_another_point_is_rejected(
        world: World, imp: str, why: str) -> None:
    src = graft(imp, '(func (export "on_event") (result i32) i32.const 0)')
    _assert_rejected(world, src, why, point="test.event")


def test_graft_importing_only_listed_callables_with_their_types_is_accepted(world: World) -> None:
    g = world.install(pick_returning(9, IMPORT_PUT + IMPORT_LOCK + IMPORT_LOG + IMPORT_KALLOC))
    assert world.pick(TARGET, 0) == 9
    assert g.stats.commits == 1


# ---- §5.10: malformed modules -----------------------------------------------------------------

def _buffer_at(offset: int) -> str:
    return ('(module (memory (export "memory") 1)'
            f' (func (export "vino_buffer") (result i32) i32.const {offset}) {PICK})')


MALFORMED: dict[str, tuple[str | bytes, str]] = {
    "not-wasm-bytes": (b"MZ\x90\x00 this is not a module", "WAT does not parse"),
    "not-wat-text": ("(module (func $f (result i32) i32.const", "WAT does not parse"),
    "wat-type-error": (graft("", '(func (export "pick") (result i32) i64.const 1)'),
                       "invalid WebAssembly"),
    "truncated-binary": (b"\0asm\x01\0\0\0\x01\x7f\x00", "malformed module"),
    "bad-version": (b"\0asm\x02\0\0\0", "invalid WebAssembly"),
    "start-function": (graft("", "(func $init) (start $init)", PICK), "start function"),
    "too-many-functions": (graft("", "(func)" * (limits.MAX_FUNCTIONS + 1), PICK),
                           f"the limit is {limits.MAX_FUNCTIONS}"),
    "too-many-exports": (graft("", "".join(f'(func (export "f{i}"))'
                                           for i in range(limits.MAX_EXPORTS)), PICK),
                         f"the limit is {limits.MAX_EXPORTS}"),
    "no-memory-export": ('(module (memory 1) (func (export "vino_buffer") (result i32) i32.const 0)'
                         f" {PICK})", 'missing export "memory"'),
    "no-vino-buffer": (f'(module (memory (export "memory") 1) {PICK})',
                       "missing export 'vino_buffer'"),
    "vino-buffer-wrong-type": ('(module (memory (export "memory") 1)'
                               ' (func (export "vino_buffer") (result i64) i64.const 0)'
                               f" {PICK})", "export 'vino_buffer' has type () -> (i64)"),
    "no-entry": (graft(""), "missing export 'pick'"),
    "entry-wrong-type": (graft("", '(func (export "pick") (param i32) (result i32) i32.const 1)'),
                         "export 'pick' has type (i32) -> (i32); test.pick needs () -> (i32)"),
    "entry-is-a-global": (graft("", '(global (export "pick") i32 (i32.const 1))'),
                          "missing export 'pick'"),
    "message-wrong-type": (graft("", PICK, '(func (export "vino_message") (result i32)'
                                               " i32.const 0)"),
                           "'vino_message' must be a function (i32) -> (i32)"),
    "two-memories": (graft("", "(memory 1)", PICK), "more than one memory"),
    "two-tables": (graft("", "(table 1 funcref) (table 1 funcref)", PICK), "more than one table"),
    "memory-min-over-limit": (
        f'(module (memory (export "memory") {limits.MAX_MEMORY_PAGES + 1})'
        f' (func (export "vino_buffer") (result i32) i32.const 0) {PICK})', "exceed"),
    "memory-max-over-limit": (
        f'(module (memory (export "memory") 1 {limits.MAX_MEMORY_PAGES + 1})'
        f' (func (export "vino_buffer") (result i32) i32.const 0) {PICK})', "exceed"),
    "memory64": ('(module (memory (export "memory") i64 1)'
                 f' (func (export "vino_buffer") (result i32) i32.const 0) {PICK})',
                 "uses memory64 (64-bit memories), which vino does not enable"),
    "shared-memory": ('(module (memory (export "memory") 1 1 shared)'
                      f' (func (export "vino_buffer") (result i32) i32.const 0) {PICK})',
                      "uses threads (shared memory and atomics), which vino does not enable"),
    "table-over-limit": (graft("", f'(table (export "t") {limits.MAX_TABLE_ELEMENTS + 1} funcref)',
                               PICK), f"exceed {limits.MAX_TABLE_ELEMENTS} elements"),
    "hidden-table-over-limit": (graft("", f"(table {limits.MAX_TABLE_ELEMENTS + 1} funcref)", PICK),
                                f"exceed {limits.MAX_TABLE_ELEMENTS} elements"),
    "buffer-past-memory-end": (_buffer_at(65536 - 63), "do not fit in linear memory"),
    "buffer-at-negative-offset": (_buffer_at(-1), "do not fit in linear memory"),
    "buffer-far-away": (_buffer_at(0x7FFFFFFF), "do not fit in linear memory"),
    "vino-buffer-traps": ('(module (memory (export "memory") 1)'
                          f' (func (export "vino_buffer") (result i32) unreachable) {PICK})',
                          "vino_buffer() failed (trap)"),
    "vino-buffer-spins": ('(module (memory (export "memory") 1)'
                          ' (func (export "vino_buffer") (result i32) (loop br 0) i32.const 0)'
                          f" {PICK})", "vino_buffer() failed (timeout)"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_graft_that_is_malformed_is_rejected_and_changes_nothing(world: World, name: str) -> None:
    source, why = MALFORMED[name]
    _assert_rejected(world, source, why)


def test_graft_needing_more_memory_than_its_principal_has_left_is_rejected(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"memory_bytes": 2 * limits.WASM_PAGE})
    w.install(pick_returning(1), name="first")  # one page of the two
    src = ('(module (memory (export "memory") 2)'
           f' (func (export "vino_buffer") (result i32) i32.const 0) {PICK})')
    _assert_rejected(w, src, "exceeds what is left of alice's memory quota", target="t2")


def test_graft_whose_vino_buffer_grows_memory_past_the_quota_is_rejected(
        new_world: Callable[..., World]) -> None:
    w = new_world(alice_quota={"memory_bytes": 2 * limits.WASM_PAGE})
    src = ('(module (memory (export "memory") 1)'
           ' (func (export "vino_buffer") (result i32) (drop (memory.grow (i32.const 2)))'
           f' i32.const 0) {PICK})')
    _assert_rejected(w, src, "would exceed the quota")


def test_graft_whose_vino_buffer_allocates_and_then_fails_leaks_nothing(world: World) -> None:
    # The allocation commits with vino_buffer's transaction; the buffer check fails
    # after it. The principal must not stay charged for a graft that never existed.
    src = (f'(module {IMPORT_KALLOC} (memory (export "memory") 1)'
           ' (func (export "vino_buffer") (result i32) (drop (call $kalloc (i32.const 4096)))'
           f' i32.const 65530) {PICK})')
    _assert_rejected(world, src, "do not fit in linear memory")


def test_graft_on_a_target_that_already_has_one_is_rejected_without_replace(world: World) -> None:
    world.install(pick_returning(5))
    exc = _assert_rejected(world, pick_returning(6), "already has graft")
    assert "replace=True" in exc.reason
    assert world.pick(TARGET, 0) == 5


def test_graft_on_an_undeclared_point_is_refused(world: World) -> None:
    before = world.snapshot()
    with pytest.raises(ValueError, match=r"no graft point named 'test\.nowhere'"):
        world.registry.install("test.nowhere", pick_returning(1), world.alice, TARGET)
    assert world.snapshot() == before


def test_check_runs_every_load_time_check_and_changes_nothing(world: World) -> None:
    before = world.snapshot()
    checked = world.registry.check(world.pick, pick_returning(1), world.alice, TARGET, "ok")
    assert checked.name == "ok"
    assert not checked.has_message
    with pytest.raises(GraftRejected, match="not a graft-callable"):
        world.registry.check(world.pick, graft('(import "vino" "x" (func))', PICK), world.alice,
                              TARGET)
    assert world.snapshot() == before


# ---- the loader accepts WAT text, bytes and a path -----------------------------------------

def test_loader_accepts_wat_text_wat_bytes_wasm_bytes_and_paths(
        world: World, tmp_path: Path) -> None:
    text = pick_returning(42)
    wasm = loader.read_source(text)[0]
    assert wasm[:4] == b"\0asm"
    (tmp_path / "as_text.wat").write_text(text)
    (tmp_path / "as_binary.wasm").write_bytes(wasm)
    sources: list[tuple[loader.Source, str]] = [
        (text, "graft-wat"),
        (text.encode(), "graft-wat"),
        (wasm, "graft-" + hashlib.sha256(wasm).hexdigest()[:12]),
        (bytearray(wasm), "graft-" + hashlib.sha256(wasm).hexdigest()[:12]),
        (tmp_path / "as_text.wat", "as_text"),
        (tmp_path / "as_binary.wasm", "as_binary"),
    ]
    for i, (source, name) in enumerate(sources):
        g = world.registry.install(world.pick, source, world.alice, f"target-{i}")
        assert g.name == name
        assert g.digest == hashlib.sha256(wasm).hexdigest()  # the same module each time
        assert world.pick(f"target-{i}", 0) == 42
    # A string is source text, never a path (tests/attacks/test_attack_source_paths.py).
    for path in (str(tmp_path / "as_text.wat"), str(tmp_path / "as_binary.wasm")):
        with pytest.raises(GraftRejected, match="not a file name"):
            world.registry.install(world.pick, path, world.alice, "target-str")


def test_loader_names_a_path_it_cannot_read(world: World, tmp_path: Path) -> None:
    before = world.snapshot()
    with pytest.raises(GraftRejected, match="cannot read"):
        world.install(tmp_path / "missing.wasm")
    assert world.snapshot() == before
