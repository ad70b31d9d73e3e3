"""The build command and the shipped samples: reproducible, stripped, importing only "vino"."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from vino.sdk.build import (
    SAMPLES_DIR,
    SDK_DIR,
    BuildError,
    build,
    sample_path,
    wasm_imports,
)

from .sdk_harness import ENTRIES

SAMPLES = sorted(ENTRIES)
ENGINE = wasmtime.Engine()
PAGE = 65536


def test_every_sample_ships_source_and_module() -> None:
    sources = {p.stem for p in SAMPLES_DIR.glob("*.c")}
    modules = {p.stem for p in SAMPLES_DIR.glob("*.wasm")}
    assert sources == modules == set(SAMPLES)


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_rebuilds_byte_identical(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From an unrelated cwd, writing elsewhere: neither may leak into the bytes.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "rebuilt.wasm"
    data = build(sample_path(name), out)
    assert data == (SAMPLES_DIR / f"{name}.wasm").read_bytes()
    assert out.read_bytes() == data
    assert list(tmp_path.iterdir()) == [out]  # intermediates went to a temporary directory


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_imports_only_vino_and_exports_exactly_its_abi(name: str) -> None:
    data = (SAMPLES_DIR / f"{name}.wasm").read_bytes()
    module = wasmtime.Module(ENGINE, data)
    assert all(imp.module == "vino" for imp in module.imports)
    assert [(i.module, i.name) for i in module.imports] == wasm_imports(data)
    exports = {e.name: e.type for e in module.exports}
    required = {"memory", "vino_buffer", ENTRIES[name]}
    assert required <= exports.keys()
    # No __stack_pointer or other stray symbols: only the ABI's names.
    assert exports.keys() <= required | {"vino_message"}
    memory = exports["memory"]
    assert isinstance(memory, wasmtime.MemoryType)
    # A 16 KiB stack plus the buffer and state fit in one page.
    assert memory.limits.min == 1
    assert memory.limits.max == 16


def _section_ids(data: bytes) -> list[int]:
    ids, pos = [], 8
    while pos < len(data):
        ids.append(data[pos])
        size = shift = 0
        pos += 1
        while True:
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += size
    return ids


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_is_stripped(name: str) -> None:
    # No custom sections (id 0): no debug info, names or producers, hence no paths.
    data = (SAMPLES_DIR / f"{name}.wasm").read_bytes()
    assert 0 not in _section_ids(data)
    assert str(SDK_DIR).encode() not in data


def test_sample_path_resolves_bare_names_and_refuses_unknown_ones() -> None:
    assert sample_path("null") == SAMPLES_DIR / "null.c"
    assert sample_path("null.wasm") == SAMPLES_DIR / "null.wasm"
    with pytest.raises(FileNotFoundError):
        sample_path("no_such_graft")


def _write(tmp_path: Path, text: str) -> Path:
    src = tmp_path / "graft.c"
    src.write_text(text)
    return src


def test_syntax_error_raises_build_error_with_compiler_stderr(tmp_path: Path) -> None:
    src = _write(tmp_path, '#include "vino.h"\nint32_t f(void) { return }\n')
    out = tmp_path / "graft.wasm"
    with pytest.raises(BuildError) as err:
        build(src, out)
    assert "error" in err.value.stderr
    assert "graft.c" in err.value.stderr
    assert not out.exists()


def test_undefined_function_is_a_link_error_not_a_silent_import(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        '#include "vino.h"\nint32_t helper(int32_t);\n'
        'VINO_EXPORT("f") int32_t f(void) { return helper(1); }\n',
    )
    with pytest.raises(BuildError, match="helper"):
        build(src)


def test_import_from_another_module_is_refused(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        '#include "vino.h"\n'
        '__attribute__((import_module("env"), import_name("open"))) int32_t env_open(int32_t);\n'
        'VINO_EXPORT("f") int32_t f(void) { return env_open(1); }\n',
    )
    with pytest.raises(BuildError, match=r"env\.open"):
        build(src)


def test_missing_source_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no such source"):
        build(tmp_path / "absent.c")


def test_libc_style_memcpy_and_memset_link_without_imports(tmp_path: Path) -> None:
    # Code written for a hosted C calls memcpy / memset by name; the header's
    # weak definitions (lowered to memory.copy / memory.fill) must satisfy them.
    src = _write(
        tmp_path,
        '#include "vino.h"\n'
        "void *memcpy(void *, const void *, size_t);\n"
        "void *memset(void *, int, size_t);\n"
        "VINO_BUFFER(256);\n"
        'VINO_EXPORT("f") int32_t f(int32_t n) {\n'
        "  memset(VINO_BUF_BYTES(), 1, (size_t)n);\n"
        "  memcpy(VINO_BUF_BYTES() + 128, VINO_BUF_BYTES(), (size_t)n);\n"
        "  return VINO_BUF_BYTES()[128 + n - 1];\n"
        "}\n",
    )
    data = build(src)
    assert wasm_imports(data) == []
    store = wasmtime.Store(ENGINE)
    instance = wasmtime.Instance(store, wasmtime.Module(ENGINE, data), [])
    f = instance.exports(store)["f"]
    assert isinstance(f, wasmtime.Func)
    assert f(store, 100) == 1


def test_header_imports_have_the_abi_types(tmp_path: Path) -> None:
    # Every graft-callable of docs/ABI.md, called once, so each becomes an import.
    src = _write(
        tmp_path,
        '#include "vino.h"\nVINO_BUFFER(64);\n'
        'VINO_EXPORT("f") int32_t f(void) {\n'
        "  int32_t h = vino_kalloc(16);\n"
        "  vino_log(VINO_BUF_BYTES(), 3);\n"
        "  vino_kwrite(h, 0, VINO_BUF_BYTES(), 4);\n"
        "  vino_kread(h, 0, VINO_BUF_BYTES(), 4);\n"
        "  vino_kfree(h);\n"
        "  return (int32_t)vino_now() + vino_lock(1) + vino_default()\n"
        "       + vino_vm_hint(1, 1) + vino_sched_set_priority(2, 3);\n"
        "}\n",
    )
    module = wasmtime.Module(ENGINE, build(src))
    i32, i64 = "i32", "i64"
    expected = {
        "now": ([], [i64]),
        "log": ([i32, i32], []),
        "lock": ([i32], [i32]),
        "kalloc": ([i32], [i32]),
        "kfree": ([i32], []),
        "kread": ([i32] * 4, [i32]),
        "kwrite": ([i32] * 4, [i32]),
        "default": ([], [i32]),
        "vm_hint": ([i32, i32], [i32]),
        "sched_set_priority": ([i32, i32], [i32]),
    }
    seen = {}
    for imp in module.imports:
        assert imp.module == "vino"
        ty = imp.type
        assert isinstance(ty, wasmtime.FuncType)
        seen[imp.name] = ([str(p) for p in ty.params], [str(r) for r in ty.results])
    assert seen == expected


def test_wasm_imports_rejects_non_modules() -> None:
    with pytest.raises(ValueError):
        wasm_imports(b"\0asm\x02\0\0\0")
