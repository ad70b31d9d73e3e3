"""The native build: vino's C files compiled once per machine, cached by what they are made of.

``native_library(path)`` compiles one C file (the epoch ticker, the stack guard) into
a shared library with the ``ziglang`` package that vino depends on (``zig cc``) and
returns its path; ``python_extension(path, name, what)`` does the same for a CPython
extension module (the graft fast path, the plain read) with this interpreter's
headers and imports it. Libraries are cached under ``$XDG_CACHE_HOME/vino`` (or
``~/.cache/vino``; else the temporary directory) and built again only when their
key changes.

Invariant: a library is reused only if it was built from the same bytes and in the
same way. Its file name carries a hash (``build_key``) of

- the C file's bytes, and the bytes of every header it includes, followed
  recursively: ``#include "x.h"`` looked up beside the including file and then in
  the flags' directories (``-iquote``, ``-I``, ``-isystem``), ``#include <x.h>`` in the
  flags' directories. A header found in a ``versioned`` directory is not read: that
  directory belongs to something whose version the key already names (the
  interpreter's headers, named by ``abi``). One found nowhere comes with the compiler
  (its C library), whose identity is in the key;
- the compiler's arguments (``flags``) and target, and ``abi`` (what else the library
  depends on: for an extension, the interpreter's version, build and ABI);
- the compiler: the size and time of the ``zig`` executable.

``VINO_NATIVE_CFLAGS`` (whitespace-separated compiler options, e.g.
``-fsanitize=undefined``) is appended to every build's options, and so to its key: the
checked builds of the native code (``vino.testing.checked``) sit beside the ordinary
ones and never replace them.

So a changed header, flag or compiler can never load a library built before the
change. Conditional includes are all followed (a header the preprocessor would skip
still counts): the key may change more often than needed, never less. A library is
written under a temporary name and renamed into place, so concurrent builders never
see half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

__all__ = ["SHARED_INCLUDE", "build_key", "headers", "native_library", "python_extension"]

_TRIPLES: Final = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
                   "arm64": "aarch64-linux-gnu"}
_BUILD_TIMEOUT_S: Final = 300  # first build on a cold zig cache
# What vino's CPython extensions share (vino_native.h): on every extension's include path.
SHARED_INCLUDE: Final = Path(__file__).resolve().parent.parent / "native"
_INCLUDE: Final = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.MULTILINE)
# The compiler options that name an include directory, in the order they are searched.
_DIR_OPTIONS: Final = ("-iquote", "-I", "-isystem")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vino"


def _include_dirs(flags: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """The directories ``flags`` name: (for quoted includes, for angle includes)."""
    found: dict[str, list[Path]] = {opt: [] for opt in _DIR_OPTIONS}
    for i, arg in enumerate(flags):
        if arg in found and i + 1 < len(flags):
            found[arg].append(Path(flags[i + 1]))
        elif arg.startswith("-I") and len(arg) > 2:
            found["-I"].append(Path(arg[2:]))
    angle = found["-I"] + found["-isystem"]
    return found["-iquote"] + angle, angle


def headers(path: Path, flags: Sequence[str] = (),
            versioned: Sequence[Path] = ()) -> list[Path]:
    """Every header ``path`` includes, followed recursively, in the order first met
    (see the module: where each is looked up, which are left out)."""
    quoted, angle = _include_dirs(flags)
    skip = [d.resolve() for d in versioned]
    seen: dict[Path, None] = {}
    todo = [path.resolve()]
    while todo:
        here = todo.pop()
        for kind, name in _INCLUDE.findall(here.read_bytes()):
            where = [here.parent, *quoted] if kind == b'"' else angle
            for directory in where:
                candidate = directory / os.fsdecode(name)
                if candidate.is_file():
                    header = candidate.resolve()
                    if header not in seen and not any(header.is_relative_to(d) for d in skip):
                        seen[header] = None
                        todo.append(header)
                    break
    return list(seen)


def _compiler_identity() -> str:
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        return "no ziglang"
    try:
        st = (Path(spec.origin).parent / "zig").stat()
    except OSError:
        return "no zig"
    return f"{st.st_size}:{st.st_mtime_ns}"


def build_key(path: Path, flags: Sequence[str] = (), abi: str = "", triple: str = "",
              versioned: Sequence[Path] = ()) -> str:
    """The hash that names ``path``'s library: see the module for what goes into it."""
    h = hashlib.sha256()

    def part(data: bytes) -> None:  # length-prefixed: no two lists of parts hash alike
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    part(path.read_bytes())
    for header in headers(path, flags, versioned):
        part(os.fsencode(header.name))
        part(header.read_bytes())
    for text in (triple, abi, _compiler_identity(), *flags):
        part(text.encode())
    return h.hexdigest()[:16]


def native_library(path: Path, *, flags: Sequence[str] = (), abi: str = "",
                   versioned: Sequence[Path] = ()) -> Path:
    """The compiled library of ``path`` (a C file) for this machine, building it if
    needed. Raises ``OSError``.

    ``flags``: more compiler arguments (include directories); ``abi``: what else the
    library depends on (a Python version); ``versioned``: include directories whose
    headers ``abi`` names. All go into its cache key (``build_key``)."""
    stem = path.stem
    flags = (*flags, *os.environ.get("VINO_NATIVE_CFLAGS", "").split())
    if sys.platform != "linux":
        raise OSError(f"the native {stem} is built for Linux only, not {sys.platform}")
    triple = _TRIPLES.get(platform.machine())
    if triple is None:
        raise OSError(f"no native {stem} target for machine {platform.machine()!r}")
    tag = build_key(path, flags, abi, triple, versioned)
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / "vino-cache"):
        lib = directory / f"{stem}-{tag}.so"
        if lib.is_file():
            return lib
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        tmp = directory / f".{stem}-{tag}-{os.getpid()}.so"
        cmd = [sys.executable, "-m", "ziglang", "cc", "-shared", "-fPIC", "-O2",
               "-target", triple, *flags, str(path), "-o", str(tmp)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=_BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OSError(f"cannot run the C compiler: {exc}") from exc
        if done.returncode != 0:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OSError(f"native {stem} build failed: {done.stderr.strip()[:300]}")
        os.replace(tmp, lib)  # atomic: concurrent builders never see half a library
        return lib
    raise OSError(f"no writable cache directory for the native {stem}")


def python_extension(path: Path, name: str, what: str) -> ModuleType:
    """The CPython extension module ``name`` compiled from ``path`` (``native_library``
    with this interpreter's headers and ABI in its cache key, and ``SHARED_INCLUDE``
    on its include path) and imported. ``what`` names it in errors. Raises ``OSError``
    (no CPython, no headers, no build) or ``ImportError``."""
    if sys.implementation.name != "cpython":
        raise OSError(f"{what} is a CPython extension, not for {sys.implementation.name}")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise OSError(f"no Python.h in {include} (the Python headers are not installed)")
    abi = f"{sys.version}|{sys.abiflags}|{sysconfig.get_config_var('SOABI')}"
    lib = native_library(path, flags=("-I", str(SHARED_INCLUDE), "-I", include), abi=abi,
                         versioned=(Path(include),))
    loader = importlib.machinery.ExtensionFileLoader(name, str(lib))
    spec = importlib.util.spec_from_file_location(name, lib, loader=loader)
    if spec is None:
        raise ImportError(f"cannot load {lib}")
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod
