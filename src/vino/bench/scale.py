"""Scale: invocation cost, install time and memory with 1, 1,000 and 100,000 grafts.

One generic function point, ``bench.readahead``, with the ``fs.readahead`` buffer
layout and validator, stands for "one read-ahead graft per open file": its
targets are plain integers and each gets its own instance of
``readahead_stride.wasm`` (the module is compiled once and shared through the
sandbox's compile cache and the registry's ``InstancePre`` cache; each graft
has its own store, instance and linear memory).

Configurations, each a registry of its own, all alive at once so that their
calls can be interleaved round by round:

- ``pool-N`` for N in the counts: a sandbox with ``Pool(...)``, wasmtime's
  pooling allocator with whole-slot mappings (see ``vino.graft.sandbox``), one
  pool shared by every ``pool-N``;
- ``default-N`` for the counts up to ``DEFAULT_MAX``: the default (on-demand)
  allocator. It maps each instance's memory separately -- two mappings per
  graft -- and Linux allows ``vm.max_map_count`` (65,530) mappings per process,
  so it cannot reach 100,000; the limit is computed from the measured mappings
  per graft rather than by running into it.

Measured:

- per call, µs: ``hot`` = the same target every call; ``spread`` = cycling over
  1,024 targets spread evenly over all N (each call a different graft, so
  caches are colder), interleaved over every configuration;
- install, µs per graft: each ``Registry.install`` timed (checks, instance,
  buffer binding, accounting, the table switch), median / mean / p90. The mean
  includes Python's cyclic garbage collector, whose full collections rescan
  every object of every graft already installed (about 15 per graft). For the
  largest count, installs are also timed in two fresh interpreters (nothing
  else in their heap): with the collector as it comes; with the host calling
  ``gc.freeze()`` every ``FREEZE_EVERY`` installs (outside the timed installs);
  and with the collector paused for the whole batch (``gc.disable()``) -- the
  last is vino's own cost. Each probe also gives the installing thread's CPU time
  per install (``install_cpu_us``), which other processes on a shared machine do
  not inflate; ``compare_installs`` (``vino bench install --against REV``) runs the
  probe with this tree and with another revision's, alternated;
- memory per graft: the process's resident set (``VmRSS``) growth over the
  installs ÷ N; the linear-memory pages each graft touched (``mincore`` on its
  memory) are reported separately and subtracted to give host memory per graft;
  ``/proc/self/maps`` growth ÷ N gives mappings per graft;
- protected calls per second from 1 and from 2 threads (each thread on its own
  grafts), ``THREAD_RUN_S`` per sample, alternated.

Caveats: RSS also counts the Python objects of each ``Graft`` and allocator
slack; the pool's slots are reserved virtual memory and cost nothing until
touched. Two threads share one GIL: only the Wasm part of a call (the GIL is
released around it) can overlap.
"""

from __future__ import annotations

import ctypes
import gc
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from vino.bench import BENCH_CPU_TOTAL_S
from vino.bench.timing import Contender, Progress, interleave, ratio, spread, threaded_rate
from vino.errors import InvalidResult
from vino.graft import FunctionPoint, Principal, Quota, Registry, any_principal
from vino.graft.sandbox import Pool, Sandbox
from vino.kernel import params
from vino.kernel.layouts import READAHEAD
from vino.report import AT_MOST, markdown_table, target
from vino.sdk.build import sample_path

COUNTS: Final = (1, 1_000, 100_000)
QUICK_COUNTS: Final = (1, 10, 100)
DEFAULT_MAX: Final = 1_000  # the default allocator is measured up to this many grafts
POOL_SPARE: Final = 16  # slots beyond N in each pool
SPREAD_TARGETS: Final = 1024  # targets cycled over by the "spread" contender (a power of 2)
THREAD_RUN_S: Final = 0.25  # seconds per calls-per-second sample
QUICK_THREAD_RUN_S: Final = 0.02
THREAD_ROUNDS: Final = 5
FREEZE_EVERY: Final = 1_000  # installs between gc.freeze() calls in the frozen probe
PROBE_MIN: Final = 10_000  # install probes in fresh interpreters from this many grafts
PROBE_TIMEOUT_S: Final = 1800.0
MAX_MAP_COUNT_DEFAULT: Final = 65_530  # Linux's default vm.max_map_count
KIB: Final = 1024
BENCH_QUOTA: Final = Quota(memory_bytes=1 << 44, cpu_total_s=BENCH_CPU_TOTAL_S, handles=1 << 20,
                           grafts=1 << 20, installs_per_s=math.inf)

