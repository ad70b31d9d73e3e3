"""Grafts in five languages: the Zig, Rust, AssemblyScript and WAT ports of the
read-ahead and eviction samples answer exactly as the C samples do (the eviction
ports with the one-victim answer: the C sample's first victim, without its batch).

Each port ships its source and its built ``.wasm`` under ``samples/<language>/``.
The tests drive the shipped modules and the C module through the same long,
seeded sequence of buffers and messages (the ABI by hand, see ``sdk_harness``)
and compare every answer; they install each port into the kernel and compare
its counters with the C sample's; and, where the language's compiler is here,
they rebuild each port from source (once per session) and check the result
against the shipped module.

A missing compiler skips the rebuild tests on a developer's machine with the
exact install instruction; under ``CI=true`` it fails them, because the
Makefile's ``toolchains`` target installs every compiler and a skip would hide
that it did not.
"""

from __future__ import annotations

import functools
import io
import os
import random
import struct
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from vino import workloads
from vino.kernel.device import SSD
from vino.sdk import toolchains
from vino.sdk.build import SAMPLES_DIR, BuildError, ToolchainMissing, build, wasm_imports

from .sdk_harness import ENTRIES, Graft, load

LANGS = {"zig": ".zig", "rust": ".rs", "assemblyscript": ".ts", "wat": ".wat"}
PORTED = ["readahead_stride", "evict_keep"]
PORTS = [(lang, name) for lang in LANGS for name in PORTED]
ids = [f"{lang}/{name}" for lang, name in PORTS]

# The compiler versions the shipped modules were built with: a rebuild with these
# must give the same bytes (C and Zig are pinned by the ziglang dependency).
PINNED = {".rs": "rustc 1.63.0", ".ts": f"Version {toolchains.ASSEMBLYSCRIPT_VERSION}"}


def require(chain: toolchains.Toolchain) -> None:
    """Skip (or, under CI, fail) when ``chain``'s compiler is not installed."""
    if chain.find() is not None:
        return
    message = f"{chain.language} toolchain missing: {chain.install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI installs every toolchain: `make toolchains`)")
    pytest.skip(message)


@functools.cache
def compiler_version(extension: str) -> str | None:
    """The compiler's version line, asked once per test session (starting asc alone
    takes seconds)."""
    return toolchains.LANGUAGES[extension].version()


@functools.cache
def rebuilt(lang: str, name: str) -> bytes:
    """Build a port from its source, once per test session."""
    return build(SAMPLES_DIR / lang / f"{name}{LANGS[lang]}")


# ---- the answers ------------------------------------------------------------------


def readahead_trace(graft: Graft, seed: int, steps: int = 400) -> list[Any]:
    """Every answer of a read-ahead graft to a seeded sequence of inputs and messages."""
    rng = random.Random(seed)
    out: list[Any] = []
    for _ in range(steps):
        if rng.random() < 0.05:  # messages: a stride, back to learning, malformed
            msg = rng.choice([struct.pack("<I", rng.randrange(0, 9)), b"\x05\x00\x00",
                              b"", struct.pack("<II", 1, 2)])
            out.append(("message", graft.message(msg)))
            continue
        file_blocks = rng.choice([0, 1, 7, 64, 100, 1000, 2**32 - 1])
        block = rng.randrange(0, file_blocks + 3) if file_blocks < 2**20 else rng.randrange(
            0, 2**32)
        stride = rng.choice([1, -1, 3, -7, 16, 0])
        hist = [max(0, min(2**32 - 1, block - stride * (i + 1))) for i in range(16)]
        if rng.random() < 0.5:
            hist = [block, *hist[:15]]  # hist[0] repeats the block just read
        if rng.random() < 0.2:
            hist = [rng.randrange(0, 200) for _ in range(16)]
        n_hist = rng.choice([0, 1, 2, 3, 4, 16, 17, 1000])  # past 16: the graft must clamp
        max_out = rng.choice([0, 1, 4, 8, 32, 33, 1000])
        graft.write(struct.pack("<4I16I", file_blocks, block, max_out, n_hist, *hist))
        graft.write(b"\xee" * 128, at=80)
        count = graft.call("vino_readahead")
        blocks = struct.unpack(f"<{max(count, 0)}I", graft.read(4 * max(count, 0), at=80))
        out.append((count, blocks))
    return out


