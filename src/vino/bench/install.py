"""The worst-case cost of installing a graft at the loader's limits (``vino bench install``).

Everything the loader admits compiles in bounded time and memory: the section
scan refuses, before compiling, any module over ``MAX_MODULE_BYTES``,
``MAX_FUNCTIONS``, ``MAX_FUNCTION_BODY_BYTES`` or ``MAX_LOCALS_PER_FUNCTION``.
This benchmark builds modules that sit exactly at those limits, in the shapes
that cost a compiler most, and measures what compiling one costs the host:

- ``cpu_s``: CPU time of the compiling thread (what the installer is charged);
- ``rss_mb``: growth of the process's peak resident memory while compiling.

Each (shape, compiler) pair runs in a fresh child interpreter, so peaks do not
hide each other. Compilers: ``cranelift`` (vino's, optimising for speed),
``cranelift-none`` and ``winch`` (wasmtime's baseline compiler). A last row
measures the refusal of the module that used to cost seconds (60,002 tiny
functions): it is refused by the scan, before compiling.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Final

from vino import limits
from vino.graft.fastcall import COMPILERS
from vino.report import markdown_table


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _section(sid: int, items: list[bytes]) -> bytes:
    body = _leb(len(items)) + b"".join(items)
    return bytes([sid]) + _leb(len(body)) + body


def _name(s: str) -> bytes:
    return _leb(len(s)) + s.encode()


def graft_module(bodies: list[bytes], nlocals: int = 0) -> bytes:
    """A valid graft for a ``() -> i32`` entry named ``pick``: ``memory``, ``vino_buffer``
    (the first body), ``pick`` (the second), and the rest, each declaring ``nlocals``."""
    fn_type = b"\x60\x00\x01\x7f"  # () -> i32
    exports = [_name("memory") + b"\x02\x00", _name("vino_buffer") + b"\x00\x00",
               _name("pick") + b"\x00\x01"]
    codes = []
    for i, body in enumerate(bodies):
        decl = _leb(1) + _leb(nlocals) + b"\x7f" if nlocals and i > 1 else b"\x00"
        fb = decl + body + b"\x0b"
        codes.append(_leb(len(fb)) + fb)
    return (b"\0asm\x01\0\0\0" + _section(1, [fn_type]) + _section(3, [b"\x00"] * len(bodies))
            + _section(5, [b"\x00\x01"]) + _section(7, exports) + _section(10, codes))


def _arith(size: int, nlocals: int = 0) -> bytes:
    """``size`` bytes of one long i32 expression (reading ``nlocals`` locals round-robin)."""
    body = bytearray(b"\x41\x01")
    k = 0
    while len(body) < size - 6:
        body += (b"\x20" + _leb(k % nlocals) if nlocals else b"\x41" + _leb(k % 60 + 1)) + b"\x6a"
        k += 1
    return bytes(body)


def _nested(size: int) -> bytes:
    n = (size - 4) // 3
    return b"\x02\x40" * n + b"\x0b" * n + b"\x41\x00"


def _loops(n: int, nlocals: int = 0) -> bytes:
    """``n`` nested loops; the innermost sets each of ``nlocals`` locals."""
    sets = b"".join(b"\x41\x01\x21" + _leb(i) for i in range(nlocals))
    return b"\x03\x40" * n + sets + b"\x0b" * n + b"\x41\x00"


def _fill(make: Callable[[int], bytes], per_body: int, nlocals: int = 0) -> bytes:
    """Bodies of ``per_body`` bytes (and two tiny entry bodies) up to the module size limit."""
    entry = [b"\x41\x00", b"\x41\x01"]
    overhead = 64
    n = min(limits.MAX_FUNCTIONS - 2,
            (limits.MAX_MODULE_BYTES - overhead) // (per_body + 8 + (3 if nlocals else 1)))
    return graft_module(entry + [make(per_body)] * n, nlocals)


SHAPES: Final[dict[str, Callable[[], bytes]]] = {
    "sample graft (chacha20_filter, 5 KB)": lambda: b"",  # read from the SDK in the child
    "4094 functions of 240 B (1 MiB)": lambda: _fill(_arith, 240),
    "15 bodies of 64 KiB (1 MiB)": lambda: _fill(_arith, limits.MAX_FUNCTION_BODY_BYTES - 16),
    "15 bodies of 64 KiB, 1024 live locals": lambda: _fill(
        lambda n: _arith(n, limits.MAX_LOCALS_PER_FUNCTION),
        limits.MAX_FUNCTION_BODY_BYTES - 16, limits.MAX_LOCALS_PER_FUNCTION),
    "15 bodies of 64 KiB of nested blocks": lambda: _fill(_nested,
                                                          limits.MAX_FUNCTION_BODY_BYTES - 16),
    "4 bodies of 1024 nested loops (the loop limits)": lambda: graft_module(
        [b"\x41\x00", b"\x41\x01"]
        + [_loops(limits.MAX_LOOPS_PER_FUNCTION)] * (limits.MAX_LOOPS
                                                    // limits.MAX_LOOPS_PER_FUNCTION)),
    "16 bodies of 16 loops over 1023 locals (the loop weight)": lambda: graft_module(
        [b"\x41\x00", b"\x41\x01"]
        + [_loops(16, limits.MAX_LOCALS_PER_FUNCTION - 1)]
        * (limits.MAX_LOOP_WEIGHT // (16 * limits.MAX_LOCALS_PER_FUNCTION)),
        limits.MAX_LOCALS_PER_FUNCTION - 1),
    "4094 functions x 1024 locals": lambda: graft_module(
        [b"\x41\x00", b"\x41\x01"] + [b"\x41\x00"] * (limits.MAX_FUNCTIONS - 2),
        limits.MAX_LOCALS_PER_FUNCTION),
}
REFUSED: Final = "60,002 tiny functions (refused by the scan)"

_CHILD: Final = """
import json, sys
from vino.bench import install
shape, compiler = sys.argv[1], sys.argv[2]
print(json.dumps(install.measure_here(shape, compiler)))
"""


def measure_here(shape: str, compiler: str) -> dict[str, Any]:
    """Compile one shape in this process; CPU seconds and peak-RSS growth (MB)."""
    import resource
    import time

    from vino.bench import bench_quota
    from vino.bench.micro import decode_pick, encode_pick
    from vino.errors import GraftRejected
    from vino.graft import GLOBAL, FunctionPoint, Principal, Registry
    from vino.graft.sandbox import Sandbox
    from vino.sdk.build import sample_path

    reg = Registry(sandbox=Sandbox(compiler=compiler))
    point = reg.declare(FunctionPoint[object, int, int](
        name="bench.install", entry="pick", buffer_size=64, encode=encode_pick,
        decode=decode_pick, default=lambda x: 7, target_type=object))
    root = Principal("root", bench_quota(), privileged=True)
    if shape == REFUSED:
        wasm = graft_module([b"\x41\x00"] * 60_002)
    elif shape.startswith("sample"):
        wasm = sample_path("chacha20_filter.wasm").read_bytes()
    else:
        wasm = SHAPES[shape]()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.thread_time()
    w0 = time.perf_counter()
    try:
        if shape.startswith("sample"):
            reg.sandbox.compile(wasm)
        else:
            reg.check(point, wasm, root, GLOBAL)
        outcome = "compiled"
    except GraftRejected as exc:
        outcome = "refused: " + exc.reason[:60]
    cpu = time.thread_time() - t0
    wall = time.perf_counter() - w0
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    reg.close()
    return {"bytes": len(wasm), "cpu_s": cpu, "wall_s": wall, "rss_mb": rss, "outcome": outcome}


def run(compilers: tuple[str, ...] = COMPILERS, quick: bool = False) -> dict[str, Any]:
    """Every shape with every compiler, each in a child process."""
    shapes = [*SHAPES, REFUSED]
    if quick:
        shapes, compilers = [*shapes[:2], REFUSED], compilers[:1]
    rows: dict[str, dict[str, Any]] = {}
    for shape in shapes:
        rows[shape] = {}
        for compiler in (compilers if shape != REFUSED else compilers[:1]):
            done = subprocess.run([sys.executable, "-c", _CHILD, shape, compiler],
                                  capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                rows[shape][compiler] = {"error": done.stderr.strip().splitlines()[-1:]}
                continue
            rows[shape][compiler] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"limits": {"MAX_MODULE_BYTES": limits.MAX_MODULE_BYTES,
                       "MAX_FUNCTIONS": limits.MAX_FUNCTIONS,
                       "MAX_FUNCTION_BODY_BYTES": limits.MAX_FUNCTION_BODY_BYTES,
                       "MAX_LOCALS_PER_FUNCTION": limits.MAX_LOCALS_PER_FUNCTION},
            "rows": rows}


def render(result: dict[str, Any]) -> str:
    """A markdown table: one row per shape, CPU seconds / peak MB per compiler."""
    compilers = sorted({c for r in result["rows"].values() for c in r},
                       key=lambda c: COMPILERS.index(c))
    rows = []
    for shape, per in result["rows"].items():
        size = next((v["bytes"] for v in per.values() if "bytes" in v), 0)
        cells = []
        for c in compilers:
            v = per.get(c)
            if v is None:
                cells.append("")
            elif "error" in v:
                cells.append(f"error: {v['error']}")
            else:
                note = "" if v["outcome"] == "compiled" else " (refused)"
                cells.append(f"{v['cpu_s']:.2f} / {v['rss_mb']:.0f}{note}")
        rows.append([shape, f"{size:,}", *cells])
    return markdown_table(["module", "bytes", *(f"{c}: CPU s / MB" for c in compilers)], rows)