# Targets of the issue.
FLAT_WITHIN: Final = 1.10  # per-call cost at the largest N ÷ at one graft
INSTALL_TARGET_US: Final = 100.0
HOST_MEMORY_TARGET_KIB: Final = 32.0

FILE_BLOCKS: Final = 1000
BLOCK: Final = 128
HIST: Final = tuple(range(BLOCK, BLOCK + params.READAHEAD_HISTORY))
MAX_OUT: Final = params.READAHEAD_MAX_OUT
_IN = READAHEAD.rows("hist", len(HIST))


def _encode(buf: memoryview, nblocks: int, block: int, hist: Sequence[int]) -> tuple[int, ...]:
    _IN.pack_into(buf, 0, nblocks, block, MAX_OUT, len(hist), *hist)
    return ()


def _decode(buf: memoryview, count: int, nblocks: int, block: int,
            hist: Sequence[int]) -> list[int]:
    if not 0 <= count <= MAX_OUT:
        raise InvalidResult(f"bench.readahead: {count} blocks; at most {MAX_OUT}")
    out = list(READAHEAD.elements("out", count).unpack_from(buf, READAHEAD.field("out").offset))
    if out and (max(out) >= nblocks or len(set(out)) != count):
        raise InvalidResult("bench.readahead: block past the end, or duplicates")
    return out


def _default(nblocks: int, block: int, hist: Sequence[int]) -> list[int]:
    return []


ARGS: Final = (FILE_BLOCKS, BLOCK, HIST)


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    raise RuntimeError("no VmRSS in /proc/self/status")


def _maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_libc.mincore.restype = ctypes.c_int


