"""The speed goals of the protected call, each measured in one run (``vino bench goals``).

Every row of the goals table gets today's figure, its goal and whether it is met:

- **protected call ÷ pluggy hook**, per sample graft (read-ahead, eviction,
  scheduling, encryption): the subsystem's policy slot with the sample graft
  installed (``Setup.hook``, the table's Total) against the same slot holding a
  pluggy hook (``peers.pluggy_slot``) whose implementation is the sample's
  Python twin (``vino.bench.policies``: the same decisions from the same inputs),
  called by keyword, with the same arguments (``Setup.hook_args``). Both write
  the filter's answer back into the block. The encryption hook's ChaCha20 is the
  ``cryptography`` package's (OpenSSL, vectorised C, a cipher object made per call);
  the graft's is Wasm SIMD, four blocks at once (``chacha20_filter.c``; fs.filter
  allows SIMD), so that row compares a native cipher with a sandboxed one: the same
  cipher on the same block, not the same code;
- **protected null graft**, µs, and its ratio to the **raw call** (the fast
  path's bare call of the same export, no protection);
- **one graft-callable call** (guest to host and back): a graft making
  ``CALLABLE_CALLS`` calls of a graft-callable that does nothing, minus the null
  graft, per call;
- **threads**: aggregate protected calls per second from 1, 2, 4 and 8 threads,
  each thread calling its own graft, for a null graft and for a graft that
  spins in Wasm for a few µs (``SPIN_ITERATIONS``); the goal is on 2 ÷ 1;
- **sparse ÷ back-to-back**, per sample graft: the same call made once every
  ``SPARSE_GAP_NS`` with the host busy in Python between calls
  (``timing.spaced``, the timestamp's own cost taken off each call), against calls
  back to back; beside them, in the same rounds, the same pattern for a plain
  ctypes call of a C function (``c_floor``: no vino at all): what the machine
  charges any call after the host was busy elsewhere (cold caches, branch
  predictors, other processes run on the core meanwhile). Each sample's sparse
  figures are reported beside the floor's (``sparse_penalty``): the µs its sparse
  call costs beyond its back-to-back call, the floor's share of that and the
  rest (vino's own), round by round; and the same pattern for its pluggy hook
  (an unprotected Python plugin making the same decision). A ctypes call's cold
  footprint (libffi, argument conversion, the GIL let go and taken back) is not
  what a protected call needs, so beside it, same rounds, the **native floor**
  (``WasmFloor``): a plain C-extension call into a trivial WebAssembly export on
  the samples' engine, nothing of vino's around it -- what any protected call
  must pay cold, and the ratio each sample would have if it paid only that;
- **install**, mean µs per graft with the collector running, ``INSTALL_GRAFTS``
  grafts in a fresh interpreter (``scale.install_in_fresh_process``);
- **eviction on the SSD**: device time saved ÷ protection spent
  (``savings.run``, with the eviction Total measured here).

The per-call figures are measured side by side, interleaved round by round
(``timing.interleave``); ratios are taken round by round and their median
quoted. Threads are measured round by round as well (each round runs 1, 2, 4
and 8 threads in turn). ``QUICK`` runs everything small: structure, not numbers.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import wasmtime

from vino.bench import bench_quota, paper, peers, savings, scale, setups
from vino.bench.micro import decode_pick, encode_pick, pick_wat
from vino.bench.timing import (
    Contender,
    Progress,
    interleave,
    plain,
    ratio,
    spaced,
    spread,
    threaded_rate,
    timer_overhead_ns,
)
from vino.graft import (
    FunctionPoint,
    GraftCallable,
    Principal,
    Registry,
    any_principal,
    fastpath,
)
from vino.graft.fastcall import I32, OK, RawFunc
from vino.graft.sandbox import Sandbox
from vino.graft.txn import Transaction
from vino.kernel.device import SSD
from vino.limits import NEVER_REMOVE
from vino.report import AT_LEAST, AT_MOST, markdown_table, target

CALLABLE_CALLS: Final = 32  # graft-callable calls per protected call (the callable row)
SPIN_ITERATIONS: Final = 1000  # Wasm loop iterations of the spinning graft (threads)
THREADS: Final = (1, 2, 4, 8)
SPARSE_GAP_NS: Final = 1_500_000  # between sparse calls: more than one epoch tick
# The native floor's store: its deadline this many epoch ticks ahead (decades), so the
# export's epoch check at entry never calls back (a graft's store renews it each tick).
FLOOR_DEADLINE_TICKS: Final = 1 << 40
FLOOR_WAT: Final = '(module (func (export "f") (result i32) i32.const 0))'

# The goals (issue: faster than an unprotected plugin), with the figures it was filed with.
VS_PLUGGY_MAX: Final = 1.0
NULL_MAX_US: Final = 1.0
NULL_VS_RAW_MAX: Final = 2.5
CALLABLE_MAX_US: Final = 0.5
TWO_THREADS_MIN: Final = 0.95
SPARSE_MAX: Final = 2.0
INSTALL_MAX_US: Final = 100.0
EVICT_SSD_MIN: Final = 10.0
WHEN_FILED: Final = {
    "vs_pluggy": "1.16-1.86",
    "null_us": "2.0 µs",
    "null_vs_raw": "4.9x",
    "callable_us": "~1.9 µs",
    "two_threads": "0.54-0.78",
    "sparse": "3-6x",
    "install_us": "287-346 µs",
    "evict_ssd": "2.8-3.2x",
}


@dataclass(frozen=True, slots=True)
class Settings:
    rounds: int
    batch_s: float
    thread_run_s: float  # seconds each thread count runs, per round
    thread_rounds: int
    install_grafts: int
    quick: bool


FULL: Final = Settings(rounds=15, batch_s=0.02, thread_run_s=0.3, thread_rounds=7,
                       install_grafts=100_000, quick=False)
QUICK: Final = Settings(rounds=2, batch_s=0.0005, thread_run_s=0.005, thread_rounds=1,
                        install_grafts=20, quick=True)

NULL_WAT: Final = pick_wat(3)
INVALID_WAT: Final = pick_wat(1000)  # out of range: aborted on every call
CALLS_WAT: Final = pick_wat(3, loop=CALLABLE_CALLS, call="ping")
SPIN_WAT: Final = pick_wat(3, loop=SPIN_ITERATIONS)

def _ping(txn: Transaction, i: int) -> int:
    return 0


def c_floor() -> Callable[[int], int]:
    """A plain ctypes call of a C function (libc's ``labs``): the sparse floor."""
    labs = ctypes.CDLL(None).labs
    labs.argtypes = [ctypes.c_long]
    labs.restype = ctypes.c_long
    return labs


class WasmFloor:
    """The native floor: a plain C-extension call into a trivial WebAssembly export, with
    nothing of vino's around it (no transaction, codec, clock, lock, stack guard).

    ``call()`` is the fast path's ``RawCall`` (a C type called by vectorcall, no argument
    to convert, the GIL kept) of ``wasmtime_func_call_unchecked`` on an export that
    answers 0, in a store of ``sandbox``'s engine (epoch interruption on, its ticker
    running: the export checks the epoch at entry, as every graft's code does) whose
    deadline is ``FLOOR_DEADLINE_TICKS`` ahead. ``make`` returns None without the native
    fast path (``VINO_FASTPATH=python``)."""

    __slots__ = ("_raw", "_store", "call")

    def __init__(self, store: wasmtime.Store, raw: RawFunc) -> None:
        self._store, self._raw = store, raw  # the call's pointers live as long as these
        self.call = raw.call_fn()

    @classmethod
    def make(cls, sandbox: Sandbox) -> WasmFloor | None:
        native = fastpath.native()
        if native is None:
            return None
        store = wasmtime.Store(sandbox.engine)
        store.set_epoch_deadline(FLOOR_DEADLINE_TICKS)
        instance = wasmtime.Instance(store, wasmtime.Module(sandbox.engine, FLOOR_WAT), [])
        export = instance.exports(store)["f"]
        if not isinstance(export, wasmtime.Func):
            raise AssertionError("goals: the native floor's export is no function")
        raw = RawFunc(store, export, (), (I32,), native=native)
        if raw.call0() != OK or raw.results()[0] != 0:
            raise AssertionError("goals: the native floor's export misbehaved")
        return cls(store, raw)


class Mechanism:
    """One registry with the null, graft-callable and spinning grafts (one per thread),
    and one whose answer always fails validation (aborted on every call, never removed)."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.point = self.registry.declare(FunctionPoint[object, int, int](
            name="goals.pick", entry="pick", buffer_size=64, encode=encode_pick, decode=decode_pick,
            default=lambda x: 7, callables=(GraftCallable("ping", (I32,), (I32,), _ping),),
            may_install=any_principal, target_type=object))
        who = Principal("goals", bench_quota())
        install = self.registry.install
        self.null = install(self.point, NULL_WAT, who, target="null")
        install(self.point, CALLS_WAT, who, target="calls")
        install(self.point, INVALID_WAT, who, target="invalid", remove_after=NEVER_REMOVE)
        for j in range(max(THREADS)):
            install(self.point, NULL_WAT, who, target=("null", j))
            install(self.point, SPIN_WAT, who, target=("spin", j))
        for t in ("null", "calls", ("spin", 0)):
            if self.point(t, 1) != 3:
                raise AssertionError(f"goals: graft {t!r} misbehaved")

    def contenders(self) -> list[Contender]:
        raw = self.null.entry
        return [Contender("null", plain(self.point, "null", 1)),
                Contender("raw", plain(raw.call0)),
                Contender("calls", plain(self.point, "calls", 1))]

    def close(self) -> None:
        self.registry.close()


def throughput(call: Callable[..., Any], targets: Sequence[Any], run_s: float) -> float:
    """Protected calls per second from ``len(targets)`` threads, thread j calling
    ``call(targets[j], 1)`` back to back for ``run_s`` seconds."""
    def batch(j: int) -> Callable[[], int]:
        t = targets[j]

        def run() -> int:
            for _ in range(64):
                call(t, 1)
            return 64

        return run

    return threaded_rate(batch, len(targets), run_s)


def thread_scaling(m: Mechanism, settings: Settings,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Aggregate calls per second for each thread count and graft, interleaved by round."""
    # The machine's load, before and after: on a shared machine more threads also win a
    # larger share of the cores from other processes, which a loaded run's ratios include.
    out: dict[str, Any] = {"gil": _gil_enabled(), "threads": list(THREADS), "grafts": {},
                           "load_average": [os.getloadavg()[0]]}
    series: dict[tuple[str, int], list[float]] = {}
    for r in range(settings.thread_rounds):
        for kind in ("null", "spin"):
            for n in THREADS:
                targets = [(kind, j) for j in range(n)]
                series.setdefault((kind, n), []).append(
                    throughput(m.point, targets, settings.thread_run_s))
        if progress is not None:
            progress(f"goals: threads, round {r + 1}/{settings.thread_rounds}")
    for kind in ("null", "spin"):
        one = series[(kind, 1)]
        out["grafts"][kind] = {
            str(n): {"calls_per_s": statistics.median(series[(kind, n)]),
                     "vs_one_thread": ratio(series[(kind, n)], one).median_us}
            for n in THREADS}
    out["load_average"].append(os.getloadavg()[0])
    return out


def _gil_enabled() -> bool:
    probe = getattr(sys, "_is_gil_enabled", None)
    return bool(probe()) if probe is not None else True


def run(settings: Settings = FULL, progress: Progress | None = None,
        workdir: Path | None = None) -> dict[str, Any]:
    """Measure every goal; return figures, thread scaling and the checked goals."""
    with tempfile.TemporaryDirectory(prefix="vino-bench-goals-") as tmp:
        wd = workdir or Path(tmp)
        shared = Sandbox()
        booted: dict[str, setups.Setup] = {}
        m = Mechanism()
        try:
            for key in paper.GRAFTS:
                booted[key] = setups.build(key, wd, shared)
            pm = peers.plugin_manager(booted)
            cs = m.contenders()
            floor, timer_ns = c_floor(), timer_overhead_ns()
            cs += [Contender("floor/total", plain(floor, -5)),
                   Contender("floor/sparse", spaced(floor, (-5,), SPARSE_GAP_NS, timer_ns),
                             min_calls=1)]
            wasm_floor = WasmFloor.make(shared)
            if wasm_floor is not None:
                cs += [Contender("native_floor/total", plain(wasm_floor.call)),
                       Contender("native_floor/sparse",
                                 spaced(wasm_floor.call, (), SPARSE_GAP_NS, timer_ns),
                                 min_calls=1)]
            for k, s in booted.items():
                if peers.pluggy_hook(pm, k)(*s.args()) != s.expected:
                    raise AssertionError(f"{k}: the pluggy hook answered differently")
                cs += [Contender(f"{k}/total", plain(s.hook, *s.hook_args())),
                       Contender(f"{k}/pluggy", plain(peers.pluggy_slot(pm, k),
                                                      *s.hook_args())),
                       Contender(f"{k}/sparse", spaced(s.hook, s.hook_args(), SPARSE_GAP_NS,
                                                       timer_ns), min_calls=1),
                       Contender(f"{k}/pluggy_sparse", spaced(
                           peers.pluggy_slot(pm, k), s.hook_args(), SPARSE_GAP_NS, timer_ns),
                           min_calls=1)]
            if progress is not None:
                progress("goals: kernels booted, grafts installed")
            series = interleave(cs, settings.rounds, settings.batch_s, min_calls=2,
                                progress=progress, label="goals: ")
            threads = thread_scaling(m, settings, progress)
        finally:
            m.close()
            for s in booted.values():
                s.close()
            shared.close()
        evict_total = spread(series["evict/total"]).median_us
        saved = savings.run(wd / "savings", per_call_us={"evict": evict_total},
                            quick=settings.quick, progress=progress)
    if progress is not None:
        progress(f"goals: {settings.install_grafts:,} installs in a fresh interpreter")
    install = scale.install_in_fresh_process(settings.install_grafts)
    return _summarise(series, threads, saved, install, settings)


def _summarise(series: dict[str, list[float]], threads: dict[str, Any], saved: dict[str, Any],
               install: dict[str, Any], settings: Settings) -> dict[str, Any]:
    per_callable = [max(0.0, (c - n) / CALLABLE_CALLS)
                    for c, n in zip(series["calls"], series["null"], strict=True)]
    figures: dict[str, Any] = {
        "null_us": spread(series["null"]).as_dict(),
        "raw_us": spread(series["raw"]).as_dict(),
        "null_vs_raw": ratio(series["null"], series["raw"]).median_us,
        "callable_us": spread(per_callable).as_dict(),
        "samples": {},
        "sparse_floor": {"total_us": spread(series["floor/total"]).median_us,
                         "sparse_us": spread(series["floor/sparse"]).median_us,
                         "sparse_vs_back_to_back":
                             ratio(series["floor/sparse"], series["floor/total"]).median_us},
    }
    floor_extra = [s - t for s, t in zip(series["floor/sparse"], series["floor/total"],
                                         strict=True)]
    native_extra: list[float] | None = None
    if "native_floor/total" in series:
        nt, ns = series["native_floor/total"], series["native_floor/sparse"]
        native_extra = [s - t for s, t in zip(ns, nt, strict=True)]
        figures["sparse_native_floor"] = {
            "total_us": spread(nt).median_us, "sparse_us": spread(ns).median_us,
            "sparse_vs_back_to_back": ratio(ns, nt).median_us,
            "extra_us": spread(native_extra).median_us}
    for k in paper.GRAFTS:
        tot, plug, sp, plug_sp = (series[f"{k}/{w}"]
                                  for w in ("total", "pluggy", "sparse", "pluggy_sparse"))
        extra = [s - t for s, t in zip(sp, tot, strict=True)]
        figures["samples"][k] = {
            "title": paper.TITLES[k],
            "total_us": spread(tot).median_us, "pluggy_us": spread(plug).median_us,
            "sparse_us": spread(sp).median_us,
            "vs_pluggy": ratio(tot, plug).median_us, "sparse_vs_back_to_back":
                ratio(sp, tot).median_us,
            "pluggy_sparse_us": spread(plug_sp).median_us,
            "pluggy_sparse_vs_back_to_back": ratio(plug_sp, plug).median_us,
            **sparse_penalty(extra, floor_extra, tot)}
        if native_extra is not None:
            figures["samples"][k].update(native_penalty(extra, native_extra, tot))
    ssd = {r["workload"]: r for r in saved["rows"] if r["profile"] == SSD.name}
    figures["evict_ssd"] = ssd[savings.EVICT_WORKLOAD]["ratio"]
    figures["evict_ssd_one_victim"] = ssd[savings.ONE_VICTIM_WORKLOAD]["ratio"]
    figures["install_us"] = install["install_us"]
    figures["install_cpu_us"] = install.get("install_cpu_us")
    figures["install_grafts"] = settings.install_grafts
    from vino.bench.suite import machine

    return {"machine": machine(), "quick": settings.quick, "rounds": settings.rounds,
            "figures": figures,
            "threads": threads, "goals": goals(figures, threads)}


def sparse_penalty(extra: Sequence[float], floor_extra: Sequence[float],
                   total: Sequence[float]) -> dict[str, float]:
    """What a sample's sparse call costs beyond its back-to-back call, round by round
    (``extra``, µs), split into the floor's share (``floor_extra``: the same for a plain
    ctypes call, same rounds) and the rest, vino's own; and the ratio the sample would
    have if its sparse call paid only the floor's extra (``total``: its back-to-back µs)."""
    own = [e - f for e, f in zip(extra, floor_extra, strict=True)]
    at_floor = [(t + f) / t for t, f in zip(total, floor_extra, strict=True) if t > 0]
    return {"sparse_extra_us": spread(extra).median_us,
            "sparse_floor_extra_us": spread(floor_extra).median_us,
            "sparse_own_us": spread(own).median_us,
            "sparse_at_floor": spread(at_floor).median_us if at_floor else 0.0}


def native_penalty(extra: Sequence[float], native_extra: Sequence[float],
                   total: Sequence[float]) -> dict[str, float]:
    """As ``sparse_penalty`` against the native floor (``WasmFloor``): its extra, the
    sample's extra beyond it, and the ratio the sample would have at that extra alone."""
    beyond = [e - f for e, f in zip(extra, native_extra, strict=True)]
    at_floor = [(t + f) / t for t, f in zip(total, native_extra, strict=True) if t > 0]
    return {"sparse_native_extra_us": spread(native_extra).median_us,
            "sparse_beyond_native_us": spread(beyond).median_us,
            "sparse_at_native_floor": spread(at_floor).median_us if at_floor else 0.0}


def goals(f: dict[str, Any], threads: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row of the goals table: the target (measured, limit, met) and its figure when
    the goal was set (``filed``)."""
    rows: list[dict[str, Any]] = []

    def add(key: str, t: dict[str, Any]) -> None:
        rows.append({**t, "filed": WHEN_FILED[key]})

    for s in f["samples"].values():
        add("vs_pluggy", target(f"protected call ÷ pluggy hook, {s['title']}", s["vs_pluggy"],
                                AT_MOST, VS_PLUGGY_MAX, "x"))
    add("null_us", target("protected null graft", f["null_us"]["median_us"], AT_MOST,
                          NULL_MAX_US, "µs"))
    add("null_vs_raw", target("protected null graft ÷ raw call", f["null_vs_raw"], AT_MOST,
                              NULL_VS_RAW_MAX, "x"))
    add("callable_us", target("one graft-callable call (guest to host and back)",
                              f["callable_us"]["median_us"], AT_MOST, CALLABLE_MAX_US, "µs"))
    gil = "GIL build" if threads["gil"] else "free-threaded build"
    for kind, label in (("null", "null graft"), ("spin", f"{SPIN_ITERATIONS}-iteration graft")):
        add("two_threads", target(f"aggregate throughput, 2 threads ÷ 1 thread, {label}, {gil}",
                                  threads["grafts"][kind]["2"]["vs_one_thread"], AT_LEAST,
                                  TWO_THREADS_MIN, "x"))
    for s in f["samples"].values():
        add("sparse", target(f"sparse call ÷ back-to-back call, {s['title']}",
                             s["sparse_vs_back_to_back"], AT_MOST, SPARSE_MAX, "x"))
    add("install_us", target(f"install, mean, collector running, {f['install_grafts']:,} grafts",
                             f["install_us"]["mean"], AT_MOST, INSTALL_MAX_US, "µs"))
    add("evict_ssd", target("eviction on SSD: device time saved ÷ protection spent",
                            f["evict_ssd"], AT_LEAST, EVICT_SSD_MIN, "x"))
    return rows


def render(result: dict[str, Any]) -> str:
    """The goals table and the thread-scaling table, as markdown."""
    rows = []
    for g in result["goals"]:
        v = g["value"]
        rows.append([g["what"], g["filed"], f"{g['op']} {g['limit']:g} {g['unit']}",
                     "n/a" if v is None else f"{v:,.2f} {g['unit']}", "yes" if g["ok"] else "no"])
    lines = [markdown_table(["measure", "when the goal was set", "goal", "measured", "met"],
                            rows)]
    t = result["threads"]
    spin = f"{SPIN_ITERATIONS}-iteration graft"
    load = " -> ".join(f"{x:.1f}" for x in t.get("load_average", []))
    lines += ["", f"Threads ({'GIL build' if t['gil'] else 'free-threaded build'}): aggregate "
              "protected calls per second, each thread calling its own graft (machine load "
              f"average {load})", "",
              markdown_table(
                  ["threads", "null graft, calls/s", "÷ 1 thread", f"{spin}, calls/s",
                   "÷ 1 thread"],
                  ([n, f"{t['grafts']['null'][str(n)]['calls_per_s']:,.0f}",
                    f"{t['grafts']['null'][str(n)]['vs_one_thread']:.2f}",
                    f"{t['grafts']['spin'][str(n)]['calls_per_s']:,.0f}",
                    f"{t['grafts']['spin'][str(n)]['vs_one_thread']:.2f}"]
                   for n in t["threads"]))]
    f = result["figures"]
    lines += ["", f"Protected null graft {f['null_us']['median_us']:.2f} µs "
              f"(p10..p90 {f['null_us']['p10_us']:.2f}..{f['null_us']['p90_us']:.2f}), raw call "
              f"{f['raw_us']['median_us']:.2f} µs; per sample: Total / pluggy / sparse µs: "
              + "; ".join(f"{s['title']} {s['total_us']:.2f} / {s['pluggy_us']:.2f} / "
                          f"{s['sparse_us']:.2f}" for s in f["samples"].values())]
    one = f.get("evict_ssd_one_victim")
    if one is not None:
        lines += ["", f"Eviction on SSD, saved ÷ spent, same run: {f['evict_ssd']:.2f}x with "
                  f"batches, {one:.2f}x one victim a call (the sample's one-victim port)"]
    fl = f.get("sparse_floor")
    if fl is not None:
        lines += ["", f"Sparse floor (the same pattern, a plain ctypes call of a C function, "
                  f"no vino): {fl['total_us']:.2f} µs back to back, {fl['sparse_us']:.2f} µs "
                  f"sparse, {fl['sparse_vs_back_to_back']:.2f}x"]
        nf = f.get("sparse_native_floor")
        if nf is not None:
            lines += ["", f"Native floor (the same pattern, a plain C-extension call into a "
                      f"trivial WebAssembly export on the samples' engine, nothing of vino's "
                      f"around it): {nf['total_us']:.2f} µs back to back, "
                      f"{nf['sparse_us']:.2f} µs sparse, {nf['sparse_vs_back_to_back']:.2f}x, "
                      f"extra {nf['extra_us']:.2f} µs"]
        lines += ["", render_sparse(f)]
    i = f["install_us"]
    lines += ["", f"Install, {f['install_grafts']:,} grafts, collector running: median "
              f"{i['median']:.0f} / mean {i['mean']:.0f} / p90 {i['p90']:.0f} µs wall, "
              f"{f.get('install_cpu_us') or 0:.0f} µs CPU of the installing thread (which other "
              "processes on a shared machine do not inflate)."]
    return "\n".join(lines)


def render_sparse(f: dict[str, Any]) -> str:
    """Each sample's sparse call beside the floor's, same rounds: ratios, and the µs a
    sparse call costs beyond a back-to-back one, the floor's share and vino's own."""
    fl = f["sparse_floor"]
    native = "sparse_native_floor" in f
    rows = []
    for s in f["samples"].values():
        if "sparse_own_us" not in s:
            continue
        row = [s["title"], f"{s['total_us']:.2f}", f"{s['sparse_us']:.2f}",
               f"{s['sparse_vs_back_to_back']:.2f}x", f"{fl['sparse_vs_back_to_back']:.2f}x",
               f"{s['pluggy_sparse_vs_back_to_back']:.2f}x",
               f"{s['sparse_at_floor']:.2f}x", f"{s['sparse_extra_us']:.2f}",
               f"{s['sparse_floor_extra_us']:.2f}", f"{s['sparse_own_us']:.2f}"]
        if native:
            row += [f"{s['sparse_native_extra_us']:.2f}", f"{s['sparse_beyond_native_us']:.2f}",
                    f"{s['sparse_at_native_floor']:.2f}x"]
        rows.append(row)
    head = ["sample", "back to back", "sparse", "sparse ÷ back to back", "floor's ratio",
            "pluggy's ratio", "at the floor's extra", "extra", "floor's extra", "vino's own"]
    if native:
        head += ["native floor's extra", "beyond the native floor",
                 "at the native floor's extra"]
    return ("Sparse calls beside the floors, same rounds (µs; \"extra\": sparse minus back to "
            "back, medians of rounds; \"floor\": a plain ctypes call, \"vino's own\": the "
            "sample's extra minus the floor's; \"at the floor's extra\": the ratio the sample "
            "would have if its sparse call cost only the floor's extra; \"pluggy's ratio\": "
            "the same pattern for the sample's pluggy hook, no protection; \"native floor\": a "
            "plain C-extension call into a trivial WebAssembly export, and the same two "
            "figures against it):\n\n"
            + markdown_table(head, rows))


def plot(result: dict[str, Any], path: Path) -> Path:
    """Draw the thread scaling (aggregate calls per second ÷ one thread) to ``path`` (PNG).
    Needs matplotlib (the ``dev`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["threads"]
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for kind, label in (("null", "null graft"), ("spin", f"{SPIN_ITERATIONS}-iteration graft")):
        ax.plot(t["threads"], [t["grafts"][kind][str(n)]["vs_one_thread"] for n in t["threads"]],
                marker="o", label=label)
    ax.axhline(TWO_THREADS_MIN, color="grey", linestyle="--", linewidth=1,
               label=f"goal at 2 threads: ≥ {TWO_THREADS_MIN}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(t["threads"]), [str(n) for n in t["threads"]])
    ax.set_xlabel("threads, each calling its own graft")
    ax.set_ylabel("aggregate calls per second ÷ one thread")
    ax.set_title(f"vino protected calls, {'GIL build' if t['gil'] else 'free-threaded'}")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
