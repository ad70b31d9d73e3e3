"""The compilers behind ``vino graft build``, one per graft language.

``for_source(path)`` picks the toolchain by the file's extension:

    .c    C               ``python -m ziglang cc`` (the ``ziglang`` package, a dependency)
    .zig  Zig             ``python -m ziglang build-exe``
    .rs   Rust            ``rustc`` with the wasm32-unknown-unknown target and ``wasm-ld``
                          (Debian: ``rustc libstd-rust-dev-wasm32 lld-14``)
    .ts   AssemblyScript  ``asc`` from npm ``assemblyscript``, installed project-locally
                          under ``.tools/npm`` (``make toolchains``)
    .wat  WebAssembly text  wasmtime's own assembler (a dependency)

Each language has an SDK file beside ``vino.h`` (``vino.zig``, ``vino.rs``,
``vino.ts``, ``vino.wat``): the same imports, exports and buffer layouts. A
toolchain compiles in a scratch directory holding a copy of the graft and of its
SDK file, so a graft imports the SDK by its bare name (``@import("vino.zig")``,
``mod vino;``, ``import * as vino from "./vino"``) from wherever it lives, and
neither paths nor the caller's directory reach the output.

``Toolchain.find()`` returns what is missing, or ``None``; a build with a
missing toolchain raises ``ToolchainMissing`` whose message says exactly what
to install. ``python -m vino.sdk.toolchains install`` installs the missing ones
(apt-get for Rust, npm for AssemblyScript); the Makefile's ``toolchains`` target
runs it so that the tests of every language have their compiler.

Invariant: every toolchain links a 16 KiB stack and declares at most 1 MiB of
memory, like the C build (``STACK_BYTES``, ``MAX_MEMORY_BYTES`` in ``build``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from vino.errors import VinoError

__all__ = [
    "ASSEMBLYSCRIPT_VERSION",
    "LANGUAGES",
    "TOOLS_DIR",
    "Toolchain",
    "ToolchainMissing",
    "for_source",
    "main",
]

SDK_DIR: Final = Path(__file__).resolve().parent
# The project's own tool directory (a checkout's root/.tools); npm installs here.
TOOLS_DIR: Final = SDK_DIR.parents[2] / ".tools"
ASSEMBLYSCRIPT_VERSION: Final = "0.28.20"
RUST_APT_PACKAGES: Final = ("rustc", "libstd-rust-dev-wasm32", "lld-14")
_WASM_LD_NAMES: Final = ("wasm-ld", "wasm-ld-14", "wasm-ld-15", "wasm-ld-16", "wasm-ld-17")
_RUST_TARGET: Final = "wasm32-unknown-unknown"

STACK_BYTES: Final = 16 * 1024
MAX_MEMORY_BYTES: Final = 16 * 65536
_PAGE: Final = 65536


class ToolchainMissing(VinoError):
    """The compiler for a graft's language is not installed here.

    ``language`` names it and ``install`` says exactly what to install. Nothing
    was built or written.
    """

    def __init__(self, language: str, install: str) -> None:
        self.language = language
        self.install = install
        super().__init__(f"no {language} toolchain: {install}")


class CompileError(VinoError):
    """The compiler refused the graft; ``output`` is what it printed."""

    def __init__(self, output: str) -> None:
        self.output = output
        super().__init__(output)


@dataclass(frozen=True, slots=True)
class Toolchain:
    """One graft language: its extension, its SDK file and how to install it."""

    language: str
    extension: str
    sdk_file: str
    install: str  # the exact instruction printed when the toolchain is missing

    def find(self) -> list[str] | None:
        """The command prefix that compiles, or ``None`` if it is not installed."""
        if self.extension in (".c", ".zig", ".wat"):
            return [sys.executable, "-m", "ziglang"]  # .wat needs nothing at all
        if self.extension == ".rs":
            return _find_rust()
        return _find_asc()

    def version(self) -> str | None:
        """The compiler's own version line, or ``None`` if it is not installed."""
        cmd = self.find()
        if cmd is None:
            return None
        if self.extension == ".wat":
            from importlib.metadata import version

            return f"wasmtime {version('wasmtime')}"
        ask = [*cmd, "version"] if self.extension in (".c", ".zig") else [cmd[0], "--version"]
        proc = subprocess.run(ask, capture_output=True, text=True, check=False)
        lines = (proc.stdout or proc.stderr).strip().splitlines()
        return lines[0] if proc.returncode == 0 and lines else None

    def compile(self, source: Path, workdir: Path) -> Path:
        """Compile ``source`` inside ``workdir``; return the module's path there.

        Raises ``ToolchainMissing`` or ``CompileError``.
        """
        cmd = self.find()
        if cmd is None:
            raise ToolchainMissing(self.language, self.install)
        src = workdir / source.name
        shutil.copyfile(source, src)
        shutil.copyfile(SDK_DIR / self.sdk_file, workdir / self.sdk_file)
        out = workdir / "graft.wasm"
        if self.extension == ".wat":
            import wasmtime

            try:
                out.write_bytes(wasmtime.wat2wasm(src.read_text(encoding="utf-8")))
            except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
                raise CompileError(str(exc)) from None
            return out
        _run([*cmd, *self._args(src, out, workdir)], workdir)
        if not out.is_file():
            raise CompileError(f"{self.language} compiler wrote no module")
        return out

    def _args(self, src: Path, out: Path, workdir: Path) -> list[str]:
        if self.extension == ".zig":
            return ["build-exe", src.name, "-target", "wasm32-freestanding", "-O", "ReleaseSafe",
                    "-fno-entry", "-rdynamic", "-fstrip", "--stack", str(STACK_BYTES),
                    f"--max-memory={MAX_MEMORY_BYTES}", f"-femit-bin={out.name}"]
        if self.extension == ".rs":
            return ["--edition", "2021", "--target", _RUST_TARGET, "--crate-type", "cdylib",
                    "-C", "opt-level=2", "-C", "panic=abort", "-C", "strip=symbols",
                    "-C", "debuginfo=0", f"--remap-path-prefix={workdir}=.",
                    *_rust_linker_args(), src.name, "-o", out.name]
        return [src.name, "--outFile", out.name, "-O3", "--runtime", "stub", "--use", "abort=",
                "--maximumMemory", str(MAX_MEMORY_BYTES // _PAGE)]


def _run(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, CARGO_INCREMENTAL="0")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise CompileError((proc.stderr or proc.stdout or f"exit {proc.returncode}").replace(
            str(cwd) + os.sep, ""))


def _rust_sysroot(rustc: str) -> Path | None:
    proc = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                          check=False)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def _find_rust() -> list[str] | None:
    """A rustc that has the wasm32 core library, with a linker it can use."""
    candidates = [os.environ.get("VINO_RUSTC", ""), shutil.which("rustc") or "",
                  "/usr/bin/rustc"]
    for rustc in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        sysroot = _rust_sysroot(rustc)
        if sysroot is None or not (sysroot / "lib" / "rustlib" / _RUST_TARGET).is_dir():
            continue
        if _bundled_lld(sysroot) or _wasm_ld():
            return [rustc]
    return None


def _bundled_lld(sysroot: Path) -> bool:
    return any(sysroot.glob("lib/rustlib/*/bin/rust-lld"))


def _wasm_ld() -> str | None:
    for name in _WASM_LD_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _rust_linker_args() -> list[str]:
    # rustc's wasm target links with its bundled rust-lld; Debian's rustc has none
    # and uses the system's wasm-ld instead. A later -z stack-size wins over
    # rustc's own 1 MiB default.
    args = ["-C", f"link-arg=-zstack-size={STACK_BYTES}",
            "-C", f"link-arg=--max-memory={MAX_MEMORY_BYTES}"]
    rustc = _find_rust()
    sysroot = _rust_sysroot(rustc[0]) if rustc else None
    if sysroot is not None and not _bundled_lld(sysroot):
        ld = _wasm_ld()
        if ld:
            args = ["-C", f"linker={ld}", *args]
    return args


def _find_asc() -> list[str] | None:
    node = shutil.which("node")
    candidates = [os.environ.get("VINO_ASC", ""),
                  str(TOOLS_DIR / "npm" / "node_modules" / ".bin" / "asc"),
                  shutil.which("asc") or ""]
    for asc in candidates:
        if asc and node and Path(asc).is_file():
            return [asc]
    return None


LANGUAGES: Final[dict[str, Toolchain]] = {
    t.extension: t
    for t in (
        Toolchain("C", ".c", "vino.h", "pip install ziglang (a dependency of vino)"),
        Toolchain("Zig", ".zig", "vino.zig", "pip install ziglang (a dependency of vino)"),
        Toolchain("Rust", ".rs", "vino.rs",
                  "apt-get install " + " ".join(RUST_APT_PACKAGES)
                  + " (or a rustc with the wasm32-unknown-unknown target), "
                  "or run `make toolchains`"),
        Toolchain("AssemblyScript", ".ts", "vino.ts",
                  f"npm install --prefix {TOOLS_DIR / 'npm'} "
                  f"assemblyscript@{ASSEMBLYSCRIPT_VERSION} (needs Node.js), "
                  "or run `make toolchains`"),
        Toolchain("WebAssembly text", ".wat", "vino.wat", "pip install wasmtime"),
    )
}


def for_source(source: Path) -> Toolchain | None:
    """The toolchain for ``source``'s extension, or ``None`` for an unknown one."""
    return LANGUAGES.get(Path(source).suffix.lower())


def install(log: TextIO = sys.stderr) -> int:
    """Install every missing toolchain (apt-get, npm); return how many still miss. An
    installer that is not on the machine is named in ``log``, never raised."""
    missing = 0
    if _find_rust() is None:
        print("installing Rust for wasm32: apt-get install " + " ".join(RUST_APT_PACKAGES),
              file=log)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if _installer("apt-get", log):
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            *RUST_APT_PACKAGES], check=False, env=env)
        missing += _find_rust() is None
    if _find_asc() is None:
        print(f"installing AssemblyScript {ASSEMBLYSCRIPT_VERSION} into {TOOLS_DIR / 'npm'}",
              file=log)
        if _installer("npm", log):
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                            str(TOOLS_DIR / "npm"),
                            f"assemblyscript@{ASSEMBLYSCRIPT_VERSION}"], check=False)
        missing += _find_asc() is None
    return missing


def _installer(name: str, log: TextIO) -> bool:
    if shutil.which(name) is not None:
        return True
    print(f"  cannot: {name} is not on this machine's PATH", file=log)
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m vino.sdk.toolchains [install]``: list (or install) the toolchains."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["install"]:
        still = install()
        if still:
            print(f"{still} toolchain(s) could not be installed", file=sys.stderr)
        return 1 if still else 0
    if args:
        print("usage: python -m vino.sdk.toolchains [install]", file=sys.stderr)
        return 2
    for tc in LANGUAGES.values():
        version = tc.version()
        print(f"{tc.extension:5} {tc.language:17} {version or 'MISSING: ' + tc.install}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
