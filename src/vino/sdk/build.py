"""Build a graft into a WebAssembly module: C, Zig, Rust, AssemblyScript or WAT.

``build(source, output=None)`` compiles one graft and returns the module's bytes
(also writing them to ``output`` if given). The toolchain is chosen by the file's
extension (``.c``, ``.zig``, ``.rs``, ``.ts``, ``.wat``; see ``vino.sdk.toolchains``);
C is compiled here with ``ziglang`` and the flags below. It runs from any working
directory and leaves nothing behind but ``output``; zig's own object cache lives
in its global cache directory. A language whose compiler is not installed raises
``ToolchainMissing``, which says exactly what to install.

Contract:
- The output is byte-for-byte reproducible: the same source and the same pinned
  ``ziglang`` give the same bytes, whatever the paths, so built samples can be
  shipped and checked against their sources.
- The module is stripped (no debug info, names or producer sections) and
  exports only functions and ``memory``: globals a compiler exports on its own
  (Zig's ``__stack_pointer``, Rust's ``__heap_base``) are dropped, since they
  are no part of the ABI and would hand the graft's stack to whoever holds it.
- The module imports only from module ``"vino"``; anything else (and any
  compiler or linker error, such as an undefined function) raises
  ``BuildError`` carrying the compiler's output. Whether the imports suit a
  particular graft point is the loader's check, not this one.

``python -m vino.sdk.build graft.{c,zig,rs,ts,wat} [-o graft.wasm]`` does the
same from a shell.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from vino.errors import VinoError
from vino.graft import wasmbinary
from vino.sdk import toolchains
from vino.sdk.toolchains import MAX_MEMORY_BYTES, STACK_BYTES, ToolchainMissing

__all__ = [
    "FLAGS",
    "SAMPLES_DIR",
    "SDK_DIR",
    "BuildError",
    "ToolchainMissing",
    "build",
    "main",
    "sample_path",
    "wasm_imports",
]

SDK_DIR: Final = Path(__file__).resolve().parent
SAMPLES_DIR: Final = SDK_DIR / "samples"

# STACK_BYTES: grafts' stack, small so a graft fits in one page; MAX_MEMORY_BYTES:
# the declared memory maximum (16 pages = 1 MiB). Both shared by every language.

# Why each flag is here:
#   -nostdlib, --no-entry   a graft is a library of exports with no libc and no main
#   -s                      strip debug info, names and producers: smaller, and the
#                           only sections that would carry paths or tool versions
#   -fno-ident              no compiler identification string
#   -z stack-size           zig's default stack is 1 MiB, charged to the principal's
#                           memory quota for every graft; grafts need very little
#   --max-memory            declare a maximum so the host knows the worst case
# Deliberately absent: --export-dynamic, which would also export the mutable
# global __stack_pointer; vino.h's VINO_EXPORT marks exactly what is exported.
FLAGS: Final = (
    "--target=wasm32-freestanding",
    "-O2",
    "-nostdlib",
    "-fno-ident",
    "-s",
    "-Wall",
    "-Werror=implicit-function-declaration",
    "-Wl,--no-entry",
    f"-Wl,-z,stack-size={STACK_BYTES}",
    f"-Wl,--max-memory={MAX_MEMORY_BYTES}",
)

_IMPORT_MODULE: Final = "vino"


class BuildError(VinoError):
    """Compiling or linking a graft failed, or the result imports from outside "vino".

    ``stderr`` holds the compiler's output (or the reason the module was refused).
    Nothing was written to the output path.
    """

    def __init__(self, source: Path, stderr: str) -> None:
        self.source = source
        self.stderr = stderr
        super().__init__(f"building {source} failed:\n{stderr.rstrip()}")


def sample_path(name: str) -> Path:
    """The path of a sample graft's file, e.g. ``sample_path("null.c")``.

    A bare name (``"null"``) means the C source. Raises ``FileNotFoundError`` if
    there is no such sample.
    """
    path = SAMPLES_DIR / (name if "." in name else f"{name}.c")
    if not path.is_file():
        raise FileNotFoundError(f"no sample graft {name!r} in {SAMPLES_DIR}")
    return path


def build(source: Path, output: Path | None = None) -> bytes:
    """Compile ``source`` to a graft module; return its bytes.

    The language is the file's extension (``.c``, ``.zig``, ``.rs``, ``.ts``,
    ``.wat``). If ``output`` is given the bytes are also written there (only on
    success). Raises ``BuildError`` with the compiler's output on failure (or
    for an unknown extension), ``ToolchainMissing`` when the language's
    compiler is not installed (its message says what to install).
    """
    source = Path(source).resolve()
    if not source.is_file():
        raise BuildError(source, "no such source file")
    chain = toolchains.for_source(source)
    if chain is None:
        known = ", ".join(sorted(toolchains.LANGUAGES))
        raise BuildError(source, f"unknown graft language {source.suffix!r} (known: {known})")
    if chain.extension == ".c":
        data = _build_c(source)
    else:
        with tempfile.TemporaryDirectory(prefix="vino-build-") as tmp:
            try:
                data = chain.compile(source, Path(tmp)).read_bytes()
            except toolchains.CompileError as exc:
                raise BuildError(source, exc.output) from None
        data = drop_global_exports(data)
    foreign = [
        f"{module}.{name}" for module, name in wasm_imports(data) if module != _IMPORT_MODULE
    ]
    if foreign:
        raise BuildError(
            source, f"imports from outside module {_IMPORT_MODULE!r}: {', '.join(foreign)}"
        )
    if output is not None:
        Path(output).write_bytes(data)
    return data


def _build_c(source: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="vino-build-") as tmp:
        wasm = Path(tmp) / "graft.wasm"
        cmd = [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            *FLAGS,
            "-I",
            str(SDK_DIR),
            str(source),
            "-o",
            str(wasm),
        ]
        # cwd is the temporary directory so that nothing lands in the caller's.
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wasm.is_file():
            raise BuildError(source, proc.stderr or proc.stdout or f"exit {proc.returncode}")
        return wasm.read_bytes()


def drop_global_exports(data: bytes) -> bytes:
    """``data`` with every exported global removed from its export section.

    Compilers export globals of their own (``__stack_pointer``, ``__data_end``,
    ``__heap_base``); the ABI has none, and an exported mutable stack pointer
    would let whoever holds the instance move the graft's stack. Functions,
    memories and tables stay. Raises ``MalformedWasm`` (a ``ValueError``) on a
    malformed module.
    """
    wasmbinary.check_header(data)
    out = bytearray(data[:wasmbinary.HEADER_BYTES])
    for sec in wasmbinary.sections(data):
        if sec.id == wasmbinary.EXPORT:
            kept = [data[start:end] for start, end, kind in wasmbinary.exports(data, sec)
                    if kind != wasmbinary.KIND_GLOBAL]
            payload = wasmbinary.encode_u32(len(kept)) + b"".join(kept)
            out += bytes([sec.id]) + wasmbinary.encode_u32(len(payload)) + payload
        else:
            out += data[sec.start:sec.end]
    return bytes(out)


def wasm_imports(data: bytes) -> list[tuple[str, str]]:
    """The (module, name) of every import of a binary WebAssembly module.

    Read with ``vino.graft.wasmbinary``, so checking a build needs no engine.
    Raises ``MalformedWasm`` (a ``ValueError``) if the bytes are not a well-formed
    module header and import section.
    """
    wasmbinary.check_header(data)
    for sec in wasmbinary.sections(data):
        if sec.id == wasmbinary.IMPORT:
            return [(imp.module, imp.name) for imp in wasmbinary.imports(data, sec)]
    return []


def main(argv: list[str] | None = None) -> int:
    """Command line: build one graft; print the compiler's error on failure."""
    parser = argparse.ArgumentParser(prog="python -m vino.sdk.build", description=__doc__)
    parser.add_argument("source", type=Path, help="the graft's source: .c .zig .rs .ts .wat")
    parser.add_argument(
        "-o", "--output", type=Path, help="output .wasm (default: source with .wasm)"
    )
    args = parser.parse_args(argv)
    output: Path = args.output or args.source.with_suffix(".wasm")
    try:
        data = build(args.source, output)
    except (BuildError, ToolchainMissing) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{output}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
