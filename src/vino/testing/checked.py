"""Checked runs of vino's native C: the tests that drive it, under a checker.

``python -m vino.testing.checked ubsan|memcheck [pytest arguments]`` (``make ubsan``,
``make memcheck``) runs ``NATIVE_TESTS`` (or the tests given) against the C files of
``graft/native`` and ``kernel/native`` built another way (``VINO_NATIVE_CFLAGS``: the
build cache keeps those libraries beside the ordinary ones):

- ``ubsan``: built with ``-fsanitize=undefined`` (zig's C compiler links its own
  runtime): a signed overflow, a misaligned or null access, a shift out of range stops
  the process with the file and line. The exit status is pytest's.
- ``memcheck``: built with ``-g -O1`` and run under valgrind's memcheck with
  ``PYTHONMALLOC=malloc`` (every object a malloc block valgrind sees). CPython, libffi
  and wasmtime report errors of their own under valgrind (small ints, vector compares,
  the Wasm validator); an error counts only if a frame of its stack is in vino's native
  C. They are printed, and the exit status is 1 if there is any (else pytest's).
  References kept by mistake are not valgrind's to see (the objects stay reachable):
  the leak tests count them (``vino.testing.leaks``).

Address sanitizing is not offered: zig's compiler instruments for it but ships no
runtime, and the system's (gcc's libasan) must be preloaded into an interpreter not built
for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["NATIVE_TESTS", "main", "ours"]

# The tests that run the native C: codecs, the protected call, policy slots, the plain
# read and its misses, the cache, and the attacks that go through them.
NATIVE_TESTS: Final = (
    "tests/graft/test_codec.py", "tests/kernel/test_point_codecs.py",
    "tests/graft/test_policy_slots.py", "tests/graft/test_fastpath.py",
    "tests/graft/test_native_entry.py", "tests/kernel/test_plain_miss.py",
    "tests/kernel/test_plain_read.py", "tests/kernel/test_plainread.py",
    "tests/kernel/test_cache.py", "tests/attacks/test_attack_callables.py",
    "tests/attacks/test_attack_engine_traps.py",
)
_NATIVE_SOURCE: Final = re.compile(
    r"\b(fastpath|plainread|stack|ticker)(\.c:\d+|-[0-9a-f]{16}\.so)")
_RECORD_START: Final = re.compile(r"^==\d+== (?=\S)(?!Memcheck|Copyright|Using|Command|Parent)",
                                  re.MULTILINE)


def ours(log: str) -> list[str]:
    """The error records of a valgrind log with a frame in vino's native C."""
    records = re.split(r"\n==\d+== *\n", log)
    return [r.strip() for r in records
            if _RECORD_START.search(r) and _NATIVE_SOURCE.search(r)
            and ("Invalid" in r or "uninitialised" in r or "Mismatched" in r
                 or "overlap" in r or "Syscall param" in r)]


def _pytest(args: Sequence[str], env: dict[str, str], prefix: Sequence[str] = ()) -> int:
    cmd = [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-m", "not slow", *(args or NATIVE_TESTS)]
    return subprocess.run(cmd, env=env, check=False).returncode


def main(argv: Sequence[str]) -> int:
    """``checked ubsan|memcheck [pytest arguments]``: see the module. The exit status."""
    if not argv or argv[0] not in ("ubsan", "memcheck"):
        print("usage: python -m vino.testing.checked ubsan|memcheck [pytest arguments]",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    if argv[0] == "ubsan":
        env["VINO_NATIVE_CFLAGS"] = "-g -fsanitize=undefined"
        return _pytest(argv[1:], env)
    env["VINO_NATIVE_CFLAGS"] = "-g -O1"
    env["PYTHONMALLOC"] = "malloc"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "memcheck.log"
        status = _pytest(argv[1:], env, ("valgrind", "--tool=memcheck", "--leak-check=no",
                                          "--num-callers=40", f"--log-file={log}"))
        found = ours(log.read_text(errors="replace")) if log.exists() else []
    for record in found:
        print(record, end="\n\n")
    print(f"memcheck: {len(found)} error(s) in vino's native C", file=sys.stderr)
    return 1 if found else status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
