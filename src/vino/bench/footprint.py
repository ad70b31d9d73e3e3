"""What one protected call touches when it starts cold (``vino bench footprint``).

A sparse call (the goals' sparse rows: one call every 1.5 ms, the host busy in
between) starts on caches, TLB and branch predictors that other work has used, so
what it costs beyond a back-to-back call grows with how much distinct code and data
it touches. This benchmark counts that, exactly and whatever the machine's load:
each sample's protected call (the subsystem's policy slot with the sample graft
installed, as the goals call it), the sparse floor (``goals.c_floor``: a plain
ctypes call of libc's ``labs``) and the native floor (``goals.WasmFloor``: a plain
C-extension call into a trivial WebAssembly export on the samples' engine, nothing of
vino's around it: what any protected call must touch) run under valgrind's callgrind
with its cache
simulation; before every call the simulated caches are emptied (a 16 MiB write and
96 KiB of straight-line code, what a switch to another process leaves behind), and
only the call itself is collected. Every miss is then a distinct line or page the
call touched:

- code lines and data lines, 64 bytes (first-level instruction and data misses);
- code pages and data pages, 4 KiB (misses of a last-level cache simulated with 4 KiB
  lines: the TLB entries a cold call needs);
- instructions (what the call executes, cold or warm alike: its work, beside what it
  touches).

Per call, less the empty window (the two marker calls around a call of a C function
that does nothing, ``gc.isenabled``), split by
part: CPython (the kernel's Python codecs and policy slot, and the interpreter and C
API that run them), vino's native call (the fast path and the stack guard), wasmtime
(its entry and exit), the guest (the graft's compiled code), and the rest (libc, the
loader, libffi: malloc beyond CPython's own allocator, copies).

Needs valgrind with its headers (Debian: ``apt-get install valgrind``) and the
``ziglang`` compiler the native fast path is built with (the markers around each
call are callgrind client requests in a small C library). Everything runs under
simulation: a few minutes. ``run`` raises ``OSError`` when valgrind is missing.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from vino.report import markdown_table

CALLS: Final = 4  # cold calls per window (the counts are per call)
WARM_CALLS: Final = 20  # calls before a window, so that nothing lazy is counted
VALGRIND_INCLUDE: Final = Path("/usr/include/valgrind")
# The simulated caches: 32 KiB first-level code and data caches of 64-byte lines, and a
# last-level cache of 4 KiB lines (1,024 pages, emptied by the 16 MiB write).
CACHES: Final = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=4194304,16,4096")
PARTS: Final = ("CPython", "vino native", "wasmtime", "guest", "rest")
EVENTS: Final = ("code_lines", "data_lines", "code_pages", "data_pages", "instructions")
WINDOWS: Final = ("floor", "native_floor", "readahead", "evict", "sched", "encrypt")
# What the windows of the two floors are called in the report.
FLOOR_TITLES: Final = {"floor": "floor (ctypes call of labs)",
                       "native_floor": "native floor (C-extension call of a Wasm export)"}

_MARKER_C: Final = r"""
#include <string.h>
#include <callgrind.h>
char vino_fp_big[16 << 20]; /* exported and used below: the write is never elided */
void vino_fp_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void vino_fp_zero(void) { CALLGRIND_ZERO_STATS; }
void vino_fp_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
#define N8 __asm__ volatile("nop; nop; nop; nop; nop; nop; nop; nop");
#define N64 N8 N8 N8 N8 N8 N8 N8 N8
#define N512 N64 N64 N64 N64 N64 N64 N64 N64
#define N4K N512 N512 N512 N512 N512 N512 N512 N512
void vino_fp_thrash(void) {
    memset(vino_fp_big, 1, sizeof vino_fp_big);
    __asm__ volatile("" : : "r"(vino_fp_big) : "memory");
    N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K
    N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K N4K
}
"""


def part_of(obj: str) -> str:
    """Which part of a call a callgrind object file (``ob=``) belongs to."""
    name = obj.rsplit("/", 1)[-1]
    if name.startswith("libpython") or ".cpython-" in name:
        return "CPython"
    if name.startswith(("fastpath-", "stack-")):
        return "vino native"
    if "wasmtime" in name:
        return "wasmtime"
    if name == "???":  # code with no object file: the guest's, compiled by wasmtime
        return "guest"
    return "rest"


def parse(text: str) -> dict[str, dict[str, int]]:
    """One callgrind dump: its events summed by object file (self costs, so each
    instruction counted once), with names expanded from callgrind's compression."""
    names: dict[tuple[str, str], str] = {}
    events: list[str] = []
    positions = 1  # the columns before the costs (line; instr line with --dump-instr)
    obj = ""
    in_call = False
    out: dict[str, dict[str, int]] = {}

    def name(kind: str, s: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?", s)
        if m is None:
            return s
        if m.group(2):
            names[(kind, m.group(1))] = m.group(2)
        return names.get((kind, m.group(1)), s)

    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith("ob="):
            obj = name("ob", line[3:])
        elif line.startswith("cob="):
            name("ob", line[4:])
        elif line.startswith(("fn=", "cfn=", "fl=", "fi=", "fe=", "cfi=", "cfl=")):
            kind = "fl" if line[:3] in ("fl=", "fi=", "fe=") or line[:4] in ("cfi=", "cfl=") \
                else "fn"
            name(kind, line.split("=", 1)[1])
        elif line.startswith("calls="):
            in_call = True  # the next cost line is the call's inclusive cost: skipped
        elif line[:1].isdigit() or line[:1] in ("+", "-", "*"):
            if in_call:
                in_call = False
                continue
            costs = line.split()[positions:]
            acc = out.setdefault(obj, dict.fromkeys(events, 0))
            for e, v in zip(events, costs, strict=False):
                acc[e] += int(v)
    return out


def by_part(dump: dict[str, dict[str, int]], calls: int) -> dict[str, dict[str, float]]:
    """A dump's lines and pages per call, by part."""
    out = {p: dict.fromkeys(EVENTS, 0.0) for p in PARTS}
    for obj, ev in dump.items():
        p = out[part_of(obj)]
        p["code_lines"] += ev.get("I1mr", 0) / calls
        p["data_lines"] += (ev.get("D1mr", 0) + ev.get("D1mw", 0)) / calls
        p["code_pages"] += ev.get("ILmr", 0) / calls
        p["data_pages"] += (ev.get("DLmr", 0) + ev.get("DLmw", 0)) / calls
        p["instructions"] += ev.get("Ir", 0) / calls
    return out


def net(window: dict[str, dict[str, float]], empty: dict[str, dict[str, float]]
        ) -> dict[str, dict[str, float]]:
    """``window`` less the empty window (the markers' own calls), part by part."""
    return {p: {e: window[p][e] - empty[p][e] for e in EVENTS} for p in PARTS}


def totals(parts: dict[str, dict[str, float]]) -> dict[str, float]:
    return {e: sum(parts[p][e] for p in PARTS) for e in EVENTS}


def _marker() -> ctypes.CDLL:
    from vino.graft.nativebuild import native_library

    if not (VALGRIND_INCLUDE / "callgrind.h").is_file():
        raise OSError(f"no {VALGRIND_INCLUDE / 'callgrind.h'} (install valgrind)")
    src = Path(tempfile.gettempdir()) / "vino-footprint" / "footprint_marker.c"
    src.parent.mkdir(parents=True, exist_ok=True)
    if not src.is_file() or src.read_text() != _MARKER_C:
        src.write_text(_MARKER_C)
    lib = ctypes.CDLL(str(native_library(src, flags=("-isystem", str(VALGRIND_INCLUDE)))))
    for f in ("vino_fp_toggle", "vino_fp_zero", "vino_fp_thrash", "vino_fp_dump"):
        getattr(lib, f).restype = None
    lib.vino_fp_dump.argtypes = [ctypes.c_char_p]
    return lib


def _child(calls: int) -> None:
    """Under callgrind: each window's calls, caches emptied before each, one dump each."""
    from vino.bench import goals, paper, setups
    from vino.graft.sandbox import Sandbox

    lib = _marker()  # built before anything is measured
    with tempfile.TemporaryDirectory(prefix="vino-bench-footprint-") as tmp:
        shared = Sandbox()
        booted = {k: setups.build(k, Path(tmp), shared) for k in paper.GRAFTS}
        try:
            # The empty window calls a C function that does nothing (no Python frame, as
            # the slots and the floors make none): every window is net of the markers and
            # of the interpreter's bare call.
            windows: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
                ("empty", gc.isenabled, ()), ("floor", goals.c_floor(), (-5,))]
            native_floor = goals.WasmFloor.make(shared)
            if native_floor is not None:  # None without the native fast path
                windows.append(("native_floor", native_floor.call, ()))
            windows += [(k, s.hook, s.hook_args()) for k, s in booted.items()]
            toggle, thrash = lib.vino_fp_toggle, lib.vino_fp_thrash
            for name, f, args in windows:
                for _ in range(WARM_CALLS):
                    f(*args)
                lib.vino_fp_zero()
                for _ in range(calls):
                    thrash()
                    toggle()
                    f(*args)
                    toggle()
                lib.vino_fp_dump(name.encode())
        finally:
            for s in booted.values():
                s.close()
            shared.close()


