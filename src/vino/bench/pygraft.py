"""Python grafts against their C twins (``vino bench python``).

For each sample that has both a C and a Python version, one kernel holds two
identical targets, one grafted with the C build and one with the compiled Python,
and the point is called on each with the same inputs, interleaved round by round
so that a noisy machine slows both alike. Reported per sample:

- ``call``: a whole protected invocation through the kernel point (begin, copy in,
  the graft, validate, commit), µs; the ratio Python / C is the figure of merit;
- ``graft``: the graft's code alone: the raw fast-path call of its entry on the
  buffer the last protected call filled (no transaction, no copying), µs -- the
  same ctypes transition for both, so the difference is the compiled code;
- ``compile``: ``vino.pygraft`` compiling the Python source to Wasm, ms (median).

Each call figure is the median over rounds of the mean per call in a round, and
also the fastest round's; each graft figure the fastest round's mean (the code's
own cost: on a shared machine a round can only be slowed down, never sped up). The
answers
of both grafts are compared on every input before timing: a benchmark of grafts
that disagree would measure nothing.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vino import limits
from vino.bench import bench_quota
from vino.graft import Graft
from vino.kernel import params
from vino.kernel.cache import PageInfo
from vino.kernel.kernel import Kernel
from vino.kernel.layouts import LAYOUTS
from vino.kernel.sched import ThreadInfo
from vino.pygraft import compile_source
from vino.sdk.build import sample_path
from vino.workloads import hot_set_message

BS = params.BLOCK_SIZE


@dataclass(slots=True)
class Pair:
    """One sample's two grafts and a call that invokes a point on a target."""

    name: str
    point: str
    call: Callable[[Any], object]  # target -> the point's answer
    targets: tuple[Any, Any]  # (C target, Python target)
    grafts: tuple[Graft, Graft]
    args: tuple[int, ...] = ()  # the entry's Wasm arguments, for the raw call


def _install(k: Kernel, user: Any, point: str, name: str, targets: tuple[Any, Any],
             message: bytes | None) -> tuple[Graft, Graft]:
    out = []
    for src, t in zip((sample_path(f"{name}.wasm"), sample_path(f"{name}.py")), targets,
                      strict=True):
        g = k.registry.install(point, src, user.principal, t, remove_after=limits.NEVER_REMOVE)
        if message is not None:
            g.send(message)
        out.append(g)
    return out[0], out[1]