def evict_trace(graft: Graft, seed: int, steps: int = 300) -> list[Any]:
    """Every answer of an eviction graft to a seeded sequence of candidates and messages."""
    rng = random.Random(seed)
    out: list[Any] = []
    for _ in range(steps):
        if rng.random() < 0.1:
            count = rng.choice([0, 1, 5, 40, 256, 257])
            vpns = [rng.randrange(0, 64) for _ in range(count)]
            msg = struct.pack(f"<I{count}I", count, *vpns)
            if rng.random() < 0.2:
                msg = msg[:-1] if len(msg) > 4 else b"\x01"  # malformed: refused
            if len(msg) <= 8 + 24 * 256:
                out.append(("message", graft.message(msg)))
            continue
        n = rng.choice([0, 1, 2, 8, 48, 256, 300])
        cands = [(i, rng.randrange(0, 64), rng.randrange(0, 4), 0, rng.randrange(0, 50))
                 for i in range(min(n, 256))]
        body = b"".join(struct.pack("<4IQ", *c) for c in cands)
        graft.write(struct.pack("<II", n, 0) + body)
        out.append(graft.call("vino_evict"))
    return out


TRACES = {"readahead_stride": readahead_trace, "evict_keep": evict_trace}


@functools.cache
def c_trace(name: str, seed: int) -> list[Any]:
    return TRACES[name](load(name), seed)


def one_victim(trace: list[Any]) -> list[Any]:
    """An eviction trace as the one-victim answers the ports give: the C sample also
    names further victims (a batch: victim + 65536 * k, docs/ABI.md), the ports answer
    with the victim alone, which must be the C sample's first."""
    return [a % 65536 if isinstance(a, int) and a >= 0 else a for a in trace]


def port_trace(name: str, seed: int) -> list[Any]:
    """What a port must answer: the C sample's trace, its eviction answers one victim each."""
    trace = c_trace(name, seed)
    return one_victim(trace) if name == "evict_keep" else trace


@pytest.mark.parametrize(("lang", "name"), PORTS, ids=ids)
def test_port_answers_exactly_as_the_c_sample(lang: str, name: str) -> None:
    for seed in (1, 2):
        assert TRACES[name](load(f"{lang}/{name}"), seed) == port_trace(name, seed)


def test_the_traces_exercise_every_branch_of_the_policies() -> None:
    # A comparison of constant answers would prove nothing: the C sample's own
    # answers vary, messages are both accepted and refused, and evictions differ
    # from "the first candidate".
    ra = c_trace("readahead_stride", 1)
    assert {a[1] for a in ra if a[0] == "message"} == {0, -1}
    assert len({a[0] for a in ra if a[0] != "message"}) > 5
    ev = c_trace("evict_keep", 1)
    assert {a[1] for a in ev if isinstance(a, tuple)} == {0, -1}
    assert -1 in ev and len({a for a in one_victim(ev) if not isinstance(a, tuple)}) > 10
    assert any(isinstance(a, int) and a >= 65536 for a in ev)  # batches named, too


@pytest.mark.parametrize(("lang", "name"), PORTS, ids=ids)
def test_port_exports_exactly_the_abi_and_imports_only_vino(lang: str, name: str) -> None:
    data = (SAMPLES_DIR / lang / f"{name}.wasm").read_bytes()
    mod = wasmtime.Module(wasmtime.Engine(), data)
    assert all(m == "vino" for m, _ in wasm_imports(data))
    assert {e.name for e in mod.exports} == {"memory", "vino_buffer", "vino_message",
                                              ENTRIES[name]}
    memory = next(e.type for e in mod.exports if e.name == "memory")
    assert isinstance(memory, wasmtime.MemoryType)
    assert memory.limits.min == 1 and memory.limits.max == 16


# ---- in the kernel -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_ported_grafts_do_in_the_kernel_what_the_c_samples_do(lang: str,
                                                              tmp_path: Path) -> None:
    ra_c = workloads.readahead_scan(tmp_path, SSD, graft=True, nblocks=64)
    ra = workloads.readahead_scan(tmp_path, SSD, graft=True, nblocks=64,
                             module=SAMPLES_DIR / lang / "readahead_stride.wasm")
    assert ra["intact"] and ra["graft_aborts"] == 0 and ra["graft_calls"] > 0
    assert (ra["requests"], ra["graft_calls"]) == (ra_c["requests"], ra_c["graft_calls"])
    ev_c = workloads.eviction_run(tmp_path, graft=True, rounds=3)
    ev = workloads.eviction_run(tmp_path, graft=True, rounds=3,
                           module=SAMPLES_DIR / lang / "evict_keep.wasm")
    assert ev["intact"] and ev["graft_aborts"] == 0
    assert (ev["faults"], ev["hot_faults"]) == (ev_c["faults"], ev_c["hot_faults"])


