"""Checked runs of vino's native C: the tests that drive it, under a checker.

``python -m vino.testing.checked ubsan|asan|memcheck [pytest arguments]`` (``make
ubsan``, ``make asan``, ``make memcheck``) runs ``NATIVE_TESTS`` (or the tests given)
against the C files of ``graft/native`` and ``kernel/native`` built another way
(``VINO_NATIVE_CFLAGS``: the build cache keeps those libraries beside the ordinary ones):

- ``ubsan``: built with ``-fsanitize=undefined`` (zig's C compiler links its own
  runtime): a signed overflow, a misaligned or null access, a shift out of range stops
  the process with the file and line. That runtime keeps thread-local data, more than
  the loader leaves for a library opened after start-up ("cannot allocate memory in
  static TLS block": the graft fast path silently fell back to its Python twin), so the
  run asks glibc for more (``GLIBC_TUNABLES``).
- ``asan``: built with ``-fsanitize=address``, run with the system's AddressSanitizer
  runtime preloaded (zig's compiler ships none: gcc's ``libasan.so.8``, Debian's
  ``libasan8``) and ``PYTHONMALLOC=malloc``, so that every object is a block the runtime
  watches: a read or write of the C past a block or into a freed one (a list's array
  after a resize, a bytearray's bytes after a clear) stops the process with both stacks.
  The interpreter is not instrumented, and the runtime leaves wasmtime's signals alone.
- ``memcheck``: built with ``-g -O1`` and run under valgrind's memcheck with
  ``PYTHONMALLOC=malloc``, registers exact at every instruction (``PRECISE``: else
  wasmtime's handler does not know a trap of compiled Wasm and the run dies of the
  signal; ``MEMCHECK_DESELECT``: the one trap that still does). CPython, libffi and
  wasmtime report errors of their own under valgrind (small ints, vector compares, the
  Wasm validator), and compiled Wasm touches the guard pages wasmtime turns into traps;
  an error counts if vino's native C made the bad access or called what made it, or read
  the uninitialised value itself. They are printed, and the exit status is 1 if there is
  any.

Before the tests, ``vino doctor`` runs under the same settings: a native part that did
not build or load ends the run (status 2), since its tests would run the Python twin
and the checker would see nothing. pytest captures ``sys`` only, not the descriptors, so
a checker's report written to descriptor 2 as it stops the process is not lost with
pytest's capture file. The exit status is otherwise pytest's. References kept by
mistake are no checker's to see (the objects stay reachable): the leak tests count them
(``vino.testing.leaks``).
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
# Static thread-local room for libraries opened after start-up, under ubsan (glibc's
# default, 512 bytes, is too little for the runtime zig links into each library). Not
# more than needed: glibc carves every thread's static TLS out of that thread's stack,
# and with 4 MiB wasmtime's compiler threads (rayon's, small stacks) overflowed theirs
# while optimising a module: the run died of SIGSEGV with nothing printed. 512 KiB holds
# the four native parts' runtimes (256 KiB did not).
_UBSAN_STATIC_TLS_BYTES: Final = 512 << 10
# valgrind keeps the guest's registers exact at every memory access, so that a trap of
# compiled Wasm (a divide by zero's SIGFPE, an access's SIGSEGV) reaches wasmtime's handler
# with the program counter and registers it expects; by default valgrind's state there is
# approximate, the handler does not recognise the trap, and the process dies of the signal.
# (at each instruction: at memory accesses only, a divide's SIGFPE still killed the run).
PRECISE: Final = "--vex-iropt-register-updates=allregs-at-each-insn"
# The one trap valgrind still does not hand to wasmtime as one: a call through a null
# table entry (a load through address 0) dies of SIGSEGV under memcheck alone; the test
# runs in the ordinary suite and under ubsan and asan.
MEMCHECK_DESELECT: Final = (
    "tests/attacks/test_attack_engine_traps.py::"
    "test_graft_trapping_is_aborted_with_a_detail_naming_the_trap[indirect call to null]",
)
_NATIVE_SOURCE: Final = re.compile(
    r"\b(fastpath|plainread|stack|ticker)(\.c:\d+|-[0-9a-f]{16}\.so)")
_RECORD_START: Final = re.compile(r"^==\d+== (?=\S)(?!Memcheck|Copyright|Using|Command|Parent)",
                                  re.MULTILINE)


_FRAME: Final = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*)$", re.MULTILINE)
_C_LIBRARY: Final = re.compile(r"vg_replace|libc\.so|ld-linux")


def _is_ours(record: str) -> bool:
    frames = _FRAME.findall(record)
    if not frames or frames[0].startswith("???"):
        return False  # compiled Wasm: a guard page wasmtime turns into a trap
    if "uninitialised" in record.split("\n", 1)[0]:
        # CPython reports its own (small ints) from calls of ours: the C's own reads only
        inner = [f for f in frames if not _C_LIBRARY.search(f)]
        return bool(inner) and _NATIVE_SOURCE.search(inner[0]) is not None
    return any(_NATIVE_SOURCE.search(f) for f in frames)


def ours(log: str) -> list[str]:
    """The error records of a valgrind log that are vino's native C's: a bad access in
    it or in what it called (not in compiled Wasm), a value it read uninitialised."""
    records = re.split(r"\n==\d+== *\n", log)
    return [r.strip() for r in records
            if _RECORD_START.search(r) and _is_ours(r.strip())
            and ("Invalid" in r or "uninitialised" in r or "Mismatched" in r
                 or "overlap" in r or "Syscall param" in r)]


def _pytest(args: Sequence[str], env: dict[str, str], prefix: Sequence[str] = (),
            deselect: Sequence[str] = ()) -> int:
    doctor = subprocess.run([sys.executable, "-m", "vino.cli", "doctor"], env=env,
                            capture_output=True, text=True, check=False)
    if doctor.returncode != 0:
        print(f"{doctor.stdout}{doctor.stderr}checked: a native part did not load under "
              f"these settings; its tests would check the Python twin", file=sys.stderr)
        return 2
    cmd = [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--capture=sys", "-m", "not slow", *(f"--deselect={t}" for t in deselect),
           *(args or NATIVE_TESTS)]
    return subprocess.run(cmd, env=env, check=False).returncode


def _libasan() -> str | None:
    """The system's AddressSanitizer runtime (gcc's), or None."""
    found = re.search(r"=> (\S*libasan\.so\.\d+)$", subprocess.run(
        ["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout, re.MULTILINE)
    return found.group(1) if found else None


def main(argv: Sequence[str]) -> int:
    """``checked ubsan|asan|memcheck [pytest arguments]``: see the module. The exit
    status."""
    if not argv or argv[0] not in ("ubsan", "asan", "memcheck"):
        print("usage: python -m vino.testing.checked ubsan|asan|memcheck [pytest arguments]",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    if argv[0] == "ubsan":
        env["VINO_NATIVE_CFLAGS"] = "-g -fsanitize=undefined"
        env["GLIBC_TUNABLES"] = f"glibc.rtld.optional_static_tls={_UBSAN_STATIC_TLS_BYTES}"
        return _pytest(argv[1:], env)
    if argv[0] == "asan":
        lib = _libasan()
        if lib is None:
            print("asan: no libasan (apt-get install libasan8)", file=sys.stderr)
            return 2
        env["VINO_NATIVE_CFLAGS"] = "-g -O1 -fsanitize=address -fno-omit-frame-pointer"
        env["LD_PRELOAD"] = lib
        env["PYTHONMALLOC"] = "malloc"
        # the interpreter's own blocks at exit are not the C's; wasmtime's traps are signals
        env["ASAN_OPTIONS"] = ("detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_sigill=0:"
                               "handle_sigfpe=0:allow_user_segv_handler=1")
        return _pytest(argv[1:], env)
    env["VINO_NATIVE_CFLAGS"] = "-g -O1"
    env["PYTHONMALLOC"] = "malloc"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "memcheck.log"
        status = _pytest(argv[1:], env, ("valgrind", "--tool=memcheck", "--leak-check=no",
                                          PRECISE, "--num-callers=40", f"--log-file={log}"),
                         MEMCHECK_DESELECT)
        found = ours(log.read_text(errors="replace")) if log.exists() else []
    for record in found:
        print(record, end="\n\n")
    print(f"memcheck: {len(found)} error(s) in vino's native C", file=sys.stderr)
    return 1 if found else status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