def _pairs(k: Kernel) -> list[Pair]:
    alice = k.add_user("alice", bench_quota())
    procs = [k.spawn(alice, f"p{i}", k.new_group(alice, f"g{i}")) for i in range(2)]
    pairs: list[Pair] = []

    # fs.readahead: a backward scan in mid-file, after a window boundary
    k.fs.create(alice, "f", 0o600)
    with k.fs.open(procs[0], "f", "w") as f:
        k.fs.write(f, bytes(64 * BS))
    files = (k.fs.open(procs[0], "f", "r"), k.fs.open(procs[1], "f", "r"))
    for of in files:
        for b in (44, 43, 42, 41):
            k.fs.seek(of, b * BS)
            k.fs.read(of, BS)
    ra = k.points["fs.readahead"]
    pairs.append(Pair("readahead_stride", "fs.readahead", lambda of: ra(of, of, 40), files,
                      _install(k, alice, "fs.readahead", "readahead_stride", files, None)))

    # vm.evict: 64 candidates, 16 of them important
    aspaces = (k.address_space(procs[0]), k.address_space(procs[1]))
    cands = [PageInfo(page_id=i, vpn=(i * 7) % 96, flags=i % 4, last_use=1000 - (i * 37) % 500)
             for i in range(64)]
    keep = sorted({(i * 7) % 96 for i in range(0, 64, 4)})
    ev = k.points["vm.evict"]
    msg = hot_set_message(keep)
    pairs.append(Pair("evict_keep", "vm.evict", lambda a: ev(a, a, cands), aspaces,
                      _install(k, alice, "vm.evict", "evict_keep", aspaces, msg)))
    aspaces2 = (k.address_space(k.spawn(alice, "q0")), k.address_space(k.spawn(alice, "q1")))
    kmsg = b"".join(v.to_bytes(4, "little") for v in (1, len(keep), *keep))
    pairs.append(Pair("sqlite_evict", "vm.evict", lambda a: ev(a, a, cands), aspaces2,
                      _install(k, alice, "vm.evict", "sqlite_evict", aspaces2, kmsg)))

    # sched.pick: 16 runnable threads, a few interactive
    groups = (procs[0].group, procs[1].group)
    rows = [ThreadInfo(tid=i + 1, priority=0, cpu_ns=i * 1000, waited_ns=(i * 7919) % 5000,
                       flags=1 if i % 5 == 0 else 0) for i in range(16)]
    sp = k.points["sched.pick"]
    pairs.append(Pair("sched_interactive", "sched.pick", lambda g: sp(g, g, rows), groups,
                      _install(k, alice, "sched.pick", "sched_interactive", groups, None)))

    # fs.filter: one 4 KiB block, encrypted
    inodes = []
    for i in range(2):
        k.fs.create(alice, f"c{i}", 0o600)
        with k.fs.open(procs[0], f"c{i}", "w") as f:
            inodes.append(f.inode)
    data = hashlib.sha256(b"bench").digest() * (BS // 32)
    key = hashlib.sha256(b"key").digest() + bytes(12)
    fl = k.points["fs.filter"]
    pair_inodes = (inodes[0], inodes[1])
    pairs.append(Pair("chacha20_filter", "fs.filter", lambda n: fl(n, n, 8 * BS, data, 0),
                      pair_inodes, _install(k, alice, "fs.filter", "chacha20_filter",
                                            pair_inodes, key), (0, len(data))))
    return pairs


def _compile_ms(name: str, point: str, reps: int) -> float:
    text = sample_path(f"{name}.py").read_text()
    times = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        compile_source(text, LAYOUTS[point])
        times.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(times)


def run(rounds: int = 15, calls: int = 2000,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every pair; return plain data (µs per call, ratios, compile ms)."""
    with tempfile.TemporaryDirectory(prefix="vino-bench-py-") as tmp:
        k = Kernel.boot(Path(tmp) / "k.img", nblocks=512)
        try:
            return _measure(k, rounds, calls, progress)
        finally:
            k.shutdown()


def _measure(k: Kernel, rounds: int, calls: int,
             progress: Callable[[str], None] | None) -> dict[str, Any]:
    pairs = _pairs(k)
    for p in pairs:
        a, b = (p.call(t) for t in p.targets)
        if a != b:
            raise AssertionError(f"{p.name}: the C and Python grafts disagree ({a!r} != {b!r})")
        if any(g.stats.aborts for g in p.grafts):
            raise AssertionError(f"{p.name}: a graft aborted: {[g.aborts for g in p.grafts]}")
    call_us: dict[str, tuple[list[float], list[float]]] = {p.name: ([], []) for p in pairs}
    graft_us: dict[str, tuple[list[float], list[float]]] = {p.name: ([], []) for p in pairs}
    for r in range(rounds):
        for p in pairs:
            n = calls if p.point != "fs.filter" else max(calls // 4, 20)
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                target, g = p.targets[side], p.grafts[side]
                t = time.perf_counter_ns()
                for _ in range(n):
                    p.call(target)
                call_us[p.name][side].append((time.perf_counter_ns() - t) / n / 1000)
                raw = g.entry
                if p.args:
                    t = time.perf_counter_ns()
                    for _ in range(n):
                        raw.call(*p.args)
                else:
                    call0 = raw.call0
                    t = time.perf_counter_ns()
                    for _ in range(n):
                        call0()
                graft_us[p.name][side].append((time.perf_counter_ns() - t) / n / 1000)
        if progress:
            progress(f"round {r + 1}/{rounds}")
    out: dict[str, Any] = {"rounds": rounds, "samples": {}}
    for p in pairs:
        if any(g.stats.aborts for g in p.grafts):
            raise AssertionError(f"{p.name}: a graft aborted while timed")
        c_call, py_call = (statistics.median(v) for v in call_us[p.name])
        c_fast, py_fast = (min(v) for v in call_us[p.name])
        c_graft, py_graft = (min(v) for v in graft_us[p.name])
        out["samples"][p.name] = {
            "point": p.point, "c_call_us": c_call, "py_call_us": py_call,
            "call_ratio": py_call / c_call, "c_call_fastest_us": c_fast,
            "py_call_fastest_us": py_fast, "call_ratio_fastest": py_fast / c_fast,
            "c_graft_us": c_graft, "py_graft_us": py_graft,
            "graft_ratio": py_graft / c_graft if c_graft else float("nan"),
            "compile_ms": _compile_ms(p.name, p.point, max(rounds // 3, 3)),
            "py_wasm_bytes": len(compile_source(sample_path(f"{p.name}.py").read_text(),
                                                LAYOUTS[p.point]).wasm),
            "c_wasm_bytes": len(sample_path(f"{p.name}.wasm").read_bytes()),
        }
    return out


def render(result: dict[str, Any]) -> str:
    lines = [f"Python grafts vs their C twins (µs per call; protected call: median of "
             f"{result['rounds']} interleaved rounds, and the ratio of the fastest rounds; "
             "graft alone: fastest round)", "",
             f"{'sample':<18} {'point':<13} {'C call':>8} {'Py call':>8} {'ratio':>6} "
             f"{'fastest':>7} {'C graft':>8} {'Py graft':>8} {'ratio':>6} {'compile':>9} "
             f"{'bytes C/Py':>11}"]
    for name, s in result["samples"].items():
        lines.append(f"{name:<18} {s['point']:<13} {s['c_call_us']:8.2f} {s['py_call_us']:8.2f} "
                     f"{s['call_ratio']:6.2f} {s['call_ratio_fastest']:7.2f} "
                     f"{s['c_graft_us']:8.2f} {s['py_graft_us']:8.2f} "
                     f"{s['graft_ratio']:6.2f} {s['compile_ms']:7.1f}ms "
                     f"{s['c_wasm_bytes']:>5}/{s['py_wasm_bytes']}")
    return "\n".join(lines)