# ---- building from source ----------------------------------------------------------


@pytest.mark.parametrize(("lang", "name"), PORTS, ids=ids)
def test_port_rebuilds_from_source_to_the_shipped_module(lang: str, name: str) -> None:
    chain = toolchains.LANGUAGES[LANGS[lang]]
    require(chain)
    data = rebuilt(lang, name)
    pinned = PINNED.get(chain.extension)
    if pinned is None or compiler_version(chain.extension) == pinned:
        assert data == (SAMPLES_DIR / lang / f"{name}.wasm").read_bytes()
    # Whatever the compiler's version, the rebuilt module answers as the C sample.
    assert TRACES[name](load(data), 1) == port_trace(name, 1)


@pytest.mark.parametrize("lang", ["zig", "rust", "wat"])  # one scratch-directory scheme
def test_build_output_does_not_depend_on_the_working_directory(
        lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = toolchains.LANGUAGES[LANGS[lang]]
    require(chain)
    src = tmp_path / "elsewhere" / f"readahead_stride{LANGS[lang]}"
    src.parent.mkdir()
    src.write_bytes((SAMPLES_DIR / lang / src.name).read_bytes())
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.wasm"
    assert build(src, out) == rebuilt(lang, "readahead_stride") == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "out.wasm"]


@pytest.mark.parametrize("ext", [".zig", ".rs", ".ts", ".wat"])
def test_a_broken_graft_fails_to_build_with_the_compilers_message(ext: str,
                                                                  tmp_path: Path) -> None:
    chain = toolchains.LANGUAGES[ext]
    require(chain)
    src = tmp_path / f"broken{ext}"
    src.write_text("this is not a graft (\n")
    out = tmp_path / "broken.wasm"
    with pytest.raises(BuildError) as info:
        build(src, out)
    assert info.value.stderr.strip()
    assert not out.exists()


def test_a_graft_importing_outside_vino_is_refused_at_build(tmp_path: Path) -> None:
    src = tmp_path / "wasi.wat"
    src.write_text('(module (import "wasi" "fd_write" (func (param i32 i32 i32 i32) '
                   '(result i32))) (memory (export "memory") 1))')
    with pytest.raises(BuildError, match=r"wasi\.fd_write"):
        build(src)


def test_compiler_exported_globals_are_dropped(tmp_path: Path) -> None:
    # A compiler's exported __stack_pointer would hand the graft's stack to the host
    # side; the build strips exported globals and keeps everything else.
    src = tmp_path / "g.wat"
    src.write_text('(module (global $sp (export "__stack_pointer") (mut i32) (i32.const 8))'
                   ' (memory (export "memory") 1) (func (export "f") (result i32) '
                   '(global.get $sp)))')
    mod = wasmtime.Module(wasmtime.Engine(), build(src))
    assert [e.name for e in mod.exports] == ["memory", "f"]


def test_missing_toolchain_says_exactly_what_to_install(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchains, "_find_asc", lambda: None)
    monkeypatch.setattr(toolchains, "_find_rust", lambda: None)
    for ext, needle in ((".ts", f"assemblyscript@{toolchains.ASSEMBLYSCRIPT_VERSION}"),
                        (".rs", "apt-get install rustc libstd-rust-dev-wasm32 lld-14")):
        src = tmp_path / f"g{ext}"
        src.write_text("")
        with pytest.raises(ToolchainMissing, match="make toolchains") as info:
            build(src, tmp_path / "g.wasm")
        assert needle in str(info.value)
        assert not (tmp_path / "g.wasm").exists()


def test_unknown_extension_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    src = tmp_path / "g.go"
    src.write_text("package main")
    with pytest.raises(BuildError, match=r"\.c, \.rs, \.ts, \.wat, \.zig"):
        build(src)


def test_the_wat_sdk_file_is_itself_a_module_importing_only_vino() -> None:
    data = build(SAMPLES_DIR.parent / "vino.wat")
    assert {m for m, _ in wasm_imports(data)} == {"vino"}


def test_a_machine_without_apt_get_or_npm_gets_told_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `make test` on a fresh machine installs the missing compilers; one without the
    # installers must say so and fail the target, not crash with FileNotFoundError.
    monkeypatch.setattr(toolchains, "_find_rust", lambda: None)
    monkeypatch.setattr(toolchains, "_find_asc", lambda: None)
    monkeypatch.setenv("PATH", "")
    log = io.StringIO()
    assert toolchains.install(log) == 2
    said = log.getvalue()
    assert "apt-get is not on this machine's PATH" in said
    assert "npm is not on this machine's PATH" in said