def resident_bytes(base: int, size: int) -> int:
    """Bytes of [base, base + size) resident in memory (``mincore``; base page-aligned)."""
    pages = (size + _PAGE - 1) // _PAGE
    if pages == 0:
        return 0
    vec = (ctypes.c_ubyte * pages)()
    if _libc.mincore(base, size, vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return sum(v & 1 for v in vec) * _PAGE


@dataclass(slots=True)
class Config:
    """One registry with ``n`` installed grafts."""

    name: str
    n: int
    pooled: bool
    registry: Registry
    point: FunctionPoint[object, int, int, Sequence[int], list[int]]
    frozen: bool = False  # gc.freeze() during the installs (a variant, not the default)
    install_us: list[float] = field(default_factory=list)
    install_cpu_ns: int = 0  # the installing thread's CPU time over all installs
    rss_bytes: int = 0  # RSS growth over the installs
    maps: int = 0  # mapping-count growth over the installs
    linear_resident_bytes: int = 0  # linear-memory pages resident, over all grafts

    def summary(self) -> dict[str, Any]:
        ins = self.install_us
        qs = statistics.quantiles(ins, n=10) if len(ins) > 1 else ins * 9
        n = max(self.n, 1)
        host = (self.rss_bytes - self.linear_resident_bytes) / n
        return {"n": self.n, "pooled": self.pooled, "gc_frozen": self.frozen,
                "install_us": {"median": statistics.median(ins), "mean": statistics.fmean(ins),
                               "p90": qs[-1]},
                "install_cpu_us": self.install_cpu_ns / n / 1e3,
                "rss_per_graft_kib": self.rss_bytes / n / KIB,
                "linear_resident_per_graft_kib": self.linear_resident_bytes / n / KIB,
                "host_per_graft_kib": host / KIB,
                "maps_per_graft": self.maps / n}


def build(name: str, n: int, pooled: bool, progress: Progress | None = None,
          freeze_every: int = 0, sandbox: Sandbox | None = None) -> Config:
    """A registry with ``n`` grafts; ``freeze_every``: ``gc.freeze()`` after that many installs.

    ``sandbox``: shared with other configurations (its pool, if any, must have
    room); by default the registry gets its own, pooled or not as ``pooled`` says.
    """
    if sandbox is None:
        sandbox = (Sandbox(pool=Pool(n + POOL_SPARE, share=n + POOL_SPARE)) if pooled
                   else Sandbox())
    elif (sandbox.pool is not None) != pooled:
        raise ValueError(f"{name}: the shared sandbox is {'' if sandbox.pool else 'not '}pooled")
    reg = Registry(sandbox=sandbox)
    point = FunctionPoint(
        name="bench.readahead", entry="vino_readahead", buffer_size=READAHEAD.buffer_size,
        encode=_encode, decode=_decode, default=_default, may_install=any_principal,
        target_type=object)
    reg.declare(point)
    who = Principal("bench", BENCH_QUOTA)
    wasm = sample_path("readahead_stride.wasm").read_bytes()
    cfg = Config(name, n, pooled, reg, point, frozen=bool(freeze_every))
    gc.collect()
    rss0, maps0 = _rss(), _maps()
    perf, cpu = time.perf_counter_ns, time.thread_time_ns
    step = max(n // 10, 1)
    for i in range(n):
        c = cpu()
        t = perf()
        reg.install(point, wasm, who, target=i)
        cfg.install_us.append((perf() - t) / 1e3)
        cfg.install_cpu_ns += cpu() - c
        if freeze_every and (i + 1) % freeze_every == 0:
            gc.freeze()  # outside the timed install: a host's choice, shown as a variant
        if progress is not None and n >= 10_000 and (i + 1) % step == 0:
            progress(f"scale: {name}: {i + 1:,} grafts installed")
    for i in range(n):  # every graft runs once: its stack and buffer pages are touched
        point(i, *ARGS)
    cfg.rss_bytes = _rss() - rss0
    cfg.maps = _maps() - maps0
    cfg.linear_resident_bytes = sum(resident_bytes(g.memory.base, g.memory.size)
                                    for g in reg.grafts(point))
    return cfg


def _calls(cfg: Config, spread_out: bool) -> Contender:
    point = cfg.point
    if spread_out:
        step = max(cfg.n // SPREAD_TARGETS, 1)
        ts = [(i * step) % cfg.n for i in range(SPREAD_TARGETS)]
    else:
        ts = [0] * SPREAD_TARGETS
    mask = SPREAD_TARGETS - 1
    a, b, c = ARGS

    def run(n: int) -> dict[str, float]:
        perf = time.perf_counter_ns
        t = perf()
        for i in range(n):
            point(ts[i & mask], a, b, c)
        return {"": (perf() - t) / n / 1e3}
    return Contender(f"{cfg.name}/{'spread' if spread_out else 'hot'}", run)


def calls_per_second(cfg: Config, threads: int, run_s: float) -> float:
    """Protected calls per second from ``threads`` threads, each on its own grafts."""
    point = cfg.point
    a, b, c = ARGS
    mask = SPREAD_TARGETS - 1

    def batch(j: int) -> Callable[[], int]:
        ts = [(j + threads * i) % cfg.n for i in range(SPREAD_TARGETS)]
        at = [0]  # the next target's index, carried from batch to batch

        def run() -> int:
            k = at[0]
            for _ in range(256):
                point(ts[k & mask], a, b, c)
                k += 1
            at[0] = k
            return 256

        return run

    return threaded_rate(batch, threads, run_s)


def run(counts: Sequence[int] = COUNTS, *, rounds: int = 15, batch_s: float = 0.01,
        quick: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Build every configuration, then measure them side by side."""
    configs: list[Config] = []
    # One sandbox per allocator (one engine, one epoch ticker each), shared by its
    # configurations, so that calls compare table sizes and working sets, not tickers.
    default_sb = Sandbox()
    slots = sum(counts) + POOL_SPARE * len(counts)
    pool_sb = Sandbox(pool=Pool(slots, share=slots))  # one tenant: the whole pool
    try:
        for n in sorted(counts):
            if n <= DEFAULT_MAX:
                configs.append(build(f"default-{n}", n, pooled=False, progress=progress,
                                     sandbox=default_sb))
            configs.append(build(f"pool-{n}", n, pooled=True, progress=progress,
                                 sandbox=pool_sb))
            if progress is not None:
                progress(f"scale: {n:,} grafts installed (pooled and default)"
                         if n <= DEFAULT_MAX else f"scale: {n:,} grafts installed (pooled)")
        cs = [_calls(cfg, s) for cfg in configs for s in (False, True)]
        series = interleave(cs, rounds, batch_s, progress=progress, label="scale: ")
        biggest = max(configs, key=lambda c: (c.n, c.pooled))
        run_s = QUICK_THREAD_RUN_S if quick else THREAD_RUN_S
        cps: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(THREAD_ROUNDS if not quick else 1):
            for t in (1, 2):
                cps[t].append(calls_per_second(biggest, t, run_s))
        if progress is not None:
            progress("scale: calls per second measured")
        probes: dict[str, Any] = {}
        if biggest.n >= PROBE_MIN:
            for label, every, paused in (
                    ("collector as it comes", 0, False),
                    (f"gc.freeze() every {FREEZE_EVERY:,} installs", FREEZE_EVERY, False),
                    ("collector paused (gc.disable())", 0, True)):
                if progress is not None:
                    progress(f"scale: {biggest.n:,} installs in a fresh interpreter, {label}")
                probes[label] = install_in_fresh_process(biggest.n, every, paused)
        result = _summarise(configs, series, cps, biggest, probes)
    finally:
        for cfg in configs:
            cfg.registry.close()
        default_sb.close()
        pool_sb.close()
        gc.unfreeze()
    return result


def install_probe(n: int, freeze_every: int = 0, pause_gc: bool = False) -> dict[str, Any]:
    """Install ``n`` grafts in a pooled registry; their summary (no call timing)."""
    if pause_gc:
        gc.disable()
    try:
        cfg = build(f"probe-{n}", n, pooled=True, freeze_every=freeze_every)
    finally:
        gc.enable()
    try:
        out = cfg.summary()
        out["gc_paused"] = pause_gc
        return out
    finally:
        cfg.registry.close()
        gc.unfreeze()


def install_in_fresh_process(n: int, freeze_every: int = 0, pause_gc: bool = False,
                             src: Path | None = None) -> dict[str, Any]:
    """``install_probe`` in a new interpreter, so no other heap inflates its collections;
    ``src``: install with the ``vino`` package found there instead (the probe itself is
    still this module, so both are timed the same way)."""
    code = ("import importlib.util, json, sys; "
            f"spec = importlib.util.spec_from_file_location('vino_install_probe', {__file__!r}); "
            "probe = sys.modules[spec.name] = importlib.util.module_from_spec(spec); "
            "spec.loader.exec_module(probe); "
            f"print(json.dumps(probe.install_probe({int(n)}, {int(freeze_every)}, "
            f"{bool(pause_gc)})))")
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=PROBE_TIMEOUT_S, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"install probe failed: {proc.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def compare_installs(revision: str, n: int = COUNTS[-1], rounds: int = 3,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Installs of ``n`` grafts (collector running, fresh interpreters) with this tree's
    ``vino`` and with ``revision``'s (``git archive`` of its ``src``), alternated
    ``rounds`` times, so that both see the same machine. Needs the git repository."""
    repo = Path(__file__).resolve().parents[3]
    with tempfile.TemporaryDirectory(prefix="vino-install-") as tmp:
        archive = subprocess.run(["git", "-C", str(repo), "archive", revision, "src"],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        runs: dict[str, list[dict[str, Any]]] = {revision: [], "this tree": []}
        for r in range(rounds):
            for label, src in ((revision, Path(tmp) / "src"), ("this tree", None)):
                runs[label].append(install_in_fresh_process(n, src=src))
                if progress is not None:
                    progress(f"install: round {r + 1}/{rounds}, {label} done")
    return {"n": n, "revision": revision, "runs": runs}


def render_comparison(result: dict[str, Any]) -> str:
    """One row per run and side: µs per install (median / mean / p90) and CPU µs."""
    rows = []
    for label, runs in result["runs"].items():
        for r, p in enumerate(runs):
            i = p["install_us"]
            cpu = p.get("install_cpu_us")
            rows.append([label, str(r + 1), f"{i['median']:.0f}", f"{i['mean']:.0f}",
                         f"{i['p90']:.0f}", "" if cpu is None else f"{cpu:.0f}",
                         f"{p['host_per_graft_kib']:.1f}"])
    return markdown_table(["vino", "round", "median µs", "mean µs", "p90 µs",
                           "CPU µs (mean)", "host KiB per graft"], rows)


def _summarise(configs: list[Config], series: dict[str, list[float]],
               cps: dict[int, list[float]], biggest: Config,
               probes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"configs": {}, "calls_per_second": {},
                           "fresh_process_install": probes}
    one = next(c for c in configs if c.pooled and c.n == min(x.n for x in configs))
    for cfg in configs:
        d = cfg.summary()
        for kind in ("hot", "spread"):
            s = series[f"{cfg.name}/{kind}"]
            d[f"call_{kind}"] = spread(s).as_dict()
            d[f"call_{kind}_vs_one"] = ratio(s, series[f"{one.name}/{kind}"]).median_us
        out["configs"][cfg.name] = d
    out["calls_per_second"] = {
        "config": biggest.name,
        "threads_1": statistics.median(cps[1]), "threads_2": statistics.median(cps[2])}
    default_cfgs = [c for c in configs if not c.pooled and c.n > 1]
    if default_cfgs:
        per = max(default_cfgs, key=lambda c: c.n).maps / max(default_cfgs, key=lambda c: c.n).n
        out["default_allocator_limit"] = {
            "maps_per_graft": per,
            "max_map_count": _max_map_count(),
            "grafts_at_limit": int(_max_map_count() / per) if per > 0 else None}
    out["targets"] = targets(out, biggest.name, one.name)
    return out


def _max_map_count() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except OSError:
        return MAX_MAP_COUNT_DEFAULT


def targets(out: dict[str, Any], big: str, one: str) -> list[dict[str, Any]]:
    d = out["configs"][big]
    n = d["n"]
    extra = [target(f"{n:,} grafts: install time per graft (mean), fresh interpreter, {label}",
                    p["install_us"]["mean"], AT_MOST, INSTALL_TARGET_US, "µs")
             for label, p in out["fresh_process_install"].items()]
    return [
        *extra,
        target(f"{n:,} grafts: per-call cost ÷ one graft's (same target)",
               d["call_hot_vs_one"], AT_MOST, FLAT_WITHIN, "x"),
        target(f"{n:,} grafts: install time per graft (mean), benchmark process",
               d["install_us"]["mean"], AT_MOST, INSTALL_TARGET_US, "µs"),
        target(f"{n:,} grafts: resident host memory per graft beyond its linear memory",
               d["host_per_graft_kib"], AT_MOST, HOST_MEMORY_TARGET_KIB, "KiB"),
    ]


def render(result: dict[str, Any]) -> str:
    rows = []
    for d in result["configs"].values():
        h, s, i = d["call_hot"], d["call_spread"], d["install_us"]
        rows.append([
            f"{'pooling' if d['pooled'] else 'default'} allocator"
            f"{', gc.freeze() every 1,000' if d.get('gc_frozen') else ''}", f"{d['n']:,}",
            f"{h['median_us']:.2f} [{h['p10_us']:.2f}..{h['p90_us']:.2f}]",
            f"{s['median_us']:.2f} [{s['p10_us']:.2f}..{s['p90_us']:.2f}]",
            f"{d['call_hot_vs_one']:.2f} / {d['call_spread_vs_one']:.2f}",
            f"{i['median']:.0f} / {i['mean']:.0f} / {i['p90']:.0f}",
            f"{d['rss_per_graft_kib']:.1f} KiB", f"{d['linear_resident_per_graft_kib']:.1f} KiB",
            f"{d['host_per_graft_kib']:.1f} KiB", f"{d['maps_per_graft']:.3f}"])
    lines = [markdown_table(
        ["configuration", "grafts", "call, same graft (µs)", "call, 1,024 grafts in turn (µs)",
         "÷ one graft", "install µs (median / mean / p90)", "RSS per graft",
         "of which linear memory", "host per graft", "mappings per graft"], rows)]
    c = result["calls_per_second"]
    lines += ["", f"Protected calls per second ({c['config']}, each thread on its own grafts): "
              f"1 thread {c['threads_1']:,.0f}/s, 2 threads {c['threads_2']:,.0f}/s."]
    for label, p in result.get("fresh_process_install", {}).items():
        i = p["install_us"]
        lines.append(f"{p['n']:,} installs in a fresh interpreter, {label}: "
                     f"{i['median']:.0f} / {i['mean']:.0f} / {i['p90']:.0f} µs per graft "
                     f"(median / mean / p90), {p['host_per_graft_kib']:.1f} KiB host memory "
                     "per graft.")
    lim = result.get("default_allocator_limit")
    if lim:
        lines.append(f"Default allocator: {lim['maps_per_graft']:.2f} mappings per graft; with "
                     f"vm.max_map_count = {lim['max_map_count']:,} a process holds at most about "
                     f"{lim['grafts_at_limit']:,} grafts.")
    return "\n".join(lines)