def run(calls: int = CALLS, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Each window's footprint per call, by part (net of the empty window)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise OSError("valgrind is not installed (Debian: apt-get install valgrind)")
    _marker()  # built here, outside the simulation
    with tempfile.TemporaryDirectory(prefix="vino-bench-footprint-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [valgrind, "--tool=callgrind", "--collect-atstart=no", "--cache-sim=yes",
               *CACHES, f"--callgrind-out-file={out}", sys.executable, "-m",
               "vino.bench.footprint", "--child", str(calls)]
        if progress is not None:
            progress("footprint: the calls under callgrind (minutes)")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=dict(os.environ, PYTHONHASHSEED="0"))
        if done.returncode != 0:
            raise OSError(f"callgrind failed: {done.stderr.strip()[-500:]}")
        dumps = {}
        for f in Path(tmp).glob("callgrind.out.*"):
            text = f.read_text()
            m = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
            if m is not None:
                dumps[m.group(1)] = by_part(parse(text), calls)
    return summarise(dumps, calls)


def summarise(dumps: dict[str, dict[str, dict[str, float]]], calls: int) -> dict[str, Any]:
    empty = dumps["empty"]
    windows = {w: net(dumps[w], empty) for w in WINDOWS if w in dumps}
    return {"calls": calls, "windows": {w: {"parts": p, "total": totals(p)}
                                        for w, p in windows.items()}}


def render(result: dict[str, Any]) -> str:
    """One row per window: its totals, then each part's code and data lines."""
    from vino.bench import paper

    def title(w: str) -> str:
        return FLOOR_TITLES.get(w) or paper.TITLES[w]

    def cell(v: dict[str, float], keys: Iterable[str]) -> str:
        return " / ".join(f"{v[k]:,.0f}" for k in keys)

    rows = []
    for w, r in result["windows"].items():
        t = r["total"]
        rows.append([title(w), cell(t, EVENTS[:4]), f"{t['instructions']:,.0f}",
                     *(cell(r["parts"][p], ("code_lines", "data_lines")) for p in PARTS)])
    head = ["call", "code lines / data lines / code pages / data pages", "instructions",
            *(f"{p}: code / data lines" for p in PARTS)]
    return (f"Footprint of one cold call (callgrind, caches emptied before each call, "
            f"{result['calls']} calls; per call, less the markers' empty window)\n\n"
            + markdown_table(head, rows))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]))
    else:
        print(render(run()))
