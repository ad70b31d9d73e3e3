"""The native build cache: a library is reused only if it was built from the same bytes.

What if a header changes and the cached library, built from the old one, is loaded?
Or the flags, or a header two includes down? Each must give a new key, and a changed
header a new library, never the stale one.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from vino.graft import nativebuild

_LIB_C = '#include "inner/answer.h"\nint vino_test_answer(void) { return ANSWER; }\n'


def _tree(root: Path, answer: int) -> Path:
    """A C file including inner/answer.h, which includes deeper.h (beside it), which
    includes <limits_here.h> (from an -I directory) and defines ANSWER."""
    (root / "inner").mkdir(parents=True, exist_ok=True)
    (root / "inc").mkdir(exist_ok=True)
    (root / "inner" / "answer.h").write_text('#include "deeper.h"\n')
    (root / "inner" / "deeper.h").write_text(
        f"#include <limits_here.h>\n#define ANSWER ({answer} + LIMIT_HERE)\n")
    (root / "inc" / "limits_here.h").write_text("#define LIMIT_HERE 0\n")
    (root / "lib.c").write_text(_LIB_C)
    return root / "lib.c"


def test_every_header_reached_through_includes_is_found_and_cycles_end(tmp_path: Path) -> None:
    src = _tree(tmp_path, 1)
    (tmp_path / "inner" / "deeper.h").write_text(  # a cycle back to answer.h
        '#include <limits_here.h>\n#include "answer.h"\n#include <stdio.h>\n')
    flags = ("-I", str(tmp_path / "inc"))
    assert nativebuild.headers(src, flags) == [
        (tmp_path / "inner" / "answer.h").resolve(), (tmp_path / "inner" / "deeper.h").resolve(),
        (tmp_path / "inc" / "limits_here.h").resolve()]


@pytest.mark.parametrize("change", ["source", "header", "nested header", "-I header", "flags",
                                    "abi"])
def test_a_change_to_anything_the_library_is_built_from_changes_its_key(
        tmp_path: Path, change: str) -> None:
    src = _tree(tmp_path, 1)
    flags: tuple[str, ...] = ("-I", str(tmp_path / "inc"))
    abi = "3.11"
    before = nativebuild.build_key(src, flags, abi)
    assert nativebuild.build_key(src, flags, abi) == before  # the same bytes, the same key
    if change == "source":
        src.write_text(_LIB_C + "\n")
    elif change == "header":
        (tmp_path / "inner" / "answer.h").write_text('#include "deeper.h"\n\n')
    elif change == "nested header":
        _tree(tmp_path, 2)
    elif change == "-I header":
        (tmp_path / "inc" / "limits_here.h").write_text("#define LIMIT_HERE 1\n")
    elif change == "flags":
        flags = (*flags, "-DEXTRA")
    else:
        abi = "3.12"
    assert nativebuild.build_key(src, flags, abi) != before


def test_headers_of_a_versioned_directory_are_named_by_the_abi_not_read(tmp_path: Path) -> None:
    # The interpreter's headers: its version and build are in the abi part of the key.
    src = _tree(tmp_path, 1)
    flags = ("-I", str(tmp_path / "inc"))
    versioned = (tmp_path / "inc",)
    assert (tmp_path / "inc" / "limits_here.h").resolve() not in nativebuild.headers(
        src, flags, versioned)
    before = nativebuild.build_key(src, flags, "3.11", versioned=versioned)
    (tmp_path / "inc" / "limits_here.h").write_text("#define LIMIT_HERE 1\n")
    assert nativebuild.build_key(src, flags, "3.11", versioned=versioned) == before


def test_a_changed_header_rebuilds_the_library_and_never_loads_the_stale_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # zig keeps its own cache (its C runtime, built once per machine) under the same
    # XDG_CACHE_HOME: pointed at the usual one, only the test's library is built afresh
    # here, not zig's runtime as well (seconds of CPU).
    zig_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zig"
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", os.environ.get("ZIG_GLOBAL_CACHE_DIR",
                                                              str(zig_cache)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = _tree(tmp_path / "src", 1)
    flags = ("-I", str(tmp_path / "src" / "inc"))

    def answer(lib: Path) -> int:
        return int(ctypes.CDLL(str(lib)).vino_test_answer())

    first = nativebuild.native_library(src, flags=flags)
    assert first.parent == tmp_path / "cache" / "vino" and answer(first) == 1
    mtime = first.stat().st_mtime_ns
    assert nativebuild.native_library(src, flags=flags) == first  # cached: not rebuilt
    assert first.stat().st_mtime_ns == mtime
    _tree(tmp_path / "src", 2)  # the header two includes down changes
    second = nativebuild.native_library(src, flags=flags)
    assert second != first and answer(second) == 2
    assert first.stat().st_mtime_ns == mtime  # the old library is left alone, not reused
